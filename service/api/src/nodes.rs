//! Nodes: what a project declares — "a machine of this flavor, with this
//! image, close to these others" — and tundrad places, deploys, and cleans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fabric::FixedIp;
use crate::{FlavorId, ImageId, KeypairId, MachineId, NetworkId, NodeId, OperationId, PortId, ProjectId};

/// Where a node may go, and whom it should be near.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// A group of racks on one fast fabric (e.g. an InfiniBand island).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub island: Option<String>,
    /// A placement group of the project (any name); its nodes follow `policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// With `group`: `affinity` (all in one island) or `anti_affinity` (no two on one rack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<GroupPolicy>,
    /// `pack` (default: fill the busiest racks, keep whole racks free) or `spread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

words! {
    pub enum GroupPolicy {
        Affinity = "affinity",
        AntiAffinity = "anti_affinity",
    }
}

words! {
    pub enum Strategy {
        Pack = "pack",
        Spread = "spread",
    }
}

words! {
    /// `building` (placed, being deployed), `active`, `error` (see
    /// `status_reason`; its machine went back to cleaning), `deleting`
    /// (its machine is being cleaned).
    pub enum NodeStatus {
        Building = "building",
        Active = "active",
        Error = "error",
        Deleting = "deleting",
    }
}

/// An address of a node: on which network, through which interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// The network's name (`provisioning` until the node has networks of its own).
    pub network: String,
    /// The machine interface carrying it.
    pub mac: String,
    /// IPv4 address, or absent when the network hands it out by DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Prefix length of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
}

/// One of a node's networks: a network (tundrad makes the node a port on
/// it) or a port of the project. In order: the first goes to the machine's
/// first free data interface on that physical network, and so on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeNetworkRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<NetworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<PortId>,
}

/// A node's network as bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeNetwork {
    pub network_id: NetworkId,
    pub port_id: PortId,
    /// The machine interface carrying it.
    pub mac: Option<String>,
    pub fixed_ips: Vec<FixedIp>,
    /// Made by tundrad for a `network_id` entry (else the project's port was named).
    pub auto: bool,
    /// Its switch port's state (absent when nothing is programmed: InfiniBand, not bound).
    pub state: Option<crate::fabric::SwitchPortState>,
    /// Whether its switch port is where tundrad put it (see the port's `drift`).
    pub drift: Option<String>,
}

/// A node as its project sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: NodeId,
    pub project_id: ProjectId,
    pub name: String,
    pub flavor_id: FlavorId,
    pub image_id: ImageId,
    pub keypair_id: Option<KeypairId>,
    /// sha256 of the user data given at create (the data itself is not returned).
    pub user_data_sha256: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub placement: Placement,
    pub status: NodeStatus,
    /// Why the node is in error (or what it waits for).
    pub status_reason: Option<String>,
    pub addresses: Vec<NodeAddress>,
    /// Its networks beyond provisioning, in order.
    #[serde(default)]
    pub networks: Vec<NodeNetwork>,
    /// Set when a switch port of the node is not where tundrad put it, or
    /// could not be programmed; `PATCH` with `networks` (or `POST /v1/ports/{id}/sync`) repairs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// The shares it mounts, each with the state of the rule tundrad made for it.
    #[serde(default)]
    pub mounts: Vec<crate::shares::NodeMount>,
    /// Where it landed (rack, island): what locality the scheduler chose.
    pub location: crate::machines::Location,
    /// The machine it got — site admins only (absent for everyone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<MachineId>,
    /// The operation deploying or cleaning its machine, while one runs.
    pub operation_id: Option<OperationId>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/nodes`: place a node and start deploying it. Refused with
/// "no capacity" (409) when no machine fits, naming the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCreate {
    pub project_id: ProjectId,
    /// Unique in the project; also the host name.
    pub name: String,
    pub flavor_id: FlavorId,
    /// An active image with a partition table (MBR or GPT): the config drive goes into a new partition.
    pub image_id: ImageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair_id: Option<KeypairId>,
    /// cloud-init user data (at most 64 KiB); on the config drive and the metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Free key/value pairs (`meta` in `meta_data.json`); changeable later.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub networks: Vec<NodeNetworkRequest>,
    /// Shares to mount: tundrad makes each one's access rule and puts the
    /// mount (with its key, root-only) on the config drive.
    #[serde(default)]
    pub shares: Vec<crate::shares::NodeShare>,
}

/// `POST /v1/nodes/{id}/rebuild`: deploy an active node again in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRebuild {
    /// The image to write; none: the node's own (a reinstall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<ImageId>,
}

/// `PATCH /v1/nodes/{id}`: what can change without redeploying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The node's networks, in place: ports that stay keep their addresses;
    /// the node's switch ports are programmed again (which repairs drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NodeNetworkRequest>>,
    /// The node's shares, in place: new ones get their rules, removed ones
    /// lose them; the metadata service answers the new mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<crate::shares::NodeShare>>,
}
