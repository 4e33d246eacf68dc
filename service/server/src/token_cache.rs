//! Principals of recently seen API tokens, so that a request costs one
//! store lookup of its object rather than three more of its token, user
//! and roles (`auth::principal_of` consults it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::principal::Principal;

/// How long a token's principal is reused without asking the store. Writes
/// through this tundrad (a revoked token or role, a deleted user or project)
/// take effect at once; writes made elsewhere (another replica on the same
/// database) within this long.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);
const TOKEN_CACHE_MAX: usize = 10_000;

/// The principals of API tokens seen in the last [`TOKEN_CACHE_TTL`], by
/// their secret's SHA-256, each with the store's identity generation it was
/// read at.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    principal: Principal,
    generation: u64,
    at: Instant,
    expires: SystemTime,
}

impl TokenCache {
    pub(crate) fn get(&self, hash: &str, generation: u64) -> Option<Principal> {
        let entries = self.entries.lock().expect("token cache lock");
        let c = entries.get(hash)?;
        let fresh = c.generation == generation && c.at.elapsed() < TOKEN_CACHE_TTL && SystemTime::now() < c.expires;
        fresh.then(|| c.principal.clone())
    }

    pub(crate) fn put(&self, hash: String, generation: u64, expires: SystemTime, principal: Principal) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.retain(|_, c| c.at.elapsed() < TOKEN_CACHE_TTL);
            if entries.len() >= TOKEN_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, Cached { principal, generation, at: Instant::now(), expires });
    }
}
