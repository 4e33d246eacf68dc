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

/// The images the lab boots hold what their recipes name: one GPT
/// partition `root` of the root type from 1 MiB, every Debian package
/// installed (dpkg's own record, read from the filesystem with debugfs)
/// and every PyPI pin in the local site directory, cloud-init
/// set to read the config drive, no SSH host keys baked in; the bootable
/// one's extlinux names a kernel it has; the ramdisk holds the agent.
///
/// Runs first and outside the lab group (`.config/nextest.toml`): the
/// builds — minutes on a cold checkout — overlap the lab tests that boot no
/// image instead of lengthening the lab's serial chain, and the lab tests
/// that boot these find them cached (a racing build waits on the cache's
/// lock, then finds it built).
#[test]
fn the_site_images_hold_what_their_recipes_name() {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/images");
    // The QEMU tier's image and ramdisk only when its deploy test runs.
    let vm = std::env::var("TUNDRA_VM_DEPLOY").as_deref() != Ok("0");
    let mut recipes = vec![tundra_lab::image::lab_recipe(), tundra_lab::image::platform_recipe()];
    if vm {
        recipes.push(tundra_lab::image::bootable_recipe());
    }
    for recipe in recipes {
        let start = Instant::now();
        let built = tundra_lab::image::build(&recipe, &cache).unwrap();
        eprintln!(
            "{} ({}) in {:.1?}",
            built.raw.display(),
            if built.cached { "cached" } else { "built" },
            start.elapsed()
        );
        let out = std::process::Command::new("sfdisk").arg("--json").arg(&built.raw).output().unwrap();
        assert!(out.status.success(), "sfdisk --json: {}", String::from_utf8_lossy(&out.stderr));
        let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let parts = table["partitiontable"]["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 1, "{table}");
        assert_eq!(table["partitiontable"]["label"], "gpt", "{table}");
        assert_eq!(parts[0]["start"], 2048, "{table}");
        assert_eq!(parts[0]["type"], tundra_lab::image::ROOT_TYPE, "{table}");
        assert_eq!(parts[0]["name"], "root", "{table}");
        let fs = format!("{}?offset={}", built.raw.display(), 2048 * 512);
        let debugfs = |request: &str| {
            let o = std::process::Command::new("debugfs").args(["-R", request, &fs]).output().unwrap();
            assert!(o.status.success(), "debugfs -R {request:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let status = debugfs("cat /var/lib/dpkg/status");
        let installed: Vec<&str> = status
            .split("\n\n")
            .filter(|p| p.lines().any(|l| l == "Status: install ok installed"))
            .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("Package: ")))
            .collect();
        for p in recipe.packages().unwrap() {
            assert!(installed.contains(&p.as_str()), "{}: {p} is not installed ({} are)", built.name, installed.len());
        }
        let local = debugfs("ls /usr/local/lib/python3.11/dist-packages");
        for pin in recipe.pypi() {
            let (name, version) = pin.split_once("==").unwrap();
            // A wheel's metadata directory spells the name with `_` for `-`
            // (dask-jobqueue installs dask_jobqueue-0.8.2.dist-info).
            let info = format!("{}-{version}.dist-info", name.replace('-', "_"));
            assert!(local.contains(&info), "{}: {pin} is not installed: {local}", built.name);
        }
        let cloud = debugfs("cat /etc/cloud/cloud.cfg.d/90-tundra.cfg");
        assert!(cloud.contains("datasource_list: [ ConfigDrive, None ]"), "{cloud}");
        let wants = debugfs("ls /etc/systemd/system/multi-user.target.wants");
        assert!(wants.contains("ssh.service"), "{}: sshd starts at boot: {wants}", built.name);
        for unit in recipe.disabled() {
            assert!(!wants.contains(&unit), "{}: {unit} starts at boot: {wants}", built.name);
        }
        let ssh = debugfs("ls /etc/ssh");
        assert!(ssh.contains("sshd_config") && !ssh.contains("ssh_host_"), "{}: {ssh}", built.name);
        if recipe.bootable {
            let conf = debugfs("cat /boot/extlinux/extlinux.conf");
            let kernel = conf.lines().find_map(|l| l.trim().strip_prefix("LINUX ")).unwrap_or_else(|| panic!("{conf}"));
            assert!(debugfs(&format!("stat {kernel}")).contains("Type: regular"), "{kernel} is in the image");
        }
    }
    if !vm {
        return;
    }
    let ramdisk = tundra_lab::ramdisk::build(&bin("tundra-agent"), &cache).unwrap();
    let kernel = std::fs::read(&ramdisk.kernel).unwrap();
    assert_eq!(&kernel[0x202..0x206], b"HdrS", "{} is a Linux kernel", ramdisk.kernel.display());
    let agent = tundra_lab::ramdisk::agent_of(&std::fs::read(&ramdisk.initramfs).unwrap())
        .expect("the agent is in the initramfs");
    assert_eq!(&agent[..4], b"\x7fELF");
}

const DEPLOY_SITE: &str = r#"
[[machines]]
name = "vm-2"
bmc = "ipmi"
vm = true
memory_mib = 1024
disks = [{ name = "vda", size_mib = 2048 }]
"#;

/// The staging tier's whole life cycle on a QEMU machine, with a real
/// ramdisk (Debian's kernel + an initramfs running the agent) and a
/// bootable Debian image (kernel, extlinux), both built from Debian
/// packages: inspected (the agent reads the VM's real hardware), cleaned,
/// deployed as a node, then booted from its disk by SeaBIOS → extlinux →
/// the image's kernel → systemd, where cloud-init finds the config drive
/// by its label `config-2` — and we log in over SSH with the keypair's key.
/// About 4 minutes under TCG on 2 cores (plus the first image build);
/// `TUNDRA_VM_DEPLOY=0` skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_machine_is_deployed_and_boots_its_image() {
    if std::env::var("TUNDRA_VM_DEPLOY").as_deref() == Ok("0") {
        eprintln!("skipped: TUNDRA_VM_DEPLOY=0");
        return;
    }
    let started = Instant::now();
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/images");
    let recipe = tundra_lab::image::bootable_recipe();
    let image = tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || tundra_lab::image::build(&recipe, &cache).unwrap()
    })
    .await
    .unwrap();
    let ramdisk = tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || tundra_lab::ramdisk::build(&bin("tundra-agent"), &cache).unwrap()
    })
    .await
    .unwrap();
    eprintln!(
        "image {} and ramdisk ({}) ready in {:.1?}",
        image.raw.display(),
        ramdisk.kernel_package,
        started.elapsed()
    );

    let dir = tempfile::Builder::new().prefix("tundra-lab-vmdeploy-").tempdir().unwrap();
    let lab = lab(DEPLOY_SITE, dir.path()).await;
    let mut cfg = config(&lab, dir.path(), "127.0.0.1:0", 0);
    let assets = dir.path().join("boot-vm");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::copy(&ramdisk.kernel, assets.join("vmlinuz")).unwrap();
    std::fs::copy(&ramdisk.initramfs, assets.join("initramfs")).unwrap();
    cfg.boot_assets_dir = Some(assets);
    cfg.agent_kernel_args = "console=ttyS0,115200".into();
    let net = lab.provisioning.server_ip.rsplit_once('.').unwrap().0.to_string();
    cfg.provisioning_networks[0].node_pool = Some(format!("{net}.200-{net}.249"));
    let server = tundrad::start(cfg).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));
    let m = &lab.machines[0];
    let serial = m.firmware.vm.as_ref().unwrap().serial.clone();
    let tail = || {
        let t = std::fs::read_to_string(&serial).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    let id = api.enroll(m).await;
    api.action(&id, "manage", json!({})).await;
    api.wait_state(&id, "manageable", Duration::from_secs(120), Some(m)).await;
    api.action(&id, "inspect", json!({})).await;
    let inspected = api.wait_state(&id, "manageable", Duration::from_secs(600), Some(m)).await;
    eprintln!("inspected in the VM at {:.1?}", started.elapsed());
    let p = &inspected["properties"];
    let disks = p["disks"].as_array().cloned().unwrap_or_default();
    assert!(
        disks.iter().any(|d| d["name"] == "vda" && d["size_bytes"] == 2048u64 << 20),
        "the agent saw the VM's real virtio disk: {p}\n{}",
        tail()
    );
    // The VM's real RAM, as its kernel reports it (less what firmware keeps).
    let mem = p["memory_mib"].as_u64().unwrap_or(0);
    assert!((768..=1024).contains(&mem), "the VM's memory as the agent read it: {p}");
    assert!(tail().contains("tundra ramdisk: kernel"), "the ramdisk ran: {}", tail());
    api.action(&id, "provide", json!({})).await;
    api.wait_state(&id, "available", Duration::from_secs(600), Some(m)).await;
    eprintln!("cleaned at {:.1?}", started.elapsed());

    // A node: project, flavor, keypair, the bootable image.
    let project =
        api.ok("POST", "/v1/projects", Some(json!({"name": "staging"}))).await["id"].as_str().unwrap().to_string();
    let flavor = api.ok("POST", "/v1/flavors", Some(json!({"name": "vm", "resource_class": "baremetal"}))).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = dir.path().join("id_ed25519");
    let kg = std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status();
    assert!(kg.unwrap().success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let keypair = api
        .ok("POST", "/v1/keypairs", Some(json!({"project_id": project, "name": "me", "public_key": public.trim()})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image_id = api.image("debian-12-bootable", &std::fs::read(&image.raw).unwrap()).await;
    let node = api
        .ok(
            "POST",
            "/v1/nodes",
            Some(json!({"project_id": project, "name": "staged", "flavor_id": flavor, "image_id": image_id, "keypair_id": keypair})),
        )
        .await;
    let nid = node["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let node = loop {
        let n = api.ok("GET", &format!("/v1/nodes/{nid}"), None).await;
        if n["status"] == "active" {
            break n;
        }
        assert!(n["status"] != "error", "the node failed: {n}\n{}", tail());
        assert!(start.elapsed() < Duration::from_secs(900), "not active after 15 minutes: {n}\n{}", tail());
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!("deployed at {:.1?}", started.elapsed());

    // Its own kernel boots it; cloud-init found config-2 by label.
    let ip = node["addresses"][0]["address"].as_str().unwrap_or_else(|| panic!("no address: {node}")).to_string();
    let ssh = |cmd: &str| {
        std::process::Command::new("ssh")
            .args(tundra_lab::ssh_options())
            .args(["-o", "BatchMode=yes", "-i"])
            .arg(&key)
            .arg(format!("debian@{ip}"))
            .arg(cmd)
            .output()
            .unwrap()
    };
    let start = Instant::now();
    let out = loop {
        let o = ssh("cloud-init status --wait >/dev/null; hostname; sudo blkid -L config-2; cat /proc/cmdline; \
                     test -e /boot/vmlinuz-$(uname -r) && echo own-kernel; cat /run/cloud-init/status.json");
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "no SSH into the deployed VM: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            tail()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    eprintln!("logged in at {:.1?}:\n{out}", started.elapsed());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "staged", "the hostname from meta_data.json");
    assert!(lines[1].starts_with("/dev/vda"), "config-2 is a partition of the deployed disk: {}", lines[1]);
    // extlinux booted the image's own kernel with the image's command line,
    // not the ramdisk tundrad serves.
    assert!(lines[2].contains("root=LABEL=root") && !lines[2].contains("tundra.token"), "{}", lines[2]);
    assert_eq!(lines[3], "own-kernel", "the running kernel is one of the image's");
    assert!(
        out.contains(&format!("DataSourceConfigDrive [net,ver=2][source={}]", lines[1])),
        "cloud-init read config-2 by label: {out}"
    );
    server.stop().await.unwrap();
    lab.stop().await;
}
