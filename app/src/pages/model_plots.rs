//! The model page's plots, drawn as SVG: ROC and precision-recall curves with a point that marks the threshold
//! in use (it follows the slider), and the score histogram with its count axis and the threshold line.

use crate::api::models::EvalImage;
use leptos::prelude::*;

const W: f64 = 340.0;
const H: f64 = 240.0;
/// Margins: the left one leaves room for the tick labels *and* the rotated axis label beside them.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 42.0;

fn sx(x: f64) -> f64 {
    LEFT + x.clamp(0.0, 1.0) * (W - LEFT - RIGHT)
}

fn sy(y: f64) -> f64 {
    H - BOTTOM - y.clamp(0.0, 1.0) * (H - BOTTOM - TOP)
}

/// A short label for a tick value: `0`, `0.25`, `12`.
fn tick_label(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Up to about five round ticks from 0 to at least `top` (counts: whole numbers).
pub fn count_ticks(top: usize) -> Vec<usize> {
    let top = top.max(1);
    let step = [1usize, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000]
        .into_iter()
        .find(|s| top.div_ceil(*s) <= 5)
        .unwrap_or_else(|| top.div_ceil(5));
    (0..=top.div_ceil(step)).map(|i| i * step).collect()
}

/// A line chart on [0,1]×[0,1] with axes, ticks, labels and, when `marker` has a point, the threshold in use.
#[component]
pub fn CurveChart(
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    points: Vec<(f64, f64)>,
    diagonal: bool,
    #[prop(into)] marker: Signal<Option<(f64, f64)>>,
) -> impl IntoView {
    let path: String = points.iter().enumerate().map(|(i, (x, y))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, sx(*x), sy(*y))).collect();
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    let id = title.to_lowercase().replace(' ', "-");
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title data-testid=format!("chart-{id}")>
                {ticks.iter().map(|t| view! {
                    <line x1=sx(0.0) x2=sx(1.0) y1=sy(*t) y2=sy(*t) class="grid"/>
                    <text x=sx(*t) y=H - BOTTOM + 14.0 class="tick" text-anchor="middle">{tick_label(*t)}</text>
                    <text x=LEFT - 6.0 y=sy(*t) + 3.0 class="tick" text-anchor="end">{tick_label(*t)}</text>
                }).collect_view()}
                <line x1=LEFT y1=sy(0.0) x2=sx(1.0) y2=sy(0.0) class="axis"/>
                <line x1=LEFT y1=sy(0.0) x2=LEFT y2=sy(1.0) class="axis"/>
                {diagonal.then(|| view! { <line x1=sx(0.0) y1=sy(0.0) x2=sx(1.0) y2=sy(1.0) class="diag"/> })}
                <path d=path class="curve"/>
                {move || marker.get().map(|(x, y)| {
                    // The label sits inside the plot, away from the edge the point is near.
                    let (lx, anchor) = if x > 0.6 { (sx(x) - 8.0, "end") } else { (sx(x) + 8.0, "start") };
                    let ly = if y > 0.85 { sy(y) + 14.0 } else { sy(y) - 8.0 };
                    view! {
                    <g class="threshold-point" data-testid="threshold-marker" data-x=format!("{x:.4}") data-y=format!("{y:.4}")>
                        <line x1=sx(x) x2=sx(x) y1=sy(0.0) y2=sy(y) class="guide"/>
                        <line x1=LEFT x2=sx(x) y1=sy(y) y2=sy(y) class="guide"/>
                        <circle cx=sx(x) cy=sy(y) r="5"><title>{format!("threshold in use: ({x:.2}, {y:.2})")}</title></circle>
                        <text x=lx y=ly text-anchor=anchor class="marker-label">"threshold"</text>
                    </g>
                }})}
                <text x=(sx(0.0) + sx(1.0)) / 2.0 y=H - 8.0 class="label" text-anchor="middle">{x_label}</text>
                <text x=14 y=(sy(0.0) + sy(1.0)) / 2.0 class="label" text-anchor="middle"
                    transform=format!("rotate(-90 14 {})", (sy(0.0) + sy(1.0)) / 2.0)>{y_label}</text>
            </svg>
            <figcaption>{title} " · " <span class="key-threshold">"●"</span> " the threshold in use"</figcaption>
        </figure>
    }
}

/// Score histograms of normal and anomalous images, with a count axis and the threshold drawn.
#[component]
pub fn Histogram(images: Vec<EvalImage>, #[prop(into)] threshold: Signal<f64>, lo: f64, hi: f64) -> impl IntoView {
    let bins = 20usize;
    let span = (hi - lo).max(1e-9);
    let bin = move |s: f64| (((s - lo) / span * bins as f64).floor() as isize).clamp(0, bins as isize - 1) as usize;
    let mut normal = vec![0usize; bins];
    let mut anomalous = vec![0usize; bins];
    for i in &images {
        if i.anomalous {
            anomalous[bin(i.score as f64)] += 1
        } else {
            normal[bin(i.score as f64)] += 1
        }
    }
    let ticks = count_ticks(normal.iter().chain(anomalous.iter()).copied().max().unwrap_or(1));
    let top = *ticks.last().unwrap_or(&1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let bw = plot_w / bins as f64;
    let y = move |n: f64| sy(n / top);
    let tx = move |t: f64| LEFT + ((t - lo) / span).clamp(0.0, 1.0) * plot_w;
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label="Score histogram" data-testid="chart-histogram">
                <g data-testid="histogram-count-axis">
                    {ticks.iter().map(|&n| view! {
                        <line x1=LEFT x2=W - RIGHT y1=y(n as f64) y2=y(n as f64) class="grid"/>
                        <text x=LEFT - 6.0 y=y(n as f64) + 3.0 class="tick" text-anchor="end">{n.to_string()}</text>
                    }).collect_view()}
                </g>
                {(0..bins).map(|b| {
                    let x = LEFT + b as f64 * bw;
                    view! {
                        <rect x=x + 1.0 y=y(normal[b] as f64) width=bw / 2.0 - 1.0 height=sy(0.0) - y(normal[b] as f64) class="bar-normal">
                            <title>{format!("{} normal", normal[b])}</title>
                        </rect>
                        <rect x=x + bw / 2.0 y=y(anomalous[b] as f64) width=bw / 2.0 - 1.0 height=sy(0.0) - y(anomalous[b] as f64) class="bar-anomaly">
                            <title>{format!("{} anomalous", anomalous[b])}</title>
                        </rect>
                    }
                }).collect_view()}
                <line x1=LEFT y1=sy(0.0) x2=W - RIGHT y2=sy(0.0) class="axis"/>
                <line x1=LEFT y1=sy(0.0) x2=LEFT y2=TOP class="axis"/>
                <line x1=move || tx(threshold.get()) x2=move || tx(threshold.get()) y1=TOP y2=sy(0.0) class="threshold"/>
                <text x=LEFT y=H - BOTTOM + 14.0 class="tick">{format!("{lo:.2}")}</text>
                <text x=W - RIGHT y=H - BOTTOM + 14.0 class="tick" text-anchor="end">{format!("{hi:.2}")}</text>
                <text x=(LEFT + W - RIGHT) / 2.0 y=H - 8.0 class="label" text-anchor="middle">"anomaly score"</text>
                <text x=14 y=(sy(0.0) + TOP) / 2.0 class="label" text-anchor="middle"
                    transform=format!("rotate(-90 14 {})", (sy(0.0) + TOP) / 2.0)>"number of images"</text>
            </svg>
            <figcaption><span class="key-normal">"■ normal"</span> " " <span class="key-anomaly">"■ anomalous"</span> " · red line: threshold"</figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_axes_are_round() {
        assert_eq!(count_ticks(0), vec![0, 1]);
        assert_eq!(count_ticks(3), vec![0, 1, 2, 3]);
        assert_eq!(count_ticks(7), vec![0, 2, 4, 6, 8]);
        assert_eq!(count_ticks(23), vec![0, 5, 10, 15, 20, 25]);
        assert_eq!(count_ticks(180), vec![0, 50, 100, 150, 200]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(1.0), "1");
    }

    #[test]
    fn the_axis_label_clears_the_tick_labels() {
        // The widest tick label ("0.25", 9 px type: under 24 px) ends at LEFT - 6; the rotated label (10 px) is
        // centred on x = 14, so it reaches x = 20 at most.
        assert!(LEFT - 6.0 - 24.0 > 14.0 + 6.0);
    }
}
