//! The `timeouts` block: how long create, update and delete may take.
//!
//! A resource opts in by returning [`Timeouts`] from `Resource::timeouts`; the
//! framework then adds a `timeouts { create = "30m" … }` block to its schema,
//! validates the durations, keeps the block out of the resource's own state
//! handling, and hands each operation its deadline through `Ctx::deadline`.
//! Durations use Terraform's (Go's) syntax: `90s`, `45m`, `1h30m`.

use std::time::Duration;

use crate::diag::Diagnostics;
use crate::path::AttrPath;
use crate::schema::{Attribute, Block, BlockNesting, NestedBlock};
use crate::validators::Validator;
use crate::value::TfValue;

pub const BLOCK: &str = "timeouts";

/// Default durations; `None` means the operation has no `timeouts` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub create: Option<Duration>,
    pub update: Option<Duration>,
    pub delete: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

impl Timeouts {
    pub fn default_for(&self, op: Op) -> Option<Duration> {
        match op {
            Op::Create => self.create,
            Op::Update => self.update,
            Op::Delete => self.delete,
        }
    }

    /// The block added to the resource schema.
    pub fn block(&self) -> NestedBlock {
        let mut b = Block::new("How long each operation may take before Terraform reports it as failed.");
        for op in [Op::Create, Op::Update, Op::Delete] {
            if let Some(d) = self.default_for(op) {
                b = b.attr(
                    Attribute::string(op.name())
                        .optional()
                        .description(&format!(
                            "Time allowed for {}, e.g. `30m` or `1h30m`. Default `{}`.",
                            op.name(),
                            format_duration(d)
                        ))
                        .validator(std::sync::Arc::new(DurationValidator)),
                );
            }
        }
        NestedBlock::new(BLOCK, BlockNesting::Single, b)
    }

    /// The configured or default duration of `op`, read from a resource value
    /// that carries the `timeouts` block.
    pub fn resolve(&self, op: Op, resource: &TfValue) -> Option<Duration> {
        let configured = resource
            .get(BLOCK)
            .and_then(|t| t.get(op.name()))
            .and_then(TfValue::as_str)
            .and_then(|s| parse_duration(s).ok());
        configured.or(self.default_for(op))
    }
}

struct DurationValidator;

impl Validator for DurationValidator {
    fn description(&self) -> String {
        "A duration such as `90s`, `45m` or `1h30m`.".into()
    }
    fn validate(&self, path: &AttrPath, value: &TfValue, diags: &mut Diagnostics) {
        if let Some(s) = value.as_str()
            && let Err(e) = parse_duration(s)
        {
            diags.push(
                crate::Diagnostic::error(
                    "Invalid duration",
                    format!("{path}: {e}; write e.g. \"90s\", \"45m\" or \"1h30m\"."),
                )
                .at(path.clone()),
            );
        }
    }
}

/// Parses Go duration syntax (`1h30m`, `2.5s`, `300ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!("{s:?} is not a duration"));
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| format!("{s:?} is not a duration"))?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "" => return Err(format!("{s:?} needs a unit (h, m, s, ms)")),
            u => return Err(format!("{s:?} has unknown unit {u:?}")),
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    Ok(Duration::from_secs_f64(total))
}

pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 || out.is_empty() {
        out += &format!("{sec}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert!(parse_duration("10").unwrap_err().contains("unit"));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn configured_value_overrides_default() {
        let t = Timeouts { create: Some(Duration::from_secs(600)), ..Timeouts::default() };
        let v = TfValue::object([(BLOCK, TfValue::object([("create", TfValue::string("2m"))]))]);
        assert_eq!(t.resolve(Op::Create, &v), Some(Duration::from_secs(120)));
        assert_eq!(t.resolve(Op::Create, &TfValue::object([(BLOCK, TfValue::Null)])), Some(Duration::from_secs(600)));
        assert_eq!(t.resolve(Op::Delete, &v), None);
    }
}
