//! What booting machines talk to: the per-machine iPXE script and boot
//! assets (firmware sends no credentials), and the agent protocol
//! (`tundra_api::agent`), authenticated by the per-boot agent token the
//! script carried. These routes — and only these — are also served on each
//! provisioning network's own listener.

use axum::body::Body as RawBody;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeFile;
use tundra_api::Problem;
use tundra_api::agent::{Command, Heartbeat, Report, ReportAccepted};
use tundra_store::AgentSession;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(boot_script))
        .routes(routes!(boot_asset))
        .routes(routes!(heartbeat))
        .routes(routes!(report))
        .routes(routes!(agent_image))
}

/// Agent tokens start with this.
pub const AGENT_TOKEN_PREFIX: &str = "tna_";

/// The agent behind a request: its bearer token names a live session.
pub struct Agent(pub AgentSession);

impl axum::extract::FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(AGENT_TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::Unauthorized(format!(
                    "agent routes need the agent token ({AGENT_TOKEN_PREFIX}…) from the machine's boot script"
                ))
            })?;
        let gone = || {
            ApiError::Unauthorized(
                "the agent token is unknown or expired: the operation that booted this machine is over".into(),
            )
        };
        let s = state.store.agent_by_token(&crate::auth::sha256_hex(bearer.as_bytes())).await?.ok_or_else(gone)?;
        let live = s
            .token_expires_at
            .as_deref()
            .and_then(tundra_store::parse_time)
            .is_some_and(|t| t > std::time::SystemTime::now());
        if !live {
            return Err(gone());
        }
        Ok(Agent(s))
    }
}

/// The iPXE script for the machine with this MAC (`52:54:00:12:34:56.ipxe`),
/// when tundrad is booting it into the agent; it carries a fresh per-boot
/// agent token. 404 otherwise, so the firmware falls through to its next
/// boot device.
#[utoipa::path(get, path = "/boot/{script}", tag = "boot", security(()), params(("script" = String, Path, description = "MAC address + `.ipxe`")), responses((status = 200, content_type = "text/plain", body = String), (status = "4XX", body = Problem)))]
async fn boot_script(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(script): Path<String>,
) -> ApiResult<Response> {
    let not_booting = || ApiError::NotFound { noun: "boot script", id: script.clone() };
    let mac = script.strip_suffix(".ipxe").ok_or_else(not_booting)?.to_ascii_lowercase().replace('-', ":");
    let m = state.store.machine_by_mac(&mac).await?.ok_or_else(not_booting)?;
    if state.store.agent_session(m.id).await?.is_none() {
        return Err(not_booting());
    }
    // Reach tundrad the way the firmware did.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("the request has no Host header; iPXE always sends one".into()))?;
    let base = format!("{}://{host}", if state.config.tls_cert_file.is_some() { "https" } else { "http" });
    let text = crate::machines::boot_script(&state, &m, &mac, &base).await.map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// A file of the agent's boot environment (kernel, initramfs) from `boot_assets_dir`.
#[utoipa::path(get, path = "/boot/assets/{file}", tag = "boot", security(()), params(("file" = String, Path)), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = "4XX", body = Problem)))]
async fn boot_asset(State(state): State<AppState>, Path(file): Path<String>, req: Request) -> ApiResult<Response> {
    let ok = !file.is_empty() && !file.starts_with('.') && !file.contains('/') && !file.contains('\\');
    let path = state.config.boot_assets_dir().join(&file);
    if !ok || !path.is_file() {
        return Err(ApiError::NotFound { noun: "boot asset", id: file });
    }
    serve_file(path, req).await
}

async fn serve_file(path: std::path::PathBuf, req: Request) -> ApiResult<Response> {
    let svc = ServeFile::new_with_mime(path, &"application/octet-stream".parse().expect("mime literal"));
    let (parts, _) = req.into_parts();
    let resp = tower::ServiceExt::oneshot(svc, Request::from_parts(parts, RawBody::empty()))
        .await
        .map_err(ApiError::internal)?;
    Ok(resp.map(RawBody::new).into_response())
}

/// The agent is alive; answers what it should do next.
#[utoipa::path(post, path = "/v1/agent/heartbeat", tag = "boot", security(("agent" = [])), request_body = Heartbeat, responses((status = 200, body = Command), (status = "4XX", body = Problem)))]
async fn heartbeat(
    State(state): State<AppState>,
    Agent(s): Agent,
    body: Body<Heartbeat>,
) -> ApiResult<axum::Json<Command>> {
    state.store.agent_seen(s.machine_id, body.value.progress.clone()).await?;
    if s.report.is_some() {
        return Ok(axum::Json(Command::Exit));
    }
    let cmd: Command = serde_json::from_value(s.command.clone()).map_err(ApiError::internal)?;
    Ok(axum::Json(cmd))
}

/// How the agent's command ended. Recorded once; a retry is acknowledged.
#[utoipa::path(post, path = "/v1/agent/report", tag = "boot", security(("agent" = [])), request_body = Report, responses((status = 200, body = ReportAccepted), (status = "4XX", body = Problem)))]
async fn report(
    State(state): State<AppState>,
    Agent(s): Agent,
    body: Body<Report>,
) -> ApiResult<axum::Json<ReportAccepted>> {
    let r = body.value;
    let value = serde_json::to_value(&r).map_err(ApiError::internal)?;
    let recorded = state.store.agent_report(s.machine_id, &r.id, r.ok, &value).await?;
    if recorded {
        tracing::info!(machine = %s.machine_id, command = %r.id, ok = r.ok, error = r.error.as_deref().unwrap_or(""), "agent reported");
    }
    Ok(axum::Json(ReportAccepted { recorded }))
}

/// The image the agent was asked to write (supports `Range`, so a broken
/// download resumes).
#[utoipa::path(get, path = "/v1/agent/image", tag = "boot", security(("agent" = [])), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "Partial content"), (status = "4XX", body = Problem)))]
async fn agent_image(State(state): State<AppState>, Agent(s): Agent, req: Request) -> ApiResult<Response> {
    let input = state.store.operation_input(s.operation_id).await?;
    let image = input.input["image_id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| ApiError::Conflict("the agent was not asked to write an image".into()))?;
    serve_file(crate::images::raw_path(&state, image), req).await
}
