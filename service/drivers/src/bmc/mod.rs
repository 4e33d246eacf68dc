//! Baseboard management controllers: power and boot device.
//!
//! [`Bmc`] is the interface; [`Redfish`] and [`Ipmi`] speak to real BMCs (and
//! to sushy-tools and pyghmi in tests); [`Fake`] is for unit tests of callers.
//! [`Driver`] picks one at run time from a machine's BMC settings.
//! Power changes are asynchronous on real BMCs (seconds, sometimes tens):
//! [`Bmc::set_power`] asks and then polls until the machine reports the state.

mod fake;
mod ipmi;
mod redfish;

use std::future::Future;
use std::time::Duration;

pub use fake::Fake;
pub use ipmi::Ipmi;
pub use redfish::{Redfish, Trust};

use crate::retry::Transient;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    /// Immediate power off.
    Off,
    /// Ask the OS to shut down (ACPI); may not happen.
    SoftOff,
    /// Immediate reset (power cycle if off).
    Reboot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// A BMC password; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What went wrong talking to a BMC. Messages say what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BmcError {
    #[error("BMC {address} is unreachable: {detail}; check the address, the BMC network and that the BMC is up")]
    Unreachable { address: String, detail: String },
    #[error("BMC {address} refused the credentials; check the username and password")]
    Unauthorized { address: String },
    #[error("BMC {address} answered {status}: {detail}")]
    Refused { address: String, status: u16, detail: String },
    #[error("BMC {address} did not reach power {wanted:?} within {waited:?}; it may be stuck — check its event log")]
    PowerTimeout { address: String, wanted: PowerState, waited: Duration },
    #[error("BMC {address}: {detail}")]
    Protocol { address: String, detail: String },
    #[error("invalid BMC settings: {0}")]
    Invalid(String),
}

impl Transient for BmcError {
    fn is_transient(&self) -> bool {
        match self {
            BmcError::Unreachable { .. } => true,
            BmcError::Refused { status, .. } => *status >= 500 || *status == 409 || *status == 429,
            _ => false,
        }
    }
}

/// Power and boot control of one machine.
pub trait Bmc: Send + Sync {
    /// Cheap local checks of the settings (no network).
    fn validate(&self) -> Result<(), BmcError>;
    fn power_state(&self) -> impl Future<Output = Result<PowerState, BmcError>> + Send;
    /// Request a power action without waiting for it to land.
    fn request_power(&self, action: PowerAction) -> impl Future<Output = Result<(), BmcError>> + Send;
    /// Boot from `device` next time (`persistent`: every time).
    fn set_boot_device(
        &self,
        device: BootDevice,
        persistent: bool,
    ) -> impl Future<Output = Result<(), BmcError>> + Send;
    /// The BMC's address, for messages.
    fn address(&self) -> String;

    /// Perform `action` and wait (polling every `poll`) until the machine
    /// reports the resulting state, at most `timeout`.
    fn set_power(
        &self,
        action: PowerAction,
        poll: Duration,
        timeout: Duration,
    ) -> impl Future<Output = Result<PowerState, BmcError>> + Send {
        async move {
            let wanted = match action {
                PowerAction::On | PowerAction::Reboot => PowerState::On,
                PowerAction::Off | PowerAction::SoftOff => PowerState::Off,
            };
            if action != PowerAction::Reboot && self.power_state().await? == wanted {
                return Ok(wanted);
            }
            self.request_power(action).await?;
            let start = tokio::time::Instant::now();
            // Read at once (emulators and the fake land there), then every `poll`.
            loop {
                if self.power_state().await? == wanted {
                    return Ok(wanted);
                }
                if start.elapsed() >= timeout {
                    return Err(BmcError::PowerTimeout { address: self.address(), wanted, waited: timeout });
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// A BMC chosen at run time.
#[derive(Debug, Clone)]
pub enum Driver {
    Redfish(Redfish),
    Ipmi(Ipmi),
    Fake(Fake),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Driver::Redfish($b) => $e,
            Driver::Ipmi($b) => $e,
            Driver::Fake($b) => $e,
        }
    };
}

impl Bmc for Driver {
    fn validate(&self) -> Result<(), BmcError> {
        each!(self, b => b.validate())
    }
    async fn power_state(&self) -> Result<PowerState, BmcError> {
        each!(self, b => b.power_state().await)
    }
    async fn request_power(&self, action: PowerAction) -> Result<(), BmcError> {
        each!(self, b => b.request_power(action).await)
    }
    async fn set_boot_device(&self, device: BootDevice, persistent: bool) -> Result<(), BmcError> {
        each!(self, b => b.set_boot_device(device, persistent).await)
    }
    fn address(&self) -> String {
        each!(self, b => b.address())
    }
}
