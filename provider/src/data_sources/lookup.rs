//! `data "tundra_project|keypair|flavor|image"`: by `id`, or by `name`
//! (within `project_id`, the provider's project, or among public objects).
//! Each returns the same attributes as its resource.

use serde::de::DeserializeOwned;
use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, DataSource, Diagnostic, Diagnostics, FromTf, IntoTf, TfValue, Type, Value};
use tundra_api::catalog::{Flavor, Image, Keypair};
use tundra_api::identity::Project;
use tundra_api::{ListQuery, MAX_PAGE};

use crate::client::{Client, ClientExt, Diag, Noun, nouns};
use crate::resources::flavor::FlavorState;
use crate::resources::image::ImageState;
use crate::resources::keypair::KeypairState;
use crate::resources::project::ProjectState;

pub(crate) fn lookup_keys(block: Block, noun: &str, project_scoped: bool) -> Block {
    let block = block
        .attr(
            Attribute::string("id")
                .optional()
                .computed()
                .description(&format!("ID of the {noun}; give this or `name`.")),
        )
        .attr(
            Attribute::string("name")
                .optional()
                .computed()
                .description(&format!("Name of the {noun}; give this or `id`.")),
        );
    if project_scoped {
        block.attr(Attribute::string("project_id").optional().computed().description(
            "Project to look the name up in (default: the provider's `project`; public objects are found too).",
        ))
    } else {
        block
    }
}

pub(crate) fn need_id_or_name(id: &Value<String>, name: &Value<String>, diags: &mut Diagnostics) {
    if id.is_null() && name.is_null() {
        diags.push(Diagnostic::error("Nothing to look up", "Set id or name.").at(AttrPath::attr_root("name")));
    }
}

/// Find by name among what the caller sees; prefer the project's own object
/// over a public one of the same name.
pub(crate) async fn by_name<T: DeserializeOwned>(
    c: &Client,
    noun: &Noun<T>,
    name: &str,
    project: Option<String>,
    project_of: fn(&T) -> Option<String>,
) -> Result<T, Diagnostics> {
    let q = ListQuery { name: Some(name.into()), limit: Some(MAX_PAGE), ..Default::default() };
    let noun_name = noun.name;
    let page = c.list(noun, &q).await.map_err(|e| e.diag(&format!("Could not look up {noun_name} {name:?}")))?;
    let mut items = page.items;
    let pos = items
        .iter()
        .position(|i| project.is_some() && project_of(i) == project)
        .or_else(|| items.iter().position(|i| project_of(i).is_none()));
    match pos {
        Some(p) => Ok(items.swap_remove(p)),
        None => Err(Diagnostic::error(
            format!("No {noun_name} named {name:?}"),
            format!(
                "No {noun_name} of that name is visible in the project or among public ones; check the name and project_id."
            ),
        )
        .at(AttrPath::attr_root("name"))
        .into()),
    }
}

/// A versioned object (a template) by name: version `want`, else the
/// highest; the project's own before the site's. `key` gives an item's
/// project and version.
pub(crate) async fn by_name_and_version<T: DeserializeOwned>(
    c: &Client,
    noun: &Noun<T>,
    name: &str,
    want: Option<u32>,
    project_id: &Value<String>,
    key: fn(&T) -> (Option<String>, u32),
) -> Result<T, Diagnostics> {
    let noun_name = noun.name;
    let q = ListQuery { name: Some(name.into()), limit: Some(MAX_PAGE), ..Default::default() };
    let page = c.list(noun, &q).await.map_err(|e| e.diag(&format!("Could not look up {noun_name} {name:?}")))?;
    let project = scope(c, project_id).await;
    let pick = |own: bool| {
        page.items
            .iter()
            .enumerate()
            .map(|(i, t)| (i, key(t)))
            .filter(|(_, (_, v))| want.is_none_or(|w| *v == w))
            .filter(|(_, (p, _))| if own { project.is_some() && *p == project } else { p.is_none() })
            .max_by_key(|(_, (_, v))| *v)
            .map(|(i, _)| i)
    };
    let Some(i) = pick(true).or_else(|| pick(false)) else {
        return Err(Diagnostic::error(
            format!("No {noun_name} named {name:?}"),
            match want {
                Some(v) => format!("No version {v} of it is visible in the project or among the site's."),
                None => "None is visible in the project or among the site's; check the name and project_id.".into(),
            },
        )
        .at(AttrPath::attr_root("name"))
        .into());
    };
    let mut items = page.items;
    Ok(items.swap_remove(i))
}

pub(crate) async fn scope(c: &Client, explicit: &Value<String>) -> Option<String> {
    match explicit.known() {
        Some(p) => Some(p.clone()),
        None if c.project.is_some() => c.project_id(None).await.ok().map(|p| p.to_string()),
        None => None,
    }
}

pub struct ProjectData;

impl DataSource<Client> for ProjectData {
    type State = ProjectState;
    fn type_name(&self) -> &'static str {
        "tundra_project"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(Block::new("Looks up a project you have a role in."), "project", false)
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &ProjectState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ProjectState) -> Result<ProjectState, Diagnostics> {
        let key = config.id.known().or(config.name.known()).cloned().unwrap_or_default();
        let p: Project = ctx
            .client()?
            .get(&nouns::PROJECTS, &key.to_string())
            .await
            .map_err(|e| e.diag(&format!("No project {key:?}")))?;
        Ok(ProjectState::from_view(&p))
    }
}

pub struct KeypairData;

impl DataSource<Client> for KeypairData {
    type State = KeypairState;
    fn type_name(&self) -> &'static str {
        "tundra_keypair"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(Block::new("Looks up a keypair of a project."), "keypair", true)
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("public_key").computed())
                .attr(Attribute::string("key_type").computed())
                .attr(Attribute::string("fingerprint").computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &KeypairState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: KeypairState) -> Result<KeypairState, Diagnostics> {
        let c = ctx.client()?;
        let k: Keypair = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::KEYPAIRS, &id.to_string()).await.map_err(|e| e.diag(&format!("No keypair {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::KEYPAIRS, name, project, |k: &Keypair| Some(k.project_id.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(KeypairState::from_view(&k, None))
    }
}

pub struct FlavorData;

impl DataSource<Client> for FlavorData {
    type State = FlavorState;
    fn type_name(&self) -> &'static str {
        "tundra_flavor"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(Block::new("Looks up a flavor: the project's own, or a public one."), "flavor", true)
                .attr(Attribute::bool("public").computed())
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("resource_class").computed())
                .attr(Attribute::set("required_traits", Type::String).computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &FlavorState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: FlavorState) -> Result<FlavorState, Diagnostics> {
        let c = ctx.client()?;
        let f: Flavor = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::FLAVORS, &id.to_string()).await.map_err(|e| e.diag(&format!("No flavor {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::FLAVORS, name, project, |f: &Flavor| f.project_id.map(|p| p.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        Ok(FlavorState::from_view(&f))
    }
}

pub struct ImageData;

tfplugin::tf_object! {
    pub struct ImageLookup {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub public: Value<bool>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub disk_format: Value<String>,
        pub sha256: Value<String>,
        pub source_url: Value<String>,
        pub status: Value<String>,
        pub size_bytes: Value<i64>,
        pub raw_sha256: Value<String>,
        pub created_at: Value<String>,
    }
}

impl DataSource<Client> for ImageData {
    type State = ImageLookup;
    fn type_name(&self) -> &'static str {
        "tundra_image"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(Block::new("Looks up an image: the project's own, or a public one."), "image", true)
                .attr(Attribute::bool("public").computed())
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("disk_format").computed())
                .attr(Attribute::string("sha256").computed())
                .attr(Attribute::string("source_url").computed())
                .attr(Attribute::string("status").computed())
                .attr(Attribute::number("size_bytes").computed())
                .attr(Attribute::string("raw_sha256").computed())
                .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &ImageLookup, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ImageLookup) -> Result<ImageLookup, Diagnostics> {
        let c = ctx.client()?;
        let i: Image = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::IMAGES, &id.to_string()).await.map_err(|e| e.diag(&format!("No image {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::IMAGES, name, project, |i: &Image| i.project_id.map(|p| p.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        // Same attributes as the resource, minus what exists only in configuration.
        let s = ImageState::from_view(&i, None);
        let mut v = s.into_tf();
        if let TfValue::Object(m) = &mut v {
            m.remove("source_path");
        }
        ImageLookup::from_tf(v, &AttrPath::root()).map_err(Diagnostics::from)
    }
}

pub struct NodeData;

tfplugin::tf_object! {
    pub struct NodeLookup {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub flavor_id: Value<String>,
        pub image_id: Value<String>,
        pub keypair_id: Value<String>,
        pub metadata: Value<std::collections::BTreeMap<String, String>>,
        pub placement: Value<crate::resources::node::PlacementObj>,
        pub network_ports: Value<Vec<crate::resources::node::NetworkPortObj>>,
        pub drift: Value<String>,
        pub status: Value<String>,
        pub status_reason: Value<String>,
        pub addresses: Value<Vec<crate::resources::node::AddressObj>>,
        pub access_ip: Value<String>,
        pub location: Value<crate::resources::node::LocationObj>,
        pub machine_id: Value<String>,
        pub created_at: Value<String>,
    }
}

impl DataSource<Client> for NodeData {
    type State = NodeLookup;
    fn type_name(&self) -> &'static str {
        "tundra_node"
    }
    fn schema(&self) -> Schema {
        let obj =
            |names: &[&str]| -> Vec<Attribute> { names.iter().map(|n| Attribute::string(n).computed()).collect() };
        Schema::new(
            lookup_keys(
                Block::new("Looks up a node of a project (e.g. one another configuration manages)."),
                "node",
                true,
            )
            .attr(Attribute::string("flavor_id").computed())
            .attr(Attribute::string("image_id").computed())
            .attr(Attribute::string("keypair_id").computed())
            .attr(Attribute::map("metadata", Type::String).computed())
            .attr(
                Attribute::nested(
                    "placement",
                    tfplugin::Nesting::Single,
                    obj(&["site", "rack", "island", "group", "policy", "strategy"]),
                )
                .computed(),
            )
            .attr(
                Attribute::nested(
                    "network_ports",
                    tfplugin::Nesting::List,
                    obj(&["network_id", "port_id", "mac", "address"]),
                )
                .computed(),
            )
            .attr(Attribute::string("drift").computed())
            .attr(Attribute::string("status").computed())
            .attr(Attribute::string("status_reason").computed())
            .attr(
                Attribute::nested("addresses", tfplugin::Nesting::List, obj(&["network", "mac", "address"])).computed(),
            )
            .attr(Attribute::string("access_ip").computed())
            .attr(Attribute::nested("location", tfplugin::Nesting::Single, obj(&["site", "rack", "island"])).computed())
            .attr(Attribute::string("machine_id").computed())
            .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &NodeLookup, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: NodeLookup) -> Result<NodeLookup, Diagnostics> {
        let c = ctx.client()?;
        let n: tundra_api::nodes::Node = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::NODES, &id.to_string()).await.map_err(|e| e.diag(&format!("No node {id:?}")))?
            }
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::NODES, name, project, |n: &tundra_api::nodes::Node| Some(n.project_id.to_string()))
                    .await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        let mut v = crate::resources::node::NodeState::from_view(&n, None).into_tf();
        if let TfValue::Object(m) = &mut v {
            m.remove("user_data");
            m.remove("networks");
        }
        NodeLookup::from_tf(v, &AttrPath::root()).map_err(Diagnostics::from)
    }
}
