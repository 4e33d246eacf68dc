//! The metadata service deployed nodes read on the provisioning network:
//! `GET /openstack/latest/{meta_data.json, network_data.json, user_data}`
//! for the node whose address asks (`tundra_conductor::config_drive`).
//! Served on the provisioning networks' boot listeners only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/openstack", axum::routing::get(|| async { "latest\n" }))
        .route("/openstack/latest/{file}", axum::routing::get(metadata))
}

async fn metadata(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let body = tundra_conductor::config_drive::metadata(&state.conductor, peer.ip(), &file)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
        .ok_or_else(|| ApiError::NotFound { noun: "metadata of the node at", id: format!("{}: {file}", peer.ip()) })?;
    let kind = if file.ends_with(".json") { "application/json" } else { "text/plain; charset=utf-8" };
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}
