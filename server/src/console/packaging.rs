//! The console's model packaging: implements `app::api::packaging::PackagingBackend` over the same domain code
//! as the LFV API (`crate::packaging`), and `GET /packages/{project}/{job}.zip`, a succeeded job's package (the
//! version's model file beside the manifest and recipes the job kept) as a ZIP.

use super::common::{find_project, internal};
use crate::edge::package::MODEL_FILE;
use crate::packaging::config::JETSON_XAVIER;
use crate::packaging::{self, Arch, Greengrass, NewJob, PackagingError, PackagingJob, Target};
use crate::state::AppState;
use app::api::packaging::{PackageRequest, PackagingBackend, PackagingJobView};
use app::api::BackendError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

pub struct ConsolePackaging {
    pub state: AppState,
}

/// The console's jobs table shows this many of the project's newest jobs.
const LISTED: i64 = 100;

/// A refused packaging call, for the console: what the user can fix is a 400, a state conflict a 409.
impl From<PackagingError> for BackendError {
    fn from(e: PackagingError) -> Self {
        match e {
            PackagingError::Invalid(m) => BackendError::invalid(m.0),
            PackagingError::Output(_) => BackendError::invalid(e.to_string()),
            PackagingError::ModelNotFound { .. } | PackagingError::NotFound { .. } => BackendError::not_found(e.to_string()),
            PackagingError::NotTrained { .. } | PackagingError::Exists(_) => BackendError::conflict(e.to_string()),
            PackagingError::Db(e) => internal(e),
        }
    }
}

/// An optional text field: trimmed, `None` when empty.
fn optional(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The form's fields checked as the LFV API checks a request (the domain's rules are applied by `start`), in
/// the console's words: the form's labels, not the API's field names.
fn new_job(version: i64, r: PackageRequest) -> Result<NewJob, BackendError> {
    let invalid = |m: String| Err(BackendError::invalid(m));
    if version < 1 {
        return invalid(format!("{version} is not a model version."));
    }
    let job_name = optional(&r.job_name);
    if let Some(n) = job_name.as_deref().filter(|n| !packaging::valid_job_name(n)) {
        return invalid(format!("The job name {n:?} may have 1-64 letters, digits or hyphens (or leave it empty for a generated one)."));
    }
    let description = optional(&r.description);
    if description.as_deref().is_some_and(|d| !packaging::config::valid_description(d)) {
        return invalid("The description may have 1-256 letters, digits, spaces or -_.()':,;? characters.".into());
    }
    let component_name = r.component_name.trim().to_string();
    if component_name.is_empty() {
        return invalid("Give the component a name (letters, digits, hyphens, underscores or periods, for example com.example.cookies).".into());
    }
    let accelerator = r.accelerator.trim();
    let target = match r.target.trim() {
        JETSON_XAVIER => Target::Device { device: JETSON_XAVIER.into() },
        "X86_64" | "ARM64" => {
            let arch = if r.target.trim() == "ARM64" { Arch::Arm64 } else { Arch::X86_64 };
            match accelerator {
                "" => Target::Platform { arch, nvidia: false },
                "NVIDIA" => Target::Platform { arch, nvidia: true },
                a => return invalid(format!("The accelerator must be NVIDIA or none (the CPU), not {a:?}.")),
            }
        }
        "" => return invalid(format!("Choose a target: the device {JETSON_XAVIER}, or a Linux platform (X86_64 or ARM64).")),
        t => return invalid(format!("{t:?} is not a target: choose {JETSON_XAVIER}, X86_64 or ARM64.")),
    };
    let compiler_options = optional(&r.compiler_options);
    if let Some(o) = &compiler_options {
        if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(o).is_err() {
            return invalid(format!("The compiler options must be a JSON object, for example {{\"gpu-code\": \"sm_75\", \"trt-ver\": \"7.1.3\", \"cuda-ver\": \"10.2\"}}; {o:?} is not."));
        }
    }
    let bucket = r.bucket.trim().to_string();
    if bucket.is_empty() {
        return invalid("Give the S3 bucket the package's files are written to.".into());
    }
    if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        return invalid(format!("{bucket:?} is not a valid S3 bucket name."));
    }
    let prefix = r.prefix.trim().to_string();
    let key_ok = prefix.len() <= 1024
        && prefix.chars().enumerate().all(|(i, c)| c.is_ascii_alphanumeric() || "!_.*'()-".contains(c) || (i > 0 && c == '/'));
    if !key_ok {
        return invalid(format!("{prefix:?} is not a valid S3 key prefix (letters, digits, !_.*'()- and / after the first character)."));
    }
    let configuration = Greengrass {
        component_name,
        component_version: optional(&r.component_version),
        component_description: optional(&r.component_description),
        target,
        compiler_options,
        bucket,
        prefix,
        tags: Vec::new(),
    };
    configuration.check().map_err(PackagingError::from)?;
    Ok(NewJob { model_version: version.to_string(), job_name, description, configuration })
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Device { device } => device.clone(),
        Target::Platform { arch, nvidia } => format!("Linux {}{}", arch.as_str(), if *nvidia { " + NVIDIA" } else { " (CPU)" }),
    }
}

fn view(j: PackagingJob) -> PackagingJobView {
    let c = &j.configuration;
    PackagingJobView {
        component_name: c.component_name.clone(),
        component_version: j.output.as_ref().map(|o| o.component_version.clone()).or_else(|| c.component_version.clone()),
        target: target_text(&c.target),
        output: c.s3_prefix_uri(),
        component_arn: j.output.as_ref().map(|o| o.component_version_arn.clone()),
        job_name: j.job_name,
        model_version: j.model_version,
        description: j.description,
        status: j.status,
        status_message: j.status_message,
        created_at_ms: j.created_at,
    }
}

#[async_trait::async_trait]
impl PackagingBackend for ConsolePackaging {
    async fn jobs(&self, project: &str) -> Result<Vec<PackagingJobView>, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let p = find_project(&mut conn, project).await?;
        let jobs = packaging::list(&mut conn, &p, None, LISTED).await.map_err(internal)?;
        Ok(jobs.into_iter().map(view).collect())
    }

    async fn start(&self, project: &str, version: i64, request: PackageRequest) -> Result<String, BackendError> {
        let new = new_job(version, request)?;
        // The project and version first (the errors a user expects first), then the output location, outside
        // the transaction: an S3 round trip never holds the database's write lock (as the LFV API does).
        {
            let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
            let p = find_project(&mut conn, project).await?;
            packaging::packageable(&mut conn, &p, &new.model_version).await?;
        }
        packaging::check_output(&self.state.s3, &new.configuration).await?;
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let p = find_project(&mut tx, project).await?;
        let job = packaging::start(&mut tx, &p, new).await?;
        tx.commit().await.map_err(internal)?;
        crate::jobs::wake(&self.state);
        Ok(job.job_name)
    }
}

/// Why a package cannot be downloaded: the status and the words for it.
type Refusal = (StatusCode, String);

/// The files of a succeeded job's package: the model file (the version's blob) and the kept ones, with the ZIP's
/// name `<component>-<version>`.
async fn package_parts(state: &AppState, project: &str, job_name: &str) -> Result<(String, String, Vec<(&'static str, Vec<u8>)>), Refusal> {
    let not_found = || (StatusCode::NOT_FOUND, format!("The project {project} has no model packaging job named {job_name}."));
    let fail = |e: sqlx::Error| {
        tracing::error!(error = %e, "reading a packaging job for its download");
        (StatusCode::INTERNAL_SERVER_ERROR, "The package could not be read.".to_string())
    };
    if !packaging::valid_job_name(job_name) {
        return Err(not_found());
    }
    let mut conn = state.db.pool.acquire().await.map_err(fail)?;
    let p = find_project(&mut conn, project).await.map_err(|e| (StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND), e.message))?;
    let job = packaging::find(&mut conn, &p, job_name).await.map_err(fail)?.ok_or_else(not_found)?;
    let Some(out) = job.output.as_ref().filter(|_| job.status == packaging::SUCCEEDED) else {
        return Err((StatusCode::CONFLICT, format!("The packaging job {job_name} is {}; only a succeeded job has a package to download.", job.status)));
    };
    let kept = packaging::kept_files(&mut conn, &job.id).await.map_err(fail)?;
    let m = crate::models::find(&mut conn, &p.id, &job.model_version.to_string()).await.map_err(fail)?;
    drop(conn);
    let gone = || (StatusCode::CONFLICT, format!("The package of {job_name} is no longer complete (its model version changed); package the version again."));
    let hash = m.filter(|m| m.id == job.model_id).and_then(|m| m.artifact_hash).ok_or_else(gone)?;
    if kept.is_empty() {
        return Err(gone());
    }
    Ok((hash, format!("{}-{}", out.component_name, out.component_version), kept))
}

/// A fresh path for a temporary file in the data directory (same disk as the blobs).
fn temp_path(state: &AppState) -> std::io::Result<std::path::PathBuf> {
    let dir = state.config.data_dir.join("tmp");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{}.package.zip", hex::encode(rand::random::<[u8; 12]>()))))
}

/// Writes the package's ZIP (STORED entries: the model file does not shrink much, and the crate is built
/// without deflate) to `out`; the model file is checked against the manifest's SHA-256 on the way.
fn write_zip(model: &[u8], kept: &[(&'static str, Vec<u8>)], out: std::fs::File) -> anyhow::Result<()> {
    use std::io::Write;
    let manifest = kept.iter().find(|(n, _)| *n == crate::edge::package::MANIFEST_FILE).map(|(_, b)| b.as_slice());
    if let Some(m) = manifest {
        let m = crate::edge::package::parse_manifest(m).map_err(anyhow::Error::msg)?;
        crate::edge::package::check_file(&m, MODEL_FILE, model).map_err(anyhow::Error::msg)?;
    }
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(model.len() as u64 >= u32::MAX as u64);
    zip.start_file(MODEL_FILE, opts)?;
    zip.write_all(model)?;
    for (name, bytes) in kept {
        zip.start_file(*name, opts.large_file(false))?;
        zip.write_all(bytes)?;
    }
    zip.finish()?.flush()?;
    Ok(())
}

/// `GET /packages/{project}/{job}.zip`: a succeeded packaging job's four files (`model.vigil`,
/// `vigil-model.json`, `recipe.json`, `recipe.yaml`) as a ZIP named after the component and its version. The
/// job is looked up by project and name in the database; nothing from the path reaches the filesystem. The ZIP
/// is written to a temporary file on a blocking thread and streamed from it.
pub async fn download_package(State(state): State<AppState>, Path((project, file)): Path<(String, String)>) -> Response {
    let Some(job_name) = file.strip_suffix(".zip") else {
        return crate::web::json_status(StatusCode::NOT_FOUND, "No such package: the address ends with .zip.");
    };
    let (hash, name, kept) = match package_parts(&state, &project, job_name).await {
        Ok(parts) => parts,
        Err((status, message)) => return crate::web::json_status(status, &message),
    };
    let path = match temp_path(&state) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "package download: no temporary file");
            return crate::web::json_status(StatusCode::INTERNAL_SERVER_ERROR, "The package could not be written.");
        }
    };
    let blobs = state.blobs.clone();
    let build = move |f: std::fs::File| blobs.get(&hash).and_then(|model| write_zip(&model, &kept, f));
    match crate::web::zip_attachment(path, &name, build).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "package download failed");
            crate::web::json_status(StatusCode::INTERNAL_SERVER_ERROR, "The package could not be written.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(target: &str) -> PackageRequest {
        PackageRequest { component_name: "com.example.cookies".into(), target: target.into(), bucket: "out-bucket".into(), ..Default::default() }
    }

    #[test]
    fn the_form_is_checked_like_the_api() {
        let n = new_job(3, form("X86_64")).unwrap();
        assert_eq!(n.model_version, "3");
        assert_eq!(n.configuration.target, Target::Platform { arch: Arch::X86_64, nvidia: false });
        assert_eq!((n.job_name, n.configuration.component_version), (None, None));
        assert!(matches!(new_job(1, form(JETSON_XAVIER)).unwrap().configuration.target, Target::Device { .. }));
        let message = |r: PackageRequest| new_job(1, r).unwrap_err().message;
        assert!(message(form("")).contains("Choose a target"));
        assert!(message(form("RISCV")).contains("not a target"));
        assert!(message(PackageRequest { component_name: " ".into(), ..form("X86_64") }).contains("name"));
        assert!(message(PackageRequest { accelerator: "NVIDIA".into(), ..form("ARM64") }).contains("gpu-code"));
        assert!(message(PackageRequest { compiler_options: "{\"mcpu\": \"x\"}".into(), ..form(JETSON_XAVIER) }).contains("CompilerOptions"));
        assert!(message(PackageRequest { compiler_options: "gpu-code sm_75".into(), ..form("X86_64") }).contains("JSON object"));
        assert!(message(PackageRequest { component_version: "1.0".into(), ..form("X86_64") }).contains("ComponentVersion"));
        assert!(message(PackageRequest { bucket: String::new(), ..form("X86_64") }).contains("bucket"));
        assert!(message(PackageRequest { prefix: "/abs".into(), ..form("X86_64") }).contains("prefix"));
        assert!(message(PackageRequest { job_name: "a_b".into(), ..form("X86_64") }).contains("job name"));
        let gpu = PackageRequest {
            accelerator: "NVIDIA".into(),
            compiler_options: r#"{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}"#.into(),
            component_version: "2.0.1".into(),
            job_name: "edge-1".into(),
            ..form("X86_64")
        };
        let n = new_job(1, gpu).unwrap();
        assert_eq!(n.configuration.target, Target::Platform { arch: Arch::X86_64, nvidia: true });
        assert_eq!((n.job_name.as_deref(), n.configuration.component_version.as_deref()), (Some("edge-1"), Some("2.0.1")));
    }

    #[test]
    fn targets_in_words() {
        assert_eq!(target_text(&Target::Platform { arch: Arch::Arm64, nvidia: true }), "Linux ARM64 + NVIDIA");
        assert_eq!(target_text(&Target::Platform { arch: Arch::X86_64, nvidia: false }), "Linux X86_64 (CPU)");
        assert_eq!(target_text(&Target::Device { device: JETSON_XAVIER.into() }), JETSON_XAVIER);
    }
}
