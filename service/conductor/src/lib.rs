//! `tundra-conductor`: the flows and workers `tundrad` runs — operations
//! with typed work, machines (BMC, actions, the agent-driven loop, power
//! sync, timeouts, discovery), nodes (placement, reconcile), config drives,
//! the fabric (rules, binding, the switch worker) and images. No HTTP: the
//! service's handlers parse a request, call in here, and render; errors are
//! [`Error`], which tundrad turns into problem documents in one place.
//!
//! Modules import only modules listed before them (checked by
//! `tests/layout.rs`):
//!
//! 1. `secrets`, `error`, `certs`, `settings`, `runner` — leaves
//! 2. `handle` — the [`Conductor`]: store, keyring, settings, runner, wake-ups
//! 3. `bmc`, `images`, `config_drive`, `netboot`, `housekeeping`
//! 4. `fabric::{switches, networks, binding, worker}`
//! 5. `machines::{inventory, actions, power, drive, boot, discovery, sync}`
//! 6. `nodes::{placement, reconcile}`, `clusters::{flows, reconcile}`,
//!    `appliances::{flows, reconcile}`
//! 7. `agent` — the agent protocol's sessions
//! 8. `work` — runs an operation, its `Work` matched exhaustively
//! 9. this file — [`start`]: recovery and the background loops

pub mod agent;
pub mod appliances;
pub mod bmc;
pub mod certs;
pub mod clusters;
pub mod config_drive;
pub mod error;
pub mod fabric;
pub mod handle;
pub mod housekeeping;
pub mod images;
pub mod machines;
pub mod netboot;
pub mod nodes;
pub mod runner;
pub mod secrets;
pub mod settings;
pub mod shares;
pub mod work;

pub use error::{Error, Result};
pub use handle::{BmcMaker, Conductor, Wakes};
pub use settings::Settings;

use std::pin::Pin;

use tundra_store::Store;

/// A service loop, made anew each time its supervisor starts it.
type Loop = fn(Conductor) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A conductor on `store` with the real BMC drivers, not yet running.
pub fn new(store: Store, keyring: secrets::Keyring, settings: Settings, http: reqwest::Client) -> Conductor {
    Conductor::new(store, keyring, settings, http, work::run, bmc::real())
}

/// Bring the conductor up after a (re)start: uploads cut off by the
/// restart failed, the background loops started (power sync, timeouts,
/// node reconciler, fabric worker, housekeeping), and unfinished operations
/// resumed from the store.
pub async fn start(c: &Conductor) -> Result<()> {
    images::recover(c).await?;
    let loops: [(&'static str, Loop); 8] = [
        ("housekeeping", |c| Box::pin(housekeeping::run(c))),
        ("power_sync", |c| Box::pin(machines::sync::power_sync_loop(c))),
        ("timeouts", |c| Box::pin(machines::sync::timeout_loop(c))),
        ("node_reconciler", |c| Box::pin(nodes::reconcile::run(c))),
        ("fabric_worker", |c| Box::pin(fabric::worker::run(c))),
        ("share_worker", |c| Box::pin(shares::worker::run(c))),
        ("cluster_reconciler", |c| Box::pin(clusters::reconcile::run(c))),
        ("appliance_reconciler", |c| Box::pin(appliances::reconcile::run(c))),
    ];
    for (name, run) in loops {
        let c2 = c.clone();
        c.supervise(name, move || run(c2.clone())).await;
    }
    let n = c.resume().await?;
    if n > 0 {
        tracing::info!(operations = n, "resumed unfinished operations");
    }
    Ok(())
}
