//! Nodes (project members): placed and deployed by the conductor
//! (`tundra_conductor::nodes`), shown with their networks and drift.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::identity::Role;
use tundra_api::nodes::{Node, NodeCreate, NodeRebuild, NodeStatus, NodeUpdate};
use tundra_api::{ListQuery, NodeId, Page, Problem, paths};
use tundra_conductor::fabric::binding;
use tundra_conductor::nodes::placement;
use tundra_store::{Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{Object, Owner, check_name, find, idempotent, json, list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;
use crate::views;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes, create_node))
        .routes(routes!(get_node, update_node, delete_node))
        .routes(routes!(rebuild_node))
}

impl Object for Node {
    const NOUN: &'static str = "node";
    const KIND: &'static str = "node";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.node(path_id::<NodeId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.project_id)
    }
}

const MAX_USER_DATA: usize = 64 * 1024;

fn check_metadata(m: &std::collections::BTreeMap<String, String>) -> ApiResult<()> {
    if m.len() > 128 {
        return Err(ApiError::field("/metadata", format!("{} keys; at most 128", m.len())));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > 255 || k.chars().any(char::is_control) {
            return Err(ApiError::field("/metadata", format!("key {k:?}: 1–255 printable characters")));
        }
        if k.starts_with("tundra:") {
            return Err(ApiError::field(
                "/metadata",
                format!(
                    "key {k:?}: keys starting with \"tundra:\" are tundrad's own (it marks the nodes it makes); pick another"
                ),
            ));
        }
        if v.len() > 255 {
            return Err(ApiError::field(&format!("/metadata/{k}"), "at most 255 bytes"));
        }
    }
    Ok(())
}

fn check_place(pointer: &str, v: &Option<String>) -> ApiResult<()> {
    match v {
        Some(s) => check_name(pointer, s),
        None => Ok(()),
    }
}

/// Nodes of your projects.
#[utoipa::path(get, path = paths::NODES, tag = "nodes", params(ListQuery), responses((status = 200, body = Page<Node>), (status = "4XX", body = Problem)))]
async fn list_nodes(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Node>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    let mut page = state.store().list_nodes(&list_params(&q)?, &v).await?;
    page.items = views::nodes(&state, &p, page.items).await?;
    Ok(axum::Json(page))
}

/// Place a node and start deploying it: answers 202 with the node
/// `building`; follow `status`. 409 `no-capacity` when no machine fits.
#[utoipa::path(post, path = paths::NODES, tag = "nodes", request_body = NodeCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 202, body = Node), (status = "4XX", body = Problem)))]
async fn create_node(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<NodeCreate>,
) -> ApiResult<Response> {
    let req = body.value;
    p.require(req.project_id, Role::Member, "project", &req.project_id.to_string())?;
    check_name("/name", &req.name)?;
    check_metadata(&req.metadata)?;
    if req.user_data.as_ref().is_some_and(|u| u.len() > MAX_USER_DATA) {
        return Err(ApiError::field("/user_data", format!("at most {} KiB", MAX_USER_DATA >> 10)));
    }
    let pl = &req.placement;
    check_place("/placement/site", &pl.site)?;
    check_place("/placement/rack", &pl.rack)?;
    check_place("/placement/island", &pl.island)?;
    check_place("/placement/group", &pl.group)?;
    match (&pl.group, pl.policy) {
        (Some(_), None) => {
            return Err(ApiError::field("/placement/policy", "a group needs a policy: affinity or anti_affinity"));
        }
        (None, Some(_)) => {
            return Err(ApiError::field("/placement/group", "a policy applies to a group: name one"));
        }
        _ => {}
    }
    tundra_conductor::shares::flows::check_node_shares(&req.shares)?;
    let project = req.project_id;
    // Not found or another project's: the caller's mistake. Any other store
    // error is tundrad's, and says so.
    let flavor =
        found(state.store().flavor(req.flavor_id).await)?.filter(|f| f.project_id.is_none_or(|fp| fp == project));
    let flavor = flavor.ok_or_else(|| {
        ApiError::field("/flavor_id", format!("no flavor {} is public or in the node's project", req.flavor_id))
    })?;
    let image = found(state.store().image(req.image_id).await)?.filter(|i| i.project_id.is_none_or(|ip| ip == project));
    let image = image.ok_or_else(|| {
        ApiError::field("/image_id", format!("no image {} is public or in the node's project", req.image_id))
    })?;
    if image.status != tundra_api::catalog::ImageStatus::Active {
        return Err(ApiError::field(
            "/image_id",
            format!("image {} is {}; wait until it is active", image.name, image.status.as_str()),
        ));
    }
    if let Some(k) = req.keypair_id {
        let ok = state.store().keypair(k).await.ok().is_some_and(|kp| kp.project_id == project);
        if !ok {
            return Err(ApiError::field("/keypair_id", format!("no keypair {k} in the node's project")));
        }
    }
    let actor = p.actor();
    let (st, pr) = (&state, &p);
    idempotent(
        &state,
        &p,
        key,
        paths::NODES,
        &body.digest,
        async { Ok(placement::create(&state.conductor, &actor, req, &flavor, &image).await?) },
        |n: Node| async move {
            let rev = n.revision;
            Ok((StatusCode::ACCEPTED, views::node(st, pr, n).await?, Some(rev)))
        },
    )
    .await
}

/// A node.
#[utoipa::path(get, path = paths::NODE, tag = "nodes", params(("node" = String, Path)), responses((status = 200, body = Node), (status = "4XX", body = Problem)))]
async fn get_node(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let n = find::<Node>(&state, &p, &id, Role::Reader).await?;
    let rev = n.revision;
    Ok(json(StatusCode::OK, &views::node(&state, &p, n).await?, Some(rev)))
}

/// Change a node's metadata and networks in place. The config drive keeps
/// what it was deployed with; the metadata service answers the new values.
/// New `networks` move the node's switch ports (and program every one of
/// them again, which repairs drift); follow `networks[*].drift` and the ports.
#[utoipa::path(patch, path = paths::NODE, tag = "nodes", request_body = NodeUpdate, params(("node" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Node), (status = "4XX", body = Problem)))]
async fn update_node(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<NodeUpdate>,
) -> ApiResult<Response> {
    let n = find::<Node>(&state, &p, &id, Role::Member).await?;
    let req = body.value;
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    let wants = match &req.networks {
        Some(nets) => {
            if !matches!(n.status, NodeStatus::Building | NodeStatus::Active) {
                return Err(ApiError::field(
                    "/networks",
                    format!(
                        "node {} is {}; only a building or active node's networks change",
                        n.name,
                        n.status.as_str()
                    ),
                ));
            }
            Some(binding::resolve(&state.conductor, n.project_id, Some(n.id), nets).await?)
        }
        None => None,
    };
    let shares = match &req.shares {
        Some(want) => tundra_conductor::shares::flows::node_shares_change(&state.conductor, &n, want).await?,
        None => None,
    };
    let mut n = binding::update_node(&state.conductor, &p.actor(), &n, req.metadata, wants, rev).await?;
    if let Some(shares) = &shares {
        tundra_conductor::shares::flows::set_node_shares(&state.conductor, &p.actor(), &n, shares).await?;
        n = state.store().node(n.id).await?;
    }
    let rev = n.revision;
    Ok(json(StatusCode::OK, &views::node(&state, &p, n).await?, Some(rev)))
}

/// Delete a node: its machine is cleaned before it returns to the pool.
/// 202 with the node `deleting` (it disappears when cleaning ends), or 204
/// when it held no machine.
#[utoipa::path(delete, path = paths::NODE, tag = "nodes", params(("node" = String, Path)), responses((status = 202, body = Node), (status = 204), (status = "4XX", body = Problem)))]
async fn delete_node(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let n = find::<Node>(&state, &p, &id, Role::Member).await?;
    tundra_conductor::clusters::flows::check_node_removable(&state.conductor, n.id).await?;
    tundra_conductor::appliances::flows::check_node_removable(&state.conductor, n.id).await?;
    Ok(match placement::delete(&state.conductor, &p.actor(), &n).await? {
        Some(n) => {
            let rev = n.revision;
            json(StatusCode::ACCEPTED, &views::node(&state, &p, n).await?, Some(rev))
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Rebuild an active node in place: its machine is deployed again with
/// `image_id` (none: its own image, a reinstall) and a fresh config drive,
/// keeping the node's name, address, networks and mounts; its disk is
/// rewritten, not cleaned. 202 with the node `building`; follow `status`.
/// A rebuild that fails leaves the node `error` and its machine cleaned
/// (delete the node, or lower its appliance's count). 409 when the node is
/// not active, belongs to a cluster (its cluster replaces members) or is
/// leaving its appliance. The body may be `{}`.
#[utoipa::path(post, path = paths::NODE_REBUILD, tag = "nodes", request_body = NodeRebuild, params(("node" = String, Path)), responses((status = 202, body = Node), (status = "4XX", body = Problem)))]
async fn rebuild_node(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Body<NodeRebuild>,
) -> ApiResult<Response> {
    let n = find::<Node>(&state, &p, &id, Role::Member).await?;
    tundra_conductor::clusters::flows::check_node_removable(&state.conductor, n.id).await?;
    tundra_conductor::appliances::flows::check_rebuildable(&state.conductor, n.id).await?;
    let image_id = body.value.image_id.unwrap_or(n.image_id);
    let image = found(state.store().image(image_id).await)?.ok_or_else(|| {
        ApiError::field("/image_id", format!("no image {image_id} is public or in the node's project"))
    })?;
    let n = placement::rebuild(&state.conductor, &p.actor(), &n, &image).await?;
    let rev = n.revision;
    Ok(json(StatusCode::ACCEPTED, &views::node(&state, &p, n).await?, Some(rev)))
}

/// `Some` when found, `None` when not; other store errors pass through.
fn found<T>(r: Result<T, StoreError>) -> ApiResult<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
