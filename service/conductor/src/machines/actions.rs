//! Actions on a machine: a provision-state verb of the table
//! (`tundra_engine::machine_states`) or a power action, each started as an
//! operation that holds the machine; and `abort`, which ends the operation
//! waiting on a machine along the table's abort edge.

use tundra_api::OperationId;
use tundra_api::catalog::Image;
use tundra_api::machines::{Machine, PowerAction};
use tundra_api::ops::{DeployImage, Work};
use tundra_engine::machine_states::{Described, Event, State, next};
use tundra_store::{Actor, NewOperation};

use crate::error::{Error, Result};
use crate::handle::Conductor;

/// What `POST /v1/machines/{id}/actions` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A verb of the state table (manage, inspect, provide, deploy, delete, abort…).
    Verb(Event),
    Power(PowerAction),
}

impl Action {
    /// Parse an action's name; the error lists what there is.
    pub fn parse(s: &str) -> Result<Action> {
        if let Some(p) = PowerAction::parse(s) {
            return Ok(Action::Power(p));
        }
        let verb = match s {
            "manage" => Event::Manage,
            "inspect" => Event::Inspect,
            "provide" => Event::Provide,
            "deploy" => Event::Deploy,
            "delete" => Event::Delete,
            "adopt" => Event::Adopt,
            "rescue" => Event::Rescue,
            "unrescue" => Event::Unrescue,
            "abort" => Event::Abort,
            other => {
                let power: Vec<&str> = PowerAction::ALL.iter().map(|p| p.as_str()).collect();
                return Err(Error::invalid(
                    "/action",
                    format!(
                        "{other:?} is not an action; use manage, inspect, provide, deploy, delete, abort, or {}",
                        power.join(", ")
                    ),
                ));
            }
        };
        Ok(Action::Verb(verb))
    }
}

/// Start `action` on `m` (`image`: what a deploy writes, an active one —
/// the HTTP layer checks that it exists and is active before the action).
/// Returns the operation doing it — for `abort`, the operation it ended.
/// Refusals in order: the state (409), maintenance (409), the image (400).
pub async fn start(
    c: &Conductor,
    actor: &Actor,
    m: &Machine,
    action: Action,
    image: Option<&Image>,
) -> Result<OperationId> {
    let (from, machine_id) = (m.provision_state, m.id);
    let (to, verb) = match action {
        Action::Power(_) if from.is_transient() => {
            return Err(Error::conflict(format!("machine {} is {from}; power it when the running step ends", m.name)));
        }
        Action::Power(a) => (from, a.as_str()),
        Action::Verb(event) => {
            let to = next(from, event).map_err(|e| Error::conflict(e.to_string()))?;
            match event {
                Event::Abort => return abort(c, actor, m, to).await,
                Event::Manage | Event::Inspect | Event::Provide | Event::Deploy | Event::Delete => {}
                other => {
                    return Err(Error::conflict(format!(
                        "{} is not available in this tundrad yet (manage, inspect, provide, deploy, delete and abort are)",
                        other.as_str()
                    )));
                }
            }
            (to, event.as_str())
        }
    };
    if m.maintenance && !matches!(action, Action::Power(_)) {
        return Err(Error::conflict(format!(
            "machine {} is in maintenance ({}); take it out of maintenance first",
            m.name,
            m.maintenance_reason.clone().unwrap_or_default()
        )));
    }
    let work = match (action, image) {
        (Action::Verb(Event::Deploy), Some(img)) => {
            let sha256 = img.raw_sha256.clone().ok_or_else(|| {
                Error::invalid(
                    "/image_id",
                    format!("image {} is {}; deploy it once it is active", img.name, img.status.as_str()),
                )
            })?;
            let image = DeployImage { id: img.id, sha256, size_bytes: img.size_bytes.unwrap_or(0) };
            Work::MachineDeploy { machine_id, image, node_id: None }
        }
        (Action::Verb(Event::Deploy), None) => {
            return Err(Error::invalid("/image_id", "deploy needs the image to write: \"image_id\": \"<id>\""));
        }
        (_, Some(_)) => return Err(Error::invalid("/image_id", format!("only deploy takes an image, not {verb}"))),
        (Action::Power(a), None) => Work::MachinePower { machine_id, action: a },
        (Action::Verb(Event::Manage), None) => Work::MachineManage { machine_id },
        (Action::Verb(Event::Inspect), None) => Work::MachineInspect { machine_id },
        (Action::Verb(Event::Provide), None) => Work::MachineClean { machine_id },
        (Action::Verb(_), None) => Work::MachineDelete { machine_id, node_id: None },
    };
    let op = NewOperation { project_id: None, work };
    let (_, op_id) = c.store().begin_machine_transition(actor, m.id, from, to, verb, op).await?;
    c.run(op_id).await?;
    Ok(op_id)
}

/// `abort`: stop the operation waiting on a machine; the machine takes the
/// table's abort edge `to` (e.g. `deploy_wait` → `deploy_failed`).
pub async fn abort(c: &Conductor, actor: &Actor, m: &Machine, to: State) -> Result<OperationId> {
    let op = m.operation_id.ok_or_else(|| Error::conflict(format!("machine {} has no operation to abort", m.name)))?;
    c.cancel(op);
    c.store().end_machine_operation(m.id, op, to, format!("aborted by {}", actor.name)).await?;
    Ok(op)
}
