//! Check-then-write under concurrency: every check that guards a write runs
//! inside the write's transaction (rows locked on PostgreSQL; SQLite's
//! writer serialised), so requests racing each other get exactly the
//! answers they would get one after the other — one winner where there is
//! room for one, distinct allocations where there is room for all.

use serde_json::{Value, json};

use crate::harness::{Backend, Env, Resp};

/// Send every request at once (as far as a client can): `(method, path, body)`.
async fn at_once(env: &Env, token: &str, reqs: Vec<(&'static str, String, Value)>) -> Vec<Resp> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(reqs.len()));
    let mut tasks = Vec::new();
    for (method, path, body) in reqs {
        let req = env.req(method, &path, token).json(&body);
        let (env_raw, barrier) = (req, barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            env_raw.send().await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(Resp::from(t.await.unwrap()).await);
    }
    out
}

/// The answers, briefly, for assertion messages.
fn said(rs: &[Resp]) -> String {
    rs.iter().map(|r| format!("{} {}", r.status, r.body)).collect::<Vec<_>>().join("\n")
}

fn statuses(rs: &[Resp]) -> Vec<u16> {
    let mut s: Vec<u16> = rs.iter().map(|r| r.status).collect();
    s.sort();
    s
}

async fn fabric(env: &Env, range: [u32; 2]) -> String {
    let r = env
        .call(
            "POST",
            "/v1/physical-networks",
            &env.admin,
            Some(json!({"name": "fabric", "kind": "ethernet", "segment_range": range, "provisioning_segment": 10})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// Subnets, networks' segments, ports' addresses, names, machines' fixed addresses.
pub async fn racing_creates_get_the_answers_of_one_after_the_other(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let admin = env.admin.clone();
    let proj = env.project("racers").await;
    let pn = fabric(&env, [100, 105]).await;

    // Segments: 6 free, 9 asked for at once — 6 distinct segments, 3 told there is no room.
    let reqs = (0..9)
        .map(|i| {
            (
                "POST",
                "/v1/networks".to_string(),
                json!({"project_id": proj, "name": format!("n{i}"), "physical_network_id": pn}),
            )
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 201, 201, 201, 201, 201, 409, 409, 409], "{}", said(&rs));
    let mut segs: Vec<u64> =
        rs.iter().filter(|r| r.status == 201).map(|r| r.body["segment"].as_u64().unwrap()).collect();
    segs.sort();
    assert_eq!(segs, [100, 101, 102, 103, 104, 105], "each segment once");
    for r in rs.iter().filter(|r| r.status == 409) {
        assert_eq!(r.body["type"], "urn:tundra:problem:no-capacity", "{}", r.body);
    }
    let net = rs.iter().find(|r| r.status == 201).unwrap().body["id"].as_str().unwrap().to_string();

    // Names unique per project: 8 networks named alike, on a physical network with room.
    let pn2 = {
        let r = env
            .call(
                "POST",
                "/v1/physical-networks",
                &admin,
                Some(json!({"name": "wide", "kind": "ethernet", "segment_range": [200, 299], "provisioning_segment": 11})),
            )
            .await;
        r.body["id"].as_str().unwrap().to_string()
    };
    let reqs = (0..8)
        .map(|_| {
            (
                "POST",
                "/v1/networks".to_string(),
                json!({"project_id": proj, "name": "same", "physical_network_id": pn2}),
            )
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 409, 409, 409, 409, 409, 409, 409], "{}", said(&rs));
    for r in rs.iter().filter(|r| r.status == 409) {
        assert!(r.problem(409).contains("\"same\""), "{}", r.body);
    }
    // …and keypairs likewise.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB race@tundra";
    let reqs = (0..6)
        .map(|_| ("POST", "/v1/keypairs".to_string(), json!({"project_id": proj, "name": "k", "public_key": key})))
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs).iter().filter(|s| **s == 201).count(), 1, "one keypair named k: {rs:?}");
    assert!(rs.iter().all(|r| matches!(r.status, 201 | 409)), "{}", said(&rs));

    // Subnets: 6 overlapping CIDRs at once — one is made, five conflict at /cidr.
    // (Each pair overlaps: all hold 10.40.0.0.)
    let cidrs = ["10.40.0.0/24", "10.40.0.0/25", "10.40.0.0/26", "10.40.0.0/16", "10.40.0.0/27", "10.0.0.0/8"];
    let reqs = cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            ("POST", "/v1/subnets".to_string(), json!({"network_id": net, "name": format!("s{i}"), "cidr": c}))
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 409, 409, 409, 409, 409], "{}", said(&rs));
    for r in rs.iter().filter(|r| r.status == 409) {
        assert!(r.problem(409).contains("overlaps subnet"), "{}", r.body);
        assert_eq!(r.body["errors"][0]["pointer"], "/cidr", "{}", r.body);
    }
    let subnet = rs.iter().find(|r| r.status == 201).unwrap();
    assert_eq!(
        env.call("GET", &format!("/v1/subnets?project={proj}"), &admin, None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Port addresses: 10 ports taking the next free address at once — 10 distinct ones.
    let sid = subnet.body["id"].as_str().unwrap().to_string();
    let reqs = (0..10)
        .map(|i| {
            ("POST", "/v1/ports".to_string(), json!({"project_id": proj, "network_id": net, "name": format!("p{i}")}))
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert!(rs.iter().all(|r| r.status == 201), "{}", said(&rs));
    let mut ips: Vec<String> =
        rs.iter().map(|r| r.body["fixed_ips"][0]["address"].as_str().unwrap().to_string()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "each address once: {ips:?}");
    // …and 5 ports asking for the same address (free, in whichever subnet won): one gets it.
    let reqs = (0..5)
        .map(|i| {
            let body = json!({"project_id": proj, "network_id": net, "name": format!("q{i}"),
                              "fixed_ips": [{"subnet_id": sid, "address": "10.40.0.20"}]});
            ("POST", "/v1/ports".to_string(), body)
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 409, 409, 409, 409], "{}", said(&rs));
    for r in rs.iter().filter(|r| r.status == 409) {
        assert!(r.problem(409).contains("10.40.0.20"), "{}", r.body);
    }

    // A fixed provisioning address belongs to one machine: 5 enrolled at once with it.
    let reqs = (0..5)
        .map(|i| {
            let body = json!({"name": format!("m{i}"), "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"},
                              "bmc_password": "p", "interfaces": [{"mac": format!("52:54:00:ab:00:0{i}"), "address": "10.0.0.9"}]});
            ("POST", "/v1/machines".to_string(), body)
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 409, 409, 409, 409], "{}", said(&rs));
    for r in rs.iter().filter(|r| r.status == 409) {
        assert_eq!(r.body["errors"][0]["pointer"], "/interfaces/0/address", "{}", r.body);
    }

    // Quotas: a project allowed 2 networks asks for 6 at once — 2 made, 4
    // refused. Each on its own physical network, so no segment lock makes
    // them take turns: only the quota's own does.
    let capped = env.project("capped").await;
    let q = env.call("PUT", &format!("/v1/projects/{capped}/quota"), &admin, Some(json!({"networks": 2}))).await;
    assert_eq!(q.status, 200, "{}", q.body);
    let mut pns = Vec::new();
    for i in 0..6u32 {
        let body = json!({"name": format!("q{i}"), "kind": "ethernet",
                          "segment_range": [300 + 10 * i, 305 + 10 * i], "provisioning_segment": 20 + i});
        let r = env.call("POST", "/v1/physical-networks", &admin, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        pns.push(r.body["id"].as_str().unwrap().to_string());
    }
    let reqs = pns
        .iter()
        .enumerate()
        .map(|(i, pn)| {
            let body = json!({"project_id": capped, "name": format!("c{i}"), "physical_network_id": pn});
            ("POST", "/v1/networks".to_string(), body)
        })
        .collect();
    let rs = at_once(&env, &admin, reqs).await;
    assert_eq!(statuses(&rs), [201, 201, 403, 403, 403, 403], "{}", said(&rs));
    for r in rs.iter().filter(|r| r.status == 403) {
        assert_eq!(r.body["type"], "urn:tundra:problem:quota-exceeded", "{}", r.body);
    }
    env.stop().await;
}
