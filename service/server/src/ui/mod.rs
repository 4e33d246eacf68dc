//! The dashboard at `/ui`: server-rendered pages (minijinja templates with
//! HTML escaping, a stylesheet and one small script, all compiled into
//! tundrad — sites are often offline) on the API's listener and its
//! authorization. A browser signs in with an API token or an identity
//! provider's JWT, kept in an HttpOnly, SameSite=Strict cookie scoped to
//! `/ui`; every page is rendered as that principal, so a project member
//! sees only their projects. Pages update live: `/ui/live` is a server-sent
//! event stream that says when anything changed, and the script fetches the
//! page's `<main>` again. Actions are POSTed forms with a per-session CSRF
//! token, behind a confirmation.

// A page's failure is itself a page (a `Response`), returned early with `?`:
// the large error variant is the point, not an accident.
#![allow(clippy::result_large_err)]

mod pages;
mod render;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use render::COOKIE;
use render::{Form, Viewer, html, templates};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/machines", get(pages::machines))
        .route("/ui/machines/{id}", get(pages::machine))
        .route("/ui/machines/{id}/action", post(pages::machine_action))
        .route("/ui/map", get(pages::map))
        .route("/ui/capacity", get(pages::capacity))
        .route("/ui/switches", get(pages::switches))
        .route("/ui/switches/{id}/sync", post(pages::sync_switch))
        .route("/ui/projects/{project}", get(pages::project))
        .route("/ui/operations", get(pages::operations))
        .route("/ui/live", get(pages::live))
        .route("/ui/assets/{file}", get(asset))
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path of the dashboard may be where sign-in goes next.
fn next_of(n: Option<&str>) -> String {
    match n {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains("://") => n.to_string(),
        _ => "/ui/".into(),
    }
}

fn login_form(status: StatusCode, next: &str, error: Option<&str>, oidc: bool) -> Response {
    let page = templates()
        .get_template("login.html")
        .and_then(|t| t.render(minijinja::context! { next, error, oidc }))
        .unwrap_or_else(|e| format!("login page: {e}"));
    html(status, page)
}

async fn login_page(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(StatusCode::OK, &next_of(q.next.as_deref()), None, !state.config.identity_providers.is_empty())
}

async fn login(State(state): State<AppState>, body: String) -> Response {
    let form = Form::parse(&body);
    let next = next_of(form.get("next"));
    let token = form.get("token").unwrap_or("").trim().to_string();
    let oidc = !state.config.identity_providers.is_empty();
    if token.is_empty() {
        return login_form(StatusCode::BAD_REQUEST, &next, Some("Paste an API token (tnd_…) or a JWT."), oidc);
    }
    match crate::auth::principal_of(&state, &token).await {
        Ok(p) => {
            tracing::info!(user = %p.user.name, method = p.method, "signed in to the dashboard");
            let secure = if state.config.tls_cert_file.is_some() { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{secure}");
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a token is header-safe"));
            r
        }
        Err(e) => login_form(StatusCode::UNAUTHORIZED, &next, Some(&e.detail()), oidc),
    }
}

async fn logout(viewer: Viewer, body: String) -> Response {
    if let Err(r) = viewer.check_csrf(&Form::parse(&body)) {
        return r;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    let gone = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&gone).expect("static"));
    r
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "ui.css" => (include_str!("assets/ui.css"), "text/css; charset=utf-8"),
        "ui.js" => (include_str!("assets/ui.js"), "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    r
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::render::session;
    use super::*;

    #[test]
    fn every_template_parses_and_next_stays_on_the_dashboard() {
        let _ = templates();
        assert_eq!(next_of(Some("/ui/machines?state=available")), "/ui/machines?state=available");
        assert_eq!(next_of(Some("https://evil.example/ui")), "/ui/");
        assert_eq!(next_of(Some("//evil.example")), "/ui/");
        assert_eq!(next_of(None), "/ui/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; tundra_session=tnd_x; b=2"));
        assert_eq!(session(&h).as_deref(), Some("tnd_x"));
        h.insert(header::COOKIE, HeaderValue::from_static("tundra_session="));
        assert_eq!(session(&h), None);
    }
}
