//! What every handler shares: the conductor (store, keyring, flows), the
//! configuration, the metrics and the identity providers. Nothing here is a
//! worker's internals: those live in the conductor.

use std::sync::Arc;

use tundra_conductor::Conductor;
use tundra_store::Store;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::oidc::Oidc;

#[derive(Clone)]
pub struct AppState {
    pub conductor: Conductor,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub oidc: Arc<Oidc>,
    /// Principals of recently seen API tokens.
    pub tokens: Arc<crate::token_cache::TokenCache>,
    /// This API's OpenAPI document, rendered once at start.
    pub openapi: Arc<str>,
    /// Becomes true when tundrad stops: long-lived responses (the
    /// dashboard's event streams) end so the listener can close.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn store(&self) -> &Store {
        self.conductor.store()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("conductor", &self.conductor).finish()
    }
}
