//! Shares: share types (a backend and its sealed credential), shares,
//! access rules and snapshots, and the mounts nodes get. `flows` checks
//! and records what callers ask; `worker` does the backend's part,
//! level-triggered from the rows (a restart resumes where they say).
//! This file: opening a type's backend (its credential opened here only),
//! where a share is mounted from, and what a client needs to mount it.

pub mod flows;
pub mod worker;

use tundra_api::shares::{ExportLocation, ShareAccess, ShareAccessSecret, ShareBackend, ShareType};
use tundra_api::{NetworkId, ProjectId, ShareId};
use tundra_drivers::bmc::Password;
use tundra_drivers::share::remote::Remote;
use tundra_drivers::share::{Backend, CephFs, Gluster, Nfs, ShareRef};
use tundra_engine::shares::{Mount, MountKind};

use crate::error::{Error, Result};
use crate::handle::Conductor;

/// The backend of a share type, its credential opened.
pub async fn backend(c: &Conductor, t: &ShareType) -> Result<Backend> {
    if let Some(b) = c.share_backend_override() {
        return Ok(b);
    }
    let secret = c
        .store()
        .share_type_secret(t.id)
        .await?
        .ok_or_else(|| Error::Internal(format!("share type {} has no credential", t.name)))?;
    let key = c.keyring().get(c.store(), secret).await?;
    let key = String::from_utf8(key.0.clone()).map_err(|_| Error::Internal("credential is not text".into()))?;
    let s = &t.settings;
    let remote = || {
        Remote::new(
            s.ssh_address.clone().unwrap_or_default(),
            s.ssh_username.clone().unwrap_or_else(|| "root".into()),
            s.host_key.clone().unwrap_or_default(),
            Password(key.clone()),
        )
    };
    Ok(match t.backend {
        ShareBackend::Cephfs => Backend::CephFs(CephFs::new(
            s.monitors.clone(),
            s.fs_name.clone().unwrap_or_default(),
            s.client_id.clone().unwrap_or_else(|| "admin".into()),
            key.clone(),
        )),
        ShareBackend::Nfs => Backend::Nfs(Nfs {
            remote: remote(),
            root: s.root.clone().unwrap_or_default(),
            exports_file: s.exports_file.clone().unwrap_or_default(),
            pid_file: s.pid_file.clone().unwrap_or_else(|| "/run/ganesha/ganesha.pid".into()),
        }),
        ShareBackend::Glusterfs => Backend::Gluster(Gluster {
            remote: remote(),
            server: s.server.clone().unwrap_or_default(),
            root: s.root.clone().unwrap_or_default(),
        }),
    })
}

/// A share on its backend: the project's group, the share's own name.
pub fn share_ref(project: ProjectId, share: ShareId) -> ShareRef {
    ShareRef { group: project.0.simple().to_string(), name: share.0.simple().to_string() }
}

/// The backend name of a snapshot.
pub fn snapshot_name(id: tundra_api::ShareSnapshotId) -> String {
    id.0.simple().to_string()
}

/// Where clients mount a share from: one location per network it is
/// reachable from (each preferred on its network), or one for all.
pub fn export_locations(t: &ShareType, networks: &[NetworkId], path: Option<&str>) -> Vec<ExportLocation> {
    let Some(path) = path else { return Vec::new() };
    let target = match t.backend {
        ShareBackend::Cephfs => format!("{}:{path}", t.settings.monitors.join(",")),
        ShareBackend::Nfs | ShareBackend::Glusterfs => {
            format!("{}:{path}", t.settings.server.as_deref().unwrap_or_default())
        }
    };
    let nets: Vec<Option<NetworkId>> =
        if networks.is_empty() { vec![None] } else { networks.iter().copied().map(Some).collect() };
    nets.into_iter()
        .map(|network_id| ExportLocation { protocol: t.backend, network_id, path: target.clone(), preferred: true })
        .collect()
}

/// How a node or client mounts the share under `rule` (its key opened).
pub async fn mount_of(
    c: &Conductor,
    t: &ShareType,
    rule: &ShareAccess,
    path: &str,
    mount_point: &str,
) -> Result<Mount> {
    let how = match t.backend {
        ShareBackend::Cephfs => {
            let secret = c.store().access_secret(rule.id).await?.ok_or_else(|| {
                Error::conflict(format!("access rule {} is {}; it has no key yet", rule.id, rule.state))
            })?;
            let key = c.keyring().get(c.store(), secret).await?;
            MountKind::Ceph {
                share: rule.share_id.0.simple().to_string(),
                ceph_id: rule.ceph_id.clone().unwrap_or_default(),
                key: String::from_utf8_lossy(&key.0).into_owned(),
                monitors: t.settings.monitors.clone(),
                path: path.to_string(),
            }
        }
        ShareBackend::Nfs => {
            MountKind::Nfs { server: t.settings.server.clone().unwrap_or_default(), path: path.to_string() }
        }
        ShareBackend::Glusterfs => MountKind::Gluster {
            server: t.settings.server.clone().unwrap_or_default(),
            volume: path.trim_start_matches('/').to_string(),
        },
    };
    Ok(Mount {
        mount_point: mount_point.to_string(),
        read_only: rule.access_level == tundra_api::shares::AccessLevel::Ro,
        how,
    })
}

/// What a client outside Tundra needs to mount the share under an active rule.
pub async fn secret_bundle(c: &Conductor, rule: &ShareAccess) -> Result<ShareAccessSecret> {
    if rule.state != tundra_api::shares::AccessState::Active {
        return Err(Error::conflict(format!(
            "access rule {} is {}; its key is given once it is active",
            rule.id, rule.state
        )));
    }
    let share = c.store().share(rule.share_id).await?;
    let t = c.store().share_type(share.share_type_id).await?;
    let path = c
        .store()
        .share_export_path(share.id)
        .await?
        .ok_or_else(|| Error::conflict(format!("share {} is {}; it has no path yet", share.name, share.status)))?;
    let m = mount_of(c, &t, rule, &path, "/mnt/SHARE").await?;
    let (fstab, _) = tundra_engine::shares::fstab(&m);
    let (ceph_id, key) = match &m.how {
        MountKind::Ceph { ceph_id, key, .. } => (Some(ceph_id.clone()), Some(key.clone())),
        _ => (None, None),
    };
    Ok(ShareAccessSecret {
        access_id: rule.id,
        share_id: share.id,
        ceph_id,
        key,
        monitors: t.settings.monitors.clone(),
        path,
        fs_name: t.settings.fs_name.clone(),
        fstab,
    })
}

/// Shares as shown: their export locations filled in (types and paths
/// read once for the lot).
pub async fn shown(c: &Conductor, shares: Vec<tundra_api::shares::Share>) -> Result<Vec<tundra_api::shares::Share>> {
    let ids: Vec<_> = shares.iter().map(|s| s.id).collect();
    let paths = c.store().share_export_paths(&ids).await?;
    let mut types: std::collections::HashMap<tundra_api::ShareTypeId, ShareType> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(shares.len());
    for mut s in shares {
        if let std::collections::hash_map::Entry::Vacant(e) = types.entry(s.share_type_id) {
            e.insert(c.store().share_type(s.share_type_id).await?);
        }
        let ready =
            !matches!(s.status, tundra_api::shares::ShareStatus::Creating | tundra_api::shares::ShareStatus::Deleting);
        if ready {
            s.export_locations =
                export_locations(&types[&s.share_type_id], &s.networks, paths.get(&s.id).map(String::as_str));
        }
        out.push(s);
    }
    Ok(out)
}
