//! Clusters: Kubernetes (k3s) or Docker Swarm on a project's nodes —
//! templates, clusters and their node groups and members, and what a
//! node's cluster agent reads from and reports to the metadata service.
//! (`tundra_engine::clusters` holds the rules.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::shares::NodeShare;
use crate::{ClusterId, ClusterTemplateId, FlavorId, ImageId, KeypairId, NetworkId, NodeId, ProjectId};

words! {
    /// What runs the cluster.
    pub enum ClusterKind {
        /// k3s, installed air-gapped from a bundle the site registers as an image.
        Kubernetes = "kubernetes",
        /// Docker Swarm, with Docker from the node image.
        Swarm = "swarm",
    }
}

words! {
    /// A node group's part in the cluster.
    pub enum GroupRole {
        /// Kubernetes servers / Swarm managers.
        ControlPlane = "control_plane",
        /// Kubernetes agents / Swarm workers.
        Worker = "worker",
    }
}

words! {
    /// Where a cluster stands, judged from its nodes' reports and the
    /// control plane's own view of its members.
    pub enum ClusterStatus {
        /// Nodes still deploying or joining; the reason names which.
        Creating = "creating",
        /// Every node joined and the control plane sees each one ready.
        Active = "active",
        /// Some node failed (deploy, join, or not ready); the reason names it.
        Degraded = "degraded",
        /// A group is being scaled or a node replaced.
        Updating = "updating",
        Deleting = "deleting",
    }
}

words! {
    /// One node's way into the cluster.
    pub enum MemberState {
        /// Its node is being deployed.
        Deploying = "deploying",
        /// Deployed; its cluster agent has not reported joining yet.
        Joining = "joining",
        Joined = "joined",
        /// Its deploy or its join failed (the member's reason says which).
        Failed = "failed",
        /// Being drained and removed (scale-down or replacement).
        Leaving = "leaving",
    }
}

/// A cluster template: what runs the cluster, versioned. A template in use
/// never changes (only its description): a new version replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterTemplate {
    pub id: ClusterTemplateId,
    /// Absent for the site's templates (every project reads them).
    pub project_id: Option<ProjectId>,
    pub name: String,
    /// Name and version together are unique in the template's scope.
    pub version: u32,
    pub kind: ClusterKind,
    pub description: String,
    /// `kubernetes`: the k3s air-gap bundle (an image of the site or the
    /// project: a tar holding the `k3s` binary and the images tarball).
    pub bundle_image_id: Option<ImageId>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/cluster-templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterTemplateCreate {
    /// Omit for a site template (site admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub version: u32,
    pub kind: ClusterKind,
    #[serde(default)]
    pub description: String,
    /// Required for `kubernetes`, refused for `swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_image_id: Option<ImageId>,
}

/// `PATCH /v1/cluster-templates/{id}`: only the description changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterTemplateUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where a group's nodes may go. The control plane's nodes are always
/// kept apart (anti-affinity: no two on one rack).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPlacement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub island: Option<String>,
    /// `pack` (default) or `spread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<crate::nodes::Strategy>,
}

/// A node group: `count` nodes alike, named `CLUSTER-GROUP-N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    /// Unique in the cluster; part of its nodes' names.
    pub name: String,
    pub role: GroupRole,
    pub flavor_id: FlavorId,
    pub image_id: ImageId,
    /// Changes in place: nodes are added, or drained, removed and cleaned.
    /// The control plane's is odd (1, 3, 5): a quorum must survive one loss.
    pub count: u32,
    /// Networks beyond provisioning, in order (several: a 25G and a 100G one).
    #[serde(default)]
    pub networks: Vec<NetworkId>,
    /// Which of `networks` carries cluster traffic (k3s `--node-ip`, Swarm
    /// `--advertise-addr`); default: the first of them, else provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network_id: Option<NetworkId>,
    /// Shares every node of the group mounts.
    #[serde(default)]
    pub shares: Vec<NodeShare>,
    #[serde(default)]
    pub placement: GroupPlacement,
}

/// A node of a cluster as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterMember {
    /// The node's name (`CLUSTER-GROUP-N`), also its host name.
    pub name: String,
    pub group: String,
    pub role: GroupRole,
    /// Absent until its node is made.
    pub node_id: Option<NodeId>,
    pub state: MemberState,
    /// Why it is not joined (its deploy's or join's failure, or what it waits for).
    pub reason: Option<String>,
}

/// A cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub id: ClusterId,
    pub project_id: ProjectId,
    pub name: String,
    pub template_id: ClusterTemplateId,
    pub kind: ClusterKind,
    pub keypair_id: Option<KeypairId>,
    pub groups: Vec<NodeGroup>,
    pub labels: BTreeMap<String, String>,
    pub status: ClusterStatus,
    /// What it waits for, or which nodes failed and why.
    pub status_reason: Option<String>,
    #[serde(default)]
    pub members: Vec<ClusterMember>,
    /// Where the control plane answers (Kubernetes: `https://ADDRESS:6443`;
    /// Swarm: the bootstrap manager's `ADDRESS:2377`), once it does.
    pub endpoint: Option<String>,
    /// Kubernetes: the API server's CA certificate (PEM), once the
    /// bootstrap server reported it (what a kubeconfig trusts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/clusters`: tundrad makes the groups' nodes, mints the join
/// secrets and judges the cluster from its nodes' reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterCreate {
    pub project_id: ProjectId,
    /// Unique in the project; the prefix of its nodes' names.
    pub name: String,
    pub template_id: ClusterTemplateId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair_id: Option<KeypairId>,
    /// Exactly one `control_plane` group, and any number of worker groups.
    pub groups: Vec<NodeGroup>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `PATCH /v1/clusters/{id}`: in place, never a new cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterUpdate {
    /// The groups: counts, new worker groups and removed ones change in
    /// place; a group's role, flavor, image and networks do not (add a new
    /// group and scale the old one to 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<NodeGroup>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Members to replace: each gets a successor first where it failed, or
    /// leaves first where it runs, so the group never drops below its count
    /// minus one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
}

/// What a node's cluster agent reads (`tundra_cluster.json` from the
/// metadata service, with its node's metadata token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterJoin {
    pub cluster: String,
    pub kind: ClusterKind,
    /// This node's name in the cluster (its host name).
    pub node: String,
    pub role: GroupRole,
    /// Initialise the cluster rather than join it.
    pub bootstrap: bool,
    /// This node's address for cluster traffic.
    pub address: String,
    /// The bootstrap node's cluster address, to join through.
    pub join_address: Option<String>,
    /// This node's role's join secret, once there is one; nothing else.
    pub secret: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// (Bootstrap node only) members to drain and remove from the cluster,
    /// then report as `removed`.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Kubernetes: the k3s air-gap bundle to install from (fetched from
    /// the metadata service beside this plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<ClusterBundle>,
    /// Kubernetes: k3s's configuration for this node
    /// (`/etc/rancher/k3s/config.yaml`, as JSON, which is YAML): its role's
    /// token, node IP, node name, labels, and how it joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub k3s_config: Option<BTreeMap<String, serde_json::Value>>,
    /// Kubernetes, the bootstrap server before the cluster exists: the
    /// client CA to install before k3s first starts (it signs the
    /// short-lived kubeconfigs tundrad hands out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<ClusterAuthority>,
}

/// Where a node gets the k3s bundle: `file` under the metadata service's
/// base, with the node's metadata token; it must hash to `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterBundle {
    pub file: String,
    pub sha256: String,
    pub size_bytes: i64,
}

/// A certificate authority a node installs: certificate and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterAuthority {
    pub certificate: String,
    pub key: String,
}

words! {
    /// A cluster agent's news about its own node.
    pub enum JoinOutcome {
        Joined = "joined",
        Failed = "failed",
    }
}

/// What a node's cluster agent reports (`POST tundra_cluster_report`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<JoinOutcome>,
    /// With `failed`: what went wrong (the command and its output's tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// (Bootstrap node) the join tokens: Swarm's, which Swarm made; k3s's
    /// full, CA-pinned forms (`K10…`) of those tundrad minted. Sealed,
    /// handed to each node by role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_token: Option<String>,
    /// (Bootstrap node) the members the control plane sees: name → ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<BTreeMap<String, bool>>,
    /// (Bootstrap node) members it drained and removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// (Kubernetes bootstrap server) the API server's CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

/// `POST /v1/clusters/{id}/credentials`: short-lived access to the
/// cluster's control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterCredentialsRequest {
    /// How long they last: 60 s to 12 h (default 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

/// Short-lived credentials for a cluster's control plane, made fresh for
/// each request and never kept by tundrad (nor in Terraform state: the
/// provider returns them from an ephemeral resource).
///
/// - Swarm: an SSH key and a user certificate the cluster's own authority
///   signed, for `DOCKER_HOST=ssh://…` (the nodes trust that authority for
///   user `tundra-admin`, in the `docker` group).
/// - Kubernetes: a key and a client certificate (user `tundra-admin`, group
///   `system:masters`) the cluster's client CA signed, the API server's
///   CA, and all three as a ready `kubeconfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterCredentials {
    /// Swarm: `ssh://tundra-admin@ADDRESS` (for `DOCKER_HOST`);
    /// Kubernetes: `https://ADDRESS:6443`.
    pub endpoint: String,
    pub user: String,
    /// The private key (Swarm: OpenSSH format; Kubernetes: PKCS#8 PEM).
    pub private_key: String,
    /// Its certificate. Swarm: `ssh-ed25519-cert-v01@openssh.com …`, to
    /// save beside the key as `KEY-cert.pub` (or pass `-o CertificateFile=`);
    /// Kubernetes: an X.509 client certificate (PEM).
    pub certificate: String,
    /// Kubernetes: the API server's CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// Kubernetes: a kubeconfig holding endpoint, CA, certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// RFC 3339: the certificate is refused after this.
    pub expires_at: String,
}
