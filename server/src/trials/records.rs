//! Trials' and batches' records: their statuses, sources and outputs, rows and queries, and the steps a
//! running job takes on its record (start, add images, settle). The jobs (`run`, `batch`), verdicts (`verify`)
//! and requests (`ops`) build on these.

use crate::datasets::{self, BlobInfo};
use crate::state::AppState;
use crate::db::now_ms;
use sqlx::{AnyConnection, Row};
use std::path::{Path, PathBuf};

/// Images one trial may run over (LFV's trial detection limit).
pub const MAX_TRIAL_IMAGES: usize = 2_000;
/// Images one batch may run over.
pub const MAX_BATCH_IMAGES: usize = 100_000;
/// Images one batch may take from the console's upload (sent in parts).
pub const MAX_UPLOAD_BATCH_IMAGES: usize = 2_000;
/// Trials and batches kept per project (the oldest must be deleted first).
pub const MAX_TRIALS_PER_PROJECT: i64 = 200;

pub const KIND_TRIAL: &str = "trial";
pub const KIND_BATCH: &str = "batch";

pub const RUNNING: &str = "RUNNING";
/// A batch whose images are still being uploaded from the console (its job starts with the last part).
pub const UPLOADING: &str = "UPLOADING";
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
    /// Every entry of one of the project's datasets (`train` or `test`), as it is when the trial or batch starts.
    Dataset(String),
    /// Every JPEG/PNG object under an S3 prefix, read with the server's S3 connection.
    S3 { bucket: String, prefix: String },
    /// Every JPEG/PNG file of a folder on the server's disk, under `VIGIL_IMPORT_ROOT` (batches).
    Folder(PathBuf),
    /// Images uploaded from the console (trials and batches).
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
        Err(format!(
            "{s:?} is not a source: give dataset:train, dataset:test, s3://bucket/prefix/, or for a batch a folder's absolute path."
        ))
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
    /// A file of the trial (a batch's results) could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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

pub struct NewImage {
    pub name: String,
    pub blob: BlobInfo,
}

pub async fn insert_images(conn: &mut AnyConnection, trial_id: &str, first_seq: i64, images: &[NewImage]) -> Result<(), sqlx::Error> {
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

pub fn folder(state: &AppState, dir: &Path) -> Result<PathBuf, TrialError> {
    crate::security::import_dir(state.config.import_root.as_deref(), dir).map_err(|e| match e {
        crate::security::SecurityError::Forbidden(m) => TrialError::Conflict(m),
        other => TrialError::Invalid(other.to_string()),
    })
}

pub fn int(r: &sqlx::any::AnyRow, i: usize) -> Result<i64, sqlx::Error> {
    r.try_get::<i64, _>(i).or_else(|_| r.try_get::<i32, _>(i).map(i64::from))
}

/// Where a batch's zip of results is kept for download.
pub fn download_path(state: &AppState, id: &str) -> PathBuf {
    state.config.data_dir.join("batches").join(format!("{id}.zip"))
}

pub async fn settle(state: &AppState, id: &str, status: &str, message: Option<&str>) {
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
pub fn db_failure(e: sqlx::Error) -> String {
    tracing::error!(error = %e, "trial or batch: database error");
    "The database could not be reached; the job stopped.".to_string()
}

/// Marks a trial or batch running as its job starts (or starts again after a restart), clearing the counts of a
/// batch, which starts over; `None` when it was deleted meanwhile.
pub async fn start_job(state: &AppState, id: &str, reset_counts: bool) -> Result<Option<Trial>, String> {
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

