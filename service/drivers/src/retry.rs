//! Retries with exponential backoff for calls to flaky hardware: BMCs drop
//! connections, answer 503 while busy, and reboot their web servers.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No attempt starts once this long has passed since the first (a call
    /// under way then is the last), though a failed first attempt is always
    /// tried once more — one that ran into its own timeout included; None:
    /// only `attempts` counts.
    pub window: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            window: None,
        }
    }
}

/// Whether an error is worth another attempt.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Backoff {
    /// Attempts 0.5 s doubling to 8 s apart, none started once `window`
    /// has passed since the first: how long an operation keeps calling a
    /// BMC that fails transiently before it gives up (slow attempts count).
    pub fn within(window: Duration) -> Backoff {
        Backoff { attempts: u32::MAX, window: Some(window), ..Backoff::default() }
    }

    /// Run `op` until it succeeds, fails permanently, or attempts run out.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Transient + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        let start = tokio::time::Instant::now();
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_transient()
                        && attempt < self.attempts
                        && (attempt == 1 || self.window.is_none_or(|w| start.elapsed() + delay < w)) =>
                {
                    tracing::debug!(what, attempt, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_window_bounds_the_retries_slow_attempts_included() {
        // Each attempt takes 10 s (a silent BMC); a 60 s window starts
        // attempts at 0, 10.5, 21.5, 33.5 and 47.5 s, and no sixth (at 65.5 s).
        let calls = std::sync::atomic::AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = Backoff::within(Duration::from_secs(60))
            .run("t", || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(10)).await;
                Err(E(true))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
        // An attempt as long as the window (Redfish's 60 s timeout) still gets its one retry.
        calls.store(0, std::sync::atomic::Ordering::Relaxed);
        let _: Result<(), E> = Backoff::within(Duration::from_secs(60))
            .run("t", || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err(E(true))
            })
            .await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[derive(Debug)]
    struct E(bool);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_with_growing_delays() {
        let b = Backoff {
            attempts: 4,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(2),
            window: None,
        };
        let start = tokio::time::Instant::now();
        let mut n = 0;
        let r: Result<(), E> = b
            .run("t", || {
                n += 1;
                async { Err(E(true)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(n, 4);
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 2), "1 s, then doubled, capped at 2 s");
        let mut m = 0;
        let r: Result<(), E> = b
            .run("t", || {
                m += 1;
                async { Err(E(false)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(m, 1, "permanent errors are not retried");
    }
}
