//! Backup and restore (SQLite): `tundrad backup` copies the database while
//! tundrad runs an image import; the copy, restored on a fresh data dir
//! (with the key file brought along), starts as the same site and finishes
//! the import it had under way. Restore refuses while a tundrad runs on
//! the file, and refuses a file that is not a tundrad database.

use std::time::Duration;

use serde_json::json;
use tundrad::config::Config;

use crate::harness::{Backend, Env, FileServer, sha256, wait_for};

pub async fn a_restored_site_resumes_its_operations() {
    let bytes: Vec<u8> = (0..1_048_576u32).map(|i| (i % 239) as u8).collect();
    let files = FileServer::start(bytes.clone(), Duration::from_millis(200)).await;
    let env = Env::start(Backend::Sqlite, |c| c.image_source_allow = vec![files.prefix()]).await;
    let t = env.admin.clone();
    let img = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"name": "big", "disk_format": "raw", "sha256": sha256(&bytes), "source_url": files.url("big.raw")})),
        )
        .await;
    assert_eq!(img.status, 202, "{}", img.body);
    let (image, op) =
        (img.body["id"].as_str().unwrap().to_string(), img.body["operation_id"].as_str().unwrap().to_string());
    wait_for("the import to be under way", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body["progress_done"].as_u64().unwrap_or(0) > 0
    })
    .await;

    // Backed up while it runs; a backup never overwrites a file.
    let out = tempfile::tempdir().unwrap();
    let backup = out.path().join("site.db");
    tundrad::cli::backup(&env.config, &backup).await.unwrap();
    let again = tundrad::cli::backup(&env.config, &backup).await.unwrap_err();
    assert!(format!("{again:#}").contains("exists"), "{again:#}");
    let key = std::fs::read(env.config.secrets_key_file()).unwrap();
    env.stop().await;

    // A fresh machine: its own data dir, the site's key file brought along.
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        image_source_allow: vec![files.prefix()],
        ..Config::default()
    };
    std::fs::create_dir_all(&config.data_dir).unwrap();
    tundrad::secrets::write_private(&config.secrets_key_file(), &String::from_utf8(key).unwrap()).unwrap();
    let junk = out.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let e = tundrad::cli::restore(&config, &junk).await.unwrap_err();
    assert!(format!("{e:#}").contains("junk.db"), "{e:#}");
    assert!(!config.data_dir.join("tundra.db").exists(), "a refused restore writes nothing");
    tundrad::cli::restore(&config, &backup).await.unwrap();

    // The restored site: the same admin, and the import it had under way
    // resumes and finishes.
    let server = tundrad::start(config.clone()).await.unwrap();
    let running = tundrad::cli::restore(&config, &backup).await.unwrap_err();
    let says = format!("{running:#}");
    assert!(says.contains("restore needs tundrad stopped") && says.contains("another tundrad is running"), "{says}");
    let env =
        Env { server: Some(server), config, _dir: dir, _pg: None, admin: t.clone(), http: reqwest::Client::new() };
    wait_for("the import to finish on the restored site", async || {
        let s = env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body["state"].clone();
        s == "succeeded" || s == "failed"
    })
    .await;
    let o = env.call("GET", &format!("/v1/operations/{op}"), &t, None).await.body;
    assert_eq!(o["state"], "succeeded", "{o}");
    assert_eq!(o["attempts"], 2, "resumed from the backup, not finished in it: {o}");
    let got = env.raw(env.req("GET", &format!("/v1/images/{image}/file"), &t)).await;
    assert_eq!(got.bytes.len(), bytes.len());
    assert!(got.bytes == bytes, "the image's bytes");

    // Restoring over a database keeps that one beside it, whole.
    let Env { server, config, _dir: dir, .. } = env;
    server.unwrap().stop().await.unwrap();
    tundrad::cli::restore(&config, &backup).await.unwrap();
    let kept: Vec<_> = std::fs::read_dir(&config.data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tundra.db.before-restore-") && !p.to_string_lossy().ends_with("-wal"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        tundra_store::Store::sqlite_schema_version(&kept[0]).await.unwrap(),
        tundra_store::Store::known_sqlite_schema_version()
    );
    drop(dir);
}
