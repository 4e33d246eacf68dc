//! What a project may read about the machine under its node: what went
//! wrong, but nothing that names the machine, its BMC or its cabling —
//! those are for site admins. Texts a project sees (a node's
//! `status_reason`, its operations' message and error) pass through
//! [`redact`] with the machine they are about.

use tundra_api::machines::Machine;

/// `text` with the machine's name and ID, its BMC's address, host, user
/// and system, and its switches and ports replaced by what they are.
pub fn redact(text: &str, m: &Machine) -> String {
    let mut pairs: Vec<(String, &str)> = vec![
        (format!("machine {}", m.name), "its machine"),
        (format!("machine {}", m.id), "its machine"),
        (m.id.to_string(), "its machine"),
        (m.name.clone(), "its machine"),
    ];
    let bmc = &m.bmc;
    pairs.push((bmc.address.clone(), "its BMC"));
    let host = bmc.address.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    pairs.push((host.to_string(), "its BMC"));
    if let Some((h, _port)) = host.rsplit_once(':') {
        pairs.push((h.to_string(), "its BMC"));
    }
    if let Some(s) = &bmc.system {
        pairs.push((s.clone(), "its BMC system"));
    }
    pairs.push((bmc.username.clone(), "the BMC user"));
    for i in &m.interfaces {
        if let Some(s) = &i.switch {
            pairs.push((s.clone(), "its switch"));
        }
        if let Some(p) = &i.port {
            pairs.push((p.clone(), "its port"));
        }
    }
    // Longest first, so a host is not cut out of its address; very short
    // strings (a user "u") would garble the text, and say little.
    pairs.retain(|(s, _)| s.len() >= 3);
    pairs.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for (s, with) in pairs {
        out = out.replace(&s, with);
    }
    out
}

#[cfg(test)]
mod tests {
    use tundra_api::machines::{BmcDriver, BmcSettings, Interface, Location, ProvisionState};

    use super::*;

    #[test]
    fn names_addresses_and_cabling_are_replaced() {
        let m = Machine {
            id: tundra_api::MachineId::generate(),
            name: "rack7-n12".into(),
            resource_class: "baremetal".into(),
            traits: vec![],
            properties: serde_json::json!({}),
            location: Location::default(),
            bmc: BmcSettings {
                driver: BmcDriver::Redfish,
                address: "https://10.20.0.12:8443".into(),
                system: Some("/redfish/v1/Systems/1".into()),
                username: "root".into(),
                insecure: false,
            },
            interfaces: vec![Interface {
                mac: "52:54:00:00:00:01".into(),
                physical_network: None,
                switch: Some("leaf-r7".into()),
                port: Some("Te1/0/12".into()),
                pxe: true,
                address: None,
            }],
            provision_state: ProvisionState::DeployFailed,
            power_state: "off".into(),
            maintenance: false,
            maintenance_reason: None,
            maintenance_by: None,
            operation_id: None,
            last_error: None,
            revision: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let text = format!(
            "machine rack7-n12 ({}): HTTP 401 from https://10.20.0.12:8443/redfish/v1/Systems/1 as root; \
             10.20.0.12 unreachable; leaf-r7 refused Te1/0/12",
            m.id
        );
        let got = redact(&text, &m);
        for secret in ["rack7-n12", "10.20.0.12", "8443", "Systems/1", "root", "leaf-r7", "Te1/0/12", &m.id.to_string()]
        {
            assert!(!got.contains(secret), "{secret} in {got}");
        }
        assert!(got.starts_with("its machine (its machine): HTTP 401 from its BMC"), "{got}");
    }
}
