//! Ports: a project's attachment to a network, with addresses from its
//! subnets (`port_ips`: one holder per address), bound to a node's machine
//! interface and, through it, to a switch port. Binding a node's networks
//! happens inside the node's own transactions (`attach_ports`, `detach_ports`).

use serde_json::json;
use sqlx::any::AnyRow;
use std::collections::BTreeSet;

use tundra_api::fabric::{FixedIp, Port, PortBinding, SwitchPortState};
use tundra_api::{NetworkId, NodeId, Page, PortId, ProjectId, SwitchId};

use crate::sql::Sql;
use crate::subnets::SUBNETS;
use crate::table::Table;
use crate::{
    Actor, ListParams, Named, Result, Store, StoreError, Visibility, Write, check_revision, event, get, id_col,
    json_col, now, opt_id_col, opt_u32_col, rename, to_json, u32_col, unique,
};

/// Ports are read with their switch port's drift record.
const PORTS_VIEW: &str = "(SELECT p.*, s.name AS switch_name, sp.desired AS sp_desired, sp.actual AS sp_actual, \
     sp.state AS sp_state, sp.message AS sp_message, sp.checked_at AS sp_checked_at \
     FROM ports p LEFT JOIN switches s ON s.id = p.switch_id \
     LEFT JOIN switch_ports sp ON sp.switch_id = p.switch_id AND sp.port = p.switch_port)";

fn port(row: &AnyRow) -> Result<Port> {
    let binding = match (get::<Option<String>>(row, "switch_name")?, get::<Option<String>>(row, "switch_port")?) {
        (Some(switch), Some(switch_port)) => match get::<Option<String>>(row, "sp_state")? {
            Some(state) => Some(PortBinding {
                switch,
                switch_port,
                desired_segment: u32_col(row, "sp_desired")?,
                actual_segment: opt_u32_col(row, "sp_actual")?,
                state: SwitchPortState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt { table: "switch_ports", what: format!("state {state:?}") })?,
                message: get(row, "sp_message")?,
                checked_at: get(row, "sp_checked_at")?,
            }),
            None => Some(PortBinding {
                switch,
                switch_port,
                desired_segment: 0,
                actual_segment: None,
                state: SwitchPortState::Pending,
                message: None,
                checked_at: None,
            }),
        },
        _ => None,
    };
    Ok(Port {
        id: id_col("ports", row, "id")?,
        project_id: id_col("ports", row, "project_id")?,
        network_id: id_col("ports", row, "network_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        fixed_ips: json_col("ports", row, "fixed_ips")?,
        node_id: opt_id_col("ports", row, "node_id")?,
        mac: get(row, "mac")?,
        auto: get::<i64>(row, "auto")? != 0,
        binding,
        // What the binding means in words is the HTTP layer's (views).
        drift: None,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const PORTS: Table<Port> = Table::new("ports", "port", port, |x| x.id.to_string()).view(PORTS_VIEW);

#[derive(Debug)]
pub struct NewPort {
    pub project_id: ProjectId,
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    /// `None`: one address from each subnet of the network.
    pub fixed_ips: Option<Vec<FixedIp>>,
}

/// One entry of a node's `networks`: a network (tundrad makes the port) or a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortWant {
    Network(NetworkId),
    Port(PortId),
}

/// Which machine interface carries a node's port, and through which switch port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub mac: String,
    pub switch: Option<(SwitchId, String)>,
}

/// Give `port` the addresses asked for (or one per subnet of `network`):
/// each subnet row is locked first, so racing allocations take turns.
async fn allocate_ips(
    w: &mut Write,
    (project, network): (ProjectId, NetworkId),
    port: PortId,
    asked: Option<&[FixedIp]>,
) -> Result<Vec<FixedIp>> {
    let asked: Vec<FixedIp> = match asked {
        Some(a) => a.to_vec(),
        None => sqlx::query("SELECT id FROM subnets WHERE network_id = $1 ORDER BY id")
            .bind(network.to_string())
            .fetch_all(&mut *w.tx)
            .await?
            .iter()
            .map(|r| Ok(FixedIp { subnet_id: id_col("subnets", r, "id")?, address: None }))
            .collect::<Result<_>>()?,
    };
    crate::quotas::check(w, project, crate::quotas::QuotaKind::Addresses, asked.len() as u64).await?;
    let mut out = Vec::new();
    for (i, f) in asked.iter().enumerate() {
        let s = match SUBNETS.get_in(w, f.subnet_id).await {
            Ok(s) if s.network_id == network => s,
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(StoreError::Conflict(format!(
                    "fixed_ips/{i}: subnet {} is not a subnet of the port's network",
                    f.subnet_id
                )));
            }
            Err(e) => return Err(e),
        };
        let address = match &f.address {
            Some(a) => a.clone(),
            None => {
                let taken: BTreeSet<u32> =
                    sqlx::query_scalar::<_, String>("SELECT address FROM port_ips WHERE subnet_id = $1")
                        .bind(s.id.to_string())
                        .fetch_all(&mut *w.tx)
                        .await?
                        .iter()
                        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok().map(u32::from))
                        .collect();
                let free = tundra_engine::ipam::next_free(&s.allocation_pools, &taken).map(|a| a.to_string());
                free.ok_or_else(|| {
                    StoreError::NoCapacity(format!(
                        "no capacity: every address of subnet {} ({}) is taken; add an allocation pool or a subnet",
                        s.name, s.cidr
                    ))
                })?
            }
        };
        sqlx::query("INSERT INTO port_ips (subnet_id, address, port_id) VALUES ($1, $2, $3)")
            .bind(s.id.to_string())
            .bind(address.clone())
            .bind(port.to_string())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| unique(e, || format!("address {address} of subnet {} is taken; pick another", s.name)))?;
        out.push(FixedIp { subnet_id: s.id, address: Some(address) });
    }
    Ok(out)
}

async fn insert_port(
    w: &mut Write,
    actor: &Actor,
    p: &NewPort,
    auto: bool,
    bound: Option<(NodeId, &Bound, usize)>,
) -> Result<PortId> {
    let id = PortId::generate();
    let t = now();
    sqlx::query(
        "INSERT INTO ports (id, project_id, network_id, name, description, fixed_ips, node_id, mac, switch_id, switch_port, auto, position, created_at, updated_at, revision) \
         VALUES ($1, $2, $3, $4, $5, '[]', $6, $7, $8, $9, $10, $11, $12, $12, 1)",
    )
    .bind(id.to_string())
    .bind(p.project_id.to_string())
    .bind(p.network_id.to_string())
    .bind(p.name.clone())
    .bind(p.description.clone())
    .bind(bound.map(|b| b.0.to_string()))
    .bind(bound.map(|b| b.1.mac.clone()))
    .bind(bound.and_then(|b| b.1.switch.as_ref().map(|s| s.0.to_string())))
    .bind(bound.and_then(|b| b.1.switch.as_ref().map(|s| s.1.clone())))
    .bind(auto as i64)
    .bind(bound.map(|b| b.2 as i64).unwrap_or(0))
    .bind(t)
    .execute(&mut *w.tx)
    .await
    .map_err(|e| unique(e, || format!("the project already has a port named {:?}; pick another name", p.name)))?;
    let ips = allocate_ips(w, (p.project_id, p.network_id), id, p.fixed_ips.as_deref()).await?;
    sqlx::query("UPDATE ports SET fixed_ips = $1 WHERE id = $2")
        .bind(to_json(&ips))
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
    event(
        w,
        actor,
        Some(p.project_id),
        "port",
        &id.to_string(),
        "created",
        json!({"name": p.name, "network_id": p.network_id, "fixed_ips": ips, "node_id": bound.map(|b| b.0)}),
    )
    .await?;
    Ok(id)
}

/// Bind the node's wanted ports (in order) to `bound`: tundrad's own ports
/// are made, the project's ports are taken (they must be free and its own).
pub(crate) async fn attach_ports(
    w: &mut Write,
    actor: &Actor,
    project: ProjectId,
    node: (NodeId, &str),
    wants: &[PortWant],
    bound: &[Bound],
) -> Result<()> {
    let all: Vec<usize> = (0..wants.len()).collect();
    attach_ports_at(w, actor, project, node, wants, bound, &all).await
}

/// [`attach_ports`] for the wants at `which` only.
pub(crate) async fn attach_ports_at(
    w: &mut Write,
    actor: &Actor,
    project: ProjectId,
    node: (NodeId, &str),
    wants: &[PortWant],
    bound: &[Bound],
    which: &[usize],
) -> Result<()> {
    for &i in which {
        let (want, b) = (&wants[i], &bound[i]);
        match want {
            PortWant::Network(net) => {
                let p = NewPort {
                    project_id: project,
                    network_id: *net,
                    // Unique in the project whatever else the node had (UUIDv7's random tail).
                    name: format!("{}-{}", node.1, &PortId::generate().to_string()[24..]),
                    description: format!("node {}'s networks[{i}]", node.1),
                    fixed_ips: None,
                };
                insert_port(w, actor, &p, true, Some((node.0, b, i))).await?;
            }
            PortWant::Port(pid) => {
                let r = sqlx::query(
                    "UPDATE ports SET node_id = $1, mac = $2, switch_id = $3, switch_port = $4, position = $5, updated_at = $6, revision = revision + 1 \
                     WHERE id = $7 AND project_id = $8 AND (node_id IS NULL OR node_id = $1)",
                )
                .bind(node.0.to_string())
                .bind(b.mac.clone())
                .bind(b.switch.as_ref().map(|s| s.0.to_string()))
                .bind(b.switch.as_ref().map(|s| s.1.clone()))
                .bind(i as i64)
                .bind(now())
                .bind(pid.to_string())
                .bind(project.to_string())
                .execute(&mut *w.tx)
                .await
                .map_err(|e| unique(e, || format!("networks/{i}: the machine interface is taken; try again")))?;
                if r.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "networks/{i}: port {pid} is not a free port of the node's project; detach it from its node first"
                    )));
                }
                event(
                    w,
                    actor,
                    Some(project),
                    "port",
                    &pid.to_string(),
                    "bound",
                    json!({"node_id": node.0, "mac": b.mac}),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Let go of a node's ports: its own are deleted, the project's unbound.
pub(crate) async fn detach_ports(w: &mut Write, actor: &Actor, node: NodeId, keep: &[PortId]) -> Result<()> {
    let rows = sqlx::query("SELECT id, project_id, auto FROM ports WHERE node_id = $1")
        .bind(node.to_string())
        .fetch_all(&mut *w.tx)
        .await?;
    for r in rows {
        let id: PortId = id_col("ports", &r, "id")?;
        if keep.contains(&id) {
            continue;
        }
        let project: ProjectId = id_col("ports", &r, "project_id")?;
        if get::<i64>(&r, "auto")? != 0 {
            sqlx::query("DELETE FROM port_ips WHERE port_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
            sqlx::query("DELETE FROM ports WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
            event(w, actor, Some(project), "port", &id.to_string(), "deleted", json!({"node_id": node})).await?;
        } else {
            sqlx::query(
                "UPDATE ports SET node_id = NULL, mac = NULL, switch_id = NULL, switch_port = NULL, updated_at = $1, revision = revision + 1 WHERE id = $2",
            )
            .bind(now())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
            event(w, actor, Some(project), "port", &id.to_string(), "unbound", json!({"node_id": node})).await?;
        }
    }
    Ok(())
}

impl Store {
    pub async fn create_port(&self, actor: &Actor, p: NewPort) -> Result<Port> {
        let mut w = self.write().await?;
        let id = insert_port(&mut w, actor, &p, false, None).await?;
        let out = PORTS.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn port(&self, id: PortId) -> Result<Port> {
        PORTS.get(self, id).await
    }

    pub async fn list_ports(&self, p: &ListParams, v: &Visibility) -> Result<Page<Port>> {
        PORTS.list(self, p, v).await
    }

    /// A node's ports in the order of its `networks`.
    pub async fn node_ports(&self, node: NodeId) -> Result<Vec<Port>> {
        self.ports_of_nodes(&[node]).await
    }

    /// The ports of these nodes, each node's in the order of its `networks`.
    pub async fn ports_of_nodes(&self, nodes: &[NodeId]) -> Result<Vec<Port>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(&format!("SELECT * FROM {PORTS_VIEW} x WHERE node_id IN ("));
        for (i, n) in nodes.iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind(n.to_string());
        }
        q.push(") ORDER BY node_id, position");
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter().map(port).collect()
    }

    /// The switch port a port is bound through, if any.
    pub async fn port_switch(&self, id: PortId) -> Result<Option<(SwitchId, String)>> {
        let row = sqlx::query("SELECT switch_id, switch_port FROM ports WHERE id = $1 AND switch_id IS NOT NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((id_col("ports", &r, "switch_id")?, get::<String>(&r, "switch_port")?))).transpose()
    }

    /// Every port bound to a node (the fabric worker).
    pub async fn bound_ports(&self) -> Result<Vec<Port>> {
        let rows = sqlx::query(&format!("SELECT * FROM {PORTS_VIEW} x WHERE node_id IS NOT NULL ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(port).collect()
    }

    pub async fn update_port(
        &self,
        actor: &Actor,
        id: PortId,
        name: Option<String>,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<Port> {
        let mut w = self.write().await?;
        let cur = PORTS.get_in(&mut w, id).await?;
        check_revision("port", &id.to_string(), cur.revision, if_match)?;
        let taken = "the project already has a port named {}; pick another name";
        let what = Named { table: "ports", noun: "port", project: Some(cur.project_id), id: id.to_string(), taken };
        rename(&mut w, actor, what, (cur.name, cur.description), name, description).await?;
        let out = PORTS.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_port(&self, actor: &Actor, id: PortId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = PORTS.get_in(&mut w, id).await?;
        if let Some(n) = cur.node_id {
            return Err(StoreError::Conflict(format!(
                "port {} is used by node {n}; take it out of the node's networks first",
                cur.name
            )));
        }
        sqlx::query("DELETE FROM port_ips WHERE port_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        sqlx::query("DELETE FROM ports WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        event(&mut w, actor, Some(cur.project_id), "port", &id.to_string(), "deleted", json!({"name": cur.name}))
            .await?;
        w.commit().await
    }
}
