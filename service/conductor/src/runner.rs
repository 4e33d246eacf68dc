//! Where the conductor's tasks run: operations (each by its ID, so a timeout
//! or an abort can cancel it) and the service's loops — each supervised:
//! one that panics or ends is logged, counted and started again after a
//! pause — all stopped together when tundrad stops. It knows nothing of
//! what the tasks do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};
use tundra_api::OperationId;

/// Operations' tasks by ID, each with the number it was started under.
type Running = Arc<std::sync::Mutex<HashMap<OperationId, (u64, AbortHandle)>>>;

#[derive(Clone, Default)]
pub struct Runner {
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    running: Running,
    started: Arc<std::sync::atomic::AtomicU64>,
    restarts: Arc<std::sync::Mutex<BTreeMap<&'static str, u64>>>,
}

/// Forgets an operation's task however it ends — done, panicked or
/// aborted — unless the operation was started again meanwhile.
struct Forget {
    running: Running,
    id: OperationId,
    n: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let mut running = self.running.lock().expect("running lock");
        if running.get(&self.id).is_some_and(|(n, _)| *n == self.n) {
            running.remove(&self.id);
        }
    }
}

/// Aborts the task when whoever holds this is dropped (aborted).
pub(crate) struct AbortOnDrop(pub AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("operations", &self.running.lock().map(|r| r.len()).unwrap_or(0)).finish()
    }
}

impl Runner {
    /// Run operation `id`'s task, unless it runs here already (returns
    /// whether it was started); it is forgotten when it ends.
    pub async fn operation(&self, id: OperationId, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        if self.running.lock().expect("running lock").contains_key(&id) {
            return false;
        }
        let n = self.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let forget = Forget { running: self.running.clone(), id, n };
        // Recorded before the task can end (its guard waits for this lock),
        // so one that ends at once is forgotten, not left behind.
        let mut running = self.running.lock().expect("running lock");
        let handle = tasks.spawn(async move {
            let _forget = forget;
            task.await;
        });
        running.insert(id, (n, handle));
        true
    }

    /// The operations whose tasks run here.
    pub fn operations(&self) -> Vec<OperationId> {
        self.running.lock().expect("running lock").keys().copied().collect()
    }

    /// Stop the task of an operation that was ended from outside (a timeout, an abort).
    pub fn cancel(&self, id: OperationId) {
        if let Some((_, h)) = self.running.lock().expect("running lock").remove(&id) {
            h.abort();
        }
    }

    /// Run the service loop `name`, made by `make`: if it panics or ends,
    /// it is logged, counted (`restarts`) and made again after a pause that
    /// doubles up to half a minute; it stops with the others.
    pub async fn supervise<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let restarts = self.restarts.clone();
        self.tasks.lock().await.spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                let started = tokio::time::Instant::now();
                let task = tokio::spawn(make());
                let _abort = AbortOnDrop(task.abort_handle());
                match task.await {
                    Ok(()) => tracing::error!(task = name, "a service loop ended; starting it again"),
                    Err(e) if e.is_panic() => {
                        tracing::error!(task = name, error = %e, "a service loop panicked; starting it again")
                    }
                    Err(_) => return, // cancelled: tundrad is stopping
                }
                *restarts.lock().expect("restarts lock").entry(name).or_default() += 1;
                if started.elapsed() > Duration::from_secs(60) {
                    pause = Duration::from_millis(100); // it had been healthy: start over quickly
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        });
    }

    /// How many times each service loop was started again.
    pub fn restarts(&self) -> Vec<(&'static str, u64)> {
        self.restarts.lock().expect("restarts lock").iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Stop everything, and wait (a few seconds at most) until it has
    /// stopped; unfinished operations resume on the next start.
    pub async fn abort(&self) {
        let mut tasks = self.tasks.lock().await;
        tasks.abort_all();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), async { while tasks.join_next().await.is_some() {} }).await;
    }
}

/// A loop's clock: ticks `every`, and after a slow pass waits a whole
/// period again rather than catching up.
pub fn ticker(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Wait for a worker's next pass: its clock's next tick, or a wake-up.
pub async fn next_pass(tick: &mut tokio::time::Interval, wake: &crate::wakes::Wake) {
    tokio::select! {
        _ = tick.tick() => {}
        _ = wake.notified() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_loop_that_panics_or_ends_is_started_again_and_counted() {
        let r = Runner::default();
        let runs = Arc::new(AtomicU32::new(0));
        let n = runs.clone();
        r.supervise("flaky", move || {
            let n = n.clone();
            async move {
                match n.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("a malformed packet"),
                    1 => {} // ends
                    _ => std::future::pending().await,
                }
            }
        })
        .await;
        // Pauses of 0.1 s, then 0.2 s.
        for _ in 0..50 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3, "made again after the panic and after it ended");
        assert_eq!(r.restarts(), vec![("flaky", 2)]);
        r.abort().await;
    }
}
