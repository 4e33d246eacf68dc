//! Keeping machines honest without being asked: the power sync (every
//! idle machine's power read; maintenance set after `power_sync_failures`
//! silent reads and cleared when the BMC answers — only tundrad's own) and
//! the timeout reconciler (a machine past its state's timeout takes the
//! table's timeout edge, its operation failed and its agent session closed).

use std::time::Duration;

use tundra_api::machines::ProvisionState;
use tundra_drivers::bmc::Bmc;
use tundra_drivers::retry::Backoff;
use tundra_engine::machine_states::{Described, Kind};
use tundra_store::{PowerObservation, StoreError};

use crate::bmc::{driver, power_str};
use crate::handle::Conductor;

/// The power sync: read every idle, enrolled-and-verified machine's power.
pub async fn power_sync_loop(c: Conductor) {
    let mut tick = crate::runner::ticker(c.settings().power_sync_interval);
    loop {
        tick.tick().await;
        if let Err(e) = power_sync_once(&c).await {
            tracing::warn!(error = %e, "power sync failed");
        }
    }
}

pub async fn power_sync_once(c: &Conductor) -> Result<(), String> {
    let quick = Backoff {
        attempts: 2,
        first_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(1),
        window: None,
    };
    for m in c.store().all_machines().await.map_err(|e| e.to_string())? {
        if m.provision_state == ProvisionState::Enroll || m.operation_id.is_some() {
            continue;
        }
        let seen = match driver(c, &m, quick).await {
            Ok(d) => match d.power_state().await {
                Ok(p) => PowerObservation::Answered(power_str(p)),
                Err(e) => PowerObservation::Failed {
                    error: e.to_string(),
                    set_maintenance_after: c.settings().power_sync_failures,
                },
            },
            Err(e) => PowerObservation::Failed { error: e, set_maintenance_after: c.settings().power_sync_failures },
        };
        match c.store().observe_power(m.id, seen, Some(m.revision)).await {
            Ok((after, true)) if after.maintenance => {
                tracing::warn!(machine = %after.name, reason = after.maintenance_reason.as_deref().unwrap_or(""), "machine put into maintenance")
            }
            Ok((after, true)) => tracing::info!(machine = %after.name, "BMC answers again; maintenance cleared"),
            Ok(_) => {}
            Err(e) => tracing::warn!(machine = %m.name, error = %e, "recording power state failed"),
        }
    }
    Ok(())
}

/// The timeout reconciler: a machine that stays in a transient state longer
/// than the state table allows is moved along its timeout edge (e.g.
/// `deploy_wait` → `deploy_failed`), its operation is failed, and the reason
/// is recorded — nothing stays stuck in a transient state.
pub async fn timeout_loop(c: Conductor) {
    let mut tick = crate::runner::ticker(c.settings().reconcile_interval);
    loop {
        tick.tick().await;
        if let Err(e) = timeouts_once(&c).await {
            tracing::warn!(error = %e, "timeout reconciler failed");
        }
    }
}

pub async fn timeouts_once(c: &Conductor) -> Result<(), String> {
    for m in c.store().machines_in_operation().await.map_err(|e| e.to_string())? {
        let (st, op) = (m.provision_state, m.operation_id);
        let Kind::Transient { timeout, on_timeout } = st.info().kind else { continue };
        let limit = timeout.mul_f64(c.settings().machine_timeout_scale);
        let since = tundra_store::parse_time(&m.updated_at).and_then(|t| t.elapsed().ok()).unwrap_or_default();
        if since < limit {
            continue;
        }
        let why = format!(
            "timed out after {} in {st}",
            humantime::format_duration(Duration::from_secs(limit.as_secs().max(1)))
        );
        // One transaction: the machine is never seen free while its
        // operation still reads running; its agent, if one still runs, has
        // nothing more to do here.
        match c.store().end_machine_operation(m.id, op, on_timeout, why).await {
            Ok(_) => {
                tracing::warn!(machine = %m.name, state = %st, to = %on_timeout, "machine timed out");
                c.cancel(op);
            }
            // The worker finished it meanwhile.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => tracing::warn!(machine = %m.name, error = %e, "recording a timeout failed"),
        }
    }
    Ok(())
}
