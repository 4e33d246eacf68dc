//! Nodes through the API: placement groups honoured (anti-affinity across
//! racks, affinity within an island), requests that cannot be met refused
//! with the reason, racing creates never sharing a machine, and a deploy
//! that fails rolling its machine back to cleaning. The machines sit behind
//! a real Redfish emulator; the lab tests run whole deploys.

use serde_json::{Value, json};
use tundra_api::machines::ProvisionState;

use crate::harness::{Backend, Env, machine_op, sha256, wait_for};

/// An available machine at (rack, island), behind `bmc`.
pub async fn machine(env: &Env, name: &str, mac: &str, rack: &str, island: &str, bmc: &str) -> String {
    let r = env
        .call(
            "POST",
            "/v1/machines",
            &env.admin,
            Some(json!({
                "name": name, "resource_class": "baremetal",
                "location": {"rack": rack, "island": island},
                // A known root disk, so the deploy gets as far as waiting for
                // the agent (without one it fails at once and frees the rack).
                "properties": {"root_disk": "/dev/sda"},
                "bmc": {"driver": "redfish", "address": bmc, "username": "admin"},
                "bmc_password": "password",
                "interfaces": [{"mac": mac, "pxe": true}],
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id: tundra_api::MachineId = r.body["id"].as_str().unwrap().parse().unwrap();
    // Straight to available (the lab tests cover the real way there).
    let store = &env.state().store();
    let actor = tundra_store::Actor::service();
    let (_, op) = store
        .begin_machine_transition(&actor, id, ProvisionState::Enroll, ProvisionState::Cleaning, "setup", machine_op(id))
        .await
        .unwrap();
    store.machine_step(id, op, ProvisionState::Available, None, true).await.unwrap();
    id.to_string()
}

pub struct Catalog {
    pub project: String,
    pub flavor: String,
    pub image: String,
}

/// Project `hpc`, a public flavor `bm` (resource class `baremetal`) and the
/// project's raw image `img`, uploaded.
pub async fn catalog(env: &Env) -> Catalog {
    let project = env.project("hpc").await;
    let f =
        env.call("POST", "/v1/flavors", &env.admin, Some(json!({"name": "bm", "resource_class": "baremetal"}))).await;
    assert_eq!(f.status, 201, "{}", f.body);
    let bytes = vec![7u8; 4096];
    let i = env
        .call(
            "POST",
            "/v1/images",
            &env.admin,
            Some(json!({"project_id": project, "name": "img", "disk_format": "raw", "sha256": sha256(&bytes)})),
        )
        .await;
    let image = i.body["id"].as_str().unwrap().to_string();
    let up = env.raw(env.req("PUT", &format!("/v1/images/{image}/file"), &env.admin).body(bytes)).await;
    assert!(up.status < 300, "{}", up.body);
    Catalog { project, flavor: f.body["id"].as_str().unwrap().into(), image }
}

fn node(c: &Catalog, name: &str, placement: Value) -> Value {
    json!({"project_id": c.project, "name": name, "flavor_id": c.flavor, "image_id": c.image, "placement": placement})
}

async fn create(env: &Env, body: Value) -> crate::harness::Resp {
    env.call("POST", "/v1/nodes", &env.admin, Some(body)).await
}

/// tundrad and a Redfish emulator for its machines. The deploys power the
/// (emulated) machines on and then wait for an agent that never comes: the
/// nodes stay `building` while the test places more.
async fn with_redfish(b: Backend) -> (Env, String, (crate::peers::Peer, tempfile::TempDir)) {
    let dir = tempfile::tempdir().unwrap();
    let (bmc, base) = crate::peers::sushy(dir.path());
    let env = Env::start(b, |c| {
        c.power_sync_interval = "1h".into();
        c.agent_boot_timeout = "10m".into();
    })
    .await;
    (env, base, (bmc, dir))
}

pub async fn placement_groups_and_no_capacity(b: Backend) {
    let (env, base, _bmc) = with_redfish(b).await;
    // Island a: racks r1, r2 (one machine each) and r3 (three); island b: r4 (two).
    let layout = [
        ("m1", "r1", "a"),
        ("m2", "r2", "a"),
        ("m3", "r3", "a"),
        ("m4", "r3", "a"),
        ("m5", "r3", "a"),
        ("m6", "r4", "b"),
        ("m7", "r4", "b"),
    ];
    let mut machines = std::collections::HashMap::new();
    for (k, (name, rack, island)) in layout.iter().enumerate() {
        let id = machine(&env, name, &format!("52:54:00:bb:00:0{k}"), rack, island, &base).await;
        machines.insert(id, (*rack, *island));
    }
    let c = catalog(&env).await;

    // Anti-affinity: four nodes on the four racks, the fifth has none left.
    let mut racks = Vec::new();
    for k in 0..4 {
        let r = create(&env, node(&c, &format!("aa-{k}"), json!({"group": "aa", "policy": "anti_affinity"}))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["status"], "building");
        racks.push(r.body["location"]["rack"].as_str().unwrap().to_string());
    }
    let mut distinct = racks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "anti-affinity puts each node on its own rack: {racks:?}");
    let r = create(&env, node(&c, "aa-4", json!({"group": "aa", "policy": "anti_affinity"}))).await;
    let why = r.problem(409);
    assert_eq!(r.body["type"], "urn:tundra:problem:no-capacity", "{}", r.body);
    assert!(why.contains("rack"), "the reason names the rule that failed: {why}");

    // A building node is not rebuilt; a rebuild names an image the node may use.
    let aa0 = env.call("GET", "/v1/nodes?limit=100", &env.admin, None).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "aa-0")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rebuild = format!("/v1/nodes/{aa0}/rebuild");
    let r = env.call("POST", &rebuild, &env.admin, Some(json!({}))).await;
    assert!(r.problem(409).contains("only an active node is rebuilt"), "{}", r.body);
    let missing = "0b0e0f00-0000-4000-8000-000000000001";
    let r = env.call("POST", &rebuild, &env.admin, Some(json!({"image_id": missing}))).await;
    assert_eq!(r.body["errors"][0]["pointer"], "/image_id", "{}", r.body);
    let r = env.call("POST", &rebuild, &env.admin, Some(json!({"image": c.image}))).await;
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.body);
    assert_eq!(env.call("GET", &format!("/v1/nodes/{aa0}"), &env.admin, None).await.body["status"], "building");

    // A group has one policy.
    let r = create(&env, node(&c, "x", json!({"group": "aa", "policy": "affinity"}))).await;
    assert!(r.problem(400).contains("one policy"), "{}", r.body);

    // Affinity: left are two machines in island a (rack r3) and one in b.
    // The group starts where there is most room and stays there; when a
    // is full, b's free machine does not count.
    for k in 0..2 {
        let r = create(&env, node(&c, &format!("af-{k}"), json!({"group": "af", "policy": "affinity"}))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["location"]["island"], "a", "affinity keeps the group in one island: {}", r.body);
    }
    let r = create(&env, node(&c, "af-2", json!({"group": "af", "policy": "affinity"}))).await;
    let why = r.problem(409);
    assert!(why.contains("island"), "{why}");
    let r = create(&env, node(&c, "loner", json!({}))).await;
    assert_eq!(r.body["location"]["island"], "b", "the free machine in b is still there for others: {}", r.body);
    // No machine is left: every one is held by exactly one node.
    let nodes = env.call("GET", "/v1/nodes?limit=100", &env.admin, None).await.body;
    let held: Vec<String> =
        nodes["items"].as_array().unwrap().iter().filter_map(|n| n["machine_id"].as_str().map(String::from)).collect();
    let mut uniq = held.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), held.len(), "no machine is held twice");
    for (id, (rack, island)) in &machines {
        let m = env.call("GET", &format!("/v1/machines/{id}"), &env.admin, None).await.body;
        if held.contains(id) {
            assert_ne!(m["provision_state"], "available", "{m}");
            let n = nodes["items"].as_array().unwrap().iter().find(|n| n["machine_id"] == id.as_str()).unwrap();
            assert_eq!(n["location"], json!({"rack": rack, "island": island}));
        }
    }
    // Impossible asks say why.
    let r = create(&env, node(&c, "far", json!({"island": "z"}))).await;
    assert!(r.problem(409).contains("island \"z\""), "{}", r.body);
    let r = create(&env, node(&c, "nogroup", json!({"policy": "affinity"}))).await;
    assert!(r.problem(400).contains("/placement/group"), "{}", r.body);
    // Members of other projects do not see machine IDs; the admin does.
    assert!(nodes["items"].as_array().unwrap().iter().any(|n| n["machine_id"].is_string()), "{nodes}");
    let reader = env.user_with_role("viewer", "hpc", "reader").await;
    let seen = env.call("GET", "/v1/nodes", &reader, None).await.body;
    assert!(seen["items"].as_array().unwrap().iter().all(|n| n.get("machine_id").is_none()), "{seen}");
    env.stop().await;
}

pub async fn racing_creates_never_share_a_machine(b: Backend) {
    let (env, base, _bmc) = with_redfish(b).await;
    for k in 0..2 {
        machine(&env, &format!("r{k}"), &format!("52:54:00:cc:00:0{k}"), "r1", "a", &base).await;
    }
    let c = catalog(&env).await;
    let mut tasks = Vec::new();
    for k in 0..8 {
        let (http, url, token, body) = (
            env.http.clone(),
            format!("{}/v1/nodes", env.base()),
            env.admin.clone(),
            node(&c, &format!("n{k}"), json!({})),
        );
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            202 => won.push(body["machine_id"].as_str().unwrap().to_string()),
            409 => assert_eq!(body["type"], "urn:tundra:problem:no-capacity", "{body}"),
            s => panic!("{s}: {body}"),
        }
    }
    won.sort();
    won.dedup();
    assert_eq!(won.len(), 2, "exactly the two machines are taken, each once");
    let nodes = env.call("GET", "/v1/nodes", &env.admin, None).await.body;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 2, "losers leave no node: {nodes}");
    env.stop().await;
}

/// A deploy that fails (the BMC is gone) puts the node in `error` with the
/// reason and sends its machine through cleaning; the node lets go of it,
/// and deleting the node then removes it at once.
pub async fn a_failed_deploy_rolls_back_to_cleaning(b: Backend) {
    let env = Env::start(b, |c| {
        c.power_sync_interval = "1h".into();
        c.reconcile_interval = "1s".into();
    })
    .await;
    // Nothing listens on port 9: every BMC call fails at once.
    // (Its name has letters no UUID has: a member's view is full of UUIDs.)
    let m = machine(&env, "silent-rack-unit", "52:54:00:dd:00:01", "r1", "a", "http://127.0.0.1:9").await;
    let c = catalog(&env).await;
    let r = create(&env, node(&c, "doomed", json!({}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    wait_for("the node to fail and let go of its machine", async || {
        last = env.call("GET", &format!("/v1/nodes/{id}"), &env.admin, None).await.body;
        last["status"] == "error" && last["machine_id"].is_null()
    })
    .await;
    assert!(last["status_reason"].as_str().unwrap().starts_with("deploy failed"), "{last}");
    let ev =
        env.call("GET", &format!("/v1/events?object_type=machine&object_id={m}&limit=100"), &env.admin, None).await;
    let actions: Vec<&str> = ev.body["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"deploy") && actions.contains(&"delete"), "deploy, then cleaning: {actions:?}");
    // The project's member learns what went wrong, not which machine, BMC
    // or address it was: node, its operations, its events.
    let member = env.user_with_role("hpc-member", "hpc", "member").await;
    let node_view = env.call("GET", &format!("/v1/nodes/{id}"), &member, None).await.body;
    assert!(node_view["status_reason"].as_str().unwrap().starts_with("deploy failed"), "{node_view}");
    let ops = env.call("GET", "/v1/operations?limit=100", &member, None).await.body;
    let deploy = ops["items"].as_array().unwrap().iter().find(|o| o["kind"] == "machine.deploy").unwrap();
    assert_eq!((deploy["target_type"].as_str(), deploy["target_id"].as_str()), (Some("node"), Some(id.as_str())));
    assert!(deploy["error"].as_str().unwrap_or("").contains("its BMC is unreachable"), "{deploy}");
    let one = env.call("GET", &format!("/v1/operations/{}", deploy["id"].as_str().unwrap()), &member, None).await;
    let events = env.call("GET", &format!("/v1/events?project={}&limit=200", c.project), &member, None).await;
    for seen in [node_view, ops, one.body, events.body] {
        let text = seen.to_string();
        for secret in [m.as_str(), "silent-rack-unit", "127.0.0.1:9"] {
            assert!(!text.contains(secret), "a member sees {secret}: {text}");
        }
    }
    // Site admins see it whole.
    let admin_ops = env.call("GET", "/v1/operations?limit=100", &env.admin, None).await.body.to_string();
    assert!(admin_ops.contains(m.as_str()) && admin_ops.contains("BMC http://127.0.0.1:9"), "{admin_ops}");
    let r = env.call("DELETE", &format!("/v1/nodes/{id}"), &env.admin, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(env.call("GET", &format!("/v1/nodes/{id}"), &env.admin, None).await.status, 404);
    env.stop().await;
}
