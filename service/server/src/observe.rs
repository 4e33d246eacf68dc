//! Observability: a request id on every request (taken from `X-Request-Id`
//! or generated) carried by the tracing span, so every log line of a request
//! has it; an access line; and the request's latency into the metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::{CURRENT_REQUEST, RequestId};
use crate::state::AppState;

fn valid_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// Middleware: request id, span, access log line, metrics.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(tundra_api::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    // Metrics labels are bounded: any other method is counted as OTHER.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let start = Instant::now();
    let mut resp = CURRENT_REQUEST.scope(RequestId(id.clone()), next.run(req).instrument(span.clone())).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::info!(status, elapsed_ms = (secs * 1000.0) as u64, "answered"));
    state.metrics.observe(&method, &route, status, secs);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(tundra_api::REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(super::valid_request_id("abc-1") && !super::valid_request_id("a b") && !super::valid_request_id(""));
    }
}
