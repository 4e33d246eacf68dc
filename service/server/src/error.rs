//! API errors and their RFC 9457 problem documents. Every variant's message
//! says what to do; internal errors are logged with their cause and the
//! caller gets only the request id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tundra_api::{FieldError, PROBLEM_JSON, Problem};
use tundra_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Invalid { detail: String, errors: Vec<FieldError> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{noun} {id:?} not found; check the ID, and that you have a role in its project")]
    NotFound { noun: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// A conflict caused by one request field (a name taken, an overlapping CIDR).
    #[error("{detail}")]
    ConflictAt { detail: String, errors: Vec<FieldError> },
    /// No machine fits a node (409, problem type `no-capacity`); says which check emptied the list.
    #[error("{0}")]
    NoCapacity(String),
    /// A project's quota would be exceeded (403, problem type `quota-exceeded`).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ConflictAt { .. } | ApiError::NoCapacity(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Invalid { .. } => "invalid-field",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound { .. } => "not-found",
            ApiError::Conflict(_) | ApiError::ConflictAt { .. } => "conflict",
            ApiError::NoCapacity(_) => "no-capacity",
            ApiError::QuotaExceeded(_) => "quota-exceeded",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// One invalid field.
    /// What the caller is told (an internal error's cause stays in the log).
    pub fn detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "the service failed to handle this request; retry, and if it persists give the operators the request_id"
                    .to_string()
            }
            other => other.to_string(),
        }
    }

    pub fn field(pointer: &str, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        ApiError::Invalid {
            detail: format!("{pointer}: {detail}"),
            errors: vec![FieldError { pointer: pointer.into(), detail }],
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(e.into())
    }
}

/// The one place a flow's answer becomes HTTP.
impl From<tundra_conductor::Error> for ApiError {
    fn from(e: tundra_conductor::Error) -> Self {
        use tundra_conductor::Error as E;
        match e {
            E::NotFound { noun, id } => ApiError::NotFound { noun, id },
            E::Conflict { detail, pointer: None } => ApiError::Conflict(detail),
            E::Conflict { detail, pointer: Some(pointer) } => ApiError::ConflictAt {
                detail: format!("{pointer}: {detail}"),
                errors: vec![FieldError { pointer, detail }],
            },
            E::Invalid { pointer, detail } => ApiError::field(&pointer, detail),
            E::NoCapacity(m) => ApiError::NoCapacity(m),
            E::Quota(m) => ApiError::QuotaExceeded(m),
            E::Failed(m) => ApiError::Unprocessable(m),
            E::Store(StoreError::RevisionMismatch { noun, id, expected, current }) => {
                ApiError::PreconditionFailed(format!(
                    "{noun} {id} changed: it is at revision {current}, your If-Match said {expected}; GET it again, reapply your change and retry"
                ))
            }
            E::Store(other) => ApiError::Internal(other.into()),
            E::Internal(m) => ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(&e.pointer, e.detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tundra_conductor::Error::from(e).into()
    }
}

/// The request id of the request being answered, set by the request-id layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    pub static CURRENT_REQUEST: RequestId;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = CURRENT_REQUEST.try_with(|r| r.0.clone()).ok();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let detail = self.detail();
        let (kind, title) = match &self {
            ApiError::NoCapacity(_) => ("no-capacity", "No capacity"),
            ApiError::QuotaExceeded(_) => ("quota-exceeded", "Quota exceeded"),
            _ => (ApiError::kind_of(status), status.canonical_reason().unwrap_or("Error")),
        };
        let errors = match self {
            ApiError::Invalid { errors, .. } | ApiError::ConflictAt { errors, .. } => errors,
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: format!("urn:tundra:problem:{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            instance: None,
            request_id,
            errors,
        };
        problem_response(problem)
    }
}

impl ApiError {
    fn kind_of(status: StatusCode) -> &'static str {
        // Stable per status; the finer kind is in `kind()` for logs.
        match status.as_u16() {
            400 => "bad-request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not-found",
            409 => "conflict",
            412 => "precondition-failed",
            413 => "payload-too-large",
            415 => "unsupported-media-type",
            422 => "unprocessable",
            503 => "unavailable",
            _ => "internal",
        }
    }

    pub fn log_kind(&self) -> &'static str {
        self.kind()
    }
}

pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&problem).expect("problem serializes");
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tundra\""));
    }
    r
}

pub type ApiResult<T> = Result<T, ApiError>;
