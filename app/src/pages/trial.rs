//! Trial detections and batch runs. The model page's Trials card starts a trial over a dataset, an S3 prefix or
//! uploaded images (and, for a hosted model, a batch run) and lists the project's trials and batches; the trial
//! page shows each image with the model's verdict, confidence and heat map, sortable and filterable, lets the
//! user verify each verdict (click, bulk or keyboard), add the verified images to the training dataset, open one
//! in the labelling canvas to fix its mask, and train again.

use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::models::TrainModel;
use crate::api::trials::*;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use std::collections::HashSet;

/// Uploaded images per request (each up to 8 MB; the server takes 80 MB per request).
const UPLOAD_BATCH: usize = 8;
/// Images drawn at once on the trial page ("Show more" adds as many again).
const PAGE: usize = 60;

fn status_class(s: &str) -> &'static str {
    match s {
        "COMPLETED" => "badge good",
        "FAILED" => "badge bad",
        "RUNNING" => "badge busy",
        _ => "badge",
    }
}

fn progress_text(t: &TrialSummary) -> String {
    let mut s = format!("{} of {} images", t.processed + t.failed, t.total);
    if t.processed > 0 {
        s.push_str(&format!(" · {} anomalous", t.anomalous));
    }
    if t.failed > 0 {
        s.push_str(&format!(" · {} could not be run", t.failed));
    }
    s
}

/// The model page's card: start a trial (or a batch on a hosted model) and list the project's.
#[component]
pub fn TrialsCard(project: String, version: i64, hosted: bool) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let p = project.clone();
    let trials = Resource::new(move || tick.get(), move |_| list_trials(p.clone(), "trial".into()));
    let p = project.clone();
    let batches = Resource::new(move || tick.get(), move |_| list_trials(p.clone(), "batch".into()));
    poll_while(move || trials.get().and_then(|r| r.ok()), |l: &Vec<TrialSummary>| l.iter().any(|t| t.status == "RUNNING"), tick, 1000);
    poll_while(move || batches.get().and_then(|r| r.ok()), |l: &Vec<TrialSummary>| l.iter().any(|t| t.status == "RUNNING"), tick, 1000);

    let name = RwSignal::new(String::new());
    let source = RwSignal::new("dataset:test".to_string());
    let s3 = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<String>);
    let files = NodeRef::<leptos::html::Input>::new();
    let navigate = use_navigate();

    let p = project.clone();
    let start = move |_| {
        let (n, kind) = (name.get_untracked().trim().to_string(), source.get_untracked());
        error.set(None);
        let p = p.clone();
        let navigate = navigate.clone();
        let to = format!("/projects/{p}/trials/{}", urlencode(&n));
        if kind == "upload" {
            let list: Vec<web_sys::File> =
                files.get_untracked().and_then(|i| i.files()).map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect()).unwrap_or_default();
            if list.is_empty() {
                error.set(Some("Choose the images to upload first.".into()));
                return;
            }
            busy.set(Some(format!("Uploading 0 of {} images…", list.len())));
            spawn_local(async move {
                let total = list.len();
                for (i, part) in list.chunks(UPLOAD_BATCH).enumerate() {
                    let Ok(form) = web_sys::FormData::new() else { break };
                    let _ = form.append_with_str("project", &p);
                    let _ = form.append_with_str("name", &n);
                    let _ = form.append_with_str("version", &version.to_string());
                    if i > 0 {
                        let _ = form.append_with_str("append", "1");
                    }
                    for f in part {
                        let _ = form.append_with_blob_and_filename("file", f, &f.name());
                    }
                    if let Err(e) = upload_trial(form.into()).await {
                        error.set(Some(error_text(&e)));
                        busy.set(None);
                        tick.update(|t| *t += 1);
                        return;
                    }
                    busy.set(Some(format!("Uploading {} of {total} images…", (i * UPLOAD_BATCH + part.len()).min(total))));
                }
                busy.set(None);
                navigate(&to, Default::default());
            });
        } else {
            let src = if kind == "s3" { s3.get_untracked() } else { kind };
            busy.set(Some("Starting…".into()));
            spawn_local(async move {
                match create_trial(p, n, version, src).await {
                    Ok(()) => navigate(&to, Default::default()),
                    Err(e) => error.set(Some(error_text(&e))),
                }
                busy.set(None);
            });
        }
    };

    let p_rows = project.clone();
    view! {
        <div class="card" data-testid="trials-card">
            <h2>"Trial detection"</h2>
            <p class="muted">{format!(
                "Run model {version} over new images (up to {MAX_TRIAL_IMAGES}), check what it says, and add the verified images to the training dataset."
            )}</p>
            <div class="form-grid">
                <label>"Name " <input type="text" maxlength="100" data-testid="trial-name" placeholder="e.g. line 3, week 48"
                    prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e))/></label>
                <label>"Images from "
                    <select data-testid="trial-source" on:change=move |e| source.set(event_target_value(&e))>
                        <option value="dataset:test" selected=true>"the test dataset"</option>
                        <option value="dataset:train">"the training dataset"</option>
                        <option value="s3">"an S3 prefix"</option>
                        <option value="upload">"images I upload"</option>
                    </select>
                </label>
                <Show when=move || source.get() == "s3">
                    <label>"S3 prefix " <input type="text" placeholder="s3://bucket/prefix/" data-testid="trial-s3"
                        prop:value=move || s3.get() on:input=move |e| s3.set(event_target_value(&e))/></label>
                </Show>
                <Show when=move || source.get() == "upload">
                    <label>"Images " <input type="file" multiple accept="image/png,image/jpeg" data-testid="trial-files" node_ref=files/></label>
                </Show>
            </div>
            <button type="button" class="primary" data-testid="start-trial" disabled=move || busy.get().is_some() || name.get().trim().is_empty()
                on:click=start>"Run trial detection"</button>
            {move || busy.get().map(|m| view! { <span class="muted">" " {m}</span> })}
            <p class="error" role="alert">{move || error.get()}</p>
            <Transition fallback=|| ()>
                {move || trials.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="empty">"No trial detection yet."</p> }.into_any(),
                    Ok(list) => view! { <TrialTable project=p_rows.clone() list/> }.into_any(),
                })}
            </Transition>
            <BatchRuns project=project.clone() version hosted batches tick/>
        </div>
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[component]
fn TrialTable(project: String, list: Vec<TrialSummary>) -> impl IntoView {
    view! {
        <table class="table" data-testid="trials">
            <thead><tr><th>"Trial"</th><th>"Model"</th><th>"Images from"</th><th>"Status"</th><th>"Progress"</th><th>"Started"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|t| view! {
                    <tr>
                        <td><a href=format!("/projects/{project}/trials/{}", urlencode(&t.name))>{t.name.clone()}</a></td>
                        <td>{t.model_version}</td>
                        <td class="mono small">{t.source.clone()}</td>
                        <td><span class=status_class(&t.status)>{t.status.to_lowercase()}</span></td>
                        <td>{progress_text(&t)}</td>
                        <td class="muted small">{format_utc(t.created_at_ms)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn BatchRuns(project: String, version: i64, hosted: bool, batches: Resource<Result<Vec<TrialSummary>, ServerFnError>>, tick: RwSignal<u32>) -> impl IntoView {
    let source = RwSignal::new(String::new());
    let output = RwSignal::new("download".to_string());
    let run = ServerAction::<CreateBatch>::new();
    Effect::new(move |_| {
        if run.version().get() > 0 {
            tick.update(|t| *t += 1);
        }
    });
    let p = project.clone();
    view! {
        <h3>"Batch runs"</h3>
        {if hosted {
            view! {
                <p class="muted">"Send every image of an S3 prefix or a server folder through the hosted model; the results come back as JSON lines (one DetectAnomalyResult per image) and mask PNGs."</p>
                <div class="form-grid">
                    <label>"Images from " <input type="text" placeholder="s3://bucket/prefix/ or /srv/images" data-testid="batch-source"
                        prop:value=move || source.get() on:input=move |e| source.set(event_target_value(&e))/></label>
                    <label>"Results to " <input type="text" placeholder="download or s3://bucket/prefix/" data-testid="batch-output"
                        prop:value=move || output.get() on:input=move |e| output.set(event_target_value(&e))/></label>
                </div>
                <button type="button" data-testid="start-batch" disabled=move || run.pending().get() on:click=move |_| {
                    run.dispatch(CreateBatch { project: p.clone(), version, source: source.get_untracked(), output: output.get_untracked() });
                }>"Run batch"</button>
                <p class="error" role="alert">{move || run.value().get().and_then(|r| r.err()).map(|e| error_text(&e))}</p>
            }.into_any()
        } else {
            view! { <p class="muted">"Batch runs use the hosted model: start it to run one."</p> }.into_any()
        }}
        <Transition fallback=|| ()>
            {move || batches.get().map(|r| match r {
                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                Ok(list) if list.is_empty() => ().into_any(),
                Ok(list) => {
                    let project = project.clone();
                    view! {
                        <table class="table" data-testid="batches">
                            <thead><tr><th>"Batch"</th><th>"Model"</th><th>"Images from"</th><th>"Status"</th><th>"Progress"</th><th>"Results"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|t| {
                                    let results = match (t.status.as_str(), t.output.as_deref()) {
                                        ("COMPLETED", Some("download")) => view! {
                                            <a href=format!("/batches/{project}/{}.zip", t.name) download>"Download (zip)"</a>
                                        }.into_any(),
                                        (_, out) => view! { <span class="mono small">{out.unwrap_or_default().to_string()}</span> }.into_any(),
                                    };
                                    view! {
                                        <tr>
                                            <td class="mono small">{t.name.clone()}</td>
                                            <td>{t.model_version}</td>
                                            <td class="mono small">{t.source.clone()}</td>
                                            <td><span class=status_class(&t.status)>{t.status.to_lowercase()}</span>
                                                " " <span class="muted small">{t.status_message.clone().unwrap_or_default()}</span></td>
                                            <td>{progress_text(&t)}</td>
                                            <td>{results}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

/// The trial page's own state, kept across reloads of the trial (every second while it runs, after each
/// verification), so filters, order, selection and messages stay put.
#[derive(Clone, Copy)]
struct TrialUi {
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
    fn new() -> Self {
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

/// `/projects/:name/trials/:trial`.
#[component]
pub fn TrialPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let trial = move || params.read().get("trial").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(move || (project(), trial(), tick.get()), |(p, t, _)| get_trial(p, t));
    poll_while(move || detail.get().and_then(|r| r.ok()), |d: &TrialDetail| d.trial.status == "RUNNING", tick, 1000);
    let ui = TrialUi::new();
    view! {
        <Title text=move || format!("{} · trial {}", project(), trial())/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / " <a href=move || format!("/projects/{}", project())>{project}</a>
                " / " {move || format!("trial {}", trial())}
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || detail.get().map(|r| match r {
                    Ok(d) => view! { <TrialView detail=d tick ui/> }.into_any(),
                    Err(e) => view! { <div class="card"><p class="error" role="alert">{error_text(&e)}</p></div> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TrialView(detail: TrialDetail, tick: RwSignal<u32>, ui: TrialUi) -> impl IntoView {
    let t = detail.trial.clone();
    let project = detail.project.clone();
    let name = t.name.clone();
    // Verdicts change here at once (no reload, so the gallery keeps the keyboard focus); adding to the dataset
    // reloads the trial for the canvas links.
    let images = RwSignal::new(detail.images.clone());
    let TrialUi { verdict_filter, verification, confident_first, shown_count, opacity, selected, focus, notice, error } = ui;

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
    let shown = Memo::new(move |_| images.with(|all| filter_images(all, filter())));
    let counts = Memo::new(move |_| {
        images.with(|all| {
            let verified = all.iter().filter(|i| i.verdict.is_some()).count();
            let added = all.iter().filter(|i| i.entry.is_some()).count();
            let usable = all.iter().filter(|i| i.done && i.error.is_none()).count();
            (verified, added, usable)
        })
    });

    let (p, n) = (project.clone(), name.clone());
    let mark = move |seqs: Vec<i64>, verdict: &'static str| {
        if seqs.is_empty() {
            return;
        }
        let (p, n) = (p.clone(), n.clone());
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
                    images.update(|all| {
                        for i in all.iter_mut().filter(|i| seqs.contains(&i.seq) && i.done && i.error.is_none()) {
                            i.verdict = v.clone();
                        }
                    });
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    // The selection, or else the focused image.
    let targets = move || {
        let s = selected.get_untracked();
        if !s.is_empty() {
            let mut v: Vec<i64> = s.into_iter().collect();
            v.sort();
            return v;
        }
        shown.with_untracked(|l| l.get(focus.get_untracked()).map(|i| vec![i.seq]).unwrap_or_default())
    };
    let mark_key = mark.clone();
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let len = shown.with_untracked(|l| l.len().min(shown_count.get_untracked()));
        let step = |d: isize| {
            let f = focus.get_untracked() as isize + d;
            focus.set(f.clamp(0, len.saturating_sub(1) as isize) as usize);
        };
        match ev.key().as_str() {
            "c" | "C" => mark_key(targets(), "correct"),
            "x" | "X" => mark_key(targets(), "incorrect"),
            "u" | "U" => mark_key(targets(), ""),
            "ArrowRight" | "j" => step(1),
            "ArrowLeft" | "k" => step(-1),
            " " => {
                let seq = shown.with_untracked(|l| l.get(focus.get_untracked()).map(|i| i.seq));
                if let Some(seq) = seq {
                    selected.update(|s| {
                        if !s.remove(&seq) {
                            s.insert(seq);
                        }
                    });
                }
            }
            _ => return,
        }
        ev.prevent_default();
    };

    let add = {
        let (p, n) = (project.clone(), name.clone());
        move |_| {
            let (p, n) = (p.clone(), n.clone());
            error.set(None);
            spawn_local(async move {
                match add_trial_to_dataset(p, n, "train".into()).await {
                    Ok((added, unverified)) => {
                        let rest = if unverified > 0 { format!(" {unverified} unverified image(s) were left out.") } else { String::new() };
                        notice.set(Some(format!("{added} verified image(s) added to the training dataset.{rest}")));
                        tick.update(|t| *t += 1);
                    }
                    Err(e) => error.set(Some(error_text(&e))),
                }
            });
        }
    };
    let train = ServerAction::<TrainModel>::new();
    let navigate = use_navigate();
    let p_nav = project.clone();
    Effect::new(move |_| {
        if let Some(Ok(v)) = train.value().get() {
            navigate(&format!("/projects/{p_nav}/models/{v}"), Default::default());
        }
    });
    let remove = {
        let (p, n, back) = (project.clone(), name.clone(), format!("/projects/{}/models/{}", project, t.model_version));
        let navigate = use_navigate();
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
    let (p_train, n_train) = (project.clone(), name.clone());
    let (p_cancel, n_cancel) = (project.clone(), name.clone());
    let running = t.status == "RUNNING";
    let fraction = if t.total > 0 { (t.processed + t.failed) as f64 / t.total as f64 } else { 0.0 };
    let mark_a = mark.clone();
    let mark_b = mark.clone();
    let mark_c = mark.clone();
    let project_tiles = project.clone();

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
        <div class="card">
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
            <div class="gallery-actions">
                <span class="selection" data-testid="trial-selected" aria-live="polite">
                    {move || { let n = selected.with(HashSet::len); if n == 0 { "Nothing selected".to_string() } else { format!("{n} selected") } }}
                </span>
                <button type="button" on:click=move |_| selected.set(shown.with_untracked(|l| l.iter().filter(|i| i.done && i.error.is_none()).map(|i| i.seq).collect()))>
                    "Select all shown"</button>
                <button type="button" on:click=move |_| selected.update(|s| s.clear())>"Clear selection"</button>
                <button type="button" data-testid="mark-correct" on:click=move |_| mark_a(targets(), "correct")>"Correct (C)"</button>
                <button type="button" data-testid="mark-incorrect" on:click=move |_| mark_b(targets(), "incorrect")>"Incorrect (X)"</button>
                <button type="button" on:click=move |_| mark_c(targets(), "")>"Unverify (U)"</button>
                <button type="button" class="primary" data-testid="add-verified" disabled=running on:click=add>"Add verified images to the training dataset"</button>
                <button type="button" data-testid="retrain" disabled=move || train.pending().get() on:click=move |_| {
                    train.dispatch(TrainModel { project: p_train.clone(), description: format!("Retrained after trial {}", n_train), bucket: String::new(), prefix: String::new() });
                }>"Train a new model"</button>
                <button type="button" class="danger" data-testid="delete-trial" disabled=running on:click=remove>"Delete trial…"</button>
            </div>
            <p class="hint">"Click an image to select it; arrows move, space selects, C marks correct, X incorrect, U clears — on the selection, or on the focused image."</p>
            {move || notice.get().map(|m| view! { <p class="ok" role="status" data-testid="trial-notice">{m}</p> })}
            <p class="error" role="alert">{move || error.get().or_else(|| train.value().get().and_then(|r| r.err()).map(|e| error_text(&e)))}</p>
            <ul class="gallery trial-gallery" tabindex="0" aria-label="Trial images" data-testid="trial-images" on:keydown=on_key>
                {move || shown.get().into_iter().take(shown_count.get()).enumerate().map(|(i, im)| {
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
                    let canvas = im.entry.clone().map(|(dt, id)| format!("/projects/{}/datasets/{dt}/images/{id}", project_tiles));
                    view! {
                        <li class="tile trial-tile"
                            class:selected=move || selected.with(|s| s.contains(&seq))
                            class:focused=move || focus.get() == i
                            data-verdict=verdict.clone().unwrap_or_default()
                            on:click=move |_| { focus.set(i); selected.update(|s| if !s.remove(&seq) { s.insert(seq); }); }>
                            <div class="thumb-stack" style=format!("aspect-ratio: {} / {}", im.width.max(1), im.height.max(1))>
                                <img src=format!("/media/{}?thumb=1", im.image) alt=file.clone() loading="lazy"/>
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
                }).collect_view()}
            </ul>
            <Show when=move || shown.with(|l| l.len() > shown_count.get())>
                <button type="button" on:click=move |_| shown_count.update(|n| *n += PAGE)>
                    {move || format!("Show more ({} not shown)", shown.with(|l| l.len()).saturating_sub(shown_count.get()))}
                </button>
            </Show>
        </div>
    }
}
