//! `tundra-agent` command line. The commands tundrad will send over its
//! agent protocol are available here one by one, for operators and the lab.

use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
tundra-agent — runs on a machine during inspection, deployment and cleaning

USAGE:
    tundra-agent run [--root DIR] [--cmdline FILE]
        Work for tundrad: read tundra.api= and tundra.token= from the kernel command
        line (FILE, default ROOT/proc/cmdline), then inspect, write images or erase
        disks as tundrad asks, until it says exit. Disks are ROOT/dev/NAME.
    tundra-agent inventory [--root DIR] [--lldp-wait SECONDS]
        Print the hardware inventory as JSON (root defaults to /), with each NIC's
        LLDP neighbour when --lldp-wait is given (needs CAP_NET_RAW).
    tundra-agent write-image --url URL --sha256 HEX --target DISK
        Stream URL onto DISK (a block device or disk file), verifying sha256 inline.
        A bearer token for the URL is read from TUNDRA_AGENT_TOKEN.
    tundra-agent erase --target DISK [--verify]
        Discard or zero DISK and wipe its signatures; --verify reads it back.
";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let need = |name: &str| arg(&args, name).ok_or_else(|| format!("{name} is required (see --help)"));
    let result: Result<(), String> = match args.first().map(String::as_str) {
        Some("run") => async {
            let root = PathBuf::from(arg(&args, "--root").unwrap_or_else(|| "/".into()));
            let cmdline = arg(&args, "--cmdline").map(PathBuf::from).unwrap_or_else(|| root.join("proc/cmdline"));
            let text = std::fs::read_to_string(&cmdline).map_err(|e| format!("reading {}: {e}", cmdline.display()))?;
            let params = tundra_agent::run::boot_params(&text)?;
            eprintln!("tundra-agent {}: working for {}", env!("CARGO_PKG_VERSION"), params.api);
            tundra_agent::run::Agent::new(params, &root).run().await
        }
        .await,
        Some("--version") => {
            println!("tundra-agent {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("inventory") => {
            let root = PathBuf::from(arg(&args, "--root").unwrap_or_else(|| "/".into()));
            let wait: f64 = arg(&args, "--lldp-wait").and_then(|w| w.parse().ok()).unwrap_or(0.0);
            tundra_agent::inventory::collect(&root).map_err(|e| format!("reading {}: {e}", root.display())).and_then(
                |mut inv| {
                    let names: Vec<String> = inv.nics.iter().map(|n| n.name.clone()).collect();
                    let heard = tundra_agent::lldp::listen(&names, std::time::Duration::from_secs_f64(wait.max(0.0)))
                        .map_err(|e| format!("listening for LLDP: {e}"))?;
                    for nic in &mut inv.nics {
                        nic.lldp = heard.get(&nic.name).cloned();
                    }
                    println!("{}", serde_json::to_string_pretty(&inv).expect("inventory serializes"));
                    Ok(())
                },
            )
        }
        Some("write-image") => async {
            let (url, sha, target) = (need("--url")?, need("--sha256")?, PathBuf::from(need("--target")?));
            let token = std::env::var("TUNDRA_AGENT_TOKEN").ok();
            let http = reqwest::Client::new();
            let w = tundra_agent::image::write_image(&http, &url, token.as_deref(), &sha, &target, |_, _| {})
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::json!({"bytes": w.bytes, "sha256": w.sha256, "seconds": w.seconds, "mib_per_s": w.bytes as f64 / 1048576.0 / w.seconds.max(1e-9), "resumed": w.resumed})
            );
            Ok(())
        }
        .await,
        Some("erase") => async {
            let target = PathBuf::from(need("--target")?);
            let m = tundra_agent::erase::erase(&target).await.map_err(|e| format!("erasing {}: {e}", target.display()))?;
            let zero = if args.iter().any(|a| a == "--verify") {
                Some(tundra_agent::erase::verify_zero(&target).await.map_err(|e| e.to_string())?)
            } else {
                None
            };
            println!("{}", serde_json::json!({"method": format!("{m:?}"), "verified_zero": zero}));
            if zero == Some(false) { Err("the disk is not all zero after erasing".into()) } else { Ok(()) }
        }
        .await,
        Some("-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?} (see --help)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tundra-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
