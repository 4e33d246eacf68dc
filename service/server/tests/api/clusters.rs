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

    // A cluster uses its template: the template cannot go while it does.
    let c = env.call("POST", "/v1/clusters", &member, Some(cluster(json!([group(1)])))).await;
    assert_eq!((c.status, c.body["status"].as_str()), (202, Some("creating")), "{}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();
    let r = env.call("DELETE", &format!("/v1/cluster-templates/{site_id}"), &t, None).await;
    assert!(r.problem(409).contains("used by cluster(s) sw"), "{}", r.body);
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
