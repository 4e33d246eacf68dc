//! Operations (long work with progress) and events (the audit log).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::machines::PowerAction;
use crate::{EventId, ImageId, MachineId, NodeId, OperationId, ProjectId};

words! {
    /// Where an operation is.
    pub enum OperationState {
        /// Accepted, not started (or waiting to be resumed after a restart).
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl OperationState {
    pub fn is_terminal(self) -> bool {
        matches!(self, OperationState::Succeeded | OperationState::Failed)
    }
}

/// Long-running work. Once accepted it runs on the service's own authority:
/// the caller's token may expire or be revoked without stopping it, and it
/// resumes after a `tundrad` restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: OperationId,
    pub project_id: Option<ProjectId>,
    /// What the operation does, e.g. `image.import`.
    pub kind: String,
    /// The noun and ID it works on, e.g. `image`, `0190…`.
    pub target_type: String,
    pub target_id: String,
    pub state: OperationState,
    /// Work done so far and in all (units depend on `kind`; bytes for imports).
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    /// The current step, for humans.
    pub message: String,
    pub error: Option<String>,
    /// Who asked for it.
    pub created_by: String,
    /// How many times it has been started (more than 1 after restarts).
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// What an operation does, with everything its worker needs to run it — and
/// to run it again after a restart. Stored as the operation's input; the
/// runner matches it exhaustively, so no operation kind exists outside this
/// enum. Never holds secrets (the worker opens sealed ones itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Work {
    /// Fetch an image from its `source_url`, verify, convert, publish.
    #[serde(rename = "image.import")]
    ImageImport { image_id: ImageId },
    /// Verify a machine's BMC answers (`enroll` → `manageable`).
    #[serde(rename = "machine.manage")]
    MachineManage { machine_id: MachineId },
    /// A power action; the provision state stays as it is.
    #[serde(rename = "machine.power")]
    MachinePower { machine_id: MachineId, action: PowerAction },
    /// Boot the agent, record the hardware, apply the inspection rules.
    #[serde(rename = "machine.inspect")]
    MachineInspect { machine_id: MachineId },
    /// Clean (erase the disks), then `available` (the `provide` verb).
    #[serde(rename = "machine.clean")]
    MachineClean { machine_id: MachineId },
    /// Write `image` (and, for a node, its config drive) and boot it.
    #[serde(rename = "machine.deploy")]
    MachineDeploy {
        machine_id: MachineId,
        image: DeployImage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_id: Option<NodeId>,
    },
    /// Undeploy: power off, then clean (for a node's machine: after the node let go).
    #[serde(rename = "machine.delete")]
    MachineDelete {
        machine_id: MachineId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_id: Option<NodeId>,
    },
}

/// The image a deploy writes: its raw bytes' checksum and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployImage {
    pub id: ImageId,
    /// sha256 of the raw bytes the agent writes (verified as they stream).
    pub sha256: String,
    pub size_bytes: i64,
}

impl Work {
    /// The operation's `kind` as shown in its view, e.g. `machine.deploy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Work::ImageImport { .. } => "image.import",
            Work::MachineManage { .. } => "machine.manage",
            Work::MachinePower { .. } => "machine.power",
            Work::MachineInspect { .. } => "machine.inspect",
            Work::MachineClean { .. } => "machine.clean",
            Work::MachineDeploy { .. } => "machine.deploy",
            Work::MachineDelete { .. } => "machine.delete",
        }
    }

    /// The noun and ID the operation works on.
    pub fn target(&self) -> (&'static str, String) {
        match self {
            Work::ImageImport { image_id } => (ImageId::NOUN, image_id.to_string()),
            Work::MachineManage { machine_id }
            | Work::MachinePower { machine_id, .. }
            | Work::MachineInspect { machine_id }
            | Work::MachineClean { machine_id }
            | Work::MachineDeploy { machine_id, .. }
            | Work::MachineDelete { machine_id, .. } => (MachineId::NOUN, machine_id.to_string()),
        }
    }

    /// The node the work is for, if any.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Work::MachineDeploy { node_id, .. } | Work::MachineDelete { node_id, .. } => *node_id,
            _ => None,
        }
    }

    /// The machine the work holds, if it is machine work.
    pub fn machine(&self) -> Option<MachineId> {
        match self {
            Work::ImageImport { .. } => None,
            Work::MachineManage { machine_id }
            | Work::MachinePower { machine_id, .. }
            | Work::MachineInspect { machine_id }
            | Work::MachineClean { machine_id }
            | Work::MachineDeploy { machine_id, .. }
            | Work::MachineDelete { machine_id, .. } => Some(*machine_id),
        }
    }
}

/// One change: who did what to which object, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: EventId,
    pub at: String,
    /// The user name, or `tundrad` for work the service does itself.
    pub actor: String,
    pub project_id: Option<ProjectId>,
    pub object_type: String,
    pub object_id: String,
    /// `created`, `updated`, `deleted`, or a noun-specific verb.
    pub action: String,
    /// What changed (never secrets).
    pub detail: serde_json::Value,
    pub request_id: Option<String>,
}

/// Query parameters of `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub project: Option<String>,
    /// Only events of this noun (e.g. `image`)…
    pub object_type: Option<String>,
    /// …and this object.
    pub object_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_tagged_by_its_kind() {
        let m = MachineId::generate();
        let w = Work::MachinePower { machine_id: m, action: PowerAction::SoftPowerOff };
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "machine.power", "machine_id": m, "action": "soft_power_off"}));
        assert_eq!(v["kind"], w.kind());
        assert_eq!(serde_json::from_value::<Work>(v).unwrap(), w);
        assert_eq!(w.target(), ("machine", m.to_string()));
        let unknown = serde_json::json!({"kind": "machine.teleport", "machine_id": m});
        assert!(serde_json::from_value::<Work>(unknown).is_err());
    }
}
