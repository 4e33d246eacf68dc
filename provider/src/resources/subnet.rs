//! `tundra_subnet`: an IPv4 range of a network; its ports get addresses
//! from the allocation pools. With `dhcp` off (always on InfiniBand) nodes
//! configure their addresses statically from the config drive.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Nesting, Resource, Type, Value, modifiers};
use tundra_api::fabric::{AllocationPool, Subnet, SubnetCreate, SubnetUpdate};

use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator};
use crate::client::{Client, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct PoolObj {
        pub start: Value<String>,
        pub end: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct SubnetState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub network_id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub cidr: Value<String>,
        pub gateway: Value<String>,
        pub dns: Value<Vec<String>>,
        pub allocation_pools: Value<Vec<PoolObj>>,
        pub dhcp: Value<bool>,
        pub created_at: Value<String>,
    }
}

impl SubnetState {
    pub fn from_view(s: &Subnet) -> Self {
        SubnetState {
            id: Value::Known(s.id.to_string()),
            project_id: s.project_id.map(|p| p.to_string()).into(),
            network_id: Value::Known(s.network_id.to_string()),
            name: Value::Known(s.name.clone()),
            description: Value::Known(s.description.clone()),
            cidr: Value::Known(s.cidr.clone()),
            gateway: s.gateway.clone().into(),
            dns: Value::Known(s.dns.clone()),
            allocation_pools: Value::Known(
                s.allocation_pools
                    .iter()
                    .map(|p| PoolObj { start: Value::Known(p.start.clone()), end: Value::Known(p.end.clone()) })
                    .collect(),
            ),
            dhcp: Value::Known(s.dhcp),
            created_at: Value::Known(s.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/network_id", "network_id"),
    ("/name", "name"),
    ("/description", "description"),
    ("/cidr", "cidr"),
    ("/gateway", "gateway"),
    ("/dns", "dns"),
    ("/allocation_pools", "allocation_pools"),
    ("/dhcp", "dhcp"),
];

const REST: Rest<Subnet> = Rest { noun: &nouns::SUBNETS, fields: FIELDS };

pub struct SubnetResource;

impl Resource<Client> for SubnetResource {
    type State = SubnetState;

    fn type_name(&self) -> &'static str {
        "tundra_subnet"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        Schema::new(
            Block::new("An IPv4 subnet of a network: ports (and nodes' networks) get fixed addresses from its pools.")
                .attr(id_attr("subnet"))
                .attr(Attribute::string("project_id").computed().modifier(keep()).description("The network's project (null for a shared network's)."))
                .attr(Attribute::string("network_id").required().modifier(replace()))
                .attr(Attribute::string("name").required().validator(name_validator()).description("Unique in its network."))
                .attr(description_attr())
                .attr(Attribute::string("cidr").required().modifier(replace()).description("e.g. `10.1.0.0/24` (prefix 8–30)."))
                .attr(Attribute::string("gateway").optional().modifier(replace()).description("Default route for nodes (none when unset)."))
                .attr(Attribute::list("dns", Type::String).optional().computed().default(tfplugin::TfValue::List(Vec::new())).description("DNS servers nodes use (changed in place)."))
                .attr(
                    Attribute::nested("allocation_pools", Nesting::List, vec![
                        Attribute::string("start").required(),
                        Attribute::string("end").required(),
                    ])
                    .optional()
                    .computed()
                    .modifier(keep())
                    .modifier(replace())
                    .description("Ranges ports get addresses from (default: the whole CIDR but the gateway)."),
                )
                .attr(
                    Attribute::bool("dhcp")
                        .optional()
                        .computed()
                        .default(tfplugin::TfValue::Bool(false))
                        .modifier(replace())
                        .description("Nodes use DHCP on it (the site runs the server) instead of the config drive's static address."),
                )
                .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    fn validate_config(&self, config: &SubnetState, diags: &mut Diagnostics) {
        if let Some(c) = known(&config.cidr)
            && !c.contains('/')
        {
            diags.push(Diagnostic::error("cidr needs a prefix", "e.g. 10.1.0.0/24").at(AttrPath::attr_root("cidr")));
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: SubnetState) -> Result<SubnetState, Failed<SubnetState>> {
        let c = ctx.client()?;
        let req = SubnetCreate {
            network_id: known(&plan.network_id).unwrap_or_default().parse().map_err(|_| {
                Diagnostic::error("Invalid network_id", "Not an ID.").at(AttrPath::attr_root("network_id"))
            })?,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            cidr: known(&plan.cidr).unwrap_or_default().into(),
            gateway: plan.gateway.known().cloned(),
            dns: plan.dns.known().cloned().unwrap_or_default(),
            allocation_pools: plan
                .allocation_pools
                .known()
                .map(|v| {
                    v.iter()
                        .map(|p| AllocationPool {
                            start: known(&p.start).unwrap_or_default().into(),
                            end: known(&p.end).unwrap_or_default().into(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dhcp: plan.dhcp.known() == Some(&true),
        };
        let x: Subnet = REST.create(c, &req).await?;
        Ok(SubnetState::from_view(&x))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: SubnetState) -> Result<Option<SubnetState>, Diagnostics> {
        let x: Option<Subnet> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(SubnetState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: SubnetState,
        plan: SubnetState,
    ) -> Result<SubnetState, Failed<SubnetState>> {
        let req = SubnetUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            description: plan.description.known().cloned(),
            dns: plan.dns.known().cloned(),
        };
        let x: Subnet = REST.patch(ctx, &prior.id, &req).await?;
        Ok(SubnetState::from_view(&x))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: SubnetState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<SubnetState, Diagnostics> {
        let x: Subnet = REST.import(ctx, id).await?;
        Ok(SubnetState::from_view(&x))
    }
}
