//! Nodes. Creating one is one transaction with the claim of its machine and
//! its address: the node exists holding a machine that is `deploying`, or
//! nothing was written at all.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::fabric::AllocationPool;
use tundra_api::machines::{Machine, ProvisionState};
use tundra_api::nodes::{Node, NodeAddress, NodeStatus, Placement};
use tundra_api::shares::NodeShare;
use tundra_api::{FlavorId, ImageId, KeypairId, MachineId, NetworkId, NodeId, OperationId, Page, PortId, ProjectId};

use crate::machines::{MachineState, provision_state};
use crate::ops::NewOperation;
use crate::ports::{Bound, PortWant};
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, Write, check_revision, event, get, json_col, now,
    opt_id_col, parse_id, to_json, unique,
};

fn node_status(row: &AnyRow) -> Result<NodeStatus> {
    let status: String = get(row, "status")?;
    NodeStatus::parse(&status).ok_or_else(|| StoreError::Corrupt { table: "nodes", what: format!("status {status:?}") })
}

fn node(row: &AnyRow) -> Result<Node> {
    Ok(Node {
        id: parse_id("nodes", &get::<String>(row, "id")?)?,
        project_id: parse_id("nodes", &get::<String>(row, "project_id")?)?,
        name: get(row, "name")?,
        flavor_id: parse_id("nodes", &get::<String>(row, "flavor_id")?)?,
        image_id: parse_id("nodes", &get::<String>(row, "image_id")?)?,
        keypair_id: opt_id_col("nodes", row, "keypair_id")?,
        user_data_sha256: get(row, "user_data_sha256")?,
        metadata: json_col("nodes", row, "metadata")?,
        placement: json_col("nodes", row, "placement")?,
        status: node_status(row)?,
        status_reason: get(row, "status_reason")?,
        addresses: json_col("nodes", row, "addresses")?,
        networks: Vec::new(),
        drift: None,
        mounts: Vec::new(),
        location: json_col("nodes", row, "location")?,
        machine_id: opt_id_col("nodes", row, "machine_id")?,
        operation_id: opt_id_col("nodes", row, "operation_id")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const NODES: Table<Node> = Table::new("nodes", "node", node, |x| x.id.to_string());

/// A node's status and revision, and the machine it holds with that
/// machine's state: `None` when it holds none or the machine is gone
/// ([`Store::nodes_at_machines`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAtMachine {
    pub id: NodeId,
    pub status: NodeStatus,
    pub revision: i64,
    pub machine: Option<(MachineId, MachineState)>,
}

/// A node's event, in the caller's transaction.
async fn node_event(
    w: &mut Write,
    actor: &Actor,
    n: (ProjectId, NodeId),
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    event(w, actor, Some(n.0), "node", &n.1.to_string(), action, detail).await
}

/// A validated node to place.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub project_id: ProjectId,
    pub name: String,
    pub flavor_id: FlavorId,
    pub image_id: ImageId,
    pub keypair_id: Option<KeypairId>,
    pub user_data: Option<String>,
    pub user_data_sha256: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub placement: Placement,
    /// What it mounts, recorded with it (checked again here).
    pub shares: Vec<NodeShare>,
}

/// Addresses for nodes on one network: `[first, last]`, a prefix, and the
/// network's name.
#[derive(Debug, Clone)]
pub struct AddressPool {
    pub network: String,
    pub first: std::net::Ipv4Addr,
    pub last: std::net::Ipv4Addr,
    pub prefix: u8,
}

/// Binds a node's networks on a machine (interfaces already kept, per
/// want) — tundrad's rules (`tundra_engine::fabric::bind`), handed to the store.
pub type Binder<'a> = dyn Fn(&Machine, &[Option<String>]) -> std::result::Result<Vec<Bound>, String> + Send + Sync + 'a;

/// A node's move: from which status to which, why, whether it lets go of
/// its machine, and the operation now working on the machine.
#[derive(Debug, Clone)]
pub struct NodeStep {
    pub from: NodeStatus,
    pub to: NodeStatus,
    pub reason: Option<String>,
    pub release: bool,
    pub operation: Option<OperationId>,
    /// Only if the node is still at this revision: a decision made from
    /// what a pass read is not applied over a change made since (a rebuild
    /// started between the pass's reads).
    pub revision: Option<i64>,
}

/// What a claim made.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub node: Node,
    pub machine: Machine,
    pub operation_id: OperationId,
}

impl Store {
    /// Create node `n` on the first machine of `ranked` that is still free:
    /// in one transaction the machine moves to `deploying` held by the
    /// operation `op` makes, the node is written holding it (with an
    /// address from `pool` on the machine's boot interface), and the events
    /// are recorded. `Ok(None)`: every ranked machine was taken meanwhile.
    pub async fn create_node(
        &self,
        actor: &Actor,
        n: &NewNode,
        ranked: &[MachineId],
        pool: Option<&AddressPool>,
        networks: (&[PortWant], &Binder<'_>),
        op: impl Fn(MachineId, NodeId) -> NewOperation,
    ) -> Result<Option<Claimed>> {
        let mut unfit = None;
        for &mid in ranked {
            let mut w = self.write().await?;
            crate::quotas::check(&mut w, n.project_id, crate::quotas::QuotaKind::Nodes, 1).await?;
            let m = match crate::machines::MACHINES.get_in(&mut w, mid).await {
                Ok(m) => m,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if m.provision_state != ProvisionState::Available || m.operation_id.is_some() || m.maintenance {
                continue; // taken since placement looked; rolled back on drop
            }
            let bound = if networks.0.is_empty() {
                Vec::new()
            } else {
                match (networks.1)(&m, &vec![None; networks.0.len()]) {
                    Ok(b) => b,
                    Err(why) => {
                        // (A project reads this: the reason, not the machine.)
                        unfit = Some(why);
                        continue;
                    }
                }
            };
            let id = NodeId::generate();
            let mac = m.interfaces.iter().find(|i| i.pxe).or(m.interfaces.first()).map(|i| i.mac.clone());
            let mut addresses = Vec::new();
            if let (Some(pool), Some(mac)) = (pool, &mac) {
                let ip = free_address(&mut w, pool).await?.ok_or_else(|| {
                    StoreError::NoCapacity(format!(
                        "no capacity: every address of network {} ({}–{}) is taken; the site admin can widen node_pool",
                        pool.network, pool.first, pool.last
                    ))
                })?;
                addresses.push(NodeAddress {
                    network: pool.network.clone(),
                    mac: mac.clone(),
                    address: Some(ip.to_string()),
                    prefix: Some(pool.prefix),
                });
            } else if let Some(mac) = &mac {
                addresses.push(NodeAddress {
                    network: "provisioning".into(),
                    mac: mac.clone(),
                    address: None,
                    prefix: None,
                });
            }
            let t = now();
            sqlx::query(
                "INSERT INTO nodes (id, project_id, name, flavor_id, image_id, keypair_id, user_data, user_data_sha256, metadata, \
                 placement, group_name, status, status_reason, machine_id, addresses, location, operation_id, created_at, updated_at, revision) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'building', NULL, $12, $13, $14, NULL, $15, $15, 1)",
            )
            .bind(id.to_string())
            .bind(n.project_id.to_string())
            .bind(n.name.clone())
            .bind(n.flavor_id.to_string())
            .bind(n.image_id.to_string())
            .bind(n.keypair_id.map(|k| k.to_string()))
            .bind(n.user_data.clone())
            .bind(n.user_data_sha256.clone())
            .bind(to_json(&n.metadata))
            .bind(to_json(&n.placement))
            .bind(n.placement.group.clone())
            .bind(mid.to_string())
            .bind(to_json(&addresses))
            .bind(to_json(&m.location))
            .bind(t)
            .execute(&mut *w.tx)
            .await
            .map_err(|e| unique(e, || format!("the project already has a node named {:?}; pick another name", n.name)))?;
            for a in &addresses {
                if let Some(ip) = &a.address {
                    sqlx::query("INSERT INTO node_addresses (network, address, node_id) VALUES ($1, $2, $3)")
                        .bind(a.network.clone())
                        .bind(ip.clone())
                        .bind(id.to_string())
                        .execute(&mut *w.tx)
                        .await
                        .map_err(|e| unique(e, || format!("address {ip} was taken meanwhile; try again")))?;
                }
            }
            crate::ports::attach_ports(&mut w, actor, n.project_id, (id, &n.name), networks.0, &bound).await?;
            if !n.shares.is_empty() {
                let ip = addresses.iter().find_map(|a| a.address.clone());
                crate::shares::set_node_shares_in(&mut w, id, n.project_id, &n.shares, ip).await?;
            }
            let (machine, op_id) =
                crate::machines::start_in(&mut w, actor, &m, ProvisionState::Deploying, "deploy", op(mid, id)).await?;
            sqlx::query("UPDATE nodes SET operation_id = $1 WHERE id = $2")
                .bind(op_id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
            node_event(
                &mut w,
                actor,
                (n.project_id, id),
                "created",
                json!({"name": n.name, "machine": m.name, "operation_id": op_id, "addresses": addresses, "shares": n.shares}),
            )
            .await?;
            let node = NODES.get_in(&mut w, id).await?;
            w.commit().await?;
            return Ok(Some(Claimed { node, machine, operation_id: op_id }));
        }
        match unfit {
            Some(why) => Err(StoreError::NoCapacity(format!(
                "no capacity: no free machine can carry the node's networks ({why})"
            ))),
            None => Ok(None),
        }
    }

    /// Change a node in place, in one transaction checked against
    /// `if_match`: its metadata, and/or its networks — ports that stay (the
    /// same project port, or tundrad's port on the same network) keep their
    /// interface and addresses, the rest are let go and the new ones bound;
    /// every switch port of the node is then programmed again.
    pub async fn update_node(
        &self,
        actor: &Actor,
        id: NodeId,
        changes: NodeChanges<'_>,
        if_match: Option<i64>,
    ) -> Result<Node> {
        let mut w = self.write().await?;
        let n = NODES.get_in(&mut w, id).await?;
        check_revision("node", &n.name, n.revision, if_match)?;
        if let Some(metadata) = &changes.metadata {
            sqlx::query("UPDATE nodes SET metadata = $1 WHERE id = $2")
                .bind(to_json(metadata))
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
            node_event(&mut w, actor, (n.project_id, id), "updated", json!({"metadata": metadata})).await?;
        }
        if let Some((wants, bind)) = changes.networks {
            set_networks_in(&mut w, actor, &n, wants, bind).await?;
        }
        sqlx::query("UPDATE nodes SET updated_at = $1, revision = revision + 1 WHERE id = $2")
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        let out = NODES.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn node(&self, id: NodeId) -> Result<Node> {
        NODES.get(self, id).await
    }

    /// A deploy wrote a new metadata token on the node's config drive: keep its hash.
    pub async fn set_node_metadata_token(&self, id: NodeId, token_hash: &str) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE nodes SET metadata_token_hash = $1 WHERE id = $2")
            .bind(token_hash.to_string())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }

    /// The hash of the metadata token on the node's config drive (none before its first deploy).
    pub async fn node_metadata_token_hash(&self, id: NodeId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT metadata_token_hash FROM nodes WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    /// The user data given at create (for the config drive and the metadata service only).
    pub async fn node_user_data(&self, id: NodeId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT user_data FROM nodes WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    pub async fn list_nodes(&self, p: &ListParams, v: &Visibility) -> Result<Page<Node>> {
        NODES.list(self, p, v).await
    }

    /// The name and addresses of every node that holds a machine: the
    /// reservations network boot keeps, without reading whole nodes.
    pub async fn held_node_addresses(&self) -> Result<Vec<(String, Vec<NodeAddress>)>> {
        let rows = sqlx::query("SELECT name, addresses FROM nodes WHERE machine_id IS NOT NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((get(r, "name")?, json_col("nodes", r, "addresses")?))).collect()
    }

    /// Every node's status and revision with the state of the machine it
    /// holds, in one read: what the node reconciler decides from on every
    /// pass, without whole nodes or machines.
    pub async fn nodes_at_machines(&self) -> Result<Vec<NodeAtMachine>> {
        let rows = sqlx::query(
            "SELECT n.id, n.status, n.revision, m.id AS machine_id, m.provision_state, m.operation_id, m.last_error \
             FROM nodes n LEFT JOIN machines m ON m.id = n.machine_id ORDER BY n.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let machine = match opt_id_col("nodes", r, "machine_id")? {
                    None => None,
                    Some(id) => Some((
                        id,
                        MachineState {
                            provision_state: provision_state(r)?,
                            operation_id: opt_id_col("machines", r, "operation_id")?,
                            last_error: get(r, "last_error")?,
                        },
                    )),
                };
                Ok(NodeAtMachine {
                    id: parse_id("nodes", &get::<String>(r, "id")?)?,
                    status: node_status(r)?,
                    revision: get(r, "revision")?,
                    machine,
                })
            })
            .collect()
    }

    /// Every node, whole (switch-port steering, clusters and appliances).
    pub async fn all_nodes(&self) -> Result<Vec<Node>> {
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(node).collect()
    }

    /// The node with a machine that holds `address` (on any network), if one does.
    pub async fn node_at_address(&self, address: &str) -> Result<Option<Node>> {
        let row = sqlx::query(
            "SELECT n.* FROM nodes n JOIN node_addresses a ON a.node_id = n.id \
             WHERE a.address = $1 AND n.machine_id IS NOT NULL ORDER BY n.id LIMIT 1",
        )
        .bind(address.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(node).transpose()
    }

    /// The nodes of a project's placement group.
    pub async fn group_nodes(&self, project: ProjectId, group: &str) -> Result<Vec<Node>> {
        let rows = sqlx::query("SELECT * FROM nodes WHERE project_id = $1 AND group_name = $2 ORDER BY id")
            .bind(project.to_string())
            .bind(group.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node).collect()
    }

    /// Move a node along `step` (the reconciler and a delete may race: the
    /// node must still be in `step.from`).
    pub async fn node_step(&self, actor: &Actor, id: NodeId, step: NodeStep) -> Result<Node> {
        let NodeStep { from, to, reason, release, operation, revision } = step;
        let mut w = self.write().await?;
        let cur = NODES.get_in(&mut w, id).await?;
        if let Some(r) = revision
            && cur.revision != r
        {
            return Err(StoreError::Conflict(format!("node {} changed meanwhile; look again", cur.name)));
        }
        if cur.status != from {
            return Err(StoreError::Conflict(format!(
                "node {} is {}, not {}",
                cur.name,
                cur.status.as_str(),
                from.as_str()
            )));
        }
        let machine = if release { None } else { cur.machine_id.map(|m| m.to_string()) };
        sqlx::query(
            "UPDATE nodes SET status = $1, status_reason = $2, machine_id = $3, operation_id = $4, updated_at = $5, revision = revision + 1 WHERE id = $6",
        )
        .bind(to.as_str().to_string())
        .bind(reason.clone())
        .bind(machine)
        .bind(operation.map(|o| o.to_string()))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        if cur.status != to || release {
            node_event(&mut w, actor, (cur.project_id, id), "status_changed",
                json!({"from": cur.status.as_str(), "to": to.as_str(), "reason": reason, "released_machine": release.then_some(cur.machine_id).flatten()}),
            )
            .await?;
        }
        let out = NODES.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    /// Start work on a node's machine (cleaning, an abort) and record it on
    /// the node, in one transaction: the machine moves `from` → `to` held
    /// by a new operation only if it is still in `from` and free.
    pub async fn node_machine_work(
        &self,
        actor: &Actor,
        id: NodeId,
        from: ProvisionState,
        to: ProvisionState,
        verb: &str,
        op: NewOperation,
    ) -> Result<OperationId> {
        let mut w = self.write().await?;
        let n = NODES.get_in(&mut w, id).await?;
        let mid = n.machine_id.ok_or_else(|| StoreError::Conflict(format!("node {} holds no machine", n.name)))?;
        let m = crate::machines::MACHINES.get_in(&mut w, mid).await?;
        if m.provision_state != from || m.operation_id.is_some() {
            return Err(StoreError::Conflict(format!("machine {} is {} now", m.name, m.provision_state)));
        }
        let (_, op_id) = crate::machines::start_in(&mut w, actor, &m, to, verb, op).await?;
        sqlx::query("UPDATE nodes SET operation_id = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
            .bind(op_id.to_string())
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(op_id)
    }

    /// Rebuild an active node in place, in one transaction: its machine
    /// moves `active` → `to` (deploying) under `op` (a deploy of the new
    /// image), and the node becomes `building` with that image — same
    /// name, address, ports and mounts. Refused (conflict) unless the node
    /// is active and its machine active, free and not in maintenance.
    pub async fn rebuild_node(
        &self,
        actor: &Actor,
        id: NodeId,
        to: ProvisionState,
        image: ImageId,
        op: NewOperation,
    ) -> Result<Node> {
        let mut w = self.write().await?;
        let n = NODES.get_in(&mut w, id).await?;
        if n.status != NodeStatus::Active {
            return Err(StoreError::Conflict(format!(
                "node {} is {}; only an active node is rebuilt",
                n.name,
                n.status.as_str()
            )));
        }
        let mid = n.machine_id.ok_or_else(|| StoreError::Conflict(format!("node {} holds no machine", n.name)))?;
        let m = crate::machines::MACHINES.get_in(&mut w, mid).await?;
        if m.provision_state != ProvisionState::Active || m.operation_id.is_some() {
            return Err(StoreError::Conflict(format!(
                "node {}'s machine is {} now; rebuild it once it is active",
                n.name, m.provision_state
            )));
        }
        if m.maintenance {
            return Err(StoreError::Conflict(format!(
                "node {}'s machine is in maintenance; the site admin must clear it first",
                n.name
            )));
        }
        let (_, op_id) = crate::machines::start_in(&mut w, actor, &m, to, "deploy", op).await?;
        sqlx::query(
            "UPDATE nodes SET status = $1, status_reason = $2, image_id = $3, operation_id = $4, updated_at = $5, \
             revision = revision + 1 WHERE id = $6",
        )
        .bind(NodeStatus::Building.as_str())
        .bind("rebuilding".to_string())
        .bind(image.to_string())
        .bind(op_id.to_string())
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        node_event(
            &mut w,
            actor,
            (n.project_id, id),
            "rebuild",
            json!({"from_image": n.image_id, "to_image": image, "operation_id": op_id}),
        )
        .await?;
        let out = NODES.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    /// A node that holds no machine (or whose machine is cleaned) is gone.
    pub async fn remove_node(&self, actor: &Actor, id: NodeId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = NODES.get_in(&mut w, id).await?;
        sqlx::query("DELETE FROM node_addresses WHERE node_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        crate::ports::detach_ports(&mut w, actor, id, &[]).await?;
        crate::shares::drop_node_shares_in(&mut w, id).await?;
        sqlx::query("DELETE FROM nodes WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        node_event(
            &mut w,
            actor,
            (cur.project_id, id),
            "deleted",
            json!({"name": cur.name, "machine": cur.machine_id}),
        )
        .await?;
        w.commit().await
    }

    /// The node holding a machine, if any.
    pub async fn node_of_machine(&self, machine: MachineId) -> Result<Option<Node>> {
        let row = sqlx::query("SELECT * FROM nodes WHERE machine_id = $1")
            .bind(machine.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node).transpose()
    }
}

/// The lowest address of the pool no node holds.
async fn free_address(w: &mut Write, pool: &AddressPool) -> Result<Option<std::net::Ipv4Addr>> {
    let used: Vec<String> = sqlx::query_scalar("SELECT address FROM node_addresses WHERE network = $1")
        .bind(pool.network.clone())
        .fetch_all(&mut *w.tx)
        .await?;
    let used = used.iter().filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok().map(u32::from)).collect();
    let range = AllocationPool { start: pool.first.to_string(), end: pool.last.to_string() };
    Ok(tundra_engine::ipam::next_free(&[range], &used))
}

/// A node's change: what to set (`None`: leave as it is).
#[derive(Default)]
pub struct NodeChanges<'a> {
    pub metadata: Option<BTreeMap<String, String>>,
    /// The networks wanted, in order, and how to bind new ports to the machine's interfaces.
    pub networks: Option<(&'a [PortWant], &'a Binder<'a>)>,
}

/// Inside `update_node`'s transaction: replace node `n`'s networks.
async fn set_networks_in(w: &mut Write, actor: &Actor, n: &Node, wants: &[PortWant], bind: &Binder<'_>) -> Result<()> {
    let id = n.id;
    let mid = n.machine_id.ok_or_else(|| StoreError::Conflict(format!("node {} holds no machine", n.name)))?;
    let m = crate::machines::MACHINES.get_in(w, mid).await?;
    let rows = sqlx::query("SELECT id, network_id, auto, mac FROM ports WHERE node_id = $1 ORDER BY position")
        .bind(id.to_string())
        .fetch_all(&mut *w.tx)
        .await?;
    let mut current: Vec<(PortId, NetworkId, bool, Option<String>)> = Vec::new();
    for r in &rows {
        current.push((
            parse_id("ports", &get::<String>(r, "id")?)?,
            parse_id("ports", &get::<String>(r, "network_id")?)?,
            get::<i64>(r, "auto")? != 0,
            get(r, "mac")?,
        ));
    }
    let mut kept: Vec<Option<PortId>> = vec![None; wants.len()];
    let mut fixed: Vec<Option<String>> = vec![None; wants.len()];
    for (k, want) in wants.iter().enumerate() {
        let hit = current.iter().position(|(pid, net, auto, _)| {
            !kept.contains(&Some(*pid))
                && match want {
                    PortWant::Port(p) => p == pid,
                    PortWant::Network(nw) => *auto && nw == net,
                }
        });
        if let Some(i) = hit {
            kept[k] = Some(current[i].0);
            fixed[k] = current[i].3.clone();
        }
    }
    let keep: Vec<PortId> = kept.iter().flatten().copied().collect();
    crate::ports::detach_ports(w, actor, id, &keep).await?;
    let bound = bind(&m, &fixed).map_err(|why| StoreError::Conflict(format!("node {}'s machine: {why}", n.name)))?;
    for (k, p) in kept.iter().enumerate() {
        if let Some(p) = p {
            sqlx::query("UPDATE ports SET position = $1 WHERE id = $2")
                .bind(k as i64)
                .bind(p.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
    }
    let new: Vec<usize> = (0..wants.len()).filter(|k| kept[*k].is_none()).collect();
    crate::ports::attach_ports_at(w, actor, n.project_id, (id, &n.name), wants, &bound, &new).await?;
    sqlx::query(
        "UPDATE switch_ports SET state = 'pending', message = NULL, changed_at = $1 WHERE EXISTS \
         (SELECT 1 FROM ports p WHERE p.node_id = $2 AND p.switch_id = switch_ports.switch_id AND p.switch_port = switch_ports.port)",
    )
    .bind(now())
    .bind(id.to_string())
    .execute(&mut *w.tx)
    .await?;
    node_event(
        w,
        actor,
        (n.project_id, id),
        "networks_set",
        json!({"networks": wants.iter().map(|x| match x {
        PortWant::Network(nw) => json!({"network_id": nw}),
        PortWant::Port(p) => json!({"port_id": p}),
    }).collect::<Vec<_>>()}),
    )
    .await?;
    Ok(())
}
