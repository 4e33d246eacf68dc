//! The lab fabric: network namespaces, veth pairs and a plain Linux bridge,
//! made with `ip` (iproute2). Every name starts with the lab's prefix
//! `tl<id>`, and a registry file per running lab (its pid and its helper
//! processes) lets the next start remove what a crashed lab left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Run `ip ARGS`; a failure says which command and why.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2; the lab needs root)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip_out(args: &[&str]) -> String {
    Command::new("ip").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Where running labs register themselves.
pub fn registry() -> PathBuf {
    std::env::var_os("TUNDRA_LAB_REGISTRY").map(PathBuf::from).unwrap_or_else(|| "/run/tundra-lab".into())
}

/// What a lab records about itself while it runs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    pub pid: u32,
    /// Helper processes (BMC emulators) and the directory they run in.
    pub helpers: Vec<u32>,
    pub dir: PathBuf,
}

pub fn register(id: &str, r: &Registration) -> anyhow::Result<()> {
    let dir = registry();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("{id}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(r)?)?;
    std::fs::rename(&tmp, dir.join(format!("{id}.json")))?;
    Ok(())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` still runs a program started in `dir` (pids are reused).
fn ours(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
        .unwrap_or(false)
}

fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(std::process::Stdio::null()).status();
}

/// Remove everything of lab `id`: processes in its namespaces, the
/// namespaces (and with them their veths and bridge), the host-side link,
/// its helpers, its registration.
pub fn teardown(id: &str, helpers: &[u32], dir: &Path) {
    let prefix = format!("tl{id}-");
    for ns in ip_out(&["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.starts_with(&prefix) {
            for pid in ip_out(&["netns", "pids", ns]).split_whitespace().filter_map(|p| p.parse().ok()) {
                kill(pid);
            }
            let _ = ip(&["netns", "delete", ns]);
        }
    }
    let _ = ip(&["link", "delete", &host_link(id)]);
    unmount_under(dir);
    // The cgroups its machines' OSes had (their processes are gone now).
    for m in std::fs::read_dir(dir.join("machines")).into_iter().flatten().flatten() {
        crate::cgroups::remove_recorded(&m.path().join("cgroups"));
        let _ = std::fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(m.file_name()));
    }
    for &pid in helpers {
        if alive(pid) && ours(pid, dir) {
            kill(pid);
        }
    }
    let _ = std::fs::remove_file(registry().join(format!("{id}.json")));
}

/// Where filesystems are mounted, as this process sees them.
pub(crate) fn mount_points() -> Vec<String> {
    crate::cgroups::mountinfo("self").into_iter().map(|m| m.point).collect()
}

/// Unmount what the lab mounted under its dir (the roots of OSes its
/// machines booted from disk). Lazily: their processes were just killed.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = mount_points().into_iter().filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in &points {
        let _ = Command::new("umount").args(["-l", p]).stderr(std::process::Stdio::null()).status();
    }
}

/// Tear down labs whose process is gone (a crashed or killed run).
/// Returns the IDs removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(registry()) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else { continue };
        let Ok(r) = std::fs::read(e.path())
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Registration>(&b).map_err(|_| ()))
        else {
            let _ = std::fs::remove_file(e.path());
            continue;
        };
        if !alive(r.pid) {
            teardown(id, &r.helpers, &r.dir);
            removed.push(id.to_string());
        }
    }
    removed
}

pub fn host_link(id: &str) -> String {
    format!("tl{id}h")
}

pub fn fabric_ns(id: &str) -> String {
    format!("tl{id}-fab")
}

pub fn machine_ns(id: &str, k: usize) -> String {
    format!("tl{id}-m{k}")
}

/// Whether some route of this host already covers `a.b.c.0/24`.
pub fn subnet_in_use(net: [u8; 3]) -> bool {
    let prefix = format!("{}.{}.{}.", net[0], net[1], net[2]);
    ip_out(&["-4", "route", "show", "table", "all"]).contains(&prefix) || ip_out(&["-4", "addr"]).contains(&prefix)
}

/// Build the fabric: a namespace with the provisioning network's bridge
/// `bridge` (`br<VLAN>`); the host's link `tl<id>h` (tundrad's side,
/// `host_ip/24`) cabled to it; per machine a namespace with `eth0..` (the
/// site's MACs) cabled to the bridge — or, for a VM, tap devices `mKtJ` on
/// the bridge for QEMU.
pub fn build(id: &str, host_ip: [u8; 4], machines: &[(Vec<String>, bool)], bridge: &str) -> anyhow::Result<()> {
    let fab = fabric_ns(id);
    ip(&["netns", "add", &fab])?;
    ip(&["-n", &fab, "link", "set", "lo", "up"])?;
    ip(&["-n", &fab, "link", "add", bridge, "type", "bridge", "forward_delay", "0"])?;
    ip(&["-n", &fab, "link", "set", bridge, "up"])?;
    let host = host_link(id);
    ip(&["link", "add", &host, "type", "veth", "peer", "name", "up0", "netns", &fab])?;
    ip(&["-n", &fab, "link", "set", "up0", "master", bridge, "up"])?;
    let addr = format!("{}.{}.{}.{}/24", host_ip[0], host_ip[1], host_ip[2], host_ip[3]);
    ip(&["addr", "add", &addr, "dev", &host])?;
    ip(&["link", "set", &host, "up"])?;
    for (k, (macs, vm)) in machines.iter().enumerate() {
        if *vm {
            for j in 0..macs.len() {
                let tap = format!("m{k}t{j}");
                ip(&["-n", &fab, "tuntap", "add", &tap, "mode", "tap"])?;
                ip(&["-n", &fab, "link", "set", &tap, "master", bridge, "up"])?;
            }
            continue;
        }
        let ns = machine_ns(id, k);
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        for (j, mac) in macs.iter().enumerate() {
            let port = format!("m{k}p{j}");
            let nic = format!("eth{j}");
            ip(&["-n", &fab, "link", "add", &port, "type", "veth", "peer", "name", &nic, "netns", &ns])?;
            ip(&["-n", &ns, "link", "set", &nic, "address", mac])?;
            ip(&["-n", &ns, "link", "set", &nic, "up"])?;
            ip(&["-n", &fab, "link", "set", &port, "master", bridge, "up"])?;
        }
    }
    Ok(())
}

/// Start lldpd (Debian's) in the fabric namespace as the lab switch: it
/// sends LLDP every second on every machine port, with the site's system
/// name and per-port IDs (`ports`: (bridge port, port ID, description)).
pub fn start_lldpd(
    id: &str,
    dir: &Path,
    switch: &str,
    ports: &[(String, String, String)],
) -> anyhow::Result<std::process::Child> {
    let mut conf = format!("configure system hostname {switch}\nconfigure lldp tx-interval 1\n");
    for (port, port_id, descr) in ports {
        conf.push_str(&format!(
            "configure ports {port} lldp portidsubtype local \"{port_id}\" description \"{descr}\"\n"
        ));
    }
    let conf_file = dir.join("lldpd.conf");
    std::fs::write(&conf_file, conf)?;
    let log = dir.join("lldpd.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &fabric_ns(id), "lldpd", "-d", "-u"])
        .arg(dir.join("lldpd.sock"))
        .args(["-I", "m*p*", "-O"])
        .arg(&conf_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting lldpd (Debian's lldpd package; scripts/setup.sh installs it)")?;
    Ok(child)
}

/// What tundrad needs to program the lab switch over SSH.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SshSwitch {
    pub name: String,
    /// `A.B.C.2:22`, on the provisioning bridge of the fabric namespace.
    pub address: String,
    pub username: String,
    /// An OpenSSH private key tundrad logs in with (the file's contents go to tundrad).
    pub private_key_file: PathBuf,
    /// The host key's fingerprint, as `ssh-keygen -l` prints it.
    pub host_key: String,
    pub dialect: String,
    pub provisioning_vlan: u16,
}

/// sshd needs its privilege-separation directory; the lab makes it when
/// missing and removes what it made.
pub fn ensure_run_sshd() -> bool {
    let p = Path::new("/run/sshd");
    if p.exists() {
        return false;
    }
    std::fs::create_dir_all(p).is_ok()
}

/// Start OpenSSH in the fabric namespace as the lab switch's management
/// plane: listening on `addr` (put on the provisioning bridge), root login
/// by a key the lab makes, the host key the lab makes. Returns the child and
/// what tundrad needs.
///
/// `SetEnv SHLVL=1` keeps the switch's commands in a clean shell: Debian's
/// bash sources `~/.bashrc` for commands sshd runs unless it is a nested
/// shell, and whatever root's rc files do (a pyenv rehash waiting on a stale
/// lock, seen here) would otherwise be part of every port move.
pub fn start_sshd(
    id: &str,
    dir: &Path,
    switch: &str,
    bridge: &str,
    addr: [u8; 4],
    provisioning_vlan: u16,
) -> anyhow::Result<(std::process::Child, SshSwitch)> {
    let fab = fabric_ns(id);
    let a = format!("{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]);
    ip(&["-n", &fab, "addr", "add", &format!("{a}/24"), "dev", bridge])?;
    let keygen = |name: &str| -> anyhow::Result<()> {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "tundra-lab", "-f"])
            .arg(dir.join(name))
            .output()
            .context("running ssh-keygen (openssh-client; scripts/setup.sh installs it)")?;
        if !out.status.success() {
            bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    };
    keygen("host_key")?;
    keygen("tundra_key")?;
    std::fs::copy(dir.join("tundra_key.pub"), dir.join("authorized_keys"))?;
    let fp = Command::new("ssh-keygen").arg("-l").arg("-f").arg(dir.join("host_key.pub")).output()?;
    let host_key = String::from_utf8_lossy(&fp.stdout).split_whitespace().nth(1).unwrap_or_default().to_string();
    if !host_key.starts_with("SHA256:") {
        bail!("ssh-keygen -l did not print a SHA256 fingerprint: {}", String::from_utf8_lossy(&fp.stdout));
    }
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "ListenAddress {a}\nPort 22\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile none\n\
             MaxStartups 100\nSetEnv SHLVL=1\n",
            dir.join("host_key").display(),
            dir.join("authorized_keys").display()
        ),
    )?;
    let child = Command::new("ip")
        .args(["netns", "exec", &fab, "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log"))?)
        .spawn()
        .context("starting sshd (openssh-server; scripts/setup.sh installs it)")?;
    Ok((
        child,
        SshSwitch {
            name: switch.to_string(),
            address: format!("{a}:22"),
            username: "root".into(),
            private_key_file: dir.join("tundra_key"),
            host_key,
            dialect: "linux_bridge".into(),
            provisioning_vlan,
        },
    ))
}
