//! What every noun's handlers share: finding an object the caller may see
//! (by who owns it), list parameters, JSON answers with ETags, idempotent
//! creates, byte downloads with `Range`, and the name and description rules.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tundra_api::identity::Role;
use tundra_api::{ListQuery, ProjectId};
use tundra_store::{Actor, Claim, ListParams, Store, StoreError, StoredResponse};

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
    /// Its events' object type (what `created` events name it).
    const KIND: &'static str;
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
///
/// `create` makes the object and `show` turns it into the answer. The key is
/// claimed before `create` runs, so a retry after tundrad stopped between the
/// create's commit and keeping its answer finds the object that create made
/// (by its `created` event) and answers with `show` of it — it neither creates
/// a second object nor refuses the name the first request took.
pub async fn idempotent<O, T, F, S, SF>(
    state: &AppState,
    p: &Principal,
    key: IdempotencyKey,
    collection: &str,
    digest: &str,
    create: F,
    show: S,
) -> ApiResult<Response>
where
    O: Object,
    T: Serialize,
    F: Future<Output = ApiResult<O>>,
    S: FnOnce(O) -> SF,
    SF: Future<Output = ApiResult<Shown<T>>>,
{
    let Some(k) = key.0 else {
        let (status, value, revision) = show(create.await?).await?;
        return Ok(answer(status, serde_json::to_string(&value).map_err(ApiError::internal)?, revision, false));
    };
    let route = format!("POST {collection}");
    let principal = p.user.id.to_string();
    let mut actor = p.actor();
    if actor.request_id.is_none() {
        actor.request_id = Some(uuid::Uuid::now_v7().to_string());
    }
    let store = state.store();
    let waited = std::time::Instant::now();
    let made = loop {
        match store.claim_idempotency_key(&principal, &k, &route, digest, O::KIND, &actor).await? {
            Claim::Run => break None,
            Claim::Answered(prev) => {
                let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
                return Ok(answer(status, prev.body, None, true));
            }
            Claim::Created(id) => {
                let o = O::fetch(store, &id).await?;
                o.owner().require(p, Role::Reader, O::NOUN, &id)?;
                break Some(o);
            }
            Claim::InProgress if waited.elapsed() < IN_PROGRESS_WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Claim::InProgress => {
                return Err(ApiError::Conflict(format!(
                    "a request with Idempotency-Key {k:?} is still being handled; retry it in a few seconds"
                )));
            }
            Claim::OtherRequest => {
                return Err(ApiError::Unprocessable(format!(
                    "Idempotency-Key {k:?} was already used for a different request; use a fresh key for a new request"
                )));
            }
        }
    };
    let replayed = made.is_some();
    // Until answered, a request dropped (its client went away) gives its
    // claim up, unless its create committed: a retry answers with that.
    let mut held = Held { store: store.clone(), principal, key: k, kind: O::KIND, actor, armed: true };
    let object = match made {
        Some(o) => o,
        None => match create.await {
            Ok(o) => o,
            Err(e) => {
                // Failed creates are not kept: a retry runs the create again.
                held.armed = false;
                if let Err(release) = store.release_claim(&held.principal, &held.key, held.kind, &held.actor).await {
                    tracing::warn!(error = %release, "could not release an Idempotency-Key claim; it expires with the key");
                }
                return Err(e);
            }
        },
    };
    let (status, value, revision) = show(object).await?;
    let body = serde_json::to_string(&value).map_err(ApiError::internal)?;
    let stored = StoredResponse { route, request_hash: digest.into(), status: status.as_u16(), body: body.clone() };
    store.remember_response(&held.principal, &held.key, &stored).await?;
    held.armed = false;
    Ok(answer(status, body, revision, replayed))
}

/// How long a request waits for another with its Idempotency-Key to finish.
const IN_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An Idempotency-Key claim this request holds and has not answered.
struct Held {
    store: Store,
    principal: String,
    key: String,
    kind: &'static str,
    actor: Actor,
    armed: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (store, principal, key, kind, actor) =
            (self.store.clone(), self.principal.clone(), self.key.clone(), self.kind, self.actor.clone());
        rt.spawn(async move {
            if let Err(e) = store.release_claim(&principal, &key, kind, &actor).await {
                tracing::warn!(error = %e, "could not release an Idempotency-Key claim; it expires with the key");
            }
        });
    }
}

/// What `show` gives: the status, the body and the revision (the ETag).
pub type Shown<T> = (StatusCode, T, Option<i64>);

/// `show` for an object answered as it is, with `status` and its revision
/// (read by `revision`) as the ETag.
pub fn as_is<O>(
    status: StatusCode,
    revision: fn(&O) -> i64,
) -> impl FnOnce(O) -> std::future::Ready<ApiResult<Shown<O>>> {
    move |o| {
        let rev = revision(&o);
        std::future::ready(Ok((status, o, Some(rev))))
    }
}

fn answer(status: StatusCode, body: String, revision: Option<i64>, replayed: bool) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(rev) = revision {
        r.headers_mut().insert(header::ETAG, etag(rev));
    }
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
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
