//! Operations (long work with progress) and events (the audit log).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EventId, OperationId, ProjectId};

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Accepted, not started (or waiting to be resumed after a restart).
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl OperationState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Pending => "pending",
            OperationState::Running => "running",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OperationState::Pending,
            "running" => OperationState::Running,
            "succeeded" => OperationState::Succeeded,
            "failed" => OperationState::Failed,
            _ => return None,
        })
    }
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
