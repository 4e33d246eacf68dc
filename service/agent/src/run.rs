//! The agent's side of the agent protocol (`tundra_api::agent`): find tundrad
//! and the per-boot token on the kernel command line, then ask for work, do
//! it, report, until tundrad says `exit`.
//!
//! tundrad may restart at any moment (and a deploy must still finish), so
//! every call is retried until it answers: an image download that breaks off
//! resumes with a `Range` request, and a report is resent until it is
//! accepted. A command already done is never redone — its report is resent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tundra_api::agent::{Command, Heartbeat, Report, ReportAccepted};

/// What the kernel command line told the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// tundrad's base URL as the machine reaches it (`tundra.api=`).
    pub api: String,
    /// The per-boot agent token (`tundra.token=`).
    pub token: String,
    /// How long inspection listens for LLDP (`tundra.lldp_wait=SECONDS`, default 0: not at all).
    pub lldp_wait: Duration,
}

/// Read `tundra.api=` and `tundra.token=` from a kernel command line.
pub fn boot_params(cmdline: &str) -> Result<BootParams, String> {
    let get = |key: &str| {
        cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
            .ok_or_else(|| {
                format!("the kernel command line has no {key}= (was the machine booted by tundrad's iPXE script?)")
            })
    };
    let lldp_wait = match get("tundra.lldp_wait") {
        Ok(v) => Duration::from_secs_f64(
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or(format!("tundra.lldp_wait={v} is not a number of seconds"))?,
        ),
        Err(_) => Duration::ZERO,
    };
    Ok(BootParams { api: get("tundra.api")?.trim_end_matches('/').to_string(), token: get("tundra.token")?, lldp_wait })
}

/// The agent's run: `root` is `/` on a machine (the lab points it at the
/// machine's hardware tree; disks are `root/dev/NAME`).
pub struct Agent {
    http: reqwest::Client,
    params: BootParams,
    root: PathBuf,
    /// Reports of finished commands, by command ID.
    done: HashMap<String, Report>,
    /// How long to keep retrying a call while tundrad does not answer.
    pub patience: Duration,
}

impl Agent {
    pub fn new(params: BootParams, root: &Path) -> Agent {
        let http =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().expect("the HTTP client builds");
        Agent { http, params, root: root.to_path_buf(), done: HashMap::new(), patience: Duration::from_secs(1800) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.params.api)
    }

    /// POST `body` to `path`, retrying (with backoff up to 5 s) on transport
    /// errors and 5xx for up to `patience`; 4xx is final (the token is no
    /// longer valid: the operation that booted this machine is over).
    async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, String> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let r = self.http.post(self.url(path)).bearer_auth(&self.params.token).json(body).send().await;
            let why = match r {
                Ok(resp) if resp.status().is_success() => {
                    return resp.json().await.map_err(|e| format!("{path}: unreadable answer: {e}"));
                }
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(format!("{path}: tundrad answered {status}: {text}"));
                }
                Ok(resp) => format!("tundrad answered {}", resp.status()),
                Err(e) => format!("tundrad did not answer: {e}"),
            };
            if start.elapsed() > self.patience {
                return Err(format!("{path}: {why}; gave up after {:?}", self.patience));
            }
            eprintln!("tundra-agent: {path}: {why}; retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Run until tundrad says `exit` (Ok) or stops recognising the token (Err).
    pub async fn run(&mut self) -> Result<(), String> {
        let version = env!("CARGO_PKG_VERSION").to_string();
        loop {
            let hb = Heartbeat { version: version.clone(), running: None, progress: None };
            let cmd: Command = self.post("/v1/agent/heartbeat", &hb).await?;
            match cmd {
                Command::Exit => return Ok(()),
                Command::Wait { seconds } => {
                    tokio::time::sleep(Duration::from_secs(u64::from(seconds.clamp(1, 60)))).await;
                }
                work => {
                    let id = work.id().expect("work has an id").to_string();
                    let report = match self.done.get(&id) {
                        Some(r) => r.clone(),
                        None => {
                            eprintln!("tundra-agent: running {id}");
                            let r = self.execute(&work).await;
                            self.done.insert(id.clone(), r.clone());
                            r
                        }
                    };
                    let _: ReportAccepted = self.post("/v1/agent/report", &report).await?;
                }
            }
        }
    }

    fn disk(&self, name: &str) -> Result<PathBuf, String> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!("{name:?} is not a disk name"));
        }
        Ok(self.root.join("dev").join(name))
    }

    /// Run a command while heartbeating its progress every few seconds.
    async fn execute(&self, cmd: &Command) -> Report {
        let progress = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let work = self.work(cmd, progress.clone());
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tick.tick() => {
                    let p = progress.lock().map(|p| p.clone()).unwrap_or_default();
                    let hb = Heartbeat { version: env!("CARGO_PKG_VERSION").into(), running: cmd.id().map(String::from), progress: (!p.is_empty()).then_some(p) };
                    // Progress is best effort: one try, no retries.
                    let _ = self.http.post(self.url("/v1/agent/heartbeat")).bearer_auth(&self.params.token).json(&hb).send().await;
                }
            }
        }
    }

    async fn work(&self, cmd: &Command, progress: std::sync::Arc<std::sync::Mutex<String>>) -> Report {
        let id = cmd.id().unwrap_or_default().to_string();
        let result: Result<serde_json::Value, String> = match cmd {
            Command::Inspect { .. } => async {
                let mut inv = crate::inventory::collect(&self.root)
                    .map_err(|e| format!("reading the hardware under {}: {e}", self.root.display()))?;
                if !self.params.lldp_wait.is_zero() {
                    if let Ok(mut p) = progress.lock() {
                        *p = format!("listening for LLDP for {:?}", self.params.lldp_wait);
                    }
                    let names: Vec<String> = inv.nics.iter().filter(|n| n.kind == "ether").map(|n| n.name.clone()).collect();
                    let wait = self.params.lldp_wait;
                    let heard = tokio::task::spawn_blocking(move || crate::lldp::listen(&names, wait))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("listening for LLDP: {e}"))?;
                    for nic in &mut inv.nics {
                        nic.lldp = heard.get(&nic.name).cloned();
                    }
                }
                serde_json::to_value(inv).map_err(|e| e.to_string())
            }
            .await,
            Command::WriteImage { url, sha256, disk, config_drive, .. } => async {
                let target = self.disk(disk)?;
                let url = if url.starts_with('/') { self.url(url) } else { url.clone() };
                let mut attempt = 0;
                let w = loop {
                    // A download that breaks off resumes inside write_image;
                    // one that cannot even start (tundrad restarting) is retried here.
                    let r = crate::image::write_image(&self.http, &url, Some(&self.params.token), sha256, &target, |n, t| {
                        if let Ok(mut p) = progress.lock() {
                            *p = match t {
                                Some(t) => format!("wrote {} of {} MiB", n >> 20, t >> 20),
                                None => format!("wrote {} MiB", n >> 20),
                            };
                        }
                    })
                    .await;
                    match r {
                        Err(crate::image::ImageError::Fetch(e)) if attempt < 60 => {
                            attempt += 1;
                            eprintln!("tundra-agent: fetching the image: {e}; retrying");
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        r => break r.map_err(|e| e.to_string())?,
                    }
                };
                let mut out = serde_json::json!({"bytes": w.bytes, "sha256": w.sha256, "seconds": w.seconds, "resumed": w.resumed});
                if let Some(files) = config_drive.clone() {
                    if let Ok(mut p) = progress.lock() {
                        *p = "writing the config drive".into();
                    }
                    let t = target.clone();
                    let d = tokio::task::spawn_blocking(move || crate::config_drive::write(&t, &files))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("the image is written, but the config drive is not: {e}"))?;
                    out["config_drive"] = serde_json::to_value(d).map_err(|e| e.to_string())?;
                }
                Ok(out)
            }
            .await,
            Command::Erase { disks, .. } => async {
                let mut out = serde_json::Map::new();
                let disks = if disks.is_empty() {
                    crate::inventory::collect(&self.root)
                        .map_err(|e| format!("listing disks: {e}"))?
                        .disks
                        .into_iter()
                        .map(|d| d.name)
                        .collect()
                } else {
                    disks.clone()
                };
                for name in &disks {
                    if let Ok(mut p) = progress.lock() {
                        *p = format!("erasing {name}");
                    }
                    let path = self.disk(name)?;
                    let method = crate::erase::erase(&path).await.map_err(|e| format!("erasing {name}: {e}"))?;
                    let zero = crate::erase::verify_zero(&path).await.map_err(|e| format!("reading {name} back: {e}"))?;
                    if !zero {
                        return Err(format!("{name} is not all zero after erasing ({method:?})"));
                    }
                    let size_bytes = crate::erase::size(&path).await.map_err(|e| format!("sizing {name}: {e}"))?;
                    out.insert(
                        name.clone(),
                        serde_json::json!({"method": format!("{method:?}"), "verified_zero": zero, "size_bytes": size_bytes}),
                    );
                }
                Ok(serde_json::Value::Object(out))
            }
            .await,
            Command::Wait { .. } | Command::Exit => Ok(serde_json::Value::Null),
        };
        match result {
            Ok(details) => Report { id, ok: true, error: None, details },
            Err(e) => {
                eprintln!("tundra-agent: {id} failed: {e}");
                Report { id, ok: false, error: Some(e), details: serde_json::Value::Null }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_params_come_from_the_command_line() {
        let p = boot_params("BOOT_IMAGE=/vmlinuz tundra.api=http://10.0.0.1:8180/ tundra.token=tna_abc console=ttyS0")
            .unwrap();
        assert_eq!(
            p,
            BootParams { api: "http://10.0.0.1:8180".into(), token: "tna_abc".into(), lldp_wait: Duration::ZERO }
        );
        let p = boot_params("tundra.api=http://a tundra.token=t tundra.lldp_wait=2.5").unwrap();
        assert_eq!(p.lldp_wait, Duration::from_millis(2500));
        assert!(boot_params("tundra.api=http://a tundra.token=t tundra.lldp_wait=soon").is_err());
        let e = boot_params("quiet splash").unwrap_err();
        assert!(e.contains("tundra.api="), "{e}");
    }

    #[test]
    fn disk_names_stay_under_dev() {
        let a = Agent::new(
            BootParams { api: "http://x".into(), token: "t".into(), lldp_wait: Duration::ZERO },
            Path::new("/r"),
        );
        assert_eq!(a.disk("vda").unwrap(), Path::new("/r/dev/vda"));
        assert!(a.disk("../etc/passwd").is_err());
        assert!(a.disk("").is_err());
    }
}
