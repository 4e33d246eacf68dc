//! The staging smoke tier: a real QEMU (TCG) machine behind a pyghmi IPMI
//! BMC. tundrad powers it on for inspection; its SeaBIOS runs the virtio
//! NIC's iPXE ROM, which gets a lease from tundrad's DHCP, fetches the
//! per-machine HTTP script and then the kernel the script names — what a
//! real server does. (The lab serves no real agent kernel, so the boot stops
//! there; the namespace machines run the agent itself.) Needs root.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SITE: &str = r#"
[[machines]]
name = "vm-1"
bmc = "ipmi"
vm = true
disks = [{ name = "vda", size_mib = 16 }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_machine_network_boots_from_tundrad() {
    let dir = tempfile::Builder::new().prefix("tundra-lab-vm-").tempdir().unwrap();
    let lab = lab(SITE, dir.path()).await;
    let server = tundrad::start(config(&lab, dir.path(), "127.0.0.1:0", 0)).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));
    let m = &lab.machines[0];
    let id = api.enroll(m).await;
    api.action(&id, "manage", json!({})).await;
    api.wait_state(&id, "manageable", Duration::from_secs(60), Some(m)).await;
    api.action(&id, "inspect", json!({})).await;

    // iPXE in the VM asks for its script (the session counts the boot) and
    // then fetches the kernel the script names.
    let serial = m.firmware.vm.as_ref().unwrap().serial.clone();
    let kernel_url = "/boot/assets/vmlinuz";
    let start = Instant::now();
    loop {
        let ev = api.ok("GET", &format!("/v1/events?object_id={id}&limit=100"), None).await;
        let booted = ev["items"].as_array().unwrap().iter().any(|e| e["action"] == "agent_booting");
        let console = std::fs::read_to_string(&serial).unwrap_or_default();
        if booted && console.contains(kernel_url) {
            assert!(console.contains("iPXE"), "{console}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the VM did not network-boot from tundrad (script fetched: {booted}); serial console:\n{console}\nfirmware: {}",
            m.firmware.status()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = api.ok("GET", &format!("/v1/machines/{id}"), None).await;
    assert_eq!(got["provision_state"], "inspect_wait");
    assert_eq!(got["power_state"], "on");
    // An operator stops the wait; the machine records why.
    api.action(&id, "abort", json!({})).await;
    let got = api.ok("GET", &format!("/v1/machines/{id}"), None).await;
    assert_eq!(got["provision_state"], "inspect_failed");
    assert!(got["last_error"].as_str().unwrap().contains("aborted by admin"), "{got}");
    server.stop().await.unwrap();
    lab.stop().await;
}
