//! The console's dataset archives: the export (`GET /export/{project}/{type}.zip`, an LFV manifest beside its
//! images and masks, written to a temporary file and streamed) and its reverse, the archive import
//! (`POST /import/{project}/{type}`, streamed to disk, then read by the import job in `datasets::import`).

use super::common::{find_dataset, find_project, internal};
use crate::datasets;
use crate::state::AppState;
use app::api::BackendError;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Exports written at once, and archive uploads received at once: each costs a disk's bandwidth and a
/// temporary file as large as the dataset, so more are refused (429) until one has finished.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;
pub const MAX_CONCURRENT_ARCHIVE_UPLOADS: usize = 2;
static EXPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_EXPORTS);
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_ARCHIVE_UPLOADS);

/// Largest archive `POST /import/...` accepts.
pub const MAX_ARCHIVE_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// A fresh path for a temporary file in the data directory (same disk as the blobs).
pub(super) fn temp_path(state: &AppState, suffix: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = state.config.data_dir.join("tmp");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{}{suffix}", hex::encode(rand::random::<[u8; 12]>()))))
}

/// Creates the dataset (in progress) and queues the job that imports the archive at `path` into it, then
/// wakes the workers. The job owns the file from then on (it deletes it when done). With a shared blob store
/// the archive goes into it first (streamed), so a worker on another host can read it.
pub(super) async fn start_import(state: &AppState, project: &str, dataset_type: &str, path: &std::path::Path, display: &str) -> Result<(), BackendError> {
    let (path, blob) = if state.blobs.is_shared() {
        let (blobs, file) = (state.blobs.clone(), path.to_path_buf());
        let stored = tokio::task::spawn_blocking(move || {
            let r = blobs.put_file(&file);
            let _ = std::fs::remove_file(&file);
            r
        })
        .await
        .map_err(internal)?
        .map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "storing an uploaded archive in the blob store");
            BackendError::internal("The archive could not be stored; try again.")
        })?;
        (String::new(), Some(stored))
    } else {
        (path.display().to_string(), None)
    };
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = find_project(&mut tx, project).await?;
    let d = datasets::create(&mut tx, &p.id, dataset_type, datasets::CREATE_IN_PROGRESS).await?;
    let job = crate::jobs::Job::Archive { dataset_id: d.id, path, name: display.to_string(), blob };
    crate::jobs::enqueue(&mut tx, &job).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    crate::jobs::wake(state);
    Ok(())
}

/// `GET /export/{project}/{type}.zip`: the dataset as an LFV manifest with relative references
/// (`images/…`, `masks/…`) beside the files, ready for `vigil train`, for uploading to a bucket, or for
/// importing into another project. The archive is written to a temporary file and streamed from it, so a
/// dataset of any size costs disk, not memory.
pub async fn export_dataset(State(state): State<AppState>, Path((project, file)): Path<(String, String)>) -> Response {
    let Some(dataset_type) = file.strip_suffix(".zip").map(str::to_string) else {
        return (StatusCode::NOT_FOUND, "no such export").into_response();
    };
    // Held while the archive is written (the download itself streams from the finished file).
    let Ok(_writing) = EXPORTS.try_acquire() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "5")],
            format!("{MAX_CONCURRENT_EXPORTS} exports are being written; try again when one has finished."),
        )
            .into_response();
    };
    let entries = async {
        let mut conn = state.db.pool.acquire().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut conn, &project, &dataset_type).await?;
        datasets::all_entries(&mut conn, &d.id).await.map_err(internal)
    }
    .await;
    let entries = match entries {
        Ok(e) => e,
        Err(e) => return (StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND), e.message).into_response(),
    };
    let blobs = state.blobs.clone();
    let name = format!("{project}-{dataset_type}");
    let path = match temp_path(&state, ".zip") {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "export: no temporary file");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the export failed").into_response();
        }
    };
    match crate::web::zip_attachment(path, &name, move |f| build_export(&blobs, &dataset_type, entries, f)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "export failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the export failed").into_response()
        }
    }
}

fn build_export(
    blobs: &crate::blobs::Blobs,
    dataset_type: &str,
    entries: Vec<datasets::StoredEntry>,
    out: std::fs::File,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    // JPEG and PNG are compressed already.
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let mut manifest = String::new();
    let mut written = std::collections::HashSet::new();
    for e in entries {
        let mut raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&e.entry)?;
        let base = sanitize_file_name(e.source_ref.rsplit('/').next().unwrap_or("image"));
        // An image exported before keeps its name rather than gaining a second hash prefix.
        let prefix = format!("{}-", &e.image_hash[..12]);
        let image_path = if base.starts_with(&prefix) { format!("images/{base}") } else { format!("images/{prefix}{base}") };
        if written.insert(image_path.clone()) {
            zip.start_file(image_path.as_str(), opts)?;
            zip.write_all(&blobs.get(&e.image_hash)?)?;
        }
        raw.insert("source-ref".into(), serde_json::Value::String(image_path));
        if let Some(mask) = &e.mask_hash {
            let mask_key = raw.keys().find(|k| k.ends_with("-ref") && *k != "source-ref").cloned();
            if let Some(k) = mask_key {
                let mask_path = format!("masks/{}.png", &mask[..12]);
                if written.insert(mask_path.clone()) {
                    zip.start_file(mask_path.as_str(), opts)?;
                    zip.write_all(&blobs.get(mask)?)?;
                }
                raw.insert(k, serde_json::Value::String(mask_path));
            }
        }
        manifest.push_str(&serde_json::Value::Object(raw).to_string());
        manifest.push('\n');
    }
    zip.start_file(format!("{dataset_type}.manifest"), opts)?;
    zip.write_all(manifest.as_bytes())?;
    zip.finish()?.flush()?;
    Ok(())
}

#[derive(serde::Deserialize)]
pub struct ArchiveQuery {
    /// The archive's file name, for messages.
    #[serde(default)]
    name: String,
}

fn json_error(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(serde_json::json!({ "message": message.into() }))).into_response()
}

/// `POST /import/{project}/{type}?name=FILE.zip`: creates the dataset from an archive (the body) holding a
/// Ground Truth manifest and the files it references — what the export writes. The archive is streamed to
/// a temporary file, then imported in the background like any other import (the dataset's status and
/// report follow it); `202` with `{"message": ...}` when it has started.
pub async fn import_archive(
    State(state): State<AppState>,
    Path((project, dataset_type)): Path<(String, String)>,
    Query(q): Query<ArchiveQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let declared_length =
        headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    if let Err(m) = datasets::validate_dataset_type(&dataset_type) {
        return json_error(400, m);
    }
    let display = if q.name.trim().is_empty() { "upload.zip".to_string() } else { sanitize_file_name(&q.name) };
    // Held while the upload is received into its temporary file.
    let Ok(_receiving) = UPLOADS.try_acquire() else {
        return json_error(429, format!("{MAX_CONCURRENT_ARCHIVE_UPLOADS} archives are being uploaded; try again when one has finished."));
    };
    // Refuse early, before reading the body, when the project or the dataset slot is wrong.
    {
        let Ok(mut conn) = state.db.pool.acquire().await else { return json_error(500, "The database is unavailable.") };
        match find_project(&mut conn, &project).await {
            Err(e) => return json_error(e.status, e.message),
            Ok(p) => {
                if let Ok(Some(_)) = datasets::find(&mut conn, &p.id, &dataset_type).await {
                    return json_error(409, format!("The project already has a {dataset_type} dataset; delete it first or import into the other one."));
                }
            }
        }
    }
    let path = match temp_path(&state, ".zip") {
        Ok(p) => p,
        Err(e) => return json_error(500, format!("No room for the upload: {e}")),
    };
    // Temporary upload space (VIGIL_MAX_TEMP_GB): archives being received or waiting for their import.
    let quota = crate::quotas::Quotas::of(&state.config).temp_bytes;
    let tmp = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let used = tokio::task::spawn_blocking(move || temp_usage(&tmp)).await.unwrap_or(0);
    let room = quota.saturating_sub(used);
    let full = || {
        (
            402,
            format!(
                "The temporary upload space is full ({:.1} of {} GB in use by archives being uploaded or imported; VIGIL_MAX_TEMP_GB). Try again when an import has finished.",
                used as f64 / (1u64 << 30) as f64,
                quota >> 30
            ),
        )
    };
    if declared_length.is_some_and(|n| n > room) {
        let (status, m) = full();
        return json_error(status, m);
    }
    let written = async {
        let mut f = tokio::fs::File::create(&path).await.map_err(|e| (500, format!("No room for the upload: {e}")))?;
        let mut stream = body.into_data_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| (400, format!("The upload was interrupted: {e}")))?;
            n += chunk.len() as u64;
            if n > MAX_ARCHIVE_BYTES {
                return Err((413, format!("The archive is larger than {} GB.", MAX_ARCHIVE_BYTES >> 30)));
            }
            if n > room {
                return Err(full());
            }
            f.write_all(&chunk).await.map_err(|e| (500, format!("No room for the upload: {e}")))?;
        }
        f.flush().await.map_err(|e| (500, e.to_string()))?;
        if n == 0 {
            return Err((400, "The archive is empty.".to_string()));
        }
        Ok(())
    }
    .await;
    if let Err((status, m)) = written {
        let _ = tokio::fs::remove_file(&path).await;
        return json_error(status, m);
    }
    if let Err(e) = start_import(&state, &project, &dataset_type, &path, &display).await {
        let _ = tokio::fs::remove_file(&path).await;
        return json_error(e.status, e.message);
    }
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "message": format!("Importing {display}…") }))).into_response()
}

/// Bytes the files directly in `dir` take (the temporary folder holds flat files).
fn temp_usage(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A file name safe inside a URI path: its last path component, with only harmless characters.
pub(super) fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .take(200)
        .collect();
    if clean.is_empty() { "image".into() } else { clean }
}

