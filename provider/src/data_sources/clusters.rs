//! `data "tundra_cluster_template"` (by ID, or by name — the highest
//! version unless `version` is given, a project's own before the site's)
//! and `data "tundra_cluster"` (a project's, by ID or name): the same
//! attributes as their resources.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, DataSource, Diagnostic, Diagnostics, Nesting, Type, Value};
use tundra_api::clusters::{Cluster, ClusterTemplate};
use tundra_api::{ListQuery, MAX_PAGE};

use super::lookup::{by_name, lookup_keys, need_id_or_name, scope};
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
        let q = ListQuery { name: Some(name.clone()), limit: Some(MAX_PAGE), ..Default::default() };
        let page = c
            .list(&nouns::CLUSTER_TEMPLATES, &q)
            .await
            .map_err(|e| e.diag(&format!("Could not look up cluster template {name:?}")))?;
        let project = scope(c, &config.project_id).await;
        let want = config.version.known().map(|v| *v as u32);
        let pick = |own: bool| {
            page.items
                .iter()
                .filter(|t| want.is_none_or(|v| t.version == v))
                .filter(|t| {
                    if own {
                        project.is_some() && t.project_id.map(|p| p.to_string()) == project
                    } else {
                        t.project_id.is_none()
                    }
                })
                .max_by_key(|t| t.version)
        };
        let t = pick(true).or_else(|| pick(false)).ok_or_else(|| {
            Diagnostic::error(
                format!("No cluster template named {name:?}"),
                match want {
                    Some(v) => format!("No version {v} of it is visible in the project or among the site's."),
                    None => "None is visible in the project or among the site's; check the name and project_id.".into(),
                },
            )
            .at(AttrPath::attr_root("name"))
        })?;
        Ok(TemplateState::from_view(t))
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
