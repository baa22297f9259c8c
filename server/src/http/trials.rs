//! Vigil's REST extension for trial detections and batch runs, under `/vigil/v1` (outside LFV's
//! `/2020-11-20`, signed with SigV4 like it, JSON in LFV's style and LFV's error shapes):
//!
//! | method and path | what |
//! |---|---|
//! | `POST /projects/{p}/trials` | `{"TrialName", "ModelVersion", "Source": "dataset:train" \| "s3://bucket/prefix/"}` → 202 `{"Trial"}` |
//! | `GET /projects/{p}/trials` | `{"Trials": [...]}` newest first |
//! | `GET /projects/{p}/trials/{name}` | `{"Trial", "Images": [...]}` |
//! | `POST /projects/{p}/trials/{name}/verify` | `{"Images": [seq, ...], "Verdict": "CORRECT" \| "INCORRECT" \| null}` → `{"Changed"}` |
//! | `POST /projects/{p}/trials/{name}/add-to-dataset` | `{"DatasetType": "train"}` → `{"Added", "Unverified"}` |
//! | `POST /projects/{p}/trials/{name}/cancel`, `DELETE /projects/{p}/trials/{name}` | |
//! | `POST /projects/{p}/models/{v}/batches` | `{"Source": "dataset:test" \| "s3://…" \| "/folder", "Output": "s3://…" \| "download"}` → 202 `{"Batch"}` (uploads only from the console: `UPLOADING` until the last part) |
//! | `GET /projects/{p}/batches`, `GET /projects/{p}/batches/{id}` | |
//! | `GET /projects/{p}/batches/{id}/results` | the zip of a `download` batch (`results.jsonl`, `masks/…`) |
//! | `POST /projects/{p}/batches/{id}/cancel`, `DELETE /projects/{p}/batches/{id}` | |

use super::error::{ApiError, ResourceType};
use super::request::parse_body;
use super::request::epoch_seconds;
use crate::state::AppState;
use crate::trials::{self, Output, Source, Trial, TrialError, TrialImage, KIND_BATCH, KIND_TRIAL};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{projectName}/trials", post(create_trial).get(list_trials))
        .route("/projects/{projectName}/trials/{trialName}", get(describe_trial).delete(delete_trial))
        .route("/projects/{projectName}/trials/{trialName}/verify", post(verify))
        .route("/projects/{projectName}/trials/{trialName}/add-to-dataset", post(add_to_dataset))
        .route("/projects/{projectName}/trials/{trialName}/cancel", post(cancel_trial))
        .route("/projects/{projectName}/models/{modelVersion}/batches", post(create_batch))
        .route("/projects/{projectName}/batches", get(list_batches))
        .route("/projects/{projectName}/batches/{batchId}", get(describe_batch).delete(delete_batch))
        .route("/projects/{projectName}/batches/{batchId}/cancel", post(cancel_batch))
        .route("/projects/{projectName}/batches/{batchId}/results", get(batch_results))
}

impl From<TrialError> for ApiError {
    fn from(e: TrialError) -> Self {
        match e {
            TrialError::NotFound(m) => ApiError::NotFound { message: m, resource_id: String::new(), resource_type: ResourceType::Trial },
            TrialError::Exists(ref n) => ApiError::Conflict { message: e.to_string(), resource_id: n.clone(), resource_type: ResourceType::Trial },
            TrialError::Invalid(m) => ApiError::Validation(m),
            TrialError::Conflict(m) => ApiError::Conflict { message: m, resource_id: String::new(), resource_type: ResourceType::Trial },
            TrialError::Db(e) => e.into(),
            TrialError::Io(e) => ApiError::Internal(anyhow::Error::new(e).context("reading a trial's file")),
        }
    }
}

fn check_project(name: &str) -> Result<(), ApiError> {
    app::names::validate_project_name(name).map_err(ApiError::Validation)
}

/// A trial or batch as the API shows it.
pub fn trial_json(t: &Trial) -> Value {
    let mut v = json!({
        "ModelVersion": t.model_version.to_string(),
        "Source": t.source,
        "Status": t.status,
        "CreationTimestamp": epoch_seconds(t.created_at),
        "LastUpdatedTimestamp": epoch_seconds(t.updated_at),
        "ImageCount": t.total,
        "ProcessedCount": t.processed,
        "AnomalousCount": t.anomalous,
        "FailedCount": t.failed,
    });
    if t.kind == KIND_TRIAL {
        v["TrialName"] = json!(t.name);
    } else {
        v["BatchId"] = json!(t.name);
        v["Output"] = json!(t.output);
    }
    if let Some(m) = &t.status_message {
        v["StatusMessage"] = json!(m);
    }
    v
}

fn image_json(i: &TrialImage) -> Value {
    let mut v = json!({ "Image": i.seq, "Source": i.name, "Width": i.width, "Height": i.height, "Done": i.done });
    if let Some(e) = &i.error {
        v["Error"] = json!(e);
    }
    if let (Some(a), Some(c)) = (i.is_anomalous, i.confidence) {
        v["IsAnomalous"] = json!(a);
        v["Confidence"] = json!(c);
        v["Score"] = json!(i.score);
    }
    if !i.anomalies.is_empty() {
        v["Anomalies"] = i
            .anomalies
            .iter()
            .map(|(n, c, a)| json!({ "Name": n, "PixelAnomaly": { "TotalPercentageArea": a, "Color": c } }))
            .collect();
    }
    if let Some(verdict) = &i.verdict {
        v["Verdict"] = json!(verdict.to_ascii_uppercase());
    }
    if let Some(t) = i.added_at {
        v["AddedToDatasetTimestamp"] = json!(epoch_seconds(t));
    }
    v
}

async fn project_id(state: &AppState, name: &str) -> Result<String, ApiError> {
    check_project(name)?;
    let mut conn = state.db.pool.acquire().await?;
    crate::projects::find(&mut conn, name).await?.map(|p| p.id).ok_or_else(|| ApiError::project_not_found(name))
}

async fn trial(state: &AppState, project: &str, kind: &str, name: &str) -> Result<Trial, ApiError> {
    check_project(project)?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(trials::require(&mut conn, project, kind, name).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateTrialRequest {
    trial_name: String,
    model_version: String,
    source: String,
}

async fn create_trial(State(state): State<AppState>, Path(project): Path<String>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    check_project(&project)?;
    let req: CreateTrialRequest = parse_body(&body)?;
    let source = Source::parse(&req.source).map_err(ApiError::Validation)?;
    if source == Source::Upload {
        return Err(ApiError::Validation("Uploads are sent from the console; give dataset:train, dataset:test or s3://bucket/prefix/.".into()));
    }
    let t = trials::create_trial(&state, &project, &req.trial_name, &req.model_version, source, Vec::new()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "Trial": trial_json(&t) }))).into_response())
}

async fn list_trials(State(state): State<AppState>, Path(project): Path<String>) -> Result<Json<Value>, ApiError> {
    let pid = project_id(&state, &project).await?;
    let mut conn = state.db.pool.acquire().await?;
    let list = trials::list(&mut conn, &pid, KIND_TRIAL).await?;
    Ok(Json(json!({ "Trials": list.iter().map(trial_json).collect::<Vec<_>>() })))
}

async fn describe_trial(State(state): State<AppState>, Path((project, name)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_TRIAL, &name).await?;
    let mut conn = state.db.pool.acquire().await?;
    let images = trials::images(&mut conn, &t.id).await?;
    Ok(Json(json!({ "Trial": trial_json(&t), "Images": images.iter().map(image_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VerifyRequest {
    images: Vec<i64>,
    verdict: Option<String>,
}

async fn verify(State(state): State<AppState>, Path((project, name)): Path<(String, String)>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let req: VerifyRequest = parse_body(&body)?;
    let t = trial(&state, &project, KIND_TRIAL, &name).await?;
    let verdict = req.verdict.map(|v| v.to_ascii_lowercase());
    let mut conn = state.db.pool.acquire().await?;
    let changed = trials::set_verdicts(&mut conn, &t.id, &req.images, verdict.as_deref()).await?;
    Ok(Json(json!({ "Changed": changed })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AddRequest {
    dataset_type: Option<String>,
}

async fn add_to_dataset(State(state): State<AppState>, Path((project, name)): Path<(String, String)>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let req: AddRequest = parse_body(&body)?;
    let t = trial(&state, &project, KIND_TRIAL, &name).await?;
    let (added, unverified) = trials::add_to_dataset(&state, &t, req.dataset_type.as_deref().unwrap_or("train")).await?;
    Ok(Json(json!({ "Added": added, "Unverified": unverified })))
}

async fn cancel_trial(State(state): State<AppState>, Path((project, name)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_TRIAL, &name).await?;
    trials::cancel(&state, &t).await?;
    Ok(Json(json!({})))
}

async fn delete_trial(State(state): State<AppState>, Path((project, name)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_TRIAL, &name).await?;
    trials::delete(&state, &t).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateBatchRequest {
    source: String,
    output: String,
}

async fn create_batch(
    State(state): State<AppState>,
    Path((project, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_project(&project)?;
    let req: CreateBatchRequest = parse_body(&body)?;
    let source = Source::parse(&req.source).map_err(ApiError::Validation)?;
    let output = Output::parse(&req.output).map_err(ApiError::Validation)?;
    let t = trials::create_batch(&state, &project, &version, source, output).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "Batch": trial_json(&t) }))).into_response())
}

async fn list_batches(State(state): State<AppState>, Path(project): Path<String>) -> Result<Json<Value>, ApiError> {
    let pid = project_id(&state, &project).await?;
    let mut conn = state.db.pool.acquire().await?;
    let list = trials::list(&mut conn, &pid, KIND_BATCH).await?;
    Ok(Json(json!({ "Batches": list.iter().map(trial_json).collect::<Vec<_>>() })))
}

async fn describe_batch(State(state): State<AppState>, Path((project, id)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_BATCH, &id).await?;
    Ok(Json(json!({ "Batch": trial_json(&t) })))
}

async fn cancel_batch(State(state): State<AppState>, Path((project, id)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_BATCH, &id).await?;
    trials::cancel(&state, &t).await?;
    Ok(Json(json!({})))
}

async fn delete_batch(State(state): State<AppState>, Path((project, id)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let t = trial(&state, &project, KIND_BATCH, &id).await?;
    trials::delete(&state, &t).await?;
    Ok(Json(json!({})))
}

async fn batch_results(State(state): State<AppState>, Path((project, id)): Path<(String, String)>) -> Result<Response, ApiError> {
    let t = trial(&state, &project, KIND_BATCH, &id).await?;
    download(&state, &t).await
}

/// A finished `download` batch's zip, streamed from its file.
pub async fn download(state: &AppState, t: &Trial) -> Result<Response, ApiError> {
    let (file, len) = trials::results_file(state, t).await.map_err(|e| match e {
        TrialError::Conflict(m) => ApiError::Conflict { message: m, resource_id: t.name.clone(), resource_type: ResourceType::Trial },
        other => other.into(),
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/zip".to_string()),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.zip\"", t.name)),
        ],
        crate::web::file_body(file),
    )
        .into_response())
}
