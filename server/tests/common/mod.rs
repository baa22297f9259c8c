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

pub struct Harness {
    pub running: Option<vigil::Running>,
    pub client: lfv::Client,
    pub base: String,
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

impl Harness {
    pub async fn start(backend: Backend) -> Option<Harness> {
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
        let running = vigil::start(config).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        let conf = lfv::Config::builder()
            .behavior_version(lfv::config::BehaviorVersion::latest())
            .region(lfv::config::Region::new("us-east-1"))
            .endpoint_url(&base)
            .credentials_provider(aws_credential_types::Credentials::new("AKIDVIGILTEST", "secret", None, None, "tests"))
            .build();
        Some(Harness { running: Some(running), client: lfv::Client::from_conf(conf), base, _dir: dir, pg })
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
