//! The one detection path. DetectAnomalies, batches, trials and the console's try all go through [`detect`]:
//! a hosted model's inference units, or the version's trial lane, so every detection is decoded, thresholded,
//! bounded and counted (`/metrics`, the dashboard) the same way.

use super::hosting::{DetectError, Hosted};
use super::ModelVersion;
use crate::engine::Detection;
use crate::state::AppState;
use std::sync::Arc;

/// Which inference units a detection runs on, and what a full queue means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// DetectAnomalies: the hosted model's units; a full queue is refused (`ThrottlingException`).
    Hosted,
    /// A batch: the hosted model's units, waiting while the queue is full (line traffic comes first).
    Batch,
    /// A trial: the version's trial lane (hosted or not), waiting while its queue is full.
    Trial,
    /// The console's try: the trial lane; a full queue is refused.
    Try,
}

/// Runs one image. `image` is the body, or why it was refused before it got here (content type, size): a
/// refusal counts as an invalid image of the model, as a worker's would. `heat_map` adds the heat map (the
/// console's try and trials; LFV's answer has none, so the hot path never computes it).
pub async fn detect(state: &AppState, m: &ModelVersion, image: Result<Vec<u8>, String>, lane: Lane, heat_map: bool) -> Result<Detection, DetectError> {
    let units = match lane {
        Lane::Hosted | Lane::Batch => super::hosting::ensure_loaded(state, m).await?,
        Lane::Trial | Lane::Try => trial_lane(state, m).await?,
    };
    let bytes = image.map_err(|why| {
        units.count_invalid();
        DetectError::Invalid(why)
    })?;
    match lane {
        Lane::Hosted | Lane::Try => units.detect(bytes, heat_map).await,
        Lane::Batch | Lane::Trial => units.detect_waiting(bytes, heat_map).await,
    }
}

/// A version's trial lane, opened on first use: one inference unit with its own queue, sharing the hosted
/// model's memory when the version is hosted, otherwise loading its model file. Idle lanes close after
/// [`super::hosting::LANE_IDLE`].
async fn trial_lane(state: &AppState, m: &ModelVersion) -> Result<Arc<Hosted>, DetectError> {
    if let Some(l) = state.hosting.lane(&m.id) {
        return Ok(l);
    }
    if !(super::is_trained(&m.status) || super::is_hosting(&m.status)) || m.artifact_hash.is_none() {
        return Err(DetectError::NotTrained { version: m.version, status: m.status.clone() });
    }
    let model = match state.hosting.get(&m.id) {
        Some(h) => h.model().clone(),
        None => Arc::new(super::artifacts::load(state, m).await.map_err(|e| {
            tracing::error!(model = %m.id, error = format!("{e:#}"), "loading a model for a trial lane");
            DetectError::Internal(format!("{e:#}"))
        })?),
    };
    let threshold = m.threshold.or(m.trained_threshold).map(|t| t as f32).unwrap_or_else(|| model.threshold());
    let lane = Hosted::start((&m.id, &m.project_id, m.version), model, state.backbone.clone(), threshold, 1, 1, state.config.detect_queue_per_unit);
    Ok(state.hosting.insert_lane(lane))
}
