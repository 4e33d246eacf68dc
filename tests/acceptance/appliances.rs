//! Appliances through a real Terraform: a template whose spec is checked at
//! plan time, an appliance made from it with parameters checked against
//! the template (unknown names, values out of range, immutable ones), in
//! place updates whose outputs follow, imports, data sources and destroy.
//! Its roles have no nodes here (counts at 0: what nodes do with their
//! files is the conductor's tests' and the lab's), so it needs no lab.

use serde_json::json;

use crate::steps::{Site, header, image_bytes, sha256_hex};

const SPEC: &str = r#"{
  "parameters": [
    {"name": "site_name", "kind": "string", "pattern": "[a-z]+", "immutable": true},
    {"name": "motd", "kind": "string", "default": "hello"},
    {"name": "worker_count", "kind": "count", "default": 0, "maximum": 4},
    {"name": "flavor", "kind": "flavor"},
    {"name": "image", "kind": "image"}
  ],
  "secrets": [{"name": "token", "bytes": 32}],
  "roles": [
    {"name": "worker", "count_parameter": "worker_count", "flavor_parameter": "flavor", "image_parameter": "image",
     "files": [{"path": "/etc/toy/token", "mode": "0400", "encoding": "base64", "content": "{{ secrets.token }}"}]}
  ],
  "outputs": [
    {"name": "motd", "value": "{{ parameters.motd }} from {{ parameters.site_name }}"},
    {"name": "workers", "value": "{{ roles.worker.count }}"}
  ],
  "usage": "The toy says: {{ outputs.motd }}"
}"#;

fn config(site: &Site, params: &str, extra: &str) -> String {
    let sha = sha256_hex(&image_bytes());
    format!(
        r#"{header}
resource "tundra_flavor" "f" {{
  name           = "toy"
  resource_class = "baremetal"
}}

resource "tundra_image" "i" {{
  name        = "toy"
  disk_format = "raw"
  sha256      = "{sha}"
  source_url  = "{mirror}toy.raw"
}}

resource "tundra_appliance_template" "t" {{
  name    = "toy"
  version = 1
  spec    = file("toy.json")
}}

resource "tundra_appliance" "a" {{
  name        = "toy"
  template_id = tundra_appliance_template.t.id
  parameters = {{
    flavor = tundra_flavor.f.id
    image  = tundra_image.i.id
{params}
  }}
}}
{extra}"#,
        header = header(),
        mirror = site.mirror,
    )
}

pub fn appliances_through_terraform() {
    // Appliances need the metadata service: a provisioning network on loopback.
    let site = Site::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        c.provisioning_networks = vec![tundrad::config::ProvisioningNetwork {
            interface: "lo".into(),
            address: "127.0.0.1/8".into(),
            pool: "127.0.0.100-127.0.0.199".into(),
            router: None,
            dns: vec![],
            discovery: false,
            tftp_root: c.data_dir.join("tftp"),
            http_port: 0,
            boot_url: None,
            node_pool: None,
            mtu: 1500,
            lease_time: "1h".into(),
            dhcp_port: 0,
            tftp_port: 0,
        }];
    });
    let r = site.api("POST", "/v1/projects", Some(json!({"name": "astro"})));
    assert_eq!(r.0, 201, "{}", r.1);
    let ws = site.workspace(&config(&site, "    site_name = \"lab\"", ""));
    ws.write("toy.json", SPEC);

    // A template whose spec tundrad would refuse is refused at plan, at `spec`.
    ws.write("toy.json", &SPEC.replace("{{ parameters.motd }} from", "{{ secrets.token }} from"));
    let r = ws.run(&["plan", "-no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("/outputs/0/value in spec") && r.all().contains("tundra_appliance_template.t"),
        "{}",
        r.all()
    );
    ws.write("toy.json", SPEC);

    ws.apply();
    let a = ws.resource("tundra_appliance.a");
    let t = ws.resource("tundra_appliance_template.t");
    assert_eq!(a["status"], "active", "{a}");
    assert_eq!(a["outputs"], json!({"motd": "hello from lab", "workers": "0"}), "{a}");
    assert_eq!(a["usage"], "The toy says: hello from lab");
    assert_eq!(a["roles"][0]["name"], "worker");
    assert_eq!(t["roles"], json!(["worker"]));
    assert_eq!(
        t["parameters"][0],
        json!({"name": "site_name", "kind": "string", "description": "", "required": true, "immutable": true, "default": null})
    );
    let id = a["id"].as_str().unwrap().to_string();
    let (code, api) = site.api("GET", &format!("/v1/appliances/{id}"), None);
    assert_eq!(code, 200, "{api}");
    assert_eq!(api["parameters"]["motd"], "hello", "defaults filled in by tundrad");
    assert_eq!(ws.plan().0, 0, "no changes right after create:\n{}", ws.plan().1);

    // The same spec written otherwise is no change.
    let compact: serde_json::Value = serde_json::from_str(SPEC).unwrap();
    ws.write("toy.json", &compact.to_string());
    assert_eq!(ws.plan().0, 0, "a spec reformatted is the same spec:\n{}", ws.plan().1);

    // Imports come back as they were.
    for address in ["tundra_appliance.a", "tundra_appliance_template.t"] {
        let id = ws.resource(address)["id"].as_str().unwrap().to_string();
        ws.ok(&["state", "rm", address]);
        ws.ok(&["import", "-no-color", address, &id]);
    }
    let (code, plan) = ws.plan();
    assert_eq!(code, 0, "no changes after import:\n{plan}");

    // Parameters are checked at plan time, at the parameter to blame.
    for (params, says) in [
        ("    site_name = \"cloud\"", "site_name is immutable"),
        ("    site_name = \"lab\"\n    colour = \"red\"", "has no parameter \"colour\""),
        ("    site_name = \"lab\"\n    worker_count = 9", "must be from 0 to 4"),
        ("", "site_name is required"),
    ] {
        ws.write("main.tf", &config(&site, params, ""));
        let r = ws.run(&["plan", "-no-color"]);
        assert_eq!(r.code, 1, "{params}: {}", r.all());
        assert!(r.all().contains(says) && r.all().contains("tundra_appliance.a"), "{params}: {}", r.all());
    }

    // A mutable parameter changes in place; outputs and usage follow, and
    // data sources see the appliance and its template.
    let data = r#"
data "tundra_appliance" "seen" {
  name = tundra_appliance.a.name
}

data "tundra_appliance_template" "latest" {
  name       = "toy"
  depends_on = [tundra_appliance_template.t]
}

output "seen_motd" {
  value = data.tundra_appliance.seen.outputs["motd"]
}

output "latest_version" {
  value = data.tundra_appliance_template.latest.version
}
"#;
    ws.write("main.tf", &config(&site, "    site_name = \"lab\"\n    motd = \"hi\"", data));
    let (code, plan) = ws.plan();
    assert_eq!(code, 2);
    assert!(plan.contains("0 to add, 1 to change, 0 to destroy"), "an in-place update:\n{plan}");
    ws.apply();
    let a = ws.resource("tundra_appliance.a");
    assert_eq!(a["id"], id.as_str(), "updated in place");
    assert_eq!(a["outputs"]["motd"], "hi from lab");
    assert_eq!(a["usage"], "The toy says: hi from lab");
    let state = ws.state();
    assert_eq!(state["values"]["outputs"]["seen_motd"]["value"], "hi from lab");
    assert_eq!(state["values"]["outputs"]["latest_version"]["value"], 1);
    assert_eq!(ws.plan().0, 0, "no changes after update:\n{}", ws.plan().1);

    // Changed behind Terraform's back: the plan puts it back.
    let r = site.api(
        "PATCH",
        &format!("/v1/appliances/{id}"),
        Some(json!({"parameters": {"site_name": "lab", "motd": "drifted", "flavor": a["parameters"]["flavor"], "image": a["parameters"]["image"]}})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let (code, plan) = ws.plan();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("drifted") && plan.contains("1 to change"), "drift is a change to make:\n{plan}");

    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    let (code, _) = site.api("GET", &format!("/v1/appliances/{id}"), None);
    assert_eq!(code, 404, "appliance {id} still exists after destroy");
    let (_, templates) = site.api("GET", "/v1/appliance-templates", None);
    assert_eq!(templates["items"], json!([]), "the template is gone");
}
