//! Appliances through the API: templates checked whole and versioned,
//! appliances' parameters refused at the field to blame with nothing
//! written, an immutable parameter's change refused, generated secrets in
//! no response, and appliances refused without the metadata service. (The
//! conductor's tests run an appliance's whole life with the real agent.)

use serde_json::{Value, json};

use crate::harness::{Backend, Env, loopback_boot};

fn template(project: Option<&str>) -> Value {
    let mut t = json!({
        "name": "slurm", "version": 1,
        "parameters": [
            {"name": "cluster_name", "kind": "string", "pattern": "[a-z]+", "immutable": true},
            {"name": "compute_count", "kind": "count", "default": 1, "maximum": 4},
            {"name": "flavor", "kind": "flavor"},
            {"name": "image", "kind": "image"},
            {"name": "home", "kind": "share", "optional": true}
        ],
        "secrets": [{"name": "munge_key", "bytes": 64}],
        "roles": [
            {"name": "login", "flavor_parameter": "flavor", "image_parameter": "image",
             "shares": [{"parameter": "home", "mount_point": "/home"}],
             "files": [{"path": "/etc/munge/munge.key", "mode": "0400", "owner": "munge:munge",
                        "encoding": "base64", "content": "{{ secrets.munge_key }}"}]},
            {"name": "compute", "count_parameter": "compute_count", "flavor_parameter": "flavor",
             "image_parameter": "image",
             "files": [{"path": "/etc/default/slurmd",
                        "content": "SLURMD_OPTIONS=--conf-server {{ roles.login.nodes[0].address }}\n"}]}
        ],
        "outputs": [{"name": "login_address", "value": "{{ roles.login.nodes[0].address }}"}],
        "usage": "ssh {{ outputs.login_address }}"
    });
    if let Some(p) = project {
        t["project_id"] = json!(p);
    }
    t
}

pub async fn templates_and_bad_requests_write_nothing(b: Backend) {
    let env = Env::start(b, |c| loopback_boot(c, &[])).await;
    let t = env.admin.clone();
    let crate::nodes::Catalog { project: p, flavor, image } = crate::nodes::catalog(&env).await;
    let member = env.user_with_role("hpc-member", "hpc", "member").await;

    // Templates: checked whole, at the field to blame.
    env.call("POST", "/v1/appliance-templates", &member, Some(template(None))).await.problem(403);
    for (change, pointer) in [
        (json!({"version": 0}), "/version"),
        (json!({"roles": []}), "/roles"),
        (json!({"outputs": [{"name": "key", "value": "{{ secrets.munge_key }}"}]}), "/outputs/0/value"),
        (json!({"usage": "{% for %}"}), "/usage"),
        (json!({"secrets": [{"name": "munge_key", "bytes": 4}]}), "/secrets/0/bytes"),
    ] {
        let mut body = template(None);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = env.call("POST", "/v1/appliance-templates", &t, Some(body)).await;
        assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some(pointer)), "{}", r.body);
    }
    let mut body = template(None);
    body["roles"][1]["flavor_parameter"] = json!("image");
    let r = env.call("POST", "/v1/appliance-templates", &t, Some(body)).await;
    assert_eq!(r.body["errors"][0]["pointer"], "/roles/1/flavor_parameter", "{}", r.body);
    let r = env
        .call(
            "POST",
            "/v1/appliance-templates",
            &t,
            Some(json!({"name": "x", "version": 1, "roles": [], "kind": "slurm"})),
        )
        .await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/kind")), "unknown fields are named");
    assert!(env.call("GET", "/v1/appliance-templates", &t, None).await.body["items"].as_array().unwrap().is_empty());
    let site = env.call("POST", "/v1/appliance-templates", &t, Some(template(None))).await;
    assert_eq!(site.status, 201, "{}", site.body);
    let site_id = site.body["id"].as_str().unwrap().to_string();
    let r = env.call("POST", "/v1/appliance-templates", &t, Some(template(None))).await;
    assert!(r.problem(409).contains("make version 2"), "{}", r.body);
    // Projects do not author templates yet: texts render inside tundrad.
    let own = env.call("POST", "/v1/appliance-templates", &member, Some(template(Some(&p)))).await;
    assert!(own.problem(400).contains("site admin"), "{}", own.body);
    assert_eq!(own.body["errors"][0]["pointer"], "/project_id");
    let seen = env.call("GET", "/v1/appliance-templates", &member, None).await.body;
    assert_eq!(seen["items"].as_array().unwrap().len(), 1, "the site's: {seen}");
    let r = env.call("PATCH", &format!("/v1/appliance-templates/{site_id}"), &t, Some(json!({"roles": []}))).await;
    assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some("/roles")));
    let r = env
        .call("PATCH", &format!("/v1/appliance-templates/{site_id}"), &t, Some(json!({"description": "Slurm 22.05"})))
        .await;
    assert_eq!((r.status, r.body["description"].as_str()), (200, Some("Slurm 22.05")));

    // Appliances: parameters checked by kind, range, pattern and reference.
    let events_before = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();
    let appliance =
        |params: Value| json!({"project_id": p, "name": "hpc", "template_id": site_id, "parameters": params});
    let good = json!({"cluster_name": "astro", "flavor": flavor, "image": image});
    for (params, pointer) in [
        (json!({"cluster_name": "astro", "flavor": flavor}), "/parameters/image"),
        (json!({"cluster_name": "Astro!", "flavor": flavor, "image": image}), "/parameters/cluster_name"),
        (
            json!({"cluster_name": "astro", "compute_count": 5, "flavor": flavor, "image": image}),
            "/parameters/compute_count",
        ),
        (json!({"cluster_name": "astro", "flavor": image, "image": image}), "/parameters/flavor"),
        (json!({"cluster_name": "astro", "flavor": flavor, "image": image, "home": image}), "/parameters/home"),
        (json!({"cluster_name": "astro", "flavor": flavor, "image": image, "gpus": 2}), "/parameters/gpus"),
    ] {
        let r = env.call("POST", "/v1/appliances", &member, Some(appliance(params))).await;
        assert_eq!((r.status, r.body["errors"][0]["pointer"].as_str()), (400, Some(pointer)), "{}", r.body);
    }
    let r = env
        .call(
            "POST",
            "/v1/appliances",
            &member,
            Some(json!({"project_id": p, "name": "hpc!", "template_id": site_id, "parameters": good})),
        )
        .await;
    assert_eq!(r.body["errors"][0]["pointer"], "/name", "{}", r.body);
    assert!(env.call("GET", "/v1/appliances", &t, None).await.body["items"].as_array().unwrap().is_empty());
    let events = env.call("GET", "/v1/events?limit=500", &t, None).await.body["items"].as_array().unwrap().len();
    assert_eq!(events, events_before, "refused requests write nothing");

    let a = env.call("POST", "/v1/appliances", &member, Some(appliance(good.clone()))).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["status"], "creating");
    assert_eq!(a.body["parameters"]["compute_count"], 1, "defaults filled in");
    let id = a.body["id"].as_str().unwrap().to_string();
    let r = env.call("POST", "/v1/appliances", &member, Some(appliance(good.clone()))).await;
    assert_eq!(r.body["errors"][0]["pointer"], "/name", "{}", r.body);
    // An immutable parameter does not change; a count does.
    let mut renamed = good.clone();
    renamed["cluster_name"] = json!("radio");
    let r = env.call("PATCH", &format!("/v1/appliances/{id}"), &member, Some(json!({"parameters": renamed}))).await;
    assert!(r.problem(400).contains("immutable"), "{}", r.body);
    assert_eq!(r.body["errors"][0]["pointer"], "/parameters/cluster_name");
    let mut more = good.clone();
    more["compute_count"] = json!(2);
    let r = env.call("PATCH", &format!("/v1/appliances/{id}"), &member, Some(json!({"parameters": more}))).await;
    assert_eq!((r.status, r.body["parameters"]["compute_count"].as_i64()), (200, Some(2)), "{}", r.body);
    // The template is in use; the generated key is in no response or event.
    let r = env.call("DELETE", &format!("/v1/appliance-templates/{site_id}"), &t, None).await;
    assert!(r.problem(409).contains("used by appliances hpc"), "{}", r.body);
    let rec = env.state().store().appliance_record(id.parse().unwrap()).await.unwrap();
    let sealed = env.state().store().secret(rec.secret_id.unwrap()).await.unwrap();
    let opened = env.state().conductor.keyring().get(env.state().store(), sealed.id).await.unwrap();
    let secrets: std::collections::BTreeMap<String, String> = serde_json::from_slice(&opened.0).unwrap();
    let key = &secrets["munge_key"];
    assert_eq!(key.len(), 88, "64 bytes, base64");
    for url in [format!("/v1/appliances/{id}"), "/v1/appliances".into(), "/v1/events?limit=500".into()] {
        let r = env.call("GET", &url, &t, None).await;
        assert!(!r.body.to_string().contains(key.as_str()), "{url} shows the munge key");
    }
    let r = env.call("DELETE", &format!("/v1/appliances/{id}"), &member, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (202, Some("deleting")));
    let r = env.call("DELETE", &format!("/v1/projects/{p}"), &t, None).await;
    assert!(r.problem(409).contains("appliance"), "{}", r.body);
    env.stop().await;
}

/// Without the metadata service no node could get its files: appliances
/// are refused with what the site admin must configure.
pub async fn appliances_need_the_metadata_service(b: Backend) {
    let env = Env::start(b, |_| {}).await;
    let crate::nodes::Catalog { project: p, flavor, image } = crate::nodes::catalog(&env).await;
    let tpl = env.call("POST", "/v1/appliance-templates", &env.admin, Some(template(None))).await;
    assert_eq!(tpl.status, 201, "{}", tpl.body);
    let body = json!({"project_id": p, "name": "hpc", "template_id": tpl.body["id"],
                      "parameters": {"cluster_name": "astro", "flavor": flavor, "image": image}});
    let r = env.call("POST", "/v1/appliances", &env.admin, Some(body)).await;
    assert!(r.problem(409).contains("metadata service"), "{}", r.body);
    env.stop().await;
}
