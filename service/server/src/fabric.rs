//! The fabric worker: one queue per switch (`tundra_drivers::switch::queue`),
//! the desired segment of every managed switch port kept in `switch_ports`
//! by the rule of `tundra_engine::fabric`, pending ports programmed through
//! their switch's queue (batched, verified), and every switch read back
//! every `fabric_read_interval` to record drift. Also: resolving a node's
//! `networks` into ports and binding them to machine interfaces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tundra_api::fabric::{FabricKind, Network, PhysicalNetwork, Switch, SwitchPortState};
use tundra_api::machines::Machine;
use tundra_api::nodes::{Node, NodeNetwork, NodeNetworkRequest, NodeStatus};
use tundra_api::{MachineId, NodeId, ProjectId, SwitchId};
use tundra_drivers::bmc::Password;
use tundra_drivers::switch::queue::{Limits, SwitchQueue};
use tundra_drivers::switch::{self as sw, HostKey};
use tundra_engine::fabric::{Iface, Want, bind, desired_segment, tenant_phase};
use tundra_engine::machine_states::State;
use tundra_store::{Binder, Bound, PortWant};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The fabric worker's shared state.
#[derive(Default)]
pub struct Fabric {
    /// Per switch: the revision its queue was built from, and the queue.
    queues: Mutex<HashMap<SwitchId, (i64, Arc<SwitchQueue>)>>,
    /// Switch ports being programmed right now.
    inflight: std::sync::Mutex<HashSet<(SwitchId, String)>>,
    /// Wakes the worker (a machine or node changed, a repair was asked for).
    pub changed: tokio::sync::Notify,
    last_read: std::sync::Mutex<HashMap<SwitchId, Instant>>,
    /// Switches that could not be reached: left alone until then.
    resting: std::sync::Mutex<HashMap<SwitchId, Instant>>,
}

/// How long a switch that could not be reached (after the queue's own
/// retries) is left alone before its pending ports are tried again.
const REST_AFTER_UNREACHABLE: Duration = Duration::from_secs(30);

/// What one port's programming came to, for the record.
enum Programmed {
    Done(Option<u32>),
    /// The switch refused this port (or the batch could not be put back).
    Refused(String),
    /// Not this port's fault: another port of the batch was refused, or the
    /// switch was unreachable (then it rests first). Stays pending, tried again.
    Retry {
        why: String,
        unreachable: bool,
    },
}

fn judge(port: &str, outcome: Result<u16, Arc<sw::BatchError>>) -> Programmed {
    use tundra_drivers::retry::Transient;
    match outcome {
        Ok(v) => Programmed::Done(Some(v as u32)),
        Err(e) if e.left_changed.iter().any(|p| p == port) => Programmed::Refused(e.to_string()),
        Err(e) => match &e.error {
            sw::SwitchError::Command { port: Some(p), .. } if p != port => Programmed::Retry {
                why: format!("its batch was refused at port {p}; trying again without it"),
                unreachable: false,
            },
            err if err.is_transient() => Programmed::Retry { why: e.to_string(), unreachable: true },
            _ => Programmed::Refused(e.to_string()),
        },
    }
}

/// The built-in dialects, parsed once.
fn dialects() -> &'static BTreeMap<String, sw::Dialect> {
    static D: std::sync::OnceLock<BTreeMap<String, sw::Dialect>> = std::sync::OnceLock::new();
    D.get_or_init(sw::dialect::built_in)
}

/// Dialect names tundrad knows, for error messages and validation.
pub fn dialect_names() -> Vec<String> {
    dialects().keys().cloned().collect()
}

impl Fabric {
    async fn queue(&self, state: &AppState, s: &Switch) -> Result<Arc<SwitchQueue>, String> {
        let mut qs = self.queues.lock().await;
        if let Some((rev, q)) = qs.get(&s.id)
            && *rev == s.revision
        {
            return Ok(q.clone());
        }
        let dialect = dialects().get(&s.dialect).cloned().ok_or_else(|| format!("unknown dialect {:?}", s.dialect))?;
        let (pw, key) = state.store.switch_secrets(s.id).await.map_err(|e| e.to_string())?;
        let open = |id: Option<tundra_api::SecretId>| async move {
            match id {
                Some(id) => state
                    .keyring
                    .get(&state.store, id)
                    .await
                    .map(|p| Some(Password(String::from_utf8_lossy(&p.0).into_owned())))
                    .map_err(|e| e.to_string()),
                None => Ok(None),
            }
        };
        let driver = sw::Switch {
            address: s.address.clone(),
            username: s.username.clone(),
            password: open(pw).await?.unwrap_or(Password(String::new())),
            private_key: open(key).await?,
            host_key: HostKey::Pinned(s.host_key.clone()),
            dialect,
            timeout: state.config.switch_timeout(),
        };
        let limits = Limits {
            max_sessions: s.max_sessions.max(1) as usize,
            min_interval: Duration::from_millis(s.min_interval_ms as u64),
            ..Limits::default()
        };
        let q = SwitchQueue::start(driver, limits);
        qs.insert(s.id, (s.revision, q.clone()));
        Ok(q)
    }
}

/// Run the worker: a pass every second (cheap: a few reads of the store)
/// and whenever woken.
pub async fn worker_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.fabric.changed.notified() => {}
        }
        if let Err(e) = pass(&state).await {
            tracing::warn!(error = %e, "fabric pass failed");
        }
    }
}

/// Where each managed switch port should be, from machines, nodes and ports.
async fn desired(
    state: &AppState,
    switches: &[Switch],
) -> Result<BTreeMap<(SwitchId, String), u32>, tundra_store::StoreError> {
    let by_name: HashMap<&str, &Switch> = switches.iter().map(|s| (s.name.as_str(), s)).collect();
    let physnets: HashMap<_, PhysicalNetwork> =
        state.store.all_physical_networks().await?.into_iter().map(|p| (p.id, p)).collect();
    let networks: HashMap<_, Network> = state.store.all_networks().await?.into_iter().map(|n| (n.id, n)).collect();
    let nodes: HashMap<MachineId, Node> =
        state.store.all_nodes().await?.into_iter().filter_map(|n| n.machine_id.map(|m| (m, n))).collect();
    let ports: HashMap<String, tundra_api::fabric::Port> =
        state.store.bound_ports().await?.into_iter().filter_map(|p| p.mac.clone().map(|m| (m, p))).collect();
    let mut out = BTreeMap::new();
    for m in state.store.all_machines().await? {
        let phase = nodes.get(&m.id).is_some_and(|n| {
            tenant_phase(crate::nodes::status_of(n.status), State::parse(&m.provision_state).unwrap_or(State::Error))
        });
        for i in &m.interfaces {
            let (Some(sname), Some(port)) = (&i.switch, &i.port) else { continue };
            let Some(s) = by_name.get(sname.as_str()) else { continue };
            let provisioning = physnets.get(&s.physical_network_id).and_then(|p| p.provisioning_segment);
            let tenant = ports
                .get(&i.mac)
                .filter(|p| phase && nodes.get(&m.id).map(|n| n.id) == p.node_id)
                .map(|p| networks.get(&p.network_id).and_then(|n| n.segment));
            if let Some(seg) = desired_segment(tenant, provisioning) {
                out.insert((s.id, port.clone()), seg);
            }
        }
    }
    Ok(out)
}

/// One pass: record what each port should be, program what is pending,
/// read back switches that are due.
pub async fn pass(state: &AppState) -> Result<(), tundra_store::StoreError> {
    let switches = state.store.all_switches().await?;
    if switches.is_empty() {
        return Ok(());
    }
    let want = desired(state, &switches).await?;
    // Only new or changed wishes are written (most passes write nothing).
    let mut records = state.store.switch_ports().await?;
    let known: HashMap<(SwitchId, &str), u32> =
        records.iter().map(|r| ((r.switch_id, r.port.as_str()), r.desired)).collect();
    let mut wrote = false;
    for ((s, port), seg) in &want {
        if known.get(&(*s, port.as_str())) != Some(seg) {
            wrote |= state.store.want_switch_port(*s, port, *seg).await?;
        }
    }
    if wrote {
        records = state.store.switch_ports().await?;
    }
    // Ports no machine interface is cabled to any more are no longer managed.
    for r in records.iter().filter(|r| !want.contains_key(&(r.switch_id, r.port.clone()))) {
        tracing::info!(switch = %r.switch_id, port = %r.port, "switch port no longer cabled to a machine; not managed any more");
        state.store.forget_switch_port(r.switch_id, &r.port).await?;
    }
    records.retain(|r| want.contains_key(&(r.switch_id, r.port.clone())));
    let by_id: HashMap<SwitchId, &Switch> = switches.iter().map(|s| (s.id, s)).collect();
    for r in records.iter().filter(|r| r.state == SwitchPortState::Pending) {
        let Some(s) = by_id.get(&r.switch_id) else { continue };
        let resting = state
            .fabric
            .resting
            .lock()
            .expect("rest lock")
            .get(&s.id)
            .is_some_and(|t| t.elapsed() < REST_AFTER_UNREACHABLE);
        if resting {
            continue;
        }
        let key = (r.switch_id, r.port.clone());
        if !state.fabric.inflight.lock().expect("inflight lock").insert(key.clone()) {
            continue;
        }
        let q = match state.fabric.queue(state, s).await {
            Ok(q) => q,
            Err(e) => {
                state.fabric.inflight.lock().expect("inflight lock").remove(&key);
                state.store.switch_port_programmed(s.id, &r.port, r.desired, Err(e.clone())).await?;
                state.store.switch_session(s.id, Some(e), false).await?;
                continue;
            }
        };
        let (st, sid, port, want) = (state.clone(), s.id, r.port.clone(), r.desired);
        tokio::spawn(async move {
            let judged = match u16::try_from(want) {
                Ok(v) => judge(&port, q.set(&port, v).await),
                Err(_) => Programmed::Refused(format!("segment {want} is not a VLAN")),
            };
            let session_error = match &judged {
                Programmed::Done(_) => None,
                Programmed::Refused(e) | Programmed::Retry { why: e, .. } => Some(e.clone()),
            };
            let _ = match judged {
                Programmed::Done(v) => st.store.switch_port_programmed(sid, &port, want, Ok(v)).await.map(|_| ()),
                Programmed::Refused(e) => {
                    tracing::warn!(switch = %sid, port = %port, vlan = want, error = %e, "switch port refused");
                    st.store.switch_port_programmed(sid, &port, want, Err(e)).await.map(|_| ())
                }
                Programmed::Retry { why, unreachable } => {
                    tracing::warn!(switch = %sid, port = %port, vlan = want, error = %why, "switch port not programmed yet");
                    if unreachable {
                        st.fabric.resting.lock().expect("rest lock").insert(sid, Instant::now());
                    }
                    st.store.switch_port_retrying(sid, &port, want, &why).await
                }
            };
            let _ = st.store.switch_session(sid, session_error, false).await;
            st.fabric.inflight.lock().expect("inflight lock").remove(&(sid, port));
            st.nodes_changed.notify_one();
        });
    }
    // Drift: read back every switch whose turn it is.
    let every = state.config.fabric_read_interval();
    for s in &switches {
        let due = state.fabric.last_read.lock().expect("read lock").get(&s.id).is_none_or(|t| t.elapsed() >= every);
        if !due {
            continue;
        }
        let ports: Vec<String> = records
            .iter()
            .filter(|r| r.switch_id == s.id && r.state != SwitchPortState::Pending)
            .map(|r| r.port.clone())
            .collect();
        if ports.is_empty() {
            continue;
        }
        state.fabric.last_read.lock().expect("read lock").insert(s.id, Instant::now());
        let q = match state.fabric.queue(state, s).await {
            Ok(q) => q,
            Err(e) => {
                state.store.switch_session(s.id, Some(e), false).await?;
                continue;
            }
        };
        let (st, sw) = (state.clone(), (*s).clone());
        tokio::spawn(async move { read_back(&st, &sw, &q, &ports).await });
    }
    Ok(())
}

async fn read_back(state: &AppState, s: &Switch, q: &SwitchQueue, ports: &[String]) {
    // What was programmed after this moment is newer than what the read saw.
    let started = tundra_store::now();
    match q.read(ports).await {
        Ok(seen) => {
            for (port, vlan) in seen {
                if state.fabric.inflight.lock().expect("inflight lock").contains(&(s.id, port.clone())) {
                    continue; // being programmed: the read raced the batch
                }
                match state.store.switch_port_seen(s.id, &port, vlan.map(u32::from), &started).await {
                    Ok(Some(SwitchPortState::Drifted)) => {
                        tracing::warn!(switch = %s.name, port = %port, vlan = ?vlan, "switch port drifted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(switch = %s.name, error = %e, "recording a read failed"),
                }
            }
            let _ = state.store.switch_session(s.id, None, true).await;
        }
        Err(e) => {
            tracing::warn!(switch = %s.name, error = %e, "reading the switch failed");
            let _ = state.store.switch_session(s.id, Some(e.to_string()), false).await;
        }
    }
}

/// A node's `networks` request, checked: each entry names one network the
/// project may use or one port of the project that is free (or already
/// this node's). Returns the wants and, per want, its physical network.
pub async fn resolve(
    state: &AppState,
    project: ProjectId,
    node: Option<NodeId>,
    reqs: &[NodeNetworkRequest],
) -> ApiResult<Vec<(PortWant, PhysicalNetwork)>> {
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let at = format!("/networks/{i}");
        let (want, network_id) = match (r.network_id, r.port_id) {
            (Some(n), None) => (PortWant::Network(n), n),
            (None, Some(p)) => {
                let port = state
                    .store
                    .port(p)
                    .await
                    .map_err(|_| ApiError::field(&format!("{at}/port_id"), format!("port {p} does not exist")))?;
                if port.project_id != project {
                    return Err(ApiError::field(&format!("{at}/port_id"), format!("port {p} does not exist")));
                }
                if port.node_id.is_some() && port.node_id != node {
                    return Err(ApiError::field(
                        &format!("{at}/port_id"),
                        format!(
                            "port {} is used by another node; take it out of that node's networks first",
                            port.name
                        ),
                    ));
                }
                (PortWant::Port(p), port.network_id)
            }
            _ => return Err(ApiError::field(&at, "give exactly one of network_id and port_id")),
        };
        let net = match state.store.network(network_id).await {
            Ok(n) if n.project_id.is_none_or(|p| p == project) => n,
            _ => {
                return Err(ApiError::field(
                    &format!("{at}/network_id"),
                    format!("network {network_id} does not exist (or is another project's)"),
                ));
            }
        };
        let pn = state.store.physical_network(net.physical_network_id).await?;
        if pn.kind == FabricKind::Ethernet && net.segment.is_none() {
            return Err(ApiError::field(
                &at,
                format!(
                    "network {} is flat: a switch port has no VLAN to be put in; use a network with a segment",
                    net.name
                ),
            ));
        }
        if out.iter().any(|(w, _)| *w == want && matches!(w, PortWant::Port(_))) {
            return Err(ApiError::field(&at, "the same port twice"));
        }
        out.push((want, pn));
    }
    Ok(out)
}

/// The binder the store uses: tundrad's rules over the switches it knows.
pub async fn binder(state: &AppState, wants: &[(PortWant, PhysicalNetwork)]) -> ApiResult<Box<Binder<'static>>> {
    let switches = state.store.all_switches().await?;
    let physnets: HashMap<_, String> =
        state.store.all_physical_networks().await?.into_iter().map(|p| (p.id, p.name)).collect();
    let sw: Vec<(String, SwitchId, String)> = switches
        .iter()
        .map(|s| (s.name.clone(), s.id, physnets.get(&s.physical_network_id).cloned().unwrap_or_default()))
        .collect();
    let wants: Vec<(String, bool)> =
        wants.iter().map(|(_, p)| (p.name.clone(), p.kind == FabricKind::Ethernet)).collect();
    Ok(Box::new(move |m: &Machine, fixed: &[Option<String>]| {
        let names: BTreeMap<&str, &str> = sw.iter().map(|(n, _, p)| (n.as_str(), p.as_str())).collect();
        let ifaces: Vec<Iface> = m
            .interfaces
            .iter()
            .map(|i| Iface {
                mac: &i.mac,
                pxe: i.pxe,
                physical_network: i.physical_network.as_deref(),
                switch: i.switch.as_deref(),
                port: i.port.as_deref(),
            })
            .collect();
        let w: Vec<Want> = wants
            .iter()
            .zip(fixed)
            .map(|((p, eth), f)| Want { physical_network: p, ethernet: *eth, fixed_mac: f.as_deref() })
            .collect();
        let idx = bind(&ifaces, &w, &names)?;
        Ok(idx
            .into_iter()
            .zip(&w)
            .map(|(k, want)| {
                let i = &m.interfaces[k];
                let switch = if want.ethernet {
                    i.switch
                        .as_ref()
                        .and_then(|n| sw.iter().find(|(s, _, _)| s == n))
                        .map(|(_, id, _)| (*id, i.port.clone().unwrap_or_default()))
                } else {
                    None
                };
                Bound { mac: i.mac.clone(), switch }
            })
            .collect())
    }))
}

/// Nodes with their networks (ports) and their drift filled in, with one
/// read of their ports; for a project's eyes (`!admin`) without the switch details.
pub async fn with_networks(state: &AppState, nodes: Vec<Node>, admin: bool) -> ApiResult<Vec<Node>> {
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    let mut by_node: HashMap<NodeId, Vec<tundra_api::fabric::Port>> = HashMap::new();
    for p in state.store.ports_of_nodes(&ids).await? {
        if let Some(n) = p.node_id {
            by_node.entry(n).or_default().push(p);
        }
    }
    Ok(nodes
        .into_iter()
        .map(|n| {
            let ports = by_node.remove(&n.id).unwrap_or_default();
            fill_networks(n, ports, admin)
        })
        .collect())
}

fn fill_networks(mut n: Node, mut ports: Vec<tundra_api::fabric::Port>, admin: bool) -> Node {
    if !admin {
        ports = ports.into_iter().map(tundra_store::redact_port).collect();
    }
    let drift: Vec<String> = ports.iter().filter_map(|p| p.drift.clone()).collect();
    n.drift = (!drift.is_empty()).then(|| drift.join("; "));
    n.networks = ports
        .into_iter()
        .map(|p| NodeNetwork {
            network_id: p.network_id,
            port_id: p.id,
            mac: p.mac,
            fixed_ips: p.fixed_ips,
            auto: p.auto,
            state: p.binding.as_ref().map(|b| b.state),
            drift: p.drift,
        })
        .collect();
    n
}

/// Whether a deployed node's switch ports are in its networks' segments.
pub async fn gate(state: &AppState, n: &Node) -> Result<tundra_engine::fabric::Gate, tundra_store::StoreError> {
    use tundra_engine::fabric::PortSeen;
    let mut seen = Vec::new();
    for p in state.store.node_ports(n.id).await? {
        let net = state.store.network(p.network_id).await?;
        seen.push(match (&p.binding, net.segment) {
            (Some(b), Some(want)) => PortSeen::Switch {
                want,
                desired: b.desired_segment,
                in_sync: b.state == SwitchPortState::InSync,
                failed: (b.state == SwitchPortState::Failed).then(|| p.drift.clone().unwrap_or_default()),
            },
            _ => PortSeen::Unmanaged,
        });
    }
    if n.status == NodeStatus::Building {
        state.fabric.changed.notify_one();
    }
    Ok(tundra_engine::fabric::gate(&seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(error: sw::SwitchError, left_changed: &[&str]) -> Result<u16, Arc<sw::BatchError>> {
        Err(Arc::new(sw::BatchError {
            error,
            rolled_back: vec!["p1".into()],
            left_changed: left_changed.iter().map(|p| p.to_string()).collect(),
        }))
    }

    fn refused(port: &str) -> sw::SwitchError {
        sw::SwitchError::Command {
            port: Some(port.into()),
            command: format!("interface {port}"),
            line: "% Invalid input detected".into(),
            output: String::new(),
        }
    }

    #[test]
    fn a_refusal_fails_its_own_port_only() {
        assert!(matches!(judge("p1", Ok(12)), Programmed::Done(Some(12))));
        assert!(
            matches!(judge("p9", batch(refused("p9"), &[])), Programmed::Refused(m) if m.contains("Invalid input"))
        );
        // Another port's refusal: this one was put back and goes again without it.
        assert!(matches!(
            judge("p1", batch(refused("p9"), &[])),
            Programmed::Retry { unreachable: false, why } if why.contains("port p9")
        ));
        // Left changed (could not be put back): its state is unknown — failed, said so.
        assert!(matches!(
            judge("p1", batch(refused("p9"), &["p1"])),
            Programmed::Refused(m) if m.contains("could not put back [\"p1\"]")
        ));
        // Unreachable: retried after a rest; a wrong host key is no transient.
        assert!(matches!(
            judge("p1", batch(sw::SwitchError::Connect("refused".into()), &[])),
            Programmed::Retry { unreachable: true, .. }
        ));
        let hk = sw::SwitchError::HostKey { address: "a".into(), want: "x".into(), got: "y".into() };
        assert!(matches!(judge("p1", batch(hk, &[])), Programmed::Refused(_)));
    }
}
