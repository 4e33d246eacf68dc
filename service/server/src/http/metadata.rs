//! The metadata service deployed nodes read on the provisioning network:
//! `GET /openstack/latest/{meta_data.json, network_data.json, user_data}`
//! for the node whose address asks, with that node's metadata token from
//! its config drive (`X-Tundra-Metadata-Token`, or `Authorization: Bearer`)
//! (`tundra_conductor::config_drive`). Served on the provisioning networks'
//! boot listeners only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/openstack", axum::routing::get(|| async { "latest\n" }))
        .route("/openstack/latest/{file}", axum::routing::get(metadata))
}

/// The header a node sends its metadata token in.
pub const TOKEN_HEADER: &str = "x-tundra-metadata-token";

async fn metadata(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    use tundra_conductor::config_drive::{Metadata, TOKEN_FILE, TOKEN_PREFIX};
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header(TOKEN_HEADER)
        .or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")))
        .filter(|t| t.trim().starts_with(TOKEN_PREFIX));
    let peer = peer.ip().to_canonical();
    let answer = tundra_conductor::config_drive::metadata(&state.conductor, peer, token, &file)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let body = match answer {
        Metadata::File(body) => body,
        Metadata::NotFound => {
            return Err(ApiError::NotFound { noun: "metadata of the node at", id: format!("{peer}: {file}") });
        }
        Metadata::Denied => {
            return Err(ApiError::Unauthorized(format!(
                "the metadata service needs this node's metadata token: send the contents of {TOKEN_FILE} on its \
                 config drive (LABEL=config-2) as the {TOKEN_HEADER} header"
            )));
        }
    };
    let kind = if file.ends_with(".json") { "application/json" } else { "text/plain; charset=utf-8" };
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}
