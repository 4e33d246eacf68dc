//! What every dashboard page shares: the templates, the signed-in viewer
//! (session cookie → principal), CSRF, the layout, error pages and the
//! security headers.

use std::time::{Duration, SystemTime};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Environment;
use serde::Serialize;
use tundra_conductor::secrets::sha256_hex;

use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

pub const COOKIE: &str = "tundra_session";

pub(crate) fn templates() -> &'static Environment<'static> {
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
    pub(crate) token: String,
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

pub(crate) fn html(status: StatusCode, body: String) -> Response {
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
    if let ApiError::Internal(cause) = &e {
        tracing::error!(error = format!("{cause:#}"), "internal error on a dashboard page");
    }
    let status = e.status();
    error_page(status, &e.detail())
}

pub(crate) fn session(headers: &HeaderMap) -> Option<String> {
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
