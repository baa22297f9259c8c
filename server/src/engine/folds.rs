//! The training images' features and their out-of-fold scores (steps 1–2 of training, `train.rs`): every training
//! image through the backbone once (normal images also mirrored or turned for the bank when asked), then one
//! PCA and coreset memory bank from every normal image — the final model's — scores each normal image without
//! the rows that came from itself (leave one out) and each anomaly against all of it; a Gaussian model fitted
//! without each tenth of the normals scores them, the one fitted on every normal the anomalies. Nothing about an
//! image goes into its own score, so the out-of-fold figures that choose the weights and the threshold are
//! honest, and they are the final model's scores of new images. With labelled anomalies a larger input is tried
//! too (`size_search`).

use super::backbone::Backbone;
use super::coreset::{self, SplitMix64};
use super::embedding::{self, EMBED_DIM};
use super::gaussian::{self, Gaussian, NormalScale};
use super::header::MirrorTest;
use super::metrics;
use super::samples::Sample;
use super::options::{Progress, Stage, StageClock, TrainOptions};
use super::patchcore::MemoryBank;
use super::pca::{self, Pca};
use super::scores::{pooled_features, BLEND_WEIGHTS};
use super::tensors::f32_values;
use super::input_size::RESIZE;
use super::error::Result;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Rows of the PCA fit (a seeded sample of the normal patches).
const PCA_ROWS: usize = 50_000;

/// Features of one training image kept during training.
pub(super) struct Item {
    /// `(D, h, w)` f16
    pub(super) embedding: Tensor,
    /// `(264,)`
    pub(super) pooled: Tensor,
    /// The embeddings of the image's mirrored and turned views (normal images with `bank_flips` or
    /// `bank_turns`), each `(D, h, w)` or, turned by 90°, `(D, w, h)`, f16.
    pub(super) flips: Vec<Tensor>,
}

impl Item {
    /// The embedding and its mirrored views.
    pub(super) fn bank_views(&self) -> impl Iterator<Item = &Tensor> {
        std::iter::once(&self.embedding).chain(&self.flips)
    }
}

/// A view of an input `(1, 3, H, W)`: mirrored along some of the (H, W) axes (2, 3), after turning by 90°
/// (which makes it `(1, 3, W, H)`) or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct View {
    pub(super) turned: bool,
    mirror: &'static [i64],
}

impl View {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.turned { x.f_rot90(1, [2i64, 3].as_slice())? } else { x.shallow_clone() };
        Ok(if self.mirror.is_empty() { x } else { x.f_flip(self.mirror)? })
    }
}

/// The extra views of normal images in the memory bank: mirrored (left–right, top–bottom, both — the last is
/// the half turn) with `flips`; turned by 90°, 180° and 270° with `turns`; all eight symmetries of the square
/// with both. Views of one shape come together (they share backbone passes).
pub(super) fn bank_view_set(flips: bool, turns: bool) -> Vec<View> {
    let v = |turned, mirror| View { turned, mirror };
    let mut out = Vec::new();
    if flips || turns {
        out.push(v(false, &[2, 3])); // half turn = both mirrors
    }
    if flips {
        out.extend([v(false, &[3]), v(false, &[2])]);
    }
    if turns {
        out.extend([v(true, &[]), v(true, &[2, 3])]); // 90° and 270°
    }
    if flips && turns {
        out.extend([v(true, &[3]), v(true, &[2])]); // the two diagonal mirrors
    }
    out
}

/// Views of each normal image that [`extract`] computes for the banks, for `normals` images whose embeddings
/// take `bytes` each: all of them while the views' embeddings fit in [`VIEW_BYTES`], fewer per image beyond (at
/// least one: the images' views then still cover every symmetry between them). So the views add at most
/// `max(VIEW_BYTES, normals · bytes)` to training's memory.
fn views_per_image(normals: usize, views: usize, bytes: usize) -> usize {
    if views == 0 {
        return 0;
    }
    (VIEW_BYTES / (normals.max(1) * bytes.max(1))).clamp(1, views)
}

/// Memory the normal images' views (mirrored, turned) may take beyond one view per image.
const VIEW_BYTES: usize = 512 << 20;

/// The views of the `g`-th sample: `per_image` of `views` from index `g · per_image` on, cyclically (so that
/// consecutive samples get different ones), in `views`' order.
fn sample_views(views: &[View], per_image: usize, g: usize) -> Vec<View> {
    if views.is_empty() {
        return Vec::new();
    }
    let start = g * per_image % views.len();
    views.iter().enumerate().filter(|&(k, _)| (k + views.len() - start) % views.len() < per_image).map(|(_, &v)| v).collect()
}

/// Input pixels per backbone pass while training: eight 320×256 images. The backbone's activations grow with
/// the batch's pixels (at 960×640 a batch of eight held about a gigabyte), its speed per image hardly does.
const BATCH_PIXELS: u64 = 8 * 320 * 256;

/// Images per backbone pass at `width × height`: `batch`, fewer where their pixels exceed [`BATCH_PIXELS`] (at
/// least one).
fn batch_for(batch: usize, width: u32, height: u32) -> usize {
    let fit = BATCH_PIXELS / (width as u64 * height as u64).max(1);
    (fit as usize).clamp(1, batch.max(1))
}

/// Every sample through the backbone (batches of `batch`, at most [`BATCH_PIXELS`] a pass): its embedding and pooled features, and for normal
/// samples `per_image` of `views` (the `g`-th sample gets views `g · per_image, …` modulo their number, so that
/// consecutive images get different ones), in `views`' order, unturned before turned.
pub(super) fn extract(
    backbone: &Backbone,
    samples: &[&Sample],
    (width, height): (u32, u32),
    opts: &TrainOptions,
    (views, per_image): (&[View], usize),
    mut tick: impl FnMut(usize),
) -> Result<Vec<Item>> {
    let batch = batch_for(opts.batch_size, width, height);
    let zero_pad = opts.pool_zero_pad;
    let per_image = per_image.min(views.len());
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(batch) {
        let first = out.len();
        let mut inputs = Vec::with_capacity(chunk.len());
        for s in chunk {
            let img = s.image.load()?;
            inputs.push(Backbone::preprocess_with(&img, width, height, RESIZE)?);
        }
        let x = Tensor::f_cat(&inputs, 0)?;
        let f = backbone.forward(&x)?;
        let e = embedding::embed(&f, zero_pad)?.f_to_kind(Kind::Half)?;
        let p = pooled_features(&f)?;
        // The normal images' views, by shape (unturned, turned), in passes of at most `batch` images.
        let mut extra: Vec<Vec<Tensor>> = (0..chunk.len()).map(|_| Vec::new()).collect();
        for turned in [false, true] {
            let jobs: Vec<(usize, View)> = (0..chunk.len())
                .filter(|&i| !chunk[i].anomalous)
                .flat_map(|i| sample_views(views, per_image, first + i).into_iter().filter(|v| v.turned == turned).map(move |v| (i, v)))
                .collect();
            for part in jobs.chunks(batch) {
                let xs = part.iter().map(|(i, v)| v.apply(&inputs[*i])).collect::<Result<Vec<_>>>()?;
                let ev = embedding::embed(&backbone.forward(&Tensor::f_cat(&xs, 0)?)?, zero_pad)?.f_to_kind(Kind::Half)?;
                for (j, (i, _)) in part.iter().enumerate() {
                    extra[*i].push(ev.f_get(j as i64)?);
                }
            }
        }
        for (i, flips) in extra.into_iter().enumerate() {
            out.push(Item { embedding: e.f_get(i as i64)?, pooled: p.f_get(i as i64)?, flips });
        }
        tick(out.len());
    }
    Ok(out)
}

/// The PCA of the nearest-neighbour search, from a seeded sample of the given normals' patches (`None` when
/// `knn_dim` keeps every channel).
pub(super) fn fit_pca(embeddings: &[&Tensor], opts: &TrainOptions, seed: u64) -> Result<Option<Pca>> {
    match opts.knn_dim {
        Some(kd) if kd > 0 && kd < EMBED_DIM => {
            let rows = pca::sample_rows(embeddings, PCA_ROWS, seed ^ 0x9CA, None)?;
            let p = Pca::fit(&rows, kd)?;
            Ok(Some(if opts.pca_residual { p.with_residual() } else { p }))
        }
        _ => Ok(None),
    }
}

/// Builds a coreset memory bank from embeddings `(D, h, w)` of normal images (in PCA space when given). The
/// candidates are a seeded sample of at most `max_candidates` patch rows, gathered image by image.
pub(super) fn build_bank(embeddings: &[&Tensor], opts: &TrainOptions, seed: u64, pca: Option<&Pca>) -> Result<MemoryBank> {
    Ok(build_bank_rows(embeddings, opts, seed, pca)?.0)
}

/// [`build_bank`], and for each bank row the embedding it came from (an index into `embeddings`).
pub(super) fn build_bank_with_sources(
    embeddings: &[&Tensor],
    opts: &TrainOptions,
    seed: u64,
    pca: Option<&Pca>,
) -> Result<(MemoryBank, Vec<usize>)> {
    let (bank, rows) = build_bank_rows(embeddings, opts, seed, pca)?;
    // The embeddings' rows joined: embedding `e` holds rows `starts[e] .. starts[e + 1]`.
    let mut starts = vec![0usize];
    for e in embeddings {
        let s = e.size();
        starts.push(starts.last().copied().unwrap_or(0) + (s[1] * s[2]) as usize);
    }
    let total = starts.pop().unwrap_or(0);
    let candidates = pca::sample_row_indices(total, opts.max_candidates.max(1), seed);
    let sources = rows.iter().map(|&r| starts.partition_point(|&st| st <= candidates[r]) - 1).collect();
    Ok((bank, sources))
}

/// The bank and, per bank row, its index among the candidate rows (`pca::sample_rows`' order).
fn build_bank_rows(embeddings: &[&Tensor], opts: &TrainOptions, seed: u64, pca: Option<&Pca>) -> Result<(MemoryBank, Vec<usize>)> {
    tch::no_grad(|| {
        let all = pca::sample_rows(embeddings, opts.max_candidates.max(1), seed, pca)?;
        let n = all.size()[0] as usize;
        let mut rng = SplitMix64::new(seed);
        let k = ((n as f64 * opts.coreset_ratio).ceil() as usize).clamp(1, opts.max_bank.max(1));
        let picks = if k >= n {
            (0..n as i64).collect()
        } else {
            let proj = coreset::random_projection(all.size()[1], opts.projection_dim.max(1), seed ^ 0x5EED)?;
            let projected = all.f_matmul(&proj)?;
            coreset::grouped_k_center(&projected, k, coreset::GROUP_PICKS, &mut rng)?
        };
        let bank = all.f_index_select(0, &Tensor::f_from_slice(&picks)?)?;
        Ok((MemoryBank::new(bank, pca.cloned())?, picks.iter().map(|&p| p as usize).collect()))
    })
}

/// Seeded stratified assignment of `labels` to `k` folds (round-robin over a shuffled order per class).
pub(super) fn assign_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
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

/// The views of normal images in the memory banks, and why.
pub(super) struct BankSymmetries {
    pub(super) flips: bool,
    pub(super) turns: bool,
    pub(super) test: Option<MirrorTest>,
}

/// The AUROC of two groups of `a` and `b` scores that chance exceeds with about 16 % probability: 0.5 plus one
/// standard deviation of the Mann–Whitney statistic under no difference, `√((a + b + 1) / (12 a b))` (0.068
/// for 24 images against their 72 mirrored views).
pub fn chance_limit(a: usize, b: usize) -> f64 {
    let (a, b) = (a.max(1) as f64, b.max(1) as f64);
    0.5 + ((a + b + 1.0) / (12.0 * a * b)).sqrt()
}

/// Features of every training image at one input size and their out-of-fold PatchCore and Gaussian scores.
pub(super) struct OutOfFold {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) items: Vec<Item>,
    /// The images' labels (anomalous), in `items`' order.
    pub(super) labels: Vec<bool>,
    pub(super) tap_weights: Option<Vec<f32>>,
    pub(super) k: usize,
    pub(super) folds: Vec<usize>,
    pub(super) oof_pc: Vec<f32>,
    pub(super) oof_g: Vec<f32>,
    /// The Gaussian score could be fitted in every fold.
    pub(super) g_ok: bool,
    /// The Gaussian model of every normal image's pooled features and its shrinkage (when `g_ok`): the final
    /// model's.
    pub(super) gaussian: Option<(Gaussian, f64)>,
    /// Each image's own rows in `bank` (those of its views too; none for anomalies), left out of its scores.
    pub(super) own_rows: Vec<Vec<i64>>,
    /// The memory bank of every normal image (and its views) at this size: the final model's.
    pub(super) bank: MemoryBank,
}

impl OutOfFold {
    /// The out-of-fold scores of the images `idx` alone (their features as they are; a bank, PCA and Gaussian
    /// of their own): the size search's probe compares sizes on a subset without a second backbone pass.
    pub(super) fn subset(&self, idx: &[usize], opts: &TrainOptions, progress: &mut dyn FnMut(Progress)) -> Result<(OutOfFold, Vec<bool>)> {
        let items: Vec<Item> = idx
            .iter()
            .map(|&i| {
                let it = &self.items[i];
                Item { embedding: it.embedding.shallow_clone(), pooled: it.pooled.shallow_clone(), flips: it.flips.iter().map(|f| f.shallow_clone()).collect() }
            })
            .collect();
        let labels: Vec<bool> = idx.iter().map(|&i| self.labels[i]).collect();
        let oof = score_items(items, &labels, (self.width, self.height), self.tap_weights.clone(), opts, progress)?;
        Ok((oof, labels))
    }

    /// The best out-of-fold AUROC of the unsupervised scores (PatchCore, and its fusions with the Gaussian).
    pub(super) fn best_auroc(&self, labels: &[bool]) -> Option<f64> {
        let normals = |v: &[f32]| -> Vec<f32> { (0..v.len()).filter(|&i| !labels[i]).map(|i| v[i]).collect() };
        let mut best = metrics::auroc(&self.oof_pc, labels);
        if let (true, Some(ps), Some(gs)) = (self.g_ok, NormalScale::new(&normals(&self.oof_pc)), NormalScale::new(&normals(&self.oof_g))) {
            for &w in &BLEND_WEIGHTS[1..] {
                let fused: Vec<f32> = (0..labels.len()).map(|i| gaussian::fuse(&ps, &gs, w, self.oof_pc[i], self.oof_g[i])).collect();
                if let Some(a) = metrics::auroc(&fused, labels) {
                    best = Some(best.map_or(a, |b| b.max(a)));
                }
            }
        }
        best
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn out_of_fold(
    backbone: &Backbone,
    samples: &[&Sample],
    labels: &[bool],
    (width, height): (u32, u32),
    symmetries: &BankSymmetries,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
    clock: &mut StageClock,
) -> Result<OutOfFold> {
    let started = Instant::now();
    let n_norm = labels.iter().filter(|&&y| !y).count();

    // 1. Features (a couple of passes first: libtorch's first passes at a new size are slow).
    backbone.warm_up(width, height, 2)?;
    let total = samples.len();
    progress(Progress { stage: Stage::Features, done: 0, total });
    let views = bank_view_set(symmetries.flips, symmetries.turns);
    // An f16 embedding: EMBED_DIM channels on the stride-8 grid.
    let per_image = views_per_image(n_norm, views.len(), 2 * EMBED_DIM as usize * (width as usize / 8) * (height as usize / 8));
    let items = extract(backbone, samples, (width, height), opts, (&views, per_image), |done| {
        progress(Progress { stage: Stage::Features, done, total })
    })?;
    tracing::debug!(secs = started.elapsed().as_secs_f64(), width, height, "features extracted");
    clock.lap(&format!("features {width}×{height}"));
    // Both taps weighed alike, by the normal images' patch energy (a normalisation, like the input's).
    let tap_weights = if opts.equal_taps {
        let normals: Vec<&Tensor> = (0..total).filter(|&i| !labels[i]).map(|i| &items[i].embedding).collect();
        Some(embedding::tap_weights(&normals)?)
    } else {
        None
    };
    let items = match &tap_weights {
        Some(w) => items
            .into_iter()
            .map(|it| {
                let flips = it.flips.iter().map(|e| embedding::weigh(e, w)).collect::<Result<_>>()?;
                Ok(Item { embedding: embedding::weigh(&it.embedding, w)?, pooled: it.pooled, flips })
            })
            .collect::<Result<Vec<_>>>()?,
        None => items,
    };

    let oof = score_items(items, labels, (width, height), tap_weights, opts, progress)?;
    clock.lap(&format!("folds {width}×{height}"));
    tracing::debug!(secs = started.elapsed().as_secs_f64(), auroc = ?metrics::auroc(&oof.oof_pc, labels), width, height, "out-of-fold scores");
    Ok(oof)
}

/// Step 2 of [`out_of_fold`]: the out-of-fold scores of images whose features are known.
///
/// PatchCore: one PCA and memory bank from every normal image and its views — the final model's own — scores
/// each normal image against the rows that came from the other images only (leave one out) and each anomaly
/// against all of them: the scores a new image gets from the final model. (Banks fitted per fold on three
/// quarters of the normals scored higher than the final model does, so thresholds chosen on them sat too high
/// for new images.) The Gaussian: see [`gaussian_out_of_fold`]. The folds are the supervised heads'.
fn score_items(
    items: Vec<Item>,
    labels: &[bool],
    (width, height): (u32, u32),
    tap_weights: Option<Vec<f32>>,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<OutOfFold> {
    let total = labels.len();
    let n_norm = labels.iter().filter(|&&y| !y).count();
    let k = opts.folds.clamp(2, n_norm.max(2));
    let folds = assign_folds(labels, k, opts.seed);
    let (mut normals, mut owners) = (Vec::new(), Vec::new());
    for i in (0..total).filter(|&i| !labels[i]) {
        for e in items[i].bank_views() {
            normals.push(e);
            owners.push(i);
        }
    }
    progress(Progress { stage: Stage::CrossValidation, done: 0, total: 2 });
    let pca = fit_pca(&normals, opts, opts.seed)?;
    let (bank, sources) = build_bank_with_sources(&normals, opts, opts.seed, pca.as_ref())?;
    drop(normals);
    // Each image's own bank rows (none for anomalies: they are not in the bank).
    let mut own: Vec<Vec<i64>> = vec![Vec::new(); total];
    for (row, &e) in sources.iter().enumerate() {
        own[owners[e]].push(row as i64);
    }
    progress(Progress { stage: Stage::CrossValidation, done: 1, total: 2 });
    // Only the largest patch distance is needed here (the pruned search: a few percent of the patches searched
    // in full); the heat maps, for the segmentation head alone, are computed there (`oof_map`).
    let mut oof_pc = vec![0f32; total];
    for i in 0..total {
        let e = items[i].embedding.f_to_kind(Kind::Float)?.f_unsqueeze(0)?;
        let (at, d) = bank.argmax_nearest_excluding(&embedding::to_rows(&e)?, &own[i])?;
        oof_pc[i] = bank.reweighted(d, opts.reweight_neighbours, || embedding::patch_row(&e, at))?;
    }
    let pooled = Tensor::f_stack(&items.iter().map(|it| it.pooled.shallow_clone()).collect::<Vec<_>>(), 0)?;
    let (oof_g, gaussian) = if opts.gaussian { gaussian_out_of_fold(&pooled, labels, opts.seed)? } else { (vec![0f32; total], None) };
    progress(Progress { stage: Stage::CrossValidation, done: 2, total: 2 });
    let g_ok = gaussian.is_some();
    Ok(OutOfFold { width, height, items, labels: labels.to_vec(), tap_weights, k, folds, oof_pc, oof_g, g_ok, gaussian, own_rows: own, bank })
}

/// The out-of-fold patch score map `(h, w)` of an image's `embedding` `(D, h, w)`: against `bank` without the
/// image's own rows `own` (see [`OutOfFold::own_rows`]).
pub(super) fn oof_map(bank: &MemoryBank, embedding: &Tensor, own: &[i64]) -> Result<Tensor> {
    let e = embedding.f_to_kind(Kind::Float)?.f_unsqueeze(0)?;
    Ok(bank.score_maps_excluding(&e, own)?.f_squeeze_dim(0)?)
}

/// Folds of the normal images for the Gaussian's out-of-fold scores (each fit leaves out a tenth).
const GAUSSIAN_FOLDS: usize = 10;

/// Out-of-fold Gaussian scores of `pooled: (N, 264)` features: a normal image's from a fit on the normals of the
/// other folds (up to [`GAUSSIAN_FOLDS`]), an anomaly's from the fit on every normal, which is returned with its
/// shrinkage (the final model's). `None` when a fold leaves fewer than 4 normals to fit (the scores are then
/// zeros).
fn gaussian_out_of_fold(pooled: &Tensor, labels: &[bool], seed: u64) -> Result<(Vec<f32>, Option<(Gaussian, f64)>)> {
    let total = labels.len();
    let normal_idx: Vec<usize> = (0..total).filter(|&i| !labels[i]).collect();
    let n = normal_idx.len();
    let gk = n.min(GAUSSIAN_FOLDS).max(2);
    let mut out = vec![0f32; total];
    if n - n.div_ceil(gk) < 4 {
        return Ok((out, None));
    }
    let index = |v: &[usize]| Tensor::f_from_slice(&v.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let mut score = |fit: &[usize], scored: &[usize]| -> Result<(Gaussian, f64)> {
        let (g, delta) = Gaussian::fit(&pooled.f_index_select(0, &index(fit)?)?)?;
        if !scored.is_empty() {
            let s = f32_values(&g.scores(&pooled.f_index_select(0, &index(scored)?)?)?)?;
            for (j, &i) in scored.iter().enumerate() {
                out[i] = s[j];
            }
        }
        Ok((g, delta))
    };
    let fold = assign_folds(&vec![false; n], gk, seed ^ 0x6A55);
    for f in 0..gk {
        let fit: Vec<usize> = (0..n).filter(|&j| fold[j] != f).map(|j| normal_idx[j]).collect();
        let scored: Vec<usize> = (0..n).filter(|&j| fold[j] == f).map(|j| normal_idx[j]).collect();
        score(&fit, &scored)?;
    }
    let anomalies: Vec<usize> = (0..total).filter(|&i| labels[i]).collect();
    let full = score(&normal_idx, &anomalies)?;
    Ok((out, Some(full)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_views_are_the_symmetries_asked_for() {
        // A 2×3 input with distinct values: every symmetry of it is a different tensor.
        let x = Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([1, 1, 2, 3]);
        let distinct = |views: &[View]| {
            let mut seen: Vec<Vec<f32>> = vec![Vec::try_from(&x.view([-1])).unwrap()];
            for v in views {
                let y = v.apply(&x).unwrap();
                assert_eq!(y.size(), if v.turned { vec![1, 1, 3, 2] } else { vec![1, 1, 2, 3] });
                let flat: Vec<f32> = Vec::try_from(&y.contiguous().view([-1])).unwrap();
                assert!(!seen.contains(&flat), "{v:?} repeats a view");
                seen.push(flat);
            }
        };
        assert!(bank_view_set(false, false).is_empty());
        for (flips, turns, n, turned) in [(true, false, 3, 0), (false, true, 3, 2), (true, true, 7, 4)] {
            let views = bank_view_set(flips, turns);
            assert_eq!((views.len(), views.iter().filter(|v| v.turned).count()), (n, turned));
            distinct(&views);
        }
        // A quarter turn: (H, W) → (W, H), the first row becoming the first column read upwards.
        let turned = View { turned: true, mirror: &[] }.apply(&x).unwrap();
        assert_eq!(Vec::<f32>::try_from(&turned.contiguous().view([-1])).unwrap(), vec![2., 5., 1., 4., 0., 3.]);
    }

    #[test]
    fn each_sample_gets_its_share_of_the_views_in_order() {
        let views = bank_view_set(true, true);
        let pos = |v: &View| views.iter().position(|w| w == v).unwrap();
        for per in 1..=views.len() {
            let mut seen = vec![0usize; views.len()];
            for g in 0..views.len() {
                let own = sample_views(&views, per, g);
                assert_eq!(own.len(), per);
                // Distinct and in `views`' order (unturned before turned).
                assert!(own.windows(2).all(|w| pos(&w[0]) < pos(&w[1])), "{per} per sample, sample {g}");
                own.iter().for_each(|v| seen[pos(v)] += 1);
            }
            // As many consecutive samples as there are views see every view equally often.
            assert!(seen.iter().all(|&n| n == per), "{per}: {seen:?}");
        }
        assert_eq!(sample_views(&views, views.len(), 3), views);
        assert!(sample_views(&[], 2, 1).is_empty());
    }

    #[test]
    fn batches_keep_the_pixel_budget() {
        assert_eq!(batch_for(8, 256, 256), 8);
        assert_eq!(batch_for(8, 320, 256), 8);
        assert_eq!(batch_for(8, 512, 192), 6);
        assert_eq!(batch_for(8, 640, 416), 2);
        assert_eq!(batch_for(8, 960, 640), 1);
        assert_eq!(batch_for(0, 64, 64), 1);
    }

    #[test]
    fn views_per_image_keep_the_budget() {
        // 200 castings at 256×256: 311 kB an embedding, all 7 views fit in 512 MiB.
        let e256 = 2 * 152 * 32 * 32;
        assert_eq!(views_per_image(200, 7, e256), 7);
        // 1,000 images at 640×640 (1.9 MB each): one view each.
        let e640 = 2 * 152 * 80 * 80;
        assert_eq!(views_per_image(1000, 7, e640), 1);
        assert_eq!(views_per_image(300, 3, e640), 1);
        assert_eq!(views_per_image(100, 7, e640), 2);
        assert_eq!(views_per_image(10, 0, e256), 0);
        for n in [1usize, 8, 37, 100, 256, 1000, 5000] {
            for v in [1usize, 2, 3, 7] {
                for bytes in [e256, e640] {
                    let p = views_per_image(n, v, bytes);
                    assert!(p >= 1 && p <= v && n * p * bytes <= VIEW_BYTES.max(n * bytes), "{n} images, {v} views: {p}");
                }
            }
        }
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
}
