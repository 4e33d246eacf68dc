//! A machine's BMC: the driver for its settings, with its password opened
//! from the sealed secret — here and nowhere else — and powering it with
//! what the BMC says recorded on the machine.

use std::sync::Arc;
use std::time::Duration;

use tundra_api::machines::{BmcDriver, BmcSettings, Machine};
use tundra_drivers::bmc::{Bmc, BmcError, Driver, Fake, Ipmi, Password, PowerAction, PowerState, Redfish, Trust};
use tundra_drivers::retry::Backoff;
use tundra_store::PowerObservation;

use crate::handle::{BmcMaker, Conductor};

/// The real drivers: Redfish over HTTPS, IPMI through `ipmitool`, and the
/// `fake` driver (no hardware; tundrad enrolls such machines only with
/// `fake_hardware` on).
pub fn real() -> BmcMaker {
    Arc::new(build)
}

fn build(b: &BmcSettings, password: Password, backoff: Backoff) -> Result<Driver, BmcError> {
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
        BmcDriver::Fake => Driver::Fake(Fake::at(&b.address)),
    })
}

/// Check BMC settings without touching the network.
pub fn validate(b: &BmcSettings) -> Result<(), String> {
    let d = build(b, Password(String::new()), Backoff::default()).map_err(|e| e.to_string())?;
    d.validate().map_err(|e| e.to_string())
}

/// The driver for a machine, with its password.
pub async fn driver(c: &Conductor, m: &Machine, backoff: Backoff) -> Result<Driver, String> {
    let secret = c.store().machine_secret(m.id).await.map_err(|e| e.to_string())?;
    let plain = c.keyring().get(c.store(), secret).await.map_err(|e| e.to_string())?;
    let password =
        Password(String::from_utf8(plain.0).map_err(|_| "the stored BMC password is not UTF-8".to_string())?);
    (c.bmc_maker())(&m.bmc, password, backoff).map_err(|e| e.to_string())
}

pub fn power_str(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "on",
        PowerState::Off => "off",
    }
}

/// Power a machine and wait until the BMC says it is done; record what it says.
pub async fn power(c: &Conductor, m: &Machine, d: &Driver, a: PowerAction) -> Result<(), String> {
    let p = d.set_power(a, Duration::from_secs(1), Duration::from_secs(180)).await.map_err(|e| e.to_string())?;
    let _ = c.store().observe_power(m.id, PowerObservation::Answered(power_str(p)), None).await;
    Ok(())
}
