//! Agent sessions: the bond between an operation that boots a machine into
//! `tundra-agent` and the agent that comes up. The operation opens the
//! session with the command to run; fetching the iPXE script mints the
//! per-boot token (only its SHA-256 is kept); the agent's report is recorded
//! once, for the command it names. Every change is bound to the operation
//! that holds the machine, so a stale agent or operation cannot touch it.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::{MachineId, OperationId};

use crate::{Actor, Result, Store, StoreError, Write, event, get, now, parse_id};

/// A machine's agent session.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSession {
    pub machine_id: MachineId,
    pub operation_id: OperationId,
    /// The `tundra_api::agent::Command` to run, as JSON.
    pub command: serde_json::Value,
    pub token_expires_at: Option<String>,
    /// How many times the machine fetched its script (booted) in this session.
    pub boots: i64,
    /// tundrad PXE-booted the machine and no script was served for that boot yet.
    pub armed: bool,
    /// The address that fetched this boot's script (the agent's, from then on).
    pub agent_address: Option<String>,
    pub last_seen: Option<String>,
    pub progress: Option<String>,
    /// The agent's `tundra_api::agent::Report`, once it reported.
    pub report: Option<serde_json::Value>,
}

fn json(row: &AnyRow, col: &'static str) -> Result<Option<serde_json::Value>> {
    get::<Option<String>>(row, col)?
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt { table: "agent_sessions", what: format!("{col}: {e}") })
        })
        .transpose()
}

fn session(row: &AnyRow) -> Result<AgentSession> {
    Ok(AgentSession {
        machine_id: parse_id("agent_sessions", &get::<String>(row, "machine_id")?)?,
        operation_id: parse_id("agent_sessions", &get::<String>(row, "operation_id")?)?,
        command: json(row, "command")?.unwrap_or_default(),
        token_expires_at: get(row, "token_expires_at")?,
        boots: get(row, "boots")?,
        armed: get::<i64>(row, "armed")? != 0,
        agent_address: get(row, "agent_address")?,
        last_seen: get(row, "last_seen")?,
        progress: get(row, "progress")?,
        report: json(row, "report")?,
    })
}

/// The machine's session, inside a write transaction.
async fn session_in(w: &mut Write, machine: MachineId) -> Result<AgentSession> {
    let lock = if w.lock_rows { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT * FROM agent_sessions WHERE machine_id = $1{lock}"))
        .bind(machine.to_string())
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound { noun: "agent session", id: machine.to_string() })?;
    session(&row)
}

impl Store {
    /// Open (or replace) the machine's session for operation `op`, which must
    /// hold the machine.
    pub async fn open_agent_session(
        &self,
        machine: MachineId,
        op: OperationId,
        command: &serde_json::Value,
    ) -> Result<()> {
        let mut w = self.write().await?;
        let holder: Option<String> = sqlx::query_scalar("SELECT operation_id FROM machines WHERE id = $1")
            .bind(machine.to_string())
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or(StoreError::NotFound { noun: "machine", id: machine.to_string() })?;
        if holder != Some(op.to_string()) {
            return Err(StoreError::Conflict(format!("operation {op} no longer holds machine {machine}")));
        }
        sqlx::query("DELETE FROM agent_sessions WHERE machine_id = $1")
            .bind(machine.to_string())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "INSERT INTO agent_sessions (machine_id, operation_id, command, boots, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(machine.to_string())
        .bind(op.to_string())
        .bind(command.to_string())
        .bind(now())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    pub async fn agent_session(&self, machine: MachineId) -> Result<Option<AgentSession>> {
        let row = sqlx::query("SELECT * FROM agent_sessions WHERE machine_id = $1")
            .bind(machine.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// Operation `op` is PXE-booting the machine: the next boot script
    /// request may be served (once). False when `op` has no session here.
    pub async fn arm_agent_boot(&self, machine: MachineId, op: OperationId) -> Result<bool> {
        let mut w = self.write().await?;
        let n = sqlx::query("UPDATE agent_sessions SET armed = 1 WHERE machine_id = $1 AND operation_id = $2")
            .bind(machine.to_string())
            .bind(op.to_string())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(n > 0)
    }

    /// The machine fetched its boot script from `address`: if the session is
    /// armed, disarm it, store the new token's hash (the previous boot's
    /// token stops working), bind it to `address` and count the boot.
    /// `None`: no session, or this boot's script was served already.
    pub async fn issue_agent_token(
        &self,
        machine: MachineId,
        token_hash: &str,
        expires_at: &str,
        address: &str,
    ) -> Result<Option<AgentSession>> {
        let mut w = self.write().await?;
        let n = sqlx::query(
            "UPDATE agent_sessions SET token_hash = $1, token_expires_at = $2, agent_address = $3, armed = 0, \
             boots = boots + 1 WHERE machine_id = $4 AND armed = 1",
        )
        .bind(token_hash.to_string())
        .bind(expires_at.to_string())
        .bind(address.to_string())
        .bind(machine.to_string())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let s = session_in(&mut w, machine).await?;
        event(
            &mut w,
            &Actor::service(),
            None,
            "machine",
            &machine.to_string(),
            "agent_booting",
            json!({"operation_id": s.operation_id, "boot": s.boots, "address": address}),
        )
        .await?;
        w.commit().await?;
        Ok(Some(s))
    }

    /// A session whose token was issued before tokens were bound to an
    /// address (an upgrade mid-boot): bind it to its first caller. False
    /// when it is bound already.
    pub async fn bind_agent_address(&self, machine: MachineId, address: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let n =
            sqlx::query("UPDATE agent_sessions SET agent_address = $1 WHERE machine_id = $2 AND agent_address IS NULL")
                .bind(address.to_string())
                .bind(machine.to_string())
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        w.commit().await?;
        Ok(n > 0)
    }

    /// The session a token belongs to (expiry is the caller's check).
    pub async fn agent_by_token(&self, token_hash: &str) -> Result<Option<AgentSession>> {
        let row = sqlx::query("SELECT * FROM agent_sessions WHERE token_hash = $1")
            .bind(token_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// The agent is alive (and says how far it is).
    pub async fn agent_seen(&self, machine: MachineId, progress: Option<String>) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE agent_sessions SET last_seen = $1, progress = COALESCE($2, progress) WHERE machine_id = $3",
        )
        .bind(now())
        .bind(progress)
        .bind(machine.to_string())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    /// Record the agent's report for the session's command `command_id`.
    /// Returns false when a report was recorded before (a retry); a report
    /// for another command is a conflict.
    pub async fn agent_report(
        &self,
        machine: MachineId,
        command_id: &str,
        ok: bool,
        report: &serde_json::Value,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let s = session_in(&mut w, machine).await?;
        if s.command.get("id").and_then(|v| v.as_str()) != Some(command_id) {
            return Err(StoreError::Conflict(format!(
                "the report is for command {command_id:?}, but the agent was asked to run {:?}",
                s.command.get("id").and_then(|v| v.as_str()).unwrap_or("nothing")
            )));
        }
        if s.report.is_some() {
            return Ok(false);
        }
        sqlx::query("UPDATE agent_sessions SET report = $1, last_seen = $2 WHERE machine_id = $3")
            .bind(report.to_string())
            .bind(now())
            .bind(machine.to_string())
            .execute(&mut *w.tx)
            .await?;
        event(
            &mut w,
            &Actor::service(),
            None,
            "machine",
            &machine.to_string(),
            "agent_reported",
            json!({
                "operation_id": s.operation_id, "command": command_id, "ok": ok,
                // What image I/O cost (write_image), for operators and benchmarks.
                "bytes": report.pointer("/details/bytes"), "seconds": report.pointer("/details/seconds"),
            }),
        )
        .await?;
        w.commit().await?;
        Ok(true)
    }

    /// End the session of operation `op` (its token stops working).
    pub async fn close_agent_session(&self, machine: MachineId, op: OperationId) -> Result<()> {
        let mut w = self.write().await?;
        close_agent_session_in(&mut w, machine, op).await?;
        w.commit().await
    }
}

pub(crate) async fn close_agent_session_in(w: &mut Write, machine: MachineId, op: OperationId) -> Result<()> {
    sqlx::query("DELETE FROM agent_sessions WHERE machine_id = $1 AND operation_id = $2")
        .bind(machine.to_string())
        .bind(op.to_string())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}
