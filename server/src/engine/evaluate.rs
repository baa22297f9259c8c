//! Evaluation of a trained [`Model`] on labelled images: LFV's figures, curves, per-image results and, where
//! masks exist, pixel AUROC and per-label segmentation figures.

use super::threshold::ThresholdRule;
use super::metrics::{self, Confusion};
use super::model::{Evaluation, ImageResult, LabelMetrics, Model};
use super::tensors::f32_values;
use super::samples::Sample;
use super::backbone::Backbone;
use super::segmentation;
use super::error::{Error, Result};

impl Model {
    /// Evaluates the model on labelled images (masks optional): LFV's figures, curves, per-image results and,
    /// where masks exist, pixel AUROC and per-label segmentation figures.
    pub fn evaluate(&self, backbone: &Backbone, samples: &[Sample], progress: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        self.evaluate_as(backbone, samples, "test_set", progress)
    }

    pub(super) fn evaluate_as(&self, backbone: &Backbone, samples: &[Sample], source: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let (w, h) = self.input_size();
        let colors: Vec<[u8; 3]> = self.header.labels.iter().filter_map(|l| segmentation::parse_hex_color(&l.color)).collect();
        let any_mask = samples.iter().any(|s| s.mask.is_some());
        let classes = 1 + self.header.labels.len();
        let mut images = Vec::new();
        let (mut pix_heat, mut pix_seg, mut pix_truth) = (Vec::new(), Vec::new(), Vec::new());
        let mut conf = vec![Confusion::default(); classes];
        let mut present = vec![0usize; classes];
        let mut seg_evaluated = false;
        // Keep at most ~16 M pixels for the pixel AUROC by striding.
        let stride = ((samples.len() * (w * h) as usize) / (16 << 20)).max(1);
        for (i, s) in samples.iter().enumerate() {
            let img = s.image.load()?;
            let want_pixels = s.mask.is_some() || (any_mask && !s.anomalous);
            let mut scored = self.score_batch(backbone, &[&img], want_pixels, want_pixels)?;
            let sc = scored.pop().ok_or_else(|| Error::Shape("no score".into()))?;
            let (p, c) = self.verdict(sc.score);
            images.push(ImageResult { id: s.id.clone(), anomalous: s.anomalous, predicted_anomalous: p, score: sc.score, confidence: c });
            // Ground truth: from the mask (an anomaly map in any mask convention for the heat map, and the
            // label classes for the segmentation head), or all background for normal images of a masked set.
            let truth: Option<(Vec<u8>, Vec<u8>)> = match (&s.mask, s.anomalous) {
                (Some(m), _) => {
                    let mask = m.load_mask()?;
                    let mut any = segmentation::mask_to_anomaly(&mask, w, h);
                    let cm = if colors.is_empty() {
                        any.clone()
                    } else {
                        let cm = segmentation::mask_to_classes(&mask, &colors, w, h);
                        any.iter_mut().zip(&cm).for_each(|(a, &c)| *a |= (c > 0) as u8);
                        cm
                    };
                    Some((any, cm))
                }
                (None, false) if any_mask => Some((vec![0u8; (w * h) as usize], vec![0u8; (w * h) as usize])),
                _ => None,
            };
            if let (Some((any, truth)), Some(heat)) = (truth, &sc.heat) {
                let heat = f32_values(heat)?;
                let segp = match &sc.seg_prob {
                    Some(t) => Some(f32_values(t)?),
                    None => None,
                };
                for j in (0..truth.len()).step_by(stride) {
                    pix_heat.push(heat[j]);
                    pix_truth.push(any[j] > 0);
                    if let Some(sp) = &segp {
                        pix_seg.push(sp[j]);
                    }
                }
                if let Some(pred) = &sc.classes {
                    seg_evaluated = true;
                    metrics::add_confusions(&mut conf, &metrics::per_class_confusion(pred, &truth, classes));
                    for (c, p) in present.iter_mut().enumerate() {
                        if truth.iter().any(|&t| t as usize == c) {
                            *p += 1;
                        }
                    }
                }
            }
            progress(i + 1, samples.len());
        }
        let mut ev = Evaluation::from_images(source, self.header.threshold, images);
        if !pix_truth.is_empty() {
            ev.pixel_auroc = metrics::auroc(&pix_heat, &pix_truth);
            if pix_seg.len() == pix_truth.len() {
                ev.segmentation_pixel_auroc = metrics::auroc(&pix_seg, &pix_truth);
            }
        }
        if seg_evaluated {
            ev.labels = self
                .header
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let c = conf[i + 1];
                    LabelMetrics { name: l.name.clone(), precision: c.precision(), recall: c.recall(), f1: c.f1(), iou: c.iou(), images: present[i + 1] }
                })
                .collect();
            if !ev.labels.is_empty() {
                ev.mean_iou = Some(ev.labels.iter().map(|l| l.iou).sum::<f64>() / ev.labels.len() as f64);
            }
        }
        Ok(ev)
    }
}

impl Evaluation {
    /// The figures, curves and histogram of per-image results at a threshold (no pixel figures).
    pub fn from_images(source: &str, threshold: f32, images: Vec<ImageResult>) -> Evaluation {
        let scores: Vec<f32> = images.iter().map(|r| r.score).collect();
        let labels: Vec<bool> = images.iter().map(|r| r.anomalous).collect();
        let c = Confusion::at(&scores, &labels, threshold);
        let (roc, pr) = metrics::curves(&scores, &labels);
        Evaluation {
            source: source.into(),
            n_normal: labels.iter().filter(|&&y| !y).count(),
            n_anomaly: labels.iter().filter(|&&y| y).count(),
            threshold,
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            image_auroc: metrics::auroc(&scores, &labels),
            average_precision: metrics::average_precision(&scores, &labels),
            roc,
            pr,
            histogram: metrics::histogram(&scores, &labels, 20),
            images,
            pixel_auroc: None,
            segmentation_pixel_auroc: None,
            labels: Vec::new(),
            mean_iou: None,
            notes: Vec::new(),
            reference_normal_scores: Vec::new(),
        }
    }
}

/// Normal training images below which a model is noticeably weaker (the README's few-image curve).
pub const FEW_NORMALS: usize = 20;

/// Labelled anomalies below which the F1-optimal threshold rests on too few to trust its recall.
pub const FEW_ANOMALIES: usize = 10;

/// Plain-language notes on a trained model's evidence: too few normal images (and how many more would likely
/// help), a threshold chosen on few labelled anomalies, or a false-alarm rate extrapolated rather than observed.
pub fn evidence_notes(train_normal: usize, train_anomaly: usize, rule: ThresholdRule, target_fpr: Option<f64>) -> Vec<String> {
    let mut notes = Vec::new();
    if train_normal < FEW_NORMALS {
        notes.push(format!(
            "Trained on {train_normal} normal images: add at least {} more. Models from fewer than {FEW_NORMALS} normal images were clearly weaker on every data set measured (see the README's few-image curve), and each image added helped most at this size.",
            FEW_NORMALS - train_normal
        ));
    }
    match rule {
        ThresholdRule::F1Optimal if train_anomaly < FEW_ANOMALIES => notes.push(format!(
            "The threshold was chosen on only {train_anomaly} labelled anomalous images: precision and recall on new parts may differ from these figures. Label at least {} more anomalous images, or add a test dataset to check it.",
            FEW_ANOMALIES - train_anomaly
        )),
        ThresholdRule::NormalQuantile => {
            let fpr = target_fpr.unwrap_or(0.01);
            let needed = (1.0 / fpr).ceil() as usize;
            if train_normal < needed {
                notes.push(format!(
                    "No labelled anomalies: the threshold aims at {:.0} % false alarms on normal parts, extrapolated from {train_normal} normal images by a fitted curve rather than observed ({needed} normal images make it an observed quantile). Label some anomalous images to check recall.",
                    fpr * 100.0
                ));
            } else {
                notes.push(format!(
                    "No labelled anomalies: the threshold holds {:.0} % false alarms on normal parts; how many defects it catches is not measured until anomalous images are labelled.",
                    fpr * 100.0
                ));
            }
        }
        _ => {}
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_say_what_evidence_is_thin_and_what_would_help() {
        // Few normals and no anomalies: both the count and the extrapolated false-alarm rate are named.
        let n = evidence_notes(5, 0, ThresholdRule::NormalQuantile, Some(0.01));
        assert_eq!(n.len(), 2, "{n:?}");
        assert!(n[0].contains("5 normal images") && n[0].contains("at least 15 more"), "{}", n[0]);
        assert!(n[1].contains("extrapolated from 5 normal images") && n[1].contains("100 normal images"), "{}", n[1]);
        // Enough normals, no anomalies: the false-alarm rate is observed, recall is not measured.
        let n = evidence_notes(150, 0, ThresholdRule::NormalQuantile, Some(0.01));
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("not measured"), "{}", n[0]);
        // An F1 threshold on few anomalies is flagged; on enough, nothing is said.
        let n = evidence_notes(40, 4, ThresholdRule::F1Optimal, None);
        assert!(n.len() == 1 && n[0].contains("only 4 labelled anomalous") && n[0].contains("at least 6 more"), "{n:?}");
        assert!(evidence_notes(40, 20, ThresholdRule::F1Optimal, None).is_empty());
    }
}
