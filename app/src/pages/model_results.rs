//! The model page's test results: every evaluated image as a tile (its file name, an unsquashed thumbnail, the
//! verdict at the threshold in use), filtered and paged, last on the page and folded until opened; a tile opens
//! the per-image view — the image under the model's heat map and the ground-truth mask, the score against the
//! threshold, predicted against true label — with Previous / Next (or the arrow keys) and Escape.

use super::model_parts::HeatLegend;
use crate::api::error_text;
use crate::api::models::{get_eval_heat_map, EvalImage};
use leptos::prelude::*;

/// Tiles per page.
pub const PAGE: usize = 24;

/// What the results keep across the page's re-reads (the page makes one).
#[derive(Clone, Copy)]
pub struct ResultsState {
    /// `all`, `wrong`, `fp` or `fn`.
    pub filter: RwSignal<&'static str>,
    pub page: RwSignal<usize>,
    pub expanded: RwSignal<bool>,
    /// The blob hash of the image whose view is open.
    pub open: RwSignal<Option<String>>,
    pub opacity: RwSignal<f64>,
    pub show_mask: RwSignal<bool>,
}

impl ResultsState {
    pub fn new() -> Self {
        Self {
            filter: RwSignal::new("all"),
            page: RwSignal::new(0),
            expanded: RwSignal::new(false),
            open: RwSignal::new(None),
            opacity: RwSignal::new(0.75),
            show_mask: RwSignal::new(true),
        }
    }
}

/// The images a filter keeps at a threshold, highest score first.
pub fn filtered(images: &[EvalImage], threshold: f64, filter: &str) -> Vec<EvalImage> {
    let mut list: Vec<EvalImage> = images
        .iter()
        .filter(|i| {
            let pred = i.score as f64 >= threshold;
            match filter {
                "wrong" => pred != i.anomalous,
                "fp" => pred && !i.anomalous,
                "fn" => !pred && i.anomalous,
                _ => true,
            }
        })
        .cloned()
        .collect();
    list.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    list
}

fn label(anomalous: bool) -> &'static str {
    if anomalous {
        "anomaly"
    } else {
        "normal"
    }
}

#[component]
pub fn TestResults(project: String, version: i64, images: Vec<EvalImage>, threshold: Signal<f64>, state: ResultsState) -> impl IntoView {
    let total = images.len();
    let all = StoredValue::new(images);
    let list = Memo::new(move |_| all.with_value(|i| filtered(i, threshold.get(), state.filter.get())));
    let wrong = Memo::new(move |_| all.with_value(|i| filtered(i, threshold.get(), "wrong").len()));
    let pages = move || list.with(|l| l.len().div_ceil(PAGE)).max(1);
    let paged = move || pages() > 1;
    let filters: [(&'static str, &'static str); 4] = [("all", "All"), ("wrong", "Incorrect"), ("fp", "False positives"), ("fn", "False negatives")];
    view! {
        <details class="card results-card" id="test-results" prop:open=move || state.expanded.get()
            on:toggle=move |e| state.expanded.set(event_target::<web_sys::Element>(&e).has_attribute("open"))>
            <summary data-testid="test-results-summary">
                <h2 class="inline-heading">"Test results"</h2>
                <span class="muted">{move || format!(" · {total} images, {} incorrect at this threshold", wrong.get())}</span>
            </summary>
            <div class="filters" role="group" aria-label="Show">
                {filters.into_iter().map(|(k, text)| view! {
                    <button type="button" class:active=move || state.filter.get() == k aria-pressed=move || (state.filter.get() == k).to_string()
                        on:click=move |_| { state.filter.set(k); state.page.set(0); }>{text}</button>
                }).collect_view()}
            </div>
            <ul class="gallery results-gallery" data-testid="test-results">
                {move || {
                    let t = threshold.get();
                    let page = state.page.get().min(pages() - 1);
                    list.get().into_iter().skip(page * PAGE).take(PAGE).map(|i| {
                        let pred = i.score as f64 >= t;
                        let ok = pred == i.anomalous;
                        let hash = i.image.clone();
                        view! {
                            <li>
                                <button type="button" class="tile result-tile" class:wrong=!ok data-testid="result-tile"
                                    aria-label=format!("{}: predicted {}, labelled {}, score {:.3}. Open", i.name, label(pred), label(i.anomalous), i.score)
                                    on:click=move |_| state.open.set(Some(hash.clone()))>
                                    <span class="result-thumb">
                                        <img src=format!("/media/{}?thumb=2", i.image) alt="" loading="lazy"/>
                                        {i.mask.clone().map(|m| view! { <img class="overlay" src=format!("/media/{m}") alt="" loading="lazy"/> })}
                                    </span>
                                    <span class="result-name" title=i.name.clone() data-testid="result-name">{i.name.clone()}</span>
                                    <span class="result-badges">
                                        <span class=if ok { "badge good" } else { "badge bad" }>{label(pred)}{if ok { " ✓" } else { " ✗" }}</span>
                                        <span class="muted mono">{format!("{:.3}", i.score)}</span>
                                    </span>
                                </button>
                            </li>
                        }
                    }).collect_view()
                }}
            </ul>
            {move || list.with(|l| l.is_empty()).then(|| view! { <p class="empty">"No image here at this threshold."</p> })}
            <Show when=paged>
                <nav class="form-row pager" aria-label="Test result pages">
                    <button type="button" disabled=move || state.page.get() == 0 on:click=move |_| state.page.update(|p| *p = p.saturating_sub(1))>"‹ Previous page"</button>
                    <span class="muted" data-testid="results-page">{move || format!("Page {} of {}", state.page.get().min(pages() - 1) + 1, pages())}</span>
                    <button type="button" disabled=move || { state.page.get() + 1 >= pages() } on:click=move |_| state.page.update(|p| *p += 1)>"Next page ›"</button>
                </nav>
            </Show>
        </details>
        <ResultDialog project version list threshold state/>
    }
}

/// The per-image view, open while `state.open` names an image of `list`.
#[component]
fn ResultDialog(project: String, version: i64, list: Memo<Vec<EvalImage>>, threshold: Signal<f64>, state: ResultsState) -> impl IntoView {
    let pos = Memo::new(move |_| state.open.get().and_then(|h| list.with(|l| l.iter().position(|i| i.image == h))));
    let heat = LocalResource::new(move || {
        let (project, image) = (project.clone(), state.open.get());
        async move {
            match image {
                // Tagged with its image: while the next one loads, the last one's map is not shown over it.
                Some(image) => Some((image.clone(), get_eval_heat_map(project, version, image).await.map_err(|e| error_text(&e)))),
                None => None,
            }
        }
    });
    // Width / height of the image shown, once it has loaded.
    let aspect = RwSignal::new(None::<f64>);
    Effect::new(move |_| {
        state.open.track();
        aspect.set(None);
    });
    let go = move |step: isize| {
        let (Some(p), n) = (pos.get_untracked(), list.with_untracked(|l| l.len())) else { return };
        let next = p as isize + step;
        if next >= 0 && (next as usize) < n {
            let hash = list.with_untracked(|l| l[next as usize].image.clone());
            // Keep the tile's page in step, so closing lands where the user is.
            state.page.set(next as usize / PAGE);
            state.open.set(Some(hash));
        }
    };
    let dialog = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if pos.get().is_some() {
            if let Some(d) = dialog.get() {
                let _ = d.focus();
            }
        }
    });
    // The heat map of the image shown, once it has come.
    let heat_now = move || heat.get().flatten().filter(|(h, _)| state.open.with(|o| o.as_ref() == Some(h))).map(|(_, r)| r);
    let close = move || state.open.set(None);
    view! {
        {move || pos.get().map(|p| {
            let n = list.with(|l| l.len());
            let Some(i) = list.with(|l| l.get(p).cloned()) else { return ().into_any() };
            let t = threshold.get();
            let pred = i.score as f64 >= t;
            let ok = pred == i.anomalous;
            let verdict = match (pred, i.anomalous) {
                (true, true) => "correct: an anomaly found",
                (false, false) => "correct: a normal image passed",
                (true, false) => "incorrect: a false positive",
                (false, true) => "incorrect: a false negative (missed anomaly)",
            };
            let has_mask = i.mask.is_some();
            view! {
                <div class="dialog-backdrop" on:click=move |e| {
                    // A click on the backdrop itself (not inside the dialog) closes it.
                    if e.target() == e.current_target() { close() }
                }>
                    <div class="card dialog result-dialog" role="dialog" aria-modal="true" aria-labelledby="result-title" tabindex="-1"
                        data-testid="result-dialog" node_ref=dialog
                        on:keydown=move |e: leptos::ev::KeyboardEvent| match e.key().as_str() {
                            "Escape" => { e.prevent_default(); close() }
                            "ArrowLeft" => { e.prevent_default(); go(-1) }
                            "ArrowRight" => { e.prevent_default(); go(1) }
                            _ => {}
                        }>
                        <div class="result-head">
                            <h2 id="result-title" data-testid="result-title">{i.name.clone()}</h2>
                            <span class="muted" data-testid="result-position">{format!("{} of {n}", p + 1)}</span>
                            <button type="button" class="small" aria-label="Close" data-testid="result-close" on:click=move |_| close()>"Close ✕"</button>
                        </div>
                        <div class="result-body">
                            <div class="result-stack" style=move || aspect.get().map(|a| format!("aspect-ratio:{a};width:min(100%, calc(68vh * {a}))")).unwrap_or_default()>
                                <img class="base" src=format!("/media/{}", i.image) alt=i.name.clone() on:load=move |e| {
                                    // The box takes the image's aspect, so small images grow to fit and the overlays cover exactly the image.
                                    let img: web_sys::HtmlImageElement = event_target(&e);
                                    if img.natural_width() > 0 && img.natural_height() > 0 {
                                        aspect.set(Some(img.natural_width() as f64 / img.natural_height() as f64));
                                    }
                                }/>
                                {move || match heat_now() {
                                    Some(Ok(url)) => view! {
                                        <img class="overlay" data-testid="result-heatmap" src=url alt="the model's heat map"
                                            style=move || format!("opacity:{}", state.opacity.get())/>
                                    }.into_any(),
                                    _ => ().into_any(),
                                }}
                                {i.mask.clone().map(|m| view! {
                                    <img class="overlay mask" data-testid="result-mask" src=format!("/media/{m}") alt="ground-truth mask"
                                        style:display=move || if state.show_mask.get() { "block" } else { "none" }/>
                                })}
                            </div>
                            <div class="result-facts">
                                <p class=if ok { "verdict good" } else { "verdict bad" } data-testid="result-verdict">{verdict}</p>
                                <dl class="facts">
                                    <dt>"Score"</dt>
                                    <dd data-testid="result-score">{format!("{:.4} against the threshold {t:.4}: {} it", i.score,
                                        if pred { "at or above" } else { "below" })}</dd>
                                    <dt>"Predicted"</dt><dd data-testid="result-predicted">{label(pred)}</dd>
                                    <dt>"True label"</dt><dd data-testid="result-true">{label(i.anomalous)}</dd>
                                </dl>
                                {move || match heat_now() {
                                    None => view! { <p class="muted" role="status">"Computing the heat map…"</p> }.into_any(),
                                    Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                                    Some(Ok(_)) => ().into_any(),
                                }}
                                <label for="result-opacity">"Heat map opacity"</label>
                                <input id="result-opacity" type="range" min="0" max="1" step="0.05" prop:value=move || state.opacity.get().to_string()
                                    on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { state.opacity.set(v) } }/>
                                {has_mask.then(|| view! {
                                    <label class="inline"><input type="checkbox" prop:checked=move || state.show_mask.get()
                                        on:change=move |e| state.show_mask.set(event_target_checked(&e))/>" Show the ground-truth mask"</label>
                                })}
                                {(!has_mask).then(|| view! { <p class="muted small">"No ground-truth mask for this image."</p> })}
                                <HeatLegend/>
                            </div>
                        </div>
                        <div class="form-row">
                            <button type="button" data-testid="result-prev" disabled={p == 0} on:click=move |_| go(-1)>"‹ Previous"</button>
                            <button type="button" data-testid="result-next" disabled={p + 1 >= n} on:click=move |_| go(1)>"Next ›"</button>
                            <span class="muted small">"← → to move, Esc to close"</span>
                        </div>
                    </div>
                </div>
            }.into_any()
        })}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_what_they_say_highest_score_first() {
        let img = |n: &str, a: bool, s: f32| EvalImage { name: n.into(), image: n.into(), mask: None, anomalous: a, score: s };
        let images = vec![img("tp", true, 0.9), img("fn", true, 0.2), img("fp", false, 0.7), img("tn", false, 0.1)];
        let names = |f: &str| filtered(&images, 0.5, f).into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names("all"), ["tp", "fp", "fn", "tn"]);
        assert_eq!(names("wrong"), ["fp", "fn"]);
        assert_eq!(names("fp"), ["fp"]);
        assert_eq!(names("fn"), ["fn"]);
    }
}
