//! Compiles `proto/` into private tonic/prost stubs (see `src/proto.rs`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [dir.join("tfplugin6.proto"), dir.join("go_plugin.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure().build_client(false).build_server(true).compile_protos(&files, &[dir])?;
    Ok(())
}
