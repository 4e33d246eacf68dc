//! Inspection rules as data. After the agent reports a machine's facts
//! (inventory plus each NIC's LLDP neighbour), the site's rules decide what
//! that means: a name, a resource class, traits, properties, and for each
//! interface its physical network and the switch port it is cabled to —
//! translating port names where a switch's LLDP says `TenGigabitEthernet 1/0/1`
//! but its CLI wants `Te1/0/1`. Rules are plain JSON/TOML an operator edits;
//! evaluation is pure, so it is tested without any machine.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule: when every condition holds, apply every action (in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

/// A test on the facts; `field` is a JSON pointer such as `/cpus` or `/gpus/0/vendor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    Eq {
        field: String,
        value: Value,
    },
    Ne {
        field: String,
        value: Value,
    },
    Ge {
        field: String,
        value: f64,
    },
    Le {
        field: String,
        value: f64,
    },
    /// The field is an array containing `value`, or a string containing it.
    Contains {
        field: String,
        value: Value,
    },
    /// The field is a string matching the regular expression.
    Matches {
        field: String,
        pattern: String,
    },
    Exists {
        field: String,
    },
    /// Some element of the array at `field` has `key` equal to `value` (e.g. any GPU from nvidia).
    Any {
        field: String,
        key: String,
        value: Value,
    },
}

/// A change to the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// `template` with `{/pointer}` placeholders, e.g. `"r{/location/rack}-{/serial}"`.
    SetName {
        template: String,
    },
    SetResourceClass {
        value: String,
    },
    AddTrait {
        value: String,
    },
    RemoveTrait {
        value: String,
    },
    /// Set property `key` to a literal `value`, or to the fact at `from`.
    SetProperty {
        key: String,
        #[serde(default)]
        value: Option<Value>,
        #[serde(default)]
        from: Option<String>,
    },
    /// For interfaces whose LLDP neighbour's system name matches `switch`,
    /// set the physical network.
    SetPhysicalNetwork {
        switch: String,
        physical_network: String,
    },
    /// For every interface with an LLDP neighbour: switch = its system name,
    /// port = its port ID translated by the first matching `(pattern, replacement)`.
    SetSwitchPortFromLldp {
        #[serde(default)]
        translate: Vec<(String, String)>,
    },
    /// The machine's BMC (what discovery needs to enroll a machine it found):
    /// `driver` `redfish` or `ipmi`, `address` a template like
    /// `"https://bmc-{/serial}.mgmt.example.org"`.
    SetBmc {
        driver: String,
        address: String,
        username: String,
    },
}

/// A BMC the rules named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcOutcome {
    pub driver: String,
    pub address: String,
    pub username: String,
}

/// The outcome of the rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub name: Option<String>,
    pub resource_class: Option<String>,
    pub traits_added: Vec<String>,
    pub traits_removed: Vec<String>,
    pub properties: serde_json::Map<String, Value>,
    /// Per MAC: (physical network, switch, port) when the rules set them.
    pub interfaces: Vec<InterfaceOutcome>,
    /// Names of the rules that applied, in order.
    pub applied: Vec<String>,
    pub bmc: Option<BmcOutcome>,
    /// Facts the rules would have used but refused, and why (an LLDP port
    /// name that is not a name).
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceOutcome {
    pub mac: String,
    pub physical_network: Option<String>,
    pub switch: Option<String>,
    pub port: Option<String>,
}

/// A rule set that failed to load, saying which rule and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// Parse and check a rule set (JSON array). Regexes and pointers are checked
/// here, so a bad rule is refused when loaded, not when a machine hits it.
pub fn load(json: &str) -> Result<Vec<Rule>, RuleError> {
    let rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| RuleError(format!("inspection rules: {e}")))?;
    for r in &rules {
        let bad = |m: String| RuleError(format!("rule {:?}: {m}", r.name));
        for c in &r.conditions {
            let field = match c {
                Condition::Eq { field, .. }
                | Condition::Ne { field, .. }
                | Condition::Ge { field, .. }
                | Condition::Le { field, .. }
                | Condition::Contains { field, .. }
                | Condition::Exists { field }
                | Condition::Any { field, .. } => field,
                Condition::Matches { field, pattern } => {
                    Regex::new(pattern).map_err(|e| bad(format!("pattern {pattern:?}: {e}")))?;
                    field
                }
            };
            if !field.starts_with('/') {
                return Err(bad(format!("field {field:?} must be a JSON pointer like /cpus")));
            }
        }
        for a in &r.actions {
            match a {
                Action::SetProperty { value: None, from: None, key } => {
                    return Err(bad(format!("set_property {key:?} needs value or from")));
                }
                Action::SetSwitchPortFromLldp { translate } => {
                    for (p, _) in translate {
                        Regex::new(p).map_err(|e| bad(format!("translate pattern {p:?}: {e}")))?;
                    }
                }
                Action::SetPhysicalNetwork { switch, .. } => {
                    Regex::new(switch).map_err(|e| bad(format!("switch pattern {switch:?}: {e}")))?;
                }
                Action::SetBmc { driver, address, username } => {
                    if !matches!(driver.as_str(), "redfish" | "ipmi") {
                        return Err(bad(format!("set_bmc driver {driver:?} must be redfish or ipmi")));
                    }
                    if address.is_empty() || username.is_empty() {
                        return Err(bad("set_bmc needs an address and a username".into()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(rules)
}

fn holds(c: &Condition, facts: &Value) -> bool {
    match c {
        Condition::Eq { field, value } => facts.pointer(field) == Some(value),
        Condition::Ne { field, value } => facts.pointer(field) != Some(value),
        Condition::Ge { field, value } => facts.pointer(field).and_then(Value::as_f64).is_some_and(|v| v >= *value),
        Condition::Le { field, value } => facts.pointer(field).and_then(Value::as_f64).is_some_and(|v| v <= *value),
        Condition::Contains { field, value } => match (facts.pointer(field), value) {
            (Some(Value::Array(a)), v) => a.contains(v),
            (Some(Value::String(s)), Value::String(v)) => s.contains(v.as_str()),
            _ => false,
        },
        Condition::Matches { field, pattern } => facts
            .pointer(field)
            .and_then(Value::as_str)
            .is_some_and(|s| Regex::new(pattern).is_ok_and(|r| r.is_match(s))),
        Condition::Exists { field } => facts.pointer(field).is_some_and(|v| !v.is_null()),
        Condition::Any { field, key, value } => {
            facts.pointer(field).and_then(Value::as_array).is_some_and(|a| a.iter().any(|e| e.get(key) == Some(value)))
        }
    }
}

fn render(template: &str, facts: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{/") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else { break };
        let pointer = &rest[start + 1..start + end];
        match facts.pointer(pointer) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn translate(port: &str, rules: &[(String, String)]) -> String {
    for (pattern, replacement) in rules {
        if let Ok(r) = Regex::new(pattern)
            && r.is_match(port)
        {
            return r.replace(port, replacement.as_str()).into_owned();
        }
    }
    port.to_string()
}

fn iface<'a>(out: &'a mut Outcome, mac: &str) -> &'a mut InterfaceOutcome {
    if let Some(i) = out.interfaces.iter().position(|i| i.mac == mac) {
        return &mut out.interfaces[i];
    }
    out.interfaces.push(InterfaceOutcome { mac: mac.into(), ..Default::default() });
    out.interfaces.last_mut().expect("just pushed")
}

/// Apply `rules` to `facts` (the agent's inventory as JSON, NICs under
/// `/nics` with `mac` and an optional `lldp` object: `system_name`, `port_id`).
pub fn evaluate(rules: &[Rule], facts: &Value) -> Outcome {
    let mut out = Outcome::default();
    let nics: Vec<&Value> =
        facts.pointer("/nics").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    for rule in rules.iter().filter(|r| r.conditions.iter().all(|c| holds(c, facts))) {
        out.applied.push(rule.name.clone());
        for a in &rule.actions {
            match a {
                Action::SetName { template } => out.name = Some(render(template, facts)),
                Action::SetResourceClass { value } => out.resource_class = Some(value.clone()),
                Action::AddTrait { value } => {
                    out.traits_removed.retain(|t| t != value);
                    if !out.traits_added.contains(value) {
                        out.traits_added.push(value.clone());
                    }
                }
                Action::RemoveTrait { value } => {
                    out.traits_added.retain(|t| t != value);
                    if !out.traits_removed.contains(value) {
                        out.traits_removed.push(value.clone());
                    }
                }
                Action::SetProperty { key, value, from } => {
                    let v = match (value, from) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(p)) => facts.pointer(p).cloned(),
                        (None, None) => None,
                    };
                    if let Some(v) = v {
                        out.properties.insert(key.clone(), v);
                    }
                }
                Action::SetPhysicalNetwork { switch, physical_network } => {
                    let Ok(re) = Regex::new(switch) else { continue };
                    for nic in &nics {
                        let (Some(mac), Some(sw)) =
                            (nic["mac"].as_str(), nic.pointer("/lldp/system_name").and_then(Value::as_str))
                        else {
                            continue;
                        };
                        if re.is_match(sw) {
                            iface(&mut out, mac).physical_network = Some(physical_network.clone());
                        }
                    }
                }
                Action::SetBmc { driver, address, username } => {
                    out.bmc = Some(BmcOutcome {
                        driver: driver.clone(),
                        address: render(address, facts),
                        username: username.clone(),
                    });
                }
                Action::SetSwitchPortFromLldp { translate: rules } => {
                    for nic in &nics {
                        let Some(mac) = nic["mac"].as_str() else { continue };
                        let sw = nic.pointer("/lldp/system_name").and_then(Value::as_str);
                        let port = nic.pointer("/lldp/port_id").and_then(Value::as_str);
                        if let (Some(sw), Some(port)) = (sw, port) {
                            // What a neighbour says goes to switches' command
                            // lines later: only names that are names.
                            let port = translate(port, rules);
                            if let Err(e) = crate::names::check(sw).and(crate::names::switch_port(&port)) {
                                out.refused.push(format!("NIC {mac}: LLDP neighbour {sw:?} port {port:?}: {e}"));
                                continue;
                            }
                            let i = iface(&mut out, mac);
                            i.switch = Some(sw.to_string());
                            i.port = Some(port);
                        }
                    }
                }
            }
        }
    }
    out.traits_added.sort();
    out.traits_removed.sort();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lldp_names_that_are_not_names_are_refused() {
        let rules = load(r#"[{"name": "cabling", "actions": [{"action": "set_switch_port_from_lldp"}]}]"#).unwrap();
        let facts = json!({"nics": [
            {"mac": "52:54:00:00:00:01", "lldp": {"system_name": "leaf-1", "port_id": "Te1/0/1\nreload"}},
            {"mac": "52:54:00:00:00:02", "lldp": {"system_name": "leaf 1; id", "port_id": "Te1/0/2"}},
            {"mac": "52:54:00:00:00:03", "lldp": {"system_name": "leaf-1", "port_id": "Te1/0/3"}},
        ]});
        let out = evaluate(&rules, &facts);
        let set: Vec<(&str, Option<&str>)> =
            out.interfaces.iter().map(|i| (i.mac.as_str(), i.port.as_deref())).collect();
        assert_eq!(set, [("52:54:00:00:00:03", Some("Te1/0/3"))]);
        assert_eq!(out.refused.len(), 2, "{:?}", out.refused);
        assert!(
            out.refused[0].contains("52:54:00:00:00:01") && out.refused[1].contains("leaf 1; id"),
            "{:?}",
            out.refused
        );
    }

    #[test]
    fn bmc_rules_name_the_bmc_from_facts() {
        let rules = load(
            r#"[{"name": "bmc by serial", "conditions": [{"op": "matches", "field": "/serial", "pattern": "^CZ"}],
                 "actions": [{"action": "set_bmc", "driver": "redfish", "address": "https://bmc-{/serial}.mgmt", "username": "root"}]}]"#,
        )
        .unwrap();
        let out = evaluate(&rules, &json!({"serial": "CZ2041"}));
        assert_eq!(
            out.bmc,
            Some(BmcOutcome {
                driver: "redfish".into(),
                address: "https://bmc-CZ2041.mgmt".into(),
                username: "root".into()
            })
        );
        assert_eq!(evaluate(&rules, &json!({"serial": "XX1"})).bmc, None);
        let e = load(
            r#"[{"name": "r", "actions": [{"action": "set_bmc", "driver": "ilo", "address": "a", "username": "u"}]}]"#,
        )
        .unwrap_err();
        assert!(e.0.contains("redfish or ipmi") && e.0.contains("\"r\""), "{e}");
    }

    fn facts() -> Value {
        json!({
            "cpus": 128, "cpu_model": "AMD EPYC 7713", "memory_mib": 1048576, "serial": "CZ2041",
            "location": {"rack": "r12"},
            "disks": [{"name": "nvme0n1", "size_bytes": 3840755982336u64}],
            "gpus": [{"vendor": "nvidia", "device_id": "0x20b5"}],
            "nics": [
                {"mac": "b8:59:9f:10:20:30", "lldp": {"system_name": "leaf-r12-a", "port_id": "TenGigabitEthernet 1/0/7"}},
                {"mac": "b8:59:9f:10:20:31", "lldp": {"system_name": "ib-spine-1", "port_id": "Ethernet12"}},
                {"mac": "b8:59:9f:10:20:32"}
            ]
        })
    }

    const RULES: &str = r#"[
      {"name": "gpu nodes", "conditions": [{"op": "any", "field": "/gpus", "key": "vendor", "value": "nvidia"}, {"op": "ge", "field": "/memory_mib", "value": 524288}],
       "actions": [{"action": "set_resource_class", "value": "baremetal.gpu"}, {"action": "add_trait", "value": "gpu"},
                   {"action": "set_name", "template": "gpu-{/location/rack}-{/serial}"},
                   {"action": "set_property", "key": "cpus", "from": "/cpus"}]},
      {"name": "small memory", "conditions": [{"op": "le", "field": "/memory_mib", "value": 65536}], "actions": [{"action": "add_trait", "value": "small"}]},
      {"name": "cabling", "actions": [
         {"action": "set_switch_port_from_lldp", "translate": [["^TenGigabitEthernet ?(.*)$", "Te$1"]]},
         {"action": "set_physical_network", "switch": "^leaf-", "physical_network": "ctlplane"}]},
      {"name": "epyc", "conditions": [{"op": "matches", "field": "/cpu_model", "pattern": "EPYC"}], "actions": [{"action": "add_trait", "value": "avx2"}]},
      {"name": "no ib", "conditions": [{"op": "exists", "field": "/nope"}], "actions": [{"action": "remove_trait", "value": "ib"}]}
    ]"#;

    #[test]
    fn rules_turn_facts_into_a_machine() {
        let rules = load(RULES).unwrap();
        let o = evaluate(&rules, &facts());
        assert_eq!(o.applied, ["gpu nodes", "cabling", "epyc"]);
        assert_eq!(o.resource_class.as_deref(), Some("baremetal.gpu"));
        assert_eq!(o.name.as_deref(), Some("gpu-r12-CZ2041"));
        assert_eq!(o.traits_added, ["avx2", "gpu"]);
        assert!(o.traits_removed.is_empty());
        assert_eq!(o.properties["cpus"], 128);
        assert_eq!(
            o.interfaces,
            vec![
                InterfaceOutcome {
                    mac: "b8:59:9f:10:20:30".into(),
                    physical_network: Some("ctlplane".into()),
                    switch: Some("leaf-r12-a".into()),
                    port: Some("Te1/0/7".into())
                },
                InterfaceOutcome {
                    mac: "b8:59:9f:10:20:31".into(),
                    physical_network: None,
                    switch: Some("ib-spine-1".into()),
                    port: Some("Ethernet12".into())
                },
            ],
            "the NIC without an LLDP neighbour is left alone; untranslated ports pass through"
        );
    }

    #[test]
    fn bad_rules_are_refused_on_load_with_the_rule_named() {
        let e =
            load(r#"[{"name": "x", "conditions": [{"op": "matches", "field": "/a", "pattern": "("}], "actions": []}]"#)
                .unwrap_err();
        assert!(e.0.starts_with("rule \"x\": pattern"), "{e}");
        let e = load(r#"[{"name": "y", "conditions": [{"op": "eq", "field": "cpus", "value": 1}], "actions": []}]"#)
            .unwrap_err();
        assert!(e.0.contains("JSON pointer"), "{e}");
        let e = load(r#"[{"name": "z", "actions": [{"action": "set_property", "key": "k"}]}]"#).unwrap_err();
        assert!(e.0.contains("needs value or from"), "{e}");
        let e = load(r#"[{"name": "w", "actions": [{"action": "paint_it_black"}]}]"#).unwrap_err();
        assert!(e.0.contains("unknown variant"), "{e}");
    }

    #[test]
    fn conditions() {
        let f = facts();
        let c = |j: Value| holds(&serde_json::from_value(j).unwrap(), &f);
        assert!(c(json!({"op": "eq", "field": "/cpus", "value": 128})));
        assert!(c(json!({"op": "ne", "field": "/cpus", "value": 64})));
        assert!(!c(json!({"op": "ge", "field": "/cpu_model", "value": 1})), "non-numbers never compare");
        assert!(c(json!({"op": "contains", "field": "/cpu_model", "value": "EPYC"})));
        assert!(!c(json!({"op": "exists", "field": "/nics/2/lldp"})));
        assert!(c(json!({"op": "exists", "field": "/nics/0/lldp/port_id"})));
    }
}
