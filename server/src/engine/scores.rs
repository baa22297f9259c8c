//! The image score's parts shared by training and detection: pooled backbone features for the supervised
//! heads, the supervised logit of a two-class head, the blend weights tried and the rank blend of the
//! unsupervised and the supervised score, and the choice of a weight by out-of-fold AUROC.

use super::backbone::{Features, S16_CHANNELS, S8_CHANNELS};
use super::error::Result;
use super::segmentation::LinearHead;
use super::threshold::RankScale;
use tch::{Kind, Tensor};

/// Blend weights of the supervised score tried (0 = PatchCore alone, 1 = supervised alone); also the
/// Gaussian score's fusion weights tried.
pub(super) const BLEND_WEIGHTS: [f32; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

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

/// The supervised image logit: `logit(anomaly) − logit(normal)` of a two-class head, `(N, F)` → `(N,)`.
pub(super) fn image_logit(head: &LinearHead, x: &Tensor) -> Result<Tensor> {
    let l = head.logits(x)?;
    Ok(l.f_select(1, 1)?.f_sub(&l.f_select(1, 0)?)?)
}

/// The blend of PatchCore's and the supervised score: `(1 − w) · rank_pc + w · rank_sup`.
pub(super) fn blend(rp: &RankScale, rl: &RankScale, w: f32, pc: f32, lr: f32) -> f32 {
    if w <= 0.0 {
        return rp.apply(pc);
    }
    if w >= 1.0 {
        return rl.apply(lr);
    }
    (1.0 - w) * rp.apply(pc) + w * rl.apply(lr)
}

/// Picks the blend weight by out-of-fold AUROC: the best of `BLEND_WEIGHTS` (ties: the smaller weight), but
/// PatchCore alone unless the best beats it by more than `margin`. `aurocs[i]` belongs to `BLEND_WEIGHTS[i]`.
pub(super) fn choose_blend(aurocs: &[Option<f64>], margin: f64) -> usize {
    let pc = aurocs.first().copied().flatten().unwrap_or(0.0);
    let mut best = 0;
    for (i, a) in aurocs.iter().enumerate() {
        if let Some(a) = a {
            if *a > aurocs[best].unwrap_or(f64::NEG_INFINITY) + 1e-12 {
                best = i;
            }
        }
    }
    if best != 0 && aurocs[best].unwrap_or(0.0) > pc + margin {
        best
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_is_chosen_by_out_of_fold_auroc_and_never_worse_than_patchcore() {
        // Weights 0, .25, .5, .75, 1.
        assert_eq!(choose_blend(&[Some(0.90), Some(0.93), Some(0.95), Some(0.94), Some(0.80)], 0.005), 2);
        // Supervised alone is allowed to win.
        assert_eq!(choose_blend(&[Some(0.70), Some(0.80), Some(0.85), Some(0.90), Some(0.97)], 0.005), 4);
        // Within the margin: PatchCore alone.
        assert_eq!(choose_blend(&[Some(0.95), Some(0.953), Some(0.954), Some(0.9), Some(0.8)], 0.005), 0);
        // Ties go to the smaller weight.
        assert_eq!(choose_blend(&[Some(0.8), Some(0.9), Some(0.9), Some(0.9), Some(0.9)], 0.005), 1);
        assert_eq!(choose_blend(&[None, None, None, None, None], 0.005), 0);
        // The blend maps both scores onto their rank scales.
        let rp = RankScale::new(vec![1.0, 2.0, 3.0]);
        let rl = RankScale::new(vec![-1.0, 0.0, 1.0]);
        assert_eq!(blend(&rp, &rl, 0.0, 2.0, 1.0), 0.5);
        assert_eq!(blend(&rp, &rl, 1.0, 2.0, 1.0), 1.0);
        assert_eq!(blend(&rp, &rl, 0.5, 2.0, 1.0), 0.75);
    }
}
