//! Drives a real Terraform against the test provider: each [`Workspace`]
//! owns a temp dir with its configuration, a CLI config pointing Terraform at
//! this very test binary (it serves `testprov` when Terraform launches it),
//! and the provider's JSON store.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const SOURCE: &str = "tundra/testprov";

/// The Terraform the tests are written against: 1.15.5 from the project venv
/// (scripts/setup.sh), unless TUNDRA_TEST_TERRAFORM names another.
pub fn terraform_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TUNDRA_TEST_TERRAFORM") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/terraform");
    assert!(p.exists(), "no Terraform at {}: run scripts/setup.sh first", p.display());
    p
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    cli_config: PathBuf,
    /// Extra environment for every Terraform run (e.g. the provider's credentials).
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Workspace {
    /// A workspace whose Terraform finds the provider through `dev_overrides`.
    pub fn new(main_tf: &str) -> Workspace {
        Self::for_provider("testprov", SOURCE, main_tf)
    }

    /// Like [`new`](Self::new), for the provider `name` at `source` (served by
    /// this test binary when Terraform launches it).
    pub fn for_provider(name: &str, source: &str, main_tf: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::os::unix::fs::symlink(
            std::env::current_exe().unwrap(),
            plugins.join(format!("terraform-provider-{name}")),
        )
        .unwrap();
        let cli_config = dir.path().join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{source}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                plugins.display()
            ),
        )
        .unwrap();
        Self::finish(dir, cli_config, main_tf)
    }

    /// A workspace whose Terraform installs the provider from a
    /// `filesystem_mirror` with `terraform init`, as a real user would.
    pub fn with_mirror(main_tf: &str, version: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let mirror = dir.path().join("mirror");
        let pkg = mirror.join(format!("registry.terraform.io/{SOURCE}/{version}/linux_amd64"));
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::copy(std::env::current_exe().unwrap(), pkg.join(format!("terraform-provider-testprov_v{version}")))
            .unwrap();
        let cli_config = dir.path().join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n    include = [\"registry.terraform.io/tundra/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/tundra/*\"]\n  }}\n}}\n",
                mirror.display()
            ),
        )
        .unwrap();
        Self::finish(dir, cli_config, main_tf)
    }

    /// A workspace whose Terraform reads the CLI configuration `cli` (e.g. a
    /// site's `provider_installation` block), with no test provider wired in.
    /// (Used by the workspace's acceptance tests, which include this file.)
    #[allow(dead_code)]
    pub fn with_cli_config(cli: &str, main_tf: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let cli_config = dir.path().join("terraformrc");
        std::fs::write(&cli_config, cli).unwrap();
        Self::finish(dir, cli_config, main_tf)
    }

    fn finish(dir: tempfile::TempDir, cli_config: PathBuf, main_tf: &str) -> Workspace {
        let ws = Workspace { store: dir.path().join("store.json"), dir, cli_config, env: Vec::new() };
        ws.write("main.tf", main_tf);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(terraform_bin())
            .args(args)
            .current_dir(self.dir.path())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("NO_COLOR", "1")
            .env("TESTPROV_STORE", &self.store)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TF_LOG")
            .output()
            .expect("run terraform");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "terraform {} failed:\n{}", args.join(" "), r.all());
        r.stdout
    }

    pub fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    /// `plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    pub fn plan(&self) -> (i32, String) {
        let r = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        assert!(r.code == 0 || r.code == 2, "plan failed:\n{}", r.all());
        (r.code, r.stdout)
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["show", "-json", "-no-color"])).expect("show -json")
    }

    /// Attribute values of a resource in state, by address.
    pub fn resource(&self, address: &str) -> serde_json::Value {
        let s = self.state();
        let mut found = None;
        let mut walk = vec![s["values"]["root_module"].clone()];
        while let Some(m) = walk.pop() {
            for r in m["resources"].as_array().into_iter().flatten() {
                if r["address"] == address {
                    found = Some(r["values"].clone());
                }
            }
            walk.extend(m["child_modules"].as_array().into_iter().flatten().cloned());
        }
        found.unwrap_or_else(|| panic!("{address} not in state: {s}"))
    }

    pub fn store_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.store).unwrap_or_else(|_| b"{}".to_vec())).unwrap()
    }

    pub fn edit_store(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v = self.store_json();
        f(&mut v);
        std::fs::write(&self.store, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
}

/// The `terraform { required_providers }` preamble every config starts with.
pub fn header() -> String {
    format!(
        "terraform {{\n  required_providers {{\n    testprov = {{ source = \"{SOURCE}\" }}\n  }}\n}}\n\nprovider \"testprov\" {{}}\n"
    )
}
