//! The nouns the CLI knows: the API's, with the columns a table shows and
//! how to tell when an object's work is done (for `--wait`).

use tundra_api::paths;

#[derive(Debug)]
pub struct Noun {
    /// The CLI word: `tundra machine …`.
    pub word: &'static str,
    pub about: &'static str,
    pub collection: &'static str,
    pub item: &'static str,
    /// Objects belong to a project (lists and creates take `--project`).
    pub project_owned: bool,
    /// Objects can be created and deleted through the API.
    pub writable: bool,
    pub table: &'static [&'static str],
    /// Added by `-o wide`.
    pub wide: &'static [&'static str],
    /// The field that says where an object stands, its settled values,
    /// and the values meaning its work failed (with `reason` explaining).
    pub status: Option<Status>,
}

#[derive(Debug)]
pub struct Status {
    pub field: &'static str,
    pub done: &'static [&'static str],
    pub failed: &'static [&'static str],
    pub reason: &'static str,
}

const LIFE: Option<Status> =
    Some(Status { field: "status", done: &["active"], failed: &["error", "degraded"], reason: "status_reason" });
const AVAILABLE: Option<Status> =
    Some(Status { field: "status", done: &["available"], failed: &["error"], reason: "status_reason" });

const fn noun(word: &'static str, about: &'static str, collection: &'static str, item: &'static str) -> Noun {
    Noun {
        word,
        about,
        collection,
        item,
        project_owned: false,
        writable: true,
        table: &["id", "name"],
        wide: &[],
        status: None,
    }
}

pub static NOUNS: &[Noun] = &[
    Noun {
        table: &["id", "name", "provision_state", "power_state", "maintenance", "resource_class", "location.rack"],
        wide: &["location.island", "bmc.address", "maintenance_reason", "last_error", "operation_id"],
        ..noun("machine", "Physical servers (site admins)", paths::MACHINES, paths::MACHINE)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "status", "machine_id", "location.rack"],
        wide: &["flavor_id", "image_id", "status_reason", "operation_id"],
        status: LIFE,
        ..noun("node", "Deployed machines of a project", paths::NODES, paths::NODE)
    },
    Noun {
        table: &["id", "name", "kind", "segment_range", "provisioning_segment"],
        wide: &["mtu", "description"],
        ..noun("physical-network", "Physical networks (site admins)", paths::PHYSICAL_NETWORKS, paths::PHYSICAL_NETWORK)
    },
    Noun {
        table: &["id", "name", "dialect", "address", "last_error"],
        wide: &["physical_network_id", "max_sessions", "last_read_at"],
        ..noun("switch", "Switches tundrad programs (site admins)", paths::SWITCHES, paths::SWITCH)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "kind", "segment", "mtu"],
        wide: &["physical_network_id", "project_id"],
        ..noun("network", "A project's networks", paths::NETWORKS, paths::NETWORK)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "network_id", "cidr", "gateway"],
        wide: &["dhcp", "dns"],
        ..noun("subnet", "Address ranges of networks", paths::SUBNETS, paths::SUBNET)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "network_id", "node_id", "mac", "binding.state"],
        wide: &["fixed_ips", "drift"],
        ..noun("port", "Attachments of nodes to networks", paths::PORTS, paths::PORT)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "status", "size_gib", "backend"],
        wide: &["share_type_id", "status_reason", "used_bytes"],
        status: AVAILABLE,
        ..noun("share", "Shared filesystems", paths::SHARES, paths::SHARE)
    },
    Noun {
        table: &["id", "name", "backend", "last_error"],
        wide: &["legacy", "description"],
        ..noun("share-type", "Share backends (site admins)", paths::SHARE_TYPES, paths::SHARE_TYPE)
    },
    Noun {
        project_owned: true,
        table: &["id", "share_id", "kind", "access_to", "access_level", "state"],
        wide: &["state_reason", "node_id"],
        status: Some(Status { field: "state", done: &["active"], failed: &["error"], reason: "state_reason" }),
        ..noun("share-access", "Who may mount a share", paths::SHARE_ACCESSES, paths::SHARE_ACCESS)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "share_id", "status", "size_gib"],
        wide: &["status_reason"],
        status: AVAILABLE,
        ..noun("snapshot", "Share snapshots", paths::SHARE_SNAPSHOTS, paths::SHARE_SNAPSHOT)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "kind", "status", "endpoint"],
        wide: &["template_id", "status_reason"],
        status: LIFE,
        ..noun("cluster", "Container clusters (Kubernetes, Swarm)", paths::CLUSTERS, paths::CLUSTER)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "kind", "version"],
        wide: &["bundle_image_id", "description"],
        ..noun("cluster-template", "What clusters are made from", paths::CLUSTER_TEMPLATES, paths::CLUSTER_TEMPLATE)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "template_id", "status"],
        wide: &["status_reason", "usage"],
        status: LIFE,
        ..noun("appliance", "Platforms on nodes (Slurm, Dask, JupyterHub)", paths::APPLIANCES, paths::APPLIANCE)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "version"],
        wide: &["description"],
        ..noun(
            "appliance-template",
            "What appliances are made from",
            paths::APPLIANCE_TEMPLATES,
            paths::APPLIANCE_TEMPLATE,
        )
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "status", "disk_format", "size_bytes"],
        wide: &["sha256", "source_url", "error", "operation_id"],
        status: Some(Status { field: "status", done: &["active"], failed: &["error"], reason: "error" }),
        ..noun("image", "Disk images nodes deploy", paths::IMAGES, paths::IMAGE)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "resource_class", "required_traits"],
        wide: &["description"],
        ..noun("flavor", "What a node asks of a machine", paths::FLAVORS, paths::FLAVOR)
    },
    Noun {
        project_owned: true,
        table: &["id", "name", "key_type", "fingerprint"],
        ..noun("keypair", "SSH public keys for nodes", paths::KEYPAIRS, paths::KEYPAIR)
    },
    Noun {
        table: &["id", "name", "description"],
        wide: &["created_at"],
        ..noun("project", "Projects", paths::PROJECTS, paths::PROJECT)
    },
    Noun {
        table: &["id", "name", "admin", "source"],
        wide: &["created_at"],
        ..noun("user", "Users (site admins)", paths::USERS, paths::USER)
    },
    Noun {
        writable: false,
        table: &["id", "kind", "target_type", "target_id", "state", "message"],
        wide: &["progress_done", "progress_total", "error", "attempts", "created_by", "updated_at"],
        ..noun("operation", "Long work with progress", paths::OPERATIONS, paths::OPERATION)
    },
];

/// Columns of `tundra event list`.
pub const EVENT_TABLE: &[&str] = &["at", "actor", "object_type", "object_id", "action"];
pub const EVENT_WIDE: &[&str] = &["id", "project_id", "request_id", "detail"];
/// Columns of `tundra switch ports`.
pub const SWITCH_PORT_TABLE: &[&str] = &["port", "desired_segment", "actual_segment", "state"];
pub const SWITCH_PORT_WIDE: &[&str] = &["message", "checked_at", "changed_at"];

pub fn find(word: &str) -> &'static Noun {
    NOUNS.iter().find(|n| n.word == word).expect("a noun of the table")
}
