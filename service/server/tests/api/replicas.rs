//! Replicas: several tundrad on one PostgreSQL, each serving the API. A
//! background loop runs on one replica at a time (the fabric worker's
//! sessions, as the emulated switch logs them, never overlap — under three
//! replicas, and after its holder is killed); a killed replica's operation
//! is taken over by another and finished; a replica cut off from the
//! database stops its loops before another takes them; SQLite refuses a
//! second tundrad.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tundra_drivers::switch::{HostKey, PortVlan};
use tundrad::config::Config;

use crate::harness::{Backend, Env, Pg, wait_for};
use crate::peers;

/// One site of replicas: one PostgreSQL, one secrets key and one images
/// dir shared (as a site shares them: copied key, shared filesystem),
/// each replica its own data dir.
struct Site {
    dir: tempfile::TempDir,
    pg: Pg,
    replicas: Vec<Option<tundrad::Server>>,
    admin: String,
    http: reqwest::Client,
}

impl Site {
    async fn start(n: usize, tweak: impl Fn(&mut Config)) -> Site {
        let mut site = Site::on(Pg::start().unwrap_or_else(|e| panic!("{e}")));
        for _ in 0..n {
            site.add(&tweak).await;
        }
        site
    }

    /// No replica yet, on `pg`.
    fn on(pg: Pg) -> Site {
        let dir = tempfile::Builder::new().prefix("tundra-replicas-").tempdir().unwrap();
        Site { dir, pg, replicas: Vec::new(), admin: String::new(), http: reqwest::Client::new() }
    }

    /// Start one more replica.
    async fn add(&mut self, tweak: impl Fn(&mut Config)) {
        let i = self.replicas.len();
        let mut c = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.dir.path().join(format!("r{i}")),
            database_url: Some(self.pg.url.clone()),
            secrets_key_file: Some(self.dir.path().join("secrets.key")),
            images_dir: Some(self.dir.path().join("images")),
            replica_lease: "3s".into(),
            power_sync_interval: "1h".into(),
            ..Config::default()
        };
        tweak(&mut c);
        self.replicas.push(Some(tundrad::start(c).await.unwrap()));
        if i == 0 {
            self.admin = std::fs::read_to_string(self.dir.path().join("r0/admin-token")).unwrap().trim().to_string();
        }
    }

    fn replica(&self, i: usize) -> &tundrad::Server {
        self.replicas[i].as_ref().expect("a live replica")
    }

    fn name(&self, i: usize) -> String {
        self.replica(i).state.conductor.replica().to_string()
    }

    /// A JSON call to replica `i`'s API.
    async fn call(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.replica(i).addr);
        let mut req = self.http.request(method.parse().unwrap(), url).bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Kill replica `i` as `kill -9` would: nothing handed over.
    async fn kill(&mut self, i: usize) {
        self.replicas[i].take().unwrap().abandon().await;
    }

    async fn stop(mut self) {
        for r in self.replicas.iter_mut().filter_map(Option::take) {
            r.stop().await.unwrap();
        }
        drop(self.pg);
    }

    /// Who holds each loop's lease.
    async fn holders(&self, via: usize) -> Vec<(String, String)> {
        let leases = self.replica(via).state.store().lease_holders().await.unwrap();
        leases.into_iter().map(|l| (l.name, l.owner)).collect()
    }

    /// An operation's owner and attempts, as stored.
    async fn owner(&self, op: &str) -> (Option<String>, i64) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.pg.url).await.unwrap();
        let row: (Option<String>, i64) = sqlx::query_as("SELECT owner, attempts FROM operations WHERE id = $1")
            .bind(op.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        row
    }
}

/// The most sessions the emulator ever had open at once on `switch`, and
/// how many it had in all, from its session log (a session still open at
/// the end counts as open from then on; a close whose open is not in the
/// log is left out). The emulator's reactor notices a hang-up in the same
/// pass as a new connection made right after it, and may log it second:
/// a close counts from `NOTICED` before it was logged. Two workers reading
/// and programming at once overlap by whole sessions (tens of ms).
const NOTICED: f64 = 0.005;

fn sessions(log: &Path, switch: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut opened = std::collections::HashMap::new();
    let mut events: Vec<(f64, i32)> = Vec::new();
    for e in text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|e| e["switch"] == switch) {
        let (peer, at) = (e["peer"].as_str().unwrap().to_string(), e["at"].as_f64().unwrap());
        if e["event"] == "open" {
            opened.insert(peer, at);
            events.push((at, 1));
        } else if opened.remove(&peer).is_some() {
            events.push((at - NOTICED, -1));
        }
    }
    // At one instant a close counts before an open.
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut open, mut most, mut all) = (0i32, 0i32, 0usize);
    for (_, d) in events {
        open += d;
        most = most.max(open);
        all += usize::from(d == 1);
    }
    (most as usize, all)
}

async fn port(site: &Site, via: usize, switch: &str, port: &str) -> Option<Value> {
    let (status, ports) = site.call(via, "GET", &format!("/v1/switches/{switch}/ports"), None).await;
    assert_eq!(status, 200, "{ports}");
    ports.as_array().unwrap().iter().find(|p| p["port"] == port).cloned()
}

const LOOPS: [&str; 8] = [
    "appliance_reconciler",
    "cluster_reconciler",
    "fabric_worker",
    "housekeeping",
    "node_reconciler",
    "power_sync",
    "share_worker",
    "timeouts",
];

pub async fn loops_run_on_one_replica_at_a_time() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("sessions.jsonl");
    let (_peer, listening) = peers::fake_switches_with(&["cisco_generic:leaf"], Some(&log));
    let sport = listening["leaf"];
    let host_key = crate::fabric::by_hand(sport, HostKey::Learn)
        .apply(&[PortVlan { port: "FastEthernet0/1".into(), vlan: 2 }])
        .await
        .unwrap()
        .host_key;
    std::fs::write(&log, "").unwrap(); // from here on, only tundrad's sessions
    let mut site = Site::start(3, |c| c.fabric_read_interval = "1s".into()).await;
    let names: Vec<String> = (0..3).map(|i| site.name(i)).collect();

    // Every loop runs on exactly one replica; which one is the lease's say.
    wait_for("every loop to have a holder", async || site.holders(0).await.len() == LOOPS.len()).await;
    let holders = site.holders(1).await;
    assert_eq!(holders.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), LOOPS, "{holders:?}");
    assert!(holders.iter().all(|(_, o)| names.contains(o)), "{holders:?} {names:?}");
    // Each replica's /metrics says which it runs: every loop, on exactly one.
    let mut held = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..3 {
        let text = site.http.get(format!("http://{}/metrics", site.replica(i).addr)).send().await.unwrap();
        for line in text.text().await.unwrap().lines().filter(|l| l.starts_with("tundra_lease_held{")) {
            let (labels, v) = line.rsplit_once(' ').unwrap();
            let name = labels.split('"').nth(1).unwrap().to_string();
            *held.entry(name).or_default() += u32::from(v == "1");
        }
    }
    assert_eq!(held.into_iter().collect::<Vec<_>>(), LOOPS.map(|l| (l.to_string(), 1)).to_vec(), "one replica each");

    // Made through one replica, read through another: all serve the API.
    let (s, pn) = site
        .call(
            1,
            "POST",
            "/v1/physical-networks",
            Some(
                json!({"name": "fabric", "kind": "ethernet", "segment_range": [100, 102], "provisioning_segment": 10}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{pn}");
    let (s, sw) = site
        .call(
            2,
            "POST",
            "/v1/switches",
            Some(json!({"name": "leaf", "physical_network_id": pn["id"], "dialect": "cisco_ios",
                "address": format!("127.0.0.1:{sport}"), "username": "admin", "password": "password",
                "host_key": host_key})),
        )
        .await;
    assert_eq!(s, 201, "{sw}");
    let sw = sw["id"].as_str().unwrap().to_string();
    let cabled = |name: &str, mac: &str, port: &str| {
        json!({"name": name, "resource_class": "rc",
            "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p",
            "interfaces": [{"mac": mac, "switch": "leaf", "port": port}]})
    };
    let (s, m) = site.call(0, "POST", "/v1/machines", Some(cabled("m1", "52:54:00:00:0d:01", "FastEthernet0/3"))).await;
    assert_eq!(s, 201, "{m}");
    wait_for("Fa0/3 programmed", async || {
        port(&site, 2, &sw, "FastEthernet0/3")
            .await
            .is_some_and(|p| p["state"] == "in_sync" && p["actual_segment"] == 10)
    })
    .await;
    // Reads every second for a while: from one replica only.
    wait_for("a few read-backs", async || sessions(&log, "leaf").1 >= 5).await;
    let (most, all) = sessions(&log, "leaf");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(most, 1, "two sessions were open on the switch at once ({all} in all):\n{text}");

    // The fabric worker's replica dies; another takes the loop over once
    // its lease lapses, and programs the next machine's port.
    let holder = site.holders(0).await.into_iter().find(|(n, _)| n == "fabric_worker").unwrap().1;
    let dead = names.iter().position(|n| *n == holder).unwrap();
    site.kill(dead).await;
    let alive = (0..3).find(|i| *i != dead).unwrap();
    let (s, m) =
        site.call(alive, "POST", "/v1/machines", Some(cabled("m2", "52:54:00:00:0d:02", "FastEthernet0/4"))).await;
    assert_eq!(s, 201, "{m}");
    wait_for("Fa0/4 programmed by another replica", async || {
        port(&site, alive, &sw, "FastEthernet0/4")
            .await
            .is_some_and(|p| p["state"] == "in_sync" && p["actual_segment"] == 10)
    })
    .await;
    let now_holder = site.holders(alive).await.into_iter().find(|(n, _)| n == "fabric_worker").unwrap().1;
    assert_ne!(now_holder, holder, "the loop moved");
    assert!(names.contains(&now_holder));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (most, all) = sessions(&log, "leaf");
    assert!(all >= 7, "the switch saw {all} sessions: too few to tell");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(most, 1, "two sessions were open on the switch at once ({all} in all):\n{text}");
    site.stop().await;
}

/// A replica cut off from the database — a network partition: its
/// connections go silent, nothing is refused or closed — stops its loops
/// itself once two thirds of a lease pass without a renewal, before the
/// leases lapse and another replica takes them: at no moment does the
/// database name another holder of a loop the cut-off replica still runs.
/// When the partition heals it serves again, and runs nothing another holds.
pub async fn a_replica_cut_off_from_the_database_stops_its_loops_before_another_takes_them() {
    let pg = Pg::start().unwrap_or_else(|e| panic!("{e}"));
    let link = tundra_lab::faults::tcp_sessions(([127, 0, 0, 1], pg.port()).into()).await.unwrap();
    let through_link = pg.url.replace(&format!(":{}/", pg.port()), &format!(":{}/", link.addr.port()));
    assert_ne!(through_link, pg.url);
    let mut site = Site::on(pg);
    // Replica 0 reaches the database through the link, and runs every loop.
    site.add(|c| c.database_url = Some(through_link.clone())).await;
    let cut_off = site.name(0);
    let runs = |site: &Site| -> Vec<&'static str> { site.replica(0).state.conductor.leases_here() };
    wait_for("replica 0 to run every loop", async || LOOPS.iter().all(|l| runs(&site).contains(l))).await;
    site.add(|_| {}).await;
    site.add(|_| {}).await;
    assert!(site.holders(1).await.iter().all(|(_, o)| *o == cut_off), "{:?}", site.holders(1).await);

    link.faults.partition();
    let cut = std::time::Instant::now();
    let (mut stopped, mut moved) = (None, None);
    while moved.is_none() {
        assert!(cut.elapsed() < Duration::from_secs(60), "the loops never moved: {:?}", site.holders(1).await);
        // The database first, then replica 0: a loop the database gives to
        // another replica must have stopped on replica 0 already.
        let holders = site.holders(1).await;
        let here = runs(&site);
        let both: Vec<_> = holders.iter().filter(|(l, o)| *o != cut_off && here.contains(&l.as_str())).collect();
        assert!(both.is_empty(), "run on two replicas at once: {both:?}");
        if stopped.is_none() && here.is_empty() {
            stopped = Some(cut.elapsed());
        }
        if holders.len() == LOOPS.len() && holders.iter().all(|(_, o)| *o != cut_off) {
            moved = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = stopped.expect("replica 0 stopped its loops before they moved");
    eprintln!("cut off: loops stopped on replica 0 after {stopped:?}; all taken over after {moved:?}");

    // Healed: replica 0 answers again, through a database it can reach, and
    // runs nothing another replica holds.
    link.faults.heal();
    wait_for("replica 0 to reach the database again", async || {
        let url = format!("http://{}/readyz", site.replica(0).addr);
        site.http.get(url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let (s, body) = site.call(0, "GET", "/v1/machines", None).await;
    assert_eq!(s, 200, "{body}");
    for _ in 0..20 {
        let holders = site.holders(1).await;
        let here = runs(&site);
        let both: Vec<_> = holders.iter().filter(|(l, o)| *o != cut_off && here.contains(&l.as_str())).collect();
        assert!(both.is_empty(), "run on two replicas at once after the partition healed: {both:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    site.stop().await;
}

/// A create retried on another replica while the first request still runs
/// waits for it, even on a replica that holds no loop and no operation:
/// each renews a lease of its own. Killed, its lease lapses and the retry
/// runs. `/metrics` counts the replicas that run.
pub async fn a_retry_waits_for_the_replica_running_its_first_request() {
    let mut site = Site::on(Pg::start().unwrap_or_else(|e| panic!("{e}")));
    site.add(|_| {}).await;
    let runs = |site: &Site| -> Vec<&'static str> { site.replica(0).state.conductor.leases_here() };
    wait_for("replica 0 to run every loop", async || LOOPS.iter().all(|l| runs(&site).contains(l))).await;
    site.add(|_| {}).await;
    let (first, second) = (site.name(0), site.name(1));
    let live = async |site: &Site| {
        let live = site.replica(0).state.store().live_replicas().await.unwrap();
        let mut live: Vec<String> = live.into_iter().map(|r| r.owner).collect();
        live.sort();
        live
    };
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    wait_for("both replicas' heartbeats", async || live(&site).await == both).await;
    let holders = site.holders(0).await;
    assert!(holders.iter().all(|(_, o)| *o == first), "replica 1 runs no loop: {holders:?}");
    let replicas = async |site: &Site, i: usize| -> String {
        let text = site.http.get(format!("http://{}/metrics", site.replica(i).addr)).send().await.unwrap();
        let text = text.text().await.unwrap();
        text.lines().find(|l| l.starts_with("tundra_replicas ")).unwrap_or_default().to_string()
    };
    assert_eq!(replicas(&site, 1).await, "tundra_replicas 2");
    // The dashboard's overview lists both: what the first runs, the second standing by.
    let ui = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = format!("http://{}", site.replica(1).addr);
    let r = ui
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", site.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = ui.get(format!("{base}/ui/")).header("cookie", session).send().await.unwrap().text().await.unwrap();
    let row = |name: &str| {
        let row = html.split(&format!(r#"<tr data-replica="{name}">"#)).nth(1).unwrap_or_else(|| panic!("{html}"));
        row.split("</tr>").next().unwrap().to_string()
    };
    let (row0, row1) = (row(&first), row(&second));
    assert!(LOOPS.iter().all(|l| row0.contains(l)) && !row0.contains("(this page)"), "{row0}");
    assert!(row1.contains("standing by") && row1.contains("(this page)"), "{row1}");

    // Replica 1 handles a create with key k-1: claimed, not yet answered.
    let (_, me) = site.call(0, "GET", "/v1/whoami", None).await;
    let me = me["user_id"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&json!({"name": "retried"})).unwrap();
    let digest = tundra_conductor::secrets::sha256_hex(&body);
    let claim = async |i: usize, request: &str| {
        let actor = tundra_store::Actor { name: "admin".into(), request_id: Some(request.into()) };
        let store = site.replica(i).state.store();
        store.claim_idempotency_key(&me, "k-1", "POST /v1/projects", &digest, "project", &actor).await.unwrap()
    };
    assert_eq!(claim(1, "req-first").await, tundra_store::Claim::Run);
    // The client's retry reaches replica 0, which waits rather than create too.
    assert_eq!(claim(0, "req-retry").await, tundra_store::Claim::InProgress);

    // Replica 1 dies unanswered: its lease lapses, and the retry creates.
    site.kill(1).await;
    wait_for("replica 1's lease to lapse", async || live(&site).await == [first.clone()]).await;
    assert_eq!(replicas(&site, 0).await, "tundra_replicas 1");
    let r = site
        .http
        .post(format!("http://{}/v1/projects", site.replica(0).addr))
        .bearer_auth(&site.admin)
        .header("idempotency-key", "k-1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none(), "{:?}", r.headers());
    site.stop().await;
}

pub async fn a_killed_replicas_operation_is_taken_over() {
    let bmc_dir = tempfile::tempdir().unwrap();
    let (_sushy, base) = peers::sushy(bmc_dir.path());
    let mut site = Site::start(2, |_| {}).await;
    let (s, m) = site
        .call(
            0,
            "POST",
            "/v1/machines",
            Some(json!({"name": "m1", "resource_class": "baremetal",
                "bmc": {"driver": "redfish", "address": base, "username": "admin"}, "bmc_password": "password",
                "interfaces": [{"mac": "52:54:00:00:0e:01"}]})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    site.call(0, "POST", &format!("/v1/machines/{id}/actions"), Some(json!({"action": "manage"}))).await;
    wait_for("manageable", async || {
        site.call(1, "GET", &format!("/v1/machines/{id}"), None).await.1["provision_state"] == "manageable"
    })
    .await;

    // Power on takes the emulator 1–11 s. Replica 0 accepted it, so it runs
    // it; it dies meanwhile, and replica 1 takes the operation over once
    // its lease lapses, resumes it from the store and finishes it.
    let (s, op) =
        site.call(0, "POST", &format!("/v1/machines/{id}/actions"), Some(json!({"action": "power_on"}))).await;
    assert_eq!(s, 202, "{op}");
    let op = op["id"].as_str().unwrap().to_string();
    wait_for("the operation to run on replica 0", async || {
        site.call(1, "GET", &format!("/v1/operations/{op}"), None).await.1["state"] == "running"
    })
    .await;
    assert_eq!(site.owner(&op).await, (Some(site.name(0)), 1));
    site.kill(0).await;
    wait_for("replica 1 to finish it", async || {
        site.call(1, "GET", &format!("/v1/operations/{op}"), None).await.1["state"] == "succeeded"
    })
    .await;
    assert_eq!(site.owner(&op).await, (Some(site.name(1)), 2), "taken over: a second attempt, by replica 1");
    let (_, m) = site.call(1, "GET", &format!("/v1/machines/{id}"), None).await;
    assert_eq!((m["power_state"].as_str(), m["provision_state"].as_str()), (Some("on"), Some("manageable")), "{m}");
    assert!(m["operation_id"].is_null(), "{m}");
    let _ = &site.dir;
    site.stop().await;
}

pub async fn a_second_tundrad_on_one_sqlite_file_is_refused() {
    let mut env = Env::start(Backend::Sqlite, |_| {}).await;
    let mut second = env.config.clone();
    second.data_dir = env.config.data_dir.join("elsewhere");
    second.database_url = Some(env.config.database_url());
    let e = tundrad::start(second.clone()).await.err().expect("a second tundrad on the same file is refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("another tundrad is running on the SQLite database"), "{msg}");
    assert!(msg.contains("PostgreSQL"), "it says what to do instead: {msg}");
    // The refused one wrote nothing; the first still serves.
    assert!(!second.data_dir.join("admin-token").exists());
    assert_eq!(env.call("GET", "/v1/machines", &env.admin, None).await.status, 200);
    // Once the first stops, the file is free: for itself started again,
    // and for another.
    env.restart(|_| {}).await;
    assert_eq!(env.call("GET", "/v1/machines", &env.admin, None).await.status, 200);
    let Env { server, _dir: dir, .. } = env;
    server.unwrap().stop().await.unwrap();
    let third = tundrad::start(second).await.unwrap();
    third.stop().await.unwrap();
    drop(dir);
}

/// The node reconciler runs on one replica; a deploy accepted and run by
/// another ends there, and its wake-up crosses over: the node is active
/// without waiting for the reconciler's clock (an hour here).
pub async fn wake_ups_reach_the_worker_on_another_replica() {
    let site = Site::start(2, |c| {
        c.fake_hardware = true;
        c.reconcile_interval = "1h".into();
    })
    .await;
    wait_for("the node reconciler to have a holder", async || {
        site.holders(0).await.iter().any(|(n, _)| n == "node_reconciler")
    })
    .await;
    let holder = site.holders(0).await.into_iter().find(|(n, _)| n == "node_reconciler").unwrap().1;
    let other = if holder == site.name(0) { 1 } else { 0 };
    let call = async |method: &str, path: &str, body: Value| {
        let (s, b) = site.call(other, method, path, Some(body)).await;
        assert!(s < 300, "{method} {path}: {s} {b}");
        b
    };
    let project = call("POST", "/v1/projects", json!({"name": "hpc", "description": ""})).await["id"].clone();
    let flavor = call("POST", "/v1/flavors", json!({"name": "bm", "resource_class": "baremetal"})).await["id"].clone();
    let bytes = vec![7u8; 4096];
    let image = call(
        "POST",
        "/v1/images",
        json!({"project_id": project, "name": "img", "disk_format": "raw", "sha256": crate::harness::sha256(&bytes)}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{}/v1/images/{image}/file", site.replica(other).addr);
    let up = site.http.put(url).bearer_auth(&site.admin).body(bytes).send().await.unwrap();
    assert!(up.status().is_success(), "{:?}", up.text().await);
    let m = call(
        "POST",
        "/v1/machines",
        json!({"name": "f1", "bmc": {"driver": "fake", "address": "f1", "username": "admin"}, "bmc_password": "fake",
               "interfaces": [{"mac": "02:fa:ce:00:00:01", "pxe": true}]}),
    )
    .await;
    let m = m["id"].as_str().unwrap().to_string();
    for (action, state) in [("manage", "manageable"), ("inspect", "manageable"), ("provide", "available")] {
        call("POST", &format!("/v1/machines/{m}/actions"), json!({"action": action})).await;
        wait_for(state, async || {
            let m = site.call(other, "GET", &format!("/v1/machines/{m}"), None).await.1;
            m["provision_state"] == state && m["operation_id"].is_null()
        })
        .await;
    }
    let node =
        call("POST", "/v1/nodes", json!({"project_id": project, "name": "n1", "flavor_id": flavor, "image_id": image}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
    wait_for("the node to be active", async || {
        site.call(other, "GET", &format!("/v1/nodes/{node}"), None).await.1["status"] == "active"
    })
    .await;
    site.stop().await;
}

/// A call to replica `i`'s boot listener from `from`, as a machine's agent.
async fn agent_call(
    site: &Site,
    i: usize,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, bytes::Bytes) {
    let http = reqwest::Client::builder().local_address(AGENT.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let url = format!("http://{}{path}", site.replica(i).boot_listeners[0]);
    let mut req = http.request(method.parse().unwrap(), url);
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap())
}

/// The address the deployed machine's (played) agent calls from: its DHCP lease.
const AGENT: &str = "127.0.0.121";
const AGENT_MAC: &str = "52:54:00:00:0f:01";

/// A deploy runs on the replica that placed its node; that replica dies
/// while the machine boots the agent. The other replica takes the deploy
/// over, serves the agent (played here, over the agent protocol, from the
/// machine's leased address) its command and the image from the shared
/// images dir, and finishes the deploy: the node is active.
pub async fn a_killed_replicas_deploy_is_taken_over() {
    let bmc_dir = tempfile::tempdir().unwrap();
    let (_sushy, base) = peers::sushy(bmc_dir.path());
    let mut site = Site::start(2, |c| {
        crate::harness::loopback_boot(c, &[(AGENT_MAC, AGENT)]);
        c.agent_boot_timeout = "10m".into();
    })
    .await;
    let call = async |site: &Site, i: usize, method: &str, path: &str, body: Value| {
        let (s, b) = site.call(i, method, path, Some(body)).await;
        assert!(s < 300, "{method} {path}: {s} {b}");
        b
    };
    // A machine straight to available (the lab tests cover the real way),
    // through replica 1's store: the setup's own operation is replica 1's.
    let m = call(
        &site,
        0,
        "POST",
        "/v1/machines",
        json!({"name": "m1", "resource_class": "baremetal", "properties": {"root_disk": "/dev/sda"},
               "bmc": {"driver": "redfish", "address": base, "username": "admin"}, "bmc_password": "password",
               "interfaces": [{"mac": AGENT_MAC, "pxe": true}]}),
    )
    .await;
    let machine: tundra_api::MachineId = m["id"].as_str().unwrap().parse().unwrap();
    let store = site.replica(1).state.store().clone();
    let (_, setup) = store
        .begin_machine_transition(
            &tundra_store::Actor::service(),
            machine,
            tundra_api::machines::ProvisionState::Enroll,
            tundra_api::machines::ProvisionState::Cleaning,
            "setup",
            crate::harness::machine_op(machine),
        )
        .await
        .unwrap();
    store.machine_step(machine, setup, tundra_api::machines::ProvisionState::Available, None, true).await.unwrap();

    let project = call(&site, 0, "POST", "/v1/projects", json!({"name": "hpc", "description": ""})).await["id"].clone();
    let flavor =
        call(&site, 0, "POST", "/v1/flavors", json!({"name": "bm", "resource_class": "baremetal"})).await["id"].clone();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 247) as u8).collect();
    let sha = crate::harness::sha256(&bytes);
    let image = call(
        &site,
        0,
        "POST",
        "/v1/images",
        json!({"project_id": project, "name": "img", "disk_format": "raw", "sha256": sha}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{}/v1/images/{image}/file", site.replica(0).addr);
    let up = site.http.put(url).bearer_auth(&site.admin).body(bytes.clone()).send().await.unwrap();
    assert!(up.status().is_success(), "{:?}", up.text().await);

    // Replica 0 places the node and runs its deploy: the machine is powered
    // on to boot the agent, and waits for it.
    let node = call(
        &site,
        0,
        "POST",
        "/v1/nodes",
        json!({"project_id": project, "name": "n1", "flavor_id": flavor, "image_id": image}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deploy = async |site: &Site| {
        let ops = site.call(1, "GET", "/v1/operations?limit=100", None).await.1;
        ops["items"].as_array().unwrap().iter().find(|o| o["kind"] == "machine.deploy").cloned()
    };
    wait_for("the deploy to wait for the agent", async || {
        site.call(1, "GET", &format!("/v1/machines/{machine}"), None).await.1["provision_state"] == "deploy_wait"
    })
    .await;
    let op = deploy(&site).await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(site.owner(&op).await, (Some(site.name(0)), 1));
    site.kill(0).await;

    // Replica 1 takes it over and serves the agent.
    wait_for("replica 1 to take the deploy over", async || site.owner(&op).await.0 == Some(site.name(1))).await;
    let mut script = (0, bytes::Bytes::new());
    wait_for("a boot script from replica 1", async || {
        script = agent_call(&site, 1, "GET", &format!("/boot/{AGENT_MAC}.ipxe"), "", None).await;
        script.0 == 200
    })
    .await;
    let text = String::from_utf8(script.1.to_vec()).unwrap();
    let token = text.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string();
    let (s, cmd) = agent_call(&site, 1, "POST", "/v1/agent/heartbeat", &token, Some(json!({"version": "test"}))).await;
    assert_eq!(s, 200);
    let cmd: Value = serde_json::from_slice(&cmd).unwrap();
    assert_eq!((cmd["command"].as_str(), cmd["sha256"].as_str()), (Some("write_image"), Some(sha.as_str())), "{cmd}");
    let (s, served) = agent_call(&site, 1, "GET", "/v1/agent/image", &token, None).await;
    assert_eq!((s, served.len()), (200, bytes.len()), "replica 1 serves the image from the shared images dir");
    assert_eq!(crate::harness::sha256(&served), sha);
    let report = json!({"id": cmd["id"], "ok": true,
        "details": {"bytes": bytes.len(), "sha256": sha, "disk": "/dev/sda", "config_drive": true}});
    let (s, r) = agent_call(&site, 1, "POST", "/v1/agent/report", &token, Some(report)).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));

    wait_for("the node to be active", async || {
        site.call(1, "GET", &format!("/v1/nodes/{node}"), None).await.1["status"] == "active"
    })
    .await;
    let o = site.call(1, "GET", &format!("/v1/operations/{op}"), None).await.1;
    assert_eq!(o["state"], "succeeded", "{o}");
    assert_eq!(site.owner(&op).await, (Some(site.name(1)), 2), "a second attempt, by replica 1");
    let m = site.call(1, "GET", &format!("/v1/machines/{machine}"), None).await.1;
    assert_eq!((m["provision_state"].as_str(), m["power_state"].as_str()), (Some("active"), Some("on")), "{m}");
    site.stop().await;
}

/// A `tundrad` process (this release, or the packaging test's "next
/// release" with one more migration), killed when dropped.
struct Process {
    child: std::process::Child,
    addr: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(bin: &str, dir: &Path, name: &str, pg: &Pg, files: &crate::harness::FileServer) -> Process {
        let config = dir.join(format!("{name}.toml"));
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ndatabase_url = {:?}\nsecrets_key_file = {:?}\n\
             images_dir = {:?}\nreplica_lease = \"3s\"\npower_sync_interval = \"1h\"\nimage_source_allow = [{:?}]\n",
            dir.join(name),
            pg.url,
            dir.join("secrets.key"),
            dir.join("images"),
            files.prefix()
        );
        std::fs::write(&config, toml).unwrap();
        let addr_file = dir.join(format!("{name}.addr"));
        let child = std::process::Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--address-file")
            .arg(&addr_file)
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                break a;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{bin} did not start; see {name}.log");
            std::thread::sleep(Duration::from_millis(20));
        };
        Process { child, addr }
    }

    /// SIGTERM: the replica drains (hands its leases over) and exits.
    fn drain(mut self) {
        std::process::Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The supported online upgrade: a replica of the next release (the
/// packaging test's probe: one more migration) starts beside a running
/// replica of this one and migrates the shared database; the old replica
/// keeps serving on the migrated schema — and another of this release
/// still starts on it — then drains on SIGTERM, and the import it was
/// running is taken over at once, as it handed its lease over.
pub async fn a_rolling_upgrade_drains_the_old_replica() {
    let dir = tempfile::Builder::new().prefix("tundra-upgrade-").tempdir().unwrap();
    let pg = Pg::start().unwrap_or_else(|e| panic!("{e}"));
    // 24 chunks, 0.4 s apart: the import outlasts the new replica's start.
    let bytes: Vec<u8> = (0..1_572_864u32).map(|i| (i % 233) as u8).collect();
    let files = crate::harness::FileServer::start(bytes.clone(), Duration::from_millis(400)).await;
    let old = Process::start(env!("CARGO_BIN_EXE_tundrad"), dir.path(), "old", &pg, &files);
    let admin = std::fs::read_to_string(dir.path().join("old/admin-token")).unwrap().trim().to_string();
    let http = reqwest::Client::new();
    let call = async |p: &Process, method: &str, path: &str, body: Option<Value>| {
        let mut req = http.request(method.parse().unwrap(), format!("http://{}{path}", p.addr)).bearer_auth(&admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (s, img) = call(
        &old,
        "POST",
        "/v1/images",
        Some(json!({"name": "big", "disk_format": "raw", "sha256": crate::harness::sha256(&bytes),
                    "source_url": files.url("big.raw")})),
    )
    .await;
    assert_eq!(s, 202, "{img}");
    let op = img["operation_id"].as_str().unwrap().to_string();
    let op_path = format!("/v1/operations/{op}");
    wait_for("the import under way on the old replica", async || {
        call(&old, "GET", &op_path, None).await.1["progress_done"].as_u64().unwrap_or(0) > 0
    })
    .await;

    let new = Process::start(env!("CARGO_BIN_EXE_tundrad-upgrade-probe"), dir.path(), "new", &pg, &files);
    let (_, info) = call(&new, "GET", "/v1/info", None).await;
    assert_eq!(info["schema_version"], 9000, "the new replica migrated: {info}");
    // The old replica works on the migrated schema meanwhile.
    let (s, o) = call(&old, "GET", &op_path, None).await;
    assert_eq!((s, o["state"].as_str()), (200, Some("running")), "{o}");
    let (s, _) = call(&old, "POST", "/v1/projects", Some(json!({"name": "during", "description": ""}))).await;
    assert_eq!(s, 201);
    // A replica of this release starts again on the newer schema (as
    // systemd would restart one mid-upgrade).
    let again = Process::start(env!("CARGO_BIN_EXE_tundrad"), dir.path(), "again", &pg, &files);
    let (s, p) = call(&again, "GET", "/v1/projects/during", None).await;
    assert_eq!((s, p["name"].as_str()), (200, Some("during")), "{p}");

    old.drain();
    wait_for("the import to finish on a replica left", async || {
        let s = call(&new, "GET", &op_path, None).await.1["state"].clone();
        s == "succeeded" || s == "failed"
    })
    .await;
    let (_, o) = call(&new, "GET", &op_path, None).await;
    assert_eq!((o["state"].as_str(), o["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{o}");
    let (_, p) = call(&new, "GET", "/v1/projects/during", None).await;
    assert_eq!(p["name"], "during", "{p}");
    again.drain();
    new.drain();
}
