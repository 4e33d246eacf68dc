//! The lab as a site: tundrad (in-process, SQLite) manages, inspects,
//! cleans, deploys and undeploys 8 lab machines — 4 behind sushy-tools'
//! Redfish, 4 behind pyghmi IPMI BMCs — that network-boot the real agent
//! over real DHCP and HTTP in their own namespaces. Needs root.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const SITE: &str = r#"
[switch]
name = "lab-leaf-7"
port_id = "TenGigabitEthernet 1/0/{n}"

[[machines]]
name = "rf-{n}"
count = 4
bmc = "redfish"
cpus = 8
cpu_model = "Lab EPYC 7713"
memory_mib = 16384
disks = [{ name = "vda", size_mib = 48 }]
rack = "r1"

[[machines]]
name = "ipmi-{n}"
count = 4
bmc = "ipmi"
cpus = 16
memory_mib = 65536
disks = [{ name = "sda", size_mib = 40, rotational = true }, { name = "nvme0n1", size_mib = 48 }]
gpus = [{ vendor = "0x10de", device = "0x20b5" }]
rack = "r2"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_machines_are_inspected_cleaned_deployed_and_cleaned_again() {
    let dir = tempfile::Builder::new().prefix("tundra-lab-test-").tempdir().unwrap();
    let lab = lab(SITE, dir.path()).await;
    let server = tundrad::start(config(&lab, dir.path(), "127.0.0.1:0", 0)).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));
    let long = Duration::from_secs(240);

    // Enrolled with only a BMC and a MAC; manage verifies the BMC.
    let mut ids = Vec::new();
    for m in &lab.machines {
        ids.push(api.enroll(m).await);
    }
    for id in &ids {
        api.action(id, "manage", json!({})).await;
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        api.wait_state(id, "manageable", long, Some(m)).await;
    }

    // Inspection: the agent reports what the lab built; the rules classify.
    for id in &ids {
        api.action(id, "inspect", json!({})).await;
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        let got = api.wait_state(id, "manageable", long, Some(m)).await;
        let p = &got["properties"];
        assert_eq!(p["cpus"], json!(m.spec.cpus), "{got}");
        assert_eq!(p["memory_mib"], json!(m.spec.memory_mib), "{got}");
        let disks: Vec<(String, u64)> = p["disks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), d["size_bytes"].as_u64().unwrap()))
            .collect();
        let mut want: Vec<(String, u64)> = m.spec.disks.iter().map(|d| (d.name.clone(), d.size_mib << 20)).collect();
        want.sort();
        assert_eq!(disks, want, "{got}");
        assert_eq!(got["interfaces"][0]["mac"], json!(m.spec.macs[0]));
        // LLDP from the lab switch (lldpd), translated by the rules.
        let (switch, port) = &m.cabling[0];
        assert_eq!(got["interfaces"][0]["switch"], json!(switch), "{got}");
        assert_eq!(got["interfaces"][0]["port"], json!(port.replace("TenGigabitEthernet ", "Te")), "{got}");
        assert_eq!(got["interfaces"][0]["physical_network"], "provisioning", "{got}");
        if m.spec.gpus.is_empty() {
            assert_eq!(got["resource_class"], "baremetal");
            assert_eq!(p["cpu_model"], "Lab EPYC 7713");
            assert_eq!(got["traits"], json!([]));
        } else {
            assert_eq!(got["resource_class"], "baremetal.gpu");
            assert_eq!(p["gpus"], 1);
            assert_eq!(got["traits"], json!(["bigmem", "gpu"]));
        }
        assert_eq!(got["power_state"], "off", "inspection ends powered off");
    }

    // Provide: dirty the disks first; cleaning must leave them zero.
    for m in &lab.machines {
        for (_, f) in &m.disks {
            // (Keeping the disk's size: cleaning checks it against inspection's.)
            let size = std::fs::metadata(f).unwrap().len();
            std::fs::write(f, image_bytes(1 << 20, 7)).unwrap();
            std::fs::OpenOptions::new().write(true).open(f).unwrap().set_len(size).unwrap();
        }
    }
    for id in &ids {
        api.action(id, "provide", json!({})).await;
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        api.wait_state(id, "available", long, Some(m)).await;
        for (_, f) in &m.disks {
            assert!(all_zero(f), "{} is not erased", f.display());
        }
    }

    // Deploy an image to each root disk (the non-rotational one).
    let img = image_bytes(12 << 20, 42);
    let image = api.image("lab-os", &img).await;
    for id in &ids {
        api.action(id, "deploy", json!({"image_id": image})).await;
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        let got = api.wait_state(id, "active", long, Some(m)).await;
        assert_eq!(got["power_state"], "on");
        let root = m.disks.iter().find(|(n, _)| n == "vda" || n == "nvme0n1").unwrap();
        assert_eq!(file_prefix_sha256(&root.1, img.len()), sha256(&img), "{} holds the image", root.1.display());
        // The machine booted from its disk after the deploy.
        let s = tundra_lab::firmware::wait_status(&m.firmware, Duration::from_secs(30), |s| s == "disk").await;
        assert!(s.is_ok(), "{} after deploy: {s:?}", m.spec.name);
    }

    // Undeploy: delete goes through cleaning back to available.
    for id in &ids {
        api.action(id, "delete", json!({})).await;
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        let got = api.wait_state(id, "available", long, Some(m)).await;
        assert_eq!(got["power_state"], "off");
        for (_, f) in &m.disks {
            assert!(all_zero(f), "{} is not erased after delete", f.display());
        }
    }

    // The audit trail shows the agent's work for a machine.
    let ev = api.ok("GET", &format!("/v1/events?object_id={}&limit=500", ids[0]), None).await;
    let actions: Vec<&str> = ev["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.iter().filter(|a| **a == "agent_reported").count() >= 4, "{actions:?}");

    server.stop().await.unwrap();
    lab.stop().await;
}

/// A machine whose boot goes wrong (here: the initrd is missing, so its
/// firmware gives up and boots its disk) never speaks to tundrad; after
/// `agent_boot_timeout` tundrad reboots it into the agent again, and the
/// second boot (initrd back in place) finishes the inspection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_misses_its_boot_is_booted_again() {
    let dir = tempfile::Builder::new().prefix("tundra-lab-reboot-").tempdir().unwrap();
    let lab = lab("[[machines]]\nname = \"ipmi-1\"\nbmc = \"ipmi\"\n", dir.path()).await;
    let mut c = config(&lab, dir.path(), "127.0.0.1:0", 0);
    c.agent_boot_timeout = "8s".into();
    let initrd = c.boot_assets_dir.clone().unwrap().join("initramfs");
    let server = tundrad::start(c).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));
    let m = &lab.machines[0];
    let id = api.enroll(m).await;
    api.action(&id, "manage", json!({})).await;
    api.wait_state(&id, "manageable", Duration::from_secs(60), Some(m)).await;

    let held = dir.path().join("initramfs.held");
    std::fs::rename(&initrd, &held).unwrap();
    api.action(&id, "inspect", json!({})).await;
    let failed =
        tundra_lab::firmware::wait_status(&m.firmware, Duration::from_secs(60), |s| s.starts_with("boot failed")).await;
    assert!(failed.is_ok(), "the first boot should fail without an initrd: {failed:?}");
    std::fs::rename(&held, &initrd).unwrap();

    let got = api.wait_state(&id, "manageable", Duration::from_secs(120), Some(m)).await;
    assert_eq!(got["properties"]["cpus"], json!(m.spec.cpus));
    let ev = api.ok("GET", &format!("/v1/events?object_id={id}&limit=200"), None).await;
    let boots = ev["items"].as_array().unwrap().iter().filter(|e| e["action"] == "agent_booting").count();
    assert_eq!(boots, 2, "one failed boot, one reboot into the agent: {ev}");
    server.stop().await.unwrap();
    lab.stop().await;
}

/// Discovery: a machine nobody enrolled is powered on at its BMC; its
/// network boot reaches tundrad (discovery on), the agent reports the
/// hardware, a rule keyed on its serial number names its BMC, and tundrad
/// enrolls it and verifies the BMC: `manageable`, with its facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_machine_is_discovered_and_enrolled() {
    let dir = tempfile::Builder::new().prefix("tundra-lab-discovery-").tempdir().unwrap();
    let lab = lab("[[machines]]\nname = \"new-1\"\nbmc = \"ipmi\"\ncpus = 12\n", dir.path()).await;
    let m = &lab.machines[0];
    let mut c = config(&lab, dir.path(), "127.0.0.1:0", 0);
    c.provisioning_networks[0].discovery = true;
    let password = dir.path().join("bmc-password");
    std::fs::write(&password, format!("{}\n", m.bmc.password)).unwrap();
    c.discovery = tundrad::config::Discovery { enabled: true, bmc_password_file: Some(password) };
    // The site's record: this serial's BMC is here.
    let rules = format!(
        r#"[{{"name": "bmc of {serial}", "conditions": [{{"op": "eq", "field": "/serial", "value": "{serial}"}}],
             "actions": [{{"action": "set_bmc", "driver": "ipmi", "address": "{addr}", "username": "admin"}},
                         {{"action": "set_name", "template": "found-{{/serial}}"}}]}}]"#,
        serial = m.serial,
        addr = m.bmc.address
    );
    std::fs::write(c.inspection_rules_file.as_ref().unwrap(), rules).unwrap();
    let server = tundrad::start(c).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));

    // Someone powers the new machine on, network boot first.
    let (host, port) = m.bmc.address.split_once(':').unwrap();
    for args in [&["chassis", "bootdev", "pxe"][..], &["power", "on"]] {
        let out = std::process::Command::new("ipmitool")
            .args(["-I", "lanplus", "-H", host, "-p", port, "-U", "admin", "-E"])
            .args(args)
            .env("IPMI_PASSWORD", &m.bmc.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "ipmitool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let name = format!("found-{}", m.serial);
    let start = std::time::Instant::now();
    let id = loop {
        let (s, v) = api.call("GET", &format!("/v1/machines/{name}"), None).await;
        if s == 200 {
            break v["id"].as_str().unwrap().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not discovered; firmware: {}\nconsole:\n{}",
            m.firmware.status(),
            std::fs::read_to_string(&m.firmware.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let got = api.wait_state(&id, "manageable", Duration::from_secs(60), Some(m)).await;
    assert_eq!(got["properties"]["cpus"], 12);
    assert_eq!(got["properties"]["serial"], json!(m.serial));
    assert_eq!(got["bmc"]["address"], json!(m.bmc.address));
    assert_eq!(got["interfaces"][0], json!({"mac": m.spec.macs[0], "pxe": true}));
    let ev = api.ok("GET", &format!("/v1/events?object_id={}&limit=50", m.spec.macs[0]), None).await;
    let actions: Vec<&str> = ev["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"booting") && actions.contains(&"enrolled"), "{actions:?}");
    server.stop().await.unwrap();
    lab.stop().await;
}
