//! Operations (long work with progress, resumable after a restart) and the
//! event log.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::ops::{Event, Operation, OperationState, Work};
use tundra_api::{OperationId, Page, ProjectId};

use crate::sql::{Sql, paginate};
use crate::{Actor, ListParams, Result, Store, StoreError, Visibility, Write, event, fetch_in, get, now, parse_id};

/// An operation to start: the project it belongs to (none: the site's) and
/// its work (kind, target and input all follow from it).
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub project_id: Option<ProjectId>,
    pub work: Work,
}

/// An operation as a worker sees it: the view plus its work.
#[derive(Debug, Clone)]
pub struct OperationInput {
    pub operation: Operation,
    pub work: Work,
}

fn operation(row: &AnyRow) -> Result<Operation> {
    let state: String = get(row, "state")?;
    Ok(Operation {
        id: parse_id("operations", &get::<String>(row, "id")?)?,
        project_id: get::<Option<String>>(row, "project_id")?.map(|p| parse_id("operations", &p)).transpose()?,
        kind: get(row, "kind")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        state: OperationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { table: "operations", what: format!("state {state:?}") })?,
        progress_done: get(row, "progress_done")?,
        progress_total: get(row, "progress_total")?,
        message: get(row, "message")?,
        error: get(row, "error")?,
        created_by: get(row, "created_by")?,
        attempts: get(row, "attempts")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn operation_input(row: &AnyRow) -> Result<OperationInput> {
    Ok(OperationInput { operation: operation(row)?, work: crate::json_col("operations", row, "input")? })
}

fn event_row(row: &AnyRow) -> Result<Event> {
    let detail: String = get(row, "detail")?;
    Ok(Event {
        id: parse_id("events", &get::<String>(row, "id")?)?,
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        project_id: get::<Option<String>>(row, "project_id")?.map(|p| parse_id("events", &p)).transpose()?,
        object_type: get(row, "object_type")?,
        object_id: get(row, "object_id")?,
        action: get(row, "action")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        request_id: get(row, "request_id")?,
    })
}

pub(crate) async fn insert_operation(w: &mut Write, actor: &Actor, op: NewOperation) -> Result<OperationId> {
    let id = OperationId::generate();
    let t = now();
    let (kind, (target_type, target_id)) = (op.work.kind(), op.work.target());
    let (owner, lease) = crate::leases::new_operation_lease(&w.replica);
    sqlx::query(
        "INSERT INTO operations (id, project_id, kind, target_type, target_id, state, progress_done, progress_total, message, error, created_by, attempts, input, created_at, updated_at, owner, lease_expires_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, NULL, 'accepted', NULL, $6, 0, $7, $8, $8, $9, $10)",
    )
    .bind(id.to_string())
    .bind(op.project_id.map(|p| p.to_string()))
    .bind(kind)
    .bind(target_type)
    .bind(target_id.clone())
    .bind(actor.name.clone())
    .bind(crate::to_json(&op.work))
    .bind(t)
    .bind(owner)
    .bind(lease)
    .execute(&mut *w.tx)
    .await?;
    event(
        w,
        actor,
        op.project_id,
        "operation",
        &id.to_string(),
        "created",
        json!({"kind": kind, "target_type": target_type, "target_id": target_id}),
    )
    .await?;
    Ok(id)
}

impl Store {
    pub async fn create_operation(&self, actor: &Actor, op: NewOperation) -> Result<Operation> {
        let mut w = self.write().await?;
        let id = insert_operation(&mut w, actor, op).await?;
        w.commit().await?;
        self.operation(id).await
    }

    pub async fn operation(&self, id: OperationId) -> Result<Operation> {
        self.fetch("operations", "operation", id.to_string(), operation).await
    }

    /// An operation with its input, as a worker runs it.
    pub async fn operation_input(&self, id: OperationId) -> Result<OperationInput> {
        self.fetch("operations", "operation", id.to_string(), operation_input).await
    }

    pub async fn list_operations(&self, p: &ListParams, v: &Visibility) -> Result<Page<Operation>> {
        let mut q = Sql::new("SELECT * FROM operations WHERE 1 = 1");
        q.visible(v, false).page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(operation).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, |o| o.id.to_string()))
    }

    /// The newest operations the caller may see, newest first (the dashboard).
    pub async fn recent_operations(&self, v: &Visibility, limit: u32) -> Result<Vec<Operation>> {
        let mut q = Sql::new("SELECT * FROM operations WHERE 1 = 1");
        q.visible(v, false).push(" ORDER BY id DESC LIMIT ").bind_int(i64::from(limit));
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter().map(operation).collect()
    }

    /// The newest events of one object, newest first (the dashboard's timeline).
    pub async fn recent_events(&self, object_type: &str, object_id: &str, limit: u32) -> Result<Vec<Event>> {
        let mut q = Sql::new("SELECT * FROM events WHERE object_type = ");
        q.bind(object_type).push(" AND object_id = ").bind(object_id);
        q.push(" ORDER BY id DESC LIMIT ").bind_int(i64::from(limit));
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter().map(event_row).collect()
    }

    /// Something that changes whenever what the dashboard shows changes: the
    /// newest event, and the latest change of operations, machines, nodes
    /// and switch ports (read-backs included).
    pub async fn change_marker(&self) -> Result<String> {
        type Maxima = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
        let row: Maxima = sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM events), (SELECT MAX(updated_at) FROM operations), \
                 (SELECT MAX(updated_at) FROM machines), (SELECT MAX(updated_at) FROM nodes), \
                 (SELECT MAX(changed_at) FROM switch_ports), (SELECT MAX(checked_at) FROM switch_ports)",
        )
        .fetch_one(&self.pool)
        .await?;
        let parts = [row.0, row.1, row.2, row.3, row.4, row.5];
        Ok(parts.iter().map(|p| p.as_deref().unwrap_or("-")).collect::<Vec<_>>().join("|"))
    }

    /// Operations not finished: what a starting `tundrad` resumes (each
    /// read on its own, so one it cannot read fails alone).
    pub async fn unfinished_operations(&self) -> Result<Vec<Operation>> {
        let rows = sqlx::query("SELECT * FROM operations WHERE state IN ('pending', 'running') ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(operation).collect()
    }

    /// Mark an operation running (counting the attempt), as `owner`, the
    /// replica holding its lease. Returns false, changing nothing, when
    /// `owner` no longer holds it (another replica claimed it).
    pub async fn start_operation(&self, id: OperationId, owner: &str, message: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE operations SET state = 'running', attempts = attempts + 1, message = $1, updated_at = $2 \
             WHERE id = $3 AND owner = $4 AND state IN ('pending', 'running')",
        )
        .bind(message.to_string())
        .bind(now())
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Record progress. Not an event: progress is frequent and not a change of intent.
    pub async fn operation_progress(
        &self,
        id: OperationId,
        done: i64,
        total: Option<i64>,
        message: &str,
    ) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE operations SET progress_done = $1, progress_total = $2, message = $3, updated_at = $4 WHERE id = $5")
            .bind(done)
            .bind(total)
            .bind(message.to_string())
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// Record how an operation ended. An operation that already ended (e.g.
    /// failed by a timeout while its worker still ran) keeps its outcome.
    pub async fn finish_operation(&self, id: OperationId, error: Option<String>) -> Result<Operation> {
        let mut w = self.write().await?;
        let op = finish_operation_in(&mut w, id, error).await?;
        w.commit().await?;
        Ok(op)
    }

    /// Record how an operation's worker ended it, as `owner`: `None` when
    /// `owner` no longer holds it (its lease lapsed and another replica
    /// claimed it, whose outcome counts), and nothing is written.
    pub async fn finish_owned_operation(
        &self,
        id: OperationId,
        owner: &str,
        error: Option<String>,
    ) -> Result<Option<Operation>> {
        let mut w = self.write().await?;
        let read = if w.lock_rows {
            "SELECT owner FROM operations WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT owner FROM operations WHERE id = $1"
        };
        let holder: Option<Option<String>> =
            sqlx::query_scalar(read).bind(id.to_string()).fetch_optional(&mut *w.tx).await?;
        if holder.flatten().as_deref() != Some(owner) {
            return Ok(None);
        }
        let op = finish_operation_in(&mut w, id, error).await?;
        w.commit().await?;
        Ok(Some(op))
    }

    pub async fn list_events(
        &self,
        p: &ListParams,
        v: &Visibility,
        object_type: Option<&str>,
        object_id: Option<&str>,
    ) -> Result<Page<Event>> {
        let mut q = Sql::new("SELECT * FROM events WHERE 1 = 1");
        if let Some(t) = object_type {
            q.push(" AND object_type = ").bind(t);
        }
        if let Some(o) = object_id {
            q.push(" AND object_id = ").bind(o);
        }
        q.visible(v, false).page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(event_row).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, |e| e.id.to_string()))
    }
}

pub(crate) async fn finish_operation_in(w: &mut Write, id: OperationId, error: Option<String>) -> Result<Operation> {
    let current = fetch_in(w, "operations", "operation", id.to_string(), operation).await?;
    if current.state.is_terminal() {
        return Ok(current);
    }
    let (state, message) = match &error {
        None => ("succeeded", "done"),
        Some(_) => ("failed", "failed"),
    };
    sqlx::query("UPDATE operations SET state = $1, message = $2, error = $3, updated_at = $4 WHERE id = $5")
        .bind(state.to_string())
        .bind(message.to_string())
        .bind(error.clone())
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
    let op = fetch_in(w, "operations", "operation", id.to_string(), operation).await?;
    event(w, &Actor::service(), op.project_id, "operation", &id.to_string(), state, json!({"error": error})).await?;
    Ok(op)
}
