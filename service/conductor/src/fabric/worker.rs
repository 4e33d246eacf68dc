//! The fabric worker: one queue per switch (`tundra_drivers::switch::queue`,
//! its credentials opened here only), the desired segment of every managed
//! switch port kept in the drift record by the rule of
//! `tundra_engine::fabric`, pending ports programmed through their switch's
//! queue (batched, verified), and every switch read back every
//! `fabric_read_interval` to record drift — never repaired behind the
//! operator's back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tundra_api::fabric::{Network, PhysicalNetwork, Switch, SwitchPortState};
use tundra_api::nodes::Node;
use tundra_api::{MachineId, SwitchId};
use tundra_drivers::bmc::Password;
use tundra_drivers::switch::queue::{Limits, SwitchQueue};
use tundra_drivers::switch::{self as sw, HostKey};
use tundra_engine::fabric::{desired_segment, tenant_phase};
use tundra_store::StoreError;

use crate::handle::Conductor;

/// The worker's own bookkeeping, shared with the tasks it starts.
#[derive(Default)]
struct Worker {
    /// Per switch: the revision its queue was built from, and the queue.
    queues: Mutex<HashMap<SwitchId, (i64, Arc<SwitchQueue>)>>,
    /// Switch ports being programmed right now.
    inflight: std::sync::Mutex<HashSet<(SwitchId, String)>>,
    last_read: std::sync::Mutex<HashMap<SwitchId, Instant>>,
    /// Switches that could not be reached: left alone until then.
    resting: std::sync::Mutex<HashMap<SwitchId, Instant>>,
}

/// How long a port that failed `failures` times in a row rests before it is
/// programmed again: 30 s, doubling, at most 15 minutes.
pub fn retry_pause(failures: i64) -> Duration {
    let doublings = failures.clamp(1, 6) - 1;
    Duration::from_secs(30 << doublings).min(Duration::from_secs(900))
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
            err @ (sw::SwitchError::Command { .. } | sw::SwitchError::BadPort { .. })
                if err.port().is_some_and(|p| p != port) =>
            {
                Programmed::Retry {
                    why: format!(
                        "its batch was refused at port {}; trying again without it",
                        err.port().unwrap_or_default()
                    ),
                    unreachable: false,
                }
            }
            err if err.is_transient() => Programmed::Retry { why: e.to_string(), unreachable: true },
            _ => Programmed::Refused(e.to_string()),
        },
    }
}

impl Worker {
    async fn queue(&self, c: &Conductor, s: &Switch) -> Result<Arc<SwitchQueue>, String> {
        let mut qs = self.queues.lock().await;
        if let Some((rev, q)) = qs.get(&s.id)
            && *rev == s.revision
        {
            return Ok(q.clone());
        }
        let dialect = super::switches::dialects()
            .get(&s.dialect)
            .cloned()
            .ok_or_else(|| format!("unknown dialect {:?}", s.dialect))?;
        let (pw, key) = c.store().switch_secrets(s.id).await.map_err(|e| e.to_string())?;
        let open = |id: Option<tundra_api::SecretId>| async move {
            match id {
                Some(id) => c
                    .keyring()
                    .get(c.store(), id)
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
            timeout: c.settings().switch_timeout,
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

/// Stopping the worker stops every switch queue with it: nothing of it
/// may touch a switch after it stops (another replica may take over).
impl Drop for Worker {
    fn drop(&mut self) {
        for (_, q) in self.queues.get_mut().values() {
            q.stop();
        }
    }
}

/// Run the worker: a pass every second (cheap: a few reads of the store)
/// and whenever woken. The tasks it starts are its own: when it is stopped
/// (tundrad stopping, or its lease moving to another replica) they stop
/// too, and with the last of them the switch queues.
pub async fn run(c: Conductor) {
    let w = Arc::new(Worker::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = crate::runner::ticker(Duration::from_secs(1));
    loop {
        crate::runner::next_pass(&mut tick, &c.wakes().fabric).await;
        while tasks.try_join_next().is_some() {}
        if let Err(e) = pass(&c, &w, &mut tasks).await {
            tracing::warn!(error = %e, "fabric pass failed");
        }
    }
}

/// Where each managed switch port should be, from machines, nodes and ports.
async fn desired(c: &Conductor, switches: &[Switch]) -> Result<BTreeMap<(SwitchId, String), u32>, StoreError> {
    let by_name: HashMap<&str, &Switch> = switches.iter().map(|s| (s.name.as_str(), s)).collect();
    let physnets: HashMap<_, PhysicalNetwork> =
        c.store().all_physical_networks().await?.into_iter().map(|p| (p.id, p)).collect();
    let networks: HashMap<_, Network> = c.store().all_networks().await?.into_iter().map(|n| (n.id, n)).collect();
    let nodes: HashMap<MachineId, Node> =
        c.store().all_nodes().await?.into_iter().filter_map(|n| n.machine_id.map(|m| (m, n))).collect();
    let ports: HashMap<String, tundra_api::fabric::Port> =
        c.store().bound_ports().await?.into_iter().filter_map(|p| p.mac.clone().map(|m| (m, p))).collect();
    // A port is steered for the one machine that holds it (a duplicate
    // recorded before ports were held — migration 0010 — is ignored).
    let holders = c.store().switch_port_holders().await?;
    let mut out = BTreeMap::new();
    for m in c.store().machine_nics().await? {
        let phase = nodes.get(&m.id).is_some_and(|n| tenant_phase(n.status, m.provision_state));
        for i in &m.interfaces {
            let (Some(sname), Some(port)) = (&i.switch, &i.port) else { continue };
            if holders.get(&(sname.clone(), port.clone())).is_some_and(|h| *h != m.id) {
                continue;
            }
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
async fn pass(c: &Conductor, w: &Arc<Worker>, tasks: &mut tokio::task::JoinSet<()>) -> Result<(), StoreError> {
    let switches = c.store().all_switches().await?;
    if switches.is_empty() {
        return Ok(());
    }
    let want = desired(c, &switches).await?;
    // Only new or changed wishes are written (most passes write nothing).
    let mut records = c.store().switch_ports().await?;
    let known: HashMap<(SwitchId, &str), u32> =
        records.iter().map(|r| ((r.switch_id, r.port.as_str()), r.desired)).collect();
    let mut wrote = false;
    for ((s, port), seg) in &want {
        if known.get(&(*s, port.as_str())) != Some(seg) {
            wrote |= c.store().want_switch_port(*s, port, *seg).await?;
        }
    }
    if wrote {
        records = c.store().switch_ports().await?;
    }
    // Ports no machine interface is cabled to any more are no longer managed.
    for r in records.iter().filter(|r| !want.contains_key(&(r.switch_id, r.port.clone()))) {
        tracing::info!(switch = %r.switch_id, port = %r.port, "switch port no longer cabled to a machine; not managed any more");
        c.store().forget_switch_port(r.switch_id, &r.port).await?;
    }
    records.retain(|r| want.contains_key(&(r.switch_id, r.port.clone())));
    // A failed port is tried again once its pause is over (growing with its
    // failures): a port left on a tenant's VLAN must not stay there.
    for r in records.iter().filter(|r| r.state == SwitchPortState::Failed) {
        let since = r.checked_at.as_deref().and_then(tundra_store::parse_time).and_then(|t| t.elapsed().ok());
        if since.is_some_and(|s| s >= retry_pause(r.failures))
            && c.store().retry_switch_port(r.switch_id, &r.port, r.desired).await?
        {
            tracing::info!(switch = %r.switch_id, port = %r.port, failures = r.failures, "trying a failed switch port again");
        }
    }
    let records: Vec<_> = if records.iter().any(|r| r.state == SwitchPortState::Failed) {
        let keep: HashSet<(SwitchId, String)> = records.iter().map(|r| (r.switch_id, r.port.clone())).collect();
        c.store().switch_ports().await?.into_iter().filter(|r| keep.contains(&(r.switch_id, r.port.clone()))).collect()
    } else {
        records
    };
    let by_id: HashMap<SwitchId, &Switch> = switches.iter().map(|s| (s.id, s)).collect();
    for r in records.iter().filter(|r| r.state == SwitchPortState::Pending) {
        let Some(s) = by_id.get(&r.switch_id) else { continue };
        let resting =
            w.resting.lock().expect("rest lock").get(&s.id).is_some_and(|t| t.elapsed() < REST_AFTER_UNREACHABLE);
        if resting {
            continue;
        }
        let key = (r.switch_id, r.port.clone());
        if !w.inflight.lock().expect("inflight lock").insert(key.clone()) {
            continue;
        }
        let q = match w.queue(c, s).await {
            Ok(q) => q,
            Err(e) => {
                w.inflight.lock().expect("inflight lock").remove(&key);
                c.store().switch_port_programmed(s.id, &r.port, r.desired, Err(e.clone())).await?;
                c.store().switch_session(s.id, Some(e), false).await?;
                continue;
            }
        };
        let (c, w, sid, port, want) = (c.clone(), w.clone(), s.id, r.port.clone(), r.desired);
        tasks.spawn(async move {
            let judged = match u16::try_from(want) {
                Ok(v) => judge(&port, q.set(&port, v).await),
                Err(_) => Programmed::Refused(format!("segment {want} is not a VLAN")),
            };
            let session_error = match &judged {
                Programmed::Done(_) => None,
                Programmed::Refused(e) | Programmed::Retry { why: e, .. } => Some(e.clone()),
            };
            let _ = match judged {
                Programmed::Done(v) => c.store().switch_port_programmed(sid, &port, want, Ok(v)).await.map(|_| ()),
                Programmed::Refused(e) => {
                    tracing::warn!(switch = %sid, port = %port, vlan = want, error = %e, "switch port refused");
                    c.store().switch_port_programmed(sid, &port, want, Err(e)).await.map(|_| ())
                }
                Programmed::Retry { why, unreachable } => {
                    tracing::warn!(switch = %sid, port = %port, vlan = want, error = %why, "switch port not programmed yet");
                    if unreachable {
                        w.resting.lock().expect("rest lock").insert(sid, Instant::now());
                    }
                    c.store().switch_port_retrying(sid, &port, want, &why).await
                }
            };
            let _ = c.store().switch_session(sid, session_error, false).await;
            w.inflight.lock().expect("inflight lock").remove(&(sid, port));
            c.wakes().nodes.notify_one();
        });
    }
    // Drift: read back every switch whose turn it is.
    let every = c.settings().fabric_read_interval;
    for s in &switches {
        let due = w.last_read.lock().expect("read lock").get(&s.id).is_none_or(|t| t.elapsed() >= every);
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
        // The ports a refusal to show may mark drifted: failed ones keep
        // their state (and their pause before the next try).
        let placed: HashSet<String> = records
            .iter()
            .filter(|r| r.switch_id == s.id && matches!(r.state, SwitchPortState::InSync | SwitchPortState::Drifted))
            .map(|r| r.port.clone())
            .collect();
        w.last_read.lock().expect("read lock").insert(s.id, Instant::now());
        let q = match w.queue(c, s).await {
            Ok(q) => q,
            Err(e) => {
                c.store().switch_session(s.id, Some(e), false).await?;
                continue;
            }
        };
        let (c, w, sw) = (c.clone(), w.clone(), (*s).clone());
        tasks.spawn(async move { read_back(&c, &w, &sw, &q, &ports, &placed).await });
    }
    Ok(())
}

async fn read_back(c: &Conductor, w: &Worker, s: &Switch, q: &SwitchQueue, ports: &[String], placed: &HashSet<String>) {
    // What was programmed after this moment is newer than what the read saw.
    let started = tundra_store::now();
    match read_around_refusals(q, ports).await {
        Ok((mut seen, refused)) => {
            // A port the switch will not show is in no VLAN we know: one that
            // was in_sync shows as drifted, not as still in place.
            seen.extend(refused.iter().filter(|(port, _)| placed.contains(port)).map(|(port, _)| (port.clone(), None)));
            let refused = refused.into_iter().map(|(_, e)| e).next_back();
            for (port, vlan) in seen {
                if w.inflight.lock().expect("inflight lock").contains(&(s.id, port.clone())) {
                    continue; // being programmed: the read raced the batch
                }
                match c.store().switch_port_seen(s.id, &port, vlan.map(u32::from), &started).await {
                    Ok(Some(SwitchPortState::Drifted)) => {
                        tracing::warn!(switch = %s.name, port = %port, vlan = ?vlan, "switch port drifted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(switch = %s.name, error = %e, "recording a read failed"),
                }
            }
            if let Some(e) = &refused {
                tracing::warn!(switch = %s.name, error = %e, "the switch refused to show a port; the others were read");
            }
            let _ = c.store().switch_session(s.id, refused, true).await;
        }
        Err(e) => {
            tracing::warn!(switch = %s.name, error = %e, "reading the switch failed");
            let _ = c.store().switch_session(s.id, Some(e.to_string()), false).await;
        }
    }
}

/// Read `ports`; a port the switch refuses to show (gone, renamed, mistyped
/// in a machine's cabling: refused by the switch, or not a name its dialect
/// accepts) is left out and the rest read again, so that one such port does
/// not hide drift on every other. Returns what was seen, and each refused
/// port with why.
async fn read_around_refusals(
    q: &SwitchQueue,
    ports: &[String],
) -> Result<(Vec<(String, Option<u16>)>, Vec<(String, String)>), sw::SwitchError> {
    let mut ports = ports.to_vec();
    let mut refused = Vec::new();
    loop {
        match q.read(&ports).await {
            Ok(seen) => return Ok((seen, refused)),
            Err(e) => match refused_port(&e) {
                Some(p) if ports.len() > 1 && ports.iter().any(|x| x == p) => {
                    ports.retain(|x| x != p);
                    refused.push((p.to_string(), e.to_string()));
                }
                _ => return Err(e),
            },
        }
    }
}

fn refused_port(e: &sw::SwitchError) -> Option<&str> {
    match e {
        sw::SwitchError::Command { .. } | sw::SwitchError::BadPort { .. } => e.port(),
        _ => None,
    }
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
        assert_eq!(
            [1, 2, 3, 6, 50].map(retry_pause),
            [30, 60, 120, 900, 900].map(Duration::from_secs),
            "failed ports are retried, pausing longer each time"
        );
        let hk = sw::SwitchError::HostKey { address: "a".into(), want: "x".into(), got: "y".into() };
        assert!(matches!(judge("p1", batch(hk, &[])), Programmed::Refused(_)));
        // A name the dialect refuses: nothing was sent; that port fails, the others go again.
        let bad = || sw::SwitchError::BadPort { port: "p;9".into(), why: "shell syntax".into() };
        assert!(matches!(judge("p;9", batch(bad(), &[])), Programmed::Refused(m) if m.contains("nothing was sent")));
        assert!(matches!(judge("p1", batch(bad(), &[])), Programmed::Retry { unreachable: false, .. }));
    }
}
