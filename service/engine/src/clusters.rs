//! Clusters (Kubernetes through k3s, Docker Swarm) on nodes: the rules.
//!
//! A cluster is node groups, exactly one of them the control plane. tundrad
//! makes each group's nodes, named `CLUSTER-GROUP-N`. Every node runs a
//! cluster agent that asks the metadata service (with the node's own
//! metadata token) what to do — [`join_plan`]: its role, the address that
//! carries cluster traffic ([`cluster_address`]), and only its role's
//! secret ([`secret_for`]) — joins, and reports back. The bootstrap node
//! (the control plane's first) also reports the cluster's members as the
//! cluster itself sees them. [`status`] judges the cluster from those
//! reports: `active` means every node joined *and* the control plane sees
//! it ready, never merely "the deploys finished". [`scale_down`] picks the
//! nodes a shrinking group gives up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tundra_api::clusters::NodeGroup;
pub use tundra_api::clusters::{ClusterKind as Kind, ClusterStatus as Status, GroupRole as Role, MemberState};
use tundra_api::nodes::NodeStatus;

/// The cluster agent every node of a cluster runs (python3, which
/// cloud-init itself needs).
pub const AGENT_SCRIPT: &str = include_str!("tundra-cluster.py");

/// The k3s unit a node of `role` runs: servers `k3s`, agents `k3s-agent`.
pub fn k3s_unit(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "k3s",
        Role::Worker => "k3s-agent",
    }
}

/// The systemd unit of k3s for `role`: installed by cloud-init, started by
/// the cluster agent once the bundle's binary and k3s's configuration
/// (`/etc/rancher/k3s/config.yaml`, which both subcommands read) are in place.
fn k3s_service(role: Role) -> String {
    let sub = match role {
        Role::ControlPlane => "server",
        Role::Worker => "agent",
    };
    format!(
        "[Unit]\nDescription=Lightweight Kubernetes ({sub}), installed by tundrad's cluster agent\n\
         Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=notify\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\nExecStartPre=-/sbin/modprobe overlay\n\
         ExecStart=/usr/local/bin/k3s {sub}\nKillMode=process\nDelegate=yes\nLimitNOFILE=1048576\n\
         LimitNPROC=infinity\nLimitCORE=infinity\nTasksMax=infinity\nTimeoutStartSec=0\nRestart=always\n\
         RestartSec=5s\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// A cluster node's user data, per kind and role: the cluster agent, as a
/// service that restarts, asking the metadata service at `metadata_base`
/// (`http://ADDRESS:PORT/openstack/latest`); user `admin` (no password;
/// Swarm: in the `docker` group) whose logins sshd takes with a
/// certificate of the cluster's authority `ca_public`; and for Kubernetes
/// the role's k3s unit and the kernel settings k3s needs.
pub fn agent_user_data(metadata_base: &str, ca_public: &str, admin: &str, kind: Kind, role: Role) -> String {
    let after = match kind {
        Kind::Swarm => "network-online.target docker.service",
        Kind::Kubernetes => "network-online.target",
    };
    let unit = format!(
        "[Unit]\nDescription=Join this node to its cluster as tundrad says\nAfter={after}\n\
         Wants={after}\n\n[Service]\nExecStart=/usr/bin/python3 /usr/local/sbin/tundra-cluster {metadata_base}\n\
         Restart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    let sshd = "# tundrad: the cluster's certificate authority signs its short-lived credentials\n\
                TrustedUserCAKeys /etc/ssh/tundra-cluster-ca.pub\n";
    let y = crate::shares::y;
    let mut out = String::from("#cloud-config\n# tundrad: the node's cluster agent\n");
    let groups = match kind {
        Kind::Swarm => "\n    groups: [docker]",
        Kind::Kubernetes => "",
    };
    out.push_str(&format!(
        "users:\n  - default\n  - name: {}{groups}\n    shell: /bin/bash\n    lock_passwd: true\n",
        y(admin)
    ));
    out.push_str("write_files:\n");
    let ca_line = format!("{}\n", ca_public.trim());
    let mut files: Vec<(String, &str, String)> = vec![
        ("/usr/local/sbin/tundra-cluster".into(), "0755", AGENT_SCRIPT.into()),
        ("/etc/systemd/system/tundra-cluster.service".into(), "0644", unit),
        ("/etc/ssh/tundra-cluster-ca.pub".into(), "0644", ca_line),
        ("/etc/ssh/sshd_config.d/tundra-cluster.conf".into(), "0644", sshd.into()),
    ];
    if kind == Kind::Kubernetes {
        files.push((format!("/etc/systemd/system/{}.service", k3s_unit(role)), "0644", k3s_service(role)));
        files.push(("/etc/modules-load.d/k3s.conf".into(), "0644", "overlay\nbr_netfilter\n".into()));
        files.push((
            "/etc/sysctl.d/90-k3s.conf".into(),
            "0644",
            "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n".into(),
        ));
    }
    for (path, mode, content) in &files {
        out.push_str(&format!(
            "  - path: {path}\n    permissions: '{mode}'\n    owner: root:root\n    content: {}\n",
            y(content)
        ));
    }
    out.push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, reload-or-restart, ssh]\n");
    if kind == Kind::Kubernetes {
        // (A kernel without the modules, or a container, keeps what it has.)
        out.push_str("  - [sh, -c, 'modprobe overlay; modprobe br_netfilter; sysctl --system >/dev/null || true']\n");
    }
    out.push_str("  - [systemctl, enable, --now, tundra-cluster.service]\n");
    out
}

/// The most nodes one group may ask for.
pub const MAX_GROUP_COUNT: u32 = 999;

/// A cluster's node `index` of `group`: `CLUSTER-GROUP-N`, its host name.
pub fn member_name(cluster: &str, group: &str, index: u32) -> String {
    format!("{cluster}-{group}-{index}")
}

/// A refusal at a JSON pointer of the request.
pub type Refusal = (String, String);

/// A cluster's groups, checked: names, exactly one control plane of an odd
/// count, counts within bounds, the cluster network among the group's
/// networks, and node names (`CLUSTER-GROUP-999`) that fit a host name.
/// Whether `s` is a host-name label (RFC 1123): lower-case letters, digits
/// and inner `-`. Node names are `CLUSTER-GROUP-N` and become host names
/// the cluster itself lists its members by: a `.` or `_` would not survive.
fn host_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const LABEL_RULE: &str = "use lower-case letters, digits and inner '-' (it becomes part of its nodes' host names)";

/// A cluster's name, checked: an object name that is also a host-name label.
pub fn check_cluster_name(name: &str) -> Result<(), Refusal> {
    crate::names::check(name).map_err(|e| ("/name".to_string(), e))?;
    if !host_label(name) {
        return Err(("/name".into(), format!("{name:?}: {LABEL_RULE}")));
    }
    Ok(())
}

pub fn check_groups(cluster: &str, groups: &[NodeGroup]) -> Result<(), Refusal> {
    if groups.is_empty() {
        return Err(("/groups".into(), "a cluster needs a control_plane group".into()));
    }
    let mut names = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        let at = |f: &str| format!("/groups/{i}/{f}");
        crate::names::check(&g.name).map_err(|e| (at("name"), e))?;
        if !host_label(&g.name) {
            return Err((at("name"), format!("{:?}: {LABEL_RULE}", g.name)));
        }
        if !names.insert(g.name.as_str()) {
            return Err((at("name"), format!("two groups are named {:?}; group names are unique", g.name)));
        }
        let longest = member_name(cluster, &g.name, MAX_GROUP_COUNT);
        if longest.len() > 63 {
            return Err((
                at("name"),
                format!(
                    "its nodes' names ({longest}) would pass 63 characters, the most a host name has; shorten the cluster's or the group's name"
                ),
            ));
        }
        if g.count > MAX_GROUP_COUNT {
            return Err((at("count"), format!("{} nodes; at most {MAX_GROUP_COUNT} per group", g.count)));
        }
        if g.role == Role::ControlPlane && g.count % 2 == 0 {
            return Err((
                at("count"),
                format!(
                    "a control plane of {} nodes; it needs an odd count (1, 3, 5) so a quorum survives losing one",
                    g.count
                ),
            ));
        }
        if let Some(n) = g.cluster_network_id
            && !g.networks.contains(&n)
        {
            return Err((
                at("cluster_network_id"),
                format!("network {n} is not among the group's networks; add it there"),
            ));
        }
        let mut nets = BTreeSet::new();
        if let Some(dup) = g.networks.iter().find(|n| !nets.insert(**n)) {
            return Err((at("networks"), format!("network {dup} is listed twice")));
        }
    }
    match groups.iter().filter(|g| g.role == Role::ControlPlane).count() {
        1 => Ok(()),
        0 => Err(("/groups".into(), "a cluster needs exactly one group with role control_plane".into())),
        n => Err(("/groups".into(), format!("{n} groups have role control_plane; a cluster has exactly one"))),
    }
}

/// What may change of a cluster's groups in place: counts, shares,
/// placement (for nodes made from then on), networks appended to the end,
/// new worker groups and removed ones. A group's role, flavor and image
/// are what its nodes were deployed as: changing them is a new group.
pub fn check_group_change(old: &[NodeGroup], new: &[NodeGroup]) -> Result<(), Refusal> {
    for (i, g) in new.iter().enumerate() {
        let Some(was) = old.iter().find(|o| o.name == g.name) else {
            if g.role == Role::ControlPlane {
                return Err((
                    format!("/groups/{i}/role"),
                    "the control plane group cannot be replaced; keep its name (a cluster is made around it)".into(),
                ));
            }
            continue;
        };
        let fixed = |f: &str, what: &str| {
            Err((
                format!("/groups/{i}/{f}"),
                format!(
                    "group {}'s {what} is what its nodes were deployed with and does not change in place; add a new group with the new {what} and scale this one to 0",
                    g.name
                ),
            ))
        };
        if g.role != was.role {
            return fixed("role", "role");
        }
        if g.flavor_id != was.flavor_id {
            return fixed("flavor_id", "flavor");
        }
        if g.image_id != was.image_id {
            return fixed("image_id", "image");
        }
        if !g.networks.starts_with(&was.networks) {
            return Err((
                format!("/groups/{i}/networks"),
                format!(
                    "group {}'s networks can only grow at the end (its nodes keep their interfaces); add a new group for another layout",
                    g.name
                ),
            ));
        }
        if g.cluster_network_id != was.cluster_network_id {
            return fixed("cluster_network_id", "cluster network");
        }
    }
    if let Some(gone) = old.iter().find(|o| o.role == Role::ControlPlane && !new.iter().any(|g| g.name == o.name)) {
        return Err(("/groups".into(), format!("the control plane group {} cannot be removed", gone.name)));
    }
    Ok(())
}

/// The address a node's cluster traffic uses (the kubelet's `--node-ip`,
/// Swarm's `--advertise-addr`): its address on the group's
/// `cluster_network` when one is named, else on its first network beyond
/// provisioning, else its provisioning address. `addresses` are the node's
/// (network, address) pairs in the node's order, provisioning included.
pub fn cluster_address(
    node: &str,
    cluster_network: Option<&str>,
    addresses: &[(String, Ipv4Addr)],
    provisioning: &str,
) -> Result<Ipv4Addr, String> {
    if let Some(net) = cluster_network {
        return addresses.iter().find(|(n, _)| n == net).map(|(_, a)| *a).ok_or_else(|| {
            format!("node {node} has no address on network {net:?}, its group's cluster_network; add the network to the group's networks with a subnet that gives addresses")
        });
    }
    addresses
        .iter()
        .find(|(n, _)| n != provisioning)
        .or_else(|| addresses.iter().find(|(n, _)| n == provisioning))
        .map(|(_, a)| *a)
        .ok_or_else(|| format!("node {node} has no address yet for cluster traffic"))
}

/// A cluster's join secrets. k3s's are minted by tundrad ([`k3s_token`]);
/// Swarm makes its own when the bootstrap node initialises it, and that
/// node reports them. Sealed at rest, never returned by the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// k3s `--token` / a Swarm manager token: lets a node join the control plane.
    pub control_plane: Option<String>,
    /// k3s `--agent-token` / a Swarm worker token: lets a node join as a worker only.
    pub worker: Option<String>,
}

/// A k3s token from 32 random bytes (k3s takes any string; these are
/// 256 bits, hex).
pub fn k3s_token(random: &[u8; 32]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("tundra-k3s-{hex}")
}

/// Whether `reported` is the full, CA-pinned form k3s writes of the token
/// tundrad minted for `role` (`K10<sha256 of the CA>::server:<minted>`, or
/// `::node:` for the agent token): what a bootstrap server may report in
/// its place. Anything else is refused — a node does
/// not get to choose the cluster's secrets.
pub fn is_full_k3s_token(reported: &str, minted: &str, role: Role) -> bool {
    let user = match role {
        Role::ControlPlane => "server",
        Role::Worker => "node",
    };
    let Some(rest) = reported.strip_prefix("K10") else { return false };
    let Some((hash, creds)) = rest.split_once("::") else { return false };
    !minted.is_empty()
        && hash.len() == 64
        && hash.chars().all(|c| c.is_ascii_hexdigit())
        && creds.split_once(':') == Some((user, minted))
}

/// The token tundrad minted, from a k3s token in either form: the
/// password of a full one, or the short one itself.
pub fn k3s_minted(token: &str) -> &str {
    token.split_once("::").and_then(|(_, creds)| creds.split_once(':')).map_or(token, |(_, pass)| pass)
}

/// Whether a k3s token is in its full, CA-pinned form (a joining node then
/// checks the server's CA before it sends the token).
pub fn is_pinned_k3s_token(token: &str) -> bool {
    token.starts_with("K10") && token.contains("::")
}

/// k3s's configuration for a node (`/etc/rancher/k3s/config.yaml`, as
/// JSON): its name and node IP (the cluster address, so the kubelet,
/// flannel and the API server use the cluster network on multi-network
/// nodes), its role's token, its labels, and how it starts — the bootstrap
/// server initialises embedded etcd (`cluster-init`), every other node
/// joins through the bootstrap server's address. Servers also carry the
/// agent token (k3s checks agents against it) and advertise their cluster
/// address. `None` until what it needs is known: every node but the
/// bootstrap server waits for its role's token in the pinned form the
/// bootstrap server reports once the cluster runs, so no token is sent to
/// an address before its CA is checked, and no server starts joining a
/// control plane that does not answer yet. (The agent adds the interface
/// flannel uses, which only the node knows.)
pub fn k3s_config(
    plan: &JoinPlan,
    node: &str,
    labels: &BTreeMap<String, String>,
    secrets: &Secrets,
) -> Option<BTreeMap<String, serde_json::Value>> {
    use serde_json::json;
    if plan.kind != Kind::Kubernetes {
        return None;
    }
    let token = plan.secret.as_deref()?;
    if !plan.bootstrap && !is_pinned_k3s_token(token) {
        return None;
    }
    let addr = plan.address.to_string();
    let mut c = BTreeMap::from([
        ("node-name".to_string(), json!(node)),
        ("node-ip".to_string(), json!(addr)),
        ("token".to_string(), json!(token)),
    ]);
    if !labels.is_empty() {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        c.insert("node-label".into(), json!(l));
    }
    if plan.role == Role::ControlPlane {
        c.insert("agent-token".into(), json!(secrets.worker.as_deref()?));
        c.insert("advertise-address".into(), json!(addr));
        c.insert("tls-san".into(), json!([addr]));
        c.insert("write-kubeconfig-mode".into(), json!("0600"));
    }
    if plan.bootstrap {
        c.insert("cluster-init".into(), json!(true));
    } else {
        c.insert("server".into(), json!(format!("https://{}:6443", plan.join_address?)));
    }
    Some(c)
}

/// Kubernetes label keys and values: what a node label must be, or k3s
/// refuses to start (`[prefix/]name`: name and value 63 characters at most,
/// alphanumeric at both ends with `-`, `_`, `.` inside; a prefix is a DNS
/// subdomain, and not one of Kubernetes' own — the kubelet refuses to set
/// those on itself, but for `node.kubernetes.io/` and
/// `kubelet.kubernetes.io/`). Swarm takes any.
pub fn check_labels(kind: Kind, labels: &BTreeMap<String, String>) -> Result<(), Refusal> {
    if kind != Kind::Kubernetes {
        return Ok(());
    }
    let part = |s: &str| {
        s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    for (k, v) in labels {
        let at = format!("/labels/{}", k.replace('~', "~0").replace('/', "~1"));
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(host_label));
        let reserved = prefix.is_some_and(|p| {
            let own = |d: &str| p == d || p.ends_with(&format!(".{d}"));
            (own("kubernetes.io") || own("k8s.io")) && !own("node.kubernetes.io") && !own("kubelet.kubernetes.io")
        });
        if reserved {
            return Err((
                at,
                format!(
                    "{k:?}: the kubelet does not set labels of Kubernetes' own kubernetes.io and k8s.io prefixes on its node (but node.kubernetes.io/ and kubelet.kubernetes.io/); use a prefix of your own"
                ),
            ));
        }
        if name.is_empty() || !part(name) || !prefix_ok {
            return Err((
                at,
                format!(
                    "{k:?} is not a Kubernetes label key: [prefix/]name, the name up to 63 letters, digits, '-', '_' or '.' (alphanumeric at both ends), the prefix a DNS name"
                ),
            ));
        }
        if !part(v) {
            return Err((
                at,
                format!(
                    "{v:?} is not a Kubernetes label value: up to 63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
                ),
            ));
        }
    }
    Ok(())
}

/// The one secret a node of `role` is given: a worker never sees what lets
/// a node into the control plane.
pub fn secret_for(role: Role, secrets: &Secrets) -> Option<&str> {
    match role {
        Role::ControlPlane => secrets.control_plane.as_deref(),
        Role::Worker => secrets.worker.as_deref(),
    }
}

/// A node of the cluster, as tundrad knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node's name (`CLUSTER-GROUP-N`).
    pub name: String,
    pub group: String,
    pub role: Role,
    /// N in the name: the order nodes of the group were made in.
    pub index: u32,
    pub node: NodeStatus,
    /// Why the node failed (its `status_reason`).
    pub node_reason: Option<String>,
    pub state: MemberState,
    /// Failed: the agent's report (its error); deploying: what its node waits for.
    pub join_error: Option<String>,
    /// It has joined at some point (so the cluster exists beyond tundrad's rows).
    pub joined: bool,
}

/// What a node's cluster agent is told (`tundra_cluster.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    pub kind: Kind,
    pub role: Role,
    /// Initialise the cluster (the bootstrap node) rather than join it.
    pub bootstrap: bool,
    /// Where this node's cluster traffic goes from.
    pub address: Ipv4Addr,
    /// The bootstrap node's cluster address, to join through (absent for
    /// the bootstrap node itself).
    pub join_address: Option<Ipv4Addr>,
    /// This role's secret; absent until there is one (a Swarm worker waits
    /// until the bootstrap node reported the cluster's tokens).
    pub secret: Option<String>,
}

/// What node `me` is told: the bootstrap node initialises; everyone else
/// joins through the bootstrap node's address with its role's secret once
/// both are known.
pub fn join_plan(
    kind: Kind,
    me: &Member,
    bootstrap: &str,
    address: Ipv4Addr,
    bootstrap_address: Option<Ipv4Addr>,
    secrets: &Secrets,
) -> JoinPlan {
    let is_bootstrap = me.name == bootstrap;
    let secret = match (kind, is_bootstrap) {
        // Swarm's bootstrap node makes the tokens; k3s's starts with the one tundrad minted.
        (Kind::Swarm, true) => None,
        _ => secret_for(me.role, secrets).map(str::to_string),
    };
    JoinPlan {
        kind,
        role: me.role,
        bootstrap: is_bootstrap,
        address,
        join_address: if is_bootstrap { None } else { bootstrap_address },
        secret,
    }
}

/// The bootstrap node (the one others join through and that runs the
/// control plane's errands): the one recorded while it is usable; else it
/// is handed to the usable control-plane node with the lowest index,
/// joined ones first; with none usable, the recorded one stays. Usable:
/// a control-plane node neither failed nor leaving — and, once any member
/// has joined (the cluster exists), one that has joined it: a node that
/// never joined would initialise a second, empty cluster.
pub fn bootstrap<'a>(recorded: Option<&'a str>, members: &'a [Member]) -> Option<&'a str> {
    let exists = members.iter().any(|m| m.joined);
    let usable = |m: &&Member| {
        m.role == Role::ControlPlane
            && !matches!(m.state, MemberState::Failed | MemberState::Leaving)
            && (!exists || m.joined)
    };
    if let Some(r) = recorded
        && members.iter().filter(usable).any(|m| m.name == r)
    {
        return Some(r);
    }
    members
        .iter()
        .filter(usable)
        .min_by_key(|m| (m.state != MemberState::Joined, m.index))
        .map(|m| m.name.as_str())
        .or_else(|| recorded.filter(|r| members.iter().any(|m| m.name == *r)))
}

/// The nodes group `group` gives up to keep `keep`: failed ones first, then
/// those not joined yet, then the newest; the bootstrap node last of all (a
/// control plane keeps the node the others joined through while it can).
pub fn scale_down<'a>(members: &'a [Member], group: &str, keep: usize, bootstrap: Option<&str>) -> Vec<&'a str> {
    let mut in_group: Vec<&Member> =
        members.iter().filter(|m| m.group == group && m.state != MemberState::Leaving).collect();
    if in_group.len() <= keep {
        return Vec::new();
    }
    let rank = |m: &Member| -> (u8, u8, std::cmp::Reverse<u32>) {
        let health = match m.state {
            MemberState::Failed => 0,
            MemberState::Deploying | MemberState::Joining => 1,
            MemberState::Joined | MemberState::Leaving => 2,
        };
        (u8::from(Some(m.name.as_str()) == bootstrap), health, std::cmp::Reverse(m.index))
    };
    in_group.sort_by_key(|m| rank(m));
    let n = in_group.len() - keep;
    in_group.into_iter().take(n).map(|m| m.name.as_str()).collect()
}

/// The control plane's own view of the cluster's members (reported by the
/// bootstrap node): node name → ready.
pub type Seen = BTreeMap<String, bool>;

/// The cluster's status and why, from its members, the groups' declared
/// counts and what the control plane reports seeing (`None`: no report
/// yet). Work still under way is `creating` until the cluster has once been
/// `active` (`was_active`), `updating` after.
pub fn status(
    counts: &BTreeMap<String, usize>,
    members: &[Member],
    seen: Option<&Seen>,
    was_active: bool,
) -> (Status, Option<String>) {
    let busy = if was_active { Status::Updating } else { Status::Creating };
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for m in members.iter().filter(|m| m.state != MemberState::Leaving) {
        match (m.node, m.state) {
            (NodeStatus::Error, _) => failed.push(format!(
                "{}: deploy failed ({})",
                m.name,
                m.node_reason.as_deref().unwrap_or("no reason recorded")
            )),
            (_, MemberState::Failed) => failed.push(format!(
                "{}: join failed ({})",
                m.name,
                m.join_error.as_deref().unwrap_or("no reason reported")
            )),
            (_, MemberState::Deploying) => match &m.join_error {
                Some(why) => waiting.push(format!("{} (deploying: {why})", m.name)),
                None => waiting.push(format!("{} (deploying)", m.name)),
            },
            (_, MemberState::Joining) => waiting.push(format!("{} (joining)", m.name)),
            (_, MemberState::Joined) => match seen.and_then(|s| s.get(&m.name)) {
                Some(true) => {}
                // Seen but not ready (a node that just joined is, for a
                // moment): not active, not failed either.
                Some(false) => waiting.push(format!("{} (joined; the control plane sees it not ready)", m.name)),
                None => waiting.push(format!("{} (not yet seen by the control plane)", m.name)),
            },
            (_, MemberState::Leaving) => {}
        }
    }
    let mut scaling = Vec::new();
    for (group, want) in counts {
        let have = members.iter().filter(|m| &m.group == group && m.state != MemberState::Leaving).count();
        if have != *want {
            scaling.push(format!("group {group}: {have} of {want} nodes"));
        }
    }
    let leaving: Vec<&str> =
        members.iter().filter(|m| m.state == MemberState::Leaving).map(|m| m.name.as_str()).collect();
    if !failed.is_empty() {
        return (Status::Degraded, Some(failed.join("; ")));
    }
    if !scaling.is_empty() || !leaving.is_empty() {
        let mut why = scaling;
        if !leaving.is_empty() {
            why.push(format!("removing {}", leaving.join(", ")));
        }
        why.extend(waiting);
        return (busy, Some(why.join("; ")));
    }
    if !waiting.is_empty() {
        return (busy, Some(format!("waiting for {}", waiting.join(", "))));
    }
    (Status::Active, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role, index: u32, state: MemberState) -> Member {
        let group = if role == Role::ControlPlane { "control-plane" } else { "workers" };
        Member {
            name: name.into(),
            group: group.into(),
            role,
            index,
            node: if state == MemberState::Deploying { NodeStatus::Building } else { NodeStatus::Active },
            node_reason: None,
            state,
            join_error: None,
            joined: state == MemberState::Joined,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn group(name: &str, role: Role, count: u32) -> NodeGroup {
        NodeGroup {
            name: name.into(),
            role,
            flavor_id: tundra_api::FlavorId::generate(),
            image_id: tundra_api::ImageId::generate(),
            count,
            networks: Vec::new(),
            cluster_network_id: None,
            shares: Vec::new(),
            placement: Default::default(),
        }
    }

    #[test]
    fn groups_need_one_odd_control_plane_unique_names_and_host_names_that_fit() {
        let ok = [group("cp", Role::ControlPlane, 3), group("workers", Role::Worker, 0)];
        assert_eq!(check_groups("sw", &ok), Ok(()));
        let refused = |groups: &[NodeGroup], cluster: &str| check_groups(cluster, groups).unwrap_err();
        assert_eq!(refused(&[], "sw").0, "/groups");
        let (at, why) = refused(&[group("w", Role::Worker, 1)], "sw");
        assert!(at == "/groups" && why.contains("exactly one"), "{at} {why}");
        let (at, why) = refused(&[group("cp", Role::ControlPlane, 1), group("cp2", Role::ControlPlane, 1)], "sw");
        assert!(at == "/groups" && why.contains("2 groups"), "{at} {why}");
        let (at, why) = refused(&[group("cp", Role::ControlPlane, 2)], "sw");
        assert!(at == "/groups/0/count" && why.contains("odd"), "{at} {why}");
        let (at, _) = refused(&[group("cp", Role::ControlPlane, 1), group("cp", Role::Worker, 1)], "sw");
        assert_eq!(at, "/groups/1/name");
        let (at, _) = refused(&[group("cp", Role::ControlPlane, 1), group("w", Role::Worker, 1000)], "sw");
        assert_eq!(at, "/groups/1/count");
        // Parts of host names: no '.', '_' or capitals.
        for bad in ["gpu.a", "gpu_a", "GPU", "gpu-"] {
            let (at, why) = refused(&[group("cp", Role::ControlPlane, 1), group(bad, Role::Worker, 1)], "sw");
            assert!(at == "/groups/1/name" && why.contains("host names"), "{bad}: {at} {why}");
        }
        assert!(check_cluster_name("prod.sw").unwrap_err().1.contains("host names"));
        assert!(check_cluster_name("Sw").is_err());
        assert_eq!(check_cluster_name("sip-2"), Ok(()));
        let long = "c".repeat(50);
        let (at, why) = refused(&[group("control-plane", Role::ControlPlane, 1)], &long);
        assert!(at == "/groups/0/name" && why.contains("63 characters"), "{at} {why}");
        let mut g = group("cp", Role::ControlPlane, 1);
        let net = tundra_api::NetworkId::generate();
        g.cluster_network_id = Some(net);
        assert_eq!(refused(&[g.clone()], "sw").0, "/groups/0/cluster_network_id");
        g.networks = vec![net];
        assert_eq!(check_groups("sw", &[g]), Ok(()));
    }

    #[test]
    fn counts_and_new_worker_groups_change_in_place_what_nodes_were_deployed_with_does_not() {
        let old = vec![group("cp", Role::ControlPlane, 1), group("workers", Role::Worker, 2)];
        let mut new = old.clone();
        new[1].count = 5;
        new.push(group("gpu", Role::Worker, 1));
        assert_eq!(check_group_change(&old, &new), Ok(()));
        // A worker group may go (its nodes leave); the control plane may not.
        assert_eq!(check_group_change(&old, &old[..1]), Ok(()));
        assert!(check_group_change(&old, &old[1..]).unwrap_err().1.contains("cannot be removed"));
        let mut img = old.clone();
        img[1].image_id = tundra_api::ImageId::generate();
        let (at, why) = check_group_change(&old, &img).unwrap_err();
        assert!(at == "/groups/1/image_id" && why.contains("add a new group"), "{at} {why}");
        let mut role = old.clone();
        role[1].role = Role::ControlPlane;
        assert_eq!(check_group_change(&old, &role).unwrap_err().0, "/groups/1/role");
        // Networks grow at the end only.
        let (a, b) = (tundra_api::NetworkId::generate(), tundra_api::NetworkId::generate());
        let mut with = old.clone();
        with[1].networks = vec![a];
        let mut more = with.clone();
        more[1].networks = vec![a, b];
        assert_eq!(check_group_change(&with, &more), Ok(()));
        let mut reordered = with.clone();
        reordered[1].networks = vec![b, a];
        assert_eq!(check_group_change(&with, &reordered).unwrap_err().0, "/groups/1/networks");
    }

    #[test]
    fn a_nodes_user_data_runs_the_cluster_agent_against_the_metadata_service() {
        let ud = agent_user_data(
            "http://10.0.0.1:8080/openstack/latest",
            "ssh-ed25519 AAAAC3Nz ca",
            "tundra-admin",
            Kind::Swarm,
            Role::Worker,
        );
        assert!(ud.starts_with("#cloud-config\n"), "{ud}");
        assert!(
            ud.contains(
                "ExecStart=/usr/bin/python3 /usr/local/sbin/tundra-cluster http://10.0.0.1:8080/openstack/latest"
            ),
            "{ud}"
        );
        assert!(ud.contains("[systemctl, enable, --now, tundra-cluster.service]"), "{ud}");
        // Its admin trusts the cluster's authority for certificates, nothing else.
        assert!(ud.contains("name: \"tundra-admin\"\n    groups: [docker]"), "{ud}");
        assert!(ud.contains("TrustedUserCAKeys /etc/ssh/tundra-cluster-ca.pub"), "{ud}");
        assert!(ud.contains("\"ssh-ed25519 AAAAC3Nz ca\\n\""), "{ud}");
        // No secret travels in user data: the agent asks for its role's at run time.
        assert!(!ud.contains("SWMTKN") && !ud.contains("tundra-k3s-"), "{ud}");
        assert!(!ud.contains("k3s.service") && !ud.contains("k3s-agent.service"), "{ud}");
    }

    #[test]
    fn k3s_nodes_get_their_roles_unit_and_kernel_settings_and_no_docker_group() {
        let ud = |role| {
            agent_user_data(
                "http://10.0.0.1:8080/openstack/latest",
                "ssh-ed25519 A ca",
                "tundra-admin",
                Kind::Kubernetes,
                role,
            )
        };
        let server = ud(Role::ControlPlane);
        assert!(server.contains("path: /etc/systemd/system/k3s.service"), "{server}");
        assert!(server.contains("ExecStart=/usr/local/bin/k3s server"), "{server}");
        assert!(!server.contains("path: /etc/systemd/system/k3s-agent.service"), "{server}");
        let agent = ud(Role::Worker);
        assert!(agent.contains("path: /etc/systemd/system/k3s-agent.service"), "{agent}");
        assert!(agent.contains("ExecStart=/usr/local/bin/k3s agent"), "{agent}");
        for ud in [&server, &agent] {
            assert!(ud.contains("br_netfilter") && ud.contains("net.ipv4.ip_forward = 1"), "{ud}");
            assert!(!ud.contains("groups: [docker]") && !ud.contains("docker.service"), "{ud}");
            // The agent starts k3s once the bundle is in: cloud-init does not.
            assert!(!ud.contains("enable, --now, k3s"), "{ud}");
            assert!(!ud.contains("tundra-k3s-"), "{ud}");
        }
    }

    #[test]
    fn k3s_config_by_role_with_the_cluster_network_as_node_ip() {
        // A worker on three networks: its node IP is the one on the named
        // cluster network, not provisioning and not the first data network.
        let addrs = [
            ("provisioning".to_string(), ip("10.0.0.20")),
            ("data-25g".to_string(), ip("10.25.0.5")),
            ("hpc-100g".to_string(), ip("10.100.0.5")),
        ];
        let address = cluster_address("k-workers-1", Some("hpc-100g"), &addrs, "provisioning").unwrap();
        let hash = "ab".repeat(32);
        let server = format!("K10{hash}::server:tundra-k3s-server");
        let agent = format!("K10{hash}::node:tundra-k3s-agent");
        let s = Secrets { control_plane: Some(server.clone()), worker: Some(agent.clone()) };
        let labels = BTreeMap::from([("site.example/rack".to_string(), "r1".to_string())]);
        let w = member("k-workers-1", Role::Worker, 1, MemberState::Joining);
        let plan = join_plan(Kind::Kubernetes, &w, "k-cp-1", address, Some(ip("10.100.0.2")), &s);
        let c = k3s_config(&plan, &w.name, &labels, &s).unwrap();
        assert_eq!(c["node-ip"], "10.100.0.5");
        assert_eq!(c["node-name"], "k-workers-1");
        assert_eq!(c["server"], "https://10.100.0.2:6443");
        assert_eq!(c["token"], agent.as_str(), "an agent joins with the agent token, pinned");
        assert_eq!(c["node-label"], serde_json::json!(["site.example/rack=r1"]));
        assert!(!c.contains_key("agent-token") && !c.contains_key("cluster-init") && !c.contains_key("tls-san"));
        assert!(!serde_json::to_string(&c).unwrap().contains(&server), "a worker never sees the server token");
        // The bootstrap server initialises etcd on its cluster address, with
        // the tokens as minted (there is no CA to pin them to yet).
        let minted =
            Secrets { control_plane: Some("tundra-k3s-server".into()), worker: Some("tundra-k3s-agent".into()) };
        let cp = member("k-cp-1", Role::ControlPlane, 1, MemberState::Joining);
        let plan = join_plan(Kind::Kubernetes, &cp, "k-cp-1", ip("10.100.0.2"), Some(ip("10.100.0.2")), &minted);
        let c = k3s_config(&plan, &cp.name, &BTreeMap::new(), &minted).unwrap();
        assert_eq!(c["cluster-init"], true);
        assert!(!c.contains_key("server"));
        assert_eq!(
            (c["token"].as_str(), c["agent-token"].as_str()),
            (Some("tundra-k3s-server"), Some("tundra-k3s-agent"))
        );
        assert_eq!(
            (c["advertise-address"].as_str(), c["tls-san"][0].as_str()),
            (Some("10.100.0.2"), Some("10.100.0.2"))
        );
        assert!(!c.contains_key("node-label"));
        // Nobody else joins before the tokens are pinned to the running cluster's CA.
        let plan = join_plan(Kind::Kubernetes, &w, "k-cp-1", address, Some(ip("10.100.0.2")), &minted);
        assert_eq!(k3s_config(&plan, &w.name, &labels, &minted), None);
        // Another server joins through the bootstrap server, pinned.
        let cp2 = member("k-cp-2", Role::ControlPlane, 2, MemberState::Joining);
        let plan = join_plan(Kind::Kubernetes, &cp2, "k-cp-1", ip("10.100.0.3"), Some(ip("10.100.0.2")), &minted);
        assert_eq!(k3s_config(&plan, &cp2.name, &BTreeMap::new(), &minted), None);
        let plan = join_plan(Kind::Kubernetes, &cp2, "k-cp-1", ip("10.100.0.3"), Some(ip("10.100.0.2")), &s);
        let c = k3s_config(&plan, &cp2.name, &BTreeMap::new(), &s).unwrap();
        assert_eq!(c["server"], "https://10.100.0.2:6443");
        assert_eq!((c["token"].as_str(), c["agent-token"].as_str()), (Some(server.as_str()), Some(agent.as_str())));
        assert!(!c.contains_key("cluster-init"));
        // Not before the bootstrap server's address is known; never for Swarm.
        let plan = join_plan(Kind::Kubernetes, &w, "k-cp-1", address, None, &s);
        assert_eq!(k3s_config(&plan, &w.name, &labels, &s), None);
        let plan = join_plan(Kind::Swarm, &w, "k-cp-1", address, Some(ip("10.100.0.2")), &s);
        assert_eq!(k3s_config(&plan, &w.name, &labels, &s), None);
    }

    #[test]
    fn only_the_full_form_of_the_minted_token_replaces_it() {
        let minted = "tundra-k3s-abc";
        let h = "0f".repeat(32);
        assert!(is_full_k3s_token(&format!("K10{h}::server:tundra-k3s-abc"), minted, Role::ControlPlane));
        assert!(is_full_k3s_token(&format!("K10{h}::node:tundra-k3s-abc"), minted, Role::Worker));
        for (bad, role) in [
            ("tundra-k3s-abc".to_string(), Role::ControlPlane),
            ("K10::server:tundra-k3s-abc".to_string(), Role::ControlPlane),
            ("K1012af::server:tundra-k3s-abc".to_string(), Role::ControlPlane),
            (format!("K10{}::server:tundra-k3s-abc", "x".repeat(64)), Role::ControlPlane),
            (format!("K10{h}::server:tundra-k3s-other"), Role::ControlPlane),
            (format!("K10{h}::tundra-k3s-abc"), Role::ControlPlane),
            (format!("K10{h}:server:tundra-k3s-abc"), Role::ControlPlane),
            // Each token with its own user: k3s reads any other as a bare password.
            (format!("K10{h}::node:tundra-k3s-abc"), Role::ControlPlane),
            (format!("K10{h}::server:tundra-k3s-abc"), Role::Worker),
            (format!("K10{h}::admin:tundra-k3s-abc"), Role::Worker),
        ] {
            assert!(!is_full_k3s_token(&bad, minted, role), "{bad}");
        }
        assert!(!is_full_k3s_token(&format!("K10{h}::server:"), "", Role::ControlPlane), "nothing minted");
        assert!(is_pinned_k3s_token(&format!("K10{h}::node:x")) && !is_pinned_k3s_token(minted));
        assert_eq!((k3s_minted(&format!("K10{h}::node:tundra-k3s-abc")), k3s_minted(minted)), (minted, minted));
    }

    #[test]
    fn kubernetes_labels_must_be_what_k3s_takes() {
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        for (k, v) in [("team", "radio"), ("site.example/rack", "r-1"), ("gpu", ""), ("a.b_c-d", "X.y_z")] {
            assert_eq!(check_labels(Kind::Kubernetes, &l(k, v)), Ok(()), "{k}={v}");
        }
        for (k, v) in
            [("", "x"), ("-team", "x"), ("team", "x y"), ("team", "-x"), ("Site.Example/rack", "r"), ("/rack", "r")]
        {
            let (at, why) = check_labels(Kind::Kubernetes, &l(k, v)).unwrap_err();
            assert!(at.starts_with("/labels/") && why.contains("Kubernetes label"), "{k}={v}: {at} {why}");
        }
        assert_eq!(check_labels(Kind::Kubernetes, &l("a/b", "x y")).unwrap_err().0, "/labels/a~1b");
        // Kubernetes' own prefixes the kubelet will not set on itself, but its two.
        for k in ["node-role.kubernetes.io/worker", "kubernetes.io/role", "x.k8s.io/a"] {
            let (at, why) = check_labels(Kind::Kubernetes, &l(k, "")).unwrap_err();
            assert!(at.starts_with("/labels/") && why.contains("a prefix of your own"), "{k}: {at} {why}");
        }
        for ok in ["node.kubernetes.io/pool", "kubelet.kubernetes.io/x", "example.com/kubernetes.io"] {
            assert_eq!(check_labels(Kind::Kubernetes, &l(ok, "a")), Ok(()), "{ok}");
        }
        assert_eq!(check_labels(Kind::Kubernetes, &l("team", &"v".repeat(64))).unwrap_err().0, "/labels/team");
        // Swarm takes any.
        assert_eq!(check_labels(Kind::Swarm, &l("any thing", "at all")), Ok(()));
    }

    #[test]
    fn cluster_traffic_goes_over_the_named_network_else_the_first_beyond_provisioning() {
        let addrs = [
            ("provisioning".to_string(), ip("10.0.0.20")),
            ("data-25g".to_string(), ip("10.25.0.5")),
            ("hpc-100g".to_string(), ip("10.100.0.5")),
        ];
        assert_eq!(cluster_address("n1", Some("hpc-100g"), &addrs, "provisioning"), Ok(ip("10.100.0.5")));
        assert_eq!(cluster_address("n1", None, &addrs, "provisioning"), Ok(ip("10.25.0.5")));
        assert_eq!(cluster_address("n1", None, &addrs[..1], "provisioning"), Ok(ip("10.0.0.20")));
        let e = cluster_address("n1", Some("ib"), &addrs, "provisioning").unwrap_err();
        assert!(e.contains("no address on network \"ib\""), "{e}");
        assert!(cluster_address("n1", None, &[], "provisioning").is_err());
    }

    #[test]
    fn tokens_are_long_random_and_each_role_gets_only_its_own() {
        let a = k3s_token(&[7; 32]);
        let b = k3s_token(&[8; 32]);
        assert_ne!(a, b);
        assert_eq!(a.len(), "tundra-k3s-".len() + 64);
        let s = Secrets { control_plane: Some("server-secret".into()), worker: Some("agent-secret".into()) };
        assert_eq!(secret_for(Role::ControlPlane, &s), Some("server-secret"));
        assert_eq!(secret_for(Role::Worker, &s), Some("agent-secret"));
        // A worker's plan carries the worker secret and nothing else.
        let w = member("c-workers-1", Role::Worker, 1, MemberState::Joining);
        let plan = join_plan(Kind::Kubernetes, &w, "c-cp-1", ip("10.1.0.3"), Some(ip("10.1.0.2")), &s);
        assert_eq!(plan.secret.as_deref(), Some("agent-secret"));
        assert_eq!((plan.bootstrap, plan.join_address), (false, Some(ip("10.1.0.2"))));
        // Swarm's bootstrap node makes its tokens: it is given none.
        let cp = member("c-cp-1", Role::ControlPlane, 1, MemberState::Joining);
        let plan = join_plan(Kind::Swarm, &cp, "c-cp-1", ip("10.1.0.2"), Some(ip("10.1.0.2")), &s);
        assert_eq!((plan.bootstrap, plan.secret, plan.join_address), (true, None, None));
        // A Swarm worker waits until the tokens are known.
        let plan = join_plan(Kind::Swarm, &w, "c-cp-1", ip("10.1.0.3"), Some(ip("10.1.0.2")), &Secrets::default());
        assert_eq!(plan.secret, None);
    }

    #[test]
    fn the_bootstrap_node_is_kept_while_healthy_and_handed_to_a_joined_manager() {
        let mut ms = vec![
            member("c-cp-3", Role::ControlPlane, 3, MemberState::Deploying),
            member("c-cp-2", Role::ControlPlane, 2, MemberState::Joined),
            member("c-cp-1", Role::ControlPlane, 1, MemberState::Joined),
            member("c-workers-1", Role::Worker, 1, MemberState::Joined),
        ];
        assert_eq!(bootstrap(None, &ms), Some("c-cp-1"), "the first joined manager");
        assert_eq!(bootstrap(Some("c-cp-2"), &ms), Some("c-cp-2"), "recorded stays while healthy");
        assert_eq!(
            bootstrap(Some("c-cp-3"), &ms),
            Some("c-cp-1"),
            "once the cluster exists, never one that has not joined"
        );
        assert_eq!(bootstrap(Some("c-cp-9"), &ms), Some("c-cp-1"), "a recorded node that is gone is replaced");
        // Leaving (replaced) or failed: handed over to a joined manager, never a worker.
        ms[2].state = MemberState::Leaving;
        assert_eq!(bootstrap(Some("c-cp-1"), &ms), Some("c-cp-2"));
        ms[2].state = MemberState::Failed;
        assert_eq!(bootstrap(Some("c-cp-1"), &ms), Some("c-cp-2"));
        // A lone manager that failed stays the one the cluster knows —
        // even beside a new manager that has not joined: that one would
        // initialise a second, empty swarm.
        let mut lone = vec![
            member("c-cp-1", Role::ControlPlane, 1, MemberState::Failed),
            member("c-cp-2", Role::ControlPlane, 2, MemberState::Deploying),
            member("c-workers-1", Role::Worker, 1, MemberState::Joined),
        ];
        lone[0].joined = true;
        assert_eq!(bootstrap(Some("c-cp-1"), &lone), Some("c-cp-1"));
        // At creation nobody joined yet: the first manager.
        let fresh = vec![
            member("c-cp-2", Role::ControlPlane, 2, MemberState::Deploying),
            member("c-cp-1", Role::ControlPlane, 1, MemberState::Deploying),
        ];
        assert_eq!(bootstrap(None, &fresh), Some("c-cp-1"));
    }

    #[test]
    fn scale_down_gives_up_failed_then_unjoined_then_newest_and_the_bootstrap_last() {
        let mut ms = vec![
            member("c-workers-1", Role::Worker, 1, MemberState::Joined),
            member("c-workers-2", Role::Worker, 2, MemberState::Joined),
            member("c-workers-3", Role::Worker, 3, MemberState::Joined),
            member("c-workers-4", Role::Worker, 4, MemberState::Joining),
            member("c-workers-5", Role::Worker, 5, MemberState::Failed),
        ];
        assert_eq!(scale_down(&ms, "workers", 3, None), ["c-workers-5", "c-workers-4"]);
        assert_eq!(scale_down(&ms, "workers", 1, None), ["c-workers-5", "c-workers-4", "c-workers-3", "c-workers-2"]);
        assert!(scale_down(&ms, "workers", 5, None).is_empty());
        // Those already leaving are not counted again.
        ms[4].state = MemberState::Leaving;
        assert_eq!(scale_down(&ms, "workers", 3, None), ["c-workers-4"]);
        let cps = vec![
            member("c-cp-1", Role::ControlPlane, 1, MemberState::Joined),
            member("c-cp-2", Role::ControlPlane, 2, MemberState::Joined),
            member("c-cp-3", Role::ControlPlane, 3, MemberState::Joined),
        ];
        assert_eq!(scale_down(&cps, "control-plane", 1, Some("c-cp-3")), ["c-cp-2", "c-cp-1"]);
    }

    #[test]
    fn active_only_when_every_node_joined_and_the_control_plane_sees_it_ready() {
        let counts = BTreeMap::from([("control-plane".to_string(), 1), ("workers".to_string(), 2)]);
        let mut ms = vec![
            member("c-cp-1", Role::ControlPlane, 1, MemberState::Joined),
            member("c-workers-1", Role::Worker, 1, MemberState::Joined),
            member("c-workers-2", Role::Worker, 2, MemberState::Deploying),
        ];
        let (s, why) = status(&counts, &ms, None, false);
        assert_eq!(s, Status::Creating);
        let why = why.unwrap();
        assert!(why.contains("c-workers-2 (deploying)") && why.contains("c-cp-1 (not yet seen"), "{why}");
        // Every deploy done and every node joined is not enough: the
        // control plane must see them ready.
        ms[2].state = MemberState::Joined;
        ms[2].node = NodeStatus::Active;
        let mut seen = Seen::from([("c-cp-1".to_string(), true), ("c-workers-1".to_string(), true)]);
        let (s, why) = status(&counts, &ms, Some(&seen), false);
        assert_eq!(s, Status::Creating, "{why:?}");
        assert!(why.unwrap().contains("c-workers-2 (not yet seen by the control plane)"));
        seen.insert("c-workers-2".into(), false);
        let (s, why) = status(&counts, &ms, Some(&seen), false);
        assert_eq!(s, Status::Creating);
        assert!(why.unwrap().contains("c-workers-2 (joined; the control plane sees it not ready)"));
        seen.insert("c-workers-2".into(), true);
        assert_eq!(status(&counts, &ms, Some(&seen), false), (Status::Active, None));
        // A worker whose deploy failed: degraded, naming it and why.
        ms[1].node = NodeStatus::Error;
        ms[1].node_reason = Some("deploy failed: BMC unreachable".into());
        let (s, why) = status(&counts, &ms, Some(&seen), true);
        assert_eq!(s, Status::Degraded);
        assert_eq!(why.unwrap(), "c-workers-1: deploy failed (deploy failed: BMC unreachable)");
        // A join that failed, with the agent's report.
        ms[1].node = NodeStatus::Active;
        ms[1].state = MemberState::Failed;
        ms[1].join_error = Some("docker swarm join: connection refused".into());
        let (s, why) = status(&counts, &ms, Some(&seen), true);
        assert_eq!(s, Status::Degraded);
        assert!(why.unwrap().contains("c-workers-1: join failed (docker swarm join: connection refused)"));
        // Scaling: a count the members do not match yet.
        ms[1].state = MemberState::Joined;
        let bigger = BTreeMap::from([("control-plane".to_string(), 1), ("workers".to_string(), 3)]);
        let (s, why) = status(&bigger, &ms, Some(&seen), true);
        assert_eq!(s, Status::Updating, "scaling an active cluster");
        assert!(why.unwrap().contains("group workers: 2 of 3 nodes"));
    }
}
