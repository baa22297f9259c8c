//! Server functions for model packaging (LFV's "Package for edge": a trained version as a Greengrass component),
//! and the `PackagingBackend` trait through which they reach the server crate. The package itself is downloaded
//! from a plain console route ([`download_path`]), not through a server function.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The console's packaging form, as typed (empty strings for fields left out); the server checks every field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRequest {
    /// Empty: the server makes one up from the project and version.
    pub job_name: String,
    pub description: String,
    pub component_name: String,
    /// Empty: `{version}.0.0`.
    pub component_version: String,
    pub component_description: String,
    /// [`TARGET_JETSON`], `X86_64` or `ARM64` (a Linux platform).
    pub target: String,
    /// `NVIDIA`, or empty for the CPU (a platform only).
    pub accelerator: String,
    /// JSON text, for a platform only (required with NVIDIA: `gpu-code`, `trt-ver`, `cuda-ver`).
    pub compiler_options: String,
    pub bucket: String,
    pub prefix: String,
}

/// LFV's only `TargetDevice`.
pub const TARGET_JETSON: &str = "jetson_xavier";

/// One packaging job in the console's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagingJobView {
    pub job_name: String,
    pub model_version: i64,
    pub description: Option<String>,
    pub component_name: String,
    /// The version asked for, or the default a started job was given.
    pub component_version: Option<String>,
    /// The target in words (`jetson_xavier`, `Linux ARM64 + NVIDIA`, …).
    pub target: String,
    /// `CREATED`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub status_message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// `s3://bucket/prefix/` the files were written to.
    pub output: String,
    /// The component version's ARN, once the job has succeeded.
    pub component_arn: Option<String>,
}

impl PackagingJobView {
    /// The job has not settled yet (the console polls until it has).
    pub fn unfinished(&self) -> bool {
        matches!(self.status.as_str(), "CREATED" | "RUNNING")
    }

    /// Where the package can be downloaded, once the job has succeeded.
    pub fn download(&self, project: &str) -> Option<String> {
        (self.status == "SUCCEEDED").then(|| download_path(project, &self.job_name))
    }
}

/// The console route that gives a succeeded job's package as a ZIP. Project and job names are URL-safe by
/// LFV's patterns; anything else is encoded anyway.
pub fn download_path(project: &str, job_name: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
    };
    format!("/packages/{}/{}.zip", enc(project), enc(job_name))
}

/// Whether a model version in `status` has a model file to package, and if not, why (in words).
pub fn packageable(status: &str) -> Result<(), String> {
    match status {
        "TRAINED" | "HOSTING_FAILED" | "STARTING_HOSTING" | "HOSTED" | "STOPPING_HOSTING" => Ok(()),
        "TRAINING" => Err("This version is still training: it can be packaged once it is trained.".into()),
        "TRAINING_FAILED" => Err("This version's training failed, so there is no model to package. Package a version that trained.".into()),
        other => Err(format!("This version is {}; only a trained or hosted version can be packaged.", other.replace('_', " ").to_lowercase())),
    }
}

#[cfg(feature = "ssr")]
pub use backend::{PackagingBackend, SharedPackagingBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use crate::api::BackendError;
    use std::sync::Arc;

    /// What the packaging server functions need from the server crate (provided as Leptos context).
    #[async_trait::async_trait]
    pub trait PackagingBackend: Send + Sync + 'static {
        /// The project's packaging jobs, newest first.
        async fn jobs(&self, project: &str) -> Result<Vec<PackagingJobView>, BackendError>;
        /// Starts packaging a model version; returns the job's name.
        async fn start(&self, project: &str, version: i64, request: PackageRequest) -> Result<String, BackendError>;
    }

    pub type SharedPackagingBackend = Arc<dyn PackagingBackend>;

    pub(crate) fn packaging_backend() -> Result<SharedPackagingBackend, ServerFnError> {
        // The console's own checks (a signed-in session) run in `backend()`.
        super::super::backend::backend()?;
        use_context::<SharedPackagingBackend>().ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

#[server]
pub async fn list_packaging_jobs(project: String) -> Result<Vec<PackagingJobView>, ServerFnError> {
    Ok(backend::packaging_backend()?.jobs(&project).await?)
}

#[server]
pub async fn start_packaging_job(project: String, version: i64, request: PackageRequest) -> Result<String, ServerFnError> {
    Ok(backend::packaging_backend()?.start(&project, version, request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_paths_and_states() {
        assert_eq!(download_path("cookies", "cookies-1-ab"), "/packages/cookies/cookies-1-ab.zip");
        assert_eq!(download_path("a b", "x/y"), "/packages/a%20b/x%2Fy.zip");
        assert!(packageable("TRAINED").is_ok() && packageable("HOSTED").is_ok());
        assert!(packageable("TRAINING").unwrap_err().contains("still training"));
        assert!(packageable("TRAINING_FAILED").is_err());
    }
}
