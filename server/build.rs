//! Embeds the project venv's libtorch directory as an rpath, so `vigil` and its tests run without
//! `LD_LIBRARY_PATH` (the set-up scripts still set it, for other layouts).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Ok(entries) = std::fs::read_dir(root.join(".venv/lib")) else { return };
    for entry in entries.flatten() {
        let lib = entry.path().join("site-packages/torch/lib");
        if lib.is_dir() {
            if let Ok(lib) = lib.canonicalize() {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            }
        }
    }
}
