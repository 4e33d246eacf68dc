//! Per-project quotas: nodes, networks, addresses (of the project's ports,
//! on its own and on shared networks) and image bytes. A project's own
//! limits override the site's defaults (set once from tundrad's config);
//! what it uses is counted from its objects inside the very transaction that
//! would add more, so racing creates cannot both slip under a limit.

use serde_json::json;
use tundra_api::ProjectId;
use tundra_api::identity::{Quota, QuotaItem, QuotaSet};

use crate::{Actor, QuotaLimits, Result, Store, StoreError, Write, event, get, now};

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    Nodes,
    Networks,
    Addresses,
    ImageBytes,
}

impl QuotaKind {
    const ALL: [QuotaKind; 4] = [QuotaKind::Nodes, QuotaKind::Networks, QuotaKind::Addresses, QuotaKind::ImageBytes];

    fn column(self) -> &'static str {
        match self {
            QuotaKind::Nodes => "nodes",
            QuotaKind::Networks => "networks",
            QuotaKind::Addresses => "addresses",
            QuotaKind::ImageBytes => "image_bytes",
        }
    }

    /// How much of it a project uses now.
    fn usage_sql(self) -> &'static str {
        match self {
            QuotaKind::Nodes => "SELECT COUNT(*) FROM nodes WHERE project_id = $1",
            QuotaKind::Networks => "SELECT COUNT(*) FROM networks WHERE project_id = $1",
            QuotaKind::Addresses => {
                "SELECT COUNT(*) FROM port_ips i JOIN ports p ON p.id = i.port_id WHERE p.project_id = $1"
            }
            QuotaKind::ImageBytes => {
                "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM images WHERE project_id = $1"
            }
        }
    }

    fn what(self) -> &'static str {
        match self {
            QuotaKind::Nodes => "nodes",
            QuotaKind::Networks => "networks",
            QuotaKind::Addresses => "addresses",
            QuotaKind::ImageBytes => "bytes of images",
        }
    }
}

/// A project's limit of `k` out of `limits`.
fn limit_of(limits: &QuotaLimits, k: QuotaKind) -> u64 {
    match k {
        QuotaKind::Nodes => limits.nodes,
        QuotaKind::Networks => limits.networks,
        QuotaKind::Addresses => limits.addresses,
        QuotaKind::ImageBytes => limits.image_bytes,
    }
}

fn own(set: &QuotaSet, k: QuotaKind) -> Option<u64> {
    match k {
        QuotaKind::Nodes => set.nodes,
        QuotaKind::Networks => set.networks,
        QuotaKind::Addresses => set.addresses,
        QuotaKind::ImageBytes => set.image_bytes,
    }
}

async fn overrides(tx: &mut sqlx::AnyConnection, project: ProjectId) -> Result<QuotaSet> {
    let row = sqlx::query("SELECT * FROM project_quotas WHERE project_id = $1")
        .bind(project.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(QuotaSet::default()) };
    let col = |c: &'static str| -> Result<Option<u64>> { Ok(get::<Option<i64>>(&row, c)?.map(|v| v.max(0) as u64)) };
    Ok(QuotaSet {
        nodes: col("nodes")?,
        networks: col("networks")?,
        addresses: col("addresses")?,
        image_bytes: col("image_bytes")?,
    })
}

async fn usage(tx: &mut sqlx::AnyConnection, project: ProjectId, k: QuotaKind) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(k.usage_sql()).bind(project.to_string()).fetch_one(&mut *tx).await?;
    Ok(n.max(0) as u64)
}

/// Inside a write: would `adding` more of `kind` take `project` over its
/// limit? The refusal says the limit, the use and who can raise it.
pub(crate) async fn check(w: &mut Write, project: ProjectId, kind: QuotaKind, adding: u64) -> Result<()> {
    // Adds to one project take turns (PostgreSQL: its row locked until the
    // adding transaction ends; SQLite serialises writers anyway), so two
    // cannot both count the same use and slip under the limit together.
    // NO KEY UPDATE, not UPDATE: rows already inserted in this transaction
    // hold KEY SHARE on the project through their foreign key, and UPDATE
    // would wait on the other adders' KEY SHARE while they wait on ours.
    if w.lock_rows {
        sqlx::query("SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE")
            .bind(project.to_string())
            .fetch_optional(&mut *w.tx)
            .await?;
    }
    let default = limit_of(&w.quota_defaults.read().expect("quota defaults lock"), kind);
    let limit = own(&overrides(&mut w.tx, project).await?, kind).unwrap_or(default);
    if limit == u64::MAX {
        return Ok(());
    }
    let used = usage(&mut w.tx, project, kind).await?;
    if used.saturating_add(adding) > limit {
        return Err(StoreError::Quota(format!(
            "quota exceeded: the project uses {used} of its {limit} {what}, and this needs {adding} more; free some, \
             or ask a site admin to raise it (PUT /v1/projects/{project}/quota)",
            what = kind.what()
        )));
    }
    Ok(())
}

impl Store {
    /// The site's default limits (tundrad sets them from its config at start).
    pub fn set_quota_defaults(&self, limits: QuotaLimits) {
        *self.quota_defaults.write().expect("quota defaults lock") = limits;
    }

    /// A project's quotas: limits (its own, or the site's) and use.
    pub async fn project_quota(&self, project: ProjectId) -> Result<Quota> {
        let mut c = self.pool.acquire().await?;
        let set = overrides(&mut c, project).await?;
        let defaults = *self.quota_defaults.read().expect("quota defaults lock");
        let mut items = Vec::new();
        for k in QuotaKind::ALL {
            let own = own(&set, k);
            items.push(QuotaItem {
                limit: own.unwrap_or(limit_of(&defaults, k)),
                used: usage(&mut c, project, k).await?,
                default: own.is_none(),
            });
        }
        Ok(Quota {
            project_id: project,
            nodes: items[0],
            networks: items[1],
            addresses: items[2],
            image_bytes: items[3],
        })
    }

    /// Would `adding` more of `kind` take `project` over its limit? A read
    /// for an early, clear answer; the write that adds checks again in its
    /// own transaction.
    pub async fn check_quota(&self, project: ProjectId, kind: QuotaKind, adding: u64) -> Result<()> {
        let mut w = self.write().await?;
        check(&mut w, project, kind, adding).await
    }

    /// Set a project's own limits (`None`: the site's default).
    pub async fn set_project_quota(&self, actor: &Actor, project: ProjectId, set: &QuotaSet) -> Result<Quota> {
        let mut w = self.write().await?;
        let big = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        sqlx::query(
            "INSERT INTO project_quotas (project_id, nodes, networks, addresses, image_bytes, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id) DO UPDATE SET nodes = excluded.nodes, \
             networks = excluded.networks, addresses = excluded.addresses, image_bytes = excluded.image_bytes, \
             updated_at = excluded.updated_at",
        )
        .bind(project.to_string())
        .bind(big(set.nodes))
        .bind(big(set.networks))
        .bind(big(set.addresses))
        .bind(big(set.image_bytes))
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        let detail: serde_json::Map<String, serde_json::Value> =
            QuotaKind::ALL.iter().map(|k| (k.column().to_string(), json!(own(set, *k)))).collect();
        event(&mut w, actor, Some(project), "project", &project.to_string(), "quota_set", detail.into()).await?;
        w.commit().await?;
        self.project_quota(project).await
    }
}
