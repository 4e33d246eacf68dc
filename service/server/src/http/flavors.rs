//! Flavors: a resource class and required traits — what a node asks of
//! its machine. Public (site admins') or a project's own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tundra_api::catalog::{Flavor, FlavorCreate, FlavorUpdate};
use tundra_api::identity::Role;
use tundra_api::{FlavorId, ListQuery, Page, Problem, paths};
use tundra_store::{FlavorChanges, NewFlavor, Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{
    Object, Owner, as_is, check_description, check_name, check_resource_class, check_traits, find, idempotent, json,
    list_params, path_id,
};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_flavors, create_flavor)).routes(routes!(
        get_flavor,
        update_flavor,
        delete_flavor
    ))
}

impl Object for Flavor {
    const NOUN: &'static str = "flavor";
    const KIND: &'static str = "flavor";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.flavor(path_id::<FlavorId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

/// Public flavors and your projects' flavors (`project=public` for public only).
#[utoipa::path(get, path = paths::FLAVORS, tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Flavor>), (status = "4XX", body = Problem)))]
async fn list_flavors(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Flavor>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_flavors(&list_params(&q)?, &v).await?))
}

/// Create a flavor: public (site admins) or for a project (members).
#[utoipa::path(post, path = paths::FLAVORS, tag = "catalog", request_body = FlavorCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Flavor), (status = "4XX", body = Problem)))]
async fn create_flavor(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<FlavorCreate>,
) -> ApiResult<Response> {
    let req = body.value;
    p.require_scope(req.project_id, Role::Member, "project", &format!("{:?}", req.project_id))?;
    check_name("/name", &req.name)?;
    check_description("/description", &req.description)?;
    check_resource_class(&req.resource_class)?;
    let traits = check_traits("/required_traits", &req.required_traits)?;
    idempotent(
        &state,
        &p,
        key,
        paths::FLAVORS,
        &body.digest,
        async {
            Ok(state
                .store()
                .create_flavor(
                    &p.actor(),
                    NewFlavor {
                        project_id: req.project_id,
                        name: req.name,
                        description: req.description,
                        resource_class: req.resource_class,
                        required_traits: traits,
                    },
                )
                .await?)
        },
        as_is(StatusCode::CREATED, |f: &Flavor| f.revision),
    )
    .await
}

/// A flavor.
#[utoipa::path(get, path = paths::FLAVOR, tag = "catalog", params(("flavor" = String, Path)), responses((status = 200, body = Flavor), (status = "4XX", body = Problem)))]
async fn get_flavor(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let f = find::<Flavor>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &f, Some(f.revision)))
}

/// Rename a flavor or change its description or required traits.
#[utoipa::path(patch, path = paths::FLAVOR, tag = "catalog", request_body = FlavorUpdate, params(("flavor" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Flavor), (status = "4XX", body = Problem)))]
async fn update_flavor(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<FlavorUpdate>,
) -> ApiResult<Response> {
    let f = find::<Flavor>(&state, &p, &id, Role::Member).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &req.description {
        check_description("/description", d)?;
    }
    let traits = req.required_traits.as_deref().map(|t| check_traits("/required_traits", t)).transpose()?;
    let f = state
        .store()
        .update_flavor(
            &p.actor(),
            f.id,
            FlavorChanges { name: req.name, description: req.description, required_traits: traits },
            rev,
        )
        .await?;
    Ok(json(StatusCode::OK, &f, Some(f.revision)))
}

/// Delete a flavor.
#[utoipa::path(delete, path = paths::FLAVOR, tag = "catalog", params(("flavor" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_flavor(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let f = find::<Flavor>(&state, &p, &id, Role::Member).await?;
    state.store().delete_flavor(&p.actor(), f.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
