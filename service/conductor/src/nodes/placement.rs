//! Placing a node and claiming its machine: candidates from the machines,
//! the project's placement group, `tundra_engine::scheduler`'s ranking, then
//! `Store::create_node` — the first still-free machine of the ranking is
//! claimed, the node written holding it, its networks bound and its deploy
//! started, all in one transaction. Rebuilding an active node deploys a
//! new image onto the machine it holds (same name, address, ports and
//! mounts; no cleaning: the disk stays the project's). Deleting a node lets
//! go of nothing: the reconciler cleans its machine first.

use tundra_api::MachineId;
use tundra_api::catalog::{Flavor, Image, ImageStatus};
use tundra_api::machines::ProvisionState;
use tundra_api::nodes::{GroupPolicy, Node, NodeCreate, NodeStatus, Strategy};
use tundra_api::ops::{DeployImage, Work};
use tundra_engine::machine_states::{Event, next};
use tundra_engine::scheduler::{self, Candidate, Place};
use tundra_store::{Actor, AddressPool, NewNode, NewOperation, NodeStep};

use crate::error::{Error, Result};
use crate::fabric::binding;
use crate::handle::Conductor;
use crate::secrets::sha256_hex;

/// The address pool nodes draw from: the first provisioning network's `node_pool`.
fn address_pool(c: &Conductor) -> Option<AddressPool> {
    let n = c.settings().node_network.as_ref()?;
    let (first, last) = n.pool?;
    Some(AddressPool { network: "provisioning".into(), first, last, prefix: n.prefix })
}

fn place_of(l: &tundra_api::machines::Location) -> Place {
    Place { site: l.site.clone(), rack: l.rack.clone(), island: l.island.clone() }
}

/// What a deploy of `image` writes: its raw bytes' checksum and size.
fn deploy_image(image: &Image) -> Result<DeployImage> {
    let sha256 = image
        .raw_sha256
        .clone()
        .ok_or_else(|| Error::invalid("/image_id", format!("image {} has no stored bytes yet", image.name)))?;
    Ok(DeployImage { id: image.id, sha256, size_bytes: image.size_bytes.unwrap_or(0) })
}

/// Place `req` and claim its machine; start the deploy.
pub async fn create(c: &Conductor, actor: &Actor, req: NodeCreate, flavor: &Flavor, image: &Image) -> Result<Node> {
    let deploy = deploy_image(image)?;
    let user_data_sha256 = req.user_data.as_ref().map(|u| sha256_hex(u.as_bytes()));
    let wants = binding::resolve(c, req.project_id, None, &req.networks).await?;
    crate::shares::flows::check_mountable(c, req.project_id, &req.shares).await?;
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
        shares: req.shares,
    };
    // A project at its node quota hears so before any machine is looked at
    // (the claim's transaction checks again).
    c.store().check_quota(req.project_id, tundra_store::QuotaKind::Nodes, 1).await?;
    let _one_at_a_time = c.placement().lock().await;
    let candidates: Vec<Candidate> = c
        .store()
        .placement_candidates(&flavor.resource_class)
        .await?
        .into_iter()
        .map(|m| Candidate {
            id: m.id.to_string(),
            resource_class: flavor.resource_class.clone(),
            traits: m.traits,
            place: place_of(&m.location),
            free: m.free,
        })
        .collect();
    let p = &req.placement;
    let group = match (&p.group, p.policy) {
        (Some(g), Some(policy)) => {
            let members = c.store().group_nodes(new.project_id, g).await?;
            if let Some(other) = members.iter().find(|m| m.placement.policy != Some(policy)) {
                return Err(Error::invalid(
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
        .map_err(|e| Error::NoCapacity(format!("{e} — for flavor {} ({})", flavor.name, describe(&request))))?
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let pool = address_pool(c);
    let binder = binding::binder(c, &wants).await?;
    let wants: Vec<_> = wants.into_iter().map(|(w, _)| w).collect();
    let claimed = c
        .store()
        .create_node(actor, &new, &ranked, pool.as_ref(), (&wants, &*binder), |mid, nid| NewOperation {
            project_id: Some(new.project_id),
            work: Work::MachineDeploy { machine_id: mid, image: deploy.clone(), node_id: Some(nid) },
        })
        .await?
        .ok_or_else(|| {
            Error::NoCapacity(format!(
                "no capacity: the {} machine(s) that fit were claimed by other nodes meanwhile",
                ranked.len()
            ))
        })?;
    drop(_one_at_a_time);
    if !new.shares.is_empty() {
        c.wakes().shares.notify_one(); // its mounts' rules, recorded with it
    }
    tracing::info!(node = %claimed.node.name, machine = %claimed.machine.name, operation = %claimed.operation_id, "node placed; deploying");
    c.wakes().netboot.notify_one();
    c.run(claimed.operation_id).await?;
    Ok(claimed.node)
}

/// Rebuild active node `n` in place with `image` (its own, to reinstall
/// it): the machine it holds is deployed again — the agent writes the image
/// and a fresh config drive (a new metadata token) — while the node keeps
/// its name, address, ports and mounts. The node is `building` until the
/// deploy ends and its switch ports are back (the reconciler's usual
/// path); a failed rebuild leaves it `error`, its machine cleaned. (A
/// cluster's node is not rebuilt: its cluster replaces members; callers
/// check `clusters::flows::check_node_removable`.)
pub async fn rebuild(c: &Conductor, actor: &Actor, n: &Node, image: &Image) -> Result<Node> {
    if image.project_id.is_some_and(|p| p != n.project_id) {
        return Err(Error::invalid("/image_id", format!("no image {} is public or in the node's project", image.id)));
    }
    if image.status != ImageStatus::Active {
        return Err(Error::invalid(
            "/image_id",
            format!("image {} is {}; wait until it is active", image.name, image.status.as_str()),
        ));
    }
    let deploy = deploy_image(image)?;
    let to = next(ProvisionState::Active, Event::Deploy).map_err(|e| Error::Internal(e.to_string()))?;
    let machine_id = n.machine_id.ok_or_else(|| Error::conflict(format!("node {} holds no machine", n.name)))?;
    let op = NewOperation {
        project_id: Some(n.project_id),
        work: Work::MachineDeploy { machine_id, image: deploy, node_id: Some(n.id) },
    };
    let out = c.store().rebuild_node(actor, n.id, to, image.id, op).await?;
    let op_id = out.operation_id.ok_or_else(|| Error::Internal("a rebuild without its operation".into()))?;
    tracing::info!(node = %n.name, image = %image.name, operation = %op_id, "rebuilding the node");
    c.wakes().netboot.notify_one();
    c.wakes().nodes.notify_one();
    c.run(op_id).await?;
    Ok(out)
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
pub async fn delete(c: &Conductor, actor: &Actor, n: &Node) -> Result<Option<Node>> {
    if n.machine_id.is_none() {
        c.store().remove_node(actor, n.id).await?;
        c.wakes().netboot.notify_one();
        return Ok(None);
    }
    if n.status == NodeStatus::Deleting {
        return Ok(Some(n.clone()));
    }
    let out = c
        .store()
        .node_step(
            actor,
            n.id,
            NodeStep {
                from: n.status,
                to: NodeStatus::Deleting,
                reason: Some("cleaning its machine".into()),
                release: false,
                operation: n.operation_id,
                revision: None,
            },
        )
        .await?;
    c.wakes().nodes.notify_one();
    Ok(Some(out))
}
