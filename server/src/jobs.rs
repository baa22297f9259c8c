//! Durable background jobs and the worker that runs them: imports (S3 manifests and folders, MVTec AD,
//! archives), UpdateDatasetEntries, model training, trial detections and batch runs.
//!
//! A job is written in the same transaction that marks its target (dataset or model version) in progress.
//! Workers *claim* jobs: one atomic `update ... returning` gives the job an owner and a lease (on PostgreSQL the
//! candidate row is picked `for update skip locked`, so several Vigil processes can share one database without
//! claiming a job twice). The owner renews the lease while the job runs and records its progress; a lease that
//! runs out (the worker's process died) makes the job claimable again, and a re-claimed job re-marks its target
//! in progress. After [`MAX_ATTEMPTS`] claims a job is given up with a message instead of being retried forever
//! (a job that kills its process would otherwise kill every restart). Re-running a job from the start is safe:
//! an import upserts its entries by `source-ref` and replaces the report; an update commits all or nothing; a
//! training writes a new artifact and settles the model version in the same transaction that deletes the job.
//!
//! Lanes: training jobs run one at a time by default (libtorch uses every core), imports a few at a time beside
//! them. [`try_execute_job`] claims and runs one job; tests call it directly.

use crate::datasets::import::{Importer, Local, Place};
use crate::s3::{S3Settings, S3};
use crate::state::AppState;
use crate::store::{now_ms, Db, Engine};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Claims of one job before it is given up.
pub const MAX_ATTEMPTS: i64 = 3;

/// What a job does. Stored as JSON; new variants may be added, never renamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// CreateDataset from a Ground Truth manifest in S3.
    Manifest { dataset_id: String, bucket: String, key: String, version: Option<String>, s3: Option<S3Settings> },
    /// A normal/anomaly(/masks) folder in S3 or on the server's disk.
    Folder { dataset_id: String, place: String, s3: Option<S3Settings> },
    /// An MVTec AD category into a train and a test dataset.
    Mvtec { train_id: String, test_id: String, place: String, s3: Option<S3Settings> },
    /// An uploaded archive (kept in the data directory until the job ends).
    Archive { dataset_id: String, path: String, name: String },
    /// UpdateDatasetEntries: the JSON lines to apply.
    Update { dataset_id: String, changes: String },
    /// CreateModel: trains the model version.
    Train { model_id: String },
    /// A trial detection (`trials`): the model version over the trial's images.
    Trial { trial_id: String },
    /// A batch run (`trials`): a hosted model over a folder or S3 prefix, results to S3 or a download.
    Batch { trial_id: String },
}

/// A worker lane: the kinds of job it claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Train,
    Import,
    /// Trials and batches: detection over many images, beside training and imports.
    Detect,
}

impl Lane {
    pub fn kind(self) -> &'static str {
        match self {
            Lane::Train => "train",
            Lane::Import => "import",
            Lane::Detect => "detect",
        }
    }
}

impl Job {
    /// The row the job settles: its dataset(s), or its model version.
    fn targets(&self) -> (&str, Option<&str>) {
        match self {
            Job::Manifest { dataset_id, .. } | Job::Folder { dataset_id, .. } | Job::Archive { dataset_id, .. } | Job::Update { dataset_id, .. } => {
                (dataset_id, None)
            }
            Job::Mvtec { train_id, test_id, .. } => (train_id, Some(test_id)),
            Job::Train { model_id } => (model_id, None),
            Job::Trial { trial_id } | Job::Batch { trial_id } => (trial_id, None),
        }
    }

    pub fn lane(&self) -> Lane {
        match self {
            Job::Train { .. } => Lane::Train,
            Job::Trial { .. } | Job::Batch { .. } => Lane::Detect,
            _ => Lane::Import,
        }
    }
}

/// Records a job (in the caller's transaction); returns its id. Call [`wake`] after the commit.
pub async fn enqueue(conn: &mut AnyConnection, job: &Job) -> Result<String, sqlx::Error> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let (target, other) = job.targets();
    let model_id = match job {
        Job::Train { model_id } => Some(model_id.as_str()),
        _ => None,
    };
    let spec = serde_json::to_string(job).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "insert into job (id, dataset_id, other_dataset_id, spec, attempts, kind, model_id, created_at, updated_at) \
         values ($1, $2, $3, $4, 0, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(target)
    .bind(other)
    .bind(spec)
    .bind(job.lane().kind())
    .bind(model_id)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Tells idle workers that a job was committed (they also look every second).
pub fn wake(state: &AppState) {
    state.jobs.wake.notify_waiters();
}

/// The worker pool's shared parts (in `AppState`).
#[derive(Debug, Default)]
pub struct Workers {
    pub wake: tokio::sync::Notify,
    pub stopping: AtomicBool,
}

/// One recorded job.
pub async fn load(db: &Db, id: &str) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select spec from job where id = $1").bind(id).fetch_optional(&db.pool).await?;
    Ok(row.and_then(|(spec,)| serde_json::from_str(&spec).ok()))
}

/// Jobs waiting or running, oldest first.
pub async fn pending(conn: &mut AnyConnection) -> Result<Vec<(String, Job)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as("select id, spec from job order by created_at, id").fetch_all(&mut *conn).await?;
    let mut out = Vec::new();
    for (id, spec) in rows {
        match serde_json::from_str(&spec) {
            Ok(job) => out.push((id, job)),
            Err(e) => {
                // Only a future version could have written it; leave it for that version.
                tracing::warn!(error = %e, job = %id, "skipping a job this version cannot read");
            }
        }
    }
    Ok(out)
}

/// A job claimed by a worker.
#[derive(Debug)]
pub struct Claimed {
    pub id: String,
    pub job: Option<Job>,
    pub attempts: i64,
}

/// Atomically claims the oldest claimable job of a lane: one that no one holds, or whose lease ran out.
pub async fn claim(db: &Db, owner: &str, lane: Lane, lease_ms: i64) -> Result<Option<Claimed>, sqlx::Error> {
    claim_kind(db, owner, lane.kind(), lease_ms).await
}

/// [`claim`] by the job table's `kind`.
pub async fn claim_kind(db: &Db, owner: &str, kind: &str, lease_ms: i64) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_ms();
    let lock = match db.engine {
        Engine::Postgres => " for update skip locked",
        Engine::Sqlite => "",
    };
    let sql = format!(
        "update job set owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
         where id = (select id from job where kind = $4 and (lease_until is null or lease_until < $3) \
                     order by created_at, id limit 1{lock}) \
         and (lease_until is null or lease_until < $3) \
         returning id, spec, attempts"
    );
    let row: Option<(String, String, i64)> = sqlx::query_as(&sql)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(kind)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|(id, spec, attempts)| Claimed { id, job: serde_json::from_str(&spec).ok(), attempts }))
}

/// Progress a running job reports (shared between the job and its lease keeper).
#[derive(Debug, Default)]
pub struct JobProgress {
    pub stage: Mutex<Option<(String, f64)>>,
    /// Set when someone asked to cancel the job (or its lease was lost).
    pub cancel: AtomicBool,
}

impl JobProgress {
    pub fn set(&self, stage: &str, fraction: f64) {
        if let Ok(mut s) = self.stage.lock() {
            *s = Some((stage.to_string(), fraction.clamp(0.0, 1.0)));
        }
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// What one call of [`try_execute_job`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Execution {
    EmptyQueue,
    Completed,
}

/// Claims one job of the lane, runs it to the end (renewing its lease and recording progress meanwhile) and
/// deletes it. Returns `EmptyQueue` when nothing was claimable.
pub async fn try_execute_job(state: &AppState, owner: &str, lane: Lane) -> Result<Execution, sqlx::Error> {
    let lease_ms = state.config.job_lease_ms();
    let Some(claimed) = claim(&state.db, owner, lane, lease_ms).await? else {
        return Ok(Execution::EmptyQueue);
    };
    let Some(job) = claimed.job else {
        // Only a future version could have written it; leave it to that version by releasing the claim.
        tracing::warn!(job = %claimed.id, "released a job this version cannot read");
        sqlx::query("update job set owner = null, lease_until = $1 where id = $2")
            .bind(now_ms() + 3_600_000)
            .bind(&claimed.id)
            .execute(&state.db.pool)
            .await?;
        return Ok(Execution::Completed);
    };
    if claimed.attempts > MAX_ATTEMPTS {
        tracing::error!(job = %claimed.id, attempts = claimed.attempts - 1, "giving up a job that never finished");
        give_up(state, &claimed.id, &job, claimed.attempts - 1).await;
        return Ok(Execution::Completed);
    }
    if claimed.attempts > 1 {
        tracing::info!(job = %claimed.id, attempt = claimed.attempts, "resuming a job whose worker stopped");
        remark(state, &job).await?;
    }
    let progress = Arc::new(JobProgress::default());
    let keeper = tokio::spawn(keep_lease(state.clone(), claimed.id.clone(), owner.to_string(), lease_ms, progress.clone()));
    run(state, &claimed.id, job, progress).await;
    keeper.abort();
    // A training job deletes itself when it settles its model; deleting again is harmless.
    sqlx::query("delete from job where id = $1").bind(&claimed.id).execute(&state.db.pool).await?;
    Ok(Execution::Completed)
}

/// Renews the lease every second while the job runs, with its progress, and notices cancellation. A lost
/// lease (another worker took over) cancels the job here.
async fn keep_lease(state: AppState, id: String, owner: String, lease_ms: i64, progress: Arc<JobProgress>) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis((lease_ms / 3).clamp(200, 1000) as u64));
    loop {
        tick.tick().await;
        let (stage, fraction) = progress.stage.lock().ok().and_then(|s| s.clone()).unzip();
        let eta = fraction.filter(|&f| f > 0.02).map(|f| (started.elapsed().as_millis() as f64 * (1.0 - f) / f) as i64);
        let now = now_ms();
        let row: Result<Option<(i64,)>, _> = sqlx::query_as(
            "update job set lease_until = $1, stage = coalesce($2, stage), fraction = coalesce($3, fraction), \
             eta_ms = $4, updated_at = $5 where id = $6 and owner = $7 returning cancel_requested",
        )
        .bind(now + lease_ms)
        .bind(stage)
        .bind(fraction)
        .bind(eta)
        .bind(now)
        .bind(&id)
        .bind(&owner)
        .fetch_optional(&state.db.pool)
        .await;
        match row {
            Ok(Some((c,))) => {
                if c != 0 {
                    progress.cancel.store(true, Ordering::Relaxed);
                }
            }
            Ok(None) => {
                tracing::warn!(job = %id, "lost the lease of a running job; cancelling it");
                progress.cancel.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, job = %id, "could not renew a job's lease"),
        }
    }
}

/// A resumed job's target is in progress again (a crash may have left it otherwise).
async fn remark(state: &AppState, job: &Job) -> Result<(), sqlx::Error> {
    if let Job::Train { model_id } = job {
        sqlx::query("update model_version set status = $1, status_message = $2, updated_at = $3 where id = $4")
            .bind(crate::models::TRAINING)
            .bind("Training was interrupted (the server stopped) and has started again.")
            .bind(now_ms())
            .bind(model_id)
            .execute(&state.db.pool)
            .await?;
    }
    Ok(())
}

/// Settles the target of a job that was claimed too often, and deletes the job.
async fn give_up(state: &AppState, id: &str, job: &Job, attempts: i64) {
    let why = format!(
        "The job was started {attempts} times and never finished: the server stopped each time (for example it ran out \
         of memory). Try again with fewer or smaller images."
    );
    match job {
        Job::Trial { trial_id } | Job::Batch { trial_id } => crate::trials::give_up(state, trial_id, &why).await,
        Job::Train { model_id } => {
            if let Err(e) = crate::models::training::settle_failed(&state.db, model_id, Some(id), &why).await {
                tracing::error!(error = %e, "could not settle a model version");
            }
        }
        Job::Update { dataset_id, .. } => {
            let mut conn = match state.db.pool.acquire().await {
                Ok(c) => c,
                Err(e) => return tracing::error!(error = %e, "could not settle a dataset"),
            };
            let why = format!("{why} No entry was changed.");
            let _ = crate::datasets::set_status(&mut conn, dataset_id, crate::datasets::UPDATE_FAILED_ROLLBACK_COMPLETE, Some(&why)).await;
        }
        other => {
            let (a, b) = other.targets();
            let imp = state.importer();
            imp.fail_create(a, why.clone()).await;
            if let Some(b) = b {
                imp.fail_create(b, why).await;
            }
        }
    }
    let _ = sqlx::query("delete from job where id = $1").bind(id).execute(&state.db.pool).await;
}

/// Asks a job to stop (the worker notices within a second). Returns whether a job was found.
pub async fn request_cancel(conn: &mut AnyConnection, model_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("update job set cancel_requested = 1, updated_at = $1 where model_id = $2")
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// A training job's progress as the console shows it: `(stage, fraction, eta_ms)`.
pub async fn training_progress(conn: &mut AnyConnection, model_id: &str) -> Result<Option<(Option<String>, Option<f64>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("select stage, fraction, eta_ms from job where model_id = $1").bind(model_id).fetch_optional(&mut *conn).await
}

/// Starts the worker pool: `train_workers` training lanes and `import_workers` import lanes, each a loop of
/// [`try_execute_job`] that sleeps until woken (or a second) when the queue is empty. Also removes day-old
/// temporary files that no job needs (an upload cut off by a crash).
pub async fn start_workers(state: &AppState) -> Result<usize, sqlx::Error> {
    let jobs = pending(&mut *state.db.pool.acquire().await?).await?;
    let keep: Vec<std::path::PathBuf> = jobs
        .iter()
        .filter_map(|(_, j)| match j {
            Job::Archive { path, .. } => Some(std::path::PathBuf::from(path)),
            _ => None,
        })
        .collect();
    if let Ok(dir) = std::fs::read_dir(state.config.data_dir.join("tmp")) {
        let day_old = |e: &std::fs::DirEntry| {
            e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 24 * 3600)
        };
        for e in dir.flatten() {
            if !keep.contains(&e.path()) && day_old(&e) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "vigil".into());
    let lanes = [(Lane::Train, state.config.train_workers), (Lane::Import, state.config.import_workers), (Lane::Detect, 1)];
    for (lane, n) in lanes {
        for _ in 0..n.max(1) {
            let owner = format!("{host}:{}:{}", std::process::id(), hex::encode(rand::random::<[u8; 4]>()));
            tokio::spawn(worker_loop(state.clone(), owner, lane));
        }
    }
    Ok(jobs.len())
}

async fn worker_loop(state: AppState, owner: String, lane: Lane) {
    while !state.jobs.stopping.load(Ordering::Relaxed) {
        match try_execute_job(&state, &owner, lane).await {
            Ok(Execution::Completed) => continue,
            Ok(Execution::EmptyQueue) => {}
            Err(e) => {
                if state.jobs.stopping.load(Ordering::Relaxed) {
                    break;
                }
                tracing::warn!(error = %e, lane = lane.kind(), "the job worker could not reach the database");
            }
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), state.jobs.wake.notified()).await;
    }
}

async fn importer(state: &AppState, s3: &Option<S3Settings>) -> Importer {
    let mut importer = state.importer();
    if let Some(settings) = s3 {
        importer.s3 = S3::connect(settings).await;
    }
    importer
}

/// The importer for a folder or MVTec place: single-class masks, and the folder itself when it is on disk.
async fn place_importer(state: &AppState, s3: &Option<S3Settings>, place: &str) -> Result<(Importer, Place), (Importer, String)> {
    let mut imp = importer(state, s3).await;
    imp.binary_masks = true;
    match Place::parse(place) {
        Ok(p) => {
            if let Place::Dir(dir) = &p {
                imp = imp.with_local(Local::Dir(dir.clone()));
            }
            Ok((imp, p))
        }
        Err(m) => Err((imp, m)),
    }
}

async fn run(state: &AppState, job_id: &str, job: Job, progress: Arc<JobProgress>) {
    match job {
        Job::Train { model_id } => crate::models::training::run(state, job_id, &model_id, progress).await,
        Job::Trial { trial_id } => crate::trials::run_trial(state, &trial_id, progress).await,
        Job::Batch { trial_id } => crate::trials::run_batch(state, &trial_id, progress).await,
        Job::Manifest { dataset_id, bucket, key, version, s3 } => {
            importer(state, &s3).await.import_manifest(&dataset_id, &bucket, &key, version.as_deref()).await
        }
        Job::Folder { dataset_id, place, s3 } => match place_importer(state, &s3, &place).await {
            Ok((imp, p)) => imp.import_folder(&dataset_id, &p).await,
            Err((imp, m)) => imp.fail_create(&dataset_id, m).await,
        },
        Job::Mvtec { train_id, test_id, place, s3 } => match place_importer(state, &s3, &place).await {
            Ok((imp, p)) => imp.import_mvtec(&train_id, &test_id, &p).await,
            Err((imp, m)) => {
                imp.fail_create(&train_id, m.clone()).await;
                imp.fail_create(&test_id, m).await;
            }
        },
        Job::Archive { dataset_id, path, name } => {
            let path = std::path::PathBuf::from(path);
            let imp = state.importer().with_local(Local::Zip(std::sync::Arc::new(path.clone())));
            imp.import_zip(&dataset_id, &name).await;
            let _ = tokio::fs::remove_file(&path).await;
        }
        Job::Update { dataset_id, changes } => {
            let (lines, _) = crate::datasets::import::parse_manifest(&changes);
            state.importer().update_entries(&dataset_id, lines).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_as_json() {
        let jobs = vec![
            Job::Manifest { dataset_id: "d".into(), bucket: "b".into(), key: "k".into(), version: None, s3: None },
            Job::Mvtec {
                train_id: "a".into(),
                test_id: "b".into(),
                place: "/srv/x/".into(),
                s3: Some(S3Settings { endpoint: Some("http://h:9000".into()), force_path_style: true, ..Default::default() }),
            },
            Job::Archive { dataset_id: "d".into(), path: "/tmp/x.zip".into(), name: "x.zip".into() },
            Job::Update { dataset_id: "d".into(), changes: "{}\n".into() },
        ];
        for j in jobs {
            let s = serde_json::to_string(&j).unwrap();
            assert_eq!(serde_json::from_str::<Job>(&s).unwrap(), j);
        }
        let s = serde_json::to_string(&Job::Folder { dataset_id: "d".into(), place: "s3://b/p/".into(), s3: None }).unwrap();
        assert!(s.starts_with(r#"{"kind":"folder""#), "{s}");
    }
}
