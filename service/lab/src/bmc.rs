//! The lab's BMCs: one sushy-tools Redfish emulator (`--fake`, no libvirt)
//! for every Redfish machine, telling the lab about power changes through its
//! external notifier; and one pyghmi process serving an IPMI lanplus BMC per
//! IPMI machine, each keeping power, boot device and a boot counter in a state
//! file the lab's firmware watches. Both listen on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The IPMI BMC program (also used by the driver tests).
const IPMI_BMC_PY: &str = include_str!("../../../scripts/peers/ipmi-bmc.py");

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Redfish system for sushy.
pub struct RedfishSystem {
    pub uuid: String,
    pub name: String,
    pub macs: Vec<String>,
}

fn wait_port(port: u16, what: &str, log: &Path, child: &mut Child) -> anyhow::Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{what} exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{what} did not listen within 60 s: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Start sushy-emulator; returns the child and its base URL.
pub fn start_sushy(
    venv: &Path,
    dir: &Path,
    systems: &[RedfishSystem],
    password: &str,
    notify_url: &str,
) -> anyhow::Result<(Child, String)> {
    let port = free_port()?;
    // bcrypt with 4 rounds: the emulator checks it on every request.
    let hash = Command::new(venv.join("python"))
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
            password,
        ])
        .output()
        .context("running the venv's python for bcrypt")?;
    if !hash.status.success() {
        bail!("hashing the BMC password: {}", String::from_utf8_lossy(&hash.stderr));
    }
    std::fs::write(dir.join("htpasswd"), format!("admin:{}\n", String::from_utf8_lossy(&hash.stdout).trim()))?;
    let fake: Vec<String> = systems
        .iter()
        .map(|s| {
            let nics: Vec<String> = s.macs.iter().map(|m| format!("{{'mac': '{m}'}}")).collect();
            format!(
                "{{'uuid': '{}', 'name': '{}', 'power_state': 'Off', 'external_notifier': True, 'nics': [{}]}}",
                s.uuid,
                s.name,
                nics.join(", ")
            )
        })
        .collect();
    let conf = dir.join("sushy.conf");
    std::fs::write(
        &conf,
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_STATE_DIR = '{state}'\nSUSHY_EMULATOR_AUTH_FILE = '{auth}'\n\
             EXTERNAL_NOTIFICATION_URL = '{notify_url}'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{systems}]\n",
            state = dir.join("sushy-state").display(),
            auth = dir.join("htpasswd").display(),
            systems = fake.join(",\n    "),
        ),
    )?;
    let log = dir.join("sushy.log");
    let mut child = Command::new(venv.join("sushy-emulator"))
        .args(["--fake", "--config"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}/sushy-emulator (run scripts/setup.sh)", venv.display()))?;
    wait_port(port, "sushy-emulator", &log, &mut child)?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// One IPMI BMC: its port and state file.
pub struct IpmiBmc {
    pub port: u16,
    pub state: PathBuf,
}

/// BMCs per pyghmi process: one Python loop answering many BMCs becomes the
/// bottleneck a real site (one BMC per machine) does not have.
const BMCS_PER_PROCESS: usize = 6;

/// Start pyghmi processes serving `n` BMCs.
pub fn start_ipmi(venv: &Path, dir: &Path, n: usize, password: &str) -> anyhow::Result<(Vec<Child>, Vec<IpmiBmc>)> {
    let script = dir.join("ipmi-bmc.py");
    std::fs::write(&script, IPMI_BMC_PY)?;
    let mut bmcs = Vec::new();
    for k in 0..n {
        let state = dir.join(format!("ipmi-{k}.json"));
        std::fs::write(&state, r#"{"power": "off", "bootdev": "default", "boots": 0}"#)?;
        bmcs.push(IpmiBmc { port: free_udp_port()?, state });
    }
    let mut children = Vec::new();
    for (i, chunk) in bmcs.chunks(BMCS_PER_PROCESS).enumerate() {
        match start_ipmi_process(venv, dir, &script, i, chunk, password) {
            Ok(c) => children.push(c),
            Err(e) => {
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e);
            }
        }
    }
    Ok((children, bmcs))
}

fn start_ipmi_process(
    venv: &Path,
    dir: &Path,
    script: &Path,
    i: usize,
    bmcs: &[IpmiBmc],
    password: &str,
) -> anyhow::Result<Child> {
    let list: Vec<serde_json::Value> =
        bmcs.iter().map(|b| serde_json::json!({"port": b.port, "state": b.state})).collect();
    let many = dir.join(format!("ipmi-bmcs-{i}.json"));
    std::fs::write(&many, serde_json::to_vec(&list)?)?;
    let log = dir.join(format!("ipmi-{i}.log"));
    let mut child = Command::new(venv.join("python"))
        .arg(script)
        .arg("--many")
        .arg(&many)
        .env("BMC_PASSWORD", password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {} with {}/python", script.display(), venv.display()))?;
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        bail!("the IPMI BMCs did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    Ok(child)
}
