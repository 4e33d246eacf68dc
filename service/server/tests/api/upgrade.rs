//! Upgrading in place: a store an earlier release made is opened by this
//! tundrad, migrated, and the operations pending at the upgrade run to
//! their end — from the release before typed work (migrations 0001–0006,
//! operations as a kind string and loose JSON input), and from the release
//! before replicas (0001–0017, operations with no owner or lease).

use std::time::Duration;

use serde_json::json;
use sqlx::Executor;
use tundrad::config::Config;
use tundrad::secrets::{Keyring, Plaintext};

use crate::harness::{Backend, Env, FileServer, Pg, sha256, wait_for};
use crate::peers;

/// An earlier release's schema: its migrations (those numbered below
/// `before`), run as it ran them.
async fn previous_release(url: &str, backend: &str, before: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../store/migrations/{backend}"));
    let old = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&all).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < before {
            std::fs::copy(&p, old.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&pool).await.unwrap();
    pool
}

async fn insert(pool: &sqlx::AnyPool, sql: &str, values: &[String]) {
    let mut q = sqlx::query(sql);
    for v in values {
        q = q.bind(v.clone());
    }
    pool.execute(q).await.unwrap();
}

/// A store an earlier release left (its migrations below `before`), the
/// config of the tundrad that upgrades it (fetching images from `files`),
/// and a pool on it to write what that release wrote.
struct OldStore {
    dir: tempfile::TempDir,
    pg: Option<Pg>,
    config: Config,
    pool: sqlx::AnyPool,
}

async fn old_store(b: Backend, before: &str, files: &FileServer) -> OldStore {
    let dir = tempfile::tempdir().unwrap();
    let pg = match b {
        Backend::Sqlite => None,
        Backend::Postgres => Some(Pg::start().unwrap_or_else(|e| panic!("{e}"))),
    };
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        database_url: pg.as_ref().map(|p| p.url.clone()),
        image_source_allow: vec![files.prefix()],
        ..Config::default()
    };
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let url = match b {
        Backend::Sqlite => format!("{}?mode=rwc", config.database_url()),
        Backend::Postgres => config.database_url(),
    };
    let pool = previous_release(&url, if b == Backend::Sqlite { "sqlite" } else { "postgres" }, before).await;
    OldStore { dir, pg, config, pool }
}

/// Start this tundrad on the old store (closing the old release's pool).
async fn upgrade(old: OldStore) -> Env {
    old.pool.close().await;
    let server = tundrad::start(old.config.clone()).await.unwrap();
    let admin = std::fs::read_to_string(old.config.admin_token_file()).unwrap().trim().to_string();
    Env { server: Some(server), config: old.config, _dir: old.dir, _pg: old.pg, admin, http: reqwest::Client::new() }
}

/// An image being imported from `files` (`name`) as an earlier release
/// recorded it, with its operation's ID: returns (image, operation).
async fn importing_image(pool: &sqlx::AnyPool, files: &FileServer, name: &str, sha: &str) -> (String, String) {
    let (image, import) =
        (tundra_api::ImageId::generate().to_string(), tundra_api::OperationId::generate().to_string());
    insert(
        pool,
        "INSERT INTO images (id, project_id, scope, name, description, disk_format, sha256, source_url, status, size_bytes, \
         raw_sha256, error, operation_id, created_at, updated_at, revision) \
         VALUES ($1, NULL, 'public', $2, '', 'raw', $3, $4, 'importing', NULL, NULL, NULL, $5, $6, $6, 1)",
        &[image.clone(), name.into(), sha.into(), files.url(&format!("{name}.raw")), import.clone(), tundra_store::now()],
    )
    .await;
    (image, import)
}

pub async fn a_pending_operation_of_the_previous_release_runs_to_its_end(b: Backend) {
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let files = FileServer::start(bytes.clone(), Duration::ZERO).await;
    let old = old_store(b, "0007", &files).await;
    let (pool, config) = (&old.pool, old.config.clone());
    let bmc_port = peers::free_udp_port();
    let _bmc = peers::ipmi_bmc(old.dir.path(), bmc_port);

    // What the previous release wrote: an image being imported, and a
    // machine with a power action under way — each with its operation in
    // the old shape — and an operation of a kind no release knows.
    let now = tundra_store::now();
    let sha = sha256(&bytes);
    let (image, import) = importing_image(pool, &files, "old", &sha).await;
    let op = "INSERT INTO operations (id, project_id, kind, target_type, target_id, state, progress_done, progress_total, \
              message, error, created_by, attempts, input, created_at, updated_at) \
              VALUES ($1, NULL, $2, $3, $4, 'pending', 0, NULL, 'accepted', NULL, 'admin', 0, $5, $6, $6)";
    insert(pool, op, &[import.clone(), "image.import".into(), "image".into(), image.clone(), "{}".into(), now.clone()])
        .await;
    let keyring = Keyring::load_or_create(&config.secrets_key_file()).unwrap();
    let secret = keyring.seal(tundra_api::SecretId::generate(), &Plaintext(b"password".to_vec()));
    insert(
        pool,
        "INSERT INTO secrets (id, key_id, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        &[secret.id.to_string(), secret.key_id.clone(), secret.nonce.clone(), secret.ciphertext.clone(), now.clone()],
    )
    .await;
    let (machine, power) =
        (tundra_api::MachineId::generate().to_string(), tundra_api::OperationId::generate().to_string());
    let bmc = json!({"driver": "ipmi", "address": format!("127.0.0.1:{bmc_port}"), "username": "admin"}).to_string();
    insert(
        pool,
        "INSERT INTO machines (id, name, resource_class, traits, properties, location, bmc, bmc_secret_id, interfaces, \
         power_state, provision_state, maintenance, maintenance_reason, maintenance_by, last_error, operation_id, bmc_failures, \
         created_at, updated_at, revision) \
         VALUES ($1, 'old-m', 'baremetal', '[]', '{}', '{}', $2, $3, '[{\"mac\":\"52:54:00:ee:00:01\",\"pxe\":true}]', \
         'off', 'manageable', 0, NULL, NULL, NULL, $4, 0, $5, $5, 1)",
        &[machine.clone(), bmc, secret.id.to_string(), power.clone(), now.clone()],
    )
    .await;
    let input = json!({"action": "power_on", "from": "manageable"}).to_string();
    insert(pool, op, &[power.clone(), "machine.power".into(), "machine".into(), machine.clone(), input, now.clone()])
        .await;
    let unknown = tundra_api::OperationId::generate().to_string();
    let odd = json!({"warp": 9}).to_string();
    insert(pool, op, &[unknown.clone(), "machine.teleport".into(), "machine".into(), machine.clone(), odd, now]).await;

    // The new tundrad opens it, migrates it and resumes.
    let env = upgrade(old).await;
    let t = env.admin.clone();
    let op = |id: String| {
        let env = &env;
        let t = t.clone();
        async move { env.call("GET", &format!("/v1/operations/{id}"), &t, None).await.body }
    };
    wait_for("the import to end", async || {
        op(import.clone()).await["state"] != "pending" && op(import.clone()).await["state"] != "running"
    })
    .await;
    let o = op(import.clone()).await;
    assert_eq!(
        (o["state"].as_str(), o["kind"].as_str(), o["attempts"].as_i64()),
        (Some("succeeded"), Some("image.import"), Some(1)),
        "{o}"
    );
    let img = env.call("GET", &format!("/v1/images/{image}"), &t, None).await.body;
    assert_eq!((img["status"].as_str(), img["raw_sha256"].as_str()), (Some("active"), Some(sha.as_str())), "{img}");
    let bytes_back = env.raw(env.req("GET", &format!("/v1/images/{image}/file"), &t)).await;
    assert_eq!(bytes_back.bytes, bytes);

    wait_for("the power action to end", async || {
        let s = op(power.clone()).await["state"].as_str().unwrap_or("").to_string();
        s == "succeeded" || s == "failed"
    })
    .await;
    let o = op(power.clone()).await;
    assert_eq!(o["state"], "succeeded", "{o}");
    let m = env.call("GET", &format!("/v1/machines/{machine}"), &t, None).await.body;
    assert_eq!((m["power_state"].as_str(), m["provision_state"].as_str()), (Some("on"), Some("manageable")), "{m}");
    assert_eq!(m["operation_id"], json!(null), "{m}");

    // Work no release knows fails alone, saying why; tundrad runs on.
    let o = op(unknown).await;
    assert_eq!(o["state"], "failed", "{o}");
    assert!(o["error"].as_str().unwrap().contains("cannot run this operation"), "{o}");
    env.stop().await;
}

/// The release before replicas (migrations up to 0017) left an image
/// import pending: operations had no owner then. This tundrad migrates,
/// claims it as its own and runs it to its end.
pub async fn an_operation_pending_before_replicas_is_claimed_and_run(b: Backend) {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let files = FileServer::start(bytes.clone(), Duration::ZERO).await;
    let old = old_store(b, "0018", &files).await;
    let pool = &old.pool;
    let now = tundra_store::now();
    let sha = sha256(&bytes);
    let (image, import) = importing_image(pool, &files, "pending-at-upgrade", &sha).await;
    let work = json!({"kind": "image.import", "image_id": image}).to_string();
    insert(
        pool,
        "INSERT INTO operations (id, project_id, kind, target_type, target_id, state, progress_done, progress_total, \
         message, error, created_by, attempts, input, created_at, updated_at) \
         VALUES ($1, NULL, 'image.import', 'image', $2, 'pending', 0, NULL, 'accepted', NULL, 'admin', 0, $3, $4, $4)",
        &[import.clone(), image.clone(), work, now],
    )
    .await;
    let env = upgrade(old).await;
    let t = env.admin.clone();
    wait_for("the import to end", async || {
        let s = env.call("GET", &format!("/v1/operations/{import}"), &t, None).await.body["state"].clone();
        s == "succeeded" || s == "failed"
    })
    .await;
    let o = env.call("GET", &format!("/v1/operations/{import}"), &t, None).await.body;
    assert_eq!((o["state"].as_str(), o["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{o}");
    let img = env.call("GET", &format!("/v1/images/{image}"), &t, None).await.body;
    assert_eq!((img["status"].as_str(), img["raw_sha256"].as_str()), (Some("active"), Some(sha.as_str())), "{img}");
    // Claimed by this tundrad: the replica that ran it is on record.
    let url = match &env._pg {
        Some(p) => p.url.clone(),
        None => format!("{}?mode=ro", env.config.database_url()),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let owner: Option<String> =
        sqlx::query_scalar("SELECT owner FROM operations WHERE id = $1").bind(import).fetch_one(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(owner.as_deref(), Some(env.state().conductor.replica()));
    env.stop().await;
}
