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
