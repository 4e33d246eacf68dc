//! The fabric: physical networks and the switches that carry them (site
//! admins), networks, subnets and ports (projects). A network is one
//! segment — a VLAN on ethernet, a partition key on InfiniBand — of a
//! physical network; a node's port on it is a switch port tundrad moves into
//! that VLAN while the node is active (and onto the physical network's
//! provisioning segment while its machine deploys or is cleaned).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{NetworkId, NodeId, PhysicalNetworkId, PortId, ProjectId, SubnetId, SwitchId};

words! {
    /// `ethernet` (segments are VLANs, ports are switch ports tundrad programs)
    /// or `infiniband` (segments are partition keys; the subnet manager owns the
    /// fabric, there is no DHCP: addresses go to the config drive).
    pub enum FabricKind {
        Ethernet = "ethernet",
        Infiniband = "infiniband",
    }
}

impl FabricKind {
    /// The segment numbers the kind allows: VLAN IDs 2–4094, partition keys 2–0x7ffe.
    pub fn segment_limits(self) -> (u32, u32) {
        match self {
            FabricKind::Ethernet => (2, 4094),
            FabricKind::Infiniband => (2, 0x7ffe),
        }
    }
}

/// A physical network (site admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PhysicalNetwork {
    pub id: PhysicalNetworkId,
    /// What machine interfaces name as their `physical_network`.
    pub name: String,
    pub description: String,
    pub kind: FabricKind,
    /// First and last segment projects' networks get (inclusive).
    pub segment_range: [u32; 2],
    /// Where a machine's switch ports sit while it is deployed or cleaned
    /// and while no active node uses them (ethernet).
    pub provisioning_segment: Option<u32>,
    pub mtu: u32,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/physical-networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhysicalNetworkCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: FabricKind,
    pub segment_range: [u32; 2],
    /// Required for ethernet: the VLAN of the provisioning (and cleaning)
    /// network on this fabric; outside `segment_range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_segment: Option<u32>,
    /// Default 1500 (ethernet) or 2044 (InfiniBand datagram mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// `PATCH /v1/physical-networks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhysicalNetworkUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A switch tundrad programs over SSH (site admins). Its credentials are
/// sealed at rest and never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Switch {
    pub id: SwitchId,
    /// What LLDP (or the operator) names it in machine interfaces' `switch`.
    pub name: String,
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    /// A dialect name: `cisco_ios`, `dell_powerconnect`, `dell_os6_10g`, `dell_os9`, `dell_os10`,
    /// `brocade_fastiron`, `arista_eos`, `junos`, `linux_bridge`.
    pub dialect: String,
    /// `HOST:PORT` of its SSH server.
    pub address: String,
    pub username: String,
    /// Whether a password is stored / a private key is stored (never the values).
    pub has_password: bool,
    pub has_private_key: bool,
    /// The pinned host key (`SHA256:…` as `ssh-keygen -l` prints it).
    pub host_key: String,
    pub max_sessions: u32,
    /// Milliseconds between the starts of two sessions.
    pub min_interval_ms: u32,
    /// The last session's failure, if the last session failed.
    pub last_error: Option<String>,
    /// When tundrad last read every known port of it.
    pub last_read_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/switches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    pub dialect: String,
    pub address: String,
    pub username: String,
    /// Login password (and enable password of CLIs that ask for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An OpenSSH private key to log in with (PEM / OpenSSH format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Required: the switch's host key fingerprint, `SHA256:…`.
    pub host_key: String,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_ms: Option<u32>,
}

/// `PATCH /v1/switches/{id}`: credentials are replaced when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_ms: Option<u32>,
}

/// A network: one segment of a physical network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Network {
    pub id: NetworkId,
    /// Absent for shared networks (site admins make them; every project may use them).
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    pub kind: FabricKind,
    /// Its VLAN ID or partition key; absent for a flat network.
    pub segment: Option<u32>,
    pub mtu: u32,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/networks`. A segment is allocated from the physical network's
/// range unless a site admin names one (`segment`) or asks for `flat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    /// Absent: a shared network (site admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub physical_network_id: PhysicalNetworkId,
    /// Site admins only: this segment rather than the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
    /// Site admins only: no segment (InfiniBand's default partition).
    #[serde(default)]
    pub flat: bool,
    /// At most the physical network's MTU (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An inclusive range of addresses tundrad hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

/// A subnet: an IPv4 CIDR of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Subnet {
    pub id: SubnetId,
    pub project_id: Option<ProjectId>,
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    /// `10.1.0.0/24`.
    pub cidr: String,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub allocation_pools: Vec<AllocationPool>,
    /// Whether nodes configure this subnet by DHCP (a DHCP server on the
    /// segment is the site's); off: static addresses from the config drive
    /// (always on InfiniBand).
    pub dhcp: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/subnets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetCreate {
    pub network_id: NetworkId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cidr: String,
    /// Default: none (no default route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// Default: the whole CIDR but network, broadcast and gateway.
    #[serde(default)]
    pub allocation_pools: Vec<AllocationPool>,
    #[serde(default)]
    pub dhcp: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
}

/// An address of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedIp {
    pub subnet_id: SubnetId,
    /// Absent in a request: the next free address of the subnet's pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Where a bound port is on the switch, and whether the switch agrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortBinding {
    pub switch: String,
    pub switch_port: String,
    /// The segment tundrad wants the switch port in now (the network's while
    /// the node is active, the provisioning segment while its machine deploys or is cleaned).
    pub desired_segment: u32,
    /// What the switch said when last read or programmed (absent: not in a VLAN, or not read yet).
    pub actual_segment: Option<u32>,
    /// `pending` (being programmed), `in_sync`, `drifted` (changed on the
    /// switch behind tundrad's back), `failed` (the switch refused; see `message`).
    pub state: SwitchPortState,
    pub message: Option<String>,
    pub checked_at: Option<String>,
}

words! {
    pub enum SwitchPortState {
        Pending = "pending",
        InSync = "in_sync",
        Drifted = "drifted",
        Failed = "failed",
    }
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Port {
    pub id: PortId,
    pub project_id: ProjectId,
    pub network_id: NetworkId,
    pub name: String,
    pub description: String,
    pub fixed_ips: Vec<FixedIp>,
    /// The node using it, and the machine interface (MAC) it is bound to.
    pub node_id: Option<NodeId>,
    pub mac: Option<String>,
    /// Made by tundrad for a node's `networks` entry (deleted with the node).
    pub auto: bool,
    /// On ethernet, once bound: the switch port and its state.
    pub binding: Option<PortBinding>,
    /// A sentence when the switch port is not where tundrad put it
    /// (`binding.state = drifted`) or could not be programmed; `POST …/sync` repairs it.
    pub drift: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortCreate {
    pub project_id: ProjectId,
    pub network_id: NetworkId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Default: one address from each of the network's subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ips: Option<Vec<FixedIp>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /v1/switches/{id}/sync` and `POST /v1/ports/{id}/sync`: what was
/// put back on the switch queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncStarted {
    /// Switch ports marked to be programmed again.
    pub ports: u32,
}

/// A switch port tundrad manages: the segment it wants, what the switch
/// said, and the state between them (`GET /v1/switches/{id}/ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwitchPortView {
    pub port: String,
    pub desired_segment: u32,
    pub actual_segment: Option<u32>,
    pub state: SwitchPortState,
    pub message: Option<String>,
    pub checked_at: Option<String>,
    pub changed_at: String,
}
