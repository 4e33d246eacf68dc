//! What a node is told about itself: the files of its config drive (written
//! by the agent at deploy) and of the metadata service (served to the node's
//! provisioning address) — keys, metadata, user data and a link per network
//! with its static address. The layout is `tundra_engine::nodes::drive_files`.
//!
//! The metadata service trusts neither an address nor a MAC alone (a tenant
//! on the provisioning network can take either): each deploy writes a fresh
//! metadata token on the config drive ([`TOKEN_FILE`]; only its hash is
//! kept), and the service answers the node holding the asking address only
//! when the request carries that node's token.

use std::collections::BTreeMap;

use base64::Engine;
use tundra_api::nodes::Node;
use tundra_engine::nodes::{DriveInput, Link};

use crate::handle::Conductor;

/// The files of a node's config drive (and of the metadata service).
pub async fn files(c: &Conductor, n: &Node) -> Result<BTreeMap<String, String>, String> {
    let store = c.store();
    let mut keys = Vec::new();
    if let Some(k) = n.keypair_id {
        let k = store.keypair(k).await.map_err(|e| format!("the node's keypair: {e}"))?;
        keys.push((k.name, k.public_key));
    }
    let net = c.settings().node_network.as_ref();
    let mut links = n
        .addresses
        .iter()
        .map(|a| Link {
            mac: a.mac.clone(),
            mtu: net.map(|n| n.mtu).unwrap_or(1500),
            network: a.network.clone(),
            address: a.address.as_deref().and_then(|ip| ip.parse().ok()).map(|ip| (ip, a.prefix.unwrap_or(24))),
            gateway: net.and_then(|n| n.router),
        })
        .collect::<Vec<_>>();
    for port in store.node_ports(n.id).await.map_err(|e| e.to_string())? {
        let (Some(mac), net) = (port.mac.clone(), store.network(port.network_id).await.map_err(|e| e.to_string())?)
        else {
            continue;
        };
        // The first address with its subnet's prefix; a DHCP subnet leaves it to DHCP.
        let mut address = None;
        let mut gateway = None;
        if let Some(ip) = port.fixed_ips.first() {
            let s = store.subnet(ip.subnet_id).await.map_err(|e| e.to_string())?;
            let prefix = s.cidr.split_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(24);
            if !s.dhcp {
                address = ip.address.as_deref().and_then(|a| a.parse().ok()).map(|a| (a, prefix));
                gateway = s.gateway.as_deref().and_then(|g| g.parse().ok());
            }
        }
        links.push(Link { mac, mtu: net.mtu, network: net.name, address, gateway });
    }
    let mounts = mounts(c, n).await?;
    let mut seed = [0u8; 64];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| "no randomness for random_seed".to_string())?;
    let input = DriveInput {
        uuid: n.id.to_string(),
        name: n.name.clone(),
        project_id: n.project_id.to_string(),
        availability_zone: n.location.island.clone(),
        keys,
        metadata: n.metadata.clone(),
        user_data: store.node_user_data(n.id).await.map_err(|e| e.to_string())?,
        links,
        dns: net.map(|n| n.dns.clone()).unwrap_or_default(),
        random_seed: base64::engine::general_purpose::STANDARD.encode(seed),
        mounts,
        updater: c.metadata_url().map(|base| tundra_engine::shares::Updater {
            url: format!("{base}/openstack/latest/tundra_mounts.json"),
            every_secs: c.settings().node_mount_refresh.as_secs().max(1),
        }),
    };
    Ok(tundra_engine::nodes::drive_files(&input))
}

/// The node's mounts whose rules are active, ready for cloud-init and the
/// updater.
async fn mounts(c: &Conductor, n: &Node) -> Result<Vec<tundra_engine::shares::Mount>, String> {
    let store = c.store();
    let mut mounts = Vec::new();
    for m in store.node_mounts(n.id).await.map_err(|e| e.to_string())? {
        if m.state != tundra_api::shares::AccessState::Active {
            continue;
        }
        let (Some(rule), share) = (m.access_id, store.share(m.share_id).await.map_err(|e| e.to_string())?) else {
            continue;
        };
        let rule = store.access(rule).await.map_err(|e| e.to_string())?;
        let t = store.share_type(share.share_type_id).await.map_err(|e| e.to_string())?;
        let Some(path) = store.share_export_path(share.id).await.map_err(|e| e.to_string())? else { continue };
        mounts.push(
            crate::shares::mount_of(c, &t, &rule, &path, &m.mount_point)
                .await
                .map_err(|e| format!("the mount of share {} at {}: {e}", share.name, m.mount_point))?,
        );
    }
    Ok(mounts)
}

/// The updater's file alone (asked by every node every `node_mount_refresh`;
/// the rest of the drive is not built for it).
const MOUNTS_FILE: &str = "tundra_mounts.json";

/// Where the config drive holds the node's metadata token (never served by
/// the metadata service).
pub const TOKEN_FILE: &str = "openstack/latest/tundra_metadata_token";

/// Metadata tokens start with this.
pub const TOKEN_PREFIX: &str = "tnm_";

/// The files a deploy writes on node `n`'s config drive: [`files`] and a
/// fresh metadata token (its hash kept; the previous deploy's stops working).
pub async fn drive(c: &Conductor, n: &Node) -> Result<BTreeMap<String, String>, String> {
    // The node's share rules are granted in a second or two; its mounts
    // need their keys on the drive, so wait for them (a while, not forever:
    // a rule in `error` or a backend away leaves that mount out).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pending = c.store().node_mounts(n.id).await.map_err(|e| e.to_string())?.iter().any(|m| {
            matches!(m.state, tundra_api::shares::AccessState::Queued | tundra_api::shares::AccessState::Applying)
        });
        if !pending || std::time::Instant::now() > deadline {
            break;
        }
        c.wakes().shares.notify_one();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut out = files(c, n).await?;
    let token = crate::secrets::new_secret(TOKEN_PREFIX);
    c.store()
        .set_node_metadata_token(n.id, &crate::secrets::sha256_hex(token.as_bytes()))
        .await
        .map_err(|e| format!("recording the node's metadata token: {e}"))?;
    out.insert(TOKEN_FILE.into(), format!("{token}\n"));
    Ok(out)
}

/// What the metadata service answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Metadata {
    File(String),
    /// No node holds the address, or there is no such file.
    NotFound,
    /// A node holds the address, but the request did not carry its token.
    Denied,
}

/// Who asks the metadata service.
pub enum Asker {
    /// The node holding the asking address, with its token.
    Node(Box<Node>),
    /// No node holds the address.
    NotFound,
    /// The node holding it, without its token.
    Denied,
}

/// The node holding `address` on a provisioning network, if the request
/// carries that node's metadata `token`.
pub async fn asker(c: &Conductor, address: std::net::IpAddr, token: Option<&str>) -> Result<Asker, String> {
    let holder = c.store().node_at_address(&address.to_string()).await.map_err(|e| e.to_string())?;
    let Some(n) = holder else { return Ok(Asker::NotFound) };
    let want = c.store().node_metadata_token_hash(n.id).await.map_err(|e| e.to_string())?;
    let given = token.map(|t| crate::secrets::sha256_hex(t.trim().as_bytes()));
    if want.is_none() || given != want {
        tracing::warn!(node = %n.name, %address, "a metadata request without the node's token; refused");
        return Ok(Asker::Denied);
    }
    Ok(Asker::Node(Box::new(n)))
}

/// The metadata service's file `name` (under `openstack/latest/`) for
/// node `n` (the [`Asker`] it was found to be).
pub async fn metadata_file(c: &Conductor, n: &Node, name: &str) -> Result<Option<String>, String> {
    if name == MOUNTS_FILE && c.metadata_url().is_some() {
        return Ok(Some(tundra_engine::shares::mounts_json(&mounts(c, n).await?)));
    }
    Ok(files(c, n).await?.remove(&format!("openstack/latest/{name}")))
}

/// The metadata service's answer: the file `name` (under
/// `openstack/latest/`) for the node holding `address` on a provisioning
/// network — given that node's metadata `token`.
pub async fn metadata(
    c: &Conductor,
    address: std::net::IpAddr,
    token: Option<&str>,
    name: &str,
) -> Result<Metadata, String> {
    Ok(match asker(c, address, token).await? {
        Asker::Node(n) => match metadata_file(c, &n, name).await? {
            Some(f) => Metadata::File(f),
            None => Metadata::NotFound,
        },
        Asker::NotFound => Metadata::NotFound,
        Asker::Denied => Metadata::Denied,
    })
}
