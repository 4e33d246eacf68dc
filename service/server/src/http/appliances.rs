//! Appliance templates — the site's (site admins make them; everyone reads
//! them) or a project's; versioned, frozen but for the description — and
//! appliances (project members): platforms whose nodes tundrad makes,
//! configures and scales in place (`tundra_conductor::appliances`). No
//! generated secret is ever in a view.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::appliances::{
    Appliance, ApplianceCreate, ApplianceTemplate, ApplianceTemplateCreate, ApplianceTemplateUpdate, ApplianceUpdate,
};
use tundra_api::identity::Role;
use tundra_api::{ApplianceId, ApplianceTemplateId, ListQuery, Page, Problem, paths};
use tundra_conductor::appliances::flows;
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
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(list_appliances, create_appliance))
        .routes(routes!(get_appliance, update_appliance, delete_appliance))
}

impl Object for ApplianceTemplate {
    const NOUN: &'static str = "appliance template";
    const KIND: &'static str = "appliance_template";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.appliance_template(path_id::<ApplianceTemplateId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

impl Object for Appliance {
    const NOUN: &'static str = "appliance";
    const KIND: &'static str = "appliance";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.appliance(path_id::<ApplianceId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

/// Appliance templates: the site's and your projects'.
#[utoipa::path(get, path = paths::APPLIANCE_TEMPLATES, tag = "appliances", params(ListQuery), responses((status = 200, body = Page<ApplianceTemplate>), (status = "4XX", body = Problem)))]
async fn list_templates(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ApplianceTemplate>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_appliance_templates(&list_params(&q)?, &v).await?))
}

/// Add a template version (site admins; a project's own templates are
/// refused for now, since texts render inside tundrad). It is checked whole — every role's binding to a parameter of
/// its kind, every text parsed and naming only what it can see — and a
/// name and version are taken once; a change is a new version.
#[utoipa::path(post, path = paths::APPLIANCE_TEMPLATES, tag = "appliances", request_body = ApplianceTemplateCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = ApplianceTemplate), (status = "4XX", body = Problem)))]
async fn create_template(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ApplianceTemplateCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require_scope(r.project_id, Role::Member, "project", &format!("{:?}", r.project_id))?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::APPLIANCE_TEMPLATES,
        &body.digest,
        async { Ok(flows::create_template(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::CREATED, |t: &ApplianceTemplate| t.revision),
    )
    .await
}

/// An appliance template.
#[utoipa::path(get, path = paths::APPLIANCE_TEMPLATE, tag = "appliances", params(("appliance_template" = String, Path)), responses((status = 200, body = ApplianceTemplate), (status = "4XX", body = Problem)))]
async fn get_template(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find::<ApplianceTemplate>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &t, Some(t.revision)))
}

/// Change a template's description (the only thing that changes).
#[utoipa::path(patch, path = paths::APPLIANCE_TEMPLATE, tag = "appliances", request_body = ApplianceTemplateUpdate, params(("appliance_template" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = ApplianceTemplate), (status = "4XX", body = Problem)))]
async fn update_template(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ApplianceTemplateUpdate>,
) -> ApiResult<Response> {
    let cur = find::<ApplianceTemplate>(&state, &p, &id, Role::Member).await?;
    let description = body.value.description.unwrap_or(cur.description);
    check_description("/description", &description)?;
    let t = state.store().update_appliance_template(&p.actor(), cur.id, description, rev).await?;
    Ok(json(StatusCode::OK, &t, Some(t.revision)))
}

/// Delete a template no appliance uses.
#[utoipa::path(delete, path = paths::APPLIANCE_TEMPLATE, tag = "appliances", params(("appliance_template" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_template(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ApplianceTemplate>(&state, &p, &id, Role::Member).await?;
    state.store().delete_appliance_template(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Appliances of your projects.
#[utoipa::path(get, path = paths::APPLIANCES, tag = "appliances", params(ListQuery), responses((status = 200, body = Page<Appliance>), (status = "4XX", body = Problem)))]
async fn list_appliances(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Appliance>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let mut page = state.store().list_appliances(&list_params(&q)?, &v).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in page.items {
        items.push(flows::with_addresses(&state.conductor, a).await?);
    }
    page.items = items;
    Ok(axum::Json(page))
}

/// Make an appliance from a template: answers 202 with it `creating`;
/// tundrad checks the parameters against the template, generates its
/// secrets, places each role's nodes and judges it `active` only once every
/// node reported ready. Follow `status`, `roles` and `members`; `outputs`
/// and `usage` appear once every role has its nodes.
#[utoipa::path(post, path = paths::APPLIANCES, tag = "appliances", request_body = ApplianceCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = Appliance), (status = "4XX", body = Problem)))]
async fn create_appliance(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ApplianceCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require(r.project_id, Role::Member, "project", &r.project_id.to_string())?;
    check_name("/name", &r.name)?;
    idempotent(
        &state,
        &p,
        key,
        paths::APPLIANCES,
        &body.digest,
        async { Ok(flows::create(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::ACCEPTED, |a: &Appliance| a.revision),
    )
    .await
}

/// An appliance, with its roles' status and its members.
#[utoipa::path(get, path = paths::APPLIANCE, tag = "appliances", params(("appliance" = String, Path)), responses((status = 200, body = Appliance), (status = "4XX", body = Problem)))]
async fn get_appliance(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let a = find::<Appliance>(&state, &p, &id, Role::Reader).await?;
    let a = flows::with_addresses(&state.conductor, a).await?;
    Ok(json(StatusCode::OK, &a, Some(a.revision)))
}

/// Change an appliance's parameters in place: a count adds nodes, or
/// drains and removes them; a new share mounts; files render anew. An
/// immutable parameter's change is refused, naming it.
#[utoipa::path(patch, path = paths::APPLIANCE, tag = "appliances", request_body = ApplianceUpdate, params(("appliance" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Appliance), (status = "4XX", body = Problem)))]
async fn update_appliance(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ApplianceUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Appliance>(&state, &p, &id, Role::Member).await?;
    let a = flows::update(&state.conductor, &p.actor(), &cur, body.value, rev).await?;
    let a = flows::with_addresses(&state.conductor, a).await?;
    Ok(json(StatusCode::OK, &a, Some(a.revision)))
}

/// Delete an appliance: 202 with it `deleting`; its nodes are deleted
/// (their machines cleaned), then it and its secrets disappear.
#[utoipa::path(delete, path = paths::APPLIANCE, tag = "appliances", params(("appliance" = String, Path)), responses((status = 202, body = Appliance), (status = "4XX", body = Problem)))]
async fn delete_appliance(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Appliance>(&state, &p, &id, Role::Member).await?;
    let a = flows::delete(&state.conductor, &p.actor(), &cur).await?;
    Ok(json(StatusCode::ACCEPTED, &a, Some(a.revision)))
}
