//! `tundra-lab`: run a simulated site until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
tundra-lab — a simulated site for tundrad (needs root: it builds network namespaces)

USAGE:
    tundra-lab up --site FILE [--dir DIR] [--venv DIR]
        Build the site and run it until SIGINT/SIGTERM, then tear it all down.
        Writes DIR/lab.json (mode 0600): the provisioning network to give tundrad
        (interface, address, pool) and every machine's BMC and MACs.
        DIR defaults to .tundra/lab, the venv to .venv (scripts/setup.sh).
    tundra-lab clean
        Remove what crashed labs left behind (namespaces, links, emulators).
";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("up") => up(&args).await,
        Some("clean") => {
            let removed = tundra_lab::fabric::remove_leftovers();
            println!("removed {} lab(s) {:?}", removed.len(), removed);
            Ok(())
        }
        Some("-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?} (see --help)")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tundra-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let site_file = arg(args, "--site").context("--site FILE is required (see --help)")?;
    let text = std::fs::read_to_string(&site_file).with_context(|| format!("reading {site_file}"))?;
    let site = tundra_lab::site::Site::parse(&text).map_err(|e| anyhow::anyhow!("{site_file}: {e}"))?;
    let dir = PathBuf::from(arg(args, "--dir").unwrap_or_else(|| ".tundra/lab".into()));
    let venv = PathBuf::from(arg(args, "--venv").unwrap_or_else(|| ".venv".into())).join("bin");
    let dir = std::path::absolute(&dir)?;
    let lab = tundra_lab::Lab::start(&site, &tundra_lab::Options { dir: dir.clone(), venv }).await?;
    let out = dir.join("lab.json");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&out)?;
        f.write_all(serde_json::to_string_pretty(&lab.describe())?.as_bytes())?;
    }
    tracing::info!(lab = %lab.id, machines = lab.machines.len(), interface = %lab.provisioning.interface, file = %out.display(), "lab up");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("tearing the lab down");
    lab.stop().await;
    Ok(())
}
