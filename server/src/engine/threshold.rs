//! Decision threshold and LFV-style confidence.
//!
//! - With enough labelled anomalies the threshold maximises F1 on held-out (out-of-fold) scores, placed
//!   half-way between the two scores that bound the best split.
//! - Otherwise it comes from held-out normal scores alone: mean + 3 standard deviations, and at least the
//!   largest held-out normal score (a one-class rule: about one false alarm in a few hundred for Gaussian
//!   scores).
//! - `Confidence` follows LFV's meaning, confidence *in the verdict*: a logistic function of the distance to
//!   the threshold, exactly 0.5 at the threshold, increasing with the score above it (anomalous verdict) and
//!   decreasing with the score below it (normal verdict).

use serde::{Deserialize, Serialize};

/// How the threshold was chosen, recorded in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// F1-optimal on out-of-fold scores of labelled normal and anomalous training images.
    F1Optimal,
    /// From out-of-fold normal scores only (mean + 3σ, at least their maximum).
    NormalOnly,
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
    fn rank_scale_keeps_order() {
        let r = RankScale::new(vec![3.0, 1.0, 2.0]);
        assert_eq!(r.apply(1.0), 0.0);
        assert_eq!(r.apply(1.5), 0.25);
        assert_eq!(r.apply(3.0), 1.0);
        assert!(r.apply(4.0) > 1.0 && r.apply(0.0) < 0.0);
    }
}
