//! The fabric: physical networks, switches (credentials sealed by the
//! service), networks with segments allocated from their physical network's
//! range, subnets with IPAM, ports, and the drift record of every switch
//! port tundrad manages (`switch_ports`: desired vs actual segment).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::fabric::{
    AllocationPool, FabricKind, FixedIp, Network, PhysicalNetwork, Port, PortBinding, Subnet, Switch, SwitchPortState,
};
use tundra_api::{NetworkId, NodeId, Page, PhysicalNetworkId, PortId, ProjectId, SecretId, SubnetId, SwitchId};

use crate::identity::check_revision;
use crate::secrets::{SecretRecord, put_secret_in};
use crate::sql::Sql;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Visibility, Write, event, fetch_in, get, json_col, now, parse_id,
    to_json, unique,
};

fn id_of<T: std::str::FromStr>(table: &'static str, row: &AnyRow, col: &str) -> Result<T> {
    parse_id(table, &get::<String>(row, col)?)
}

fn opt_id_of<T: std::str::FromStr>(table: &'static str, row: &AnyRow, col: &str) -> Result<Option<T>> {
    get::<Option<String>>(row, col)?.map(|s| parse_id(table, &s)).transpose()
}

fn kind_of(table: &'static str, s: &str) -> Result<FabricKind> {
    FabricKind::parse(s).ok_or_else(|| StoreError::Corrupt { table, what: format!("kind {s:?}") })
}

fn u32_of(row: &AnyRow, col: &str) -> Result<u32> {
    Ok(get::<i64>(row, col)? as u32)
}

fn opt_u32_of(row: &AnyRow, col: &str) -> Result<Option<u32>> {
    Ok(get::<Option<i64>>(row, col)?.map(|v| v as u32))
}

fn physical_network(row: &AnyRow) -> Result<PhysicalNetwork> {
    Ok(PhysicalNetwork {
        id: id_of("physical_networks", row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        kind: kind_of("physical_networks", &get::<String>(row, "kind")?)?,
        segment_range: [u32_of(row, "segment_min")?, u32_of(row, "segment_max")?],
        provisioning_segment: opt_u32_of(row, "provisioning_segment")?,
        mtu: u32_of(row, "mtu")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn switch(row: &AnyRow) -> Result<Switch> {
    Ok(Switch {
        id: id_of("switches", row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        physical_network_id: id_of("switches", row, "physical_network_id")?,
        dialect: get(row, "dialect")?,
        address: get(row, "address")?,
        username: get(row, "username")?,
        has_password: get::<Option<String>>(row, "password_secret")?.is_some(),
        has_private_key: get::<Option<String>>(row, "key_secret")?.is_some(),
        host_key: get(row, "host_key")?,
        max_sessions: u32_of(row, "max_sessions")?,
        min_interval_ms: u32_of(row, "min_interval_ms")?,
        last_error: get(row, "last_error")?,
        last_read_at: get(row, "last_read_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

/// Networks are read with their physical network's kind.
const NETWORKS: &str =
    "(SELECT n.*, pn.kind AS kind FROM networks n JOIN physical_networks pn ON pn.id = n.physical_network_id)";

fn network(row: &AnyRow) -> Result<Network> {
    Ok(Network {
        id: id_of("networks", row, "id")?,
        project_id: opt_id_of("networks", row, "project_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        physical_network_id: id_of("networks", row, "physical_network_id")?,
        kind: kind_of("networks", &get::<String>(row, "kind")?)?,
        segment: opt_u32_of(row, "segment")?,
        mtu: u32_of(row, "mtu")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

fn subnet(row: &AnyRow) -> Result<Subnet> {
    Ok(Subnet {
        id: id_of("subnets", row, "id")?,
        project_id: opt_id_of("subnets", row, "project_id")?,
        network_id: id_of("subnets", row, "network_id")?,
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

/// Ports are read with their switch port's drift record.
const PORTS: &str = "(SELECT p.*, s.name AS switch_name, sp.desired AS sp_desired, sp.actual AS sp_actual, \
     sp.state AS sp_state, sp.message AS sp_message, sp.checked_at AS sp_checked_at \
     FROM ports p LEFT JOIN switches s ON s.id = p.switch_id \
     LEFT JOIN switch_ports sp ON sp.switch_id = p.switch_id AND sp.port = p.switch_port)";

fn port(row: &AnyRow) -> Result<Port> {
    let binding = match (get::<Option<String>>(row, "switch_name")?, get::<Option<String>>(row, "switch_port")?) {
        (Some(switch), Some(switch_port)) => match get::<Option<String>>(row, "sp_state")? {
            Some(state) => Some(PortBinding {
                switch,
                switch_port,
                desired_segment: u32_of(row, "sp_desired")?,
                actual_segment: opt_u32_of(row, "sp_actual")?,
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
    let drift = binding.as_ref().and_then(drift_sentence);
    Ok(Port {
        id: id_of("ports", row, "id")?,
        project_id: id_of("ports", row, "project_id")?,
        network_id: id_of("ports", row, "network_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        fixed_ips: json_col("ports", row, "fixed_ips")?,
        node_id: opt_id_of("ports", row, "node_id")?,
        mac: get(row, "mac")?,
        auto: get::<i64>(row, "auto")? != 0,
        binding,
        drift,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

/// What a port's `drift` says, from its switch port's record (naming the
/// switch and port unless they were redacted for a project's eyes).
pub fn drift_sentence(b: &PortBinding) -> Option<String> {
    let seg = |s: Option<u32>| s.map(|v| format!("segment {v}")).unwrap_or_else(|| "no segment".into());
    let at = if b.switch.is_empty() {
        "its switch port".to_string()
    } else {
        format!("switch {} port {}", b.switch, b.switch_port)
    };
    match b.state {
        SwitchPortState::Drifted => Some(format!(
            "{at} is in {} but should be in segment {} (changed on the switch outside tundra)",
            seg(b.actual_segment),
            b.desired_segment
        )),
        SwitchPortState::Failed => Some(format!(
            "{at} could not be put in segment {}: {}",
            b.desired_segment,
            b.message.as_deref().unwrap_or("unknown error")
        )),
        _ => None,
    }
}

/// A port as a project member sees it: which switch and port it is bound
/// through (site detail) left out, also from `drift`.
pub fn redact_port(mut x: Port) -> Port {
    if let Some(b) = &mut x.binding {
        b.switch = String::new();
        b.switch_port = String::new();
        b.message = b.message.as_ref().map(|_| "the switch refused (site admins see its answer)".into());
        x.drift = drift_sentence(b);
    }
    x
}

/// A switch port's record as the fabric worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPortRecord {
    pub switch_id: SwitchId,
    pub port: String,
    pub desired: u32,
    pub actual: Option<u32>,
    pub state: SwitchPortState,
    pub message: Option<String>,
    pub checked_at: Option<String>,
    pub changed_at: String,
}

fn switch_port(row: &AnyRow) -> Result<SwitchPortRecord> {
    let state: String = get(row, "state")?;
    Ok(SwitchPortRecord {
        switch_id: id_of("switch_ports", row, "switch_id")?,
        port: get(row, "port")?,
        desired: u32_of(row, "desired")?,
        actual: opt_u32_of(row, "actual")?,
        state: SwitchPortState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt { table: "switch_ports", what: format!("state {state:?}") })?,
        message: get(row, "message")?,
        checked_at: get(row, "checked_at")?,
        changed_at: get(row, "changed_at")?,
    })
}

#[derive(Debug)]
pub struct NewPhysicalNetwork {
    pub name: String,
    pub description: String,
    pub kind: FabricKind,
    pub segment_range: [u32; 2],
    pub provisioning_segment: Option<u32>,
    pub mtu: u32,
}

/// A validated switch; credentials already sealed.
#[derive(Debug)]
pub struct NewSwitch {
    pub name: String,
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    pub dialect: String,
    pub address: String,
    pub username: String,
    pub password: Option<SecretRecord>,
    pub private_key: Option<SecretRecord>,
    pub host_key: String,
    pub max_sessions: u32,
    pub min_interval_ms: u32,
}

#[derive(Debug, Default)]
pub struct SwitchChanges {
    pub description: Option<String>,
    pub address: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretRecord>,
    pub private_key: Option<SecretRecord>,
    pub host_key: Option<String>,
    pub max_sessions: Option<u32>,
    pub min_interval_ms: Option<u32>,
}

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
}

#[derive(Debug)]
pub struct NewSubnet {
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub allocation_pools: Vec<AllocationPool>,
    pub dhcp: bool,
}

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

/// A network's kind and physical network, what binding needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantInfo {
    pub network: Network,
    pub physical_network: PhysicalNetwork,
    /// The port's current interface when it is already bound to this node.
    pub mac: Option<String>,
}

fn pool_range(p: &AllocationPool) -> Option<(u32, u32)> {
    let a: Ipv4Addr = p.start.parse().ok()?;
    let b: Ipv4Addr = p.end.parse().ok()?;
    Some((u32::from(a), u32::from(b)))
}

async fn subnet_in(w: &mut Write, id: SubnetId) -> Result<Subnet> {
    fetch_in(w, "subnets", "subnet", id.to_string(), subnet).await
}

/// Give `port` the addresses asked for (or one per subnet of `network`).
async fn allocate_ips(
    w: &mut Write,
    network: NetworkId,
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
            .map(|r| Ok(FixedIp { subnet_id: id_of("subnets", r, "id")?, address: None }))
            .collect::<Result<_>>()?,
    };
    let mut out = Vec::new();
    for (i, f) in asked.iter().enumerate() {
        let s = match subnet_in(w, f.subnet_id).await {
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
                let taken: BTreeSet<String> =
                    sqlx::query_scalar::<_, String>("SELECT address FROM port_ips WHERE subnet_id = $1")
                        .bind(s.id.to_string())
                        .fetch_all(&mut *w.tx)
                        .await?
                        .into_iter()
                        .collect();
                let free = s
                    .allocation_pools
                    .iter()
                    .filter_map(pool_range)
                    .flat_map(|(a, b)| a..=b)
                    .map(|v| Ipv4Addr::from(v).to_string())
                    .find(|a| !taken.contains(a));
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
    let ips = allocate_ips(w, p.network_id, id, p.fixed_ips.as_deref()).await?;
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

async fn port_in(w: &mut Write, id: PortId) -> Result<Port> {
    let row = sqlx::query(&format!("SELECT * FROM {PORTS} x WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound { noun: "port", id: id.to_string() })?;
    port(&row)
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
        let id: PortId = id_of("ports", &r, "id")?;
        if keep.contains(&id) {
            continue;
        }
        let project: ProjectId = id_of("ports", &r, "project_id")?;
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
    // ---- physical networks ----

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
        event(
            &mut w,
            actor,
            None,
            "physical_network",
            &id.to_string(),
            "created",
            json!({"name": p.name, "kind": p.kind.as_str(), "segment_range": p.segment_range}),
        )
        .await?;
        let out = fetch_in(&mut w, "physical_networks", "physical network", id.to_string(), physical_network).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn physical_network(&self, id: PhysicalNetworkId) -> Result<PhysicalNetwork> {
        self.fetch("physical_networks", "physical network", id.to_string(), physical_network).await
    }

    pub async fn list_physical_networks(&self, p: &ListParams) -> Result<Page<PhysicalNetwork>> {
        self.list("physical_networks", p, &Visibility::All, false, physical_network, |x| x.id.to_string()).await
    }

    pub async fn all_physical_networks(&self) -> Result<Vec<PhysicalNetwork>> {
        self.all("physical_networks", physical_network).await
    }

    pub async fn update_physical_network(
        &self,
        actor: &Actor,
        id: PhysicalNetworkId,
        description: Option<String>,
        if_match: Option<i64>,
    ) -> Result<PhysicalNetwork> {
        let mut w = self.write().await?;
        let cur = fetch_in(&mut w, "physical_networks", "physical network", id.to_string(), physical_network).await?;
        check_revision("physical network", &id.to_string(), cur.revision, if_match)?;
        sqlx::query(
            "UPDATE physical_networks SET description = $1, updated_at = $2, revision = revision + 1 WHERE id = $3",
        )
        .bind(description.clone().unwrap_or(cur.description))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        event(&mut w, actor, None, "physical_network", &id.to_string(), "updated", json!({"description": description}))
            .await?;
        let out = fetch_in(&mut w, "physical_networks", "physical network", id.to_string(), physical_network).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_physical_network(&self, actor: &Actor, id: PhysicalNetworkId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = fetch_in(&mut w, "physical_networks", "physical network", id.to_string(), physical_network).await?;
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

    // ---- switches ----

    pub async fn create_switch(&self, actor: &Actor, s: NewSwitch) -> Result<Switch> {
        let mut w = self.write().await?;
        let id = SwitchId::generate();
        for r in s.password.iter().chain(&s.private_key) {
            put_secret_in(&mut w, r).await?;
        }
        sqlx::query(
            "INSERT INTO switches (id, name, description, physical_network_id, dialect, address, username, password_secret, key_secret, host_key, \
             max_sessions, min_interval_ms, last_error, last_read_at, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, $13, $13, 1)",
        )
        .bind(id.to_string())
        .bind(s.name.clone())
        .bind(s.description)
        .bind(s.physical_network_id.to_string())
        .bind(s.dialect.clone())
        .bind(s.address.clone())
        .bind(s.username)
        .bind(s.password.as_ref().map(|r| r.id.to_string()))
        .bind(s.private_key.as_ref().map(|r| r.id.to_string()))
        .bind(s.host_key)
        .bind(s.max_sessions as i64)
        .bind(s.min_interval_ms as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a switch named {:?} exists; pick another name", s.name)))?;
        event(
            &mut w,
            actor,
            None,
            "switch",
            &id.to_string(),
            "created",
            json!({"name": s.name, "dialect": s.dialect, "address": s.address}),
        )
        .await?;
        let out = fetch_in(&mut w, "switches", "switch", id.to_string(), switch).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn switch(&self, id: SwitchId) -> Result<Switch> {
        self.fetch("switches", "switch", id.to_string(), switch).await
    }

    pub async fn list_switches(&self, p: &ListParams) -> Result<Page<Switch>> {
        self.list("switches", p, &Visibility::All, false, switch, |x| x.id.to_string()).await
    }

    pub async fn all_switches(&self) -> Result<Vec<Switch>> {
        self.all("switches", switch).await
    }

    /// The switch's sealed password and key (for tundrad's session only).
    pub async fn switch_secrets(&self, id: SwitchId) -> Result<(Option<SecretId>, Option<SecretId>)> {
        let row = sqlx::query("SELECT password_secret, key_secret FROM switches WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "switch", id: id.to_string() })?;
        Ok((opt_id_of("switches", &row, "password_secret")?, opt_id_of("switches", &row, "key_secret")?))
    }

    pub async fn update_switch(
        &self,
        actor: &Actor,
        id: SwitchId,
        c: SwitchChanges,
        if_match: Option<i64>,
    ) -> Result<Switch> {
        let mut w = self.write().await?;
        let cur = fetch_in(&mut w, "switches", "switch", id.to_string(), switch).await?;
        check_revision("switch", &id.to_string(), cur.revision, if_match)?;
        for r in c.password.iter().chain(&c.private_key) {
            put_secret_in(&mut w, r).await?;
        }
        if let Some(r) = &c.password {
            sqlx::query("UPDATE switches SET password_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        if let Some(r) = &c.private_key {
            sqlx::query("UPDATE switches SET key_secret = $1 WHERE id = $2")
                .bind(r.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query(
            "UPDATE switches SET description = $1, address = $2, username = $3, host_key = $4, max_sessions = $5, min_interval_ms = $6, \
             updated_at = $7, revision = revision + 1 WHERE id = $8",
        )
        .bind(c.description.clone().unwrap_or(cur.description))
        .bind(c.address.clone().unwrap_or(cur.address))
        .bind(c.username.clone().unwrap_or(cur.username))
        .bind(c.host_key.clone().unwrap_or(cur.host_key))
        .bind(c.max_sessions.unwrap_or(cur.max_sessions) as i64)
        .bind(c.min_interval_ms.unwrap_or(cur.min_interval_ms) as i64)
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        event(
            &mut w,
            actor,
            None,
            "switch",
            &id.to_string(),
            "updated",
            json!({"address": c.address, "username": c.username, "host_key": c.host_key, "password_changed": c.password.is_some(),
                   "private_key_changed": c.private_key.is_some(), "max_sessions": c.max_sessions, "min_interval_ms": c.min_interval_ms}),
        )
        .await?;
        let out = fetch_in(&mut w, "switches", "switch", id.to_string(), switch).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_switch(&self, actor: &Actor, id: SwitchId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = fetch_in(&mut w, "switches", "switch", id.to_string(), switch).await?;
        let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ports WHERE switch_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        if bound > 0 {
            return Err(StoreError::Conflict(format!(
                "switch {} carries {bound} bound port(s) of nodes; delete those nodes (or their networks) first",
                cur.name
            )));
        }
        let secrets = sqlx::query("SELECT password_secret, key_secret FROM switches WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let secrets: [Option<SecretId>; 2] =
            [opt_id_of("switches", &secrets, "password_secret")?, opt_id_of("switches", &secrets, "key_secret")?];
        sqlx::query("DELETE FROM switch_ports WHERE switch_id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        sqlx::query("DELETE FROM switches WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        for s in secrets.into_iter().flatten() {
            sqlx::query("DELETE FROM secrets WHERE id = $1").bind(s.to_string()).execute(&mut *w.tx).await?;
        }
        event(&mut w, actor, None, "switch", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    /// After a session: its failure (or none) and, for a read, when.
    pub async fn switch_session(&self, id: SwitchId, error: Option<String>, read: bool) -> Result<()> {
        if read {
            sqlx::query("UPDATE switches SET last_error = $1, last_read_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query("UPDATE switches SET last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    // ---- networks ----

    pub async fn create_network(&self, actor: &Actor, n: NewNetwork) -> Result<Network> {
        let mut w = self.write().await?;
        let pn = fetch_in(
            &mut w,
            "physical_networks",
            "physical network",
            n.physical_network_id.to_string(),
            physical_network,
        )
        .await?;
        let segment = match n.segment {
            SegmentChoice::Flat => None,
            SegmentChoice::Exactly(s) => Some(s),
            SegmentChoice::Next => {
                let used: BTreeSet<i64> =
                    sqlx::query_scalar::<_, Option<i64>>("SELECT segment FROM networks WHERE physical_network_id = $1")
                        .bind(pn.id.to_string())
                        .fetch_all(&mut *w.tx)
                        .await?
                        .into_iter()
                        .flatten()
                        .collect();
                let free = (pn.segment_range[0]..=pn.segment_range[1])
                    .find(|s| !used.contains(&(*s as i64)) && Some(*s) != pn.provisioning_segment);
                Some(free.ok_or_else(|| {
                    StoreError::NoCapacity(format!(
                        "no capacity: every segment of physical network {} ({}–{}) is in use; the site admin can widen its range",
                        pn.name, pn.segment_range[0], pn.segment_range[1]
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
        event(
            &mut w,
            actor,
            n.project_id,
            "network",
            &id.to_string(),
            "created",
            json!({"name": n.name, "physical_network": pn.name, "segment": segment}),
        )
        .await?;
        let out = network_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn network(&self, id: NetworkId) -> Result<Network> {
        let row = sqlx::query(&format!("SELECT * FROM {NETWORKS} x WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "network", id: id.to_string() })?;
        network(&row)
    }

    pub async fn list_networks(&self, p: &ListParams, v: &Visibility) -> Result<Page<Network>> {
        self.list(&format!("{NETWORKS} x"), p, v, true, network, |n| n.id.to_string()).await
    }

    pub async fn all_networks(&self) -> Result<Vec<Network>> {
        self.all(&format!("{NETWORKS} x"), network).await
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
        let cur = network_in(&mut w, id).await?;
        check_revision("network", &id.to_string(), cur.revision, if_match)?;
        let taken = "a network named {} exists in that scope; pick another name";
        let what = Named { table: "networks", noun: "network", project: cur.project_id, id: id.to_string(), taken };
        rename(&mut w, actor, what, (cur.name, cur.description), name, description).await?;
        let out = network_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_network(&self, actor: &Actor, id: NetworkId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = network_in(&mut w, id).await?;
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

    // ---- subnets ----

    pub async fn create_subnet(&self, actor: &Actor, s: NewSubnet) -> Result<Subnet> {
        let mut w = self.write().await?;
        let net = network_in(&mut w, s.network_id).await?;
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
        .bind(s.cidr.clone())
        .bind(s.gateway)
        .bind(to_json(&s.dns))
        .bind(to_json(&s.allocation_pools))
        .bind(s.dhcp as i64)
        .bind(now())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("network {} already has a subnet named {:?}; pick another name", net.name, s.name)))?;
        event(
            &mut w,
            actor,
            net.project_id,
            "subnet",
            &id.to_string(),
            "created",
            json!({"name": s.name, "cidr": s.cidr, "network": net.name}),
        )
        .await?;
        let out = subnet_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn subnet(&self, id: SubnetId) -> Result<Subnet> {
        self.fetch("subnets", "subnet", id.to_string(), subnet).await
    }

    pub async fn list_subnets(&self, p: &ListParams, v: &Visibility) -> Result<Page<Subnet>> {
        self.list("subnets", p, v, true, subnet, |s| s.id.to_string()).await
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
        let cur = subnet_in(&mut w, id).await?;
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
        event(
            &mut w,
            actor,
            cur.project_id,
            "subnet",
            &id.to_string(),
            "updated",
            json!({"name": name, "description": description, "dns": dns}),
        )
        .await?;
        let out = subnet_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_subnet(&self, actor: &Actor, id: SubnetId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = subnet_in(&mut w, id).await?;
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

    // ---- ports ----

    pub async fn create_port(&self, actor: &Actor, p: NewPort) -> Result<Port> {
        let mut w = self.write().await?;
        let id = insert_port(&mut w, actor, &p, false, None).await?;
        let out = port_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn port(&self, id: PortId) -> Result<Port> {
        let row = sqlx::query(&format!("SELECT * FROM {PORTS} x WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "port", id: id.to_string() })?;
        port(&row)
    }

    pub async fn list_ports(&self, p: &ListParams, v: &Visibility) -> Result<Page<Port>> {
        self.list(&format!("{PORTS} x"), p, v, false, port, |x| x.id.to_string()).await
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
        let mut q = Sql::new(&format!("SELECT * FROM {PORTS} x WHERE node_id IN ("));
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
        row.map(|r| Ok((id_of("ports", &r, "switch_id")?, get::<String>(&r, "switch_port")?))).transpose()
    }

    /// Every port bound to a node (the fabric worker).
    pub async fn bound_ports(&self) -> Result<Vec<Port>> {
        let rows = sqlx::query(&format!("SELECT * FROM {PORTS} x WHERE node_id IS NOT NULL ORDER BY id"))
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
        let cur = port_in(&mut w, id).await?;
        check_revision("port", &id.to_string(), cur.revision, if_match)?;
        let taken = "the project already has a port named {}; pick another name";
        let what = Named { table: "ports", noun: "port", project: Some(cur.project_id), id: id.to_string(), taken };
        rename(&mut w, actor, what, (cur.name, cur.description), name, description).await?;
        let out = port_in(&mut w, id).await?;
        w.commit().await?;
        Ok(out)
    }

    pub async fn delete_port(&self, actor: &Actor, id: PortId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = port_in(&mut w, id).await?;
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

    // ---- the drift record ----

    pub async fn switch_ports(&self) -> Result<Vec<SwitchPortRecord>> {
        let rows = sqlx::query("SELECT * FROM switch_ports ORDER BY switch_id, port").fetch_all(&self.pool).await?;
        rows.iter().map(switch_port).collect()
    }

    /// What tundrad wants `port` of `switch` in: a new wish (or a changed
    /// one) is `pending` until programmed; an unchanged one is left alone.
    /// Returns whether it changed.
    pub async fn want_switch_port(&self, switch: SwitchId, port: &str, desired: u32) -> Result<bool> {
        let t = now();
        let r = sqlx::query(
            "UPDATE switch_ports SET desired = $1, state = 'pending', message = NULL, changed_at = $2 \
             WHERE switch_id = $3 AND port = $4 AND desired <> $1",
        )
        .bind(desired as i64)
        .bind(t.clone())
        .bind(switch.to_string())
        .bind(port.to_string())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            return Ok(true);
        }
        let r = sqlx::query(
            "INSERT INTO switch_ports (switch_id, port, desired, actual, state, message, checked_at, changed_at) \
             SELECT $1, $2, $3, NULL, 'pending', NULL, NULL, $4 WHERE NOT EXISTS (SELECT 1 FROM switch_ports WHERE switch_id = $1 AND port = $2)",
        )
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Program these switch ports again (a repair): drifted, failed or in sync alike.
    pub async fn resync_switch_ports(&self, actor: &Actor, ports: &[(SwitchId, String)]) -> Result<u32> {
        let mut w = self.write().await?;
        let mut n = 0;
        for (s, p) in ports {
            let r = sqlx::query(
                "UPDATE switch_ports SET state = 'pending', message = NULL, changed_at = $1 WHERE switch_id = $2 AND port = $3",
            )
            .bind(now())
            .bind(s.to_string())
            .bind(p.clone())
            .execute(&mut *w.tx)
            .await?;
            if r.rows_affected() > 0 {
                n += 1;
                event(&mut w, actor, None, "switch", &s.to_string(), "port_resync", json!({"port": p})).await?;
            }
        }
        w.commit().await?;
        Ok(n)
    }

    /// The outcome of programming: applied only if the wish is still `desired`.
    pub async fn switch_port_programmed(
        &self,
        switch: SwitchId,
        port: &str,
        desired: u32,
        outcome: std::result::Result<Option<u32>, String>,
    ) -> Result<bool> {
        let (state, actual, message) = match &outcome {
            Ok(a) => (SwitchPortState::InSync, a.map(|a| a as i64), None),
            Err(m) => (SwitchPortState::Failed, None, Some(m.clone())),
        };
        let r = sqlx::query(
            "UPDATE switch_ports SET state = $1, message = $2, checked_at = $3, actual = CASE WHEN $4 = 1 THEN $5 ELSE actual END \
             WHERE switch_id = $6 AND port = $7 AND desired = $8 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(message)
        .bind(now())
        .bind(outcome.is_ok() as i64)
        .bind(actual)
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A programming attempt that will be retried: the port stays `pending`
    /// with why it is not done yet.
    pub async fn switch_port_retrying(&self, switch: SwitchId, port: &str, desired: u32, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE switch_ports SET message = $1 WHERE switch_id = $2 AND port = $3 AND desired = $4 AND state = 'pending'",
        )
        .bind(why.to_string())
        .bind(switch.to_string())
        .bind(port.to_string())
        .bind(desired as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What a read of the switch that began at `read_started` found:
    /// in-sync ports that differ become `drifted`, drifted ports put back by
    /// hand become `in_sync`. A port programmed (or read) after the read
    /// began is left alone: the read is older than what the record says.
    pub async fn switch_port_seen(
        &self,
        switch: SwitchId,
        port: &str,
        actual: Option<u32>,
        read_started: &str,
    ) -> Result<Option<SwitchPortState>> {
        let mut w = self.write().await?;
        let Some(row) = sqlx::query("SELECT * FROM switch_ports WHERE switch_id = $1 AND port = $2")
            .bind(switch.to_string())
            .bind(port.to_string())
            .fetch_optional(&mut *w.tx)
            .await?
        else {
            return Ok(None);
        };
        let cur = switch_port(&row)?;
        if cur.checked_at.as_deref().is_some_and(|c| c > read_started) {
            return Ok(Some(cur.state));
        }
        let state = match cur.state {
            SwitchPortState::InSync | SwitchPortState::Drifted if actual == Some(cur.desired) => {
                SwitchPortState::InSync
            }
            SwitchPortState::InSync | SwitchPortState::Drifted => SwitchPortState::Drifted,
            other => other, // pending and failed wait for programming or a repair
        };
        sqlx::query(
            "UPDATE switch_ports SET actual = $1, state = $2, checked_at = $3 WHERE switch_id = $4 AND port = $5",
        )
        .bind(actual.map(|a| a as i64))
        .bind(state.as_str())
        .bind(now())
        .bind(switch.to_string())
        .bind(port.to_string())
        .execute(&mut *w.tx)
        .await?;
        if state != cur.state {
            event(
                &mut w,
                &Actor::service(),
                None,
                "switch",
                &switch.to_string(),
                if state == SwitchPortState::Drifted { "port_drifted" } else { "port_back_in_sync" },
                json!({"port": port, "desired": cur.desired, "actual": actual}),
            )
            .await?;
        }
        w.commit().await?;
        Ok(Some(state))
    }

    /// Forget switch ports no machine interface is cabled to any more.
    pub async fn forget_switch_port(&self, switch: SwitchId, port: &str) -> Result<()> {
        sqlx::query("DELETE FROM switch_ports WHERE switch_id = $1 AND port = $2")
            .bind(switch.to_string())
            .bind(port.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A row whose name and description change (networks, ports).
struct Named {
    table: &'static str,
    noun: &'static str,
    project: Option<ProjectId>,
    id: String,
    /// The conflict message; `{}` is the name asked for.
    taken: &'static str,
}

/// Set a row's name and description (each kept when not given) and record it.
async fn rename(
    w: &mut Write,
    actor: &Actor,
    x: Named,
    cur: (String, String),
    name: Option<String>,
    description: Option<String>,
) -> Result<()> {
    let new_name = name.clone().unwrap_or(cur.0);
    sqlx::query(&format!(
        "UPDATE {} SET name = $1, description = $2, updated_at = $3, revision = revision + 1 WHERE id = $4",
        x.table
    ))
    .bind(new_name.clone())
    .bind(description.clone().unwrap_or(cur.1))
    .bind(now())
    .bind(x.id.clone())
    .execute(&mut *w.tx)
    .await
    .map_err(|e| unique(e, || x.taken.replace("{}", &format!("{new_name:?}"))))?;
    event(w, actor, x.project, x.noun, &x.id, "updated", json!({"name": name, "description": description})).await
}

async fn network_in(w: &mut Write, id: NetworkId) -> Result<Network> {
    let row = sqlx::query(&format!("SELECT * FROM {NETWORKS} x WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound { noun: "network", id: id.to_string() })?;
    network(&row)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(state: SwitchPortState, message: Option<&str>) -> Port {
        let b = PortBinding {
            switch: "leaf-1".into(),
            switch_port: "Te1/0/7".into(),
            desired_segment: 10,
            actual_segment: Some(55),
            state,
            message: message.map(String::from),
            checked_at: None,
        };
        Port {
            id: PortId::generate(),
            project_id: ProjectId::generate(),
            network_id: NetworkId::generate(),
            name: "p".into(),
            description: String::new(),
            fixed_ips: vec![],
            node_id: None,
            mac: None,
            auto: false,
            drift: drift_sentence(&b),
            binding: Some(b),
            created_at: String::new(),
            updated_at: String::new(),
            revision: 1,
        }
    }

    #[test]
    fn drift_names_the_switch_for_admins_only() {
        let p = port(SwitchPortState::Drifted, None);
        assert_eq!(
            p.drift.as_deref(),
            Some(
                "switch leaf-1 port Te1/0/7 is in segment 55 but should be in segment 10 (changed on the switch outside tundra)"
            )
        );
        let r = redact_port(p);
        assert_eq!(
            r.drift.as_deref(),
            Some("its switch port is in segment 55 but should be in segment 10 (changed on the switch outside tundra)")
        );
        let b = r.binding.unwrap();
        assert!(b.switch.is_empty() && b.switch_port.is_empty());
        let f = redact_port(port(SwitchPortState::Failed, Some("% Invalid input at leaf-1")));
        assert!(!f.drift.as_deref().unwrap().contains("leaf-1"), "{:?}", f.drift);
        assert!(redact_port(port(SwitchPortState::InSync, None)).drift.is_none());
    }
}
