//! Training (re-exported as `engine::train`).
//!
//! Pipeline of [`train`]:
//! 1. Input size from the whole training set (median long side and median aspect), features of every
//!    training image (PatchCore embedding, kept as f16, and pooled backbone features for the supervised score),
//!    and of the normal images' mirrored and turned views where the mirror test finds the surface without
//!    orientation (`folds`).
//! 2. Out-of-fold (OOF) image scores and patch maps (`folds`): one PCA and coreset memory bank from every normal
//!    image — the final model's — scores each normal image without the rows that came from itself and each
//!    anomaly against all of it; a Gaussian model of pooled normal features (`gaussian`) fitted without each
//!    tenth of the normals scores them, the one fitted on every normal the anomalies. Nothing about an image
//!    goes into its own score, so OOF figures are honest and on the final model's scale. With ≥ 10 labelled
//!    anomalies a 1.5× larger input is tried too and kept when its OOF AUROC is better by 0.02 (`size_search`).
//! 2b. The unsupervised score: PatchCore's, or its fusion with the Gaussian's on their OOF normal scales (the
//!    weight chosen by OOF AUROC with labelled anomalies, else `DEFAULT_GAUSSIAN_WEIGHT`).
//! 3. Supervised image score (with ≥ 10 anomalies and ≥ 10 normals): one logistic regression per fold over
//!    pooled features and both OOF image scores gives OOF logits; the unsupervised score alone, the supervised
//!    score alone and rank blends of the two are compared by OOF AUROC and the best kept (the unsupervised score
//!    unless another beats it by > 0.005). At detection the supervised score is the mean logit of the same fold
//!    heads, on the rank scale of their OOF logits: the scale the threshold was chosen on.
//! 4. Threshold on OOF scores: F1-optimal with ≥ 3 anomalies, else the normal-quantile rule holding
//!    `normal_fpr` (see `threshold`); confidence scale.
//! 5. Segmentation head (when anomalies carry masks) on OOF patch maps + embeddings.
//! 6. The model: step 2's PCA, memory bank and Gaussian; evaluation on the test images (explicit test set, or
//!    a seeded stratified split when the set is large enough, else the OOF results).
//!
//! Memory: the f16 embeddings of every training image (`2 · 152 · (W/8) · (H/8)` bytes each: 0.73 MB at
//! 640×384, so 0.73 GB for 1,000 such images), plus at most `max_candidates` coreset candidates as f32
//! (200,000 × 152 × 4 B = 122 MB), the 50,000 rows of a PCA fit (30 MB, in f64 61 MB) and one image's rows at a
//! time: patch rows are sampled image by image (`pca::sample_rows`), never joined.

use super::backbone::{Backbone, BACKBONE_ID};
use super::coreset::SplitMix64;
use super::metrics;
use super::header::{BackboneSpec, InputSpec, ModelHeader, PatchCoreSpec, ScoreSpec, TrainingSummary};
use super::model::{Evaluation, ImageResult, Model};
use super::scores::{blend, choose_blend, image_logit, BLEND_WEIGHTS};
use super::tensors::f32_values;
use super::samples::{AnomalyLabel, Sample, TrainSet};
use super::options::{Progress, Stage, StageClock, TrainOptions};
use super::embedding::EMBED_DIM;
use super::folds::{assign_folds, oof_map, Item, OutOfFold};
use super::size_search::features_at_best_size;
use super::gaussian::{self, NormalScale};
use super::patchcore::MemoryBank;
use super::segmentation::{self, FitOptions, LinearHead};
use super::threshold::{self, RankScale, ThresholdRule};
use super::{anomaly_map, artifact};
use super::error::{Error, Result};
pub use super::input_size::{choose_input_size, choose_input_size_for, RESIZE};
use std::time::Instant;
use tch::{Kind, Tensor};

/// The Gaussian score's weight in the fusion when too few labelled anomalies can choose it (see the README's
/// benchmark: measured on normal-only texture and part sets).
pub const DEFAULT_GAUSSIAN_WEIGHT: f32 = 0.5;

/// Labelled anomalies (and normals) needed before out-of-fold AUROC chooses weights and the supervised head.
const MIN_LABELLED: usize = 10;

/// The training images and the evaluation images, and how they were chosen.
struct Split<'a> {
    train: Vec<&'a Sample>,
    test: Vec<&'a Sample>,
    /// `test_set`, `held_out_split` or `cross_validation`.
    kind: &'static str,
    /// Ids of the images held out for evaluation (when split automatically).
    held_out: Vec<String>,
}

/// An explicit test set is the evaluation set; a single data set with at least 20 normal and 10 anomalous
/// images (LFV's minimum) is split, seeded and stratified, `opts.test_fraction` held out; smaller ones are
/// evaluated on out-of-fold scores.
fn split_samples<'a>(set: &'a TrainSet, opts: &TrainOptions) -> Split<'a> {
    if let Some(test) = &set.test {
        return Split { train: set.train.iter().collect(), test: test.iter().collect(), kind: "test_set", held_out: Vec::new() };
    }
    let n_norm = set.train.iter().filter(|s| !s.anomalous).count();
    let n_anom = set.train.len() - n_norm;
    if n_norm < 20 || n_anom < 10 || opts.test_fraction <= 0.0 {
        return Split { train: set.train.iter().collect(), test: Vec::new(), kind: "cross_validation", held_out: Vec::new() };
    }
    let labels: Vec<bool> = set.train.iter().map(|s| s.anomalous).collect();
    let k = (1.0 / opts.test_fraction).round().max(2.0) as usize;
    let folds = assign_folds(&labels, k, opts.seed ^ 0x7E57);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (s, f) in set.train.iter().zip(folds) {
        if f == 0 {
            test.push(s)
        } else {
            train.push(s)
        }
    }
    let held_out = test.iter().map(|s| s.id.clone()).collect();
    Split { train, test, kind: "held_out_split", held_out }
}

/// Trains a model. Synchronous and CPU-bound: call it on a blocking thread. `progress` is called often with
/// the current stage. Returns the model and its evaluation; the memory training took is handed back to the
/// system before it returns (`memory::release_memory`), whether it succeeded or not.
pub fn train(
    backbone: &Backbone,
    set: &TrainSet,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, Evaluation)> {
    let out = fit(backbone, set, opts, progress);
    super::memory::release_memory();
    out
}

fn fit(
    backbone: &Backbone,
    set: &TrainSet,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, Evaluation)> {
    let started = Instant::now();
    let mut clock = StageClock::default();
    check_label_colors(set)?;
    let Split { train: train_samples, test: test_samples, kind: split, held_out } = split_samples(set, opts);
    let labels: Vec<bool> = train_samples.iter().map(|s| s.anomalous).collect();
    let n_norm = labels.iter().filter(|&&y| !y).count();
    let n_anom = labels.len() - n_norm;
    if n_norm < 2 {
        return Err(Error::Input(format!("training needs at least 2 normal images; got {n_norm}")));
    }

    let labelled = n_anom >= MIN_LABELLED && n_norm >= MIN_LABELLED;
    let total = train_samples.len();
    let (oof, size_aurocs, symmetries) = features_at_best_size(backbone, &train_samples, &labels, labelled, opts, progress, &mut clock)?;
    let OutOfFold { width, height, items, tap_weights, k, folds, oof_pc, oof_g, g_ok, gaussian: full_gaussian, own_rows, bank, .. } = oof;
    let pooled = Tensor::f_stack(&items.iter().map(|it| it.pooled.shallow_clone()).collect::<Vec<_>>(), 0)?;
    let normal_oof: Vec<f32> = (0..total).filter(|&i| !labels[i]).map(|i| oof_pc[i]).collect();
    let pc_norm = {
        let mut v = normal_oof.clone();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2].max(1e-6)
    };
    let auroc_pc = metrics::auroc(&oof_pc, &labels);

    // 2b. The Gaussian score and its fusion with PatchCore's, both on their normal scales.
    let g_normal: Vec<f32> = (0..total).filter(|&i| !labels[i]).map(|i| oof_g[i]).collect();
    let scales = match (g_ok, NormalScale::new(&normal_oof), NormalScale::new(&g_normal)) {
        (true, Some(ps), Some(gs)) => Some((ps, gs)),
        _ => None,
    };
    let (fusion_w, fusion_aurocs, oof_u) = fuse_gaussian(scales.as_ref(), &oof_pc, &oof_g, &labels, labelled, opts);

    // 3. Supervised image score.
    progress(Progress { stage: Stage::Heads, done: 0, total: 2 });
    let mut summary = new_summary((n_norm, n_anom), &test_samples, (split, held_out), k, auroc_pc, opts);
    let mut image_heads = Vec::new();
    let mut score_spec = ScoreSpec {
        kind: if fusion_w > 0.0 { "fused".into() } else { "patchcore".into() },
        patchcore_norm: pc_norm,
        patchcore_ranks: None,
        supervised_ranks: None,
        supervised_weight: None,
        gaussian_weight: (fusion_w > 0.0).then_some(fusion_w),
        patchcore_scale: scales.map(|s| s.0),
        gaussian_scale: scales.map(|s| s.1),
        head_stats: false,
    };
    summary.oof_auroc_by_input_size = size_aurocs;
    (summary.mirror_test, summary.bank_flips, summary.bank_turns) = (symmetries.test, symmetries.flips, symmetries.turns);
    summary.oof_auroc_gaussian = g_ok.then(|| metrics::auroc(&oof_g, &labels)).flatten();
    summary.oof_auroc_by_gaussian_weight = BLEND_WEIGHTS.iter().copied().zip(fusion_aurocs.iter().copied()).collect();
    let mut final_oof = oof_u.clone();
    let head_stats = opts.head_stats && scales.is_some();
    if opts.supervised && labelled {
        let input = match (&scales, head_stats) {
            (Some((ps, gs)), true) => {
                let stats: Vec<f32> = (0..total).flat_map(|i| [ps.apply(oof_pc[i]), gs.apply(oof_g[i])]).collect();
                Tensor::f_cat(&[pooled.shallow_clone(), Tensor::f_from_slice(&stats)?.f_view([total as i64, 2])?], 1)?
            }
            _ => pooled.shallow_clone(),
        };
        if let Some(chosen) = supervised_score(&input, &labels, &folds, k, &oof_u, opts, &mut summary)? {
            let w = chosen.weight;
            image_heads = chosen.heads;
            score_spec.kind = if w >= 1.0 { "supervised".into() } else { "blend".into() };
            score_spec.patchcore_ranks = Some(chosen.patchcore_ranks);
            score_spec.supervised_ranks = Some(chosen.supervised_ranks);
            score_spec.supervised_weight = Some(w);
            score_spec.head_stats = head_stats;
            final_oof = chosen.oof;
            summary.supervised_used = true;
        }
    }
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "supervised image score");
    clock.lap("image heads");

    // 4. Threshold.
    let final_normal: Vec<f32> = (0..total).filter(|&i| !labels[i]).map(|i| final_oof[i]).collect();
    let (thr, rule, target_fpr) = choose_threshold(&final_oof, &labels, opts.normal_fpr);
    let (conf_scale, confidence) = confidence_scale(thr, rule, &final_oof, &labels, &final_normal);
    summary.confidence = Some(confidence.into());

    // 5. Segmentation head.
    let label_colors: Vec<[u8; 3]> = set.labels.iter().filter_map(|l| segmentation::parse_hex_color(&l.color)).collect();
    let has_masks = train_samples.iter().any(|s| s.anomalous && s.mask.is_some());
    let seg_head = if opts.segmentation && has_masks && !label_colors.is_empty() {
        let map_of = |i: usize| oof_map(&bank, &items[i].embedding, &own_rows[i]);
        fit_segmentation_head(&train_samples, &items, &map_of, &label_colors, (width, height), pc_norm, opts.seed)?
    } else {
        None
    };
    progress(Progress { stage: Stage::Heads, done: 2, total: 2 });
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "segmentation head");
    clock.lap("threshold and segmentation head");

    // 6. The model's PCA, memory bank and Gaussian are step 2's.
    progress(Progress { stage: Stage::MemoryBank, done: 1, total: 1 });
    let uses_gaussian = score_spec.gaussian_weight.is_some() || score_spec.head_stats;
    let gaussian = full_gaussian.filter(|_| uses_gaussian).map(|(g, delta)| {
        summary.gaussian_shrinkage = Some(delta);
        g
    });
    drop(items);

    let segmentation_model = seg_head.is_some();
    let header = ModelHeader {
        format: "vigil-model".into(),
        format_version: artifact::FORMAT_VERSION,
        created_by: format!("vigil {}", env!("CARGO_PKG_VERSION")),
        backbone: backbone_spec(backbone),
        input: input_spec(width, height),
        patchcore: patchcore_spec(&bank, tap_weights, opts),
        score: score_spec,
        threshold: thr,
        threshold_rule: rule,
        target_fpr,
        confidence_scale: conf_scale,
        labels: if segmentation_model { set.labels.clone() } else { Vec::new() },
        background: AnomalyLabel { name: "background".into(), color: "#FFFFFF".into() },
        segmentation: segmentation_model,
        training: summary,
    };
    let mut model = Model { header, bank, seg_head, image_heads, gaussian };
    model.header.training.fit_seconds = started.elapsed().as_secs_f64();

    // Evaluation.
    let mut evaluation = if test_samples.is_empty() {
        let ids: Vec<&str> = train_samples.iter().map(|s| s.id.as_str()).collect();
        cross_validated(&ids, &labels, &final_oof, thr, conf_scale)
    } else {
        let test: Vec<Sample> = test_samples.iter().map(|s| (*s).clone()).collect();
        model.evaluate_as(backbone, &test, split, &mut |done, total| progress(Progress { stage: Stage::Evaluation, done, total }))?
    };
    clock.lap("evaluation");
    evaluation.notes = super::evaluate::evidence_notes(n_norm, n_anom, rule, target_fpr);
    if !test_samples.is_empty() {
        // Cross-validated evaluations hold these scores already; otherwise they enlarge drift's reference.
        let step = final_normal.len().div_ceil(super::model::MAX_REFERENCE_SCORES).max(1);
        evaluation.reference_normal_scores = final_normal.iter().step_by(step).copied().collect();
    }
    model.header.training.stage_seconds = clock.spent;
    Ok((model, evaluation))
}

/// A new model's training summary: its image counts, split, folds and options.
fn new_summary(
    (n_norm, n_anom): (usize, usize),
    test: &[&Sample],
    (split, held_out): (&str, Vec<String>),
    folds: usize,
    auroc_pc: Option<f64>,
    opts: &TrainOptions,
) -> TrainingSummary {
    TrainingSummary {
        train_normal: n_norm,
        train_anomaly: n_anom,
        test_normal: test.iter().filter(|s| !s.anomalous).count(),
        test_anomaly: test.iter().filter(|s| s.anomalous).count(),
        split: split.into(),
        held_out,
        folds,
        seed: opts.seed,
        oof_auroc_patchcore: auroc_pc,
        options: Some(opts.clone()),
        ..Default::default()
    }
}

/// The confidence scale and how it was set: fitted to the out-of-fold scores when the threshold was chosen with
/// labelled anomalies (`calibrated`), else from the normal scores' spread (`normal_spread`).
fn confidence_scale(thr: f32, rule: ThresholdRule, oof: &[f32], labels: &[bool], normal: &[f32]) -> (f32, &'static str) {
    let calibrated = if rule == ThresholdRule::F1Optimal { threshold::calibrated_confidence_scale(thr, oof, labels) } else { None };
    match calibrated {
        Some(s) => (s, "calibrated"),
        None => (threshold::confidence_scale(thr, normal), "normal_spread"),
    }
}

/// Refuses a label whose colour is not `#RRGGBB`.
fn check_label_colors(set: &TrainSet) -> Result<()> {
    for l in &set.labels {
        if segmentation::parse_hex_color(&l.color).is_none() {
            return Err(Error::Input(format!("label {:?} has colour {:?}; expected #RRGGBB", l.name, l.color)));
        }
    }
    Ok(())
}

/// The backbone a new model records: its id, taps and the SHA-256 of its file.
fn backbone_spec(backbone: &Backbone) -> BackboneSpec {
    BackboneSpec {
        id: BACKBONE_ID.into(),
        taps: vec!["stride8:block4:40ch".into(), "stride16:block10:112ch".into()],
        sha256: Some(backbone.checksum().to_string()),
    }
}

/// A new model's input: `width × height`, resized with [`RESIZE`], normalised to `[-1, 1]`.
fn input_spec(width: u32, height: u32) -> InputSpec {
    InputSpec {
        width,
        height,
        resize: "any image is resized (bilinear, antialiased, aspect not kept) to width × height before the backbone; masks and heat maps are resized back to the image's own size".into(),
        mean: [0.5; 3],
        std: [0.5; 3],
        resize_filter: RESIZE,
    }
}

/// A new model's PatchCore settings: its final memory bank (and PCA), the embedding's tap weights and the
/// reweighting option.
fn patchcore_spec(bank: &MemoryBank, tap_weights: Option<Vec<f32>>, opts: &TrainOptions) -> PatchCoreSpec {
    PatchCoreSpec {
        embed_dim: EMBED_DIM,
        knn_dim: bank.pca.as_ref().map(|p| p.components_kept()),
        pca_residual: bank.pca.as_ref().is_some_and(|p| p.residual),
        pool_kernel: 3,
        pool_zero_pad: opts.pool_zero_pad,
        tap_weights,
        bank_size: bank.len(),
        reweight_neighbours: if opts.reweight_neighbours >= 2 { opts.reweight_neighbours } else { 0 },
        blur_sigma: anomaly_map::SIGMA,
        image_score: if opts.reweight_neighbours >= 2 {
            "max patch nearest-neighbour distance, reweighted by the nearest bank row's neighbourhood".into()
        } else {
            "max patch nearest-neighbour distance".into()
        },
    }
}

/// The unsupervised score: PatchCore's, fused with the Gaussian's on their normal scales (`scales`) when there
/// are any. The weight is the option's, or with labelled anomalies the best by out-of-fold AUROC, or
/// [`DEFAULT_GAUSSIAN_WEIGHT`]. Returns the weight, each weight's AUROC (when chosen), and the out-of-fold scores.
fn fuse_gaussian(
    scales: Option<&(NormalScale, NormalScale)>,
    oof_pc: &[f32],
    oof_g: &[f32],
    labels: &[bool],
    labelled: bool,
    opts: &TrainOptions,
) -> (f32, Vec<Option<f64>>, Vec<f32>) {
    let Some((ps, gs)) = scales else {
        return (0.0, Vec::new(), oof_pc.to_vec());
    };
    let fused = |w: f32| -> Vec<f32> { oof_pc.iter().zip(oof_g).map(|(&p, &g)| gaussian::fuse(ps, gs, w, p, g)).collect() };
    let mut aurocs = Vec::new();
    let w = match opts.gaussian_weight {
        Some(w) => w.clamp(0.0, 1.0),
        None if labelled => {
            aurocs = BLEND_WEIGHTS.iter().map(|&w| metrics::auroc(&fused(w), labels)).collect();
            BLEND_WEIGHTS[choose_blend(&aurocs, 0.005)]
        }
        None => DEFAULT_GAUSSIAN_WEIGHT,
    };
    tracing::debug!(weight = w, auroc_gaussian = ?metrics::auroc(oof_g, labels), "Gaussian fusion");
    let oof = if w > 0.0 { fused(w) } else { oof_pc.to_vec() };
    (w, aurocs, oof)
}

/// The threshold on out-of-fold scores: F1-optimal with at least 3 labelled anomalies, otherwise the one that
/// holds `normal_fpr` on the normal scores. Returns it with its rule and, for the latter, the rate.
fn choose_threshold(oof: &[f32], labels: &[bool], normal_fpr: f64) -> (f32, ThresholdRule, Option<f64>) {
    let n_anom = labels.iter().filter(|&&y| y).count();
    if let Some((t, _)) = (n_anom >= 3).then(|| threshold::f1_optimal(oof, labels)).flatten() {
        return (t, ThresholdRule::F1Optimal, None);
    }
    let normal: Vec<f32> = oof.iter().zip(labels).filter(|(_, &y)| !y).map(|(&s, _)| s).collect();
    (threshold::from_normals_at_fpr(&normal, normal_fpr).unwrap_or(0.0), ThresholdRule::NormalQuantile, Some(normal_fpr))
}

/// The evaluation without test images: the training images' out-of-fold scores at the threshold.
fn cross_validated(ids: &[&str], labels: &[bool], oof: &[f32], thr: f32, conf_scale: f32) -> Evaluation {
    let images: Vec<ImageResult> = (0..ids.len())
        .map(|i| {
            let (p, c) = threshold::verdict(oof[i], thr, conf_scale);
            ImageResult { id: ids[i].to_string(), anomalous: labels[i], predicted_anomalous: p, score: oof[i], confidence: c }
        })
        .collect();
    Evaluation::from_images("cross_validation", thr, images)
}

/// The supervised image score chosen over the unsupervised one: its fold heads, the blend weight and the rank
/// scales the blend is computed on, and the blended out-of-fold scores.
struct Supervised {
    heads: Vec<LinearHead>,
    weight: f32,
    patchcore_ranks: RankScale,
    supervised_ranks: RankScale,
    oof: Vec<f32>,
}

/// One logistic regression per fold over `input: (N, F)` (pooled features, and the image scores when the
/// heads take them) gives out-of-fold logits; the unsupervised score `oof_u` alone, the supervised score alone
/// and their rank blends are compared by out-of-fold AUROC (figures into `summary`). `None` when the
/// unsupervised score alone is kept.
fn supervised_score(
    input: &Tensor,
    labels: &[bool],
    folds: &[usize],
    k: usize,
    oof_u: &[f32],
    opts: &TrainOptions,
    summary: &mut TrainingSummary,
) -> Result<Option<Supervised>> {
    let total = labels.len();
    let index = |v: &[usize]| Tensor::f_from_slice(&v.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let img_opts = FitOptions { steps: 200, learning_rate: 0.05, l2: 0.1 };
    let onehot = |idx: &[usize]| -> Result<Tensor> {
        let v: Vec<f32> = idx.iter().flat_map(|&i| if labels[i] { [0.0, 1.0] } else { [1.0, 0.0] }).collect();
        Ok(Tensor::f_from_slice(&v)?.f_view([idx.len() as i64, 2])?)
    };
    let mut oof_lr = vec![0f32; total];
    let mut heads = Vec::with_capacity(k);
    for f in 0..k {
        let tr: Vec<usize> = (0..total).filter(|&i| folds[i] != f).collect();
        let te: Vec<usize> = (0..total).filter(|&i| folds[i] == f).collect();
        let y = onehot(&tr)?;
        let head = LinearHead::fit(&input.f_index_select(0, &index(&tr)?)?, &y, &segmentation::balanced_weights(&y)?, img_opts)?;
        let s = f32_values(&image_logit(&head, &input.f_index_select(0, &index(&te)?)?)?)?;
        for (j, &i) in te.iter().enumerate() {
            oof_lr[i] = s[j];
        }
        heads.push(head);
    }
    let rp = RankScale::new(oof_u.to_vec());
    let rl = RankScale::new(oof_lr.clone());
    let blends: Vec<Vec<f32>> = BLEND_WEIGHTS.iter().map(|&w| (0..total).map(|i| blend(&rp, &rl, w, oof_u[i], oof_lr[i])).collect()).collect();
    let aurocs: Vec<Option<f64>> = blends.iter().map(|b| metrics::auroc(b, labels)).collect();
    let best = match opts.supervised_weight {
        Some(w) => BLEND_WEIGHTS.iter().position(|&b| (b - w).abs() < 1e-6).ok_or_else(|| {
            Error::Input(format!("supervised_weight must be one of {BLEND_WEIGHTS:?}; got {w}"))
        })?,
        None => choose_blend(&aurocs, 0.005),
    };
    summary.oof_auroc_supervised = aurocs[BLEND_WEIGHTS.len() - 1];
    summary.oof_auroc_combined = aurocs[best];
    summary.oof_auroc_by_weight = BLEND_WEIGHTS.iter().zip(&aurocs).map(|(&w, &a)| (w, a)).collect();
    tracing::debug!(?aurocs, weight = BLEND_WEIGHTS[best], "supervised blend");
    if best == 0 {
        return Ok(None);
    }
    Ok(Some(Supervised { heads, weight: BLEND_WEIGHTS[best], patchcore_ranks: rp, supervised_ranks: rl, oof: blends[best].clone() }))
}

/// The segmentation head (step 5 of training): a linear classifier of patch embeddings plus their out-of-fold
/// patch scores into background and the labels. Rows: every stride-8 cell of every image with an out-of-fold
/// map; anomalous cells (any label pixel) are all kept (up to `MAX_ANOMALY_ROWS`), background cells are sampled
/// so that there are at most `MAX_HEAD_ROWS` rows. `None` when no anomalous cell was found.
#[allow(clippy::too_many_arguments)]
fn fit_segmentation_head(
    samples: &[&Sample],
    items: &[Item],
    oof_map: &dyn Fn(usize) -> Result<Tensor>,
    label_colors: &[[u8; 3]],
    (width, height): (u32, u32),
    pc_norm: f32,
    seed: u64,
) -> Result<Option<LinearHead>> {
    let classes = 1 + label_colors.len() as i64;
    const MAX_HEAD_ROWS: usize = 16_384;
    const MAX_ANOMALY_ROWS: usize = 8_192;
    let (mut anom_x, mut anom_y, mut bg_x) = (Vec::new(), Vec::new(), Vec::new());
    for (i, s) in samples.iter().enumerate() {
        if s.anomalous && s.mask.is_none() {
            continue;
        }
        let x = segmentation::head_rows(&items[i].embedding, &oof_map(i)?, pc_norm)?;
        match &s.mask {
            Some(m) if s.anomalous => {
                let mask = m.load_mask()?;
                let cm = segmentation::mask_to_classes(&mask, label_colors, width, height);
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
    let mut rng = SplitMix64::new(seed ^ 0x5E6);
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
        let head = LinearHead::fit(&x, &y, &w, FitOptions { steps: 300, learning_rate: 0.05, l2: 1e-3 })?;
        tracing::debug!(rows = x.size()[0], "segmentation head trained");
        return Ok(Some(head));
    }
    Ok(None)
}
