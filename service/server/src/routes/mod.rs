//! HTTP routes: thin handlers that check the caller, call the store (or a
//! worker) and return a view. Each route is registered together with its
//! OpenAPI description (utoipa-axum), so the document cannot miss a route —
//! the tenancy test walks the document to reach every route.

pub mod agent;
pub mod catalog;
pub mod fabric;
pub mod identity;
pub mod machines;
pub mod nodes;
pub mod ops;
pub mod system;

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tundra_store::StoredResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::IdempotencyKey;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tundra API",
        description = "The bare-metal cloud for science. Errors are RFC 9457 problem documents; lists are \
                       keyset-paginated (`limit`, `after` = the previous page's `next`); updates take \
                       `If-Match` with the ETag of a GET; creates take an `Idempotency-Key`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Bearer),
    tags(
        (name = "system", description = "Health, info, metrics"),
        (name = "identity", description = "Projects, users, roles, tokens"),
        (name = "catalog", description = "Keypairs, flavors, images"),
        (name = "machines", description = "Physical machines, their BMCs and provision states (site admins)"),
        (name = "fabric", description = "Physical networks and switches (site admins); networks, subnets and ports; switch-port drift and its repair"),
        (name = "nodes", description = "A project's bare-metal servers: placed, deployed with a config drive, cleaned on delete"),
        (name = "operations", description = "Long-running work and the audit log"),
        (name = "boot", description = "What booting machines use: iPXE scripts, boot assets, and the agent protocol (agent token from the boot script)"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (tnd_…) or a JWT from a configured identity provider"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "agent",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The per-boot agent token (tna_…) from the machine's iPXE script"))
                    .build(),
            ),
        );
        openapi.security =
            Some(vec![utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// Every route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes())
        .merge(identity::routes())
        .merge(catalog::routes())
        .merge(machines::routes())
        .merge(fabric::routes())
        .merge(nodes::routes())
        .merge(ops::routes())
        .merge(agent::routes())
}

/// The OpenAPI document, as committed in docs/openapi.json.
pub fn openapi_json() -> String {
    let (_, api) = router().split_for_parts();
    let mut s = api.to_pretty_json().expect("OpenAPI serializes");
    s.push('\n');
    s
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

/// Run a create once per idempotency key: a retry with the same key and the
/// same body gets the first answer (with `Idempotent-Replayed: true`); the
/// same key with a different body is refused.
pub async fn idempotent<T, F>(
    state: &AppState,
    p: &Principal,
    key: IdempotencyKey,
    route: &str,
    digest: &str,
    create: F,
) -> ApiResult<Response>
where
    T: Serialize,
    F: Future<Output = ApiResult<(StatusCode, T, Option<i64>)>>,
{
    let principal = p.user.id.to_string();
    if let Some(k) = &key.0
        && let Some(prev) = state.store.idempotent_response(&principal, k).await?
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
        let stored = StoredResponse {
            route: route.into(),
            request_hash: digest.into(),
            status: status.as_u16(),
            body: body.clone(),
        };
        state.store.remember_response(&principal, k, &stored).await?;
    }
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(rev) = revision {
        r.headers_mut().insert(header::ETAG, etag(rev));
    }
    Ok(r)
}

/// Serve a file as bytes, honouring `Range` (resumable, parallel downloads).
pub async fn serve_file(path: std::path::PathBuf, req: axum::extract::Request) -> ApiResult<Response> {
    let svc = tower_http::services::ServeFile::new_with_mime(
        path,
        &"application/octet-stream".parse().expect("mime literal"),
    );
    let (parts, _) = req.into_parts();
    let resp = tower::ServiceExt::oneshot(svc, axum::extract::Request::from_parts(parts, axum::body::Body::empty()))
        .await
        .map_err(ApiError::internal)?;
    Ok(resp.map(axum::body::Body::new).into_response())
}

/// Parse a typed ID from a path segment; a malformed one is simply not found.
pub fn path_id<T: std::str::FromStr>(noun: &'static str, s: &str) -> ApiResult<T> {
    s.parse().map_err(|_| ApiError::NotFound { noun, id: s.to_string() })
}

/// Names of projects, keypairs, flavors, images: 1–63 characters of
/// letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_name(pointer: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            pointer,
            format!(
                "{name:?} is not a valid name: use 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

pub fn check_description(pointer: &str, d: &str) -> ApiResult<()> {
    if d.len() > 1024 {
        return Err(ApiError::field(pointer, "longer than 1024 bytes; shorten it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// docs/openapi.json is generated from the routes; regenerate with
    /// `scripts/generate.sh` (or UPDATE_GENERATED=1 cargo test).
    #[test]
    fn openapi_document_is_committed_and_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let fresh = super::openapi_json();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == fresh, "docs/openapi.json is stale; run scripts/generate.sh and commit it");
        let doc: serde_json::Value = serde_json::from_str(&fresh).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
