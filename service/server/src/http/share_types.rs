//! Share types (site admins make them; every signed-in user reads them):
//! a backend, its settings and its sealed credential
//! (`tundra_conductor::shares::flows`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::identity::Role;
use tundra_api::shares::{ShareType, ShareTypeCreate, ShareTypeUpdate};
use tundra_api::{ListQuery, Page, Problem, ShareTypeId, paths};
use tundra_conductor::shares::flows;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_share_types, create_share_type)).routes(routes!(
        get_share_type,
        update_share_type,
        delete_share_type
    ))
}

impl Object for ShareType {
    const NOUN: &'static str = "share type";
    const KIND: &'static str = "share_type";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.share_type(path_id::<ShareTypeId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::SiteReadable
    }
}

/// Share types (every signed-in user).
#[utoipa::path(get, path = paths::SHARE_TYPES, tag = "shares", params(ListQuery), responses((status = 200, body = Page<ShareType>), (status = "4XX", body = Problem)))]
async fn list_share_types(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ShareType>>> {
    Ok(axum::Json(state.store().list_share_types(&list_params(&q)?).await?))
}

/// Add a share type (site admins). Its credential is sealed at rest and never returned.
#[utoipa::path(post, path = paths::SHARE_TYPES, tag = "shares", request_body = ShareTypeCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = ShareType), (status = "4XX", body = Problem)))]
async fn create_share_type(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ShareTypeCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::SHARE_TYPES,
        &body.digest,
        async { Ok(flows::create_type(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::CREATED, |x: &ShareType| x.revision),
    )
    .await
}

/// A share type.
#[utoipa::path(get, path = paths::SHARE_TYPE, tag = "shares", params(("share_type" = String, Path)), responses((status = 200, body = ShareType), (status = "4XX", body = Problem)))]
async fn get_share_type(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<ShareType>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Change a share type's description or credential (site admins).
#[utoipa::path(patch, path = paths::SHARE_TYPE, tag = "shares", request_body = ShareTypeUpdate, params(("share_type" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = ShareType), (status = "4XX", body = Problem)))]
async fn update_share_type(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ShareTypeUpdate>,
) -> ApiResult<Response> {
    let cur = find::<ShareType>(&state, &p, &id, Role::Admin).await?;
    let r = body.value;
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    let x = flows::update_type(&state.conductor, &p.actor(), &cur, r, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a share type no share uses (site admins).
#[utoipa::path(delete, path = paths::SHARE_TYPE, tag = "shares", params(("share_type" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_share_type(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ShareType>(&state, &p, &id, Role::Admin).await?;
    state.store().delete_share_type(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
