//! The dashboard in a real browser: headless Chromium (Debian's, driven
//! over WebDriver by chromedriver) against tundrad serving a lab site.
//! Sign-in, a project member who does not see the site, overview counts
//! equal to the API's, a clean-failed machine in the failure queue with its
//! reason, a machine action with its result (and the page updating live), a
//! switch port moved by hand over SSH shown as drift and repaired by the
//! sync button. Each page is saved as a screenshot under
//! `target/test-artifacts/dashboard/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::nodes::{LabSite, root};

/// A chromedriver and one headless Chromium session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    /// The driver's last refusal (for a wait's failure message).
    last_error: std::sync::Mutex<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    pub fn start(shots: &str) -> Browser {
        for t in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(Path::new(t).exists(), "{t} is missing: run scripts/setup.sh (Debian's chromium, chromium-driver)");
        }
        let port = crate::peers::free_port();
        // Chromium's own scratch dirs go into the test's temp dir too.
        let profile = tempfile::Builder::new().prefix("tundra-chromium-").tempdir().unwrap();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
            shots: root().join("target/test-artifacts").join(shots),
            last_error: Default::default(),
        };
        std::fs::create_dir_all(&b.shots).unwrap();
        let start = Instant::now();
        while b.call("GET", "/status", None).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Headless, as root (no sandbox), and nothing leaves loopback.
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--metrics-recording-only",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            format!("--user-data-dir={}", b._profile.path().display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let v = b.call("POST", "/session", Some(caps)).unwrap_or_else(|e| panic!("no browser session: {e}"));
        b.session = v["sessionId"].as_str().unwrap().to_string();
        b
    }

    /// One WebDriver call: the answer's `value`, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut resp = Vec::new();
        let mut buf = [0u8; 8192];
        let (head, mut body) = loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("chromedriver closed the connection".into());
            }
            resp.extend_from_slice(&buf[..n]);
            if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&resp[..i]).into_owned(), resp[i + 4..].to_vec());
            }
        };
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        while body.len() < len {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = String::from_utf8_lossy(&body);
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status == 200 { Ok(v["value"].clone()) } else { Err(format!("{status}: {}", v["value"])) }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url}))).unwrap();
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None).unwrap().as_str().unwrap().to_string()
    }

    fn find(&self, css: &str) -> Option<String> {
        match self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css}))) {
            Ok(v) => v[ELEMENT].as_str().map(String::from),
            Err(e) => {
                *self.last_error.lock().unwrap() = e;
                None
            }
        }
    }

    /// The element's text, once it exists (waits up to 30 s).
    pub fn text(&self, css: &str) -> String {
        let el = self.wait(&format!("an element {css}"), Duration::from_secs(30), || self.find(css));
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    pub fn try_text(&self, css: &str) -> Option<String> {
        let el = self.find(css)?;
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)
            .ok()
            .map(|v| v.as_str().unwrap_or("").to_string())
    }

    pub fn exists(&self, css: &str) -> bool {
        self.find(css).is_some()
    }

    pub fn click(&self, css: &str) {
        let el = self.wait(&format!("an element {css}"), Duration::from_secs(30), || self.find(css));
        self.call("POST", &self.s(&format!("/element/{el}/click")), Some(json!({}))).unwrap();
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait(&format!("an element {css}"), Duration::from_secs(30), || self.find(css));
        self.call("POST", &self.s(&format!("/element/{el}/value")), Some(json!({"text": text}))).unwrap();
    }

    /// Accept the page's confirmation; answers its question.
    pub fn confirm(&self) -> String {
        let q = self.wait("a confirmation dialog", Duration::from_secs(10), || {
            self.call("GET", &self.s("/alert/text"), None).ok().and_then(|v| v.as_str().map(String::from))
        });
        self.call("POST", &self.s("/alert/accept"), Some(json!({}))).unwrap();
        q
    }

    pub fn script(&self, js: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({"script": js, "args": []}))).unwrap()
    }

    /// Save the page as `NAME.png` among the test's artifacts.
    pub fn shot(&self, name: &str) -> PathBuf {
        let v = self.call("GET", &self.s("/screenshot"), None).unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }

    pub fn wait<T>(&self, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > within {
                let _ = self.shot("timed-out");
                let body = self.try_text("body").unwrap_or_default();
                let last = self.last_error.lock().unwrap().clone();
                panic!(
                    "waited {within:?} for {what} (the driver said: {last}); the page ({}) shows:\n{body}",
                    self.url()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Wait for the page a form led to (its URL holds `part`).
    pub fn until_url(&self, part: &str) {
        self.wait(&format!("a URL with {part}"), Duration::from_secs(20), || self.url().contains(part).then_some(()));
    }

    pub fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui/"));
        assert!(self.url().contains("/ui/login"), "signed out: the dashboard asks for a token first ({})", self.url());
        self.type_into("#token", token);
        self.click("#sign-in");
        self.wait("the overview after sign-in", Duration::from_secs(20), || {
            (self.url().ends_with("/ui/") && self.exists("#projects")).then_some(())
        });
    }
}

fn ssh_switch(s: &LabSite, command: &str) {
    let sw = s.lab().ssh_switch.clone().expect("the lab has an SSH switch");
    let (host, port) = sw.address.rsplit_once(':').unwrap();
    let known = s.dir.path().join("known_hosts");
    let out = Command::new("ssh")
        .args(["-i", sw.private_key_file.to_str().unwrap(), "-p", port, "-o", "StrictHostKeyChecking=accept-new"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "BatchMode=yes", &format!("{}@{host}", sw.username), command])
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh {command}: {}", String::from_utf8_lossy(&out.stderr));
}

fn bridge_of(s: &LabSite, port: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", &format!("tl{}-fab", s.lab().id), "-o", "link", "show", "dev", port])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split_whitespace().skip_while(|w| *w != "master").nth(1).unwrap_or("none").to_string()
}

fn wait_api(s: &LabSite, what: &str, within: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = s;
}

/// The dashboard part of `operators_on_the_lab`: the lab's machines are
/// enrolled and cleaned (by the CLI part), `cli-r2-1` has a wrong BMC password.
pub fn on_the_lab(s: &LabSite, lab: &Value) {
    let base = s.site.endpoint.clone();
    let api = |method: &str, path: &str, body: Option<Value>| s.site.api(method, path, body);
    let machine = |name: &str| -> Value {
        let (c, v) = api("GET", &format!("/v1/machines?name={name}"), None);
        assert_eq!(c, 200, "{v}");
        v["items"][0].clone()
    };

    // A machine the test puts in clean_failed: provided with a BMC refusing its credentials.
    let broken = machine("cli-r2-1");
    let id = broken["id"].as_str().unwrap().to_string();
    for action in ["manage", "provide"] {
        let (c, v) = api("POST", &format!("/v1/machines/{id}/actions"), Some(json!({"action": action})));
        assert_eq!(c, 202, "{action}: {v}");
        wait_api(s, &format!("{action} to end"), Duration::from_secs(60), || {
            machine("cli-r2-1")["operation_id"].is_null()
        });
    }
    let broken = machine("cli-r2-1");
    assert_eq!(broken["provision_state"], "clean_failed", "{broken}");
    let reason = broken["last_error"].as_str().unwrap().to_string();

    let b = Browser::start("dashboard");
    b.goto(&format!("{base}/ui/machines"));
    assert!(b.url().contains("/ui/login?next=%2Fui%2Fmachines"), "{}", b.url());
    b.shot("01-sign-in");
    b.type_into("#token", "tnd_not-a-real-token");
    b.click("#sign-in");
    let refused = b.text("#login-error");
    assert!(refused.contains("unknown or was revoked"), "{refused}");
    b.sign_in(&base, &s.site.token);

    // The overview: counts equal to the API's, and the failure queue.
    let (_, all) = api("GET", "/v1/machines?limit=500", None);
    let mut by_state = std::collections::BTreeMap::<String, usize>::new();
    for m in all["items"].as_array().unwrap() {
        *by_state.entry(m["provision_state"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for (state, n) in &by_state {
        assert_eq!(b.text(&format!("td.count[data-state='{state}']")), n.to_string(), "{state} on the overview");
    }
    let shown = b.script("return Array.from(document.querySelectorAll('td.count')).map(td => td.dataset.state)");
    assert_eq!(shown.as_array().unwrap().len(), by_state.len(), "no state the API does not have: {shown}");
    let row = b.text("#failure-queue tr[data-machine='cli-r2-1']");
    assert!(row.contains("clean_failed") && row.contains(&reason), "the queue says why: {row} / {reason}");
    eprintln!("failure queue row: {row}");
    b.shot("02-overview");

    // Machines: filters in the URL, server-side.
    b.goto(&format!("{base}/ui/machines?rack=r1"));
    let names = b.script(
        "return Array.from(document.querySelectorAll('#machines tr[data-machine]')).map(r => r.dataset.machine)",
    );
    assert_eq!(names, json!(["cli-r1-1", "cli-r1-2"]));
    let mac = lab["machines"][2]["macs"][0].as_str().unwrap();
    b.goto(&format!("{base}/ui/machines?mac={}", mac.to_uppercase()));
    assert_eq!(
        b.script(
            "return Array.from(document.querySelectorAll('#machines tr[data-machine]')).map(r => r.dataset.machine)"
        ),
        json!(["cli-r2-1"])
    );
    b.goto(&format!("{base}/ui/machines"));
    b.shot("03-machines");

    // A machine's page: fix its password (CLI), Manage from the dashboard, then Provide;
    // each result is shown, and the page follows the machine live.
    let right = lab["machines"][2]["bmc"]["password"].as_str().unwrap();
    let (c, v) = api("PATCH", &format!("/v1/machines/{id}"), Some(json!({"bmc_password": right})));
    assert_eq!(c, 200, "{v}");
    b.goto(&format!("{base}/ui/machines/{id}"));
    assert_eq!(b.text("#last-error"), reason);
    b.shot("04-machine-clean-failed");
    b.click("#action-manage");
    let q = b.confirm();
    assert!(q.contains("Verify the BMC of cli-r2-1"), "{q}");
    b.until_url("?ok=manage");
    let result = b.text("#result");
    assert!(result.starts_with("manage started on cli-r2-1: operation "), "{result}");
    b.wait("manageable, on the page", Duration::from_secs(30), || {
        (b.try_text("#provision-state").as_deref() == Some("manageable")).then_some(())
    });
    b.script("document.getElementById('main').removeAttribute('data-refreshed'); return null");
    b.click("#action-provide");
    b.confirm();
    b.until_url("?ok=provide");
    let result = b.text("#result");
    assert!(result.starts_with("provide started on cli-r2-1"), "{result}");
    b.wait("available, pushed to the page without a reload", Duration::from_secs(90), || {
        let live = b.script("return document.getElementById('main').getAttribute('data-refreshed')");
        (b.try_text("#provision-state").as_deref() == Some("available") && !live.is_null()).then_some(())
    });
    let timeline = b.text("#timeline");
    assert!(timeline.contains("admin"), "the timeline names who acted: {timeline}");
    b.shot("05-machine-provided");
    // A refused action says why.
    b.click("#action-abort");
    b.confirm();
    b.until_url("?error=abort");
    let refused = b.text("#result");
    assert!(refused.starts_with("abort refused:"), "{refused}");
    b.goto(&format!("{base}/ui/"));
    assert!(!b.exists("#failure-queue tr[data-machine='cli-r2-1']"), "fixed: out of the queue");

    // A switch port moved by hand over SSH: drift on the switches page, then Sync.
    let port = lab["machines"][1]["cabling"][0]["port_id"].as_str().unwrap().to_string();
    assert_eq!(bridge_of(s, &port), "br1");
    ssh_switch(
        s,
        &format!("ip link add br77 type bridge 2>/dev/null; ip link set br77 up && ip link set dev {port} master br77"),
    );
    b.goto(&format!("{base}/ui/switches"));
    let row = format!(".switch tr.drift[data-port='{port}']");
    b.wait("the drift to show (live)", Duration::from_secs(60), || b.exists(&row).then_some(()));
    assert_eq!(b.text(&format!("{row} td.actual")), "77");
    assert_eq!(b.text(&format!("{row} td.desired")), "1");
    b.shot("06-switch-drift");
    let sync = format!("#sync-{}", s.lab().ssh_switch.as_ref().unwrap().name);
    b.click(&sync);
    b.confirm();
    b.until_url("/ui/switches?ok=");
    let result = b.text("#result");
    assert!(result.contains("1 port(s) being programmed again"), "{result}");
    b.wait("the port in sync again", Duration::from_secs(60), || {
        (!b.exists(&row) && b.try_text(&format!("tr[data-port='{port}'] td.state")).as_deref() == Some("in_sync"))
            .then_some(())
    });
    assert_eq!(bridge_of(s, &port), "br1", "the switch itself was repaired");
    b.shot("07-switch-synced");

    // The other pages render for an admin.
    for (page, name, marker) in [
        ("/ui/map", "08-rack-map", ".rack[data-rack='r1']"),
        ("/ui/capacity", "09-capacity", "#quotas"),
        ("/ui/operations", "10-operations", "#operations tr[data-operation]"),
    ] {
        b.goto(&format!("{base}{page}"));
        assert!(b.exists(marker), "{page} shows {marker}");
        if page == "/ui/capacity" {
            assert_eq!(b.text("#capacity-site td.free"), "3", "all three machines free");
        }
        b.shot(name);
    }

    // A project member: their project only, not the site.
    let (c, v) = api("POST", "/v1/users", Some(json!({"name": "bob"})));
    assert_eq!(c, 201, "{v}");
    let (c, v) = api("PUT", "/v1/projects/astro/roles/bob", Some(json!({"role": "member"})));
    assert_eq!(c, 204, "{v}");
    let (c, v) = api("POST", "/v1/projects", Some(json!({"name": "secret-lab"})));
    assert_eq!(c, 201, "{v}");
    let other = v["id"].as_str().unwrap().to_string();
    let (c, v) = api("POST", "/v1/tokens", Some(json!({"user_id": machine_user(s, "bob")})));
    assert_eq!(c, 201, "{v}");
    let bob = v["secret"].as_str().unwrap().to_string();
    b.click("header form button");
    b.wait("signed out", Duration::from_secs(10), || b.url().contains("/ui/login").then_some(()));
    b.sign_in(&base, &bob);
    let nav = b.text("header nav");
    assert!(!nav.contains("Machines") && !nav.contains("Switches"), "{nav}");
    assert!(!b.exists("#state-counts") && !b.exists("#failure-queue"));
    let projects = b.script("return Array.from(document.querySelectorAll('#projects td a')).map(a => a.textContent)");
    assert_eq!(projects, json!(["astro"]), "bob sees his project only");
    b.shot("11-member-overview");
    b.goto(&format!("{base}/ui/machines"));
    assert!(b.text("main").contains("Only site admins"), "{}", b.text("main"));
    b.goto(&format!("{base}/ui/projects/{other}"));
    assert!(b.text("main").contains("not found") || b.text("main").contains("does not exist"), "{}", b.text("main"));
    b.goto(&format!("{base}/ui/projects/astro"));
    assert!(b.exists("#nodes"));
    b.shot("12-member-project");
    eprintln!("dashboard screenshots: {}", b.shots.display());
}

fn machine_user(s: &LabSite, name: &str) -> Value {
    let (c, v) = s.site.api("GET", &format!("/v1/users/{name}"), None);
    assert_eq!(c, 200, "{v}");
    v["id"].clone()
}
