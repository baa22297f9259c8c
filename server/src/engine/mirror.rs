//! The mirror test: do the normal images still look normal mirrored or turned? Its verdict decides which views
//! of the normal images the memory banks hold (`folds`).

use super::backbone::Backbone;
use super::coreset::SplitMix64;
use super::embedding;
use super::error::Result;
use super::folds::{bank_view_set, build_bank, chance_limit, extract, fit_pca, BankSymmetries, View};
use super::header::MirrorTest;
use super::metrics;
use super::options::TrainOptions;
use super::samples::Sample;
use tch::{Kind, Tensor};

/// Normal training images the mirror test probes at most (half in its bank, half probed).
const MIRROR_IMAGES: usize = 48;

/// Normal training images the mirror test needs.
const MIRROR_MIN_IMAGES: usize = 8;

/// Which views of the normal images the memory banks get: the options' where set, else the mirror test's
/// verdict (with fewer than [`MIRROR_MIN_IMAGES`] normals: none).
pub(super) fn bank_symmetries(
    backbone: &Backbone,
    samples: &[&Sample],
    labels: &[bool],
    size: (u32, u32),
    opts: &TrainOptions,
) -> Result<BankSymmetries> {
    let normals: Vec<&Sample> = samples.iter().zip(labels).filter(|(_, &y)| !y).map(|(s, _)| *s).collect();
    let undecided = opts.bank_flips.is_none() || opts.bank_turns.is_none();
    let test = if undecided && normals.len() >= MIRROR_MIN_IMAGES { Some(mirror_test(backbone, &normals, size, opts)?) } else { None };
    let flips = opts.bank_flips.unwrap_or_else(|| test.as_ref().is_some_and(|t| t.flips_pass()));
    let turns = opts.bank_turns.unwrap_or_else(|| test.as_ref().is_some_and(|t| t.turns_pass()));
    tracing::debug!(?test, flips, turns, "bank symmetries");
    Ok(BankSymmetries { flips, turns, test })
}

/// The mirror test (see [`MirrorTest`]): a memory bank from half of up to [`MIRROR_IMAGES`] normal images (a
/// seeded choice) scores the other half as they are, mirrored (left–right, top–bottom, both) and turned (90°,
/// 270°); each kind of view's scores are ranked against the plain images' scores.
pub(super) fn mirror_test(backbone: &Backbone, normals: &[&Sample], size: (u32, u32), opts: &TrainOptions) -> Result<MirrorTest> {
    let mut idx: Vec<usize> = (0..normals.len()).collect();
    SplitMix64::new(opts.seed ^ 0x3177).shuffle(&mut idx);
    idx.truncate(MIRROR_IMAGES);
    let (in_bank, probed) = idx.split_at(idx.len() / 2);
    let pick = |ix: &[usize]| -> Vec<&Sample> { ix.iter().map(|&i| normals[i]).collect() };
    let bank_items = extract(backbone, &pick(in_bank), size, opts, (&[], 0), |_| {})?;
    let flips = bank_view_set(true, false);
    let quarter: Vec<View> = bank_view_set(false, true).into_iter().filter(|v| v.turned).collect();
    let views: Vec<View> = flips.iter().chain(&quarter).copied().collect();
    let probe_items = extract(backbone, &pick(probed), size, opts, (&views, views.len()), |_| {})?;
    let embeddings: Vec<&Tensor> = bank_items.iter().map(|it| &it.embedding).collect();
    let seed = opts.seed ^ 0x3177;
    let pca = fit_pca(&embeddings, opts, seed)?;
    let bank = build_bank(&embeddings, opts, seed, pca.as_ref())?;
    let score = |e: &Tensor| -> Result<f32> { bank.max_nearest_distance(&embedding::to_rows(&e.f_to_kind(Kind::Float)?.f_unsqueeze(0)?)?) };
    let plain: Vec<f32> = probe_items.iter().map(|it| score(&it.embedding)).collect::<Result<_>>()?;
    // Every view kind against the plain scores: views first in `extract`'s order (unturned, then turned).
    let auroc_of = |range: std::ops::Range<usize>| -> Result<Option<f64>> {
        let mut scores = plain.clone();
        let mut labels = vec![false; plain.len()];
        for it in &probe_items {
            for e in &it.flips[range.clone()] {
                scores.push(score(e)?);
                labels.push(true);
            }
        }
        Ok(metrics::auroc(&scores, &labels))
    };
    let n = probed.len();
    Ok(MirrorTest {
        bank_images: in_bank.len(),
        probed_images: n,
        flip_auroc: auroc_of(0..flips.len())?,
        turn_auroc: auroc_of(flips.len()..views.len())?,
        flip_limit: chance_limit(n, n * flips.len()),
        turn_limit: chance_limit(n, n * quarter.len()),
    })
}
