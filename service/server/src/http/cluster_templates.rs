//! Cluster templates: the site's (site admins make them; everyone reads
//! them) or a project's; versioned, and frozen but for the description
//! (`tundra_conductor::clusters::flows`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::clusters::{ClusterTemplate, ClusterTemplateCreate, ClusterTemplateUpdate};
use tundra_api::identity::Role;
use tundra_api::{ClusterTemplateId, ListQuery, Page, Problem, paths};
use tundra_conductor::clusters::flows;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::ApiResult;
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_templates, create_template)).routes(routes!(
        get_template,
        update_template,
        delete_template
    ))
}

impl Object for ClusterTemplate {
    const NOUN: &'static str = "cluster template";
    const KIND: &'static str = "cluster_template";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.cluster_template(path_id::<ClusterTemplateId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

/// Cluster templates: the site's and your projects'.
#[utoipa::path(get, path = paths::CLUSTER_TEMPLATES, tag = "clusters", params(ListQuery), responses((status = 200, body = Page<ClusterTemplate>), (status = "4XX", body = Problem)))]
async fn list_templates(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ClusterTemplate>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_cluster_templates(&list_params(&q)?, &v).await?))
}

/// Add a template version: the site's (site admins) or a project's
/// (members). A name and version are taken once; a change is a new version.
#[utoipa::path(post, path = paths::CLUSTER_TEMPLATES, tag = "clusters", request_body = ClusterTemplateCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = ClusterTemplate), (status = "4XX", body = Problem)))]
async fn create_template(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ClusterTemplateCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require_scope(r.project_id, Role::Member, "project", &format!("{:?}", r.project_id))?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::CLUSTER_TEMPLATES,
        &body.digest,
        async { Ok(flows::create_template(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::CREATED, |t: &ClusterTemplate| t.revision),
    )
    .await
}

/// A cluster template.
#[utoipa::path(get, path = paths::CLUSTER_TEMPLATE, tag = "clusters", params(("template" = String, Path)), responses((status = 200, body = ClusterTemplate), (status = "4XX", body = Problem)))]
async fn get_template(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let t = find::<ClusterTemplate>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &t, Some(t.revision)))
}

/// Change a template's description (the only thing that changes).
#[utoipa::path(patch, path = paths::CLUSTER_TEMPLATE, tag = "clusters", request_body = ClusterTemplateUpdate, params(("template" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = ClusterTemplate), (status = "4XX", body = Problem)))]
async fn update_template(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ClusterTemplateUpdate>,
) -> ApiResult<Response> {
    let cur = find::<ClusterTemplate>(&state, &p, &id, Role::Member).await?;
    let description = body.value.description.unwrap_or(cur.description);
    check_description("/description", &description)?;
    let t = state.store().update_cluster_template(&p.actor(), cur.id, description, rev).await?;
    Ok(json(StatusCode::OK, &t, Some(t.revision)))
}

/// Delete a template no cluster uses.
#[utoipa::path(delete, path = paths::CLUSTER_TEMPLATE, tag = "clusters", params(("template" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_template(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ClusterTemplate>(&state, &p, &id, Role::Member).await?;
    state.store().delete_cluster_template(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
