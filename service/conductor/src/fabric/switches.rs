//! Switches tundrad programs: their settings checked (dialect, address,
//! pinned host key, login, session limits) and their credentials sealed
//! before the store sees them; the fabric worker opens them again.

use std::collections::BTreeMap;

use tundra_api::SecretId;
use tundra_api::fabric::{FabricKind, Switch, SwitchCreate, SwitchUpdate};
use tundra_drivers::switch as sw;
use tundra_store::{Actor, NewSwitch, SecretRecord, SwitchChanges};

use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::secrets::Plaintext;

/// The built-in dialects, parsed once.
pub(crate) fn dialects() -> &'static BTreeMap<String, sw::Dialect> {
    static D: std::sync::OnceLock<BTreeMap<String, sw::Dialect>> = std::sync::OnceLock::new();
    D.get_or_init(sw::dialect::built_in)
}

fn check_dialect(d: &str) -> Result<()> {
    if dialects().contains_key(d) {
        return Ok(());
    }
    let names: Vec<&str> = dialects().keys().map(String::as_str).collect();
    Err(Error::invalid("/dialect", format!("{d:?} is not a dialect tundrad speaks; one of {}", names.join(", "))))
}

fn check_address(a: &str) -> Result<()> {
    let ok = a.rsplit_once(':').is_some_and(|(h, port)| {
        !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) && !h.chars().any(|c| c.is_whitespace() || c == '/')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("/address", format!("{a:?}: give HOST:PORT of its SSH server, e.g. \"10.0.0.2:22\"")))
    }
}

fn check_host_key(k: &str) -> Result<()> {
    let ok = k
        .strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "/host_key",
            "the host key's fingerprint as `ssh-keygen -lf KEY.pub` prints it: SHA256: and 43 base64 characters",
        ))
    }
}

fn check_private_key(k: &str) -> Result<()> {
    if k.trim_start().starts_with("-----BEGIN ") && k.contains("PRIVATE KEY-----") {
        Ok(())
    } else {
        Err(Error::invalid(
            "/private_key",
            "an unencrypted private key in OpenSSH or PEM form (-----BEGIN … PRIVATE KEY-----)",
        ))
    }
}

fn check_username(u: &str) -> Result<()> {
    if u.is_empty() || u.len() > 64 {
        return Err(Error::invalid("/username", "1–64 characters"));
    }
    Ok(())
}

fn check_limits(max_sessions: Option<u32>, min_interval_ms: Option<u32>) -> Result<()> {
    if max_sessions.is_some_and(|m| !(1..=64).contains(&m)) {
        return Err(Error::invalid("/max_sessions", "1–64 sessions at once"));
    }
    if min_interval_ms.is_some_and(|m| m > 600_000) {
        return Err(Error::invalid("/min_interval_ms", "at most 600000 (10 minutes)"));
    }
    Ok(())
}

fn seal(c: &Conductor, secret: &str) -> SecretRecord {
    c.keyring().seal(SecretId::generate(), &Plaintext(secret.as_bytes().to_vec()))
}

/// Add a switch (its name and description checked by the caller).
pub async fn create(c: &Conductor, actor: &Actor, r: SwitchCreate) -> Result<Switch> {
    check_dialect(&r.dialect)?;
    check_address(&r.address)?;
    check_username(&r.username)?;
    match (&r.password, &r.private_key) {
        (None, None) => return Err(Error::invalid("/password", "give a password or a private_key to log in with")),
        (_, Some(k)) => check_private_key(k)?,
        _ => {}
    }
    check_host_key(&r.host_key)?;
    check_limits(r.max_sessions, r.min_interval_ms)?;
    let pn = c.store().physical_network(r.physical_network_id).await.map_err(|_| {
        Error::invalid("/physical_network_id", format!("no physical network {}", r.physical_network_id))
    })?;
    if pn.kind != FabricKind::Ethernet {
        return Err(Error::invalid(
            "/physical_network_id",
            format!("{} is InfiniBand: its switches are not programmed", pn.name),
        ));
    }
    let new = NewSwitch {
        name: r.name,
        description: r.description,
        physical_network_id: pn.id,
        dialect: r.dialect,
        address: r.address,
        username: r.username,
        password: r.password.as_deref().map(|s| seal(c, s)),
        private_key: r.private_key.as_deref().map(|s| seal(c, s)),
        host_key: r.host_key,
        max_sessions: r.max_sessions.unwrap_or(1),
        min_interval_ms: r.min_interval_ms.unwrap_or(0),
    };
    let x = c.store().create_switch(actor, new).await?;
    c.wakes().fabric.notify_one();
    Ok(x)
}

/// Change a switch; credentials are replaced when given.
pub async fn update(
    c: &Conductor,
    actor: &Actor,
    cur: &Switch,
    r: SwitchUpdate,
    if_match: Option<i64>,
) -> Result<Switch> {
    if let Some(a) = &r.address {
        check_address(a)?;
    }
    if let Some(k) = &r.host_key {
        check_host_key(k)?;
    }
    if let Some(k) = &r.private_key {
        check_private_key(k)?;
    }
    if let Some(u) = &r.username {
        check_username(u)?;
    }
    check_limits(r.max_sessions, r.min_interval_ms)?;
    let changes = SwitchChanges {
        description: r.description,
        address: r.address,
        username: r.username,
        password: r.password.as_deref().map(|s| seal(c, s)),
        private_key: r.private_key.as_deref().map(|s| seal(c, s)),
        host_key: r.host_key,
        max_sessions: r.max_sessions,
        min_interval_ms: r.min_interval_ms,
    };
    let x = c.store().update_switch(actor, cur.id, changes, if_match).await?;
    c.wakes().fabric.notify_one();
    Ok(x)
}

/// Program ports of a switch (or of a node's port) again: a repair of
/// drift, or a retry of a failure. Returns how many ports go again.
pub async fn resync(c: &Conductor, actor: &Actor, ports: &[(tundra_api::SwitchId, String)]) -> Result<u32> {
    let n = c.store().resync_switch_ports(actor, ports).await?;
    c.wakes().fabric.notify_one();
    Ok(n)
}
