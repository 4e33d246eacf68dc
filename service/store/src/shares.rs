//! Shares: share types (the site's backends, credential sealed), shares,
//! their access rules and snapshots (projects'), and what nodes mount.
//!
//! Rows say what the share worker still owes the backend: a share
//! `creating` / `extending` / `shrinking` / `deleting`, a rule `queued` /
//! `applying` / `deleting`, a snapshot `creating` / `deleting`. The worker
//! moves them on with compare-and-set on the state it read (and, for a
//! resize, the size it applied), so a change made meanwhile is never
//! overwritten. A row leaves only after the backend object is gone, so a
//! restart can strand nothing on the backend.

use std::collections::HashMap;

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::shares::{
    AccessKind, AccessLevel, AccessState, NodeMount, NodeShare, Share, ShareAccess, ShareBackend, ShareSnapshot,
    ShareStatus, ShareType, ShareTypeSettings, SnapshotStatus,
};
use tundra_api::{NetworkId, NodeId, Page, ProjectId, SecretId, ShareAccessId, ShareId, ShareSnapshotId, ShareTypeId};

use crate::secrets::{SecretRecord, put_secret_in};
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, Write, check_revision, event, get, id_col, json_col, now,
    opt_id_col, to_json, u32_col, unique_at, word,
};

fn share_type(row: &AnyRow) -> Result<ShareType> {
    let backend = word("share_types", row, "backend", ShareBackend::parse)?;
    Ok(ShareType {
        id: id_col("share_types", row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        backend,
        settings: json_col::<ShareTypeSettings>("share_types", row, "settings")?,
        has_credential: get::<Option<String>>(row, "credential_secret")?.is_some(),
        legacy: backend == ShareBackend::Glusterfs,
        last_error: get(row, "last_error")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

/// Shares are read with their type's backend.
const SHARES_VIEW: &str =
    "(SELECT s.*, t.backend AS backend FROM shares s JOIN share_types t ON t.id = s.share_type_id)";

fn share(row: &AnyRow) -> Result<Share> {
    Ok(Share {
        id: id_col("shares", row, "id")?,
        project_id: id_col("shares", row, "project_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        share_type_id: id_col("shares", row, "share_type_id")?,
        backend: word("shares", row, "backend", ShareBackend::parse)?,
        size_gib: u32_col(row, "size_gib")?,
        status: word("shares", row, "status", ShareStatus::parse)?,
        status_reason: get(row, "status_reason")?,
        networks: json_col("shares", row, "networks")?,
        // Filled by the conductor from the type and `export_path`.
        export_locations: Vec::new(),
        snapshot_id: opt_id_col("shares", row, "snapshot_id")?,
        used_bytes: get(row, "used_bytes")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn access(row: &AnyRow) -> Result<ShareAccess> {
    Ok(ShareAccess {
        id: id_col("share_access", row, "id")?,
        project_id: id_col("share_access", row, "project_id")?,
        share_id: id_col("share_access", row, "share_id")?,
        kind: word("share_access", row, "kind", AccessKind::parse)?,
        access_to: get(row, "access_to")?,
        access_level: word("share_access", row, "access_level", AccessLevel::parse)?,
        state: word("share_access", row, "state", AccessState::parse)?,
        state_reason: get(row, "state_reason")?,
        ceph_id: get(row, "ceph_id")?,
        node_id: opt_id_col("share_access", row, "node_id")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn snapshot(row: &AnyRow) -> Result<ShareSnapshot> {
    Ok(ShareSnapshot {
        id: id_col("share_snapshots", row, "id")?,
        project_id: id_col("share_snapshots", row, "project_id")?,
        share_id: id_col("share_snapshots", row, "share_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        status: word("share_snapshots", row, "status", SnapshotStatus::parse)?,
        status_reason: get(row, "status_reason")?,
        size_gib: u32_col(row, "size_gib")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const SHARE_TYPES: Table<ShareType> =
    Table::new("share_types", "share type", share_type, |x| x.id.to_string()).kind("share_type").public();
pub(crate) const SHARES: Table<Share> = Table::new("shares", "share", share, |x| x.id.to_string()).view(SHARES_VIEW);
pub(crate) const ACCESS: Table<ShareAccess> =
    Table::new("share_access", "share access rule", access, |x| x.id.to_string()).kind("share_access");
pub(crate) const SNAPSHOTS: Table<ShareSnapshot> =
    Table::new("share_snapshots", "share snapshot", snapshot, |x| x.id.to_string()).kind("share_snapshot");

#[derive(Debug)]
pub struct NewShareType {
    pub name: String,
    pub description: String,
    pub backend: ShareBackend,
    pub settings: ShareTypeSettings,
    pub credential: Option<SecretRecord>,
}

#[derive(Debug)]
pub struct NewShare {
    pub project_id: ProjectId,
    pub share_type_id: ShareTypeId,
    pub name: String,
    pub description: String,
    pub size_gib: u32,
    pub networks: Vec<NetworkId>,
    pub snapshot_id: Option<ShareSnapshotId>,
}

#[derive(Debug, Default)]
pub struct ShareChanges {
    pub description: Option<String>,
    pub size_gib: Option<u32>,
    pub networks: Option<Vec<NetworkId>>,
}

#[derive(Debug)]
pub struct NewAccess {
    pub share_id: ShareId,
    pub kind: AccessKind,
    pub access_to: String,
    pub access_level: AccessLevel,
    pub ceph_id: Option<String>,
    pub node_id: Option<NodeId>,
}

/// What the worker learned finishing a share's step.
#[derive(Debug, Clone)]
pub struct ShareDone {
    /// The status it found the share in (compare-and-set).
    pub from: ShareStatus,
    /// The size it applied (compare-and-set: a new size asked meanwhile wins).
    pub size_gib: u32,
    pub export_path: Option<String>,
    pub used_bytes: Option<i64>,
}

/// A share with what the worker needs beyond its view.
#[derive(Debug, Clone)]
pub struct ShareRecord {
    pub share: Share,
    pub export_path: Option<String>,
    /// The share it was made from and the snapshot's ID (a clone).
    pub source: Option<(ShareId, ShareSnapshotId)>,
}

async fn share_event(w: &mut Write, actor: &Actor, s: &Share, action: &str, detail: serde_json::Value) -> Result<()> {
    event(w, actor, Some(s.project_id), "share", &s.id.to_string(), action, detail).await
}

impl Store {
    // ---- share types -------------------------------------------------

    pub async fn create_share_type(&self, actor: &Actor, t: NewShareType) -> Result<ShareType> {
        let mut w = self.write().await?;
        if let Some(r) = &t.credential {
            put_secret_in(&mut w, r).await?;
        }
        let id = ShareTypeId::generate();
        sqlx::query(
            "INSERT INTO share_types (id, name, description, backend, settings, credential_secret, last_error, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, 1)",
        )
        .bind(id.to_string())
        .bind(t.name.clone())
        .bind(t.description)
        .bind(t.backend.as_str())
        .bind(to_json(&t.settings))
        .bind(t.credential.as_ref().map(|r| r.id.to_string()))
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique_at(e, "/name".into(), || format!("a share type named {:?} exists; pick another name", t.name)))?;
        SHARE_TYPES.commit(w, actor, None, id, "created", json!({"name": t.name, "backend": t.backend})).await
    }

    pub async fn share_type(&self, id: ShareTypeId) -> Result<ShareType> {
        SHARE_TYPES.get(self, id).await
    }

    pub async fn list_share_types(&self, p: &ListParams) -> Result<Page<ShareType>> {
        SHARE_TYPES.list(self, p, &Visibility::All).await
    }

    /// Every share type's ID (the share worker runs each type on its own).
    pub async fn share_type_ids(&self) -> Result<Vec<ShareTypeId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM share_types ORDER BY id").fetch_all(&self.pool).await?;
        ids.iter().map(|i| crate::parse_id("share_types", i)).collect()
    }

    /// The share type's sealed credential (for the share worker only).
    pub async fn share_type_secret(&self, id: ShareTypeId) -> Result<Option<SecretId>> {
        let row = sqlx::query("SELECT credential_secret FROM share_types WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "share type", id: id.to_string() })?;
        opt_id_col("share_types", &row, "credential_secret")
    }

    pub async fn update_share_type(
        &self,
        actor: &Actor,
        id: ShareTypeId,
        description: Option<String>,
        credential: Option<SecretRecord>,
        if_match: Option<i64>,
    ) -> Result<ShareType> {
        let mut w = self.write().await?;
        let cur = SHARE_TYPES.get_in(&mut w, id).await?;
        check_revision("share type", &id.to_string(), cur.revision, if_match)?;
        if let Some(r) = &credential {
            put_secret_in(&mut w, r).await?;
            sqlx::query("UPDATE share_types SET credential_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query("UPDATE share_types SET description = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
            .bind(description.clone().unwrap_or(cur.description))
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        SHARE_TYPES.commit(w, actor, None, id, "updated", json!({"credential_changed": credential.is_some()})).await
    }

    /// Delete a share type no share uses.
    pub async fn delete_share_type(&self, actor: &Actor, id: ShareTypeId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = SHARE_TYPES.get_in(&mut w, id).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shares WHERE share_type_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "share type {} has {n} share(s); they must be deleted first",
                cur.name
            )));
        }
        let secret: Option<String> = sqlx::query_scalar("SELECT credential_secret FROM share_types WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM share_types WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if let Some(s) = secret {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s).execute(&mut *w.tx).await?;
        }
        event(&mut w, actor, None, "share_type", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    /// What the backend said on the last call (none: it answered).
    pub async fn share_type_error(&self, id: ShareTypeId, error: Option<String>) -> Result<()> {
        sqlx::query(
            "UPDATE share_types SET last_error = $1 WHERE id = $2 AND COALESCE(last_error, '') <> COALESCE($1, '')",
        )
        .bind(error)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- shares ------------------------------------------------------

    /// A new share, `creating`; from a snapshot of the same project and type.
    pub async fn create_share(&self, actor: &Actor, s: NewShare) -> Result<Share> {
        let mut w = self.write().await?;
        let t = SHARE_TYPES.get_in(&mut w, s.share_type_id).await.map_err(|_| StoreError::ConflictAt {
            pointer: "/share_type_id".into(),
            detail: format!("no share type {}", s.share_type_id),
        })?;
        if let Some(snap) = s.snapshot_id {
            let sn = SNAPSHOTS.get_in(&mut w, snap).await.ok().filter(|x| x.project_id == s.project_id).ok_or_else(
                || StoreError::ConflictAt {
                    pointer: "/snapshot_id".into(),
                    detail: format!("no snapshot {snap} in this project"),
                },
            )?;
            let src = SHARES.get_in(&mut w, sn.share_id).await?;
            if src.share_type_id != t.id {
                return Err(StoreError::ConflictAt {
                    pointer: "/snapshot_id".into(),
                    detail: format!("snapshot {} is of a share of another share type; use that type", sn.name),
                });
            }
            if sn.status != SnapshotStatus::Available {
                return Err(StoreError::ConflictAt {
                    pointer: "/snapshot_id".into(),
                    detail: format!("snapshot {} is {}; wait until it is available", sn.name, sn.status),
                });
            }
            if s.size_gib < sn.size_gib {
                return Err(StoreError::ConflictAt {
                    pointer: "/size_gib".into(),
                    detail: format!("snapshot {} holds a {} GiB share; ask for at least that", sn.name, sn.size_gib),
                });
            }
        }
        let id = ShareId::generate();
        sqlx::query(
            "INSERT INTO shares (id, project_id, share_type_id, name, description, size_gib, status, status_reason, networks, \
             export_path, snapshot_id, used_bytes, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, 'creating', NULL, $7, NULL, $8, NULL, $9, $9, 1)",
        )
        .bind(id.to_string())
        .bind(s.project_id.to_string())
        .bind(t.id.to_string())
        .bind(s.name.clone())
        .bind(s.description)
        .bind(s.size_gib as i64)
        .bind(to_json(&s.networks))
        .bind(s.snapshot_id.map(|x| x.to_string()))
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique_at(e, "/name".into(), || format!("this project has a share named {:?}; pick another name", s.name)))?;
        SHARES
            .commit(
                w,
                actor,
                Some(s.project_id),
                id,
                "created",
                json!({"name": s.name, "size_gib": s.size_gib, "share_type": t.name}),
            )
            .await
    }

    pub async fn share(&self, id: ShareId) -> Result<Share> {
        SHARES.get(self, id).await
    }

    pub async fn list_shares(&self, p: &ListParams, v: &Visibility) -> Result<Page<Share>> {
        SHARES.list(self, p, v).await
    }

    /// Every share with what the worker needs.
    pub async fn share_records(&self) -> Result<Vec<ShareRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT x.*, sn.share_id AS source_share FROM {SHARES_VIEW} x LEFT JOIN share_snapshots sn ON sn.id = x.snapshot_id ORDER BY x.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s = share(r)?;
                let source = match (opt_id_col::<ShareId>("shares", r, "source_share")?, s.snapshot_id) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                };
                Ok(ShareRecord { export_path: get(r, "export_path")?, source, share: s })
            })
            .collect()
    }

    /// Where each of `ids` is mounted from inside the filesystem, once made
    /// (one read for a page of shares).
    pub async fn share_export_paths(&self, ids: &[ShareId]) -> Result<HashMap<ShareId, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut q =
            crate::sql::Sql::new("SELECT id, export_path FROM shares WHERE export_path IS NOT NULL AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind(id.to_string());
        }
        q.push(")");
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((id_col("shares", r, "id")?, get(r, "export_path")?))).collect()
    }

    /// Where the share is mounted from inside the filesystem, once made.
    pub async fn share_export_path(&self, id: ShareId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT export_path FROM shares WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    /// A new description, size (→ `extending` / `shrinking`) or networks.
    pub async fn update_share(
        &self,
        actor: &Actor,
        id: ShareId,
        c: ShareChanges,
        if_match: Option<i64>,
    ) -> Result<Share> {
        let mut w = self.write().await?;
        let cur = SHARES.get_in(&mut w, id).await?;
        check_revision("share", &id.to_string(), cur.revision, if_match)?;
        let mut status = cur.status;
        if let Some(size) = c.size_gib.filter(|s| *s != cur.size_gib) {
            if !matches!(cur.status, ShareStatus::Available | ShareStatus::Error) {
                return Err(StoreError::ConflictAt {
                    pointer: "/size_gib".into(),
                    detail: format!("share {} is {}; change its size once it is available", cur.name, cur.status),
                });
            }
            status = if size > cur.size_gib { ShareStatus::Extending } else { ShareStatus::Shrinking };
        }
        sqlx::query(
            "UPDATE shares SET description = $1, size_gib = $2, networks = $3, status = $4, \
             status_reason = CASE WHEN $4 = status THEN status_reason ELSE NULL END, updated_at = $5, revision = revision + 1 WHERE id = $6",
        )
        .bind(c.description.clone().unwrap_or(cur.description.clone()))
        .bind(c.size_gib.unwrap_or(cur.size_gib) as i64)
        .bind(to_json(c.networks.as_ref().unwrap_or(&cur.networks)))
        .bind(status.as_str())
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        SHARES
            .commit(
                w,
                actor,
                Some(cur.project_id),
                id,
                "updated",
                json!({"size_gib": c.size_gib, "networks": c.networks}),
            )
            .await
    }

    /// Start deleting a share. Refused while a node mounts it, a rule is
    /// still in force, or a snapshot of it exists — unless `force`, which
    /// also takes its rules back (mounts by nodes still refuse).
    pub async fn delete_share(&self, actor: &Actor, id: ShareId, force: bool) -> Result<Share> {
        let mut w = self.write().await?;
        let cur = SHARES.get_in(&mut w, id).await?;
        if cur.status == ShareStatus::Deleting {
            return Ok(cur);
        }
        let mounted: Vec<String> = sqlx::query_scalar(
            "SELECT n.name FROM node_shares m JOIN nodes n ON n.id = m.node_id WHERE m.share_id = $1 ORDER BY n.name",
        )
        .bind(id.to_string())
        .fetch_all(&mut *w.tx)
        .await?;
        if !mounted.is_empty() {
            return Err(StoreError::Conflict(format!(
                "share {} is mounted by node(s) {}; remove it from their shares first",
                cur.name,
                mounted.join(", ")
            )));
        }
        let rules: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM share_access WHERE share_id = $1 AND state <> 'deleting'")
                .bind(id.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
        if rules > 0 && !force {
            return Err(StoreError::Conflict(format!(
                "share {} has {rules} access rule(s) in force; delete them first, or delete with force=true",
                cur.name
            )));
        }
        let snaps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM share_snapshots WHERE share_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if snaps > 0 {
            return Err(StoreError::Conflict(format!("share {} has {snaps} snapshot(s); delete them first", cur.name)));
        }
        let t = now();
        sqlx::query(
            "UPDATE share_access SET state = 'deleting', updated_at = $1, revision = revision + 1 WHERE share_id = $2",
        )
        .bind(t.clone())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        sqlx::query("UPDATE shares SET status = 'deleting', status_reason = NULL, updated_at = $1, revision = revision + 1 WHERE id = $2")
            .bind(t)
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        SHARES.commit(w, actor, Some(cur.project_id), id, "deleting", json!({"force": force})).await
    }

    /// The worker finished the share's step: `available` if it is still in
    /// the status it read at the size it applied. False when it changed meanwhile.
    pub async fn share_done(&self, id: ShareId, d: ShareDone) -> Result<bool> {
        let mut w = self.write().await?;
        let n = sqlx::query(
            "UPDATE shares SET status = 'available', status_reason = NULL, export_path = COALESCE($1, export_path), \
             used_bytes = COALESCE($2, used_bytes), updated_at = $3, revision = revision + 1 \
             WHERE id = $4 AND status = $5 AND size_gib = $6",
        )
        .bind(d.export_path.clone())
        .bind(d.used_bytes)
        .bind(now())
        .bind(id.to_string())
        .bind(d.from.as_str())
        .bind(d.size_gib as i64)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        let s = SHARES.get_in(&mut w, id).await?;
        share_event(&mut w, &Actor::service(), &s, "available", json!({"size_gib": d.size_gib, "after": d.from}))
            .await?;
        w.commit().await?;
        Ok(true)
    }

    /// The share's step failed for good (`error`), or is still under way
    /// (`status` unchanged, the reason says why), compare-and-set.
    pub async fn share_failed(&self, id: ShareId, from: ShareStatus, reason: String, give_up: bool) -> Result<bool> {
        let mut w = self.write().await?;
        let to = if give_up { ShareStatus::Error } else { from };
        let n = sqlx::query(
            "UPDATE shares SET status = $1, status_reason = $2, updated_at = $3, revision = revision + 1 \
             WHERE id = $4 AND status = $5 AND COALESCE(status_reason, '') <> $2",
        )
        .bind(to.as_str())
        .bind(reason.clone())
        .bind(now())
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if give_up {
            let s = SHARES.get_in(&mut w, id).await?;
            share_event(&mut w, &Actor::service(), &s, "failed", json!({"during": from, "reason": reason})).await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// What the backend says the share holds.
    pub async fn share_usage(&self, id: ShareId, used_bytes: i64) -> Result<()> {
        sqlx::query("UPDATE shares SET used_bytes = $1 WHERE id = $2 AND COALESCE(used_bytes, -1) <> $1")
            .bind(used_bytes)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The backend no longer has the share: its rows go (rules with their keys).
    pub async fn remove_share(&self, id: ShareId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = SHARES.get_in(&mut w, id).await?;
        if cur.status != ShareStatus::Deleting {
            return Err(StoreError::Conflict(format!("share {} is {}, not deleting", cur.name, cur.status)));
        }
        let secrets: Vec<Option<String>> =
            sqlx::query_scalar("SELECT key_secret FROM share_access WHERE share_id = $1")
                .bind(id.to_string())
                .fetch_all(&mut *w.tx)
                .await?;
        sqlx::query("DELETE FROM share_access WHERE share_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        for s in secrets.into_iter().flatten() {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s).execute(&mut *w.tx).await?;
        }
        sqlx::query("DELETE FROM shares WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        share_event(&mut w, &Actor::service(), &cur, "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    // ---- access rules ------------------------------------------------

    /// A new rule, `queued`, on a share of the caller's project that is not being deleted.
    pub async fn create_access(&self, actor: &Actor, a: NewAccess) -> Result<ShareAccess> {
        let mut w = self.write().await?;
        let s = SHARES.get_in(&mut w, a.share_id).await?;
        if s.status == ShareStatus::Deleting {
            return Err(StoreError::ConflictAt {
                pointer: "/share_id".into(),
                detail: format!("share {} is being deleted", s.name),
            });
        }
        let id = insert_access_in(&mut w, &s, &a, &now()).await.map_err(|e| {
            unique_at(e, "/access_to".into(), || {
                format!("share {} already has a {} rule for {:?}", s.name, a.kind, a.access_to)
            })
        })?;
        ACCESS
            .commit(
                w,
                actor,
                Some(s.project_id),
                id,
                "created",
                json!({"share": s.name, "kind": a.kind, "access_to": a.access_to, "access_level": a.access_level}),
            )
            .await
    }

    pub async fn access(&self, id: ShareAccessId) -> Result<ShareAccess> {
        ACCESS.get(self, id).await
    }

    pub async fn list_access(&self, p: &ListParams, v: &Visibility) -> Result<Page<ShareAccess>> {
        ACCESS.list(self, p, v).await
    }

    pub async fn all_access(&self) -> Result<Vec<ShareAccess>> {
        ACCESS.all(self).await
    }

    /// The rule's sealed key (active cephx rules).
    pub async fn access_secret(&self, id: ShareAccessId) -> Result<Option<SecretId>> {
        let s: Option<String> = sqlx::query_scalar("SELECT key_secret FROM share_access WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "share access rule", id: id.to_string() })?;
        s.map(|s| crate::parse_id("share_access", &s)).transpose()
    }

    /// Move a rule on from `from` (compare-and-set); `key` is stored when given.
    pub async fn access_step(
        &self,
        id: ShareAccessId,
        from: AccessState,
        to: AccessState,
        reason: Option<String>,
        key: Option<SecretRecord>,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let id = id.to_string();
        if !step_in(&mut w, ("share_access", "state", "share_access"), &id, (from.as_str(), to.as_str()), reason)
            .await?
        {
            return Ok(false);
        }
        if let Some(r) = &key {
            put_secret_in(&mut w, r).await?;
            sqlx::query("UPDATE share_access SET key_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// Start taking a rule back. A rule tundrad made for a node's mount goes
    /// with the mount (change the node's shares), not by itself.
    pub async fn delete_access(&self, actor: &Actor, id: ShareAccessId) -> Result<ShareAccess> {
        let mut w = self.write().await?;
        let cur = ACCESS.get_in(&mut w, id).await?;
        if let Some(node) = cur.node_id {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM node_shares WHERE access_id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
            if held > 0 {
                return Err(StoreError::Conflict(format!(
                    "this rule belongs to node {node}'s mount; remove the share from the node's shares instead"
                )));
            }
        }
        if cur.state == AccessState::Deleting {
            return Ok(cur);
        }
        sqlx::query(
            "UPDATE share_access SET state = 'deleting', updated_at = $1, revision = revision + 1 WHERE id = $2",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        ACCESS.commit(w, actor, Some(cur.project_id), id, "deleting", json!({})).await
    }

    /// The backend no longer grants the rule: its row and key go. False when
    /// the rule was asked for again meanwhile (it stays).
    pub async fn remove_access(&self, id: ShareAccessId) -> Result<bool> {
        let mut w = self.write().await?;
        let cur = ACCESS.get_in(&mut w, id).await?;
        if cur.state != AccessState::Deleting {
            return Ok(false); // asked for again meanwhile (a node's mount came back)
        }
        let secret: Option<String> = sqlx::query_scalar("SELECT key_secret FROM share_access WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM share_access WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if let Some(s) = secret {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s).execute(&mut *w.tx).await?;
        }
        event(&mut w, &Actor::service(), Some(cur.project_id), "share_access", &id.to_string(), "deleted", json!({}))
            .await?;
        w.commit().await?;
        Ok(true)
    }

    // ---- snapshots ---------------------------------------------------

    pub async fn create_snapshot(
        &self,
        actor: &Actor,
        share_id: ShareId,
        name: String,
        description: String,
    ) -> Result<ShareSnapshot> {
        let mut w = self.write().await?;
        let s = SHARES.get_in(&mut w, share_id).await?;
        if s.status != ShareStatus::Available {
            return Err(StoreError::ConflictAt {
                pointer: "/share_id".into(),
                detail: format!("share {} is {}; snapshot it once it is available", s.name, s.status),
            });
        }
        let id = ShareSnapshotId::generate();
        sqlx::query(
            "INSERT INTO share_snapshots (id, project_id, share_id, name, description, status, status_reason, size_gib, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, 'creating', NULL, $6, $7, $7, 1)",
        )
        .bind(id.to_string())
        .bind(s.project_id.to_string())
        .bind(s.id.to_string())
        .bind(name.clone())
        .bind(description)
        .bind(s.size_gib as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique_at(e, "/name".into(), || format!("share {} has a snapshot named {name:?}", s.name)))?;
        SNAPSHOTS.commit(w, actor, Some(s.project_id), id, "created", json!({"share": s.name, "name": name})).await
    }

    pub async fn snapshot(&self, id: ShareSnapshotId) -> Result<ShareSnapshot> {
        SNAPSHOTS.get(self, id).await
    }

    pub async fn list_snapshots(&self, p: &ListParams, v: &Visibility) -> Result<Page<ShareSnapshot>> {
        SNAPSHOTS.list(self, p, v).await
    }

    pub async fn all_snapshots(&self) -> Result<Vec<ShareSnapshot>> {
        SNAPSHOTS.all(self).await
    }

    /// Move a snapshot on from `from` (compare-and-set).
    pub async fn snapshot_step(
        &self,
        id: ShareSnapshotId,
        from: SnapshotStatus,
        to: SnapshotStatus,
        reason: Option<String>,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let table = ("share_snapshots", "status", "share_snapshot");
        if !step_in(&mut w, table, &id.to_string(), (from.as_str(), to.as_str()), reason).await? {
            return Ok(false);
        }
        w.commit().await?;
        Ok(true)
    }

    /// Start deleting a snapshot no share is still being made from.
    pub async fn delete_snapshot(&self, actor: &Actor, id: ShareSnapshotId) -> Result<ShareSnapshot> {
        let mut w = self.write().await?;
        let cur = SNAPSHOTS.get_in(&mut w, id).await?;
        let cloning: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM shares WHERE snapshot_id = $1 AND status = 'creating'")
                .bind(id.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
        if cloning > 0 {
            return Err(StoreError::Conflict(format!(
                "snapshot {} is being copied into {cloning} new share(s); delete it once they are available",
                cur.name
            )));
        }
        sqlx::query(
            "UPDATE share_snapshots SET status = 'deleting', updated_at = $1, revision = revision + 1 WHERE id = $2",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        SNAPSHOTS.commit(w, actor, Some(cur.project_id), id, "deleting", json!({})).await
    }

    pub async fn remove_snapshot(&self, id: ShareSnapshotId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = SNAPSHOTS.get_in(&mut w, id).await?;
        sqlx::query("UPDATE shares SET snapshot_id = NULL WHERE snapshot_id = $1")
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM share_snapshots WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, &Actor::service(), Some(cur.project_id), "share_snapshot", &id.to_string(), "deleted", json!({}))
            .await?;
        w.commit().await
    }

    // ---- what nodes mount ----------------------------------------------

    /// Set a node's mounts. A new mount gets a rule tundrad makes for the
    /// node (`cephx` ID `node-<node>` or the node's `ip`); a mount that goes
    /// takes its rule back (`deleting`). Shares must be the node's project's.
    pub async fn set_node_shares(
        &self,
        actor: &Actor,
        node: NodeId,
        want: &[NodeShare],
        node_ip: Option<String>,
    ) -> Result<()> {
        let mut w = self.write().await?;
        // The node's row locked (not read through its table: nodes call into
        // this file when they go, and modules import one way only).
        crate::lock_row(&mut w, "nodes", "node", node.to_string()).await?;
        let project: String = sqlx::query_scalar("SELECT project_id FROM nodes WHERE id = $1")
            .bind(node.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let project = crate::parse_id("nodes", &project)?;
        set_node_shares_in(&mut w, node, project, want, node_ip).await?;
        event(&mut w, actor, Some(project), "node", &node.to_string(), "shares_changed", json!({"shares": want}))
            .await?;
        w.commit().await
    }

    /// A node's mounts with their rules' states.
    pub async fn node_mounts(&self, node: NodeId) -> Result<Vec<NodeMount>> {
        let rows = sqlx::query(NODE_MOUNTS).bind(node.to_string()).fetch_all(&self.pool).await?;
        rows.iter().map(mount).collect()
    }

    /// Every node's mounts (one read for a page of nodes).
    pub async fn all_node_mounts(&self) -> Result<Vec<(NodeId, NodeMount)>> {
        let rows = sqlx::query(
            "SELECT m.node_id, m.share_id, m.mount_point, m.access, m.access_id, a.state FROM node_shares m \
             LEFT JOIN share_access a ON a.id = m.access_id ORDER BY m.node_id, m.mount_point",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((id_col("node_shares", r, "node_id")?, mount(r)?))).collect()
    }
}

/// A node's mounts with their rules' states, by mount point.
const NODE_MOUNTS: &str = "SELECT m.share_id, m.mount_point, m.access, m.access_id, a.state FROM node_shares m \
     LEFT JOIN share_access a ON a.id = m.access_id WHERE m.node_id = $1 ORDER BY m.mount_point";

struct NodeOwner {
    project_id: ProjectId,
}

fn mount(r: &AnyRow) -> Result<NodeMount> {
    Ok(NodeMount {
        share_id: id_col("node_shares", r, "share_id")?,
        mount_point: get(r, "mount_point")?,
        access: word("node_shares", r, "access", AccessLevel::parse)?,
        access_id: opt_id_col("node_shares", r, "access_id")?,
        state: get::<Option<String>>(r, "state")?.and_then(|s| AccessState::parse(&s)).unwrap_or(AccessState::Queued),
    })
}

async fn node_mounts_in(w: &mut Write, node: NodeId) -> Result<Vec<NodeMount>> {
    let rows = sqlx::query(NODE_MOUNTS).bind(node.to_string()).fetch_all(&mut *w.tx).await?;
    rows.iter().map(mount).collect()
}

/// A new rule, `queued`, on share `s`, inside the caller's write.
async fn insert_access_in(
    w: &mut Write,
    s: &Share,
    a: &NewAccess,
    at: &str,
) -> std::result::Result<ShareAccessId, sqlx::Error> {
    let id = ShareAccessId::generate();
    sqlx::query(
        "INSERT INTO share_access (id, project_id, share_id, kind, access_to, access_level, state, state_reason, ceph_id, \
         key_secret, node_id, created_at, updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, 'queued', NULL, $7, NULL, $8, $9, $9, 1)",
    )
    .bind(id.to_string())
    .bind(s.project_id.to_string())
    .bind(s.id.to_string())
    .bind(a.kind.as_str())
    .bind(a.access_to.clone())
    .bind(a.access_level.as_str())
    .bind(a.ceph_id.clone())
    .bind(a.node_id.map(|n| n.to_string()))
    .bind(at.to_string())
    .execute(&mut *w.tx)
    .await?;
    Ok(id)
}

/// Move row `id` of `(table, state column, event kind)` from one state to
/// another (compare-and-set) with the reason (`<column>_reason`), and record
/// the move as the worker's event. False when another change got there first.
async fn step_in(
    w: &mut Write,
    (table, column, kind): (&'static str, &'static str, &'static str),
    id: &str,
    (from, to): (&str, &str),
    reason: Option<String>,
) -> Result<bool> {
    let moved = sqlx::query(&format!(
        "UPDATE {table} SET {column} = $1, {column}_reason = $2, updated_at = $3, revision = revision + 1 \
         WHERE id = $4 AND {column} = $5"
    ))
    .bind(to.to_string())
    .bind(reason.clone())
    .bind(now())
    .bind(id.to_string())
    .bind(from.to_string())
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    if from != to {
        let project: String = sqlx::query_scalar(&format!("SELECT project_id FROM {table} WHERE id = $1"))
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let project = crate::parse_id(table, &project)?;
        event(w, &Actor::service(), Some(project), kind, id, to, json!({"reason": reason})).await?;
    }
    Ok(true)
}

/// The cephx ID a project's rule named `name` authenticates as: the
/// project's namespace first, so no tenant can name another's ID.
pub fn ceph_id(project: ProjectId, name: &str) -> String {
    format!("tundra.{}.{name}", project.0.simple())
}

/// Before a node goes: its mounts end and their rules go back.
pub(crate) async fn drop_node_shares_in(w: &mut Write, node: NodeId) -> Result<()> {
    let t = now();
    sqlx::query(
        "UPDATE share_access SET state = 'deleting', updated_at = $1, revision = revision + 1 \
             WHERE id IN (SELECT access_id FROM node_shares WHERE node_id = $2)",
    )
    .bind(t)
    .bind(node.to_string())
    .execute(&mut *w.tx)
    .await?;
    sqlx::query("DELETE FROM node_shares WHERE node_id = $1").bind(node.to_string()).execute(&mut *w.tx).await?;
    sqlx::query("UPDATE share_access SET node_id = NULL WHERE node_id = $1")
        .bind(node.to_string())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// Set node `node`'s (of `project`) mounts inside the caller's transaction
/// (`Store::set_node_shares`; a new node's, in its create).
pub(crate) async fn set_node_shares_in(
    w: &mut Write,
    node: NodeId,
    project: ProjectId,
    want: &[NodeShare],
    node_ip: Option<String>,
) -> Result<()> {
    let n = NodeOwner { project_id: project };
    let have = node_mounts_in(w, node).await?;
    let t = now();
    // Gone (or changed) mounts first, so a moved mount point is free again.
    for h in &have {
        let keep =
            want.iter().any(|x| x.share_id == h.share_id && x.mount_point == h.mount_point && x.access == h.access);
        if keep {
            continue;
        }
        sqlx::query("DELETE FROM node_shares WHERE node_id = $1 AND mount_point = $2")
            .bind(node.to_string())
            .bind(h.mount_point.clone())
            .execute(&mut *w.tx)
            .await?;
        if let Some(a) = h.access_id {
            let still: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM node_shares WHERE access_id = $1")
                .bind(a.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
            if still == 0 {
                sqlx::query("UPDATE share_access SET state = 'deleting', updated_at = $1, revision = revision + 1 WHERE id = $2")
                        .bind(t.clone())
                        .bind(a.to_string())
                        .execute(&mut *w.tx)
                        .await?;
            }
        }
    }
    for (i, x) in want.iter().enumerate() {
        if have.iter().any(|h| h.share_id == x.share_id && h.mount_point == x.mount_point && h.access == x.access) {
            continue;
        }
        let pointer = format!("/shares/{i}/share_id");
        let s = match SHARES.get_in(w, x.share_id).await {
            Ok(s) if s.project_id == n.project_id => s,
            _ => {
                return Err(StoreError::ConflictAt {
                    pointer,
                    detail: format!("no share {} in this project", x.share_id),
                });
            }
        };
        if s.status == ShareStatus::Deleting {
            return Err(StoreError::ConflictAt { pointer, detail: format!("share {} is being deleted", s.name) });
        }
        let (kind, to, ceph_id) = match s.backend.rule_kind() {
            AccessKind::Cephx => {
                let name = format!("node-{}-{}", node.0.simple(), x.access);
                let ceph = ceph_id(s.project_id, &name);
                (AccessKind::Cephx, name, Some(ceph))
            }
            AccessKind::Ip => match &node_ip {
                Some(ip) => (AccessKind::Ip, format!("{ip}/32"), None),
                None => {
                    return Err(StoreError::ConflictAt {
                        pointer,
                        detail: format!("share {} is reached by address and this node has none yet", s.name),
                    });
                }
            },
        };
        // One rule per node, share and access level, shared by its mount points.
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM share_access WHERE share_id = $1 AND kind = $2 AND access_to = $3")
                .bind(s.id.to_string())
                .bind(kind.as_str())
                .bind(to.clone())
                .fetch_optional(&mut *w.tx)
                .await?;
        let access_id = match existing {
            Some(a) => {
                sqlx::query(
                        "UPDATE share_access SET state = CASE WHEN state = 'deleting' THEN 'queued' ELSE state END, updated_at = $1 WHERE id = $2",
                    )
                    .bind(t.clone())
                    .bind(a.clone())
                    .execute(&mut *w.tx)
                    .await?;
                a
            }
            None => {
                let rule = NewAccess {
                    share_id: s.id,
                    kind,
                    access_to: to.clone(),
                    access_level: x.access,
                    ceph_id,
                    node_id: Some(node),
                };
                insert_access_in(w, &s, &rule, &t).await?.to_string()
            }
        };
        sqlx::query(
            "INSERT INTO node_shares (node_id, share_id, mount_point, access, access_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(node.to_string())
        .bind(s.id.to_string())
        .bind(x.mount_point.clone())
        .bind(x.access.as_str())
        .bind(access_id)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique_at(e, format!("/shares/{i}/mount_point"), || format!("mount point {} is used twice", x.mount_point))
        })?;
    }
    Ok(())
}
