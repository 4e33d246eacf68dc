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
mod error;
pub mod exec;
pub mod netconf;
pub mod queue;

use std::collections::BTreeSet;
use std::time::Duration;

pub use dialect::Dialect;
pub use error::{HostKey, SwitchError};

use crate::bmc::Password;

/// What to quote from a command that failed by its exit status: its last line.
fn failure_line(output: &str) -> String {
    output.lines().last().unwrap_or("it failed (non-zero exit status)").trim().to_string()
}

/// Batches of more ports than this read the whole configuration once.
const READ_ALL_FROM: usize = 8;

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
#[error(
    "{error}{}{}",
    if self.rolled_back.is_empty() { String::new() } else { format!("; rolled back {:?}", self.rolled_back) },
    if self.left_changed.is_empty() { String::new() } else { format!("; could not put back {:?}", self.left_changed) }
)]
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
    /// Login password (and the enable password of CLIs that ask for one).
    pub password: Password,
    /// An OpenSSH private key to log in with instead of the password.
    pub private_key: Option<Password>,
    pub host_key: HostKey,
    pub dialect: Dialect,
    /// Per command (and for connecting).
    pub timeout: Duration,
}

/// A session of either kind of host.
enum Conn {
    Cli(cli::Session),
    Exec(exec::Session),
}

impl Conn {
    /// Each command's output, and whether it failed by its exit status (exec).
    async fn run_many(&mut self, commands: &[String], pipeline: bool) -> Result<Vec<(String, bool)>, SwitchError> {
        let mut out = Vec::with_capacity(commands.len());
        match self {
            Conn::Cli(s) if pipeline => out.extend(s.run_many(commands).await?.into_iter().map(|o| (o, false))),
            Conn::Cli(s) => {
                for c in commands {
                    out.push((s.run(c).await?, false));
                }
            }
            Conn::Exec(s) => {
                for c in commands {
                    let (status, o) = s.run(c).await?;
                    out.push((o, status != 0));
                }
            }
        }
        Ok(out)
    }

    fn in_config(&self) -> bool {
        match self {
            Conn::Cli(s) => s.in_config(),
            Conn::Exec(_) => true,
        }
    }

    fn in_submode(&self) -> bool {
        match self {
            Conn::Cli(s) => s.in_submode(),
            Conn::Exec(_) => false,
        }
    }

    fn host_key(&self) -> String {
        match self {
            Conn::Cli(s) => s.host_key.clone(),
            Conn::Exec(s) => s.host_key.clone(),
        }
    }

    async fn close(self) {
        match self {
            Conn::Cli(s) => s.close().await,
            Conn::Exec(s) => s.close().await,
        }
    }
}

impl Switch {
    fn secret(&self) -> cli::Secret<'_> {
        match &self.private_key {
            Some(k) => cli::Secret::Key(k),
            None => cli::Secret::Password(&self.password),
        }
    }

    async fn session(&self) -> Result<Conn, SwitchError> {
        if self.dialect.spec.transport == dialect::Transport::Exec {
            let s =
                exec::Session::open(&self.address, &self.username, self.secret(), &self.host_key, self.timeout).await?;
            return Ok(Conn::Exec(s));
        }
        let mut s = cli::Session::open(
            &self.address,
            &self.username,
            (self.secret(), &self.password),
            &self.host_key,
            self.dialect.spec.enable.as_deref(),
            self.timeout,
        )
        .await?;
        for c in &self.dialect.spec.setup {
            // Paging switches are a convenience: a CLI without them is fine.
            let _ = s.run(c).await?;
        }
        Ok(Conn::Cli(s))
    }

    /// Run `commands` (at once, when the dialect pipelines) and check
    /// every answer. After a refusal the session is brought back to plain
    /// configuration mode (`back_to_config`), so what follows runs where
    /// it should.
    async fn group(
        &self,
        s: &mut Conn,
        port: Option<&str>,
        commands: &[String],
        back_to_config: bool,
    ) -> Result<Vec<String>, SwitchError> {
        let outs = s.run_many(commands, self.dialect.spec.pipeline).await?;
        for (c, (out, failed)) in commands.iter().zip(&outs) {
            let line = match self.dialect.error_in(out) {
                Some(l) => Some(l.trim().to_string()),
                None if *failed => Some(failure_line(out)),
                None => None,
            };
            if let Some(line) = line {
                let e = SwitchError::Command {
                    port: port.map(String::from),
                    command: c.clone(),
                    line,
                    output: out.clone(),
                };
                if back_to_config {
                    self.resync(s).await?;
                }
                return Err(e);
            }
        }
        Ok(outs.into_iter().map(|(o, _)| o).collect())
    }

    /// Out of any sub-mode, and into configuration mode if a stray `exit` left it.
    async fn resync(&self, s: &mut Conn) -> Result<(), SwitchError> {
        for _ in 0..4 {
            if !s.in_submode() {
                break;
            }
            s.run_many(&["exit".to_string()], false).await?;
        }
        if !s.in_config() {
            s.run_many(&self.dialect.spec.configure, false).await?;
        }
        Ok(())
    }

    /// Read ports (outside configuration mode): their VLANs, in order.
    /// Many ports at once come from one `read_all` when the dialect has it.
    async fn read_many(&self, s: &mut Conn, ports: &[String]) -> Result<Vec<Option<u16>>, SwitchError> {
        if ports.len() > READ_ALL_FROM
            && let Some(all) = self.dialect.spec.read_all.clone()
        {
            let out = s.run_many(std::slice::from_ref(&all), false).await?.remove(0).0;
            if let Some(line) = self.dialect.error_in(&out) {
                return Err(SwitchError::Command { port: None, command: all, line: line.into(), output: out });
            }
            return ports
                .iter()
                .map(|p| match self.dialect.section_in(&out, p).flatten() {
                    Some(section) => Ok(self.dialect.vlan_in(section)),
                    None => Err(SwitchError::Command {
                        port: Some(p.clone()),
                        command: all.clone(),
                        line: format!("no section for {p} in the answer: is there such a port?"),
                        output: out.clone(),
                    }),
                })
                .collect();
        }
        let cmds: Vec<String> = ports.iter().map(|p| self.dialect.read_command(p)).collect();
        let outs = s.run_many(&cmds, self.dialect.spec.pipeline).await?;
        ports
            .iter()
            .zip(cmds)
            .zip(outs)
            .map(|((p, c), (o, failed))| {
                if failed {
                    let line = failure_line(&o);
                    return Err(SwitchError::Command { port: Some(p.clone()), command: c, line, output: o });
                }
                self.parse_read(p, c, o)
            })
            .collect()
    }

    async fn netconf(&self) -> Result<netconf::Session, SwitchError> {
        netconf::Session::open(&self.address, &self.username, self.secret(), &self.host_key, self.timeout).await
    }

    /// A read's answer checked: errors, the port shown, its VLAN.
    fn parse_read(&self, port: &str, cmd: String, out: String) -> Result<Option<u16>, SwitchError> {
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

    async fn read_netconf(&self, s: &mut netconf::Session, port: &str) -> Result<Option<u16>, SwitchError> {
        let cmd = self.dialect.read_command(port);
        let out = s.rpc(&cmd, Some(port)).await?;
        self.parse_read(port, cmd, out)
    }

    /// NETCONF: read every port, load all changes into the candidate in
    /// one edit, commit; on any error discard the candidate (nothing
    /// changed); read back and verify.
    async fn apply_netconf(&self, s: &mut netconf::Session, changes: &[PortVlan]) -> Result<Applied, BatchError> {
        let mut before = Vec::new();
        for c in changes {
            before.push((c.port.clone(), self.read_netconf(s, &c.port).await?));
        }
        let vlans: BTreeSet<u16> = changes.iter().map(|c| c.vlan).collect();
        let mut config = String::new();
        for v in &vlans {
            config.extend(self.dialect.vlan_commands(*v));
        }
        for (i, c) in changes.iter().enumerate() {
            config.extend(self.dialect.port_commands(&c.port, c.vlan, before[i].1));
        }
        let edit = format!(
            "<edit-config><target><candidate/></target><config><configuration>{config}</configuration></config></edit-config>"
        );
        for rpc in [edit.as_str(), "<commit/>"] {
            if let Err(mut e) = s.rpc(rpc, None).await {
                let _ = s.rpc("<discard-changes/>", None).await;
                // Name the port the switch's answer is about.
                if let SwitchError::Command { port, line, output, .. } = &mut e {
                    *port = changes
                        .iter()
                        .find(|c| line.contains(&c.port) || output.contains(&format!(">{}<", c.port)))
                        .map(|c| c.port.clone());
                }
                return Err(e.into());
            }
        }
        let mut after = Vec::new();
        for c in changes {
            let got = self.read_netconf(s, &c.port).await?;
            if got != Some(c.vlan) {
                return Err(SwitchError::Verify { port: c.port.clone(), want: c.vlan, got }.into());
            }
            after.push((c.port.clone(), got));
        }
        Ok(Applied { before, after, host_key: s.host_key.clone() })
    }

    /// Read the VLAN of each port (one session). Every name is checked
    /// against the dialect before a session opens.
    pub async fn read(&self, ports: &[String]) -> Result<Vec<(String, Option<u16>)>, SwitchError> {
        for p in ports {
            self.dialect.check_port(p)?;
        }
        if self.dialect.spec.transport == dialect::Transport::Netconf {
            let mut s = self.netconf().await?;
            let mut out = Vec::new();
            for p in ports {
                match self.read_netconf(&mut s, p).await {
                    Ok(v) => out.push((p.clone(), v)),
                    Err(e) => {
                        s.close().await;
                        return Err(e);
                    }
                }
            }
            s.close().await;
            return Ok(out);
        }
        let mut s = self.session().await?;
        let r = self.read_many(&mut s, ports).await;
        s.close().await;
        Ok(ports.iter().cloned().zip(r?).collect())
    }

    /// Put every port into its VLAN in one session: read the ports, enter
    /// configuration, make the VLANs, move the ports, leave, read them back
    /// and verify. On failure, ports already moved go back to their old VLAN.
    /// Every name is checked against the dialect before a session opens.
    pub async fn apply(&self, changes: &[PortVlan]) -> Result<Applied, BatchError> {
        for c in changes {
            self.dialect.check_port(&c.port)?;
        }
        if self.dialect.spec.transport == dialect::Transport::Netconf {
            let mut s = self.netconf().await?;
            let r = self.apply_netconf(&mut s, changes).await;
            s.close().await;
            return r;
        }
        let mut s = self.session().await?;
        let r = self.apply_in(&mut s, changes).await;
        s.close().await;
        r
    }

    async fn apply_in(&self, s: &mut Conn, changes: &[PortVlan]) -> Result<Applied, BatchError> {
        let ports: Vec<String> = changes.iter().map(|c| c.port.clone()).collect();
        let old = self.read_many(s, &ports).await?;
        let before: Vec<(String, Option<u16>)> = ports.iter().cloned().zip(old.iter().copied()).collect();
        let spec = &self.dialect.spec;
        self.group(s, None, &spec.configure, false).await?;
        let vlans: BTreeSet<u16> = changes.iter().map(|c| c.vlan).collect();
        let vlan_cmds: Vec<String> = vlans.iter().flat_map(|v| self.dialect.vlan_commands(*v)).collect();
        let mut done: Vec<usize> = Vec::new();
        let mut failed = self.group(s, None, &vlan_cmds, true).await.err();
        if failed.is_none() {
            for (i, c) in changes.iter().enumerate() {
                let cmds = self.dialect.port_commands(&c.port, c.vlan, old[i]);
                match self.group(s, Some(&c.port), &cmds, true).await {
                    Ok(_) => done.push(i),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(error) = failed {
            // Put back what moved (the session is in configuration mode again).
            let (mut rolled_back, mut left_changed) = (Vec::new(), Vec::new());
            for &i in &done {
                let port = &changes[i].port;
                // A port that had no VLAN has nothing to go back to.
                let back = match old[i] {
                    Some(v) => {
                        let cmds = self.dialect.port_commands(port, v, Some(changes[i].vlan));
                        self.group(s, Some(port), &cmds, true).await.is_ok()
                    }
                    None => false,
                };
                if back {
                    rolled_back.push(port.clone());
                } else {
                    left_changed.push(port.clone());
                }
            }
            let _ = self.group(s, None, &spec.leave, false).await;
            return Err(BatchError { error, rolled_back, left_changed });
        }
        self.group(s, None, &spec.leave, false).await?;
        let got = self.read_many(s, &ports).await?;
        for (c, g) in changes.iter().zip(&got) {
            if *g != Some(c.vlan) {
                return Err(SwitchError::Verify { port: c.port.clone(), want: c.vlan, got: *g }.into());
            }
        }
        Ok(Applied { before, after: ports.into_iter().zip(got).collect(), host_key: s.host_key() })
    }
}
