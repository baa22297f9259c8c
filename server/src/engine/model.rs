//! What the engine gives (detections, evaluations) and detection with a trained [`Model`] (re-exported from
//! `engine`). What it takes (training images, labels) is in `samples`, the model's header in `header`,
//! training options in `options`, evaluation in `evaluate`, the model's file in `model_file`, training in
//! `train`.

use super::backbone::{Backbone, Features};
use super::header::ModelHeader;
use super::metrics::{CurvePoint, Histogram};
use super::embedding;
use super::patchcore::{self, MemoryBank};
use super::gaussian::{self, Gaussian};
use super::segmentation::{self, LinearHead};
use super::threshold;
use super::scores::{blend, image_logit};
pub use super::scores::{pooled_features, POOLED_DIM};
use super::tensors::f32_values;
use super::anomaly_map;
use super::error::{Error, Result};
pub use super::samples::{AnomalyLabel, ImageSource, Sample, TrainSet};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Kind, Tensor};

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
    /// Empty (and 0 × 0) from [`Model::detect_with`] without `heat_map`.
    pub heat_map: Vec<f32>,
    pub heat_width: u32,
    pub heat_height: u32,
}

impl Detection {
    /// The heat map as an 8-bit grayscale image (0 = nothing unusual, 255 = twice a normal image's peak).
    pub fn heat_map_image(&self) -> image::GrayImage {
        image::GrayImage::from_fn(self.heat_width, self.heat_height, |x, y| {
            let v = self.heat_map.get((y * self.heat_width + x) as usize).copied().unwrap_or(0.0);
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
    /// Where the model rests on thin evidence, in plain words, with what would help (`evaluate::evidence_notes`);
    /// the model page shows them above its figures.
    #[serde(default)]
    pub notes: Vec<String>,
    /// When `images` are other images than the training's (a test set or a held-out split): the training's normal
    /// images' leave-one-out scores on the same scale (at most [`MAX_REFERENCE_SCORES`], evenly spread), which
    /// drift monitoring adds to the evaluation's normal scores as its reference. Empty otherwise.
    #[serde(default)]
    pub reference_normal_scores: Vec<f32>,
}

/// The most training scores an evaluation carries for the drift reference.
pub const MAX_REFERENCE_SCORES: usize = 2000;

/// A trained model.
pub struct Model {
    pub header: ModelHeader,
    pub(super) bank: MemoryBank,
    pub(super) seg_head: Option<LinearHead>,
    /// The supervised image score's heads, one per fold (older models: one refitted head); their mean logit
    /// is the score.
    pub(super) image_heads: Vec<LinearHead>,
    /// Gaussian model of pooled normal features, when the score uses it.
    pub(super) gaussian: Option<Gaussian>,
}

/// What [`Model::detect_with`] computes besides the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectOptions {
    /// The heat map (`Detection::heat_map`); LFV's response has none, so the API leaves it out.
    pub heat_map: bool,
}

// SAFETY: `tch::Tensor` is `Send` but not `Sync` because a tensor *can* be mutated in place through a shared
// handle. A `Model`'s tensors (memory bank, PCA, head weights) are created when it is trained or loaded and never
// mutated afterwards (the bank's search cells, built at first use behind a `OnceLock`, are plain vectors read
// from those tensors): every method takes `&self` and only reads them (out-of-place ops under `no_grad`, which do
// not touch autograd state), and libtorch's reference counts are atomic. Concurrent detections with one model
// from several threads are therefore sound, as in PyTorch's multi-threaded inference on shared weights.
unsafe impl Sync for Model {}

/// Intermediate result of scoring a batch.
pub(super) struct Scored {
    pub(super) score: f32,
    /// `(H, W)` heat map at input size, normalised (when asked for).
    pub(super) heat: Option<Tensor>,
    /// `(H, W)` u8 class map at input size (segmentation models).
    pub(super) classes: Option<Vec<u8>>,
    /// `(H, W)` 1 − P(background).
    pub(super) seg_prob: Option<Tensor>,
}

impl Model {
    pub fn threshold(&self) -> f32 {
        self.header.threshold
    }

    pub fn input_size(&self) -> (u32, u32) {
        (self.header.input.width, self.header.input.height)
    }

    pub(super) fn verdict(&self, score: f32) -> (bool, f32) {
        threshold::verdict(score, self.header.threshold, self.header.confidence_scale)
    }

    /// Refuses a backbone other than the one the model was trained with (compared by the SHA-256 of its file;
    /// models from before the checksum was recorded are only checked by backbone id, at load). Every
    /// detection and evaluation checks this first; call it at model load to refuse early.
    pub fn check_backbone(&self, backbone: &Backbone) -> Result<()> {
        match &self.header.backbone.sha256 {
            Some(want) if want != backbone.checksum() => {
                Err(Error::BackboneMismatch { model: want.clone(), loaded: backbone.checksum().to_string() })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn score_batch(&self, backbone: &Backbone, images: &[&RgbImage], want_heat: bool, want_prob: bool) -> Result<Vec<Scored>> {
        self.check_backbone(backbone)?;
        let (w, h) = self.input_size();
        let t0 = Instant::now();
        let mut inputs = Vec::with_capacity(images.len());
        for img in images {
            inputs.push(Backbone::preprocess_with(img, w, h, self.header.input.resize_filter)?);
        }
        tch::no_grad(|| {
            let x = if inputs.len() == 1 { inputs.pop().ok_or_else(|| Error::Shape("no input".into()))? } else { Tensor::f_cat(&inputs, 0)? };
            let t1 = Instant::now();
            let f = backbone.forward(&x)?;
            let t2 = Instant::now();
            let e = embedding::embed(&f, self.header.patchcore.pool_zero_pad)?;
            let e = match &self.header.patchcore.tap_weights {
                Some(w) => embedding::weigh(&e, w)?,
                None => e,
            };
            // Same precision path as training: embeddings pass through f16.
            let e = e.f_to_kind(Kind::Half)?.f_to_kind(Kind::Float)?;
            // Every patch's exact score only when something needs them all (the heat map, the head's pixel
            // probabilities); otherwise the image score by the pruned exact search, and a segmentation head's mask
            // from exact scores only where they can change it (`segmentation::pruned_classes`).
            let norm = self.header.score.patchcore_norm as f64;
            let (hw, grid) = ((h as usize, w as usize), (e.size()[2] as usize, e.size()[3] as usize));
            let mut seg: Vec<(Option<Vec<u8>>, Option<Tensor>)> = Vec::new();
            let reweight = self.header.patchcore.reweight_neighbours;
            let (maps, pc) = if want_heat || (want_prob && self.seg_head.is_some()) {
                let maps = self.bank.score_maps(&e)?; // (B, h, w)
                let mut pc: Vec<f32> = f32_values(&patchcore::image_scores(&maps)?)?;
                if reweight >= 2 {
                    let at: Vec<i64> = Vec::try_from(&maps.f_flatten(1, 2)?.f_argmax(1, false)?)?;
                    for (i, (p, &a)) in pc.iter_mut().zip(&at).enumerate() {
                        *p = self.bank.reweighted(*p, reweight, || embedding::patch_row(&e.f_narrow(0, i as i64, 1)?, a as usize))?;
                    }
                }
                if let Some(head) = &self.seg_head {
                    for i in 0..e.size()[0] {
                        seg.push(segment_exact(head, &e.f_get(i)?, &maps.f_get(i)?, norm, hw, want_prob)?);
                    }
                }
                (Some(maps), pc)
            } else {
                let mut pc = Vec::with_capacity(images.len());
                for i in 0..e.size()[0] {
                    let rows = embedding::to_rows(&e.f_narrow(0, i, 1)?)?;
                    let tb = Instant::now();
                    let bounds = self.bank.bounds(&rows)?;
                    let (at, d) = match (&self.seg_head, bounds) {
                        (None, Some(b)) => b.argmax_from(None, f32::NEG_INFINITY)?,
                        (Some(head), Some(b)) => {
                            let tm = Instant::now();
                            let p = segmentation::pruned_classes(head, &rows, norm as f32, &b, grid, hw)?;
                            let ts = Instant::now();
                            let best = b.argmax_from(p.best_at, p.best_sq)?;
                            tracing::trace!(
                                searched = p.searched,
                                cells = rows.size()[0],
                                bounds_ms = (tm - tb).as_secs_f64() * 1e3,
                                mask_ms = (ts - tm).as_secs_f64() * 1e3,
                                score_ms = ts.elapsed().as_secs_f64() * 1e3,
                                "segmentation: cells searched exactly"
                            );
                            seg.push((Some(p.classes), None));
                            best
                        }
                        (head, None) => {
                            let dist = self.bank.nearest_distances(&rows)?;
                            let at = dist.f_argmax(0, false)?.int64_value(&[]) as usize;
                            let d = dist.f_double_value(&[at as i64])? as f32;
                            if let Some(head) = head {
                                let map = dist.f_view([grid.0 as i64, grid.1 as i64])?;
                                seg.push(segment_exact(head, &e.f_get(i)?, &map, norm, hw, false)?);
                            }
                            (at, d)
                        }
                    };
                    pc.push(self.bank.reweighted(d, reweight, || Ok(rows.f_narrow(0, at as i64, 1)?))?);
                }
                (None, pc)
            };
            let t3 = Instant::now();
            let heat = match (&maps, want_heat) {
                (Some(maps), true) => {
                    Some(anomaly_map::heat_maps(&maps.f_div_scalar(norm)?, h as i64, w as i64, self.header.patchcore.blur_sigma)?)
                }
                _ => None,
            };
            let t4 = Instant::now();
            let scores = self.image_scores(&f, &pc)?;
            let t5 = Instant::now();
            tracing::trace!(
                preprocess_ms = (t1 - t0).as_secs_f64() * 1e3,
                backbone_ms = (t2 - t1).as_secs_f64() * 1e3,
                patchcore_ms = (t3 - t2).as_secs_f64() * 1e3,
                heat_ms = (t4 - t3).as_secs_f64() * 1e3,
                heads_ms = (t5 - t4).as_secs_f64() * 1e3,
                "score_batch"
            );
            let mut out = Vec::with_capacity(scores.len());
            for (i, &score) in scores.iter().enumerate() {
                let (classes, seg_prob) = seg.get_mut(i).map(|(c, p)| (c.take(), p.take())).unwrap_or((None, None));
                let heat = match &heat {
                    Some(t) => Some(t.f_get(i as i64)?),
                    None => None,
                };
                out.push(Scored { score, heat, classes, seg_prob });
            }
            Ok(out)
        })
    }

    /// The image scores from the backbone features and PatchCore's scores: PatchCore alone, or fused with the
    /// Gaussian score, then blended with the supervised score when the model has one.
    fn image_scores(&self, f: &Features, pc: &[f32]) -> Result<Vec<f32>> {
        let sc = &self.header.score;
        let fusion_w = sc.gaussian_weight.filter(|&w| w > 0.0);
        let needs_pooled = fusion_w.is_some() || !self.image_heads.is_empty();
        if !needs_pooled {
            return Ok(pc.to_vec());
        }
        let pooled = pooled_features(f)?;
        let g: Option<Vec<f32>> = match &self.gaussian {
            Some(gm) => Some(f32_values(&gm.scores(&pooled)?)?),
            None => None,
        };
        let scales = match (&sc.patchcore_scale, &sc.gaussian_scale, &g) {
            (Some(ps), Some(gs), Some(g)) => Some((ps, gs, g)),
            _ => None,
        };
        let unsupervised: Vec<f32> = match (fusion_w, scales) {
            (Some(w), Some((ps, gs, g))) => pc.iter().zip(g).map(|(&a, &b)| gaussian::fuse(ps, gs, w, a, b)).collect(),
            (Some(_), None) => return Err(Error::Artifact("the score fuses a Gaussian model the file does not have".into())),
            (None, _) => pc.to_vec(),
        };
        let (Some(rp), Some(rl)) = (&sc.patchcore_ranks, &sc.supervised_ranks) else {
            return Ok(unsupervised);
        };
        if self.image_heads.is_empty() {
            return Ok(unsupervised);
        }
        let input = if sc.head_stats {
            let (ps, gs, g) = scales.ok_or_else(|| Error::Artifact("the image heads need the Gaussian model".into()))?;
            let stats: Vec<f32> = pc.iter().zip(g).flat_map(|(&a, &b)| [ps.apply(a), gs.apply(b)]).collect();
            Tensor::f_cat(&[pooled, Tensor::f_from_slice(&stats)?.f_view([pc.len() as i64, 2])?], 1)?
        } else {
            pooled
        };
        let mut sum: Option<Tensor> = None;
        for head in &self.image_heads {
            let l = image_logit(head, &input)?;
            sum = Some(match sum {
                Some(s) => s.f_add(&l)?,
                None => l,
            });
        }
        let mean = sum.ok_or_else(|| Error::Shape("no image head".into()))?.f_div_scalar(self.image_heads.len() as f64)?;
        let lr = f32_values(&mean)?;
        let wgt = self.supervised_weight();
        Ok(unsupervised.iter().zip(&lr).map(|(&a, &b)| blend(rp, rl, wgt, a, b)).collect())
    }

    /// The weight of the supervised score in the blend (older `rank_average` models: 0.5).
    fn supervised_weight(&self) -> f32 {
        match self.header.score.supervised_weight {
            Some(w) => w,
            None if self.header.score.kind == "supervised" => 1.0,
            None => 0.5,
        }
    }

    fn detection(&self, s: Scored, img_w: u32, img_h: u32) -> Result<Detection> {
        let t0 = Instant::now();
        let (w, h) = self.input_size();
        let (is_anomalous, confidence) = self.verdict(s.score);
        let (heat_map, heat_width, heat_height) = match &s.heat {
            Some(t) => (f32_values(t)?, w, h),
            None => (Vec::new(), 0, 0),
        };
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
            anomaly_mask = Some(segmentation::indexed_png(&full, img_w, img_h, &colors)?);
            anomalies = Some(list);
        }
        tracing::trace!(detection_ms = t0.elapsed().as_secs_f64() * 1e3, "detection");
        Ok(Detection { is_anomalous, confidence, score: s.score, anomalies, anomaly_mask, heat_map, heat_width, heat_height })
    }

    /// Detects anomalies in one image (any size: it is resized to the model's input size; the mask comes back
    /// at the image's own size), heat map included.
    pub fn detect(&self, backbone: &Backbone, image: &RgbImage) -> Result<Detection> {
        self.detect_with(backbone, image, DetectOptions { heat_map: true })
    }

    /// [`Model::detect`] computing only what `options` asks for besides the verdict (and, for segmentation
    /// models, the mask): without the heat map it is the fast path for LFV's `DetectAnomalies`.
    pub fn detect_with(&self, backbone: &Backbone, image: &RgbImage, options: DetectOptions) -> Result<Detection> {
        let mut v = self.detect_batch_with(backbone, &[image], options)?;
        v.pop().ok_or_else(|| Error::Shape("no detection".into()))
    }

    /// Detects anomalies in several images with one backbone pass, heat maps included.
    pub fn detect_batch(&self, backbone: &Backbone, images: &[&RgbImage]) -> Result<Vec<Detection>> {
        self.detect_batch_with(backbone, images, DetectOptions { heat_map: true })
    }

    /// [`Model::detect_batch`] computing only what `options` asks for.
    pub fn detect_batch_with(&self, backbone: &Backbone, images: &[&RgbImage], options: DetectOptions) -> Result<Vec<Detection>> {
        if let Some(img) = images.iter().find(|i| i.width() == 0 || i.height() == 0) {
            return Err(Error::Input(format!("the image is {}×{} px", img.width(), img.height())));
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let scored = self.score_batch(backbone, images, options.heat_map, false)?;
        scored.into_iter().zip(images).map(|(s, img)| self.detection(s, img.width(), img.height())).collect()
    }
}

/// A segmentation head's classes for one image from every patch's exact score: `e: (D, gh, gw)`,
/// `map: (gh, gw)` → the `h × w` class map, and `1 − P(background)` per pixel when `want_prob`.
fn segment_exact(head: &LinearHead, e: &Tensor, map: &Tensor, norm: f64, (h, w): (usize, usize), want_prob: bool) -> Result<(Option<Vec<u8>>, Option<Tensor>)> {
    let (gh, gw) = (e.size()[1], e.size()[2]);
    let rows = segmentation::head_rows(e, map, norm as f32)?;
    let c = head.classes();
    let cells = head.logits(&rows)?; // (gh·gw, C)
    let flat: Vec<f32> = Vec::try_from(&cells.f_contiguous()?.f_view([-1])?)?;
    let classes = segmentation::upsampled_argmax(&flat, gh as usize, gw as usize, c as usize, h, w)?;
    // The probability of an anomaly per pixel only for evaluation (pixel AUROC of the head).
    let prob = if want_prob {
        let up = cells.f_view([1, gh, gw, c])?.f_permute([0, 3, 1, 2])?.f_upsample_bilinear2d([h as i64, w as i64], false, None, None)?;
        Some(up.f_softmax(1, Kind::Float)?.f_select(1, 0)?.f_neg()?.f_add_scalar(1.0)?.f_get(0)?)
    } else {
        None
    };
    Ok((Some(classes), prob))
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
}
