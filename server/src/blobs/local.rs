//! Blobs in a local directory, `DATA_DIR/blobs/ab/cdef…`: the embedded default. Writes go to a temporary file
//! first and are renamed into place, so a crash never leaves a half-written blob under its final name.

use super::store::{check_name, hash_file, hash_of, BlobStore, Listed, REFRESH_AFTER};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Blobs in a local directory.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = std::path::absolute(data_dir.join("blobs")).unwrap_or_else(|_| data_dir.join("blobs"));
        std::fs::create_dir_all(root.join("tmp")).with_context(|| format!("creating {}", root.display()))?;
        Ok(LocalBlobs { root })
    }

    fn path(&self, hash: &str) -> anyhow::Result<PathBuf> {
        check_name(hash)?;
        Ok(self.root.join(&hash[..2]).join(&hash[2..]))
    }

    /// A fresh temporary file name for `hash`.
    fn tmp(&self, hash: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("{hash}.{}", hex::encode(rand::random::<[u8; 6]>()))))
    }

    /// Whether the blob is there with its content intact; refreshes the age of one written long ago.
    fn intact(&self, hash: &str, path: &Path, read: impl FnOnce(&Path) -> Option<String>) -> bool {
        if !path.is_file() || read(path).as_deref() != Some(hash) {
            return false;
        }
        let old = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok()).is_some_and(|a| a > REFRESH_AFTER);
        if old {
            if let Ok(f) = std::fs::File::options().append(true).open(path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
        true
    }

    /// Moves a written temporary file into place, durably.
    fn install(&self, tmp: &Path, hash: &str) -> anyhow::Result<()> {
        let path = self.path(hash)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        if let Err(e) = std::fs::rename(tmp, &path) {
            let _ = std::fs::remove_file(tmp);
            return Err(e).with_context(|| format!("storing blob {hash}"));
        }
        // The rename itself is durable once the folder is flushed.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
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
        if self.intact(&hash, &path, |p| std::fs::read(p).ok().map(|b| hash_of(&b))) {
            return Ok(hash);
        }
        let tmp = self.tmp(&hash)?;
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        self.install(&tmp, &hash)?;
        Ok(hash)
    }

    fn put_file(&self, src: &Path) -> anyhow::Result<String> {
        let (hash, _) = hash_file(src)?;
        let path = self.path(&hash)?;
        if self.intact(&hash, &path, |p| hash_file(p).ok().map(|(h, _)| h)) {
            return Ok(hash);
        }
        let tmp = self.tmp(&hash)?;
        let copied = std::fs::copy(src, &tmp).and_then(|_| std::fs::File::open(&tmp)?.sync_all());
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("copying {} into the blob store", src.display()));
        }
        self.install(&tmp, &hash)?;
        Ok(hash)
    }

    /// Reads a blob. Blocking.
    fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(hash)?;
        std::fs::read(&path).with_context(|| format!("reading blob {hash}"))
    }

    fn copy_to(&self, hash: &str, dest: &Path) -> anyhow::Result<()> {
        std::fs::copy(self.path(hash)?, dest).with_context(|| format!("reading blob {hash}"))?;
        Ok(())
    }

    fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let now = SystemTime::now();
        let Ok(shards) = std::fs::read_dir(&self.root) else { return Ok(out) };
        for shard in shards.flatten() {
            let prefix = shard.file_name().to_string_lossy().to_string();
            if prefix.len() != 2 || !shard.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            for f in std::fs::read_dir(shard.path())?.flatten() {
                let hash = format!("{prefix}{}", f.file_name().to_string_lossy());
                let Ok(meta) = f.metadata() else { continue };
                if check_name(&hash).is_err() || !meta.is_file() {
                    continue;
                }
                let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
                out.push(Listed { hash, bytes: meta.len(), age });
            }
        }
        Ok(out)
    }

    fn age(&self, hash: &str) -> anyhow::Result<Option<Duration>> {
        match std::fs::metadata(self.path(hash)?) {
            Ok(m) => Ok(Some(m.modified().ok().and_then(|t| t.elapsed().ok()).unwrap_or_default())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, hash: &str) -> anyhow::Result<()> {
        match std::fs::remove_file(self.path(hash)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn location(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn is_shared(&self) -> bool {
        false
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
        // Listed with sizes; deleted one by one (collection decides which: `crate::collect_blob_garbage`).
        let mut listed: Vec<(String, u64)> = blobs.list().unwrap().into_iter().map(|l| (l.hash, l.bytes)).collect();
        listed.sort();
        let mut want = vec![(a.clone(), 5), (b.clone(), 5)];
        want.sort();
        assert_eq!(listed, want);
        assert!(blobs.age(&a).unwrap().unwrap() < std::time::Duration::from_secs(60));
        blobs.delete(&b).unwrap();
        blobs.delete(&b).unwrap();
        assert_eq!(blobs.age(&b).unwrap(), None);
        assert!(blobs.get(&a).is_ok());
        assert!(blobs.get(&b).is_err());
        // Files go in streamed, with the same names as bytes.
        let f = dir.path().join("f.bin");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(blobs.put_file(&f).unwrap(), a);
        let out = dir.path().join("out.bin");
        blobs.copy_to(&a, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
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
