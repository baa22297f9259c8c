//! LFV's wire shapes of engine results — the `DetectAnomalies` response and the evaluation result's metrics —
//! in one place, so the API, the command line, the training job and batch runs write them alike and the engine
//! stays free of LFV's JSON.

use crate::engine::{Detection, Evaluation};
use base64::Engine as _;
use serde_json::{json, Value};

/// A project's ARN, in LFV's form.
pub fn project_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lookoutvision:{region}:{account}:project/{name}")
}

/// LFV's `DetectAnomalies` response body: `{"DetectAnomalyResult": {...}}` with PascalCase fields; `Anomalies`
/// and `AnomalyMask` (base64 PNG) only for segmentation models.
pub fn detect_result(d: &Detection) -> Value {
    let mut r = json!({
        "Source": {"Type": "direct"},
        "IsAnomalous": d.is_anomalous,
        "Confidence": d.confidence,
    });
    if let Some(a) = &d.anomalies {
        r["Anomalies"] = serde_json::to_value(a).unwrap_or_default();
    }
    if let Some(m) = &d.anomaly_mask {
        r["AnomalyMask"] = base64::engine::general_purpose::STANDARD.encode(m).into();
    }
    json!({ "DetectAnomalyResult": r })
}

/// LFV's `AggregatedEvaluationResults.Metrics` object of the evaluation result file: `ROCAUC`,
/// `AveragePrecision`, `Precision`, `Recall`, `F1Score` and, for segmentation, `PixelAnomalyClassMetrics`
/// (`Precision`, `Recall`, `F1Score`, `AIOU`, `ClassName` per label). `DescribeModel.Performance` is
/// `{F1Score, Recall, Precision}` from the same figures.
pub fn evaluation_metrics(ev: &Evaluation) -> Value {
    let mut m = json!({
        "ROCAUC": ev.image_auroc,
        "AveragePrecision": ev.average_precision,
        "Precision": ev.precision,
        "Recall": ev.recall,
        "F1Score": ev.f1,
    });
    if !ev.labels.is_empty() {
        m["PixelAnomalyClassMetrics"] = ev
            .labels
            .iter()
            .map(|l| json!({"Precision": l.precision, "Recall": l.recall, "F1Score": l.f1, "AIOU": l.iou, "ClassName": l.name}))
            .collect();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Anomaly, ImageResult, LabelMetrics, PixelAnomaly};

    #[test]
    fn evaluation_metrics_shape() {
        let images = vec![
            ImageResult { id: "a".into(), anomalous: true, predicted_anomalous: true, score: 0.9, confidence: 0.9 },
            ImageResult { id: "b".into(), anomalous: false, predicted_anomalous: false, score: 0.1, confidence: 0.9 },
        ];
        let mut ev = Evaluation::from_images("test_set", 0.5, images);
        ev.labels.push(LabelMetrics { name: "dent".into(), precision: 0.5, recall: 1.0, f1: 2.0 / 3.0, iou: 0.5, images: 1 });
        let m = evaluation_metrics(&ev);
        assert_eq!(m["ROCAUC"], 1.0);
        assert_eq!(m["F1Score"], 1.0);
        assert_eq!(m["PixelAnomalyClassMetrics"][0]["ClassName"], "dent");
        assert_eq!(m["PixelAnomalyClassMetrics"][0]["AIOU"], 0.5);
    }

    #[test]
    fn detect_result_shape() {
        let d = Detection {
            is_anomalous: true,
            confidence: 0.9,
            score: 2.0,
            anomalies: Some(vec![
                Anomaly { name: "background".into(), pixel_anomaly: PixelAnomaly { total_percentage_area: 0.75, color: "#FFFFFF".into() } },
                Anomaly { name: "cracked".into(), pixel_anomaly: PixelAnomaly { total_percentage_area: 0.25, color: "#23A436".into() } },
            ]),
            anomaly_mask: Some(vec![1, 2, 3]),
            heat_map: vec![0.0; 4],
            heat_width: 2,
            heat_height: 2,
        };
        let j = detect_result(&d);
        let r = &j["DetectAnomalyResult"];
        assert_eq!(r["Source"]["Type"], "direct");
        assert_eq!(r["IsAnomalous"], true);
        assert_eq!(r["Anomalies"][0]["Name"], "background");
        assert_eq!(r["Anomalies"][1]["PixelAnomaly"]["Color"], "#23A436");
        assert_eq!(r["Anomalies"][1]["PixelAnomaly"]["TotalPercentageArea"], 0.25);
        assert_eq!(r["AnomalyMask"], "AQID");
    }
}
