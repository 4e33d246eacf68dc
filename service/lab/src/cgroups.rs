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

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// One line of `/proc/PID/mountinfo`: (mount ID's device `major:minor`,
/// root within the filesystem, mount point, filesystem type, super options).
struct MountLine {
    device: String,
    root: String,
    point: String,
    fstype: String,
    options: String,
}

fn mountinfo(pid: &str) -> Vec<MountLine> {
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
/// Returns how many controllers it delegated.
pub async fn delegate(nspawn: u32, machine_ns: &str, record: &Path) -> anyhow::Result<usize> {
    let leader = leader_of(nspawn).await?.to_string();
    // Never this process's own mount namespace: the mounts below would
    // replace the host's cgroup hierarchies.
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    if ns(&leader).is_none() || ns(&leader) == ns("self") {
        bail!("process {leader} is not in a mount namespace of its own; not a container");
    }
    // nspawn mounts the hierarchies before it starts the container's init;
    // wait until they show.
    let start = tokio::time::Instant::now();
    let inside = loop {
        let lines = mountinfo(&leader);
        if !controllers(&lines).is_empty() {
            break lines;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the container ({leader}) mounted no cgroup controllers");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let host = mountinfo("self");
    let name = format!("tundra-lab-{machine_ns}");
    let mut made = Vec::new();
    for c in controllers(&inside) {
        // The same hierarchy as this process sees it: its mount whose root
        // is an ancestor of (or equal to) the container's root.
        let Some(h) = host
            .iter()
            .filter(|h| h.fstype == "cgroup" && h.device == c.device && c.root.starts_with(h.root.as_str()))
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
            // A new cpuset has no CPUs or memory nodes until given its parent's.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                std::fs::write(dir.join(f), v.trim()).with_context(|| format!("setting {f} of {}", dir.display()))?;
            }
        }
        made.push(dir);
        // Replace the read-only mount by one of the machine's directory
        // (not stacked over it: runc reads the mount's root to find the
        // cgroups it makes), by way of a spare mount point in /run.
        let target = c.point.as_str();
        let sub = format!("{target}/{name}");
        let spare = "/run/tundra-lab-cgroup";
        for args in [
            &["mkdir", "-p", spare][..],
            &["mount", "--bind", &sub, spare],
            &["umount", "-l", target],
            &["mount", "--bind", spare, target],
            &["umount", spare],
            &["mount", "-o", "remount,bind,rw", target],
        ] {
            let out = Command::new("nsenter")
                .args(["-t", &leader, "-m", "-p", "--"])
                .args(args)
                .output()
                .await
                .context("running nsenter")?;
            if !out.status.success() {
                bail!("{args:?} in the container: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
    }
    Ok(made.len())
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
    for d in &dirs {
        // Processes may take a moment to leave after a kill.
        for _ in 0..50 {
            if std::fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
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
