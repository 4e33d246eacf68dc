//! The switch drivers against emulated switches (fake-switches over SSH, on
//! loopback) and a Linux host (OpenSSH in a namespace of the test's own):
//! per dialect, a batch of port moves in one session, read back and
//! verified; the host key pinned; and a command the switch refuses is
//! reported with its output, the ports already moved put back.

#[allow(dead_code)]
mod peers;

use std::time::Duration;

use libtest_mimic::{Arguments, Trial};
use tundra_drivers::bmc::Password;
use tundra_drivers::switch::{HostKey, PortVlan, Switch, SwitchError, dialect};

/// (fake-switches model[:its ports], our dialect, three of its ports, a port it does not have)
const CASES: &[(&str, &str, [&str; 3], &str)] = &[
    ("cisco_generic", "cisco_ios", ["FastEthernet0/1", "FastEthernet0/2", "FastEthernet0/3"], "FastEthernet0/99"),
    ("dell_generic", "dell_powerconnect", ["ethernet 1/g1", "ethernet 1/g2", "ethernet 2/g1"], "ethernet 1/g99"),
    (
        "dell10g_generic",
        "dell_os6_10g",
        ["tengigabitethernet 0/0/1", "tengigabitethernet 0/0/2", "tengigabitethernet 1/0/1"],
        "tengigabitethernet 0/0/99",
    ),
    ("brocade_generic", "brocade_fastiron", ["1/1", "1/2", "1/3"], "1/99"),
    ("juniper_generic", "junos", ["ge-0/0/1", "ge-0/0/2", "ge-0/0/3"], "ge-0/0/200"),
    (
        "arista_generic:Ethernet1,Ethernet2,Ethernet3",
        "arista_eos",
        ["Ethernet1", "Ethernet2", "Ethernet3"],
        "Ethernet99",
    ),
];

fn switch(port: u16, dialect: &str, host_key: HostKey) -> Switch {
    Switch {
        address: format!("127.0.0.1:{port}"),
        username: "admin".into(),
        password: Password("password".into()),
        private_key: None,
        host_key,
        dialect: dialect::built_in()[dialect].clone(),
        timeout: Duration::from_secs(10),
    }
}

fn moves(ports: &[&str], vlans: &[u16]) -> Vec<PortVlan> {
    ports.iter().zip(vlans).map(|(p, v)| PortVlan { port: p.to_string(), vlan: *v }).collect()
}

async fn dialect_case(model: &str, dialect: &str, ports: [&str; 3], missing: &str) {
    let spec = match model.split_once(':') {
        Some((m, ports)) => format!("{m}:sw:{ports}"),
        None => format!("{model}:sw"),
    };
    let (_peer, listening) = peers::fake_switches(&[&spec]);
    let port = listening["sw"];
    // Learn the key once, then only that key is accepted.
    let learned = switch(port, dialect, HostKey::Learn).read(&[ports[0].to_string()]).await;
    assert!(learned.is_ok(), "{dialect}: {learned:?}");
    let sw = {
        let a = switch(port, dialect, HostKey::Learn).apply(&moves(&ports[..1], &[100])).await.unwrap();
        assert!(a.host_key.starts_with("SHA256:"), "{a:?}");
        switch(port, dialect, HostKey::Pinned(a.host_key))
    };
    // A batch: three ports into two VLANs, one session, each verified.
    let a = sw.apply(&moves(&ports, &[200, 300, 200])).await.unwrap_or_else(|e| panic!("{dialect}: {e}"));
    assert_eq!(a.before[0].1, Some(100), "{dialect}: read before the change: {a:?}");
    assert_eq!(a.after.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [Some(200), Some(300), Some(200)]);
    let read = sw.read(&ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(read.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [Some(200), Some(300), Some(200)], "{dialect}");
    // A port the switch does not have: reported with its output, not
    // swallowed — when reading it before the batch (nothing changed), or
    // when configuring it (the port moved before it goes back).
    let e = sw.apply(&moves(&[ports[0], missing], &[400, 400])).await.unwrap_err();
    match &e.error {
        SwitchError::Command { port: Some(p), line, .. } => {
            assert_eq!(p, missing, "{dialect}: {e}");
            assert!(!line.is_empty(), "{dialect}: {e}");
        }
        other => panic!("{dialect}: expected the refused command, got {other}"),
    }
    assert!(e.left_changed.is_empty(), "{dialect}: {e}");
    assert!(e.rolled_back.is_empty() || e.rolled_back == [ports[0].to_string()], "{dialect}: {e}");
    eprintln!("{dialect}: {e}");
    let read = sw.read(&[ports[0].to_string()]).await.unwrap();
    assert_eq!(read[0].1, Some(200), "{dialect}: {} keeps its VLAN", ports[0]);
    // Another key pinned: refused before logging in, saying which key it saw.
    let wrong = switch(port, dialect, HostKey::Pinned("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()));
    match wrong.read(&[ports[0].to_string()]).await.unwrap_err() {
        SwitchError::HostKey { got, .. } => assert!(got.starts_with("SHA256:")),
        other => panic!("{dialect}: expected a host key mismatch, got {other}"),
    }
    // A wrong password.
    let mut bad = sw.clone();
    bad.password = Password("nope".into());
    assert!(matches!(bad.read(&[ports[0].to_string()]).await.unwrap_err(), SwitchError::Auth(_)));
}

/// A batch big enough to read the whole configuration at once (`read_all`):
/// 24 ports, then again with one the switch does not have.
async fn big_batch(model: &str, dialect: &str, name: impl Fn(usize) -> String) {
    let ports: Vec<String> = (1..=24).map(&name).collect();
    let (_peer, listening) = peers::fake_switches(&[&format!("{model}:sw:{}", ports.join(","))]);
    let sw = switch(listening["sw"], dialect, HostKey::Learn);
    let vlans: Vec<u16> = (0..24).map(|i| 500 + (i % 3) as u16).collect();
    let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
    let a = sw.apply(&moves(&refs, &vlans)).await.unwrap_or_else(|e| panic!("{dialect}: {e}"));
    assert_eq!(a.after.iter().map(|(_, v)| v.unwrap()).collect::<Vec<_>>(), vlans, "{dialect}");
    assert!(a.before.iter().all(|(_, v)| v.is_none()), "{dialect}: {a:?}");
    let mut with_missing = refs.clone();
    let missing = name(99);
    with_missing.push(&missing);
    let e = sw.apply(&moves(&with_missing, &[600; 25])).await.unwrap_err();
    assert!(matches!(&e.error, SwitchError::Command { port: Some(p), .. } if *p == missing), "{dialect}: {e}");
    let read = sw.read(&ports).await.unwrap();
    assert_eq!(read.iter().map(|(_, v)| v.unwrap()).collect::<Vec<_>>(), vlans, "{dialect}: nothing changed");
}

/// Many callers at once, one port each (50 nodes deploying together): the
/// queue applies them in a few batches, one session at a time, and each
/// caller learns its own port's outcome.
async fn queue_batches_concurrent_asks() {
    use tundra_drivers::switch::queue::{Limits, SwitchQueue};
    let ports: Vec<String> = (1..=24).map(|i| format!("FastEthernet0/{i}")).collect();
    let (_peer, listening) = peers::fake_switches(&[&format!("cisco_generic:sw:{}", ports.join(","))]);
    let sw = switch(listening["sw"], "cisco_ios", HostKey::Learn);
    let q = SwitchQueue::start(sw.clone(), Limits { max_sessions: 1, ..Limits::default() });
    let mut asks = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let (q, p) = (q.clone(), p.clone());
        asks.push(tokio::spawn(async move { q.set(&p, 700 + (i % 2) as u16).await }));
    }
    for (i, a) in asks.into_iter().enumerate() {
        assert_eq!(a.await.unwrap().unwrap(), 700 + (i % 2) as u16);
    }
    let st = q.stats();
    eprintln!("24 concurrent asks: {st:?}");
    assert!(st.sessions <= 6, "24 concurrent asks in {} sessions", st.sessions);
    let read = sw.read(&ports).await.unwrap();
    assert!(read.iter().enumerate().all(|(i, (_, v))| *v == Some(700 + (i % 2) as u16)), "{read:?}");
    // The latest ask for a port wins when asks for it meet in one batch.
    let (a, b) = tokio::join!(q.set(&ports[0], 801), q.set(&ports[0], 802));
    assert_eq!((a.unwrap(), b.unwrap()), (802, 802));
    // A bad port fails its batch; its caller (and the batch's others) hear why.
    let e = q.set("FastEthernet0/99", 5).await.unwrap_err();
    assert!(matches!(&e.error, SwitchError::Command { port: Some(p), .. } if p == "FastEthernet0/99"), "{e}");
    // Sessions refused: retried with backoff, then the error.
    let closed = peers::free_port();
    let mut gone = switch(closed, "cisco_ios", HostKey::Learn);
    gone.timeout = Duration::from_secs(2);
    let backoff = tundra_drivers::retry::Backoff {
        attempts: 3,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
        window: None,
    };
    let gq =
        SwitchQueue::start(gone, Limits { min_interval: Duration::from_millis(200), backoff, ..Limits::default() });
    let t = std::time::Instant::now();
    let e = gq.set("FastEthernet0/1", 5).await.unwrap_err();
    assert!(matches!(e.error, SwitchError::Connect(_)), "{e}");
    assert_eq!((gq.stats().sessions, gq.stats().retries), (3, 2));
    // Three session starts, at least 200 ms apart (the rate limit).
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
}

fn main() {
    let args = Arguments::from_args();
    let rt = || tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut trials = vec![
        Trial::test("cisco_ios_big_batch", move || {
            rt().block_on(big_batch("cisco_generic", "cisco_ios", |i| format!("FastEthernet0/{i}")));
            Ok(())
        }),
        Trial::test("linux_bridge", move || {
            rt().block_on(linux_bridge());
            Ok(())
        }),
        Trial::test("queue_batches_concurrent_asks", move || {
            rt().block_on(queue_batches_concurrent_asks());
            Ok(())
        }),
    ];
    let cases: Vec<Trial> = CASES
        .iter()
        .map(|(model, dialect, ports, missing)| {
            let (model, dialect, ports, missing) = (*model, *dialect, *ports, *missing);
            Trial::test(dialect.to_string(), move || {
                let model = model;
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                rt.block_on(dialect_case(model, dialect, ports, missing));
                Ok(())
            })
        })
        .collect();
    trials.extend(cases);
    libtest_mimic::run(&args, trials).exit();
}

/// A Linux host as the switch: OpenSSH's sshd in a network namespace this
/// test makes (reached over a veth), key login, the host key pinned as
/// `ssh-keygen -l` prints it; ports (veths) move between per-VLAN
/// bridges it creates on demand.
async fn linux_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let id = std::process::id();
    let (ns, host_if, ns_if) = (format!("tsw{id}"), format!("tswh{id}"), format!("tsws{id}"));
    let net = format!("198.18.{}", id % 250);
    let sh = |args: &[&str]| {
        let out = std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for k in 1..=3 {
                let _ = std::process::Command::new("ip").args(["netns", "del", &format!("{}m{k}", self.0)]).status();
            }
            let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
            let _ = std::process::Command::new("ip").args(["link", "del", &self.1]).status();
        }
    }
    let _cleanup = Cleanup(ns.clone(), host_if.clone());
    sh(&["ip", "netns", "add", &ns]);
    sh(&["ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns]);
    sh(&["ip", "addr", "add", &format!("{net}.1/30"), "dev", &host_if]);
    sh(&["ip", "link", "set", &host_if, "up"]);
    sh(&["ip", "-n", &ns, "addr", "add", &format!("{net}.2/30"), "dev", &ns_if]);
    sh(&["ip", "-n", &ns, "link", "set", &ns_if, "up"]);
    sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    // Three machines, each a namespace whose eth1 is cabled to port pK.
    for k in 1..=3 {
        let (p, m) = (format!("p{k}"), format!("{ns}m{k}"));
        sh(&["ip", "netns", "add", &m]);
        sh(&["ip", "-n", &ns, "link", "add", &p, "type", "veth", "peer", "name", "eth1", "netns", &m]);
        sh(&["ip", "-n", &ns, "link", "set", &p, "up"]);
        sh(&["ip", "-n", &m, "addr", "add", &format!("10.77.0.{k}/24"), "dev", "eth1"]);
        sh(&["ip", "-n", &m, "link", "set", "eth1", "up"]);
    }
    // Real traffic: does machine a reach machine b? One ping that fails
    // says "no" (nothing crosses VLANs); "yes" gets a few tries, since a
    // machine that just failed to reach b must resolve it again.
    let ping = |a: u8, b: u8| {
        std::process::Command::new("ip")
            .args(["netns", "exec", &format!("{ns}m{a}"), "ping", "-c", "1", "-W", "1", &format!("10.77.0.{b}")])
            .output()
            .unwrap()
            .status
            .success()
    };
    let reaches = |a: u8, b: u8| (0..5).any(|_| ping(a, b));
    let isolated = |a: u8, b: u8| !ping(a, b);
    let d = dir.path();
    for (k, t) in [("host", "ed25519"), ("client", "ed25519")] {
        sh(&["ssh-keygen", "-q", "-t", t, "-N", "", "-f", d.join(k).to_str().unwrap()]);
    }
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    let fingerprint = sh(&["ssh-keygen", "-l", "-f", d.join("host.pub").to_str().unwrap()])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "ListenAddress {net}.2\nPort 2222\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile none\n\
             SetEnv SHLVL=1\n",
            d.join("host").display(),
            d.join("authorized_keys").display()
        ),
    )
    .unwrap();
    // (SetEnv SHLVL=1: bash then does not source root's ~/.bashrc for the
    // commands, as the lab's switch — see tundra_lab::fabric::start_sshd.)
    // sshd insists on its privilege-separation directory; one this test
    // makes goes again when it ends, passed or not.
    struct RunDir(bool);
    impl Drop for RunDir {
        fn drop(&mut self) {
            if self.0 {
                let _ = std::fs::remove_dir("/run/sshd");
            }
        }
    }
    let _run_dir = RunDir(!std::path::Path::new("/run/sshd").exists());
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let _sshd = peers::Peer(sshd);
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect((format!("{net}.2").as_str(), 2222)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sw = Switch {
        address: format!("{net}.2:2222"),
        username: "root".into(),
        password: Password(String::new()),
        private_key: Some(Password(std::fs::read_to_string(d.join("client")).unwrap())),
        host_key: HostKey::Pinned(fingerprint),
        dialect: dialect::built_in()["linux_bridge"].clone(),
        // Generous: exec channels on a loaded 2-core CI machine can take seconds.
        timeout: Duration::from_secs(30),
    };
    let a = sw.apply(&moves(&["p1", "p2", "p3"], &[100, 200, 100])).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.before.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [None, None, None]);
    assert_eq!(a.after.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [Some(100), Some(200), Some(100)]);
    // What the host says, not what the driver says — and what packets do.
    assert!(sh(&["ip", "-n", &ns, "-o", "link", "show", "dev", "p2"]).contains("master br200"));
    assert!(reaches(1, 3), "machines 1 and 3 share VLAN 100");
    assert!(isolated(1, 2), "machine 2 is on VLAN 200");
    let a = sw.apply(&moves(&["p2", "p3"], &[100, 200])).await.unwrap();
    assert_eq!(a.before[0].1, Some(200));
    assert!(sh(&["ip", "-n", &ns, "-o", "link", "show", "dev", "p2"]).contains("master br100"));
    assert!(reaches(1, 2), "machine 2 moved to VLAN 100");
    assert!(isolated(1, 3), "machine 3 moved to VLAN 200");
    // A port the host does not have: its error, nothing changed.
    let e = sw.apply(&moves(&["p1", "p99"], &[300, 300])).await.unwrap_err();
    assert!(matches!(&e.error, SwitchError::Command { port: Some(p), .. } if p == "p99"), "{e}");
    assert!(e.error.to_string().contains("p99"), "{e}");
    assert!(sh(&["ip", "-n", &ns, "-o", "link", "show", "dev", "p1"]).contains("master br100"));
}
