//! LLDP neighbours: which switch port each NIC is cabled to. Switches send
//! an LLDP frame (ethertype 0x88cc, to 01:80:c2:00:00:0e) on every port every
//! few seconds; the agent listens on a raw packet socket for up to `wait` and
//! decodes the first frame seen on each interface: chassis ID, port ID, port
//! description, system name (IEEE 802.1AB TLVs 1, 2, 4, 5).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const ETH_P_LLDP: u16 = 0x88cc;

/// What a NIC's LLDP neighbour says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lldp {
    pub chassis_id: Option<String>,
    pub port_id: Option<String>,
    pub port_description: Option<String>,
    pub system_name: Option<String>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim_end_matches('\0').trim().to_string()
}

fn mac(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Decode an Ethernet frame carrying LLDP; None if it is not one.
pub fn parse_frame(frame: &[u8]) -> Option<Lldp> {
    if frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != ETH_P_LLDP {
        return None;
    }
    let mut out = Lldp::default();
    let mut rest = &frame[14..];
    while rest.len() >= 2 {
        let head = u16::from_be_bytes([rest[0], rest[1]]);
        let (kind, len) = (head >> 9, usize::from(head & 0x1ff));
        let value = rest.get(2..2 + len)?;
        rest = &rest[2 + len..];
        // Chassis and port IDs start with a subtype; 4 (chassis) / 3 (port) is a MAC.
        match (kind, value.split_first()) {
            (0, _) => break,
            (1, Some((4, v))) if v.len() == 6 => out.chassis_id = Some(mac(v)),
            (1, Some((_, v))) => out.chassis_id = Some(text(v)),
            (2, Some((3, v))) if v.len() == 6 => out.port_id = Some(mac(v)),
            (2, Some((_, v))) => out.port_id = Some(text(v)),
            (4, _) => out.port_description = Some(text(value)),
            (5, _) => out.system_name = Some(text(value)),
            _ => {}
        }
    }
    (out.chassis_id.is_some() || out.port_id.is_some()).then_some(out)
}

/// Listen for up to `wait` (stopping early once every interface in `names`
/// has a neighbour); returns interface name → neighbour. Interfaces are
/// matched by index through `/sys/class/net/NAME/ifindex` of the running
/// kernel. Needs CAP_NET_RAW.
pub fn listen(names: &[String], wait: Duration) -> std::io::Result<HashMap<String, Lldp>> {
    use nix::sys::socket::{AddressFamily, LinkAddr, SockFlag, SockProtocol, SockType, recvfrom, socket};
    let mut found = HashMap::new();
    if names.is_empty() || wait.is_zero() {
        return Ok(found);
    }
    let index: HashMap<usize, String> = names
        .iter()
        .filter_map(|n| {
            let i = std::fs::read_to_string(format!("/sys/class/net/{n}/ifindex")).ok()?;
            Some((i.trim().parse().ok()?, n.clone()))
        })
        .collect();
    let fd = socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::EthAll)
        .map_err(std::io::Error::from)?;
    let start = Instant::now();
    let mut buf = vec![0u8; 9216];
    while start.elapsed() < wait && found.len() < index.len() {
        let left = wait.saturating_sub(start.elapsed()).max(Duration::from_millis(10));
        let tv = nix::sys::time::TimeVal::new(left.as_secs() as _, left.subsec_micros() as _);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(std::io::Error::from)?;
        let (n, from) = match recvfrom::<LinkAddr>(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buf) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let (Some(from), Some(l)) = (from, parse_frame(&buf[..n])) else { continue };
        if let Some(name) = index.get(&from.ifindex()) {
            found.entry(name.clone()).or_insert(l);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut out = ((kind << 9) | v.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn frames_decode_into_neighbours() {
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xcc];
        f.extend(tlv(1, &[4, 0xb8, 0x59, 0x9f, 0x10, 0x20, 0x30]));
        f.extend(tlv(2, b"\x07TenGigabitEthernet 1/0/7"));
        f.extend(tlv(3, &[0, 120]));
        f.extend(tlv(4, b"server r12-07 eth0"));
        f.extend(tlv(5, b"leaf-r12-a"));
        f.extend(tlv(0, b""));
        let l = parse_frame(&f).unwrap();
        assert_eq!(l.chassis_id.as_deref(), Some("b8:59:9f:10:20:30"));
        assert_eq!(l.port_id.as_deref(), Some("TenGigabitEthernet 1/0/7"));
        assert_eq!(l.port_description.as_deref(), Some("server r12-07 eth0"));
        assert_eq!(l.system_name.as_deref(), Some("leaf-r12-a"));
        // Not LLDP, or truncated: nothing.
        let mut ip = f.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(parse_frame(&ip).is_none());
        assert!(parse_frame(&f[..20]).is_none(), "a TLV cut short");
    }
}
