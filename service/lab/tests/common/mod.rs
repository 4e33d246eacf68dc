//! What the lab tests share: a lab from a site file, tundrad's boot assets
//! (the real `tundra-agent` binary as the initrd), tundrad's configuration
//! for the lab's provisioning network, and a small API client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tundra_lab::{Lab, LabMachine};

/// A binary of this workspace, built next to the test (scripts/test.sh builds them first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --bins` (scripts/test.sh does)", p.display());
    p
}

pub fn venv() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    assert!(p.join("python").exists(), "no {}: run scripts/setup.sh", p.display());
    p
}

pub async fn lab(site: &str, dir: &Path) -> Lab {
    let site = tundra_lab::site::Site::parse(site).unwrap();
    Lab::start(&site, &tundra_lab::Options { dir: dir.join("lab"), venv: venv() }).await.unwrap()
}

/// tundrad's boot assets: the agent binary is the lab's initrd; the lab has no kernel of its own.
pub fn boot_assets(dir: &Path) -> PathBuf {
    let a = dir.join("boot");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::copy(bin("tundra-agent"), a.join("initramfs")).unwrap();
    std::fs::write(a.join("vmlinuz"), b"the lab boots no kernel of its own\n").unwrap();
    a
}

pub const RULES: &str = r#"[
  {"name": "gpu", "conditions": [{"op": "any", "field": "/gpus", "key": "vendor", "value": "nvidia"}],
   "actions": [{"action": "set_resource_class", "value": "baremetal.gpu"}, {"action": "add_trait", "value": "gpu"}]},
  {"name": "big memory", "conditions": [{"op": "ge", "field": "/memory_mib", "value": 32768}],
   "actions": [{"action": "add_trait", "value": "bigmem"}]},
  {"name": "cabling", "actions": [
     {"action": "set_switch_port_from_lldp", "translate": [["^TenGigabitEthernet (.*)$", "Te$1"]]},
     {"action": "set_physical_network", "switch": "^lab-leaf-", "physical_network": "provisioning"}]}
]"#;

/// tundrad's config for this lab: DHCP and boot HTTP on the lab's host link.
pub fn config(lab: &Lab, dir: &Path, listen: &str, http_port: u16) -> tundrad::config::Config {
    let rules = dir.join("rules.json");
    std::fs::write(&rules, RULES).unwrap();
    tundrad::config::Config {
        listen: listen.parse().unwrap(),
        data_dir: dir.join("data"),
        boot_assets_dir: Some(boot_assets(dir)),
        inspection_rules_file: Some(rules),
        reconcile_interval: "2s".into(),
        agent_lldp_wait: "3s".into(),
        provisioning_networks: vec![tundrad::config::ProvisioningNetwork {
            interface: lab.provisioning.interface.clone(),
            address: lab.provisioning.address.clone(),
            pool: lab.provisioning.pool.clone(),
            router: None,
            dns: vec![],
            discovery: false,
            tftp_root: dir.join("tftp"),
            http_port,
            boot_url: None,
            node_pool: None,
            mtu: 1500,
            lease_time: "1h".into(),
            dhcp_port: 67,
            tftp_port: 0,
        }],
        ..Default::default()
    }
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str, data_dir: &Path) -> Api {
        let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap().trim().to_string();
        Api { http: reqwest::Client::new(), base: base.into(), token }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    /// Enroll a lab machine with only its BMC and MACs.
    pub async fn enroll(&self, m: &LabMachine) -> String {
        let b = &m.bmc;
        let mut bmc = json!({"driver": b.driver, "address": b.address, "username": b.username});
        if let Some(s) = &b.system {
            bmc["system"] = json!(s);
        }
        let ifs: Vec<Value> =
            m.spec.macs.iter().enumerate().map(|(j, mac)| json!({"mac": mac, "pxe": j == 0})).collect();
        let v = self
            .ok(
                "POST",
                "/v1/machines",
                Some(json!({"name": m.spec.name, "bmc": bmc, "bmc_password": b.password, "interfaces": ifs})),
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn action(&self, id: &str, action: &str, extra: Value) -> Value {
        let mut body = json!({"action": action});
        if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        self.ok("POST", &format!("/v1/machines/{id}/actions"), Some(body)).await
    }

    /// Wait until the machine is in `want` with no operation; a failed state ends the wait with its error.
    pub async fn wait_state(&self, id: &str, want: &str, timeout: Duration, lab: Option<&LabMachine>) -> Value {
        let start = Instant::now();
        loop {
            let (s, m) = self.call("GET", &format!("/v1/machines/{id}"), None).await;
            if s == 200 {
                let st = m["provision_state"].as_str().unwrap_or_default();
                if st == want && m["operation_id"].is_null() {
                    return m;
                }
                let console =
                    || lab.map(|l| std::fs::read_to_string(&l.firmware.log).unwrap_or_default()).unwrap_or_default();
                let failed = st.ends_with("failed") || st == "error" || (st == "enroll" && !m["last_error"].is_null());
                assert!(!failed, "machine {} is {st}: {}\nconsole:\n{}", m["name"], m["last_error"], console());
                assert!(
                    start.elapsed() < timeout,
                    "machine {} still {st} after {timeout:?}, not {want}; firmware: {}\nconsole:\n{}",
                    m["name"],
                    lab.map(|l| l.firmware.status()).unwrap_or_default(),
                    console()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Upload a raw image (public); returns its ID.
    pub async fn image(&self, name: &str, bytes: &[u8]) -> String {
        let v = self
            .ok("POST", "/v1/images", Some(json!({"name": name, "disk_format": "raw", "sha256": sha256(bytes)})))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let r = self
            .http
            .put(format!("{}/v1/images/{id}/file", self.base))
            .bearer_auth(&self.token)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload: {}", r.text().await.unwrap());
        id
    }
}

pub fn sha256(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// sha256 of the first `len` bytes of a file.
pub fn file_prefix_sha256(path: &Path, len: usize) -> String {
    let b = std::fs::read(path).unwrap();
    sha256(&b[..len])
}

pub fn all_zero(path: &Path) -> bool {
    std::fs::read(path).unwrap().iter().all(|b| *b == 0)
}

/// Pseudo-random bytes (a deterministic stand-in for a disk image).
pub fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
