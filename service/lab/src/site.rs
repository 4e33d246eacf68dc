//! The site file: what the lab builds. TOML, e.g.
//!
//! ```toml
//! [provisioning]
//! cidr = "10.211.7.0/24"          # optional; a free 10.x.y.0/24 otherwise
//!
//! [[machines]]
//! name = "rf-{n}"                  # {n} counts 1..=count
//! count = 4
//! bmc = "redfish"                  # or "ipmi"
//! cpus = 8
//! cpu_model = "Lab EPYC 7713"
//! memory_mib = 16384
//! disks = [{ name = "vda", size_mib = 256 }]
//! nics = 1
//! gpus = [{ vendor = "0x10de", device = "0x20b5" }]
//! rack = "r1"
//! island = "a"                     # racks on one fast fabric (placement locality)
//! ```

use std::net::Ipv4Addr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    #[serde(default)]
    pub provisioning: Provisioning,
    /// The switch the machines are cabled to (it speaks LLDP).
    #[serde(default)]
    pub switch: Switch,
    pub machines: Vec<MachineGroup>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioning {
    /// A /24 for the provisioning network; tundrad gets `.1`, the pool is `.100–.199`.
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Switch {
    /// The LLDP system name.
    pub name: String,
    /// The LLDP port ID of the N-th machine port (`{n}` counts from 1 in
    /// machine and NIC order), e.g. `TenGigabitEthernet 1/0/{n}`.
    pub port_id: String,
    /// A Linux switch tundrad programs over SSH (the `linux_bridge`
    /// dialect): OpenSSH in the fabric namespace at `A.B.C.2:22`, VLAN N is
    /// bridge `brN`, and LLDP port IDs are its port names (`m<K>p<J>`).
    pub ssh: bool,
    /// The VLAN of the provisioning network on the fabric (its bridge is
    /// `br<VLAN>`; every port starts there, like a switch's default VLAN).
    pub provisioning_vlan: u16,
}

impl Default for Switch {
    fn default() -> Self {
        Switch { name: "lab-leaf-1".into(), port_id: "Ethernet1/{n}".into(), ssh: false, provisioning_vlan: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BmcKind {
    Redfish,
    Ipmi,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineGroup {
    /// The machine's name; `{n}` is replaced by 1..=count.
    pub name: String,
    #[serde(default = "one")]
    pub count: u32,
    pub bmc: BmcKind,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default = "default_cpu_model")]
    pub cpu_model: String,
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    #[serde(default = "default_disks")]
    pub disks: Vec<DiskSpec>,
    /// NICs on the provisioning network (eth0, eth1, …).
    #[serde(default = "one")]
    pub nics: u32,
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
    #[serde(default)]
    pub rack: Option<String>,
    /// The island (racks on one fast fabric), for locality-aware placement.
    #[serde(default)]
    pub island: Option<String>,
    /// Boot a real QEMU (TCG) virtual machine with iPXE instead of the
    /// namespace firmware (the staging smoke tier).
    #[serde(default)]
    pub vm: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    pub name: String,
    pub size_mib: u64,
    #[serde(default)]
    pub rotational: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// PCI vendor ID, e.g. `0x10de`.
    pub vendor: String,
    pub device: String,
}

fn one() -> u32 {
    1
}
fn default_cpus() -> u32 {
    4
}
fn default_cpu_model() -> String {
    "Lab CPU".into()
}
fn default_memory() -> u64 {
    8192
}
fn default_disks() -> Vec<DiskSpec> {
    vec![DiskSpec { name: "vda".into(), size_mib: 64, rotational: false }]
}

/// One machine of the site, expanded from its group.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub name: String,
    pub bmc: BmcKind,
    pub cpus: u32,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub disks: Vec<DiskSpec>,
    pub macs: Vec<String>,
    pub gpus: Vec<GpuSpec>,
    pub rack: Option<String>,
    pub island: Option<String>,
    pub vm: bool,
}

impl Site {
    pub fn parse(text: &str) -> Result<Site, String> {
        let s: Site = toml::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for (i, g) in self.machines.iter().enumerate() {
            if g.count > 1 && !g.name.contains("{n}") {
                return Err(format!("machines[{i}]: count = {} needs {{n}} in the name {:?}", g.count, g.name));
            }
            if g.nics == 0 || g.nics > 8 {
                return Err(format!("machines[{i}]: nics must be 1..=8"));
            }
            for d in &g.disks {
                if d.name.is_empty() || !d.name.chars().all(|c| c.is_ascii_alphanumeric()) || d.size_mib == 0 {
                    return Err(format!("machines[{i}]: disk {:?} needs a plain name and a size", d.name));
                }
            }
            for n in 1..=g.count {
                let name = g.name.replace("{n}", &n.to_string());
                if !names.insert(name.clone()) {
                    return Err(format!("machines[{i}]: machine name {name:?} is used twice"));
                }
            }
        }
        if names.is_empty() {
            return Err("the site has no machines".into());
        }
        if names.len() > 250 {
            return Err(format!("{} machines: the lab holds at most 250", names.len()));
        }
        let lldp_ok = |v: &str| {
            !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !v.contains('"')
        };
        if !lldp_ok(&self.switch.name) || !lldp_ok(&self.switch.port_id) || !self.switch.port_id.contains("{n}") {
            return Err(
                "switch: name and port_id must be 1–64 printable characters without quotes; port_id needs {n}".into()
            );
        }
        if !(1..=4094).contains(&self.switch.provisioning_vlan) {
            return Err(format!("switch: provisioning_vlan {} is not a VLAN 1–4094", self.switch.provisioning_vlan));
        }
        if let Some(c) = &self.provisioning.cidr {
            cidr24(c)?;
        }
        Ok(())
    }

    /// Every machine, with MACs `52:54:00:LL:MM:NN` (LL = lab byte, MM = machine, NN = NIC).
    pub fn expand(&self, lab_byte: u8) -> Vec<MachineSpec> {
        let mut out = Vec::new();
        for g in &self.machines {
            for n in 1..=g.count {
                let k = out.len();
                out.push(MachineSpec {
                    name: g.name.replace("{n}", &n.to_string()),
                    bmc: g.bmc,
                    cpus: g.cpus,
                    cpu_model: g.cpu_model.clone(),
                    memory_mib: g.memory_mib,
                    disks: g.disks.clone(),
                    macs: (0..g.nics).map(|j| format!("52:54:{lab_byte:02x}:{:02x}:{k:02x}:{j:02x}", k >> 8)).collect(),
                    gpus: g.gpus.clone(),
                    rack: g.rack.clone(),
                    island: g.island.clone(),
                    vm: g.vm,
                });
            }
        }
        out
    }
}

/// The network part of `A.B.C.0/24`.
pub fn cidr24(c: &str) -> Result<[u8; 3], String> {
    let bad = || format!("provisioning.cidr {c:?} must be a /24 like 10.211.7.0/24");
    let (ip, len) = c.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    if len != "24" || ip.octets()[3] != 0 {
        return Err(bad());
    }
    let o = ip.octets();
    Ok([o[0], o[1], o[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_with_distinct_names_and_macs() {
        let s = Site::parse(
            "[[machines]]\nname = \"rf-{n}\"\ncount = 3\nbmc = \"redfish\"\nnics = 2\n\n[[machines]]\nname = \"ipmi-1\"\nbmc = \"ipmi\"\n",
        )
        .unwrap();
        let m = s.expand(0xab);
        assert_eq!(m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["rf-1", "rf-2", "rf-3", "ipmi-1"]);
        assert_eq!(m[1].macs, ["52:54:ab:00:01:00", "52:54:ab:00:01:01"]);
        assert_eq!(m[3].bmc, BmcKind::Ipmi);
        assert_eq!(m[3].disks[0].name, "vda");
    }

    #[test]
    fn mistakes_are_named() {
        let e = Site::parse("[[machines]]\nname = \"rf\"\ncount = 2\nbmc = \"redfish\"\n").unwrap_err();
        assert!(e.contains("{n}"), "{e}");
        let e = Site::parse("[[machines]]\nname = \"a\"\nbmc = \"ilo\"\n").unwrap_err();
        assert!(e.contains("ilo"), "{e}");
        let e = Site::parse("[provisioning]\ncidr = \"10.0.0.0/16\"\n[[machines]]\nname = \"a\"\nbmc = \"ipmi\"\n")
            .unwrap_err();
        assert!(e.contains("/24"), "{e}");
    }
}
