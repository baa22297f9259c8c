//! Training, detection and evaluation: the engine's public API (re-exported from `engine`).
//!
//! Pipeline of [`train`]:
//! 1. Input size from the training images (aspect kept, multiples of 32), features of every training image
//!    (PatchCore embedding, kept as f16, and pooled backbone features for the supervised image score).
//! 2. Stratified k-fold over the training images: for each fold a coreset memory bank from the other folds'
//!    normals scores the fold's images → out-of-fold (OOF) image scores and patch maps for every image.
//! 3. Supervised image score (logistic regression over pooled features, rank-averaged with PatchCore's) —
//!    only when there are enough labelled anomalies *and* it raises the OOF AUROC.
//! 4. Threshold on OOF scores (F1-optimal with ≥ 3 anomalies, else from normals), confidence scale.
//! 5. Segmentation head (when anomalies carry masks) on OOF patch maps + embeddings.
//! 6. Final memory bank from all training normals; evaluation on the test images (explicit test set, or a
//!    seeded stratified split when the set is large enough, else the OOF results).

use super::backbone::{Backbone, Features, BACKBONE_ID, S16_CHANNELS, S8_CHANNELS};
use super::coreset::{self, SplitMix64};
use super::metrics::{self, Confusion, CurvePoint, Histogram};
use super::patchcore::{self, MemoryBank, EMBED_DIM};
use super::segmentation::{self, FitOptions, LinearHead};
use super::threshold::{self, RankScale, ThresholdRule};
use super::{anomaly_map, artifact, image_io, Error, Result};
use base64::Engine as _;
use image::{RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Where an image (or mask) comes from. Files and bytes are decoded only when needed, one at a time, so
/// training on many large images holds only their features in memory.
#[derive(Clone, Debug)]
pub enum ImageSource {
    Decoded(Arc<RgbImage>),
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl ImageSource {
    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            ImageSource::File(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| Error::Io { path: p.display().to_string(), source: e }),
            ImageSource::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b.as_slice())),
            ImageSource::Decoded(_) => Err(Error::Shape("decoded image has no bytes".into())),
        }
    }

    fn describe(&self) -> String {
        match self {
            ImageSource::File(p) => p.display().to_string(),
            ImageSource::Bytes(_) => "image bytes".into(),
            ImageSource::Decoded(_) => "decoded image".into(),
        }
    }

    /// Decodes to upright 8-bit RGB (JPEG/PNG, 64–4096 px a side).
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            ImageSource::Decoded(img) => Ok((**img).clone()),
            _ => image_io::decode_rgb(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }

    /// Decodes a label mask to RGBA.
    pub fn load_mask(&self) -> Result<RgbaImage> {
        match self {
            ImageSource::Decoded(img) => Ok(image::DynamicImage::ImageRgb8((**img).clone()).to_rgba8()),
            _ => image_io::decode_mask(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }

    /// `(width, height)` without decoding pixels where possible.
    pub fn dimensions(&self) -> Result<(u32, u32)> {
        match self {
            ImageSource::Decoded(img) => Ok(img.dimensions()),
            _ => image_io::dimensions(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }
}

/// One labelled image.
#[derive(Clone, Debug)]
pub struct Sample {
    /// A name for reports (file name, source-ref, ...).
    pub id: String,
    pub image: ImageSource,
    /// `true` = anomaly, `false` = normal.
    pub anomalous: bool,
    /// Label mask in the labels' colours (LFV format), for anomalous images of segmentation projects.
    pub mask: Option<ImageSource>,
}

/// An anomaly type of a segmentation project. `name` should be alphanumeric (LFV's rule for `Anomalies.Name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyLabel {
    pub name: String,
    /// `#RRGGBB`
    pub color: String,
}

/// What to train on.
#[derive(Clone, Debug, Default)]
pub struct TrainSet {
    pub train: Vec<Sample>,
    /// An explicit test set (LFV's "separate training and test datasets"); `None` = split automatically.
    pub test: Option<Vec<Sample>>,
    /// Anomaly labels with their mask colours, for segmentation; empty for classification projects.
    pub labels: Vec<AnomalyLabel>,
}

/// Training settings. `Default` is what Vigil uses; each is a knob for experiments and the CLI.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Long side of the model's input in px (rounded to a multiple of 32). `None`: 40 % of the training
    /// images' long side, clamped to 256–640.
    pub input_long_side: Option<u32>,
    /// Fraction of normal patches kept by the coreset.
    pub coreset_ratio: f64,
    /// Cap on the memory bank (rows); bounds detection time and memory.
    pub max_bank: usize,
    /// Cap on the patches the coreset chooses from (a seeded random subset beyond it); bounds fit time and
    /// memory for large training sets.
    pub max_candidates: usize,
    /// Dimension of the random projection used by the coreset selection.
    pub projection_dim: i64,
    /// Principal components kept for the nearest-neighbour search (`None`: all 152 feature channels).
    pub knn_dim: Option<i64>,
    /// Folds for out-of-fold scores.
    pub folds: usize,
    /// Fraction held out for evaluation when no test set is given (only when there are at least 20 normal and
    /// 10 anomalous images, LFV's minimum for a single dataset; otherwise the evaluation is cross-validated).
    pub test_fraction: f64,
    pub seed: u64,
    /// Allow the supervised image-level score (it is still only used when cross-validation shows it helps).
    pub supervised: bool,
    /// Train a segmentation head when anomalies have masks.
    pub segmentation: bool,
    /// Images per backbone forward pass while training.
    pub batch_size: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            input_long_side: None,
            coreset_ratio: 0.1,
            max_bank: 2048,
            max_candidates: 200_000,
            projection_dim: 32,
            knn_dim: Some(64),
            folds: 4,
            test_fraction: 0.2,
            seed: 17,
            supervised: true,
            segmentation: true,
            batch_size: 8,
        }
    }
}

/// Training progress, for progress bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Extracting features of training images.
    Features,
    /// Out-of-fold memory banks and scores.
    CrossValidation,
    /// The supervised heads.
    Heads,
    /// The final memory bank.
    MemoryBank,
    /// Scoring the test images.
    Evaluation,
}

#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// One anomaly type in a detection (LFV `Anomaly`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Anomaly {
    pub name: String,
    pub pixel_anomaly: PixelAnomaly,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PixelAnomaly {
    /// Fraction 0–1 of the image (LFV's name says percentage; its values are fractions).
    pub total_percentage_area: f32,
    pub color: String,
}

/// The result of one detection.
#[derive(Clone, Debug)]
pub struct Detection {
    pub is_anomalous: bool,
    /// Confidence in the verdict (LFV's meaning), 0.5 at the threshold.
    pub confidence: f32,
    /// The model's anomaly score (compared with `Model::threshold`).
    pub score: f32,
    /// Segmentation models: `background` first, then each anomaly type found.
    pub anomalies: Option<Vec<Anomaly>>,
    /// Segmentation models: PNG the size of the input image, each anomaly type in its colour.
    pub anomaly_mask: Option<Vec<u8>>,
    /// Heat map at the model's input size, row-major, `heat_width × heat_height`: PatchCore patch distance
    /// divided by the model's typical normal image score (≈ 1 on the most unusual spot of a normal image).
    pub heat_map: Vec<f32>,
    pub heat_width: u32,
    pub heat_height: u32,
}

impl Detection {
    /// LFV's `DetectAnomalies` response body: `{"DetectAnomalyResult": {...}}` with PascalCase fields;
    /// `Anomalies` and `AnomalyMask` (base64 PNG) only for segmentation models.
    pub fn to_lfv_json(&self) -> serde_json::Value {
        let mut r = serde_json::json!({
            "Source": {"Type": "direct"},
            "IsAnomalous": self.is_anomalous,
            "Confidence": self.confidence,
        });
        if let Some(a) = &self.anomalies {
            r["Anomalies"] = serde_json::to_value(a).unwrap_or_default();
        }
        if let Some(m) = &self.anomaly_mask {
            r["AnomalyMask"] = base64::engine::general_purpose::STANDARD.encode(m).into();
        }
        serde_json::json!({ "DetectAnomalyResult": r })
    }

    /// The heat map as an 8-bit grayscale image (0 = nothing unusual, 255 = twice a normal image's peak).
    pub fn heat_map_image(&self) -> image::GrayImage {
        image::GrayImage::from_fn(self.heat_width, self.heat_height, |x, y| {
            let v = self.heat_map[(y * self.heat_width + x) as usize];
            image::Luma([(v / 2.0 * 255.0).clamp(0.0, 255.0) as u8])
        })
    }
}

/// Per-image result of an evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageResult {
    pub id: String,
    pub anomalous: bool,
    pub predicted_anomalous: bool,
    pub score: f32,
    pub confidence: f32,
}

/// Segmentation figures of one label (LFV's `PixelAnomalyClassMetrics`), pooled over evaluated pixels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelMetrics {
    pub name: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub iou: f64,
    /// Evaluated images where the label is present in the ground truth.
    pub images: usize,
}

/// An evaluation: LFV's `Performance` and evaluation result, plus curves and per-image results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// `test_set`, `held_out_split` or `cross_validation` (out-of-fold scores of the training images).
    pub source: String,
    pub n_normal: usize,
    pub n_anomaly: usize,
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub image_auroc: Option<f64>,
    pub average_precision: Option<f64>,
    pub roc: Vec<CurvePoint>,
    pub pr: Vec<CurvePoint>,
    pub histogram: Histogram,
    pub images: Vec<ImageResult>,
    /// Pixel AUROC of the heat map over images with masks (normal images count as all background).
    pub pixel_auroc: Option<f64>,
    /// Pixel AUROC of the segmentation head's anomaly probability (1 − P(background)).
    pub segmentation_pixel_auroc: Option<f64>,
    pub labels: Vec<LabelMetrics>,
    pub mean_iou: Option<f64>,
}

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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatchCoreSpec {
    pub embed_dim: i64,
    /// Dimensions of the nearest-neighbour search (PCA of normal patches), when fewer than `embed_dim`.
    #[serde(default)]
    pub knn_dim: Option<i64>,
    pub pool_kernel: i64,
    pub bank_size: i64,
    pub blur_sigma: f64,
    pub image_score: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoreSpec {
    /// `patchcore` (the image score is PatchCore's) or `rank_average` (mean of PatchCore's and the
    /// supervised score's positions among the training out-of-fold scores).
    pub kind: String,
    /// Typical (median) out-of-fold PatchCore score of a normal training image; scales heat maps and the
    /// segmentation head's score input.
    pub patchcore_norm: f32,
    pub patchcore_ranks: Option<RankScale>,
    pub supervised_ranks: Option<RankScale>,
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
    pub fit_seconds: f64,
    pub options: Option<TrainOptions>,
}

/// A trained model.
pub struct Model {
    pub header: ModelHeader,
    bank: MemoryBank,
    seg_head: Option<LinearHead>,
    image_head: Option<LinearHead>,
}

// SAFETY: `tch::Tensor` is `Send` but not `Sync` because a tensor *can* be mutated in place through a shared
// handle. A `Model`'s tensors (memory bank, PCA, head weights) are created when it is trained or loaded and never
// mutated afterwards: every method takes `&self` and only reads them (out-of-place ops under `no_grad`, which do
// not touch autograd state), and libtorch's reference counts are atomic. Concurrent detections with one model
// from several threads are therefore sound, as in PyTorch's multi-threaded inference on shared weights.
unsafe impl Sync for Model {}

/// Pooled backbone features for the supervised image score: mean and max of the stride-16 map, mean of the
/// stride-8 map. `Features` → `(B, 264)`.
pub fn pooled_features(f: &Features) -> Result<Tensor> {
    tch::no_grad(|| {
        let m16 = f.s16.f_mean_dim([2i64, 3].as_slice(), false, Kind::Float)?;
        let x16 = f.s16.f_amax([2, 3], false)?;
        let m8 = f.s8.f_mean_dim([2i64, 3].as_slice(), false, Kind::Float)?;
        Ok(Tensor::f_cat(&[m16, x16, m8], 1)?)
    })
}

pub const POOLED_DIM: i64 = 2 * S16_CHANNELS + S8_CHANNELS;

/// Chooses the input size: long side `long` (or 40 % of the image's, clamped to 256–640), short side in
/// proportion, both multiples of 32 (at least 64).
pub fn choose_input_size(width: u32, height: u32, long: Option<u32>) -> (u32, u32) {
    let native_long = width.max(height).max(1);
    let long = long.unwrap_or(((native_long as f64 * 0.4) as u32).clamp(256, 640));
    let r32 = |v: f64| (((v / 32.0).round() as u32) * 32).max(64);
    let long_px = r32(long as f64);
    let short_px = r32(long_px as f64 * width.min(height) as f64 / native_long as f64);
    if width >= height {
        (long_px, short_px)
    } else {
        (short_px, long_px)
    }
}

/// Features of one training image kept during training.
struct Item {
    /// `(D, h, w)` f16
    embedding: Tensor,
    /// `(264,)`
    pooled: Tensor,
}

fn extract(
    backbone: &Backbone,
    samples: &[&Sample],
    width: u32,
    height: u32,
    batch: usize,
    mut tick: impl FnMut(usize),
) -> Result<Vec<Item>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(batch.max(1)) {
        let mut inputs = Vec::with_capacity(chunk.len());
        for s in chunk {
            let img = s.image.load()?;
            inputs.push(Backbone::preprocess(&img, width, height)?);
        }
        let x = Tensor::f_cat(&inputs, 0)?;
        let f = backbone.forward(&x)?;
        let e = patchcore::embed(&f)?.f_to_kind(Kind::Half)?;
        let p = pooled_features(&f)?;
        for i in 0..chunk.len() as i64 {
            out.push(Item { embedding: e.f_get(i)?, pooled: p.f_get(i)? });
        }
        tick(out.len());
    }
    Ok(out)
}

/// Builds a coreset memory bank from embeddings `(D, h, w)` of normal images (in PCA space when given).
fn build_bank(embeddings: &[&Tensor], opts: &TrainOptions, seed: u64, pca: Option<&patchcore::Pca>) -> Result<MemoryBank> {
    tch::no_grad(|| {
        let mut rows = Vec::with_capacity(embeddings.len());
        for e in embeddings {
            let r = patchcore::to_rows(&e.f_unsqueeze(0)?)?;
            rows.push(match pca {
                Some(p) => p.apply(&r)?,
                None => r,
            });
        }
        let mut all = Tensor::f_cat(&rows, 0)?.f_to_kind(Kind::Float)?;
        drop(rows);
        let n = all.size()[0] as usize;
        let mut rng = SplitMix64::new(seed);
        if n > opts.max_candidates {
            let mut idx: Vec<i64> = (0..n as i64).collect();
            rng.shuffle(&mut idx);
            idx.truncate(opts.max_candidates);
            idx.sort_unstable();
            all = all.f_index_select(0, &Tensor::f_from_slice(&idx)?)?;
        }
        let n = all.size()[0] as usize;
        let k = ((n as f64 * opts.coreset_ratio).ceil() as usize).clamp(1, opts.max_bank.max(1));
        let picks = if k >= n {
            (0..n as i64).collect()
        } else {
            let proj = coreset::random_projection(all.size()[1], opts.projection_dim.max(1), seed ^ 0x5EED)?;
            let projected = all.f_matmul(&proj)?;
            coreset::greedy_k_center(&projected, k, rng.below(n))?
        };
        let bank = all.f_index_select(0, &Tensor::f_from_slice(&picks)?)?;
        MemoryBank::new(bank, pca.cloned())
    })
}

/// Seeded stratified assignment of `labels` to `k` folds (round-robin over a shuffled order per class).
fn assign_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut fold = vec![0; labels.len()];
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        for (j, i) in idx.into_iter().enumerate() {
            fold[i] = j % k.max(1);
        }
    }
    fold
}

/// Rows for the segmentation head: embedding `(D, h, w)` (f16) and patch score map `(h, w)` → `(h·w, D + 1)`.
fn seg_rows(embedding: &Tensor, patch_map: &Tensor, norm: f32) -> Result<Tensor> {
    let e = embedding.f_to_kind(Kind::Float)?;
    let s = patch_map.f_to_kind(Kind::Float)?.f_div_scalar(norm as f64)?.f_unsqueeze(0)?;
    let x = Tensor::f_cat(&[e, s], 0)?.f_unsqueeze(0)?;
    patchcore::to_rows(&x)
}

fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(&t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?)
}

/// Trains a model. Synchronous and CPU-bound: call it on a blocking thread. `progress` is called often with
/// the current stage. Returns the model and its evaluation.
pub fn train(
    backbone: &Backbone,
    set: &TrainSet,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, Evaluation)> {
    let started = Instant::now();
    for l in &set.labels {
        if segmentation::parse_hex_color(&l.color).is_none() {
            return Err(Error::Input(format!("label {:?} has colour {:?}; expected #RRGGBB", l.name, l.color)));
        }
    }
    // Split.
    let (train_samples, test_samples, split, held_out): (Vec<&Sample>, Vec<&Sample>, &str, Vec<String>) = match &set.test {
        Some(test) => (set.train.iter().collect(), test.iter().collect(), "test_set", Vec::new()),
        None => {
            let n_norm = set.train.iter().filter(|s| !s.anomalous).count();
            let n_anom = set.train.len() - n_norm;
            if n_norm >= 20 && n_anom >= 10 && opts.test_fraction > 0.0 {
                let labels: Vec<bool> = set.train.iter().map(|s| s.anomalous).collect();
                let k = (1.0 / opts.test_fraction).round().max(2.0) as usize;
                let folds = assign_folds(&labels, k, opts.seed ^ 0x7E57);
                let (mut tr, mut te) = (Vec::new(), Vec::new());
                for (s, f) in set.train.iter().zip(folds) {
                    if f == 0 {
                        te.push(s)
                    } else {
                        tr.push(s)
                    }
                }
                let ids = te.iter().map(|s| s.id.clone()).collect();
                (tr, te, "held_out_split", ids)
            } else {
                (set.train.iter().collect(), Vec::new(), "cross_validation", Vec::new())
            }
        }
    };
    let labels: Vec<bool> = train_samples.iter().map(|s| s.anomalous).collect();
    let n_norm = labels.iter().filter(|&&y| !y).count();
    let n_anom = labels.len() - n_norm;
    if n_norm < 2 {
        return Err(Error::Input(format!("training needs at least 2 normal images; got {n_norm}")));
    }

    // Input size from the most common training image size.
    let mut sizes = std::collections::BTreeMap::new();
    for s in &train_samples {
        *sizes.entry(s.image.dimensions()?).or_insert(0usize) += 1;
    }
    let (&(w0, h0), _) = sizes.iter().max_by_key(|(_, &c)| c).ok_or_else(|| Error::Input("no training images".into()))?;
    let (width, height) = choose_input_size(w0, h0, opts.input_long_side);

    // 1. Features (a couple of passes first: libtorch's first passes at a new size are slow).
    backbone.warm_up(width, height, 2)?;
    let total = train_samples.len();
    progress(Progress { stage: Stage::Features, done: 0, total });
    let items = extract(backbone, &train_samples, width, height, opts.batch_size, |done| {
        progress(Progress { stage: Stage::Features, done, total })
    })?;

    tracing::debug!(secs = started.elapsed().as_secs_f64(), "features extracted");
    // PCA of normal patches for the nearest-neighbour search (at most 50,000 rows, seeded).
    let pca = match opts.knn_dim {
        Some(kd) if kd > 0 && kd < EMBED_DIM => {
            let mut rows = Vec::new();
            for i in (0..total).filter(|&i| !labels[i]) {
                rows.push(patchcore::to_rows(&items[i].embedding.f_unsqueeze(0)?)?);
            }
            let all = Tensor::f_cat(&rows, 0)?;
            let n = all.size()[0] as usize;
            let all = if n > 50_000 {
                let mut idx: Vec<i64> = (0..n as i64).collect();
                SplitMix64::new(opts.seed ^ 0x9CA).shuffle(&mut idx);
                idx.truncate(50_000);
                all.f_index_select(0, &Tensor::f_from_slice(&idx)?)?
            } else {
                all
            };
            Some(patchcore::Pca::fit(&all, kd)?)
        }
        _ => None,
    };
    // 2. Out-of-fold scores.
    let k = opts.folds.clamp(2, n_norm);
    let folds = assign_folds(&labels, k, opts.seed);
    let mut oof_pc = vec![0f32; total];
    let mut oof_maps: Vec<Option<Tensor>> = (0..total).map(|_| None).collect();
    for f in 0..k {
        progress(Progress { stage: Stage::CrossValidation, done: f, total: k });
        let normals: Vec<&Tensor> = (0..total).filter(|&i| folds[i] != f && !labels[i]).map(|i| &items[i].embedding).collect();
        let bank = build_bank(&normals, opts, opts.seed.wrapping_add(f as u64 + 1), pca.as_ref())?;
        for i in (0..total).filter(|&i| folds[i] == f) {
            let e = items[i].embedding.f_to_kind(Kind::Float)?.f_unsqueeze(0)?;
            let map = bank.score_maps(&e)?; // (1, h, w)
            oof_pc[i] = patchcore::image_scores(&map)?.f_double_value(&[0])? as f32;
            oof_maps[i] = Some(map.f_squeeze_dim(0)?);
        }
    }
    progress(Progress { stage: Stage::CrossValidation, done: k, total: k });
    let normal_oof: Vec<f32> = (0..total).filter(|&i| !labels[i]).map(|i| oof_pc[i]).collect();
    let pc_norm = {
        let mut v = normal_oof.clone();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2].max(1e-6)
    };
    let auroc_pc = metrics::auroc(&oof_pc, &labels);

    tracing::debug!(secs = started.elapsed().as_secs_f64(), "out-of-fold scores");
    // 3. Supervised image score.
    progress(Progress { stage: Stage::Heads, done: 0, total: 2 });
    let mut summary = TrainingSummary {
        train_normal: n_norm,
        train_anomaly: n_anom,
        test_normal: test_samples.iter().filter(|s| !s.anomalous).count(),
        test_anomaly: test_samples.iter().filter(|s| s.anomalous).count(),
        split: split.into(),
        held_out,
        folds: k,
        seed: opts.seed,
        oof_auroc_patchcore: auroc_pc,
        options: Some(opts.clone()),
        ..Default::default()
    };
    let img_opts = FitOptions { steps: 200, learning_rate: 0.05, l2: 0.1 };
    let pooled = Tensor::f_stack(&items.iter().map(|it| it.pooled.shallow_clone()).collect::<Vec<_>>(), 0)?;
    let onehot = |idx: &[usize]| -> Result<Tensor> {
        let v: Vec<f32> = idx.iter().flat_map(|&i| if labels[i] { [0.0, 1.0] } else { [1.0, 0.0] }).collect();
        Ok(Tensor::f_from_slice(&v)?.f_view([idx.len() as i64, 2])?)
    };
    let logit = |head: &LinearHead, x: &Tensor| -> Result<Tensor> {
        let l = head.logits(x)?;
        Ok(l.f_select(1, 1)?.f_sub(&l.f_select(1, 0)?)?)
    };
    let mut image_head = None;
    let mut score_spec = ScoreSpec { kind: "patchcore".into(), patchcore_norm: pc_norm, patchcore_ranks: None, supervised_ranks: None };
    let mut final_oof = oof_pc.clone();
    if opts.supervised && n_anom >= 10 && n_norm >= 10 {
        let mut oof_lr = vec![0f32; total];
        for f in 0..k {
            let tr: Vec<usize> = (0..total).filter(|&i| folds[i] != f).collect();
            let te: Vec<usize> = (0..total).filter(|&i| folds[i] == f).collect();
            let idx = |v: &[usize]| Tensor::f_from_slice(&v.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let y = onehot(&tr)?;
            let head = LinearHead::fit(&pooled.f_index_select(0, &idx(&tr)?)?, &y, &segmentation::balanced_weights(&y)?, img_opts)?;
            let s = f32_values(&logit(&head, &pooled.f_index_select(0, &idx(&te)?)?)?)?;
            for (j, &i) in te.iter().enumerate() {
                oof_lr[i] = s[j];
            }
        }
        let rp = RankScale::new(oof_pc.clone());
        let rl = RankScale::new(oof_lr.clone());
        let combined: Vec<f32> = (0..total).map(|i| 0.5 * (rp.apply(oof_pc[i]) + rl.apply(oof_lr[i]))).collect();
        let auroc_lr = metrics::auroc(&oof_lr, &labels);
        let auroc_c = metrics::auroc(&combined, &labels);
        summary.oof_auroc_supervised = auroc_lr;
        summary.oof_auroc_combined = auroc_c;
        if let (Some(c), Some(p)) = (auroc_c, auroc_pc) {
            if c > p + 0.005 {
                let all: Vec<usize> = (0..total).collect();
                let y = onehot(&all)?;
                image_head = Some(LinearHead::fit(&pooled, &y, &segmentation::balanced_weights(&y)?, img_opts)?);
                score_spec = ScoreSpec { kind: "rank_average".into(), patchcore_norm: pc_norm, patchcore_ranks: Some(rp), supervised_ranks: Some(rl) };
                final_oof = combined;
                summary.supervised_used = true;
            }
        }
    }

    tracing::debug!(secs = started.elapsed().as_secs_f64(), "supervised image score");
    // 4. Threshold.
    let final_normal: Vec<f32> = (0..total).filter(|&i| !labels[i]).map(|i| final_oof[i]).collect();
    let (thr, rule) = match (n_anom >= 3).then(|| threshold::f1_optimal(&final_oof, &labels)).flatten() {
        Some((t, _)) => (t, ThresholdRule::F1Optimal),
        None => (threshold::from_normals(&final_normal).unwrap_or(0.0), ThresholdRule::NormalOnly),
    };
    let conf_scale = threshold::confidence_scale(thr, &final_normal);

    // 5. Segmentation head.
    let label_colors: Vec<[u8; 3]> = set.labels.iter().filter_map(|l| segmentation::parse_hex_color(&l.color)).collect();
    let has_masks = train_samples.iter().any(|s| s.anomalous && s.mask.is_some());
    let mut seg_head = None;
    if opts.segmentation && has_masks && !label_colors.is_empty() {
        let classes = 1 + label_colors.len() as i64;
        // Rows: every stride-8 cell of every image; anomalous cells (any label pixel) are all kept (up to
        // MAX_ANOMALY_ROWS), background cells are sampled so that there are at most MAX_HEAD_ROWS rows.
        const MAX_HEAD_ROWS: usize = 16_384;
        const MAX_ANOMALY_ROWS: usize = 8_192;
        let (mut anom_x, mut anom_y, mut bg_x) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..total {
            let s = train_samples[i];
            let Some(map) = &oof_maps[i] else { continue };
            if s.anomalous && s.mask.is_none() {
                continue;
            }
            let x = seg_rows(&items[i].embedding, map, pc_norm)?;
            match &s.mask {
                Some(m) if s.anomalous => {
                    let mask = m.load_mask()?;
                    let cm = segmentation::mask_to_classes(&mask, &label_colors, width, height);
                    let frac = segmentation::class_fractions(&cm, width as i64, height as i64, classes, 8)?;
                    let y = frac.f_permute([1, 2, 0])?.f_reshape([-1, classes])?;
                    let bg: Vec<f32> = f32_values(&y.f_select(1, 0)?)?;
                    let (a, b): (Vec<i64>, Vec<i64>) = (0..bg.len() as i64).partition(|&j| bg[j as usize] < 1.0);
                    if !a.is_empty() {
                        let ia = Tensor::f_from_slice(&a)?;
                        anom_x.push(x.f_index_select(0, &ia)?);
                        anom_y.push(y.f_index_select(0, &ia)?);
                    }
                    if !b.is_empty() {
                        bg_x.push(x.f_index_select(0, &Tensor::f_from_slice(&b)?)?);
                    }
                }
                _ => bg_x.push(x),
            }
        }
        let mut rng = SplitMix64::new(opts.seed ^ 0x5E6);
        let mut subsample = |x: Tensor, keep: usize| -> Result<Tensor> {
            let n = x.size()[0] as usize;
            if n <= keep {
                return Ok(x);
            }
            let mut idx: Vec<i64> = (0..n as i64).collect();
            rng.shuffle(&mut idx);
            idx.truncate(keep);
            idx.sort_unstable();
            Ok(x.f_index_select(0, &Tensor::f_from_slice(&idx)?)?)
        };
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        if !anom_x.is_empty() {
            let ax = Tensor::f_cat(&anom_x, 0)?;
            let ay = Tensor::f_cat(&anom_y, 0)?;
            let both = Tensor::f_cat(&[ax, ay], 1)?;
            let both = subsample(both, MAX_ANOMALY_ROWS)?;
            let f = EMBED_DIM + 1;
            xs.push(both.f_narrow(1, 0, f)?);
            ys.push(both.f_narrow(1, f, classes)?);
        }
        let n_anom_rows: usize = xs.iter().map(|x| x.size()[0] as usize).sum();
        if !bg_x.is_empty() && n_anom_rows > 0 {
            let bx = subsample(Tensor::f_cat(&bg_x, 0)?, MAX_HEAD_ROWS - n_anom_rows)?;
            let by = Tensor::f_zeros([bx.size()[0], classes], (Kind::Float, tch::Device::Cpu))?;
            let _ = by.f_select(1, 0)?.f_fill_(1.0)?;
            xs.push(bx);
            ys.push(by);
        }
        if !xs.is_empty() {
            let x = Tensor::f_cat(&xs, 0)?;
            let y = Tensor::f_cat(&ys, 0)?;
            let w = segmentation::balanced_weights(&y)?;
            seg_head = Some(LinearHead::fit(&x, &y, &w, FitOptions { steps: 300, learning_rate: 0.05, l2: 1e-3 })?);
            tracing::debug!(rows = x.size()[0], "segmentation head trained");
        }
    }
    progress(Progress { stage: Stage::Heads, done: 2, total: 2 });
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "segmentation head");

    // 6. Final memory bank.
    progress(Progress { stage: Stage::MemoryBank, done: 0, total: 1 });
    let normals: Vec<&Tensor> = (0..total).filter(|&i| !labels[i]).map(|i| &items[i].embedding).collect();
    let bank = build_bank(&normals, opts, opts.seed, pca.as_ref())?;
    drop(items);
    progress(Progress { stage: Stage::MemoryBank, done: 1, total: 1 });
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "final memory bank");

    let segmentation_model = seg_head.is_some();
    let header = ModelHeader {
        format: "vigil-model".into(),
        format_version: artifact::FORMAT_VERSION,
        created_by: format!("vigil {}", env!("CARGO_PKG_VERSION")),
        backbone: BackboneSpec {
            id: BACKBONE_ID.into(),
            taps: vec!["stride8:block4:40ch".into(), "stride16:block10:112ch".into()],
        },
        input: InputSpec {
            width,
            height,
            resize: "any image is resized (bilinear, aspect not kept) to width × height before the backbone; masks and heat maps are resized back to the image's own size".into(),
            mean: [0.5; 3],
            std: [0.5; 3],
        },
        patchcore: PatchCoreSpec {
            embed_dim: EMBED_DIM,
            knn_dim: bank.pca.as_ref().map(|p| p.output_dim()),
            pool_kernel: 3,
            bank_size: bank.len(),
            blur_sigma: anomaly_map::SIGMA,
            image_score: "max patch nearest-neighbour distance".into(),
        },
        score: score_spec,
        threshold: thr,
        threshold_rule: rule,
        confidence_scale: conf_scale,
        labels: if segmentation_model { set.labels.clone() } else { Vec::new() },
        background: AnomalyLabel { name: "background".into(), color: "#FFFFFF".into() },
        segmentation: segmentation_model,
        training: summary,
    };
    let mut model = Model { header, bank, seg_head, image_head };
    model.header.training.fit_seconds = started.elapsed().as_secs_f64();

    // Evaluation.
    let evaluation = if test_samples.is_empty() {
        let images: Vec<ImageResult> = (0..total)
            .map(|i| {
                let (p, c) = model.verdict(final_oof[i]);
                ImageResult { id: train_samples[i].id.clone(), anomalous: labels[i], predicted_anomalous: p, score: final_oof[i], confidence: c }
            })
            .collect();
        Evaluation::from_images("cross_validation", thr, images, None)
    } else {
        let test: Vec<Sample> = test_samples.iter().map(|s| (*s).clone()).collect();
        model.evaluate_as(backbone, &test, split, &mut |done, total| progress(Progress { stage: Stage::Evaluation, done, total }))?
    };
    Ok((model, evaluation))
}

/// Intermediate result of scoring a batch.
struct Scored {
    score: f32,
    /// `(H, W)` heat map at input size, normalised.
    heat: Tensor,
    /// `(H, W)` u8 class map at input size (segmentation models).
    classes: Option<Vec<u8>>,
    /// `(H, W)` 1 − P(background).
    seg_prob: Option<Tensor>,
}

impl Model {
    pub fn threshold(&self) -> f32 {
        self.header.threshold
    }

    pub fn input_size(&self) -> (u32, u32) {
        (self.header.input.width, self.header.input.height)
    }

    fn verdict(&self, score: f32) -> (bool, f32) {
        threshold::verdict(score, self.header.threshold, self.header.confidence_scale)
    }

    fn score_batch(&self, backbone: &Backbone, images: &[&RgbImage], want_prob: bool) -> Result<Vec<Scored>> {
        let (w, h) = self.input_size();
        let t0 = Instant::now();
        let mut inputs = Vec::with_capacity(images.len());
        for img in images {
            inputs.push(Backbone::preprocess(img, w, h)?);
        }
        tch::no_grad(|| {
            let x = Tensor::f_cat(&inputs, 0)?;
            let t1 = Instant::now();
            let f = backbone.forward(&x)?;
            let t2 = Instant::now();
            let e = patchcore::embed(&f)?;
            // Same precision path as training: embeddings pass through f16.
            let e = e.f_to_kind(Kind::Half)?.f_to_kind(Kind::Float)?;
            let maps = self.bank.score_maps(&e)?; // (B, h, w)
            let pc: Vec<f32> = f32_values(&patchcore::image_scores(&maps)?)?;
            let t3 = Instant::now();
            let norm = self.header.score.patchcore_norm as f64;
            let heat = anomaly_map::heat_maps(&maps.f_div_scalar(norm)?, h as i64, w as i64, self.header.patchcore.blur_sigma)?;
            let _ = heat.f_double_value(&[0, 0, 0]);
            let t4 = Instant::now();
            tracing::trace!(
                preprocess_ms = (t1 - t0).as_secs_f64() * 1e3,
                backbone_ms = (t2 - t1).as_secs_f64() * 1e3,
                patchcore_ms = (t3 - t2).as_secs_f64() * 1e3,
                heat_ms = (t4 - t3).as_secs_f64() * 1e3,
                "score_batch"
            );
            let scores: Vec<f32> = match (&self.image_head, &self.header.score.patchcore_ranks, &self.header.score.supervised_ranks) {
                (Some(head), Some(rp), Some(rl)) => {
                    let l = head.logits(&pooled_features(&f)?)?;
                    let lr = f32_values(&l.f_select(1, 1)?.f_sub(&l.f_select(1, 0)?)?)?;
                    pc.iter().zip(&lr).map(|(&a, &b)| 0.5 * (rp.apply(a) + rl.apply(b))).collect()
                }
                _ => pc,
            };
            let mut seg: Vec<(Option<Vec<u8>>, Option<Tensor>)> = Vec::new();
            if let Some(head) = &self.seg_head {
                let b = e.size()[0];
                let (gh, gw) = (e.size()[2], e.size()[3]);
                let s = maps.f_div_scalar(norm)?.f_unsqueeze(1)?;
                let rows = patchcore::to_rows(&Tensor::f_cat(&[&e, &s], 1)?)?;
                let c = head.classes();
                let logits = head.logits(&rows)?.f_view([b, gh, gw, c])?.f_permute([0, 3, 1, 2])?;
                let up = logits.f_upsample_bilinear2d([h as i64, w as i64], false, None, None)?;
                let cls = up.f_argmax(1, false)?.f_to_kind(Kind::Uint8)?; // (B, H, W)
                let prob = if want_prob { Some(up.f_softmax(1, Kind::Float)?.f_select(1, 0)?.f_neg()?.f_add_scalar(1.0)?) } else { None };
                for i in 0..b {
                    let v: Vec<u8> = Vec::try_from(&cls.f_get(i)?.f_contiguous()?.f_view([-1])?)?;
                    let p = match &prob {
                        Some(p) => Some(p.f_get(i)?),
                        None => None,
                    };
                    seg.push((Some(v), p));
                }
            }
            let mut out = Vec::with_capacity(scores.len());
            for (i, &score) in scores.iter().enumerate() {
                let (classes, seg_prob) = seg.get_mut(i).map(|(c, p)| (c.take(), p.take())).unwrap_or((None, None));
                out.push(Scored { score, heat: heat.f_get(i as i64)?, classes, seg_prob });
            }
            Ok(out)
        })
    }

    fn detection(&self, s: Scored, img_w: u32, img_h: u32) -> Result<Detection> {
        let t0 = Instant::now();
        let (w, h) = self.input_size();
        let (is_anomalous, confidence) = self.verdict(s.score);
        let heat_map = f32_values(&s.heat)?;
        let (mut anomalies, mut anomaly_mask) = (None, None);
        if let Some(classes) = &s.classes {
            let n = classes.len() as f64;
            let mut counts = vec![0usize; 1 + self.header.labels.len()];
            for &c in classes {
                if let Some(x) = counts.get_mut(c as usize) {
                    *x += 1;
                }
            }
            let mut list = vec![Anomaly {
                name: self.header.background.name.clone(),
                pixel_anomaly: PixelAnomaly { total_percentage_area: (counts[0] as f64 / n) as f32, color: self.header.background.color.clone() },
            }];
            for (i, l) in self.header.labels.iter().enumerate() {
                if counts[i + 1] > 0 {
                    list.push(Anomaly {
                        name: l.name.clone(),
                        pixel_anomaly: PixelAnomaly { total_percentage_area: (counts[i + 1] as f64 / n) as f32, color: l.color.clone() },
                    });
                }
            }
            let mut colors = vec![segmentation::parse_hex_color(&self.header.background.color).unwrap_or([255, 255, 255])];
            colors.extend(self.header.labels.iter().map(|l| segmentation::parse_hex_color(&l.color).unwrap_or([255, 0, 0])));
            let full = segmentation::resize_classes(classes, w, h, img_w, img_h);
            anomaly_mask = Some(segmentation::png_bytes(&segmentation::colorize(&full, img_w, img_h, &colors))?);
            anomalies = Some(list);
        }
        tracing::trace!(detection_ms = t0.elapsed().as_secs_f64() * 1e3, "detection");
        Ok(Detection { is_anomalous, confidence, score: s.score, anomalies, anomaly_mask, heat_map, heat_width: w, heat_height: h })
    }

    /// Detects anomalies in one image (any size: it is resized to the model's input size; the mask comes back
    /// at the image's own size).
    pub fn detect(&self, backbone: &Backbone, image: &RgbImage) -> Result<Detection> {
        let mut v = self.detect_batch(backbone, &[image])?;
        v.pop().ok_or_else(|| Error::Shape("no detection".into()))
    }

    /// Detects anomalies in several images with one backbone pass.
    pub fn detect_batch(&self, backbone: &Backbone, images: &[&RgbImage]) -> Result<Vec<Detection>> {
        if let Some(img) = images.iter().find(|i| i.width() == 0 || i.height() == 0) {
            return Err(Error::Input(format!("the image is {}×{} px", img.width(), img.height())));
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let scored = self.score_batch(backbone, images, false)?;
        scored.into_iter().zip(images).map(|(s, img)| self.detection(s, img.width(), img.height())).collect()
    }

    /// Evaluates the model on labelled images (masks optional): LFV's figures, curves, per-image results and,
    /// where masks exist, pixel AUROC and per-label segmentation figures.
    pub fn evaluate(&self, backbone: &Backbone, samples: &[Sample], progress: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        self.evaluate_as(backbone, samples, "test_set", progress)
    }

    fn evaluate_as(&self, backbone: &Backbone, samples: &[Sample], source: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let (w, h) = self.input_size();
        let colors: Vec<[u8; 3]> = self.header.labels.iter().filter_map(|l| segmentation::parse_hex_color(&l.color)).collect();
        let any_mask = samples.iter().any(|s| s.mask.is_some());
        let classes = 1 + self.header.labels.len();
        let mut images = Vec::new();
        let (mut pix_heat, mut pix_seg, mut pix_truth) = (Vec::new(), Vec::new(), Vec::new());
        let mut conf = vec![Confusion::default(); classes];
        let mut present = vec![0usize; classes];
        let mut seg_evaluated = false;
        // Keep at most ~16 M pixels for the pixel AUROC by striding.
        let stride = ((samples.len() * (w * h) as usize) / (16 << 20)).max(1);
        for (i, s) in samples.iter().enumerate() {
            let img = s.image.load()?;
            let mut scored = self.score_batch(backbone, &[&img], true)?;
            let sc = scored.pop().ok_or_else(|| Error::Shape("no score".into()))?;
            let (p, c) = self.verdict(sc.score);
            images.push(ImageResult { id: s.id.clone(), anomalous: s.anomalous, predicted_anomalous: p, score: sc.score, confidence: c });
            // Ground truth class map: from the mask, or all background for normal images of a masked set.
            let truth: Option<Vec<u8>> = match (&s.mask, s.anomalous) {
                (Some(m), _) => {
                    let mask = m.load_mask()?;
                    let tc: Vec<[u8; 3]> = if colors.is_empty() { vec![[255, 0, 0]] } else { colors.clone() };
                    let mut cm = segmentation::mask_to_classes(&mask, &tc, w, h);
                    if colors.is_empty() {
                        // Classification model: any labelled pixel is "anomaly".
                        cm.iter_mut().for_each(|v| *v = (*v > 0) as u8);
                    }
                    Some(cm)
                }
                (None, false) if any_mask => Some(vec![0u8; (w * h) as usize]),
                _ => None,
            };
            if let Some(truth) = truth {
                let heat = f32_values(&sc.heat)?;
                let segp = match &sc.seg_prob {
                    Some(t) => Some(f32_values(t)?),
                    None => None,
                };
                for j in (0..truth.len()).step_by(stride) {
                    pix_heat.push(heat[j]);
                    pix_truth.push(truth[j] > 0);
                    if let Some(sp) = &segp {
                        pix_seg.push(sp[j]);
                    }
                }
                if let Some(pred) = &sc.classes {
                    seg_evaluated = true;
                    metrics::add_confusions(&mut conf, &metrics::per_class_confusion(pred, &truth, classes));
                    for (c, p) in present.iter_mut().enumerate() {
                        if truth.iter().any(|&t| t as usize == c) {
                            *p += 1;
                        }
                    }
                }
            }
            progress(i + 1, samples.len());
        }
        let mut ev = Evaluation::from_images(source, self.header.threshold, images, None);
        if !pix_truth.is_empty() {
            ev.pixel_auroc = metrics::auroc(&pix_heat, &pix_truth);
            if pix_seg.len() == pix_truth.len() {
                ev.segmentation_pixel_auroc = metrics::auroc(&pix_seg, &pix_truth);
            }
        }
        if seg_evaluated {
            ev.labels = self
                .header
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let c = conf[i + 1];
                    LabelMetrics { name: l.name.clone(), precision: c.precision(), recall: c.recall(), f1: c.f1(), iou: c.iou(), images: present[i + 1] }
                })
                .collect();
            if !ev.labels.is_empty() {
                ev.mean_iou = Some(ev.labels.iter().map(|l| l.iou).sum::<f64>() / ev.labels.len() as f64);
            }
        }
        Ok(ev)
    }

    /// Serialises the model into the artifact format (see `artifact`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_value(&self.header).map_err(|e| Error::Artifact(e.to_string()))?;
        let mut tensors: Vec<(String, &Tensor)> = vec![("bank".into(), &self.bank.bank)];
        if let Some(p) = &self.bank.pca {
            tensors.push(("pca.mean".into(), &p.mean));
            tensors.push(("pca.components".into(), &p.components));
        }
        for (prefix, head) in [("seg", &self.seg_head), ("image", &self.image_head)] {
            if let Some(hd) = head {
                tensors.push((format!("{prefix}.mean"), &hd.mean));
                tensors.push((format!("{prefix}.std"), &hd.std));
                tensors.push((format!("{prefix}.weight"), &hd.weight));
                tensors.push((format!("{prefix}.bias"), &hd.bias));
            }
        }
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        artifact::to_bytes(&header, &refs)
    }

    /// Loads a model from artifact bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let (header, mut tensors) = artifact::from_bytes(bytes)?;
        let header: ModelHeader = serde_json::from_value(header).map_err(|e| Error::Artifact(format!("model header: {e}")))?;
        if header.backbone.id != BACKBONE_ID {
            return Err(Error::Artifact(format!("model was trained with backbone {}; this Vigil has {BACKBONE_ID}", header.backbone.id)));
        }
        let mut take = |name: &str| tensors.remove(name);
        let bank = take("bank").ok_or_else(|| Error::Artifact("model has no memory bank".into()))?;
        let pca = match (take("pca.mean"), take("pca.components")) {
            (Some(mean), Some(components)) => Some(patchcore::Pca { mean, components }),
            (None, None) => None,
            _ => return Err(Error::Artifact("incomplete PCA in model".into())),
        };
        if let Some(p) = &pca {
            if p.input_dim() != EMBED_DIM || p.mean.size() != [EMBED_DIM] || Some(p.output_dim()) != header.patchcore.knn_dim {
                return Err(Error::Artifact("PCA does not match the model header".into()));
            }
        }
        let mut head = |prefix: &str| -> Option<LinearHead> {
            Some(LinearHead {
                mean: take(&format!("{prefix}.mean"))?,
                std: take(&format!("{prefix}.std"))?,
                weight: take(&format!("{prefix}.weight"))?,
                bias: take(&format!("{prefix}.bias"))?,
            })
        };
        let seg_head = head("seg");
        let image_head = head("image");
        if header.segmentation && seg_head.is_none() {
            return Err(Error::Artifact("segmentation model without its head".into()));
        }
        if let Some(h) = &seg_head {
            if h.features() != EMBED_DIM + 1 || h.classes() != 1 + header.labels.len() as i64 {
                return Err(Error::Artifact("segmentation head does not match the labels".into()));
            }
        }
        if let Some(h) = &image_head {
            if h.features() != POOLED_DIM || h.classes() != 2 {
                return Err(Error::Artifact("image head has the wrong shape".into()));
            }
        }
        let bank = MemoryBank::new(bank, pca)?;
        if bank.bank.size()[1] != header.patchcore.knn_dim.unwrap_or(EMBED_DIM) {
            return Err(Error::Artifact("memory bank has the wrong width".into()));
        }
        Ok(Model { header, bank, seg_head, image_head })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(|e| Error::Io { path: tmp.display().to_string(), source: e })?;
        std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
    }

    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        Model::from_bytes(&bytes)
    }
}

impl Evaluation {
    /// LFV's `AggregatedEvaluationResults.Metrics` object of the evaluation result file: `ROCAUC`,
    /// `AveragePrecision`, `Precision`, `Recall`, `F1Score` and, for segmentation, `PixelAnomalyClassMetrics`
    /// (`Precision`, `Recall`, `F1Score`, `AIOU`, `ClassName` per label). `DescribeModel.Performance` is
    /// `{F1Score, Recall, Precision}` from the same figures.
    pub fn to_lfv_metrics_json(&self) -> serde_json::Value {
        let mut m = serde_json::json!({
            "ROCAUC": self.image_auroc,
            "AveragePrecision": self.average_precision,
            "Precision": self.precision,
            "Recall": self.recall,
            "F1Score": self.f1,
        });
        if !self.labels.is_empty() {
            m["PixelAnomalyClassMetrics"] = self
                .labels
                .iter()
                .map(|l| serde_json::json!({"Precision": l.precision, "Recall": l.recall, "F1Score": l.f1, "AIOU": l.iou, "ClassName": l.name}))
                .collect();
        }
        m
    }

    fn from_images(source: &str, threshold: f32, images: Vec<ImageResult>, _unused: Option<()>) -> Evaluation {
        let scores: Vec<f32> = images.iter().map(|r| r.score).collect();
        let labels: Vec<bool> = images.iter().map(|r| r.anomalous).collect();
        let c = Confusion::at(&scores, &labels, threshold);
        let (roc, pr) = metrics::curves(&scores, &labels);
        Evaluation {
            source: source.into(),
            n_normal: labels.iter().filter(|&&y| !y).count(),
            n_anomaly: labels.iter().filter(|&&y| y).count(),
            threshold,
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            image_auroc: metrics::auroc(&scores, &labels),
            average_precision: metrics::average_precision(&scores, &labels),
            roc,
            pr,
            histogram: metrics::histogram(&scores, &labels, 20),
            images,
            pixel_auroc: None,
            segmentation_pixel_auroc: None,
            labels: Vec::new(),
            mean_iou: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_backbone_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Model>();
        shared::<Backbone>();
    }

    #[test]
    fn input_size_keeps_aspect_in_multiples_of_32() {
        assert_eq!(choose_input_size(576, 768, None), (256, 320));
        assert_eq!(choose_input_size(2000, 1334, None), (640, 416));
        assert_eq!(choose_input_size(550, 380, None), (256, 192));
        assert_eq!(choose_input_size(100, 100, Some(300)), (288, 288));
        assert_eq!(choose_input_size(4096, 64, None), (640, 64));
    }

    #[test]
    fn folds_are_stratified_and_seeded() {
        let labels = [false, false, false, false, true, true, true, true];
        let f = assign_folds(&labels, 2, 1);
        assert_eq!(f, assign_folds(&labels, 2, 1));
        for class in [false, true] {
            let zeros = (0..8).filter(|&i| labels[i] == class && f[i] == 0).count();
            assert_eq!(zeros, 2);
        }
    }

    #[test]
    fn lfv_metrics_shape() {
        let images = vec![
            ImageResult { id: "a".into(), anomalous: true, predicted_anomalous: true, score: 0.9, confidence: 0.9 },
            ImageResult { id: "b".into(), anomalous: false, predicted_anomalous: false, score: 0.1, confidence: 0.9 },
        ];
        let mut ev = Evaluation::from_images("test_set", 0.5, images, None);
        ev.labels.push(LabelMetrics { name: "dent".into(), precision: 0.5, recall: 1.0, f1: 2.0 / 3.0, iou: 0.5, images: 1 });
        let m = ev.to_lfv_metrics_json();
        assert_eq!(m["ROCAUC"], 1.0);
        assert_eq!(m["F1Score"], 1.0);
        assert_eq!(m["PixelAnomalyClassMetrics"][0]["ClassName"], "dent");
        assert_eq!(m["PixelAnomalyClassMetrics"][0]["AIOU"], 0.5);
    }

    #[test]
    fn lfv_json_shape() {
        let d = Detection {
            is_anomalous: true,
            confidence: 0.9,
            score: 2.0,
            anomalies: Some(vec![
                Anomaly { name: "background".into(), pixel_anomaly: PixelAnomaly { total_percentage_area: 0.75, color: "#FFFFFF".into() } },
                Anomaly { name: "cracked".into(), pixel_anomaly: PixelAnomaly { total_percentage_area: 0.25, color: "#23A436".into() } },
            ]),
            anomaly_mask: Some(vec![1, 2, 3]),
            heat_map: vec![0.0; 4],
            heat_width: 2,
            heat_height: 2,
        };
        let j = d.to_lfv_json();
        let r = &j["DetectAnomalyResult"];
        assert_eq!(r["Source"]["Type"], "direct");
        assert_eq!(r["IsAnomalous"], true);
        assert_eq!(r["Anomalies"][0]["Name"], "background");
        assert_eq!(r["Anomalies"][1]["PixelAnomaly"]["Color"], "#23A436");
        assert_eq!(r["Anomalies"][1]["PixelAnomaly"]["TotalPercentageArea"], 0.25);
        assert_eq!(r["AnomalyMask"], "AQID");
    }
}
