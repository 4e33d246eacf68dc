//! Physical networks (site admins add and change them; every signed-in
//! user reads them — projects pick one for a network).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{PhysicalNetwork, PhysicalNetworkCreate, PhysicalNetworkUpdate};
use tundra_api::identity::Role;
use tundra_api::{ListQuery, Page, PhysicalNetworkId, Problem, paths};
use tundra_conductor::fabric::networks;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_physical_networks, create_physical_network)).routes(routes!(
        get_physical_network,
        update_physical_network,
        delete_physical_network
    ))
}

impl Object for PhysicalNetwork {
    const NOUN: &'static str = "physical network";
    const KIND: &'static str = "physical_network";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.physical_network(path_id::<PhysicalNetworkId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::SiteReadable
    }
}

/// Physical networks (everyone may read them: projects pick one for a network).
#[utoipa::path(get, path = paths::PHYSICAL_NETWORKS, tag = "fabric", params(ListQuery), responses((status = 200, body = Page<PhysicalNetwork>), (status = "4XX", body = Problem)))]
async fn list_physical_networks(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<PhysicalNetwork>>> {
    Ok(axum::Json(state.store().list_physical_networks(&list_params(&q)?).await?))
}

/// Add a physical network (site admins).
#[utoipa::path(post, path = paths::PHYSICAL_NETWORKS, tag = "fabric", request_body = PhysicalNetworkCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn create_physical_network(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<PhysicalNetworkCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::PHYSICAL_NETWORKS,
        &body.digest,
        async { Ok(networks::create_physical_network(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::CREATED, |x: &PhysicalNetwork| x.revision),
    )
    .await
}

/// A physical network.
#[utoipa::path(get, path = paths::PHYSICAL_NETWORK, tag = "fabric", params(("physical_network" = String, Path)), responses((status = 200, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn get_physical_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let x = find::<PhysicalNetwork>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Change a physical network's description (site admins).
#[utoipa::path(patch, path = paths::PHYSICAL_NETWORK, tag = "fabric", request_body = PhysicalNetworkUpdate, params(("physical_network" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn update_physical_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<PhysicalNetworkUpdate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let cur = find::<PhysicalNetwork>(&state, &p, &id, Role::Admin).await?;
    let x = state.store().update_physical_network(&p.actor(), cur.id, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a physical network without switches or networks (site admins).
#[utoipa::path(delete, path = paths::PHYSICAL_NETWORK, tag = "fabric", params(("physical_network" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_physical_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let cur = find::<PhysicalNetwork>(&state, &p, &id, Role::Admin).await?;
    state.store().delete_physical_network(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
