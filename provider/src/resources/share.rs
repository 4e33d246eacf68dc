//! Shares: `tundra_share_type` (site admins: a backend and its credential,
//! write-only), `tundra_share` (a project's filesystem of a size: create
//! waits until it is available, a new size extends or shrinks it in place),
//! `tundra_share_snapshot` (create waits until it is available),
//! `tundra_share_access` (a rule; create waits until it is active — its key
//! never enters state: nodes get it on their config drive, other clients
//! from the `tundra_share_access_secret` ephemeral resource).

use std::time::Duration;

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Resource, Value, modifiers, validators};
use tundra_api::shares::{
    AccessKind, AccessLevel, AccessState, Share, ShareAccess, ShareAccessCreate, ShareBackend, ShareCreate,
    ShareSnapshot, ShareSnapshotCreate, ShareStatus, ShareType, ShareTypeCreate, ShareTypeSettings, ShareTypeUpdate,
    ShareUpdate, SnapshotStatus,
};

use super::keypair::project_id_attr;
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator, near_deadline, uint, wait_gone};
use crate::client::{Client, ClientExt, Diag, nouns};

fn id<T: std::str::FromStr>(v: &Value<String>, what: &str) -> Result<T, Diagnostic> {
    known(v).unwrap_or_default().parse().map_err(|_| {
        Diagnostic::error(format!("Invalid {what}"), format!("{:?} is not an ID", known(v).unwrap_or("")))
            .at(AttrPath::attr_root(what))
    })
}

// ---- tundra_share_type ------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ShareTypeState {
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
        pub credential: Value<String>,
        pub credential_version: Value<i64>,
        pub legacy: Value<bool>,
        pub created_at: Value<String>,
    }
}

impl ShareTypeState {
    pub(crate) fn from_view(t: &ShareType, prior: Option<&ShareTypeState>) -> Self {
        ShareTypeState {
            id: Value::Known(t.id.to_string()),
            name: Value::Known(t.name.clone()),
            description: Value::Known(t.description.clone()),
            backend: Value::Known(t.backend.as_str().into()),
            monitors: if t.settings.monitors.is_empty() {
                Value::Null
            } else {
                Value::Known(t.settings.monitors.clone())
            },
            fs_name: t.settings.fs_name.clone().into(),
            client_id: match (&t.settings.client_id, prior) {
                (None, Some(p)) if p.client_id.is_null() => Value::Null,
                (c, _) => c.clone().into(),
            },
            ssh_address: t.settings.ssh_address.clone().into(),
            ssh_username: t.settings.ssh_username.clone().into(),
            host_key: t.settings.host_key.clone().into(),
            server: t.settings.server.clone().into(),
            root: t.settings.root.clone().into(),
            exports_file: t.settings.exports_file.clone().into(),
            pid_file: t.settings.pid_file.clone().into(),
            credential: Value::Null,
            credential_version: prior.map(|p| p.credential_version.clone()).unwrap_or(Value::Null),
            legacy: Value::Known(t.legacy),
            created_at: Value::Known(t.created_at.clone()),
        }
    }
}

const TYPE_FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/description", "description"),
    ("/backend", "backend"),
    ("/settings/monitors", "monitors"),
    ("/settings/fs_name", "fs_name"),
    ("/settings/client_id", "client_id"),
    ("/settings/ssh_address", "ssh_address"),
    ("/settings/ssh_username", "ssh_username"),
    ("/settings/host_key", "host_key"),
    ("/settings/server", "server"),
    ("/settings/root", "root"),
    ("/settings/exports_file", "exports_file"),
    ("/settings/pid_file", "pid_file"),
    ("/credential", "credential"),
];

const TYPE_REST: Rest<ShareType> = Rest { noun: &nouns::SHARE_TYPES, fields: TYPE_FIELDS };

pub struct ShareTypeResource;

impl Resource<Client> for ShareTypeResource {
    type State = ShareTypeState;

    fn type_name(&self) -> &'static str {
        "tundra_share_type"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "A share type (site admins): a share backend and its settings. CephFS native gives each share a \
                 subvolume with its size as quota and each access rule a cephx ID of the project's own. NFS \
                 (NFS-Ganesha) and GlusterFS (legacy) shares live on a file server tundrad manages over SSH, \
                 with address rules. The credential is write-only: sealed by tundrad, never returned, never in \
                 state.",
            )
            .attr(id_attr("share type"))
            .attr(Attribute::string("name").required().validator(name_validator()).modifier(replace()))
            .attr(description_attr())
            .attr(
                Attribute::string("backend")
                    .required()
                    .modifier(replace())
                    .validator(validators::one_of(["cephfs", "nfs", "glusterfs"]))
                    .description(
                        "`cephfs`, `nfs` (NFS-Ganesha; the size is an allowance, not a quota) or `glusterfs` (legacy).",
                    ),
            )
            .attr(
                Attribute::list("monitors", tfplugin::Type::String)
                    .optional()
                    .modifier(replace())
                    .description("CephFS: the monitors, `HOST:PORT` each."),
            )
            .attr(
                Attribute::string("fs_name")
                    .optional()
                    .modifier(replace())
                    .description("CephFS: the `ceph fs volume`."),
            )
            .attr(
                Attribute::string("client_id")
                    .optional()
                    .modifier(replace())
                    .description("CephFS: the cephx ID tundrad manages shares as (default `admin`)."),
            )
            .attr(
                Attribute::string("ssh_address")
                    .optional()
                    .modifier(replace())
                    .description("NFS, GlusterFS: the file server's sshd, `HOST:PORT`; tundrad manages exports or volumes there."),
            )
            .attr(
                Attribute::string("ssh_username")
                    .optional()
                    .modifier(replace())
                    .description("NFS, GlusterFS: the user tundrad logs in as (default `root`)."),
            )
            .attr(
                Attribute::string("host_key")
                    .optional()
                    .modifier(replace())
                    .description("NFS, GlusterFS: the server's host key, `SHA256:…` as `ssh-keygen -l` prints it."),
            )
            .attr(
                Attribute::string("server")
                    .optional()
                    .modifier(replace())
                    .description("NFS, GlusterFS: the address clients mount from (NFS `HOST` or `HOST:PORT`; GlusterFS the server's address in its pool)."),
            )
            .attr(
                Attribute::string("root")
                    .optional()
                    .modifier(replace())
                    .description("NFS, GlusterFS: the directory on the server shares (or bricks) are made under."),
            )
            .attr(
                Attribute::string("exports_file")
                    .optional()
                    .modifier(replace())
                    .description("NFS: the exports file tundrad owns; the server's `ganesha.conf` `%include`s it."),
            )
            .attr(
                Attribute::string("pid_file")
                    .optional()
                    .modifier(replace())
                    .description("NFS: Ganesha's PID file (default `/run/ganesha/ganesha.pid`)."),
            )
            .attr(Attribute::string("credential").optional().write_only().description(
                "CephFS: that ID's key; NFS, GlusterFS: the SSH private key (OpenSSH format). Sent on create and when \
                 `credential_version` changes; never stored in state.",
            ))
            .attr(Attribute::number("credential_version").optional().description("Change to send `credential` again."))
            .attr(Attribute::bool("legacy").computed().description("GlusterFS types are legacy."))
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ShareTypeState) -> Result<ShareTypeState, Failed<ShareTypeState>> {
        let c = ctx.client()?;
        let backend = ShareBackend::parse(known(&plan.backend).unwrap_or_default())
            .ok_or_else(|| Diagnostic::error("Invalid backend", "cephfs").at(AttrPath::attr_root("backend")))?;
        let req = ShareTypeCreate {
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            backend,
            settings: ShareTypeSettings {
                monitors: plan.monitors.known().cloned().unwrap_or_default(),
                fs_name: plan.fs_name.known().cloned(),
                client_id: plan.client_id.known().cloned(),
                ssh_address: plan.ssh_address.known().cloned(),
                ssh_username: plan.ssh_username.known().cloned(),
                host_key: plan.host_key.known().cloned(),
                server: plan.server.known().cloned(),
                root: plan.root.known().cloned(),
                exports_file: plan.exports_file.known().cloned(),
                pid_file: plan.pid_file.known().cloned(),
            },
            credential: plan.credential.known().cloned(),
        };
        let x: ShareType = TYPE_REST.create(c, &req).await?;
        Ok(ShareTypeState::from_view(&x, Some(&plan)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ShareTypeState) -> Result<Option<ShareTypeState>, Diagnostics> {
        let x: Option<ShareType> = TYPE_REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(|x| ShareTypeState::from_view(x, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ShareTypeState,
        plan: ShareTypeState,
    ) -> Result<ShareTypeState, Failed<ShareTypeState>> {
        let resend = plan.credential_version != prior.credential_version;
        let req = ShareTypeUpdate {
            description: plan.description.known().cloned(),
            credential: resend.then(|| plan.credential.known().cloned()).flatten(),
        };
        let x: ShareType = TYPE_REST.patch(ctx, &prior.id, &req).await?;
        Ok(ShareTypeState::from_view(&x, Some(&plan)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ShareTypeState) -> Result<(), Diagnostics> {
        TYPE_REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ShareTypeState, Diagnostics> {
        let x: ShareType = TYPE_REST.import(ctx, id).await?;
        Ok(ShareTypeState::from_view(&x, None))
    }
}

// ---- tundra_share -----------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ExportObj {
        pub network_id: Value<String>,
        pub path: Value<String>,
        pub preferred: Value<bool>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ShareState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub share_type_id: Value<String>,
        pub size_gib: Value<i64>,
        pub networks: Value<Vec<String>>,
        pub snapshot_id: Value<String>,
        pub status: Value<String>,
        pub export_locations: Value<Vec<ExportObj>>,
        pub created_at: Value<String>,
    }
}

impl ShareState {
    pub(crate) fn from_view(s: &Share, prior: Option<&ShareState>) -> Self {
        ShareState {
            id: Value::Known(s.id.to_string()),
            project_id: Value::Known(s.project_id.to_string()),
            name: Value::Known(s.name.clone()),
            description: Value::Known(s.description.clone()),
            share_type_id: Value::Known(s.share_type_id.to_string()),
            size_gib: Value::Known(s.size_gib as i64),
            networks: if s.networks.is_empty() && prior.is_none_or(|p| p.networks.is_null()) {
                Value::Null
            } else {
                Value::Known(s.networks.iter().map(|n| n.to_string()).collect())
            },
            snapshot_id: s.snapshot_id.map(|x| x.to_string()).into(),
            status: Value::Known(s.status.as_str().into()),
            export_locations: Value::Known(
                s.export_locations
                    .iter()
                    .map(|e| ExportObj {
                        network_id: e.network_id.map(|n| n.to_string()).into(),
                        path: Value::Known(e.path.clone()),
                        preferred: Value::Known(e.preferred),
                    })
                    .collect(),
            ),
            created_at: Value::Known(s.created_at.clone()),
        }
    }

    fn networks(&self) -> Result<Vec<tundra_api::NetworkId>, Diagnostic> {
        let mut out = Vec::new();
        for (i, n) in self.networks.known().cloned().unwrap_or_default().iter().enumerate() {
            out.push(n.parse().map_err(|_| {
                Diagnostic::error("Invalid network ID", format!("{n:?} is not an ID"))
                    .at(AttrPath::attr_root("networks").index(i))
            })?);
        }
        Ok(out)
    }
}

const SHARE_FIELDS: &[(&str, &str)] = &[
    ("/project_id", "project_id"),
    ("/name", "name"),
    ("/description", "description"),
    ("/share_type_id", "share_type_id"),
    ("/size_gib", "size_gib"),
    ("/networks", "networks"),
    ("/snapshot_id", "snapshot_id"),
];

const SHARE_REST: Rest<Share> = Rest { noun: &nouns::SHARES, fields: SHARE_FIELDS };

/// Poll the share until it is available (or in error).
async fn wait_available(ctx: &Ctx<Client>, c: &Client, s: Share) -> Result<Share, Diagnostic> {
    let mut s = s;
    loop {
        match s.status {
            ShareStatus::Available => return Ok(s),
            ShareStatus::Error => {
                return Err(Diagnostic::error(
                    "The share backend refused",
                    s.status_reason.unwrap_or_else(|| format!("share {} is in error", s.name)),
                )
                .at(AttrPath::attr_root("size_gib")));
            }
            _ => {}
        }
        if near_deadline(ctx) {
            return Err(Diagnostic::error(
                "Share not available yet",
                format!(
                    "Share {} is {} ({}); apply again to wait for it.",
                    s.name,
                    s.status,
                    s.status_reason.unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        s = c.get(&nouns::SHARES, &s.id.to_string()).await.map_err(|e| e.diag("Could not read the share"))?;
    }
}

/// Where an object being made stands.
enum Settle {
    Done,
    Failed(Diagnostic),
    /// Not yet: what to say if the deadline comes first.
    Waiting(String),
}

/// Poll an object until it settles; on failure or deadline, the diagnostic
/// and the object as last read (kept in state, so apply can wait again).
async fn settled<T: serde::de::DeserializeOwned>(
    ctx: &Ctx<Client>,
    noun: &crate::client::Noun<T>,
    id: &str,
    first: T,
    settle: impl Fn(&T) -> Settle,
) -> Result<T, (Diagnostic, T)> {
    let mut x = first;
    loop {
        match settle(&x) {
            Settle::Done => return Ok(x),
            Settle::Failed(d) => return Err((d, x)),
            Settle::Waiting(why) if near_deadline(ctx) => {
                return Err((Diagnostic::error(format!("The {} is not ready yet", noun.name), why), x));
            }
            Settle::Waiting(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c = match ctx.client() {
            Ok(c) => c,
            Err(_) => return Err((Diagnostic::error("No client", "the provider is not configured"), x)),
        };
        x = match c.get(noun, id).await {
            Ok(v) => v,
            Err(e) => return Err((e.diag(&format!("Could not read the {}", noun.name)), x)),
        };
    }
}

pub struct ShareResource;

impl Resource<Client> for ShareResource {
    type State = ShareState;

    fn type_name(&self) -> &'static str {
        "tundra_share"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        Schema::new(
            Block::new(
                "A share: a filesystem of `size_gib` on a share type's backend. Create waits until it is \
                 available; a new `size_gib` extends or shrinks it in place (a shrink below what it holds is \
                 refused). Nodes mount it through their `shares`; other clients through an access rule.",
            )
            .attr(id_attr("share"))
            .attr(project_id_attr("share"))
            .attr(Attribute::string("name").required().validator(name_validator()).modifier(replace()))
            .attr(description_attr())
            .attr(Attribute::string("share_type_id").required().modifier(replace()))
            .attr(
                Attribute::number("size_gib")
                    .required()
                    .validator(validators::range(1.0, 1048576.0))
                    .description("Its size in GiB (the backend's quota). Changed in place."),
            )
            .attr(
                Attribute::list("networks", tfplugin::Type::String)
                    .optional()
                    .description("The networks clients reach it from (an export location each)."),
            )
            .attr(
                Attribute::string("snapshot_id")
                    .optional()
                    .modifier(replace())
                    .description("Make it from this snapshot (of a share of the same type)."),
            )
            .attr(Attribute::string("status").computed().description("`available` after apply."))
            .attr(
                Attribute::nested(
                    "export_locations",
                    tfplugin::schema::Nesting::List,
                    vec![
                        Attribute::string("network_id").computed(),
                        Attribute::string("path").computed(),
                        Attribute::bool("preferred").computed(),
                    ],
                )
                .computed()
                .modifier(keep())
                .description("Where clients mount it from, per network (CephFS: `MONITORS:/path`)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut tfplugin::PlanChange<ShareState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ShareState) -> Result<ShareState, Failed<ShareState>> {
        let c = ctx.client()?;
        let req = ShareCreate {
            project_id: c.project_id(known(&plan.project_id)).await?,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            share_type_id: id(&plan.share_type_id, "share_type_id")?,
            size_gib: uint(&plan.size_gib).unwrap_or(0),
            networks: plan.networks()?,
            snapshot_id: match plan.snapshot_id.known() {
                Some(_) => Some(id(&plan.snapshot_id, "snapshot_id")?),
                None => None,
            },
        };
        let s: Share = SHARE_REST.create(c, &req).await?;
        match wait_available(ctx, c, s.clone()).await {
            Ok(s) => Ok(ShareState::from_view(&s, Some(&plan))),
            Err(d) => Err(Failed::with_state(d, ShareState::from_view(&s, Some(&plan)))),
        }
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ShareState) -> Result<Option<ShareState>, Diagnostics> {
        let x: Option<Share> = SHARE_REST.find(ctx, &state.id).await?;
        Ok(x.filter(|s| s.status != ShareStatus::Deleting).map(|s| ShareState::from_view(&s, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ShareState,
        plan: ShareState,
    ) -> Result<ShareState, Failed<ShareState>> {
        let c = ctx.client()?;
        let req = ShareUpdate {
            description: plan.description.known().cloned(),
            size_gib: uint(&plan.size_gib).filter(|s| Some(*s) != uint(&prior.size_gib)),
            networks: Some(plan.networks()?),
        };
        let s: Share = SHARE_REST.patch(ctx, &prior.id, &req).await?;
        let s = wait_available(ctx, c, s).await?;
        Ok(ShareState::from_view(&s, Some(&plan)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ShareState) -> Result<(), Diagnostics> {
        SHARE_REST.delete(ctx, &state.id).await?;
        wait_gone(ctx, &nouns::SHARES, &super::state_id(&state.id), "share").await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ShareState, Diagnostics> {
        let x: Share = SHARE_REST.import(ctx, id).await?;
        Ok(ShareState::from_view(&x, None))
    }
}

// ---- tundra_share_access ------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct AccessStateObj {
        pub id: Value<String>,
        pub share_id: Value<String>,
        pub kind: Value<String>,
        pub access_to: Value<String>,
        pub access_level: Value<String>,
        pub state: Value<String>,
        pub ceph_id: Value<String>,
        pub created_at: Value<String>,
    }
}

impl AccessStateObj {
    fn from_view(a: &ShareAccess) -> Self {
        AccessStateObj {
            id: Value::Known(a.id.to_string()),
            share_id: Value::Known(a.share_id.to_string()),
            kind: Value::Known(a.kind.as_str().into()),
            access_to: Value::Known(a.access_to.clone()),
            access_level: Value::Known(a.access_level.as_str().into()),
            state: Value::Known(a.state.as_str().into()),
            ceph_id: a.ceph_id.clone().into(),
            created_at: Value::Known(a.created_at.clone()),
        }
    }
}

const ACCESS_FIELDS: &[(&str, &str)] =
    &[("/share_id", "share_id"), ("/kind", "kind"), ("/access_to", "access_to"), ("/access_level", "access_level")];

const ACCESS_REST: Rest<ShareAccess> = Rest { noun: &nouns::SHARE_ACCESS, fields: ACCESS_FIELDS };

pub struct ShareAccessResource;

impl Resource<Client> for ShareAccessResource {
    type State = AccessStateObj;

    fn type_name(&self) -> &'static str {
        "tundra_share_access"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "An access rule of a share: a cephx ID (CephFS; tundrad puts the project's namespace before the \
                 name) or an address/CIDR, read-write or read-only. Create waits until the rule is active. Its \
                 key is never in state: read it with the `tundra_share_access_secret` ephemeral resource.",
            )
            .attr(id_attr("share access rule"))
            .attr(Attribute::string("share_id").required().modifier(replace()))
            .attr(
                Attribute::string("kind")
                    .required()
                    .modifier(replace())
                    .validator(validators::one_of(["cephx", "ip"]))
                    .description("`cephx` (CephFS shares) or `ip` (NFS, GlusterFS)."),
            )
            .attr(
                Attribute::string("access_to")
                    .required()
                    .modifier(replace())
                    .description("The cephx name, or the CIDR."),
            )
            .attr(
                Attribute::string("access_level")
                    .optional()
                    .computed()
                    .modifier(replace())
                    .modifier(modifiers::use_state_for_unknown())
                    .validator(validators::one_of(["rw", "ro"]))
                    .description("`rw` (default) or `ro`."),
            )
            .attr(Attribute::string("state").computed().description("`active` after apply."))
            .attr(
                Attribute::string("ceph_id")
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("The cephx ID clients authenticate as (`--id`)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: AccessStateObj) -> Result<AccessStateObj, Failed<AccessStateObj>> {
        let c = ctx.client()?;
        let req = ShareAccessCreate {
            share_id: id(&plan.share_id, "share_id")?,
            kind: AccessKind::parse(known(&plan.kind).unwrap_or_default()).unwrap_or(AccessKind::Cephx),
            access_to: known(&plan.access_to).unwrap_or_default().into(),
            access_level: AccessLevel::parse(known(&plan.access_level).unwrap_or("rw")).unwrap_or(AccessLevel::Rw),
        };
        let a: ShareAccess = ACCESS_REST.create(c, &req).await?;
        let id = a.id.to_string();
        settled(ctx, &nouns::SHARE_ACCESS, &id, a, |a: &ShareAccess| match a.state {
            AccessState::Active => Settle::Done,
            AccessState::Error => Settle::Failed(
                Diagnostic::error(
                    "The share backend refused the rule",
                    a.state_reason.clone().unwrap_or_else(|| "the rule is in error".into()),
                )
                .at(AttrPath::attr_root("access_to")),
            ),
            _ => Settle::Waiting(format!("Rule {} is {}; apply again to wait for it.", a.id, a.state)),
        })
        .await
        .map(|a| AccessStateObj::from_view(&a))
        .map_err(|(d, a)| Failed::with_state(d, AccessStateObj::from_view(&a)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: AccessStateObj) -> Result<Option<AccessStateObj>, Diagnostics> {
        let x: Option<ShareAccess> = ACCESS_REST.find(ctx, &state.id).await?;
        Ok(x.filter(|a| a.state != AccessState::Deleting).as_ref().map(AccessStateObj::from_view))
    }

    async fn update(
        &self,
        _ctx: &Ctx<Client>,
        _prior: AccessStateObj,
        plan: AccessStateObj,
    ) -> Result<AccessStateObj, Failed<AccessStateObj>> {
        // Every argument replaces the rule; nothing changes in place.
        Ok(plan)
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: AccessStateObj) -> Result<(), Diagnostics> {
        ACCESS_REST.delete(ctx, &state.id).await?;
        wait_gone(ctx, &nouns::SHARE_ACCESS, &super::state_id(&state.id), "share access rule").await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<AccessStateObj, Diagnostics> {
        let x: ShareAccess = ACCESS_REST.import(ctx, id).await?;
        Ok(AccessStateObj::from_view(&x))
    }
}

// ---- tundra_share_snapshot ------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct SnapshotState {
        pub id: Value<String>,
        pub share_id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub size_gib: Value<i64>,
        pub status: Value<String>,
        pub created_at: Value<String>,
    }
}

impl SnapshotState {
    fn from_view(x: &ShareSnapshot) -> Self {
        SnapshotState {
            id: Value::Known(x.id.to_string()),
            share_id: Value::Known(x.share_id.to_string()),
            name: Value::Known(x.name.clone()),
            description: Value::Known(x.description.clone()),
            size_gib: Value::Known(x.size_gib as i64),
            status: Value::Known(x.status.as_str().into()),
            created_at: Value::Known(x.created_at.clone()),
        }
    }
}

const SNAPSHOT_FIELDS: &[(&str, &str)] =
    &[("/share_id", "share_id"), ("/name", "name"), ("/description", "description")];

const SNAPSHOT_REST: Rest<ShareSnapshot> = Rest { noun: &nouns::SHARE_SNAPSHOTS, fields: SNAPSHOT_FIELDS };

pub struct ShareSnapshotResource;

impl Resource<Client> for ShareSnapshotResource {
    type State = SnapshotState;

    fn type_name(&self) -> &'static str {
        "tundra_share_snapshot"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "A snapshot of a share (CephFS: a subvolume snapshot; NFS: a copy; GlusterFS shares take none). \
                 Create waits until it is available. A `tundra_share` with `snapshot_id` is made from it, at \
                 least as big as `size_gib`. A snapshot is deleted before its share can be.",
            )
            .attr(id_attr("share snapshot"))
            .attr(Attribute::string("share_id").required().modifier(replace()))
            .attr(Attribute::string("name").required().validator(name_validator()).modifier(replace()))
            .attr(
                Attribute::string("description")
                    .optional()
                    .computed()
                    .modifier(replace())
                    .modifier(modifiers::use_state_for_unknown())
                    .description("Free text (changing it makes a new snapshot)."),
            )
            .attr(Attribute::number("size_gib").computed().description("The share's size when it was taken."))
            .attr(Attribute::string("status").computed().description("`available` after apply."))
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: SnapshotState) -> Result<SnapshotState, Failed<SnapshotState>> {
        let c = ctx.client()?;
        let req = ShareSnapshotCreate {
            share_id: id(&plan.share_id, "share_id")?,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
        };
        let x: ShareSnapshot = SNAPSHOT_REST.create(c, &req).await?;
        let id = x.id.to_string();
        settled(ctx, &nouns::SHARE_SNAPSHOTS, &id, x, |x: &ShareSnapshot| match x.status {
            SnapshotStatus::Available => Settle::Done,
            SnapshotStatus::Error => Settle::Failed(
                Diagnostic::error(
                    "The share backend refused the snapshot",
                    x.status_reason.clone().unwrap_or_else(|| "the snapshot is in error".into()),
                )
                .at(AttrPath::attr_root("share_id")),
            ),
            _ => Settle::Waiting(format!("Snapshot {} is {}; apply again to wait for it.", x.name, x.status)),
        })
        .await
        .map(|x| SnapshotState::from_view(&x))
        .map_err(|(d, x)| Failed::with_state(d, SnapshotState::from_view(&x)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: SnapshotState) -> Result<Option<SnapshotState>, Diagnostics> {
        let x: Option<ShareSnapshot> = SNAPSHOT_REST.find(ctx, &state.id).await?;
        Ok(x.filter(|x| x.status != SnapshotStatus::Deleting).as_ref().map(SnapshotState::from_view))
    }

    async fn update(
        &self,
        _ctx: &Ctx<Client>,
        _prior: SnapshotState,
        plan: SnapshotState,
    ) -> Result<SnapshotState, Failed<SnapshotState>> {
        // Every argument replaces the snapshot; nothing changes in place.
        Ok(plan)
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: SnapshotState) -> Result<(), Diagnostics> {
        SNAPSHOT_REST.delete(ctx, &state.id).await?;
        wait_gone(ctx, &nouns::SHARE_SNAPSHOTS, &super::state_id(&state.id), "share snapshot").await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<SnapshotState, Diagnostics> {
        let x: ShareSnapshot = SNAPSHOT_REST.import(ctx, id).await?;
        Ok(SnapshotState::from_view(&x))
    }
}

// ---- tundra_share_access_secret (ephemeral) -------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct AccessSecretObj {
        pub access_id: Value<String>,
        pub share_id: Value<String>,
        pub ceph_id: Value<String>,
        pub key: Value<String>,
        pub monitors: Value<Vec<String>>,
        pub path: Value<String>,
        pub fs_name: Value<String>,
        pub fstab: Value<String>,
    }
}

/// An active rule's key and mount bundle, for clients outside Tundra (a
/// Kubernetes CSI static volume, a workstation): read during the run,
/// never written to state or plan.
pub struct ShareAccessSecret;

impl tfplugin::EphemeralResource<Client> for ShareAccessSecret {
    type State = AccessSecretObj;

    fn type_name(&self) -> &'static str {
        "tundra_share_access_secret"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "What a client outside Tundra needs to mount a share under an active access rule: the cephx ID \
                 and key, the monitors, the path and an fstab line. Ephemeral: never in state or plan.",
            )
            .attr(Attribute::string("access_id").required().description("The rule (`tundra_share_access.id`)."))
            .attr(Attribute::string("share_id").computed())
            .attr(
                Attribute::string("ceph_id")
                    .computed()
                    .description("`--id` of ceph-fuse / `name=` of the kernel client."),
            )
            .attr(Attribute::string("key").computed().sensitive().description("The cephx key."))
            .attr(Attribute::list("monitors", tfplugin::Type::String).computed())
            .attr(Attribute::string("path").computed().description("The path inside the filesystem."))
            .attr(Attribute::string("fs_name").computed())
            .attr(
                Attribute::string("fstab")
                    .computed()
                    .description("A ready `/etc/fstab` line (mount point `/mnt/SHARE`)."),
            ),
        )
    }

    async fn open(
        &self,
        ctx: &Ctx<Client>,
        config: AccessSecretObj,
    ) -> Result<tfplugin::resource::Opened<AccessSecretObj>, Diagnostics> {
        let c = ctx.client()?;
        let id = known(&config.access_id).unwrap_or_default();
        let s = c.share_access_secret(id).await.map_err(|e| e.diag("Could not read the rule's key"))?;
        Ok(tfplugin::resource::Opened {
            result: AccessSecretObj {
                access_id: Value::Known(s.access_id.to_string()),
                share_id: Value::Known(s.share_id.to_string()),
                ceph_id: s.ceph_id.into(),
                key: s.key.into(),
                monitors: Value::Known(s.monitors),
                path: Value::Known(s.path),
                fs_name: s.fs_name.into(),
                fstab: Value::Known(s.fstab),
            },
            renew_at: None,
            private: None,
        })
    }
}
