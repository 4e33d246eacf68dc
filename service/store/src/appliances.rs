//! Appliances: templates (versioned, frozen but for their description),
//! appliances with their parameters, sealed generated secrets and the
//! reconciler's judgement, and their members.
//!
//! A member row is written before its node is made, and names the node
//! (`APPLIANCE-ROLE-N`): the appliance reconciler finds a node it made
//! before a restart by that name instead of making a second one. The
//! reconciler and the nodes' reports write members, status and outputs;
//! the API writes parameters (with the revision) and nothing else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use tundra_api::appliances::{
    Appliance, ApplianceMember, ApplianceMemberState as MemberState, ApplianceStatus, ApplianceTemplate, OutputSpec,
    Parameter, Role, RoleStatus, SecretSpec,
};
use tundra_api::{ApplianceId, ApplianceTemplateId, KeypairId, NodeId, Page, ProjectId, SecretId};

use crate::secrets::{SecretRecord, put_secret_in};
use crate::table::Table;
use crate::templates::Versioned;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, json_col, now,
    opt_id_col, to_json, u32_col, unique_at, word,
};

/// What a template is beyond its name: kept as one JSON column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub parameters: Vec<Parameter>,
    pub secrets: Vec<SecretSpec>,
    pub roles: Vec<Role>,
    pub outputs: Vec<OutputSpec>,
    pub usage: String,
}

fn template(row: &AnyRow) -> Result<ApplianceTemplate> {
    let spec: TemplateSpec = json_col("appliance_templates", row, "spec")?;
    Ok(ApplianceTemplate {
        id: id_col("appliance_templates", row, "id")?,
        project_id: opt_id_col("appliance_templates", row, "project_id")?,
        name: get(row, "name")?,
        version: u32_col(row, "version")?,
        description: get(row, "description")?,
        parameters: spec.parameters,
        secrets: spec.secrets,
        roles: spec.roles,
        outputs: spec.outputs,
        usage: spec.usage,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn versioned(t: &ApplianceTemplate) -> Versioned {
    Versioned { project: t.project_id, revision: t.revision, name: t.name.clone(), version: t.version }
}

fn appliance(row: &AnyRow) -> Result<Appliance> {
    Ok(Appliance {
        id: id_col("appliances", row, "id")?,
        project_id: id_col("appliances", row, "project_id")?,
        name: get(row, "name")?,
        template_id: id_col("appliances", row, "template_id")?,
        keypair_id: opt_id_col("appliances", row, "keypair_id")?,
        parameters: json_col("appliances", row, "parameters")?,
        status: word("appliances", row, "status", ApplianceStatus::parse)?,
        status_reason: get(row, "status_reason")?,
        roles: json_col("appliances", row, "roles")?,
        members: Vec::new(),
        outputs: json_col("appliances", row, "outputs")?,
        usage: get(row, "usage")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

/// A member row as the reconciler keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceMemberRecord {
    pub appliance_id: ApplianceId,
    pub name: String,
    pub role: String,
    /// N in the name.
    pub index: u32,
    pub node_id: Option<NodeId>,
    pub state: MemberState,
    pub reason: Option<String>,
    /// The plan generation its node last reported ready under.
    pub generation: Option<String>,
    /// It was ready once: it leaves only drained (where a role drains it).
    pub ready_once: bool,
    /// The role that drains it reported it drained.
    pub drained: bool,
}

impl ApplianceMemberRecord {
    pub fn view(&self, address: Option<String>) -> ApplianceMember {
        ApplianceMember {
            name: self.name.clone(),
            role: self.role.clone(),
            node_id: self.node_id,
            state: self.state,
            reason: self.reason.clone(),
            address,
        }
    }
}

fn member(row: &AnyRow) -> Result<ApplianceMemberRecord> {
    Ok(ApplianceMemberRecord {
        appliance_id: id_col("appliance_members", row, "appliance_id")?,
        name: get(row, "name")?,
        role: get(row, "role")?,
        index: u32_col(row, "idx")?,
        node_id: opt_id_col("appliance_members", row, "node_id")?,
        state: word("appliance_members", row, "state", MemberState::parse)?,
        reason: get(row, "reason")?,
        generation: get(row, "generation")?,
        ready_once: get::<i64>(row, "ready_once")? != 0,
        drained: get::<i64>(row, "drained")? != 0,
    })
}

pub(crate) const TEMPLATES: Table<ApplianceTemplate> =
    Table::new("appliance_templates", "appliance template", template, |x| x.id.to_string())
        .kind("appliance_template")
        .public();
pub(crate) const APPLIANCES: Table<Appliance> = Table::new("appliances", "appliance", appliance, |x| x.id.to_string());

#[derive(Debug, Clone)]
pub struct NewApplianceTemplate {
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub version: u32,
    pub description: String,
    pub spec: TemplateSpec,
}

#[derive(Debug, Clone)]
pub struct NewAppliance {
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: ApplianceTemplateId,
    pub keypair_id: Option<KeypairId>,
    /// Checked, defaults filled in.
    pub parameters: BTreeMap<String, Value>,
}

/// What the reconciler keeps of an appliance beyond its view.
#[derive(Debug, Clone)]
pub struct ApplianceRecord {
    pub appliance: Appliance,
    pub was_active: bool,
    /// Its generated secrets, sealed together (a JSON object name → base64).
    pub secret_id: Option<SecretId>,
}

fn record(r: &AnyRow) -> Result<ApplianceRecord> {
    Ok(ApplianceRecord {
        appliance: appliance(r)?,
        was_active: get::<i64>(r, "was_active")? != 0,
        secret_id: opt_id_col("appliances", r, "secret_id")?,
    })
}

/// The reconciler's judgement of an appliance, written when it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceJudged {
    /// The revision it was judged from: a change made since is left to
    /// the next judgement.
    pub revision: i64,
    pub status: ApplianceStatus,
    pub reason: Option<String>,
    pub roles: Vec<RoleStatus>,
    pub outputs: BTreeMap<String, String>,
    pub usage: Option<String>,
}

impl Store {
    // ---- templates ---------------------------------------------------

    pub async fn create_appliance_template(&self, actor: &Actor, t: NewApplianceTemplate) -> Result<ApplianceTemplate> {
        let mut w = self.write().await?;
        let id = ApplianceTemplateId::generate();
        let scope = t.project_id.map(|p| p.to_string()).unwrap_or_default();
        sqlx::query(
            "INSERT INTO appliance_templates (id, project_id, scope, name, version, description, spec, created_at, \
             updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)",
        )
        .bind(id.to_string())
        .bind(t.project_id.map(|p| p.to_string()))
        .bind(scope)
        .bind(t.name.clone())
        .bind(i64::from(t.version))
        .bind(t.description)
        .bind(to_json(&t.spec))
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique_at(e, "/version".into(), || {
                format!(
                    "template {:?} version {} exists; a template never changes: make version {}",
                    t.name,
                    t.version,
                    t.version + 1
                )
            })
        })?;
        let roles: Vec<&str> = t.spec.roles.iter().map(|r| r.name.as_str()).collect();
        TEMPLATES
            .commit(
                w,
                actor,
                t.project_id,
                id,
                "created",
                json!({"name": t.name, "version": t.version, "roles": roles}),
            )
            .await
    }

    pub async fn appliance_template(&self, id: ApplianceTemplateId) -> Result<ApplianceTemplate> {
        TEMPLATES.get(self, id).await
    }

    pub async fn list_appliance_templates(&self, p: &ListParams, v: &Visibility) -> Result<Page<ApplianceTemplate>> {
        TEMPLATES.list(self, p, v).await
    }

    /// Only the description changes, in use or not.
    pub async fn update_appliance_template(
        &self,
        actor: &Actor,
        id: ApplianceTemplateId,
        description: String,
        if_match: Option<i64>,
    ) -> Result<ApplianceTemplate> {
        self.describe_template(&TEMPLATES, versioned, actor, id, description, if_match).await
    }

    /// Delete a template no appliance is made from.
    pub async fn delete_appliance_template(&self, actor: &Actor, id: ApplianceTemplateId) -> Result<()> {
        self.delete_unused_template(&TEMPLATES, versioned, "appliances", actor, id).await
    }

    // ---- appliances ----------------------------------------------------

    /// A new appliance, `creating`, with its generated secrets sealed.
    pub async fn create_appliance(&self, actor: &Actor, a: NewAppliance, secrets: SecretRecord) -> Result<Appliance> {
        let mut w = self.write().await?;
        let t = TEMPLATES.get_in(&mut w, a.template_id).await.map_err(|_| StoreError::ConflictAt {
            pointer: "/template_id".into(),
            detail: format!("no appliance template {}", a.template_id),
        })?;
        put_secret_in(&mut w, &secrets).await?;
        let id = ApplianceId::generate();
        sqlx::query(
            "INSERT INTO appliances (id, project_id, name, template_id, keypair_id, parameters, secret_id, status, \
             status_reason, was_active, roles, outputs, usage, last_index, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'creating', 'making its nodes', 0, '[]', '{}', NULL, '{}', $8, $8, 1)",
        )
        .bind(id.to_string())
        .bind(a.project_id.to_string())
        .bind(a.name.clone())
        .bind(t.id.to_string())
        .bind(a.keypair_id.map(|k| k.to_string()))
        .bind(to_json(&a.parameters))
        .bind(secrets.id.to_string())
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique_at(e, "/name".into(), || {
                format!("this project has an appliance named {:?}; pick another name", a.name)
            })
        })?;
        APPLIANCES
            .commit(
                w,
                actor,
                Some(a.project_id),
                id,
                "created",
                json!({"name": a.name, "template": t.name, "version": t.version}),
            )
            .await
    }

    /// An appliance with its members (addresses are the conductor's to add).
    pub async fn appliance(&self, id: ApplianceId) -> Result<Appliance> {
        let mut a = APPLIANCES.get(self, id).await?;
        a.members = self.appliance_members(id).await?.iter().map(|m| m.view(None)).collect();
        Ok(a)
    }

    pub async fn list_appliances(&self, p: &ListParams, v: &Visibility) -> Result<Page<Appliance>> {
        let mut page = APPLIANCES.list(self, p, v).await?;
        for a in &mut page.items {
            a.members = self.appliance_members(a.id).await?.iter().map(|m| m.view(None)).collect();
        }
        Ok(page)
    }

    /// Every appliance, for the reconciler.
    pub async fn appliance_records(&self) -> Result<Vec<ApplianceRecord>> {
        let rows = sqlx::query("SELECT * FROM appliances ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    pub async fn appliance_record(&self, id: ApplianceId) -> Result<ApplianceRecord> {
        let row = sqlx::query("SELECT * FROM appliances WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "appliance", id: id.to_string() })?;
        record(&row)
    }

    /// New parameters (checked by the conductor against the template and
    /// the current ones), at the caller's revision.
    pub async fn update_appliance(
        &self,
        actor: &Actor,
        id: ApplianceId,
        parameters: BTreeMap<String, Value>,
        if_match: Option<i64>,
    ) -> Result<Appliance> {
        let mut w = self.write().await?;
        let cur = APPLIANCES.get_in(&mut w, id).await?;
        check_revision("appliance", &id.to_string(), cur.revision, if_match)?;
        if cur.status == ApplianceStatus::Deleting {
            return Err(StoreError::Conflict(format!("appliance {} is being deleted", cur.name)));
        }
        let changed: Vec<&String> =
            parameters.iter().filter(|(k, v)| cur.parameters.get(*k) != Some(v)).map(|x| x.0).collect();
        // `updating` until the reconciler has judged the change: no one
        // waiting on it reads the `active` of before.
        sqlx::query(
            "UPDATE appliances SET parameters = $1, status = 'updating', status_reason = 'applying the change', \
             updated_at = $2, revision = revision + 1 WHERE id = $3",
        )
        .bind(to_json(&parameters))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        APPLIANCES.commit(w, actor, Some(cur.project_id), id, "updated", json!({"changed": changed})).await?;
        self.appliance(id).await
    }

    /// Start deleting an appliance: its members leave, then it goes.
    pub async fn delete_appliance(&self, actor: &Actor, id: ApplianceId) -> Result<Appliance> {
        let mut w = self.write().await?;
        let cur = APPLIANCES.get_in(&mut w, id).await?;
        sqlx::query(
            "UPDATE appliances SET status = 'deleting', status_reason = 'removing its nodes', updated_at = $1, \
             revision = revision + 1 WHERE id = $2",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        APPLIANCES.commit(w, actor, Some(cur.project_id), id, "deleting", json!({})).await?;
        self.appliance(id).await
    }

    /// Remove an appliance that has no members left, with its secrets.
    pub async fn remove_appliance(&self, actor: &Actor, id: ApplianceId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = APPLIANCES.get_in(&mut w, id).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM appliance_members WHERE appliance_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if n > 0 {
            return Err(StoreError::Conflict(format!("appliance {} still has {n} member(s)", cur.name)));
        }
        let secret: Option<String> = sqlx::query_scalar("SELECT secret_id FROM appliances WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM appliances WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if let Some(s) = secret {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s).execute(&mut *w.tx).await?;
        }
        event(&mut w, actor, Some(cur.project_id), "appliance", &id.to_string(), "deleted", json!({"name": cur.name}))
            .await?;
        w.commit().await
    }

    /// Write the reconciler's judgement when it differs from the row's.
    pub async fn judge_appliance(&self, id: ApplianceId, j: &ApplianceJudged) -> Result<bool> {
        let mut w = self.write().await?;
        let cur = APPLIANCES.get_in(&mut w, id).await?;
        if cur.revision != j.revision {
            return Ok(false); // changed meanwhile: judged on the next pass
        }
        if (cur.status, &cur.status_reason, &cur.roles, &cur.outputs, &cur.usage)
            == (j.status, &j.reason, &j.roles, &j.outputs, &j.usage)
        {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE appliances SET status = $1, status_reason = $2, roles = $3, outputs = $4, usage = $5, \
             was_active = CASE WHEN $1 = 'active' THEN 1 ELSE was_active END, updated_at = $6, revision = revision + 1 \
             WHERE id = $7",
        )
        .bind(j.status.as_str())
        .bind(j.reason.clone())
        .bind(to_json(&j.roles))
        .bind(to_json(&j.outputs))
        .bind(j.usage.clone())
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        if cur.status != j.status {
            event(
                &mut w,
                &Actor::service(),
                Some(cur.project_id),
                "appliance",
                &id.to_string(),
                j.status.as_str(),
                json!({"reason": j.reason}),
            )
            .await?;
        }
        w.commit().await?;
        Ok(true)
    }

    // ---- members -----------------------------------------------------

    pub async fn appliance_members(&self, id: ApplianceId) -> Result<Vec<ApplianceMemberRecord>> {
        let rows = sqlx::query("SELECT * FROM appliance_members WHERE appliance_id = $1 ORDER BY role, idx")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(member).collect()
    }

    /// The member a node is, if it belongs to an appliance.
    pub async fn appliance_member_of_node(&self, node: NodeId) -> Result<Option<ApplianceMemberRecord>> {
        let row = sqlx::query("SELECT * FROM appliance_members WHERE node_id = $1")
            .bind(node.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(member).transpose()
    }

    /// A new member of `role`, `deploying`, before its node is made: the
    /// role's next index (never one given before) and the name `name_of`
    /// makes of it.
    pub async fn add_appliance_member(
        &self,
        appliance: ApplianceId,
        role: &str,
        name_of: impl Fn(u32) -> String,
    ) -> Result<ApplianceMemberRecord> {
        let mut w = self.write().await?;
        let cur = APPLIANCES.get_in(&mut w, appliance).await?;
        if cur.status == ApplianceStatus::Deleting {
            return Err(StoreError::Conflict(format!("appliance {} is being deleted", cur.name)));
        }
        let row = sqlx::query("SELECT last_index FROM appliances WHERE id = $1")
            .bind(appliance.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let mut last: BTreeMap<String, u32> = serde_json::from_str(&get::<String>(&row, "last_index")?)
            .map_err(|e| StoreError::Corrupt { table: "appliances", what: format!("last_index: {e}") })?;
        let highest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(idx) FROM appliance_members WHERE appliance_id = $1 AND role = $2")
                .bind(appliance.to_string())
                .bind(role.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
        // Indexes start at 0 (`login-0`) and are never given twice.
        let index = match (last.get(role), highest) {
            (None, None) => 0,
            (l, h) => l.copied().unwrap_or(0).max(h.unwrap_or(0) as u32) + 1,
        };
        last.insert(role.to_string(), index);
        let m = ApplianceMemberRecord {
            appliance_id: appliance,
            name: name_of(index),
            role: role.to_string(),
            index,
            node_id: None,
            state: MemberState::Deploying,
            reason: Some("waiting for its node to be placed".into()),
            generation: None,
            ready_once: false,
            drained: false,
        };
        sqlx::query(
            "INSERT INTO appliance_members (appliance_id, name, role, idx, node_id, state, reason, generation, \
             ready_once, drained, updated_at) VALUES ($1, $2, $3, $4, NULL, $5, $6, NULL, 0, 0, $7)",
        )
        .bind(appliance.to_string())
        .bind(m.name.clone())
        .bind(m.role.clone())
        .bind(i64::from(index))
        .bind(m.state.as_str())
        .bind(m.reason.clone())
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| crate::unique(e, || format!("appliance {} already has a member {:?}", cur.name, m.name)))?;
        sqlx::query("UPDATE appliances SET last_index = $1 WHERE id = $2")
            .bind(to_json(&last))
            .bind(appliance.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(m)
    }

    /// A member's node, state, reason and reported generation, written
    /// when they changed and the member is still in the state and
    /// generation `from` (a report or a pass that came meanwhile wins). A member that reaches `ready` is marked
    /// as having been ready; one `leaving` stays so (only
    /// [`Store::remove_appliance_member`] ends it).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_appliance_member(
        &self,
        id: ApplianceId,
        name: &str,
        from: (MemberState, Option<&str>),
        node: Option<NodeId>,
        state: MemberState,
        reason: Option<&str>,
        generation: Option<&str>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE appliance_members SET node_id = $1, state = $2, reason = $3, generation = $4, updated_at = $5, \
             ready_once = CASE WHEN $2 = 'ready' THEN 1 ELSE ready_once END \
             WHERE appliance_id = $6 AND name = $7 AND state = $8 AND COALESCE(generation, '') = COALESCE($9, '') \
             AND (state <> 'leaving' OR $2 = 'leaving') \
             AND (COALESCE(node_id, '') <> COALESCE($1, '') OR state <> $2 OR COALESCE(reason, '') <> COALESCE($3, '') \
                  OR COALESCE(generation, '') <> COALESCE($4, ''))",
        )
        .bind(node.map(|n| n.to_string()))
        .bind(state.as_str())
        .bind(reason.map(str::to_string))
        .bind(generation.map(str::to_string))
        .bind(now())
        .bind(id.to_string())
        .bind(name.to_string())
        .bind(from.0.as_str())
        .bind(from.1.map(str::to_string))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A leaving member the role that drains it reported drained.
    pub async fn appliance_member_drained(&self, id: ApplianceId, name: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE appliance_members SET drained = 1, reason = 'drained', updated_at = $1 \
             WHERE appliance_id = $2 AND name = $3 AND state = 'leaving' AND drained = 0",
        )
        .bind(now())
        .bind(id.to_string())
        .bind(name.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn remove_appliance_member(&self, id: ApplianceId, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM appliance_members WHERE appliance_id = $1 AND name = $2")
            .bind(id.to_string())
            .bind(name.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
