//! Command line and environment: one typed configuration for every role of the binary.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "vigil", version, about = "Self-hosted visual anomaly detection, compatible with the Lookout for Vision API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the console and the LFV-compatible API, with the embedded worker (`--no-worker`: an API replica).
    Serve(Config),
    /// Run background jobs only (imports, training, trials, batches, packaging): a worker beside API replicas
    /// on one PostgreSQL and one S3 blob store. Takes the same settings as `serve`; `--addr` is not listened on.
    Worker(Config),
    /// Train a model from a folder of labelled images or an LFV manifest.
    Train(TrainArgs),
    /// Evaluate a trained model on labelled images.
    Eval(EvalArgs),
    /// Detect anomalies in images; prints one LFV DetectAnomalyResult JSON per image.
    Detect(DetectArgs),
    /// Benchmark the engine on every data set of a folder (accuracy, fit time, latency, memory).
    Bench(BenchArgs),
    /// Run models next to the camera: install model packages and serve LFV's edge agent API.
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Console administration from the server's shell (for when nobody can sign in).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `vigil admin ...`: works on the database directly, with no server running or beside a running one.
#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Give a console user a new password (generated and printed, or read from standard input) and end their
    /// sessions. The way back in when the administrator's password is lost.
    ResetPassword(ResetPasswordArgs),
    /// Remove the blobs nothing refers to and that were written longer than `--grace-secs` ago, and say which
    /// (safe beside running processes; they also do it every 6 hours with a day's grace).
    CollectBlobs(CollectBlobsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CollectBlobsArgs {
    /// Keep blobs written less than this many seconds ago (uploads whose rows are not committed yet).
    #[arg(long, default_value_t = 86_400)]
    pub grace_secs: u64,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// The server's settings (database, data directory, blob store), as for `vigil serve`.
    #[command(flatten)]
    pub config: Config,
}

#[derive(Args, Clone)]
pub struct ResetPasswordArgs {
    /// The console user (the first administrator is `admin`).
    #[arg(default_value = "admin")]
    pub user: String,
    /// Read the new password from standard input (one line) instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
    /// The server's database (the same setting as `vigil serve`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/vigil.db")]
    pub database_url: String,
}

/// `vigil edge ...`: the agent and its installed model components. No database and no web server.
#[derive(Subcommand, Debug, Clone)]
pub enum EdgeCommand {
    /// Serve LFV's edge agent gRPC API (`AWS.LookoutVision.EdgeAgent`) on a Unix socket, for the installed models.
    Serve(EdgeServeArgs),
    /// Install a model package: a packaging job's `s3://BUCKET/PREFIX`, a folder holding its files, or the
    /// console's package ZIP.
    Install(EdgeInstallArgs),
    /// Package a model file trained with `vigil train` into a folder, as a packaging job would.
    Package(EdgePackageArgs),
    /// List the installed model components.
    List(EdgeDirArgs),
    /// Remove an installed model component.
    Remove {
        component: String,
        #[command(flatten)]
        dir: EdgeDirArgs,
    },
}

/// The server's own S3 identity (imports, evaluation files, packaging outputs), and the edge agent's for
/// `vigil edge install s3://...`.
#[derive(Args, Clone)]
pub struct S3Args {
    /// S3-compatible endpoint (MinIO, Garage, ...). Unset: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, or AWS
    /// itself.
    #[arg(id = "s3_endpoint", value_name = "URL", long = "s3-endpoint", env = "VIGIL_S3_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Region for S3 requests. Unset: `AWS_REGION`, else us-east-1.
    #[arg(id = "s3_region", value_name = "REGION", long = "s3-region", env = "VIGIL_S3_REGION")]
    pub region: Option<String>,

    /// Access key for S3. Unset: the standard AWS credential chain (`AWS_ACCESS_KEY_ID`, profiles, ...).
    #[arg(id = "s3_access_key_id", value_name = "KEY_ID", long = "s3-access-key-id", env = "VIGIL_S3_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,

    /// Secret key for S3, with `--s3-access-key-id`.
    #[arg(id = "s3_secret_access_key", value_name = "SECRET", long = "s3-secret-access-key", env = "VIGIL_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,

    /// Path-style S3 addressing (`endpoint/bucket/key`), which most self-hosted servers need.
    #[arg(id = "s3_force_path_style", value_name = "BOOL", long = "s3-force-path-style", env = "VIGIL_S3_FORCE_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub force_path_style: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeDirArgs {
    /// The agent's folder: installed components, the result spool.
    #[arg(long = "dir", env = "VIGIL_EDGE_DIR", default_value = "vigil-edge")]
    pub root: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeServeArgs {
    #[command(flatten)]
    pub dir: EdgeDirArgs,
    /// The Unix socket clients connect to (LFV's default path, so existing clients need no change).
    #[arg(long, env = "VIGIL_EDGE_SOCKET", default_value = "/tmp/aws.iot.lookoutvision.EdgeAgent.sock")]
    pub socket: PathBuf,
    /// Detection workers per running model.
    #[arg(long, env = "VIGIL_EDGE_UNITS", default_value_t = 1)]
    pub units: usize,
    /// Requests queued per worker before DetectAnomalies answers RESOURCE_EXHAUSTED.
    #[arg(long, env = "VIGIL_EDGE_QUEUE", default_value_t = 8)]
    pub queue: usize,
    /// Watch a folder: `COMPONENT=FOLDER` (repeatable). Each complete image written there is detected with the
    /// model and moved to `FOLDER/done/` or `FOLDER/anomalous/`; its result is published.
    #[arg(long = "watch", value_name = "COMPONENT=FOLDER")]
    pub watch: Vec<String>,
    /// Publish each watched image's result to this MQTT broker (`mqtt://HOST:PORT`), QoS 1, topic
    /// `PREFIX/COMPONENT`.
    #[arg(long, env = "VIGIL_EDGE_MQTT")]
    pub mqtt: Option<String>,
    /// The MQTT topic prefix.
    #[arg(long, env = "VIGIL_EDGE_MQTT_TOPIC", default_value = "vigil/results")]
    pub mqtt_topic: String,
    /// Also POST each result as JSON to this URL (http:// only).
    #[arg(long, env = "VIGIL_EDGE_WEBHOOK")]
    pub webhook: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
pub struct EdgePackageArgs {
    /// The model file (`vigil train --out`).
    #[arg(long)]
    pub model: PathBuf,
    /// The component name (1–128 of a-z A-Z 0-9 - _ .).
    #[arg(long)]
    pub component: String,
    /// The component version, `x.y.z`.
    #[arg(long, default_value = "1.0.0")]
    pub component_version: String,
    /// The folder to write the package into (created).
    #[arg(long)]
    pub out: PathBuf,
    /// The project name recorded in the package.
    #[arg(long, default_value = "local")]
    pub project: String,
    /// `x86_64` or `aarch64`.
    #[arg(long, default_value = std::env::consts::ARCH)]
    pub arch: String,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeInstallArgs {
    /// `s3://BUCKET/PREFIX` (a packaging job's S3OutputLocation), a folder holding the package's files, or the
    /// package ZIP the console downloads.
    pub source: String,
    /// Start the model whenever the agent starts.
    #[arg(long)]
    pub start_on_boot: bool,
    #[command(flatten)]
    pub dir: EdgeDirArgs,
    /// The backbone file the agent runs with: a package built for another one is refused.
    #[arg(long, env = "VIGIL_BACKBONE", default_value = ".venv/share/vigil/efficientnet-lite0-s8s16.pt")]
    pub backbone: PathBuf,
    /// The S3 settings, as the server's.
    #[command(flatten)]
    pub s3: S3Args,
}

/// Settings shared by the engine commands.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Frozen TorchScript file of the pretrained backbone, written by `server/scripts/setup.sh`.
    #[arg(long, env = "VIGIL_BACKBONE", default_value = ".venv/share/vigil/efficientnet-lite0-s8s16.pt")]
    pub backbone: PathBuf,
    /// libtorch intra-op threads; defaults to the number of cores.
    #[arg(long, env = "VIGIL_TORCH_THREADS")]
    pub torch_threads: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// A folder with `normal/` and `anomaly/` (optional `masks/`, `labels.json`), or `train/` + `test/` each
    /// like that, or the MVTec AD layout, or an LFV manifest (JSON lines) whose refs are local files.
    pub data: PathBuf,
    /// Where to write the model file.
    #[arg(long)]
    pub out: PathBuf,
    /// A separate test set (any layout above); without it the data is split automatically.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Long side of the model input in px (multiple of 32); default: chosen from the images.
    #[arg(long)]
    pub input_size: Option<u32>,
    /// Fraction of normal patches kept in the memory bank.
    #[arg(long)]
    pub coreset_ratio: Option<f64>,
    /// Largest memory bank (rows).
    #[arg(long)]
    pub max_bank: Option<usize>,
    /// Principal components kept for the nearest-neighbour search (0: all 152 channels).
    #[arg(long)]
    pub knn_dim: Option<i64>,
    /// Seed of every random choice (split, folds, coreset).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Never use the supervised image score.
    #[arg(long)]
    pub no_supervised: bool,
    /// Never train a segmentation head.
    #[arg(long)]
    pub no_segmentation: bool,
    /// Any other training option (`engine::TrainOptions`, e.g. `--set folds=5 --set gaussian=false`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the evaluation as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled images (any layout `vigil train` reads; for `train/` + `test/` the test part is used).
    pub data: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DetectArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// JPEG or PNG images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Also write each anomaly mask (segmentation models) as `<image stem>.png` here.
    #[arg(long)]
    pub mask_dir: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Folder holding the data sets (`lfv-cookies`, `lfv-circuitboard`, `lfv-aliens`, or any folder layout).
    #[arg(long, default_value = "../shared/datasets")]
    pub datasets: PathBuf,
    /// Only the data sets whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Single-image detections timed per data set.
    #[arg(long, default_value_t = 40)]
    pub repeats: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Skip the k-fold pixel figures over the training images (the test images' masks are still scored).
    #[arg(long)]
    pub no_pixel_folds: bool,
    /// Accuracy on the test images only: no k-fold pixel figures, no timings.
    #[arg(long)]
    pub accuracy_only: bool,
    /// Training options other than the defaults (`engine::TrainOptions`, e.g. `--set gaussian=false`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Settings of a running server. Every field can come from the command line or the environment. Its `Debug`
/// shows no secret (`secrets_stay_out_of_debug_output`).
#[derive(Args, Clone)]
pub struct Config {
    /// Address the console and the API listen on (port 0 picks a free port).
    #[arg(long, env = "VIGIL_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Database: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/vigil.db")]
    pub database_url: String,

    /// Local directory for images, masks and model artifacts.
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Frozen TorchScript file of the pretrained backbone, written by `server/scripts/setup.sh`.
    #[arg(long, env = "VIGIL_BACKBONE", default_value = ".venv/share/vigil/efficientnet-lite0-s8s16.pt")]
    pub backbone: PathBuf,

    /// libtorch intra-op threads; defaults to the number of cores. Two processes that each use every core
    /// slow each other down badly, so lower it when several share a machine.
    #[arg(long, env = "VIGIL_TORCH_THREADS")]
    pub torch_threads: Option<usize>,

    /// Region written into ARNs (LFV clients also sign requests for a region).
    #[arg(long, env = "VIGIL_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Twelve-digit account id written into ARNs.
    #[arg(long, env = "VIGIL_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,

    #[command(flatten)]
    pub s3: S3Args,

    /// Folder under which the console may import from the server's own disk (MVTec AD categories and
    /// normal/anomaly folders); only images and masks are read, and each is decoded before it is kept.
    /// Unset (the default): imports from the server's disk are off.
    #[arg(long, env = "VIGIL_IMPORT_ROOT")]
    pub import_root: Option<PathBuf>,

    /// S3 endpoints a console import may name besides the configured one (comma-separated URLs, e.g.
    /// `http://minio.plant.local:9000`). Link-local and cloud metadata addresses are refused even when listed.
    #[arg(long, env = "VIGIL_S3_ALLOWED_ENDPOINTS", value_delimiter = ',')]
    pub s3_allowed_endpoints: Vec<String>,

    /// The S3 locations Vigil's own S3 identity may read and write on a request's behalf (imports, dataset
    /// updates, trial and batch sources, `OutputConfig`, batch outputs, packages): comma-separated `bucket` or
    /// `bucket/prefix/` entries. Anything else is refused up front. Empty: any bucket the identity can reach.
    #[arg(long, env = "VIGIL_S3_ALLOWED_BUCKETS", value_delimiter = ',')]
    pub s3_allowed_buckets: Vec<String>,

    /// The regions signed calls may be scoped to (comma-separated, e.g. `us-east-1,eu-west-1`); a call signed for
    /// another region is refused as AWS refuses it. Empty: any region.
    #[arg(long, env = "VIGIL_API_REGIONS", value_delimiter = ',')]
    pub api_regions: Vec<String>,

    /// Most projects on this server (LFV's ServiceQuotaExceededException beyond).
    #[arg(long, env = "VIGIL_MAX_PROJECTS", default_value_t = 1000)]
    pub max_projects: i64,

    /// Most model versions one project may hold at once (deleted ones do not count).
    #[arg(long, env = "VIGIL_MAX_MODEL_VERSIONS", default_value_t = 1000)]
    pub max_model_versions: i64,

    /// Most trainings queued or running at once on this server (each takes the CPU for a while).
    #[arg(long, env = "VIGIL_MAX_QUEUED_TRAININGS", default_value_t = 20)]
    pub max_queued_trainings: i64,

    /// Most model versions hosted (or starting) at once on this server: each holds its model and its inference
    /// units' working memory. 0 (the default): one per 2 GiB of the machine's memory, from 2 to 64.
    #[arg(long, env = "VIGIL_MAX_HOSTED_MODELS", default_value_t = 0)]
    pub max_hosted_models: i64,

    /// Most temporary upload space, in GiB, that archives being uploaded or waiting for their import may take
    /// in `DATA_DIR/tmp` (ServiceQuotaExceeded beyond).
    #[arg(long, env = "VIGIL_MAX_TEMP_GB", default_value_t = 32)]
    pub max_temp_gb: u64,

    /// Directory holding the built console (`pkg/` with the WASM bundle, CSS and static files).
    #[arg(long, env = "VIGIL_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Access key id of the bootstrap API key, for automation and tests (with `--secret-access-key`). LFV
    /// clients sign with it like with any key the console issues; it belongs to no console user.
    #[arg(long, env = "VIGIL_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,

    /// Secret of the bootstrap API key.
    #[arg(long, env = "VIGIL_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,

    /// Server key that encrypts stored secrets (API keys' secrets, per-import S3 secrets): 64 hex digits or
    /// base64 of 32 bytes. Unset: `DATA_DIR/secret.key`, generated at first start. Servers sharing a database
    /// need the same key.
    #[arg(long, env = "VIGIL_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Password of the console administrator `admin`, created at the first start (when there are no users).
    /// Unset: a generated password, printed once in the log.
    #[arg(long, env = "VIGIL_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Mark the session cookie `Secure` (set it behind an HTTPS reverse proxy; `X-Forwarded-Proto: https`
    /// does the same per request).
    #[arg(long, env = "VIGIL_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub secure_cookies: bool,

    /// The console's public URL as browsers reach it (`https://vigil.plant.example`, behind a reverse proxy):
    /// state-changing console requests must come from this origin. Unset: from the request's own Host.
    #[arg(long, env = "VIGIL_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Training jobs this process runs at once. libtorch uses every core, so one is right for most machines.
    #[arg(long, env = "VIGIL_TRAIN_WORKERS", default_value_t = 1)]
    pub train_workers: usize,

    /// Import and update jobs this process runs at once, beside training.
    #[arg(long, env = "VIGIL_IMPORT_WORKERS", default_value_t = 2)]
    pub import_workers: usize,

    /// Seconds a worker's claim on a job lasts without renewal; a job whose worker died (crash, kill -9) is
    /// taken up again this long after its last renewal.
    #[arg(long, env = "VIGIL_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// Requests waiting per inference unit of a hosted model before DetectAnomalies answers
    /// ThrottlingException (429) instead of queueing without limit.
    #[arg(long, env = "VIGIL_DETECT_QUEUE_PER_UNIT", default_value_t = 8)]
    pub detect_queue_per_unit: usize,

    /// Serve the API and the console without running background jobs: an API replica beside `vigil worker`
    /// processes (any number of each on one PostgreSQL and one S3 blob store).
    #[arg(long, env = "VIGIL_NO_WORKER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_worker: bool,

    /// Most database connections this process keeps open (8 on SQLite, 16 on PostgreSQL); with many processes,
    /// keep their sum under PostgreSQL's `max_connections`.
    #[arg(long, env = "VIGIL_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// This machine's name in the process registry (`vigil_node`): processes on different hosts may not share
    /// a SQLite file or a local blob store. Unset: the kernel's host name.
    #[arg(long, env = "VIGIL_HOST_NAME")]
    pub host_name: Option<String>,

    /// The blob store (`VIGIL_BLOB_STORE` and its S3 settings).
    #[command(flatten)]
    pub blobs: BlobArgs,

    /// Bearer token a Prometheus scraper sends to read `/metrics` (`Authorization: Bearer TOKEN`, at least
    /// 16 characters). Unset: `/metrics` answers signed-in console users only.
    #[arg(long, env = "VIGIL_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl Config {
    pub fn job_lease_ms(&self) -> i64 {
        (self.job_lease_secs.max(1) * 1000) as i64
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Cli::parse_from(["vigil", "serve"]).into_serve()
    }
}

impl Cli {
    fn into_serve(self) -> Config {
        match self.command {
            Command::Serve(c) | Command::Worker(c) => c,
            // `defaults()` parses `vigil serve`, so no other command reaches here.
            _ => unreachable!("into_serve is only called on `vigil serve`"),
        }
    }
}

/// What a secret setting shows in `Debug` output: whether it is set, never its value.
fn shown(secret: &Option<String>) -> &'static str {
    if secret.is_some() {
        "<set>"
    } else {
        "<unset>"
    }
}

/// Where images, masks, models and results are kept (`blobs`): a local folder under the data directory, or an
/// S3-compatible bucket shared by every Vigil process. Separate from the S3 identity that reads import sources.
#[derive(Args, Clone, Default)]
pub struct BlobArgs {
    /// `s3://bucket/prefix` to keep blobs in an S3-compatible bucket (needed for API replicas and workers on
    /// several hosts). Unset or `local`: `DATA_DIR/blobs`.
    #[arg(id = "blob_store", value_name = "URL", long = "blob-store", env = "VIGIL_BLOB_STORE")]
    pub store: Option<String>,
    /// The blob bucket's endpoint (MinIO, Garage, Ceph...). Unset: AWS, or `AWS_ENDPOINT_URL_S3`.
    #[arg(id = "blob_endpoint", value_name = "URL", long = "blob-s3-endpoint", env = "VIGIL_BLOB_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Region of the blob bucket. Unset: `AWS_REGION`, else us-east-1.
    #[arg(id = "blob_region", value_name = "REGION", long = "blob-s3-region", env = "VIGIL_BLOB_S3_REGION")]
    pub region: Option<String>,
    /// Access key for the blob bucket. Unset: the standard AWS credential chain.
    #[arg(id = "blob_access_key_id", value_name = "KEY_ID", long = "blob-s3-access-key-id", env = "VIGIL_BLOB_S3_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Secret key for the blob bucket.
    #[arg(id = "blob_secret_access_key", value_name = "SECRET", long = "blob-s3-secret-access-key", env = "VIGIL_BLOB_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Path-style addressing for the blob bucket (most self-hosted servers need it).
    #[arg(id = "blob_force_path_style", value_name = "BOOL", long = "blob-s3-force-path-style", env = "VIGIL_BLOB_S3_FORCE_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub force_path_style: bool,
    /// Megabytes of local cache for blobs read from S3 (the least recently used go first).
    #[arg(id = "blob_cache_mb", long = "blob-cache-mb", env = "VIGIL_BLOB_CACHE_MB", default_value_t = 2048)]
    pub cache_mb: u64,
}

impl std::fmt::Debug for BlobArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobArgs")
            .field("store", &self.store)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &shown(&self.secret_access_key))
            .field("cache_mb", &self.cache_mb)
            .finish()
    }
}

impl std::fmt::Debug for S3Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Args")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &shown(&self.secret_access_key))
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

impl std::fmt::Debug for ResetPasswordArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordArgs")
            .field("user", &self.user)
            .field("password_stdin", &self.password_stdin)
            .field("database_url", &crate::db::redact(&self.database_url))
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &crate::db::redact(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("s3", &self.s3)
            .field("blobs", &self.blobs)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &shown(&self.secret_access_key))
            .field("secret_key", &shown(&self.secret_key))
            .field("admin_password", &shown(&self.admin_password))
            .field("metrics_token", &shown(&self.metrics_token))
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}



#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut c = Config::defaults();
        c.database_url = "postgres://vigil:db-pass-1@db/vigil".into();
        c.secret_access_key = Some("api-secret-1".into());
        c.secret_key = Some("server-key-1".into());
        c.admin_password = Some("admin-pass-1".into());
        c.metrics_token = Some("metrics-token-1".into());
        c.s3.secret_access_key = Some("s3-secret-1".into());
        c.blobs.secret_access_key = Some("blob-secret-1".into());
        let shown = format!("{c:?}");
        for secret in ["blob-secret-1", "db-pass-1", "api-secret-1", "server-key-1", "admin-pass-1", "metrics-token-1", "s3-secret-1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<set>"));
        let s3 = crate::s3::S3Settings::of(&c);
        assert!(!format!("{s3:?}").contains("s3-secret-1"));
    }
}
