//! Encrypted secrets. The store sees only ciphertext, a nonce and the ID of
//! the key that sealed it; sealing and opening happen in the service, which
//! alone holds the key file.

use sqlx::any::AnyRow;
use tundra_api::SecretId;

use crate::{Result, Store, Write, get, now, parse_id};

/// A sealed secret as stored (base64 text fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub id: SecretId,
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

fn secret(row: &AnyRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        id: parse_id("secrets", &get::<String>(row, "id")?)?,
        key_id: get(row, "key_id")?,
        nonce: get(row, "nonce")?,
        ciphertext: get(row, "ciphertext")?,
    })
}

/// Store (or replace, in place: rows refer to it) a sealed secret inside
/// the caller's transaction.
pub(crate) async fn put_secret_in(w: &mut Write, s: &SecretRecord) -> Result<()> {
    let t = now();
    let replaced =
        sqlx::query("UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3, updated_at = $4 WHERE id = $5")
            .bind(s.key_id.clone())
            .bind(s.nonce.clone())
            .bind(s.ciphertext.clone())
            .bind(t.clone())
            .bind(s.id.to_string())
            .execute(&mut *w.tx)
            .await?;
    if replaced.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO secrets (id, key_id, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(s.id.to_string())
        .bind(s.key_id.clone())
        .bind(s.nonce.clone())
        .bind(s.ciphertext.clone())
        .bind(t)
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn put_secret(&self, s: &SecretRecord) -> Result<()> {
        let mut w = self.write().await?;
        put_secret_in(&mut w, s).await?;
        w.commit().await
    }

    pub async fn secret(&self, id: SecretId) -> Result<SecretRecord> {
        self.fetch("secrets", "secret", id.to_string(), secret).await
    }

    /// Secrets not sealed with `key_id`: what a key rotation must re-seal.
    pub async fn secrets_not_sealed_with(&self, key_id: &str) -> Result<Vec<SecretRecord>> {
        let rows = sqlx::query("SELECT * FROM secrets WHERE key_id <> $1 ORDER BY id")
            .bind(key_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(secret).collect()
    }

    pub async fn delete_secret(&self, id: SecretId) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM secrets WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        w.commit().await
    }
}
