//! The agent protocol's sessions, as tundrad answers them: who is calling
//! (a per-boot token of a machine's operation, or of discovery, from the
//! address it was issued to), the iPXE script a booting MAC gets, the
//! command a heartbeat is answered with, a report recorded once (or, from
//! discovery, the machine enrolled), and the image a deploying agent streams.
//!
//! The trust rules (docs/security.md): a script is served only to the DHCP
//! lease holder of its MAC, only once per boot tundrad made (or per
//! discovery boot), and its token then works only from that address.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use tundra_api::agent::{Command, Report, ReportAccepted, TOKEN_PREFIX};
use tundra_api::ops::Work;
use tundra_store::{AgentSession, DiscoverySession};

use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::machines::{boot, discovery};
use crate::secrets::sha256_hex;

/// The agent behind a request: a live session of an operation on a known
/// machine, or of discovery (an unknown MAC).
#[derive(Debug)]
pub enum Caller {
    Machine(AgentSession),
    Discovery(DiscoverySession),
}

fn live(expires_at: Option<&str>) -> bool {
    expires_at.and_then(tundra_store::parse_time).is_some_and(|t| t > SystemTime::now())
}

/// The caller a bearer token names, calling from `peer`; `None` when it
/// names no live session (unknown, expired, its operation over, or
/// discovery turned off) or the session's agent is at another address.
pub async fn caller(c: &Conductor, token: &str, peer: IpAddr) -> Result<Option<Caller>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = sha256_hex(token.as_bytes());
    let here = peer.to_string();
    let from = |bound: &Option<String>| {
        let ok = bound.as_deref() == Some(here.as_str());
        if !ok {
            tracing::warn!(%peer, bound = bound.as_deref().unwrap_or("nothing"), "an agent token was used from another address; refused");
        }
        ok
    };
    if let Some(s) = c.store().agent_by_token(&hash).await? {
        if !live(s.token_expires_at.as_deref()) {
            return Ok(None);
        }
        // Issued before tokens were bound to an address (an upgrade mid-boot):
        // bound to its first caller from now on.
        let adopted = s.agent_address.is_none() && c.store().bind_agent_address(s.machine_id, &here).await?;
        return Ok((adopted || from(&s.agent_address)).then_some(Caller::Machine(s)));
    }
    Ok(match c.store().discovery_by_token(&hash).await? {
        Some(d) if c.settings().discovery.enabled && live(Some(&d.token_expires_at)) => {
            let adopted = d.agent_address.is_none() && c.store().bind_discovery_address(&d.mac, &here).await?;
            (adopted || from(&d.agent_address)).then_some(Caller::Discovery(d))
        }
        _ => None,
    })
}

/// A boot script request, as the provisioning network's boot listener saw it.
#[derive(Debug, Clone, Copy)]
pub struct BootRequest<'a> {
    /// The MAC the script is for (lowercase, colons).
    pub mac: &'a str,
    /// How the firmware reached tundrad (`http://ADDRESS:PORT`).
    pub base: &'a str,
    /// Who asked.
    pub peer: IpAddr,
    /// The address the network's DHCP server leases to `mac` now, if any.
    pub lease_holder: Option<IpAddr>,
}

/// The iPXE script for `r.mac` when tundrad is booting its machine into the
/// agent, or, with discovery on, for a MAC no machine has — served only to
/// the MAC's lease holder, once per boot. `None`: nothing to boot (the
/// firmware falls through to its next boot device).
pub async fn script(c: &Conductor, r: BootRequest<'_>) -> Result<Option<String>> {
    if r.lease_holder != Some(r.peer) {
        tracing::warn!(mac = r.mac, peer = %r.peer, lease = ?r.lease_holder, "a boot script was asked for by an address that does not hold the MAC's lease; refused");
        return Ok(None);
    }
    let peer = r.peer.to_string();
    match c.store().machine_by_mac(r.mac).await? {
        Some(m) => {
            if c.store().agent_session(m.id).await?.is_none() {
                return Ok(None);
            }
            let script = boot::boot_script(c, &m, r.mac, r.base, &peer).await?;
            if script.is_none() {
                tracing::warn!(machine = %m.name, mac = r.mac, peer = %r.peer, "a second boot script was asked for in one boot; refused (tundrad reboots a machine whose agent stays silent)");
            }
            Ok(script)
        }
        None if c.settings().discovery.enabled => boot::discovery_script(c, r.mac, r.base, &peer).await,
        None => Ok(None),
    }
}

fn discovery_command(mac: &str) -> String {
    format!("discover-{mac}")
}

/// The agent is alive (with what it is doing); what should it do?
pub async fn heartbeat(c: &Conductor, caller: Caller, progress: Option<String>) -> Result<Command> {
    let s = match caller {
        Caller::Machine(s) => s,
        Caller::Discovery(d) if d.machine_id.is_some() => return Ok(Command::Exit),
        Caller::Discovery(d) => return Ok(Command::Inspect { id: discovery_command(&d.mac) }),
    };
    c.store().agent_seen(s.machine_id, progress).await?;
    if s.report.is_some() {
        return Ok(Command::Exit);
    }
    serde_json::from_value(s.command.clone()).map_err(|e| Error::Internal(format!("a stored agent command: {e}")))
}

/// How the agent's command ended: recorded once (a retry is acknowledged);
/// a discovered machine's report enrolls it.
pub async fn report(c: &Conductor, caller: Caller, r: Report) -> Result<ReportAccepted> {
    let value = serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))?;
    let s = match caller {
        Caller::Machine(s) => s,
        Caller::Discovery(d) => return discovered(c, d, r, value).await,
    };
    let recorded = c.store().agent_report(s.machine_id, &r.id, r.ok, &value).await?;
    if recorded {
        tracing::info!(machine = %s.machine_id, command = %r.id, ok = r.ok, error = r.error.as_deref().unwrap_or(""), "agent reported");
    }
    Ok(ReportAccepted { recorded })
}

/// A discovered machine's report: enroll it (once).
async fn discovered(c: &Conductor, d: DiscoverySession, r: Report, value: serde_json::Value) -> Result<ReportAccepted> {
    if r.id != discovery_command(&d.mac) {
        return Err(Error::conflict(format!(
            "the report is for command {:?}, but the agent was asked to run {:?}",
            r.id,
            discovery_command(&d.mac)
        )));
    }
    if d.machine_id.is_some() {
        return Ok(ReportAccepted { recorded: false });
    }
    if !r.ok {
        tracing::warn!(mac = %d.mac, error = r.error.as_deref().unwrap_or(""), "a discovered machine's agent failed");
        return Err(Error::Failed(format!("the agent failed: {}; nothing was enrolled", r.error.unwrap_or_default())));
    }
    let m = discovery::enroll(c, &d.mac, &r.details).await.map_err(|e| {
        tracing::warn!(mac = %d.mac, error = %e, "could not enroll a discovered machine");
        Error::Failed(e)
    })?;
    let recorded = c.store().discovery_enrolled(&d.mac, &value, m.id).await?;
    Ok(ReportAccepted { recorded })
}

/// The raw image file the calling agent was asked to write.
pub async fn image(c: &Conductor, caller: Caller) -> Result<PathBuf> {
    let Caller::Machine(s) = caller else {
        return Err(Error::conflict("a discovered machine is not asked to write an image"));
    };
    match c.store().operation_input(s.operation_id).await?.work {
        Work::MachineDeploy { image, .. } => Ok(crate::images::raw_path(c, image.id)),
        _ => Err(Error::conflict("the agent was not asked to write an image")),
    }
}
