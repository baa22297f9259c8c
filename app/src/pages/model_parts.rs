//! Small pieces the model pages share: figures as text, status badges, time-left estimates that do not jump,
//! the heat map's colour legend, and the confirm step in front of an irreversible action.

use crate::api::models::heat_gradient;
use leptos::prelude::*;
use std::collections::HashMap;

pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0)).unwrap_or_else(|| "–".into())
}

pub fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

pub fn status_class(s: &str) -> &'static str {
    match s {
        "TRAINED" | "HOSTED" => "badge good",
        "TRAINING_FAILED" | "HOSTING_FAILED" => "badge bad",
        _ => "badge busy",
    }
}

/// `STARTING_HOSTING` as people write it: `starting hosting`.
pub fn status_text(s: &str) -> String {
    s.replace('_', " ").to_lowercase()
}

/// Milliseconds on the clock of whoever renders (the browser's, or the server's for the first render).
fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        web_sys::js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0)
    }
}

/// The next shown estimate: the last one counted down by the time since, moved a quarter of the way to the new
/// estimate. A worker's raw estimate (elapsed × left / done) leaps at every change of stage; this does not.
pub fn smooth_eta(last: Option<(f64, f64)>, estimate: f64, now: f64) -> f64 {
    match last {
        None => estimate,
        Some((shown, at)) => {
            let expected = (shown - (now - at).max(0.0)).max(0.0);
            expected + (estimate - expected) * 0.25
        }
    }
}

/// Time left in words, rounded to whole minutes so that it never flickers by a minute from one second to the next.
pub fn eta_text(ms: f64) -> String {
    let s = ms / 1000.0;
    if s < 50.0 {
        "less than a minute left".into()
    } else {
        format!("about {} min left", (s / 60.0).round().max(1.0))
    }
}

/// The time-left estimates of the model versions one page follows, smoothed across its reads.
#[derive(Clone, Copy)]
pub struct Eta(StoredValue<HashMap<i64, (f64, f64)>>);

impl Eta {
    pub fn new() -> Self {
        Self(StoredValue::new(HashMap::new()))
    }

    /// What to show for `version` now that the worker estimates `eta_ms`.
    pub fn text(&self, version: i64, eta_ms: Option<i64>) -> Option<String> {
        let estimate = eta_ms? as f64;
        let now = now_ms();
        let shown = self.0.try_update_value(|m| {
            let v = smooth_eta(m.get(&version).copied(), estimate, now);
            m.insert(version, (v, now));
            v
        })?;
        Some(eta_text(shown))
    }
}

/// The heat maps' colour scale, from "looks normal" (transparent) to twice a normal image's peak (dark red).
#[component]
pub fn HeatLegend() -> impl IntoView {
    view! {
        <figure class="heat-legend" data-testid="heat-legend">
            <div class="heat-scale" style=format!("background:{}", heat_gradient()) role="img"
                aria-label="Heat map colour scale: transparent where the image looks normal, blue, then yellow at a normal image's highest score, red at twice it"></div>
            <div class="heat-ticks" aria-hidden="true">
                <span>"normal"</span><span>"1× normal peak"</span><span>"2× or more"</span>
            </div>
            <figcaption class="muted small">"Heat map: how unusual each area is, against the normal training images."</figcaption>
        </figure>
    }
}

/// A button whose action cannot be undone: the first press asks `question`, and only `confirm` acts. The open
/// state lives with the caller, so a page that re-renders while the question is up keeps it. The buttons carry
/// `data-testid` `testid` and `confirm-{testid}`.
#[component]
pub fn Confirm(
    #[prop(into)] open: Signal<bool>,
    #[prop(into)] set_open: Callback<bool>,
    label: &'static str,
    #[prop(into)] question: String,
    confirm: &'static str,
    keep: &'static str,
    testid: &'static str,
    #[prop(into)] on_confirm: Callback<()>,
    #[prop(optional)] danger: bool,
    #[prop(optional)] small: bool,
) -> impl IntoView {
    let keep_ref = NodeRef::<leptos::html::Button>::new();
    // Keyboard users land on the safe choice when the question appears (the button they pressed is gone).
    Effect::new(move |_| {
        if let Some(b) = keep_ref.get() {
            let _ = b.focus();
        }
    });
    let class = match (danger, small) {
        (true, true) => "danger small",
        (true, false) => "danger",
        (false, true) => "small",
        (false, false) => "",
    };
    view! {
        <Show when=move || open.get()
            fallback=move || view! {
                <button type="button" class=class data-testid=testid on:click=move |_| set_open.run(true)>{label}"…"</button>
            }>
            <div class="confirm model-confirm" role="alertdialog" aria-label=label data-testid=format!("{testid}-confirm")>
                <p>{question.clone()}</p>
                <div class="form-row">
                    <button type="button" class="danger" data-testid=format!("confirm-{testid}")
                        on:click=move |_| { set_open.run(false); on_confirm.run(()); }>{confirm}</button>
                    <button type="button" node_ref=keep_ref on:click=move |_| set_open.run(false)>{keep}</button>
                </div>
            </div>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_down_and_move_slowly() {
        assert_eq!(smooth_eta(None, 90_000.0, 0.0), 90_000.0);
        // A second later the worker still says 90 s: shown 89 s + a quarter of the way back up.
        assert_eq!(smooth_eta(Some((90_000.0, 0.0)), 90_000.0, 1_000.0), 89_250.0);
        // A leap to 5 minutes moves the shown estimate a quarter of the way, not all of it.
        assert_eq!(smooth_eta(Some((60_000.0, 0.0)), 300_000.0, 0.0), 120_000.0);
        assert_eq!(smooth_eta(Some((500.0, 0.0)), 0.0, 10_000.0), 0.0);
    }

    #[test]
    fn time_left_is_rounded_to_minutes() {
        assert_eq!(eta_text(10_000.0), "less than a minute left");
        assert_eq!(eta_text(55_000.0), "about 1 min left");
        assert_eq!(eta_text(150_000.0), "about 3 min left");
        assert_eq!(eta_text(149_000.0), "about 2 min left");
    }
}
