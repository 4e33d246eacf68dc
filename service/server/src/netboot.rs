//! Network boot on the provisioning networks: a DHCP and a TFTP server per
//! network, the boot listener (the boot and agent routes and the metadata
//! service, only those and only there, on the network's own address, bound
//! to that network's leases), and a task that keeps the DHCP servers'
//! knowledge current (`tundra_conductor::netboot`). With replicas, one
//! answers DHCP and TFTP on each network at a time: the holder of its
//! `netboot:` lease; every replica serves its boot listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tundra_boot::dhcp::{BootConfig, Config, Leases, Server};

use crate::state::AppState;

/// What netboot serves: per provisioning network, its DHCP server and where
/// its boot listener is bound.
pub struct Served {
    pub dhcp: Vec<Arc<Server>>,
    pub boot_listeners: Vec<std::net::SocketAddr>,
}

/// Bind and start every configured network.
pub async fn start(state: &AppState) -> anyhow::Result<Served> {
    let c = &state.conductor;
    let mut served = Served { dhcp: Vec::new(), boot_listeners: Vec::new() };
    for n in &state.config.provisioning_networks {
        let (ip, mask, start, end) = n.parsed().map_err(|e| anyhow::anyhow!(e))?;
        let l = tokio::net::TcpListener::bind((ip, n.http_port))
            .await
            .with_context(|| format!("binding the boot listener on {ip}:{} ({})", n.http_port, n.interface))?;
        let http_port = l.local_addr()?.port();
        let boot_url = n.boot_url.clone().unwrap_or_else(|| format!("http://{ip}:{http_port}"));
        // Nodes ask the first network's listener for later changes (their share mounts).
        c.serve_metadata_at(&boot_url);
        let config = Config {
            server_ip: ip,
            netmask: mask,
            router: n.router,
            dns: n.dns.clone(),
            pool: Some((start, end)),
            discovery: n.discovery,
            lease_time: humantime::parse_duration(&n.lease_time).unwrap_or(Duration::from_secs(3600)),
            boot: BootConfig {
                http_base: boot_url,
                tftp_server: ip,
                bios_file: "undionly.kpxe".into(),
                efi_file: "snponly.efi".into(),
            },
        };
        let leases = Leases::open(Some(state.config.data_dir.join(format!("dhcp-{}.leases", n.interface))))
            .with_context(|| format!("opening the DHCP leases of {}", n.interface))?;
        let server = Arc::new(Server::new(config, leases));
        let dhcp = Arc::new(tokio::net::UdpSocket::from_std(tundra_boot::bind_udp(Some(&n.interface), n.dhcp_port)?)?);
        let tftp = Arc::new(tokio::net::UdpSocket::from_std(tundra_boot::bind_udp(Some(&n.interface), n.tftp_port)?)?);

        // The boot listener: boot and agent routes and the metadata service,
        // with the peer address, and this network's leases (who may boot).
        let net = crate::http::agent::BootNet { dhcp: server.clone() };
        let app = crate::http::app(crate::http::boot_router().layer(axum::Extension(net)), state)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        // The boot listener serves on every replica: a machine's boot
        // script goes only to the address this replica's DHCP server leased
        // to it, and the agent routes and the metadata service answer from
        // the store. Served as bound; if it stops, bound again.
        let first = Arc::new(std::sync::Mutex::new(Some(l)));
        c.supervise("boot_listener", move || {
            let (app, first) = (app.clone(), first.clone());
            async move {
                let bound = first.lock().expect("listener lock").take();
                let l = match bound {
                    Some(l) => Ok(l),
                    None => tokio::net::TcpListener::bind((ip, http_port)).await,
                };
                match l {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "the boot listener stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, %ip, http_port, "binding the boot listener again failed"),
                }
            }
        })
        .await;

        // DHCP and TFTP: one replica answers a network at a time, the
        // holder of its lease (named by the network, which every replica's
        // config names alike). A DHCP server's pool leases live in this
        // process (its journal), so two answering at once could give one
        // address to two machines. The others have bound their sockets and
        // stand by; when the holder dies, one of them takes over, and
        // machines left mid-boot are booted again by their operation
        // (agent_boot_timeout).
        let network = u32::from(ip) & u32::from(mask);
        let lease: &'static str = Box::leak(
            format!("netboot:{}/{}", std::net::Ipv4Addr::from(network), u32::from(mask).count_ones()).into_boxed_str(),
        );
        let (s, root, device) = (server.clone(), n.tftp_root.clone(), n.interface.clone());
        let serve = Arc::new(move || {
            let (s, dhcp, tftp, root, device) = (s.clone(), dhcp.clone(), tftp.clone(), root.clone(), device.clone());
            async move {
                // Whichever stops, both stop and start again together.
                tokio::select! {
                    _ = s.serve(&dhcp) => tracing::error!("the DHCP server stopped"),
                    _ = tundra_boot::tftp::serve(root, &tftp, Some(device)) => tracing::error!("the TFTP server stopped"),
                }
            }
        });
        let c2 = c.clone();
        c.supervise("netboot", move || {
            let serve = serve.clone();
            tundra_conductor::replicas::leased_with(c2.clone(), lease, move || serve())
        })
        .await;
        tracing::info!(interface = %n.interface, %ip, pool = %n.pool, discovery = n.discovery, http_port, "serving DHCP, TFTP and boot HTTP");
        served.dhcp.push(server);
        served.boot_listeners.push(std::net::SocketAddr::from((ip, http_port)));
    }
    if !served.dhcp.is_empty() {
        let (c2, servers) = (c.clone(), served.dhcp.clone());
        c.supervise("dhcp_refresh", move || refresh_loop(c2.clone(), servers.clone())).await;
    }
    Ok(served)
}

/// Every few seconds (and at once when a node gets or loses an address),
/// tell the DHCP servers which MACs are known and which addresses reserved.
async fn refresh_loop(c: tundra_conductor::Conductor, servers: Vec<Arc<Server>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = c.wakes().netboot.notified() => {}
        }
        match tundra_conductor::netboot::known(&c).await {
            Ok(k) => {
                for s in &servers {
                    s.set_known(k.macs.clone());
                    s.set_reservations(k.reservations.clone());
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading what DHCP must know failed"),
        }
    }
}
