//! Dialects as data (`dialects.toml`, or an operator's own file): the
//! commands of one switch family, and how to read its answers.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

/// One dialect, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectSpec {
    pub description: String,
    /// `cli` (an SSH shell, one command per line; the default),
    /// `netconf` (the SSH `netconf` subsystem: `vlan` and `port` are XML
    /// fragments of one `<configuration>` loaded into the candidate and
    /// committed; `read` is an RPC body) or `exec` (a Linux host: one exec
    /// channel per command, judged by its exit status).
    #[serde(default)]
    pub transport: Transport,
    /// Sent when the login prompt ends in `>` (the enable password is the login password).
    #[serde(default)]
    pub enable: Option<String>,
    /// Sent once per session before anything else (e.g. no paging).
    #[serde(default)]
    pub setup: Vec<String>,
    #[serde(default)]
    pub configure: Vec<String>,
    #[serde(default)]
    pub leave: Vec<String>,
    /// Make sure a VLAN exists.
    pub vlan: Vec<String>,
    /// Put `{port}` into `{vlan}` (`{old_vlan}`: what it was).
    pub port: Vec<String>,
    pub read: String,
    pub read_vlan: String,
    /// What `read` must show for a port that exists (`{port}` filled in);
    /// for CLIs that answer nothing at all about an unknown port.
    #[serde(default)]
    pub read_expect: Option<String>,
    pub errors: Vec<String>,
    /// For big batches: one command showing every port (e.g. `show
    /// running-config`) and a regex (`{port}` filled in, escaped) whose
    /// first group is one port's section of it; `read_vlan` then applies
    /// to the section. A port without a section does not exist.
    #[serde(default)]
    pub read_all: Option<String>,
    #[serde(default)]
    pub read_all_port: Option<String>,
    /// Send a port's (or a read's) commands at once, as typed ahead, and
    /// split the answer at the prompts (default); `false` for CLIs that
    /// drop typeahead: one command per round trip.
    #[serde(default = "yes")]
    pub pipeline: bool,
    /// Old VLANs not to mention in `{old_vlan}` steps (a default VLAN the port leaves by itself).
    #[serde(default)]
    pub skip_old_vlan: Vec<String>,
    /// The port names this dialect accepts, a regex matched against the
    /// whole name (default by transport: CLI names with single inner
    /// spaces; NETCONF names without; Linux interface names for `exec`).
    /// A port that does not match is never put into a command.
    #[serde(default)]
    pub port_name: Option<String>,
}

/// Port names by transport. CLI: `TenGigabitEthernet 1/0/7`, `Te1/0/7`;
/// NETCONF: `xe-0/0/1:2`; exec (a Linux host): an interface name, at most
/// 15 bytes, no `/` or `:`.
const CLI_PORT: &str = r"[A-Za-z0-9]+(?: ?[A-Za-z0-9/.:_-]+)*";
const NETCONF_PORT: &str = r"[A-Za-z0-9][A-Za-z0-9/.:_-]*";
const EXEC_PORT: &str = r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}";
/// Longest port name any dialect takes.
const MAX_PORT: usize = 64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Cli,
    Netconf,
    /// A host that is a switch: each command on its own SSH exec channel,
    /// a non-zero exit status fails it.
    Exec,
}

fn yes() -> bool {
    true
}

/// A dialect ready to use: its spec with the regexes compiled.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub name: String,
    pub spec: DialectSpec,
    pub read_vlan: Regex,
    pub errors: Vec<Regex>,
    /// `port_name`, anchored.
    pub port_name: Regex,
}

/// The dialects tundrad knows without configuration.
pub const BUILT_IN: &str = include_str!("dialects.toml");

/// Parse a dialects file; every regex is compiled, every template checked.
pub fn parse(text: &str) -> Result<BTreeMap<String, Dialect>, String> {
    let specs: BTreeMap<String, DialectSpec> = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let re = |what: &str, p: &str| {
            Regex::new(&format!("(?m){p}")).map_err(|e| format!("dialect {name}: {what} {p:?}: {e}"))
        };
        let read_vlan = re("read_vlan", &spec.read_vlan)?;
        if read_vlan.captures_len() < 2 {
            return Err(format!("dialect {name}: read_vlan needs a group capturing the VLAN"));
        }
        let errors = spec.errors.iter().map(|p| re("error pattern", p)).collect::<Result<Vec<_>, _>>()?;
        match (&spec.read_all, &spec.read_all_port) {
            (Some(_), Some(t)) => {
                let r = re("read_all_port", &t.replace("{port}", "x"))?;
                if r.captures_len() < 2 || !t.contains("{port}") {
                    return Err(format!(
                        "dialect {name}: read_all_port needs {{port}} and a group capturing the section"
                    ));
                }
            }
            (None, None) => {}
            _ => return Err(format!("dialect {name}: read_all and read_all_port go together")),
        }
        if !spec.port.iter().any(|c| c.contains("{port}")) || !spec.read.contains("{port}") {
            return Err(format!("dialect {name}: `port` and `read` must mention {{port}}"));
        }
        let default = match spec.transport {
            Transport::Cli => CLI_PORT,
            Transport::Netconf => NETCONF_PORT,
            Transport::Exec => EXEC_PORT,
        };
        let port_name = Regex::new(&format!("^(?:{})$", spec.port_name.as_deref().unwrap_or(default)))
            .map_err(|e| format!("dialect {name}: port_name: {e}"))?;
        out.insert(name.clone(), Dialect { name, spec, read_vlan, errors, port_name });
    }
    Ok(out)
}

/// The built-in dialects.
pub fn built_in() -> BTreeMap<String, Dialect> {
    parse(BUILT_IN).expect("the built-in dialects parse (tested)")
}

impl Dialect {
    /// Whether `port` may go into this dialect's commands: it matches
    /// `port_name` and holds nothing a command line, shell or XML reads as
    /// more than a name (checked whatever `port_name` says).
    pub fn check_port(&self, port: &str) -> Result<(), super::error::SwitchError> {
        let bad = |why: &str| Err(super::error::SwitchError::BadPort { port: port.into(), why: why.into() });
        if port.is_empty() || port.len() > MAX_PORT {
            return bad("1–64 characters");
        }
        if port.chars().any(|c| c.is_control() || "\"'`$;&|<>\\(){}*?!#~^[]".contains(c)) {
            return bad("control characters and shell or XML syntax are never part of a name");
        }
        if self.spec.transport == Transport::Exec && port.chars().any(char::is_whitespace) {
            return bad("a Linux interface name has no spaces");
        }
        if !self.port_name.is_match(port) {
            return bad(&format!("it must match {}", self.port_name.as_str()));
        }
        Ok(())
    }

    /// The commands that move `port` to `vlan`, given what it was.
    pub fn port_commands(&self, port: &str, vlan: u16, old: Option<u16>) -> Vec<String> {
        let old = old.map(|v| v.to_string()).filter(|v| !self.spec.skip_old_vlan.contains(v));
        let mut out = Vec::new();
        let mut skipping = false;
        for c in &self.spec.port {
            // A step mentioning {old_vlan} opens a block that lasts to its `exit`.
            if c.contains("{old_vlan}") {
                skipping = old.is_none();
            }
            if !skipping {
                out.push(fill(c, &self.quoted(port), vlan, old.as_deref()));
            }
            if skipping && c.trim() == "exit" {
                skipping = false;
            }
        }
        out
    }

    pub fn vlan_commands(&self, vlan: u16) -> Vec<String> {
        self.spec.vlan.iter().map(|c| fill(c, "", vlan, None)).collect()
    }

    pub fn read_command(&self, port: &str) -> String {
        fill(&self.spec.read, &self.quoted(port), 0, None)
    }

    /// A port name as it goes into a template: XML-escaped for NETCONF
    /// (names are checked first; this holds even for a dialect's own
    /// `port_name`).
    fn quoted(&self, port: &str) -> String {
        match self.spec.transport {
            Transport::Netconf => xml_escape(port),
            _ => port.to_string(),
        }
    }

    /// The VLAN a `read` output shows, if any.
    pub fn vlan_in(&self, output: &str) -> Option<u16> {
        self.read_vlan.captures(output).and_then(|c| c.get(1)).and_then(|m| m.as_str().parse().ok())
    }

    /// `port`'s section of a `read_all` answer (`None`: no such port), when
    /// the dialect has `read_all`.
    pub fn section_in<'a>(&self, all: &'a str, port: &str) -> Option<Option<&'a str>> {
        let t = self.spec.read_all_port.as_ref()?;
        let re = Regex::new(&format!("(?m){}", t.replace("{port}", &regex::escape(port)))).ok()?;
        Some(re.captures(all).and_then(|c| c.get(1)).map(|m| m.as_str()))
    }

    /// What `read` must show for `port`, when the dialect says.
    pub fn read_expect(&self, port: &str) -> Option<String> {
        self.spec.read_expect.as_ref().map(|t| fill(t, &self.quoted(port), 0, None))
    }

    /// The first output line that says the command failed.
    pub fn error_in<'a>(&self, output: &'a str) -> Option<&'a str> {
        output.lines().find(|l| self.errors.iter().any(|r| r.is_match(l)))
    }
}

fn fill(t: &str, port: &str, vlan: u16, old: Option<&str>) -> String {
    t.replace("{port}", port).replace("{vlan}", &vlan.to_string()).replace("{old_vlan}", old.unwrap_or(""))
}

/// `s` as XML character data.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_dialects_parse_and_render() {
        let d = built_in();
        assert!(d.len() >= 6, "{:?}", d.keys());
        assert_eq!(d["junos"].spec.transport, Transport::Netconf);
        let c = &d["cisco_ios"];
        assert_eq!(
            c.port_commands("Gi1/0/1", 100, Some(1)),
            ["interface Gi1/0/1", "switchport mode access", "switchport access vlan 100", "exit"]
        );
        assert_eq!(c.vlan_in("interface Gi1/0/1\n switchport access vlan 42\nend"), Some(42));
        assert_eq!(
            c.error_in("foo\n% Invalid input detected at '^' marker.\n"),
            Some("% Invalid input detected at '^' marker.")
        );
        assert_eq!(c.error_in("all good"), None);
    }

    #[test]
    fn ports_are_names_per_dialect_and_never_commands() {
        let d = built_in();
        for (dialect, ok) in [
            ("cisco_ios", "TenGigabitEthernet 1/0/7"),
            ("cisco_ios", "Te1/0/7"),
            ("junos", "xe-0/0/1:2"),
            ("linux_bridge", "lab1-m3-0"),
            ("brocade_fastiron", "1/3"),
        ] {
            assert!(d[dialect].check_port(ok).is_ok(), "{dialect} {ok:?}");
        }
        for (dialect, bad) in [
            ("cisco_ios", "Te1/0/7\nreload"),
            ("cisco_ios", "Te1/0/7 ; end"),
            ("cisco_ios", "Te1/0/7  x"),
            ("cisco_ios", " Te1"),
            ("junos", "ge-0/0/1</name></interface><interface><name>ge-0/0/2"),
            ("junos", "a&b"),
            ("junos", "xe-0/0/1 x"),
            ("linux_bridge", "eth0; reboot"),
            ("linux_bridge", "$(reboot)"),
            ("linux_bridge", "Te1/0/7"),
            ("linux_bridge", "a-very-long-interface"),
            ("arista_eos", ""),
        ] {
            let e = d[dialect].check_port(bad).unwrap_err();
            assert!(matches!(e, crate::switch::SwitchError::BadPort { .. }), "{dialect} {bad:?}: {e}");
        }
        // A dialect's own pattern cannot let shell syntax through.
        let own = parse("[x]\ndescription = \"\"\ntransport = \"exec\"\nvlan = []\nport = [\"ip link set {port}\"]\nread = \"ip link show {port}\"\nread_vlan = \"br(\\\\d+)\"\nerrors = []\nport_name = \".*\"\n").unwrap();
        assert!(own["x"].check_port("eth0;reboot").is_err());
        assert!(own["x"].check_port("eth0 master br9").is_err(), "no extra arguments");
        assert!(own["x"].check_port("eth0").is_ok());
        // NETCONF names are escaped as they go into XML.
        let j = &d["junos"];
        assert!(j.read_command("a&b").contains("<name>a&amp;b</name>"));
    }

    #[test]
    fn old_vlan_steps_run_only_when_there_was_one() {
        let b = &built_in()["brocade_fastiron"];
        assert_eq!(
            b.port_commands("1/3", 200, Some(100)),
            ["vlan 100", "no untagged ethernet 1/3", "exit", "vlan 200", "untagged ethernet 1/3", "exit"]
        );
        let fresh = ["vlan 200", "untagged ethernet 1/3", "exit"];
        assert_eq!(b.port_commands("1/3", 200, None), fresh);
        assert_eq!(b.port_commands("1/3", 200, Some(1)), fresh, "the default VLAN is left implicitly");
    }

    #[test]
    fn broken_dialects_are_refused_with_the_reason() {
        let e = parse("[x]\ndescription = \"\"\nconfigure = []\nleave = []\nvlan = []\nport = [\"interface {port}\"]\nread = \"show {port}\"\nread_vlan = \"vlan\"\nerrors = []\n").unwrap_err();
        assert!(e.contains("capturing"), "{e}");
        let e = parse("[x]\ndescription = \"\"\nconfigure = []\nleave = []\nvlan = []\nport = [\"interface {port}\"]\nread = \"show {port}\"\nread_vlan = \"(\\\\d+\"\nerrors = []\n").unwrap_err();
        assert!(e.contains("read_vlan"), "{e}");
    }
}
