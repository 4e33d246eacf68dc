//! `tundra-boot`: how machines network-boot from tundrad. `dhcp` answers
//! DHCP on the provisioning networks — reserved addresses for enrolled
//! machines, a pool for discovery, and the right boot file for each kind of
//! client (BIOS PXE, UEFI PXE, iPXE); `tftp` serves the iPXE binaries
//! read-only.

pub mod dhcp;
pub mod tftp;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Binding a boot-service socket failed.
#[derive(Debug, thiserror::Error)]
#[error("binding UDP port {port} on {interface}: {source}; ports below 1024 need root or CAP_NET_BIND_SERVICE")]
pub struct BindError {
    pub interface: String,
    pub port: u16,
    #[source]
    pub source: std::io::Error,
}

/// A non-blocking UDP socket on `0.0.0.0:port` (0: any), bound to
/// `interface` when given so replies leave through it, with broadcast
/// allowed — what DHCP, the TFTP listener and each TFTP transfer need.
pub fn bind_udp(interface: Option<&str>, port: u16) -> Result<std::net::UdpSocket, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| BindError { interface: interface.unwrap_or("any interface").into(), port, source };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.set_broadcast(true).map_err(err)?;
    if let Some(i) = interface {
        s.bind_device(Some(i.as_bytes())).map_err(err)?;
    }
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into()).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    Ok(s.into())
}
