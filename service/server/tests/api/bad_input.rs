//! Bad requests get 4xx problem documents that say what to do, and leave
//! nothing half-written: the event log and the lists are the same after.

use serde_json::json;

use crate::harness::{Backend, Env, sha256};

pub async fn bad_requests_get_problems_and_write_nothing(b: Backend) {
    let env = Env::start(b, |c| c.max_body_bytes = 4096).await;
    let t = env.admin.clone();
    let p = env.project("astro").await;
    let events_before = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();

    let post = |path: &str, body: &[u8], ct: &str| {
        env.raw(env.req("POST", path, &t).header("content-type", ct.to_string()).body(body.to_vec()))
    };
    // Malformed JSON.
    let d = post("/v1/keypairs", b"{\"name\": ", "application/json").await.problem(400);
    assert!(d.contains("not valid JSON"), "{d}");
    // Unknown field, with a pointer.
    let r = post("/v1/flavors", br#"{"name":"f","resource_class":"rc","colour":"red"}"#, "application/json").await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/colour");
    assert!(r.body["detail"].as_str().unwrap().contains("unknown field `colour`"));
    // Wrong types.
    let r =
        post("/v1/flavors", br#"{"name":"f","resource_class":"rc","required_traits":"gpu"}"#, "application/json").await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/required_traits");
    let r = post(
        "/v1/images",
        format!(r#"{{"project_id":"{p}","name":"i","disk_format":"vmdk","sha256":"{}"}}"#, sha256(b"")).as_bytes(),
        "application/json",
    )
    .await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/disk_format");
    // Missing field.
    let r = post("/v1/projects", b"{}", "application/json").await;
    assert!(r.problem(400).contains("missing field `name`"));
    // Not JSON at all.
    assert!(
        post("/v1/projects", b"name=x", "application/x-www-form-urlencoded")
            .await
            .problem(415)
            .contains("Content-Type: application/json")
    );
    // Oversize.
    let big = format!(r#"{{"name":"x","description":"{}"}}"#, "a".repeat(8192));
    assert!(post("/v1/projects", big.as_bytes(), "application/json").await.problem(413).contains("max_body_bytes"));
    // Invalid values, with what to write.
    let r = env.call("POST", "/v1/projects", &t, Some(json!({"name": "has space"}))).await;
    assert!(r.problem(400).contains("letters, digits"));
    let r = env
        .call("POST", "/v1/keypairs", &t, Some(json!({"project_id": p, "name": "k", "public_key": "ssh-dss AAAA"})))
        .await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/public_key");
    let r = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"project_id": p, "name": "i", "disk_format": "raw", "sha256": "abc"})),
        )
        .await;
    assert!(r.problem(400).contains("64 hex digits"));
    let r = env.call("POST", "/v1/images", &t, Some(json!({"project_id": p, "name": "i", "disk_format": "raw", "sha256": sha256(b""), "source_url": "http://169.254.169.254/latest"}))).await;
    assert!(r.problem(400).contains("upload"), "fetching is off without an allow-list");
    env.call("GET", "/v1/projects?colour=red", &t, None).await.problem(400);
    env.raw(env.req("PATCH", &format!("/v1/projects/{p}"), &t).header("if-match", "\"x\"").json(&json!({})))
        .await
        .problem(400);
    env.raw(env.req("GET", "/v1/projects", "tnd_bogus")).await.problem(401);
    env.raw(env.req("GET", "/v1/projects", "").header("authorization", "Basic YTpi")).await.problem(401);
    env.call("GET", "/v1/nowhere", &t, None).await.problem(404);
    env.call("GET", "/v1/keypairs/not-a-uuid", &t, None).await.problem(404);

    let events_after = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();
    assert_eq!(events_before, events_after, "no bad request wrote anything");
    for list in ["/v1/keypairs", "/v1/flavors", "/v1/images"] {
        assert_eq!(env.call("GET", list, &t, None).await.body["items"], json!([]), "{list}");
    }
    assert_eq!(env.call("GET", "/v1/projects", &t, None).await.body["items"].as_array().unwrap().len(), 1);

    // A bad checksum on upload: 422, the image says why, no file is kept.
    let img = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"project_id": p, "name": "i", "disk_format": "raw", "sha256": sha256(b"expected")})),
        )
        .await;
    assert_eq!(img.status, 201, "{}", img.body);
    let id = img.body["id"].as_str().unwrap();
    let r = env.raw(env.req("PUT", &format!("/v1/images/{id}/file"), &t).body(b"something else".to_vec())).await;
    assert!(r.problem(422).contains("sha256 mismatch"));
    let after = env.call("GET", &format!("/v1/images/{id}"), &t, None).await;
    assert_eq!(after.body["status"], "error");
    assert!(after.body["error"].as_str().unwrap().contains("sha256 mismatch"));
    let images_dir = env.config.data_dir.join("images");
    let files: Vec<_> = std::fs::read_dir(&images_dir)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().is_file()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "nothing published: {files:?}");
    let staging: Vec<_> = std::fs::read_dir(images_dir.join(".staging")).map(|d| d.collect()).unwrap_or_default();
    assert!(staging.is_empty(), "staging cleaned: {staging:?}");
    env.call("GET", &format!("/v1/images/{id}/file"), &t, None).await.problem(409);
    // A qcow2 that is not one.
    let q = env
        .call(
            "POST",
            "/v1/images",
            &t,
            Some(json!({"project_id": p, "name": "q", "disk_format": "qcow2", "sha256": sha256(b"not qcow2")})),
        )
        .await;
    let qid = q.body["id"].as_str().unwrap();
    let r = env.raw(env.req("PUT", &format!("/v1/images/{qid}/file"), &t).body(b"not qcow2".to_vec())).await;
    assert!(r.problem(422).contains("not a valid qcow2"));
    env.stop().await;
}
