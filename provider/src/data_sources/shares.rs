//! `data "tundra_share_type"` (site-wide, by ID or name) and
//! `data "tundra_share"` (a project's, by ID or name): the same attributes
//! as their resources, less what exists only in configuration.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, DataSource, Diagnostic, Diagnostics, FromTf, IntoTf, TfValue, Type, Value};
use tundra_api::shares::{Share, ShareType};

use super::lookup::{by_name, lookup_keys, need_id_or_name, scope};
use crate::client::{Client, Diag, nouns};
use crate::resources::share::{ShareState, ShareTypeState};

pub struct ShareTypeData;

tfplugin::tf_object! {
    pub struct ShareTypeLookup {
        pub id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub backend: Value<String>,
        pub monitors: Value<Vec<String>>,
        pub fs_name: Value<String>,
        pub client_id: Value<String>,
        pub ssh_address: Value<String>,
        pub ssh_username: Value<String>,
        pub host_key: Value<String>,
        pub server: Value<String>,
        pub root: Value<String>,
        pub exports_file: Value<String>,
        pub pid_file: Value<String>,
        pub legacy: Value<bool>,
        pub created_at: Value<String>,
    }
}

impl DataSource<Client> for ShareTypeData {
    type State = ShareTypeLookup;
    fn type_name(&self) -> &'static str {
        "tundra_share_type"
    }
    fn schema(&self) -> Schema {
        let mut b =
            lookup_keys(Block::new("Looks up a share type (its credential is never shown)."), "share type", false)
                .attr(Attribute::string("description").computed())
                .attr(Attribute::string("backend").computed())
                .attr(Attribute::list("monitors", Type::String).computed());
        for f in [
            "fs_name",
            "client_id",
            "ssh_address",
            "ssh_username",
            "host_key",
            "server",
            "root",
            "exports_file",
            "pid_file",
        ] {
            b = b.attr(Attribute::string(f).computed());
        }
        Schema::new(b.attr(Attribute::bool("legacy").computed()).attr(Attribute::string("created_at").computed()))
    }
    fn validate_config(&self, config: &ShareTypeLookup, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ShareTypeLookup) -> Result<ShareTypeLookup, Diagnostics> {
        let c = ctx.client()?;
        let t: ShareType = match (config.id.known(), config.name.known()) {
            (Some(id), _) => {
                c.get(&nouns::SHARE_TYPES, id).await.map_err(|e| e.diag(&format!("No share type {id:?}")))?
            }
            (None, Some(name)) => by_name(c, &nouns::SHARE_TYPES, name, None, |_: &ShareType| None).await?,
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        let mut v = ShareTypeState::from_view(&t, None).into_tf();
        if let TfValue::Object(m) = &mut v {
            m.remove("credential");
            m.remove("credential_version");
        }
        ShareTypeLookup::from_tf(v, &AttrPath::root()).map_err(Diagnostics::from)
    }
}

pub struct ShareData;

impl DataSource<Client> for ShareData {
    type State = ShareState;
    fn type_name(&self) -> &'static str {
        "tundra_share"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            lookup_keys(
                Block::new("Looks up a share of a project (e.g. one another configuration manages)."),
                "share",
                true,
            )
            .attr(Attribute::string("description").computed())
            .attr(Attribute::string("share_type_id").computed())
            .attr(Attribute::number("size_gib").computed())
            .attr(Attribute::list("networks", Type::String).computed())
            .attr(Attribute::string("snapshot_id").computed())
            .attr(Attribute::string("status").computed())
            .attr(
                Attribute::nested(
                    "export_locations",
                    tfplugin::Nesting::List,
                    vec![
                        Attribute::string("network_id").computed(),
                        Attribute::string("path").computed(),
                        Attribute::bool("preferred").computed(),
                    ],
                )
                .computed(),
            )
            .attr(Attribute::string("created_at").computed()),
        )
    }
    fn validate_config(&self, config: &ShareState, diags: &mut Diagnostics) {
        need_id_or_name(&config.id, &config.name, diags);
    }
    async fn read(&self, ctx: &Ctx<Client>, config: ShareState) -> Result<ShareState, Diagnostics> {
        let c = ctx.client()?;
        let s: Share = match (config.id.known(), config.name.known()) {
            (Some(id), _) => c.get(&nouns::SHARES, id).await.map_err(|e| e.diag(&format!("No share {id:?}")))?,
            (None, Some(name)) => {
                let project = scope(c, &config.project_id).await;
                by_name(c, &nouns::SHARES, name, project, |s: &Share| Some(s.project_id.to_string())).await?
            }
            _ => return Err(Diagnostic::error("Nothing to look up", "Set id or name.").into()),
        };
        let mut state = ShareState::from_view(&s, None);
        if state.networks.is_null() {
            state.networks = Value::Known(Vec::new());
        }
        Ok(state)
    }
}
