//! Builds the console's site — what the server serves under `target/site` — without cargo-leptos:
//!
//! 1. the `frontend` crate for `wasm32-unknown-unknown` (`cargo build`, sharing the workspace's target folder);
//! 2. its JS glue and final WASM with wasm-bindgen's own library, at exactly the version the frontend links;
//! 3. with `--wasm-opt`, binaryen's `wasm-opt -Oz` on the bundle (about a fifth smaller, a minute more; off by
//!    default, so a first start is not kept waiting for it);
//! 4. the stylesheet and the static files.
//!
//! The settings are the ones cargo-leptos reads (`[[workspace.metadata.leptos]]` in the workspace's
//! `Cargo.toml`), so `cargo leptos build` keeps working and both produce the same site. Run it with
//! `cargo run -p site -- [--release] [--wasm-opt]`; it prints each step and how long it took. A bundle that has
//! not changed since the last run is not processed again.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

/// What the site needs from `[[workspace.metadata.leptos]]`.
struct Settings {
    output_name: String,
    lib_package: String,
    site_root: PathBuf,
    pkg_dir: String,
    style_file: PathBuf,
    assets_dir: Option<PathBuf>,
    release_profile: String,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("\x1b[1;31m[site]\x1b[0m failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    const USAGE: &str = "usage: cargo run -p site -- [--release] [--wasm-opt]";
    let (mut release, mut shrink) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--release" | "-r" => release = true,
            "--wasm-opt" => shrink = true,
            "-h" | "--help" => {
                println!("{USAGE}\n\nBuilds target/site (WASM bundle, JS, CSS, static files) for the Vigil console.");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let root = workspace_root()?;
    let settings = Settings::read(&root.join("Cargo.toml"))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let site_root = root.join(&settings.site_root);
    let pkg = site_root.join(&settings.pkg_dir);
    let total = Instant::now();

    // 1. The WASM bundle.
    let profile = if release { settings.release_profile.as_str() } else { "dev" };
    let started = step(&format!(
        "compiling `{}` for wasm32-unknown-unknown (profile {profile}; minutes the first time, seconds after)",
        settings.lib_package
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--lib", "--target", "wasm32-unknown-unknown", "-p", &settings.lib_package, "--profile", profile])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "compiling the WASM bundle failed (is the target installed? `rustup target add wasm32-unknown-unknown`)"
        );
    }
    done(started);
    let profile_dir = if profile == "dev" { "debug" } else { profile };
    let wasm = target_dir
        .join("wasm32-unknown-unknown")
        .join(profile_dir)
        .join(format!("{}.wasm", settings.lib_package.replace('-', "_")));
    let stamp_path = pkg.join(".built-from");
    let stamp = stamp_of(&wasm, release, shrink)?;
    let fresh = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && pkg.join(format!("{}_bg.wasm", settings.output_name)).is_file();

    // 2.–3. JS glue and the final WASM, into a new folder that replaces the old one whole.
    if fresh {
        step("the bundle has not changed since the last build: JS glue and WASM kept");
    } else {
        let started = step("generating the JS glue (wasm-bindgen)");
        // Named per process: two builds at once (two terminals) never write into each other's folder.
        let staging = site_root.join(format!(".{}.new-{}", settings.pkg_dir, std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
        bindgen
            .input_path(&wasm)
            .out_name(&settings.output_name)
            .web(true)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?
            .typescript(false)
            .debug(!release)
            // Function names are 7 of a release bundle's 11 MB; browsers only need them for stack traces.
            .remove_name_section(release)
            .remove_producers_section(release);
        bindgen
            .generate(&staging)
            .map_err(|e| anyhow::anyhow!("wasm-bindgen on {}: {e:#}", wasm.display()))?;
        done(started);
        let bg = staging.join(format!("{}_bg.wasm", settings.output_name));
        if shrink {
            optimise(&bg)?;
        }
        // Servers built by cargo-leptos load `NAME.wasm`, others `NAME_bg.wasm` (leptos' HydrationScripts).
        std::fs::copy(&bg, staging.join(format!("{}.wasm", settings.output_name))).context("copying the bundle")?;
        std::fs::write(staging.join(".built-from"), &stamp).context("writing the bundle's stamp")?;
        let old = site_root.join(format!(".{}.old-{}", settings.pkg_dir, std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        if pkg.exists() {
            std::fs::rename(&pkg, &old).with_context(|| format!("moving the old {} aside", pkg.display()))?;
        }
        std::fs::rename(&staging, &pkg).with_context(|| format!("putting the new bundle in {}", pkg.display()))?;
        let _ = std::fs::remove_dir_all(&old);
        let size = std::fs::metadata(pkg.join(format!("{}_bg.wasm", settings.output_name)))?.len();
        step(&format!("bundle: {} ({:.1} MB)", pkg.display(), size as f64 / 1e6));
    }

    // 4. Stylesheet and static files (copied every time: cheap, and never stale).
    let css = root.join(&settings.style_file);
    std::fs::copy(&css, pkg.join(format!("{}.css", settings.output_name)))
        .with_context(|| format!("copying the stylesheet {}", css.display()))?;
    if let Some(assets) = &settings.assets_dir {
        copy_tree(&root.join(assets), &site_root)?;
    }
    step(&format!("site ready in {} ({:.1} s)", site_root.display(), total.elapsed().as_secs_f64()));
    Ok(())
}

impl Settings {
    fn read(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: toml::Value = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let meta = doc
            .get("workspace")
            .and_then(|w| w.get("metadata"))
            .and_then(|m| m.get("leptos"))
            .and_then(|l| l.as_array())
            .and_then(|a| a.first())
            .context("no [[workspace.metadata.leptos]] in the workspace's Cargo.toml")?;
        let text_of = |key: &str| meta.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let need = |key: &str| text_of(key).with_context(|| format!("`{key}` missing from [[workspace.metadata.leptos]]"));
        Ok(Settings {
            output_name: text_of("output-name").map_or_else(|| need("name"), Ok)?,
            lib_package: need("lib-package")?,
            site_root: need("site-root")?.into(),
            pkg_dir: text_of("site-pkg-dir").unwrap_or_else(|| "pkg".into()),
            style_file: need("style-file")?.into(),
            assets_dir: text_of("assets-dir").map(PathBuf::from),
            release_profile: text_of("lib-profile-release").unwrap_or_else(|| "release".into()),
        })
    }
}

/// The workspace root: the folder above this crate's (`frontend/site`).
fn workspace_root() -> Result<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.ancestors().nth(2).context("no workspace above frontend/site")?;
    Ok(root.to_path_buf())
}

/// What the site was built from: the bundle's size and time, the profile and whether it was shrunk.
fn stamp_of(wasm: &Path, release: bool, shrink: bool) -> Result<String> {
    let meta = std::fs::metadata(wasm).with_context(|| format!("no WASM bundle at {}", wasm.display()))?;
    let modified = meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
    Ok(format!(
        "{} {} {} {} {}\n",
        wasm.display(),
        meta.len(),
        modified.map_or(0, |d| d.as_nanos()),
        if release { "release" } else { "debug" },
        if shrink { "wasm-opt" } else { "as-built" }
    ))
}

/// `wasm-opt -Oz` in place (binaryen: the test command's npm packages bring it, `npm i -g binaryen` too).
fn optimise(wasm: &Path) -> Result<()> {
    let available = Command::new("wasm-opt").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        bail!("--wasm-opt asks for binaryen's wasm-opt, which is not on the PATH (npm: the `binaryen` package)");
    }
    let started = step("shrinking the bundle (wasm-opt -Oz)");
    let out = wasm.with_extension("opt.wasm");
    let status = Command::new("wasm-opt")
        .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext"])
        .args(["--enable-reference-types", "--enable-multivalue", "--enable-mutable-globals"])
        .arg(wasm)
        .arg("-o")
        .arg(&out)
        .status()
        .context("running wasm-opt")?;
    if !status.success() {
        bail!("wasm-opt failed on {}", wasm.display());
    }
    std::fs::rename(&out, wasm)?;
    done(started);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn step(what: &str) -> Instant {
    println!("\x1b[1;36m[site]\x1b[0m {what}");
    Instant::now()
}

fn done(started: Instant) {
    println!("\x1b[1;36m[site]\x1b[0m   done in {:.1} s", started.elapsed().as_secs_f64());
}
