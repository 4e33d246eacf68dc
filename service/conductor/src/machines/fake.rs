//! The fake hardware's agent: for a machine with the `fake` BMC driver there
//! is nothing to boot, so the conductor records at once what an agent on it
//! would report — an inventory made from what the machine's record already
//! says, every disk erased and read back as zero, the image written with the
//! checksum asked for. Everything after the report (inventory applied,
//! power, boot device, switch ports, timeouts) runs as for real hardware,
//! which is what benchmarks and dry runs measure.

use serde_json::{Value, json};
use tundra_api::agent::{Command, Report};
use tundra_api::machines::{BmcDriver, Machine};

use crate::machines::inventory;

/// The disk a fake machine has when its record names none: 480 GB, SSD.
const DISK: (&str, u64) = ("sda", 480_103_981_056);

/// Whether `m` is driven without hardware.
pub fn is_fake(m: &Machine) -> bool {
    m.bmc.driver == BmcDriver::Fake
}

/// The report an agent on `m` would make for `cmd`.
pub fn report(m: &Machine, cmd: &Command) -> Option<Report> {
    let details = match cmd {
        Command::Inspect { .. } => inventory_of(m),
        Command::Erase { disks, .. } => {
            let known = inventory::disks(m);
            let names: Vec<(String, Option<u64>)> = if disks.is_empty() {
                vec![(DISK.0.into(), Some(DISK.1))]
            } else {
                disks.iter().map(|d| (d.clone(), known.iter().find(|(n, _)| n == d).and_then(|(_, s)| *s))).collect()
            };
            let per_disk: serde_json::Map<String, Value> = names
                .into_iter()
                .map(|(name, size)| {
                    (name, json!({"method": "fake", "verified_zero": true, "size_bytes": size.unwrap_or(DISK.1)}))
                })
                .collect();
            Value::Object(per_disk)
        }
        Command::WriteImage { sha256, size_bytes, disk, config_drive, .. } => json!({
            "bytes": size_bytes,
            "sha256": sha256,
            "disk": disk,
            "config_drive": config_drive.is_some(),
        }),
        Command::Wait { .. } | Command::Exit => return None,
    };
    Some(Report { id: cmd.id()?.to_string(), ok: true, error: None, details })
}

/// An inventory from the machine's own record: its properties where set,
/// one NIC per interface, one disk when it names none.
fn inventory_of(m: &Machine) -> Value {
    let p = &m.properties;
    let disks = match p["disks"].as_array() {
        Some(d) if !d.is_empty() => Value::Array(d.clone()),
        _ => json!([{"name": DISK.0, "size_bytes": DISK.1, "rotational": false}]),
    };
    let nics: Vec<Value> =
        m.interfaces.iter().map(|i| json!({"name": format!("eth-{}", i.mac), "mac": i.mac})).collect();
    json!({
        "cpus": p.get("cpus").cloned().unwrap_or(json!(8)),
        "cpu_model": p.get("cpu_model").cloned().unwrap_or(json!("fake")),
        "memory_mib": p.get("memory_mib").cloned().unwrap_or(json!(32768)),
        "serial": m.name,
        "system_vendor": "Tundra",
        "system_product": "fake hardware",
        "disks": disks,
        "nics": nics,
        "gpus": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(props: Value) -> Machine {
        serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "name": "f1",
            "resource_class": "baremetal",
            "traits": [],
            "properties": props,
            "location": {},
            "bmc": {"driver": "fake", "address": "f1", "username": "u"},
            "interfaces": [{"mac": "02:00:00:00:00:01", "pxe": true}],
            "provision_state": "inspecting",
            "power_state": "off",
            "maintenance": false,
            "maintenance_reason": null,
            "maintenance_by": null,
            "last_error": null,
            "operation_id": null,
            "revision": 1,
            "created_at": "2026-12-04T00:00:00Z",
            "updated_at": "2026-12-04T00:00:00Z"
        }))
        .expect("a machine")
    }

    #[test]
    fn reports_what_an_agent_would() {
        let m = machine(json!({"cpus": 64}));
        let r = report(&m, &Command::Inspect { id: "op-inspecting".into() }).unwrap();
        assert_eq!(r.id, "op-inspecting");
        assert_eq!(r.details["cpus"], 64, "the record's properties win");
        assert_eq!(r.details["disks"][0]["name"], DISK.0);
        assert_eq!(r.details["nics"][0]["mac"], "02:00:00:00:00:01");

        let m = machine(json!({"disks": [{"name": "nvme0n1", "size_bytes": 1000, "rotational": false}]}));
        let r = report(&m, &Command::Erase { id: "e".into(), disks: vec!["nvme0n1".into()] }).unwrap();
        assert_eq!(r.details["nvme0n1"], json!({"method": "fake", "verified_zero": true, "size_bytes": 1000}));
        assert!(report(&m, &Command::Exit).is_none());
    }
}
