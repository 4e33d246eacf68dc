//! `tundra_flavor`: which machines a node may land on — a resource class
//! plus traits the machine must have. Public flavors (site admins) are
//! visible to every project; others belong to one project.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Resource, TfValue, Type, Value, modifiers};
use tundra_api::catalog::{Flavor, FlavorCreate, FlavorUpdate};

use super::keypair::project_id_attr;
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator};
use crate::client::{Client, ClientExt, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct FlavorState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub public: Value<bool>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub resource_class: Value<String>,
        pub required_traits: Value<Vec<String>>,
        pub created_at: Value<String>,
    }
}

impl FlavorState {
    pub fn from_view(f: &Flavor) -> Self {
        FlavorState {
            id: Value::Known(f.id.to_string()),
            project_id: f.project_id.map(|p| p.to_string()).into(),
            public: Value::Known(f.project_id.is_none()),
            name: Value::Known(f.name.clone()),
            description: Value::Known(f.description.clone()),
            resource_class: Value::Known(f.resource_class.clone()),
            required_traits: Value::Known(f.required_traits.clone()),
            created_at: Value::Known(f.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/description", "description"),
    ("/resource_class", "resource_class"),
    ("/required_traits", "required_traits"),
];

/// `public`: no project; site admins only.
pub fn public_attr(what: &str) -> Attribute {
    Attribute::bool("public")
        .optional()
        .computed()
        .default(TfValue::Bool(false))
        .modifier(modifiers::requires_replace())
        .description(&format!(
            "A public {what} is visible to every project and has no `project_id`; only site admins create them."
        ))
}

const REST: Rest<Flavor> = Rest { noun: &nouns::FLAVORS, fields: FIELDS };

pub struct FlavorResource;

impl Resource<Client> for FlavorResource {
    type State = FlavorState;

    fn type_name(&self) -> &'static str {
        "tundra_flavor"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "A flavor: nodes of this flavor land on machines of `resource_class` that have every one of \
                 `required_traits` (e.g. `gpu`, `ib`).",
            )
            .attr(id_attr("flavor"))
            .attr(project_id_attr("flavor"))
            .attr(public_attr("flavor"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .description("Unique within its project (or among public flavors)."),
            )
            .attr(description_attr())
            .attr(
                Attribute::string("resource_class")
                    .required()
                    .modifier(modifiers::requires_replace())
                    .validator(tfplugin::validators::regex("^[A-Za-z0-9_.-]{1,63}$", "letters, digits, '_', '.', '-'"))
                    .description("Machines' resource class, e.g. `baremetal.gpu`."),
            )
            .attr(
                Attribute::set("required_traits", Type::String)
                    .optional()
                    .computed()
                    .default(TfValue::Set(Vec::new()))
                    .description("Traits a machine must have, e.g. `[\"gpu\", \"ib\"]`."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut tfplugin::PlanChange<FlavorState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
    }

    fn validate_config(&self, config: &FlavorState, diags: &mut Diagnostics) {
        if config.public.known() == Some(&true) && config.project_id.is_known() {
            diags.push(
                Diagnostic::error("Public flavors have no project", "Remove project_id, or set public = false.")
                    .at(AttrPath::attr_root("project_id")),
            );
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: FlavorState) -> Result<FlavorState, Failed<FlavorState>> {
        let c = ctx.client()?;
        let project_id = match plan.public.known() {
            Some(true) => None,
            _ => Some(c.project_id(known(&plan.project_id)).await?),
        };
        let req = FlavorCreate {
            project_id,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            resource_class: known(&plan.resource_class).unwrap_or_default().into(),
            required_traits: plan.required_traits.known().cloned().unwrap_or_default(),
        };
        let f: Flavor = REST.create(c, &req).await?;
        Ok(FlavorState::from_view(&f))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: FlavorState) -> Result<Option<FlavorState>, Diagnostics> {
        let x: Option<Flavor> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(FlavorState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: FlavorState,
        plan: FlavorState,
    ) -> Result<FlavorState, Failed<FlavorState>> {
        let req = FlavorUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            description: plan.description.known().cloned(),
            required_traits: plan.required_traits.known().cloned(),
        };
        let f: Flavor = REST.patch(ctx, &prior.id, &req).await?;
        Ok(FlavorState::from_view(&f))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: FlavorState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<FlavorState, Diagnostics> {
        let x: Flavor = REST.import(ctx, id).await?;
        Ok(FlavorState::from_view(&x))
    }
}
