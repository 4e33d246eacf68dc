//! The cluster reconciler: every `reconcile_interval`, and whenever a node
//! or a cluster changes, each cluster takes the steps its rows ask for now:
//!
//! - each member follows its node (deploying → joining once the node is
//!   active; failed with the node's reason when its deploy fails), and a
//!   member without a node gets one — found by name if a pass was cut off
//!   after making it, else placed now;
//! - each group grows to its count with new members, or gives up the ones
//!   `tundra_engine::clusters::scale_down` picks (they are `leaving`);
//! - a leaving member's node is deleted (its machine cleaned) once the
//!   control plane has removed it, or at once when it never joined or
//!   failed, or when the whole cluster is going;
//! - the cluster is judged (`tundra_engine::clusters::status`) and the
//!   judgement written when it changed; a deleted cluster goes when its
//!   last member has.
//!
//! Level-triggered: every step reads the rows as they are, so a restart or
//! a missed wake-up changes nothing, and a pass cut off anywhere is
//! finished by the next.

use std::collections::{BTreeMap, HashMap};

use tundra_api::clusters::{ClusterKind, ClusterStatus, GroupRole, MemberState, NodeGroup};
use tundra_api::nodes::{Node, NodeCreate, NodeStatus, Placement};
use tundra_api::shares::NodeShare;
use tundra_api::{NetworkId, NodeId};
use tundra_engine::clusters::{self as rules, Member};
use tundra_store::{Actor, ClusterJudged, ClusterRecord, MemberRecord};

use super::REMOVED;
use super::flows::{self, member};
use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::nodes::placement;

/// The cluster reconciler's loop.
pub async fn run(c: Conductor) {
    let mut tick = crate::runner::ticker(c.settings().reconcile_interval);
    loop {
        crate::runner::next_pass(&mut tick, &c.wakes().clusters).await;
        if let Err(e) = once(&c).await {
            tracing::warn!(error = %e, "cluster reconciler failed");
        }
    }
}

/// One pass over every cluster.
pub async fn once(c: &Conductor) -> Result<()> {
    let records = c.store().cluster_records().await?;
    if records.is_empty() {
        return Ok(());
    }
    let nodes = c.store().all_nodes().await?;
    for rec in records {
        if let Err(e) = cluster(c, &rec, &nodes).await {
            tracing::warn!(cluster = %rec.cluster.name, error = %e, "cluster step failed");
        }
    }
    Ok(())
}

/// The node metadata key naming the cluster that made the node (projects
/// cannot set `tundra:` keys).
pub const CLUSTER_KEY: &str = "tundra:cluster_id";

/// The placement group a cluster's control plane is kept apart by.
fn anti_affinity_group(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

async fn cluster(c: &Conductor, rec: &ClusterRecord, nodes: &[Node]) -> Result<()> {
    let cl = &rec.cluster;
    let deleting = cl.status == ClusterStatus::Deleting;
    let by_id: HashMap<NodeId, &Node> = nodes.iter().map(|n| (n.id, n)).collect();
    let by_name: HashMap<&str, &Node> =
        nodes.iter().filter(|n| n.project_id == cl.project_id).map(|n| (n.name.as_str(), n)).collect();
    let mut members = c.store().cluster_members(cl.id).await?;

    // 1. Groups to their counts (a cluster going has none).
    let counts: BTreeMap<String, usize> =
        if deleting { BTreeMap::new() } else { cl.groups.iter().map(|g| (g.name.clone(), g.count as usize)).collect() };
    let views: Vec<Member> =
        members.iter().map(|m| member(m, m.node_id.and_then(|id| by_id.get(&id).copied()))).collect();
    let boot = rules::bootstrap(rec.bootstrap.as_deref(), &views).map(str::to_string);
    let mut changed = false;
    for m in &members {
        if m.state != MemberState::Leaving && !counts.contains_key(&m.group) {
            let why = if deleting { "the cluster is being deleted" } else { "its group was removed" };
            c.store().set_cluster_member(cl.id, &m.name, m.state, m.node_id, MemberState::Leaving, Some(why)).await?;
            changed = true;
        }
    }
    for g in cl.groups.iter().filter(|g| counts.contains_key(&g.name)) {
        let keep = g.count as usize;
        let live = members.iter().filter(|m| m.group == g.name && m.state != MemberState::Leaving).count();
        if live > keep {
            for name in rules::scale_down(&views, &g.name, keep, boot.as_deref()) {
                let m = members.iter().find(|m| m.name == name).expect("picked from the members");
                c.store()
                    .set_cluster_member(cl.id, name, m.state, m.node_id, MemberState::Leaving, Some("scaling down"))
                    .await?;
                changed = true;
            }
        }
        for _ in live..keep {
            c.store().add_cluster_member(cl.id, &g.name, g.role, |i| rules::member_name(&cl.name, &g.name, i)).await?;
            changed = true;
        }
    }
    if changed {
        members = c.store().cluster_members(cl.id).await?;
    }

    // 2. Each member follows its node; nodes made and deleted.
    for m in &members {
        let node = match m.node_id {
            Some(id) => by_id.get(&id).copied(),
            // A node made by a pass cut off before it was recorded: found by
            // its name and the cluster's ID in its metadata (a key only
            // tundrad sets), never a project's node that merely shares the name.
            None => by_name
                .get(m.name.as_str())
                .copied()
                .filter(|n| n.metadata.get(CLUSTER_KEY) == Some(&cl.id.to_string())),
        };
        if let Err(e) = member_step(c, rec, m, node).await
            && !e.is_conflict()
        {
            tracing::warn!(cluster = %cl.name, member = %m.name, error = %e, "cluster member step failed");
        }
    }

    // 3. Judged.
    let members = c.store().cluster_members(cl.id).await?;
    if deleting {
        if members.is_empty() {
            c.store().remove_cluster(&Actor::service(), cl.id).await?;
            tracing::info!(cluster = %cl.name, "cluster deleted; its nodes are gone");
        } else {
            let j = ClusterJudged {
                revision: cl.revision,
                status: ClusterStatus::Deleting,
                reason: Some(format!("removing {} node(s)", members.len())),
                bootstrap: rec.bootstrap.clone(),
                endpoint: cl.endpoint.clone(),
            };
            c.store().judge_cluster(cl.id, &j).await?;
        }
        return Ok(());
    }
    // Judged from the nodes as this pass read them (the members were read
    // again): what changed since is judged on the next pass.
    let views: Vec<Member> =
        members.iter().map(|m| member(m, m.node_id.and_then(|id| by_id.get(&id).copied()))).collect();
    let boot = rules::bootstrap(rec.bootstrap.as_deref(), &views).map(str::to_string);
    let (status, mut reason) = rules::status(&counts, &views, rec.seen.as_ref(), rec.was_active);
    if status == ClusterStatus::Creating && rec.cluster.kind == ClusterKind::Swarm && rec.worker_secret.is_none() {
        let any_worker = cl.groups.iter().any(|g| g.role == GroupRole::Worker && g.count > 0);
        if any_worker && let Some(r) = &mut reason {
            r.push_str("; the workers wait for the bootstrap manager's join token");
        }
    }
    let endpoint = match boot.as_deref().and_then(|b| members.iter().find(|m| m.name == b)) {
        Some(bm) if bm.state == MemberState::Joined => match bm.node_id.and_then(|id| by_id.get(&id).copied()) {
            Some(n) => {
                let g = cl.groups.iter().find(|g| g.name == bm.group);
                flows::cluster_address(c, n, g).await.ok().map(|a| match cl.kind {
                    ClusterKind::Kubernetes => format!("https://{a}:6443"),
                    ClusterKind::Swarm => format!("{a}:2377"),
                })
            }
            None => None,
        },
        _ => cl.endpoint.clone(),
    };
    let j = ClusterJudged { revision: cl.revision, status, reason, bootstrap: boot, endpoint };
    if c.store().judge_cluster(cl.id, &j).await? {
        tracing::info!(cluster = %cl.name, status = %j.status, reason = ?j.reason, "cluster judged");
    }
    Ok(())
}

async fn member_step(c: &Conductor, rec: &ClusterRecord, m: &MemberRecord, node: Option<&Node>) -> Result<()> {
    let cl = &rec.cluster;
    let store = c.store();
    let deleting = cl.status == ClusterStatus::Deleting;
    let set = |state: MemberState, reason: Option<String>| async move {
        store.set_cluster_member(cl.id, &m.name, m.state, node.map(|n| n.id), state, reason.as_deref()).await
    };
    // A node that joined leaves through the control plane (drained and
    // removed), unless the whole cluster is going.
    let may_go = deleting || !m.joined || m.reason.as_deref() == Some(REMOVED);
    match (m.state, node) {
        (MemberState::Leaving, None) if m.node_id.is_none() || may_go => {
            store.remove_cluster_member(cl.id, &m.name).await?;
            tracing::info!(cluster = %cl.name, member = %m.name, "member gone");
        }
        // Its node is gone but the control plane still lists it: waits for its removal.
        (MemberState::Leaving, None) => {}
        (MemberState::Leaving, Some(n)) => {
            if m.node_id.is_none() {
                set(MemberState::Leaving, m.reason.clone()).await?;
            }
            if may_go && n.status != NodeStatus::Deleting {
                placement::delete(c, &Actor::service(), n).await?;
                tracing::info!(cluster = %cl.name, member = %m.name, "deleting a leaving member's node");
            }
        }
        (_, None) if m.node_id.is_some() => {
            if m.joined && !deleting {
                // The control plane must still let it go (it keeps the node's
                // ID for that); a new member takes its place meanwhile.
                store
                    .set_cluster_member(
                        cl.id,
                        &m.name,
                        m.state,
                        m.node_id,
                        MemberState::Leaving,
                        Some("its node is gone"),
                    )
                    .await?;
            } else {
                store.remove_cluster_member(cl.id, &m.name).await?;
            }
        }
        (_, None) => match make_node(c, rec, m).await {
            Ok(n) => {
                store.set_cluster_member(cl.id, &m.name, m.state, Some(n.id), MemberState::Deploying, None).await?;
                tracing::info!(cluster = %cl.name, member = %m.name, node = %n.id, "member's node placed");
            }
            Err(
                e @ (Error::NoCapacity(_)
                | Error::Quota(_)
                | Error::Invalid { .. }
                | Error::Conflict { .. }
                | Error::NotFound { .. }),
            ) => {
                let why = format!("its node cannot be made: {e}");
                if m.reason.as_deref() != Some(why.as_str()) {
                    tracing::warn!(cluster = %cl.name, member = %m.name, reason = %why, "member waits");
                }
                set(MemberState::Deploying, Some(why)).await?;
            }
            Err(e) => return Err(e),
        },
        (state, Some(n)) => {
            let group = cl.groups.iter().find(|g| g.name == m.group);
            let (to, why) = match (n.status, state) {
                (NodeStatus::Error, _) => (
                    MemberState::Failed,
                    Some(format!("deploy failed: {}", n.status_reason.as_deref().unwrap_or("no reason recorded"))),
                ),
                (NodeStatus::Deleting, _) => (MemberState::Leaving, Some("its node is being deleted".into())),
                (NodeStatus::Building, MemberState::Deploying) => (MemberState::Deploying, None),
                // Deployed: it joins over its cluster address — which must exist.
                (NodeStatus::Active, MemberState::Deploying) => match flows::cluster_address(c, n, group).await {
                    Ok(_) => (MemberState::Joining, Some("waiting for its cluster agent to report".into())),
                    Err(e) => (MemberState::Failed, Some(e.to_string())),
                },
                (_, s) => (s, m.reason.clone()),
            };
            set(to, why).await?;
            if matches!(n.status, NodeStatus::Building | NodeStatus::Active)
                && let Some(g) = group
            {
                follow(c, n, &g.networks, &g.shares, &g.name).await?;
            }
        }
    }
    Ok(())
}

/// A member's node takes its group's (or an appliance role's) networks and
/// shares when they changed (networks only grow at the end: the ones it
/// has keep their interfaces).
pub async fn follow(c: &Conductor, n: &Node, networks: &[NetworkId], shares: &[NodeShare], of: &str) -> Result<()> {
    let have: Vec<_> = c.store().node_ports(n.id).await?.into_iter().filter(|p| p.auto).map(|p| p.network_id).collect();
    if have != networks {
        let wants =
            crate::fabric::binding::resolve(c, n.project_id, Some(n.id), &flows::network_requests(networks)).await?;
        crate::fabric::binding::update_node(c, &Actor::service(), n, None, Some(wants), None).await?;
        tracing::info!(node = %n.name, of, "node follows its group's networks");
    }
    if let Some(want) = crate::shares::flows::node_shares_change(c, n, shares).await? {
        crate::shares::flows::set_node_shares(c, &Actor::service(), n, &want).await?;
        tracing::info!(node = %n.name, of, "node follows its group's shares");
    }
    Ok(())
}

/// Place member `m`'s node as its group says (the control plane kept
/// apart), with the cluster agent as its user data.
async fn make_node(c: &Conductor, rec: &ClusterRecord, m: &MemberRecord) -> Result<Node> {
    let cl = &rec.cluster;
    let g: &NodeGroup = cl
        .groups
        .iter()
        .find(|g| g.name == m.group)
        .ok_or_else(|| Error::conflict(format!("group {} is gone", m.group)))?;
    let base = c.metadata_url().ok_or_else(|| Error::conflict(flows::NO_METADATA))?;
    let flavor = c.store().flavor(g.flavor_id).await?;
    let image = c.store().image(g.image_id).await?;
    let (group, policy) = match g.role {
        GroupRole::ControlPlane => {
            (Some(anti_affinity_group(&cl.name)), Some(tundra_api::nodes::GroupPolicy::AntiAffinity))
        }
        GroupRole::Worker => (None, None),
    };
    let req = NodeCreate {
        project_id: cl.project_id,
        name: m.name.clone(),
        flavor_id: g.flavor_id,
        image_id: g.image_id,
        keypair_id: cl.keypair_id,
        user_data: Some(rules::agent_user_data(
            &format!("{base}/openstack/latest"),
            rec.ssh_ca_public.as_deref().unwrap_or_default(),
            flows::ADMIN_USER,
            cl.kind,
            g.role,
        )),
        metadata: BTreeMap::from([
            (CLUSTER_KEY.to_string(), cl.id.to_string()),
            ("tundra:cluster".to_string(), cl.name.clone()),
            ("tundra:group".to_string(), g.name.clone()),
        ]),
        placement: Placement {
            site: g.placement.site.clone(),
            rack: g.placement.rack.clone(),
            island: g.placement.island.clone(),
            group,
            policy,
            strategy: g.placement.strategy,
        },
        networks: flows::network_requests(&g.networks),
        shares: g.shares.clone(),
    };
    placement::create(c, &Actor::service(), req, &flavor, &image).await
}
