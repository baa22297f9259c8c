//! Service quotas a single box can hold, answered as LFV's `ServiceQuotaExceededException` (402) by the API and as
//! a 402 with the same sentence in the console: projects per server, model versions per project, trainings queued
//! or running at once, and hosted models per server. Configurable (`VIGIL_MAX_*`); the domain functions that
//! create or start things check them, so the API and the console meet the same limits.

/// The limits, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub projects: i64,
    pub model_versions_per_project: i64,
    pub queued_trainings: i64,
    pub hosted_models: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { projects: 1000, model_versions_per_project: 1000, queued_trainings: 20, hosted_models: 16 }
    }
}

impl Quotas {
    pub fn of(config: &crate::config::Config) -> Quotas {
        Quotas {
            projects: config.max_projects,
            model_versions_per_project: config.max_model_versions,
            queued_trainings: config.max_queued_trainings,
            hosted_models: config.max_hosted_models,
        }
    }
}

/// The quota codes Vigil answers with (`QuotaCode` in LFV's error shape).
pub const PROJECTS: &str = "vigil-projects-per-server";
pub const MODEL_VERSIONS: &str = "vigil-model-versions-per-project";
pub const QUEUED_TRAININGS: &str = "vigil-trainings-queued-per-server";
pub const HOSTED_MODELS: &str = "vigil-hosted-models-per-server";
