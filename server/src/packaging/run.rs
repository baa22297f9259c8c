//! The packaging job, run by a worker (`work.rs`): marks the job `RUNNING`, builds the package from the
//! version's model blob ([`crate::edge::package::build`]), writes its files to `s3://Bucket/Prefix/`, and
//! settles the job `SUCCEEDED` (with the component it made and the package's small files) or `FAILED` with a
//! message a user can act on. Re-running it from the start is safe: it writes the same keys again.

use super::{Output, CREATED, FAILED, RUNNING, SUCCEEDED};
use crate::db::now_ms;
use crate::edge::package::{self, Spec, MANIFEST_FILE, RECIPE_JSON, RECIPE_YAML};
use crate::s3::FetchError;
use crate::state::AppState;

/// What a succeeded job records.
struct Done {
    output: Output,
    message: String,
    manifest: String,
    recipe_json: String,
    recipe_yaml: String,
}

/// Runs the job `job_id` (a `model_packaging_job` row) to its end. A job whose row is gone (its model version
/// or project was deleted) or already settled does nothing.
pub async fn run(state: &AppState, job_id: &str) {
    let settled = match package(state, job_id).await {
        Ok(None) => return,
        Ok(Some(done)) => succeed(state, job_id, &done).await,
        Err(why) => fail(state, job_id, &why).await,
    };
    if let Err(e) = settled {
        tracing::error!(error = %e, job = %job_id, "could not settle a model packaging job");
    }
}

/// Settles a job that was claimed too often.
pub async fn give_up(state: &AppState, job_id: &str, why: &str) {
    if let Err(e) = fail(state, job_id, why).await {
        tracing::error!(error = %e, job = %job_id, "could not settle a model packaging job");
    }
}

fn internal(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "model packaging failed");
    "Vigil had an internal error while packaging the model; start a new model packaging job.".into()
}

/// Marks the job running and builds and writes the package; `Ok(None)` when there is nothing to do.
async fn package(state: &AppState, job_id: &str) -> Result<Option<Done>, String> {
    let mut conn = state.db.pool.acquire().await.map_err(internal)?;
    let claimed = sqlx::query(
        "update model_packaging_job set status = $1, status_message = $2, updated_at = $3 where id = $4 and status in ($5, $6)",
    )
    .bind(RUNNING)
    .bind("Packaging the model version.")
    .bind(now_ms())
    .bind(job_id)
    .bind(CREATED)
    .bind(RUNNING)
    .execute(&mut *conn)
    .await
    .map_err(internal)?;
    if claimed.rows_affected() == 0 {
        return Ok(None);
    }
    let Some(job) = super::find_by_id(&mut conn, job_id).await.map_err(internal)? else { return Ok(None) };
    let m = crate::models::find_by_id(&mut conn, &job.model_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| format!("Model version {} was deleted before it was packaged.", job.model_version))?;
    drop(conn);
    let hash = m.artifact_hash.clone().ok_or_else(|| format!("Model version {} has no model file; train a new version and package it.", m.version))?;
    let config = &job.configuration;
    let component_version = config.component_version.clone().unwrap_or_else(|| format!("{}.0.0", m.version));
    let target = config.target.edge_target();
    let note = target.note.clone();
    let spec = Spec {
        component_name: config.component_name.clone(),
        component_version: component_version.clone(),
        component_description: config.component_description.clone(),
        model_arn: crate::models::model_arn(&state.config.region, &state.config.account_id, &job.project_name, m.version),
        project_name: job.project_name.clone(),
        model_version: m.version,
        threshold: m.threshold.or(m.trained_threshold).map(|t| t as f32),
        target,
        s3_prefix_uri: config.s3_prefix_uri(),
    };
    let blobs = state.blobs.clone();
    let version = m.version;
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<(&'static str, Vec<u8>)>, String> {
        let bytes = blobs.get(&hash).map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "reading a model file to package");
            format!("The model file of version {version} could not be read; train a new version and package it.")
        })?;
        package::build(&spec, &bytes).map_err(|e| format!("Model version {version} could not be packaged: {e}."))
    })
    .await
    .map_err(internal)??;
    let prefix = config.prefix_dir();
    let text = |name: &str| files.iter().find(|(n, _)| *n == name).map(|(_, b)| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let (manifest, recipe_json, recipe_yaml) = (text(MANIFEST_FILE), text(RECIPE_JSON), text(RECIPE_YAML));
    let count = files.len();
    for (name, bytes) in files {
        let key = format!("{prefix}{name}");
        let content_type = match name.rsplit('.').next() {
            Some("json") => "application/json",
            Some("yaml") => "application/yaml",
            _ => "application/octet-stream",
        };
        state.s3.put(&config.bucket, &key, bytes, content_type).await.map_err(|e| {
            let why = match e {
                FetchError::NotFound => format!("the bucket {} does not exist", config.bucket),
                FetchError::AccessDenied => format!("Vigil may not write to the bucket {}", config.bucket),
                other => other.to_string(),
            };
            format!("Vigil could not write s3://{}/{key}: {why}. Check the S3OutputLocation and start a new model packaging job.", config.bucket)
        })?;
    }
    let output = Output {
        component_version_arn: super::component_arn(&state.config.region, &state.config.account_id, &config.component_name, &component_version),
        component_name: config.component_name.clone(),
        component_version: component_version.clone(),
    };
    let mut message = format!(
        "Model version {} is packaged as the Greengrass component {} {component_version}: {count} files in {}.",
        m.version,
        config.component_name,
        config.s3_prefix_uri()
    );
    if let Some(n) = note {
        message.push_str(&format!(" The package was {n}."));
    }
    Ok(Some(Done { output, message, manifest, recipe_json, recipe_yaml }))
}

async fn succeed(state: &AppState, job_id: &str, d: &Done) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update model_packaging_job set status = $1, status_message = $2, component_arn = $3, component_name = $4, \
         component_version = $5, manifest = $6, recipe_json = $7, recipe_yaml = $8, updated_at = $9 where id = $10",
    )
    .bind(SUCCEEDED)
    .bind(&d.message)
    .bind(&d.output.component_version_arn)
    .bind(&d.output.component_name)
    .bind(&d.output.component_version)
    .bind(&d.manifest)
    .bind(&d.recipe_json)
    .bind(&d.recipe_yaml)
    .bind(now_ms())
    .bind(job_id)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

async fn fail(state: &AppState, job_id: &str, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update model_packaging_job set status = $1, status_message = $2, updated_at = $3 where id = $4 and status <> $5")
        .bind(FAILED)
        .bind(why)
        .bind(now_ms())
        .bind(job_id)
        .bind(SUCCEEDED)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

