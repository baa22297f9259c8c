//! LFV's model packaging operations: StartModelPackagingJob, DescribeModelPackagingJob and
//! ListModelPackagingJobs. The request's fields are checked here against LFV's API model; the rules and the job
//! are in [`crate::packaging`].

use super::error::{ApiError, ResourceType};
use super::request::{epoch_seconds, parse_body, query_map};
use super::{fields, idempotency, paging};
use crate::packaging::config::{valid_description, JETSON_XAVIER};
use crate::packaging::{self, Arch, Greengrass, NewJob, PackagingError, PackagingJob, Target};
use crate::projects::{self, Project};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{projectName}/modelpackagingjobs", get(list_model_packaging_jobs).post(start_model_packaging_job))
        .route("/projects/{projectName}/modelpackagingjobs/{jobName}", get(describe_model_packaging_job))
}

impl From<PackagingError> for ApiError {
    fn from(e: PackagingError) -> Self {
        match e {
            PackagingError::Invalid(m) => ApiError::Validation(m.0),
            PackagingError::Output(_) => ApiError::Validation(e.to_string()),
            PackagingError::ModelNotFound { ref version, .. } => {
                ApiError::NotFound { message: e.to_string(), resource_id: version.clone(), resource_type: ResourceType::Model }
            }
            PackagingError::NotTrained { version, .. } => {
                ApiError::Conflict { message: e.to_string(), resource_id: version.to_string(), resource_type: ResourceType::Model }
            }
            PackagingError::Exists(ref name) => {
                ApiError::Conflict { message: e.to_string(), resource_id: name.clone(), resource_type: ResourceType::ModelPackageJob }
            }
            PackagingError::NotFound { ref job, .. } => {
                ApiError::NotFound { message: e.to_string(), resource_id: job.clone(), resource_type: ResourceType::ModelPackageJob }
            }
            PackagingError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct StartRequest {
    model_version: Option<String>,
    job_name: Option<String>,
    configuration: Option<ConfigurationIn>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationIn {
    greengrass: Option<GreengrassIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GreengrassIn {
    compiler_options: Option<String>,
    target_device: Option<String>,
    target_platform: Option<PlatformIn>,
    s3_output_location: Option<S3LocationIn>,
    component_name: Option<String>,
    component_version: Option<String>,
    component_description: Option<String>,
    tags: Option<Vec<super::models::Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PlatformIn {
    os: Option<String>,
    arch: Option<String>,
    accelerator: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3LocationIn {
    bucket: Option<String>,
    prefix: Option<String>,
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::Validation(m.into())
}

fn check_project(name: &str) -> Result<(), ApiError> {
    app::names::validate_project_name(name).map_err(ApiError::Validation)
}

fn check_job_name(n: &str) -> Result<(), ApiError> {
    if packaging::valid_job_name(n) {
        Ok(())
    } else {
        Err(invalid(format!("JobName {n:?} must have 1-64 letters, digits or hyphens.")))
    }
}

/// `TargetDevice` / `TargetPlatform`: exactly one, with LFV's enum values.
fn target(device: Option<String>, platform: Option<PlatformIn>) -> Result<Target, ApiError> {
    match (device, platform) {
        (Some(_), Some(_)) => Err(invalid("Give either TargetDevice or TargetPlatform, not both.")),
        (None, None) => Err(invalid(format!(
            "Give a TargetDevice ({JETSON_XAVIER}) or a TargetPlatform (Os LINUX, Arch X86_64 or ARM64, optional Accelerator NVIDIA)."
        ))),
        (Some(d), None) if d == JETSON_XAVIER => Ok(Target::Device { device: d }),
        (Some(d), None) => Err(invalid(format!("TargetDevice must be {JETSON_XAVIER}, not {d:?}."))),
        (None, Some(p)) => {
            match p.os.as_deref() {
                Some("LINUX") => {}
                None => return Err(invalid("TargetPlatform.Os is required (LINUX).")),
                Some(o) => return Err(invalid(format!("TargetPlatform.Os must be LINUX, not {o:?}."))),
            }
            let arch = match p.arch.as_deref() {
                Some("X86_64") => Arch::X86_64,
                Some("ARM64") => Arch::Arm64,
                None => return Err(invalid("TargetPlatform.Arch is required (X86_64 or ARM64).")),
                Some(a) => return Err(invalid(format!("TargetPlatform.Arch must be X86_64 or ARM64, not {a:?}."))),
            };
            let nvidia = match p.accelerator.as_deref() {
                None => false,
                Some("NVIDIA") => true,
                Some(a) => return Err(invalid(format!("TargetPlatform.Accelerator must be NVIDIA (or left out for the CPU), not {a:?}."))),
            };
            Ok(Target::Platform { arch, nvidia })
        }
    }
}

/// The request's fields checked against LFV's API model, as the domain's [`NewJob`].
fn new_job(req: StartRequest) -> Result<NewJob, ApiError> {
    let model_version = req.model_version.ok_or_else(|| invalid("ModelVersion is required."))?;
    let version_ok = (1..=10).contains(&model_version.len())
        && (model_version == "latest" || (!model_version.starts_with('0') && model_version.bytes().all(|b| b.is_ascii_digit())));
    if !version_ok {
        return Err(invalid(format!("ModelVersion must be a version number (1, 2, ...) or latest, not {model_version:?}.")));
    }
    if let Some(n) = &req.job_name {
        check_job_name(n)?;
    }
    if req.description.as_deref().is_some_and(|d| !valid_description(d)) {
        return Err(invalid("Description must have 1-256 letters, digits, spaces or -_.()':,;? characters."));
    }
    let g = req
        .configuration
        .and_then(|c| c.greengrass)
        .ok_or_else(|| invalid("Configuration.Greengrass is required: the component's name, its S3OutputLocation and its target."))?;
    let component_name = g.component_name.ok_or_else(|| invalid("Configuration.Greengrass.ComponentName is required."))?;
    let loc = g.s3_output_location.ok_or_else(|| {
        invalid("Configuration.Greengrass.S3OutputLocation is required: Vigil writes the component's files there.")
    })?;
    let bucket = loc.bucket.ok_or_else(|| invalid("S3OutputLocation.Bucket is required."))?;
    if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        return Err(invalid(format!("{bucket:?} is not a valid S3 bucket name.")));
    }
    let prefix = loc.prefix.unwrap_or_default();
    if !fields::is_s3_key(&prefix) {
        return Err(invalid(format!("{prefix:?} is not a valid S3 key prefix.")));
    }
    let tags = super::models::validate_tags(g.tags.as_deref().unwrap_or_default())?;
    let configuration = Greengrass {
        component_name,
        component_version: g.component_version,
        component_description: g.component_description,
        target: target(g.target_device, g.target_platform)?,
        compiler_options: g.compiler_options,
        bucket,
        prefix,
        tags,
    };
    configuration.check().map_err(PackagingError::from)?;
    Ok(NewJob { model_version, job_name: req.job_name, description: req.description, configuration })
}

async fn project(conn: &mut AnyConnection, name: &str) -> Result<Project, ApiError> {
    projects::find(conn, name).await?.ok_or_else(|| ApiError::project_not_found(name))
}

async fn start_model_packaging_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    let new = new_job(parse_body(&body)?)?;
    let token = idempotency::client_token(&headers)?;
    let config_text = serde_json::to_string(&new.configuration).map_err(anyhow::Error::from)?;
    let hash = idempotency::params_hash(&[
        ("ProjectName", &name),
        ("ModelVersion", &new.model_version),
        ("JobName", new.job_name.as_deref().unwrap_or("")),
        ("Description", new.description.as_deref().unwrap_or("")),
        ("Configuration", &config_text),
    ]);
    // The project and version first (cheap, and the errors a user expects first), then the output location,
    // outside the transaction: an S3 round trip never holds the database's write lock.
    {
        let mut conn = state.db.pool.acquire().await?;
        let p = project(&mut conn, &name).await?;
        packaging::packageable(&mut conn, &p, &new.model_version).await?;
    }
    packaging::check_output(&state.s3, &new.configuration).await?;
    let value = idempotency::run(&state.db, "StartModelPackagingJob", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let p = project(conn, &name).await?;
            let job = packaging::start(conn, &p, new).await?;
            Ok(json!({ "JobName": job.job_name }))
        })
    })
    .await?;
    crate::jobs::wake(&state);
    Ok(Json(value))
}

/// LFV's `ModelPackagingConfiguration`.
fn configuration_json(c: &Greengrass) -> Value {
    let mut loc = json!({ "Bucket": c.bucket });
    if !c.prefix.is_empty() {
        loc["Prefix"] = json!(c.prefix);
    }
    let mut g = json!({ "ComponentName": c.component_name, "S3OutputLocation": loc });
    if let Some(v) = &c.component_version {
        g["ComponentVersion"] = json!(v);
    }
    if let Some(d) = &c.component_description {
        g["ComponentDescription"] = json!(d);
    }
    if let Some(o) = &c.compiler_options {
        g["CompilerOptions"] = json!(o);
    }
    match &c.target {
        Target::Device { device } => g["TargetDevice"] = json!(device),
        Target::Platform { arch, nvidia } => {
            let mut p = json!({ "Os": "LINUX", "Arch": arch.as_str() });
            if *nvidia {
                p["Accelerator"] = json!("NVIDIA");
            }
            g["TargetPlatform"] = p;
        }
    }
    if !c.tags.is_empty() {
        g["Tags"] = json!(c.tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>());
    }
    json!({ "Greengrass": g })
}

/// LFV's `ModelPackagingJobMetadata`.
fn metadata(j: &PackagingJob) -> Value {
    let mut v = json!({
        "JobName": j.job_name,
        "ProjectName": j.project_name,
        "ModelVersion": j.model_version.to_string(),
        "ModelPackagingMethod": packaging::METHOD,
        "Status": j.status,
        "CreationTimestamp": epoch_seconds(j.created_at),
        "LastUpdatedTimestamp": epoch_seconds(j.updated_at),
    });
    if let Some(d) = &j.description {
        v["ModelPackagingJobDescription"] = json!(d);
    }
    if let Some(m) = &j.status_message {
        v["StatusMessage"] = json!(m);
    }
    v
}

/// LFV's `ModelPackagingDescription`.
fn description(j: &PackagingJob) -> Value {
    let mut v = metadata(j);
    v["ModelPackagingConfiguration"] = configuration_json(&j.configuration);
    if let Some(o) = &j.output {
        v["ModelPackagingOutputDetails"] = json!({ "Greengrass": {
            "ComponentVersionArn": o.component_version_arn,
            "ComponentName": o.component_name,
            "ComponentVersion": o.component_version,
        }});
    }
    v
}

async fn describe_model_packaging_job(
    State(state): State<AppState>,
    Path((name, job_name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    check_job_name(&job_name)?;
    let mut conn = state.db.pool.acquire().await?;
    let p = project(&mut conn, &name).await?;
    let j = packaging::find(&mut conn, &p, &job_name)
        .await?
        .ok_or_else(|| PackagingError::NotFound { project: name.clone(), job: job_name.clone() })?;
    Ok(Json(json!({ "ModelPackagingDescription": description(&j) })))
}

async fn list_model_packaging_jobs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    check_project(&name)?;
    let q = query_map(q.as_deref())?;
    let limit = paging::page_size(q.get("maxResults").map(String::as_str))?;
    let scope = format!("ListModelPackagingJobs\n{name}");
    let after = q.get("nextToken").filter(|t| !t.is_empty()).map(|t| paging::decode(&scope, t)).transpose()?;
    let mut conn = state.db.pool.acquire().await?;
    let p = project(&mut conn, &name).await?;
    let mut rows = packaging::list(&mut conn, &p, after.as_ref().map(|c| (c.created_at, c.id.as_str())), limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|j| paging::encode(&scope, &paging::Cursor { created_at: j.created_at, id: j.id.clone() }))
    } else {
        None
    };
    let mut body = json!({ "ModelPackagingJobs": rows.iter().map(metadata).collect::<Vec<_>>() });
    if let Some(n) = next {
        body["NextToken"] = json!(n);
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(v: Value) -> Result<NewJob, ApiError> {
        new_job(serde_json::from_value(v).unwrap())
    }

    fn greengrass(extra: Value) -> Value {
        let mut g = json!({ "ComponentName": "cookies.model", "S3OutputLocation": { "Bucket": "out-bucket", "Prefix": "edge" } });
        for (k, v) in extra.as_object().unwrap() {
            g[k] = v.clone();
        }
        json!({ "ModelVersion": "1", "Configuration": { "Greengrass": g } })
    }

    #[test]
    fn requests_are_checked_like_lfv() {
        let x86 = json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" } });
        let n = start(greengrass(x86.clone())).unwrap();
        assert_eq!(n.configuration.target, Target::Platform { arch: Arch::X86_64, nvidia: false });
        assert!(start(greengrass(json!({ "TargetDevice": "jetson_xavier" }))).is_ok());
        for bad in [
            json!({}),
            json!({ "TargetDevice": "jetson_xavier", "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" } }),
            json!({ "TargetDevice": "jetson_nano" }),
            json!({ "TargetPlatform": { "Os": "WINDOWS", "Arch": "X86_64" } }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "RISCV" } }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64", "Accelerator": "TPU" } }),
            json!({ "TargetDevice": "jetson_xavier", "CompilerOptions": "{\"mcpu\": \"x\"}" }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" }, "ComponentVersion": "1.0" }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" }, "ComponentName": "a b" }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" }, "S3OutputLocation": { "Bucket": "x" } }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" }, "S3OutputLocation": { "Bucket": "ok-bucket", "Prefix": "/abs" } }),
            json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" }, "Tags": [{ "Key": "aws:x", "Value": "y" }] }),
        ] {
            assert!(matches!(start(greengrass(bad.clone())), Err(ApiError::Validation(_))), "{bad}");
        }
        let mut v = greengrass(x86.clone());
        v["JobName"] = json!("a_b");
        assert!(start(v).is_err());
        let mut v = greengrass(x86.clone());
        v["ModelVersion"] = json!("0");
        assert!(start(v).is_err());
        let mut v = greengrass(x86.clone());
        v["Description"] = json!("x".repeat(257));
        assert!(start(v).is_err());
        let mut v = greengrass(x86);
        v["Configuration"]["Greengrass"].as_object_mut().unwrap().remove("S3OutputLocation");
        assert!(start(v).is_err());
        assert!(start(json!({ "ModelVersion": "1", "Configuration": {} })).is_err());
    }

    #[test]
    fn configuration_in_lfv_shape() {
        let n = start(greengrass(json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA" },
            "CompilerOptions": "{\"gpu-code\": \"sm_72\", \"trt-ver\": \"8.2.1\", \"cuda-ver\": \"10.2\"}",
            "Tags": [{ "Key": "line", "Value": "3" }] })))
        .unwrap();
        let v = configuration_json(&n.configuration);
        assert_eq!(v["Greengrass"]["TargetPlatform"], json!({ "Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA" }));
        assert_eq!(v["Greengrass"]["S3OutputLocation"], json!({ "Bucket": "out-bucket", "Prefix": "edge" }));
        assert_eq!(v["Greengrass"]["Tags"], json!([{ "Key": "line", "Value": "3" }]));
        assert!(v["Greengrass"].get("TargetDevice").is_none());
    }
}
