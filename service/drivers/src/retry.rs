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
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempts: 5, first_delay: Duration::from_millis(500), max_delay: Duration::from_secs(8) }
    }
}

/// Whether an error is worth another attempt.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Backoff {
    /// Attempts doubling from 0.5 s up to 8 s apart, as many as fit in
    /// `window` of waiting: how long an operation keeps calling a BMC that
    /// fails transiently before it gives up.
    pub fn within(window: Duration) -> Backoff {
        let mut b = Backoff { attempts: 1, ..Backoff::default() };
        let (mut waited, mut delay) = (Duration::ZERO, b.first_delay);
        while waited < window {
            waited += delay;
            delay = (delay * 2).min(b.max_delay);
            b.attempts += 1;
        }
        b
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
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.attempts => {
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

    #[test]
    fn a_window_is_filled_with_attempts() {
        assert_eq!(Backoff::within(Duration::ZERO).attempts, 1);
        // 0.5 + 1 + 2 + 4 = 7.5 s: the default's five attempts.
        assert_eq!(Backoff::within(Duration::from_secs(7)).attempts, Backoff::default().attempts);
        // … + 8 × 7 = 63.5 s ≥ 60 s.
        assert_eq!(Backoff::within(Duration::from_secs(60)).attempts, 12);
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
        let b = Backoff { attempts: 4, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(2) };
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
