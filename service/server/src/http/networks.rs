//! Networks: a project's (or, made by site admins, shared) segment of a
//! physical network (`tundra_conductor::fabric::networks`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{Network, NetworkCreate, NetworkUpdate};
use tundra_api::identity::Role;
use tundra_api::{ListQuery, NetworkId, Page, Problem, paths};
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
    OpenApiRouter::new().routes(routes!(list_networks, create_network)).routes(routes!(
        get_network,
        update_network,
        delete_network
    ))
}

impl Object for Network {
    const NOUN: &'static str = "network";
    const KIND: &'static str = "network";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.network(path_id::<NetworkId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

/// Networks of your projects, and shared ones.
#[utoipa::path(get, path = paths::NETWORKS, tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Network>), (status = "4XX", body = Problem)))]
async fn list_networks(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Network>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_networks(&list_params(&q)?, &v).await?))
}

/// Make a network: the next free segment of the physical network (site
/// admins may name one, or make it flat, or shared by leaving out `project_id`).
#[utoipa::path(post, path = paths::NETWORKS, tag = "fabric", request_body = NetworkCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Network), (status = "4XX", body = Problem)))]
async fn create_network(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<NetworkCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    match r.project_id {
        Some(pid) => {
            p.require(pid, Role::Member, "project", &pid.to_string())?;
        }
        None => p
            .require_admin()
            .map_err(|_| ApiError::field("/project_id", "only site admins make shared networks; name your project"))?,
    }
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::NETWORKS,
        &body.digest,
        async { Ok(networks::create_network(&state.conductor, &p.actor(), p.is_admin(), r).await?) },
        as_is(StatusCode::CREATED, |x: &Network| x.revision),
    )
    .await
}

/// A network.
#[utoipa::path(get, path = paths::NETWORK, tag = "fabric", params(("network" = String, Path)), responses((status = 200, body = Network), (status = "4XX", body = Problem)))]
async fn get_network(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<Network>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Rename a network or change its description.
#[utoipa::path(patch, path = paths::NETWORK, tag = "fabric", request_body = NetworkUpdate, params(("network" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Network), (status = "4XX", body = Problem)))]
async fn update_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<NetworkUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Network>(&state, &p, &id, Role::Member).await?;
    if let Some(n) = &body.value.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let x = state.store().update_network(&p.actor(), cur.id, body.value.name, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a network without ports (its subnets go with it; its segment is free again).
#[utoipa::path(delete, path = paths::NETWORK, tag = "fabric", params(("network" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_network(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Network>(&state, &p, &id, Role::Member).await?;
    state.store().delete_network(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
