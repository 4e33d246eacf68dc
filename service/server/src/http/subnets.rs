//! Subnets: IPv4 ranges of a network, with the pools its ports draw
//! addresses from (`tundra_conductor::fabric::networks`, `tundra_engine::ipam`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{Network, Subnet, SubnetCreate, SubnetUpdate};
use tundra_api::identity::Role;
use tundra_api::{ListQuery, Page, Problem, SubnetId, paths};
use tundra_conductor::fabric::networks;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_subnets, create_subnet)).routes(routes!(
        get_subnet,
        update_subnet,
        delete_subnet
    ))
}

impl Object for Subnet {
    const NOUN: &'static str = "subnet";
    const KIND: &'static str = "subnet";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.subnet(path_id::<SubnetId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

/// Subnets of your projects' networks, and of shared ones.
#[utoipa::path(get, path = paths::SUBNETS, tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Subnet>), (status = "4XX", body = Problem)))]
async fn list_subnets(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Subnet>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_subnets(&list_params(&q)?, &v).await?))
}

/// Add an IPv4 subnet to a network: its ports get addresses from the pools.
#[utoipa::path(post, path = paths::SUBNETS, tag = "fabric", request_body = SubnetCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Subnet), (status = "4XX", body = Problem)))]
async fn create_subnet(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<SubnetCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    // Someone else's network is not found (404), as on every route.
    let net = find::<Network>(&state, &p, &r.network_id.to_string(), Role::Member).await?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::SUBNETS,
        &body.digest,
        async { Ok(networks::create_subnet(&state.conductor, &p.actor(), &net, r).await?) },
        as_is(StatusCode::CREATED, |x: &Subnet| x.revision),
    )
    .await
}

/// A subnet.
#[utoipa::path(get, path = paths::SUBNET, tag = "fabric", params(("subnet" = String, Path)), responses((status = 200, body = Subnet), (status = "4XX", body = Problem)))]
async fn get_subnet(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<Subnet>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Rename a subnet, change its description or DNS servers.
#[utoipa::path(patch, path = paths::SUBNET, tag = "fabric", request_body = SubnetUpdate, params(("subnet" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Subnet), (status = "4XX", body = Problem)))]
async fn update_subnet(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<SubnetUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Subnet>(&state, &p, &id, Role::Member).await?;
    let r = body.value;
    if let Some(n) = &r.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    if let Some(dns) = &r.dns {
        tundra_engine::ipam::check_dns(dns).map_err(ApiError::from)?;
    }
    let x = state.store().update_subnet(&p.actor(), cur.id, r.name, r.description, r.dns, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a subnet no port holds an address of.
#[utoipa::path(delete, path = paths::SUBNET, tag = "fabric", params(("subnet" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_subnet(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Subnet>(&state, &p, &id, Role::Member).await?;
    state.store().delete_subnet(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
