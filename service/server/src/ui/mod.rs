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

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;
use tundra_conductor::secrets::sha256_hex;

use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

pub const COOKIE: &str = "tundra_session";

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

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("overview.html", include_str!("templates/overview.html")),
            ("machines.html", include_str!("templates/machines.html")),
            ("machine.html", include_str!("templates/machine.html")),
            ("map.html", include_str!("templates/map.html")),
            ("capacity.html", include_str!("templates/capacity.html")),
            ("switches.html", include_str!("templates/switches.html")),
            ("project.html", include_str!("templates/project.html")),
            ("operations.html", include_str!("templates/operations.html")),
        ] {
            env.add_template(name, src).expect("the dashboard's templates parse");
        }
        env
    })
}

/// The signed-in user of a page: their principal, the token (to check the
/// CSRF field against) and what the layout needs.
pub struct Viewer {
    pub p: Principal,
    token: String,
    /// The page asked only for its `<main>` (a live refresh).
    fragment: bool,
    path: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/ui".into());
        let fragment = parts.headers.contains_key("x-tundra-fragment");
        let login = || -> Response {
            if fragment || parts.method != axum::http::Method::GET {
                StatusCode::UNAUTHORIZED.into_response()
            } else {
                let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
                Redirect::to(&format!("/ui/login?next={next}")).into_response()
            }
        };
        let Some(token) = session(&parts.headers) else {
            return Err(login());
        };
        match crate::auth::principal_of(state, &token).await {
            Ok(p) => Ok(Viewer { p, token, fragment, path }),
            Err(_) => Err(login()),
        }
    }
}

impl Viewer {
    /// The value forms carry to prove they came from a page of this session.
    pub fn csrf(&self) -> String {
        sha256_hex(format!("tundra-ui-csrf:{}", self.token).as_bytes())[..32].to_string()
    }

    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        if form.get("csrf") == Some(self.csrf().as_str()) {
            Ok(())
        } else {
            Err(error_page(
                StatusCode::FORBIDDEN,
                "This form is stale or did not come from this dashboard; reload the page and try again.",
            ))
        }
    }

    /// A page: `template` rendered with `ctx`, inside the layout unless only
    /// `<main>` was asked for.
    pub fn render(&self, title: &str, template: &str, ctx: impl Serialize) -> Response {
        let body = match templates().get_template(template).and_then(|t| t.render(&ctx)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, template, "rendering a dashboard page");
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be rendered; the log says why.",
                );
            }
        };
        if self.fragment {
            return html(StatusCode::OK, body);
        }
        let layout = templates().get_template("layout.html").and_then(|t| {
            t.render(minijinja::context! {
                title, body, user => self.p.user.name, admin => self.p.is_admin(), csrf => self.csrf(), path => self.path,
            })
        });
        match layout {
            Ok(page) => html(StatusCode::OK, page),
            Err(e) => {
                tracing::error!(error = %e, "rendering the dashboard layout");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered; the log says why.")
            }
        }
    }

    /// Site pages: a project member is told so, not shown an empty page.
    pub fn require_admin(&self) -> Result<(), Response> {
        if self.p.is_admin() {
            Ok(())
        } else {
            Err(error_page(
                StatusCode::FORBIDDEN,
                "Only site admins see the site's machines and switches. Your projects are on the overview.",
            ))
        }
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Everything the page uses comes from here; nothing may frame it.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

/// A page that only says what went wrong (escaped).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let esc = minijinja::HtmlEscape(message).to_string();
    html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tundra</title>\
             <link rel=\"stylesheet\" href=\"/ui/assets/ui.css\"></head><body><main><p class=\"error\">{esc}</p>\
             <p><a href=\"/ui/\">Back to the overview</a></p></main></body></html>"
        ),
    )
}

/// An API failure as a page (its detail, never a stack).
pub fn api_error(e: ApiError) -> Response {
    let status = e.status();
    error_page(status, &e.detail())
}

fn session(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

/// A URL-encoded form body.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &str) -> Form {
        Form(form_urlencoded::parse(body.as_bytes()).into_owned().collect())
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
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

/// "3m", "2h", "5d": how long ago `at` (RFC 3339) was.
pub fn age(at: &str) -> String {
    let Some(t) = tundra_store::parse_time(at) else {
        return String::new();
    };
    let s = SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO).as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
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
