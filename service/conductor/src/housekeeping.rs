//! Housekeeping that keeps the store small: idempotency keys are replayable
//! for 24 hours, then forgotten.

use std::time::{Duration, SystemTime};

use crate::handle::Conductor;

pub async fn run(c: Conductor) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = humantime::format_rfc3339_millis(SystemTime::now() - Duration::from_secs(86400)).to_string();
        match c.store().expire_idempotency_keys(&before).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "forgot old idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring idempotency keys failed"),
        }
    }
}
