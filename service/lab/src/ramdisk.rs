//! The real ramdisk for QEMU machines (the staging tier): Debian's kernel
//! and an initramfs whose `/init` loads the virtio drivers, gets a lease on
//! the first NIC DHCP answers and runs `tundra-agent` with the kernel
//! command line tundrad's iPXE script gave — the agent then inspects,
//! erases and writes the VM's real virtio disk.
//!
//! Made offline from Debian packages by name (`apt-get download` of the
//! kernel `linux-image-amd64` points at and `busybox-static`), the agent
//! binary given (stripped) and the shared libraries it needs, as an
//! uncompressed `newc` cpio (the kernel reads it as is). Cached by content:
//! the same kernel package, busybox and agent again is a no-op.
//!
//! The namespace firmware reads the same initramfs: it runs the agent it
//! holds (`agent_of`), so one set of boot assets serves both tiers.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::image::{run, sha256_hex};

const RECIPE_VERSION: &str = "tundra-lab ramdisk 2";

/// Where the agent lives inside the initramfs.
pub const AGENT_PATH: &str = "usr/bin/tundra-agent";

/// Drivers a QEMU machine needs (the rest the kernel has built in).
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "virtio_blk", "af_packet"];

const INIT: &str = r#"#!/bin/sh
# tundra-lab ramdisk: drivers, a lease, then the agent tundrad served.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run /tmp
echo "tundra ramdisk: kernel $(uname -r)"
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m" 2>/dev/null; done
ip link set lo up
for i in 1 2 3 4 5 6 7 8 9 10; do
  for n in $(ls /sys/class/net); do
    [ "$n" = lo ] && continue
    ip link set "$n" up
    if udhcpc -i "$n" -n -q -t 3 -T 2 -s /etc/udhcpc.script; then
      echo "tundra ramdisk: lease on $n"
      /usr/bin/tundra-agent run --root /
      echo "tundra ramdisk: the agent exited ($?)"
      while true; do sleep 3600; done
    fi
  done
done
echo "tundra ramdisk: no DHCP answer on any NIC"
while true; do sleep 3600; done
"#;

const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\n  bound|renew)\n    ip -4 addr flush dev \"$interface\"\n    ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n    [ -n \"$router\" ] && ip route replace default via \"${router%% *}\" dev \"$interface\"\n    echo \"tundra ramdisk: $interface has $ip\" ;;\nesac\nexit 0\n";

/// A built (or cached) kernel and initramfs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ramdisk {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// The Debian kernel package, e.g. `linux-image-6.1.0-48-amd64`.
    pub kernel_package: String,
    pub cached: bool,
}

/// The versioned kernel package `linux-image-amd64` depends on.
fn kernel_package() -> anyhow::Result<String> {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
        .context("apt-cache names no kernel package for linux-image-amd64")
}

/// Download Debian packages by name and unpack them into `into`.
fn unpack_packages(packages: &[&str], into: &Path) -> anyhow::Result<()> {
    let dl = tempfile_dir(into, "download")?;
    let r = (|| {
        let mut c = Command::new("apt-get");
        c.current_dir(&dl).args(["download", "-q"]).args(packages);
        if run(&mut c).is_err() {
            run(Command::new("apt-get").args(["update", "-q"]))?;
            run(&mut c)?;
        }
        for e in std::fs::read_dir(&dl)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "deb") {
                run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(into))?;
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dl);
    r
}

fn tempfile_dir(beside: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let parent = beside.parent().unwrap_or(beside);
    let d = parent.join(format!(".{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Build the ramdisk for `agent` into `cache` unless it is there already.
pub fn build(agent: &Path, cache: &Path) -> anyhow::Result<Ramdisk> {
    std::fs::create_dir_all(cache)?;
    let kpkg = match kernel_package() {
        Ok(p) => p,
        Err(_) => {
            // A fresh machine may have no package lists yet.
            run(Command::new("apt-get").args(["update", "-q"]))?;
            kernel_package()?
        }
    };
    let agent_bytes = std::fs::read(agent).with_context(|| format!("reading the agent {}", agent.display()))?;
    let key = sha256_hex(
        format!("{RECIPE_VERSION}\n{kpkg}\n{}\n{INIT}\n{UDHCPC_SCRIPT}\n{MODULES:?}", sha256_hex(&agent_bytes))
            .as_bytes(),
    );
    let dir = cache.join(format!("ramdisk-{}", &key[..12]));
    let (kernel, initramfs) = (dir.join("vmlinuz"), dir.join("initramfs"));
    let _lock = crate::image::lock_cache(cache)?;
    if kernel.exists() && initramfs.exists() {
        return Ok(Ramdisk { kernel, initramfs, kernel_package: kpkg, cached: true });
    }
    // The packages, unpacked once per kernel package.
    let unpacked = cache.join(format!("debs-{kpkg}"));
    if !unpacked.join(".done").exists() {
        let _ = std::fs::remove_dir_all(&unpacked);
        std::fs::create_dir_all(&unpacked)?;
        unpack_packages(&[&kpkg, "busybox-static"], &unpacked).context("fetching Debian's kernel and busybox")?;
        std::fs::write(unpacked.join(".done"), &kpkg)?;
    }
    let version = kpkg.strip_prefix("linux-image-").unwrap_or(&kpkg).to_string();
    let moddir = unpacked.join("lib/modules").join(&version);
    if !moddir.join("modules.order").exists() {
        bail!("{kpkg} has no {}/modules.order", moddir.display());
    }
    let vmlinuz = unpacked.join("boot").join(format!("vmlinuz-{version}"));
    if !vmlinuz.exists() {
        bail!("{kpkg} has no {}", vmlinuz.display());
    }

    let mut c = Cpio::default();
    for d in ["bin", "sbin", "dev", "proc", "sys", "etc", "lib", "lib64", "usr", "usr/bin", "run", "tmp", "lib/modules"]
    {
        c.dir(d);
    }
    c.node("dev/console", 0o020600, (5, 1));
    c.file("init", 0o755, INIT.as_bytes().to_vec());
    c.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes().to_vec());
    c.file("bin/busybox", 0o755, std::fs::read(unpacked.join("bin/busybox")).context("busybox-static's busybox")?);
    // /init's interpreter, before busybox installs the rest.
    c.symlink("bin/sh", "busybox");
    // The agent, stripped, and what it links.
    let stripped = dir.with_extension("agent");
    run(Command::new("strip").arg("-o").arg(&stripped).arg(agent)).context("strip (binutils)")?;
    c.file(AGENT_PATH, 0o755, std::fs::read(&stripped)?);
    let _ = std::fs::remove_file(&stripped);
    // The agent's HTTP client loads the system's CA certificates (a site
    // serving boot over HTTPS adds its own CA to this bundle).
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    c.dir("etc/ssl/certs");
    c.file(
        "etc/ssl/certs/ca-certificates.crt",
        0o644,
        std::fs::read(ca).context("reading the CA bundle (ca-certificates)")?,
    );
    let mut libs = shared_libraries(agent)?;
    if let Ok(p) = which("blkdiscard") {
        c.file("sbin/blkdiscard", 0o755, std::fs::read(&p)?);
        libs.extend(shared_libraries(&p)?);
    }
    libs.sort();
    libs.dedup();
    for l in libs {
        let inside = l.to_string_lossy().trim_start_matches('/').to_string();
        if let Some(parent) = Path::new(&inside).parent() {
            c.dir(&parent.to_string_lossy());
        }
        c.file(&inside, 0o755, std::fs::read(&l).with_context(|| format!("reading {}", l.display()))?);
    }
    // Drivers, dependencies first.
    let order = module_order(&moddir, MODULES)?;
    let mut listed = String::new();
    for rel in &order {
        let name = Path::new(rel).file_name().context("a module file")?.to_string_lossy().into_owned();
        c.file(&format!("lib/modules/{name}"), 0o644, std::fs::read(moddir.join(rel))?);
        listed.push_str(&name);
        listed.push('\n');
    }
    c.file("etc/modules.order", 0o644, listed.into_bytes());

    let partial = cache.join(format!(".ramdisk-{}.partial", &key[..12]));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    std::fs::copy(&vmlinuz, partial.join("vmlinuz"))?;
    std::fs::write(partial.join("initramfs"), c.finish())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)?;
    // One ramdisk per cache: older ones were for an older agent or kernel.
    for e in std::fs::read_dir(cache)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("ramdisk-") && e.path() != dir {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(Ramdisk { kernel, initramfs, kernel_package: kpkg, cached: false })
}

fn which(tool: &str) -> anyhow::Result<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .with_context(|| format!("{tool} is not installed"))
}

/// The shared libraries a binary loads (`ldd`), by their real paths.
fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = run(Command::new("ldd").arg(bin))?;
    let mut libs = Vec::new();
    for l in out.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match l.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The module files (relative to the module dir) to load for `wanted`, each
/// after its dependencies; modules built into the kernel are left out. A
/// kernel package has no `modules.dep` (depmod makes it at install), so the
/// dependencies come from each module's own `.modinfo` (`depends=`) and the
/// files from `modules.order`.
pub fn module_order(moddir: &Path, wanted: &[&str]) -> anyhow::Result<Vec<String>> {
    let order = std::fs::read_to_string(moddir.join("modules.order")).context("reading modules.order")?;
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
    let base = |p: &str| {
        let f = p.rsplit('/').next().unwrap_or(p);
        f.split(".ko").next().unwrap_or(f).replace('-', "_")
    };
    let files: std::collections::HashMap<String, String> =
        order.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| (base(l), l.to_string())).collect();
    let is_builtin = |name: &str| builtin.lines().any(|l| base(l) == name);
    let mut out: Vec<String> = Vec::new();
    let mut stack: Vec<(String, bool)> = wanted.iter().rev().map(|w| (w.replace('-', "_"), false)).collect();
    while let Some((name, deps_done)) = stack.pop() {
        if is_builtin(&name) {
            continue;
        }
        let file = files
            .get(&name)
            .with_context(|| format!("the kernel has no module {name} (neither built in nor in modules.order)"))?;
        if out.contains(file) {
            continue;
        }
        if deps_done {
            out.push(file.clone());
            continue;
        }
        if !file.ends_with(".ko") {
            bail!("{file} is compressed; busybox insmod loads plain .ko files only");
        }
        let bytes = std::fs::read(moddir.join(file)).with_context(|| format!("reading {file}"))?;
        stack.push((name.clone(), true));
        for dep in depends(&bytes) {
            if !out.iter().any(|f| base(f) == dep) {
                stack.push((dep, false));
            }
        }
    }
    Ok(out)
}

/// The `depends=` of a module's `.modinfo` (NUL-separated `key=value`s).
fn depends(module: &[u8]) -> Vec<String> {
    module
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"depends="))
        .map(|d| String::from_utf8_lossy(d).split(',').filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect())
        .unwrap_or_default()
}

/// A `newc` cpio archive, as the kernel unpacks an initramfs.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory (and its parents), once.
    pub fn dir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if self.dirs.insert(at.clone()) {
                let name = at.clone();
                self.entry(&name, 0o040755, (0, 0), &[]);
            }
        }
    }

    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) {
        self.entry(path, 0o100000 | perm, (0, 0), &data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, 0o120777, (0, 0), target.as_bytes());
    }

    /// A device node: `mode` with its type bits, (major, minor).
    pub fn node(&mut self, path: &str, mode: u32, dev: (u32, u32)) {
        self.entry(path, mode, dev, &[]);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

/// The file `path` of a `newc` cpio archive, if it has it.
pub fn cpio_file(archive: &[u8], path: &str) -> Option<Vec<u8>> {
    let mut at = 0usize;
    let hex = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
    let up4 = |n: usize| n.div_ceil(4) * 4;
    while at + 110 <= archive.len() {
        let h = &archive[at..at + 110];
        if &h[..6] != b"070701" {
            return None;
        }
        let size = hex(&h[54..62])? as usize;
        let namesize = hex(&h[94..102])? as usize;
        let name_end = at + 110 + namesize;
        let name = archive.get(at + 110..name_end.checked_sub(1)?)?;
        let data_at = up4(name_end);
        let data = archive.get(data_at..data_at.checked_add(size)?)?;
        if name == b"TRAILER!!!" {
            return None;
        }
        if name == path.as_bytes() {
            return Some(data.to_vec());
        }
        at = up4(data_at + size);
    }
    None
}

/// The agent an initramfs holds, when the file is one.
pub fn agent_of(initrd: &[u8]) -> Option<Vec<u8>> {
    if !initrd.starts_with(b"070701") {
        return None;
    }
    cpio_file(initrd, AGENT_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_archives_round_trip_and_modules_load_after_their_dependencies() {
        let mut c = Cpio::default();
        c.dir("usr/bin");
        c.node("dev/console", 0o020600, (5, 1));
        c.file("init", 0o755, b"#!/bin/sh\n".to_vec());
        c.file(AGENT_PATH, 0o755, b"\x7fELF agent".to_vec());
        let a = c.finish();
        assert_eq!(a.len() % 512, 0);
        assert_eq!(cpio_file(&a, "init").unwrap(), b"#!/bin/sh\n");
        assert_eq!(agent_of(&a).unwrap(), b"\x7fELF agent");
        assert!(cpio_file(&a, "nope").is_none());
        assert!(agent_of(b"\x7fELF not an archive").is_none());
        // Truncated archives are no answer, not a panic.
        for n in [0, 7, 111, a.len() / 2] {
            let _ = cpio_file(&a[..n], AGENT_PATH);
        }

        let d = tempfile::tempdir().unwrap();
        let module = |rel: &str, deps: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("\x7fELF\0license=GPL\0depends={deps}\0intree=Y\0")).unwrap();
        };
        module("kernel/drivers/net/virtio_net.ko", "net_failover,failover");
        module("kernel/drivers/net/net_failover.ko", "failover");
        module("kernel/net/core/failover.ko", "");
        module("kernel/drivers/block/virtio_blk.ko", "");
        std::fs::write(
            d.path().join("modules.order"),
            "kernel/drivers/net/virtio_net.ko\nkernel/drivers/net/net_failover.ko\nkernel/net/core/failover.ko\nkernel/drivers/block/virtio_blk.ko\n",
        )
        .unwrap();
        std::fs::write(d.path().join("modules.builtin"), "kernel/drivers/virtio/virtio_pci.ko\n").unwrap();
        let o = module_order(d.path(), &["virtio_pci", "virtio_net", "virtio_blk"]).unwrap();
        assert_eq!(
            o,
            [
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
                "kernel/drivers/block/virtio_blk.ko"
            ]
        );
        let e = module_order(d.path(), &["e1000e"]).unwrap_err();
        assert!(format!("{e}").contains("no module e1000e"), "{e}");
    }
}
