//! `tundra_network`: one segment of a physical network — the next free
//! VLAN (or partition key) of its range unless a site admin names one or
//! asks for `flat`; `shared` networks (site admins) are every project's.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Resource, Value, modifiers};
use tundra_api::fabric::{Network, NetworkCreate, NetworkUpdate};

use super::flavor::public_attr;
use super::keypair::project_id_attr;
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator, uint};
use crate::client::{Client, ClientExt, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct NetworkState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub public: Value<bool>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub physical_network_id: Value<String>,
        pub kind: Value<String>,
        pub segment: Value<i64>,
        pub flat: Value<bool>,
        pub mtu: Value<i64>,
        pub created_at: Value<String>,
    }
}

impl NetworkState {
    pub fn from_view(n: &Network) -> Self {
        NetworkState {
            id: Value::Known(n.id.to_string()),
            project_id: n.project_id.map(|p| p.to_string()).into(),
            public: Value::Known(n.project_id.is_none()),
            name: Value::Known(n.name.clone()),
            description: Value::Known(n.description.clone()),
            physical_network_id: Value::Known(n.physical_network_id.to_string()),
            kind: Value::Known(n.kind.as_str().into()),
            segment: n.segment.map(|s| s as i64).into(),
            flat: Value::Known(n.segment.is_none()),
            mtu: Value::Known(n.mtu as i64),
            created_at: Value::Known(n.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/project_id", "project_id"),
    ("/name", "name"),
    ("/description", "description"),
    ("/physical_network_id", "physical_network_id"),
    ("/segment", "segment"),
    ("/flat", "flat"),
    ("/mtu", "mtu"),
];

const REST: Rest<Network> = Rest { noun: &nouns::NETWORKS, fields: FIELDS };

pub struct NetworkResource;

impl Resource<Client> for NetworkResource {
    type State = NetworkState;

    fn type_name(&self) -> &'static str {
        "tundra_network"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        Schema::new(
            Block::new(
                "A network: one segment (VLAN on ethernet, partition key on InfiniBand) of a physical network. \
                 Nodes join it through their `networks`; their switch ports move into its VLAN while they are active.",
            )
            .attr(id_attr("network"))
            .attr(project_id_attr("network"))
            .attr(
                public_attr("network")
                    .description("A shared network (no project; site admins): every project may put nodes on it."),
            )
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .description("Unique in its project (or among shared networks)."),
            )
            .attr(description_attr())
            .attr(Attribute::string("physical_network_id").required().modifier(replace()))
            .attr(
                Attribute::string("kind")
                    .computed()
                    .modifier(keep())
                    .description("`ethernet` or `infiniband` (the physical network's)."),
            )
            .attr(Attribute::number("segment").optional().computed().modifier(keep()).modifier(replace()).description(
                "Its VLAN ID / partition key: allocated from the physical network's range; site admins may name one.",
            ))
            .attr(
                Attribute::bool("flat")
                    .optional()
                    .computed()
                    .modifier(keep())
                    .modifier(replace())
                    .description("No segment (site admins; e.g. InfiniBand's default partition)."),
            )
            .attr(
                Attribute::number("mtu")
                    .optional()
                    .computed()
                    .modifier(keep())
                    .modifier(replace())
                    .description("At most the physical network's (the default)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut tfplugin::PlanChange<NetworkState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
    }

    fn validate_config(&self, config: &NetworkState, diags: &mut Diagnostics) {
        if config.public.known() == Some(&true) && config.project_id.is_known() {
            diags.push(
                Diagnostic::error("Shared networks have no project", "Remove project_id, or set public = false.")
                    .at(AttrPath::attr_root("project_id")),
            );
        }
        if config.flat.known() == Some(&true) && config.segment.is_known() {
            diags.push(
                Diagnostic::error("A flat network has no segment", "Remove segment, or flat.")
                    .at(AttrPath::attr_root("segment")),
            );
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: NetworkState) -> Result<NetworkState, Failed<NetworkState>> {
        let c = ctx.client()?;
        let project_id = match plan.public.known() {
            Some(true) => None,
            _ => Some(c.project_id(known(&plan.project_id)).await?),
        };
        let req = NetworkCreate {
            project_id,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            physical_network_id: known(&plan.physical_network_id).unwrap_or_default().parse().map_err(|_| {
                Diagnostic::error("Invalid physical_network_id", "Not an ID.")
                    .at(AttrPath::attr_root("physical_network_id"))
            })?,
            segment: uint(&plan.segment),
            flat: plan.flat.known() == Some(&true),
            mtu: uint(&plan.mtu),
        };
        let x: Network = REST.create(c, &req).await?;
        Ok(NetworkState::from_view(&x))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: NetworkState) -> Result<Option<NetworkState>, Diagnostics> {
        let x: Option<Network> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(NetworkState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: NetworkState,
        plan: NetworkState,
    ) -> Result<NetworkState, Failed<NetworkState>> {
        let req = NetworkUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            description: plan.description.known().cloned(),
        };
        let x: Network = REST.patch(ctx, &prior.id, &req).await?;
        Ok(NetworkState::from_view(&x))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: NetworkState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<NetworkState, Diagnostics> {
        let x: Network = REST.import(ctx, id).await?;
        Ok(NetworkState::from_view(&x))
    }
}
