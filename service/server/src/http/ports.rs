//! Ports: a project's attachment to a network, with addresses; bound to a
//! node's machine interface through its `networks`; their switch port's
//! drift, and its repair.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{Port, PortCreate, PortUpdate, SyncStarted};
use tundra_api::identity::Role;
use tundra_api::{ListQuery, Page, PortId, Problem, SwitchId, paths};
use tundra_conductor::fabric::{networks, switches};
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;
use crate::views;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ports, create_port))
        .routes(routes!(get_port, update_port, delete_port))
        .routes(routes!(sync_port))
}

impl Object for Port {
    const NOUN: &'static str = "port";
    const KIND: &'static str = "port";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.port(path_id::<PortId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

/// Ports of your projects.
#[utoipa::path(get, path = paths::PORTS, tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Port>), (status = "4XX", body = Problem)))]
async fn list_ports(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Port>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let mut page = state.store().list_ports(&list_params(&q)?, &v).await?;
    page.items = page.items.into_iter().map(|x| views::port(&p, x)).collect();
    Ok(axum::Json(page))
}

/// Make a port on a network (addresses from its subnets); a node uses it
/// through its `networks`.
#[utoipa::path(post, path = paths::PORTS, tag = "fabric", request_body = PortCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Port), (status = "4XX", body = Problem)))]
async fn create_port(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<PortCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require(r.project_id, Role::Member, "project", &r.project_id.to_string())?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let pr = &p;
    idempotent(
        &state,
        &p,
        key,
        paths::PORTS,
        &body.digest,
        async { Ok(networks::create_port(&state.conductor, &p.actor(), r).await?) },
        |x: Port| {
            let x = views::port(pr, x);
            let rev = x.revision;
            std::future::ready(Ok((StatusCode::CREATED, x, Some(rev))))
        },
    )
    .await
}

/// A port, with its binding and drift.
#[utoipa::path(get, path = paths::PORT, tag = "fabric", params(("port" = String, Path)), responses((status = 200, body = Port), (status = "4XX", body = Problem)))]
async fn get_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<Port>(&state, &p, &id, Role::Reader).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &views::port(&p, x), Some(rev)))
}

/// Rename a port or change its description.
#[utoipa::path(patch, path = paths::PORT, tag = "fabric", request_body = PortUpdate, params(("port" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Port), (status = "4XX", body = Problem)))]
async fn update_port(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<PortUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Port>(&state, &p, &id, Role::Member).await?;
    if let Some(n) = &body.value.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let x = state.store().update_port(&p.actor(), cur.id, body.value.name, body.value.description, rev).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &views::port(&p, x), Some(rev)))
}

/// Delete a port no node uses.
#[utoipa::path(delete, path = paths::PORT, tag = "fabric", params(("port" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Port>(&state, &p, &id, Role::Member).await?;
    state.store().delete_port(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Program the port's switch port again (repairs drift, retries a failure).
#[utoipa::path(post, path = paths::PORT_SYNC, tag = "fabric", params(("port" = String, Path)), responses((status = 202, body = SyncStarted), (status = "4XX", body = Problem)))]
async fn sync_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Port>(&state, &p, &id, Role::Member).await?;
    let ports: Vec<(SwitchId, String)> = match (cur.node_id, &cur.binding) {
        (Some(_), Some(_)) => {
            let raw = state.store().port_switch(cur.id).await?;
            raw.into_iter().collect()
        }
        _ => Vec::new(),
    };
    let n = switches::resync(&state.conductor, &p.actor(), &ports).await?;
    Ok(json(StatusCode::ACCEPTED, &SyncStarted { ports: n }, None))
}
