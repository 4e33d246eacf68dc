//! Authentication: `Authorization: Bearer …` is an API token (`tnd_…`,
//! looked up by its SHA-256 — the secret itself is never stored) or a JWT
//! from a configured identity provider (`oidc`); either becomes a
//! [`Principal`].

use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use tundra_conductor::secrets::{new_secret, sha256_hex};

use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

/// Prefix of API token secrets (lets secret scanners recognise them).
pub const TOKEN_PREFIX: &str = "tnd_";

/// A new API token secret: 32 random bytes.
pub fn new_token_secret() -> String {
    new_secret(TOKEN_PREFIX)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ApiError::Unauthorized(
                "no credentials; send Authorization: Bearer <token> (an API token, or a JWT from a configured identity provider)".into(),
            )
        })?;
        let bearer = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthorized("Authorization must be \"Bearer <token>\"".into()))?
            .trim();
        principal_of(state, bearer).await
    }
}

/// Who a bearer token (an API token or a JWT) is: the API's header and the
/// dashboard's session cookie both end here.
pub async fn principal_of(state: &AppState, bearer: &str) -> Result<Principal, ApiError> {
    if bearer.starts_with(TOKEN_PREFIX) {
        token_principal(state, bearer).await
    } else if bearer.split('.').count() == 3 {
        state.oidc.principal(state.store(), bearer).await
    } else {
        Err(ApiError::Unauthorized("the bearer token is neither a Tundra API token (tnd_…) nor a JWT".into()))
    }
}

async fn token_principal(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    let hash = sha256_hex(secret.as_bytes());
    // Read before the lookup: a write that lands during it makes the entry stale.
    let generation = state.store().identity_generation();
    if let Some(p) = state.tokens.get(&hash, generation) {
        return Ok(p);
    }
    let rec =
        state.store().token_by_hash(&hash).await?.ok_or_else(|| {
            ApiError::Unauthorized("the API token is unknown or was revoked; create a new one".into())
        })?;
    let expires = tundra_store::parse_time(&rec.token.expires_at);
    if expires.is_none_or(|t| t <= SystemTime::now()) {
        return Err(ApiError::Unauthorized(format!(
            "the API token expired at {}; create a new one (operations it started keep running)",
            rec.token.expires_at
        )));
    }
    let roles = state.store().roles_of(rec.user.id).await?.into_iter().collect();
    let p = Principal::new(rec.user, "token", roles, rec.token.project_id, rec.token.role);
    if let Some(expires) = expires {
        state.tokens.put(hash, generation, expires, p.clone());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_are_random_and_prefixed() {
        let (x, y) = (new_token_secret(), new_token_secret());
        assert!(x.starts_with(TOKEN_PREFIX) && x.len() == 4 + 43);
        assert_ne!(x, y);
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
