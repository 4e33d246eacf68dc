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
    keys: RwLock<JwkSet>,
    /// When the key set was last fetched; held while a fetch runs (one at a
    /// time), never while the keys are read.
    fetched: tokio::sync::Mutex<Option<Instant>>,
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
            providers.push(Provider {
                config: c.clone(),
                keys: RwLock::new(set),
                fetched: tokio::sync::Mutex::new(None),
            });
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
        if let Some(k) = find(&*self.keys.read().await) {
            return Ok(k);
        }
        if let Some(url) = &self.config.jwks_url {
            // An unknown key: fetch the set again (at most once a minute, one
            // fetch at a time). Requests with known keys never wait for it.
            let mut last = self.fetched.lock().await;
            if let Some(k) = find(&*self.keys.read().await) {
                return Ok(k); // fetched while this request waited
            }
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                *last = Some(Instant::now());
                match fetch_jwks(http, url).await {
                    Ok(set) => *self.keys.write().await = set,
                    Err(e) => tracing::warn!(url, error = %e, "fetching JWKS failed"),
                }
            }
            if let Some(k) = find(&*self.keys.read().await) {
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

    /// While a refetch for an unknown key hangs on the identity provider,
    /// requests signed with a known key are answered.
    #[tokio::test]
    async fn a_hanging_refetch_blocks_no_known_key() {
        // A JWKS URL that accepts and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", l.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.push(c);
            }
        });
        let raw = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().public_key_raw().to_vec();
        let b64 = |b: &[u8]| Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let jwk = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
                                               "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
        let config = IdentityProvider {
            issuer: "https://idp".into(),
            audience: "tundra".into(),
            jwks_file: None,
            jwks_url: Some(url),
            username_claim: "sub".into(),
            groups_claim: "groups".into(),
            user_prefix: String::new(),
            admin_groups: vec![],
            mappings: vec![],
        };
        let p = Arc::new(Provider {
            config,
            keys: RwLock::new(serde_json::from_value(jwk).unwrap()),
            fetched: tokio::sync::Mutex::new(None),
        });
        let http = reqwest::Client::new();
        let (p2, http2) = (p.clone(), http.clone());
        let unknown = tokio::spawn(async move { p2.key(&http2, Some("k2")).await.is_ok() });
        // The refetch for k2 has started (it holds the fetch gate)…
        while p.fetched.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        // …and a known key is still answered, before the refetch ends.
        assert!(p.key(&http, Some("k1")).await.is_ok());
        assert!(!unknown.is_finished(), "the refetch should still be hanging");
        unknown.abort();
        hold.abort();
    }
}
