//! What booting machines talk to: the per-machine iPXE script and boot
//! assets (firmware sends no credentials), and the agent protocol
//! (`tundra_api::agent`), authenticated by the per-boot agent token the
//! script carried (`tundra_conductor::agent`). These routes are served only
//! on each provisioning network's boot listener (`netboot`), never on the
//! API listener: a script goes only to the DHCP lease holder of its MAC on
//! that network, and a token works only from the address it went to.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Extension, Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tundra_api::agent::{Command, Heartbeat, Report, ReportAccepted, TOKEN_PREFIX};
use tundra_api::{Problem, paths};
use tundra_conductor::agent::{self, Caller};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::serve_file;
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

/// The provisioning network a boot listener serves: its DHCP server knows
/// who holds which lease.
#[derive(Clone)]
pub struct BootNet {
    pub dhcp: Arc<tundra_boot::dhcp::Server>,
}

fn peer_of(parts: &axum::http::request::Parts) -> Result<IpAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the boot listener did not record the peer address")))
}

/// The agent behind a request: its bearer token names a live session
/// bound to the address asking.
pub struct Agent(Caller);

impl axum::extract::FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::Unauthorized(format!(
                    "agent routes need the agent token ({TOKEN_PREFIX}…) from the machine's boot script"
                ))
            })?;
        let peer = peer_of(parts)?;
        agent::caller(&state.conductor, bearer, peer).await?.map(Agent).ok_or_else(|| {
            ApiError::Unauthorized(
                "the agent token is unknown, expired or not this address's: the operation that booted this \
                 machine is over, or the request did not come from the machine that booted"
                    .into(),
            )
        })
    }
}

/// The iPXE script for the machine with this MAC (`52:54:00:12:34:56.ipxe`),
/// when tundrad is booting it into the agent — or, with discovery on, for a
/// MAC no machine has; it carries a fresh per-boot agent token. Served once
/// per boot, only to the address the network's DHCP server leased to the
/// MAC, and only on the boot listener. 404 otherwise, so the firmware falls
/// through to its next boot device.
#[utoipa::path(get, path = paths::BOOT_SCRIPT, tag = "boot", security(()), params(("script" = String, Path, description = "MAC address + `.ipxe`")), responses((status = 200, content_type = "text/plain", body = String), (status = "4XX", body = Problem)))]
async fn boot_script(
    State(state): State<AppState>,
    Extension(net): Extension<BootNet>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(script): Path<String>,
) -> ApiResult<Response> {
    let not_booting = || ApiError::NotFound { noun: "boot script", id: script.clone() };
    let mac = script.strip_suffix(".ipxe").ok_or_else(not_booting)?.to_ascii_lowercase().replace('-', ":");
    let is_mac = mac.len() == 17 && mac.split(':').all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !is_mac {
        return Err(not_booting());
    }
    // Reach tundrad the way the firmware did (the boot listener is plain HTTP).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("the request has no Host header; iPXE always sends one".into()))?;
    let base = format!("http://{host}");
    let request = agent::BootRequest {
        mac: &mac,
        base: &base,
        peer: peer.ip().to_canonical(),
        lease_holder: net.dhcp.holder(&mac).map(IpAddr::V4),
    };
    let text = agent::script(&state.conductor, request).await?.ok_or_else(not_booting)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// A file of the agent's boot environment (kernel, initramfs) from `boot_assets_dir`.
#[utoipa::path(get, path = paths::BOOT_ASSET, tag = "boot", security(()), params(("file" = String, Path)), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = "4XX", body = Problem)))]
async fn boot_asset(State(state): State<AppState>, Path(file): Path<String>, req: Request) -> ApiResult<Response> {
    let ok = !file.is_empty() && !file.starts_with('.') && !file.contains('/') && !file.contains('\\');
    let path = state.config.boot_assets_dir().join(&file);
    if !ok || !path.is_file() {
        return Err(ApiError::NotFound { noun: "boot asset", id: file });
    }
    serve_file(path, req).await
}

/// The agent is alive; answers what it should do next.
#[utoipa::path(post, path = paths::AGENT_HEARTBEAT, tag = "boot", security(("agent" = [])), request_body = Heartbeat, responses((status = 200, body = Command), (status = "4XX", body = Problem)))]
async fn heartbeat(
    State(state): State<AppState>,
    Agent(caller): Agent,
    body: Body<Heartbeat>,
) -> ApiResult<axum::Json<Command>> {
    Ok(axum::Json(agent::heartbeat(&state.conductor, caller, body.value.progress).await?))
}

/// How the agent's command ended. Recorded once; a retry is acknowledged.
#[utoipa::path(post, path = paths::AGENT_REPORT, tag = "boot", security(("agent" = [])), request_body = Report, responses((status = 200, body = ReportAccepted), (status = "4XX", body = Problem)))]
async fn report(
    State(state): State<AppState>,
    Agent(caller): Agent,
    body: Body<Report>,
) -> ApiResult<axum::Json<ReportAccepted>> {
    Ok(axum::Json(agent::report(&state.conductor, caller, body.value).await?))
}

/// The image the agent was asked to write (supports `Range`, so a broken
/// download resumes).
#[utoipa::path(get, path = paths::AGENT_IMAGE, tag = "boot", security(("agent" = [])), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "Partial content"), (status = "4XX", body = Problem)))]
async fn agent_image(State(state): State<AppState>, Agent(caller): Agent, req: Request) -> ApiResult<Response> {
    serve_file(agent::image(&state.conductor, caller).await?, req).await
}
