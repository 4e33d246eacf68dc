//! Deployed nodes run a real OS. Real Terraform deploys, on the lab with
//! its SSH-programmed Linux switch, three nodes of project astro on network
//! A and one node of another project on network B — all from a Debian image
//! `tundra-lab image build` made (cached across runs) — with user_data
//! writing a file. Each lab machine then boots its disk: systemd-nspawn over
//! the root partition in the machine's namespace, cloud-init reading the
//! config drive tundrad wrote. Checked over SSH with the keypair's private
//! key, as a person would, from the host through the provisioning network:
//! the hostname is the node's name, the data address is on the NIC the port
//! is bound to, the user_data file exists, node A reaches node B over the
//! data VLAN and not the other project's node. Shares: a real single-node
//! Ceph listens on the lab's provisioning network; alpha and beta mount one
//! CephFS share rw (tundrad made their rules and put the mounts, keys
//! root-only, on their config drives): alpha writes, beta reads; delta
//! (another project) guessing the path without a key is refused; writing
//! past the quota fails; a bigger `size_gib` extends the share in place and
//! the nodes see it; no key is in the state. After `terraform destroy` and
//! cleaning, Ceph holds no subvolume and no cephx ID of tundrad's, and the
//! disks hold nothing the OS wrote — nothing at all. Docker on a node runs
//! a container (the lab gives each OS writable cgroups of its own).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::nodes::LabSite;

/// A lab of `count` machines (Redfish BMCs, `disk_mib` disks, one rack)
/// with `nics` NICs each — the first for provisioning — behind one Linux
/// switch programmed over SSH: the site every lab OS test (os, swarm,
/// openhpc) uses. Disk files are sparse: erased, they give their blocks back.
pub(crate) fn lab_site(count: u32, nics: u32, disk_mib: u32) -> String {
    format!(
        r#"
[switch]
name = "leaf-1"
ssh = true
provisioning_vlan = 1

[[machines]]
name = "m-{{n}}"
count = {count}
bmc = "redfish"
nics = {nics}
disks = [{{ name = "sda", size_mib = {disk_mib} }}]
rack = "r1"
island = "a"
"#
    )
}

/// A real SSH key pair in `dir`: the private key's path and the public key.
pub(crate) fn keypair(dir: &Path, comment: &str) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let kg = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(&key).status();
    assert!(kg.unwrap().success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

fn project_tf() -> String {
    format!(
        r#"{}
variable "image_path" {{
  type = string
}}

variable "public_key" {{
  type = string
}}

variable "marker" {{
  type = string
}}

variable "ceph_monitor" {{
  type = string
}}

variable "ceph_key" {{
  type      = string
  sensitive = true
}}

variable "share_size" {{
  type    = number
  default = 1
}}

variable "mounters" {{
  type    = list(string)
  default = ["alpha", "beta"]
}}

resource "tundra_share_type" "ceph" {{
  name       = "cephfs"
  backend    = "cephfs"
  monitors   = [var.ceph_monitor]
  fs_name    = "tundra"
  credential = var.ceph_key
}}

resource "tundra_share" "data" {{
  project_id    = data.tundra_project.astro.id
  name          = "data"
  share_type_id = tundra_share_type.ceph.id
  size_gib      = var.share_size
}}

data "tundra_project" "astro" {{
  name = "astro"
}}

resource "tundra_project" "other" {{
  name = "other"
}}

data "tundra_physical_network" "fabric" {{
  name = "fabric"
}}

data "tundra_flavor" "compute" {{
  name = "compute"
}}

locals {{
  projects = {{ a = data.tundra_project.astro.id, b = tundra_project.other.id }}
}}

resource "tundra_network" "net" {{
  for_each            = local.projects
  project_id          = each.value
  name                = "data"
  physical_network_id = data.tundra_physical_network.fabric.id
}}

# One CIDR on both networks (distinct pools): only the VLANs keep them apart.
resource "tundra_subnet" "net" {{
  for_each   = {{ a = "10.70.0.10", b = "10.70.0.100" }}
  network_id = tundra_network.net[each.key].id
  name       = "data-v4"
  cidr       = "10.70.0.0/24"
  allocation_pools = [{{
    start = each.value
    end   = cidrhost("10.70.0.0/24", tonumber(split(".", each.value)[3]) + 50)
  }}]
}}

resource "tundra_keypair" "me" {{
  for_each   = local.projects
  project_id = each.value
  name       = "me"
  public_key = var.public_key
}}

resource "tundra_image" "os" {{
  for_each    = local.projects
  project_id  = each.value
  name        = "debian-12"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}}

locals {{
  nodes = {{ alpha = "a", beta = "a", gamma = "a", delta = "b" }}
}}

resource "tundra_node" "n" {{
  for_each   = local.nodes
  project_id = local.projects[each.value]
  name       = each.key
  flavor_id  = data.tundra_flavor.compute.id
  image_id   = tundra_image.os[each.value].id
  keypair_id = tundra_keypair.me[each.value].id
  networks   = [{{ network_id = tundra_network.net[each.value].id }}]
  shares     = contains(var.mounters, each.key) ? [{{ share_id = tundra_share.data.id, mount_point = "/data" }}] : null
  user_data  = <<-EOT
    #cloud-config
    write_files:
      - path: /var/lib/tundra-test/user-data-ran
        content: "${{var.marker}} ${{each.key}}\n"
  EOT
  depends_on = [tundra_subnet.net]
}}
"#,
        crate::steps::header()
    )
}

/// The lab OS tests' node image (`tundra_lab::image::LAB_SETS`), built
/// once per checkout (`.venv/images`, by content) — usually already built
/// by tundra-lab's image test, which runs first, beside the lab tests that
/// need no image.
pub(crate) fn built_image(recipe: &tundra_lab::image::Recipe) -> PathBuf {
    let start = Instant::now();
    let built = tundra_lab::image::build(recipe, &crate::nodes::root().join(".venv/images")).unwrap();
    eprintln!(
        "image {} ({}) in {:.1?}",
        built.raw.display(),
        if built.cached { "cached" } else { "built" },
        start.elapsed()
    );
    built.raw
}

/// Run a command on a node's OS over SSH, as a person would; its output or
/// (after `wait`) the last failure.
pub(crate) fn ssh(s: &LabSite, machine: &str, key: &Path, cmd: &str, wait: Duration) -> Result<String, String> {
    let lab: Value = serde_json::from_str(&std::fs::read_to_string(s.dir.path().join("lab.json")).unwrap()).unwrap();
    let start = Instant::now();
    loop {
        let r = tundra_lab::os_address(&lab, machine).map_err(|e| format!("{e:#}")).and_then(|addr| {
            let out = Command::new("ssh")
                .args(tundra_lab::ssh_options())
                .args(["-o", "BatchMode=yes", "-i"])
                .arg(key)
                .arg(format!("debian@{addr}"))
                .arg(cmd)
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!("ssh debian@{addr} {cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
            }
        });
        match r {
            Ok(o) => return Ok(o),
            Err(e) if start.elapsed() >= wait => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

/// Is every byte of the file zero? (Reads holes as zeros, like anyone.)
fn all_zero(path: &Path) -> Result<(), u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let zeros = vec![0u8; 4 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return Ok(());
        }
        // A memcmp first; the byte loop only to say where.
        if buf[..n] != zeros[..n] {
            let i = buf[..n].iter().position(|b| *b != 0).unwrap_or(0);
            return Err(off + i as u64);
        }
        off += n as u64;
    }
}

pub fn os_on_the_lab() {
    let image = built_image(&tundra_lab::image::lab_recipe());
    let s = LabSite::start_with(&lab_site(4, 2, 1024), |c| {
        c.fabric_read_interval = "2s".into();
        c.node_mount_refresh = "3s".into();
    });
    // Ceph where nodes reach it: on the provisioning network, beside tundrad.
    let ceph = crate::peers::Ceph::start(&s.lab().provisioning.server_ip);
    let mut admin = s.site.workspace(&crate::fabric::admin_tf());
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();

    // The keypair: a real one, its private half only here.
    let (key, public) = keypair(s.dir.path(), "os-test");
    let marker = format!("marker-{}", std::process::id());
    let mut ws = s.site.workspace(&project_tf());
    ws.env.push(("TF_VAR_image_path".into(), image.display().to_string()));
    ws.env.push(("TF_VAR_public_key".into(), public));
    ws.env.push(("TF_VAR_marker".into(), marker.clone()));
    ws.env.push(("TF_VAR_ceph_monitor".into(), ceph.monitor.clone()));
    ws.env.push(("TF_VAR_ceph_key".into(), ceph.key.clone()));
    let start = Instant::now();
    ws.apply();
    eprintln!("4 nodes active in {:.1?}", start.elapsed());
    assert_eq!(ws.plan().0, 0, "no changes after apply:\n{}", ws.plan().1);

    let nodes = s.nodes();
    assert_eq!(nodes.len(), 4);
    let machine_of = |node: &Value| -> String {
        let mid = node["machine_id"].as_str().unwrap();
        s.get(&format!("/v1/machines/{mid}"))["name"].as_str().unwrap().to_string()
    };
    let node = |name: &str| nodes.iter().find(|n| n["name"] == name).unwrap().clone();
    let data_ip = |n: &Value| n["networks"][0]["fixed_ips"][0]["address"].as_str().unwrap().to_string();
    let wait = Duration::from_secs(180);
    for n in &nodes {
        let (name, machine) = (n["name"].as_str().unwrap(), machine_of(n));
        assert_eq!(n["status"], "active", "{n}");
        let lm = s.lab().machine(&machine).unwrap();
        assert_eq!(lm.firmware.status(), "os", "{machine} runs its OS");
        // Cloud-init done: hostname, key, addresses, user_data.
        let done = ssh(&s, &machine, &key, "cloud-init status --wait >/dev/null; hostname", wait)
            .unwrap_or_else(|e| panic!("{name} on {machine}: {e}\n{}", console_tail(&lm.firmware.log)));
        assert_eq!(done.trim(), name, "{machine}'s hostname is its node's name");
        // Its own name resolves, and the keypair's user may sudo (quietly).
        let sudo = ssh(&s, &machine, &key, "getent hosts $(hostname) >/dev/null && sudo -n true 2>&1", wait).unwrap();
        assert_eq!(sudo, "", "{name}: sudo said something");
        let file = ssh(&s, &machine, &key, "cat /var/lib/tundra-test/user-data-ran", wait).unwrap();
        assert_eq!(file.trim(), format!("{marker} {name}"), "user_data ran on {name}");
        // The data address on the NIC whose MAC the port is bound to.
        let mac = n["networks"][0]["mac"].as_str().unwrap();
        let links = ssh(&s, &machine, &key, "ip -o -4 addr show; ip -o link show", wait).unwrap();
        let nic = links
            .lines()
            .find(|l| l.contains(&format!("link/ether {mac}")))
            .and_then(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no NIC with {mac} on {name}:\n{links}"));
        let ip = data_ip(n);
        assert!(
            links.lines().any(|l| l.split_whitespace().nth(1) == Some(&nic) && l.contains(&format!("inet {ip}/24"))),
            "{name}: {ip}/24 on {nic} ({mac}):\n{links}"
        );
        // The lab recorded the OS's boot on the machine's console.
        let console = std::fs::read_to_string(&lm.firmware.log).unwrap();
        assert!(
            console.contains("Cloud-init v.") && console.contains("Reached target"),
            "{machine}'s console.log has the OS's boot:\n{}",
            console_tail(&lm.firmware.log)
        );
        eprintln!("{name} on {machine}: hostname, user_data and {ip} on {nic} checked over SSH");
    }
    // Over the data VLAN: alpha reaches beta, and not delta (another project's network).
    let (alpha, beta, delta) = (node("alpha"), node("beta"), node("delta"));
    let from = machine_of(&alpha);
    // The way a person runs a command on a node: `tundra-lab ssh`.
    let out = Command::new(crate::nodes::bin("tundra-lab"))
        .args(["ssh", "--lab"])
        .arg(s.dir.path())
        .arg(&from)
        .arg("-i")
        .arg(&key)
        .args(["--", "hostname"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "tundra-lab ssh: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alpha");

    shares_on_the_lab(&s, &ceph, &mut ws, &key, &node, &machine_of);

    // A reboot stops the OS and the next boot resumes from the disk: what
    // the OS wrote is there, and user_data does not run again.
    ssh(&s, &from, &key, "echo kept > ~/before-reboot && sync", wait).unwrap();
    let fw = &s.lab().machine(&from).unwrap().firmware;
    let boots = *fw.boots.lock().unwrap();
    let mid = alpha["machine_id"].as_str().unwrap();
    let (code, v) =
        s.site.api("POST", &format!("/v1/machines/{mid}/actions"), Some(serde_json::json!({"action": "reboot"})));
    assert!(code == 202 || code == 200, "reboot: {code} {v}");
    let start = Instant::now();
    while *fw.boots.lock().unwrap() == boots || fw.status() != "os" {
        assert!(start.elapsed() < Duration::from_secs(120), "{from} did not boot again: {}", fw.status());
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = ssh(&s, &from, &key, "cat ~/before-reboot; cat /var/lib/tundra-test/user-data-ran; hostname", wait)
        .unwrap_or_else(|e| panic!("after the reboot: {e}\n{}", console_tail(&fw.log)));
    assert_eq!(after.lines().collect::<Vec<_>>(), ["kept", &format!("{marker} alpha"), "alpha"], "{after}");
    // Containers run, as on a real server (Docker from the image; after the
    // reboot, so the lab gives every boot its cgroups): a local image made
    // from the OS's own files, no registry.
    let docker = ssh(
        &s,
        &from,
        &key,
        "sudo sh -c 'cd / && tar -ch usr/bin/dash usr/lib/x86_64-linux-gnu/libc.so.6 usr/lib64/ld-linux-x86-64.so.2 \
         lib64 2>/dev/null | docker import - local/probe >/dev/null && \
         docker run --rm local/probe /usr/bin/dash -c \"echo ran in a container\"' 2>&1",
        wait,
    )
    .unwrap_or_else(|e| panic!("docker on alpha: {e}\n{}", console_tail(&fw.log)));
    assert_eq!(docker.trim(), "ran in a container", "{docker}");
    let ping = |ip: &str| ssh(&s, &from, &key, &format!("ping -c 1 -W 1 {ip}"), Duration::ZERO);
    assert!((0..5).any(|_| ping(&data_ip(&beta)).is_ok()), "alpha reaches beta over the data VLAN");
    let e = ping(&data_ip(&delta)).unwrap_err();
    assert!(e.contains("ping"), "alpha must not reach delta: {e}");

    // Destroy: every node cleaned; nothing the OS wrote is left on any disk.
    let disks: Vec<(String, PathBuf)> = nodes
        .iter()
        .map(|n| {
            let m = machine_of(n);
            (m.clone(), s.lab().machine(&m).unwrap().disks[0].1.clone())
        })
        .collect();
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    s.wait_all_available(Duration::from_secs(300));
    // Nothing of the share is left on Ceph.
    let left = ceph.cli(&["fs", "subvolume", "ls", "tundra", "--group_name", &astro_group(&s)]);
    assert!(left.as_ref().map(|v| v.as_array().unwrap().is_empty()).unwrap_or(true), "subvolumes left: {left:?}");
    let auth = ceph.cli(&["auth", "ls"]).unwrap().to_string();
    assert!(!auth.contains("client.tundra."), "cephx IDs left: {auth}");
    for (m, disk) in &disks {
        let fw = &s.lab().machine(m).unwrap().firmware;
        assert_ne!(fw.status(), "os", "{m} no longer runs its OS");
        let console = std::fs::read_to_string(&fw.log).unwrap();
        assert!(console.contains("OS stopped;"), "{m}'s firmware released the disk before cleaning:\n{console}");
        assert!(!fw.cgroups_record().exists(), "{m}: the cgroups its OS had are gone:\n{console}");
        if let Err(at) = all_zero(disk) {
            panic!("{m}'s disk {} holds data at byte {at} after cleaning", disk.display());
        }
    }
}

/// Project astro's subvolume group on Ceph (its ID without dashes).
fn astro_group(s: &LabSite) -> String {
    s.get("/v1/projects/astro")["id"].as_str().unwrap().replace('-', "")
}

/// The share, as the nodes use it.
fn shares_on_the_lab(
    s: &LabSite,
    ceph: &crate::peers::Ceph,
    ws: &mut crate::support::Workspace,
    key: &Path,
    node: &dyn Fn(&str) -> Value,
    machine_of: &dyn Fn(&Value) -> String,
) {
    let wait = Duration::from_secs(180);
    let (alpha, beta, delta) = (machine_of(&node("alpha")), machine_of(&node("beta")), machine_of(&node("delta")));
    for n in ["alpha", "beta"] {
        let mounts = &node(n)["mounts"];
        assert_eq!(mounts[0]["mount_point"], "/data", "{n}: {mounts}");
        assert_eq!(mounts[0]["state"], "active", "{n}: {mounts}");
    }
    let df = |m: &str| {
        ssh(s, m, key, "cloud-init status --wait >/dev/null; df -B1 --output=size,target /data | tail -1", wait)
            .unwrap_or_else(|e| panic!("{m}: /data: {e}"))
    };
    for m in [&alpha, &beta] {
        let line = df(m);
        assert!(
            line.trim().ends_with("/data") && line.trim().starts_with("1073741824"),
            "{m}: /data is the 1 GiB share: {line}"
        );
        let keys = ssh(s, m, key, "stat -c '%a %U' /etc/ceph/ceph.client.*.keyring", wait).unwrap();
        assert_eq!(keys.trim(), "600 root", "{m}: the key is root's alone");
    }
    ssh(s, &alpha, key, "echo hello-from-alpha | sudo tee /data/from-alpha >/dev/null && sync", wait).unwrap();
    let read = ssh(s, &beta, key, "cat /data/from-alpha", wait).unwrap();
    assert_eq!(read.trim(), "hello-from-alpha", "beta reads what alpha wrote");
    // Delta, another project's node, guessing the path with no key: refused.
    let path = ceph
        .cli(&[
            "fs",
            "subvolume",
            "getpath",
            "tundra",
            &node("alpha")["mounts"][0]["share_id"].as_str().unwrap().replace('-', ""),
            "--group_name",
            &astro_group(s),
        ])
        .unwrap();
    let guess = format!(
        "sudo mkdir -p /mnt/guess && sudo timeout 30 ceph-fuse --conf /dev/null -m {} --id admin -r {} /mnt/guess",
        ceph.monitor,
        path.as_str().unwrap()
    );
    let e = ssh(s, &delta, key, &format!("{guess} && ls /mnt/guess"), Duration::ZERO).unwrap_err();
    eprintln!("delta without a key: {e}");
    // Past the quota: the write fails.
    let e = ssh(
        s,
        &alpha,
        key,
        "sudo dd if=/dev/zero of=/data/big bs=1M count=1600 conv=fsync status=none",
        Duration::ZERO,
    )
    .unwrap_err();
    assert!(e.contains("quota") || e.contains("No space"), "writing past the quota: {e}");
    ssh(s, &alpha, key, "sudo rm -f /data/big", wait).unwrap();
    // In one apply: a bigger share, and the mounts moved from alpha to
    // gamma — all in place. The running nodes follow through the metadata
    // service (their tundra-mounts timer), and the plan is empty after.
    ws.env.push(("TF_VAR_share_size".into(), "2".into()));
    ws.env.push(("TF_VAR_mounters".into(), r#"["beta", "gamma"]"#.into()));
    let out = ws.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(out.contains("0 added, 3 changed, 0 destroyed"), "{out}");
    assert_eq!(ws.plan().0, 0, "no changes after the resize and the moved mounts:\n{}", ws.plan().1);
    let gamma = machine_of(&node("gamma"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let on_gamma = ssh(s, &gamma, key, "cat /data/from-alpha 2>/dev/null || true", wait).unwrap();
        let on_alpha = ssh(s, &alpha, key, "mountpoint -q /data && echo mounted || echo gone", wait).unwrap();
        if on_gamma.trim() == "hello-from-alpha" && on_alpha.trim() == "gone" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gamma reads {on_gamma:?} and alpha's /data is {on_alpha:?} 90 s after the change; gamma's updater says: {}",
            ssh(
                s,
                &gamma,
                key,
                "sudo journalctl -u tundra-mounts --no-pager | grep tundra-mounts: | tail -5; mount | grep /data",
                wait
            )
            .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let keys = ssh(s, &gamma, key, "stat -c '%a %U' /etc/ceph/ceph.client.*.keyring", wait).unwrap();
    assert_eq!(keys.trim(), "600 root", "gamma: the key is root's alone");
    let left = ssh(s, &alpha, key, "ls /etc/ceph/ 2>/dev/null | grep -c keyring || true", wait).unwrap();
    assert_eq!(left.trim(), "0", "alpha still holds a keyring for the share it no longer mounts");
    let now = |n: &str| s.get(&format!("/v1/nodes/{}", node(n)["id"].as_str().unwrap()));
    assert_eq!(now("gamma")["mounts"][0]["state"], "active", "{}", now("gamma"));
    assert!(now("alpha")["mounts"].as_array().is_none_or(|m| m.is_empty()), "{}", now("alpha"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = df(&beta);
        if line.trim().starts_with("2147483648") {
            break;
        }
        assert!(Instant::now() < deadline, "beta still sees {line}");
        std::thread::sleep(Duration::from_secs(1));
    }
    // No key — the admin's, or any rule's — in the state.
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(&ceph.key), "the admin key is in the state");
    for r in s.get("/v1/share-access?limit=100")["items"].as_array().unwrap() {
        let secret = s.get(&format!("/v1/share-access/{}/secret", r["id"].as_str().unwrap()));
        let k = secret["key"].as_str().unwrap();
        assert!(!state.contains(k), "a rule's key is in the state");
    }
    eprintln!(
        "shares: alpha wrote, beta read, delta refused, quota held, 1 → 2 GiB in place, the mount moved alpha → gamma on running nodes"
    );
}

/// The end of a machine's console log, for failure messages.
pub(crate) fn console_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
