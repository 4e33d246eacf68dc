//! Leases: who has which address until when. Kept in memory; acknowledged
//! leases and releases are appended to a journal file (one JSON line each, as
//! Kea's memfile appends CSV lines), which is replayed on start and compacted
//! — rewritten to a temp file and renamed — once it holds many dead lines.
//! Offers are not journaled: they live a minute and are made again on demand.

use std::collections::HashMap;
use std::io::Write;
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

/// A journal line: a lease, or a release of a MAC's lease.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Lease(Lease),
    Released { mac: String, released: bool },
}

#[derive(Debug, Default)]
pub struct Leases {
    by_mac: HashMap<String, Lease>,
    /// Index: which MAC holds an address (allocation checks it per candidate).
    by_ip: HashMap<Ipv4Addr, String>,
    file: Option<PathBuf>,
    journal: Option<std::io::BufWriter<std::fs::File>>,
    lines: usize,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Leases {
    /// Leases replayed from `file` (if it exists), journaled there from now on.
    pub fn open(file: Option<PathBuf>) -> std::io::Result<Leases> {
        let mut l = Leases { file: file.clone(), ..Default::default() };
        if let Some(f) = &file
            && f.exists()
        {
            for line in std::fs::read_to_string(f)?.lines().filter(|x| !x.trim().is_empty()) {
                // A torn last line (crash mid-append) is skipped, not fatal.
                match serde_json::from_str::<Entry>(line) {
                    Ok(Entry::Lease(lease)) => l.insert(lease),
                    Ok(Entry::Released { mac, .. }) => {
                        l.remove(&mac);
                    }
                    Err(_) => {}
                }
            }
            l.compact()?;
        }
        Ok(l)
    }

    fn insert(&mut self, lease: Lease) {
        self.remove(&lease.mac);
        self.by_ip.insert(lease.ip, lease.mac.clone());
        self.by_mac.insert(lease.mac.clone(), lease);
    }

    fn remove(&mut self, mac: &str) -> Option<Lease> {
        let old = self.by_mac.remove(mac)?;
        if self.by_ip.get(&old.ip).is_some_and(|m| m == mac) {
            self.by_ip.remove(&old.ip);
        }
        Some(old)
    }

    pub fn get(&self, mac: &str) -> Option<&Lease> {
        self.by_mac.get(mac)
    }

    /// Whether `ip` is held by another client's unexpired lease.
    pub fn taken(&self, ip: Ipv4Addr, by_other_than: &str) -> bool {
        let Some(holder) = self.by_ip.get(&ip) else { return false };
        holder != by_other_than && self.by_mac.get(holder).is_some_and(|l| l.expires > now_secs())
    }

    pub fn set(&mut self, mac: &str, ip: Ipv4Addr, lifetime: Duration, offered: bool) -> std::io::Result<()> {
        let lease = Lease { mac: mac.into(), ip, expires: now_secs() + lifetime.as_secs(), offered };
        if !offered {
            self.append(&Entry::Lease(lease.clone()))?;
        }
        self.insert(lease);
        Ok(())
    }

    pub fn release(&mut self, mac: &str) -> std::io::Result<()> {
        if let Some(old) = self.remove(mac)
            && !old.offered
        {
            self.append(&Entry::Released { mac: mac.into(), released: true })?;
        }
        Ok(())
    }

    pub fn all(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.by_mac.values().cloned().collect();
        v.sort_by_key(|l| l.ip);
        v
    }

    fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let Some(f) = &self.file else { return Ok(()) };
        if self.journal.is_none() {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(f)?;
            self.journal = Some(std::io::BufWriter::new(file));
        }
        let j = self.journal.as_mut().expect("just opened");
        serde_json::to_writer(&mut *j, e).map_err(std::io::Error::other)?;
        j.write_all(b"\n")?;
        // Hand it to the OS now (not fsync): a crash of tundrad loses nothing.
        j.flush()?;
        self.lines += 1;
        if self.lines > 1024 && self.lines > 4 * self.by_mac.len() {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrite the journal with only the live, acknowledged leases.
    fn compact(&mut self) -> std::io::Result<()> {
        let Some(f) = &self.file else { return Ok(()) };
        let tmp = f.with_extension("tmp");
        let mut out = Vec::new();
        let mut n = 0;
        for l in self.all().into_iter().filter(|l| !l.offered) {
            serde_json::to_writer(&mut out, &Entry::Lease(l)).map_err(std::io::Error::other)?;
            out.push(b'\n');
            n += 1;
        }
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, f)?;
        self.journal = None;
        self.lines = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_replays_compacts_and_survives_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("leases.jsonl");
        let mut l = Leases::open(Some(f.clone())).unwrap();
        l.set("aa", "10.0.0.5".parse().unwrap(), Duration::from_secs(60), false).unwrap();
        l.set("bb", "10.0.0.6".parse().unwrap(), Duration::from_secs(60), true).unwrap();
        l.set("cc", "10.0.0.7".parse().unwrap(), Duration::from_secs(60), false).unwrap();
        l.release("cc").unwrap();
        drop(l);
        std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"{\"mac\":\"dd\",\"ip\":").unwrap();
        let l = Leases::open(Some(f.clone())).unwrap();
        let ips: Vec<String> = l.all().iter().map(|x| format!("{} {}", x.mac, x.ip)).collect();
        assert_eq!(ips, ["aa 10.0.0.5"], "offers are not journaled; releases remove; torn lines are skipped");
        assert_eq!(std::fs::read_to_string(&f).unwrap().lines().count(), 1, "compacted on open");
        let mut l = l;
        for i in 0..3000 {
            l.set("aa", Ipv4Addr::from(0x0a00_0000 + i), Duration::from_secs(60), false).unwrap();
        }
        assert!(std::fs::read_to_string(&f).unwrap().lines().count() <= 1025, "compaction keeps the journal short");
    }
}
