//! Schema-driven value logic shared by every resource: validation walks,
//! planning (defaults, computed → unknown, write-only, attribute modifiers)
//! and post-apply checks. Pure functions over values, so they are unit-tested
//! without Terraform.

use crate::diag::{Diagnostic, Diagnostics};
use crate::modifiers::{ModifyRequest, ModifyResponse};
use crate::path::AttrPath;
use crate::schema::{AttrType, Attribute, Block, BlockNesting, NestedBlock, Nesting};
use crate::value::TfValue;

static NULL: TfValue = TfValue::Null;

fn child<'a>(v: &'a TfValue, name: &str) -> &'a TfValue {
    v.get(name).unwrap_or(&NULL)
}

/// Calls `f` for every attribute of `block` present in `v`, recursing into
/// nested attributes and blocks (set elements are reported at the set's path).
pub fn visit(block: &Block, path: &AttrPath, v: &TfValue, f: &mut dyn FnMut(&Attribute, &AttrPath, &TfValue)) {
    for a in &block.attributes {
        let p = path.attr(&a.name);
        let av = child(v, &a.name);
        f(a, &p, av);
        if let AttrType::Nested(n, attrs) = &a.ty {
            let nb = Block { attributes: attrs.clone(), ..Block::default() };
            for_each_elem(nesting_of(*n), &p, av, &mut |ep, ev| visit(&nb, ep, ev, f));
        }
    }
    for b in &block.blocks {
        let p = path.attr(&b.type_name);
        for_each_elem(b.nesting, &p, child(v, &b.type_name), &mut |ep, ev| visit(&b.block, ep, ev, f));
    }
}

fn nesting_of(n: Nesting) -> BlockNesting {
    match n {
        Nesting::Single => BlockNesting::Single,
        Nesting::List => BlockNesting::List,
        Nesting::Set => BlockNesting::Set,
        Nesting::Map => BlockNesting::Map,
    }
}

fn for_each_elem(n: BlockNesting, p: &AttrPath, v: &TfValue, f: &mut dyn FnMut(&AttrPath, &TfValue)) {
    match (n, v.untyped()) {
        (BlockNesting::Single | BlockNesting::Group, o @ TfValue::Object(_)) => f(p, o),
        (BlockNesting::List, TfValue::List(items)) => items.iter().enumerate().for_each(|(i, e)| f(&p.index(i), e)),
        (BlockNesting::Set, TfValue::Set(items)) => items.iter().for_each(|e| f(p, e)),
        (BlockNesting::Map, TfValue::Map(m)) => m.iter().for_each(|(k, e)| f(&p.key(k), e)),
        _ => {}
    }
}

/// Attribute validators and deprecation warnings over a configuration value.
pub fn validate(block: &Block, config: &TfValue, write_only_allowed: bool) -> Diagnostics {
    let mut diags = Diagnostics::new();
    visit(block, &AttrPath::root(), config, &mut |a, p, v| {
        if v.is_null() {
            return;
        }
        if let Some(msg) = &a.deprecation {
            diags.push(Diagnostic::warning("Deprecated attribute", format!("{p} is deprecated: {msg}")).at(p.clone()));
        }
        if a.write_only && !write_only_allowed {
            diags.push(
                Diagnostic::error(
                    "Write-only attribute not supported by this Terraform",
                    format!("{p} is write-only, which needs Terraform 1.11 or later; upgrade Terraform."),
                )
                .at(p.clone()),
            );
        }
        if v.is_wholly_known() {
            for val in &a.validators {
                val.validate(p, v, &mut diags);
            }
        }
    });
    diags
}

/// A mutable walk over planned values with the matching config and prior values.
type PlanVisitor<'f> = dyn FnMut(&Attribute, &AttrPath, &TfValue, &TfValue, &mut TfValue) + 'f;

fn walk_plan(
    block: &Block,
    path: &AttrPath,
    config: &TfValue,
    prior: &TfValue,
    planned: &mut TfValue,
    f: &mut PlanVisitor<'_>,
) {
    for a in &block.attributes {
        let p = path.attr(&a.name);
        let (c, s) = (child(config, &a.name), child(prior, &a.name));
        let Some(pv) = planned.get_mut(&a.name) else { continue };
        f(a, &p, c, s, pv);
        if let AttrType::Nested(n, attrs) = &a.ty {
            let nb = Block { attributes: attrs.clone(), ..Block::default() };
            walk_elems(nesting_of(*n), &nb, &p, c, s, pv, f);
        }
    }
    for b in &block.blocks {
        let p = path.attr(&b.type_name);
        let (c, s) = (child(config, &b.type_name), child(prior, &b.type_name));
        if let Some(pv) = planned.get_mut(&b.type_name) {
            walk_elems(b.nesting, &b.block, &p, c, s, pv, f);
        }
    }
}

fn walk_elems(
    n: BlockNesting,
    block: &Block,
    p: &AttrPath,
    config: &TfValue,
    prior: &TfValue,
    planned: &mut TfValue,
    f: &mut PlanVisitor<'_>,
) {
    match (n, planned) {
        (BlockNesting::Single | BlockNesting::Group, o @ TfValue::Object(_)) => {
            walk_plan(block, p, config, prior, o, f)
        }
        (BlockNesting::List, TfValue::List(items)) => {
            for (i, e) in items.iter_mut().enumerate() {
                let c = list_elem(config, i);
                let s = list_elem(prior, i);
                walk_plan(block, &p.index(i), c, s, e, f);
            }
        }
        (BlockNesting::Map, TfValue::Map(m)) => {
            for (k, e) in m.iter_mut() {
                let c = map_elem(config, k);
                let s = map_elem(prior, k);
                walk_plan(block, &p.key(k), c, s, e, f);
            }
        }
        // Set elements have no stable identity to pair config and prior with.
        _ => {}
    }
}

fn list_elem(v: &TfValue, i: usize) -> &TfValue {
    match v.untyped() {
        TfValue::List(items) => items.get(i).unwrap_or(&NULL),
        _ => &NULL,
    }
}

fn map_elem<'a>(v: &'a TfValue, k: &str) -> &'a TfValue {
    match v.untyped() {
        TfValue::Map(m) => m.get(k).unwrap_or(&NULL),
        _ => &NULL,
    }
}

/// The outcome of planning one resource change.
#[derive(Debug)]
pub struct Planned {
    pub planned: TfValue,
    pub requires_replace: Vec<AttrPath>,
    pub diagnostics: Diagnostics,
}

/// Plans a create or update: defaults, write-only nulling, computed values
/// that may change become unknown, then attribute plan modifiers.
pub fn plan(block: &Block, prior: &TfValue, proposed: TfValue, config: &TfValue) -> Planned {
    let creating = prior.is_null();
    let root = AttrPath::root();
    let mut planned = proposed;

    walk_plan(block, &root, config, prior, &mut planned, &mut |a, _, c, _, pv| {
        if c.is_null()
            && let Some(d) = &a.default
        {
            *pv = d.clone();
        }
        if a.write_only {
            *pv = TfValue::Null;
        }
    });

    // An update that changes nothing keeps every computed value; otherwise a
    // computed value the configuration does not set may change on apply.
    if creating || planned != *prior {
        walk_plan(block, &root, config, prior, &mut planned, &mut |a, _, c, _, pv| {
            if a.computed && c.is_null() && a.default.is_none() {
                *pv = TfValue::Unknown;
            }
        });
    }

    let mut requires_replace = Vec::new();
    let mut diagnostics = Diagnostics::new();
    walk_plan(block, &root, config, prior, &mut planned, &mut |a, p, c, s, pv| {
        if a.modifiers.is_empty() {
            return;
        }
        let req = ModifyRequest { path: p, config: c, state: s, creating };
        let mut resp = ModifyResponse {
            plan: std::mem::replace(pv, TfValue::Null),
            requires_replace: false,
            diagnostics: Diagnostics::new(),
        };
        for m in &a.modifiers {
            m.modify(&req, &mut resp);
        }
        *pv = resp.plan;
        if resp.requires_replace {
            requires_replace.push(p.clone());
        }
        diagnostics.extend(resp.diagnostics);
    });
    Planned { planned, requires_replace, diagnostics }
}

/// Copies write-only attribute values from the configuration into the value
/// handed to create/update (they are never in the plan itself).
pub fn with_write_only(block: &Block, mut planned: TfValue, config: &TfValue) -> TfValue {
    walk_plan(block, &AttrPath::root(), config, &NULL, &mut planned, &mut |a, _, c, _, pv| {
        if a.write_only {
            *pv = c.clone();
        }
    });
    planned
}

/// Drops write-only values from what will be stored.
pub fn without_write_only(block: &Block, mut v: TfValue) -> TfValue {
    walk_plan(block, &AttrPath::root(), &NULL, &NULL, &mut v, &mut |a, _, _, _, pv| {
        if a.write_only {
            *pv = TfValue::Null;
        }
    });
    v
}

/// After apply every value must be known.
pub fn check_known(block: &Block, v: &TfValue, type_name: &str) -> Diagnostics {
    let mut diags = Diagnostics::new();
    visit(block, &AttrPath::root(), v, &mut |_, p, av| {
        if av.is_unknown() {
            diags.push(
                Diagnostic::error(
                    "Provider left a value unknown after apply",
                    format!("{type_name}: {p} is still unknown after apply. This is a provider bug; please report it."),
                )
                .at(p.clone()),
            );
        }
    });
    diags
}

/// The `timeouts` block of a value, to carry across operations.
pub fn timeouts_of(v: &TfValue, blocks: &[NestedBlock]) -> Option<TfValue> {
    blocks.iter().find(|b| b.type_name == crate::timeouts::BLOCK)?;
    Some(child(v, crate::timeouts::BLOCK).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modifiers::{requires_replace, use_state_for_unknown};
    use crate::schema::Attribute;
    use crate::validators::one_of;

    fn block() -> Block {
        Block::new("")
            .attr(Attribute::string("id").computed().modifier(use_state_for_unknown()))
            .attr(Attribute::string("name").required())
            .attr(Attribute::string("zone").optional().modifier(requires_replace()))
            .attr(
                Attribute::string("kind")
                    .optional()
                    .computed()
                    .default(TfValue::string("small"))
                    .validator(one_of(["small", "large"])),
            )
            .attr(Attribute::string("updated").computed())
            .attr(Attribute::string("secret").optional().write_only())
            .attr(
                Attribute::nested(
                    "disk",
                    Nesting::List,
                    vec![Attribute::number("size").required(), Attribute::string("serial").computed()],
                )
                .optional(),
            )
    }

    fn obj(pairs: &[(&str, TfValue)]) -> TfValue {
        let mut m: std::collections::BTreeMap<String, TfValue> =
            ["id", "name", "zone", "kind", "updated", "secret", "disk"]
                .iter()
                .map(|k| (k.to_string(), TfValue::Null))
                .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.clone());
        }
        TfValue::Object(m)
    }
    fn s(x: &str) -> TfValue {
        TfValue::string(x)
    }

    #[test]
    fn create_marks_computed_unknown_applies_defaults_and_nulls_write_only() {
        let config = obj(&[("name", s("a")), ("secret", s("hunter2"))]);
        let disk = TfValue::List(vec![TfValue::object([
            ("size", TfValue::Number(crate::Number::Int(5))),
            ("serial", TfValue::Null),
        ])]);
        let config = match config {
            TfValue::Object(mut m) => {
                m.insert("disk".into(), disk.clone());
                TfValue::Object(m)
            }
            _ => unreachable!(),
        };
        let p = plan(&block(), &TfValue::Null, config.clone(), &config);
        assert_eq!(p.planned.get("id"), Some(&TfValue::Unknown));
        assert_eq!(p.planned.get("updated"), Some(&TfValue::Unknown));
        assert_eq!(p.planned.get("kind"), Some(&s("small")));
        assert_eq!(p.planned.get("secret"), Some(&TfValue::Null));
        assert_eq!(p.planned.at(&AttrPath::attr_root("disk").index(0).attr("serial")), Some(&TfValue::Unknown));
        assert!(p.requires_replace.is_empty());
        let with = with_write_only(&block(), p.planned, &config);
        assert_eq!(with.get("secret"), Some(&s("hunter2")));
    }

    #[test]
    fn unchanged_update_keeps_state_and_changed_one_keeps_stable_ids() {
        let prior = obj(&[("id", s("1")), ("name", s("a")), ("kind", s("small")), ("updated", s("t1"))]);
        let config = obj(&[("name", s("a"))]);
        let proposed = obj(&[("id", s("1")), ("name", s("a")), ("kind", s("small")), ("updated", s("t1"))]);
        let p = plan(&block(), &prior, proposed.clone(), &config);
        assert_eq!(p.planned, prior, "no change planned");

        let config = obj(&[("name", s("b"))]);
        let proposed = obj(&[("id", s("1")), ("name", s("b")), ("kind", s("small")), ("updated", s("t1"))]);
        let p = plan(&block(), &prior, proposed, &config);
        assert_eq!(p.planned.get("id"), Some(&s("1")), "use_state_for_unknown keeps the id");
        assert_eq!(p.planned.get("updated"), Some(&TfValue::Unknown));
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn requires_replace_reports_the_path() {
        let prior = obj(&[("id", s("1")), ("name", s("a")), ("zone", s("z1")), ("kind", s("small"))]);
        let config = obj(&[("name", s("a")), ("zone", s("z2"))]);
        let proposed = obj(&[("id", s("1")), ("name", s("a")), ("zone", s("z2")), ("kind", s("small"))]);
        let p = plan(&block(), &prior, proposed, &config);
        assert_eq!(p.requires_replace, vec![AttrPath::attr_root("zone")]);
    }

    #[test]
    fn validation_points_at_the_attribute() {
        let d = validate(&block(), &obj(&[("name", s("a")), ("kind", s("huge"))]), true);
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].path, Some(AttrPath::attr_root("kind")));
        let d = validate(&block(), &obj(&[("name", s("a")), ("secret", s("x"))]), false);
        assert!(d.0[0].detail.contains("Terraform 1.11"));
        // Unknown values are not validated.
        assert!(validate(&block(), &obj(&[("kind", TfValue::Unknown)]), true).is_empty());
    }

    #[test]
    fn unknown_after_apply_is_reported() {
        let d = check_known(&block(), &obj(&[("id", TfValue::Unknown)]), "x_thing");
        assert_eq!(d.0[0].path, Some(AttrPath::attr_root("id")));
    }
}
