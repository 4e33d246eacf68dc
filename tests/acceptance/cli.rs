//! The `tundra` CLI, the built binary, against a real tundrad: every output
//! format parses (JSON and YAML round-trip), `create` prints the new ID,
//! errors say what to do with documented exit codes, profiles, completions,
//! `event list --follow`; and on a lab, `--wait` on `provide` shows progress
//! and exits 0, exits 6 on a timeout and 5 when the work fails — then the
//! dashboard's browser tests run on the same lab.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::nodes::{LabSite, bin, root};
use crate::steps::Site;

struct Cli {
    endpoint: String,
    token: String,
    /// HOME and XDG_CONFIG_HOME: no developer's config leaks in.
    home: tempfile::TempDir,
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(endpoint: &str, token: &str) -> Cli {
        Cli { endpoint: endpoint.into(), token: token.into(), home: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("tundra"));
        c.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("TUNDRA_ENDPOINT", &self.endpoint)
            .env("TUNDRA_TOKEN", &self.token)
            .env_remove("TUNDRA_PROJECT")
            .env_remove("TUNDRA_PROFILE")
            .env_remove("TUNDRA_CLI_CONFIG");
        c
    }

    fn run_with(&self, mut c: Command) -> Run {
        let out = c.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args))
    }

    /// Runs and must exit 0; answers stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "tundra {args:?}: {r:?}");
        r.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("tundra {a:?} -o json: {e}:\n{out}"))
    }

    /// Runs and must exit `code`; answers stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, code, "tundra {args:?}: {r:?}");
        r.stderr
    }
}

/// YAML read by a YAML parser (PyYAML's safe loader), as JSON.
fn parse_yaml(text: &str) -> Value {
    let mut c = Command::new(root().join(".venv/bin/python3"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "YAML did not parse:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The same command in every format: JSON and YAML say the same thing, the
/// table has the columns, `value` the bare values.
fn formats_agree(cli: &Cli, args: &[&str], columns: &[&str]) -> Value {
    let j = cli.json(args);
    let y = parse_yaml(&cli.ok(&[args, &["-o", "yaml"][..]].concat()));
    assert_eq!(y, j, "YAML and JSON of {args:?} differ");
    let table = cli.ok(args);
    let header = table.lines().next().unwrap_or_default().to_string();
    for c in columns {
        assert!(header.contains(&c.to_uppercase()) || table.contains(&format!("{c} ")), "{c} in:\n{table}");
    }
    let wide = cli.ok(&[args, &["-o", "wide"][..]].concat());
    assert!(!wide.is_empty());
    let cols = columns.join(",");
    let value = cli.ok(&[args, &["-o", "value", "-c", &cols][..]].concat());
    let rows: Vec<Value> = if let Value::Array(a) = &j { a.clone() } else { vec![j.clone()] };
    let expected: Vec<String> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match &r[c] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect();
    assert_eq!(value.lines().collect::<Vec<_>>(), expected, "-o value -c {cols} of {args:?}");
    j
}

pub fn cli_against_tundrad() {
    let site = Site::start();
    let cli = Cli::new(&site.endpoint, &site.token);

    // create prints the new ID, alone, by default and with -c id -o value.
    let flavor = cli.ok(&[
        "flavor",
        "create",
        "--project",
        "astro",
        "--set",
        "name=compute",
        "--set",
        "resource_class=baremetal",
    ]);
    let flavor = flavor.trim();
    assert!(flavor.parse::<uuid::Uuid>().is_ok(), "{flavor:?}");
    let (code, v) = site.api("GET", &format!("/v1/flavors/{flavor}"), None);
    assert_eq!((code, v["name"].as_str()), (200, Some("compute")), "{v}");
    let body = cli.home.path().join("keypair.json");
    std::fs::write(&body, json!({"name": "ops", "public_key": crate::nodes::KEY}).to_string()).unwrap();
    let kp =
        cli.ok(&["keypair", "create", "--project", "astro", "-f", body.to_str().unwrap(), "-c", "id", "-o", "value"]);
    let kp = kp.trim_end_matches('\n');
    assert!(kp.parse::<uuid::Uuid>().is_ok() && !kp.contains(char::is_whitespace), "{kp:?}");

    // Every format parses, lists and single objects alike (events carry nested details).
    let projects = formats_agree(&cli, &["project", "list"], &["id", "name"]);
    assert!(projects.as_array().unwrap().iter().any(|p| p["name"] == "astro"), "{projects}");
    formats_agree(&cli, &["project", "show", "astro"], &["id", "name"]);
    formats_agree(&cli, &["flavor", "show", "compute", "--project", "astro"], &["id", "resource_class"]);
    let events = formats_agree(&cli, &["event", "list"], &["object_type", "action"]);
    assert!(events.as_array().unwrap().iter().any(|e| e["object_id"] == flavor), "{events}");
    let kps = formats_agree(&cli, &["keypair", "list", "--project", "astro"], &["name", "fingerprint"]);
    assert_eq!(kps[0]["id"], kp);
    let filtered = cli.ok(&["flavor", "list", "--filter", "resource_class=baremetal", "-o", "value", "-c", "name"]);
    assert_eq!(filtered, "compute\n");
    assert_eq!(cli.ok(&["flavor", "list", "--filter", "resource_class=gpu", "-o", "value", "-c", "name"]), "");

    // Bad input says what to do, with the documented exit codes.
    let e = cli.fails(2, &["machin", "list"]);
    assert!(e.contains("a similar subcommand exists: 'machine'"), "{e}");
    let e = cli.fails(2, &["machine", "list", "--bogus"]);
    assert!(e.contains("unexpected argument '--bogus'") && e.contains("--help"), "{e}");
    let e = cli.fails(2, &["project", "list", "-c", "nmae"]);
    assert!(e.contains("no column \"nmae\"") && e.contains("name"), "{e}");
    let e = cli.fails(2, &["machine", "provide"]);
    assert!(e.contains("--rack"), "{e}");
    let e = cli.fails(2, &["machine", "provide", "m-1", "--wait=soon"]);
    assert!(e.contains("like 90s"), "{e}");
    let e = cli.fails(3, &["machine", "show", "m-1"]);
    assert!(e.contains("tundra machine list"), "{e}");
    let e = cli.fails(1, &["project", "create", "--set", "name=astro"]);
    assert!(e.contains("already exists"), "{e}");
    let e = cli.fails(1, &["flavor", "create", "--project", "astro", "--set", "name=x", "--set", "colour=blue"]);
    assert!(e.contains("colour"), "the service names the field: {e}");
    let mut bad = cli.command(&["project", "list"]);
    bad.env("TUNDRA_TOKEN", "tnd_not-a-token");
    let r = cli.run_with(bad);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("TUNDRA_TOKEN"), "{r:?}");
    assert!(!r.stderr.contains("tnd_not-a-token"), "the token is not echoed: {r:?}");
    let mut away = cli.command(&["project", "list"]);
    away.env("TUNDRA_ENDPOINT", format!("http://127.0.0.1:{}", crate::peers::free_port()));
    let r = cli.run_with(away);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("could not reach tundrad"), "{r:?}");
    let mut none = cli.command(&["project", "list"]);
    none.env_remove("TUNDRA_ENDPOINT");
    let r = cli.run_with(none);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("TUNDRA_ENDPOINT"), "{r:?}");

    // Profiles: the endpoint, a token file and the project from the config file.
    let cfg = cli.home.path().join(".config/tundra");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("lab.token"), format!("{}\n", site.token)).unwrap();
    std::fs::write(
        cfg.join("config.toml"),
        format!(
            "default_profile = \"lab\"\n[profiles.lab]\nendpoint = \"{}\"\ntoken_file = \"{}\"\nproject = \"astro\"\n",
            site.endpoint,
            cfg.join("lab.token").display()
        ),
    )
    .unwrap();
    let mut by_profile = cli.command(&["flavor", "list", "-o", "value", "-c", "name"]);
    by_profile.env_remove("TUNDRA_ENDPOINT").env_remove("TUNDRA_TOKEN");
    let r = cli.run_with(by_profile);
    assert_eq!((r.code, r.stdout.as_str()), (0, "compute\n"), "{r:?}");
    let e = cli.fails(2, &["--profile", "prod", "project", "list"]);
    assert!(e.contains("no profile \"prod\"") && e.contains("lab"), "{e}");

    // Completions load into bash.
    let script = cli.home.path().join("tundra.bash");
    std::fs::write(&script, cli.ok(&["completion", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p tundra", script.display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tundra"), "{out:?}");

    // event list --follow prints new events as they happen, one JSON object a
    // line (in the profile's project).
    let mut follow = cli.command(&["event", "list", "--follow", "--object-type", "flavor", "-o", "json"]);
    let err = std::fs::File::create(cli.home.path().join("follow.err")).unwrap();
    let mut child = follow.stdout(Stdio::piped()).stderr(err).spawn().unwrap();
    let lines = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.0.send(l).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let gpu = cli.ok(&["flavor", "create", "--set", "name=gpu", "--set", "resource_class=gpu"]);
    let start = Instant::now();
    let seen = loop {
        let l = lines.1.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|e| {
            let err = std::fs::read_to_string(cli.home.path().join("follow.err")).unwrap_or_default();
            panic!("no followed event within 20 s ({e}): {err}")
        });
        let e: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(e["object_type"], "flavor", "{e}");
        if e["object_id"] == gpu.trim() {
            break e;
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    };
    assert_eq!(seen["action"], "created", "{seen}");
    child.kill().unwrap();
    child.wait().unwrap();
}

const LAB: &str = r#"
[switch]
name = "leaf-1"
ssh = true
provisioning_vlan = 1

[[machines]]
name = "cli-r1-{n}"
count = 2
bmc = "redfish"
nics = 1
disks = [{ name = "nvme0n1", size_mib = 128 }]
rack = "r1"
island = "a"

[[machines]]
name = "cli-r2-{n}"
count = 1
bmc = "redfish"
nics = 1
disks = [{ name = "nvme0n1", size_mib = 128 }]
rack = "r2"
island = "a"
"#;

fn enroll_body(m: &Value, dir: &Path) -> String {
    let body = json!({
        "name": m["name"],
        "location": {"rack": m["rack"], "island": m["island"]},
        "bmc": {"driver": m["bmc"]["driver"], "address": m["bmc"]["address"], "system": m["bmc"]["system"], "username": m["bmc"]["username"]},
        "bmc_password": m["bmc"]["password"],
        "interfaces": m["macs"].as_array().unwrap().iter().enumerate().map(|(i, mac)| json!({
            "mac": mac, "pxe": i == 0, "physical_network": "fabric",
            "switch": m["cabling"][i]["switch"], "port": m["cabling"][i]["port_id"],
        })).collect::<Vec<_>>(),
    });
    let f = dir.join(format!("{}.json", m["name"].as_str().unwrap()));
    std::fs::write(&f, body.to_string()).unwrap();
    f.display().to_string()
}

/// One lab for the operators' tools: the CLI enrolls and cleans the machines
/// (and shows --wait, timeouts and failures), then the dashboard part runs
/// on the same site (`dashboard::on_the_lab`).
pub fn operators_on_the_lab() {
    let s = LabSite::start_with(LAB, |c| c.fabric_read_interval = "2s".into());
    let cli = Cli::new(&s.site.endpoint, &s.site.token);
    let lab: Value = serde_json::from_str(&std::fs::read_to_string(s.dir.path().join("lab.json")).unwrap()).unwrap();

    // The fabric, declared with the CLI: a physical network and the lab's switch (key login).
    let pn = cli.ok(&[
        "physical-network",
        "create",
        "--set",
        "name=fabric",
        "--set",
        "kind=ethernet",
        "--set",
        "segment_range=[100,199]",
        "--set",
        "provisioning_segment=1",
    ]);
    let sw = &lab["switch"];
    let key = std::fs::read_to_string(sw["private_key_file"].as_str().unwrap()).unwrap();
    let body = s.dir.path().join("switch.json");
    std::fs::write(
        &body,
        json!({"name": sw["name"], "physical_network_id": pn.trim(), "dialect": sw["dialect"], "address": sw["address"],
               "username": sw["username"], "private_key": key, "host_key": sw["host_key"], "max_sessions": 2})
        .to_string(),
    )
    .unwrap();
    let shown = cli.ok(&["switch", "create", "-f", body.to_str().unwrap(), "-o", "json"]);
    assert!(!shown.contains("PRIVATE KEY"), "the key is write-only: {shown}");

    // Enroll, then manage every enrolled machine: --wait returns once each BMC is verified.
    for m in lab["machines"].as_array().unwrap() {
        let f = enroll_body(m, s.dir.path());
        let id = cli.ok(&["machine", "create", "-f", &f]);
        assert!(id.trim().parse::<uuid::Uuid>().is_ok(), "{id:?}");
    }
    let r = cli.run(&["machine", "manage", "--state", "enroll", "--wait=2m", "-o", "value", "-c", "machine,state"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "cli-r1-1\tsucceeded\ncli-r1-2\tsucceeded\ncli-r2-1\tsucceeded\n", "{r:?}");
    let states = cli.ok(&["machine", "list", "-o", "value", "-c", "name,provision_state,location.rack"]);
    assert_eq!(
        states, "cli-r1-1\tmanageable\tr1\ncli-r1-2\tmanageable\tr1\ncli-r2-1\tmanageable\tr2\n",
        "names sort as created"
    );

    // Bulk selectors with --dry-run show the machines and change nothing.
    let r = cli.run(&[
        "machine",
        "provide",
        "--rack",
        "r1",
        "--state",
        "manageable",
        "--dry-run",
        "-o",
        "value",
        "-c",
        "name",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "cli-r1-1\ncli-r1-2\n"), "{r:?}");
    assert!(r.stderr.contains("2 machine(s) selected"), "{r:?}");
    assert_eq!(cli.ok(&["machine", "list", "--state", "manageable", "-o", "value", "-c", "name"]).lines().count(), 3);

    // provide --wait: progress on stderr, exit 0, both cleaned; r2 untouched.
    let r = cli.run(&["machine", "provide", "--rack", "r1", "--state", "manageable", "--wait=5m", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    eprintln!("tundra machine provide --rack r1 --state manageable --wait=5m, stderr:\n{}", r.stderr);
    assert!(
        r.stderr.contains("cli-r1-1: machine.clean running") && r.stderr.contains("cli-r1-2: machine.clean"),
        "{r:?}"
    );
    assert!(r.stderr.contains("machine.clean succeeded"), "{r:?}");
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(rows.as_array().unwrap().iter().all(|o| o["state"] == "succeeded"), "{rows}");
    let states = cli.ok(&["machine", "list", "-o", "value", "-c", "name,provision_state"]);
    assert_eq!(states, "cli-r1-1\tavailable\ncli-r1-2\tavailable\ncli-r2-1\tmanageable\n");

    // A wait that runs out: exit 6, the work goes on and `operation wait` follows it.
    let r = cli.run(&["machine", "provide", "cli-r2-1", "--wait=1s", "-o", "json"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("timed out after 1s") && r.stderr.contains("operation wait"), "{r:?}");
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    let op = rows[0]["operation_id"].as_str().unwrap().to_string();
    let ended = cli.ok(&["operation", "wait", &op, "--wait=5m", "-o", "value", "-c", "state"]);
    assert_eq!(ended, "succeeded\n");
    assert_eq!(cli.ok(&["machine", "show", "cli-r2-1", "-o", "value", "-c", "provision_state"]), "available\n");

    // Work that fails: a BMC refusing the credentials fails the power-on: exit 5, with the reason.
    cli.ok(&["machine", "update", "cli-r2-1", "--set", "bmc_password=wrong", "-o", "value", "-c", "id"]);
    let r = cli.run(&["machine", "power", "on", "cli-r2-1", "--wait=3m"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("cli-r2-1: machine.power failed"), "{r:?}");
    let events = cli.json(&["event", "list", "--object-type", "machine"]);
    assert!(events.as_array().unwrap().len() >= 6, "{events}");
    assert!(!events.to_string().contains("wrong"), "no password in events");

    // Maintenance by selector, and back.
    let held = cli.ok(&[
        "machine",
        "maintenance",
        "on",
        "--rack",
        "r1",
        "--reason",
        "fan swap",
        "-o",
        "value",
        "-c",
        "name,maintenance",
    ]);
    assert_eq!(held, "cli-r1-1\ttrue\ncli-r1-2\ttrue\n");
    let listed = cli.ok(&["machine", "list", "--maintenance", "true", "-o", "value", "-c", "maintenance_reason"]);
    assert_eq!(listed, "fan swap\nfan swap\n");
    cli.ok(&["machine", "maintenance", "off", "cli-r1-1", "cli-r1-2"]);
    let ports = cli.ok(&["switch", "ports", "leaf-1", "-o", "value", "-c", "port,desired_segment,state"]);
    assert_eq!(ports.lines().count(), 3, "each machine's cabled port is managed: {ports}");
    assert!(ports.lines().all(|l| l.ends_with("\t1\tin_sync")), "{ports}");

    crate::dashboard::on_the_lab(&s, &lab);
}
