//! Nodes through real Terraform on a lab site: the quickstart applied as
//! written (examples/terraform/site, then examples/terraform/quickstart),
//! every node's disk checked (image bytes, a config drive cloud-init reads),
//! import, in-place metadata, two applies racing for the last machines, a
//! new image replacing the nodes, destroy cleaning the machines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::steps::Site;

pub(crate) const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB test@tundra";

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A workspace binary, built next to this test (scripts/test.sh builds them).
pub(crate) fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --bins` (scripts/test.sh does)", p.display());
    p
}

fn tool(t: &str) -> PathBuf {
    let venv = root().join(".venv/bin").join(t);
    if venv.exists() {
        return venv;
    }
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(t);
        if p.exists() {
            return p;
        }
    }
    panic!("{t} is not installed: run scripts/setup.sh");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A raw disk image with a GPT and one partition of pseudo-random bytes.
pub(crate) fn image(path: &Path, seed: u8) {
    let bytes: Vec<u8> = (0..8u32 << 20).map(|i| ((i.wrapping_mul(2_654_435_761) >> 13) as u8) ^ seed).collect();
    std::fs::write(path, bytes).unwrap();
    let mut c = Command::new(tool("sfdisk"));
    c.args(["-q"]).arg(path).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"label: gpt\n,4MiB,L\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// The lab, a tundrad serving its provisioning network, and the dirs.
pub(crate) struct LabSite {
    pub(crate) site: Site,
    lab: Option<tundra_lab::Lab>,
    rt: tokio::runtime::Runtime,
    pub(crate) dir: tempfile::TempDir,
    boot_port: u16,
    server_ip: String,
}

impl Drop for LabSite {
    fn drop(&mut self) {
        if let Some(l) = self.lab.take() {
            self.rt.block_on(l.stop());
        }
    }
}

impl LabSite {
    fn start() -> LabSite {
        let spec = std::fs::read_to_string(root().join("examples/lab/quickstart.toml")).unwrap();
        LabSite::start_with(&spec, |_| {})
    }

    /// A lab of `spec` (a site file) and a tundrad serving it, `tweak`ed.
    pub(crate) fn start_with(spec: &str, tweak: impl FnOnce(&mut tundrad::config::Config)) -> LabSite {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::Builder::new().prefix("tundra-acc-nodes-").tempdir().unwrap();
        let spec = tundra_lab::site::Site::parse(spec).unwrap();
        let lab = rt
            .block_on(tundra_lab::Lab::start(
                &spec,
                &tundra_lab::Options { dir: dir.path().join("lab"), venv: root().join(".venv/bin") },
            ))
            .unwrap();
        std::fs::write(dir.path().join("lab.json"), serde_json::to_string_pretty(&lab.describe()).unwrap()).unwrap();
        let boot = dir.path().join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::copy(bin("tundra-agent"), boot.join("initramfs")).unwrap();
        std::fs::write(boot.join("vmlinuz"), b"the lab boots no kernel of its own\n").unwrap();
        let p = lab.provisioning.clone();
        let net = p.server_ip.rsplit_once('.').unwrap().0.to_string();
        let boot_port = crate::peers::free_port();
        let tftp = dir.path().join("tftp");
        let site = Site::start_with(|c| {
            c.boot_assets_dir = Some(boot);
            c.reconcile_interval = "2s".into();
            c.provisioning_networks = vec![tundrad::config::ProvisioningNetwork {
                interface: p.interface.clone(),
                address: p.address.clone(),
                pool: p.pool.clone(),
                router: None,
                dns: vec![],
                discovery: false,
                tftp_root: tftp,
                http_port: boot_port,
                boot_url: None,
                node_pool: Some(format!("{net}.200-{net}.249")),
                mtu: 1500,
                lease_time: "1h".into(),
                dhcp_port: 67,
                tftp_port: 0,
            }];
            tweak(c);
        });
        let (code, v) = site.api("POST", "/v1/projects", Some(json!({"name": "astro"})));
        assert_eq!(code, 201, "{v}");
        LabSite { site, lab: Some(lab), rt, dir, boot_port, server_ip: p.server_ip }
    }

    /// Wait until every machine is `available` again (cleaning done).
    pub(crate) fn wait_all_available(&self, within: std::time::Duration) {
        self.wait_machines(within, "cleaning did not finish", |ms| {
            ms.iter().all(|m| m["provision_state"] == "available")
        });
    }

    /// Wait up to `within` until the site's machines satisfy `done`; else
    /// fail with `what` and the machines.
    pub(crate) fn wait_machines(&self, within: std::time::Duration, what: &str, done: impl Fn(&[Value]) -> bool) {
        let start = std::time::Instant::now();
        loop {
            let ms = self.get("/v1/machines?limit=100")["items"].as_array().unwrap().clone();
            if done(&ms) {
                return;
            }
            assert!(start.elapsed() < within, "{what}: {ms:?}");
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    pub(crate) fn lab(&self) -> &tundra_lab::Lab {
        self.lab.as_ref().unwrap()
    }

    pub(crate) fn workspace(&self, example: &str) -> crate::support::Workspace {
        let main_tf = std::fs::read_to_string(root().join("examples/terraform").join(example).join("main.tf")).unwrap();
        let mut ws = self.site.workspace(&main_tf);
        ws.env.push(("TF_VAR_endpoint".into(), self.site.endpoint.clone()));
        ws
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        let (code, v) = self.site.api("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    pub(crate) fn nodes(&self) -> Vec<Value> {
        self.get("/v1/nodes?limit=100")["items"].as_array().unwrap().clone()
    }

    fn machines(&self) -> Vec<Value> {
        self.get("/v1/machines?limit=100")["items"].as_array().unwrap().clone()
    }

    /// The disk file of the machine a node holds.
    fn disk_of(&self, node: &Value) -> PathBuf {
        let mid = node["machine_id"].as_str().unwrap();
        let m = self.get(&format!("/v1/machines/{mid}"));
        let lm = self.lab().machines.iter().find(|l| l.spec.name == m["name"]).unwrap();
        lm.disks[0].1.clone()
    }

    /// Check a node's disk: the image's partition bytes as written, and a
    /// config drive cloud-init reads and converts.
    fn check_disk(&self, node: &Value, image_path: &Path, role: &str) {
        let disk = self.disk_of(node);
        let (img, got) = (std::fs::read(image_path).unwrap(), std::fs::read(&disk).unwrap());
        // The GPT changed (a new entry, the backup moved to the disk's end); the data did not.
        assert!(got[1 << 20..5 << 20] == img[1 << 20..5 << 20], "{}: the image's partition data differs", node["name"]);
        let gpt = run(Command::new(tool("sgdisk")).arg("-v").arg(&disk));
        assert!(gpt.contains("No problems found"), "sgdisk -v {}:\n{gpt}", disk.display());
        let table: Value = serde_json::from_str(&run(Command::new(tool("sfdisk")).arg("-J").arg(&disk))).unwrap();
        let parts = table["partitiontable"]["partitions"].as_array().unwrap().clone();
        assert_eq!(parts.len(), 2, "{table}");
        let cd = &parts[1];
        let (start, size) = (cd["start"].as_u64().unwrap() * 512, cd["size"].as_u64().unwrap() * 512);
        assert_eq!(start + size + 33 * 512, got.len() as u64, "the config drive ends where the backup GPT begins");
        let probe = run(Command::new(tool("blkid")).args(["-p", "-O", &start.to_string()]).arg(&disk));
        assert!(probe.contains("LABEL=\"config-2\"") && probe.contains("TYPE=\"vfat\""), "{probe}");
        let out = extract_drive(&disk, start);
        let latest = out.path().join("openstack/latest");
        let meta: Value = serde_json::from_slice(&std::fs::read(latest.join("meta_data.json")).unwrap()).unwrap();
        assert_eq!(meta["uuid"], node["id"], "{meta}");
        assert_eq!(meta["hostname"], node["name"]);
        assert_eq!(meta["public_keys"]["me"], KEY);
        assert_eq!(meta["meta"]["role"], role);
        // cloud-init, the real consumer: read the drive as its ConfigDrive datasource does …
        let py = "import json,sys\nfrom cloudinit.sources.helpers import openstack\n\
                  r = openstack.ConfigDriveReader(sys.argv[1]).read_v2()\n\
                  print(json.dumps({'uuid': r['metadata']['uuid'], 'links': len(r['networkdata']['links'])}))";
        let read = run(Command::new("/usr/bin/python3")
            .env("PYTHONPATH", root().join(".venv/cloud-init/usr/lib/python3/dist-packages"))
            .args(["-c", py])
            .arg(out.path()));
        let read: Value = serde_json::from_str(read.trim()).unwrap();
        assert_eq!(read, json!({"uuid": node["id"], "links": 2}), "the boot NIC and the data NIC");
        // … and convert its network_data.json to networkd units.
        let mac = node["addresses"][0]["mac"].as_str().unwrap();
        let conv = tempfile::tempdir().unwrap();
        run(Command::new(tool("cloud-init"))
            .args(["devel", "net-convert", "-k", "network_data.json", "-D", "debian", "-O", "networkd", "-p"])
            .arg(latest.join("network_data.json"))
            .arg("-d")
            .arg(conv.path())
            .args(["-m", &format!("eth0,{mac}")])
            .args(["-m", &format!("eth1,{}", node["networks"][0]["mac"].as_str().unwrap())]));
        let unit = std::fs::read_dir(conv.path().join("etc/systemd/network"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<String>();
        let addr = node["addresses"][0]["address"].as_str().unwrap();
        assert!(unit.contains(&format!("Address={addr}/24")), "networkd from network_data.json:\n{unit}");
        let data = node["networks"][0]["fixed_ips"][0]["address"].as_str().unwrap();
        assert!(unit.contains(&format!("Address={data}/24")), "the data network's address:\n{unit}");
    }

    /// The node's config drive, as files (the last partition of its disk).
    pub(crate) fn config_drive(&self, node: &Value) -> tempfile::TempDir {
        let disk = self.disk_of(node);
        let table: Value = serde_json::from_str(&run(Command::new(tool("sfdisk")).arg("-J").arg(&disk))).unwrap();
        let parts = table["partitiontable"]["partitions"].as_array().unwrap();
        let start = parts.last().unwrap()["start"].as_u64().unwrap() * 512;
        extract_drive(&disk, start)
    }

    /// Ask the metadata service from the machine's own namespace, with the
    /// node's address on its NIC (what the deployed OS configures from the
    /// config drive) and the metadata token from its config drive.
    fn metadata_from_node(&self, node: &Value, file: &str) -> String {
        let drive = self.config_drive(node);
        let token = std::fs::read_to_string(drive.path().join("openstack/latest/tundra_metadata_token")).unwrap();
        self.ask_metadata(node, file, Some(token.trim())).unwrap()
    }

    /// The same from whoever takes the node's address: the answer, or
    /// busybox wget's complaint.
    fn ask_metadata(&self, node: &Value, file: &str, token: Option<&str>) -> Result<String, String> {
        let mid = node["machine_id"].as_str().unwrap();
        let name = self.get(&format!("/v1/machines/{mid}"))["name"].as_str().unwrap().to_string();
        let lm = self.lab().machines.iter().find(|l| l.spec.name == name).unwrap();
        let ns = &lm.firmware.ns;
        let addr = node["addresses"][0]["address"].as_str().unwrap();
        let _ = Command::new("ip").args(["-n", ns, "addr", "flush", "dev", "eth0"]).status();
        run(Command::new("ip").args(["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]));
        let url = format!("http://{}:{}/openstack/latest/{file}", self.server_ip, self.boot_port);
        let mut wget = Command::new("ip");
        wget.args(["netns", "exec", ns, "busybox", "wget", "-q", "-O", "-"]);
        if let Some(t) = token {
            wget.args(["--header", &format!("X-Tundra-Metadata-Token: {t}")]);
        }
        let out = wget.arg(&url).output().unwrap();
        let _ = Command::new("ip").args(["-n", ns, "addr", "flush", "dev", "eth0"]).status();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// Copy `openstack/` out of the FAT filesystem at byte `start` of `disk`.
fn extract_drive(disk: &Path, start: u64) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    run(Command::new(tool("mcopy"))
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-n", "-i"])
        .arg(format!("{}@@{start}", disk.display()))
        .arg("::openstack")
        .arg(out.path()));
    out
}

pub fn quickstart_on_the_lab() {
    let s = LabSite::start();
    // The site: the admin enrolls, inspects and cleans every lab machine.
    let mut admin = s.workspace("site");
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();
    let machines = s.machines();
    assert_eq!(machines.len(), 6);
    assert!(machines.iter().all(|m| m["provision_state"] == "available"), "{machines:?}");
    assert_eq!(admin.plan().0, 0, "site: no changes after apply");

    // The quickstart: 4 nodes in one island.
    let img1 = s.dir.path().join("img1.raw");
    image(&img1, 1);
    let mut ws = s.workspace("quickstart");
    ws.env.push(("TF_VAR_image_path".into(), img1.display().to_string()));
    ws.env.push(("TF_VAR_public_key".into(), KEY.into()));
    ws.apply();
    let nodes = s.nodes();
    assert_eq!(nodes.len(), 4);
    let islands: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n["location"]["island"].as_str().unwrap()).collect();
    assert_eq!(islands.len(), 1, "affinity: one island for all: {nodes:?}");
    assert_eq!(islands.first(), Some(&"a"), "the island with room for the group");
    let mut addrs = Vec::new();
    for n in &nodes {
        assert_eq!(n["status"], "active", "{n}");
        s.check_disk(n, &img1, "worker");
        addrs.push(n["addresses"][0]["address"].as_str().unwrap().to_string());
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 4, "each node its own address");
    let outputs = ws.ok(&["output", "-no-color", "nodes"]);
    for n in &nodes {
        assert!(outputs.contains(n["addresses"][0]["address"].as_str().unwrap()), "{outputs}");
    }
    assert_eq!(ws.plan().0, 0, "no changes after apply:\n{}", ws.plan().1);
    // The metadata service answers the node from its own address, with the
    // token on its config drive — and nobody who merely takes the address.
    let md: Value = serde_json::from_str(&s.metadata_from_node(&nodes[0], "meta_data.json")).unwrap();
    assert_eq!(md["uuid"], nodes[0]["id"]);
    let e = s.ask_metadata(&nodes[0], "user_data", None).unwrap_err();
    assert!(e.contains("401"), "without the token: {e}");
    let e = s.ask_metadata(&nodes[0], "user_data", Some("tnm_guessed")).unwrap_err();
    assert!(e.contains("401"), "with a guessed token: {e}");

    // Import: forget a node, import it by ID, and the plan is still empty.
    let first = ws.resource("tundra_node.worker[0]");
    let id = first["id"].as_str().unwrap().to_string();
    ws.ok(&["state", "rm", "tundra_node.worker[0]"]);
    ws.ok(&["import", "-no-color", "tundra_node.worker[0]", &id]);
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "no changes after import:\n{out}");

    // Metadata changes in place: same nodes, new metadata (config drive
    // stays as deployed; the metadata service answers the new values).
    let before: Vec<Value> = s.nodes().iter().map(|n| n["id"].clone()).collect();
    ws.env.push(("TF_VAR_role".into(), "compute".into()));
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("0 to add, 4 to change, 0 to destroy"), "in place:\n{out}");
    ws.apply();
    let after = s.nodes();
    assert_eq!(after.iter().map(|n| n["id"].clone()).collect::<Vec<_>>(), before, "updated in place");
    assert!(after.iter().all(|n| n["metadata"]["role"] == "compute"));
    let md: Value = serde_json::from_str(&s.metadata_from_node(&after[0], "meta_data.json")).unwrap();
    assert_eq!(md["meta"]["role"], "compute");
    assert_eq!(ws.plan().0, 0);

    // Two applies racing for the last 2 machines (island b): exactly 2 win.
    let project = after[0]["project_id"].as_str().unwrap().to_string();
    let flavor = after[0]["flavor_id"].as_str().unwrap().to_string();
    let image_id = after[0]["image_id"].as_str().unwrap().to_string();
    let racer = |tag: &str| {
        let tf = format!(
            "{}resource \"tundra_node\" \"r\" {{\n  count = 2\n  name = \"race-{tag}-${{count.index}}\"\n  project_id = \"{project}\"\n  flavor_id = \"{flavor}\"\n  image_id = \"{image_id}\"\n}}\n",
            crate::steps::header()
        );
        s.site.workspace(&tf)
    };
    let (wa, wb) = (racer("a"), racer("b"));
    let (ra, rb) = std::thread::scope(|sc| {
        let a = sc.spawn(|| wa.run(&["apply", "-auto-approve", "-no-color"]));
        let b = sc.spawn(|| wb.run(&["apply", "-auto-approve", "-no-color"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let all = format!("{}\n{}", ra.all(), rb.all());
    assert!(ra.code != 0 || rb.code != 0, "both racing applies succeeded:\n{all}");
    assert!(all.contains("no capacity"), "the loser is told there is no capacity:\n{all}");
    let nodes = s.nodes();
    let racers: Vec<&Value> = nodes.iter().filter(|n| n["name"].as_str().unwrap().starts_with("race-")).collect();
    assert_eq!(racers.len(), 2, "exactly 2 allocated: {racers:?}");
    assert!(racers.iter().all(|n| n["status"] == "active" && n["location"]["island"] == "b"), "{racers:?}");
    // No machine is claimed by nobody: each is held by exactly one node.
    let held: std::collections::BTreeSet<&str> = nodes.iter().filter_map(|n| n["machine_id"].as_str()).collect();
    assert_eq!(held.len(), 6);
    for m in s.machines() {
        assert!(held.contains(m["id"].as_str().unwrap()), "machine {} held by no node: {m}", m["name"]);
        assert_eq!(m["provision_state"], "active");
    }
    for w in [&wa, &wb] {
        w.ok(&["destroy", "-auto-approve", "-no-color"]);
    }
    assert_eq!(s.nodes().len(), 4, "the racers' nodes are gone");

    // timeouts.create runs out before the deploy ends: the node is in state
    // (building, with its ID), the next plan is an update that waits for it.
    let slow = s.site.workspace(&format!(
        "{}resource \"tundra_node\" \"slow\" {{\n  name = \"slow\"\n  project_id = \"{project}\"\n  flavor_id = \"{flavor}\"\n  image_id = \"{image_id}\"\n  timeouts {{\n    create = \"2s\"\n  }}\n}}\n",
        crate::steps::header()
    ));
    let r = slow.run(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("Node still building"), "{}", r.all());
    let st = slow.resource("tundra_node.slow");
    assert_eq!(st["status"], "building", "{st}");
    let (code, out) = slow.plan();
    assert_eq!(code, 2);
    assert!(out.contains("0 to add, 1 to change, 0 to destroy"), "an update that waits:\n{out}");
    slow.apply();
    assert_eq!(slow.resource("tundra_node.slow")["status"], "active");
    assert_eq!(slow.resource("tundra_node.slow")["id"], st["id"], "the same node, waited for");
    assert_eq!(slow.plan().0, 0);
    slow.ok(&["destroy", "-auto-approve", "-no-color"]);

    // A new image replaces the nodes.
    let img2 = s.dir.path().join("img2.raw");
    image(&img2, 2);
    ws.env.push(("TF_VAR_image_path".into(), img2.display().to_string()));
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("tundra_node.worker[0] must be replaced"), "{out}");
    ws.apply();
    let nodes = s.nodes();
    assert_eq!(nodes.len(), 4);
    for n in &nodes {
        assert!(!before.contains(&n["id"]), "{} was replaced, not kept", n["name"]);
        assert_eq!(n["status"], "active");
    }
    s.check_disk(&nodes[0], &img2, "compute");

    // Destroy: the nodes are gone and their machines cleaned and available.
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    for m in s.machines() {
        assert_eq!(m["provision_state"], "available", "{m}");
    }
    for lm in &s.lab().machines {
        for (name, file) in &lm.disks {
            let b = std::fs::read(file).unwrap();
            assert!(b.iter().all(|x| *x == 0), "{} {name} is not erased", lm.spec.name);
        }
    }
}
