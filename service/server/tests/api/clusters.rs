//! Clusters through the API: templates versioned and frozen once used,
//! requests that cannot be met refused at the field to blame with nothing
//! written, and the metadata service's cluster routes closed to anyone but
//! a cluster's node with its token. (The conductor's tests run a cluster's
//! whole life; the lab's run it with real Docker.)

use serde_json::{Value, json};

use crate::harness::{Backend, Env, loopback_boot};

pub async fn templates_and_bad_requests_write_nothing(b: Backend) {
    let env = Env::start(b, |c| loopback_boot(c, &[])).await;
    let t = env.admin.clone();
    let crate::nodes::Catalog { project: p, flavor, image } = crate::nodes::catalog(&env).await;
    let member = env.user_with_role("hpc-member", "hpc", "member").await;

    // Templates: site ones by site admins, a project's by its members.
    let tpl = |project: Option<&str>, version: u32, kind: &str| {
        let mut b = json!({"name": "docker", "version": version, "kind": kind});
        if let Some(p) = project {
            b["project_id"] = json!(p);
        }
        b
    };
    env.call("POST", "/v1/cluster-templates", &member, Some(tpl(None, 1, "swarm"))).await.problem(403);
    let r = env.call("POST", "/v1/cluster-templates", &t, Some(tpl(None, 1, "kubernetes"))).await;
    assert!(r.problem(400).contains("air-gap bundle"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/bundle_image_id");
    let r = env.call("POST", "/v1/cluster-templates", &t, Some(tpl(None, 0, "swarm"))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/version")));
    let site = env.call("POST", "/v1/cluster-templates", &t, Some(tpl(None, 1, "swarm"))).await;
    assert_eq!(site.status, 201, "{}", site.body);
    let site_id = site.body["id"].as_str().unwrap().to_string();
    let r = env.call("POST", "/v1/cluster-templates", &t, Some(tpl(None, 1, "swarm"))).await;
    assert!(r.problem(409).contains("make version 2"), "{}", r.body);
    // The same name and version in a project is that project's own.
    let own = env.call("POST", "/v1/cluster-templates", &member, Some(tpl(Some(&p), 1, "swarm"))).await;
    assert_eq!(own.status, 201, "{}", own.body);
    let seen = env.call("GET", "/v1/cluster-templates", &member, None).await.body;
    assert_eq!(seen["items"].as_array().unwrap().len(), 2, "the site's and its own: {seen}");
    // Only the description changes.
    let r =
        env.call("PATCH", &format!("/v1/cluster-templates/{site_id}"), &t, Some(json!({"kind": "kubernetes"}))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/kind")));
    let r = env
        .call("PATCH", &format!("/v1/cluster-templates/{site_id}"), &t, Some(json!({"description": "Docker 20"})))
        .await;
    assert_eq!((r.status, r.body["description"].as_str()), (200, Some("Docker 20")));

    let events_before = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();
    let group = |count: u32| json!({"name": "cp", "role": "control_plane", "flavor_id": flavor, "image_id": image, "count": count});
    let cluster = |groups: Value| json!({"project_id": p, "name": "sw", "template_id": site_id, "groups": groups});
    let refused = [
        (cluster(json!([group(2)])), 400, "/groups/0/count", "odd"),
        (cluster(json!([])), 400, "/groups", "control_plane"),
        (
            cluster(
                json!([{"name": "cp", "role": "control_plane", "flavor_id": image, "image_id": image, "count": 1}]),
            ),
            400,
            "/groups/0/flavor_id",
            "no flavor",
        ),
        (
            cluster(
                json!([{"name": "cp", "role": "control_plane", "flavor_id": flavor, "image_id": image, "count": 1, "networks": [image]}]),
            ),
            400,
            "/groups/0/networks/0/network_id",
            "",
        ),
        (
            cluster(json!([group(1)]))
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain([("labels".to_string(), json!({"bad key": "x"}))])
                .collect(),
            400,
            "/labels",
            "letters",
        ),
        (
            json!({"project_id": p, "name": "sw", "template_id": p, "groups": [group(1)]}),
            400,
            "/template_id",
            "no cluster template",
        ),
        (
            json!({"project_id": p, "name": "prod.sw", "template_id": site_id, "groups": [group(1)]}),
            400,
            "/name",
            "host names",
        ),
        (
            json!({"project_id": p, "name": "sw", "template_id": site_id, "groups": [group(1)], "colour": "red"}),
            400,
            "/colour",
            "unknown field",
        ),
    ];
    for (body, status, pointer, says) in refused {
        let r = env.call("POST", "/v1/clusters", &member, Some(body.clone())).await;
        let detail = r.problem(status);
        assert_eq!(r.body["errors"][0]["pointer"], pointer, "{body}: {}", r.body);
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let events_after = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();
    assert_eq!(events_before, events_after, "no refused cluster wrote anything");
    assert_eq!(env.call("GET", "/v1/clusters", &t, None).await.body["items"], json!([]));

    // Nodes a cluster makes carry tundrad's own metadata keys; nobody else may set them.
    let n = json!({"project_id": p, "name": "n", "flavor_id": flavor, "image_id": image, "metadata": {"tundra:cluster_id": "x"}});
    let n = env.call("POST", "/v1/nodes", &member, Some(n)).await;
    assert_eq!((n.status, n.body["errors"][0]["pointer"].as_str()), (400, Some("/metadata")), "{}", n.body);
    // A cluster uses its template: the template cannot go while it does.
    let c = env.call("POST", "/v1/clusters", &member, Some(cluster(json!([group(1)])))).await;
    assert_eq!((c.status, c.body["status"].as_str()), (202, Some("creating")), "{}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();
    let r = env.call("DELETE", &format!("/v1/cluster-templates/{site_id}"), &t, None).await;
    assert!(r.problem(409).contains("used by clusters sw"), "{}", r.body);
    // A control plane of 2 is refused on update too, at the field.
    let r = env.call("PATCH", &format!("/v1/clusters/{cid}"), &member, Some(json!({"groups": [group(2)]}))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/groups/0/count")));
    let r = env.call("PATCH", &format!("/v1/clusters/{cid}"), &member, Some(json!({"replace": ["sw-nope-1"]}))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/replace/0")));
    // No node holds a loopback address: the metadata service's cluster
    // routes answer nobody here.
    let r = env.boot_call("GET", "/openstack/latest/tundra_cluster.json", "", None, "127.0.0.1").await;
    r.problem(404);
    let r = env
        .boot_call(
            "POST",
            "/openstack/latest/tundra_cluster_report",
            "",
            Some(json!({"outcome": "joined"})),
            "127.0.0.1",
        )
        .await;
    r.problem(404);
    // Deleting: `deleting`, then gone once its (unplaced) member is.
    let r = env.call("DELETE", &format!("/v1/clusters/{cid}"), &member, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (202, Some("deleting")), "{}", r.body);
    crate::harness::wait_for("the cluster to go", async || {
        env.call("GET", &format!("/v1/clusters/{cid}"), &member, None).await.status == 404
    })
    .await;
    let r = env.call("DELETE", &format!("/v1/cluster-templates/{site_id}"), &t, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // A k3s template names its bundle: that image cannot go from under it,
    // and the project cannot go while its templates are there.
    let k3s = json!({"project_id": p, "name": "k3s", "version": 1, "kind": "kubernetes", "bundle_image_id": image});
    let k3s = env.call("POST", "/v1/cluster-templates", &member, Some(k3s)).await;
    assert_eq!(k3s.status, 201, "{}", k3s.body);
    let r = env.call("DELETE", &format!("/v1/images/{image}"), &t, None).await;
    assert!(r.problem(409).contains("k3s bundle of cluster template(s) k3s version 1"), "{}", r.body);
    // A k3s cluster's labels become its nodes' Kubernetes labels: they
    // must be ones k3s takes.
    let kube = |labels: Value| json!({"project_id": p, "name": "kube", "template_id": k3s.body["id"], "groups": [group(1)], "labels": labels});
    let r = env.call("POST", "/v1/clusters", &member, Some(kube(json!({"Site.Example/rack": "r1"})))).await;
    assert!(r.problem(400).contains("Kubernetes label key"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/labels/Site.Example~1rack");
    let r = env.call("POST", "/v1/clusters", &member, Some(kube(json!({"team": "radio"})))).await;
    assert_eq!((r.status, r.body["kind"].as_str()), (202, Some("kubernetes")), "{}", r.body);
    let kid = r.body["id"].as_str().unwrap().to_string();
    // No control plane answers yet: no CA to show, and no kubeconfig.
    assert!(r.body.get("ca_certificate").is_none(), "{}", r.body);
    let r = env.call("PATCH", &format!("/v1/clusters/{kid}"), &member, Some(json!({"labels": {"team": "-x"}}))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/labels/team")), "{}", r.body);
    let r = env.call("POST", &format!("/v1/clusters/{kid}/credentials"), &member, Some(json!({}))).await;
    assert!(r.problem(409).contains("no control plane answering yet"), "{}", r.body);
    // The bundle goes only to a node of the cluster, proven by its token.
    let r = env.boot_call("GET", "/openstack/latest/tundra_cluster_bundle", "", None, "127.0.0.1").await;
    r.problem(404);
    let r = env.call("DELETE", &format!("/v1/clusters/{kid}"), &member, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    crate::harness::wait_for("the k3s cluster to go", async || {
        env.call("GET", &format!("/v1/clusters/{kid}"), &member, None).await.status == 404
    })
    .await;
    let r = env.call("DELETE", &format!("/v1/projects/{p}"), &t, None).await;
    assert!(r.problem(409).contains("cluster templates"), "{}", r.body);
    env.stop().await;
}

/// Without the metadata service nothing could tell a node how to join:
/// clusters are refused with what the site admin must configure.
pub async fn clusters_need_the_metadata_service(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let crate::nodes::Catalog { project: p, flavor, image } = crate::nodes::catalog(&env).await;
    let tpl = env
        .call("POST", "/v1/cluster-templates", &env.admin, Some(json!({"name": "d", "version": 1, "kind": "swarm"})))
        .await;
    let group = json!([{"name": "cp", "role": "control_plane", "flavor_id": flavor, "image_id": image, "count": 1}]);
    let r = env
        .call(
            "POST",
            "/v1/clusters",
            &env.admin,
            Some(json!({"project_id": p, "name": "sw", "template_id": tpl.body["id"], "groups": group})),
        )
        .await;
    assert!(r.problem(409).contains("metadata service"), "{}", r.body);
    env.stop().await;
}

/// tundrad stopped (its loops cut off wherever they were) right after a
/// scale-up and right after a scale-down: started again, the cluster
/// converges to the declared counts, every member holding one node and no
/// node left without a member. (The machines sit behind a real Redfish
/// emulator; the deploys wait for an agent that never comes, so nodes stay
/// `building` — what counts here is which nodes exist.)
pub async fn scaling_survives_restarts(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_bmc, base) = crate::peers::sushy(dir.path());
    let tweak = |c: &mut tundrad::config::Config| {
        c.power_sync_interval = "1h".into();
        c.agent_boot_timeout = "10m".into();
        c.reconcile_interval = "1s".into();
    };
    let mut env = Env::start(b, |c| {
        tweak(c);
        loopback_boot(c, &[]);
    })
    .await;
    for k in 0..5 {
        crate::nodes::machine(&env, &format!("m{k}"), &format!("52:54:00:cc:00:0{k}"), &format!("r{k}"), "a", &base)
            .await;
    }
    let crate::nodes::Catalog { project: p, flavor, image } = crate::nodes::catalog(&env).await;
    let t = env
        .call("POST", "/v1/cluster-templates", &env.admin, Some(json!({"name": "d", "version": 1, "kind": "swarm"})))
        .await;
    let group = |name: &str, role: &str, count: u32| json!({"name": name, "role": role, "flavor_id": flavor, "image_id": image, "count": count});
    let c = env
        .call(
            "POST",
            "/v1/clusters",
            &env.admin,
            Some(json!({"project_id": p, "name": "sw", "template_id": t.body["id"],
                        "groups": [group("cp", "control_plane", 1), group("wk", "worker", 2)]})),
        )
        .await;
    assert_eq!(c.status, 202, "{}", c.body);
    let id = c.body["id"].as_str().unwrap().to_string();
    // Converged: `live` members each holding a node, every node of the
    // project a member's (live, or leaving and being deleted).
    let converged = async |env: &Env, live: usize| -> bool {
        let c = env.call("GET", &format!("/v1/clusters/{id}"), &env.admin, None).await.body;
        let nodes = env.call("GET", "/v1/nodes?limit=100", &env.admin, None).await.body;
        let nodes = nodes["items"].as_array().unwrap();
        let members = c["members"].as_array().unwrap();
        let held: Vec<&str> = members.iter().filter_map(|m| m["node_id"].as_str()).collect();
        let staying = members.iter().filter(|m| m["state"] != "leaving" && m["node_id"].is_string()).count();
        let every_node_a_members = nodes.iter().all(|n| held.contains(&n["id"].as_str().unwrap()));
        let going_only = nodes.iter().filter(|n| n["status"] != "deleting").count() == staying;
        let mut names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        names.dedup();
        staying == live && every_node_a_members && going_only && names.len() == nodes.len()
    };
    crate::harness::wait_for("the cluster's 3 nodes", async || converged(&env, 3).await).await;

    for (count, live) in [(4, 5), (1, 2)] {
        let cur = env.call("GET", &format!("/v1/clusters/{id}"), &env.admin, None).await.body;
        let body = json!({"groups": [group("cp", "control_plane", 1), group("wk", "worker", count)]});
        let r = env.call("PATCH", &format!("/v1/clusters/{id}"), &env.admin, Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Cut off at once, whatever the reconciler was doing.
        env.restart(tweak).await;
        crate::harness::wait_for(&format!("{live} nodes after the restart"), async || converged(&env, live).await)
            .await;
        let after = env.call("GET", &format!("/v1/clusters/{id}"), &env.admin, None).await.body;
        let names = |c: &Value| -> Vec<String> {
            let ms = c["members"].as_array().unwrap().iter();
            ms.map(|m| format!("{} {}", m["name"].as_str().unwrap(), m["state"].as_str().unwrap())).collect()
        };
        eprintln!("wk count {count} across a restart: {:?} → {:?}", names(&cur), names(&after));
    }
    // Scaled down: the manager and the first worker stay (the newest go first).
    let c = env.call("GET", &format!("/v1/clusters/{id}"), &env.admin, None).await.body;
    let staying: Vec<&str> = c["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] != "leaving")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(staying, ["sw-cp-1", "sw-wk-1"], "{c}");
    env.stop().await;
}
