//! Shares through the API against a real single-node Ceph (mon, mgr, OSD
//! on memstore, MDS; `scripts/peers/ceph.sh`): share types with their
//! credential sealed, shares made, extended and shrunk (never below what
//! they hold), snapshots and a share cloned from one, access rules granted
//! and taken back — each checked with the `ceph` CLI itself — projects kept
//! apart, bad input refused at its field, and a tundrad stopped right after
//! accepting a share and a rule converging after its restart with nothing
//! stranded on Ceph. And NFS-Ganesha and GlusterFS on a file server
//! tundrad manages over SSH, each checked through a real client.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Env, Resp};
use crate::peers::{Ceph, Nas};

const GIB: u64 = 1 << 30;

async fn until(env: &Env, token: &str, path: &str, what: &str, ok: impl Fn(&Resp) -> bool) -> Resp {
    for _ in 0..1200 {
        let r = env.call("GET", path, token, None).await;
        if ok(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = env.call("GET", path, token, None).await;
    panic!("timed out waiting for {what}: {} {}", r.status, r.body);
}

async fn until_status(env: &Env, token: &str, path: &str, field: &str, want: &str) -> Value {
    until(env, token, path, &format!("{path} {field} = {want}"), |r| r.status == 200 && r.body[field] == want)
        .await
        .body
}

async fn until_gone(env: &Env, token: &str, path: &str) {
    until(env, token, path, &format!("{path} gone"), |r| r.status == 404).await;
}

fn pointer(r: &Resp, status: u16) -> String {
    r.problem(status);
    r.body["errors"][0]["pointer"].as_str().unwrap_or("").to_string()
}

/// The subvolume group and name of a share, as tundrad names them.
fn backend_name(project: &str, share: &str) -> (String, String) {
    (project.replace('-', ""), share.replace('-', ""))
}

fn subvolume_info(ceph: &Ceph, project: &str, share: &str) -> Result<Value, String> {
    let (g, n) = backend_name(project, share);
    ceph.cli(&["fs", "subvolume", "info", "tundra", &n, "--group_name", &g])
}

fn subvolumes(ceph: &Ceph, project: &str) -> Vec<String> {
    let (g, _) = backend_name(project, "");
    match ceph.cli(&["fs", "subvolume", "ls", "tundra", "--group_name", &g]) {
        Ok(v) => v.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap().to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

fn tundra_auth_ids(ceph: &Ceph) -> Vec<String> {
    let v = ceph.cli(&["auth", "ls"]).unwrap();
    let mut out: Vec<String> = v["auth_dump"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entity"].as_str())
        .filter(|e| e.starts_with("client.tundra."))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// A ceph-fuse mount on the host, unmounted when dropped.
struct Fuse {
    dir: tempfile::TempDir,
}

impl Fuse {
    fn mount(secret: &Value) -> Result<Fuse, String> {
        let dir = tempfile::Builder::new().prefix("tundra-share-").tempdir().unwrap();
        let id = secret["ceph_id"].as_str().unwrap();
        let keyring = dir.path().join("keyring");
        std::fs::write(&keyring, format!("[client.{id}]\n\tkey = {}\n", secret["key"].as_str().unwrap())).unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("ceph-fuse")
            .args(["--conf", "/dev/null", "-m"])
            .arg(secret["monitors"][0].as_str().unwrap())
            .args(["--id", id, "--keyring"])
            .arg(&keyring)
            .arg("-r")
            .arg(secret["path"].as_str().unwrap())
            .arg(&mnt)
            .output()
            .unwrap();
        let mounted = std::fs::read_to_string("/proc/mounts").unwrap().contains(&*mnt.to_string_lossy());
        if !out.status.success() || !mounted {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Fuse { dir })
    }
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn write_mib(path: &Path, mib: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..mib {
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

pub async fn cephfs_shares_rules_snapshots_and_restarts(b: Backend) {
    let ceph = Ceph::start("127.0.0.1");
    let mut env = Env::start(b, |_| {}).await;
    let admin = env.admin.clone();
    let astro = env.project("astro").await;
    let other = env.project("other").await;
    let alice = env.user_with_role("alice", "astro", "member").await;
    let olga = env.user_with_role("olga", "other", "member").await;

    // Share types: bad settings refused at their field, nothing written.
    let good = json!({"name": "cephfs", "backend": "cephfs", "settings": {"monitors": [ceph.monitor], "fs_name": "tundra"}, "credential": ceph.key});
    for (body, at) in [
        (
            json!({"name": "x", "backend": "cephfs", "settings": {"fs_name": "tundra"}, "credential": ceph.key}),
            "/settings/monitors",
        ),
        (
            json!({"name": "x", "backend": "cephfs", "settings": {"monitors": ["nohost"], "fs_name": "tundra"}, "credential": ceph.key}),
            "/settings/monitors/0",
        ),
        (
            json!({"name": "x", "backend": "cephfs", "settings": {"monitors": [ceph.monitor]}, "credential": ceph.key}),
            "/settings/fs_name",
        ),
        (
            json!({"name": "x", "backend": "cephfs", "settings": {"monitors": [ceph.monitor], "fs_name": "tundra"}, "credential": "secret"}),
            "/credential",
        ),
        (json!({"name": "x", "backend": "nfs"}), "/settings/ssh_address"),
        (
            json!({"name": "x", "backend": "cephfs", "settings": {"monitors": [ceph.monitor], "fs_name": "tundra", "root": "/srv"}, "credential": ceph.key}),
            "/settings/root",
        ),
        (json!({"name": "x", "backend": "zfs"}), "/backend"),
    ] {
        let r = env.call("POST", "/v1/share-types", &admin, Some(body)).await;
        assert_eq!(pointer(&r, 400), at, "{}", r.body);
    }
    let r = env.call("POST", "/v1/share-types", &alice, Some(good.clone())).await;
    r.problem(403);
    assert_eq!(env.call("GET", "/v1/share-types", &admin, None).await.body["items"], json!([]));
    let r = env.call("POST", "/v1/share-types", &admin, Some(good)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["has_credential"], true);
    assert!(!r.body.to_string().contains(&ceph.key), "the credential came back");
    let ty = r.body["id"].as_str().unwrap().to_string();
    // Every signed-in user reads share types.
    assert_eq!(env.call("GET", &format!("/v1/share-types/{ty}"), &olga, None).await.status, 200);

    // Bad shares.
    for (body, at) in [
        (json!({"project_id": astro, "name": "s", "share_type_id": ty, "size_gib": 0}), "/size_gib"),
        (json!({"project_id": astro, "name": "s", "share_type_id": astro, "size_gib": 1}), "/share_type_id"),
        (
            json!({"project_id": astro, "name": "s", "share_type_id": ty, "size_gib": 1, "networks": [astro]}),
            "/networks/0",
        ),
    ] {
        let r = env.call("POST", "/v1/shares", &alice, Some(body)).await;
        assert_eq!(pointer(&r, 400), at, "{}", r.body);
    }
    assert_eq!(env.call("GET", "/v1/shares", &alice, None).await.body["items"], json!([]));

    // A share: creating → available, with Ceph's quota at its size.
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &alice,
            Some(json!({"project_id": astro, "name": "data", "share_type_id": ty, "size_gib": 2})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "creating");
    let share = r.body["id"].as_str().unwrap().to_string();
    let sp = format!("/v1/shares/{share}");
    let s = until_status(&env, &alice, &sp, "status", "available").await;
    let loc = s["export_locations"][0]["path"].as_str().unwrap();
    assert!(loc.starts_with(&format!("{}:/volumes/", ceph.monitor)), "{loc}");
    assert_eq!(subvolume_info(&ceph, &astro, &share).unwrap()["bytes_quota"], 2 * GIB);
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &alice,
            Some(json!({"project_id": astro, "name": "data", "share_type_id": ty, "size_gib": 1})),
        )
        .await;
    assert_eq!(pointer(&r, 409), "/name");

    // A node mounting twice at one point, or at a system directory, is refused at the entry.
    for (mounts, at) in [
        (
            json!([{"share_id": share, "mount_point": "/data"}, {"share_id": share, "mount_point": "/data"}]),
            "/shares/1/mount_point",
        ),
        (json!([{"share_id": share, "mount_point": "/etc"}]), "/shares/0/mount_point"),
    ] {
        let body = json!({"project_id": astro, "name": "n", "flavor_id": astro, "image_id": astro, "shares": mounts});
        let r = env.call("POST", "/v1/nodes", &alice, Some(body)).await;
        assert_eq!(pointer(&r, 400), at, "{}", r.body);
    }

    // Rules: two on one share, queued → active; keys only from …/secret.
    let rule =
        |to: &str, level: &str| json!({"share_id": share, "kind": "cephx", "access_to": to, "access_level": level});
    for (body, at, status) in [
        (json!({"share_id": share, "kind": "ip", "access_to": "10.0.0.0/24"}), "/kind", 400),
        (rule("10.0.0.0/24", "rw"), "/access_to", 400),
        (rule("node-x", "rw"), "/access_to", 400),
    ] {
        let r = env.call("POST", "/v1/share-access", &alice, Some(body)).await;
        assert_eq!(pointer(&r, status), at, "{}", r.body);
    }
    let r = env.call("POST", "/v1/share-access", &alice, Some(rule("writer", "rw"))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(matches!(r.body["state"].as_str(), Some("queued" | "applying" | "active")), "{}", r.body);
    let writer = r.body["id"].as_str().unwrap().to_string();
    let r = env.call("POST", "/v1/share-access", &alice, Some(rule("reader", "ro"))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let reader = r.body["id"].as_str().unwrap().to_string();
    let r = env.call("POST", "/v1/share-access", &alice, Some(rule("writer", "ro"))).await;
    assert_eq!(pointer(&r, 409), "/access_to");
    let w = until_status(&env, &alice, &format!("/v1/share-access/{writer}"), "state", "active").await;
    until_status(&env, &alice, &format!("/v1/share-access/{reader}"), "state", "active").await;
    assert!(w["ceph_id"].as_str().unwrap().starts_with(&format!("tundra.{}.", astro.replace('-', ""))));
    let path = subvolume_info(&ceph, &astro, &share).unwrap()["path"].as_str().unwrap().to_string();
    for (id, caps) in [(&writer, format!("allow rw path={path}")), (&reader, format!("allow r path={path}"))] {
        let r = env.call("GET", &format!("/v1/share-access/{id}/secret"), &alice, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("cache-control"), "no-store");
        let entity = format!("client.{}", r.body["ceph_id"].as_str().unwrap());
        let got = ceph.cli(&["auth", "get", &entity]).unwrap();
        assert_eq!(got[0]["caps"]["mds"], caps, "{got}");
        assert_eq!(got[0]["key"], r.body["key"]);
        assert!(r.body["fstab"].as_str().unwrap().contains("fuse.ceph"));
    }
    // No key in the rule's own view.
    let secret = env.call("GET", &format!("/v1/share-access/{writer}/secret"), &alice, None).await.body;
    assert!(!w.to_string().contains(secret["key"].as_str().unwrap()));

    // Another project sees none of it, and its own "writer" is another cephx ID.
    assert_eq!(env.call("GET", &sp, &olga, None).await.status, 404);
    assert_eq!(env.call("GET", &format!("/v1/share-access/{writer}/secret"), &olga, None).await.status, 404);
    let r = env.call("POST", "/v1/share-access", &olga, Some(rule("writer", "rw"))).await;
    r.problem(404);
    let r = env
        .call("POST", "/v1/share-access", &alice, Some(json!({"share_id": other, "kind": "cephx", "access_to": "x"})))
        .await;
    r.problem(404);
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &olga,
            Some(json!({"project_id": other, "name": "mine", "share_type_id": ty, "size_gib": 1})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let mine = r.body["id"].as_str().unwrap().to_string();
    until_status(&env, &olga, &format!("/v1/shares/{mine}"), "status", "available").await;
    let r = env
        .call(
            "POST",
            "/v1/share-access",
            &olga,
            Some(json!({"share_id": mine, "kind": "cephx", "access_to": "writer"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let theirs = r.body["id"].as_str().unwrap().to_string();
    let t = until_status(&env, &olga, &format!("/v1/share-access/{theirs}"), "state", "active").await;
    assert_ne!(t["ceph_id"], w["ceph_id"]);
    // Olga's key opens her share, not Alice's path.
    let olga_secret = env.call("GET", &format!("/v1/share-access/{theirs}/secret"), &olga, None).await.body;
    let mut guessed = olga_secret.clone();
    guessed["path"] = json!(path);
    assert!(Fuse::mount(&guessed).is_err(), "another project's key mounted this share");

    // Write 1.2 GiB through the writer's key; a shrink below that is refused.
    {
        let fuse = Fuse::mount(&secret).expect("the writer's key mounts the share");
        write_mib(&fuse.path().join("big"), 1200).unwrap();
        std::fs::write(fuse.path().join("marker"), "hello from astro").unwrap();
        let ro = Fuse::mount(&env.call("GET", &format!("/v1/share-access/{reader}/secret"), &alice, None).await.body)
            .expect("the reader's key mounts the share");
        assert_eq!(std::fs::read_to_string(ro.path().join("marker")).unwrap(), "hello from astro");
        assert!(std::fs::write(ro.path().join("nope"), "x").is_err(), "a read-only key wrote");
    }
    for _ in 0..300 {
        if subvolume_info(&ceph, &astro, &share).unwrap()["bytes_used"].as_u64().unwrap() > GIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = env.call("PATCH", &sp, &alice, Some(json!({"size_gib": 1}))).await;
    assert_eq!(pointer(&r, 409), "/size_gib");
    assert!(r.body["detail"].as_str().unwrap().contains("holds 1.1"), "{}", r.body);
    assert_eq!(subvolume_info(&ceph, &astro, &share).unwrap()["bytes_quota"], 2 * GIB);
    let r = env.call("PATCH", &sp, &alice, Some(json!({"size_gib": 0}))).await;
    assert_eq!(pointer(&r, 400), "/size_gib");

    // Extend in place, then shrink back (above what it holds).
    let r = env.call("PATCH", &sp, &alice, Some(json!({"size_gib": 3}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(matches!(r.body["status"].as_str(), Some("extending" | "available")), "{}", r.body);
    until_status(&env, &alice, &sp, "status", "available").await;
    assert_eq!(subvolume_info(&ceph, &astro, &share).unwrap()["bytes_quota"], 3 * GIB);
    let r = env.call("PATCH", &sp, &alice, Some(json!({"size_gib": 2}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    until(&env, &alice, &sp, "shrunk", |r| r.body["status"] == "available" && r.body["size_gib"] == 2).await;
    assert_eq!(subvolume_info(&ceph, &astro, &share).unwrap()["bytes_quota"], 2 * GIB);

    // Snapshot, and a share made from it holding the same files.
    let r = env.call("POST", "/v1/share-snapshots", &alice, Some(json!({"share_id": share, "name": "before"}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["id"].as_str().unwrap().to_string();
    until_status(&env, &alice, &format!("/v1/share-snapshots/{snap}"), "status", "available").await;
    let (g, n) = backend_name(&astro, &share);
    let snaps = ceph.cli(&["fs", "subvolume", "snapshot", "ls", "tundra", &n, "--group_name", &g]).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &alice,
            Some(json!({"project_id": astro, "name": "copy", "share_type_id": ty, "size_gib": 1, "snapshot_id": snap})),
        )
        .await;
    assert_eq!(pointer(&r, 409), "/size_gib");
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &alice,
            Some(json!({"project_id": astro, "name": "copy", "share_type_id": ty, "size_gib": 2, "snapshot_id": snap})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let copy = r.body["id"].as_str().unwrap().to_string();
    let r = env.call("DELETE", &format!("/v1/share-snapshots/{snap}"), &alice, None).await;
    assert!(r.status == 409 || r.status == 202, "{}", r.body);
    until_status(&env, &alice, &format!("/v1/shares/{copy}"), "status", "available").await;
    let r = env
        .call(
            "POST",
            "/v1/share-access",
            &alice,
            Some(json!({"share_id": copy, "kind": "cephx", "access_to": "copier"})),
        )
        .await;
    let copier = r.body["id"].as_str().unwrap().to_string();
    until_status(&env, &alice, &format!("/v1/share-access/{copier}"), "state", "active").await;
    {
        let s = env.call("GET", &format!("/v1/share-access/{copier}/secret"), &alice, None).await.body;
        let fuse = Fuse::mount(&s).expect("the copy mounts");
        assert_eq!(std::fs::read_to_string(fuse.path().join("marker")).unwrap(), "hello from astro");
    }

    // Deletes are refused while rules or snapshots hold the share.
    let r = env.call("DELETE", &sp, &alice, None).await;
    assert!(r.problem(409).contains("access rule"), "{}", r.body);
    // A client still mounted with the writer's key when its rule goes is evicted.
    let held = Fuse::mount(&secret).expect("the writer's key mounts the share");
    std::fs::write(held.path().join("while-granted"), "x").unwrap();
    for id in [&writer, &reader] {
        let r = env.call("DELETE", &format!("/v1/share-access/{id}"), &alice, None).await;
        assert_eq!(r.status, 202, "{}", r.body);
        until_gone(&env, &alice, &format!("/v1/share-access/{id}")).await;
    }
    let entity = format!("client.{}", w["ceph_id"].as_str().unwrap());
    assert!(ceph.cli(&["auth", "get", &entity]).is_err(), "{entity} is still on Ceph");
    let target = held.path().join("after-revoke");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::write(target, "x"));
    });
    // A write that blocks instead of failing is refused too.
    if let Ok(r) = rx.recv_timeout(Duration::from_secs(30)) {
        assert!(r.is_err(), "an evicted client wrote");
    }
    drop(held);
    let r = env.call("DELETE", &format!("/v1/share-snapshots/{snap}"), &alice, None).await;
    if r.status == 202 {
        until_gone(&env, &alice, &format!("/v1/share-snapshots/{snap}")).await;
    } else {
        assert_eq!(r.status, 404, "{}", r.body);
    }
    let r = env.call("DELETE", &sp, &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &sp).await;
    // The copy goes with force, its rule taken back first.
    let r = env.call("DELETE", &format!("/v1/shares/{copy}?force=maybe"), &alice, None).await;
    assert_eq!(pointer(&r, 400), "/force");
    let r = env.call("DELETE", &format!("/v1/shares/{copy}?force=true"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/shares/{copy}")).await;
    assert_eq!(subvolumes(&ceph, &astro), Vec::<String>::new());

    // tundrad stopped right after accepting a share and a rule: after its
    // restart both converge, and Ceph holds exactly what the API lists.
    let r = env
        .call(
            "POST",
            "/v1/shares",
            &alice,
            Some(json!({"project_id": astro, "name": "cut", "share_type_id": ty, "size_gib": 1})),
        )
        .await;
    let cut = r.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(150)).await;
    env.restart(|_| {}).await;
    until_status(&env, &alice, &format!("/v1/shares/{cut}"), "status", "available").await;
    let r = env
        .call("POST", "/v1/share-access", &alice, Some(json!({"share_id": cut, "kind": "cephx", "access_to": "cut"})))
        .await;
    let cut_rule = r.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(150)).await;
    env.restart(|_| {}).await;
    let cr = until_status(&env, &alice, &format!("/v1/share-access/{cut_rule}"), "state", "active").await;
    assert_eq!(subvolumes(&ceph, &astro), vec![backend_name(&astro, &cut).1]);
    let want: Vec<String> = {
        let mut v = vec![
            format!("client.{}", cr["ceph_id"].as_str().unwrap()),
            format!("client.{}", t["ceph_id"].as_str().unwrap()),
        ];
        v.sort();
        v
    };
    assert_eq!(tundra_auth_ids(&ceph), want);
    let r = env.call("DELETE", &format!("/v1/shares/{cut}?force=true"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/shares/{cut}")).await;
    assert_eq!(subvolumes(&ceph, &astro), Vec::<String>::new());
    assert_eq!(tundra_auth_ids(&ceph), vec![format!("client.{}", t["ceph_id"].as_str().unwrap())]);

    // A share type with shares cannot go; the project with a share cannot either.
    let r = env.call("DELETE", &format!("/v1/share-types/{ty}"), &admin, None).await;
    r.problem(409);
    let r = env.call("DELETE", "/v1/projects/other", &admin, None).await;
    assert!(r.problem(409).contains("share"), "{}", r.body);
    // The admin key never reached a response or an event.
    let events = env.call("GET", "/v1/events?limit=500", &admin, None).await;
    assert!(!events.body.to_string().contains(&ceph.key));
    env.stop().await;
}

/// `nfs://` URL of a path in an NFS share (NFSv4, libnfs's user-space client).
fn nfs_url(export: &str, file: &str) -> String {
    let (host, path) = export.split_once(':').unwrap();
    format!("nfs://{host}{path}{file}?version=4")
}

/// Copy with `nfs-cp` (either side may be an `nfs://` URL).
fn nfs_cp(from: &str, to: &str) -> Result<(), String> {
    let out = Command::new("nfs-cp").args([from, to]).output().expect("nfs-cp (apt: libnfs-utils)");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

/// The names in an NFS share's top directory, or why it could not be read.
fn nfs_ls(export: &str) -> Result<Vec<String>, String> {
    let out = Command::new("nfs-ls").arg(nfs_url(export, "")).output().expect("nfs-ls (apt: libnfs-utils)");
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(String::from)
        .collect())
}

/// A GlusterFS FUSE mount on the host, unmounted when dropped.
struct GlusterMount {
    dir: tempfile::TempDir,
}

impl GlusterMount {
    /// Mount `server:/volume`; `Err` when the server does not let this client in.
    async fn mount(export: &str) -> Result<GlusterMount, String> {
        let (server, volume) = export.split_once(":/").unwrap();
        let dir = tempfile::Builder::new().prefix("tundra-gluster-").tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let log = dir.path().join("client.log");
        let out = Command::new("glusterfs")
            .arg(format!("--volfile-server={server}"))
            .arg(format!("--volfile-id={volume}"))
            .arg(format!("--log-file={}", log.display()))
            .arg(&mnt)
            .output()
            .expect("glusterfs (apt: glusterfs-client)");
        let m = GlusterMount { dir };
        // It mounts at once and handshakes with the brick after: mounted is
        // not let in. A lookup that reaches the brick says so (ENOENT); a
        // refused client gets ENOTCONN, and its mount goes within
        // milliseconds. Mounted before and after the lookup: a mount that
        // goes between leaves it reading the empty directory under it.
        let mounted = || std::fs::read_to_string("/proc/mounts").unwrap().contains(&*mnt.to_string_lossy());
        for _ in 0..50 {
            if mounted()
                && std::fs::metadata(mnt.join(".no-such-file")).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                && mounted()
            {
                return Ok(m);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{} {}", String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(&log).unwrap_or_default()))
    }
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for GlusterMount {
    fn drop(&mut self) {
        // (A refused mount is already gone.)
        let _ = Command::new("umount").arg("-l").arg(self.path()).stderr(std::process::Stdio::null()).status();
    }
}

/// NFS-Ganesha and GlusterFS on a file server tundrad manages over SSH
/// (`scripts/peers/nas.sh`): bad settings refused at their field; each a
/// share made, a client outside its rules refused, let in by a rule, writing
/// and reading back through a real client; NFS snapshots and a share from
/// one; GlusterFS's quota and refusals (snapshots, read-only rules); rules
/// taken back; shares deleted with nothing left on the server.
pub async fn nfs_and_glusterfs_shares_on_a_file_server(b: Backend) {
    let nas = Nas::start();
    let env = Env::start(b, |_| {}).await;
    let admin = env.admin.clone();
    let astro = env.project("astro").await;
    let alice = env.user_with_role("alice", "astro", "member").await;
    let ssh = format!("{}:22", nas.address);
    let nfs = json!({"name": "nfs", "backend": "nfs", "credential": nas.key, "settings": {
        "ssh_address": ssh, "host_key": nas.host_key, "server": nas.address, "root": nas.nfs_root,
        "exports_file": nas.exports_file, "pid_file": nas.pid_file}});
    let gluster = json!({"name": "gluster", "backend": "glusterfs", "credential": nas.key, "settings": {
        "ssh_address": ssh, "host_key": nas.host_key, "server": nas.address, "root": nas.gluster_root}});
    let with = |base: &Value, path: &str, v: Value| {
        let mut x = base.clone();
        *x.pointer_mut(path).unwrap() = v;
        x
    };
    for (body, at) in [
        (with(&nfs, "/settings/ssh_address", json!("nohost")), "/settings/ssh_address"),
        (with(&nfs, "/settings/host_key", json!("ab:cd")), "/settings/host_key"),
        (with(&nfs, "/settings/root", json!("srv")), "/settings/root"),
        (with(&nfs, "/settings/exports_file", json!(null)), "/settings/exports_file"),
        (with(&nfs, "/credential", json!("hunter2")), "/credential"),
        (with(&gluster, "/settings/server", json!("10.0.0.1:24007")), "/settings/server"),
        (with(&gluster, "/settings/root", json!(["x"])), ""),
    ] {
        let r = env.call("POST", "/v1/share-types", &admin, Some(body)).await;
        if at.is_empty() {
            r.problem(400);
        } else {
            assert_eq!(pointer(&r, 400), at, "{}", r.body);
        }
    }
    let nfs_settings_body = nfs.clone();
    let mut ids = Vec::new();
    for body in [nfs, gluster] {
        let r = env.call("POST", "/v1/share-types", &admin, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(!r.body.to_string().contains("PRIVATE KEY"), "the credential came back");
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let (nfs_ty, gluster_ty) = (ids[0].clone(), ids[1].clone());
    let r = env.call("GET", &format!("/v1/share-types/{gluster_ty}"), &alice, None).await;
    assert_eq!(r.body["legacy"], true);

    let make = |name: &str, ty: &str| json!({"project_id": astro, "name": name, "share_type_id": ty, "size_gib": 1});
    let rule = |share: &str, to: &str, level: &str| json!({"share_id": share, "kind": "ip", "access_to": to, "access_level": level});
    let add_rule = async |share: &str, to: &str, level: &str| -> String {
        let r = env.call("POST", "/v1/share-access", &alice, Some(rule(share, to, level))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        until_status(&env, &alice, &format!("/v1/share-access/{id}"), "state", "active").await;
        id
    };
    let me = format!("{}/32", nas.client_address);

    // A file server that takes the connection and never answers (each
    // call waits out its 60 s timeout): its type's share waits, and holds
    // up no other type's.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_at = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let mut stuck = with(&nfs_settings_body, "/settings/ssh_address", json!(silent_at));
    stuck["name"] = json!("silent");
    let r = env.call("POST", "/v1/share-types", &admin, Some(stuck)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = env.call("POST", "/v1/shares", &alice, Some(make("waits", r.body["id"].as_str().unwrap()))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let waits = r.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // ---- NFS ----
    // Four shares at once: the worker makes them side by side, and the one
    // exports file they all go into keeps every export.
    let r = env.call("POST", "/v1/shares", &alice, Some(make("home", &nfs_ty))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let home = r.body["id"].as_str().unwrap().to_string();
    let mut more = Vec::new();
    for name in ["more-1", "more-2", "more-3"] {
        let r = env.call("POST", "/v1/shares", &alice, Some(make(name, &nfs_ty))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        more.push(r.body["id"].as_str().unwrap().to_string());
    }
    for id in &more {
        until_status(&env, &alice, &format!("/v1/shares/{id}"), "status", "available").await;
    }
    let s = until_status(&env, &alice, &format!("/v1/shares/{home}"), "status", "available").await;
    let exports = std::fs::read_to_string(&nas.exports_file).unwrap();
    let mut ids: Vec<&str> = exports
        .lines()
        .filter(|l| l.starts_with("# tundra-share "))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four shares, four exports with IDs of their own:\n{exports}");
    // A copy that fails on the server (the share's directory lost there)
    // puts its snapshot in error with the server's reason, once.
    let lost = format!("{}/{}/{}", nas.nfs_root, astro.replace('-', ""), more[0].replace('-', ""));
    std::fs::remove_dir_all(&lost).unwrap();
    let r = env.call("POST", "/v1/share-snapshots", &alice, Some(json!({"share_id": more[0], "name": "broken"}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let broken = r.body["id"].as_str().unwrap().to_string();
    let b = until_status(&env, &alice, &format!("/v1/share-snapshots/{broken}"), "status", "error").await;
    assert!(b["status_reason"].as_str().unwrap().contains("failed on the server"), "{b}");
    let r = env.call("DELETE", &format!("/v1/share-snapshots/{broken}"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/share-snapshots/{broken}")).await;
    let w = env.call("GET", &format!("/v1/shares/{waits}"), &alice, None).await.body;
    assert_eq!((w["status"].as_str(), w["status_reason"].as_str()), (Some("creating"), None), "{w}");
    let export = s["export_locations"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(export, format!("{}:/{}/{}", nas.address, astro.replace('-', ""), home.replace('-', "")));
    let r = env
        .call("POST", "/v1/share-access", &alice, Some(json!({"share_id": home, "kind": "cephx", "access_to": "x"})))
        .await;
    assert_eq!(pointer(&r, 400), "/kind");
    // A rule for other addresses: this client is still refused.
    let others = add_rule(&home, "10.99.0.0/24", "rw").await;
    assert!(nfs_ls(&export).is_err(), "a client outside every rule listed the share");
    let rw = add_rule(&home, &me, "rw").await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("note.txt");
    std::fs::write(&local, "hello from astro over NFS").unwrap();
    nfs_cp(local.to_str().unwrap(), &nfs_url(&export, "/note.txt")).expect("a client in the rule writes");
    let back = dir.path().join("back.txt");
    nfs_cp(&nfs_url(&export, "/note.txt"), back.to_str().unwrap()).expect("and reads back");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello from astro over NFS");
    assert_eq!(nfs_ls(&export).unwrap(), ["note.txt"]);
    // The exports file says who: the rules' CIDRs, nothing more.
    let exports = std::fs::read_to_string(&nas.exports_file).unwrap();
    assert!(exports.contains(&format!("Clients = 10.99.0.0/24, {me}; Access_Type = RW;")), "{exports}");
    // A snapshot, and a share made from it holding the file.
    let r = env.call("POST", "/v1/share-snapshots", &alice, Some(json!({"share_id": home, "name": "s1"}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["id"].as_str().unwrap().to_string();
    until_status(&env, &alice, &format!("/v1/share-snapshots/{snap}"), "status", "available").await;
    let mut copy = make("copy", &nfs_ty);
    copy["snapshot_id"] = json!(snap);
    let r = env.call("POST", "/v1/shares", &alice, Some(copy)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let copy = r.body["id"].as_str().unwrap().to_string();
    let s = until_status(&env, &alice, &format!("/v1/shares/{copy}"), "status", "available").await;
    let copy_export = s["export_locations"][0]["path"].as_str().unwrap().to_string();
    add_rule(&copy, &me, "ro").await;
    assert_eq!(nfs_ls(&copy_export).unwrap(), ["note.txt"]);
    assert!(nfs_cp(local.to_str().unwrap(), &nfs_url(&copy_export, "/x.txt")).is_err(), "a read-only rule wrote");
    // The rule taken back: refused again.
    let r = env.call("DELETE", &format!("/v1/share-access/{rw}"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/share-access/{rw}")).await;
    assert!(nfs_ls(&export).is_err(), "a rule taken back still let the client in");
    // Use shows; the size is an allowance (no quota on Ganesha's VFS).
    let s = until(&env, &alice, &format!("/v1/shares/{home}"), "home's use", |r| {
        r.body["used_bytes"].as_i64().is_some_and(|u| u > 0)
    })
    .await;
    assert!(s.body["used_bytes"].as_i64().unwrap() >= 25, "{}", s.body);
    let _ = others;

    // ---- GlusterFS ----
    let r = env.call("POST", "/v1/shares", &alice, Some(make("scratch", &gluster_ty))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let scratch = r.body["id"].as_str().unwrap().to_string();
    let s = until_status(&env, &alice, &format!("/v1/shares/{scratch}"), "status", "available").await;
    let gexport = s["export_locations"][0]["path"].as_str().unwrap().to_string();
    let vol = format!("tundra-{}-{}", astro.replace('-', ""), scratch.replace('-', ""));
    assert_eq!(gexport, format!("{}:/{vol}", nas.address));
    let quota = nas.ssh(&format!("gluster --xml volume quota {vol} list /")).unwrap();
    assert!(quota.contains(&format!("<hard_limit>{GIB}</hard_limit>")), "{quota}");
    let r = env.call("POST", "/v1/share-access", &alice, Some(rule(&scratch, &me, "ro"))).await;
    assert_eq!(pointer(&r, 400), "/access_level");
    let r = env.call("POST", "/v1/share-snapshots", &alice, Some(json!({"share_id": scratch, "name": "s"}))).await;
    assert_eq!(pointer(&r, 400), "/share_id");
    assert!(GlusterMount::mount(&gexport).await.is_err(), "a client outside every rule mounted the volume");
    // The veth's /30 (this client is its first address): spelled out to GlusterFS address by address.
    let (prefix, last) = nas.client_address.rsplit_once('.').unwrap();
    let net30 = format!("{prefix}.{}/30", last.parse::<u8>().unwrap() - 1);
    let grw = add_rule(&scratch, &net30, "rw").await;
    {
        let m = GlusterMount::mount(&gexport).await.expect("a client in the rule's CIDR mounts");
        std::fs::write(m.path().join("result.txt"), "42").unwrap();
    }
    {
        let m = GlusterMount::mount(&gexport).await.expect("and mounts again");
        assert_eq!(std::fs::read_to_string(m.path().join("result.txt")).unwrap(), "42");
    }
    let r = env.call("PATCH", &format!("/v1/shares/{scratch}"), &alice, Some(json!({"size_gib": 2}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    until_status(&env, &alice, &format!("/v1/shares/{scratch}"), "status", "available").await;
    let quota = nas.ssh(&format!("gluster --xml volume quota {vol} list /")).unwrap();
    assert!(quota.contains(&format!("<hard_limit>{}</hard_limit>", 2 * GIB)), "{quota}");
    let r = env.call("DELETE", &format!("/v1/share-access/{grw}"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/share-access/{grw}")).await;
    // glusterd passes a changed auth.allow to the brick after `volume set`
    // returns: the refusal holds for new mounts within seconds.
    let mut refused = false;
    for _ in 0..20 {
        if GlusterMount::mount(&gexport).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(refused, "a rule taken back still let the client mount 10 s later");

    // Deletes: rules in force refuse it unless forced; then nothing is left on the server.
    let r = env.call("DELETE", &format!("/v1/shares/{copy}"), &alice, None).await;
    r.problem(409);
    let r = env.call("DELETE", &format!("/v1/share-snapshots/{snap}"), &alice, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    until_gone(&env, &alice, &format!("/v1/share-snapshots/{snap}")).await;
    for id in [&copy, &home, &scratch].into_iter().chain(&more) {
        let r = env.call("DELETE", &format!("/v1/shares/{id}?force=true"), &alice, None).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // By now the silent server's call has timed out: the share says why it waits.
    let w = until(&env, &alice, &format!("/v1/shares/{waits}"), "the silent server's timeout", |r| {
        r.body["status_reason"].as_str().is_some()
    })
    .await;
    assert!(w.body["status_reason"].as_str().unwrap().contains("waiting for the backend"), "{}", w.body);
    for id in [&copy, &home, &scratch].into_iter().chain(&more) {
        until_gone(&env, &alice, &format!("/v1/shares/{id}")).await;
    }
    let exports = std::fs::read_to_string(&nas.exports_file).unwrap();
    assert!(!exports.contains("tundra-share"), "{exports}");
    assert_eq!(std::fs::read_dir(format!("{}/{}", nas.nfs_root, astro.replace('-', ""))).unwrap().count(), 0);
    let vols = nas.ssh("gluster volume list").unwrap();
    assert!(!vols.contains(&vol), "{vols}");
    assert_eq!(std::fs::read_dir(&nas.gluster_root).unwrap().count(), 0);
    env.stop().await;
}
