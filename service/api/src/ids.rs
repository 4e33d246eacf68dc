//! Typed IDs: one newtype per noun, declared once by [`typed_id!`], so a
//! `ProjectId` can never be passed where an `ImageId` is expected. IDs are
//! UUIDv7 — time-ordered, which makes them the keyset for pagination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$m:meta])* $name:ident, $noun:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The noun this ID names, as used in events and error messages.
            pub const NOUN: &'static str = $noun;

            /// A new, time-ordered ID.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A project: the unit of tenancy.
    ProjectId,
    "project"
);
typed_id!(
    /// A user (local, or created on first login through an identity provider).
    UserId,
    "user"
);
typed_id!(
    /// An API token.
    TokenId,
    "token"
);
typed_id!(
    /// An SSH keypair (public half only).
    KeypairId,
    "keypair"
);
typed_id!(
    /// A flavor: resource class plus required traits.
    FlavorId,
    "flavor"
);
typed_id!(
    /// A disk image.
    ImageId,
    "image"
);
typed_id!(
    /// A long-running operation.
    OperationId,
    "operation"
);
typed_id!(
    /// An entry of the audit log.
    EventId,
    "event"
);
typed_id!(
    /// An encrypted secret (credentials), referenced by the objects that use it.
    SecretId,
    "secret"
);
typed_id!(
    /// A physical machine.
    MachineId,
    "machine"
);
typed_id!(
    /// A node: a project's deployed bare-metal server.
    NodeId,
    "node"
);
typed_id!(
    /// A physical network: a fabric (ethernet or InfiniBand) and its segment range.
    PhysicalNetworkId,
    "physical network"
);
typed_id!(
    /// A switch tundrad programs over SSH.
    SwitchId,
    "switch"
);
typed_id!(
    /// A network: one segment (VLAN / partition key) of a physical network.
    NetworkId,
    "network"
);
typed_id!(
    /// A subnet: an IPv4 range of a network.
    SubnetId,
    "subnet"
);
typed_id!(
    /// A port: a place on a network (MAC, fixed IPs), bound to a machine interface when a node uses it.
    PortId,
    "port"
);
typed_id!(
    /// A cluster template: a cluster kind (k3s, Swarm), versioned.
    ClusterTemplateId,
    "cluster template"
);
typed_id!(
    /// A cluster: node groups tundrad makes and joins into Kubernetes or Swarm.
    ClusterId,
    "cluster"
);
typed_id!(
    /// An appliance template: a platform's parameters, roles and outputs, versioned.
    ApplianceTemplateId,
    "appliance template"
);
typed_id!(
    /// An appliance: a platform's nodes in roles, made from a template.
    ApplianceId,
    "appliance"
);
typed_id!(
    /// A share type: a share backend (CephFS, NFS, GlusterFS) and its settings.
    ShareTypeId,
    "share type"
);
typed_id!(
    /// A share: a filesystem of a size, on a share type's backend.
    ShareId,
    "share"
);
typed_id!(
    /// An access rule of a share: who (a cephx ID or a CIDR) may mount it, and how.
    ShareAccessId,
    "share access rule"
);
typed_id!(
    /// A snapshot of a share.
    ShareSnapshotId,
    "share snapshot"
);
