//! Trial and batch requests, checked once for the REST extension and the console: start a trial (from a
//! dataset, an S3 prefix or an upload) or a batch, add uploads, cancel, delete.

use super::records::*;
use crate::datasets::{self, BlobInfo};
use crate::jobs::Job;
use crate::models::{self, ModelVersion};
use crate::state::AppState;
use crate::db::now_ms;
use sqlx::{AnyConnection, Row};

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

/// The images of one of the project's datasets (`train` or `test`), oldest first; more than `max` is refused
/// (`what` says who reads them), so nothing is silently left out.
async fn dataset_images(
    conn: &mut AnyConnection,
    project_id: &str,
    project: &str,
    dataset_type: &str,
    max: usize,
    what: &str,
) -> Result<Vec<NewImage>, TrialError> {
    let d = datasets::require(conn, project_id, project, dataset_type).await?;
    datasets::check_settled(&d)?;
    let rows = sqlx::query(
        "select e.source_ref, b.hash, b.size, b.content_type, b.width, b.height from dataset_entry e \
         join blob b on b.hash = e.image_hash where e.dataset_id = $1 order by e.created_at, e.id limit $2",
    )
    .bind(&d.id)
    .bind(max as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() > max {
        return Err(TrialError::Invalid(format!("The {dataset_type} dataset has more than {max} images, the most {what} runs over.")));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(NewImage {
            name: r.try_get(0)?,
            blob: BlobInfo { hash: r.try_get(1)?, size: r.try_get(2)?, content_type: r.try_get(3)?, width: int(r, 4)?, height: int(r, 5)? },
        });
    }
    Ok(out)
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
        Source::Dataset(t) => dataset_images(&mut tx, &project_id, project, t, MAX_TRIAL_IMAGES, "a trial").await?,
        Source::Upload => {
            if uploads.len() > MAX_TRIAL_IMAGES {
                return Err(TrialError::Invalid(format!("{} images were uploaded; a trial runs over at most {MAX_TRIAL_IMAGES}.", uploads.len())));
            }
            uploaded(uploads)
        }
        Source::S3 { .. } => Vec::new(),
        Source::Folder(_) => {
            return Err(TrialError::Invalid(
                "A trial reads dataset:train, dataset:test, an S3 prefix (s3://bucket/prefix/) or uploaded images; a server folder is for batches.".into(),
            ))
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
    insert_images(&mut tx, &t.id, next.map_or(0, |s| s + 1), &uploaded(uploads)).await?;
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

/// Starts a batch over a hosted model version: the images of a dataset of the project (kept as rows, so the
/// console shows each result as a trial's), an S3 prefix, or a folder under `VIGIL_IMPORT_ROOT`. Uploaded images
/// come through [`create_upload_batch`].
pub async fn create_batch(state: &AppState, project: &str, version: &str, source: Source, output: Output) -> Result<Trial, TrialError> {
    let source = match source {
        Source::Folder(dir) => Source::Folder(folder(state, &dir)?),
        Source::S3 { bucket, prefix } => {
            check_s3(state, &bucket, &prefix).await?;
            Source::S3 { bucket, prefix }
        }
        Source::Dataset(t) => Source::Dataset(t),
        Source::Upload => {
            return Err(TrialError::Invalid(format!(
                "Images are uploaded to a batch from the console; give {BATCH_SOURCES}."
            )))
        }
    };
    check_output(state, &output).await?;
    let mut tx = state.db.begin_write().await?;
    let (project_id, m) = project_model(&mut tx, project, version, true).await?;
    check_room(&mut tx, &project_id).await?;
    let images = match &source {
        Source::Dataset(t) => {
            let images = dataset_images(&mut tx, &project_id, project, t, MAX_BATCH_IMAGES, "a batch").await?;
            if images.is_empty() {
                return Err(TrialError::Invalid(format!("The {t} dataset has no images to run the batch over.")));
            }
            images
        }
        _ => Vec::new(),
    };
    let t = insert_batch(&mut tx, &project_id, &m, &source.spec(), &output, &images, RUNNING).await?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

/// The sources a batch accepts, as its error messages name them.
pub const BATCH_SOURCES: &str =
    "dataset:train, dataset:test, an S3 prefix (s3://bucket/prefix/) or a folder's absolute path under VIGIL_IMPORT_ROOT";

/// The results' S3 prefix must answer now, not after the whole batch ran.
async fn check_output(state: &AppState, output: &Output) -> Result<(), TrialError> {
    if let Output::S3 { bucket, prefix } = output {
        state.s3.probe(bucket, prefix).await.map_err(|why| TrialError::Invalid(format!("s3://{bucket}/{prefix} cannot be written: {why}.")))?;
    }
    Ok(())
}

/// Records a batch with its images (dataset and upload sources) and, unless it is still `UPLOADING`, its job.
async fn insert_batch(
    tx: &mut AnyConnection,
    project_id: &str,
    m: &ModelVersion,
    source: &str,
    output: &Output,
    images: &[NewImage],
    status: &str,
) -> Result<Trial, TrialError> {
    let name = format!("batch-{}", hex::encode(rand::random::<[u8; 6]>()));
    let id = insert_trial(tx, project_id, m, KIND_BATCH, &name, source, Some(&output.spec())).await?;
    insert_images(tx, &id, 0, images).await?;
    if status == RUNNING {
        crate::jobs::enqueue(tx, &Job::Batch { trial_id: id.clone() }).await?;
    } else {
        sqlx::query("update trial set status = $1 where id = $2").bind(status).bind(&id).execute(&mut *tx).await?;
    }
    Ok(find_by_id(tx, &id).await?.ok_or(sqlx::Error::RowNotFound)?)
}

/// Starts a batch over images uploaded from the console, which sends them in parts: the first part creates
/// the batch (`UPLOADING`, no job yet), [`append_batch_uploads`] adds the others, and the part marked `last`
/// starts it. A batch whose upload was abandoned stays `UPLOADING` until it is deleted.
pub async fn create_upload_batch(
    state: &AppState,
    project: &str,
    version: &str,
    output: Output,
    uploads: Vec<(String, BlobInfo)>,
    last: bool,
) -> Result<Trial, TrialError> {
    if uploads.is_empty() {
        return Err(TrialError::Invalid("Choose the images to upload first.".into()));
    }
    if uploads.len() > MAX_UPLOAD_BATCH_IMAGES {
        return Err(TrialError::Invalid(format!("A batch takes at most {MAX_UPLOAD_BATCH_IMAGES} uploaded images.")));
    }
    check_output(state, &output).await?;
    let mut tx = state.db.begin_write().await?;
    let (project_id, m) = project_model(&mut tx, project, version, true).await?;
    check_room(&mut tx, &project_id).await?;
    let images = uploaded(uploads);
    let t = insert_batch(&mut tx, &project_id, &m, &Source::Upload.spec(), &output, &images, if last { RUNNING } else { UPLOADING }).await?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

/// Adds a part of an upload to a batch still `UPLOADING`; the `last` part starts it.
pub async fn append_batch_uploads(state: &AppState, project: &str, id: &str, uploads: Vec<(String, BlobInfo)>, last: bool) -> Result<Trial, TrialError> {
    let mut tx = state.db.begin_write().await?;
    let t = require(&mut tx, project, KIND_BATCH, id).await?;
    if t.status != UPLOADING {
        return Err(TrialError::Conflict(format!("The batch {id} is {}; images are added only while it is being uploaded.", t.status)));
    }
    let (n, next): (i64, Option<i64>) =
        sqlx::query_as("select count(*), max(seq) from trial_image where trial_id = $1").bind(&t.id).fetch_one(&mut *tx).await?;
    if n as usize + uploads.len() > MAX_UPLOAD_BATCH_IMAGES {
        return Err(TrialError::Invalid(format!("A batch takes at most {MAX_UPLOAD_BATCH_IMAGES} uploaded images; {id} has {n}.")));
    }
    insert_images(&mut tx, &t.id, next.map_or(0, |s| s + 1), &uploaded(uploads)).await?;
    if last {
        sqlx::query("update trial set status = $1, updated_at = $2 where id = $3").bind(RUNNING).bind(now_ms()).bind(&t.id).execute(&mut *tx).await?;
        crate::jobs::enqueue(&mut tx, &Job::Batch { trial_id: t.id.clone() }).await?;
    }
    let t = find_by_id(&mut tx, &t.id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    crate::jobs::wake(state);
    Ok(t)
}

fn uploaded(uploads: Vec<(String, BlobInfo)>) -> Vec<NewImage> {
    uploads.into_iter().map(|(file, blob)| NewImage { name: datasets::upload_source_ref(&blob.hash, &file), blob }).collect()
}

/// An S3 source is checked before anything is recorded: the bucket must answer and hold objects under the prefix.
async fn check_s3(state: &AppState, bucket: &str, prefix: &str) -> Result<(), TrialError> {
    match state.s3.probe(bucket, prefix).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(TrialError::Invalid(format!("There is nothing under s3://{bucket}/{prefix}."))),
        Err(why) => Err(TrialError::Invalid(format!("s3://{bucket}/{prefix} cannot be read: {why}."))),
    }
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

/// A finished `download` batch's results: its zip file, opened, and its length.
pub async fn results_file(state: &AppState, t: &Trial) -> Result<(tokio::fs::File, u64), TrialError> {
    if t.output.as_deref() != Some("download") {
        return Err(TrialError::Conflict(format!("The batch {} wrote its results to {}.", t.name, t.output.as_deref().unwrap_or("S3"))));
    }
    if t.status != COMPLETED {
        return Err(TrialError::Conflict(format!("The batch {} is {}; its results are ready when it has completed.", t.name, t.status)));
    }
    let (hash,): (Option<String>,) = sqlx::query_as("select output_hash from trial where id = $1").bind(&t.id).fetch_one(&state.db.pool).await?;
    let path = match hash {
        // From the blob store, through this process's cache.
        Some(hash) => {
            let blobs = state.blobs.clone();
            tokio::task::spawn_blocking(move || blobs.path_of(&hash))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?
        }
        // A batch finished before results were blobs.
        None => download_path(state, &t.id),
    };
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}
