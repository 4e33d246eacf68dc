//! Physical networks: the site's fabrics (ethernet or InfiniBand), each
//! with the segment range its networks draw from and, for ethernet, the
//! provisioning segment ports sit on while machines deploy or are cleaned.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::Page;
use tundra_api::PhysicalNetworkId;
use tundra_api::fabric::{FabricKind, PhysicalNetwork};

use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, now, opt_u32_col,
    u32_col, unique,
};

pub(crate) fn kind_of(table: &'static str, s: &str) -> Result<FabricKind> {
    FabricKind::parse(s).ok_or_else(|| StoreError::Corrupt { table, what: format!("kind {s:?}") })
}

pub(crate) fn physical_network(row: &AnyRow) -> Result<PhysicalNetwork> {
    Ok(PhysicalNetwork {
        id: id_col("physical_networks", row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        kind: kind_of("physical_networks", &get::<String>(row, "kind")?)?,
        segment_range: [u32_col(row, "segment_min")?, u32_col(row, "segment_max")?],
        provisioning_segment: opt_u32_col(row, "provisioning_segment")?,
        mtu: u32_col(row, "mtu")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const PHYSICAL_NETWORKS: Table<PhysicalNetwork> =
    Table::new("physical_networks", "physical network", physical_network, |x| x.id.to_string())
        .kind("physical_network");

#[derive(Debug)]
pub struct NewPhysicalNetwork {
    pub name: String,
    pub description: String,
    pub kind: FabricKind,
    pub segment_range: [u32; 2],
    pub provisioning_segment: Option<u32>,
    pub mtu: u32,
}

impl Store {
    pub async fn create_physical_network(&self, actor: &Actor, p: NewPhysicalNetwork) -> Result<PhysicalNetwork> {
        let mut w = self.write().await?;
        let id = PhysicalNetworkId::generate();
        sqlx::query(
            "INSERT INTO physical_networks (id, name, description, kind, segment_min, segment_max, provisioning_segment, mtu, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)",
        )
        .bind(id.to_string())
        .bind(p.name.clone())
        .bind(p.description)
        .bind(p.kind.as_str())
        .bind(p.segment_range[0] as i64)
        .bind(p.segment_range[1] as i64)
        .bind(p.provisioning_segment.map(|v| v as i64))
        .bind(p.mtu as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a physical network named {:?} exists; pick another name", p.name)))?;
        PHYSICAL_NETWORKS
            .commit(
                w,
                actor,
                None,
                id,
                "created",
                json!({"name": p.name, "kind": p.kind.as_str(), "segment_range": p.segment_range}),
            )
            .await
    }

    pub async fn physical_network(&self, id: PhysicalNetworkId) -> Result<PhysicalNetwork> {
        PHYSICAL_NETWORKS.get(self, id).await
    }

    pub async fn list_physical_networks(&self, p: &ListParams) -> Result<Page<PhysicalNetwork>> {
        PHYSICAL_NETWORKS.list(self, p, &Visibility::All).await
    }

    pub async fn all_physical_networks(&self) -> Result<Vec<PhysicalNetwork>> {
        PHYSICAL_NETWORKS.all(self).await
    }

    pub async fn update_physical_network(
        &self,
        actor: &Actor,
        id: PhysicalNetworkId,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<PhysicalNetwork> {
        let mut w = self.write().await?;
        let cur = PHYSICAL_NETWORKS.get_in(&mut w, id).await?;
        check_revision("physical network", &id.to_string(), cur.revision, if_match)?;
        sqlx::query(
            "UPDATE physical_networks SET description = $1, updated_at = $2, revision = revision + 1 WHERE id = $3",
        )
        .bind(description.clone().unwrap_or(cur.description))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        PHYSICAL_NETWORKS.commit(w, actor, None, id, "updated", json!({"description": description})).await
    }

    pub async fn delete_physical_network(&self, actor: &Actor, id: PhysicalNetworkId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = PHYSICAL_NETWORKS.get_in(&mut w, id).await?;
        sqlx::query("DELETE FROM physical_networks WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| {
                unique(e, || "unused".into()).conflict_or(format!(
                    "physical network {} still has switches or networks; delete them first",
                    cur.name
                ))
            })?;
        event(&mut w, actor, None, "physical_network", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }
}

trait ConflictOr {
    fn conflict_or(self, message: String) -> StoreError;
}

impl ConflictOr for StoreError {
    /// A reference violation as a conflict that says what to do.
    fn conflict_or(self, message: String) -> StoreError {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(message),
            e => e,
        }
    }
}
