//! IPMI 2.0 over LAN (lanplus) through `ipmitool`, the tool every BMC vendor
//! tests against. The password goes through the environment (`-E`), never the
//! command line, so it does not show in `ps`.

use std::time::Duration;

use super::{Bmc, BmcError, BootDevice, Password, PowerAction, PowerState};
use crate::retry::Backoff;

/// An IPMI BMC.
#[derive(Debug, Clone)]
pub struct Ipmi {
    host: String,
    port: u16,
    username: String,
    password: Password,
    backoff: Backoff,
    /// The ipmitool binary (default `ipmitool` on PATH).
    pub ipmitool: String,
}

impl Ipmi {
    /// `address` is `HOST` or `HOST:PORT` (default port 623).
    pub fn new(address: &str, username: &str, password: Password, backoff: Backoff) -> Result<Ipmi, BmcError> {
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse()
                    .map_err(|_| BmcError::Invalid(format!("IPMI address {address:?}: port {p:?} is not a number")))?,
            ),
            _ => (address.to_string(), 623),
        };
        if host.is_empty() {
            return Err(BmcError::Invalid("an IPMI BMC needs an address".into()));
        }
        Ok(Ipmi { host, port, username: username.into(), password, backoff, ipmitool: "ipmitool".into() })
    }

    async fn run(&self, args: &[&str]) -> Result<String, BmcError> {
        self.backoff
            .run(args.first().copied().unwrap_or("ipmitool"), || async {
                match self.run_once(args).await {
                    // A stale answer (a session message delayed past its
                    // retransmission) fails ipmitool's RAKP 2 check just as
                    // a wrong password does: a refusal counts when it comes
                    // twice. Never more: BMCs lock accounts out.
                    Err(BmcError::Unauthorized { .. }) => self.run_once(args).await,
                    r => r,
                }
            })
            .await
    }

    async fn run_once(&self, args: &[&str]) -> Result<String, BmcError> {
        let mut cmd = tokio::process::Command::new(&self.ipmitool);
        cmd.args([
            "-I",
            "lanplus",
            "-H",
            &self.host,
            "-p",
            &self.port.to_string(),
            "-U",
            &self.username,
            "-E",
            // Each RMCP+ message waits 2 s for its answer and is sent up to
            // four times: a session is half a dozen round trips, so with one
            // datagram in five lost (either way) two tries would leave one
            // invocation in two failing. A BMC that is away fails in 8 s.
            "-N",
            "2",
            "-R",
            "3",
        ])
        .args(args)
        .env("IPMI_PASSWORD", &self.password.0)
        .kill_on_drop(true);
        // Half a dozen messages of up to four 2 s tries each: a session on a
        // lossy network may take most of a minute.
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| BmcError::Unreachable { address: self.address(), detail: "ipmitool took over 60 s".into() })?
            .map_err(|e| BmcError::Invalid(format!("running {} (install Debian's ipmitool): {e}", self.ipmitool)))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(classify(self.address(), &stderr, stdout))
    }
}

/// What a failed ipmitool run means. ipmitool words a request that got no
/// answer (lost on the way) as "Unable to …" or "Error setting/getting …"
/// with no completion code, and often adds "Close Session command failed";
/// an answer the BMC refused carries the code ("… failed: Invalid data field
/// in request"). The first kind is worth another try, and so is the code
/// that says the BMC is busy (0xC0, "Node busy"). Lines about the session's
/// edges — "Close Session command failed…", and "Unable to Get Channel
/// Cipher Suites", which ipmitool prints on every run against BMCs that
/// ignore that request — say nothing about the command itself.
fn classify(address: String, stderr: &str, stdout: String) -> BmcError {
    let lower = stderr.to_ascii_lowercase();
    let about_command: Vec<&str> = lower
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("close session command failed")
                && !l.starts_with("unable to get channel cipher suites")
        })
        .collect();
    let refused = about_command.iter().any(|l| l.contains(" failed: ") && !l.contains("node busy"));
    let busy = about_command.iter().any(|l| l.contains("node busy"));
    let unanswered = about_command
        .iter()
        .any(|l| l.starts_with("unable to ") || l.starts_with("error setting") || l.starts_with("error getting"))
        || lower.contains("close session command failed");
    if lower.contains("unauthorized name")
        || lower.contains("rakp 2 hmac is invalid")
        || lower.contains("invalid user name")
    {
        BmcError::Unauthorized { address }
    } else if lower.contains("unable to establish")
        || lower.contains("no response")
        || lower.contains("no valid response")
        || lower.contains("timeout")
    {
        // Many BMCs stay silent on a bad password, so this is also what
        // wrong credentials look like.
        BmcError::Unreachable {
            address,
            detail: format!("no IPMI session ({stderr}); if the BMC is up, check the username and password"),
        }
    } else if !refused && (busy || unanswered) {
        BmcError::Unreachable { address, detail: format!("the BMC did not answer ({})", stderr.replace('\n', "; ")) }
    } else {
        BmcError::Protocol { address, detail: if stderr.is_empty() { stdout } else { stderr.to_string() } }
    }
}

impl Bmc for Ipmi {
    fn validate(&self) -> Result<(), BmcError> {
        if self.username.is_empty() {
            return Err(BmcError::Invalid("an IPMI BMC needs a username".into()));
        }
        Ok(())
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let out = self.run(&["power", "status"]).await?;
        // "Chassis Power is on"
        match out.trim().rsplit(' ').next() {
            Some("on") => Ok(PowerState::On),
            Some("off") => Ok(PowerState::Off),
            _ => Err(BmcError::Protocol { address: self.address(), detail: format!("unexpected answer {out:?}") }),
        }
    }

    async fn request_power(&self, action: PowerAction) -> Result<(), BmcError> {
        let verb = match action {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::SoftOff => "soft",
            PowerAction::Reboot => "reset",
        };
        self.run(&["power", verb]).await?;
        Ok(())
    }

    async fn set_boot_device(&self, device: BootDevice, persistent: bool) -> Result<(), BmcError> {
        let dev = match device {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        };
        if persistent {
            self.run(&["chassis", "bootdev", dev, "options=persistent"]).await?;
        } else {
            self.run(&["chassis", "bootdev", dev]).await?;
        }
        Ok(())
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let p = || Password("x".into());
        assert_eq!(Ipmi::new("10.0.0.5", "u", p(), Backoff::default()).unwrap().address(), "10.0.0.5:623");
        assert_eq!(Ipmi::new("127.0.0.1:9623", "u", p(), Backoff::default()).unwrap().address(), "127.0.0.1:9623");
        assert!(Ipmi::new("h:x", "u", p(), Backoff::default()).is_err());
        assert_eq!(format!("{:?}", p()), "Password(<redacted>)");
    }

    #[test]
    fn lost_answers_are_retried_and_refusals_are_not() {
        use crate::retry::Transient;
        let c = |stderr: &str| classify("bmc:623".into(), stderr, String::new());
        // What ipmitool said when the chaos suite's proxy lost its datagrams.
        for lost in [
            "Error setting Chassis Boot Parameter 4\nClose Session command failed",
            "Unable to set Chassis Power Control to Up/On",
            "Unable to get Chassis Power Status\nClose Session command failed",
            "Unable to Get Channel Cipher Suites\nError setting Chassis Boot Parameter 4\nClose Session command failed",
            "Error setting Chassis Boot Parameter 5\nClose Session command failed: Invalid data field in request",
            "Set Chassis Power Control to Down/Off failed: Node busy",
        ] {
            assert!(c(lost).is_transient(), "{lost}: {:?}", c(lost));
        }
        for refused in [
            "Set Chassis Boot Parameter 5 failed: Invalid data field in request",
            // ipmitool ≥ 1.8.19 against a BMC that ignores the cipher-suite request.
            "Unable to Get Channel Cipher Suites\nSet Chassis Power Control to Up/On failed: Insufficient privilege level",
            "Set Chassis Boot Parameter 5 failed: Invalid data field in request\nClose Session command failed: Node busy",
            "Set Chassis Power Control to Up/On failed: Insufficient privilege level\nClose Session command failed",
        ] {
            assert!(!c(refused).is_transient(), "{refused}: {:?}", c(refused));
        }
        assert!(matches!(
            c("Error in open session response message : invalid user name"),
            BmcError::Unauthorized { .. }
        ));
    }
}
