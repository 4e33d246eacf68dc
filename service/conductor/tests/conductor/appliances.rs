//! An appliance (a small Slurm-shaped platform) through the conductor's
//! flows and reconciler, the test playing the machines' agents (as in
//! `flows.rs`) and the nodes' appliance agents (their plans and reports,
//! as `tundra-appliance.py` sends them): made from a template, its files
//! rendered from parameters, secrets and each other's addresses, judged
//! active only once every node reported ready under its current plan,
//! scaled up and down in place (leaving nodes drained by the role that
//! drains them before they go), an immutable parameter refused, two
//! appliances scaled at once, and deleted with every machine cleaned.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use tundra_api::appliances::{
    Appliance, ApplianceCreate, ApplianceMemberState as MemberState, AppliancePlan, ApplianceReport, ApplianceStatus,
    ApplianceTemplateCreate, ApplianceUpdate,
};
use tundra_api::nodes::NodeStatus;
use tundra_conductor::appliances::{flows, reconcile as appliances};
use tundra_conductor::nodes::reconcile as nodes;
use tundra_store::Actor;

use crate::clusters::{finish_cleaning, finish_deploys, machines, node};
use crate::flows::{World, world};

fn template() -> ApplianceTemplateCreate {
    serde_json::from_value(json!({
        "name": "slurm", "version": 1,
        "parameters": [
            {"name": "cluster_name", "kind": "string", "pattern": "[a-z][a-z0-9]*", "immutable": true},
            {"name": "compute_count", "kind": "count", "default": 2, "maximum": 8},
            {"name": "flavor", "kind": "flavor"},
            {"name": "image", "kind": "image"},
        ],
        "secrets": [{"name": "munge_key", "bytes": 32}, {"name": "tls", "kind": "tls"}],
        "roles": [
            {"name": "login", "flavor_parameter": "flavor", "image_parameter": "image",
             "files": [
                {"path": "/etc/munge/munge.key", "mode": "0400", "owner": "munge:munge", "encoding": "base64",
                 "content": "{{ secrets.munge_key }}"},
                {"path": "/etc/tls/ca.pem", "content": "{{ secrets.tls.ca }}"},
                {"path": "/etc/tls/cert.pem", "content": "{{ secrets.tls.cert }}"},
                {"path": "/etc/tls/key.pem", "mode": "0400", "content": "{{ secrets.tls.key }}"},
                {"path": "/etc/slurm/slurm.conf",
                 "content": "ClusterName={{ parameters.cluster_name }}\nNodes={{ roles.compute.nodes | map(attribute='name') | join(',') }}\n"}
             ],
             "reload": "systemctl restart munge", "ready": "scontrol ping",
             "drain": {"role": "compute", "command": "scontrol update nodename={{ leaving.name }} state=drain"}},
            {"name": "compute", "count_parameter": "compute_count", "flavor_parameter": "flavor", "image_parameter": "image",
             "files": [
                {"path": "/etc/munge/munge.key", "mode": "0400", "owner": "munge:munge", "encoding": "base64",
                 "content": "{{ secrets.munge_key }}"},
                {"path": "/etc/tls/ca.pem", "content": "{{ secrets.tls.ca }}"},
                {"path": "/etc/tls/cert.pem", "content": "{{ secrets.tls.cert }}"},
                {"path": "/etc/default/slurmd", "content": "SLURMD_OPTIONS=\"--conf-server {{ roles.login.nodes[0].address }}\"\n"}
             ],
             "reload": "systemctl restart munge slurmd"}
        ],
        "outputs": [{"name": "login_address", "value": "{{ roles.login.nodes[0].address }}"}],
        "usage": "ssh debian@{{ outputs.login_address }}"
    }))
    .unwrap()
}

async fn pass(w: &World, name: &str) -> Appliance {
    nodes::once(&w.c).await.unwrap();
    appliances::once(&w.c).await.unwrap();
    view(w, name).await
}

async fn view(w: &World, name: &str) -> Appliance {
    let all = w
        .c
        .store()
        .list_appliances(&tundra_store::ListParams { limit: 10, ..Default::default() }, &tundra_store::Visibility::All)
        .await
        .unwrap();
    let a = all.items.into_iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no appliance {name}"));
    flows::with_addresses(&w.c, w.c.store().appliance(a.id).await.unwrap()).await.unwrap()
}

async fn plan(w: &World, name: &str) -> AppliancePlan {
    flows::plan(&w.c, &node(w, name).await).await.unwrap().unwrap()
}

fn file(p: &AppliancePlan, path: &str) -> Vec<u8> {
    let f = p.files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("no {path} in {p:?}"));
    base64::engine::general_purpose::STANDARD.decode(&f.content_base64).unwrap()
}

fn text(p: &AppliancePlan, path: &str) -> String {
    String::from_utf8(file(p, path)).unwrap()
}

/// Every named node applies its plan and reports ready under it.
async fn all_ready(w: &World, names: &[&str]) {
    for n in names {
        let p = plan(w, n).await;
        let r = ApplianceReport { generation: p.generation, ready: true, ..Default::default() };
        flows::report(&w.c, &node(w, n).await, r).await.unwrap_or_else(|e| panic!("{n}: {e}"));
    }
}

fn states(a: &Appliance) -> Vec<(String, MemberState)> {
    a.members.iter().map(|m| (m.name.clone(), m.state)).collect()
}

#[tokio::test]
async fn an_appliance_renders_its_roles_scales_in_place_drains_and_goes() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 4).await;
    let project = store.create_project(&svc, "astro", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with slurm".to_vec()).await;

    // A template is checked whole; versions are taken once.
    let mut bad = template();
    bad.outputs[0].value = "{{ secrets.munge_key }}".into();
    let e = flows::create_template(&w.c, &svc, bad).await.unwrap_err();
    assert!(e.to_string().contains("/outputs/0/value"), "{e}");
    let t = flows::create_template(&w.c, &svc, template()).await.unwrap();
    let e = flows::create_template(&w.c, &svc, template()).await.unwrap_err();
    assert!(e.to_string().contains("make version 2"), "{e}");

    let params = |v: Value| -> BTreeMap<String, Value> { serde_json::from_value(v).unwrap() };
    let good = |count: u32| {
        params(json!({"cluster_name": "astro", "compute_count": count, "flavor": flavor.id, "image": img.id}))
    };
    let create = |p| ApplianceCreate {
        project_id: project.id,
        name: "hpc".into(),
        template_id: t.id,
        keypair_id: None,
        parameters: p,
    };
    // Parameters are checked before anything is made.
    for (p, says) in [
        (
            params(json!({"cluster_name": "astro", "compute_count": 9, "flavor": flavor.id, "image": img.id})),
            "/parameters/compute_count",
        ),
        (params(json!({"cluster_name": "Astro", "flavor": flavor.id, "image": img.id})), "/parameters/cluster_name"),
        (params(json!({"cluster_name": "astro", "flavor": flavor.id})), "/parameters/image"),
        (params(json!({"cluster_name": "astro", "flavor": img.id, "image": img.id})), "/parameters/flavor"),
    ] {
        let e = flows::create(&w.c, &svc, create(p)).await.unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    assert!(store.appliance_records().await.unwrap().is_empty(), "nothing written for a refused create");
    let a = flows::create(&w.c, &svc, create(good(2))).await.unwrap();
    assert_eq!(a.status, ApplianceStatus::Creating);
    assert_eq!(a.parameters["compute_count"], json!(2));

    // The reconciler makes the nodes, named by role and index, with the
    // appliance agent as their user data.
    let a = pass(&w, "hpc").await;
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["hpc-compute-0", "hpc-compute-1", "hpc-login-0"]);
    assert!(a.members.iter().all(|m| m.state == MemberState::Deploying && m.node_id.is_some()), "{:?}", a.members);
    let ud = store.node_user_data(node(&w, "hpc-login-0").await.id).await.unwrap().unwrap();
    assert!(ud.contains("tundra-appliance http://10.9.0.1:8080/openstack/latest"), "{ud}");
    assert_eq!(pass(&w, "hpc").await.members.len(), 3, "a second pass makes nothing more");
    let e = flows::check_node_removable(&w.c, node(&w, "hpc-compute-0").await.id).await.unwrap_err();
    assert!(e.to_string().contains("belongs to an appliance"), "{e}");

    finish_deploys(&w).await;
    let a = pass(&w, "hpc").await;
    assert!(a.members.iter().all(|m| m.state == MemberState::Configuring), "{:?}", a.members);
    assert_eq!(a.status, ApplianceStatus::Creating);

    // Each node's files render from the parameters, the shared secret and
    // the other role's addresses.
    let login = plan(&w, "hpc-login-0").await;
    let compute = plan(&w, "hpc-compute-0").await;
    let key = file(&login, "/etc/munge/munge.key");
    assert_eq!(key.len(), 32);
    assert_eq!(file(&compute, "/etc/munge/munge.key"), key, "one key for the appliance");
    tls_secret_is_one_ca_and_a_certificate_it_signed(&login, &compute);
    assert_eq!(text(&login, "/etc/slurm/slurm.conf"), "ClusterName=astro\nNodes=hpc-compute-0,hpc-compute-1\n");
    let login_addr = a.members.iter().find(|m| m.name == "hpc-login-0").unwrap().address.clone().unwrap();
    assert_eq!(text(&compute, "/etc/default/slurmd"), format!("SLURMD_OPTIONS=\"--conf-server {login_addr}\"\n"));
    assert_eq!(login.reload.as_deref(), Some("systemctl restart munge"));
    assert!(login.drain.is_empty());

    // A report under a plan that is not the current one is not taken.
    let stale = ApplianceReport { generation: "0".into(), ready: true, ..Default::default() };
    let e = flows::report(&w.c, &node(&w, "hpc-login-0").await, stale).await.unwrap_err();
    assert!(e.to_string().contains("not the current one"), "{e}");
    // A failing node says why; it is degraded until it reports ready.
    let failed = ApplianceReport {
        generation: compute.generation.clone(),
        error: Some("reload failed (exit 1): munge".into()),
        ..Default::default()
    };
    flows::report(&w.c, &node(&w, "hpc-compute-0").await, failed).await.unwrap();
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Degraded);
    assert!(
        a.status_reason.as_deref().unwrap().contains("hpc-compute-0 failed: reload failed"),
        "{:?}",
        a.status_reason
    );
    all_ready(&w, &["hpc-login-0", "hpc-compute-0", "hpc-compute-1"]).await;
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);
    assert!(a.roles.iter().all(|r| r.status == ApplianceStatus::Active), "{:?}", a.roles);
    assert_eq!((a.roles[1].name.as_str(), a.roles[1].count, a.roles[1].ready), ("compute", 2, 2));
    assert_eq!(a.outputs["login_address"], login_addr);
    assert_eq!(a.usage.as_deref(), Some(format!("ssh debian@{login_addr}").as_str()));
    let shown = serde_json::to_string(&a).unwrap();
    assert!(!shown.contains(&base64::engine::general_purpose::STANDARD.encode(&key)), "the key is in no view");

    // In place: an immutable parameter is refused, a count is not.
    let mut renamed = good(2);
    renamed.insert("cluster_name".into(), json!("radio"));
    let e = flows::update(&w.c, &svc, &a, ApplianceUpdate { parameters: Some(renamed) }, None).await.unwrap_err();
    assert!(e.to_string().contains("/parameters/cluster_name") && e.to_string().contains("immutable"), "{e}");
    let a = flows::update(&w.c, &svc, &a, ApplianceUpdate { parameters: Some(good(3)) }, None).await.unwrap();
    assert_eq!(a.status, ApplianceStatus::Updating);
    assert_eq!(pass(&w, "hpc").await.members.len(), 4);
    // The login node's configuration names the new node (seen by the pass
    // after the one that placed it): it applies it again.
    let a = pass(&w, "hpc").await;
    let s: BTreeMap<String, MemberState> = states(&a).into_iter().collect();
    assert_eq!(s["hpc-compute-2"], MemberState::Deploying);
    assert_eq!(s["hpc-login-0"], MemberState::Configuring, "{:?}", a.members);
    assert_eq!(s["hpc-compute-0"], MemberState::Ready, "a plan that did not change keeps its node ready");
    assert_eq!(a.status, ApplianceStatus::Updating);
    finish_deploys(&w).await;
    pass(&w, "hpc").await;
    assert!(text(&plan(&w, "hpc-login-0").await, "/etc/slurm/slurm.conf").contains("hpc-compute-2"));
    all_ready(&w, &["hpc-login-0", "hpc-compute-2"]).await;
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);

    // Down to 1: the newest two leave, and stay until the login node drained them.
    let a = flows::update(&w.c, &svc, &a, ApplianceUpdate { parameters: Some(good(1)) }, None).await.unwrap();
    let _ = a;
    let a = pass(&w, "hpc").await;
    let s: BTreeMap<String, MemberState> = states(&a).into_iter().collect();
    assert_eq!((s["hpc-compute-1"], s["hpc-compute-2"]), (MemberState::Leaving, MemberState::Leaving));
    assert_eq!(a.status, ApplianceStatus::Updating);
    assert!(a.status_reason.as_deref().unwrap().contains("draining"), "{:?}", a.status_reason);
    pass(&w, "hpc").await;
    let kept = store.all_nodes().await.unwrap().into_iter().filter(|n| n.status != NodeStatus::Deleting).count();
    assert_eq!(kept, 4, "no node goes before it is drained, though the login node reapplies its files");
    let login = plan(&w, "hpc-login-0").await;
    let drains: Vec<(&str, &str)> = login.drain.iter().map(|d| (d.node.as_str(), d.command.as_str())).collect();
    assert_eq!(
        drains,
        [
            ("hpc-compute-1", "scontrol update nodename=hpc-compute-1 state=drain"),
            ("hpc-compute-2", "scontrol update nodename=hpc-compute-2 state=drain")
        ]
    );
    assert_eq!(text(&login, "/etc/slurm/slurm.conf"), "ClusterName=astro\nNodes=hpc-compute-0\n");
    // Only the role that drains compute nodes reports them drained.
    let sneaky = ApplianceReport {
        generation: plan(&w, "hpc-compute-0").await.generation,
        ready: true,
        drained: vec!["hpc-compute-1".into()],
        ..Default::default()
    };
    let e = flows::report(&w.c, &node(&w, "hpc-compute-0").await, sneaky).await.unwrap_err();
    assert!(e.to_string().contains("/drained/0"), "{e}");
    let r = ApplianceReport {
        generation: login.generation.clone(),
        ready: true,
        drained: vec!["hpc-compute-1".into(), "hpc-compute-2".into()],
        ..Default::default()
    };
    flows::report(&w.c, &node(&w, "hpc-login-0").await, r).await.unwrap();
    pass(&w, "hpc").await;
    finish_cleaning(&w).await;
    let a = pass(&w, "hpc").await;
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["hpc-compute-0", "hpc-login-0"]);
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);
    assert_eq!(store.all_nodes().await.unwrap().len(), 2);

    // Deleted: every node goes (no draining), then the appliance and its secrets.
    let rec = store.appliance_record(a.id).await.unwrap();
    let secret = rec.secret_id.expect("sealed secrets");
    flows::delete(&w.c, &svc, &a).await.unwrap();
    pass(&w, "hpc").await;
    finish_cleaning(&w).await;
    nodes::once(&w.c).await.unwrap();
    appliances::once(&w.c).await.unwrap();
    appliances::once(&w.c).await.unwrap();
    assert!(store.appliance_records().await.unwrap().is_empty());
    assert!(store.all_nodes().await.unwrap().is_empty());
    assert!(store.secret(secret).await.is_err(), "the secrets go with it");
    store.delete_appliance_template(&svc, t.id).await.unwrap();
}

/// The `tls` secret: the same CA and certificate on every node, the
/// certificate signed by the CA for both ends of mutual TLS, its key the
/// certificate's — as openssl sees them.
fn tls_secret_is_one_ca_and_a_certificate_it_signed(login: &AppliancePlan, compute: &AppliancePlan) {
    for f in ["/etc/tls/ca.pem", "/etc/tls/cert.pem"] {
        assert_eq!(text(login, f), text(compute, f), "{f}: one for the appliance");
    }
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca", "cert", "key"] {
        std::fs::write(dir.path().join(format!("{f}.pem")), text(login, &format!("/etc/tls/{f}.pem"))).unwrap();
    }
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for purpose in ["sslserver", "sslclient"] {
        let v = openssl(&["verify", "-purpose", purpose, "-CAfile", "ca.pem", "cert.pem"]);
        assert!(v.contains("cert.pem: OK"), "{v}");
    }
    let ca = openssl(&["x509", "-in", "ca.pem", "-noout", "-subject", "-ext", "basicConstraints"]);
    assert!(ca.contains("tundra appliance CA") && ca.contains("CA:TRUE"), "{ca}");
    let cert = openssl(&["x509", "-in", "cert.pem", "-noout", "-pubkey"]);
    let key = openssl(&["pkey", "-in", "key.pem", "-pubout"]);
    assert_eq!(cert, key, "the key is the certificate's");
}

#[tokio::test]
async fn two_appliances_scaled_at_the_same_moment_both_converge() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 6).await;
    let project = store.create_project(&svc, "astro", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with slurm".to_vec()).await;
    let t = flows::create_template(&w.c, &svc, template()).await.unwrap();
    let params = |count: u32| -> BTreeMap<String, Value> {
        serde_json::from_value(
            json!({"cluster_name": "astro", "compute_count": count, "flavor": flavor.id, "image": img.id}),
        )
        .unwrap()
    };
    for name in ["one", "two"] {
        let r = ApplianceCreate {
            project_id: project.id,
            name: name.into(),
            template_id: t.id,
            keypair_id: None,
            parameters: params(1),
        };
        flows::create(&w.c, &svc, r).await.unwrap();
    }
    pass(&w, "one").await;
    finish_deploys(&w).await;
    pass(&w, "one").await;
    for name in ["one", "two"] {
        all_ready(&w, &[&format!("{name}-login-0"), &format!("{name}-compute-0")]).await;
    }
    let (one, two) = (pass(&w, "one").await, view(&w, "two").await);
    assert_eq!((one.status, two.status), (ApplianceStatus::Active, ApplianceStatus::Active));

    // Both scale at once: neither waits for the other.
    let up = |a: Appliance| {
        let (c, svc, p) = (w.c.clone(), svc.clone(), params(2));
        async move { flows::update(&c, &svc, &a, ApplianceUpdate { parameters: Some(p) }, None).await }
    };
    let (r1, r2) = tokio::join!(up(one), up(two));
    r1.unwrap();
    r2.unwrap();
    pass(&w, "one").await;
    for name in ["one", "two"] {
        let a = view(&w, name).await;
        assert_eq!(a.members.len(), 3, "{name}: {:?}", a.members);
        assert_eq!(a.status, ApplianceStatus::Updating);
    }
    finish_deploys(&w).await;
    pass(&w, "one").await;
    for name in ["one", "two"] {
        all_ready(&w, &[&format!("{name}-login-0"), &format!("{name}-compute-1")]).await;
    }
    pass(&w, "one").await;
    for name in ["one", "two"] {
        let a = view(&w, name).await;
        assert_eq!(a.status, ApplianceStatus::Active, "{name}: {:?}", a.status_reason);
        assert_eq!(a.roles[1].ready, 2);
    }
}

/// A hub that joins the Slurm appliance (an `appliance` parameter): its
/// node renders the peer's login address and munge key; the peer's other
/// secrets stay off the API and outputs; a peer of another project, a
/// missing one, the appliance itself or one that joins it already is
/// refused at the parameter; the peer is not deleted while the hub joins
/// it, and is once the hub is gone.
#[tokio::test]
async fn an_appliance_joins_another_and_keeps_it_while_it_does() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 3).await;
    let project = store.create_project(&svc, "astro", "").await.unwrap();
    let other = store.create_project(&svc, "radio", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with slurm".to_vec()).await;
    let t = flows::create_template(&w.c, &svc, template()).await.unwrap();
    let hub: ApplianceTemplateCreate = serde_json::from_value(json!({
        "name": "hub", "version": 1,
        "parameters": [
            {"name": "flavor", "kind": "flavor"},
            {"name": "image", "kind": "image"},
            {"name": "slurm", "kind": "appliance"},
        ],
        "roles": [{"name": "hub", "flavor_parameter": "flavor", "image_parameter": "image",
                   "files": [
                      {"path": "/etc/munge/munge.key", "mode": "0400", "encoding": "base64",
                       "content": "{{ peers.slurm.secrets.munge_key }}"},
                      {"path": "/etc/default/hub",
                       "content": "SLURM_CONF_SERVER={{ peers.slurm.roles.login.nodes[0].address }}\n"}
                   ]}],
        "outputs": [{"name": "cluster", "value": "{{ peers.slurm.parameters.cluster_name }}"}]
    }))
    .unwrap();
    let ht = flows::create_template(&w.c, &svc, hub).await.unwrap();
    let slurm = ApplianceCreate {
        project_id: project.id,
        name: "hpc".into(),
        template_id: t.id,
        keypair_id: None,
        parameters: serde_json::from_value(
            json!({"cluster_name": "astro", "compute_count": 1, "flavor": flavor.id, "image": img.id}),
        )
        .unwrap(),
    };
    let slurm = flows::create(&w.c, &svc, slurm).await.unwrap();
    let hub_params = |peer: String| -> BTreeMap<String, Value> {
        serde_json::from_value(json!({"flavor": flavor.id, "image": img.id, "slurm": peer})).unwrap()
    };
    let make = |project, peer: String| ApplianceCreate {
        project_id: project,
        name: "jh".into(),
        template_id: ht.id,
        keypair_id: None,
        parameters: hub_params(peer),
    };

    // Only an appliance of the same project joins.
    let refused = |e: tundra_conductor::Error| match e {
        tundra_conductor::Error::Invalid { pointer, detail } => (pointer, detail),
        other => panic!("{other:?}"),
    };
    let e = refused(flows::create(&w.c, &svc, make(other.id, slurm.id.to_string())).await.unwrap_err());
    assert_eq!(e.0, "/parameters/slurm");
    assert!(e.1.contains("no appliance") && e.1.contains("project"), "{e:?}");
    let e = refused(flows::create(&w.c, &svc, make(project.id, "hpc".into())).await.unwrap_err());
    assert_eq!(e, ("/parameters/slurm".to_string(), "slurm takes an appliance's ID, not \"hpc\"".to_string()));
    let jh = flows::create(&w.c, &svc, make(project.id, slurm.id.to_string())).await.unwrap();
    let e = flows::update(&w.c, &svc, &jh, ApplianceUpdate { parameters: Some(hub_params(jh.id.to_string())) }, None)
        .await
        .unwrap_err();
    assert_eq!(refused(e), ("/parameters/slurm".to_string(), "an appliance cannot join itself".to_string()));
    // Nor do two appliances join each other (neither could be deleted).
    let mut second = make(project.id, jh.id.to_string());
    second.name = "jh2".into();
    let jh2 = flows::create(&w.c, &svc, second).await.unwrap();
    let e = flows::update(&w.c, &svc, &jh, ApplianceUpdate { parameters: Some(hub_params(jh2.id.to_string())) }, None)
        .await
        .unwrap_err();
    let (at, why) = refused(e);
    assert_eq!(at, "/parameters/slurm");
    assert!(why.contains("jh2 joins this one already"), "{why}");
    flows::delete(&w.c, &svc, &jh2).await.unwrap();

    // Made and placed: the hub's node renders the peer's key and address.
    pass(&w, "hpc").await;
    finish_deploys(&w).await;
    pass(&w, "hpc").await;
    let login = plan(&w, "hpc-login-0").await;
    let hub = plan(&w, "jh-hub-0").await;
    assert_eq!(file(&hub, "/etc/munge/munge.key"), file(&login, "/etc/munge/munge.key"), "the peer's munge key");
    let address = view(&w, "hpc").await.outputs["login_address"].clone();
    assert!(address.starts_with("10."), "{address}");
    assert_eq!(text(&hub, "/etc/default/hub"), format!("SLURM_CONF_SERVER={address}\n"));
    all_ready(&w, &["hpc-login-0", "hpc-compute-0", "jh-hub-0"]).await;
    let jh = pass(&w, "jh").await;
    assert_eq!(jh.status, ApplianceStatus::Active, "{:?}", jh.status_reason);
    assert_eq!(jh.outputs["cluster"], "astro");
    let key = base64::engine::general_purpose::STANDARD.encode(file(&login, "/etc/munge/munge.key"));
    assert!(!serde_json::to_string(&jh).unwrap().contains(&key), "the peer's key is in the hub's API answer");

    // The peer stays while the hub joins it; then goes.
    let e = flows::delete(&w.c, &svc, &view(&w, "hpc").await).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("jh joins hpc"), "{e}");
    flows::delete(&w.c, &svc, &jh).await.unwrap();
    flows::delete(&w.c, &svc, &view(&w, "hpc").await).await.unwrap();
    for _ in 0..4 {
        nodes::once(&w.c).await.unwrap();
        appliances::once(&w.c).await.unwrap();
        finish_cleaning(&w).await;
    }
    let left = store.appliance_records().await.unwrap();
    assert!(left.is_empty(), "{:?}", left.iter().map(|r| &r.appliance.name).collect::<Vec<_>>());
}

/// A node asks to be rebuilt (as Slurm's `RebootProgram` does once the
/// node is drained): its machine is deployed again with the image its
/// role's parameters name now — a changed `image` reaches running nodes
/// this way, and only this way — keeping its name, address and machine; its
/// member deploys and configures again; what its old OS reports meanwhile
/// is not taken.
#[tokio::test]
async fn a_node_asks_to_be_rebuilt_with_its_roles_image_and_configures_again() {
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 2).await;
    let project = store.create_project(&svc, "astro", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with slurm".to_vec()).await;
    let img2 = w.image("img-2", b"the same, with a newer slurm".to_vec()).await;
    let t = flows::create_template(&w.c, &svc, template()).await.unwrap();
    let params = |image: tundra_api::ImageId| -> BTreeMap<String, Value> {
        serde_json::from_value(
            json!({"cluster_name": "astro", "compute_count": 1, "flavor": flavor.id, "image": image}),
        )
        .unwrap()
    };
    let r = ApplianceCreate {
        project_id: project.id,
        name: "hpc".into(),
        template_id: t.id,
        keypair_id: None,
        parameters: params(img.id),
    };
    flows::create(&w.c, &svc, r).await.unwrap();
    pass(&w, "hpc").await;
    // Only an active node is rebuilt.
    let e = flows::rebuild(&w.c, &node(&w, "hpc-compute-0").await).await.unwrap_err();
    assert!(e.to_string().contains("only an active node is rebuilt"), "{e}");
    finish_deploys(&w).await;
    pass(&w, "hpc").await;
    all_ready(&w, &["hpc-login-0", "hpc-compute-0"]).await;
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);
    let before = node(&w, "hpc-compute-0").await;
    let generation = plan(&w, "hpc-compute-0").await.generation;

    // A new image for the appliance: running nodes keep theirs.
    flows::update(&w.c, &svc, &a, ApplianceUpdate { parameters: Some(params(img2.id)) }, None).await.unwrap();
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "no node changes for a new image: {:?}", a.status_reason);
    assert_eq!(node(&w, "hpc-compute-0").await.image_id, img.id);

    // The compute node asks: rebuilt with the role's image now.
    let n = flows::rebuild(&w.c, &before).await.unwrap();
    assert_eq!((n.status, n.image_id), (NodeStatus::Building, img2.id));
    assert_eq!((n.machine_id, n.name.as_str()), (before.machine_id, "hpc-compute-0"));
    let e = flows::rebuild(&w.c, &n).await.unwrap_err();
    assert!(e.to_string().contains("only an active node is rebuilt"), "asked twice: {e}");
    // Its old OS's agent, still running until the machine reboots, is not heard.
    let stale = ApplianceReport { generation: generation.clone(), ready: true, ..Default::default() };
    let e = flows::report(&w.c, &n, stale).await.unwrap_err();
    assert!(e.to_string().contains("report once it is active"), "{e}");
    let a = pass(&w, "hpc").await;
    let m = a.members.iter().find(|m| m.name == "hpc-compute-0").unwrap();
    assert_eq!(m.state, MemberState::Deploying, "{:?}", a.members);
    assert_eq!(m.reason.as_deref(), Some("its node is being rebuilt"));
    assert_eq!(a.status, ApplianceStatus::Updating);
    let machine = store.machine(&before.machine_id.unwrap().to_string()).await.unwrap();
    use tundra_api::machines::ProvisionState::{DeployWait, Deploying};
    assert!(matches!(machine.provision_state, Deploying | DeployWait), "{}", machine.provision_state);
    let cmd = w.agent(&machine.interfaces[0].mac, json!({"bytes": 16})).await;
    let tundra_api::agent::Command::WriteImage { sha256, config_drive, .. } = cmd else { panic!("{cmd:?}") };
    assert_eq!(Some(sha256), img2.raw_sha256, "the new image is written");
    assert!(config_drive.is_some(), "with a config drive");
    assert_eq!(w.wait_op(n.operation_id.unwrap()).await.error, None);

    // Active again, same address; it applies the same plan on its fresh OS.
    let a = pass(&w, "hpc").await;
    let after = node(&w, "hpc-compute-0").await;
    assert_eq!((after.status, after.image_id), (NodeStatus::Active, img2.id));
    assert_eq!(after.addresses, before.addresses, "the node keeps its address");
    assert_eq!(a.members.iter().find(|m| m.name == "hpc-compute-0").unwrap().state, MemberState::Configuring);
    assert_eq!(plan(&w, "hpc-compute-0").await.generation, generation);
    all_ready(&w, &["hpc-compute-0"]).await;
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);
    let id = before.id.to_string();
    let p = tundra_store::ListParams { limit: 500, ..Default::default() };
    let events = store.list_events(&p, &tundra_store::Visibility::All, Some("node"), Some(&id)).await.unwrap();
    let rebuilt: Vec<&Value> = events.items.iter().filter(|e| e.action == "rebuild").map(|e| &e.detail).collect();
    assert_eq!(rebuilt.len(), 1, "the rebuild is one event of the node");
    assert_eq!(rebuilt[0]["to_image"], json!(img2.id));
}

/// The metadata service's appliance routes over plain HTTP, in front of
/// the real flows: each node is known by the token its agent sends.
async fn metadata(w: &World, tokens: BTreeMap<String, String>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/openstack/latest", l.local_addr().unwrap());
    let c = w.c.clone();
    let task = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let (head, body) = loop {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|x| x == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < i + 4 + len {
                        let n = s.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[i + 4..i + 4 + len].to_vec());
                }
            };
            let token = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("x-tundra-metadata-token:").map(|v| v.trim().to_string())
            });
            let name = token.and_then(|t| tokens.get(&t).cloned()).expect("a known token");
            let n = c.store().all_nodes().await.unwrap().into_iter().find(|n| n.name == name).unwrap();
            let answer = if head.starts_with("GET /openstack/latest/tundra_appliance.json ") {
                flows::plan(&c, &n).await.map(|p| serde_json::to_string(&p.unwrap()).unwrap())
            } else if head.starts_with("POST /openstack/latest/tundra_appliance_report ") {
                let r: ApplianceReport = serde_json::from_slice(&body).expect("a report as the API takes it");
                flows::report(&c, &n, r).await.map(|()| String::new())
            } else if head.starts_with("POST /openstack/latest/tundra_rebuild ") {
                flows::rebuild(&c, &n).await.map(|_| String::new())
            } else {
                panic!("unexpected request {head}")
            };
            let (status, body) = match answer {
                Ok(b) if b.is_empty() => ("204 No Content", b),
                Ok(b) => ("200 OK", b),
                Err(e) => ("409 Conflict", json!({"detail": e.to_string()}).to_string()),
            };
            let msg = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            s.write_all(msg.as_bytes()).await.unwrap();
        }
    });
    (base, task)
}

/// One round of the real agent as node `name`, its files under `root/name`.
async fn agent_round(agent: &std::path::Path, base: &str, root: &std::path::Path, name: &str) -> String {
    let out = tokio::process::Command::new("python3")
        .arg(agent)
        .arg(base)
        .env("TUNDRA_APPLIANCE_ROOT", root.join(name))
        .env("TUNDRA_APPLIANCE_ONCE", "1")
        .output()
        .await
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    said
}

#[tokio::test]
async fn the_agent_writes_its_files_runs_its_commands_reports_and_drains() {
    use std::os::unix::fs::PermissionsExt;
    let w = world().await;
    w.c.serve_metadata_at("http://10.9.0.1:8080");
    let (store, svc) = (w.c.store().clone(), Actor::service());
    machines(&w, 3).await;
    let project = store.create_project(&svc, "astro", "").await.unwrap();
    let (flavor, img) = w.flavor_and_image(b"a raw disk image with slurm".to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    // The commands leave their marks under the test's directory, named by a parameter.
    let mut t = template();
    t.parameters.push(serde_json::from_value(json!({"name": "marks", "kind": "string"})).unwrap());
    t.roles[0].reload = Some("echo {{ node.name }} >> {{ parameters.marks }}/reloads".into());
    t.roles[0].ready = Some("test -s {{ parameters.marks }}/reloads".into());
    t.roles[0].drain.as_mut().unwrap().command = "echo {{ leaving.name }} >> {{ parameters.marks }}/drained".into();
    t.roles[1].reload = Some("echo {{ node.name }} >> {{ parameters.marks }}/reloads".into());
    let t = flows::create_template(&w.c, &svc, t).await.unwrap();
    let params = |count: u32| -> BTreeMap<String, Value> {
        serde_json::from_value(json!({"cluster_name": "astro", "compute_count": count, "flavor": flavor.id,
                                      "image": img.id, "marks": root.display().to_string()}))
        .unwrap()
    };
    let r = ApplianceCreate {
        project_id: project.id,
        name: "hpc".into(),
        template_id: t.id,
        keypair_id: None,
        parameters: params(2),
    };
    flows::create(&w.c, &svc, r).await.unwrap();
    pass(&w, "hpc").await;
    finish_deploys(&w).await;
    pass(&w, "hpc").await;

    let agent = root.join("tundra-appliance.py");
    std::fs::write(&agent, tundra_engine::appliances::AGENT_SCRIPT).unwrap();
    let names = ["hpc-login-0", "hpc-compute-0", "hpc-compute-1"];
    let mut tokens = BTreeMap::new();
    for n in names {
        let seed = root.join(n).join("var/lib/cloud/seed/config_drive/openstack/latest");
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(seed.join("tundra_metadata_token"), format!("tmd-{n}\n")).unwrap();
        tokens.insert(format!("tmd-{n}"), n.to_string());
    }
    let (base, server) = metadata(&w, tokens).await;

    // First round: files written (mode, bytes), reload run, ready reported.
    for n in names {
        let said = agent_round(&agent, &base, &root, n).await;
        assert!(said.contains("wrote ") && said.contains("ready under plan"), "{n}: {said}");
    }
    let a = pass(&w, "hpc").await;
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);
    let key = root.join("hpc-compute-0/etc/munge/munge.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777, 0o400);
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    assert_eq!(std::fs::read(&key).unwrap(), std::fs::read(root.join("hpc-login-0/etc/munge/munge.key")).unwrap());
    let login_addr = a.members.iter().find(|m| m.name == "hpc-login-0").unwrap().address.clone().unwrap();
    let slurmd = std::fs::read_to_string(root.join("hpc-compute-1/etc/default/slurmd")).unwrap();
    assert!(slurmd.contains(&format!("--conf-server {login_addr}")), "{slurmd}");
    assert_eq!(std::fs::read_to_string(root.join("reloads")).unwrap().lines().count(), 3);

    // A round with nothing new writes nothing and reloads nothing.
    let said = agent_round(&agent, &base, &root, "hpc-compute-0").await;
    assert!(!said.contains("wrote"), "{said}");
    assert_eq!(std::fs::read_to_string(root.join("reloads")).unwrap().lines().count(), 3);

    // Scaled down: the login node rewrites its configuration, reloads,
    // drains the leaving node and reports it; then the node goes.
    let a = view(&w, "hpc").await;
    flows::update(&w.c, &svc, &a, ApplianceUpdate { parameters: Some(params(1)) }, None).await.unwrap();
    pass(&w, "hpc").await;
    let said = agent_round(&agent, &base, &root, "hpc-login-0").await;
    assert!(said.contains("drained hpc-compute-1") && !said.contains("round failed"), "{said}");
    assert_eq!(std::fs::read_to_string(root.join("drained")).unwrap(), "hpc-compute-1\n");
    let conf = std::fs::read_to_string(root.join("hpc-login-0/etc/slurm/slurm.conf")).unwrap();
    assert_eq!(conf, "ClusterName=astro\nNodes=hpc-compute-0\n");
    pass(&w, "hpc").await;
    finish_cleaning(&w).await;
    let a = pass(&w, "hpc").await;
    assert_eq!(a.members.len(), 2, "{:?}", a.members);
    assert_eq!(a.status, ApplianceStatus::Active, "{:?}", a.status_reason);

    // What Slurm's RebootProgram runs: `tundra-appliance rebuild` asks for
    // its own node's rebuild (exit 0 once taken); asked again while the
    // node is rebuilt it fails saying why; where the agent never ran it
    // knows no metadata service.
    let ask = |name: &str| {
        tokio::process::Command::new("python3")
            .arg(&agent)
            .arg("rebuild")
            .env("TUNDRA_APPLIANCE_ROOT", root.join(name))
            .output()
    };
    let said = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let out = ask("hpc-compute-0").await.unwrap();
    assert!(out.status.success() && said(&out).contains("rebuild asked"), "{}", said(&out));
    assert_eq!(node(&w, "hpc-compute-0").await.status, NodeStatus::Building);
    let out = ask("hpc-compute-0").await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("will not rebuild this node now: node hpc-compute-0 is building"), "{}", said(&out));
    let out = ask("nowhere").await.unwrap();
    assert!(!out.status.success() && said(&out).contains("no metadata service known"), "{}", said(&out));
    server.abort();
}

#[test]
fn the_appliance_agent_is_valid_cloud_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cloud_init = root.join(".venv/bin/cloud-init");
    assert!(cloud_init.exists(), "{} is missing: run scripts/setup.sh", cloud_init.display());
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("user-data");
    std::fs::write(&ud, tundra_engine::appliances::agent_user_data("http://10.9.0.1:8080/openstack/latest")).unwrap();
    let out = std::process::Command::new(&cloud_init).args(["schema", "--config-file"]).arg(&ud).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("Valid"), "cloud-init schema: {said}");
}
