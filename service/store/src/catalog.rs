//! Keypairs, flavors and images.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::catalog::{DiskFormat, Flavor, Image, ImageStatus, Keypair};
use tundra_api::ops::Work;
use tundra_api::{FlavorId, ImageId, KeypairId, OperationId, Page, ProjectId};

use crate::ops::{NewOperation, insert_operation};
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, now, parse_id, unique,
};

fn opt_project(table: &'static str, row: &AnyRow) -> Result<Option<ProjectId>> {
    get::<Option<String>>(row, "project_id")?.map(|p| parse_id(table, &p)).transpose()
}

fn scope(p: Option<ProjectId>) -> String {
    p.map(|p| p.to_string()).unwrap_or_else(|| "public".into())
}

fn keypair(row: &AnyRow) -> Result<Keypair> {
    Ok(Keypair {
        id: parse_id("keypairs", &get::<String>(row, "id")?)?,
        project_id: parse_id("keypairs", &get::<String>(row, "project_id")?)?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        public_key: get(row, "public_key")?,
        key_type: get(row, "key_type")?,
        fingerprint: get(row, "fingerprint")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const KEYPAIRS: Table<Keypair> = Table::new("keypairs", "keypair", keypair, |x| x.id.to_string());

fn flavor(row: &AnyRow) -> Result<Flavor> {
    let traits: String = get(row, "required_traits")?;
    Ok(Flavor {
        id: parse_id("flavors", &get::<String>(row, "id")?)?,
        project_id: opt_project("flavors", row)?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        resource_class: get(row, "resource_class")?,
        required_traits: serde_json::from_str(&traits)
            .map_err(|e| StoreError::Corrupt { table: "flavors", what: format!("required_traits: {e}") })?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const FLAVORS: Table<Flavor> = Table::new("flavors", "flavor", flavor, |x| x.id.to_string()).public();

fn image(row: &AnyRow) -> Result<Image> {
    let corrupt = |what: String| StoreError::Corrupt { table: "images", what };
    let fmt: String = get(row, "disk_format")?;
    let status: String = get(row, "status")?;
    Ok(Image {
        id: parse_id("images", &get::<String>(row, "id")?)?,
        project_id: opt_project("images", row)?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        disk_format: DiskFormat::parse(&fmt).ok_or_else(|| corrupt(format!("disk_format {fmt:?}")))?,
        sha256: get(row, "sha256")?,
        source_url: get(row, "source_url")?,
        status: ImageStatus::parse(&status).ok_or_else(|| corrupt(format!("status {status:?}")))?,
        size_bytes: get(row, "size_bytes")?,
        raw_sha256: get(row, "raw_sha256")?,
        error: get(row, "error")?,
        operation_id: get::<Option<String>>(row, "operation_id")?.map(|o| parse_id("images", &o)).transpose()?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const IMAGES: Table<Image> = Table::new("images", "image", image, |x| x.id.to_string()).public();

/// A validated keypair to store (the server parses the key).
#[derive(Debug)]
pub struct NewKeypair {
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub public_key: String,
    pub key_type: String,
    pub fingerprint: String,
}

/// A validated flavor to store.
#[derive(Debug)]
pub struct NewFlavor {
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub resource_class: String,
    pub required_traits: Vec<String>,
}

#[derive(Debug, Default)]
pub struct FlavorChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub required_traits: Option<Vec<String>>,
}

/// A validated image to store.
#[derive(Debug)]
pub struct NewImage {
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub disk_format: DiskFormat,
    pub sha256: String,
    pub source_url: Option<String>,
}

/// The outcome of an import that succeeded.
#[derive(Debug)]
pub struct ImageImported {
    pub size_bytes: i64,
    pub raw_sha256: String,
}

impl Store {
    pub async fn create_keypair(&self, actor: &Actor, k: NewKeypair) -> Result<Keypair> {
        let mut w = self.write().await?;
        let id = KeypairId::generate();
        let t = now();
        sqlx::query(
            "INSERT INTO keypairs (id, project_id, name, description, public_key, key_type, fingerprint, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)",
        )
        .bind(id.to_string())
        .bind(k.project_id.to_string())
        .bind(k.name.clone())
        .bind(k.description)
        .bind(k.public_key)
        .bind(k.key_type)
        .bind(k.fingerprint.clone())
        .bind(t)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("the project already has a keypair named {:?}; pick another name", k.name)))?;
        KEYPAIRS
            .commit(w, actor, Some(k.project_id), id, "created", json!({"name": k.name, "fingerprint": k.fingerprint}))
            .await
    }

    pub async fn keypair(&self, id: KeypairId) -> Result<Keypair> {
        KEYPAIRS.get(self, id).await
    }

    pub async fn list_keypairs(&self, p: &ListParams, v: &Visibility) -> Result<Page<Keypair>> {
        KEYPAIRS.list(self, p, v).await
    }

    pub async fn update_keypair(
        &self,
        actor: &Actor,
        id: KeypairId,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<Keypair> {
        let mut w = self.write().await?;
        let cur = KEYPAIRS.get_in(&mut w, id).await?;
        check_revision("keypair", &id.to_string(), cur.revision, if_match)?;
        sqlx::query("UPDATE keypairs SET description = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
            .bind(description.clone().unwrap_or(cur.description))
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        KEYPAIRS.commit(w, actor, Some(cur.project_id), id, "updated", json!({"description": description})).await
    }

    pub async fn delete_keypair(&self, actor: &Actor, id: KeypairId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = KEYPAIRS.get_in(&mut w, id).await?;
        sqlx::query("DELETE FROM keypairs WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, Some(cur.project_id), "keypair", &id.to_string(), "deleted", json!({"name": cur.name}))
            .await?;
        w.commit().await
    }

    pub async fn create_flavor(&self, actor: &Actor, f: NewFlavor) -> Result<Flavor> {
        let mut w = self.write().await?;
        let id = FlavorId::generate();
        let t = now();
        sqlx::query(
            "INSERT INTO flavors (id, project_id, scope, name, description, resource_class, required_traits, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)",
        )
        .bind(id.to_string())
        .bind(f.project_id.map(|p| p.to_string()))
        .bind(scope(f.project_id))
        .bind(f.name.clone())
        .bind(f.description)
        .bind(f.resource_class.clone())
        .bind(serde_json::to_string(&f.required_traits).expect("strings serialize"))
        .bind(t)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a flavor named {:?} already exists in that scope; pick another name", f.name)))?;
        FLAVORS
            .commit(
                w,
                actor,
                f.project_id,
                id,
                "created",
                json!({"name": f.name, "resource_class": f.resource_class, "required_traits": f.required_traits}),
            )
            .await
    }

    pub async fn flavor(&self, id: FlavorId) -> Result<Flavor> {
        FLAVORS.get(self, id).await
    }

    pub async fn list_flavors(&self, p: &ListParams, v: &Visibility) -> Result<Page<Flavor>> {
        FLAVORS.list(self, p, v).await
    }

    pub async fn update_flavor(
        &self,
        actor: &Actor,
        id: FlavorId,
        c: FlavorChanges,
        if_match: Option<i64>,
    ) -> Result<Flavor> {
        let mut w = self.write().await?;
        let cur = FLAVORS.get_in(&mut w, id).await?;
        check_revision("flavor", &id.to_string(), cur.revision, if_match)?;
        let name = c.name.clone().unwrap_or(cur.name.clone());
        sqlx::query(
            "UPDATE flavors SET name = $1, description = $2, required_traits = $3, updated_at = $4, revision = revision + 1 WHERE id = $5",
        )
        .bind(name.clone())
        .bind(c.description.clone().unwrap_or(cur.description))
        .bind(serde_json::to_string(c.required_traits.as_ref().unwrap_or(&cur.required_traits)).expect("strings serialize"))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a flavor named {name:?} already exists in that scope; pick another name")))?;
        FLAVORS
            .commit(
                w,
                actor,
                cur.project_id,
                id,
                "updated",
                json!({"name": c.name, "description": c.description, "required_traits": c.required_traits}),
            )
            .await
    }

    pub async fn delete_flavor(&self, actor: &Actor, id: FlavorId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = FLAVORS.get_in(&mut w, id).await?;
        sqlx::query("DELETE FROM flavors WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, cur.project_id, "flavor", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    /// Create an image record; with a `source_url` also its import
    /// operation, in one transaction (so an accepted import can never be lost).
    pub async fn create_image(&self, actor: &Actor, i: NewImage) -> Result<Image> {
        let mut w = self.write().await?;
        let id = ImageId::generate();
        let t = now();
        let op_id = match &i.source_url {
            Some(_) => {
                let op = NewOperation { project_id: i.project_id, work: Work::ImageImport { image_id: id } };
                Some(insert_operation(&mut w, actor, op).await?)
            }
            None => None,
        };
        let status = if op_id.is_some() { ImageStatus::Importing } else { ImageStatus::Queued };
        sqlx::query(
            "INSERT INTO images (id, project_id, scope, name, description, disk_format, sha256, source_url, status, operation_id, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1)",
        )
        .bind(id.to_string())
        .bind(i.project_id.map(|p| p.to_string()))
        .bind(scope(i.project_id))
        .bind(i.name.clone())
        .bind(i.description)
        .bind(i.disk_format.as_str().to_string())
        .bind(i.sha256.clone())
        .bind(i.source_url.clone())
        .bind(status.as_str().to_string())
        .bind(op_id.map(|o| o.to_string()))
        .bind(t)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("an image named {:?} already exists in that scope; pick another name", i.name)))?;
        IMAGES
            .commit(
                w,
                actor,
                i.project_id,
                id,
                "created",
                json!({"name": i.name, "disk_format": i.disk_format, "sha256": i.sha256, "source_url": i.source_url}),
            )
            .await
    }

    pub async fn image(&self, id: ImageId) -> Result<Image> {
        IMAGES.get(self, id).await
    }

    pub async fn list_images(&self, p: &ListParams, v: &Visibility) -> Result<Page<Image>> {
        IMAGES.list(self, p, v).await
    }

    pub async fn update_image(
        &self,
        actor: &Actor,
        id: ImageId,
        name: Option<String>,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<Image> {
        let mut w = self.write().await?;
        let cur = IMAGES.get_in(&mut w, id).await?;
        check_revision("image", &id.to_string(), cur.revision, if_match)?;
        let new_name = name.clone().unwrap_or(cur.name.clone());
        sqlx::query(
            "UPDATE images SET name = $1, description = $2, updated_at = $3, revision = revision + 1 WHERE id = $4",
        )
        .bind(new_name.clone())
        .bind(description.clone().unwrap_or(cur.description))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique(e, || format!("an image named {new_name:?} already exists in that scope; pick another name"))
        })?;
        IMAGES.commit(w, actor, cur.project_id, id, "updated", json!({"name": name, "description": description})).await
    }

    /// Move an image to `importing` for an upload; refuses unless it is
    /// queued or failed (an active image's bytes never change).
    pub async fn begin_image_upload(&self, actor: &Actor, id: ImageId) -> Result<Image> {
        let mut w = self.write().await?;
        let cur = IMAGES.get_in(&mut w, id).await?;
        if !matches!(cur.status, ImageStatus::Queued | ImageStatus::Error) {
            return Err(StoreError::Conflict(format!(
                "image {id} is {}; only queued or failed images take an upload — create a new image for new bytes",
                cur.status.as_str()
            )));
        }
        if let Some(p) = cur.project_id {
            // A project at its limit is told before it sends the bytes.
            crate::quotas::check(&mut w, p, crate::quotas::QuotaKind::ImageBytes, 1).await?;
        }
        sqlx::query("UPDATE images SET status = 'importing', error = NULL, updated_at = $1, revision = revision + 1 WHERE id = $2")
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        IMAGES.commit(w, actor, cur.project_id, id, "upload_started", json!({})).await
    }

    /// Record how an import ended: active with its raw size and digest, or
    /// error. Over the project's image quota it ends in error and answers
    /// `StoreError::Quota` (recorded all the same).
    pub async fn finish_image_import(
        &self,
        actor: &Actor,
        id: ImageId,
        outcome: std::result::Result<ImageImported, String>,
    ) -> Result<Image> {
        let mut w = self.write().await?;
        let cur = IMAGES.get_in(&mut w, id).await?;
        // The bytes count against the project's quota once they are known:
        // over it, the image fails (and the caller removes its bytes).
        let mut over_quota = None;
        if let (Ok(done), Some(p)) = (&outcome, cur.project_id) {
            let adding = done.size_bytes.max(0) as u64;
            if let Err(e) = crate::quotas::check(&mut w, p, crate::quotas::QuotaKind::ImageBytes, adding).await {
                over_quota = Some(e);
            }
        }
        let outcome = match &over_quota {
            Some(e) => Err(e.to_string()),
            None => outcome,
        };
        match &outcome {
            Ok(done) => {
                sqlx::query("UPDATE images SET status = 'active', size_bytes = $1, raw_sha256 = $2, error = NULL, updated_at = $3, revision = revision + 1 WHERE id = $4")
                    .bind(done.size_bytes)
                    .bind(done.raw_sha256.clone())
                    .bind(now())
                    .bind(id.to_string())
                    .execute(&mut *w.tx)
                    .await?;
                event(
                    &mut w,
                    actor,
                    cur.project_id,
                    "image",
                    &id.to_string(),
                    "imported",
                    json!({"size_bytes": done.size_bytes, "raw_sha256": done.raw_sha256}),
                )
                .await?;
            }
            Err(msg) => {
                sqlx::query("UPDATE images SET status = 'error', error = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
                    .bind(msg.clone())
                    .bind(now())
                    .bind(id.to_string())
                    .execute(&mut *w.tx)
                    .await?;
                event(&mut w, actor, cur.project_id, "image", &id.to_string(), "import_failed", json!({"error": msg}))
                    .await?;
            }
        }
        let out = IMAGES.get_in(&mut w, id).await?;
        w.commit().await?;
        match over_quota {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Delete an image — not while a deploy of it is unfinished (the agent
    /// is streaming it, or about to). A deploy starting reads the image row
    /// locked too (`machines::start_in`), so the two cannot interleave.
    pub async fn delete_image(&self, actor: &Actor, id: ImageId) -> Result<Image> {
        let mut w = self.write().await?;
        let cur = IMAGES.get_in(&mut w, id).await?;
        let deploys: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, input FROM operations WHERE kind = 'machine.deploy' AND state IN ('pending', 'running')",
        )
        .fetch_all(&mut *w.tx)
        .await?;
        for (op, input) in deploys {
            let deploying = serde_json::from_str::<Work>(&input)
                .is_ok_and(|work| matches!(work, Work::MachineDeploy { image, .. } if image.id == id));
            if deploying {
                return Err(StoreError::Conflict(format!(
                    "image {} is being deployed (operation {op}); delete it when the deploy has ended",
                    cur.name
                )));
            }
        }
        let templates: Vec<String> = sqlx::query_scalar(
            "SELECT name || ' version ' || CAST(version AS TEXT) FROM cluster_templates WHERE bundle_image_id = $1 ORDER BY name",
        )
        .bind(id.to_string())
        .fetch_all(&mut *w.tx)
        .await?;
        if !templates.is_empty() {
            return Err(StoreError::Conflict(format!(
                "image {} is the k3s bundle of cluster template(s) {}; delete those first",
                cur.name,
                templates.join(", ")
            )));
        }
        sqlx::query("DELETE FROM images WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, cur.project_id, "image", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await?;
        Ok(cur)
    }

    /// The import operation of an image, if any.
    pub async fn image_operation(&self, id: ImageId) -> Result<Option<OperationId>> {
        Ok(self.image(id).await?.operation_id)
    }
}

impl Store {
    /// Images stuck in `importing` whose import is not an unfinished
    /// operation (an upload cut off by a restart).
    pub async fn orphaned_importing_images(&self) -> Result<Vec<ImageId>> {
        let rows = sqlx::query(
            "SELECT i.id FROM images i WHERE i.status = 'importing' AND NOT EXISTS \
             (SELECT 1 FROM operations o WHERE o.id = i.operation_id AND o.state IN ('pending', 'running'))",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| parse_id("images", &get::<String>(r, "id")?)).collect()
    }

    /// Counts of images by status, for metrics.
    pub async fn image_status_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM images GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((get(r, "status")?, get(r, "n")?))).collect()
    }
}
