//! Clusters (project members): node groups tundrad makes, joins into a
//! cluster and scales in place (`tundra_conductor::clusters`). No join
//! secret is ever in a view.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tundra_api::clusters::{Cluster, ClusterCreate, ClusterCredentials, ClusterCredentialsRequest, ClusterUpdate};
use tundra_api::identity::Role;
use tundra_api::{ClusterId, ListQuery, Page, Problem, paths};
use tundra_conductor::clusters::flows;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, as_is, check_name, find, idempotent, json, list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clusters, create_cluster))
        .routes(routes!(get_cluster, update_cluster, delete_cluster))
        .routes(routes!(cluster_credentials))
}

impl Object for Cluster {
    const NOUN: &'static str = "cluster";
    const KIND: &'static str = "cluster";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.cluster(path_id::<ClusterId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

fn check_labels(m: &std::collections::BTreeMap<String, String>) -> ApiResult<()> {
    if m.len() > 64 {
        return Err(ApiError::field("/labels", format!("{} labels; at most 64", m.len())));
    }
    for (k, v) in m {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !key_ok {
            return Err(ApiError::field("/labels", format!("key {k:?}: 1–63 letters, digits, '.', '_', '-', '/'")));
        }
        if v.len() > 255 || v.chars().any(char::is_control) {
            return Err(ApiError::field(&format!("/labels/{k}"), "at most 255 printable bytes"));
        }
    }
    Ok(())
}

/// Clusters of your projects.
#[utoipa::path(get, path = paths::CLUSTERS, tag = "clusters", params(ListQuery), responses((status = 200, body = Page<Cluster>), (status = "4XX", body = Problem)))]
async fn list_clusters(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Cluster>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_clusters(&list_params(&q)?, &v).await?))
}

/// Make a cluster: answers 202 with it `creating`; tundrad places its
/// groups' nodes and judges it `active` only once every node has joined and
/// the control plane sees each one ready. Follow `status` and `members`.
#[utoipa::path(post, path = paths::CLUSTERS, tag = "clusters", request_body = ClusterCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = Cluster), (status = "4XX", body = Problem)))]
async fn create_cluster(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ClusterCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require(r.project_id, Role::Member, "project", &r.project_id.to_string())?;
    check_name("/name", &r.name)?;
    check_labels(&r.labels)?;
    idempotent(
        &state,
        &p,
        key,
        paths::CLUSTERS,
        &body.digest,
        async { Ok(flows::create(&state.conductor, &p.actor(), r).await?) },
        as_is(StatusCode::ACCEPTED, |c: &Cluster| c.revision),
    )
    .await
}

/// A cluster, with its members.
#[utoipa::path(get, path = paths::CLUSTER, tag = "clusters", params(("cluster" = String, Path)), responses((status = 200, body = Cluster), (status = "4XX", body = Problem)))]
async fn get_cluster(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let c = find::<Cluster>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &c, Some(c.revision)))
}

/// Change a cluster in place: group counts (nodes added, or drained,
/// removed and cleaned), new or removed worker groups, networks appended,
/// shares, labels; `replace` swaps a node for a new one.
#[utoipa::path(patch, path = paths::CLUSTER, tag = "clusters", request_body = ClusterUpdate, params(("cluster" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Cluster), (status = "4XX", body = Problem)))]
async fn update_cluster(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ClusterUpdate>,
) -> ApiResult<Response> {
    let cur = find::<Cluster>(&state, &p, &id, Role::Member).await?;
    let r = body.value;
    if let Some(l) = &r.labels {
        check_labels(l)?;
    }
    let c = flows::update(&state.conductor, &p.actor(), &cur, r, rev).await?;
    Ok(json(StatusCode::OK, &c, Some(c.revision)))
}

/// Delete a cluster: 202 with it `deleting`; its nodes are deleted (their
/// machines cleaned), then it disappears.
#[utoipa::path(delete, path = paths::CLUSTER, tag = "clusters", params(("cluster" = String, Path)), responses((status = 202, body = Cluster), (status = "4XX", body = Problem)))]
async fn delete_cluster(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find::<Cluster>(&state, &p, &id, Role::Member).await?;
    let c = flows::delete(&state.conductor, &p.actor(), &cur).await?;
    Ok(json(StatusCode::ACCEPTED, &c, Some(c.revision)))
}

/// Short-lived credentials for the cluster's control plane (project
/// members): made fresh for each request, never kept, never cached.
#[utoipa::path(post, path = paths::CLUSTER_CREDENTIALS, tag = "clusters", request_body = ClusterCredentialsRequest, params(("cluster" = String, Path)), responses((status = 200, body = ClusterCredentials), (status = "4XX", body = Problem)))]
async fn cluster_credentials(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Body<ClusterCredentialsRequest>,
) -> ApiResult<Response> {
    let cl = find::<Cluster>(&state, &p, &id, Role::Member).await?;
    let ttl = body.value.ttl_seconds.unwrap_or(3600);
    if !(60..=12 * 3600).contains(&ttl) {
        return Err(ApiError::field("/ttl_seconds", format!("{ttl} s; from 60 s to 12 h (43200)")));
    }
    let creds =
        flows::credentials(&state.conductor, &p.actor(), &cl, std::time::Duration::from_secs(ttl.into())).await?;
    let mut r = json(StatusCode::OK, &creds, None);
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(r)
}
