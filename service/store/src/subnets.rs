//! Subnets: IPv4 ranges of a network with a gateway, DNS servers and the
//! pools ports draw addresses from. A new subnet may not overlap another of
//! its network: checked inside the insert's transaction, with the network's
//! row locked, so two racing creates cannot both pass.

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::fabric::{AllocationPool, Subnet};
use tundra_api::{NetworkId, Page, SubnetId};

use tundra_engine::ipam::Cidr;

use crate::networks::NETWORKS;
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, check_revision, event, get, id_col, json_col, now,
    opt_id_col, to_json, unique,
};

fn subnet(row: &AnyRow) -> Result<Subnet> {
    Ok(Subnet {
        id: id_col("subnets", row, "id")?,
        project_id: opt_id_col("subnets", row, "project_id")?,
        network_id: id_col("subnets", row, "network_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        cidr: get(row, "cidr")?,
        gateway: get(row, "gateway")?,
        dns: json_col("subnets", row, "dns")?,
        allocation_pools: json_col("subnets", row, "allocation_pools")?,
        dhcp: get::<i64>(row, "dhcp")? != 0,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const SUBNETS: Table<Subnet> = Table::new("subnets", "subnet", subnet, |x| x.id.to_string()).public();

/// A subnet checked by `tundra_engine::ipam::subnet`.
#[derive(Debug)]
pub struct NewSubnet {
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    pub cidr: Cidr,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub allocation_pools: Vec<AllocationPool>,
    pub dhcp: bool,
}

impl Store {
    pub async fn create_subnet(&self, actor: &Actor, s: NewSubnet) -> Result<Subnet> {
        let mut w = self.write().await?;
        // The network's row is locked by this read: a racing create of
        // another subnet waits here and then sees this one.
        let net = NETWORKS.get_in(&mut w, s.network_id).await?;
        let existing: Vec<(String, String)> =
            sqlx::query("SELECT name, cidr FROM subnets WHERE network_id = $1 ORDER BY id")
                .bind(net.id.to_string())
                .fetch_all(&mut *w.tx)
                .await?
                .iter()
                .map(|r| Ok((get(r, "name")?, get(r, "cidr")?)))
                .collect::<Result<_>>()?;
        let named = existing.iter().map(|(n, c)| (n.as_str(), c.as_str()));
        if let Some((other, cidr)) = tundra_engine::ipam::overlapping(s.cidr, named) {
            return Err(StoreError::ConflictAt {
                pointer: "/cidr".into(),
                detail: format!("{} overlaps subnet {other} ({cidr}) of network {}", s.cidr, net.name),
            });
        }
        let id = SubnetId::generate();
        sqlx::query(
            "INSERT INTO subnets (id, project_id, network_id, name, description, cidr, gateway, dns, allocation_pools, dhcp, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1)",
        )
        .bind(id.to_string())
        .bind(net.project_id.map(|p| p.to_string()))
        .bind(net.id.to_string())
        .bind(s.name.clone())
        .bind(s.description)
        .bind(s.cidr.to_string())
        .bind(s.gateway)
        .bind(to_json(&s.dns))
        .bind(to_json(&s.allocation_pools))
        .bind(s.dhcp as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("network {} already has a subnet named {:?}; pick another name", net.name, s.name)))?;
        SUBNETS
            .commit(
                w,
                actor,
                net.project_id,
                id,
                "created",
                json!({"name": s.name, "cidr": s.cidr.to_string(), "network": net.name}),
            )
            .await
    }

    pub async fn subnet(&self, id: SubnetId) -> Result<Subnet> {
        SUBNETS.get(self, id).await
    }

    pub async fn list_subnets(&self, p: &ListParams, v: &Visibility) -> Result<Page<Subnet>> {
        SUBNETS.list(self, p, v).await
    }

    pub async fn subnets_of(&self, network: NetworkId) -> Result<Vec<Subnet>> {
        let rows = sqlx::query("SELECT * FROM subnets WHERE network_id = $1 ORDER BY id")
            .bind(network.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subnet).collect()
    }

    pub async fn update_subnet(
        &self,
        actor: &Actor,
        id: SubnetId,
        name: Option<String>,
        description: Option<String>,
        dns: Option<Vec<String>>,
        if_match: Option<i64>,
    ) -> Result<Subnet> {
        let mut w = self.write().await?;
        let cur = SUBNETS.get_in(&mut w, id).await?;
        check_revision("subnet", &id.to_string(), cur.revision, if_match)?;
        let new_name = name.clone().unwrap_or(cur.name.clone());
        sqlx::query("UPDATE subnets SET name = $1, description = $2, dns = $3, updated_at = $4, revision = revision + 1 WHERE id = $5")
            .bind(new_name.clone())
            .bind(description.clone().unwrap_or(cur.description))
            .bind(to_json(dns.as_ref().unwrap_or(&cur.dns)))
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| unique(e, || format!("the network already has a subnet named {new_name:?}; pick another name")))?;
        SUBNETS
            .commit(
                w,
                actor,
                cur.project_id,
                id,
                "updated",
                json!({"name": name, "description": description, "dns": dns}),
            )
            .await
    }

    pub async fn delete_subnet(&self, actor: &Actor, id: SubnetId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = SUBNETS.get_in(&mut w, id).await?;
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM port_ips WHERE subnet_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "subnet {} still has {used} address(es) held by ports; delete those ports first",
                cur.name
            )));
        }
        sqlx::query("DELETE FROM subnets WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, cur.project_id, "subnet", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }
}
