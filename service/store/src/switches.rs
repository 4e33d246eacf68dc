//! Switches tundrad programs: dialect, address, login (password or key
//! sealed by the service, never returned), pinned host key, session limits,
//! and what the last session said.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::fabric::Switch;
use tundra_api::{Page, PhysicalNetworkId, SecretId, SwitchId};

use crate::secrets::{SecretRecord, put_secret_in};
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, now, opt_id_col,
    u32_col, unique,
};

fn switch(row: &AnyRow) -> Result<Switch> {
    Ok(Switch {
        id: id_col("switches", row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        physical_network_id: id_col("switches", row, "physical_network_id")?,
        dialect: get(row, "dialect")?,
        address: get(row, "address")?,
        username: get(row, "username")?,
        has_password: get::<Option<String>>(row, "password_secret")?.is_some(),
        has_private_key: get::<Option<String>>(row, "key_secret")?.is_some(),
        host_key: get(row, "host_key")?,
        max_sessions: u32_col(row, "max_sessions")?,
        min_interval_ms: u32_col(row, "min_interval_ms")?,
        last_error: get(row, "last_error")?,
        last_read_at: get(row, "last_read_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const SWITCHES: Table<Switch> = Table::new("switches", "switch", switch, |x| x.id.to_string());

/// A validated switch; credentials already sealed.
#[derive(Debug)]
pub struct NewSwitch {
    pub name: String,
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    pub dialect: String,
    pub address: String,
    pub username: String,
    pub password: Option<SecretRecord>,
    pub private_key: Option<SecretRecord>,
    pub host_key: String,
    pub max_sessions: u32,
    pub min_interval_ms: u32,
}

#[derive(Debug, Default)]
pub struct SwitchChanges {
    pub description: Option<String>,
    pub address: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretRecord>,
    pub private_key: Option<SecretRecord>,
    pub host_key: Option<String>,
    pub max_sessions: Option<u32>,
    pub min_interval_ms: Option<u32>,
}

impl Store {
    pub async fn create_switch(&self, actor: &Actor, s: NewSwitch) -> Result<Switch> {
        let mut w = self.write().await?;
        let id = SwitchId::generate();
        for r in s.password.iter().chain(&s.private_key) {
            put_secret_in(&mut w, r).await?;
        }
        sqlx::query(
            "INSERT INTO switches (id, name, description, physical_network_id, dialect, address, username, password_secret, key_secret, host_key, \
             max_sessions, min_interval_ms, last_error, last_read_at, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, $13, $13, 1)",
        )
        .bind(id.to_string())
        .bind(s.name.clone())
        .bind(s.description)
        .bind(s.physical_network_id.to_string())
        .bind(s.dialect.clone())
        .bind(s.address.clone())
        .bind(s.username)
        .bind(s.password.as_ref().map(|r| r.id.to_string()))
        .bind(s.private_key.as_ref().map(|r| r.id.to_string()))
        .bind(s.host_key)
        .bind(s.max_sessions as i64)
        .bind(s.min_interval_ms as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a switch named {:?} exists; pick another name", s.name)))?;
        SWITCHES
            .commit(w, actor, None, id, "created", json!({"name": s.name, "dialect": s.dialect, "address": s.address}))
            .await
    }

    pub async fn switch(&self, id: SwitchId) -> Result<Switch> {
        SWITCHES.get(self, id).await
    }

    pub async fn list_switches(&self, p: &ListParams) -> Result<Page<Switch>> {
        SWITCHES.list(self, p, &Visibility::All).await
    }

    pub async fn all_switches(&self) -> Result<Vec<Switch>> {
        SWITCHES.all(self).await
    }

    /// The switch's sealed password and key (for tundrad's session only).
    pub async fn switch_secrets(&self, id: SwitchId) -> Result<(Option<SecretId>, Option<SecretId>)> {
        let row = sqlx::query("SELECT password_secret, key_secret FROM switches WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "switch", id: id.to_string() })?;
        Ok((opt_id_col("switches", &row, "password_secret")?, opt_id_col("switches", &row, "key_secret")?))
    }

    pub async fn update_switch(
        &self,
        actor: &Actor,
        id: SwitchId,
        c: SwitchChanges,
        if_match: Option<i64>,
    ) -> Result<Switch> {
        let mut w = self.write().await?;
        let cur = SWITCHES.get_in(&mut w, id).await?;
        check_revision("switch", &id.to_string(), cur.revision, if_match)?;
        for r in c.password.iter().chain(&c.private_key) {
            put_secret_in(&mut w, r).await?;
        }
        if let Some(r) = &c.password {
            sqlx::query("UPDATE switches SET password_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        if let Some(r) = &c.private_key {
            sqlx::query("UPDATE switches SET key_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query(
            "UPDATE switches SET description = $1, address = $2, username = $3, host_key = $4, max_sessions = $5, min_interval_ms = $6, \
             updated_at = $7, revision = revision + 1 WHERE id = $8",
        )
        .bind(c.description.clone().unwrap_or(cur.description))
        .bind(c.address.clone().unwrap_or(cur.address))
        .bind(c.username.clone().unwrap_or(cur.username))
        .bind(c.host_key.clone().unwrap_or(cur.host_key))
        .bind(c.max_sessions.unwrap_or(cur.max_sessions) as i64)
        .bind(c.min_interval_ms.unwrap_or(cur.min_interval_ms) as i64)
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        SWITCHES.commit(w, actor, None, id, "updated", json!({"address": c.address, "username": c.username, "host_key": c.host_key, "password_changed": c.password.is_some(),
                   "private_key_changed": c.private_key.is_some(), "max_sessions": c.max_sessions, "min_interval_ms": c.min_interval_ms})).await
    }

    pub async fn delete_switch(&self, actor: &Actor, id: SwitchId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = SWITCHES.get_in(&mut w, id).await?;
        let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ports WHERE switch_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if bound > 0 {
            return Err(StoreError::Conflict(format!(
                "switch {} carries {bound} bound port(s) of nodes; delete those nodes (or their networks) first",
                cur.name
            )));
        }
        let secrets = sqlx::query("SELECT password_secret, key_secret FROM switches WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let secrets: [Option<SecretId>; 2] =
            [opt_id_col("switches", &secrets, "password_secret")?, opt_id_col("switches", &secrets, "key_secret")?];
        sqlx::query("DELETE FROM switch_ports WHERE switch_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        sqlx::query("DELETE FROM switches WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        for s in secrets.into_iter().flatten() {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s.to_string()).execute(&mut *w.tx).await?;
        }
        event(&mut w, actor, None, "switch", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    /// After a session: its failure (or none) and, for a read, when.
    pub async fn switch_session(&self, id: SwitchId, error: Option<String>, read: bool) -> Result<()> {
        if read {
            sqlx::query("UPDATE switches SET last_error = $1, last_read_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query("UPDATE switches SET last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
