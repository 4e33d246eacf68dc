//! The `Conductor`: one handle to what every flow needs — the store, the
//! keyring, the settings, the task runner and the wake-ups between workers.
//! Cloning it is cheap. It runs operations through a dispatch function
//! given at construction (`work::run`), so the runner never needs to know
//! the flows and the flows can start operations without a cycle.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Notify;
use tundra_api::OperationId;
use tundra_api::machines::BmcSettings;
use tundra_drivers::bmc::{BmcError, Driver, Password};
use tundra_drivers::retry::Backoff;
use tundra_store::{OperationInput, Store, StoreError};

use crate::error::Result;
use crate::runner::Runner;
use crate::secrets::Keyring;
use crate::settings::Settings;

/// What an operation's worker returns: `Err` is the failure recorded on it.
pub type WorkResult = Result<(), String>;

/// Runs one operation to its end.
pub type Dispatch = fn(Conductor, OperationInput) -> Pin<Box<dyn Future<Output = WorkResult> + Send>>;

/// Builds the BMC driver for a machine's settings and password: the real
/// drivers in tundrad, fakes in the conductor's own tests.
pub type BmcMaker = Arc<dyn Fn(&BmcSettings, Password, Backoff) -> Result<Driver, BmcError> + Send + Sync>;

/// Signals between workers: "something you care about changed, look now".
#[derive(Debug, Default)]
pub struct Wakes {
    /// The node reconciler (a machine operation ended, a node changed).
    pub nodes: Notify,
    /// The fabric worker (a node's networks changed, a repair was asked for).
    pub fabric: Notify,
    /// The DHCP reservation refresh (a node got or lost an address).
    pub netboot: Notify,
    /// The share worker (a share, rule, snapshot or node mount changed).
    pub shares: Notify,
    /// The cluster reconciler (a cluster changed, a node moved on, a node's agent reported).
    pub clusters: Notify,
    /// The appliance reconciler (an appliance changed, a node moved on, a node's agent reported).
    pub appliances: Notify,
}

#[derive(Clone)]
pub struct Conductor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keyring: Keyring,
    settings: Settings,
    http: reqwest::Client,
    runner: Runner,
    wakes: Wakes,
    dispatch: Dispatch,
    bmc: BmcMaker,
    /// Placement reads the machines and claims one node at a time, so the
    /// members of a placement group see each other (the claim itself is
    /// race-free in the store).
    placement: tokio::sync::Mutex<()>,
    /// Tests: every share type's backend is this one (a fake).
    share_backend: std::sync::OnceLock<tundra_drivers::share::Backend>,
    /// The metadata service's base URL on the (first) provisioning network,
    /// once its listener is bound.
    metadata_url: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor").field("store", &self.inner.store).finish()
    }
}

impl Conductor {
    pub fn new(
        store: Store,
        keyring: Keyring,
        settings: Settings,
        http: reqwest::Client,
        dispatch: Dispatch,
        bmc: BmcMaker,
    ) -> Conductor {
        store.set_quota_defaults(settings.quota);
        Conductor {
            inner: Arc::new(Inner {
                store,
                keyring,
                settings,
                http,
                runner: Runner::default(),
                wakes: Wakes::default(),
                dispatch,
                bmc,
                placement: tokio::sync::Mutex::new(()),
                share_backend: std::sync::OnceLock::new(),
                metadata_url: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Outbound HTTP (image fetches): no redirects, so the allow-list holds.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn wakes(&self) -> &Wakes {
        &self.inner.wakes
    }

    pub(crate) fn bmc_maker(&self) -> &BmcMaker {
        &self.inner.bmc
    }

    /// Make every share type's backend `b` (tests of the conductor's own flows).
    pub fn use_share_backend(&self, b: tundra_drivers::share::Backend) {
        let _ = self.inner.share_backend.set(b);
    }

    /// Where nodes reach the metadata service (`http://ADDRESS:PORT`),
    /// told by whoever bound its listener.
    pub fn serve_metadata_at(&self, base_url: &str) {
        let _ = self.inner.metadata_url.set(base_url.trim_end_matches('/').to_string());
    }

    pub(crate) fn metadata_url(&self) -> Option<&str> {
        self.inner.metadata_url.get().map(String::as_str)
    }

    pub(crate) fn share_backend_override(&self) -> Option<tundra_drivers::share::Backend> {
        self.inner.share_backend.get().cloned()
    }

    pub(crate) fn placement(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.placement
    }

    /// Run an accepted operation (already in the store) as tundrad.
    pub async fn run(&self, id: OperationId) -> Result<()> {
        let op = match self.store().operation_input(id).await {
            Ok(op) => op,
            // Work this tundrad cannot read (a newer release wrote it): that
            // operation fails, saying why; everything else goes on.
            Err(StoreError::Corrupt { what, .. }) => {
                let why =
                    format!("this tundrad cannot run this operation ({what}); was it started by a newer release?");
                tracing::warn!(operation_id = %id, error = %why, "operation not runnable");
                self.store().finish_operation(id, Some(why)).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let (c, dispatch) = (self.clone(), self.inner.dispatch);
        let span = tracing::info_span!("operation", operation_id = %id, kind = %op.operation.kind);
        let task = tracing::Instrument::instrument(
            async move {
                if let Err(e) = c.store().start_operation(id, "started").await {
                    tracing::error!(error = %e, "could not mark operation running");
                    return;
                }
                let result = dispatch(c.clone(), op).await;
                match &result {
                    Ok(()) => tracing::info!("operation succeeded"),
                    Err(e) => tracing::warn!(error = %e, "operation failed"),
                }
                if let Err(e) = c.store().finish_operation(id, result.err()).await {
                    tracing::error!(error = %e, "could not record operation outcome");
                }
            },
            span,
        );
        self.inner.runner.operation(id, task).await;
        Ok(())
    }

    /// Run what a previous tundrad left unfinished; returns how many.
    pub async fn resume(&self) -> Result<usize> {
        let ops = self.store().unfinished_operations().await?;
        for o in &ops {
            tracing::info!(operation_id = %o.id, kind = %o.kind, attempts = o.attempts, "resuming operation");
            self.run(o.id).await?;
        }
        Ok(ops.len())
    }

    /// Stop the worker of an operation that was ended from outside.
    pub fn cancel(&self, id: OperationId) {
        self.inner.runner.cancel(id);
    }

    /// Run the service loop (or listener) `name`, supervised: started
    /// again when it panics or ends (see `Runner::supervise`).
    pub async fn supervise<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.runner.supervise(name, make).await;
    }

    /// How many times each service loop was started again (for `/metrics`).
    pub fn restarts(&self) -> Vec<(&'static str, u64)> {
        self.inner.runner.restarts()
    }

    /// Stop every task; operations resume on the next start.
    pub async fn stop(&self) {
        self.inner.runner.abort().await;
    }
}
