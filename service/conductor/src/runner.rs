//! Where the conductor's tasks run: operations (each by its ID, so a timeout
//! or an abort can cancel it) and the service loops, all stopped together
//! when tundrad stops. It knows nothing of what the tasks do.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::{AbortHandle, JoinSet};
use tundra_api::OperationId;

#[derive(Clone, Default)]
pub struct Runner {
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    running: Arc<std::sync::Mutex<HashMap<OperationId, AbortHandle>>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("operations", &self.running.lock().map(|r| r.len()).unwrap_or(0)).finish()
    }
}

impl Runner {
    /// Run operation `id`'s task; it is forgotten when it ends.
    pub async fn operation(&self, id: OperationId, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        let running = self.running.clone();
        let handle = tasks.spawn(async move {
            task.await;
            running.lock().expect("running lock").remove(&id);
        });
        self.running.lock().expect("running lock").insert(id, handle);
    }

    /// Stop the task of an operation that was ended from outside (a timeout, an abort).
    pub fn cancel(&self, id: OperationId) {
        if let Some(h) = self.running.lock().expect("running lock").remove(&id) {
            h.abort();
        }
    }

    /// Run a service loop that stops with the others.
    pub async fn background(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.lock().await.spawn(task);
    }

    /// Stop everything; unfinished operations resume on the next start.
    pub async fn abort(&self) {
        self.tasks.lock().await.abort_all();
    }
}
