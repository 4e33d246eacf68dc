//! The platform modules (`modules/*`) under the pinned Terraform: each
//! module's own `terraform test` (plan-level, mocked provider), and each of
//! its examples valid against the real provider schema, and so is
//! `examples/terraform/platforms`, which composes them.

use std::path::{Path, PathBuf};

use crate::support::Workspace;

/// Copy a module (or any tree) without dot files: no `.terraform` or lock
/// files of someone's local runs.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') || name == "terraform.tfstate" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

pub fn modules_pass_terraform_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules");
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("variables.tf").exists())
        .collect();
    modules.sort();
    assert!(!modules.is_empty(), "no modules under {}", root.display());
    for m in modules {
        let name = m.file_name().unwrap().to_string_lossy().to_string();
        let ws = Workspace::for_provider("tundra", "tundra/tundra", "");
        std::fs::remove_file(ws.path().join("main.tf")).unwrap();
        let dir = format!("-chdir=modules/{name}");
        copy_tree(&m, &ws.path().join("modules").join(&name));
        let tests = std::fs::read_dir(m.join("tests"))
            .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "hcl")).count())
            .unwrap_or(0);
        assert!(tests > 0, "module {name} has no tests/*.tftest.hcl");
        let r = ws.run(&[&dir, "test", "-no-color"]);
        let out = r.all();
        assert_eq!(r.code, 0, "terraform test in modules/{name}:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "modules/{name}:\n{out}");
        eprintln!("modules/{name}: {}", out.lines().rev().find(|l| l.contains("passed")).unwrap_or(""));
        // Every example (and the template) is valid against the provider's schema.
        let mut dirs = vec![m.join("template")];
        dirs.extend(std::fs::read_dir(m.join("examples")).into_iter().flatten().map(|e| e.unwrap().path()));
        for d in dirs.into_iter().filter(|d| d.is_dir()) {
            let rel = d.strip_prefix(&m).unwrap().display().to_string();
            let chdir = format!("-chdir=modules/{name}/{rel}");
            ws.ok(&[&chdir, "init", "-no-color", "-backend=false"]);
            let r = ws.run(&[&chdir, "validate", "-no-color"]);
            assert_eq!(r.code, 0, "modules/{name}/{rel} is not valid:\n{}", r.all());
        }
    }
    // The examples composing modules (examples/terraform/platforms) are
    // valid with the modules where the repository has them.
    let ws = Workspace::for_provider("tundra", "tundra/tundra", "");
    std::fs::remove_file(ws.path().join("main.tf")).unwrap();
    copy_tree(&root, &ws.path().join("modules"));
    let example = "examples/terraform/platforms";
    copy_tree(&root.join("..").join(example), &ws.path().join(example));
    let chdir = format!("-chdir={example}");
    ws.ok(&[&chdir, "init", "-no-color", "-backend=false"]);
    let r = ws.run(&[&chdir, "validate", "-no-color"]);
    assert_eq!(r.code, 0, "{example} is not valid:\n{}", r.all());
}
