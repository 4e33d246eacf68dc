//! What a caller is shown: objects as the store has them, with what they
//! mean in words (a port's drift) and without what the caller may not see
//! (a project member never sees switch names or ports, nor which machine a
//! node holds).

use std::collections::HashMap;

use tundra_api::NodeId;
use tundra_api::fabric::{Port, PortBinding, SwitchPortState, SwitchPortView};
use tundra_api::nodes::{Node, NodeNetwork};
use tundra_api::ops::{Event, Operation};
use tundra_store::SwitchPortRecord;

use crate::error::ApiResult;
use crate::principal::Principal;
use crate::state::AppState;

/// What a port's `drift` says, from its switch port's record (naming the
/// switch and port unless they were redacted for a project's eyes).
pub fn drift(b: &PortBinding) -> Option<String> {
    let seg = |s: Option<u32>| s.map(|v| format!("segment {v}")).unwrap_or_else(|| "no segment".into());
    let at = if b.switch.is_empty() {
        "its switch port".to_string()
    } else {
        format!("switch {} port {}", b.switch, b.switch_port)
    };
    match b.state {
        SwitchPortState::Drifted => Some(format!(
            "{at} is in {} but should be in segment {} (changed on the switch outside tundra)",
            seg(b.actual_segment),
            b.desired_segment
        )),
        SwitchPortState::Failed => Some(format!(
            "{at} could not be put in segment {}: {}",
            b.desired_segment,
            b.message.as_deref().unwrap_or("unknown error")
        )),
        _ => None,
    }
}

/// A port as `admin` (a site admin) or a project member sees it: members
/// do not see which switch and port it is bound through, also not in `drift`.
fn port_for(mut x: Port, admin: bool) -> Port {
    if let Some(b) = &mut x.binding {
        if !admin {
            b.switch = String::new();
            b.switch_port = String::new();
            b.message = b.message.as_ref().map(|_| "the switch refused (site admins see its answer)".into());
        }
        x.drift = drift(b);
    }
    x
}

/// A port as the caller may see it.
pub fn port(p: &Principal, x: Port) -> Port {
    port_for(x, p.is_admin())
}

/// Nodes as the caller may see them: their networks and drift filled in
/// with one read of their ports; the machine only for site admins.
pub async fn nodes(state: &AppState, p: &Principal, nodes: Vec<Node>) -> ApiResult<Vec<Node>> {
    let admin = p.is_admin();
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    let mut by_node: HashMap<NodeId, Vec<Port>> = HashMap::new();
    for x in state.store().ports_of_nodes(&ids).await? {
        if let Some(n) = x.node_id {
            by_node.entry(n).or_default().push(port_for(x, admin));
        }
    }
    let mut mounts: HashMap<NodeId, Vec<tundra_api::shares::NodeMount>> = HashMap::new();
    if !ids.is_empty() {
        for (node, m) in state.store().all_node_mounts().await? {
            if ids.contains(&node) {
                mounts.entry(node).or_default().push(m);
            }
        }
    }
    Ok(nodes
        .into_iter()
        .map(|mut n| {
            n.mounts = mounts.remove(&n.id).unwrap_or_default();
            let ports = by_node.remove(&n.id).unwrap_or_default();
            let drift: Vec<String> = ports.iter().filter_map(|x| x.drift.clone()).collect();
            n.drift = (!drift.is_empty()).then(|| drift.join("; "));
            n.networks = ports
                .into_iter()
                .map(|x| NodeNetwork {
                    network_id: x.network_id,
                    port_id: x.id,
                    mac: x.mac,
                    fixed_ips: x.fixed_ips,
                    auto: x.auto,
                    state: x.binding.as_ref().map(|b| b.state),
                    drift: x.drift,
                })
                .collect();
            if !admin {
                n.machine_id = None;
            }
            n
        })
        .collect())
}

pub async fn node(state: &AppState, p: &Principal, n: Node) -> ApiResult<Node> {
    Ok(nodes(state, p, vec![n]).await?.remove(0))
}

/// What a project reads of machine work whose machine is gone.
const GONE: &str = "its machine's work ended (site admins see the details)";

/// Operations as the caller may see them: a project's view of machine work
/// is about its node — the target is the node, and the message and error
/// name neither the machine nor its BMC or cabling
/// (`tundra_conductor::machines::tenant`). Site admins see them whole.
pub async fn operations(state: &AppState, p: &Principal, ops: Vec<Operation>) -> ApiResult<Vec<Operation>> {
    if p.is_admin() {
        return Ok(ops);
    }
    let mut machines: HashMap<String, Option<tundra_api::machines::Machine>> = HashMap::new();
    let mut out = Vec::with_capacity(ops.len());
    for mut op in ops {
        if op.target_type == tundra_api::MachineId::NOUN {
            let node = state.store().operation_input(op.id).await.ok().and_then(|i| i.work.node());
            let m = match machines.get(&op.target_id) {
                Some(m) => m.clone(),
                None => {
                    let m = state.store().machine(&op.target_id).await.ok();
                    machines.insert(op.target_id.clone(), m.clone());
                    m
                }
            };
            match &m {
                Some(m) => {
                    op.message = tundra_conductor::machines::tenant::redact(&op.message, m);
                    op.error = op.error.map(|e| tundra_conductor::machines::tenant::redact(&e, m));
                }
                // The machine is gone: nothing left to redact against, so nothing of it is shown.
                None => {
                    op.message = GONE.into();
                    op.error = op.error.map(|_| GONE.into());
                }
            }
            op.target_type = NodeId::NOUN.into();
            op.target_id = node.map(|n| n.to_string()).unwrap_or_default();
        }
        out.push(op);
    }
    Ok(out)
}

/// Events as the caller may see them: a project's events do not say which
/// machine holds its node — node events lose their machine keys, and the
/// events of machine work done for the project (an operation's creation,
/// its error) are redacted like the operation itself.
pub async fn events(state: &AppState, p: &Principal, mut events: Vec<Event>) -> ApiResult<Vec<Event>> {
    if p.is_admin() {
        return Ok(events);
    }
    // Per operation: whether it is machine work, and the machine if it is still there.
    let mut machine_of: HashMap<String, Option<Option<tundra_api::machines::Machine>>> = HashMap::new();
    for e in &mut events {
        if let Some(d) = e.detail.as_object_mut() {
            for key in ["machine", "machine_id", "released_machine"] {
                d.remove(key);
            }
        }
        if e.object_type != "operation" {
            continue;
        }
        if !machine_of.contains_key(&e.object_id) {
            let mut work = None;
            if let Ok(id) = e.object_id.parse()
                && let Ok(op) = state.store().operation(id).await
                && op.target_type == tundra_api::MachineId::NOUN
            {
                work = Some(state.store().machine(&op.target_id).await.ok());
            }
            machine_of.insert(e.object_id.clone(), work);
        }
        let Some(Some(machine)) = machine_of.get(&e.object_id) else { continue };
        match machine {
            Some(m) => redact_json(&mut e.detail, m),
            None => {
                if let Some(d) = e.detail.as_object_mut() {
                    for key in ["error", "message", "reason"] {
                        if let Some(v) = d.get_mut(key).filter(|v| v.is_string()) {
                            *v = GONE.into();
                        }
                    }
                }
            }
        }
        if let Some(d) = e.detail.as_object_mut()
            && d.get("target_type").and_then(|t| t.as_str()) == Some(tundra_api::MachineId::NOUN)
        {
            d.insert("target_type".into(), NodeId::NOUN.into());
            d.remove("target_id");
        }
    }
    Ok(events)
}

fn redact_json(v: &mut serde_json::Value, m: &tundra_api::machines::Machine) {
    match v {
        serde_json::Value::String(s) => *s = tundra_conductor::machines::tenant::redact(s, m),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| redact_json(x, m)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| redact_json(x, m)),
        _ => {}
    }
}

/// A switch port's drift record (site admins).
pub fn switch_port(r: SwitchPortRecord) -> SwitchPortView {
    SwitchPortView {
        port: r.port,
        desired_segment: r.desired,
        actual_segment: r.actual,
        state: r.state,
        message: r.message,
        checked_at: r.checked_at,
        changed_at: r.changed_at,
    }
}

#[cfg(test)]
mod tests {
    use tundra_api::{NetworkId, PortId, ProjectId};

    use super::*;

    fn port(state: SwitchPortState, message: Option<&str>) -> Port {
        let b = PortBinding {
            switch: "leaf-1".into(),
            switch_port: "Te1/0/7".into(),
            desired_segment: 10,
            actual_segment: Some(55),
            state,
            message: message.map(String::from),
            checked_at: None,
        };
        Port {
            id: PortId::generate(),
            project_id: ProjectId::generate(),
            network_id: NetworkId::generate(),
            name: "p".into(),
            description: String::new(),
            fixed_ips: vec![],
            node_id: None,
            mac: None,
            auto: false,
            drift: None,
            binding: Some(b),
            created_at: String::new(),
            updated_at: String::new(),
            revision: 1,
        }
    }

    #[test]
    fn drift_names_the_switch_for_admins_only() {
        let p = port_for(port(SwitchPortState::Drifted, None), true);
        assert_eq!(
            p.drift.as_deref(),
            Some(
                "switch leaf-1 port Te1/0/7 is in segment 55 but should be in segment 10 (changed on the switch outside tundra)"
            )
        );
        let r = port_for(port(SwitchPortState::Drifted, None), false);
        assert_eq!(
            r.drift.as_deref(),
            Some("its switch port is in segment 55 but should be in segment 10 (changed on the switch outside tundra)")
        );
        let b = r.binding.unwrap();
        assert!(b.switch.is_empty() && b.switch_port.is_empty());
        let f = port_for(port(SwitchPortState::Failed, Some("% Invalid input at leaf-1")), false);
        assert!(!f.drift.as_deref().unwrap().contains("leaf-1"), "{:?}", f.drift);
        assert!(port_for(port(SwitchPortState::InSync, None), false).drift.is_none());
    }
}
