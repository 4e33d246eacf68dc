//! Switches over SSH: put ports into VLANs — a whole batch of ports in one
//! session — check every command's output for errors, read every changed
//! port back and verify it. The command sets are data (`dialect`); the
//! transport is one russh shell session (`cli`) whose host key must match
//! its pin.
//!
//! A batch that fails part-way is rolled back in the same session (each
//! port already changed is put back to the VLAN it had) and reported with
//! the exact port, command and switch output.

pub mod cli;
pub mod dialect;

use std::collections::BTreeSet;
use std::time::Duration;

pub use dialect::Dialect;

use crate::bmc::Password;
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
}

impl Transient for SwitchError {
    fn is_transient(&self) -> bool {
        matches!(self, SwitchError::Connect(_) | SwitchError::Timeout(_))
    }
}

/// A port and the VLAN it should be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlan {
    pub port: String,
    pub vlan: u16,
}

/// What a batch did: each port's VLAN before and after (read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub before: Vec<(String, Option<u16>)>,
    pub after: Vec<(String, Option<u16>)>,
    /// The host key the switch presented.
    pub host_key: String,
}

/// A batch that failed: why, and what state it left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}{}", if self.rolled_back.is_empty() { String::new() } else { format!("; rolled back {:?}", self.rolled_back) })]
pub struct BatchError {
    pub error: SwitchError,
    /// Ports changed before the failure and put back to their old VLAN.
    pub rolled_back: Vec<String>,
    /// Ports changed before the failure that could not be put back.
    pub left_changed: Vec<String>,
}

impl From<SwitchError> for BatchError {
    fn from(error: SwitchError) -> Self {
        BatchError { error, rolled_back: Vec::new(), left_changed: Vec::new() }
    }
}

/// One switch: where, who, which key, which dialect.
#[derive(Debug, Clone)]
pub struct Switch {
    /// `HOST:PORT`.
    pub address: String,
    pub username: String,
    pub password: Password,
    pub host_key: HostKey,
    pub dialect: Dialect,
    /// Per command (and for connecting).
    pub timeout: Duration,
}

impl Switch {
    async fn session(&self) -> Result<cli::Session, SwitchError> {
        let mut s = cli::Session::open(
            &self.address,
            &self.username,
            &self.password,
            &self.host_key,
            self.dialect.spec.enable.as_deref(),
            self.timeout,
        )
        .await?;
        for c in &self.dialect.spec.setup {
            // Paging switches are a convenience: a CLI without them is fine.
            let _ = s.run(c).await?;
        }
        Ok(s)
    }

    async fn read_in(&self, s: &mut cli::Session, port: &str) -> Result<Option<u16>, SwitchError> {
        let cmd = self.dialect.read_command(port);
        let out = s.run(&cmd).await?;
        if let Some(line) = self.dialect.error_in(&out) {
            return Err(SwitchError::Command { port: Some(port.into()), command: cmd, line: line.into(), output: out });
        }
        if let Some(want) = self.dialect.read_expect(port)
            && !out.contains(&want)
        {
            return Err(SwitchError::Command {
                port: Some(port.into()),
                command: cmd,
                line: format!("the answer does not show {want:?}: is there such a port?"),
                output: out,
            });
        }
        Ok(self.dialect.vlan_in(&out))
    }

    /// Read the VLAN of each port (one session).
    pub async fn read(&self, ports: &[String]) -> Result<Vec<(String, Option<u16>)>, SwitchError> {
        let mut s = self.session().await?;
        let mut out = Vec::new();
        for p in ports {
            match self.read_in(&mut s, p).await {
                Ok(v) => out.push((p.clone(), v)),
                Err(e) => {
                    s.close().await;
                    return Err(e);
                }
            }
        }
        s.close().await;
        Ok(out)
    }

    /// Run `commands` in configuration mode, checking each answer; stops at the first error.
    async fn configure(
        &self,
        s: &mut cli::Session,
        port: Option<&str>,
        commands: &[String],
    ) -> Result<(), SwitchError> {
        for c in commands {
            let out = s.run(c).await?;
            if let Some(line) = self.dialect.error_in(&out) {
                return Err(SwitchError::Command {
                    port: port.map(String::from),
                    command: c.clone(),
                    line: line.trim().into(),
                    output: out,
                });
            }
        }
        Ok(())
    }

    /// Put every port into its VLAN in one session: read the ports, enter
    /// configuration, make the VLANs, move the ports, leave, read them back
    /// and verify. On failure, ports already moved go back to their old VLAN.
    pub async fn apply(&self, changes: &[PortVlan]) -> Result<Applied, BatchError> {
        let mut s = self.session().await?;
        let r = self.apply_in(&mut s, changes).await;
        s.close().await;
        r
    }

    async fn apply_in(&self, s: &mut cli::Session, changes: &[PortVlan]) -> Result<Applied, BatchError> {
        let mut before = Vec::new();
        for c in changes {
            before.push((c.port.clone(), self.read_in(s, &c.port).await?));
        }
        let spec = &self.dialect.spec;
        self.configure(s, None, &spec.configure).await?;
        let vlans: BTreeSet<u16> = changes.iter().map(|c| c.vlan).collect();
        let mut done: Vec<usize> = Vec::new();
        let mut failed = None;
        for v in &vlans {
            if let Err(e) = self.configure(s, None, &self.dialect.vlan_commands(*v)).await {
                failed = Some(e);
                break;
            }
        }
        if failed.is_none() {
            for (i, c) in changes.iter().enumerate() {
                let cmds = self.dialect.port_commands(&c.port, c.vlan, before[i].1);
                match self.configure(s, Some(&c.port), &cmds).await {
                    Ok(()) => done.push(i),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(error) = failed {
            // Put back what moved, still in configuration mode.
            let (mut rolled_back, mut left_changed) = (Vec::new(), Vec::new());
            for &i in &done {
                let (port, old) = (&changes[i].port, before[i].1);
                let back = match old {
                    Some(old) => {
                        self.configure(s, Some(port), &self.dialect.port_commands(port, old, Some(changes[i].vlan)))
                            .await
                    }
                    None => Err(SwitchError::Verify { port: port.clone(), want: 0, got: None }),
                };
                match back {
                    Ok(()) => rolled_back.push(port.clone()),
                    Err(_) => left_changed.push(port.clone()),
                }
            }
            let _ = self.configure(s, None, &spec.leave).await;
            return Err(BatchError { error, rolled_back, left_changed });
        }
        self.configure(s, None, &spec.leave).await?;
        let mut after = Vec::new();
        for c in changes {
            let got = self.read_in(s, &c.port).await?;
            if got != Some(c.vlan) {
                return Err(SwitchError::Verify { port: c.port.clone(), want: c.vlan, got }.into());
            }
            after.push((c.port.clone(), got));
        }
        Ok(Applied { before, after, host_key: s.host_key.clone() })
    }
}
