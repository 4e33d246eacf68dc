//! Switch-port programming benchmark (run by `scripts/bench.sh`):
//! N port moves on one emulated Cisco switch (fake-switches over SSH),
//! one session per change — the generic-switch way — against one batched
//! session, in the same run; then N moves on each of 8 switches at once.
//! Sessions are counted by the emulator (every SSH connection it accepts).
//! Both ways use the same driver, so both read every port before and after
//! and verify it: the difference is the sessions.
//!
//!     bench-switch PYTHON PEER_SCRIPT [N]
//!
//! With `BENCH_JSON=PATH` it also writes the figures there as JSON.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tundra_drivers::bmc::Password;
use tundra_drivers::switch::{HostKey, PortVlan, Switch, dialect};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (python, script) = (&args[1], &args[2]);
    let n: usize = args.get(3).map(|s| s.parse().expect("N is a number")).unwrap_or(100);
    let ports: Vec<String> = (1..=n).map(|i| format!("FastEthernet0/{i}")).collect();
    let list = ports.join(",");
    let mut specs = vec![format!("cisco_generic:one:{list}")];
    specs.extend((0..8).map(|k| format!("cisco_generic:p{k}:{list}")));
    let mut child = Command::new(python)
        .arg(script)
        .args(["--count-sessions", "--user", "admin", "--password-env", "SWITCH_PASSWORD"])
        .args(&specs)
        .env("SWITCH_PASSWORD", "password")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fake-switches");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let listening: std::collections::HashMap<String, u16> = serde_json::from_str(line.trim()).expect("ports");
    // Count the sessions each switch accepts.
    let sessions: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let counter = sessions.clone();
    std::thread::spawn(move || {
        for l in out.lines() {
            let Ok(l) = l else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
                && let Some(name) = v["session"].as_str()
            {
                *counter.lock().unwrap().entry(name.to_string()).or_default() += 1;
            }
        }
    });
    let count = |name: &str| sessions.lock().unwrap().get(name).copied().unwrap_or(0);
    let switch = |name: &str| Switch {
        address: format!("127.0.0.1:{}", listening[name]),
        username: "admin".into(),
        password: Password("password".into()),
        private_key: None,
        host_key: HostKey::Learn,
        dialect: dialect::built_in()["cisco_ios"].clone(),
        timeout: Duration::from_secs(60),
    };
    let moves = |vlan_base: u16| -> Vec<PortVlan> {
        ports.iter().enumerate().map(|(i, p)| PortVlan { port: p.clone(), vlan: vlan_base + (i % 10) as u16 }).collect()
    };

    let sw = switch("one");
    let settle = || std::thread::sleep(Duration::from_millis(300));
    // One session per change.
    let before = count("one");
    let t = Instant::now();
    for m in moves(100) {
        sw.apply(&[m]).await.expect("a single move");
    }
    let single = t.elapsed();
    settle();
    let single_sessions = count("one") - before;
    // One batched session.
    let before = count("one");
    let t = Instant::now();
    let applied = sw.apply(&moves(200)).await.expect("the batch");
    let batched = t.elapsed();
    settle();
    let batched_sessions = count("one") - before;
    assert!(applied.after.iter().all(|(_, v)| v.is_some_and(|v| v >= 200)), "every port verified");
    // 8 switches at once, each batched.
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let (sw, m, done) = (switch(&format!("p{k}")), moves(300), done.clone());
        tasks.push(tokio::spawn(async move {
            sw.apply(&m).await.expect("a parallel batch");
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let parallel = t.elapsed();
    settle();
    let parallel_sessions: usize = (0..8).map(|k| count(&format!("p{k}"))).sum();
    let _ = child.kill();
    let _ = child.wait();

    let rate = |d: Duration, moves: usize| moves as f64 / d.as_secs_f64();
    println!("switch-port programming: {n} port moves, cisco_ios dialect, fake-switches over SSH on loopback");
    println!("(every move is read before and read back after in both ways)");
    println!();
    println!("| way | wall | sessions | moves/s |");
    println!("|---|---|---|---|");
    println!(
        "| one session per change (generic-switch way) | {:.2} s | {single_sessions} | {:.1} |",
        single.as_secs_f64(),
        rate(single, n)
    );
    println!(
        "| batched, one session | {:.2} s | {batched_sessions} | {:.1} |",
        batched.as_secs_f64(),
        rate(batched, n)
    );
    println!(
        "| batched, 8 switches at once ({} moves) | {:.2} s | {parallel_sessions} | {:.1} |",
        8 * n,
        parallel.as_secs_f64(),
        rate(parallel, 8 * n)
    );
    println!();
    println!(
        "batched vs per change: {:.1}× faster, {single_sessions} → {batched_sessions} session(s)",
        single.as_secs_f64() / batched.as_secs_f64()
    );
    // For scripts/bench.sh: the same figures, machine-readable.
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let figures = serde_json::json!({
            "moves": n,
            "per_change": {"seconds": single.as_secs_f64(), "sessions": single_sessions},
            "batched": {"seconds": batched.as_secs_f64(), "sessions": batched_sessions},
            "parallel_8": {"seconds": parallel.as_secs_f64(), "sessions": parallel_sessions, "moves": 8 * n},
        });
        std::fs::write(path, figures.to_string()).expect("write BENCH_JSON");
    }
}
