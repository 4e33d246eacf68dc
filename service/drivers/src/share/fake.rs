//! An in-memory backend keeping [`ShareBackend`]'s promises, for unit tests
//! of callers: idempotent calls, grants per share, refusals where a real
//! backend refuses (a snapshot of a share that is not there, a share with
//! snapshots deleted).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Grant, Progress, ShareBackend, ShareError, ShareInfo, ShareRef};

#[derive(Debug, Default)]
struct State {
    shares: BTreeMap<ShareRef, (u64, u64)>,
    snapshots: BTreeMap<(ShareRef, String), u64>,
    grants: BTreeMap<(String, ShareRef), bool>,
    /// Every call made, in order (for tests to read).
    calls: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }
    /// What the backend holds: shares with (quota, used).
    pub fn shares(&self) -> BTreeMap<ShareRef, (u64, u64)> {
        self.state.lock().unwrap().shares.clone()
    }
    pub fn grants(&self) -> BTreeMap<(String, ShareRef), bool> {
        self.state.lock().unwrap().grants.clone()
    }
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
    /// Pretend clients wrote `bytes` into the share.
    pub fn set_used(&self, share: &ShareRef, bytes: u64) {
        if let Some(s) = self.state.lock().unwrap().shares.get_mut(share) {
            s.1 = bytes;
        }
    }
    fn path(s: &ShareRef) -> String {
        format!("/volumes/{}/{}", s.group, s.name)
    }
}

impl ShareBackend for Fake {
    async fn ensure(
        &self,
        share: &ShareRef,
        bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> Result<Progress<String>, ShareError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(format!("ensure {}/{}", share.group, share.name));
        if let Some((src, snap)) = from {
            let used = *st
                .snapshots
                .get(&(src.clone(), snap.to_string()))
                .ok_or_else(|| ShareError::Refused(format!("no snapshot {snap} of {}", src.name)))?;
            st.shares.entry(share.clone()).or_insert((bytes, used));
        } else {
            st.shares.entry(share.clone()).or_insert((bytes, 0));
        }
        Ok(Progress::Done(Fake::path(share)))
    }
    async fn info(&self, share: &ShareRef) -> Result<ShareInfo, ShareError> {
        let st = self.state.lock().unwrap();
        let (q, u) = st.shares.get(share).ok_or_else(|| ShareError::Missing(share.name.clone()))?;
        Ok(ShareInfo { path: Fake::path(share), quota_bytes: Some(*q), used_bytes: *u })
    }
    async fn resize(&self, share: &ShareRef, bytes: u64) -> Result<(), ShareError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(format!("resize {} {bytes}", share.name));
        let s = st.shares.get_mut(share).ok_or_else(|| ShareError::Missing(share.name.clone()))?;
        s.0 = bytes;
        Ok(())
    }
    async fn delete(&self, share: &ShareRef) -> Result<(), ShareError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(format!("delete {}", share.name));
        if st.snapshots.keys().any(|(s, _)| s == share) {
            return Err(ShareError::Refused(format!("{} has snapshots", share.name)));
        }
        st.shares.remove(share);
        st.grants.retain(|(_, s), _| s != share);
        Ok(())
    }
    async fn snapshot(&self, share: &ShareRef, snap: &str) -> Result<Progress<()>, ShareError> {
        let mut st = self.state.lock().unwrap();
        let used = st.shares.get(share).ok_or_else(|| ShareError::Missing(share.name.clone()))?.1;
        st.snapshots.entry((share.clone(), snap.to_string())).or_insert(used);
        Ok(Progress::Done(()))
    }
    async fn delete_snapshot(&self, share: &ShareRef, snap: &str) -> Result<(), ShareError> {
        self.state.lock().unwrap().snapshots.remove(&(share.clone(), snap.to_string()));
        Ok(())
    }
    async fn authorize(&self, share: &ShareRef, auth_id: &str, read_only: bool) -> Result<Grant, ShareError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(format!("authorize {auth_id}"));
        if !st.shares.contains_key(share) {
            return Err(ShareError::Missing(share.name.clone()));
        }
        st.grants.insert((auth_id.to_string(), share.clone()), read_only);
        Ok(Grant { auth_id: auth_id.to_string(), key: format!("fake-key-{auth_id}") })
    }
    async fn deauthorize(&self, share: &ShareRef, auth_id: &str) -> Result<(), ShareError> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(format!("deauthorize {auth_id}"));
        st.grants.remove(&(auth_id.to_string(), share.clone()));
        Ok(())
    }

    /// Address rules are kept as grants of their CIDR, the share's whole set at once.
    async fn allow(&self, share: &ShareRef, clients: &[(String, bool)]) -> Result<(), ShareError> {
        let mut st = self.state.lock().unwrap();
        if !st.shares.contains_key(share) {
            return Err(ShareError::Missing(format!("share {}", share.name)));
        }
        st.calls.push(format!("allow {}", clients.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(",")));
        st.grants.retain(|(_, s), _| s != share);
        for (cidr, ro) in clients {
            st.grants.insert((cidr.clone(), share.clone()), *ro);
        }
        Ok(())
    }
}
