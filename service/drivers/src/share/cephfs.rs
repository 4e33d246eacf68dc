//! CephFS native through the `ceph` CLI and the mgr `volumes` module: one
//! subvolume group per project, one subvolume per share (its size is the
//! quota), snapshots and clones of subvolumes, and `subvolume authorize`
//! for a cephx ID per access rule (caps limited to the subvolume's path).
//!
//! The management key reaches `ceph` through a `--keyfile` in a private
//! temp directory (mode 0600), never its command line or environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Grant, Progress, ShareBackend, ShareError, ShareInfo, ShareRef};

/// A CephFS filesystem (`ceph fs volume`) tundrad manages shares in.
#[derive(Clone)]
pub struct CephFs {
    pub monitors: Vec<String>,
    pub fs_name: String,
    pub client_id: String,
    key: Arc<String>,
    /// The `ceph` program (default: `ceph` on PATH).
    pub program: PathBuf,
    pub timeout: Duration,
    /// Subvolume groups this value has made (or found) already: one
    /// `subvolumegroup create` per project, not one per share.
    groups: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for CephFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CephFs")
            .field("monitors", &self.monitors)
            .field("fs_name", &self.fs_name)
            .field("client_id", &self.client_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// errno values the `ceph` CLI exits with.
const ENOENT: i32 = 2;
const EAGAIN: i32 = 11;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ENOTEMPTY: i32 = 39;
const ETIMEDOUT: i32 = 110;

struct Failure {
    code: i32,
    message: String,
}

impl CephFs {
    pub fn new(monitors: Vec<String>, fs_name: String, client_id: String, key: String) -> CephFs {
        CephFs {
            monitors,
            fs_name,
            client_id,
            key: Arc::new(key),
            program: PathBuf::from("ceph"),
            timeout: Duration::from_secs(15),
            groups: Arc::default(),
        }
    }

    /// Run `ceph … ARGS --format json`; its JSON answer (or `Null` when it printed nothing).
    async fn run(&self, args: &[&str]) -> Result<Value, Failure> {
        let dir = tempfile::Builder::new()
            .prefix("tundra-ceph-")
            .tempdir()
            .map_err(|e| Failure { code: -1, message: format!("cannot make a temp dir: {e}") })?;
        let keyfile = dir.path().join("key");
        write_private(&keyfile, self.key.as_bytes())
            .map_err(|e| Failure { code: -1, message: format!("cannot write the key file: {e}") })?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg("--conf")
            .arg("/dev/null")
            .arg("-m")
            .arg(self.monitors.join(","))
            .arg("--id")
            .arg(&self.client_id)
            .arg("--keyfile")
            .arg(&keyfile)
            .arg("--connect-timeout")
            .arg(self.timeout.as_secs().max(1).to_string())
            .arg("--format")
            .arg("json")
            .args(args)
            .env("CEPH_ARGS", "")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.timeout + Duration::from_secs(5), cmd.output())
            .await
            .map_err(|_| Failure { code: ETIMEDOUT, message: format!("`ceph {}` did not answer", args.join(" ")) })?
            .map_err(|e| Failure { code: -1, message: format!("cannot run {}: {e}", self.program.display()) })?;
        drop(dir);
        if !out.status.success() {
            let code = out.status.code().unwrap_or(-1);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // The CLI's own line ("Error ENOENT: …"), without librados' log lines.
            let message = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("20"))
                .unwrap_or("no message")
                .trim()
                .to_string();
            return Err(Failure { code, message });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        // Some answers are plain text whatever the format (`getpath`).
        Ok(serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.trim().to_string())))
    }

    fn err(&self, f: Failure, what: &str) -> ShareError {
        match f.code {
            ENOENT => ShareError::Missing(what.to_string()),
            // Refusals: bad input, a conflict the caller must resolve.
            1 | EEXIST | EINVAL | ENOTEMPTY | 13 | 28 | 95 | 122 => ShareError::Refused(f.message),
            // Out of reach (`--connect-timeout`), busy, or the CLI missing.
            _ => ShareError::Unavailable(f.message),
        }
    }

    async fn ensure_group(&self, group: &str) -> Result<(), ShareError> {
        if self.groups.lock().is_ok_and(|g| g.contains(group)) {
            return Ok(());
        }
        self.run(&["fs", "subvolumegroup", "create", &self.fs_name, group]).await.map_err(|f| self.err(f, group))?;
        if let Ok(mut g) = self.groups.lock() {
            g.insert(group.to_string());
        }
        Ok(())
    }

    async fn path(&self, s: &ShareRef) -> Result<String, ShareError> {
        let v = self
            .run(&["fs", "subvolume", "getpath", &self.fs_name, &s.name, "--group_name", &s.group])
            .await
            .map_err(|f| self.err(f, &s.name))?;
        match v {
            Value::String(p) => Ok(p),
            other => Err(ShareError::Unavailable(format!("unexpected getpath answer {other}"))),
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

impl ShareBackend for CephFs {
    async fn ensure(
        &self,
        share: &ShareRef,
        bytes: u64,
        from: Option<(&ShareRef, &str)>,
    ) -> Result<Progress<String>, ShareError> {
        self.ensure_group(&share.group).await?;
        let size = bytes.to_string();
        match from {
            None => {
                self.run(&[
                    "fs",
                    "subvolume",
                    "create",
                    &self.fs_name,
                    &share.name,
                    "--size",
                    &size,
                    "--group_name",
                    &share.group,
                    "--mode",
                    "0777",
                ])
                .await
                .map_err(|f| self.err(f, &share.name))?;
                self.path(share).await.map(Progress::Done)
            }
            Some((src, snap)) => {
                // The clone starts once; afterwards its status says how far it is.
                let status = self
                    .run(&["fs", "clone", "status", &self.fs_name, &share.name, "--group_name", &share.group])
                    .await;
                let state = match status {
                    Ok(v) => v["status"]["state"].as_str().unwrap_or("").to_string(),
                    Err(f) if f.code == ENOENT || f.code == EINVAL => {
                        // No such clone: a plain subvolume of that name is a finished clone
                        // (`clone status` of a complete clone still answers), else start it.
                        match self
                            .run(&[
                                "fs",
                                "subvolume",
                                "snapshot",
                                "clone",
                                &self.fs_name,
                                &src.name,
                                snap,
                                &share.name,
                                "--group_name",
                                &src.group,
                                "--target_group_name",
                                &share.group,
                            ])
                            .await
                        {
                            Ok(_) => "pending".to_string(),
                            Err(f) if f.code == EEXIST => "in-progress".to_string(),
                            Err(f) => return Err(self.err(f, snap)),
                        }
                    }
                    Err(f) => return Err(self.err(f, &share.name)),
                };
                match state.as_str() {
                    "complete" => {
                        self.resize(share, bytes).await?;
                        self.path(share).await.map(Progress::Done)
                    }
                    "failed" | "canceled" => Err(ShareError::Refused(format!(
                        "the clone of snapshot {snap} {state}; delete this share and try again"
                    ))),
                    other => Ok(Progress::Pending(format!("cloning from snapshot {snap} ({other})"))),
                }
            }
        }
    }

    async fn info(&self, share: &ShareRef) -> Result<ShareInfo, ShareError> {
        let v = self
            .run(&["fs", "subvolume", "info", &self.fs_name, &share.name, "--group_name", &share.group])
            .await
            .map_err(|f| self.err(f, &share.name))?;
        Ok(ShareInfo {
            path: v["path"].as_str().unwrap_or_default().to_string(),
            quota_bytes: v["bytes_quota"].as_u64(),
            used_bytes: v["bytes_used"].as_u64().unwrap_or(0),
        })
    }

    async fn resize(&self, share: &ShareRef, bytes: u64) -> Result<(), ShareError> {
        self.run(&[
            "fs",
            "subvolume",
            "resize",
            &self.fs_name,
            &share.name,
            &bytes.to_string(),
            "--group_name",
            &share.group,
        ])
        .await
        .map(|_| ())
        .map_err(|f| self.err(f, &share.name))
    }

    async fn delete(&self, share: &ShareRef) -> Result<(), ShareError> {
        match self
            .run(&["fs", "subvolume", "rm", &self.fs_name, &share.name, "--group_name", &share.group, "--force"])
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.code == ENOENT => Ok(()),
            // A clone still copying: cancel it, then the next call removes it.
            Err(f) if f.code == EAGAIN => {
                let _ = self
                    .run(&["fs", "clone", "cancel", &self.fs_name, &share.name, "--group_name", &share.group])
                    .await;
                Err(ShareError::Unavailable(f.message))
            }
            Err(f) => Err(self.err(f, &share.name)),
        }
    }

    async fn snapshot(&self, share: &ShareRef, snap: &str) -> Result<Progress<()>, ShareError> {
        match self
            .run(&[
                "fs",
                "subvolume",
                "snapshot",
                "create",
                &self.fs_name,
                &share.name,
                snap,
                "--group_name",
                &share.group,
            ])
            .await
        {
            Ok(_) => Ok(Progress::Done(())),
            Err(f) if f.code == EEXIST => Ok(Progress::Done(())),
            Err(f) => Err(self.err(f, &share.name)),
        }
    }

    async fn delete_snapshot(&self, share: &ShareRef, snap: &str) -> Result<(), ShareError> {
        match self
            .run(&[
                "fs",
                "subvolume",
                "snapshot",
                "rm",
                &self.fs_name,
                &share.name,
                snap,
                "--group_name",
                &share.group,
                "--force",
            ])
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.code == ENOENT => Ok(()),
            Err(f) => Err(self.err(f, snap)),
        }
    }

    async fn authorize(&self, share: &ShareRef, auth_id: &str, read_only: bool) -> Result<Grant, ShareError> {
        self.run(&[
            "fs",
            "subvolume",
            "authorize",
            &self.fs_name,
            &share.name,
            auth_id,
            "--group_name",
            &share.group,
            "--access_level",
            if read_only { "r" } else { "rw" },
        ])
        .await
        .map_err(|f| self.err(f, &share.name))?;
        let entity = format!("client.{auth_id}");
        let v = self.run(&["auth", "get", &entity]).await.map_err(|f| self.err(f, auth_id))?;
        let key = v
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e["key"].as_str())
            .ok_or_else(|| ShareError::Unavailable(format!("`ceph auth get {entity}` gave no key")))?;
        Ok(Grant { auth_id: auth_id.to_string(), key: key.to_string() })
    }

    async fn deauthorize(&self, share: &ShareRef, auth_id: &str) -> Result<(), ShareError> {
        // Evict first: `evict` finds the ID's clients through its grant, which
        // `deauthorize` removes (after it, evict only answers ENOENT).
        for verb in ["evict", "deauthorize"] {
            match self
                .run(&["fs", "subvolume", verb, &self.fs_name, &share.name, auth_id, "--group_name", &share.group])
                .await
            {
                Ok(_) | Err(Failure { code: ENOENT, .. }) => {}
                Err(f) => return Err(self.err(f, auth_id)),
            }
        }
        Ok(())
    }

    async fn allow(&self, _: &ShareRef, _: &[(String, bool)]) -> Result<(), ShareError> {
        Err(ShareError::Refused("CephFS shares take cephx rules, not addresses".into()))
    }
}
