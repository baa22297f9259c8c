//! Drift: whether a hosted model's recent scores still look like its validation scores.
//!
//! When a version is hosted, its evaluation's normal images (at least 3) give a reference: their median score and
//! spread (`inference::ScoreScale`). They are the test set's (or held-out split's) normal images and the training's
//! normal images' leave-one-out scores (`Evaluation::reference_normal_scores`, the scores new normal images get;
//! models trained before these were recorded have the test set's alone), or, for a cross-validated model, the
//! out-of-fold scores of the training images. Every
//! detection of the hosted model adds its score, in units of that spread from that median, to a histogram
//! (0.25-wide bins from −6 to +10, and one bin below and one above), written per model and hour to
//! `drift_bin` beside the detection counts (so several replicas add up).
//!
//! **The test.** Over the last two hours (the current one and the one before), with n detections: the median of
//! the live scores, z̃ (in reference spreads, 0 = the validation median). A line whose parts are still
//! normal keeps z̃ near 0 whatever a few defective parts do (a median moves only when most scores move). The
//! shift is *significant* when |z̃| is at least 4 standard errors from 0, the standard error of a median
//! difference being 1.2533·√(1/n + 1/m) spreads (m reference scores), *and* large: |z̃| ≥ 0.5 spreads, with
//! n ≥ 30. Lighting, focus, a camera moved or a new supplier's parts move every score, and the median with them,
//! long before most parts are called anomalous.

use crate::db::now_ms;
use crate::inference::{ScoreScale, SCORE_BINS, SCORE_BIN_WIDTH, SCORE_Z_MIN};
use serde::Serialize;
use sqlx::AnyConnection;

/// Detections needed in the window before the test says anything.
pub const MIN_IMAGES: u64 = 30;
/// Standard errors a shift must reach.
pub const SIGNIFICANCE: f64 = 4.0;
/// Reference spreads a shift must reach.
pub const MIN_SHIFT: f64 = 0.5;
/// Hours the test looks back over (the current one included).
pub const WINDOW_HOURS: i64 = 2;

/// What the test says of a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shift {
    /// Detections in the window.
    pub images: u64,
    /// Reference scores (normal validation images).
    pub reference: u64,
    /// Median of the window's scores, in reference spreads from the reference median.
    pub median_shift: f64,
    /// The shift in standard errors.
    pub statistic: f64,
    /// Significant and large (and enough images).
    pub shifted: bool,
}

/// The reference of a model's evaluation JSON: the median and spread of its normal images' scores.
pub fn reference(evaluation: &[u8]) -> Option<(ScoreScale, usize)> {
    // The page's document (`{"evaluation": …, "origins": …}`), or an engine evaluation on its own.
    let doc: serde_json::Value = serde_json::from_slice(evaluation).ok()?;
    let e = if doc.get("evaluation").is_some() { &doc["evaluation"] } else { &doc };
    let threshold = e["threshold"].as_f64().unwrap_or(0.0) as f32;
    let mut normal: Vec<f32> = e["images"]
        .as_array()?
        .iter()
        .filter(|i| i["anomalous"] == serde_json::Value::Bool(false))
        .filter_map(|i| i["score"].as_f64())
        .chain(e["reference_normal_scores"].as_array().into_iter().flatten().filter_map(|x| x.as_f64()))
        .map(|x| x as f32)
        .filter(|x| x.is_finite())
        .collect();
    if normal.len() < 3 {
        return None;
    }
    normal.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| -> f32 {
        let x = p * (normal.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        normal[lo] + (normal[hi] - normal[lo]) * (x - lo as f64) as f32
    };
    let median = q(0.5);
    // IQR / 1.349 is the standard deviation of a normal distribution; fall back to the full range when the middle
    // half is flat, and to a sliver of the threshold distance when every score is the same.
    let mut scale = (q(0.75) - q(0.25)) / 1.349;
    if scale <= f32::EPSILON {
        scale = (q(1.0) - q(0.0)) / 4.0;
    }
    if scale <= f32::EPSILON {
        scale = ((threshold - median).abs() / 10.0).max(1e-6);
    }
    Some((ScoreScale { median, scale }, normal.len()))
}

/// The test over a window's histogram.
pub fn test(bins: &[u64], reference: u64) -> Shift {
    let n: u64 = bins.iter().sum();
    let median_shift = median_of(bins).unwrap_or(0.0);
    let se = 1.2533 * (1.0 / n.max(1) as f64 + 1.0 / reference.max(1) as f64).sqrt();
    let statistic = median_shift / se;
    let shifted = n >= MIN_IMAGES && statistic.abs() >= SIGNIFICANCE && median_shift.abs() >= MIN_SHIFT;
    Shift { images: n, reference, median_shift, statistic, shifted }
}

/// The median of a histogram, interpolated within its bin (the open bins count as their inner edge).
fn median_of(bins: &[u64]) -> Option<f64> {
    let n: u64 = bins.iter().sum();
    if n == 0 {
        return None;
    }
    let half = n as f64 / 2.0;
    let mut below = 0.0;
    for (i, &c) in bins.iter().enumerate() {
        let c = c as f64;
        if c > 0.0 && below + c >= half {
            // Bin i ≥ 1 starts at SCORE_Z_MIN + (i − 1) widths; the open bins (first, last) count as that edge.
            let lo = SCORE_Z_MIN as f64 + (i.max(1) - 1) as f64 * SCORE_BIN_WIDTH as f64;
            let within = if i == 0 || i == bins.len() - 1 { 0.0 } else { (half - below) / c };
            return Some(lo + within * SCORE_BIN_WIDTH as f64);
        }
        below += c;
    }
    None
}

/// Records a hosted version's reference size (the test needs it; the scale lives with the hosted model).
pub async fn record_reference(conn: &mut AnyConnection, model_id: &str, reference: usize) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into drift_reference (model_id, normal_scores, updated_at) values ($1, $2, $3) \
         on conflict (model_id) do update set normal_scores = excluded.normal_scores, updated_at = excluded.updated_at",
    )
    .bind(model_id)
    .bind(reference as i64)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds an hour's histogram of one model (several processes add up).
pub async fn add(conn: &mut AnyConnection, model_id: &str, hour: i64, bins: &[u64]) -> Result<(), sqlx::Error> {
    for (bin, &n) in bins.iter().enumerate().filter(|(_, &n)| n > 0) {
        sqlx::query(
            "insert into drift_bin (model_id, hour, bin, n) values ($1, $2, $3, $4) \
             on conflict (model_id, hour, bin) do update set n = drift_bin.n + excluded.n",
        )
        .bind(model_id)
        .bind(hour)
        .bind(bin as i64)
        .bind(n as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The test over the last [`WINDOW_HOURS`] hours of a model; `None` when it has no reference.
pub async fn status(conn: &mut AnyConnection, model_id: &str, now_hour: i64) -> Result<Option<Shift>, sqlx::Error> {
    let reference: Option<(i64,)> =
        sqlx::query_as("select normal_scores from drift_reference where model_id = $1").bind(model_id).fetch_optional(&mut *conn).await?;
    let Some((reference,)) = reference else { return Ok(None) };
    let rows: Vec<(i64, i64)> = sqlx::query_as("select bin, cast(sum(n) as bigint) from drift_bin where model_id = $1 and hour > $2 group by bin")
        .bind(model_id)
        .bind(now_hour - WINDOW_HOURS)
        .fetch_all(&mut *conn)
        .await?;
    let mut bins = vec![0u64; SCORE_BINS];
    for (bin, n) in rows {
        if let Some(b) = bins.get_mut(bin.clamp(0, SCORE_BINS as i64 - 1) as usize) {
            *b += n.max(0) as u64;
        }
    }
    Ok(Some(test(&bins, reference.max(0) as u64)))
}

/// Drops histograms older than 30 days.
pub async fn prune(conn: &mut AnyConnection, now_hour: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from drift_bin where hour < $1").bind(now_hour - 30 * 24).execute(&mut *conn).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(zs: &[f32]) -> Vec<u64> {
        let s = ScoreScale { median: 0.0, scale: 1.0 };
        let mut bins = vec![0u64; SCORE_BINS];
        for &z in zs {
            bins[s.bin(z)] += 1;
        }
        bins
    }

    #[test]
    fn a_shifted_median_is_flagged_and_a_few_defects_are_not() {
        // 200 normal scores spread around the reference median, and 10 defects far above: no shift.
        let mut zs: Vec<f32> = (0..200).map(|i| (i as f32 / 199.0 - 0.5) * 2.0).collect();
        zs.extend(std::iter::repeat_n(8.0, 10));
        let t = test(&histogram(&zs), 40);
        assert!(!t.shifted, "{t:?}");
        assert!(t.median_shift.abs() < 0.2, "{t:?}");
        // Every score one spread higher (lighting): shifted.
        let moved: Vec<f32> = zs.iter().map(|z| z + 1.0).collect();
        let t = test(&histogram(&moved), 40);
        assert!(t.shifted && t.median_shift > 0.8, "{t:?}");
        // Too few images say nothing, however far.
        let t = test(&histogram(&[3.0; 10]), 40);
        assert!(!t.shifted && t.images == 10);
        // Empty: no shift.
        assert!(!test(&vec![0; SCORE_BINS], 40).shifted);
    }

    #[test]
    fn the_reference_is_the_normal_images_median_and_spread() {
        let images: Vec<serde_json::Value> = (0..9)
            .map(|i| serde_json::json!({"id": format!("n{i}"), "anomalous": false, "predicted_anomalous": false, "score": i as f32, "confidence": 0.9}))
            .chain([serde_json::json!({"id": "a", "anomalous": true, "predicted_anomalous": true, "score": 100.0, "confidence": 0.9})])
            .collect();
        let eval = serde_json::json!({"source": "test_set", "n_normal": 9, "n_anomaly": 1, "threshold": 10.0, "precision": 1.0, "recall": 1.0,
            "f1": 1.0, "image_auroc": 1.0, "average_precision": 1.0, "roc": [], "pr": [], "histogram": {"lo": 0.0, "hi": 1.0, "normal": [], "anomaly": []},
            "images": images, "pixel_auroc": null, "segmentation_pixel_auroc": null, "labels": [], "mean_iou": null});
        let (s, m) = reference(eval.to_string().as_bytes()).expect("a reference");
        // The model page's document wraps it.
        let doc = serde_json::json!({"evaluation": eval, "origins": {}});
        assert_eq!(reference(doc.to_string().as_bytes()).map(|(s, m)| (s.median, m)), Some((4.0, 9)));
        assert_eq!(m, 9);
        assert_eq!(s.median, 4.0);
        assert!((s.scale - 4.0 / 1.349).abs() < 1e-4, "{s:?}");
        assert!(reference(b"not json").is_none());
        // The training's leave-one-out normal scores join the reference: 9 + 11 scores, median 4.5.
        let mut with_oof = eval.clone();
        with_oof["reference_normal_scores"] = serde_json::json!((0..11).map(|i| i as f32).collect::<Vec<_>>());
        let (s, m) = reference(with_oof.to_string().as_bytes()).expect("a reference");
        assert_eq!((m, s.median), (20, 4.5));
    }
}
