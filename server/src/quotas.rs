//! Service quotas a single box can hold, answered as LFV's `ServiceQuotaExceededException` (402) by the API and as
//! a 402 with the same sentence in the console: projects per server, model versions per project, trainings queued
//! or running at once, hosted models per server (by memory) and temporary upload space. Configurable (`VIGIL_MAX_*`); the domain functions that
//! create or start things check them, so the API and the console meet the same limits.

/// The limits, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub projects: i64,
    pub model_versions_per_project: i64,
    pub queued_trainings: i64,
    pub hosted_models: i64,
    /// Bytes of `DATA_DIR/tmp` that uploads may take.
    pub temp_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { projects: 1000, model_versions_per_project: 1000, queued_trainings: 20, hosted_models: 16, temp_bytes: 32 << 30 }
    }
}

impl Quotas {
    pub fn of(config: &crate::config::Config) -> Quotas {
        Quotas {
            projects: config.max_projects,
            model_versions_per_project: config.max_model_versions,
            queued_trainings: config.max_queued_trainings,
            hosted_models: if config.max_hosted_models > 0 { config.max_hosted_models } else { hosted_models_for(memory_bytes()) },
            temp_bytes: config.max_temp_gb.saturating_mul(1 << 30),
        }
    }
}

/// One hosted model version per 2 GiB of memory (its model, its inference units' activations and the
/// server's own share), from 2 to 64; 16 when the memory is unknown.
pub fn hosted_models_for(memory: Option<u64>) -> i64 {
    match memory {
        Some(bytes) => ((bytes >> 31) as i64).clamp(2, 64),
        None => 16,
    }
}

/// The machine's memory (`MemTotal` of /proc/meminfo), where the system says; read once per process.
fn memory_bytes() -> Option<u64> {
    static MEMORY: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(read_memory_bytes)
}

fn read_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosted_models_by_memory() {
        assert_eq!(super::hosted_models_for(Some(24 << 30)), 12);
        assert_eq!(super::hosted_models_for(Some(1 << 30)), 2);
        assert_eq!(super::hosted_models_for(Some(1 << 40)), 64);
        assert_eq!(super::hosted_models_for(None), 16);
    }
}

/// The quota codes Vigil answers with (`QuotaCode` in LFV's error shape).
pub const PROJECTS: &str = "vigil-projects-per-server";
pub const MODEL_VERSIONS: &str = "vigil-model-versions-per-project";
pub const QUEUED_TRAININGS: &str = "vigil-trainings-queued-per-server";
pub const HOSTED_MODELS: &str = "vigil-hosted-models-per-server";
pub const TEMP_SPACE: &str = "vigil-temporary-upload-space";
