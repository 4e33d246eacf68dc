//! `tundra-store`: the only code that knows SQL.
//!
//! One code path serves both backends through sqlx's `Any` driver: SQLite (a
//! file in the data dir — the embedded default) and PostgreSQL (several
//! `tundrad` replicas may share it). Queries use `$N` placeholders, which both
//! accept, and portable column types (TEXT, BIGINT). Migrations are numbered,
//! append-only, and kept per backend so a backend-specific step can be added
//! without touching the other.
//!
//! Every change writes its event (who, what, when) in the same transaction as
//! the change itself: the audit log can never disagree with the data. Row
//! types never leave this crate; callers get `tundra_api` views.

mod agent;
mod appliances;
mod catalog;
mod clusters;
mod discovery;
mod idempotency;
mod identity;
mod leases;
mod machines;
mod networks;
mod nodes;
mod ops;
mod physical_networks;
mod ports;
mod quotas;
mod secrets;
mod shares;
mod sql;
mod subnets;
mod switch_ports;
mod switches;
mod table;
mod templates;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use tundra_api::ProjectId;

pub use agent::AgentSession;
pub use appliances::{
    ApplianceJudged, ApplianceMemberRecord, ApplianceRecord, NewAppliance, NewApplianceTemplate, TemplateSpec,
};
pub use catalog::{FlavorChanges, ImageImported, NewFlavor, NewImage, NewKeypair};
pub use clusters::{ClusterJudged, ClusterRecord, MemberRecord, NewCluster, NewClusterSecrets, NewClusterTemplate};
pub use discovery::DiscoverySession;
pub use idempotency::{Claim, StoredResponse};
pub use identity::{NewToken, ProjectPatch, TokenRecord};
pub use leases::{LeaseHolder, Signals};
pub use machines::{
    MachineChanges, MachineFilter, MachineInOperation, MachineNics, MachinePlace, MachineState, NewMachine,
    PlacementCandidate, PowerObservation,
};
pub use networks::{NewNetwork, SegmentChoice};
pub use nodes::{AddressPool, Binder, Claimed, NewNode, NodeAtMachine, NodeChanges, NodeStep};
pub use ops::{NewOperation, OperationInput};
pub use physical_networks::NewPhysicalNetwork;
pub use ports::{Bound, NewPort, PortWant};
pub use quotas::QuotaKind;
pub use secrets::SecretRecord;
pub use shares::{NewAccess, NewShare, NewShareType, ShareChanges, ShareDone, ShareRecord, ceph_id};
pub use subnets::NewSubnet;
pub use switch_ports::SwitchPortRecord;
pub use switches::{NewSwitch, SwitchChanges};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The packaging test's "next release" (`tundrad-upgrade-probe`): when
/// on, `migrate` applies one migration more than this release has
/// (`upgrade-probe/`). Off in tundrad; a switch rather than a cargo feature
/// so the probe is one more link of the workspace's build, not a second
/// compilation of the store and everything above it.
static UPGRADE_PROBE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn the extra migration on for this process (the probe's `main` only).
pub fn enable_upgrade_probe() {
    UPGRADE_PROBE.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn upgrade_probe(backend: Backend, real: &sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("upgrade-probe/sqlite");
    static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("upgrade-probe/postgres");
    let probe = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let all: Vec<_> = real.iter().chain(probe.iter()).cloned().collect();
    sqlx::migrate::Migrator { migrations: std::borrow::Cow::Owned(all), ..sqlx::migrate::Migrator::DEFAULT }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What went wrong in the store. Callers map these to problem documents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{noun} {id:?} not found")]
    NotFound { noun: &'static str, id: String },
    /// A uniqueness or reference rule would be broken; the message says which.
    #[error("{0}")]
    Conflict(String),
    /// As `Conflict`, caused by one field of the request (a JSON pointer).
    #[error("{pointer}: {detail}")]
    ConflictAt { pointer: String, detail: String },
    /// Nothing left to allocate (machines, addresses); the message says what ran out.
    #[error("{0}")]
    NoCapacity(String),
    /// Optimistic concurrency: the object changed since the caller read it.
    #[error("{noun} {id} is at revision {current}, not {expected}")]
    RevisionMismatch { noun: &'static str, id: String, expected: i64, current: i64 },
    #[error("database URL {0:?} is not sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("applying migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A project's quota would be exceeded; the message says which and who can raise it.
    #[error("{0}")]
    Quota(String),
    #[error("stored {table} row is corrupt: {what}")]
    Corrupt { table: &'static str, what: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who is making a change, for the event it writes.
#[derive(Debug, Clone)]
pub struct Actor {
    /// User name, or `tundrad` for the service's own work.
    pub name: String,
    pub request_id: Option<String>,
}

impl Actor {
    /// The service itself (operations, reconcilers, bootstrap).
    pub fn service() -> Actor {
        Actor { name: "tundrad".into(), request_id: None }
    }
}

/// Keyset pagination and the filters every list shares.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub limit: u32,
    /// Return objects with IDs after this one.
    pub after: Option<String>,
    pub name: Option<String>,
}

/// Which project-owned objects a caller may see.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Site admins: everything.
    All,
    /// Public objects (where the noun has them) plus these projects' objects.
    Projects(Vec<ProjectId>),
    /// Only public objects.
    PublicOnly,
    /// Only this project's objects.
    Project(ProjectId),
}

/// The store: a connection pool and, for SQLite, a writer lock.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    // SQLite allows one writer; taking this lock before BEGIN turns would-be
    // SQLITE_BUSY upgrade failures into an orderly queue. PostgreSQL needs none.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    quota_defaults: QuotaDefaults,
    // The replica this store serves and its lease: new operations are its own.
    replica: Replica,
    // PostgreSQL: where to open the replicas' signal listener (never shown).
    pg_url: Option<Arc<str>>,
    // Bumped by every write that can change who a token is (tokens, users,
    // roles, projects), so that caches of principals know they are stale.
    identity: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Connect to `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match backend {
            Backend::Sqlite => options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    // Per connection; the busy timeout first, so nothing
                    // after it fails at once on a lock another connection holds.
                    conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        };
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            // Once per database (it stays in the file): readers never wait
            // for the writer. Setting it on every new connection made
            // connections opened during a burst of writes fail as "locked".
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let quota_defaults = Arc::new(std::sync::RwLock::new(QuotaLimits::NONE));
        let pg_url = (backend == Backend::Postgres).then(|| Arc::from(url.as_str()));
        Ok(Store {
            pool,
            backend,
            writer,
            quota_defaults,
            replica: Default::default(),
            pg_url,
            identity: Default::default(),
        })
    }

    /// Apply every migration not yet applied. Safe to run on every start.
    /// On PostgreSQL, migrations a newer release applied are left alone
    /// (they are additive): during a rolling upgrade a replica of this
    /// release may start again on the schema a newer one migrated.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut migrator = if UPGRADE_PROBE.load(std::sync::atomic::Ordering::SeqCst) {
            upgrade_probe(self.backend, migrator)
        } else {
            sqlx::migrate::Migrator { migrations: migrator.migrations.clone(), ..sqlx::migrate::Migrator::DEFAULT }
        };
        // PostgreSQL only: replicas upgrade one at a time there. A SQLite
        // site runs one release at a time; an older one refuses a newer
        // database (restore the backup taken before the upgrade instead).
        migrator.set_ignore_missing(self.backend == Backend::Postgres);
        migrator.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    /// The newest migration applied to the database (shown by `/v1/info`,
    /// so an operator sees that an upgrade migrated).
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
        Ok(v.unwrap_or(0))
    }

    /// SQLite: write a consistent copy of the whole database to `to` (a new
    /// file), while tundrad runs (`VACUUM INTO`). PostgreSQL sites back up
    /// with its own tools (pg_dump).
    pub async fn backup_into(&self, to: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "a PostgreSQL database is backed up with pg_dump (see docs/reliability.md)".into(),
            ));
        }
        sqlx::query("VACUUM INTO $1").bind(to.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// A SQLite file's schema version, read without writing to it (a
    /// backup about to be restored); an error if it is not a database
    /// tundrad made.
    pub async fn sqlite_schema_version(path: &std::path::Path) -> Result<i64> {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true).connect().await?;
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut conn).await?;
        sqlx::Connection::close(conn).await?;
        Ok(v.unwrap_or(0))
    }

    /// Fold a SQLite file's write-ahead log into it, so the file alone
    /// holds every committed change. False when another connection (a
    /// backup under way) kept part of the log from being folded in.
    pub async fn checkpoint_sqlite(path: &std::path::Path) -> Result<bool> {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(path).connect().await?;
        let (busy, log, folded): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut conn).await?;
        sqlx::Connection::close(conn).await?;
        Ok(busy == 0 && folded == log)
    }

    /// The newest SQLite migration this tundrad knows (a backup newer than
    /// it cannot be restored by it).
    pub fn known_sqlite_schema_version() -> i64 {
        SQLITE_MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Begin a write transaction (holding the SQLite writer lock).
    pub(crate) async fn write(&self) -> Result<Write> {
        let guard = match &self.writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        // SQLite: the writer lock serialises whole transactions, and each
        // takes SQLite's write lock as it begins (IMMEDIATE), waiting out
        // the busy timeout: a transaction dropped on an error is rolled back
        // on its connection only after our lock is released, and a deferred
        // one that read first would then fail at once as "locked".
        // PostgreSQL: rows read to be changed are locked (FOR UPDATE), so a
        // read-check-write (If-Match, state checks) cannot interleave.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let lock_rows = guard.is_none();
        Ok(Write {
            tx,
            _guard: guard,
            lock_rows,
            quota_defaults: self.quota_defaults.clone(),
            replica: self.replica.clone(),
        })
    }
}

/// Per-project limits, one per quota kind (`quotas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    pub nodes: u64,
    pub networks: u64,
    pub addresses: u64,
    pub image_bytes: u64,
}

impl QuotaLimits {
    /// No limits (a store nobody configured: tools and tests).
    pub const NONE: QuotaLimits =
        QuotaLimits { nodes: u64::MAX, networks: u64::MAX, addresses: u64::MAX, image_bytes: u64::MAX };
}

/// The replica a store serves, and how long its leases last: operations
/// it makes are its own from the start (none set: nobody's, so the first
/// replica that looks claims them). Shared by every clone of a store.
pub(crate) type Replica = Arc<std::sync::RwLock<Option<(String, Duration)>>>;

/// The site's default quotas, shared by every clone of a store.
pub(crate) type QuotaDefaults = Arc<std::sync::RwLock<QuotaLimits>>;

/// A write transaction; dropped without `commit` it rolls back.
pub(crate) struct Write {
    pub tx: Transaction<'static, Any>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Read rows `FOR UPDATE` (PostgreSQL).
    pub lock_rows: bool,
    /// The site's default quotas (`quotas::check`).
    pub quota_defaults: QuotaDefaults,
    /// Who owns the operations this transaction makes (`leases`).
    pub replica: Replica,
}

impl Write {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// The current time as stored: RFC 3339, UTC, milliseconds.
/// Which column a path segment names: `id` when it is an ID (a UUID),
/// else `name`. Never both: a name cannot stand in for another object's ID.
pub(crate) fn id_or_name(key: &str) -> &'static str {
    if key.parse::<ProjectId>().is_ok() { "id" } else { "name" }
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A stored time plus a duration, in the stored form.
pub fn time_after(d: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() + d).to_string()
}

/// A stored time a duration ago, in the stored form (compares as text).
pub fn time_before(d: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - d).to_string()
}

/// Parse a stored time.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Map a unique-constraint violation to a conflict saying what to do.
pub(crate) fn unique(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(message()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::Conflict("it refers to an object that does not exist".into())
        }
        _ => StoreError::Database(e),
    }
}

/// [`unique`], blaming the request field at `pointer`.
pub(crate) fn unique_at(e: sqlx::Error, pointer: String, message: impl FnOnce() -> String) -> StoreError {
    match unique(e, message) {
        StoreError::Conflict(detail) => StoreError::ConflictAt { pointer, detail },
        other => other,
    }
}

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(col).map_err(StoreError::Database)
}

/// A JSON text column decoded; a bad value is a corrupt row of `table`.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: &AnyRow,
    col: &'static str,
) -> Result<T> {
    let s: String = get(row, col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt { table, what: format!("{col}: {e}") })
}

/// Plain data as a JSON text column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

/// One row by ID inside a write transaction, decoded by `f` (and locked
/// until the transaction ends, on PostgreSQL); `NotFound` names the noun.
pub(crate) async fn fetch_in<T>(
    w: &mut Write,
    table: &'static str,
    noun: &'static str,
    id: String,
    f: fn(&AnyRow) -> Result<T>,
) -> Result<T> {
    let lock = if w.lock_rows { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT * FROM {table} WHERE id = $1{lock}"))
        .bind(id.clone())
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound { noun, id })?;
    f(&row)
}

/// Lock a row for the rest of the transaction (PostgreSQL; SQLite's writer
/// lock already serialises writers), for checks that read *other* rows the
/// write depends on — a network's subnets, say.
pub(crate) async fn lock_row(w: &mut Write, table: &'static str, noun: &'static str, id: String) -> Result<()> {
    let lock = if w.lock_rows { " FOR UPDATE" } else { "" };
    sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1{lock}"))
        .bind(id.clone())
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound { noun, id })?;
    Ok(())
}

impl Store {
    /// One row by ID, decoded by `f`; `NotFound` names the noun.
    pub(crate) async fn fetch<T>(
        &self,
        table: &'static str,
        noun: &'static str,
        id: String,
        f: fn(&AnyRow) -> Result<T>,
    ) -> Result<T> {
        let row = sqlx::query(&format!("SELECT * FROM {table} WHERE id = $1"))
            .bind(id.clone())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun, id })?;
        f(&row)
    }
}

/// Optimistic concurrency: `If-Match` names the revision the caller read.
pub(crate) fn check_revision(noun: &'static str, id: &str, current: i64, if_match: Option<i64>) -> Result<()> {
    match if_match {
        Some(expected) if expected != current => {
            Err(StoreError::RevisionMismatch { noun, id: id.to_string(), expected, current })
        }
        _ => Ok(()),
    }
}

pub(crate) fn parse_id<T: std::str::FromStr>(table: &'static str, s: &str) -> Result<T> {
    s.parse().map_err(|_| StoreError::Corrupt { table, what: format!("id {s:?}") })
}

/// A typed ID column.
pub(crate) fn id_col<T: std::str::FromStr>(table: &'static str, row: &AnyRow, col: &str) -> Result<T> {
    parse_id(table, &get::<String>(row, col)?)
}

/// A nullable typed ID column.
pub(crate) fn opt_id_col<T: std::str::FromStr>(table: &'static str, row: &AnyRow, col: &str) -> Result<Option<T>> {
    get::<Option<String>>(row, col)?.map(|s| parse_id(table, &s)).transpose()
}

/// A BIGINT column holding a segment, MTU or limit.
/// A column holding a word of `T` (its `parse`); anything else is a corrupt row.
pub(crate) fn word<T>(table: &'static str, row: &AnyRow, col: &'static str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: String = get(row, col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt { table, what: format!("{col} {s:?}") })
}

pub(crate) fn u32_col(row: &AnyRow, col: &str) -> Result<u32> {
    Ok(get::<i64>(row, col)? as u32)
}

pub(crate) fn opt_u32_col(row: &AnyRow, col: &str) -> Result<Option<u32>> {
    Ok(get::<Option<i64>>(row, col)?.map(|v| v as u32))
}

/// A row whose name and description change (networks, ports).
pub(crate) struct Named {
    pub table: &'static str,
    pub noun: &'static str,
    pub project: Option<ProjectId>,
    pub id: String,
    /// The conflict message; `{}` is the name asked for.
    pub taken: &'static str,
}

/// Set a row's name and description (each kept when not given) and record it.
pub(crate) async fn rename(
    w: &mut Write,
    actor: &Actor,
    x: Named,
    cur: (String, String),
    name: Option<String>,
    description: Option<String>,
) -> Result<()> {
    let new_name = name.clone().unwrap_or(cur.0);
    sqlx::query(&format!(
        "UPDATE {} SET name = $1, description = $2, updated_at = $3, revision = revision + 1 WHERE id = $4",
        x.table
    ))
    .bind(new_name.clone())
    .bind(description.clone().unwrap_or(cur.1))
    .bind(now())
    .bind(x.id.clone())
    .execute(&mut *w.tx)
    .await
    .map_err(|e| unique(e, || x.taken.replace("{}", &format!("{new_name:?}"))))?;
    event(w, actor, x.project, x.noun, &x.id, "updated", json!({"name": name, "description": description})).await
}

/// Write an event inside the caller's transaction.
pub(crate) async fn event(
    w: &mut Write,
    actor: &Actor,
    project: Option<ProjectId>,
    object_type: &str,
    object_id: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (id, at, actor, project_id, object_type, object_id, action, detail, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tundra_api::EventId::generate().to_string())
    .bind(now())
    .bind(actor.name.clone())
    .bind(project.map(|p| p.to_string()))
    .bind(object_type.to_string())
    .bind(object_id.to_string())
    .bind(action.to_string())
    .bind(detail.to_string())
    .bind(actor.request_id.clone())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_errors() {
        assert_eq!(redact_url("postgres://tundra:s3cret@db/tundra"), "postgres://tundra:***@db/tundra");
        assert_eq!(redact_url("mysql://x"), "mysql://x");
    }

    #[test]
    fn migrations_are_numbered_and_exist_for_both_backends() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let (s, p) = (names("sqlite"), names("postgres"));
        assert_eq!(s, p, "every migration needs a SQLite and a PostgreSQL version with the same number and name");
        for (i, n) in s.iter().enumerate() {
            assert!(n.starts_with(&format!("{:04}_", i + 1)), "{n} is out of sequence");
        }
    }

    /// Migrations are append-only: once released, a file never changes (a
    /// store that ran it would refuse to start: sqlx checks its checksum).
    /// `migrations/RELEASED` holds each migration's checksum as sqlx
    /// computes it; `UPDATE_GENERATED=1` adds lines for new migrations and
    /// never rewrites one that is there.
    #[test]
    fn released_migrations_never_change() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/RELEASED");
        let released = std::fs::read_to_string(&path).unwrap_or_default();
        let mut missing = String::new();
        for (backend, m) in [("sqlite", &SQLITE_MIGRATIONS), ("postgres", &POSTGRES_MIGRATIONS)] {
            for mig in m.iter() {
                let key = format!("{backend} {:04}", mig.version);
                let sum: String = mig.checksum.iter().map(|b| format!("{b:02x}")).collect();
                match released.lines().find(|l| l.starts_with(&format!("{key} "))) {
                    Some(line) => assert_eq!(
                        line,
                        format!("{key} {sum}"),
                        "{key} ({}) changed after its release; add a new migration instead",
                        mig.description
                    ),
                    None => missing.push_str(&format!("{key} {sum}\n")),
                }
            }
        }
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, format!("{released}{missing}")).unwrap();
        } else {
            assert!(missing.is_empty(), "new migrations: run scripts/generate.sh to record them\n{missing}");
        }
    }

    #[test]
    fn times_round_trip() {
        let t = now();
        assert!(t.ends_with('Z') && t.len() == 24, "{t}");
        assert!(parse_time(&t).is_some());
        assert!(time_after(Duration::from_secs(60)) > t);
    }
}
