//! Server functions for model versions (train, follow, evaluate, threshold, host, try an image), and the
//! `ModelBackend` trait through which they reach the server crate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A training job's progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingProgress {
    pub stage: String,
    /// 0–1.
    pub fraction: f64,
    /// Estimated time left, ms.
    pub eta_ms: Option<i64>,
    /// Someone asked the training to stop; the worker stops it at the end of the step it is in.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// A model version in the project's table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub version: i64,
    pub status: String,
    pub status_message: Option<String>,
    pub description: Option<String>,
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub auroc: Option<f64>,
    pub created_at_ms: i64,
    pub training_ms: Option<i64>,
    pub tags: Vec<(String, String)>,
    pub progress: Option<TrainingProgress>,
}

/// The project page's model section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelsOverview {
    /// Why training cannot start yet; empty when it can.
    pub missing: Vec<String>,
    pub models: Vec<ModelSummary>,
}

/// One evaluated image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalImage {
    /// The file name as the user knows it (`anomaly/12.png`, or an upload's own name; never its hash folder).
    pub name: String,
    /// Blob of the image, for `/media/{hash}`.
    pub image: String,
    pub mask: Option<String>,
    pub anomalous: bool,
    pub score: f32,
}

/// Segmentation figures of one anomaly label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelRow {
    pub name: String,
    pub f1: f64,
    pub iou: f64,
    pub precision: f64,
    pub recall: f64,
    pub images: usize,
}

/// A model's evaluation as the model page draws it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalView {
    /// `test_set`, `held_out_split` or `cross_validation`.
    pub source: String,
    pub image_auroc: Option<f64>,
    pub average_precision: Option<f64>,
    pub pixel_auroc: Option<f64>,
    /// (false positive rate, true positive rate).
    pub roc: Vec<(f64, f64)>,
    /// (recall, precision).
    pub pr: Vec<(f64, f64)>,
    pub images: Vec<EvalImage>,
    pub labels: Vec<LabelRow>,
    /// Where the model rests on thin evidence, and what would help (the engine's `evidence_notes`).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Everything the model page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDetail {
    pub project: String,
    pub arn: String,
    pub summary: ModelSummary,
    /// The threshold in use, and the one training chose.
    pub threshold: Option<f64>,
    pub trained_threshold: Option<f64>,
    pub evaluation: Option<EvalView>,
    pub output: Option<String>,
    pub min_units: Option<i64>,
    pub max_units: Option<i64>,
    /// Detection workers running now (in-service inference units).
    pub workers: usize,
    /// The API's address as the browser reached it, for the copy-paste snippets.
    pub endpoint: String,
    /// Hosted models: how their recent scores compare with the validation scores.
    #[serde(default)]
    pub drift: Option<DriftView>,
}

/// Drift of a hosted model: its last 2 hours' scores against its validation scores (`models::drift`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftView {
    /// Detections in the window.
    pub images: u64,
    /// Normal validation scores behind the reference.
    pub reference: u64,
    /// Median of the window's scores, in validation spreads from the validation median.
    pub median_shift: f64,
    /// The shift in standard errors.
    pub statistic: f64,
    pub shifted: bool,
}

/// The result of trying one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TryResult {
    pub is_anomalous: bool,
    pub confidence: f64,
    pub score: f64,
    /// PNG data URL of the heat map in the console's colour scale (see `HEAT_SCALE`), at the image's aspect.
    pub heat_map: String,
    /// PNG data URL of the segmentation mask, if the model has one.
    pub mask: Option<String>,
    /// (label, colour, fraction of the image).
    pub anomalies: Vec<(String, String, f64)>,
}

/// One project on the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectActivity {
    pub project: String,
    /// Images DetectAnomalies processed over the time frame.
    pub processed: i64,
    /// Of those, found anomalous.
    pub anomalous: i64,
    /// Per bucket, oldest first: (processed, anomalous).
    pub series: Vec<(i64, i64)>,
}

/// The dashboard over a time frame: LFV's overview and per-project detections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The frame, in hours back from now.
    pub hours: i64,
    /// Hours per point of the series.
    pub bucket_hours: i64,
    /// Start of the first bucket (ms since the epoch).
    pub since_ms: i64,
    pub projects: Vec<ProjectActivity>,
    /// Model versions hosted now, across projects.
    pub hosted: i64,
    /// Hosted versions whose scores drifted (`project` and version), for the warning.
    #[serde(default)]
    pub drifting: Vec<(String, i64)>,
}

/// Time frames the dashboard offers (hours).
pub const DASHBOARD_FRAMES: [(i64, &str); 4] = [(24, "24 hours"), (24 * 7, "7 days"), (24 * 30, "30 days"), (24 * 90, "90 days")];

#[cfg(feature = "ssr")]
pub use backend::{ModelBackend, SharedModelBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use crate::api::BackendError;
    use std::sync::Arc;

    /// What the model pages' server functions need from the server crate (provided as Leptos context).
    #[async_trait::async_trait]
    pub trait ModelBackend: Send + Sync + 'static {
        async fn models(&self, project: &str) -> Result<ModelsOverview, BackendError>;
        /// Starts training a new model version; returns its number.
        async fn train(&self, project: &str, description: &str, bucket: &str, prefix: &str) -> Result<i64, BackendError>;
        /// Asks a training to stop. `true` when it stopped at once (no worker had started it), `false` when the
        /// worker was asked and stops it at the end of the step it is in.
        async fn cancel_training(&self, project: &str, version: i64) -> Result<bool, BackendError>;
        async fn model(&self, project: &str, version: i64) -> Result<ModelDetail, BackendError>;
        /// Saves the threshold in use; `None` restores the trained one.
        async fn set_threshold(&self, project: &str, version: i64, threshold: Option<f64>) -> Result<(), BackendError>;
        async fn start(&self, project: &str, version: i64, units: i64) -> Result<(), BackendError>;
        async fn stop(&self, project: &str, version: i64) -> Result<(), BackendError>;
        async fn delete(&self, project: &str, version: i64) -> Result<(), BackendError>;
        /// The model's heat map (a PNG data URL) of one image of its evaluation, named by its blob hash.
        async fn eval_heat_map(&self, project: &str, version: i64, image: &str) -> Result<String, BackendError>;
        /// Runs a trained model (hosted or not) on one image.
        async fn try_image(&self, project: &str, version: i64, image: Vec<u8>) -> Result<TryResult, BackendError>;
        /// DetectAnomalies activity over the last `hours` (one of `DASHBOARD_FRAMES`).
        async fn dashboard(&self, hours: i64) -> Result<Dashboard, BackendError>;
    }

    pub type SharedModelBackend = Arc<dyn ModelBackend>;

    pub(crate) fn model_backend() -> Result<SharedModelBackend, ServerFnError> {
        // The console's own checks (a signed-in session) run in `backend()`.
        super::super::backend::backend()?;
        use_context::<SharedModelBackend>().ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

#[server]
pub async fn get_models(project: String) -> Result<ModelsOverview, ServerFnError> {
    Ok(backend::model_backend()?.models(&project).await?)
}

#[server]
pub async fn train_model(project: String, description: String, bucket: String, prefix: String) -> Result<i64, ServerFnError> {
    Ok(backend::model_backend()?.train(&project, &description, &bucket, &prefix).await?)
}

/// `true` when the training stopped at once, `false` when the worker stops it at the end of its current step.
#[server]
pub async fn cancel_training(project: String, version: i64) -> Result<bool, ServerFnError> {
    Ok(backend::model_backend()?.cancel_training(&project, version).await?)
}

#[server]
pub async fn get_model(project: String, version: i64) -> Result<ModelDetail, ServerFnError> {
    Ok(backend::model_backend()?.model(&project, version).await?)
}

#[server]
pub async fn save_threshold(project: String, version: i64, threshold: Option<f64>) -> Result<(), ServerFnError> {
    Ok(backend::model_backend()?.set_threshold(&project, version, threshold).await?)
}

#[server]
pub async fn start_model(project: String, version: i64, units: i64) -> Result<(), ServerFnError> {
    Ok(backend::model_backend()?.start(&project, version, units).await?)
}

#[server]
pub async fn stop_model(project: String, version: i64) -> Result<(), ServerFnError> {
    Ok(backend::model_backend()?.stop(&project, version).await?)
}

#[server]
pub async fn delete_model(project: String, version: i64) -> Result<(), ServerFnError> {
    Ok(backend::model_backend()?.delete(&project, version).await?)
}

/// The heat map of one evaluated image (`image`: its blob hash), as a PNG data URL.
#[server]
pub async fn get_eval_heat_map(project: String, version: i64, image: String) -> Result<String, ServerFnError> {
    Ok(backend::model_backend()?.eval_heat_map(&project, version, &image).await?)
}

#[server]
pub async fn get_dashboard(hours: i64) -> Result<Dashboard, ServerFnError> {
    Ok(backend::model_backend()?.dashboard(hours).await?)
}

/// `image` is a data URL (`data:image/png;base64,...`) read in the browser.
#[server]
pub async fn try_image(project: String, version: i64, image: String) -> Result<TryResult, ServerFnError> {
    let b64 = image.split_once(',').map(|(_, b)| b).unwrap_or(&image);
    let bytes = decode_base64(b64).ok_or_else(|| ServerFnError::new("The image could not be read."))?;
    Ok(backend::model_backend()?.try_image(&project, version, bytes).await?)
}

/// Standard base64 without a dependency in the WASM bundle.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The heat maps' colour scale, shared by the server's PNGs and the console's legend: `(multiple of a normal
/// image's peak anomaly score, RGB, opacity)`, interpolated linearly, flat beyond both ends.
pub const HEAT_SCALE: [(f32, [u8; 3], f32); 5] = [
    (0.0, [49, 54, 149], 0.0),
    (0.5, [69, 117, 180], 0.25),
    (1.0, [254, 224, 144], 0.7),
    (1.5, [244, 109, 67], 0.9),
    (2.0, [165, 0, 38], 1.0),
];

/// The colour and opacity (0–255 each) of a heat map value on [`HEAT_SCALE`].
pub fn heat_colour(v: f32) -> [u8; 4] {
    let v = if v.is_finite() { v } else { 0.0 };
    let (first, last) = (HEAT_SCALE[0], HEAT_SCALE[HEAT_SCALE.len() - 1]);
    let (a, b, t) = if v <= first.0 {
        (first, first, 0.0)
    } else if v >= last.0 {
        (last, last, 0.0)
    } else {
        let i = HEAT_SCALE.windows(2).position(|w| v < w[1].0).unwrap_or(0);
        let (a, b) = (HEAT_SCALE[i], HEAT_SCALE[i + 1]);
        (a, b, (v - a.0) / (b.0 - a.0))
    };
    let mix = |x: f32, y: f32| (x + (y - x) * t).round().clamp(0.0, 255.0) as u8;
    [mix(a.1[0] as f32, b.1[0] as f32), mix(a.1[1] as f32, b.1[1] as f32), mix(a.1[2] as f32, b.1[2] as f32), mix(a.2 * 255.0, b.2 * 255.0)]
}

/// The scale as a CSS gradient, for the legend (opaque: the legend shows the colours, the PNG fades them).
pub fn heat_gradient() -> String {
    let last = HEAT_SCALE[HEAT_SCALE.len() - 1].0;
    let stops: Vec<String> = HEAT_SCALE.iter().map(|(v, c, _)| format!("rgb({},{},{}) {:.0}%", c[0], c[1], c[2], v / last * 100.0)).collect();
    format!("linear-gradient(to right, {})", stops.join(", "))
}

/// Confusion counts at a threshold: (true positives, false positives, true negatives, false negatives).
pub fn confusion(images: &[EvalImage], threshold: f64) -> (usize, usize, usize, usize) {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for i in images {
        match (i.anomalous, i.score as f64 >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
    }
    (tp, fp, tn, fn_)
}

/// Precision, recall and F1 from confusion counts (0 where undefined).
pub fn prf(tp: usize, fp: usize, fn_: usize) -> (f64, f64, f64) {
    let p = if tp + fp == 0 { 0.0 } else { tp as f64 / (tp + fp) as f64 };
    let r = if tp + fn_ == 0 { 0.0 } else { tp as f64 / (tp + fn_) as f64 };
    let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    (p, r, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("AQID").unwrap(), vec![1, 2, 3]);
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn heat_colours_follow_the_scale() {
        assert_eq!(heat_colour(0.0), [49, 54, 149, 0], "nothing unusual: transparent");
        assert_eq!(heat_colour(-1.0), heat_colour(0.0));
        assert_eq!(heat_colour(f32::NAN), heat_colour(0.0));
        assert_eq!(heat_colour(2.0), [165, 0, 38, 255], "twice a normal peak: opaque dark red");
        assert_eq!(heat_colour(9.0), heat_colour(2.0));
        // Half-way between the 1× and 1.5× stops.
        assert_eq!(heat_colour(1.25), [249, 167, 106, 204]);
        assert!(heat_gradient().starts_with("linear-gradient(to right, rgb(49,54,149) 0%"));
        assert!(heat_gradient().ends_with("rgb(165,0,38) 100%)"));
    }

    #[test]
    fn confusion_follows_the_threshold() {
        let img = |a: bool, s: f32| EvalImage { name: String::new(), image: String::new(), mask: None, anomalous: a, score: s };
        let images = vec![img(true, 0.9), img(true, 0.4), img(false, 0.5), img(false, 0.1)];
        assert_eq!(confusion(&images, 0.45), (1, 1, 1, 1));
        assert_eq!(confusion(&images, 0.3), (2, 1, 1, 0));
        let (p, r, f) = prf(2, 1, 0);
        assert!((p - 2.0 / 3.0).abs() < 1e-9 && r == 1.0 && (f - 0.8).abs() < 1e-9);
        assert_eq!(prf(0, 0, 0), (0.0, 0.0, 0.0));
    }
}
