//! Hardware facts from the kernel's view of the machine: CPUs and memory from
//! `/proc`, disks, NICs and GPUs from `/sys`. `root` is `/` on a machine; tests
//! point it at a directory shaped like one.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// From DMI (`/sys/class/dmi/id`), when the platform has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_product: Option<String>,
    pub cpus: u32,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
    pub rotational: bool,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    /// Link speed in Mbit/s, when the link is up and the driver says.
    pub speed_mbps: Option<u32>,
    pub carrier: bool,
    /// `ether` or `infiniband` (ARPHRD 1 / 32).
    pub kind: String,
    /// The switch port it is cabled to, when LLDP was listened for and heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lldp: Option<crate::lldp::Lldp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub pci_address: String,
    pub vendor: String,
    pub device_id: String,
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Collect the inventory under `root`.
pub fn collect(root: &Path) -> std::io::Result<Inventory> {
    let cpuinfo = fs::read_to_string(root.join("proc/cpuinfo"))?;
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count() as u32;
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let meminfo = fs::read_to_string(root.join("proc/meminfo"))?;
    let memory_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dmi = |f: &str| {
        read(&root.join("sys/class/dmi/id").join(f))
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("to be filled by o.e.m."))
    };
    Ok(Inventory {
        serial: dmi("product_serial"),
        system_vendor: dmi("sys_vendor"),
        system_product: dmi("product_name"),
        cpus,
        cpu_model,
        memory_mib: memory_kib / 1024,
        disks: disks(root),
        nics: nics(root),
        gpus: gpus(root),
    })
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn disks(root: &Path) -> Vec<Disk> {
    let base = root.join("sys/block");
    entries(&base)
        .into_iter()
        // Not disks a machine deploys onto: loop devices, RAM disks, zram, device-mapper, optical.
        .filter(|n| !["loop", "ram", "zram", "dm-", "sr", "md"].iter().any(|p| n.starts_with(p)))
        .filter_map(|name| {
            let d = base.join(&name);
            let sectors: u64 = read(&d.join("size"))?.parse().ok()?;
            (sectors > 0).then(|| Disk {
                size_bytes: sectors * 512,
                rotational: read(&d.join("queue/rotational")).as_deref() == Some("1"),
                model: read(&d.join("device/model")).filter(|m| !m.is_empty()),
                name,
            })
        })
        .collect()
}

fn nics(root: &Path) -> Vec<Nic> {
    let base = root.join("sys/class/net");
    entries(&base)
        .into_iter()
        .filter_map(|name| {
            let d = base.join(&name);
            let kind = match read(&d.join("type")).as_deref() {
                Some("1") => "ether",
                Some("32") => "infiniband",
                _ => return None, // loopback, tunnels…
            };
            let mac = read(&d.join("address"))?;
            if mac == "00:00:00:00:00:00" {
                return None;
            }
            Some(Nic {
                speed_mbps: read(&d.join("speed"))
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|s| *s > 0)
                    .map(|s| s as u32),
                carrier: read(&d.join("carrier")).as_deref() == Some("1"),
                kind: kind.into(),
                mac,
                name,
                lldp: None,
            })
        })
        .collect()
}

fn gpus(root: &Path) -> Vec<Gpu> {
    let base = root.join("sys/bus/pci/devices");
    entries(&base)
        .into_iter()
        .filter_map(|addr| {
            let d = base.join(&addr);
            let class = read(&d.join("class"))?;
            // 0x0300xx VGA, 0x0302xx 3D controller (most datacenter GPUs).
            if !(class.starts_with("0x0300") || class.starts_with("0x0302")) {
                return None;
            }
            let vendor = match read(&d.join("vendor"))?.as_str() {
                "0x10de" => "nvidia",
                "0x1002" => "amd",
                "0x8086" => "intel",
                _ => "other",
            };
            Some(Gpu {
                pci_address: addr,
                vendor: vendor.into(),
                device_id: read(&d.join("device")).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, p: &str, v: &str) {
        let f = root.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, v).unwrap();
    }

    #[test]
    fn reads_a_machine_shaped_tree() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(
            r,
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: AMD EPYC 7713\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7713\n",
        );
        write(r, "proc/meminfo", "MemTotal:       263921664 kB\nMemFree: 1 kB\n");
        write(r, "sys/block/nvme0n1/size", "7501476528\n");
        write(r, "sys/block/nvme0n1/queue/rotational", "0\n");
        write(r, "sys/block/nvme0n1/device/model", "SAMSUNG MZQL27T6HBLA\n");
        write(r, "sys/block/loop0/size", "100\n");
        write(r, "sys/class/net/eno1/type", "1\n");
        write(r, "sys/class/net/eno1/address", "b8:59:9f:10:20:30\n");
        write(r, "sys/class/net/eno1/speed", "25000\n");
        write(r, "sys/class/net/eno1/carrier", "1\n");
        write(r, "sys/class/net/ib0/type", "32\n");
        write(r, "sys/class/net/ib0/address", "00:00:10:29:fe:80:00:00:00:00:00:00:b8:59:9f:03:00:aa:bb:cc\n");
        write(r, "sys/class/net/lo/type", "772\n");
        write(r, "sys/bus/pci/devices/0000:41:00.0/class", "0x030200\n");
        write(r, "sys/bus/pci/devices/0000:41:00.0/vendor", "0x10de\n");
        write(r, "sys/bus/pci/devices/0000:41:00.0/device", "0x20b5\n");
        write(r, "sys/bus/pci/devices/0000:00:01.0/class", "0x060400\n");
        write(r, "sys/class/dmi/id/product_serial", "CZ2041\n");
        write(r, "sys/class/dmi/id/sys_vendor", "HPE\n");
        write(r, "sys/class/dmi/id/product_name", "To Be Filled By O.E.M.\n");
        let inv = collect(r).unwrap();
        assert_eq!(inv.serial.as_deref(), Some("CZ2041"));
        assert_eq!(inv.system_vendor.as_deref(), Some("HPE"));
        assert_eq!(inv.system_product, None, "placeholder DMI text is no fact");
        assert_eq!(inv.cpus, 2);
        assert_eq!(inv.cpu_model, "AMD EPYC 7713");
        assert_eq!(inv.memory_mib, 257736);
        assert_eq!(
            inv.disks,
            vec![Disk {
                name: "nvme0n1".into(),
                size_bytes: 7501476528 * 512,
                rotational: false,
                model: Some("SAMSUNG MZQL27T6HBLA".into())
            }]
        );
        assert_eq!(inv.nics.len(), 2);
        assert_eq!(inv.nics[0].speed_mbps, Some(25000));
        assert_eq!(inv.nics[1].kind, "infiniband");
        assert_eq!(
            inv.gpus,
            vec![Gpu { pci_address: "0000:41:00.0".into(), vendor: "nvidia".into(), device_id: "0x20b5".into() }]
        );
    }

    #[test]
    fn reads_this_machine() {
        let inv = collect(Path::new("/")).unwrap();
        assert!(inv.cpus >= 1 && inv.memory_mib > 0, "{inv:?}");
    }
}
