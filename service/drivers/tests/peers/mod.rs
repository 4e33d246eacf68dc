//! Real BMC peers for tests: sushy-tools' Redfish emulator and an IPMI
//! lanplus BMC on pyghmi (`scripts/peers/ipmi-bmc.py`), each on a free
//! loopback port, stopped when dropped. Shared by the driver tests and the
//! service's API tests (included by path), and fake-switches for the switch tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn venv() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    assert!(p.join("python").exists(), "no {}: run scripts/setup.sh", p.display());
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed on drop.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub const SYSTEM: &str = "7d3a4c2e-5b1f-4f0a-9e2d-1c3b5a7d9e01";

/// sushy-emulator --fake with one system and basic auth (admin / password).
pub fn sushy(dir: &Path) -> (Peer, String) {
    let port = free_port();
    let hash = Command::new(venv().join("python"))
        .args(["-c", "import bcrypt; print(bcrypt.hashpw(b'password', bcrypt.gensalt(4)).decode())"])
        .output()
        .unwrap();
    std::fs::write(dir.join("htpasswd"), format!("admin:{}", String::from_utf8_lossy(&hash.stdout).trim())).unwrap();
    std::fs::write(
        dir.join("sushy.conf"),
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{SYSTEM}', 'name': 'node-1', 'power_state': 'Off', 'nics': [{{'mac': '52:54:00:00:00:01'}}]}}]\n",
            dir.join("state").display(),
            dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let child = Command::new(venv().join("sushy-emulator"))
        .args(["--fake", "--config"])
        .arg(dir.join("sushy.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sushy.log")).unwrap())
        .spawn()
        .unwrap();
    let peer = Peer(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sushy-emulator did not start: {}",
            std::fs::read_to_string(dir.join("sushy.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (peer, format!("http://127.0.0.1:{port}"))
}

pub fn ipmi_bmc(dir: &Path, port: u16) -> Peer {
    let mut c = Command::new(venv().join("python"));
    c.arg(script("ipmi-bmc.py"))
        .args(["--port", &port.to_string(), "--state"])
        .arg(dir.join("bmc.json"))
        .env("BMC_PASSWORD", "password");
    let (peer, line) = started(c);
    assert_eq!(line.trim(), "ready");
    peer
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers").join(name)
}

/// Start a peer script and read the line it prints once it listens.
fn started(mut c: Command) -> (Peer, String) {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Peer(child), line)
}

/// Emulated switches (fake-switches, `scripts/peers/fake-switches.py`): one
/// process for all, each `MODEL:NAME` on its own free loopback port; login
/// and enable password `password`. Returns the peer and NAME → port.
pub fn fake_switches(specs: &[&str]) -> (Peer, std::collections::HashMap<String, u16>) {
    fake_switches_with(specs, None)
}

/// [`fake_switches`] appending every SSH session's open and close to
/// `session_log` (JSON lines: switch, event, peer, at).
pub fn fake_switches_with(
    specs: &[&str],
    session_log: Option<&Path>,
) -> (Peer, std::collections::HashMap<String, u16>) {
    let mut c = Command::new(venv().join("python"));
    c.arg(script("fake-switches.py")).args(["--user", "admin", "--password-env", "SWITCH_PASSWORD"]);
    if let Some(log) = session_log {
        c.arg("--session-log").arg(log);
    }
    c.args(specs).env("SWITCH_PASSWORD", "password");
    let (peer, line) = started(c);
    let ports = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("fake-switches said {line:?}: {e}"));
    (peer, ports)
}

/// A single-node Ceph cluster (`scripts/peers/ceph.sh`: mon, mgr, an OSD
/// on memstore, an MDS and a `ceph fs volume` named `tundra`), all under
/// its own temp dir; stopped and removed when dropped.
pub struct Ceph {
    pub dir: tempfile::TempDir,
    /// `HOST:PORT` of its monitor.
    pub monitor: String,
    /// client.admin's key.
    pub key: String,
    pub conf: PathBuf,
}

impl Ceph {
    /// A cluster whose monitor listens on `address` (a free port of it).
    pub fn start(address: &str) -> Ceph {
        let dir = tempfile::Builder::new().prefix("tundra-ceph-").tempdir().unwrap();
        let port = free_port();
        let out = Command::new(script("ceph.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(format!("{address}:{port}"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/peers/ceph.sh (apt: ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common)");
        assert!(out.status.success(), "ceph.sh start failed; see {}", dir.path().join("log").display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ceph.sh prints JSON");
        Ceph {
            monitor: v["monitors"][0].as_str().unwrap().to_string(),
            key: v["key"].as_str().unwrap().to_string(),
            conf: PathBuf::from(v["conf"].as_str().unwrap()),
            dir,
        }
    }

    /// `ceph ARGS --format json` as client.admin; its JSON answer.
    pub fn cli(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out =
            Command::new("ceph").arg("--conf").arg(&self.conf).args(["--format", "json"]).args(args).output().unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        // Some answers are plain text whatever the format (`getpath`).
        Ok(serde_json::from_str(text.trim()).unwrap_or_else(|_| serde_json::Value::String(text.trim().to_string())))
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        let _ = Command::new(script("ceph.sh")).arg("stop").arg(self.dir.path()).status();
    }
}

/// A file server (`scripts/peers/nas.sh`): NFS-Ganesha and GlusterFS in a
/// network and mount namespace of their own, managed over SSH (key login,
/// host key pinned) as tundrad manages a site's; stopped when dropped.
pub struct Nas {
    pub dir: tempfile::TempDir,
    pub name: String,
    /// The server's address (sshd on port 22, NFS on 2049, glusterd on 24007).
    pub address: String,
    /// This side of the veth: the address a client here comes from.
    pub client_address: String,
    pub host_key: String,
    /// The private key (OpenSSH format) that logs in as root.
    pub key: String,
    pub exports_file: String,
    pub pid_file: String,
    pub nfs_root: String,
    pub gluster_root: String,
}

impl Nas {
    pub fn start() -> Nas {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("tn{pid}x{n}");
        // A /30 of 198.19.0.0/16 no interface here uses yet.
        let used = String::from_utf8(Command::new("ip").args(["-4", "-o", "addr"]).output().unwrap().stdout).unwrap();
        let net = (0..16384u32)
            .map(|k| (pid.wrapping_mul(7) + n * 13 + k) % 16384)
            .map(|k| format!("198.19.{}.{}", k / 64, (k % 64) * 4))
            .find(|net| {
                let base = net.rsplit_once('.').unwrap().0;
                let last: u32 = net.rsplit_once('.').unwrap().1.parse().unwrap();
                !(1..3).any(|i| used.contains(&format!(" {base}.{}/", last + i)))
            })
            .unwrap();
        let dir = tempfile::Builder::new().prefix("tundra-nas-").tempdir().unwrap();
        let out = Command::new(script("nas.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(&name)
            .arg(&net)
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/peers/nas.sh (apt: nfs-ganesha nfs-ganesha-vfs glusterfs-server)");
        assert!(out.status.success(), "nas.sh start failed; see {}", dir.path().join("log").display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nas.sh prints JSON");
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        Nas {
            name,
            address: s("address"),
            client_address: s("client_address"),
            host_key: s("host_key"),
            key: std::fs::read_to_string(s("key")).unwrap(),
            exports_file: s("exports_file"),
            pid_file: s("pid_file"),
            nfs_root: s("nfs_root"),
            gluster_root: s("gluster_root"),
            dir,
        }
    }

    /// Run a shell command on the server (over SSH, as tundrad does); its output.
    pub fn ssh(&self, command: &str) -> Result<String, String> {
        let out = Command::new("ssh")
            .arg("-i")
            .arg(self.dir.path().join("tundra"))
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error"])
            .arg(format!("root@{}", self.address))
            .arg(command)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Nas {
    fn drop(&mut self) {
        let _ = Command::new(script("nas.sh")).arg("stop").arg(self.dir.path()).arg(&self.name).status();
    }
}
