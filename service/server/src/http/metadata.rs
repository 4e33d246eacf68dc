//! The metadata service deployed nodes read on the provisioning network:
//! `GET /openstack/latest/{meta_data.json, network_data.json, user_data}`
//! for the node whose address asks, with that node's metadata token from
//! its config drive (`X-Tundra-Metadata-Token`, or `Authorization: Bearer`)
//! (`tundra_conductor::config_drive`); for a cluster's node also its join
//! plan (`tundra_cluster.json`), `POST tundra_cluster_report`, and a
//! Kubernetes node's k3s bundle (`tundra_cluster_bundle`, ranges served)
//! (`tundra_conductor::clusters::flows`); for an appliance's node its plan
//! (`tundra_appliance.json`), `POST tundra_appliance_report`, and `POST
//! tundra_rebuild` — the node asks to be deployed again with its role's
//! image (`tundra_conductor::appliances::flows`). Served on the
//! provisioning networks' boot listeners only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tundra_api::appliances::ApplianceReport;
use tundra_api::clusters::ClusterReport;
use tundra_api::nodes::Node;
use tundra_conductor::appliances::flows as appliances;
use tundra_conductor::clusters::flows as clusters;
use tundra_conductor::config_drive::{self, Asker, TOKEN_FILE, TOKEN_PREFIX};

use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::state::AppState;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/openstack", axum::routing::get(|| async { "latest\n" }))
        .route("/openstack/latest/{file}", axum::routing::get(metadata))
        .route("/openstack/latest/tundra_cluster_report", axum::routing::post(cluster_report))
        .route("/openstack/latest/tundra_appliance_report", axum::routing::post(appliance_report))
        .route("/openstack/latest/tundra_rebuild", axum::routing::post(rebuild))
}

/// The header a node sends its metadata token in.
pub const TOKEN_HEADER: &str = "x-tundra-metadata-token";

/// A cluster node's join plan.
const CLUSTER_FILE: &str = "tundra_cluster.json";

/// An appliance node's plan: its files and commands as rendered now.
const APPLIANCE_FILE: &str = "tundra_appliance.json";

/// The node asking, proven by its metadata token.
async fn asker(state: &AppState, peer: SocketAddr, headers: &HeaderMap, what: &str) -> ApiResult<Node> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header(TOKEN_HEADER)
        .or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")))
        .filter(|t| t.trim().starts_with(TOKEN_PREFIX));
    let peer = peer.ip().to_canonical();
    match config_drive::asker(&state.conductor, peer, token)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
    {
        Asker::Node(n) => Ok(*n),
        Asker::NotFound => Err(ApiError::NotFound { noun: "metadata of the node at", id: format!("{peer}: {what}") }),
        Asker::Denied => Err(ApiError::Unauthorized(format!(
            "the metadata service needs this node's metadata token: send the contents of {TOKEN_FILE} on its \
             config drive (LABEL=config-2) as the {TOKEN_HEADER} header"
        ))),
    }
}

async fn metadata(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(file): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let n = asker(&state, peer, &headers, &file).await?;
    let not_found = || ApiError::NotFound { noun: "metadata of node", id: format!("{}: {file}", n.name) };
    if file == clusters::BUNDLE_FILE {
        let path = clusters::bundle_path(&state.conductor, &n).await?.ok_or_else(not_found)?;
        return crate::crud::serve_file(path, req).await;
    }
    let body = if file == CLUSTER_FILE {
        let plan = clusters::join(&state.conductor, &n).await?.ok_or_else(not_found)?;
        serde_json::to_string(&plan).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
    } else if file == APPLIANCE_FILE {
        let plan = appliances::plan(&state.conductor, &n).await?.ok_or_else(not_found)?;
        serde_json::to_string(&plan).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
    } else {
        config_drive::metadata_file(&state.conductor, &n, &file)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
            .ok_or_else(not_found)?
    };
    let kind = if file.ends_with(".json") { "application/json" } else { "text/plain; charset=utf-8" };
    // A plan can hold a join secret or an appliance's: nothing on the way may keep it.
    Ok(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// A cluster node's agent reports its join, and (the bootstrap node) the
/// cluster's tokens, members and removals.
async fn cluster_report(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body<ClusterReport>,
) -> ApiResult<Response> {
    let n = asker(&state, peer, &headers, "tundra_cluster_report").await?;
    clusters::report(&state.conductor, &n, body.value).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An appliance node's agent reports it ready (or failed) under the plan it
/// applied, and the leaving nodes it drained.
async fn appliance_report(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body<ApplianceReport>,
) -> ApiResult<Response> {
    let n = asker(&state, peer, &headers, "tundra_appliance_report").await?;
    appliances::report(&state.conductor, &n, body.value).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An appliance node asks to be rebuilt with its role's image now (its
/// scheduler drained it first): 202, its machine is being deployed again.
/// 409 when it is not active or is leaving its appliance; 404 when it
/// belongs to no appliance.
async fn rebuild(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let n = asker(&state, peer, &headers, "tundra_rebuild").await?;
    appliances::rebuild(&state.conductor, &n).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
