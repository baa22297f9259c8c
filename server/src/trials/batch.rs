//! The batch job: every image of an S3 prefix, a server folder, a dataset or an upload through a hosted model's
//! inference units, the results written as JSON lines and mask PNGs to S3 or into a zip for download (and, for
//! images in the blob store, into their rows, which the console shows).

use super::run::{folder_files, s3_keys};
use super::records::{download_path, folder, settle, Output, Source, CANCELLED, COMPLETED, FAILED, MAX_BATCH_IMAGES};
use crate::datasets;
use crate::engine;
use crate::jobs::JobProgress;
use crate::models::{self, hosting, ModelVersion};
use crate::state::AppState;
use crate::db::now_ms;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs a batch job over a hosted model: every image of the source through the model's inference units, the
/// results written as JSON lines (`results.jsonl`) plus one PNG per segmentation mask (`masks/…`), to S3 or into
/// a zip in the data directory.
pub async fn run_batch(state: &AppState, trial_id: &str, progress: Arc<JobProgress>) {
    if let Err(message) = batch_job(state, trial_id, &progress).await {
        tracing::warn!(batch = trial_id, message = %message, "batch failed");
        settle(state, trial_id, FAILED, Some(&message)).await;
    }
}

enum Input {
    S3 { bucket: String, keys: Vec<String> },
    Files(Vec<PathBuf>),
    /// The batch's own rows (a dataset or an upload): `(seq, name, image blob)`.
    Rows(Vec<(i64, String, String)>),
}

impl Input {
    fn len(&self) -> usize {
        match self {
            Input::S3 { keys, .. } => keys.len(),
            Input::Files(f) => f.len(),
            Input::Rows(r) => r.len(),
        }
    }

    fn name(&self, i: usize) -> String {
        match self {
            Input::S3 { bucket, keys } => format!("s3://{bucket}/{}", keys[i]),
            Input::Files(f) => f[i].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Input::Rows(r) => r[i].1.clone(),
        }
    }

    async fn read(&self, state: &AppState, i: usize) -> Result<Vec<u8>, String> {
        let max = datasets::import::MAX_IMAGE_BYTES;
        match self {
            Input::S3 { bucket, keys } => state.s3.get(bucket, &keys[i], None, max).await.map_err(|e| e.to_string()),
            Input::Files(f) => {
                let path = f[i].clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
                    use std::io::Read;
                    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
                    let mut bytes = Vec::new();
                    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                    if bytes.len() as u64 > max {
                        return Err(format!("the file is larger than {} MB", max >> 20));
                    }
                    Ok(bytes)
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Input::Rows(r) => {
                let (blobs, hash) = (state.blobs.clone(), r[i].2.clone());
                tokio::task::spawn_blocking(move || blobs.get(&hash))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|_| "the image is no longer in the blob store".to_string())
            }
        }
    }
}

async fn batch_job(state: &AppState, trial_id: &str, progress: &JobProgress) -> Result<(), String> {
    let db = super::records::db_failure;
    let Some(t) = super::records::start_job(state, trial_id, true).await? else { return Ok(()) };
    let output = Output::parse(t.output.as_deref().unwrap_or("download"))?;
    let mut conn = state.db.pool.acquire().await.map_err(db)?;
    let m = models::find_by_id(&mut conn, &t.model_id).await.map_err(db)?.ok_or("The model version was deleted.")?;
    drop(conn);
    progress.set("listing", 0.0);
    let input = match Source::parse(&t.source)? {
        Source::S3 { bucket, prefix } => Input::S3 { keys: s3_keys(state, &bucket, &prefix, MAX_BATCH_IMAGES).await?, bucket },
        Source::Folder(dir) => {
            // Checked again: the folder (or a link in its path) may have changed since the batch was asked for.
            let dir = folder(state, &dir).map_err(|e| e.to_string())?;
            Input::Files(tokio::task::spawn_blocking(move || folder_files(&dir, MAX_BATCH_IMAGES)).await.map_err(|e| e.to_string())??)
        }
        Source::Dataset(_) | Source::Upload => {
            // Starting over (after a restart) clears what an earlier run wrote into the rows.
            sqlx::query(
                "update trial_image set done = 0, error = null, is_anomalous = null, confidence = null, score = null, \
                 mask_hash = null, anomalies = null where trial_id = $1",
            )
            .bind(trial_id)
            .execute(&state.db.pool)
            .await
            .map_err(db)?;
            let rows: Vec<(i64, String, String)> = sqlx::query_as("select seq, name, image_hash from trial_image where trial_id = $1 order by seq")
                .bind(trial_id)
                .fetch_all(&state.db.pool)
                .await
                .map_err(db)?;
            Input::Rows(rows)
        }
    };
    if input.len() == 0 {
        return Err(format!("There are no JPEG or PNG images in {}.", t.source));
    }
    sqlx::query("update trial set total = $1 where id = $2").bind(input.len() as i64).bind(trial_id).execute(&state.db.pool).await.map_err(db)?;
    let mut sink = Sink::open(state, trial_id, &t.name, &output).await?;
    let (mut processed, mut anomalous, mut failed) = (0i64, 0i64, 0i64);
    for i in 0..input.len() {
        if progress.cancelled() {
            sink.abandon().await;
            settle(state, trial_id, CANCELLED, Some(&format!("Cancelled after {i} of {} images; no results were kept.", input.len()))).await;
            return Ok(());
        }
        progress.set("detecting", i as f64 / input.len() as f64);
        let name = input.name(i);
        let result = match input.read(state, i).await {
            Ok(bytes) => detect_hosted(state, &m, bytes).await,
            Err(e) => Err(e),
        };
        if let Input::Rows(rows) = &input {
            record(state, trial_id, rows[i].0, &result).await.map_err(db)?;
        }
        let line = match result {
            Ok(d) => {
                processed += 1;
                anomalous += d.is_anomalous as i64;
                let mut r = crate::lfv::detect_result(&d);
                let mut line = serde_json::json!({ "Image": name });
                if let Some(mask) = d.anomaly_mask {
                    let key = format!("masks/{:06}.png", i + 1);
                    sink.file(state, &key, mask).await?;
                    r["DetectAnomalyResult"].as_object_mut().map(|o| o.remove("AnomalyMask"));
                    line["AnomalyMask"] = key.into();
                }
                line["DetectAnomalyResult"] = r["DetectAnomalyResult"].take();
                line
            }
            Err(reason) => {
                failed += 1;
                serde_json::json!({ "Image": name, "Error": reason })
            }
        };
        sink.line(&line);
        if i % 16 == 15 || i + 1 == input.len() {
            sqlx::query("update trial set processed = $1, anomalous = $2, failed = $3, updated_at = $4 where id = $5")
                .bind(processed)
                .bind(anomalous)
                .bind(failed)
                .bind(now_ms())
                .bind(trial_id)
                .execute(&state.db.pool)
                .await
                .map_err(db)?;
        }
    }
    progress.set("writing results", 1.0);
    let place = sink.finish(state).await?;
    settle(state, trial_id, COMPLETED, Some(&format!("Results: {place}"))).await;
    Ok(())
}

/// Keeps one image's result in its row (verdict, confidence, score, mask blob, anomaly areas, or the error).
async fn record(state: &AppState, trial_id: &str, seq: i64, result: &Result<engine::Detection, String>) -> Result<(), sqlx::Error> {
    match result {
        Ok(d) => {
            let (blobs, mask) = (state.blobs.clone(), d.anomaly_mask.clone());
            let mask_hash = match mask {
                Some(m) => tokio::task::spawn_blocking(move || blobs.put(&m).ok()).await.ok().flatten(),
                None => None,
            };
            sqlx::query(
                "update trial_image set done = 1, error = null, is_anomalous = $1, confidence = $2, score = $3, mask_hash = $4, \
                 anomalies = $5 where trial_id = $6 and seq = $7",
            )
            .bind(d.is_anomalous as i64)
            .bind(d.confidence as f64)
            .bind(d.score as f64)
            .bind(mask_hash)
            .bind(serde_json::to_string(&super::images::anomaly_areas(d)).unwrap_or_default())
            .bind(trial_id)
            .bind(seq)
            .execute(&state.db.pool)
            .await?;
        }
        Err(reason) => {
            sqlx::query("update trial_image set done = 1, error = $1 where trial_id = $2 and seq = $3")
                .bind(reason)
                .bind(trial_id)
                .bind(seq)
                .execute(&state.db.pool)
                .await?;
        }
    }
    Ok(())
}

/// One image through the hosted model's queue, waiting while the queue is full (line traffic comes first).
async fn detect_hosted(state: &AppState, m: &ModelVersion, bytes: Vec<u8>) -> Result<engine::Detection, String> {
    match models::detect::detect(state, m, Ok(bytes), models::detect::Lane::Batch, false).await {
        Ok(d) => Ok(d),
        Err(hosting::DetectError::NotHosted) => Err("The model version stopped being hosted during the batch.".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Where a batch's results go while it runs.
enum Sink {
    S3 { bucket: String, prefix: String, lines: Vec<u8> },
    /// A zip written to a temporary file, then kept in the blob store (`trial.output_hash`) for download.
    Zip { id: String, tmp: PathBuf, zip: Option<zip::ZipWriter<std::fs::File>>, lines: Vec<u8> },
}

type Zip = zip::ZipWriter<std::fs::File>;

fn no_room(e: impl std::fmt::Display) -> String {
    format!("No room for the results: {e}")
}

/// Runs `f` on the zip writer on a blocking thread, so the batch's disk writes stay off the async runtime.
async fn with_zip<T: Send + 'static>(
    zip: &mut Option<Zip>,
    f: impl FnOnce(&mut Zip) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let mut z = zip.take().ok_or("the results file is closed")?;
    let (z, out) = tokio::task::spawn_blocking(move || {
        let out = f(&mut z);
        (z, out)
    })
    .await
    .map_err(|e| e.to_string())?;
    *zip = Some(z);
    out
}

fn stored() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)
}

impl Sink {
    /// `id` keys the download file; `name` (the batch id users see) names the results' folder in S3.
    async fn open(state: &AppState, id: &str, name: &str, output: &Output) -> Result<Sink, String> {
        Ok(match output {
            Output::S3 { bucket, prefix } => {
                let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.clone() } else { format!("{prefix}/") };
                Sink::S3 { bucket: bucket.clone(), prefix: format!("{prefix}{name}/"), lines: Vec::new() }
            }
            Output::Download => {
                let path = download_path(state, id);
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                tokio::fs::create_dir_all(&dir).await.map_err(no_room)?;
                let tmp = dir.join(format!("{id}.{}.tmp", hex::encode(rand::random::<[u8; 4]>())));
                let f = tokio::fs::File::create(&tmp).await.map_err(no_room)?.into_std().await;
                Sink::Zip { id: id.to_string(), tmp, zip: Some(zip::ZipWriter::new(f)), lines: Vec::new() }
            }
        })
    }

    async fn file(&mut self, state: &AppState, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Sink::S3 { bucket, prefix, .. } => state
                .s3
                .put(bucket, &format!("{prefix}{key}"), bytes, "image/png")
                .await
                .map_err(|e| format!("s3://{bucket}/{prefix}{key} could not be written: {e}")),
            Sink::Zip { zip, .. } => {
                let key = key.to_string();
                with_zip(zip, move |z| {
                    use std::io::Write;
                    z.start_file(key, stored()).map_err(no_room)?;
                    z.write_all(&bytes).map_err(no_room)
                })
                .await
            }
        }
    }

    fn line(&mut self, v: &serde_json::Value) {
        let (Sink::S3 { lines, .. } | Sink::Zip { lines, .. }) = self;
        lines.extend_from_slice(v.to_string().as_bytes());
        lines.push(b'\n');
    }

    async fn abandon(&mut self) {
        if let Sink::Zip { tmp, zip, .. } = self {
            zip.take();
            let _ = tokio::fs::remove_file(tmp).await;
        }
    }

    /// Writes the JSON lines and publishes the results; returns where they are.
    async fn finish(self, state: &AppState) -> Result<String, String> {
        match self {
            Sink::S3 { bucket, prefix, lines } => {
                let key = format!("{prefix}results.jsonl");
                state
                    .s3
                    .put(&bucket, &key, lines, "application/x-ndjson")
                    .await
                    .map_err(|e| format!("s3://{bucket}/{key} could not be written: {e}"))?;
                Ok(format!("s3://{bucket}/{key}"))
            }
            Sink::Zip { id, tmp, zip, lines } => {
                let z = zip.ok_or("the results file is closed")?;
                let blobs = state.blobs.clone();
                let hash = tokio::task::spawn_blocking(move || -> Result<String, String> {
                    use std::io::Write;
                    let mut z = z;
                    z.start_file("results.jsonl", stored()).map_err(no_room)?;
                    z.write_all(&lines).map_err(no_room)?;
                    z.finish().map_err(no_room)?.sync_all().map_err(no_room)?;
                    // Into the blob store (streamed), where every replica finds it.
                    let stored = blobs.put_file(&tmp).map_err(|e| format!("The results could not be stored: {e:#}"));
                    let _ = std::fs::remove_file(&tmp);
                    stored
                })
                .await
                .map_err(|e| e.to_string())??;
                sqlx::query("update trial set output_hash = $1 where id = $2")
                    .bind(&hash)
                    .bind(&id)
                    .execute(&state.db.pool)
                    .await
                    .map_err(|e| format!("The results could not be recorded: {e}"))?;
                Ok("ready to download".into())
            }
        }
    }
}

