//! `tundra`: the operators' CLI. Nouns and verbs follow the API
//! (`tundra machine provide`, `tundra node list`), every command honours
//! `-o table|wide|json|yaml|value` and `-c COLUMN`, long work takes
//! `--wait[=TIMEOUT]`, and the exit code says what went wrong.

mod api;
mod config;
mod failure;
mod nouns;
mod output;
mod wait;

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::{Value, json};
use tundra_api::{ListQuery, paths};
use tundra_client::Client;

use crate::failure::{Failure, exit};
use crate::nouns::{NOUNS, Noun};
use crate::output::{Format, Output, cell, field};

const EXIT_CODES: &str = "\
Settings: flags, then TUNDRA_ENDPOINT, TUNDRA_TOKEN, TUNDRA_PROJECT, TUNDRA_CA_CERTIFICATE_FILE,
then the profile (--profile, TUNDRA_PROFILE, or default_profile) of ~/.config/tundra/config.toml.

Exit codes: 0 done; 1 tundrad refused the request; 2 bad usage (nothing sent); 3 not found;
4 not allowed (token missing or lacking the role); 5 --wait: the work failed;
6 --wait: timed out (the work goes on); 7 tundrad not reached.";

fn wait_arg() -> Arg {
    Arg::new("wait")
        .long("wait")
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("1h")
        .value_name("TIMEOUT")
        .help("Wait until the work is done (default up to 1h, e.g. --wait=10m), with progress on stderr")
}

fn body_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("file")
            .short('f')
            .long("file")
            .value_name("FILE")
            .help("The request body as JSON (`-` for stdin); fields as in the API reference"),
    )
    .arg(
        Arg::new("set")
            .long("set")
            .value_name("FIELD=VALUE")
            .action(ArgAction::Append)
            .help("Set a field of the body (dots for nested ones); VALUE is JSON if it parses, else a string"),
    )
}

fn selector_args(cmd: Command) -> Command {
    let s = |name: &'static str, help: &'static str| Arg::new(name).long(name).value_name("VALUE").help(help);
    cmd.arg(s("state", "Only machines in this provision state (e.g. available, clean_failed)"))
        .arg(s("class", "Only machines of this resource class"))
        .arg(s("rack", "Only machines in this rack"))
        .arg(s("island", "Only machines in this island"))
        .arg(s("bmc", "Only the machine with this BMC address (or part of it)"))
        .arg(s("mac", "Only the machine with an interface of this MAC"))
        .arg(
            Arg::new("maintenance")
                .long("maintenance")
                .value_name("BOOL")
                .value_parser(clap::value_parser!(bool))
                .help("Only machines in (true) or out of (false) maintenance"),
        )
}

fn filter_arg() -> Arg {
    Arg::new("filter")
        .long("filter")
        .value_name("FIELD=VALUE")
        .action(ArgAction::Append)
        .help("Only objects whose FIELD (dots for nested ones) shows as VALUE")
}

fn ids_arg(required: bool) -> Arg {
    Arg::new("ids").value_name("ID|NAME").num_args(if required { 1.. } else { 0.. }).required(required)
}

fn machine_verb(name: &'static str, about: &'static str) -> Command {
    selector_args(
        Command::new(name)
            .about(about)
            .arg(ids_arg(false).help("Machines by ID or name; or select them with --rack, --state…"))
            .arg(
                Arg::new("dry-run")
                    .long("dry-run")
                    .action(ArgAction::SetTrue)
                    .help("Show the machines selected; change nothing"),
            )
            .arg(wait_arg()),
    )
}

fn noun_command(n: &'static Noun) -> Command {
    let mut list = Command::new("list")
        .about(format!("List {}s", n.word))
        .arg(Arg::new("name").long("name").value_name("NAME").help("Only objects of this name"))
        .arg(filter_arg())
        .arg(
            Arg::new("limit")
                .long("limit")
                .value_name("N")
                .value_parser(clap::value_parser!(usize))
                .help("At most N objects (default: all)"),
        );
    if n.word == "machine" {
        list = selector_args(list);
    }
    let mut cmd = Command::new(n.word)
        .about(n.about)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(list)
        .subcommand(Command::new("show").about(format!("Show one {}", n.word)).arg(ids_arg(true).num_args(1)));
    if n.writable {
        cmd = cmd
            .subcommand(
                body_args(Command::new("create").about(format!("Create a {}; prints its ID", n.word))).arg(wait_arg()),
            )
            .subcommand(body_args(
                Command::new("update")
                    .about(format!("Change a {}; absent fields stay", n.word))
                    .arg(ids_arg(true).num_args(1)),
            ))
            .subcommand(Command::new("delete").about(format!("Delete {}s", n.word)).arg(ids_arg(true)).arg(wait_arg()));
    }
    match n.word {
        "machine" => cmd
            .subcommand(machine_verb("manage", "Verify the BMC (enroll → manageable)"))
            .subcommand(machine_verb("inspect", "Boot the agent and record the hardware"))
            .subcommand(machine_verb("provide", "Clean (erase the disks), then available"))
            .subcommand(machine_verb("abort", "Stop a wait state (inspect_wait, clean_wait…)"))
            .subcommand(machine_verb("undeploy", "Power off and clean an active machine"))
            .subcommand(machine_verb("deploy", "Write an image and boot it (no node: for burn-in or tests)").arg(
                Arg::new("image").long("image").value_name("IMAGE").required(true).help("The image, by ID or name"),
            ))
            .subcommand(
                machine_verb("power", "Power on, off, soft-off or reboot")
                    .arg(Arg::new("action").value_parser(["on", "off", "soft-off", "reboot"]).required(true).index(1))
                    .mut_arg("ids", |a| a.index(2)),
            )
            .subcommand(
                machine_verb("maintenance", "Hold machines out of automation (on) or give them back (off)")
                    .arg(Arg::new("mode").value_parser(["on", "off"]).required(true).index(1))
                    .mut_arg("ids", |a| a.index(2))
                    .arg(Arg::new("reason").long("reason").value_name("TEXT").help("Why (with `on`)")),
            ),
        "node" => cmd.subcommand(
            Command::new("rebuild")
                .about("Deploy an active node again in place")
                .arg(ids_arg(true).num_args(1))
                .arg(Arg::new("image").long("image").value_name("IMAGE").help("A new image; default: the node's own"))
                .arg(wait_arg()),
        ),
        "switch" => cmd
            .subcommand(
                Command::new("sync")
                    .about("Program every port of the switch again (repairs drift)")
                    .arg(ids_arg(true).num_args(1)),
            )
            .subcommand(
                Command::new("ports")
                    .about("Each port's desired and actual segment, as last read back")
                    .arg(ids_arg(true).num_args(1)),
            ),
        "port" => cmd.subcommand(
            Command::new("sync").about("Program this port's switch port again").arg(ids_arg(true).num_args(1)),
        ),
        "operation" => cmd.subcommand(
            Command::new("wait")
                .about("Follow operations until they end")
                .arg(ids_arg(true))
                .arg(wait_arg().default_value("1h").help("Give up after this long (default 1h)")),
        ),
        _ => cmd,
    }
}

fn command() -> Command {
    let global = |a: Arg| a.global(true);
    Command::new("tundra")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Operate a Tundra site: machines, nodes, the fabric, shares, clusters and appliances")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help(EXIT_CODES)
        .arg(global(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_parser(Format::NAMES)
                .default_value("table")
                .help("How to print results"),
        ))
        .arg(global(
            Arg::new("column")
                .short('c')
                .long("column")
                .value_name("COLUMN")
                .action(ArgAction::Append)
                .value_delimiter(',')
                .help("Only these columns (dots for nested fields: location.rack)"),
        ))
        .arg(global(
            Arg::new("endpoint").long("endpoint").value_name("URL").help("tundrad's URL [env: TUNDRA_ENDPOINT]"),
        ))
        .arg(global(
            Arg::new("project").long("project").value_name("PROJECT").help("Project to work in [env: TUNDRA_PROJECT]"),
        ))
        .arg(global(
            Arg::new("profile")
                .long("profile")
                .value_name("NAME")
                .help("Profile of the config file [env: TUNDRA_PROFILE]"),
        ))
        .arg(global(Arg::new("config").long("config").value_name("FILE").help("Config file [env: TUNDRA_CLI_CONFIG]")))
        .arg(global(
            Arg::new("ca-certificate")
                .long("ca-certificate")
                .value_name("PEM")
                .help("CA that signed tundrad's certificate [env: TUNDRA_CA_CERTIFICATE_FILE]"),
        ))
        .subcommands(NOUNS.iter().map(noun_command))
        .subcommand(
            Command::new("event")
                .about("The audit log: who changed what, when")
                .subcommand_required(true)
                .arg_required_else_help(true)
                .subcommand(
                    Command::new("list")
                        .about("Events, oldest first; --follow prints new ones as they happen")
                        .arg(
                            Arg::new("object-type")
                                .long("object-type")
                                .value_name("NOUN")
                                .help("Only events of this noun (machine, node…)"),
                        )
                        .arg(
                            Arg::new("object-id").long("object-id").value_name("ID").help("Only events of this object"),
                        )
                        .arg(
                            Arg::new("follow")
                                .long("follow")
                                .short('F')
                                .action(ArgAction::SetTrue)
                                .help("Keep printing new events"),
                        )
                        .arg(
                            Arg::new("limit")
                                .long("limit")
                                .value_name("N")
                                .value_parser(clap::value_parser!(usize))
                                .help("At most N past events (the most recent)"),
                        ),
                ),
        )
        .subcommand(Command::new("whoami").about("Who the token is, and its projects"))
        .subcommand(
            Command::new("completion")
                .about("Shell completions: tundra completion bash > /etc/bash_completion.d/tundra")
                .arg(Arg::new("shell").value_parser(clap::value_parser!(clap_complete::Shell)).required(true)),
        )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let m = command().get_matches();
    match run(&m).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            eprintln!("tundra: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn s(m: &ArgMatches, name: &str) -> Option<String> {
    m.try_get_one::<String>(name).ok().flatten().cloned()
}

fn many(m: &ArgMatches, name: &str) -> Vec<String> {
    m.try_get_many::<String>(name).ok().flatten().map(|v| v.cloned().collect()).unwrap_or_default()
}

fn timeout(m: &ArgMatches) -> Result<Option<Duration>, Failure> {
    match s(m, "wait") {
        None => Ok(None),
        Some(t) => humantime::parse_duration(&t)
            .map(Some)
            .map_err(|e| Failure::usage(format!("--wait={t}: {e}; give a duration like 90s, 10m or 1h"))),
    }
}

async fn run(m: &ArgMatches) -> Result<(), Failure> {
    let (noun_word, sub) = m.subcommand().ok_or_else(|| Failure::usage("name a noun; see tundra --help"))?;
    if noun_word == "completion" {
        let shell = *sub.get_one::<clap_complete::Shell>("shell").expect("required");
        clap_complete::generate(shell, &mut command(), "tundra", &mut std::io::stdout());
        return Ok(());
    }
    let out = Output {
        format: Format::parse(s(m, "output").as_deref().unwrap_or("table")),
        columns: many(m, "column").into_iter().filter(|c| !c.is_empty()).collect(),
    };
    let settings = config::resolve(config::Flags {
        endpoint: s(m, "endpoint"),
        project: s(m, "project"),
        profile: s(m, "profile"),
        config: s(m, "config").map(Into::into),
        ca_certificate: s(m, "ca-certificate").map(Into::into),
    })?;
    let client = Client::new(
        settings.endpoint,
        settings.token,
        settings.project.clone(),
        settings.ca_pem.as_deref(),
        concat!("tundra-cli/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(Failure::usage)?;
    let project = settings.project;
    match noun_word {
        "whoami" => out.one(&client.get_path::<Value>(paths::WHOAMI).await?),
        "event" => events(&client, sub.subcommand().expect("required").1, &out, project.as_deref()).await,
        word => {
            let noun = nouns::find(word);
            let (verb, vm) = sub.subcommand().expect("required");
            verb_of(&client, noun, verb, vm, &out, project.as_deref()).await
        }
    }
}

/// The body of a create or update: `-f FILE` then `--set` on top.
fn body(m: &ArgMatches) -> Result<Value, Failure> {
    let mut b = match s(m, "file") {
        Some(f) => {
            let text = if f == "-" {
                let mut t = String::new();
                std::io::stdin().read_to_string(&mut t).map_err(|e| Failure::usage(format!("reading stdin: {e}")))?;
                t
            } else {
                std::fs::read_to_string(&f).map_err(|e| Failure::usage(format!("reading {f}: {e}")))?
            };
            serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{f} is not JSON: {e}")))?
        }
        None => json!({}),
    };
    if !b.is_object() {
        return Err(Failure::usage("the body must be a JSON object"));
    }
    for kv in many(m, "set") {
        let (k, v) = kv.split_once('=').ok_or_else(|| Failure::usage(format!("--set {kv:?}: write FIELD=VALUE")))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        let mut at = &mut b;
        let parts: Vec<&str> = k.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let obj =
                at.as_object_mut().ok_or_else(|| Failure::usage(format!("--set {k}: {p} is inside a non-object")))?;
            if i + 1 == parts.len() {
                obj.insert(p.to_string(), v.clone());
                break;
            }
            at = obj.entry(p.to_string()).or_insert_with(|| json!({}));
        }
    }
    Ok(b)
}

fn matches_filters(v: &Value, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, want)| cell(field(v, k)) == *want)
}

fn parse_filters(m: &ArgMatches) -> Result<Vec<(String, String)>, Failure> {
    many(m, "filter")
        .into_iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure::usage(format!("--filter {f:?}: write FIELD=VALUE, e.g. --filter status=error")))
        })
        .collect()
}

/// Does a machine match `--state`, `--rack`…?
fn machine_selected(v: &Value, m: &ArgMatches) -> bool {
    let eq = |flag: &str, path: &str| s(m, flag).is_none_or(|want| cell(field(v, path)) == want);
    eq("state", "provision_state")
        && eq("class", "resource_class")
        && eq("rack", "location.rack")
        && eq("island", "location.island")
        && s(m, "bmc").is_none_or(|b| cell(field(v, "bmc.address")).contains(&b))
        && s(m, "mac").is_none_or(|mac| {
            let mac = mac.to_lowercase();
            v["interfaces"].as_array().is_some_and(|ifs| ifs.iter().any(|i| i["mac"] == mac.as_str()))
        })
        && m.try_get_one::<bool>("maintenance").ok().flatten().is_none_or(|want| v["maintenance"] == *want)
}

/// The selectors as `GET /v1/machines` filters (the service selects).
fn machine_filters(m: &ArgMatches) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    for (flag, param) in [
        ("state", "provision_state"),
        ("class", "resource_class"),
        ("rack", "rack"),
        ("island", "island"),
        ("bmc", "bmc"),
        ("mac", "mac"),
        ("name", "name"),
    ] {
        if let Some(v) = s(m, flag) {
            f.push((param, v));
        }
    }
    if let Some(b) = m.try_get_one::<bool>("maintenance").ok().flatten() {
        f.push(("maintenance", b.to_string()));
    }
    f
}

fn has_selector(m: &ArgMatches) -> bool {
    ["state", "class", "rack", "island", "bmc", "mac"].iter().any(|f| s(m, f).is_some())
        || m.try_get_one::<bool>("maintenance").ok().flatten().is_some()
}

fn list_query(noun: &Noun, m: &ArgMatches, project: Option<&str>) -> ListQuery {
    ListQuery {
        name: s(m, "name"),
        project: if noun.project_owned { project.map(String::from) } else { None },
        ..Default::default()
    }
}

async fn verb_of(
    client: &Client,
    noun: &'static Noun,
    verb: &str,
    m: &ArgMatches,
    out: &Output,
    project: Option<&str>,
) -> Result<(), Failure> {
    // A bad --wait is a usage error before anything is sent.
    timeout(m)?;
    match verb {
        "list" => {
            let filters = parse_filters(m)?;
            let selecting = !filters.is_empty();
            let limit = m.get_one::<usize>("limit").copied();
            let mut items = if noun.word == "machine" {
                api::machines(client, &machine_filters(m), if filters.is_empty() { limit } else { None }).await?
            } else {
                let q = list_query(noun, m, project);
                api::list(client, noun, q, if selecting { None } else { limit }).await?
            };
            items.retain(|v| matches_filters(v, &filters));
            if let Some(l) = limit {
                items.truncate(l);
            }
            out.list(&items, noun.table, noun.wide)
        }
        "show" => out.one(&api::resolve(client, noun, &many(m, "ids")[0], project).await?),
        "create" => {
            let mut b = body(m)?;
            if noun.project_owned
                && b.get("project_id").is_none()
                && let Some(p) = project
            {
                b["project_id"] = Value::String(api::project_id(client, p).await?);
            }
            let typed = api::typed(noun);
            let mut created: Value = client.create(&typed, &b).await?;
            if let Some(t) = timeout(m)? {
                created = wait::objects(client, noun, vec![created], t, false).await?.remove(0);
            }
            if out.format == Format::Table && out.columns.is_empty() {
                println!("{}", cell(field(&created, "id")));
                Ok(())
            } else {
                out.one(&created)
            }
        }
        "update" => {
            let obj = api::resolve(client, noun, &many(m, "ids")[0], project).await?;
            let b = body(m)?;
            let typed = api::typed(noun);
            out.one(&client.update(&typed, &cell(field(&obj, "id")), &b).await?)
        }
        "delete" => {
            let typed = api::typed(noun);
            let mut gone = Vec::new();
            for arg in many(m, "ids") {
                let obj = api::resolve(client, noun, &arg, project).await?;
                client.delete(&typed, &cell(field(&obj, "id"))).await?;
                eprintln!("{} {}: delete accepted", noun.word, wait::label(&obj));
                gone.push(obj);
            }
            if let Some(t) = timeout(m)? {
                wait::objects(client, noun, gone, t, true).await?;
            }
            Ok(())
        }
        "rebuild" => {
            let node = api::resolve(client, noun, &many(m, "ids")[0], project).await?;
            let image = match s(m, "image") {
                Some(i) => Some(cell(field(&api::resolve(client, nouns::find("image"), &i, project).await?, "id"))),
                None => None,
            };
            let mut v: Value =
                client.post(paths::NODE_REBUILD, &[&cell(field(&node, "id"))], &json!({"image_id": image})).await?;
            if let Some(t) = timeout(m)? {
                v = wait::objects(client, noun, vec![v], t, false).await?.remove(0);
            }
            out.one(&v)
        }
        "sync" => {
            let obj = api::resolve(client, noun, &many(m, "ids")[0], project).await?;
            let path = if noun.word == "switch" { paths::SWITCH_SYNC } else { paths::PORT_SYNC };
            out.one(&client.post::<Value>(path, &[&cell(field(&obj, "id"))], &()).await?)
        }
        "ports" => {
            let sw = api::resolve(client, noun, &many(m, "ids")[0], project).await?;
            let ports: Vec<Value> =
                client.get_path(&paths::fill(paths::SWITCH_PORTS, &[&cell(field(&sw, "id"))])).await?;
            out.list(&ports, nouns::SWITCH_PORT_TABLE, nouns::SWITCH_PORT_WIDE)
        }
        "wait" => {
            let mut ops = Vec::new();
            for id in many(m, "ids") {
                let op = api::get(client, noun, &id).await?;
                ops.push((format!("{} {}", cell(field(&op, "target_type")), cell(field(&op, "target_id"))), op));
            }
            let t = timeout(m)?.unwrap_or(Duration::from_secs(3600));
            out.list(&wait::operations(client, ops, t).await?, noun.table, noun.wide)
        }
        action => machine_action(client, noun, action, m, out, project).await,
    }
}

/// The machines a verb acts on: named ones, or those the selectors pick.
async fn selected_machines(client: &Client, noun: &Noun, m: &ArgMatches) -> Result<Vec<Value>, Failure> {
    let ids = many(m, "ids");
    if ids.is_empty() && !has_selector(m) {
        return Err(Failure::usage(
            "name the machines (IDs or names), or select them with --rack, --island, --state, --class, --bmc, --mac, --maintenance",
        ));
    }
    if ids.is_empty() {
        return api::machines(client, &machine_filters(m), None).await;
    }
    let mut picked = Vec::new();
    for id in &ids {
        picked.push(api::resolve(client, noun, id, None).await?);
    }
    // Named machines must also match any selector given with them.
    picked.retain(|v| machine_selected(v, m));
    Ok(picked)
}

async fn machine_action(
    client: &Client,
    noun: &Noun,
    verb: &str,
    m: &ArgMatches,
    out: &Output,
    project: Option<&str>,
) -> Result<(), Failure> {
    let machines = selected_machines(client, noun, m).await?;
    if m.get_flag("dry-run") {
        eprintln!("{} machine(s) selected; --dry-run: nothing changed", machines.len());
        return out.list(&machines, noun.table, noun.wide);
    }
    if machines.is_empty() {
        return Err(Failure::not_found(
            "no machine matches the selectors; `tundra machine list` with the same flags shows why",
        ));
    }
    if verb == "maintenance" {
        let on = s(m, "mode").as_deref() == Some("on");
        let typed = api::typed(noun);
        let mut changed = Vec::new();
        for mach in &machines {
            let mut b = json!({"maintenance": on});
            if let Some(r) = s(m, "reason") {
                b["maintenance_reason"] = Value::String(r);
            }
            changed.push(client.update(&typed, &cell(field(mach, "id")), &b).await?);
        }
        return out.list(&changed, noun.table, noun.wide);
    }
    let action = match verb {
        "power" => match s(m, "action").as_deref() {
            Some("on") => "power_on",
            Some("off") => "power_off",
            Some("soft-off") => "soft_power_off",
            _ => "reboot",
        },
        "undeploy" => "delete",
        v => v,
    };
    let image_id = match s(m, "image") {
        Some(i) => Some(cell(field(&api::resolve(client, nouns::find("image"), &i, project).await?, "id"))),
        None => None,
    };
    let mut started = Vec::new();
    let mut refused = Vec::new();
    for mach in &machines {
        let body = json!({"action": action, "image_id": image_id});
        match client.post::<Value>(paths::MACHINE_ACTIONS, &[&cell(field(mach, "id"))], &body).await {
            Ok(op) => started.push((wait::label(mach), op)),
            Err(e) => refused.push(format!("{}: {}", wait::label(mach), Failure::from(e).message)),
        }
    }
    let mut ops: Vec<(String, Value)> = started;
    let mut failure = None;
    if let Some(t) = timeout(m)?
        && !ops.is_empty()
    {
        match wait::operations(client, ops.clone(), t).await {
            Ok(done) => ops = ops.into_iter().zip(done).map(|((l, _), op)| (l, op)).collect(),
            Err(f) => failure = Some(f),
        }
    }
    let rows: Vec<Value> = ops
        .iter()
        .map(|(l, op)| json!({"machine": l, "operation_id": op["id"], "kind": op["kind"], "state": op["state"], "error": op["error"]}))
        .collect();
    out.list(&rows, &["machine", "operation_id", "kind", "state"], &["error"])?;
    if let Some(f) = failure {
        return Err(f);
    }
    if !refused.is_empty() {
        return Err(Failure::other(format!("tundrad refused {}:\n{}", refused.len(), refused.join("\n"))));
    }
    Ok(())
}

/// `tundra event list [--follow]`.
async fn events(client: &Client, m: &ArgMatches, out: &Output, project: Option<&str>) -> Result<(), Failure> {
    let query = |after: Option<&str>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("object_type", s(m, "object-type")),
            ("object_id", s(m, "object-id")),
            ("project", project.map(String::from)),
            ("after", after.map(String::from)),
        ] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("limit", "500");
        format!("{}?{}", paths::EVENTS, q.finish())
    };
    let mut all: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: tundra_api::Page<Value> = client.get_path(&query(after.as_deref())).await?;
        let last = page.items.last().map(|e| cell(field(e, "id")));
        all.extend(page.items);
        if let Some(l) = m.get_one::<usize>("limit")
            && all.len() > *l
        {
            all.drain(..all.len() - l);
        }
        match (page.next, last) {
            (Some(n), _) => after = Some(n),
            (None, l) => {
                after = l.or(after);
                break;
            }
        }
    }
    if !m.get_flag("follow") {
        return out.list(&all, nouns::EVENT_TABLE, nouns::EVENT_WIDE);
    }
    // Following: one line (or JSON object per line) per event, as they come.
    let line = |e: &Value| -> String {
        match out.format {
            Format::Json => e.to_string(),
            Format::Yaml => format!("---\n{}", output::yaml(e)).trim_end().to_string(),
            _ => {
                let cols: Vec<&str> = if out.columns.is_empty() {
                    let mut c = nouns::EVENT_TABLE.to_vec();
                    if out.format == Format::Wide {
                        c.extend(nouns::EVENT_WIDE);
                    }
                    c
                } else {
                    out.columns.iter().map(String::as_str).collect()
                };
                let sep = if out.format == Format::Value { "\t" } else { "  " };
                cols.iter().map(|c| cell(field(e, c))).collect::<Vec<_>>().join(sep)
            }
        }
    };
    for e in &all {
        println!("{}", line(e));
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let page: tundra_api::Page<Value> = client.get_path(&query(after.as_deref())).await?;
        for e in &page.items {
            println!("{}", line(e));
            after = Some(cell(field(e, "id")));
        }
        use std::io::Write;
        if std::io::stdout().flush().is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn set_builds_nested_bodies_and_parses_json_values() {
        let m = command()
            .try_get_matches_from([
                "tundra",
                "machine",
                "create",
                "--set",
                "name=m-1",
                "--set",
                "bmc.port=623",
                "--set",
                "bmc.driver=ipmi",
                "--set",
                "traits=[\"gpu\"]",
            ])
            .unwrap();
        let (_, n) = m.subcommand().unwrap();
        let (_, c) = n.subcommand().unwrap();
        assert_eq!(body(c).unwrap(), json!({"name": "m-1", "bmc": {"port": 623, "driver": "ipmi"}, "traits": ["gpu"]}));
    }

    #[test]
    fn power_takes_its_action_then_machines() {
        let m =
            command().try_get_matches_from(["tundra", "machine", "power", "off", "m-1", "m-2", "--wait=5m"]).unwrap();
        let (_, n) = m.subcommand().unwrap();
        let (_, p) = n.subcommand().unwrap();
        assert_eq!(s(p, "action").as_deref(), Some("off"));
        assert_eq!(many(p, "ids"), ["m-1", "m-2"]);
        assert_eq!(timeout(p).unwrap(), Some(Duration::from_secs(300)));
        let bad = command().try_get_matches_from(["tundra", "machine", "power", "sideways", "m-1"]).unwrap_err();
        assert!(bad.to_string().contains("possible values"), "{bad}");
    }

    #[test]
    fn unknown_nouns_get_a_suggestion() {
        let e = command().try_get_matches_from(["tundra", "machin", "list"]).unwrap_err();
        assert!(e.to_string().contains("machine"), "{e}");
        assert_eq!(e.exit_code(), exit::USAGE as i32);
    }
}
