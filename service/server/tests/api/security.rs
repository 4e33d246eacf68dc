//! Regression tests for holes found in a read of 332735a (issue 15): each
//! case drives the real service the way an attacker would and fails there.

use serde_json::json;

use crate::harness::{Backend, Env, FileServer, sha256, wait_for};

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

/// Switch port names go into switch command lines, a Linux switch's shell
/// and NETCONF XML: only names are accepted, and a port is one machine's.
pub async fn switch_ports_are_names_and_one_machines(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let machine = |name: &str, mac: &str, port: &str| {
        json!({"name": name, "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p",
               "interfaces": [{"mac": mac, "switch": "leaf-1", "port": port}]})
    };
    for bad in ["Te1/0/1\nreload", "eth0; reboot", "$(id)", "ge-0/0/1</name><name>ge-0/0/2", "Te1/0/1  x"] {
        let r = env.call("POST", "/v1/machines", &env.admin, Some(machine("m0", "52:54:00:66:00:09", bad))).await;
        let d = r.problem(400);
        assert_eq!(r.body["errors"][0]["pointer"], "/interfaces/0/port", "{bad:?}: {}", r.body);
        assert!(d.contains("not a switch port name"), "{d}");
    }
    let r = env.call("POST", "/v1/machines", &env.admin, Some(machine("m1", "52:54:00:66:00:01", "Te1/0/1"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Another machine cannot claim m1's port — at create or by an update.
    let r = env.call("POST", "/v1/machines", &env.admin, Some(machine("m2", "52:54:00:66:00:02", "Te1/0/1"))).await;
    assert!(r.problem(409).contains("cabled to machine m1"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/interfaces/0/port");
    let r = env.call("POST", "/v1/machines", &env.admin, Some(machine("m2", "52:54:00:66:00:02", "Te1/0/2"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let patch = json!({"interfaces": [{"mac": "52:54:00:66:00:02", "switch": "leaf-1", "port": "Te1/0/1"}]});
    let r = env.call("PATCH", "/v1/machines/m2", &env.admin, Some(patch)).await;
    assert!(r.problem(409).contains("cabled to machine m1"), "{}", r.body);
    // Once m1 lets go of it, it is free.
    let free = json!({"interfaces": [{"mac": "52:54:00:66:00:01", "switch": "leaf-1", "port": "Te1/0/9"}]});
    assert_eq!(env.call("PATCH", "/v1/machines/m1", &env.admin, Some(free)).await.status, 200);
    let patch = json!({"interfaces": [{"mac": "52:54:00:66:00:02", "switch": "leaf-1", "port": "Te1/0/1"}]});
    let r = env.call("PATCH", "/v1/machines/m2", &env.admin, Some(patch)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.stop().await;
}

/// Smaller holes: a malformed key is refused (it once panicked the parser),
/// and an image source that trickles cannot hold an import forever.
pub async fn small_items_hold(b: Backend) {
    let bytes = vec![5u8; 2 << 20];
    // 32 chunks, 200 ms apart: about 6 s for the whole file.
    let files = FileServer::start(bytes.clone(), std::time::Duration::from_millis(200)).await;
    let prefix = files.prefix();
    let env = Env::start(b, |c| {
        c.image_source_allow = vec![prefix.clone()];
        c.image_fetch_timeout = "1s".into();
    })
    .await;
    let p = env.project("a").await;
    // An RSA key with an empty modulus.
    let mut blob = Vec::new();
    for part in [&b"ssh-rsa"[..], &[1, 0, 1], &[]] {
        blob.extend((part.len() as u32).to_be_bytes());
        blob.extend(part);
    }
    let key = format!("ssh-rsa {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, blob));
    let r = env
        .call("POST", "/v1/keypairs", &env.admin, Some(json!({"project_id": p, "name": "k", "public_key": key})))
        .await;
    assert!(r.problem(400).contains("has 0"), "{}", r.body);

    let body = json!({"project_id": p, "name": "slow", "disk_format": "raw", "sha256": sha256(&bytes), "source_url": files.url("slow.raw")});
    let img = env.call("POST", "/v1/images", &env.admin, Some(body)).await;
    assert_eq!(img.status, 202, "{}", img.body);
    let op = img.body["operation_id"].as_str().unwrap().to_string();
    wait_for("the import to end", async || {
        env.call("GET", &format!("/v1/operations/{op}"), &env.admin, None).await.body["state"] == "failed"
    })
    .await;
    let o = env.call("GET", &format!("/v1/operations/{op}"), &env.admin, None).await;
    assert!(o.body["error"].as_str().unwrap_or("").contains("image_fetch_timeout"), "{}", o.body);

    // Metrics labels are bounded: made-up methods are counted as OTHER.
    for m in ["BREW", "XYZZY1", "XYZZY2"] {
        env.call(m, "/v1/projects", "", None).await;
    }
    let metrics = env.call("GET", "/metrics", "", None).await.body.as_str().unwrap().to_string();
    assert!(!metrics.contains("BREW") && !metrics.contains("XYZZY"), "{metrics}");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    env.stop().await;
}

/// A deleted network's segment rests before another network gets it: a
/// switch port that failed to move back must not join the next tenant.
pub async fn freed_segments_rest_before_reuse(b: Backend) {
    let mut env = Env::start(b, |_| {}).await;
    let admin = env.admin.clone();
    let p = env.project("a").await;
    let pn = json!({"name": "eth", "kind": "ethernet", "segment_range": [100, 105], "provisioning_segment": 10});
    let pn = env.call("POST", "/v1/physical-networks", &admin, Some(pn)).await;
    assert_eq!(pn.status, 201, "{}", pn.body);
    let pn = pn.body["id"].as_str().unwrap().to_string();
    let net = |name: &str, segment: Option<u32>| {
        let mut body = json!({"project_id": p, "name": name, "physical_network_id": pn});
        if let Some(s) = segment {
            body["segment"] = json!(s);
        }
        body
    };
    let a = env.call("POST", "/v1/networks", &admin, Some(net("a", None))).await;
    assert_eq!((a.status, a.body["segment"].as_u64()), (201, Some(100)), "{}", a.body);
    let r = env.call("DELETE", &format!("/v1/networks/{}", a.body["id"].as_str().unwrap()), &admin, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let b2 = env.call("POST", "/v1/networks", &admin, Some(net("b", None))).await;
    assert_eq!(b2.body["segment"].as_u64(), Some(101), "100 rests: {}", b2.body);
    let r = env.call("POST", "/v1/networks", &admin, Some(net("c", Some(100)))).await;
    assert!(r.problem(409).contains("quarantine"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/segment");
    // With no quarantine configured, it is free at once.
    env.restart(|c| c.segment_quarantine = "0s".into()).await;
    let c = env.call("POST", "/v1/networks", &env.admin, Some(net("c", Some(100)))).await;
    assert_eq!(c.status, 201, "{}", c.body);
    env.stop().await;
}

/// Per-project quotas hold — networks, addresses (also on a shared network),
/// image bytes, nodes — inside the transaction that would add more, are
/// readable by the project and set by site admins; addresses asked for must
/// lie in a pool and not be a DNS server.
pub async fn quotas_hold_and_are_readable(b: Backend) {
    let env = Env::start(b, |c| {
        c.default_quota = tundrad::config::DefaultQuota { nodes: 0, networks: 1, addresses: 3, image_bytes: 5000 };
    })
    .await;
    let admin = env.admin.clone();
    let p = env.project("a").await;
    let m = env.user_with_role("m", "a", "member").await;
    let q = env.call("GET", "/v1/projects/a/quota", &m, None).await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(q.body["networks"], json!({"limit": 1, "used": 0, "default": true}));
    assert_eq!(q.body["image_bytes"]["limit"], 5000);

    let pn = json!({"name": "eth", "kind": "ethernet", "segment_range": [100, 199], "provisioning_segment": 10});
    let pn = env.call("POST", "/v1/physical-networks", &admin, Some(pn)).await.body["id"].as_str().unwrap().to_string();
    let net = |name: &str| json!({"project_id": p, "name": name, "physical_network_id": pn});
    let n1 = env.call("POST", "/v1/networks", &m, Some(net("n1"))).await;
    assert_eq!(n1.status, 201, "{}", n1.body);
    let r = env.call("POST", "/v1/networks", &m, Some(net("n2"))).await;
    let d = r.problem(403);
    assert!(d.contains("quota exceeded") && d.contains("1 of its 1 networks"), "{d}");
    assert_eq!(r.body["type"], "urn:tundra:problem:quota-exceeded");

    // Addresses: asked-for ones inside a pool, never a DNS server; three in all.
    let n1 = n1.body["id"].as_str().unwrap().to_string();
    let sub = json!({"network_id": n1, "name": "s", "cidr": "10.5.0.0/24", "dns": ["10.5.0.53"],
                     "allocation_pools": [{"start": "10.5.0.10", "end": "10.5.0.20"}]});
    let s = env.call("POST", "/v1/subnets", &m, Some(sub)).await;
    assert_eq!(s.status, 201, "{}", s.body);
    let sid = s.body["id"].as_str().unwrap().to_string();
    let port = |name: &str, addr: Option<&str>| {
        let mut b = json!({"project_id": p, "network_id": n1, "name": name});
        if let Some(a) = addr {
            b["fixed_ips"] = json!([{"subnet_id": sid, "address": a}]);
        }
        b
    };
    for (addr, why) in [("10.5.0.50", "outside the subnet's allocation pools"), ("10.5.0.53", "DNS")] {
        let r = env.call("POST", "/v1/ports", &m, Some(port("x", Some(addr)))).await;
        assert!(r.problem(400).contains(why), "{addr}: {}", r.body);
        assert_eq!(r.body["errors"][0]["pointer"], "/fixed_ips/0/address");
    }
    // A shared network's addresses count too.
    let shared = json!({"name": "shared", "physical_network_id": pn});
    let shared = env.call("POST", "/v1/networks", &admin, Some(shared)).await.body["id"].as_str().unwrap().to_string();
    let ss = json!({"network_id": shared, "name": "ss", "cidr": "10.6.0.0/24"});
    assert_eq!(env.call("POST", "/v1/subnets", &admin, Some(ss)).await.status, 201);
    let on_shared = json!({"project_id": p, "network_id": shared, "name": "sh"});
    assert_eq!(env.call("POST", "/v1/ports", &m, Some(on_shared.clone())).await.status, 201);
    for name in ["p1", "p2"] {
        let r = env.call("POST", "/v1/ports", &m, Some(port(name, None))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = env.call("POST", "/v1/ports", &m, Some(port("p3", None))).await;
    assert!(r.problem(403).contains("3 of its 3 addresses"), "{}", r.body);
    let ports = env.call("GET", "/v1/ports?limit=100", &m, None).await;
    assert_eq!(ports.body["items"].as_array().unwrap().len(), 3, "nothing half-made: {}", ports.body);

    // Image bytes: counted once known; over the limit the image fails and its bytes go.
    let bytes = vec![1u8; 4096];
    let mut ids = Vec::new();
    for name in ["i1", "i2"] {
        let body = json!({"project_id": p, "name": name, "disk_format": "raw", "sha256": sha256(&bytes)});
        let id = env.call("POST", "/v1/images", &m, Some(body)).await.body["id"].as_str().unwrap().to_string();
        ids.push(id.clone());
        let up = env.raw(env.req("PUT", &format!("/v1/images/{id}/file"), &m).body(bytes.clone())).await;
        if name == "i1" {
            assert_eq!(up.status, 200, "{}", up.body);
        } else {
            assert!(up.problem(403).contains("bytes of images"), "{}", up.body);
        }
    }
    let i2 = env.call("GET", &format!("/v1/images/{}", ids[1]), &m, None).await;
    assert_eq!(i2.body["status"], "error", "{}", i2.body);
    assert!(!env.config.data_dir.join("images").join(format!("{}.raw", ids[1])).exists());

    // Nodes: a quota of 0 says so before any placement.
    let f = env.call("POST", "/v1/flavors", &admin, Some(json!({"name": "bm", "resource_class": "baremetal"}))).await;
    let body = json!({"project_id": p, "name": "n", "flavor_id": f.body["id"], "image_id": ids[0]});
    let r = env.call("POST", "/v1/nodes", &m, Some(body)).await;
    assert!(r.problem(403).contains("0 nodes"), "{}", r.body);

    // Site admins set a project's own limits; members cannot.
    env.call("PUT", "/v1/projects/a/quota", &m, Some(json!({"networks": 5}))).await.problem(403);
    let q = env.call("PUT", "/v1/projects/a/quota", &admin, Some(json!({"networks": 2}))).await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(q.body["networks"], json!({"limit": 2, "used": 1, "default": false}));
    assert_eq!(q.body["addresses"], json!({"limit": 3, "used": 3, "default": true}));
    assert_eq!(env.call("POST", "/v1/networks", &m, Some(net("n2"))).await.status, 201);
    env.stop().await;
}
