//! The chaos suite (issue #23): faults a site meets, on the lab, with
//! figures. Not a test: it asserts nothing and prints what happened — the
//! counts that must be 0 and how long the site took to converge. Needs root;
//! run through `scripts/chaos.sh`.
//!
//!     chaos [--scenarios kill,replicas,bmc,switch,db,race] [--machines 20]
//!           [--kills 50] [--db-restarts 3] [--switch-rounds 10] [--races 20] [--race-k 3]
//!
//! - `kill`: one tundrad (SQLite) is `kill -9`ed at random moments while
//!   waves of nodes are deployed on every lab machine and deleted (their
//!   machines cleaned), and started again a second later.
//! - `replicas`: the same with three replicas on PostgreSQL, a random one
//!   killed each time.
//! - `bmc`: every BMC behind a fault-injecting proxy (Redfish: 503s, 1–11 s
//!   delays, hangs, dropped connections; IPMI: delayed and dropped
//!   datagrams) through a wave; then two BMCs away for good, and back.
//! - `switch`: tundrad programs an emulated switch (fake-switches) through
//!   a proxy that refuses sessions and cuts them mid-batch, with a port the
//!   switch refuses in every batch; the switch is read back by hand after
//!   every round. Then the switch's host key changes.
//! - `db`: PostgreSQL under three replicas is stopped during a deploy wave
//!   and started again 10 s later.
//! - `race`: two `terraform apply` runs race for the last K free machines.
//!
//! With `CHAOS_JSON=PATH` the figures are also written there as JSON.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, boot_assets, venv};
use serde_json::{Value, json};
use tundra_lab::faults::{self, Mode, Odds};
use tundra_lab::pg::Pg;
use tundra_lab::{Lab, LabMachine};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or(default.into())
}

fn num(name: &str, default: usize) -> usize {
    arg(name, &default.to_string()).parse().unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn uniform(lo: f64, hi: f64) -> f64 {
    lo + faults::unit() * (hi - lo)
}

fn say(what: impl AsRef<str>) {
    eprintln!("chaos: {}", what.as_ref());
}

/// Minimum, median, 90th percentile and maximum, in seconds.
fn spread(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} / {:.1} / {:.1} / {:.1} s", v[0], at(0.5), at(0.9), v[v.len() - 1])
}

// ---------------------------------------------------------------------------
// tundrad processes

struct Tundrad {
    conf: PathBuf,
    log: PathBuf,
    base: String,
    child: Option<Child>,
}

impl Tundrad {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(bin("tundrad"))
            .arg("--config")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether it exited by itself (it should not).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Tundrad {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How the replicas of a site are configured.
struct SiteConfig {
    replicas: usize,
    postgres: bool,
    agent_boot_timeout: &'static str,
    replica_lease: &'static str,
    power_sync_interval: &'static str,
    fabric_read_interval: &'static str,
    bmc_retry_window: &'static str,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            replicas: 1,
            postgres: false,
            agent_boot_timeout: "30s",
            replica_lease: "6s",
            power_sync_interval: "600s",
            fabric_read_interval: "600s",
            bmc_retry_window: "60s",
        }
    }
}

/// tundrad replicas (and their database) for a lab, or for no lab.
struct Site {
    replicas: Vec<Tundrad>,
    pg: Option<Pg>,
    client: Client,
}

impl Site {
    async fn start(dir: &Path, lab: Option<&Lab>, sc: &SiteConfig) -> Site {
        let pg = sc.postgres.then(|| Pg::start().unwrap());
        let assets = boot_assets(dir);
        let mut replicas = Vec::new();
        for i in 0..sc.replicas {
            let data = dir.join(format!("r{i}"));
            std::fs::create_dir_all(&data).unwrap();
            let api = free_port();
            let mut t = format!(
                "listen = \"127.0.0.1:{api}\"\ndata_dir = \"{data}\"\nimages_dir = \"{images}\"\n\
                 secrets_key_file = \"{key}\"\nadmin_token_file = \"{token}\"\nboot_assets_dir = \"{assets}\"\n\
                 reconcile_interval = \"2s\"\nagent_lldp_wait = \"1s\"\nagent_boot_timeout = \"{abt}\"\n\
                 replica_lease = \"{lease}\"\npower_sync_interval = \"{psi}\"\npower_sync_failures = 3\n\
                 fabric_read_interval = \"{fri}\"\nbmc_retry_window = \"{brw}\"\n",
                data = data.display(),
                images = dir.join("images").display(),
                key = dir.join("secrets.key").display(),
                token = dir.join("admin-token").display(),
                assets = assets.display(),
                abt = sc.agent_boot_timeout,
                lease = sc.replica_lease,
                psi = sc.power_sync_interval,
                fri = sc.fabric_read_interval,
                brw = sc.bmc_retry_window,
            );
            if let Some(pg) = &pg {
                t += &format!("database_url = \"{}\"\n", pg.url);
            }
            if let Some(lab) = lab {
                let p = &lab.provisioning;
                let net = p.server_ip.rsplit_once('.').unwrap().0;
                t += &format!(
                    "\n[[provisioning_networks]]\ninterface = \"{}\"\naddress = \"{}\"\npool = \"{}\"\n\
                     node_pool = \"{net}.200-{net}.249\"\nhttp_port = {}\ntftp_port = 0\ntftp_root = \"{}\"\n",
                    p.interface,
                    p.address,
                    p.pool,
                    free_port(),
                    data.join("tftp").display()
                );
            }
            let conf = data.join("tundrad.toml");
            std::fs::write(&conf, t).unwrap();
            replicas.push(Tundrad {
                conf,
                log: data.join("tundrad.log"),
                base: format!("http://127.0.0.1:{api}"),
                child: None,
            });
        }
        // The first one bootstraps the site (key, admin token) alone.
        replicas[0].spawn();
        let token_file = dir.join("admin-token");
        let start = Instant::now();
        while !token_file.exists() || !ready(&replicas[0].base).await {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "tundrad did not come up; see {}",
                replicas[0].log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for r in &mut replicas[1..] {
            r.spawn();
        }
        let token = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
        let client = Client::new(replicas.iter().map(|r| r.base.clone()).collect(), token);
        for r in &replicas {
            while !ready(&r.base).await {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Site { replicas, pg, client }
    }

    /// Replicas that exited by themselves since the last look (and start them again, as systemd would).
    fn exits(&mut self) -> usize {
        let mut n = 0;
        for r in &mut self.replicas {
            if let Some(st) = r.exited() {
                say(format!("a replica exited by itself ({st}); see {}", r.log.display()));
                n += 1;
                r.spawn();
            }
        }
        n
    }
}

async fn ready(base: &str) -> bool {
    let c = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    c.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
}

// ---------------------------------------------------------------------------
// The API, through whichever replica answers

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    token: String,
}

impl Client {
    fn new(bases: Vec<String>, token: String) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Client { http, bases: Arc::new(bases), token }
    }

    /// Call any replica that answers without a server error (a random one
    /// first), for up to five minutes while none does.
    async fn call_with(&self, method: &str, path: &str, body: Option<&Value>, key: Option<&str>) -> (u16, Value) {
        let start = Instant::now();
        loop {
            let first = (faults::unit() * self.bases.len() as f64) as usize;
            for k in 0..self.bases.len() {
                let base = &self.bases[(first + k) % self.bases.len()];
                let mut r =
                    self.http.request(method.parse().unwrap(), format!("{base}{path}")).bearer_auth(&self.token);
                if let Some(b) = body {
                    r = r.json(b);
                }
                if let Some(k) = key {
                    r = r.header("Idempotency-Key", k);
                }
                let Ok(resp) = r.send().await else { continue };
                let status = resp.status().as_u16();
                let Ok(text) = resp.text().await else { continue };
                if status >= 500 {
                    continue; // a replica starting, or without its database: ask another, or again
                }
                return (status, serde_json::from_str(&text).unwrap_or(Value::String(text)));
            }
            assert!(start.elapsed() < Duration::from_secs(300), "no replica answered {method} {path} for 5 minutes");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, body.as_ref(), None).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    /// Every item of a paged collection.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let v = self.ok("GET", &format!("{path}{sep}limit=500{after}"), None).await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            out.extend(items.iter().cloned());
            match v["next"].as_str().or(v["next_after"].as_str()) {
                Some(n) if !items.is_empty() => after = format!("&after={n}"),
                _ => return out,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The lab and its workload

fn lab_site(n: usize) -> String {
    let half = n / 2;
    format!(
        "[[machines]]\nname = \"rf-{{n}}\"\ncount = {}\nbmc = \"redfish\"\ndisks = [{{ name = \"vda\", size_mib = 96 }}]\n\n\
         [[machines]]\nname = \"ipmi-{{n}}\"\ncount = {}\nbmc = \"ipmi\"\ndisks = [{{ name = \"vda\", size_mib = 96 }}]\n",
        n - half,
        half.max(1)
    )
}

async fn start_lab(n: usize, dir: &Path) -> Lab {
    let site = tundra_lab::site::Site::parse(&lab_site(n)).unwrap();
    Lab::start(&site, &tundra_lab::Options { dir: dir.join("lab"), venv: venv() }).await.unwrap()
}

/// An 8 MiB raw image with an MBR partition table (one Linux partition),
/// the rest pseudo-random: what a node needs (its config drive goes into a
/// new partition after it).
fn node_image() -> Vec<u8> {
    let mut img = common::image_bytes(8 << 20, 23);
    img[..512].fill(0);
    let sectors: u32 = (8 << 20) / 512 - 2048;
    let e = &mut img[446..462];
    e[4] = 0x83;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    img[510] = 0x55;
    img[511] = 0xAA;
    img
}

/// The project, flavor and image nodes are made of, and how to check a disk.
struct Workload {
    client: Client,
    project: String,
    flavor: String,
    image: String,
    bytes: Arc<Vec<u8>>,
}

/// Enroll every lab machine (`bmc_at` may put a proxy in front of a BMC)
/// and make it available; then the project, flavor and image.
async fn prepare(client: &Client, lab: &Lab, bmc_at: &dyn Fn(usize) -> String) -> Workload {
    let mut ids = Vec::new();
    for (k, m) in lab.machines.iter().enumerate() {
        let b = &m.bmc;
        let mut bmc = json!({"driver": b.driver, "address": bmc_at(k), "username": b.username});
        if let Some(s) = &b.system {
            bmc["system"] = json!(s);
        }
        let ifs: Vec<Value> =
            m.spec.macs.iter().enumerate().map(|(j, mac)| json!({"mac": mac, "pxe": j == 0})).collect();
        let body = json!({"name": m.spec.name, "resource_class": "baremetal", "bmc": bmc,
            "bmc_password": b.password, "interfaces": ifs});
        ids.push(client.ok("POST", "/v1/machines", Some(body)).await["id"].as_str().unwrap().to_string());
    }
    for (action, want) in [("manage", "manageable"), ("inspect", "manageable"), ("provide", "available")] {
        for id in &ids {
            client.ok("POST", &format!("/v1/machines/{id}/actions"), Some(json!({"action": action}))).await;
        }
        settle_machines(client, want, Duration::from_secs(600)).await.unwrap();
    }
    let project =
        client.ok("POST", "/v1/projects", Some(json!({"name": "chaos"}))).await["id"].as_str().unwrap().to_string();
    let flavor =
        client.ok("POST", "/v1/flavors", Some(json!({"name": "lab", "resource_class": "baremetal"}))).await["id"]
            .as_str()
            .unwrap()
            .to_string();
    let bytes = node_image();
    let v = client
        .ok(
            "POST",
            "/v1/images",
            Some(json!({"name": "chaos-os", "disk_format": "raw", "sha256": common::sha256(&bytes)})),
        )
        .await;
    let image = v["id"].as_str().unwrap().to_string();
    let base = &client.bases[0];
    let r = client
        .http
        .put(format!("{base}/v1/images/{image}/file"))
        .bearer_auth(&client.token)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "upload: {}", r.text().await.unwrap());
    Workload { client: client.clone(), project, flavor, image, bytes: Arc::new(bytes) }
}

/// Wait until every machine is in `want` with no operation, out of maintenance.
async fn settle_machines(client: &Client, want: &str, bound: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let ms = client.all("/v1/machines").await;
        let off: Vec<String> = ms
            .iter()
            .filter(|m| m["provision_state"] != want || !m["operation_id"].is_null() || m["maintenance"] == true)
            .map(|m| {
                format!(
                    "{} {} op={} maint={} {}",
                    m["name"], m["provision_state"], m["operation_id"], m["maintenance"], m["last_error"]
                )
            })
            .collect();
        if off.is_empty() {
            return Ok(());
        }
        if start.elapsed() > bound {
            return Err(off.join("\n"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a run of waves saw.
#[derive(Default, Clone)]
struct Tally {
    waves: usize,
    nodes_active: usize,
    /// Nodes that went to `error` (with tundrad's reason).
    node_errors: Vec<String>,
    /// Active nodes whose machine's disk holds another node's config drive
    /// (two nodes given one machine), read from the disk itself.
    double_allocations: HashSet<String>,
    /// Active nodes whose machine's disk did not hold the image and a config drive.
    wrong_disks: Vec<String>,
    /// Waves that did not finish in their bound.
    stuck: Vec<String>,
    /// Node creates retried with their Idempotency-Key after a kill that
    /// got "name taken" instead of the first answer: the node was made, its
    /// key's answer was not kept (two writes, and the kill between them).
    idempotency_misses: Vec<String>,
    wave_secs: Vec<f64>,
}

impl Workload {
    /// One wave: a node on every machine (`n`), all active, disks checked;
    /// then every node deleted and every machine available again.
    async fn wave(&self, w: usize, n: usize, lab: &Lab, tally: &Mutex<Tally>) {
        let start = Instant::now();
        let c = &self.client;
        let mut pending: Vec<String> = (0..n).map(|i| format!("w{w}-{i}")).collect();
        while !pending.is_empty() {
            let mut left = Vec::new();
            for name in pending {
                let body =
                    json!({"project_id": self.project, "name": name, "flavor_id": self.flavor, "image_id": self.image});
                let (s, v) = c.call_with("POST", "/v1/nodes", Some(&body), Some(&format!("chaos-{name}"))).await;
                if s == 409 && v["detail"].as_str().is_some_and(|d| d.contains("already has a node named")) {
                    say(format!("creating {name}: the retry was not replayed: {}", v["detail"]));
                    tally.lock().unwrap().idempotency_misses.push(name);
                } else if s != 202 {
                    if v["type"] != "urn:tundra:problem:no-capacity" {
                        say(format!("creating {name}: {s} {v}"));
                    }
                    left.push(name);
                }
            }
            pending = left;
            if !pending.is_empty() {
                if start.elapsed() > Duration::from_secs(900) {
                    tally.lock().unwrap().stuck.push(format!("wave {w}: {} nodes never placed", pending.len()));
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        // All active (or failed).
        let nodes = loop {
            let nodes = c.all(&format!("/v1/nodes?project={}", self.project)).await;
            let building = nodes.iter().filter(|n| n["status"] == "building").count();
            if building == 0 {
                break nodes;
            }
            if start.elapsed() > Duration::from_secs(900) {
                let names: Vec<String> = nodes
                    .iter()
                    .filter(|n| n["status"] == "building")
                    .map(|n| format!("{} ({})", n["name"], n["status_reason"]))
                    .collect();
                tally.lock().unwrap().stuck.push(format!("wave {w}: still building: {}", names.join(", ")));
                break nodes;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let machines: HashMap<String, String> = c
            .all("/v1/machines")
            .await
            .iter()
            .map(|m| (m["id"].as_str().unwrap().to_string(), m["name"].as_str().unwrap().to_string()))
            .collect();
        for node in &nodes {
            let name = node["name"].as_str().unwrap_or_default().to_string();
            if node["status"] == "error" {
                tally.lock().unwrap().node_errors.push(format!("{name}: {}", node["status_reason"]));
                continue;
            }
            if node["status"] != "active" {
                continue;
            }
            let machine = node["machine_id"].as_str().and_then(|id| machines.get(id));
            let m = machine.and_then(|mn| lab.machines.iter().find(|m| &m.spec.name == mn));
            let image = m.is_some_and(|m| holds(m, &self.bytes));
            let drive = m.and_then(|m| config_drive_node(&m.disks[0].1));
            let mut t = tally.lock().unwrap();
            t.nodes_active += 1;
            match drive {
                Some(d) if d == node["id"].as_str().unwrap_or_default() && image => {}
                Some(d) if node["id"].as_str() != Some(d.as_str()) => {
                    say(format!("{name}: its machine {machine:?} holds the config drive of node {d}"));
                    t.double_allocations.insert(format!("{machine:?}"));
                }
                _ => t.wrong_disks.push(format!("{name} on {machine:?} (image {image}, config drive {drive:?})")),
            }
        }
        // Delete them all; wait until their machines are cleaned.
        for node in &nodes {
            let id = node["id"].as_str().unwrap();
            let (s, v) = c.call("DELETE", &format!("/v1/nodes/{id}"), None).await;
            if !matches!(s, 202 | 204 | 404) {
                say(format!("deleting {}: {s} {v}", node["name"]));
            }
        }
        let gone = async {
            loop {
                let left = c.all(&format!("/v1/nodes?project={}", self.project)).await;
                if left.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(900), gone).await.is_err() {
            tally.lock().unwrap().stuck.push(format!("wave {w}: nodes not deleted"));
        }
        if let Err(e) = settle_machines(c, "available", Duration::from_secs(900)).await {
            tally.lock().unwrap().stuck.push(format!("wave {w}: machines not available:\n{e}"));
        }
        let mut t = tally.lock().unwrap();
        t.waves += 1;
        t.wave_secs.push(start.elapsed().as_secs_f64());
    }
}

/// The disk holds the image (past its first sector, where the config drive's partition was added).
fn holds(m: &LabMachine, image: &[u8]) -> bool {
    std::fs::read(&m.disks[0].1).is_ok_and(|d| d.len() >= image.len() && d[512..image.len()] == image[512..])
}

/// The node whose config drive is on a disk: `uuid` of its
/// `openstack/latest/meta_data.json`, read with sfdisk and mcopy.
fn config_drive_node(disk: &Path) -> Option<String> {
    let out = Command::new("sfdisk").arg("-J").arg(disk).output().ok()?;
    let table: Value = serde_json::from_slice(&out.stdout).ok()?;
    let sector = table["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    for p in table["partitiontable"]["partitions"].as_array()? {
        let Some(start) = p["start"].as_u64() else { continue };
        let out = Command::new("mcopy")
            .arg("-i")
            .arg(format!("{}@@{}", disk.display(), start * sector))
            .args(["::openstack/latest/meta_data.json", "-"])
            .output()
            .ok()?;
        if out.status.success() {
            let meta: Value = serde_json::from_slice(&out.stdout).ok()?;
            return meta["uuid"].as_str().map(String::from);
        }
    }
    None
}

/// Every operation, by state; and the failed ones, briefly.
async fn operations(c: &Client) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut by = BTreeMap::new();
    let mut failed = Vec::new();
    for o in c.all("/v1/operations").await {
        let st = o["state"].as_str().unwrap_or("?").to_string();
        if st == "failed" {
            failed.push(format!("{} {} (attempts {}): {}", o["kind"], o["target_id"], o["attempts"], o["error"]));
        }
        *by.entry(st).or_default() += 1;
    }
    (by, failed)
}

/// Machines not available, idle and out of maintenance at the end.
async fn lost_machines(c: &Client) -> Vec<String> {
    c.all("/v1/machines")
        .await
        .iter()
        .filter(|m| m["provision_state"] != "available" || !m["operation_id"].is_null() || m["maintenance"] == true)
        .map(|m| format!("{} {} maintenance={} {}", m["name"], m["provision_state"], m["maintenance"], m["last_error"]))
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios

/// Wait, up to `bound`, until every operation of `ops` has ended: how long
/// that took (None: not all did), those still unfinished, and those that failed.
async fn ended(c: &Client, ops: &[String], bound: Duration, after: &str) -> (Option<f64>, HashSet<String>, usize) {
    let start = Instant::now();
    let (mut left, mut failed): (HashSet<String>, usize) = (ops.iter().cloned().collect(), 0);
    while !left.is_empty() && start.elapsed() < bound {
        let mut still = HashSet::new();
        for op in &left {
            let (s, v) = c.call("GET", &format!("/v1/operations/{op}"), None).await;
            match v["state"].as_str() {
                Some("succeeded") => {}
                Some("failed") => {
                    failed += 1;
                    say(format!("operation {op} failed after {after}: {}", v["error"]));
                }
                _ if s == 404 => {}
                _ => {
                    still.insert(op.clone());
                }
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    (left.is_empty().then(|| start.elapsed().as_secs_f64()), left, failed)
}

/// The operations under way on machines now.
async fn under_way(c: &Client) -> Vec<String> {
    c.all("/v1/machines").await.iter().filter_map(|m| m["operation_id"].as_str().map(String::from)).collect()
}

/// `kill -9` at random moments during waves, with `replicas` replicas.
async fn kills(n: usize, kills: usize, replicas: usize) -> Value {
    let dir = tempfile::Builder::new().prefix("tundra-chaos-").tempdir().unwrap();
    let lab = start_lab(n, dir.path()).await;
    let sc = SiteConfig { replicas, postgres: replicas > 1, ..SiteConfig::default() };
    let mut site = Site::start(dir.path(), Some(&lab), &sc).await;
    let c = site.client.clone();
    say(format!("kill: {n} machines, {replicas} replica(s); making them available…"));
    let work = prepare(&c, &lab, &|k| lab.machines[k].bmc.address.clone()).await;
    let tally = Mutex::new(Tally::default());
    let stop = AtomicBool::new(false);
    let waves = async {
        let mut w = 0;
        while !stop.load(Ordering::Relaxed) {
            work.wave(w, n, &lab, &tally).await;
            w += 1;
        }
    };
    let killer = async {
        let mut converge = Vec::new();
        let (mut idle_kills, mut not_converged, mut failed_after) = (0, HashSet::new(), 0);
        for k in 0..kills {
            tokio::time::sleep(Duration::from_secs_f64(uniform(1.0, 8.0))).await;
            let victim = (faults::unit() * replicas as f64) as usize;
            let ops = under_way(&c).await;
            site.replicas[victim].kill9();
            tokio::time::sleep(Duration::from_secs(1)).await;
            site.replicas[victim].spawn();
            if ops.is_empty() {
                idle_kills += 1;
                continue;
            }
            let (took, left, failed) = ended(&c, &ops, Duration::from_secs(600), &format!("kill {k}")).await;
            converge.extend(took);
            failed_after += failed;
            not_converged.extend(left);
            site.exits();
            say(format!(
                "kill {}/{kills}: replica {victim}, {} operations under way; converged in {:.1} s",
                k + 1,
                ops.len(),
                took.unwrap_or(f64::NAN)
            ));
        }
        stop.store(true, Ordering::Relaxed);
        (converge, idle_kills, not_converged, failed_after)
    };
    let ((), (converge, idle_kills, not_converged, failed_after)) = tokio::join!(waves, killer);
    let lost = lost_machines(&c).await;
    let (ops, failed) = operations(&c).await;
    let exits = site.exits();
    let t = tally.lock().unwrap().clone();
    for f in failed.iter().take(10) {
        say(format!("failed operation: {f}"));
    }
    let label =
        if replicas == 1 { "one tundrad (SQLite)".to_string() } else { format!("{replicas} replicas (PostgreSQL)") };
    println!("\n### `kill -9` ×{kills}, {label}, {n} machines\n");
    println!("| figure | value |\n|---|---|");
    println!(
        "| waves (a node on every machine → active → deleted → cleaned) | {} ({} nodes active) |",
        t.waves, t.nodes_active
    );
    println!("| kills / with operations under way | {kills} / {} |", kills - idle_kills);
    println!("| **lost machines** | {} |", lost.len());
    println!("| **double allocations** | {} |", t.double_allocations.len());
    println!(
        "| **operations that never converged** | {} |",
        not_converged.len() + ops.get("running").unwrap_or(&0) + ops.get("pending").unwrap_or(&0)
    );
    println!(
        "| operations failed / all (of them, under way at a kill) | {} / {} ({failed_after}) |",
        failed.len(),
        ops.values().sum::<usize>()
    );
    println!("| nodes in error / disks not holding the image | {} / {} |", t.node_errors.len(), t.wrong_disks.len());
    println!("| waves stuck | {} |", t.stuck.len());
    println!(
        "| node creates retried after a kill that got \"name taken\", not their first answer (Idempotency-Key) | {} |",
        t.idempotency_misses.len()
    );
    println!("| replicas that exited by themselves | {exits} |");
    println!("| converge after restart (min / median / p90 / max) | {} |", spread(converge.clone()));
    println!("| wave time (min / median / p90 / max) | {} |", spread(t.wave_secs.clone()));
    for s in t.stuck.iter().chain(&t.node_errors).chain(&lost) {
        say(s);
    }
    let fig = json!({
        "replicas": replicas, "machines": n, "kills": kills, "idle_kills": idle_kills, "waves": t.waves,
        "lost_machines": lost, "double_allocations": t.double_allocations.len(),
        "not_converged": not_converged, "operations": ops, "failed_operations": failed,
        "node_errors": t.node_errors, "wrong_disks": t.wrong_disks, "stuck": t.stuck,
        "converge_secs": converge, "wave_secs": t.wave_secs, "idempotency_misses": t.idempotency_misses,
    });
    drop(site);
    lab.stop().await;
    fig
}

/// BMCs behind fault-injecting proxies.
async fn bmc(n: usize) -> Value {
    let dir = tempfile::Builder::new().prefix("tundra-chaos-").tempdir().unwrap();
    let lab = start_lab(n, dir.path()).await;
    let mut proxies = Vec::new();
    for m in &lab.machines {
        let p = if m.bmc.driver == "redfish" {
            let url = m.bmc.address.trim_start_matches("http://").trim_end_matches('/').to_string();
            faults::tcp_requests(url.parse().unwrap()).await.unwrap()
        } else {
            faults::udp(m.bmc.address.parse().unwrap()).await.unwrap()
        };
        proxies.push(p);
    }
    // A BMC network this lossy is what `bmc_retry_window` is for: at one
    // datagram in five lost each way, an IPMI call may need minutes.
    let sc = SiteConfig { power_sync_interval: "3s", bmc_retry_window: "5m", ..SiteConfig::default() };
    let site = Site::start(dir.path(), Some(&lab), &sc).await;
    let c = site.client.clone();
    say(format!("bmc: {n} machines behind fault proxies; making them available…"));
    let at = |k: usize| {
        let m = &lab.machines[k];
        if m.bmc.driver == "redfish" { format!("http://{}", proxies[k].addr) } else { proxies[k].addr.to_string() }
    };
    let work = prepare(&c, &lab, &at).await;
    let events_before = maintenance_events(&c).await.len();
    // Phase 1: random faults through a wave.
    let http = Odds { error: 0.08, delay: 0.08, hang: 0.02, drop: 0.06 };
    let udp = Odds { error: 0.0, delay: 0.1, hang: 0.0, drop: 0.1 };
    for (m, p) in lab.machines.iter().zip(&proxies) {
        p.faults.set(Mode::Random(if m.bmc.driver == "redfish" { http } else { udp }));
    }
    let tally = Mutex::new(Tally::default());
    say("bmc: a wave with random BMC faults…");
    let started = Instant::now();
    work.wave(0, n, &lab, &tally).await;
    let wave_secs = started.elapsed().as_secs_f64();
    // The same faults on idle machines, which the power sync reads (every
    // 3 s, for 90 s): maintenance must wait for a persistent failure.
    say("bmc: random faults on idle machines…");
    tokio::time::sleep(Duration::from_secs(90)).await;
    for p in &proxies {
        p.faults.set(Mode::Pass);
    }
    let transient_maintenance = maintenance_events(&c).await.len() - events_before;
    let mut injected = faults::Counts::default();
    for p in &proxies {
        let k = p.faults.counts();
        injected.passed += k.passed;
        injected.errors += k.errors;
        injected.delays += k.delays;
        injected.hangs += k.hangs;
        injected.drops += k.drops;
    }
    // Phase 2: one Redfish and one IPMI BMC away for good, then back.
    let away: Vec<usize> = [0, n - 1].into();
    say("bmc: two BMCs away…");
    let names: Vec<String> = away.iter().map(|k| lab.machines[*k].spec.name.clone()).collect();
    for k in &away {
        proxies[*k].faults.set(Mode::Down);
    }
    let down = Instant::now();
    let set = wait_maintenance(&c, &names, true, Duration::from_secs(180)).await;
    let set_secs = down.elapsed().as_secs_f64();
    let others_in_maintenance: Vec<String> = c
        .all("/v1/machines")
        .await
        .iter()
        .filter(|m| m["maintenance"] == true && !names.contains(&m["name"].as_str().unwrap_or_default().to_string()))
        .map(|m| m["name"].to_string())
        .collect();
    let reason: Vec<String> = c
        .all("/v1/machines")
        .await
        .iter()
        .filter(|m| names.contains(&m["name"].as_str().unwrap_or_default().to_string()))
        .map(|m| format!("{}: {}", m["name"], m["maintenance_reason"]))
        .collect();
    for k in &away {
        proxies[*k].faults.set(Mode::Pass);
    }
    let back = Instant::now();
    let cleared = wait_maintenance(&c, &names, false, Duration::from_secs(180)).await;
    let clear_secs = back.elapsed().as_secs_f64();
    let lost = lost_machines(&c).await;
    let (ops, failed) = operations(&c).await;
    let t = tally.lock().unwrap().clone();
    println!("\n### BMC faults, {n} machines ({} Redfish, {} IPMI)\n", n - n / 2, n / 2);
    println!("| figure | value |\n|---|---|");
    println!(
        "| faults injected in the wave (Redfish requests / IPMI datagrams) | {} errors (503), {} delays of 1–11 s, {} hangs, {} drops; {} passed |",
        injected.errors, injected.delays, injected.hangs, injected.drops, injected.passed
    );
    println!(
        "| **deploys that failed** (of {n}: nodes in error, or never active) | {} |",
        n - t.nodes_active + t.wrong_disks.len()
    );
    println!("| nodes active / disks not holding the image | {} / {} |", t.nodes_active, t.wrong_disks.len());
    println!("| wave time under faults | {wave_secs:.1} s |");
    println!(
        "| **maintenance set by transient faults** (the wave, then 90 s idle under the same faults) | {transient_maintenance} |"
    );
    println!(
        "| two BMCs away: maintenance set | {} after {set_secs:.1} s (power sync every 3 s, 3 failures) |",
        if set { "yes" } else { "**no**" }
    );
    println!("| …why | {} |", reason.join("; ").replace('|', "\\|"));
    println!("| …other machines put in maintenance | {} |", others_in_maintenance.len());
    println!(
        "| back: maintenance cleared by itself | {} after {clear_secs:.1} s |",
        if cleared { "yes" } else { "**no**" }
    );
    println!("| **lost machines** / double allocations | {} / {} |", lost.len(), t.double_allocations.len());
    println!("| operations failed / all | {} / {} |", failed.len(), ops.values().sum::<usize>());
    for s in t.stuck.iter().chain(&t.node_errors).chain(&lost).chain(&failed) {
        say(s);
    }
    let fig = json!({"injected": format!("{injected:?}"), "node_errors": t.node_errors, "wave_secs": wave_secs,
        "transient_maintenance": transient_maintenance, "set": set, "set_secs": set_secs, "cleared": cleared,
        "clear_secs": clear_secs, "others_in_maintenance": others_in_maintenance, "lost": lost,
        "double_allocations": t.double_allocations.len(), "failed_operations": failed, "stuck": t.stuck});

    drop(site);
    drop(proxies);
    lab.stop().await;
    fig
}

async fn maintenance_events(c: &Client) -> Vec<Value> {
    c.all("/v1/events?object_type=machine").await.into_iter().filter(|e| e["action"] == "maintenance_set").collect()
}

async fn wait_maintenance(c: &Client, names: &[String], want: bool, bound: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < bound {
        let ms = c.all("/v1/machines").await;
        if ms
            .iter()
            .filter(|m| names.contains(&m["name"].as_str().unwrap_or_default().to_string()))
            .all(|m| m["maintenance"] == want)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// An emulated switch behind a proxy that refuses and cuts sessions.
async fn switch(rounds: usize) -> Value {
    use tundra_drivers::bmc::Password;
    use tundra_drivers::switch::{HostKey, PortVlan, Switch, dialect};
    let dir = tempfile::Builder::new().prefix("tundra-chaos-").tempdir().unwrap();
    let ports = 24;
    let start_switch = |fresh: bool, log: &Path| {
        let mut c = Command::new(venv().join("python"));
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/fake-switches.py"))
            .args(["--user", "admin", "--password-env", "SWITCH_PASSWORD", "--session-log"])
            .arg(log);
        if fresh {
            c.arg("--fresh-host-key");
        }
        let ports: Vec<String> = (1..=ports).map(|p| format!("FastEthernet0/{p}")).collect();
        c.arg(format!("cisco_generic:leaf:{}", ports.join(",")));
        c.env("SWITCH_PASSWORD", "password").stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port: Value = serde_json::from_str(line.trim()).unwrap();
        (Peer(child), port["leaf"].as_u64().unwrap() as u16)
    };
    let (_real, real_port) = start_switch(false, &dir.path().join("sessions.log"));
    let hand = |port: u16, host_key: HostKey| Switch {
        address: format!("127.0.0.1:{port}"),
        username: "admin".into(),
        password: Password("password".into()),
        private_key: None,
        host_key,
        dialect: dialect::built_in()["cisco_ios"].clone(),
        timeout: Duration::from_secs(20),
    };
    let host_key = hand(real_port, HostKey::Learn)
        .apply(&[PortVlan { port: "FastEthernet0/1".into(), vlan: 2 }])
        .await
        .unwrap()
        .host_key;
    let direct = hand(real_port, HostKey::Pinned(host_key.clone()));
    let proxy = faults::tcp_sessions(format!("127.0.0.1:{real_port}").parse().unwrap()).await.unwrap();
    let sc = SiteConfig { fabric_read_interval: "5s", ..SiteConfig::default() };
    let site = Site::start(dir.path(), None, &sc).await;
    let c = site.client.clone();
    let pn = c
        .ok(
            "POST",
            "/v1/physical-networks",
            Some(
                json!({"name": "fabric", "kind": "ethernet", "segment_range": [100, 199], "provisioning_segment": 10}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sw = c
        .ok(
            "POST",
            "/v1/switches",
            Some(json!({"name": "leaf", "physical_network_id": pn, "dialect": "cisco_ios",
                "address": proxy.addr.to_string(), "username": "admin", "password": "password", "host_key": host_key})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let names: Vec<String> = (1..=ports).map(|p| format!("FastEthernet0/{p}")).collect();
    // One machine per port, and one cabled to a port the switch does not have: it refuses that command.
    for (k, port) in names.iter().chain(std::iter::once(&"FastEthernet0/99".to_string())).enumerate() {
        let body = json!({"name": format!("m{k}"), "resource_class": "rc",
            "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p",
            "interfaces": [{"mac": format!("52:54:00:00:0d:{k:02x}"), "pxe": false, "switch": "leaf", "port": port}]});
        c.ok("POST", "/v1/machines", Some(body)).await;
    }
    let view = async || -> HashMap<String, Value> {
        let v = c.ok("GET", &format!("/v1/switches/{sw}/ports"), None).await;
        v.as_array().unwrap().iter().map(|p| (p["port"].as_str().unwrap().to_string(), p.clone())).collect()
    };
    // Converged: the switch has every port on 10, and tundrad says so.
    let converged = async || -> bool {
        let v = view().await;
        let read = direct.read(&names).await.unwrap();
        read.iter().all(|(p, vlan)| {
            *vlan == Some(10) && v.get(p).is_some_and(|x| x["state"] == "in_sync" && x["actual_segment"] == 10)
        })
    };
    // Silent misconfigurations: tundrad says in_sync on X, from a read or a
    // write after `since`, and the switch says otherwise.
    let silent = async |since: std::time::SystemTime| -> Vec<String> {
        let v = view().await;
        let read = direct.read(&names).await.unwrap();
        let after = |x: &Value| {
            x["checked_at"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
                .is_some_and(|t| t > since)
        };
        read.iter()
            .filter_map(|(port, vlan)| {
                let x = v.get(port)?;
                (x["state"] == "in_sync" && after(x) && x["actual_segment"].as_u64() != vlan.map(u64::from)).then(
                    || {
                        format!(
                            "{port}: tundrad says in_sync on {} (checked {}), the switch {vlan:?}",
                            x["actual_segment"], x["checked_at"]
                        )
                    },
                )
            })
            .collect()
    };
    let sync = async || {
        let (s, v) = c.call("POST", &format!("/v1/switches/{sw}/sync"), None).await;
        assert_eq!(s, 202, "{v}");
    };
    let start = Instant::now();
    while !converged().await && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say(format!("switch: {ports} ports programmed in {:.1} s", start.elapsed().as_secs_f64()));
    let odds = Odds { error: 0.1, delay: 0.15, hang: 0.0, drop: 0.1 };
    let (mut silent_all, mut converge, mut not_converged, mut refused_reports) = (Vec::new(), Vec::new(), 0, 0);
    let (mut detect, mut failed_reported, mut undetected) = (Vec::new(), 0, 0);
    for r in 0..rounds {
        // Someone moves every port by hand. Through faults, tundrad's reads
        // find the drift and a sync puts them back.
        let moved: Vec<PortVlan> =
            names.iter().map(|p| PortVlan { port: p.clone(), vlan: 20 + (faults::unit() * 10.0) as u16 }).collect();
        direct.apply(&moved).await.unwrap();
        let since = std::time::SystemTime::now();
        proxy.faults.set(Mode::Random(odds));
        let start = Instant::now();
        loop {
            let v = view().await;
            if names.iter().all(|p| v.get(p).is_some_and(|x| x["state"] == "drifted")) {
                detect.push(start.elapsed().as_secs_f64());
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                undetected += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sync().await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        silent_all.extend(silent(since).await);
        failed_reported +=
            view().await.iter().filter(|(p, x)| *p != "FastEthernet0/99" && x["state"] == "failed").count();
        // Faults stop: syncs until the switch and tundrad agree.
        proxy.faults.set(Mode::Pass);
        let start = Instant::now();
        let mut done = false;
        while start.elapsed() < Duration::from_secs(180) {
            sync().await;
            for _ in 0..10 {
                if converged().await {
                    done = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if done {
                break;
            }
        }
        if done {
            converge.push(start.elapsed().as_secs_f64());
        } else {
            not_converged += 1;
        }
        silent_all.extend(silent(since).await);
        // The port the switch refuses ends failed with its words (a sync makes it pending again).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if view().await.get("FastEthernet0/99").is_some_and(|x| x["state"] == "failed" && x["message"].is_string())
            {
                refused_reports += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        say(format!("switch: round {}/{rounds}; sessions so far {:?}", r + 1, proxy.faults.counts()));
    }
    let injected = proxy.faults.counts();
    let bad_port = view().await.get("FastEthernet0/99").cloned().unwrap_or_default();
    // The host key changes: the proxy now leads to another switch.
    let (_impostor, other_port) = start_switch(true, &dir.path().join("impostor.log"));
    let impostor_before = hand(other_port, HostKey::Learn).read(&names).await.unwrap();
    proxy.faults.retarget(format!("127.0.0.1:{other_port}").parse().unwrap());
    direct.apply(&[PortVlan { port: names[0].clone(), vlan: 33 }]).await.unwrap();
    c.call("POST", &format!("/v1/switches/{sw}/sync"), None).await;
    let start = Instant::now();
    let mut said = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        let s = c.ok("GET", &format!("/v1/switches/{sw}"), None).await;
        if let Some(e) = s["last_error"].as_str().filter(|e| e.to_lowercase().contains("host key")) {
            said = e.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let tundrad try its reads and repairs for a while, then look at the impostor.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let impostor = hand(other_port, HostKey::Learn).read(&names).await.unwrap();
    let impostor_programmed = impostor.iter().zip(&impostor_before).filter(|(a, b)| a.1 != b.1).count();
    println!("\n### Switch faults, {ports} ports, {rounds} rounds\n");
    println!("| figure | value |\n|---|---|");
    println!(
        "| sessions: refused / cut at a random moment 0.2–3 s after opening (some had ended) / passed | {} / {} / {} |",
        injected.errors + injected.drops,
        injected.delays + injected.hangs,
        injected.passed
    );
    println!(
        "| **silent misconfigurations** (tundrad says in_sync, the switch otherwise; read back {} times) | {} |",
        rounds * 2,
        silent_all.len()
    );
    println!("| ports reported `failed` while faults lasted (not silent: tundrad said so) | {failed_reported} |");
    println!(
        "| drift found by tundrad's reads through faults (min / median / p90 / max) | {} |",
        spread(detect.clone())
    );
    println!("| rounds where tundrad's reads did not find the drift in 2 minutes | {undetected} |");
    println!("| rounds not converged once faults stopped | {not_converged} |");
    println!("| converge after faults stop (min / median / p90 / max) | {} |", spread(converge.clone()));
    println!(
        "| the refused port (`FastEthernet0/99`): reported failed in {refused_reports}/{rounds} rounds | {} |",
        bad_port["message"].as_str().unwrap_or("").replace('|', "\\|")
    );
    println!(
        "| host key changed: programming stopped with | {} |",
        if said.is_empty() { "**no error**".into() } else { said.replace('|', "\\|") }
    );
    println!("| …ports changed on the impostor (read by hand before and after) | {impostor_programmed} |");
    for s in &silent_all {
        say(format!("silent: {s}"));
    }
    json!({"rounds": rounds, "injected": format!("{injected:?}"), "silent": silent_all, "not_converged": not_converged,
        "converge_secs": converge, "refused_reports": refused_reports, "host_key_error": said,
        "impostor_programmed": impostor_programmed, "undetected": undetected})
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// PostgreSQL stopped during deploy waves, under three replicas.
async fn db(n: usize, restarts: usize) -> Value {
    let dir = tempfile::Builder::new().prefix("tundra-chaos-").tempdir().unwrap();
    let lab = start_lab(n, dir.path()).await;
    let sc = SiteConfig { replicas: 3, postgres: true, ..SiteConfig::default() };
    let mut site = Site::start(dir.path(), Some(&lab), &sc).await;
    let c = site.client.clone();
    say(format!("db: {n} machines, 3 replicas; making them available…"));
    let work = prepare(&c, &lab, &|k| lab.machines[k].bmc.address.clone()).await;
    let tally = Mutex::new(Tally::default());
    let (mut converge, mut wave_done, mut not_converged, mut failed_after, mut exits) =
        (Vec::new(), Vec::new(), HashSet::new(), 0, 0);
    for r in 0..restarts {
        let wave = work.wave(r, n, &lab, &tally);
        let fault = async {
            tokio::time::sleep(Duration::from_secs_f64(uniform(3.0, 10.0))).await;
            let ops = under_way(&c).await;
            let pg = site.pg.as_ref().unwrap();
            pg.down("fast").unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            pg.up().unwrap();
            let back = Instant::now();
            let (took, left, failed) = ended(&c, &ops, Duration::from_secs(600), &format!("restart {r}")).await;
            (back, ops.len(), took, left, failed)
        };
        let ((), (back, under, took, left, failed)) = tokio::join!(wave, fault);
        wave_done.push(back.elapsed().as_secs_f64());
        converge.extend(took);
        not_converged.extend(left);
        failed_after += failed;
        exits += site.exits();
        say(format!(
            "db: restart {}/{restarts}: {under} operations under way ended {:.1} s after PostgreSQL returned; the wave {:.1} s after",
            r + 1,
            took.unwrap_or(f64::NAN),
            wave_done[r]
        ));
    }
    let lost = lost_machines(&c).await;
    let (ops, failed) = operations(&c).await;
    let t = tally.lock().unwrap().clone();
    println!("\n### PostgreSQL restarted during deploy waves, 3 replicas, {n} machines\n");
    println!("| figure | value |\n|---|---|");
    println!("| restarts (down 10 s, 3–10 s into a wave) | {restarts} |");
    println!("| **lost machines** / double allocations | {} / {} |", lost.len(), t.double_allocations.len());
    println!(
        "| **operations that never converged** (under way at a stop, unfinished 10 min after; unfinished at the end) | {} |",
        not_converged.len() + ops.get("running").unwrap_or(&0) + ops.get("pending").unwrap_or(&0)
    );
    println!(
        "| operations failed / all (of them, under way at a stop); nodes in error; disks wrong | {} / {} ({failed_after}); {}; {} |",
        failed.len(),
        ops.values().sum::<usize>(),
        t.node_errors.len(),
        t.wrong_disks.len()
    );
    println!("| waves stuck | {} |", t.stuck.len());
    println!("| replicas that exited by themselves | {exits} |");
    println!(
        "| operations under way at the stop ended, after PostgreSQL returned (min / median / p90 / max) | {} |",
        spread(converge.clone())
    );
    println!(
        "| the wave (deployed, deleted, cleaned) done after PostgreSQL returned (min / median / p90 / max) | {} |",
        spread(wave_done.clone())
    );
    for s in t.stuck.iter().chain(&t.node_errors).chain(&lost).chain(&failed) {
        say(s);
    }
    let fig = json!({"restarts": restarts, "lost": lost, "operations": ops, "failed_operations": failed,
        "node_errors": t.node_errors, "stuck": t.stuck, "exits": exits, "converge_secs": converge,
        "wave_secs": wave_done, "not_converged": not_converged, "double_allocations": t.double_allocations.len(),
        "wrong_disks": t.wrong_disks});
    drop(site);
    lab.stop().await;
    fig
}

/// Two `terraform apply` runs racing for the last `k` machines.
async fn race(n: usize, races: usize, k: usize) -> Value {
    let dir = tempfile::Builder::new().prefix("tundra-chaos-").tempdir().unwrap();
    let lab = start_lab(n, dir.path()).await;
    let site = Site::start(dir.path(), Some(&lab), &SiteConfig::default()).await;
    let c = site.client.clone();
    say(format!("race: {n} machines; making them available…"));
    let work = prepare(&c, &lab, &|i| lab.machines[i].bmc.address.clone()).await;
    // Hold all but k machines.
    for i in 0..n - k {
        let body = json!({"project_id": work.project, "name": format!("held-{i}"), "flavor_id": work.flavor, "image_id": work.image});
        c.ok("POST", "/v1/nodes", Some(body)).await;
    }
    let terraform = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/terraform-cli"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "terraform".into());
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(bin("terraform-provider-tundra"), plugins.join("terraform-provider-tundra")).unwrap();
    let rc = dir.path().join("terraformrc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"tundra/tundra\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            plugins.display()
        ),
    )
    .unwrap();
    let workspace = |who: &str| {
        let ws = dir.path().join(who);
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(
            ws.join("main.tf"),
            format!(
                "terraform {{\n  required_providers {{\n    tundra = {{ source = \"tundra/tundra\" }}\n  }}\n}}\n\nprovider \"tundra\" {{}}\n\n\
                 resource \"tundra_node\" \"n\" {{\n  count     = {k}\n  name      = \"{who}-${{count.index}}\"\n  flavor_id = \"{}\"\n  image_id  = \"{}\"\n}}\n",
                work.flavor, work.image
            ),
        )
        .unwrap();
        ws
    };
    let (a, b) = (workspace("a"), workspace("b"));
    let tf = |ws: &Path, args: &[&str]| {
        tokio::process::Command::new(&terraform)
            .args(args)
            .current_dir(ws)
            .env("TF_CLI_CONFIG_FILE", &rc)
            .env("TF_IN_AUTOMATION", "1")
            .env("TUNDRA_ENDPOINT", &site.replicas[0].base)
            .env("TUNDRA_TOKEN", &c.token)
            .env("TUNDRA_PROJECT", "chaos")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let (mut exact, mut with_diagnostic, mut splits, mut apply_secs) =
        (0, 0, BTreeMap::<String, usize>::new(), Vec::new());
    let mut diagnostic = String::new();
    let (mut wrong, mut winners, mut raced_active) = (Vec::new(), 0, 0);
    let (mut destroy_failures, mut destroy_secs) = (0, Vec::new());
    for r in 0..races {
        let start = Instant::now();
        let (oa, ob) = tokio::join!(
            tf(&a, &["apply", "-auto-approve", "-no-color"]).wait_with_output(),
            tf(&b, &["apply", "-auto-approve", "-no-color"]).wait_with_output()
        );
        let outs = [oa.unwrap(), ob.unwrap()];
        apply_secs.push(start.elapsed().as_secs_f64());
        let nodes = c.all(&format!("/v1/nodes?project={}", work.project)).await;
        let of = |who: &str| {
            nodes.iter().filter(|x| x["name"].as_str().unwrap_or("").starts_with(&format!("{who}-"))).count()
        };
        let (na, nb) = (of("a"), of("b"));
        let placed = nodes.iter().filter(|x| !x["machine_id"].is_null()).count();
        raced_active += nodes
            .iter()
            .filter(|x| x["status"] == "active" && !x["name"].as_str().unwrap_or("").starts_with("held-"))
            .count();
        if na + nb == k && placed == n {
            exact += 1;
        } else {
            wrong.push(format!("race {r}: a {na}, b {nb}, placed {placed}"));
        }
        *splits.entry(format!("{na}+{nb}")).or_default() += 1;
        let losers: Vec<&std::process::Output> = outs.iter().filter(|o| !o.status.success()).collect();
        if losers.len() != 1 {
            for (who, o) in ["a", "b"].iter().zip(&outs) {
                say(format!(
                    "race {r}: {who} ended {}:\n{}\n{}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
        winners += outs.len() - losers.len();
        let all_said = losers.iter().all(|o| {
            let e = String::from_utf8_lossy(&o.stderr);
            if diagnostic.is_empty() {
                diagnostic = e.lines().filter(|l| !l.trim().is_empty()).take(6).collect::<Vec<_>>().join(" ");
            }
            e.contains("capacity")
        });
        if !losers.is_empty() && all_said {
            with_diagnostic += 1;
        }
        say(format!("race {}/{races}: a got {na}, b got {nb} ({:.1} s)", r + 1, apply_secs[r]));
        // Each run destroys what it made (bounded: a destroy that hangs is
        // reported, killed, and its nodes deleted through the API).
        let started = Instant::now();
        for ws in [&a, &b] {
            let p = tf(ws, &["destroy", "-auto-approve", "-no-color"]);
            let out = tokio::time::timeout(Duration::from_secs(300), p.wait_with_output()).await;
            let ok = matches!(&out, Ok(Ok(o)) if o.status.success());
            if !ok {
                let said = match &out {
                    Ok(Ok(o)) => format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr)),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "no end in 5 minutes (killed)".into(),
                };
                say(format!("race {r}: destroy in {} failed: {said}", ws.display()));
                destroy_failures += 1;
                // Delete what this run made through the API, and forget its state.
                let who = ws.file_name().unwrap().to_string_lossy().to_string();
                for node in c.all(&format!("/v1/nodes?project={}", work.project)).await {
                    if node["name"].as_str().unwrap_or("").starts_with(&format!("{who}-")) {
                        c.call("DELETE", &format!("/v1/nodes/{}", node["id"].as_str().unwrap()), None).await;
                    }
                }
                let _ = std::fs::remove_file(ws.join("terraform.tfstate"));
            }
        }
        loop {
            let free = c
                .all("/v1/machines?provision_state=available")
                .await
                .iter()
                .filter(|m| m["operation_id"].is_null())
                .count();
            if free == k {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                say(format!("race {r}: {free} of the last {k} machines free 10 minutes after the destroys"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        destroy_secs.push(started.elapsed().as_secs_f64());
    }
    println!("\n### Two `terraform apply` racing for the last {k} of {n} machines, ×{races}\n");
    println!("| figure | value |\n|---|---|");
    println!("| **races with exactly {k} allocated** | {exact}/{races} |");
    println!("| races whose losing run(s) ended with a no-capacity diagnostic | {with_diagnostic}/{races} |");
    println!(
        "| applies that succeeded / raced nodes active when the applies ended | {winners} of {} / {raced_active} |",
        2 * races
    );
    println!("| splits (a + b) | {} |", splits.iter().map(|(s, k)| format!("{s}: {k}")).collect::<Vec<_>>().join(", "));
    println!("| racing applies, wall (min / median / p90 / max) | {} |", spread(apply_secs.clone()));
    println!(
        "| both destroys until the {k} machines are cleaned (min / median / p90 / max) | {} |",
        spread(destroy_secs.clone())
    );
    println!("| destroys that failed | {destroy_failures} |");
    println!("| the loser read | {} |", diagnostic.replace('|', "\\|"));
    for w in &wrong {
        say(w);
    }
    let fig = json!({"races": races, "k": k, "exact": exact, "with_diagnostic": with_diagnostic, "splits": splits,
        "diagnostic": diagnostic, "wrong": wrong, "winners": winners, "destroy_failures": destroy_failures, "destroy_secs": destroy_secs, "apply_secs": apply_secs});
    drop(site);
    lab.stop().await;
    fig
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = num("--machines", 20);
    let all = "kill,replicas,bmc,switch,db,race";
    let scenarios = arg("--scenarios", all);
    let mut figures = serde_json::Map::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    println!("## Chaos suite — {} (debug build of tundrad, 2 cores shared)", scenarios);
    for s in scenarios.split(',') {
        let started = Instant::now();
        let run = async {
            match s {
                "kill" => kills(n, num("--kills", 50), 1).await,
                "replicas" => kills(n, num("--kills", 50), 3).await,
                "bmc" => bmc(n).await,
                "switch" => switch(num("--switch-rounds", 10)).await,
                "db" => db(n, num("--db-restarts", 3)).await,
                "race" => race(n, num("--races", 20), num("--race-k", 3)).await,
                other => panic!("unknown scenario {other:?}; these exist: {all}"),
            }
        };
        // Interrupted: dropping the scenario stops its tundrads and peers and tears its lab down.
        let fig = tokio::select! {
            fig = run => fig,
            _ = tokio::signal::ctrl_c() => { say("interrupted; cleaning up"); return; }
            _ = term.recv() => { say("terminated; cleaning up"); return; }
        };
        println!("\n(scenario `{s}` took {:.0} s)", started.elapsed().as_secs_f64());
        figures.insert(s.to_string(), fig);
        if let Ok(path) = std::env::var("CHAOS_JSON") {
            std::fs::write(&path, Value::Object(figures.clone()).to_string()).expect("write CHAOS_JSON");
        }
    }
}
