//! `tundra_node`: a bare-metal server of a flavor, with an image, placed
//! by tundrad (locality, groups) and deployed with a config drive.
//!
//! Long deploys never orphan hardware: the node is in state from the moment
//! tundrad accepted it. When `timeouts.create` fires first, the apply ends
//! with a warning and the node in state as `building`; the next plan shows
//! an update that waits for it (refresh reports how it went). A node that
//! failed (`error`) is planned for replacement, with tundrad's reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{
    AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Nesting, PlanChange, Resource, Timeouts, Value, modifiers,
    validators,
};
use tundra_api::fabric::SwitchPortState;
use tundra_api::nodes::{
    GroupPolicy, Node, NodeCreate, NodeNetworkRequest, NodeStatus, NodeUpdate, Placement, Strategy,
};
use tundra_api::shares::{AccessLevel, NodeShare};

use super::keypair::project_id_attr;
pub use super::machine::LocationObj;
use super::{Rest, created_at_attr, id_attr, known, name_validator};
use crate::client::{Client, ClientExt, Diag, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct PlacementObj {
        pub site: Value<String>,
        pub rack: Value<String>,
        pub island: Value<String>,
        pub group: Value<String>,
        pub policy: Value<String>,
        pub strategy: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct AddressObj {
        pub network: Value<String>,
        pub mac: Value<String>,
        pub address: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct NetworkRef {
        pub network_id: Value<String>,
        pub port_id: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct NetworkPortObj {
        pub network_id: Value<String>,
        pub port_id: Value<String>,
        pub mac: Value<String>,
        pub address: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct ShareObj {
        pub share_id: Value<String>,
        pub mount_point: Value<String>,
        pub access: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct NodeState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub flavor_id: Value<String>,
        pub image_id: Value<String>,
        pub keypair_id: Value<String>,
        pub user_data: Value<String>,
        pub metadata: Value<BTreeMap<String, String>>,
        pub placement: Value<PlacementObj>,
        pub networks: Value<Vec<NetworkRef>>,
        pub network_ports: Value<Vec<NetworkPortObj>>,
        pub shares: Value<Vec<ShareObj>>,
        pub drift: Value<String>,
        pub status: Value<String>,
        pub status_reason: Value<String>,
        pub addresses: Value<Vec<AddressObj>>,
        pub access_ip: Value<String>,
        pub location: Value<LocationObj>,
        pub machine_id: Value<String>,
        pub created_at: Value<String>,
    }
}

/// A `shares` list (at `at`) as the API's mounts.
pub fn node_shares(shares: &Value<Vec<ShareObj>>, at: &AttrPath) -> Result<Vec<NodeShare>, Diagnostic> {
    let mut out = Vec::new();
    for (i, m) in shares.known().cloned().unwrap_or_default().iter().enumerate() {
        out.push(NodeShare {
            share_id: known(&m.share_id)
                .unwrap_or_default()
                .parse()
                .map_err(|_| Diagnostic::error("Invalid share_id", "Not an ID.").at(at.index(i).attr("share_id")))?,
            mount_point: known(&m.mount_point).unwrap_or_default().into(),
            access: AccessLevel::parse(known(&m.access).unwrap_or("rw")).unwrap_or(AccessLevel::Rw),
        });
    }
    Ok(out)
}

/// The `shares` attribute's nested attributes (a node's, a node group's).
pub fn share_attrs() -> Vec<Attribute> {
    vec![
        Attribute::string("share_id").required().description("A share of the node's project."),
        Attribute::string("mount_point").required().description("An absolute path on the node, e.g. `/data`."),
        Attribute::string("access")
            .optional()
            .computed()
            .validator(validators::one_of(["rw", "ro"]))
            .description("`rw` (default) or `ro`."),
    ]
}

/// The API's mounts as a `shares` list.
pub fn share_objs(shares: &[NodeShare]) -> Vec<ShareObj> {
    shares
        .iter()
        .map(|m| ShareObj {
            share_id: Value::Known(m.share_id.to_string()),
            mount_point: Value::Known(m.mount_point.clone()),
            access: Value::Known(m.access.as_str().into()),
        })
        .collect()
}

impl NodeState {
    /// State from the service's view; `user_data` and `placement` are what
    /// the configuration said (tundrad returns only the user data's hash).
    pub fn from_view(n: &Node, prior: Option<&NodeState>) -> Self {
        let placement = match prior {
            Some(p) => p.placement.clone(),
            None => placement_obj(&n.placement),
        };
        let addresses: Vec<AddressObj> = n
            .addresses
            .iter()
            .map(|a| AddressObj {
                network: Value::Known(a.network.clone()),
                mac: Value::Known(a.mac.clone()),
                address: a.address.clone().into(),
            })
            .collect();
        NodeState {
            id: Value::Known(n.id.to_string()),
            project_id: Value::Known(n.project_id.to_string()),
            name: Value::Known(n.name.clone()),
            flavor_id: Value::Known(n.flavor_id.to_string()),
            image_id: Value::Known(n.image_id.to_string()),
            keypair_id: n.keypair_id.map(|k| k.to_string()).into(),
            user_data: prior.map(|p| p.user_data.clone()).unwrap_or(Value::Null),
            metadata: if n.metadata.is_empty() && prior.is_some_and(|p| p.metadata.is_null()) {
                Value::Null
            } else {
                Value::Known(n.metadata.clone())
            },
            placement,
            networks: if n.networks.is_empty() && prior.is_none_or(|p| p.networks.is_null()) {
                Value::Null
            } else {
                Value::Known(
                    n.networks
                        .iter()
                        .map(|x| NetworkRef {
                            network_id: if x.auto { Value::Known(x.network_id.to_string()) } else { Value::Null },
                            port_id: if x.auto { Value::Null } else { Value::Known(x.port_id.to_string()) },
                        })
                        .collect(),
                )
            },
            network_ports: Value::Known(
                n.networks
                    .iter()
                    .map(|x| NetworkPortObj {
                        network_id: Value::Known(x.network_id.to_string()),
                        port_id: Value::Known(x.port_id.to_string()),
                        mac: x.mac.clone().into(),
                        address: x.fixed_ips.first().and_then(|f| f.address.clone()).into(),
                    })
                    .collect(),
            ),
            shares: shares_of(n, prior),
            drift: n.drift.clone().into(),
            status: Value::Known(n.status.as_str().into()),
            status_reason: n.status_reason.clone().into(),
            access_ip: n.addresses.iter().find_map(|a| a.address.clone()).into(),
            addresses: Value::Known(addresses),
            location: Value::Known(LocationObj {
                site: n.location.site.clone().into(),
                rack: n.location.rack.clone().into(),
                island: n.location.island.clone().into(),
            }),
            machine_id: n.machine_id.map(|m| m.to_string()).into(),
            created_at: Value::Known(n.created_at.clone()),
        }
    }

    /// The `networks` request (what is in the plan).
    fn networks(&self) -> Result<Vec<NodeNetworkRequest>, Diagnostic> {
        let mut out = Vec::new();
        for (i, r) in self.networks.known().cloned().unwrap_or_default().iter().enumerate() {
            let at = AttrPath::attr_root("networks").index(i);
            fn id<T: std::str::FromStr>(v: &Value<String>, at: &AttrPath, what: &str) -> Result<Option<T>, Diagnostic> {
                match known(v) {
                    Some(s) => s.parse().map(Some).map_err(|_| {
                        Diagnostic::error(format!("Invalid {what}"), format!("{s:?} is not an ID"))
                            .at(at.clone().attr(what))
                    }),
                    None => Ok(None),
                }
            }
            out.push(NodeNetworkRequest {
                network_id: id(&r.network_id, &at, "network_id")?,
                port_id: id(&r.port_id, &at, "port_id")?,
            });
        }
        Ok(out)
    }

    /// The `shares` request (what is in the plan).
    fn shares(&self) -> Result<Vec<NodeShare>, Diagnostic> {
        node_shares(&self.shares, &AttrPath::attr_root("shares"))
    }

    fn placement(&self) -> Placement {
        let Some(p) = self.placement.known() else { return Placement::default() };
        Placement {
            site: p.site.known().cloned(),
            rack: p.rack.known().cloned(),
            island: p.island.known().cloned(),
            group: p.group.known().cloned(),
            policy: match known(&p.policy) {
                Some("affinity") => Some(GroupPolicy::Affinity),
                Some("anti_affinity") => Some(GroupPolicy::AntiAffinity),
                _ => None,
            },
            strategy: match known(&p.strategy) {
                Some("spread") => Some(Strategy::Spread),
                Some("pack") => Some(Strategy::Pack),
                _ => None,
            },
        }
    }
}

/// The node's mounts in the order the configuration gave them (tundrad
/// lists them by mount point); tundrad's order when they differ.
fn shares_of(n: &Node, prior: Option<&NodeState>) -> Value<Vec<ShareObj>> {
    let key = |share: &str, point: &str, access: &str| (share.to_string(), point.to_string(), access.to_string());
    let mut have: Vec<_> =
        n.mounts.iter().map(|m| key(&m.share_id.to_string(), &m.mount_point, m.access.as_str())).collect();
    if have.is_empty() && prior.is_none_or(|p| p.shares.is_null()) {
        return Value::Null;
    }
    let objs = |v: &[(String, String, String)]| {
        Value::Known(
            v.iter()
                .map(|(s, p, a)| ShareObj {
                    share_id: Value::Known(s.clone()),
                    mount_point: Value::Known(p.clone()),
                    access: Value::Known(a.clone()),
                })
                .collect(),
        )
    };
    if let Some(want) = prior.and_then(|p| p.shares.known()) {
        let mut want: Vec<_> = want
            .iter()
            .map(|m| {
                key(
                    known(&m.share_id).unwrap_or(""),
                    known(&m.mount_point).unwrap_or(""),
                    known(&m.access).unwrap_or("rw"),
                )
            })
            .collect();
        let ordered = want.clone();
        want.sort();
        have.sort();
        if want == have {
            return objs(&ordered);
        }
    }
    objs(&have)
}

fn placement_obj(p: &Placement) -> Value<PlacementObj> {
    if *p == Placement::default() {
        return Value::Null;
    }
    Value::Known(PlacementObj {
        site: p.site.clone().into(),
        rack: p.rack.clone().into(),
        island: p.island.clone().into(),
        group: p.group.clone().into(),
        policy: p.policy.map(|x| x.as_str().to_string()).into(),
        strategy: p.strategy.map(|s| if s == Strategy::Spread { "spread" } else { "pack" }.to_string()).into(),
    })
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/flavor_id", "flavor_id"),
    ("/image_id", "image_id"),
    ("/keypair_id", "keypair_id"),
    ("/user_data", "user_data"),
    ("/metadata", "metadata"),
    ("/placement", "placement"),
    ("/networks", "networks"),
    ("/shares", "shares"),
];

const REST: Rest<Node> = Rest { noun: &nouns::NODES, fields: FIELDS };

pub struct NodeResource;

/// Poll the node until it leaves `building` (or the deadline nears).
async fn wait_built(ctx: &Ctx<Client>, c: &Client, n: Node, plan: &NodeState) -> Result<NodeState, Failed<NodeState>> {
    let id = n.id.to_string();
    let mut n = n;
    loop {
        let ports_settled = n.networks.iter().all(|x| x.state.is_none_or(|s| s == SwitchPortState::InSync));
        if let Some(x) = n.networks.iter().find(|x| x.state == Some(SwitchPortState::Failed)) {
            return Err(Failed::with_state(
                Diagnostic::error(
                    "Node's switch port could not be programmed",
                    x.drift.clone().unwrap_or_else(|| "the switch refused".into()),
                ),
                NodeState::from_view(&n, Some(plan)),
            ));
        }
        match n.status {
            NodeStatus::Active if ports_settled => return Ok(NodeState::from_view(&n, Some(plan))),
            NodeStatus::Active => {}
            NodeStatus::Building => {}
            _ => {
                return Err(Failed::with_state(
                    Diagnostic::error(
                        "Node deploy failed",
                        format!(
                            "Node {} is {}: {}. Its machine goes back through cleaning; the node stays in state (tainted) and is replaced on the next apply.",
                            n.name,
                            n.status.as_str(),
                            n.status_reason.clone().unwrap_or_else(|| "no reason given".into())
                        ),
                    ),
                    NodeState::from_view(&n, Some(plan)),
                ));
            }
        }
        if ctx.deadline().is_some_and(|d| Instant::now() + Duration::from_secs(2) >= d) || ctx.stopping() {
            return Err(Failed::with_state(
                Diagnostic::warning(
                    "Node still building",
                    format!(
                        "Node {} ({}) is still deploying when timeouts.create ran out. It is in state as building; the next plan shows an update that waits for it, and refresh reports how it went.",
                        n.name, n.id
                    ),
                ),
                NodeState::from_view(&n, Some(plan)),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        n = c
            .get(&nouns::NODES, &id)
            .await
            .map_err(|e| Failed::with_state(e.diag("Could not read the node"), NodeState::from_view(&n, Some(plan))))?;
    }
}

impl Resource<Client> for NodeResource {
    type State = NodeState;

    fn type_name(&self) -> &'static str {
        "tundra_node"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let placement = vec![
            Attribute::string("site").optional().validator(name_validator()),
            Attribute::string("rack").optional().validator(name_validator()),
            Attribute::string("island")
                .optional()
                .validator(name_validator())
                .description("Only machines of this island (a group of racks on one fast fabric)."),
            Attribute::string("group")
                .optional()
                .validator(name_validator())
                .description("A placement group of the project; its nodes follow `policy`."),
            Attribute::string("policy")
                .optional()
                .validator(validators::one_of(["affinity", "anti_affinity"]))
                .description("`affinity`: the group's nodes share an island; `anti_affinity`: no two share a rack."),
            Attribute::string("strategy")
                .optional()
                .validator(validators::one_of(["pack", "spread"]))
                .description("`pack` (default): fill the busiest racks first; `spread`: the emptiest."),
        ];
        let addresses = vec![
            Attribute::string("network").computed(),
            Attribute::string("mac").computed(),
            Attribute::string("address").computed(),
        ];
        let location = vec![
            Attribute::string("site").computed(),
            Attribute::string("rack").computed(),
            Attribute::string("island").computed(),
        ];
        Schema::new(
            Block::new(
                "A bare-metal node: tundrad places it on a free machine of the flavor (honouring `placement`), \
                 writes the image and a config drive (OpenStack layout: keys, metadata, network, user data) and \
                 boots it. Create waits until it is `active`; delete waits until its machine is cleaned.",
            )
            .attr(id_attr("node"))
            .attr(project_id_attr("node"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .modifier(replace())
                    .description("Unique in the project; also the host name."),
            )
            .attr(Attribute::string("flavor_id").required().modifier(replace()).description("What kind of machine."))
            .attr(
                Attribute::string("image_id")
                    .required()
                    .modifier(replace())
                    .description("An active image with a partition table; a new image replaces the node."),
            )
            .attr(
                Attribute::string("keypair_id")
                    .optional()
                    .modifier(replace())
                    .description("SSH key for the image's default user."),
            )
            .attr(
                Attribute::string("user_data")
                    .optional()
                    .sensitive()
                    .modifier(replace())
                    .description("cloud-init user data (≤ 64 KiB); on the config drive and the metadata service."),
            )
            .attr(
                Attribute::map("metadata", tfplugin::Type::String)
                    .optional()
                    .description("Key/value pairs (`meta` in meta_data.json); changed in place."),
            )
            .attr(
                Attribute::nested("placement", Nesting::Single, placement)
                    .optional()
                    .modifier(replace())
                    .description("Where the node may go and whom it should be near."),
            )
            .attr(
                Attribute::nested(
                    "networks",
                    Nesting::List,
                    vec![
                        Attribute::string("network_id")
                            .optional()
                            .description("A network: tundrad makes the node a port on it."),
                        Attribute::string("port_id")
                            .optional()
                            .description("Or a port of the project (its addresses stay yours)."),
                    ],
                )
                .optional()
                .description(
                    "The node's networks beyond provisioning, in order: each goes to the machine's next free data \
                     interface on that physical network. Changed in place — the switch ports move, no redeploy.",
                ),
            )
            .attr(
                Attribute::nested(
                    "network_ports",
                    Nesting::List,
                    vec![
                        Attribute::string("network_id").computed(),
                        Attribute::string("port_id").computed(),
                        Attribute::string("mac").computed(),
                        Attribute::string("address").computed(),
                    ],
                )
                .computed()
                .description(
                    "Per entry of `networks`: the port, the interface (MAC) carrying it and its first address.",
                ),
            )
            .attr(Attribute::nested("shares", Nesting::List, share_attrs()).optional().description(
                "Shares the node mounts: tundrad makes each one's access rule and puts the mount (its key in a \
                     root-only file) on the config drive. Changed in place: the rules follow at once.",
            ))
            .attr(super::port::drift_attr("one of the node's ports"))
            .attr(Attribute::string("status").computed().description("`building`, `active`, `error` or `deleting`."))
            .attr(Attribute::string("status_reason").computed().description("Why it is in error (tundrad's words)."))
            .attr(
                Attribute::nested("addresses", Nesting::List, addresses)
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("Addresses per network and interface."),
            )
            .attr(
                Attribute::string("access_ip")
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("The first fixed address (what to SSH to)."),
            )
            .attr(
                Attribute::nested("location", Nesting::Single, location)
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("Where tundrad placed it."),
            )
            .attr(
                Attribute::string("machine_id")
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("The machine it runs on (site admins only; null for others)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts {
            create: Some(Duration::from_secs(1800)),
            update: Some(Duration::from_secs(1800)),
            delete: Some(Duration::from_secs(1800)),
        })
    }

    fn importable(&self) -> bool {
        true
    }

    fn validate_config(&self, config: &NodeState, diags: &mut Diagnostics) {
        if let Some(p) = config.placement.known() {
            if p.group.is_known() && p.policy.is_null() {
                diags.push(
                    Diagnostic::error("Group without a policy", "Set policy = \"affinity\" or \"anti_affinity\".")
                        .at(AttrPath::attr_root("placement").attr("policy")),
                );
            }
            if p.policy.is_known() && p.group.is_null() {
                diags.push(
                    Diagnostic::error("Policy without a group", "Name the placement group the policy applies to.")
                        .at(AttrPath::attr_root("placement").attr("group")),
                );
            }
        }
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut PlanChange<NodeState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
        super::port::plan_repair(change, |s| &mut s.drift);
        let Some(prior) = &change.prior else { return };
        match known(&prior.status) {
            // Still deploying (timeouts.create ran out): plan an update that waits.
            Some("building") => change.planned.status = Value::Unknown,
            // Failed: replace it, saying why.
            Some("error") => {
                change.planned.status = Value::Unknown;
                change.requires_replace.push(AttrPath::attr_root("status"));
                change.diagnostics.push(Diagnostic::warning(
                    "Node failed; it will be replaced",
                    format!(
                        "Node {} failed: {}",
                        known(&prior.name).unwrap_or_default(),
                        known(&prior.status_reason).unwrap_or("no reason given")
                    ),
                ));
            }
            _ => {}
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: NodeState) -> Result<NodeState, Failed<NodeState>> {
        let c = ctx.client()?;
        let project_id = c.project_id(known(&plan.project_id)).await?;
        fn id<T: std::str::FromStr>(v: &Value<String>, what: &str) -> Result<T, Diagnostic> {
            known(v).unwrap_or_default().parse().map_err(|_| {
                Diagnostic::error(format!("Invalid {what}"), format!("{:?} is not an ID", known(v).unwrap_or("")))
                    .at(AttrPath::attr_root(what))
            })
        }
        let req = NodeCreate {
            project_id,
            name: known(&plan.name).unwrap_or_default().into(),
            flavor_id: id(&plan.flavor_id, "flavor_id")?,
            image_id: id(&plan.image_id, "image_id")?,
            keypair_id: match plan.keypair_id.known() {
                Some(_) => Some(id(&plan.keypair_id, "keypair_id")?),
                None => None,
            },
            user_data: plan.user_data.known().cloned(),
            metadata: plan.metadata.known().cloned().unwrap_or_default(),
            placement: plan.placement(),
            networks: plan.networks()?,
            shares: plan.shares()?,
        };
        let n: Node = REST.create(c, &req).await?;
        wait_built(ctx, c, n, &plan).await
    }

    async fn read(&self, ctx: &Ctx<Client>, state: NodeState) -> Result<Option<NodeState>, Diagnostics> {
        let n: Option<Node> = REST.find(ctx, &state.id).await?;
        // A node being deleted behind Terraform's back is gone for planning.
        Ok(n.filter(|n| n.status != NodeStatus::Deleting).map(|n| NodeState::from_view(&n, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: NodeState,
        plan: NodeState,
    ) -> Result<NodeState, Failed<NodeState>> {
        let c = ctx.client()?;
        // `networks` always goes along: tundrad programs the node's switch
        // ports again, which is how a plan's drift repair is applied.
        let req = NodeUpdate {
            metadata: Some(plan.metadata.known().cloned().unwrap_or_default()),
            networks: Some(plan.networks()?),
            shares: Some(plan.shares()?),
        };
        let n: Node = REST.patch(ctx, &prior.id, &req).await?;
        wait_built(ctx, c, n, &plan).await
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: NodeState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await?;
        let c = ctx.client()?;
        let id = super::state_id(&state.id);
        loop {
            let n = c.find(&nouns::NODES, &id).await.map_err(|e| e.diag("Could not read the node"))?;
            let Some(n) = n else { return Ok(()) };
            if ctx.deadline().is_some_and(|d| Instant::now() + Duration::from_secs(2) >= d) || ctx.stopping() {
                return Err(Diagnostic::error(
                    "Node still being cleaned",
                    format!(
                        "Node {} is {} ({}); its machine is still being cleaned. Raise timeouts.delete, or destroy again later.",
                        n.name,
                        n.status.as_str(),
                        n.status_reason.unwrap_or_default()
                    ),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<NodeState, Diagnostics> {
        let n: Node = REST.import(ctx, id).await?;
        Ok(NodeState::from_view(&n, None))
    }
}
