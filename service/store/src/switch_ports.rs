//! The drift record: every switch port tundrad manages, with the segment it
//! should be in (`desired`), what a read-back found (`actual`) and where it
//! stands (`pending` until programmed, `in_sync`, `drifted`, `failed`). A
//! programming outcome lands only on the wish it was for; a read older than
//! the last programming records nothing.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::SwitchId;
use tundra_api::fabric::SwitchPortState;

use crate::{Actor, Result, Store, StoreError, event, get, id_col, now, opt_u32_col, u32_col};

/// A switch port's record as the fabric worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPortRecord {
    pub switch_id: SwitchId,
    pub port: String,
    pub desired: u32,
    pub actual: Option<u32>,
    pub state: SwitchPortState,
    pub message: Option<String>,
    pub checked_at: Option<String>,
    pub changed_at: String,
    /// Programming failures in a row (0 after a success).
    pub failures: i64,
}

fn switch_port(row: &AnyRow) -> Result<SwitchPortRecord> {
    let state: String = get(row, "state")?;
    Ok(SwitchPortRecord {
        switch_id: id_col("switch_ports", row, "switch_id")?,
        port: get(row, "port")?,
        desired: u32_col(row, "desired")?,
        actual: opt_u32_col(row, "actual")?,
        state: SwitchPortState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { table: "switch_ports", what: format!("state {state:?}") })?,
        message: get(row, "message")?,
        checked_at: get(row, "checked_at")?,
        changed_at: get(row, "changed_at")?,
        failures: get(row, "failures")?,
    })
}

impl Store {
    pub async fn switch_ports(&self) -> Result<Vec<SwitchPortRecord>> {
        let rows = sqlx::query("SELECT * FROM switch_ports ORDER BY switch_id, port").fetch_all(&self.pool).await?;
        rows.iter().map(switch_port).collect()
    }

    /// What tundrad wants `port` of `switch` in: a new wish (or a changed
    /// one) is `pending` until programmed; an unchanged one is left alone.
    /// Returns whether it changed.
    pub async fn want_switch_port(&self, switch: SwitchId, port: &str, desired: u32) -> Result<bool> {
        let t = now();
        let r = sqlx::query(
            "UPDATE switch_ports SET desired = $1, state = 'pending', message = NULL, changed_at = $2, failures = 0 \
             WHERE switch_id = $3 AND port = $4 AND desired <> $1",
        )
        .bind(desired as i64)
        .bind(t.clone())
        .bind(switch.to_string())
        .bind(port.to_string())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            return Ok(true);
        }
        let r = sqlx::query(
            "INSERT INTO switch_ports (switch_id, port, desired, actual, state, message, checked_at, changed_at) \
             SELECT $1, $2, $3, NULL, 'pending', NULL, NULL, $4 WHERE NOT EXISTS (SELECT 1 FROM switch_ports WHERE switch_id = $1 AND port = $2)",
        )
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Program these switch ports again (a repair): drifted, failed or in sync alike.
    pub async fn resync_switch_ports(&self, actor: &Actor, ports: &[(SwitchId, String)]) -> Result<u32> {
        let mut w = self.write().await?;
        let mut n = 0;
        for (s, p) in ports {
            let r = sqlx::query(
                "UPDATE switch_ports SET state = 'pending', message = NULL, changed_at = $1, failures = 0 WHERE switch_id = $2 AND port = $3",
            )
            .bind(now())
            .bind(s.to_string())
            .bind(p.clone())
            .execute(&mut *w.tx)
            .await?;
            if r.rows_affected() > 0 {
                n += 1;
                event(&mut w, actor, None, "switch", &s.to_string(), "port_resync", json!({"port": p})).await?;
            }
        }
        w.commit().await?;
        Ok(n)
    }

    /// The outcome of programming: applied only if the wish is still `desired`.
    pub async fn switch_port_programmed(
        &self,
        switch: SwitchId,
        port: &str,
        desired: u32,
        outcome: std::result::Result<Option<u32>, String>,
    ) -> Result<bool> {
        let (state, actual, message) = match &outcome {
            Ok(a) => (SwitchPortState::InSync, a.map(|a| a as i64), None),
            Err(m) => (SwitchPortState::Failed, None, Some(m.clone())),
        };
        let r = sqlx::query(
            "UPDATE switch_ports SET state = $1, message = $2, checked_at = $3, actual = CASE WHEN $4 = 1 THEN $5 ELSE actual END, \
             failures = CASE WHEN $4 = 1 THEN 0 ELSE failures + 1 END \
             WHERE switch_id = $6 AND port = $7 AND desired = $8 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(message)
        .bind(now())
        .bind(outcome.is_ok() as i64)
        .bind(actual)
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Try a failed port again (its pause is over): `pending` once more,
    /// keeping its failure count and message. False if it changed meanwhile.
    pub async fn retry_switch_port(&self, switch: SwitchId, port: &str, desired: u32) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE switch_ports SET state = 'pending', changed_at = $1 \
             WHERE switch_id = $2 AND port = $3 AND desired = $4 AND state = 'failed'",
        )
        .bind(now())
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A programming attempt that will be retried: the port stays `pending`
    /// with why it is not done yet.
    pub async fn switch_port_retrying(&self, switch: SwitchId, port: &str, desired: u32, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE switch_ports SET message = $1 WHERE switch_id = $2 AND port = $3 AND desired = $4 AND state = 'pending'",
        )
        .bind(why.to_string())
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What a read of the switch that began at `read_started` found:
    /// in-sync ports that differ become `drifted`, drifted ports put back by
    /// hand become `in_sync`. A port programmed (or read) after the read
    /// began is left alone: the read is older than what the record says.
    pub async fn switch_port_seen(
        &self,
        switch: SwitchId,
        port: &str,
        actual: Option<u32>,
        read_started: &str,
    ) -> Result<Option<SwitchPortState>> {
        let mut w = self.write().await?;
        let Some(row) = sqlx::query("SELECT * FROM switch_ports WHERE switch_id = $1 AND port = $2")
            .bind(switch.to_string())
            .bind(port.to_string())
            .fetch_optional(&mut *w.tx)
            .await?
        else {
            return Ok(None);
        };
        let cur = switch_port(&row)?;
        if cur.checked_at.as_deref().is_some_and(|c| c > read_started) {
            return Ok(Some(cur.state));
        }
        let state = match cur.state {
            SwitchPortState::InSync | SwitchPortState::Drifted if actual == Some(cur.desired) => {
                SwitchPortState::InSync
            }
            SwitchPortState::InSync | SwitchPortState::Drifted => SwitchPortState::Drifted,
            other => other, // pending and failed wait for programming or a repair
        };
        sqlx::query(
            "UPDATE switch_ports SET actual = $1, state = $2, checked_at = $3 WHERE switch_id = $4 AND port = $5",
        )
        .bind(actual.map(|a| a as i64))
        .bind(state.as_str())
        .bind(now())
        .bind(switch.to_string())
        .bind(port.to_string())
        .execute(&mut *w.tx)
        .await?;
        if state != cur.state {
            event(
                &mut w,
                &Actor::service(),
                None,
                "switch",
                &switch.to_string(),
                if state == SwitchPortState::Drifted { "port_drifted" } else { "port_back_in_sync" },
                json!({"port": port, "desired": cur.desired, "actual": actual}),
            )
            .await?;
        }
        w.commit().await?;
        Ok(Some(state))
    }

    /// Forget switch ports no machine interface is cabled to any more.
    pub async fn forget_switch_port(&self, switch: SwitchId, port: &str) -> Result<()> {
        sqlx::query("DELETE FROM switch_ports WHERE switch_id = $1 AND port = $2")
            .bind(switch.to_string())
            .bind(port.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
