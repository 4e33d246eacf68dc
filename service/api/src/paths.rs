//! Every path of the API, declared once. `tundrad` registers its handlers
//! (and their OpenAPI descriptions) at these constants; `tundra-client`
//! fills them in with [`fill`]. A `{name}` segment is a path parameter.

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const INFO: &str = "/v1/info";
pub const OPENAPI: &str = "/v1/openapi.json";

pub const WHOAMI: &str = "/v1/whoami";
pub const PROJECTS: &str = "/v1/projects";
pub const PROJECT: &str = "/v1/projects/{project}";
pub const PROJECT_ROLES: &str = "/v1/projects/{project}/roles";
pub const PROJECT_QUOTA: &str = "/v1/projects/{project}/quota";
pub const PROJECT_ROLE: &str = "/v1/projects/{project}/roles/{user}";
pub const USERS: &str = "/v1/users";
pub const USER: &str = "/v1/users/{user}";
pub const TOKENS: &str = "/v1/tokens";
pub const TOKEN: &str = "/v1/tokens/{token}";

pub const KEYPAIRS: &str = "/v1/keypairs";
pub const KEYPAIR: &str = "/v1/keypairs/{keypair}";
pub const FLAVORS: &str = "/v1/flavors";
pub const FLAVOR: &str = "/v1/flavors/{flavor}";
pub const IMAGES: &str = "/v1/images";
pub const IMAGE: &str = "/v1/images/{image}";
pub const IMAGE_FILE: &str = "/v1/images/{image}/file";

pub const MACHINES: &str = "/v1/machines";
pub const MACHINE: &str = "/v1/machines/{machine}";
pub const MACHINE_ACTIONS: &str = "/v1/machines/{machine}/actions";

pub const PHYSICAL_NETWORKS: &str = "/v1/physical-networks";
pub const PHYSICAL_NETWORK: &str = "/v1/physical-networks/{physical_network}";
pub const SWITCHES: &str = "/v1/switches";
pub const SWITCH: &str = "/v1/switches/{switch}";
pub const SWITCH_SYNC: &str = "/v1/switches/{switch}/sync";
pub const SWITCH_PORTS: &str = "/v1/switches/{switch}/ports";
pub const NETWORKS: &str = "/v1/networks";
pub const NETWORK: &str = "/v1/networks/{network}";
pub const SUBNETS: &str = "/v1/subnets";
pub const SUBNET: &str = "/v1/subnets/{subnet}";
pub const PORTS: &str = "/v1/ports";
pub const PORT: &str = "/v1/ports/{port}";
pub const PORT_SYNC: &str = "/v1/ports/{port}/sync";

pub const SHARE_TYPES: &str = "/v1/share-types";
pub const SHARE_TYPE: &str = "/v1/share-types/{share_type}";
pub const SHARES: &str = "/v1/shares";
pub const SHARE: &str = "/v1/shares/{share}";
pub const SHARE_ACCESSES: &str = "/v1/share-access";
pub const SHARE_ACCESS: &str = "/v1/share-access/{access}";
pub const SHARE_ACCESS_SECRET: &str = "/v1/share-access/{access}/secret";
pub const SHARE_SNAPSHOTS: &str = "/v1/share-snapshots";
pub const SHARE_SNAPSHOT: &str = "/v1/share-snapshots/{snapshot}";

pub const CLUSTER_TEMPLATES: &str = "/v1/cluster-templates";
pub const CLUSTER_TEMPLATE: &str = "/v1/cluster-templates/{template}";
pub const CLUSTERS: &str = "/v1/clusters";
pub const CLUSTER: &str = "/v1/clusters/{cluster}";
pub const CLUSTER_CREDENTIALS: &str = "/v1/clusters/{cluster}/credentials";
pub const APPLIANCE_TEMPLATES: &str = "/v1/appliance-templates";
pub const APPLIANCE_TEMPLATE: &str = "/v1/appliance-templates/{appliance_template}";
pub const APPLIANCES: &str = "/v1/appliances";
pub const APPLIANCE: &str = "/v1/appliances/{appliance}";

pub const NODES: &str = "/v1/nodes";
pub const NODE: &str = "/v1/nodes/{node}";
pub const NODE_REBUILD: &str = "/v1/nodes/{node}/rebuild";

pub const OPERATIONS: &str = "/v1/operations";
pub const OPERATION: &str = "/v1/operations/{operation}";
pub const EVENTS: &str = "/v1/events";

pub const BOOT_SCRIPT: &str = "/boot/{script}";
pub const BOOT_ASSET: &str = "/boot/assets/{file}";
pub const AGENT_HEARTBEAT: &str = "/v1/agent/heartbeat";
pub const AGENT_REPORT: &str = "/v1/agent/report";
pub const AGENT_IMAGE: &str = "/v1/agent/image";

/// Every path above, once.
pub const ALL: &[&str] = &[
    HEALTHZ,
    READYZ,
    METRICS,
    INFO,
    OPENAPI,
    WHOAMI,
    PROJECTS,
    PROJECT,
    PROJECT_ROLES,
    PROJECT_QUOTA,
    PROJECT_ROLE,
    USERS,
    USER,
    TOKENS,
    TOKEN,
    KEYPAIRS,
    KEYPAIR,
    FLAVORS,
    FLAVOR,
    IMAGES,
    IMAGE,
    IMAGE_FILE,
    MACHINES,
    MACHINE,
    MACHINE_ACTIONS,
    PHYSICAL_NETWORKS,
    PHYSICAL_NETWORK,
    SWITCHES,
    SWITCH,
    SWITCH_SYNC,
    SWITCH_PORTS,
    NETWORKS,
    NETWORK,
    SUBNETS,
    SUBNET,
    PORTS,
    PORT,
    PORT_SYNC,
    SHARE_TYPES,
    SHARE_TYPE,
    SHARES,
    SHARE,
    SHARE_ACCESSES,
    SHARE_ACCESS,
    SHARE_ACCESS_SECRET,
    SHARE_SNAPSHOTS,
    SHARE_SNAPSHOT,
    CLUSTER_TEMPLATES,
    CLUSTER_TEMPLATE,
    CLUSTERS,
    CLUSTER,
    CLUSTER_CREDENTIALS,
    APPLIANCE_TEMPLATES,
    APPLIANCE_TEMPLATE,
    APPLIANCES,
    APPLIANCE,
    NODES,
    NODE,
    NODE_REBUILD,
    OPERATIONS,
    OPERATION,
    EVENTS,
    BOOT_SCRIPT,
    BOOT_ASSET,
    AGENT_HEARTBEAT,
    AGENT_REPORT,
    AGENT_IMAGE,
];

/// `path` with its `{…}` segments replaced by `args`, in order, each
/// percent-encoded (IDs and names pass unchanged).
///
/// ```
/// assert_eq!(tundra_api::paths::fill(tundra_api::paths::PROJECT_ROLE, &["p 1", "u"]), "/v1/projects/p%201/roles/u");
/// ```
pub fn fill(path: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(path.len() + 40);
    let mut args = args.iter();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).unwrap_or(rest.len() - 1);
        let arg = args.next().unwrap_or_else(|| panic!("{path} needs more arguments"));
        for b in arg.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_replaces_each_parameter_in_order() {
        assert_eq!(super::fill(super::NODES, &[]), "/v1/nodes");
        assert_eq!(super::fill(super::SWITCH_SYNC, &["a/b"]), "/v1/switches/a%2Fb/sync");
    }
}
