//! The `Conductor`: one handle to what every flow needs — the store, the
//! keyring, the settings, the task runner and the wake-ups between workers.
//! Cloning it is cheap. It runs operations through a dispatch function
//! given at construction (`work::run`), so the runner never needs to know
//! the flows and the flows can start operations without a cycle.

use std::pin::Pin;
use std::sync::Arc;

use tundra_api::OperationId;
use tundra_api::machines::BmcSettings;
use tundra_drivers::bmc::{BmcError, Driver, Password};
use tundra_drivers::retry::Backoff;
use tundra_store::{OperationInput, Store, StoreError};

use crate::error::Result;
use crate::runner::Runner;
use crate::secrets::Keyring;
use crate::settings::Settings;
use crate::wakes::Wakes;

/// What an operation's worker returns: `Err` is the failure recorded on it.
pub type WorkResult = Result<(), String>;

/// Runs one operation to its end.
pub type Dispatch = fn(Conductor, OperationInput) -> Pin<Box<dyn Future<Output = WorkResult> + Send>>;

/// Builds the BMC driver for a machine's settings and password: the real
/// drivers in tundrad, fakes in the conductor's own tests.
pub type BmcMaker = Arc<dyn Fn(&BmcSettings, Password, Backoff) -> Result<Driver, BmcError> + Send + Sync>;

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
    /// This process's name among the replicas (new at every start): the
    /// owner of the leases it holds.
    replica: String,
    /// The loops and networks whose leases this replica runs under now.
    leases_here: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
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
        let replica = replica_name();
        store.set_replica(&replica, settings.replica_lease);
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
                replica,
                leases_here: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// This process's name among the replicas (`HOST-PID-RANDOM`).
    pub fn replica(&self) -> &str {
        &self.inner.replica
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

    /// Run an accepted operation (already in the store) here, if this
    /// replica can claim it: it is not another live replica's. Returns
    /// whether it runs here now (or already did).
    pub async fn run(&self, id: OperationId) -> Result<bool> {
        let me = self.replica().to_string();
        if !self.store().claim_operation(id, &me, self.settings().replica_lease).await? {
            return Ok(false);
        }
        let op = match self.store().operation_input(id).await {
            Ok(op) => op,
            // Work this tundrad cannot read (a newer release wrote it): that
            // operation fails, saying why; everything else goes on.
            Err(StoreError::Corrupt { what, .. }) => {
                let why =
                    format!("this tundrad cannot run this operation ({what}); was it started by a newer release?");
                tracing::warn!(operation_id = %id, error = %why, "operation not runnable");
                self.store().finish_operation(id, Some(why)).await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let (c, dispatch) = (self.clone(), self.inner.dispatch);
        let span = tracing::info_span!("operation", operation_id = %id, kind = %op.operation.kind);
        let task = tracing::Instrument::instrument(
            async move {
                match c.store().start_operation(id, &me, "started").await {
                    Ok(true) => {}
                    Ok(false) => return tracing::info!("another replica holds this operation now"),
                    Err(e) => return tracing::error!(error = %e, "could not mark operation running"),
                }
                let result = dispatch(c.clone(), op).await;
                match &result {
                    Ok(()) => tracing::info!("operation succeeded"),
                    Err(e) => tracing::warn!(error = %e, "operation failed"),
                }
                match c.store().finish_owned_operation(id, &me, result.err()).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!("lost this operation's lease before it ended; its new owner's outcome counts")
                    }
                    Err(e) => tracing::error!(error = %e, "could not record operation outcome"),
                }
            },
            span,
        );
        self.inner.runner.operation(id, task).await;
        Ok(true)
    }

    /// Run every unfinished operation no live replica holds (all of them
    /// after a restart on SQLite); returns how many were claimed.
    pub async fn take_over(&self) -> Result<usize> {
        let mut n = 0;
        for id in self.store().orphaned_operations().await? {
            if self.inner.runner.operations().contains(&id) {
                continue; // ours, running; its lease is being renewed
            }
            if self.run(id).await? {
                tracing::info!(operation_id = %id, "resuming operation");
                n += 1;
            }
        }
        Ok(n)
    }

    /// The operations whose workers run on this replica.
    pub fn running_here(&self) -> Vec<OperationId> {
        self.inner.runner.operations()
    }

    /// The loops and provisioning networks this replica runs now (under
    /// their leases).
    pub fn leases_here(&self) -> Vec<&'static str> {
        self.inner.leases_here.lock().expect("leases lock").iter().copied().collect()
    }

    /// Record that the work under lease `name` runs here (`true`) or stopped.
    pub(crate) fn running_under(&self, name: &'static str, running: bool) {
        let mut here = self.inner.leases_here.lock().expect("leases lock");
        if running {
            here.insert(name);
        } else {
            here.remove(name);
        }
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

    /// Stop every task and hand what this replica held to the others
    /// (operations resume there, or on the next start).
    pub async fn stop(&self) {
        self.inner.runner.abort().await;
        if let Err(e) = self.store().release_leases(self.replica()).await {
            tracing::warn!(error = %e, "could not hand over leases; other replicas take them when they lapse");
        }
    }

    /// Stop every task and hand nothing over, as a killed process would
    /// (the replica tests).
    pub async fn abandon(&self) {
        self.inner.runner.abort().await;
    }
}

/// A replica's name: where it runs, which process, and a random part (a
/// restarted process is a new replica; its old leases lapse).
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = OperationId::generate().to_string();
    let tail = &random[random.len() - 6..];
    format!("{}-{}-{tail}", host.trim(), std::process::id())
}
