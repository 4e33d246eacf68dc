//! The committed provider docs (docs/index.md, docs/resources/…) are what the
//! code renders. Regenerate with `scripts/generate.sh`.

use std::path::Path;

#[test]
fn provider_docs_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Err(e) = tfplugin::docs::check(
        terraform_provider_tundra::TundraProvider,
        &root.join("examples/terraform"),
        &root.join("docs"),
    ) {
        panic!("{e}");
    }
}

/// Each module's README carries tables of its inputs and outputs, generated
/// from `variables.tf` and `outputs.tf` between the markers below.
#[test]
fn module_readmes_are_current() {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules");
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&modules).unwrap() {
        let dir = entry.unwrap().path();
        let readme = dir.join("README.md");
        if !dir.join("variables.tf").exists() {
            continue;
        }
        let text = std::fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
        let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            panic!("{} has no {BEGIN} … {END} section for its tables", readme.display());
        };
        let tables = module_tables(&dir);
        let want = format!("{}{BEGIN}\n{tables}{}", &text[..start], &text[end..]);
        if want != text {
            if update {
                std::fs::write(&readme, want).unwrap();
            } else {
                stale.push(readme.display().to_string());
            }
        }
    }
    assert!(stale.is_empty(), "stale module READMEs (run scripts/generate.sh): {}", stale.join(", "));
}

const BEGIN: &str = "<!-- BEGIN GENERATED TABLES -->";
const END: &str = "<!-- END GENERATED TABLES -->";

/// A top-level block of an HCL file as written in this repository: its
/// label and its top-level `key = value` lines (a value spanning lines
/// until its brackets close; nested blocks skipped).
fn blocks(path: &Path, kind: &str) -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    let opener = format!("{kind} \"");
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(&opener) else { continue };
        let name = rest.split('"').next().unwrap_or_default().to_string();
        let mut attrs = Vec::new();
        let mut depth = 0i32;
        while let Some(l) = lines.next() {
            if l == "}" {
                break;
            }
            let t = l.trim();
            if depth == 0
                && let Some((k, v)) = t.split_once('=')
                && !k.trim().contains(' ')
            {
                let mut value = v.trim().to_string();
                let open =
                    |s: &str| s.matches(['(', '[', '{']).count() as i32 - s.matches([')', ']', '}']).count() as i32;
                let mut n = open(&value);
                while n > 0 {
                    let Some(more) = lines.next() else { break };
                    n += open(more);
                    let more = more.trim();
                    let opens = value.ends_with(['(', '[', '{']) || more.starts_with([')', ']', '}']);
                    value.push_str(if opens { " " } else { ", " });
                    value.push_str(more);
                }
                attrs.push((k.trim().to_string(), value));
            } else {
                depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
            }
        }
        out.push((name, attrs));
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_string(),
    }
}

fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn module_tables(dir: &Path) -> String {
    let get = |attrs: &[(String, String)], k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let mut s = String::from("## Inputs\n\n| Name | Type | Default | Description |\n|---|---|---|---|\n");
    for (name, attrs) in blocks(&dir.join("variables.tf"), "variable") {
        let default = match get(&attrs, "default") {
            Some(d) => format!("`{}`", cell(&d)),
            None => "required".into(),
        };
        s.push_str(&format!(
            "| `{name}` | `{}` | {default} | {} |\n",
            cell(&get(&attrs, "type").unwrap_or_else(|| "any".into())),
            cell(&unquote(&get(&attrs, "description").unwrap_or_default()))
        ));
    }
    s.push_str("\n## Outputs\n\n| Name | Description |\n|---|---|\n");
    for (name, attrs) in blocks(&dir.join("outputs.tf"), "output") {
        s.push_str(&format!("| `{name}` | {} |\n", cell(&unquote(&get(&attrs, "description").unwrap_or_default()))));
    }
    s
}
