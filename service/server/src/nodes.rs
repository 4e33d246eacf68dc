//! Node work: placing and claiming (`create`), the config drive and
//! metadata a node gets (`drive_files`), and the reconciler that carries the
//! decisions of `tundra_engine::nodes::reconcile` out — active when the
//! deploy ends, failure → cleaning, delete → abort / cleaning → gone.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;
use tundra_api::catalog::{Flavor, Image};
use tundra_api::machines::Machine;
use tundra_api::nodes::{GroupPolicy, Node, NodeCreate, NodeStatus, Strategy};
use tundra_api::{MachineId, NodeId};
use tundra_engine::fabric::Gate;
use tundra_engine::machine_states::{Event, State, next};
use tundra_engine::nodes::{DriveInput, Link, MachineSeen, Status, Step, reconcile};
use tundra_engine::scheduler::{self, Candidate, Place};
use tundra_store::{Actor, AddressPool, NewNode, NewOperation, NodeStep};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The address pool nodes draw from: the first provisioning network's `node_pool`.
pub fn address_pool(state: &AppState) -> Option<AddressPool> {
    let n = state.config.provisioning_networks.first()?;
    let (first, last) = n.node_pool().ok().flatten()?;
    Some(AddressPool { network: "provisioning".into(), first, last, prefix: n.prefix() })
}

fn place_of(l: &tundra_api::machines::Location) -> Place {
    Place { site: l.site.clone(), rack: l.rack.clone(), island: l.island.clone() }
}

/// Place `req` and claim its machine; start the deploy.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    req: NodeCreate,
    flavor: &Flavor,
    image: &Image,
) -> ApiResult<Node> {
    let raw_sha256 = image
        .raw_sha256
        .clone()
        .ok_or_else(|| ApiError::field("/image_id", format!("image {} has no stored bytes yet", image.name)))?;
    let user_data_sha256 = req.user_data.as_ref().map(|u| crate::auth::sha256_hex(u.as_bytes()));
    let wants = crate::fabric::resolve(state, req.project_id, None, &req.networks).await?;
    let new = NewNode {
        project_id: req.project_id,
        name: req.name,
        flavor_id: flavor.id,
        image_id: image.id,
        keypair_id: req.keypair_id,
        user_data: req.user_data,
        user_data_sha256,
        metadata: req.metadata,
        placement: req.placement.clone(),
    };
    let _one_at_a_time = state.placement.lock().await;
    let machines = state.store.all_machines().await?;
    let candidates: Vec<Candidate> = machines
        .iter()
        .map(|m| Candidate {
            id: m.id.to_string(),
            resource_class: m.resource_class.clone(),
            traits: m.traits.clone(),
            place: place_of(&m.location),
            free: m.provision_state == "available" && !m.maintenance && m.operation_id.is_none(),
        })
        .collect();
    let p = &req.placement;
    let group = match (&p.group, p.policy) {
        (Some(g), Some(policy)) => {
            let members = state.store.group_nodes(new.project_id, g).await?;
            if let Some(other) = members.iter().find(|m| m.placement.policy != Some(policy)) {
                return Err(ApiError::field(
                    "/placement/policy",
                    format!(
                        "group {g:?} already has node {} with policy {}; a group has one policy",
                        other.name,
                        other.placement.policy.map(|p| p.as_str()).unwrap_or("none")
                    ),
                ));
            }
            let places = members
                .iter()
                .filter(|m| matches!(m.status, NodeStatus::Building | NodeStatus::Active) && m.machine_id.is_some())
                .map(|m| place_of(&m.location))
                .collect();
            Some(scheduler::Group {
                policy: match policy {
                    GroupPolicy::Affinity => scheduler::Policy::Affinity,
                    GroupPolicy::AntiAffinity => scheduler::Policy::AntiAffinity,
                },
                members: places,
            })
        }
        _ => None,
    };
    let request = scheduler::Request {
        resource_class: flavor.resource_class.clone(),
        traits: flavor.required_traits.clone(),
        site: p.site.clone(),
        rack: p.rack.clone(),
        island: p.island.clone(),
        group,
        strategy: match p.strategy {
            Some(Strategy::Spread) => scheduler::Strategy::Spread,
            _ => scheduler::Strategy::Pack,
        },
    };
    let ranked: Vec<MachineId> = scheduler::place(&request, &candidates)
        .map_err(|e| ApiError::NoCapacity(format!("{e} — for flavor {} ({})", flavor.name, describe(&request))))?
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let pool = address_pool(state);
    let (image_id, size) = (image.id, image.size_bytes.unwrap_or(0));
    let binder = crate::fabric::binder(state, &wants).await?;
    let wants: Vec<_> = wants.into_iter().map(|(w, _)| w).collect();
    let claimed = state
        .store
        .create_node(actor, &new, &ranked, pool.as_ref(), (&wants, &*binder), |mid, nid| NewOperation {
            project_id: Some(new.project_id),
            kind: "machine.deploy".into(),
            target_type: "machine".into(),
            target_id: mid.to_string(),
            input: json!({
                "action": "deploy", "from": "available", "image_id": image_id,
                "sha256": raw_sha256, "size_bytes": size, "node_id": nid,
            }),
        })
        .await?
        .ok_or_else(|| {
            ApiError::NoCapacity(format!(
                "no capacity: the {} machine(s) that fit were claimed by other nodes meanwhile",
                ranked.len()
            ))
        })?;
    drop(_one_at_a_time);
    tracing::info!(node = %claimed.node.name, machine = %claimed.machine.name, operation = %claimed.operation_id, "node placed; deploying");
    state.netboot_changed.notify_one();
    state.ops.spawn(state.store.operation_input(claimed.operation_id).await?).await;
    Ok(claimed.node)
}

/// What the request asked for, for "no capacity" messages.
fn describe(r: &scheduler::Request) -> String {
    let mut parts = vec![format!("resource class {:?}", r.resource_class)];
    if !r.traits.is_empty() {
        parts.push(format!("traits {:?}", r.traits));
    }
    for (k, v) in [("site", &r.site), ("rack", &r.rack), ("island", &r.island)] {
        if let Some(v) = v {
            parts.push(format!("{k} {v:?}"));
        }
    }
    if let Some(g) = &r.group {
        parts.push(format!("{:?} with {} member(s) placed", g.policy, g.members.len()));
    }
    parts.join(", ")
}

/// Delete a node: gone at once when it holds no machine; otherwise
/// `deleting` until its machine is cleaned. `None`: already gone.
pub async fn delete(state: &AppState, actor: &Actor, n: &Node) -> ApiResult<Option<Node>> {
    if n.machine_id.is_none() {
        state.store.remove_node(actor, n.id).await?;
        state.netboot_changed.notify_one();
        return Ok(None);
    }
    if n.status == NodeStatus::Deleting {
        return Ok(Some(n.clone()));
    }
    let out = state
        .store
        .node_step(
            actor,
            n.id,
            NodeStep {
                from: n.status,
                to: NodeStatus::Deleting,
                reason: Some("cleaning its machine".into()),
                release: false,
                operation: n.operation_id,
            },
        )
        .await?;
    state.nodes_changed.notify_one();
    Ok(Some(out))
}

/// The node reconciler: every `reconcile_interval`, and whenever a machine
/// operation ends.
pub async fn reconcile_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.reconcile_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.nodes_changed.notified() => {}
        }
        if let Err(e) = reconcile_once(&state).await {
            tracing::warn!(error = %e, "node reconciler failed");
        }
    }
}

pub(crate) fn status_of(s: NodeStatus) -> Status {
    match s {
        NodeStatus::Building => Status::Building,
        NodeStatus::Active => Status::Active,
        NodeStatus::Error => Status::Error,
        NodeStatus::Deleting => Status::Deleting,
    }
}

/// One pass over every node: the one step each needs now.
pub async fn reconcile_once(state: &AppState) -> Result<(), String> {
    let svc = Actor::service();
    // One read of the machines per pass (each step re-checks its rows in its own transaction).
    let mut machines: std::collections::HashMap<MachineId, Machine> =
        state.store.all_machines().await.map_err(|e| e.to_string())?.into_iter().map(|m| (m.id, m)).collect();
    for n in state.store.all_nodes().await.map_err(|e| e.to_string())? {
        let m = n.machine_id.and_then(|id| machines.remove(&id));
        let seen = m.as_ref().map(|m| MachineSeen {
            state: State::parse(&m.provision_state).unwrap_or(State::Error),
            busy: m.operation_id.is_some(),
            last_error: m.last_error.clone(),
        });
        let step = reconcile(status_of(n.status), seen.as_ref());
        let r = match (&step, &m) {
            (Step::Wait, _) => Ok(()),
            (Step::MarkActive, _) => match crate::fabric::gate(state, &n).await {
                Ok(Gate::Open) => state
                    .store
                    .node_step(&svc, n.id, NodeStep { from: n.status, to: NodeStatus::Active, reason: None, release: false, operation: None })
                    .await
                    .map(|_| tracing::info!(node = %n.name, "node active")),
                Ok(Gate::Wait) => Ok(()), // its switch ports are being moved
                Ok(Gate::Fail(why)) => state
                    .store
                    .node_step(&svc, n.id, NodeStep { from: n.status, to: NodeStatus::Error, reason: Some(format!("its network could not be set up: {why}")), release: false, operation: None })
                    .await
                    .map(|_| tracing::warn!(node = %n.name, reason = %why, "node's switch ports failed; its machine goes back through cleaning")),
                Err(e) => Err(e),
            },
            (Step::MarkError(why), _) => state
                .store
                .node_step(&svc, n.id, NodeStep { from: n.status, to: NodeStatus::Error, reason: Some(why.clone()), release: false, operation: None })
                .await
                .map(|_| tracing::warn!(node = %n.name, reason = %why, "node failed; its machine goes back through cleaning")),
            (Step::AbortDeploy, Some(m)) => match State::parse(&m.provision_state).map(|s| next(s, Event::Abort)) {
                Some(Ok(to)) => crate::machines::abort(state, &svc, m, to)
                    .await
                    .map(|_| ())
                    .map_err(|e| tundra_store::StoreError::Conflict(e.to_string())),
                _ => Ok(()), // not abortable yet (booting the agent): next pass
            },
            (Step::StartCleaning, Some(m)) => start_cleaning(state, &n, m).await,
            (Step::Release, _) => state
                .store
                .node_step(&svc, n.id, NodeStep { from: n.status, to: n.status, reason: n.status_reason.clone(), release: true, operation: None })
                .await
                .map(|_| ()),
            (Step::Remove, _) => {
                let r = state.store.remove_node(&svc, n.id).await;
                state.netboot_changed.notify_one();
                r.map(|_| tracing::info!(node = %n.name, "node deleted; its machine is cleaned"))
            }
            (_, None) => Ok(()),
        };
        match r {
            Ok(()) => {}
            // Someone (a delete, the worker) changed it meanwhile: next pass.
            Err(tundra_store::StoreError::Conflict(_)) => {}
            Err(e) => tracing::warn!(node = %n.name, error = %e, "node step failed"),
        }
    }
    Ok(())
}

/// Send a node's machine through delete → cleaning → available.
async fn start_cleaning(state: &AppState, n: &Node, m: &Machine) -> Result<(), tundra_store::StoreError> {
    if m.maintenance {
        return Ok(()); // an operator holds it; cleaning waits for them
    }
    let from = State::parse(&m.provision_state).unwrap_or(State::Error);
    let Ok(to) = next(from, Event::Delete) else { return Ok(()) };
    let op = NewOperation {
        project_id: Some(n.project_id),
        kind: "machine.delete".into(),
        target_type: "machine".into(),
        target_id: m.id.to_string(),
        input: json!({"action": "delete", "from": from.as_str(), "node_id": n.id}),
    };
    let op_id =
        state.store.node_machine_work(&Actor::service(), n.id, from.as_str(), to.as_str(), "delete", op).await?;
    tracing::info!(node = %n.name, machine = %m.name, operation = %op_id, "cleaning the node's machine");
    state.ops.spawn(state.store.operation_input(op_id).await?).await;
    Ok(())
}

/// The node a machine's deploy is for, from the operation's input.
pub fn node_of(input: &serde_json::Value) -> Option<NodeId> {
    input["node_id"].as_str()?.parse().ok()
}

/// The files of a node's config drive (and of the metadata service).
pub async fn drive_files(state: &AppState, n: &Node) -> Result<BTreeMap<String, String>, String> {
    let mut keys = Vec::new();
    if let Some(k) = n.keypair_id {
        let k = state.store.keypair(k).await.map_err(|e| format!("the node's keypair: {e}"))?;
        keys.push((k.name, k.public_key));
    }
    let net = state.config.provisioning_networks.first();
    let links = n
        .addresses
        .iter()
        .map(|a| Link {
            mac: a.mac.clone(),
            mtu: net.map(|n| n.mtu).unwrap_or(1500),
            network: a.network.clone(),
            address: a.address.as_deref().and_then(|ip| ip.parse().ok()).map(|ip| (ip, a.prefix.unwrap_or(24))),
            gateway: net.and_then(|n| n.router),
        })
        .collect::<Vec<_>>();
    let mut links = links;
    for port in state.store.node_ports(n.id).await.map_err(|e| e.to_string())? {
        let (Some(mac), net) =
            (port.mac.clone(), state.store.network(port.network_id).await.map_err(|e| e.to_string())?)
        else {
            continue;
        };
        // The first address with its subnet's prefix; a DHCP subnet leaves it to DHCP.
        let mut address = None;
        let mut gateway = None;
        if let Some(ip) = port.fixed_ips.first() {
            let s = state.store.subnet(ip.subnet_id).await.map_err(|e| e.to_string())?;
            let prefix = s.cidr.split_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(24);
            if !s.dhcp {
                address = ip.address.as_deref().and_then(|a| a.parse().ok()).map(|a| (a, prefix));
                gateway = s.gateway.as_deref().and_then(|g| g.parse().ok());
            }
        }
        links.push(Link { mac, mtu: net.mtu, network: net.name, address, gateway });
    }
    let mut seed = [0u8; 64];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| "no randomness for random_seed".to_string())?;
    let input = DriveInput {
        uuid: n.id.to_string(),
        name: n.name.clone(),
        project_id: n.project_id.to_string(),
        availability_zone: n.location.island.clone(),
        keys,
        metadata: n.metadata.clone(),
        user_data: state.store.node_user_data(n.id).await.map_err(|e| e.to_string())?,
        links,
        dns: net.map(|n| n.dns.clone()).unwrap_or_default(),
        random_seed: base64::engine::general_purpose::STANDARD.encode(seed),
    };
    Ok(tundra_engine::nodes::drive_files(&input))
}

/// The node holding `address` on a provisioning network (metadata service).
pub async fn node_at(state: &AppState, address: std::net::IpAddr) -> Result<Option<Node>, String> {
    let ip = address.to_string();
    let nodes = state.store.all_nodes().await.map_err(|e| e.to_string())?;
    Ok(nodes
        .into_iter()
        .find(|n| n.machine_id.is_some() && n.addresses.iter().any(|a| a.address.as_deref() == Some(ip.as_str()))))
}
