//! Evaluation metrics for image-level and pixel-level anomaly detection: precision, recall and F1 at a
//! threshold (LFV's `Performance`), ROC AUC and average precision (LFV's evaluation result file), ROC and PR
//! curve points, score histograms, and per-label segmentation precision / recall / F1 / IoU.
//!
//! Conventions: a higher score means more anomalous; `true` labels are anomalies (positives); a score at or
//! above the threshold is predicted anomalous.

use serde::{Deserialize, Serialize};

/// Counts of a binary decision at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    pub fn at(scores: &[f32], labels: &[bool], threshold: f32) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            match (s >= threshold, y) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }
    /// TP / (TP + FP); 0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// TP / (TP + FN); 0 when there are no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall: 2TP / (2TP + FP + FN).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    /// TP / (TP + FP + FN): intersection over union of the predicted and true positive sets.
    pub fn iou(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp + self.fn_)
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Sorts indices by descending score (NaN last), for the curve computations.
fn order_desc(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or_else(|| scores[a].is_nan().cmp(&scores[b].is_nan())));
    idx
}

/// Area under the ROC curve, with ties counted half (the Mann–Whitney statistic). `None` when either class
/// is missing.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let idx = order_desc(scores);
    // Walk groups of equal scores from the top; each negative in a group beats the positives seen before it
    // and ties with the positives inside it.
    let (mut tp_before, mut area) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        let (mut p, mut n) = (0.0, 0.0);
        while i < idx.len() && (scores[idx[i]] == s || (scores[idx[i]].is_nan() && s.is_nan())) {
            if labels[idx[i]] {
                p += 1.0
            } else {
                n += 1.0
            }
            i += 1;
        }
        area += n * (tp_before + 0.5 * p);
        tp_before += p;
    }
    Some(area / (pos * neg))
}

/// Cumulative (threshold, true positives, false positives) at each distinct score, highest first: the counts
/// of images at or above that score. NaN scores are left out.
fn cumulative_counts(scores: &[f32], labels: &[bool]) -> Vec<(f32, f64, f64)> {
    let idx = order_desc(scores);
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut out = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        if s.is_nan() {
            i += 1;
            continue;
        }
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        out.push((s, tp, fp));
    }
    out
}

/// Average precision: the sum over positives of precision at each distinct threshold, weighted by the recall
/// step (scikit-learn's definition). `None` without positives.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let (mut ap, mut prev_recall) = (0.0f64, 0.0f64);
    for (_, tp, fp) in cumulative_counts(scores, labels) {
        let recall = tp / pos;
        ap += (recall - prev_recall) * tp / (tp + fp);
        prev_recall = recall;
    }
    Some(ap)
}

/// One point of a curve: for ROC `x` = false-positive rate and `y` = true-positive rate; for PR `x` = recall
/// and `y` = precision; `threshold` = the score from which images are called anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f32,
    pub x: f64,
    pub y: f64,
}

/// ROC and PR curve points at every distinct score (ROC starts at (0, 0)).
pub fn curves(scores: &[f32], labels: &[bool]) -> (Vec<CurvePoint>, Vec<CurvePoint>) {
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let neg = labels.len() as f64 - pos;
    let mut roc = vec![CurvePoint { threshold: f32::INFINITY, x: 0.0, y: 0.0 }];
    let mut pr = Vec::new();
    for (s, tp, fp) in cumulative_counts(scores, labels) {
        roc.push(CurvePoint {
            threshold: s,
            x: if neg > 0.0 { fp / neg } else { 0.0 },
            y: if pos > 0.0 { tp / pos } else { 0.0 },
        });
        pr.push(CurvePoint { threshold: s, x: if pos > 0.0 { tp / pos } else { 0.0 }, y: tp / (tp + fp) });
    }
    (roc, pr)
}

/// Counts of normal and anomalous scores in `bins` equal-width bins over `[lo, hi]` (scores outside are
/// clamped into the end bins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub normal: Vec<u32>,
    pub anomaly: Vec<u32>,
}

pub fn histogram(scores: &[f32], labels: &[bool], bins: usize) -> Histogram {
    let bins = bins.max(1);
    let finite = scores.iter().copied().filter(|s| s.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let width = if hi > lo { (hi - lo) / bins as f32 } else { 1.0 };
    let mut h = Histogram { lo, hi, normal: vec![0; bins], anomaly: vec![0; bins] };
    for (&s, &y) in scores.iter().zip(labels) {
        if !s.is_finite() {
            continue;
        }
        let b = (((s - lo) / width) as usize).min(bins - 1);
        if y {
            h.anomaly[b] += 1
        } else {
            h.normal[b] += 1
        }
    }
    h
}

/// Per-label pixel counts for segmentation: `confusion[c]` treats class `c` as the positive class, pooled
/// over all pixels of all evaluated images.
pub fn per_class_confusion(pred: &[u8], truth: &[u8], classes: usize) -> Vec<Confusion> {
    let mut out = vec![Confusion::default(); classes];
    for (&p, &t) in pred.iter().zip(truth) {
        for (c, conf) in out.iter_mut().enumerate() {
            let (pp, tt) = (p as usize == c, t as usize == c);
            match (pp, tt) {
                (true, true) => conf.tp += 1,
                (true, false) => conf.fp += 1,
                (false, true) => conf.fn_ += 1,
                (false, false) => conf.tn += 1,
            }
        }
    }
    out
}

/// Accumulates per-class confusion counts without holding every pixel.
pub fn add_confusions(acc: &mut [Confusion], more: &[Confusion]) {
    for (a, b) in acc.iter_mut().zip(more) {
        a.tp += b.tp;
        a.fp += b.fp;
        a.tn += b.tn;
        a.fn_ += b.fn_;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_by_hand() {
        // Positives 0.8, 0.4; negatives 0.5, 0.1: pairs (0.8>0.5) (0.8>0.1) (0.4<0.5) (0.4>0.1) = 3/4.
        let s = [0.8, 0.5, 0.4, 0.1];
        let y = [true, false, true, false];
        assert_eq!(auroc(&s, &y), Some(0.75));
        // A tie counts half.
        assert_eq!(auroc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auroc(&[0.5], &[true]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked: P(0.8) N(0.5) P(0.4) N(0.1): precision at recall 0.5 is 1, at recall 1 is 2/3.
        let s = [0.8, 0.5, 0.4, 0.1];
        let y = [true, false, true, false];
        let ap = average_precision(&s, &y).unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(average_precision(&[0.9, 0.1], &[true, false]), Some(1.0));
    }

    #[test]
    fn confusion_at_threshold() {
        let s = [0.9, 0.6, 0.4, 0.2];
        let y = [true, false, true, false];
        let c = Confusion::at(&s, &y, 0.5);
        assert_eq!(c, Confusion { tp: 1, fp: 1, tn: 1, fn_: 1 });
        assert_eq!(c.precision(), 0.5);
        assert_eq!(c.recall(), 0.5);
        assert_eq!(c.f1(), 0.5);
        assert!((c.iou() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn curves_and_histogram() {
        let s = [0.9, 0.6, 0.4, 0.2];
        let y = [true, false, true, false];
        let (roc, pr) = curves(&s, &y);
        assert_eq!(roc.len(), 5);
        assert_eq!((roc[4].x, roc[4].y), (1.0, 1.0));
        assert_eq!((pr[0].x, pr[0].y), (0.5, 1.0));
        let h = histogram(&s, &y, 2);
        assert_eq!(h.normal, vec![1, 1]);
        assert_eq!(h.anomaly, vec![1, 1]);
    }

    #[test]
    fn per_class_iou() {
        let pred = [0, 1, 1, 0];
        let truth = [0, 1, 0, 1];
        let c = per_class_confusion(&pred, &truth, 2);
        assert_eq!(c[1], Confusion { tp: 1, fp: 1, tn: 1, fn_: 1 });
        assert!((c[1].iou() - 1.0 / 3.0).abs() < 1e-12);
    }
}
