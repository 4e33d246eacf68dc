//! The framework driven by a real Terraform (1.15.5 from the project venv).
//!
//! This binary is also the test provider: when Terraform launches it with the
//! plugin magic cookie it serves `testprov` instead of running tests.

mod support;
mod testprov;

use libtest_mimic::{Arguments, Trial};
use support::{Workspace, header};

fn main() -> std::process::ExitCode {
    if tfplugin::plugin::launched_by_terraform() {
        return tfplugin::plugin::main(testprov::TestProvider);
    }
    let args = Arguments::from_args();
    let tests: Vec<(&str, fn())> = vec![
        ("lifecycle_create_update_replace_drift_destroy", lifecycle),
        ("import_command_and_import_block_with_generated_config", import),
        ("unknowns_for_each_and_count_20_without_lost_writes", unknowns_and_count),
        ("write_only_never_in_state_and_sensitive_masked", write_only_and_sensitive),
        ("invalid_config_points_at_file_and_line", invalid_config),
        ("filesystem_mirror_install_with_init", filesystem_mirror),
        ("configure_warnings_reach_the_user", configure_warning),
        ("state_upgrade_from_schema_version_0", state_upgrade),
        ("create_timeout_keeps_partial_state", timeout_partial_state),
        ("data_source_and_ephemeral_resource", data_and_ephemeral),
        ("docs_render_from_schema_and_examples", docs_render),
        ("dynamic_values_round_trip_through_terraform", dynamic_values),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            Trial::test(name, move || {
                f();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn thing(name: &str, body: &str) -> String {
    format!("resource \"testprov_thing\" \"{name}\" {{\n{body}\n}}\n")
}

fn lifecycle() {
    let cfg = |tags: &str, zone: &str| {
        header()
            + &thing(
                "a",
                &format!(
                    "  name = \"alpha\"\n  size = 5\n  zone = \"{zone}\"\n  tags = {{ {tags} }}\n  \
                     disks = [{{ size_gb = 10, label = \"root\" }}]\n  network {{\n    name = \"data\"\n    vlan = 100\n  }}"
                ),
            )
    };
    let ws = Workspace::new(&cfg("team = \"radio\"", "z1"));
    ws.apply();
    let a = ws.resource("testprov_thing.a");
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["kind"], "small", "default applied");
    assert_eq!(a["revision"], 1);
    assert_eq!(a["disks"][0]["serial"], format!("{id}-disk0"), "nested computed filled");
    assert_eq!(a["network"][0]["vlan"], 100);
    assert_eq!(ws.store_json()["things"][&id]["tags"]["team"], "radio");

    let (code, out) = ws.plan();
    assert_eq!(code, 0, "second plan must be empty:\n{out}");

    // In-place update keeps the id.
    ws.write("main.tf", &cfg("team = \"optical\"", "z1"));
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("1 to change, 0 to destroy"), "{out}");
    ws.apply();
    let a = ws.resource("testprov_thing.a");
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["revision"], 2);
    assert_eq!(ws.store_json()["things"][&id]["tags"]["team"], "optical");

    // A RequiresReplace attribute replaces.
    ws.write("main.tf", &cfg("team = \"optical\"", "z2"));
    let (_, out) = ws.plan();
    assert!(out.contains("forces replacement"), "{out}");
    assert!(out.contains("1 to add, 0 to change, 1 to destroy"), "{out}");
    ws.apply();
    let id2 = ws.resource("testprov_thing.a")["id"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    let things = ws.store_json()["things"].as_object().unwrap().clone();
    assert_eq!(things.keys().collect::<Vec<_>>(), vec![&id2], "old object deleted");

    // Out-of-band change shows up and apply repairs it.
    ws.edit_store(|s| s["things"][&id2]["tags"]["team"] = "hacked".into());
    let (code, out) = ws.plan();
    assert_eq!(code, 2);
    assert!(out.contains("\"hacked\" -> \"optical\""), "{out}");
    ws.apply();
    assert_eq!(ws.store_json()["things"][&id2]["tags"]["team"], "optical");

    // Out-of-band deletion plans a create.
    ws.edit_store(|s| {
        s["things"].as_object_mut().unwrap().clear();
    });
    let (_, out) = ws.plan();
    assert!(out.contains("1 to add, 0 to change, 0 to destroy"), "{out}");

    ws.apply();
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(ws.store_json()["things"].as_object().unwrap().is_empty());
}

fn import() {
    let ws = Workspace::new(&(header() + &thing("seed", "  name = \"seed\"\n  tags = { a = \"b\" }")));
    ws.apply();
    let id = ws.resource("testprov_thing.seed")["id"].as_str().unwrap().to_string();
    // Forget it, then import it by id under another address.
    ws.ok(&["state", "rm", "testprov_thing.seed"]);
    ws.write("main.tf", &(header() + &thing("imported", "  name = \"seed\"\n  tags = { a = \"b\" }")));
    let out = ws.ok(&["import", "-no-color", "testprov_thing.imported", &id]);
    assert!(out.contains("Import successful"), "{out}");
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "imported object matches config:\n{out}");

    // An import block with generated configuration.
    ws.ok(&["state", "rm", "testprov_thing.imported"]);
    ws.write("main.tf", &(header() + &format!("import {{\n  to = testprov_thing.gen\n  id = \"{id}\"\n}}\n")));
    let r = ws.run(&["plan", "-no-color", "-generate-config-out=generated.tf"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let generated = ws.read("generated.tf");
    assert!(generated.contains("resource \"testprov_thing\" \"gen\""), "{generated}");
    assert!(generated.contains("name") && generated.contains("\"seed\""), "{generated}");
    ws.apply();
    assert_eq!(ws.resource("testprov_thing.gen")["id"], id.as_str());
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "{out}");

    // Importing something that does not exist says so.
    ws.write("main.tf", &(header() + &thing("missing", "  name = \"x\"")));
    let r = ws.run(&["import", "-no-color", "testprov_thing.missing", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("The store has no thing \"nope\""), "{}", r.all());
}

fn unknowns_and_count() {
    let cfg = header()
        + &thing("base", "  name = \"base\"")
        + &thing("child", "  name = \"child\"\n  tags = { parent = testprov_thing.base.id }")
        + "resource \"testprov_thing\" \"each\" {\n  for_each = toset([\"x\", \"y\", \"z\"])\n  name = \"each-${each.key}\"\n}\n"
        + "resource \"testprov_thing\" \"many\" {\n  count = 20\n  name = \"many-${count.index}\"\n  size = count.index + 1\n}\n";
    let ws = Workspace::new(&cfg);
    let (_, out) = ws.plan();
    assert!(out.contains("(known after apply)"), "{out}");
    assert!(out.contains("25 to add"), "{out}");
    ws.apply();
    let base = ws.resource("testprov_thing.base")["id"].as_str().unwrap().to_string();
    assert_eq!(ws.resource("testprov_thing.child")["tags"]["parent"], base.as_str());
    assert_eq!(ws.resource("testprov_thing.each[\"y\"]")["name"], "each-y");
    let things = ws.store_json()["things"].as_object().unwrap().clone();
    assert_eq!(things.len(), 25, "every concurrent create landed in the store");
    let mut sizes: Vec<i64> = things
        .values()
        .filter(|t| t["name"].as_str().unwrap().starts_with("many-"))
        .map(|t| t["size"].as_i64().unwrap())
        .collect();
    sizes.sort();
    assert_eq!(sizes, (1..=20).collect::<Vec<_>>());
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "{out}");
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(ws.store_json()["things"].as_object().unwrap().is_empty());
}

fn write_only_and_sensitive() {
    let secret = "s3cr3t-never-in-state";
    let cfg = |version: i64| {
        header()
            + &thing(
                "w",
                &format!(
                    "  name = \"w\"\n  password = \"pw-shown-masked\"\n  secret = \"{secret}\"\n  secret_version = {version}"
                ),
            )
    };
    let ws = Workspace::new(&cfg(1));
    let (_, plan) = ws.plan();
    assert!(plan.contains("(sensitive value)"), "password masked:\n{plan}");
    assert!(!plan.contains("pw-shown-masked"), "{plan}");
    assert!(plan.contains("(write-only attribute)"), "{plan}");
    ws.apply();
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(secret), "write-only value leaked into state");
    let id = ws.resource("testprov_thing.w")["id"].as_str().unwrap().to_string();
    let stored = ws.store_json()["things"][&id]["secret_sha"].as_str().unwrap().to_string();
    assert_eq!(stored.len(), 16, "the provider received the write-only value");
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "write-only values cause no diff:\n{out}");
    // validate_config: secret_version needs secret.
    ws.write("main.tf", &(header() + &thing("w", "  name = \"w\"\n  secret_version = 2")));
    let r = ws.run(&["plan", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("secret_version without secret"), "{}", r.all());
}

fn invalid_config() {
    let body = "  name = \"ok\"\n  mac = \"not-a-mac\"\n  kind = \"huge\"\n  cidr = \"10.0.0.1/24\"";
    let ws = Workspace::new(&(header() + &thing("bad", body)));
    let r = ws.run(&["plan", "-no-color"]);
    assert_ne!(r.code, 0);
    let all = r.all();
    // header() is 7 lines + blank; the resource starts on line 9.
    assert!(all.contains("on main.tf line 11, in resource \"testprov_thing\" \"bad\""), "{all}");
    assert!(all.contains("write six colon-separated hex pairs"), "{all}");
    assert!(all.contains("on main.tf line 12") && all.contains("use one of `small`, `large`"), "{all}");
    assert!(all.contains("host bits are set"), "{all}");
    // Plan-time rule from modify_plan, pointing at size.
    ws.write("main.tf", &(header() + &thing("bad", "  name = \"ok\"\n  kind = \"large\"\n  size = 2")));
    let r = ws.run(&["plan", "-no-color"]);
    assert!(r.all().contains("A large thing needs size >= 10"), "{}", r.all());
    // Deprecated attribute warns but works.
    ws.write("main.tf", &(header() + &thing("old", "  name = \"old\"\n  legacy_label = \"x\"")));
    let r = ws.run(&["plan", "-no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("legacy_label is deprecated: use tags instead"), "{}", r.all());
}

fn filesystem_mirror() {
    let cfg = "terraform {\n  required_providers {\n    testprov = {\n      source = \"tundra/testprov\"\n      version = \"0.1.0\"\n    }\n  }\n}\n\nprovider \"testprov\" {}\n".to_string()
        + &thing("m", "  name = \"mirrored\"");
    let ws = Workspace::with_mirror(&cfg, "0.1.0");
    let out = ws.ok(&["init", "-no-color"]);
    assert!(out.contains("Installing tundra/testprov v0.1.0"), "{out}");
    assert!(ws.read(".terraform.lock.hcl").contains("h1:"), "lock file records the package hash");
    ws.apply();
    assert_eq!(ws.resource("testprov_thing.m")["name"], "mirrored");
    ws.ok(&["destroy", "-auto-approve", "-no-color"]);
}

fn configure_warning() {
    let mut ws = Workspace::new(&(header() + &thing("w", "  name = \"warned\"")));
    ws.env.push(("TESTPROV_CONFIGURE_WARNING".into(), "the server is older than this provider needs".into()));
    let (code, out) = ws.plan();
    assert_eq!(code, 2, "a warning does not stop the plan:\n{out}");
    let all = ws.run(&["plan", "-no-color"]).all();
    assert!(
        all.contains("Warning: Configured with a warning")
            && all.contains("the server is older than this provider needs"),
        "Terraform shows configure's warning:\n{all}"
    );
}

fn state_upgrade() {
    let ws = Workspace::new(&(header() + &thing("u", "  name = \"upgraded\"\n  tags = { old = \"label\" }")));
    ws.apply();
    let id = ws.resource("testprov_thing.u")["id"].as_str().unwrap().to_string();
    // Rewrite the stored state as schema version 0 wrote it: `labels`, no revision.
    let mut st: serde_json::Value = serde_json::from_str(&ws.read("terraform.tfstate")).unwrap();
    let inst = &mut st["resources"][0]["instances"][0];
    inst["schema_version"] = 0.into();
    let attrs = inst["attributes"].as_object_mut().unwrap();
    let tags = attrs.remove("tags").unwrap();
    attrs.remove("revision");
    attrs.remove("timeouts");
    attrs.insert("labels".into(), tags);
    ws.write("terraform.tfstate", &serde_json::to_string_pretty(&st).unwrap());
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "upgraded state matches config:\n{out}");
    ws.apply();
    let u = ws.resource("testprov_thing.u");
    assert_eq!(u["id"], id.as_str());
    assert_eq!(u["tags"]["old"], "label");
    // State from a newer provider is refused with advice (by Terraform core,
    // which compares schema versions before asking the provider).
    let mut st: serde_json::Value = serde_json::from_str(&ws.read("terraform.tfstate")).unwrap();
    st["resources"][0]["instances"][0]["schema_version"] = 7.into();
    ws.write("terraform.tfstate", &serde_json::to_string_pretty(&st).unwrap());
    let r = ws.run(&["plan", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("newer provider version"), "{}", r.all());
}

fn timeout_partial_state() {
    let cfg =
        header() + &thing("slow", "  name = \"slow\"\n  delay_ms = 60000\n  timeouts {\n    create = \"1s\"\n  }");
    let ws = Workspace::new(&cfg);
    let r = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("Raise timeouts.create"), "{}", r.all());
    // The object exists and is in state (tainted), so nothing is orphaned.
    let slow = ws.resource("testprov_thing.slow");
    let id = slow["id"].as_str().unwrap().to_string();
    assert!(ws.store_json()["things"].get(&id).is_some());
    let st: serde_json::Value = serde_json::from_str(&ws.read("terraform.tfstate")).unwrap();
    assert_eq!(st["resources"][0]["instances"][0]["status"], "tainted");
    // A bad duration is a validation error.
    ws.write("main.tf", &(header() + &thing("slow", "  name = \"slow\"\n  timeouts {\n    create = \"soon\"\n  }")));
    let r = ws.run(&["plan", "-no-color"]);
    assert!(r.all().contains("write e.g. \"90s\""), "{}", r.all());
    ws.write("main.tf", &header());
    ws.apply();
    assert!(ws.store_json()["things"].as_object().unwrap().is_empty(), "tainted object destroyed");
}

fn data_and_ephemeral() {
    let cfg = header()
        + &thing("src", "  name = \"src\"\n  tags = { k = \"v\" }")
        + "data \"testprov_thing\" \"look\" {\n  id = testprov_thing.src.id\n}\n"
        + "ephemeral \"testprov_token\" \"t\" {\n  name = \"job\"\n}\n"
        + &thing("uses_token", "  name = \"tok\"\n  secret = ephemeral.testprov_token.t.value\n  secret_version = 1")
        + "output \"looked_up\" {\n  value = data.testprov_thing.look.tags[\"k\"]\n}\n";
    let ws = Workspace::new(&cfg);
    let out = ws.apply();
    assert!(out.contains("looked_up = \"v\""), "{out}");
    let state = ws.read("terraform.tfstate");
    assert!(!state.contains("-ephemeral"), "ephemeral token leaked into state");
    let store = ws.store_json();
    assert!(store["tokens_opened"].as_u64().unwrap() >= 1);
    assert_eq!(store["tokens_opened"], store["tokens_closed"], "every opened token was closed");
    let id = ws.resource("testprov_thing.uses_token")["id"].as_str().unwrap().to_string();
    assert!(store["things"][&id]["secret_sha"].is_string(), "token reached the provider as a write-only value");
}

fn docs_render() {
    let ex = tempfile::tempdir().unwrap();
    let dir = ex.path().join("resources/testprov_thing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("resource.tf"), "resource \"testprov_thing\" \"x\" {\n  name = \"x\"\n}\n").unwrap();
    std::fs::write(dir.join("import.sh"), "terraform import testprov_thing.x thing-123\n").unwrap();
    let pages = tfplugin::docs::render(testprov::TestProvider, ex.path());
    let keys: Vec<String> = pages.keys().map(|k| k.display().to_string()).collect();
    assert_eq!(
        keys,
        [
            "data-sources/thing.md",
            "ephemeral-resources/token.md",
            "index.md",
            "resources/echo.md",
            "resources/thing.md"
        ],
        "Registry layout"
    );
    let page = &pages[std::path::Path::new("resources/thing.md")];
    for want in [
        "# testprov_thing (Resource)",
        "```terraform\nresource \"testprov_thing\" \"x\"",
        "- `name` (String) Length between 1 and 32.",
        "- `kind` (String) Must be one of `small`, `large`. Defaults to `\"small\"`.",
        "- `zone` (String) Changing this forces a new resource to be created.",
        "- `secret` (String, Write-only) Never stored in state.",
        "- `password` (String, Sensitive)",
        "- `disks` (Attributes List, see [below for nested schema](#nestedatt--disks))",
        "### Nested Schema for `disks`",
        "- `serial` (String) Assigned by the store.",
        "- `timeouts` (Block)",
        "## Import",
        "terraform import testprov_thing.x thing-123",
    ] {
        assert!(page.contains(want), "missing {want:?} in:\n{page}");
    }
}

fn dynamic_values() {
    let cfg = |v: &str| {
        header()
            + &format!("resource \"testprov_echo\" \"e\" {{\n  input = {v}\n  triggers_replace = [\"a\"]\n}}\n")
            + "output \"out\" {\n  value = testprov_echo.e.output\n}\n"
    };
    let ws = Workspace::new(&cfg("{ n = 123456789012345678901234567890, l = [true, false], s = \"x\", e = [] }"));
    ws.apply();
    let e = ws.resource("testprov_echo.e");
    assert_eq!(e["output"], e["input"], "dynamic object echoed exactly");
    assert_eq!(e["output"]["l"], serde_json::json!([true, false]));
    let state = ws.read("terraform.tfstate");
    assert!(state.contains("123456789012345678901234567890"), "big number kept exactly:\n{state}");
    let (code, out) = ws.plan();
    assert_eq!(code, 0, "{out}");
    ws.write("main.tf", &cfg("\"now a string\""));
    let (_, out) = ws.plan();
    assert!(out.contains("1 to change"), "{out}");
    ws.apply();
    assert_eq!(ws.resource("testprov_echo.e")["output"], "now a string");
}
