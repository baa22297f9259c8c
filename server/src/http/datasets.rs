//! LFV dataset operations: CreateDataset, DescribeDataset, DeleteDataset, ListDatasetEntries,
//! UpdateDatasetEntries.

use super::error::{ApiError, ResourceType};
use super::request::{parse_body, query_map};
use super::{idempotency, paging};
use crate::jobs::Job;
use crate::datasets::{self, import::parse_manifest, manifest::ImageClass, Dataset, DatasetError};
use crate::projects::{self, Project};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

/// LFV's limit on UpdateDatasetEntries' `Changes`.
pub const MAX_CHANGES_BYTES: usize = 10 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{projectName}/datasets", post(create_dataset))
        .route("/projects/{projectName}/datasets/{datasetType}", get(describe_dataset).delete(delete_dataset))
        .route(
            "/projects/{projectName}/datasets/{datasetType}/entries",
            get(list_dataset_entries).patch(update_dataset_entries),
        )
}

impl From<DatasetError> for ApiError {
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::Exists(t) => ApiError::Conflict {
                message: format!("The project already has a {t} dataset. Delete it first or update its entries."),
                resource_id: t,
                resource_type: ResourceType::Dataset,
            },
            DatasetError::NotFound { ref dataset_type, .. } => {
                ApiError::NotFound { message: e.to_string(), resource_id: dataset_type.clone(), resource_type: ResourceType::Dataset }
            }
            DatasetError::Busy { ref dataset_type, .. } => {
                ApiError::Conflict { message: e.to_string(), resource_id: dataset_type.clone(), resource_type: ResourceType::Dataset }
            }
            DatasetError::Invalid(m) => ApiError::Validation(m),
            DatasetError::Db(e) => e.into(),
        }
    }
}


/// DatasetMetadata as LFV writes it (also used in DescribeProject).
pub fn metadata(d: &Dataset) -> Value {
    let mut v = json!({
        "DatasetType": d.dataset_type,
        "CreationTimestamp": super::request::epoch_seconds(d.created_at),
        "Status": d.status,
    });
    if let Some(m) = &d.status_message {
        v["StatusMessage"] = json!(m);
    }
    v
}

fn check_names(project: &str, dataset_type: &str) -> Result<(), ApiError> {
    app::names::validate_project_name(project).map_err(ApiError::Validation)?;
    Ok(datasets::validate_dataset_type(dataset_type).map_err(DatasetError::Invalid)?)
}

async fn project(conn: &mut AnyConnection, name: &str) -> Result<Project, ApiError> {
    projects::find(conn, name).await?.ok_or_else(|| ApiError::project_not_found(name))
}

async fn project_dataset(conn: &mut AnyConnection, name: &str, dataset_type: &str) -> Result<(Project, Dataset), ApiError> {
    let p = project(conn, name).await?;
    let d = datasets::require(conn, &p.id, name, dataset_type).await?;
    Ok((p, d))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateDatasetRequest {
    dataset_type: String,
    dataset_source: Option<DatasetSource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DatasetSource {
    ground_truth_manifest: Option<GroundTruthManifest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroundTruthManifest {
    s3_object: Option<S3Object>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct S3Object {
    bucket: String,
    key: String,
    version_id: Option<String>,
}

fn validate_s3_object(o: &S3Object) -> Result<(), ApiError> {
    let bucket_ok = (3..=63).contains(&o.bucket.len())
        && o.bucket.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if !bucket_ok {
        return Err(ApiError::Validation(format!("{:?} is not a valid S3 bucket name.", o.bucket)));
    }
    if o.key.is_empty() || !super::fields::is_s3_key(&o.key) {
        return Err(ApiError::Validation(format!(
            "The manifest's S3 key {:?} must have 1-1024 letters, digits, slashes or !_.*'()- (no spaces, as LFV's pattern).",
            o.key
        )));
    }
    if o.version_id.as_ref().is_some_and(|v| v.is_empty() || v.len() > 1024) {
        return Err(ApiError::Validation("VersionId must have 1-1024 characters.".into()));
    }
    Ok(())
}

async fn create_dataset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateDatasetRequest = parse_body(&body)?;
    check_names(&name, &req.dataset_type)?;
    let token = idempotency::client_token(&headers)?;
    let source = req.dataset_source.and_then(|s| s.ground_truth_manifest).map(|m| {
        m.s3_object.ok_or_else(|| ApiError::Validation("GroundTruthManifest needs an S3Object.".into()))
    });
    let source = source.transpose()?;
    if let Some(o) = &source {
        validate_s3_object(o)?;
    }
    let hash = idempotency::params_hash(&[
        ("ProjectName", &name),
        ("DatasetType", &req.dataset_type),
        ("Bucket", source.as_ref().map_or("", |o| o.bucket.as_str())),
        ("Key", source.as_ref().map_or("", |o| o.key.as_str())),
        ("VersionId", source.as_ref().and_then(|o| o.version_id.as_deref()).unwrap_or("")),
    ]);
    let dataset_type = req.dataset_type.clone();
    let outcome = idempotency::run_detailed(&state.db, "CreateDataset", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let p = project(conn, &name).await?;
            let status = if source.is_some() { datasets::CREATE_IN_PROGRESS } else { datasets::CREATE_COMPLETE };
            let d = datasets::create(conn, &p.id, &dataset_type, status).await?;
            let mut out = json!({ "DatasetMetadata": metadata(&d) });
            if let Some(o) = source {
                let job = Job::Manifest { dataset_id: d.id.clone(), bucket: o.bucket, key: o.key, version: o.version_id, s3: None };
                out["_job"] = json!(crate::jobs::enqueue(conn, &job).await?);
            }
            Ok(out)
        })
    })
    .await?;
    let mut value = outcome.value;
    let job = value.as_object_mut().and_then(|o| o.remove("_job"));
    if let (false, Some(job)) = (outcome.replayed, job) {
        spawn_recorded(&state, job).await;
    }
    Ok((StatusCode::ACCEPTED, Json(value)))
}

async fn describe_dataset(
    State(state): State<AppState>,
    Path((name, dataset_type)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_names(&name, &dataset_type)?;
    let mut conn = state.db.pool.acquire().await?;
    let (p, d) = project_dataset(&mut conn, &name, &dataset_type).await?;
    let s = datasets::stats(&mut conn, &d.id).await?;
    let mut v = json!({
        "ProjectName": p.name,
        "DatasetType": d.dataset_type,
        "CreationTimestamp": super::request::epoch_seconds(d.created_at),
        "LastUpdatedTimestamp": super::request::epoch_seconds(d.updated_at),
        "Status": d.status,
        "ImageStats": { "Total": s.total, "Labeled": s.labeled, "Normal": s.normal, "Anomaly": s.anomaly },
    });
    if let Some(m) = &d.status_message {
        v["StatusMessage"] = json!(m);
    }
    Ok(Json(json!({ "DatasetDescription": v })))
}

async fn delete_dataset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, dataset_type)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_names(&name, &dataset_type)?;
    let token = idempotency::client_token(&headers)?;
    let hash = idempotency::params_hash(&[("ProjectName", &name), ("DatasetType", &dataset_type)]);
    let value = idempotency::run(&state.db, "DeleteDataset", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let (_, d) = project_dataset(conn, &name, &dataset_type).await?;
            datasets::check_not_busy(&d)?;
            datasets::delete(conn, &d.id).await?;
            Ok(json!({}))
        })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(value)))
}

/// Parses LFV's timestamp query values: ISO 8601 with or without an offset (UTC assumed), or epoch seconds.
pub fn parse_time_ms(raw: &str) -> Option<i64> {
    if let Ok(secs) = raw.parse::<f64>() {
        return secs.is_finite().then(|| (secs * 1000.0).round() as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc().timestamp_millis())
}

async fn list_dataset_entries(
    State(state): State<AppState>,
    Path((name, dataset_type)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    check_names(&name, &dataset_type)?;
    let q = query_map(q.as_deref())?;
    let limit = paging::page_size(q.get("maxResults").map(String::as_str))?;
    // A token holds for this dataset and these filters only.
    let mut scope = format!("ListDatasetEntries\n{name}\n{dataset_type}");
    for k in ["labeled", "anomalyClass", "createdBefore", "createdAfter", "sourceRefContains"] {
        scope.push_str(&format!("\n{k}={}", q.get(k).map(String::as_str).unwrap_or("")));
    }
    let cursor = q.get("nextToken").filter(|t| !t.is_empty()).map(|t| paging::decode(&scope, t)).transpose()?;
    let mut filter = datasets::EntryFilter::default();
    if let Some(v) = q.get("labeled") {
        filter.labeled = Some(match v.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(ApiError::Validation(format!("labeled must be true or false, not {v:?}."))),
        });
    }
    if let Some(v) = q.get("anomalyClass") {
        filter.label = Some(match v.as_str() {
            "normal" => ImageClass::Normal,
            "anomaly" => ImageClass::Anomaly,
            _ => return Err(ApiError::Validation(format!("anomalyClass must be normal or anomaly, not {v:?}."))),
        });
    }
    for (param, slot) in [("createdBefore", &mut filter.created_before), ("createdAfter", &mut filter.created_after)] {
        if let Some(v) = q.get(param) {
            *slot = Some(
                parse_time_ms(v)
                    .ok_or_else(|| ApiError::Validation(format!("{param} must be a date and time such as 2020-06-23T00:00:00, not {v:?}.")))?,
            );
        }
    }
    if let Some(v) = q.get("sourceRefContains") {
        if v.trim().is_empty() || v.len() > 2048 {
            return Err(ApiError::Validation("sourceRefContains must have 1-2048 characters, not all spaces.".into()));
        }
        filter.source_ref_contains = Some(v.clone());
    }
    let mut conn = state.db.pool.acquire().await?;
    let (_, d) = project_dataset(&mut conn, &name, &dataset_type).await?;
    let mut rows = datasets::list_entries(
        &mut conn,
        &d.id,
        &filter,
        cursor.as_ref().map(|c| (c.created_at, c.id.as_str())),
        limit + 1,
        0,
    )
    .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|e| paging::encode(&scope, &paging::Cursor { created_at: e.created_at, id: e.id.clone() }))
    } else {
        None
    };
    let entries: Vec<&str> = rows.iter().map(|e| e.entry.as_str()).collect();
    let mut body = json!({ "DatasetEntries": entries });
    if let Some(next) = next {
        body["NextToken"] = json!(next);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateDatasetEntriesRequest {
    changes: String,
}

async fn update_dataset_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, dataset_type)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_names(&name, &dataset_type)?;
    let req: UpdateDatasetEntriesRequest = parse_body(&body)?;
    let token = idempotency::client_token(&headers)?;
    let changes = base64::engine::general_purpose::STANDARD
        .decode(req.changes.as_bytes())
        .map_err(|_| ApiError::Validation("Changes must be base64-encoded JSON lines.".into()))?;
    if changes.is_empty() || changes.len() > MAX_CHANGES_BYTES {
        return Err(ApiError::Validation(format!("Changes must have 1 to {MAX_CHANGES_BYTES} bytes.")));
    }
    let text = String::from_utf8(changes).map_err(|_| ApiError::Validation("Changes must be UTF-8 text.".into()))?;
    let (lines, issues) = parse_manifest(&text);
    if let Some(first) = issues.first() {
        return Err(ApiError::Validation(format!(
            "Changes has {} invalid line{}; nothing was changed. First: {first}.",
            issues.len(),
            if issues.len() == 1 { "" } else { "s" }
        )));
    }
    if lines.is_empty() {
        return Err(ApiError::Validation("Changes has no JSON lines.".into()));
    }
    let hash = idempotency::params_hash(&[("ProjectName", &name), ("DatasetType", &dataset_type), ("Changes", &text)]);
    let outcome = idempotency::run_detailed(&state.db, "UpdateDatasetEntries", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let (_, d) = project_dataset(conn, &name, &dataset_type).await?;
            datasets::check_settled(&d)?;
            datasets::set_status(conn, &d.id, datasets::UPDATE_IN_PROGRESS, None).await?;
            let job = Job::Update { dataset_id: d.id.clone(), changes: text };
            let id = crate::jobs::enqueue(conn, &job).await?;
            Ok(json!({ "Status": datasets::UPDATE_IN_PROGRESS, "_job": id }))
        })
    })
    .await?;
    let mut value = outcome.value;
    let job = value.as_object_mut().and_then(|o| o.remove("_job"));
    if let (false, Some(job)) = (outcome.replayed, job) {
        spawn_recorded(&state, job).await;
    }
    Ok((StatusCode::ACCEPTED, Json(value)))
}

/// Wakes the workers for the job a handler recorded, once its transaction has committed.
async fn spawn_recorded(state: &AppState, _job: Value) {
    crate::jobs::wake(state);
}

#[cfg(test)]
mod tests {
    use super::parse_time_ms;

    #[test]
    fn lfv_times() {
        assert_eq!(parse_time_ms("2020-06-23T00:00:00"), Some(1_592_870_400_000));
        assert_eq!(parse_time_ms("2020-06-23T00:00:00Z"), Some(1_592_870_400_000));
        assert_eq!(parse_time_ms("2020-06-23T02:00:00+02:00"), Some(1_592_870_400_000));
        assert_eq!(parse_time_ms("1592870400"), Some(1_592_870_400_000));
        assert_eq!(parse_time_ms("1592870400.5"), Some(1_592_870_400_500));
        assert_eq!(parse_time_ms("2020-06-23"), Some(1_592_870_400_000));
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
