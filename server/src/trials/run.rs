//! The trial job: reads an S3 source once, then runs the model version over every image not yet done, keeping
//! the verdict, confidence, heat map and mask of each.

use super::images::{anomaly_areas, heat_png};
use super::records::{insert_images, settle, NewImage, Source, CANCELLED, COMPLETED, FAILED, MAX_TRIAL_IMAGES, RUNNING};
use crate::datasets;
use crate::jobs::JobProgress;
use crate::models::{self, hosting};
use crate::state::AppState;
use crate::db::now_ms;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Is this key an image a trial or batch reads (by its extension)?
pub(super) fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// The image keys under an S3 prefix, sorted, at most `max` (more is an error, so nothing is silently left out).
pub(super) async fn s3_keys(state: &AppState, bucket: &str, prefix: &str, max: usize) -> Result<Vec<String>, String> {
    let mut keys: Vec<String> = state
        .s3
        .list(bucket, prefix)
        .await
        .map_err(|e| format!("s3://{bucket}/{prefix} could not be listed: {e}"))?
        .into_iter()
        .filter(|k| is_image_name(k))
        .collect();
    keys.sort();
    if keys.len() > max {
        return Err(format!("s3://{bucket}/{prefix} holds {} images; at most {max} can be run at once.", keys.len()));
    }
    Ok(keys)
}

/// The image files of a folder (not its subfolders), sorted, at most `max`.
pub(super) fn folder_files(dir: &Path, max: usize) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{} could not be read: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{} could not be read: {e}", dir.display()))?;
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && is_image_name(&e.file_name().to_string_lossy()) {
            files.push(e.path());
            if files.len() > max {
                return Err(format!("{} holds more than {max} images; at most {max} can be run at once.", dir.display()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Runs a trial job: lists an S3 source (once), then detects every image not yet done.
pub async fn run_trial(state: &AppState, trial_id: &str, progress: Arc<JobProgress>) {
    if let Err(message) = trial_job(state, trial_id, &progress).await {
        tracing::warn!(trial = trial_id, message = %message, "trial failed");
        settle(state, trial_id, FAILED, Some(&message)).await;
    }
}

async fn trial_job(state: &AppState, trial_id: &str, progress: &JobProgress) -> Result<(), String> {
    let db = super::records::db_failure;
    let Some(t) = super::records::start_job(state, trial_id, false).await? else { return Ok(()) };
    let mut conn = state.db.pool.acquire().await.map_err(db)?;
    let Some(m) = models::find_by_id(&mut conn, &t.model_id).await.map_err(db)? else { return Ok(()) };
    drop(conn);
    if let Ok(Source::S3 { bucket, prefix }) = Source::parse(&t.source) {
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from trial_image where trial_id = $1").bind(trial_id).fetch_one(&state.db.pool).await.map_err(db)?;
        if n == 0 {
            progress.set("listing", 0.0);
            let keys = s3_keys(state, &bucket, &prefix, MAX_TRIAL_IMAGES).await?;
            if keys.is_empty() {
                return Err(format!("There are no JPEG or PNG images under s3://{bucket}/{prefix}."));
            }
            let mut images = Vec::with_capacity(keys.len());
            let mut skipped = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                if progress.cancelled() {
                    settle(state, trial_id, CANCELLED, Some("Cancelled while the images were read.")).await;
                    return Ok(());
                }
                progress.set("reading images", i as f64 / keys.len() as f64 * 0.2);
                let uri = format!("s3://{bucket}/{key}");
                let stored = match state.s3.get(&bucket, key, None, datasets::import::MAX_IMAGE_BYTES).await {
                    Ok(bytes) => {
                        let blobs = state.blobs.clone();
                        tokio::task::spawn_blocking(move || datasets::import::store_image(&blobs, bytes)).await.map_err(|e| e.to_string())?
                    }
                    Err(e) => Err(e.to_string()),
                };
                match stored {
                    Ok(blob) => images.push(NewImage { name: uri, blob }),
                    Err(reason) => skipped.push(format!("{uri}: {reason}")),
                }
            }
            let mut tx = state.db.begin_write().await.map_err(db)?;
            insert_images(&mut tx, trial_id, 0, &images).await.map_err(db)?;
            if !skipped.is_empty() {
                let message = format!("{} objects were not usable images and were left out: {}", skipped.len(), skipped.iter().take(5).cloned().collect::<Vec<_>>().join("; "));
                // Objects that are not usable images never become rows: the message names them.
                sqlx::query("update trial set status_message = $1 where id = $2")
                    .bind(message)
                    .bind(trial_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            if images.is_empty() {
                return Err(format!("None of the {} objects under s3://{bucket}/{prefix} is a usable image.", keys.len()));
            }
        }
    }
    let todo: Vec<(i64, String)> = sqlx::query_as("select seq, image_hash from trial_image where trial_id = $1 and done = 0 order by seq")
        .bind(trial_id)
        .fetch_all(&state.db.pool)
        .await
        .map_err(db)?;
    recount(state, trial_id).await.map_err(db)?;
    let (total,): (i64,) = sqlx::query_as("select total from trial where id = $1").bind(trial_id).fetch_one(&state.db.pool).await.map_err(db)?;
    let mut done = total - todo.len() as i64;
    for (seq, hash) in todo {
        if progress.cancelled() {
            settle(state, trial_id, CANCELLED, Some(&format!("Cancelled after {done} of {total} images."))).await;
            return Ok(());
        }
        progress.set("detecting", 0.2 + 0.8 * done as f64 / total.max(1) as f64);
        let blobs = state.blobs.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&hash)).await.map_err(|e| e.to_string())?;
        let outcome = match bytes {
            Ok(bytes) => match models::detect::detect(state, &m, Ok(bytes), models::detect::Lane::Trial, true).await {
                Ok(d) => Ok(d),
                Err(hosting::DetectError::Invalid(why)) => Err(why),
                Err(hosting::DetectError::Internal(_)) => Err("the model could not run on this image".to_string()),
                // The version cannot run at all (deleted, or its file unreadable): the trial fails.
                Err(e) => return Err(e.to_string()),
            },
            Err(_) => Err("the image is no longer in the blob store".to_string()),
        };
        // (processed, anomalous, failed) this image adds to the trial's counts.
        let counted: (i64, i64, i64) = match &outcome {
            Ok(d) => (1, d.is_anomalous as i64, 0),
            Err(_) => (0, 0, 1),
        };
        let q = match outcome {
            Ok(d) => {
                let blobs = state.blobs.clone();
                // The heat map and mask go to the blob store (blocking writes), then the row gets the results.
                let ((heat_hash, mask_hash), d) = tokio::task::spawn_blocking(move || {
                    let heat = blobs.put(&heat_png(&d)).ok();
                    let mask = d.anomaly_mask.as_deref().and_then(|m| blobs.put(m).ok());
                    ((heat, mask), d)
                })
                .await
                .map_err(|e| e.to_string())?;
                sqlx::query(
                    "update trial_image set done = 1, error = null, is_anomalous = $1, confidence = $2, score = $3, heat_hash = $4, \
                     mask_hash = $5, anomalies = $6 where trial_id = $7 and seq = $8",
                )
                .bind(d.is_anomalous as i64)
                .bind(d.confidence as f64)
                .bind(d.score as f64)
                .bind(heat_hash)
                .bind(mask_hash)
                .bind(serde_json::to_string(&anomaly_areas(&d)).unwrap_or_default())
                .bind(trial_id)
                .bind(seq)
                .execute(&state.db.pool)
                .await
            }
            Err(reason) => {
                sqlx::query("update trial_image set done = 1, error = $1 where trial_id = $2 and seq = $3")
                    .bind(reason)
                    .bind(trial_id)
                    .bind(seq)
                    .execute(&state.db.pool)
                    .await
            }
        };
        q.map_err(db)?;
        done += 1;
        sqlx::query("update trial set processed = processed + $1, anomalous = anomalous + $2, failed = failed + $3, updated_at = $4 where id = $5")
            .bind(counted.0)
            .bind(counted.1)
            .bind(counted.2)
            .bind(now_ms())
            .bind(trial_id)
            .execute(&state.db.pool)
            .await
            .map_err(db)?;
    }
    // Images added meanwhile (a large upload arrives in parts) keep the trial running for the job queued with them.
    sqlx::query(
        "update trial set status = $1, updated_at = $2 where id = $3 and status = $4 \
         and not exists (select 1 from trial_image where trial_id = $3 and done = 0)",
    )
    .bind(COMPLETED)
    .bind(now_ms())
    .bind(trial_id)
    .bind(RUNNING)
    .execute(&state.db.pool)
    .await
    .map_err(db)?;
    Ok(())
}

/// The trial's counts from its rows (as a job starts; each image then adds its own).
async fn recount(state: &AppState, trial_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update trial set processed = (select count(*) from trial_image where trial_id = $1 and done = 1 and error is null), \
         anomalous = (select count(*) from trial_image where trial_id = $1 and done = 1 and is_anomalous = 1), \
         failed = (select count(*) from trial_image where trial_id = $1 and done = 1 and error is not null), \
         updated_at = $2 where id = $1",
    )
    .bind(trial_id)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    Ok(())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_are_listed_from_folders() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.png", "a.JPG", "notes.txt", "c.jpeg"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let names: Vec<String> =
            folder_files(dir.path(), 10).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.JPG", "b.png", "c.jpeg"]);
        assert!(folder_files(dir.path(), 2).is_err());
    }
}
