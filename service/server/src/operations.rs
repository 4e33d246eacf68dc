//! The operation runner: long work runs as a task on the service's own
//! authority, records progress in the store, and is started again from its
//! stored input when `tundrad` restarts before it finished. Workers must be
//! idempotent from the start (they stage into fresh temp files and publish
//! with a rename).

use std::sync::{Arc, OnceLock};

use tundra_api::OperationId;
use tundra_store::{OperationInput, Store};

use crate::state::AppState;

/// Spawns and tracks operation tasks.
#[derive(Clone, Default)]
pub struct Runner {
    state: Arc<OnceLock<AppState>>,
    tasks: Arc<tokio::sync::Mutex<tokio::task::JoinSet<()>>>,
    running: Arc<std::sync::Mutex<std::collections::HashMap<OperationId, tokio::task::AbortHandle>>>,
}

impl Runner {
    /// Give the runner the state its workers need (set once at start).
    pub fn bind(&self, state: AppState) {
        let _ = self.state.set(state);
    }

    /// Start an accepted operation.
    pub async fn spawn(&self, op: OperationInput) {
        let Some(state) = self.state.get().cloned() else { return };
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        let id = op.operation.id;
        let running = self.running.clone();
        let handle = tasks.spawn(async move {
            let span = tracing::info_span!("operation", operation_id = %id, kind = %op.operation.kind);
            tracing::Instrument::instrument(run(state, op), span).await;
            running.lock().expect("running lock").remove(&id);
        });
        self.running.lock().expect("running lock").insert(id, handle);
    }

    /// Resume what a previous run left unfinished.
    pub async fn resume(&self, store: &Store) -> anyhow::Result<usize> {
        let ops = store.unfinished_operations().await?;
        let n = ops.len();
        for op in ops {
            tracing::info!(operation_id = %op.operation.id, kind = %op.operation.kind, attempts = op.operation.attempts, "resuming operation");
            self.spawn(op).await;
        }
        Ok(n)
    }

    /// Stop the worker of an operation that was ended from outside (a timeout).
    pub fn cancel(&self, id: OperationId) {
        if let Some(h) = self.running.lock().expect("running lock").remove(&id) {
            h.abort();
        }
    }

    /// Run a service task (housekeeping) that stops with the server.
    pub async fn background(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.lock().await.spawn(task);
    }

    /// Stop running operations and service tasks; operations resume on the next start.
    pub async fn abort(&self) {
        self.tasks.lock().await.abort_all();
    }
}

async fn run(state: AppState, op: OperationInput) {
    let id: OperationId = op.operation.id;
    if let Err(e) = state.store.start_operation(id, "started").await {
        tracing::error!(error = %e, "could not mark operation running");
        return;
    }
    let result = match op.operation.kind.as_str() {
        "image.import" => crate::images::run_import(&state, &op).await,
        "machine.manage" | "machine.power" | "machine.inspect" | "machine.clean" | "machine.deploy"
        | "machine.delete" => crate::machines::run(&state, &op).await,
        other => Err(format!("unknown operation kind {other:?}; this tundrad is older than the one that accepted it")),
    };
    match &result {
        Ok(()) => tracing::info!("operation succeeded"),
        Err(e) => tracing::warn!(error = %e, "operation failed"),
    }
    if let Err(e) = state.store.finish_operation(id, result.err()).await {
        tracing::error!(error = %e, "could not record operation outcome");
    }
}
