//! Switches tundrad programs (site admins): their settings and sealed
//! credentials (`tundra_conductor::fabric::switches`), their managed ports
//! with desired and actual segment, and the repair of drifted ports.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{Switch, SwitchCreate, SwitchPortState, SwitchPortView, SwitchUpdate, SyncStarted};
use tundra_api::identity::Role;
use tundra_api::{ListQuery, Page, Problem, SwitchId, paths};
use tundra_conductor::fabric::switches;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_switches, create_switch))
        .routes(routes!(get_switch, update_switch, delete_switch))
        .routes(routes!(sync_switch))
        .routes(routes!(switch_ports))
}

impl Object for Switch {
    const NOUN: &'static str = "switch";
    const KIND: &'static str = "switch";
    const SITE_ONLY: bool = true;
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.switch(path_id::<SwitchId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Site
    }
}

/// Switches (site admins).
#[utoipa::path(get, path = paths::SWITCHES, tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Switch>), (status = "4XX", body = Problem)))]
async fn list_switches(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Switch>>> {
    p.require_admin()?;
    Ok(axum::Json(state.store().list_switches(&list_params(&q)?).await?))
}

/// Add a switch tundrad programs (site admins). Its password or key is
/// sealed at rest and never returned; its host key is pinned.
#[utoipa::path(post, path = paths::SWITCHES, tag = "fabric", request_body = SwitchCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Switch), (status = "4XX", body = Problem)))]
async fn create_switch(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<SwitchCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::SWITCHES,
        &body.digest,
        async { Ok(switches::create(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::CREATED, |x: &Switch| x.revision),
    )
    .await
}

/// A switch (site admins).
#[utoipa::path(get, path = paths::SWITCH, tag = "fabric", params(("switch" = String, Path)), responses((status = 200, body = Switch), (status = "4XX", body = Problem)))]
async fn get_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<Switch>(&state, &p, &id, Role::Admin).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Change a switch (site admins): credentials are replaced when given.
#[utoipa::path(patch, path = paths::SWITCH, tag = "fabric", request_body = SwitchUpdate, params(("switch" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Switch), (status = "4XX", body = Problem)))]
async fn update_switch(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<SwitchUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Switch>(&state, &p, &id, Role::Admin).await?;
    let r = body.value;
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    let x = switches::update(&state.conductor, &p.actor(), &cur, r, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a switch no node's port is bound through (site admins).
#[utoipa::path(delete, path = paths::SWITCH, tag = "fabric", params(("switch" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Switch>(&state, &p, &id, Role::Admin).await?;
    state.store().delete_switch(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Program every drifted or failed port of the switch again (site admins).
#[utoipa::path(post, path = paths::SWITCH_SYNC, tag = "fabric", params(("switch" = String, Path)), responses((status = 202, body = SyncStarted), (status = "4XX", body = Problem)))]
async fn sync_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Switch>(&state, &p, &id, Role::Admin).await?;
    let ports: Vec<(SwitchId, String)> = state
        .store()
        .switch_ports()
        .await?
        .into_iter()
        .filter(|r| r.switch_id == cur.id && matches!(r.state, SwitchPortState::Drifted | SwitchPortState::Failed))
        .map(|r| (r.switch_id, r.port))
        .collect();
    let n = switches::resync(&state.conductor, &p.actor(), &ports).await?;
    Ok(json(StatusCode::ACCEPTED, &SyncStarted { ports: n }, None))
}

/// The switch's managed ports: desired and actual segment, state (site admins).
#[utoipa::path(get, path = paths::SWITCH_PORTS, tag = "fabric", params(("switch" = String, Path)), responses((status = 200, body = Vec<SwitchPortView>), (status = "4XX", body = Problem)))]
async fn switch_ports(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<SwitchPortView>>> {
    let cur = find::<Switch>(&state, &p, &id, Role::Admin).await?;
    let records = state.store().switch_ports().await?;
    Ok(axum::Json(records.into_iter().filter(|r| r.switch_id == cur.id).map(crate::views::switch_port).collect()))
}
