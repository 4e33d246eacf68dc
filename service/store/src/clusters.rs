//! Clusters: templates (versioned, frozen once used), clusters with their
//! node groups, sealed join secrets and the control plane's last report,
//! and their members.
//!
//! A member row is written before its node is made, and names the node
//! (`CLUSTER-GROUP-N`): the cluster reconciler finds a node it made before a
//! restart by that name instead of making a second one. The reconciler is
//! the only writer of members, status and reports; the API writes groups and
//! labels (with the revision) and nothing else.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::clusters::{
    Cluster, ClusterKind, ClusterMember, ClusterStatus, ClusterTemplate, GroupRole, MemberState, NodeGroup,
};
use tundra_api::{ClusterId, ClusterTemplateId, ImageId, KeypairId, NodeId, Page, ProjectId, SecretId};

use crate::secrets::{SecretRecord, put_secret_in};
use crate::table::Table;
use crate::templates::Versioned;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, json_col, now,
    opt_id_col, to_json, u32_col, unique_at, word,
};

fn template(row: &AnyRow) -> Result<ClusterTemplate> {
    Ok(ClusterTemplate {
        id: id_col("cluster_templates", row, "id")?,
        project_id: opt_id_col("cluster_templates", row, "project_id")?,
        name: get(row, "name")?,
        version: u32_col(row, "version")?,
        kind: word("cluster_templates", row, "kind", ClusterKind::parse)?,
        description: get(row, "description")?,
        bundle_image_id: opt_id_col("cluster_templates", row, "bundle_image_id")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn versioned(t: &ClusterTemplate) -> Versioned {
    Versioned { project: t.project_id, revision: t.revision, name: t.name.clone(), version: t.version }
}

fn cluster(row: &AnyRow) -> Result<Cluster> {
    Ok(Cluster {
        id: id_col("clusters", row, "id")?,
        project_id: id_col("clusters", row, "project_id")?,
        name: get(row, "name")?,
        template_id: id_col("clusters", row, "template_id")?,
        kind: word("clusters", row, "kind", ClusterKind::parse)?,
        keypair_id: opt_id_col("clusters", row, "keypair_id")?,
        groups: json_col("clusters", row, "groups")?,
        labels: json_col("clusters", row, "labels")?,
        status: word("clusters", row, "status", ClusterStatus::parse)?,
        status_reason: get(row, "status_reason")?,
        members: Vec::new(),
        endpoint: get(row, "endpoint")?,
        ca_certificate: get(row, "ca_certificate")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

/// A member row as the reconciler keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub cluster_id: ClusterId,
    pub name: String,
    pub group: String,
    pub role: GroupRole,
    /// N in the name.
    pub index: u32,
    pub node_id: Option<NodeId>,
    pub state: MemberState,
    pub reason: Option<String>,
    /// It reported joined once: it leaves only through the control plane.
    pub joined: bool,
}

impl MemberRecord {
    pub fn view(&self) -> ClusterMember {
        ClusterMember {
            name: self.name.clone(),
            group: self.group.clone(),
            role: self.role,
            node_id: self.node_id,
            state: self.state,
            reason: self.reason.clone(),
        }
    }
}

fn member(row: &AnyRow) -> Result<MemberRecord> {
    Ok(MemberRecord {
        cluster_id: id_col("cluster_members", row, "cluster_id")?,
        name: get(row, "name")?,
        group: get(row, "group_name")?,
        role: word("cluster_members", row, "role", GroupRole::parse)?,
        index: u32_col(row, "idx")?,
        node_id: opt_id_col("cluster_members", row, "node_id")?,
        state: word("cluster_members", row, "state", MemberState::parse)?,
        reason: get(row, "reason")?,
        joined: get::<i64>(row, "joined")? != 0,
    })
}

pub(crate) const TEMPLATES: Table<ClusterTemplate> =
    Table::new("cluster_templates", "cluster template", template, |x| x.id.to_string())
        .kind("cluster_template")
        .public();
pub(crate) const CLUSTERS: Table<Cluster> = Table::new("clusters", "cluster", cluster, |x| x.id.to_string());

#[derive(Debug, Clone)]
pub struct NewClusterTemplate {
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub version: u32,
    pub kind: ClusterKind,
    pub description: String,
    pub bundle_image_id: Option<ImageId>,
}

/// A new cluster's secrets, each sealed under its own ID.
#[derive(Debug, Clone)]
pub struct NewClusterSecrets {
    /// k3s: the server and agent tokens tundrad minted (Swarm: none yet).
    pub control_plane: Option<SecretRecord>,
    pub worker: Option<SecretRecord>,
    /// The SSH certificate authority: sealed private key, public key.
    pub ssh_ca: (SecretRecord, String),
    /// Kubernetes: the client CA: sealed key, certificate (PEM).
    pub client_ca: Option<(SecretRecord, String)>,
}

#[derive(Debug, Clone)]
pub struct NewCluster {
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: ClusterTemplateId,
    pub kind: ClusterKind,
    pub keypair_id: Option<KeypairId>,
    pub groups: Vec<NodeGroup>,
    pub labels: BTreeMap<String, String>,
}

/// What the reconciler keeps of a cluster beyond its view.
#[derive(Debug, Clone)]
pub struct ClusterRecord {
    pub cluster: Cluster,
    pub was_active: bool,
    /// The node the others join through, once chosen.
    pub bootstrap: Option<String>,
    /// The control plane's last view of its members: name → ready.
    pub seen: Option<BTreeMap<String, bool>>,
    pub control_plane_secret: Option<SecretId>,
    pub worker_secret: Option<SecretId>,
    /// The cluster's SSH certificate authority: its sealed private key and
    /// its public key (which the nodes trust for user certificates).
    pub ssh_ca_secret: Option<SecretId>,
    pub ssh_ca_public: Option<String>,
    /// Kubernetes: the client CA its kubeconfigs are signed by — its
    /// sealed key and its certificate (PEM), installed on the bootstrap
    /// server before k3s first starts.
    pub client_ca_secret: Option<SecretId>,
    pub client_ca_cert: Option<String>,
}

fn record(r: &AnyRow) -> Result<ClusterRecord> {
    Ok(ClusterRecord {
        cluster: cluster(r)?,
        was_active: get::<i64>(r, "was_active")? != 0,
        bootstrap: get(r, "bootstrap")?,
        seen: get::<Option<String>>(r, "seen")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt { table: "clusters", what: format!("seen: {e}") })?,
        control_plane_secret: opt_id_col("clusters", r, "control_plane_secret")?,
        worker_secret: opt_id_col("clusters", r, "worker_secret")?,
        ssh_ca_secret: opt_id_col("clusters", r, "ssh_ca_secret")?,
        ssh_ca_public: get(r, "ssh_ca_public")?,
        client_ca_secret: opt_id_col("clusters", r, "client_ca_secret")?,
        client_ca_cert: get(r, "client_ca_cert")?,
    })
}

/// The reconciler's judgement of a cluster, written when it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterJudged {
    /// The revision of the cluster it was judged from: a change made since
    /// (a new count, a replacement) is left to the next judgement.
    pub revision: i64,
    pub status: ClusterStatus,
    pub reason: Option<String>,
    pub bootstrap: Option<String>,
    pub endpoint: Option<String>,
}

impl Store {
    // ---- templates ---------------------------------------------------

    pub async fn create_cluster_template(&self, actor: &Actor, t: NewClusterTemplate) -> Result<ClusterTemplate> {
        let mut w = self.write().await?;
        let id = ClusterTemplateId::generate();
        let scope = t.project_id.map(|p| p.to_string()).unwrap_or_default();
        sqlx::query(
            "INSERT INTO cluster_templates (id, project_id, scope, name, version, kind, description, bundle_image_id, \
             created_at, updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)",
        )
        .bind(id.to_string())
        .bind(t.project_id.map(|p| p.to_string()))
        .bind(scope)
        .bind(t.name.clone())
        .bind(i64::from(t.version))
        .bind(t.kind.as_str())
        .bind(t.description)
        .bind(t.bundle_image_id.map(|i| i.to_string()))
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
        TEMPLATES
            .commit(
                w,
                actor,
                t.project_id,
                id,
                "created",
                json!({"name": t.name, "version": t.version, "kind": t.kind}),
            )
            .await
    }

    pub async fn cluster_template(&self, id: ClusterTemplateId) -> Result<ClusterTemplate> {
        TEMPLATES.get(self, id).await
    }

    pub async fn list_cluster_templates(&self, p: &ListParams, v: &Visibility) -> Result<Page<ClusterTemplate>> {
        TEMPLATES.list(self, p, v).await
    }

    /// Only the description changes, in use or not.
    pub async fn update_cluster_template(
        &self,
        actor: &Actor,
        id: ClusterTemplateId,
        description: String,
        if_match: Option<i64>,
    ) -> Result<ClusterTemplate> {
        self.describe_template(&TEMPLATES, versioned, actor, id, description, if_match).await
    }

    /// Delete a template no cluster is made from.
    pub async fn delete_cluster_template(&self, actor: &Actor, id: ClusterTemplateId) -> Result<()> {
        self.delete_unused_template(&TEMPLATES, versioned, "clusters", actor, id).await
    }

    // ---- clusters ----------------------------------------------------

    /// A new cluster, `creating`, with its sealed join secrets (k3s: both
    /// minted now; Swarm: none until its bootstrap node reports them) and
    /// its SSH certificate authority (sealed private key, public key), and
    /// for Kubernetes its client CA (sealed key, certificate).
    pub async fn create_cluster(&self, actor: &Actor, c: NewCluster, secrets: NewClusterSecrets) -> Result<Cluster> {
        let NewClusterSecrets { control_plane, worker, ssh_ca, client_ca } = secrets;
        let mut w = self.write().await?;
        let t = TEMPLATES.get_in(&mut w, c.template_id).await.map_err(|_| StoreError::ConflictAt {
            pointer: "/template_id".into(),
            detail: format!("no cluster template {}", c.template_id),
        })?;
        for r in control_plane.iter().chain(worker.iter()).chain([&ssh_ca.0]).chain(client_ca.iter().map(|c| &c.0)) {
            put_secret_in(&mut w, r).await?;
        }
        let id = ClusterId::generate();
        sqlx::query(
            "INSERT INTO clusters (id, project_id, name, template_id, kind, keypair_id, groups, labels, status, status_reason, \
             was_active, bootstrap, seen, last_index, endpoint, control_plane_secret, worker_secret, ssh_ca_secret, ssh_ca_public, \
             client_ca_secret, client_ca_cert, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'creating', 'making its nodes', 0, NULL, NULL, '{}', NULL, $9, $10, $11, $12, \
             $13, $14, $15, $15, 1)",
        )
        .bind(id.to_string())
        .bind(c.project_id.to_string())
        .bind(c.name.clone())
        .bind(t.id.to_string())
        .bind(c.kind.as_str())
        .bind(c.keypair_id.map(|k| k.to_string()))
        .bind(to_json(&c.groups))
        .bind(to_json(&c.labels))
        .bind(control_plane.as_ref().map(|r| r.id.to_string()))
        .bind(worker.as_ref().map(|r| r.id.to_string()))
        .bind(ssh_ca.0.id.to_string())
        .bind(ssh_ca.1.clone())
        .bind(client_ca.as_ref().map(|c| c.0.id.to_string()))
        .bind(client_ca.as_ref().map(|c| c.1.clone()))
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique_at(e, "/name".into(), || format!("this project has a cluster named {:?}; pick another name", c.name))
        })?;
        let counts: BTreeMap<&str, u32> = c.groups.iter().map(|g| (g.name.as_str(), g.count)).collect();
        let out = CLUSTERS
            .commit(
                w,
                actor,
                Some(c.project_id),
                id,
                "created",
                json!({"name": c.name, "template": t.name, "version": t.version, "groups": counts}),
            )
            .await?;
        Ok(out)
    }

    /// A cluster with its members.
    pub async fn cluster(&self, id: ClusterId) -> Result<Cluster> {
        let mut c = CLUSTERS.get(self, id).await?;
        c.members = self.cluster_members(id).await?.iter().map(MemberRecord::view).collect();
        Ok(c)
    }

    pub async fn list_clusters(&self, p: &ListParams, v: &Visibility) -> Result<Page<Cluster>> {
        let mut page = CLUSTERS.list(self, p, v).await?;
        for c in &mut page.items {
            c.members = self.cluster_members(c.id).await?.iter().map(MemberRecord::view).collect();
        }
        Ok(page)
    }

    /// Every cluster, for the reconciler.
    pub async fn cluster_records(&self) -> Result<Vec<ClusterRecord>> {
        let rows = sqlx::query("SELECT * FROM clusters ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    /// One cluster's record.
    pub async fn cluster_record(&self, id: ClusterId) -> Result<ClusterRecord> {
        let row = sqlx::query("SELECT * FROM clusters WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "cluster", id: id.to_string() })?;
        record(&row)
    }

    /// New groups and labels (checked by the conductor against the current
    /// ones), at the caller's revision.
    pub async fn update_cluster(
        &self,
        actor: &Actor,
        id: ClusterId,
        groups: Vec<NodeGroup>,
        labels: BTreeMap<String, String>,
        if_match: Option<i64>,
    ) -> Result<Cluster> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, id).await?;
        check_revision("cluster", &id.to_string(), cur.revision, if_match)?;
        if cur.status == ClusterStatus::Deleting {
            return Err(StoreError::Conflict(format!("cluster {} is being deleted", cur.name)));
        }
        // `updating` until the reconciler has judged the change: no one
        // waiting on it reads the `active` of before.
        sqlx::query(
            "UPDATE clusters SET groups = $1, labels = $2, status = 'updating', status_reason = 'applying the change', \
             updated_at = $3, revision = revision + 1 WHERE id = $4",
        )
        .bind(to_json(&groups))
        .bind(to_json(&labels))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        let counts: BTreeMap<&str, u32> = groups.iter().map(|g| (g.name.as_str(), g.count)).collect();
        CLUSTERS.commit(w, actor, Some(cur.project_id), id, "updated", json!({"groups": counts})).await?;
        self.cluster(id).await
    }

    /// Mark members for replacement (`leaving`, reason given), in one write.
    pub async fn replace_cluster_members(&self, actor: &Actor, id: ClusterId, names: &[String]) -> Result<()> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, id).await?;
        for n in names {
            let r = sqlx::query(
                "UPDATE cluster_members SET state = 'leaving', reason = 'replaced on request', updated_at = $1 \
                 WHERE cluster_id = $2 AND name = $3 AND state <> 'leaving'",
            )
            .bind(now())
            .bind(id.to_string())
            .bind(n.clone())
            .execute(&mut *w.tx)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::ConflictAt {
                    pointer: "/replace".into(),
                    detail: format!("cluster {} has no member {n:?}", cur.name),
                });
            }
        }
        // A change someone waits on: judgements made before it do not stand.
        sqlx::query("UPDATE clusters SET status = 'updating', updated_at = $1, revision = revision + 1 WHERE id = $2")
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        event(&mut w, actor, Some(cur.project_id), "cluster", &id.to_string(), "replace", json!({"members": names}))
            .await?;
        w.commit().await
    }

    /// Start deleting a cluster: its members leave, then it goes.
    pub async fn delete_cluster(&self, actor: &Actor, id: ClusterId) -> Result<Cluster> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, id).await?;
        sqlx::query(
            "UPDATE clusters SET status = 'deleting', status_reason = 'removing its nodes', updated_at = $1, \
             revision = revision + 1 WHERE id = $2",
        )
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        CLUSTERS.commit(w, actor, Some(cur.project_id), id, "deleting", json!({})).await?;
        self.cluster(id).await
    }

    /// Remove a cluster that has no members left, with its secrets.
    pub async fn remove_cluster(&self, actor: &Actor, id: ClusterId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, id).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cluster_members WHERE cluster_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if n > 0 {
            return Err(StoreError::Conflict(format!("cluster {} still has {n} member(s)", cur.name)));
        }
        let row = sqlx::query(
            "SELECT control_plane_secret, worker_secret, ssh_ca_secret, client_ca_secret FROM clusters WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_one(&mut *w.tx)
        .await?;
        let secrets: [Option<String>; 4] = [
            get(&row, "control_plane_secret")?,
            get(&row, "worker_secret")?,
            get(&row, "ssh_ca_secret")?,
            get(&row, "client_ca_secret")?,
        ];
        sqlx::query("DELETE FROM clusters WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        for s in secrets.into_iter().flatten() {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s).execute(&mut *w.tx).await?;
        }
        event(&mut w, actor, Some(cur.project_id), "cluster", &id.to_string(), "deleted", json!({"name": cur.name}))
            .await?;
        w.commit().await
    }

    /// Write the reconciler's judgement when it differs from the row's.
    pub async fn judge_cluster(&self, id: ClusterId, j: &ClusterJudged) -> Result<bool> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, id).await?;
        let row = sqlx::query("SELECT bootstrap FROM clusters WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let bootstrap: Option<String> = get(&row, "bootstrap")?;
        if cur.revision != j.revision {
            return Ok(false); // changed meanwhile (a delete, a new count): judged on the next pass
        }
        if (cur.status, &cur.status_reason, &bootstrap, &cur.endpoint)
            == (j.status, &j.reason, &j.bootstrap, &j.endpoint)
        {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE clusters SET status = $1, status_reason = $2, bootstrap = $3, endpoint = $4, \
             was_active = CASE WHEN $1 = 'active' THEN 1 ELSE was_active END, updated_at = $5, revision = revision + 1 \
             WHERE id = $6",
        )
        .bind(j.status.as_str())
        .bind(j.reason.clone())
        .bind(j.bootstrap.clone())
        .bind(j.endpoint.clone())
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        if cur.status != j.status {
            event(
                &mut w,
                &Actor::service(),
                Some(cur.project_id),
                "cluster",
                &id.to_string(),
                j.status.as_str(),
                json!({"reason": j.reason}),
            )
            .await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// What the bootstrap node reported of the control plane's members;
    /// whether it differs from the last report.
    pub async fn cluster_seen(&self, id: ClusterId, seen: &BTreeMap<String, bool>) -> Result<bool> {
        let seen = to_json(seen);
        let r = sqlx::query("UPDATE clusters SET seen = $1 WHERE id = $2 AND COALESCE(seen, '') <> $1")
            .bind(seen)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The API server's CA (PEM) the bootstrap server reported; whether it
    /// differs from the one kept.
    pub async fn set_cluster_ca(&self, id: ClusterId, pem: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE clusters SET ca_certificate = $1 WHERE id = $2 AND COALESCE(ca_certificate, '') <> $1")
                .bind(pem.to_string())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Keep a join secret for `role` (a Swarm token the bootstrap node
    /// reported, or the full form of a k3s token tundrad minted).
    pub async fn set_cluster_secret(&self, id: ClusterId, role: GroupRole, r: &SecretRecord) -> Result<()> {
        let mut w = self.write().await?;
        put_secret_in(&mut w, r).await?;
        let col = match role {
            GroupRole::ControlPlane => "control_plane_secret",
            GroupRole::Worker => "worker_secret",
        };
        sqlx::query(&format!("UPDATE clusters SET {col} = $1 WHERE id = $2"))
            .bind(r.id.to_string())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    // ---- members -----------------------------------------------------

    pub async fn cluster_members(&self, id: ClusterId) -> Result<Vec<MemberRecord>> {
        let rows = sqlx::query("SELECT * FROM cluster_members WHERE cluster_id = $1 ORDER BY group_name, idx")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(member).collect()
    }

    /// The member a node is, if it belongs to a cluster.
    pub async fn member_of_node(&self, node: NodeId) -> Result<Option<(MemberRecord, String)>> {
        let row = sqlx::query(
            "SELECT m.*, c.name AS cluster_name FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id \
             WHERE m.node_id = $1",
        )
        .bind(node.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((member(&r)?, get(&r, "cluster_name")?))).transpose()
    }

    /// A new member of `group`, `deploying`, before its node is made: the
    /// group's next index (never one given before, even to a member that
    /// has gone) and the name `name_of` makes of it.
    pub async fn add_cluster_member(
        &self,
        cluster: ClusterId,
        group: &str,
        role: GroupRole,
        name_of: impl Fn(u32) -> String,
    ) -> Result<MemberRecord> {
        let mut w = self.write().await?;
        let cur = CLUSTERS.get_in(&mut w, cluster).await?;
        if cur.status == ClusterStatus::Deleting {
            return Err(StoreError::Conflict(format!("cluster {} is being deleted", cur.name)));
        }
        let row = sqlx::query("SELECT last_index FROM clusters WHERE id = $1")
            .bind(cluster.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let mut last: BTreeMap<String, u32> = serde_json::from_str(&get::<String>(&row, "last_index")?)
            .map_err(|e| StoreError::Corrupt { table: "clusters", what: format!("last_index: {e}") })?;
        let highest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(idx) FROM cluster_members WHERE cluster_id = $1 AND group_name = $2")
                .bind(cluster.to_string())
                .bind(group.to_string())
                .fetch_one(&mut *w.tx)
                .await?;
        let index = last.get(group).copied().unwrap_or(0).max(highest.unwrap_or(0) as u32) + 1;
        last.insert(group.to_string(), index);
        let m = MemberRecord {
            cluster_id: cluster,
            name: name_of(index),
            group: group.to_string(),
            role,
            index,
            node_id: None,
            state: MemberState::Deploying,
            reason: Some("waiting for its node to be placed".into()),
            joined: false,
        };
        sqlx::query(
            "INSERT INTO cluster_members (cluster_id, name, group_name, role, idx, node_id, state, reason, joined, updated_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, 0, $8)",
        )
        .bind(cluster.to_string())
        .bind(m.name.clone())
        .bind(m.group.clone())
        .bind(m.role.as_str())
        .bind(i64::from(index))
        .bind(m.state.as_str())
        .bind(m.reason.clone())
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| crate::unique(e, || format!("cluster {} already has a member {:?}", cur.name, m.name)))?;
        sqlx::query("UPDATE clusters SET last_index = $1 WHERE id = $2")
            .bind(to_json(&last))
            .bind(cluster.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(m)
    }

    /// A member's node, state and reason, written when they changed and
    /// the member is still in state `from` (a report that came meanwhile
    /// wins). A member that reaches `joined` is marked as having joined for
    /// good; one `leaving` stays so (only [`Store::remove_cluster_member`] ends it).
    pub async fn set_cluster_member(
        &self,
        id: ClusterId,
        name: &str,
        from: MemberState,
        node: Option<NodeId>,
        state: MemberState,
        reason: Option<&str>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE cluster_members SET node_id = $1, state = $2, reason = $3, updated_at = $4, \
             joined = CASE WHEN $2 = 'joined' THEN 1 ELSE joined END \
             WHERE cluster_id = $5 AND name = $6 AND state = $7 \
             AND (state <> 'leaving' OR $2 = 'leaving') \
             AND (COALESCE(node_id, '') <> COALESCE($1, '') OR state <> $2 OR COALESCE(reason, '') <> COALESCE($3, ''))",
        )
        .bind(node.map(|n| n.to_string()))
        .bind(state.as_str())
        .bind(reason.map(str::to_string))
        .bind(now())
        .bind(id.to_string())
        .bind(name.to_string())
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn remove_cluster_member(&self, id: ClusterId, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM cluster_members WHERE cluster_id = $1 AND name = $2")
            .bind(id.to_string())
            .bind(name.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
