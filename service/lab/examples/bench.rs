//! Benchmark: N lab machines (half Redfish, half IPMI) go available →
//! deployed → cleaned through tundrad (release build, SQLite), and the image
//! write is compared with `dd` to the same disk file. Prints figures; asserts
//! nothing about speed. Needs root; run through `scripts/bench-lab.sh` or `scripts/bench.sh`.
//!
//!     bench [--machines 50] [--image-mib 64]
//!
//! With `BENCH_JSON=PATH` it also writes the figures there as JSON.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn phase(
    api: &Api,
    lab: &tundra_lab::Lab,
    ids: &[String],
    action: &str,
    extra: Value,
    want: &str,
) -> (f64, Vec<String>) {
    let start = Instant::now();
    let mut ops = Vec::new();
    for id in ids {
        ops.push(api.action(id, action, extra.clone()).await["id"].as_str().unwrap().to_string());
    }
    for (id, m) in ids.iter().zip(&lab.machines) {
        api.wait_state(id, want, Duration::from_secs(900), Some(m)).await;
    }
    (start.elapsed().as_secs_f64(), ops)
}

fn secs(a: &str, b: &str) -> f64 {
    let t = |s: &str| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).unwrap();
    t(b).duration_since(t(a)).unwrap_or_default().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--machines", 50) as usize;
    let image_mib = arg("--image-mib", 64);
    let half = n / 2;
    let site = format!(
        "[[machines]]\nname = \"rf-{{n}}\"\ncount = {}\nbmc = \"redfish\"\ndisks = [{{ name = \"vda\", size_mib = {disk} }}]\n\n\
         [[machines]]\nname = \"ipmi-{{n}}\"\ncount = {}\nbmc = \"ipmi\"\ndisks = [{{ name = \"vda\", size_mib = {disk} }}]\n",
        n - half,
        half.max(1),
        disk = image_mib + 16
    );
    let dir = tempfile::Builder::new().prefix("tundra-bench-lab-").tempdir().unwrap();
    let lab = lab(&site, dir.path()).await;
    let n = lab.machines.len();
    let mut c = config(&lab, dir.path(), "127.0.0.1:0", 0);
    c.power_sync_interval = "600s".into();
    let server = tundrad::start(c).await.unwrap();
    let api = Api::new(&format!("http://{}", server.addr), &dir.path().join("data"));
    let mut ids = Vec::new();
    for m in &lab.machines {
        ids.push(api.enroll(m).await);
    }
    eprintln!("bench: {n} machines enrolled; manage…");
    phase(&api, &lab, &ids, "manage", json!({}), "manageable").await;
    eprintln!("bench: inspect…");
    let (t_inspect, _) = phase(&api, &lab, &ids, "inspect", json!({}), "manageable").await;
    eprintln!("bench: provide (clean → available)…");
    let (t_provide, _) = phase(&api, &lab, &ids, "provide", json!({}), "available").await;
    let img = image_bytes((image_mib as usize) << 20, 3);
    let image = api.image("bench-os", &img).await;
    eprintln!("bench: deploy {image_mib} MiB to each…");
    let (t_deploy, ops) = phase(&api, &lab, &ids, "deploy", json!({"image_id": image}), "active").await;
    // Per machine: the deploy operation's duration and the agent's image-write time.
    let (mut op_total, mut io_total, mut io_bytes) = (0.0, 0.0, 0u64);
    let mut op_secs = Vec::new();
    for (id, op) in ids.iter().zip(&ops) {
        let o = api.ok("GET", &format!("/v1/operations/{op}"), None).await;
        let took = secs(o["created_at"].as_str().unwrap(), o["updated_at"].as_str().unwrap());
        op_total += took;
        op_secs.push(took);
        let ev = api.ok("GET", &format!("/v1/events?object_id={id}&limit=500"), None).await;
        let w = ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["action"] == "agent_reported"
                    && e["detail"]["command"].as_str().is_some_and(|c| c.starts_with(op.as_str()))
            })
            .find_map(|e| Some((e["detail"]["seconds"].as_f64()?, e["detail"]["bytes"].as_u64()?)))
            .expect("the deploy's report carries its write time");
        io_total += w.0;
        io_bytes += w.1;
    }
    eprintln!("bench: delete (power off, clean → available)…");
    let (t_delete, _) = phase(&api, &lab, &ids, "delete", json!({}), "available").await;
    server.stop().await.unwrap();

    // dd to the same kind of disk files, the same bytes: once alone, then
    // onto every machine's disk one after another (the pure write time of
    // what the deploy wrote).
    let src = dir.path().join("image.raw");
    std::fs::write(&src, &img).unwrap();
    let dd_to = |disk: &std::path::Path| {
        let out = std::process::Command::new("dd")
            .arg(format!("if={}", src.display()))
            .arg(format!("of={}", disk.display()))
            .args(["bs=4M", "conv=fsync,notrunc", "status=none"])
            .output()
            .unwrap();
        assert!(out.status.success(), "dd: {}", String::from_utf8_lossy(&out.stderr));
    };
    let start = Instant::now();
    dd_to(&lab.machines[0].disks[0].1);
    let dd = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for m in &lab.machines {
        dd_to(&m.disks[0].1);
    }
    let dd_all = start.elapsed().as_secs_f64();
    lab.stop().await;

    let mib = |bytes: f64, s: f64| bytes / 1048576.0 / s.max(1e-9);
    println!(
        "lab benchmark: {n} machines ({} Redfish, {} IPMI), image {image_mib} MiB, tundrad release + SQLite, 2 cores shared",
        n - half,
        half.max(1)
    );
    println!("| phase | wall | per machine |");
    println!("|---|---|---|");
    println!("| inspect (manageable → manageable) | {t_inspect:.1} s | {:.2} s |", t_inspect / n as f64);
    println!("| provide (clean → available) | {t_provide:.1} s | {:.2} s |", t_provide / n as f64);
    println!("| deploy (available → active) | {t_deploy:.1} s | {:.2} s |", t_deploy / n as f64);
    println!("| delete (clean → available) | {t_delete:.1} s | {:.2} s |", t_delete / n as f64);
    println!(
        "deploy operations: mean {:.1} s; agent image I/O mean {:.2} s → {:.1} % of deploy time outside image I/O",
        op_total / n as f64,
        io_total / n as f64,
        100.0 * (1.0 - io_total / op_total)
    );
    println!(
        "image write: agent (HTTP from tundrad, sha256 inline, fsync; up to {n} at once) {:.0} MiB/s per machine on average | dd (bs=4M, fsync) to the same disk file, alone: {:.0} MiB/s",
        mib(io_bytes as f64 / n as f64, io_total / n as f64),
        mib(img.len() as f64, dd)
    );
    println!(
        "deploy wall {t_deploy:.1} s vs {dd_all:.1} s for dd of the same {n} × {image_mib} MiB one after another: {:.2}×",
        t_deploy / dd_all
    );
    // For scripts/bench.sh: the same figures, machine-readable.
    if let Ok(path) = std::env::var("BENCH_JSON") {
        op_secs.sort_by(f64::total_cmp);
        let figures = json!({
            "machines": n, "image_mib": image_mib,
            "inspect": t_inspect, "provide": t_provide, "deploy": t_deploy, "delete": t_delete,
            "deploy_operations": op_secs, "agent_io_seconds": io_total, "agent_bytes": io_bytes,
            "dd_one": dd, "dd_all": dd_all,
        });
        std::fs::write(path, figures.to_string()).expect("write BENCH_JSON");
    }
}
