//! Machine work: the BMC driver for a machine (its password opened from the
//! sealed secret only here), the operations that move machines through the
//! provision-state table, and the power sync that keeps `power_state` true
//! and puts machines whose BMC stays silent into maintenance — and takes them
//! out again when it answers.

use std::time::Duration;

use tundra_api::MachineId;
use tundra_api::machines::{BmcDriver, Machine};
use tundra_drivers::bmc::{Bmc, BmcError, Driver, Ipmi, Password, PowerAction, PowerState, Redfish, Trust};
use tundra_drivers::retry::Backoff;
use tundra_engine::machine_states::{Event, State, next};
use tundra_store::{Actor, NewOperation, OperationInput, PowerObservation};

use crate::error::ApiError;
use crate::state::AppState;

/// Power actions callers may ask for, besides provision-state verbs.
pub const POWER_ACTIONS: [&str; 4] = ["power_on", "power_off", "soft_power_off", "reboot"];

/// Check BMC settings without touching the network.
pub fn validate_bmc(m: &tundra_api::machines::BmcSettings) -> Result<(), String> {
    let placeholder = Password(String::new());
    let d = build(m, placeholder, Backoff::default()).map_err(|e| e.to_string())?;
    d.validate().map_err(|e| e.to_string())
}

fn build(b: &tundra_api::machines::BmcSettings, password: Password, backoff: Backoff) -> Result<Driver, BmcError> {
    Ok(match b.driver {
        BmcDriver::Redfish => Driver::Redfish(Redfish::new(
            &b.address,
            b.system.as_deref(),
            &b.username,
            password,
            if b.insecure { Trust::Insecure } else { Trust::Platform },
            backoff,
        )?),
        BmcDriver::Ipmi => Driver::Ipmi(Ipmi::new(&b.address, &b.username, password, backoff)?),
    })
}

/// The driver for a machine, with its password.
pub async fn driver(state: &AppState, m: &Machine, backoff: Backoff) -> Result<Driver, String> {
    let secret = state.store.machine_secret(m.id).await.map_err(|e| e.to_string())?;
    let plain = state.keyring.get(&state.store, secret).await.map_err(|e| e.to_string())?;
    let password =
        Password(String::from_utf8(plain.0).map_err(|_| "the stored BMC password is not UTF-8".to_string())?);
    build(&m.bmc, password, backoff).map_err(|e| e.to_string())
}

/// Start an action on a machine: a provision-state verb from the table, or a
/// power action. Returns the operation doing it.
pub async fn start_action(
    state: &AppState,
    actor: &Actor,
    m: &Machine,
    action: &str,
) -> Result<tundra_api::OperationId, ApiError> {
    let from = State::parse(&m.provision_state).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("machine {} has unknown state {}", m.name, m.provision_state))
    })?;
    let (to, kind) = if POWER_ACTIONS.contains(&action) {
        if from.is_transient() {
            return Err(ApiError::Conflict(format!(
                "machine {} is {from}; power it when the running step ends",
                m.name
            )));
        }
        (from, "machine.power")
    } else {
        let event = match action {
            "manage" => Event::Manage,
            "inspect" => Event::Inspect,
            "provide" => Event::Provide,
            "deploy" => Event::Deploy,
            "delete" => Event::Delete,
            "adopt" => Event::Adopt,
            "rescue" => Event::Rescue,
            "unrescue" => Event::Unrescue,
            "abort" => Event::Abort,
            other => {
                return Err(ApiError::field(
                    "/action",
                    format!(
                        "{other:?} is not an action; use manage, inspect, provide, adopt, abort, or {}",
                        POWER_ACTIONS.join(", ")
                    ),
                ));
            }
        };
        let to = next(from, event).map_err(|e| ApiError::Conflict(e.to_string()))?;
        // Only verifying is implemented so far; the rest arrive with the agent and boot services.
        if event != Event::Manage {
            return Err(ApiError::Conflict(format!(
                "{action} is not available yet in this tundrad (machines can be enrolled, managed and powered)"
            )));
        }
        (to, "machine.manage")
    };
    if m.maintenance && kind != "machine.power" {
        return Err(ApiError::Conflict(format!(
            "machine {} is in maintenance ({}); take it out of maintenance first",
            m.name,
            m.maintenance_reason.clone().unwrap_or_default()
        )));
    }
    let op = NewOperation {
        project_id: None,
        kind: kind.into(),
        target_type: "machine".into(),
        target_id: m.id.to_string(),
        input: serde_json::json!({"action": action, "from": from.as_str()}),
    };
    let (_, op_id) = state.store.begin_machine_transition(actor, m.id, from.as_str(), to.as_str(), action, op).await?;
    state.ops.spawn(state.store.operation_input(op_id).await?).await;
    Ok(op_id)
}

/// Run a machine operation (from the runner; also after a restart).
pub async fn run(state: &AppState, op: &OperationInput) -> Result<(), String> {
    let id: MachineId = op.operation.target_id.parse().map_err(|_| "operation target is not a machine".to_string())?;
    let m = state.store.machine(&id.to_string()).await.map_err(|e| e.to_string())?;
    let action = op.input["action"].as_str().unwrap_or_default().to_string();
    let from = op.input["from"].as_str().unwrap_or_default().to_string();
    let result = async {
        let d = driver(state, &m, Backoff::default()).await?;
        match op.operation.kind.as_str() {
            "machine.manage" => {
                // Verifying: the BMC answers with these credentials.
                let p = d.power_state().await.map_err(|e| e.to_string())?;
                let _ = state.store.observe_power(m.id, PowerObservation::Answered(power_str(p))).await;
                Ok(())
            }
            "machine.power" => {
                let a = match action.as_str() {
                    "power_on" => PowerAction::On,
                    "power_off" => PowerAction::Off,
                    "soft_power_off" => PowerAction::SoftOff,
                    _ => PowerAction::Reboot,
                };
                let p = d
                    .set_power(a, Duration::from_secs(1), Duration::from_secs(120))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = state.store.observe_power(m.id, PowerObservation::Answered(power_str(p))).await;
                Ok(())
            }
            other => Err(format!("unknown machine operation {other:?}")),
        }
    }
    .await;
    let here = State::parse(&state.store.machine(&id.to_string()).await.map_err(|e| e.to_string())?.provision_state)
        .ok_or("unknown state")?;
    let to = match (&result, op.operation.kind.as_str()) {
        (_, "machine.power") => State::parse(&from).unwrap_or(here),
        (Ok(()), _) => next(here, Event::Done).map_err(|e| e.to_string())?,
        (Err(_), _) => next(here, Event::Fail).map_err(|e| e.to_string())?,
    };
    state
        .store
        .machine_step(id, op.operation.id, to.as_str(), result.clone().err(), true)
        .await
        .map_err(|e| e.to_string())?;
    result
}

fn power_str(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "on",
        PowerState::Off => "off",
    }
}

/// The power sync: read every idle, enrolled-and-verified machine's power.
pub async fn power_sync_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.power_sync_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = power_sync_once(&state).await {
            tracing::warn!(error = %e, "power sync failed");
        }
    }
}

pub async fn power_sync_once(state: &AppState) -> Result<(), String> {
    let quick = Backoff { attempts: 2, first_delay: Duration::from_millis(500), max_delay: Duration::from_secs(1) };
    for m in state.store.all_machines().await.map_err(|e| e.to_string())? {
        if m.provision_state == "enroll" || m.operation_id.is_some() {
            continue;
        }
        let seen = match driver(state, &m, quick).await {
            Ok(d) => match d.power_state().await {
                Ok(p) => PowerObservation::Answered(power_str(p)),
                Err(e) => PowerObservation::Failed {
                    error: e.to_string(),
                    set_maintenance_after: state.config.power_sync_failures,
                },
            },
            Err(e) => PowerObservation::Failed { error: e, set_maintenance_after: state.config.power_sync_failures },
        };
        match state.store.observe_power(m.id, seen).await {
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
pub async fn timeout_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.reconcile_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = timeouts_once(&state).await {
            tracing::warn!(error = %e, "timeout reconciler failed");
        }
    }
}

pub async fn timeouts_once(state: &AppState) -> Result<(), String> {
    use tundra_engine::machine_states::Kind;
    for m in state.store.all_machines().await.map_err(|e| e.to_string())? {
        let (Some(st), Some(op)) = (State::parse(&m.provision_state), m.operation_id) else { continue };
        let Kind::Transient { timeout, on_timeout } = st.info().kind else { continue };
        let limit = timeout.mul_f64(state.config.machine_timeout_scale);
        let since = tundra_store::parse_time(&m.updated_at).and_then(|t| t.elapsed().ok()).unwrap_or_default();
        if since < limit {
            continue;
        }
        let why = format!(
            "timed out after {} in {st}",
            humantime::format_duration(Duration::from_secs(limit.as_secs().max(1)))
        );
        match state.store.machine_step(m.id, op, on_timeout.as_str(), Some(why.clone()), true).await {
            Ok(_) => {
                tracing::warn!(machine = %m.name, state = %st, to = %on_timeout, "machine timed out");
                state.ops.cancel(op);
                let _ = state.store.finish_operation(op, Some(why)).await;
            }
            // The worker finished it meanwhile.
            Err(tundra_store::StoreError::Conflict(_)) => {}
            Err(e) => tracing::warn!(machine = %m.name, error = %e, "recording a timeout failed"),
        }
    }
    Ok(())
}
