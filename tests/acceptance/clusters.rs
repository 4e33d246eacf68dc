//! A Docker Swarm cluster through real Terraform on the lab: one manager
//! and two workers, each on two networks with Swarm's traffic on the
//! second, from the same Debian image (with Debian's `docker.io`) the OS
//! test builds. tundrad makes the nodes; their cluster agent joins them
//! (`docker swarm init`/`join` with the tokens tundrad hands each by role);
//! the cluster is `active` only once the manager's `docker node ls` lists
//! all three Ready. A service of 3 replicas (a local image, no registry)
//! runs one task per node. `count = 3` adds a worker in place; `count = 1`
//! drains and removes two through the manager and cleans their machines;
//! each plan after is empty; no join token is in the state.
//!
//! Kubernetes the same way with k3s, when the site gives its air-gap bundle
//! (`TUNDRA_K3S_BUNDLE`: a tar of the `k3s` binary and its
//! `k3s-airgap-images-amd64.tar.zst`): no registry here ships k3s, so
//! without it the test is skipped, and `scripts/test.sh` says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::nodes::LabSite;
use crate::os::ssh;

/// The cluster's project: two networks, a keypair, the OS image, a
/// template of `kind` (Kubernetes: with the bundle at `TF_VAR_bundle_path`)
/// and a cluster named `name` of one control-plane node and `var.workers`.
fn project_tf(kind: &str, name: &str) -> String {
    let template = match kind {
        "kubernetes" => {
            r#"variable "bundle_path" {
  type = string
}

resource "tundra_image" "k3s" {
  project_id  = data.tundra_project.astro.id
  name        = "k3s-airgap-bundle"
  disk_format = "raw"
  sha256      = filesha256(var.bundle_path)
  source_path = var.bundle_path
}

resource "tundra_cluster_template" "tpl" {
  name            = "k3s"
  version         = 1
  kind            = "kubernetes"
  bundle_image_id = tundra_image.k3s.id
}
"#
        }
        _ => {
            r#"resource "tundra_cluster_template" "tpl" {
  name    = "docker-swarm"
  version = 1
  kind    = "swarm"
}
"#
        }
    };
    format!(
        r#"{}
{template}
variable "image_path" {{
  type = string
}}

variable "public_key" {{
  type = string
}}

variable "workers" {{
  type    = number
  default = 2
}}

variable "worker_flavor" {{
  type    = string
  default = "compute"
}}

resource "tundra_flavor" "big" {{
  project_id     = data.tundra_project.astro.id
  name           = "big"
  resource_class = "baremetal"
}}

data "tundra_project" "astro" {{
  name = "astro"
}}

data "tundra_physical_network" "fabric" {{
  name = "fabric"
}}

data "tundra_flavor" "compute" {{
  name = "compute"
}}

# Two networks per node: "data" and "swarm" (Swarm's own traffic).
resource "tundra_network" "net" {{
  for_each            = {{ data = "10.71.0.0/24", swarm = "10.72.0.0/24" }}
  project_id          = data.tundra_project.astro.id
  name                = each.key
  physical_network_id = data.tundra_physical_network.fabric.id
}}

resource "tundra_subnet" "net" {{
  for_each   = {{ data = "10.71.0.0/24", swarm = "10.72.0.0/24" }}
  network_id = tundra_network.net[each.key].id
  name       = "${{each.key}}-v4"
  cidr       = each.value
}}

resource "tundra_keypair" "me" {{
  project_id = data.tundra_project.astro.id
  name       = "me"
  public_key = var.public_key
}}

resource "tundra_image" "os" {{
  project_id  = data.tundra_project.astro.id
  name        = "debian-12-docker"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}}

locals {{
  group = {{
    flavor_id          = data.tundra_flavor.compute.id
    image_id           = tundra_image.os.id
    networks           = [tundra_network.net["data"].id, tundra_network.net["swarm"].id]
    cluster_network_id = tundra_network.net["swarm"].id
  }}
}}

resource "tundra_cluster" "c" {{
  project_id  = data.tundra_project.astro.id
  name        = "{name}"
  template_id = tundra_cluster_template.tpl.id
  keypair_id  = tundra_keypair.me.id
  node_groups = [
    merge(local.group, {{ name = "mgr", role = "control_plane", count = 1 }}),
    merge(local.group, {{
      name      = "wk", role = "worker", count = var.workers,
      flavor_id = var.worker_flavor == "big" ? tundra_flavor.big.id : data.tundra_flavor.compute.id
    }}),
  ]
  labels     = {{ team = "sip" }}
  depends_on = [tundra_subnet.net]
}}
"#,
        crate::steps::header()
    )
}

/// The lab site with the fabric set up, an SSH key, and the project's
/// workspace for a cluster of `kind` (not applied yet).
fn cluster_lab(kind: &str, name: &str, extra_env: &[(&str, String)]) -> (LabSite, crate::support::Workspace, PathBuf) {
    let image = crate::os::built_image(&tundra_lab::image::lab_recipe());
    let s = LabSite::start_with(&crate::os::lab_site(4, 3, if kind == "kubernetes" { 2048 } else { 1024 }), |c| {
        c.fabric_read_interval = "2s".into()
    });
    let mut admin = s.site.workspace(&crate::fabric::admin_tf());
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();
    let (key, public) = crate::os::keypair(s.dir.path(), "cluster-test");
    let mut ws = s.site.workspace(&project_tf(kind, name));
    ws.env.push(("TF_VAR_image_path".into(), image.display().to_string()));
    ws.env.push(("TF_VAR_public_key".into(), public));
    for (k, v) in extra_env {
        ws.env.push((k.to_string(), v.clone()));
    }
    (s, ws, key)
}

/// The machine a node is deployed on, by name.
fn machine_of(s: &LabSite, node_id: &str) -> String {
    let n = s.get(&format!("/v1/nodes/{node_id}"));
    let mid = n["machine_id"].as_str().unwrap().to_string();
    s.get(&format!("/v1/machines/{mid}"))["name"].as_str().unwrap().to_string()
}

/// A cluster's members: (name, node ID).
fn members(c: &Value) -> Vec<(String, String)> {
    c["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["node_id"].as_str().unwrap().to_string()))
        .collect()
}

/// `count = n` workers: planned as an update in place (never a new
/// cluster), applied; the cluster as Terraform then has it.
fn scale_workers(ws: &mut crate::support::Workspace, n: u32) -> Value {
    ws.env.retain(|(k, _)| k != "TF_VAR_workers");
    ws.env.push(("TF_VAR_workers".into(), n.to_string()));
    let (code, plan) = ws.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "{plan}");
    ws.apply();
    ws.resource("tundra_cluster.c")
}

/// Wait until each of `machines` is cleaned and available again.
fn wait_cleaned(s: &LabSite, machines: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(300);
    for m in machines {
        loop {
            let ms = s.get("/v1/machines?limit=100");
            let machine = ms["items"].as_array().unwrap().iter().find(|x| x["name"] == m.as_str()).unwrap().clone();
            let st = &machine["provision_state"];
            if st == "available" {
                break;
            }
            assert!(
                Instant::now() < deadline && st != "clean_failed",
                "{m} was not cleaned: {st} ({}); its console:\n{}",
                machine["last_error"],
                s.lab().machine(m).map(|lm| crate::os::console_tail(&lm.firmware.log)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

pub fn swarm_on_the_lab() {
    let (s, mut ws, key) = cluster_lab("swarm", "sw", &[]);
    let start = Instant::now();
    let out = ws.apply();
    eprintln!("swarm of 3 active in {:.1?}", start.elapsed());
    let cluster = ws.resource("tundra_cluster.c");
    assert_eq!(cluster["status"], "active", "{cluster}");
    assert_eq!(ws.plan().0, 0, "no changes after apply:\n{}\n{out}", ws.plan().1);
    let machine_of = |node_id: &str| machine_of(&s, node_id);
    let names: Vec<String> = members(&cluster).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["sw-mgr-1", "sw-wk-1", "sw-wk-2"]);
    let manager = machine_of(&members(&cluster)[0].1);
    let wait = Duration::from_secs(180);
    let on_manager = |cmd: &str| ssh(&s, &manager, &key, cmd, wait).unwrap_or_else(|e| panic!("on the manager: {e}"));
    // Swarm's own view: three nodes, all Ready and active; the manager
    // advertises its address on the "swarm" network.
    let ls = on_manager("sudo docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'");
    let mut seen: Vec<&str> = ls.lines().collect();
    seen.sort();
    assert_eq!(seen, ["sw-mgr-1 Ready Active", "sw-wk-1 Ready Active", "sw-wk-2 Ready Active"], "{ls}");
    let addr = on_manager("sudo docker info --format '{{.Swarm.NodeAddr}}'");
    assert!(addr.trim().starts_with("10.72.0."), "Swarm traffic on the swarm network: {addr}");
    assert_eq!(cluster["endpoint"], format!("{}:2377", addr.trim()), "{cluster}");

    // A service of 3 replicas, one per node, from a local image each node
    // makes from its own files (no registry).
    let probe = "sudo sh -c 'cd / && tar -ch usr/bin/dash usr/bin/sleep usr/lib/x86_64-linux-gnu/libc.so.6 \
                 usr/lib64/ld-linux-x86-64.so.2 lib64 2>/dev/null | docker import - local/probe >/dev/null'";
    for (_, node) in members(&cluster) {
        ssh(&s, &machine_of(&node), &key, probe, wait).unwrap();
    }
    on_manager(
        "sudo docker service create --detach --name probe --replicas 3 --replicas-max-per-node 1 local/probe \
         /usr/bin/sleep 100000 >/dev/null",
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let ps = on_manager(
            "sudo docker service ps probe --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'",
        );
        let running: Vec<&str> = ps.lines().filter(|l| l.contains("Running")).collect();
        let mut nodes: Vec<&str> = running.iter().map(|l| l.split(' ').next().unwrap()).collect();
        nodes.sort();
        nodes.dedup();
        if nodes.len() == 3 {
            break;
        }
        if Instant::now() >= deadline {
            // Every task with its error, and the nodes as Swarm sees them.
            let all = on_manager(
                "sudo docker service ps probe --no-trunc --format '{{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}'; \
                 sudo docker node ls",
            );
            panic!("3 replicas on 3 nodes: {ps}\nall tasks and nodes:\n{all}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    on_manager("sudo docker service rm probe >/dev/null");

    // Three workers: an update in place, not a replacement.
    let cluster = scale_workers(&mut ws, 3);
    assert_eq!(members(&cluster).len(), 4, "{cluster}");
    let ls = on_manager("sudo docker node ls --format '{{.Hostname}} {{.Status}}'");
    assert_eq!(ls.lines().filter(|l| l.ends_with(" Ready")).count(), 4, "{ls}");
    assert_eq!(ws.plan().0, 0, "no changes after scaling up:\n{}", ws.plan().1);

    // One worker: the manager drains and removes the two newest, then
    // their machines are cleaned.
    let gone: Vec<(String, String)> =
        members(&cluster).into_iter().filter(|(n, _)| n == "sw-wk-2" || n == "sw-wk-3").collect();
    let gone_machines: Vec<String> = gone.iter().map(|(_, id)| machine_of(id)).collect();
    let cluster = scale_workers(&mut ws, 1);
    let left: Vec<String> = members(&cluster).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["sw-mgr-1", "sw-wk-1"], "{cluster}");
    let ls = on_manager("sudo docker node ls --format '{{.Hostname}}'");
    let mut now: Vec<&str> = ls.lines().collect();
    now.sort();
    assert_eq!(now, ["sw-mgr-1", "sw-wk-1"], "Swarm no longer lists the removed nodes: {ls}");
    for (name, id) in &gone {
        let (code, _) = s.site.api("GET", &format!("/v1/nodes/{id}"), None);
        assert_eq!(code, 404, "{name}'s node is gone");
    }
    wait_cleaned(&s, &gone_machines);
    assert_eq!(ws.plan().0, 0, "no changes after scaling down:\n{}", ws.plan().1);
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains("SWMTKN"), "a join token is in the state");
    // Short-lived credentials: a fresh key and a certificate of the
    // cluster's own authority let `tundra-admin` run docker on the manager;
    // the key alone does not.
    let (code, creds) = s.site.api(
        "POST",
        &format!("/v1/clusters/{}/credentials", cluster["id"].as_str().unwrap()),
        Some(serde_json::json!({"ttl_seconds": 600})),
    );
    assert_eq!(code, 200, "{creds}");
    let manager_ip = creds["endpoint"].as_str().unwrap().strip_prefix("ssh://tundra-admin@").unwrap().to_string();
    assert_eq!(manager_ip, addr.trim(), "{creds}");
    let ckey = s.dir.path().join("cluster_key");
    std::fs::write(&ckey, creds["private_key"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&ckey, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cert = s.dir.path().join("cluster_cert.pub");
    std::fs::write(&cert, creds["certificate"].as_str().unwrap()).unwrap();
    let lab: Value = serde_json::from_str(&std::fs::read_to_string(s.dir.path().join("lab.json")).unwrap()).unwrap();
    let at = tundra_lab::os_address(&lab, &manager).unwrap();
    let as_admin = |with_cert: bool| {
        let mut cmd = Command::new("ssh");
        cmd.args(tundra_lab::ssh_options()).args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"]).arg(&ckey);
        if with_cert {
            cmd.arg("-o").arg(format!("CertificateFile={}", cert.display()));
        }
        cmd.arg(format!("tundra-admin@{at}")).arg("docker node ls --format '{{.Hostname}}'").output().unwrap()
    };
    let out = as_admin(true);
    assert!(out.status.success(), "with the certificate: {}", String::from_utf8_lossy(&out.stderr));
    let mut listed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(listed, ["sw-mgr-1", "sw-wk-1"], "docker as tundra-admin with the certificate");
    assert!(!as_admin(false).status.success(), "the key without its certificate is refused");
    let (code, v) = s.site.api(
        "POST",
        &format!("/v1/clusters/{}/credentials", cluster["id"].as_str().unwrap()),
        Some(serde_json::json!({"ttl_seconds": 5})),
    );
    assert_eq!(code, 400, "{v}");

    // Import: forgotten, imported by ID, and the plan is still empty.
    let id = cluster["id"].as_str().unwrap().to_string();
    ws.ok(&["state", "rm", "tundra_cluster.c"]);
    ws.ok(&["import", "-no-color", "tundra_cluster.c", &id]);
    assert_eq!(ws.plan().0, 0, "no changes after import:\n{}", ws.plan().1);
    // What a group's nodes were deployed with does not change in place, and
    // the plan says so instead of replacing the cluster.
    ws.env.push(("TF_VAR_worker_flavor".into(), "big".into()));
    let r = ws.run(&["plan", "-no-color"]);
    let plan = r.all();
    assert_eq!(r.code, 1, "{plan}");
    assert!(plan.contains("Not changed in place") && plan.contains("Add a new group"), "{plan}");
    assert!(!plan.contains("must be replaced"), "{plan}");
    ws.env.retain(|(k, _)| k != "TF_VAR_worker_flavor");

    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    s.wait_all_available(Duration::from_secs(300));
}

/// The environment variable naming the site's k3s air-gap bundle.
pub const K3S_BUNDLE: &str = "TUNDRA_K3S_BUNDLE";

/// Kubernetes with k3s from the site's bundle: one server and two agents,
/// each on two networks with cluster traffic (the kubelet's node IP,
/// flannel) on the second. `active` only once the API server answers
/// `/readyz` and lists three nodes Ready; a kubeconfig from the credentials
/// endpoint works against it; `count = 3` adds an agent in place and
/// `count = 1` drains, deletes and cleans two; no token is in the state.
/// Registered only when `TUNDRA_K3S_BUNDLE` names the bundle.
pub fn k3s_on_the_lab() {
    let bundle = std::env::var(K3S_BUNDLE).expect("registered only with the bundle");
    let (s, mut ws, key) = cluster_lab("kubernetes", "kube", &[("TF_VAR_bundle_path", bundle)]);
    let start = Instant::now();
    let out = ws.apply();
    eprintln!("k3s cluster of 3 active in {:.1?}", start.elapsed());
    let cluster = ws.resource("tundra_cluster.c");
    assert_eq!(cluster["status"], "active", "{cluster}");
    assert_eq!(ws.plan().0, 0, "no changes after apply:\n{}\n{out}", ws.plan().1);
    let names: Vec<String> = members(&cluster).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["kube-mgr-1", "kube-wk-1", "kube-wk-2"]);
    let server = machine_of(&s, &members(&cluster)[0].1);
    let wait = Duration::from_secs(180);
    let on_server = |cmd: &str| ssh(&s, &server, &key, cmd, wait).unwrap_or_else(|e| panic!("on the server: {e}"));
    // Kubernetes' own view: three nodes Ready, each on the cluster network.
    let ready = |listing: &str| -> Vec<String> {
        let mut v: Vec<String> = listing
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 6 && f[1] == "Ready").then(|| format!("{} {}", f[0], f[5]))
            })
            .collect();
        v.sort();
        v
    };
    let ls = on_server("sudo k3s kubectl get nodes -o wide --no-headers");
    let nodes = ready(&ls);
    assert_eq!(nodes.len(), 3, "{ls}");
    assert!(
        nodes.iter().all(|n| n.split(' ').nth(1).unwrap().starts_with("10.72.0.")),
        "node IPs on the cluster network: {ls}"
    );
    assert_eq!(on_server("sudo k3s kubectl get --raw /readyz").trim(), "ok");
    let endpoint = cluster["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("https://10.72.0.") && endpoint.ends_with(":6443"), "{cluster}");
    assert!(cluster["ca_certificate"].as_str().unwrap().contains("BEGIN CERTIFICATE"), "{cluster}");

    // A kubeconfig from tundrad's credentials: its certificate, signed by
    // the cluster's client CA, is an admin's to the API server.
    let (code, creds) = s.site.api(
        "POST",
        &format!("/v1/clusters/{}/credentials", cluster["id"].as_str().unwrap()),
        Some(serde_json::json!({"ttl_seconds": 600})),
    );
    assert_eq!(code, 200, "{creds}");
    assert_eq!(creds["endpoint"], endpoint.as_str());
    let kc = creds["kubeconfig"].as_str().unwrap().replace('\'', "");
    let got = on_server(&format!(
        "umask 077; printf '%s' '{kc}' > /tmp/kc && k3s kubectl --kubeconfig /tmp/kc get nodes --no-headers -o wide; rm -f /tmp/kc"
    ));
    assert_eq!(ready(&got).len(), 3, "kubectl with tundrad's kubeconfig: {got}");

    // Three agents: in place; one agent: two drained, deleted and cleaned.
    let cluster = scale_workers(&mut ws, 3);
    assert_eq!(members(&cluster).len(), 4, "{cluster}");
    assert_eq!(ready(&on_server("sudo k3s kubectl get nodes -o wide --no-headers")).len(), 4);
    let gone: Vec<String> = members(&cluster)
        .into_iter()
        .filter(|(n, _)| n == "kube-wk-2" || n == "kube-wk-3")
        .map(|(_, id)| machine_of(&s, &id))
        .collect();
    let cluster = scale_workers(&mut ws, 1);
    let left: Vec<String> = members(&cluster).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["kube-mgr-1", "kube-wk-1"], "{cluster}");
    let ls = on_server("sudo k3s kubectl get nodes --no-headers -o wide");
    let listed: Vec<String> = ready(&ls).into_iter().map(|n| n.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(listed, ["kube-mgr-1", "kube-wk-1"], "Kubernetes no longer lists the removed nodes: {ls}");
    wait_cleaned(&s, &gone);
    assert_eq!(ws.plan().0, 0, "no changes after scaling down:\n{}", ws.plan().1);
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    for file in ["token", "agent-token"] {
        let token = on_server(&format!("sudo cat /var/lib/rancher/k3s/server/{file}"));
        let password = token.trim().rsplit(':').next().unwrap().to_string();
        assert!(password.len() > 20 && !state.contains(&password), "the {file} is in the state");
    }
    assert!(!state.contains("PRIVATE KEY"), "a key is in the state");
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    s.wait_all_available(Duration::from_secs(300));
}

/// `modules/kubernetes/examples/basic` from the site's bundle: a server
/// and two agents on two networks, a CephFS share mounted on every node
/// and offered to pods. Applied again with `kubectl` set — the bundle's own
/// `k3s kubectl`, run in the server's network namespace (the lab's host has
/// no route to cluster networks) — the module applies the share's volume
/// and claim with the run's ephemeral kubeconfig. A pod on one agent
/// writes into the claim; another node reads the file from its own mount
/// of the share. No key in the state; destroy cleans. Registered only
/// when `TUNDRA_K3S_BUNDLE` names the bundle (2 GiB disks: k3s and its
/// images unpack on the node).
pub fn kubernetes_module_on_the_lab() {
    let bundle = std::env::var(K3S_BUNDLE).expect("registered only with the bundle");
    let image = crate::os::built_image(&tundra_lab::image::lab_recipe());
    let s = LabSite::start_with(&crate::os::lab_site(4, 3, 2048), |c| {
        c.fabric_read_interval = "2s".into();
        c.node_mount_refresh = "3s".into();
    });
    let ceph = crate::peers::Ceph::start(&s.lab().provisioning.server_ip);
    let mut admin = s.site.workspace(&crate::fabric::admin_tf());
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();

    // The site: the share type, the image, the module's template with the bundle.
    let site_tf = format!(
        r#"{}
variable "bundle_path" {{
  type = string
}}

module "template" {{
  source      = "./kubernetes/template"
  bundle_path = var.bundle_path
}}
"#,
        crate::platforms::site_base_tf("debian-12-lab")
    );
    let mut site = s.site.workspace(&site_tf);
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/kubernetes");
    crate::modules::copy_tree(&module, &site.path().join("kubernetes"));
    site.env.push(("TF_VAR_ceph_monitor".into(), ceph.monitor.clone()));
    site.env.push(("TF_VAR_ceph_key".into(), ceph.key.clone()));
    site.env.push(("TF_VAR_image_path".into(), image.display().to_string()));
    site.env.push(("TF_VAR_bundle_path".into(), bundle.clone()));
    site.ok(&["init", "-no-color"]);
    site.apply();
    let output = |name: &str| site.ok(&["output", "-raw", name]).trim().to_string();

    // kubectl on this side: the bundle's own k3s binary.
    let listing = Command::new("tar").arg("-tf").arg(&bundle).output().unwrap();
    assert!(listing.status.success(), "tar -tf {bundle}");
    let member = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .find(|l| l.rsplit('/').next() == Some("k3s"))
        .unwrap_or_else(|| panic!("no k3s binary in {bundle}"))
        .to_string();
    let bin = s.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let x = Command::new("tar").arg("-xf").arg(&bundle).arg("-C").arg(&bin).arg(&member).status().unwrap();
    assert!(x.success(), "extracting {member} from {bundle}");
    let k3s = bin.join(&member);

    let (key, public) = crate::os::keypair(s.dir.path(), "k8s-test");
    let mut ex = crate::platforms::Example::new(&s, "kubernetes", "kubernetes/examples/basic");
    ex.set("image_id", &output("image_id"));
    ex.set("share_type_id", &output("share_type_id"));
    ex.set("public_key", &public);
    ex.ok(&["init", "-no-color"]);
    let start = Instant::now();
    let out = ex.apply();
    eprintln!("kubernetes module: 1 server + 2 agents active in {:.1?}", start.elapsed());
    let (code, plan) = ex.plan();
    assert_eq!(code, 0, "no changes after apply:\n{plan}\n{out}");
    let nodes: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&ex.ok(&["output", "-json", "nodes"])).unwrap();
    let names: Vec<&str> = nodes.keys().map(String::as_str).collect();
    assert_eq!(names, ["k8s-control-plane-1", "k8s-workers-1", "k8s-workers-2"], "{nodes:?}");

    let list = s.get("/v1/clusters?limit=100");
    let cluster = list["items"].as_array().unwrap().iter().find(|c| c["name"] == "k8s").unwrap().clone();
    let cluster = s.get(&format!("/v1/clusters/{}", cluster["id"].as_str().unwrap()));
    let machine = |member: &str| {
        let (_, id) = members(&cluster).into_iter().find(|(n, _)| n == member).unwrap();
        machine_of(&s, &id)
    };
    let wait = Duration::from_secs(240);
    let server = machine("k8s-control-plane-1");
    let on_server = |cmd: &str| ssh(&s, &server, &key, cmd, wait).unwrap_or_else(|e| panic!("on the server: {e}"));

    // kubectl set: the volumes are applied with this run's kubeconfig.
    let ns = s.lab().machine(&server).unwrap().firmware.ns.clone();
    let wrapper = bin.join("kubectl");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec ip netns exec {ns} {} kubectl \"$@\"\n", k3s.display())).unwrap();
    assert!(Command::new("chmod").arg("0755").arg(&wrapper).status().unwrap().success());
    ex.set("kubectl", &wrapper.display().to_string());
    let out = ex.apply();
    assert!(out.contains("1 added, 0 changed, 0 destroyed"), "the volumes applied:\n{out}");
    assert_eq!(ex.plan().0, 0, "no changes after applying the volumes");
    let phase = on_server("sudo k3s kubectl get pvc data -o jsonpath='{.status.phase} {.spec.volumeName}'");
    assert_eq!(phase.trim(), "Bound k8s-data", "the module's claim");

    // A pod on one agent writes into the claim (an image of the bundle:
    // nothing is pulled), another node reads the file from its mount.
    let images = on_server("sudo k3s ctr images ls -q");
    let busybox = images
        .lines()
        .find(|l| l.contains("busybox") && !l.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no busybox image from the bundle: {images}"))
        .trim()
        .to_string();
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  nodeName: k8s-workers-1
  restartPolicy: Never
  containers:
    - name: writer
      image: {busybox}
      imagePullPolicy: Never
      command: ["sh", "-c", "echo written by a pod > /data/from-a-pod.txt"]
      volumeMounts:
        - {{name: data, mountPath: /data}}
  volumes:
    - name: data
      persistentVolumeClaim: {{claimName: data}}
"#
    );
    let ran = on_server(&format!(
        "sudo k3s kubectl apply -f - <<'YAML'\n{pod}YAML\n\
         sudo k3s kubectl wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/writer --timeout=180s 2>&1 || \
         sudo k3s kubectl describe pod writer"
    ));
    assert!(ran.contains("condition met"), "the pod did not finish: {ran}");
    let other = machine("k8s-workers-2");
    let read = ssh(&s, &other, &key, "cat /mnt/shares/data/from-a-pod.txt", wait).unwrap();
    assert_eq!(read.trim(), "written by a pod", "k8s-workers-2 reads what the pod wrote");

    let state = ex.state_text();
    assert!(!state.contains(&ceph.key), "the Ceph key is in the state");
    assert!(!state.contains("PRIVATE KEY"), "a key is in the state");
    assert!(!state.contains("client-key-data"), "a kubeconfig is in the state");
    ex.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    s.wait_all_available(Duration::from_secs(300));
}
