//! Blobs in an S3-compatible bucket (`VIGIL_BLOB_STORE=s3://bucket/prefix`), shared by every Vigil process of a
//! deployment: `prefix/ab/cdef…`, written once per content, large ones in 8 MiB multipart pieces, read through
//! a bounded local cache (`cache.rs`).
//!
//! The store's methods block (the engine and the importers call them from blocking threads); each runs its S3
//! request on a small runtime of its own, so a caller on any thread — a blocking pool thread, a plain thread of
//! the command line — waits without needing a runtime.

use super::cache::Cache;
use super::store::{check_name, hash_file, hash_of, BlobStore, Listed, REFRESH_AFTER};
use anyhow::Context;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Objects up to this size go up in one request; larger ones in parts of [`PART_BYTES`].
const SINGLE_PUT_MAX: u64 = 16 << 20;
const PART_BYTES: usize = 8 << 20;

/// The runtime S3 requests run on (never dropped: the store lives as long as the process).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vigil-blobs")
            .enable_all()
            .build()
            .expect("starting the blob store's runtime")
    })
}

/// Runs a future on the store's runtime and waits for it, from any thread that may block.
fn block<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the blob store's runtime stopped")
}

pub struct S3Blobs {
    client: Client,
    bucket: String,
    prefix: String,
    cache: Cache,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs").field("bucket", &self.bucket).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// An S3 error in words, without request ids or headers.
fn said<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or_default()),
        None => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

impl S3Blobs {
    /// Connects with the blob store's own settings and checks that the bucket answers.
    pub async fn connect(args: &crate::config::BlobArgs, bucket: String, prefix: String, cache_dir: PathBuf) -> anyhow::Result<Self> {
        let settings = crate::s3::S3Settings {
            endpoint: args.endpoint.clone(),
            region: args.region.clone(),
            access_key_id: args.access_key_id.clone(),
            secret_access_key: args.secret_access_key.clone(),
            force_path_style: args.force_path_style,
        };
        let client = runtime().spawn(async move { crate::s3::S3::connect(&settings).await.client().clone() }).await?;
        let (c, b) = (client.clone(), bucket.clone());
        runtime()
            .spawn(async move { c.head_bucket().bucket(&b).send().await.map_err(|e| said(&e)) })
            .await?
            .map_err(|e| anyhow::anyhow!("the blob store s3://{bucket}/{prefix} does not answer ({e}); check VIGIL_BLOB_S3_* and that the bucket exists"))?;
        let cache = Cache::open(cache_dir, args.cache_mb.max(16) << 20);
        Ok(S3Blobs { client, bucket, prefix, cache })
    }

    fn key(&self, hash: &str) -> String {
        format!("{}{}/{}", self.prefix, &hash[..2], &hash[2..])
    }

    /// The object's size and age, if it exists.
    fn head(&self, hash: &str) -> anyhow::Result<Option<(u64, Duration)>> {
        let (c, b, k, hash) = (self.client.clone(), self.bucket.clone(), self.key(hash), hash.to_string());
        block(async move {
            match c.head_object().bucket(b).key(k).send().await {
                Ok(o) => {
                    let age = o
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default();
                    Ok(Some((o.content_length().unwrap_or(0).max(0) as u64, age)))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
                Err(e) => Err(anyhow::anyhow!("checking blob {hash} in the blob store: {}", said(&e))),
            }
        })
    }

    /// Whether the object is there already; refreshes the age of one written long ago (collection sees it as new).
    fn present(&self, hash: &str, refresh: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<bool> {
        match self.head(hash)? {
            Some((_, age)) if age > REFRESH_AFTER => refresh().map(|_| true),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    fn put_bytes(&self, hash: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        if bytes.len() as u64 > SINGLE_PUT_MAX {
            let mut chunks = bytes.chunks(PART_BYTES).map(|c| Ok(c.to_vec()));
            return self.multipart(hash, &mut chunks);
        }
        let (c, b, k) = (self.client.clone(), self.bucket.clone(), self.key(hash));
        block(async move { c.put_object().bucket(b).key(k).body(ByteStream::from(bytes)).send().await.map(|_| ()).map_err(|e| said(&e)) })
            .map_err(|e| anyhow::anyhow!("writing blob {hash} to the blob store: {e}"))
    }

    /// Uploads in parts; one part in memory at a time. An upload that fails is aborted (no parts left behind).
    fn multipart(&self, hash: &str, parts: &mut dyn Iterator<Item = anyhow::Result<Vec<u8>>>) -> anyhow::Result<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let (c, b, k) = (self.client.clone(), self.bucket.clone(), self.key(hash));
        let upload_id = {
            let (c, b, k) = (c.clone(), b.clone(), k.clone());
            block(async move { c.create_multipart_upload().bucket(b).key(k).send().await.map_err(|e| said(&e)) })
                .map_err(|e| anyhow::anyhow!("starting the upload of blob {hash}: {e}"))?
                .upload_id()
                .unwrap_or_default()
                .to_string()
        };
        let mut done = Vec::new();
        let uploaded = (|| -> anyhow::Result<()> {
            for (i, part) in parts.enumerate() {
                let part = part?;
                let n = i as i32 + 1;
                let (c, b, k, id) = (c.clone(), b.clone(), k.clone(), upload_id.clone());
                let etag = block(async move {
                    c.upload_part().bucket(b).key(k).upload_id(id).part_number(n).body(ByteStream::from(part)).send().await.map_err(|e| said(&e))
                })
                .map_err(|e| anyhow::anyhow!("uploading part {n} of blob {hash}: {e}"))?
                .e_tag()
                .map(str::to_string);
                done.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
            }
            let (c, b, k, id) = (c.clone(), b.clone(), k.clone(), upload_id.clone());
            let parts = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
            block(async move {
                c.complete_multipart_upload().bucket(b).key(k).upload_id(id).multipart_upload(parts).send().await.map(|_| ()).map_err(|e| said(&e))
            })
            .map_err(|e| anyhow::anyhow!("completing the upload of blob {hash}: {e}"))
        })();
        if uploaded.is_err() {
            let (c, b, k, id) = (c.clone(), b.clone(), k.clone(), upload_id.clone());
            let _ = block(async move { c.abort_multipart_upload().bucket(b).key(k).upload_id(id).send().await });
        }
        uploaded
    }

    /// Streams the object into `dest` (a new file); returns its size.
    fn download(&self, hash: &str, dest: &Path) -> anyhow::Result<u64> {
        let (c, b, k, path) = (self.client.clone(), self.bucket.clone(), self.key(hash), dest.to_path_buf());
        let h = hash.to_string();
        block(async move {
            use tokio::io::AsyncWriteExt;
            let o = c.get_object().bucket(b).key(k).send().await.map_err(|e| anyhow::anyhow!("reading blob {h} from the blob store: {}", said(&e)))?;
            let mut body = o.body;
            let mut f = tokio::fs::File::create(&path).await.with_context(|| format!("writing {}", path.display()))?;
            let mut n = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(|e| anyhow::anyhow!("reading blob {h}: {e}"))? {
                n += chunk.len() as u64;
                f.write_all(&chunk).await?;
            }
            f.flush().await?;
            Ok(n)
        })
    }

    /// The blob as a cached file: fetched (and checked against its hash) if not cached.
    fn cached(&self, hash: &str, pin: bool) -> anyhow::Result<PathBuf> {
        if let Some(p) = self.cache.lookup(hash, pin) {
            return Ok(p);
        }
        let tmp = self.cache.temp(hash)?;
        let fetched = self.download(hash, &tmp).and_then(|n| {
            let (got, _) = hash_file(&tmp)?;
            anyhow::ensure!(got == hash, "blob {hash} in the blob store is damaged (its content hashes to {got})");
            Ok(n)
        });
        match fetched {
            Ok(n) => Ok(self.cache.install(&tmp, hash, n, pin)?),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl BlobStore for S3Blobs {
    fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let hash = hash_of(bytes);
        if !self.present(&hash, || self.put_bytes(&hash, bytes.to_vec()))? {
            self.put_bytes(&hash, bytes.to_vec())?;
        }
        Ok(hash)
    }

    fn put_file(&self, path: &Path) -> anyhow::Result<String> {
        use std::io::Read;
        let (hash, size) = hash_file(path)?;
        let upload = || -> anyhow::Result<()> {
            if size <= SINGLE_PUT_MAX {
                return self.put_bytes(&hash, std::fs::read(path)?);
            }
            let mut f = std::fs::File::open(path)?;
            let mut parts = std::iter::from_fn(|| {
                let mut buf = Vec::with_capacity(PART_BYTES);
                match (&mut f).take(PART_BYTES as u64).read_to_end(&mut buf) {
                    Ok(0) => None,
                    Ok(_) => Some(Ok(buf)),
                    Err(e) => Some(Err(e.into())),
                }
            });
            self.multipart(&hash, &mut parts)
        };
        if !self.present(&hash, upload)? {
            upload()?;
        }
        Ok(hash)
    }

    fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        if let Some(p) = self.cache.lookup(hash, false) {
            if let Ok(b) = std::fs::read(&p) {
                return Ok(b);
            }
        }
        match self.head(hash)? {
            None => anyhow::bail!("blob {hash} is not in the blob store"),
            Some((size, _)) if self.cache.fits(size) => Ok(std::fs::read(self.cached(hash, false)?)?),
            Some(_) => {
                let tmp = self.cache.temp(hash)?;
                let read = self.download(hash, &tmp).and_then(|_| Ok(std::fs::read(&tmp)?));
                let _ = std::fs::remove_file(&tmp);
                let bytes = read?;
                anyhow::ensure!(hash_of(&bytes) == hash, "blob {hash} in the blob store is damaged");
                Ok(bytes)
            }
        }
    }

    fn local_path(&self, hash: &str) -> anyhow::Result<PathBuf> {
        self.cached(hash, true)
    }

    fn copy_to(&self, hash: &str, dest: &Path) -> anyhow::Result<()> {
        self.download(hash, dest).map(|_| ())
    }

    fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let (c, b, prefix) = (self.client.clone(), self.bucket.clone(), self.prefix.clone());
        block(async move {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = c
                    .list_objects_v2()
                    .bucket(&b)
                    .prefix(&prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("listing the blob store: {}", said(&e)))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let hash: String = key[prefix.len().min(key.len())..].chars().filter(|&c| c != '/').collect();
                    if check_name(&hash).is_err() || key != format!("{prefix}{}/{}", &hash[..2], &hash[2..]) {
                        continue;
                    }
                    let age =
                        o.last_modified().and_then(|t| SystemTime::try_from(*t).ok()).and_then(|t| t.elapsed().ok()).unwrap_or_default();
                    out.push(Listed { hash, bytes: o.size().unwrap_or(0).max(0) as u64, age });
                }
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(out)
        })
    }

    fn age(&self, hash: &str) -> anyhow::Result<Option<Duration>> {
        Ok(self.head(hash)?.map(|(_, age)| age))
    }

    fn delete(&self, hash: &str) -> anyhow::Result<()> {
        self.cache.remove(hash);
        let (c, b, k) = (self.client.clone(), self.bucket.clone(), self.key(hash));
        block(async move { c.delete_object().bucket(b).key(k).send().await.map(|_| ()).map_err(|e| said(&e)) })
            .map_err(|e| anyhow::anyhow!("deleting blob {hash}: {e}"))
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn is_shared(&self) -> bool {
        true
    }
}
