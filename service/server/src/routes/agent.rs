//! What booting machines talk to: the per-machine iPXE script and boot
//! assets (firmware sends no credentials), and the agent protocol
//! (`tundra_api::agent`), authenticated by the per-boot agent token the
//! script carried. These routes — and only these — are also served on each
//! provisioning network's own listener.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tundra_api::Problem;
use tundra_api::agent::{Command, Heartbeat, Report, ReportAccepted};
use tundra_store::{AgentSession, DiscoverySession};
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

/// The agent behind a request: its bearer token names a live session — of
/// an operation on a known machine, or of discovery (an unknown MAC).
pub enum Agent {
    Machine(AgentSession),
    Discovery(DiscoverySession),
}

fn live(expires_at: Option<&str>) -> bool {
    expires_at.and_then(tundra_store::parse_time).is_some_and(|t| t > std::time::SystemTime::now())
}

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
        let hash = crate::auth::sha256_hex(bearer.as_bytes());
        if let Some(s) = state.store.agent_by_token(&hash).await? {
            return if live(s.token_expires_at.as_deref()) { Ok(Agent::Machine(s)) } else { Err(gone()) };
        }
        match state.store.discovery_by_token(&hash).await? {
            Some(d) if state.config.discovery.enabled && live(Some(&d.token_expires_at)) => Ok(Agent::Discovery(d)),
            _ => Err(gone()),
        }
    }
}

/// The iPXE script for the machine with this MAC (`52:54:00:12:34:56.ipxe`),
/// when tundrad is booting it into the agent — or, with discovery on, for a
/// MAC no machine has; it carries a fresh per-boot agent token. 404
/// otherwise, so the firmware falls through to its next boot device.
#[utoipa::path(get, path = "/boot/{script}", tag = "boot", security(()), params(("script" = String, Path, description = "MAC address + `.ipxe`")), responses((status = 200, content_type = "text/plain", body = String), (status = "4XX", body = Problem)))]
async fn boot_script(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(script): Path<String>,
) -> ApiResult<Response> {
    let not_booting = || ApiError::NotFound { noun: "boot script", id: script.clone() };
    let mac = script.strip_suffix(".ipxe").ok_or_else(not_booting)?.to_ascii_lowercase().replace('-', ":");
    let is_mac = mac.len() == 17 && mac.split(':').all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !is_mac {
        return Err(not_booting());
    }
    // Reach tundrad the way the firmware did.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("the request has no Host header; iPXE always sends one".into()))?;
    let base = format!("{}://{host}", if state.config.tls_cert_file.is_some() { "https" } else { "http" });
    let text = match state.store.machine_by_mac(&mac).await? {
        Some(m) => {
            if state.store.agent_session(m.id).await?.is_none() {
                return Err(not_booting());
            }
            crate::machines::boot_script(&state, &m, &mac, &base).await.map_err(ApiError::internal)?
        }
        None if state.config.discovery.enabled => {
            crate::machines::discovery_script(&state, &mac, &base).await.map_err(ApiError::internal)?
        }
        None => return Err(not_booting()),
    };
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
    super::serve_file(path, req).await
}

/// The agent is alive; answers what it should do next.
#[utoipa::path(post, path = "/v1/agent/heartbeat", tag = "boot", security(("agent" = [])), request_body = Heartbeat, responses((status = 200, body = Command), (status = "4XX", body = Problem)))]
async fn heartbeat(
    State(state): State<AppState>,
    agent: Agent,
    body: Body<Heartbeat>,
) -> ApiResult<axum::Json<Command>> {
    let s = match agent {
        Agent::Machine(s) => s,
        Agent::Discovery(d) if d.machine_id.is_some() => return Ok(axum::Json(Command::Exit)),
        Agent::Discovery(d) => return Ok(axum::Json(Command::Inspect { id: discovery_command(&d.mac) })),
    };
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
    agent: Agent,
    body: Body<Report>,
) -> ApiResult<axum::Json<ReportAccepted>> {
    let r = body.value;
    let value = serde_json::to_value(&r).map_err(ApiError::internal)?;
    let s = match agent {
        Agent::Machine(s) => s,
        Agent::Discovery(d) => return discovered(&state, d, r, value).await,
    };
    let recorded = state.store.agent_report(s.machine_id, &r.id, r.ok, &value).await?;
    if recorded {
        tracing::info!(machine = %s.machine_id, command = %r.id, ok = r.ok, error = r.error.as_deref().unwrap_or(""), "agent reported");
    }
    Ok(axum::Json(ReportAccepted { recorded }))
}

/// The image the agent was asked to write (supports `Range`, so a broken
/// download resumes).
#[utoipa::path(get, path = "/v1/agent/image", tag = "boot", security(("agent" = [])), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "Partial content"), (status = "4XX", body = Problem)))]
async fn agent_image(State(state): State<AppState>, agent: Agent, req: Request) -> ApiResult<Response> {
    let Agent::Machine(s) = agent else {
        return Err(ApiError::Conflict("a discovered machine is not asked to write an image".into()));
    };
    let input = state.store.operation_input(s.operation_id).await?;
    let image = input.input["image_id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| ApiError::Conflict("the agent was not asked to write an image".into()))?;
    super::serve_file(crate::images::raw_path(&state, image), req).await
}

fn discovery_command(mac: &str) -> String {
    format!("discover-{mac}")
}

/// A discovered machine's report: enroll it (once).
async fn discovered(
    state: &AppState,
    d: DiscoverySession,
    r: Report,
    value: serde_json::Value,
) -> ApiResult<axum::Json<ReportAccepted>> {
    if r.id != discovery_command(&d.mac) {
        return Err(ApiError::Conflict(format!(
            "the report is for command {:?}, but the agent was asked to run {:?}",
            r.id,
            discovery_command(&d.mac)
        )));
    }
    if d.machine_id.is_some() {
        return Ok(axum::Json(ReportAccepted { recorded: false }));
    }
    if !r.ok {
        tracing::warn!(mac = %d.mac, error = r.error.as_deref().unwrap_or(""), "a discovered machine's agent failed");
        return Err(ApiError::Unprocessable(format!(
            "the agent failed: {}; nothing was enrolled",
            r.error.unwrap_or_default()
        )));
    }
    let m = crate::machines::enroll_discovered(state, &d.mac, &r.details).await.map_err(|e| {
        tracing::warn!(mac = %d.mac, error = %e, "could not enroll a discovered machine");
        ApiError::Unprocessable(e)
    })?;
    let recorded = state.store.discovery_enrolled(&d.mac, &value, m.id).await?;
    Ok(axum::Json(ReportAccepted { recorded }))
}
