//! What inspection learns: the agent's inventory turned into a machine's
//! properties, interfaces and traits (keeping what an operator set), with
//! the site's inspection rules applied on top; and which disk an image goes on.

use serde_json::{Value, json};
use tundra_api::machines::{Interface, Location, Machine};
use tundra_engine::inspection::Outcome;
use tundra_store::{Actor, MachineChanges};

use crate::handle::Conductor;

/// The disks inspection found: (name, size in bytes if known).
pub fn disks(m: &Machine) -> Vec<(String, Option<u64>)> {
    let Some(disks) = m.properties["disks"].as_array() else { return Vec::new() };
    disks.iter().filter_map(|d| Some((d["name"].as_str()?.to_string(), d["size_bytes"].as_u64()))).collect()
}

/// The disk images go onto: `properties.root_disk`, else the first
/// non-rotational disk inspection found, else the first disk.
pub fn root_disk(m: &Machine) -> Option<String> {
    if let Some(d) = m.properties["root_disk"].as_str() {
        return Some(d.to_string());
    }
    let disks = m.properties["disks"].as_array()?;
    let name = |d: &Value| d["name"].as_str().map(str::to_string);
    disks.iter().find(|d| d["rotational"] == json!(false)).and_then(name).or_else(|| disks.first().and_then(name))
}

/// What the agent's inventory and the rules' outcome make of a machine:
/// (properties, interfaces, traits), keeping what an operator set.
pub(crate) fn facts_to_machine(
    props: &Value,
    interfaces: &[Interface],
    traits: &[String],
    inv: &Value,
    outcome: &Outcome,
) -> (Value, Vec<Interface>, Vec<String>) {
    let mut props = props.as_object().cloned().unwrap_or_default();
    for key in ["cpus", "cpu_model", "memory_mib", "serial", "system_vendor", "system_product"] {
        if let Some(v) = inv.get(key) {
            props.insert(key.into(), v.clone());
        }
    }
    let disks: Vec<Value> = inv["disks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| json!({"name": d["name"], "size_bytes": d["size_bytes"], "rotational": d["rotational"]}))
                .collect()
        })
        .unwrap_or_default();
    props.insert("disks".into(), Value::Array(disks));
    let gpus = inv["gpus"].as_array().cloned().unwrap_or_default();
    props.insert("gpus".into(), json!(gpus.len()));
    props.insert("inspected_at".into(), json!(tundra_store::now()));
    props.insert("inspection_rules_applied".into(), json!(outcome.applied));
    for (k, v) in &outcome.properties {
        props.insert(k.clone(), v.clone());
    }
    // Interfaces: keep what an operator set, add every Ethernet NIC the agent saw.
    let mut interfaces = interfaces.to_vec();
    for nic in inv["nics"].as_array().into_iter().flatten() {
        let Some(mac) = nic["mac"].as_str().map(str::to_ascii_lowercase) else { continue };
        if mac.len() != 17 {
            continue; // InfiniBand hardware addresses are not MACs.
        }
        if !interfaces.iter().any(|i| i.mac == mac) {
            interfaces.push(Interface {
                mac,
                physical_network: None,
                switch: None,
                port: None,
                pxe: false,
                address: None,
            });
        }
    }
    for o in &outcome.interfaces {
        if let Some(i) = interfaces.iter_mut().find(|i| i.mac == o.mac) {
            if o.physical_network.is_some() {
                i.physical_network = o.physical_network.clone();
            }
            if o.switch.is_some() {
                i.switch = o.switch.clone();
                i.port = o.port.clone();
            }
        }
    }
    let mut traits = traits.to_vec();
    traits.retain(|t| !outcome.traits_removed.contains(t));
    for t in &outcome.traits_added {
        if !traits.contains(t) {
            traits.push(t.clone());
        }
    }
    traits.sort();
    (Value::Object(props), interfaces, traits)
}

pub(crate) fn facts(inv: &Value, name: Option<&str>, location: &Location) -> Value {
    let mut facts = inv.clone();
    if let Some(o) = facts.as_object_mut() {
        o.insert("name".into(), json!(name));
        o.insert("location".into(), serde_json::to_value(location).unwrap_or_default());
    }
    facts
}

/// Turn the agent's inventory into the machine's properties and interfaces,
/// then let the site's inspection rules name and classify it.
pub(crate) async fn apply(c: &Conductor, m: &Machine, inv: &Value) -> Result<(), String> {
    let outcome =
        tundra_engine::inspection::evaluate(&c.settings().inspection_rules, &facts(inv, Some(&m.name), &m.location));
    for r in &outcome.refused {
        tracing::warn!(machine = %m.name, "inspection refused a fact: {r}");
    }
    let (props, interfaces, traits) = facts_to_machine(&m.properties, &m.interfaces, &m.traits, inv, &outcome);
    let changes = MachineChanges {
        name: outcome.name.clone(),
        resource_class: outcome.resource_class.clone(),
        traits: Some(traits),
        properties: Some(props),
        interfaces: Some(interfaces),
        ..Default::default()
    };
    c.store().update_machine(&Actor::service(), m.id, changes, None).await.map_err(|e| e.to_string())?;
    Ok(())
}
