//! Every noun of the API: its collection and item paths (from
//! `tundra_api::paths`) and the view it answers with.

use tundra_api::appliances::{Appliance, ApplianceTemplate};
use tundra_api::catalog::{Flavor, Image, Keypair};
use tundra_api::clusters::{Cluster, ClusterTemplate};
use tundra_api::fabric::{Network, PhysicalNetwork, Port, Subnet, Switch};
use tundra_api::identity::{Project, User};
use tundra_api::machines::Machine;
use tundra_api::nodes::Node;
use tundra_api::ops::Operation;
use tundra_api::paths;
use tundra_api::shares::{Share, ShareAccess, ShareSnapshot, ShareType};

use crate::Phantom;

/// A noun: where its objects live, and what they look like (`T`).
#[derive(Debug)]
pub struct Noun<T> {
    /// `GET` lists, `POST` creates.
    pub collection: &'static str,
    /// One object: `GET`, `PATCH`, `DELETE`.
    pub item: &'static str,
    /// For messages: "machine", "physical network".
    pub name: &'static str,
    _view: Phantom<T>,
}

impl<T> Noun<T> {
    pub const fn new(collection: &'static str, item: &'static str, name: &'static str) -> Noun<T> {
        Noun { collection, item, name, _view: std::marker::PhantomData }
    }

    /// The path of the object `id`.
    pub fn path(&self, id: &str) -> String {
        paths::fill(self.item, &[id])
    }
}

pub const PROJECTS: Noun<Project> = Noun::new(paths::PROJECTS, paths::PROJECT, "project");
pub const USERS: Noun<User> = Noun::new(paths::USERS, paths::USER, "user");
pub const KEYPAIRS: Noun<Keypair> = Noun::new(paths::KEYPAIRS, paths::KEYPAIR, "keypair");
pub const FLAVORS: Noun<Flavor> = Noun::new(paths::FLAVORS, paths::FLAVOR, "flavor");
pub const IMAGES: Noun<Image> = Noun::new(paths::IMAGES, paths::IMAGE, "image");
pub const MACHINES: Noun<Machine> = Noun::new(paths::MACHINES, paths::MACHINE, "machine");
pub const PHYSICAL_NETWORKS: Noun<PhysicalNetwork> =
    Noun::new(paths::PHYSICAL_NETWORKS, paths::PHYSICAL_NETWORK, "physical network");
pub const SWITCHES: Noun<Switch> = Noun::new(paths::SWITCHES, paths::SWITCH, "switch");
pub const NETWORKS: Noun<Network> = Noun::new(paths::NETWORKS, paths::NETWORK, "network");
pub const SUBNETS: Noun<Subnet> = Noun::new(paths::SUBNETS, paths::SUBNET, "subnet");
pub const PORTS: Noun<Port> = Noun::new(paths::PORTS, paths::PORT, "port");
pub const NODES: Noun<Node> = Noun::new(paths::NODES, paths::NODE, "node");
pub const CLUSTER_TEMPLATES: Noun<ClusterTemplate> =
    Noun::new(paths::CLUSTER_TEMPLATES, paths::CLUSTER_TEMPLATE, "cluster template");
pub const CLUSTERS: Noun<Cluster> = Noun::new(paths::CLUSTERS, paths::CLUSTER, "cluster");
pub const APPLIANCE_TEMPLATES: Noun<ApplianceTemplate> =
    Noun::new(paths::APPLIANCE_TEMPLATES, paths::APPLIANCE_TEMPLATE, "appliance template");
pub const APPLIANCES: Noun<Appliance> = Noun::new(paths::APPLIANCES, paths::APPLIANCE, "appliance");
pub const OPERATIONS: Noun<Operation> = Noun::new(paths::OPERATIONS, paths::OPERATION, "operation");
pub const SHARE_TYPES: Noun<ShareType> = Noun::new(paths::SHARE_TYPES, paths::SHARE_TYPE, "share type");
pub const SHARES: Noun<Share> = Noun::new(paths::SHARES, paths::SHARE, "share");
pub const SHARE_ACCESS: Noun<ShareAccess> = Noun::new(paths::SHARE_ACCESSES, paths::SHARE_ACCESS, "share access rule");
pub const SHARE_SNAPSHOTS: Noun<ShareSnapshot> =
    Noun::new(paths::SHARE_SNAPSHOTS, paths::SHARE_SNAPSHOT, "share snapshot");
