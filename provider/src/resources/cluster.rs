//! `tundra_cluster_template` and `tundra_cluster`: a cluster (Docker Swarm;
//! Kubernetes through k3s) on nodes tundrad makes from node groups.
//!
//! Unlike Magnum's resource, a cluster changes in place: a group's `count`,
//! new or removed worker groups, networks appended to a group, its shares,
//! and the labels are updates, never a new cluster. What a group's nodes
//! were deployed with (role, flavor, image, cluster network) does not
//! change: the plan says so at that attribute (add a new group, scale the
//! old one to 0) instead of planning a replacement. `replace` swaps named
//! nodes for new ones. Apply waits until tundrad judges the cluster
//! `active` — every node joined and seen ready by the control plane — and
//! no join secret is ever in state.

use std::collections::BTreeMap;
use std::time::Duration;

use tfplugin::schema::{Attribute, Block, Nesting, Schema};
use tfplugin::{
    AttrPath, Ctx, Diagnostic, Diagnostics, Failed, PlanChange, Resource, Timeouts, Value, modifiers, validators,
};
use tundra_api::clusters::{
    Cluster, ClusterCreate, ClusterKind, ClusterStatus, ClusterTemplate, ClusterTemplateCreate, ClusterTemplateUpdate,
    ClusterUpdate, GroupPlacement, GroupRole, NodeGroup,
};
use tundra_api::nodes::Strategy;

use super::keypair::project_id_attr;
use super::node::{ShareObj, node_shares, share_attrs, share_objs};
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator, uint, wait_gone};
use crate::client::{Client, ClientExt, Diag, nouns};

pub(crate) fn id<T: std::str::FromStr>(v: &Value<String>, at: AttrPath) -> Result<T, Diagnostic> {
    known(v)
        .unwrap_or_default()
        .parse()
        .map_err(|_| Diagnostic::error("Invalid ID", format!("{:?} is not an ID", known(v).unwrap_or(""))).at(at))
}

// ---- templates -----------------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct TemplateState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub version: Value<i64>,
        pub kind: Value<String>,
        pub description: Value<String>,
        pub bundle_image_id: Value<String>,
        pub created_at: Value<String>,
    }
}

impl TemplateState {
    pub(crate) fn from_view(t: &ClusterTemplate) -> Self {
        TemplateState {
            id: Value::Known(t.id.to_string()),
            project_id: t.project_id.map(|p| p.to_string()).into(),
            name: Value::Known(t.name.clone()),
            version: Value::Known(i64::from(t.version)),
            kind: Value::Known(t.kind.as_str().into()),
            description: Value::Known(t.description.clone()),
            bundle_image_id: t.bundle_image_id.map(|i| i.to_string()).into(),
            created_at: Value::Known(t.created_at.clone()),
        }
    }
}

const TEMPLATE_FIELDS: &[(&str, &str)] = &[
    ("/project_id", "project_id"),
    ("/name", "name"),
    ("/version", "version"),
    ("/kind", "kind"),
    ("/description", "description"),
    ("/bundle_image_id", "bundle_image_id"),
];
const TEMPLATE_REST: Rest<ClusterTemplate> = Rest { noun: &nouns::CLUSTER_TEMPLATES, fields: TEMPLATE_FIELDS };

pub struct ClusterTemplateResource;

impl Resource<Client> for ClusterTemplateResource {
    type State = TemplateState;

    fn type_name(&self) -> &'static str {
        "tundra_cluster_template"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "A cluster template version: what runs a cluster (`swarm`: Docker from the node image; \
                 `kubernetes`: k3s from an air-gap bundle image). A version never changes once made (only its \
                 description): a new version is a new template, and a template in use cannot be deleted.",
            )
            .attr(id_attr("cluster template"))
            .attr(
                Attribute::string("project_id")
                    .optional()
                    .modifier(replace())
                    .description("A project's own template; omit for a site template (site admins)."),
            )
            .attr(Attribute::string("name").required().validator(name_validator()).modifier(replace()))
            .attr(
                Attribute::number("version")
                    .required()
                    .validator(validators::range(1.0, 4_294_967_295.0))
                    .modifier(replace())
                    .description("From 1; a name and version are taken once."),
            )
            .attr(
                Attribute::string("kind")
                    .required()
                    .validator(validators::one_of(["swarm", "kubernetes"]))
                    .modifier(replace())
                    .description("`swarm` or `kubernetes`."),
            )
            .attr(description_attr())
            .attr(
                Attribute::string("bundle_image_id")
                    .optional()
                    .modifier(replace())
                    .description("`kubernetes`: the k3s air-gap bundle, uploaded as an image."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: TemplateState) -> Result<TemplateState, Failed<TemplateState>> {
        let c = ctx.client()?;
        let req = ClusterTemplateCreate {
            project_id: match known(&plan.project_id) {
                Some(p) => Some(c.project_id(Some(p)).await?),
                None => None,
            },
            name: known(&plan.name).unwrap_or_default().into(),
            version: uint(&plan.version).unwrap_or(0),
            kind: ClusterKind::parse(known(&plan.kind).unwrap_or_default()).unwrap_or(ClusterKind::Swarm),
            description: known(&plan.description).unwrap_or_default().into(),
            bundle_image_id: match plan.bundle_image_id.known() {
                Some(_) => Some(id(&plan.bundle_image_id, AttrPath::attr_root("bundle_image_id"))?),
                None => None,
            },
        };
        Ok(TemplateState::from_view(&TEMPLATE_REST.create(c, &req).await?))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: TemplateState) -> Result<Option<TemplateState>, Diagnostics> {
        Ok(TEMPLATE_REST.find(ctx, &state.id).await?.map(|t| TemplateState::from_view(&t)))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: TemplateState,
        plan: TemplateState,
    ) -> Result<TemplateState, Failed<TemplateState>> {
        let req = ClusterTemplateUpdate { description: plan.description.known().cloned() };
        Ok(TemplateState::from_view(&TEMPLATE_REST.patch(ctx, &prior.id, &req).await?))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: TemplateState) -> Result<(), Diagnostics> {
        TEMPLATE_REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<TemplateState, Diagnostics> {
        Ok(TemplateState::from_view(&TEMPLATE_REST.import(ctx, id).await?))
    }
}

// ---- clusters ------------------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct GroupPlacementObj {
        pub site: Value<String>,
        pub rack: Value<String>,
        pub island: Value<String>,
        pub strategy: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct GroupObj {
        pub name: Value<String>,
        pub role: Value<String>,
        pub flavor_id: Value<String>,
        pub image_id: Value<String>,
        pub count: Value<i64>,
        pub networks: Value<Vec<String>>,
        pub cluster_network_id: Value<String>,
        pub shares: Value<Vec<ShareObj>>,
        pub placement: Value<GroupPlacementObj>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct MemberObj {
        pub name: Value<String>,
        pub group: Value<String>,
        pub role: Value<String>,
        pub node_id: Value<String>,
        pub state: Value<String>,
        pub reason: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ClusterState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub template_id: Value<String>,
        pub keypair_id: Value<String>,
        pub node_groups: Value<Vec<GroupObj>>,
        pub labels: Value<BTreeMap<String, String>>,
        pub replace: Value<Vec<String>>,
        pub kind: Value<String>,
        pub status: Value<String>,
        pub status_reason: Value<String>,
        pub endpoint: Value<String>,
        pub ca_certificate: Value<String>,
        pub members: Value<Vec<MemberObj>>,
        pub created_at: Value<String>,
    }
}

fn group_obj(g: &NodeGroup, prior: Option<&GroupObj>) -> GroupObj {
    // Optional lists and blocks stay null where the configuration left them out.
    let was_null = |f: fn(&GroupObj) -> bool| prior.is_none_or(f);
    GroupObj {
        name: Value::Known(g.name.clone()),
        role: Value::Known(g.role.as_str().into()),
        flavor_id: Value::Known(g.flavor_id.to_string()),
        image_id: Value::Known(g.image_id.to_string()),
        count: Value::Known(i64::from(g.count)),
        networks: if g.networks.is_empty() && was_null(|p| p.networks.is_null()) {
            Value::Null
        } else {
            Value::Known(g.networks.iter().map(|n| n.to_string()).collect())
        },
        cluster_network_id: g.cluster_network_id.map(|n| n.to_string()).into(),
        shares: if g.shares.is_empty() && was_null(|p| p.shares.is_null()) {
            Value::Null
        } else {
            Value::Known(share_objs(&g.shares))
        },
        placement: if g.placement == GroupPlacement::default() && was_null(|p| p.placement.is_null()) {
            Value::Null
        } else {
            Value::Known(GroupPlacementObj {
                site: g.placement.site.clone().into(),
                rack: g.placement.rack.clone().into(),
                island: g.placement.island.clone().into(),
                strategy: g.placement.strategy.map(|s| s.as_str().to_string()).into(),
            })
        },
    }
}

impl ClusterState {
    pub(crate) fn from_view(c: &Cluster, prior: Option<&ClusterState>) -> Self {
        let prior_groups = prior.and_then(|p| p.node_groups.known());
        ClusterState {
            id: Value::Known(c.id.to_string()),
            project_id: Value::Known(c.project_id.to_string()),
            name: Value::Known(c.name.clone()),
            template_id: Value::Known(c.template_id.to_string()),
            keypair_id: c.keypair_id.map(|k| k.to_string()).into(),
            node_groups: Value::Known(
                c.groups
                    .iter()
                    .map(|g| {
                        let was = prior_groups.and_then(|gs| gs.iter().find(|p| known(&p.name) == Some(&g.name)));
                        group_obj(g, was)
                    })
                    .collect(),
            ),
            labels: if c.labels.is_empty() && prior.is_none_or(|p| p.labels.is_null()) {
                Value::Null
            } else {
                Value::Known(c.labels.clone())
            },
            replace: prior.map(|p| p.replace.clone()).unwrap_or(Value::Null),
            kind: Value::Known(c.kind.as_str().into()),
            status: Value::Known(c.status.as_str().into()),
            status_reason: c.status_reason.clone().into(),
            endpoint: c.endpoint.clone().into(),
            ca_certificate: c.ca_certificate.clone().into(),
            members: Value::Known(
                c.members
                    .iter()
                    .map(|m| MemberObj {
                        name: Value::Known(m.name.clone()),
                        group: Value::Known(m.group.clone()),
                        role: Value::Known(m.role.as_str().into()),
                        node_id: m.node_id.map(|n| n.to_string()).into(),
                        state: Value::Known(m.state.as_str().into()),
                        reason: m.reason.clone().into(),
                    })
                    .collect(),
            ),
            created_at: Value::Known(c.created_at.clone()),
        }
    }

    fn groups(&self) -> Result<Vec<NodeGroup>, Diagnostic> {
        let mut out = Vec::new();
        for (i, g) in self.node_groups.known().cloned().unwrap_or_default().iter().enumerate() {
            let at = AttrPath::attr_root("node_groups").index(i);
            let mut networks = Vec::new();
            for (k, n) in g.networks.known().cloned().unwrap_or_default().iter().enumerate() {
                networks.push(id(&Value::Known(n.clone()), at.attr("networks").index(k))?);
            }
            let p = g.placement.known();
            out.push(NodeGroup {
                name: known(&g.name).unwrap_or_default().into(),
                role: GroupRole::parse(known(&g.role).unwrap_or_default()).unwrap_or(GroupRole::Worker),
                flavor_id: id(&g.flavor_id, at.attr("flavor_id"))?,
                image_id: id(&g.image_id, at.attr("image_id"))?,
                count: uint(&g.count).unwrap_or(0),
                networks,
                cluster_network_id: match g.cluster_network_id.known() {
                    Some(_) => Some(id(&g.cluster_network_id, at.attr("cluster_network_id"))?),
                    None => None,
                },
                shares: node_shares(&g.shares, &at.attr("shares"))?,
                placement: GroupPlacement {
                    site: p.and_then(|p| p.site.known().cloned()),
                    rack: p.and_then(|p| p.rack.known().cloned()),
                    island: p.and_then(|p| p.island.known().cloned()),
                    strategy: p.and_then(|p| known(&p.strategy)).and_then(Strategy::parse),
                },
            });
        }
        Ok(out)
    }
}

/// The service's JSON pointer as the attribute it blames: `/groups/1/count`
/// is `node_groups[1].count`.
fn blame(pointer: &str) -> Option<AttrPath> {
    let mut parts = pointer.trim_start_matches('/').split('/');
    let top = parts.next()?;
    let mut path = AttrPath::attr_root(match top {
        "groups" => "node_groups",
        "project_id" | "name" | "template_id" | "keypair_id" | "labels" | "replace" => top,
        _ => return None,
    });
    if top == "labels" {
        // `/labels/KEY`: a map key (JSON pointer escapes undone).
        return Some(match parts.next() {
            Some(k) => path.key(&k.replace("~1", "/").replace("~0", "~")),
            None => path,
        });
    }
    for p in parts {
        path = match p.parse::<usize>() {
            Ok(i) => path.index(i),
            // `/groups/0/networks/1/network_id`: the list entry is the ID itself.
            Err(_) if p == "network_id" => path,
            Err(_) => path.attr(p),
        };
    }
    Some(path)
}

fn failed(e: tundra_client::ApiError, what: &str) -> Diagnostic {
    let d = e.diag(what);
    match e.pointer().and_then(blame) {
        Some(at) => d.at(at),
        None => d,
    }
}

/// Cluster and group names end up in host names.
pub(crate) fn host_label() -> std::sync::Arc<dyn validators::Validator> {
    validators::regex(
        "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        "lower-case letters, digits and inner '-' (it becomes part of its nodes' host names)",
    )
}

/// Wait until tundrad judges the cluster active; degraded is an error
/// naming the nodes and why (the cluster stays in state).
async fn wait_active(
    ctx: &Ctx<Client>,
    cl: Cluster,
    plan: &ClusterState,
) -> Result<ClusterState, Failed<ClusterState>> {
    // (A change tundrad accepted reads `updating` until it is judged.)
    let id = cl.id.to_string();
    super::wait_judged(
        ctx,
        &nouns::CLUSTERS,
        &id,
        cl,
        |cl| match cl.status {
            ClusterStatus::Active => Some(Ok(())),
            ClusterStatus::Degraded => Some(Err(Diagnostic::error(
                "Cluster degraded",
                format!(
                    "Cluster {}: {}. Fix or replace the node (`replace = [\"NAME\"]`); the others are left as they are.",
                    cl.name,
                    cl.status_reason.clone().unwrap_or_else(|| "no reason given".into())
                ),
            ))),
            _ => None,
        },
        |cl| {
            Diagnostic::error(
                "Cluster not active yet",
                format!(
                    "Cluster {} is {}: {}. It stays in state; apply again to wait, or raise the timeouts.",
                    cl.name,
                    cl.status.as_str(),
                    cl.status_reason.clone().unwrap_or_default()
                ),
            )
        },
        |cl| ClusterState::from_view(cl, Some(plan)),
    )
    .await
}

pub struct ClusterResource;

impl Resource<Client> for ClusterResource {
    type State = ClusterState;

    fn type_name(&self) -> &'static str {
        "tundra_cluster"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        let group = vec![
            Attribute::string("name")
                .required()
                .validator(host_label())
                .description("Unique in the cluster; its nodes are `CLUSTER-GROUP-N`."),
            Attribute::string("role")
                .required()
                .validator(validators::one_of(["control_plane", "worker"]))
                .description("`control_plane` (exactly one group: Swarm managers / k3s servers) or `worker`."),
            Attribute::string("flavor_id").required(),
            Attribute::string("image_id").required().description("Swarm: an image with Docker (`docker.io`)."),
            Attribute::number("count")
                .required()
                .validator(validators::range(0.0, 999.0))
                .description("Changed in place: nodes are added, or drained, removed from the cluster and cleaned. The control plane's is odd."),
            Attribute::list("networks", tfplugin::Type::String)
                .optional()
                .description("Networks beyond provisioning, in order; new ones may be appended in place."),
            Attribute::string("cluster_network_id")
                .optional()
                .description("Which of `networks` carries cluster traffic (default: the first, else provisioning)."),
            Attribute::nested("shares", Nesting::List, share_attrs())
                .optional()
                .description("Shares every node of the group mounts; changed in place."),
            Attribute::nested(
                "placement",
                Nesting::Single,
                vec![
                    Attribute::string("site").optional(),
                    Attribute::string("rack").optional(),
                    Attribute::string("island").optional(),
                    Attribute::string("strategy").optional().validator(validators::one_of(["pack", "spread"])),
                ],
            )
            .optional()
            .description("Where its nodes may go (the control plane is always spread across racks)."),
        ];
        Schema::new(
            Block::new(
                "A cluster (Docker Swarm; Kubernetes with k3s) on nodes tundrad makes from `node_groups`. Apply \
                 waits until the cluster is `active`: every node joined and seen ready by the control plane. \
                 Counts, new worker groups, appended networks, shares and labels change in place; `replace` \
                 swaps named nodes. No join secret is ever in state.",
            )
            .attr(id_attr("cluster"))
            .attr(project_id_attr("cluster"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(host_label())
                    .modifier(replace())
                    .description("Unique in the project; the first part of its nodes' host names."),
            )
            .attr(Attribute::string("template_id").required().modifier(replace()))
            .attr(Attribute::string("keypair_id").optional().modifier(replace()).description("SSH key for its nodes."))
            .attr(Attribute::nested("node_groups", Nesting::List, group).required())
            .attr(Attribute::map("labels", tfplugin::Type::String).optional().description("Changed in place."))
            .attr(
                Attribute::list("replace", tfplugin::Type::String)
                    .optional()
                    .description("Member names to replace with new nodes (one per group at a time); a name added here is replaced on the next apply."),
            )
            .attr(Attribute::string("kind").computed().modifier(keep()).description("From the template."))
            .attr(Attribute::string("status").computed().description("`active` after apply."))
            .attr(Attribute::string("status_reason").computed().description("What it waits for, or which nodes failed and why."))
            .attr(Attribute::string("endpoint").computed().description("Where the control plane answers (Kubernetes: `https://ADDRESS:6443`; Swarm: `ADDRESS:2377`)."))
            .attr(Attribute::string("ca_certificate").computed().description("Kubernetes: the API server's CA certificate (PEM), once the control plane reported it."))
            .attr(
                Attribute::nested(
                    "members",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::string("group").computed(),
                        Attribute::string("role").computed(),
                        Attribute::string("node_id").computed(),
                        Attribute::string("state").computed(),
                        Attribute::string("reason").computed(),
                    ],
                )
                .computed()
                .description("Its nodes, each with its state in the cluster."),
            )
            .attr(created_at_attr()),
        )
    }

    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts {
            create: Some(Duration::from_secs(3600)),
            update: Some(Duration::from_secs(3600)),
            delete: Some(Duration::from_secs(3600)),
        })
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut PlanChange<ClusterState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
        let Some(prior) = change.prior.clone() else { return };
        // What a group's nodes were deployed with is not changed in place,
        // and not by replacing the whole cluster either: said here, at the attribute.
        let (Some(old), Some(new)) = (prior.node_groups.known(), change.planned.node_groups.known()) else { return };
        for (i, g) in new.iter().enumerate() {
            let Some(was) = old.iter().find(|o| o.name.is_known() && known(&o.name) == known(&g.name)) else {
                continue;
            };
            for (attr, a, b) in [
                ("role", &was.role, &g.role),
                ("flavor_id", &was.flavor_id, &g.flavor_id),
                ("image_id", &was.image_id, &g.image_id),
                ("cluster_network_id", &was.cluster_network_id, &g.cluster_network_id),
            ] {
                if a.is_known() && b.is_known() && a != b || a.is_null() != b.is_null() && !b.is_unknown() {
                    change.diagnostics.push(
                        Diagnostic::error(
                            "Not changed in place",
                            format!(
                                "Group {}'s {attr} is what its nodes were deployed with. Add a new group with the new value and set this group's count to 0; the cluster stays.",
                                known(&g.name).unwrap_or_default()
                            ),
                        )
                        .at(AttrPath::attr_root("node_groups").index(i).attr(attr)),
                    );
                }
            }
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ClusterState) -> Result<ClusterState, Failed<ClusterState>> {
        let c = ctx.client()?;
        let req = ClusterCreate {
            project_id: c.project_id(known(&plan.project_id)).await?,
            name: known(&plan.name).unwrap_or_default().into(),
            template_id: id(&plan.template_id, AttrPath::attr_root("template_id"))?,
            keypair_id: match plan.keypair_id.known() {
                Some(_) => Some(id(&plan.keypair_id, AttrPath::attr_root("keypair_id"))?),
                None => None,
            },
            groups: plan.groups()?,
            labels: plan.labels.known().cloned().unwrap_or_default(),
        };
        let cl: Cluster =
            c.create(&nouns::CLUSTERS, &req).await.map_err(|e| failed(e, "Could not create the cluster"))?;
        wait_active(ctx, cl, &plan).await
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ClusterState) -> Result<Option<ClusterState>, Diagnostics> {
        let c = ctx.client()?;
        let cl = c
            .find(&nouns::CLUSTERS, &super::state_id(&state.id))
            .await
            .map_err(|e| e.diag("Could not read the cluster"))?;
        Ok(cl
            .filter(|x: &Cluster| x.status != ClusterStatus::Deleting)
            .map(|x| ClusterState::from_view(&x, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ClusterState,
        plan: ClusterState,
    ) -> Result<ClusterState, Failed<ClusterState>> {
        let c = ctx.client()?;
        // Names new in `replace` that are still members (one replaced before,
        // or before an import, is gone: its successor has another name).
        let before = prior.replace.known().cloned().unwrap_or_default();
        let members: Vec<String> =
            prior.members.known().into_iter().flatten().filter_map(|m| m.name.known().cloned()).collect();
        let replace: Vec<String> = plan
            .replace
            .known()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !before.contains(n) && members.contains(n))
            .collect();
        let req = ClusterUpdate {
            groups: Some(plan.groups()?),
            labels: Some(plan.labels.known().cloned().unwrap_or_default()),
            replace,
        };
        let cl: Cluster = c
            .update(&nouns::CLUSTERS, &super::state_id(&prior.id), &req)
            .await
            .map_err(|e| failed(e, "Could not update the cluster"))?;
        wait_active(ctx, cl, &plan).await
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ClusterState) -> Result<(), Diagnostics> {
        let id = super::state_id(&state.id);
        let c = ctx.client()?;
        c.delete(&nouns::CLUSTERS, &id).await.map_err(|e| e.diag("Could not delete the cluster"))?;
        // (Its nodes' machines are cleaned before it goes.)
        wait_gone(ctx, &nouns::CLUSTERS, &id, "cluster").await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ClusterState, Diagnostics> {
        let cl: Cluster = ctx
            .client()?
            .get(&nouns::CLUSTERS, id)
            .await
            .map_err(|e| e.diag(&format!("Cannot import cluster {id:?}")))?;
        Ok(ClusterState::from_view(&cl, None))
    }
}

// ---- credentials ---------------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct CredentialsObj {
        pub cluster_id: Value<String>,
        pub ttl_seconds: Value<i64>,
        pub endpoint: Value<String>,
        pub user: Value<String>,
        pub private_key: Value<String>,
        pub certificate: Value<String>,
        pub ca_certificate: Value<String>,
        pub kubeconfig: Value<String>,
        pub expires_at: Value<String>,
    }
}

/// Short-lived credentials for a cluster's control plane, made fresh on
/// each run: never in state or plan.
pub struct ClusterCredentialsResource;

impl tfplugin::EphemeralResource<Client> for ClusterCredentialsResource {
    type State = CredentialsObj;

    fn type_name(&self) -> &'static str {
        "tundra_cluster_credentials"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Short-lived credentials for a cluster's control plane, made fresh for each run and never kept. \
                 Swarm: an SSH key and a certificate the cluster's own authority signed, for \
                 `DOCKER_HOST = endpoint`. Kubernetes: a client certificate (group `system:masters`) the \
                 cluster's client CA signed, as a ready `kubeconfig`. Ephemeral: never in state or plan.",
            )
            .attr(Attribute::string("cluster_id").required().description("The cluster (`tundra_cluster.id`)."))
            .attr(
                Attribute::number("ttl_seconds")
                    .optional()
                    .validator(validators::range(60.0, 43200.0))
                    .description("How long they last (default 3600)."),
            )
            .attr(
                Attribute::string("endpoint")
                    .computed()
                    .description("Swarm: `ssh://tundra-admin@ADDRESS`; Kubernetes: `https://ADDRESS:6443`."),
            )
            .attr(Attribute::string("user").computed())
            .attr(
                Attribute::string("private_key")
                    .computed()
                    .sensitive()
                    .description("Swarm: OpenSSH format; Kubernetes: PKCS#8 PEM."),
            )
            .attr(
                Attribute::string("certificate").computed().description(
                    "Swarm: save beside the key as `KEY-cert.pub`; Kubernetes: the client certificate (PEM).",
                ),
            )
            .attr(Attribute::string("ca_certificate").computed().description("Kubernetes: the API server's CA (PEM)."))
            .attr(
                Attribute::string("kubeconfig")
                    .computed()
                    .sensitive()
                    .description("Kubernetes: a kubeconfig with endpoint, CA, certificate and key."),
            )
            .attr(Attribute::string("expires_at").computed().description("RFC 3339.")),
        )
    }

    async fn open(
        &self,
        ctx: &Ctx<Client>,
        config: CredentialsObj,
    ) -> Result<tfplugin::resource::Opened<CredentialsObj>, Diagnostics> {
        let c = ctx.client()?;
        let id = known(&config.cluster_id).unwrap_or_default();
        let x = c
            .cluster_credentials(id, uint(&config.ttl_seconds))
            .await
            .map_err(|e| e.diag("Could not get the cluster's credentials"))?;
        Ok(tfplugin::resource::Opened {
            result: CredentialsObj {
                cluster_id: config.cluster_id.clone(),
                ttl_seconds: config.ttl_seconds.clone(),
                endpoint: Value::Known(x.endpoint),
                user: Value::Known(x.user),
                private_key: Value::Known(x.private_key),
                certificate: Value::Known(x.certificate),
                ca_certificate: x.ca_certificate.into(),
                kubeconfig: x.kubeconfig.into(),
                expires_at: Value::Known(x.expires_at),
            },
            renew_at: None,
            private: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_pointers_name_the_attribute_to_blame() {
        let at = |p: &str| blame(p).map(|a| format!("{a:?}"));
        assert_eq!(
            at("/groups/1/count"),
            Some(format!("{:?}", AttrPath::attr_root("node_groups").index(1).attr("count")))
        );
        assert_eq!(
            at("/groups/0/networks/1/network_id"),
            Some(format!("{:?}", AttrPath::attr_root("node_groups").index(0).attr("networks").index(1)))
        );
        assert_eq!(
            at("/groups/0/shares/2/share_id"),
            Some(format!("{:?}", AttrPath::attr_root("node_groups").index(0).attr("shares").index(2).attr("share_id")))
        );
        assert_eq!(at("/replace/0"), Some(format!("{:?}", AttrPath::attr_root("replace").index(0))));
        assert_eq!(at("/template_id"), Some(format!("{:?}", AttrPath::attr_root("template_id"))));
        assert_eq!(at("/labels/team~1x"), Some(format!("{:?}", AttrPath::attr_root("labels").key("team/x"))));
        assert_eq!(at("/colour"), None);
    }
}
