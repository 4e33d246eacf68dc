//! The agent protocol: what `tundra-agent`, booted on a machine, and tundrad
//! say to each other. The agent authenticates with the per-boot token it found
//! on its kernel command line (`tundra.token=`), which tundrad minted when the
//! machine fetched its iPXE script; the token is bound to the machine and the
//! operation that booted it, and dies with that operation.
//!
//! The agent drives: it asks for work (`POST /v1/agent/heartbeat`), does it,
//! and reports (`POST /v1/agent/report`) until tundrad answers `exit`. Each
//! command carries an `id`; a report names the command it answers, so a
//! report that arrives twice (the agent retries until tundrad answers) is
//! recorded once, and a command the agent already finished is never redone.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Agent tokens start with this (API tokens with `tnd_`): the two never open each other's routes.
pub const TOKEN_PREFIX: &str = "tna_";

/// What the agent must do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Nothing yet; ask again after `seconds`.
    Wait { seconds: u32 },
    /// Collect the hardware inventory (and LLDP neighbours) and report it.
    Inspect { id: String },
    /// Stream the image at `url` (authenticated with the agent token; a path
    /// is relative to tundrad's base URL) onto `disk` (a name under `/dev`),
    /// verifying `sha256` as the bytes pass.
    /// With `config_drive`, the agent then adds a partition at the disk's
    /// end (MBR or GPT) holding a `config-2` FAT filesystem with these files
    /// (path → contents, e.g. `openstack/latest/meta_data.json`).
    WriteImage {
        id: String,
        url: String,
        sha256: String,
        size_bytes: i64,
        disk: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_drive: Option<std::collections::BTreeMap<String, String>>,
    },
    /// Erase these disks (names under `/dev`; empty: every disk the agent
    /// sees) and check they read back as zero.
    Erase { id: String, disks: Vec<String> },
    /// The work is over: stop (tundrad powers the machine off or reboots it).
    Exit,
}

impl Command {
    /// The command's ID, for commands that are work.
    pub fn id(&self) -> Option<&str> {
        match self {
            Command::Inspect { id } | Command::WriteImage { id, .. } | Command::Erase { id, .. } => Some(id),
            Command::Wait { .. } | Command::Exit => None,
        }
    }
}

/// `POST /v1/agent/heartbeat`: the agent is alive; what should it do?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The agent's version (`tundra-agent --version`).
    pub version: String,
    /// The command the agent is running, if any, with its progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// `POST /v1/agent/report`: how a command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The ID of the command this answers.
    pub id: String,
    pub ok: bool,
    /// Why it failed, for an operator (`ok` = false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the command produced: the inventory for `inspect`; bytes and
    /// sha256 for `write_image`; per-disk method and verification for `erase`.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// The answer to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportAccepted {
    /// False when this report had been recorded before (a retry).
    pub recorded: bool,
}
