//! What a flow can answer besides success. The HTTP layer turns each
//! variant into a problem document in one place (`tundrad::error`); workers
//! compare variants, never messages.

use tundra_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{noun} {id:?} not found")]
    NotFound { noun: &'static str, id: String },
    /// The request conflicts with what is there now (a name taken, a state
    /// that does not allow it); `pointer` names the request field, when one is to blame.
    #[error("{detail}")]
    Conflict { detail: String, pointer: Option<String> },
    /// A request field is wrong: its JSON pointer and what to do.
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    /// Nothing fits or is left (machines, addresses, segments); says which check emptied the list.
    #[error("{0}")]
    NoCapacity(String),
    /// A project's quota would be exceeded; says which, and who can raise it.
    #[error("{0}")]
    Quota(String),
    /// Well-formed, but the work it asked for failed (an upload that did not verify).
    #[error("{0}")]
    Failed(String),
    /// The store refused for its own reasons (a stale revision) or failed.
    #[error(transparent)]
    Store(StoreError),
    /// Something tundrad itself got wrong (unreadable sealed secrets, say).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(pointer: &str, detail: impl Into<String>) -> Error {
        Error::Invalid { pointer: pointer.into(), detail: detail.into() }
    }

    pub fn conflict(detail: impl Into<String>) -> Error {
        Error::Conflict { detail: detail.into(), pointer: None }
    }

    /// A conflict: someone else changed the object meanwhile (the caller may try again later).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { noun, id } => Error::NotFound { noun, id },
            StoreError::Conflict(detail) => Error::Conflict { detail, pointer: None },
            StoreError::ConflictAt { pointer, detail } => Error::Conflict { detail, pointer: Some(pointer) },
            StoreError::NoCapacity(m) => Error::NoCapacity(m),
            StoreError::Quota(m) => Error::Quota(m),
            other => Error::Store(other),
        }
    }
}

impl From<tundra_api::FieldError> for Error {
    fn from(e: tundra_api::FieldError) -> Self {
        Error::Invalid { pointer: e.pointer, detail: e.detail }
    }
}

impl From<crate::secrets::SecretError> for Error {
    fn from(e: crate::secrets::SecretError) -> Self {
        match e {
            crate::secrets::SecretError::Store(s) => s.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
