//! Attribute validators: small named values with a description (used in the
//! generated docs) that check a known, non-null configuration value and say
//! what to write instead.

use std::net::IpAddr;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::path::AttrPath;
use crate::value::TfValue;

pub trait Validator: Send + Sync {
    /// One sentence for docs, e.g. "Must be one of `a`, `b`."
    fn description(&self) -> String;
    /// Called only with known, non-null values.
    fn validate(&self, path: &AttrPath, value: &TfValue, diags: &mut Diagnostics);
}

fn invalid(path: &AttrPath, detail: String) -> Diagnostic {
    Diagnostic::error("Invalid attribute value", detail).at(path.clone())
}

struct StringCheck<F> {
    description: String,
    check: F,
}

impl<F: Fn(&str) -> Option<String> + Send + Sync> Validator for StringCheck<F> {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn validate(&self, path: &AttrPath, value: &TfValue, diags: &mut Diagnostics) {
        if let Some(s) = value.as_str()
            && let Some(problem) = (self.check)(s)
        {
            diags.push(invalid(path, format!("{path}: {problem}")));
        }
    }
}

fn string_check(
    description: String,
    check: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Arc<dyn Validator> {
    Arc::new(StringCheck { description, check })
}

/// The string must be one of `choices`.
pub fn one_of<const N: usize>(choices: [&str; N]) -> Arc<dyn Validator> {
    let choices: Vec<String> = choices.iter().map(|s| s.to_string()).collect();
    let listed = choices.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let msg = listed.clone();
    string_check(format!("Must be one of {listed}."), move |s| {
        (!choices.iter().any(|c| c == s)).then(|| format!("{s:?} is not allowed; use one of {msg}."))
    })
}

/// String length in characters, or number of elements of a collection.
pub fn length(min: usize, max: usize) -> Arc<dyn Validator> {
    Arc::new(Length { min, max })
}

struct Length {
    min: usize,
    max: usize,
}

impl Validator for Length {
    fn description(&self) -> String {
        format!("Length between {} and {}.", self.min, self.max)
    }
    fn validate(&self, path: &AttrPath, value: &TfValue, diags: &mut Diagnostics) {
        let (n, unit) = match value.untyped() {
            TfValue::String(s) => (s.chars().count(), "characters"),
            TfValue::List(v) | TfValue::Set(v) | TfValue::Tuple(v) => (v.len(), "elements"),
            TfValue::Map(m) => (m.len(), "elements"),
            _ => return,
        };
        if n < self.min || n > self.max {
            diags.push(invalid(
                path,
                format!("{path} has {n} {unit}; it must have between {} and {}.", self.min, self.max),
            ));
        }
    }
}

/// The string must match `pattern`; `explain` says in words what that means.
pub fn regex(pattern: &str, explain: &str) -> Arc<dyn Validator> {
    let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("validator regex {pattern:?}: {e}"));
    let explain = explain.to_string();
    string_check(format!("Must be {explain} (pattern `{pattern}`)."), move |s| {
        (!re.is_match(s)).then(|| format!("{s:?} does not match: {explain}."))
    })
}

/// A number between `min` and `max` inclusive.
pub fn range(min: f64, max: f64) -> Arc<dyn Validator> {
    Arc::new(Range { min, max })
}

struct Range {
    min: f64,
    max: f64,
}

impl Validator for Range {
    fn description(&self) -> String {
        format!("Between {} and {}.", self.min, self.max)
    }
    fn validate(&self, path: &AttrPath, value: &TfValue, diags: &mut Diagnostics) {
        if let TfValue::Number(n) = value.untyped() {
            let x = n.as_f64();
            if !(self.min..=self.max).contains(&x) {
                diags.push(invalid(path, format!("{path} is {n}; it must be between {} and {}.", self.min, self.max)));
            }
        }
    }
}

/// An IPv4 or IPv6 network in CIDR notation with no host bits set (`10.0.0.0/24`).
pub fn cidr() -> Arc<dyn Validator> {
    string_check("An IPv4 or IPv6 network in CIDR notation, e.g. `10.0.0.0/24`.".into(), |s| {
        parse_cidr(s).err().map(|why| format!("{s:?} is not a CIDR network: {why}."))
    })
}

/// Parses `addr/len` and insists the address is the network address.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s.split_once('/').ok_or("write it as address/prefix-length, e.g. 10.0.0.0/24")?;
    let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len.parse().ok().filter(|l| *l <= max).ok_or(format!("prefix length must be 0..={max}"))?;
    let host_bits_set = match addr {
        IpAddr::V4(a) => len < 32 && u32::from(a) & (u32::MAX >> len) != 0,
        IpAddr::V6(a) => len < 128 && u128::from(a) & (u128::MAX >> len) != 0,
    };
    if host_bits_set {
        return Err("host bits are set; use the network address".into());
    }
    Ok((addr, len))
}

/// An Ethernet MAC address written as six colon-separated hex pairs.
pub fn mac() -> Arc<dyn Validator> {
    string_check("A MAC address, e.g. `52:54:00:12:34:56`.".into(), |s| {
        let ok = s.len() == 17
            && s.split(':').count() == 6
            && s.split(':').all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        (!ok)
            .then(|| format!("{s:?} is not a MAC address; write six colon-separated hex pairs like 52:54:00:12:34:56."))
    })
}

/// A UUID in its canonical 8-4-4-4-12 hex form.
pub fn uuid() -> Arc<dyn Validator> {
    string_check("A UUID, e.g. `7c9e6679-7425-40de-944b-e07fc1f90ae7`.".into(), |s| {
        let groups: Vec<&str> = s.split('-').collect();
        let ok = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
        (!ok).then(|| format!("{s:?} is not a UUID; write it as 8-4-4-4-12 hex digits."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(v: &Arc<dyn Validator>, value: TfValue) -> Vec<String> {
        let mut d = Diagnostics::new();
        v.validate(&AttrPath::attr_root("x"), &value, &mut d);
        d.iter().map(|d| d.detail.clone()).collect()
    }
    fn s(v: &str) -> TfValue {
        TfValue::string(v)
    }

    #[test]
    fn each_validator_accepts_good_and_explains_bad_values() {
        let cases: Vec<(Arc<dyn Validator>, TfValue, TfValue, &str)> = vec![
            (one_of(["a", "b"]), s("a"), s("c"), "use one of `a`, `b`"),
            (length(1, 3), s("ab"), s("abcd"), "between 1 and 3"),
            (length(1, 2), TfValue::List(vec![s("a")]), TfValue::List(vec![]), "0 elements"),
            (regex("^[a-z]+$", "lowercase letters only"), s("abc"), s("aB"), "lowercase letters only"),
            (
                range(1.0, 10.0),
                TfValue::Number(crate::Number::Int(3)),
                TfValue::Number(crate::Number::Int(11)),
                "between 1 and 10",
            ),
            (cidr(), s("10.0.0.0/24"), s("10.0.0.1/24"), "host bits"),
            (cidr(), s("fd00::/64"), s("10.0.0.0/33"), "prefix length"),
            (mac(), s("52:54:00:ab:CD:ef"), s("52-54-00-ab-cd-ef"), "six colon-separated"),
            (uuid(), s("7c9e6679-7425-40de-944b-e07fc1f90ae7"), s("7c9e6679742540de944be07fc1f90ae7"), "8-4-4-4-12"),
        ];
        for (v, good, bad, want) in cases {
            assert!(errors(&v, good).is_empty(), "{}", v.description());
            let e = errors(&v, bad);
            assert_eq!(e.len(), 1, "{}", v.description());
            assert!(e[0].contains(want), "{:?} should mention {want:?}", e[0]);
            assert!(!v.description().is_empty());
        }
    }
}
