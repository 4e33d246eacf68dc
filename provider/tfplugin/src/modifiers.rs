//! Attribute plan modifiers: small named values that adjust a planned
//! attribute, each with a description that also lands in the generated docs.

use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::path::AttrPath;
use crate::value::TfValue;

/// What a modifier sees for one attribute.
#[derive(Debug)]
pub struct ModifyRequest<'a> {
    pub path: &'a AttrPath,
    /// The attribute in configuration.
    pub config: &'a TfValue,
    /// The attribute in prior state (null when the resource is being created).
    pub state: &'a TfValue,
    /// True when there is no prior state: the resource is being created.
    pub creating: bool,
}

/// What a modifier may change.
#[derive(Debug)]
pub struct ModifyResponse {
    pub plan: TfValue,
    pub requires_replace: bool,
    pub diagnostics: Diagnostics,
}

pub trait PlanModifier: Send + Sync {
    /// One sentence for docs, e.g. "Changing this forces a new resource."
    fn description(&self) -> String;
    fn modify(&self, req: &ModifyRequest<'_>, resp: &mut ModifyResponse);
}

/// Changing the attribute replaces the resource instead of updating it.
pub fn requires_replace() -> Arc<dyn PlanModifier> {
    Arc::new(RequiresReplace)
}

struct RequiresReplace;

impl PlanModifier for RequiresReplace {
    fn description(&self) -> String {
        "Changing this forces a new resource to be created.".into()
    }
    fn modify(&self, req: &ModifyRequest<'_>, resp: &mut ModifyResponse) {
        if !req.creating && resp.plan != *req.state {
            resp.requires_replace = true;
        }
    }
}

/// Replace only when `pred(state, plan)` says so.
pub fn requires_replace_if(
    description: &str,
    pred: impl Fn(&TfValue, &TfValue) -> bool + Send + Sync + 'static,
) -> Arc<dyn PlanModifier> {
    Arc::new(RequiresReplaceIf { description: description.to_string(), pred: Box::new(pred) })
}

type ReplacePredicate = Box<dyn Fn(&TfValue, &TfValue) -> bool + Send + Sync>;

struct RequiresReplaceIf {
    description: String,
    pred: ReplacePredicate,
}

impl PlanModifier for RequiresReplaceIf {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn modify(&self, req: &ModifyRequest<'_>, resp: &mut ModifyResponse) {
        if !req.creating && resp.plan != *req.state && (self.pred)(req.state, &resp.plan) {
            resp.requires_replace = true;
        }
    }
}

/// A computed value that does not change after creation: plan the prior
/// state's value instead of "known after apply".
pub fn use_state_for_unknown() -> Arc<dyn PlanModifier> {
    Arc::new(UseStateForUnknown)
}

struct UseStateForUnknown;

impl PlanModifier for UseStateForUnknown {
    fn description(&self) -> String {
        "The value does not change after creation.".into()
    }
    fn modify(&self, req: &ModifyRequest<'_>, resp: &mut ModifyResponse) {
        if !req.creating && resp.plan.is_unknown() && req.config.is_null() && !req.state.is_null() {
            resp.plan = req.state.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &Arc<dyn PlanModifier>, state: TfValue, plan: TfValue, creating: bool) -> ModifyResponse {
        let path = AttrPath::attr_root("a");
        let req = ModifyRequest { path: &path, config: &TfValue::Null, state: &state, creating };
        let mut resp = ModifyResponse { plan, requires_replace: false, diagnostics: Diagnostics::new() };
        m.modify(&req, &mut resp);
        resp
    }

    #[test]
    fn requires_replace_only_on_change_of_existing_resource() {
        let m = requires_replace();
        assert!(run(&m, TfValue::string("a"), TfValue::string("b"), false).requires_replace);
        assert!(!run(&m, TfValue::string("a"), TfValue::string("a"), false).requires_replace);
        assert!(!run(&m, TfValue::Null, TfValue::string("b"), true).requires_replace);
        assert!(run(&m, TfValue::string("a"), TfValue::Unknown, false).requires_replace);
    }

    #[test]
    fn requires_replace_if_consults_the_predicate() {
        let grow_only = requires_replace_if("Shrinking forces replacement.", |s, p| match (s, p) {
            (TfValue::Number(a), TfValue::Number(b)) => b.as_f64() < a.as_f64(),
            _ => false,
        });
        let n = |i| TfValue::Number(crate::Number::Int(i));
        assert!(run(&grow_only, n(10), n(5), false).requires_replace);
        assert!(!run(&grow_only, n(10), n(20), false).requires_replace);
    }

    #[test]
    fn use_state_for_unknown_keeps_prior_value() {
        let m = use_state_for_unknown();
        assert_eq!(run(&m, TfValue::string("id-1"), TfValue::Unknown, false).plan, TfValue::string("id-1"));
        assert_eq!(run(&m, TfValue::Null, TfValue::Unknown, true).plan, TfValue::Unknown);
    }
}
