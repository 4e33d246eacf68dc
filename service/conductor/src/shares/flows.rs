//! What callers ask of shares, checked and recorded; the share worker does
//! the backend's part. Checks beyond field syntax live here: a type's
//! settings for its backend, a share's networks being the project's to
//! use, a rule's kind matching its share's backend, a shrink not below what
//! the share holds (asked of the backend now, and again by the worker), a
//! node's mount points.

use tundra_api::nodes::{Node, NodeStatus};
use tundra_api::shares::{
    AccessKind, AccessLevel, NodeShare, Share, ShareAccess, ShareAccessCreate, ShareBackend, ShareCreate,
    ShareSnapshot, ShareSnapshotCreate, ShareStatus, ShareType, ShareTypeCreate, ShareTypeSettings, ShareTypeUpdate,
    ShareUpdate,
};
use tundra_api::{ProjectId, SecretId};
use tundra_drivers::share::ShareBackend as _;
use tundra_engine::shares as rules;
use tundra_store::{Actor, NewAccess, NewShare, NewShareType, SecretRecord, ShareChanges};

use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::secrets::Plaintext;

const GIB: u64 = 1 << 30;

fn check_host_port(pointer: &str, a: &str) -> Result<()> {
    let ok = a
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) && !h.contains([',', '/', ' ']));
    if ok { Ok(()) } else { Err(Error::invalid(pointer, format!("{a:?}: give HOST:PORT, e.g. \"10.0.0.5:6789\""))) }
}

fn check_settings(backend: ShareBackend, s: &ShareTypeSettings, credential: Option<&str>) -> Result<()> {
    match backend {
        ShareBackend::Cephfs => {
            let theirs = [
                ("ssh_address", &s.ssh_address),
                ("ssh_username", &s.ssh_username),
                ("host_key", &s.host_key),
                ("server", &s.server),
                ("root", &s.root),
                ("exports_file", &s.exports_file),
                ("pid_file", &s.pid_file),
            ];
            if let Some((f, _)) = theirs.iter().find(|(_, v)| v.is_some()) {
                return Err(Error::invalid(
                    &format!("/settings/{f}"),
                    format!("{f} is a file-server setting (NFS, GlusterFS); a CephFS type has none"),
                ));
            }
            if s.monitors.is_empty() {
                return Err(Error::invalid(
                    "/settings/monitors",
                    "a CephFS share type needs its monitors, HOST:PORT each",
                ));
            }
            for (i, m) in s.monitors.iter().enumerate() {
                check_host_port(&format!("/settings/monitors/{i}"), m)?;
            }
            let plain = |v: &str| {
                !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            };
            match &s.fs_name {
                Some(f) if plain(f) => {}
                _ => {
                    return Err(Error::invalid(
                        "/settings/fs_name",
                        "the `ceph fs volume` the shares live in, e.g. \"cephfs\"",
                    ));
                }
            }
            if let Some(id) = &s.client_id
                && !plain(id)
            {
                return Err(Error::invalid("/settings/client_id", "a cephx ID without `client.`, e.g. \"admin\""));
            }
            match credential {
                Some(k)
                    if k.len() == 40
                        && k.ends_with("==")
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)) => {}
                Some(_) => {
                    return Err(Error::invalid(
                        "/credential",
                        "the client_id's cephx key as `ceph auth print-key` prints it (40 base64 characters)",
                    ));
                }
                None => {
                    return Err(Error::invalid("/credential", "a CephFS share type needs the client_id's cephx key"));
                }
            }
            Ok(())
        }
        ShareBackend::Nfs | ShareBackend::Glusterfs => check_file_server(backend, s, credential),
    }
}

/// NFS and GlusterFS: a file server tundrad logs into over SSH.
fn check_file_server(backend: ShareBackend, s: &ShareTypeSettings, credential: Option<&str>) -> Result<()> {
    if !s.monitors.is_empty() || s.fs_name.is_some() || s.client_id.is_some() {
        let f = if !s.monitors.is_empty() {
            "monitors"
        } else if s.fs_name.is_some() {
            "fs_name"
        } else {
            "client_id"
        };
        return Err(Error::invalid(
            &format!("/settings/{f}"),
            format!("{f} is a CephFS setting; a {backend} type has none"),
        ));
    }
    match &s.ssh_address {
        Some(a) => check_host_port("/settings/ssh_address", a)?,
        None => {
            return Err(Error::invalid(
                "/settings/ssh_address",
                "the file server's sshd, HOST:PORT (tundrad manages it over SSH), e.g. \"10.0.0.9:22\"",
            ));
        }
    }
    if let Some(u) = &s.ssh_username
        && (u.is_empty() || u.len() > 32 || !u.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    {
        return Err(Error::invalid("/settings/ssh_username", "a login name, e.g. \"root\""));
    }
    match &s.host_key {
        Some(k) if k.starts_with("SHA256:") && k.len() > 7 => {}
        _ => {
            return Err(Error::invalid(
                "/settings/host_key",
                "the server's host key as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it, \"SHA256:…\"",
            ));
        }
    }
    let server_ok = s.server.as_deref().is_some_and(|v| {
        let host = v.rsplit_once(':').map_or(v, |(h, p)| if p.parse::<u16>().is_ok() { h } else { v });
        !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            && (backend == ShareBackend::Nfs || host == v)
    });
    if !server_ok {
        let eg = if backend == ShareBackend::Nfs {
            "HOST or HOST:PORT"
        } else {
            "HOST (the server's name or address in its pool)"
        };
        return Err(Error::invalid(
            "/settings/server",
            format!("the address clients mount from: {eg}, e.g. \"10.0.0.9\""),
        ));
    }
    let abs = |v: &Option<String>| {
        v.as_deref().is_some_and(|p| {
            p.starts_with('/') && p.len() > 1 && !p.split('/').any(|x| x == "..") && !p.contains(['\'', '\n', '"'])
        })
    };
    if !abs(&s.root) {
        return Err(Error::invalid("/settings/root", "an absolute directory on the server, e.g. \"/srv/tundra\""));
    }
    match backend {
        ShareBackend::Nfs => {
            if !abs(&s.exports_file) {
                return Err(Error::invalid(
                    "/settings/exports_file",
                    "the exports file tundrad owns, which ganesha.conf %includes, e.g. \"/etc/ganesha/tundra.conf\"",
                ));
            }
            if s.pid_file.is_some() && !abs(&s.pid_file) {
                return Err(Error::invalid(
                    "/settings/pid_file",
                    "Ganesha's PID file, e.g. \"/run/ganesha/ganesha.pid\"",
                ));
            }
        }
        _ => {
            for (f, v) in [("exports_file", &s.exports_file), ("pid_file", &s.pid_file)] {
                if v.is_some() {
                    return Err(Error::invalid(
                        &format!("/settings/{f}"),
                        format!("{f} is an NFS setting; a {backend} type has none"),
                    ));
                }
            }
        }
    }
    match credential {
        Some(k) if k.contains("BEGIN OPENSSH PRIVATE KEY") => Ok(()),
        Some(_) => Err(Error::invalid(
            "/credential",
            "the SSH private key tundrad logs in with, in OpenSSH format (BEGIN OPENSSH PRIVATE KEY)",
        )),
        None => Err(Error::invalid(
            "/credential",
            format!("a {backend} share type needs the SSH private key tundrad logs in with"),
        )),
    }
}

fn seal(c: &Conductor, secret: &str) -> SecretRecord {
    c.keyring().seal(SecretId::generate(), &Plaintext(secret.as_bytes().to_vec()))
}

/// Add a share type (its name and description checked by the caller).
pub async fn create_type(c: &Conductor, actor: &Actor, r: ShareTypeCreate) -> Result<ShareType> {
    check_settings(r.backend, &r.settings, r.credential.as_deref())?;
    let new = NewShareType {
        name: r.name,
        description: r.description,
        backend: r.backend,
        settings: r.settings,
        credential: r.credential.as_deref().map(|k| seal(c, k)),
    };
    Ok(c.store().create_share_type(actor, new).await?)
}

pub async fn update_type(
    c: &Conductor,
    actor: &Actor,
    cur: &ShareType,
    r: ShareTypeUpdate,
    if_match: Option<i64>,
) -> Result<ShareType> {
    if r.credential.is_some() {
        check_settings(cur.backend, &cur.settings, r.credential.as_deref())?;
    }
    let x = c
        .store()
        .update_share_type(actor, cur.id, r.description, r.credential.as_deref().map(|k| seal(c, k)), if_match)
        .await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

/// The networks a share is reached from: the project's own or shared ones.
async fn check_networks(c: &Conductor, project: ProjectId, nets: &[tundra_api::NetworkId]) -> Result<()> {
    for (i, id) in nets.iter().enumerate() {
        let ok = c.store().network(*id).await.is_ok_and(|n| n.project_id.is_none() || n.project_id == Some(project));
        if !ok {
            return Err(Error::invalid(&format!("/networks/{i}"), format!("no network {id} this project may use")));
        }
        if nets[..i].contains(id) {
            return Err(Error::invalid(&format!("/networks/{i}"), format!("network {id} is named twice")));
        }
    }
    Ok(())
}

/// A new share in `project` (name and description checked by the caller).
pub async fn create_share(c: &Conductor, actor: &Actor, project: ProjectId, r: ShareCreate) -> Result<Share> {
    rules::check_size("/size_gib", r.size_gib)?;
    let t = c.store().share_type(r.share_type_id).await.map_err(|_| {
        Error::invalid(
            "/share_type_id",
            format!("no share type {}; list them with GET /v1/share-types", r.share_type_id),
        )
    })?;
    check_networks(c, project, &r.networks).await?;
    let new = NewShare {
        project_id: project,
        share_type_id: t.id,
        name: r.name,
        description: r.description,
        size_gib: r.size_gib,
        networks: r.networks,
        snapshot_id: r.snapshot_id,
    };
    let x = c.store().create_share(actor, new).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

/// Change a share: a new size extends or shrinks it in place. A shrink
/// below what the share holds now is refused here, with the figures.
pub async fn update_share(
    c: &Conductor,
    actor: &Actor,
    cur: &Share,
    r: ShareUpdate,
    if_match: Option<i64>,
) -> Result<Share> {
    if let Some(size) = r.size_gib {
        rules::check_size("/size_gib", size)?;
        if size < cur.size_gib {
            let t = c.store().share_type(cur.share_type_id).await?;
            let b = super::backend(c, &t).await?;
            let info = b
                .info(&super::share_ref(cur.project_id, cur.id))
                .await
                .map_err(|e| Error::Failed(format!("could not read share {}'s use from its backend: {e}", cur.name)))?;
            if info.used_bytes > size as u64 * GIB {
                return Err(Error::Conflict {
                    detail: format!(
                        "share {} holds {:.2} GiB; it cannot shrink to {size} GiB. Free space on it first, or pick a size of at least {} GiB",
                        cur.name,
                        info.used_bytes as f64 / GIB as f64,
                        info.used_bytes.div_ceil(GIB)
                    ),
                    pointer: Some("/size_gib".into()),
                });
            }
        }
    }
    if let Some(nets) = &r.networks {
        check_networks(c, cur.project_id, nets).await?;
    }
    let changes = ShareChanges { description: r.description, size_gib: r.size_gib, networks: r.networks };
    let x = c.store().update_share(actor, cur.id, changes, if_match).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

pub async fn delete_share(c: &Conductor, actor: &Actor, cur: &Share, force: bool) -> Result<Share> {
    let x = c.store().delete_share(actor, cur.id, force).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

/// GlusterFS lets a client in read-write or not at all.
fn check_level(share: &Share, level: AccessLevel, pointer: &str) -> Result<()> {
    if share.backend == ShareBackend::Glusterfs && level == AccessLevel::Ro {
        return Err(Error::invalid(
            pointer,
            format!("share {} is on GlusterFS, whose rules are read-write only; ask for \"rw\"", share.name),
        ));
    }
    Ok(())
}

/// A new access rule on `share` (already found as the caller's).
pub async fn create_access(c: &Conductor, actor: &Actor, share: &Share, r: ShareAccessCreate) -> Result<ShareAccess> {
    let want = share.backend.rule_kind();
    if r.kind != want {
        return Err(Error::invalid(
            "/kind",
            format!("share {} is {}: its rules are {want} rules", share.name, share.backend),
        ));
    }
    let (to, ceph_id) = match r.kind {
        AccessKind::Cephx => {
            rules::check_cephx_name("/access_to", &r.access_to)?;
            (r.access_to.clone(), Some(tundra_store::ceph_id(share.project_id, &r.access_to)))
        }
        AccessKind::Ip => (rules::check_cidr("/access_to", &r.access_to)?, None),
    };
    check_level(share, r.access_level, "/access_level")?;
    let new = NewAccess {
        share_id: share.id,
        kind: r.kind,
        access_to: to,
        access_level: r.access_level,
        ceph_id,
        node_id: None,
    };
    let x = c.store().create_access(actor, new).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

pub async fn delete_access(c: &Conductor, actor: &Actor, cur: &ShareAccess) -> Result<ShareAccess> {
    let x = c.store().delete_access(actor, cur.id).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

pub async fn create_snapshot(
    c: &Conductor,
    actor: &Actor,
    share: &Share,
    r: ShareSnapshotCreate,
) -> Result<ShareSnapshot> {
    if share.backend == ShareBackend::Glusterfs {
        return Err(Error::invalid(
            "/share_id",
            format!(
                "share {} is on GlusterFS, which takes no snapshots in Tundra; use a CephFS or NFS share",
                share.name
            ),
        ));
    }
    let x = c.store().create_snapshot(actor, share.id, r.name, r.description).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

pub async fn delete_snapshot(c: &Conductor, actor: &Actor, cur: &ShareSnapshot) -> Result<ShareSnapshot> {
    let x = c.store().delete_snapshot(actor, cur.id).await?;
    c.wakes().shares.notify_one();
    Ok(x)
}

/// The mounts asked for, checked: mount points, no point twice.
pub fn check_node_shares(want: &[NodeShare]) -> Result<()> {
    for (i, m) in want.iter().enumerate() {
        rules::check_mount_point(&format!("/shares/{i}/mount_point"), &m.mount_point)?;
        if want[..i].iter().any(|o| o.mount_point == m.mount_point) {
            return Err(Error::invalid(
                &format!("/shares/{i}/mount_point"),
                format!("mount point {} is given twice; each share needs its own", m.mount_point),
            ));
        }
    }
    Ok(())
}

/// Set what node `n` mounts: rules made or taken back by tundrad.
pub async fn set_node_shares(c: &Conductor, actor: &Actor, n: &Node, want: &[NodeShare]) -> Result<()> {
    check_node_shares(want)?;
    let ip = n.addresses.iter().find_map(|a| a.address.clone());
    c.store().set_node_shares(actor, n.id, want, ip).await?;
    c.wakes().shares.notify_one();
    Ok(())
}

/// Before a node is placed: its mounts checked, each share the project's
/// and not being deleted (the store checks again when it records them).
pub async fn check_mountable(c: &Conductor, project: ProjectId, want: &[NodeShare]) -> Result<()> {
    check_node_shares(want)?;
    for (i, m) in want.iter().enumerate() {
        let at = format!("/shares/{i}/share_id");
        match c.store().share(m.share_id).await {
            Ok(s) if s.project_id == project && s.status != ShareStatus::Deleting => {
                check_level(&s, m.access, &format!("/shares/{i}/access"))?;
            }
            Ok(s) if s.project_id == project => {
                return Err(Error::invalid(&at, format!("share {} is being deleted", s.name)));
            }
            _ => return Err(Error::invalid(&at, format!("no share {} in this project", m.share_id))),
        }
    }
    Ok(())
}

/// What a node update's `shares` changes: `None` when the node mounts
/// exactly these already (the provider sends them with every update), else
/// the new set, checked — only a building or active node's shares change.
pub async fn node_shares_change(c: &Conductor, n: &Node, want: &[NodeShare]) -> Result<Option<Vec<NodeShare>>> {
    let mut have: Vec<_> =
        c.store().node_mounts(n.id).await?.into_iter().map(|m| (m.share_id, m.mount_point, m.access)).collect();
    let mut asked: Vec<_> = want.iter().map(|m| (m.share_id, m.mount_point.clone(), m.access)).collect();
    have.sort();
    asked.sort();
    if have == asked {
        return Ok(None);
    }
    if !matches!(n.status, NodeStatus::Building | NodeStatus::Active) {
        return Err(Error::invalid(
            "/shares",
            format!("node {} is {}; only a building or active node's shares change", n.name, n.status.as_str()),
        ));
    }
    check_node_shares(want)?;
    Ok(Some(want.to_vec()))
}
