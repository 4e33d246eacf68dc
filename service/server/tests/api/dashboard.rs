//! The machine list's filters and the dashboard's reads, on both backends:
//! filters (state, class, rack, island, BMC address, MAC, maintenance) with
//! keyset pages, the overview's counts by state, the session cookie, the
//! CSRF field, tenancy and the live stream's first event.

use serde_json::{Value, json};

use crate::harness::{Backend, Env};

fn machine(k: usize, rack: &str, class: &str) -> Value {
    json!({
        "name": format!("m{k:02}"),
        "resource_class": class,
        "location": {"rack": rack, "island": if rack == "r_1" { "a" } else { "b" }},
        "bmc": {"driver": "ipmi", "address": format!("10.9.{}.{k}:623", if rack == "r_1" { 1 } else { 2 }), "username": "admin"},
        "bmc_password": "pw",
        "interfaces": [{"mac": format!("52:54:00:ab:00:{k:02x}"), "pxe": true}]
    })
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A dashboard page with a session cookie: status and HTML.
async fn ui_get(c: &reqwest::Client, url: String, session: String) -> (u16, String) {
    let r = c.get(url).header("cookie", session).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn names(env: &Env, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let r = env.call("GET", &format!("/v1/machines?limit=2{sep}{query}{cursor}"), &env.admin, None).await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        out.extend(r.body["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()));
        match r.body["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

pub async fn machine_filters_and_the_dashboard(b: Backend) {
    let env = Env::start(b, |c| c.power_sync_interval = "1h".into()).await;
    let t = env.admin.clone();
    for k in 0..7 {
        // r_1 holds an underscore: a LIKE wildcard that must match itself only.
        let (rack, class) = if k < 4 { ("r_1", "gpu") } else { ("rx1", "baremetal") };
        let r = env.call("POST", "/v1/machines", &t, Some(machine(k, rack, class))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let reason = "fan <script>alert(1)</script>";
    env.call("PATCH", "/v1/machines/m05", &t, Some(json!({"maintenance": true, "maintenance_reason": reason}))).await;
    assert_eq!(names(&env, "").await.len(), 7);
    assert_eq!(names(&env, "rack=r_1").await, ["m00", "m01", "m02", "m03"], "pages of 2 keep the filter");
    assert_eq!(names(&env, "island=b&resource_class=baremetal").await, ["m04", "m05", "m06"]);
    assert_eq!(names(&env, "bmc=10.9.2.").await, ["m04", "m05", "m06"]);
    assert_eq!(names(&env, "mac=52-54-00-AB-00-03").await, ["m03"], "MACs as operators type them");
    assert_eq!(names(&env, "maintenance=true").await, ["m05"]);
    assert_eq!(names(&env, "maintenance=false&rack=rx1").await, ["m04", "m06"]);
    assert_eq!(names(&env, "provision_state=enroll&rack=r%1").await, Vec::<String>::new(), "% is not a wildcard");
    let r = env.call("GET", "/v1/machines?mac=52:54", &t, None).await;
    r.problem(400);
    assert_eq!(r.body["errors"][0]["pointer"], "/mac");
    let r = env.call("GET", "/v1/machines?maintenance=maybe", &t, None).await;
    r.problem(400);

    // The dashboard: no cookie, a redirect to sign in; a bad token, refused.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = env.base();
    let r = no_redirect.get(format!("{base}/ui/machines?rack=r_1")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login?next=%2Fui%2Fmachines%3Frack%3Dr_1");
    let r = no_redirect
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", "tnd_wrong")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("unknown or was revoked"));
    let r = no_redirect
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", t.as_str()), ("next", "https://elsewhere.example/")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/", "sign-in goes nowhere but the dashboard");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = |path: &str| ui_get(&no_redirect, format!("{base}{path}"), session.clone());
    let (code, html) = page("/ui/").await;
    assert_eq!(code, 200);
    assert!(html.contains(r#"<td class="count" data-state="enroll">7</td>"#), "counts by state: {html}");
    assert!(html.contains(r#"<tr data-machine="m05">"#), "maintenance is in the queue");
    // The replicas, by their heartbeats: this one alone, running the loops.
    let me = env.state().conductor.replica().to_string();
    let row = html.split(&format!(r#"<tr data-replica="{me}">"#)).nth(1).unwrap_or_else(|| panic!("{html}"));
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("(this page)") && row.contains("housekeeping") && row.contains("power_sync"), "{row}");
    assert_eq!(html.matches("<tr data-replica=").count(), 1, "{html}");
    let overview = html;
    let (_, html) = page("/ui/machines?rack=r_1&maintenance=").await;
    assert_eq!(html.matches("<tr data-machine=").count(), 4, "{html}");
    let (_, html) = page("/ui/machines?island=b&bmc=10.9.2.6").await;
    assert_eq!(html.matches("<tr data-machine=").count(), 1, "{html}");
    for p in ["/ui/map", "/ui/capacity", "/ui/switches", "/ui/operations", "/ui/machines/m01"] {
        let (code, html) = page(p).await;
        assert_eq!(code, 200, "{p}: {html}");
    }
    // What the store holds is text, never markup.
    let html = overview;
    assert!(
        html.contains("fan &lt;script&gt;alert(1)&lt;&#x2f;script&gt;") || html.contains("fan &lt;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "escaped");
    let r = env.call("POST", "/v1/projects", &t, Some(json!({"name": "x-script"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A form without the session's CSRF field changes nothing.
    let r = no_redirect
        .post(format!("{base}/ui/machines/m05/action"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("action", "maintenance_off"), ("csrf", "forged")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let m = env.call("GET", "/v1/machines/m05", &t, None).await.body;
    assert_eq!(m["maintenance"], true, "a forged form changed nothing");
    // The live stream opens with a hello.
    let r = no_redirect.get(format!("{base}/ui/live")).header("cookie", &session).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut r = r;
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: hello"), "{first:?}");
    drop(r);

    // A project member: their project, not the site.
    let bob = env.user_with_role("bob", "x-script", "member").await;
    let r = no_redirect
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", bob.as_str())]))
        .send()
        .await
        .unwrap();
    let bob_session = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let get = |path: &str| ui_get(&no_redirect, format!("{base}{path}"), bob_session.clone());
    let (code, html) = get("/ui/").await;
    assert_eq!(code, 200);
    assert!(!html.contains("state-counts") && !html.contains("m05"), "no site data for a member");
    assert!(html.contains("x-script"));
    let (code, html) = get("/ui/machines").await;
    assert_eq!(code, 403, "{html}");
    let (code, _) = get("/ui/switches").await;
    assert_eq!(code, 403);
    env.stop().await;
}
