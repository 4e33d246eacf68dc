//! `kill -9 tundrad` in the middle of a deploy: the agent keeps writing (and
//! retries its calls), the restarted tundrad resumes the operation from the
//! store, and the deploy finishes with the right bytes on the disk. Needs root.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SITE: &str = r#"
[[machines]]
name = "rf-1"
bmc = "redfish"
disks = [{ name = "vda", size_mib = 320 }]
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Tundrad(Child);

impl Drop for Tundrad {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tundrad(config: &std::path::Path, log: &std::path::Path) -> Tundrad {
    let child = Command::new(bin("tundrad"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
        .spawn()
        .unwrap();
    Tundrad(child)
}

async fn wait_up(base: &str) {
    let start = Instant::now();
    while reqwest::get(format!("{base}/readyz")).await.map(|r| r.status().is_success()).ok() != Some(true) {
        assert!(start.elapsed() < Duration::from_secs(30), "tundrad did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_deploy_then_restart_and_the_deploy_finishes() {
    let dir = tempfile::Builder::new().prefix("tundra-lab-restart-").tempdir().unwrap();
    let lab = lab(SITE, dir.path()).await;
    let (api_port, boot_port) = (free_port(), free_port());
    let c = config(&lab, dir.path(), &format!("127.0.0.1:{api_port}"), boot_port);
    let n = &c.provisioning_networks[0];
    let toml = format!(
        "listen = \"127.0.0.1:{api_port}\"\ndata_dir = \"{data}\"\nboot_assets_dir = \"{assets}\"\n\
         reconcile_interval = \"2s\"\nagent_boot_timeout = \"20s\"\n\n[[provisioning_networks]]\n\
         interface = \"{i}\"\naddress = \"{a}\"\npool = \"{p}\"\nhttp_port = {boot_port}\ntftp_port = 0\ntftp_root = \"{t}\"\n",
        data = c.data_dir.display(),
        assets = c.boot_assets_dir.as_ref().unwrap().display(),
        i = n.interface,
        a = n.address,
        p = n.pool,
        t = n.tftp_root.display(),
    );
    let conf = dir.path().join("tundrad.toml");
    std::fs::write(&conf, toml).unwrap();
    let log = dir.path().join("tundrad.log");
    let base = format!("http://127.0.0.1:{api_port}");
    let mut server = tundrad(&conf, &log);
    wait_up(&base).await;
    let api = Api::new(&base, &c.data_dir);
    let m = &lab.machines[0];
    let id = api.enroll(m).await;
    let long = Duration::from_secs(180);
    for (action, want) in [("manage", "manageable"), ("inspect", "manageable"), ("provide", "available")] {
        api.action(&id, action, json!({})).await;
        api.wait_state(&id, want, long, Some(m)).await;
    }
    let img = image_bytes(256 << 20, 9);
    let image = api.image("big-os", &img).await;
    let op = api.action(&id, "deploy", json!({"image_id": image})).await;
    let op_id = op["id"].as_str().unwrap().to_string();

    // Kill tundrad the moment the agent starts writing.
    let start = Instant::now();
    loop {
        let console = std::fs::read_to_string(&m.firmware.log).unwrap_or_default();
        if console.contains("-deploying") {
            break;
        }
        assert!(start.elapsed() < long, "the agent never started the deploy:\n{console}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server = tundrad(&conf, &log);
    wait_up(&base).await;

    let got = api.wait_state(&id, "active", long, Some(m)).await;
    assert_eq!(got["power_state"], "on");
    assert_eq!(file_prefix_sha256(&m.disks[0].1, img.len()), sha256(&img), "the disk holds the image");
    let op = api.ok("GET", &format!("/v1/operations/{op_id}"), None).await;
    assert_eq!(op["state"], "succeeded", "{op}");
    assert_eq!(op["attempts"], 2, "the operation was resumed by the restarted tundrad: {op}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("resuming operation"), "{text}");
    drop(server);
    lab.stop().await;
}
