//! Build steps of the server crate:
//! - embeds the project venv's libtorch directory as an rpath, so `vigil` and its tests run without
//!   `LD_LIBRARY_PATH` (the set-up scripts still set it, for other layouts);
//! - compiles the edge agent's gRPC contract (`proto/edge-agent.proto`) into Rust without protoc: protox
//!   parses the file, tonic-build writes the messages, the server trait and the client.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(entries) = std::fs::read_dir(root.join(".venv/lib")) {
        for entry in entries.flatten() {
            let lib = entry.path().join("site-packages/torch/lib");
            if lib.is_dir() {
                if let Ok(lib) = lib.canonicalize() {
                    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
                }
            }
        }
    }
    let proto = "proto/edge-agent.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}
