//! S3-compatible object storage through `aws-sdk-s3`: reading import sources (manifests, images, masks,
//! folder prefixes). Endpoint, region, path-style and credentials come from the server's configuration and
//! otherwise from the standard AWS variables (`AWS_ENDPOINT_URL_S3`, `AWS_ACCESS_KEY_ID`, ...) via `aws-config`,
//! so MinIO, Garage, s3s and AWS itself all work.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::Client;

/// An S3 connection's settings; `Debug` shows whether the secret is set, never the secret.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Sealed with the server key when serialised (job specs are stored in the database).
    #[serde(default, with = "crate::auth::secretbox::sealed_opt")]
    pub secret_access_key: Option<String>,
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<set>"))
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

impl S3Settings {
    /// The server's own S3 settings (`VIGIL_S3_*`).
    pub fn of(config: &crate::config::Config) -> S3Settings {
        S3Settings::of_args(&config.s3)
    }

    /// The settings `VIGIL_S3_*` (or their flags) give.
    pub fn of_args(a: &crate::config::S3Args) -> S3Settings {
        S3Settings {
            endpoint: a.endpoint.clone(),
            region: a.region.clone(),
            access_key_id: a.access_key_id.clone(),
            secret_access_key: a.secret_access_key.clone(),
            force_path_style: a.force_path_style,
        }
    }
}

/// Seconds to open a connection to an S3 endpoint.
pub const CONNECT_TIMEOUT_SECS: u64 = 5;
/// Seconds an S3 response may stall between bytes.
pub const READ_TIMEOUT_SECS: u64 = 30;
/// Seconds one S3 request may take in all (objects are at most a few MB, manifests stream in pages).
pub const ATTEMPT_TIMEOUT_SECS: u64 = 300;
/// Most object keys one listing returns (a prefix with more is refused).
pub const MAX_LISTED_KEYS: usize = 200_000;

#[derive(Clone, Debug)]
pub struct S3 {
    client: Client,
    /// Where this client may go: every bucket (an import's own connection), or the server identity's allow-list.
    scope: std::sync::Arc<Scope>,
}

/// The buckets and prefixes the server's own S3 identity may read and write on a request's behalf
/// (`VIGIL_S3_ALLOWED_BUCKETS`: `bucket` or `bucket/prefix/` entries). Without it, a caller who may start an
/// import or name an `OutputConfig` could make Vigil read or write any bucket its identity reaches (a confused
/// deputy). Empty: no limit (the identity's own S3 permissions decide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// (bucket, key prefix); the prefix is empty for a whole bucket.
    allowed: Vec<(String, String)>,
}

impl Scope {
    pub fn parse(entries: &[String]) -> Scope {
        let allowed = entries
            .iter()
            .map(|e| e.trim().trim_start_matches("s3://"))
            .filter(|e| !e.is_empty())
            .map(|e| match e.split_once('/') {
                Some((b, p)) => (b.to_string(), p.to_string()),
                None => (e.to_string(), String::new()),
            })
            .collect();
        Scope { allowed }
    }

    pub fn is_limited(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// Whether `s3://bucket/key` (or everything under the prefix `key`) is inside the scope.
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|(b, p)| b == bucket && key.starts_with(p.as_str()))
    }

    /// `Ok` inside the scope, else the refusal in words.
    pub fn check(&self, bucket: &str, key: &str) -> Result<(), String> {
        if self.allows(bucket, key) {
            return Ok(());
        }
        let list: Vec<String> = self.allowed.iter().map(|(b, p)| format!("s3://{b}/{p}")).collect();
        Err(format!(
            "s3://{bucket}/{key} is outside the S3 locations this server may use on a request's behalf ({}); an administrator can add it to VIGIL_S3_ALLOWED_BUCKETS",
            list.join(", ")
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("object not found")]
    NotFound,
    #[error("the object is larger than {0} bytes")]
    TooLarge(u64),
    #[error("access denied")]
    AccessDenied,
    #[error("{0}")]
    Other(String),
}

impl S3 {
    pub async fn connect(settings: &S3Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        // An explicit region keeps aws-config from asking the EC2 metadata service, which off EC2 only
        // costs time and log noise.
        let region = settings
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        loader = loader.region(aws_config::Region::new(region));
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "vigil-config",
            ));
        }
        let shared = loader.load().await;
        // A dead or hostile endpoint fails the import with a message instead of keeping it busy forever.
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(CONNECT_TIMEOUT_SECS))
            .read_timeout(std::time::Duration::from_secs(READ_TIMEOUT_SECS))
            .operation_attempt_timeout(std::time::Duration::from_secs(ATTEMPT_TIMEOUT_SECS))
            .build();
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style).timeout_config(timeouts);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3 { client: Client::from_conf(builder.build()), scope: Default::default() }
    }

    /// A client for an import's settings: limited to the server identity's scope when it signs with the
    /// server's own credentials (an import that names only a bucket, or only the configured endpoint).
    pub async fn connect_for(settings: &S3Settings, config: &crate::config::Config) -> Self {
        let client = S3::connect(settings).await;
        if settings.access_key_id == config.s3.access_key_id {
            client.scoped(Scope::parse(&config.s3_allowed_buckets))
        } else {
            client
        }
    }

    /// The same client limited to `scope` (the server's own identity).
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.scope = std::sync::Arc::new(scope);
        self
    }

    /// The SDK client (the blob store sends its own requests with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Reads a whole object, refusing one larger than `max_bytes`.
    pub async fn get(&self, bucket: &str, key: &str, version: Option<&str>, max_bytes: u64) -> Result<Vec<u8>, FetchError> {
        let mut bytes = Vec::new();
        self.read(bucket, key, version, max_bytes, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok(bytes)
    }

    /// Reads an object line by line (`\n`-separated, the line without its end), never holding more than one
    /// line and one chunk: manifests of up to a gigabyte. A line longer than `max_line` bytes is an error.
    pub async fn for_each_line(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        max_bytes: u64,
        max_line: usize,
        mut f: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), FetchError> {
        let mut lines = Lines { line: Vec::new(), max: max_line };
        self.read(bucket, key, version, max_bytes, |chunk| lines.push(chunk, &mut f)).await?;
        lines.finish(&mut f)
    }

    /// Streams an object's bytes to `f` chunk by chunk, refusing one larger than `max_bytes`.
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        max_bytes: u64,
        mut f: impl FnMut(&[u8]) -> Result<(), FetchError>,
    ) -> Result<(), FetchError> {
        self.scope.check(bucket, key).map_err(FetchError::Other)?;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                match e.code() {
                    Some("NoSuchKey" | "NoSuchBucket" | "NotFound") => FetchError::NotFound,
                    Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => FetchError::AccessDenied,
                    _ if e.is_no_such_key() => FetchError::NotFound,
                    _ => FetchError::Other(e.message().unwrap_or("S3 request failed").to_string()),
                }
            })?;
        if out.content_length().is_some_and(|n| n as u64 > max_bytes) {
            return Err(FetchError::TooLarge(max_bytes));
        }
        let mut body = out.body;
        let mut read = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| FetchError::Other(e.to_string()))? {
            read += chunk.len() as u64;
            if read > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            f(&chunk)?;
        }
        Ok(())
    }

    /// Whether an object exists at `key`, or under it when `key` ends with `/` (asking for one key only): the
    /// console's check before it starts an import. The error says why the bucket could not be read.
    pub async fn probe(&self, bucket: &str, key: &str) -> Result<bool, String> {
        self.scope.check(bucket, key)?;
        let asked = self.client.list_objects_v2().bucket(bucket).prefix(key).max_keys(1).send();
        let out = match tokio::time::timeout(std::time::Duration::from_secs(20), asked).await {
            Err(_) => return Err("the S3 endpoint did not answer within 20 s".into()),
            Ok(r) => r.map_err(|e| {
                let full = logged(&e);
                match e.into_service_error().code() {
                    Some("NoSuchBucket") => format!("the bucket {bucket} does not exist"),
                    Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                        format!("access to the bucket {bucket} was denied (check the access key and secret)")
                    }
                    _ => format!("the bucket {bucket} could not be read ({full})"),
                }
            })?,
        };
        Ok(out.contents().iter().filter_map(|o| o.key()).any(|k| if key.ends_with('/') || key.is_empty() { k.starts_with(key) } else { k == key }))
    }

    /// Whether objects can be written under `prefix` (a model package's output location): writes a zero-byte
    /// marker and deletes it again. The error says why, naming the bucket.
    pub async fn check_writable(&self, bucket: &str, prefix: &str) -> Result<(), String> {
        self.scope.check(bucket, prefix)?;
        let key = format!("{prefix}.vigil-write-check-{}", hex::encode(rand::random::<[u8; 8]>()));
        let why = |code: Option<&str>, full: String| match code {
            Some("NoSuchBucket" | "NotFound") => format!("the bucket {bucket} does not exist"),
            Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                format!("Vigil may not write to the bucket {bucket} (access denied)")
            }
            _ => format!("Vigil could not write to the bucket {bucket} ({full})"),
        };
        let wait = std::time::Duration::from_secs(20);
        // HeadBucket first: some S3 servers create a missing bucket on the first write (s3s-fs does).
        match tokio::time::timeout(wait, self.client.head_bucket().bucket(bucket).send()).await {
            Err(_) => return Err(format!("the S3 endpoint did not answer within 20 s when Vigil looked for the bucket {bucket}")),
            Ok(Err(e)) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(404) || e.as_service_error().is_some_and(|s| s.is_not_found()) {
                    return Err(format!("the bucket {bucket} does not exist"));
                }
                if status.is_none() {
                    return Err(format!("Vigil could not reach the S3 endpoint ({})", logged(&e)));
                }
                // Another refusal (a key that may write but not list) leaves the write below to decide.
            }
            Ok(Ok(_)) => {}
        }
        let put = self.client.put_object().bucket(bucket).key(&key).body(Vec::new().into()).send();
        match tokio::time::timeout(wait, put).await {
            Err(_) => return Err(format!("the S3 endpoint did not answer within 20 s when Vigil tried to write to the bucket {bucket}")),
            Ok(Err(e)) => {
                let full = logged(&e);
                return Err(why(e.into_service_error().code(), full));
            }
            Ok(Ok(_)) => {}
        }
        // The marker goes again; a failure here leaves an empty object and changes nothing for the caller.
        let _ = tokio::time::timeout(wait, self.client.delete_object().bucket(bucket).key(&key).send()).await;
        Ok(())
    }

    /// Every object key under a prefix.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, FetchError> {
        self.scope.check(bucket, prefix).map_err(FetchError::Other)?;
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let e = e.into_service_error();
                match e.code() {
                    Some("NoSuchBucket") => FetchError::NotFound,
                    Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => FetchError::AccessDenied,
                    _ => FetchError::Other(e.message().unwrap_or("S3 request failed").to_string()),
                }
            })?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            if keys.len() > MAX_LISTED_KEYS {
                return Err(FetchError::Other(format!("more than {MAX_LISTED_KEYS} objects under the prefix")));
            }
        }
        Ok(keys)
    }

    /// Writes an object (evaluation files of a model version).
    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), FetchError> {
        self.scope.check(bucket, key).map_err(FetchError::Other)?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                match e.code() {
                    Some("NoSuchBucket" | "NotFound") => FetchError::NotFound,
                    Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => FetchError::AccessDenied,
                    _ => FetchError::Other(e.message().unwrap_or("the S3 server could not be reached").to_string()),
                }
            })?;
        Ok(())
    }
}

/// An S3 failure for a caller's eyes: its kind only — the full error, which names hosts and addresses inside the
/// plant's network, goes to the server log under a reference the message quotes.
fn logged<E: std::error::Error + 'static>(e: &E) -> String {
    let reference = hex::encode(rand::random::<[u8; 4]>());
    tracing::warn!(reference = %reference, error = %aws_sdk_s3::error::DisplayErrorContext(e), "an S3 request failed");
    let text = aws_sdk_s3::error::DisplayErrorContext(e).to_string().to_ascii_lowercase();
    let kind = if text.contains("timed out") || text.contains("timeout") {
        "the endpoint did not answer in time"
    } else if text.contains("connect") || text.contains("dns") || text.contains("resolve") {
        "the endpoint could not be reached"
    } else {
        "the endpoint answered with an error"
    };
    format!("{kind}; details in the server log under reference {reference}")
}

/// Splits a stream of chunks into `\n`-separated lines, holding at most one line.
struct Lines {
    line: Vec<u8>,
    max: usize,
}

impl Lines {
    fn too_long(&self) -> FetchError {
        FetchError::Other(format!("a line is longer than {} bytes", self.max))
    }

    fn push(&mut self, mut chunk: &[u8], f: &mut impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), FetchError> {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.line.len() + end > self.max {
                return Err(self.too_long());
            }
            self.line.extend_from_slice(&chunk[..end]);
            f(&self.line).map_err(FetchError::Other)?;
            self.line.clear();
            chunk = &chunk[end + 1..];
        }
        if self.line.len() + chunk.len() > self.max {
            return Err(self.too_long());
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// The last line, when the object does not end with `\n`.
    fn finish(self, f: &mut impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), FetchError> {
        if self.line.is_empty() {
            return Ok(());
        }
        f(&self.line).map_err(FetchError::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_bounded() {
        let mut got: Vec<String> = Vec::new();
        let mut f = |l: &[u8]| {
            got.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        };
        let mut lines = Lines { line: Vec::new(), max: 8 };
        for chunk in [&b"ab\ncd"[..], b"ef\n\ngh", b"", b"ij"] {
            lines.push(chunk, &mut f).unwrap();
        }
        lines.finish(&mut f).unwrap();
        assert_eq!(got, ["ab", "cdef", "", "ghij"]);
        // A long line is refused whether it ends inside the chunk or runs past it.
        let mut ok = |_: &[u8]| Ok(());
        assert!(Lines { line: Vec::new(), max: 4 }.push(b"abcdefgh\nx", &mut ok).is_err());
        let mut lines = Lines { line: Vec::new(), max: 4 };
        lines.push(b"abc", &mut ok).unwrap();
        assert!(lines.push(b"de", &mut ok).is_err());
        // The callback's refusal stops the reading.
        let mut no = |_: &[u8]| Err("it is not UTF-8 text".to_string());
        assert!(matches!(Lines { line: Vec::new(), max: 8 }.push(b"x\n", &mut no), Err(FetchError::Other(m)) if m.contains("UTF-8")));
    }
}

#[cfg(test)]
mod scope_tests {
    use super::Scope;

    #[test]
    fn s3_failures_name_no_hosts() {
        let e = std::io::Error::other("dispatch failure: error trying to connect: tcp connect error: minio.plant.internal (10.1.2.3:9000)");
        let shown = super::logged(&e);
        assert!(!shown.contains("10.1.2.3") && !shown.contains("minio.plant.internal"), "{shown}");
        assert!(shown.starts_with("the endpoint could not be reached; details in the server log under reference "), "{shown}");
    }

    #[test]
    fn buckets_and_prefixes() {
        let any = Scope::parse(&[]);
        assert!(any.allows("anything", "x"));
        let s = Scope::parse(&["s3://lfv-input".into(), "shared/vigil/".into(), " ".into()]);
        assert!(s.allows("lfv-input", "a/b.jpg"));
        assert!(s.allows("shared", "vigil/cookies/model-1/x.json"));
        assert!(!s.allows("shared", "other/x"));
        assert!(!s.allows("shared", ""));
        assert!(!s.allows("lfv-input2", "a"));
        assert!(s.check("secrets", "k").unwrap_err().contains("VIGIL_S3_ALLOWED_BUCKETS"));
    }
}
