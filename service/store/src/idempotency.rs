//! Idempotency keys: a create retried with the same key gets the first
//! answer again instead of a second object.
//!
//! A key is claimed (`idempotency_claims`) before its create runs and
//! answered (`idempotency_keys`) after. A claim left unanswered — tundrad
//! stopped after the create committed — is resolved by the create's own
//! `created` event, written in the create's transaction with the claiming
//! request's id and actor: the retry is told which object it made.

use sqlx::any::AnyRow;

use crate::{Actor, Backend, Result, Store, get, now};

/// The answer a create gave, kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub route: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// What a request holding an Idempotency-Key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: run the create, then
    /// `remember_response` (or `release_claim` if it fails).
    Run,
    /// The key's first answer: replay it.
    Answered(StoredResponse),
    /// The key's first request created this object (its ID) and was never
    /// answered: answer with the object.
    Created(String),
    /// A request with this key is still being handled (on a replica that
    /// runs): wait, and claim again.
    InProgress,
    /// The key was used for another request (route or body).
    OtherRequest,
}

impl Store {
    /// Claim `key` for a create of `kind` (its events' object type) by the
    /// request of `actor` (whose `request_id` its create's event carries).
    pub async fn claim_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        route: &str,
        request_hash: &str,
        kind: &str,
        actor: &Actor,
    ) -> Result<Claim> {
        let request = actor.request_id.clone().unwrap_or_default();
        let replica = self.replica.read().expect("replica lock").as_ref().map(|(r, _)| r.clone()).unwrap_or_default();
        let mut w = self.write().await?;
        let answered = sqlx::query("SELECT * FROM idempotency_keys WHERE principal = $1 AND key = $2")
            .bind(principal.to_string())
            .bind(key.to_string())
            .fetch_optional(&mut *w.tx)
            .await?;
        if let Some(r) = answered {
            let prev = stored(&r)?;
            w.commit().await?;
            return Ok(if prev.route == route && prev.request_hash == request_hash {
                Claim::Answered(prev)
            } else {
                Claim::OtherRequest
            });
        }
        // Insert first: of two requests racing with one key, one inserts
        // and the other (on PostgreSQL, once the first commits) reads its row.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_claims (principal, key, route, request_hash, actor, request_id, replica, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (principal, key) DO NOTHING",
        )
        .bind(principal.to_string())
        .bind(key.to_string())
        .bind(route.to_string())
        .bind(request_hash.to_string())
        .bind(actor.name.clone())
        .bind(request.clone())
        .bind(replica.clone())
        .bind(now())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            w.commit().await?;
            return Ok(Claim::Run);
        }
        let c = sqlx::query("SELECT * FROM idempotency_claims WHERE principal = $1 AND key = $2")
            .bind(principal.to_string())
            .bind(key.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let claim = if get::<String>(&c, "route")? != route || get::<String>(&c, "request_hash")? != request_hash {
            Claim::OtherRequest
        } else if let Some(id) = created_by(&mut w, &c, kind).await? {
            Claim::Created(id)
        } else if runs(&mut w, &get::<String>(&c, "replica")?, &replica, self.backend == Backend::Sqlite).await? {
            Claim::InProgress
        } else {
            // Its replica is gone and it created nothing: the key is this
            // request's.
            sqlx::query(
                "UPDATE idempotency_claims SET actor = $3, request_id = $4, replica = $5, created_at = $6 \
                 WHERE principal = $1 AND key = $2",
            )
            .bind(principal.to_string())
            .bind(key.to_string())
            .bind(actor.name.clone())
            .bind(request)
            .bind(replica)
            .bind(now())
            .execute(&mut *w.tx)
            .await?;
            Claim::Run
        };
        w.commit().await?;
        Ok(claim)
    }

    /// Keep an answer, and end the key's claim. A key answered already
    /// keeps its first answer.
    pub async fn remember_response(&self, principal: &str, key: &str, r: &StoredResponse) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (principal, key, route, request_hash, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (principal, key) DO NOTHING",
        )
        .bind(principal.to_string())
        .bind(key.to_string())
        .bind(r.route.clone())
        .bind(r.request_hash.clone())
        .bind(i64::from(r.status))
        .bind(r.body.clone())
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        sqlx::query("DELETE FROM idempotency_claims WHERE principal = $1 AND key = $2")
            .bind(principal.to_string())
            .bind(key.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// Give up `actor`'s request's claim on `key`, so a retry runs the create
    /// again: its create failed, or the request was dropped. A claim whose
    /// request created its object stays (a retry answers with the object),
    /// as does one another request has taken over.
    pub async fn release_claim(&self, principal: &str, key: &str, kind: &str, actor: &Actor) -> Result<()> {
        let mut w = self.write().await?;
        let c = sqlx::query("SELECT * FROM idempotency_claims WHERE principal = $1 AND key = $2 AND request_id = $3")
            .bind(principal.to_string())
            .bind(key.to_string())
            .bind(actor.request_id.clone().unwrap_or_default())
            .fetch_optional(&mut *w.tx)
            .await?;
        if let Some(c) = c
            && created_by(&mut w, &c, kind).await?.is_none()
        {
            sqlx::query("DELETE FROM idempotency_claims WHERE principal = $1 AND key = $2 AND request_id = $3")
                .bind(principal.to_string())
                .bind(key.to_string())
                .bind(actor.request_id.clone().unwrap_or_default())
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await
    }

    /// Forget keys (and claims) older than `before` (RFC 3339); returns how
    /// many keys.
    pub async fn expire_idempotency_keys(&self, before: &str) -> Result<u64> {
        let mut w = self.write().await?;
        let n = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before.to_string())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_claims WHERE created_at < $1")
            .bind(before.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(n.rows_affected())
    }
}

/// The object of `kind` claim `c`'s request created, if its create committed.
async fn created_by(w: &mut crate::Write, c: &AnyRow, kind: &str) -> Result<Option<String>> {
    let request: String = get(c, "request_id")?;
    if request.is_empty() {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(
        "SELECT object_id FROM events WHERE request_id = $1 AND actor = $2 AND action = 'created' \
         AND object_type = $3 AND at >= $4 ORDER BY at LIMIT 1",
    )
    .bind(request)
    .bind(get::<String>(c, "actor")?)
    .bind(kind.to_string())
    .bind(get::<String>(c, "created_at")?)
    .fetch_optional(&mut *w.tx)
    .await?)
}

/// Whether `holder` (the replica a claim was made on; new at every start)
/// still runs: it is this one, or (several replicas, on PostgreSQL) it
/// holds a lease that has not lapsed: every running replica renews its own
/// by heartbeat ([`Store::heartbeat`]), whatever else it holds. A
/// replica killed loses its leases when they lapse. SQLite has one
/// replica: any other is an earlier start, gone.
async fn runs(w: &mut crate::Write, holder: &str, me: &str, single: bool) -> Result<bool> {
    if holder.is_empty() {
        return Ok(false);
    }
    if holder == me {
        return Ok(true);
    }
    if single {
        return Ok(false);
    }
    let at = now();
    let leases: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM leases WHERE owner = $1 AND expires_at > $2) \
              + (SELECT COUNT(*) FROM operations WHERE owner = $1 AND lease_expires_at > $2)",
    )
    .bind(holder.to_string())
    .bind(at)
    .fetch_one(&mut *w.tx)
    .await?;
    Ok(leases > 0)
}

fn stored(r: &AnyRow) -> Result<StoredResponse> {
    Ok(StoredResponse {
        route: get(r, "route")?,
        request_hash: get(r, "request_hash")?,
        status: u16::try_from(get::<i64>(r, "status")?).unwrap_or(500),
        body: get(r, "body")?,
    })
}
