//! Appliances (a Slurm cluster, Dask, JupyterHub on nodes): the rules.
//!
//! A template is data: typed [`Parameter`]s, secrets tundrad generates,
//! roles and outputs. Its texts (files, commands, outputs, usage) are
//! Jinja templates, rendered by tundrad with a sandboxed engine
//! — undefined names are errors, loops are bounded by fuel — from a
//! [`Context`]: the appliance, its parameters, every role's nodes with
//! their addresses, and (for what reaches a node only) the secrets and the
//! node itself.
//!
//! [`check_template`] refuses a template before it is stored: a binding to
//! a parameter of the wrong kind, a text that does not parse or names what
//! it cannot see (an output naming `secrets`) or a role the template does
//! not have. [`check_parameters`] fills in defaults and
//! refuses values by kind, range and pattern, and changes of immutable
//! parameters. [`role_plans`] turns parameters into what each role's nodes
//! are made with; [`node_plan`] is what a node's appliance agent applies
//! (once every role its texts read has all its nodes placed);
//! [`status`] judges roles and the appliance from the nodes' reports, and
//! [`scale_down`] picks the nodes a shrinking role gives up.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;
use tundra_api::appliances::{
    ApplianceMemberState as MemberState, AppliancePlan, ApplianceStatus as Status, ApplianceTemplateCreate, DrainTask,
    FileEncoding, OutputSpec, Parameter, ParameterKind as Kind, PlannedFile, Role, RoleStatus, SecretKind,
};
use tundra_api::nodes::Node;
use tundra_api::shares::NodeShare;
use tundra_api::{FlavorId, ImageId, NetworkId, ShareId};

/// A refusal at a JSON pointer of the request.
pub type Refusal = (String, String);

/// The most nodes one role may have.
pub const MAX_ROLE_COUNT: u32 = 999;

/// How much work one rendering may do (minijinja's fuel: about one unit
/// per instruction): generous for any configuration file, and a bound on a
/// template that loops without end.
const FUEL: u64 = 200_000;

/// The largest rendered text (a file, user data) tundrad hands a node.
pub const MAX_RENDERED: usize = 256 * 1024;

/// An appliance's node `index` of `role`: `APPLIANCE-ROLE-N`, its host name.
pub fn member_name(appliance: &str, role: &str, index: u32) -> String {
    format!("{appliance}-{role}-{index}")
}

/// The sandbox every text renders in.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    env
}

/// Render `src` with `ctx`; the error says what failed and where. The
/// output is written through a buffer that refuses to grow past
/// [`MAX_RENDERED`], so a text cannot make tundrad hold more than that of
/// output (what a single filter call makes is bounded only by the engine's
/// own limits: this is why only site admins author templates).
pub fn render(src: &str, ctx: &Value) -> Result<String, String> {
    struct Capped(Vec<u8>);
    impl std::io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0.len() + b.len() > MAX_RENDERED {
                return Err(std::io::Error::other(format!("it renders to more than {MAX_RENDERED} bytes")));
            }
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let env = environment();
    let t = env.template_from_str(src).map_err(|e| describe(&e))?;
    let mut out = Capped(Vec::new());
    t.render_captured_to(ctx, &mut out).map_err(|e| describe(&e))?;
    String::from_utf8(out.0).map_err(|e| e.to_string())
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// Where a text is used, and so what it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A role's files and commands.
    Node,
    /// A drain command: a node's scope and `leaving`.
    Drain,
    /// An output: no secrets, no node.
    Output,
    /// The usage text: the outputs instead of the roles.
    Usage,
}

impl Scope {
    fn names(self) -> &'static [&'static str] {
        match self {
            Scope::Node => &["appliance", "parameters", "secrets", "roles", "peers", "node"],
            Scope::Drain => &["appliance", "parameters", "secrets", "roles", "peers", "node", "leaving"],
            Scope::Output => &["appliance", "parameters", "roles", "peers"],
            Scope::Usage => &["appliance", "parameters", "outputs"],
        }
    }
}

/// The engine's own global functions, which every text may call.
const BUILTINS: &[&str] = &["range", "dict", "namespace", "joiner", "cycler", "lipsum", "debug"];

/// Check that `src` parses and names only what `scope` gives it; the
/// names of roles it reads (`roles.NAME…` / `roles["NAME"]…`).
fn check_text(src: &str, scope: Scope, at: &str) -> Result<BTreeSet<String>, Refusal> {
    let env = environment();
    let t = env.template_from_str(src).map_err(|e| (at.to_string(), format!("does not parse: {}", describe(&e))))?;
    let allowed = scope.names();
    let mut roles = BTreeSet::new();
    for v in t.undeclared_variables(true) {
        let root = v.split('.').next().unwrap_or_default();
        if !allowed.contains(&root) && !BUILTINS.contains(&root) {
            return Err((at.to_string(), format!("names {root:?}; a template here can use {}", allowed.join(", "))));
        }
        if root == "roles"
            && let Some(role) = v.split('.').nth(1)
        {
            roles.insert(role.to_string());
        }
    }
    Ok(roles)
}

/// What a text reads of `peers` is there: `peers.NAME` names an
/// `appliance` parameter, and an output never reads a peer's secrets.
fn check_peer_reads(src: &str, params: &BTreeMap<&str, &Parameter>, scope: Scope, at: &str) -> Result<(), Refusal> {
    // Parsed by check_text already; a text that does not is refused there.
    let env = environment();
    let Ok(t) = env.template_from_str(src) else { return Ok(()) };
    for v in t.undeclared_variables(true) {
        let mut parts = v.split('.');
        if parts.next() != Some("peers") {
            continue;
        }
        let Some(name) = parts.next() else {
            return Err((at.into(), "reads peers whole; name one: peers.NAME (an appliance parameter)".into()));
        };
        if params.get(name).is_none_or(|p| p.kind != Kind::Appliance) {
            let known: Vec<&str> =
                params.values().filter(|p| p.kind == Kind::Appliance).map(|p| p.name.as_str()).collect();
            return Err((at.into(), format!("names peers.{name}; peers are the appliance parameters: {known:?}")));
        }
        if scope == Scope::Output && parts.next() == Some("secrets") {
            return Err((at.into(), format!("an output shows no secret, not even peers.{name}'s")));
        }
    }
    Ok(())
}

/// A parameter's or secret's name: lower-case letters, digits and `_`,
/// starting with a letter (a Jinja name: `parameters.NAME`).
fn check_ident(name: &str, at: &str) -> Result<(), Refusal> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err((at.into(), format!("{name:?}: use 1–63 lower-case letters, digits and '_', starting with a letter")))
    }
}

/// A role's name: a host-name label, since it is part of its nodes' names.
fn check_role_name(name: &str, at: &str) -> Result<(), Refusal> {
    crate::names::check(name).map_err(|e| (at.to_string(), e))?;
    let ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err((at.into(), format!("{name:?}: use lower-case letters, digits and inner '-' (it is part of host names)")))
    }
}

/// An absolute path on a node, with no `..` and nothing odd in it.
fn check_path(path: &str, at: &str) -> Result<(), Refusal> {
    let ok = path.starts_with('/')
        && path.len() > 1
        && path.len() <= 4096
        && !path.ends_with('/')
        && !path.split('/').any(|p| p == ".." || p == ".")
        && !path.chars().any(|c| c.is_control() || c == '\\');
    if ok { Ok(()) } else { Err((at.into(), format!("{path:?} is not an absolute path to a file"))) }
}

/// A parameter's value, checked against it.
pub fn check_value(p: &Parameter, v: &Value) -> Result<(), String> {
    if v.is_null() {
        return if p.optional { Ok(()) } else { Err(format!("{} is required", p.name)) };
    }
    // Every typed ID parses the same way; the kind is checked where it is used.
    let id = |v: &Value| v.as_str().is_some_and(|s| s.parse::<FlavorId>().is_ok());
    match p.kind {
        Kind::Integer | Kind::Count => {
            let Some(n) = v.as_i64() else { return Err(format!("{} takes a whole number, not {v}", p.name)) };
            let (lo, hi) = match p.kind {
                Kind::Count => (p.minimum.unwrap_or(0).max(0), p.maximum.unwrap_or(MAX_ROLE_COUNT.into())),
                _ => (p.minimum.unwrap_or(i64::MIN), p.maximum.unwrap_or(i64::MAX)),
            };
            if n < lo || n > hi {
                return Err(format!("{} is {n}; it must be from {lo} to {hi}", p.name));
            }
        }
        Kind::String => {
            let Some(s) = v.as_str() else { return Err(format!("{} takes a string, not {v}", p.name)) };
            if let Some(pat) = &p.pattern {
                let re = regex::Regex::new(&format!("^(?:{pat})$")).map_err(|e| e.to_string())?;
                if !re.is_match(s) {
                    return Err(format!("{s:?} does not match {}'s pattern {pat:?}", p.name));
                }
            }
        }
        Kind::Boolean if v.is_boolean() => {}
        Kind::Boolean => return Err(format!("{} takes true or false, not {v}", p.name)),
        Kind::Flavor | Kind::Image | Kind::Network | Kind::Share | Kind::Appliance if id(v) => {}
        Kind::Appliance => return Err(format!("{} takes an appliance's ID, not {v}", p.name)),
        Kind::Flavor | Kind::Image | Kind::Network | Kind::Share => {
            return Err(format!("{} takes the ID of a {}, not {v}", p.name, p.kind));
        }
        Kind::Networks => {
            let Some(list) = v.as_array().filter(|l| l.iter().all(id)) else {
                return Err(format!("{} takes a list of network IDs, not {v}", p.name));
            };
            let mut seen = BTreeSet::new();
            if let Some(dup) = list.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(format!("{} lists network {dup} twice", p.name));
            }
        }
    }
    Ok(())
}

/// A template, checked before it is stored.
pub fn check_template(t: &ApplianceTemplateCreate) -> Result<(), Refusal> {
    crate::names::check(&t.name).map_err(|e| ("/name".to_string(), e))?;
    if t.version == 0 {
        return Err(("/version".into(), "versions start at 1".into()));
    }
    let mut params: BTreeMap<&str, &Parameter> = BTreeMap::new();
    for (i, p) in t.parameters.iter().enumerate() {
        let at = |f: &str| format!("/parameters/{i}/{f}");
        check_ident(&p.name, &at("name"))?;
        if params.insert(&p.name, p).is_some() {
            return Err((at("name"), format!("two parameters are named {:?}", p.name)));
        }
        let numeric = matches!(p.kind, Kind::Integer | Kind::Count);
        for (f, v) in [("minimum", p.minimum), ("maximum", p.maximum)] {
            if v.is_some() && !numeric {
                return Err((at(f), format!("only integer and count parameters take a {f}")));
            }
        }
        if p.kind == Kind::Count {
            let top = i64::from(MAX_ROLE_COUNT);
            if p.minimum.is_some_and(|m| !(0..=top).contains(&m)) || p.maximum.is_some_and(|m| !(0..=top).contains(&m))
            {
                return Err((at("maximum"), format!("a count is from 0 to {top}")));
            }
        }
        if let (Some(lo), Some(hi)) = (p.minimum, p.maximum)
            && lo > hi
        {
            return Err((at("minimum"), format!("minimum {lo} is above maximum {hi}")));
        }
        if let Some(pat) = &p.pattern {
            if p.kind != Kind::String {
                return Err((at("pattern"), "only string parameters take a pattern".into()));
            }
            regex::Regex::new(pat).map_err(|e| (at("pattern"), format!("not a regular expression: {e}")))?;
        }
        if let Some(d) = &p.default {
            check_value(p, d).map_err(|e| (at("default"), e))?;
        }
    }
    let mut secrets = BTreeSet::new();
    for (i, s) in t.secrets.iter().enumerate() {
        check_ident(&s.name, &format!("/secrets/{i}/name"))?;
        if !secrets.insert(s.name.as_str()) {
            return Err((format!("/secrets/{i}/name"), format!("two secrets are named {:?}", s.name)));
        }
        match (s.kind, s.bytes) {
            (SecretKind::Random, Some(b)) if (16..=1024).contains(&b) => {}
            (SecretKind::Random, Some(b)) => {
                return Err((format!("/secrets/{i}/bytes"), format!("{b} bytes; a secret has 16 to 1024")));
            }
            (SecretKind::Random, None) => {
                return Err((format!("/secrets/{i}/bytes"), "a random secret needs bytes (16 to 1024)".into()));
            }
            (SecretKind::Tls, Some(_)) => {
                return Err((
                    format!("/secrets/{i}/bytes"),
                    "a tls secret is a CA, a certificate and a key: remove bytes".into(),
                ));
            }
            (SecretKind::Tls, None) => {}
        }
    }
    if t.roles.is_empty() {
        return Err(("/roles".into(), "a template needs at least one role".into()));
    }
    let mut names = BTreeSet::new();
    for (i, r) in t.roles.iter().enumerate() {
        check_role_name(&r.name, &format!("/roles/{i}/name"))?;
        if !names.insert(r.name.as_str()) {
            return Err((format!("/roles/{i}/name"), format!("two roles are named {:?}", r.name)));
        }
    }
    let kinds: BTreeMap<&str, SecretKind> = t.secrets.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    for (i, r) in t.roles.iter().enumerate() {
        check_role(i, r, &params, &names)?;
        check_role_secrets(i, r, &kinds)?;
    }
    let mut outputs = BTreeSet::new();
    for (i, o) in t.outputs.iter().enumerate() {
        check_ident(&o.name, &format!("/outputs/{i}/name"))?;
        if !outputs.insert(o.name.as_str()) {
            return Err((format!("/outputs/{i}/name"), format!("two outputs are named {:?}", o.name)));
        }
        let read = check_text(&o.value, Scope::Output, &format!("/outputs/{i}/value"))?;
        unknown_role(&read, &names, &format!("/outputs/{i}/value"))?;
        check_peer_reads(&o.value, &params, Scope::Output, &format!("/outputs/{i}/value"))?;
    }
    check_text(&t.usage, Scope::Usage, "/usage")?;
    Ok(())
}

fn unknown_role(read: &BTreeSet<String>, names: &BTreeSet<&str>, at: &str) -> Result<(), Refusal> {
    match read.iter().find(|r| !names.contains(r.as_str())) {
        Some(r) => Err((at.into(), format!("names role {r:?}, which the template does not have"))),
        None => Ok(()),
    }
}

fn check_role(i: usize, r: &Role, params: &BTreeMap<&str, &Parameter>, names: &BTreeSet<&str>) -> Result<(), Refusal> {
    let at = |f: &str| format!("/roles/{i}/{f}");
    let bound = |name: &str, kinds: &[Kind], f: &str| -> Result<(), Refusal> {
        match params.get(name) {
            Some(p) if kinds.contains(&p.kind) => Ok(()),
            Some(p) => Err((at(f), format!("parameter {name:?} is a {}; this takes a {}", p.kind, kinds[0]))),
            None => Err((at(f), format!("there is no parameter {name:?}"))),
        }
    };
    if r.count > MAX_ROLE_COUNT {
        return Err((at("count"), format!("{} nodes; at most {MAX_ROLE_COUNT} per role", r.count)));
    }
    if let Some(c) = &r.count_parameter {
        bound(c, &[Kind::Count], "count_parameter")?;
    }
    bound(&r.flavor_parameter, &[Kind::Flavor], "flavor_parameter")?;
    bound(&r.image_parameter, &[Kind::Image], "image_parameter")?;
    for (f, name) in [("flavor_parameter", &r.flavor_parameter), ("image_parameter", &r.image_parameter)] {
        if params.get(name.as_str()).is_some_and(|p| p.optional) {
            return Err((
                at(f),
                format!("parameter {name:?} is optional; a role's nodes always need one: make it required"),
            ));
        }
    }
    for (k, n) in r.network_parameters.iter().enumerate() {
        bound(n, &[Kind::Network, Kind::Networks], &format!("network_parameters/{k}"))?;
    }
    if let Some(n) = &r.traffic_network_parameter {
        bound(n, &[Kind::Network], "traffic_network_parameter")?;
        if !r.network_parameters.contains(n) {
            return Err((at("traffic_network_parameter"), format!("{n:?} is not among the role's network_parameters")));
        }
    }
    let mut points = BTreeSet::new();
    for (k, s) in r.shares.iter().enumerate() {
        bound(&s.parameter, &[Kind::Share], &format!("shares/{k}/parameter"))?;
        crate::shares::check_mount_point(&at(&format!("shares/{k}/mount_point")), &s.mount_point)
            .map_err(|e| (e.pointer, e.detail))?;
        if !points.insert(s.mount_point.as_str()) {
            return Err((at(&format!("shares/{k}/mount_point")), format!("{} is mounted twice", s.mount_point)));
        }
    }
    let mut paths = BTreeSet::new();
    for (k, f) in r.files.iter().enumerate() {
        let fat = |x: &str| at(&format!("files/{k}/{x}"));
        check_path(&f.path, &fat("path"))?;
        if !paths.insert(f.path.as_str()) {
            return Err((fat("path"), format!("{} is written twice", f.path)));
        }
        let mode_ok = (3..=4).contains(&f.mode.len()) && u32::from_str_radix(&f.mode, 8).is_ok_and(|m| m <= 0o7777);
        if !mode_ok {
            return Err((fat("mode"), format!("{:?} is not an octal mode such as 0644", f.mode)));
        }
        let owner_ok = f.owner.split_once(':').is_some_and(|(u, g)| {
            [u, g].iter().all(|x| {
                !x.is_empty() && x.len() <= 32 && x.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            })
        });
        if !owner_ok {
            return Err((fat("owner"), format!("{:?} is not USER:GROUP", f.owner)));
        }
        let read = check_text(&f.content, Scope::Node, &fat("content"))?;
        unknown_role(&read, names, &fat("content"))?;
        check_peer_reads(&f.content, params, Scope::Node, &fat("content"))?;
    }
    for (f, text) in [("reload", &r.reload), ("ready", &r.ready)] {
        if let Some(t) = text {
            let read = check_text(t, Scope::Node, &at(f))?;
            unknown_role(&read, names, &at(f))?;
            check_peer_reads(t, params, Scope::Node, &at(f))?;
        }
    }
    if let Some(d) = &r.drain {
        if !names.contains(d.role.as_str()) {
            return Err((at("drain/role"), format!("{:?} is not a role of the template", d.role)));
        }
        let read = check_text(&d.command, Scope::Drain, &at("drain/command"))?;
        unknown_role(&read, names, &at("drain/command"))?;
        check_peer_reads(&d.command, params, Scope::Drain, &at("drain/command"))?;
    }
    Ok(())
}

/// What a role's texts read of `secrets` is there: a secret the template
/// declares, and of a `tls` one its `ca`, `cert` or `key` (a random one is
/// a string). A typo is refused when the template is made, not when a
/// node's files first render.
fn check_role_secrets(i: usize, r: &Role, kinds: &BTreeMap<&str, SecretKind>) -> Result<(), Refusal> {
    let at = |f: &str| format!("/roles/{i}/{f}");
    let mut texts: Vec<(String, &str)> =
        r.files.iter().enumerate().map(|(k, f)| (at(&format!("files/{k}/content")), f.content.as_str())).collect();
    texts.extend(r.reload.as_deref().map(|t| (at("reload"), t)));
    texts.extend(r.ready.as_deref().map(|t| (at("ready"), t)));
    texts.extend(r.drain.as_ref().map(|d| (at("drain/command"), d.command.as_str())));
    let env = environment();
    for (pointer, src) in texts {
        // Parsed by check_role already; a text that does not is refused there.
        let Ok(t) = env.template_from_str(src) else { continue };
        for v in t.undeclared_variables(true) {
            let mut parts = v.split('.');
            if parts.next() != Some("secrets") {
                continue;
            }
            let Some(name) = parts.next() else { continue };
            let field = parts.next();
            match (kinds.get(name), field) {
                (None, _) => {
                    let known: Vec<&str> = kinds.keys().copied().collect();
                    return Err((pointer, format!("names secret {name:?}; the template's secrets are {known:?}")));
                }
                (Some(SecretKind::Tls), Some("ca" | "cert" | "key")) | (Some(SecretKind::Random), None) => {}
                (Some(SecretKind::Tls), Some(f)) => {
                    return Err((pointer, format!("secrets.{name}.{f}: a tls secret has ca, cert and key")));
                }
                (Some(SecretKind::Tls), None) => {
                    return Err((pointer, format!("secrets.{name} is a tls secret: use .ca, .cert or .key")));
                }
                (Some(SecretKind::Random), Some(f)) => {
                    return Err((pointer, format!("secrets.{name}.{f}: a random secret is one base64 string")));
                }
            }
        }
    }
    Ok(())
}

/// An appliance's parameters, checked: every given one known and valid,
/// defaults filled in, and (on a change, `old` being what it has now) no
/// immutable one changed.
pub fn check_parameters(
    params: &[Parameter],
    given: &BTreeMap<String, Value>,
    old: Option<&BTreeMap<String, Value>>,
) -> Result<BTreeMap<String, Value>, Refusal> {
    if let Some(k) = given.keys().find(|k| !params.iter().any(|p| &p.name == *k)) {
        let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        return Err((
            format!("/parameters/{k}"),
            format!("the template has no parameter {k:?}; it has: {}", known.join(", ")),
        ));
    }
    let mut out = BTreeMap::new();
    for p in params {
        let at = format!("/parameters/{}", p.name);
        let v = given.get(&p.name).or(p.default.as_ref()).cloned().unwrap_or(Value::Null);
        check_value(p, &v).map_err(|e| (at.clone(), e))?;
        if p.immutable
            && let Some(was) = old.and_then(|o| o.get(&p.name))
            && *was != v
        {
            return Err((
                at,
                format!(
                    "{} is immutable: it was {was} and cannot become {v}; make a new appliance for another value",
                    p.name
                ),
            ));
        }
        out.insert(p.name.clone(), v);
    }
    Ok(out)
}

/// What a role's nodes are made with, from checked parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePlan {
    pub name: String,
    pub count: u32,
    pub flavor_id: FlavorId,
    pub image_id: ImageId,
    /// Beyond provisioning, in order.
    pub networks: Vec<NetworkId>,
    /// The network whose address is each node's `address`.
    pub traffic_network: Option<NetworkId>,
    pub shares: Vec<NodeShare>,
    pub spread: bool,
}

fn ids<T: std::str::FromStr>(v: Option<&Value>) -> Vec<T> {
    let one = |v: &Value| v.as_str().and_then(|s| s.parse().ok());
    match v {
        Some(Value::Array(l)) => l.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Each role's plan. `params` went through [`check_parameters`] against
/// the same template, so every binding is there and of its kind.
pub fn role_plans(roles: &[Role], params: &BTreeMap<String, Value>) -> Vec<RolePlan> {
    roles
        .iter()
        .map(|r| {
            let count = match &r.count_parameter {
                Some(c) => params.get(c).and_then(Value::as_u64).map_or(0, |n| n.min(MAX_ROLE_COUNT.into()) as u32),
                None => r.count,
            };
            let mut networks: Vec<NetworkId> = Vec::new();
            for n in &r.network_parameters {
                for id in ids(params.get(n)) {
                    if !networks.contains(&id) {
                        networks.push(id);
                    }
                }
            }
            RolePlan {
                name: r.name.clone(),
                count,
                flavor_id: ids(params.get(&r.flavor_parameter)).into_iter().next().expect("a checked flavor"),
                image_id: ids(params.get(&r.image_parameter)).into_iter().next().expect("a checked image"),
                networks,
                traffic_network: r
                    .traffic_network_parameter
                    .as_ref()
                    .and_then(|n| ids(params.get(n)).into_iter().next()),
                shares: r
                    .shares
                    .iter()
                    .filter_map(|s| {
                        let id: ShareId = ids(params.get(&s.parameter)).into_iter().next()?;
                        Some(NodeShare { share_id: id, mount_point: s.mount_point.clone(), access: s.access })
                    })
                    .collect(),
                spread: r.spread,
            }
        })
        .collect()
}

/// A node as templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub name: String,
    pub role: String,
    pub index: u32,
    /// On the role's traffic network.
    pub address: Option<String>,
    /// Network ID → address, provisioning included.
    pub addresses: BTreeMap<String, String>,
}

/// A role as templates see it: the nodes it should have, and those it has
/// that are not leaving (in the order they were made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleView {
    pub count: u32,
    pub nodes: Vec<NodeView>,
}

/// Node `n` as templates see it: its address on `traffic` (else on its
/// first network, else its provisioning address) and every address by
/// network ID (`provisioning` for the provisioning network). `ports` are
/// its networks' addresses, in the order of its networks.
pub fn node_view(
    n: &Node,
    ports: &[(NetworkId, String)],
    role: &str,
    index: u32,
    traffic: Option<NetworkId>,
) -> NodeView {
    let mut addresses = BTreeMap::new();
    if let Some(a) = n.addresses.iter().find(|a| a.network == PROVISIONING).and_then(|a| a.address.clone()) {
        addresses.insert(PROVISIONING.to_string(), a);
    }
    let mut first = None;
    for (net, a) in ports {
        first.get_or_insert_with(|| a.clone());
        addresses.insert(net.to_string(), a.clone());
    }
    let address = match traffic {
        Some(t) => addresses.get(&t.to_string()).cloned(),
        None => first.or_else(|| addresses.get(PROVISIONING).cloned()),
    };
    NodeView { name: n.name.clone(), role: role.into(), index, address, addresses }
}

/// The provisioning network's name in a node's addresses.
const PROVISIONING: &str = "provisioning";

/// The appliance agent every node of an appliance runs (python3, which
/// cloud-init itself needs).
pub const AGENT_SCRIPT: &str = include_str!("tundra-appliance.py");

/// An appliance node's user data: the appliance agent as a service that
/// restarts, asking the metadata service at `metadata_base`
/// (`http://ADDRESS:PORT/openstack/latest`).
pub fn agent_user_data(metadata_base: &str) -> String {
    let y = crate::shares::y;
    let unit = format!(
        "[Unit]\nDescription=Keep this node's appliance files and report it ready, as tundrad says\n\
         After=network-online.target\nWants=network-online.target\n\n[Service]\n\
         ExecStart=/usr/bin/python3 /usr/local/sbin/tundra-appliance {metadata_base}\nRestart=always\nRestartSec=5\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    let mut out = String::from("#cloud-config\n# tundrad: the node's appliance agent\nwrite_files:\n");
    for (path, mode, content) in [
        ("/usr/local/sbin/tundra-appliance", "0755", AGENT_SCRIPT.to_string()),
        ("/etc/systemd/system/tundra-appliance.service", "0644", unit),
    ] {
        out.push_str(&format!(
            "  - path: {path}\n    permissions: '{mode}'\n    owner: root:root\n    content: {}\n",
            y(&content)
        ));
    }
    out.push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, enable, --now, tundra-appliance.service]\n");
    out
}

/// What every text of an appliance renders from (secrets and the node are
/// added only for what goes to a node).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Context {
    pub appliance: ApplianceView,
    pub parameters: BTreeMap<String, Value>,
    pub roles: BTreeMap<String, RoleView>,
    /// Each `appliance` parameter's appliance (`null` when not given).
    pub peers: BTreeMap<String, Option<PeerView>>,
}

/// An appliance another one joins (`peers.NAME`), as the joining
/// appliance's texts see it; its secrets are added only for what goes to a
/// node of the joining appliance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    pub appliance: ApplianceView,
    pub parameters: BTreeMap<String, Value>,
    pub roles: BTreeMap<String, RoleView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplianceView {
    pub id: String,
    pub name: String,
    pub project: String,
}

impl Context {
    fn with(&self, extra: &[(&str, Value)]) -> Value {
        let mut v = serde_json::to_value(self).expect("a context is JSON");
        let m = v.as_object_mut().expect("an object");
        for (k, x) in extra {
            m.insert((*k).to_string(), x.clone());
        }
        v
    }

    /// Whether every node of each of `roles`, and of each `(peer, role)`
    /// in `peer_roles`, exists and has its address.
    pub fn placed(&self, roles: &[String], peer_roles: &BTreeSet<(String, String)>) -> Result<(), String> {
        let placed = |r: &str, v: &RoleView, whose: &str| {
            let with = v.nodes.iter().filter(|n| n.address.is_some()).count();
            if with < v.count as usize {
                return Err(format!("waiting for {whose}role {r}'s nodes ({with} of {} placed)", v.count));
            }
            Ok(())
        };
        for r in roles {
            let Some(v) = self.roles.get(r) else { continue };
            placed(r, v, "")?;
        }
        for (name, r) in peer_roles {
            let Some(Some(p)) = self.peers.get(name) else { continue };
            let Some(v) = p.roles.get(r) else { continue };
            placed(r, v, &format!("peer {}'s ", p.appliance.name))?;
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(x: &T) -> Value {
    serde_json::to_value(x).expect("a view is JSON")
}

/// 64-bit FNV-1a: a generation tag (a node compares it; nothing trusts it).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The peers' roles a role's texts read (`peers.NAME.roles.ROLE…`), as
/// (peer, role): its nodes wait until those are placed.
pub fn peer_reads(role: &Role) -> BTreeSet<(String, String)> {
    let env = environment();
    let mut out = BTreeSet::new();
    for t in texts(role) {
        let Ok(t) = env.template_from_str(t) else { continue };
        for v in t.undeclared_variables(true) {
            let p: Vec<&str> = v.split('.').collect();
            if let ["peers", name, "roles", r, ..] = p.as_slice() {
                out.insert((name.to_string(), r.to_string()));
            }
        }
    }
    out
}

/// The roles a role's texts read (its nodes wait until those are placed).
pub fn reads(role: &Role) -> BTreeSet<String> {
    texts(role).filter_map(|t| check_text(t, Scope::Drain, "").ok()).flatten().collect()
}

/// Every text of a role: its files' contents, reload, ready and drain.
fn texts(role: &Role) -> impl Iterator<Item = &String> {
    let texts = role.files.iter().map(|f| &f.content).chain(role.reload.iter()).chain(role.ready.iter());
    texts.chain(role.drain.iter().map(|d| &d.command))
}

/// Why a node has no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A role it reads has nodes without addresses yet: ask again later.
    Waiting(String),
    /// A text does not render (its template and its parameters disagree).
    Failed(String),
}

/// What node `me` of `role` applies now: its files and commands rendered,
/// and the leaving nodes it drains.
pub fn node_plan(
    role: &Role,
    ctx: &Context,
    secrets: &Secrets,
    me: &NodeView,
    leaving: &[NodeView],
) -> Result<AppliancePlan, PlanError> {
    let reads: Vec<String> = reads(role).into_iter().collect();
    ctx.placed(&reads, &peer_reads(role)).map_err(PlanError::Waiting)?;
    rendered(role, ctx, secrets, me, leaving).map_err(PlanError::Failed)
}

/// The secrets a node's texts see: its appliance's (`secrets.NAME`) and
/// each peer's (`peers.PARAMETER.secrets.NAME`), opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets {
    pub own: BTreeMap<String, Value>,
    pub peers: BTreeMap<String, BTreeMap<String, Value>>,
}

fn rendered(
    role: &Role,
    ctx: &Context,
    secrets: &Secrets,
    me: &NodeView,
    leaving: &[NodeView],
) -> Result<AppliancePlan, String> {
    use base64::Engine as _;
    let mut v = ctx.with(&[("secrets", serde_json::to_value(&secrets.own).expect("json")), ("node", to_json(me))]);
    for (name, s) in &secrets.peers {
        if let Some(peer) = v["peers"].get_mut(name).and_then(Value::as_object_mut) {
            peer.insert("secrets".into(), serde_json::to_value(s).expect("json"));
        }
    }
    let mut files = Vec::new();
    for f in &role.files {
        let text = render(&f.content, &v).map_err(|e| format!("{}: {e}", f.path))?;
        let bytes = match f.encoding {
            FileEncoding::Text => text.into_bytes(),
            FileEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("{}: its content is not base64: {e}", f.path))?,
        };
        files.push(PlannedFile {
            path: f.path.clone(),
            mode: f.mode.clone(),
            owner: f.owner.clone(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        });
    }
    let cmd = |what: &str, t: &Option<String>| -> Result<Option<String>, String> {
        t.as_ref().map(|t| render(t, &v).map_err(|e| format!("{what}: {e}"))).transpose()
    };
    let reload = cmd("reload", &role.reload)?;
    let ready = cmd("ready", &role.ready)?;
    let mut drain = Vec::new();
    if let Some(d) = &role.drain {
        for l in leaving.iter().filter(|l| l.role == d.role) {
            let mut lv = v.clone();
            lv.as_object_mut().expect("an object").insert("leaving".into(), to_json(l));
            let command = render(&d.command, &lv).map_err(|e| format!("drain {}: {e}", l.name))?;
            drain.push(DrainTask { node: l.name.clone(), command });
        }
    }
    // The generation covers what the node applies, not the drain list:
    // draining another node is no reason to reload this one.
    let applied = serde_json::to_vec(&(&files, &reload, &ready)).expect("json");
    Ok(AppliancePlan {
        appliance: ctx.appliance.name.clone(),
        role: role.name.clone(),
        node: me.name.clone(),
        generation: format!("{:016x}", fnv(&applied)),
        files,
        reload,
        ready,
        drain,
    })
}

/// The outputs, rendered; an output that cannot render yet (a role with no
/// address so far) is left out.
pub fn outputs(specs: &[OutputSpec], ctx: &Context) -> BTreeMap<String, String> {
    let v = ctx.with(&[]);
    specs.iter().filter_map(|o| render(&o.value, &v).ok().map(|x| (o.name.clone(), x))).collect()
}

/// The usage text, rendered from the outputs (none while an output is missing).
pub fn usage(src: &str, ctx: &Context, specs: &[OutputSpec], outputs: &BTreeMap<String, String>) -> Option<String> {
    if specs.iter().any(|o| !outputs.contains_key(&o.name)) {
        return None;
    }
    let v = serde_json::json!({
        "appliance": ctx.appliance,
        "parameters": ctx.parameters,
        "outputs": outputs,
    });
    render(src, &v).ok()
}

/// A node of the appliance, as tundrad knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: String,
    pub index: u32,
    pub state: MemberState,
    pub reason: Option<String>,
}

/// The nodes a role shrinking to `keep` gives up: failed ones first, then
/// those not ready, then the newest.
pub fn scale_down<'a>(members: &'a [Member], role: &str, keep: usize) -> Vec<&'a str> {
    let mut live: Vec<&Member> = members.iter().filter(|m| m.role == role && m.state != MemberState::Leaving).collect();
    if live.len() <= keep {
        return Vec::new();
    }
    let rank = |m: &Member| match m.state {
        MemberState::Failed => 0,
        MemberState::Deploying | MemberState::Configuring => 1,
        _ => 2,
    };
    live.sort_by_key(|m| (rank(m), std::cmp::Reverse(m.index)));
    live.iter().take(live.len() - keep).map(|m| m.name.as_str()).collect()
}

/// The roles' and the appliance's status. `counts` are the roles (in the
/// template's order) and how many nodes each should have; `settled` says
/// the appliance has been active before (so work now is an update).
pub fn status(
    counts: &[(String, u32)],
    members: &[Member],
    settled: bool,
) -> (Status, Option<String>, Vec<RoleStatus>) {
    let busy = if settled { Status::Updating } else { Status::Creating };
    let mut roles = Vec::new();
    for (name, count) in counts {
        let mine: Vec<&Member> = members.iter().filter(|m| &m.role == name).collect();
        let ready = mine.iter().filter(|m| m.state == MemberState::Ready).count() as u32;
        let failed: Vec<String> = mine
            .iter()
            .filter(|m| m.state == MemberState::Failed)
            .map(|m| format!("{} failed: {}", m.name, m.reason.as_deref().unwrap_or("no reason given")))
            .collect();
        let leaving: Vec<&str> =
            mine.iter().filter(|m| m.state == MemberState::Leaving).map(|m| m.name.as_str()).collect();
        let waiting: Vec<String> = mine
            .iter()
            .filter(|m| matches!(m.state, MemberState::Deploying | MemberState::Configuring))
            .map(|m| format!("{} ({})", m.name, m.state))
            .collect();
        let live = mine.len() - leaving.len();
        let (status, reason) = if !failed.is_empty() {
            (Status::Degraded, Some(failed.join("; ")))
        } else if !leaving.is_empty() {
            (busy, Some(format!("draining {}", leaving.join(", "))))
        } else if ready == *count && live == *count as usize {
            (Status::Active, None)
        } else if !waiting.is_empty() {
            (busy, Some(format!("waiting for {}", waiting.join(", "))))
        } else {
            (busy, Some(format!("{ready} of {count} nodes ready")))
        };
        roles.push(RoleStatus { name: name.clone(), count: *count, ready, status, reason });
    }
    let pick = |s: Status| roles.iter().filter(|r| r.status == s).collect::<Vec<_>>();
    let reasons = |rs: Vec<&RoleStatus>| {
        Some(
            rs.iter()
                .map(|r| format!("{}: {}", r.name, r.reason.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    let (s, why) = if !pick(Status::Degraded).is_empty() {
        (Status::Degraded, reasons(pick(Status::Degraded)))
    } else if !pick(busy).is_empty() {
        (busy, reasons(pick(busy)))
    } else {
        (Status::Active, None)
    };
    (s, why, roles)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FLAVOR: &str = "0190d6a0-0000-7000-8000-000000000001";
    const IMAGE: &str = "0190d6a0-0000-7000-8000-000000000002";
    const NET_A: &str = "0190d6a0-0000-7000-8000-00000000000a";
    const NET_B: &str = "0190d6a0-0000-7000-8000-00000000000b";
    const SHARE: &str = "0190d6a0-0000-7000-8000-0000000000f0";

    /// A small Slurm platform, as `modules/openhpc` declares one.
    fn slurm() -> ApplianceTemplateCreate {
        serde_json::from_value(json!({
            "name": "slurm", "version": 1,
            "parameters": [
                {"name": "cluster_name", "kind": "string", "pattern": "[a-z][a-z0-9]{0,39}", "immutable": true},
                {"name": "compute_count", "kind": "count", "default": 2, "maximum": 64},
                {"name": "flavor", "kind": "flavor"},
                {"name": "image", "kind": "image"},
                {"name": "networks", "kind": "networks", "default": []},
                {"name": "slurm_network", "kind": "network"},
                {"name": "home", "kind": "share", "optional": true},
            ],
            "secrets": [{"name": "munge_key", "bytes": 128}],
            "roles": [
                {"name": "login", "flavor_parameter": "flavor", "image_parameter": "image",
                 "network_parameters": ["slurm_network", "networks"], "traffic_network_parameter": "slurm_network",
                 "shares": [{"parameter": "home", "mount_point": "/home"}],
                 "files": [
                    {"path": "/etc/munge/munge.key", "mode": "0400", "owner": "munge:munge", "encoding": "base64",
                     "content": "{{ secrets.munge_key }}"},
                    {"path": "/etc/slurm/slurm.conf",
                     "content": "ClusterName={{ parameters.cluster_name }}\nSlurmctldHost={{ node.name }}({{ node.address }})\n"}
                 ],
                 "reload": "systemctl restart munge && (systemctl is-active -q slurmctld && scontrol reconfigure || systemctl start slurmctld)",
                 "ready": "scontrol ping",
                 "drain": {"role": "compute", "command": "scontrol update nodename={{ leaving.name }} state=drain reason=scale-down"}},
                {"name": "compute", "count_parameter": "compute_count", "flavor_parameter": "flavor",
                 "image_parameter": "image", "network_parameters": ["slurm_network"],
                 "shares": [{"parameter": "home", "mount_point": "/home"}],
                 "files": [{"path": "/etc/munge/munge.key", "mode": "0400", "owner": "munge:munge", "encoding": "base64",
                            "content": "{{ secrets.munge_key }}"},
                           {"path": "/etc/default/slurmd",
                            "content": "SLURMD_OPTIONS=\"--conf-server {{ roles.login.nodes[0].address }}\"\n"}],
                 "reload": "systemctl restart munge slurmd", "ready": "systemctl is-active slurmd"}
            ],
            "outputs": [
                {"name": "login_address", "value": "{{ roles.login.nodes[0].address }}"},
                {"name": "ssh_command", "value": "ssh debian@{{ roles.login.nodes[0].address }}"}
            ],
            "usage": "Log in with `{{ outputs.ssh_command }}` and run `sinfo`."
        }))
        .unwrap()
    }

    fn given(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn good() -> BTreeMap<String, Value> {
        given(json!({"cluster_name": "astro", "flavor": FLAVOR, "image": IMAGE, "slurm_network": NET_A,
                     "networks": [NET_B, NET_A], "home": SHARE}))
    }

    fn refused(t: ApplianceTemplateCreate) -> Refusal {
        check_template(&t).expect_err("refused")
    }

    /// Every template a module ships (`modules/*/template/*.json`) is one
    /// tundrad takes: what a site admin publishes is not refused at apply.
    #[test]
    fn every_module_template_passes_the_checks() {
        let modules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules");
        let mut seen = Vec::new();
        for m in std::fs::read_dir(&modules).unwrap() {
            let dir = m.unwrap().path().join("template");
            for f in std::fs::read_dir(&dir).into_iter().flatten() {
                let f = f.unwrap().path();
                if f.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
                spec["name"] = json!("t");
                spec["version"] = json!(1);
                let t: ApplianceTemplateCreate =
                    serde_json::from_value(spec).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                check_template(&t).unwrap_or_else(|(at, e)| panic!("{}: {at}: {e}", f.display()));
                seen.push(f.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        seen.sort();
        assert!(seen.contains(&"slurm.json".to_string()), "the walk found the modules' templates: {seen:?}");
    }

    #[test]
    fn a_good_template_passes_and_each_mistake_is_refused_at_its_field() {
        check_template(&slurm()).unwrap();
        type Change = Box<dyn Fn(&mut ApplianceTemplateCreate)>;
        let cases: Vec<(&str, Change)> = vec![
            ("/version", Box::new(|t| t.version = 0)),
            ("/parameters/1/name", Box::new(|t| t.parameters[1].name = "cluster_name".into())),
            ("/parameters/0/name", Box::new(|t| t.parameters[0].name = "Cluster".into())),
            ("/parameters/1/default", Box::new(|t| t.parameters[1].default = Some(json!(65)))),
            ("/parameters/0/pattern", Box::new(|t| t.parameters[0].pattern = Some("(".into()))),
            ("/parameters/2/minimum", Box::new(|t| t.parameters[2].minimum = Some(1))),
            ("/secrets/0/bytes", Box::new(|t| t.secrets[0].bytes = Some(8))),
            ("/secrets/0/bytes", Box::new(|t| t.secrets[0].bytes = None)),
            ("/secrets/0/bytes", Box::new(|t| t.secrets[0].kind = SecretKind::Tls)),
            ("/roles/0/files/0/content", Box::new(|t| t.roles[0].files[0].content = "{{ secrets.munge }}".into())),
            (
                "/roles/0/files/0/content",
                Box::new(|t| t.roles[0].files[0].content = "{{ secrets.munge_key.ca }}".into()),
            ),
            (
                "/roles/0/files/0/content",
                Box::new(|t| {
                    t.secrets[0] = serde_json::from_value(json!({"name": "munge_key", "kind": "tls"})).unwrap();
                }),
            ),
            ("/roles/1/count_parameter", Box::new(|t| t.roles[1].count_parameter = Some("flavor".into()))),
            ("/roles/0/image_parameter", Box::new(|t| t.roles[0].image_parameter = "nope".into())),
            ("/roles/0/flavor_parameter", Box::new(|t| t.parameters[2].optional = true)),
            ("/roles/1/network_parameters/0", Box::new(|t| t.roles[1].network_parameters[0] = "home".into())),
            ("/roles/1/name", Box::new(|t| t.roles[1].name = "login".into())),
            ("/roles/1/name", Box::new(|t| t.roles[1].name = "Compute".into())),
            (
                "/roles/0/traffic_network_parameter",
                Box::new(|t| {
                    t.roles[0].network_parameters.remove(0);
                }),
            ),
            ("/roles/0/shares/0/mount_point", Box::new(|t| t.roles[0].shares[0].mount_point = "/etc".into())),
            ("/roles/0/files/1/path", Box::new(|t| t.roles[0].files[1].path = "/etc/munge/munge.key".into())),
            ("/roles/0/files/1/path", Box::new(|t| t.roles[0].files[1].path = "etc/slurm.conf".into())),
            ("/roles/0/files/0/mode", Box::new(|t| t.roles[0].files[0].mode = "rw-r--r--".into())),
            ("/roles/0/files/0/owner", Box::new(|t| t.roles[0].files[0].owner = "munge".into())),
            ("/roles/0/files/1/content", Box::new(|t| t.roles[0].files[1].content = "{{ oops".into())),
            ("/roles/0/files/1/content", Box::new(|t| t.roles[0].files[1].content = "{{ params.x }}".into())),
            ("/roles/0/files/1/content", Box::new(|t| t.roles[0].files[1].content = "{{ roles.gpu.count }}".into())),
            ("/roles/0/ready", Box::new(|t| t.roles[0].ready = Some("{{ leaving.name }}".into()))),
            ("/roles/0/drain/role", Box::new(|t| t.roles[0].drain.as_mut().unwrap().role = "gpu".into())),
            ("/outputs/0/value", Box::new(|t| t.outputs[0].value = "{{ secrets.munge_key }}".into())),
            ("/outputs/1/name", Box::new(|t| t.outputs[1].name = "login_address".into())),
            ("/usage", Box::new(|t| t.usage = "{{ roles.login.count }}".into())),
            ("/roles", Box::new(|t| t.roles.clear())),
        ];
        for (want, change) in cases {
            let mut t = slurm();
            change(&mut t);
            let (at, why) = refused(t);
            assert_eq!(at, want, "{why}");
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn parameters_take_defaults_and_are_refused_by_kind_range_pattern_and_immutability() {
        let t = slurm();
        let p = check_parameters(&t.parameters, &good(), None).unwrap();
        assert_eq!(p["compute_count"], json!(2));
        assert_eq!(p["home"], json!(SHARE));
        let mut no_home = good();
        no_home.remove("home");
        assert_eq!(check_parameters(&t.parameters, &no_home, None).unwrap()["home"], Value::Null);

        let bad = |k: &str, v: Value| {
            let mut g = good();
            g.insert(k.into(), v);
            check_parameters(&t.parameters, &g, None).expect_err("refused")
        };
        assert_eq!(bad("compute_count", json!(65)).0, "/parameters/compute_count");
        assert_eq!(bad("compute_count", json!(-1)).0, "/parameters/compute_count");
        assert_eq!(bad("compute_count", json!("3")).0, "/parameters/compute_count");
        assert_eq!(bad("cluster_name", json!("Astro")).0, "/parameters/cluster_name");
        assert_eq!(bad("flavor", json!("m1.large")).0, "/parameters/flavor");
        assert_eq!(bad("networks", json!([NET_B, NET_B])).0, "/parameters/networks");
        assert_eq!(bad("nodes", json!(3)).0, "/parameters/nodes");
        let mut missing = good();
        missing.remove("image");
        let (at, why) = check_parameters(&t.parameters, &missing, None).unwrap_err();
        assert_eq!((at.as_str(), why.as_str()), ("/parameters/image", "image is required"));

        // In place: a count changes, the cluster's name does not.
        let old = check_parameters(&t.parameters, &good(), None).unwrap();
        let mut more = good();
        more.insert("compute_count".into(), json!(4));
        assert_eq!(check_parameters(&t.parameters, &more, Some(&old)).unwrap()["compute_count"], json!(4));
        let mut renamed = good();
        renamed.insert("cluster_name".into(), json!("radio"));
        let (at, why) = check_parameters(&t.parameters, &renamed, Some(&old)).unwrap_err();
        assert_eq!(at, "/parameters/cluster_name");
        assert!(why.contains("immutable"), "{why}");
    }

    fn view(name: &str, role: &str, index: u32, address: Option<&str>) -> NodeView {
        NodeView {
            name: name.into(),
            role: role.into(),
            index,
            address: address.map(str::to_string),
            addresses: address.map(|a| (NET_A.to_string(), a.to_string())).into_iter().collect(),
        }
    }

    fn context(computes: &[&str]) -> Context {
        let t = slurm();
        let params = check_parameters(&t.parameters, &good(), None).unwrap();
        let mut roles = BTreeMap::new();
        roles.insert(
            "login".into(),
            RoleView { count: 1, nodes: vec![view("hpc-login-0", "login", 0, Some("10.1.0.5"))] },
        );
        let nodes = computes.iter().enumerate().map(|(i, n)| view(n, "compute", i as u32, Some("10.1.0.9"))).collect();
        roles.insert("compute".into(), RoleView { count: 2, nodes });
        Context {
            appliance: ApplianceView { id: "a".into(), name: "hpc".into(), project: "astro".into() },
            parameters: params,
            roles,
            peers: BTreeMap::new(),
        }
    }

    #[test]
    fn roles_take_their_counts_networks_and_shares_from_the_parameters() {
        let t = slurm();
        let mut g = good();
        g.insert("compute_count".into(), json!(3));
        let plans = role_plans(&t.roles, &check_parameters(&t.parameters, &g, None).unwrap());
        assert_eq!(plans[0].count, 1);
        assert_eq!(plans[1].count, 3);
        // The traffic network first, then the list, each once.
        let (a, b): (NetworkId, NetworkId) = (NET_A.parse().unwrap(), NET_B.parse().unwrap());
        assert_eq!(plans[0].networks, [a, b]);
        assert_eq!(plans[0].traffic_network, Some(a));
        assert_eq!(plans[0].shares[0].mount_point, "/home");
        g.remove("home");
        let plans = role_plans(&t.roles, &check_parameters(&t.parameters, &g, None).unwrap());
        assert!(plans[0].shares.is_empty(), "an unset share parameter mounts nothing");
    }

    #[test]
    fn a_node_plan_renders_files_commands_and_drains_and_its_generation_follows_content() {
        use base64::Engine as _;
        let t = slurm();
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 128]);
        let secrets = Secrets { own: [("munge_key".to_string(), json!(key))].into(), ..Default::default() };
        let ctx = context(&["hpc-compute-0", "hpc-compute-1"]);
        let me = view("hpc-login-0", "login", 0, Some("10.1.0.5"));
        let leaving = [view("hpc-compute-1", "compute", 1, Some("10.1.0.9"))];
        let plan = node_plan(&t.roles[0], &ctx, &secrets, &me, &leaving).unwrap();
        assert_eq!(plan.files[0].content_base64, key, "the key is written decoded, so its base64 is the secret's");
        let conf = base64::engine::general_purpose::STANDARD.decode(&plan.files[1].content_base64).unwrap();
        assert_eq!(String::from_utf8(conf).unwrap(), "ClusterName=astro\nSlurmctldHost=hpc-login-0(10.1.0.5)\n");
        assert_eq!(plan.drain.len(), 1);
        assert_eq!(plan.drain[0].command, "scontrol update nodename=hpc-compute-1 state=drain reason=scale-down");
        // Draining changes nothing the node applies; a new name does.
        let again = node_plan(&t.roles[0], &ctx, &secrets, &me, &[]).unwrap();
        assert_eq!(again.generation, plan.generation);
        let mut other = ctx.clone();
        other.parameters.insert("cluster_name".into(), json!("radio"));
        assert_ne!(node_plan(&t.roles[0], &other, &secrets, &me, &[]).unwrap().generation, plan.generation);

        // A compute node reads the login node's address: it waits until
        // that is placed, then renders it.
        let compute = view("hpc-compute-0", "compute", 0, Some("10.1.0.9"));
        assert_eq!(reads(&t.roles[1]), BTreeSet::from(["login".to_string()]));
        let plan = node_plan(&t.roles[1], &ctx, &secrets, &compute, &[]).unwrap();
        let default = base64::engine::general_purpose::STANDARD.decode(&plan.files[1].content_base64).unwrap();
        assert_eq!(String::from_utf8(default).unwrap(), "SLURMD_OPTIONS=\"--conf-server 10.1.0.5\"\n");
        let mut early = ctx.clone();
        early.roles.get_mut("login").unwrap().nodes[0].address = None;
        match node_plan(&t.roles[1], &early, &secrets, &compute, &[]) {
            Err(PlanError::Waiting(why)) => assert!(why.contains("role login"), "{why}"),
            other => panic!("{other:?}"),
        }

        // A rendering that fails says which text and why; one that would
        // not end runs out of fuel.
        let mut broken = t.roles[0].clone();
        broken.files[1].content = "{{ roles.login.nodes[3].address }}".into();
        let Err(PlanError::Failed(e)) = node_plan(&broken, &ctx, &secrets, &me, &[]) else { panic!("renders") };
        assert!(e.starts_with("/etc/slurm/slurm.conf: "), "{e}");
        broken.files[1].content =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}".into();
        let Err(PlanError::Failed(e)) = node_plan(&broken, &ctx, &secrets, &me, &[]) else { panic!("renders") };
        assert!(e.contains("fuel"), "{e}");
        // Output is capped as it is written, not after.
        broken.files[1].content = "{% for a in range(40) %}{{ 'x' * 10000 }}{% endfor %}".into();
        let Err(PlanError::Failed(e)) = node_plan(&broken, &ctx, &secrets, &me, &[]) else { panic!("renders") };
        assert!(e.contains("more than 262144 bytes"), "{e}");
    }

    /// A hub that joins a Slurm appliance: it names it with an `appliance`
    /// parameter and reads it as `peers.slurm`.
    fn hub() -> ApplianceTemplateCreate {
        serde_json::from_value(json!({
            "name": "hub", "version": 1,
            "parameters": [
                {"name": "flavor", "kind": "flavor"},
                {"name": "image", "kind": "image"},
                {"name": "slurm", "kind": "appliance", "optional": true},
            ],
            "roles": [
                {"name": "hub", "flavor_parameter": "flavor", "image_parameter": "image",
                 "files": [
                    {"path": "/etc/munge/munge.key", "mode": "0400", "encoding": "base64",
                     "content": "{% if peers.slurm %}{{ peers.slurm.secrets.munge_key }}{% endif %}"},
                    {"path": "/etc/default/hub",
                     "content": "{% if peers.slurm %}SLURM_CONF_SERVER={{ peers.slurm.roles.login.nodes[0].address }} CLUSTER={{ peers.slurm.parameters.cluster_name }}{% else %}LOCAL{% endif %}\n"}
                 ]}
            ],
            "outputs": [{"name": "slurm", "value": "{{ peers.slurm.appliance.name if peers.slurm else 'none' }}"}]
        }))
        .unwrap()
    }

    #[test]
    fn an_appliance_reads_its_peers_and_only_its_nodes_see_their_secrets() {
        use base64::Engine as _;
        let t = hub();
        check_template(&t).unwrap();
        assert_eq!(
            check_value(&t.parameters[2], &json!("hpc")).unwrap_err(),
            "slurm takes an appliance's ID, not \"hpc\""
        );
        // What may be read of a peer, checked when the template is made.
        let mut bad = hub();
        bad.roles[0].files[1].content = "{{ peers.other.roles }}".into();
        let (at, why) = refused(bad);
        assert_eq!(at, "/roles/0/files/1/content");
        assert!(why.contains("peers.other") && why.contains("[\"slurm\"]"), "{why}");
        let mut bad = hub();
        bad.parameters[2].kind = Kind::Share;
        assert!(refused(bad).1.contains("peers.slurm"), "a share is no peer");
        let mut bad = hub();
        bad.outputs[0].value = "{{ peers.slurm.secrets.munge_key }}".into();
        let (at, why) = refused(bad);
        assert_eq!(
            (at.as_str(), why.as_str()),
            ("/outputs/0/value", "an output shows no secret, not even peers.slurm's")
        );

        // Joined: the peer's address, parameters and secret reach the node.
        let slurm = context(&["hpc-compute-0", "hpc-compute-1"]);
        let peer =
            PeerView { appliance: slurm.appliance.clone(), parameters: slurm.parameters.clone(), roles: slurm.roles };
        let params =
            check_parameters(&t.parameters, &given(json!({"flavor": FLAVOR, "image": IMAGE, "slurm": SHARE})), None);
        let mut ctx = Context {
            appliance: ApplianceView { id: "b".into(), name: "jh".into(), project: "astro".into() },
            parameters: params.unwrap(),
            roles: [(
                "hub".to_string(),
                RoleView { count: 1, nodes: vec![view("jh-hub-0", "hub", 0, Some("10.1.0.7"))] },
            )]
            .into(),
            peers: [("slurm".to_string(), Some(peer))].into(),
        };
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 64]);
        let secrets = Secrets {
            own: BTreeMap::new(),
            peers: [("slurm".to_string(), [("munge_key".to_string(), json!(key))].into())].into(),
        };
        let me = view("jh-hub-0", "hub", 0, Some("10.1.0.7"));
        let plan = node_plan(&t.roles[0], &ctx, &secrets, &me, &[]).unwrap();
        assert_eq!(plan.files[0].content_base64, key);
        let conf = base64::engine::general_purpose::STANDARD.decode(&plan.files[1].content_base64).unwrap();
        assert_eq!(String::from_utf8(conf).unwrap(), "SLURM_CONF_SERVER=10.1.0.5 CLUSTER=astro\n");
        // Outputs see the peer (never its secrets: refused above).
        assert_eq!(outputs(&t.outputs, &ctx)["slurm"], "hpc");

        // A peer still placing a role the texts read: the node waits; one
        // they do not read: it does not.
        assert_eq!(peer_reads(&t.roles[0]), BTreeSet::from([("slurm".to_string(), "login".to_string())]));
        let mut early = ctx.clone();
        let roles = &mut early.peers.get_mut("slurm").unwrap().as_mut().unwrap().roles;
        roles.get_mut("compute").unwrap().nodes[1].address = None;
        assert!(node_plan(&t.roles[0], &early, &secrets, &me, &[]).is_ok(), "compute is not read");
        let roles = &mut early.peers.get_mut("slurm").unwrap().as_mut().unwrap().roles;
        roles.get_mut("login").unwrap().nodes[0].address = None;
        match node_plan(&t.roles[0], &early, &secrets, &me, &[]) {
            Err(PlanError::Waiting(why)) => assert!(why.contains("peer hpc's role login"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Not joined: the texts see null.
        ctx.peers.insert("slurm".into(), None);
        let plan = node_plan(&t.roles[0], &ctx, &Secrets::default(), &me, &[]).unwrap();
        let conf = base64::engine::general_purpose::STANDARD.decode(&plan.files[1].content_base64).unwrap();
        assert_eq!(String::from_utf8(conf).unwrap(), "LOCAL\n");
        assert_eq!(outputs(&t.outputs, &ctx)["slurm"], "none");
    }

    #[test]
    fn outputs_and_usage_render_once_every_role_they_read_is_placed() {
        let t = slurm();
        let ctx = context(&[]);
        let out = outputs(&t.outputs, &ctx);
        assert_eq!(out["ssh_command"], "ssh debian@10.1.0.5");
        assert_eq!(
            usage(&t.usage, &ctx, &t.outputs, &out).unwrap(),
            "Log in with `ssh debian@10.1.0.5` and run `sinfo`."
        );
        let mut early = ctx.clone();
        early.roles.get_mut("login").unwrap().nodes.clear();
        let out = outputs(&t.outputs, &early);
        assert!(out.is_empty());
        assert_eq!(usage(&t.usage, &early, &t.outputs, &out), None);
        assert!(early.placed(&["login".into()], &BTreeSet::new()).unwrap_err().contains("0 of 1"));
        assert!(ctx.placed(&["login".into()], &BTreeSet::new()).is_ok());
    }

    fn member(name: &str, role: &str, index: u32, state: MemberState) -> Member {
        Member { name: name.into(), role: role.into(), index, state, reason: Some("boom".into()) }
    }

    #[test]
    fn status_is_per_role_and_scale_down_gives_up_failed_then_unready_then_newest() {
        use MemberState::*;
        let counts = vec![("login".to_string(), 1), ("compute".to_string(), 2)];
        let mut ms = vec![
            member("l0", "login", 0, Ready),
            member("c0", "compute", 0, Ready),
            member("c1", "compute", 1, Configuring),
        ];
        let (s, why, roles) = status(&counts, &ms, false);
        assert_eq!(s, Status::Creating);
        assert_eq!(roles[0].status, Status::Active);
        assert_eq!((roles[1].ready, roles[1].status), (1, Status::Creating));
        assert!(why.unwrap().contains("c1 (configuring)"));
        ms[2].state = Ready;
        assert_eq!(status(&counts, &ms, false).0, Status::Active);
        ms.push(member("c2", "compute", 2, Leaving));
        let (s, why, _) = status(&counts, &ms, true);
        assert_eq!(s, Status::Updating);
        assert!(why.unwrap().contains("draining c2"));
        ms[1].state = Failed;
        let (s, why, roles) = status(&counts, &ms, true);
        assert_eq!((s, roles[0].status), (Status::Degraded, Status::Active));
        assert!(why.unwrap().contains("c0 failed: boom"));

        let ms = vec![
            member("c0", "compute", 0, Ready),
            member("c1", "compute", 1, Ready),
            member("c2", "compute", 2, Ready),
            member("c3", "compute", 3, Configuring),
            member("c4", "compute", 4, Failed),
            member("c5", "compute", 5, Leaving),
            member("l0", "login", 0, Ready),
        ];
        assert_eq!(scale_down(&ms, "compute", 3), ["c4", "c3"]);
        assert_eq!(scale_down(&ms, "compute", 1), ["c4", "c3", "c2", "c1"]);
        assert!(scale_down(&ms, "compute", 5).is_empty());
    }
}
