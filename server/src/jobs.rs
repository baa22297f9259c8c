//! The durable job queue: imports (S3 manifests and folders, MVTec AD, archives), UpdateDatasetEntries, model
//! training, trial detections and batch runs, model packaging, recorded in the database and claimed by workers (which run them:
//! `work.rs`).
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
//! them. The workers' `try_execute_job` claims and runs one job; tests call it directly.

use crate::s3::S3Settings;
use crate::state::AppState;
use crate::db::{now_ms, BackendKind, Db};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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
    /// An uploaded archive: kept in the data directory (`path`), or, with a shared blob store, as a blob that any
    /// worker can read (`blob`), until the job ends.
    Archive {
        dataset_id: String,
        path: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blob: Option<String>,
    },
    /// UpdateDatasetEntries: the JSON lines to apply.
    Update { dataset_id: String, changes: String },
    /// CreateModel: trains the model version.
    Train { model_id: String },
    /// A trial detection (`trials`): the model version over the trial's images.
    Trial { trial_id: String },
    /// A batch run (`trials`): a hosted model over a folder or S3 prefix, results to S3 or a download.
    Batch { trial_id: String },
    /// StartModel (and re-hosting after a restart): loads a model version marked `STARTING_HOSTING` onto this
    /// process's inference units and settles it `HOSTED` or `HOSTING_FAILED`.
    Host { model_id: String },
    /// StartModelPackagingJob: builds the package of a `model_packaging_job` row and writes it to S3.
    Package { job_id: String },
}

/// A worker lane: the kinds of job it claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Train,
    Import,
    /// Trials and batches: detection over many images, beside training and imports.
    Detect,
    /// Loading models to host: seconds each, never queued behind a training.
    Host,
}

impl Lane {
    pub fn kind(self) -> &'static str {
        match self {
            Lane::Train => "train",
            Lane::Import => "import",
            Lane::Detect => "detect",
            Lane::Host => "host",
        }
    }
}

impl Job {
    /// The row the job settles: its dataset(s), or its model version.
    pub fn targets(&self) -> (&str, Option<&str>) {
        match self {
            Job::Manifest { dataset_id, .. } | Job::Folder { dataset_id, .. } | Job::Archive { dataset_id, .. } | Job::Update { dataset_id, .. } => {
                (dataset_id, None)
            }
            Job::Mvtec { train_id, test_id, .. } => (train_id, Some(test_id)),
            Job::Train { model_id } | Job::Host { model_id } => (model_id, None),
            Job::Trial { trial_id } | Job::Batch { trial_id } => (trial_id, None),
            Job::Package { job_id } => (job_id, None),
        }
    }

    pub fn lane(&self) -> Lane {
        match self {
            Job::Train { .. } => Lane::Train,
            Job::Trial { .. } | Job::Batch { .. } => Lane::Detect,
            Job::Host { .. } => Lane::Host,
            _ => Lane::Import,
        }
    }
}

/// Records a job (in the caller's transaction); returns its id. Call [`wake`] after the commit.
pub async fn enqueue(conn: &mut AnyConnection, job: &Job) -> Result<String, sqlx::Error> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let (target, other) = job.targets();
    let model_id = match job {
        Job::Train { model_id } | Job::Host { model_id } => Some(model_id.as_str()),
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
    let lock = match db.kind {
        BackendKind::Postgres => " for update skip locked",
        BackendKind::Sqlite => "",
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

/// Asks a model version's training to stop (the worker notices within a second). Returns whether a job was found.
pub async fn request_cancel(conn: &mut AnyConnection, model_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("update job set cancel_requested = 1, updated_at = $1 where model_id = $2 and kind = 'train'")
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// A training job's progress as the console shows it: `(stage, fraction, eta_ms, cancel_requested)`.
pub async fn training_progress(conn: &mut AnyConnection, model_id: &str) -> Result<Option<(Option<String>, Option<f64>, Option<i64>, i64)>, sqlx::Error> {
    sqlx::query_as("select stage, fraction, eta_ms, cancel_requested from job where model_id = $1 and kind = 'train'").bind(model_id).fetch_optional(&mut *conn).await
}

/// Whether a model version has a hosting job waiting or running.
pub async fn hosting_pending(conn: &mut AnyConnection, model_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select id from job where model_id = $1 and kind = 'host'").bind(model_id).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
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
            Job::Archive { dataset_id: "d".into(), path: "/tmp/x.zip".into(), name: "x.zip".into(), blob: None },
            Job::Archive { dataset_id: "d".into(), path: String::new(), name: "x.zip".into(), blob: Some("ab".repeat(32)) },
            Job::Update { dataset_id: "d".into(), changes: "{}\n".into() },
            Job::Host { model_id: "m".into() },
            Job::Package { job_id: "p".into() },
        ];
        for j in jobs {
            let s = serde_json::to_string(&j).unwrap();
            assert_eq!(serde_json::from_str::<Job>(&s).unwrap(), j);
        }
        let s = serde_json::to_string(&Job::Folder { dataset_id: "d".into(), place: "s3://b/p/".into(), s3: None }).unwrap();
        assert!(s.starts_with(r#"{"kind":"folder""#), "{s}");
    }
}
