//! The provider's HTTP client for `tundrad`: bearer token, optional private
//! CA, idempotency keys on creates (a retried create after a dropped
//! connection returns the first answer instead of a duplicate), and problem
//! documents turned into diagnostics that carry the service's advice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tfplugin::{AttrPath, Diagnostic};
use tundra_api::Problem;

/// Connection settings every resource uses to reach `tundrad`.
#[derive(Debug)]
pub struct Client {
    pub endpoint: String,
    pub project: Option<String>,
    http: reqwest::Client,
    token: Option<String>,
}

/// What a call returned when it failed.
#[derive(Debug)]
pub struct ApiError {
    pub status: Option<StatusCode>,
    pub problem: Option<Problem>,
    pub message: String,
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        self.status == Some(StatusCode::NOT_FOUND)
    }

    /// A diagnostic naming what failed, with the service's detail.
    pub fn diag(&self, summary: &str) -> Diagnostic {
        let detail = match &self.problem {
            Some(p) => {
                let mut d = p.detail.clone();
                if let Some(r) = &p.request_id {
                    d.push_str(&format!(" (request id {r})"));
                }
                d
            }
            None => self.message.clone(),
        };
        Diagnostic::error(summary, detail)
    }

    /// Like [`diag`](Self::diag), pointing at the attribute the service blamed
    /// (its JSON pointer `/name` becomes the attribute `name`).
    pub fn diag_at(&self, summary: &str, fields: &[(&str, &str)]) -> Diagnostic {
        let d = self.diag(summary);
        let pointer = self.problem.as_ref().and_then(|p| p.errors.first()).map(|e| e.pointer.clone());
        match pointer.and_then(|p| fields.iter().find(|(ptr, _)| *ptr == p).map(|(_, attr)| *attr)) {
            Some(attr) => d.at(AttrPath::attr_root(attr)),
            None => d,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl Client {
    pub fn new(
        endpoint: String,
        token: Option<String>,
        project: Option<String>,
        ca_pem: Option<&str>,
    ) -> Result<Client, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("terraform-provider-tundra/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_certificate does not parse as PEM certificates: {e}"))?;
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client { endpoint, project, http, token })
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
                    "tundrad answered something this provider does not understand ({e}); are the versions compatible?"
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

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> ApiResult<T> {
        Self::decode(self.send(Method::GET, path, None::<&()>, false).await?).await
    }

    /// `GET` that maps 404 to `None` (the object is gone).
    pub async fn find<T: DeserializeOwned>(&self, path: &str) -> ApiResult<Option<T>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> ApiResult<T> {
        Self::decode(self.send(Method::POST, path, Some(body), true).await?).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> ApiResult<T> {
        Self::decode(self.send(Method::PATCH, path, Some(body), false).await?).await
    }

    /// `DELETE`; an object already gone counts as deleted.
    pub async fn delete(&self, path: &str) -> ApiResult<()> {
        match Self::decode::<serde_json::Value>(self.send(Method::DELETE, path, None::<&()>, false).await?).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The project a resource works in: its own `project_id`, else the
    /// provider's `project` (a name or ID), resolved to an ID.
    pub async fn project_id(&self, explicit: Option<&str>) -> Result<tundra_api::ProjectId, Diagnostic> {
        let Some(p) = explicit.map(str::to_string).or_else(|| self.project.clone()) else {
            return Err(Diagnostic::error(
                "No project",
                "Set project_id on the resource, or project in the provider block (or TUNDRA_PROJECT).",
            )
            .at(AttrPath::attr_root("project_id")));
        };
        let proj: tundra_api::identity::Project =
            self.get(&format!("/v1/projects/{p}")).await.map_err(|e| e.diag(&format!("Project {p:?} not found")))?;
        Ok(proj.id)
    }
}

impl Client {
    /// Stream a local file as the body of `PUT path`.
    pub async fn upload<T: DeserializeOwned>(&self, path: &str, file: &std::path::Path) -> ApiResult<T> {
        let local = |e: std::io::Error| ApiError {
            status: None,
            problem: None,
            message: format!("reading {}: {e}", file.display()),
        };
        let f = tokio::fs::File::open(file).await.map_err(local)?;
        let len = f.metadata().await.map_err(local)?.len();
        let mut req = self
            .http
            .put(format!("{}{path}", self.endpoint))
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
