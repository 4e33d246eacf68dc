//! The platform modules doing their job on the lab, applied through a real
//! Terraform exactly as a site would: `modules/openhpc/examples/basic`
//! makes a Slurm cluster (one login node running slurmctld, compute nodes
//! running slurmd as configless dynamic nodes, munge, a CephFS `/home`, two
//! networks) from the site's published template, on nodes booting the
//! lab's Debian image with Debian's own Slurm and munge. Checked as a user
//! would on the login node: `sinfo`, `srun`, a batch job writing to `/home`;
//! then scaled up in place (slurmctld keeps running) and down (the leaving
//! nodes drained first), a node rebuilt with the platform's next image by
//! Slurm's own `scontrol reboot` (the template's RebootProgram asks
//! tundrad), and destroyed leaving nothing behind.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::nodes::LabSite;
use crate::os::{console_tail, ssh};
use crate::support::Workspace;

/// What every platform site has: the provider, a CephFS share type on the
/// lab's Ceph (`TF_VAR_ceph_monitor`, `TF_VAR_ceph_key`) and the node image
/// (`TF_VAR_image_path`, named `image_name`), with their IDs as outputs.
pub(crate) fn site_base_tf(image_name: &str) -> String {
    format!(
        r#"{}
variable "ceph_monitor" {{
  type = string
}}

variable "ceph_key" {{
  type      = string
  sensitive = true
}}

variable "image_path" {{
  type = string
}}

resource "tundra_share_type" "ceph" {{
  name       = "cephfs"
  backend    = "cephfs"
  monitors   = [var.ceph_monitor]
  fs_name    = "tundra"
  credential = var.ceph_key
}}

resource "tundra_image" "os" {{
  name        = "{image_name}"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}}

output "share_type_id" {{
  value = tundra_share_type.ceph.id
}}

output "image_id" {{
  value = tundra_image.os.id
}}
"#,
        crate::steps::header()
    )
}

/// What a site admin does once: the share type for `/home`, the modules'
/// templates published, and the node image.
fn site_tf() -> String {
    format!(
        r#"{}
module "template" {{
  source = "./openhpc/template"
}}

module "dask_template" {{
  source = "./dask/template"
}}

module "jupyter_template" {{
  source = "./jupyter/template"
}}

# The platform's next image (the same bytes here: what a rebuild writes is
# checked by the node's disk being written anew, not by its contents).
resource "tundra_image" "next" {{
  name        = "debian-12-hpc-next"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}}

output "next_image_id" {{
  value = tundra_image.next.id
}}
"#,
        site_base_tf("debian-12-hpc")
    )
}

/// Terraform in a module's example directory, as a user runs it: the
/// example in a copy of the module (`MODULE/examples/NAME`).
pub(crate) struct Example {
    ws: Workspace,
    dir: &'static str,
}

impl Example {
    pub(crate) fn new(s: &LabSite, module: &str, dir: &'static str) -> Example {
        let ex = Example { ws: s.site.workspace(""), dir };
        std::fs::remove_file(ex.ws.path().join("main.tf")).unwrap();
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules").join(module);
        crate::modules::copy_tree(&from, &ex.ws.path().join(module));
        ex
    }

    /// Terraform in `dir`, a directory of the repository (an example
    /// composing modules by relative paths), with `paths` copied beside it
    /// as they are laid out in the repository.
    pub(crate) fn in_repository(s: &LabSite, paths: &[&str], dir: &'static str) -> Example {
        let ex = Example { ws: s.site.workspace(""), dir };
        std::fs::remove_file(ex.ws.path().join("main.tf")).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for p in paths.iter().chain([&dir]) {
            crate::modules::copy_tree(&root.join(p), &ex.ws.path().join(p));
        }
        ex
    }

    pub(crate) fn run(&self, args: &[&str]) -> crate::support::Run {
        let chdir = format!("-chdir={}", self.dir);
        let mut all = vec![chdir.as_str()];
        all.extend_from_slice(args);
        self.ws.run(&all)
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "terraform {args:?}:\n{}", r.all());
        r.stdout
    }

    pub(crate) fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    /// The first `apply`, timed, then a plan with nothing to do: when it
    /// started, and how long the apply took.
    pub(crate) fn apply_settled(&self) -> (Instant, Duration) {
        let start = Instant::now();
        let out = self.apply();
        let took = start.elapsed();
        let (code, plan) = self.plan();
        assert_eq!(code, 0, "no changes after apply:\n{plan}\n{out}");
        (start, took)
    }

    /// `terraform plan -detailed-exitcode`: 0 when there is nothing to do.
    pub(crate) fn plan(&self) -> (i32, String) {
        let r = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        assert!(r.code == 0 || r.code == 2, "plan failed:\n{}", r.all());
        (r.code, r.all())
    }

    pub(crate) fn set(&mut self, var: &str, value: &str) {
        let k = format!("TF_VAR_{var}");
        self.ws.env.retain(|(n, _)| *n != k);
        self.ws.env.push((k, value.to_string()));
    }

    pub(crate) fn state_text(&self) -> String {
        std::fs::read_to_string(self.ws.path().join(self.dir).join("terraform.tfstate")).unwrap()
    }
}

/// The appliance `name` as tundrad has it.
fn appliance(s: &LabSite, name: &str) -> Value {
    let list = s.get("/v1/appliances?limit=100");
    let items = list["items"].as_array().unwrap();
    let Some(a) = items.iter().find(|a| a["name"] == name) else { panic!("no appliance {name}: {list}") };
    s.get(&format!("/v1/appliances/{}", a["id"].as_str().unwrap()))
}

/// (member name, machine name) of the appliance's members in `role`.
fn role_machines(s: &LabSite, a: &Value, role: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = a["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == role)
        .map(|m| {
            let node = s.get(&format!("/v1/nodes/{}", m["node_id"].as_str().unwrap()));
            let machine = s.get(&format!("/v1/machines/{}", node["machine_id"].as_str().unwrap()));
            (m["name"].as_str().unwrap().to_string(), machine["name"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

/// Slurm's node list as `sinfo` has it: (name, state), sorted.
fn sinfo(on_login: &dyn Fn(&str) -> String) -> Vec<(String, String)> {
    let out = on_login("sinfo -h -N -o '%N %T'");
    let mut nodes: Vec<(String, String)> =
        out.lines().filter_map(|l| l.split_once(' ')).map(|(n, st)| (n.to_string(), st.trim().to_string())).collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// Wait until `sinfo` lists exactly `names`, every one idle.
fn wait_idle(on_login: &dyn Fn(&str) -> String, names: &[String]) {
    wait_idle_within(on_login, names, Duration::from_secs(180), &|| String::new());
}

/// Wait up to `within` until `sinfo` lists exactly `names`, every one
/// idle; a failure says what slurmctld logged, and `more`.
fn wait_idle_within(on_login: &dyn Fn(&str) -> String, names: &[String], within: Duration, more: &dyn Fn() -> String) {
    wait_states(on_login, names, &["idle"], within, more)
}

/// Wait up to `within` until `sinfo` lists exactly `names`, each in one
/// of `states`.
fn wait_states(
    on_login: &dyn Fn(&str) -> String,
    names: &[String],
    states: &[&str],
    within: Duration,
    more: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + within;
    loop {
        let seen = sinfo(on_login);
        if seen.iter().map(|(n, _)| n).eq(names.iter()) && seen.iter().all(|(_, st)| states.contains(&st.as_str())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sinfo shows {seen:?}, not {names:?} {states:?}; slurmctld says:\n{}\n{}",
            on_login("sudo journalctl -u slurmctld --no-pager | tail -30"),
            more()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `srun -N{n} hostname` on the login node: the host names, sorted, and
/// what it printed.
fn srun_hosts(on_login: &dyn Fn(&str) -> String, n: usize) -> (Vec<String>, String) {
    let ran = on_login(&format!("srun -N{n} hostname"));
    let mut hosts: Vec<String> = ran.lines().map(|l| l.trim().to_string()).collect();
    hosts.sort();
    (hosts, ran)
}

/// slurmctld's process ID on the login node.
fn slurmctld_pid(on_login: &dyn Fn(&str) -> String) -> String {
    let pid = on_login("systemctl show -p MainPID --value slurmctld").trim().to_string();
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "slurmctld is not running: {pid:?}");
    pid
}

pub fn openhpc_on_the_lab() {
    let image = crate::os::built_image(&tundra_lab::image::platform_recipe());
    // Slurm: a login node and up to four compute nodes; Dask, beside
    // Slurm's last three: a scheduler and up to four workers; JupyterHub
    // beside them: a hub. Each machine has a NIC for provisioning and one
    // per network of the examples, and a disk the platform image fits.
    let s = LabSite::start_with(&crate::os::lab_site(9, 3, 2048), |c| {
        c.fabric_read_interval = "2s".into();
        c.node_mount_refresh = "3s".into();
    });
    let ceph = crate::peers::Ceph::start(&s.lab().provisioning.server_ip);
    let mut admin = s.site.workspace(&crate::fabric::admin_tf());
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();

    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules");
    let mut site = s.site.workspace(&site_tf());
    for m in ["openhpc", "dask", "jupyter"] {
        crate::modules::copy_tree(&modules.join(m), &site.path().join(m));
    }
    site.env.push(("TF_VAR_ceph_monitor".into(), ceph.monitor.clone()));
    site.env.push(("TF_VAR_ceph_key".into(), ceph.key.clone()));
    site.env.push(("TF_VAR_image_path".into(), image.display().to_string()));
    site.ok(&["init", "-no-color"]);
    site.apply();
    let output = |name: &str| site.ok(&["output", "-raw", name]).trim().to_string();

    let (key, public) = crate::os::keypair(s.dir.path(), "hpc-test");

    // The example, as a user runs it: its directory in a copy of the module.
    let mut ex = Example::new(&s, "openhpc", "openhpc/examples/basic");
    ex.set("image_id", &output("image_id"));
    ex.set("share_type_id", &output("share_type_id"));
    ex.set("public_key", &public);
    ex.ok(&["init", "-no-color"]);
    let (_, took) = ex.apply_settled();
    eprintln!("slurm: 1 login + 3 compute active in {:.1?}", took);

    let a = appliance(&s, "hpc");
    assert_eq!(a["status"], "active", "{a}");
    let login = role_machines(&s, &a, "login");
    assert_eq!(login.len(), 1, "{a}");
    let (login_name, login_machine) = login[0].clone();
    let wait = Duration::from_secs(180);
    let on_login = |cmd: &str| {
        ssh(&s, &login_machine, &key, cmd, wait).unwrap_or_else(|e| {
            panic!("on {login_name}: {e}\n{}", console_tail(&s.lab().machine(&login_machine).unwrap().firmware.log))
        })
    };
    let compute: Vec<String> = role_machines(&s, &a, "compute").into_iter().map(|(n, _)| n).collect();
    assert_eq!(compute, ["hpc-compute-0", "hpc-compute-1", "hpc-compute-2"], "{a}");
    // The module's outputs name the same nodes.
    let names: Vec<String> = serde_json::from_str(&ex.ok(&["output", "-json", "compute_nodes"])).unwrap();
    assert_eq!(names, compute);

    // Slurm's own view: three compute nodes, idle; a job on all three.
    wait_idle(&on_login, &compute);
    eprintln!("sinfo: {:?}", sinfo(&on_login));
    let (hosts, ran) = srun_hosts(&on_login, 3);
    assert_eq!(hosts, compute, "srun -N3 hostname:\n{ran}");
    // Slurm's traffic is on the Slurm network (10.81.0.0/24 in the example).
    let addrs = on_login("scontrol show nodes | grep -o 'NodeAddr=[^ ]*'");
    assert!(
        addrs.lines().filter(|l| l.starts_with("NodeAddr=10.81.0.")).count() == 3,
        "compute nodes' Slurm addresses on hpc-slurm:\n{addrs}"
    );

    // A batch job on a compute node writes to /home; the login node reads it.
    let job = on_login(
        "mkdir -p ~/jobs && cd ~/jobs && sbatch --parsable -N1 -o job.out --wrap 'echo wrote-on $(hostname)' ",
    );
    let job = job.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        let r = on_login("cat ~/jobs/job.out 2>/dev/null || true");
        if r.contains("wrote-on") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "batch job {job} wrote nothing to /home: {}",
            on_login(&format!("scontrol show job {job} 2>&1 | head -20; df -h /home"))
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let host = result.trim().strip_prefix("wrote-on ").unwrap_or_default();
    assert!(compute.iter().any(|c| c == host), "the job ran on a compute node: {result}");
    let fs = on_login("stat -f -c %T /home; findmnt -n -o FSTYPE /home");
    assert!(fs.contains("fuse"), "/home is the CephFS share (ceph-fuse): {fs}");

    // compute_count = 4: in place, slurmctld not restarted, srun -N4 works.
    let pid = slurmctld_pid(&on_login);
    ex.set("compute_count", "4");
    let (code, plan) = ex.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "an update in place:\n{plan}");
    assert!(plan.contains("module.slurm.tundra_appliance.slurm will be updated in-place"), "{plan}");
    ex.apply();
    assert_eq!(ex.plan().0, 0, "no changes after scaling to 4:\n{}", ex.plan().1);
    let a = appliance(&s, "hpc");
    let compute4: Vec<String> = role_machines(&s, &a, "compute").into_iter().map(|(n, _)| n).collect();
    assert_eq!(compute4.len(), 4, "{a}");
    assert!(compute.iter().all(|c| compute4.contains(c)), "the first three stay: {compute4:?}");
    wait_idle(&on_login, &compute4);
    let (hosts, ran) = srun_hosts(&on_login, 4);
    assert_eq!(hosts, compute4, "srun -N4 hostname:\n{ran}");
    assert_eq!(slurmctld_pid(&on_login), pid, "slurmctld was restarted by the scale-up");

    // compute_count = 2: two nodes drained in Slurm before their nodes go.
    ex.set("compute_count", "2");
    let (code, plan) = ex.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "{plan}");
    ex.apply();
    assert_eq!(ex.plan().0, 0, "no changes after scaling to 2:\n{}", ex.plan().1);
    let a = appliance(&s, "hpc");
    let compute2: Vec<String> = role_machines(&s, &a, "compute").into_iter().map(|(n, _)| n).collect();
    assert_eq!(compute2.len(), 2, "{a}");
    let gone: Vec<&String> = compute4.iter().filter(|c| !compute2.contains(c)).collect();
    // Each leaving node was drained in Slurm (slurmctld logged the reason)
    // and deleted from it by the login node's agent, which reported it
    // drained; only then did tundrad delete its node.
    let log = on_login("sudo journalctl -u slurmctld --no-pager -o cat");
    let agent = on_login("sudo journalctl -u tundra-appliance --no-pager -o cat");
    for g in &gone {
        let drained: Vec<&str> =
            log.lines().filter(|l| l.contains(g.as_str()) && l.contains("reason set to: scale-down")).collect();
        assert!(
            !drained.is_empty(),
            "{g} was not drained in Slurm; slurmctld said:\n{}",
            log.lines().filter(|l| l.contains(g.as_str())).collect::<Vec<_>>().join("\n")
        );
        assert!(agent.contains(&format!("tundra-appliance: drained {g}")), "{g}: the agent said:\n{agent}");
        let known = on_login(&format!("scontrol show node {g} 2>&1 || true"));
        assert!(known.contains("not found"), "{g} is still a Slurm node: {known}");
        eprintln!("{g}: {}", drained[0]);
    }
    wait_idle(&on_login, &compute2);
    assert_eq!(slurmctld_pid(&on_login), pid, "slurmctld was restarted by the scale-down");

    // Dask and JupyterHub on the machines Slurm left free, while Slurm
    // rebuilds a node.
    let image_id = output("image_id");
    let share_type_id = output("share_type_id");
    std::thread::scope(|scope| {
        // The composed platform takes the machines Dask leaves.
        let dask = scope.spawn(|| {
            dask_on_the_lab(&s, &key, &public, &image_id);
            platforms_example_on_the_lab(&s, &key, &public, &image_id, &share_type_id);
        });
        let jupyter = scope.spawn(|| jupyter_on_the_lab(&s, &key, &public, &image_id, &share_type_id));
        rebuild_through_slurm(&s, &mut ex, &key, &output, &compute2, &on_login, &pid);
        dask.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        jupyter.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
    let a = appliance(&s, "hpc");
    assert_eq!(a["status"], "active", "{a}");

    // No generated secret in the state: not the munge key, not Ceph's.
    let state = ex.state_text();
    let munge = on_login("sudo base64 -w0 /etc/munge/munge.key");
    assert_eq!(munge.trim().len(), 1368, "a 1024-byte munge key");
    assert!(!state.contains(munge.trim()), "the munge key is in the state");
    assert!(!appliance(&s, "hpc").to_string().contains(munge.trim()), "the munge key is in the API's answer");
    assert!(!state.contains(&ceph.key), "the Ceph admin key is in the state");
    assert!(!site.read("terraform.tfstate").contains(&ceph.key), "the Ceph admin key is in the site's state");

    // Destroy: every node cleaned, and the share gone from Ceph.
    let machines: Vec<String> =
        role_machines(&s, &a, "compute").into_iter().chain(role_machines(&s, &a, "login")).map(|(_, m)| m).collect();
    ex.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty(), "{:?}", s.nodes());
    assert_eq!(s.get("/v1/appliances?limit=100")["items"], serde_json::json!([]));
    assert_eq!(s.get("/v1/shares?limit=100")["items"], serde_json::json!([]));
    s.wait_all_available(Duration::from_secs(300));
    for m in &machines {
        assert_ne!(s.lab().machine(m).unwrap().firmware.status(), "os", "{m} no longer runs its OS");
    }
    let project = s.get("/v1/projects/astro")["id"].as_str().unwrap().replace('-', "");
    let left = ceph.cli(&["fs", "subvolume", "ls", "tundra", "--group_name", &project]);
    assert!(left.as_ref().map(|v| v.as_array().unwrap().is_empty()).unwrap_or(true), "subvolumes left: {left:?}");
    let auth = ceph.cli(&["auth", "ls"]).unwrap().to_string();
    assert!(!auth.contains("client.tundra."), "cephx IDs left: {auth}");
}

/// Rebuilt through Slurm: the platform gets its next image (running nodes
/// keep theirs), then `scontrol reboot ASAP reason=rebuild` — Slurm drains
/// the node and runs the template's RebootProgram on it, which asks tundrad
/// to deploy it again with the appliance's image. Slurm sees it come back
/// and returns it to service.
fn rebuild_through_slurm(
    s: &LabSite,
    ex: &mut Example,
    key: &Path,
    output: &dyn Fn(&str) -> String,
    compute2: &[String],
    on_login: &dyn Fn(&str) -> String,
    pid: &str,
) {
    let wait = Duration::from_secs(180);
    let (first_image, next_image) = (output("image_id"), output("next_image_id"));
    ex.set("image_id", &next_image);
    let (code, plan) = ex.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "a new image is an update in place:\n{plan}");
    ex.apply();
    assert_eq!(ex.plan().0, 0, "no changes after the new image:\n{}", ex.plan().1);
    let a = appliance(s, "hpc");
    let target = compute2[0].clone();
    let member = a["members"].as_array().unwrap().iter().find(|m| m["name"] == target.as_str()).unwrap();
    let node_id = member["node_id"].as_str().unwrap().to_string();
    let node = s.get(&format!("/v1/nodes/{node_id}"));
    assert_eq!(node["image_id"].as_str(), Some(first_image.as_str()), "a running node keeps its image: {node}");
    let machine =
        s.get(&format!("/v1/machines/{}", node["machine_id"].as_str().unwrap()))["name"].as_str().unwrap().to_string();
    let on_target = |cmd: &str| {
        ssh(s, &machine, key, cmd, wait).unwrap_or_else(|e| {
            panic!("on {target}: {e}\n{}", console_tail(&s.lab().machine(&machine).unwrap().firmware.log))
        })
    };
    on_target("sudo touch /var/lib/written-before-the-rebuild");
    let up_before: f64 = on_target("cut -d' ' -f1 /proc/uptime").trim().parse().unwrap();
    let start = Instant::now();
    on_login(&format!("sudo scontrol reboot ASAP reason=rebuild {target}"));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = s.get(&format!("/v1/nodes/{node_id}"));
        if n["image_id"].as_str() == Some(next_image.as_str()) && n["status"] == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{target} was not rebuilt: {n}\nslurmctld says:\n{}",
            on_login("sudo journalctl -u slurmctld --no-pager | tail -20")
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("{target}: rebuilt with the next image in {:.1?}", start.elapsed());
    assert_eq!(s.get(&format!("/v1/nodes/{node_id}"))["name"], target.as_str(), "the same node");
    wait_idle_within(&on_login, compute2, Duration::from_secs(240), &|| {
        format!(
            "{target} after its rebuild:\n{}\non {target}:\n{}\nappliance: {}",
            on_login(&format!("scontrol show node {target}")),
            on_target(
                "cut -d' ' -f1 /proc/uptime; systemctl is-active slurmd; sudo journalctl -u slurmd --no-pager -o cat | tail -25; \
                 sudo journalctl -u tundra-appliance --no-pager -o cat | tail -8"
            ),
            appliance(s, "hpc")
        )
    });
    eprintln!("{target}: back in Slurm, idle, {:.1?} after the reboot was asked", start.elapsed());
    let fresh =
        on_target("test -e /var/lib/written-before-the-rebuild && echo kept || echo gone; cut -d' ' -f1 /proc/uptime");
    let mut lines = fresh.lines();
    assert_eq!(lines.next(), Some("gone"), "{target}'s disk was written anew");
    let up_after: f64 = lines.next().unwrap().trim().parse().unwrap();
    assert!(up_after < start.elapsed().as_secs_f64(), "{target} booted after the reboot was asked: up {up_after} s");
    eprintln!("{target}: uptime {up_before:.0} s before, {up_after:.0} s after");
    let log = on_login("sudo journalctl -u slurmctld --no-pager -o cat");
    assert!(
        log.lines().any(|l| l.contains(target.as_str()) && l.to_lowercase().contains("reboot")),
        "slurmctld saw no reboot of {target}:\n{}",
        log.lines().filter(|l| l.contains(target.as_str())).collect::<Vec<_>>().join("\n")
    );
    let (hosts, ran) = srun_hosts(&on_login, 2);
    assert_eq!(hosts, compute2, "srun -N2 hostname after the rebuild:\n{ran}");
    assert_eq!(slurmctld_pid(&on_login), pid, "slurmctld was restarted by the rebuild");
}

/// The sum of 0..10⁷ (`da.arange(10**7).sum()`).
const ARANGE_SUM: &str = "49999995000000";

/// The Dask client the scheduler node's default user runs: the sum of a
/// 10⁷-element array in ten chunks, computed on the cluster, then the
/// workers the scheduler knows and those that hold the chunks.
const DASK_CLIENT: &str = r#"python3 - <<'PY'
from distributed import Client, wait
import dask.array as da
c = Client(timeout=30)
x = da.arange(10**7, chunks=10**6, dtype="int64").persist()
wait(x)
print(int(x.sum().compute()))
workers = c.scheduler_info()["workers"]
print(" ".join(sorted(w["name"] for w in workers.values())))
held = {a for addrs in c.who_has(x).values() for a in addrs}
print(" ".join(sorted(workers[a]["name"] for a in held)))
PY"#;

/// Run `DASK_CLIENT` on the scheduler node: the sum is exact, the
/// scheduler's workers are `workers` by name, and the chunks are on them.
fn dask_computes(on_sched: &dyn Fn(&str) -> String, workers: &[String], when: &str) {
    let ran = on_sched(DASK_CLIENT);
    let lines: Vec<&str> = ran.lines().collect();
    assert_eq!(lines.first().copied(), Some(ARANGE_SUM), "the sum of 0..10^7 {when}:\n{ran}");
    assert_eq!(lines.get(1).copied(), Some(workers.join(" ").as_str()), "the scheduler's workers {when}:\n{ran}");
    let held: Vec<&str> = lines.get(2).map(|l| l.split(' ').collect()).unwrap_or_default();
    assert!(!held.is_empty() && held.iter().all(|w| workers.iter().any(|n| n == w)), "chunks {when}: {ran}");
    eprintln!("dask {when}: sum {} on {}; chunks held by {}", lines[0], lines[1], lines[2]);
}

/// A TLS handshake with the scheduler without a client certificate: Dask
/// must refuse it (mutual TLS), as it refuses plain TCP.
const NO_CLIENT_CERT: &str = r#"python3 - <<'PY'
import socket, ssl
ctx = ssl.create_default_context(cafile="/etc/dask/tls/ca.pem")
ctx.check_hostname = False
try:
    s = ctx.wrap_socket(socket.create_connection(("ADDR", 8786), timeout=10))
    s.sendall(b"x")
    s.recv(1)
    print("accepted")
except ssl.SSLError as e:
    print("refused:", e)
PY"#;

/// Dask from `modules/dask/examples/basic`, on the machines Slurm left
/// free: a scheduler and three workers, a real computation with an exact
/// result on the workers the scheduler reports, the dashboard, TLS refused
/// without the appliance's certificate, a fourth worker in place (the
/// scheduler keeps running), one retired again, no key in the state, and
/// destroyed — its machines cleaned.
fn dask_on_the_lab(s: &LabSite, key: &Path, public: &str, image_id: &str) {
    // Five machines free (up to four workers and the scheduler), once the
    // ones Slurm's scale-down gave back are cleaned.
    s.wait_machines(Duration::from_secs(300), "five machines are not available for Dask", |ms| {
        ms.iter().filter(|m| m["provision_state"] == "available").count() >= 5
    });
    let mut ex = Example::new(s, "dask", "dask/examples/basic");
    ex.set("image_id", image_id);
    ex.set("public_key", public);
    ex.ok(&["init", "-no-color"]);
    let (start, took) = ex.apply_settled();
    eprintln!("dask: a scheduler and 3 workers active in {:.1?}", took);
    let a = appliance(s, "dask");
    assert_eq!(a["status"], "active", "{a}");
    let (sched_name, sched_machine) = role_machines(s, &a, "scheduler")[0].clone();
    let on_sched = |cmd: &str| {
        ssh(s, &sched_machine, key, cmd, Duration::from_secs(180)).unwrap_or_else(|e| {
            panic!("on {sched_name}: {e}\n{}", console_tail(&s.lab().machine(&sched_machine).unwrap().firmware.log))
        })
    };
    let workers: Vec<String> = role_machines(s, &a, "worker").into_iter().map(|(n, _)| n).collect();
    assert_eq!(workers, ["dask-worker-0", "dask-worker-1", "dask-worker-2"], "{a}");
    let names: Vec<String> = serde_json::from_str(&ex.ok(&["output", "-json", "workers"])).unwrap();
    assert_eq!(names, workers);
    let address = ex.ok(&["output", "-raw", "scheduler_address"]);
    assert!(address.starts_with("tls://10.83.0.") && address.ends_with(":8786"), "on the Dask network: {address}");

    // A user's computation: exact, on the cluster's three workers.
    dask_computes(&on_sched, &workers, "on 3 workers");

    // The dashboard answers; TLS without the appliance's certificate does not.
    let host = address.trim_start_matches("tls://").trim_end_matches(":8786").to_string();
    let url = ex.ok(&["output", "-raw", "dashboard_url"]);
    assert_eq!(url, format!("http://{host}:8787/status"));
    let page = on_sched(&format!(
        "python3 -c \"import urllib.request as u; print(u.urlopen('{url}', timeout=20).read().decode())\""
    ));
    assert!(page.contains("Dask"), "the dashboard: {}", &page[..page.len().min(400)]);
    let refused = on_sched(&NO_CLIENT_CERT.replace("\"ADDR\"", &format!("\"{host}\"")));
    assert!(refused.starts_with("refused:"), "a client without the certificate: {refused}");

    // worker_count = 4, in place: the scheduler keeps running and sees four.
    let scheduler_pid = || on_sched("systemctl show -p MainPID --value dask-scheduler").trim().to_string();
    let pid = scheduler_pid();
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "dask-scheduler is not running: {pid:?}");
    ex.set("worker_count", "4");
    let (code, plan) = ex.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "an update in place:\n{plan}");
    ex.apply();
    let workers4: Vec<String> = role_machines(s, &appliance(s, "dask"), "worker").into_iter().map(|(n, _)| n).collect();
    assert_eq!(workers4.len(), 4, "{workers4:?}");
    dask_computes(&on_sched, &workers4, "after scaling to 4");
    assert_eq!(scheduler_pid(), pid, "dask-scheduler was restarted by the scale-up");

    // worker_count = 3: the leaving worker is retired by the scheduler first.
    ex.set("worker_count", "3");
    ex.apply();
    dask_computes(&on_sched, &workers, "after scaling to 3");
    let agent = on_sched("sudo journalctl -u tundra-appliance --no-pager -o cat");
    assert!(agent.contains("tundra-appliance: drained dask-worker-3"), "the agent said:\n{agent}");
    let log = on_sched("sudo journalctl -u dask-scheduler --no-pager -o cat");
    assert!(
        log.contains("Retired worker"),
        "the scheduler did not retire dask-worker-3:\n{}\nthe agent said:\n{}",
        log.lines().filter(|l| !l.contains("lient")).collect::<Vec<_>>().join("\n"),
        agent.lines().filter(|l| l.contains("drain")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(scheduler_pid(), pid, "dask-scheduler was restarted by the scale-down");

    // The scheduler restarted (a crash, an operator): the workers come back.
    on_sched("sudo systemctl restart dask-scheduler");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = on_sched(
            "python3 -c \"from distributed import Client; c = Client(timeout=30); \
             print(' '.join(sorted(w['name'] for w in c.scheduler_info()['workers'].values())))\" || true",
        );
        if seen.trim() == workers.join(" ") {
            break;
        }
        assert!(Instant::now() < deadline, "after the scheduler's restart the workers are {seen:?}, not {workers:?}");
        std::thread::sleep(Duration::from_secs(3));
    }
    dask_computes(&on_sched, &workers, "after the scheduler's restart");

    // The appliance's TLS key reached its nodes, not the state or the API:
    // no line of its PEM, nor the whole PEM in base64.
    let tls_key = on_sched("sudo cat /etc/dask/tls/key.pem");
    let lines: Vec<&str> = tls_key.lines().filter(|l| !l.starts_with("-----") && l.len() >= 40).collect();
    assert!(!lines.is_empty(), "a PEM key: {tls_key}");
    let whole = base64::engine::general_purpose::STANDARD.encode(tls_key.as_bytes());
    let state = ex.state_text();
    let api = appliance(s, "dask").to_string();
    for l in lines.iter().copied().chain([whole.as_str()]) {
        assert!(!state.contains(l), "the Dask TLS key is in the state");
        assert!(!api.contains(l), "the Dask TLS key is in the API's answer");
    }

    let a = appliance(s, "dask");
    let machines: Vec<String> =
        role_machines(s, &a, "worker").into_iter().chain(role_machines(s, &a, "scheduler")).map(|(_, m)| m).collect();
    ex.ok(&["destroy", "-auto-approve", "-no-color"]);
    s.wait_machines(Duration::from_secs(300), "Dask's machines were not cleaned", |ms| {
        ms.iter()
            .filter(|m| machines.iter().any(|n| m["name"] == n.as_str()))
            .all(|m| m["provision_state"] == "available")
    });
    eprintln!("dask: destroyed and cleaned {:.1?} after the first apply", start.elapsed());
}

/// JupyterHub from `modules/jupyter/examples/basic` (the dummy
/// authenticator, homes on a CephFS share), on a machine Slurm and Dask
/// left free: through the hub's REST API on its network address a user
/// logs in, gets a token, starts a server and runs code in a kernel over
/// its channels; the output is exact, the code ran as that user on the hub
/// node, in a home on the share; wrong passwords are refused, and so is a
/// server for an account that may use sudo; no generated secret in the
/// state or the API; destroyed, its machine cleaned.
fn jupyter_on_the_lab(s: &LabSite, key: &Path, public: &str, image_id: &str, share_type_id: &str) {
    let mut ex = Example::new(s, "jupyter", "jupyter/examples/basic");
    ex.set("authenticator", "dummy");
    ex.set("image_id", image_id);
    ex.set("share_type_id", share_type_id);
    ex.set("public_key", public);
    ex.ok(&["init", "-no-color"]);
    let (start, took) = ex.apply_settled();
    eprintln!("jupyter: the hub active in {:.1?}", took);
    let a = appliance(s, "jupyter");
    assert_eq!(a["status"], "active", "{a}");
    let hub = role_machines(s, &a, "hub");
    assert_eq!(hub.len(), 1, "{a}");
    let (hub_name, hub_machine) = hub[0].clone();
    assert_eq!(hub_name, "jupyter-hub-0");
    let on_hub = |cmd: &str| {
        ssh(s, &hub_machine, key, cmd, Duration::from_secs(300)).unwrap_or_else(|e| {
            panic!("on {hub_name}: {e}\n{}", console_tail(&s.lab().machine(&hub_machine).unwrap().firmware.log))
        })
    };
    let url = ex.ok(&["output", "-raw", "hub_url"]);
    assert!(url.starts_with("http://10.84.0.") && url.ends_with(":8000"), "on the hub's network: {url}");
    assert_eq!(ex.ok(&["output", "-raw", "api_url"]), format!("{url}/hub/api"));

    // A user through the REST API, from the hub's network address.
    let script = include_str!("jupyter-client.py");
    let ran = on_hub(&format!(
        "cat > /tmp/client.py <<'PY'\n{script}PY\npython3 /tmp/client.py {url} alice 2>&1; echo client-exit $?"
    ));
    let step = |name: &str| -> String {
        ran.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name:?} step in what the client did:\n{ran}\n{}", hub_log(&on_hub)))
            .to_string()
    };
    let sudoer: u16 = step("sudoer-server").parse().unwrap();
    assert!(sudoer >= 400, "the default user (a sudoer) got a server: {ran}");
    let hub_log = on_hub("sudo journalctl -u jupyterhub --no-pager -o cat");
    assert!(hub_log.contains("debian may use sudo: no server for it"), "why debian got no server:\n{hub_log}");
    assert_eq!(step("wrong-login"), "200 -", "a wrong password is not a login:\n{ran}");
    let login = step("login");
    assert!(login.starts_with("302 ") && login.contains("jupyterhub-hub-login"), "the login: {ran}");
    assert_eq!(step("wrong-token"), "403", "{ran}");
    assert_eq!(step("token"), "201", "{ran}");
    assert_eq!(step("server"), "/user/alice/", "{ran}");
    assert_eq!(step("kernel"), "python3", "{ran}");
    assert_eq!(step("executed"), "ok", "{ran}");
    assert_eq!(
        step("output"),
        "49999995000000 alice jupyter-hub-0 /home/alice /home/alice/from-the-kernel.txt",
        "the kernel ran as alice on the hub node, in her home:\n{ran}"
    );
    assert_eq!(step("servers-running-as-user"), "1", "{ran}");
    assert!(step("stopped").starts_with("20"), "{ran}");
    eprintln!("jupyter: a user's kernel ran on {hub_name} {:.1?} after the first apply", start.elapsed());

    // The home is on the share, and the kernel's file is there, alice's.
    let home = on_hub(
        "findmnt -n -o FSTYPE --target /home/alice; sudo stat -c '%U %a' /home/alice /home/alice/from-the-kernel.txt; \
         sudo cat /home/alice/from-the-kernel.txt",
    );
    let lines: Vec<&str> = home.lines().collect();
    assert!(lines.first().is_some_and(|t| t.contains("ceph")), "/home/alice is not on the CephFS share: {home}");
    assert_eq!(lines[1..], ["alice 700", "alice 644", "written by the kernel"], "{home}");

    // Generated secrets reached the hub node only.
    let state = ex.state_text();
    let api = appliance(s, "jupyter").to_string();
    for f in ["cookie_secret", "proxy_token", "dummy_password"] {
        let v = on_hub(&format!("sudo cat /etc/jupyterhub/secrets/{f}")).trim().to_string();
        assert!(v.len() >= 24, "{f}: {} characters", v.len());
        assert!(!state.contains(&v), "the hub's {f} is in the state");
        assert!(!api.contains(&v), "the hub's {f} is in the API's answer");
    }
    let modes =
        on_hub("sudo stat -c '%U %a' /etc/jupyterhub/secrets/cookie_secret /etc/jupyterhub/secrets/proxy_token");
    assert_eq!(modes.lines().collect::<Vec<_>>(), ["root 600", "root 600"], "{modes}");

    ex.ok(&["destroy", "-auto-approve", "-no-color"]);
    s.wait_machines(Duration::from_secs(300), "the hub's machine was not cleaned", |ms| {
        ms.iter().filter(|m| m["name"] == hub_machine.as_str()).all(|m| m["provision_state"] == "available")
    });
    eprintln!("jupyter: destroyed and cleaned {:.1?} after the first apply", start.elapsed());
}

/// `examples/terraform/platforms` as a site runs it: a Slurm cluster, a
/// JupyterHub and a Dask cluster joined to it, one CephFS /home, the
/// platform's user alice (uid 2001 on every node). Through the hub's REST
/// API alice's server starts as a Slurm job on a compute node, and her
/// notebook runs Dask with two workers that are Slurm jobs too
/// (dask-jobqueue), computing an exact sum while `squeue` lists all three
/// jobs as hers. The Dask cluster's own workers are Slurm jobs of its
/// account, and scale in place.
fn platforms_example_on_the_lab(s: &LabSite, key: &Path, public: &str, image_id: &str, share_type_id: &str) {
    let mut ex = Example::in_repository(
        s,
        &["modules/openhpc", "modules/jupyter", "modules/dask"],
        "examples/terraform/platforms",
    );
    ex.set("authenticator", "dummy");
    ex.set("users", "{ alice = 2001 }");
    ex.set("image_id", image_id);
    ex.set("share_type_id", share_type_id);
    ex.set("public_key", public);
    ex.ok(&["init", "-no-color"]);
    let (start, took) = ex.apply_settled();
    eprintln!("platforms: Slurm (1 login + 2 compute), the hub and Dask active in {:.1?}", took);
    let a = appliance(s, "science-hub");
    assert_eq!(a["status"], "active", "{a}");
    let (hub_name, hub_machine) = role_machines(s, &a, "hub")[0].clone();
    let on_hub = |cmd: &str| {
        ssh(s, &hub_machine, key, cmd, Duration::from_secs(300)).unwrap_or_else(|e| {
            panic!("on {hub_name}: {e}\n{}", console_tail(&s.lab().machine(&hub_machine).unwrap().firmware.log))
        })
    };
    let slurm = appliance(s, "science");
    let compute: Vec<String> = role_machines(s, &slurm, "compute").into_iter().map(|(n, _)| n).collect();
    assert_eq!(compute.len(), 2, "{slurm}");
    let (_, login_machine) = role_machines(s, &slurm, "login")[0].clone();
    let on_login = |cmd: &str| {
        ssh(s, &login_machine, key, cmd, Duration::from_secs(180)).unwrap_or_else(|e| panic!("on the login node: {e}"))
    };
    // In service (the Dask cluster's worker job may already run on one).
    wait_states(&on_login, &compute, &["idle", "mixed", "allocated"], Duration::from_secs(180), &|| String::new());
    // alice is the same account on the hub and on every Slurm node.
    let ids = on_hub("id alice");
    assert!(ids.starts_with("uid=2001(alice) gid=2001(alice)"), "alice on the hub: {ids}");
    assert_eq!(on_login("id alice"), ids, "alice on the login node");

    let url = ex.ok(&["output", "-raw", "hub_url"]);
    assert!(url.starts_with("http://10.85.0.") && url.ends_with(":8000"), "on the platform's network: {url}");
    let client = include_str!("jupyter-client.py");
    let cell = include_str!("dask-on-slurm.py");
    let ran = on_hub(&format!(
        "cat > /tmp/client.py <<'PY'\n{client}PY\ncat > /tmp/cell.py <<'PY'\n{cell}PY\n\
         python3 /tmp/client.py {url} alice /tmp/cell.py 2>&1; echo client-exit $?"
    ));
    let step = |name: &str| -> String {
        ran.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name:?} step in what the client did:\n{ran}\n{}", hub_log(&on_hub)))
            .to_string()
    };
    assert_eq!(step("server"), "/user/alice/", "{ran}");
    assert_eq!(step("executed"), "ok", "{ran}");
    // The first cell ran as alice on a compute node, in her home on the share.
    let output = step("output");
    let first: Vec<&str> = output.split(' ').collect();
    assert_eq!(first[..2], ["49999995000000", "alice"], "{ran}");
    assert!(compute.iter().any(|c| c == first[2]), "the kernel ran on a compute node, not {}: {ran}", first[2]);
    assert_eq!(first[3..], ["/home/alice", "/home/alice/from-the-kernel.txt"], "{ran}");
    assert_eq!(step("servers-running-as-user"), "0", "no server on the hub node: {ran}");
    // The second: Dask on Slurm from the notebook.
    assert_eq!(step("cell"), "ok", "{ran}");
    let cell_out: Vec<&str> = ran.lines().filter_map(|l| l.strip_prefix("cell-output ")).collect();
    assert!(cell_out.contains(&"batchspawner-api 400"), "the hub took more than a port: {cell_out:?}");
    assert!(
        cell_out.iter().any(|l| l.starts_with("scheduler tls://10.85.0.")),
        "the notebook's scheduler speaks TLS on the platform's network: {cell_out:?}"
    );
    assert!(cell_out.contains(&"sum 49999995000000"), "Dask's sum: {cell_out:?}");
    let workers: Vec<&&str> = cell_out.iter().filter(|l| l.starts_with("worker 10.85.0.")).collect();
    assert_eq!(workers.len(), 2, "two workers, on the platform's network: {cell_out:?}");
    let jobs: Vec<Vec<&str>> =
        cell_out.iter().filter_map(|l| l.strip_prefix("job ")).map(|l| l.split(' ').collect()).collect();
    let named = |n: &str| jobs.iter().filter(|j| j[0] == n && j[1] == "alice" && j[2] == "RUNNING").count();
    assert_eq!(named("jupyter-server"), 1, "squeue shows alice's server as her job: {cell_out:?}");
    assert_eq!(named("dask-worker"), 2, "squeue shows two Dask workers as her jobs: {cell_out:?}");
    assert!(
        jobs.iter().all(|j| j.get(3).is_some_and(|n| compute.iter().any(|c| c == n))),
        "every job on a compute node: {jobs:?}"
    );
    assert_eq!(
        cell_out.iter().find_map(|l| l.strip_prefix("kernel-on ")).map(|l| l.split(' ').next().unwrap()),
        Some(first[2]),
        "{cell_out:?}"
    );
    assert!(step("stopped").starts_with("20"), "{ran}");
    let injected = on_hub("sudo ls /tmp/tundra-batchspawner-injected 2>&1 || true");
    assert!(injected.contains("No such file"), "the hub ran what a kernel posted: {injected}");
    eprintln!(
        "platforms: alice's notebook computed on Dask workers in Slurm {:.1?} after the first apply",
        start.elapsed()
    );
    // Her server's job and the workers' are gone from Slurm.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = on_login("squeue -h -u alice -o '%j %T'");
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "alice's jobs outlived her server: {left}");
        std::thread::sleep(Duration::from_secs(2));
    }

    // The team's Dask cluster: a scheduler node, its worker a Slurm job of
    // dask-jobs; worker_count = 2 adds a job, the scheduler running on.
    let d = appliance(s, "science-dask");
    assert_eq!(d["status"], "active", "{d}");
    assert!(role_machines(s, &d, "worker").is_empty(), "no worker nodes with slurm: {d}");
    let (sched_name, sched_machine) = role_machines(s, &d, "scheduler")[0].clone();
    let on_sched = |cmd: &str| {
        ssh(s, &sched_machine, key, cmd, Duration::from_secs(180)).unwrap_or_else(|e| {
            panic!(
                "on {sched_name}: {e}\n{}",
                ssh(
                    s,
                    &sched_machine,
                    key,
                    "sudo journalctl -u dask-scheduler --no-pager -o cat | tail -40",
                    Duration::ZERO
                )
                .unwrap_or_default()
            )
        })
    };
    let dask_jobs = |n: usize| -> (String, String) {
        let computed = on_sched(&format!(
            "python3 - <<'PY'\nfrom distributed import Client\nimport dask.array as da\nc = Client(timeout=60)\n\
             c.wait_for_workers({n}, timeout=240)\nprint('sum', int(da.arange(10**7, chunks=10**6).sum().compute()))\n\
             ws = c.scheduler_info()['workers'].values()\nprint('workers', len(ws), *sorted(w['host'] for w in ws))\nPY"
        ));
        (computed, on_login("squeue -h -u dask-jobs -o '%j %T %N'"))
    };
    let (computed, jobs) = dask_jobs(1);
    assert!(computed.contains("sum 49999995000000\n"), "{computed}");
    assert!(computed.contains("workers 1 10.85.0."), "one worker, on the platform's network: {computed}");
    let running: Vec<&str> = jobs.lines().filter(|l| l.starts_with("dask-worker-science-dask RUNNING ")).collect();
    assert_eq!(running.len(), 1, "the worker is a Slurm job of dask-jobs:\n{jobs}");
    let key_file = on_sched("sudo stat -c '%U %a' /home/dask-jobs/.dask-science-dask/key.pem");
    assert_eq!(key_file.trim(), "dask-jobs 600", "the workers' key on /home is the account's alone");
    let pid = on_sched("systemctl show -p MainPID --value dask-scheduler");
    ex.set("dask_workers", "2");
    let (code, plan) = ex.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "in place:\n{plan}");
    ex.apply();
    let (computed, jobs) = dask_jobs(2);
    assert!(computed.contains("sum 49999995000000\n") && computed.contains("workers 2 10.85.0."), "{computed}");
    let running = jobs.lines().filter(|l| l.starts_with("dask-worker-science-dask RUNNING ")).count();
    assert_eq!(running, 2, "two worker jobs:\n{jobs}");
    assert_eq!(on_sched("systemctl show -p MainPID --value dask-scheduler"), pid, "the scheduler was restarted");
    eprintln!(
        "platforms: the Dask cluster's workers as Slurm jobs, 1 then 2, {:.1?} after the first apply",
        start.elapsed()
    );

    // The hub's secrets and the munge key it shares with Slurm stay out of
    // the state and the API.
    let state = ex.state_text();
    let api = format!("{}{}{}", appliance(s, "science-hub"), appliance(s, "science"), appliance(s, "science-dask"));
    let tls_key = on_sched("sudo cat /etc/dask/tls/key.pem");
    for line in tls_key.lines().filter(|l| l.len() > 20) {
        assert!(!state.contains(line) && !api.contains(line), "the Dask key is in the state or the API");
    }
    let munge = on_hub("sudo base64 -w0 /etc/munge/munge.key");
    assert_eq!(munge.trim(), on_login("sudo base64 -w0 /etc/munge/munge.key").trim(), "one munge key");
    let cookie = on_hub("sudo cat /etc/jupyterhub/secrets/cookie_secret").trim().to_string();
    for (what, v) in [("munge key", munge.trim().to_string()), ("cookie secret", cookie)] {
        assert!(v.len() >= 24, "the {what} is {} characters", v.len());
        assert!(!state.contains(&v) && !api.contains(&v), "the {what} is in the state or the API");
    }

    let machines: Vec<String> = [&a, &slurm, &d]
        .iter()
        .flat_map(|x| ["hub", "login", "compute", "scheduler"].map(|r| role_machines(s, x, r)))
        .flatten()
        .map(|(_, m)| m)
        .collect();
    ex.ok(&["destroy", "-auto-approve", "-no-color"]);
    s.wait_machines(Duration::from_secs(300), "the platform's machines were not cleaned", |ms| {
        ms.iter()
            .filter(|m| machines.iter().any(|x| m["name"] == x.as_str()))
            .all(|m| m["provision_state"] == "available")
    });
    eprintln!("platforms: destroyed and cleaned {:.1?} after the first apply", start.elapsed());
}

fn hub_log(on_hub: &dyn Fn(&str) -> String) -> String {
    on_hub("sudo journalctl -u jupyterhub --no-pager -o cat | tail -60")
}
