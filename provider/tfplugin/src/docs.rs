//! Provider documentation in the Terraform Registry layout, rendered from the
//! schemas (descriptions, plus what validators and plan modifiers say) and the
//! examples under `examples/terraform/`:
//!
//! ```text
//! examples/terraform/provider/provider.tf            -> docs/index.md
//! examples/terraform/resources/<type>/resource.tf    -> docs/resources/<name>.md
//! examples/terraform/resources/<type>/import.sh      -> its "Import" section
//! examples/terraform/data-sources/<type>/data-source.tf
//! examples/terraform/ephemeral-resources/<type>/ephemeral-resource.tf
//! ```
//!
//! [`check`] is meant for a test: it fails when the committed docs differ from
//! what the code renders, and rewrites them when `UPDATE_GENERATED=1`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::resource::Provider;
use crate::schema::{AttrType, Attribute, Block, BlockNesting, NestedBlock, Nesting, Schema};
use crate::server::Server;
use crate::types::Type;

/// Renders every page, keyed by path relative to the docs directory.
pub fn render<P: Provider>(provider: P, examples: &Path) -> BTreeMap<PathBuf, String> {
    let server = Server::new(provider);
    let name = server.provider_name();
    let schemas = server.schemas();
    let mut pages = BTreeMap::new();

    let mut index = String::new();
    front_matter(&mut index, &format!("{name} Provider"), &schemas.provider.block.description);
    let _ = writeln!(index, "# {name} Provider\n");
    para(&mut index, &schemas.provider.block.description);
    example(&mut index, &examples.join("provider/provider.tf"), "terraform");
    schema_section(&mut index, &schemas.provider);
    pages.insert(PathBuf::from("index.md"), index);

    let groups = [
        ("resources", "Resource", &schemas.resources, "resource.tf"),
        ("data-sources", "Data Source", &schemas.data_sources, "data-source.tf"),
        ("ephemeral-resources", "Ephemeral Resource", &schemas.ephemerals, "ephemeral-resource.tf"),
    ];
    for (dir, kind, list, file) in groups {
        for (type_name, schema) in list.iter() {
            let short = type_name.strip_prefix(&format!("{name}_")).unwrap_or(type_name);
            let mut page = String::new();
            front_matter(
                &mut page,
                &format!("{type_name} {kind} - terraform-provider-{name}"),
                &schema.block.description,
            );
            let _ = writeln!(page, "# {type_name} ({kind})\n");
            para(&mut page, &schema.block.description);
            if let Some(msg) = &schema.block.deprecation {
                let _ = writeln!(page, "~> **Deprecated:** {msg}\n");
            }
            example(&mut page, &examples.join(dir).join(type_name).join(file), "terraform");
            schema_section(&mut page, schema);
            if dir == "resources" && server.importable(type_name) {
                let script = examples.join(dir).join(type_name).join("import.sh");
                if script.exists() {
                    page.push_str("## Import\n\nImport is supported using the following syntax:\n\n");
                    example(&mut page, &script, "shell");
                }
            }
            pages.insert(PathBuf::from(dir).join(format!("{short}.md")), page.trim_end().to_string() + "\n");
        }
    }
    pages.into_iter().map(|(k, v)| (k, v.trim_end().to_string() + "\n")).collect()
}

/// Compares rendered docs with `docs_dir`; with `UPDATE_GENERATED=1` writes them.
pub fn check<P: Provider>(provider: P, examples: &Path, docs_dir: &Path) -> Result<(), String> {
    let pages = render(provider, examples);
    let update = std::env::var("UPDATE_GENERATED").is_ok_and(|v| v == "1");
    let mut drift = Vec::new();
    for (rel, text) in &pages {
        let path = docs_dir.join(rel);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != *text {
            if update {
                std::fs::create_dir_all(path.parent().expect("page has a parent")).map_err(|e| e.to_string())?;
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            } else {
                drift.push(rel.display().to_string());
            }
        }
    }
    for dir in ["resources", "data-sources", "ephemeral-resources"] {
        let Ok(entries) = std::fs::read_dir(docs_dir.join(dir)) else { continue };
        for e in entries.flatten() {
            let rel = PathBuf::from(dir).join(e.file_name());
            if !pages.contains_key(&rel) {
                if update {
                    std::fs::remove_file(e.path()).map_err(|e| e.to_string())?;
                } else {
                    drift.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    if drift.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "provider docs are out of date: {}.\nRegenerate them with `scripts/generate.sh` and commit the result.",
            drift.join(", ")
        ))
    }
}

fn front_matter(out: &mut String, title: &str, description: &str) {
    let first = description.lines().next().unwrap_or("");
    let _ = writeln!(out, "---\npage_title: \"{title}\"\nsubcategory: \"\"\ndescription: |-\n  {first}\n---\n");
}

fn para(out: &mut String, text: &str) {
    if !text.is_empty() {
        let _ = writeln!(out, "{}\n", text.trim_end());
    }
}

fn example(out: &mut String, file: &Path, lang: &str) {
    if let Ok(text) = std::fs::read_to_string(file) {
        let heading = if lang == "shell" { "" } else { "## Example Usage\n\n" };
        let _ = writeln!(out, "{heading}```{lang}\n{}\n```\n", text.trim_end());
    }
}

fn schema_section(out: &mut String, schema: &Schema) {
    out.push_str("<!-- schema generated by tfplugin::docs -->\n## Schema\n\n");
    let mut nested = Vec::new();
    block_lists(out, &schema.block, "", &mut nested);
    while let Some((anchor, title, block)) = nested.pop() {
        let _ = writeln!(out, "<a id=\"{anchor}\"></a>\n### Nested Schema for `{title}`\n");
        let mut more = Vec::new();
        block_lists(out, &block, &format!("{title}."), &mut more);
        more.reverse();
        nested.extend(more);
    }
}

type Pending = Vec<(String, String, Block)>;

fn block_lists(out: &mut String, block: &Block, prefix: &str, nested: &mut Pending) {
    let mut sections: [(&str, Vec<String>); 3] = [("Required", vec![]), ("Optional", vec![]), ("Read-Only", vec![])];
    for a in &block.attributes {
        let idx = if a.required {
            0
        } else if a.optional {
            1
        } else {
            2
        };
        sections[idx].1.push(attr_line(a, prefix, nested));
    }
    for b in &block.blocks {
        let idx = if b.min_items > 0 { 0 } else { 1 };
        sections[idx].1.push(block_line(b, prefix, nested));
    }
    for (title, lines) in sections {
        if !lines.is_empty() {
            let _ = writeln!(out, "### {title}\n");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
            out.push('\n');
        }
    }
}

fn anchor(kind: &str, path: &str) -> String {
    format!("nested{kind}--{}", path.replace('.', "--"))
}

fn attr_line(a: &Attribute, prefix: &str, nested: &mut Pending) -> String {
    let full = format!("{prefix}{}", a.name);
    let mut kind = match &a.ty {
        AttrType::Plain(t) => type_name(t),
        AttrType::Nested(n, attrs) => {
            let id = anchor("att", &full);
            nested.push((id.clone(), full.clone(), Block { attributes: attrs.clone(), ..Block::default() }));
            let k = match n {
                Nesting::Single => "Attributes",
                Nesting::List => "Attributes List",
                Nesting::Set => "Attributes Set",
                Nesting::Map => "Attributes Map",
            };
            format!("{k}, see [below for nested schema](#{id})")
        }
    };
    if a.sensitive {
        kind.push_str(", Sensitive");
    }
    if a.write_only {
        kind.push_str(", Write-only");
    }
    if a.deprecation.is_some() {
        kind.push_str(", Deprecated");
    }
    let mut text = a.description.trim().to_string();
    for v in &a.validators {
        push_sentence(&mut text, &v.description());
    }
    for m in &a.modifiers {
        push_sentence(&mut text, &m.description());
    }
    if let Some(d) = &a.default {
        let shown = match d.as_str() {
            Some(s) => format!("`\"{s}\"`"),
            None => format!(
                "`{}`",
                crate::json::encode(d, &a.value_type())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            ),
        };
        push_sentence(&mut text, &format!("Defaults to {shown}."));
    }
    if let Some(msg) = &a.deprecation {
        push_sentence(&mut text, &format!("Deprecated: {msg}"));
    }
    format!("- `{}` ({kind}) {text}", a.name).trim_end().to_string()
}

fn block_line(b: &NestedBlock, prefix: &str, nested: &mut Pending) -> String {
    let full = format!("{prefix}{}", b.type_name);
    let id = anchor("block", &full);
    nested.push((id.clone(), full, b.block.clone()));
    let mut kind = match b.nesting {
        BlockNesting::Single | BlockNesting::Group => "Block".to_string(),
        BlockNesting::List => "Block List".to_string(),
        BlockNesting::Set => "Block Set".to_string(),
        BlockNesting::Map => "Block Map".to_string(),
    };
    if b.min_items > 0 {
        let _ = write!(kind, ", Min: {}", b.min_items);
    }
    if b.max_items > 0 {
        let _ = write!(kind, ", Max: {}", b.max_items);
    }
    format!("- `{}` ({kind}) {} (see [below for nested schema](#{id}))", b.type_name, b.block.description.trim())
}

fn push_sentence(text: &mut String, s: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(s);
}

fn type_name(t: &Type) -> String {
    match t {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}
