//! `data "tundra_cluster_template"` (by ID, or by name — the highest
//! version unless `version` is given, a project's own before the site's)
//! and `data "tundra_cluster"` (a project's, by ID or name): the same
//! attributes as their resources.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, DataSource, Diagnostic, Diagnostics, Nesting, Type, Value};
use tundra_api::clusters::{Cluster, ClusterTemplate};

use super::lookup::{by_name, by_name_and_version, lookup_keys, need_id_or_name, scope};
use crate::client::{Client, Diag, nouns};
use crate::resources::cluster::{ClusterState, TemplateState};

pub struct ClusterTemplateData;

impl DataSource<Client> for ClusterTemplateData {
    type State = TemplateState;
    fn type_name(&self) -> &'static str {
        "tundra_cluster_template"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(Block::new("Looks up a cluster template version."), "cluster template", true)
                .attr(
                    Attribute::number("version")
                        .optional()
                        .computed()
                        .description("With `name`: this version (default: the highest)."),
                )
                .attr(Attribute::string("kind").computed())
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("bundle_image_id").computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &TemplateState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: TemplateState) -> Result<TemplateState, Diagnostics> {
        let c = ctx.client()?;
        if let Some(id) = config.id.known() {
            let t: ClusterTemplate = c
                .get(&nouns::CLUSTER_TEMPLATES, id)
                .await
                .map_err(|e| e.diag(&format!("No cluster template {id:?}")))?;
            return Ok(TemplateState::from_view(&t));
        }
        let Some(name) = config.name.known() else {
            return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into());
        };
        let want = config.version.known().map(|v| *v as u32);
        let t = by_name_and_version(c, &nouns::CLUSTER_TEMPLATES, name, want, &config.project_id, |t| {
            (t.project_id.map(|p| p.to_string()), t.version)
        })
        .await?;
        Ok(TemplateState::from_view(&t))
    }
}

pub struct ClusterData;

impl DataSource<Client> for ClusterData {
    type State = ClusterState;
    fn type_name(&self) -> &'static str {
        "tundra_cluster"
    }
    fn schema(&self) -> Schema {
        let computed =
            |names: &[&str]| -> Vec<Attribute> { names.iter().map(|n| Attribute::string(n).computed()).collect() };
        let mut group = computed(&["name", "role", "flavor_id", "image_id", "cluster_network_id"]);
        group.push(Attribute::number("count").computed());
        group.push(Attribute::list("networks", Type::String).computed());
        group.push(
            Attribute::nested("shares", Nesting::List, computed(&["share_id", "mount_point", "access"])).computed(),
        );
        group.push(
            Attribute::nested("placement", Nesting::Single, computed(&["site", "rack", "island", "strategy"]))
                .computed(),
        );
        Schema::new(
            lookup_keys(
                Block::new("Looks up a cluster of a project (e.g. one another configuration manages)."),
                "cluster",
                true,
            )
            .attr(Attribute::string("template_id").computed())
            .attr(Attribute::string("keypair_id").computed())
            .attr(Attribute::nested("node_groups", Nesting::List, group).computed())
            .attr(Attribute::map("labels", Type::String).computed())
            .attr(Attribute::list("replace", Type::String).computed().description("Always null here."))
            .attr(Attribute::string("kind").computed())
            .attr(Attribute::string("status").computed())
            .attr(Attribute::string("status_reason").computed())
            .attr(Attribute::string("endpoint").computed())
            .attr(Attribute::string("ca_certificate").computed())
            .attr(
                Attribute::nested(
                    "members",
                    Nesting::List,
                    computed(&["name", "group", "role", "node_id", "state", "reason"]),
                )
                .computed(),
            )
            .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &ClusterState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ClusterState) -> Result<ClusterState, Diagnostics> {
        let c = ctx.client()?;
        let cl: Cluster = match (config.id.known(), config.name.known()) {
            (Some(id), _) => c.get(&nouns::CLUSTERS, id).await.map_err(|e| e.diag(&format!("No cluster {id:?}")))?,
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::CLUSTERS, name, project, |x: &Cluster| Some(x.project_id.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        let mut state = ClusterState::from_view(&cl, None);
        state.replace = Value::Null;
        Ok(state)
    }
}
