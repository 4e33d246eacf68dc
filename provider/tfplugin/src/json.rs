//! The JSON encoding Terraform uses for stored state (`RawState`).
//!
//! `UpgradeResourceState` hands the provider each resource's state as JSON,
//! at every plan. Numbers are decoded from their text, so values beyond what
//! an f64 holds survive; `dynamic` values are `{"value": …, "type": …}`.

use std::collections::BTreeMap;

use crate::msgpack::{CodecError, infer_type};
use crate::types::Type;
use crate::value::{Number, TfValue};

/// A parsed JSON document whose numbers keep their text.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// Decodes state JSON of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<TfValue, CodecError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CodecError::Read(format!("state JSON: {e}")))?;
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    p.ws();
    let j = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    from_j(j, ty)
}

/// Encodes a wholly known value as state JSON.
pub fn encode(v: &TfValue, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut out = String::new();
    write(&mut out, v, ty)?;
    Ok(out.into_bytes())
}

fn mismatch(ty: &Type, found: &str) -> CodecError {
    CodecError::Mismatch { expected: ty.to_string(), found: found.to_string() }
}

fn from_j(j: J, ty: &Type) -> Result<TfValue, CodecError> {
    Ok(match (ty, j) {
        (_, J::Null) => TfValue::Null,
        (Type::Dynamic, J::Obj(fields)) => {
            let mut value = None;
            let mut tj = None;
            for (k, v) in fields {
                match k.as_str() {
                    "value" => value = Some(v),
                    "type" => tj = Some(v),
                    _ => {}
                }
            }
            let (Some(value), Some(tj)) = (value, tj) else {
                return Err(CodecError::Dynamic("expected {\"value\", \"type\"}".into()));
            };
            let t = Type::from_json(&to_serde(tj)).map_err(|e| CodecError::Dynamic(e.to_string()))?;
            let inner = from_j(value, &t)?;
            TfValue::Typed(t, Box::new(inner))
        }
        (Type::String, J::Str(s)) => TfValue::String(s),
        (Type::Bool, J::Bool(b)) => TfValue::Bool(b),
        (Type::Number, J::Num(n)) => TfValue::Number(Number::Big(n).normalized()),
        // cty accepts numbers written as strings in state.
        (Type::Number, J::Str(n)) => TfValue::Number(Number::Big(n).normalized()),
        (Type::List(et), J::Arr(a)) => TfValue::List(a.into_iter().map(|e| from_j(e, et)).collect::<Result<_, _>>()?),
        (Type::Set(et), J::Arr(a)) => TfValue::Set(a.into_iter().map(|e| from_j(e, et)).collect::<Result<_, _>>()?),
        (Type::Tuple(ts), J::Arr(a)) if ts.len() == a.len() => {
            TfValue::Tuple(a.into_iter().zip(ts).map(|(e, t)| from_j(e, t)).collect::<Result<_, _>>()?)
        }
        (Type::Map(et), J::Obj(fields)) => {
            TfValue::Map(fields.into_iter().map(|(k, v)| Ok((k, from_j(v, et)?))).collect::<Result<_, CodecError>>()?)
        }
        (Type::Object(attrs), J::Obj(fields)) => {
            let mut out = BTreeMap::new();
            for (k, v) in fields {
                if let Some(at) = attrs.get(&k) {
                    out.insert(k, from_j(v, at)?);
                }
            }
            for name in attrs.keys() {
                out.entry(name.clone()).or_insert(TfValue::Null);
            }
            TfValue::Object(out)
        }
        (ty, j) => {
            let found = match j {
                J::Null => "null",
                J::Bool(_) => "bool",
                J::Num(_) => "number",
                J::Str(_) => "string",
                J::Arr(_) => "array",
                J::Obj(_) => "object",
            };
            return Err(mismatch(ty, found));
        }
    })
}

fn to_serde(j: J) -> serde_json::Value {
    use serde_json::Value as S;
    match j {
        J::Null => S::Null,
        J::Bool(b) => S::Bool(b),
        J::Num(n) => serde_json::from_str(&n).unwrap_or(S::Null),
        J::Str(s) => S::String(s),
        J::Arr(a) => S::Array(a.into_iter().map(to_serde).collect()),
        J::Obj(o) => S::Object(o.into_iter().map(|(k, v)| (k, to_serde(v))).collect()),
    }
}

fn write(out: &mut String, v: &TfValue, ty: &Type) -> Result<(), CodecError> {
    let bad = || mismatch(ty, v.kind());
    match (ty, v) {
        (_, TfValue::Unknown) => return Err(CodecError::Read("unknown values cannot be stored in state".into())),
        (_, TfValue::Null) => out.push_str("null"),
        (Type::Dynamic, v) => {
            let (t, inner) = match v {
                TfValue::Typed(t, inner) => (t.clone(), &**inner),
                other => (infer_type(other), other),
            };
            out.push_str("{\"value\":");
            write(out, inner, &t)?;
            out.push_str(",\"type\":");
            out.push_str(&t.to_json().to_string());
            out.push('}');
        }
        (t, TfValue::Typed(_, inner)) => write(out, inner, t)?,
        (Type::String, TfValue::String(s)) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        (Type::Bool, TfValue::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        (Type::Number, TfValue::Number(n)) => match n {
            Number::Float(f) => out.push_str(&serde_json::Number::from_f64(*f).ok_or_else(bad)?.to_string()),
            n => out.push_str(&n.to_string()),
        },
        (Type::List(et) | Type::Set(et), TfValue::List(a) | TfValue::Set(a) | TfValue::Tuple(a)) => {
            write_arr(out, a.iter().map(|e| (e, &**et)))?
        }
        (Type::Tuple(ts), TfValue::List(a) | TfValue::Tuple(a)) if ts.len() == a.len() => {
            write_arr(out, a.iter().zip(ts))?
        }
        (Type::Map(et), TfValue::Map(m) | TfValue::Object(m)) => write_obj(out, m.iter().map(|(k, e)| (k, e, &**et)))?,
        (Type::Object(attrs), TfValue::Object(m) | TfValue::Map(m)) => {
            write_obj(out, attrs.iter().map(|(k, at)| (k, m.get(k).unwrap_or(&TfValue::Null), at)))?
        }
        _ => return Err(bad()),
    }
    Ok(())
}

fn write_arr<'a>(out: &mut String, items: impl Iterator<Item = (&'a TfValue, &'a Type)>) -> Result<(), CodecError> {
    out.push('[');
    for (i, (e, t)) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, e, t)?;
    }
    out.push(']');
    Ok(())
}

fn write_obj<'a>(
    out: &mut String,
    items: impl Iterator<Item = (&'a String, &'a TfValue, &'a Type)>,
) -> Result<(), CodecError> {
    out.push('{');
    for (i, (k, e, t)) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(k.clone()).to_string());
        out.push(':');
        write(out, e, t)?;
    }
    out.push('}');
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> CodecError {
        CodecError::Read(format!("state JSON at byte {}: {what}", self.i))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Result<J, CodecError> {
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'n') if self.eat("null") => Ok(J::Null),
            Some(b't') if self.eat("true") => Ok(J::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(J::Bool(false)),
            Some(b'"') => self.string().map(J::Str),
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(J::Arr(a));
                }
                loop {
                    self.ws();
                    a.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(J::Arr(a));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expected , or ]"));
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut o = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(J::Obj(o));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(self.err("expected :"));
                    }
                    self.ws();
                    o.push((k, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(J::Obj(o));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expected , or }"));
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
                if text.parse::<f64>().is_err() {
                    return Err(self.err("malformed number"));
                }
                Ok(J::Num(text.to_string()))
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }
    fn string(&mut self) -> Result<String, CodecError> {
        // Find the closing quote, honouring escapes, then let serde_json unescape.
        let start = self.i;
        if !self.eat("\"") {
            return Err(self.err("expected string"));
        }
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    let raw = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad UTF-8"))?;
                    return serde_json::from_str(raw).map_err(|e| self.err(&e.to_string()));
                }
                _ => self.i += 1,
            }
        }
        Err(self.err("unterminated string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::tests::{arb_type, arb_value};
    use proptest::prelude::*;

    #[test]
    fn decodes_state_with_big_numbers_and_dynamic_values() {
        let ty = Type::object([("n", Type::Number), ("d", Type::Dynamic), ("s", Type::set(Type::String))]);
        let v = decode(
            br#"{"n": 123456789012345678901234567890, "d": {"value": ["a"], "type": ["list","string"]}, "s": ["x"], "gone": 1}"#,
            &ty,
        )
        .unwrap();
        assert_eq!(v.get("n"), Some(&TfValue::Number(Number::Big("123456789012345678901234567890".into()))));
        assert_eq!(v.get("d").unwrap().untyped(), &TfValue::List(vec![TfValue::string("a")]));
        assert_eq!(v.get("s"), Some(&TfValue::Set(vec![TfValue::string("x")])));
        assert!(v.get("gone").is_none(), "attributes outside the schema are dropped");
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(decode(b"{\"a\": }", &Type::object([("a", Type::String)])).is_err());
        assert!(decode(b"[1,2", &Type::list(Type::Number)).is_err());
    }

    fn strip_unknown(v: TfValue) -> TfValue {
        match v {
            TfValue::Unknown => TfValue::Null,
            TfValue::List(a) => TfValue::List(a.into_iter().map(strip_unknown).collect()),
            TfValue::Set(a) => {
                let mut out: Vec<TfValue> = Vec::new();
                for e in a.into_iter().map(strip_unknown) {
                    if !out.contains(&e) {
                        out.push(e);
                    }
                }
                TfValue::Set(out)
            }
            TfValue::Tuple(a) => TfValue::Tuple(a.into_iter().map(strip_unknown).collect()),
            TfValue::Map(m) => TfValue::Map(m.into_iter().map(|(k, v)| (k, strip_unknown(v))).collect()),
            TfValue::Object(m) => TfValue::Object(m.into_iter().map(|(k, v)| (k, strip_unknown(v))).collect()),
            TfValue::Typed(t, v) => match strip_unknown(*v) {
                TfValue::Null => TfValue::Null,
                v => TfValue::Typed(t, Box::new(v)),
            },
            v => v,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn state_json_round_trips_random_values(
            (ty, v) in arb_type().prop_flat_map(|t| (Just(t.clone()), arb_value(t)))
        ) {
            let v = strip_unknown(v);
            let bytes = encode(&v, &ty).unwrap();
            let back = decode(&bytes, &ty).unwrap();
            prop_assert_eq!(back, v);
        }
    }
}
