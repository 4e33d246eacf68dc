//! Cluster templates and clusters checked and written; what a node's
//! cluster agent is told (its join plan) and what it reports.
//!
//! Join secrets: k3s tokens are minted here at create; Swarm's are made by
//! the bootstrap node and reported. Both are sealed (`secrets` rows bound to
//! their IDs), opened only to answer a node of the role that needs one, and
//! never returned by the API.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tundra_api::SecretId;
use tundra_api::catalog::ImageStatus;
use tundra_api::clusters::{
    Cluster, ClusterAuthority, ClusterBundle, ClusterCreate, ClusterCredentials, ClusterJoin, ClusterKind,
    ClusterReport, ClusterTemplate, ClusterTemplateCreate, ClusterUpdate, GroupRole, JoinOutcome, MemberState,
    NodeGroup,
};
use tundra_api::nodes::{Node, NodeNetworkRequest};
use tundra_api::{NetworkId, NodeId, ProjectId};
use tundra_engine::clusters::{self as rules, Member, Secrets};
use tundra_store::{Actor, ClusterRecord, MemberRecord, NewCluster, NewClusterSecrets, NewClusterTemplate};

use super::REMOVED;
use crate::certs::{TEN_YEARS, cert_error, random_serial, seconds_since_epoch, valid_between};
use crate::error::{Error, Result};
use crate::fabric::binding;
use crate::handle::Conductor;
use crate::secrets::Plaintext;

fn refused((pointer, detail): rules::Refusal) -> Error {
    Error::invalid(&pointer, detail)
}

/// A template: a k3s one names an active bundle image its scope can use;
/// a Swarm one names none (Docker comes with the node image).
pub async fn create_template(c: &Conductor, actor: &Actor, r: ClusterTemplateCreate) -> Result<ClusterTemplate> {
    if r.version == 0 {
        return Err(Error::invalid("/version", "versions start at 1"));
    }
    match (r.kind, r.bundle_image_id) {
        (ClusterKind::Kubernetes, None) => {
            return Err(Error::invalid(
                "/bundle_image_id",
                "a kubernetes template needs the k3s air-gap bundle: upload it as an image and name it here",
            ));
        }
        (ClusterKind::Swarm, Some(_)) => {
            return Err(Error::invalid(
                "/bundle_image_id",
                "a swarm template takes Docker from the node image; remove bundle_image_id",
            ));
        }
        (ClusterKind::Kubernetes, Some(id)) => {
            let image =
                c.store().image(id).await.ok().filter(|i| i.project_id.is_none() || i.project_id == r.project_id);
            let image = image.ok_or_else(|| {
                Error::invalid("/bundle_image_id", format!("no image {id} is public or in the template's project"))
            })?;
            if image.status != ImageStatus::Active {
                return Err(Error::invalid(
                    "/bundle_image_id",
                    format!("image {} is {}; wait until it is active", image.name, image.status.as_str()),
                ));
            }
        }
        (ClusterKind::Swarm, None) => {}
    }
    let t = NewClusterTemplate {
        project_id: r.project_id,
        name: r.name,
        version: r.version,
        kind: r.kind,
        description: r.description,
        bundle_image_id: r.bundle_image_id,
    };
    Ok(c.store().create_cluster_template(actor, t).await?)
}

/// The groups' references: flavors and images the project may use (images
/// active), networks it may attach (as a node's would be checked), shares
/// it may mount.
async fn check_refs(c: &Conductor, project: ProjectId, groups: &[NodeGroup]) -> Result<()> {
    for (i, g) in groups.iter().enumerate() {
        let at = |f: &str| format!("/groups/{i}/{f}");
        let flavor = c.store().flavor(g.flavor_id).await.ok().filter(|f| f.project_id.is_none_or(|p| p == project));
        if flavor.is_none() {
            return Err(Error::invalid(
                &at("flavor_id"),
                format!("no flavor {} is public or in the cluster's project", g.flavor_id),
            ));
        }
        let image = c.store().image(g.image_id).await.ok().filter(|x| x.project_id.is_none_or(|p| p == project));
        let image = image.ok_or_else(|| {
            Error::invalid(&at("image_id"), format!("no image {} is public or in the cluster's project", g.image_id))
        })?;
        if image.status != ImageStatus::Active {
            return Err(Error::invalid(
                &at("image_id"),
                format!("image {} is {}; wait until it is active", image.name, image.status.as_str()),
            ));
        }
        binding::resolve(c, project, None, &network_requests(&g.networks)).await.map_err(|e| match e {
            Error::Invalid { pointer, detail } => Error::Invalid { pointer: format!("/groups/{i}{pointer}"), detail },
            other => other,
        })?;
        crate::shares::flows::check_mountable(c, project, &g.shares).await.map_err(|e| match e {
            Error::Invalid { pointer, detail } => Error::Invalid { pointer: format!("/groups/{i}{pointer}"), detail },
            other => other,
        })?;
    }
    Ok(())
}

/// Networks (a group's, an appliance role's) as a node's request.
pub fn network_requests(networks: &[NetworkId]) -> Vec<NodeNetworkRequest> {
    networks.iter().map(|n| NodeNetworkRequest { network_id: Some(*n), port_id: None }).collect()
}

/// Why a cluster cannot be made on a site without the metadata service.
pub const NO_METADATA: &str = "clusters need the metadata service (a node's cluster agent asks it what to do): \
     the site admin configures a provisioning network with a node pool in tundrad's configuration";

/// A cluster: its template usable by the project, its groups checked, its
/// k3s tokens minted and sealed. Its nodes are made by the reconciler.
pub async fn create(c: &Conductor, actor: &Actor, r: ClusterCreate) -> Result<Cluster> {
    let project = r.project_id;
    if c.metadata_url().is_none() {
        return Err(Error::conflict(NO_METADATA));
    }
    let t = c.store().cluster_template(r.template_id).await.ok().filter(|t| t.project_id.is_none_or(|p| p == project));
    let t = t.ok_or_else(|| {
        Error::invalid("/template_id", format!("no cluster template {} is public or in this project", r.template_id))
    })?;
    rules::check_cluster_name(&r.name).map_err(refused)?;
    rules::check_groups(&r.name, &r.groups).map_err(refused)?;
    check_refs(c, project, &r.groups).await?;
    if let Some(k) = r.keypair_id
        && !c.store().keypair(k).await.is_ok_and(|kp| kp.project_id == project)
    {
        return Err(Error::invalid("/keypair_id", format!("no keypair {k} in the cluster's project")));
    }
    rules::check_labels(t.kind, &r.labels).map_err(refused)?;
    if t.kind == ClusterKind::Kubernetes {
        // Its nodes install k3s from the template's bundle.
        bundle_of(c, &t).await.map_err(|e| match e {
            Error::Failed(why) => Error::invalid("/template_id", why),
            other => other,
        })?;
    }
    let (control_plane, worker, client_ca) = match t.kind {
        ClusterKind::Kubernetes => (Some(mint(c)?), Some(mint(c)?), Some(client_ca(c, project, &r.name)?)),
        ClusterKind::Swarm => (None, None, None),
    };
    let new = NewCluster {
        project_id: project,
        name: r.name,
        template_id: t.id,
        kind: t.kind,
        keypair_id: r.keypair_id,
        groups: r.groups,
        labels: r.labels,
    };
    let secrets = NewClusterSecrets { control_plane, worker, ssh_ca: ssh_ca(c)?, client_ca };
    let out = c.store().create_cluster(actor, new, secrets).await?;
    c.wakes().clusters.notify_one();
    Ok(out)
}

/// The user the cluster's SSH certificates are for (made on every node,
/// in the `docker` group).
pub const ADMIN_USER: &str = "tundra-admin";

/// An ed25519 key from 32 fresh random bytes.
fn ed25519() -> Result<ssh_key::PrivateKey> {
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| Error::Internal("no randomness for an SSH key".into()))?;
    Ok(ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed)))
}

/// A cluster's SSH certificate authority: its private key sealed, and its
/// public key (OpenSSH), which the nodes trust.
fn ssh_ca(c: &Conductor) -> Result<(tundra_store::SecretRecord, String)> {
    let ca = ed25519()?;
    let private = ca.to_openssh(ssh_key::LineEnding::LF).map_err(|e| Error::Internal(format!("an SSH key: {e}")))?;
    let public = ca.public_key().to_openssh().map_err(|e| Error::Internal(format!("an SSH key: {e}")))?;
    let sealed = c.keyring().seal(SecretId::generate(), &Plaintext(private.as_bytes().to_vec()));
    Ok((sealed, public))
}

/// The parameters of a cluster's client CA (Kubernetes). The same each
/// time for one cluster: tundrad signs with the sealed key and these alone.
fn client_ca_params(project: ProjectId, cluster: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, format!("tundra-client-ca {project}/{cluster}"));
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    p
}

/// A Kubernetes cluster's client CA, ECDSA P-256, for ten years: its key
/// sealed, its certificate (PEM). The bootstrap server installs both
/// before k3s first starts, so k3s trusts the kubeconfigs tundrad signs.
fn client_ca(c: &Conductor, project: ProjectId, cluster: &str) -> Result<(tundra_store::SecretRecord, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let now = seconds_since_epoch();
    let mut p = client_ca_params(project, cluster);
    valid_between(&mut p, now.saturating_sub(60), now + TEN_YEARS);
    let cert = p.self_signed(&key).map_err(cert_error)?;
    let sealed = c.keyring().seal(SecretId::generate(), &Plaintext(key.serialize_pem().into_bytes()));
    Ok((sealed, cert.pem()))
}

/// Fresh credentials for cluster `cl`'s control plane, valid `ttl`, made
/// for [`ADMIN_USER`] and signed by the cluster's own authority (Swarm: an
/// SSH user certificate; Kubernetes: an X.509 client certificate in group
/// `system:masters`, with a kubeconfig). Nothing of them is kept.
pub async fn credentials(
    c: &Conductor,
    actor: &Actor,
    cl: &Cluster,
    ttl: std::time::Duration,
) -> Result<ClusterCredentials> {
    let rec = c.store().cluster_record(cl.id).await?;
    if rec.cluster.status == tundra_api::clusters::ClusterStatus::Deleting {
        return Err(Error::conflict(format!("cluster {} is being deleted", cl.name)));
    }
    let address = match &rec.cluster.endpoint {
        Some(e) => e.clone(),
        None => {
            return Err(Error::conflict(format!(
                "cluster {} has no control plane answering yet ({}); ask again once it is active",
                cl.name,
                cl.status.as_str()
            )));
        }
    };
    let out = match cl.kind {
        ClusterKind::Swarm => {
            let host = address.rsplit_once(':').map(|(a, _)| a.to_string()).unwrap_or(address);
            ssh_credentials(c, actor, &rec, &host, ttl).await?
        }
        ClusterKind::Kubernetes => kubeconfig(c, actor, &rec, &address, ttl).await?,
    };
    tracing::info!(cluster = %cl.name, who = %actor.name, ttl_s = ttl.as_secs(), "cluster credentials issued");
    Ok(out)
}

/// A Kubernetes client certificate and its kubeconfig.
async fn kubeconfig(
    c: &Conductor,
    actor: &Actor,
    rec: &ClusterRecord,
    endpoint: &str,
    ttl: std::time::Duration,
) -> Result<ClusterCredentials> {
    let cl = &rec.cluster;
    let server_ca = cl.ca_certificate.clone().ok_or_else(|| {
        Error::conflict(format!(
            "cluster {}'s bootstrap server has not reported the API server's CA yet; ask again once it is active",
            cl.name
        ))
    })?;
    let ca_key = open(c, rec.client_ca_secret)
        .await?
        .ok_or_else(|| Error::Internal(format!("cluster {} has no client CA", cl.name)))?;
    let ca_key = rcgen::KeyPair::from_pem(&ca_key).map_err(cert_error)?;
    let ca_params = client_ca_params(cl.project_id, &cl.name);
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let now = seconds_since_epoch();
    // A minute of slack for clocks a little behind.
    let (after, before) = (now.saturating_sub(60), now + ttl.as_secs());
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, ADMIN_USER);
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
    // Who asked, for whoever reads the certificate later.
    p.distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, format!("tundra {} by {}", cl.project_id, actor.name));
    valid_between(&mut p, after, before);
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(random_serial()?);
    let cert = p.signed_by(&key, &issuer).map_err(cert_error)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let user = format!("{ADMIN_USER}@{}", cl.name);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cl.name, "cluster": {"server": endpoint, "certificate-authority-data": b64(&server_ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(&cert_pem), "client-key-data": b64(&key_pem)}}],
        "contexts": [{"name": cl.name, "context": {"cluster": cl.name, "user": user}}],
        "current-context": cl.name,
        "preferences": {},
    });
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(before);
    Ok(ClusterCredentials {
        endpoint: endpoint.to_string(),
        user: ADMIN_USER.into(),
        private_key: key_pem,
        certificate: cert_pem,
        ca_certificate: Some(server_ca),
        kubeconfig: Some(serde_json::to_string_pretty(&config).map_err(|e| Error::Internal(e.to_string()))?),
        expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
    })
}

/// An SSH key and a user certificate for `ADMIN_USER@host` (Swarm).
async fn ssh_credentials(
    c: &Conductor,
    actor: &Actor,
    rec: &ClusterRecord,
    address: &str,
    ttl: std::time::Duration,
) -> Result<ClusterCredentials> {
    let cl = &rec.cluster;
    let ca = open(c, rec.ssh_ca_secret)
        .await?
        .ok_or_else(|| Error::Internal(format!("cluster {} has no SSH authority", cl.name)))?;
    let ca = ssh_key::PrivateKey::from_openssh(&ca)
        .map_err(|e| Error::Internal(format!("the cluster's SSH authority: {e}")))?;
    let key = ed25519()?;
    let now = seconds_since_epoch();
    // A minute of slack for clocks a little behind.
    let (after, before) = (now.saturating_sub(60), now + ttl.as_secs());
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Internal("no randomness for a certificate".into()))?;
    let bad = |e: ssh_key::Error| Error::Internal(format!("signing a certificate: {e}"));
    let mut b =
        ssh_key::certificate::Builder::new(nonce.to_vec(), key.public_key().clone(), after, before).map_err(bad)?;
    b.cert_type(ssh_key::certificate::CertType::User).map_err(bad)?;
    b.key_id(format!("tundra {} {} by {}", cl.project_id, cl.name, actor.name)).map_err(bad)?;
    b.valid_principal(ADMIN_USER).map_err(bad)?;
    b.extension("permit-pty", "").map_err(bad)?;
    let cert = b.sign(&ca).map_err(bad)?;
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(before);
    Ok(ClusterCredentials {
        endpoint: format!("ssh://{ADMIN_USER}@{address}"),
        user: ADMIN_USER.into(),
        private_key: key.to_openssh(ssh_key::LineEnding::LF).map_err(bad)?.to_string(),
        certificate: cert.to_openssh().map_err(bad)?,
        ca_certificate: None,
        kubeconfig: None,
        expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
    })
}

/// A fresh k3s token, sealed under a new secret ID.
fn mint(c: &Conductor) -> Result<tundra_store::SecretRecord> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::Internal("no randomness for a join token".into()))?;
    let token = rules::k3s_token(&random);
    Ok(c.keyring().seal(SecretId::generate(), &Plaintext(token.into_bytes())))
}

/// Change a cluster in place: groups (within `check_group_change`), labels,
/// and members to replace (one per group at a time, none already leaving).
pub async fn update(
    c: &Conductor,
    actor: &Actor,
    cur: &Cluster,
    r: ClusterUpdate,
    if_match: Option<i64>,
) -> Result<Cluster> {
    let groups = match r.groups {
        Some(g) => {
            rules::check_groups(&cur.name, &g).map_err(refused)?;
            rules::check_group_change(&cur.groups, &g).map_err(refused)?;
            check_refs(c, cur.project_id, &g).await?;
            g
        }
        None => cur.groups.clone(),
    };
    let mut per_group = BTreeMap::new();
    for (i, name) in r.replace.iter().enumerate() {
        let at = format!("/replace/{i}");
        let m = cur
            .members
            .iter()
            .find(|m| &m.name == name)
            .ok_or_else(|| Error::invalid(&at, format!("cluster {} has no member {name:?}", cur.name)))?;
        if m.state == MemberState::Leaving {
            return Err(Error::invalid(&at, format!("{name} is already leaving")));
        }
        let size = groups.iter().find(|g| g.name == m.group).map(|g| g.count).unwrap_or(0);
        let joined_once = cur_joined(c, cur, name).await?;
        if m.role == GroupRole::ControlPlane && size < 3 && joined_once {
            return Err(Error::invalid(
                &at,
                format!(
                    "{name} is the control plane's only node and the cluster runs through it; raise the control plane's count to 3 first, so a quorum survives while it is replaced (if it is dead, the cluster went with it: delete the cluster and make it again)"
                ),
            ));
        }
        if let Some(other) = cur.members.iter().find(|o| o.group == m.group && o.state == MemberState::Leaving) {
            return Err(Error::invalid(
                &at,
                format!(
                    "group {} is still replacing {}; replace one node of a group at a time so it keeps its count minus one",
                    m.group, other.name
                ),
            ));
        }
        if per_group.insert(m.group.clone(), name).is_some() {
            return Err(Error::invalid(
                &at,
                format!("two members of group {} at once; replace one node of a group at a time", m.group),
            ));
        }
    }
    let labels = r.labels.unwrap_or_else(|| cur.labels.clone());
    rules::check_labels(cur.kind, &labels).map_err(refused)?;
    let mut out = c.store().update_cluster(actor, cur.id, groups, labels, if_match).await?;
    if !r.replace.is_empty() {
        c.store().replace_cluster_members(actor, cur.id, &r.replace).await?;
        out = c.store().cluster(cur.id).await?;
    }
    c.wakes().clusters.notify_one();
    Ok(out)
}

/// Whether member `name` of `cur` has ever joined.
async fn cur_joined(c: &Conductor, cur: &Cluster, name: &str) -> Result<bool> {
    Ok(c.store().cluster_members(cur.id).await?.iter().any(|m| m.name == name && m.joined))
}

/// Start deleting a cluster: the reconciler deletes its nodes (each
/// machine cleaned), then the cluster.
pub async fn delete(c: &Conductor, actor: &Actor, cur: &Cluster) -> Result<Cluster> {
    let out = c.store().delete_cluster(actor, cur.id).await?;
    c.wakes().clusters.notify_one();
    Ok(out)
}

/// Refuse to delete a cluster's node behind its back: the cluster would
/// make it again, or lose its quorum.
pub async fn check_node_removable(c: &Conductor, node: NodeId) -> Result<()> {
    if let Some((m, cluster)) = c.store().member_of_node(node).await? {
        return Err(Error::conflict(format!(
            "node {} belongs to cluster {cluster} (group {}); lower the group's count or replace the node through the cluster",
            m.name, m.group
        )));
    }
    Ok(())
}

/// A node's addresses by network name, provisioning first: what
/// `tundra_engine::clusters::cluster_address` chooses from.
pub async fn node_addresses(c: &Conductor, n: &Node) -> Result<Vec<(String, Ipv4Addr)>> {
    let mut out: Vec<(String, Ipv4Addr)> =
        n.addresses.iter().filter_map(|a| Some((a.network.clone(), a.address.as_deref()?.parse().ok()?))).collect();
    for p in c.store().node_ports(n.id).await? {
        let net = c.store().network(p.network_id).await?;
        if let Some(ip) = p.fixed_ips.iter().find_map(|f| f.address.as_deref()?.parse().ok()) {
            out.push((net.name, ip));
        }
    }
    Ok(out)
}

/// The address node `n` of `group` carries cluster traffic on.
pub async fn cluster_address(c: &Conductor, n: &Node, group: Option<&NodeGroup>) -> Result<Ipv4Addr> {
    let net = match group.and_then(|g| g.cluster_network_id) {
        Some(id) => Some(c.store().network(id).await?.name),
        None => None,
    };
    let addrs = node_addresses(c, n).await?;
    rules::cluster_address(&n.name, net.as_deref(), &addrs, "provisioning").map_err(Error::Failed)
}

/// The engine's view of a member (its node's status beside it).
pub fn member(m: &MemberRecord, node: Option<&Node>) -> Member {
    let failed = m.state == MemberState::Failed;
    Member {
        name: m.name.clone(),
        group: m.group.clone(),
        role: m.role,
        index: m.index,
        node: node.map(|n| n.status).unwrap_or(tundra_api::nodes::NodeStatus::Building),
        node_reason: node.and_then(|n| n.status_reason.clone()),
        state: m.state,
        join_error: if failed || m.state == MemberState::Deploying { m.reason.clone() } else { None },
        joined: m.joined,
    }
}

/// One of a cluster's sealed secrets (a join token, an authority's key), opened.
async fn open(c: &Conductor, id: Option<SecretId>) -> Result<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    let p =
        c.keyring().get(c.store(), id).await.map_err(|e| Error::Internal(format!("a cluster's sealed secret: {e}")))?;
    Ok(Some(String::from_utf8_lossy(&p.0).into_owned()))
}

/// What `n`'s cluster agent is told, or `None` when `n` belongs to no cluster.
pub async fn join(c: &Conductor, n: &Node) -> Result<Option<ClusterJoin>> {
    let Some((me, _)) = c.store().member_of_node(n.id).await? else { return Ok(None) };
    let rec = c.store().cluster_record(me.cluster_id).await?;
    let cl = &rec.cluster;
    let members = c.store().cluster_members(cl.id).await?;
    let views: Vec<Member> = members.iter().map(|m| member(m, None)).collect();
    let group = cl.groups.iter().find(|g| g.name == me.group);
    let address = cluster_address(c, n, group).await?;
    let boot = rules::bootstrap(rec.bootstrap.as_deref(), &views).map(str::to_string);
    let boot_address = match boot.as_deref().and_then(|b| members.iter().find(|m| m.name == b)) {
        Some(bm) if bm.name == me.name => Some(address),
        Some(bm) => match bm.node_id {
            Some(id) => match c.store().node(id).await {
                Ok(bn) => {
                    let bg = cl.groups.iter().find(|g| g.name == bm.group);
                    cluster_address(c, &bn, bg).await.ok()
                }
                Err(_) => None,
            },
            None => None,
        },
        None => None,
    };
    let secrets =
        Secrets { control_plane: open(c, rec.control_plane_secret).await?, worker: open(c, rec.worker_secret).await? };
    let plan = rules::join_plan(
        cl.kind,
        &member(&me, Some(n)),
        boot.as_deref().unwrap_or(""),
        address,
        boot_address,
        &secrets,
    );
    // The bootstrap node drains and removes the members leaving after they joined.
    let remove = if plan.bootstrap { to_remove(&members, &me.name) } else { Vec::new() };
    let (bundle, client_ca) = match cl.kind {
        ClusterKind::Swarm => (None, None),
        ClusterKind::Kubernetes => {
            let t = c.store().cluster_template(cl.template_id).await?;
            let image = bundle_of(c, &t).await?;
            let bundle = ClusterBundle {
                file: BUNDLE_FILE.into(),
                sha256: image.raw_sha256.unwrap_or(image.sha256),
                size_bytes: image.size_bytes.unwrap_or(0),
            };
            // The client CA goes to the server that makes the cluster, and
            // only before it exists: the other servers get it from k3s.
            let first = plan.bootstrap && !members.iter().any(|m| m.joined);
            let ca = match (first, rec.client_ca_secret, &rec.client_ca_cert) {
                (true, Some(id), Some(cert)) => Some(ClusterAuthority {
                    certificate: cert.clone(),
                    key: open(c, Some(id)).await?.unwrap_or_default(),
                }),
                _ => None,
            };
            (Some(bundle), ca)
        }
    };
    let k3s_config = rules::k3s_config(&plan, &me.name, &cl.labels, &secrets);
    Ok(Some(ClusterJoin {
        cluster: cl.name.clone(),
        kind: plan.kind,
        node: me.name.clone(),
        role: plan.role,
        bootstrap: plan.bootstrap,
        address: plan.address.to_string(),
        join_address: plan.join_address.map(|a| a.to_string()),
        secret: plan.secret,
        labels: cl.labels.clone(),
        remove,
        bundle,
        k3s_config,
        client_ca,
    }))
}

/// The file under the metadata service a k3s node fetches its bundle as.
pub const BUNDLE_FILE: &str = "tundra_cluster_bundle";

/// A Kubernetes template's bundle image, which must be active.
async fn bundle_of(c: &Conductor, t: &ClusterTemplate) -> Result<tundra_api::catalog::Image> {
    let id = t
        .bundle_image_id
        .ok_or_else(|| Error::Failed(format!("template {} version {} names no k3s bundle", t.name, t.version)))?;
    let image = c.store().image(id).await?;
    if image.status != ImageStatus::Active {
        return Err(Error::Failed(format!(
            "template {}'s k3s bundle (image {}) is {}; it must be active",
            t.name,
            image.name,
            image.status.as_str()
        )));
    }
    Ok(image)
}

/// Where the bundle node `n` asks for is kept, when `n` is a node of a
/// Kubernetes cluster.
pub async fn bundle_path(c: &Conductor, n: &Node) -> Result<Option<std::path::PathBuf>> {
    let Some((me, _)) = c.store().member_of_node(n.id).await? else { return Ok(None) };
    let cl = c.store().cluster_record(me.cluster_id).await?.cluster;
    if cl.kind != ClusterKind::Kubernetes {
        return Ok(None);
    }
    let t = c.store().cluster_template(cl.template_id).await?;
    let image = bundle_of(c, &t).await?;
    Ok(Some(crate::images::raw_path(c, image.id)))
}

/// Leaving members the control plane still has: they joined once, and are
/// not reported removed yet (never the asking node itself).
pub fn to_remove(members: &[MemberRecord], asking: &str) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.state == MemberState::Leaving && m.joined && m.reason.as_deref() != Some(REMOVED))
        .filter(|m| m.name != asking)
        .map(|m| m.name.clone())
        .collect()
}

const MAX_REPORTED_ERROR: usize = 2000;

/// A node's cluster agent's report: its own outcome; from the bootstrap
/// node also Swarm's tokens (sealed), the members the control plane sees,
/// and those it removed.
pub async fn report(c: &Conductor, n: &Node, r: ClusterReport) -> Result<()> {
    let Some((me, _)) = c.store().member_of_node(n.id).await? else {
        return Err(Error::NotFound { noun: "cluster of node", id: n.name.clone() });
    };
    let rec = c.store().cluster_record(me.cluster_id).await?;
    let members = c.store().cluster_members(rec.cluster.id).await?;
    let views: Vec<Member> = members.iter().map(|m| member(m, None)).collect();
    let is_bootstrap = rules::bootstrap(rec.bootstrap.as_deref(), &views) == Some(me.name.as_str());
    let bootstrap_only = r.seen.is_some()
        || !r.removed.is_empty()
        || r.manager_token.is_some()
        || r.worker_token.is_some()
        || r.ca_certificate.is_some();
    if bootstrap_only && !is_bootstrap {
        tracing::warn!(node = %n.name, cluster = %rec.cluster.name, "a cluster report only the bootstrap node may send; refused");
        return Err(Error::invalid("", "only the cluster's bootstrap node reports tokens, members and removals"));
    }
    // Every part of the report is checked before any is written: a report
    // the agent sends again unchanged must not be half taken.
    let mut tokens = Vec::new();
    for (role, token) in [(GroupRole::ControlPlane, r.manager_token), (GroupRole::Worker, r.worker_token)] {
        let Some(t) = token else { continue };
        let current = match role {
            GroupRole::ControlPlane => rec.control_plane_secret,
            GroupRole::Worker => rec.worker_secret,
        };
        let kept = open(c, current).await?;
        if kept.as_deref() == Some(t.as_str()) {
            continue;
        }
        if rec.cluster.kind == ClusterKind::Kubernetes {
            // Only k3s's full form of the token tundrad minted replaces it
            // (what is kept may already be a full form: its password part).
            let minted = kept.as_deref().map(rules::k3s_minted).unwrap_or_default();
            if !rules::is_full_k3s_token(&t, minted, role) {
                tracing::warn!(node = %n.name, cluster = %rec.cluster.name, "a k3s token that is not the minted one's full form; refused");
                let (at, user) = match role {
                    GroupRole::ControlPlane => ("/manager_token", "server"),
                    GroupRole::Worker => ("/worker_token", "node"),
                };
                return Err(Error::invalid(
                    at,
                    format!(
                        "not the full form (K10<CA sha256>::{user}:<token>) of the token tundrad minted for this cluster"
                    ),
                ));
            }
        }
        tokens.push((role, c.keyring().seal(current.unwrap_or_else(SecretId::generate), &Plaintext(t.into_bytes()))));
    }
    let ca = match &r.ca_certificate {
        None => None,
        Some(pem) => {
            let pem = pem.trim();
            if rec.cluster.kind != ClusterKind::Kubernetes
                || !pem.starts_with("-----BEGIN CERTIFICATE-----")
                || !pem.ends_with("-----END CERTIFICATE-----")
                || pem.len() > 16 * 1024
            {
                return Err(Error::invalid(
                    "/ca_certificate",
                    "a Kubernetes API server's CA certificate, PEM, is expected",
                ));
            }
            Some(format!("{pem}\n"))
        }
    };
    let mut changed = false;
    let store = c.store();
    // A member the reconciler moved meanwhile (deploying → joining) is
    // told to report again, rather than losing the report.
    let me = &me;
    let lost = |to: MemberState| async move {
        let now = store.cluster_members(rec.cluster.id).await?.into_iter().find(|m| m.name == me.name);
        match now {
            Some(m) if m.state != to && m.state != MemberState::Leaving && m.state != me.state => {
                Err(Error::conflict(format!("member {} changed while it reported; report again", me.name)))
            }
            _ => Ok(()),
        }
    };
    match r.outcome {
        Some(JoinOutcome::Joined) => {
            let done = store
                .set_cluster_member(rec.cluster.id, &me.name, me.state, Some(n.id), MemberState::Joined, None)
                .await?;
            if !done {
                lost(MemberState::Joined).await?;
            }
            changed |= done;
        }
        Some(JoinOutcome::Failed) => {
            let mut why = r.error.unwrap_or_else(|| "no reason reported".into());
            if why.len() > MAX_REPORTED_ERROR {
                let cut = (0..=MAX_REPORTED_ERROR).rev().find(|i| why.is_char_boundary(*i)).unwrap_or(0);
                why.truncate(cut);
            }
            let done = store
                .set_cluster_member(rec.cluster.id, &me.name, me.state, Some(n.id), MemberState::Failed, Some(&why))
                .await?;
            if !done {
                lost(MemberState::Failed).await?;
            }
            changed |= done;
        }
        None => {}
    }
    // Tokens and the CA, checked before anything of the report is written.
    for (role, sealed) in tokens {
        c.store().set_cluster_secret(rec.cluster.id, role, &sealed).await?;
        changed = true;
    }
    if let Some(pem) = &ca {
        changed |= store.set_cluster_ca(rec.cluster.id, pem).await?;
    }
    if let Some(seen) = &r.seen {
        changed |= store.cluster_seen(rec.cluster.id, seen).await?;
    }
    for name in &r.removed {
        if let Some(m) = members.iter().find(|m| &m.name == name && m.state == MemberState::Leaving) {
            let leaving = MemberState::Leaving;
            changed |=
                store.set_cluster_member(rec.cluster.id, name, leaving, m.node_id, leaving, Some(REMOVED)).await?;
        }
    }
    if changed {
        c.wakes().clusters.notify_one();
    }
    Ok(())
}
