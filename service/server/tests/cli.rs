//! `tundrad` as an operator starts it: no configuration, port 0, a temp data dir.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn starts_with_no_configuration_and_serves_health_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tundrad"))
        .args(["--listen", "127.0.0.1:0", "--address-file"])
        .arg(&addr_file)
        .arg("--data-dir")
        .arg(&data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "tundrad did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(data.is_dir(), "data dir created");
    let (code, body) = get(&addr, "/healthz");
    assert_eq!(code, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (code, body) = get(&addr, "/v1/info");
    assert_eq!(code, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["service"], "tundrad");
    assert_eq!(info["api_version"], "v1");
    assert_eq!(get(&addr, "/nope").0, 404);

    // SIGTERM shuts down cleanly; logs are JSON lines.
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "tundrad serving"), "{logs}");
    // Every line of a request carries its request id.
    let answered: Vec<_> = lines.iter().filter(|l| l["fields"]["message"] == "answered").collect();
    assert!(answered.len() >= 3, "{logs}");
    assert!(answered.iter().all(|l| l["span"]["request_id"].as_str().is_some_and(|s| !s.is_empty())), "{logs}");
    // The embedded default: a SQLite file, and the bootstrap admin's token, private.
    assert!(data.join("tundra.db").exists());
    use std::os::unix::fs::PermissionsExt;
    let token = data.join("admin-token");
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&token).unwrap().starts_with("tnd_"));
    assert!(!logs.contains(std::fs::read_to_string(&token).unwrap().trim()), "the token never reaches the logs");
}

#[test]
fn bad_arguments_say_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_tundrad")).args(["--listen", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an address like 127.0.0.1:8180"));
    let out = Command::new(env!("CARGO_BIN_EXE_tundrad")).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--data-dir"));
}
