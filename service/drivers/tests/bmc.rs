//! The BMC drivers against real peers: sushy-tools' Redfish emulator (fake
//! systems, HTTP basic auth, its 1–11 s power delays) and an IPMI lanplus BMC
//! on pyghmi driven through Debian's ipmitool. Each test starts its own peer
//! on a free loopback port in a temp dir and stops it.

#[allow(dead_code)]
mod peers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};
use peers::{SYSTEM, free_port, free_udp_port, ipmi_bmc, sushy};
use tundra_drivers::bmc::Trust;
use tundra_drivers::bmc::{Bmc, BmcError, BootDevice, Ipmi, Password, PowerAction, PowerState, Redfish};
use tundra_drivers::retry::Backoff;

fn quick() -> Backoff {
    Backoff {
        attempts: 4,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        window: None,
    }
}

fn redfish(base: &str, password: &str) -> Redfish {
    Redfish::new(base, None, "admin", Password(password.into()), Trust::Insecure, quick()).unwrap()
}

async fn redfish_power_and_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, base) = sushy(dir.path());
    let bmc = redfish(&base, "password");
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    // The emulator lands power changes 1–11 s later: set_power polls.
    let t = Instant::now();
    assert_eq!(
        bmc.set_power(PowerAction::On, Duration::from_millis(500), Duration::from_secs(30)).await.unwrap(),
        PowerState::On
    );
    eprintln!("power on landed after {:?}", t.elapsed());
    bmc.set_boot_device(BootDevice::Pxe, false).await.unwrap();
    assert_eq!(bmc.boot_override().await.unwrap().as_deref(), Some("Pxe"));
    assert_eq!(
        bmc.set_power(PowerAction::Off, Duration::from_millis(500), Duration::from_secs(30)).await.unwrap(),
        PowerState::Off
    );
    // A system named explicitly works the same.
    let named =
        Redfish::new(&base, Some(SYSTEM), "admin", Password("password".into()), Trust::Insecure, quick()).unwrap();
    assert_eq!(named.power_state().await.unwrap(), PowerState::Off);
}

async fn redfish_wrong_password_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, base) = sushy(dir.path());
    let t = Instant::now();
    let e = redfish(&base, "wrong").power_state().await.unwrap_err();
    assert!(matches!(e, BmcError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("check the username and password"));
    assert!(t.elapsed() < Duration::from_millis(100 * 4), "no retries for bad credentials: {:?}", t.elapsed());
}

/// A TCP proxy in front of the emulator whose first `failures` connections
/// fail — answered 503, or hung up on without an answer (as a BMC's web
/// server does while it restarts) — and whose later ones are forwarded.
async fn flaky_proxy(upstream: String, failures: usize, drop_connections: bool) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if n < failures {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    if !drop_connections {
                        let body = r#"{"error":{"message":"busy"}}"#;
                        let _ = conn
                            .write_all(format!("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                    }
                    return;
                }
                if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn redfish_errors_recover_with_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (_peer, base) = sushy(dir.path());
    for drop_connections in [false, true] {
        let (proxy, seen) = flaky_proxy(base.clone(), 2, drop_connections).await;
        let s = redfish(&proxy, "password").power_state().await.unwrap();
        assert_eq!(s, PowerState::Off);
        assert!(seen.load(Ordering::SeqCst) >= 3, "two failures, then success");
        // More failures than attempts: the error says what happened.
        let (proxy, _) = flaky_proxy(base.clone(), 100, drop_connections).await;
        let e = redfish(&proxy, "password").power_state().await.unwrap_err();
        if drop_connections {
            assert!(matches!(e, BmcError::Unreachable { .. }), "{e}");
        } else {
            assert!(matches!(e, BmcError::Refused { status: 503, .. }), "{e}");
            assert!(e.to_string().contains("busy"), "{e}");
        }
    }
    // Nothing listening.
    let e = redfish(&format!("http://127.0.0.1:{}", free_port()), "password").power_state().await.unwrap_err();
    assert!(matches!(e, BmcError::Unreachable { .. }), "{e}");
}

async fn ipmi_power_boot_and_outage() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let peer = ipmi_bmc(dir.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let bmc = Ipmi::new(&addr, "admin", Password("password".into()), quick()).unwrap();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    assert_eq!(
        bmc.set_power(PowerAction::On, Duration::from_millis(200), Duration::from_secs(20)).await.unwrap(),
        PowerState::On
    );
    bmc.set_boot_device(BootDevice::Pxe, false).await.unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bmc.json")).unwrap()).unwrap();
    assert_eq!(state["bootdev"], "network", "pyghmi records PXE as network");
    assert_eq!(
        bmc.set_power(PowerAction::Off, Duration::from_millis(200), Duration::from_secs(20)).await.unwrap(),
        PowerState::Off
    );
    // The BMC goes away: an error that says what to check, after retries.
    drop(peer);
    let e = bmc.power_state().await.unwrap_err();
    assert!(matches!(e, BmcError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("check the username and password"), "{e}");
    // It comes back (same state file): the driver just works again.
    let _peer = ipmi_bmc(dir.path(), port);
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    // The password never appears on a command line.
    assert!(!format!("{bmc:?}").contains("password\""), "{bmc:?}");
}

/// A datagram the network held up and delivered after its client had begun
/// a new session (the chaos suite's BMC faults do this) must not take the
/// BMC down: pyghmi's server raised on an authenticated message that reached
/// a session before its keys existed, and the whole emulator process died.
async fn ipmi_bmc_outlives_a_stray_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let _peer = ipmi_bmc(dir.path(), port);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(("127.0.0.1", port)).await.unwrap();
    // RMCP (06 00 ff 07), RMCP+ (06); an RMCP+ Open Session Request (0x10):
    // tag, privilege, reserved, the console's session ID, then the
    // authentication (RAKP-HMAC-SHA1), integrity and confidentiality records.
    let mut open = vec![0u8, 4, 0, 0, 0xa4, 0xa3, 0xa2, 0xa0];
    open.extend_from_slice(&[0, 0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0]);
    let mut packet = vec![6, 0, 0xff, 7, 6, 0x10, 0, 0, 0, 0, 0, 0, 0, 0];
    packet.extend_from_slice(&(open.len() as u16).to_le_bytes());
    packet.extend_from_slice(&open);
    sock.send(&packet).await.unwrap();
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer[5] & 0x3f, 0x11, "an Open Session Response: {:02x?}", &answer[..n]);
    // The stray: an authenticated IPMI message on that session, before RAKP.
    let mut stray = vec![6, 0, 0xff, 7, 6, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    stray.extend_from_slice(&[0; 20]);
    sock.send(&stray).await.unwrap();
    // The BMC still answers.
    let bmc = Ipmi::new(&format!("127.0.0.1:{port}"), "admin", Password("password".into()), quick()).unwrap();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
}

fn main() {
    let args = Arguments::from_args();
    let run = |f: fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>| {
        move || {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f());
            Ok(())
        }
    };
    let trials = vec![
        Trial::test("redfish::power_and_boot", run(|| Box::pin(redfish_power_and_boot()))),
        Trial::test(
            "redfish::wrong_password_is_not_retried",
            run(|| Box::pin(redfish_wrong_password_is_not_retried())),
        ),
        Trial::test("redfish::errors_recover_with_retries", run(|| Box::pin(redfish_errors_recover_with_retries()))),
        Trial::test("ipmi::power_boot_and_outage", run(|| Box::pin(ipmi_power_boot_and_outage()))),
        Trial::test("ipmi::bmc_outlives_a_stray_datagram", run(|| Box::pin(ipmi_bmc_outlives_a_stray_datagram()))),
    ];
    libtest_mimic::run(&args, trials).exit();
}
