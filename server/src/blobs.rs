//! The blob store: image and mask bytes, content-addressed (sha256) and deduplicated, in a local directory
//! (`DATA_DIR/blobs/ab/cdef…`). Writes go to a temporary file first and are renamed into place, so a crash
//! never leaves a half-written blob under its final name.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Blobs {
    root: PathBuf,
}

/// sha256 of the bytes, lowercase hex: a blob's name.
pub fn hash_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Blobs {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(root.join("tmp")).with_context(|| format!("creating {}", root.display()))?;
        Ok(Blobs { root })
    }

    fn path(&self, hash: &str) -> anyhow::Result<PathBuf> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("not a blob name: {hash:?}");
        }
        Ok(self.root.join(&hash[..2]).join(&hash[2..]))
    }

    /// The file of a blob, for readers that stream it (the engine reads training images one at a time).
    pub fn path_of(&self, hash: &str) -> anyhow::Result<PathBuf> {
        self.path(hash)
    }

    /// Stores the bytes (if not already there) and returns their hash. Blocking: call from a blocking thread.
    pub fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let hash = hash_of(bytes);
        let path = self.path(&hash)?;
        if path.is_file() {
            return Ok(hash);
        }
        std::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        let tmp = self.root.join("tmp").join(format!("{hash}.{}", hex::encode(rand::random::<[u8; 6]>())));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("storing blob {hash}"))?;
        Ok(hash)
    }

    /// Reads a blob. Blocking.
    pub fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(hash)?;
        std::fs::read(&path).with_context(|| format!("reading blob {hash}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
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
