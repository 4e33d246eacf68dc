//! The agent-driven operations — inspect, clean, deploy, delete (→ clean)
//! — as one loop that reads the machine's state and does that state's step:
//! open the agent session, PXE boot; wait for the agent's report (rebooting
//! a silent machine up to 3 times); finish (apply the inventory, power off,
//! or boot the disk). A restarted tundrad resumes where the store says the
//! machine is.

use std::time::Duration;

use serde_json::{Value, json};
use tundra_api::agent::Command;
use tundra_api::machines::Machine;
use tundra_api::ops::DeployImage;
use tundra_api::{MachineId, NodeId, OperationId};
use tundra_drivers::bmc::{Bmc, BootDevice, PowerAction, PowerState};
use tundra_engine::machine_states::{Described, Event, State, next};

use crate::bmc::{driver, power};
use crate::fabric::binding::Home;
use crate::handle::{Conductor, WorkResult};
use crate::machines::{fake, inventory};

/// What an agent-driven operation carries besides its machine.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub op: OperationId,
    pub machine: MachineId,
    /// A deploy's image, and the node it is for (whose config drive goes with it).
    pub deploy: Option<(&'a DeployImage, Option<NodeId>)>,
}

/// Run an agent-driven operation to its end; wakes the node reconciler
/// (a node may be waiting on the machine) whatever the outcome.
pub async fn run(c: &Conductor, job: Job<'_>) -> WorkResult {
    let r = drive(c, job).await;
    c.wakes().nodes.notify_one();
    r
}

/// The command the agent runs in a state that boots it.
async fn command_for(c: &Conductor, st: State, job: Job<'_>, m: &Machine) -> Result<Command, String> {
    let id = format!("{}-{}", job.op, st.as_str());
    Ok(match st {
        State::Inspecting => Command::Inspect { id },
        // Every disk inspection found (the report must account for each);
        // a machine never inspected: every disk the agent sees.
        State::Cleaning => {
            Command::Erase { id, disks: inventory::disks(m).into_iter().map(|(name, _)| name).collect() }
        }
        State::Deploying => {
            let disk = inventory::root_disk(m).ok_or_else(|| {
                format!(
                    "machine {} has no known disks; inspect it (or set properties.root_disk) before deploying",
                    m.name
                )
            })?;
            let (image, node) = job.deploy.ok_or("the deploy names no image")?;
            Command::WriteImage {
                id,
                url: tundra_api::paths::AGENT_IMAGE.into(),
                sha256: image.sha256.clone(),
                size_bytes: image.size_bytes,
                disk,
                config_drive: match node {
                    Some(n) => {
                        let node = c.store().node(n).await.map_err(|e| format!("the node being deployed: {e}"))?;
                        Some(crate::config_drive::drive(c, &node).await?)
                    }
                    None => None,
                },
            }
        }
        other => return Err(format!("{other} does not boot the agent")),
    })
}

/// Walk a machine through the agent-driven states of one operation
/// (inspect, clean, deploy, delete → clean). Each pass reads the machine's
/// state and does that state's step, so a restarted tundrad resumes exactly
/// where the store says the machine is — a waiting state just waits again
/// for the agent, which kept working meanwhile.
async fn drive(c: &Conductor, job: Job<'_>) -> WorkResult {
    let (op_id, id) = (job.op, job.machine);
    let mut last_progress = String::new();
    // A machine that does not bring the agent up (a missed DHCP answer, a
    // hung boot) is rebooted into it again, up to 3 times.
    let silence = c.settings().agent.boot_timeout;
    let mut boot_deadline = tokio::time::Instant::now() + silence;
    let mut reboots = 0;
    loop {
        let m = c.store().machine(&id.to_string()).await.map_err(|e| e.to_string())?;
        if m.operation_id != Some(op_id) {
            // Timeouts and aborts end the operation in the transaction that
            // takes its machine. A machine found free, in no failed state and
            // with no error, while its operation still runs, was freed by
            // this operation's own last step, whose process died before it
            // recorded the end (kill -9 between the two writes; the chaos
            // suite hit it): the operation succeeded. Anything else — another
            // operation on the machine, an error — fails it, as before.
            let failed = m.provision_state.as_str().ends_with("failed") || m.provision_state == State::Error;
            if m.operation_id.is_none() && m.last_error.is_none() && !failed && !m.provision_state.is_transient() {
                tracing::info!(machine = %m.name, "the operation's last step was done before a restart");
                let _ = c.store().close_agent_session(id, op_id).await;
                return Ok(());
            }
            return Err(m.last_error.unwrap_or_else(|| format!("machine {} left this operation", m.name)));
        }
        let st = m.provision_state;
        let step: Result<Option<State>, String> = match st {
            State::Deleting => {
                async {
                    let d = driver(c, &m, c.settings().bmc_retry).await?;
                    power(c, &m, &d, PowerAction::Off).await?;
                    Ok(Some(next(st, Event::Done).map_err(|e| e.to_string())?))
                }
                .await
            }
            State::Inspecting | State::Cleaning | State::Deploying => {
                async {
                    let cmd = command_for(c, st, job, &m).await?;
                    c.store()
                        .open_agent_session(m.id, op_id, &serde_json::to_value(&cmd).map_err(|e| e.to_string())?)
                        .await
                        .map_err(|e| e.to_string())?;
                    pxe_boot(c, &m, op_id).await?;
                    let _ = c.store().operation_progress(op_id, 0, None, "booting the agent").await;
                    if let Some(r) = fake::is_fake(&m).then(|| fake::report(&m, &cmd)).flatten() {
                        let value = serde_json::to_value(&r).map_err(|e| e.to_string())?;
                        c.store().agent_report(m.id, &r.id, true, &value).await.map_err(|e| e.to_string())?;
                    }
                    Ok(Some(next(st, Event::Wait).map_err(|e| e.to_string())?))
                }
                .await
            }
            State::InspectWait | State::CleanWait | State::DeployWait => {
                let s = c
                    .store()
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
                            pxe_boot(c, &m, op_id).await?;
                            boot_deadline = tokio::time::Instant::now() + silence;
                        }
                        let progress = s.progress.clone().unwrap_or_else(|| "waiting for the agent".into());
                        if progress != last_progress {
                            let _ = c.store().operation_progress(op_id, 0, None, &progress).await;
                            last_progress = progress;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Ok(None)
                    }
                    .await,
                    // Cleaning ends only with the disks erased and the switch
                    // ports back on the provisioning segment.
                    Some(report) if st == State::CleanWait && report["ok"] == json!(true) => {
                        async {
                            erased_every_disk(&m, &report["details"])?;
                            match crate::fabric::binding::machine_ports_home(c, &m).await.map_err(|e| e.to_string())? {
                                Home::Ready => finish_wait(c, &m, st, &report).await,
                                Home::Failed(why) => Err(why),
                                Home::Wait(why) => {
                                    if why != last_progress {
                                        let _ = c.store().operation_progress(op_id, 0, None, &why).await;
                                        last_progress = why;
                                    }
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                    Ok(None)
                                }
                            }
                        }
                        .await
                    }
                    Some(report) => finish_wait(c, &m, st, &report).await,
                }
            }
            other => Err(format!("machine {} is {other}, which this operation does not drive", m.name)),
        };
        match step {
            Ok(None) => continue,
            Ok(Some(to)) => {
                let done = !to.is_transient();
                c.store().machine_step(id, op_id, to, None, done).await.map_err(|e| e.to_string())?;
                if done {
                    c.store().close_agent_session(id, op_id).await.map_err(|e| e.to_string())?;
                    return Ok(());
                }
            }
            Err(e) => {
                // Leave the hardware off and the agent's token dead, then fail along the table.
                if let Ok(d) = driver(c, &m, c.settings().bmc_retry).await {
                    let _ = power(c, &m, &d, PowerAction::Off).await;
                }
                let _ = c.store().close_agent_session(id, op_id).await;
                let to = next(st, Event::Fail).map_err(|e| e.to_string())?;
                c.store().machine_step(id, op_id, to, Some(e.clone()), true).await.map_err(|e| e.to_string())?;
                return Err(e);
            }
        }
    }
}

/// The agent reported: finish the waiting state's work.
async fn finish_wait(c: &Conductor, m: &Machine, st: State, report: &Value) -> Result<Option<State>, String> {
    if report["ok"] != json!(true) {
        return Err(format!("the agent failed: {}", report["error"].as_str().unwrap_or("no reason given")));
    }
    let d = driver(c, m, c.settings().bmc_retry).await?;
    match st {
        State::InspectWait => {
            inventory::apply(c, m, &report["details"]).await?;
            power(c, m, &d, PowerAction::Off).await?;
        }
        State::CleanWait => {
            erased_every_disk(m, &report["details"])?;
            power(c, m, &d, PowerAction::Off).await?;
        }
        State::DeployWait => {
            d.set_boot_device(BootDevice::Disk, true).await.map_err(|e| e.to_string())?;
            power(c, m, &d, PowerAction::Reboot).await?;
        }
        _ => {}
    }
    Ok(Some(next(st, Event::Done).map_err(|e| e.to_string())?))
}

/// Cleaning is over only when the agent accounts for every disk inspection
/// found: each read back as zero, at the size inspection saw (a disk that
/// went missing or shrank is not "erased").
fn erased_every_disk(m: &Machine, details: &Value) -> Result<(), String> {
    let known = inventory::disks(m);
    // Never inspected: the agent erased every disk it saw; the report must
    // still name at least one, each read back as zero with its size.
    let reported: Vec<(String, Option<u64>)> = match details.as_object() {
        Some(o) if known.is_empty() => o.keys().map(|k| (k.clone(), None)).collect(),
        _ => known.clone(),
    };
    if reported.is_empty() {
        return Err("the agent's erase report names no disk; inspect the machine and provide it again".into());
    }
    for (name, size) in reported {
        let d = &details[name.as_str()];
        if d.is_null() {
            return Err(format!(
                "the agent's erase report does not account for disk {name}; the machine stays out of service"
            ));
        }
        if d["verified_zero"] != json!(true) {
            return Err(format!("disk {name} did not read back as zero after erasing"));
        }
        let Some(got) = d["size_bytes"].as_u64() else {
            return Err(format!("the erase report gives no size for disk {name}"));
        };
        if let Some(want) = size
            && want != got
        {
            return Err(format!("disk {name} erased {got} bytes, but inspection found {want}"));
        }
    }
    Ok(())
}

/// Boot a machine from the network once for operation `op`: arm its agent
/// session (the boot's one script may be served), PXE as the next boot
/// device, then power on — or reset, when it is already on.
async fn pxe_boot(c: &Conductor, m: &Machine, op: OperationId) -> Result<(), String> {
    if !c.store().arm_agent_boot(m.id, op).await.map_err(|e| e.to_string())? {
        return Err("the agent session is gone; start the action again".into());
    }
    let d = driver(c, m, c.settings().bmc_retry).await?;
    d.set_boot_device(BootDevice::Pxe, false).await.map_err(|e| e.to_string())?;
    let on = d.power_state().await.map_err(|e| e.to_string())? == PowerState::On;
    power(c, m, &d, if on { PowerAction::Reboot } else { PowerAction::On }).await
}
