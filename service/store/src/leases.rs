//! Leases: which replica runs what. An unfinished operation is run by its
//! `owner` until `lease_expires_at`; a background loop by the owner of its
//! row in `leases`. The owner renews its leases by heartbeat; one that
//! stops (killed, cut off from the database) loses them when they lapse,
//! and another replica claims them. Every claim is one compare-and-set
//! statement, so two replicas never both win.

use std::time::Duration;

use tundra_api::OperationId;

use crate::sql::Sql;
use crate::{Replica, Result, Store, now, parse_id, time_after, time_before};

/// The owner and lease expiry a new operation is written with.
pub(crate) fn new_operation_lease(replica: &Replica) -> (Option<String>, Option<String>) {
    match &*replica.read().expect("replica lock") {
        Some((owner, ttl)) => (Some(owner.clone()), Some(time_after(*ttl))),
        None => (None, None),
    }
}

/// The prefix of a replica's own lease's name (the rest is the replica's):
/// renewed by its heartbeat whatever else it holds, so that a replica
/// running no loop and no operation is still known to run.
const REPLICA: &str = "replica/";

/// How long a killed replica's own lease is kept after it lapsed.
const REPLICA_FORGOTTEN: Duration = Duration::from_secs(24 * 3600);

/// The channel replicas signal each other on (PostgreSQL's LISTEN/NOTIFY).
const SIGNALS: &str = "tundra_replicas";

/// What other replicas signal: `Store::signals`.
pub struct Signals(sqlx::postgres::PgListener);

impl Signals {
    /// The next signal's payload. A dropped connection is opened again
    /// (signals sent meanwhile are lost: they are hints, never the truth).
    pub async fn recv(&mut self) -> Result<String> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

/// A loop's lease as stored (for `/metrics` and the replica tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub name: String,
    pub owner: String,
    pub expires_at: String,
    pub acquired_at: String,
}

impl From<(String, String, String, String)> for LeaseHolder {
    fn from((name, owner, expires_at, acquired_at): (String, String, String, String)) -> LeaseHolder {
        LeaseHolder { name, owner, expires_at, acquired_at }
    }
}

impl Store {
    /// Make this store's new operations replica `owner`'s, held for `ttl`.
    pub fn set_replica(&self, owner: &str, ttl: Duration) {
        *self.replica.write().expect("replica lock") = Some((owner.to_string(), ttl));
    }

    /// Claim operation `id` for `owner` for `ttl`: only while it is
    /// unfinished and unowned, already `owner`'s, or its lease lapsed.
    /// Returns whether `owner` holds it now.
    pub async fn claim_operation(&self, id: OperationId, owner: &str, ttl: Duration) -> Result<bool> {
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE operations SET owner = $1, lease_expires_at = $2 \
             WHERE id = $3 AND state IN ('pending', 'running') \
               AND (owner IS NULL OR owner = $1 OR lease_expires_at IS NULL OR lease_expires_at < $4)",
        )
        .bind(owner.to_string())
        .bind(time_after(ttl))
        .bind(id.to_string())
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replica `owner`'s heartbeat: renew its own lease (it runs: see
    /// [`Store::live_replicas`]) and its leases on `running` (the operations
    /// whose workers run on it now); returns those it still holds (one it no
    /// longer does was ended from outside or claimed by another replica
    /// after its lease lapsed). An operation `owner` holds but runs no
    /// worker for is not renewed: its lease lapses and it is claimed again.
    pub async fn heartbeat(&self, owner: &str, ttl: Duration, running: &[OperationId]) -> Result<Vec<OperationId>> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(format!("{REPLICA}{owner}"))
        .bind(owner.to_string())
        .bind(time_after(ttl))
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        // Killed replicas' own leases, long lapsed (each start is a new replica).
        sqlx::query("DELETE FROM leases WHERE name LIKE $1 AND expires_at < $2")
            .bind(format!("{REPLICA}%"))
            .bind(time_before(REPLICA_FORGOTTEN))
            .execute(&mut *w.tx)
            .await?;
        if running.is_empty() {
            w.commit().await?;
            return Ok(Vec::new());
        }
        let ids = |q: &mut Sql| {
            for (i, id) in running.iter().enumerate() {
                q.push(if i == 0 { "" } else { ", " }).bind(id.to_string());
            }
        };
        let mut q = Sql::new("UPDATE operations SET lease_expires_at = ");
        q.bind(time_after(ttl))
            .push(" WHERE owner = ")
            .bind(owner)
            .push(" AND state IN ('pending', 'running') AND id IN (");
        ids(&mut q);
        q.push(")");
        q.query().execute(&mut *w.tx).await?;
        let mut q = Sql::new("SELECT id FROM operations WHERE owner = ");
        q.bind(owner).push(" AND state IN ('pending', 'running') AND id IN (");
        ids(&mut q);
        q.push(")");
        let rows = q.query().fetch_all(&mut *w.tx).await?;
        w.commit().await?;
        rows.iter().map(|r| parse_id("operations", &crate::get::<String>(r, "id")?)).collect()
    }

    /// Unfinished operations nobody holds: never claimed, or their lease
    /// lapsed (oldest first).
    pub async fn orphaned_operations(&self) -> Result<Vec<OperationId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE state IN ('pending', 'running') \
               AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY id",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|i| parse_id("operations", i)).collect()
    }

    /// Take or keep the lease `name` for `owner` for `ttl`: only when it is
    /// free, already `owner`'s, or lapsed. Returns whether `owner` holds it.
    pub async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let mut w = self.write().await?;
        let t = now();
        let r = sqlx::query(
            "INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at, \
               acquired_at = CASE WHEN leases.owner = excluded.owner THEN leases.acquired_at ELSE excluded.acquired_at END \
             WHERE leases.owner = excluded.owner OR leases.expires_at < $4",
        )
        .bind(name.to_string())
        .bind(owner.to_string())
        .bind(time_after(ttl))
        .bind(t)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Give up everything `owner` holds, so other replicas take it over at
    /// once rather than when the leases lapse (a replica draining).
    pub async fn release_leases(&self, owner: &str) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM leases WHERE owner = $1").bind(owner.to_string()).execute(&mut *w.tx).await?;
        sqlx::query(
            "UPDATE operations SET owner = NULL, lease_expires_at = NULL \
             WHERE owner = $1 AND state IN ('pending', 'running')",
        )
        .bind(owner.to_string())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    /// Give up every replica's leases: only for a store one replica alone
    /// can open (SQLite, behind its lock file), whose previous process
    /// was killed holding them.
    pub async fn release_every_lease(&self) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM leases").execute(&mut *w.tx).await?;
        sqlx::query(
            "UPDATE operations SET owner = NULL, lease_expires_at = NULL WHERE state IN ('pending', 'running')",
        )
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    /// Listen for other replicas' signals (PostgreSQL); none on SQLite,
    /// where one replica runs alone.
    pub async fn signals(&self) -> Result<Option<Signals>> {
        let Some(url) = &self.pg_url else { return Ok(None) };
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(SIGNALS).await?;
        Ok(Some(Signals(listener)))
    }

    /// Signal every listening replica (PostgreSQL; nothing on SQLite).
    pub async fn signal(&self, payload: &str) -> Result<()> {
        if self.pg_url.is_some() {
            sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS sent")
                .bind(SIGNALS)
                .bind(payload.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Every loop's lease, by name.
    pub async fn lease_holders(&self) -> Result<Vec<LeaseHolder>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT name, owner, expires_at, acquired_at FROM leases WHERE name NOT LIKE $1 ORDER BY name",
        )
        .bind(format!("{REPLICA}%"))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(LeaseHolder::from).collect())
    }

    /// The replicas that run now: those whose heartbeat renewed their own
    /// lease within one lease, oldest first (`owner` names the replica,
    /// `acquired_at` is its first heartbeat).
    pub async fn live_replicas(&self) -> Result<Vec<LeaseHolder>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT name, owner, expires_at, acquired_at FROM leases \
             WHERE name LIKE $1 AND expires_at > $2 ORDER BY acquired_at, owner",
        )
        .bind(format!("{REPLICA}%"))
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(LeaseHolder::from).collect())
    }

    /// How many unfinished operations each replica holds now.
    pub async fn operations_by_owner(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT owner, COUNT(*) FROM operations WHERE state IN ('pending', 'running') \
               AND owner IS NOT NULL AND lease_expires_at > $1 GROUP BY owner ORDER BY owner",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?)
    }
}
