//! Share backends: where a share's bytes live and who may mount them.
//!
//! [`ShareBackend`] is the interface tundrad's share worker drives; every
//! call is idempotent, so a worker cut off halfway (a restart) simply calls
//! again. [`CephFs`] speaks to a real Ceph cluster through the `ceph` CLI
//! (the mgr `volumes` module: subvolume groups, subvolumes, snapshots,
//! clones, `authorize`); [`Nfs`] (NFS-Ganesha) and [`Gluster`] manage a file
//! server over SSH; [`Fake`] keeps the same promises in memory for unit
//! tests of callers. [`Backend`] picks one at run time.

mod cephfs;
mod fake;
mod gluster;
mod nfs;
pub mod remote;

use std::future::Future;

pub use cephfs::CephFs;
pub use fake::Fake;
pub use gluster::Gluster;
pub use nfs::Nfs;

/// A share on a backend: the project's group and the share's own name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareRef {
    pub group: String,
    pub name: String,
}

/// Where a backend object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<T> {
    Done(T),
    /// Still being made (a clone copying); ask again.
    Pending(String),
}

/// What a backend said went wrong. `Refused` is the backend saying no
/// (bad input, a conflict): retrying will not help. `Unavailable` is the
/// backend out of reach or busy: the worker tries again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("{0}")]
    Refused(String),
    #[error("the share backend is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} is gone from the backend")]
    Missing(String),
}

/// The read-back of a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareInfo {
    /// The path inside the filesystem clients mount.
    pub path: String,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
}

/// An access grant as the backend keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The ID clients authenticate as (cephx).
    pub auth_id: String,
    /// Its secret key.
    pub key: String,
}

pub trait ShareBackend {
    /// Make the share (or find it made) with a quota of `bytes`, from a
    /// snapshot when `from` names one; its path once it is complete.
    fn ensure(
        &self,
        share: &ShareRef,
        bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> impl Future<Output = Result<Progress<String>, ShareError>> + Send;
    /// Its quota, use and path; `Missing` if it is not there.
    fn info(&self, share: &ShareRef) -> impl Future<Output = Result<ShareInfo, ShareError>> + Send;
    /// Set its quota. Callers check use against a lower one first.
    fn resize(&self, share: &ShareRef, bytes: u64) -> impl Future<Output = Result<(), ShareError>> + Send;
    /// Remove it with everything in it; gone already is fine.
    fn delete(&self, share: &ShareRef) -> impl Future<Output = Result<(), ShareError>> + Send;
    /// Take a snapshot (or find it taken); `Pending` while it is still being made.
    fn snapshot(&self, share: &ShareRef, snap: &str) -> impl Future<Output = Result<Progress<()>, ShareError>> + Send;
    fn delete_snapshot(&self, share: &ShareRef, snap: &str) -> impl Future<Output = Result<(), ShareError>> + Send;
    /// Let `auth_id` mount the share, read-write or read-only; its key.
    fn authorize(
        &self,
        share: &ShareRef,
        auth_id: &str,
        read_only: bool,
    ) -> impl Future<Output = Result<Grant, ShareError>> + Send;
    /// Take the grant back and evict its clients; none is fine.
    fn deauthorize(&self, share: &ShareRef, auth_id: &str) -> impl Future<Output = Result<(), ShareError>> + Send;
    /// Address rules (NFS, GlusterFS): let in exactly these clients — a
    /// CIDR each, and whether it is read-only — and nobody else.
    fn allow(
        &self,
        share: &ShareRef,
        clients: &[(String, bool)],
    ) -> impl Future<Output = Result<(), ShareError>> + Send;
}

/// A backend picked at run time.
#[derive(Debug, Clone)]
pub enum Backend {
    CephFs(CephFs),
    Nfs(Nfs),
    Gluster(Gluster),
    Fake(Fake),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::CephFs($b) => $e,
            Backend::Nfs($b) => $e,
            Backend::Gluster($b) => $e,
            Backend::Fake($b) => $e,
        }
    };
}

impl ShareBackend for Backend {
    async fn ensure(
        &self,
        share: &ShareRef,
        bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> Result<Progress<String>, ShareError> {
        each!(self, b => b.ensure(share, bytes, from).await)
    }
    async fn info(&self, share: &ShareRef) -> Result<ShareInfo, ShareError> {
        each!(self, b => b.info(share).await)
    }
    async fn resize(&self, share: &ShareRef, bytes: u64) -> Result<(), ShareError> {
        each!(self, b => b.resize(share, bytes).await)
    }
    async fn delete(&self, share: &ShareRef) -> Result<(), ShareError> {
        each!(self, b => b.delete(share).await)
    }
    async fn snapshot(&self, share: &ShareRef, snap: &str) -> Result<Progress<()>, ShareError> {
        each!(self, b => b.snapshot(share, snap).await)
    }
    async fn delete_snapshot(&self, share: &ShareRef, snap: &str) -> Result<(), ShareError> {
        each!(self, b => b.delete_snapshot(share, snap).await)
    }
    async fn authorize(&self, share: &ShareRef, auth_id: &str, read_only: bool) -> Result<Grant, ShareError> {
        each!(self, b => b.authorize(share, auth_id, read_only).await)
    }
    async fn deauthorize(&self, share: &ShareRef, auth_id: &str) -> Result<(), ShareError> {
        each!(self, b => b.deauthorize(share, auth_id).await)
    }
    async fn allow(&self, share: &ShareRef, clients: &[(String, bool)]) -> Result<(), ShareError> {
        each!(self, b => b.allow(share, clients).await)
    }
}
