//! The operations that need only the BMC: `manage` (the BMC answers with
//! these credentials: `verifying` → `manageable`) and power actions (the
//! provision state stays as it is).

use tundra_api::machines::PowerAction;
use tundra_api::{MachineId, OperationId};
use tundra_drivers::bmc::{self as drv, Bmc};
use tundra_engine::machine_states::{Described, Event, next};
use tundra_store::PowerObservation;

use crate::bmc::{driver, power, power_str};
use crate::handle::{Conductor, WorkResult};

/// Run a BMC-only operation on machine `id`: `action` is the power action,
/// or `None` to verify the BMC (`manage`).
pub async fn run(c: &Conductor, op: OperationId, id: MachineId, action: Option<PowerAction>) -> WorkResult {
    let m = c.store().machine(&id.to_string()).await.map_err(|e| e.to_string())?;
    let result = async {
        let d = driver(c, &m, c.settings().bmc_retry).await?;
        match action {
            None => {
                let p = d.power_state().await.map_err(|e| e.to_string())?;
                let _ = c.store().observe_power(m.id, PowerObservation::Answered(power_str(p)), None).await;
                Ok(())
            }
            Some(a) => power(c, &m, &d, driver_action(a)).await,
        }
    }
    .await;
    let here = c.store().machine(&id.to_string()).await.map_err(|e| e.to_string())?.provision_state;
    let to = match (&result, action) {
        // A power action leaves the provision state as it was; so does
        // `manage` from a failed state, which goes straight to `manageable`
        // (the BMC check is then a check only, its error recorded).
        (_, Some(_)) => here,
        (_, None) if !here.is_transient() => here,
        (Ok(()), None) => next(here, Event::Done).map_err(|e| e.to_string())?,
        (Err(_), None) => next(here, Event::Fail).map_err(|e| e.to_string())?,
    };
    c.store().machine_step(id, op, to, result.clone().err(), true).await.map_err(|e| e.to_string())?;
    result
}

pub(crate) fn driver_action(a: PowerAction) -> drv::PowerAction {
    match a {
        PowerAction::PowerOn => drv::PowerAction::On,
        PowerAction::PowerOff => drv::PowerAction::Off,
        PowerAction::SoftPowerOff => drv::PowerAction::SoftOff,
        PowerAction::Reboot => drv::PowerAction::Reboot,
    }
}
