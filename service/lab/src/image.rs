//! Node images the site builds: a real Debian 12 disk image made offline
//! from Debian packages (the machine's own apt sources), cached by content.
//!
//! The disk is a GPT with one partition — type "Linux root (x86-64)", name
//! and ext4 label `root` — holding a root filesystem from `mmdebstrap
//! --variant=minbase` with systemd, cloud-init (ConfigDrive first), sshd and
//! the named package sets asked for. The filesystem is made by `mkfs.ext4 -d`
//! from the directory and copied into the disk file (zero blocks skipped), so
//! no loop device is needed. SSH host keys are removed (each node makes its
//! own on first boot) and cloud-init's locale module is off (minbase has no
//! `locales`).
//!
//! The cache key is the SHA-256 of the recipe — this builder's version, the
//! suite, the sorted package list and the apt sources it reads — so a second
//! build of the same recipe does nothing, and builds racing for one key take
//! turns on a lock file.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Bump when what a build writes changes: old cache entries are then unused.
const RECIPE_VERSION: &str = "tundra-lab image 2";

/// The GPT type of the root partition (Discoverable Partitions: x86-64 root).
pub const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// What every image has: an init, cloud-init and a way in.
const BASE: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "cloud-init",
    "openssh-server",
    "sudo",
    "iproute2",
    "iputils-ping",
    "ifupdown",
    "netbase",
    "python3",
];

/// Named package sets a test or a module asks for (Debian 12 package names).
pub const SETS: &[(&str, &[&str])] = &[
    ("slurm", &["slurmctld", "slurmd", "slurm-client", "munge"]),
    // numpy for dask.array; Pillow and typing-extensions for bokeh (below).
    ("dask", &["python3-distributed", "python3-dask", "python3-numpy", "python3-pil", "python3-typing-extensions"]),
    ("ceph-client", &["ceph-common", "ceph-fuse"]),
    ("nfs-client", &["nfs-common"]),
    ("glusterfs-client", &["glusterfs-client"]),
    ("docker", &["docker.io"]),
    ("jupyterhub", &["jupyterhub", "python3-ipykernel"]),
];

/// What a set needs that Debian 12 does not package: pure-Python wheels
/// from PyPI, pinned (`NAME==VERSION`), installed into the image's
/// `/usr/local/lib/python3.11/dist-packages` at build time — a node
/// downloads nothing. Each pin is the last release that works with the
/// Debian packages beside it.
pub const PYPI: &[(&str, &[&str])] = &[
    // Dask's dashboard (distributed 2022.12 takes bokeh 2.4.2 to < 3), and
    // dask-jobqueue for workers as Slurm jobs (0.8.2: distributed >= 2022.02).
    ("dask", &["bokeh==2.4.3", "dask-jobqueue==0.8.2"]),
    // JupyterHub's servers as Slurm jobs (1.3.0: the first for JupyterHub 3;
    // jinja2 and requests come with Debian's jupyterhub).
    ("jupyterhub", &["batchspawner==1.3.0"]),
];

/// Services a set's packages enable that a node must not run until its
/// appliance configures them: Debian's `jupyterhub` starts a hub with PAM
/// logins on every interface of every node of the image. Disabled in the
/// image; the appliance that wants one enables it.
pub const DISABLED: &[(&str, &[&str])] = &[("jupyterhub", &["jupyterhub.service"])];

/// The package sets of the node image the lab's OS and cluster tests boot
/// (os, swarm, k3s): one image per checkout, built before the lab tests
/// that need it (`the_site_images_hold_what_their_recipes_name`).
pub const LAB_SETS: &[&str] = &["ceph-client", "docker", "slurm"];

/// The package sets of the image the platform tests boot (openhpc, dask,
/// jupyter): no Docker. About 1.1 GiB raw, so the platform lab's machines
/// have 2 GiB disks.
pub const PLATFORM_SETS: &[&str] = &["ceph-client", "dask", "jupyterhub", "slurm"];

fn recipe_of(sets: &[&str]) -> Recipe {
    Recipe { sets: sets.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

/// The lab OS tests' image (`LAB_SETS`).
pub fn lab_recipe() -> Recipe {
    recipe_of(LAB_SETS)
}

/// The platform tests' image (`PLATFORM_SETS`).
pub fn platform_recipe() -> Recipe {
    recipe_of(PLATFORM_SETS)
}

/// The QEMU tier's image: bootable by SeaBIOS → extlinux, no package sets.
pub fn bootable_recipe() -> Recipe {
    Recipe { bootable: true, ..Default::default() }
}

/// What a bootable image adds: a kernel, its initramfs, and udev (systemd
/// waits for the root's device unit, which only udev announces).
const BOOTABLE: &[&str] = &["linux-image-amd64", "initramfs-tools", "udev"];

/// The kernel command line of a bootable image: the console on the serial
/// port, the kernel's own NIC names (cloud-init matches NICs by MAC anyway).
const KERNEL_ARGS: &str = "root=LABEL=root ro console=ttyS0,115200 net.ifnames=0";

/// cloud-init's settings baked into the image.
const CLOUD_CFG: &str = "\
# Written by tundra-lab image build.
# tundrad writes a config drive (config-2): read it first, and nothing else.
datasource_list: [ ConfigDrive, None ]
# minbase has no `locales`: update-locale would fail the module.
locale: false
# The node's own name resolves (sudo, Slurm and MPI look it up).
manage_etc_hosts: true
";

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    /// Named package sets (see `SETS`).
    pub sets: Vec<String>,
    /// More Debian packages by name.
    pub packages: Vec<String>,
    /// Also write a qcow2 (through `qemu-img convert`).
    pub qcow2: bool,
    /// Bootable by firmware (the QEMU tier): Debian's kernel and an
    /// initramfs in the image, udev, and extlinux in the root partition
    /// with syslinux's GPT MBR in front of it.
    pub bootable: bool,
}

/// A built (or cached) image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub name: String,
    /// The cache key (hex SHA-256 of the recipe).
    pub key: String,
    pub raw: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qcow2: Option<PathBuf>,
    /// True when nothing had to be built.
    pub cached: bool,
}

impl Recipe {
    /// Every package the image gets, sorted, or which set name is unknown.
    pub fn packages(&self) -> anyhow::Result<Vec<String>> {
        let mut out: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
        for s in &self.sets {
            let Some((_, pkgs)) = SETS.iter().find(|(n, _)| n == s) else {
                let known: Vec<&str> = SETS.iter().map(|(n, _)| *n).collect();
                bail!("unknown package set {s:?}; the sets are {}", known.join(", "));
            };
            out.extend(pkgs.iter().map(|p| p.to_string()));
        }
        if self.bootable {
            out.extend(BOOTABLE.iter().map(|p| p.to_string()));
        }
        for p in &self.packages {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
                bail!("{p:?} is not a Debian package name");
            }
            out.push(p.clone());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The PyPI pins of its sets (see `PYPI`), sorted.
    pub fn pypi(&self) -> Vec<String> {
        let mut out: Vec<String> = PYPI
            .iter()
            .filter(|(set, _)| self.sets.iter().any(|s| s == set))
            .flat_map(|(_, pins)| pins.iter().map(|p| p.to_string()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The services its sets' packages enable that the image leaves
    /// disabled (see `DISABLED`), sorted.
    pub fn disabled(&self) -> Vec<String> {
        let mut out: Vec<String> = DISABLED
            .iter()
            .filter(|(set, _)| self.sets.iter().any(|s| s == set))
            .flat_map(|(_, units)| units.iter().map(|u| u.to_string()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `debian-12` plus the sets, e.g. `debian-12-slurm` (`-bootable`).
    pub fn name(&self) -> String {
        let mut sets = self.sets.clone();
        sets.sort();
        sets.dedup();
        let boot = self.bootable.then(|| "bootable".to_string());
        std::iter::once("debian-12".to_string()).chain(sets).chain(boot).collect::<Vec<_>>().join("-")
    }
}

/// The machine's apt sources (what mmdebstrap reads and the key covers):
/// the file and its text. Tests that build Debian roots use it too.
pub fn apt_sources() -> anyhow::Result<(PathBuf, String)> {
    for p in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
        let p = PathBuf::from(p);
        if let Ok(t) = std::fs::read_to_string(&p)
            && t.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        {
            return Ok((p, t));
        }
    }
    bail!("no apt sources in /etc/apt (debian.sources or sources.list): the image is built from them")
}

/// Hex SHA-256: the cache keys of images and ramdisks.
pub(crate) fn sha256_hex(b: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// The cache key of a recipe: its packages (Debian's, then PyPI pins, then
/// the services it leaves disabled) and the sources they come from.
pub fn key(packages: &[String], sources: &str) -> String {
    sha256_hex(format!("{RECIPE_VERSION}\nbookworm\n{}\n{CLOUD_CFG}\n{sources}", packages.join(",")).as_bytes())
}

/// Take the cache's lock (held until the file is dropped): one builder
/// per cache at a time, so a racing build waits, then finds what was built.
pub(crate) fn lock_cache(cache: &Path) -> anyhow::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(".lock"))
        .context("opening the cache's lock file")?;
    lock.lock().context("locking the cache")?;
    Ok(lock)
}

/// Build `recipe` into `cache` unless it is there already.
pub fn build(recipe: &Recipe, cache: &Path) -> anyhow::Result<Built> {
    let packages = recipe.packages()?;
    let pypi = recipe.pypi();
    let (sources_file, sources) = apt_sources()?;
    let disabled = recipe.disabled();
    let key = key(
        &[packages.clone(), pypi.clone(), disabled.iter().map(|u| format!("disable:{u}")).collect()].concat(),
        &sources,
    );
    let name = recipe.name();
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let stem = format!("{name}-{}", &key[..12]);
    let raw = cache.join(format!("{stem}.raw"));
    let qcow2 = cache.join(format!("{stem}.qcow2"));
    // A finished image is renamed into place whole: one already there
    // needs no lock (another recipe's build may hold it for minutes).
    if raw.exists() && (!recipe.qcow2 || qcow2.exists()) {
        return Ok(Built { name, key, raw, qcow2: recipe.qcow2.then_some(qcow2), cached: true });
    }
    let _lock = lock_cache(cache)?;
    let mut cached = true;
    if !raw.exists() {
        cached = false;
        let tmp = cache.join(format!(".{stem}.raw.partial"));
        let work = cache.join(format!(".{stem}.root"));
        // The pip for the PyPI pins, found before minutes of mmdebstrap.
        let pip = if pypi.is_empty() { None } else { Some(pip(cache)?) };
        let pins = pip.as_deref().map(|p| (p, pypi.as_slice()));
        let r = build_raw(&packages, pins, &disabled, recipe.bootable, &sources_file, &work, &tmp);
        let _ = std::fs::remove_dir_all(&work);
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &raw)?;
    }
    if recipe.qcow2 && !qcow2.exists() {
        cached = false;
        let tmp = cache.join(format!(".{stem}.qcow2.partial"));
        let r = run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "qcow2"]).arg(&raw).arg(&tmp));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &qcow2)?;
    }
    if !cached {
        prune(cache, &name, &stem);
    }
    Ok(Built { name, key, raw, qcow2: recipe.qcow2.then_some(qcow2), cached })
}

/// Remove older builds of the same name (another recipe version or other
/// apt sources): the cache keeps one image per name.
fn prune(cache: &Path, name: &str, keep: &str) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some((stem, ext)) = file.rsplit_once('.') else { continue };
        let key = stem.strip_prefix(name).and_then(|r| r.strip_prefix('-'));
        let ours = key.is_some_and(|k| k.len() == 12 && k.chars().all(|c| c.is_ascii_hexdigit()));
        if ours && stem != keep && matches!(ext, "raw" | "qcow2") {
            tracing::info!(file, "removing an older image build");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Run a build step: its output, or an error with the end of what it said.
pub(crate) fn run(c: &mut Command) -> anyhow::Result<String> {
    let what = format!("{c:?}");
    let out = c.stdin(std::process::Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_raw(
    packages: &[String],
    pypi: Option<(&Path, &[String])>,
    disabled: &[String],
    bootable: bool,
    sources: &Path,
    work: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(work);
    let rootfs = work.join("root");
    std::fs::create_dir_all(work)?;
    let cfg = work.join("90-tundra.cfg");
    std::fs::write(&cfg, CLOUD_CFG)?;
    tracing::info!(packages = packages.len(), "building a node image with mmdebstrap");
    let mut mm = Command::new("mmdebstrap");
    for unit in disabled {
        mm.arg(format!("--customize-hook=systemctl --root=\"$1\" --quiet disable {unit}"));
    }
    run(mm
        .args(["--variant=minbase", "--mode=root", "--quiet"])
        .arg(format!("--include={}", packages.join(",")))
        // Docs, manuals and translations are not what a node runs.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
        ])
        .arg(format!("--customize-hook=upload {} /etc/cloud/cloud.cfg.d/90-tundra.cfg", cfg.display()))
        .arg("--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*")
        .arg("--customize-hook=echo 'LABEL=root / ext4 errors=remount-ro 0 1' > \"$1\"/etc/fstab")
        .arg("--customize-hook=: > \"$1\"/etc/machine-id")
        .arg("--customize-hook=echo tundra-node > \"$1\"/etc/hostname")
        .arg("bookworm")
        .arg(&rootfs)
        .arg(sources))
    .context("mmdebstrap (scripts/setup.sh installs it)")?;
    if let Some((pip, pins)) = pypi {
        install_pypi(pip, pins, &rootfs, &work.join("wheels"))?;
    }

    // The filesystem: what the tree holds, room to work (ext4's own
    // metadata and small files' partial blocks take about a sixth), rounded
    // to MiB. Kept small: every deploy streams the whole disk, and it must
    // leave room for the node's config drive on a lab machine's disk.
    let used = run(Command::new("du").args(["-s", "-B1", "--apparent-size"]).arg(&rootfs))?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .context("reading du's answer")?;
    let mib = 1u64 << 20;
    let part_bytes = (used + used / 4 + 96 * mib).div_ceil(mib) * mib;
    if bootable {
        write_extlinux_conf(&rootfs)?;
    }
    let part = work.join("root.ext4");
    std::fs::File::create(&part)?.set_len(part_bytes)?;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "root"]);
    if bootable {
        // extlinux reads ext4 without the 64bit feature only.
        mkfs.args(["-O", "^64bit"]);
    }
    run(mkfs.arg("-d").arg(&rootfs).arg(&part)).context("mkfs.ext4 -d (e2fsprogs)")?;
    if bootable {
        install_extlinux(&part, &work.join("mnt"))?;
    }

    // The disk: 1 MiB for the GPT, the partition, 1 MiB for the backup GPT.
    let disk_bytes = part_bytes + 2 * mib;
    std::fs::File::create(out)?.set_len(disk_bytes)?;
    let attrs = if bootable { ", attrs=\"LegacyBIOSBootable\"" } else { "" };
    let table = format!("label: gpt\nstart=2048, size={}, type={ROOT_TYPE}, name=\"root\"{attrs}\n", part_bytes / 512);
    let mut sf = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running sfdisk (fdisk)")?;
    sf.stdin.take().context("sfdisk's stdin")?.write_all(table.as_bytes())?;
    let o = sf.wait_with_output()?;
    if !o.status.success() {
        bail!("sfdisk failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    copy_sparse(&part, out, mib)?;
    if bootable {
        // SeaBIOS runs the MBR's code: syslinux's, which boots the GPT
        // partition marked legacy-BIOS-bootable.
        let mbr = std::fs::read(GPTMBR).with_context(|| format!("reading {GPTMBR} (extlinux)"))?;
        let mut f = std::fs::OpenOptions::new().write(true).open(out)?;
        f.write_all(&mbr[..mbr.len().min(440)])?;
        f.sync_all()?;
    }
    Ok(())
}

/// The pip that fetches PyPI pins: `TUNDRA_PIP`, else the venv
/// scripts/setup.sh makes, whose `images/` the cache is by default
/// (`.venv/bin/pip`).
fn pip(cache: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TUNDRA_PIP") {
        return Ok(p.into());
    }
    let venv = cache.parent().map(|v| v.join("bin/pip")).filter(|p| p.exists());
    venv.with_context(|| {
        format!(
            "no pip for the image's PyPI pins: {} has no venv beside it (scripts/setup.sh makes .venv); \
             set TUNDRA_PIP to a pip",
            cache.display()
        )
    })
}

/// The image's Python packages from PyPI: universal pure-Python wheels
/// only (`py*-none-any`: whatever Python fetches them, nothing compiled,
/// nothing built), without their dependencies (the Debian packages of the
/// same set provide those), into the image's site directory for local
/// packages.
fn install_pypi(pip: &Path, pins: &[String], rootfs: &Path, wheels: &Path) -> anyhow::Result<()> {
    tracing::info!(?pins, "adding PyPI packages to a node image");
    run(Command::new(pip)
        .args(["download", "--quiet", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.11", "--implementation", "py", "--abi", "none", "--platform", "any"])
        .arg("--dest")
        .arg(wheels)
        .args(pins))
    .with_context(|| format!("{} download {} (PyPI, pure-Python wheels)", pip.display(), pins.join(" ")))?;
    let target = rootfs.join("usr/local/lib/python3.11/dist-packages");
    run(Command::new(pip)
        .args(["install", "--quiet", "--no-deps", "--no-index", "--no-compile", "--find-links"])
        .arg(wheels)
        .arg("--target")
        .arg(&target)
        .args(pins))
    .with_context(|| format!("{} install into the image", pip.display()))?;
    // Console scripts land beside the packages; the image runs modules.
    let _ = std::fs::remove_dir_all(target.join("bin"));
    Ok(())
}

/// syslinux's MBR code for GPT disks.
const GPTMBR: &str = "/usr/lib/EXTLINUX/gptmbr.bin";

/// extlinux's menu: the image's kernel and initramfs, nothing to choose.
fn write_extlinux_conf(rootfs: &Path) -> anyhow::Result<()> {
    let boot = rootfs.join("boot");
    let find = |prefix: &str| -> anyhow::Result<String> {
        let mut names: Vec<String> = std::fs::read_dir(&boot)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names.pop().with_context(|| format!("the image has no /boot/{prefix}*"))
    };
    let (kernel, initrd) = (find("vmlinuz-")?, find("initrd.img-")?);
    std::fs::create_dir_all(boot.join("extlinux"))?;
    std::fs::write(
        boot.join("extlinux/extlinux.conf"),
        format!(
            "# Written by tundra-lab image build.\nDEFAULT debian\nPROMPT 0\nTIMEOUT 0\nLABEL debian\n  LINUX /boot/{kernel}\n  INITRD /boot/{initrd}\n  APPEND {KERNEL_ARGS}\n"
        ),
    )?;
    Ok(())
}

/// `extlinux --install` into the filesystem image `part` (loop-mounted).
fn install_extlinux(part: &Path, mnt: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(mnt)?;
    run(Command::new("mount").args(["-o", "loop"]).arg(part).arg(mnt)).context("mounting the root filesystem")?;
    let r = run(Command::new("extlinux").arg("--install").arg(mnt.join("boot/extlinux")))
        .context("extlinux --install (extlinux)");
    let u = run(Command::new("umount").arg(mnt));
    r?;
    u?;
    Ok(())
}

/// Copy `from` into `to` at byte `at`, leaving zero blocks as holes.
fn copy_sparse(from: &Path, to: &Path, at: u64) -> anyhow::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new().write(true).open(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    let mut off = at;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        // A memcmp, not a byte loop (this code runs unoptimised in tests).
        if buf[..n] != zeros[..n] {
            dst.seek(SeekFrom::Start(off))?;
            dst.write_all(&buf[..n])?;
        }
        off += n as u64;
    }
    dst.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_name_their_packages_and_key_on_them() {
        let r = Recipe { sets: vec!["slurm".into()], packages: vec!["htop".into()], ..Default::default() };
        let p = r.packages().unwrap();
        assert!(p.contains(&"cloud-init".to_string()) && p.contains(&"slurmd".to_string()));
        assert!(p.contains(&"htop".to_string()));
        assert!(p.windows(2).all(|w| w[0] < w[1]), "sorted, once each: {p:?}");
        assert_eq!(r.name(), "debian-12-slurm");
        let b = Recipe { bootable: true, ..r.clone() };
        assert_eq!(b.name(), "debian-12-slurm-bootable");
        assert!(b.packages().unwrap().contains(&"linux-image-amd64".to_string()));
        let e = Recipe { sets: vec!["nope".into()], ..Default::default() }.packages().unwrap_err();
        assert!(format!("{e}").contains("the sets are slurm"), "{e}");
        let e = Recipe { packages: vec!["a;rm".into()], ..Default::default() }.packages().unwrap_err();
        assert!(format!("{e}").contains("not a Debian package name"), "{e}");
        // Same packages and sources, same key; any change, another.
        let k = key(&p, "deb x");
        assert_eq!(k, key(&p, "deb x"));
        assert_ne!(k, key(&p, "deb y"));
        assert_ne!(k, key(&p[1..], "deb x"));
    }

    #[test]
    fn the_cache_keeps_one_build_per_name() {
        let d = tempfile::tempdir().unwrap();
        let files = [
            "debian-12-aaaaaaaaaaaa.raw",
            "debian-12-aaaaaaaaaaaa.qcow2",
            "debian-12-cccccccccccc.raw",
            "debian-12-bootable-bbbbbbbbbbbb.raw",
            "debian-12-slurm-dddddddddddd.raw",
            ".lock",
        ];
        for f in files {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        prune(d.path(), "debian-12", "debian-12-cccccccccccc");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".lock",
                "debian-12-bootable-bbbbbbbbbbbb.raw",
                "debian-12-cccccccccccc.raw",
                "debian-12-slurm-dddddddddddd.raw"
            ]
        );
    }
}
