//! Values: the dynamic tree the wire carries ([`TfValue`]) and the typed view
//! resources use ([`Value<T>`]: known, null or unknown).
//!
//! Resource authors declare their state as plain structs with the
//! [`tf_object!`](crate::tf_object) macro; every field is a `Value<T>` (or a
//! plain `T` where the value is always known). Conversions go through
//! [`FromTf`] / [`IntoTf`], which report type mismatches as diagnostics with
//! the attribute path.

use std::collections::BTreeMap;
use std::fmt;

use crate::diag::Diagnostic;
use crate::path::AttrPath;
use crate::types::Type;

/// A Terraform number: arbitrary precision on the wire, kept exactly here.
#[derive(Clone, Debug)]
pub enum Number {
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Decimal text of a number that fits neither an integer nor an f64 exactly.
    Big(String),
}

impl Number {
    /// Normalises so that equal numbers have equal representations.
    pub fn normalized(self) -> Number {
        match self {
            Number::UInt(u) if u <= i64::MAX as u64 => Number::Int(u as i64),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Number::Int(f as i64),
            Number::Big(s) => {
                if let Ok(i) = s.parse::<i64>() {
                    Number::Int(i)
                } else if let Ok(u) = s.parse::<u64>() {
                    Number::UInt(u)
                } else if let Ok(f) = s.parse::<f64>() {
                    // Keep the text unless the f64 prints back to the same number.
                    if f.is_finite() && prints_as(f, &s) { Number::Float(f).normalized() } else { Number::Big(s) }
                } else {
                    Number::Big(s)
                }
            }
            n => n,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::UInt(u) => i64::try_from(*u).ok(),
            Number::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::UInt(u) => *u as f64,
            Number::Float(f) => *f,
            Number::Big(s) => s.parse().unwrap_or(f64::NAN),
        }
    }
}

/// True when `text` is how an f64 prints (plain decimal, or JSON's shortest
/// form with exponent): then the number is exactly that f64.
fn prints_as(f: f64, text: &str) -> bool {
    format!("{f}") == text || serde_json::Number::from_f64(f).is_some_and(|n| n.to_string() == text)
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self.clone().normalized(), other.clone().normalized()) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::UInt(a), Number::UInt(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Big(a), Number::Big(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Big(s) => f.write_str(s),
        }
    }
}

/// A Terraform value of any type, as decoded from the wire against a schema.
#[derive(Clone, Debug)]
pub enum TfValue {
    /// Known only after apply. Refinements (msgpack ext 12) are accepted on
    /// input and not kept: a provider never needs them to plan correctly.
    Unknown,
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<TfValue>),
    Set(Vec<TfValue>),
    Map(BTreeMap<String, TfValue>),
    Object(BTreeMap<String, TfValue>),
    Tuple(Vec<TfValue>),
    /// A value of the `dynamic` pseudo-type together with its concrete type.
    Typed(Type, Box<TfValue>),
}

impl PartialEq for TfValue {
    fn eq(&self, other: &Self) -> bool {
        use TfValue::*;
        match (self, other) {
            (Typed(_, a), b) | (b, Typed(_, a)) if !matches!(b, Typed(..)) => **a == *b,
            (Typed(ta, a), Typed(tb, b)) => ta == tb && a == b,
            (Unknown, Unknown) | (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (String(a), String(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Map(a), Map(b)) | (Object(a), Object(b)) => a == b,
            (Set(a), Set(b)) => set_eq(a, b),
            _ => false,
        }
    }
}

/// Sets are unordered: equal when each element of one matches a distinct one of the other.
fn set_eq(a: &[TfValue], b: &[TfValue]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for x in a {
        for (i, y) in b.iter().enumerate() {
            if !used[i] && x == y {
                used[i] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

impl TfValue {
    pub fn is_null(&self) -> bool {
        matches!(self.untyped(), TfValue::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self.untyped(), TfValue::Unknown)
    }
    /// True when no unknown value is anywhere inside.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            TfValue::Unknown => false,
            TfValue::List(v) | TfValue::Set(v) | TfValue::Tuple(v) => v.iter().all(TfValue::is_wholly_known),
            TfValue::Map(m) | TfValue::Object(m) => m.values().all(TfValue::is_wholly_known),
            TfValue::Typed(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }
    /// The value without its `dynamic` type wrapper.
    pub fn untyped(&self) -> &TfValue {
        match self {
            TfValue::Typed(_, v) => v.untyped(),
            v => v,
        }
    }
    pub fn into_untyped(self) -> TfValue {
        match self {
            TfValue::Typed(_, v) => v.into_untyped(),
            v => v,
        }
    }
    /// Attribute of an object value (`None` for absent attributes and non-objects).
    pub fn get(&self, name: &str) -> Option<&TfValue> {
        match self.untyped() {
            TfValue::Object(m) => m.get(name),
            _ => None,
        }
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut TfValue> {
        match self {
            TfValue::Object(m) => m.get_mut(name),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self.untyped() {
            TfValue::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn string(s: impl Into<String>) -> TfValue {
        TfValue::String(s.into())
    }
    pub fn object<I: IntoIterator<Item = (S, TfValue)>, S: Into<String>>(attrs: I) -> TfValue {
        TfValue::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Follows a path into the value; `None` where the path leaves it.
    pub fn at(&self, path: &AttrPath) -> Option<&TfValue> {
        use crate::path::Step;
        let mut cur = self;
        for s in &path.0 {
            cur = match (s, cur.untyped()) {
                (Step::Attr(a), TfValue::Object(m)) => m.get(a)?,
                (Step::Key(k), TfValue::Map(m)) => m.get(k)?,
                (Step::Index(i), TfValue::List(v) | TfValue::Tuple(v)) => v.get(usize::try_from(*i).ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Reshapes a value produced by provider code into the canonical form for
    /// `ty`: lists become sets where the schema says set, maps become objects,
    /// absent object attributes become null. Fails on a real type mismatch.
    pub fn conform(self, ty: &Type, path: &AttrPath) -> Result<TfValue, Diagnostic> {
        let mismatch = |v: &TfValue| {
            Diagnostic::error(
                "Provider produced a value of the wrong type",
                format!("expected {ty} at {path}, got {}. This is a bug in the provider; please report it.", v.kind()),
            )
            .at(path.clone())
        };
        let v = match (ty, self) {
            (_, TfValue::Unknown) => TfValue::Unknown,
            (_, TfValue::Null) => TfValue::Null,
            (Type::Dynamic, TfValue::Typed(t, v)) => TfValue::Typed(t.clone(), Box::new(v.conform(&t, path)?)),
            (Type::Dynamic, v) => v,
            (t, TfValue::Typed(_, v)) => v.conform(t, path)?,
            (Type::String, v @ TfValue::String(_)) => v,
            (Type::Bool, v @ TfValue::Bool(_)) => v,
            (Type::Number, TfValue::Number(n)) => TfValue::Number(n.normalized()),
            (Type::List(et), TfValue::List(v) | TfValue::Set(v) | TfValue::Tuple(v)) => {
                TfValue::List(conform_all(v, et, path)?)
            }
            (Type::Set(et), TfValue::List(v) | TfValue::Set(v) | TfValue::Tuple(v)) => {
                let mut out: Vec<TfValue> = Vec::with_capacity(v.len());
                for (i, e) in v.into_iter().enumerate() {
                    let e = e.conform(et, &path.index(i))?;
                    if !out.contains(&e) {
                        out.push(e);
                    }
                }
                TfValue::Set(out)
            }
            (Type::Tuple(ts), TfValue::List(v) | TfValue::Tuple(v)) if ts.len() == v.len() => TfValue::Tuple(
                v.into_iter()
                    .zip(ts)
                    .enumerate()
                    .map(|(i, (e, t))| e.conform(t, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            ),
            (Type::Map(et), TfValue::Map(m) | TfValue::Object(m)) => TfValue::Map(
                m.into_iter()
                    .map(|(k, e)| {
                        let p = path.key(&k);
                        Ok((k, e.conform(et, &p)?))
                    })
                    .collect::<Result<_, Diagnostic>>()?,
            ),
            (Type::Object(attrs), TfValue::Object(mut m) | TfValue::Map(mut m)) => {
                let mut out = BTreeMap::new();
                for (name, at) in attrs {
                    let e = m.remove(name).unwrap_or(TfValue::Null);
                    out.insert(name.clone(), e.conform(at, &path.attr(name))?);
                }
                TfValue::Object(out)
            }
            (_, v) => return Err(mismatch(&v)),
        };
        Ok(v)
    }

    /// Short name of the value's kind for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            TfValue::Unknown => "unknown",
            TfValue::Null => "null",
            TfValue::Bool(_) => "bool",
            TfValue::Number(_) => "number",
            TfValue::String(_) => "string",
            TfValue::List(_) => "list",
            TfValue::Set(_) => "set",
            TfValue::Map(_) => "map",
            TfValue::Object(_) => "object",
            TfValue::Tuple(_) => "tuple",
            TfValue::Typed(_, v) => v.kind(),
        }
    }
}

fn conform_all(v: Vec<TfValue>, et: &Type, path: &AttrPath) -> Result<Vec<TfValue>, Diagnostic> {
    v.into_iter().enumerate().map(|(i, e)| e.conform(et, &path.index(i))).collect()
}

/// A typed attribute value: known, null, or unknown until apply.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value<T> {
    Known(T),
    #[default]
    Null,
    Unknown,
}

impl<T> Value<T> {
    pub fn is_known(&self) -> bool {
        matches!(self, Value::Known(_))
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    pub fn known(&self) -> Option<&T> {
        match self {
            Value::Known(t) => Some(t),
            _ => None,
        }
    }
    pub fn into_known(self) -> Option<T> {
        match self {
            Value::Known(t) => Some(t),
            _ => None,
        }
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Value<U> {
        match self {
            Value::Known(t) => Value::Known(f(t)),
            Value::Null => Value::Null,
            Value::Unknown => Value::Unknown,
        }
    }
    /// `Some(t)` for known, `None` for null: for values that cannot be unknown here.
    pub fn as_option(&self) -> Option<&T> {
        self.known()
    }
}

impl<T> From<Option<T>> for Value<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Value::Known)
    }
}

impl Value<String> {
    /// Null falls back to the environment variable `var` (provider settings);
    /// unknown stays unknown.
    pub fn or_env(self, var: &str) -> Value<String> {
        match self {
            Value::Null => std::env::var(var).ok().filter(|s| !s.is_empty()).into(),
            v => v,
        }
    }
    pub fn as_deref(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

/// Conversion from the wire tree into a typed value.
pub trait FromTf: Sized {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic>;
}

/// Conversion from a typed value into the wire tree.
pub trait IntoTf {
    fn into_tf(self) -> TfValue;
}

fn wrong(path: &AttrPath, want: &str, got: &TfValue) -> Diagnostic {
    let (summary, detail) = match got {
        TfValue::Unknown => (
            "Value not yet known",
            format!("{path} is only known after apply here; set it to a value known at plan time."),
        ),
        TfValue::Null => ("Missing value", format!("{path} must be set.")),
        _ => ("Wrong value type", format!("{path} must be a {want}, not a {}.", got.kind())),
    };
    Diagnostic::error(summary, detail).at(path.clone())
}

impl<T: FromTf> FromTf for Value<T> {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::Null => Ok(Value::Null),
            TfValue::Unknown => Ok(Value::Unknown),
            v => {
                // A collection with unknown parts (a map with one unknown
                // element, at plan time) is unknown as a whole to typed code.
                let wholly_known = v.is_wholly_known();
                match T::from_tf(v, path) {
                    Ok(t) => Ok(Value::Known(t)),
                    Err(_) if !wholly_known => Ok(Value::Unknown),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl<T: IntoTf> IntoTf for Value<T> {
    fn into_tf(self) -> TfValue {
        match self {
            Value::Known(t) => t.into_tf(),
            Value::Null => TfValue::Null,
            Value::Unknown => TfValue::Unknown,
        }
    }
}

impl FromTf for TfValue {
    fn from_tf(v: TfValue, _: &AttrPath) -> Result<Self, Diagnostic> {
        Ok(v)
    }
}
impl IntoTf for TfValue {
    fn into_tf(self) -> TfValue {
        self
    }
}

impl FromTf for String {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::String(s) => Ok(s),
            o => Err(wrong(path, "string", &o)),
        }
    }
}
impl IntoTf for String {
    fn into_tf(self) -> TfValue {
        TfValue::String(self)
    }
}
impl IntoTf for &str {
    fn into_tf(self) -> TfValue {
        TfValue::String(self.to_string())
    }
}

impl FromTf for bool {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::Bool(b) => Ok(b),
            o => Err(wrong(path, "bool", &o)),
        }
    }
}
impl IntoTf for bool {
    fn into_tf(self) -> TfValue {
        TfValue::Bool(self)
    }
}

impl FromTf for Number {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::Number(n) => Ok(n),
            o => Err(wrong(path, "number", &o)),
        }
    }
}
impl IntoTf for Number {
    fn into_tf(self) -> TfValue {
        TfValue::Number(self)
    }
}

impl FromTf for i64 {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        let n = Number::from_tf(v, path)?;
        n.as_i64().ok_or_else(|| {
            Diagnostic::error("Whole number expected", format!("{path} must be a whole number, not {n}."))
                .at(path.clone())
        })
    }
}
impl IntoTf for i64 {
    fn into_tf(self) -> TfValue {
        TfValue::Number(Number::Int(self))
    }
}

impl FromTf for f64 {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        Number::from_tf(v, path).map(|n| n.as_f64())
    }
}
impl IntoTf for f64 {
    fn into_tf(self) -> TfValue {
        TfValue::Number(Number::Float(self).normalized())
    }
}

impl<T: FromTf> FromTf for Vec<T> {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::List(v) | TfValue::Set(v) | TfValue::Tuple(v) => {
                v.into_iter().enumerate().map(|(i, e)| T::from_tf(e, &path.index(i))).collect()
            }
            o => Err(wrong(path, "list", &o)),
        }
    }
}
impl<T: IntoTf> IntoTf for Vec<T> {
    fn into_tf(self) -> TfValue {
        TfValue::List(self.into_iter().map(IntoTf::into_tf).collect())
    }
}

impl<T: FromTf> FromTf for BTreeMap<String, T> {
    fn from_tf(v: TfValue, path: &AttrPath) -> Result<Self, Diagnostic> {
        match v.into_untyped() {
            TfValue::Map(m) | TfValue::Object(m) => m
                .into_iter()
                .map(|(k, e)| {
                    let p = path.key(&k);
                    Ok((k, T::from_tf(e, &p)?))
                })
                .collect(),
            o => Err(wrong(path, "map", &o)),
        }
    }
}
impl<T: IntoTf> IntoTf for BTreeMap<String, T> {
    fn into_tf(self) -> TfValue {
        TfValue::Map(self.into_iter().map(|(k, v)| (k, v.into_tf())).collect())
    }
}

/// Reads one attribute of an object for [`tf_object!`](crate::tf_object).
#[doc(hidden)]
pub fn take_attr<T: FromTf>(m: &mut BTreeMap<String, TfValue>, name: &str, path: &AttrPath) -> Result<T, Diagnostic> {
    T::from_tf(m.remove(name).unwrap_or(TfValue::Null), &path.attr(name))
}

#[doc(hidden)]
pub fn expect_object(v: TfValue, path: &AttrPath) -> Result<BTreeMap<String, TfValue>, Diagnostic> {
    match v.into_untyped() {
        TfValue::Object(m) | TfValue::Map(m) => Ok(m),
        o => Err(wrong(path, "object", &o)),
    }
}

/// Declares a struct whose fields are Terraform attributes, with its
/// [`FromTf`] and [`IntoTf`] conversions. Field names are attribute names
/// (`r#type` maps to `type`).
///
/// ```
/// tfplugin::tf_object! {
///     #[derive(Clone, Debug)]
///     pub struct Disk {
///         pub size_gb: tfplugin::Value<i64>,
///         pub label: tfplugin::Value<String>,
///     }
/// }
/// ```
#[macro_export]
macro_rules! tf_object {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])* $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }

        impl $crate::FromTf for $name {
            fn from_tf(v: $crate::TfValue, path: &$crate::AttrPath) -> ::std::result::Result<Self, $crate::Diagnostic> {
                #[allow(unused_mut)]
                let mut m = $crate::value::expect_object(v, path)?;
                Ok(Self { $($field: $crate::value::take_attr(&mut m, $crate::__attr_name!($field), path)?),* })
            }
        }

        impl $crate::IntoTf for $name {
            fn into_tf(self) -> $crate::TfValue {
                $crate::TfValue::Object(::std::collections::BTreeMap::from([
                    $(($crate::__attr_name!($field).to_string(), $crate::IntoTf::into_tf(self.$field))),*
                ]))
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __attr_name {
    ($field:ident) => {{
        let s: &'static str = stringify!($field);
        match s.strip_prefix("r#") {
            Some(rest) => rest,
            None => s,
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::tf_object! {
        #[derive(Debug, PartialEq)]
        struct Thing {
            name: Value<String>,
            r#type: String,
            size: Value<i64>,
            tags: Value<BTreeMap<String, String>>,
        }
    }

    #[test]
    fn typed_struct_round_trips_and_reports_paths() {
        let v = TfValue::object([
            ("name", TfValue::Unknown),
            ("type", TfValue::string("x")),
            ("size", TfValue::Null),
            ("tags", TfValue::Map(BTreeMap::from([("a".to_string(), TfValue::string("b"))]))),
        ]);
        let t = Thing::from_tf(v.clone(), &AttrPath::root()).unwrap();
        assert_eq!(t.name, Value::Unknown);
        assert_eq!(t.r#type, "x");
        assert_eq!(t.into_tf(), v);

        let bad = TfValue::object([("type", TfValue::Bool(true))]);
        let err = Thing::from_tf(bad, &AttrPath::root()).unwrap_err();
        assert_eq!(err.path, Some(AttrPath::attr_root("type")));
        assert!(err.detail.contains("must be a string"), "{}", err.detail);
    }

    #[test]
    fn sets_compare_unordered_and_numbers_by_value() {
        let a = TfValue::Set(vec![TfValue::string("a"), TfValue::string("b")]);
        let b = TfValue::Set(vec![TfValue::string("b"), TfValue::string("a")]);
        assert_eq!(a, b);
        assert_eq!(Number::Float(2.0), Number::Int(2));
        assert_ne!(Number::Big("1e400".into()), Number::Int(1));
    }

    #[test]
    fn conform_shapes_lists_into_sets_and_fills_missing_attributes() {
        let ty = Type::object([("s", Type::set(Type::String)), ("o", Type::Bool)]);
        let v = TfValue::object([("s", TfValue::List(vec![TfValue::string("a"), TfValue::string("a")]))]);
        let c = v.conform(&ty, &AttrPath::root()).unwrap();
        assert_eq!(c, TfValue::object([("s", TfValue::Set(vec![TfValue::string("a")])), ("o", TfValue::Null)]));
        let bad = TfValue::object([("o", TfValue::string("yes"))]);
        let err = bad.conform(&ty, &AttrPath::root()).unwrap_err();
        assert_eq!(err.path, Some(AttrPath::attr_root("o")));
    }
}
