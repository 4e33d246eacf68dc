//! Regression tests for holes found in a read of 332735a (issue 15): each
//! case drives the real service the way an attacker would and fails there.

use serde_json::json;

use crate::harness::{Backend, Env};

/// A token restricted to one project as reader cannot make itself a
/// stronger one: the tokens it makes carry its scope and its cap.
pub async fn a_token_cannot_grow_its_own_power(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let a = env.project("a").await;
    env.project("b").await;
    let alice = env.user_with_role("alice", "a", "admin").await;
    env.call("PUT", "/v1/projects/b/roles/alice", &env.admin, Some(json!({"role": "admin"}))).await;
    let r = env.call("POST", "/v1/tokens", &alice, Some(json!({"project_id": a, "role": "reader"}))).await;
    let weak = r.body["secret"].as_str().unwrap().to_string();

    // Asking for nothing gives the maker's own limits, not its user's.
    let r = env.call("POST", "/v1/tokens", &weak, Some(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["token"]["project_id"].as_str(), r.body["token"]["role"].as_str()),
        (Some(a.as_str()), Some("reader"))
    );
    let child = r.body["secret"].as_str().unwrap().to_string();
    let who = env.call("GET", "/v1/whoami", &child, None).await;
    assert_eq!(who.body["roles"], json!([{"project_id": a, "role": "reader"}]), "{}", who.body);
    env.call("PATCH", "/v1/projects/a", &child, Some(json!({"description": "x"}))).await.problem(403);
    env.call("GET", "/v1/projects/b", &child, None).await.problem(404);
    // Asking for more is refused, saying why.
    let d = env.call("POST", "/v1/tokens", &weak, Some(json!({"role": "admin"}))).await.problem(403);
    assert!(d.contains("capped at reader"), "{d}");
    let d = env
        .call("POST", "/v1/tokens", &weak, Some(json!({"project_id": env.project_id("b").await})))
        .await
        .problem(403);
    assert!(d.contains("cannot reach another project"), "{d}");
    env.stop().await;
}

/// `?project=public` shows public objects only where a noun has them; the
/// site's own events and operations are not "public".
pub async fn public_shows_no_site_records(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    env.project("a").await;
    let member = env.user_with_role("m", "a", "member").await;
    // The site has history: a machine enrolled (with its BMC address and MAC).
    let body = json!({"name": "secret-m", "bmc": {"driver": "ipmi", "address": "10.99.0.5:623", "username": "root"},
                      "bmc_password": "pw", "interfaces": [{"mac": "52:54:00:99:00:01"}]});
    assert_eq!(env.call("POST", "/v1/machines", &env.admin, Some(body)).await.status, 201);
    for path in ["/v1/events?project=public", "/v1/operations?project=public"] {
        let r = env.call("GET", path, &member, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["items"], json!([]), "{path}: {}", r.body);
        assert!(!r.body.to_string().contains("10.99.0.5"), "{}", r.body);
    }
    // Public flavors and images are still listed as public.
    let f = json!({"name": "bm", "resource_class": "baremetal"});
    assert_eq!(env.call("POST", "/v1/flavors", &env.admin, Some(f)).await.status, 201);
    let r = env.call("GET", "/v1/flavors?project=public", &member, None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.body);
    env.stop().await;
}
