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
//! 1. `secrets`, `error`, `certs`, `settings`, `wakes`, `runner` — leaves
//! 2. `handle` — the [`Conductor`]: store, keyring, settings, runner, wake-ups
//! 3. `bmc`, `images`, `config_drive`, `netboot`, `housekeeping`, `replicas`
//! 4. `fabric::{switches, networks, binding, worker}`
//! 5. `machines::{inventory, actions, power, drive, boot, discovery, sync}`
//! 6. `nodes::{placement, reconcile}`, `clusters::{flows, reconcile}`,
//!    `appliances::{flows, reconcile}`
//! 7. `agent` — the agent protocol's sessions
//! 8. `work` — runs an operation, its `Work` matched exhaustively
//! 9. this file — [`start`]: recovery, the background loops (each on the
//!    replica holding its lease) and the operations' heartbeat

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
pub mod replicas;
pub mod runner;
pub mod secrets;
pub mod settings;
pub mod shares;
pub mod wakes;
pub mod work;

pub use error::{Error, Result};
pub use handle::{BmcMaker, Conductor};
pub use settings::Settings;
pub use wakes::Wakes;

use tundra_store::{Backend, Store};

pub use replicas::Loop;

/// A conductor on `store` with the real BMC drivers, not yet running.
pub fn new(store: Store, keyring: secrets::Keyring, settings: Settings, http: reqwest::Client) -> Conductor {
    Conductor::new(store, keyring, settings, http, work::run, bmc::real())
}

/// Bring the conductor up after a (re)start: the background loops started
/// (power sync, timeouts, node reconciler, fabric worker, housekeeping…),
/// each on whichever replica holds its lease; the operations' heartbeat
/// started; unfinished operations no live replica holds taken over. On
/// SQLite (one replica, alone on its file) every lease a killed
/// predecessor left is taken back first, and uploads cut off by the
/// restart fail.
pub async fn start(c: &Conductor) -> Result<()> {
    if c.store().backend() == Backend::Sqlite {
        c.store().release_every_lease().await?;
        images::recover(c).await?;
    }
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
        c.supervise(name, move || replicas::leased(c2.clone(), name, run)).await;
    }
    let n = c.take_over().await?;
    if n > 0 {
        tracing::info!(operations = n, "resumed unfinished operations");
    }
    let c2 = c.clone();
    c.supervise("operation_leases", move || replicas::operations(c2.clone())).await;
    let c2 = c.clone();
    c.supervise("replica_wakes", move || replicas::relay(c2.clone())).await;
    Ok(())
}
