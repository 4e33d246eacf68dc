//! The fabric's rules, pure: which machine interface carries each of a
//! node's networks, which segment every managed switch port should be in,
//! and whether a node's ports are ready for it to be active.
//!
//! The rule tundrad keeps (level-triggered, every pass): a switch port cabled
//! to a machine interface is in the segment of the node's network when the
//! node holding the machine is building or active *and* its machine is
//! deployed (`active`); in every other case — deploying, cleaning, free,
//! enrolled, failed — it is on its physical network's provisioning segment,
//! so a tenant network never reaches a machine another tenant's data may
//! still be on, and a deleted node's machine is cleaned off the tenant network.

use std::collections::BTreeMap;

use crate::machine_states::State;
use crate::nodes::Status;

/// A machine interface as binding sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iface<'a> {
    pub mac: &'a str,
    pub pxe: bool,
    pub physical_network: Option<&'a str>,
    pub switch: Option<&'a str>,
    pub port: Option<&'a str>,
}

/// One of a node's networks: its physical network, whether it is ethernet
/// (switch-programmed), and the interface it already has (kept on update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want<'a> {
    pub physical_network: &'a str,
    pub ethernet: bool,
    pub fixed_mac: Option<&'a str>,
}

/// The physical network an interface is on: its switch's (for a switch
/// tundrad knows), else what inspection or the operator recorded.
fn physnet_of<'a>(i: &Iface<'a>, switches: &BTreeMap<&str, &'a str>) -> Option<&'a str> {
    match i.switch.and_then(|s| switches.get(s)) {
        Some(p) => Some(*p),
        None => i.physical_network,
    }
}

/// Pick an interface per want, in order: kept ones stay; others take the
/// first free interface on the want's physical network that is not the
/// boot interface (which stays on provisioning) — for ethernet, one cabled
/// to a switch tundrad manages (`switches`: switch name → physical network).
/// Returns interface indexes, or why this machine cannot carry the networks.
pub fn bind(ifaces: &[Iface], wants: &[Want], switches: &BTreeMap<&str, &str>) -> Result<Vec<usize>, String> {
    let mut taken = vec![false; ifaces.len()];
    let mut out = vec![usize::MAX; wants.len()];
    for (k, w) in wants.iter().enumerate() {
        if let Some(mac) = w.fixed_mac {
            let i = ifaces.iter().position(|i| i.mac == mac).ok_or_else(|| format!("interface {mac} is gone"))?;
            taken[i] = true;
            out[k] = i;
        }
    }
    for (k, w) in wants.iter().enumerate().filter(|(_, w)| w.fixed_mac.is_none()) {
        let fits = |i: &Iface| {
            !i.pxe
                && physnet_of(i, switches) == Some(w.physical_network)
                && (!w.ethernet || (i.switch.is_some_and(|s| switches.contains_key(s)) && i.port.is_some()))
        };
        let i = (0..ifaces.len()).find(|&i| !taken[i] && fits(&ifaces[i])).ok_or_else(|| {
            let have = ifaces.iter().filter(|i| fits(i)).count();
            format!(
                "networks/{k}: it has {have} interface(s) on physical network {:?}{}, and the node's networks need more",
                w.physical_network,
                if w.ethernet { " cabled to a switch tundrad manages" } else { "" }
            )
        })?;
        taken[i] = true;
        out[k] = i;
    }
    Ok(out)
}

/// Whether a node's ports belong in their networks' segments now.
pub fn tenant_phase(node: Status, machine: State) -> bool {
    matches!(node, Status::Building | Status::Active) && machine == State::Active
}

/// The segment a managed switch port should be in: the network's during
/// the tenant phase, else the provisioning segment (`None`: leave it — a
/// physical network without one, or a flat network, has nowhere to put it).
pub fn desired_segment(tenant: Option<Option<u32>>, provisioning: Option<u32>) -> Option<u32> {
    match tenant {
        Some(segment) => segment,
        None => provisioning,
    }
}

/// A node port's switch state, as the activation gate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSeen {
    /// Wanted in `want`, the record says `desired` in `state`.
    Switch { want: u32, desired: u32, in_sync: bool, failed: Option<String> },
    /// No switch to program (InfiniBand, a flat network).
    Unmanaged,
}

/// Whether a node whose machine is deployed may be marked active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    Wait,
    Fail(String),
}

pub fn gate(ports: &[PortSeen]) -> Gate {
    for p in ports {
        if let PortSeen::Switch { want, desired, failed: Some(m), .. } = p
            && want == desired
        {
            return Gate::Fail(m.clone());
        }
    }
    let ready = ports.iter().all(|p| match p {
        PortSeen::Switch { want, desired, in_sync, .. } => want == desired && *in_sync,
        PortSeen::Unmanaged => true,
    });
    if ready { Gate::Open } else { Gate::Wait }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface<'a>(
        mac: &'a str,
        pxe: bool,
        switch: Option<&'a str>,
        port: Option<&'a str>,
        pn: Option<&'a str>,
    ) -> Iface<'a> {
        Iface { mac, pxe, physical_network: pn, switch, port }
    }

    #[test]
    fn binding_skips_the_boot_interface_and_unknown_switches() {
        let switches = BTreeMap::from([("leaf-1", "fabric")]);
        let ifaces = [
            iface("m0", true, Some("leaf-1"), Some("p1"), None),
            iface("m1", false, Some("other"), Some("p9"), Some("fabric")),
            iface("m2", false, Some("leaf-1"), Some("p2"), None),
            iface("m3", false, None, None, Some("ib0")),
        ];
        let eth = Want { physical_network: "fabric", ethernet: true, fixed_mac: None };
        let ib = Want { physical_network: "ib0", ethernet: false, fixed_mac: None };
        assert_eq!(bind(&ifaces, &[eth, ib], &switches), Ok(vec![2, 3]));
        let e = bind(&ifaces, &[eth, eth], &switches).unwrap_err();
        assert!(e.starts_with("networks/1: it has 1 interface(s) on physical network \"fabric\" cabled"), "{e}");
        // A kept interface stays, and the next want cannot take it.
        let kept = Want { fixed_mac: Some("m2"), ..eth };
        assert!(bind(&ifaces, &[eth, kept], &switches).is_err());
        assert_eq!(bind(&ifaces, &[kept], &switches), Ok(vec![2]));
    }

    #[test]
    fn ports_are_on_tenant_segments_only_while_the_node_holds_a_deployed_machine() {
        assert!(tenant_phase(Status::Building, State::Active));
        assert!(tenant_phase(Status::Active, State::Active));
        for s in [State::Deploying, State::DeployWait, State::Cleaning, State::Available] {
            assert!(!tenant_phase(Status::Building, s), "{s}");
        }
        for n in [Status::Deleting, Status::Error] {
            assert!(!tenant_phase(n, State::Active));
        }
        assert_eq!(desired_segment(Some(Some(12)), Some(100)), Some(12));
        assert_eq!(desired_segment(None, Some(100)), Some(100));
        assert_eq!(desired_segment(Some(None), Some(100)), None);
    }

    #[test]
    fn the_gate_opens_when_every_port_is_in_its_segment() {
        let ok = PortSeen::Switch { want: 12, desired: 12, in_sync: true, failed: None };
        let moving = PortSeen::Switch { want: 12, desired: 100, in_sync: true, failed: None };
        let pending = PortSeen::Switch { want: 12, desired: 12, in_sync: false, failed: None };
        let refused = PortSeen::Switch { want: 12, desired: 12, in_sync: false, failed: Some("no".into()) };
        let old_failure = PortSeen::Switch { want: 12, desired: 100, in_sync: false, failed: Some("old".into()) };
        assert_eq!(gate(&[ok.clone(), PortSeen::Unmanaged]), Gate::Open);
        assert_eq!(gate(&[ok.clone(), moving]), Gate::Wait);
        assert_eq!(gate(&[pending]), Gate::Wait);
        assert_eq!(gate(&[ok.clone(), refused]), Gate::Fail("no".into()));
        assert_eq!(gate(&[ok, old_failure]), Gate::Wait);
        assert_eq!(gate(&[]), Gate::Open);
    }
}
