//! `tundra_physical_network` (site admins): a fabric — ethernet (VLANs,
//! switch-programmed) or InfiniBand (partition keys) — with the segment
//! range projects' networks get theirs from.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Resource, Type, Value, modifiers, validators};
use tundra_api::fabric::{FabricKind, PhysicalNetwork, PhysicalNetworkCreate, PhysicalNetworkUpdate};

use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator, uint};
use crate::client::{Client, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct PhysicalNetworkState {
        pub id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub kind: Value<String>,
        pub segment_range: Value<Vec<i64>>,
        pub provisioning_segment: Value<i64>,
        pub mtu: Value<i64>,
        pub created_at: Value<String>,
    }
}

impl PhysicalNetworkState {
    pub fn from_view(p: &PhysicalNetwork) -> Self {
        PhysicalNetworkState {
            id: Value::Known(p.id.to_string()),
            name: Value::Known(p.name.clone()),
            description: Value::Known(p.description.clone()),
            kind: Value::Known(p.kind.as_str().into()),
            segment_range: Value::Known(p.segment_range.iter().map(|v| *v as i64).collect()),
            provisioning_segment: p.provisioning_segment.map(|v| v as i64).into(),
            mtu: Value::Known(p.mtu as i64),
            created_at: Value::Known(p.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/description", "description"),
    ("/kind", "kind"),
    ("/segment_range", "segment_range"),
    ("/provisioning_segment", "provisioning_segment"),
    ("/mtu", "mtu"),
];

const REST: Rest<PhysicalNetwork> = Rest { noun: &nouns::PHYSICAL_NETWORKS, fields: FIELDS };

pub struct PhysicalNetworkResource;

impl Resource<Client> for PhysicalNetworkResource {
    type State = PhysicalNetworkState;

    fn type_name(&self) -> &'static str {
        "tundra_physical_network"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "A physical network (site admins): what machine interfaces are cabled to, named as their \
                 `physical_network` and by the switches that carry it. Projects' networks are segments of it.",
            )
            .attr(id_attr("physical network"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .modifier(replace())
                    .description("Unique; what inspection rules and switches name."),
            )
            .attr(description_attr())
            .attr(
                Attribute::string("kind")
                    .required()
                    .validator(validators::one_of(["ethernet", "infiniband"]))
                    .modifier(replace())
                    .description("`ethernet` (segments are VLANs on switches tundrad programs) or `infiniband` (partition keys; no DHCP)."),
            )
            .attr(
                Attribute::list("segment_range", Type::Number)
                    .required()
                    .modifier(replace())
                    .description("`[first, last]` segment projects' networks get (VLANs 2–4094, partition keys 2–32766)."),
            )
            .attr(
                Attribute::number("provisioning_segment")
                    .optional()
                    .modifier(replace())
                    .description("Ethernet: the VLAN ports sit on while machines deploy, are cleaned or are free (outside `segment_range`)."),
            )
            .attr(
                Attribute::number("mtu")
                    .optional()
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .modifier(replace())
                    .description("Default 1500 (ethernet) or 2044 (InfiniBand)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    fn validate_config(&self, config: &PhysicalNetworkState, diags: &mut Diagnostics) {
        if let Some(r) = config.segment_range.known()
            && r.len() != 2
        {
            diags.push(
                Diagnostic::error("segment_range needs two numbers", "Give [first, last], e.g. [100, 199].")
                    .at(AttrPath::attr_root("segment_range")),
            );
        }
    }

    async fn create(
        &self,
        ctx: &Ctx<Client>,
        plan: PhysicalNetworkState,
    ) -> Result<PhysicalNetworkState, Failed<PhysicalNetworkState>> {
        let c = ctx.client()?;
        let r: Vec<Value<i64>> =
            plan.segment_range.known().cloned().unwrap_or_default().into_iter().map(Value::Known).collect();
        let req = PhysicalNetworkCreate {
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            kind: if known(&plan.kind) == Some("infiniband") { FabricKind::Infiniband } else { FabricKind::Ethernet },
            segment_range: [r.first().and_then(uint).unwrap_or_default(), r.get(1).and_then(uint).unwrap_or_default()],
            provisioning_segment: uint(&plan.provisioning_segment),
            mtu: uint(&plan.mtu),
        };
        let x: PhysicalNetwork = REST.create(c, &req).await?;
        Ok(PhysicalNetworkState::from_view(&x))
    }

    async fn read(
        &self,
        ctx: &Ctx<Client>,
        state: PhysicalNetworkState,
    ) -> Result<Option<PhysicalNetworkState>, Diagnostics> {
        let x: Option<PhysicalNetwork> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(PhysicalNetworkState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: PhysicalNetworkState,
        plan: PhysicalNetworkState,
    ) -> Result<PhysicalNetworkState, Failed<PhysicalNetworkState>> {
        let req = PhysicalNetworkUpdate { description: plan.description.known().cloned() };
        let x: PhysicalNetwork = REST.patch(ctx, &prior.id, &req).await?;
        Ok(PhysicalNetworkState::from_view(&x))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: PhysicalNetworkState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<PhysicalNetworkState, Diagnostics> {
        let x: PhysicalNetwork = REST.import(ctx, id).await?;
        Ok(PhysicalNetworkState::from_view(&x))
    }
}
