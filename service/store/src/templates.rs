//! Versioned templates (clusters' and appliances'): frozen once made but
//! for their description, and deleted only while nothing is made from them.
//! Each noun's file names its table and what its rows say of themselves.

use serde_json::json;
use tundra_api::ProjectId;

use crate::table::Table;
use crate::{Actor, Result, Store, StoreError, check_revision, event, now};

/// What a template row says of itself.
pub(crate) struct Versioned {
    pub project: Option<ProjectId>,
    pub revision: i64,
    pub name: String,
    pub version: u32,
}

impl Store {
    /// Change a template's description (in use or not), at the caller's revision.
    pub(crate) async fn describe_template<T>(
        &self,
        table: &Table<T>,
        of: fn(&T) -> Versioned,
        actor: &Actor,
        id: impl ToString,
        description: String,
        if_match: Option<i64>,
    ) -> Result<T> {
        let id = id.to_string();
        let mut w = self.write().await?;
        let cur = of(&table.get_in(&mut w, &id).await?);
        check_revision(table.noun, &id, cur.revision, if_match)?;
        sqlx::query(&format!(
            "UPDATE {} SET description = $1, updated_at = $2, revision = revision + 1 WHERE id = $3",
            table.table
        ))
        .bind(description)
        .bind(now())
        .bind(id.clone())
        .execute(&mut *w.tx)
        .await?;
        table.commit(w, actor, cur.project, id, "updated", json!({})).await
    }

    /// Delete a template none of `made` (a table with `template_id` and
    /// `name`: `clusters`, `appliances`) is made from.
    pub(crate) async fn delete_unused_template<T>(
        &self,
        table: &Table<T>,
        of: fn(&T) -> Versioned,
        made: &str,
        actor: &Actor,
        id: impl ToString,
    ) -> Result<()> {
        let id = id.to_string();
        let mut w = self.write().await?;
        let cur = of(&table.get_in(&mut w, &id).await?);
        let users: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM {made} WHERE template_id = $1 ORDER BY name"))
                .bind(id.clone())
                .fetch_all(&mut *w.tx)
                .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "template {} version {} is used by {made} {}; delete them or move them to another template first",
                cur.name,
                cur.version,
                users.join(", ")
            )));
        }
        sqlx::query(&format!("DELETE FROM {} WHERE id = $1", table.table)).bind(id.clone()).execute(&mut *w.tx).await?;
        event(
            &mut w,
            actor,
            cur.project,
            table.kind,
            &id,
            "deleted",
            json!({"name": cur.name, "version": cur.version}),
        )
        .await?;
        w.commit().await
    }
}
