//! A Swarm cluster through the conductor's flows and reconcilers, the test
//! playing the machines' agents (as in `flows.rs`) and the nodes' cluster
//! agents (their join plans and reports, as `tundra-cluster.py` sends
//! them): made, judged active only once the control plane sees every node
//! ready, a worker failing and replaced, scaled down through the control
//! plane's removal, and deleted with every machine cleaned. The lab's
//! acceptance test runs the same with real Docker.

use std::collections::BTreeMap;

use serde_json::json;
use tundra_api::agent::Command;
use tundra_api::clusters::{
    ClusterCreate, ClusterKind, ClusterReport, ClusterStatus, ClusterTemplateCreate, ClusterUpdate, GroupPlacement,
    GroupRole, JoinOutcome, MemberState, NodeGroup,
};
use tundra_api::machines::ProvisionState;
use tundra_api::nodes::{Node, NodeCreate, NodeStatus};
use tundra_conductor::clusters::{flows, reconcile as clusters};
use tundra_conductor::machines::actions::Action;
use tundra_conductor::nodes::{placement, reconcile as nodes};
use tundra_engine::machine_states::Event;
use tundra_store::{Actor, NodeStep};

use crate::flows::{World, erased, world};

const MACS: [&str; 6] = [
    "52:54:00:00:c1:01",
    "52:54:00:00:c1:02",
    "52:54:00:00:c1:03",
    "52:54:00:00:c1:04",
    "52:54:00:00:c1:05",
    "52:54:00:00:c1:06",
];

fn inventory(mac: &str) -> serde_json::Value {
    json!({
        "cpus": 8, "memory_mib": 16384, "serial": mac,
        "disks": [{"name": "vda", "size_bytes": 1_073_741_824u64, "rotational": false}],
        "nics": [{"mac": mac}],
        "gpus": [],
    })
}

/// `n` machines made available the real way (manage, inspect, clean).
pub(crate) async fn machines(w: &World, n: usize) {
    for (k, mac) in MACS.iter().take(n).enumerate() {
        let m = w.enroll(&format!("cm{k}"), mac).await;
        for (action, details) in
            [(Event::Manage, None), (Event::Inspect, Some(inventory(mac))), (Event::Provide, Some(erased()))]
        {
            let op = w.act(m.id, Action::Verb(action)).await;
            if let Some(d) = details {
                w.agent(mac, d).await;
            }
            assert_eq!(w.wait_op(op).await.error, None, "{action:?}");
        }
    }
}

/// Each machine now deploying gets its image written, as its agent would.
pub(crate) async fn finish_deploys(w: &World) {
    for m in w.c.store().all_machines().await.unwrap() {
        if matches!(m.provision_state, ProvisionState::Deploying | ProvisionState::DeployWait) {
            let op = m.operation_id.unwrap();
            let mac = m.interfaces[0].mac.clone();
            let cmd = w.agent(&mac, json!({"bytes": 16})).await;
            assert!(matches!(cmd, Command::WriteImage { .. }), "{cmd:?}");
            assert_eq!(w.wait_op(op).await.error, None);
        }
    }
}

/// Each machine being cleaned is erased, as its agent would.
pub(crate) async fn finish_cleaning(w: &World) {
    nodes::once(&w.c).await.unwrap();
    for m in w.c.store().all_machines().await.unwrap() {
        if matches!(m.provision_state, ProvisionState::Deleting | ProvisionState::Cleaning | ProvisionState::CleanWait)
        {
            let op = m.operation_id.unwrap();
            let cmd = w.agent(&m.interfaces[0].mac, erased()).await;
            assert!(matches!(cmd, Command::Erase { .. }), "{cmd:?}");
            assert_eq!(w.wait_op(op).await.error, None);
        }
    }
    nodes::once(&w.c).await.unwrap();
}

pub(crate) async fn node(w: &World, name: &str) -> Node {
    w.c.store()
        .all_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

async fn report(w: &World, name: &str, r: ClusterReport) -> Result<(), tundra_conductor::Error> {
    flows::report(&w.c, &node(w, name).await, r).await
}

fn joined() -> ClusterReport {
    ClusterReport { outcome: Some(JoinOutcome::Joined), ..Default::default() }
}

fn seen(names: &[&str]) -> Option<BTreeMap<String, bool>> {
    Some(names.iter().map(|n| (n.to_string(), true)).collect())
}

async fn pass(w: &World) -> tundra_api::clusters::Cluster {
    nodes::once(&w.c).await.unwrap();
    clusters::once(&w.c).await.unwrap();
    let all = w
        .c
        .store()
        .list_clusters(&tundra_store::ListParams { limit: 10, ..Default::default() }, &tundra_store::Visibility::All)
        .await
        .unwrap();
    let id = all.items.first().expect("the cluster").id;
    w.c.store().cluster(id).await.unwrap()
}

#[tokio::test]
async fn a_swarm_cluster_is_judged_by_its_control_plane_scaled_and_deleted() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 4).await;
    let project = store.create_project(&svc, "p", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with docker".to_vec()).await;

    // Templates: k3s needs its bundle, Swarm refuses one; versions are taken once.
    let tpl = |kind, version, bundle| ClusterTemplateCreate {
        project_id: None,
        name: "docker".into(),
        version,
        kind,
        description: String::new(),
        bundle_image_id: bundle,
    };
    let e = flows::create_template(&w.c, &svc, tpl(ClusterKind::Kubernetes, 1, None)).await.unwrap_err();
    assert!(e.to_string().contains("/bundle_image_id") && e.to_string().contains("air-gap bundle"), "{e}");
    let e = flows::create_template(&w.c, &svc, tpl(ClusterKind::Swarm, 1, Some(img.id))).await.unwrap_err();
    assert!(e.to_string().contains("/bundle_image_id"), "{e}");
    let t = flows::create_template(&w.c, &svc, tpl(ClusterKind::Swarm, 1, None)).await.unwrap();
    let e = flows::create_template(&w.c, &svc, tpl(ClusterKind::Swarm, 1, None)).await.unwrap_err();
    assert!(e.to_string().contains("make version 2"), "{e}");

    let group = |name: &str, role, count| group(&flavor, &img, name, role, count);
    let create = |groups| ClusterCreate {
        project_id: project.id,
        name: "sw".into(),
        template_id: t.id,
        keypair_id: None,
        groups,
        labels: BTreeMap::from([("team".to_string(), "sip".to_string())]),
    };
    // Groups are checked before anything is made.
    for (groups, says) in [
        (vec![group("workers", GroupRole::Worker, 2)], "exactly one group with role control_plane"),
        (vec![group("cp", GroupRole::ControlPlane, 2)], "/groups/0/count"),
        (vec![group("cp", GroupRole::ControlPlane, 1), group("cp", GroupRole::Worker, 1)], "unique"),
    ] {
        let e = flows::create(&w.c, &svc, create(groups)).await.unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    let cl = flows::create(
        &w.c,
        &svc,
        create(vec![group("cp", GroupRole::ControlPlane, 1), group("workers", GroupRole::Worker, 2)]),
    )
    .await
    .unwrap();
    assert_eq!(cl.status, ClusterStatus::Creating);
    // No credentials before a control plane answers.
    let e = flows::credentials(&w.c, &svc, &cl, std::time::Duration::from_secs(600)).await.unwrap_err();
    assert!(e.to_string().contains("no control plane answering yet"), "{e}");

    // The reconciler makes the nodes, named by group and index, with the
    // cluster agent as their user data.
    let c = pass(&w).await;
    let names: Vec<&str> = c.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["sw-cp-1", "sw-workers-1", "sw-workers-2"]);
    assert!(c.members.iter().all(|m| m.state == MemberState::Deploying && m.node_id.is_some()), "{:?}", c.members);
    let ud = store.node_user_data(node(&w, "sw-cp-1").await.id).await.unwrap().unwrap();
    assert!(ud.contains("tundra-cluster http://10.9.0.1:8080/openstack/latest"), "{ud}");
    assert_eq!(c.status, ClusterStatus::Creating);
    assert!(c.status_reason.as_deref().unwrap().contains("sw-workers-2 (deploying)"), "{:?}", c.status_reason);
    // A second pass makes nothing more.
    assert_eq!(pass(&w).await.members.len(), 3);
    assert_eq!(store.all_nodes().await.unwrap().len(), 3);
    // The cluster's nodes are the cluster's to delete.
    let e = flows::check_node_removable(&w.c, node(&w, "sw-workers-1").await.id).await.unwrap_err();
    assert!(e.to_string().contains("belongs to cluster sw"), "{e}");

    finish_deploys(&w).await;
    let c = pass(&w).await;
    assert!(c.members.iter().all(|m| m.state == MemberState::Joining), "{:?}", c.members);

    // The bootstrap manager initialises; the workers wait for its token.
    let boot = flows::join(&w.c, &node(&w, "sw-cp-1").await).await.unwrap().unwrap();
    assert!(boot.bootstrap && boot.secret.is_none() && boot.join_address.is_none(), "{boot:?}");
    assert_eq!(boot.role, GroupRole::ControlPlane);
    assert_eq!(boot.labels["team"], "sip");
    let cp_addr = boot.address.clone();
    let wk = flows::join(&w.c, &node(&w, "sw-workers-1").await).await.unwrap().unwrap();
    assert_eq!((wk.bootstrap, wk.secret.as_deref(), wk.join_address.as_deref()), (false, None, Some(cp_addr.as_str())));
    // Only the bootstrap node reports tokens and members.
    let forged = ClusterReport { worker_token: Some("SWMTKN-forged".into()), ..Default::default() };
    assert!(report(&w, "sw-workers-1", forged).await.is_err());
    report(
        &w,
        "sw-cp-1",
        ClusterReport {
            manager_token: Some("SWMTKN-1-manager".into()),
            worker_token: Some("SWMTKN-1-worker".into()),
            seen: seen(&["sw-cp-1"]),
            ..joined()
        },
    )
    .await
    .unwrap();
    // A worker gets the worker token, never the manager's.
    let wk = flows::join(&w.c, &node(&w, "sw-workers-1").await).await.unwrap().unwrap();
    assert_eq!(wk.secret.as_deref(), Some("SWMTKN-1-worker"));
    for n in ["sw-workers-1", "sw-workers-2"] {
        report(&w, n, joined()).await.unwrap();
    }
    // Every node says it joined, but the control plane has not seen the workers yet.
    let c = pass(&w).await;
    assert_eq!(c.status, ClusterStatus::Creating);
    assert!(c.status_reason.as_deref().unwrap().contains("sw-workers-1 (not yet seen by the control plane)"));
    report(&w, "sw-cp-1", ClusterReport { seen: seen(&["sw-cp-1", "sw-workers-1", "sw-workers-2"]), ..joined() })
        .await
        .unwrap();
    let c = pass(&w).await;
    assert_eq!((c.status, c.status_reason.as_deref()), (ClusterStatus::Active, None));
    assert_eq!(c.endpoint, Some(format!("{cp_addr}:2377")));
    let view = serde_json::to_string(&c).unwrap();
    assert!(!view.contains("SWMTKN"), "no join token in the view: {view}");
    // Short-lived credentials: a fresh key, certified by the cluster's own
    // authority (whose public key the nodes' user data trusts) for
    // tundra-admin only, for the time asked.
    let creds = flows::credentials(&w.c, &svc, &c, std::time::Duration::from_secs(600)).await.unwrap();
    assert_eq!(creds.endpoint, format!("ssh://tundra-admin@{cp_addr}"));
    let cert = ssh_key::Certificate::from_openssh(&creds.certificate).unwrap();
    let key = ssh_key::PrivateKey::from_openssh(&creds.private_key).unwrap();
    assert_eq!(cert.public_key(), key.public_key().key_data(), "the certificate is the key's");
    assert_eq!(cert.valid_principals(), ["tundra-admin"]);
    let ud = store.node_user_data(node(&w, "sw-cp-1").await.id).await.unwrap().unwrap();
    let ca_line = ud.lines().find(|l| l.contains("ssh-ed25519 ")).expect("the authority in the user data");
    let ca = ssh_key::PublicKey::from_openssh(ca_line.split('"').nth(1).unwrap().trim_end_matches("\\n")).unwrap();
    cert.validate([&ca.fingerprint(Default::default())]).expect("signed by the cluster's authority");
    let lifetime = cert.valid_before() - cert.valid_after();
    assert!((600..=660).contains(&lifetime), "{lifetime} s");
    let again = flows::credentials(&w.c, &svc, &c, std::time::Duration::from_secs(600)).await.unwrap();
    assert_ne!(again.private_key, creds.private_key, "a fresh key each time");

    // A worker that fails: degraded, naming it; replaced, the cluster
    // comes back without touching the others.
    let bad = node(&w, "sw-workers-2").await;
    let fail = NodeStep {
        from: bad.status,
        to: NodeStatus::Error,
        reason: Some("deploy failed: its disk vanished".into()),
        release: false,
        operation: None,
        revision: None,
    };
    store.node_step(&svc, bad.id, fail).await.unwrap();
    let c = pass(&w).await;
    assert_eq!(c.status, ClusterStatus::Degraded);
    assert!(c.status_reason.as_deref().unwrap().contains("sw-workers-2: deploy failed"), "{:?}", c.status_reason);
    let others: Vec<_> =
        ["sw-cp-1", "sw-workers-1"].iter().map(|n| c.members.iter().find(|m| m.name == *n).unwrap().clone()).collect();
    // The only manager cannot be replaced (the swarm would lose its quorum).
    let upd = ClusterUpdate { replace: vec!["sw-cp-1".into()], ..Default::default() };
    let e = flows::update(&w.c, &svc, &c, upd, None).await.unwrap_err();
    assert!(e.to_string().contains("/replace/0") && e.to_string().contains("quorum"), "{e}");
    let upd = ClusterUpdate { replace: vec!["sw-workers-2".into()], ..Default::default() };
    flows::update(&w.c, &svc, &c, upd, None).await.unwrap();
    let c = pass(&w).await;
    let names: Vec<(&str, MemberState)> = c.members.iter().map(|m| (m.name.as_str(), m.state)).collect();
    assert!(names.contains(&("sw-workers-3", MemberState::Deploying)), "{names:?}");
    // It had joined: it goes once the manager removed it from the swarm.
    nodes::once(&w.c).await.unwrap();
    assert!(
        store.all_nodes().await.unwrap().iter().any(|n| n.name == "sw-workers-2" && n.status != NodeStatus::Deleting)
    );
    let boot = flows::join(&w.c, &node(&w, "sw-cp-1").await).await.unwrap().unwrap();
    assert_eq!(boot.remove, ["sw-workers-2"], "the manager is asked to remove it");
    report(&w, "sw-cp-1", ClusterReport { removed: vec!["sw-workers-2".into()], ..joined() }).await.unwrap();
    pass(&w).await;
    finish_cleaning(&w).await;
    finish_deploys(&w).await;
    let c = pass(&w).await;
    assert!(!c.members.iter().any(|m| m.name == "sw-workers-2"), "the failed node is gone: {:?}", c.members);
    report(&w, "sw-workers-3", joined()).await.unwrap();
    report(&w, "sw-cp-1", ClusterReport { seen: seen(&["sw-cp-1", "sw-workers-1", "sw-workers-3"]), ..joined() })
        .await
        .unwrap();
    let c = pass(&w).await;
    assert_eq!(c.status, ClusterStatus::Active, "{:?}", c.status_reason);
    for o in &others {
        assert_eq!(c.members.iter().find(|m| m.name == o.name).unwrap().node_id, o.node_id, "{} untouched", o.name);
    }

    // Scale the workers to 1: the newest leaves through the control plane.
    let mut groups = c.groups.clone();
    groups[1].count = 1;
    flows::update(&w.c, &svc, &c, ClusterUpdate { groups: Some(groups), ..Default::default() }, Some(c.revision))
        .await
        .unwrap();
    // A judgement made from the cluster as it was before the change does not
    // stand (a pass that read it just before the PATCH).
    let stale = tundra_store::ClusterJudged {
        revision: c.revision,
        status: ClusterStatus::Active,
        reason: None,
        bootstrap: Some("sw-cp-1".into()),
        endpoint: c.endpoint.clone(),
    };
    assert!(!store.judge_cluster(c.id, &stale).await.unwrap());
    assert_eq!(store.cluster(c.id).await.unwrap().status, ClusterStatus::Updating);
    let c = pass(&w).await;
    assert_eq!(c.status, ClusterStatus::Updating);
    let leaving = c.members.iter().find(|m| m.state == MemberState::Leaving).unwrap();
    assert_eq!(leaving.name, "sw-workers-3");
    // Its node stays until the control plane has drained and removed it.
    assert_eq!(node(&w, "sw-workers-3").await.status, NodeStatus::Active);
    let boot = flows::join(&w.c, &node(&w, "sw-cp-1").await).await.unwrap().unwrap();
    assert_eq!(boot.remove, ["sw-workers-3"]);
    report(
        &w,
        "sw-cp-1",
        ClusterReport { removed: vec!["sw-workers-3".into()], seen: seen(&["sw-cp-1", "sw-workers-1"]), ..joined() },
    )
    .await
    .unwrap();
    pass(&w).await;
    assert_eq!(node(&w, "sw-workers-3").await.status, NodeStatus::Deleting);
    finish_cleaning(&w).await;
    let c = pass(&w).await;
    assert_eq!(c.members.len(), 2, "{:?}", c.members);
    assert_eq!(c.status, ClusterStatus::Active, "{:?}", c.status_reason);

    // Delete: every node goes (machines cleaned), then the cluster.
    flows::delete(&w.c, &svc, &c).await.unwrap();
    pass(&w).await;
    finish_cleaning(&w).await;
    clusters::once(&w.c).await.unwrap();
    clusters::once(&w.c).await.unwrap();
    assert!(store.all_nodes().await.unwrap().is_empty());
    assert!(store.cluster(c.id).await.is_err(), "the cluster is gone");
    for m in store.all_machines().await.unwrap() {
        assert_eq!(m.provision_state, ProvisionState::Available, "{}", m.name);
    }
}

/// What a cluster node runs is read by the real consumers: its user data
/// by `cloud-init schema` (Debian's cloud-init, from scripts/setup.sh), the
/// agent by python3's compiler.
/// `openssl` with `args`: whether it succeeded, and what it said.
fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The k3s path without k3s (no registry ships it; the lab test runs it
/// when a site's bundle is given): each node's plan carries the bundle to
/// fetch and its role's k3s configuration — node IP, token, labels, how it
/// joins — the client CA goes to the first server only, once; the
/// bootstrap server's reports pin the tokens to the cluster's CA and give
/// the API server's CA; and credentials are kubeconfigs whose certificate
/// the cluster's client CA signed, expiring when asked.
#[tokio::test]
async fn a_k3s_cluster_gets_its_bundle_pinned_tokens_and_short_lived_kubeconfigs() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 2).await;
    let project = store.create_project(&svc, "p", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image".to_vec()).await;
    let bundle_bytes = b"a k3s air-gap bundle: k3s and k3s-airgap-images-amd64.tar.zst".to_vec();
    let new = tundra_store::NewImage {
        project_id: None,
        name: "k3s-bundle".into(),
        description: String::new(),
        disk_format: tundra_api::catalog::DiskFormat::Raw,
        sha256: tundra_conductor::secrets::sha256_hex(&bundle_bytes),
        source_url: None,
    };
    let bundle = store.create_image(&svc, new).await.unwrap();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bundle_bytes.clone()))]);
    let bundle = tundra_conductor::images::upload(&w.c, &svc, &bundle, body, None).await.unwrap();
    let t = ClusterTemplateCreate {
        project_id: None,
        name: "k3s".into(),
        version: 1,
        kind: ClusterKind::Kubernetes,
        description: String::new(),
        bundle_image_id: Some(bundle.id),
    };
    let t = flows::create_template(&w.c, &svc, t).await.unwrap();
    let mut req = ClusterCreate {
        project_id: project.id,
        name: "kube".into(),
        template_id: t.id,
        keypair_id: None,
        groups: vec![
            group(&flavor, &img, "cp", GroupRole::ControlPlane, 1),
            group(&flavor, &img, "workers", GroupRole::Worker, 1),
        ],
        labels: BTreeMap::from([("bad key".to_string(), "x".to_string())]),
    };
    // Labels k3s would refuse to start with are refused up front.
    let e = flows::create(&w.c, &svc, req.clone()).await.unwrap_err();
    assert!(e.to_string().contains("/labels/bad key"), "{e}");
    req.labels = BTreeMap::from([("team".to_string(), "radio".to_string())]);
    flows::create(&w.c, &svc, req).await.unwrap();
    pass(&w).await;
    finish_deploys(&w).await;
    let c = pass(&w).await;
    assert!(c.members.iter().all(|m| m.state == MemberState::Joining), "{:?}", c.members);
    let ud = store.node_user_data(node(&w, "kube-workers-1").await.id).await.unwrap().unwrap();
    assert!(ud.contains("ExecStart=/usr/local/bin/k3s agent"), "{ud}");

    let (cp, wk) = (node(&w, "kube-cp-1").await, node(&w, "kube-workers-1").await);
    let boot = flows::join(&w.c, &cp).await.unwrap().unwrap();
    let k = boot.k3s_config.clone().expect("a k3s configuration");
    assert!(boot.bootstrap);
    assert_eq!(k["cluster-init"], true);
    assert_eq!(k["node-ip"], boot.address.as_str());
    assert_eq!(k["node-name"], "kube-cp-1");
    assert_eq!(k["node-label"], json!(["team=radio"]));
    let server_token = k["token"].as_str().unwrap().to_string();
    let agent_token = k["agent-token"].as_str().unwrap().to_string();
    assert!(server_token.starts_with("tundra-k3s-") && agent_token.starts_with("tundra-k3s-"));
    assert_ne!(server_token, agent_token);
    let b = boot.bundle.clone().expect("the bundle to fetch");
    assert_eq!(
        (b.file.as_str(), b.sha256.as_str(), b.size_bytes),
        (flows::BUNDLE_FILE, bundle.sha256.as_str(), bundle_bytes.len() as i64)
    );
    for n in [&cp, &wk] {
        let path = flows::bundle_path(&w.c, n).await.unwrap().expect("a k3s node gets the bundle");
        assert_eq!(std::fs::read(path).unwrap(), bundle_bytes);
    }
    let ca = boot.client_ca.clone().expect("the first server installs the client CA");
    assert!(ca.key.contains("PRIVATE KEY") && ca.certificate.contains("BEGIN CERTIFICATE"));
    // The worker waits: no token goes anywhere before it is pinned to the
    // running cluster's CA.
    let plan = flows::join(&w.c, &wk).await.unwrap().unwrap();
    assert_eq!(plan.k3s_config, None);
    assert!(plan.client_ca.is_none());

    // Reports: only the bootstrap server speaks for the cluster, and only
    // the full forms of the minted tokens replace them.
    let dir = tempfile::tempdir().unwrap();
    let (key, crt) = (dir.path().join("server-ca.key"), dir.path().join("server-ca.crt"));
    let (ok, said) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=k3s-server-ca",
        "-days",
        "2",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    let server_ca = std::fs::read_to_string(&crt).unwrap();
    let e = report(&w, "kube-workers-1", ClusterReport { ca_certificate: Some(server_ca.clone()), ..joined() })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only the cluster's bootstrap node"), "{e}");
    let hash = "5e".repeat(32);
    for bad in [format!("K10{hash}::server:other"), format!("K10{hash}::node:{server_token}")] {
        let e = report(&w, "kube-cp-1", ClusterReport { manager_token: Some(bad), ..joined() }).await.unwrap_err();
        assert!(e.to_string().contains("/manager_token"), "{e}");
    }
    // A refused report is taken not at all: not even its `joined`.
    let c = pass(&w).await;
    assert!(c.members.iter().all(|m| m.state == MemberState::Joining), "{:?}", c.members);
    let full_server = format!("K10{hash}::server:{server_token}");
    let full_agent = format!("K10{hash}::node:{agent_token}");
    let r = ClusterReport {
        manager_token: Some(full_server.clone()),
        worker_token: Some(full_agent.clone()),
        ca_certificate: Some(server_ca.clone()),
        seen: seen(&["kube-cp-1"]),
        ..joined()
    };
    report(&w, "kube-cp-1", r).await.unwrap();
    // The worker now joins with the agent token, pinned, through the bootstrap server.
    let plan = flows::join(&w.c, &wk).await.unwrap().unwrap();
    let k = plan.k3s_config.clone().expect("a k3s configuration once the tokens are pinned");
    assert_eq!(k["server"], format!("https://{}:6443", boot.address));
    assert_eq!(k["token"], full_agent.as_str());
    assert!(!k.contains_key("agent-token") && plan.client_ca.is_none());
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains(&server_token) && !shown.contains("PRIVATE KEY"), "{shown}");
    report(&w, "kube-workers-1", joined()).await.unwrap();
    report(&w, "kube-cp-1", ClusterReport { seen: seen(&["kube-cp-1", "kube-workers-1"]), ..joined() }).await.unwrap();
    let c = pass(&w).await;
    assert_eq!(c.status, ClusterStatus::Active, "{:?}", c.status_reason);
    let endpoint = format!("https://{}:6443", boot.address);
    assert_eq!(c.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(c.ca_certificate.as_deref(), Some(server_ca.as_str()));
    // The CA's key went to the first server only until the cluster existed.
    let boot = flows::join(&w.c, &cp).await.unwrap().unwrap();
    assert!(boot.client_ca.is_none());
    assert_eq!(boot.k3s_config.unwrap()["token"], full_server.as_str());

    // Credentials: a kubeconfig whose certificate the cluster's client CA
    // signed, for system:masters, expiring after the ttl asked for.
    let cr = flows::credentials(&w.c, &svc, &c, std::time::Duration::from_secs(600)).await.unwrap();
    assert_eq!((cr.endpoint.as_str(), cr.user.as_str()), (endpoint.as_str(), "tundra-admin"));
    assert_eq!(cr.ca_certificate.as_deref(), Some(server_ca.as_str()));
    let kc: serde_json::Value = serde_json::from_str(cr.kubeconfig.as_deref().unwrap()).unwrap();
    use base64::Engine as _;
    let unb64 = |v: &serde_json::Value| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(kc["clusters"][0]["cluster"]["server"], endpoint.as_str());
    assert_eq!(unb64(&kc["clusters"][0]["cluster"]["certificate-authority-data"]), server_ca);
    assert_eq!(unb64(&kc["users"][0]["user"]["client-certificate-data"]), cr.certificate);
    assert_eq!(unb64(&kc["users"][0]["user"]["client-key-data"]), cr.private_key);
    assert_eq!(kc["current-context"], "kube");
    let rec = store.cluster_record(c.id).await.unwrap();
    let (client_ca, cert) = (dir.path().join("client-ca.crt"), dir.path().join("admin.crt"));
    std::fs::write(&client_ca, rec.client_ca_cert.unwrap()).unwrap();
    std::fs::write(&cert, &cr.certificate).unwrap();
    let (ok, said) = openssl(&["verify", "-CAfile", client_ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(ok && said.contains("OK"), "{said}");
    let (_, subject) = openssl(&["x509", "-noout", "-subject", "-in", cert.to_str().unwrap()]);
    assert!(subject.contains("CN = tundra-admin") && subject.contains("O = system:masters"), "{subject}");
    let cert = cert.to_str().unwrap();
    assert!(openssl(&["x509", "-noout", "-checkend", "540", "-in", cert]).0, "valid for the ten minutes asked");
    assert!(!openssl(&["x509", "-noout", "-checkend", "660", "-in", cert]).0, "and no longer");
}

/// The cluster agent's k3s bundle install (`tundra-cluster.py`), run for
/// real against an HTTP server that serves the bundle as the metadata
/// service does: a bundle whose sha256 is wrong is refused and dropped; a
/// download cut off resumes with a range request; only the `k3s` binary
/// and the images tarballs are installed, by name, wherever the archive's
/// paths point; an installed bundle is not fetched again; one without the
/// binary says what the site must register.
#[test]
fn the_agent_installs_a_k3s_bundle_by_name_verified_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    std::fs::create_dir(&root).unwrap();
    let agent = dir.path().join("tundra-cluster.py");
    std::fs::write(&agent, tundra_engine::clusters::AGENT_SCRIPT).unwrap();
    let test = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conductor/k3s_bundle.py");
    let out = std::process::Command::new("python3").arg(&test).arg(&root).arg(&agent).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim_end().ends_with("ok"), "{said}");
}

#[test]
fn the_cluster_agent_is_valid_cloud_config_and_python() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cloud_init = root.join(".venv/bin/cloud-init");
    assert!(cloud_init.exists(), "{} is missing: run scripts/setup.sh", cloud_init.display());
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("user-data");
    let ca = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB";
    // Each kind and role's user data (k3s servers and agents differ).
    for kind in [ClusterKind::Swarm, ClusterKind::Kubernetes] {
        for role in [GroupRole::ControlPlane, GroupRole::Worker] {
            let data = tundra_engine::clusters::agent_user_data(
                "http://10.9.0.1:8080/openstack/latest",
                ca,
                "tundra-admin",
                kind,
                role,
            );
            std::fs::write(&ud, data).unwrap();
            let out =
                std::process::Command::new(&cloud_init).args(["schema", "--config-file"]).arg(&ud).output().unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && said.contains("Valid"), "cloud-init schema ({kind:?}, {role:?}): {said}");
        }
    }
    let py = dir.path().join("tundra-cluster.py");
    std::fs::write(&py, tundra_engine::clusters::AGENT_SCRIPT).unwrap();
    let out = std::process::Command::new("python3").args(["-m", "py_compile"]).arg(&py).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A reconciler pass cut off anywhere (a restart, a kill) is finished by
/// the next: a member written before its node gets exactly one node; a node
/// placed before its member recorded it is found again (by its name and the
/// cluster's ID in its metadata), never placed twice; a project's own node
/// that merely has the name of a member is never taken.
#[tokio::test]
async fn a_pass_cut_off_anywhere_is_finished_by_the_next() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 4).await;
    let project = store.create_project(&svc, "p", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"an image".to_vec()).await;
    let t = ClusterTemplateCreate {
        project_id: None,
        name: "docker".into(),
        version: 1,
        kind: ClusterKind::Swarm,
        description: String::new(),
        bundle_image_id: None,
    };
    let t = flows::create_template(&w.c, &svc, t).await.unwrap();
    let group = |name: &str, role, count| group(&flavor, &img, name, role, count);
    let req = ClusterCreate {
        project_id: project.id,
        name: "sw".into(),
        template_id: t.id,
        keypair_id: None,
        groups: vec![group("cp", GroupRole::ControlPlane, 1), group("wk", GroupRole::Worker, 1)],
        labels: BTreeMap::new(),
    };
    let cl = flows::create(&w.c, &svc, req).await.unwrap();
    let name = |g: &str, i| tundra_engine::clusters::member_name("sw", g, i);
    // Cut off after writing the worker's member, before placing its node.
    let wk = store.add_cluster_member(cl.id, "wk", GroupRole::Worker, |i| name("wk", i)).await.unwrap();
    assert_eq!((wk.name.as_str(), wk.node_id), ("sw-wk-1", None));
    // Cut off after placing the manager's node, before recording it.
    let cp = store.add_cluster_member(cl.id, "cp", GroupRole::ControlPlane, |i| name("cp", i)).await.unwrap();
    let made = NodeCreate {
        project_id: project.id,
        name: cp.name.clone(),
        flavor_id: flavor.id,
        image_id: img.id,
        keypair_id: None,
        user_data: None,
        metadata: BTreeMap::from([(clusters::CLUSTER_KEY.to_string(), cl.id.to_string())]),
        placement: Default::default(),
        networks: Vec::new(),
        shares: Vec::new(),
    };
    let made = placement::create(&w.c, &svc, made, &flavor, &img).await.unwrap();
    // The project's own node, named like the worker a scale-up will add.
    let mut own = NodeCreate { name: "sw-wk-2".into(), metadata: BTreeMap::new(), ..req_node(&made) };
    own.project_id = project.id;
    let own = placement::create(&w.c, &svc, own, &flavor, &img).await.unwrap();

    let c = pass(&w).await;
    let by_name = |c: &tundra_api::clusters::Cluster, n: &str| c.members.iter().find(|m| m.name == n).cloned().unwrap();
    assert_eq!(by_name(&c, "sw-cp-1").node_id, Some(made.id), "the node placed before the cut is the member's");
    assert!(by_name(&c, "sw-wk-1").node_id.is_some(), "the member written before the cut got its node");
    assert_eq!(store.all_nodes().await.unwrap().len(), 4 - 1, "two members' nodes and the project's own");
    assert_eq!(pass(&w).await.members, c.members, "another pass changes nothing");
    assert_eq!(store.all_nodes().await.unwrap().len(), 3);

    // Scaling up meets the project's node of the same name: not taken; the
    // member waits, saying why.
    let mut groups = c.groups.clone();
    groups[1].count = 2;
    flows::update(&w.c, &svc, &c, ClusterUpdate { groups: Some(groups), ..Default::default() }, None).await.unwrap();
    let c = pass(&w).await;
    let m = by_name(&c, "sw-wk-2");
    assert_eq!(m.node_id, None, "the project's own node is not the cluster's");
    assert!(m.reason.as_deref().unwrap_or("").contains("already has a node named \"sw-wk-2\""), "{m:?}");
    assert_eq!(store.node(own.id).await.unwrap().metadata.get(clusters::CLUSTER_KEY), None);
    assert!(flows::check_node_removable(&w.c, own.id).await.is_ok(), "it stays the project's to delete");
}

/// A node group of `count` nodes of `flavor` and `img`, nothing more.
fn group(
    flavor: &tundra_api::catalog::Flavor,
    img: &tundra_api::catalog::Image,
    name: &str,
    role: GroupRole,
    count: u32,
) -> NodeGroup {
    NodeGroup {
        name: name.into(),
        role,
        flavor_id: flavor.id,
        image_id: img.id,
        count,
        networks: Vec::new(),
        cluster_network_id: None,
        shares: Vec::new(),
        placement: GroupPlacement::default(),
    }
}

/// A node request like `n`'s (same flavor and image).
fn req_node(n: &Node) -> NodeCreate {
    NodeCreate {
        project_id: n.project_id,
        name: n.name.clone(),
        flavor_id: n.flavor_id,
        image_id: n.image_id,
        keypair_id: None,
        user_data: None,
        metadata: BTreeMap::new(),
        placement: Default::default(),
        networks: Vec::new(),
        shares: Vec::new(),
    }
}
