//! Leases: who has which address until when, kept in memory and persisted to
//! a JSON file (written to a temp file and renamed, so a crash never leaves
//! half a lease file) — a restarted server hands every client its address
//! again.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub mac: String,
    pub ip: Ipv4Addr,
    /// Seconds since the epoch.
    pub expires: u64,
    /// Offered but not yet requested.
    pub offered: bool,
}

#[derive(Debug, Default)]
pub struct Leases {
    by_mac: HashMap<String, Lease>,
    file: Option<PathBuf>,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Leases {
    /// Leases from `file` (if it exists), persisted there on every change.
    pub fn open(file: Option<PathBuf>) -> std::io::Result<Leases> {
        let mut by_mac = HashMap::new();
        if let Some(f) = &file
            && f.exists()
        {
            let list: Vec<Lease> = serde_json::from_slice(&std::fs::read(f)?).map_err(std::io::Error::other)?;
            by_mac = list.into_iter().map(|l| (l.mac.clone(), l)).collect();
        }
        Ok(Leases { by_mac, file })
    }

    pub fn get(&self, mac: &str) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    /// Whether `ip` is held by another client's unexpired lease.
    pub fn taken(&self, ip: Ipv4Addr, by_other_than: &str) -> bool {
        let now = now_secs();
        self.by_mac.values().any(|l| l.ip == ip && l.mac != by_other_than && l.expires > now)
    }

    pub fn set(&mut self, mac: &str, ip: Ipv4Addr, lifetime: Duration, offered: bool) -> std::io::Result<()> {
        self.by_mac
            .insert(mac.into(), Lease { mac: mac.into(), ip, expires: now_secs() + lifetime.as_secs(), offered });
        self.persist()
    }

    pub fn release(&mut self, mac: &str) -> std::io::Result<()> {
        if self.by_mac.remove(mac).is_some() {
            self.persist()?;
        }
        Ok(())
    }

    pub fn all(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.by_mac.values().cloned().collect();
        v.sort_by_key(|l| l.ip);
        v
    }

    fn persist(&self) -> std::io::Result<()> {
        let Some(f) = &self.file else { return Ok(()) };
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.all()).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, f)
    }
}
