//! Many machines, on loopback: two API replicas (`vigil serve --no-worker`) and two workers (`vigil worker`),
//! each a process of its own with its own data folder, on one PostgreSQL database and one S3 blob bucket
//! (s3s-fs). Imports through one replica are served by the other; a worker killed with SIGKILL mid-training is
//! replaced by the other after its lease; a model hosted through one replica answers on every replica (a cold one
//! too) and stops everywhere; the data folders deleted under the running processes lose nothing; blob collection
//! beside an import loses nothing referenced; and a process refuses to start where its role cannot work.

use crate::common::{self, S3Server, ADMIN_PASSWORD, API_KEY, API_SECRET, METRICS_TOKEN, S3_KEY, S3_SECRET};
use crate::models::{manifest, output, settle_dataset, small, stage, wait_model, DATA};
use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use aws_sdk_lookoutvision::primitives::ByteStream;
use aws_sdk_lookoutvision::types::ModelStatus;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BLOBS: &str = "vigil-blobs";
const PREFIX: &str = "plant/";
const SERVER_KEY: &str = "6f1c2a9e0d4b8c7a5e3f1029384756abcdef0123456789abcdef0123456789ab";

/// One Vigil process of the deployment.
struct Proc {
    name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
    base: Option<String>,
}

impl Proc {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Deployment {
    s3: S3Server,
    database_url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Deployment {
    /// The settings every process of the deployment shares.
    fn command(&self, args: &[&str], dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.args(args)
            .current_dir(common::repo_root())
            .env("DATABASE_URL", &self.database_url)
            .env("VIGIL_DATA_DIR", dir.join("data"))
            .env("VIGIL_BLOB_STORE", format!("s3://{BLOBS}/{PREFIX}"))
            .env("VIGIL_BLOB_S3_ENDPOINT", &self.s3.endpoint)
            .env("VIGIL_BLOB_S3_REGION", "us-east-1")
            .env("VIGIL_BLOB_S3_ACCESS_KEY_ID", S3_KEY)
            .env("VIGIL_BLOB_S3_SECRET_ACCESS_KEY", S3_SECRET)
            .env("VIGIL_S3_ENDPOINT", &self.s3.endpoint)
            .env("VIGIL_S3_REGION", "us-east-1")
            .env("VIGIL_S3_ACCESS_KEY_ID", S3_KEY)
            .env("VIGIL_S3_SECRET_ACCESS_KEY", S3_SECRET)
            .env("VIGIL_ACCESS_KEY_ID", API_KEY)
            .env("VIGIL_SECRET_ACCESS_KEY", API_SECRET)
            .env("VIGIL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("VIGIL_METRICS_TOKEN", METRICS_TOKEN)
            .env("VIGIL_SECRET_KEY", SERVER_KEY)
            .env("VIGIL_BACKBONE", common::backbone_path())
            .env("VIGIL_SITE_ROOT", common::repo_root().join("target/site"))
            .env("VIGIL_TORCH_THREADS", "1")
            .env("VIGIL_JOB_LEASE_SECS", "2")
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("VIGIL_HOST_NAME")
            .env_remove("VIGIL_NO_WORKER");
        c
    }

    fn spawn(&self, name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut c = self.command(args, dir.path());
        c.env("VIGIL_ADDR", format!("127.0.0.1:{port}")).stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("starting vigil");
        let base = (args[0] == "serve").then(|| format!("http://127.0.0.1:{port}"));
        Proc { name, child, dir, base }
    }

    /// Runs a process to its end; (success, output).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = self.command(args, dir.path());
        c.env("VIGIL_ADDR", format!("127.0.0.1:{}", free_port()));
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("running vigil");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    async fn pg(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.database_url).await.unwrap()
    }
}

/// Waits until the process answers HTTP (an API replica) or has registered (a worker).
async fn ready(d: &Deployment, p: &mut Proc) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(180) {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("{} exited ({status}) while starting:\n{}", p.name, p.log());
        }
        let up = match &p.base {
            Some(base) => reqwest::get(format!("{base}/signin")).await.is_ok_and(|r| r.status() == 200),
            None => {
                // A worker is up once its job lanes poll: its registration is in the table.
                let mut conn = d.pg().await;
                let (n,): (i64,) = sqlx::query_as("select count(*) from vigil_node where role = 'worker'").fetch_one(&mut conn).await.unwrap();
                n > 0 && p.log().contains("Vigil worker running")
            }
        };
        if up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{} did not start:\n{}", p.name, p.log());
}

async fn sign_in(base: &str) -> String {
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c.post(format!("{base}/auth/signin")).form(&[("name", "admin"), ("password", ADMIN_PASSWORD), ("next", "/")]).send().await.unwrap();
    r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn media(base: &str, cookie: &str, hash: &str, thumb: bool) -> (u16, Vec<u8>) {
    let q = if thumb { "?thumb=1" } else { "" };
    let r = reqwest::Client::new().get(format!("{base}/media/{hash}{q}")).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn detect(c: &aws_sdk_lookoutvision::Client, image: &[u8]) -> Result<(bool, f32), String> {
    match c.detect_anomalies().project_name("cookies").model_version("1").content_type("image/jpeg").body(ByteStream::from(image.to_vec())).send().await {
        Ok(r) => {
            let d = r.detect_anomaly_result.unwrap();
            Ok((d.is_anomalous.unwrap_or(false), d.confidence.unwrap_or(-1.0)))
        }
        Err(e) => Err(e.into_service_error().code().unwrap_or("?").to_string()),
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Where s3s-fs keeps a blob (it stores objects as files named by their keys).
fn blob_file(s3: &S3Server, hash: &str) -> PathBuf {
    s3.root.path().join(BLOBS).join(PREFIX).join(&hash[..2]).join(&hash[2..])
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{ProjectName=\"cookies\"")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_replicas_and_workers_share_postgres_and_an_s3_blob_store() {
    let Some(admin) = common::postgres_admin_url() else { return };
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket(BLOBS);
    stage(&s3).await;
    let name = format!("vigil_scale_{}", hex::encode(rand::random::<[u8; 5]>()));
    {
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("create database {name}")).execute(&mut conn).await.unwrap();
    }
    let cut = admin.rfind('/').unwrap();
    let database_url = format!("{}/{name}", &admin[..cut]);
    let d = Deployment { s3, database_url };

    let mut a = d.spawn("replica A", &["serve", "--no-worker"], &[]);
    ready(&d, &mut a).await;
    let mut b = d.spawn("replica B", &["serve", "--no-worker"], &[]);
    let mut w1 = d.spawn("worker 1", &["worker"], &[]);
    let mut w2 = d.spawn("worker 2", &["worker"], &[]);
    for p in [&mut b, &mut w1, &mut w2] {
        ready(&d, p).await;
    }
    let (base_a, base_b) = (a.base.clone().unwrap(), b.base.clone().unwrap());
    let (ca, cb) = (common::client_for(&base_a), common::client_for(&base_b));

    // Processes that cannot work here refuse to start, and say why.
    let (ok, out) = d.run(&["serve", "--no-worker"], &[("VIGIL_HOST_NAME", "another-host"), ("VIGIL_BLOB_STORE", "local")]);
    assert!(!ok && out.contains("VIGIL_BLOB_STORE=s3://"), "{out}");
    let (ok, out) = d.run(&["worker"], &[("VIGIL_SECRET_KEY", &"0".repeat(64))]);
    assert!(!ok && out.contains("VIGIL_SECRET_KEY"), "{out}");

    // Import through A; B lists the entries and serves the images (full size and thumbnails).
    ca.create_project().project_name("cookies").send().await.unwrap();
    ca.create_dataset().project_name("cookies").dataset_type("train").dataset_source(manifest("train.manifest")).send().await.unwrap();
    ca.create_dataset().project_name("cookies").dataset_type("test").dataset_source(manifest("test.manifest")).send().await.unwrap();
    settle_dataset(&cb, "cookies", "train").await;
    settle_dataset(&cb, "cookies", "test").await;
    let listed = cb.list_dataset_entries().project_name("cookies").dataset_type("train").send().await.unwrap();
    assert_eq!(listed.dataset_entries().len(), 12);
    let cookie_b = sign_in(&base_b).await;
    let image = small("normal/normal-2.jpg");
    let hash = sha256(&image);
    assert_eq!(media(&base_b, &cookie_b, &hash, false).await, (200, image.clone()));
    assert_eq!(media(&base_b, &cookie_b, &hash, true).await.0, 200);
    assert!(blob_file(&d.s3, &hash).is_file(), "the image is in the blob bucket");

    // CreateModel through B; the worker that claims the training is killed (SIGKILL) mid-way; the other one
    // takes it over once the lease runs out, and the version is trained once.
    cb.create_model().project_name("cookies").output_config(output(crate::models::OUT)).send().await.unwrap();
    let owner = {
        let started = Instant::now();
        loop {
            let mut conn = d.pg().await;
            let row: Option<(Option<String>,)> = sqlx::query_as("select owner from job where kind = 'train'").fetch_optional(&mut conn).await.unwrap();
            if let Some((Some(owner),)) = row {
                break owner;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no worker claimed the training");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let pid: u32 = owner.split(':').nth(1).unwrap().parse().unwrap();
    let (killed, survivor) = if pid == w1.child.id() { (&mut w1, &w2) } else { (&mut w2, &w1) };
    assert_eq!(killed.child.id(), pid, "the owner {owner} is one of the workers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let m = wait_model(&ca, "cookies", "1", &[ModelStatus::Training]).await;
    assert_eq!(m.status(), Some(&ModelStatus::Trained), "{:?}\n{}", m.status_message(), survivor.log());
    assert!(survivor.log().contains("resuming a job whose worker stopped"), "{}", survivor.log());
    assert_eq!(ca.list_models().project_name("cookies").send().await.unwrap().models().len(), 1);
    let mut conn = d.pg().await;
    let (jobs,): (i64,) = sqlx::query_as("select count(*) from job").fetch_one(&mut conn).await.unwrap();
    assert_eq!(jobs, 0, "the training settled its job once");

    // StartModel through A: both replicas answer the same; a replica started now (cold) waits for its load.
    ca.start_model().project_name("cookies").model_version("1").min_inference_units(1).send().await.unwrap();
    let m = wait_model(&cb, "cookies", "1", &[ModelStatus::StartingHosting]).await;
    assert_eq!(m.status(), Some(&ModelStatus::Hosted), "{:?}", m.status_message());
    let anomaly = small("anomaly/anomaly-6.jpg");
    let from_a = detect(&ca, &anomaly).await.unwrap();
    let from_b = detect(&cb, &anomaly).await.unwrap();
    assert_eq!(from_a, from_b);
    let mut c = d.spawn("replica C", &["serve", "--no-worker"], &[]);
    ready(&d, &mut c).await;
    let cc = common::client_for(c.base.as_deref().unwrap());
    let cold = Instant::now();
    assert_eq!(detect(&cc, &anomaly).await.unwrap(), from_a);
    eprintln!("a cold replica answered its first detection in {} ms", cold.elapsed().as_millis());

    // Every process's data folder deleted while running: everything is still served.
    for p in [&a, &b, &c, survivor] {
        std::fs::remove_dir_all(p.data()).unwrap();
    }
    let cookie_a = sign_in(&base_a).await;
    let other = small("normal/normal-3.jpg");
    assert_eq!(media(&base_a, &cookie_a, &sha256(&other), false).await, (200, other.clone()));
    assert_eq!(media(&base_b, &cookie_b, &hash, true).await.0, 200, "a thumbnail is made again");
    assert_eq!(detect(&cb, &anomaly).await.unwrap(), from_a);
    assert_eq!(cb.describe_model().project_name("cookies").model_version("1").send().await.unwrap().model_description.unwrap().status(), Some(&ModelStatus::Hosted));

    // Counts: the deployment's totals on every replica; each replica's own count adds up to them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (ta, tb, tc) = (metric(&base_a, "lookoutvision_ProcessedImageCount").await, metric(&base_b, "lookoutvision_ProcessedImageCount").await, metric(c.base.as_deref().unwrap(), "lookoutvision_ProcessedImageCount").await);
    assert_eq!((ta, tb, tc), (4.0, 4.0, 4.0));
    let own = metric(&base_a, "vigil_process_ProcessedImageCount").await
        + metric(&base_b, "vigil_process_ProcessedImageCount").await
        + metric(c.base.as_deref().unwrap(), "vigil_process_ProcessedImageCount").await;
    assert_eq!(own, 4.0);

    // StopModel through B: A (and C) refuse within seconds.
    cb.stop_model().project_name("cookies").model_version("1").send().await.unwrap();
    let stopped = Instant::now();
    for client in [&ca, &cc] {
        loop {
            match detect(client, &anomaly).await {
                Err(code) if code == "ConflictException" => break,
                r => assert!(stopped.elapsed() < Duration::from_secs(5), "still answering {r:?} after StopModel on another replica"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Blob collection beside an import: an old unreferenced blob goes; an old referenced one and the import's
    // new ones stay.
    let orphan_bytes = format!("an orphan {}", hex::encode(rand::random::<[u8; 8]>())).into_bytes();
    let orphan = sha256(&orphan_bytes);
    d.s3.put(BLOBS, &format!("{PREFIX}{}/{}", &orphan[..2], &orphan[2..]), orphan_bytes).await;
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    for h in [&orphan, &hash] {
        std::fs::File::options().append(true).open(blob_file(&d.s3, h)).unwrap().set_modified(two_hours_ago).unwrap();
    }
    let mut manifest_text = String::new();
    let mut fresh = Vec::new();
    for i in 0..40u8 {
        let img = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([i.wrapping_mul(5), (x * 4) as u8, (y * 4) as u8]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        let key = format!("more/{i}.png");
        fresh.push(sha256(&png));
        d.s3.put(DATA, &key, png).await;
        manifest_text += &crate::models::line(&key, false, None);
        manifest_text.push('\n');
    }
    d.s3.put(DATA, "more.manifest", manifest_text.into_bytes()).await;
    ca.create_project().project_name("more").send().await.unwrap();
    ca.create_dataset().project_name("more").dataset_type("train").dataset_source(manifest("more.manifest")).send().await.unwrap();
    let mut outputs = String::new();
    for _ in 0..3 {
        let (ok, out) = d.run(&["admin", "collect-blobs", "--grace-secs", "600"], &[]);
        assert!(ok, "{out}");
        outputs += &out;
    }
    settle_dataset(&cb, "more", "train").await;
    assert!(outputs.contains(&format!("removed {orphan}")), "{outputs}");
    assert!(!blob_file(&d.s3, &orphan).exists());
    assert!(blob_file(&d.s3, &hash).is_file(), "an old blob that is referenced stays");
    for h in &fresh {
        assert!(blob_file(&d.s3, h).is_file(), "blob {h} of the import is kept");
    }
    let more = cb.list_dataset_entries().project_name("more").dataset_type("train").send().await.unwrap();
    assert_eq!(more.dataset_entries().len(), 40);

    // What one replica changes reaches the others within seconds: a saved threshold (far below every score,
    // then far above), a revoked access key (cached for 10 s otherwise), failed sign-ins.
    ca.start_model().project_name("cookies").model_version("1").min_inference_units(1).send().await.unwrap();
    assert_eq!(wait_model(&cb, "cookies", "1", &[ModelStatus::StartingHosting, ModelStatus::Trained]).await.status(), Some(&ModelStatus::Hosted));
    let db = vigil::db::Db::connect(&d.database_url).await.unwrap();
    for (t, want) in [(-1e9f64, true), (1e9, false)] {
        let mut conn = db.pool.acquire().await.unwrap();
        sqlx::query("update model_version set threshold = $1").bind(t).execute(&mut *conn).await.unwrap();
        vigil::cluster::bump(&mut conn, "hosting").await.unwrap();
        drop(conn);
        for client in [&ca, &cb, &cc] {
            let since = Instant::now();
            loop {
                match detect(client, &anomaly).await {
                    Ok((anomalous, _)) if anomalous == want => break,
                    r => assert!(since.elapsed() < Duration::from_secs(5), "threshold {t} not applied: {r:?}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut conn = db.pool.acquire().await.unwrap();
    let (admin_user, _) = vigil::auth::users::find_with_hash(&mut conn, "admin").await.unwrap().unwrap();
    let sealer = vigil::auth::secretbox::SecretBox::load(Some(SERVER_KEY), a.dir.path()).unwrap();
    let (key_id, key_secret) = vigil::auth::keys::create(&mut conn, &sealer, &admin_user.id, "replicas", None).await.unwrap();
    let (ka, kb) = (common::client_signed(&base_a, &key_id, &key_secret), common::client_signed(&base_b, &key_id, &key_secret));
    ka.list_projects().send().await.unwrap();
    kb.list_projects().send().await.unwrap();
    vigil::auth::keys::revoke(&mut conn, &key_id, None).await.unwrap();
    vigil::cluster::bump(&mut conn, "keys").await.unwrap();
    drop(conn);
    let revoked = Instant::now();
    for k in [&ka, &kb] {
        loop {
            match k.list_projects().send().await {
                Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("UnrecognizedClientException") => break,
                r => assert!(revoked.elapsed() < Duration::from_secs(4), "a revoked key still works: {r:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for _ in 0..5 {
        let r = anon.post(format!("{base_a}/auth/signin")).form(&[("name", "admin"), ("password", "wrong"), ("next", "/")]).send().await.unwrap();
        assert!(r.headers()["location"].to_str().unwrap().contains("error=1"));
    }
    let r = anon.post(format!("{base_b}/auth/signin")).form(&[("name", "admin"), ("password", ADMIN_PASSWORD), ("next", "/")]).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("error=wait"), "{:?}", r.headers());

    drop((a, b, c, w1, w2));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await.unwrap();
}
