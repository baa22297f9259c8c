//! Model packaging jobs (LFV's StartModelPackagingJob, DescribeModelPackagingJob, ListModelPackagingJobs): a
//! trained model version packaged as an AWS IoT Greengrass V2 component ([`crate::edge::package`]) by a
//! background job ([`run`]) that writes the package's files to an S3 output location. The configuration and its
//! rules, the checks made before a job is queued, and the queries are here; the HTTP adapter is `http/packaging.rs`.
//!
//! A job's row keeps the package's small files once it has succeeded (manifest, `recipe.json`, `recipe.yaml`):
//! with the version's model blob they are the whole package, so it can be offered again without reading S3.

pub mod config;
pub mod run;

pub use config::{Arch, Greengrass, Target};

use crate::db::{is_unique_violation, now_ms};
use crate::jobs::Job;
use crate::models::{self, ModelVersion};
use crate::projects::Project;
use sqlx::AnyConnection;

pub const CREATED: &str = "CREATED";
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
/// LFV's `ModelPackagingMethod`: the only one.
pub const METHOD: &str = "Greengrass";

/// Why a packaging call was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackagingError {
    #[error(transparent)]
    Invalid(#[from] config::InvalidConfig),
    #[error("The project {project} has no model version {version}.")]
    ModelNotFound { project: String, version: String },
    #[error("Model version {version} is {status}; only a trained model version can be packaged. {hint}")]
    NotTrained { version: i64, status: String, hint: &'static str },
    #[error("The project already has a model packaging job named {0}; choose another JobName.")]
    Exists(String),
    #[error("The project {project} has no model packaging job named {job}.")]
    NotFound { project: String, job: String },
    /// The output location cannot be written (why, naming the bucket).
    #[error("The S3OutputLocation cannot be used: {0}.")]
    Output(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One packaging job.
#[derive(Clone, Debug, PartialEq)]
pub struct PackagingJob {
    pub id: String,
    pub project_id: String,
    pub project_name: String,
    pub model_id: String,
    pub model_version: i64,
    pub job_name: String,
    pub description: Option<String>,
    pub configuration: Greengrass,
    pub status: String,
    pub status_message: Option<String>,
    /// Set once the job has succeeded.
    pub output: Option<Output>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The Greengrass component a job made (LFV's `GreengrassOutputDetails`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub component_version_arn: String,
    pub component_name: String,
    pub component_version: String,
}

/// What StartModelPackagingJob asks for, its fields checked.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub model_version: String,
    pub job_name: Option<String>,
    pub description: Option<String>,
    pub configuration: Greengrass,
}

/// The ARN of a Greengrass component version, in the account and Region of the server's other ARNs.
pub fn component_arn(region: &str, account: &str, name: &str, version: &str) -> String {
    format!("arn:aws:greengrass:{region}:{account}:components:{name}:versions:{version}")
}

/// LFV's `ModelPackagingJobName`: 1–64 of `[a-zA-Z0-9-]`.
pub fn valid_job_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A job name for a call without one: the project and version, and a random suffix (a project name's
/// underscores become hyphens; the whole fits LFV's pattern).
pub fn generate_job_name(project: &str, version: i64) -> String {
    let base: String = project.chars().take(36).map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("{base}-{version}-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// The model version a job would package: it must exist and have a model file (trained, or hosted).
pub async fn packageable(conn: &mut AnyConnection, project: &Project, version: &str) -> Result<ModelVersion, PackagingError> {
    let m = models::find(conn, &project.id, version)
        .await?
        .ok_or_else(|| PackagingError::ModelNotFound { project: project.name.clone(), version: version.to_string() })?;
    let has_file = m.artifact_hash.is_some() && (models::is_trained(&m.status) || models::is_hosting(&m.status));
    if !has_file {
        let hint = match m.status.as_str() {
            models::TRAINING => "Wait until its training has finished (DescribeModel shows TRAINED), then package it.",
            models::TRAINING_FAILED => "Its training failed; package a version that trained.",
            _ => "Package a version whose status is TRAINED or HOSTED.",
        };
        return Err(PackagingError::NotTrained { version: m.version, status: m.status.clone(), hint });
    }
    Ok(m)
}

/// Whether the job's output location can be written with the server's S3 client (before the job is queued,
/// so that a wrong bucket fails the call, not the job).
pub async fn check_output(s3: &crate::s3::S3, config: &Greengrass) -> Result<(), PackagingError> {
    s3.check_writable(&config.bucket, &config.prefix_dir()).await.map_err(PackagingError::Output)
}

/// StartModelPackagingJob: records the job `CREATED` and queues it, in the caller's transaction. Call
/// [`crate::jobs::wake`] after the commit.
pub async fn start(conn: &mut AnyConnection, project: &Project, new: NewJob) -> Result<PackagingJob, PackagingError> {
    new.configuration.check()?;
    let m = packageable(conn, project, &new.model_version).await?;
    let job_name = new.job_name.clone().unwrap_or_else(|| generate_job_name(&project.name, m.version));
    if find(conn, project, &job_name).await?.is_some() {
        return Err(PackagingError::Exists(job_name));
    }
    let mut configuration = new.configuration;
    configuration.component_version.get_or_insert_with(|| format!("{}.0.0", m.version));
    let config_json = serde_json::to_string(&configuration).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = now_ms();
    let inserted = sqlx::query(
        "insert into model_packaging_job (id, project_id, model_id, model_version, job_name, description, configuration, \
         status, status_message, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&id)
    .bind(&project.id)
    .bind(&m.id)
    .bind(m.version)
    .bind(&job_name)
    .bind(&new.description)
    .bind(&config_json)
    .bind(CREATED)
    .bind("The job is waiting for a worker.")
    .bind(now)
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(PackagingError::Exists(job_name)),
        other => other?,
    };
    crate::jobs::enqueue(conn, &Job::Package { job_id: id.clone() }).await?;
    find(conn, project, &job_name).await?.ok_or(PackagingError::Db(sqlx::Error::RowNotFound))
}

const COLUMNS: &str = "j.id, j.project_id, p.name, j.model_id, j.model_version, j.job_name, j.description, j.configuration, \
    j.status, j.status_message, j.component_arn, j.component_name, j.component_version, j.created_at, j.updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<PackagingJob, sqlx::Error> {
    use sqlx::Row;
    let config: String = r.try_get(7)?;
    let configuration = serde_json::from_str(&config).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let output = match (r.try_get::<Option<String>, _>(10)?, r.try_get::<Option<String>, _>(11)?, r.try_get::<Option<String>, _>(12)?) {
        (Some(arn), Some(name), Some(version)) => Some(Output { component_version_arn: arn, component_name: name, component_version: version }),
        _ => None,
    };
    Ok(PackagingJob {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        project_name: r.try_get(2)?,
        model_id: r.try_get(3)?,
        model_version: r.try_get(4)?,
        job_name: r.try_get(5)?,
        description: r.try_get(6)?,
        configuration,
        status: r.try_get(8)?,
        status_message: r.try_get(9)?,
        output,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
    })
}

/// A project's job by name.
pub async fn find(conn: &mut AnyConnection, project: &Project, job_name: &str) -> Result<Option<PackagingJob>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "select {COLUMNS} from model_packaging_job j join project p on p.id = j.project_id where j.project_id = $1 and j.job_name = $2"
    ))
    .bind(&project.id)
    .bind(job_name)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A job by id (the worker's view).
pub async fn find_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<PackagingJob>, sqlx::Error> {
    let row = sqlx::query(&format!("select {COLUMNS} from model_packaging_job j join project p on p.id = j.project_id where j.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of a project's jobs, newest first, after the key `(created_at, id)` of the previous page's last one.
pub async fn list(conn: &mut AnyConnection, project: &Project, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<PackagingJob>, sqlx::Error> {
    let (created, id) = after.unwrap_or((i64::MAX, ""));
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from model_packaging_job j join project p on p.id = j.project_id where j.project_id = $1 \
         and (j.created_at < $2 or (j.created_at = $2 and j.id < $3)) order by j.created_at desc, j.id desc limit $4"
    ))
    .bind(&project.id)
    .bind(created)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The package's small files a succeeded job kept: `(file name, bytes)` of the manifest and both recipes.
pub async fn kept_files(conn: &mut AnyConnection, id: &str) -> Result<Vec<(&'static str, Vec<u8>)>, sqlx::Error> {
    use crate::edge::package::{MANIFEST_FILE, RECIPE_JSON, RECIPE_YAML};
    let row: Option<(Option<String>, Option<String>, Option<String>)> =
        sqlx::query_as("select manifest, recipe_json, recipe_yaml from model_packaging_job where id = $1").bind(id).fetch_optional(&mut *conn).await?;
    let Some((Some(manifest), Some(json), Some(yaml))) = row else { return Ok(Vec::new()) };
    Ok(vec![(MANIFEST_FILE, manifest.into_bytes()), (RECIPE_JSON, json.into_bytes()), (RECIPE_YAML, yaml.into_bytes())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_fit_lfv() {
        for project in ["cookies", "line_3_parts", &"p".repeat(255)] {
            let n = generate_job_name(project, 12);
            assert!(valid_job_name(&n), "{n}");
        }
        assert_ne!(generate_job_name("a", 1), generate_job_name("a", 1));
        assert!(!valid_job_name("") && !valid_job_name("a_b") && !valid_job_name(&"a".repeat(65)));
    }

    #[test]
    fn component_arns() {
        assert_eq!(
            component_arn("us-east-1", "000000000000", "cookie.model", "1.0.0"),
            "arn:aws:greengrass:us-east-1:000000000000:components:cookie.model:versions:1.0.0"
        );
    }
}
