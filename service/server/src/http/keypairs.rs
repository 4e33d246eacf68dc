//! Keypairs: a project's SSH public keys (checked and fingerprinted by
//! `keys`), put on its nodes' config drives.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tundra_api::catalog::{Keypair, KeypairCreate, KeypairUpdate};
use tundra_api::identity::Role;
use tundra_api::{KeypairId, ListQuery, Page, Problem, paths};
use tundra_store::{NewKeypair, Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keypairs, create_keypair)).routes(routes!(
        get_keypair,
        update_keypair,
        delete_keypair
    ))
}

impl Object for Keypair {
    const NOUN: &'static str = "keypair";
    const KIND: &'static str = "keypair";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.keypair(path_id::<KeypairId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

/// Keypairs of your projects.
#[utoipa::path(get, path = paths::KEYPAIRS, tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Keypair>), (status = "4XX", body = Problem)))]
async fn list_keypairs(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Keypair>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_keypairs(&list_params(&q)?, &v).await?))
}

/// Add an SSH public key to a project.
#[utoipa::path(post, path = paths::KEYPAIRS, tag = "catalog", request_body = KeypairCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Keypair), (status = "4XX", body = Problem)))]
async fn create_keypair(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<KeypairCreate>,
) -> ApiResult<Response> {
    let req = body.value;
    p.require(req.project_id, Role::Member, "project", &req.project_id.to_string())?;
    check_name("/name", &req.name)?;
    check_description("/description", &req.description)?;
    let parsed = crate::keys::parse(&req.public_key).map_err(|e| crate::error::ApiError::field("/public_key", e))?;
    idempotent(
        &state,
        &p,
        key,
        paths::KEYPAIRS,
        &body.digest,
        async {
            Ok(state
                .store()
                .create_keypair(
                    &p.actor(),
                    NewKeypair {
                        project_id: req.project_id,
                        name: req.name,
                        description: req.description,
                        public_key: parsed.normalized,
                        key_type: parsed.key_type,
                        fingerprint: parsed.fingerprint,
                    },
                )
                .await?)
        },
        as_is(StatusCode::CREATED, |k: &Keypair| k.revision),
    )
    .await
}

/// A keypair.
#[utoipa::path(get, path = paths::KEYPAIR, tag = "catalog", params(("keypair" = String, Path)), responses((status = 200, body = Keypair), (status = "4XX", body = Problem)))]
async fn get_keypair(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let k = find::<Keypair>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &k, Some(k.revision)))
}

/// Change a keypair's description (the key itself never changes).
#[utoipa::path(patch, path = paths::KEYPAIR, tag = "catalog", request_body = KeypairUpdate, params(("keypair" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Keypair), (status = "4XX", body = Problem)))]
async fn update_keypair(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<KeypairUpdate>,
) -> ApiResult<Response> {
    let k = find::<Keypair>(&state, &p, &id, Role::Member).await?;
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let k = state.store().update_keypair(&p.actor(), k.id, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &k, Some(k.revision)))
}

/// Delete a keypair (nodes already deployed keep the key).
#[utoipa::path(delete, path = paths::KEYPAIR, tag = "catalog", params(("keypair" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_keypair(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let k = find::<Keypair>(&state, &p, &id, Role::Member).await?;
    state.store().delete_keypair(&p.actor(), k.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
