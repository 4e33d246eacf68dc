//! Request extractors that answer bad input with problem documents: JSON
//! bodies (media type, size, syntax, unknown fields and wrong types — each
//! with a JSON pointer), `If-Match`, `Idempotency-Key` and list queries.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tundra_api::MAX_PAGE;

use crate::error::ApiError;

/// A JSON request body; `digest` identifies the exact bytes (for idempotency).
#[derive(Debug)]
pub struct Body<T> {
    pub value: T,
    pub digest: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body must be JSON; send Content-Type: application/json (got {:?})",
                if ct.is_empty() { "nothing" } else { ct }
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(
                    "the request body is larger than max_body_bytes allows; send less (images go to PUT /v1/images/{id}/file)"
                        .into(),
                )
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
        let value = parse_json(&bytes)?;
        Ok(Body { value, digest: tundra_conductor::secrets::sha256_hex(&bytes) })
    }
}

/// Parse JSON, turning serde's error into a problem with a pointer to the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let pointer =
            if path == "." { "".to_string() } else { format!("/{}", path.replace(['.', '['], "/").replace(']', "")) };
        let detail = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                return ApiError::BadRequest(format!("the body is not valid JSON ({inner}); check quoting and commas"));
            }
            _ => inner.to_string(),
        };
        // serde appends " at line L column C"; the pointer says where instead.
        let detail = match detail.rfind(" at line ") {
            Some(i) => detail[..i].to_string(),
            None => detail,
        };
        let detail = if detail.starts_with("unknown field") {
            format!("{detail}; remove it (see the OpenAPI document for the fields this route takes)")
        } else {
            detail
        };
        ApiError::field(if pointer.is_empty() { "/" } else { &pointer }, detail)
    })
}

/// `If-Match: "<revision>"` — updates with it fail with 412 if the object moved on.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        let s = v.to_str().unwrap_or("").trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        let s = s.strip_prefix("W/").unwrap_or(s);
        s.trim_matches('"').parse().map(|r| IfMatch(Some(r))).map_err(|_| {
            ApiError::BadRequest(format!(
                "If-Match {s:?} is not an ETag this service issued; send the ETag header of a GET"
            ))
        })
    }
}

/// `Idempotency-Key`: a retried create with the same key returns the first answer.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(tundra_api::IDEMPOTENCY_KEY) else { return Ok(IdempotencyKey(None)) };
        let s = v.to_str().unwrap_or("");
        if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ApiError::BadRequest(
                "Idempotency-Key must be 1–128 visible ASCII characters, e.g. a UUID".into(),
            ));
        }
        Ok(IdempotencyKey(Some(s.to_string())))
    }
}

/// Query string parsed strictly (unknown parameters are errors).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        parse_query(q).map(Query)
    }
}

fn parse_query<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    // Decode into a JSON object first so numbers and unknown keys get the
    // same pointer-carrying errors as bodies.
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        let value = if k == "limit" {
            v.parse::<u64>().map(serde_json::Value::from).unwrap_or(serde_json::Value::String(v))
        } else if k == "maintenance" {
            v.parse::<bool>().map(serde_json::Value::from).unwrap_or(serde_json::Value::String(v))
        } else {
            serde_json::Value::String(v)
        };
        map.insert(k, value);
    }
    let bytes = serde_json::to_vec(&map).expect("map serializes");
    parse_json(&bytes).map_err(|e| match e {
        ApiError::Invalid { detail, errors } => {
            ApiError::Invalid { detail: format!("query parameter {detail}"), errors }
        }
        other => other,
    })
}

/// Page size from a list query: default 100, at most 500.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::field("/limit", format!("{n} is out of range; use 1..={MAX_PAGE}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tundra_api::catalog::KeypairCreate;

    #[test]
    fn errors_point_at_the_field() {
        let e = parse_json::<KeypairCreate>(br#"{"project_id":"x","name":"a","public_key":"k"}"#).unwrap_err();
        match e {
            ApiError::Invalid { errors, .. } => assert_eq!(errors[0].pointer, "/project_id"),
            other => panic!("{other:?}"),
        }
        let e = parse_json::<KeypairCreate>(br#"{"nmae":"a"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `nmae`"), "{e}");
        assert!(matches!(parse_json::<KeypairCreate>(b"{"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn queries_are_strict() {
        let q: tundra_api::ListQuery = parse_query("limit=5&name=a%20b").unwrap();
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.name.as_deref(), Some("a b"));
        assert!(parse_query::<tundra_api::ListQuery>("limt=5").is_err());
        assert!(parse_query::<tundra_api::ListQuery>("limit=x").is_err());
    }
}
