//! A DHCPv4 server for provisioning networks (RFC 2131/2132, PXE per RFC
//! 4578), built on dhcproto.
//!
//! Enrolled machines get their reserved address; unknown MACs get one from
//! the discovery pool when there is one (and nothing otherwise — a production
//! network's other DHCP clients are not ours to answer). The boot file
//! depends on the client: iPXE (user class `iPXE`, or option 175) gets the
//! HTTP URL of its per-machine script; plain PXE firmware gets the iPXE binary
//! over TFTP — `snponly.efi` for UEFI (architecture 7, 9 or 16), `undionly.kpxe`
//! for BIOS.

mod leases;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
pub use leases::{Lease, Leases};

/// Boot files and where clients fetch them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// Base URL of tundrad's boot HTTP service, e.g. `http://10.0.0.1:8180`.
    pub http_base: String,
    /// TFTP server for the iPXE binaries (usually this server).
    pub tftp_server: Ipv4Addr,
    pub bios_file: String,
    pub efi_file: String,
}

/// One provisioning network's DHCP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server_ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Dynamic pool (inclusive); `None` answers only reserved MACs.
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Give pool addresses to any MAC (discovery of unknown machines); when
    /// false only known MACs (enrolled machines) get them.
    pub discovery: bool,
    pub lease_time: Duration,
    pub boot: BootConfig,
}

/// An address held for one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// How a client boots, from what it says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Ipxe,
    PxeEfi,
    PxeBios,
    /// An ordinary DHCP client (an OS booted from disk).
    Plain,
}

pub fn client_kind(msg: &Message) -> ClientKind {
    let opts = msg.opts();
    let user_class_ipxe =
        matches!(opts.get(OptionCode::UserClass), Some(DhcpOption::UserClass(u)) if u.windows(4).any(|w| w == b"iPXE"));
    let ipxe_encap = opts.get(OptionCode::Unknown(175)).is_some();
    if user_class_ipxe || ipxe_encap {
        return ClientKind::Ipxe;
    }
    if let Some(DhcpOption::ClientSystemArchitecture(a)) = opts.get(OptionCode::ClientSystemArchitecture) {
        return if matches!(a.0, 7 | 9 | 16) { ClientKind::PxeEfi } else { ClientKind::PxeBios };
    }
    if matches!(opts.get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(c)) if c.starts_with(b"PXEClient"))
    {
        return ClientKind::PxeBios;
    }
    ClientKind::Plain
}

pub fn mac_of(msg: &Message) -> String {
    msg.chaddr().iter().take(6).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The options this server reads, with the lengths each may have: every
/// other option is dropped before decoding (what is not read cannot hurt),
/// and one of these at a wrong length drops the packet.
fn option_fits(code: u8, len: usize) -> Option<bool> {
    Some(match code {
        53 => len == 1,                            // message type
        50 | 54 => len == 4,                       // requested address, server identifier
        93 => len >= 2 && len.is_multiple_of(2),   // client architectures
        60 | 77 | 175 => (1..=255).contains(&len), // vendor class, user class, iPXE encapsulated
        _ => return None,
    })
}

/// Decode a packet off the wire, or `None`. Only the options the server
/// reads reach the decoder, each checked for its length first: a stranger's
/// packet must never get to a decoder path that asserts (dhcproto 0.15
/// panics on some malformed options; `tundra-fuzz dhcp` found it).
pub fn decode(packet: &[u8]) -> Option<Message> {
    const HEADER: usize = 236;
    if packet.len() < HEADER + 4 || packet[HEADER..HEADER + 4] != [99, 130, 83, 99] {
        return None;
    }
    let mut clean = packet[..HEADER + 4].to_vec();
    let mut i = HEADER + 4;
    while i < packet.len() {
        let code = packet[i];
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let len = *packet.get(i + 1)? as usize;
                let value = packet.get(i + 2..i + 2 + len)?;
                match option_fits(code, len) {
                    Some(true) => {
                        clean.extend([code, len as u8]);
                        clean.extend(value);
                    }
                    Some(false) => return None,
                    None => {}
                }
                i += 2 + len;
            }
        }
    }
    clean.push(255);
    Message::decode(&mut Decoder::new(&clean)).ok()
}

/// The server's state: configuration, reservations, leases.
pub struct Server {
    config: Config,
    reservations: Mutex<Reservations>,
    known: Mutex<std::collections::HashSet<String>>,
    leases: Mutex<Leases>,
    /// Where the search for a free pool address starts: just past the last
    /// one handed out (an iterative allocator, as Kea's), so each new client
    /// costs a step or two instead of a walk over every address already
    /// leased or offered — a rack powering on is thousands of them at once.
    cursor: Mutex<u32>,
}

/// Reservations by MAC, and the addresses they hold (checked for every
/// pool candidate).
#[derive(Default)]
struct Reservations {
    by_mac: HashMap<String, Reservation>,
    ips: std::collections::HashSet<Ipv4Addr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("server_ip", &self.config.server_ip).finish()
    }
}

fn u32_of(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

impl Server {
    pub fn new(config: Config, leases: Leases) -> Server {
        let cursor = Mutex::new(config.pool.map(|(start, _)| u32_of(start)).unwrap_or(0));
        Server { config, reservations: Mutex::default(), known: Mutex::default(), leases: Mutex::new(leases), cursor }
    }

    /// Replace the reservations (tundrad refreshes them from its machines).
    pub fn set_reservations(&self, r: HashMap<String, Reservation>) {
        let ips = r.values().map(|r| r.ip).collect();
        *self.reservations.lock().expect("reservations lock") = Reservations { by_mac: r, ips };
    }

    /// Replace the set of known MACs (enrolled machines), which get pool
    /// addresses even without discovery.
    pub fn set_known(&self, macs: std::collections::HashSet<String>) {
        *self.known.lock().expect("known lock") = macs;
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.leases.lock().expect("leases lock").all()
    }

    /// The address `mac` holds now: an acknowledged (not merely offered),
    /// unexpired lease. What the boot listener binds a boot to.
    pub fn holder(&self, mac: &str) -> Option<Ipv4Addr> {
        let book = self.leases.lock().expect("leases lock");
        book.get(mac).filter(|l| !l.offered && l.expires > leases::now_secs()).map(|l| l.ip)
    }

    /// The address for `mac`: its reservation, its current lease, the
    /// address it asks for if free, or (`search`: a DISCOVER) the next free
    /// pool address.
    fn address_for(&self, mac: &str, requested: Option<Ipv4Addr>, search: bool) -> Option<Ipv4Addr> {
        let reservations = self.reservations.lock().expect("reservations lock");
        if let Some(r) = reservations.by_mac.get(mac) {
            return Some(r.ip);
        }
        if !self.config.discovery && !self.known.lock().expect("known lock").contains(mac) {
            return None;
        }
        let (start, end) = self.config.pool?;
        let (first, last) = (u32_of(start), u32_of(end));
        if first > last {
            return None;
        }
        let in_pool = |ip: Ipv4Addr| (first..=last).contains(&u32_of(ip));
        let leases = self.leases.lock().expect("leases lock");
        let free = |ip: Ipv4Addr| {
            in_pool(ip) && !leases.taken(ip, mac) && !reservations.ips.contains(&ip) && ip != self.config.server_ip
        };
        if let Some(l) = leases.get(mac)
            && free(l.ip)
        {
            return Some(l.ip);
        }
        if let Some(ip) = requested
            && free(ip)
        {
            return Some(ip);
        }
        if !search {
            return None;
        }
        // From the cursor round the pool once; the cursor moves past the find.
        let mut cursor = self.cursor.lock().expect("cursor lock");
        let size = u64::from(last - first) + 1;
        let from = u64::from(cursor.clamp(first, last) - first);
        let found = (0..size).map(|k| Ipv4Addr::from(first + ((from + k) % size) as u32)).find(|ip| free(*ip))?;
        *cursor = if u32_of(found) >= last { first } else { u32_of(found) + 1 };
        Some(found)
    }

    fn reply(&self, req: &Message, kind: MessageType, ip: Ipv4Addr) -> Message {
        let mut m = Message::new_with_id(
            req.xid(),
            Ipv4Addr::UNSPECIFIED,
            ip,
            Ipv4Addr::UNSPECIFIED,
            req.giaddr(),
            req.chaddr(),
        );
        m.set_opcode(Opcode::BootReply);
        m.set_flags(req.flags());
        if req.ciaddr() != Ipv4Addr::UNSPECIFIED && kind == MessageType::Ack {
            m.set_ciaddr(req.ciaddr());
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(self.config.server_ip));
        if kind == MessageType::Nak {
            return m;
        }
        o.insert(DhcpOption::AddressLeaseTime(self.config.lease_time.as_secs() as u32));
        o.insert(DhcpOption::Renewal(self.config.lease_time.as_secs() as u32 / 2));
        o.insert(DhcpOption::Rebinding(self.config.lease_time.as_secs() as u32 * 7 / 8));
        o.insert(DhcpOption::SubnetMask(self.config.netmask));
        if let Some(r) = self.config.router {
            o.insert(DhcpOption::Router(vec![r]));
        }
        if !self.config.dns.is_empty() {
            o.insert(DhcpOption::DomainNameServer(self.config.dns.clone()));
        }
        let mac = mac_of(req);
        if let Some(h) =
            self.reservations.lock().expect("reservations lock").by_mac.get(&mac).and_then(|r| r.hostname.clone())
        {
            o.insert(DhcpOption::Hostname(h));
        }
        let boot = &self.config.boot;
        match client_kind(req) {
            ClientKind::Ipxe => {
                let url = format!("{}/boot/{}.ipxe", boot.http_base.trim_end_matches('/'), mac);
                o.insert(DhcpOption::BootfileName(url.as_bytes().to_vec()));
                m.set_fname_str(&url);
            }
            k @ (ClientKind::PxeEfi | ClientKind::PxeBios) => {
                let file = if k == ClientKind::PxeEfi { &boot.efi_file } else { &boot.bios_file };
                m.set_siaddr(boot.tftp_server);
                m.set_fname_str(file);
                let o = m.opts_mut();
                o.insert(DhcpOption::BootfileName(file.as_bytes().to_vec()));
                o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
            }
            ClientKind::Plain => {}
        }
        m
    }

    /// Answer one message; `None` when it is not ours to answer.
    pub fn handle(&self, req: &Message) -> Option<Message> {
        // Clients are known by an Ethernet address (6 bytes); a length the
        // field cannot even hold (over 16) is a malformed packet.
        if req.opcode() != Opcode::BootRequest || req.hlen() != 6 {
            return None;
        }
        let mac = mac_of(req);
        let opts = req.opts();
        let requested = match opts.get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let for_us = match opts.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s == self.config.server_ip,
            _ => true,
        };
        match opts.msg_type()? {
            MessageType::Discover => {
                let ip = self.address_for(&mac, requested, true)?;
                if let Err(e) = self.leases.lock().expect("leases lock").set(&mac, ip, Duration::from_secs(60), true) {
                    tracing::warn!(error = %e, "persisting DHCP lease failed");
                }
                Some(self.reply(req, MessageType::Offer, ip))
            }
            MessageType::Request => {
                if !for_us {
                    // The client took another server's offer.
                    let _ = self.leases.lock().expect("leases lock").release(&mac);
                    return None;
                }
                let wanted = requested.or((req.ciaddr() != Ipv4Addr::UNSPECIFIED).then_some(req.ciaddr()));
                // A REQUEST takes its lease or the address it asks for, never
                // a new one (which would only be NAKed).
                let ip = self.address_for(&mac, wanted, wanted.is_none());
                match (ip, wanted) {
                    (Some(ip), Some(w)) if ip != w => Some(self.reply(req, MessageType::Nak, Ipv4Addr::UNSPECIFIED)),
                    (Some(ip), _) => {
                        if let Err(e) =
                            self.leases.lock().expect("leases lock").set(&mac, ip, self.config.lease_time, false)
                        {
                            tracing::warn!(error = %e, "persisting DHCP lease failed");
                        }
                        tracing::info!(%mac, %ip, kind = ?client_kind(req), "DHCP lease");
                        Some(self.reply(req, MessageType::Ack, ip))
                    }
                    // Asked for an address we cannot give, on a network whose pool we own.
                    (None, Some(_)) if self.config.pool.is_some() => {
                        Some(self.reply(req, MessageType::Nak, Ipv4Addr::UNSPECIFIED))
                    }
                    // Unknown MAC, no pool: not ours to answer.
                    (None, _) => None,
                }
            }
            MessageType::Release | MessageType::Decline => {
                let _ = self.leases.lock().expect("leases lock").release(&mac);
                None
            }
            MessageType::Inform => {
                let mut m = self.reply(req, MessageType::Ack, Ipv4Addr::UNSPECIFIED);
                m.opts_mut().remove(OptionCode::AddressLeaseTime);
                Some(m)
            }
            _ => None,
        }
    }

    /// Where a reply goes (RFC 2131 4.1): the relay, the client's address, or broadcast.
    pub fn destination(req: &Message) -> SocketAddr {
        if req.giaddr() != Ipv4Addr::UNSPECIFIED {
            SocketAddr::V4(SocketAddrV4::new(req.giaddr(), 67))
        } else if req.ciaddr() != Ipv4Addr::UNSPECIFIED {
            SocketAddr::V4(SocketAddrV4::new(req.ciaddr(), 68))
        } else {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 68))
        }
    }

    /// Serve on `socket` until the task is dropped.
    pub async fn serve(&self, socket: &tokio::net::UdpSocket) {
        let mut buf = vec![0u8; 1500];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "DHCP receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(req) = decode(&buf[..n]) else {
                tracing::debug!(%from, "undecodable DHCP packet");
                continue;
            };
            let Some(reply) = self.handle(&req) else { continue };
            let mut out = Vec::with_capacity(576);
            if reply.encode(&mut Encoder::new(&mut out)).is_err() {
                continue;
            }
            if let Err(e) = socket.send_to(&out, Self::destination(&req)).await {
                tracing::warn!(error = %e, "DHCP send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v4::{Architecture, Flags};

    use super::*;

    fn config(pool: bool) -> Config {
        Config {
            server_ip: "10.0.0.1".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            router: Some("10.0.0.254".parse().unwrap()),
            dns: vec![],
            pool: pool.then(|| ("10.0.0.100".parse().unwrap(), "10.0.0.101".parse().unwrap())),
            discovery: true,
            lease_time: Duration::from_secs(3600),
            boot: BootConfig {
                http_base: "http://10.0.0.1:8180".into(),
                tftp_server: "10.0.0.1".parse().unwrap(),
                bios_file: "undionly.kpxe".into(),
                efi_file: "snponly.efi".into(),
            },
        }
    }

    fn msg(kind: MessageType, mac: u8, opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x52, 0x54, 0, 0, 0, mac],
        );
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    #[test]
    fn malformed_hardware_lengths_are_ignored() {
        let s = Server::new(config(true), Leases::default());
        let good = msg(MessageType::Discover, 1, vec![]);
        let mut bytes = Vec::new();
        good.encode(&mut Encoder::new(&mut bytes)).unwrap();
        for hlen in [0u8, 5, 7, 16, 17, 200, 255] {
            bytes[2] = hlen; // the hlen byte of the BOOTP header
            let m = Message::decode(&mut Decoder::new(&bytes)).unwrap();
            assert!(s.handle(&m).is_none(), "hlen {hlen} answered");
        }
        bytes[2] = 6;
        assert!(s.handle(&Message::decode(&mut Decoder::new(&bytes)).unwrap()).is_some());
    }

    /// Found by `tundra-fuzz dhcp`: an option at a length dhcproto asserts
    /// on panicked the decoder. Options the server does not read never reach
    /// it; those it reads are length-checked.
    #[test]
    fn malformed_options_never_reach_the_decoder() {
        let mut good = Vec::new();
        msg(MessageType::Discover, 1, vec![DhcpOption::UserClass(b"iPXE".to_vec())])
            .encode(&mut Encoder::new(&mut good))
            .unwrap();
        let m = decode(&good).expect("a good packet decodes");
        assert_eq!(client_kind(&m), ClientKind::Ipxe);
        let end = good.iter().rposition(|b| *b == 255).unwrap();
        let with = |opt: &[u8]| [&good[..end], opt, &[255]].concat();
        // Bulk lease query base time (option 159) at length 1: dhcproto asserts length 4.
        assert!(decode(&with(&[159, 1, 7])).is_some_and(|m| m.opts().get(OptionCode::Unknown(159)).is_none()));
        // Classless static route (121) with a prefix over 32: dhcproto unwraps.
        assert!(decode(&with(&[121, 5, 40, 10, 0, 0, 1])).is_some());
        // An option the server reads, at a wrong length: the packet is dropped.
        assert!(decode(&with(&[50, 3, 10, 0, 0])).is_none());
        // Cut short, or without the magic cookie.
        assert!(decode(&with(&[60, 9, 1])).is_none());
        assert!(decode(&good[..200]).is_none());
    }

    #[test]
    fn only_an_acknowledged_lease_holds_its_address() {
        let s = Server::new(config(true), Leases::default());
        let mac = "52:54:00:00:00:01";
        assert_eq!(s.holder(mac), None);
        let offer = s.handle(&msg(MessageType::Discover, 1, vec![])).unwrap();
        assert_eq!(s.holder(mac), None, "an offer is not a lease");
        s.handle(&msg(MessageType::Request, 1, vec![DhcpOption::RequestedIpAddress(offer.yiaddr())])).unwrap();
        assert_eq!(s.holder(mac), Some(offer.yiaddr()));
        assert!(s.handle(&msg(MessageType::Release, 1, vec![])).is_none(), "a release has no answer");
        assert_eq!(s.holder(mac), None, "released");
    }

    #[test]
    fn boot_files_by_client_kind() {
        let s = Server::new(config(true), Leases::default());
        let efi = s
            .handle(&msg(MessageType::Discover, 1, vec![DhcpOption::ClientSystemArchitecture(Architecture::X64)]))
            .unwrap();
        assert_eq!(efi.fname_str().unwrap().unwrap(), "snponly.efi");
        assert_eq!(efi.siaddr(), "10.0.0.1".parse::<Ipv4Addr>().unwrap());
        let bios = s
            .handle(&msg(MessageType::Discover, 2, vec![DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000".to_vec())]))
            .unwrap();
        assert_eq!(bios.fname_str().unwrap().unwrap(), "undionly.kpxe");
        let ipxe = s
            .handle(&msg(
                MessageType::Discover,
                2,
                vec![DhcpOption::UserClass(b"iPXE".to_vec()), DhcpOption::ClientSystemArchitecture(Architecture::X64)],
            ))
            .unwrap();
        assert_eq!(ipxe.fname_str().unwrap().unwrap(), "http://10.0.0.1:8180/boot/52:54:00:00:00:02.ipxe");
    }

    #[test]
    fn pool_reservations_and_exhaustion() {
        let s = Server::new(config(true), Leases::default());
        s.set_reservations(HashMap::from([(
            "52:54:00:00:00:09".to_string(),
            Reservation { ip: "10.0.0.50".parse().unwrap(), hostname: Some("n9".into()) },
        )]));
        let r = s.handle(&msg(MessageType::Discover, 9, vec![])).unwrap();
        assert_eq!(r.yiaddr(), "10.0.0.50".parse::<Ipv4Addr>().unwrap());
        assert_eq!(r.opts().get(OptionCode::Hostname), Some(&DhcpOption::Hostname("n9".into())));
        let a = s.handle(&msg(MessageType::Discover, 1, vec![])).unwrap().yiaddr();
        let b = s.handle(&msg(MessageType::Discover, 2, vec![])).unwrap().yiaddr();
        assert_ne!(a, b);
        assert!(s.handle(&msg(MessageType::Discover, 3, vec![])).is_none(), "pool of two is exhausted");
        // A request for someone else's address is refused.
        let nak = s.handle(&msg(MessageType::Request, 3, vec![DhcpOption::RequestedIpAddress(a)])).unwrap();
        assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
        // Without a pool, unknown MACs get nothing.
        let closed = Server::new(config(false), Leases::default());
        assert!(closed.handle(&msg(MessageType::Discover, 1, vec![])).is_none());
        // Without discovery, only known MACs get pool addresses.
        let known_only = Server::new(Config { discovery: false, ..config(true) }, Leases::default());
        assert!(known_only.handle(&msg(MessageType::Discover, 1, vec![])).is_none());
        known_only.set_known(["52:54:00:00:00:01".to_string()].into());
        assert!(known_only.handle(&msg(MessageType::Discover, 1, vec![])).is_some());
    }

    #[test]
    fn new_clients_take_the_next_free_address_round_the_pool() {
        // A /16's worth of pool: 10.1.0.0 - 10.1.255.255.
        let pool = ("10.1.0.0".parse().unwrap(), "10.1.255.255".parse().unwrap());
        let s = Server::new(Config { pool: Some(pool), ..config(true) }, Leases::default());
        let at = |n: u32| Ipv4Addr::from(u32::from(pool.0) + n);
        let client = |n: u32| {
            let b = n.to_be_bytes();
            [0x52, 0x54, b[0], b[1], b[2], b[3]]
        };
        let send = |kind: MessageType, n: u32, opts: Vec<DhcpOption>| {
            let mut m = msg(kind, 0, opts);
            m.set_chaddr(&client(n));
            s.handle(&m).map(|r| r.yiaddr())
        };
        let discover = |n: u32| send(MessageType::Discover, n, vec![]);
        // Each new client gets the address after the previous one's; the
        // 60,000th costs no more than the first (a search from the pool's
        // start each time would be quadratic).
        for n in 0..60_000u32 {
            assert_eq!(discover(n), Some(at(n)), "client {n}");
        }
        assert_eq!(discover(7), Some(at(7)), "a client asking again keeps its offer");
        // An address freed low in the pool is not handed out before the
        // cursor comes round to it again: the next client gets the next one.
        send(MessageType::Request, 3, vec![DhcpOption::RequestedIpAddress(at(3))]).unwrap();
        assert!(send(MessageType::Release, 3, vec![]).is_none());
        assert_eq!(discover(60_000), Some(at(60_000)));
        // Reserved addresses are skipped.
        s.set_reservations(HashMap::from([(
            "52:54:00:00:ff:ff".to_string(),
            Reservation { ip: at(60_001), hostname: None },
        )]));
        assert_eq!(discover(60_001), Some(at(60_002)));
        // Up to the pool's end, then round to what is free at its start:
        // the released address.
        for n in 60_002..65_535u32 {
            assert_eq!(discover(n), Some(at(n + 1)), "client {n}");
        }
        assert_eq!(discover(70_000), Some(at(3)), "wrapped round to the freed address");
        assert_eq!(discover(70_001), None, "the pool is full");
        // A REQUEST for an address never offered is refused and moves nothing.
        let nak = {
            let mut m = msg(MessageType::Request, 0, vec![DhcpOption::RequestedIpAddress(at(5))]);
            m.set_chaddr(&client(80_000));
            s.handle(&m).unwrap()
        };
        assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
        // A pool given backwards answers nothing rather than panicking.
        let backwards = Server::new(Config { pool: Some((pool.1, pool.0)), ..config(true) }, Leases::default());
        assert!(backwards.handle(&msg(MessageType::Discover, 1, vec![])).is_none());
    }
}
