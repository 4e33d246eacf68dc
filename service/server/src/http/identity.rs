//! Projects, users, role assignments and API tokens.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tundra_api::identity::{
    ApiToken, Project, ProjectCreate, ProjectUpdate, Quota, QuotaSet, Role, RoleAssignment, RoleGrant, TokenCreate,
    TokenCreated, User, UserCreate, Whoami,
};
use tundra_api::{ListQuery, Page, Problem, TokenId, UserId, paths};
use tundra_conductor::secrets::sha256_hex;
use tundra_store::{NewToken, ProjectPatch, Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::new_token_secret;
use crate::crud::{Object, Owner, as_is, check_description, check_name, idempotent, json, list_params, path_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(list_roles))
        .routes(routes!(grant_role, revoke_role))
        .routes(routes!(get_quota, set_quota))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, delete_token))
}

// What idempotent creates find again by ID; handlers here look projects and
// users up by ID or name, with their own rules for who sees them.
impl Object for Project {
    const NOUN: &'static str = "project";
    const KIND: &'static str = "project";
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.project(id).await
    }
    fn owner(&self) -> Owner {
        Owner::Project(self.id)
    }
}

impl Object for User {
    const NOUN: &'static str = "user";
    const KIND: &'static str = "user";
    const SITE_ONLY: bool = true;
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.user(id).await
    }
    fn owner(&self) -> Owner {
        Owner::Site
    }
}

/// A project the caller may see, by ID or name.
async fn visible_project(state: &AppState, p: &Principal, id_or_name: &str, min: Role) -> ApiResult<Project> {
    let project = state.store().project(id_or_name).await?;
    p.require(project.id, min, "project", id_or_name)?;
    Ok(project)
}

/// Who the service thinks you are, and your roles.
#[utoipa::path(get, path = paths::WHOAMI, tag = "identity", responses((status = 200, body = Whoami), (status = "4XX", body = Problem)))]
async fn whoami(p: Principal) -> axum::Json<Whoami> {
    axum::Json(p.whoami())
}

/// Projects you have a role in (all, for site admins).
#[utoipa::path(get, path = paths::PROJECTS, tag = "identity", params(ListQuery), responses((status = 200, body = Page<Project>), (status = "4XX", body = Problem)))]
async fn list_projects(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Project>>> {
    let params = list_params(&q)?;
    let only = match p.visibility() {
        tundra_store::Visibility::All => None,
        tundra_store::Visibility::Projects(ps) => Some(ps),
        _ => Some(Vec::new()),
    };
    Ok(axum::Json(state.store().list_projects(&params, only.as_deref()).await?))
}

/// Create a project (site admins).
#[utoipa::path(post, path = paths::PROJECTS, tag = "identity", request_body = ProjectCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Project), (status = "4XX", body = Problem)))]
async fn create_project(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<ProjectCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let req = body.value;
    check_name("/name", &req.name)?;
    check_description("/description", &req.description)?;
    idempotent(
        &state,
        &p,
        key,
        paths::PROJECTS,
        &body.digest,
        async { Ok(state.store().create_project(&p.actor(), &req.name, &req.description).await?) },
        as_is(StatusCode::CREATED, |project: &Project| project.revision),
    )
    .await
}

/// A project, by ID or name.
#[utoipa::path(get, path = paths::PROJECT, tag = "identity", params(("project" = String, Path, description = "ID or name")), responses((status = 200, body = Project), (status = "4XX", body = Problem)))]
async fn get_project(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let project = visible_project(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &project, Some(project.revision)))
}

/// Rename or describe a project (project admins).
#[utoipa::path(patch, path = paths::PROJECT, tag = "identity", request_body = ProjectUpdate, params(("project" = String, Path, description = "ID or name"), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Project), (status = "4XX", body = Problem)))]
async fn update_project(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<ProjectUpdate>,
) -> ApiResult<Response> {
    let project = visible_project(&state, &p, &id, Role::Admin).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &req.description {
        check_description("/description", d)?;
    }
    let updated = state
        .store()
        .update_project(&p.actor(), project.id, ProjectPatch { name: req.name, description: req.description }, rev)
        .await?;
    Ok(json(StatusCode::OK, &updated, Some(updated.revision)))
}

/// Delete an empty project (site admins).
#[utoipa::path(delete, path = paths::PROJECT, tag = "identity", params(("project" = String, Path, description = "ID or name")), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_project(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let project = visible_project(&state, &p, &id, Role::Reader).await?;
    p.require_admin()?;
    state.store().delete_project(&p.actor(), project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who has which role in a project.
#[utoipa::path(get, path = paths::PROJECT_ROLES, tag = "identity", params(("project" = String, Path, description = "ID or name")), responses((status = 200, body = Vec<RoleAssignment>), (status = "4XX", body = Problem)))]
async fn list_roles(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<RoleAssignment>>> {
    let project = visible_project(&state, &p, &id, Role::Reader).await?;
    Ok(axum::Json(state.store().project_roles(project.id).await?))
}

/// A project's quotas: each limit (its own, or the site's default) and what
/// the project uses. Readable by the project's readers.
#[utoipa::path(get, path = paths::PROJECT_QUOTA, tag = "identity", params(("project" = String, Path, description = "ID or name")), responses((status = 200, body = Quota), (status = "4XX", body = Problem)))]
async fn get_quota(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Quota>> {
    let project = visible_project(&state, &p, &id, Role::Reader).await?;
    Ok(axum::Json(state.store().project_quota(project.id).await?))
}

/// Set a project's own limits (site admins); a limit left out or null
/// follows the site's default (`default_quota`). Lowering a limit below
/// what the project uses takes nothing away; it only refuses more.
#[utoipa::path(put, path = paths::PROJECT_QUOTA, tag = "identity", request_body = QuotaSet, params(("project" = String, Path, description = "ID or name")), responses((status = 200, body = Quota), (status = "4XX", body = Problem)))]
async fn set_quota(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Body<QuotaSet>,
) -> ApiResult<axum::Json<Quota>> {
    let project = visible_project(&state, &p, &id, Role::Reader).await?;
    p.require_admin()?;
    Ok(axum::Json(state.store().set_project_quota(&p.actor(), project.id, &body.value).await?))
}

/// Give a user a role in a project (project admins).
#[utoipa::path(put, path = paths::PROJECT_ROLE, tag = "identity", request_body = RoleGrant, params(("project" = String, Path, description = "ID or name"), ("user" = String, Path, description = "ID or name")), responses((status = 204), (status = "4XX", body = Problem)))]
async fn grant_role(
    State(state): State<AppState>,
    p: Principal,
    Path((project, user)): Path<(String, String)>,
    body: Body<RoleGrant>,
) -> ApiResult<StatusCode> {
    let project = visible_project(&state, &p, &project, Role::Admin).await?;
    let user = state.store().user(&user).await?;
    state.store().grant_role(&p.actor(), project.id, user.id, body.value.role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a user's role in a project away (project admins).
#[utoipa::path(delete, path = paths::PROJECT_ROLE, tag = "identity", params(("project" = String, Path, description = "ID or name"), ("user" = String, Path, description = "ID or name")), responses((status = 204), (status = "4XX", body = Problem)))]
async fn revoke_role(
    State(state): State<AppState>,
    p: Principal,
    Path((project, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = visible_project(&state, &p, &project, Role::Admin).await?;
    let user = state.store().user(&user).await?;
    state.store().revoke_role(&p.actor(), project.id, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users (site admins).
#[utoipa::path(get, path = paths::USERS, tag = "identity", params(ListQuery), responses((status = 200, body = Page<User>), (status = "4XX", body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<User>>> {
    p.require_admin()?;
    Ok(axum::Json(state.store().list_users(&list_params(&q)?).await?))
}

/// Create a local user (site admins); give them a token with POST /v1/tokens.
#[utoipa::path(post, path = paths::USERS, tag = "identity", request_body = UserCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = User), (status = "4XX", body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<UserCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let req = body.value;
    check_name("/name", &req.name)?;
    idempotent(
        &state,
        &p,
        key,
        paths::USERS,
        &body.digest,
        async { Ok(state.store().create_user(&p.actor(), &req.name, req.admin, "local").await?) },
        |u: User| std::future::ready(Ok((StatusCode::CREATED, u, None))),
    )
    .await
}

/// A user (yourself, or anyone for site admins).
#[utoipa::path(get, path = paths::USER, tag = "identity", params(("user" = String, Path, description = "ID or name")), responses((status = 200, body = User), (status = "4XX", body = Problem)))]
async fn get_user(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<axum::Json<User>> {
    let user = state.store().user(&id).await?;
    if user.id != p.user.id && !p.is_admin() {
        return Err(ApiError::NotFound { noun: "user", id });
    }
    Ok(axum::Json(user))
}

/// Delete a user and their tokens (site admins).
#[utoipa::path(delete, path = paths::USER, tag = "identity", params(("user" = String, Path, description = "ID or name")), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_user(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    p.require_admin()?;
    let user = state.store().user(&id).await?;
    if user.id == p.user.id {
        return Err(ApiError::Conflict("you cannot delete yourself; ask another site admin".into()));
    }
    state.store().delete_user(&p.actor(), user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your API tokens (never their secrets).
#[utoipa::path(get, path = paths::TOKENS, tag = "identity", params(ListQuery), responses((status = 200, body = Page<ApiToken>), (status = "4XX", body = Problem)))]
async fn list_tokens(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ApiToken>>> {
    Ok(axum::Json(state.store().list_tokens(p.user.id, &list_params(&q)?).await?))
}

/// Create an API token. The secret is in this answer only.
#[utoipa::path(post, path = paths::TOKENS, tag = "identity", request_body = TokenCreate, responses((status = 201, body = TokenCreated), (status = "4XX", body = Problem)))]
async fn create_token(State(state): State<AppState>, p: Principal, body: Body<TokenCreate>) -> ApiResult<Response> {
    let req = body.value;
    let user_id: UserId = match req.user_id {
        Some(u) if u != p.user.id => {
            p.require_admin()?;
            state.store().user(&u.to_string()).await?.id
        }
        _ => p.user.id,
    };
    // A token carries no more than its maker: an own token within the
    // caller's scope, cap and roles; another user's only from a site admin.
    let (project_id, role) = if user_id == p.user.id {
        p.token_limits(req.project_id, req.role)?
    } else {
        if let Some(project) = req.project_id {
            state.store().project(&project.to_string()).await?;
        }
        (req.project_id, req.role)
    };
    let max = state.config.token_max_ttl_secs();
    let ttl = req.expires_in.unwrap_or(state.config.token_ttl_secs());
    if ttl == 0 || ttl > max {
        return Err(ApiError::field("/expires_in", format!("{ttl} is out of range; use 1..={max} seconds")));
    }
    check_description("/description", &req.description)?;
    let secret = new_token_secret();
    let token = state
        .store()
        .create_token(
            &p.actor(),
            NewToken {
                user_id,
                secret_hash: sha256_hex(secret.as_bytes()),
                description: req.description,
                project_id,
                role,
                expires_at: tundra_store::time_after(Duration::from_secs(ttl)),
            },
        )
        .await?;
    Ok(json(StatusCode::CREATED, &TokenCreated { secret, token }, None))
}

async fn own_token(state: &AppState, p: &Principal, id: &str) -> ApiResult<ApiToken> {
    let tid: TokenId = path_id("token", id)?;
    let t = state.store().token(tid).await?;
    if t.user_id != p.user.id && !p.is_admin() {
        return Err(ApiError::NotFound { noun: "token", id: id.into() });
    }
    Ok(t)
}

/// One of your tokens.
#[utoipa::path(get, path = paths::TOKEN, tag = "identity", params(("token" = String, Path)), responses((status = 200, body = ApiToken), (status = "4XX", body = Problem)))]
async fn get_token(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiToken>> {
    Ok(axum::Json(own_token(&state, &p, &id).await?))
}

/// Revoke a token (at once; operations it started keep running).
#[utoipa::path(delete, path = paths::TOKEN, tag = "identity", params(("token" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_token(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let t = own_token(&state, &p, &id).await?;
    state.store().delete_token(&p.actor(), t.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
