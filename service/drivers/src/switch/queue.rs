//! A queue per switch: callers ask for single port moves, concurrently; the
//! queue gathers what arrives while a session is being set up or running
//! and applies it as one batch (the last ask per port wins), never more
//! sessions at once than the switch allows, never sessions closer together
//! than its rate limit, and with refused or dropped sessions retried with
//! backoff. Each caller gets its own port's outcome: verified, or the
//! batch's error (with whether its port was put back).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify, Semaphore, oneshot};

use super::{Applied, BatchError, PortVlan, Switch, SwitchError};
use crate::retry::{Backoff, Transient};

/// How a queue treats its switch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions open at once (switches limit SSH sessions).
    pub max_sessions: usize,
    /// At least this long between the starts of two sessions.
    pub min_interval: Duration,
    /// How long to wait for more asks before starting a batch.
    pub gather: Duration,
    /// Retries of a session that could not be opened or broke off.
    pub backoff: Backoff,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1,
            min_interval: Duration::ZERO,
            gather: Duration::from_millis(20),
            backoff: Backoff::default(),
        }
    }
}

/// What one ask came to.
pub type Outcome = Result<u16, Arc<BatchError>>;

struct Pending {
    vlan: u16,
    waiters: Vec<oneshot::Sender<Outcome>>,
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub sessions: usize,
    pub batches_failed: usize,
    pub retries: usize,
}

/// The queue of one switch.
pub struct SwitchQueue {
    switch: Switch,
    limits: Limits,
    pending: Mutex<BTreeMap<String, Pending>>,
    wake: Arc<Notify>,
    sessions: Arc<Semaphore>,
    last_start: Mutex<Option<tokio::time::Instant>>,
    stats: std::sync::Mutex<Stats>,
    /// Its worker and the batches under way, stopped by [`SwitchQueue::stop`].
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl SwitchQueue {
    /// A queue and its worker (runs until the queue is dropped by every holder).
    pub fn start(switch: Switch, limits: Limits) -> Arc<SwitchQueue> {
        let q = Arc::new(SwitchQueue {
            switch,
            limits,
            pending: Mutex::new(BTreeMap::new()),
            wake: Arc::new(Notify::new()),
            sessions: Arc::new(Semaphore::new(limits.max_sessions.max(1))),
            last_start: Mutex::new(None),
            stats: Default::default(),
            tasks: Default::default(),
        });
        let (weak, wake) = (Arc::downgrade(&q), q.wake.clone());
        let worker = tokio::spawn(async move {
            loop {
                let woken = wake.notified();
                let Some(q) = weak.upgrade() else { return };
                if q.pending.lock().await.is_empty() {
                    drop(q);
                    // Check now and then that the queue still exists.
                    let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
                    continue;
                }
                let permit = match q.sessions.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                };
                tokio::time::sleep(q.limits.gather).await;
                let batch: BTreeMap<String, Pending> = std::mem::take(&mut *q.pending.lock().await);
                if batch.is_empty() {
                    continue;
                }
                let q2 = q.clone();
                let batch = tokio::spawn(async move {
                    q2.run(batch).await;
                    drop(permit);
                    q2.wake.notify_one();
                });
                q.track(batch.abort_handle());
            }
        });
        q.track(worker.abort_handle());
        q
    }

    fn track(&self, task: tokio::task::AbortHandle) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Stop at once: its worker, and any batch under way (its session is
    /// dropped mid-way; its callers hear that the queue stopped). For a
    /// holder that must stop using the switch now — tundrad's fabric
    /// worker moving to another replica.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().expect("stats lock")
    }

    /// Ask for `port` to be in `vlan`; resolves when the batch carrying it
    /// has been applied and read back (or has failed).
    pub async fn set(&self, port: &str, vlan: u16) -> Outcome {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().await;
            let e = p.entry(port.to_string()).or_insert(Pending { vlan, waiters: Vec::new() });
            e.vlan = vlan; // the latest ask wins
            e.waiters.push(tx);
        }
        self.wake.notify_one();
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(BatchError::from(SwitchError::Connect("the switch queue stopped".into()))))
        })
    }

    /// Read `ports`' VLANs in one session, within the same session and
    /// rate limits as the batches (a drift check must not crowd the switch).
    pub async fn read(&self, ports: &[String]) -> Result<Vec<(String, Option<u16>)>, SwitchError> {
        let _permit =
            self.sessions.acquire().await.map_err(|_| SwitchError::Connect("the switch queue stopped".into()))?;
        self.pace().await;
        if let Ok(mut s) = self.stats.lock() {
            s.sessions += 1;
        }
        self.switch.read(ports).await
    }

    /// The rate limit: sessions start at least `min_interval` apart.
    async fn pace(&self) {
        let mut last = self.last_start.lock().await;
        if let Some(t) = *last {
            tokio::time::sleep_until(t + self.limits.min_interval).await;
        }
        *last = Some(tokio::time::Instant::now());
    }

    async fn run(&self, batch: BTreeMap<String, Pending>) {
        let changes: Vec<PortVlan> = batch.iter().map(|(p, x)| PortVlan { port: p.clone(), vlan: x.vlan }).collect();
        let mut attempt = 0u32;
        let mut delay = self.limits.backoff.first_delay;
        let result: Result<Applied, BatchError> = loop {
            self.pace().await;
            if let Ok(mut s) = self.stats.lock() {
                s.sessions += 1;
            }
            attempt += 1;
            match self.switch.apply(&changes).await {
                // Re-applying a batch is harmless: it sets the same VLANs again.
                Err(e) if e.error.is_transient() && attempt < self.limits.backoff.attempts => {
                    tracing::warn!(switch = %self.switch.address, attempt, error = %e, "switch session failed; retrying");
                    if let Ok(mut s) = self.stats.lock() {
                        s.retries += 1;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.limits.backoff.max_delay);
                }
                r => break r,
            }
        };
        match result {
            Ok(a) => {
                for ((port, p), (_, got)) in batch.into_iter().zip(a.after) {
                    debug_assert_eq!(got, Some(p.vlan), "{port}");
                    for w in p.waiters {
                        let _ = w.send(Ok(p.vlan));
                    }
                }
            }
            Err(e) => {
                if let Ok(mut s) = self.stats.lock() {
                    s.batches_failed += 1;
                }
                let e = Arc::new(e);
                for (_, p) in batch {
                    for w in p.waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
