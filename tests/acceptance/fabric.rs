//! The fabric through real Terraform on a lab whose switch is a Linux host
//! (OpenSSH in the fabric namespace, one bridge per VLAN): the admin
//! declares the physical network, the switch (key login, pinned host key)
//! and the machines' cabling; a project puts two nodes on network A and one
//! on B. Checked with real traffic between the machines' namespaces: A's
//! nodes reach each other, B's does not; moving a node to B (in place)
//! reverses that. A port moved by hand over SSH shows up as drift in
//! `terraform plan`, and `apply` repairs it. Destroy puts every port back
//! on the provisioning VLAN.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::nodes::{LabSite, image};

const SITE: &str = r#"
[switch]
name = "leaf-1"
ssh = true
provisioning_vlan = 1

[[machines]]
name = "m-{n}"
count = 3
bmc = "redfish"
nics = 2
disks = [{ name = "nvme0n1", size_mib = 256 }]
rack = "r1"
island = "a"
"#;

pub(crate) fn admin_tf() -> String {
    format!(
        r#"{}
variable "lab_file" {{
  type = string
}}

locals {{
  lab = jsondecode(file(var.lab_file))
}}

resource "tundra_physical_network" "fabric" {{
  name                 = "fabric"
  kind                 = "ethernet"
  segment_range        = [100, 199]
  provisioning_segment = local.lab.switch.provisioning_vlan
}}

resource "tundra_switch" "leaf" {{
  name                = local.lab.switch.name
  physical_network_id = tundra_physical_network.fabric.id
  dialect             = local.lab.switch.dialect
  address             = local.lab.switch.address
  username            = local.lab.switch.username
  private_key         = file(local.lab.switch.private_key_file)
  credentials_version = 1
  host_key            = local.lab.switch.host_key
  max_sessions        = 2
}}

resource "tundra_machine" "lab" {{
  for_each       = {{ for m in local.lab.machines : m.name => m }}
  name           = each.key
  resource_class = "baremetal"
  location = {{
    rack   = each.value.rack
    island = each.value.island
  }}
  bmc = {{
    driver   = each.value.bmc.driver
    address  = each.value.bmc.address
    system   = try(each.value.bmc.system, null)
    username = each.value.bmc.username
  }}
  bmc_password = each.value.bmc.password
  interfaces = [for i, mac in each.value.macs : {{
    mac              = mac
    pxe              = i == 0
    physical_network = "fabric"
    switch           = each.value.cabling[i].switch
    port             = each.value.cabling[i].port_id
  }}]
  provide    = true
  depends_on = [tundra_switch.leaf]
}}

resource "tundra_flavor" "compute" {{
  name           = "compute"
  public         = true
  resource_class = "baremetal"
}}
"#,
        crate::steps::header()
    )
}

fn project_tf() -> String {
    format!(
        r#"{}
variable "image_path" {{
  type = string
}}

variable "n2_network" {{
  type    = string
  default = "a"
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

resource "tundra_network" "net" {{
  for_each            = toset(["a", "b"])
  project_id          = data.tundra_project.astro.id
  name                = each.key
  physical_network_id = data.tundra_physical_network.fabric.id
}}

# One CIDR on both networks (distinct pools): only the VLANs keep them apart.
resource "tundra_subnet" "net" {{
  for_each   = {{ a = "10.60.0.10", b = "10.60.0.100" }}
  network_id = tundra_network.net[each.key].id
  name       = "${{each.key}}-v4"
  cidr       = "10.60.0.0/24"
  allocation_pools = [{{
    start = each.value
    end   = cidrhost("10.60.0.0/24", tonumber(split(".", each.value)[3]) + 50)
  }}]
}}

resource "tundra_image" "os" {{
  project_id  = data.tundra_project.astro.id
  name        = "os"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}}

locals {{
  networks = {{ n1 = "a", n2 = var.n2_network, n3 = "b" }}
}}

resource "tundra_node" "n" {{
  for_each   = local.networks
  project_id = data.tundra_project.astro.id
  name       = each.key
  flavor_id  = data.tundra_flavor.compute.id
  image_id   = tundra_image.os.id
  networks   = [{{ network_id = tundra_network.net[each.value].id }}]
  depends_on = [tundra_subnet.net]
}}

output "data_ports" {{
  value = {{ for k, n in tundra_node.n : k => n.network_ports[0] }}
}}
"#,
        crate::steps::header()
    )
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Fabric<'a> {
    s: &'a LabSite,
}

impl Fabric<'_> {
    fn fab_ns(&self) -> String {
        format!("tl{}-fab", self.s.lab().id)
    }

    /// The machine (lab index) a node runs on.
    fn machine_of(&self, node: &Value) -> usize {
        let mid = node["machine_id"].as_str().unwrap();
        let name = self.s.get(&format!("/v1/machines/{mid}"))["name"].as_str().unwrap().to_string();
        self.s.lab().machines.iter().position(|m| m.spec.name == name).unwrap()
    }

    fn node(&self, name: &str) -> Value {
        self.s.nodes().into_iter().find(|n| n["name"] == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// What the switch itself says: the bridge a port is in.
    fn bridge_of(&self, port: &str) -> String {
        let line = sh(&["ip", "-n", &self.fab_ns(), "-o", "link", "show", "dev", port]);
        line.split_whitespace().skip_while(|w| *w != "master").nth(1).unwrap_or("none").to_string()
    }

    /// Play the node's OS: its data address on eth1 (what the config drive says).
    fn configure(&self, node: &Value) -> String {
        let k = self.machine_of(node);
        let ns = &self.s.lab().machines[k].firmware.ns;
        let ip = node["networks"][0]["fixed_ips"][0]["address"].as_str().unwrap().to_string();
        let mac = node["networks"][0]["mac"].as_str().unwrap();
        assert_eq!(mac, self.s.lab().machines[k].spec.macs[1], "the data port is bound to eth1");
        let _ = Command::new("ip").args(["-n", ns, "addr", "flush", "dev", "eth1"]).status();
        sh(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth1"]);
        sh(&["ip", "-n", ns, "link", "set", "eth1", "up"]);
        ip
    }

    fn ping(&self, from: &Value, to_ip: &str) -> bool {
        let ns = &self.s.lab().machines[self.machine_of(from)].firmware.ns;
        Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", to_ip])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// A reaches B: a few tries (ARP after a move). Isolation: one ping fails.
    fn reaches(&self, a: &Value, b_ip: &str) -> bool {
        (0..5).any(|_| self.ping(a, b_ip))
    }

    /// Configure every node's data address and check who reaches whom.
    fn check(&self, together: &[&str], apart: &str) {
        let nodes: Vec<Value> = ["n1", "n2", "n3"].iter().map(|n| self.node(n)).collect();
        let ips: Vec<String> = nodes.iter().map(|n| self.configure(n)).collect();
        let idx = |name: &str| ["n1", "n2", "n3"].iter().position(|n| *n == name).unwrap();
        let (a, b) = (idx(together[0]), idx(together[1]));
        assert!(self.reaches(&nodes[a], &ips[b]), "{} should reach {} ({})", together[0], together[1], ips[b]);
        let c = idx(apart);
        assert!(!self.ping(&nodes[a], &ips[c]), "{} must not reach {} ({})", together[0], apart, ips[c]);
        assert!(!self.ping(&nodes[c], &ips[b]), "{apart} must not reach {} ({})", together[1], ips[b]);
    }
}

pub fn fabric_on_the_lab() {
    let s = LabSite::start_with(SITE, |c| {
        c.fabric_read_interval = "2s".into();
    });
    let f = Fabric { s: &s };
    let sw = s.lab().ssh_switch.clone().expect("the lab has an SSH switch");
    let mut admin = s.site.workspace(&admin_tf());
    admin.env.push(("TF_VAR_lab_file".into(), s.dir.path().join("lab.json").display().to_string()));
    admin.apply();
    assert_eq!(admin.plan().0, 0, "site: no changes after apply:\n{}", admin.plan().1);
    let state = admin.state().to_string();
    assert!(!state.contains("PRIVATE KEY"), "the switch key is write-only: never in state");
    let key = std::fs::read_to_string(&sw.private_key_file).unwrap();
    let switch_id = admin.resource("tundra_switch.leaf")["id"].as_str().unwrap().to_string();
    let (_, view) = s.site.api("GET", &format!("/v1/switches/{switch_id}"), None);
    assert_eq!(view["has_private_key"], true);
    assert!(!view.to_string().contains(key.lines().nth(1).unwrap()), "tundrad never returns the key");

    // Three nodes: n1 and n2 on A, n3 on B.
    let img = s.dir.path().join("img.raw");
    image(&img, 3);
    let mut ws = s.site.workspace(&project_tf());
    ws.env.push(("TF_VAR_image_path".into(), img.display().to_string()));
    ws.apply();
    let (a, b) = (ws.resource("tundra_network.net[\"a\"]"), ws.resource("tundra_network.net[\"b\"]"));
    let (seg_a, seg_b) = (a["segment"].as_i64().unwrap(), b["segment"].as_i64().unwrap());
    // Created in parallel: which gets 100 and which 101 is up to Terraform.
    assert_eq!((seg_a.min(seg_b), seg_a.max(seg_b)), (100, 101), "segments from the range");
    for (n, seg) in [("n1", seg_a), ("n2", seg_a), ("n3", seg_b)] {
        let node = f.node(n);
        assert_eq!(node["status"], "active", "{node}");
        assert!(node["drift"].is_null(), "{node}");
        let port = format!("m{}p1", f.machine_of(&node));
        assert_eq!(f.bridge_of(&port), format!("br{seg}"), "{n}'s data port on the switch");
        assert_eq!(f.bridge_of(&format!("m{}p0", f.machine_of(&node))), "br1", "{n}'s boot port stays on provisioning");
    }
    assert_eq!(ws.plan().0, 0, "no changes after apply:\n{}", ws.plan().1);
    // The config drive tells the OS its data address (static: the subnet has no DHCP).
    let n1 = f.node("n1");
    let drive = s.config_drive(&n1);
    let nd: Value =
        serde_json::from_slice(&std::fs::read(drive.path().join("openstack/latest/network_data.json")).unwrap())
            .unwrap();
    let mac = n1["networks"][0]["mac"].as_str().unwrap();
    let ip = n1["networks"][0]["fixed_ips"][0]["address"].as_str().unwrap();
    let link = nd["links"].as_array().unwrap().iter().find(|l| l["ethernet_mac_address"] == mac).cloned();
    let link = link.unwrap_or_else(|| panic!("no link for {mac}: {nd}"));
    let net = nd["networks"].as_array().unwrap().iter().find(|n| n["link"] == link["id"]).cloned().unwrap();
    assert_eq!((net["type"].as_str(), net["ip_address"].as_str()), (Some("ipv4"), Some(ip)), "{nd}");
    assert_eq!(net["netmask"], "255.255.255.0", "{nd}");
    f.check(&["n1", "n2"], "n3");

    // Move n2 to B, in place: its switch port moves, nothing is redeployed.
    let n2_before = f.node("n2");
    ws.env.push(("TF_VAR_n2_network".into(), "b".into()));
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("0 to add, 1 to change, 0 to destroy"), "in place:\n{out}");
    ws.apply();
    let n2 = f.node("n2");
    assert_eq!(n2["id"], n2_before["id"], "the same node");
    assert_eq!(n2["status"], "active");
    assert_eq!(f.bridge_of(&format!("m{}p1", f.machine_of(&n2))), format!("br{seg_b}"));
    f.check(&["n2", "n3"], "n1");
    assert_eq!(ws.plan().0, 0);

    // By hand over SSH (OpenSSH's client, the operator's way): n3's port into A.
    let n3 = f.node("n3");
    let port3 = format!("m{}p1", f.machine_of(&n3));
    let (host, port) = sw.address.rsplit_once(':').unwrap();
    let known = s.dir.path().join("known_hosts");
    sh(&[
        "ssh",
        "-i",
        sw.private_key_file.to_str().unwrap(),
        "-p",
        port,
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        &format!("UserKnownHostsFile={}", known.display()),
        "-o",
        "BatchMode=yes",
        &format!("root@{host}"),
        &format!("ip link set dev {port3} master br{seg_a}"),
    ]);
    assert_eq!(f.bridge_of(&port3), format!("br{seg_a}"));
    let start = Instant::now();
    while f.node("n3")["drift"].is_null() {
        assert!(start.elapsed() < Duration::from_secs(60), "the drift was never recorded: {}", f.node("n3"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out) = ws.plan();
    assert_eq!(code, 2, "drift shows in the plan:\n{out}");
    assert!(out.contains("0 to add, 1 to change, 0 to destroy"), "{out}");
    assert!(out.contains(&format!("port {port3} is in segment {seg_a} but should be in segment {seg_b}")), "{out}");
    assert!(out.contains("tundra_node.n[\"n3\"] will be updated in-place"), "{out}");
    let shown = out.lines().find(|l| l.contains("drift") && l.contains("->")).unwrap_or_default().trim();
    assert!(shown.contains(&format!("port {port3} is in segment {seg_a}")), "the plan's diff shows the drift:\n{out}");
    eprintln!("drift in the plan: {shown}");
    ws.apply();
    assert_eq!(f.bridge_of(&port3), format!("br{seg_b}"), "apply repaired the switch port");
    assert!(f.node("n3")["drift"].is_null());
    f.check(&["n2", "n3"], "n1");
    assert_eq!(ws.plan().0, 0, "repaired: no changes:\n{}", ws.plan().1);

    // Destroy: nodes cleaned, every data port back on the provisioning VLAN.
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(s.nodes().is_empty());
    let start = Instant::now();
    for k in 0..3 {
        let p = format!("m{k}p1");
        while f.bridge_of(&p) != "br1" {
            assert!(start.elapsed() < Duration::from_secs(60), "{p} is on {}, not provisioning", f.bridge_of(&p));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let (_, ports) = s.site.api("GET", &format!("/v1/switches/{switch_id}/ports"), None);
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 6, "every cabled interface is managed: {ports:?}");
    assert!(ports.iter().all(|p| p["state"] == "in_sync" && p["desired_segment"] == 1), "{ports:?}");
}
