//! Writable cgroups for an OS booted under `systemd-nspawn`, so it can run
//! containers (Docker, containerd) as the real machine would.
//!
//! On this host (cgroup v1, no systemd as PID 1) nspawn mounts the
//! controller hierarchies read-only inside the container, and runc then fails
//! with `mkdir /sys/fs/cgroup/cpuset/docker: read-only file system`. A real
//! server owns its cgroups; the lab gives each machine one of its own per
//! controller: a `tundra-lab-<machine namespace>` directory beside the
//! container's root cgroup, bind-mounted writable over the controller's mount
//! point in the container's mount namespace. What the OS makes there is
//! confined to that directory, and the lab removes it when the machine
//! halts or the lab is torn down (each directory made is recorded in a file
//! beside the machine's console log).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// One line of `/proc/PID/mountinfo`: (mount ID's device `major:minor`,
/// root within the filesystem, mount point, filesystem type, super options).
pub(crate) struct MountLine {
    device: String,
    root: String,
    pub(crate) point: String,
    fstype: String,
    options: String,
}

/// The mounts process `pid` (or `self`) sees.
pub(crate) fn mountinfo(pid: &str) -> Vec<MountLine> {
    parse_mountinfo(&std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default())
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                device: f.get(2)?.to_string(),
                root: f.get(3)?.to_string(),
                point: f.get(4)?.to_string(),
                fstype: r.first()?.to_string(),
                options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The v1 controller hierarchies mounted in the container (not the
/// `name=systemd` one nspawn already delegates, nor cgroup2).
fn controllers(lines: &[MountLine]) -> Vec<&MountLine> {
    lines
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.point.starts_with("/sys/fs/cgroup/") && !m.options.contains("name="))
        .collect()
}

/// The init process of the container `nspawn` runs, if it has one yet: its
/// descendant in a PID namespace of its own (nspawn's first child only sets
/// the container up). Tests that boot containers use it too.
pub fn container_init(nspawn: u32) -> Option<u32> {
    let pid_ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|s| s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
            .collect()
    };
    let ours = pid_ns(nspawn)?;
    let mut todo = children(nspawn);
    while let Some(p) = todo.pop() {
        if pid_ns(p).is_some_and(|ns| ns != ours) {
            return Some(p);
        }
        todo.extend(children(p));
    }
    None
}

async fn leader_of(nspawn: u32) -> anyhow::Result<u32> {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(p) = container_init(nspawn) {
            return Ok(p);
        }
        if start.elapsed() > Duration::from_secs(30) || !Path::new(&format!("/proc/{nspawn}")).exists() {
            bail!("systemd-nspawn ({nspawn}) started no container");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Give the container under `nspawn` a writable cgroup per controller,
/// named after `machine_ns`; record each directory made in `record`.
/// Returns how many controllers it delegated (a controller that fails is
/// left read-only and named in the error after the others are done).
pub async fn delegate(nspawn: u32, machine_ns: &str, record: &Path) -> anyhow::Result<usize> {
    let leader = leader_of(nspawn).await?;
    // nspawn sets the container up (its cgroup mounts among it) in the
    // container's first process before that execs init: wait for the exec.
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let start = tokio::time::Instant::now();
    while exe(leader).is_none() || exe(leader) == exe(nspawn) {
        if start.elapsed() > Duration::from_secs(30) || !Path::new(&format!("/proc/{leader}")).exists() {
            bail!("the container ({leader}) never started its init");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Hold its mount namespace open from here on (a PID may be reused once
    // the container is gone), and never act in our own: the mounts below
    // would replace the host's cgroup hierarchies.
    let ns =
        std::fs::File::open(format!("/proc/{leader}/ns/mnt")).context("opening the container's mount namespace")?;
    let ours = std::fs::metadata("/proc/self/ns/mnt")?;
    let theirs = ns.metadata()?;
    if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) {
        bail!("process {leader} is not in a mount namespace of its own; not a container");
    }
    // The container's systemd mounts any controller it finds unmounted
    // early in its boot: were it to look in the moment between the
    // unmount and the mount below, its hierarchy (rooted at `/`) would end
    // up beneath ours, and runc, reading that root, would build paths that
    // do not exist ("stat /sys/fs/cgroup/cpuset/tundra-lab-…/docker/…").
    // Its init stays stopped until the mounts are done (SIGSTOP reaches a
    // namespace's init from outside it).
    let _stopped = Stopped::new(leader);
    let inside = mountinfo(&leader.to_string());
    let host = mountinfo("self");
    let name = format!("tundra-lab-{machine_ns}");
    let mut made = 0;
    let mut failed = Vec::new();
    for c in controllers(&inside) {
        // The same hierarchy as this process sees it: its mount whose root
        // is an ancestor of (or equal to) the container's root.
        let Some(h) = host
            .iter()
            .filter(|h| h.fstype == "cgroup" && h.device == c.device && Path::new(&c.root).starts_with(&h.root))
            .max_by_key(|h| h.root.len())
        else {
            continue;
        };
        let rel = c.root.strip_prefix(h.root.as_str()).unwrap_or("").trim_start_matches('/');
        let parent = Path::new(&h.point).join(rel);
        let dir = parent.join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
        record_dir(record, &dir)?;
        if c.options.contains("cpuset") {
            // A new cpuset has no CPUs or memory nodes until given some: the
            // parent's (what it may use).
            for (f, from) in [("cpuset.cpus", "cpuset.effective_cpus"), ("cpuset.mems", "cpuset.effective_mems")] {
                let v = std::fs::read_to_string(parent.join(from))
                    .with_context(|| format!("reading {from} of {}", parent.display()))?;
                std::fs::write(dir.join(f), v.trim()).with_context(|| format!("setting {f} of {}", dir.display()))?;
            }
        }
        let target = PathBuf::from(&c.point);
        let sub = target.join(&name);
        let ns = ns.try_clone()?;
        let done = tokio::task::spawn_blocking(move || in_mount_ns(ns, move || replace_mount(&sub, &target)))
            .await
            .map_err(|e| anyhow::anyhow!("the mount thread: {e}"))?;
        match done {
            Ok(()) => made += 1,
            Err(e) => failed.push(format!("{}: {e:#}", c.point)),
        }
    }
    if !failed.is_empty() {
        bail!("{made} controllers delegated; not: {}", failed.join("; "));
    }
    Ok(made)
}

/// A process stopped (SIGSTOP) until this is dropped (SIGCONT), whatever
/// way the work done meanwhile ends.
struct Stopped(nix::unistd::Pid);

impl Stopped {
    fn new(pid: u32) -> Self {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// Run `f` on a thread of its own inside the mount namespace `ns` (an open
/// `/proc/PID/ns/mnt`): paths resolve in the container, while the code that
/// runs is ours — never the container's own `mount`, which its OS could
/// have replaced.
fn in_mount_ns(ns: std::fs::File, f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<()> {
    use nix::sched::{CloneFlags, setns, unshare};
    std::thread::spawn(move || {
        // This thread's root and working directory become the container's;
        // unshared first, so no other thread's change.
        unshare(CloneFlags::CLONE_FS).context("unshare(CLONE_FS)")?;
        setns(&ns, CloneFlags::CLONE_NEWNS).context("entering the container's mount namespace")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the mount thread panicked"))?
}

/// In the container: replace the read-only mount at `target` by a writable
/// one of its subdirectory `sub` — replaced, not stacked over it, since runc
/// reads the mount's root to find the cgroups it makes — by way of a spare
/// mount point in `/run` (once `target` is unmounted `sub` cannot be named).
fn replace_mount(sub: &Path, target: &Path) -> anyhow::Result<()> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let spare = Path::new("/run/tundra-lab-cgroup");
    std::fs::create_dir_all(spare).context("making /run/tundra-lab-cgroup")?;
    let none: Option<&str> = None;
    // nspawn makes the container's mounts shared: were they peers of other
    // machines' (or the host's), the unmount and mounts below would reach
    // them too, and one machine's cgroups would land under another's (runc
    // then builds paths from a mount whose root is not its cgroup's, and
    // containers fail to start there). Private first: what happens here
    // stays here. (Best effort: a tree not mounted that way has no peers.)
    for tree in [Path::new("/sys/fs/cgroup"), Path::new("/run")] {
        let _ = mount(none, tree, none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none);
    }
    mount(Some(sub), spare, none, MsFlags::MS_BIND, none).context("binding the machine's cgroup")?;
    // Every mount at the point, should more than one be stacked there: runc
    // reads the lowest one's root.
    let mut unmounted = 0;
    while umount2(target, MntFlags::MNT_DETACH).is_ok() {
        unmounted += 1;
        if unmounted > 8 {
            break;
        }
    }
    if unmounted == 0 {
        let _ = umount2(spare, MntFlags::MNT_DETACH);
        bail!("{} was not a mount point to replace", target.display());
    }
    let moved = mount(Some(spare), target, none, MsFlags::MS_BIND, none).context("mounting the machine's cgroup");
    let _ = umount2(spare, MntFlags::MNT_DETACH);
    moved?;
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(none, target, none, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | keep, none).context("making it writable")?;
    // This thread's view is the container's.
    let now = parse_mountinfo(&std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default());
    let at = now.iter().filter(|m| Path::new(&m.point) == target).count();
    if at != 1 {
        bail!("{at} mounts at {} after replacing it, not one", target.display());
    }
    Ok(())
}

/// Add `dir` to the record (once), before anything is mounted from it, so
/// a failure half-way leaves nothing the teardown does not know of.
fn record_dir(record: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut listed = std::fs::read_to_string(record).unwrap_or_default();
    let line = dir.display().to_string();
    if !listed.lines().any(|l| l == line) {
        listed.push_str(&line);
        listed.push('\n');
        std::fs::write(record, listed).with_context(|| format!("writing {}", record.display()))?;
    }
    Ok(())
}

/// Remove the cgroup directories listed in `record` with everything the OS
/// made under them (deepest first); what still has processes stays and
/// stays listed. Returns how many could not go.
pub fn remove_recorded(record: &Path) -> usize {
    let Ok(listed) = std::fs::read_to_string(record) else { return 0 };
    let mut left = String::new();
    for line in listed.lines().filter(|l| !l.is_empty()) {
        if !remove_tree(Path::new(line)) {
            left.push_str(line);
            left.push('\n');
        }
    }
    let n = left.lines().count();
    if n == 0 {
        let _ = std::fs::remove_file(record);
    } else {
        let _ = std::fs::write(record, left);
    }
    n
}

/// `rmdir` a cgroup and its descendants, deepest first (cgroup directories
/// only go with rmdir, and only once empty of processes and children).
fn remove_tree(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
        dirs.push(d);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    // Processes may take a moment to leave after a kill: a few seconds for
    // the whole tree, not per directory.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for d in &dirs {
        while std::fs::remove_dir(d).is_err() && d.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    !dir.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_are_the_v1_hierarchies_but_not_systemds() {
        let sample = "\
54 107 0:48 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,size=4096k
55 54 0:31 / /sys/fs/cgroup/cpuset ro,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset
61 54 0:32 /process_api/f35c /sys/fs/cgroup/memory ro,nosuid shared:21 - cgroup cgroup rw,memory
63 54 0:38 /payload /sys/fs/cgroup/unified rw,nosuid shared:23 - cgroup2 cgroup rw
64 54 0:37 /payload /sys/fs/cgroup/systemd rw,nosuid shared:24 - cgroup cgroup rw,name=systemd";
        let lines = parse_mountinfo(sample);
        let c: Vec<(&str, &str)> = controllers(&lines).iter().map(|m| (m.point.as_str(), m.root.as_str())).collect();
        assert_eq!(c, [("/sys/fs/cgroup/cpuset", "/"), ("/sys/fs/cgroup/memory", "/process_api/f35c")]);
    }

    #[test]
    fn removal_goes_deepest_first_and_keeps_the_record_of_what_stays() {
        // Plain directories stand in for cgroups (rmdir works the same way
        // on empty ones).
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("tundra-lab-x");
        std::fs::create_dir_all(a.join("docker/abc")).unwrap();
        let record = dir.path().join("cgroups");
        std::fs::write(&record, format!("{}\n", a.display())).unwrap();
        assert_eq!(remove_recorded(&record), 0);
        assert!(!a.exists() && !record.exists());
    }
}
