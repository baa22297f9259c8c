//! The blob store: image, mask, model, evaluation and batch-result bytes, content-addressed (sha256) and
//! deduplicated.
//!
//! Callers hold a [`Blobs`] handle and never know where the bytes are: [`BlobStore`] is the interface, with two
//! implementations chosen by `VIGIL_BLOB_STORE` — [`LocalBlobs`] (`DATA_DIR/blobs/ab/cdef…`, the embedded
//! default) and [`S3Blobs`] (`s3://bucket/prefix/ab/cdef…` in any S3-compatible store, with a bounded local
//! cache), which every process of a deployment on several hosts shares.
//!
//! Collection of unused blobs works by age: a blob is removed only when nothing refers to it *and* it was last
//! written longer than a grace period ago. Every `put` of bytes already stored refreshes their age, so a blob
//! that an import, upload or training is about to reference (written, its row not yet committed) is young and
//! survives a collection running at the same moment on another process.

mod cache;
mod local;
mod remote;
mod store;

pub use local::LocalBlobs;
pub use remote::S3Blobs;
pub use store::{check_name, hash_file, hash_of, BlobStore, Listed, REFRESH_AFTER};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The server's blob store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Blobs(Arc<dyn BlobStore>);

impl Blobs {
    /// The local store under `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Blobs(Arc::new(LocalBlobs::open(data_dir)?)))
    }

    /// The store a configuration names: `s3://bucket/prefix` (with its own endpoint and credentials), else the
    /// local one under the data directory.
    pub async fn from_config(args: &crate::config::BlobArgs, data_dir: &Path) -> anyhow::Result<Self> {
        match args.store.as_deref().map(str::trim) {
            None | Some("") | Some("local") => Self::open(data_dir),
            Some(url) => {
                let (bucket, prefix) = parse_s3_url(url)?;
                let cache_dir = data_dir.join("blob-cache");
                let store = S3Blobs::connect(args, bucket, prefix, cache_dir).await?;
                Ok(Blobs(Arc::new(store)))
            }
        }
    }

    /// Any store.
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Blobs(store)
    }

    /// Stores the bytes and returns their hash. Blocking.
    pub fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        self.0.put(bytes)
    }

    /// Stores a file's content, streamed, and returns its hash. Blocking.
    pub fn put_file(&self, path: &Path) -> anyhow::Result<String> {
        self.0.put_file(path)
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

    /// Writes a blob into a new file. Blocking.
    pub fn copy_to(&self, hash: &str, dest: &Path) -> anyhow::Result<()> {
        check_name(hash)?;
        self.0.copy_to(hash, dest)
    }

    /// Every stored blob. Blocking.
    pub fn list(&self) -> anyhow::Result<Vec<Listed>> {
        self.0.list()
    }

    /// Time since a blob was last written. Blocking.
    pub fn age(&self, hash: &str) -> anyhow::Result<Option<Duration>> {
        check_name(hash)?;
        self.0.age(hash)
    }

    /// Removes a blob. Blocking.
    pub fn delete(&self, hash: &str) -> anyhow::Result<()> {
        check_name(hash)?;
        self.0.delete(hash)
    }

    pub fn location(&self) -> String {
        self.0.location()
    }

    pub fn is_shared(&self) -> bool {
        self.0.is_shared()
    }
}

/// `s3://bucket/prefix` → (bucket, prefix ending in `/`, or empty).
pub fn parse_s3_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("VIGIL_BLOB_STORE must be `local` or s3://bucket/prefix, not {url:?}"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        anyhow::bail!("VIGIL_BLOB_STORE names the bucket {bucket:?}, which is not a valid S3 bucket name");
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..") {
        anyhow::bail!("VIGIL_BLOB_STORE's prefix may not contain . or .. segments");
    }
    Ok((bucket.to_string(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_store_urls() {
        assert_eq!(parse_s3_url("s3://vigil-blobs").unwrap(), ("vigil-blobs".into(), String::new()));
        assert_eq!(parse_s3_url("s3://vigil-blobs/plant/a/").unwrap(), ("vigil-blobs".into(), "plant/a/".into()));
        assert!(parse_s3_url("http://x").is_err());
        assert!(parse_s3_url("s3://Bad_Bucket/x").is_err());
        assert!(parse_s3_url("s3://bucket/../x").is_err());
        assert!(check_name(&"A".repeat(64)).is_err());
        assert!(check_name(&"a".repeat(64)).is_ok());
    }
}
