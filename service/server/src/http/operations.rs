//! Operations and the event log.

use axum::extract::{Path, State};
use tundra_api::ops::{Event, EventQuery, Operation};
use tundra_api::{ListQuery, OperationId, Page, Problem, paths};
use tundra_store::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, page_limit};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_operations)).routes(routes!(get_operation)).routes(routes!(list_events))
}

/// Operations of your projects (site-wide ones for site admins).
#[utoipa::path(get, path = paths::OPERATIONS, tag = "operations", params(ListQuery), responses((status = 200, body = Page<Operation>), (status = "4XX", body = Problem)))]
async fn list_operations(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Operation>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let mut page = state.store().list_operations(&list_params(&q)?, &v).await?;
    page.items = crate::views::operations(&state, &p, page.items).await?;
    Ok(axum::Json(page))
}

/// An operation: state, progress, error.
#[utoipa::path(get, path = paths::OPERATION, tag = "operations", params(("operation" = String, Path)), responses((status = 200, body = Operation), (status = "4XX", body = Problem)))]
async fn get_operation(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Operation>> {
    let op = state.store().operation(path_id::<OperationId>("operation", &id)?).await?;
    match op.project_id {
        Some(proj) => {
            p.require(proj, tundra_api::identity::Role::Reader, "operation", &id)?;
        }
        None if !p.is_admin() && op.created_by != p.user.name => {
            return Err(ApiError::NotFound { noun: "operation", id });
        }
        None => {}
    }
    Ok(axum::Json(crate::views::operations(&state, &p, vec![op]).await?.remove(0)))
}

/// The audit log: who changed what, when — per object with `object_type` and `object_id`.
#[utoipa::path(get, path = paths::EVENTS, tag = "operations", params(EventQuery), responses((status = 200, body = Page<Event>), (status = "4XX", body = Problem)))]
async fn list_events(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<EventQuery>,
) -> ApiResult<axum::Json<Page<Event>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let params = ListParams { limit: page_limit(q.limit)?, after: q.after.clone(), name: None };
    let mut page = state.store().list_events(&params, &v, q.object_type.as_deref(), q.object_id.as_deref()).await?;
    page.items = crate::views::events(&state, &p, page.items).await?;
    Ok(axum::Json(page))
}
