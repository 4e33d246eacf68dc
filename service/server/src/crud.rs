//! What every noun's handlers share: finding an object the caller may see
//! (by who owns it), list parameters, JSON answers with ETags, idempotent
//! creates, byte downloads with `Range`, and the name and description rules.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tundra_api::identity::Role;
use tundra_api::{ListQuery, ProjectId};
use tundra_store::{ListParams, Store, StoreError, StoredResponse};

use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, page_limit};
use crate::principal::Principal;
use crate::state::AppState;

/// Who may read and change an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Site admins only (machines, switches).
    Site,
    /// Every signed-in user reads it; site admins change it (physical networks).
    SiteReadable,
    /// A project's object: the caller's role in it decides (keypairs, ports, nodes).
    Project(ProjectId),
    /// A project's, or — with no project — everyone's to read and site
    /// admins' to change (public flavors and images, shared networks).
    ProjectOrAll(Option<ProjectId>),
}

impl Owner {
    /// Require at least `min` of the caller; an object they may not see at
    /// all is not found.
    pub fn require(self, p: &Principal, min: Role, noun: &'static str, id: &str) -> ApiResult<()> {
        match self {
            Owner::Site => p.require_admin(),
            Owner::SiteReadable if min == Role::Reader => Ok(()),
            Owner::SiteReadable => p.require_admin(),
            Owner::Project(pid) | Owner::ProjectOrAll(Some(pid)) => p.require(pid, min, noun, id).map(|_| ()),
            Owner::ProjectOrAll(None) if min == Role::Reader => Ok(()),
            Owner::ProjectOrAll(None) => p.require_admin(),
        }
    }
}

/// An object handlers find by the ID in their path.
pub trait Object: Sized + Send {
    /// For "not found" answers.
    const NOUN: &'static str;
    /// Only site admins see any of these: others get 403 before anything
    /// is read, so the answer says nothing about which IDs exist.
    const SITE_ONLY: bool = false;
    /// Read it; an ID that does not parse is simply not found.
    fn fetch(store: &Store, id: &str) -> impl Future<Output = Result<Self, StoreError>> + Send;
    fn owner(&self) -> Owner;
}

/// The object `id` if the caller has at least `min` on it.
pub async fn find<T: Object>(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<T> {
    if T::SITE_ONLY {
        p.require_admin()?;
    }
    let x = T::fetch(state.store(), id).await?;
    x.owner().require(p, min, T::NOUN, id)?;
    Ok(x)
}

/// Parse a typed ID from a path segment; a malformed one is not found.
pub fn path_id<T: std::str::FromStr>(noun: &'static str, s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::NotFound { noun, id: s.to_string() })
}

/// Page size, cursor and name filter of a list query.
pub fn list_params(q: &ListQuery) -> ApiResult<ListParams> {
    Ok(ListParams { limit: page_limit(q.limit)?, after: q.after.clone(), name: q.name.clone() })
}

/// A JSON answer with an ETag when the object has a revision.
pub fn json<T: Serialize>(status: StatusCode, body: &T, revision: Option<i64>) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    if let Some(rev) = revision {
        r.headers_mut().insert(header::ETAG, etag(rev));
    }
    r
}

pub fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header")
}

/// Run a create (a `POST` to `collection`) once per idempotency key: a
/// retry with the same key and the same body gets the first answer (with
/// `Idempotent-Replayed: true`); the same key with a different body is refused.
pub async fn idempotent<T, F>(
    state: &AppState,
    p: &Principal,
    key: IdempotencyKey,
    collection: &str,
    digest: &str,
    create: F,
) -> ApiResult<Response>
where
    T: Serialize,
    F: Future<Output = ApiResult<(StatusCode, T, Option<i64>)>>,
{
    let route = format!("POST {collection}");
    let principal = p.user.id.to_string();
    if let Some(k) = &key.0
        && let Some(prev) = state.store().idempotent_response(&principal, k).await?
    {
        if prev.route != route || prev.request_hash != digest {
            return Err(ApiError::Unprocessable(format!(
                "Idempotency-Key {k:?} was already used for a different request; use a fresh key for a new request"
            )));
        }
        let mut r = (StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), prev.body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(r);
    }
    let (status, value, revision) = create.await?;
    let body = serde_json::to_string(&value).map_err(ApiError::internal)?;
    if let Some(k) = &key.0 {
        let stored = StoredResponse { route, request_hash: digest.into(), status: status.as_u16(), body: body.clone() };
        state.store().remember_response(&principal, k, &stored).await?;
    }
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(rev) = revision {
        r.headers_mut().insert(header::ETAG, etag(rev));
    }
    Ok(r)
}

/// How much of a file is read per trip to the blocking pool while serving
/// it: images are gigabytes, and 64 KiB (the default) costs a thread hop per
/// 64 KiB; 1 MiB per download in flight is what this costs in memory.
const SERVE_CHUNK: usize = 1 << 20;

/// Serve a file as bytes, honouring `Range` (resumable, parallel downloads).
pub async fn serve_file(path: std::path::PathBuf, req: axum::extract::Request) -> ApiResult<Response> {
    let svc = tower_http::services::ServeFile::new_with_mime(
        path,
        &"application/octet-stream".parse().expect("mime literal"),
    )
    .with_buf_chunk_size(SERVE_CHUNK);
    let (parts, _) = req.into_parts();
    let resp = tower::ServiceExt::oneshot(svc, axum::extract::Request::from_parts(parts, axum::body::Body::empty()))
        .await
        .map_err(ApiError::internal)?;
    Ok(resp.map(axum::body::Body::new).into_response())
}

/// Names of everything users name (`tundra_engine::names`).
pub fn check_name(pointer: &str, name: &str) -> ApiResult<()> {
    tundra_engine::names::check(name).map_err(|e| ApiError::field(pointer, e))
}

pub fn check_description(pointer: &str, d: &str) -> ApiResult<()> {
    if d.len() > 1024 {
        return Err(ApiError::field(pointer, "longer than 1024 bytes; shorten it"));
    }
    Ok(())
}

/// Resource classes (`tundra_engine::names::resource_class`), at `/resource_class`.
pub fn check_resource_class(rc: &str) -> ApiResult<()> {
    tundra_engine::names::resource_class(rc).map_err(|e| ApiError::field("/resource_class", e))
}

/// Traits, sorted and deduplicated; a bad one is named by its pointer.
pub fn check_traits(pointer: &str, traits: &[String]) -> ApiResult<Vec<String>> {
    tundra_engine::names::traits(traits).map_err(|(i, e)| ApiError::field(&format!("{pointer}/{i}"), e))
}
