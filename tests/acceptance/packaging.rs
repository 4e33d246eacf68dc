//! Tundra as a site installs it: the `tundrad` Debian package in a clean
//! Debian 12 root booted with systemd (mmdebstrap + systemd-nspawn, in a
//! network namespace of the test's own), and the provider from the
//! filesystem mirror `scripts/package-provider.sh` lays out, installed by
//! `terraform init` with no `dev_overrides`.
//!
//! The package is built from the debug binaries the test command already
//! made (`--profile debug`); the release build differs only in optimisation
//! and stripping. The "next release" of the upgrade is tundrad with one
//! extra migration (`--upgrade-probe`, never released).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::steps::Site;
use crate::support::Workspace;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `c`, insist on success, return stdout.
fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The last line a packaging script prints: what it built.
fn built(script: &str, args: &[&str]) -> PathBuf {
    let out = ok(Command::new(root().join("scripts").join(script)).args(args));
    PathBuf::from(out.lines().last().unwrap_or_default().trim())
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref().to_vec()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

const HOST: &str = "terraform.tundra.test";

pub fn provider_installs_from_the_filesystem_mirror() {
    let out = tempfile::tempdir().unwrap();
    let zip = built(
        "package-provider.sh",
        &["--profile", "debug", "--hostname", HOST, "--out", out.path().to_str().unwrap()],
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(zip.ends_with(format!("terraform-provider-tundra_{version}_linux_amd64.zip")), "{}", zip.display());
    let sums =
        std::fs::read_to_string(out.path().join(format!("terraform-provider-tundra_{version}_SHA256SUMS"))).unwrap();
    let sum = sums.split_whitespace().next().unwrap().to_string();
    // The network mirror's index names the same archive and hash.
    let net = out.path().join(format!("network-mirror/{HOST}/tundra/tundra"));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.join("index.json")).unwrap()).unwrap();
    assert!(index["versions"][version].is_object(), "{index}");
    let archives: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.join(format!("{version}.json"))).unwrap()).unwrap();
    // Terraform's h1: of the archive's contents (one file, the binary zipped).
    let binary = std::fs::read(root().join("target/debug/terraform-provider-tundra")).unwrap();
    let h1 = format!(
        "h1:{}",
        b64(&sha256(
            format!("{}  terraform-provider-tundra_v{version}\n", crate::steps::sha256_hex(&binary)).as_bytes()
        ))
    );
    assert_eq!(
        archives["archives"]["linux_amd64"]["hashes"],
        serde_json::json!([h1, format!("zh:{sum}")]),
        "{archives}"
    );

    let site = Site::start();
    let cli = format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"{HOST}/tundra/tundra\"]\n  }}\n  direct {{\n    exclude = [\"{HOST}/tundra/tundra\"]\n  }}\n}}\n",
        out.path().join("filesystem-mirror").display()
    );
    let main = format!(
        "terraform {{\n  required_providers {{\n    tundra = {{\n      source  = \"{HOST}/tundra/tundra\"\n      version = \"{version}\"\n    }}\n  }}\n}}\n\nprovider \"tundra\" {{}}\n\nresource \"tundra_project\" \"p\" {{\n  name = \"mirrored\"\n}}\n"
    );
    let mut ws = Workspace::with_cli_config(&cli, &main);
    ws.env = vec![("TUNDRA_ENDPOINT".into(), site.endpoint.clone()), ("TUNDRA_TOKEN".into(), site.token.clone())];
    let init = ws.ok(&["init", "-no-color"]);
    assert!(init.contains(&format!("Installed {HOST}/tundra/tundra v{version}")), "{init}");
    // From a filesystem mirror Terraform records the h1: hash of what it
    // unpacked (zh: hashes come only with a network mirror's or registry's
    // index): the lock pins exactly the archive the script made.
    let lock = ws.read(".terraform.lock.hcl");
    assert!(lock.contains(&format!("\"{h1}\"")), "the lock file records the archive's hash {h1}:\n{lock}");
    let (code, plan) = ws.plan();
    assert_eq!(code, 2, "a plan with one project to add:\n{plan}");
    assert!(plan.contains("tundra_project.p will be created"), "{plan}");
    assert!(!plan.contains("development overrides"), "no dev_overrides are in play:\n{plan}");
}

/// The container's machine name.
const MACHINE: &str = "tundrapkg";

/// A Debian 12 root booted with systemd in a network namespace; killed and
/// removed on drop.
struct Container {
    netns: String,
    nspawn: Child,
    leader: u32,
    dir: tempfile::TempDir,
}

impl Container {
    fn boot(extra_packages: &str) -> Container {
        let dir = tempfile::Builder::new().prefix("tundra-pkg-").tempdir().unwrap();
        let rootfs = dir.path().join("root");
        // A clean minimal Debian with systemd, plus what the package depends
        // on (what `apt install ./tundrad.deb` would pull; the namespace has no
        // mirror to fetch from).
        ok(Command::new("mmdebstrap")
            .args(["--variant=minbase", "--mode=root", "--quiet"])
            .arg(format!("--include=systemd,systemd-sysv,dbus,{extra_packages}"))
            .args(["--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*"])
            .arg("--customize-hook=: > \"$1\"/etc/machine-id")
            .arg("bookworm")
            .arg(&rootfs)
            .arg(tundra_lab::image::apt_sources().expect("apt sources").0));
        let netns = format!("tundra-pkg-{}", std::process::id());
        ok(Command::new("ip").args(["netns", "add", &netns]));
        ok(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]));
        let log = std::fs::File::create(dir.path().join("console.log")).unwrap();
        let nspawn = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--console=read-only"])
            .arg("-D")
            .arg(&rootfs)
            .args(["-M", MACHINE])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut c = Container { netns, leader: 0, nspawn, dir };
        // The container's init, once it is systemd.
        let pid = c.nspawn.id();
        wait_until("the container's systemd", Duration::from_secs(60), || {
            let init = tundra_lab::cgroups::container_init(pid).filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|comm| comm.trim() == "systemd")
            });
            c.leader = init.unwrap_or(0);
            init.is_some()
        });
        // Its init is systemd before its manager listens: until then
        // systemctl cannot connect and says nothing on stdout (seen in CI
        // under load). Ask again until it answers.
        let mut state = c.run(&["systemctl", "is-system-running", "--wait"]);
        wait_until("systemd's manager to answer", Duration::from_secs(90), || {
            if state.stdout.trim().is_empty() {
                std::thread::sleep(Duration::from_millis(250));
                state = c.run(&["systemctl", "is-system-running", "--wait"]);
            }
            !state.stdout.trim().is_empty()
        });
        assert!(
            ["running", "degraded"].contains(&state.stdout.trim()),
            "systemd did not come up: {}\n{}",
            state.stdout,
            std::fs::read_to_string(c.dir.path().join("console.log")).unwrap_or_default()
        );
        c
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        Out {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn must(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.success, "{args:?} in the container failed:\n{}\n{}", o.stdout, o.stderr);
        o.stdout
    }

    /// `curl` from the container's network namespace (the host's curl: the
    /// minimal root has none). None when nothing answers.
    fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Option<(u16, String)> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data", b]);
        }
        let out = c.arg(format!("http://127.0.0.1:8180{path}")).output().unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.to_string()))
    }

    fn install(&self, deb: &Path) -> String {
        let name = deb.file_name().unwrap().to_str().unwrap();
        std::fs::copy(deb, self.rootfs().join("root").join(name)).unwrap();
        self.must(&["dpkg", "-i", &format!("/root/{name}")])
    }

    fn journal(&self) -> String {
        self.run(&["journalctl", "-u", "tundrad", "--no-pager", "-n", "40"]).stdout
    }
}

struct Out {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM to the container's init re-executes it; SIGKILL stops it.
        if self.leader != 0 {
            let _ = Command::new("kill").args(["-9", &self.leader.to_string()]).status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        // What nspawn keeps for a container it did not get to tear down.
        let _ = std::fs::remove_dir_all(format!("/run/systemd/nspawn/propagate/{MACHINE}"));
    }
}

/// `Depends:` of a .deb as package names (versions dropped).
fn depends(deb: &Path) -> String {
    let d = ok(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg("Depends"));
    d.split(',').map(|p| p.split_whitespace().next().unwrap_or("").to_string()).collect::<Vec<_>>().join(",")
}

pub fn tundrad_package_in_a_clean_debian() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let v1 = built("package-deb.sh", &["--profile", "debug", "--out", o]);
    let v2 = built("package-deb.sh", &["--profile", "debug", "--upgrade-probe", "--out", o]);
    let c = Container::boot(&depends(&v1));

    // Install: the unit starts, the first start makes the key and the admin.
    let said = c.install(&v1);
    assert!(
        said.contains("tundrad: running")
            && said.contains("/var/lib/tundra/admin-token")
            && said.contains("secrets.key"),
        "{said}"
    );
    assert_eq!(c.run(&["systemctl", "is-active", "tundrad"]).stdout.trim(), "active", "{}", c.journal());
    wait_until("/healthz", Duration::from_secs(30), || {
        c.http("GET", "/healthz", None, None).is_some_and(|(s, _)| s == 200)
    });
    let info = |c: &Container| -> serde_json::Value {
        serde_json::from_str(&c.http("GET", "/v1/info", None, None).unwrap().1).unwrap()
    };
    let first = info(&c);
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"), "{first}");
    // The dashboard is served from the package alone (no assets elsewhere).
    let (code, login) = c.http("GET", "/ui/login", None, None).unwrap();
    assert_eq!(code, 200, "{login}");
    assert!(login.contains("/ui/assets/ui.css"), "{login}");
    assert_eq!(c.http("GET", "/ui/assets/ui.js", None, None).unwrap().0, 200);
    // The operators' CLI comes with it, with bash completions.
    assert!(c.must(&["tundra", "--version"]).contains(env!("CARGO_PKG_VERSION")));
    assert!(c.must(&["cat", "/usr/share/bash-completion/completions/tundra"]).contains("_tundra"));

    // It runs as `tundra` with exactly CAP_NET_BIND_SERVICE.
    let pid = c.must(&["systemctl", "show", "-p", "MainPID", "--value", "tundrad"]).trim().to_string();
    let status = c.must(&["cat", &format!("/proc/{pid}/status")]);
    let field = |k: &str| {
        status.lines().find(|l| l.starts_with(&format!("{k}:"))).map(|l| l[k.len() + 1..].trim().to_string()).unwrap()
    };
    let uid = c.must(&["id", "-u", "tundra"]).trim().to_string();
    assert!(field("Uid").split_whitespace().all(|u| u == uid), "runs as tundra ({uid}): {}", field("Uid"));
    // Bit 10: NET_BIND_SERVICE.
    for k in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(k), "0000000000000400", "{k}: only CAP_NET_BIND_SERVICE\n{status}");
    }
    let stat = c.must(&[
        "stat",
        "-c",
        "%U:%G %a",
        "/var/lib/tundra",
        "/var/lib/tundra/admin-token",
        "/etc/tundra/tundrad.toml",
    ]);
    assert_eq!(
        stat.lines().collect::<Vec<_>>(),
        ["tundra:tundra 750", "tundra:tundra 600", "root:tundra 640"],
        "{stat}"
    );

    // Data, then the upgrade to a release with a new migration: it migrates
    // and keeps the data; the admin token still works.
    let token = c.must(&["cat", "/var/lib/tundra/admin-token"]).trim().to_string();
    let (s, body) = c.http("POST", "/v1/projects", Some(&token), Some(r#"{"name":"survivor"}"#)).unwrap();
    assert_eq!(s, 201, "{body}");
    let said = c.install(&v2);
    assert!(said.contains("upgraded from") && said.contains("tundrad: running"), "{said}");
    let stat = c.must(&["stat", "-c", "%U:%G %a", "/etc/tundra/tundrad.toml"]);
    assert_eq!(stat.trim(), "root:tundra 640", "the upgrade kept the config readable by tundra only");
    wait_until("/healthz after the upgrade", Duration::from_secs(30), || {
        c.http("GET", "/healthz", None, None).is_some_and(|(s, _)| s == 200)
    });
    let second = info(&c);
    assert!(
        second["schema_version"].as_i64() > first["schema_version"].as_i64(),
        "the upgrade migrated: {first} → {second}\n{}",
        c.journal()
    );
    let (s, body) = c.http("GET", "/v1/projects/survivor", Some(&token), None).unwrap();
    assert_eq!(s, 200, "the project made before the upgrade: {body}");
    assert_eq!(c.run(&["systemctl", "is-active", "tundrad"]).stdout.trim(), "active", "{}", c.journal());

    // Remove: the service stops, the data stays.
    c.must(&["dpkg", "-r", "tundrad"]);
    assert_ne!(c.run(&["systemctl", "is-active", "tundrad"]).stdout.trim(), "active");
    assert!(c.http("GET", "/healthz", None, None).is_none(), "nothing answers after removal");
    let left = c.must(&["ls", "/var/lib/tundra"]);
    for f in ["tundra.db", "secrets.key", "admin-token"] {
        assert!(left.lines().any(|l| l == f), "{f} stays after removal: {left}");
    }
    assert!(!c.rootfs().join("usr/bin/tundrad").exists(), "the binary is gone");
}
