//! The share worker: every two seconds, and whenever a share, rule,
//! snapshot or mount changes, it does on each backend what the rows say is
//! owed — make, resize or delete a share, take a snapshot, grant or take
//! back a rule — and records the outcome with compare-and-set on the state
//! it read. Every backend call is idempotent, so a restart between the call
//! and its record just makes the call again; rows leave only once the
//! backend object is gone, so nothing is stranded on the backend.
//!
//! A backend out of reach leaves the row as it is, with the reason, and is
//! tried again; a backend that refuses puts the object in `error`. Each
//! share type's pass is a task of its own, so one type's backend out of
//! reach holds up no other type.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use tundra_api::shares::{AccessKind, AccessLevel, AccessState, ShareAccess, ShareStatus, ShareType, SnapshotStatus};
use tundra_api::{SecretId, ShareId, ShareTypeId};
use tundra_drivers::share::{Backend, Progress, ShareBackend, ShareError};
use tundra_store::{ShareDone, ShareRecord};

use super::{backend, share_ref, snapshot_name};
use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::secrets::Plaintext;

const GIB: u64 = 1 << 30;
/// How often an available share's use is read back.
const USAGE_EVERY: Duration = Duration::from_secs(60);

/// Each share type's pass runs as a task of its own, at most one per type
/// at a time: a backend out of reach (each call may wait for its timeout)
/// holds up its own type's work only.
pub async fn run(c: Conductor) {
    let mut tick = crate::runner::ticker(Duration::from_secs(2));
    let mut usage_at: HashMap<ShareTypeId, Instant> = HashMap::new();
    let mut running: HashMap<ShareTypeId, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        crate::runner::next_pass(&mut tick, &c.wakes().shares).await;
        running.retain(|_, h| !h.is_finished());
        let types = match c.store().share_type_ids().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "share worker: listing share types failed");
                continue;
            }
        };
        for t in types {
            if running.contains_key(&t) {
                continue;
            }
            let usage = usage_at.get(&t).is_none_or(|at| at.elapsed() >= USAGE_EVERY);
            if usage {
                usage_at.insert(t, Instant::now());
            }
            let c = c.clone();
            running.insert(
                t,
                tokio::spawn(async move {
                    if let Err(e) = once_for(&c, Some(t), usage).await {
                        tracing::warn!(share_type = %t, error = %e, "share worker pass failed");
                    }
                }),
            );
        }
    }
}

/// The backends of the pass, opened once each.
struct Backends<'a> {
    c: &'a Conductor,
    types: HashMap<ShareTypeId, (ShareType, Option<Backend>)>,
}

impl Backends<'_> {
    async fn get(&mut self, id: ShareTypeId) -> Result<(&ShareType, &Backend)> {
        if !self.types.contains_key(&id) {
            let t = self.c.store().share_type(id).await?;
            let b = match backend(self.c, &t).await {
                Ok(b) => Some(b),
                Err(e) => {
                    self.c.store().share_type_error(t.id, Some(e.to_string())).await?;
                    None
                }
            };
            self.types.insert(id, (t, b));
        }
        match self.types.get(&id) {
            Some((t, Some(b))) => Ok((t, b)),
            _ => Err(Error::Failed("the share type's backend cannot be opened".into())),
        }
    }
}

/// One pass over every type, one after the other; `usage`: also read back
/// each available share's use.
pub async fn once(c: &Conductor, usage: bool) -> Result<()> {
    once_for(c, None, usage).await
}

/// How many backend calls of one type a pass makes at once: the `ceph`
/// CLI spends most of a call starting up, so a few at a time overlap.
const AT_ONCE: usize = 4;

/// One pass over the shares of type `only` (all types: `None`).
async fn once_for(c: &Conductor, only: Option<ShareTypeId>, usage: bool) -> Result<()> {
    let mut backends = Backends { c, types: HashMap::new() };
    let mut shares = c.store().share_records().await?;
    shares.retain(|r| only.is_none_or(|t| r.share.share_type_id == t));
    let by_id: HashMap<_, _> = shares.iter().map(|r| (r.share.id, r)).collect();
    // Every backend the pass needs, opened first (once each).
    for rec in &shares {
        let _ = backends.get(rec.share.share_type_id).await;
    }
    let opened = |id: ShareTypeId| match backends.types.get(&id) {
        Some((t, Some(b))) => Some((t, b)),
        _ => None,
    };

    // Rules first: a share being deleted takes its rules back before it
    // goes (`rules`: how many each share still has after this pass).
    let mut rules: HashMap<ShareId, usize> = HashMap::new();
    let all = c.store().all_access().await?;
    let mut by_address: HashMap<ShareId, Vec<&ShareAccess>> = HashMap::new();
    let mut cephx = Vec::new();
    for a in &all {
        *rules.entry(a.share_id).or_default() += 1;
        if a.kind == AccessKind::Ip {
            by_address.entry(a.share_id).or_default().push(a);
            continue;
        }
        let Some(rec) = by_id.get(&a.share_id) else { continue };
        let want_grant = matches!(a.state, AccessState::Queued | AccessState::Applying);
        if !want_grant && a.state != AccessState::Deleting {
            continue;
        }
        if want_grant && rec.share.status == ShareStatus::Creating {
            continue; // granted once the share is there
        }
        let Some((t, b)) = opened(rec.share.share_type_id) else { continue };
        cephx.push((&rec.share, t.id, b, a));
    }
    // (The calls made up front: a closure inside the stream trips the
    // compiler's proof that the spawned pass is Send.)
    let calls: Vec<_> = cephx.into_iter().map(|(s, tid, b, a)| cephx_rule(c, s, tid, b, a)).collect();
    let removed: Vec<Result<Option<ShareId>>> = stream::iter(calls).buffer_unordered(AT_ONCE).collect().await;
    for r in removed {
        if let Some(id) = r? {
            *rules.entry(id).or_default() -= 1;
        }
    }

    for (share_id, list) in by_address {
        let Some(rec) = by_id.get(&share_id) else { continue };
        let removed = address_rules(c, opened(rec.share.share_type_id), &rec.share, &list).await?;
        if let Some(n) = rules.get_mut(&share_id) {
            *n -= removed;
        }
    }

    for snap in c.store().all_snapshots().await? {
        if !matches!(snap.status, SnapshotStatus::Creating | SnapshotStatus::Deleting) {
            continue;
        }
        let Some(rec) = by_id.get(&snap.share_id) else { continue };
        let Some((t, b)) = opened(rec.share.share_type_id) else { continue };
        let tid = t.id;
        let r = share_ref(rec.share.project_id, rec.share.id);
        let name = snapshot_name(snap.id);
        if snap.status == SnapshotStatus::Creating {
            match b.snapshot(&r, &name).await {
                Ok(Progress::Done(())) => {
                    c.store().snapshot_step(snap.id, SnapshotStatus::Creating, SnapshotStatus::Available, None).await?;
                }
                Ok(Progress::Pending(_)) => {} // asked again next pass
                Err(ShareError::Unavailable(why)) => c.store().share_type_error(tid, Some(why)).await?,
                Err(e) => {
                    c.store()
                        .snapshot_step(snap.id, SnapshotStatus::Creating, SnapshotStatus::Error, Some(e.to_string()))
                        .await?;
                }
            }
        } else {
            match b.delete_snapshot(&r, &name).await {
                Ok(()) | Err(ShareError::Missing(_)) => c.store().remove_snapshot(snap.id).await?,
                Err(e) => c.store().share_type_error(tid, Some(e.to_string())).await?,
            }
        }
    }

    let due: Vec<_> = shares
        .iter()
        .filter(|rec| !matches!(rec.share.status, ShareStatus::Available | ShareStatus::Error) || usage)
        .filter_map(|rec| {
            let (_, b) = opened(rec.share.share_type_id)?;
            Some((rec, b, rules.get(&rec.share.id).is_some_and(|n| *n > 0)))
        })
        .collect();
    let steps: Vec<_> = due
        .into_iter()
        .map(|(rec, b, rules_left)| {
            let shares = &shares;
            async move {
                if let Err(e) = step(c, b, rec, shares, rules_left).await {
                    tracing::warn!(share = %rec.share.name, error = %e, "share step failed");
                }
            }
        })
        .collect();
    stream::iter(steps).buffer_unordered(AT_ONCE).collect::<Vec<()>>().await;
    Ok(())
}

/// Grant or take back one cephx rule; the share whose rule left, if one did.
async fn cephx_rule(
    c: &Conductor,
    s: &tundra_api::shares::Share,
    tid: ShareTypeId,
    b: &Backend,
    a: &ShareAccess,
) -> Result<Option<ShareId>> {
    let r = share_ref(s.project_id, s.id);
    if matches!(a.state, AccessState::Queued | AccessState::Applying) {
        if a.state == AccessState::Queued
            && !c.store().access_step(a.id, AccessState::Queued, AccessState::Applying, None, None).await?
        {
            return Ok(None);
        }
        let auth_id = a.ceph_id.clone().unwrap_or_else(|| a.access_to.clone());
        match b.authorize(&r, &auth_id, a.access_level == AccessLevel::Ro).await {
            Ok(g) => {
                let sealed = c.keyring().seal(SecretId::generate(), &Plaintext(g.key.into_bytes()));
                c.store().access_step(a.id, AccessState::Applying, AccessState::Active, None, Some(sealed)).await?;
                c.store().share_type_error(tid, None).await?;
                tracing::info!(share = %s.name, rule = %a.id, "access rule active");
                c.wakes().nodes.notify_one();
            }
            Err(ShareError::Unavailable(why)) => {
                c.store().share_type_error(tid, Some(why)).await?;
            }
            Err(e) => {
                c.store()
                    .access_step(a.id, AccessState::Applying, AccessState::Error, Some(e.to_string()), None)
                    .await?;
            }
        }
        return Ok(None);
    }
    let gone = match &a.ceph_id {
        Some(auth_id) if s.status != ShareStatus::Creating => b.deauthorize(&r, auth_id).await,
        _ => Ok(()),
    };
    match gone {
        Ok(()) | Err(ShareError::Missing(_)) => Ok(c.store().remove_access(a.id).await?.then_some(a.share_id)),
        Err(e) => {
            c.store().share_type_error(tid, Some(e.to_string())).await?;
            Ok(None)
        }
    }
}

/// Address rules (NFS, GlusterFS) go to the backend as the share's whole
/// set: queued ones join it, deleting ones leave it, and one call makes
/// the server let in exactly that set. How many rules it removed.
async fn address_rules(
    c: &Conductor,
    backend: Option<(&ShareType, &Backend)>,
    s: &tundra_api::shares::Share,
    list: &[&ShareAccess],
) -> Result<usize> {
    let owed =
        list.iter().any(|a| matches!(a.state, AccessState::Queued | AccessState::Applying | AccessState::Deleting));
    if !owed {
        return Ok(0);
    }
    if s.status == ShareStatus::Creating {
        // Nothing is on the backend yet: rules taken back go at once, the others wait for the share.
        let mut removed = 0;
        for a in list.iter().filter(|a| a.state == AccessState::Deleting) {
            if c.store().remove_access(a.id).await? {
                removed += 1;
            }
        }
        return Ok(removed);
    }
    let Some((t, b)) = backend else { return Ok(0) };
    let tid = t.id;
    let mut applying = Vec::new();
    let mut clients = Vec::new();
    for a in list {
        let now = match a.state {
            AccessState::Queued => {
                if !c.store().access_step(a.id, AccessState::Queued, AccessState::Applying, None, None).await? {
                    continue;
                }
                AccessState::Applying
            }
            other => other,
        };
        if matches!(now, AccessState::Applying | AccessState::Active) {
            clients.push((a.access_to.clone(), a.access_level == AccessLevel::Ro));
        }
        if now == AccessState::Applying {
            applying.push(a.id);
        }
    }
    let outcome = match b.allow(&share_ref(s.project_id, s.id), &clients).await {
        Err(ShareError::Missing(_)) if s.status == ShareStatus::Deleting => Ok(()),
        other => other,
    };
    match outcome {
        Ok(()) => {
            for id in &applying {
                c.store().access_step(*id, AccessState::Applying, AccessState::Active, None, None).await?;
            }
            let mut removed = 0;
            for a in list.iter().filter(|a| a.state == AccessState::Deleting) {
                if c.store().remove_access(a.id).await? {
                    removed += 1;
                }
            }
            c.store().share_type_error(tid, None).await?;
            if !applying.is_empty() {
                tracing::info!(share = %s.name, rules = applying.len(), "address rules active");
                c.wakes().nodes.notify_one();
            }
            Ok(removed)
        }
        Err(ShareError::Unavailable(why)) => {
            c.store().share_type_error(tid, Some(why)).await?;
            Ok(0)
        }
        Err(e) => {
            for id in &applying {
                c.store()
                    .access_step(*id, AccessState::Applying, AccessState::Error, Some(e.to_string()), None)
                    .await?;
            }
            Ok(0)
        }
    }
}

/// The one step a share needs now.
async fn step(c: &Conductor, b: &Backend, rec: &ShareRecord, all: &[ShareRecord], rules_left: bool) -> Result<()> {
    let s = &rec.share;
    let r = share_ref(s.project_id, s.id);
    let bytes = s.size_gib as u64 * GIB;
    let outcome: Result<Option<ShareDone>, ShareError> = match s.status {
        ShareStatus::Creating => {
            let from = rec.source.and_then(|(src, snap)| {
                all.iter()
                    .find(|x| x.share.id == src)
                    .map(|x| (share_ref(x.share.project_id, x.share.id), snapshot_name(snap)))
            });
            if rec.source.is_some() && from.is_none() {
                Err(ShareError::Refused("the share it was to be copied from is gone".into()))
            } else {
                match b.ensure(&r, bytes, from.as_ref().map(|(r, n)| (r, n.as_str()))).await {
                    Ok(Progress::Done(path)) => Ok(Some(ShareDone {
                        from: s.status,
                        size_gib: s.size_gib,
                        export_path: Some(path),
                        used_bytes: None,
                    })),
                    Ok(Progress::Pending(why)) => {
                        c.store().share_failed(s.id, s.status, why, false).await?;
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
        }
        ShareStatus::Extending => b
            .resize(&r, bytes)
            .await
            .map(|()| Some(ShareDone { from: s.status, size_gib: s.size_gib, export_path: None, used_bytes: None })),
        ShareStatus::Shrinking => match b.info(&r).await {
            Ok(info) if info.used_bytes > bytes => Err(ShareError::Refused(format!(
                "it holds {:.2} GiB, more than {} GiB; free space on it first, or ask for at least {} GiB",
                info.used_bytes as f64 / GIB as f64,
                s.size_gib,
                info.used_bytes.div_ceil(GIB)
            ))),
            Ok(_) => b.resize(&r, bytes).await.map(|()| {
                Some(ShareDone { from: s.status, size_gib: s.size_gib, export_path: None, used_bytes: None })
            }),
            Err(e) => Err(e),
        },
        ShareStatus::Deleting => {
            if rules_left {
                return Ok(()); // their grants go first (the rule pass above)
            }
            match b.delete(&r).await {
                Ok(()) | Err(ShareError::Missing(_)) => {
                    c.store().remove_share(s.id).await?;
                    tracing::info!(share = %s.name, "share deleted");
                    return Ok(());
                }
                Err(e) => Err(e),
            }
        }
        ShareStatus::Available | ShareStatus::Error => {
            if let Ok(info) = b.info(&r).await {
                c.store().share_usage(s.id, info.used_bytes as i64).await?;
            }
            return Ok(());
        }
    };
    match outcome {
        Ok(Some(done)) => {
            let what = s.status;
            if c.store().share_done(s.id, done).await? {
                tracing::info!(share = %s.name, after = %what, "share available");
                c.wakes().nodes.notify_one();
            }
        }
        Ok(None) => {}
        Err(ShareError::Unavailable(why)) => {
            c.store().share_type_error(s.share_type_id, Some(why.clone())).await?;
            c.store().share_failed(s.id, s.status, format!("waiting for the backend: {why}"), false).await?;
        }
        Err(e) => {
            // A delete that the backend refuses stays `deleting`, with the reason, and is tried again.
            let give_up = s.status != ShareStatus::Deleting;
            c.store().share_failed(s.id, s.status, e.to_string(), give_up).await?;
        }
    }
    Ok(())
}
