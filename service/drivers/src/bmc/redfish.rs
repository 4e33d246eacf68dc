//! Redfish (DMTF DSP0266) over HTTPS with basic authentication: the
//! ComputerSystem's `PowerState`, the `ComputerSystem.Reset` action and the
//! `Boot` override. Transport errors and 5xx answers are retried with
//! backoff; 401/403 are not (wrong credentials do not get better).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Bmc, BmcError, BootDevice, Password, PowerAction, PowerState};
use crate::retry::Backoff;

/// How to trust the BMC's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Publicly trusted (the platform's roots).
    Platform,
    /// Signed by this PEM CA.
    Ca(String),
    /// BMCs with self-signed certificates (common): no verification.
    Insecure,
}

/// A Redfish BMC.
#[derive(Debug, Clone)]
pub struct Redfish {
    /// `https://10.0.0.5` (or `http://` for emulators).
    base: String,
    /// `/redfish/v1/Systems/<id>`; found by listing Systems when `None` and there is one.
    system: Option<String>,
    username: String,
    password: Password,
    http: reqwest::Client,
    backoff: Backoff,
}

impl Redfish {
    pub fn new(
        address: &str,
        system: Option<&str>,
        username: &str,
        password: Password,
        trust: Trust,
        backoff: Backoff,
    ) -> Result<Redfish, BmcError> {
        let base = address.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(BmcError::Invalid(format!(
                "Redfish address {address:?} must start with https:// (or http://)"
            )));
        }
        // A request that gets no answer in 30 s is asked again: one timeout
        // must leave `bmc_retry_window` (60 s by default) room for more
        // attempts, or one swallowed request fails the operation.
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3));
        b = match trust {
            Trust::Platform => b,
            Trust::Ca(pem) => b.tls_certs_only(
                reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| BmcError::Invalid(format!("BMC CA certificate: {e}")))?,
            ),
            Trust::Insecure => b.tls_danger_accept_invalid_certs(true),
        };
        let http = b.build().map_err(|e| BmcError::Invalid(e.to_string()))?;
        let system =
            system.map(|s| if s.starts_with('/') { s.to_string() } else { format!("/redfish/v1/Systems/{s}") });
        Ok(Redfish { base, system, username: username.into(), password, http, backoff })
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, BmcError> {
        let url = format!("{}{path}", self.base);
        self.backoff
            .run(path, || async {
                let mut req =
                    self.http.request(method.clone(), &url).basic_auth(&self.username, Some(&self.password.0));
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| BmcError::Unreachable { address: self.base.clone(), detail: e.to_string() })?;
                let status = resp.status();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| BmcError::Unreachable { address: self.base.clone(), detail: e.to_string() })?;
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    return Err(BmcError::Unauthorized { address: self.base.clone() });
                }
                if !status.is_success() {
                    return Err(BmcError::Refused {
                        address: self.base.clone(),
                        status: status.as_u16(),
                        detail: redfish_message(&bytes),
                    });
                }
                Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
            })
            .await
    }

    async fn system_path(&self) -> Result<String, BmcError> {
        if let Some(s) = &self.system {
            return Ok(s.clone());
        }
        let list = self.call(Method::GET, "/redfish/v1/Systems", None).await?;
        let members: Vec<&str> =
            list["Members"].as_array().into_iter().flatten().filter_map(|m| m["@odata.id"].as_str()).collect();
        match members.as_slice() {
            [one] => Ok(one.trim_end_matches('/').to_string()),
            [] => Err(BmcError::Protocol { address: self.base.clone(), detail: "the BMC lists no systems".into() }),
            many => Err(BmcError::Invalid(format!(
                "the BMC at {} manages {} systems ({}); say which with the system setting",
                self.base,
                many.len(),
                many.join(", ")
            ))),
        }
    }
}

/// The human part of a Redfish error body (`error.@Message.ExtendedInfo[].Message` or `error.message`).
fn redfish_message(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let ext: Vec<&str> = v["error"]["@Message.ExtendedInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["Message"].as_str())
        .collect();
    if !ext.is_empty() {
        return ext.join("; ");
    }
    v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(200).collect())
}

impl Bmc for Redfish {
    fn validate(&self) -> Result<(), BmcError> {
        if self.username.is_empty() {
            return Err(BmcError::Invalid("a Redfish BMC needs a username".into()));
        }
        Ok(())
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let sys = self.call(Method::GET, &self.system_path().await?, None).await?;
        match sys["PowerState"].as_str() {
            Some("On") | Some("PoweringOff") => Ok(PowerState::On),
            Some("Off") | Some("PoweringOn") => Ok(PowerState::Off),
            other => Err(BmcError::Protocol {
                address: self.base.clone(),
                detail: format!("unexpected PowerState {other:?}"),
            }),
        }
    }

    async fn request_power(&self, action: PowerAction) -> Result<(), BmcError> {
        let reset = match action {
            PowerAction::On => "On",
            PowerAction::Off => "ForceOff",
            PowerAction::SoftOff => "GracefulShutdown",
            PowerAction::Reboot => "ForceRestart",
        };
        let path = format!("{}/Actions/ComputerSystem.Reset", self.system_path().await?);
        self.call(Method::POST, &path, Some(&json!({"ResetType": reset}))).await?;
        Ok(())
    }

    async fn set_boot_device(&self, device: BootDevice, persistent: bool) -> Result<(), BmcError> {
        let target = match device {
            BootDevice::Pxe => "Pxe",
            BootDevice::Disk => "Hdd",
        };
        let enabled = if persistent { "Continuous" } else { "Once" };
        let body = json!({"Boot": {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}});
        self.call(Method::PATCH, &self.system_path().await?, Some(&body)).await?;
        Ok(())
    }

    fn address(&self) -> String {
        self.base.clone()
    }
}

impl Redfish {
    /// The boot override target the BMC reports (for checks and inspection).
    pub async fn boot_override(&self) -> Result<Option<String>, BmcError> {
        let sys = self.call(Method::GET, &self.system_path().await?, None).await?;
        Ok(sys["Boot"]["BootSourceOverrideTarget"].as_str().map(String::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_redfish_body() {
        let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"general","@Message.ExtendedInfo":[{"Message":"The request failed due to an internal service error."}]}}"#;
        assert_eq!(redfish_message(body), "The request failed due to an internal service error.");
        assert_eq!(redfish_message(br#"{"error":{"message":"nope"}}"#), "nope");
        assert!(
            Redfish::new("10.0.0.1", None, "u", Password("p".into()), Trust::Platform, Backoff::default()).is_err()
        );
    }
}
