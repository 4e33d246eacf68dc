//! `data "tundra_appliance_template"` (by ID, or by name — the highest
//! version unless `version` is given, a project's own before the site's)
//! and `data "tundra_appliance"` (a project's, by ID or name: its outputs,
//! usage and status for another configuration to use).

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, DataSource, Diagnostic, Diagnostics, Nesting, Type};
use tundra_api::appliances::{Appliance, ApplianceTemplate};

use super::lookup::{by_name, by_name_and_version, lookup_keys, need_id_or_name, scope};
use crate::client::{Client, Diag, nouns};
use crate::resources::appliance::{ApplianceState, TemplateState, from_json};

pub struct ApplianceTemplateData;

impl DataSource<Client> for ApplianceTemplateData {
    type State = TemplateState;
    fn type_name(&self) -> &'static str {
        "tundra_appliance_template"
    }
    fn schema(&self) -> Schema {
        let computed =
            |names: &[&str]| -> Vec<Attribute> { names.iter().map(|n| Attribute::string(n).computed()).collect() };
        let mut parameter = computed(&["name", "kind", "description", "default"]);
        parameter.push(Attribute::bool("required").computed());
        parameter.push(Attribute::bool("immutable").computed());
        Schema::new(
            lookup_keys(Block::new("Looks up an appliance template version."), "appliance template", true)
                .attr(
                    Attribute::number("version")
                        .optional()
                        .computed()
                        .description("With `name`: this version (default: the highest)."),
                )
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("spec").computed().description("The template as JSON."))
                .attr(Attribute::nested("parameters", Nesting::List, parameter).computed())
                .attr(Attribute::list("roles", Type::String).computed())
                .attr(Attribute::list("outputs", Type::String).computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &TemplateState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: TemplateState) -> Result<TemplateState, Diagnostics> {
        let c = ctx.client()?;
        let t: ApplianceTemplate = match (config.id.known(), config.name.known()) {
            (Some(id), _) => c
                .get(&nouns::APPLIANCE_TEMPLATES, id)
                .await
                .map_err(|e| e.diag(&format!("No appliance template {id:?}")))?,
            (None, Some(name)) => {
                let want = config.version.known().map(|v| *v as u32);
                by_name_and_version(c, &nouns::APPLIANCE_TEMPLATES, name, want, &config.project_id, |t| {
                    (t.project_id.map(|p| p.to_string()), t.version)
                })
                .await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(TemplateState::from_view(&t, None))
    }
}

pub struct ApplianceData;

impl DataSource<Client> for ApplianceData {
    type State = ApplianceState;
    fn type_name(&self) -> &'static str {
        "tundra_appliance"
    }
    fn schema(&self) -> Schema {
        let computed =
            |names: &[&str]| -> Vec<Attribute> { names.iter().map(|n| Attribute::string(n).computed()).collect() };
        let mut role = computed(&["name", "status", "reason"]);
        role.insert(1, Attribute::number("count").computed());
        role.insert(2, Attribute::number("ready").computed());
        Schema::new(
            lookup_keys(
                Block::new("Looks up an appliance of a project (e.g. one another configuration manages)."),
                "appliance",
                true,
            )
            .attr(Attribute::string("template_id").computed())
            .attr(Attribute::string("keypair_id").computed())
            .attr(
                Attribute::new("parameters", Type::Dynamic)
                    .computed()
                    .description("Every parameter, defaults filled in."),
            )
            .attr(Attribute::string("status").computed())
            .attr(Attribute::string("status_reason").computed())
            .attr(Attribute::nested("roles", Nesting::List, role).computed())
            .attr(
                Attribute::nested(
                    "members",
                    Nesting::List,
                    computed(&["name", "role", "node_id", "state", "reason", "address"]),
                )
                .computed(),
            )
            .attr(Attribute::map("outputs", Type::String).computed())
            .attr(Attribute::string("usage").computed())
            .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &ApplianceState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ApplianceState) -> Result<ApplianceState, Diagnostics> {
        let c = ctx.client()?;
        let a: Appliance = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::APPLIANCES, id).await.map_err(|e| e.diag(&format!("No appliance {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::APPLIANCES, name, project, |x: &Appliance| Some(x.project_id.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        let parameters = from_json(&serde_json::to_value(&a.parameters).unwrap_or_default());
        Ok(ApplianceState::from_view(&a, parameters))
    }
}
