//! OIDC federation: bearer JWTs from configured identity providers,
//! checked against their key sets (a file, or a URL refetched at most once
//! a minute), with groups mapped to site admin and project roles.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;
use tundra_api::ProjectId;
use tundra_api::identity::Role;
use tundra_store::Store;

use crate::config::IdentityProvider;
use crate::error::ApiError;
use crate::principal::Principal;

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

    pub async fn principal(&self, store: &Store, jwt: &str) -> Result<Principal, ApiError> {
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
