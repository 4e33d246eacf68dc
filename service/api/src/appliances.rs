//! Appliances: a platform (a Slurm cluster, Dask, JupyterHub) made of
//! nodes in roles, instantiated from a versioned template that is data —
//! typed parameters, generated secrets, roles that render their files and
//! commands from the parameters and each other's addresses, and outputs.
//! What a node's appliance agent reads from and reports to the metadata
//! service is here too. (`tundra_engine::appliances` holds the rules.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::shares::AccessLevel;
use crate::{ApplianceId, ApplianceTemplateId, KeypairId, NodeId, ProjectId};

words! {
    /// What a template parameter holds.
    pub enum ParameterKind {
        /// A whole number (`minimum`/`maximum` bound it).
        Integer = "integer",
        /// How many nodes a role has: a whole number from 0 to 999.
        Count = "count",
        /// Text (`pattern` is a regular expression the whole value matches).
        String = "string",
        Boolean = "boolean",
        /// A flavor's ID.
        Flavor = "flavor",
        /// An image's ID.
        Image = "image",
        /// A network's ID.
        Network = "network",
        /// A list of networks' IDs, in order.
        Networks = "networks",
        /// A share's ID (the project's own).
        Share = "share",
        /// Another appliance of the same project (its ID), which this one
        /// joins: its texts read it as `peers.NAME` — its appliance, its
        /// parameters, its roles' nodes and addresses, and (in what reaches
        /// a node only) its secrets, e.g. a Slurm cluster's munge key for a
        /// JupyterHub that submits jobs to it. A peer in use is not deleted.
        Appliance = "appliance",
    }
}

/// A template's parameter: what an appliance gives it, checked against
/// this before anything is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Lower-case letters, digits and `_`, starting with a letter: how
    /// roles and templates refer to it (`parameters.NAME`).
    pub name: String,
    pub kind: ParameterKind,
    #[serde(default)]
    pub description: String,
    /// Taken when an appliance gives none. Without a default the parameter
    /// is required, unless `optional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub default: Option<serde_json::Value>,
    /// May be left out with no default (it is then `null`; a role's share
    /// mount bound to it is skipped).
    #[serde(default)]
    pub optional: bool,
    /// Fixed once the appliance exists: a change is refused, naming it.
    #[serde(default)]
    pub immutable: bool,
    /// `integer` and `count`: the smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// `integer` and `count`: the largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// `string`: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A secret tundrad generates once for each appliance, delivered only to
/// the appliance's own nodes — never in an API response or in state:
/// - `random` (for example a munge key): `bytes` random bytes, given to
///   templates as `secrets.NAME` (base64);
/// - `tls`: a certificate authority of the appliance's own (ECDSA P-256,
///   ten years) and one certificate it signed for the appliance's
///   services, valid for both ends of mutual TLS (server and client), with
///   its key — `secrets.NAME.ca`, `secrets.NAME.cert` and
///   `secrets.NAME.key`, PEM. Nothing outside the appliance trusts the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub name: String,
    #[serde(default = "random")]
    pub kind: SecretKind,
    /// `random`: how many random bytes, 16 to 1024 (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u32>,
}

words! {
    /// What a secret is.
    pub enum SecretKind {
        /// Random bytes (base64).
        Random = "random",
        /// A CA, and a certificate and key it signed (PEM).
        Tls = "tls",
    }
}

fn random() -> SecretKind {
    SecretKind::Random
}

words! {
    /// How a file's rendered content is written.
    pub enum FileEncoding {
        /// As rendered.
        Text = "text",
        /// The rendered text is base64, written decoded (binary keys).
        Base64 = "base64",
    }
}

/// A file a role's nodes keep as its template renders it now: the node's
/// appliance agent writes it whenever the rendering changes (a node joins,
/// a parameter changes) and then runs the role's `reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// An absolute path on the node.
    pub path: String,
    /// Octal, e.g. `0644`.
    #[serde(default = "file_mode")]
    pub mode: String,
    /// `USER:GROUP` (names on the node).
    #[serde(default = "file_owner")]
    pub owner: String,
    #[serde(default = "text")]
    pub encoding: FileEncoding,
    /// The content's template (Jinja syntax).
    pub content: String,
}

fn file_mode() -> String {
    "0644".into()
}

fn file_owner() -> String {
    "root:root".into()
}

fn text() -> FileEncoding {
    FileEncoding::Text
}

fn one() -> u32 {
    1
}

/// A share a role's nodes mount: a `share` parameter (skipped while that
/// parameter is `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleShare {
    pub parameter: String,
    /// An absolute path on the node, e.g. `/home`.
    pub mount_point: String,
    #[serde(default = "rw")]
    pub access: AccessLevel,
}

fn rw() -> AccessLevel {
    AccessLevel::Rw
}

/// How a role's nodes take the nodes of another role out of service before
/// they are deleted (a Slurm controller drains a compute node): `command`
/// runs on the first ready node of this role for each leaving node, with
/// `leaving.name` and `leaving.address`, and must exit 0 only once that
/// node holds no work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDrain {
    /// The role whose leaving nodes this one drains.
    pub role: String,
    pub command: String,
}

/// A role: nodes alike, named `APPLIANCE-ROLE-N`, each keeping its files
/// and running its commands as they render now. Templates (Jinja) see
/// `appliance`, `parameters`, `secrets`, `roles.ROLE` (`count`, and
/// `nodes`: name, index, address — on the role's traffic network — and
/// addresses by network ID) and `node` (this one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Lower-case letters, digits and inner `-`: part of its nodes' names.
    pub name: String,
    /// How many nodes, unless `count_parameter` names a `count` parameter.
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_parameter: Option<String>,
    /// The `flavor` parameter its nodes are made with.
    pub flavor_parameter: String,
    /// The `image` parameter its nodes are deployed with.
    pub image_parameter: String,
    /// `network` / `networks` parameters: its networks beyond provisioning, in order.
    #[serde(default)]
    pub network_parameters: Vec<String>,
    /// The `network` parameter whose address is each node's `address`
    /// (default: its first network beyond provisioning, else provisioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_network_parameter: Option<String>,
    #[serde(default)]
    pub shares: Vec<RoleShare>,
    /// Keep its nodes on different racks.
    #[serde(default)]
    pub spread: bool,
    /// What its nodes keep written. A node applies them once every role
    /// they read has all its nodes placed (addresses known).
    #[serde(default)]
    pub files: Vec<RoleFile>,
    /// A command (template) run after any of its files changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<String>,
    /// A command (template): the node is ready when it exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<RoleDrain>,
}

/// A value an appliance shows, rendered from `appliance`, `parameters` and
/// `roles` (never `secrets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub value: String,
}

/// An appliance template. A template never changes once made (only its
/// description): a new version is a new template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplianceTemplate {
    pub id: ApplianceTemplateId,
    /// Absent for the site's templates (every project reads them).
    pub project_id: Option<ProjectId>,
    pub name: String,
    /// Name and version together are unique in the template's scope.
    pub version: u32,
    pub description: String,
    pub parameters: Vec<Parameter>,
    pub secrets: Vec<SecretSpec>,
    pub roles: Vec<Role>,
    pub outputs: Vec<OutputSpec>,
    /// Markdown for people (template): sees `appliance`, `parameters` and `outputs`.
    pub usage: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/appliance-templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplianceTemplateCreate {
    /// Omit for a site template (site admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    #[serde(default)]
    pub usage: String,
}

/// `PATCH /v1/appliance-templates/{id}`: only the description changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplianceTemplateUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

words! {
    /// Where an appliance stands, judged from its nodes' ready reports.
    pub enum ApplianceStatus {
        /// Nodes still deploying or configuring; the reason names which.
        Creating = "creating",
        /// Every node of every role reported ready.
        Active = "active",
        /// Some node failed (deploy or configuration); the reason names it.
        Degraded = "degraded",
        /// A change is being applied (nodes added, drained or reconfigured).
        Updating = "updating",
        Deleting = "deleting",
    }
}

words! {
    /// One node of an appliance.
    pub enum ApplianceMemberState {
        /// Its node is being deployed.
        Deploying = "deploying",
        /// Deployed; its agent has not reported ready under the current
        /// rendering yet.
        Configuring = "configuring",
        Ready = "ready",
        /// Its deploy, its files or its ready check failed (the reason says which).
        Failed = "failed",
        /// Being drained by the role that drains it, then deleted.
        Leaving = "leaving",
    }
}

/// A node of an appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplianceMember {
    /// `APPLIANCE-ROLE-N`, also its host name.
    pub name: String,
    pub role: String,
    /// Absent until its node is made.
    pub node_id: Option<NodeId>,
    pub state: ApplianceMemberState,
    pub reason: Option<String>,
    /// Its address on the role's traffic network, once it has one.
    pub address: Option<String>,
}

/// A role of an appliance as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleStatus {
    pub name: String,
    /// How many nodes the parameters ask for.
    pub count: u32,
    /// How many of them reported ready.
    pub ready: u32,
    pub status: ApplianceStatus,
    pub reason: Option<String>,
}

/// An appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Appliance {
    pub id: ApplianceId,
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: ApplianceTemplateId,
    pub keypair_id: Option<KeypairId>,
    /// Every parameter, defaults filled in.
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub status: ApplianceStatus,
    pub status_reason: Option<String>,
    pub roles: Vec<RoleStatus>,
    #[serde(default)]
    pub members: Vec<ApplianceMember>,
    /// The template's outputs, rendered (empty until every role's nodes have addresses).
    pub outputs: BTreeMap<String, String>,
    /// The template's usage text, rendered from the outputs.
    pub usage: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/appliances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplianceCreate {
    pub project_id: ProjectId,
    /// Unique in the project; the prefix of its nodes' names.
    pub name: String,
    pub template_id: ApplianceTemplateId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair_id: Option<KeypairId>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// `PATCH /v1/appliances/{id}`: parameters change in place (a count adds
/// or drains nodes, a new share mounts); an immutable one is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplianceUpdate {
    /// The parameters given (the whole set: one left out takes its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<BTreeMap<String, serde_json::Value>>,
}

/// A file as a node's agent writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedFile {
    pub path: String,
    pub mode: String,
    pub owner: String,
    /// The bytes to write, base64.
    pub content_base64: String,
}

/// A leaving node this node drains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrainTask {
    pub node: String,
    pub command: String,
}

/// What a node's appliance agent reads (`tundra_appliance.json` from the
/// metadata service, with its node's metadata token): its files and
/// commands as rendered now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliancePlan {
    pub appliance: String,
    pub role: String,
    pub node: String,
    /// Changes whenever anything below does: the agent reports ready
    /// against the generation it applied.
    pub generation: String,
    pub files: Vec<PlannedFile>,
    pub reload: Option<String>,
    pub ready: Option<String>,
    /// Nodes of the role this one drains that are leaving.
    #[serde(default)]
    pub drain: Vec<DrainTask>,
}

/// What a node's appliance agent reports (`POST tundra_appliance_report`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplianceReport {
    /// The plan generation the node applied.
    pub generation: String,
    /// Its ready check passed (or it has none) under that generation.
    #[serde(default)]
    pub ready: bool,
    /// What failed (files, reload or ready check) and its output's tail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Leaving nodes it drained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drained: Vec<String>,
}
