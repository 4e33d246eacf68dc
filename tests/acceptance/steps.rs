//! The staging site each test owns, and the step lists.

use serde_json::{Value, json};

use crate::support::Workspace;

const SOURCE: &str = "tundra/tundra";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB test@tundra";

/// A running `tundrad` with a project `astro`, and an HTTP mirror for images.
pub struct Site {
    rt: tokio::runtime::Runtime,
    server: Option<tundrad::Server>,
    _dir: tempfile::TempDir,
    pub endpoint: String,
    pub token: String,
    pub mirror: String,
    http: std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(s.stop());
        }
        if let Some(h) = self.rt.block_on(self.http.lock()).take() {
            h.abort();
        }
    }
}

/// Bytes the mirror serves at `/images/*`.
pub fn image_bytes() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

impl Site {
    pub fn start() -> Site {
        let site = Site::start_with(|_| {});
        let r = site.api("POST", "/v1/projects", Some(json!({"name": "astro"})));
        assert_eq!(r.0, 201, "{}", r.1);
        site
    }

    /// A site with a tweaked configuration and no project yet.
    pub fn start_with(tweak: impl FnOnce(&mut tundrad::config::Config)) -> Site {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The image mirror.
        let (mirror, handle) = rt.block_on(async {
            let bytes = std::sync::Arc::new(image_bytes());
            let app = axum::Router::new().route(
                "/images/{name}",
                axum::routing::get(move || {
                    let b = bytes.clone();
                    async move { b.as_ref().clone() }
                }),
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            (
                format!("http://{addr}/images/"),
                tokio::spawn(async move {
                    let _ = axum::serve(l, app).await;
                }),
            )
        });
        let mut config = tundrad::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            image_source_allow: vec![mirror.clone()],
            ..Default::default()
        };
        tweak(&mut config);
        let server = rt.block_on(tundrad::start(config.clone())).unwrap();
        let scheme = if config.tls_cert_file.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", server.addr);
        let token = std::fs::read_to_string(config.admin_token_file()).unwrap().trim().to_string();
        Site {
            rt,
            server: Some(server),
            _dir: dir,
            endpoint,
            token,
            mirror,
            http: std::sync::Arc::new(tokio::sync::Mutex::new(Some(handle))),
        }
    }

    /// Call the API directly (to check what Terraform did, or to change things behind its back).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.endpoint);
        let token = self.token.clone();
        let method = method.to_string();
        self.rt.block_on(async move {
            let c = reqwest_like::Client::new();
            c.call(&method, &url, &token, body).await
        })
    }

    /// A workspace whose Terraform talks to this site as the admin, in project `astro`.
    pub fn workspace(&self, main_tf: &str) -> Workspace {
        let mut ws = Workspace::for_provider("tundra", SOURCE, main_tf);
        ws.env = vec![
            ("TUNDRA_ENDPOINT".into(), self.endpoint.clone()),
            ("TUNDRA_TOKEN".into(), self.token.clone()),
            ("TUNDRA_PROJECT".into(), "astro".into()),
        ];
        ws
    }
}

/// A minimal HTTP/1.1 JSON client over tokio (the tests need no more).
mod reqwest_like {
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Client;

    impl Client {
        pub fn new() -> Client {
            Client
        }

        pub async fn call(&self, method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
            let rest = url.strip_prefix("http://").unwrap();
            let (host, path) = rest.split_at(rest.find('/').unwrap());
            let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).await.unwrap();
            let text = String::from_utf8_lossy(&resp).into_owned();
            let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            (status, serde_json::from_str(body).unwrap_or(Value::String(body.into())))
        }
    }
}

pub fn header() -> String {
    format!(
        "terraform {{\n  required_providers {{\n    tundra = {{ source = \"{SOURCE}\" }}\n  }}\n}}\n\nprovider \"tundra\" {{}}\n"
    )
}

/// The step list every resource goes through.
struct Lifecycle<'a> {
    site: &'a Site,
    address: &'a str,
    api_collection: &'a str,
    create: String,
    check_create: &'a dyn Fn(&Value, &Value),
    update: String,
    check_update: &'a dyn Fn(&Value, &Value),
}

impl Lifecycle<'_> {
    fn run(self) {
        let ws = self.site.workspace(&format!("{}{}", header(), self.create));
        // Create, and check both Terraform's state and the service's view.
        ws.apply();
        let st = ws.resource(self.address);
        let id = st["id"].as_str().expect("id in state").to_string();
        let (code, api) = self.site.api("GET", &format!("/v1/{}/{id}", self.api_collection), None);
        assert_eq!(code, 200, "{api}");
        (self.check_create)(&st, &api);
        assert_eq!(ws.plan().0, 0, "no changes right after create:\n{}", ws.plan().1);

        // Import: forget it, import by ID, and the plan is still empty.
        ws.ok(&["state", "rm", self.address]);
        ws.ok(&["import", "-no-color", self.address, &id]);
        let (code, out) = ws.plan();
        assert_eq!(code, 0, "no changes after import:\n{out}");
        assert_eq!(ws.resource(self.address)["id"], id.as_str());

        // Update in place: the ID stays.
        ws.write("main.tf", &format!("{}{}", header(), self.update));
        let (code, out) = ws.plan();
        assert_eq!(code, 2);
        assert!(out.contains("1 to change, 0 to destroy"), "an in-place update:\n{out}");
        ws.apply();
        let st = ws.resource(self.address);
        assert_eq!(st["id"], id.as_str(), "updated in place");
        let (_, api) = self.site.api("GET", &format!("/v1/{}/{id}", self.api_collection), None);
        (self.check_update)(&st, &api);
        assert_eq!(ws.plan().0, 0, "no changes after update");

        // Destroy: gone from the service.
        ws.ok(&["destroy", "-auto-approve", "-no-color"]);
        let (code, _) = self.site.api("GET", &format!("/v1/{}/{id}", self.api_collection), None);
        assert_eq!(code, 404, "{} {id} still exists after destroy", self.api_collection);
    }
}

pub fn project_lifecycle() {
    let site = Site::start();
    Lifecycle {
        site: &site,
        address: "tundra_project.p",
        api_collection: "projects",
        create: "resource \"tundra_project\" \"p\" {\n  name = \"dask\"\n}\n".into(),
        check_create: &|st, api| {
            assert_eq!(st["name"], "dask");
            assert_eq!(st["description"], "");
            assert_eq!(api["name"], "dask");
            assert_eq!(st["created_at"], api["created_at"]);
        },
        update: "resource \"tundra_project\" \"p\" {\n  name = \"dask-2\"\n  description = \"distributed python\"\n}\n"
            .into(),
        check_update: &|st, api| {
            assert_eq!(st["name"], "dask-2");
            assert_eq!(api["name"], "dask-2");
            assert_eq!(api["description"], "distributed python");
            assert_eq!(api["revision"], 2);
        },
    }
    .run();
}

pub fn keypair_lifecycle() {
    let site = Site::start();
    Lifecycle {
        site: &site,
        address: "tundra_keypair.k",
        api_collection: "keypairs",
        create: format!("resource \"tundra_keypair\" \"k\" {{\n  name = \"laptop\"\n  public_key = \"{KEY}\"\n}}\n"),
        check_create: &|st, api| {
            assert_eq!(st["fingerprint"], "SHA256:e5BXvbVqMjqHM8psooRePWo8GWCNvuZdcP6WOmpXeRI");
            assert_eq!(st["key_type"], "ssh-ed25519");
            assert_eq!(st["project_id"], api["project_id"]);
            assert_eq!(api["public_key"], KEY);
        },
        update: format!("resource \"tundra_keypair\" \"k\" {{\n  name = \"laptop\"\n  description = \"work laptop\"\n  public_key = \"{KEY}\"\n}}\n"),
        check_update: &|st, api| {
            assert_eq!(st["description"], "work laptop");
            assert_eq!(api["description"], "work laptop");
        },
    }
    .run();
}

pub fn keypair_file_with_newline_has_no_drift() {
    let site = Site::start();
    let ws = site.workspace(&format!(
        "{}resource \"tundra_keypair\" \"k\" {{\n  name = \"laptop\"\n  public_key = file(\"id.pub\")\n}}\n",
        header()
    ));
    ws.write("id.pub", &format!("{KEY}\n"));
    ws.apply();
    assert_eq!(ws.plan().0, 0, "a .pub file's trailing newline is not a change");
    // A different key replaces the keypair.
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVEJbLHzZ5o9MGOkCajQmJX4kNbdGOHyjd55tOCmq3z other@tundra";
    ws.write("id.pub", &format!("{other}\n"));
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("must be replaced"), "{out}");
}

pub fn flavor_lifecycle() {
    let site = Site::start();
    Lifecycle {
        site: &site,
        address: "tundra_flavor.gpu",
        api_collection: "flavors",
        create: "resource \"tundra_flavor\" \"gpu\" {\n  name = \"gpu\"\n  public = true\n  resource_class = \"baremetal.gpu\"\n  required_traits = [\"ib\", \"gpu\"]\n}\n".into(),
        check_create: &|st, api| {
            assert_eq!(st["public"], true);
            assert!(st["project_id"].is_null());
            assert_eq!(api["required_traits"], json!(["gpu", "ib"]));
            assert!(api["project_id"].is_null());
        },
        update: "resource \"tundra_flavor\" \"gpu\" {\n  name = \"gpu\"\n  public = true\n  description = \"A100 nodes\"\n  resource_class = \"baremetal.gpu\"\n  required_traits = [\"gpu\"]\n}\n".into(),
        check_update: &|st, api| {
            assert_eq!(st["required_traits"], json!(["gpu"]));
            assert_eq!(api["required_traits"], json!(["gpu"]));
            assert_eq!(api["description"], "A100 nodes");
        },
    }
    .run();
}

pub fn image_lifecycle_from_url() {
    let site = Site::start();
    let sha = sha256_hex(&image_bytes());
    let cfg = |name: &str| {
        format!(
            "resource \"tundra_image\" \"rocky\" {{\n  name = \"{name}\"\n  disk_format = \"raw\"\n  sha256 = \"{sha}\"\n  source_url = \"{}rocky.raw\"\n}}\n",
            site.mirror
        )
    };
    Lifecycle {
        site: &site,
        address: "tundra_image.rocky",
        api_collection: "images",
        create: cfg("rocky-9"),
        check_create: &|st, api| {
            assert_eq!(st["status"], "active");
            assert_eq!(st["size_bytes"], 300_000);
            assert_eq!(api["status"], "active");
            assert_eq!(st["raw_sha256"], api["raw_sha256"]);
        },
        update: cfg("rocky-9.4"),
        check_update: &|st, api| {
            assert_eq!(st["name"], "rocky-9.4");
            assert_eq!(api["name"], "rocky-9.4");
        },
    }
    .run();
}

pub fn image_upload_from_path() {
    let site = Site::start();
    let bytes = image_bytes();
    let sha = sha256_hex(&bytes);
    let ws = site.workspace(&format!(
        "{}resource \"tundra_image\" \"local\" {{\n  name = \"local\"\n  disk_format = \"raw\"\n  sha256 = filesha256(\"disk.raw\")\n  source_path = \"disk.raw\"\n}}\n",
        header()
    ));
    std::fs::write(ws.path().join("disk.raw"), &bytes).unwrap();
    ws.apply();
    let st = ws.resource("tundra_image.local");
    assert_eq!(st["status"], "active");
    assert_eq!(st["sha256"], sha.as_str());
    assert_eq!(ws.plan().0, 0);
    // A wrong checksum: the apply fails, says why, and the failed image is
    // tainted in state so the next apply replaces it.
    ws.write(
        "main.tf",
        &format!(
            "{}resource \"tundra_image\" \"bad\" {{\n  name = \"bad\"\n  disk_format = \"raw\"\n  sha256 = \"{}\"\n  source_path = \"disk.raw\"\n}}\n",
            header(),
            "0".repeat(64)
        ),
    );
    let r = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("sha256 mismatch"), "{}", r.all());
    let state = ws.read("terraform.tfstate");
    assert!(state.contains("\"status\": \"tainted\""), "{state}");
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    let (_, list) = site.api("GET", "/v1/images", None);
    assert_eq!(list["items"], json!([]), "destroy removed both images");
}

pub fn data_sources_find_by_name() {
    let site = Site::start();
    let sha = sha256_hex(&image_bytes());
    let ws = site.workspace(&format!(
        r#"{}
resource "tundra_flavor" "pub" {{
  name           = "compute"
  public         = true
  resource_class = "baremetal"
}}
resource "tundra_image" "img" {{
  name        = "rocky"
  public      = true
  disk_format = "raw"
  sha256      = "{sha}"
  source_url  = "{}r.raw"
}}
resource "tundra_keypair" "k" {{
  name       = "me"
  public_key = "{KEY}"
}}
data "tundra_project" "astro" {{
  name = "astro"
}}
data "tundra_flavor" "f" {{
  name       = "compute"
  depends_on = [tundra_flavor.pub]
}}
data "tundra_image" "i" {{
  name       = "rocky"
  depends_on = [tundra_image.img]
}}
data "tundra_keypair" "k" {{
  name       = "me"
  depends_on = [tundra_keypair.k]
}}
output "project_id" {{ value = data.tundra_project.astro.id }}
output "flavor_id" {{ value = data.tundra_flavor.f.id == tundra_flavor.pub.id }}
output "image_status" {{ value = data.tundra_image.i.status }}
output "image_size" {{ value = data.tundra_image.i.size_bytes }}
output "fingerprint" {{ value = data.tundra_keypair.k.fingerprint }}
output "keypair_project" {{ value = data.tundra_keypair.k.project_id == data.tundra_project.astro.id }}
"#,
        header(),
        site.mirror
    ));
    ws.apply();
    let out: Value = serde_json::from_str(&ws.ok(&["output", "-json"])).unwrap();
    let (_, astro) = site.api("GET", "/v1/projects/astro", None);
    assert_eq!(out["project_id"]["value"], astro["id"]);
    assert_eq!(out["flavor_id"]["value"], true);
    assert_eq!(out["image_status"]["value"], "active");
    assert_eq!(out["image_size"]["value"], 300_000);
    assert_eq!(out["fingerprint"]["value"], "SHA256:e5BXvbVqMjqHM8psooRePWo8GWCNvuZdcP6WOmpXeRI");
    assert_eq!(out["keypair_project"]["value"], true);
    assert_eq!(ws.plan().0, 0);
    // A name that does not exist says so, at the attribute.
    ws.write("main.tf", &format!("{}data \"tundra_flavor\" \"nope\" {{\n  name = \"nope\"\n}}\n", header()));
    let r = ws.run(&["plan", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("No flavor named \"nope\""), "{}", r.all());
}

pub fn service_errors_point_at_attributes() {
    let site = Site::start();
    let ws = site.workspace(&format!(
        "{}resource \"tundra_keypair\" \"k\" {{\n  name = \"k\"\n  public_key = \"ssh-dss AAAAB3NzaC1kc3M\"\n}}\n",
        header()
    ));
    let r = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert_ne!(r.code, 0);
    let all = r.all();
    assert!(all.contains("Could not create keypair"), "{all}");
    assert!(all.contains("is not accepted; use one of"), "the service's advice reaches the user: {all}");
    assert!(all.contains("public_key = \"ssh-dss"), "the diagnostic points at the attribute: {all}");
    assert!(all.contains("request id"), "{all}");
    let (_, list) = site.api("GET", "/v1/keypairs", None);
    assert_eq!(list["items"], json!([]), "nothing half-created");
    // A URL the service will not fetch.
    ws.write(
        "main.tf",
        &format!(
            "{}resource \"tundra_image\" \"i\" {{\n  name = \"i\"\n  disk_format = \"raw\"\n  sha256 = \"{}\"\n  source_url = \"http://127.0.0.1:1/x\"\n}}\n",
            header(),
            "a".repeat(64)
        ),
    );
    let r = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(r.all().contains("image_source_allow"), "{}", r.all());
    assert!(r.all().contains("source_url = \"http://127.0.0.1:1/x\""), "{}", r.all());
    // The token is never in state or output.
    assert!(!ws.read("terraform.tfstate").contains(&site.token));
    assert!(!r.all().contains(&site.token));
}

pub fn out_of_band_delete_is_recreated() {
    let site = Site::start();
    let ws = site.workspace(&format!(
        "{}resource \"tundra_flavor\" \"f\" {{\n  name = \"f\"\n  resource_class = \"rc\"\n}}\n",
        header()
    ));
    ws.apply();
    let id = ws.resource("tundra_flavor.f")["id"].as_str().unwrap().to_string();
    assert_eq!(site.api("DELETE", &format!("/v1/flavors/{id}"), None).0, 204);
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("1 to add"), "{out}");
    ws.apply();
    assert_ne!(ws.resource("tundra_flavor.f")["id"], id.as_str());
}

/// Every example in examples/terraform (the docs show them) is valid
/// configuration for this provider.
pub fn examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terraform");
    let mut checked = 0;
    for kind in ["resources", "data-sources", "ephemeral-resources"] {
        for entry in std::fs::read_dir(root.join(kind)).unwrap() {
            let dir = entry.unwrap().path();
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "tf") {
                    let mut ws = Workspace::for_provider(
                        "tundra",
                        SOURCE,
                        &format!("{}{}", header(), std::fs::read_to_string(&f).unwrap()),
                    );
                    // Files the examples read: a user's key, a built image.
                    std::fs::create_dir_all(ws.path().join(".ssh")).unwrap();
                    std::fs::write(ws.path().join(".ssh/id_ed25519.pub"), format!("{KEY}\n")).unwrap();
                    std::fs::create_dir_all(ws.path().join("build")).unwrap();
                    std::fs::write(ws.path().join("build/pipeline-node.raw"), b"disk").unwrap();
                    ws.env.push(("HOME".into(), ws.path().display().to_string()));
                    let r = ws.run(&["validate", "-no-color"]);
                    assert_eq!(r.code, 0, "{} is not valid:\n{}", f.display(), r.all());
                    checked += 1;
                }
            }
        }
    }
    use tfplugin::Provider;
    let p = terraform_provider_tundra::TundraProvider;
    assert_eq!(
        checked,
        p.resources().len() + p.data_sources().len() + p.ephemeral_resources().len(),
        "one example per resource, data source and ephemeral resource"
    );
}

/// HTTPS with a private CA: the provider trusts exactly `ca_certificate`.
pub fn tls_with_private_ca() {
    let pki = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Tundra test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_file, key_file) = (pki.path().join("tls.crt"), pki.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let site = Site::start_with(|c| {
        c.tls_cert_file = Some(cert_file.clone());
        c.tls_key_file = Some(key_file.clone());
    });
    assert!(site.endpoint.starts_with("https://"));
    let cfg = |ca: bool| {
        format!(
            "terraform {{\n  required_providers {{\n    tundra = {{ source = \"{SOURCE}\" }}\n  }}\n}}\n\nprovider \"tundra\" {{\n{}}}\n\nresource \"tundra_project\" \"p\" {{\n  name = \"secure\"\n}}\n",
            if ca { "  ca_certificate = file(\"ca.pem\")\n" } else { "" }
        )
    };
    let ws = site.workspace(&cfg(true));
    ws.write("ca.pem", &ca.pem());
    ws.apply();
    assert_eq!(ws.resource("tundra_project.p")["name"], "secure");
    assert_eq!(ws.plan().0, 0);
    // Without the CA the provider refuses the endpoint's certificate.
    ws.write("main.tf", &cfg(false));
    let r = ws.run(&["plan", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("could not reach tundrad"), "{}", r.all());
    ws.write("main.tf", &cfg(true));
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
}

/// A machine enrolled against sushy-tools' Redfish emulator: verified on
/// create, the password never in state, inventory updated in place.
pub fn machine_lifecycle() {
    let bmc_dir = tempfile::tempdir().unwrap();
    let (_bmc, base) = crate::peers::sushy(bmc_dir.path());
    let site = Site::start();
    let cfg = |extra: &str| {
        format!(
            "resource \"tundra_machine\" \"m\" {{\n  name = \"node-1\"\n  resource_class = \"baremetal\"\n{extra}  bmc = {{\n    driver = \"redfish\"\n    address = \"{base}\"\n    username = \"admin\"\n  }}\n  bmc_password = \"password\"\n  interfaces = [{{ mac = \"52:54:00:00:00:01\", pxe = true }}]\n}}\n"
        )
    };
    Lifecycle {
        site: &site,
        address: "tundra_machine.m",
        api_collection: "machines",
        create: cfg(""),
        check_create: &|st, api| {
            assert_eq!(st["provision_state"], "manageable", "{st}");
            assert_eq!(st["power_state"], "off");
            assert!(st["bmc_password"].is_null(), "write-only");
            assert_eq!(api["bmc"]["username"], "admin");
            assert_eq!(api["interfaces"][0]["mac"], "52:54:00:00:00:01");
        },
        update: cfg(
            "  traits = [\"gpu\"]\n  location = { rack = \"r1\", island = \"i1\" }\n  bmc_password_version = 2\n",
        ),
        check_update: &|st, api| {
            assert_eq!(st["traits"], json!(["gpu"]));
            assert_eq!(api["location"], json!({"rack": "r1", "island": "i1"}));
            // The version bump sent the password again (the event says so, without it).
            let (_, ev) = site.api(
                "GET",
                &format!("/v1/events?object_type=machine&object_id={}", api["id"].as_str().unwrap()),
                None,
            );
            let sent = ev["items"].as_array().unwrap().iter().any(|e| e["detail"]["bmc_password_changed"] == true);
            assert!(sent, "{ev}");
            assert!(!ev.to_string().contains("\"password\""), "{ev}");
        },
    }
    .run();
}

/// A wrong BMC password: the apply fails at `bmc` with tundrad's reason, the
/// machine stays (tainted) so nothing is orphaned, and the next apply with the
/// right password replaces it.
pub fn machine_with_wrong_password() {
    let bmc_dir = tempfile::tempdir().unwrap();
    let (_bmc, base) = crate::peers::sushy(bmc_dir.path());
    let site = Site::start();
    let cfg = |pw: &str| {
        format!(
            "{}resource \"tundra_machine\" \"m\" {{\n  name = \"node-1\"\n  resource_class = \"baremetal\"\n  bmc = {{\n    driver = \"redfish\"\n    address = \"{base}\"\n    username = \"admin\"\n  }}\n  bmc_password = \"{pw}\"\n}}\n",
            header()
        )
    };
    let ws = site.workspace(&cfg("wrong"));
    let r = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert_ne!(r.code, 0);
    let all = r.all();
    assert!(all.contains("BMC verification failed"), "{all}");
    assert!(all.contains("refused the credentials"), "{all}");
    assert!(!r.stdout.contains("= \"wrong\""), "the plan never shows the password: {}", r.stdout);
    assert!(ws.read("terraform.tfstate").contains("\"status\": \"tainted\""));
    assert!(!ws.read("terraform.tfstate").contains("wrong"), "the password is not in state");
    ws.write("main.tf", &cfg("password"));
    ws.apply();
    assert_eq!(ws.resource("tundra_machine.m")["provision_state"], "manageable");
    let (_, list) = site.api("GET", "/v1/machines", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "the failed machine was replaced, not orphaned");
}
