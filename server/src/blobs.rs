//! The blob store: image, mask, model and evaluation bytes, content-addressed (sha256) and deduplicated.
//!
//! Callers hold a [`Blobs`] handle and never know where the bytes are: [`BlobStore`] is the interface, and
//! [`LocalBlobs`] (a local directory, `DATA_DIR/blobs/ab/cdef…`) its implementation today; an object store can
//! be added beside it without touching a caller. Local writes go to a temporary file first and are renamed into
//! place, so a crash never leaves a half-written blob under its final name.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where blobs live. Every method blocks: call from a blocking thread.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores the bytes (if not already there) and returns their hash.
    fn put(&self, bytes: &[u8]) -> anyhow::Result<String>;
    /// Reads a blob.
    fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>>;
    /// A local file holding the blob, for readers that stream it (the engine reads training images one at a
    /// time); a remote store gives a cached copy.
    fn local_path(&self, hash: &str) -> anyhow::Result<PathBuf>;
    /// Deletes the blobs not in `referenced` written longer than `grace` ago. Returns (blobs, bytes) removed.
    fn collect_garbage(&self, referenced: &HashSet<String>, grace: Duration) -> anyhow::Result<(usize, u64)>;
}

/// The server's blob store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs(Arc<dyn BlobStore>);

impl Blobs {
    /// The local store under `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Blobs(Arc::new(LocalBlobs::open(data_dir)?)))
    }

    /// Any store.
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Blobs(store)
    }

    /// Stores the bytes and returns their hash. Blocking.
    pub fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        self.0.put(bytes)
    }

    /// Reads a blob. Blocking.
    pub fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        check_name(hash)?;
        self.0.get(hash)
    }

    /// A local file holding the blob. Blocking.
    pub fn path_of(&self, hash: &str) -> anyhow::Result<PathBuf> {
        check_name(hash)?;
        self.0.local_path(hash)
    }

    /// Deletes the blobs not in `referenced` older than `grace`. Blocking.
    pub fn collect_garbage(&self, referenced: &HashSet<String>, grace: Duration) -> anyhow::Result<(usize, u64)> {
        self.0.collect_garbage(referenced, grace)
    }
}

/// sha256 of the bytes, lowercase hex: a blob's name.
pub fn hash_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A blob name is 64 hex digits, nothing else (it becomes a file name).
fn check_name(hash: &str) -> anyhow::Result<()> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("not a blob name: {hash:?}");
    }
    Ok(())
}

/// Blobs in a local directory.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(root.join("tmp")).with_context(|| format!("creating {}", root.display()))?;
        Ok(LocalBlobs { root })
    }

    fn path(&self, hash: &str) -> anyhow::Result<PathBuf> {
        check_name(hash)?;
        Ok(self.root.join(&hash[..2]).join(&hash[2..]))
    }
}

impl BlobStore for LocalBlobs {
    fn local_path(&self, hash: &str) -> anyhow::Result<PathBuf> {
        self.path(hash)
    }

    /// Stores the bytes (if not already there) and returns their hash.
    ///
    /// The bytes are written to a temporary file, flushed to disk, then renamed into place (and the folder
    /// flushed), so a crash never leaves a half-written blob under its final name. A blob already there is
    /// trusted only if its content still has its hash; a damaged one is replaced.
    fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        use std::io::Write;
        let hash = hash_of(bytes);
        let path = self.path(&hash)?;
        if path.is_file() && std::fs::read(&path).map(|b| hash_of(&b) == hash).unwrap_or(false) {
            return Ok(hash);
        }
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let tmp = self.root.join("tmp").join(format!("{hash}.{}", hex::encode(rand::random::<[u8; 6]>())));
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        std::fs::rename(&tmp, &path).with_context(|| format!("storing blob {hash}"))?;
        // The rename itself is durable once the folder is flushed.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(hash)
    }

    /// Deletes the blobs not in `referenced` whose files are older than `grace` (a blob written by an import
    /// or upload that has not committed its entries yet is younger). Returns (files, bytes) removed. Blocking.
    fn collect_garbage(&self, referenced: &HashSet<String>, grace: Duration) -> anyhow::Result<(usize, u64)> {
        let (mut files, mut bytes) = (0usize, 0u64);
        let now = std::time::SystemTime::now();
        for shard in std::fs::read_dir(&self.root)? {
            let shard = shard?;
            let prefix = shard.file_name().to_string_lossy().to_string();
            if prefix.len() != 2 || !shard.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(shard.path())? {
                let f = f?;
                let hash = format!("{prefix}{}", f.file_name().to_string_lossy());
                if self.path(&hash).is_err() || referenced.contains(&hash) {
                    continue;
                }
                let meta = f.metadata()?;
                let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
                if meta.is_file() && age >= grace && std::fs::remove_file(f.path()).is_ok() {
                    files += 1;
                    bytes += meta.len();
                }
            }
        }
        Ok((files, bytes))
    }

    /// Reads a blob. Blocking.
    fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(hash)?;
        std::fs::read(&path).with_context(|| format!("reading blob {hash}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_blobs_are_replaced_and_unreferenced_ones_collected() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(dir.path()).unwrap();
        let a = blobs.put(b"hello").unwrap();
        let b = blobs.put(b"world").unwrap();
        // A blob whose file was damaged is written again, not trusted.
        std::fs::write(blobs.path(&a).unwrap(), b"hellO").unwrap();
        assert_eq!(blobs.put(b"hello").unwrap(), a);
        assert_eq!(blobs.get(&a).unwrap(), b"hello");
        // Young blobs survive the grace period; with none, only the unreferenced one goes.
        let keep: std::collections::HashSet<String> = [a.clone()].into();
        assert_eq!(blobs.collect_garbage(&keep, std::time::Duration::from_secs(3600)).unwrap(), (0, 0));
        assert_eq!(blobs.collect_garbage(&keep, std::time::Duration::ZERO).unwrap(), (1, 5));
        assert!(blobs.get(&a).is_ok());
        assert!(blobs.get(&b).is_err());
    }

    #[test]
    fn content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(dir.path()).unwrap();
        let a = blobs.put(b"hello").unwrap();
        assert_eq!(a, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(blobs.put(b"hello").unwrap(), a);
        assert_eq!(blobs.get(&a).unwrap(), b"hello");
        assert!(blobs.get("../../etc/passwd").is_err());
        assert!(blobs.get(&"0".repeat(64)).is_err());
        let files = walk(&dir.path().join("blobs"));
        assert_eq!(files, 1, "one file for two puts of the same bytes");
    }

    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
            .sum()
    }
}
