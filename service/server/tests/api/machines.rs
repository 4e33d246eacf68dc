//! Machines: enrollment with sealed BMC credentials, `manage` verifying the
//! BMC through an operation, power actions, and the power sync putting a
//! machine whose BMC went away into maintenance and clearing it when the BMC
//! returns — against real BMC peers (pyghmi IPMI, sushy-tools Redfish).

use std::time::Duration;
use tundra_api::machines::ProvisionState;

use serde_json::{Value, json};

use crate::harness::{Backend, Env, machine_op, wait_for, wait_for_secs};
use crate::peers;

fn ipmi_machine(name: &str, port: u16, mac: &str, password: &str) -> Value {
    json!({
        "name": name,
        "resource_class": "baremetal",
        "traits": ["ib"],
        "location": {"rack": "r1", "island": "i1"},
        "bmc": {"driver": "ipmi", "address": format!("127.0.0.1:{port}"), "username": "admin"},
        "bmc_password": password,
        "interfaces": [{"mac": mac, "pxe": true, "physical_network": "ctlplane"}]
    })
}

async fn machine(env: &Env, id: &str) -> Value {
    env.call("GET", &format!("/v1/machines/{id}"), &env.admin, None).await.body
}

pub async fn enroll_manage_power_and_maintenance(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = peers::free_udp_port();
    let bmc = peers::ipmi_bmc(dir.path(), port);
    let env = Env::start(b, |c| {
        c.power_sync_interval = "1s".into();
        c.power_sync_failures = 2;
    })
    .await;
    let t = env.admin.clone();
    let r = env.call("POST", "/v1/machines", &t, Some(ipmi_machine("m1", port, "52:54:00:AA:00:01", "password"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["provision_state"], "enroll");
    assert_eq!(r.body["power_state"], "unknown");
    assert_eq!(r.body["interfaces"][0]["mac"], "52:54:00:aa:00:01", "MACs are normalised");
    // The password is nowhere to be read back.
    assert!(!r.body.to_string().contains("password\":"), "{}", r.body);
    let ev = env.call("GET", &format!("/v1/events?object_type=machine&object_id={id}"), &t, None).await;
    assert!(!ev.body.to_string().contains("\"password\""), "{}", ev.body);
    // MACs belong to one machine.
    let d = env
        .call("POST", "/v1/machines", &t, Some(ipmi_machine("m2", port, "52:54:00:aa:00:01", "x")))
        .await
        .problem(409);
    assert!(d.contains("already belongs to another machine"), "{d}");
    let r = env.call("POST", "/v1/machines", &t, Some(ipmi_machine("m2", port, "52:54:00:aa", "x"))).await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/interfaces/0/mac");
    // Power actions need a verified BMC's machine to be idle; verbs follow the state table.
    let d = env
        .call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(json!({"action": "deploy"})))
        .await
        .problem(409);
    assert!(d.contains("from enroll you can: manage"), "{d}");

    // manage: verifying → manageable, through an operation.
    let op = env.call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(json!({"action": "manage"}))).await;
    assert_eq!(op.status, 202, "{}", op.body);
    wait_for("manageable", async || machine(&env, &id).await["provision_state"] == "manageable").await;
    let m = machine(&env, &id).await;
    assert_eq!(m["power_state"], "off");
    assert!(m["operation_id"].is_null());
    // Power on.
    let op = env.call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(json!({"action": "power_on"}))).await;
    assert_eq!(op.status, 202, "{}", op.body);
    wait_for("power on", async || machine(&env, &id).await["power_state"] == "on").await;
    let opv = env.call("GET", &format!("/v1/operations/{}", op.body["id"].as_str().unwrap()), &t, None).await;
    wait_for("op done", async || {
        env.call("GET", &format!("/v1/operations/{}", opv.body["id"].as_str().unwrap()), &t, None).await.body["state"]
            == "succeeded"
    })
    .await;

    // The BMC goes away: after 2 failed syncs the machine is in maintenance,
    // by tundrad. A silent BMC fails a sync after two ipmitool runs of four
    // 2 s tries per message each.
    drop(bmc);
    wait_for_secs("maintenance", 120, async || machine(&env, &id).await["maintenance"] == true).await;
    let m = machine(&env, &id).await;
    assert_eq!(m["maintenance_by"], "tundrad");
    assert!(m["maintenance_reason"].as_str().unwrap().contains("BMC unreachable"), "{m}");
    assert_eq!(m["power_state"], "unknown");
    // Verbs wait for maintenance to end; power actions do not.
    let d = env
        .call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(json!({"action": "manage"})))
        .await
        .problem(409);
    assert!(d.contains("maintenance"), "{d}");
    // It comes back: maintenance clears itself.
    let _bmc = peers::ipmi_bmc(dir.path(), port);
    wait_for("maintenance cleared", async || machine(&env, &id).await["maintenance"] == false).await;
    assert_eq!(machine(&env, &id).await["power_state"], "on", "the BMC kept its state file");
    let ev = env.call("GET", &format!("/v1/events?object_type=machine&object_id={id}"), &t, None).await;
    let actions: Vec<&str> =
        ev.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["created", "manage", "power_on", "maintenance_set", "maintenance_cleared"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // An operator's maintenance is theirs: the sync leaves it alone.
    let r = env
        .call(
            "PATCH",
            &format!("/v1/machines/{id}"),
            &t,
            Some(json!({"maintenance": true, "maintenance_reason": "DIMM swap"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let m = machine(&env, &id).await;
    assert_eq!(m["maintenance"], true);
    assert_eq!(m["maintenance_reason"], "DIMM swap");
    assert_eq!(m["maintenance_by"], "admin");
    // Only deletable from states where nothing is deployed.
    assert_eq!(env.call("DELETE", &format!("/v1/machines/{id}"), &t, None).await.status, 204);
    assert_eq!(env.call("GET", "/v1/machines", &t, None).await.body["items"], json!([]));
    env.stop().await;
}

pub async fn wrong_credentials_and_restart_mid_operation(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_sushy, base) = peers::sushy(dir.path());
    let mut env = Env::start(b, |c| c.power_sync_interval = "1h".into()).await;
    let t = env.admin.clone();
    let mk = |name: &str, password: &str, mac: &str| {
        json!({
            "name": name, "resource_class": "baremetal",
            "bmc": {"driver": "redfish", "address": base, "username": "admin"},
            "bmc_password": password,
            "interfaces": [{"mac": mac}]
        })
    };
    // Wrong password: verifying fails back to enroll, saying why.
    let bad = env.call("POST", "/v1/machines", &t, Some(mk("bad", "wrong", "52:54:00:00:00:0a"))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.call("POST", &format!("/v1/machines/{bad}/actions"), &t, Some(json!({"action": "manage"}))).await;
    wait_for("verify failure", async || machine(&env, &bad).await["last_error"].is_string()).await;
    let m = machine(&env, &bad).await;
    assert_eq!(m["provision_state"], "enroll");
    assert!(m["last_error"].as_str().unwrap().contains("refused the credentials"), "{m}");
    // A new password fixes it.
    let r = env.call("PATCH", &format!("/v1/machines/{bad}"), &t, Some(json!({"bmc_password": "password"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.call("POST", &format!("/v1/machines/{bad}/actions"), &t, Some(json!({"action": "manage"}))).await;
    wait_for("manageable", async || machine(&env, &bad).await["provision_state"] == "manageable").await;

    // Power on takes the emulator 1–11 s; restart tundrad meanwhile: the operation resumes and finishes.
    let op = env.call("POST", &format!("/v1/machines/{bad}/actions"), &t, Some(json!({"action": "power_on"}))).await;
    assert_eq!(op.status, 202, "{}", op.body);
    let op = op.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.restart(|_| {}).await;
    wait_for("resumed power on", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body["state"] == "succeeded"
    })
    .await;
    let o = env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body;
    assert_eq!(o["attempts"], 2, "{o}");
    let m = machine(&env, &bad).await;
    assert_eq!(m["power_state"], "on");
    assert_eq!(m["provision_state"], "manageable");
    assert!(m["operation_id"].is_null());
    // A second action while one runs is refused.
    env.call("POST", &format!("/v1/machines/{bad}/actions"), &t, Some(json!({"action": "power_off"}))).await;
    let d = env
        .call("POST", &format!("/v1/machines/{bad}/actions"), &t, Some(json!({"action": "power_on"})))
        .await
        .problem(409);
    assert!(d.contains("busy with an operation"), "{d}");
    env.stop().await;
}

/// A step that never ends is ended by its state's timeout: verifying against
/// a BMC that never answers goes back to enroll with the reason, and the
/// operation fails with it (timeouts scaled down for the test).
pub async fn stuck_steps_time_out(b: Backend) {
    let env = Env::start(b, |c| {
        c.machine_timeout_scale = 0.005; // verifying: 5 min → 1.5 s
        c.reconcile_interval = "300ms".into();
        c.power_sync_interval = "1h".into();
    })
    .await;
    let t = env.admin.clone();
    let silent = peers::free_udp_port(); // nothing listens: ipmitool waits and retries
    let id =
        env.call("POST", "/v1/machines", &t, Some(ipmi_machine("stuck", silent, "52:54:00:aa:00:09", "pw"))).await.body
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let op = env.call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(json!({"action": "manage"}))).await;
    assert_eq!(op.status, 202, "{}", op.body);
    let op = op.body["id"].as_str().unwrap().to_string();
    assert_eq!(machine(&env, &id).await["provision_state"], "verifying");
    wait_for("the timeout", async || machine(&env, &id).await["provision_state"] == "enroll").await;
    let m = machine(&env, &id).await;
    assert!(m["last_error"].as_str().unwrap().contains("timed out after 1s in verifying"), "{m}");
    assert!(m["operation_id"].is_null(), "the machine is free again");
    let o = env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body;
    assert_eq!(o["state"], "failed");
    assert!(o["error"].as_str().unwrap().contains("timed out"), "{o}");
    // The cancelled worker does not come back to overwrite anything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = machine(&env, &id).await;
    assert_eq!(later["provision_state"], "enroll");
    assert_eq!(later["last_error"], m["last_error"]);
    env.stop().await;
}

/// Sixteen actions racing for one machine: exactly one moves it and gets an
/// operation; the others are told it changed, and leave no operation behind
/// (PostgreSQL lets a second transaction read the old state; its update
/// must then match nothing and roll back).
pub async fn racing_transitions_have_one_winner(b: Backend) {
    let env = Env::start(b, |c| c.power_sync_interval = "1h".into()).await;
    let r =
        env.call("POST", "/v1/machines", &env.admin, Some(ipmi_machine("race", 1, "52:54:00:aa:00:31", "pw"))).await;
    let id: tundra_api::MachineId = r.body["id"].as_str().unwrap().parse().unwrap();
    let store = env.state().store().clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let op = machine_op(id);
            store
                .begin_machine_transition(
                    &tundra_store::Actor::service(),
                    id,
                    ProvisionState::Enroll,
                    ProvisionState::Verifying,
                    "race",
                    op,
                )
                .await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((_, op)) => won.push(op),
            Err(tundra_store::StoreError::Conflict(m)) => assert!(m.contains("race"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one transition wins: {won:?}");
    let m = env.call("GET", &format!("/v1/machines/{id}"), &env.admin, None).await.body;
    assert_eq!(m["operation_id"], json!(won[0].to_string()));
    let ops = env.call("GET", "/v1/operations?limit=100", &env.admin, None).await.body;
    let races = ops["items"].as_array().unwrap().iter().filter(|o| o["target_id"] == json!(id.to_string())).count();
    assert_eq!(races, 1, "the losers' operations were rolled back");
    env.stop().await;
}

/// Placement's claim under contention: twelve claims race for three
/// available machines (each claimer ranks them in its own order). Exactly
/// three win, each machine once; the rest get nothing and leave no
/// operation; a machine in maintenance is never claimed.
pub async fn racing_claims_never_share_a_machine(b: Backend) {
    let env = Env::start(b, |c| c.power_sync_interval = "1h".into()).await;
    let store = env.state().store().clone();
    let actor = tundra_store::Actor::service();
    let mut ids = Vec::new();
    for k in 0..4 {
        let r = env
            .call(
                "POST",
                "/v1/machines",
                &env.admin,
                Some(ipmi_machine(&format!("c{k}"), 1, &format!("52:54:00:aa:01:0{k}"), "pw")),
            )
            .await;
        let id: tundra_api::MachineId = r.body["id"].as_str().unwrap().parse().unwrap();
        // Straight to available (the lab tests cover the real way there).
        let op = machine_op(id);
        let (_, op) = store
            .begin_machine_transition(&actor, id, ProvisionState::Enroll, ProvisionState::Cleaning, "setup", op)
            .await
            .unwrap();
        store.machine_step(id, op, ProvisionState::Available, None, true).await.unwrap();
        ids.push(id);
    }
    // The fourth is in maintenance.
    let maint = ids.pop().unwrap();
    env.call("PATCH", &format!("/v1/machines/{maint}"), &env.admin, Some(json!({"maintenance": true}))).await;
    // Nodes claim straight through the store here, past tundrad's placement
    // lock: only the row locks (PostgreSQL) or the writer lock (SQLite) keep
    // the claims apart.
    let project: tundra_api::ProjectId = env.project("racers").await.parse().unwrap();
    // (A deploy holds its image: one that exists.)
    let img = json!({"name": "racing", "disk_format": "raw", "sha256": "0".repeat(64)});
    let image: tundra_api::ImageId =
        env.call("POST", "/v1/images", &env.admin, Some(img)).await.body["id"].as_str().unwrap().parse().unwrap();
    let mut tasks = Vec::new();
    for k in 0..12usize {
        let store = store.clone();
        let mut ranked: Vec<tundra_api::MachineId> = vec![maint];
        ranked.extend(ids.iter().cycle().skip(k % 3).take(3).copied());
        let node = tundra_store::NewNode {
            project_id: project,
            name: format!("n{k}"),
            flavor_id: tundra_api::FlavorId::generate(),
            image_id: image,
            keypair_id: None,
            user_data: None,
            user_data_sha256: None,
            metadata: Default::default(),
            placement: Default::default(),
            shares: Vec::new(),
        };
        tasks.push(tokio::spawn(async move {
            store
                .create_node(
                    &tundra_store::Actor::service(),
                    &node,
                    &ranked,
                    None,
                    (&[], &|_, _| Ok(Vec::new())),
                    |id, node| tundra_store::NewOperation {
                        project_id: None,
                        work: tundra_api::ops::Work::MachineDeploy {
                            machine_id: id,
                            image: tundra_api::ops::DeployImage { id: image, sha256: String::new(), size_bytes: 0 },
                            node_id: Some(node),
                        },
                    },
                )
                .await
                .unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        if let Some(c) = t.await.unwrap() {
            assert_eq!(c.node.machine_id, Some(c.machine.id));
            got.push(c.machine.id);
        }
    }
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each available machine claimed exactly once, the one in maintenance never");
    let ops = env.call("GET", "/v1/operations?limit=200", &env.admin, None).await.body;
    let claims = ops["items"].as_array().unwrap().iter().filter(|o| o["kind"] == "machine.deploy").count();
    assert_eq!(claims, 3, "losers leave no operation");
    let nodes = env.call("GET", "/v1/nodes", &env.admin, None).await.body;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 3, "losers leave no node: {nodes}");
    let m = env.call("GET", &format!("/v1/machines/{maint}"), &env.admin, None).await.body;
    assert_eq!(m["provision_state"], "available");
    env.stop().await;
}

/// The `fake` driver: refused unless the site turns `fake_hardware` on;
/// then a machine with no hardware behind it goes through the whole cycle —
/// manage, inspect, provide (cleaning), deploy, undeploy — as tundrad's
/// benchmarks and dry runs drive it.
pub async fn the_fake_driver_runs_the_cycle_without_hardware(b: Backend) {
    let fake = |name: &str| {
        json!({
            "name": name,
            "bmc": {"driver": "fake", "address": name, "username": "admin"},
            "bmc_password": "fake",
            "interfaces": [{"mac": "02:fa:ce:00:00:01", "pxe": true}]
        })
    };
    let mut env = Env::start(b, |_| {}).await;
    let r = env.call("POST", "/v1/machines", &env.admin, Some(fake("f1"))).await;
    let d = r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/bmc/driver");
    assert!(d.contains("fake_hardware = true"), "{d}");
    env.restart(|c| c.fake_hardware = true).await;
    let t = env.admin.clone();
    let r = env.call("POST", "/v1/machines", &t, Some(fake("f1"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let cat = crate::nodes::catalog(&env).await;
    let steps: [(&str, Option<&str>, &str, &str); 5] = [
        ("manage", None, "manageable", "off"),
        ("inspect", None, "manageable", "off"),
        ("provide", None, "available", "off"),
        ("deploy", Some(cat.image.as_str()), "active", "on"),
        ("delete", None, "available", "off"),
    ];
    for (action, image, state, power) in steps {
        let mut body = json!({"action": action});
        if let Some(i) = image {
            body["image_id"] = json!(i);
        }
        let r = env.call("POST", &format!("/v1/machines/{id}/actions"), &t, Some(body)).await;
        assert!(r.status < 300, "{action}: {}", r.body);
        wait_for(&format!("{action} to end in {state}"), async || {
            let m = machine(&env, &id).await;
            m["operation_id"].is_null() && m["provision_state"] == state
        })
        .await;
        let m = machine(&env, &id).await;
        assert_eq!(m["power_state"], power, "{action}: {m}");
        assert!(m["last_error"].is_null(), "{action}: {m}");
        if action == "inspect" {
            assert_eq!(m["properties"]["disks"][0]["name"], "sda", "{m}");
            assert_eq!(m["properties"]["system_product"], "fake hardware", "{m}");
        }
    }
    env.stop().await;
}
