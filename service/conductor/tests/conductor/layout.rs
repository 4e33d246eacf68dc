//! The layout rule: inside every crate of the workspace, modules import
//! each other in one direction only — no circle, however long. A circle is
//! how a new slice ends up copying a tangle; when two modules need each
//! other, the shared part belongs in a third, lower module.
//!
//! Edges are read from the sources: `crate::a::b` (the longest module
//! prefix; a root item such as `crate::start` is the crate root), `super::x`,
//! and a parent naming its own child module in its code (`child::item`; its
//! `pub use` re-exports do not count). Test modules (`#[cfg(test)]` to the
//! end of the file) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every module of the crate whose sources are in `src`: name → source text.
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, src, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                // A binary's `main.rs` beside a `lib.rs` is a crate of its own
                // (it reaches the library by name, not by `crate::`).
                if p.file_name().is_some_and(|n| n == "main.rs") && p.with_file_name("lib.rs").exists() {
                    continue;
                }
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                let name = if parts.is_empty() { "crate".to_string() } else { parts.join("::") };
                let text = std::fs::read_to_string(&p).unwrap();
                let text = match text.find("#[cfg(test)]") {
                    Some(i) => &text[..i],
                    None => &text[..],
                };
                // Code only: comments (docs among them) name paths without using them.
                let text: String = text
                    .lines()
                    .map(|l| match l.find("//") {
                        Some(i) => &l[..i],
                        None => l,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(name, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// Identifier paths starting at `prefix` (e.g. `crate::`): the segments after it.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        // Part of a longer path (`other::prefix::`, `xprefix::`): not this one.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        out.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    out
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let join = |base: &str, seg: &[&str]| {
        let mut v: Vec<&str> = if base == "crate" { Vec::new() } else { base.split("::").collect() };
        v.extend_from_slice(seg);
        if v.is_empty() { "crate".to_string() } else { v.join("::") }
    };
    let longest = |base: &str, segs: &[&str]| -> String {
        (1..=segs.len())
            .rev()
            .map(|k| join(base, &segs[..k]))
            .find(|m| mods.contains_key(m))
            .unwrap_or_else(|| if base == "crate" { "crate".into() } else { base.into() })
    };
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let mut to = BTreeSet::new();
        for segs in paths_after(text, "crate::") {
            to.insert(longest("crate", &segs));
        }
        let parent = match m.rsplit_once("::") {
            Some((p, _)) => p.to_string(),
            None if m == "crate" => "crate".to_string(),
            None => "crate".to_string(),
        };
        for segs in paths_after(text, "super::") {
            to.insert(longest(&parent, &segs));
        }
        // A parent naming its own children in its code (`child::x`); its
        // `pub use child::…` re-exports are the children's, not a use.
        let code: String =
            text.lines().filter(|l| !l.trim_start().starts_with("pub use ")).collect::<Vec<_>>().join("\n");
        let prefix = if m == "crate" { String::new() } else { format!("{m}::") };
        for child in mods.keys().filter_map(|k| k.strip_prefix(&prefix)).filter(|k| !k.contains("::")) {
            if !paths_after(&code, &format!("{child}::")).is_empty() {
                to.insert(format!("{prefix}{child}"));
            }
        }
        to.remove(m);
        g.insert(m.clone(), to);
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t =
        T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_circle() {
    let root = workspace();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("service"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .chain([root.join("provider/src"), root.join("provider/tfplugin/src")])
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    assert!(crates.len() >= 12, "the crates were not found under {}", root.display());
    let mut found = Vec::new();
    for src in &crates {
        for c in circles(&edges(&modules(src))) {
            found.push(format!("{}: {}", src.display(), c.join(" ⇄ ")));
        }
    }
    assert!(found.is_empty(), "modules that import each other in a circle:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_circle() {
    let mods: BTreeMap<String, String> = [
        ("crate".to_string(), "pub mod a; pub mod b; pub fn start() { a::go() }".to_string()),
        ("a".to_string(), "use crate::b::thing; pub fn go() {}".to_string()),
        ("b".to_string(), "pub fn thing() { super::a::go() }".to_string()),
        ("c".to_string(), "fn f() { crate::start() }".to_string()),
    ]
    .into();
    assert_eq!(circles(&edges(&mods)), vec![vec!["a".to_string(), "b".to_string()]]);
    // A root item used by a module the root uses is a circle too.
    let mods: BTreeMap<String, String> = [
        ("crate".to_string(), "pub mod a; fn x() { a::y() }".to_string()),
        ("a".to_string(), "fn y() { crate::x() }".to_string()),
    ]
    .into();
    assert_eq!(circles(&edges(&mods)), vec![vec!["a".to_string(), "crate".to_string()]]);
}
