//! Images: bytes with a declared sha256, uploaded or fetched by an import
//! operation (`tundra_conductor::images`), stored as raw and served back
//! with `Range`. Public (site admins') or a project's own.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use tundra_api::catalog::{Image, ImageCreate, ImageStatus, ImageUpdate};
use tundra_api::identity::Role;
use tundra_api::{ImageId, ListQuery, Page, Problem, paths};
use tundra_store::{NewImage, Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{
    Object, Owner, check_description, check_name, find, idempotent, json, list_params, path_id, serve_file,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_images, create_image))
        .routes(routes!(get_image, update_image, delete_image))
        .routes(routes!(upload_image, download_image))
}

impl Object for Image {
    const NOUN: &'static str = "image";
    const KIND: &'static str = "image";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.image(path_id::<ImageId>(Self::NOUN, id)?).await
    }
    fn owner(&self) -> Owner {
        Owner::ProjectOrAll(self.project_id)
    }
}

/// Public images and your projects' images (`project=public` for public only).
#[utoipa::path(get, path = paths::IMAGES, tag = "catalog", params(ListQuery), responses((status = 200, body = Page<Image>), (status = "4XX", body = Problem)))]
async fn list_images(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Image>>> {
    let v = p.list_filter(state.store(), q.project.as_deref()).await?;
    Ok(axum::Json(state.store().list_images(&list_params(&q)?, &v).await?))
}

/// Create an image: with `source_url` the service fetches it (202 and an
/// operation); without, upload the bytes to `PUT /v1/images/{id}/file`.
#[utoipa::path(post, path = paths::IMAGES, tag = "catalog", request_body = ImageCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Image, description = "Created, waiting for an upload"), (status = 202, body = Image, description = "Created, import operation started"), (status = "4XX", body = Problem)))]
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
        tundra_conductor::images::allowed(u, &state.config.image_source_allow)
            .map_err(|e| ApiError::field("/source_url", e))?;
    }
    let mut started = None;
    let resp = idempotent(
        &state,
        &p,
        key,
        paths::IMAGES,
        &body.digest,
        async {
            let img = state
                .store()
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
                )
                .await?;
            started = img.operation_id;
            Ok(img)
        },
        // A download in progress is 202 (follow `operation_id`); the same
        // answer again after a restart (which resumes the download itself).
        |img: Image| {
            let status = if img.operation_id.is_some() { StatusCode::ACCEPTED } else { StatusCode::CREATED };
            let rev = img.revision;
            std::future::ready(Ok((status, img, Some(rev))))
        },
    )
    .await?;
    if let Some(op) = started {
        state.conductor.run(op).await?;
    }
    Ok(resp)
}

/// An image.
#[utoipa::path(get, path = paths::IMAGE, tag = "catalog", params(("image" = String, Path)), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn get_image(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let img = find::<Image>(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Rename an image or change its description (the bytes never change).
#[utoipa::path(patch, path = paths::IMAGE, tag = "catalog", request_body = ImageUpdate, params(("image" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn update_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ImageUpdate>,
) -> ApiResult<Response> {
    let img = find::<Image>(&state, &p, &id, Role::Member).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &req.description {
        check_description("/description", d)?;
    }
    let img = state.store().update_image(&p.actor(), img.id, req.name, req.description, rev).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Delete an image and its stored bytes.
#[utoipa::path(delete, path = paths::IMAGE, tag = "catalog", params(("image" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_image(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let img = find::<Image>(&state, &p, &id, Role::Member).await?;
    tundra_conductor::images::delete(&state.conductor, &p.actor(), &img).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bodies up to this size are read before an upload is refused.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Upload the image's bytes (any media type; verified against `sha256`,
/// converted to raw when qcow2). Answers when the image is active.
#[utoipa::path(put, path = paths::IMAGE_FILE, tag = "catalog", params(("image" = String, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, body = Image), (status = "4XX", body = Problem)))]
async fn upload_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let total: Option<u64> =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let checked = async {
        let img = find::<Image>(&state, &p, &id, Role::Member).await?;
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
    let img = tundra_conductor::images::upload(&state.conductor, &p.actor(), &img, stream, total).await?;
    Ok(json(StatusCode::OK, &img, Some(img.revision)))
}

/// Download the raw image (supports `Range` for resumable, parallel fetches).
#[utoipa::path(get, path = paths::IMAGE_FILE, tag = "catalog", params(("image" = String, Path)), responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "Partial content"), (status = "4XX", body = Problem)))]
async fn download_image(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let img = find::<Image>(&state, &p, &id, Role::Reader).await?;
    if img.status != ImageStatus::Active {
        return Err(ApiError::Conflict(format!(
            "image {id} is {}; its bytes can be read once it is active",
            img.status.as_str()
        )));
    }
    serve_file(tundra_conductor::images::raw_path(&state.conductor, img.id), req).await
}
