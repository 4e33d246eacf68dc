//! The node reconciler: every `reconcile_interval`, and whenever a machine
//! operation ends, each node takes the one step `tundra_engine::nodes::reconcile`
//! names for its status and its machine as they are now — active (once its
//! switch ports are in place), error, abort the deploy, start cleaning,
//! release, remove. Level-triggered: a restart or a missed wake-up changes nothing.

use tundra_api::machines::Machine;
use tundra_api::nodes::{Node, NodeStatus};
use tundra_api::ops::Work;
use tundra_engine::fabric::Gate;
use tundra_engine::machine_states::{Event, next};
use tundra_engine::nodes::{MachineSeen, Step, reconcile};
use tundra_store::{Actor, NewOperation, NodeStep};

use crate::error::Result;
use crate::fabric::binding;
use crate::handle::Conductor;
use crate::machines::actions;

/// The node reconciler's loop.
pub async fn run(c: Conductor) {
    let mut tick = crate::runner::ticker(c.settings().reconcile_interval);
    loop {
        crate::runner::next_pass(&mut tick, &c.wakes().nodes).await;
        if let Err(e) = once(&c).await {
            tracing::warn!(error = %e, "node reconciler failed");
        }
    }
}

/// One pass over every node: the one step each needs now. A node someone
/// else changed meanwhile (a delete, the worker) waits for the next pass.
pub async fn once(c: &Conductor) -> Result<()> {
    // One narrow read per pass: each node's status and revision with its
    // machine's state (a pass runs after every machine step, so reading
    // whole rows here made a deploy wave quadratic). A node or machine is
    // read whole only for a node that has a step to take, and the step is
    // taken only while both are still as decided from: a node changed
    // since has a new revision, a machine a new state or operation — the
    // next pass decides again, never from a new machine and an old node.
    for v in c.store().nodes_at_machines().await? {
        let seen = v.machine.as_ref().map(|(_, s)| MachineSeen {
            state: s.provision_state,
            busy: s.operation_id.is_some(),
            last_error: s.last_error.clone(),
        });
        let step = reconcile(v.status, seen.as_ref());
        if step == Step::Wait {
            continue;
        }
        let n = match c.store().node(v.id).await {
            Ok(n) if n.revision == v.revision => n,
            Ok(_) | Err(tundra_store::StoreError::NotFound { .. }) => continue,
            Err(e) => {
                tracing::warn!(node = %v.id, error = %e, "reading the node failed");
                continue;
            }
        };
        let m = match &v.machine {
            Some((id, s)) => match c.store().machine(&id.to_string()).await {
                Ok(m) if m.provision_state == s.provision_state && m.operation_id == s.operation_id => Some(m),
                // It moved (or went) since: the next pass decides again.
                Ok(_) | Err(tundra_store::StoreError::NotFound { .. }) => continue,
                Err(e) => {
                    tracing::warn!(node = %n.name, error = %e, "reading the node's machine failed");
                    continue;
                }
            },
            None => None,
        };
        match take(c, &n, step, m.as_ref()).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => tracing::warn!(node = %n.name, error = %e, "node step failed"),
        }
    }
    // Clusters and appliances follow their nodes.
    c.wakes().clusters.notify_one();
    c.wakes().appliances.notify_one();
    Ok(())
}

/// Move a node from its status (checked again inside the store).
async fn step_to(c: &Conductor, n: &Node, to: NodeStatus, reason: Option<String>, release: bool) -> Result<()> {
    let step = NodeStep { from: n.status, to, reason, release, operation: None, revision: Some(n.revision) };
    c.store().node_step(&Actor::service(), n.id, step).await?;
    Ok(())
}

async fn take(c: &Conductor, n: &Node, step: Step, m: Option<&Machine>) -> Result<()> {
    match (step, m) {
        (Step::Wait, _) => Ok(()),
        (Step::MarkActive, _) => match binding::gate(c, n).await? {
            Gate::Open => {
                step_to(c, n, NodeStatus::Active, None, false).await?;
                tracing::info!(node = %n.name, "node active");
                Ok(())
            }
            Gate::Wait => Ok(()), // its switch ports are being moved
            Gate::Fail(why) => {
                step_to(c, n, NodeStatus::Error, Some(format!("its network could not be set up: {why}")), false)
                    .await?;
                tracing::warn!(node = %n.name, reason = %why, "node's switch ports failed; its machine goes back through cleaning");
                Ok(())
            }
        },
        (Step::MarkError(why), m) => {
            // The node's reason is the project's to read: the machine's error, redacted.
            let why = match m {
                Some(m) => crate::machines::tenant::redact(&why, m),
                None => why,
            };
            step_to(c, n, NodeStatus::Error, Some(why.clone()), false).await?;
            tracing::warn!(node = %n.name, reason = %why, "node failed; its machine goes back through cleaning");
            Ok(())
        }
        (Step::AbortDeploy, Some(m)) => match next(m.provision_state, Event::Abort) {
            Ok(to) => actions::abort(c, &Actor::service(), m, to).await.map(|_| ()),
            Err(_) => Ok(()), // not abortable yet (booting the agent): next pass
        },
        (Step::StartCleaning, Some(m)) => start_cleaning(c, n, m).await,
        (Step::Release, _) => step_to(c, n, n.status, n.status_reason.clone(), true).await,
        (Step::Remove, _) => {
            let r = c.store().remove_node(&Actor::service(), n.id).await;
            c.wakes().netboot.notify_one();
            r?;
            tracing::info!(node = %n.name, "node deleted; its machine is cleaned");
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

/// Send a node's machine through delete → cleaning → available.
async fn start_cleaning(c: &Conductor, n: &Node, m: &Machine) -> Result<()> {
    if m.maintenance {
        return Ok(()); // an operator holds it; cleaning waits for them
    }
    let from = m.provision_state;
    let Ok(to) = next(from, Event::Delete) else { return Ok(()) };
    let work = Work::MachineDelete { machine_id: m.id, node_id: Some(n.id) };
    let op = NewOperation { project_id: Some(n.project_id), work };
    let op_id = c.store().node_machine_work(&Actor::service(), n.id, from, to, "delete", op).await?;
    tracing::info!(node = %n.name, machine = %m.name, operation = %op_id, "cleaning the node's machine");
    c.run(op_id).await.map(|_| ())
}
