//! Discovery sessions: an unknown MAC that network-booted while discovery is
//! on gets a per-boot token (hash kept) for one job — reporting its hardware,
//! once. What tundrad enrolled from the report is remembered, so a report
//! that arrives again answers with the same machine.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::MachineId;

use crate::{Actor, Result, Store, event, get, now, parse_id};

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySession {
    pub mac: String,
    pub token_expires_at: String,
    pub report: Option<serde_json::Value>,
    /// The machine enrolled from the report.
    pub machine_id: Option<MachineId>,
    /// The address that fetched the script (the agent's, from then on).
    pub agent_address: Option<String>,
}

fn session(row: &AnyRow) -> Result<DiscoverySession> {
    let report: Option<String> = get(row, "report")?;
    Ok(DiscoverySession {
        mac: get(row, "mac")?,
        token_expires_at: get(row, "token_expires_at")?,
        report: report.and_then(|r| serde_json::from_str(&r).ok()),
        machine_id: get::<Option<String>>(row, "machine_id")?
            .map(|m| parse_id("discovery_sessions", &m))
            .transpose()?,
        agent_address: get(row, "agent_address")?,
    })
}

impl Store {
    /// An unknown MAC booted from `address`: a fresh token bound to it (the
    /// previous boot's dies) — unless the last one was issued after
    /// `not_since` (a timestamp): then nothing is written and `false` says so
    /// (a machine boots far less often; this bounds what a flood of script
    /// requests can write).
    pub async fn issue_discovery_token(
        &self,
        mac: &str,
        token_hash: &str,
        expires_at: &str,
        address: &str,
        not_since: &str,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let recent: Option<String> =
            sqlx::query_scalar("SELECT created_at FROM discovery_sessions WHERE mac = $1 AND created_at > $2")
                .bind(mac.to_string())
                .bind(not_since.to_string())
                .fetch_optional(&mut *w.tx)
                .await?;
        if recent.is_some() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM discovery_sessions WHERE mac = $1").bind(mac.to_string()).execute(&mut *w.tx).await?;
        sqlx::query(
            "INSERT INTO discovery_sessions (mac, token_hash, token_expires_at, agent_address, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(mac.to_string())
        .bind(token_hash.to_string())
        .bind(expires_at.to_string())
        .bind(address.to_string())
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        event(&mut w, &Actor::service(), None, "discovery", mac, "booting", json!({"mac": mac})).await?;
        w.commit().await?;
        Ok(true)
    }

    /// As `Store::bind_agent_address`, for a discovery session.
    pub async fn bind_discovery_address(&self, mac: &str, address: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let n =
            sqlx::query("UPDATE discovery_sessions SET agent_address = $1 WHERE mac = $2 AND agent_address IS NULL")
                .bind(address.to_string())
                .bind(mac.to_string())
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        w.commit().await?;
        Ok(n > 0)
    }

    pub async fn discovery_by_token(&self, token_hash: &str) -> Result<Option<DiscoverySession>> {
        let row = sqlx::query("SELECT * FROM discovery_sessions WHERE token_hash = $1")
            .bind(token_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// Record what was enrolled from the report (once; false if it was before).
    pub async fn discovery_enrolled(&self, mac: &str, report: &serde_json::Value, machine: MachineId) -> Result<bool> {
        let mut w = self.write().await?;
        let n = sqlx::query(
            "UPDATE discovery_sessions SET report = $1, machine_id = $2 WHERE mac = $3 AND machine_id IS NULL",
        )
        .bind(report.to_string())
        .bind(machine.to_string())
        .bind(mac.to_string())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if n > 0 {
            event(&mut w, &Actor::service(), None, "discovery", mac, "enrolled", json!({"machine_id": machine}))
                .await?;
        }
        w.commit().await?;
        Ok(n > 0)
    }
}
