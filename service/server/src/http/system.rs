//! Health, readiness, service info, metrics and the OpenAPI document — the
//! routes that need no credentials.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tundra_api::{API_VERSION, Health, HealthStatus, ServiceInfo, paths};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(info))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = paths::HEALTHZ, tag = "system", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: HealthStatus::Ok })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = paths::READYZ, tag = "system", security(()), responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: HealthStatus::Ok })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: HealthStatus::Unavailable })).into_response()
        }
    }
}

/// What is answering, for clients to check compatibility.
#[utoipa::path(get, path = paths::INFO, tag = "system", security(()), responses((status = 200, body = ServiceInfo)))]
async fn info(State(state): State<AppState>) -> axum::Json<ServiceInfo> {
    axum::Json(ServiceInfo {
        service: "tundrad".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        schema_version: state.store().schema_version().await.ok(),
    })
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = paths::METRICS, tag = "system", security(()), responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let images = state.store().image_status_counts().await.unwrap_or_default();
    let here = state.conductor.leases_here();
    let leases = state.store().lease_holders().await.unwrap_or_default();
    let gauges = vec![
        (
            "tundra_lease_held",
            "1 for each background loop or provisioning network (netboot:…) this replica runs now, 0 for those another runs.",
            leases
                .into_iter()
                .map(|l| (format!("lease=\"{}\"", l.name), f64::from(u8::from(here.contains(&l.name.as_str())))))
                .collect(),
        ),
        (
            "tundra_replicas",
            "Replicas running now (their heartbeat renewed within one replica_lease); 0 when the database does not answer.",
            vec![(String::new(), state.store().live_replicas().await.map_or(0, |r| r.len()) as f64)],
        ),
        (
            "tundra_operations_running_here",
            "Operations whose workers run on this replica.",
            vec![(String::new(), state.conductor.running_here().len() as f64)],
        ),
        (
            "tundra_images",
            "Images by status.",
            images.into_iter().map(|(s, n)| (format!("status=\"{s}\""), n as f64)).collect(),
        ),
        (
            "tundra_database_up",
            "1 when the database answers.",
            vec![(String::new(), f64::from(u8::from(state.store().ping().await.is_ok())))],
        ),
        (
            "tundra_task_restarts",
            "Times a service loop (DHCP, TFTP, the reconcilers, the fabric worker…) panicked or ended and was started again.",
            state.conductor.restarts().into_iter().map(|(t, n)| (format!("task=\"{t}\""), n as f64)).collect(),
        ),
    ];
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&gauges)).into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = paths::OPENAPI, tag = "system", security(()), responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.to_string()).into_response()
}
