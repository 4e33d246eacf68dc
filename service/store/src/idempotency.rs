//! Idempotency keys: a create retried with the same key gets the first
//! answer again instead of a second object.

use crate::{Result, Store, get, now};

/// The answer a create gave, kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub route: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

impl Store {
    pub async fn idempotent_response(&self, principal: &str, key: &str) -> Result<Option<StoredResponse>> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE principal = $1 AND key = $2")
            .bind(principal.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredResponse {
                route: get(&r, "route")?,
                request_hash: get(&r, "request_hash")?,
                status: u16::try_from(get::<i64>(&r, "status")?).unwrap_or(500),
                body: get(&r, "body")?,
            })
        })
        .transpose()
    }

    /// Keep an answer; a concurrent first request with the same key keeps its own.
    pub async fn remember_response(&self, principal: &str, key: &str, r: &StoredResponse) -> Result<()> {
        let mut w = self.write().await?;
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE principal = $1 AND key = $2")
            .bind(principal.to_string())
            .bind(key.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if exists == 0 {
            sqlx::query(
                "INSERT INTO idempotency_keys (principal, key, route, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        }
        w.commit().await
    }

    /// Forget keys older than `before` (RFC 3339); returns how many.
    pub async fn expire_idempotency_keys(&self, before: &str) -> Result<u64> {
        let mut w = self.write().await?;
        let n = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(n.rows_affected())
    }
}
