//! Discovery: a machine that network-booted with a MAC tundrad did not
//! know ran the agent; its report, through the inspection rules (which must
//! name its BMC), enrolls the machine with the site's discovery password,
//! and `manage` verifies its BMC.

use serde_json::{Value, json};
use tundra_api::machines::{BmcDriver, BmcSettings, Interface, Location, Machine};
use tundra_store::{Actor, NewMachine};

use crate::handle::Conductor;
use crate::machines::actions::{self, Action};
use crate::machines::inventory::{facts, facts_to_machine};
use crate::secrets::Plaintext;

/// Discovery: enroll the machine whose agent booted from `mac` and reported
/// `inv`, with the BMC the rules name and the site's discovery password,
/// then verify its BMC (`manage`).
pub async fn enroll(c: &Conductor, mac: &str, inv: &Value) -> Result<Machine, String> {
    let outcome =
        tundra_engine::inspection::evaluate(&c.settings().inspection_rules, &facts(inv, None, &Location::default()));
    let bmc = outcome.bmc.clone().ok_or_else(|| {
        format!(
            "no inspection rule names a BMC (set_bmc) for the machine that booted from {mac} (serial {}); add one and boot it again",
            inv["serial"].as_str().unwrap_or("unknown")
        )
    })?;
    let driver = if bmc.driver == "redfish" { BmcDriver::Redfish } else { BmcDriver::Ipmi };
    let settings = BmcSettings { driver, address: bmc.address, system: None, username: bmc.username, insecure: false };
    crate::bmc::validate(&settings).map_err(|e| format!("the BMC the rules name is not usable: {e}"))?;
    let file = c.settings().discovery.bmc_password_file.as_ref().ok_or("discovery has no bmc_password_file")?;
    let password = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let name = outcome.name.clone().unwrap_or_else(|| format!("discovered-{}", mac.replace(':', "")));
    tundra_engine::names::check(&name).map_err(|e| format!("the rules named the machine {name:?}: {e}"))?;
    let boot_if =
        Interface { mac: mac.into(), physical_network: None, switch: None, port: None, pxe: true, address: None };
    let (properties, interfaces, traits) = facts_to_machine(&json!({}), &[boot_if], &[], inv, &outcome);
    let secret = c.keyring().seal(tundra_api::SecretId::generate(), &Plaintext(password.trim().as_bytes().to_vec()));
    let m = c
        .store()
        .create_machine(
            &Actor::service(),
            NewMachine {
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
    let manage = Action::Verb(tundra_engine::machine_states::Event::Manage);
    actions::start(c, &Actor::service(), &m, manage, None).await.map_err(|e| e.to_string())?;
    Ok(m)
}
