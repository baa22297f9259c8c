//! A Gaussian model of pooled normal features, after Rippel, Mertens & Merhof (2020), "Modeling the
//! Distribution of Normal Data in Pre-Trained Deep Representations for Anomaly Detection" (ICPR): the image
//! score is the Mahalanobis distance of the image's pooled backbone features from the normal training images',
//! with the covariance shrunk towards the identity by Ledoit & Wolf's (2004) rule so that it stays well
//! conditioned with fewer images than feature dimensions.
//!
//! It sees the whole image at once (global texture statistics) where PatchCore sees its worst patch, so the two
//! fail on different images; the model fuses them on out-of-fold normal scores (see `train`). Features are
//! standardised first, so the shrinkage target is the identity of the correlation matrix.

use super::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Mahalanobis scorer: `score(x) = sqrt(zᵀ P z)`, `z = (x − mean) / std`.
pub struct Gaussian {
    /// `(F,)`
    pub mean: Tensor,
    /// `(F,)`
    pub std: Tensor,
    /// `(F, F)` precision of the standardised, shrunk covariance.
    pub precision: Tensor,
}

impl Clone for Gaussian {
    fn clone(&self) -> Self {
        Gaussian { mean: self.mean.shallow_clone(), std: self.std.shallow_clone(), precision: self.precision.shallow_clone() }
    }
}

impl Gaussian {
    /// Fits `rows: (N, F)` (N ≥ 2). Returns the model and the shrinkage intensity used (0–1).
    pub fn fit(rows: &Tensor) -> Result<(Gaussian, f64)> {
        let s = rows.size();
        if s.len() != 2 || s[0] < 2 || s[1] < 1 {
            return Err(Error::Shape(format!("Gaussian fit needs (N ≥ 2, F) rows, got {s:?}")));
        }
        let (n, f) = (s[0], s[1]);
        tch::no_grad(|| {
            let x = rows.f_to_kind(Kind::Double)?;
            let mean = x.f_mean_dim([0i64].as_slice(), false, Kind::Double)?;
            let std = x.f_std_dim([0i64].as_slice(), false, false)?.f_clamp_min(1e-6)?;
            let z = x.f_sub(&mean)?.f_div(&std)?;
            let sample = z.f_tr()?.f_matmul(&z)?.f_div_scalar(n as f64)?; // (F, F), MLE
            // Ledoit–Wolf: δ = min(b̄², d²) / d², target μ·I with μ = tr(S) / F.
            let mu = sample.f_trace()?.f_double_value(&[])? / f as f64;
            let eye = Tensor::f_eye(f, (Kind::Double, tch::Device::Cpu))?;
            let d2 = sample.f_sub(&eye.f_mul_scalar(mu)?)?.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
            // Σ_k |z_k z_kᵀ − S|²_F = Σ_k (|z_k|⁴ − 2 z_kᵀ S z_k) + N |S|²_F
            let norms = z.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
            let quad = z.f_matmul(&sample)?.f_mul(&z)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
            let s_fro = sample.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
            let sum = norms.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])? - 2.0 * quad.f_sum(Kind::Double)?.f_double_value(&[])?
                + n as f64 * s_fro;
            let b2 = (sum / (n as f64 * n as f64)).max(0.0);
            let delta = if d2 > 0.0 { (b2.min(d2) / d2).clamp(0.0, 1.0) } else { 1.0 };
            let shrunk = sample.f_mul_scalar(1.0 - delta)?.f_add(&eye.f_mul_scalar(delta * mu.max(1e-12))?)?;
            let precision = Tensor::f_linalg_inv(&shrunk)?;
            Ok((
                Gaussian {
                    mean: mean.f_to_kind(Kind::Float)?,
                    std: std.f_to_kind(Kind::Float)?,
                    precision: precision.f_to_kind(Kind::Float)?.f_contiguous()?,
                },
                delta,
            ))
        })
    }

    pub fn features(&self) -> i64 {
        self.mean.size()[0]
    }

    /// Mahalanobis distances, `(N, F)` → `(N,)`.
    pub fn scores(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 2 || s[1] != self.features() {
            return Err(Error::Shape(format!("Gaussian expects (N, {}), got {s:?}", self.features())));
        }
        tch::no_grad(|| {
            let z = x.f_to_kind(Kind::Float)?.f_sub(&self.mean)?.f_div(&self.std)?;
            Ok(z.f_matmul(&self.precision)?.f_mul(&z)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_min(0.0)?.f_sqrt()?)
        })
    }
}

/// A linear map of a score onto the spread of normal scores: `(x − median) / spread`, with `spread` the
/// normal scores' median absolute deviation scaled to a standard deviation (floored). Two scores mapped by
/// their own normal scales can be added: both are 0 on a typical normal image and grow alike with how unusual
/// an image is among normals, and the order of each is kept (unlike a rank scale, nothing saturates).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormalScale {
    pub median: f32,
    pub spread: f32,
}

impl NormalScale {
    /// From normal scores (out-of-fold). `None` with fewer than 2 finite scores.
    pub fn new(normal_scores: &[f32]) -> Option<NormalScale> {
        let mut v: Vec<f32> = normal_scores.iter().copied().filter(|s| s.is_finite()).collect();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f32::total_cmp);
        let median = v[v.len() / 2];
        let mut dev: Vec<f32> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f32::total_cmp);
        let mad = dev[dev.len() / 2] * 1.4826;
        let floor = 1e-3 * median.abs().max(1e-6);
        Some(NormalScale { median, spread: mad.max(floor) })
    }

    pub fn apply(&self, x: f32) -> f32 {
        (x - self.median) / self.spread
    }
}

/// The fused unsupervised score: `(1 − w) · PatchCore + w · Gaussian`, each on its normal scale.
pub fn fuse(pc: &NormalScale, g: &NormalScale, w: f32, pc_score: f32, g_score: f32) -> f32 {
    (1.0 - w) * pc.apply(pc_score) + w * g.apply(g_score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::coreset::SplitMix64;

    #[test]
    fn mahalanobis_sees_correlation_and_shrinkage_is_bounded() {
        // Two strongly correlated features: a point along the correlation is typical, the same distance
        // across it is not — Euclidean distance cannot tell them apart, Mahalanobis must.
        let mut r = SplitMix64::new(3);
        let v: Vec<f32> = (0..400).flat_map(|_| {
            let a = r.normal() as f32;
            [a, a + 0.1 * r.normal() as f32]
        }).collect();
        let (g, delta) = Gaussian::fit(&Tensor::from_slice(&v).view([400, 2])).unwrap();
        assert!((0.0..=1.0).contains(&delta), "{delta}");
        let q = Tensor::from_slice(&[1.5f32, 1.5, 1.5, -1.5]).view([2, 2]);
        let s: Vec<f32> = Vec::try_from(&g.scores(&q).unwrap()).unwrap();
        assert!(s[1] > 3.0 * s[0], "{s:?}");
        // Fewer rows than features still gives a finite, positive-definite model.
        let few: Vec<f32> = (0..5 * 50).map(|_| r.normal() as f32).collect();
        let (g, delta) = Gaussian::fit(&Tensor::from_slice(&few).view([5, 50])).unwrap();
        assert!(delta > 0.0);
        let s: Vec<f32> = Vec::try_from(&g.scores(&Tensor::from_slice(&few[..100]).view([2, 50])).unwrap()).unwrap();
        assert!(s.iter().all(|x| x.is_finite() && *x > 0.0), "{s:?}");
        assert!(g.scores(&Tensor::zeros([1, 3], (Kind::Float, tch::Device::Cpu))).is_err());
        assert!(Gaussian::fit(&Tensor::zeros([1, 3], (Kind::Float, tch::Device::Cpu))).is_err());
    }

    #[test]
    fn normal_scale_centres_and_keeps_order() {
        let s = NormalScale::new(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(s.median, 3.0);
        // MAD = median(|x − 3|) = median(2, 1, 0, 1, 97) = 1 → spread 1.4826: the outlier does not inflate it.
        assert!((s.spread - 1.4826).abs() < 1e-5);
        assert_eq!(s.apply(3.0), 0.0);
        assert!(s.apply(200.0) > s.apply(100.0));
        assert!(NormalScale::new(&[1.0]).is_none());
        // Constant scores: a floored spread, no division by zero.
        let c = NormalScale::new(&[2.0, 2.0, 2.0]).unwrap();
        assert!(c.apply(2.5).is_finite() && c.apply(2.5) > 0.0);
        let pc = NormalScale { median: 1.0, spread: 1.0 };
        let g = NormalScale { median: 10.0, spread: 5.0 };
        assert_eq!(fuse(&pc, &g, 0.0, 3.0, 99.0), 2.0);
        assert_eq!(fuse(&pc, &g, 1.0, 99.0, 20.0), 2.0);
        assert_eq!(fuse(&pc, &g, 0.5, 3.0, 20.0), 2.0);
    }
}
