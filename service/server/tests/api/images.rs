//! Images: upload, qcow2 conversion with qemu-img, Range downloads, and
//! fetches that run as operations — surviving the caller's token expiring
//! and a `tundrad` restart.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Backend, Env, FileServer, sha256, wait_for};

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

pub async fn upload_convert_serve_with_range(b: Backend) {
    let mut env = Env::start(b, |_| {}).await;
    let t = env.admin.clone();
    let raw = pattern(1 << 20);
    let img = env
        .call("POST", "/v1/images", &t, Some(json!({"name": "rocky", "disk_format": "raw", "sha256": sha256(&raw)})))
        .await;
    assert_eq!(img.status, 201, "{}", img.body);
    assert_eq!(img.body["status"], "queued");
    let id = img.body["id"].as_str().unwrap().to_string();
    let up = env.raw(env.req("PUT", &format!("/v1/images/{id}/file"), &t).body(raw.clone())).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["status"], "active");
    assert_eq!(up.body["size_bytes"], raw.len());
    assert_eq!(up.body["raw_sha256"], sha256(&raw));
    // The bytes of an active image never change.
    env.raw(env.req("PUT", &format!("/v1/images/{id}/file"), &t).body(raw.clone())).await.problem(409);
    // Whole and ranged downloads.
    let all = env.raw(env.req("GET", &format!("/v1/images/{id}/file"), &t)).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.bytes, raw);
    let part = env.raw(env.req("GET", &format!("/v1/images/{id}/file"), &t).header("range", "bytes=1000-1999")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 1000-1999/{}", raw.len()));
    assert_eq!(part.bytes, raw[1000..2000]);

    // qcow2: converted to raw with qemu-img; the raw digest is the original's.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.raw");
    std::fs::write(&src, &raw).unwrap();
    let qcow = dir.path().join("disk.qcow2");
    let ok =
        Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "qcow2"]).arg(&src).arg(&qcow).status().unwrap();
    assert!(ok.success());
    let qbytes = std::fs::read(&qcow).unwrap();
    let img = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"name": "rocky-q", "disk_format": "qcow2", "sha256": sha256(&qbytes)})),
        )
        .await;
    let qid = img.body["id"].as_str().unwrap().to_string();
    let up = env.raw(env.req("PUT", &format!("/v1/images/{qid}/file"), &t).body(qbytes.clone())).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["raw_sha256"], sha256(&raw));
    assert_eq!(up.body["size_bytes"], raw.len());
    // A qcow2 with a backing file is refused (it could read host files).
    let backed = dir.path().join("backed.qcow2");
    let ok = Command::new("qemu-img")
        .args(["create", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&src)
        .arg(&backed)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bbytes = std::fs::read(&backed).unwrap();
    let img = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"name": "backed", "disk_format": "qcow2", "sha256": sha256(&bbytes)})),
        )
        .await;
    let bid = img.body["id"].as_str().unwrap().to_string();
    let r = env.raw(env.req("PUT", &format!("/v1/images/{bid}/file"), &t).body(bbytes)).await;
    assert!(r.problem(422).contains("backing file"));
    // Nor can a qcow2 name host files another way, or unpack beyond the limit:
    // real images, made by qemu-img.
    let secret = dir.path().join("host-secret");
    let crafted: [(&str, Vec<String>, &str); 3] = [
        // An external data file: qemu-img convert would read it.
        (
            "data-file",
            vec!["-o".into(), format!("data_file={},data_file_raw=on", dir.path().join("data").display())],
            "external data file",
        ),
        // A backing file given as a json: block-driver description.
        (
            "json-backing",
            vec![
                "-u".into(),
                "-F".into(),
                "raw".into(),
                "-b".into(),
                format!(r#"json:{{"driver":"file","filename":"{}"}}"#, secret.display()),
            ],
            "backing file",
        ),
        // 100 TiB of virtual size in a few MB of file.
        ("huge", vec![], "virtual size"),
    ];
    std::fs::write(&secret, b"host secret").unwrap();
    for (name, args, why) in crafted {
        let path = dir.path().join(format!("{name}.qcow2"));
        let size = if name == "huge" { "100T" } else { "1M" };
        let out =
            Command::new("qemu-img").args(["create", "-f", "qcow2"]).args(&args).arg(&path).arg(size).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&path).unwrap();
        let body = json!({"name": name, "disk_format": "qcow2", "sha256": sha256(&bytes)});
        let id = env.call("POST", "/v1/images", &t, Some(body)).await.body["id"].as_str().unwrap().to_string();
        let r = env.raw(env.req("PUT", &format!("/v1/images/{id}/file"), &t).body(bytes)).await;
        assert!(r.problem(422).contains(why), "{name}: {}", r.body);
        let got = env.call("GET", &format!("/v1/images/{id}"), &t, None).await;
        assert_eq!(got.body["status"], "error", "{name}: {}", got.body);
        assert!(!env.config.data_dir.join("images").join(format!("{id}.raw")).exists(), "{name} left bytes");
    }

    // Delete removes the bytes.
    assert_eq!(env.call("DELETE", &format!("/v1/images/{id}"), &t, None).await.status, 204);
    assert!(!env.config.data_dir.join("images").join(format!("{id}.raw")).exists());
    let m = env.call("GET", "/metrics", "", None).await;
    assert!(m.body.as_str().unwrap().contains("tundra_images{status=\"active\"} 1"), "{}", m.body);

    // qemu-img runs under a time limit: past it, it is stopped and the image refused.
    env.restart(|c| c.image_convert_timeout = "1ms".into()).await;
    let img = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"name": "slow-q", "disk_format": "qcow2", "sha256": sha256(&qbytes)})),
        )
        .await;
    let sid = img.body["id"].as_str().unwrap().to_string();
    let r = env.raw(env.req("PUT", &format!("/v1/images/{sid}/file"), &t).body(qbytes)).await;
    assert!(r.problem(422).contains("image_convert_timeout"), "{}", r.body);
    env.stop().await;
}

pub async fn fetch_survives_token_expiry_and_restart(b: Backend) {
    // 2 MiB in 32 chunks, 100 ms apart: ~3 s per fetch.
    let bytes = pattern(2 << 20);
    let files = FileServer::start(bytes.clone(), Duration::from_millis(100)).await;
    let prefix = files.prefix();
    let mut env = Env::start(b, |c| c.image_source_allow = vec![prefix.clone()]).await;
    let p = env.project("astro").await;
    let member = env.user_with_role("m", "astro", "member").await;
    // A token that lives 1 s.
    let short = env.call("POST", "/v1/tokens", &member, Some(json!({"expires_in": 1}))).await;
    assert_eq!(short.status, 201, "{}", short.body);
    let short = short.body["secret"].as_str().unwrap().to_string();
    let img = env
        .call("POST", "/v1/images", &short, Some(json!({"project_id": p, "name": "slow", "disk_format": "raw", "sha256": sha256(&bytes), "source_url": files.url("slow.raw")})))
        .await;
    assert_eq!(img.status, 202, "{}", img.body);
    assert_eq!(img.body["status"], "importing");
    let id = img.body["id"].as_str().unwrap().to_string();
    let op = img.body["operation_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let d = env.call("GET", &format!("/v1/images/{id}"), &short, None).await.problem(401);
    assert!(d.contains("expired"), "{d}");
    wait_for("the import to finish", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &member, None).await.body["state"] == "succeeded"
    })
    .await;
    let done = env.call("GET", &format!("/v1/images/{id}"), &member, None).await;
    assert_eq!(done.body["status"], "active", "{}", done.body);
    assert_eq!(done.body["raw_sha256"], sha256(&bytes));
    let opv = env.call("GET", &format!("/v1/operations/{op}"), &member, None).await;
    assert_eq!(opv.body["progress_done"], bytes.len());
    assert_eq!(opv.body["progress_total"], bytes.len());
    assert_eq!(opv.body["created_by"], "m");

    // A restart mid-fetch: the operation resumes and finishes.
    let img = env
        .call("POST", "/v1/images", &member, Some(json!({"project_id": p, "name": "resumed", "disk_format": "raw", "sha256": sha256(&bytes), "source_url": files.url("r.raw")})))
        .await;
    let id = img.body["id"].as_str().unwrap().to_string();
    let op = img.body["operation_id"].as_str().unwrap().to_string();
    wait_for("progress", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &member, None).await.body["progress_done"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;
    env.restart(|_| {}).await;
    wait_for("the resumed import", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &member, None).await.body["state"] == "succeeded"
    })
    .await;
    let opv = env.call("GET", &format!("/v1/operations/{op}"), &member, None).await;
    assert_eq!(opv.body["attempts"], 2, "{}", opv.body);
    assert_eq!(env.call("GET", &format!("/v1/images/{id}"), &member, None).await.body["status"], "active");
    // The history says what happened, and who.
    let ev = env.call("GET", &format!("/v1/events?object_type=image&object_id={id}"), &member, None).await;
    let actions: Vec<(String, String)> = ev.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().into(), e["action"].as_str().unwrap().into()))
        .collect();
    assert_eq!(actions, [("m".to_string(), "created".to_string()), ("tundrad".into(), "imported".into())]);
    // A URL outside the allow-list is refused up front.
    let r = env.call("POST", "/v1/images", &member, Some(json!({"project_id": p, "name": "x", "disk_format": "raw", "sha256": sha256(b""), "source_url": "http://127.0.0.1:1/images/x"}))).await;
    assert!(r.problem(400).contains("image_source_allow"));
    env.stop().await;
}
