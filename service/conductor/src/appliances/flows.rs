//! Appliance templates and appliances checked and written; the context
//! their texts render from; what a node's appliance agent is told (its
//! plan) and what it reports.
//!
//! Secrets: generated here at create (random bytes per the template's
//! `secrets`), sealed together in one `secrets` row, opened only to render
//! a plan for one of the appliance's own nodes — or of an appliance of the
//! same project that joins it (an `appliance` parameter naming it: its
//! peer) —, and never returned by the API.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde_json::Value;
use tundra_api::appliances::{
    Appliance, ApplianceCreate, ApplianceMemberState as MemberState, AppliancePlan, ApplianceReport, ApplianceTemplate,
    ApplianceTemplateCreate, ApplianceUpdate, ParameterKind, Role, SecretKind, SecretSpec,
};
use tundra_api::catalog::ImageStatus;
use tundra_api::nodes::{Node, NodeStatus};
use tundra_api::shares::NodeShare;
use tundra_api::{ApplianceId, NodeId, ProjectId, SecretId};
use tundra_engine::appliances::{self as rules, Context, NodeView, PeerView, PlanError, RolePlan, RoleView, Secrets};
use tundra_store::{Actor, ApplianceMemberRecord, ApplianceRecord, NewAppliance, NewApplianceTemplate, TemplateSpec};

use crate::certs::appliance_tls;
use crate::error::{Error, Result};
use crate::fabric::binding;
use crate::handle::Conductor;
use crate::secrets::Plaintext;

fn refused((pointer, detail): rules::Refusal) -> Error {
    Error::invalid(&pointer, detail)
}

/// A template, checked whole before it is stored.
pub async fn create_template(c: &Conductor, actor: &Actor, r: ApplianceTemplateCreate) -> Result<ApplianceTemplate> {
    if r.project_id.is_some() {
        // Templates render inside tundrad: their output is capped, but what
        // one filter call allocates is not, so only trusted authors write them.
        return Err(Error::invalid(
            "/project_id",
            "appliance templates are the site's for now (a template's texts render inside tundrad, which does not \
             yet isolate a project's from its own memory); ask a site admin to add it as a site template",
        ));
    }
    rules::check_template(&r).map_err(refused)?;
    let t = NewApplianceTemplate {
        project_id: r.project_id,
        name: r.name,
        version: r.version,
        description: r.description,
        spec: TemplateSpec {
            parameters: r.parameters,
            secrets: r.secrets,
            roles: r.roles,
            outputs: r.outputs,
            usage: r.usage,
        },
    };
    Ok(c.store().create_appliance_template(actor, t).await?)
}

/// The parameters' references: flavors and images the project may use
/// (images active), networks it may attach, shares of its own.
async fn check_refs(
    c: &Conductor,
    project: ProjectId,
    me: Option<ApplianceId>,
    t: &ApplianceTemplate,
    params: &BTreeMap<String, Value>,
) -> Result<()> {
    for p in &t.parameters {
        let at = format!("/parameters/{}", p.name);
        let Some(v) = params.get(&p.name).filter(|v| !v.is_null()) else { continue };
        let id = v.as_str().unwrap_or_default();
        match p.kind {
            ParameterKind::Flavor => {
                let f = c.store().flavor(id.parse().map_err(|_| Error::invalid(&at, "not an ID"))?).await.ok();
                let usable = f.is_some_and(|f| f.project_id.is_none_or(|x| x == project));
                if !usable {
                    return Err(Error::invalid(&at, format!("no flavor {id} is public or in the appliance's project")));
                }
            }
            ParameterKind::Image => {
                let i = c.store().image(id.parse().map_err(|_| Error::invalid(&at, "not an ID"))?).await.ok();
                let i = i.filter(|i| i.project_id.is_none_or(|x| x == project)).ok_or_else(|| {
                    Error::invalid(&at, format!("no image {id} is public or in the appliance's project"))
                })?;
                if i.status != ImageStatus::Active {
                    return Err(Error::invalid(
                        &at,
                        format!("image {} is {}; wait until it is active", i.name, i.status.as_str()),
                    ));
                }
            }
            ParameterKind::Network | ParameterKind::Networks => {
                let nets: Vec<_> = match v {
                    Value::Array(l) => l.iter().filter_map(|x| x.as_str()?.parse().ok()).collect(),
                    _ => id.parse().into_iter().collect(),
                };
                binding::resolve(c, project, None, &crate::clusters::flows::network_requests(&nets)).await.map_err(
                    |e| match e {
                        Error::Invalid { detail, .. } => Error::Invalid { pointer: at.clone(), detail },
                        other => other,
                    },
                )?;
            }
            ParameterKind::Share => {
                let share = NodeShare {
                    share_id: id.parse().map_err(|_| Error::invalid(&at, "not an ID"))?,
                    mount_point: "/mnt".into(),
                    access: tundra_api::shares::AccessLevel::Rw,
                };
                crate::shares::flows::check_mountable(c, project, &[share]).await.map_err(|e| match e {
                    Error::Invalid { detail, .. } => Error::Invalid { pointer: at.clone(), detail },
                    other => other,
                })?;
            }
            ParameterKind::Appliance => {
                let peer: ApplianceId = id.parse().map_err(|_| Error::invalid(&at, "not an ID"))?;
                if Some(peer) == me {
                    return Err(Error::invalid(&at, "an appliance cannot join itself"));
                }
                let a = c.store().appliance(peer).await.ok().filter(|a| a.project_id == project);
                let a =
                    a.ok_or_else(|| Error::invalid(&at, format!("no appliance {id} in the appliance's project")))?;
                if a.status == tundra_api::appliances::ApplianceStatus::Deleting {
                    return Err(Error::invalid(&at, format!("appliance {} is being deleted", a.name)));
                }
                // Two appliances joining each other could never be deleted.
                if let Some(me) = me
                    && joins(c, &a, me).await?
                {
                    return Err(Error::invalid(
                        &at,
                        format!("appliance {} joins this one already: appliances do not join each other", a.name),
                    ));
                }
            }
            ParameterKind::Integer | ParameterKind::Count | ParameterKind::String | ParameterKind::Boolean => {}
        }
    }
    Ok(())
}

/// Why an appliance cannot be made on a site without the metadata service.
pub const NO_METADATA: &str = "appliances need the metadata service (a node's appliance agent asks it for its files): \
     the site admin configures a provisioning network with a node pool in tundrad's configuration";

/// A template the project may use.
async fn usable_template(
    c: &Conductor,
    project: ProjectId,
    id: tundra_api::ApplianceTemplateId,
) -> Result<ApplianceTemplate> {
    let t = c.store().appliance_template(id).await.ok().filter(|t| t.project_id.is_none_or(|p| p == project));
    t.ok_or_else(|| Error::invalid("/template_id", format!("no appliance template {id} is public or in this project")))
}

/// An appliance: its template usable by the project, its parameters
/// checked and their references resolved, its secrets generated and
/// sealed. Its nodes are made by the reconciler.
pub async fn create(c: &Conductor, actor: &Actor, r: ApplianceCreate) -> Result<Appliance> {
    let project = r.project_id;
    if c.metadata_url().is_none() {
        return Err(Error::conflict(NO_METADATA));
    }
    let t = usable_template(c, project, r.template_id).await?;
    tundra_engine::clusters::check_cluster_name(&r.name).map_err(refused)?;
    if let Some(long) =
        t.roles.iter().map(|x| rules::member_name(&r.name, &x.name, rules::MAX_ROLE_COUNT)).find(|n| n.len() > 63)
    {
        return Err(Error::invalid(
            "/name",
            format!("its nodes' names ({long}) would pass 63 characters, the most a host name has; shorten the name"),
        ));
    }
    let params = rules::check_parameters(&t.parameters, &r.parameters, None).map_err(refused)?;
    check_refs(c, project, None, &t, &params).await?;
    if let Some(k) = r.keypair_id
        && !c.store().keypair(k).await.is_ok_and(|kp| kp.project_id == project)
    {
        return Err(Error::invalid("/keypair_id", format!("no keypair {k} in the appliance's project")));
    }
    let mut secrets = BTreeMap::new();
    for s in &t.secrets {
        secrets.insert(s.name.clone(), generate(s, project, &r.name)?);
    }
    let json = serde_json::to_vec(&secrets).map_err(|e| Error::Internal(e.to_string()))?;
    let sealed = c.keyring().seal(SecretId::generate(), &Plaintext(json));
    let new = NewAppliance {
        project_id: project,
        name: r.name,
        template_id: t.id,
        keypair_id: r.keypair_id,
        parameters: params,
    };
    let out = c.store().create_appliance(actor, new, sealed).await?;
    c.wakes().appliances.notify_one();
    Ok(out)
}

/// New parameters, applied in place: every one checked against the
/// template, none of the immutable ones changed.
pub async fn update(
    c: &Conductor,
    actor: &Actor,
    cur: &Appliance,
    r: ApplianceUpdate,
    if_match: Option<i64>,
) -> Result<Appliance> {
    let t = c.store().appliance_template(cur.template_id).await?;
    let params = match r.parameters {
        Some(given) => rules::check_parameters(&t.parameters, &given, Some(&cur.parameters)).map_err(refused)?,
        None => cur.parameters.clone(),
    };
    check_refs(c, cur.project_id, Some(cur.id), &t, &params).await?;
    let out = c.store().update_appliance(actor, cur.id, params, if_match).await?;
    c.wakes().appliances.notify_one();
    Ok(out)
}

/// Start deleting an appliance: the reconciler deletes its nodes (each
/// machine cleaned), then the appliance and its secrets.
pub async fn delete(c: &Conductor, actor: &Actor, cur: &Appliance) -> Result<Appliance> {
    if let Some(user) = joined_by(c, cur).await? {
        return Err(Error::conflict(format!(
            "appliance {user} joins {} (its peer): delete {user}, or change its parameter, first",
            cur.name
        )));
    }
    let out = c.store().delete_appliance(actor, cur.id).await?;
    c.wakes().appliances.notify_one();
    Ok(out)
}

/// Whether `o` joins the appliance `target` (an `appliance` parameter of
/// its template names it).
async fn joins(c: &Conductor, o: &Appliance, target: ApplianceId) -> Result<bool> {
    let id = Value::String(target.to_string());
    if !o.parameters.values().any(|v| *v == id) {
        return Ok(false);
    }
    let t = c.store().appliance_template(o.template_id).await?;
    Ok(t.parameters.iter().any(|p| p.kind == ParameterKind::Appliance && o.parameters.get(&p.name) == Some(&id)))
}

/// An appliance of `a`'s project, not being deleted, that joins `a`: its name.
async fn joined_by(c: &Conductor, a: &Appliance) -> Result<Option<String>> {
    for r in c.store().appliance_records().await? {
        let o = &r.appliance;
        if o.project_id != a.project_id || o.status == tundra_api::appliances::ApplianceStatus::Deleting {
            continue;
        }
        if joins(c, o, a.id).await? {
            return Ok(Some(o.name.clone()));
        }
    }
    Ok(None)
}

/// Refuse to delete an appliance's node behind its back: the appliance
/// would make it again.
pub async fn check_node_removable(c: &Conductor, node: NodeId) -> Result<()> {
    if let Some(m) = c.store().appliance_member_of_node(node).await? {
        return Err(Error::conflict(format!(
            "node {} belongs to an appliance (role {}); lower the role's count through the appliance's parameters",
            m.name, m.role
        )));
    }
    Ok(())
}

/// A node leaving its appliance (scaled down, or the appliance deleted) is
/// not rebuilt, whoever asks: it is being drained and deleted. Answers the
/// node's member, if it belongs to an appliance.
pub async fn check_rebuildable(c: &Conductor, node: NodeId) -> Result<Option<ApplianceMemberRecord>> {
    let m = c.store().appliance_member_of_node(node).await?;
    if let Some(m) = &m
        && m.state == MemberState::Leaving
    {
        return Err(Error::conflict(format!("{} is leaving its appliance; it is not rebuilt", m.name)));
    }
    Ok(m)
}

/// A secret of appliance `name` in `project`, as templates see it: random
/// bytes in base64, or a TLS bundle (`ca`, `cert`, `key`).
fn generate(s: &SecretSpec, project: ProjectId, name: &str) -> Result<Value> {
    match s.kind {
        SecretKind::Random => {
            let mut bytes = vec![0u8; s.bytes.unwrap_or(32) as usize];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Internal("no randomness for a secret".into()))?;
            Ok(base64::engine::general_purpose::STANDARD.encode(bytes).into())
        }
        SecretKind::Tls => Ok(appliance_tls(name, &format!("{project} {}", s.name))?.to_json()),
    }
}

/// The appliance's secrets (name → base64 or a TLS bundle), opened.
async fn secrets(c: &Conductor, id: Option<SecretId>) -> Result<BTreeMap<String, Value>> {
    let Some(id) = id else { return Ok(BTreeMap::new()) };
    let p = c
        .keyring()
        .get(c.store(), id)
        .await
        .map_err(|e| Error::Internal(format!("an appliance's sealed secrets: {e}")))?;
    serde_json::from_slice(&p.0).map_err(|e| Error::Internal(format!("an appliance's sealed secrets: {e}")))
}

/// Each node's networks' addresses, in the order of its networks.
pub type Ports = HashMap<NodeId, Vec<(tundra_api::NetworkId, String)>>;

/// The addresses of these nodes' ports, in one query.
pub async fn ports(c: &Conductor, nodes: &[NodeId]) -> Result<Ports> {
    let mut out: Ports = HashMap::new();
    for p in c.store().ports_of_nodes(nodes).await? {
        let (Some(n), Some(a)) = (p.node_id, p.fixed_ips.iter().find_map(|f| f.address.clone())) else { continue };
        out.entry(n).or_default().push((p.network_id, a));
    }
    Ok(out)
}

/// Everything an appliance's texts render from, as its rows and nodes
/// stand: each role's nodes that are not leaving, with their addresses,
/// and its peers (see `peers`).
pub fn context(
    rec: &ApplianceRecord,
    plans: &[RolePlan],
    members: &[ApplianceMemberRecord],
    nodes: &HashMap<NodeId, &Node>,
    ports: &Ports,
    project: &str,
    peers: BTreeMap<String, Option<PeerView>>,
) -> Context {
    let a = &rec.appliance;
    let mut roles = BTreeMap::new();
    for p in plans {
        let views = members
            .iter()
            .filter(|m| m.role == p.name && m.state != MemberState::Leaving)
            .filter_map(|m| Some(view(m, nodes.get(&m.node_id?)?, ports, p)))
            .collect();
        roles.insert(p.name.clone(), RoleView { count: p.count, nodes: views });
    }
    Context {
        appliance: rules::ApplianceView { id: a.id.to_string(), name: a.name.clone(), project: project.to_string() },
        parameters: a.parameters.clone(),
        roles,
        peers,
    }
}

/// The appliances `rec` joins (`peers.NAME` for each `appliance`
/// parameter of `t`), each as its own nodes and addresses show it now, with
/// its sealed secrets' ID; `None` where the parameter is not given or the
/// peer is gone.
pub async fn peers(
    c: &Conductor,
    t: &ApplianceTemplate,
    rec: &ApplianceRecord,
    project: &str,
) -> Result<BTreeMap<String, Option<(PeerView, Option<SecretId>)>>> {
    let mut out = BTreeMap::new();
    for p in t.parameters.iter().filter(|p| p.kind == ParameterKind::Appliance) {
        let id =
            rec.appliance.parameters.get(&p.name).and_then(Value::as_str).and_then(|s| s.parse::<ApplianceId>().ok());
        let peer = match id {
            Some(id) => {
                c.store().appliance_record(id).await.ok().filter(|r| r.appliance.project_id == rec.appliance.project_id)
            }
            None => None,
        };
        let Some(peer) = peer else {
            out.insert(p.name.clone(), None);
            continue;
        };
        let pt = c.store().appliance_template(peer.appliance.template_id).await?;
        let plans = rules::role_plans(&pt.roles, &peer.appliance.parameters);
        let (members, nodes) = members_and_nodes(c, peer.appliance.id).await?;
        let by_id: HashMap<NodeId, &Node> = nodes.iter().map(|x| (x.id, x)).collect();
        let ids: Vec<NodeId> = by_id.keys().copied().collect();
        let ports = ports(c, &ids).await?;
        let ctx = context(&peer, &plans, &members, &by_id, &ports, project, BTreeMap::new());
        let view = PeerView { appliance: ctx.appliance, parameters: ctx.parameters, roles: ctx.roles };
        out.insert(p.name.clone(), Some((view, peer.secret_id)));
    }
    Ok(out)
}

/// The views of `peers`, without their secrets.
pub fn peer_views(
    peers: &BTreeMap<String, Option<(PeerView, Option<SecretId>)>>,
) -> BTreeMap<String, Option<PeerView>> {
    peers.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|(p, _)| p.clone()))).collect()
}

fn view(m: &ApplianceMemberRecord, n: &Node, ports: &Ports, p: &RolePlan) -> NodeView {
    rules::node_view(n, ports.get(&n.id).map(Vec::as_slice).unwrap_or_default(), &m.role, m.index, p.traffic_network)
}

/// What a member of `rec` is told now, given the appliance as `members`
/// and `nodes` show it; the role's template part with it.
pub async fn plan_for(
    c: &Conductor,
    rec: &ApplianceRecord,
    t: &ApplianceTemplate,
    members: &[ApplianceMemberRecord],
    nodes: &HashMap<NodeId, &Node>,
    me: &ApplianceMemberRecord,
) -> Result<std::result::Result<AppliancePlan, PlanError>> {
    let plans = rules::role_plans(&t.roles, &rec.appliance.parameters);
    let project = c.store().project(&rec.appliance.project_id.to_string()).await?.name;
    let ids: Vec<NodeId> = members.iter().filter_map(|m| m.node_id).collect();
    let ports = ports(c, &ids).await?;
    let peers = peers(c, t, rec, &project).await?;
    let ctx = context(rec, &plans, members, nodes, &ports, &project, peer_views(&peers));
    let (Some(role), Some(p)) = (t.roles.iter().find(|r| r.name == me.role), plans.iter().find(|p| p.name == me.role))
    else {
        return Err(Error::conflict(format!("role {} is not in the template", me.role)));
    };
    let Some(node) = me.node_id.and_then(|id| nodes.get(&id)) else {
        return Ok(Err(PlanError::Waiting(format!("{} has no node yet", me.name))));
    };
    let leaving: Vec<NodeView> = to_drain(role, members)
        .into_iter()
        .filter_map(|m| {
            let n = nodes.get(&m.node_id?)?;
            let lp = plans.iter().find(|x| x.name == m.role)?;
            Some(view(m, n, &ports, lp))
        })
        .collect();
    let mut secrets = Secrets { own: secrets(c, rec.secret_id).await?, peers: BTreeMap::new() };
    for (name, peer) in &peers {
        if let Some((_, id)) = peer {
            secrets.peers.insert(name.clone(), self::secrets(c, *id).await?);
        }
    }
    Ok(rules::node_plan(role, &ctx, &secrets, &view(me, node, &ports, p), &leaving))
}

/// The leaving members a node of `role` drains: of the role it drains,
/// ready once, not drained yet.
fn to_drain<'a>(role: &Role, members: &'a [ApplianceMemberRecord]) -> Vec<&'a ApplianceMemberRecord> {
    let Some(d) = &role.drain else { return Vec::new() };
    members
        .iter()
        .filter(|m| m.role == d.role && m.state == MemberState::Leaving && m.ready_once && !m.drained)
        .collect()
}

/// A node's appliance, member, template and the nodes of its appliance.
async fn of_node(
    c: &Conductor,
    n: &Node,
) -> Result<Option<(ApplianceRecord, ApplianceTemplate, Vec<ApplianceMemberRecord>, Vec<Node>)>> {
    let Some(me) = c.store().appliance_member_of_node(n.id).await? else { return Ok(None) };
    let rec = c.store().appliance_record(me.appliance_id).await?;
    let t = c.store().appliance_template(rec.appliance.template_id).await?;
    let (members, nodes) = members_and_nodes(c, rec.appliance.id).await?;
    Ok(Some((rec, t, members, nodes)))
}

/// An appliance's members and the nodes they have now.
async fn members_and_nodes(c: &Conductor, id: ApplianceId) -> Result<(Vec<ApplianceMemberRecord>, Vec<Node>)> {
    let members = c.store().appliance_members(id).await?;
    let mut nodes = Vec::new();
    for id in members.iter().filter_map(|m| m.node_id) {
        if let Ok(x) = c.store().node(id).await {
            nodes.push(x);
        }
    }
    Ok((members, nodes))
}

/// What `n`'s appliance agent is told, or `None` when `n` belongs to no
/// appliance. A plan that cannot render yet is a conflict saying why.
pub async fn plan(c: &Conductor, n: &Node) -> Result<Option<AppliancePlan>> {
    let Some((rec, t, members, nodes)) = of_node(c, n).await? else { return Ok(None) };
    let by_id: HashMap<NodeId, &Node> = nodes.iter().map(|x| (x.id, x)).collect();
    let me = members.iter().find(|m| m.node_id == Some(n.id)).expect("the node's member");
    match plan_for(c, &rec, &t, &members, &by_id, me).await? {
        Ok(p) => Ok(Some(p)),
        Err(PlanError::Waiting(why)) => Err(Error::conflict(why)),
        Err(PlanError::Failed(why)) => Err(Error::conflict(format!("this node's plan does not render: {why}"))),
    }
}

const MAX_REPORTED_ERROR: usize = 2000;

/// A node of an appliance asks to be rebuilt (its role's rebuild command:
/// e.g. Slurm's `RebootProgram`, once the scheduler drained it): its
/// machine is deployed again with the image its role's parameters name now
/// — a changed `image` parameter reaches running nodes this way, one at a
/// time as their scheduler lets them go — keeping its name, address, ports
/// and mounts. Once it is active its appliance agent applies its plan on the
/// fresh OS and reports ready. A leaving node is not rebuilt.
pub async fn rebuild(c: &Conductor, n: &Node) -> Result<Node> {
    let Some(me) = check_rebuildable(c, n.id).await? else {
        return Err(Error::NotFound { noun: "appliance of node", id: n.name.clone() });
    };
    let rec = c.store().appliance_record(me.appliance_id).await?;
    let t = c.store().appliance_template(rec.appliance.template_id).await?;
    let plans = rules::role_plans(&t.roles, &rec.appliance.parameters);
    let p = plans
        .iter()
        .find(|p| p.name == me.role)
        .ok_or_else(|| Error::conflict(format!("role {} is not in the template", me.role)))?;
    let image = c.store().image(p.image_id).await?;
    let out = crate::nodes::placement::rebuild(c, &Actor::service(), n, &image).await?;
    c.wakes().appliances.notify_one();
    Ok(out)
}

/// A node's appliance agent's report: ready (or failed) under the plan
/// generation it applied — taken only if that is the plan rendered now —
/// and the leaving nodes it drained (only nodes its role drains).
pub async fn report(c: &Conductor, n: &Node, r: ApplianceReport) -> Result<()> {
    let Some((rec, t, members, nodes)) = of_node(c, n).await? else {
        return Err(Error::NotFound { noun: "appliance of node", id: n.name.clone() });
    };
    if n.status != NodeStatus::Active {
        // Being rebuilt (or not deployed yet): what its old OS says no longer counts.
        return Err(Error::conflict(format!("node {} is {}; report once it is active", n.name, n.status.as_str())));
    }
    let by_id: HashMap<NodeId, &Node> = nodes.iter().map(|x| (x.id, x)).collect();
    let me = members.iter().find(|m| m.node_id == Some(n.id)).expect("the node's member");
    let role = t.roles.iter().find(|x| x.name == me.role);
    // Drained nodes are checked whole before anything is written.
    let drains = role.map(|r| to_drain(r, &members)).unwrap_or_default();
    for (i, name) in r.drained.iter().enumerate() {
        if !drains.iter().any(|m| &m.name == name) && !members.iter().any(|m| &m.name == name && m.drained) {
            return Err(Error::invalid(
                &format!("/drained/{i}"),
                format!("{name} is not a leaving node this node drains"),
            ));
        }
    }
    let current = match plan_for(c, &rec, &t, &members, &by_id, me).await? {
        Ok(p) => p.generation,
        Err(PlanError::Waiting(why) | PlanError::Failed(why)) => return Err(Error::conflict(why)),
    };
    let id = rec.appliance.id;
    let mut changed = false;
    for name in &r.drained {
        changed |= c.store().appliance_member_drained(id, name).await?;
    }
    if me.state != MemberState::Leaving {
        if r.generation != current {
            if changed {
                c.wakes().appliances.notify_one();
            }
            return Err(Error::conflict(format!(
                "plan {} is not the current one ({current}); apply the plan again",
                r.generation
            )));
        }
        let (state, reason) = match (&r.error, r.ready) {
            (Some(e), _) => {
                let mut why = e.clone();
                if why.len() > MAX_REPORTED_ERROR {
                    let cut = (0..=MAX_REPORTED_ERROR).rev().find(|i| why.is_char_boundary(*i)).unwrap_or(0);
                    why.truncate(cut);
                }
                (MemberState::Failed, Some(why))
            }
            (None, true) => (MemberState::Ready, None),
            (None, false) => (MemberState::Configuring, Some("its ready check has not passed yet".to_string())),
        };
        let from = (me.state, me.generation.as_deref());
        let done = c
            .store()
            .set_appliance_member(id, &me.name, from, Some(n.id), state, reason.as_deref(), Some(&r.generation))
            .await?;
        if !done {
            // Unchanged is fine; a member moved meanwhile (by a pass of the
            // reconciler) is told to report again rather than losing it.
            let now = c.store().appliance_members(id).await?.into_iter().find(|m| m.name == me.name);
            if now.is_some_and(|m| {
                m.state != MemberState::Leaving
                    && (m.state, m.generation.as_deref()) != (state, Some(r.generation.as_str()))
            }) {
                return Err(Error::conflict(format!("member {} changed while it reported; report again", me.name)));
            }
        }
        changed |= done;
    }
    if changed {
        c.wakes().appliances.notify_one();
    }
    Ok(())
}

/// An appliance's view with each member's address (on its role's traffic
/// network) filled in from its node.
pub async fn with_addresses(c: &Conductor, mut a: Appliance) -> Result<Appliance> {
    let t = c.store().appliance_template(a.template_id).await?;
    let plans = rules::role_plans(&t.roles, &a.parameters);
    let ids: Vec<NodeId> = a.members.iter().filter_map(|m| m.node_id).collect();
    let ports = ports(c, &ids).await?;
    for m in &mut a.members {
        let (Some(id), Some(p)) = (m.node_id, plans.iter().find(|p| p.name == m.role)) else { continue };
        if let Ok(n) = c.store().node(id).await {
            let mine = ports.get(&id).map(Vec::as_slice).unwrap_or_default();
            m.address = rules::node_view(&n, mine, &m.role, 0, p.traffic_network).address;
        }
    }
    Ok(a)
}
