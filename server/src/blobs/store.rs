//! The blob store's interface ([`BlobStore`]) and what its implementations share: names, hashing, ages.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A stored blob as a listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub hash: String,
    pub bytes: u64,
    /// Time since it was last written.
    pub age: Duration,
}

/// Where blobs live. Every method blocks: call from a blocking thread.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores the bytes (if not already there; else refreshes their age) and returns their hash.
    fn put(&self, bytes: &[u8]) -> anyhow::Result<String>;
    /// Stores a file's content, streamed (never held in memory whole), and returns its hash.
    fn put_file(&self, path: &Path) -> anyhow::Result<String>;
    /// Reads a blob.
    fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>>;
    /// A local file holding the blob, for readers that stream it (the engine reads training images one at a
    /// time); a remote store gives a cached copy.
    fn local_path(&self, hash: &str) -> anyhow::Result<PathBuf>;
    /// Writes a blob into a new file at `dest`, streamed.
    fn copy_to(&self, hash: &str, dest: &Path) -> anyhow::Result<()>;
    /// Every stored blob with its size and age.
    fn list(&self) -> anyhow::Result<Vec<Listed>>;
    /// Time since the blob was last written; `None` when it is not stored.
    fn age(&self, hash: &str) -> anyhow::Result<Option<Duration>>;
    /// Removes a blob (and any cached copy).
    fn delete(&self, hash: &str) -> anyhow::Result<()>;
    /// Where the blobs are, as the process registry records it: `local:/abs/path` or `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// Whether processes on other hosts can share it.
    fn is_shared(&self) -> bool;
}

/// sha256 of the bytes, lowercase hex: a blob's name.
pub fn hash_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file's content, read in chunks, and its size.
pub fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// A blob name is 64 lowercase hex digits, nothing else (it becomes a file name and an object key).
pub fn check_name(hash: &str) -> anyhow::Result<()> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        anyhow::bail!("not a blob name: {hash:?}");
    }
    Ok(())
}

/// Blobs put again after this long have their age refreshed (a collection sees them as new).
pub const REFRESH_AFTER: Duration = Duration::from_secs(3600);
