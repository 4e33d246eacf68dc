//! What every handler shares.

use std::sync::Arc;

use tundra_store::Store;

use crate::auth::Oidc;
use crate::config::Config;
use crate::observe::Metrics;
use crate::operations::Runner;
use crate::secrets::Keyring;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub keyring: Arc<Keyring>,
    pub metrics: Arc<Metrics>,
    pub oidc: Arc<Oidc>,
    /// Outbound HTTP (image fetches, JWKS): no redirects, so the allow-list holds.
    pub http: reqwest::Client,
    pub ops: Runner,
    /// The inspection rules, read and checked once at start.
    pub inspection_rules: Arc<Vec<tundra_engine::inspection::Rule>>,
    /// Placement reads the machines and claims one node at a time: the claim
    /// is race-free in the store anyway; this keeps a placement group's
    /// members from being placed without seeing each other.
    pub placement: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the node reconciler (a machine operation ended, a node changed).
    pub nodes_changed: Arc<tokio::sync::Notify>,
    /// Wakes the DHCP reservation refresh (a node got an address).
    pub netboot_changed: Arc<tokio::sync::Notify>,
    /// Switch queues and the fabric worker's bookkeeping.
    pub fabric: Arc<crate::fabric::Fabric>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("store", &self.store).finish()
    }
}
