//! Decision threshold and LFV-style confidence.
//!
//! - With enough labelled anomalies the threshold maximises F1 on held-out (out-of-fold) scores, placed
//!   half-way between the two scores that bound the best split.
//! - Otherwise it comes from held-out normal scores alone and holds a chosen false-positive rate `α`
//!   (default 1 %): with enough normals (`n·α ≥ 1`) it is the split-conformal quantile, the
//!   `⌈(n + 1)(1 − α)⌉`-th smallest out-of-fold normal score (Vovk et al., 2005; Lei et al., 2018: a new
//!   normal image exceeds it with probability at most `α`), so one odd training image moves it by one order
//!   statistic at most; with fewer normals it is the `1 − α` quantile of a log-normal fitted robustly (median
//!   and MAD of the log scores), which no single image can drag.
//! - `Confidence` follows LFV's meaning, confidence *in the verdict*: a logistic function of the distance to
//!   the threshold, exactly 0.5 at the threshold, increasing with the score above it (anomalous verdict) and
//!   decreasing with the score below it (normal verdict). With labelled anomalies its scale is fitted to the
//!   out-of-fold scores ([`calibrated_confidence_scale`]): the estimated probability that the verdict is right.
//!   Without them it is set by the normal scores alone ([`confidence_scale`]: the median normal image at 0.95).

use serde::{Deserialize, Serialize};

/// How the threshold was chosen, recorded in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// F1-optimal on out-of-fold scores of labelled normal and anomalous training images.
    F1Optimal,
    /// From out-of-fold normal scores only (mean + 3σ, at least their maximum). Models trained before the
    /// quantile rule.
    NormalOnly,
    /// From out-of-fold normal scores only, holding a chosen false-positive rate ([`from_normals_at_fpr`]).
    NormalQuantile,
}

/// The F1-optimal threshold: every split between consecutive distinct scores is tried; the winner is the
/// midpoint of the two scores around the best split (ties: the lowest such threshold). Returns
/// `(threshold, f1)`; `None` without positives or negatives.
pub fn f1_optimal(scores: &[f32], labels: &[bool]) -> Option<(f32, f64)> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).filter(|(s, _)| s.is_finite()).collect();
    let pos = pairs.iter().filter(|p| p.1).count();
    if pos == 0 || pos == pairs.len() {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold below everything: all predicted anomalous.
    let (mut best_t, mut best_f1) = (pairs[0].0 - 1e-6f32.max(pairs[0].0.abs() * 1e-6), f1(pos as u64, (pairs.len() - pos) as u64, 0));
    let (mut fn_, mut tn) = (0u64, 0u64);
    let mut i = 0;
    while i < pairs.len() {
        let s = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == s {
            if pairs[i].1 {
                fn_ += 1
            } else {
                tn += 1
            }
            i += 1;
        }
        // Everything up to and including `s` is predicted normal.
        let tp = pos as u64 - fn_;
        let fp = (pairs.len() - pos) as u64 - tn;
        let f = f1(tp, fp, fn_);
        if f > best_f1 + 1e-12 {
            best_f1 = f;
            best_t = if i < pairs.len() { s + (pairs[i].0 - s) / 2.0 } else { s + s.abs().max(1e-6) * 1e-3 };
        }
    }
    Some((best_t, best_f1))
}

fn f1(tp: u64, fp: u64, fn_: u64) -> f64 {
    if tp == 0 {
        0.0
    } else {
        2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
    }
}

/// The one-class threshold: `max(mean + 3σ, max)` of held-out normal scores.
pub fn from_normals(normal_scores: &[f32]) -> Option<f32> {
    let v: Vec<f64> = normal_scores.iter().filter(|s| s.is_finite()).map(|&s| s as f64).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    Some((mean + 3.0 * var.sqrt()).max(max) as f32)
}

/// The one-class threshold holding false-positive rate `fpr` on normal images, from held-out normal scores
/// (see the module notes): the conformal quantile when `n·fpr ≥ 1`, else a robust log-normal quantile (a
/// robust normal quantile when a score is ≤ 0). Images scoring at or above it are anomalous.
pub fn from_normals_at_fpr(normal_scores: &[f32], fpr: f64) -> Option<f32> {
    let mut v: Vec<f64> = normal_scores.iter().filter(|s| s.is_finite()).map(|&s| s as f64).collect();
    if v.is_empty() || !(fpr > 0.0 && fpr < 1.0) {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let k = ((n + 1) as f64 * (1.0 - fpr)).ceil() as usize; // 1-based order statistic
    if k <= n && k >= 1 {
        // Just above the k-th score (not half-way to the next: that one may be the odd image).
        let t = v[k - 1] + v[k - 1].abs().max(1e-6) * 1e-6;
        return Some(t as f32);
    }
    let z = normal_quantile(1.0 - fpr);
    let positive = v[0] > 0.0;
    let x: Vec<f64> = if positive { v.iter().map(|s| s.ln()).collect() } else { v.clone() };
    let med = median_sorted(&x);
    let mut dev: Vec<f64> = x.iter().map(|s| (s - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mut sigma = 1.4826 * median_sorted(&dev);
    if sigma <= 0.0 {
        // More than half the scores are equal: fall back to the standard deviation, then to a small spread.
        let mean = x.iter().sum::<f64>() / n as f64;
        sigma = (x.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        if sigma <= 0.0 {
            sigma = if positive { 0.01 } else { med.abs().max(1e-6) * 0.01 };
        }
    }
    let t = med + z * sigma;
    Some(if positive { t.exp() } else { t } as f32)
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The standard normal quantile function (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.383577518672690e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The logistic scale of the confidence: the median normal score sits at confidence 0.95 (normal), i.e.
/// `scale = (threshold - median_normal) / ln 19`. Falls back to a tenth of |threshold| (or 1).
pub fn confidence_scale(threshold: f32, normal_scores: &[f32]) -> f32 {
    let mut v: Vec<f32> = normal_scores.iter().copied().filter(|s| s.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    let fallback = if threshold.abs() > 0.0 { threshold.abs() * 0.1 } else { 1.0 };
    if v.is_empty() {
        return fallback;
    }
    let median = v[v.len() / 2];
    let s = (threshold - median) / 19f32.ln();
    if s.is_finite() && s > 0.0 {
        s
    } else {
        fallback
    }
}

/// The confidence scale fitted to out-of-fold scores of labelled normal and anomalous images: Platt scaling
/// (Platt, 1999) with its midpoint held at the threshold, `P(anomalous | x) = σ((x − threshold) / scale)`, the
/// one parameter by maximum likelihood with each class weighted alike (a line where good and defective parts
/// are equally common) and Platt's smoothed targets (`(n₊ + 1) / (n₊ + 2)` and `1 / (n₋ + 2)`, which keep the
/// scale finite when the classes are separated). So `Confidence` is the estimated probability that the verdict
/// is right, whatever the score's own scale: comparable across models and retrains. `None` without both
/// classes or when higher scores are not more often anomalous.
pub fn calibrated_confidence_scale(threshold: f32, scores: &[f32], labels: &[bool]) -> Option<f32> {
    let pairs: Vec<(f64, bool)> =
        scores.iter().zip(labels).filter(|(s, _)| s.is_finite()).map(|(&s, &y)| ((s - threshold) as f64, y)).collect();
    let pos = pairs.iter().filter(|p| p.1).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (t_pos, t_neg) = ((pos as f64 + 1.0) / (pos as f64 + 2.0), 1.0 / (neg as f64 + 2.0));
    let (w_pos, w_neg) = (1.0 / pos as f64, 1.0 / neg as f64);
    // The log-likelihood is concave in the slope `a`: its derivative Σ w d (t − σ(a d)) falls as `a` grows.
    let slope = |a: f64| -> f64 {
        pairs
            .iter()
            .map(|&(d, y)| {
                let (t, w) = if y { (t_pos, w_pos) } else { (t_neg, w_neg) };
                w * d * (t - 1.0 / (1.0 + (-a * d).exp()))
            })
            .sum()
    };
    let mut mags: Vec<f64> = pairs.iter().map(|p| p.0.abs()).filter(|&d| d > 0.0).collect();
    mags.sort_by(f64::total_cmp);
    let typical = *mags.get(mags.len() / 2)?;
    let (mut lo, mut hi) = ((1e-4 / typical).ln(), (1e4 / typical).ln());
    if slope(lo.exp()) <= 0.0 {
        return None;
    }
    if slope(hi.exp()) > 0.0 {
        return Some((1.0 / hi.exp()) as f32);
    }
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if slope(mid.exp()) > 0.0 {
            lo = mid
        } else {
            hi = mid
        }
    }
    let s = 1.0 / ((lo + hi) / 2.0).exp();
    (s.is_finite() && s > 0.0).then_some(s as f32)
}

/// `(is_anomalous, confidence)` for a score: anomalous iff `score >= threshold`; confidence in that verdict
/// is `σ(|score - threshold| / scale)`, so exactly 0.5 at the threshold and in (0.5, 1] elsewhere.
pub fn verdict(score: f32, threshold: f32, scale: f32) -> (bool, f32) {
    let anomalous = score >= threshold;
    let z = ((score - threshold) as f64 / scale.max(f32::MIN_POSITIVE) as f64).abs();
    let conf = 1.0 / (1.0 + (-z).exp());
    (anomalous, conf as f32)
}

/// A monotone map of a raw score onto [0, 1] by its position among reference scores (an empirical CDF,
/// linearly interpolated between sorted references and extended linearly beyond them so that the order of
/// any two scores is kept). Used to rank-average two scores on different scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankScale {
    /// Sorted reference scores.
    pub refs: Vec<f32>,
}

impl RankScale {
    pub fn new(mut refs: Vec<f32>) -> Self {
        refs.retain(|s| s.is_finite());
        refs.sort_by(f32::total_cmp);
        RankScale { refs }
    }

    pub fn apply(&self, x: f32) -> f32 {
        let r = &self.refs;
        let n = r.len();
        if n < 2 {
            return x;
        }
        let span = (r[n - 1] - r[0]).max(1e-12);
        let last = (n - 1) as f32;
        if x <= r[0] {
            return (x - r[0]) / span / last;
        }
        if x >= r[n - 1] {
            return 1.0 + (x - r[n - 1]) / span / last;
        }
        // First index with r[i] > x.
        let i = r.partition_point(|&v| v <= x);
        let (a, b) = (r[i - 1], r[i]);
        let frac = if b > a { (x - a) / (b - a) } else { 0.0 };
        ((i - 1) as f32 + frac) / last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_threshold_is_midway_in_the_gap() {
        let s = [0.1, 0.2, 0.3, 0.5, 0.6];
        let y = [false, false, false, true, true];
        let (t, f) = f1_optimal(&s, &y).unwrap();
        assert!((t - 0.4).abs() < 1e-6, "{t}");
        assert_eq!(f, 1.0);
        // Overlap: normals 0.1 0.5, anomalies 0.4 0.6 0.7. Best: threshold between 0.1 and 0.4 -> TP 3, FP 1
        // (F1 6/7) beats between 0.5 and 0.6 -> TP 2, FN 1 (F1 0.8).
        let s = [0.1, 0.5, 0.4, 0.6, 0.7];
        let y = [false, false, true, true, true];
        let (t, f) = f1_optimal(&s, &y).unwrap();
        assert!((t - 0.25).abs() < 1e-6, "{t}");
        assert!((f - 6.0 / 7.0).abs() < 1e-9);
        assert!(f1_optimal(&[0.1], &[true]).is_none());
        assert!(f1_optimal(&[f32::NAN, f32::NAN], &[true, false]).is_none());
    }

    #[test]
    fn normal_only_threshold() {
        // mean 2, σ = sqrt(2/3): 2 + 3·0.816 = 4.449 > max 3.
        let t = from_normals(&[1.0, 2.0, 3.0]).unwrap();
        assert!((t - (2.0 + 3.0 * (2.0f32 / 3.0).sqrt())).abs() < 1e-5);
    }

    #[test]
    fn normal_quantile_matches_tables() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.99) - 2.326348).abs() < 1e-5);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-5);
    }

    #[test]
    fn quantile_threshold_holds_the_false_positive_rate_and_ignores_one_odd_image() {
        // 199 normals 1..=199: α = 1 % → k = ⌈200 · 0.99⌉ = 198 → just above 198. Plus one wild score:
        // k = ⌈201 · 0.99⌉ = 199 → just above 199, one order statistic up.
        let mut s: Vec<f32> = (1..=199).map(|v| v as f32).collect();
        let base = from_normals_at_fpr(&s, 0.01).unwrap();
        assert!(base > 198.0 && base < 198.01, "{base}");
        s.push(1e6);
        let with_outlier = from_normals_at_fpr(&s, 0.01).unwrap();
        assert!(with_outlier > 199.0 && with_outlier < 199.01, "one odd image sets the threshold: {with_outlier}");
        // The old rule would have put it at the outlier.
        assert!(from_normals(&s).unwrap() >= 1e6);
        // On fresh scores from the same distribution about α of them are flagged.
        let mut rng = crate::engine::coreset::SplitMix64::new(3);
        let train: Vec<f32> = (0..400).map(|_| (1.0 + 0.2 * rng.normal()).exp() as f32).collect();
        let t = from_normals_at_fpr(&train, 0.01).unwrap();
        let fresh: Vec<f32> = (0..20_000).map(|_| (1.0 + 0.2 * rng.normal()).exp() as f32).collect();
        let fpr = fresh.iter().filter(|&&v| v >= t).count() as f64 / fresh.len() as f64;
        assert!(fpr < 0.025 && fpr > 0.002, "false-positive rate {fpr}");
        // Few normals: the robust log-normal quantile, also blind to one outlier.
        let few: Vec<f32> = (0..19).map(|_| (1.0 + 0.2 * rng.normal()).exp() as f32).collect();
        let t_few = from_normals_at_fpr(&few, 0.01).unwrap();
        let mut few_odd = few.clone();
        few_odd.push(1e4);
        let t_odd = from_normals_at_fpr(&few_odd, 0.01).unwrap();
        // Bounded influence: the outlier moves it by about one rank of the median and MAD, not to itself.
        assert!((t_odd / t_few - 1.0).abs() < 0.25, "{t_few} vs {t_odd}");
        assert!(from_normals(&few_odd).unwrap() >= 1e4);
        let fpr = fresh.iter().filter(|&&v| v >= t_few).count() as f64 / fresh.len() as f64;
        assert!(fpr < 0.06, "false-positive rate with 19 normals {fpr}");
        assert!(from_normals_at_fpr(&[], 0.01).is_none());
        assert!(from_normals_at_fpr(&[1.0], 0.0).is_none());
        assert!(from_normals_at_fpr(&[-1.0, 0.0, 1.0], 0.01).unwrap().is_finite());
    }

    #[test]
    fn confidence_is_half_at_threshold_and_monotone() {
        let (a, c) = verdict(2.0, 2.0, 0.5);
        assert!(a);
        assert_eq!(c, 0.5);
        let mut prev = 0.5;
        for s in [2.1, 2.5, 3.0, 5.0] {
            let (a, c) = verdict(s, 2.0, 0.5);
            assert!(a && c > prev);
            prev = c;
        }
        let mut prev = 0.5;
        for s in [1.9, 1.5, 1.0, -3.0] {
            let (a, c) = verdict(s, 2.0, 0.5);
            assert!(!a && c > prev);
            prev = c;
        }
        // Median normal at 0.95.
        let scale = confidence_scale(2.0, &[1.0, 1.0, 1.0]);
        assert!((verdict(1.0, 2.0, scale).1 - 0.95).abs() < 1e-6);
    }

    #[test]
    fn calibrated_confidence_matches_the_frequencies() {
        // Scores drawn so that P(anomalous | x) = σ((x − 1) / 0.5) exactly, on a grid: at each x, 1,000 images
        // of which round(1,000 · p) are anomalous, with as many of each class in all (a balanced line).
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for i in -40..=40 {
            let x = 1.0 + i as f32 * 0.05;
            let p = 1.0 / (1.0 + (-(x - 1.0) as f64 / 0.5).exp());
            let n_anom = (1000.0 * p).round() as usize;
            for j in 0..1000 {
                scores.push(x);
                labels.push(j < n_anom);
            }
        }
        let s = calibrated_confidence_scale(1.0, &scores, &labels).unwrap();
        assert!((s - 0.5).abs() < 0.01, "{s}");
        // Separated classes: finite, and steeper the farther apart they are.
        let near = calibrated_confidence_scale(0.0, &[-1.0, -0.5, 0.5, 1.0], &[false, false, true, true]).unwrap();
        let far = calibrated_confidence_scale(0.0, &[-1.0, -0.5, 0.5, 1.0].map(|x| x * 10.0), &[false, false, true, true]).unwrap();
        assert!(near.is_finite() && near > 0.0 && (far / near - 10.0).abs() < 1e-3, "{near} {far}");
        // No anomalies, or scores that say the opposite: no fit.
        assert!(calibrated_confidence_scale(0.0, &[1.0, 2.0], &[false, false]).is_none());
        assert!(calibrated_confidence_scale(0.0, &[1.0, 2.0, -1.0, -2.0], &[false, false, true, true]).is_none());
    }

    #[test]
    fn rank_scale_keeps_order() {
        let r = RankScale::new(vec![3.0, 1.0, 2.0]);
        assert_eq!(r.apply(1.0), 0.0);
        assert_eq!(r.apply(1.5), 0.25);
        assert_eq!(r.apply(3.0), 1.0);
        assert!(r.apply(4.0) > 1.0 && r.apply(0.0) < 0.0);
    }
}
