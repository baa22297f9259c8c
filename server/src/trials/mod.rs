//! Trial detections and batch runs: a model version run over many images as a background job.
//!
//! A **trial** (LFV's console-only loop) runs a trained model version — hosted or not — over up to
//! [`MAX_TRIAL_IMAGES`] images from a dataset of the project, an S3 prefix (the server's S3 connection) or an
//! upload, and keeps one row per image: the verdict, the confidence, the heat map and, for segmentation models,
//! the mask. The user verifies each verdict as correct or incorrect, then adds the verified images to a dataset
//! (label = the verdict, flipped where it was wrong) and trains again.
//!
//! A **batch** (beyond LFV) sends every image of an S3 prefix or a server folder (under `VIGIL_IMPORT_ROOT`)
//! through a *hosted* model's inference units, and writes one LFV `DetectAnomalyResult` per image as JSON lines,
//! with the masks as PNG files, to an S3 prefix or to a zip file the console and the API offer for download.
//!
//! Both are [`crate::jobs::Job`]s on their own lane, so they never hold up training or imports, and both are
//! safe to run again after a crash: a trial continues with the images not yet done, a batch starts over.
//! Requests reach this module through the Vigil REST extension (`http::trials`) and the console
//! (`console::trials`); the checks live here once.

use crate::datasets::{self, BlobInfo};
use crate::jobs::Job;
use crate::models::{self, ModelVersion};
use crate::state::AppState;
use crate::store::now_ms;
use sqlx::{AnyConnection, Row};
use std::path::{Path, PathBuf};

mod batch;
mod run;
mod verify;

pub use batch::run_batch;
pub use run::{anomaly_areas, heat_png, run_trial};
pub use verify::{add_to_dataset, set_verdicts, verified_label};

/// Images one trial may run over (LFV's trial detection limit).
pub const MAX_TRIAL_IMAGES: usize = 2_000;
/// Images one batch may run over.
pub const MAX_BATCH_IMAGES: usize = 100_000;
/// Trials and batches kept per project (the oldest must be deleted first).
pub const MAX_TRIALS_PER_PROJECT: i64 = 200;

pub const KIND_TRIAL: &str = "trial";
pub const KIND_BATCH: &str = "batch";

pub const RUNNING: &str = "RUNNING";
pub const COMPLETED: &str = "COMPLETED";
pub const FAILED: &str = "FAILED";
pub const CANCELLED: &str = "CANCELLED";

pub const CORRECT: &str = "correct";
pub const INCORRECT: &str = "incorrect";

/// A trial or batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub id: String,
    pub project_id: String,
    pub model_id: String,
    pub model_version: i64,
    pub kind: String,
    pub name: String,
    pub source: String,
    pub output: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub total: i64,
    pub processed: i64,
    pub anomalous: i64,
    pub failed: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One image of a trial and what the model said of it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialImage {
    pub seq: i64,
    pub name: String,
    pub image_hash: String,
    pub width: i64,
    pub height: i64,
    pub done: bool,
    pub error: Option<String>,
    pub is_anomalous: Option<bool>,
    pub confidence: Option<f64>,
    pub score: Option<f64>,
    pub heat_hash: Option<String>,
    pub mask_hash: Option<String>,
    /// `[(name, colour, area fraction)]` of the anomaly types found (segmentation models).
    pub anomalies: Vec<(String, String, f64)>,
    pub verdict: Option<String>,
    pub added_at: Option<i64>,
}

/// Where a trial or batch reads its images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Every entry of one of the project's datasets (`train` or `test`).
    Dataset(String),
    /// Every JPEG/PNG object under an S3 prefix, read with the server's S3 connection.
    S3 { bucket: String, prefix: String },
    /// Every JPEG/PNG file of a folder on the server's disk, under `VIGIL_IMPORT_ROOT` (batches).
    Folder(PathBuf),
    /// Images uploaded with the request (trials from the console).
    Upload,
}

impl Source {
    /// `dataset:train`, `s3://bucket/prefix/`, `upload` or an absolute folder path.
    pub fn parse(s: &str) -> Result<Source, String> {
        let s = s.trim();
        if let Some(t) = s.strip_prefix("dataset:") {
            datasets::validate_dataset_type(t)?;
            return Ok(Source::Dataset(t.to_string()));
        }
        if s.starts_with("s3://") {
            let rest = &s["s3://".len()..];
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
                return Err(format!("{s} does not name an S3 bucket (s3://bucket/prefix/)."));
            }
            if prefix.len() > 1024 {
                return Err("The S3 prefix is longer than 1,024 characters.".into());
            }
            // A prefix names a folder: `s3://b/incoming` reads `incoming/…`.
            let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
            return Ok(Source::S3 { bucket: bucket.into(), prefix });
        }
        if s == "upload" {
            return Ok(Source::Upload);
        }
        if s.starts_with('/') && s.len() <= 4096 {
            return Ok(Source::Folder(PathBuf::from(s)));
        }
        Err(format!("{s:?} is not a source: give dataset:train, dataset:test, s3://bucket/prefix/ or a folder's absolute path."))
    }

    pub fn spec(&self) -> String {
        match self {
            Source::Dataset(t) => format!("dataset:{t}"),
            Source::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Source::Folder(p) => p.display().to_string(),
            Source::Upload => "upload".into(),
        }
    }
}

/// Where a batch writes its results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    S3 { bucket: String, prefix: String },
    /// A zip file in the data directory, offered for download until the batch is deleted.
    Download,
}

impl Output {
    pub fn parse(s: &str) -> Result<Output, String> {
        match Source::parse(s) {
            _ if s.trim().eq_ignore_ascii_case("download") => Ok(Output::Download),
            Ok(Source::S3 { bucket, prefix }) => Ok(Output::S3 { bucket, prefix }),
            _ => Err(format!("{s:?} is not an output: give s3://bucket/prefix/ or download.")),
        }
    }

    pub fn spec(&self) -> String {
        match self {
            Output::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Output::Download => "download".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The project, model version, trial or batch (the message says which).
    #[error("{0}")]
    NotFound(String),
    #[error("A trial named {0} already exists in this project.")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    /// The model or dataset is in a state that does not allow it.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<datasets::DatasetError> for TrialError {
    fn from(e: datasets::DatasetError) -> Self {
        match e {
            datasets::DatasetError::NotFound { .. } => TrialError::NotFound(e.to_string()),
            datasets::DatasetError::Busy { .. } | datasets::DatasetError::Exists(_) => TrialError::Conflict(e.to_string()),
            datasets::DatasetError::Invalid(m) => TrialError::Invalid(m),
            datasets::DatasetError::Db(e) => TrialError::Db(e),
        }
    }
}

/// A trial's name: 1–100 letters, digits, spaces, `-`, `_` and `.`, not starting with a space.
pub fn validate_name(name: &str) -> Result<(), TrialError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 100
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(TrialError::Invalid(format!(
            "{name:?} is not a trial name: use 1 to 100 letters, digits, spaces, '-', '_' or '.'."
        )))
    }
}

const COLUMNS: &str = "id, project_id, model_id, model_version, kind, name, source, output, status, status_message, total, \
    processed, anomalous, failed, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Trial, sqlx::Error> {
    Ok(Trial {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        model_id: r.try_get(2)?,
        model_version: r.try_get(3)?,
        kind: r.try_get(4)?,
        name: r.try_get(5)?,
        source: r.try_get(6)?,
        output: r.try_get(7)?,
        status: r.try_get(8)?,
        status_message: r.try_get(9)?,
        total: r.try_get(10)?,
        processed: r.try_get(11)?,
        anomalous: r.try_get(12)?,
        failed: r.try_get(13)?,
        created_at: r.try_get(14)?,
        updated_at: r.try_get(15)?,
    })
}

const IMAGE_COLUMNS: &str =
    "seq, name, image_hash, width, height, done, error, is_anomalous, confidence, score, heat_hash, mask_hash, anomalies, verdict, added_at";

fn image_from_row(r: &sqlx::any::AnyRow) -> Result<TrialImage, sqlx::Error> {
    let anomalies: Option<String> = r.try_get(12)?;
    Ok(TrialImage {
        seq: r.try_get(0)?,
        name: r.try_get(1)?,
        image_hash: r.try_get(2)?,
        width: r.try_get(3)?,
        height: r.try_get(4)?,
        done: r.try_get::<i64, _>(5)? != 0,
        error: r.try_get(6)?,
        is_anomalous: r.try_get::<Option<i64>, _>(7)?.map(|v| v != 0),
        confidence: r.try_get(8)?,
        score: r.try_get(9)?,
        heat_hash: r.try_get(10)?,
        mask_hash: r.try_get(11)?,
        anomalies: anomalies.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default(),
        verdict: r.try_get(13)?,
        added_at: r.try_get(14)?,
    })
}

pub async fn find(conn: &mut AnyConnection, project_id: &str, kind: &str, name: &str) -> Result<Option<Trial>, sqlx::Error> {
    let row = sqlx::query(&format!("select {COLUMNS} from trial where project_id = $1 and kind = $2 and name = $3"))
        .bind(project_id)
        .bind(kind)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A project's trial or batch by the project's name and its own, or `NotFound` naming what is missing.
pub async fn require(conn: &mut AnyConnection, project: &str, kind: &str, name: &str) -> Result<Trial, TrialError> {
    let p = crate::projects::find(conn, project).await?.ok_or_else(|| TrialError::NotFound(format!("The project {project} does not exist.")))?;
    let what = if kind == KIND_BATCH { "batch" } else { "trial" };
    find(conn, &p.id, kind, name).await?.ok_or_else(|| TrialError::NotFound(format!("The project {project} has no {what} {name}.")))
}

pub async fn find_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Trial>, sqlx::Error> {
    let row = sqlx::query(&format!("select {COLUMNS} from trial where id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// A project's trials or batches, newest first.
pub async fn list(conn: &mut AnyConnection, project_id: &str, kind: &str) -> Result<Vec<Trial>, sqlx::Error> {
    let rows = sqlx::query(&format!("select {COLUMNS} from trial where project_id = $1 and kind = $2 order by created_at desc, id"))
        .bind(project_id)
        .bind(kind)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn images(conn: &mut AnyConnection, trial_id: &str) -> Result<Vec<TrialImage>, sqlx::Error> {
    let rows = sqlx::query(&format!("select {IMAGE_COLUMNS} from trial_image where trial_id = $1 order by seq"))
        .bind(trial_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(image_from_row).collect()
}

/// The project and model version a trial or batch is asked for; the version must be trained (a batch's hosted).
async fn project_model(conn: &mut AnyConnection, project: &str, version: &str, hosted: bool) -> Result<(String, ModelVersion), TrialError> {
    let p = crate::projects::find(conn, project).await?.ok_or_else(|| TrialError::NotFound(format!("The project {project} does not exist.")))?;
    let m = models::find(conn, &p.id, version)
        .await?
        .ok_or_else(|| TrialError::NotFound(format!("The project {project} has no model version {version}.")))?;
    if hosted && m.status != models::HOSTED {
        return Err(TrialError::Conflict(format!(
            "Model version {} is {}; a batch runs on a hosted model. Start it first.",
            m.version, m.status
        )));
    }
    if m.artifact_hash.is_none() || !(models::is_trained(&m.status) || models::is_hosting(&m.status)) {
        return Err(TrialError::Conflict(format!("Model version {} is {}; only a trained model can run a trial.", m.version, m.status)));
    }
    Ok((p.id, m))
}

async fn check_room(conn: &mut AnyConnection, project_id: &str) -> Result<(), TrialError> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from trial where project_id = $1").bind(project_id).fetch_one(&mut *conn).await?;
    if n >= MAX_TRIALS_PER_PROJECT {
        return Err(TrialError::Conflict(format!(
            "The project keeps {MAX_TRIALS_PER_PROJECT} trials and batches, the most it may; delete an old one first."
        )));
    }
    Ok(())
}

pub(crate) struct NewImage {
    pub name: String,
    pub blob: BlobInfo,
}

async fn insert_trial(
    conn: &mut AnyConnection,
    project_id: &str,
    m: &ModelVersion,
    kind: &str,
    name: &str,
    source: &str,
    output: Option<&str>,
) -> Result<String, sqlx::Error> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = now_ms();
    sqlx::query(
        "insert into trial (id, project_id, model_id, model_version, kind, name, source, output, status, total, processed, \
         anomalous, failed, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, 0, 0, $10, $10)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(&m.id)
    .bind(m.version)
    .bind(kind)
    .bind(name)
    .bind(source)
    .bind(output)
    .bind(RUNNING)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

pub(crate) async fn insert_images(conn: &mut AnyConnection, trial_id: &str, first_seq: i64, images: &[NewImage]) -> Result<(), sqlx::Error> {
    for (i, im) in images.iter().enumerate() {
        sqlx::query(
            "insert into trial_image (trial_id, seq, name, image_hash, size, content_type, width, height, done) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
        )
        .bind(trial_id)
        .bind(first_seq + i as i64)
        .bind(&im.name)
        .bind(&im.blob.hash)
        .bind(im.blob.size)
        .bind(&im.blob.content_type)
        .bind(im.blob.width)
        .bind(im.blob.height)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("update trial set total = (select count(*) from trial_image where trial_id = $1), updated_at = $2 where id = $1")
        .bind(trial_id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Starts a trial: checks the request, records the trial (with its images, where they are known now) and its
/// job in one transaction. `uploads` are images already in the blob store, `(file name, blob)`, for
/// `Source::Upload`.
pub async fn create_trial(
    state: &AppState,
    project: &str,
    name: &str,
    version: &str,
    source: Source,
    uploads: Vec<(String, BlobInfo)>,
) -> Result<Trial, TrialError> {
    validate_name(name)?;
    if let Source::S3 { bucket, prefix } = &source {
        check_s3(state, bucket, prefix).await?;
    }
    let mut tx = state.db.begin_write().await?;
    let (project_id, m) = project_model(&mut tx, project, version, false).await?;
    if find(&mut tx, &project_id, KIND_TRIAL, name).await?.is_some() {
        return Err(TrialError::Exists(name.to_string()));
    }
    check_room(&mut tx, &project_id).await?;
    let images: Vec<NewImage> = match &source {
        Source::Dataset(t) => {
            let d = datasets::require(&mut tx, &project_id, project, t).await?;
            datasets::check_settled(&d)?;
            let rows = sqlx::query(
                "select e.source_ref, b.hash, b.size, b.content_type, b.width, b.height from dataset_entry e \
                 join blob b on b.hash = e.image_hash where e.dataset_id = $1 order by e.created_at, e.id limit $2",
            )
            .bind(&d.id)
            .bind(MAX_TRIAL_IMAGES as i64 + 1)
            .fetch_all(&mut *tx)
            .await?;
            if rows.len() > MAX_TRIAL_IMAGES {
                return Err(TrialError::Invalid(format!(
                    "The {t} dataset has more than {MAX_TRIAL_IMAGES} images, the most a trial runs over."
                )));
            }
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(NewImage {
                    name: r.try_get(0)?,
                    blob: BlobInfo {
                        hash: r.try_get(1)?,
                        size: r.try_get(2)?,
                        content_type: r.try_get(3)?,
                        width: int(r, 4)?,
                        height: int(r, 5)?,
                    },
                });
            }
            out
        }
        Source::Upload => {
            if uploads.len() > MAX_TRIAL_IMAGES {
                return Err(TrialError::Invalid(format!("{} images were uploaded; a trial runs over at most {MAX_TRIAL_IMAGES}.", uploads.len())));
            }
            uploads
                .into_iter()
                .map(|(file, blob)| NewImage { name: datasets::upload_source_ref(&blob.hash, &file), blob })
                .collect()
        }
        Source::S3 { .. } => Vec::new(),
        Source::Folder(_) => {
            return Err(TrialError::Invalid("A trial reads a dataset, an S3 prefix or an upload; folders are for batches.".into()))
        }
    };
    if images.is_empty() && !matches!(source, Source::S3 { .. }) {
        return Err(TrialError::Invalid("There are no images to run the trial over.".into()));
    }
    let id = insert_trial(&mut tx, &project_id, &m, KIND_TRIAL, name, &source.spec(), None).await?;
    insert_images(&mut tx, &id, 0, &images).await?;
    crate::jobs::enqueue(&mut tx, &Job::Trial { trial_id: id.clone() }).await?;
    let t = find_by_id(&mut tx, &id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

/// Adds more uploaded images to a trial started from an upload (the console sends a large upload in several
/// requests) and runs them: the trial is running again until every image is done.
pub async fn append_uploads(state: &AppState, project: &str, name: &str, uploads: Vec<(String, BlobInfo)>) -> Result<Trial, TrialError> {
    let mut tx = state.db.begin_write().await?;
    let t = require(&mut tx, project, KIND_TRIAL, name).await?;
    if t.source != "upload" {
        return Err(TrialError::Invalid(format!("The trial {name} reads {}; images can only be added to an uploaded trial.", t.source)));
    }
    let (n, next): (i64, Option<i64>) =
        sqlx::query_as("select count(*), max(seq) from trial_image where trial_id = $1").bind(&t.id).fetch_one(&mut *tx).await?;
    if n as usize + uploads.len() > MAX_TRIAL_IMAGES {
        return Err(TrialError::Invalid(format!("A trial runs over at most {MAX_TRIAL_IMAGES} images; {name} has {n}.")));
    }
    let images: Vec<NewImage> =
        uploads.into_iter().map(|(file, blob)| NewImage { name: datasets::upload_source_ref(&blob.hash, &file), blob }).collect();
    insert_images(&mut tx, &t.id, next.map_or(0, |s| s + 1), &images).await?;
    sqlx::query("update trial set status = $1, status_message = null, updated_at = $2 where id = $3")
        .bind(RUNNING)
        .bind(now_ms())
        .bind(&t.id)
        .execute(&mut *tx)
        .await?;
    crate::jobs::enqueue(&mut tx, &Job::Trial { trial_id: t.id.clone() }).await?;
    let t = find_by_id(&mut tx, &t.id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

/// Starts a batch over a hosted model version. A folder must be under `VIGIL_IMPORT_ROOT`.
pub async fn create_batch(state: &AppState, project: &str, version: &str, source: Source, output: Output) -> Result<Trial, TrialError> {
    let source = match source {
        Source::Folder(dir) => Source::Folder(folder(state, &dir)?),
        Source::S3 { bucket, prefix } => {
            check_s3(state, &bucket, &prefix).await?;
            Source::S3 { bucket, prefix }
        }
        _ => return Err(TrialError::Invalid("A batch reads an S3 prefix or a folder on the server.".into())),
    };
    if let Output::S3 { bucket, prefix } = &output {
        // The results bucket must answer now, not after the whole batch ran.
        state.s3.probe(bucket, prefix).await.map_err(|why| TrialError::Invalid(format!("s3://{bucket}/{prefix} cannot be written: {why}.")))?;
    }
    let mut tx = state.db.begin_write().await?;
    let (project_id, m) = project_model(&mut tx, project, version, true).await?;
    check_room(&mut tx, &project_id).await?;
    let name = format!("batch-{}", hex::encode(rand::random::<[u8; 6]>()));
    let id = insert_trial(&mut tx, &project_id, &m, KIND_BATCH, &name, &source.spec(), Some(&output.spec())).await?;
    crate::jobs::enqueue(&mut tx, &Job::Batch { trial_id: id.clone() }).await?;
    let t = find_by_id(&mut tx, &id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

/// An S3 source is checked before anything is recorded: the bucket must answer and hold objects under the prefix.
async fn check_s3(state: &AppState, bucket: &str, prefix: &str) -> Result<(), TrialError> {
    match state.s3.probe(bucket, prefix).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(TrialError::Invalid(format!("There is nothing under s3://{bucket}/{prefix}."))),
        Err(why) => Err(TrialError::Invalid(format!("s3://{bucket}/{prefix} cannot be read: {why}."))),
    }
}

pub(crate) fn folder(state: &AppState, dir: &Path) -> Result<PathBuf, TrialError> {
    crate::security::import_dir(state.config.import_root.as_deref(), dir).map_err(|e| match e.status {
        403 => TrialError::Conflict(e.message),
        _ => TrialError::Invalid(e.message),
    })
}

pub(crate) fn int(r: &sqlx::any::AnyRow, i: usize) -> Result<i64, sqlx::Error> {
    r.try_get::<i64, _>(i).or_else(|_| r.try_get::<i32, _>(i).map(i64::from))
}

/// Deletes a trial or batch that is not running, with its images' rows and a batch's download.
pub async fn delete(state: &AppState, t: &Trial) -> Result<(), TrialError> {
    if t.status == RUNNING {
        return Err(TrialError::Conflict(format!("{} is still running; cancel it or wait for it to finish.", t.name)));
    }
    let mut tx = state.db.begin_write().await?;
    sqlx::query("delete from trial_image where trial_id = $1").bind(&t.id).execute(&mut *tx).await?;
    sqlx::query("delete from trial where id = $1").bind(&t.id).execute(&mut *tx).await?;
    tx.commit().await?;
    let _ = std::fs::remove_file(download_path(state, &t.id));
    Ok(())
}

/// Removes batch result files whose batch no longer exists (deleted with its model version or project), and
/// temporary ones older than a day. Returns how many were removed.
pub async fn remove_orphan_downloads(state: &AppState) -> Result<usize, sqlx::Error> {
    let dir = state.config.data_dir.join("batches");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(0) };
    let ids: std::collections::HashSet<String> =
        sqlx::query_as::<_, (String,)>("select id from trial where kind = 'batch'").fetch_all(&state.db.pool).await?.into_iter().map(|(id,)| id).collect();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name.split('.').next().unwrap_or_default();
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a.as_secs() > 24 * 3600);
        // A temporary file is left by a batch cut off by a crash (its restart writes a new one).
        let orphan = (name.ends_with(".zip") && !ids.contains(id)) || (name.ends_with(".tmp") && old);
        if orphan && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Asks a running trial or batch to stop.
pub async fn cancel(state: &AppState, t: &Trial) -> Result<(), TrialError> {
    if t.status != RUNNING {
        return Err(TrialError::Conflict(format!("{} is {}, not running.", t.name, t.status)));
    }
    sqlx::query("update job set cancel_requested = 1, updated_at = $1 where dataset_id = $2")
        .bind(now_ms())
        .bind(&t.id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Where a batch's zip of results is kept for download.
pub fn download_path(state: &AppState, id: &str) -> PathBuf {
    state.config.data_dir.join("batches").join(format!("{id}.zip"))
}

pub(crate) async fn settle(state: &AppState, id: &str, status: &str, message: Option<&str>) {
    let r = sqlx::query("update trial set status = $1, status_message = $2, updated_at = $3 where id = $4")
        .bind(status)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&state.db.pool)
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, trial = id, "could not settle a trial");
    }
}

/// A job's database failure: logged, and the trial or batch ends with this message.
pub(crate) fn db_failure(e: sqlx::Error) -> String {
    tracing::error!(error = %e, "trial or batch: database error");
    "The database could not be reached; the job stopped.".to_string()
}

/// Marks a trial or batch running as its job starts (or starts again after a restart), clearing the counts of a
/// batch, which starts over; `None` when it was deleted meanwhile.
pub(crate) async fn start_job(state: &AppState, id: &str, reset_counts: bool) -> Result<Option<Trial>, String> {
    let reset = if reset_counts { ", processed = 0, anomalous = 0, failed = 0" } else { "" };
    sqlx::query(&format!("update trial set status = $1, status_message = null{reset}, updated_at = $2 where id = $3"))
        .bind(RUNNING)
        .bind(now_ms())
        .bind(id)
        .execute(&state.db.pool)
        .await
        .map_err(db_failure)?;
    let mut conn = state.db.pool.acquire().await.map_err(db_failure)?;
    find_by_id(&mut conn, id).await.map_err(db_failure)
}

/// The job's end after too many attempts (`jobs::give_up`).
pub async fn give_up(state: &AppState, id: &str, why: &str) {
    settle(state, id, FAILED, Some(why)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_outputs_parse() {
        assert_eq!(Source::parse("dataset:train").unwrap(), Source::Dataset("train".into()));
        assert!(Source::parse("dataset:validation").is_err());
        assert_eq!(Source::parse("s3://my-bucket/a/b/").unwrap(), Source::S3 { bucket: "my-bucket".into(), prefix: "a/b/".into() });
        assert_eq!(Source::parse("s3://my-bucket").unwrap(), Source::S3 { bucket: "my-bucket".into(), prefix: "".into() });
        assert_eq!(Source::parse("s3://my-bucket/in").unwrap(), Source::S3 { bucket: "my-bucket".into(), prefix: "in/".into() });
        assert!(Source::parse("s3://A_B/x").is_err());
        assert!(Source::parse("relative/folder").is_err());
        assert_eq!(Source::parse(" /srv/images ").unwrap(), Source::Folder("/srv/images".into()));
        assert_eq!(Source::parse("upload").unwrap(), Source::Upload);
        for s in ["dataset:test", "s3://bucket/p/", "/x/y", "upload"] {
            assert_eq!(Source::parse(s).unwrap().spec(), s);
        }
        assert_eq!(Output::parse("download").unwrap(), Output::Download);
        assert_eq!(Output::parse("s3://out/run/").unwrap(), Output::S3 { bucket: "out".into(), prefix: "run/".into() });
        assert!(Output::parse("/tmp/x").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("Line 3 - week 48").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(" lead").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
    }

}
