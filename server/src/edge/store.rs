//! The agent's folder of installed model components: `ROOT/models/COMPONENT/` holds a package's model file and
//! manifest (see [`super::package`]) and `agent.json` (whether it starts on boot). An install writes a new
//! folder beside the old one and swaps them with renames, so a crash leaves the old component or the new one,
//! never half of one. Installing checks every SHA-256 and refuses a package built for another backbone.

use super::package::{self, Manifest, MANIFEST_FILE, MODEL_FILE, RECIPE_JSON, RECIPE_YAML};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The agent's own settings for one installed component.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Started when the agent starts.
    pub start_on_boot: bool,
    /// Where it was installed from.
    pub source: String,
    pub installed_at: String,
}

/// One installed component.
#[derive(Clone, Debug)]
pub struct Installed {
    pub manifest: Manifest,
    pub settings: Settings,
    pub dir: PathBuf,
}

const SETTINGS_FILE: &str = "agent.json";
/// Largest manifest or recipe read.
const MAX_SMALL_FILE: u64 = 1024 * 1024;

pub fn models_dir(root: &Path) -> PathBuf {
    root.join("models")
}

/// Reads one installed component's manifest and settings (not its model file).
pub fn read(root: &Path, component: &str) -> Result<Installed, String> {
    if !package::valid_component_name(component) || component.starts_with('.') {
        return Err(format!("{component:?} is not a component name"));
    }
    let dir = models_dir(root).join(component);
    let manifest = package::parse_manifest(&read_capped(&dir.join(MANIFEST_FILE), MAX_SMALL_FILE)?)?;
    if manifest.component_name != component {
        return Err(format!("the folder {component} holds component {}", manifest.component_name));
    }
    let settings = std::fs::read(dir.join(SETTINGS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    Ok(Installed { manifest, settings, dir })
}

/// Every installed component (unreadable folders are skipped with a warning).
pub fn list(root: &Path) -> Vec<Installed> {
    let Ok(entries) = std::fs::read_dir(models_dir(root)) else { return Vec::new() };
    let mut out: Vec<Installed> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| read(root, &n).map_err(|e| tracing::warn!(component = %n, error = %e, "skipping an unreadable component")).ok())
        .collect();
    out.sort_by(|a, b| a.manifest.component_name.cmp(&b.manifest.component_name));
    out
}

/// The model file's bytes, checked against the manifest again (a file changed on disk is refused). Blocking.
pub fn model_bytes(i: &Installed) -> Result<Vec<u8>, String> {
    let max = i.manifest.files.get(MODEL_FILE).map(|f| f.size).unwrap_or(0);
    let bytes = read_capped(&i.dir.join(MODEL_FILE), max)?;
    package::check_file(&i.manifest, MODEL_FILE, &bytes)?;
    Ok(bytes)
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(bytes)
}

/// Where a package is read from.
pub enum Source {
    Folder(PathBuf),
    /// A package ZIP as the console's download gives it (the files at its top level).
    Zip(PathBuf),
    S3 { s3: crate::s3::S3, bucket: String, prefix: String },
}

impl Source {
    /// `s3://BUCKET/PREFIX` or a folder.
    pub async fn parse(location: &str, s3: impl std::future::Future<Output = crate::s3::S3>) -> Result<Source, String> {
        match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{location} names no bucket"));
                }
                let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
                Ok(Source::S3 { s3: s3.await, bucket: bucket.to_string(), prefix })
            }
            None => {
                let p = PathBuf::from(location);
                if p.is_file() && location.to_ascii_lowercase().ends_with(".zip") {
                    return Ok(Source::Zip(p));
                }
                if !p.is_dir() {
                    return Err(format!("{location} is not a folder, a package .zip or an s3://BUCKET/PREFIX location"));
                }
                Ok(Source::Folder(p))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Folder(p) | Source::Zip(p) => p.display().to_string(),
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// One file of the package, at most `max` bytes; `Ok(None)` when it is absent.
    async fn fetch(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Folder(dir) => {
                let path = dir.join(name);
                if !path.exists() {
                    return Ok(None);
                }
                let max2 = max;
                tokio::task::spawn_blocking(move || read_capped(&path, max2)).await.map_err(|e| e.to_string())?.map(Some)
            }
            Source::Zip(path) => {
                let (path, name) = (path.clone(), name.to_string());
                tokio::task::spawn_blocking(move || zip_entry(&path, &name, max)).await.map_err(|e| e.to_string())?
            }
            Source::S3 { s3, bucket, prefix } => match s3.get(bucket, &format!("{prefix}{name}"), None, max).await {
                Ok(b) => Ok(Some(b)),
                Err(crate::s3::FetchError::NotFound) => Ok(None),
                Err(e) => Err(format!("s3://{bucket}/{prefix}{name}: {e}")),
            },
        }
    }
}

/// One file at the top of a package ZIP, at most `max` bytes (its declared size is checked before it is read).
fn zip_entry(path: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| format!("{} is not a readable ZIP: {e}", path.display()))?;
    let mut entry = match z.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("{}: {name}: {e}", path.display())),
    };
    if entry.size() > max {
        return Err(format!("{name} in {} is larger than {max} bytes", path.display()));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    (&mut entry).take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {name}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{name} in {} is larger than {max} bytes", path.display()));
    }
    Ok(Some(bytes))
}

/// Installs (or replaces) the package at `source`: the manifest is read and checked, the backbone compared
/// with the agent's (`backbone_id`, and the file's SHA-256 when both sides know it), the model file checked
/// against its SHA-256, and the component swapped in. Returns the installed manifest.
pub async fn install(root: &Path, source: &Source, start_on_boot: bool, backbone_sha256: Option<&str>) -> Result<Manifest, String> {
    let where_ = source.describe();
    let manifest_bytes =
        source.fetch(MANIFEST_FILE, MAX_SMALL_FILE).await?.ok_or_else(|| format!("{where_} holds no {MANIFEST_FILE}: it is not a Vigil model package"))?;
    let manifest = package::parse_manifest(&manifest_bytes)?;
    if manifest.backbone_id != crate::engine::backbone::BACKBONE_ID {
        return Err(format!(
            "the package was built for backbone {}; this agent has {}",
            manifest.backbone_id,
            crate::engine::backbone::BACKBONE_ID
        ));
    }
    if let (Some(want), Some(have)) = (manifest.backbone_sha256.as_deref(), backbone_sha256) {
        if want != have {
            return Err(format!("the package was built for a backbone file with SHA-256 {want}; this agent's has {have}"));
        }
    }
    let size = manifest.files[MODEL_FILE].size;
    let model = source.fetch(MODEL_FILE, size).await?.ok_or_else(|| format!("{where_} holds no {MODEL_FILE}"))?;
    package::check_file(&manifest, MODEL_FILE, &model)?;
    let mut files = vec![(MODEL_FILE, model), (MANIFEST_FILE, manifest_bytes)];
    for name in [RECIPE_JSON, RECIPE_YAML] {
        if let Some(b) = source.fetch(name, MAX_SMALL_FILE).await? {
            files.push((name, b));
        }
    }
    let settings = Settings {
        start_on_boot,
        source: where_,
        installed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    files.push((SETTINGS_FILE, serde_json::to_vec_pretty(&settings).map_err(|e| e.to_string())?));
    let root = root.to_path_buf();
    let component = manifest.component_name.clone();
    tokio::task::spawn_blocking(move || swap_in(&root, &component, &files)).await.map_err(|e| e.to_string())??;
    Ok(manifest)
}

/// Writes the files into a new folder and swaps it in place of the component's old one.
fn swap_in(root: &Path, component: &str, files: &[(&str, Vec<u8>)]) -> Result<(), String> {
    let models = models_dir(root);
    std::fs::create_dir_all(&models).map_err(|e| format!("{}: {e}", models.display()))?;
    let stamp = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0));
    let new = models.join(format!(".new-{component}-{stamp}"));
    let old = models.join(format!(".old-{component}-{stamp}"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir(&new)?;
        for (name, bytes) in files {
            use std::io::Write;
            let mut f = std::fs::File::create(new.join(name))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&new);
        return Err(format!("writing {}: {e}", new.display()));
    }
    let target = models.join(component);
    let had = target.exists();
    if had {
        std::fs::rename(&target, &old).map_err(|e| format!("replacing {}: {e}", target.display()))?;
    }
    if let Err(e) = std::fs::rename(&new, &target) {
        if had {
            let _ = std::fs::rename(&old, &target);
        }
        return Err(format!("installing {}: {e}", target.display()));
    }
    if had {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Removes an installed component's folder.
pub fn remove(root: &Path, component: &str) -> Result<(), String> {
    read(root, component)?;
    std::fs::remove_dir_all(models_dir(root).join(component)).map_err(|e| e.to_string())
}

/// SHA-256 of a file, read in chunks (the backbone file is tens of MB).
pub fn file_sha256(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
