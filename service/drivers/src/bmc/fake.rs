//! The fake BMC: in memory, no hardware. tundrad drives machines enrolled
//! with the `fake` driver through it (benchmarks and dry runs, like Ironic's
//! `fake-hardware`): one BMC per address for the life of the process, power
//! landing at once, every machine off at start. Unit tests of code that
//! drives BMCs make their own, with power landing after a set number of
//! polls and failures scripted.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::{Bmc, BmcError, BootDevice, PowerAction, PowerState};

#[derive(Debug, Default)]
struct Inner {
    power: Option<PowerState>,
    pending: Option<(PowerState, u32)>,
    boot: Option<(BootDevice, bool)>,
    fail_next: u32,
    calls: Vec<String>,
}

/// Shared, so a test keeps a handle to inspect and script it.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    inner: Arc<Mutex<Inner>>,
    /// Polls before a requested power state lands.
    pub lag: u32,
    address: String,
}

/// The fake BMCs of this process, by address.
static SITE: LazyLock<Mutex<HashMap<String, Fake>>> = LazyLock::new(Mutex::default);

impl Fake {
    pub fn new(lag: u32) -> Fake {
        Fake { inner: Default::default(), lag, address: "fake".into() }
    }

    /// The fake BMC at `address`: the same one every time in this process,
    /// so a machine's power state outlives the driver value built per call.
    pub fn at(address: &str) -> Fake {
        let mut site = SITE.lock().expect("fake site lock");
        site.entry(address.to_string())
            .or_insert_with(|| Fake { inner: Default::default(), lag: 0, address: address.to_string() })
            .clone()
    }
    /// The next `n` calls fail as an unreachable BMC.
    pub fn fail_next(&self, n: u32) {
        self.inner.lock().expect("fake lock").fail_next = n;
    }
    pub fn boot_device(&self) -> Option<(BootDevice, bool)> {
        self.inner.lock().expect("fake lock").boot
    }
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().expect("fake lock").calls.clone()
    }
    fn enter(&self, call: &str) -> Result<std::sync::MutexGuard<'_, Inner>, BmcError> {
        let mut g = self.inner.lock().expect("fake lock");
        g.calls.push(call.into());
        if g.fail_next > 0 {
            g.fail_next -= 1;
            return Err(BmcError::Unreachable { address: self.address.clone(), detail: "scripted failure".into() });
        }
        Ok(g)
    }
}

impl Bmc for Fake {
    fn validate(&self) -> Result<(), BmcError> {
        if self.address.trim().is_empty() {
            return Err(BmcError::Invalid("a fake BMC still needs an address, any name unique to the machine".into()));
        }
        Ok(())
    }
    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let mut g = self.enter("power_state")?;
        if let Some((state, left)) = g.pending {
            if left == 0 {
                g.power = Some(state);
                g.pending = None;
            } else {
                g.pending = Some((state, left - 1));
            }
        }
        Ok(g.power.unwrap_or(PowerState::Off))
    }
    async fn request_power(&self, action: PowerAction) -> Result<(), BmcError> {
        let lag = self.lag;
        let mut g = self.enter(&format!("request_power {action:?}"))?;
        let target = match action {
            PowerAction::On | PowerAction::Reboot => PowerState::On,
            PowerAction::Off | PowerAction::SoftOff => PowerState::Off,
        };
        g.pending = Some((target, lag));
        Ok(())
    }
    async fn set_boot_device(&self, device: BootDevice, persistent: bool) -> Result<(), BmcError> {
        self.enter("set_boot_device")?.boot = Some((device, persistent));
        Ok(())
    }
    fn address(&self) -> String {
        self.address.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn set_power_polls_until_the_state_lands_or_times_out() {
        let f = Fake::new(3);
        let s = f.set_power(PowerAction::On, Duration::from_secs(1), Duration::from_secs(10)).await.unwrap();
        assert_eq!(s, PowerState::On);
        // Already on: no request.
        let before = f.calls().len();
        f.set_power(PowerAction::On, Duration::from_secs(1), Duration::from_secs(10)).await.unwrap();
        assert_eq!(f.calls().len(), before + 1, "one state read, no request");
        let slow = Fake::new(100);
        let e = slow.set_power(PowerAction::On, Duration::from_secs(1), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, BmcError::PowerTimeout { wanted: PowerState::On, .. }), "{e}");
        assert!(e.to_string().contains("within 5s"), "{e}");
    }
}
