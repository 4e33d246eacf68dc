//! Shares, their access rules and snapshots (a project's): what callers
//! ask is checked and recorded by `tundra_conductor::shares::flows`; the
//! share worker does the backend's part, and the views say where it stands.
//! A rule's key is read only from `…/secret`, only once the rule is active.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tundra_api::identity::Role;
use tundra_api::shares::{
    Share, ShareAccess, ShareAccessCreate, ShareAccessSecret, ShareCreate, ShareDeleteQuery, ShareSnapshot,
    ShareSnapshotCreate, ShareUpdate,
};
use tundra_api::{ListQuery, Page, Problem, ShareAccessId, ShareId, ShareSnapshotId, paths};
use tundra_conductor::shares::{self as conductor_shares, flows};
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_description, check_name, find, idempotent, json, list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shares, create_share))
        .routes(routes!(get_share, update_share, delete_share))
        .routes(routes!(list_access, create_access))
        .routes(routes!(get_access, delete_access))
        .routes(routes!(access_secret))
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(get_snapshot, delete_snapshot))
}

impl Object for Share {
    const NOUN: &'static str = "share";
    const KIND: &'static str = "share";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.share(path_id::<ShareId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

impl Object for ShareAccess {
    const NOUN: &'static str = "share access rule";
    const KIND: &'static str = "share_access";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.access(path_id::<ShareAccessId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

impl Object for ShareSnapshot {
    const NOUN: &'static str = "share snapshot";
    const KIND: &'static str = "share_snapshot";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.snapshot(path_id::<ShareSnapshotId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

async fn shown(state: &AppState, s: Share) -> ApiResult<Share> {
    Ok(conductor_shares::shown(&state.conductor, vec![s]).await?.remove(0))
}

/// Shares of your projects.
#[utoipa::path(get, path = paths::SHARES, tag = "shares", params(ListQuery), responses((status = 200, body = Page<Share>), (status = "4XX", body = Problem)))]
async fn list_shares(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Share>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let page = state.store().list_shares(&list_params(&q)?, &v).await?;
    let items = conductor_shares::shown(&state.conductor, page.items).await?;
    Ok(axum::Json(Page { items, next: page.next }))
}

/// Make a share: 202, `creating` until the backend has it (follow `status`).
#[utoipa::path(post, path = paths::SHARES, tag = "shares", request_body = ShareCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = Share), (status = "4XX", body = Problem)))]
async fn create_share(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ShareCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require(r.project_id, Role::Member, "project", &r.project_id.to_string())?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let st = &state;
    idempotent(
        &state,
        &p,
        key,
        paths::SHARES,
        &body.digest,
        async { Ok(flows::create_share(&state.conductor, &p.actor(), r.project_id, r).await?) },
        |x: Share| async move {
            let rev = x.revision;
            Ok((StatusCode::ACCEPTED, shown(st, x).await?, Some(rev)))
        },
    )
    .await
}

/// A share, with its export locations once it is available.
#[utoipa::path(get, path = paths::SHARE, tag = "shares", params(("share" = String, Path)), responses((status = 200, body = Share), (status = "4XX", body = Problem)))]
async fn get_share(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<Share>(&state, &p, &id, Role::Reader).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &shown(&state, x).await?, Some(rev)))
}

/// Change a share: a new `size_gib` extends or shrinks it in place
/// (`extending` / `shrinking` → `available`); a shrink below what it holds is refused.
#[utoipa::path(patch, path = paths::SHARE, tag = "shares", request_body = ShareUpdate, params(("share" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Share), (status = "4XX", body = Problem)))]
async fn update_share(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ShareUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Share>(&state, &p, &id, Role::Member).await?;
    let r = body.value;
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    let x = flows::update_share(&state.conductor, &p.actor(), &cur, r, rev).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &shown(&state, x).await?, Some(rev)))
}

/// Delete a share: 202 `deleting` until the backend lets it go. Refused
/// while a node mounts it, a snapshot of it exists, or a rule is in force
/// (unless `force=true`, which takes the rules back first).
#[utoipa::path(delete, path = paths::SHARE, tag = "shares", params(("share" = String, Path), ShareDeleteQuery), responses((status = 202, body = Share), (status = "4XX", body = Problem)))]
async fn delete_share(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ShareDeleteQuery>,
) -> ApiResult<Response> {
    let cur = find::<Share>(&state, &p, &id, Role::Member).await?;
    let force = match q.force.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("/force", "true or false")),
    };
    let x = flows::delete_share(&state.conductor, &p.actor(), &cur, force).await?;
    let rev = x.revision;
    Ok(json(StatusCode::ACCEPTED, &shown(&state, x).await?, Some(rev)))
}

/// Access rules of your projects' shares.
#[utoipa::path(get, path = paths::SHARE_ACCESSES, tag = "shares", params(ListQuery), responses((status = 200, body = Page<ShareAccess>), (status = "4XX", body = Problem)))]
async fn list_access(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ShareAccess>>> {
    if q.name.is_some() {
        return Err(ApiError::field("/name", "access rules have no names; filter by project"));
    }
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_access(&list_params(&q)?, &v).await?))
}

/// Add an access rule to a share: 202, `queued` → `applying` → `active`
/// (its key exists only then, at `…/secret`).
#[utoipa::path(post, path = paths::SHARE_ACCESSES, tag = "shares", request_body = ShareAccessCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = ShareAccess), (status = "4XX", body = Problem)))]
async fn create_access(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ShareAccessCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    let share = find::<Share>(&state, &p, &r.share_id.to_string(), Role::Member).await?;
    idempotent(
        &state,
        &p,
        key,
        paths::SHARE_ACCESSES,
        &body.digest,
        async { Ok(flows::create_access(&state.conductor, &p.actor(), &share, r).await?) },
        as_is(StatusCode::ACCEPTED, |x: &ShareAccess| x.revision),
    )
    .await
}

/// An access rule (never its key).
#[utoipa::path(get, path = paths::SHARE_ACCESS, tag = "shares", params(("access" = String, Path)), responses((status = 200, body = ShareAccess), (status = "4XX", body = Problem)))]
async fn get_access(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<ShareAccess>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Take an access rule back: 202 `deleting`; its clients are evicted.
#[utoipa::path(delete, path = paths::SHARE_ACCESS, tag = "shares", params(("access" = String, Path)), responses((status = 202, body = ShareAccess), (status = "4XX", body = Problem)))]
async fn delete_access(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ShareAccess>(&state, &p, &id, Role::Member).await?;
    let x = flows::delete_access(&state.conductor, &p.actor(), &cur).await?;
    Ok(json(StatusCode::ACCEPTED, &x, Some(x.revision)))
}

/// What a client outside Tundra needs to mount the share under an active
/// rule: its cephx ID and key, monitors, path and an fstab line (members of
/// the rule's project only; 409 until the rule is active).
#[utoipa::path(get, path = paths::SHARE_ACCESS_SECRET, tag = "shares", params(("access" = String, Path)), responses((status = 200, body = ShareAccessSecret), (status = "4XX", body = Problem)))]
async fn access_secret(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ShareAccess>(&state, &p, &id, Role::Member).await?;
    let x = conductor_shares::secret_bundle(&state.conductor, &cur).await?;
    let mut r = json(StatusCode::OK, &x, None);
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Snapshots of your projects' shares.
#[utoipa::path(get, path = paths::SHARE_SNAPSHOTS, tag = "shares", params(ListQuery), responses((status = 200, body = Page<ShareSnapshot>), (status = "4XX", body = Problem)))]
async fn list_snapshots(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ShareSnapshot>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_snapshots(&list_params(&q)?, &v).await?))
}

/// Snapshot a share: 202, `creating` → `available`.
#[utoipa::path(post, path = paths::SHARE_SNAPSHOTS, tag = "shares", request_body = ShareSnapshotCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = ShareSnapshot), (status = "4XX", body = Problem)))]
async fn create_snapshot(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ShareSnapshotCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let share = find::<Share>(&state, &p, &r.share_id.to_string(), Role::Member).await?;
    idempotent(
        &state,
        &p,
        key,
        paths::SHARE_SNAPSHOTS,
        &body.digest,
        async { Ok(flows::create_snapshot(&state.conductor, &p.actor(), &share, r).await?) },
        as_is(StatusCode::ACCEPTED, |x: &ShareSnapshot| x.revision),
    )
    .await
}

/// A snapshot.
#[utoipa::path(get, path = paths::SHARE_SNAPSHOT, tag = "shares", params(("snapshot" = String, Path)), responses((status = 200, body = ShareSnapshot), (status = "4XX", body = Problem)))]
async fn get_snapshot(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find::<ShareSnapshot>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a snapshot: 202 `deleting`.
#[utoipa::path(delete, path = paths::SHARE_SNAPSHOT, tag = "shares", params(("snapshot" = String, Path)), responses((status = 202, body = ShareSnapshot), (status = "4XX", body = Problem)))]
async fn delete_snapshot(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<ShareSnapshot>(&state, &p, &id, Role::Member).await?;
    let x = flows::delete_snapshot(&state.conductor, &p.actor(), &cur).await?;
    Ok(json(StatusCode::ACCEPTED, &x, Some(x.revision)))
}
