//! The input size search (step 1 of training, `train.rs`): features and out-of-fold scores (`folds`) at the size
//! chosen from the training images, and with labelled anomalies at a 1.5× larger input too, kept for a clear
//! out-of-fold gain. A large set compares both sizes on a seeded subset first ([`size_probe`]).

use super::backbone::Backbone;
use super::coreset::SplitMix64;
use super::error::Result;
use super::folds::{out_of_fold, BankSymmetries, OutOfFold};
use super::mirror::bank_symmetries;
use super::input_size::choose_input_size_for;
use super::options::{Progress, StageClock, TrainOptions};
use super::samples::Sample;

/// The input size search tries a long side up to this (px).
const MAX_SEARCHED_LONG_SIDE: u32 = 960;

/// Out-of-fold AUROC the larger input must gain to be kept.
const SIZE_MARGIN: f64 = 0.02;

/// Features and out-of-fold scores at the input size chosen from every training image's size; with labelled
/// anomalies and no size given, a 1.5× larger input is tried too and kept when its out-of-fold AUROC is better
/// by more than [`SIZE_MARGIN`] (small defects on large images). Also returns the sizes tried and their AUROCs,
/// and the views of normal images the banks hold (decided once, at the first size).
#[allow(clippy::type_complexity)]
pub(super) fn features_at_best_size(
    backbone: &Backbone,
    samples: &[&Sample],
    labels: &[bool],
    labelled: bool,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
    clock: &mut StageClock,
) -> Result<(OutOfFold, Vec<((u32, u32), Option<f64>)>, BankSymmetries)> {
    let dims: Vec<(u32, u32)> = samples.iter().map(|s| s.image.dimensions()).collect::<Result<_>>()?;
    let base = choose_input_size_for(&dims, opts.input_long_side)?;
    clock.lap("image sizes");
    let bank = bank_symmetries(backbone, samples, labels, base, opts)?;
    clock.lap("mirror test");
    let mut oof = out_of_fold(backbone, samples, labels, base, &bank, opts, progress, clock)?;
    let mut size_aurocs = vec![(base, oof.best_auroc(labels))];
    if opts.input_long_side.is_none() && opts.size_search && labelled && size_aurocs[0].1.is_some_and(|a| a < 0.99) {
        let long = base.0.max(base.1);
        let bigger = choose_input_size_for(&dims, Some(((long as f64 * 1.5) as u32).min(MAX_SEARCHED_LONG_SIDE)))?;
        if bigger.0.max(bigger.1) > long {
            // A large set first compares both sizes on a seeded subset (the base size's features reused): most
            // sets keep their size, and the subset costs a fraction of the larger size's features for every image.
            let worth = match size_probe(labels, opts.seed) {
                Some(idx) => {
                    let (small, sub_labels) = oof.subset(&idx, opts, progress)?;
                    clock.lap("size probe at the base size");
                    let sub: Vec<&Sample> = idx.iter().map(|&i| samples[i]).collect();
                    let large = out_of_fold(backbone, &sub, &sub_labels, bigger, &bank, opts, progress, clock)?.best_auroc(&sub_labels);
                    let small = small.best_auroc(&sub_labels);
                    tracing::debug!(?small, ?large, images = idx.len(), "input size probe");
                    let worth = large.unwrap_or(0.0) > small.unwrap_or(0.0) + SIZE_MARGIN;
                    if !worth {
                        size_aurocs.push((bigger, large));
                    }
                    worth
                }
                None => true,
            };
            if worth {
                let other = out_of_fold(backbone, samples, labels, bigger, &bank, opts, progress, clock)?;
                let a = other.best_auroc(labels);
                size_aurocs.push((bigger, a));
                // The larger input costs (1.5)² = 2.25× per detection: kept only for a clear gain.
                if a.unwrap_or(0.0) > size_aurocs[0].1.unwrap_or(0.0) + SIZE_MARGIN {
                    oof = other;
                }
            }
        }
        tracing::debug!(?size_aurocs, chosen = ?(oof.width, oof.height), "input size search");
    }
    Ok((oof, size_aurocs, bank))
}

/// Training sets larger than this decide the input size search on a subset first ([`size_probe`]).
const SIZE_PROBE_ABOVE: usize = 100;

/// The size search's subset of a large labelled set (`None` for a set of at most [`SIZE_PROBE_ABOVE`] images):
/// up to 40 anomalies and normals to make 80 images (at least 40), a seeded choice.
fn size_probe(labels: &[bool], seed: u64) -> Option<Vec<usize>> {
    if labels.len() <= SIZE_PROBE_ABOVE {
        return None;
    }
    let mut rng = SplitMix64::new(seed ^ 0x512E);
    let mut pick = |class: bool, n: usize| -> Vec<usize> {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        idx.truncate(n);
        idx
    };
    let anomalies = pick(true, 40);
    let normals = pick(false, (80 - anomalies.len()).max(40));
    let mut idx: Vec<usize> = anomalies.into_iter().chain(normals).collect();
    idx.sort_unstable();
    Some(idx)
}
