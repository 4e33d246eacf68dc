//! `tundra-fuzz`: fuzzing as a command (`scripts/fuzz.sh`), not a test.
//! Long proptest runs over what strangers on the provisioning network and
//! tenants can hand tundrad — DHCP packets, TFTP requests, the agent's
//! reports and inventories, inspection rules, the API's JSON bodies, SSH
//! public keys, qcow2 headers, switch port names — each input generated
//! both at random and by mutating a valid one, each checked for panics and
//! for the property that makes it safe (a reply answers its request, a
//! TFTP path stays in its root, a port name that passes holds no syntax).
//! A failure prints the smallest input proptest shrank it to; it becomes a
//! regression test next to the code it broke.
//!
//! `tundra-fuzz [--cases N] [TARGET…]` (default: every target, 1,000,000
//! cases each); prints one line of figures per target.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Encodable, Encoder};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

type Target = fn(&mut TestRunner) -> Result<(), String>;

const TARGETS: &[(&str, Target)] = &[
    ("dhcp", dhcp),
    ("tftp", tftp),
    ("agent_report", agent_report),
    ("inspection", inspection),
    ("inspection_rules", inspection_rules),
    ("api_bodies", api_bodies),
    ("ssh_keys", ssh_keys),
    ("qcow2", qcow2),
    ("switch_ports", switch_ports),
];

fn main() -> std::process::ExitCode {
    let mut cases: u32 = 1_000_000;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cases" => cases = args.next().and_then(|n| n.parse().ok()).unwrap_or(cases),
            "--list" => {
                TARGETS.iter().for_each(|(n, _)| println!("{n}"));
                return std::process::ExitCode::SUCCESS;
            }
            t if TARGETS.iter().any(|(n, _)| *n == t) => only.push(t.to_string()),
            other => {
                eprintln!("unknown argument {other:?}; targets: {}", names().join(", "));
                return std::process::ExitCode::from(2);
            }
        }
    }
    let mut failed = false;
    println!("{:<18} {:>10} {:>10} {:>12}  result", "target", "cases", "seconds", "cases/s");
    for (name, target) in TARGETS.iter().filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n)) {
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 10_000,
            max_global_rejects: u32::MAX,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let start = Instant::now();
        let r = target(&mut runner);
        let secs = start.elapsed().as_secs_f64();
        let rate = f64::from(cases) / secs.max(1e-9);
        match r {
            Ok(()) => println!("{name:<18} {cases:>10} {secs:>10.1} {rate:>12.0}  0 failures"),
            Err(e) => {
                failed = true;
                println!("{name:<18} {cases:>10} {secs:>10.1} {rate:>12.0}  FAILED: {e}");
            }
        }
    }
    if failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}

fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}

/// Run `property` over `strategy`; a failure says the shrunk input.
fn run<S: Strategy>(
    runner: &mut TestRunner,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), String>
where
    S::Value: std::fmt::Debug,
{
    runner.run(&strategy, property).map_err(|e| e.to_string())
}

/// Bytes: random, or `seeds` with a few bytes overwritten, inserted or cut.
fn mutated(seeds: Vec<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    let random = prop::collection::vec(any::<u8>(), 0..max);
    // Mostly overwrites; now and then an insert or a cut.
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..10), 1..8);
    let from_seed = (prop::sample::select(seeds), edits).prop_map(|(mut b, edits)| {
        for (at, byte, how) in edits {
            match how {
                0 if !b.is_empty() => {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                1..=7 if !b.is_empty() => {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                8 => {
                    let i = at.index(b.len() + 1);
                    b.insert(i, byte);
                }
                9 if !b.is_empty() => {
                    let i = at.index(b.len());
                    b.truncate(i);
                }
                _ => {}
            }
        }
        b
    });
    prop_oneof![1 => random, 3 => from_seed]
}

/// JSON values whose object keys come from `keys` (so deserializers get past
/// "unknown field"), nested a few levels.
fn json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "[ -~]{0,24}".prop_map(Value::String),
        "[a-z0-9:./ _-]{0,20}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(keys), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

// ---------------------------------------------------------------- targets

fn dhcp_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (kind, opts) in [
        (MessageType::Discover, vec![DhcpOption::UserClass(b"iPXE".to_vec())]),
        (MessageType::Request, vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100))]),
        (MessageType::Discover, vec![DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007".to_vec())]),
        (MessageType::Release, vec![]),
        (MessageType::Inform, vec![]),
    ] {
        let mut m = Message::new_with_id(
            0x1234,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x52, 0x54, 0, 0, 0, 1],
        );
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).expect("a seed encodes");
        out.push(b);
    }
    out
}

/// The DHCP packet path: decode, answer (a server with discovery, a pool,
/// reservations), pick the destination. A reply answers its request's
/// transaction and exists only for an Ethernet client.
fn dhcp(runner: &mut TestRunner) -> Result<(), String> {
    use tundra_boot::dhcp::{BootConfig, Config, Leases, Reservation, Server};
    let server = Server::new(
        Config {
            server_ip: Ipv4Addr::new(10, 0, 0, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            router: Some(Ipv4Addr::new(10, 0, 0, 254)),
            dns: vec![Ipv4Addr::new(10, 0, 0, 2)],
            pool: Some((Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 199))),
            discovery: true,
            lease_time: Duration::from_secs(3600),
            boot: BootConfig {
                http_base: "http://10.0.0.1:8180".into(),
                tftp_server: Ipv4Addr::new(10, 0, 0, 1),
                bios_file: "undionly.kpxe".into(),
                efi_file: "snponly.efi".into(),
            },
        },
        Leases::default(),
    );
    server.set_reservations(
        [(
            "52:54:00:00:00:01".to_string(),
            Reservation { ip: Ipv4Addr::new(10, 0, 0, 50), hostname: Some("n1".into()) },
        )]
        .into(),
    );
    let (decoded, answered) = (AtomicU64::new(0), AtomicU64::new(0));
    let r = run(runner, mutated(dhcp_seeds(), 700), |bytes| {
        let Some(m) = tundra_boot::dhcp::decode(&bytes) else { return Ok(()) };
        decoded.fetch_add(1, Ordering::Relaxed);
        let _ = Server::destination(&m);
        if let Some(reply) = server.handle(&m) {
            answered.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(reply.xid(), m.xid());
            prop_assert_eq!(m.hlen(), 6);
            let mut out = Vec::new();
            prop_assert!(reply.encode(&mut Encoder::new(&mut out)).is_ok());
            prop_assert!(out.len() <= 1500, "a reply of {} bytes", out.len());
        }
        Ok(())
    });
    eprintln!("  dhcp: {} decoded, {} answered", decoded.into_inner(), answered.into_inner());
    r
}

/// The TFTP request path: parse the first packet, resolve its file name. A
/// resolved file is always inside the served directory.
fn tftp(runner: &mut TestRunner) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().join("tftp");
    std::fs::create_dir_all(root.join("efi")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("snponly.efi"), b"x").map_err(|e| e.to_string())?;
    std::fs::write(root.join("efi/ipxe.efi"), b"x").map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("secret"), b"x").map_err(|e| e.to_string())?;
    let seeds = vec![
        b"\x00\x01snponly.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00".to_vec(),
        b"\x00\x01../secret\x00octet\x00".to_vec(),
        b"\x00\x01efi/ipxe.efi\x00netascii\x00".to_vec(),
        b"\x00\x02upload\x00octet\x00".to_vec(),
    ];
    let root = root.as_path();
    run(runner, mutated(seeds, 600), |bytes| {
        if let Some(req) = tundra_boot::tftp::parse_request(&bytes)
            && let Some(path) = tundra_boot::tftp::resolve(root, &req.filename)
        {
            let real = path.canonicalize().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(real.starts_with(root), "{} escapes {}", real.display(), root.display());
        }
        Ok(())
    })
}

const AGENT_KEYS: &[&str] = &[
    "id",
    "ok",
    "error",
    "details",
    "version",
    "running",
    "progress",
    "command",
    "seconds",
    "url",
    "sha256",
    "size_bytes",
    "disk",
    "disks",
    "config_drive",
    "cpus",
    "memory_mib",
    "serial",
    "nics",
    "mac",
    "lldp",
    "system_name",
    "port_id",
    "gpus",
    "vendor",
    "device",
    "name",
    "rotational",
    "bytes",
    "verified_zero",
];

/// The agent's report and heartbeat bodies, and the commands it reads.
fn agent_report(runner: &mut TestRunner) -> Result<(), String> {
    use tundra_api::agent::{Command, Heartbeat, Report};
    run(runner, json(AGENT_KEYS), |v| {
        if let Ok(r) = serde_json::from_value::<Report>(v.clone()) {
            prop_assert!(serde_json::to_value(&r).is_ok());
        }
        let _ = serde_json::from_value::<Heartbeat>(v.clone());
        if let Ok(c) = serde_json::from_value::<Command>(v) {
            let _ = c.id();
        }
        Ok(())
    })
}

const RULES: &str = r#"[
  {"name": "gpu", "conditions": [{"op": "any", "field": "/gpus", "key": "vendor", "value": "nvidia"}],
   "actions": [{"action": "set_resource_class", "value": "baremetal.gpu"}, {"action": "add_trait", "value": "gpu"}]},
  {"name": "big", "conditions": [{"op": "ge", "field": "/memory_mib", "value": 32768}],
   "actions": [{"action": "add_trait", "value": "bigmem"}, {"action": "set_name", "template": "n-{/serial}"}]},
  {"name": "bmc", "conditions": [{"op": "matches", "field": "/serial", "pattern": "^CZ"}],
   "actions": [{"action": "set_bmc", "driver": "redfish", "address": "https://bmc-{/serial}", "username": "root"}]},
  {"name": "cabling", "actions": [
     {"action": "set_switch_port_from_lldp", "translate": [["^TenGigabitEthernet (.*)$", "Te$1"]]},
     {"action": "set_physical_network", "switch": "^leaf-", "physical_network": "provisioning"}]}
]"#;

/// An inventory (the agent's, or a stranger's under discovery) through the
/// site's inspection rules: whatever it says, the switch ports the rules
/// take from it are port names.
fn inspection(runner: &mut TestRunner) -> Result<(), String> {
    let rules = tundra_engine::inspection::load(RULES).map_err(|e| e.to_string())?;
    run(runner, json(AGENT_KEYS), |facts| {
        let out = tundra_engine::inspection::evaluate(&rules, &facts);
        for i in &out.interfaces {
            if let Some(p) = &i.port {
                prop_assert!(tundra_engine::names::switch_port(p).is_ok(), "port {p:?} taken from LLDP");
            }
        }
        Ok(())
    })
}

const RULE_KEYS: &[&str] = &[
    "name",
    "conditions",
    "actions",
    "op",
    "field",
    "value",
    "key",
    "pattern",
    "action",
    "template",
    "driver",
    "address",
    "username",
    "translate",
    "switch",
    "physical_network",
];

/// Inspection rule files as an operator might get them wrong.
fn inspection_rules(runner: &mut TestRunner) -> Result<(), String> {
    let text = prop_oneof![
        json(RULE_KEYS).prop_map(|v| v.to_string()),
        mutated(vec![RULES.as_bytes().to_vec()], 2000).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    run(runner, text, |t| {
        if let Ok(rules) = tundra_engine::inspection::load(&t) {
            let _ = tundra_engine::inspection::evaluate(&rules, &serde_json::json!({"serial": "CZ1", "nics": []}));
        }
        Ok(())
    })
}

const API_KEYS: &[&str] = &[
    "name",
    "description",
    "project_id",
    "flavor_id",
    "image_id",
    "keypair_id",
    "user_data",
    "metadata",
    "placement",
    "networks",
    "network_id",
    "port_id",
    "fixed_ips",
    "address",
    "subnet_id",
    "cidr",
    "gateway",
    "dns",
    "allocation_pools",
    "start",
    "end",
    "dhcp",
    "segment",
    "segment_range",
    "kind",
    "mtu",
    "flat",
    "shared",
    "physical_network_id",
    "provisioning_segment",
    "dialect",
    "username",
    "password",
    "private_key",
    "host_key",
    "max_sessions",
    "min_interval_ms",
    "bmc",
    "driver",
    "system",
    "insecure",
    "bmc_password",
    "interfaces",
    "mac",
    "pxe",
    "switch",
    "port",
    "resource_class",
    "traits",
    "properties",
    "location",
    "site",
    "rack",
    "island",
    "maintenance",
    "action",
    "image",
    "disk_format",
    "sha256",
    "source_url",
    "public_key",
    "role",
    "expires_in",
    "user_id",
    "admin",
    "group",
    "affinity",
    "strategy",
    "credentials_version",
];

/// Every JSON body the OpenAPI document describes, as the service parses
/// it; names that parse are checked as names.
fn api_bodies(runner: &mut TestRunner) -> Result<(), String> {
    use tundra_api::{catalog, fabric, identity, machines, nodes};
    fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> bool {
        serde_json::from_value::<T>(v.clone()).is_ok()
    }
    run(runner, json(API_KEYS), |v| {
        let _ = parse::<identity::ProjectCreate>(&v)
            | parse::<identity::ProjectUpdate>(&v)
            | parse::<identity::UserCreate>(&v)
            | parse::<identity::TokenCreate>(&v)
            | parse::<identity::RoleGrant>(&v)
            | parse::<identity::QuotaSet>(&v)
            | parse::<catalog::KeypairCreate>(&v)
            | parse::<catalog::KeypairUpdate>(&v)
            | parse::<catalog::FlavorCreate>(&v)
            | parse::<catalog::FlavorUpdate>(&v)
            | parse::<catalog::ImageCreate>(&v)
            | parse::<catalog::ImageUpdate>(&v)
            | parse::<machines::MachineCreate>(&v)
            | parse::<machines::MachineUpdate>(&v)
            | parse::<machines::MachineAction>(&v)
            | parse::<nodes::NodeCreate>(&v)
            | parse::<nodes::NodeUpdate>(&v)
            | parse::<fabric::PhysicalNetworkCreate>(&v)
            | parse::<fabric::PhysicalNetworkUpdate>(&v)
            | parse::<fabric::SwitchCreate>(&v)
            | parse::<fabric::SwitchUpdate>(&v)
            | parse::<fabric::NetworkCreate>(&v)
            | parse::<fabric::NetworkUpdate>(&v)
            | parse::<fabric::SubnetCreate>(&v)
            | parse::<fabric::SubnetUpdate>(&v)
            | parse::<fabric::PortCreate>(&v)
            | parse::<fabric::PortUpdate>(&v);
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            let _ = tundra_engine::names::check(name);
        }
        if let Some(cidr) = v.get("cidr").and_then(Value::as_str) {
            let _ = tundra_engine::ipam::Cidr::parse(cidr);
        }
        Ok(())
    })
}

/// SSH public keys as users paste them: random lines, and well-formed lines
/// whose blob is length-prefixed parts of any length (empty, huge, zero).
fn ssh_keys(runner: &mut TestRunner) -> Result<(), String> {
    let kinds = prop::sample::select(vec!["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ssh-dss", "x"]);
    let parts = prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            Just(Vec::new()),
            prop::collection::vec(Just(0u8), 0..40)
        ],
        0..4,
    );
    let lying = any::<Option<u32>>();
    let structured = (kinds.clone(), kinds, parts, lying, "[ -~]{0,20}").prop_map(|(line, inner, parts, lie, c)| {
        let mut blob = Vec::new();
        blob.extend((inner.len() as u32).to_be_bytes());
        blob.extend(inner.as_bytes());
        for p in parts {
            blob.extend(lie.unwrap_or(p.len() as u32).to_be_bytes());
            blob.extend(p);
        }
        format!("{line} {} {c}", base64::engine::general_purpose::STANDARD.encode(blob))
    });
    let line = prop_oneof![any::<String>(), "[ -~\n]{0,200}", structured];
    run(runner, line, |l| {
        if let Ok(k) = tundrad::keys::parse(&l) {
            prop_assert!(k.fingerprint.starts_with("SHA256:"));
            prop_assert!(!k.normalized.contains('\n'));
        }
        Ok(())
    })
}

/// qcow2 headers: whatever passes names no other file and stays within the limit.
fn qcow2(runner: &mut TestRunner) -> Result<(), String> {
    let mut h = vec![0u8; 112];
    h[..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    h[100..104].copy_from_slice(&112u32.to_be_bytes());
    let mut v2 = h.clone();
    v2[4..8].copy_from_slice(&2u32.to_be_bytes());
    const MAX: u64 = 64 << 30;
    run(runner, mutated(vec![h, v2], 200), |b| {
        if let Ok(header) = tundra_engine::qcow2::check(&b, MAX) {
            prop_assert!(header.virtual_size <= MAX);
            prop_assert!(b[8..20].iter().all(|x| *x == 0), "a backing file passed");
            prop_assert!(header.version == 2 || b[79] & 0x04 == 0, "an external data file passed");
        }
        Ok(())
    })
}

/// Port names, from the API or a neighbour's LLDP: a name the API or any
/// dialect accepts holds nothing a CLI, shell or XML reads as syntax.
fn switch_ports(runner: &mut TestRunner) -> Result<(), String> {
    let dialects = tundra_drivers::switch::dialect::built_in();
    let syntax = |p: &str| p.chars().any(|c| c.is_control() || "\"'`$;&|<>\\(){}*?!#~^[]".contains(c));
    let name = prop_oneof![any::<String>(), "[ -~]{0,70}", "[A-Za-z0-9/.: _-]{0,70}"];
    run(runner, name, |p| {
        if tundra_engine::names::switch_port(&p).is_ok() {
            prop_assert!(!syntax(&p) && !p.contains("  "), "the API took {p:?}");
        }
        for d in dialects.values() {
            if d.check_port(&p).is_ok() {
                prop_assert!(!syntax(&p), "dialect {} took {p:?}", d.name);
                let cmds = d.port_commands(&p, 100, Some(1));
                prop_assert!(cmds.iter().all(|c| !c.contains('\n')), "{cmds:?}");
            }
        }
        Ok(())
    })
}
