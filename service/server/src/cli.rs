//! The `tundrad` command line (the binaries are one line each: `main.rs`,
//! and `upgrade_probe.rs` for the packaging test).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, parse_listen};

const HELP: &str = "\
tundrad — the Tundra bare-metal cloud service

USAGE:
    tundrad [OPTIONS]                   serve the API
    tundrad openapi                     print the OpenAPI 3.1 document
    tundrad rotate-secrets [OPTIONS]    re-seal secrets with the key file's first key
    tundrad new-secret-key              print a fresh key line for the key file
    tundrad backup [OPTIONS] FILE       SQLite: write a consistent copy of the database to FILE (new),
                                        while tundrad runs; PostgreSQL: use pg_dump (docs/reliability.md)
    tundrad restore [OPTIONS] FILE      SQLite: put a backup in place of the database (tundrad stopped;
                                        the database it replaces is kept beside it); the next start
                                        migrates it and resumes its unfinished operations

OPTIONS:
    --config FILE          TOML configuration [env TUNDRA_CONFIG]; see docs/guides/configuration.md.
    --listen ADDR          API address [env TUNDRA_LISTEN] [default 127.0.0.1:8180]; port 0 picks a free port.
    --data-dir DIR         Data dir [env TUNDRA_DATA_DIR] [default ./.tundra/data]: SQLite database,
                           images, secrets key file, bootstrap admin token.
    --database-url URL     sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [env TUNDRA_DATABASE_URL]
                           [default sqlite://DATA_DIR/tundra.db].
    --address-file FILE    Write the bound address (host:port) to FILE once listening.
    -h, --help             Print this help.
    -V, --version          Print the version.

On first start tundrad creates the user `admin` and writes its API token to
DATA_DIR/admin-token (mode 0600). Use it as TUNDRA_TOKEN, then create projects,
users and their tokens. Logs are JSON lines on stderr with a request_id on every
line of a request; RUST_LOG sets the level (default info).
";

enum Command {
    Serve,
    OpenApi,
    RotateSecrets,
    NewSecretKey,
    Backup,
    Restore,
}

struct Args {
    command: Command,
    config: Config,
    address_file: Option<PathBuf>,
    /// backup's and restore's FILE.
    file: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut command = Command::Serve;
    let mut config_file = std::env::var_os("TUNDRA_CONFIG").map(PathBuf::from);
    let (mut listen, mut data_dir, mut database_url, mut address_file, mut file) = (None, None, None, None, None);
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("openapi") => command = Command::OpenApi,
        Some("rotate-secrets") => command = Command::RotateSecrets,
        Some("new-secret-key") => command = Command::NewSecretKey,
        Some("backup") => command = Command::Backup,
        Some("restore") => command = Command::Restore,
        Some("serve") => {}
        _ => {}
    }
    if !matches!(args.peek().map(String::as_str), Some(a) if a.starts_with('-')) && args.peek().is_some() {
        args.next();
    }
    let takes_file = matches!(command, Command::Backup | Command::Restore);
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
            "--config" => config_file = Some(value("--config")?.into()),
            "--listen" => listen = Some(value("--listen")?),
            "--data-dir" => data_dir = Some(value("--data-dir")?),
            "--database-url" => database_url = Some(value("--database-url")?),
            "--address-file" => address_file = Some(PathBuf::from(value("--address-file")?)),
            other if takes_file && file.is_none() && !other.starts_with('-') => file = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let mut config = Config::load(config_file.as_deref(), |k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    if let Some(l) = listen {
        config.listen = parse_listen("--listen", &l).map_err(|e| e.to_string())?;
    }
    if let Some(d) = data_dir {
        config.data_dir = d.into();
    }
    if let Some(u) = database_url {
        config.database_url = Some(u);
    }
    if takes_file && file.is_none() {
        return Err("backup and restore need a FILE (see --help)".into());
    }
    Ok(Some(Args { command, config, address_file, file }))
}

/// Parse the arguments and run the command; the process's exit code.
pub fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("tundrad: starting the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tundrad: {e}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::OpenApi => {
            print!("{}", crate::http::openapi_json());
            return ExitCode::SUCCESS;
        }
        Command::NewSecretKey => {
            println!("{}", crate::secrets::new_key_line());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = match args.command {
        Command::RotateSecrets => rotate(args.config).await,
        Command::Backup => backup(&args.config, args.file.as_deref().unwrap_or(std::path::Path::new(""))).await,
        Command::Restore => restore(&args.config, args.file.as_deref().unwrap_or(std::path::Path::new(""))).await,
        _ => serve(args.config, args.address_file).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tundrad: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config, address_file: Option<PathBuf>) -> anyhow::Result<()> {
    use anyhow::Context;
    let server = crate::start(config).await?;
    if let Some(f) = &address_file {
        // Whole or not at all: a reader polling for the file never sees it empty.
        let mut tmp = f.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, server.addr.to_string())
            .and_then(|()| std::fs::rename(&tmp, f))
            .with_context(|| format!("writing {}", f.display()))?;
    }
    // Under systemd (`Type=notify`): migrated and listening, so a start or
    // an upgrade's restart waits for this and fails if it never comes.
    notify_systemd("READY=1");
    let result = server.run_until_signal().await;
    notify_systemd("STOPPING=1");
    result
}

/// Tell systemd how the service stands (`sd_notify`), when it runs us with
/// `NOTIFY_SOCKET` set; otherwise nothing.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let sent = match path.to_string_lossy().strip_prefix('@') {
        // An abstract socket name.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        }
        None => sock.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "telling systemd {state} failed");
    }
}

async fn rotate(config: Config) -> anyhow::Result<()> {
    let store = crate::open_store(&config).await?;
    let ring = crate::secrets::Keyring::load_or_create(&config.secrets_key_file())?;
    let n = ring.rotate(&store).await?;
    println!("re-sealed {n} secrets with key {}", ring.primary_id());
    Ok(())
}

/// `tundrad backup FILE`: a consistent copy of the SQLite database, taken
/// while tundrad runs. The secrets key file is not in it (it never touches
/// the database): back it up apart, or the sealed secrets cannot be opened.
pub async fn backup(config: &Config, to: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if config.sqlite_file().is_none() {
        anyhow::bail!(
            "tundrad backup copies a SQLite database; this site's is PostgreSQL: back it up with pg_dump -Fc \
             (see docs/reliability.md)"
        );
    }
    if to.exists() {
        anyhow::bail!("{} exists; give a new file", to.display());
    }
    if let Some(db) = config.sqlite_file().filter(|db| !db.exists()) {
        anyhow::bail!("there is no database at {}; are --data-dir and --database-url this site's?", db.display());
    }
    let store = tundra_store::Store::open(&config.database_url()).await.context("opening the database")?;
    let version = store.schema_version().await?;
    store.backup_into(to).await.with_context(|| format!("writing the backup to {}", to.display()))?;
    store.close().await;
    println!(
        "backed up the database (schema {version}) to {}; keep {} with it (apart), and the images dir {}",
        to.display(),
        config.secrets_key_file().display(),
        config.images_dir.clone().unwrap_or_else(|| config.data_dir.join("images")).display()
    );
    Ok(())
}

/// `tundrad restore FILE`: put a backup in place of the SQLite database,
/// with tundrad stopped (its lock file says so). The database it replaces
/// is kept beside it (`….before-restore-TIME`, its log folded in). The next start migrates
/// the backup if it is older and resumes its unfinished operations.
pub async fn restore(config: &Config, from: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let Some(db) = config.sqlite_file() else {
        anyhow::bail!(
            "tundrad restore replaces a SQLite database; this site's is PostgreSQL: restore it with pg_restore \
             (see docs/reliability.md)"
        );
    };
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _sole = crate::sole_sqlite_replica(config).map_err(|e| e.context("restore needs tundrad stopped"))?;
    // Read it as a database before anything is touched.
    let version = tundra_store::Store::sqlite_schema_version(from)
        .await
        .with_context(|| format!("{} is not a tundrad database", from.display()))?;
    let known = tundra_store::Store::known_sqlite_schema_version();
    if version > known {
        anyhow::bail!(
            "{} is a newer release's database (schema {version}; this tundrad knows up to {known}): restore it with that release",
            from.display()
        );
    }
    let mut staged = db.clone().into_os_string();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    std::fs::copy(from, &staged).with_context(|| format!("copying {} to {}", from.display(), staged.display()))?;
    std::fs::File::open(&staged).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", staged.display()))?;
    // The database it replaces is kept aside whole: its write-ahead log
    // folded in first, then a second name for the file. The backup then
    // takes the database's name in one rename, so a crash at any point
    // leaves one whole database there, the old or the restored.
    let with = |p: &std::path::Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let kept = if db.exists() {
        match tundra_store::Store::checkpoint_sqlite(&db).await {
            Ok(true) => {}
            Ok(false) => {
                anyhow::bail!("{} is in use (is a tundrad backup running?); restore once it is done", db.display())
            }
            // A damaged file: kept as it is, with its log (below).
            Err(e) => eprintln!("tundrad: could not fold {}'s log into it ({e}); keeping both", db.display()),
        }
        let aside = with(&db, &format!(".before-restore-{}", tundra_store::now().replace(':', "")));
        std::fs::hard_link(&db, &aside).with_context(|| format!("keeping {} as {}", db.display(), aside.display()))?;
        let log = with(&db, "-wal");
        if log.exists() {
            let kept_log = with(&aside, "-wal");
            std::fs::hard_link(&log, &kept_log).with_context(|| format!("keeping {}", log.display()))?;
        }
        Some(aside)
    } else {
        None
    };
    for suffix in ["-wal", "-shm"] {
        let side = with(&db, suffix);
        if side.exists() {
            std::fs::remove_file(&side).with_context(|| format!("removing {}", side.display()))?;
        }
    }
    std::fs::rename(&staged, &db).with_context(|| format!("putting the backup in place at {}", db.display()))?;
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    }
    match kept {
        Some(k) => println!(
            "restored {} (schema {version}) to {}; the database it replaced is {}",
            from.display(),
            db.display(),
            k.display()
        ),
        None => println!("restored {} (schema {version}) to {}", from.display(), db.display()),
    }
    Ok(())
}
