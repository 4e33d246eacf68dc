//! The DHCP and TFTP servers against real clients (busybox udhcpc and tftp)
//! in their own network namespace, across a veth pair, with the server's socket opened inside a
//! second namespace. Needs root (network namespaces); every test makes and
//! removes its own namespaces.

mod netns;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};
use netns::{Net, ip};
use tundra_boot::dhcp::{BootConfig, Config, Leases, Reservation, Server};

fn config(pool: bool) -> Config {
    Config {
        server_ip: "10.77.0.1".parse().unwrap(),
        netmask: "255.255.255.0".parse().unwrap(),
        router: Some("10.77.0.254".parse().unwrap()),
        dns: vec!["10.77.0.53".parse().unwrap()],
        pool: pool.then(|| ("10.77.0.100".parse().unwrap(), "10.77.0.199".parse().unwrap())),
        discovery: true,
        lease_time: Duration::from_secs(600),
        boot: BootConfig {
            http_base: "http://10.77.0.1:8180".into(),
            tftp_server: "10.77.0.1".parse().unwrap(),
            bios_file: "undionly.kpxe".into(),
            efi_file: "snponly.efi".into(),
        },
    }
}

/// Serve `server` on a runtime of its own until dropped.
fn run(server: std::sync::Arc<Server>, socket: std::net::UdpSocket) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.spawn(async move {
        let s = tokio::net::UdpSocket::from_std(socket).unwrap();
        server.serve(&s).await
    });
    rt
}

fn reserved_machines_and_boot_files() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(Server::new(config(false), Leases::default()));
    server.set_reservations(HashMap::from([(
        "52:54:00:77:00:01".to_string(),
        Reservation { ip: "10.77.0.11".parse().unwrap(), hostname: Some("node-1".into()) },
    )]));
    let _rt = run(server.clone(), net.server_socket());
    // An unknown MAC on a network without a discovery pool gets no answer.
    net.set_client_mac("52:54:00:77:00:99");
    assert!(net.udhcpc(dir.path(), &[]).is_none(), "unknown MACs are not ours to answer");
    // The enrolled machine gets its address, name and network settings.
    net.set_client_mac("52:54:00:77:00:01");
    let env = net.udhcpc(dir.path(), &[]).expect("a lease");
    assert_eq!(env["ip"], "10.77.0.11");
    assert_eq!(env["subnet"], "255.255.255.0");
    assert_eq!(env["router"].trim(), "10.77.0.254");
    assert_eq!(env["dns"].trim(), "10.77.0.53");
    assert_eq!(env["hostname"], "node-1");
    assert!(!env.contains_key("boot_file"), "an OS's DHCP client gets no boot file");
    // UEFI PXE firmware (architecture 7) gets the iPXE EFI binary over TFTP.
    let env = net.udhcpc(dir.path(), &["-x", "0x5d:0007", "-V", "PXEClient:Arch:00007:UNDI:003000"]).expect("a lease");
    assert_eq!(env["boot_file"], "snponly.efi");
    assert_eq!(env["siaddr"], "10.77.0.1");
    // BIOS PXE gets undionly.kpxe.
    let env = net.udhcpc(dir.path(), &["-V", "PXEClient:Arch:00000:UNDI:002001"]).expect("a lease");
    assert_eq!(env["boot_file"], "undionly.kpxe");
    // iPXE (user class "iPXE") gets its per-machine script over HTTP.
    let env = net.udhcpc(dir.path(), &["-x", "0x4d:69505845", "-x", "0x5d:0007"]).expect("a lease");
    assert_eq!(env["boot_file"], "http://10.77.0.1:8180/boot/52:54:00:77:00:01.ipxe");
}

fn discovery_pool_and_persistent_leases() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("leases.json");
    let server = std::sync::Arc::new(Server::new(config(true), Leases::open(Some(lease_file.clone())).unwrap()));
    let rt = run(server.clone(), net.server_socket());
    net.set_client_mac("52:54:00:77:00:42");
    let first = net.udhcpc(dir.path(), &[]).expect("a pool lease")["ip"].clone();
    let ip: Ipv4Addr = first.parse().unwrap();
    assert!((100..=199).contains(&ip.octets()[3]), "{first}");
    let on_disk = std::fs::read_to_string(&lease_file).unwrap();
    assert!(on_disk.contains("52:54:00:77:00:42") && on_disk.contains(&first), "{on_disk}");
    // Another machine gets another address.
    net.set_client_mac("52:54:00:77:00:43");
    let second = net.udhcpc(dir.path(), &[]).expect("a pool lease")["ip"].clone();
    assert_ne!(first, second);
    // Restart the server from its lease file: the first machine's address is still its own.
    drop(rt);
    let server = std::sync::Arc::new(Server::new(config(true), Leases::open(Some(lease_file)).unwrap()));
    let _rt = run(server, net.server_socket());
    net.set_client_mac("52:54:00:77:00:42");
    assert_eq!(net.udhcpc(dir.path(), &[]).expect("a lease")["ip"], first);
}

/// Serve TFTP from `root` inside the server namespace until the returned sender is dropped.
fn tftp_in_namespace(net: &Net, root: &Path) -> tokio::sync::oneshot::Sender<()> {
    let (ifname, root) = (net.srv_if.clone(), root.to_path_buf());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    net.in_server(move || {
        // Everything this thread (and its runtime) opens lives in the server namespace.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let s = tundra_boot::bind_udp(Some(&ifname), 69).unwrap();
            let sock = tokio::net::UdpSocket::from_std(s).unwrap();
            ready_tx.send(()).unwrap();
            tokio::select! {
                _ = tundra_boot::tftp::serve(root, &sock, Some(ifname)) => {}
                _ = stopped => {}
            }
        });
    });
    ready.recv().unwrap();
    stop
}

fn tftp_serves_ipxe_binaries() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(root.join("snponly.efi"), &binary).unwrap();
    std::fs::write(dir.path().join("secret"), b"not for you").unwrap();
    let _stop = tftp_in_namespace(&net, &root);
    let get = |remote: &str, extra: &[&str]| net.tftp_get(dir.path(), "10.77.0.1", remote, extra);
    ip(&["-n", &net.cli, "addr", "add", "10.77.0.2/24", "dev", &net.cli_if]);
    // Default 512-byte blocks (586 of them), and UEFI-style large blocks.
    let (ok, got, err) = get("snponly.efi", &[]);
    assert!(ok, "{err}");
    assert_eq!(got.unwrap(), binary);
    let (ok, got, err) = get("snponly.efi", &["-b", "1468"]);
    assert!(ok, "{err}");
    assert_eq!(got.unwrap(), binary);
    // Missing files and escapes from the served directory are refused.
    let (ok, _, err) = get("undionly.kpxe", &[]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = get("../secret", &[]);
    assert!(!ok && err.contains("not found"), "{err}");
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("reserved_machines_and_boot_files", || {
            reserved_machines_and_boot_files();
            Ok(())
        }),
        Trial::test("discovery_pool_and_persistent_leases", || {
            discovery_pool_and_persistent_leases();
            Ok(())
        }),
        Trial::test("tftp_serves_ipxe_binaries", || {
            tftp_serves_ipxe_binaries();
            Ok(())
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
