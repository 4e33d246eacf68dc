//! `tundrad`: the Tundra service — HTTP only. Handlers (`http`) parse,
//! check the caller (`auth`, `principal`), call the conductor
//! (`tundra-conductor`: flows, workers, rules) or the store, and render
//! (`views`, `crud`). [`start`] opens the store (migrating it), loads the
//! secret keys, bootstraps the first admin, starts the conductor and serves
//! the API and the provisioning networks. The binary (`main.rs`) only
//! parses the command line; tests start the same server in-process.
//!
//! Modules import only modules listed before them (checked by the
//! conductor's `tests/layout.rs`): `config`, `keys`, `tls`, `metrics`,
//! `error`, `principal`, `oidc`, `state`, `auth`, `extract`, `observe`,
//! `crud`, `views`, `http`, `netboot`, then this file.

pub mod auth;
pub mod cli;
pub mod config;
pub mod crud;
pub mod error;
pub mod extract;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod netboot;
pub mod observe;
pub mod oidc;
pub mod principal;
pub mod state;
pub mod tls;
pub mod token_cache;
pub mod ui;
pub mod views;

/// Sealed secrets live with the conductor, which opens them.
pub use tundra_conductor::secrets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tundra_store::{Actor, NewToken, Store};

use crate::config::Config;
use crate::state::AppState;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    /// Each provisioning network's boot listener, in config order.
    pub boot_listeners: Vec<SocketAddr>,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    stopping: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// SQLite: the lock that keeps a second tundrad off the file.
    _sole: Option<std::fs::File>,
}

impl Server {
    /// Stop serving: in-flight requests finish; running operations stop and
    /// resume on the next start.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stopping.send(true);
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        self.task.await??;
        self.state.conductor.stop().await;
        self.state.store().close().await;
        Ok(())
    }

    /// Stop at once, handing nothing over and letting no request finish,
    /// as `kill -9` would (the replica tests): the other replicas take its
    /// work over when its leases lapse.
    pub async fn abandon(self) {
        self.task.abort();
        self.state.conductor.abandon().await;
        self.state.store().close().await;
    }

    /// Wait for a shutdown signal (SIGTERM or Ctrl-C), then stop.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// Open the store named by the config and bring its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&config.database_url())
        .await
        .with_context(|| format!("opening the database (database_url for {})", config.data_dir.display()))?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// SQLite serves one tundrad: take the lock file beside the database (held
/// while the returned file is open), or say who holds it and what to do.
pub(crate) fn sole_sqlite_replica(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    let Some(db) = config.sqlite_file() else { return Ok(None) };
    let mut name = db.clone().into_os_string();
    name.push(".tundrad-lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another tundrad is running on the SQLite database {} (it holds {}); SQLite serves one tundrad: \
             stop the other one, or run several replicas on PostgreSQL (database_url = \"postgres://…\", \
             see docs/guides/configuration.md)",
            db.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Start serving per `config`.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let sole = sole_sqlite_replica(&config)?;
    let store = open_store(&config).await?;
    let keyring = secrets::Keyring::load_or_create(&config.secrets_key_file())?;
    let resealed = keyring.rotate(&store).await?;
    if resealed > 0 {
        tracing::info!(resealed, key = keyring.primary_id(), "re-sealed secrets with the primary key");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // A peer that stops sending (an image source, a JWKS URL) is dropped;
        // total time per request is each caller's (image_fetch_timeout).
        .read_timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let oidc = oidc::Oidc::new(&config.identity_providers, http.clone())?;
    let conductor = tundra_conductor::new(store, keyring, config.conductor_settings()?, http);
    let openapi = http::openapi_json().into();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let state = AppState {
        conductor,
        config: Arc::new(config),
        metrics: Default::default(),
        oidc,
        tokens: Default::default(),
        openapi,
        stopping,
    };
    bootstrap(&state).await?;
    tundra_conductor::start(&state.conductor).await?;

    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("binding {}; is another tundrad running?", state.config.listen))?;
    let addr = listener.local_addr()?;
    let served = netboot::start(&state).await?;
    let (router, _) = http::router().split_for_parts();
    let app = http::app(router.merge(ui::routes()), &state);
    let tls = match (&state.config.tls_cert_file, &state.config.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = rx.await;
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await })
        }
        None => tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }),
    };
    tracing::info!(%addr, scheme, data_dir = %state.config.data_dir.display(), database = state.store().backend().as_str(), replica = state.conductor.replica(), "tundrad serving");
    Ok(Server {
        addr,
        boot_listeners: served.boot_listeners,
        state,
        shutdown: Some(tx),
        stopping: stopping_tx,
        task,
        _sole: sole,
    })
}

/// On the very first start (no users), create the site admin and write its
/// token to a 0600 file — the only way in until identity providers are set up.
async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let store = state.store();
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let admin = match store.create_user(&Actor::service(), "admin", true, "local").await {
        Ok(admin) => admin,
        // Another replica starting at the same moment bootstrapped the
        // site: the admin token is in its admin_token_file.
        Err(tundra_store::StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let secret = auth::new_token_secret();
    let token = NewToken {
        user_id: admin.id,
        secret_hash: secrets::sha256_hex(secret.as_bytes()),
        description: "bootstrap admin token".into(),
        project_id: None,
        role: None,
        expires_at: tundra_store::time_after(Duration::from_secs(state.config.token_max_ttl_secs())),
    };
    store.create_token(&Actor::service(), token).await?;
    let path = state.config.admin_token_file();
    secrets::write_private(&path, &format!("{secret}\n")).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(file = %path.display(), "bootstrapped the admin user; its token is in the file (mode 0600)");
    Ok(())
}
