//! Two network namespaces joined by a veth pair (server side 10.77.0.1/24),
//! and the real clients run in the client one. Shared by the boot tests and
//! tundrad's network-boot test (included by path). Needs root.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (Debian iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair: server side 10.77.0.1/24.
pub struct Net {
    pub srv: String,
    pub cli: String,
    pub srv_if: String,
    pub cli_if: String,
}

impl Net {
    pub fn new() -> Net {
        let id = format!("{}{}", std::process::id() % 100000, SEQ.fetch_add(1, Ordering::SeqCst));
        let n = Net {
            srv: format!("tbs{id}"),
            cli: format!("tbc{id}"),
            srv_if: format!("vs{id}"),
            cli_if: format!("vc{id}"),
        };
        ip(&["netns", "add", &n.srv]);
        ip(&["netns", "add", &n.cli]);
        ip(&["link", "add", &n.srv_if, "type", "veth", "peer", "name", &n.cli_if]);
        ip(&["link", "set", &n.srv_if, "netns", &n.srv]);
        ip(&["link", "set", &n.cli_if, "netns", &n.cli]);
        ip(&["-n", &n.srv, "addr", "add", "10.77.0.1/24", "dev", &n.srv_if]);
        ip(&["-n", &n.srv, "link", "set", &n.srv_if, "up"]);
        ip(&["-n", &n.srv, "link", "set", "lo", "up"]);
        ip(&["-n", &n.cli, "link", "set", &n.cli_if, "up"]);
        n
    }

    pub fn set_client_mac(&self, mac: &str) {
        ip(&["-n", &self.cli, "link", "set", &self.cli_if, "address", mac]);
    }

    /// Open the server's socket inside the server namespace (on a thread of
    /// its own: entering a namespace changes only the calling thread).
    pub fn server_socket(&self) -> std::net::UdpSocket {
        let ifname = self.srv_if.clone();
        self.in_server(move || tundra_boot::bind_udp(Some(&ifname), 67).unwrap()).join().unwrap()
    }

    /// Run udhcpc once in the client namespace; the variables its script saw on `bound`.
    pub fn udhcpc(&self, dir: &Path, extra: &[&str]) -> Option<HashMap<String, String>> {
        let script = dir.join("udhcpc.sh");
        let out = dir.join("bound.env");
        let _ = std::fs::remove_file(&out);
        std::fs::write(&script, format!("#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n", out.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.cli,
                "busybox",
                "udhcpc",
                "-i",
                &self.cli_if,
                "-f",
                "-q",
                "-n",
                "-t",
                "3",
                "-T",
                "1",
                "-A",
                "1",
                "-s",
            ])
            .arg(&script)
            .args(extra)
            .output()
            .unwrap();
        if !status.status.success() {
            return None;
        }
        let env = std::fs::read_to_string(&out).ok()?;
        Some(env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.srv]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.cli]).status();
    }
}

impl Net {
    /// Run `f` on a thread inside the server namespace (entering a namespace
    /// changes only the calling thread; threads it starts inherit it).
    pub fn in_server<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let ns = format!("/run/netns/{}", self.srv);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&ns).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
    }

    /// busybox tftp in the client namespace: (success, bytes, stderr).
    pub fn tftp_get(&self, dir: &Path, server: &str, remote: &str, extra: &[&str]) -> (bool, Option<Vec<u8>>, String) {
        let out = dir.join("got");
        let _ = std::fs::remove_file(&out);
        let st = Command::new("ip")
            .args(["netns", "exec", &self.cli, "busybox", "tftp", "-g", "-r", remote, "-l"])
            .arg(&out)
            .args(extra)
            .arg(server)
            .output()
            .unwrap();
        (st.status.success(), std::fs::read(&out).ok(), String::from_utf8_lossy(&st.stderr).into_owned())
    }
}
