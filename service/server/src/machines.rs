//! Machine work: the BMC driver for a machine (its password opened from the
//! sealed secret only here), the operations that move machines through the
//! provision-state table, and the power sync that keeps `power_state` true
//! and puts machines whose BMC stays silent into maintenance — and takes them
//! out again when it answers.

use std::time::Duration;

use serde_json::{Value, json};
use tundra_api::agent::Command;
use tundra_api::catalog::Image;
use tundra_api::machines::{BmcDriver, Interface, Machine};
use tundra_api::{MachineId, OperationId};
use tundra_drivers::bmc::{Bmc, BmcError, BootDevice, Driver, Ipmi, Password, PowerAction, PowerState, Redfish, Trust};
use tundra_drivers::retry::Backoff;
use tundra_engine::machine_states::{Event, State, next};
use tundra_store::{Actor, MachineChanges, NewOperation, OperationInput, PowerObservation};

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
    image: Option<&Image>,
) -> Result<OperationId, ApiError> {
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
                        "{other:?} is not an action; use manage, inspect, provide, deploy, delete, abort, or {}",
                        POWER_ACTIONS.join(", ")
                    ),
                ));
            }
        };
        let to = next(from, event).map_err(|e| ApiError::Conflict(e.to_string()))?;
        let kind = match event {
            Event::Manage => "machine.manage",
            Event::Inspect => "machine.inspect",
            Event::Provide => "machine.clean",
            Event::Deploy => "machine.deploy",
            Event::Delete => "machine.delete",
            Event::Abort => return abort(state, actor, m, to).await,
            _ => {
                return Err(ApiError::Conflict(format!(
                    "{action} is not available in this tundrad yet (manage, inspect, provide, deploy, delete and abort are)"
                )));
            }
        };
        (to, kind)
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
        input: match (kind, image) {
            ("machine.deploy", Some(img)) => serde_json::json!({
                "action": action, "from": from.as_str(), "image_id": img.id,
                "sha256": img.raw_sha256, "size_bytes": img.size_bytes,
            }),
            ("machine.deploy", None) => {
                return Err(ApiError::field("/image_id", "deploy needs the image to write: \"image_id\": \"<id>\""));
            }
            (_, Some(_)) => {
                return Err(ApiError::field("/image_id", format!("only deploy takes an image, not {action}")));
            }
            _ => serde_json::json!({"action": action, "from": from.as_str()}),
        },
    };
    let (_, op_id) = state.store.begin_machine_transition(actor, m.id, from.as_str(), to.as_str(), action, op).await?;
    state.ops.spawn(state.store.operation_input(op_id).await?).await;
    Ok(op_id)
}

/// Run a machine operation (from the runner; also after a restart).
pub async fn run(state: &AppState, op: &OperationInput) -> Result<(), String> {
    let id: MachineId = op.operation.target_id.parse().map_err(|_| "operation target is not a machine".to_string())?;
    if matches!(op.operation.kind.as_str(), "machine.inspect" | "machine.clean" | "machine.deploy" | "machine.delete") {
        let r = drive(state, op, id).await;
        // A node may be waiting on this machine.
        state.nodes_changed.notify_one();
        return r;
    }
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
                power(state, &m, &d, a).await
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
                // Its agent, if one is still running, has nothing more to do here.
                let _ = state.store.close_agent_session(m.id, op).await;
                let _ = state.store.finish_operation(op, Some(why)).await;
            }
            // The worker finished it meanwhile.
            Err(tundra_store::StoreError::Conflict(_)) => {}
            Err(e) => tracing::warn!(machine = %m.name, error = %e, "recording a timeout failed"),
        }
    }
    Ok(())
}

/// `abort`: stop the operation waiting on a machine; the machine takes the
/// table's abort edge (e.g. `deploy_wait` → `deploy_failed`).
pub(crate) async fn abort(state: &AppState, actor: &Actor, m: &Machine, to: State) -> Result<OperationId, ApiError> {
    let op =
        m.operation_id.ok_or_else(|| ApiError::Conflict(format!("machine {} has no operation to abort", m.name)))?;
    state.ops.cancel(op);
    let why = format!("aborted by {}", actor.name);
    state.store.machine_step(m.id, op, to.as_str(), Some(why.clone()), true).await?;
    state.store.close_agent_session(m.id, op).await?;
    state.store.finish_operation(op, Some(why)).await?;
    Ok(op)
}

/// The command the agent runs in a state that boots it.
async fn command_for(state: &AppState, st: State, op: &OperationInput, m: &Machine) -> Result<Command, String> {
    let id = format!("{}-{}", op.operation.id, st.as_str());
    Ok(match st {
        State::Inspecting => Command::Inspect { id },
        State::Cleaning => Command::Erase { id, disks: Vec::new() },
        State::Deploying => {
            let disk = root_disk(m).ok_or_else(|| {
                format!(
                    "machine {} has no known disks; inspect it (or set properties.root_disk) before deploying",
                    m.name
                )
            })?;
            Command::WriteImage {
                id,
                url: "/v1/agent/image".into(),
                sha256: op.input["sha256"].as_str().ok_or("the deploy names no image checksum")?.to_string(),
                size_bytes: op.input["size_bytes"].as_i64().unwrap_or(0),
                disk,
                config_drive: match crate::nodes::node_of(&op.input) {
                    Some(n) => {
                        let node = state.store.node(n).await.map_err(|e| format!("the node being deployed: {e}"))?;
                        Some(crate::nodes::drive_files(state, &node).await?)
                    }
                    None => None,
                },
            }
        }
        other => return Err(format!("{other} does not boot the agent")),
    })
}

/// The disk images go onto: `properties.root_disk`, else the first
/// non-rotational disk inspection found, else the first disk.
pub fn root_disk(m: &Machine) -> Option<String> {
    if let Some(d) = m.properties["root_disk"].as_str() {
        return Some(d.to_string());
    }
    let disks = m.properties["disks"].as_array()?;
    let name = |d: &Value| d["name"].as_str().map(str::to_string);
    disks.iter().find(|d| d["rotational"] == json!(false)).and_then(name).or_else(|| disks.first().and_then(name))
}

/// Walk a machine through the agent-driven states of one operation
/// (inspect, clean, deploy, delete → clean). Each pass reads the machine's
/// state and does that state's step, so a restarted tundrad resumes exactly
/// where the store says the machine is — a waiting state just waits again
/// for the agent, which kept working meanwhile.
async fn drive(state: &AppState, op: &OperationInput, id: MachineId) -> Result<(), String> {
    let op_id = op.operation.id;
    let mut last_progress = String::new();
    // A machine that does not bring the agent up (a missed DHCP answer, a
    // hung boot) is rebooted into it again, up to 3 times.
    let silence = state.config.agent_boot_timeout();
    let mut boot_deadline = tokio::time::Instant::now() + silence;
    let mut reboots = 0;
    loop {
        let m = state.store.machine(&id.to_string()).await.map_err(|e| e.to_string())?;
        if m.operation_id != Some(op_id) {
            // A timeout or an abort took the machine from this operation.
            return Err(m.last_error.unwrap_or_else(|| format!("machine {} left this operation", m.name)));
        }
        let st = State::parse(&m.provision_state).ok_or("unknown provision state")?;
        let step: Result<Option<State>, String> = match st {
            State::Deleting => {
                async {
                    let d = driver(state, &m, Backoff::default()).await?;
                    power(state, &m, &d, PowerAction::Off).await?;
                    Ok(Some(next(st, Event::Done).map_err(|e| e.to_string())?))
                }
                .await
            }
            State::Inspecting | State::Cleaning | State::Deploying => {
                async {
                    let cmd = command_for(state, st, op, &m).await?;
                    state
                        .store
                        .open_agent_session(m.id, op_id, &serde_json::to_value(&cmd).map_err(|e| e.to_string())?)
                        .await
                        .map_err(|e| e.to_string())?;
                    pxe_boot(state, &m).await?;
                    let _ = state.store.operation_progress(op_id, 0, None, "booting the agent").await;
                    Ok(Some(next(st, Event::Wait).map_err(|e| e.to_string())?))
                }
                .await
            }
            State::InspectWait | State::CleanWait | State::DeployWait => {
                let s = state
                    .store
                    .agent_session(m.id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the agent session is gone; start the action again")?;
                match s.report {
                    None => async {
                        let silent = s
                            .last_seen
                            .as_deref()
                            .and_then(tundra_store::parse_time)
                            .and_then(|t| t.elapsed().ok())
                            .is_none_or(|e| e > silence);
                        if silent && tokio::time::Instant::now() > boot_deadline {
                            if reboots == 3 {
                                return Err(format!(
                                    "the agent did not come up (or went silent) {reboots} times; check the machine's console, its boot order and the provisioning network"
                                ));
                            }
                            reboots += 1;
                            tracing::warn!(machine = %m.name, attempt = reboots, "no word from the agent; rebooting into it again");
                            pxe_boot(state, &m).await?;
                            boot_deadline = tokio::time::Instant::now() + silence;
                        }
                        let progress = s.progress.clone().unwrap_or_else(|| "waiting for the agent".into());
                        if progress != last_progress {
                            let _ = state.store.operation_progress(op_id, 0, None, &progress).await;
                            last_progress = progress;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Ok(None)
                    }
                    .await,
                    Some(report) => finish_wait(state, &m, st, &report).await,
                }
            }
            other => Err(format!("machine {} is {other}, which this operation does not drive", m.name)),
        };
        match step {
            Ok(None) => continue,
            Ok(Some(to)) => {
                let done = !to.is_transient();
                state.store.machine_step(id, op_id, to.as_str(), None, done).await.map_err(|e| e.to_string())?;
                if done {
                    state.store.close_agent_session(id, op_id).await.map_err(|e| e.to_string())?;
                    return Ok(());
                }
            }
            Err(e) => {
                // Leave the hardware off and the agent's token dead, then fail along the table.
                if let Ok(d) = driver(state, &m, Backoff::default()).await {
                    let _ = power(state, &m, &d, PowerAction::Off).await;
                }
                let _ = state.store.close_agent_session(id, op_id).await;
                let to = next(st, Event::Fail).map_err(|e| e.to_string())?;
                state
                    .store
                    .machine_step(id, op_id, to.as_str(), Some(e.clone()), true)
                    .await
                    .map_err(|e| e.to_string())?;
                return Err(e);
            }
        }
    }
}

/// The agent reported: finish the waiting state's work.
async fn finish_wait(state: &AppState, m: &Machine, st: State, report: &Value) -> Result<Option<State>, String> {
    if report["ok"] != json!(true) {
        return Err(format!("the agent failed: {}", report["error"].as_str().unwrap_or("no reason given")));
    }
    let d = driver(state, m, Backoff::default()).await?;
    match st {
        State::InspectWait => {
            apply_inventory(state, m, &report["details"]).await?;
            power(state, m, &d, PowerAction::Off).await?;
        }
        State::CleanWait => {
            power(state, m, &d, PowerAction::Off).await?;
        }
        State::DeployWait => {
            d.set_boot_device(BootDevice::Disk, true).await.map_err(|e| e.to_string())?;
            power(state, m, &d, PowerAction::Reboot).await?;
        }
        _ => {}
    }
    Ok(Some(next(st, Event::Done).map_err(|e| e.to_string())?))
}

/// Boot a machine from the network once: PXE as the next boot device, then
/// power on — or reset, when it is already on.
async fn pxe_boot(state: &AppState, m: &Machine) -> Result<(), String> {
    let d = driver(state, m, Backoff::default()).await?;
    d.set_boot_device(BootDevice::Pxe, false).await.map_err(|e| e.to_string())?;
    let on = d.power_state().await.map_err(|e| e.to_string())? == PowerState::On;
    power(state, m, &d, if on { PowerAction::Reboot } else { PowerAction::On }).await
}

/// Power a machine and wait until the BMC says it is done; record what it says.
async fn power(state: &AppState, m: &Machine, d: &Driver, a: PowerAction) -> Result<(), String> {
    let p = d.set_power(a, Duration::from_secs(1), Duration::from_secs(180)).await.map_err(|e| e.to_string())?;
    let _ = state.store.observe_power(m.id, PowerObservation::Answered(power_str(p))).await;
    Ok(())
}

/// The iPXE script that boots `m` into the agent, with a fresh per-boot token.
pub async fn boot_script(state: &AppState, m: &Machine, mac: &str, base: &str) -> anyhow::Result<String> {
    let st = State::parse(&m.provision_state).unwrap_or(State::Enroll);
    // The token lives as long as the boot step and its wait may take.
    let wait = next(st, Event::Wait).unwrap_or(st);
    let secs = |s: State| match s.info().kind {
        tundra_engine::machine_states::Kind::Transient { timeout, .. } => timeout.as_secs_f64(),
        _ => 0.0,
    };
    let ttl = Duration::from_secs_f64(((secs(st) + secs(wait)) * state.config.machine_timeout_scale).max(600.0));
    let token = crate::auth::new_secret(crate::routes::agent::AGENT_TOKEN_PREFIX);
    let s = state
        .store
        .issue_agent_token(m.id, &crate::auth::sha256_hex(token.as_bytes()), &tundra_store::time_after(ttl))
        .await?;
    let about = format!("{} is {st}; operation {}, boot {}", m.name, s.operation_id, s.boots);
    Ok(render_script(state, base, &token, mac, &about))
}

/// The iPXE script for an unknown MAC while discovery is on: the agent
/// reports the hardware and tundrad enrolls the machine.
pub async fn discovery_script(state: &AppState, mac: &str, base: &str) -> anyhow::Result<String> {
    let token = crate::auth::new_secret(crate::routes::agent::AGENT_TOKEN_PREFIX);
    let ttl = state.config.agent_boot_timeout().max(Duration::from_secs(600));
    state
        .store
        .issue_discovery_token(mac, &crate::auth::sha256_hex(token.as_bytes()), &tundra_store::time_after(ttl))
        .await?;
    Ok(render_script(state, base, &token, mac, &format!("discovering {mac}")))
}

fn render_script(state: &AppState, base: &str, token: &str, mac: &str, about: &str) -> String {
    let c = &state.config;
    let mut args = String::new();
    let lldp = humantime::parse_duration(&c.agent_lldp_wait).unwrap_or_default();
    if !lldp.is_zero() {
        args.push_str(&format!(" tundra.lldp_wait={}", lldp.as_secs_f64()));
    }
    if !c.agent_kernel_args.is_empty() {
        args.push_str(&format!(" {}", c.agent_kernel_args));
    }
    format!(
        "#!ipxe\n\
         # tundrad: {about}\n\
         kernel {base}/boot/assets/{kernel} initrd={initrd} tundra.api={base} tundra.token={token} BOOTIF=01-{bootif}{args}\n\
         initrd {base}/boot/assets/{initrd}\n\
         boot\n",
        kernel = c.agent_kernel,
        initrd = c.agent_initrd,
        bootif = mac.replace(':', "-"),
    )
}

/// What the agent's inventory and the rules' outcome make of a machine:
/// (properties, interfaces, traits), keeping what an operator set.
fn facts_to_machine(
    props: &Value,
    interfaces: &[Interface],
    traits: &[String],
    inv: &Value,
    outcome: &tundra_engine::inspection::Outcome,
) -> (Value, Vec<Interface>, Vec<String>) {
    let mut props = props.as_object().cloned().unwrap_or_default();
    for key in ["cpus", "cpu_model", "memory_mib", "serial", "system_vendor", "system_product"] {
        if let Some(v) = inv.get(key) {
            props.insert(key.into(), v.clone());
        }
    }
    let disks: Vec<Value> = inv["disks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| json!({"name": d["name"], "size_bytes": d["size_bytes"], "rotational": d["rotational"]}))
                .collect()
        })
        .unwrap_or_default();
    props.insert("disks".into(), Value::Array(disks));
    let gpus = inv["gpus"].as_array().cloned().unwrap_or_default();
    props.insert("gpus".into(), json!(gpus.len()));
    props.insert("inspected_at".into(), json!(tundra_store::now()));
    props.insert("inspection_rules_applied".into(), json!(outcome.applied));
    for (k, v) in &outcome.properties {
        props.insert(k.clone(), v.clone());
    }
    // Interfaces: keep what an operator set, add every Ethernet NIC the agent saw.
    let mut interfaces = interfaces.to_vec();
    for nic in inv["nics"].as_array().into_iter().flatten() {
        let Some(mac) = nic["mac"].as_str().map(str::to_ascii_lowercase) else { continue };
        if mac.len() != 17 {
            continue; // InfiniBand hardware addresses are not MACs.
        }
        if !interfaces.iter().any(|i| i.mac == mac) {
            interfaces.push(Interface {
                mac,
                physical_network: None,
                switch: None,
                port: None,
                pxe: false,
                address: None,
            });
        }
    }
    for o in &outcome.interfaces {
        if let Some(i) = interfaces.iter_mut().find(|i| i.mac == o.mac) {
            if o.physical_network.is_some() {
                i.physical_network = o.physical_network.clone();
            }
            if o.switch.is_some() {
                i.switch = o.switch.clone();
                i.port = o.port.clone();
            }
        }
    }
    let mut traits = traits.to_vec();
    traits.retain(|t| !outcome.traits_removed.contains(t));
    for t in &outcome.traits_added {
        if !traits.contains(t) {
            traits.push(t.clone());
        }
    }
    traits.sort();
    (Value::Object(props), interfaces, traits)
}

fn facts(inv: &Value, name: Option<&str>, location: &tundra_api::machines::Location) -> Value {
    let mut facts = inv.clone();
    if let Some(o) = facts.as_object_mut() {
        o.insert("name".into(), json!(name));
        o.insert("location".into(), serde_json::to_value(location).unwrap_or_default());
    }
    facts
}

/// Turn the agent's inventory into the machine's properties and interfaces,
/// then let the site's inspection rules name and classify it.
async fn apply_inventory(state: &AppState, m: &Machine, inv: &Value) -> Result<(), String> {
    let outcome = tundra_engine::inspection::evaluate(&state.inspection_rules, &facts(inv, Some(&m.name), &m.location));
    let (props, interfaces, traits) = facts_to_machine(&m.properties, &m.interfaces, &m.traits, inv, &outcome);
    let changes = MachineChanges {
        name: outcome.name.clone(),
        resource_class: outcome.resource_class.clone(),
        traits: Some(traits),
        properties: Some(props),
        interfaces: Some(interfaces),
        ..Default::default()
    };
    state.store.update_machine(&Actor::service(), m.id, changes, None).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Discovery: enroll the machine whose agent booted from `mac` and reported
/// `inv`, with the BMC the rules name and the site's discovery password,
/// then verify its BMC (`manage`).
pub async fn enroll_discovered(state: &AppState, mac: &str, inv: &Value) -> Result<Machine, String> {
    let outcome = tundra_engine::inspection::evaluate(
        &state.inspection_rules,
        &facts(inv, None, &tundra_api::machines::Location::default()),
    );
    let bmc = outcome.bmc.clone().ok_or_else(|| {
        format!(
            "no inspection rule names a BMC (set_bmc) for the machine that booted from {mac} (serial {}); add one and boot it again",
            inv["serial"].as_str().unwrap_or("unknown")
        )
    })?;
    let driver = if bmc.driver == "redfish" { BmcDriver::Redfish } else { BmcDriver::Ipmi };
    let settings = tundra_api::machines::BmcSettings {
        driver,
        address: bmc.address,
        system: None,
        username: bmc.username,
        insecure: false,
    };
    validate_bmc(&settings).map_err(|e| format!("the BMC the rules name is not usable: {e}"))?;
    let file = state.config.discovery.bmc_password_file.as_ref().ok_or("discovery has no bmc_password_file")?;
    let password = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let name = outcome.name.clone().unwrap_or_else(|| format!("discovered-{}", mac.replace(':', "")));
    crate::routes::check_name("/name", &name).map_err(|e| format!("the rules named the machine {name:?}: {e}"))?;
    let boot_if =
        Interface { mac: mac.into(), physical_network: None, switch: None, port: None, pxe: true, address: None };
    let (properties, interfaces, traits) = facts_to_machine(&json!({}), &[boot_if], &[], inv, &outcome);
    let secret = state
        .keyring
        .seal(tundra_api::SecretId::generate(), &crate::secrets::Plaintext(password.trim().as_bytes().to_vec()));
    let m = state
        .store
        .create_machine(
            &Actor::service(),
            tundra_store::NewMachine {
                name,
                resource_class: outcome.resource_class.clone().unwrap_or_else(|| "baremetal".into()),
                traits,
                properties,
                location: Default::default(),
                bmc: settings,
                interfaces,
                secret,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(machine = %m.name, %mac, "enrolled a discovered machine; verifying its BMC");
    start_action(state, &Actor::service(), &m, "manage", None).await.map_err(|e| e.to_string())?;
    Ok(m)
}
