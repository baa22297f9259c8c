//! The console's trial and batch backend: implements `app::api::trials::TrialBackend` over `crate::trials`, the
//! same domain code as the REST extension (`http::trials`).

use super::internal;
use crate::datasets;
use crate::state::AppState;
use crate::trials::{self, Output, Source, Trial, TrialError, KIND_BATCH, KIND_TRIAL};
use app::api::trials::{TrialBackend, TrialDetail, TrialImageView, TrialSummary};
use app::api::BackendError;
use sqlx::AnyConnection;

pub struct ConsoleTrials {
    pub state: AppState,
}

impl From<TrialError> for BackendError {
    fn from(e: TrialError) -> Self {
        match e {
            TrialError::NotFound(m) => BackendError::not_found(m),
            TrialError::Exists(_) | TrialError::Conflict(_) => BackendError::conflict(e.to_string()),
            TrialError::Invalid(m) => BackendError::invalid(m),
            TrialError::Db(e) => internal(e),
            TrialError::Io(e) => internal(e),
        }
    }
}

fn summary(t: &Trial) -> TrialSummary {
    TrialSummary {
        name: t.name.clone(),
        kind: t.kind.clone(),
        model_version: t.model_version,
        source: t.source.clone(),
        output: t.output.clone(),
        status: t.status.clone(),
        status_message: t.status_message.clone(),
        total: t.total,
        processed: t.processed,
        anomalous: t.anomalous,
        failed: t.failed,
        created_at_ms: t.created_at,
    }
}

fn kind(k: &str) -> Result<&'static str, BackendError> {
    match k {
        KIND_TRIAL => Ok(KIND_TRIAL),
        KIND_BATCH => Ok(KIND_BATCH),
        _ => Err(BackendError::invalid(format!("{k:?} is neither a trial nor a batch."))),
    }
}

async fn find(conn: &mut AnyConnection, project: &str, kind: &str, name: &str) -> Result<Trial, BackendError> {
    Ok(trials::require(conn, project, kind, name).await?)
}

/// Checks and stores uploaded images (blocking work); any unusable one refuses the whole upload, named.
async fn store_uploads(state: &AppState, uploads: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, datasets::BlobInfo)>, BackendError> {
    let blobs = state.blobs.clone();
    let (ok, bad) = tokio::task::spawn_blocking(move || {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (file, bytes) in uploads {
            let file = super::archive::sanitize_file_name(&file);
            match datasets::import::store_image(&blobs, bytes) {
                Ok(info) => ok.push((file, info)),
                Err(reason) => bad.push(format!("{file}: {reason}")),
            }
        }
        (ok, bad)
    })
    .await
    .map_err(internal)?;
    if !bad.is_empty() {
        let more = if bad.len() > 5 { format!(" and {} more", bad.len() - 5) } else { String::new() };
        return Err(BackendError::invalid(format!("Not usable images: {}{more}.", bad[..bad.len().min(5)].join("; "))));
    }
    Ok(ok)
}

#[async_trait::async_trait]
impl TrialBackend for ConsoleTrials {
    async fn list(&self, project: &str, k: &str) -> Result<Vec<TrialSummary>, BackendError> {
        let k = kind(k)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let p = crate::projects::find(&mut conn, project)
            .await
            .map_err(internal)?
            .ok_or_else(|| BackendError::not_found(format!("The project {project} does not exist.")))?;
        Ok(trials::list(&mut conn, &p.id, k).await.map_err(internal)?.iter().map(summary).collect())
    }

    async fn create(&self, project: &str, name: &str, version: i64, source: &str, uploads: Vec<(String, Vec<u8>)>) -> Result<(), BackendError> {
        let source = Source::parse(source).map_err(|m| BackendError::invalid(m))?;
        trials::validate_name(name)?;
        let stored = store_uploads(&self.state, uploads).await?;
        trials::create_trial(&self.state, project, name, &version.to_string(), source, stored).await?;
        Ok(())
    }

    async fn append(&self, project: &str, name: &str, uploads: Vec<(String, Vec<u8>)>) -> Result<(), BackendError> {
        let stored = store_uploads(&self.state, uploads).await?;
        trials::append_uploads(&self.state, project, name, stored).await?;
        Ok(())
    }

    async fn trial(&self, project: &str, name: &str) -> Result<TrialDetail, BackendError> {
        self.detail(project, KIND_TRIAL, name).await
    }

    async fn verify(&self, project: &str, name: &str, images: Vec<i64>, verdict: &str) -> Result<u64, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let t = find(&mut conn, project, KIND_TRIAL, name).await?;
        let verdict = (!verdict.is_empty()).then_some(verdict);
        Ok(trials::set_verdicts(&mut conn, &t.id, &images, verdict).await?)
    }

    async fn add_to_dataset(&self, project: &str, name: &str, dataset_type: &str) -> Result<(usize, usize), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let t = find(&mut conn, project, KIND_TRIAL, name).await?;
        drop(conn);
        Ok(trials::add_to_dataset(&self.state, &t, dataset_type).await?)
    }

    async fn cancel(&self, project: &str, k: &str, name: &str) -> Result<(), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let t = find(&mut conn, project, kind(k)?, name).await?;
        Ok(trials::cancel(&self.state, &t).await?)
    }

    async fn delete(&self, project: &str, k: &str, name: &str) -> Result<(), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let t = find(&mut conn, project, kind(k)?, name).await?;
        drop(conn);
        Ok(trials::delete(&self.state, &t).await?)
    }

    async fn create_batch(&self, project: &str, version: i64, source: &str, output: &str) -> Result<String, BackendError> {
        if source.is_empty() {
            return Err(BackendError::invalid(format!("Say where the images come from: {}.", trials::BATCH_SOURCES)));
        }
        let source = Source::parse(source).map_err(|_| BackendError::invalid(format!("{source:?} is not a source: give {}.", trials::BATCH_SOURCES)))?;
        let output = Output::parse(output).map_err(BackendError::invalid)?;
        Ok(trials::create_batch(&self.state, project, &version.to_string(), source, output).await?.name)
    }

    async fn upload_batch(
        &self,
        project: &str,
        version: i64,
        batch: &str,
        output: &str,
        uploads: Vec<(String, Vec<u8>)>,
        last: bool,
    ) -> Result<String, BackendError> {
        let stored = store_uploads(&self.state, uploads).await?;
        let t = if batch.is_empty() {
            let output = Output::parse(output).map_err(BackendError::invalid)?;
            trials::create_upload_batch(&self.state, project, &version.to_string(), output, stored, last).await?
        } else {
            trials::append_batch_uploads(&self.state, project, batch, stored, last).await?
        };
        Ok(t.name)
    }

    async fn batch(&self, project: &str, id: &str) -> Result<TrialDetail, BackendError> {
        self.detail(project, KIND_BATCH, id).await
    }
}

impl ConsoleTrials {
    /// A trial or batch with its images' results.
    async fn detail(&self, project: &str, kind: &str, name: &str) -> Result<TrialDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let t = find(&mut conn, project, kind, name).await?;
        let images = trials::images(&mut conn, &t.id).await.map_err(internal)?;
        // Added images link to their entry in the labelling canvas (train first, where they are added by default).
        let sets = datasets::list_for_project(&mut conn, &t.project_id).await.map_err(internal)?;
        let mut views = Vec::with_capacity(images.len());
        for i in images {
            let mut entry = None;
            if i.added_at.is_some() {
                for d in sets.iter().filter(|d| d.dataset_type == "train").chain(sets.iter().filter(|d| d.dataset_type != "train")) {
                    let id: Option<(String,)> = sqlx::query_as("select id from dataset_entry where dataset_id = $1 and source_ref = $2")
                        .bind(&d.id)
                        .bind(&i.name)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(internal)?;
                    if let Some((id,)) = id {
                        entry = Some((d.dataset_type.clone(), id));
                        break;
                    }
                }
            }
            views.push(TrialImageView {
                seq: i.seq,
                source: i.name,
                image: i.image_hash,
                heat_map: i.heat_hash,
                mask: i.mask_hash,
                width: i.width,
                height: i.height,
                done: i.done,
                error: i.error,
                is_anomalous: i.is_anomalous,
                confidence: i.confidence,
                anomalies: i.anomalies,
                verdict: i.verdict,
                entry,
            });
        }
        Ok(TrialDetail { project: project.to_string(), trial: summary(&t), images: views })
    }
}

/// `GET /batches/{project}/{id}.zip`: a finished batch's results, for a signed-in console user.
pub async fn download_batch(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path((project, file)): axum::extract::Path<(String, String)>,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let id = file.strip_suffix(".zip").unwrap_or(&file);
    let found = async {
        let mut conn = state.db.pool.acquire().await?;
        let t = trials::require(&mut conn, &project, KIND_BATCH, id).await?;
        drop(conn);
        Ok::<_, TrialError>((trials::results_file(&state, &t).await?, t.name))
    };
    match found.await {
        Ok(((file, len), name)) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.zip\"")),
            ],
            crate::web::file_body(file),
        )
            .into_response(),
        Err(e) => {
            let status = match &e {
                TrialError::NotFound(_) => StatusCode::NOT_FOUND,
                TrialError::Conflict(_) | TrialError::Exists(_) => StatusCode::CONFLICT,
                TrialError::Invalid(_) => StatusCode::BAD_REQUEST,
                TrialError::Db(_) | TrialError::Io(_) => {
                    tracing::error!(error = %e, "downloading a batch's results");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let message = if status == StatusCode::INTERNAL_SERVER_ERROR { "The results could not be read.".to_string() } else { e.to_string() };
            crate::web::json_status(status, &message)
        }
    }
}
