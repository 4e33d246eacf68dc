//! Identity and tenancy: projects, users, role assignments, API tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ProjectId, TokenId, UserId};

words! {
    /// A role within a project. Ordered: `reader < member < admin`.
    pub enum Role {
        /// Reads everything of the project.
        Reader = "reader",
        /// Reads, creates, changes and deletes the project's objects.
        Member = "member",
        /// A member who also manages the project's role assignments.
        Admin = "admin",
    }
}

/// A project: owns keypairs, private flavors and images, and later nodes,
/// networks and shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    /// Changes on every update; sent as the ETag.
    pub revision: i64,
}

/// `POST /v1/projects` (site admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreate {
    /// Unique; 1–63 characters of `a-z0-9-_.`, starting with a letter or digit.
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `PATCH /v1/projects/{project}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One of a project's quotas: its limit, what the project uses, and
/// whether the limit is the site's default (not set for this project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaItem {
    pub limit: u64,
    pub used: u64,
    pub default: bool,
}

/// `GET /v1/projects/{project}/quota`: what a project may have and has.
/// `addresses` counts the addresses of its ports (on its own and on shared
/// networks); `image_bytes` the raw size of its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub project_id: ProjectId,
    pub nodes: QuotaItem,
    pub networks: QuotaItem,
    pub addresses: QuotaItem,
    pub image_bytes: QuotaItem,
}

/// `PUT /v1/projects/{project}/quota` (site admins): the project's own
/// limits; a limit left out (or null) follows the site's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaSet {
    #[serde(default)]
    pub nodes: Option<u64>,
    #[serde(default)]
    pub networks: Option<u64>,
    #[serde(default)]
    pub addresses: Option<u64>,
    #[serde(default)]
    pub image_bytes: Option<u64>,
}

/// A user: local (with API tokens) or federated (created on first login
/// through an identity provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// Site administrator: may do anything, in every project.
    pub admin: bool,
    /// `local`, or the issuer of the identity provider that created it.
    pub source: String,
    pub created_at: String,
}

/// `POST /v1/users` (site admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
}

/// A user's role in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleAssignment {
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub user_name: String,
    pub role: Role,
}

/// `PUT /v1/projects/{project}/roles/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    pub role: Role,
}

/// An API token (never its secret, which is shown once at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub description: String,
    /// When set, the token only acts within this project.
    pub project_id: Option<ProjectId>,
    /// When set, the token acts with at most this role.
    pub role: Option<Role>,
    pub expires_at: String,
    pub created_at: String,
}

/// `POST /v1/tokens`: a token for the caller (or, for site admins, for `user_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    #[serde(default)]
    pub description: String,
    /// Site admins only: create the token for this user instead of themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Restrict the token to one project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Restrict the token to at most this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Lifetime in seconds (default and maximum from the service config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// The answer to `POST /v1/tokens`: the secret appears here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The bearer secret. Store it now; it cannot be shown again.
    pub secret: String,
    pub token: ApiToken,
}

/// `GET /v1/whoami`: who the service thinks the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub user_id: UserId,
    pub name: String,
    pub admin: bool,
    /// How the caller authenticated: `token` or `oidc`.
    pub method: String,
    pub roles: Vec<ProjectRole>,
}

/// A project and the caller's effective role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectRole {
    pub project_id: ProjectId,
    pub role: Role,
}
