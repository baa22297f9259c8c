//! Where an import reads from, and reading there: the size limits, a folder import's place (an S3 prefix or a
//! directory on the server) and its listing, and local sources (a directory, or an uploaded zip) whose
//! references cannot lead out of them.

use crate::s3::FetchError;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// LFV's limit for one image file.
pub const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;
/// LFV's limit for a manifest.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest manifest line: a JSON line with a colour map of 20 labels is a few kilobytes.
pub const MAX_MANIFEST_LINE_BYTES: usize = 256 * 1024;

/// A source of files on the server.
#[derive(Clone, Debug)]
pub enum Local {
    /// A directory: `file://` URIs under it.
    Dir(PathBuf),
    /// A zip archive (an uploaded export): references are member names.
    Zip(Arc<ZipSource>),
}

/// Most members an uploaded archive may hold (images, masks and the manifest).
pub const MAX_ZIP_ENTRIES: usize = 1_000_000;
/// Largest ratio of a member's size to its compressed size (beyond: a zip bomb). Images barely compress; a
/// manifest of JSON lines compresses about 10:1.
pub const MAX_ZIP_RATIO: u64 = 100;

/// An uploaded archive whose central directory is read once, when it is first opened, and shared by every
/// member read (reading it again per image would cost time quadratic in the number of members).
pub struct ZipSource {
    path: PathBuf,
    archive: std::sync::Mutex<Option<zip::ZipArchive<std::fs::File>>>,
}

impl std::fmt::Debug for ZipSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipSource").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ZipSource {
    pub fn new(path: PathBuf) -> ZipSource {
        ZipSource { path, archive: std::sync::Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the open archive (blocking: call from a blocking thread), opening it the first time and
    /// refusing an archive of more than `MAX_ZIP_ENTRIES` members.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut zip::ZipArchive<std::fs::File>) -> Result<T, String>) -> Result<T, String> {
        let mut guard = self.archive.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let file = std::fs::File::open(&self.path).map_err(|e| format!("could not be read: {e}"))?;
            let zip = zip::ZipArchive::new(file).map_err(|_| "is not a zip archive".to_string())?;
            if zip.len() > MAX_ZIP_ENTRIES {
                return Err(format!("holds {} files; an archive may hold at most {MAX_ZIP_ENTRIES}", zip.len()));
            }
            *guard = Some(zip);
        }
        f(guard.as_mut().expect("opened above"))
    }
}

/// Refuses a member whose declared sizes say it expands more than `MAX_ZIP_RATIO` times (the actual read is
/// bounded as well, so a member that lies about its size still cannot expand further than its limit).
pub(super) fn check_ratio(member: &zip::read::ZipFile<'_, std::fs::File>) -> Result<(), String> {
    let (size, packed) = (member.size(), member.compressed_size().max(1));
    if size > 1024 * 1024 && size / packed > MAX_ZIP_RATIO {
        return Err(format!("{} expands {}:1 (more than {MAX_ZIP_RATIO}:1; a zip bomb?)", member.name(), size / packed));
    }
    Ok(())
}

pub(super) fn read_limited(mut r: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    r.by_ref().take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("could not be read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(fetch_reason(FetchError::TooLarge(max)));
    }
    Ok(bytes)
}

impl Local {
    /// Reads a reference: a `file://` path under the directory, or a member of the zip.
    pub(super) fn read(&self, uri: &str, max: u64) -> Result<Vec<u8>, String> {
        match self {
            Local::Dir(root) => {
                let path = uri.strip_prefix("file://").ok_or_else(|| format!("{uri} is not a file:// or s3:// URI"))?;
                let path = Path::new(path);
                if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) || !path.starts_with(root) {
                    return Err(format!("{uri} is outside the imported folder"));
                }
                // A symbolic link inside the folder must not lead out of it either.
                if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
                    if !real.starts_with(&real_root) {
                        return Err(format!("{uri} is outside the imported folder"));
                    }
                }
                let f = std::fs::File::open(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => "file not found".to_string(),
                    _ => format!("could not be read: {e}"),
                })?;
                read_limited(f, max)
            }
            Local::Zip(source) => source
                .with(|zip| {
                    let name = uri.trim_start_matches("./");
                    let member = zip.by_name(name).map_err(|_| "not in the archive".to_string())?;
                    if member.size() > max {
                        return Err(fetch_reason(FetchError::TooLarge(max)));
                    }
                    check_ratio(&member)?;
                    read_limited(member, max)
                })
                .map_err(|e| if e.starts_with("is not") || e.starts_with("holds") { format!("the archive {e}") } else { e }),
        }
    }
}

pub(super) fn fetch_reason(e: FetchError) -> String {
    match e {
        FetchError::TooLarge(_) => "the file is larger than 8 MB".into(),
        other => other.to_string(),
    }
}

/// Where a folder or MVTec import reads from: an S3 prefix or a directory on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `prefix` is empty or ends with `/`.
    S3 { bucket: String, prefix: String },
    /// An absolute path.
    Dir(PathBuf),
}

impl Place {
    /// `s3://bucket/prefix/` or an absolute path on the server.
    pub fn parse(s: &str) -> Result<Place, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{s:?} names no bucket: use s3://bucket/prefix/."));
            }
            let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
            return Ok(Place::S3 { bucket: bucket.to_string(), prefix });
        }
        let path = Path::new(s.strip_prefix("file://").unwrap_or(s));
        if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(format!("{s:?} is neither an s3://bucket/prefix/ URI nor an absolute path on the server."));
        }
        Ok(Place::Dir(path.to_path_buf()))
    }

    /// The URI of a file under the place.
    pub fn uri(&self, rel: &str) -> String {
        match self {
            Place::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}{rel}"),
            Place::Dir(root) => format!("file://{}", root.join(rel).display()),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Place::Dir(root) => write!(f, "{}/", root.display().to_string().trim_end_matches('/')),
        }
    }
}

/// Files under a directory, as `/`-separated paths relative to it, sorted (hidden entries skipped).
pub(super) fn walk(root: &Path) -> std::io::Result<Vec<String>> {
    const MAX_FILES: usize = 200_000;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
                if out.len() > MAX_FILES {
                    return Err(std::io::Error::other(format!("more than {MAX_FILES} files")));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_sources_stay_inside_their_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.png"), b"12345").unwrap();
        let local = Local::Dir(dir.path().to_path_buf());
        let uri = format!("file://{}", dir.path().join("a/x.png").display());
        assert_eq!(local.read(&uri, 10).unwrap(), b"12345");
        assert!(local.read(&uri, 3).unwrap_err().contains("larger"));
        assert!(local.read("file:///etc/passwd", 10).unwrap_err().contains("outside"));
        assert!(local.read(&format!("file://{}/a/../a/x.png", dir.path().display()), 10).unwrap_err().contains("outside"));
        assert_eq!(local.read(&format!("file://{}/a/none.png", dir.path().display()), 10).unwrap_err(), "file not found");
        assert_eq!(walk(dir.path()).unwrap(), vec!["a/x.png".to_string()]);
        // A link inside the root that points outside it is refused.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.png"), dir.path().join("a/link.png")).unwrap();
        let link = format!("file://{}", dir.path().join("a/link.png").display());
        assert!(local.read(&link, 10).unwrap_err().contains("outside"));
    }
}
