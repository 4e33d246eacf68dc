//! The catalog: keypairs, flavors and images — what a node is built from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FlavorId, ImageId, KeypairId, OperationId, ProjectId};

/// An SSH public key a project injects into its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Keypair {
    pub id: KeypairId,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    /// The key in OpenSSH `authorized_keys` form (type, base64, comment).
    pub public_key: String,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, …
    pub key_type: String,
    /// `SHA256:` + unpadded base64, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/keypairs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeypairCreate {
    pub project_id: ProjectId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub public_key: String,
}

/// `PATCH /v1/keypairs/{id}`: the key itself never changes (make a new keypair).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeypairUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A flavor: which machines a node may land on — a resource class plus traits
/// the machine must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Flavor {
    pub id: FlavorId,
    /// Absent for public flavors (created by site admins, visible to all).
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub resource_class: String,
    /// Sorted, unique traits such as `gpu` or `ib`.
    pub required_traits: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/flavors`. Without `project_id` the flavor is public (site admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub resource_class: String,
    #[serde(default)]
    pub required_traits: Vec<String>,
}

/// `PATCH /v1/flavors/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_traits: Option<Vec<String>>,
}

words! {
    /// The format an image arrives in; it is always stored and served raw.
    pub enum DiskFormat {
        Raw = "raw",
        Qcow2 = "qcow2",
    }
}

words! {
    /// Where an image is in its life.
    pub enum ImageStatus {
        /// Created; waiting for an upload (`PUT /v1/images/{id}/file`).
        Queued = "queued",
        /// Being fetched, verified or converted (see `operation_id`).
        Importing = "importing",
        /// Verified and servable.
        Active = "active",
        /// Import failed; `error` says why. Upload again or delete.
        Error = "error",
    }
}

/// A disk image nodes are deployed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub id: ImageId,
    /// Absent for public images.
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    /// The format of the source (uploaded or fetched) bytes.
    pub disk_format: DiskFormat,
    /// sha256 (hex) the source bytes must have.
    pub sha256: String,
    /// Where the service fetches the source from, if not uploaded.
    pub source_url: Option<String>,
    pub status: ImageStatus,
    /// Size of the stored raw image, once active.
    pub size_bytes: Option<i64>,
    /// sha256 of the stored raw image (what deployment verifies), once active.
    pub raw_sha256: Option<String>,
    /// Why the import failed.
    pub error: Option<String>,
    /// The import operation, while and after importing.
    pub operation_id: Option<OperationId>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/images`. With `source_url` the service fetches the image (the URL
/// must match the service's allow-list); without, upload it to
/// `PUT /v1/images/{id}/file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub disk_format: DiskFormat,
    /// 64 hex digits.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
}

/// `PATCH /v1/images/{id}`: the bytes never change (make a new image).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
