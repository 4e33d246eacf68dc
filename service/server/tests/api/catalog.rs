//! Projects, keypairs and flavors: CRUD, ETags, pagination, idempotency, events.

use serde_json::json;

use crate::harness::{Backend, Env};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB test@tundra";

pub async fn projects_etags_pagination_idempotency_events(b: Backend) {
    let mut env = Env::start(b, |_| {}).await;
    let t = env.admin.clone();
    let r = env.call("POST", "/v1/projects", &t, Some(json!({"name": "astro", "description": "radio"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("etag"), "\"1\"");
    let id = r.body["id"].as_str().unwrap().to_string();
    // By name or ID.
    assert_eq!(env.call("GET", "/v1/projects/astro", &t, None).await.body["id"], id);
    // Duplicate name: 409 saying what to do.
    let d = env.call("POST", "/v1/projects", &t, Some(json!({"name": "astro"}))).await.problem(409);
    assert!(d.contains("pick another name"), "{d}");

    // Optimistic concurrency.
    let r = env
        .raw(
            env.req("PATCH", &format!("/v1/projects/{id}"), &t)
                .header("if-match", "\"1\"")
                .json(&json!({"description": "v2"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag"), "\"2\"");
    let r = env
        .raw(
            env.req("PATCH", &format!("/v1/projects/{id}"), &t)
                .header("if-match", "\"1\"")
                .json(&json!({"description": "lost"})),
        )
        .await;
    assert!(r.problem(412).contains("GET it again"));
    assert_eq!(env.call("GET", &format!("/v1/projects/{id}"), &t, None).await.body["description"], "v2");

    // Idempotency: same key + body → same answer, replayed; other body → 422.
    let req =
        |body: serde_json::Value| env.req("POST", "/v1/projects", &t).header("idempotency-key", "k-1").json(&body);
    let first = env.raw(req(json!({"name": "dask"}))).await;
    assert_eq!(first.status, 201);
    let again = env.raw(req(json!({"name": "dask"}))).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.body["id"], first.body["id"]);
    assert!(env.raw(req(json!({"name": "other"}))).await.problem(422).contains("fresh key"));
    let all = env.call("GET", "/v1/projects?name=dask", &t, None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1, "one project despite the retry");

    // tundrad stopped after a create committed and before its answer was
    // kept: the key is claimed, unanswered, and the claiming request's
    // `created` event names the project. After a restart the retry answers
    // with that project instead of refusing the name the first request took.
    let admin_id = env.call("GET", "/v1/whoami", &t, None).await.body["user_id"].as_str().unwrap().to_string();
    let lost = serde_json::to_vec(&json!({"name": "lost-answer"})).unwrap();
    let early = serde_json::to_vec(&json!({"name": "never-made"})).unwrap();
    let killed = tundra_store::Actor { name: "admin".into(), request_id: Some("req-killed".into()) };
    let stopped_early = tundra_store::Actor { name: "admin".into(), request_id: Some("req-early".into()) };
    let store = env.state().store().clone();
    let claim = |key: &'static str, bytes: &[u8], actor: &tundra_store::Actor| {
        let (store, admin_id, actor) = (store.clone(), admin_id.clone(), actor.clone());
        let digest = tundra_conductor::secrets::sha256_hex(bytes);
        async move {
            store.claim_idempotency_key(&admin_id, key, "POST /v1/projects", &digest, "project", &actor).await.unwrap()
        }
    };
    assert_eq!(claim("k-crash", &lost, &killed).await, tundra_store::Claim::Run);
    let made = store.create_project(&killed, "lost-answer", "").await.unwrap();
    // Stopped before its create committed: the claim made nothing.
    assert_eq!(claim("k-early", &early, &stopped_early).await, tundra_store::Claim::Run);
    // While that replica runs, a retry waits for it rather than racing it.
    assert_eq!(claim("k-early", &early, &killed).await, tundra_store::Claim::InProgress);
    drop(store);
    env.restart(|_| {}).await;
    let req =
        |body: serde_json::Value| env.req("POST", "/v1/projects", &t).header("idempotency-key", "k-1").json(&body);
    let post = |key: &'static str, bytes: Vec<u8>| {
        env.req("POST", "/v1/projects", &t)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(bytes)
    };
    let retry = env.raw(post("k-crash", lost.clone())).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), "true");
    assert_eq!(retry.body["id"], made.id.to_string(), "the project the first request made");
    assert_eq!(retry.header("etag"), "\"1\"");
    // Now answered: a third try replays the kept answer.
    let third = env.raw(post("k-crash", lost)).await;
    assert_eq!((third.status, third.header("idempotent-replayed")), (201, "true"));
    assert_eq!(third.body["id"], made.id.to_string());
    // The claim that made nothing passes to the retry, which creates.
    let retry = env.raw(post("k-early", early)).await;
    assert_eq!((retry.status, retry.header("idempotent-replayed")), (201, ""), "{}", retry.body);
    assert_eq!(retry.body["name"], "never-made");
    // A create that fails gives its key up: the same key with a fixed
    // request is not refused as "already used".
    let taken = env
        .raw(env.req("POST", "/v1/projects", &t).header("idempotency-key", "k-fail").json(&json!({"name": "astro"})))
        .await;
    assert!(taken.problem(409).contains("pick another name"));
    let fixed = env
        .raw(env.req("POST", "/v1/projects", &t).header("idempotency-key", "k-fail").json(&json!({"name": "astro-2"})))
        .await;
    assert_eq!(fixed.status, 201, "{}", fixed.body);
    // Keys are forgotten after their retention (the janitor's cut-off); then the key is fresh again.
    let forgotten = env
        .state()
        .store()
        .expire_idempotency_keys(&tundra_store::time_after(std::time::Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(forgotten, 4);
    let r = env.raw(req(json!({"name": "other"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("idempotent-replayed"), "");

    // Pagination: 7 more projects, pages of 3, in creation order, no repeats.
    for i in 0..7 {
        env.project(&format!("p{i}")).await;
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() {
            "/v1/projects?limit=3".to_string()
        } else {
            format!("/v1/projects?limit=3&after={after}")
        };
        let page = env.call("GET", &q, &t, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|p| p["name"].as_str().unwrap().to_string()));
        match page.body["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["astro", "dask", "lost-answer", "never-made", "astro-2", "other", "p0", "p1", "p2", "p3", "p4", "p5", "p6"]
    );
    env.call("GET", "/v1/projects?limit=0", &t, None).await.problem(400);
    env.call("GET", "/v1/projects?limit=501", &t, None).await.problem(400);

    // Events: the project's history, who and what.
    let ev = env.call("GET", &format!("/v1/events?object_type=project&object_id={id}"), &t, None).await;
    let actions: Vec<&str> =
        ev.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["created", "updated"]);
    assert_eq!(ev.body["items"][0]["actor"], "admin");
    assert!(ev.body["items"][0]["request_id"].is_string());

    // Delete: refused while it owns things, then allowed.
    let k = env.call("POST", "/v1/keypairs", &t, Some(json!({"project_id": id, "name": "k", "public_key": KEY}))).await;
    assert_eq!(k.status, 201, "{}", k.body);
    assert!(env.call("DELETE", "/v1/projects/astro", &t, None).await.problem(409).contains("delete them first"));
    assert_eq!(
        env.call("DELETE", &format!("/v1/keypairs/{}", k.body["id"].as_str().unwrap()), &t, None).await.status,
        204
    );
    assert_eq!(env.call("DELETE", "/v1/projects/astro", &t, None).await.status, 204);
    env.call("GET", "/v1/projects/astro", &t, None).await.problem(404);
    env.stop().await;
}

pub async fn keypairs_flavors(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let t = env.admin.clone();
    let p = env.project("astro").await;
    let member = env.user_with_role("alice", "astro", "member").await;
    let k = env
        .call(
            "POST",
            "/v1/keypairs",
            &member,
            Some(json!({"project_id": p, "name": "laptop", "public_key": format!("  {KEY}\n")})),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    assert_eq!(k.body["fingerprint"], "SHA256:e5BXvbVqMjqHM8psooRePWo8GWCNvuZdcP6WOmpXeRI");
    assert_eq!(k.body["public_key"], KEY);
    assert_eq!(k.body["key_type"], "ssh-ed25519");
    let d = env
        .call("POST", "/v1/keypairs", &member, Some(json!({"project_id": p, "name": "laptop", "public_key": KEY})))
        .await
        .problem(409);
    assert!(d.contains("already has a keypair named"), "{d}");

    // Public flavors are for site admins; project flavors for members.
    let d = env
        .call("POST", "/v1/flavors", &member, Some(json!({"name": "gpu", "resource_class": "baremetal.gpu"})))
        .await
        .problem(403);
    assert!(d.contains("site admins"), "{d}");
    let f = env
        .call(
            "POST",
            "/v1/flavors",
            &t,
            Some(json!({"name": "gpu", "resource_class": "baremetal.gpu", "required_traits": ["ib", "gpu", "gpu"]})),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.body);
    assert_eq!(f.body["required_traits"], json!(["gpu", "ib"]), "sorted, deduplicated");
    assert!(f.body["project_id"].is_null());
    let own = env
        .call(
            "POST",
            "/v1/flavors",
            &member,
            Some(json!({"project_id": p, "name": "gpu", "resource_class": "baremetal.gpu"})),
        )
        .await;
    assert_eq!(own.status, 201, "same name in another scope is fine: {}", own.body);
    // The member sees both; project=public narrows.
    let all = env.call("GET", "/v1/flavors", &member, None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    let public = env.call("GET", "/v1/flavors?project=public", &member, None).await;
    assert_eq!(public.body["items"].as_array().unwrap().len(), 1);
    // Members cannot change public flavors, but can read them.
    let fid = f.body["id"].as_str().unwrap();
    assert_eq!(env.call("GET", &format!("/v1/flavors/{fid}"), &member, None).await.status, 200);
    env.call("PATCH", &format!("/v1/flavors/{fid}"), &member, Some(json!({"description": "x"}))).await.problem(403);
    let u = env.call("PATCH", &format!("/v1/flavors/{fid}"), &t, Some(json!({"required_traits": ["gpu"]}))).await;
    assert_eq!(u.body["required_traits"], json!(["gpu"]));
    assert_eq!(u.body["revision"], 2);
    env.stop().await;
}

/// If-Match holds under concurrency: sixteen updates of one flavor, all
/// saying revision 1, race in the store; exactly one applies, the others are
/// refused as stale — on PostgreSQL too, where without a row lock each would
/// read revision 1 and the last writer would silently win.
pub async fn racing_if_match_updates_lose_nothing(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let t = env.admin.clone();
    let f = env.call("POST", "/v1/flavors", &t, Some(json!({"name": "f", "resource_class": "rc"}))).await;
    assert_eq!(f.status, 201, "{}", f.body);
    let id: tundra_api::FlavorId = f.body["id"].as_str().unwrap().parse().unwrap();
    let store = env.state().store().clone();
    let mut tasks = Vec::new();
    for k in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let c = tundra_store::FlavorChanges { description: Some(format!("writer {k}")), ..Default::default() };
            store.update_flavor(&tundra_store::Actor::service(), id, c, Some(1)).await
        }));
    }
    let (mut ok, mut stale) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(tundra_store::StoreError::RevisionMismatch { .. }) => stale += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, stale), (1, 15));
    let now = env.call("GET", &format!("/v1/flavors/{id}"), &t, None).await.body;
    assert_eq!(now["revision"], 2, "one update, one revision: {now}");
    env.stop().await;
}
