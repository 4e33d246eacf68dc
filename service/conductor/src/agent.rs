//! The agent protocol's sessions, as tundrad answers them: who is calling
//! (a per-boot token of a machine's operation, or of discovery), the iPXE
//! script a booting MAC gets, the command a heartbeat is answered with, a
//! report recorded once (or, from discovery, the machine enrolled), and the
//! image a deploying agent streams.

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

/// The caller a bearer token names; `None` when it names no live session
/// (unknown, expired, its operation over, or discovery turned off).
pub async fn caller(c: &Conductor, token: &str) -> Result<Option<Caller>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = sha256_hex(token.as_bytes());
    if let Some(s) = c.store().agent_by_token(&hash).await? {
        return Ok(live(s.token_expires_at.as_deref()).then_some(Caller::Machine(s)));
    }
    Ok(match c.store().discovery_by_token(&hash).await? {
        Some(d) if c.settings().discovery.enabled && live(Some(&d.token_expires_at)) => Some(Caller::Discovery(d)),
        _ => None,
    })
}

/// The iPXE script for `mac` (lowercase, colons) when tundrad is booting its
/// machine into the agent, or, with discovery on, for a MAC no machine has.
/// `base`: how the firmware reached tundrad. `None`: nothing to boot — the
/// firmware falls through to its next boot device.
pub async fn script(c: &Conductor, mac: &str, base: &str) -> Result<Option<String>> {
    match c.store().machine_by_mac(mac).await? {
        Some(m) => {
            if c.store().agent_session(m.id).await?.is_none() {
                return Ok(None);
            }
            Ok(Some(boot::boot_script(c, &m, mac, base).await?))
        }
        None if c.settings().discovery.enabled => Ok(Some(boot::discovery_script(c, mac, base).await?)),
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
