//! Network boot on the provisioning networks: a DHCP and a TFTP server per
//! network, and a task that keeps the DHCP servers' set of known MACs (the
//! enrolled machines' interfaces) current.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tundra_boot::dhcp::{BootConfig, Config, Leases, Reservation, Server};

use crate::state::AppState;

/// Bind and start every configured network; returns the DHCP servers.
pub async fn start(state: &AppState, api_port: u16) -> anyhow::Result<Vec<Arc<Server>>> {
    let mut servers = Vec::new();
    for n in &state.config.provisioning_networks {
        let (ip, mask, start, end) = n.parsed().map_err(|e| anyhow::anyhow!(e))?;
        // The boot and agent routes (only those) on the network's own address.
        let http_port = match n.http_port {
            Some(port) => {
                let l = tokio::net::TcpListener::bind((ip, port))
                    .await
                    .with_context(|| format!("binding the boot listener on {ip}:{port} ({})", n.interface))?;
                let port = l.local_addr()?.port();
                let (router, _) = crate::routes::agent::routes().split_for_parts();
                // The metadata service knows a node by the address asking.
                let app = crate::app(router.merge(crate::routes::nodes::metadata_routes()), state)
                    .into_make_service_with_connect_info::<std::net::SocketAddr>();
                state
                    .ops
                    .background(async move {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "the boot listener stopped");
                        }
                    })
                    .await;
                port
            }
            None => api_port,
        };
        let boot_url = n.boot_url.clone().unwrap_or_else(|| format!("http://{ip}:{http_port}"));
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
        let dhcp = tundra_boot::bind_udp(Some(&n.interface), n.dhcp_port)?;
        let dhcp = tokio::net::UdpSocket::from_std(dhcp)?;
        let tftp = tokio::net::UdpSocket::from_std(tundra_boot::bind_udp(Some(&n.interface), n.tftp_port)?)?;
        let s = server.clone();
        state.ops.background(async move { s.serve(dhcp).await }).await;
        state.ops.background(tundra_boot::tftp::serve(n.tftp_root.clone(), tftp, Some(n.interface.clone()))).await;
        tracing::info!(interface = %n.interface, %ip, pool = %n.pool, discovery = n.discovery, http_port, "serving DHCP, TFTP and boot HTTP");
        servers.push(server);
    }
    if !servers.is_empty() {
        let (state2, servers2) = (state.clone(), servers.clone());
        state.ops.background(known_macs_loop(state2, servers2)).await;
    }
    Ok(servers)
}

/// Every few seconds (and at once when a node gets an address), tell the
/// DHCP servers which MACs belong to enrolled machines and which addresses
/// are reserved: interfaces' fixed addresses under the machine's name,
/// nodes' addresses under the node's name.
async fn known_macs_loop(state: AppState, servers: Vec<Arc<Server>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.netboot_changed.notified() => {}
        }
        let nodes = match state.store.all_nodes().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "reading nodes for DHCP failed");
                continue;
            }
        };
        match state.store.all_machines().await {
            Ok(ms) => {
                let macs: std::collections::HashSet<String> =
                    ms.iter().flat_map(|m| m.interfaces.iter().map(|i| i.mac.clone())).collect();
                // Fixed addresses from the inventory, with the machine's name.
                let reservations: std::collections::HashMap<String, Reservation> = ms
                    .iter()
                    .flat_map(|m| {
                        m.interfaces.iter().filter_map(|i| {
                            let ip = i.address.as_deref()?.parse().ok()?;
                            Some((i.mac.clone(), Reservation { ip, hostname: Some(m.name.clone()) }))
                        })
                    })
                    .chain(nodes.iter().filter(|n| n.machine_id.is_some()).flat_map(|n| {
                        n.addresses.iter().filter_map(|a| {
                            let ip = a.address.as_deref()?.parse().ok()?;
                            Some((a.mac.clone(), Reservation { ip, hostname: Some(n.name.clone()) }))
                        })
                    }))
                    .collect();
                for s in &servers {
                    s.set_known(macs.clone());
                    s.set_reservations(reservations.clone());
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading machines for DHCP failed"),
        }
    }
}
