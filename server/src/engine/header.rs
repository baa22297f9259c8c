//! The model file's header: everything a model says about itself besides its tensors (backbone, input,
//! PatchCore settings, how its score is computed, threshold, labels, training summary). Fields added since
//! format 1 have serde defaults that reproduce the older behaviour (see `model_file`).

use super::backbone::Resize;
use super::gaussian::NormalScale;
use super::samples::AnomalyLabel;
use super::options::TrainOptions;
use super::threshold::{RankScale, ThresholdRule};
use serde::{Deserialize, Serialize};

/// Everything a model file says about the model besides its tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelHeader {
    pub format: String,
    pub format_version: u32,
    pub created_by: String,
    pub backbone: BackboneSpec,
    pub input: InputSpec,
    pub patchcore: PatchCoreSpec,
    pub score: ScoreSpec,
    pub threshold: f32,
    pub threshold_rule: ThresholdRule,
    /// The false-positive rate the threshold holds on normal images (rule `normal_quantile`).
    #[serde(default)]
    pub target_fpr: Option<f64>,
    pub confidence_scale: f32,
    /// Anomaly labels (segmentation); classes of the head are background followed by these.
    pub labels: Vec<AnomalyLabel>,
    pub background: AnomalyLabel,
    pub segmentation: bool,
    pub training: TrainingSummary,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackboneSpec {
    pub id: String,
    pub taps: Vec<String>,
    /// SHA-256 of the backbone file the model was trained with (models from before it was recorded: none).
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    /// How other sizes are handled.
    pub resize: String,
    /// Per-channel `(x / 255 − mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The resize filter (older models: the `image` crate's triangle filter).
    #[serde(default)]
    pub resize_filter: Resize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatchCoreSpec {
    pub embed_dim: i64,
    /// Dimensions of the nearest-neighbour search (PCA of normal patches), when fewer than `embed_dim`.
    #[serde(default)]
    pub knn_dim: Option<i64>,
    /// The search space has one more column: the norm of the PCA residual.
    #[serde(default)]
    pub pca_residual: bool,
    pub pool_kernel: i64,
    /// The 3×3 pooling counts the zero padding at the edges (`embedding::embed`); absent (older models): edge
    /// cells averaged over the valid cells only.
    #[serde(default)]
    pub pool_zero_pad: bool,
    /// Per-channel weights applied to every embedding (`embedding::tap_weights`); absent: unweighted.
    #[serde(default)]
    pub tap_weights: Option<Vec<f32>>,
    pub bank_size: i64,
    /// PatchCore's reweighting of the image score by the nearest bank row's neighbourhood of this many rows
    /// (`patchcore::MemoryBank::reweight`); 0 (older models): off.
    #[serde(default)]
    pub reweight_neighbours: usize,
    pub blur_sigma: f64,
    pub image_score: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoreSpec {
    /// `patchcore` (the image score is PatchCore's), `supervised` (the supervised score's position among the
    /// training out-of-fold scores), `blend` (`(1 − w) ·` PatchCore's position `+ w ·` the supervised one's) or,
    /// in older models, `rank_average` (the blend with `w = 0.5` and one refitted head).
    pub kind: String,
    /// Typical (median) out-of-fold PatchCore score of a normal training image; scales heat maps and the
    /// segmentation head's score input.
    pub patchcore_norm: f32,
    pub patchcore_ranks: Option<RankScale>,
    pub supervised_ranks: Option<RankScale>,
    /// `w` of the blend, chosen by out-of-fold AUROC.
    #[serde(default)]
    pub supervised_weight: Option<f32>,
    /// Weight of the Gaussian score in the unsupervised score (`gaussian::fuse`); absent or 0: the
    /// unsupervised score is PatchCore's raw score.
    #[serde(default)]
    pub gaussian_weight: Option<f32>,
    /// Normal scales of the PatchCore and Gaussian image scores (out-of-fold normal scores).
    #[serde(default)]
    pub patchcore_scale: Option<NormalScale>,
    #[serde(default)]
    pub gaussian_scale: Option<NormalScale>,
    /// The image heads take the pooled features followed by both image scores on their normal scales.
    #[serde(default)]
    pub head_stats: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub train_normal: usize,
    pub train_anomaly: usize,
    pub test_normal: usize,
    pub test_anomaly: usize,
    /// How the evaluation images were chosen: `test_set`, `held_out_split` or `cross_validation`.
    pub split: String,
    /// Ids of the images held out for evaluation (when split automatically).
    pub held_out: Vec<String>,
    pub folds: usize,
    pub seed: u64,
    pub oof_auroc_patchcore: Option<f64>,
    pub oof_auroc_supervised: Option<f64>,
    pub oof_auroc_combined: Option<f64>,
    pub supervised_used: bool,
    /// Out-of-fold AUROC of each blend weight tried (0 = PatchCore alone, 1 = supervised alone).
    #[serde(default)]
    pub oof_auroc_by_weight: Vec<(f32, Option<f64>)>,
    /// Out-of-fold AUROC of the Gaussian score alone, and of each fusion weight tried (labelled sets).
    #[serde(default)]
    pub oof_auroc_gaussian: Option<f64>,
    #[serde(default)]
    pub oof_auroc_by_gaussian_weight: Vec<(f32, Option<f64>)>,
    /// Input sizes tried and the best out-of-fold AUROC of the unsupervised scores at each.
    #[serde(default)]
    pub oof_auroc_by_input_size: Vec<((u32, u32), Option<f64>)>,
    /// Ledoit–Wolf shrinkage of the final Gaussian model.
    #[serde(default)]
    pub gaussian_shrinkage: Option<f64>,
    /// The mirror test's figures, when it ran (`mirror::mirror_test`).
    #[serde(default)]
    pub mirror_test: Option<MirrorTest>,
    /// The memory banks also hold the normal images mirrored (`bank_flips`) and turned (`bank_turns`).
    #[serde(default)]
    pub bank_flips: bool,
    #[serde(default)]
    pub bank_turns: bool,
    pub fit_seconds: f64,
    pub options: Option<TrainOptions>,
    /// Seconds per training stage (`options::StageClock`): mirror test, features, folds, heads, segmentation,
    /// final bank, evaluation.
    #[serde(default)]
    pub stage_seconds: Vec<(String, f64)>,
    /// How `confidence_scale` was set: `calibrated` (fitted to out-of-fold scores of labelled normal and
    /// anomalous images: the estimated probability that the verdict is right) or `normal_spread` (the median
    /// normal image at 0.95). `None`: models trained before it was recorded (`normal_spread`).
    #[serde(default)]
    pub confidence: Option<String>,
}


/// Do normal images still look normal mirrored or turned? A memory bank of half of (up to 48) normal training
/// images scores the other half as they are and in their views; the AUROC of the views' scores against the
/// plain ones is 0.5 when the views look as normal as the images, towards 1 when they look anomalous (the
/// surface has an orientation). A kind of view passes when its AUROC is within chance of 0.5 (at most its
/// limit, `folds::chance_limit`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MirrorTest {
    /// Normal images in the bank and probed.
    pub bank_images: usize,
    pub probed_images: usize,
    /// Views mirrored left–right, top–bottom, and both (the half turn).
    pub flip_auroc: Option<f64>,
    /// Views turned by 90° and 270°.
    pub turn_auroc: Option<f64>,
    /// The AUROC each kind of view may have and still pass.
    pub flip_limit: f64,
    pub turn_limit: f64,
}

impl MirrorTest {
    /// The mirrored views look like normal images.
    pub fn flips_pass(&self) -> bool {
        self.flip_auroc.is_some_and(|a| a <= self.flip_limit)
    }

    /// The turned views look like normal images.
    pub fn turns_pass(&self) -> bool {
        self.turn_auroc.is_some_and(|a| a <= self.turn_limit)
    }
}
