//! Keypairs, flavors and images.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use tundra_api::catalog::{
    Flavor, FlavorCreate, FlavorUpdate, Image, ImageCreate, ImageStatus, ImageUpdate, Keypair, KeypairCreate,
    KeypairUpdate,
};
use tundra_api::identity::Role;
use tundra_api::{FlavorId, ImageId, KeypairId, ListQuery, Page, Problem};
use tundra_store::{FlavorChanges, NewFlavor, NewImage, NewKeypair, NewOperation};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::list_params;
use super::{check_description, check_name, idempotent, json, path_id};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keypairs, create_keypair))
        .routes(routes!(get_keypair, update_keypair, delete_keypair))
        .routes(routes!(list_flavors, create_flavor))
        .routes(routes!(get_flavor, update_flavor, delete_flavor))
        .routes(routes!(list_images, create_image))
        .routes(routes!(get_image, update_image, delete_image))
        .routes(routes!(upload_image, download_image))
}

pub(crate) fn check_traits(pointer: &str, traits: &[String]) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in traits.iter().enumerate() {
        let ok = !t.is_empty() && t.len() <= 255 && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c));
        if !ok {
            return Err(ApiError::field(
                &format!("{pointer}/{i}"),
                format!("{t:?} is not a trait: use letters, digits, '_', '.', '-', ':' (e.g. \"gpu\", \"ib\")"),
            ));
        }
        out.push(t.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) fn check_resource_class(rc: &str) -> ApiResult<()> {
    let ok = !rc.is_empty() && rc.len() <= 63 && rc.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "/resource_class",
            format!("{rc:?} is not a resource class: use letters, digits, '_', '.', '-' (e.g. \"baremetal.gpu\")"),
        ))
    }
}

// ---- keypairs ----

/// Keypairs of your projects.
#[utoipa::path(get, path = "/v1/keypairs", tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Keypair>), (status = "4XX", body = Problem)))]
async fn list_keypairs(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Keypair>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    Ok(axum::Json(state.store.list_keypairs(&list_params(&q)?, &v).await?))
}

/// Add an SSH public key to a project.
#[utoipa::path(post, path = "/v1/keypairs", tag = "catalog", request_body = KeypairCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Keypair), (status = "4XX", body = Problem)))]
async fn create_keypair(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<KeypairCreate>,
) -> ApiResult<Response> {
    let req = body.value;
    p.require(req.project_id, Role::Member, "project", &req.project_id.to_string())?;
    check_name("/name", &req.name)?;
    check_description("/description", &req.description)?;
    let parsed = crate::keys::parse(&req.public_key).map_err(|e| ApiError::field("/public_key", e))?;
    idempotent(&state, &p, key, "POST /v1/keypairs", &body.digest, async {
        let k = state
            .store
            .create_keypair(
                &p.actor(),
                NewKeypair {
                    project_id: req.project_id,
                    name: req.name,
                    description: req.description,
                    public_key: parsed.normalized,
                    key_type: parsed.key_type,
                    fingerprint: parsed.fingerprint,
                },
            )
            .await?;
        let rev = k.revision;
        Ok((StatusCode::CREATED, k, Some(rev)))
    })
    .await
}

async fn keypair(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Keypair> {
    let k = state.store.keypair(path_id::<KeypairId>("keypair", id)?).await?;
    p.require(k.project_id, min, "keypair", id)?;
    Ok(k)
}

/// A keypair.
#[utoipa::path(get, path = "/v1/keypairs/{keypair}", tag = "catalog", params(("keypair" = String, Path)), responses((status = 200, body = Keypair), (status = "4XX", body = Problem)))]
async fn get_keypair(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let k = keypair(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &k, Some(k.revision)))
}

/// Change a keypair's description (the key itself never changes).
#[utoipa::path(patch, path = "/v1/keypairs/{keypair}", tag = "catalog", request_body = KeypairUpdate, params(("keypair" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Keypair), (status = "4XX", body = Problem)))]
async fn update_keypair(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<KeypairUpdate>,
) -> ApiResult<Response> {
    let k = keypair(&state, &p, &id, Role::Member).await?;
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let k = state.store.update_keypair(&p.actor(), k.id, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &k, Some(k.revision)))
}

/// Delete a keypair (nodes already deployed keep the key).
#[utoipa::path(delete, path = "/v1/keypairs/{keypair}", tag = "catalog", params(("keypair" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_keypair(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let k = keypair(&state, &p, &id, Role::Member).await?;
    state.store.delete_keypair(&p.actor(), k.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- flavors ----

/// Public flavors and your projects' flavors (`project=public` for public only).
#[utoipa::path(get, path = "/v1/flavors", tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Flavor>), (status = "4XX", body = Problem)))]
async fn list_flavors(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Flavor>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    Ok(axum::Json(state.store.list_flavors(&list_params(&q)?, &v).await?))
}

/// Create a flavor: public (site admins) or for a project (members).
#[utoipa::path(post, path = "/v1/flavors", tag = "catalog", request_body = FlavorCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Flavor), (status = "4XX", body = Problem)))]
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
    idempotent(&state, &p, key, "POST /v1/flavors", &body.digest, async {
        let f = state
            .store
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
            .await?;
        let rev = f.revision;
        Ok((StatusCode::CREATED, f, Some(rev)))
    })
    .await
}

async fn flavor(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Flavor> {
    let f = state.store.flavor(path_id::<FlavorId>("flavor", id)?).await?;
    if let Some(proj) = f.project_id {
        p.require(proj, Role::Reader, "flavor", id)?;
    }
    p.require_scope(f.project_id, min, "flavor", id)?;
    Ok(f)
}

/// A flavor.
#[utoipa::path(get, path = "/v1/flavors/{flavor}", tag = "catalog", params(("flavor" = String, Path)), responses((status = 200, body = Flavor), (status = "4XX", body = Problem)))]
async fn get_flavor(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let f = flavor(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &f, Some(f.revision)))
}

/// Rename a flavor or change its description or required traits.
#[utoipa::path(patch, path = "/v1/flavors/{flavor}", tag = "catalog", request_body = FlavorUpdate, params(("flavor" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Flavor), (status = "4XX", body = Problem)))]
async fn update_flavor(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<FlavorUpdate>,
) -> ApiResult<Response> {
    let f = flavor(&state, &p, &id, Role::Member).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &req.description {
        check_description("/description", d)?;
    }
    let traits = req.required_traits.as_deref().map(|t| check_traits("/required_traits", t)).transpose()?;
    let f = state
        .store
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
#[utoipa::path(delete, path = "/v1/flavors/{flavor}", tag = "catalog", params(("flavor" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_flavor(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let f = flavor(&state, &p, &id, Role::Member).await?;
    state.store.delete_flavor(&p.actor(), f.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- images ----

/// Public images and your projects' images (`project=public` for public only).
#[utoipa::path(get, path = "/v1/images", tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Image>), (status = "4XX", body = Problem)))]
async fn list_images(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Image>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    Ok(axum::Json(state.store.list_images(&list_params(&q)?, &v).await?))
}

/// Create an image: with `source_url` the service fetches it (202 and an
/// operation); without, upload the bytes to `PUT /v1/images/{id}/file`.
#[utoipa::path(post, path = "/v1/images", tag = "catalog", request_body = ImageCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Image, description = "Created, waiting for an upload"), (status = 202, body = Image, description = "Created, import operation started"), (status = "4XX", body = Problem)))]
async fn create_image(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ImageCreate>,
) -> ApiResult<Response> {
    let req = body.value;
    p.require_scope(req.project_id, Role::Member, "project", &format!("{:?}", req.project_id))?;
    check_name("/name", &req.name)?;
    check_description("/description", &req.description)?;
    let sha = req.sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::field("/sha256", "must be 64 hex digits (sha256sum prints it)"));
    }
    if let Some(u) = &req.source_url {
        crate::images::allowed(u, &state.config.image_source_allow).map_err(|e| ApiError::field("/source_url", e))?;
    }
    let mut started = None;
    let resp = idempotent(&state, &p, key, "POST /v1/images", &body.digest, async {
        let import = req.source_url.as_ref().map(|_| NewOperation {
            project_id: req.project_id,
            kind: "image.import".into(),
            target_type: "image".into(),
            target_id: String::new(),
            input: serde_json::json!({}),
        });
        let img = state
            .store
            .create_image(
                &p.actor(),
                NewImage {
                    project_id: req.project_id,
                    name: req.name,
                    description: req.description,
                    disk_format: req.disk_format,
                    sha256: sha,
                    source_url: req.source_url,
                },
                import,
            )
            .await?;
        started = img.operation_id;
        let status = if img.operation_id.is_some() { StatusCode::ACCEPTED } else { StatusCode::CREATED };
        let rev = img.revision;
        Ok((status, img, Some(rev)))
    })
    .await?;
    if let Some(op) = started {
        state.ops.spawn(state.store.operation_input(op).await?).await;
    }
    Ok(resp)
}

async fn image(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Image> {
    let img = state.store.image(path_id::<ImageId>("image", id)?).await?;
    if let Some(proj) = img.project_id {
        p.require(proj, Role::Reader, "image", id)?;
    }
    p.require_scope(img.project_id, min, "image", id)?;
    Ok(img)
}

/// An image.
#[utoipa::path(get, path = "/v1/images/{image}", tag = "catalog", params(("image" = String, Path)), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn get_image(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let img = image(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Rename an image or change its description (the bytes never change).
#[utoipa::path(patch, path = "/v1/images/{image}", tag = "catalog", request_body = ImageUpdate, params(("image" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn update_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ImageUpdate>,
) -> ApiResult<Response> {
    let img = image(&state, &p, &id, Role::Member).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &req.description {
        check_description("/description", d)?;
    }
    let img = state.store.update_image(&p.actor(), img.id, req.name, req.description, rev).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Delete an image and its stored bytes.
#[utoipa::path(delete, path = "/v1/images/{image}", tag = "catalog", params(("image" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_image(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let img = image(&state, &p, &id, Role::Member).await?;
    if img.status == ImageStatus::Importing && img.operation_id.is_none() {
        return Err(ApiError::Conflict(
            "an upload of this image is in progress; delete it after the upload ends".into(),
        ));
    }
    state.store.delete_image(&p.actor(), img.id).await?;
    match tokio::fs::remove_file(crate::images::raw_path(&state, img.id)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, image = %img.id, "could not remove image file"),
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Bodies up to this size are read before an upload is refused.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Upload the image's bytes (any media type; verified against `sha256`,
/// converted to raw when qcow2). Answers when the image is active.
#[utoipa::path(put, path = "/v1/images/{image}/file", tag = "catalog", params(("image" = String, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn upload_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let total: Option<u64> =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let checked = async {
        let img = image(&state, &p, &id, Role::Member).await?;
        if img.status != ImageStatus::Queued && img.status != ImageStatus::Error {
            return Err(ApiError::Conflict(format!(
                "image {id} is {}; only queued or failed images take an upload — create a new image for new bytes",
                img.status.as_str()
            )));
        }
        if let Some(t) = total
            && t > state.config.max_image_bytes
        {
            return Err(ApiError::PayloadTooLarge(format!(
                "the image is larger than max_image_bytes ({} bytes)",
                state.config.max_image_bytes
            )));
        }
        Ok(img)
    }
    .await;
    let img = match checked {
        Ok(img) => img,
        Err(e) => {
            // Read (and drop) a modest body before refusing, so the client
            // sees the problem document instead of a reset connection.
            if total.is_some_and(|t| t <= DRAIN_LIMIT) {
                let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT as usize).await;
            }
            return Err(e);
        }
    };
    let stream = req.into_body().into_data_stream();
    let img = crate::images::upload(&state, &p.actor(), &img, stream, total).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Download the raw image (supports `Range` for resumable, parallel fetches).
#[utoipa::path(get, path = "/v1/images/{image}/file", tag = "catalog", params(("image" = String, Path)), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "Partial content"), (status = "4XX", body = Problem)))]
async fn download_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let img = image(&state, &p, &id, Role::Reader).await?;
    if img.status != ImageStatus::Active {
        return Err(ApiError::Conflict(format!(
            "image {id} is {}; its bytes can be read once it is active",
            img.status.as_str()
        )));
    }
    super::serve_file(crate::images::raw_path(&state, img.id), req).await
}
