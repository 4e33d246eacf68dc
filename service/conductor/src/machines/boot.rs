//! The iPXE scripts that boot a machine into the agent: each carries a
//! fresh per-boot agent token (only its hash is stored) bound to the address
//! that fetched it, for the machine's running operation — one per boot
//! tundrad made — or, with discovery on, for an unknown MAC.

use std::time::Duration;

use tundra_api::agent::TOKEN_PREFIX;
use tundra_api::machines::Machine;
use tundra_engine::machine_states::{Described, Event, Kind, next};

use crate::error::Result;
use crate::handle::Conductor;
use crate::secrets::{new_secret, sha256_hex};

/// The iPXE script that boots `m` into the agent, with a fresh per-boot
/// token bound to `address`; `None` when this boot's script was served
/// already (or the session is gone).
pub async fn boot_script(c: &Conductor, m: &Machine, mac: &str, base: &str, address: &str) -> Result<Option<String>> {
    let st = m.provision_state;
    // The token lives as long as the boot step and its wait may take.
    let wait = next(st, Event::Wait).unwrap_or(st);
    let secs = |s: tundra_engine::machine_states::State| match s.info().kind {
        Kind::Transient { timeout, .. } => timeout.as_secs_f64(),
        _ => 0.0,
    };
    let ttl = Duration::from_secs_f64(((secs(st) + secs(wait)) * c.settings().machine_timeout_scale).max(600.0));
    let token = new_secret(TOKEN_PREFIX);
    let issued = c
        .store()
        .issue_agent_token(m.id, &sha256_hex(token.as_bytes()), &tundra_store::time_after(ttl), address)
        .await?;
    Ok(issued.map(|s| {
        let about = format!("{} is {st}; operation {}, boot {}", m.name, s.operation_id, s.boots);
        render_script(c, base, &token, mac, &about)
    }))
}

/// A MAC under discovery gets at most one script this often.
const DISCOVERY_BOOT_INTERVAL: Duration = Duration::from_secs(10);

/// The iPXE script for an unknown MAC while discovery is on: the agent
/// reports the hardware and tundrad enrolls the machine. `None` when the
/// MAC was given one less than 10 s ago.
pub async fn discovery_script(c: &Conductor, mac: &str, base: &str, address: &str) -> Result<Option<String>> {
    let token = new_secret(TOKEN_PREFIX);
    let ttl = c.settings().agent.boot_timeout.max(Duration::from_secs(600));
    let issued = c
        .store()
        .issue_discovery_token(
            mac,
            &sha256_hex(token.as_bytes()),
            &tundra_store::time_after(ttl),
            address,
            &tundra_store::time_before(DISCOVERY_BOOT_INTERVAL),
        )
        .await?;
    Ok(issued.then(|| render_script(c, base, &token, mac, &format!("discovering {mac}"))))
}

fn render_script(c: &Conductor, base: &str, token: &str, mac: &str, about: &str) -> String {
    let a = &c.settings().agent;
    let mut args = String::new();
    if !a.lldp_wait.is_zero() {
        args.push_str(&format!(" tundra.lldp_wait={}", a.lldp_wait.as_secs_f64()));
    }
    if !a.kernel_args.is_empty() {
        args.push_str(&format!(" {}", a.kernel_args));
    }
    format!(
        "#!ipxe\n\
         # tundrad: {about}\n\
         kernel {base}/boot/assets/{kernel} initrd={initrd} tundra.api={base} tundra.token={token} BOOTIF=01-{bootif}{args}\n\
         initrd {base}/boot/assets/{initrd}\n\
         boot\n",
        kernel = a.kernel,
        initrd = a.initrd,
        bootif = mac.replace(':', "-"),
    )
}
