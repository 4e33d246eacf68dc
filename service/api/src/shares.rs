//! Shares: filesystems on demand. A share type (site admins) names a backend
//! — CephFS native, NFS through NFS-Ganesha, or (legacy) GlusterFS — and its
//! settings; a project makes shares of a size on it, access rules saying who
//! may mount them, and snapshots. tundrad does the backend's work itself and
//! says where each stands: a share is `creating` until the backend has it,
//! a rule `queued` → `applying` → `active` before its key exists.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{NetworkId, NodeId, ProjectId, ShareAccessId, ShareId, ShareSnapshotId, ShareTypeId};

words! {
    /// The backend a share type's shares live on.
    pub enum ShareBackend {
        /// CephFS native: one subvolume per share in a `ceph fs volume`, one
        /// subvolume group per project, quota by the subvolume's size, a
        /// cephx ID per access rule.
        Cephfs = "cephfs",
        /// NFS-Ganesha exports (NFSv4) of a directory per share, with IP/CIDR
        /// rules; the size is an allowance shown against use, not a quota
        /// (Ganesha's VFS FSAL enforces none); snapshots are copies.
        Nfs = "nfs",
        /// GlusterFS, one volume per share with its quota, read-write IP/CIDR
        /// rules, no snapshots (legacy: Manila has deprecated it).
        Glusterfs = "glusterfs",
    }
}

impl ShareBackend {
    /// The rule kind its shares take.
    pub fn rule_kind(self) -> AccessKind {
        match self {
            ShareBackend::Cephfs => AccessKind::Cephx,
            ShareBackend::Nfs | ShareBackend::Glusterfs => AccessKind::Ip,
        }
    }
}

/// A share type's backend settings. Which fields apply depends on the
/// backend; the others must be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareTypeSettings {
    /// CephFS: the monitors, `HOST:PORT` each (clients and tundrad connect to them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<String>,
    /// CephFS: the `ceph fs volume` shares are subvolumes of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_name: Option<String>,
    /// CephFS: the cephx ID tundrad manages the cluster as (needs `mgr` and
    /// `mon` caps to run `ceph fs subvolume …` and `ceph auth …`). Default `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// NFS, GlusterFS: the file server's sshd, `HOST:PORT`. tundrad logs in
    /// there (with the type's credential, an SSH private key) to manage
    /// exports or volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_address: Option<String>,
    /// NFS, GlusterFS: the user tundrad logs in as (it runs `gluster`, or
    /// writes the exports file and signals Ganesha). Default `root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_username: Option<String>,
    /// NFS, GlusterFS: the sshd's host key, `SHA256:…` as `ssh-keygen -l`
    /// prints it; any other key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// NFS, GlusterFS: the address clients mount from (NFS: `HOST` or
    /// `HOST:PORT`; GlusterFS: the server's address in its pool, which is
    /// also each brick's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// NFS, GlusterFS: the directory on the server each share's directory
    /// (NFS) or brick (GlusterFS) is made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// NFS: the exports file tundrad owns and rewrites; the server's
    /// `ganesha.conf` pulls it in with `%include`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports_file: Option<String>,
    /// NFS: Ganesha's PID file (tundrad sends it SIGHUP to re-read the
    /// exports). Default `/run/ganesha/ganesha.pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
}

/// A share type (site admins create them; every signed-in user reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareType {
    pub id: ShareTypeId,
    pub name: String,
    pub description: String,
    pub backend: ShareBackend,
    pub settings: ShareTypeSettings,
    /// Whether a backend credential is stored (never the value).
    pub has_credential: bool,
    /// Marked legacy (GlusterFS): it works, but new platforms should not pick it.
    pub legacy: bool,
    /// The last failure tundrad met talking to the backend, if its last call failed.
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/share-types`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareTypeCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub backend: ShareBackend,
    #[serde(default)]
    pub settings: ShareTypeSettings,
    /// The backend credential (CephFS: the `client_id`'s cephx key; NFS and
    /// GlusterFS: the SSH private key, OpenSSH format). Sealed at rest,
    /// never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `PATCH /v1/share-types/{id}`: the description, or a new credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareTypeUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

words! {
    /// Where a share stands.
    pub enum ShareStatus {
        /// The backend is making it (or cloning it from a snapshot).
        Creating = "creating",
        Available = "available",
        /// Its size is being raised.
        Extending = "extending",
        /// Its size is being lowered (refused below what it uses).
        Shrinking = "shrinking",
        /// The last change failed; `status_reason` says why. A new size or a delete is still accepted.
        Error = "error",
        Deleting = "deleting",
    }
}

/// Where clients mount a share from, for one protocol and network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportLocation {
    /// `cephfs`, `nfs` or `glusterfs`.
    pub protocol: ShareBackend,
    /// The network this location is reached from (one of the share's
    /// networks), or none when every network reaches it.
    pub network_id: Option<NetworkId>,
    /// What `mount` takes: `MON1,MON2:/volumes/…` (CephFS), `HOST:/path`
    /// (NFS), `HOST:/volume` (GlusterFS).
    pub path: String,
    /// The location clients on that network should use first.
    pub preferred: bool,
}

/// A share (a project's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub id: ShareId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub share_type_id: ShareTypeId,
    pub backend: ShareBackend,
    /// The size asked for, in GiB (the backend's quota).
    pub size_gib: u32,
    pub status: ShareStatus,
    pub status_reason: Option<String>,
    /// The networks clients reach it from.
    pub networks: Vec<NetworkId>,
    /// Empty until the share is available.
    pub export_locations: Vec<ExportLocation>,
    /// The snapshot it was made from.
    pub snapshot_id: Option<ShareSnapshotId>,
    /// Bytes it holds, as the backend last said.
    pub used_bytes: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/shares`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareCreate {
    pub project_id: ProjectId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub share_type_id: ShareTypeId,
    /// At least 1.
    pub size_gib: u32,
    #[serde(default)]
    pub networks: Vec<NetworkId>,
    /// Make it from this snapshot (of a share of the same type and project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<ShareSnapshotId>,
}

/// `DELETE /v1/shares/{id}?force=true`: take its access rules back too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShareDeleteQuery {
    /// `true`: delete even while access rules are in force (they are taken back first).
    pub force: Option<String>,
}

/// `PATCH /v1/shares/{id}`: a new size extends or shrinks it in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkId>>,
}

words! {
    /// Who a rule lets in.
    pub enum AccessKind {
        /// A cephx ID (CephFS): tundrad makes the ID, namespaced by project, and its key.
        Cephx = "cephx",
        /// An IPv4 address or CIDR (NFS, GlusterFS).
        Ip = "ip",
    }
}

words! {
    /// Read-write or read-only.
    pub enum AccessLevel {
        Rw = "rw",
        Ro = "ro",
    }
}

words! {
    /// Where an access rule stands. Its key exists only once it is `active`.
    pub enum AccessState {
        Queued = "queued",
        Applying = "applying",
        Active = "active",
        Error = "error",
        Deleting = "deleting",
    }
}

/// An access rule of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareAccess {
    pub id: ShareAccessId,
    pub project_id: ProjectId,
    pub share_id: ShareId,
    pub kind: AccessKind,
    /// The cephx name asked for, or the CIDR.
    pub access_to: String,
    pub access_level: AccessLevel,
    pub state: AccessState,
    pub state_reason: Option<String>,
    /// CephFS: the ID clients authenticate as (`--id`), the project's
    /// namespace before the name asked for.
    pub ceph_id: Option<String>,
    /// The node that holds it, when tundrad made it for a node's mount.
    pub node_id: Option<NodeId>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/share-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareAccessCreate {
    pub share_id: ShareId,
    pub kind: AccessKind,
    /// cephx: a name (letters, digits, `-`, `_`; up to 48); ip: an IPv4 address or CIDR.
    pub access_to: String,
    #[serde(default = "rw")]
    pub access_level: AccessLevel,
}

fn rw() -> AccessLevel {
    AccessLevel::Rw
}

/// `GET /v1/share-access/{id}/secret`: what a client outside Tundra needs
/// to mount the share (only for an active rule, only to its project).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareAccessSecret {
    pub access_id: ShareAccessId,
    pub share_id: ShareId,
    /// The cephx ID (CephFS).
    pub ceph_id: Option<String>,
    /// The cephx key (CephFS).
    pub key: Option<String>,
    /// The monitors (CephFS).
    pub monitors: Vec<String>,
    /// The path inside the filesystem (CephFS: the subvolume's path; NFS: the export).
    pub path: String,
    /// The CephFS filesystem name.
    pub fs_name: Option<String>,
    /// A ready-to-use line for `/etc/fstab` (ceph-fuse, NFS or GlusterFS).
    pub fstab: String,
}

words! {
    pub enum SnapshotStatus {
        Creating = "creating",
        Available = "available",
        Error = "error",
        Deleting = "deleting",
    }
}

/// A snapshot of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareSnapshot {
    pub id: ShareSnapshotId,
    pub project_id: ProjectId,
    pub share_id: ShareId,
    pub name: String,
    pub description: String,
    pub status: SnapshotStatus,
    pub status_reason: Option<String>,
    /// The share's size when it was taken (a share made from it is at least this big).
    pub size_gib: u32,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/share-snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareSnapshotCreate {
    pub share_id: ShareId,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// A share a node mounts (`NodeCreate.shares`, `NodeUpdate.shares`):
/// tundrad makes the access rule itself and the mount goes on the config drive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeShare {
    pub share_id: ShareId,
    /// An absolute path on the node, e.g. `/data`.
    pub mount_point: String,
    #[serde(default = "rw")]
    pub access: AccessLevel,
}

/// A node's mount as its view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeMount {
    pub share_id: ShareId,
    pub mount_point: String,
    pub access: AccessLevel,
    /// The rule tundrad made for it, and where that stands.
    pub access_id: Option<ShareAccessId>,
    pub state: AccessState,
}
