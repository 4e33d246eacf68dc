//! `tundrad`: the Tundra service.
//!
//! [`start`] opens the store (migrating it), loads the secret keys,
//! bootstraps the first admin, resumes unfinished operations and serves the
//! API. The binary (`main.rs`) only parses the command line; tests start the
//! same server in-process.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod fabric;
pub mod images;
pub mod keys;
pub mod machines;
pub mod netboot;
pub mod nodes;
pub mod observe;
pub mod operations;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use tundra_store::{Actor, NewToken, Store};

use crate::config::Config;
use crate::state::AppState;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stop serving: in-flight requests finish; running operations stop and
    /// resume on the next start.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        self.task.await??;
        self.state.ops.abort().await;
        self.state.store.close().await;
        Ok(())
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

/// Start serving per `config`.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = open_store(&config).await?;
    let keyring = secrets::Keyring::load_or_create(&config.secrets_key_file())?;
    let resealed = keyring.rotate(&store).await?;
    if resealed > 0 {
        tracing::info!(resealed, key = keyring.primary_id(), "re-sealed secrets with the primary key");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let oidc = auth::Oidc::new(&config.identity_providers, http.clone())?;
    let config_rules = config.load_inspection_rules()?;
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
        keyring: Arc::new(keyring),
        metrics: Default::default(),
        oidc,
        http,
        ops: Default::default(),
        inspection_rules: Arc::new(config_rules),
        placement: Default::default(),
        nodes_changed: Default::default(),
        netboot_changed: Default::default(),
        fabric: Default::default(),
    };
    state.ops.bind(state.clone());
    bootstrap(&state).await?;
    recover(&state).await?;

    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("binding {}; is another tundrad running?", state.config.listen))?;
    let addr = listener.local_addr()?;
    netboot::start(&state, addr.port()).await?;
    let (router, _) = routes::router().split_for_parts();
    let app = app(router, &state);
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
    tracing::info!(%addr, scheme, data_dir = %state.config.data_dir.display(), database = state.store.backend().as_str(), "tundrad serving");
    Ok(Server { addr, state, shutdown: Some(tx), task })
}

/// A router with what every listener has: a problem for unknown paths,
/// request ids, metrics, the body limit.
pub(crate) fn app(router: axum::Router<AppState>, state: &AppState) -> axum::Router {
    router
        .fallback(|| async { error::ApiError::NotFound { noun: "route", id: "this path".into() } })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::layer))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state.clone())
}

/// On the very first start (no users), create the site admin and write its
/// token to a 0600 file — the only way in until identity providers are set up.
async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    let admin = state.store.create_user(&Actor::service(), "admin", true, "local").await?;
    let secret = auth::new_token_secret();
    state
        .store
        .create_token(
            &Actor::service(),
            NewToken {
                user_id: admin.id,
                secret_hash: auth::sha256_hex(secret.as_bytes()),
                description: "bootstrap admin token".into(),
                project_id: None,
                role: None,
                expires_at: tundra_store::time_after(Duration::from_secs(state.config.token_max_ttl_secs())),
            },
        )
        .await?;
    let path = state.config.admin_token_file();
    secrets::write_private(&path, &format!("{secret}\n")).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(file = %path.display(), "bootstrapped the admin user; its token is in the file (mode 0600)");
    Ok(())
}

/// After a restart: fail uploads that were cut off, resume operations.
async fn recover(state: &AppState) -> anyhow::Result<()> {
    images::clean_staging(state).await;
    for id in state.store.orphaned_importing_images().await? {
        state
            .store
            .finish_image_import(
                &Actor::service(),
                id,
                Err("the upload was interrupted by a tundrad restart; upload again".into()),
            )
            .await?;
    }
    let janitor = state.clone();
    state.ops.background(janitor_loop(janitor)).await;
    state.ops.background(machines::power_sync_loop(state.clone())).await;
    state.ops.background(machines::timeout_loop(state.clone())).await;
    state.ops.background(nodes::reconcile_loop(state.clone())).await;
    state.ops.background(fabric::worker_loop(state.clone())).await;
    let n = state.ops.resume(&state.store).await?;
    if n > 0 {
        tracing::info!(operations = n, "resumed unfinished operations");
    }
    Ok(())
}

/// Housekeeping that keeps the store small: idempotency keys are replayable
/// for 24 hours, then forgotten.
async fn janitor_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before =
            humantime::format_rfc3339_millis(std::time::SystemTime::now() - Duration::from_secs(86400)).to_string();
        match state.store.expire_idempotency_keys(&before).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "forgot old idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring idempotency keys failed"),
        }
    }
}
