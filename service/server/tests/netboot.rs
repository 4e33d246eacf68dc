//! tundrad serving a provisioning network: DHCP answers enrolled machines'
//! MACs (and nobody else without discovery) with the iPXE script URL, and
//! TFTP serves the iPXE binary — to busybox udhcpc and tftp in a client
//! namespace, with tundrad itself running inside the server namespace.

#[path = "../../boot/tests/netns/mod.rs"]
#[allow(dead_code)]
mod netns;

use std::time::{Duration, Instant};

use netns::{Net, ip};
use tundra_api::machines::{BmcDriver, BmcSettings, Interface, Location, ProvisionState};
use tundrad::config::{Config, ProvisioningNetwork};

#[test]
fn tundrad_network_boots_enrolled_machines() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let tftp_root = dir.path().join("ipxe");
    std::fs::create_dir_all(&tftp_root).unwrap();
    let efi: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(tftp_root.join("snponly.efi"), &efi).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        provisioning_networks: vec![ProvisioningNetwork {
            interface: net.srv_if.clone(),
            address: "10.77.0.1/24".into(),
            pool: "10.77.0.100-10.77.0.120".into(),
            router: None,
            dns: vec![],
            discovery: false,
            tftp_root,
            http_port: 8180,
            boot_url: None,
            node_pool: None,
            mtu: 1500,
            lease_time: "1h".into(),
            dhcp_port: 67,
            tftp_port: 69,
        }],
        ..Config::default()
    };
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = net.in_server(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let server = tundrad::start(config).await.unwrap();
            let st = server.state.clone();
            let secret = st
                .conductor
                .keyring()
                .seal(tundra_api::SecretId::generate(), &tundrad::secrets::Plaintext(b"pw".to_vec()));
            let m = st
                .store()
                .create_machine(
                    &tundra_store::Actor::service(),
                    tundra_store::NewMachine {
                        name: "n1".into(),
                        resource_class: "baremetal".into(),
                        traits: vec![],
                        properties: serde_json::json!({}),
                        location: Location::default(),
                        bmc: BmcSettings {
                            driver: BmcDriver::Ipmi,
                            address: "127.0.0.1:1".into(),
                            system: None,
                            username: "u".into(),
                            insecure: false,
                        },
                        interfaces: vec![Interface {
                            mac: "52:54:00:77:00:01".into(),
                            physical_network: None,
                            switch: None,
                            port: None,
                            pxe: true,
                            address: Some("10.77.0.50".into()),
                        }],
                        secret,
                    },
                )
                .await
                .unwrap();
            // An operation (not run here) waits for the machine's agent; it
            // has PXE-booted the machine once (armed its session).
            let svc = tundra_store::Actor::service();
            let work = tundra_api::ops::Work::MachineInspect { machine_id: m.id };
            let (_, op) = st
                .store()
                .begin_machine_transition(
                    &svc,
                    m.id,
                    ProvisionState::Enroll,
                    ProvisionState::InspectWait,
                    "test",
                    tundra_store::NewOperation { project_id: None, work },
                )
                .await
                .unwrap();
            let cmd = serde_json::json!({"command": "inspect", "id": "c1"});
            st.store().open_agent_session(m.id, op, &cmd).await.unwrap();
            assert!(st.store().arm_agent_boot(m.id, op).await.unwrap());
            ready_tx.send(()).unwrap();
            let _ = stopped.await;
            server.stop().await.unwrap();
        });
    });
    ready.recv().unwrap();

    // A malformed packet first (a hardware address length of 200, which a
    // 16-byte field cannot hold): DHCP must go on answering.
    malformed_discover(&net);

    // The enrolled machine's iPXE gets a pool address and its script URL (once
    // tundrad has refreshed its known MACs, within a few seconds).
    net.set_client_mac("52:54:00:77:00:01");
    let start = Instant::now();
    let env = loop {
        if let Some(env) = net.udhcpc(dir.path(), &["-x", "0x4d:69505845"]) {
            break env;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no lease for the enrolled machine");
    };
    // Its interface has a fixed address in the inventory: a reservation, with its name.
    assert_eq!(env["ip"], "10.77.0.50");
    assert_eq!(env.get("hostname").map(String::as_str), Some("n1"), "{env:?}");
    assert_eq!(env["boot_file"], "http://10.77.0.1:8180/boot/52:54:00:77:00:01.ipxe");
    // A MAC tundrad does not know gets nothing (discovery is off).
    net.set_client_mac("52:54:00:77:00:02");
    assert!(net.udhcpc(dir.path(), &[]).is_none());

    // The boot script goes to the lease holder (10.77.0.50) only, once per
    // boot; its token works only from there. Another machine on the network
    // (10.77.0.2, which knows the MAC) gets neither.
    ip(&["-n", &net.cli, "addr", "add", "10.77.0.50/24", "dev", &net.cli_if]);
    ip(&["-n", &net.cli, "addr", "add", "10.77.0.2/24", "dev", &net.cli_if]);
    let script = "/boot/52:54:00:77:00:01.ipxe";
    let (status, _) = http(&net, "10.77.0.2", "GET", script, "", "");
    assert_eq!(status, 404, "a boot script for an address that does not hold the lease");
    let (status, text) = http(&net, "10.77.0.50", "GET", script, "", "");
    assert_eq!(status, 200, "{text}");
    let token = text.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string();
    let (status, _) = http(&net, "10.77.0.50", "GET", script, "", "");
    assert_eq!(status, 404, "a second script in the same boot");
    let hb = r#"{"version": "t"}"#;
    let (status, _) = http(&net, "10.77.0.2", "POST", "/v1/agent/heartbeat", &token, hb);
    assert_eq!(status, 401, "a token used from another address");
    let (status, body) = http(&net, "10.77.0.50", "POST", "/v1/agent/heartbeat", &token, hb);
    assert_eq!((status, body.as_str()), (200, r#"{"command":"inspect","id":"c1"}"#));
    // The boot listener serves nothing of the API.
    let (status, _) = http(&net, "10.77.0.50", "GET", "/v1/machines", &token, "");
    assert_eq!(status, 404);

    // The firmware's next step: the iPXE binary over TFTP.
    let (ok, got, err) = net.tftp_get(dir.path(), "10.77.0.1", "snponly.efi", &["-b", "1468"]);
    assert!(ok, "{err}");
    assert_eq!(got.unwrap(), efi);
    // Leases are kept in the data dir.
    let leases = std::fs::read_to_string(dir.path().join(format!("data/dhcp-{}.leases", net.srv_if))).unwrap();
    assert!(leases.contains("52:54:00:77:00:01"), "{leases}");
    stop.send(()).unwrap();
    server.join().unwrap();
}

/// Broadcast a DHCPDISCOVER whose hlen is 200 from the client namespace.
/// An HTTP request to the boot listener (10.77.0.1:8180) from `src` in the
/// client namespace: (status, body).
fn http(net: &Net, src: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let script = r#"
import http.client, sys
src, method, path, token, body = sys.argv[1:6]
c = http.client.HTTPConnection("10.77.0.1", 8180, timeout=10, source_address=(src, 0))
h = {"Content-Type": "application/json"}
if token:
    h["Authorization"] = "Bearer " + token
c.request(method, path, body=body or None, headers=h)
r = c.getresponse()
sys.stdout.write(str(r.status) + "\n" + r.read().decode())
"#;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.cli, "python3", "-c", script, src, method, path, token, body])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, body) = text.split_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn malformed_discover(net: &Net) {
    let script = r#"
import socket, struct, sys
pkt = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 200, 0, 0x1234, 0, 0x8000,
                  bytes(4), bytes(4), bytes(4), bytes(4), bytes(16), bytes(64), bytes(128))
pkt += bytes([99, 130, 83, 99, 53, 1, 1, 255])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
for _ in range(3):
    s.sendto(pkt, ("255.255.255.255", 67))
"#;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.cli, "python3", "-c", script, &net.cli_if])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
