//! Replicas: several tundrad on one PostgreSQL database. Each runs the
//! API and its share of the operations; leases in the store say which.
//!
//! - An operation runs on the replica that claimed it (`Conductor::run`).
//!   Every replica's heartbeat ([`operations`]) renews its own lease (it
//!   runs: `Store::live_replicas`) and its operations' leases every third
//!   of `replica_lease`, stops the workers of any it no longer holds, and
//!   claims (takes over) every unfinished operation whose lease lapsed — a
//!   replica killed mid-deploy loses its deploys to the others within one
//!   lease, and they resume from the store.
//! - A background loop runs on one replica at a time ([`leased`]): the one
//!   holding its lease. The holder stops the loop before its lease can
//!   lapse when it cannot renew (the database is away), so two replicas
//!   never run one loop at once.
//!
//! On SQLite one replica runs alone (tundrad holds a lock file), so at
//! start it takes every lease a killed predecessor left behind.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::handle::Conductor;
use crate::runner::AbortOnDrop;

/// A service loop, made anew each time its supervisor starts it.
pub type Loop = fn(Conductor) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often leases are renewed: a third of their length, so one missed
/// renewal never lets a lease lapse.
pub fn renew_every(c: &Conductor) -> Duration {
    c.settings().replica_lease / 3
}

/// How long after its last renewal a holder stops on its own: two thirds
/// of the lease, leaving a third for clocks that disagree a little.
fn hold_for(c: &Conductor) -> Duration {
    c.settings().replica_lease * 2 / 3
}

/// Run loop `name` (made by `run`) while this replica holds its lease;
/// wait for the lease while another does.
pub async fn leased(c: Conductor, name: &'static str, run: Loop) {
    let c2 = c.clone();
    leased_with(c, name, move || run(c2.clone())).await
}

/// [`leased`] for a loop made by any closure (the provisioning networks'
/// servers, which own their sockets).
pub async fn leased_with<F, Fut>(c: Conductor, name: &'static str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let every = renew_every(&c);
    let acquire = || c.store().acquire_lease(name, c.replica(), c.settings().replica_lease);
    loop {
        let mut renewed = loop {
            let asked = Instant::now();
            match tokio::time::timeout(every, acquire()).await {
                Ok(Ok(true)) => break asked,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(task = name, error = %e, "could not ask for the lease"),
                Err(_) => tracing::warn!(task = name, "asking for the lease timed out"),
            }
            tokio::time::sleep(every).await;
        };
        tracing::info!(task = name, replica = c.replica(), "holding the lease: running it here");
        let mut task = tokio::spawn(make());
        let _abort = AbortOnDrop(task.abort_handle());
        let _here = Here::new(&c, name);
        loop {
            // Stopped here by the deadline whatever the database does: no
            // call below may outlast it.
            let deadline = renewed + hold_for(&c);
            // The next renewal: a period after the last good one (however
            // long that took), or a short pause after a failure.
            let next = (renewed + every).max(Instant::now() + every / 5).min(deadline);
            tokio::select! {
                r = &mut task => match r {
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    _ => return, // it ended: the supervisor says so and starts it again
                },
                _ = tokio::time::sleep_until(next) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(task = name, "the lease could not be renewed in time: stopping it here");
                break;
            }
            let asked = Instant::now();
            match tokio::time::timeout(left, acquire()).await {
                Ok(Ok(true)) => renewed = asked,
                Ok(Ok(false)) => {
                    tracing::warn!(task = name, "another replica holds the lease now: stopping it here");
                    break;
                }
                Ok(Err(e)) => tracing::warn!(task = name, error = %e, "could not renew the lease"),
                Err(_) => tracing::warn!(task = name, "renewing the lease timed out"),
            }
        }
        task.abort();
    }
}

/// Marks the work under a lease as running here while it lives.
struct Here<'a>(&'a Conductor, &'static str);

impl<'a> Here<'a> {
    fn new(c: &'a Conductor, name: &'static str) -> Here<'a> {
        c.running_under(name, true);
        Here(c, name)
    }
}

impl Drop for Here<'_> {
    fn drop(&mut self) {
        self.0.running_under(self.1, false);
    }
}

/// Every replica's heartbeat: renew this replica's own lease (it runs, so
/// the requests it handles are waited for, not raced: the Idempotency-Key
/// claims) and the leases of the operations running here, stop the workers
/// of those held elsewhere now, and take over the operations no live
/// replica holds (a dead replica's, and this one's that have no worker here
/// any more).
pub async fn operations(c: Conductor) {
    let every = renew_every(&c);
    let mut tick = crate::runner::ticker(every);
    let mut renewed = Instant::now();
    loop {
        let deadline = renewed + hold_for(&c);
        if deadline > Instant::now() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            if deadline <= Instant::now() {
                stop_what_runs_here(&c);
            }
        } else {
            // Cut off already: nothing runs past the deadline, and the
            // database is asked again each period.
            stop_what_runs_here(&c);
            tick.tick().await;
        }
        let asked = Instant::now();
        let left = deadline.saturating_duration_since(asked);
        let cut_off = left.is_zero();
        // Only what ran before the renewal is judged by it; once cut off,
        // nothing is renewed: those leases lapse and are claimed again.
        let here = if cut_off { Vec::new() } else { c.running_here() };
        let renew = c.store().heartbeat(c.replica(), c.settings().replica_lease, &here);
        let mut answered = false;
        match tokio::time::timeout(if cut_off { every } else { left }, renew).await {
            Ok(Ok(held)) => {
                (renewed, answered) = (asked, true);
                for id in here.iter().filter(|id| !held.contains(id)) {
                    tracing::warn!(operation_id = %id, "this replica no longer holds the operation: stopping its worker here");
                    c.cancel(*id);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "could not renew this replica's leases"),
            Err(_) => tracing::warn!("renewing this replica's leases timed out"),
        }
        if renewed.elapsed() >= hold_for(&c) {
            stop_what_runs_here(&c);
        }
        // Looking for work to take over waits for a database that just
        // answered, and never past the time the renewal left.
        let left = (renewed + hold_for(&c)).saturating_duration_since(Instant::now());
        if !answered || left.is_zero() {
            continue;
        }
        match tokio::time::timeout(left.min(every), c.take_over()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(operations = n, "took over operations no replica held"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not look for operations to take over"),
            Err(_) => tracing::warn!("looking for operations to take over timed out"),
        }
    }
}

/// Cut off from the database: another replica may take this one's
/// operations over at any moment, so they stop here. Unrenewed, their
/// leases lapse and they are claimed again (here or there) once the
/// database answers.
fn stop_what_runs_here(c: &Conductor) {
    for id in c.running_here() {
        tracing::warn!(operation_id = %id, "the operation's lease could not be renewed in time: stopping its worker here");
        c.cancel(id);
    }
}

/// Relay wake-ups between replicas (PostgreSQL): each one made here is
/// signalled to the others, and each one they signal wakes the worker
/// here — the worker may run on any replica. On SQLite it has nothing to do.
pub async fn relay(c: Conductor) {
    let mut signals = match c.store().signals().await {
        Ok(Some(s)) => s,
        Ok(None) => return std::future::pending().await,
        Err(e) => return tracing::warn!(error = %e, "could not listen for the other replicas' wake-ups"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    c.wakes().relay_to(tx);
    loop {
        tokio::select! {
            Some(first) = rx.recv() => {
                // Send each kind once, however many came at once.
                let mut names = std::collections::BTreeSet::from([first]);
                while let Ok(n) = rx.try_recv() {
                    names.insert(n);
                }
                for n in names {
                    if let Err(e) = c.store().signal(&format!("wake {} {n}", c.replica())).await {
                        tracing::debug!(error = %e, "could not relay a wake-up");
                    }
                }
            }
            got = signals.recv() => match got {
                Ok(payload) => {
                    let mut words = payload.split(' ');
                    if let (Some("wake"), Some(from), Some(name)) = (words.next(), words.next(), words.next())
                        && from != c.replica()
                    {
                        c.wakes().relayed(name);
                    }
                }
                Err(e) => return tracing::warn!(error = %e, "lost the other replicas' wake-ups"),
            },
        }
    }
}
