//! Nodes: the deploy workflow's decisions and the config drive's contents.
//!
//! **Workflow, with undo.** A node is placed and its machine claimed in one
//! transaction (placement: `scheduler`); the claim starts the machine's
//! deploy (power on PXE → the agent writes image + config drive → boot from
//! disk → `active`). What happens next is decided here, level-triggered:
//! `reconcile` looks at the node's status and its machine as they are now
//! and names the one step to take, so a tundrad restarted at any point
//! resumes by looking again. Undo is the same table read the other way: a
//! deploy that fails puts the node in `error` and its machine through
//! cleaning back to the pool; deleting a node aborts a running deploy, then
//! cleans the machine, and the node is gone only when cleaning ended —
//! never is a machine left claimed by nobody.
//!
//! **Config drive.** `drive_files` renders the OpenStack layout
//! (`openstack/latest/{meta_data.json, network_data.json, user_data}`) that
//! the agent writes into a `config-2` partition and the metadata service
//! serves over HTTP.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::machine_states::State;

/// A node's status: the wire enum.
pub use tundra_api::nodes::NodeStatus as Status;

/// The node's machine as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSeen {
    pub state: State,
    /// An operation holds it (deploy, clean…).
    pub busy: bool,
    pub last_error: Option<String>,
}

/// The one thing to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait: the machine is working.
    Wait,
    /// The deploy finished: the node is active.
    MarkActive,
    /// The node failed, for this reason (its machine is dealt with next pass).
    MarkError(String),
    /// Stop the running deploy (deleting a node that is still building).
    AbortDeploy,
    /// Start cleaning the machine (delete → cleaning → available).
    StartCleaning,
    /// The machine is on its way back (or out of our hands): forget it.
    Release,
    /// Deleting, and the machine is cleaned (or failed cleaning, for an
    /// operator): the node is gone.
    Remove,
}

/// Decide the next step for a node in `status` holding `machine` (`None`:
/// it holds none, or the machine no longer exists).
pub fn reconcile(status: Status, machine: Option<&MachineSeen>) -> Step {
    use State::*;
    let Some(m) = machine else {
        return match status {
            Status::Deleting => Step::Remove,
            Status::Error => Step::Wait,
            Status::Building | Status::Active => Step::MarkError("its machine is gone".into()),
        };
    };
    let deploying = matches!(m.state, Deploying | DeployWait);
    match status {
        Status::Building => match (m.state, m.busy) {
            (_, true) if deploying => Step::Wait,
            (Active, false) => Step::MarkActive,
            (DeployFailed, false) => Step::MarkError(format!(
                "deploy failed: {}",
                m.last_error.clone().unwrap_or_else(|| "no reason recorded".into())
            )),
            (s, _) => Step::MarkError(format!("its machine left the deploy (it is {s})")),
        },
        Status::Active => match m.state {
            Active => Step::Wait,
            s => Step::MarkError(format!("its machine was taken out of service (it is {s})")),
        },
        Status::Error => match (m.state, m.busy) {
            (DeployFailed | Active, false) => Step::StartCleaning,
            (_, true) if deploying => Step::AbortDeploy,
            _ => Step::Release,
        },
        Status::Deleting => match (m.state, m.busy) {
            (_, true) if deploying => Step::AbortDeploy,
            (_, true) => Step::Wait,
            (DeployFailed | Active | Error, false) => Step::StartCleaning,
            (Deleting | Cleaning | CleanWait, false) => Step::Wait,
            _ => Step::Remove,
        },
    }
}

/// A link (interface) of the node and its address on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub mac: String,
    pub mtu: u32,
    /// The network's name.
    pub network: String,
    /// `Some((address, prefix))`: static; `None`: DHCP.
    pub address: Option<(std::net::Ipv4Addr, u8)>,
    pub gateway: Option<std::net::Ipv4Addr>,
}

/// What goes onto a node's config drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveInput {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub availability_zone: Option<String>,
    /// (name, OpenSSH public key line).
    pub keys: Vec<(String, String)>,
    pub metadata: BTreeMap<String, String>,
    pub user_data: Option<String>,
    pub links: Vec<Link>,
    pub dns: Vec<std::net::Ipv4Addr>,
    /// 64 random bytes, base64 (`random_seed`; the caller draws them).
    pub random_seed: String,
    /// The shares it mounts (their rules active): cloud-init beside the user's user data.
    pub mounts: Vec<crate::shares::Mount>,
    /// Where the node's updater reads later mount changes (none: the site
    /// serves no metadata service, and mounts change on redeploy only).
    pub updater: Option<crate::shares::Updater>,
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
    std::net::Ipv4Addr::from(bits)
}

/// `meta_data.json`.
pub fn meta_data(d: &DriveInput) -> Value {
    let public_keys: serde_json::Map<String, Value> =
        d.keys.iter().map(|(n, k)| (n.clone(), Value::String(k.clone()))).collect();
    let keys: Vec<Value> = d.keys.iter().map(|(n, k)| json!({"name": n, "type": "ssh", "data": k})).collect();
    json!({
        "uuid": d.uuid,
        "name": d.name,
        "hostname": d.name,
        "launch_index": 0,
        "project_id": d.project_id,
        "availability_zone": d.availability_zone,
        "public_keys": public_keys,
        "keys": keys,
        "meta": d.metadata,
        "devices": [],
        "random_seed": d.random_seed,
    })
}

/// `network_data.json`: links by MAC, one network per link (static or DHCP),
/// a default route through the gateway, DNS servers as services.
pub fn network_data(d: &DriveInput) -> Value {
    let mut links = Vec::new();
    let mut networks = Vec::new();
    for (i, l) in d.links.iter().enumerate() {
        let id = format!("tundra{i}");
        links.push(json!({"id": id, "type": "phy", "ethernet_mac_address": l.mac, "mtu": l.mtu}));
        let mut n = match l.address {
            Some((ip, prefix)) => json!({
                "id": format!("network{i}"), "type": "ipv4", "link": id, "network_id": l.network,
                "ip_address": ip.to_string(), "netmask": netmask(prefix).to_string(),
            }),
            None => json!({"id": format!("network{i}"), "type": "ipv4_dhcp", "link": id, "network_id": l.network}),
        };
        if let (Some(gw), Some(_)) = (l.gateway, l.address) {
            n["routes"] = json!([{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": gw.to_string()}]);
        }
        networks.push(n);
    }
    let services: Vec<Value> = d.dns.iter().map(|a| json!({"type": "dns", "address": a.to_string()})).collect();
    json!({"links": links, "networks": networks, "services": services})
}

/// Every file of the config drive, by path.
pub fn drive_files(d: &DriveInput) -> BTreeMap<String, String> {
    let pretty = |v: Value| serde_json::to_string_pretty(&v).expect("JSON values serialize");
    let mut out = BTreeMap::new();
    out.insert("openstack/latest/meta_data.json".to_string(), pretty(meta_data(d)));
    out.insert("openstack/latest/network_data.json".to_string(), pretty(network_data(d)));
    if d.updater.is_some() {
        out.insert("openstack/latest/tundra_mounts.json".to_string(), crate::shares::mounts_json(&d.mounts));
    }
    if !d.mounts.is_empty() || d.updater.is_some() {
        let ours = crate::shares::cloud_config(&d.mounts, d.updater.as_ref());
        out.insert(
            "openstack/latest/user_data".to_string(),
            crate::shares::user_data_with(d.user_data.as_deref(), &ours),
        );
    } else if let Some(u) = &d.user_data {
        out.insert("openstack/latest/user_data".to_string(), u.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: State, busy: bool) -> MachineSeen {
        MachineSeen { state, busy, last_error: Some("disk on fire".into()) }
    }

    #[test]
    fn a_deploy_that_ends_makes_the_node_active_or_failed() {
        use State::*;
        assert_eq!(reconcile(Status::Building, Some(&seen(DeployWait, true))), Step::Wait);
        assert_eq!(reconcile(Status::Building, Some(&seen(Active, false))), Step::MarkActive);
        assert_eq!(
            reconcile(Status::Building, Some(&seen(DeployFailed, false))),
            Step::MarkError("deploy failed: disk on fire".into())
        );
        assert!(matches!(reconcile(Status::Building, None), Step::MarkError(_)));
    }

    #[test]
    fn a_failed_node_sends_its_machine_through_cleaning_then_lets_go() {
        use State::*;
        assert_eq!(reconcile(Status::Error, Some(&seen(DeployFailed, false))), Step::StartCleaning);
        assert_eq!(reconcile(Status::Error, Some(&seen(Deleting, true))), Step::Release);
        assert_eq!(reconcile(Status::Error, Some(&seen(CleanWait, true))), Step::Release);
        assert_eq!(reconcile(Status::Error, Some(&seen(DeployWait, true))), Step::AbortDeploy);
        assert_eq!(reconcile(Status::Error, None), Step::Wait);
    }

    #[test]
    fn deleting_aborts_cleans_and_removes_only_after_cleaning() {
        use State::*;
        assert_eq!(reconcile(Status::Deleting, Some(&seen(Deploying, true))), Step::AbortDeploy);
        assert_eq!(reconcile(Status::Deleting, Some(&seen(Active, false))), Step::StartCleaning);
        assert_eq!(reconcile(Status::Deleting, Some(&seen(DeployFailed, false))), Step::StartCleaning);
        assert_eq!(reconcile(Status::Deleting, Some(&seen(CleanWait, true))), Step::Wait);
        assert_eq!(reconcile(Status::Deleting, Some(&seen(Available, false))), Step::Remove);
        assert_eq!(reconcile(Status::Deleting, Some(&seen(CleanFailed, false))), Step::Remove);
        assert_eq!(reconcile(Status::Deleting, None), Step::Remove);
    }

    #[test]
    fn an_active_node_whose_machine_is_taken_fails() {
        assert_eq!(reconcile(Status::Active, Some(&seen(State::Active, false))), Step::Wait);
        assert!(matches!(reconcile(Status::Active, Some(&seen(State::Cleaning, true))), Step::MarkError(_)));
    }

    #[test]
    fn the_drive_has_the_openstack_layout() {
        let d = DriveInput {
            uuid: "u-1".into(),
            name: "n1".into(),
            project_id: "p".into(),
            availability_zone: Some("island-a".into()),
            keys: vec![("me".into(), "ssh-ed25519 AAAA me".into())],
            metadata: BTreeMap::from([("role".into(), "worker".into())]),
            user_data: Some("#cloud-config\n".into()),
            links: vec![Link {
                mac: "52:54:00:00:00:01".into(),
                mtu: 1500,
                network: "provisioning".into(),
                address: Some(("10.0.0.20".parse().unwrap(), 24)),
                gateway: Some("10.0.0.1".parse().unwrap()),
            }],
            dns: vec!["10.0.0.2".parse().unwrap()],
            random_seed: "c2VlZA==".into(),
            mounts: Vec::new(),
            updater: None,
        };
        let f = drive_files(&d);
        assert_eq!(f.len(), 3);
        let m: Value = serde_json::from_str(&f["openstack/latest/meta_data.json"]).unwrap();
        assert_eq!(m["public_keys"]["me"], "ssh-ed25519 AAAA me");
        assert_eq!(m["meta"]["role"], "worker");
        assert_eq!(m["hostname"], "n1");
        let n: Value = serde_json::from_str(&f["openstack/latest/network_data.json"]).unwrap();
        assert_eq!(n["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(n["networks"][0]["link"], n["links"][0]["id"]);
        assert_eq!(n["networks"][0]["routes"][0]["gateway"], "10.0.0.1");
        assert_eq!(n["services"][0]["address"], "10.0.0.2");
        assert_eq!(netmask(0), std::net::Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(32), std::net::Ipv4Addr::new(255, 255, 255, 255));
    }
}
