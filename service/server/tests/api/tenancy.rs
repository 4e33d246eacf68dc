//! Tenancy on every route: the routes come from the OpenAPI document (which
//! is built from the same registrations as the router), so a new route
//! without a case here fails this test. A member of project A must neither
//! read nor change anything of project B; a reader of A must not write.

use std::collections::BTreeSet;
use std::time::Duration;
use tundra_api::machines::ProvisionState;

use serde_json::{Value, json};

use crate::harness::{Backend, Env, FileServer, loopback_boot, sha256, wait_for};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB test@tundra";

/// How a route is exercised.
enum Case {
    /// Needs no credentials and shows no tenant data.
    Public,
    /// Answers only about the caller.
    Personal,
    /// A list: must not show project B's objects.
    List,
    /// A call on one of B's objects (or creating in B): must fail 403/404.
    Foreign(Option<Value>),
    /// Served only on the boot listeners: 404 on the API listener, whoever
    /// asks. On a boot listener a user's API token opens nothing: no script
    /// or asset while no machine is booting (404), and the agent protocol
    /// (`agent`: true) needs a per-boot agent token (401).
    Boot { agent: bool, body: Option<Value> },
    /// A site object every signed-in user may read (physical networks): 200
    /// for A's member without B's data, 401 without credentials.
    Site,
}

pub async fn every_route_keeps_projects_apart(b: Backend) {
    let image_bytes = vec![7u8; 4096];
    let files = FileServer::start(image_bytes.clone(), Duration::ZERO).await;
    let prefix = files.prefix();
    let env = Env::start(b, |c| {
        c.image_source_allow = vec![prefix];
        loopback_boot(c, &[]);
    })
    .await;
    let admin = env.admin.clone();
    let a = env.project("a").await;
    let bp = env.project("b").await;
    let a_member = env.user_with_role("a-member", "a", "member").await;
    let a_reader = env.user_with_role("a-reader", "a", "reader").await;
    let b_member = env.user_with_role("b-member", "b", "member").await;

    // Project B's objects, made by B's member.
    let post = |path: &'static str, body: Value| {
        let env = &env;
        let b_member = b_member.clone();
        async move {
            let r = env.call("POST", path, &b_member, Some(body)).await;
            assert!(r.status == 201 || r.status == 202, "{path}: {}", r.body);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let b_key = post("/v1/keypairs", json!({"project_id": bp, "name": "k", "public_key": KEY})).await;
    let b_flavor = post("/v1/flavors", json!({"project_id": bp, "name": "f", "resource_class": "rc"})).await;
    let b_image = post("/v1/images", json!({"project_id": bp, "name": "i", "disk_format": "raw", "sha256": sha256(&image_bytes), "source_url": files.url("i.raw")})).await;
    wait_for("B's image import", async || {
        env.call("GET", &format!("/v1/images/{b_image}"), &admin, None).await.body["status"] == "active"
    })
    .await;
    let b_op = env.call("GET", &format!("/v1/images/{b_image}"), &admin, None).await.body["operation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b_user = env.call("GET", "/v1/users/b-member", &admin, None).await.body["id"].as_str().unwrap().to_string();
    let b_token =
        env.call("GET", "/v1/tokens", &b_member, None).await.body["items"][0]["id"].as_str().unwrap().to_string();
    // And A's, for the reader checks.
    let a_key = env
        .call("POST", "/v1/keypairs", &admin, Some(json!({"project_id": a, "name": "k", "public_key": KEY})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_flavor = env
        .call("POST", "/v1/flavors", &admin, Some(json!({"project_id": a, "name": "f", "resource_class": "rc"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_image = env
        .call(
            "POST",
            "/v1/images",
            &admin,
            Some(json!({"project_id": a, "name": "i", "disk_format": "raw", "sha256": sha256(b"x")})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A machine (site admins only): A's member may not touch it.
    let machine = env
        .call("POST", "/v1/machines", &admin, Some(json!({"name": "m", "resource_class": "rc", "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p"})))
        .await;
    assert_eq!(machine.status, 201, "{}", machine.body);
    let machine = machine.body["id"].as_str().unwrap().to_string();
    // B's node, on a machine whose BMC is gone: its deploy fails and the
    // node settles in `error` (machine released) before the checks start.
    let bm = env
        .call("POST", "/v1/machines", &admin, Some(json!({"name": "bm", "resource_class": "rc", "bmc": {"driver": "redfish", "address": "http://127.0.0.1:9", "username": "u"}, "bmc_password": "p", "interfaces": [{"mac": "52:54:00:00:0b:01", "pxe": true}]})))
        .await;
    let bm: tundra_api::MachineId = bm.body["id"].as_str().unwrap().parse().unwrap();
    let (store, svc) = (&env.state().store(), tundra_store::Actor::service());
    let (_, op) = store
        .begin_machine_transition(
            &svc,
            bm,
            ProvisionState::Enroll,
            ProvisionState::Cleaning,
            "setup",
            crate::harness::machine_op(bm),
        )
        .await
        .unwrap();
    store.machine_step(bm, op, ProvisionState::Available, None, true).await.unwrap();
    let b_node =
        post("/v1/nodes", json!({"project_id": bp, "name": "n", "flavor_id": b_flavor, "image_id": b_image})).await;
    wait_for("B's node to fail and settle", async || {
        let n = env.call("GET", &format!("/v1/nodes/{b_node}"), &admin, None).await.body;
        let m = env.call("GET", &format!("/v1/machines/{bm}"), &admin, None).await.body;
        n["status"] == "error" && n["machine_id"].is_null() && m["operation_id"].is_null()
    })
    .await;
    // The fabric: a physical network and a switch (site admins), B's
    // network, subnet and port.
    let admin_post = |path: &'static str, body: Value| {
        let env = &env;
        let admin = admin.clone();
        async move {
            let r = env.call("POST", path, &admin, Some(body)).await;
            assert_eq!(r.status, 201, "{path}: {}", r.body);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let physnet = admin_post(
        "/v1/physical-networks",
        json!({"name": "fabric", "kind": "ethernet", "segment_range": [100, 199], "provisioning_segment": 10}),
    )
    .await;
    let switch = admin_post("/v1/switches", json!({"name": "leaf", "physical_network_id": physnet, "dialect": "cisco_ios", "address": "127.0.0.1:1", "username": "u", "password": "switch-secret", "host_key": format!("SHA256:{}", "A".repeat(43))})).await;
    let b_net = post("/v1/networks", json!({"project_id": bp, "name": "net", "physical_network_id": physnet})).await;
    let b_subnet = post("/v1/subnets", json!({"network_id": b_net, "name": "sub", "cidr": "10.9.0.0/24"})).await;
    let b_port = post("/v1/ports", json!({"project_id": bp, "network_id": b_net, "name": "port"})).await;
    // Shares: a share type whose backend is nowhere (its work waits), B's
    // share (marked made, as the worker would), a rule and a snapshot.
    let share_type = admin_post("/v1/share-types", json!({"name": "ceph", "backend": "cephfs", "settings": {"monitors": ["127.0.0.1:1"], "fs_name": "fs"}, "credential": format!("{}==", "A".repeat(38))})).await;
    let b_share =
        post("/v1/shares", json!({"project_id": bp, "name": "share", "share_type_id": share_type, "size_gib": 1}))
            .await;
    let made = tundra_store::ShareDone {
        from: tundra_api::shares::ShareStatus::Creating,
        size_gib: 1,
        export_path: Some("/volumes/b/share".into()),
        used_bytes: None,
    };
    assert!(store.share_done(b_share.parse().unwrap(), made).await.unwrap());
    let b_access = post("/v1/share-access", json!({"share_id": b_share, "kind": "cephx", "access_to": "b"})).await;
    let b_snap = post("/v1/share-snapshots", json!({"share_id": b_share, "name": "snap"})).await;
    wait_for("B's rule to be taken up", async || {
        env.call("GET", &format!("/v1/share-access/{b_access}"), &admin, None).await.body["state"] == "applying"
    })
    .await;
    // Clusters: B's template and a cluster whose node finds no machine (it
    // waits, recording why, and writes nothing more while it does).
    let b_template =
        post("/v1/cluster-templates", json!({"project_id": bp, "name": "t", "version": 1, "kind": "swarm"})).await;
    let b_group =
        json!([{"name": "cp", "role": "control_plane", "flavor_id": b_flavor, "image_id": b_image, "count": 1}]);
    let b_cluster =
        post("/v1/clusters", json!({"project_id": bp, "name": "c", "template_id": b_template, "groups": b_group}))
            .await;
    wait_for("B's cluster to settle waiting for capacity", async || {
        let c = env.call("GET", &format!("/v1/clusters/{b_cluster}"), &admin, None).await.body;
        c["members"][0]["reason"].as_str().is_some_and(|r| r.contains("no capacity"))
            && c["status_reason"].as_str().is_some_and(|r| r.contains("cp-1"))
    })
    .await;
    // Appliances: a site template (projects do not author them yet) and
    // B's appliance whose node finds no machine (it waits, recording why).
    let b_appliance_template = admin_post(
        "/v1/appliance-templates",
        json!({"name": "t", "version": 1,
               "parameters": [{"name": "flavor", "kind": "flavor"}, {"name": "image", "kind": "image"}],
               "secrets": [{"name": "key", "bytes": 32}],
               "roles": [{"name": "main", "flavor_parameter": "flavor", "image_parameter": "image"}]}),
    )
    .await;
    let b_params = json!({"flavor": b_flavor, "image": b_image});
    let b_appliance = post(
        "/v1/appliances",
        json!({"project_id": bp, "name": "a", "template_id": b_appliance_template, "parameters": b_params}),
    )
    .await;
    wait_for("B's appliance to settle waiting for capacity", async || {
        let a = env.call("GET", &format!("/v1/appliances/{b_appliance}"), &admin, None).await.body;
        a["members"][0]["reason"].as_str().is_some_and(|r| r.contains("no capacity"))
            && a["status_reason"].as_str().is_some_and(|r| r.contains("a-main-0"))
    })
    .await;
    let snapshot = async || -> Vec<Value> {
        let mut v = Vec::new();
        for path in [
            format!("/v1/projects/{bp}"),
            format!("/v1/keypairs/{b_key}"),
            format!("/v1/flavors/{b_flavor}"),
            format!("/v1/images/{b_image}"),
            format!("/v1/operations/{b_op}"),
            format!("/v1/projects/{bp}/roles"),
            format!("/v1/users/{b_user}"),
            format!("/v1/tokens/{b_token}"),
            format!("/v1/events?project={bp}&limit=500"),
            format!("/v1/machines/{machine}"),
            format!("/v1/nodes/{b_node}"),
            format!("/v1/physical-networks/{physnet}"),
            format!("/v1/switches/{switch}"),
            format!("/v1/networks/{b_net}"),
            format!("/v1/subnets/{b_subnet}"),
            format!("/v1/ports/{b_port}"),
            format!("/v1/shares/{b_share}"),
            format!("/v1/share-access/{b_access}"),
            format!("/v1/share-snapshots/{b_snap}"),
            format!("/v1/cluster-templates/{b_template}"),
            format!("/v1/clusters/{b_cluster}"),
            format!("/v1/appliance-templates/{b_appliance_template}"),
            format!("/v1/appliances/{b_appliance}"),
        ] {
            let r = env.call("GET", &path, &admin, None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            v.push(r.body);
        }
        v
    };
    let before = snapshot().await;

    let subst = |path: &str| {
        path.replace("{project}", &bp)
            .replace("{user}", &b_user)
            .replace("{token}", &b_token)
            .replace("{keypair}", &b_key)
            .replace("{flavor}", &b_flavor)
            .replace("{image}", &b_image)
            .replace("{operation}", &b_op)
            .replace("{machine}", &machine)
            .replace("{node}", &b_node)
            .replace("{physical_network}", &physnet)
            .replace("{switch}", &switch)
            .replace("{network}", &b_net)
            .replace("{subnet}", &b_subnet)
            .replace("{port}", &b_port)
            .replace("{share_type}", &share_type)
            .replace("{share}", &b_share)
            .replace("{access}", &b_access)
            .replace("{snapshot}", &b_snap)
            .replace("{template}", &b_template)
            .replace("{cluster}", &b_cluster)
            .replace("{appliance_template}", &b_appliance_template)
            .replace("{appliance}", &b_appliance)
            .replace("{script}", "52:54:00:00:00:99.ipxe")
            .replace("{file}", "vmlinuz")
    };
    let case = |method: &str, path: &str| -> Option<Case> {
        use Case::*;
        Some(match (method, path) {
            ("get", "/healthz" | "/readyz" | "/v1/info" | "/metrics" | "/v1/openapi.json") => Public,
            ("get", "/v1/whoami") => Personal,
            ("get", "/boot/{script}" | "/boot/assets/{file}") => Boot { agent: false, body: None },
            ("post", "/v1/agent/heartbeat") => Boot { agent: true, body: Some(json!({"version": "0"})) },
            ("post", "/v1/agent/report") => Boot { agent: true, body: Some(json!({"id": "x", "ok": true})) },
            ("get", "/v1/agent/image") => Boot { agent: true, body: None },
            (
                "get",
                "/v1/projects"
                | "/v1/keypairs"
                | "/v1/flavors"
                | "/v1/images"
                | "/v1/operations"
                | "/v1/events"
                | "/v1/tokens"
                | "/v1/users"
                | "/v1/machines"
                | "/v1/nodes"
                | "/v1/physical-networks"
                | "/v1/switches"
                | "/v1/networks"
                | "/v1/subnets"
                | "/v1/ports"
                | "/v1/share-types"
                | "/v1/shares"
                | "/v1/share-access"
                | "/v1/share-snapshots"
                | "/v1/cluster-templates"
                | "/v1/clusters"
                | "/v1/appliance-templates"
                | "/v1/appliances",
            ) => List,
            ("post", "/v1/appliance-templates") => Foreign(Some(json!({
                "project_id": bp, "name": "sneaky", "version": 1,
                "parameters": [{"name": "flavor", "kind": "flavor"}, {"name": "image", "kind": "image"}],
                "roles": [{"name": "main", "flavor_parameter": "flavor", "image_parameter": "image"}]
            }))),
            ("patch", "/v1/appliance-templates/{appliance_template}") => Foreign(Some(json!({"description": "pwned"}))),
            ("post", "/v1/appliances") => Foreign(Some(json!({
                "project_id": bp, "name": "sneaky", "template_id": b_appliance_template, "parameters": b_params
            }))),
            ("patch", "/v1/appliances/{appliance}") => Foreign(Some(json!({"parameters": b_params}))),
            ("post", "/v1/cluster-templates") => {
                Foreign(Some(json!({"project_id": bp, "name": "sneaky", "version": 1, "kind": "swarm"})))
            }
            ("patch", "/v1/cluster-templates/{template}") => Foreign(Some(json!({"description": "pwned"}))),
            ("post", "/v1/clusters") => Foreign(Some(json!({
                "project_id": bp, "name": "sneaky", "template_id": b_template, "groups": b_group
            }))),
            ("patch", "/v1/clusters/{cluster}") => Foreign(Some(json!({"labels": {"pwned": "yes"}}))),
            ("post", "/v1/clusters/{cluster}/credentials") => Foreign(Some(json!({}))),
            (
                "get",
                "/v1/physical-networks/{physical_network}"
                | "/v1/share-types/{share_type}"
                | "/v1/appliance-templates/{appliance_template}",
            ) => Site,
            ("post", "/v1/share-types") => Foreign(Some(json!({
                "name": "sneaky", "backend": "cephfs", "settings": {"monitors": ["127.0.0.1:2"], "fs_name": "fs"},
                "credential": format!("{}==", "B".repeat(38))
            }))),
            ("patch", "/v1/share-types/{share_type}" | "/v1/shares/{share}") => {
                Foreign(Some(json!({"description": "pwned"})))
            }
            ("post", "/v1/shares") => Foreign(Some(json!({
                "project_id": bp, "name": "sneaky", "share_type_id": share_type, "size_gib": 1
            }))),
            ("post", "/v1/share-access") => {
                Foreign(Some(json!({"share_id": b_share, "kind": "cephx", "access_to": "sneaky"})))
            }
            ("post", "/v1/share-snapshots") => Foreign(Some(json!({"share_id": b_share, "name": "sneaky"}))),
            ("post", "/v1/physical-networks") => {
                Foreign(Some(json!({"name": "sneaky", "kind": "infiniband", "segment_range": [2, 9]})))
            }
            ("patch", "/v1/physical-networks/{physical_network}" | "/v1/switches/{switch}") => {
                Foreign(Some(json!({"description": "pwned"})))
            }
            ("post", "/v1/switches") => Foreign(Some(json!({
                "name": "sneaky", "physical_network_id": physnet, "dialect": "cisco_ios", "address": "127.0.0.1:2",
                "username": "u", "password": "p", "host_key": format!("SHA256:{}", "B".repeat(43))
            }))),
            ("post", "/v1/switches/{switch}/sync" | "/v1/ports/{port}/sync") => Foreign(None),
            ("post", "/v1/networks") => {
                Foreign(Some(json!({"project_id": bp, "name": "sneaky", "physical_network_id": physnet})))
            }
            ("post", "/v1/subnets") => {
                Foreign(Some(json!({"network_id": b_net, "name": "sneaky", "cidr": "10.8.0.0/24"})))
            }
            ("post", "/v1/ports") => Foreign(Some(json!({"project_id": bp, "network_id": b_net, "name": "sneaky"}))),
            ("patch", "/v1/networks/{network}" | "/v1/subnets/{subnet}" | "/v1/ports/{port}") => {
                Foreign(Some(json!({"description": "pwned"})))
            }
            ("post", "/v1/nodes") => Foreign(Some(json!({
                "project_id": bp, "name": "sneaky", "flavor_id": b_flavor, "image_id": b_image
            }))),
            ("patch", "/v1/nodes/{node}") => Foreign(Some(json!({"metadata": {"pwned": "yes"}}))),
            ("post", "/v1/nodes/{node}/rebuild") => Foreign(Some(json!({}))),
            ("post", "/v1/machines") => Foreign(Some(json!({
                "name": "sneaky", "resource_class": "rc",
                "bmc": {"driver": "ipmi", "address": "127.0.0.1:1", "username": "u"}, "bmc_password": "p"
            }))),
            ("patch", "/v1/machines/{machine}") => Foreign(Some(json!({"maintenance": false}))),
            ("post", "/v1/machines/{machine}/actions") => Foreign(Some(json!({"action": "power_on"}))),
            ("post", "/v1/projects") => Foreign(Some(json!({"name": "sneaky"}))),
            ("post", "/v1/users") => Foreign(Some(json!({"name": "sneaky", "admin": true}))),
            ("post", "/v1/tokens") => Foreign(Some(json!({"project_id": bp, "role": "member"}))),
            ("post", "/v1/keypairs") => Foreign(Some(json!({"project_id": bp, "name": "sneaky", "public_key": KEY}))),
            ("post", "/v1/flavors") => {
                Foreign(Some(json!({"project_id": bp, "name": "sneaky", "resource_class": "rc"})))
            }
            ("post", "/v1/images") => {
                Foreign(Some(json!({"project_id": bp, "name": "sneaky", "disk_format": "raw", "sha256": sha256(b"x")})))
            }
            ("patch", "/v1/projects/{project}") => Foreign(Some(json!({"description": "pwned"}))),
            ("patch", "/v1/keypairs/{keypair}" | "/v1/flavors/{flavor}" | "/v1/images/{image}") => {
                Foreign(Some(json!({"description": "pwned"})))
            }
            ("put", "/v1/projects/{project}/roles/{user}") => Foreign(Some(json!({"role": "admin"}))),
            ("put", "/v1/projects/{project}/quota") => Foreign(Some(json!({"nodes": 1000}))),
            ("put", "/v1/images/{image}/file") => Foreign(None),
            ("get" | "delete", _) => Foreign(None),
            _ => return None,
        })
    };

    let doc = env.call("GET", "/v1/openapi.json", "", None).await.body;
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in
            item.as_object().unwrap().keys().filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
        {
            routes.insert((method.clone(), path.clone()));
        }
    }
    assert!(routes.len() >= 30, "only {} routes in the document?", routes.len());

    let b_ids = [
        &bp,
        &b_key,
        &b_flavor,
        &b_image,
        &b_op,
        &b_token,
        &b_user,
        &machine,
        &b_node,
        &switch,
        &b_net,
        &b_subnet,
        &b_port,
        &b_share,
        &b_access,
        &b_snap,
        &b_template,
        &b_cluster,
        &b_appliance,
    ];
    let mut covered = 0;
    for (method, path) in &routes {
        let c = case(method, path).unwrap_or_else(|| panic!("route {method} {path} has no tenancy case; add one"));
        let url = subst(path);
        let m = method.to_uppercase();
        match c {
            Case::Public => {
                let r = env.call(&m, &url, "", None).await;
                assert!(r.status == 200, "{m} {url} should need no credentials: {}", r.status);
                let text = String::from_utf8_lossy(&r.bytes);
                for id in b_ids {
                    assert!(!text.contains(id.as_str()), "{m} {url} leaks {id}");
                }
            }
            Case::Personal => {
                let r = env.call(&m, &url, &a_member, None).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.body["name"], "a-member");
                assert!(!r.body.to_string().contains(bp.as_str()));
            }
            Case::List => {
                let r = env.call(&m, &url, &a_member, None).await;
                assert!(r.status == 200 || r.status == 403, "{m} {url}: {}", r.body);
                let text = r.body.to_string();
                for id in b_ids {
                    assert!(!text.contains(id.as_str()), "{m} {url} shows B's {id} to A's member: {text}");
                }
                // `public` shows public objects only: never B's, never the site's records.
                let r = env.call(&m, &format!("{url}?project=public"), &a_member, None).await;
                assert!([200, 400, 403].contains(&r.status), "{m} {url}?project=public: {}", r.body);
                let text = r.body.to_string();
                for secret in b_ids.iter().map(|s| s.as_str()).chain(["127.0.0.1:9", "52:54:00:00:0b:01"]) {
                    assert!(!text.contains(secret), "{m} {url}?project=public shows {secret}: {text}");
                }
                if [
                    "/v1/keypairs",
                    "/v1/flavors",
                    "/v1/images",
                    "/v1/operations",
                    "/v1/events",
                    "/v1/nodes",
                    "/v1/networks",
                    "/v1/subnets",
                    "/v1/ports",
                    "/v1/shares",
                    "/v1/share-access",
                    "/v1/share-snapshots",
                    "/v1/cluster-templates",
                    "/v1/clusters",
                    "/v1/appliance-templates",
                    "/v1/appliances",
                ]
                .contains(&path.as_str())
                {
                    let r = env.call(&m, &format!("{url}?project={bp}"), &a_member, None).await;
                    r.problem(404);
                }
            }
            Case::Site => {
                let r = env.call(&m, &url, &a_member, None).await;
                assert_eq!(r.status, 200, "{m} {url}: {}", r.body);
                for id in b_ids {
                    assert!(!r.body.to_string().contains(id.as_str()), "{m} {url} leaks {id}");
                }
                env.call(&m, &url, "", None).await.problem(401);
            }
            Case::Boot { agent, body } => {
                for who in ["", a_member.as_str(), admin.as_str()] {
                    env.call(&m, &url, who, body.clone()).await.problem(404);
                    let r = env.boot_call(&m, &url, who, body.clone(), "127.0.0.1").await;
                    if agent {
                        r.problem(401);
                        assert!(r.body["detail"].as_str().unwrap_or_default().contains("agent"), "{}", r.body);
                    } else {
                        r.problem(404);
                    }
                }
            }
            Case::Foreign(body) => {
                let r = match (&body, m.as_str(), path.ends_with("/file")) {
                    (_, "PUT", true) => env.raw(env.req("PUT", &url, &a_member).body(b"x".to_vec())).await,
                    _ => env.call(&m, &url, &a_member, body).await,
                };
                assert!(r.status == 403 || r.status == 404, "{m} {url} as A's member gave {}: {}", r.status, r.body);
                r.problem(r.status);
                // Without credentials: 401 everywhere.
                env.call(&m, &url, "", None).await.problem(401);
            }
        }
        covered += 1;
    }
    assert_eq!(covered, routes.len());
    assert_eq!(snapshot().await, before, "B's objects and history are unchanged");

    // Readers of A cannot write anything of A.
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        ("PATCH", format!("/v1/projects/{a}"), Some(json!({"description": "x"}))),
        ("DELETE", format!("/v1/projects/{a}"), None),
        ("PUT", format!("/v1/projects/{a}/roles/a-reader"), Some(json!({"role": "admin"}))),
        ("PUT", format!("/v1/projects/{a}/quota"), Some(json!({"nodes": 1000}))),
        ("DELETE", format!("/v1/projects/{a}/roles/a-member"), None),
        ("POST", "/v1/keypairs".into(), Some(json!({"project_id": a, "name": "r", "public_key": KEY}))),
        ("PATCH", format!("/v1/keypairs/{a_key}"), Some(json!({"description": "x"}))),
        ("DELETE", format!("/v1/keypairs/{a_key}"), None),
        ("POST", "/v1/flavors".into(), Some(json!({"project_id": a, "name": "r", "resource_class": "rc"}))),
        ("PATCH", format!("/v1/flavors/{a_flavor}"), Some(json!({"description": "x"}))),
        ("DELETE", format!("/v1/flavors/{a_flavor}"), None),
        (
            "POST",
            "/v1/images".into(),
            Some(json!({"project_id": a, "name": "r", "disk_format": "raw", "sha256": sha256(b"x")})),
        ),
        ("PATCH", format!("/v1/images/{a_image}"), Some(json!({"description": "x"}))),
        ("DELETE", format!("/v1/images/{a_image}"), None),
        (
            "POST",
            "/v1/nodes".into(),
            Some(json!({"project_id": a, "name": "r", "flavor_id": a_flavor, "image_id": a_image})),
        ),
        ("POST", "/v1/tokens".into(), Some(json!({"project_id": a, "role": "member"}))),
        (
            "POST",
            "/v1/shares".into(),
            Some(json!({"project_id": a, "name": "r", "share_type_id": share_type, "size_gib": 1})),
        ),
        (
            "POST",
            "/v1/cluster-templates".into(),
            Some(json!({"project_id": a, "name": "r", "version": 1, "kind": "swarm"})),
        ),
        (
            "POST",
            "/v1/appliance-templates".into(),
            Some(json!({"project_id": a, "name": "r", "version": 1, "roles": []})),
        ),
        ("POST", "/v1/projects".into(), Some(json!({"name": "r"}))),
        ("POST", "/v1/users".into(), Some(json!({"name": "r"}))),
    ];
    // A member's token capped to reader is a reader — and the tokens it
    // makes are no stronger.
    let capped = env.call("POST", "/v1/tokens", &a_member, Some(json!({"project_id": a, "role": "reader"}))).await;
    let capped = capped.body["secret"].as_str().unwrap().to_string();
    let child = env.call("POST", "/v1/tokens", &capped, Some(json!({}))).await;
    let child = child.body["secret"].as_str().unwrap().to_string();
    for who in [&a_reader, &capped, &child] {
        for (m, url, body) in &writes {
            let r = env.call(m, url, who, body.clone()).await;
            r.problem(403);
        }
        let r = env.raw(env.req("PUT", &format!("/v1/images/{a_image}/file"), who).body(b"x".to_vec())).await;
        r.problem(403);
    }
    // B's own member reads B's node, its operations and events without the
    // machine under it: no machine ID, no BMC address (site admins see those).
    for url in
        [format!("/v1/nodes/{b_node}"), "/v1/operations?limit=200".into(), format!("/v1/events?project={bp}&limit=500")]
    {
        let r = env.call("GET", &url, &b_member, None).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let text = r.body.to_string();
        for secret in [bm.to_string().as_str(), "127.0.0.1:9", machine.as_str()] {
            assert!(!text.contains(secret), "B's member sees {secret} in {url}: {text}");
        }
    }
    // …but can read them.
    for url in [
        format!("/v1/projects/{a}"),
        format!("/v1/keypairs/{a_key}"),
        format!("/v1/flavors/{a_flavor}"),
        format!("/v1/images/{a_image}"),
    ] {
        assert_eq!(env.call("GET", &url, &a_reader, None).await.status, 200, "{url}");
    }
    env.stop().await;
}
