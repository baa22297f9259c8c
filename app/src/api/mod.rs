//! Server functions behind the console, and the `Backend` trait through which they reach the server crate.

pub mod auth;
pub mod models;
pub mod first_run;
pub mod packaging;
pub mod trials;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A project as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub name: String,
    pub arn: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A project with what its page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetail {
    pub project: ProjectSummary,
    /// The project's datasets (`train`, then `test`); empty until one is created.
    pub datasets: Vec<DatasetSummary>,
}

/// A dataset's status and image counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub dataset_type: String,
    pub status: String,
    pub status_message: Option<String>,
    pub total: i64,
    pub labeled: i64,
    pub normal: i64,
    pub anomaly: i64,
    /// Whether the import that created it can be run again (a failed import whose source is recorded).
    #[serde(default)]
    pub can_retry: bool,
}

impl DatasetSummary {
    /// An import or update is still writing into it (the console polls until it ends).
    pub fn busy(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
}

/// A dataset page: its summary and what its last import skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetDetail {
    pub project: String,
    pub summary: DatasetSummary,
    pub issues: Vec<String>,
}

/// One image in the gallery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    pub id: String,
    /// The file name part of the source-ref.
    pub name: String,
    pub source_ref: String,
    /// `normal`, `anomaly`, or none.
    pub label: Option<String>,
    /// Blob name of the image, for `/media/{hash}`.
    pub image: String,
    pub has_mask: bool,
    /// Blob name of the mask, if any (the gallery tints its thumbnail with it).
    #[serde(default)]
    pub mask: Option<String>,
    /// The anomaly labels its mask uses.
    pub types: Vec<String>,
}

/// One page of the gallery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPage {
    pub entries: Vec<EntryView>,
    /// Whether a further page exists.
    pub more: bool,
    /// How many images match the query (all pages).
    #[serde(default)]
    pub total: i64,
}

/// What the gallery shows: a filter, a file-name search and an order, then a page of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryQuery {
    /// `all`, `normal`, `anomaly`, `unlabeled`, or `type:LABEL` (images whose mask uses LABEL).
    pub filter: String,
    /// Part of the image's path or file name (case-insensitive); empty for every image.
    #[serde(default)]
    pub search: String,
    /// `added` (oldest first, the default), `newest`, `name` or `label`.
    #[serde(default)]
    pub sort: String,
    /// Zero-based page number.
    #[serde(default)]
    pub page: usize,
}

impl EntryQuery {
    /// The query as URL query parameters (the canvas keeps it, so previous / next stay inside it).
    pub fn to_query_string(&self) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect()
        };
        format!("filter={}&sort={}&q={}", enc(&self.filter), enc(&self.sort), enc(&self.search))
    }
}

/// Images per gallery page.
pub const GALLERY_PAGE: usize = 48;

/// An anomaly label and its mask colour (`#RRGGBB`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyLabel {
    pub name: String,
    pub color: String,
}

/// One image opened for mask painting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDetail {
    pub entry: EntryView,
    pub width: i64,
    pub height: i64,
    /// Blob name of the current mask, if any.
    pub mask: Option<String>,
    /// The colour map of the current mask (its labels in the colours it was painted in).
    pub mask_classes: Vec<AnomalyLabel>,
    /// The project's anomaly labels, in the colours new masks use.
    pub labels: Vec<AnomalyLabel>,
}

/// A project's anomaly label (name and `#RRGGBB` colour, as in [`AnomalyLabel`]), with how many images' masks use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyLabelUse {
    pub name: String,
    pub color: String,
    pub uses: i64,
}

/// S3 connection settings for one import; empty fields take the server's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Connection {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `path`, `virtual`, or empty for the server's setting.
    pub addressing: String,
}

/// What an upload kept and skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReport {
    pub added: usize,
    pub skipped: Vec<String>,
}

#[cfg(feature = "ssr")]
pub use backend::{Backend, BackendError, SharedBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use std::sync::Arc;

    /// What the console's server functions need from the server crate. The server implements it and
    /// provides an `Arc<dyn Backend>` as Leptos context, so `app` never depends on `server`.
    #[async_trait::async_trait]
    pub trait Backend: Send + Sync + 'static {
        async fn list_projects(&self) -> Result<Vec<ProjectSummary>, BackendError>;
        async fn create_project(&self, name: &str) -> Result<ProjectSummary, BackendError>;
        async fn describe_project(&self, name: &str) -> Result<ProjectDetail, BackendError>;
        async fn delete_project(&self, name: &str) -> Result<(), BackendError>;
        async fn dataset(&self, project: &str, dataset_type: &str) -> Result<DatasetDetail, BackendError>;
        /// A page of entries matching a query (filter, search, order).
        async fn entries(&self, project: &str, dataset_type: &str, query: &EntryQuery) -> Result<EntryPage, BackendError>;
        /// The ids of every entry matching a query (all pages), in its order: select-all and the canvas's
        /// previous / next.
        async fn entry_ids(&self, project: &str, dataset_type: &str, query: &EntryQuery) -> Result<Vec<String>, BackendError>;
        /// Deletes a dataset that no import or update is writing into (a failed one included).
        async fn delete_dataset(&self, project: &str, dataset_type: &str) -> Result<(), BackendError>;
        /// Runs a failed import again from the source it was given.
        async fn retry_import(&self, project: &str, dataset_type: &str) -> Result<(), BackendError>;
        /// Adds uploaded files (name, bytes), creating the dataset if needed; `label` is `normal`,
        /// `anomaly` or empty for unlabelled.
        async fn upload(
            &self,
            project: &str,
            dataset_type: &str,
            label: &str,
            files: Vec<(String, Vec<u8>)>,
        ) -> Result<UploadReport, BackendError>;
        /// Labels entries: `normal`, `anomaly`, or empty to remove the label.
        async fn set_labels(&self, project: &str, dataset_type: &str, ids: Vec<String>, label: &str) -> Result<usize, BackendError>;
        /// Starts an import into a new dataset: `kind` `manifest` (a Ground Truth manifest at
        /// `s3://bucket/key`), `folder` (`s3://bucket/prefix/` or a folder on the server, with `normal/`,
        /// `anomaly/` and optional `masks/`) or `mvtec` (an MVTec AD category, into both train and test).
        async fn import_s3(&self, project: &str, dataset_type: &str, uri: &str, kind: &str, s3: S3Connection) -> Result<(), BackendError>;
        /// One entry with its size, mask and the project's anomaly labels.
        async fn entry(&self, project: &str, dataset_type: &str, id: &str) -> Result<EntryDetail, BackendError>;
        /// Saves a painted mask (a PNG data URL, transparent background) with the labels it uses.
        async fn save_mask(
            &self,
            project: &str,
            dataset_type: &str,
            id: &str,
            png_data_url: &str,
            labels: Vec<AnomalyLabel>,
        ) -> Result<(), BackendError>;
        /// Renames an anomaly label in every mask colour map of the project; returns the entries changed.
        async fn rename_label(&self, project: &str, old: &str, new: &str) -> Result<usize, BackendError>;
        /// The project's anomaly labels with their use counts.
        async fn labels(&self, project: &str) -> Result<Vec<AnomalyLabelUse>, BackendError>;
        /// Adds an anomaly label (LFV's naming rule) with its colour.
        async fn create_label(&self, project: &str, name: &str, color: &str) -> Result<(), BackendError>;
        /// Changes the colour new masks paint a label in.
        async fn recolor_label(&self, project: &str, name: &str, color: &str) -> Result<(), BackendError>;
        /// Deletes a label that no mask uses.
        async fn delete_label(&self, project: &str, name: &str) -> Result<(), BackendError>;
        /// Deletes images from a dataset.
        async fn delete_entries(&self, project: &str, dataset_type: &str, ids: Vec<String>) -> Result<usize, BackendError>;
        /// Moves images to the project's other dataset (train ↔ test), creating it if needed.
        async fn move_entries(&self, project: &str, dataset_type: &str, ids: Vec<String>) -> Result<usize, BackendError>;
    }

    pub type SharedBackend = Arc<dyn Backend>;

    /// A failure the console can show as it is, with the HTTP status it deserves (400 bad input, 404 missing,
    /// 409 conflict, 500 internal); internal details stay in the server log.
    #[derive(Debug, Clone)]
    pub struct BackendError {
        pub status: u16,
        pub message: String,
    }

    impl BackendError {
        pub fn new(status: u16, message: impl Into<String>) -> Self {
            BackendError { status, message: message.into() }
        }

        /// 400: what was asked is not valid; the message says how to fix it.
        pub fn invalid(message: impl Into<String>) -> Self {
            Self::new(400, message)
        }

        /// 401: sign in first.
        pub fn unauthorized(message: impl Into<String>) -> Self {
            Self::new(401, message)
        }

        /// 403: not allowed here.
        pub fn forbidden(message: impl Into<String>) -> Self {
            Self::new(403, message)
        }

        /// 404: what was named does not exist.
        pub fn not_found(message: impl Into<String>) -> Self {
            Self::new(404, message)
        }

        /// 409: the state of what was named does not allow it now.
        pub fn conflict(message: impl Into<String>) -> Self {
            Self::new(409, message)
        }

        /// 413: too large.
        pub fn too_large(message: impl Into<String>) -> Self {
            Self::new(413, message)
        }

        /// 429: busy; try again shortly.
        pub fn throttled(message: impl Into<String>) -> Self {
            Self::new(429, message)
        }

        /// 500: the server failed (details in its log, not here).
        pub fn internal(message: impl Into<String>) -> Self {
            Self::new(500, message)
        }
    }

    impl From<BackendError> for ServerFnError {
        fn from(e: BackendError) -> Self {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(
                    http::StatusCode::from_u16(e.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                );
            }
            ServerFnError::ServerError(e.message)
        }
    }

    pub(crate) fn backend() -> Result<SharedBackend, ServerFnError> {
        use_context::<SharedBackend>()
            .ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

/// The message to show for a failed server call, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => format!("The request failed: {other}"),
    }
}

#[server]
pub async fn list_projects() -> Result<Vec<ProjectSummary>, ServerFnError> {
    Ok(backend::backend()?.list_projects().await?)
}

#[server]
pub async fn get_project(name: String) -> Result<ProjectDetail, ServerFnError> {
    Ok(backend::backend()?.describe_project(&name).await?)
}

#[server]
pub async fn create_project(name: String) -> Result<ProjectSummary, ServerFnError> {
    let name = name.trim().to_string();
    if let Err(message) = crate::names::validate_project_name(&name) {
        return Err(backend::BackendError::invalid(message).into());
    }
    Ok(backend::backend()?.create_project(&name).await?)
}

#[server]
pub async fn delete_project(name: String) -> Result<(), ServerFnError> {
    backend::backend()?.delete_project(&name).await?;
    Ok(())
}

#[server]
pub async fn get_dataset(project: String, dataset_type: String) -> Result<DatasetDetail, ServerFnError> {
    Ok(backend::backend()?.dataset(&project, &dataset_type).await?)
}

#[server]
pub async fn list_entries(project: String, dataset_type: String, query: EntryQuery) -> Result<EntryPage, ServerFnError> {
    Ok(backend::backend()?.entries(&project, &dataset_type, &query).await?)
}

#[server]
pub async fn list_entry_ids(project: String, dataset_type: String, query: EntryQuery) -> Result<Vec<String>, ServerFnError> {
    Ok(backend::backend()?.entry_ids(&project, &dataset_type, &query).await?)
}

#[server]
pub async fn delete_dataset(project: String, dataset_type: String) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.delete_dataset(&project, &dataset_type).await?)
}

#[server]
pub async fn retry_import(project: String, dataset_type: String) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.retry_import(&project, &dataset_type).await?)
}

#[server]
pub async fn set_labels(
    project: String,
    dataset_type: String,
    ids: Vec<String>,
    label: String,
) -> Result<usize, ServerFnError> {
    Ok(backend::backend()?.set_labels(&project, &dataset_type, ids, &label).await?)
}

#[server]
pub async fn import_s3(
    project: String,
    dataset_type: String,
    uri: String,
    kind: String,
    s3: S3Connection,
) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.import_s3(&project, &dataset_type, uri.trim(), &kind, s3).await?)
}

#[server]
pub async fn delete_entries(project: String, dataset_type: String, ids: Vec<String>) -> Result<usize, ServerFnError> {
    Ok(backend::backend()?.delete_entries(&project, &dataset_type, ids).await?)
}

#[server]
pub async fn move_entries(project: String, dataset_type: String, ids: Vec<String>) -> Result<usize, ServerFnError> {
    Ok(backend::backend()?.move_entries(&project, &dataset_type, ids).await?)
}

/// Largest file (or field) one upload may carry: LFV's 8 MB image limit (the whole request is capped by the
/// server at its body limit).
pub const MAX_UPLOAD_FIELD_BYTES: usize = 8 * 1024 * 1024;

/// Uploads images as multipart form data: text fields `project`, `dataset_type`, `label`, then the files.
#[server(input = leptos::server_fn::codec::MultipartFormData)]
pub async fn upload_images(data: leptos::server_fn::codec::MultipartData) -> Result<UploadReport, ServerFnError> {
    fn bad(m: String) -> ServerFnError {
        ServerFnError::ServerError(m)
    }
    let mut data = data.into_inner().ok_or_else(|| bad("no form data".into()))?;
    let (mut project, mut dataset_type, mut label) = (String::new(), String::new(), String::new());
    let mut files = Vec::new();
    while let Some(mut field) = data.next_field().await.map_err(|e| bad(format!("upload: {e}")))? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        // Read in chunks and stop at the cap, so an oversized field is refused before it is buffered.
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| bad(format!("upload: {e}")))? {
            if bytes.len() + chunk.len() > MAX_UPLOAD_FIELD_BYTES {
                let what = file_name.clone().unwrap_or(name.clone());
                return Err(backend::BackendError::too_large(format!("{what}: the file is larger than {} MB.", MAX_UPLOAD_FIELD_BYTES >> 20)).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match (name.as_str(), file_name) {
            ("project", _) => project = String::from_utf8_lossy(&bytes).into_owned(),
            ("dataset_type", _) => dataset_type = String::from_utf8_lossy(&bytes).into_owned(),
            ("label", _) => label = String::from_utf8_lossy(&bytes).into_owned(),
            (_, Some(f)) => files.push((f, bytes.to_vec())),
            _ => {}
        }
    }
    Ok(backend::backend()?.upload(&project, &dataset_type, &label, files).await?)
}

#[server]
pub async fn get_entry(project: String, dataset_type: String, id: String) -> Result<EntryDetail, ServerFnError> {
    Ok(backend::backend()?.entry(&project, &dataset_type, &id).await?)
}

#[server]
pub async fn save_mask(
    project: String,
    dataset_type: String,
    id: String,
    png: String,
    // An empty list is left out of the URL-encoded form entirely: without a default it would not parse.
    #[server(default)] labels: Vec<AnomalyLabel>,
) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.save_mask(&project, &dataset_type, &id, &png, labels).await?)
}

#[server]
pub async fn list_labels(project: String) -> Result<Vec<AnomalyLabelUse>, ServerFnError> {
    Ok(backend::backend()?.labels(&project).await?)
}

#[server]
pub async fn create_label(project: String, name: String, color: String) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.create_label(&project, name.trim(), &color).await?)
}

#[server]
pub async fn recolor_label(project: String, name: String, color: String) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.recolor_label(&project, &name, &color).await?)
}

#[server]
pub async fn delete_label(project: String, name: String) -> Result<(), ServerFnError> {
    Ok(backend::backend()?.delete_label(&project, &name).await?)
}

#[server]
pub async fn rename_label(project: String, old: String, new: String) -> Result<usize, ServerFnError> {
    Ok(backend::backend()?.rename_label(&project, &old, new.trim()).await?)
}
