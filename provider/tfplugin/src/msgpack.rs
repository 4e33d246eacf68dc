//! The msgpack encoding Terraform uses for every value on the wire.
//!
//! Decoding needs the type: lists, sets and tuples are all arrays, maps and
//! objects are all maps, and `dynamic` values travel as `[type JSON, value]`.
//! Unknown values are msgpack extensions: type 0 (`d4 00 00`), or type 12 with
//! refinements, which Terraform 1.6+ sends; any extension decodes as unknown.
//! Numbers are ints, floats, or decimal strings for values neither can hold.

use std::collections::BTreeMap;

use rmpv::Value as Mp;

use crate::types::Type;
use crate::value::{Number, TfValue};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("msgpack: {0}")]
    Read(String),
    #[error("value does not match its type: expected {expected}, found {found}")]
    Mismatch { expected: String, found: String },
    #[error("dynamic value: {0}")]
    Dynamic(String),
}

fn mismatch(expected: &Type, found: &Mp) -> CodecError {
    let found = match found {
        Mp::Nil => "nil",
        Mp::Boolean(_) => "bool",
        Mp::Integer(_) | Mp::F32(_) | Mp::F64(_) => "number",
        Mp::String(_) => "string",
        Mp::Binary(_) => "binary",
        Mp::Array(_) => "array",
        Mp::Map(_) => "map",
        Mp::Ext(..) => "extension",
    };
    CodecError::Mismatch { expected: expected.to_string(), found: found.into() }
}

/// Decodes a msgpack value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<TfValue, CodecError> {
    if bytes.is_empty() {
        return Ok(TfValue::Null);
    }
    let mut rd = bytes;
    let mp = rmpv::decode::read_value(&mut rd).map_err(|e| CodecError::Read(e.to_string()))?;
    from_mp(mp, ty)
}

/// Encodes `v` as a msgpack value of type `ty`.
pub fn encode(v: &TfValue, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mp = to_mp(v, ty)?;
    let mut out = Vec::with_capacity(64);
    rmpv::encode::write_value(&mut out, &mp).map_err(|e| CodecError::Read(e.to_string()))?;
    Ok(out)
}

fn from_mp(mp: Mp, ty: &Type) -> Result<TfValue, CodecError> {
    match (ty, mp) {
        (_, Mp::Nil) => Ok(TfValue::Null),
        (_, Mp::Ext(..)) => Ok(TfValue::Unknown),
        (Type::Dynamic, Mp::Array(mut a)) if a.len() == 2 => {
            let v = a.pop().expect("len 2");
            let tj = match a.pop().expect("len 2") {
                Mp::Binary(b) => b,
                Mp::String(s) => s.into_bytes(),
                other => return Err(CodecError::Dynamic(format!("type must be JSON bytes, got {other}"))),
            };
            let tj: serde_json::Value = serde_json::from_slice(&tj).map_err(|e| CodecError::Dynamic(e.to_string()))?;
            let t = Type::from_json(&tj).map_err(|e| CodecError::Dynamic(e.to_string()))?;
            let inner = from_mp(v, &t)?;
            Ok(TfValue::Typed(t, Box::new(inner)))
        }
        (Type::String, Mp::String(s)) => {
            s.into_str().map(TfValue::String).ok_or_else(|| CodecError::Read("string is not UTF-8".into()))
        }
        (Type::Bool, Mp::Boolean(b)) => Ok(TfValue::Bool(b)),
        (Type::Number, Mp::Integer(i)) => Ok(TfValue::Number(if let Some(i) = i.as_i64() {
            Number::Int(i)
        } else {
            Number::UInt(i.as_u64().expect("msgpack integers are i64 or u64"))
        })),
        (Type::Number, Mp::F64(f)) => Ok(TfValue::Number(Number::Float(f).normalized())),
        (Type::Number, Mp::F32(f)) => Ok(TfValue::Number(Number::Float(f64::from(f)).normalized())),
        (Type::Number, Mp::String(s)) => {
            let s = s.into_str().ok_or_else(|| CodecError::Read("number text is not UTF-8".into()))?;
            Ok(TfValue::Number(Number::Big(s).normalized()))
        }
        (Type::List(et), Mp::Array(a)) => Ok(TfValue::List(from_all(a, et)?)),
        (Type::Set(et), Mp::Array(a)) => Ok(TfValue::Set(from_all(a, et)?)),
        (Type::Tuple(ts), Mp::Array(a)) if ts.len() == a.len() => {
            Ok(TfValue::Tuple(a.into_iter().zip(ts).map(|(e, t)| from_mp(e, t)).collect::<Result<_, _>>()?))
        }
        (Type::Map(et), Mp::Map(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                out.insert(key(k)?, from_mp(v, et)?);
            }
            Ok(TfValue::Map(out))
        }
        (Type::Object(attrs), Mp::Map(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let k = key(k)?;
                // Attributes not in the schema are dropped: an object's type is its schema.
                if let Some(at) = attrs.get(&k) {
                    out.insert(k, from_mp(v, at)?);
                }
            }
            for name in attrs.keys() {
                out.entry(name.clone()).or_insert(TfValue::Null);
            }
            Ok(TfValue::Object(out))
        }
        (ty, other) => Err(mismatch(ty, &other)),
    }
}

fn key(k: Mp) -> Result<String, CodecError> {
    match k {
        Mp::String(s) => s.into_str().ok_or_else(|| CodecError::Read("map key is not UTF-8".into())),
        other => Err(CodecError::Read(format!("map key must be a string, got {other}"))),
    }
}

fn from_all(a: Vec<Mp>, et: &Type) -> Result<Vec<TfValue>, CodecError> {
    a.into_iter().map(|e| from_mp(e, et)).collect()
}

fn unknown() -> Mp {
    Mp::Ext(0, vec![0])
}

fn to_mp(v: &TfValue, ty: &Type) -> Result<Mp, CodecError> {
    let bad = || CodecError::Mismatch { expected: ty.to_string(), found: v.kind().into() };
    Ok(match (ty, v) {
        (_, TfValue::Unknown) => unknown(),
        (_, TfValue::Null) => Mp::Nil,
        (Type::Dynamic, v) => {
            let (t, inner) = match v {
                TfValue::Typed(t, inner) => (t.clone(), &**inner),
                other => (infer_type(other), other),
            };
            if inner.is_unknown() {
                unknown()
            } else if inner.is_null() {
                Mp::Nil
            } else {
                Mp::Array(vec![Mp::Binary(t.to_json_bytes()), to_mp(inner, &t)?])
            }
        }
        (t, TfValue::Typed(_, inner)) => to_mp(inner, t)?,
        (Type::String, TfValue::String(s)) => Mp::String(s.as_str().into()),
        (Type::Bool, TfValue::Bool(b)) => Mp::Boolean(*b),
        (Type::Number, TfValue::Number(n)) => match n.clone().normalized() {
            Number::Int(i) => Mp::Integer(i.into()),
            Number::UInt(u) => Mp::Integer(u.into()),
            Number::Float(f) => Mp::F64(f),
            Number::Big(s) => Mp::String(s.into()),
        },
        (Type::List(et) | Type::Set(et), TfValue::List(a) | TfValue::Set(a) | TfValue::Tuple(a)) => {
            Mp::Array(a.iter().map(|e| to_mp(e, et)).collect::<Result<_, _>>()?)
        }
        (Type::Tuple(ts), TfValue::List(a) | TfValue::Tuple(a)) if ts.len() == a.len() => {
            Mp::Array(a.iter().zip(ts).map(|(e, t)| to_mp(e, t)).collect::<Result<_, _>>()?)
        }
        (Type::Map(et), TfValue::Map(m) | TfValue::Object(m)) => Mp::Map(
            m.iter().map(|(k, e)| Ok((Mp::String(k.as_str().into()), to_mp(e, et)?))).collect::<Result<_, _>>()?,
        ),
        (Type::Object(attrs), TfValue::Object(m) | TfValue::Map(m)) => Mp::Map(
            attrs
                .iter()
                .map(|(k, at)| {
                    let e = m.get(k).unwrap_or(&TfValue::Null);
                    Ok((Mp::String(k.as_str().into()), to_mp(e, at)?))
                })
                .collect::<Result<_, CodecError>>()?,
        ),
        _ => return Err(bad()),
    })
}

/// The type of a value that provider code built for a `dynamic` attribute
/// without saying its type. Empty collections become collections of dynamic.
pub fn infer_type(v: &TfValue) -> Type {
    let elem =
        |vs: &[TfValue]| vs.iter().find(|e| !e.is_null() && !e.is_unknown()).map(infer_type).unwrap_or(Type::Dynamic);
    match v {
        TfValue::Unknown | TfValue::Null => Type::Dynamic,
        TfValue::Bool(_) => Type::Bool,
        TfValue::Number(_) => Type::Number,
        TfValue::String(_) => Type::String,
        TfValue::List(a) => Type::list(elem(a)),
        TfValue::Set(a) => Type::set(elem(a)),
        TfValue::Tuple(a) => Type::Tuple(a.iter().map(infer_type).collect()),
        TfValue::Map(m) => Type::map(elem(&m.values().cloned().collect::<Vec<_>>())),
        TfValue::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect()),
        TfValue::Typed(t, _) => t.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_is_ext0_and_refined_unknown_decodes() {
        assert_eq!(encode(&TfValue::Unknown, &Type::String).unwrap(), vec![0xd4, 0x00, 0x00]);
        // ext 12 carrying refinements (here: "not null", prefix "ab").
        let refined = [0xc7, 0x05, 0x0c, 0x82, 0x01, 0xc3, 0x02, 0xa2];
        assert_eq!(decode(&refined, &Type::String).unwrap(), TfValue::Unknown);
    }

    #[test]
    fn big_numbers_travel_as_text() {
        let n = TfValue::Number(Number::Big("123456789012345678901234567890.5".into()));
        let bytes = encode(&n, &Type::Number).unwrap();
        assert_eq!(bytes[0], 0xd9, "str8 expected: the number travels as text");
        assert_eq!(decode(&bytes, &Type::Number).unwrap(), n);
        let u = TfValue::Number(Number::UInt(u64::MAX));
        assert_eq!(decode(&encode(&u, &Type::Number).unwrap(), &Type::Number).unwrap(), u);
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let v = TfValue::Typed(Type::list(Type::String), Box::new(TfValue::List(vec![])));
        let bytes = encode(&v, &Type::Dynamic).unwrap();
        assert_eq!(decode(&bytes, &Type::Dynamic).unwrap(), v);
    }

    #[test]
    fn mismatched_value_is_an_error_not_a_panic() {
        let bytes = encode(&TfValue::string("x"), &Type::String).unwrap();
        assert!(decode(&bytes, &Type::Bool).is_err());
        assert!(decode(&[0x92, 0xc3], &Type::list(Type::Bool)).is_err(), "truncated array");
    }

    // ---- property tests: random schemas, random values, round trip ----

    pub(crate) fn arb_type() -> impl Strategy<Value = Type> {
        let leaf = prop_oneof![Just(Type::String), Just(Type::Number), Just(Type::Bool), Just(Type::Dynamic)];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(Type::list),
                inner.clone().prop_map(Type::set),
                inner.clone().prop_map(Type::map),
                prop::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4).prop_map(Type::Object),
                prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
            ]
        })
    }

    fn arb_number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::Int),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Number::UInt),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Number::Float(f).normalized()),
            "[1-9][0-9]{25,40}(\\.[0-9]{1,10})?".prop_map(|s| Number::Big(s).normalized()),
        ]
    }

    fn concrete_type() -> impl Strategy<Value = Type> {
        arb_type().prop_filter("concrete", |t| !contains_dynamic(t))
    }

    fn contains_dynamic(t: &Type) -> bool {
        match t {
            Type::Dynamic => true,
            Type::List(e) | Type::Set(e) | Type::Map(e) => contains_dynamic(e),
            Type::Object(m) => m.values().any(contains_dynamic),
            Type::Tuple(ts) => ts.iter().any(contains_dynamic),
            _ => false,
        }
    }

    pub(crate) fn arb_value(ty: Type) -> BoxedStrategy<TfValue> {
        let special = prop_oneof![Just(TfValue::Null), Just(TfValue::Unknown)];
        let known: BoxedStrategy<TfValue> = match ty {
            Type::String => ".{0,12}".prop_map(TfValue::String).boxed(),
            Type::Number => arb_number().prop_map(TfValue::Number).boxed(),
            Type::Bool => any::<bool>().prop_map(TfValue::Bool).boxed(),
            Type::Dynamic => concrete_type()
                .prop_flat_map(|t| {
                    arb_value(t.clone()).prop_map(move |v| match v {
                        TfValue::Null | TfValue::Unknown => v,
                        v => TfValue::Typed(t.clone(), Box::new(v)),
                    })
                })
                .boxed(),
            Type::List(et) => prop::collection::vec(arb_value(*et), 0..4).prop_map(TfValue::List).boxed(),
            Type::Set(et) => prop::collection::vec(arb_value(*et), 0..4)
                .prop_map(|v| {
                    let mut out: Vec<TfValue> = Vec::new();
                    for e in v {
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                    TfValue::Set(out)
                })
                .boxed(),
            Type::Map(et) => prop::collection::btree_map(".{0,6}", arb_value(*et), 0..4).prop_map(TfValue::Map).boxed(),
            Type::Object(attrs) => {
                let names: Vec<String> = attrs.keys().cloned().collect();
                let vals: Vec<BoxedStrategy<TfValue>> = attrs.into_values().map(arb_value).collect();
                vals.prop_map(move |vs| TfValue::Object(names.iter().cloned().zip(vs).collect())).boxed()
            }
            Type::Tuple(ts) => {
                let vals: Vec<BoxedStrategy<TfValue>> = ts.into_iter().map(arb_value).collect();
                vals.prop_map(TfValue::Tuple).boxed()
            }
        };
        prop_oneof![1 => special, 6 => known].boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn msgpack_round_trips_random_values_of_random_types(
            (ty, v) in arb_type().prop_flat_map(|t| (Just(t.clone()), arb_value(t)))
        ) {
            let bytes = encode(&v, &ty).unwrap();
            let back = decode(&bytes, &ty).unwrap();
            prop_assert_eq!(&back, &v);
            // Encoding is deterministic: the decoded value encodes to the same bytes.
            prop_assert_eq!(encode(&back, &ty).unwrap(), bytes);
        }
    }
}
