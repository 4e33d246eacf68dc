//! The agent protocol's rules, without hardware: boot and agent routes are
//! only on the boot listener; the boot script goes only to the lease holder
//! of its MAC, once per boot tundrad made, and mints a per-boot token (the
//! next boot retires it) that works only from that address; the token opens
//! only the agent routes, a report names its command and is recorded once,
//! and the token dies with the session. (The netboot and lab tests run the
//! flow with real DHCP clients, BMCs and the agent binary.)

use serde_json::json;
use tundra_api::agent::Command;
use tundra_api::machines::ProvisionState;
use tundra_store::Actor;

use crate::harness::{Backend, Env, loopback_boot, machine_op};

/// The machine's DHCP lease (127.0.0.101 for MAC …:01); anyone else on the network.
const HOLDER: &str = "127.0.0.101";
const STRANGER: &str = "127.0.0.150";

/// An operation (not run by the test) holds the machine in inspect_wait, with
/// an agent session whose command is `inspect` with ID `c1`, armed for one
/// boot (as the operation's PXE boot arms it).
async fn waiting_for_agent(store: &tundra_store::Store, id: tundra_api::MachineId) -> tundra_api::OperationId {
    let op = machine_op(id);
    let (_, op) = store
        .begin_machine_transition(
            &Actor::service(),
            id,
            ProvisionState::Enroll,
            ProvisionState::InspectWait,
            "test",
            op,
        )
        .await
        .unwrap();
    let cmd = Command::Inspect { id: "c1".into() };
    store.open_agent_session(id, op, &serde_json::to_value(&cmd).unwrap()).await.unwrap();
    assert!(store.arm_agent_boot(id, op).await.unwrap());
    op
}

pub async fn tokens_commands_and_reports(b: Backend) {
    let env = Env::start(b, |c| loopback_boot(c, &[("52:54:00:aa:00:01", HOLDER)])).await;
    let admin = env.admin.clone();
    let m = env
        .call("POST", "/v1/machines", &admin, Some(json!({"name": "m1", "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p", "interfaces": [{"mac": "52:54:00:aa:00:01", "pxe": true}]})))
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    assert_eq!(m.body["resource_class"], "baremetal", "the default class");
    let id: tundra_api::MachineId = m.body["id"].as_str().unwrap().parse().unwrap();
    let store = &env.state().store();

    // Fixed provisioning addresses (DHCP reservations): valid, and one machine's each.
    let with = |name: &str, mac: &str, addr: &str| {
        json!({"name": name, "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p",
               "interfaces": [{"mac": mac, "address": addr}]})
    };
    let r = env.call("POST", "/v1/machines", &admin, Some(with("m2", "52:54:00:aa:00:02", "10.0.0.300"))).await;
    assert!(r.problem(400).contains("/interfaces/0/address"), "{}", r.body);
    let r = env.call("POST", "/v1/machines", &admin, Some(with("m2", "52:54:00:aa:00:02", "10.0.0.5"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["interfaces"][0]["address"], "10.0.0.5");
    let r = env.call("POST", "/v1/machines", &admin, Some(with("m3", "52:54:00:aa:00:03", "10.0.0.5"))).await;
    assert!(r.problem(409).contains("machine m2's address already"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/interfaces/0/address", "{}", r.body);

    // Nothing is booting: no script.
    env.boot_call("GET", "/boot/52:54:00:aa:00:01.ipxe", "", None, HOLDER).await.problem(404);

    // An operation (not run here) holds the machine in inspect_wait with a session.
    let op = waiting_for_agent(store, id).await;

    // Not on the API listener, whoever asks.
    env.call("GET", "/boot/52:54:00:aa:00:01.ipxe", "", None).await.problem(404);
    env.call("POST", "/v1/agent/heartbeat", "", Some(json!({"version": "t"}))).await.problem(404);
    // Not to an address that does not hold the MAC's lease — and that
    // refusal does not use up the boot.
    env.boot_call("GET", "/boot/52:54:00:aa:00:01.ipxe", "", None, STRANGER).await.problem(404);

    let script = async || {
        let r = env.boot_call("GET", "/boot/52-54-00-AA-00-01.ipxe", "", None, HOLDER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
        let text = String::from_utf8(r.bytes.to_vec()).unwrap();
        assert!(text.starts_with("#!ipxe\n"), "{text}");
        assert!(text.contains(&format!("tundra.api={}", env.boot_base())), "{text}");
        assert!(text.contains("BOOTIF=01-52-54-00-aa-00-01"), "{text}");
        text.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string()
    };
    let t1 = script().await;
    assert!(t1.starts_with("tna_"));
    let hb = json!({"version": "test"});
    let agent = async |method: &str, path: &str, token: &str, body: Option<serde_json::Value>| {
        env.boot_call(method, path, token, body, HOLDER).await
    };
    let r = agent("POST", "/v1/agent/heartbeat", &t1, Some(hb.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"command": "inspect", "id": "c1"}));
    // The token works only from the address its script went to.
    env.boot_call("POST", "/v1/agent/heartbeat", &t1, Some(hb.clone()), STRANGER).await.problem(401);
    env.boot_call("POST", "/v1/agent/report", &t1, Some(json!({"id": "c1", "ok": true})), STRANGER).await.problem(401);
    // The agent token is not an API token.
    env.call("GET", "/v1/machines", &t1, None).await.problem(401);

    // One script per boot: asking again (even as the lease holder) gets
    // nothing, and the running agent keeps its token.
    env.boot_call("GET", "/boot/52:54:00:aa:00:01.ipxe", "", None, HOLDER).await.problem(404);
    assert_eq!(agent("POST", "/v1/agent/heartbeat", &t1, Some(hb.clone())).await.status, 200);

    // tundrad boots the machine again: a new script, and the first boot's token is retired.
    assert!(store.arm_agent_boot(id, op).await.unwrap());
    let t2 = script().await;
    assert_ne!(t1, t2);
    agent("POST", "/v1/agent/heartbeat", &t1, Some(hb.clone())).await.problem(401);
    let s = store.agent_session(id).await.unwrap().unwrap();
    assert_eq!((s.boots, s.armed, s.agent_address.as_deref()), (2, false, Some(HOLDER)));

    // Reports: strict bodies, the right command, recorded once.
    agent("POST", "/v1/agent/report", &t2, Some(json!({"id": "c1", "ok": true, "colour": 1}))).await.problem(400);
    let wrong = agent("POST", "/v1/agent/report", &t2, Some(json!({"id": "c0", "ok": true}))).await;
    assert!(wrong.problem(409).contains("c1"), "{}", wrong.body);
    let report = json!({"id": "c1", "ok": true, "details": {"cpus": 4}});
    let r = agent("POST", "/v1/agent/report", &t2, Some(report.clone())).await;
    assert_eq!(r.body, json!({"recorded": true}));
    let r = agent("POST", "/v1/agent/report", &t2, Some(report)).await;
    assert_eq!(r.body, json!({"recorded": false}), "a retried report is acknowledged, not recorded again");
    let stored = store.agent_session(id).await.unwrap().unwrap().report.unwrap();
    assert_eq!(stored["details"]["cpus"], 4);
    let ev = env.call("GET", &format!("/v1/events?object_id={id}&limit=100"), &admin, None).await;
    let actions: Vec<&str> = ev.body["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "agent_reported").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "agent_booting").count(), 2, "{actions:?}");
    // After its report the agent is told to stop; it was not asked for an image.
    let r = agent("POST", "/v1/agent/heartbeat", &t2, Some(hb.clone())).await;
    assert_eq!(r.body, json!({"command": "exit"}));
    agent("GET", "/v1/agent/image", &t2, None).await.problem(409);

    // The session ends with its operation: the token is dead, no script is served.
    store.close_agent_session(id, op).await.unwrap();
    agent("POST", "/v1/agent/heartbeat", &t2, Some(hb)).await.problem(401);
    assert!(!store.arm_agent_boot(id, op).await.unwrap(), "no session to arm");
    env.boot_call("GET", "/boot/52:54:00:aa:00:01.ipxe", "", None, HOLDER).await.problem(404);
    // Boot assets: only plain file names inside the assets dir, only on the boot listener.
    let assets = env.config.boot_assets_dir();
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join("vmlinuz"), b"kernel bytes").unwrap();
    let r = env.boot_call("GET", "/boot/assets/vmlinuz", "", None, STRANGER).await;
    assert_eq!((r.status, r.bytes.as_ref()), (200, &b"kernel bytes"[..]));
    env.boot_call("GET", "/boot/assets/..%2Fsecrets.key", "", None, HOLDER).await.problem(404);
    env.call("GET", "/boot/assets/vmlinuz", "", None).await.problem(404);
    env.stop().await;
}

/// Discovery refuses what it cannot manage: without a rule naming the BMC,
/// a report enrolls nothing and says which rule is missing; a report for
/// another command is refused; discovery off means no script at all.
pub async fn discovery_without_a_bmc_rule_enrolls_nothing(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bmc-password");
    std::fs::write(&pw, "secret\n").unwrap();
    let env = Env::start(b, |c| {
        loopback_boot(c, &[("52:54:00:dd:00:01", HOLDER)]);
        c.discovery = tundrad::config::Discovery { enabled: true, bmc_password_file: Some(pw.clone()) };
    })
    .await;
    // Only the lease holder of the MAC gets a discovery script.
    env.boot_call("GET", "/boot/52:54:00:dd:00:01.ipxe", "", None, STRANGER).await.problem(404);
    env.boot_call("GET", "/boot/52:54:00:dd:00:02.ipxe", "", None, STRANGER).await.problem(404);
    let r = env.boot_call("GET", "/boot/52:54:00:dd:00:01.ipxe", "", None, HOLDER).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = String::from_utf8(r.bytes.to_vec()).unwrap();
    assert!(text.contains("discovering 52:54:00:dd:00:01"), "{text}");
    let token = text.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string();
    // A MAC gets one discovery script per 10 s: a flood of requests writes
    // one session and one event, and the first token keeps working.
    for _ in 0..5 {
        env.boot_call("GET", "/boot/52:54:00:dd:00:01.ipxe", "", None, HOLDER).await.problem(404);
    }
    let ev = env.call("GET", "/v1/events?object_type=discovery&limit=100", &env.admin, None).await;
    assert_eq!(ev.body["items"].as_array().unwrap().len(), 1, "{}", ev.body);
    let agent = async |method: &str, path: &str, body: Option<serde_json::Value>| {
        env.boot_call(method, path, &token, body, HOLDER).await
    };
    let hb = agent("POST", "/v1/agent/heartbeat", Some(json!({"version": "t"}))).await;
    assert_eq!(hb.body, json!({"command": "inspect", "id": "discover-52:54:00:dd:00:01"}));
    env.boot_call("POST", "/v1/agent/heartbeat", &token, Some(json!({"version": "t"})), STRANGER).await.problem(401);
    agent("POST", "/v1/agent/report", Some(json!({"id": "other", "ok": true}))).await.problem(409);
    let inv = json!({"serial": "CZ1", "cpus": 2, "memory_mib": 1024, "disks": [], "nics": [], "gpus": []});
    let r = agent(
        "POST",
        "/v1/agent/report",
        Some(json!({"id": "discover-52:54:00:dd:00:01", "ok": true, "details": inv})),
    )
    .await;
    let detail = r.problem(422);
    assert!(detail.contains("set_bmc") && detail.contains("CZ1"), "{detail}");
    let list = env.call("GET", "/v1/machines", &env.admin, None).await;
    assert_eq!(list.body["items"], json!([]), "nothing was enrolled");
    env.stop().await;

    let env = Env::start(b, |c| loopback_boot(c, &[("52:54:00:dd:00:01", HOLDER)])).await;
    env.boot_call("GET", "/boot/52:54:00:dd:00:01.ipxe", "", None, HOLDER).await.problem(404);
    env.boot_call("GET", "/boot/not-a-mac.ipxe", "", None, HOLDER).await.problem(404);
    env.stop().await;
}

/// A wait that times out takes its agent session with it: the machine goes
/// to its failed state and the agent's token stops working.
pub async fn a_timed_out_wait_retires_its_token(b: Backend) {
    let env = Env::start(b, |c| {
        loopback_boot(c, &[("52:54:00:aa:00:07", HOLDER)]);
        c.machine_timeout_scale = 0.001; // inspect_wait: 30 min → 1.8 s
        c.reconcile_interval = "300ms".into();
        c.power_sync_interval = "1h".into();
    })
    .await;
    let m = env
        .call("POST", "/v1/machines", &env.admin, Some(json!({"name": "m1", "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p", "interfaces": [{"mac": "52:54:00:aa:00:07"}]})))
        .await;
    let id: tundra_api::MachineId = m.body["id"].as_str().unwrap().parse().unwrap();
    let store = &env.state().store();
    waiting_for_agent(store, id).await;
    let script = env.boot_call("GET", "/boot/52:54:00:aa:00:07.ipxe", "", None, HOLDER).await;
    let text = String::from_utf8(script.bytes).unwrap();
    let token = text.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string();
    let hb = json!({"version": "t"});
    assert_eq!(env.boot_call("POST", "/v1/agent/heartbeat", &token, Some(hb.clone()), HOLDER).await.status, 200);
    crate::harness::wait_for("the timeout", async || {
        env.call("GET", &format!("/v1/machines/{id}"), &env.admin, None).await.body["provision_state"]
            == "inspect_failed"
    })
    .await;
    env.boot_call("POST", "/v1/agent/heartbeat", &token, Some(hb), HOLDER).await.problem(401);
    env.boot_call("GET", "/boot/52:54:00:aa:00:07.ipxe", "", None, HOLDER).await.problem(404);
    env.stop().await;
}
