//! Test harness: a real Vigil server on port 0 with a fresh database (SQLite file or a new PostgreSQL
//! database), driven by the official `aws-sdk-lookoutvision` client.
#![allow(dead_code)]

use aws_sdk_lookoutvision as lfv;
use sqlx::Connection;
use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn backbone_path() -> PathBuf {
    repo_root().join(".venv/share/vigil/efficientnet-lite0-s8s16.pt")
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}


/// A request the tests make that has no answer by then fails the test (instead of hanging the test run).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

/// The bootstrap API key every test server is started with; `Harness::client` signs with it.
pub const API_KEY: &str = "AKIDVIGILTEST";
pub const API_SECRET: &str = "vigil-test-secret";
/// The password of the console's `admin` on test servers.
pub const ADMIN_PASSWORD: &str = "vigil-test-admin";
/// The Prometheus scraper's token (`VIGIL_METRICS_TOKEN`).
pub const METRICS_TOKEN: &str = "vigil-test-metrics-token";

/// The SigV4 headers (`authorization`, `x-amz-date`, ...) for a request, made by `aws-sigv4` as the Rust SDK
/// makes them. `url` is absolute; `headers` are sent too and signed.
pub fn sigv4_headers(
    key: &str,
    secret: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(key, secret, None, None, "tests").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lookoutvision")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = url.split("://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let req = SignableRequest::new(method, url, all.into_iter(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An SDK client for a server at `base`, signing with the bootstrap key.
pub fn client_for(base: &str) -> lfv::Client {
    client_signed(base, API_KEY, API_SECRET)
}

/// An SDK client for a server at `base`, signing with the given key.
pub fn client_signed(base: &str, key: &str, secret: &str) -> lfv::Client {
    let conf = lfv::Config::builder()
        .behavior_version(lfv::config::BehaviorVersion::latest())
        .region(lfv::config::Region::new("us-east-1"))
        .endpoint_url(base)
        .credentials_provider(aws_credential_types::Credentials::new(key, secret, None, None, "tests"))
        .build();
    lfv::Client::from_conf(conf)
}

impl Harness {
    /// A client for the console's HTTP endpoints (`/media`, `/export`, `/import`, pages), signed in as admin.
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, format!("vigil_session={}", self.session).parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap()
    }

    /// A raw LFV API request (`path` after `/2020-11-20`, with its query), signed with the bootstrap key.
    pub async fn api(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        self.signed(method, &format!("/2020-11-20{path}"), content_type, body).await
    }

    /// A request to any signed path (the LFV API, Vigil's `/vigil/v1` extensions), signed with the bootstrap key.
    pub async fn signed(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let extra: Vec<(&str, &str)> = content_type.map(|c| vec![("content-type", c)]).unwrap_or_default();
        let signed = sigv4_headers(API_KEY, API_SECRET, method, &url, &extra, &body, std::time::SystemTime::now());
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), &url).timeout(REQUEST_TIMEOUT).body(body);
        for (k, v) in extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(signed) {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }

    /// An SDK client signing with other credentials.
    pub fn client_with(&self, key: &str, secret: &str) -> lfv::Client {
        client_signed(&self.base, key, secret)
    }
}

pub struct Harness {
    pub running: Option<vigil::Running>,
    pub client: lfv::Client,
    pub base: String,
    /// A session token of `admin` (see `http`).
    pub session: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

/// The admin URL of a PostgreSQL server for tests, from `VIGIL_TEST_POSTGRES`. The test command always sets
/// it (starting a server if none is reachable); with `VIGIL_REQUIRE_POSTGRES=1` a missing one is a failure.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("VIGIL_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("VIGIL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("VIGIL_REQUIRE_POSTGRES=1 but VIGIL_TEST_POSTGRES is not set");
            }
            eprintln!("VIGIL_TEST_POSTGRES is not set: skipping the PostgreSQL run (server/scripts/test.sh sets it)");
            None
        }
    }
}

fn with_database(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let cut = base.rfind('/').filter(|&i| i > base.find("://").map_or(0, |s| s + 2)).unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..cut])
}

/// A real S3-compatible server (s3s-fs, which verifies SigV4) on a free loopback port, storing buckets as
/// folders of a temporary directory. The test command installs it; with `VIGIL_REQUIRE_S3=1` a missing binary
/// is a failure.
pub struct S3Server {
    pub endpoint: String,
    pub client: aws_sdk_s3::Client,
    child: std::process::Child,
    pub root: tempfile::TempDir,
}

pub const S3_KEY: &str = "vigiltestkey";
pub const S3_SECRET: &str = "vigiltestsecret";

impl S3Server {
    pub async fn start() -> Option<S3Server> {
        let bin = match which("s3s-fs") {
            Some(b) => b,
            None => {
                if std::env::var("VIGIL_REQUIRE_S3").as_deref() == Ok("1") {
                    panic!("VIGIL_REQUIRE_S3=1 but s3s-fs is not on PATH");
                }
                eprintln!("s3s-fs is not installed: skipping (server/scripts/test.sh installs it)");
                return None;
            }
        };
        let root = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(S3_KEY, S3_SECRET, None, None, "tests"))
            .build();
        Some(S3Server { endpoint, client: aws_sdk_s3::Client::from_conf(conf), child, root })
    }

    pub fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).unwrap();
    }

    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin").join(name)))
        .find(|p| p.is_file())
}

impl Harness {
    pub async fn start(backend: Backend) -> Option<Harness> {
        Self::start_with(backend, None).await
    }

    pub async fn start_with(backend: Backend, s3: Option<&S3Server>) -> Option<Harness> {
        Self::start_tuned(backend, s3, |_| {}).await
    }

    /// As `start_with`, with the configuration adjusted by `tune` before the server starts.
    pub async fn start_tuned(backend: Backend, s3: Option<&S3Server>, tune: impl FnOnce(&mut vigil::config::Config)) -> Option<Harness> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("vigil.db").display()), None),
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("vigil_test_{}", hex::encode(rand::random::<[u8; 6]>()));
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connecting to the test PostgreSQL");
                sqlx::query(&format!("create database {name}")).execute(&mut conn).await.unwrap();
                (with_database(&admin, &name), Some((admin, name)))
            }
        };
        let mut config = vigil::config::Config::defaults();
        config.addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = database_url;
        config.data_dir = dir.path().join("data");
        config.backbone = backbone_path();
        config.torch_threads = Some(1);
        config.access_key_id = Some(API_KEY.into());
        config.secret_access_key = Some(API_SECRET.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.metrics_token = Some(METRICS_TOKEN.into());
        // Disk imports read the temporary folders tests write.
        config.import_root = Some(std::env::temp_dir());
        if let Some(s3) = s3 {
            config.s3.endpoint = Some(s3.endpoint.clone());
            config.s3.access_key_id = Some(S3_KEY.into());
            config.s3.secret_access_key = Some(S3_SECRET.into());
            config.s3.region = Some("us-east-1".into());
        }
        tune(&mut config);
        let running = vigil::start(config).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        let session = {
            let mut conn = running.state.db.pool.acquire().await.unwrap();
            let (admin, _) = vigil::auth::users::find_with_hash(&mut conn, "admin").await.unwrap().expect("admin created at start");
            vigil::auth::users::create_session(&mut conn, &admin.id).await.unwrap()
        };
        Some(Harness { running: Some(running), client: client_for(&base), base, session, _dir: dir, pg })
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            let pool = r.state.db.pool.clone();
            r.stop().await.unwrap();
            pool.close().await;
        }
        if let Some((admin, name)) = self.pg.take() {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await.unwrap();
        }
    }
}

#[test]
fn database_urls() {
    assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
}
