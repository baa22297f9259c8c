//! "Try it with sample data": a project made in one click from LFV's getting-started images, which ship inside
//! the binary as LFV-style archives (`server/samples/*.zip`, written by `server/scripts/make_samples.py`). The
//! archives go through the console's own archive import (`archive::start_import`), so a sample is imported,
//! labelled and checked exactly like a user's upload. Implements `app::api::first_run::FirstRunBackend`.

use super::archive::{start_import, temp_path};
use super::common::internal;
use crate::projects::{self, ProjectError};
use crate::state::AppState;
use app::api::first_run::FirstRunBackend;
use app::api::BackendError;

pub struct ConsoleFirstRun {
    pub state: AppState,
}

/// A sample's archives: (dataset type, archive bytes).
type Archives = [(&'static str, &'static [u8]); 2];

const COOKIES: Archives = [
    ("train", include_bytes!("../../samples/cookies-train.zip")),
    ("test", include_bytes!("../../samples/cookies-test.zip")),
];
const CIRCUITBOARD: Archives = [
    ("train", include_bytes!("../../samples/circuitboard-train.zip")),
    ("test", include_bytes!("../../samples/circuitboard-test.zip")),
];

/// Sample projects are named `{sample}-sample`, then `-2`, `-3`… when that name is taken.
const MAX_SAMPLE_PROJECTS: u32 = 50;

#[async_trait::async_trait]
impl FirstRunBackend for ConsoleFirstRun {
    async fn create_sample(&self, sample: &str) -> Result<String, BackendError> {
        let archives = match sample {
            "cookies" => COOKIES,
            "circuitboard" => CIRCUITBOARD,
            other => return Err(BackendError::invalid(format!("There is no sample called {other:?}; the samples are cookies and circuitboard."))),
        };
        let name = self.new_project(sample).await?;
        for (dataset_type, bytes) in archives {
            let path = temp_path(&self.state, ".zip").map_err(internal)?;
            tokio::fs::write(&path, bytes).await.map_err(internal)?;
            let display = format!("the {sample} sample ({dataset_type})");
            if let Err(e) = start_import(&self.state, &name, dataset_type, &path, &display).await {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        }
        tracing::info!(project = %name, sample, "sample project created; importing its datasets");
        Ok(name)
    }

    fn endpoint_and_region(&self) -> (Option<String>, String) {
        (None, self.state.config.region.clone())
    }
}

impl ConsoleFirstRun {
    /// Creates the sample's project under the first free name.
    async fn new_project(&self, sample: &str) -> Result<String, BackendError> {
        for n in 1..=MAX_SAMPLE_PROJECTS {
            let name = if n == 1 { format!("{sample}-sample") } else { format!("{sample}-sample-{n}") };
            let mut tx = self.state.db.begin_write().await.map_err(internal)?;
            match projects::create(&mut tx, &name, &crate::quotas::Quotas::of(&self.state.config)).await {
                Ok(_) => {
                    tx.commit().await.map_err(internal)?;
                    return Ok(name);
                }
                Err(ProjectError::Exists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BackendError::conflict(format!(
            "There are {MAX_SAMPLE_PROJECTS} {sample} sample projects already; delete some before making another."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Every shipped archive is a zip with one manifest whose references are its own files.
    #[test]
    fn shipped_archives_are_complete() {
        for (dataset_type, bytes) in COOKIES.iter().chain(CIRCUITBOARD.iter()) {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(*bytes)).unwrap();
            let names: Vec<String> = zip.file_names().map(str::to_string).collect();
            let manifest = format!("{dataset_type}.manifest");
            let mut text = String::new();
            zip.by_name(&manifest).unwrap().read_to_string(&mut text).unwrap();
            let mut labels = std::collections::HashSet::new();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                for key in ["source-ref", "anomaly-mask-ref"] {
                    if let Some(r) = v.get(key).and_then(|r| r.as_str()) {
                        assert!(names.iter().any(|n| n == r), "{r} is not in the {dataset_type} archive");
                    }
                }
                labels.insert(v["anomaly-label"].as_i64().unwrap());
            }
            assert_eq!(labels.len(), 2, "both labels in every sample dataset");
        }
    }
}
