//! The layer-2 and layer-3 objects and their rules: physical networks
//! (segment ranges, the provisioning segment), networks (a segment of one),
//! subnets (`tundra_engine::ipam`; the overlap check runs inside the
//! store's insert) and ports (addresses asked for must be host addresses of
//! their subnet). Names and access are the caller's to check.

use tundra_api::fabric::{
    FabricKind, FixedIp, Network, NetworkCreate, PhysicalNetwork, PhysicalNetworkCreate, Port, PortCreate, Subnet,
    SubnetCreate,
};
use tundra_store::{Actor, NewNetwork, NewPhysicalNetwork, NewPort, NewSubnet, SegmentChoice};

use crate::error::{Error, Result};
use crate::handle::Conductor;

/// Add a physical network: a segment range within the kind's limits, and
/// for ethernet a provisioning VLAN outside it (projects must never get it).
pub async fn create_physical_network(
    c: &Conductor,
    actor: &Actor,
    r: PhysicalNetworkCreate,
) -> Result<PhysicalNetwork> {
    let (lo, hi) = r.kind.segment_limits();
    let [a, b] = r.segment_range;
    if a < lo || b > hi || a > b {
        return Err(Error::invalid(
            "/segment_range",
            format!("[{a}, {b}] is not a range within {lo}–{hi} for {}", r.kind.as_str()),
        ));
    }
    match (r.kind, r.provisioning_segment) {
        (FabricKind::Ethernet, None) => {
            return Err(Error::invalid(
                "/provisioning_segment",
                "an ethernet physical network needs the VLAN its ports sit on while machines deploy or are cleaned",
            ));
        }
        (FabricKind::Ethernet, Some(p)) if !(1..=4094).contains(&p) || (a..=b).contains(&p) => {
            return Err(Error::invalid(
                "/provisioning_segment",
                format!("{p}: a VLAN 1–4094 outside segment_range [{a}, {b}] (projects must never get it)"),
            ));
        }
        (FabricKind::Infiniband, Some(_)) => {
            return Err(Error::invalid(
                "/provisioning_segment",
                "InfiniBand ports are not switch-programmed; leave it out",
            ));
        }
        _ => {}
    }
    let mtu = r.mtu.unwrap_or(match r.kind {
        FabricKind::Ethernet => 1500,
        FabricKind::Infiniband => 2044,
    });
    if !(68..=65520).contains(&mtu) {
        return Err(Error::invalid("/mtu", format!("{mtu}: an MTU 68–65520")));
    }
    let new = NewPhysicalNetwork {
        name: r.name,
        description: r.description,
        kind: r.kind,
        segment_range: r.segment_range,
        provisioning_segment: r.provisioning_segment,
        mtu,
    };
    Ok(c.store().create_physical_network(actor, new).await?)
}

/// Make a network: the next free segment of its physical network; only
/// site admins (`admin`) name a segment or make one flat.
pub async fn create_network(c: &Conductor, actor: &Actor, admin: bool, r: NetworkCreate) -> Result<Network> {
    let pn = c.store().physical_network(r.physical_network_id).await.map_err(|_| {
        Error::invalid("/physical_network_id", format!("no physical network {}", r.physical_network_id))
    })?;
    let segment = match (r.segment, r.flat) {
        (Some(_), true) => return Err(Error::invalid("/flat", "a flat network has no segment; leave one out")),
        (None, false) => SegmentChoice::Next,
        (_, flat) if !admin => {
            return Err(Error::invalid(
                if flat { "/flat" } else { "/segment" },
                "only site admins choose segments; leave it out to get the next free one",
            ));
        }
        (Some(s), _) => {
            let (lo, hi) = pn.kind.segment_limits();
            if !(lo..=hi).contains(&s) || Some(s) == pn.provisioning_segment {
                return Err(Error::invalid(
                    "/segment",
                    format!("{s}: a segment {lo}–{hi}, not the provisioning segment"),
                ));
            }
            SegmentChoice::Exactly(s)
        }
        (None, true) => SegmentChoice::Flat,
    };
    if let Some(m) = r.mtu
        && !(68..=pn.mtu).contains(&m)
    {
        return Err(Error::invalid("/mtu", format!("{m}: 68 up to the physical network's {}", pn.mtu)));
    }
    let new = NewNetwork {
        project_id: r.project_id,
        name: r.name,
        description: r.description,
        physical_network_id: pn.id,
        segment,
        mtu: r.mtu,
        quarantine_since: tundra_store::time_before(c.settings().segment_quarantine),
    };
    Ok(c.store().create_network(actor, new).await?)
}

/// Add a subnet to `net` (the caller checked the caller may): checked by
/// `tundra_engine::ipam`; an overlap with another subnet of the network is
/// refused inside the store's transaction (409, pointing at `/cidr`).
pub async fn create_subnet(c: &Conductor, actor: &Actor, net: &Network, r: SubnetCreate) -> Result<Subnet> {
    let plan = tundra_engine::ipam::subnet(&r.cidr, r.gateway.as_deref(), &r.dns, &r.allocation_pools)?;
    if r.dhcp && net.kind == FabricKind::Infiniband {
        return Err(Error::invalid(
            "/dhcp",
            "InfiniBand has no DHCP: addresses go to the config drive; leave dhcp off",
        ));
    }
    let new = NewSubnet {
        network_id: net.id,
        name: r.name,
        description: r.description,
        cidr: plan.cidr,
        gateway: r.gateway,
        dns: r.dns,
        allocation_pools: plan.pools,
        dhcp: r.dhcp,
    };
    Ok(c.store().create_subnet(actor, new).await?)
}

/// Make a port on a network its project may use; addresses asked for must
/// be host addresses of the network's subnets (never a gateway).
pub async fn create_port(c: &Conductor, actor: &Actor, r: PortCreate) -> Result<Port> {
    let store = c.store();
    let net = store.network(r.network_id).await.ok().filter(|n| n.project_id.is_none_or(|x| x == r.project_id));
    let net =
        net.ok_or_else(|| Error::invalid("/network_id", format!("no network {} the project may use", r.network_id)))?;
    for (i, f) in r.fixed_ips.iter().flatten().enumerate() {
        let s = store.subnet(f.subnet_id).await.ok().filter(|s| s.network_id == net.id).ok_or_else(|| {
            Error::invalid(
                &format!("/fixed_ips/{i}/subnet_id"),
                format!("no subnet {} of network {}", f.subnet_id, net.name),
            )
        })?;
        if let Some(a) = &f.address {
            let space = tundra_engine::ipam::SubnetSpace {
                cidr: &s.cidr,
                gateway: s.gateway.as_deref(),
                pools: &s.allocation_pools,
                dns: &s.dns,
            };
            tundra_engine::ipam::fixed_address(space, a)
                .map_err(|e| Error::invalid(&format!("/fixed_ips/{i}/address"), e))?;
        }
    }
    let new = NewPort {
        project_id: r.project_id,
        network_id: net.id,
        name: r.name,
        description: r.description,
        fixed_ips: r
            .fixed_ips
            .map(|v| v.into_iter().map(|f| FixedIp { subnet_id: f.subnet_id, address: f.address }).collect()),
    };
    Ok(store.create_port(actor, new).await?)
}
