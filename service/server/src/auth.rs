//! Authentication and authorization.
//!
//! Callers present `Authorization: Bearer …`: an API token (`tnd_…`, looked up
//! by its SHA-256 — the secret itself is never stored) or a JWT from a
//! configured OIDC identity provider, whose groups map to project roles.
//! Every handler then asks the [`Principal`] for what it needs; an object of a
//! project the caller has no role in is reported as not found, so IDs of
//! other tenants' objects reveal nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;
use tundra_api::ProjectId;
use tundra_api::identity::ProjectRole;
use tundra_api::identity::{Role, User, Whoami};
use tundra_store::{Actor, Store, Visibility};

use crate::config::IdentityProvider;
use crate::error::{ApiError, CURRENT_REQUEST};
use crate::state::AppState;

/// Prefix of API token secrets (lets secret scanners recognise them).
pub const TOKEN_PREFIX: &str = "tnd_";

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API token secret: 32 random bytes.
pub fn new_token_secret() -> String {
    new_secret(TOKEN_PREFIX)
}

/// `prefix` + 32 random bytes, base64url.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// `token` or `oidc`.
    pub method: &'static str,
    roles: HashMap<ProjectId, Role>,
    /// A token restricted to one project acts only there…
    scope: Option<ProjectId>,
    /// …and/or with at most this role.
    cap: Option<Role>,
}

impl Principal {
    pub fn new(
        user: User,
        method: &'static str,
        roles: HashMap<ProjectId, Role>,
        scope: Option<ProjectId>,
        cap: Option<Role>,
    ) -> Self {
        Principal { user, method, roles, scope, cap }
    }

    /// A site admin acting as such (not through a restricted token).
    pub fn is_admin(&self) -> bool {
        self.user.admin && self.scope.is_none() && self.cap.is_none_or(|c| c == Role::Admin)
    }

    /// The caller's effective role in a project.
    pub fn role_in(&self, p: ProjectId) -> Option<Role> {
        if self.scope.is_some_and(|s| s != p) {
            return None;
        }
        let r = if self.user.admin { Some(Role::Admin) } else { self.roles.get(&p).copied() }?;
        Some(match self.cap {
            Some(c) => r.min(c),
            None => r,
        })
    }

    /// Require at least `min` in `p`. No role at all reads as "not found".
    pub fn require(&self, p: ProjectId, min: Role, noun: &'static str, id: &str) -> Result<Role, ApiError> {
        match self.role_in(p) {
            None => Err(ApiError::NotFound { noun, id: id.to_string() }),
            Some(r) if r < min => Err(ApiError::Forbidden(format!(
                "your role in this project is {}; this needs {} — ask a project admin",
                r.as_str(),
                min.as_str()
            ))),
            Some(r) => Ok(r),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("only site admins may do this; ask one".into())) }
    }

    /// Objects of a public-capable noun (flavors, images): public ones are
    /// readable by all; writing them is for site admins.
    pub fn require_scope(
        &self,
        project: Option<ProjectId>,
        min: Role,
        noun: &'static str,
        id: &str,
    ) -> Result<(), ApiError> {
        match project {
            Some(p) => self.require(p, min, noun, id).map(|_| ()),
            None if min == Role::Reader => Ok(()),
            None => self.require_admin(),
        }
    }

    /// Which projects' objects the caller may list.
    pub fn visibility(&self) -> Visibility {
        if self.is_admin() {
            return Visibility::All;
        }
        let mut ps: Vec<ProjectId> = self.roles.keys().copied().filter(|p| self.role_in(*p).is_some()).collect();
        if self.user.admin
            && let Some(s) = self.scope
        {
            ps = vec![s];
        }
        ps.sort();
        Visibility::Projects(ps)
    }

    /// Visibility narrowed by a `?project=` filter (`public`, a name or an ID).
    pub async fn list_filter(&self, store: &Store, project: Option<&str>) -> Result<Visibility, ApiError> {
        match project {
            None => Ok(self.visibility()),
            Some("public") => Ok(Visibility::PublicOnly),
            Some(p) => {
                let proj = store.project(p).await.map_err(|_| ApiError::NotFound { noun: "project", id: p.into() })?;
                self.require(proj.id, Role::Reader, "project", p)?;
                Ok(Visibility::Project(proj.id))
            }
        }
    }

    pub fn actor(&self) -> Actor {
        Actor { name: self.user.name.clone(), request_id: CURRENT_REQUEST.try_with(|r| r.0.clone()).ok() }
    }

    pub fn whoami(&self) -> Whoami {
        let mut roles: Vec<ProjectRole> = self
            .roles
            .keys()
            .filter_map(|p| self.role_in(*p).map(|role| ProjectRole { project_id: *p, role }))
            .collect();
        roles.sort_by_key(|r| r.project_id);
        Whoami {
            user_id: self.user.id,
            name: self.user.name.clone(),
            admin: self.is_admin(),
            method: self.method.into(),
            roles,
        }
    }
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
        if bearer.starts_with(TOKEN_PREFIX) {
            token_principal(state, bearer).await
        } else if bearer.split('.').count() == 3 {
            state.oidc.principal(&state.store, bearer).await
        } else {
            Err(ApiError::Unauthorized("the bearer token is neither a Tundra API token (tnd_…) nor a JWT".into()))
        }
    }
}

async fn token_principal(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    let rec =
        state.store.token_by_hash(&sha256_hex(secret.as_bytes())).await?.ok_or_else(|| {
            ApiError::Unauthorized("the API token is unknown or was revoked; create a new one".into())
        })?;
    let expired = tundra_store::parse_time(&rec.token.expires_at).is_none_or(|t| t <= SystemTime::now());
    if expired {
        return Err(ApiError::Unauthorized(format!(
            "the API token expired at {}; create a new one (operations it started keep running)",
            rec.token.expires_at
        )));
    }
    let roles = state.store.roles_of(rec.user.id).await?.into_iter().collect();
    Ok(Principal::new(rec.user, "token", roles, rec.token.project_id, rec.token.role))
}

/// The configured identity providers and their key sets.
pub struct Oidc {
    providers: Vec<Provider>,
    http: reqwest::Client,
}

struct Provider {
    config: IdentityProvider,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("providers", &self.providers.len()).finish()
    }
}

impl Oidc {
    /// Load every provider's keys (a file now; a URL on first use).
    pub fn new(configs: &[IdentityProvider], http: reqwest::Client) -> anyhow::Result<Arc<Oidc>> {
        use anyhow::Context;
        let mut providers = Vec::new();
        for c in configs {
            let set = match &c.jwks_file {
                Some(f) => {
                    serde_json::from_slice(&std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)
                        .with_context(|| format!("{} is not a JWKS document", f.display()))?
                }
                None => JwkSet { keys: Vec::new() },
            };
            providers.push(Provider { config: c.clone(), keys: RwLock::new((set, None)) });
        }
        Ok(Arc::new(Oidc { providers, http }))
    }

    async fn principal(&self, store: &Store, jwt: &str) -> Result<Principal, ApiError> {
        let unauthorized = |m: String| ApiError::Unauthorized(m);
        let header =
            jsonwebtoken::decode_header(jwt).map_err(|e| unauthorized(format!("malformed JWT header: {e}")))?;
        let payload = jwt.split('.').nth(1).unwrap_or("");
        let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| unauthorized("malformed JWT payload".into()))?;
        let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let provider = self
            .providers
            .iter()
            .find(|p| p.config.issuer == iss)
            .ok_or_else(|| unauthorized(format!("no identity provider is configured for issuer {iss:?}")))?;
        let key = provider.key(&self.http, header.kid.as_deref()).await?;
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[&provider.config.issuer]);
        v.set_audience(&[&provider.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 30;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v).map_err(|e| {
            unauthorized(format!("the JWT was rejected: {e}; get a fresh token from your identity provider"))
        })?;
        let c = data.claims;
        let name = c
            .get(&provider.config.username_claim)
            .or_else(|| c.get("sub"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| unauthorized("the JWT has no user name claim".into()))?;
        let name = format!("{}{}", provider.config.user_prefix, name);
        let groups: Vec<String> = match c.get(&provider.config.groups_claim) {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(String::from)).collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let mut user = store.federated_user(&name, &provider.config.issuer).await?;
        user.admin = provider.config.admin_groups.iter().any(|g| groups.contains(g));
        let mut roles: HashMap<ProjectId, Role> = store.roles_of(user.id).await?.into_iter().collect();
        for m in provider.config.mappings.iter().filter(|m| groups.contains(&m.group)) {
            match store.project(&m.project).await {
                Ok(p) => {
                    let e = roles.entry(p.id).or_insert(m.role);
                    *e = (*e).max(m.role);
                }
                Err(_) => tracing::warn!(project = m.project, group = m.group, "group mapping names a missing project"),
            }
        }
        Ok(Principal::new(user, "oidc", roles, None, None))
    }
}

impl Provider {
    async fn key(&self, http: &reqwest::Client, kid: Option<&str>) -> Result<jsonwebtoken::DecodingKey, ApiError> {
        let find = |set: &JwkSet| -> Option<jsonwebtoken::DecodingKey> {
            let jwk = match kid {
                Some(k) => set.find(k)?,
                None if set.keys.len() == 1 => &set.keys[0],
                None => return None,
            };
            jsonwebtoken::DecodingKey::from_jwk(jwk).ok()
        };
        if let Some(k) = find(&self.keys.read().await.0) {
            return Ok(k);
        }
        if let Some(url) = &self.config.jwks_url {
            let mut guard = self.keys.write().await;
            let stale = guard.1.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
            if stale {
                guard.1 = Some(Instant::now());
                match fetch_jwks(http, url).await {
                    Ok(set) => guard.0 = set,
                    Err(e) => tracing::warn!(url, error = %e, "fetching JWKS failed"),
                }
            }
            if let Some(k) = find(&guard.0) {
                return Ok(k);
            }
        }
        Err(ApiError::Unauthorized(format!("the JWT's signing key {kid:?} is not in the identity provider's key set")))
    }
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> anyhow::Result<JwkSet> {
    Ok(http.get(url).timeout(Duration::from_secs(10)).send().await?.error_for_status()?.json().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(admin: bool, roles: &[(ProjectId, Role)], scope: Option<ProjectId>, cap: Option<Role>) -> Principal {
        let user = User {
            id: tundra_api::UserId::generate(),
            name: "u".into(),
            admin,
            source: "local".into(),
            created_at: String::new(),
        };
        Principal::new(user, "token", roles.iter().copied().collect(), scope, cap)
    }

    #[test]
    fn roles_scopes_and_caps() {
        let (a, b) = (ProjectId::generate(), ProjectId::generate());
        let m = principal(false, &[(a, Role::Member)], None, None);
        assert_eq!(m.role_in(a), Some(Role::Member));
        assert_eq!(m.role_in(b), None);
        assert!(matches!(m.require(b, Role::Reader, "x", "1"), Err(ApiError::NotFound { .. })));
        assert!(matches!(m.require(a, Role::Admin, "x", "1"), Err(ApiError::Forbidden(_))));
        let capped = principal(false, &[(a, Role::Admin)], None, Some(Role::Reader));
        assert_eq!(capped.role_in(a), Some(Role::Reader));
        let admin_scoped = principal(true, &[], Some(a), None);
        assert!(!admin_scoped.is_admin());
        assert_eq!(admin_scoped.role_in(a), Some(Role::Admin));
        assert_eq!(admin_scoped.role_in(b), None);
        assert!(principal(true, &[], None, None).is_admin());
    }

    #[test]
    fn token_secrets_are_random_and_prefixed() {
        let (x, y) = (new_token_secret(), new_token_secret());
        assert!(x.starts_with(TOKEN_PREFIX) && x.len() == 4 + 43);
        assert_ne!(x, y);
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
