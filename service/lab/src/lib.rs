//! `tundra-lab`: a simulated site that is real at every boundary tundrad
//! touches. From a site file it starts the BMC emulators (sushy-tools for
//! Redfish, pyghmi for IPMI), builds the fabric from network namespaces, veth
//! pairs and a bridge, gives every machine a namespace, a hardware tree and
//! sparse disk files, and runs each machine's firmware: on power-on it
//! network-boots from tundrad (DHCP, iPXE script over HTTP, the agent it
//! fetched) or boots its disk. tundrad sees BMCs, DHCP clients and agents —
//! never the lab.
//!
//! The host gets one link onto the lab's provisioning network (`tl<id>h`,
//! `A.B.C.1/24`): tundrad serves DHCP and boot HTTP there. Everything is torn
//! down on `stop` (or drop), and a new lab first removes what a crashed one
//! left (`fabric::remove_leftovers`).

pub mod bmc;
pub mod cgroups;
pub mod fabric;
pub mod faults;
pub mod firmware;
pub mod image;
pub mod pg;
pub mod ramdisk;
pub mod site;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::firmware::Power;
use crate::site::{BmcKind, MachineSpec, Site};

/// How tundrad reaches a lab machine's BMC.
#[derive(Debug, Clone, Serialize)]
pub struct BmcInfo {
    /// `redfish` or `ipmi`.
    pub driver: &'static str,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub username: String,
    pub password: String,
}

/// One lab machine.
pub struct LabMachine {
    pub spec: MachineSpec,
    /// Its serial number (DMI), what discovery rules can key on.
    pub serial: String,
    pub bmc: BmcInfo,
    /// Disk name → the file standing in for it.
    pub disks: Vec<(String, PathBuf)>,
    /// Per NIC: (switch, LLDP port ID) it is cabled to.
    pub cabling: Vec<(String, String)>,
    pub firmware: Arc<firmware::Machine>,
}

/// The provisioning network as tundrad must serve it.
#[derive(Debug, Clone, Serialize)]
pub struct Provisioning {
    /// The host's link onto the lab fabric.
    pub interface: String,
    /// tundrad's address on it, `A.B.C.1/24`.
    pub address: String,
    pub server_ip: String,
    /// The DHCP pool, `A.B.C.100-A.B.C.199`.
    pub pool: String,
}

/// Where the lab lives and which Python environment has its peers.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// A virtualenv with sushy-tools and pyghmi (scripts/setup.sh makes `.venv`).
    pub venv: PathBuf,
}

pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    pub provisioning: Provisioning,
    pub machines: Vec<LabMachine>,
    /// The switch tundrad programs over SSH, when the site has one.
    pub ssh_switch: Option<fabric::SshSwitch>,
    helpers: Vec<Child>,
    /// The lab made /run/sshd (and removes it).
    made_run_sshd: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    torn_down: bool,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the notification handler and the IPMI poller need.
struct Routing {
    /// Redfish system UUID → machine index.
    by_uuid: HashMap<String, usize>,
    senders: Vec<mpsc::UnboundedSender<Power>>,
    /// Last boot device a Redfish BMC reported, per machine.
    boot_device: Mutex<HashMap<usize, String>>,
}

impl Lab {
    /// Build and start the site.
    pub async fn start(site: &Site, opts: &Options) -> anyhow::Result<Lab> {
        let removed = fabric::remove_leftovers();
        if !removed.is_empty() {
            tracing::info!(labs = ?removed, "removed what crashed labs left behind");
        }
        let [a, b] = random_bytes::<2>();
        let id = hex(&[a, b]);
        let specs = site.expand(a);
        let net = match &site.provisioning.cidr {
            Some(c) => site::cidr24(c).map_err(anyhow::Error::msg)?,
            None => (0..64)
                .map(|_| {
                    let [x, y] = random_bytes::<2>();
                    [10, 200 + x % 50, y]
                })
                .find(|n| !fabric::subnet_in_use(*n))
                .context("no free 10.x.y.0/24 for the provisioning network; set provisioning.cidr")?,
        };
        let dir = opts.dir.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // IPMI 2.0 passwords are at most 20 bytes.
        let password = hex(&random_bytes::<8>());
        let mut lab = Lab {
            id: id.clone(),
            dir: dir.clone(),
            provisioning: Provisioning {
                interface: fabric::host_link(&id),
                address: format!("{}.{}.{}.1/24", net[0], net[1], net[2]),
                server_ip: format!("{}.{}.{}.1", net[0], net[1], net[2]),
                pool: format!("{0}.{1}.{2}.100-{0}.{1}.{2}.199", net[0], net[1], net[2]),
            },
            machines: Vec::new(),
            ssh_switch: None,
            helpers: Vec::new(),
            made_run_sshd: false,
            tasks: Vec::new(),
            torn_down: false,
        };
        fabric::register(&id, &fabric::Registration { pid: std::process::id(), helpers: vec![], dir: dir.clone() })?;
        // From here on, a failure tears down what was built (Drop).
        lab.build(&specs, net, &password, opts, &bridge(&site.switch)).await?;
        lab.cable(&specs, &site.switch, net)?;
        Ok(lab)
    }

    async fn build(
        &mut self,
        specs: &[MachineSpec],
        net: [u8; 3],
        password: &str,
        opts: &Options,
        bridge: &str,
    ) -> anyhow::Result<()> {
        let id = self.id.clone();
        let macs: Vec<(Vec<String>, bool)> = specs.iter().map(|s| (s.macs.clone(), s.vm)).collect();
        fabric::build(&id, [net[0], net[1], net[2], 1], &macs, bridge)?;

        // Hardware trees and disks.
        let mut disks_of = Vec::new();
        for (k, s) in specs.iter().enumerate() {
            let root = self.dir.join("machines").join(&s.name).join("root");
            disks_of.push(hardware_tree(&root, s, &serial(&id, k), &self.dir.join("disks"))?);
        }

        // BMC power events reach the firmware through these channels.
        let (senders, receivers): (Vec<_>, Vec<_>) = specs.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let uuids: Vec<String> = specs.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let routing = Arc::new(Routing {
            by_uuid: specs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.bmc == BmcKind::Redfish)
                .map(|(k, _)| (uuids[k].clone(), k))
                .collect(),
            senders,
            boot_device: Mutex::new(HashMap::new()),
        });

        // The Redfish emulator notifies this listener of every change.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let notify_url = format!("http://{}/redfish-events", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/redfish-events", axum::routing::put(redfish_event).post(redfish_event))
            .with_state(routing.clone());
        self.tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));

        let mut bmcs: Vec<Option<BmcInfo>> = vec![None; specs.len()];
        let redfish: Vec<bmc::RedfishSystem> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.bmc == BmcKind::Redfish)
            .map(|(k, s)| bmc::RedfishSystem { uuid: uuids[k].clone(), name: s.name.clone(), macs: s.macs.clone() })
            .collect();
        if !redfish.is_empty() {
            let d = self.dir.join("redfish");
            std::fs::create_dir_all(&d)?;
            let (child, url) = bmc::start_sushy(&opts.venv, &d, &redfish, password, &notify_url)?;
            self.helpers.push(child);
            self.register()?;
            for (k, _) in specs.iter().enumerate().filter(|(_, s)| s.bmc == BmcKind::Redfish) {
                bmcs[k] = Some(BmcInfo {
                    driver: "redfish",
                    address: url.clone(),
                    system: Some(uuids[k].clone()),
                    username: "admin".into(),
                    password: password.into(),
                });
            }
        }
        let ipmi: Vec<usize> =
            specs.iter().enumerate().filter(|(_, s)| s.bmc == BmcKind::Ipmi).map(|(k, _)| k).collect();
        if !ipmi.is_empty() {
            let d = self.dir.join("ipmi");
            std::fs::create_dir_all(&d)?;
            let (children, list) = bmc::start_ipmi(&opts.venv, &d, ipmi.len(), password)?;
            self.helpers.extend(children);
            self.register()?;
            let mut watched = Vec::new();
            for (k, b) in ipmi.iter().zip(list) {
                bmcs[*k] = Some(BmcInfo {
                    driver: "ipmi",
                    address: format!("127.0.0.1:{}", b.port),
                    system: None,
                    username: "admin".into(),
                    password: password.into(),
                });
                watched.push((*k, b.state));
            }
            let r = routing.clone();
            self.tasks.push(tokio::spawn(watch_ipmi(watched, r)));
        }

        for (k, (s, rx)) in specs.iter().zip(receivers).enumerate() {
            let mdir = self.dir.join("machines").join(&s.name);
            let vm = s.vm.then(|| firmware::Vm {
                qemu_root: opts.venv.parent().unwrap_or(&opts.venv).join("qemu"),
                fabric_ns: fabric::fabric_ns(&id),
                taps: s.macs.iter().enumerate().map(|(j, mac)| (format!("m{k}t{j}"), mac.clone())).collect(),
                disks: disks_of[k].iter().map(|(_, f)| f.clone()).collect(),
                serial: mdir.join("serial.log"),
                memory_mib: s.memory_mib,
            });
            let fw = Arc::new(firmware::Machine {
                vm,
                name: s.name.clone(),
                ns: fabric::machine_ns(&id, k),
                root: mdir.join("root"),
                ram: mdir.join("ram"),
                log: mdir.join("console.log"),
                disks: disks_of[k].iter().map(|(_, f)| f.clone()).collect(),
                os: mdir.join("os"),
                os_disk: Mutex::new(None),
                nics: s.macs.len(),
                status: Mutex::new("off".into()),
                boots: Mutex::new(0),
            });
            self.tasks.push(tokio::spawn(firmware::run(fw.clone(), rx)));
            self.machines.push(LabMachine {
                spec: s.clone(),
                serial: serial(&id, k),
                bmc: bmcs[k].clone().context("every machine has a BMC")?,
                disks: disks_of[k].clone(),
                cabling: Vec::new(),
                firmware: fw,
            });
        }
        Ok(())
    }

    /// The lab switch: which port each machine NIC is on, announced by
    /// lldpd — and, for an SSH switch, sshd as its management plane.
    fn cable(&mut self, specs: &[MachineSpec], switch: &site::Switch, net: [u8; 3]) -> anyhow::Result<()> {
        let mut ports = Vec::new();
        let mut n = 0;
        for (k, s) in specs.iter().enumerate() {
            for j in 0..s.macs.len() {
                n += 1;
                let port_id =
                    if switch.ssh { format!("m{k}p{j}") } else { switch.port_id.replace("{n}", &n.to_string()) };
                if !s.vm {
                    ports.push((format!("m{k}p{j}"), port_id.clone(), format!("{} eth{j}", s.name)));
                }
                self.machines[k].cabling.push((switch.name.clone(), port_id));
            }
        }
        if !ports.is_empty() {
            let d = self.dir.join("switch");
            std::fs::create_dir_all(&d)?;
            self.helpers.push(fabric::start_lldpd(&self.id, &d, &switch.name, &ports)?);
            self.register()?;
        }
        if switch.ssh {
            let d = self.dir.join("switch-ssh");
            std::fs::create_dir_all(&d)?;
            self.made_run_sshd = fabric::ensure_run_sshd();
            let (child, sw) = fabric::start_sshd(
                &self.id,
                &d,
                &switch.name,
                &bridge(switch),
                [net[0], net[1], net[2], 2],
                switch.provisioning_vlan,
            )?;
            self.helpers.push(child);
            self.register()?;
            let addr = sw.address.clone();
            let start = std::time::Instant::now();
            while std::net::TcpStream::connect(addr.as_str()).is_err() {
                if start.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!(
                        "the lab switch's sshd did not start: {}",
                        std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.ssh_switch = Some(sw);
        }
        Ok(())
    }

    fn register(&self) -> anyhow::Result<()> {
        fabric::register(
            &self.id,
            &fabric::Registration {
                pid: std::process::id(),
                helpers: self.helpers.iter().map(Child::id).collect(),
                dir: self.dir.clone(),
            },
        )
    }

    pub fn machine(&self, name: &str) -> Option<&LabMachine> {
        self.machines.iter().find(|m| m.spec.name == name)
    }

    /// What tundrad and its operators need to know, as JSON (`lab.json`).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "provisioning": self.provisioning,
            "switch": self.ssh_switch,
            "machines": self.machines.iter().map(|m| serde_json::json!({
                "name": m.spec.name,
                "serial": m.serial,
                "bmc": m.bmc,
                "macs": m.spec.macs,
                "rack": m.spec.rack,
                "island": m.spec.island,
                "cabling": m.cabling.iter().map(|(s, p)| serde_json::json!({"switch": s, "port_id": p})).collect::<Vec<_>>(),
                "disks": m.disks.iter().map(|(n, p)| serde_json::json!({"name": n, "file": p})).collect::<Vec<_>>(),
                "console_log": m.firmware.log,
                "netns": m.firmware.ns,
            })).collect::<Vec<_>>(),
        })
    }

    /// Stop everything and remove the fabric (what dropping the lab does):
    /// the firmware tasks stop, and the teardown kills whatever runs in the
    /// machines' namespaces.
    pub async fn stop(self) {
        drop(self);
    }

    fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for c in &mut self.helpers {
            let _ = c.kill();
            let _ = c.wait();
        }
        fabric::teardown(&self.id, &[], &self.dir);
        if self.made_run_sshd {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.teardown();
    }
}

/// The address a lab machine's OS has on the provisioning network (what
/// `ssh` reaches from the host), read from inside its namespace; `lab` is
/// `lab.json`.
pub fn os_address(lab: &serde_json::Value, machine: &str) -> anyhow::Result<String> {
    let m = lab["machines"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == machine))
        .with_context(|| format!("the lab has no machine {machine:?}"))?;
    let ns = m["netns"].as_str().context("lab.json names no namespace for it")?;
    let server = lab["provisioning"]["server_ip"].as_str().context("lab.json has no provisioning network")?;
    let net = &server[..server.rfind('.').unwrap_or(0) + 1];
    let out = std::process::Command::new("ip").args(["-n", ns, "-4", "-o", "addr", "show"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter_map(|w| w.split_once('/').map(|(a, _)| a))
        .find(|a| a.starts_with(net))
        .map(str::to_string)
        .with_context(|| format!("{machine} has no address on {net}0/24: is it running its OS? ({ns}: {text:?})"))
}

/// `ssh` options for the lab's nodes: every deploy makes new host keys, so
/// none are pinned (this is a lab, reached only through its own fabric).
pub fn ssh_options() -> Vec<String> {
    [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "ConnectTimeout=5",
        "IdentitiesOnly=yes",
    ]
    .iter()
    .flat_map(|o| ["-o".to_string(), o.to_string()])
    .collect()
}

/// The provisioning network's bridge in the fabric namespace.
fn bridge(s: &site::Switch) -> String {
    format!("br{}", s.provisioning_vlan)
}

/// A lab machine's serial number (its DMI `product_serial`).
pub fn serial(lab: &str, k: usize) -> String {
    format!("LAB-{lab}-{k:03}")
}

/// Write a machine's hardware tree (what its agent reads) and create its
/// sparse disk files; returns (disk name, file).
fn hardware_tree(
    root: &Path,
    s: &MachineSpec,
    serial: &str,
    disks_dir: &Path,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let w = |p: &str, v: String| -> anyhow::Result<()> {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().expect("has a parent"))?;
        std::fs::write(&f, v).with_context(|| format!("writing {}", f.display()))
    };
    let mut cpuinfo = String::new();
    for i in 0..s.cpus {
        cpuinfo.push_str(&format!("processor\t: {i}\nmodel name\t: {}\n\n", s.cpu_model));
    }
    w("proc/cpuinfo", cpuinfo)?;
    w("proc/meminfo", format!("MemTotal:       {} kB\n", s.memory_mib * 1024))?;
    w("sys/class/dmi/id/product_serial", format!("{serial}\n"))?;
    w("sys/class/dmi/id/sys_vendor", "Tundra Lab\n".into())?;
    w("sys/class/dmi/id/product_name", format!("{} ({} CPUs)\n", s.cpu_model, s.cpus))?;
    std::fs::create_dir_all(root.join("dev"))?;
    std::fs::create_dir_all(disks_dir)?;
    let mut out = Vec::new();
    for d in &s.disks {
        let bytes = d.size_mib << 20;
        w(&format!("sys/block/{}/size", d.name), format!("{}\n", bytes / 512))?;
        w(&format!("sys/block/{}/queue/rotational", d.name), format!("{}\n", u8::from(d.rotational)))?;
        w(&format!("sys/block/{}/device/model", d.name), "LAB VIRTUAL DISK\n".into())?;
        let file = disks_dir.join(format!("{}-{}.img", s.name, d.name));
        let f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&file)?;
        f.set_len(bytes)?;
        let link = root.join("dev").join(&d.name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link)?;
        out.push((d.name.clone(), file));
    }
    for (j, mac) in s.macs.iter().enumerate() {
        let n = format!("sys/class/net/eth{j}");
        w(&format!("{n}/address"), format!("{mac}\n"))?;
        w(&format!("{n}/type"), "1\n".into())?;
        w(&format!("{n}/carrier"), "1\n".into())?;
        w(&format!("{n}/speed"), "10000\n".into())?;
    }
    for (g, gpu) in s.gpus.iter().enumerate() {
        let d = format!("sys/bus/pci/devices/0000:{:02x}:00.0", 0x41 + g);
        w(&format!("{d}/class"), "0x030200\n".into())?;
        w(&format!("{d}/vendor"), format!("{}\n", gpu.vendor))?;
        w(&format!("{d}/device"), format!("{}\n", gpu.device))?;
    }
    Ok(out)
}

/// sushy-tools' external notification: the whole system JSON on every change.
async fn redfish_event(
    axum::extract::State(r): axum::extract::State<Arc<Routing>>,
    axum::Json(sys): axum::Json<serde_json::Value>,
) -> axum::http::StatusCode {
    let Some(&k) = sys["uuid"].as_str().and_then(|u| r.by_uuid.get(u)) else {
        return axum::http::StatusCode::NOT_FOUND;
    };
    if let Some(dev) = sys["boot_device"].as_str()
        && let Ok(mut m) = r.boot_device.lock()
    {
        m.insert(k, dev.to_string());
    }
    let pending = &sys["pending_power"];
    if let Some(target) = pending["power_state"].as_str() {
        let at = pending["apply_time"].as_f64().unwrap_or(0.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let delay = Duration::from_secs_f64((at - now).max(0.0));
        let on = target == "On" || target.contains("Restart");
        if target.contains("Restart") {
            // A reset takes the machine down at once; it comes up when the BMC applies it.
            let _ = r.senders[k].send(Power::Off);
        }
        let r = r.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let pxe = r.boot_device.lock().map(|m| m.get(&k).map(|d| d == "Pxe")).ok().flatten().unwrap_or(false);
            let _ = r.senders[k].send(if on { Power::On { pxe } } else { Power::Off });
        });
    }
    axum::http::StatusCode::NO_CONTENT
}

/// The IPMI BMCs keep their state in files: watch power and the boot counter.
async fn watch_ipmi(watched: Vec<(usize, PathBuf)>, r: Arc<Routing>) {
    let mut seen: HashMap<usize, (String, u64)> = watched.iter().map(|(k, _)| (*k, ("off".to_string(), 0))).collect();
    loop {
        for (k, file) in &watched {
            let Ok(text) = tokio::fs::read_to_string(file).await else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let power = v["power"].as_str().unwrap_or("off").to_string();
            let boots = v["boots"].as_u64().unwrap_or(0);
            let prev = seen.get(k).cloned().unwrap_or_default();
            if boots != prev.1 && power == "on" {
                let pxe = matches!(v["bootdev"].as_str(), Some("network" | "pxe"));
                let _ = r.senders[*k].send(Power::On { pxe });
            } else if power == "off" && prev.0 == "on" {
                let _ = r.senders[*k].send(Power::Off);
            }
            seen.insert(*k, (power, boots));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
