//! NFS through NFS-Ganesha (NFSv4, the VFS FSAL) on a file server tundrad
//! logs into over SSH. A share is a directory under the type's root, and an
//! export of it whose `CLIENT` blocks are the share's address rules.
//!
//! tundrad owns one exports file, which the site's `ganesha.conf` pulls in
//! with `%include`: each change rewrites it whole (a temp file renamed over
//! it) and sends Ganesha SIGHUP, which re-reads the exports — added,
//! changed and removed alike — without DBus. The file is also the record:
//! each export is preceded by a `# tundra-share` line tundrad reads back.
//!
//! Ganesha's VFS FSAL enforces no per-export size, so a share's size here
//! is its allowance, not a quota: `info` reports the use (`du`) and callers
//! refuse a shrink below it. Snapshots are copies (`cp -a --reflink=auto`,
//! so a filesystem with reflinks makes them cheap).

use std::collections::BTreeMap;

use super::remote::{Remote, Server, q};
use super::{Grant, Progress, ShareBackend, ShareError, ShareInfo, ShareRef};

/// What a copy keeps beside its target: its lock, the copy in progress, its
/// error output, and that output once the copy has failed.
const COPY_SIDE_FILES: [&str; 4] = [".tundra-lock", ".tundra-new", ".tundra-err", ".tundra-failed"];

/// Export IDs tundrad hands out start here (0 is Ganesha's pseudo root; a
/// site's own exports can keep the ones below).
const FIRST_ID: u32 = 1000;

#[derive(Debug, Clone)]
pub struct Nfs {
    pub remote: Remote,
    /// The directory on the server each share's directory goes under.
    pub root: String,
    /// The exports file tundrad owns (the site's ganesha.conf `%include`s it).
    pub exports_file: String,
    /// Ganesha's PID file, to signal it.
    pub pid_file: String,
}

/// One export as the file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Export {
    id: u32,
    /// Clients (CIDR) and whether each is read-only.
    clients: Vec<(String, bool)>,
}

const MARK: &str = "# tundra-share ";

/// The exports in the file: `group/name` → export.
fn parse(file: &str) -> Result<BTreeMap<String, Export>, ShareError> {
    let mut out = BTreeMap::new();
    for line in file.lines() {
        let Some(rest) = line.strip_prefix(MARK) else { continue };
        let mut words = rest.split_whitespace();
        let key = words.next().unwrap_or_default().to_string();
        let mut e = Export { id: 0, clients: Vec::new() };
        for w in words {
            if let Some(v) = w.strip_prefix("id=") {
                e.id = v.parse().unwrap_or(0);
            } else if let Some(v) = w.strip_prefix("rw=") {
                e.clients.extend(v.split(',').filter(|c| !c.is_empty()).map(|c| (c.to_string(), false)));
            } else if let Some(v) = w.strip_prefix("ro=") {
                e.clients.extend(v.split(',').filter(|c| !c.is_empty()).map(|c| (c.to_string(), true)));
            }
        }
        e.clients.sort();
        if key.is_empty() || e.id == 0 {
            return Err(ShareError::Refused(format!("the exports file has a line tundrad cannot read: {line:?}")));
        }
        out.insert(key, e);
    }
    Ok(out)
}

impl Nfs {
    fn dir(&self, s: &ShareRef) -> String {
        format!("{}/{}/{}", self.root, s.group, s.name)
    }

    fn snapshot_dir(&self, s: &ShareRef, snap: &str) -> String {
        format!("{}/.snapshots/{}/{}/{snap}", self.root, s.group, s.name)
    }

    /// The path clients mount (Ganesha's pseudo path).
    pub fn pseudo(s: &ShareRef) -> String {
        format!("/{}/{}", s.group, s.name)
    }

    /// The exports file as it should be.
    fn render(&self, exports: &BTreeMap<String, Export>) -> String {
        let mut out = String::from("# Written by tundrad: every change rewrites this file. Do not edit it.\n");
        for (key, e) in exports {
            let list = |ro: bool| e.clients.iter().filter(|c| c.1 == ro).map(|c| c.0.as_str()).collect::<Vec<_>>();
            let (rw, ro) = (list(false), list(true));
            let (group, name) = key.split_once('/').unwrap_or((key, ""));
            let r = ShareRef { group: group.into(), name: name.into() };
            out.push_str(&format!("{MARK}{key} id={} rw={} ro={}\n", e.id, rw.join(","), ro.join(",")));
            out.push_str(&format!(
                "EXPORT {{\n  Export_Id = {};\n  Path = \"{}\";\n  Pseudo = \"{}\";\n  Protocols = 4;\n  \
                 Transports = TCP;\n  Access_Type = None;\n  Squash = No_Root_Squash;\n  SecType = sys;\n  \
                 FSAL {{ Name = VFS; }}\n",
                e.id,
                self.dir(&r),
                Self::pseudo(&r)
            ));
            for (clients, level) in [(rw, "RW"), (ro, "RO")] {
                if !clients.is_empty() {
                    out.push_str(&format!("  CLIENT {{ Clients = {}; Access_Type = {level}; }}\n", clients.join(", ")));
                }
            }
            out.push_str("}\n");
        }
        out
    }

    /// The exports as the file records them; no file yet is none, but a
    /// file that cannot be read is an error (never taken for empty).
    async fn read(&self, s: &mut Server) -> Result<BTreeMap<String, Export>, ShareError> {
        let f = q(&self.exports_file);
        let file = s.must(&format!("if test -e {f}; then cat {f}; fi"), None).await?;
        parse(&file)
    }

    /// Write the exports (only when they changed).
    async fn write(&self, s: &mut Server, exports: &BTreeMap<String, Export>) -> Result<(), ShareError> {
        let f = q(&self.exports_file);
        let tmp = q(&format!("{}.tundra-new", self.exports_file));
        s.must(&format!("cat > {tmp} && mv {tmp} {f}"), Some(self.render(exports).as_bytes())).await?;
        Ok(())
    }

    /// Have Ganesha re-read the exports — after every change call, written
    /// or not: a call cut off between the write and the signal is repaired
    /// by its retry. Ganesha not running is the server out of reach.
    async fn reload(&self, s: &mut Server) -> Result<(), ShareError> {
        match s.run(&format!("kill -HUP \"$(cat {})\"", q(&self.pid_file)), None).await? {
            Ok(_) => Ok(()),
            Err(f) => Err(ShareError::Unavailable(format!(
                "could not signal NFS-Ganesha (PID file {}): {}",
                self.pid_file,
                f.output.trim()
            ))),
        }
    }

    /// Copy `from` to `to` on the server, detached from this session (a big
    /// share takes longer than a call may): started once (a lock file keeps a
    /// second copy from starting), done when `to` exists. A copy that failed
    /// leaves its error beside the target; the next call reports it (once)
    /// as a refusal.
    async fn copy(&self, s: &mut Server, from: &str, to: &str) -> Result<Progress<()>, ShareError> {
        let (from, to_q) = (q(from), q(to));
        let [lock, tmp, err, failed] = COPY_SIDE_FILES.map(|x| q(&format!("{to}{x}")));
        let script = format!(
            "rm -rf {tmp}; if cp -a --reflink=auto {from} {tmp} 2>{err} && mv {tmp} {to_q}; then rm -f {err}; \
             else rm -rf {tmp}; mv {err} {failed}; fi; rm -f {lock}"
        );
        let out = s
            .must(
                &format!(
                    "if test -d {to_q}; then echo done; elif test -e {failed}; then echo failed; cat {failed}; rm -f {failed}; \
                     else mkdir -p \"$(dirname {to_q})\" && \
                     setsid -f flock -n {lock} sh -c {} </dev/null >/dev/null 2>&1; echo copying; fi",
                    q(&script)
                ),
                None,
            )
            .await?;
        match out.trim().split_once('\n').unwrap_or((out.trim(), "")) {
            ("done", _) => Ok(Progress::Done(())),
            ("failed", why) => {
                Err(ShareError::Refused(format!("copying to {to} failed on the server: {}", why.trim())))
            }
            _ => Ok(Progress::Pending(format!("copying to {to}"))),
        }
    }
}

impl ShareBackend for Nfs {
    async fn ensure(
        &self,
        share: &ShareRef,
        _bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> Result<Progress<String>, ShareError> {
        self.remote
            .session(async |s| {
                match from {
                    Some((src, snap)) => {
                        if let Progress::Pending(why) =
                            self.copy(s, &self.snapshot_dir(src, snap), &self.dir(share)).await?
                        {
                            return Ok(Progress::Pending(why));
                        }
                    }
                    None => {
                        s.must(&format!("mkdir -p {}", q(&self.dir(share))), None).await?;
                    }
                }
                let mut exports = self.read(s).await?;
                let key = format!("{}/{}", share.group, share.name);
                if !exports.contains_key(&key) {
                    let id = (FIRST_ID..).find(|i| exports.values().all(|e| e.id != *i)).unwrap_or(FIRST_ID);
                    exports.insert(key, Export { id, clients: Vec::new() });
                    self.write(s, &exports).await?;
                }
                self.reload(s).await?;
                Ok(Progress::Done(Self::pseudo(share)))
            })
            .await
    }

    async fn info(&self, share: &ShareRef) -> Result<ShareInfo, ShareError> {
        self.remote
            .session(async |s| {
                let dir = q(&self.dir(share));
                match s.run(&format!("du -sb {dir}"), None).await? {
                    Ok(out) => {
                        let used = out.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        Ok(ShareInfo { path: Self::pseudo(share), quota_bytes: None, used_bytes: used })
                    }
                    Err(_) => Err(ShareError::Missing(format!("directory {}", self.dir(share)))),
                }
            })
            .await
    }

    /// Nothing to change on the server: the size is the share's allowance.
    async fn resize(&self, share: &ShareRef, _bytes: u64) -> Result<(), ShareError> {
        self.info(share).await.map(|_| ())
    }

    async fn delete(&self, share: &ShareRef) -> Result<(), ShareError> {
        self.remote
            .session(async |s| {
                let mut exports = self.read(s).await?;
                if exports.remove(&format!("{}/{}", share.group, share.name)).is_some() {
                    self.write(s, &exports).await?;
                }
                self.reload(s).await?;
                // (A copy still running into `.tundra-new` fails once its target is gone.)
                let dir = self.dir(share);
                let side = COPY_SIDE_FILES.map(|x| q(&format!("{dir}{x}"))).join(" ");
                s.must(
                    &format!(
                        "rm -rf {} {side} {}",
                        q(&dir),
                        q(&format!("{}/.snapshots/{}/{}", self.root, share.group, share.name))
                    ),
                    None,
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn snapshot(&self, share: &ShareRef, snap: &str) -> Result<Progress<()>, ShareError> {
        self.remote.session(async |s| self.copy(s, &self.dir(share), &self.snapshot_dir(share, snap)).await).await
    }

    async fn delete_snapshot(&self, share: &ShareRef, snap: &str) -> Result<(), ShareError> {
        self.remote
            .session(async |s| {
                let to = self.snapshot_dir(share, snap);
                let side = COPY_SIDE_FILES.map(|x| q(&format!("{to}{x}"))).join(" ");
                s.must(&format!("rm -rf {} {side}", q(&to)), None).await?;
                Ok(())
            })
            .await
    }

    async fn authorize(&self, _: &ShareRef, _: &str, _: bool) -> Result<Grant, ShareError> {
        Err(ShareError::Refused("NFS shares take address rules, not cephx IDs".into()))
    }

    async fn deauthorize(&self, _: &ShareRef, _: &str) -> Result<(), ShareError> {
        Err(ShareError::Refused("NFS shares take address rules, not cephx IDs".into()))
    }

    async fn allow(&self, share: &ShareRef, clients: &[(String, bool)]) -> Result<(), ShareError> {
        self.remote
            .session(async |s| {
                let mut exports = self.read(s).await?;
                let key = format!("{}/{}", share.group, share.name);
                let Some(e) = exports.get_mut(&key) else {
                    return Err(ShareError::Missing(format!("export of {key}")));
                };
                let mut want = clients.to_vec();
                want.sort();
                want.dedup();
                if e.clients != want {
                    e.clients = want;
                    self.write(s, &exports).await?;
                }
                self.reload(s).await?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nfs() -> Nfs {
        Nfs {
            remote: Remote::new(
                "10.0.0.9:22".into(),
                "root".into(),
                "SHA256:x".into(),
                crate::bmc::Password(String::new()),
            ),
            root: "/srv/tundra".into(),
            exports_file: "/etc/ganesha/tundra.conf".into(),
            pid_file: "/run/ganesha/ganesha.pid".into(),
        }
    }

    #[test]
    fn the_exports_file_reads_back_what_it_was_written_with() {
        let mut m = BTreeMap::new();
        m.insert(
            "p1/s1".to_string(),
            Export { id: 1000, clients: vec![("10.0.0.0/24".into(), false), ("10.1.0.5/32".into(), true)] },
        );
        m.insert("p1/s2".to_string(), Export { id: 1001, clients: vec![] });
        let file = nfs().render(&m);
        assert!(file.contains("Path = \"/srv/tundra/p1/s1\";"));
        assert!(file.contains("Pseudo = \"/p1/s1\";"));
        assert!(file.contains("CLIENT { Clients = 10.0.0.0/24; Access_Type = RW; }"));
        assert!(file.contains("CLIENT { Clients = 10.1.0.5/32; Access_Type = RO; }"));
        // An export without rules lets no one in.
        let s2 = &file[file.find("p1/s2").unwrap()..];
        assert!(!s2.contains("CLIENT"));
        assert_eq!(parse(&file).unwrap(), m);
        assert!(parse("# tundra-share p1/s1 rw=\n").is_err());
    }
}
