//! A table and how its rows read as views: declared once per noun as a
//! [`Table`] constant, so a noun's file spells out only what is its own —
//! its columns and its writes — and every read by ID, list, locked read
//! and "record the event, read the row back, commit" goes the same way.

use serde_json::Value;
use sqlx::any::AnyRow;
use tundra_api::{Page, ProjectId};

use crate::sql::{Sql, paginate};
use crate::{Actor, ListParams, Result, Store, StoreError, Visibility, Write, event};

pub(crate) struct Table<T> {
    pub table: &'static str,
    /// A `(SELECT …)` over the table that adds joined columns, read instead of it.
    pub view: Option<&'static str>,
    /// For "not found" (`physical network`).
    pub noun: &'static str,
    /// For events (`physical_network`).
    pub kind: &'static str,
    /// Whether its objects can be public or shared (no project).
    pub public: bool,
    pub row: fn(&AnyRow) -> Result<T>,
    /// The keyset of its pages.
    pub id: fn(&T) -> String,
}

impl<T> Table<T> {
    /// A project-owned table whose rows decode with `row`; `noun` names
    /// it in messages and events.
    pub const fn new(
        table: &'static str,
        noun: &'static str,
        row: fn(&AnyRow) -> Result<T>,
        id: fn(&T) -> String,
    ) -> Self {
        Table { table, view: None, noun, kind: noun, public: false, row, id }
    }

    /// Its objects can be public or shared (no project).
    pub const fn public(self) -> Self {
        Table { public: true, ..self }
    }

    /// Read through `view`, a `(SELECT …)` over the table adding joined columns.
    pub const fn view(self, view: &'static str) -> Self {
        Table { view: Some(view), ..self }
    }

    /// Its events' object type, when not the noun (`physical_network`).
    pub const fn kind(self, kind: &'static str) -> Self {
        Table { kind, ..self }
    }

    fn source(&self) -> String {
        match self.view {
            Some(v) => format!("{v} x"),
            None => self.table.to_string(),
        }
    }

    /// One row by ID; `NotFound` names the noun.
    pub async fn get(&self, s: &Store, id: impl ToString) -> Result<T> {
        let id = id.to_string();
        let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1", self.source()))
            .bind(id.clone())
            .fetch_optional(&s.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: self.noun, id })?;
        (self.row)(&row)
    }

    /// One row inside a write, locked until the write ends (PostgreSQL; a
    /// joined view locks its table's row first).
    pub async fn get_in(&self, w: &mut Write, id: impl ToString) -> Result<T> {
        let id = id.to_string();
        if self.view.is_some() {
            crate::lock_row(w, self.table, self.noun, id.clone()).await?;
        }
        let lock = if w.lock_rows && self.view.is_none() { " FOR UPDATE" } else { "" };
        let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1{lock}", self.source()))
            .bind(id.clone())
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or(StoreError::NotFound { noun: self.noun, id })?;
        (self.row)(&row)
    }

    /// Every row, by ID (for reconcilers and workers).
    pub async fn all(&self, s: &Store) -> Result<Vec<T>> {
        let rows = sqlx::query(&format!("SELECT * FROM {} ORDER BY id", self.source())).fetch_all(&s.pool).await?;
        rows.iter().map(self.row).collect()
    }

    /// A page of what the caller may see (name filter, visibility, keyset).
    pub async fn list(&self, s: &Store, p: &ListParams, v: &Visibility) -> Result<Page<T>> {
        let mut q = Sql::new(&format!("SELECT * FROM {} WHERE 1 = 1", self.source()));
        if let Some(n) = &p.name {
            q.push(" AND name = ").bind(n.clone());
        }
        q.visible(v, self.public).page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&s.pool).await?;
        let items = rows.iter().map(self.row).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, p.limit, self.id))
    }

    /// Record what happened to row `id` (its event, by `actor`), read the
    /// row as it is now and commit: the end of every write of one object.
    pub async fn commit(
        &self,
        mut w: Write,
        actor: &Actor,
        project: Option<ProjectId>,
        id: impl ToString,
        action: &str,
        detail: Value,
    ) -> Result<T> {
        let id = id.to_string();
        event(&mut w, actor, project, self.kind, &id, action, detail).await?;
        let out = self.get_in(&mut w, &id).await?;
        w.commit().await?;
        Ok(out)
    }
}
