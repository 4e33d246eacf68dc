//! `tundra-client`: a typed HTTP client of the Tundra API, for the
//! Terraform provider and the operators' CLI. Paths come from
//! `tundra_api::paths` (where tundrad registers its routes), bodies and
//! views from `tundra_api`; each noun is a [`Noun`] constant in [`nouns`].
//!
//! Behaviour every caller gets: a bearer token, an optional private CA, an
//! idempotency key on every create (a create retried after a dropped
//! connection returns the first answer, never a duplicate), connection
//! failures retried a little, and problem documents kept whole in [`ApiError`].

pub mod nouns;

use std::marker::PhantomData;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tundra_api::{ListQuery, Page, Problem, paths};

pub use nouns::Noun;

/// How to reach tundrad, and as whom.
#[derive(Debug)]
pub struct Client {
    pub endpoint: String,
    /// The project to work in when a call names none (a name or ID).
    pub project: Option<String>,
    http: reqwest::Client,
    token: Option<String>,
}

/// What a call returned when it failed.
#[derive(Debug)]
pub struct ApiError {
    /// None: tundrad was not reached (or did not answer).
    pub status: Option<StatusCode>,
    /// The service's problem document, when it sent one.
    pub problem: Option<Problem>,
    pub message: String,
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        self.status == Some(StatusCode::NOT_FOUND)
    }

    /// The service's detail, with the request id to quote to operators.
    pub fn detail(&self) -> String {
        match &self.problem {
            Some(p) => match &p.request_id {
                Some(r) => format!("{} (request id {r})", p.detail),
                None => p.detail.clone(),
            },
            None => self.message.clone(),
        }
    }

    /// The JSON pointer of the field the service blamed, if any.
    pub fn pointer(&self) -> Option<&str> {
        self.problem.as_ref().and_then(|p| p.errors.first()).map(|e| e.pointer.as_str())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail())
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

impl Client {
    /// A client of `endpoint` (e.g. `https://tundra.example.org`);
    /// `user_agent` names the program (e.g. `terraform-provider-tundra/0.1.0`).
    pub fn new(
        endpoint: String,
        token: Option<String>,
        project: Option<String>,
        ca_pem: Option<&str>,
        user_agent: &str,
    ) -> Result<Client, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(300))
            .user_agent(user_agent);
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_certificate does not parse as PEM certificates: {e}"))?;
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client { endpoint: endpoint.trim_end_matches('/').to_string(), project, http, token })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        idempotent: bool,
    ) -> ApiResult<reqwest::Response> {
        let url = format!("{}{path}", self.endpoint);
        let key = uuid::Uuid::now_v7().to_string();
        let mut attempt = 0;
        loop {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            if idempotent {
                req = req.header(tundra_api::IDEMPOTENCY_KEY, &key);
            }
            match req.send().await {
                Ok(r) => return Ok(r),
                // A create may be retried safely: its idempotency key makes the
                // service answer a retry with the first result.
                Err(e) if attempt < 2 && (e.is_connect() || (idempotent && e.is_request())) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) => {
                    return Err(ApiError {
                        status: None,
                        problem: None,
                        message: format!(
                            "could not reach tundrad at {}: {e}; check endpoint and that tundrad runs",
                            self.endpoint
                        ),
                    });
                }
            }
        }
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> ApiResult<T> {
        let status = resp.status();
        let bytes =
            resp.bytes().await.map_err(|e| ApiError { status: Some(status), problem: None, message: e.to_string() })?;
        if status.is_success() {
            let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
            return serde_json::from_slice(bytes).map_err(|e| ApiError {
                status: Some(status),
                problem: None,
                message: format!(
                    "tundrad answered something this client does not understand ({e}); are the versions compatible?"
                ),
            });
        }
        let problem: Option<Problem> = serde_json::from_slice(&bytes).ok();
        let message = match &problem {
            Some(p) => p.detail.clone(),
            None => format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
        };
        Err(ApiError { status: Some(status), problem, message })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> ApiResult<T> {
        Self::decode(self.send(method, path, body, false).await?).await
    }

    /// The release tundrad reports at `/v1/info` (one quick attempt: this is
    /// for a compatibility warning, and any real call reports a dead endpoint).
    pub async fn service_version(&self) -> ApiResult<String> {
        let resp = self
            .http
            .get(format!("{}{}", self.endpoint, paths::INFO))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ApiError { status: None, problem: None, message: e.to_string() })?;
        let info: serde_json::Value = Self::decode(resp).await?;
        info["version"].as_str().map(String::from).ok_or_else(|| ApiError {
            status: None,
            problem: None,
            message: "tundrad's /v1/info names no version".into(),
        })
    }

    /// The object `id` (an ID, or a name where the noun takes one).
    pub async fn get<T: DeserializeOwned>(&self, noun: &Noun<T>, id: &str) -> ApiResult<T> {
        self.call(Method::GET, &noun.path(id), None::<&()>).await
    }

    /// What an active share access rule's clients need (its key among it).
    pub async fn share_access_secret(&self, access_id: &str) -> ApiResult<tundra_api::shares::ShareAccessSecret> {
        let path = paths::fill(paths::SHARE_ACCESS_SECRET, &[access_id]);
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Fresh short-lived credentials for a cluster's control plane.
    pub async fn cluster_credentials(
        &self,
        cluster_id: &str,
        ttl_seconds: Option<u32>,
    ) -> ApiResult<tundra_api::clusters::ClusterCredentials> {
        let path = paths::fill(paths::CLUSTER_CREDENTIALS, &[cluster_id]);
        let body = tundra_api::clusters::ClusterCredentialsRequest { ttl_seconds };
        self.call(Method::POST, &path, Some(&body)).await
    }

    /// `GET` a path of `tundra_api::paths` (filled, with any query string):
    /// for reads that are not one noun's item or page (events with filters,
    /// a switch's ports, whoami).
    pub async fn get_path<T: DeserializeOwned>(&self, path_and_query: &str) -> ApiResult<T> {
        self.call(Method::GET, path_and_query, None::<&()>).await
    }

    /// Like [`get`](Self::get), with a 404 as `None` (the object is gone).
    pub async fn find<T: DeserializeOwned>(&self, noun: &Noun<T>, id: &str) -> ApiResult<Option<T>> {
        match self.get(noun, id).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of a noun's objects the caller may see.
    pub async fn list<T: DeserializeOwned>(&self, noun: &Noun<T>, q: &ListQuery) -> ApiResult<Page<T>> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("name", &q.name), ("project", &q.project), ("after", &q.after)] {
                if let Some(v) = v {
                    query.append_pair(k, v);
                }
            }
            if let Some(l) = q.limit {
                query.append_pair("limit", &l.to_string());
            }
            query.finish()
        };
        let path = if query.is_empty() { noun.collection.to_string() } else { format!("{}?{query}", noun.collection) };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Create an object, with an idempotency key: a create retried after
    /// a dropped connection gets the first answer, never a second object.
    pub async fn create<T: DeserializeOwned>(&self, noun: &Noun<T>, body: &impl Serialize) -> ApiResult<T> {
        Self::decode(self.send(Method::POST, noun.collection, Some(body), true).await?).await
    }

    /// Change an object; absent fields stay as they are.
    pub async fn update<T: DeserializeOwned>(&self, noun: &Noun<T>, id: &str, body: &impl Serialize) -> ApiResult<T> {
        self.call(Method::PATCH, &noun.path(id), Some(body)).await
    }

    /// Delete an object; one already gone counts as deleted.
    pub async fn delete<T>(&self, noun: &Noun<T>, id: &str) -> ApiResult<()> {
        match self.call::<serde_json::Value>(Method::DELETE, &noun.path(id), None::<&()>).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST` to a path of `tundra_api::paths` with its parameters (actions,
    /// repairs): not retried once sent, as they are not idempotent.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, args: &[&str], body: &impl Serialize) -> ApiResult<T> {
        self.call(Method::POST, &paths::fill(path, args), Some(body)).await
    }

    /// Start an action on a machine; answers the operation doing it.
    pub async fn machine_action(
        &self,
        id: &str,
        action: &tundra_api::machines::MachineAction,
    ) -> ApiResult<tundra_api::ops::Operation> {
        self.post(paths::MACHINE_ACTIONS, &[id], action).await
    }

    /// Program a port's switch port again (repairs drift).
    pub async fn sync_port(&self, id: &str) -> ApiResult<tundra_api::fabric::SyncStarted> {
        self.post(paths::PORT_SYNC, &[id], &()).await
    }

    /// Stream a local file as an image's bytes; answers when it is verified.
    pub async fn upload_image(&self, id: &str, file: &std::path::Path) -> ApiResult<tundra_api::catalog::Image> {
        let local = |e: std::io::Error| ApiError {
            status: None,
            problem: None,
            message: format!("reading {}: {e}", file.display()),
        };
        let f = tokio::fs::File::open(file).await.map_err(local)?;
        let len = f.metadata().await.map_err(local)?.len();
        let mut req = self
            .http
            .put(format!("{}{}", self.endpoint, paths::fill(paths::IMAGE_FILE, &[id])))
            .timeout(Duration::from_secs(24 * 3600))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f)));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| ApiError {
            status: None,
            problem: None,
            message: format!("uploading {} to tundrad: {e}", file.display()),
        })?;
        Self::decode(resp).await
    }
}

/// Keeps `Noun` free of auto-trait surprises whatever `T` is.
type Phantom<T> = PhantomData<fn() -> T>;
