//! The trial page's body: the trial's status and progress, the images with the model's verdict, confidence
//! and heat map (filtered and sorted), verifying them (click, bulk or keyboard), adding the verified images to
//! the training dataset, training again and deleting the trial. [`TrialState`] holds one trial's signals and
//! what the controls do; the components below are its views. The route (`TrialPage`) is in `trial`.

use crate::api::error_text;
use crate::api::models::TrainModel;
use crate::api::trials::*;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use std::collections::HashSet;

/// Images drawn at once on the trial page ("Show more" adds as many again).
const PAGE: usize = 60;

/// A trial's status as a badge's classes (the model page's tables show it the same way).
pub(super) fn status_class(s: &str) -> &'static str {
    match s {
        "COMPLETED" => "badge good",
        "FAILED" => "badge bad",
        "RUNNING" => "badge busy",
        _ => "badge",
    }
}

pub(super) fn progress_text(t: &TrialSummary) -> String {
    let mut s = format!("{} of {} images", t.processed + t.failed, t.total);
    if t.processed > 0 {
        s.push_str(&format!(" · {} anomalous", t.anomalous));
    }
    if t.failed > 0 {
        s.push_str(&format!(" · {} could not be run", t.failed));
    }
    s
}

/// The trial page's own state, kept across reloads of the trial (every second while it runs, after each
/// verification), so filters, order, selection and messages stay put.
#[derive(Clone, Copy)]
pub struct TrialUi {
    verdict_filter: RwSignal<String>,
    verification: RwSignal<String>,
    confident_first: RwSignal<bool>,
    shown_count: RwSignal<usize>,
    opacity: RwSignal<f64>,
    selected: RwSignal<HashSet<i64>>,
    focus: RwSignal<usize>,
    notice: RwSignal<Option<String>>,
    error: RwSignal<Option<String>>,
}

impl TrialUi {
    pub fn new() -> Self {
        TrialUi {
            verdict_filter: RwSignal::new(String::new()),
            verification: RwSignal::new(String::new()),
            confident_first: RwSignal::new(false),
            shown_count: RwSignal::new(PAGE),
            opacity: RwSignal::new(0.5),
            selected: RwSignal::new(HashSet::new()),
            focus: RwSignal::new(0),
            notice: RwSignal::new(None),
            error: RwSignal::new(None),
        }
    }
}

/// One trial as shown: the page's state, the trial's images and what the controls do. `Copy`, so every
/// handler holds its own.
#[derive(Clone, Copy)]
struct TrialState {
    ui: TrialUi,
    /// Bumped to read the trial again.
    tick: RwSignal<u32>,
    project: StoredValue<String>,
    name: StoredValue<String>,
    /// Verdicts change here at once (no reload, so the gallery keeps the keyboard focus); adding to the dataset
    /// reloads the trial for the canvas links.
    images: RwSignal<Vec<TrialImageView>>,
    /// The images the filters let through, in the chosen order.
    shown: Memo<Vec<TrialImageView>>,
    train: ServerAction<TrainModel>,
}

impl TrialState {
    fn new(detail: &TrialDetail, tick: RwSignal<u32>, ui: TrialUi) -> Self {
        let images = RwSignal::new(detail.images.clone());
        let TrialUi { verdict_filter, verification, confident_first, .. } = ui;
        let filter = move || TrialFilter {
            verdict: match verdict_filter.get().as_str() {
                "anomaly" => Some(true),
                "normal" => Some(false),
                _ => None,
            },
            verification: match verification.get().as_str() {
                "unverified" => "unverified",
                "correct" => "correct",
                "incorrect" => "incorrect",
                _ => "",
            },
            confident_first: confident_first.get(),
        };
        TrialState {
            ui,
            tick,
            project: StoredValue::new(detail.project.clone()),
            name: StoredValue::new(detail.trial.name.clone()),
            images,
            shown: Memo::new(move |_| images.with(|all| filter_images(all, filter()))),
            train: ServerAction::<TrainModel>::new(),
        }
    }

    /// Marks the images `correct`, `incorrect` or (empty) unverified.
    fn mark(self, seqs: Vec<i64>, verdict: &'static str) {
        if seqs.is_empty() {
            return;
        }
        let (p, n) = (self.project.get_value(), self.name.get_value());
        let TrialUi { notice, error, .. } = self.ui;
        error.set(None);
        spawn_local(async move {
            match verify_trial(p, n, seqs.clone(), verdict.to_string()).await {
                Ok(changed) => {
                    notice.set(Some(match verdict {
                        "correct" => format!("{changed} marked correct."),
                        "incorrect" => format!("{changed} marked incorrect."),
                        _ => format!("{changed} unverified."),
                    }));
                    let v = (!verdict.is_empty()).then(|| verdict.to_string());
                    self.images.update(|all| {
                        for i in all.iter_mut().filter(|i| seqs.contains(&i.seq) && i.done && i.error.is_none()) {
                            i.verdict = v.clone();
                        }
                    });
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    }

    /// The selection, or else the focused image.
    fn targets(self) -> Vec<i64> {
        let s = self.ui.selected.get_untracked();
        if !s.is_empty() {
            let mut v: Vec<i64> = s.into_iter().collect();
            v.sort();
            return v;
        }
        self.shown.with_untracked(|l| l.get(self.ui.focus.get_untracked()).map(|i| vec![i.seq]).unwrap_or_default())
    }

    /// Selects the image, or unselects it.
    fn toggle(self, seq: i64) {
        self.ui.selected.update(|s| {
            if !s.remove(&seq) {
                s.insert(seq);
            }
        });
    }

    fn on_key(self, ev: leptos::ev::KeyboardEvent) {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let focus = self.ui.focus;
        let len = self.shown.with_untracked(|l| l.len().min(self.ui.shown_count.get_untracked()));
        let step = |d: isize| {
            let f = focus.get_untracked() as isize + d;
            focus.set(f.clamp(0, len.saturating_sub(1) as isize) as usize);
        };
        match ev.key().as_str() {
            "c" | "C" => self.mark(self.targets(), "correct"),
            "x" | "X" => self.mark(self.targets(), "incorrect"),
            "u" | "U" => self.mark(self.targets(), ""),
            "ArrowRight" | "j" => step(1),
            "ArrowLeft" | "k" => step(-1),
            " " => {
                if let Some(seq) = self.shown.with_untracked(|l| l.get(focus.get_untracked()).map(|i| i.seq)) {
                    self.toggle(seq);
                }
            }
            _ => return,
        }
        ev.prevent_default();
    }

    /// Adds the verified images to the training dataset, then reads the trial again (for the canvas links).
    fn add_verified(self) {
        let (p, n) = (self.project.get_value(), self.name.get_value());
        let TrialUi { notice, error, .. } = self.ui;
        error.set(None);
        spawn_local(async move {
            match add_trial_to_dataset(p, n, "train".into()).await {
                Ok((added, unverified)) => {
                    let rest = if unverified > 0 { format!(" {unverified} unverified image(s) were left out.") } else { String::new() };
                    notice.set(Some(format!("{added} verified image(s) added to the training dataset.{rest}")));
                    self.tick.update(|t| *t += 1);
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    }
}

#[component]
pub fn TrialView(detail: TrialDetail, tick: RwSignal<u32>, ui: TrialUi) -> impl IntoView {
    let t = detail.trial.clone();
    let s = TrialState::new(&detail, tick, ui);
    let TrialUi { shown_count, notice, error, .. } = ui;
    let train = s.train;
    let navigate = use_navigate();
    let p_nav = detail.project.clone();
    Effect::new(move |_| {
        if let Some(Ok(v)) = train.value().get() {
            navigate(&format!("/projects/{p_nav}/models/{v}"), Default::default());
        }
    });
    let running = t.status == "RUNNING";
    let model_version = t.model_version;
    // The keys work wherever the page has focus (not only on the gallery), except while typing in a field.
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        if !typing(&ev) {
            s.on_key(ev);
        }
    });
    on_cleanup(move || keys.remove());

    view! {
        <TrialHeader project=detail.project.clone() t tick/>
        <div class="card">
            <TrialFilters s/>
            <TrialActions s running model_version/>
            <p class="hint">"Click an image to select it; arrows move, space selects, C marks correct, X incorrect, U clears — on the selection, or on the focused image (anywhere on the page, except while typing in a field)."</p>
            {move || notice.get().map(|m| view! { <p class="ok" role="status" data-testid="trial-notice">{m}</p> })}
            <p class="error" role="alert">{move || error.get().or_else(|| train.value().get().and_then(|r| r.err()).map(|e| error_text(&e)))}</p>
            <ul class="gallery trial-gallery" tabindex="0" aria-label="Trial images" data-testid="trial-images">
                {move || s.shown.get().into_iter().take(shown_count.get()).enumerate().map(|(i, im)| view! { <TrialTile s i im/> }).collect_view()}
            </ul>
            <Show when=move || s.shown.with(|l| l.len() > shown_count.get())>
                <button type="button" on:click=move |_| shown_count.update(|n| *n += PAGE)>
                    {move || format!("Show more ({} not shown)", s.shown.with(|l| l.len()).saturating_sub(shown_count.get()))}
                </button>
            </Show>
        </div>
    }
}

/// Whether a key goes to a form field (an input — the heat map slider takes arrows —, a list, a text area, editable
/// text), or is a space or Enter on a button or link (which presses it): then it is no shortcut.
fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
    use leptos::wasm_bindgen::JsCast;
    let Some(el) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()) else { return false };
    let tag = el.tag_name().to_ascii_uppercase();
    let pressing = matches!(ev.key().as_str(), " " | "Enter") && matches!(tag.as_str(), "BUTTON" | "A" | "SUMMARY");
    pressing || matches!(tag.as_str(), "INPUT" | "TEXTAREA" | "SELECT") || el.is_content_editable()
}

/// The trial's name, status and progress, and Cancel while it runs.
#[component]
fn TrialHeader(project: String, t: TrialSummary, tick: RwSignal<u32>) -> impl IntoView {
    let (p_cancel, n_cancel) = (project, t.name.clone());
    let running = t.status == "RUNNING";
    let fraction = if t.total > 0 { (t.processed + t.failed) as f64 / t.total as f64 } else { 0.0 };
    view! {
        <header class="page-head">
            <h1>{format!("Trial {}", t.name)}</h1>
            <p>
                <span class=status_class(&t.status) data-testid="trial-status">{t.status.to_lowercase()}</span>
                " " {format!("Model {} · images from {} · {}", t.model_version, t.source, progress_text(&t))}
                " " <span class="muted">{t.status_message.clone().unwrap_or_default()}</span>
            </p>
            {running.then(|| view! {
                <div class="progress-wrap">
                    <progress max="1" value=fraction.to_string()></progress>
                    <button type="button" on:click=move |_| {
                        let (p, n) = (p_cancel.clone(), n_cancel.clone());
                        spawn_local(async move { let _ = cancel_trial(p, "trial".into(), n).await; tick.update(|t| *t += 1); });
                    }>"Cancel"</button>
                </div>
            })}
        </header>
    }
}

/// How many images are verified and added, and what is shown: verdict, verification, order, heat map opacity.
#[component]
fn TrialFilters(s: TrialState) -> impl IntoView {
    let TrialUi { verdict_filter, verification, confident_first, opacity, focus, .. } = s.ui;
    let counts = Memo::new(move |_| {
        s.images.with(|all| {
            let verified = all.iter().filter(|i| i.verdict.is_some()).count();
            let added = all.iter().filter(|i| i.entry.is_some()).count();
            let usable = all.iter().filter(|i| i.done && i.error.is_none()).count();
            (verified, added, usable)
        })
    });
    view! {
        <div class="gallery-head">
            <p data-testid="trial-counts">{move || { let c = counts.get(); format!("{} of {} images verified · {} added to the dataset", c.0, c.2, c.1) }}</p>
            <div class="form-row">
                <label>"Verdict "
                    <select data-testid="filter-verdict" prop:value=move || verdict_filter.get() on:change=move |e| { verdict_filter.set(event_target_value(&e)); focus.set(0); }>
                        <option value="">"all"</option>
                        <option value="anomaly">"anomaly"</option>
                        <option value="normal">"normal"</option>
                    </select>
                </label>
                <label>"Verification "
                    <select data-testid="filter-verification" prop:value=move || verification.get() on:change=move |e| { verification.set(event_target_value(&e)); focus.set(0); }>
                        <option value="">"all"</option>
                        <option value="unverified">"unverified"</option>
                        <option value="correct">"correct"</option>
                        <option value="incorrect">"incorrect"</option>
                    </select>
                </label>
                <label>"Order "
                    <select data-testid="trial-sort" prop:value=move || if confident_first.get() { "high" } else { "low" } on:change=move |e| confident_first.set(event_target_value(&e) == "high")>
                        <option value="low">"least confident first"</option>
                        <option value="high">"most confident first"</option>
                    </select>
                </label>
                <label>"Heat map " <input type="range" min="0" max="1" step="0.05" prop:value=move || opacity.get().to_string()
                    on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { opacity.set(v) } }/></label>
            </div>
        </div>
    }
}

/// The selection count and the buttons: select, verify, add to the dataset, train again, delete the trial.
#[component]
fn TrialActions(s: TrialState, running: bool, model_version: i64) -> impl IntoView {
    let selected = s.ui.selected;
    let train = s.train;
    let remove = {
        let (p, n) = (s.project.get_value(), s.name.get_value());
        let back = format!("/projects/{p}/models/{model_version}");
        let navigate = use_navigate();
        let error = s.ui.error;
        move |_| {
            if !window().confirm_with_message(&format!("Delete the trial {n} and its results? Images already added to a dataset stay there.")).unwrap_or(false) {
                return;
            }
            let (p, n, back, navigate) = (p.clone(), n.clone(), back.clone(), navigate.clone());
            spawn_local(async move {
                match delete_trial(p, "trial".into(), n).await {
                    Ok(()) => navigate(&back, Default::default()),
                    Err(e) => error.set(Some(error_text(&e))),
                }
            });
        }
    };
    view! {
        <div class="gallery-actions">
            <span class="selection" data-testid="trial-selected" aria-live="polite">
                {move || { let n = selected.with(HashSet::len); if n == 0 { "Nothing selected".to_string() } else { format!("{n} selected") } }}
            </span>
            <button type="button" on:click=move |_| selected.set(s.shown.with_untracked(|l| l.iter().filter(|i| i.done && i.error.is_none()).map(|i| i.seq).collect()))>
                "Select all shown"</button>
            <button type="button" on:click=move |_| selected.update(|s| s.clear())>"Clear selection"</button>
            <button type="button" data-testid="mark-correct" on:click=move |_| s.mark(s.targets(), "correct")>"Correct (C)"</button>
            <button type="button" data-testid="mark-incorrect" on:click=move |_| s.mark(s.targets(), "incorrect")>"Incorrect (X)"</button>
            <button type="button" on:click=move |_| s.mark(s.targets(), "")>"Unverify (U)"</button>
            <button type="button" class="primary" data-testid="add-verified" disabled=running on:click=move |_| s.add_verified()>"Add verified images to the training dataset"</button>
            <button type="button" data-testid="retrain" disabled=move || train.pending().get() on:click=move |_| {
                train.dispatch(TrainModel { project: s.project.get_value(), description: format!("Retrained after trial {}", s.name.get_value()), bucket: String::new(), prefix: String::new() });
            }>"Train a new model"</button>
            <button type="button" class="danger" data-testid="delete-trial" disabled=running on:click=remove>"Delete trial…"</button>
        </div>
    }
}

/// One image (`i`: its place among those shown): thumbnail with heat map and mask over it, name, verdict and
/// confidence, error, verification, anomaly labels, and the link to fix its mask once it is in a dataset.
#[component]
fn TrialTile(s: TrialState, i: usize, im: TrialImageView) -> impl IntoView {
    let TrialUi { selected, focus, opacity, .. } = s.ui;
    let seq = im.seq;
    let file = im.source.rsplit('/').next().unwrap_or_default().to_string();
    let (label, class) = match (im.is_anomalous, &im.error) {
        (_, Some(_)) => ("failed".to_string(), "badge bad"),
        (Some(true), _) => ("anomaly".to_string(), "badge label-anomaly"),
        (Some(false), _) => ("normal".to_string(), "badge label-normal"),
        (None, _) => ("waiting".to_string(), "badge"),
    };
    let conf = im.confidence.map(|c| format!("{:.1} %", c * 100.0)).unwrap_or_default();
    let verdict = im.verdict.clone();
    let canvas = im.entry.clone().map(|(dt, id)| format!("/projects/{}/datasets/{dt}/images/{id}", s.project.get_value()));
    view! {
        <li class="tile trial-tile"
            class:selected=move || selected.with(|s| s.contains(&seq))
            class:focused=move || focus.get() == i
            data-verdict=verdict.clone().unwrap_or_default()
            on:click=move |_| { focus.set(i); s.toggle(seq); }>
            <div class="thumb-stack" style=format!("aspect-ratio: {} / {}", im.width.max(1), im.height.max(1))>
                <img src=format!("/media/{}?thumb=2", im.image) alt=file.clone() loading="lazy"/>
                {im.heat_map.clone().map(|h| view! {
                    <img class="overlay heat" src=format!("/media/{h}") alt="" loading="lazy" style=move || format!("opacity:{}", opacity.get())/>
                })}
                {im.mask.clone().map(|m| view! {
                    <img class="overlay mask-overlay" src=format!("/media/{m}") alt="" loading="lazy" style=move || format!("opacity:{}", opacity.get())/>
                })}
            </div>
            <span class="tile-name" title=im.source.clone()>{file}</span>
            <span><span class=class>{label}</span> " " <span class="small">{conf}</span></span>
            {im.error.clone().map(|e| view! { <span class="error small">{e}</span> })}
            {verdict.clone().map(|v| view! { <span class=if v == "correct" { "badge good" } else { "badge bad" }>{format!("✓ {v}")}</span> })}
            {(!im.anomalies.is_empty()).then(|| view! {
                <span class="tile-types muted small">{im.anomalies.iter().map(|(n, _, a)| format!("{n} {:.1} %", a * 100.0)).collect::<Vec<_>>().join(" · ")}</span>
            })}
            {canvas.map(|href| view! { <a class="tile-link" href=href on:click=|ev| ev.stop_propagation()>"Fix mask"</a> })}
        </li>
    }
}
