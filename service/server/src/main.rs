//! `tundrad`: the Tundra service.
//!
//! Today it is the service's skeleton — configuration, data directory, JSON
//! logs and the health/info routes the provider and operators rely on. The
//! store, identity, catalog, machines and fabric land in later changes (see
//! docs/architecture.md for what lives where).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use axum::{Json, Router, routing::get};
use tundra_api::{API_VERSION, Health, HealthStatus, ServiceInfo};

const HELP: &str = "\
tundrad — the Tundra bare-metal cloud service

USAGE:
    tundrad [OPTIONS]

OPTIONS:
    --listen ADDR          Address to serve the API on [env TUNDRA_LISTEN] [default 127.0.0.1:8180].
                           Port 0 picks a free port; see --address-file.
    --data-dir DIR         Where tundrad keeps its data [env TUNDRA_DATA_DIR] [default ./.tundra/data].
    --address-file FILE    Write the bound address (host:port) to FILE once listening.
    -h, --help             Print this help.
    -V, --version          Print the version.

Logs are JSON lines on stderr; RUST_LOG sets the level (default info).
";

#[derive(Debug)]
struct Config {
    listen: SocketAddr,
    data_dir: PathBuf,
    address_file: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Config>, String> {
    let mut listen = std::env::var("TUNDRA_LISTEN").unwrap_or_else(|_| "127.0.0.1:8180".into());
    let mut data_dir = std::env::var("TUNDRA_DATA_DIR").unwrap_or_else(|_| ".tundra/data".into());
    let mut address_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value (see --help)"));
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("tundrad {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--listen" => listen = value("--listen")?,
            "--data-dir" => data_dir = value("--data-dir")?,
            "--address-file" => address_file = Some(PathBuf::from(value("--address-file")?)),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let listen = listen.parse().map_err(|_| format!("--listen {listen:?} is not an address like 127.0.0.1:8180"))?;
    Ok(Some(Config { listen, data_dir: data_dir.into(), address_file }))
}

fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: HealthStatus::Ok }) }))
        .route("/readyz", get(|| async { Json(Health { status: HealthStatus::Ok }) }))
        .route(
            "/v1/info",
            get(|| async {
                Json(ServiceInfo {
                    service: "tundrad".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    api_version: API_VERSION.into(),
                })
            }),
        )
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tundrad: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}; is another tundrad running?", config.listen))?;
    let addr = listener.local_addr()?;
    if let Some(f) = &config.address_file {
        std::fs::write(f, addr.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "tundrad serving");
    axum::serve(listener, router())
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down");
        })
        .await?;
    Ok(())
}
