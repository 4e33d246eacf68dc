//! What a switch session can fail with, and how its host key is trusted —
//! shared by every way of talking to a switch (CLI, exec, NETCONF).

use crate::retry::Transient;

/// How a switch's SSH host key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKey {
    /// Only this key (`SHA256:…`, as `ssh-keygen -lf` prints it).
    Pinned(String),
    /// Any key, to learn it (an admin registering the switch pins what it saw).
    Learn,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("cannot reach the switch: {0}")]
    Connect(String),
    #[error(
        "the switch at {address} presented host key {got}, not the pinned {want}; if the switch was replaced, pin its new key"
    )]
    HostKey { address: String, want: String, got: String },
    #[error("{0}")]
    Auth(String),
    #[error("no answer in time: {0}")]
    Timeout(String),
    #[error("the switch refused {command:?}{}: {line}", port.as_ref().map(|p| format!(" (port {p})")).unwrap_or_default())]
    Command { port: Option<String>, command: String, line: String, output: String },
    #[error("port {port} reads back VLAN {got:?} after it was set to {want}")]
    Verify { port: String, want: u16, got: Option<u16> },
    /// Nothing was sent: the name is not one of this dialect's port names.
    #[error("{port:?} is not a port name this switch's dialect accepts ({why}); nothing was sent")]
    BadPort { port: String, why: String },
}

impl SwitchError {
    /// The port an error is about, when it is about one.
    pub fn port(&self) -> Option<&str> {
        match self {
            SwitchError::Command { port, .. } => port.as_deref(),
            SwitchError::Verify { port, .. } | SwitchError::BadPort { port, .. } => Some(port),
            _ => None,
        }
    }
}

impl Transient for SwitchError {
    fn is_transient(&self) -> bool {
        matches!(self, SwitchError::Connect(_) | SwitchError::Timeout(_))
    }
}
