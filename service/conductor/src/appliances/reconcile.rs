//! The appliance reconciler: every `reconcile_interval`, and whenever a
//! node or an appliance changes, each appliance takes the steps its rows
//! ask for now:
//!
//! - each role grows to the count its parameters give with new members, or
//!   gives up the ones `tundra_engine::appliances::scale_down` picks (they
//!   are `leaving`);
//! - each member follows its node (deploying → configuring once the node is
//!   active; failed with the node's reason when its deploy fails; back to
//!   configuring when a ready node's plan renders anew; back to deploying
//!   while its node is rebuilt), and a member
//!   without a node gets one — found by name if a pass was cut off after
//!   making it, else placed now; its node follows the role's networks and
//!   shares;
//! - a leaving member's node is deleted (its machine cleaned) once the role
//!   that drains it reported it drained, or at once when it was never
//!   ready, nothing drains its role, or the whole appliance is going;
//! - the appliance is judged per role (`tundra_engine::appliances::status`),
//!   its outputs and usage rendered, and the judgement written when it
//!   changed; a deleted appliance goes when its last member has.
//!
//! Level-triggered: every step reads the rows as they are, so a restart or
//! a missed wake-up changes nothing, and a pass cut off anywhere is
//! finished by the next. Appliances do not wait for each other: there is
//! no lock beyond each row's compare-and-set.

use std::collections::{BTreeMap, HashMap};

use tundra_api::NodeId;
use tundra_api::appliances::{ApplianceMemberState as MemberState, ApplianceStatus, ApplianceTemplate};
use tundra_api::nodes::{GroupPolicy, Node, NodeCreate, NodeStatus, Placement, Strategy};
use tundra_engine::appliances::{self as rules, Member, PlanError, RolePlan};
use tundra_store::{Actor, ApplianceJudged, ApplianceMemberRecord, ApplianceRecord};

use super::APPLIANCE_KEY;
use super::flows;
use crate::error::{Error, Result};
use crate::handle::Conductor;
use crate::nodes::placement;

/// The appliance reconciler's loop.
pub async fn run(c: Conductor) {
    let mut tick = crate::runner::ticker(c.settings().reconcile_interval);
    loop {
        crate::runner::next_pass(&mut tick, &c.wakes().appliances).await;
        if let Err(e) = once(&c).await {
            tracing::warn!(error = %e, "appliance reconciler failed");
        }
    }
}

/// One pass over every appliance.
pub async fn once(c: &Conductor) -> Result<()> {
    let records = c.store().appliance_records().await?;
    if records.is_empty() {
        return Ok(());
    }
    let nodes = c.store().all_nodes().await?;
    for rec in records {
        if let Err(e) = appliance(c, &rec, &nodes).await {
            tracing::warn!(appliance = %rec.appliance.name, error = %e, "appliance step failed");
        }
    }
    Ok(())
}

fn engine_member(m: &ApplianceMemberRecord) -> Member {
    Member { name: m.name.clone(), role: m.role.clone(), index: m.index, state: m.state, reason: m.reason.clone() }
}

async fn appliance(c: &Conductor, rec: &ApplianceRecord, nodes: &[Node]) -> Result<()> {
    let a = &rec.appliance;
    let deleting = a.status == ApplianceStatus::Deleting;
    let t = c.store().appliance_template(a.template_id).await?;
    let plans = rules::role_plans(&t.roles, &a.parameters);
    let by_id: HashMap<NodeId, &Node> = nodes.iter().map(|n| (n.id, n)).collect();
    let by_name: HashMap<&str, &Node> =
        nodes.iter().filter(|n| n.project_id == a.project_id).map(|n| (n.name.as_str(), n)).collect();
    let mut members = c.store().appliance_members(a.id).await?;

    // 1. Roles to their counts (an appliance going has none).
    let counts: BTreeMap<&str, usize> =
        plans.iter().map(|p| (p.name.as_str(), if deleting { 0 } else { p.count as usize })).collect();
    let views: Vec<Member> = members.iter().map(engine_member).collect();
    let mut changed = false;
    for (role, keep) in &counts {
        let live = members.iter().filter(|m| m.role == *role && m.state != MemberState::Leaving).count();
        if live > *keep {
            let why = if deleting { "the appliance is being deleted" } else { "scaling down" };
            for name in rules::scale_down(&views, role, *keep) {
                let m = members.iter().find(|m| m.name == name).expect("picked from the members");
                c.store()
                    .set_appliance_member(
                        a.id,
                        name,
                        (m.state, m.generation.as_deref()),
                        m.node_id,
                        MemberState::Leaving,
                        Some(why),
                        m.generation.as_deref(),
                    )
                    .await?;
                changed = true;
            }
        }
        for _ in live..*keep {
            c.store().add_appliance_member(a.id, role, |i| rules::member_name(&a.name, role, i)).await?;
            changed = true;
        }
    }
    if changed {
        members = c.store().appliance_members(a.id).await?;
    }

    // 2. Each member follows its node; nodes made and deleted.
    for m in &members {
        let node = match m.node_id {
            Some(id) => by_id.get(&id).copied(),
            // A node made by a pass cut off before it was recorded: found by
            // its name and the appliance's ID in its metadata (a key only
            // tundrad sets), never a project's node that merely shares the name.
            None => by_name
                .get(m.name.as_str())
                .copied()
                .filter(|n| n.metadata.get(APPLIANCE_KEY) == Some(&a.id.to_string())),
        };
        if let Err(e) = member_step(c, rec, &t, &plans, &members, &by_id, m, node).await
            && !e.is_conflict()
        {
            tracing::warn!(appliance = %a.name, member = %m.name, error = %e, "appliance member step failed");
        }
    }

    // 3. Judged.
    let members = c.store().appliance_members(a.id).await?;
    if deleting {
        if members.is_empty() {
            c.store().remove_appliance(&Actor::service(), a.id).await?;
            tracing::info!(appliance = %a.name, "appliance deleted; its nodes are gone");
        } else {
            let j = ApplianceJudged {
                revision: a.revision,
                status: ApplianceStatus::Deleting,
                reason: Some(format!("removing {} node(s)", members.len())),
                roles: a.roles.clone(),
                outputs: a.outputs.clone(),
                usage: a.usage.clone(),
            };
            c.store().judge_appliance(a.id, &j).await?;
        }
        return Ok(());
    }
    let counts: Vec<(String, u32)> = plans.iter().map(|p| (p.name.clone(), p.count)).collect();
    let views: Vec<Member> = members.iter().map(engine_member).collect();
    let (status, reason, roles) = rules::status(&counts, &views, rec.was_active);
    let project = c.store().project(&a.project_id.to_string()).await?.name;
    let ids: Vec<NodeId> = members.iter().filter_map(|m| m.node_id).collect();
    let ports = flows::ports(c, &ids).await?;
    let peers = flows::peers(c, &t, rec, &project).await?;
    let ctx = flows::context(rec, &plans, &members, &by_id, &ports, &project, flows::peer_views(&peers));
    let outputs = rules::outputs(&t.outputs, &ctx);
    let usage = rules::usage(&t.usage, &ctx, &t.outputs, &outputs);
    let j = ApplianceJudged { revision: a.revision, status, reason, roles, outputs, usage };
    if c.store().judge_appliance(a.id, &j).await? {
        tracing::info!(appliance = %a.name, status = %j.status, reason = ?j.reason, "appliance judged");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn member_step(
    c: &Conductor,
    rec: &ApplianceRecord,
    t: &ApplianceTemplate,
    plans: &[RolePlan],
    members: &[ApplianceMemberRecord],
    by_id: &HashMap<NodeId, &Node>,
    m: &ApplianceMemberRecord,
    node: Option<&Node>,
) -> Result<()> {
    let a = &rec.appliance;
    let store = c.store();
    let deleting = a.status == ApplianceStatus::Deleting;
    let generation = m.generation.as_deref();
    let set = |state: MemberState, reason: Option<String>| async move {
        store
            .set_appliance_member(
                a.id,
                &m.name,
                (m.state, generation),
                node.map(|n| n.id),
                state,
                reason.as_deref(),
                generation,
            )
            .await
    };
    match (m.state, node) {
        (MemberState::Leaving, None) => {
            store.remove_appliance_member(a.id, &m.name).await?;
            tracing::info!(appliance = %a.name, member = %m.name, "member gone");
        }
        (MemberState::Leaving, Some(n)) => {
            if m.node_id.is_none() {
                set(MemberState::Leaving, m.reason.clone()).await?;
            }
            if n.status != NodeStatus::Deleting && may_go(t, members, deleting, m) {
                placement::delete(c, &Actor::service(), n).await?;
                tracing::info!(appliance = %a.name, member = %m.name, "deleting a leaving member's node");
            }
        }
        // Its node is gone: the member goes, and the role's count makes another.
        (_, None) if m.node_id.is_some() => store.remove_appliance_member(a.id, &m.name).await?,
        (_, None) => match make_node(c, rec, plans, m).await {
            Ok(n) => {
                store
                    .set_appliance_member(
                        a.id,
                        &m.name,
                        (m.state, generation),
                        Some(n.id),
                        MemberState::Deploying,
                        None,
                        generation,
                    )
                    .await?;
                tracing::info!(appliance = %a.name, member = %m.name, node = %n.id, "member's node placed");
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
                    tracing::warn!(appliance = %a.name, member = %m.name, reason = %why, "member waits");
                }
                set(MemberState::Deploying, Some(why)).await?;
            }
            Err(e) => return Err(e),
        },
        (state, Some(n)) => {
            let (to, why) = match (n.status, state) {
                (NodeStatus::Error, _) => (
                    MemberState::Failed,
                    Some(format!("deploy failed: {}", n.status_reason.as_deref().unwrap_or("no reason recorded"))),
                ),
                (NodeStatus::Deleting, _) => (MemberState::Leaving, Some("its node is being deleted".into())),
                // Rebuilt: its OS is written again; it configures anew once active.
                (NodeStatus::Building, MemberState::Ready | MemberState::Configuring | MemberState::Failed) => {
                    (MemberState::Deploying, Some("its node is being rebuilt".into()))
                }
                (NodeStatus::Active, MemberState::Deploying) => {
                    (MemberState::Configuring, Some("waiting for its appliance agent to report".into()))
                }
                // Ready under a plan that has since changed (a node joined a
                // role it reads, a parameter changed): it applies the new one.
                (NodeStatus::Active, MemberState::Ready) => {
                    match flows::plan_for(c, rec, t, members, by_id, m).await? {
                        Ok(p) if Some(p.generation.as_str()) != generation => {
                            (MemberState::Configuring, Some("applying a changed plan".into()))
                        }
                        Ok(_) | Err(PlanError::Waiting(_)) => (state, m.reason.clone()),
                        Err(PlanError::Failed(why)) => (MemberState::Failed, Some(why)),
                    }
                }
                (NodeStatus::Active, MemberState::Configuring) => {
                    match flows::plan_for(c, rec, t, members, by_id, m).await? {
                        Err(PlanError::Failed(why)) => (MemberState::Failed, Some(why)),
                        _ => (state, m.reason.clone()),
                    }
                }
                (_, s) => (s, m.reason.clone()),
            };
            set(to, why).await?;
            if matches!(n.status, NodeStatus::Building | NodeStatus::Active)
                && let Some(p) = plans.iter().find(|p| p.name == m.role)
            {
                crate::clusters::reconcile::follow(c, n, &p.networks, &p.shares, &m.role).await?;
            }
        }
    }
    Ok(())
}

/// Whether a leaving member's node may be deleted now: the appliance is
/// going, it was never ready, nothing drains its role (or no node is left
/// to: one of the draining role that was ready once and has neither
/// failed nor is leaving — a drainer reapplying its own changed files
/// still counts), or it was reported drained.
fn may_go(t: &ApplianceTemplate, members: &[ApplianceMemberRecord], deleting: bool, m: &ApplianceMemberRecord) -> bool {
    if deleting || !m.ready_once || m.drained {
        return true;
    }
    let drainers: Vec<&str> = t
        .roles
        .iter()
        .filter(|r| r.drain.as_ref().is_some_and(|d| d.role == m.role))
        .map(|r| r.name.as_str())
        .collect();
    !members.iter().any(|x| {
        drainers.contains(&x.role.as_str())
            && x.ready_once
            && !matches!(x.state, MemberState::Failed | MemberState::Leaving)
    })
}

/// Place member `m`'s node as its role says, with the appliance agent as
/// its user data.
async fn make_node(
    c: &Conductor,
    rec: &ApplianceRecord,
    plans: &[RolePlan],
    m: &ApplianceMemberRecord,
) -> Result<Node> {
    let a = &rec.appliance;
    let p =
        plans.iter().find(|p| p.name == m.role).ok_or_else(|| Error::conflict(format!("role {} is gone", m.role)))?;
    let base = c.metadata_url().ok_or_else(|| Error::conflict(flows::NO_METADATA))?;
    let flavor = c.store().flavor(p.flavor_id).await?;
    let image = c.store().image(p.image_id).await?;
    let (group, policy, strategy) = if p.spread {
        (Some(format!("{}-{}", a.name, p.name)), Some(GroupPolicy::AntiAffinity), Some(Strategy::Spread))
    } else {
        (None, None, None)
    };
    let req = NodeCreate {
        project_id: a.project_id,
        name: m.name.clone(),
        flavor_id: p.flavor_id,
        image_id: p.image_id,
        keypair_id: a.keypair_id,
        user_data: Some(rules::agent_user_data(&format!("{base}/openstack/latest"))),
        metadata: BTreeMap::from([
            (APPLIANCE_KEY.to_string(), a.id.to_string()),
            ("tundra:appliance".to_string(), a.name.clone()),
            ("tundra:role".to_string(), p.name.clone()),
        ]),
        placement: Placement { group, policy, strategy, ..Placement::default() },
        networks: crate::clusters::flows::network_requests(&p.networks),
        shares: p.shares.clone(),
    };
    placement::create(c, &Actor::service(), req, &flavor, &image).await
}
