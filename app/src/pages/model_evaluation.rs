//! The model page's Performance card — precision, recall and F1 and the confusion matrix at the threshold the
//! slider moves (Save keeps it), AUROC and AP, the ROC and PR curves with the threshold's point, the score
//! histogram — and the per-label segmentation figures.

use super::model_parts::num;
use super::model_plots::{CurveChart, Histogram};
use crate::api::error_text;
use crate::api::models::*;
use leptos::prelude::*;

/// The slider's range for an evaluation: every score and the saved threshold, with a margin at both ends so the
/// slider can flag every image or none (the browser rounds its value).
pub fn score_range(images: &[EvalImage], threshold: Option<f64>) -> (f64, f64) {
    let scores = images.iter().map(|i| i.score as f64);
    let lo = scores.clone().fold(f64::INFINITY, f64::min).min(threshold.unwrap_or(f64::INFINITY));
    let hi = scores.fold(f64::NEG_INFINITY, f64::max).max(threshold.unwrap_or(f64::NEG_INFINITY));
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    (lo - (hi - lo) * 0.01, hi + (hi - lo) * 0.01)
}

/// Where the threshold sits on the ROC curve (false positive rate, true positive rate) and on the PR curve
/// (recall, precision), from the confusion counts at it. Precision with nothing flagged is taken as 1 (the PR
/// curve's own convention); a rate with no image to count is no point.
pub fn curve_points((tp, fp, tn, fn_): (usize, usize, usize, usize)) -> (Option<(f64, f64)>, Option<(f64, f64)>) {
    let rate = |a: usize, b: usize| (a + b > 0).then(|| a as f64 / (a + b) as f64);
    let (fpr, tpr) = (rate(fp, tn), rate(tp, fn_));
    let precision = rate(tp, fp).unwrap_or(1.0);
    (fpr.zip(tpr), tpr.map(|r| (r, precision)))
}

/// The threshold in use on the page: `chosen` once the user moved the slider (kept across the page's
/// re-reads), the saved one before.
#[component]
pub fn Performance(
    project: String,
    version: i64,
    ev: EvalView,
    threshold: Signal<f64>,
    chosen: RwSignal<Option<f64>>,
    trained: Option<f64>,
    range: (f64, f64),
    save: ServerAction<SaveThreshold>,
) -> impl IntoView {
    let (lo, hi) = range;
    let images = StoredValue::new(ev.images.clone());
    let counts = Memo::new(move |_| images.with_value(|i| confusion(i, threshold.get())));
    let points = Memo::new(move |_| curve_points(counts.get()));
    let p_save = project.clone();
    let p_restore = project.clone();
    let step = (hi - lo) / 500.0;
    view! {
        <div class="card" id="performance">
            <h2>"Performance"</h2>
            <p class="muted">{match ev.source.as_str() {
                "test_set" => "Measured on the test dataset.",
                "held_out_split" => "Measured on 20 % of the training images held out from training.",
                _ => "Measured by cross-validation over the training images (no test dataset).",
            }}</p>
            {(!ev.notes.is_empty()).then(|| view! {
                <ul class="evidence" data-testid="evidence-notes">
                    {ev.notes.iter().map(|n| view! { <li>{n.clone()}</li> }).collect_view()}
                </ul>
            })}
            <div class="metrics" data-testid="metrics">
                {move || { let (tp, fp, _tn, fn_) = counts.get(); let (p, r, f) = prf(tp, fp, fn_); view! {
                    <div><span class="metric-label">"Precision"</span><span class="metric" data-testid="precision">{format!("{:.1} %", p * 100.0)}</span></div>
                    <div><span class="metric-label">"Recall"</span><span class="metric" data-testid="recall">{format!("{:.1} %", r * 100.0)}</span></div>
                    <div><span class="metric-label">"F1"</span><span class="metric" data-testid="f1">{format!("{:.1} %", f * 100.0)}</span></div>
                }}}
                <div><span class="metric-label">"AUROC"</span><span class="metric">{num(ev.image_auroc)}</span></div>
                <div><span class="metric-label">"Average precision"</span><span class="metric">{num(ev.average_precision)}</span></div>
                {ev.pixel_auroc.map(|p| view! { <div><span class="metric-label">"Pixel AUROC"</span><span class="metric">{format!("{p:.3}")}</span></div> })}
            </div>
            <div class="threshold-box">
                <label for="threshold-slider">"Threshold"</label>
                <input id="threshold-slider" type="range" data-testid="threshold" min=lo max=hi step=step
                    prop:value=move || threshold.get().to_string()
                    on:input=move |e| { if let Ok(v) = event_target_value(&e).parse::<f64>() { chosen.set(Some(v)) } }/>
                <span class="mono" data-testid="threshold-value">{move || format!("{:.4}", threshold.get())}</span>
                <button type="button" class="primary" data-testid="save-threshold" on:click=move |_| {
                    save.dispatch(SaveThreshold { project: p_save.clone(), version, threshold: Some(threshold.get_untracked()) });
                }>"Save threshold"</button>
                <button type="button" data-testid="restore-threshold" on:click=move |_| {
                    if let Some(t) = trained { chosen.set(Some(t)); }
                    save.dispatch(SaveThreshold { project: p_restore.clone(), version, threshold: None });
                }>"Restore trained threshold"</button>
                <span class="muted">{trained.map(|t| format!(" trained: {t:.4}"))}</span>
                <span class="muted" role="status" data-testid="threshold-saved">{move || save.value().get().map(|r| match r { Ok(()) => "Saved.".to_string(), Err(e) => error_text(&e) })}</span>
            </div>
            <table class="confusion" data-testid="confusion">
                <thead><tr><th></th><th scope="col">"Predicted anomaly"</th><th scope="col">"Predicted normal"</th></tr></thead>
                <tbody>
                    <tr><th scope="row">"Anomaly"</th><td data-testid="tp">{move || counts.get().0}</td><td data-testid="fn">{move || counts.get().3}</td></tr>
                    <tr><th scope="row">"Normal"</th><td data-testid="fp">{move || counts.get().1}</td><td data-testid="tn">{move || counts.get().2}</td></tr>
                </tbody>
            </table>
            <div class="charts">
                <CurveChart title="ROC curve" x_label="false positive rate" y_label="true positive rate" points=ev.roc.clone() diagonal=true
                    marker=Signal::derive(move || points.get().0)/>
                <CurveChart title="Precision-recall curve" x_label="recall" y_label="precision" points=ev.pr.clone() diagonal=false
                    marker=Signal::derive(move || points.get().1)/>
                <Histogram images=ev.images.clone() threshold lo hi/>
            </div>
        </div>
    }
}

/// Segmentation figures per anomaly label (segmentation models only).
#[component]
pub fn PerLabel(labels: Vec<LabelRow>) -> impl IntoView {
    (!labels.is_empty()).then(|| view! {
        <div class="card" id="per-label">
            <h2>"Per label"</h2>
            <table data-testid="labels-table" class="models-table">
                <thead><tr><th>"Label"</th><th>"Test images"</th><th>"F1"</th><th>"Average IoU"</th><th>"Precision"</th><th>"Recall"</th></tr></thead>
                <tbody>{labels.iter().map(|l| view! {
                    <tr><td>{l.name.clone()}</td><td>{l.images}</td><td>{format!("{:.3}", l.f1)}</td><td>{format!("{:.3}", l.iou)}</td>
                        <td>{format!("{:.3}", l.precision)}</td><td>{format!("{:.3}", l.recall)}</td></tr>
                }).collect_view()}</tbody>
            </table>
        </div>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_point_follows_the_counts() {
        // tp 3, fp 1, tn 3, fn 1: fpr 0.25, tpr 0.75, precision 0.75.
        assert_eq!(curve_points((3, 1, 3, 1)), (Some((0.25, 0.75)), Some((0.75, 0.75))));
        // Nothing flagged: the curves' start.
        assert_eq!(curve_points((0, 0, 4, 4)), (Some((0.0, 0.0)), Some((0.0, 1.0))));
        // No anomalous image: no true positive rate, no point.
        assert_eq!(curve_points((0, 1, 3, 0)), (None, None));
    }

    #[test]
    fn the_slider_covers_every_score_and_the_threshold() {
        let img = |s: f32| EvalImage { name: String::new(), image: String::new(), mask: None, anomalous: false, score: s };
        let (lo, hi) = score_range(&[img(1.0), img(3.0)], Some(4.0));
        assert!(lo < 1.0 && hi > 4.0);
        assert_eq!(score_range(&[], None), (-0.01, 1.01));
    }
}
