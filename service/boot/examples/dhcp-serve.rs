//! Serve DHCP on one interface with a discovery pool — for benchmarks
//! (`scripts/bench/dhcp.py` runs it inside a network namespace).
//!
//!     dhcp-serve INTERFACE SERVER_IP POOL_START POOL_END NETMASK [LEASE_FILE]

use std::net::Ipv4Addr;
use std::time::Duration;

use tundra_boot::dhcp::{BootConfig, Config, Leases, Server};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        eprintln!("usage: dhcp-serve INTERFACE SERVER_IP POOL_START POOL_END NETMASK [LEASE_FILE]");
        std::process::exit(2);
    }
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap_or_else(|_| panic!("{s} is not an IPv4 address"));
    let config = Config {
        server_ip: ip(&a[1]),
        netmask: ip(&a[4]),
        router: None,
        dns: vec![],
        pool: Some((ip(&a[2]), ip(&a[3]))),
        discovery: true,
        lease_time: Duration::from_secs(3600),
        boot: BootConfig {
            http_base: format!("http://{}:8180", a[1]),
            tftp_server: ip(&a[1]),
            bios_file: "undionly.kpxe".into(),
            efi_file: "snponly.efi".into(),
        },
    };
    let leases = Leases::open(a.get(5).map(Into::into)).expect("lease file");
    let server = Server::new(config, leases);
    let socket = tundra_boot::bind_udp(Some(&a[0]), 67).expect("bind");
    println!("ready");
    server.serve(&tokio::net::UdpSocket::from_std(socket).expect("tokio socket")).await;
}
