//! `data "tundra_physical_network|network|subnet|port"`: by `id`, or by
//! `name` (networks and ports within `project_id` or the provider's
//! project; shared networks are found too). Same attributes as the resources.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, DataSource, Diagnostic, Diagnostics, Nesting, Type};
use tundra_api::ListQuery;
use tundra_api::fabric::{Network, PhysicalNetwork, Port, Subnet};

use super::lookup::{by_name, lookup_keys, need_id_or_name, scope};
use crate::client::{Client, Diag, nouns};
use crate::resources::network::NetworkState;
use crate::resources::physical_network::PhysicalNetworkState;
use crate::resources::port::PortState;
use crate::resources::subnet::SubnetState;

fn computed(block: Block, names: &[&str]) -> Block {
    names.iter().fold(block, |b, n| b.attr(Attribute::string(n).computed()))
}

pub struct PhysicalNetworkData;

impl DataSource<Client> for PhysicalNetworkData {
    type State = PhysicalNetworkState;
    fn type_name(&self) -> &'static str {
        "tundra_physical_network"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            computed(
                lookup_keys(
                    Block::new("Looks up a physical network (every signed-in user may)."),
                    "physical network",
                    false,
                ),
                &["description", "kind", "created_at"],
            )
            .attr(Attribute::list("segment_range", Type::Number).computed())
            .attr(Attribute::number("provisioning_segment").computed())
            .attr(Attribute::number("mtu").computed()),
        )
    }
    fn validate_config(&self, config: &PhysicalNetworkState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: PhysicalNetworkState) -> Result<PhysicalNetworkState, Diagnostics> {
        let c = ctx.client()?;
        let x: PhysicalNetwork = match (config.id.known(), config.name.known()) {
            (Some(id), _) => c
                .get(&nouns::PHYSICAL_NETWORKS, &id.to_string())
                .await
                .map_err(|e| e.diag(&format!("No physical network {id:?}")))?,
            (None, Some(name)) => {
                let q = ListQuery { name: Some(name.clone()), ..Default::default() };
                let page = c
                    .list(&nouns::PHYSICAL_NETWORKS, &q)
                    .await
                    .map_err(|e| e.diag(&format!("Could not look up physical network {name:?}")))?;
                page.items.into_iter().next().ok_or_else(|| {
                    Diagnostic::error(
                        format!("No physical network named {name:?}"),
                        "Check the name (site admins make them).",
                    )
                })?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(PhysicalNetworkState::from_view(&x))
    }
}

pub struct NetworkData;

impl DataSource<Client> for NetworkData {
    type State = NetworkState;
    fn type_name(&self) -> &'static str {
        "tundra_network"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            computed(
                lookup_keys(Block::new("Looks up a network: the project's own, or a shared one."), "network", true),
                &["description", "physical_network_id", "kind", "created_at"],
            )
            .attr(Attribute::bool("public").computed())
            .attr(Attribute::number("segment").computed())
            .attr(Attribute::bool("flat").computed())
            .attr(Attribute::number("mtu").computed()),
        )
    }
    fn validate_config(&self, config: &NetworkState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: NetworkState) -> Result<NetworkState, Diagnostics> {
        let c = ctx.client()?;
        let x: Network = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::NETWORKS, &id.to_string()).await.map_err(|e| e.diag(&format!("No network {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::NETWORKS, name, project, |n: &Network| n.project_id.map(|p| p.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(NetworkState::from_view(&x))
    }
}

pub struct SubnetData;

impl DataSource<Client> for SubnetData {
    type State = SubnetState;
    fn type_name(&self) -> &'static str {
        "tundra_subnet"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            computed(
                lookup_keys(Block::new("Looks up a subnet of a network you may use."), "subnet", true),
                &["network_id", "description", "cidr", "gateway", "created_at"],
            )
            .attr(Attribute::list("dns", Type::String).computed())
            .attr(
                Attribute::nested(
                    "allocation_pools",
                    Nesting::List,
                    vec![Attribute::string("start").computed(), Attribute::string("end").computed()],
                )
                .computed(),
            )
            .attr(Attribute::bool("dhcp").computed()),
        )
    }
    fn validate_config(&self, config: &SubnetState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: SubnetState) -> Result<SubnetState, Diagnostics> {
        let c = ctx.client()?;
        let x: Subnet = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::SUBNETS, &id.to_string()).await.map_err(|e| e.diag(&format!("No subnet {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::SUBNETS, name, project, |s: &Subnet| s.project_id.map(|p| p.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(SubnetState::from_view(&x))
    }
}

pub struct PortData;

impl DataSource<Client> for PortData {
    type State = PortState;
    fn type_name(&self) -> &'static str {
        "tundra_port"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            computed(
                lookup_keys(Block::new("Looks up a port of a project (with its binding's drift)."), "port", true),
                &["network_id", "description", "node_id", "mac", "drift", "created_at"],
            )
            .attr(
                Attribute::nested(
                    "fixed_ips",
                    Nesting::List,
                    vec![Attribute::string("subnet_id").computed(), Attribute::string("address").computed()],
                )
                .computed(),
            ),
        )
    }
    fn validate_config(&self, config: &PortState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: PortState) -> Result<PortState, Diagnostics> {
        let c = ctx.client()?;
        let x: Port = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::PORTS, &id.to_string()).await.map_err(|e| e.diag(&format!("No port {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::PORTS, name, project, |p: &Port| Some(p.project_id.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(PortState::from_view(&x))
    }
}
