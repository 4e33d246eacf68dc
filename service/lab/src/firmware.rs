//! A lab machine's firmware. Told by its BMC that the machine powered on, it
//! boots the way the boot device says: from the network — a real DHCP
//! exchange on the machine's NIC (as iPXE: user class `iPXE`), the boot
//! script fetched over HTTP from the URL DHCP named, its kernel and initrd
//! fetched, then the initrd run as the machine's program with the script's
//! kernel arguments as `/proc/cmdline` (tundrad's initrd for the lab is the
//! `tundra-agent` binary) — or from its disk.
//!
//! Booting the disk runs the OS it holds, if any (`boot_disk`): the first
//! disk whose GPT has an ext4 root partition is mounted through a loop device
//! at `machines/NAME/os`, the files of the disk's `config-2` partition (the
//! config drive tundrad wrote) are copied into cloud-init's seed directory
//! `/var/lib/cloud/seed/config_drive` — cloud-init's ConfigDrive datasource
//! reads them there exactly as from the partition; a container sees no
//! block devices to find by label — and `systemd-nspawn --boot` runs its
//! systemd inside the machine's network namespace (entered with `nsenter
//! --net`, so it sees the machine's NICs and MACs behind the lab switch).
//! The OS's console goes to the machine's `console.log`. Every write the OS
//! makes lands in the disk file, so cleaning erases it.
//!
//! Powering off or resetting kills whatever runs in the machine's namespace
//! (the OS too) and unmounts its disk; the next disk boot resumes from it.
//!
//! Every network step runs inside the machine's namespace with busybox
//! `udhcpc`/`wget`, so tundrad sees exactly what a real machine would send.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::sync::mpsc;

/// What the BMC did to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Powered on or reset; boot from the network when `pxe`.
    On {
        pxe: bool,
    },
    Off,
}

/// A machine that is a real QEMU (TCG) VM: its NICs are taps on the lab
/// bridge, its firmware is SeaBIOS + the iPXE ROM of its virtio NIC.
pub struct Vm {
    /// Where scripts/setup.sh unpacked QEMU (`.venv/qemu`).
    pub qemu_root: PathBuf,
    pub fabric_ns: String,
    /// (tap, MAC) per NIC.
    pub taps: Vec<(String, String)>,
    pub disks: Vec<PathBuf>,
    /// The VM's serial console.
    pub serial: PathBuf,
    /// Its RAM: the machine's `memory_mib`, at most 4096 (TCG on a test host).
    pub memory_mib: u64,
}

/// A lab machine as its firmware sees it.
pub struct Machine {
    /// Set for a QEMU machine; otherwise the namespace firmware runs.
    pub vm: Option<Vm>,
    pub name: String,
    pub ns: String,
    /// The machine's hardware tree (`proc/`, `sys/`, `dev/`), the agent's `--root`.
    pub root: PathBuf,
    /// Where the firmware keeps what it fetched (the machine's "RAM").
    pub ram: PathBuf,
    pub log: PathBuf,
    /// The machine's disk files, in its order.
    pub disks: Vec<PathBuf>,
    /// Where the OS booted from disk has its root mounted.
    pub os: PathBuf,
    /// The disk file mounted there, while it is.
    pub os_disk: Mutex<Option<PathBuf>>,
    pub nics: usize,
    /// What the machine is doing, for people and tests: `off`, `dhcp`, `agent`, `disk`, …
    pub status: Mutex<String>,
    /// How many times it booted.
    pub boots: Mutex<u64>,
}

impl Machine {
    fn set(&self, s: impl Into<String>) {
        let s = s.into();
        self.note(&format!("status: {s}"));
        if let Ok(mut st) = self.status.lock() {
            *st = s;
        }
    }

    pub fn status(&self) -> String {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let _ = writeln!(f, "[lab firmware {}.{:03}] {line}", t.as_secs(), t.subsec_millis());
        }
        tracing::debug!(machine = %self.name, "{line}");
    }

    /// Kill everything running in the machine and forget its addresses;
    /// unmount the disk its OS ran from. (A VM's QEMU dies with its boot task.)
    async fn halt(&self) {
        if self.vm.is_some() {
            return;
        }
        let pids = || async {
            let out = Command::new("ip").args(["netns", "pids", &self.ns]).output().await;
            out.map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        for pid in pids().await {
            // (It may have exited meanwhile.) SIGKILL: to a container's
            // systemd SIGTERM means re-exec, not stop.
            let _ = Command::new("kill").args(["-9", &pid]).stderr(std::process::Stdio::null()).status().await;
        }
        // The OS's root stays busy until its processes are gone.
        let start = tokio::time::Instant::now();
        while !pids().await.is_empty() && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.unmount_os().await;
        // What nspawn keeps per container, left when the container is killed.
        let _ = tokio::fs::remove_dir_all(format!("/run/systemd/nspawn/propagate/{}", self.name)).await;
        let record = self.cgroups_record();
        let stuck = tokio::task::spawn_blocking(move || crate::cgroups::remove_recorded(&record)).await.unwrap_or(0);
        if stuck > 0 {
            self.note(&format!("{stuck} cgroup directories of the OS still hold processes"));
        }
        for j in 0..self.nics {
            let _ =
                Command::new("ip").args(["-n", &self.ns, "addr", "flush", "dev", &format!("eth{j}")]).status().await;
        }
    }
}

/// Run the machine: react to power events until the channel closes.
pub async fn run(m: Arc<Machine>, mut power: mpsc::UnboundedReceiver<Power>) {
    let mut booting: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(p) = power.recv().await {
        if let Some(b) = booting.take() {
            b.abort();
        }
        m.halt().await;
        match p {
            Power::Off => m.set("off"),
            Power::On { pxe } => {
                if let Ok(mut b) = m.boots.lock() {
                    *b += 1;
                }
                let m2 = m.clone();
                booting = Some(tokio::spawn(async move {
                    if let Err(e) = boot(&m2, pxe).await {
                        m2.set(format!("boot failed: {e:#}"));
                    }
                }));
            }
        }
    }
    if let Some(b) = booting.take() {
        b.abort();
    }
    m.halt().await;
}

async fn boot(m: &Machine, pxe: bool) -> anyhow::Result<()> {
    if let Some(vm) = &m.vm {
        return boot_vm(m, vm, pxe).await;
    }
    if !pxe {
        return boot_disk(m).await;
    }
    m.set("dhcp");
    let mut lease = None;
    for j in 0..m.nics {
        if let Some(l) = dhcp(m, &format!("eth{j}")).await? {
            lease = Some(l);
            break;
        }
    }
    let Some(lease) = lease else {
        m.set("disk (no DHCP answer on any NIC)");
        return Ok(());
    };
    let url = lease.boot_file.clone().filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let Some(url) = url else {
        m.set(format!("disk (DHCP named no HTTP boot script: {:?})", lease.boot_file));
        return Ok(());
    };
    m.set(format!("ipxe {url}"));
    let script = match wget(m, &url, None).await {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(e) => {
            // iPXE moves on to the next boot device.
            m.set(format!("disk (no boot script: {e:#})"));
            return Ok(());
        }
    };
    let plan = parse_script(&script)?;
    tokio::fs::create_dir_all(&m.ram).await?;
    let kernel = m.ram.join("kernel");
    let initrd = m.ram.join("initrd");
    wget(m, &plan.kernel, Some(&kernel)).await.context("fetching the kernel")?;
    wget(m, &plan.initrd, Some(&initrd)).await.context("fetching the initrd")?;
    tokio::fs::create_dir_all(m.root.join("proc")).await?;
    tokio::fs::write(m.root.join("proc/cmdline"), format!("{}\n", plan.args)).await?;
    // The initrd is the agent binary, or a ramdisk (`crate::ramdisk`) that
    // holds it: the machine runs the agent either way.
    let program = match crate::ramdisk::agent_of(&tokio::fs::read(&initrd).await?) {
        Some(agent) => {
            let p = m.ram.join("agent");
            tokio::fs::write(&p, agent).await?;
            m.note("the initrd is a ramdisk: running the agent it holds");
            p
        }
        None => initrd,
    };
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).await?;
    m.set("agent");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &m.ns]).arg(&program).arg("run").arg("--root").arg(&m.root);
    let status = m.run_on_console(&mut c).await.context("running the initrd")?;
    m.set(format!("agent exited ({status})"));
    Ok(())
}

/// Where on a disk its OS lives.
#[derive(Debug, PartialEq, Eq)]
pub struct OsLayout {
    /// Byte offset and size of the ext4 root partition.
    pub root: (u64, u64),
    /// Byte offset of the `config-2` partition, when there is one.
    pub config_drive: Option<u64>,
}

/// Read a disk's GPT: the root partition (the x86-64 root type, or the
/// first ext4 one) and the config drive (the FAT labelled `config-2`).
pub async fn os_layout(disk: &Path) -> anyhow::Result<Option<OsLayout>> {
    let out = Command::new("sfdisk").arg("-J").arg(disk).output().await.context("running sfdisk (fdisk)")?;
    if !out.status.success() {
        return Ok(None); // no partition table: nothing to boot
    }
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading sfdisk -J")?;
    let sector = table["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    let (mut root, mut config_drive) = (None, None);
    for p in table["partitiontable"]["partitions"].as_array().into_iter().flatten() {
        let (Some(start), Some(size)) = (p["start"].as_u64(), p["size"].as_u64()) else { continue };
        let (off, len) = (start * sector, size * sector);
        let probe = Command::new("blkid")
            .args(["-p", "-o", "export", "-O", &off.to_string(), "--size", &len.to_string()])
            .arg(disk)
            .output()
            .await
            .context("running blkid")?;
        let probe = String::from_utf8_lossy(&probe.stdout);
        let fs = probe.lines().find_map(|l| l.strip_prefix("TYPE=")).unwrap_or("");
        let label = probe.lines().find_map(|l| l.strip_prefix("LABEL=")).unwrap_or("");
        let is_root_type = p["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(crate::image::ROOT_TYPE));
        if fs == "ext4" && root.is_none_or(|_| is_root_type) {
            root = Some((off, len));
        } else if fs == "vfat" && label == "config-2" {
            config_drive = Some(off);
        }
    }
    Ok(root.map(|root| OsLayout { root, config_drive }))
}

/// Boot the OS on the machine's disk, if one holds one (see the module's
/// text); it runs until the machine powers off or the OS halts.
async fn boot_disk(m: &Machine) -> anyhow::Result<()> {
    let mut found = None;
    for d in &m.disks {
        if let Some(l) = os_layout(d).await? {
            found = Some((d.clone(), l));
            break;
        }
    }
    let Some((disk, layout)) = found else {
        m.set("disk");
        m.note("no operating system on any disk");
        return Ok(());
    };
    tokio::fs::create_dir_all(&m.os).await?;
    let (off, len) = layout.root;
    let mounted = Command::new("mount")
        .args(["-t", "ext4", "-o", &format!("loop,offset={off},sizelimit={len}")])
        .arg(&disk)
        .arg(&m.os)
        .output()
        .await
        .context("running mount")?;
    if !mounted.status.success() {
        bail!("mounting the root partition of {}: {}", disk.display(), String::from_utf8_lossy(&mounted.stderr).trim());
    }
    if let Ok(mut d) = m.os_disk.lock() {
        *d = Some(disk.clone());
    }
    let seed = m.os.join("var/lib/cloud/seed/config_drive");
    let _ = tokio::fs::remove_dir_all(&seed).await;
    if let Some(cd) = layout.config_drive {
        tokio::fs::create_dir_all(&seed).await?;
        let out = Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-n", "-m", "-i"])
            .arg(format!("{}@@{cd}", disk.display()))
            .arg("::openstack")
            .arg(&seed)
            .output()
            .await
            .context("running mcopy (mtools)")?;
        if !out.status.success() {
            bail!("reading the config drive of {}: {}", disk.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        m.note(&format!("config drive of {} copied into the OS's cloud-init seed", disk.display()));
    } else {
        m.note("no config drive on the disk");
    }
    m.set("os");
    // What a real machine's kernel lets its OS do and nspawn does not by
    // default, so containers run (Docker, as cluster nodes need): forwarding
    // (`/proc/sys` is read-only inside), the session keyring and BPF calls
    // runc makes, and writable cgroups (`cgroups::delegate`).
    let _ = Command::new("ip").args(["netns", "exec", &m.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).status().await;
    // Each boot in a time namespace of its own whose clocks start near
    // zero, as a real machine's do: the OS's uptime and boot time are its
    // boot's, not the host's (Slurm tells a rebooted node by its boot time).
    // (Without time namespaces — Linux before 5.6 — the OS sees the host's.)
    let mut c = if Path::new("/proc/self/timens_offsets").exists() {
        let mut c = Command::new("unshare");
        let since = boot_clocks_offset();
        c.args(["--time", "--boottime", &format!("-{since}"), "--monotonic", &format!("-{since}"), "nsenter"]);
        c
    } else {
        m.note("no time namespaces on this kernel: the OS sees the host's uptime");
        Command::new("nsenter")
    };
    c.arg(format!("--net=/run/netns/{}", m.ns))
        .args(["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit"])
        .args(["--capability=CAP_NET_ADMIN,CAP_NET_RAW", "--system-call-filter=add_key keyctl bpf"])
        .args(["--console=read-only", "--machine"])
        .arg(&m.name)
        .arg("--directory")
        .arg(&m.os);
    // FUSE, as a real machine has it: shares mount with ceph-fuse.
    if Path::new("/dev/fuse").exists() {
        c.arg("--bind=/dev/fuse");
    }
    let mut child = m.spawn_on_console(&mut c).context("running systemd-nspawn (systemd-container)")?;
    let status = match child.id() {
        Some(pid) => {
            // Until nspawn exits (then there is nothing to delegate to).
            let record = m.cgroups_record();
            let delegate = crate::cgroups::delegate(pid, &m.ns, &record);
            tokio::select! {
                status = child.wait() => Some(status?),
                d = delegate => {
                    match d {
                        Ok(n) => m.note(&format!("{n} cgroup controllers delegated to the OS")),
                        Err(e) => m.note(&format!("cgroups not delegated (containers will not run): {e:#}")),
                    }
                    None
                }
            }
        }
        None => None,
    };
    let status = match status {
        Some(s) => s,
        None => child.wait().await?,
    };
    m.set(format!("os stopped ({status})"));
    Ok(())
}

/// Whole seconds to take off the boot and monotonic clocks so a new time
/// namespace's start near 1 s (never below: the kernel refuses offsets that
/// would make a clock negative, and the same offset for both keeps boot
/// time ≥ monotonic time).
fn boot_clocks_offset() -> i64 {
    use nix::time::{ClockId, clock_gettime};
    let secs = |id| clock_gettime(id).map(|t| t.tv_sec()).unwrap_or(0);
    (secs(ClockId::CLOCK_BOOTTIME).min(secs(ClockId::CLOCK_MONOTONIC)) - 1).max(0)
}

impl Machine {
    /// Run what the machine runs, its output on the machine's console log,
    /// until it exits (or the boot task is dropped: then it is killed).
    async fn run_on_console(&self, c: &mut Command) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.spawn_on_console(c)?.wait().await?)
    }

    /// Start what the machine runs, its output on the machine's console log;
    /// killed if the handle (with the boot task) is dropped.
    fn spawn_on_console(&self, c: &mut Command) -> anyhow::Result<tokio::process::Child> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        Ok(c.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true).spawn()?)
    }

    /// The file listing the cgroup directories made for this machine's OS.
    pub fn cgroups_record(&self) -> PathBuf {
        self.log.with_file_name("cgroups")
    }

    /// Unmount the OS's root, if mounted, and wait until its filesystem is
    /// gone for good: the kernel may keep it (and write to the disk file
    /// through its loop device) until the container's mount namespace is
    /// torn down, and nothing may write after the next boot's agent erases
    /// or rewrites the disk. The loop device detaches itself (autoclear) at
    /// that point. A filesystem the kernel still holds after a while
    /// (something keeps a reference we cannot name) is cut off as a power
    /// cut would: the disk file is copied and the copy renamed over it, so
    /// the machine's disk is the copy and whatever the old filesystem still
    /// writes lands in the old, unlinked file.
    async fn unmount_os(&self) {
        let Some(disk) = self.os_disk.lock().ok().and_then(|mut d| d.take()) else { return };
        let mounted = |p: &Path| crate::fabric::mount_points().iter().any(|m| *m == *p.to_string_lossy());
        let start = tokio::time::Instant::now();
        while mounted(&self.os) {
            let mut c = Command::new("umount");
            if start.elapsed() > Duration::from_secs(5) {
                c.arg("-l"); // what still holds it goes below
            }
            let _ = c.arg(&self.os).stderr(std::process::Stdio::null()).status().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            let out = Command::new("losetup").arg("-j").arg(&disk).output().await;
            let attached = out.map(|o| !o.stdout.is_empty()).unwrap_or(false);
            if !attached {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                match cut_off(&disk).await {
                    Ok(()) => self.note(&format!(
                        "{} was still attached to a loop device 10 s after the OS stopped: its filesystem is cut \
                         off (the disk is a copy from here on; what the OS had not written is lost)",
                        disk.display()
                    )),
                    Err(e) => self.note(&format!("{} is still attached to a loop device: {e:#}", disk.display())),
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.note(&format!("OS stopped; {} released in {:.1?}", disk.display(), start.elapsed()));
    }
}

/// Replace the disk file by a copy of itself (holes kept), so a filesystem
/// still attached to the old file through a loop device writes nowhere
/// that matters.
async fn cut_off(disk: &Path) -> anyhow::Result<()> {
    let copy = disk.with_extension("cut");
    let out = Command::new("cp")
        .args(["--sparse=always", "--reflink=never"])
        .arg(disk)
        .arg(&copy)
        .output()
        .await
        .context("running cp")?;
    if !out.status.success() {
        let _ = tokio::fs::remove_file(&copy).await;
        bail!("copying {}: {}", disk.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    tokio::fs::rename(&copy, disk).await.context("renaming the copy over the disk")?;
    Ok(())
}

/// Power on a QEMU machine: network first (its NIC's iPXE ROM) or disk.
/// QEMU runs in the fabric namespace, where its taps are; it is killed when
/// the machine powers off (the boot task is dropped).
async fn boot_vm(m: &Machine, vm: &Vm, pxe: bool) -> anyhow::Result<()> {
    let q = &vm.qemu_root;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &vm.fabric_ns])
        .arg(q.join("usr/bin/qemu-system-x86_64"))
        .args(["-accel", "tcg", "-m", &vm.memory_mib.clamp(256, 4096).to_string()])
        .args(["-nographic", "-nodefaults", "-no-user-config"])
        .arg("-serial")
        .arg(format!("file:{}", vm.serial.display()))
        .arg("-L")
        .arg(q.join("usr/share/seabios"))
        .arg("-L")
        .arg(q.join("usr/lib/ipxe/qemu"))
        .arg("-L")
        .arg(q.join("usr/share/qemu"))
        .args(["-boot", if pxe { "n" } else { "c" }])
        .env(
            "LD_LIBRARY_PATH",
            format!("{}:{}", q.join("usr/lib/x86_64-linux-gnu").display(), q.join("lib/x86_64-linux-gnu").display()),
        );
    for (j, (tap, mac)) in vm.taps.iter().enumerate() {
        c.arg("-netdev").arg(format!("tap,id=n{j},ifname={tap},script=no,downscript=no"));
        c.arg("-device").arg(format!("virtio-net-pci,netdev=n{j},mac={mac}"));
    }
    for d in &vm.disks {
        // discard=unmap: the agent's blkdiscard punches holes in the disk file.
        c.arg("-drive").arg(format!("file={},format=raw,if=virtio,discard=unmap", d.display()));
    }
    m.set(if pxe { "vm (network boot)" } else { "vm (disk)" });
    let status =
        m.run_on_console(&mut c).await.context("starting QEMU (scripts/setup.sh unpacks it into .venv/qemu)")?;
    m.set(format!("vm stopped ({status})"));
    Ok(())
}

/// What DHCP told the machine.
#[derive(Debug)]
struct Lease {
    boot_file: Option<String>,
}

async fn dhcp(m: &Machine, nic: &str) -> anyhow::Result<Option<Lease>> {
    let out = m.ram.join(format!("{nic}.lease"));
    let _ = tokio::fs::remove_file(&out).await;
    tokio::fs::create_dir_all(&m.ram).await?;
    let script = m.ram.join("udhcpc.sh");
    // The client script: configure the address (what firmware does) and
    // tell the lab what the server said. Never the host's resolv.conf.
    tokio::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\n  bound|renew)\n    ip -4 addr flush dev \"$interface\"\n    ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n    printf 'ip=%s\\nboot_file=%s\\n' \"$ip\" \"$boot_file\" > \"$LAB_LEASE\" ;;\nesac\nexit 0\n",
    )
    .await?;
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).await?;
    let status = Command::new("ip")
        .args(["netns", "exec", &m.ns, "busybox", "udhcpc", "-i", nic, "-f", "-q", "-n", "-t", "5", "-T", "1"])
        // User class "iPXE": what iPXE sends, so tundrad answers with the script URL.
        .args(["-x", "0x4d:69505845", "-s"])
        .arg(&script)
        .env("LAB_LEASE", &out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("running busybox udhcpc")?;
    if !status.success() {
        m.note(&format!("no DHCP answer on {nic}"));
        return Ok(None);
    }
    let text = tokio::fs::read_to_string(&out).await.unwrap_or_default();
    let get = |k: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(str::to_string).filter(|v| !v.is_empty())
    };
    m.note(&format!("DHCP on {nic}: ip {:?}, boot file {:?}", get("ip"), get("boot_file")));
    Ok(Some(Lease { boot_file: get("boot_file") }))
}

/// GET `url` from inside the machine: the body, or saved to `to`.
async fn wget(m: &Machine, url: &str, to: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut c = Command::new("ip");
    // (Debian's busybox 1.35 wget crashes with -T; the timeout is ours.)
    c.args(["netns", "exec", &m.ns, "busybox", "wget", "-O"]);
    match to {
        Some(p) => c.arg(p),
        None => c.arg("-"),
    };
    let out = tokio::time::timeout(Duration::from_secs(120), c.arg(url).kill_on_drop(true).output())
        .await
        .with_context(|| format!("GET {url} took longer than 2 minutes"))?
        .context("running busybox wget")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
        bail!("GET {url} failed ({}): {why}", out.status);
    }
    Ok(out.stdout)
}

/// The parts of an iPXE script the lab firmware acts on.
#[derive(Debug, PartialEq, Eq)]
pub struct BootPlan {
    pub kernel: String,
    /// The kernel arguments (everything after the kernel URL).
    pub args: String,
    pub initrd: String,
}

/// Read `kernel URL ARGS…`, `initrd URL` and `boot` from an iPXE script.
pub fn parse_script(s: &str) -> anyhow::Result<BootPlan> {
    if !s.starts_with("#!ipxe") {
        bail!("not an iPXE script (no #!ipxe line)");
    }
    let (mut kernel, mut args, mut initrd, mut boots) = (None, String::new(), None, false);
    for line in s.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("kernel" | "chain") => {
                kernel = words.next().map(str::to_string);
                args = words.collect::<Vec<_>>().join(" ");
            }
            Some("initrd") => initrd = words.next().map(str::to_string),
            Some("boot") => boots = true,
            Some("echo" | "sleep") => {}
            Some(other) => bail!("the lab firmware does not know the iPXE command {other:?}"),
            None => {}
        }
    }
    match (kernel, initrd, boots) {
        (Some(kernel), Some(initrd), true) => Ok(BootPlan { kernel, args, initrd }),
        _ => bail!("the script must have kernel, initrd and boot"),
    }
}

/// Wait for a machine's status to satisfy `f` (for tests and the bench).
pub async fn wait_status(m: &Machine, timeout: Duration, f: impl Fn(&str) -> bool) -> Result<String, String> {
    let start = tokio::time::Instant::now();
    loop {
        let s = m.status();
        if f(&s) {
            return Ok(s);
        }
        if start.elapsed() > timeout {
            return Err(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_into_a_plan() {
        let p = parse_script(
            "#!ipxe\n# tundrad: rf-1\nkernel http://10.0.0.1:8180/boot/assets/vmlinuz initrd=initramfs tundra.api=http://10.0.0.1:8180 tundra.token=tna_x\ninitrd http://10.0.0.1:8180/boot/assets/initramfs\nboot\n",
        )
        .unwrap();
        assert_eq!(p.kernel, "http://10.0.0.1:8180/boot/assets/vmlinuz");
        assert_eq!(p.args, "initrd=initramfs tundra.api=http://10.0.0.1:8180 tundra.token=tna_x");
        assert_eq!(p.initrd, "http://10.0.0.1:8180/boot/assets/initramfs");
        assert!(parse_script("kernel x\n").is_err());
        assert!(parse_script("#!ipxe\nkernel a\nboot\n").is_err());
        assert!(parse_script("#!ipxe\nsanboot x\n").is_err());
    }
}
