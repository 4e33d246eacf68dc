//! A node's networks: the request resolved into ports the project may use,
//! bound to machine interfaces by the fabric's rules
//! (`tundra_engine::fabric::bind`) inside the store's node transactions,
//! and the gate that keeps a deployed node `building` until its switch
//! ports read back in their networks' segments.

use std::collections::{BTreeMap, HashMap};

use tundra_api::fabric::{FabricKind, PhysicalNetwork, SwitchPortState};
use tundra_api::machines::Machine;
use tundra_api::nodes::{Node, NodeNetworkRequest, NodeStatus};
use tundra_api::{NodeId, ProjectId, SwitchId};
use tundra_engine::fabric::{Gate, Iface, PortSeen, Want, bind};
use tundra_store::{Actor, Binder, Bound, PortWant};

use crate::error::{Error, Result};
use crate::handle::Conductor;

/// A node's `networks` request, checked: each entry names one network the
/// project may use or one port of the project that is free (or already
/// this node's). Returns the wants and, per want, its physical network.
pub async fn resolve(
    c: &Conductor,
    project: ProjectId,
    node: Option<NodeId>,
    reqs: &[NodeNetworkRequest],
) -> Result<Vec<(PortWant, PhysicalNetwork)>> {
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let at = format!("/networks/{i}");
        let (want, network_id) = match (r.network_id, r.port_id) {
            (Some(n), None) => (PortWant::Network(n), n),
            (None, Some(p)) => {
                let port = c
                    .store()
                    .port(p)
                    .await
                    .map_err(|_| Error::invalid(&format!("{at}/port_id"), format!("port {p} does not exist")))?;
                if port.project_id != project {
                    return Err(Error::invalid(&format!("{at}/port_id"), format!("port {p} does not exist")));
                }
                if port.node_id.is_some() && port.node_id != node {
                    return Err(Error::invalid(
                        &format!("{at}/port_id"),
                        format!(
                            "port {} is used by another node; take it out of that node's networks first",
                            port.name
                        ),
                    ));
                }
                (PortWant::Port(p), port.network_id)
            }
            _ => return Err(Error::invalid(&at, "give exactly one of network_id and port_id")),
        };
        let net = match c.store().network(network_id).await {
            Ok(n) if n.project_id.is_none_or(|p| p == project) => n,
            _ => {
                return Err(Error::invalid(
                    &format!("{at}/network_id"),
                    format!("network {network_id} does not exist (or is another project's)"),
                ));
            }
        };
        let pn = c.store().physical_network(net.physical_network_id).await?;
        if pn.kind == FabricKind::Ethernet && net.segment.is_none() {
            return Err(Error::invalid(
                &at,
                format!(
                    "network {} is flat: a switch port has no VLAN to be put in; use a network with a segment",
                    net.name
                ),
            ));
        }
        if out.iter().any(|(w, _)| *w == want && matches!(w, PortWant::Port(_))) {
            return Err(Error::invalid(&at, "the same port twice"));
        }
        out.push((want, pn));
    }
    Ok(out)
}

/// The binder the store uses: tundrad's rules over the switches it knows.
pub async fn binder(c: &Conductor, wants: &[(PortWant, PhysicalNetwork)]) -> Result<Box<Binder<'static>>> {
    let switches = c.store().all_switches().await?;
    let physnets: HashMap<_, String> =
        c.store().all_physical_networks().await?.into_iter().map(|p| (p.id, p.name)).collect();
    let sw: Vec<(String, SwitchId, String)> = switches
        .iter()
        .map(|s| (s.name.clone(), s.id, physnets.get(&s.physical_network_id).cloned().unwrap_or_default()))
        .collect();
    let wants: Vec<(String, bool)> =
        wants.iter().map(|(_, p)| (p.name.clone(), p.kind == FabricKind::Ethernet)).collect();
    Ok(Box::new(move |m: &Machine, fixed: &[Option<String>]| {
        let names: BTreeMap<&str, &str> = sw.iter().map(|(n, _, p)| (n.as_str(), p.as_str())).collect();
        let ifaces: Vec<Iface> = m
            .interfaces
            .iter()
            .map(|i| Iface {
                mac: &i.mac,
                pxe: i.pxe,
                physical_network: i.physical_network.as_deref(),
                switch: i.switch.as_deref(),
                port: i.port.as_deref(),
            })
            .collect();
        let w: Vec<Want> = wants
            .iter()
            .zip(fixed)
            .map(|((p, eth), f)| Want { physical_network: p, ethernet: *eth, fixed_mac: f.as_deref() })
            .collect();
        let idx = bind(&ifaces, &w, &names)?;
        Ok(idx
            .into_iter()
            .zip(&w)
            .map(|(k, want)| {
                let i = &m.interfaces[k];
                let switch = if want.ethernet {
                    i.switch
                        .as_ref()
                        .and_then(|n| sw.iter().find(|(s, _, _)| s == n))
                        .map(|(_, id, _)| (*id, i.port.clone().unwrap_or_default()))
                } else {
                    None
                };
                Bound { mac: i.mac.clone(), switch }
            })
            .collect())
    }))
}

/// Change a node in place, in one transaction checked against `if_match`
/// (`Store::update_node`): its metadata, and/or its networks — ports that
/// stay keep their interface and addresses; every switch port of the node is
/// programmed again, which also repairs drift.
pub async fn update_node(
    c: &Conductor,
    actor: &Actor,
    n: &Node,
    metadata: Option<BTreeMap<String, String>>,
    networks: Option<Vec<(PortWant, PhysicalNetwork)>>,
    if_match: Option<i64>,
) -> Result<Node> {
    let binder = match &networks {
        Some(wants) => Some(binder(c, wants).await?),
        None => None,
    };
    let wants: Option<Vec<PortWant>> = networks.map(|ws| ws.into_iter().map(|(w, _)| w).collect());
    let changes = tundra_store::NodeChanges { metadata, networks: wants.as_deref().zip(binder.as_deref()) };
    let node = c.store().update_node(actor, n.id, changes, if_match).await?;
    if wants.is_some() {
        c.wakes().fabric.notify_one();
    }
    Ok(node)
}

/// Whether a deployed node's switch ports are in its networks' segments.
pub async fn gate(c: &Conductor, n: &Node) -> Result<Gate> {
    let mut seen = Vec::new();
    for p in c.store().node_ports(n.id).await? {
        let net = c.store().network(p.network_id).await?;
        seen.push(match (&p.binding, net.segment) {
            (Some(b), Some(want)) => PortSeen::Switch {
                want,
                desired: b.desired_segment,
                in_sync: b.state == SwitchPortState::InSync,
                // The node's reason is the project's to read: no switch names.
                failed: (b.state == SwitchPortState::Failed)
                    .then(|| format!("its switch port could not be put in segment {}", b.desired_segment)),
            },
            _ => PortSeen::Unmanaged,
        });
    }
    if n.status == NodeStatus::Building {
        c.wakes().fabric.notify_one();
    }
    Ok(tundra_engine::fabric::gate(&seen))
}

/// Whether a machine's switch ports are back on the provisioning segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    Ready,
    /// Not yet (being programmed, retried, or drifted): why.
    Wait(String),
    /// Programming failed again and again: why.
    Failed(String),
}

/// Failures in a row after which cleaning gives up on a port.
const HOME_FAILURES: i64 = 3;

/// Whether every switch port machine `m` is cabled to (on switches tundrad
/// manages, on physical networks with a provisioning segment) reads back on
/// that segment — what a machine must have before it is `available`, so the
/// next tenant cannot inherit the last one's VLAN.
pub async fn machine_ports_home(c: &Conductor, m: &Machine) -> Result<Home> {
    let switches = c.store().all_switches().await?;
    let physnets: HashMap<_, PhysicalNetwork> =
        c.store().all_physical_networks().await?.into_iter().map(|p| (p.id, p)).collect();
    let records = c.store().switch_ports().await?;
    for i in &m.interfaces {
        let (Some(name), Some(port)) = (&i.switch, &i.port) else { continue };
        let Some(s) = switches.iter().find(|s| &s.name == name) else { continue };
        let Some(home) = physnets.get(&s.physical_network_id).and_then(|p| p.provisioning_segment) else { continue };
        let r = records.iter().find(|r| r.switch_id == s.id && &r.port == port);
        let what = format!("switch port {port} of {name}");
        match r {
            Some(r) if r.desired == home && r.state == SwitchPortState::InSync && r.actual == Some(home) => {}
            Some(r) if r.desired == home && r.state == SwitchPortState::Failed && r.failures >= HOME_FAILURES => {
                return Ok(Home::Failed(format!(
                    "{what} could not be put back on the provisioning segment {home} ({} tries): {}",
                    r.failures,
                    r.message.as_deref().unwrap_or("no answer recorded")
                )));
            }
            Some(r) if r.state == SwitchPortState::Drifted => {
                return Ok(Home::Wait(format!(
                    "{what} reads back segment {:?}, not {home}: it was changed on the switch; sync it (POST /v1/switches/{}/sync)",
                    r.actual, s.id
                )));
            }
            _ => return Ok(Home::Wait(format!("waiting for {what} to read back on the provisioning segment {home}"))),
        }
    }
    Ok(Home::Ready)
}
