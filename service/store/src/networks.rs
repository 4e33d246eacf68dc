//! Networks: a segment (VLAN, partition key) of a physical network, the
//! next free one of its range unless a site admin names one; a project's, or
//! shared. `UNIQUE (physical_network_id, segment)` holds one network per
//! segment whatever races.

use serde_json::json;
use sqlx::any::AnyRow;
use std::collections::BTreeSet;

use tundra_api::fabric::Network;
use tundra_api::{NetworkId, Page, PhysicalNetworkId, ProjectId};

use crate::physical_networks::{PHYSICAL_NETWORKS, kind_of};
use crate::table::Table;
use crate::{
    Actor, ListParams, Named, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, now,
    opt_id_col, opt_u32_col, rename, u32_col, unique,
};

/// Networks are read with their physical network's kind.
const NETWORKS_VIEW: &str =
    "(SELECT n.*, pn.kind AS kind FROM networks n JOIN physical_networks pn ON pn.id = n.physical_network_id)";

fn network(row: &AnyRow) -> Result<Network> {
    Ok(Network {
        id: id_col("networks", row, "id")?,
        project_id: opt_id_col("networks", row, "project_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        physical_network_id: id_col("networks", row, "physical_network_id")?,
        kind: kind_of("networks", &get::<String>(row, "kind")?)?,
        segment: opt_u32_col(row, "segment")?,
        mtu: u32_col(row, "mtu")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const NETWORKS: Table<Network> =
    Table::new("networks", "network", network, |x| x.id.to_string()).public().view(NETWORKS_VIEW);

/// How a network gets its segment.
#[derive(Debug, Clone, Copy)]
pub enum SegmentChoice {
    /// The next free one of the physical network's range.
    Next,
    Exactly(u32),
    Flat,
}

#[derive(Debug)]
pub struct NewNetwork {
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    pub segment: SegmentChoice,
    pub mtu: Option<u32>,
    /// Segments freed after this time (a stored timestamp) are still in
    /// quarantine: not handed out, not to be asked for.
    pub quarantine_since: String,
}

impl Store {
    pub async fn create_network(&self, actor: &Actor, n: NewNetwork) -> Result<Network> {
        let mut w = self.write().await?;
        // Locked: racing creates take the next free segment in turn.
        let pn = PHYSICAL_NETWORKS.get_in(&mut w, n.physical_network_id).await?;
        if let Some(p) = n.project_id {
            crate::quotas::check(&mut w, p, crate::quotas::QuotaKind::Networks, 1).await?;
        }
        let quarantined: Vec<(i64, String)> = sqlx::query_as(
            "SELECT segment, freed_at FROM freed_segments WHERE physical_network_id = $1 AND freed_at > $2",
        )
        .bind(pn.id.to_string())
        .bind(n.quarantine_since.clone())
        .fetch_all(&mut *w.tx)
        .await?;
        let segment = match n.segment {
            SegmentChoice::Flat => None,
            SegmentChoice::Exactly(s) => {
                if let Some((_, at)) = quarantined.iter().find(|(q, _)| *q == s as i64) {
                    return Err(StoreError::ConflictAt {
                        pointer: "/segment".into(),
                        detail: format!(
                            "segment {s} of {} was freed at {at} and is in quarantine (segment_quarantine): a switch \
                             port still on it must not join a new network; pick another",
                            pn.name
                        ),
                    });
                }
                Some(s)
            }
            SegmentChoice::Next => {
                let mut used: BTreeSet<i64> =
                    sqlx::query_scalar::<_, Option<i64>>("SELECT segment FROM networks WHERE physical_network_id = $1")
                        .bind(pn.id.to_string())
                        .fetch_all(&mut *w.tx)
                        .await?
                        .into_iter()
                        .flatten()
                        .collect();
                used.extend(quarantined.iter().map(|(q, _)| *q));
                let free = (pn.segment_range[0]..=pn.segment_range[1])
                    .find(|s| !used.contains(&(*s as i64)) && Some(*s) != pn.provisioning_segment);
                Some(free.ok_or_else(|| {
                    StoreError::NoCapacity(format!(
                        "no capacity: every segment of physical network {} ({}–{}) is in use ({} freed ones in \
                         quarantine); the site admin can widen its range",
                        pn.name,
                        pn.segment_range[0],
                        pn.segment_range[1],
                        quarantined.len()
                    ))
                })?)
            }
        };
        let id = NetworkId::generate();
        sqlx::query(
            "INSERT INTO networks (id, project_id, scope, name, description, physical_network_id, segment, mtu, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)",
        )
        .bind(id.to_string())
        .bind(n.project_id.map(|p| p.to_string()))
        .bind(n.project_id.map(|p| p.to_string()).unwrap_or_else(|| "shared".into()))
        .bind(n.name.clone())
        .bind(n.description)
        .bind(pn.id.to_string())
        .bind(segment.map(|s| s as i64))
        .bind(n.mtu.unwrap_or(pn.mtu) as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            unique(e, || match segment {
                Some(s) => format!(
                    "a network named {:?} exists in that scope, or segment {s} of {} is taken; pick another",
                    n.name, pn.name
                ),
                None => format!("a network named {:?} exists in that scope; pick another name", n.name),
            })
        })?;
        NETWORKS
            .commit(
                w,
                actor,
                n.project_id,
                id,
                "created",
                json!({"name": n.name, "physical_network": pn.name, "segment": segment}),
            )
            .await
    }

    pub async fn network(&self, id: NetworkId) -> Result<Network> {
        NETWORKS.get(self, id).await
    }

    pub async fn list_networks(&self, p: &ListParams, v: &Visibility) -> Result<Page<Network>> {
        NETWORKS.list(self, p, v).await
    }

    pub async fn all_networks(&self) -> Result<Vec<Network>> {
        NETWORKS.all(self).await
    }

    pub async fn update_network(
        &self,
        actor: &Actor,
        id: NetworkId,
        name: Option<String>,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<Network> {
        let mut w = self.write().await?;
        let cur = NETWORKS.get_in(&mut w, id).await?;
        check_revision("network", &id.to_string(), cur.revision, if_match)?;
        let taken = "a network named {} exists in that scope; pick another name";
        let what = Named { table: "networks", noun: "network", project: cur.project_id, id: id.to_string(), taken };
        rename(&mut w, actor, what, (cur.name, cur.description), name, description).await?;
        let out = NETWORKS.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_network(&self, actor: &Actor, id: NetworkId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = NETWORKS.get_in(&mut w, id).await?;
        let ports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ports WHERE network_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if ports > 0 {
            return Err(StoreError::Conflict(format!(
                "network {} still has {ports} port(s); delete them (or the nodes using it) first",
                cur.name
            )));
        }
        sqlx::query("DELETE FROM subnets WHERE network_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        sqlx::query("DELETE FROM networks WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        if let Some(seg) = cur.segment {
            // Its segment rests before it is handed out again.
            sqlx::query(
                "INSERT INTO freed_segments (physical_network_id, segment, freed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (physical_network_id, segment) DO UPDATE SET freed_at = excluded.freed_at",
            )
            .bind(cur.physical_network_id.to_string())
            .bind(seg as i64)
            .bind(now())
            .execute(&mut *w.tx)
            .await?;
        }
        event(
            &mut w,
            actor,
            cur.project_id,
            "network",
            &id.to_string(),
            "deleted",
            json!({"name": cur.name, "segment": cur.segment}),
        )
        .await?;
        w.commit().await
    }
}
