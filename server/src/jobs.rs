//! Durable background jobs: imports (S3 manifests and folders, MVTec AD, archives) and UpdateDatasetEntries.
//! A job is written in the same transaction that marks its dataset `*_IN_PROGRESS`, runs on the runtime in
//! the background, and is deleted when it has settled the dataset's status. Jobs still in the table at
//! start-up (the server stopped while they ran) are started again from the beginning, which is safe: an import
//! upserts its entries by `source-ref` and replaces the report; an update commits all or nothing.

use crate::datasets::import::{Importer, Local, Place};
use crate::s3::{S3Settings, S3};
use crate::state::AppState;
use crate::store::now_ms;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

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
}

impl Job {
    fn datasets(&self) -> (&str, Option<&str>) {
        match self {
            Job::Manifest { dataset_id, .. } | Job::Folder { dataset_id, .. } | Job::Archive { dataset_id, .. } | Job::Update { dataset_id, .. } => {
                (dataset_id, None)
            }
            Job::Mvtec { train_id, test_id, .. } => (train_id, Some(test_id)),
        }
    }
}

/// Records a job (in the caller's transaction); returns its id.
pub async fn enqueue(conn: &mut AnyConnection, job: &Job) -> Result<String, sqlx::Error> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let (dataset_id, other) = job.datasets();
    let spec = serde_json::to_string(job).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "insert into job (id, dataset_id, other_dataset_id, spec, attempts, created_at, updated_at) values ($1, $2, $3, $4, 0, $5, $5)",
    )
    .bind(&id)
    .bind(dataset_id)
    .bind(other)
    .bind(spec)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Starts a recorded job in the background.
pub fn spawn(state: AppState, id: String, job: Job) {
    tokio::spawn(async move {
        if let Err(e) = bump(&state, &id).await {
            tracing::error!(error = %e, job = %id, "could not record a job start");
        }
        run(&state, job).await;
        if let Err(e) = sqlx::query("delete from job where id = $1").bind(&id).execute(&state.db.pool).await {
            tracing::error!(error = %e, job = %id, "could not delete a finished job");
        }
    });
}

async fn bump(state: &AppState, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update job set attempts = attempts + 1, updated_at = $1 where id = $2").bind(now_ms()).bind(id).execute(&state.db.pool).await?;
    Ok(())
}

/// One recorded job.
pub async fn load(db: &crate::store::Db, id: &str) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select spec from job where id = $1").bind(id).fetch_optional(&db.pool).await?;
    Ok(row.and_then(|(spec,)| serde_json::from_str(&spec).ok()))
}

/// Jobs waiting to run, oldest first.
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

/// At start-up: restarts every recorded job, and removes day-old temporary files no job needs (an upload cut
/// off by a crash; a younger file may belong to another server sharing the data directory). Returns how many
/// jobs.
pub async fn resume(state: &AppState) -> Result<usize, sqlx::Error> {
    let jobs = pending(&mut *state.db.pool.acquire().await?).await?;
    let n = jobs.len();
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
    for (id, job) in jobs {
        // (Not the spec: it may hold an import's S3 secret.)
        tracing::info!(job = %id, "resuming a job interrupted by the last shutdown");
        spawn(state.clone(), id, job);
    }
    Ok(n)
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

async fn run(state: &AppState, job: Job) {
    match job {
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
