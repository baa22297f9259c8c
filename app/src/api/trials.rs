//! Server functions for trial detections (run a model over new images, verify, add to the dataset) and batch
//! runs, and the `TrialBackend` trait through which they reach the server crate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A trial or batch in a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialSummary {
    /// The trial's name, or the batch's id.
    pub name: String,
    /// `trial` or `batch`.
    pub kind: String,
    pub model_version: i64,
    pub source: String,
    /// Batches: `s3://…` or `download`.
    pub output: Option<String>,
    /// RUNNING, COMPLETED, FAILED or CANCELLED (a batch still being uploaded from the console: UPLOADING).
    pub status: String,
    pub status_message: Option<String>,
    pub total: i64,
    pub processed: i64,
    pub anomalous: i64,
    pub failed: i64,
    pub created_at_ms: i64,
}

/// One image of a trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialImageView {
    pub seq: i64,
    /// Where it came from (source-ref).
    pub source: String,
    /// Blobs for `/media/{hash}`.
    pub image: String,
    pub heat_map: Option<String>,
    pub mask: Option<String>,
    pub width: i64,
    pub height: i64,
    pub done: bool,
    pub error: Option<String>,
    pub is_anomalous: Option<bool>,
    pub confidence: Option<f64>,
    /// (label, colour, fraction of the image).
    pub anomalies: Vec<(String, String, f64)>,
    /// `correct`, `incorrect` or none.
    pub verdict: Option<String>,
    /// The dataset entry it became (`dataset type`, entry id), once added — for the labelling canvas.
    pub entry: Option<(String, String)>,
}

/// The trial page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialDetail {
    pub project: String,
    pub trial: TrialSummary,
    pub images: Vec<TrialImageView>,
}

/// Most images one trial runs over (LFV's limit).
pub const MAX_TRIAL_IMAGES: usize = 2_000;

#[cfg(feature = "ssr")]
pub use backend::{SharedTrialBackend, TrialBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use crate::api::BackendError;
    use std::sync::Arc;

    /// What the trial pages' server functions need from the server crate (provided as Leptos context).
    #[async_trait::async_trait]
    pub trait TrialBackend: Send + Sync + 'static {
        /// The project's trials (`kind` = `trial`) or batches (`batch`), newest first.
        async fn list(&self, project: &str, kind: &str) -> Result<Vec<TrialSummary>, BackendError>;
        /// Starts a trial over `dataset:train`, `dataset:test` or `s3://bucket/prefix/`, or over `uploads`
        /// (file name, bytes) when `source` is `upload`.
        async fn create(&self, project: &str, name: &str, version: i64, source: &str, uploads: Vec<(String, Vec<u8>)>) -> Result<(), BackendError>;
        /// Adds more uploaded images to a trial started from an upload (a large upload comes in parts).
        async fn append(&self, project: &str, name: &str, uploads: Vec<(String, Vec<u8>)>) -> Result<(), BackendError>;
        async fn trial(&self, project: &str, name: &str) -> Result<TrialDetail, BackendError>;
        /// Sets the verdict (`correct`, `incorrect`, or empty to clear) of images; returns how many changed.
        async fn verify(&self, project: &str, name: &str, images: Vec<i64>, verdict: &str) -> Result<u64, BackendError>;
        /// Adds the verified images to a dataset; returns (added, still unverified).
        async fn add_to_dataset(&self, project: &str, name: &str, dataset_type: &str) -> Result<(usize, usize), BackendError>;
        async fn cancel(&self, project: &str, kind: &str, name: &str) -> Result<(), BackendError>;
        async fn delete(&self, project: &str, kind: &str, name: &str) -> Result<(), BackendError>;
        /// Starts a batch on a hosted version over `dataset:train`, `dataset:test`, an S3 prefix or a server
        /// folder; returns its id.
        async fn create_batch(&self, project: &str, version: i64, source: &str, output: &str) -> Result<String, BackendError>;
        /// A part of a batch over uploaded images (file name, bytes): the first part (`batch` empty) creates it,
        /// the others are added to it, and the part marked `last` starts it. Returns the batch's id.
        async fn upload_batch(
            &self,
            project: &str,
            version: i64,
            batch: &str,
            output: &str,
            uploads: Vec<(String, Vec<u8>)>,
            last: bool,
        ) -> Result<String, BackendError>;
        /// A batch with its images' results (for a dataset or upload batch; an S3 or folder batch has none).
        async fn batch(&self, project: &str, id: &str) -> Result<TrialDetail, BackendError>;
    }

    pub type SharedTrialBackend = Arc<dyn TrialBackend>;

    pub(crate) fn trial_backend() -> Result<SharedTrialBackend, ServerFnError> {
        // The console's own checks (a signed-in session) run in `backend()`.
        super::super::backend::backend()?;
        use_context::<SharedTrialBackend>().ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

#[server]
pub async fn list_trials(project: String, kind: String) -> Result<Vec<TrialSummary>, ServerFnError> {
    Ok(backend::trial_backend()?.list(&project, &kind).await?)
}

#[server]
pub async fn create_trial(project: String, name: String, version: i64, source: String) -> Result<(), ServerFnError> {
    Ok(backend::trial_backend()?.create(&project, name.trim(), version, source.trim(), Vec::new()).await?)
}

/// Starts a trial over uploaded images: multipart text fields `project`, `name`, `version`, then the files. With
/// a text field `append` = `1` the files are added to the existing trial `name` instead (the console sends a large
/// upload in parts).
#[server(input = leptos::server_fn::codec::MultipartFormData)]
pub async fn upload_trial(data: leptos::server_fn::codec::MultipartData) -> Result<(), ServerFnError> {
    use super::BackendError;
    let (mut fields, files) = read_upload(data, MAX_TRIAL_IMAGES, "A trial runs over").await?;
    let mut take = |k: &str| fields.remove(k).unwrap_or_default();
    let (project, name, version, append) = (take("project"), take("name").trim().to_string(), take("version"), take("append") == "1");
    if append {
        return Ok(backend::trial_backend()?.append(&project, &name, files).await?);
    }
    let version = version.trim().parse::<i64>().map_err(|_| BackendError::invalid("The model version is missing."))?;
    Ok(backend::trial_backend()?.create(&project, &name, version, "upload", files).await?)
}

#[server]
pub async fn get_trial(project: String, name: String) -> Result<TrialDetail, ServerFnError> {
    Ok(backend::trial_backend()?.trial(&project, &name).await?)
}

#[server]
pub async fn verify_trial(project: String, name: String, images: Vec<i64>, verdict: String) -> Result<u64, ServerFnError> {
    Ok(backend::trial_backend()?.verify(&project, &name, images, &verdict).await?)
}

#[server]
pub async fn add_trial_to_dataset(project: String, name: String, dataset_type: String) -> Result<(usize, usize), ServerFnError> {
    Ok(backend::trial_backend()?.add_to_dataset(&project, &name, &dataset_type).await?)
}

#[server]
pub async fn cancel_trial(project: String, kind: String, name: String) -> Result<(), ServerFnError> {
    Ok(backend::trial_backend()?.cancel(&project, &kind, &name).await?)
}

#[server]
pub async fn delete_trial(project: String, kind: String, name: String) -> Result<(), ServerFnError> {
    Ok(backend::trial_backend()?.delete(&project, &kind, &name).await?)
}

#[server]
pub async fn create_batch(project: String, version: i64, source: String, output: String) -> Result<String, ServerFnError> {
    Ok(backend::trial_backend()?.create_batch(&project, version, source.trim(), output.trim()).await?)
}

/// Most images one batch takes from the browser.
pub const MAX_UPLOAD_BATCH_IMAGES: usize = 2_000;

/// A part of a batch over uploaded images: multipart text fields `project`, `version`, `output`, `batch` (the
/// id the first part answered; empty for the first), `last` (`1` on the last part, which starts the batch),
/// then the files. Returns the batch's id.
#[server(input = leptos::server_fn::codec::MultipartFormData)]
pub async fn upload_batch(data: leptos::server_fn::codec::MultipartData) -> Result<String, ServerFnError> {
    use super::BackendError;
    let (mut fields, files) = read_upload(data, MAX_UPLOAD_BATCH_IMAGES, "A batch takes").await?;
    let mut take = |k: &str| fields.remove(k).unwrap_or_default();
    let (project, version, batch, output, last) = (take("project"), take("version"), take("batch"), take("output"), take("last") == "1");
    let version = version.trim().parse::<i64>().map_err(|_| BackendError::invalid("The model version is missing."))?;
    Ok(backend::trial_backend()?.upload_batch(&project, version, batch.trim(), output.trim(), files, last).await?)
}

/// Reads a multipart upload: its text fields by name, and its files (name, bytes), at most `max_files` (more is
/// refused with "`what` at most N images"), each refused at the upload cap before it is buffered whole.
#[cfg(feature = "ssr")]
async fn read_upload(
    data: leptos::server_fn::codec::MultipartData,
    max_files: usize,
    what: &str,
) -> Result<(std::collections::HashMap<String, String>, Vec<(String, Vec<u8>)>), ServerFnError> {
    use super::{BackendError, MAX_UPLOAD_FIELD_BYTES};
    fn bad(m: String) -> ServerFnError {
        ServerFnError::ServerError(m)
    }
    let mut data = data.into_inner().ok_or_else(|| bad("no form data".into()))?;
    let mut fields = std::collections::HashMap::new();
    let mut files = Vec::new();
    while let Some(mut field) = data.next_field().await.map_err(|e| bad(format!("upload: {e}")))? {
        let field_name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        if file_name.is_some() && files.len() >= max_files {
            return Err(BackendError::invalid(format!("{what} at most {max_files} images.")).into());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| bad(format!("upload: {e}")))? {
            if bytes.len() + chunk.len() > MAX_UPLOAD_FIELD_BYTES {
                let what = file_name.clone().unwrap_or(field_name.clone());
                return Err(BackendError::too_large(format!("{what}: the file is larger than {} MB.", MAX_UPLOAD_FIELD_BYTES >> 20)).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match file_name {
            Some(f) => files.push((f, bytes)),
            None => {
                fields.insert(field_name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    Ok((fields, files))
}

#[server]
pub async fn get_batch(project: String, id: String) -> Result<TrialDetail, ServerFnError> {
    Ok(backend::trial_backend()?.batch(&project, &id).await?)
}

/// Which images the trial page shows, and in which order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TrialFilter {
    /// None: all; Some(true): predicted anomalous; Some(false): predicted normal.
    pub verdict: Option<bool>,
    /// `""` all, `unverified`, `correct`, `incorrect`.
    pub verification: &'static str,
    /// Highest confidence first (otherwise lowest first, the doubtful ones).
    pub confident_first: bool,
}

/// The images the page shows, filtered and sorted (images that failed come last).
pub fn filter_images(images: &[TrialImageView], f: TrialFilter) -> Vec<TrialImageView> {
    let mut out: Vec<TrialImageView> = images
        .iter()
        .filter(|i| f.verdict.is_none() || i.is_anomalous == f.verdict)
        .filter(|i| match f.verification {
            "unverified" => i.done && i.error.is_none() && i.verdict.is_none(),
            "correct" | "incorrect" => i.verdict.as_deref() == Some(f.verification),
            _ => true,
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        let key = |i: &TrialImageView| i.confidence.unwrap_or(f64::NAN);
        match (key(a).is_nan(), key(b).is_nan()) {
            (true, true) => a.seq.cmp(&b.seq),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if f.confident_first => key(b).total_cmp(&key(a)).then(a.seq.cmp(&b.seq)),
            _ => key(a).total_cmp(&key(b)).then(a.seq.cmp(&b.seq)),
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(seq: i64, anomalous: Option<bool>, confidence: Option<f64>, verdict: Option<&str>) -> TrialImageView {
        TrialImageView {
            seq,
            source: format!("s3://b/{seq}.jpg"),
            image: String::new(),
            heat_map: None,
            mask: None,
            width: 64,
            height: 64,
            done: anomalous.is_some(),
            error: None,
            is_anomalous: anomalous,
            confidence,
            anomalies: Vec::new(),
            verdict: verdict.map(str::to_string),
            entry: None,
        }
    }

    #[test]
    fn filters_and_sorts() {
        let images = vec![
            img(0, Some(true), Some(0.9), None),
            img(1, Some(false), Some(0.6), Some("correct")),
            img(2, Some(true), Some(0.55), Some("incorrect")),
            img(3, None, None, None),
        ];
        let seqs = |v: Vec<TrialImageView>| v.iter().map(|i| i.seq).collect::<Vec<_>>();
        assert_eq!(seqs(filter_images(&images, TrialFilter::default())), [2, 1, 0, 3]);
        assert_eq!(seqs(filter_images(&images, TrialFilter { confident_first: true, ..Default::default() })), [0, 1, 2, 3]);
        assert_eq!(seqs(filter_images(&images, TrialFilter { verdict: Some(true), ..Default::default() })), [2, 0]);
        assert_eq!(seqs(filter_images(&images, TrialFilter { verification: "unverified", ..Default::default() })), [0]);
        assert_eq!(seqs(filter_images(&images, TrialFilter { verification: "incorrect", ..Default::default() })), [2]);
    }
}
