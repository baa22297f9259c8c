//! LFV model operations: CreateModel, DescribeModel, ListModels, DeleteModel, StartModel, StopModel and
//! DetectAnomalies; tags on model ARNs (TagResource, UntagResource, ListTagsForResource).

use super::error::{ApiError, ResourceType};
use super::request::epoch_seconds;
use super::request::{parse_body, query_map};
use super::{idempotency, paging};
use crate::models::{self, hosting::StartError, lifecycle::ModelError, ModelVersion, NewModel};
use crate::projects::{self, Project};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

pub use crate::inference::MAX_IMAGE_BYTES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{projectName}/models", post(create_model).get(list_models))
        .route("/projects/{projectName}/models/{modelVersion}", get(describe_model).delete(delete_model))
        .route("/projects/{projectName}/models/{modelVersion}/start", post(start_model))
        .route("/projects/{projectName}/models/{modelVersion}/stop", post(stop_model))
        .route("/projects/{projectName}/models/{modelVersion}/detect", post(detect_anomalies))
        .route("/tags/{resourceArn}", get(list_tags_for_resource).post(tag_resource).delete(untag_resource))
}

fn model_not_found(project: &str, version: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("The project {project} has no model version {version}."),
        resource_id: version.to_string(),
        resource_type: ResourceType::Model,
    }
}

fn conflict(version: i64, message: String) -> ApiError {
    ApiError::Conflict { message, resource_id: version.to_string(), resource_type: ResourceType::Model }
}

fn check_project(name: &str) -> Result<(), ApiError> {
    app::names::validate_project_name(name).map_err(ApiError::Validation)
}

fn check_version(v: &str, latest: bool) -> Result<(), ApiError> {
    let ok = (1..=10).contains(&v.len())
        && ((latest && v == "latest") || (v.as_bytes()[0] != b'0' && v.bytes().all(|b| b.is_ascii_digit())));
    if ok {
        Ok(())
    } else if latest {
        Err(ApiError::Validation(format!("ModelVersion must be a version number (1, 2, ...) or latest, not {v:?}.")))
    } else {
        Err(ApiError::Validation(format!("ModelVersion must be a version number (1, 2, ...), not {v:?}.")))
    }
}

async fn project(conn: &mut AnyConnection, name: &str) -> Result<Project, ApiError> {
    projects::find(conn, name).await?.ok_or_else(|| ApiError::project_not_found(name))
}

async fn project_model(conn: &mut AnyConnection, name: &str, version: &str) -> Result<(Project, ModelVersion), ApiError> {
    let p = project(conn, name).await?;
    let m = models::find(conn, &p.id, version).await?.ok_or_else(|| model_not_found(name, version))?;
    Ok((p, m))
}

fn arn(state: &AppState, project: &str, m: &ModelVersion) -> String {
    models::model_arn(&state.config.region, &state.config.account_id, project, m.version)
}

/// LFV's `ModelMetadata`.
pub fn metadata(state: &AppState, project: &str, m: &ModelVersion) -> Value {
    let mut v = json!({
        "CreationTimestamp": epoch_seconds(m.created_at),
        "ModelVersion": m.version.to_string(),
        "ModelArn": arn(state, project, m),
        "Status": m.status,
    });
    if let Some(d) = &m.description {
        v["Description"] = json!(d);
    }
    if let Some(s) = &m.status_message {
        v["StatusMessage"] = json!(s);
    }
    if let Some(p) = m.performance.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()) {
        v["Performance"] = p;
    }
    v
}

/// LFV's `ModelDescription`.
fn description(state: &AppState, project: &str, m: &ModelVersion) -> Value {
    let mut v = metadata(state, project, m);
    let mut loc = json!({ "Bucket": m.output_bucket });
    if !m.output_prefix.is_empty() {
        loc["Prefix"] = json!(m.output_prefix);
    }
    if !m.output_bucket.is_empty() {
        v["OutputConfig"] = json!({ "S3Location": loc });
    }
    if let Some(k) = &m.evaluation_manifest_key {
        v["EvaluationManifest"] = json!({ "Bucket": m.output_bucket, "Key": k });
    }
    if let Some(k) = &m.evaluation_result_key {
        v["EvaluationResult"] = json!({ "Bucket": m.output_bucket, "Key": k });
    }
    if let Some(t) = m.evaluation_end_at {
        v["EvaluationEndTimestamp"] = json!(epoch_seconds(t));
    }
    if let Some(k) = &m.kms_key_id {
        v["KmsKeyId"] = json!(k);
    }
    if models::is_hosting(&m.status) {
        if let Some(n) = m.min_inference_units {
            v["MinInferenceUnits"] = json!(n);
        }
        if let Some(n) = m.max_inference_units.or(m.min_inference_units) {
            v["MaxInferenceUnits"] = json!(n);
        }
    }
    v
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateModelRequest {
    description: Option<String>,
    output_config: Option<OutputConfig>,
    kms_key_id: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OutputConfig {
    s3_location: Option<S3Location>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3Location {
    bucket: String,
    prefix: Option<String>,
}

/// LFV's `Tag` (also in StartModelPackagingJob's configuration).
#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    pub(super) key: String,
    pub(super) value: String,
}

fn tag_chars_ok(s: &str) -> bool {
    super::fields::is_tag_text(s)
}

pub(super) fn validate_tags(tags: &[Tag]) -> Result<Vec<(String, String)>, ApiError> {
    if tags.len() > 200 {
        return Err(ApiError::Validation("At most 200 tags are allowed.".into()));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for t in tags {
        validate_tag_key(&t.key)?;
        if t.value.chars().count() > 256 || !tag_chars_ok(&t.value) {
            return Err(ApiError::Validation(format!(
                "The value of tag {:?} must have at most 256 letters, digits, spaces or _.:/=+-@.",
                t.key
            )));
        }
        out.retain(|(k, _)| k != &t.key);
        out.push((t.key.clone(), t.value.clone()));
    }
    Ok(out)
}

fn validate_tag_key(k: &str) -> Result<(), ApiError> {
    let n = k.chars().count();
    if !(1..=128).contains(&n) || !tag_chars_ok(k) {
        return Err(ApiError::Validation(format!("Tag key {k:?} must have 1-128 letters, digits, spaces or _.:/=+-@.")));
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::Validation(format!("Tag key {k:?} may not start with aws:, which is reserved.")));
    }
    Ok(())
}

fn validate_output(o: &Option<OutputConfig>) -> Result<(String, String), ApiError> {
    let loc = o
        .as_ref()
        .and_then(|o| o.s3_location.as_ref())
        .ok_or_else(|| ApiError::Validation("OutputConfig with an S3Location is required: Vigil writes the evaluation files there.".into()))?;
    let b = &loc.bucket;
    if !(3..=63).contains(&b.len()) || !b.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        return Err(ApiError::Validation(format!("{b:?} is not a valid S3 bucket name.")));
    }
    let prefix = loc.prefix.clone().unwrap_or_default();
    if !super::fields::is_s3_key(&prefix) {
        return Err(ApiError::Validation(format!("{prefix:?} is not a valid S3 key prefix.")));
    }
    Ok((b.clone(), prefix))
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::NotReady(_) => ApiError::Validation(e.to_string()),
            ModelError::DatasetBusy { ref dataset_type, .. } => {
                ApiError::Conflict { message: e.to_string(), resource_id: dataset_type.clone(), resource_type: ResourceType::Dataset }
            }
            ModelError::Hosted { version, .. } => conflict(version, e.to_string()),
            ModelError::Quota { message, code } => ApiError::QuotaExceeded {
                message,
                resource_id: String::new(),
                resource_type: ResourceType::Model,
                quota_code: code.into(),
            },
            ModelError::Db(e) => e.into(),
        }
    }
}

async fn create_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_project(&name)?;
    let req: CreateModelRequest = parse_body(&body)?;
    let token = idempotency::client_token(&headers)?;
    let (bucket, prefix) = validate_output(&req.output_config)?;
    // Vigil writes the evaluation files with its own S3 identity: only where it may on a caller's behalf.
    state.s3.scope().check(&bucket, &prefix).map_err(|m| ApiError::Validation(format!("OutputConfig: {m}.")))?;
    if let Some(d) = &req.description {
        super::fields::check_model_description(d)?;
    }
    if let Some(k) = &req.kms_key_id {
        let ok = (1..=2048).contains(&k.len())
            && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || ":_/+=,@.-".contains(c));
        if !ok {
            return Err(ApiError::Validation("KmsKeyId is not a valid KMS key id, alias or ARN.".into()));
        }
    }
    let tags = validate_tags(req.tags.as_deref().unwrap_or_default())?;
    let tag_text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let hash = idempotency::params_hash(&[
        ("ProjectName", &name),
        ("Description", req.description.as_deref().unwrap_or("")),
        ("Bucket", &bucket),
        ("Prefix", &prefix),
        ("KmsKeyId", req.kms_key_id.as_deref().unwrap_or("")),
        ("Tags", &tag_text.join("\n")),
    ]);
    let st = state.clone();
    let new = NewModel { description: req.description, output_bucket: bucket, output_prefix: prefix, kms_key_id: req.kms_key_id, tags };
    let value = idempotency::run(&state.db, "CreateModel", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let p = project(conn, &name).await?;
            let m = models::lifecycle::create_version(conn, &p.id, &new, &crate::quotas::Quotas::of(&st.config)).await?;
            Ok(json!({ "ModelMetadata": metadata(&st, &p.name, &m) }))
        })
    })
    .await?;
    crate::jobs::wake(&state);
    Ok((StatusCode::ACCEPTED, Json(value)))
}

async fn describe_model(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    check_version(&version, true)?;
    let mut conn = state.db.pool.acquire().await?;
    let (p, m) = project_model(&mut conn, &name, &version).await?;
    Ok(Json(json!({ "ModelDescription": description(&state, &p.name, &m) })))
}

async fn list_models(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    let q = query_map(q.as_deref())?;
    let limit = paging::page_size(q.get("maxResults").map(String::as_str))?;
    let before = q
        .get("nextToken")
        .filter(|t| !t.is_empty())
        .map(|t| paging::decode(&format!("ListModels\n{name}"), t).map(|c| c.created_at))
        .transpose()?;
    let mut conn = state.db.pool.acquire().await?;
    let p = project(&mut conn, &name).await?;
    let mut rows = models::list(&mut conn, &p.id, before, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|m| paging::encode(&format!("ListModels\n{name}"), &paging::Cursor { created_at: m.version, id: m.id.clone() }))
    } else {
        None
    };
    let list: Vec<Value> = rows.iter().map(|m| metadata(&state, &p.name, m)).collect();
    let mut body = json!({ "Models": list });
    if let Some(n) = next {
        body["NextToken"] = json!(n);
    }
    Ok(Json(body))
}

async fn delete_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_project(&name)?;
    check_version(&version, false)?;
    let token = idempotency::client_token(&headers)?;
    let hash = idempotency::params_hash(&[("ProjectName", &name), ("ModelVersion", &version)]);
    let st = state.clone();
    let value = idempotency::run(&state.db, "DeleteModel", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let (p, m) = project_model(conn, &name, &version).await?;
            models::lifecycle::delete_version(conn, &m).await?;
            Ok(json!({ "ModelArn": arn(&st, &p.name, &m), "_id": m.id }))
        })
    })
    .await?;
    let mut value = value;
    if let Some(Value::String(id)) = value.as_object_mut().and_then(|o| o.remove("_id")) {
        state.hosting.close_lanes(std::time::Duration::ZERO, Some(&id));
    }
    Ok((StatusCode::ACCEPTED, Json(value)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct StartModelRequest {
    min_inference_units: Option<i64>,
    max_inference_units: Option<i64>,
}

async fn start_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_project(&name)?;
    check_version(&version, true)?;
    let req: StartModelRequest = parse_body(&body)?;
    let min = req.min_inference_units.ok_or_else(|| ApiError::Validation("MinInferenceUnits is required (1 or more).".into()))?;
    let max = req.max_inference_units.unwrap_or(min);
    let token = idempotency::client_token(&headers)?;
    let hash = idempotency::params_hash(&[
        ("ProjectName", &name),
        ("ModelVersion", &version),
        ("Min", &min.to_string()),
        ("Max", &max.to_string()),
    ]);
    let quotas = crate::quotas::Quotas::of(&state.config);
    let value = idempotency::run(&state.db, "StartModel", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let (_, m) = project_model(conn, &name, &version).await?;
            match models::hosting::begin_start(conn, &m, min, max, &quotas).await {
                Ok(true) => Ok(json!({ "Status": models::STARTING_HOSTING })),
                Ok(false) => Ok(json!({ "Status": m.status })),
                Err(StartError::Units(why)) => Err(ApiError::Validation(why)),
                Err(e @ StartError::TooManyUnits) => Err(ApiError::QuotaExceeded {
                    message: e.to_string(),
                    resource_id: version.clone(),
                    resource_type: ResourceType::Model,
                    quota_code: "inference-units".into(),
                }),
                Err(e @ StartError::NotTrained { .. }) => Err(conflict(m.version, e.to_string())),
                Err(e @ StartError::Quota(_)) => Err(ApiError::QuotaExceeded {
                    message: e.to_string(),
                    resource_id: version.clone(),
                    resource_type: ResourceType::Model,
                    quota_code: crate::quotas::HOSTED_MODELS.into(),
                }),
                Err(StartError::Db(e)) => Err(e.into()),
            }
        })
    })
    .await?;
    crate::jobs::wake(&state);
    Ok((StatusCode::ACCEPTED, Json(value)))
}

async fn stop_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_project(&name)?;
    check_version(&version, true)?;
    let token = idempotency::client_token(&headers)?;
    let hash = idempotency::params_hash(&[("ProjectName", &name), ("ModelVersion", &version)]);
    let value = idempotency::run(&state.db, "StopModel", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let (_, m) = project_model(conn, &name, &version).await?;
            if !matches!(m.status.as_str(), models::HOSTED | models::STARTING_HOSTING | models::HOSTING_FAILED) {
                return Err(conflict(m.version, format!("Model version {} is {}; only a hosted model can be stopped.", m.version, m.status)));
            }
            models::set_status(conn, &m.id, models::STOPPING_HOSTING, Some("Stopping the model.")).await?;
            Ok(json!({ "Status": models::STOPPING_HOSTING, "_stop": m.id }))
        })
    })
    .await?;
    let mut value = value;
    if let Some(Value::String(id)) = value.as_object_mut().and_then(|o| o.remove("_stop")) {
        let mut conn = state.db.pool.acquire().await?;
        models::hosting::stop(&state, &mut conn, &id).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(value)))
}

async fn detect_anomalies(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    check_version(&version, true)?;
    let ct = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let refused = if ct != "image/jpeg" && ct != "image/png" {
        Err(format!("ContentType must be image/jpeg or image/png, not {ct:?}."))
    } else {
        axum::body::to_bytes(body, MAX_IMAGE_BYTES)
            .await
            .map_err(|_| format!("The image is larger than {} MB.", MAX_IMAGE_BYTES / (1024 * 1024)))
    };
    let mut conn = state.db.pool.acquire().await?;
    let (_, m) = project_model(&mut conn, &name, &version).await?;
    drop(conn);
    if m.status != models::HOSTED {
        return Err(conflict(m.version, format!("Model version {} is {}; start it (StartModel) before calling DetectAnomalies.", m.version, m.status)));
    }
    let image = refused.map(Vec::from);
    match models::detect::detect(&state, &m, image, models::detect::Lane::Hosted, false).await {
        Ok(d) => Ok(Json(crate::lfv::detect_result(&d))),
        Err(e) => Err(detect_error(&m, e)),
    }
}

/// A detection's failure as LFV's error.
fn detect_error(m: &ModelVersion, e: models::hosting::DetectError) -> ApiError {
    use models::hosting::DetectError;
    match e {
        DetectError::Invalid(why) => ApiError::Validation(why),
        DetectError::Throttled => ApiError::Throttling { message: DetectError::Throttled.to_string(), retry_after_s: 1 },
        DetectError::NotHosted => conflict(m.version, format!("Model version {} is not hosted; start it (StartModel) before calling DetectAnomalies.", m.version)),
        e @ DetectError::NotTrained { .. } => conflict(m.version, e.to_string()),
        DetectError::Internal(e) => ApiError::Internal(anyhow::anyhow!("detection failed: {e}")),
    }
}

/// The model version an ARN names (tags are kept on model versions only, as in LFV).
async fn tagged_model(state: &AppState, conn: &mut AnyConnection, raw: &str) -> Result<ModelVersion, ApiError> {
    let not_found = || ApiError::NotFound {
        message: format!("No model has the ARN {raw}."),
        resource_id: raw.to_string(),
        resource_type: ResourceType::Model,
    };
    if raw.is_empty() || raw.len() > 1011 {
        return Err(ApiError::Validation("ResourceArn must have 1-1011 characters.".into()));
    }
    let (project_name, version) = models::parse_model_arn(raw).ok_or_else(|| ApiError::Validation(format!("{raw:?} is not a model ARN.")))?;
    let expected = models::model_arn(&state.config.region, &state.config.account_id, &project_name, version);
    if expected != raw {
        return Err(not_found());
    }
    let p = projects::find(conn, &project_name).await?.ok_or_else(not_found)?;
    models::find(conn, &p.id, &version.to_string()).await?.ok_or_else(not_found)
}

fn tag_list(tags: &[(String, String)]) -> Value {
    json!(tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>())
}

async fn list_tags_for_resource(State(state): State<AppState>, Path(arn): Path<String>) -> Result<Json<Value>, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    let m = tagged_model(&state, &mut conn, &arn).await?;
    Ok(Json(json!({ "Tags": tag_list(&models::tags(&mut conn, &m.id).await?) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceRequest {
    tags: Option<Vec<Tag>>,
}

async fn tag_resource(State(state): State<AppState>, Path(arn): Path<String>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let req: TagResourceRequest = parse_body(&body)?;
    let tags = validate_tags(&req.tags.ok_or_else(|| ApiError::Validation("Tags is required.".into()))?)?;
    let mut tx = state.db.begin_write().await?;
    let m = tagged_model(&state, &mut tx, &arn).await?;
    let existing = models::tags(&mut tx, &m.id).await?;
    let total = existing.iter().filter(|(k, _)| !tags.iter().any(|(t, _)| t == k)).count() + tags.len();
    if total > 200 {
        return Err(ApiError::QuotaExceeded {
            message: format!("A model can have at most 200 tags; this would make {total}."),
            resource_id: arn.clone(),
            resource_type: ResourceType::Model,
            quota_code: "tags-per-resource".into(),
        });
    }
    models::set_tags(&mut tx, &m.id, &tags).await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}

async fn untag_resource(State(state): State<AppState>, Path(arn): Path<String>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    // `tagKeys` repeats (`?tagKeys=a&tagKeys=b`), so the query is read as pairs, not as a map.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::Validation(format!("The query string is not valid: {e}.")))?;
    let keys: Vec<String> = pairs.into_iter().filter(|(k, _)| k == "tagKeys").map(|(_, v)| v).collect();
    if keys.len() > 200 {
        return Err(ApiError::Validation("At most 200 tag keys can be removed at once.".into()));
    }
    for k in &keys {
        validate_tag_key(k)?;
    }
    let mut tx = state.db.begin_write().await?;
    let m = tagged_model(&state, &mut tx, &arn).await?;
    models::remove_tags(&mut tx, &m.id, &keys).await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_lfv_patterns() {
        assert!(check_version("1", true).is_ok());
        assert!(check_version("latest", true).is_ok());
        assert!(check_version("latest", false).is_err());
        assert!(check_version("0", true).is_err());
        assert!(check_version("01", true).is_err());
        assert!(check_version("12345678901", true).is_err());
        assert!(check_version("1a", true).is_err());
    }

    #[test]
    fn tags_follow_lfv_rules() {
        let t = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
        assert!(validate_tags(&[t("team", "line 3"), t("a:b/c=d+e-f@g", "")]).is_ok());
        assert!(validate_tags(&[t("", "x")]).is_err());
        assert!(validate_tags(&[t("aws:owner", "x")]).is_err());
        assert!(validate_tags(&[t("k", "bad<value>")]).is_err());
        assert!(validate_tags(&[t(&"k".repeat(129), "x")]).is_err());
        let many: Vec<Tag> = (0..201).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(validate_tags(&many).is_err());
        assert_eq!(validate_tags(&[t("k", "1"), t("k", "2")]).unwrap(), vec![("k".to_string(), "2".to_string())]);
    }
}
