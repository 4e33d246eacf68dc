//! The world an API test owns: a temp data dir, its own database (a SQLite
//! file, or a throwaway PostgreSQL cluster started from Debian's binaries on
//! a free loopback port), and `tundrad` served in-process on port 0.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tundrad::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL cluster in a temp dir, stopped and removed on drop.
pub use tundra_lab::pg::Pg;

/// A provisioning network on the loopback interface (DHCP and TFTP bound to
/// `lo` on free ports, the boot listener on 127.0.0.1:0, pool
/// 127.0.0.100-127.0.0.199), whose DHCP server starts out holding `leases`
/// (MAC, address) — as its journal would after real exchanges (the netboot
/// and lab tests make those). Boot-listener calls come from
/// `Env::boot_call(.., from)`.
pub fn loopback_boot(c: &mut Config, leases: &[(&str, &str)]) {
    std::fs::create_dir_all(&c.data_dir).unwrap();
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let journal: String = leases
        .iter()
        .map(|(mac, ip)| {
            format!("{}\n", serde_json::json!({"mac": mac, "ip": ip, "expires": expires, "offered": false}))
        })
        .collect();
    std::fs::write(c.data_dir.join("dhcp-lo.leases"), journal).unwrap();
    c.provisioning_networks = vec![tundrad::config::ProvisioningNetwork {
        interface: "lo".into(),
        address: "127.0.0.1/8".into(),
        pool: "127.0.0.100-127.0.0.199".into(),
        router: None,
        dns: vec![],
        discovery: false,
        tftp_root: c.data_dir.join("tftp"),
        http_port: 0,
        boot_url: None,
        node_pool: None,
        mtu: 1500,
        lease_time: "1h".into(),
        dhcp_port: 0,
        tftp_port: 0,
    }];
}

/// A running `tundrad` and what a test needs to talk to it.
pub struct Env {
    pub server: Option<tundrad::Server>,
    pub config: Config,
    pub _dir: tempfile::TempDir,
    pub _pg: Option<Pg>,
    pub admin: String,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Env {
        let dir = tempfile::Builder::new().prefix("tundra-api-").tempdir().unwrap();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Pg::start().unwrap_or_else(|e| panic!("{e}"))),
        };
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url: pg.as_ref().map(|p| p.url.clone()),
            // The tests' BMCs are emulators that answer, or addresses where
            // nothing listens (to fail a step): fail those at once, not after
            // a minute of retries. The chaos suite runs the default.
            bmc_retry_window: "1s".into(),
            ..Config::default()
        };
        tweak(&mut config);
        let server = tundrad::start(config.clone()).await.unwrap();
        let admin = std::fs::read_to_string(config.admin_token_file()).unwrap().trim().to_string();
        Env { server: Some(server), config, _dir: dir, _pg: pg, admin, http: reqwest::Client::new() }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().addr)
    }

    /// The boot listener of the loopback provisioning network (`loopback_boot`).
    pub fn boot_base(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().boot_listeners[0])
    }

    /// A call to the boot listener from `from` (a loopback address: a lease
    /// holder of `loopback_boot`, or anyone else).
    pub async fn boot_call(&self, method: &str, path: &str, token: &str, body: Option<Value>, from: &str) -> Resp {
        let http = reqwest::Client::builder().local_address(from.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
        let mut req =
            http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", self.boot_base()));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub fn state(&self) -> &tundrad::state::AppState {
        &self.server.as_ref().unwrap().state
    }

    /// Stop and start again on the same data dir and database.
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.server.take().unwrap().stop().await.unwrap();
        tweak(&mut self.config);
        self.server = Some(tundrad::start(self.config.clone()).await.unwrap());
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }

    /// A JSON call; returns status, headers and the body (JSON, or a string).
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let mut req =
            self.http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", self.base()));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Resp {
        Resp::from(req.send().await.unwrap()).await
    }

    pub fn req(&self, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", self.base()));
        if token.is_empty() { r } else { r.bearer_auth(token) }
    }

    /// Create a user with a role in a project and return their token.
    pub async fn user_with_role(&self, name: &str, project: &str, role: &str) -> String {
        let r = self.call("POST", "/v1/users", &self.admin, Some(serde_json::json!({"name": name}))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = self
            .call(
                "PUT",
                &format!("/v1/projects/{project}/roles/{name}"),
                &self.admin,
                Some(serde_json::json!({"role": role})),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let uid = self.call("GET", &format!("/v1/users/{name}"), &self.admin, None).await.body["id"].clone();
        let r = self.call("POST", "/v1/tokens", &self.admin, Some(serde_json::json!({"user_id": uid}))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["secret"].as_str().unwrap().to_string()
    }

    /// The ID of an existing project.
    pub async fn project_id(&self, name: &str) -> String {
        let r = self.call("GET", &format!("/v1/projects/{name}"), &self.admin, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn project(&self, name: &str) -> String {
        let r = self.call("POST", "/v1/projects", &self.admin, Some(serde_json::json!({"name": name}))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp { status, headers, body, bytes }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Assert this is a problem document with `status`, and return its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header("content-type"), "application/problem+json", "{}", self.body);
        assert_eq!(self.body["status"], status);
        let d = self.body["detail"].as_str().unwrap_or("").to_string();
        assert!(!d.is_empty(), "problem without detail: {}", self.body);
        d
    }
}

pub fn sha256(b: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn wait_for(what: &str, f: impl AsyncFnMut() -> bool) {
    wait_for_secs(what, 30, f).await
}

/// `wait_for`, for up to `secs` seconds.
pub async fn wait_for_secs(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 20 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Serve `bytes` at `http://ADDR/images/NAME` in 64 KiB chunks, sleeping
/// `pause` between chunks (a slow mirror). Stops when dropped.
pub struct FileServer {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileServer {
    pub async fn start(bytes: Vec<u8>, pause: Duration) -> FileServer {
        use axum::body::Body;
        use axum::routing::get;
        let bytes = std::sync::Arc::new(bytes);
        let app = axum::Router::new().route(
            "/images/{name}",
            get(move || {
                let bytes = bytes.clone();
                async move {
                    let len = bytes.len();
                    let stream = futures_util::stream::unfold(0usize, move |off| {
                        let bytes = bytes.clone();
                        async move {
                            if off >= bytes.len() {
                                return None;
                            }
                            if off > 0 {
                                tokio::time::sleep(pause).await;
                            }
                            let end = (off + 65536).min(bytes.len());
                            Some((Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(&bytes[off..end])), end))
                        }
                    });
                    axum::response::Response::builder()
                        .header("content-length", len)
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FileServer { addr, task }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/images/{name}", self.addr)
    }

    pub fn prefix(&self) -> String {
        format!("http://{}/images/", self.addr)
    }
}

/// An operation record (never run) for tests that drive machine
/// transitions in the store directly.
pub fn machine_op(id: tundra_api::MachineId) -> tundra_store::NewOperation {
    tundra_store::NewOperation { project_id: None, work: tundra_api::ops::Work::MachineClean { machine_id: id } }
}
