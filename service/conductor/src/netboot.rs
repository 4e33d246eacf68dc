//! What the DHCP servers on the provisioning networks must know: which MACs
//! belong to enrolled machines (only those get answers, unless discovery is
//! on), and which addresses are reserved — interfaces' fixed addresses under
//! the machine's name, nodes' addresses under the node's name.

use std::collections::{HashMap, HashSet};

use tundra_boot::dhcp::Reservation;

use crate::error::Result;
use crate::handle::Conductor;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Known {
    pub macs: HashSet<String>,
    pub reservations: HashMap<String, Reservation>,
}

/// Read what DHCP must know now: machines' names and interfaces, and the
/// addresses of nodes that hold a machine (not whole rows: this runs on
/// every change that moves a MAC or an address).
pub async fn known(c: &Conductor) -> Result<Known> {
    let nodes = c.store().held_node_addresses().await?;
    let machines = c.store().machine_nics().await?;
    let macs = machines.iter().flat_map(|m| m.interfaces.iter().map(|i| i.mac.clone())).collect();
    let fixed = machines.iter().flat_map(|m| {
        m.interfaces.iter().filter_map(|i| {
            let ip = i.address.as_deref()?.parse().ok()?;
            Some((i.mac.clone(), Reservation { ip, hostname: Some(m.name.clone()) }))
        })
    });
    let held = nodes.iter().flat_map(|(name, addresses)| {
        addresses.iter().filter_map(|a| {
            let ip = a.address.as_deref()?.parse().ok()?;
            Some((a.mac.clone(), Reservation { ip, hostname: Some(name.clone()) }))
        })
    });
    Ok(Known { macs, reservations: fixed.chain(held).collect() })
}
