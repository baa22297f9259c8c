//! A batch run's page (`/projects/:name/batches/:batch`): its status and progress (live while it runs), Cancel,
//! Delete, the download of its results and, for a batch over a dataset or an upload, every image with the
//! hosted model's verdict, confidence, anomaly types and mask, filtered by verdict and ordered like a trial's.

use super::trial_view::{progress_text, status_class};
use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::trials::*;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

/// Images drawn at once ("Show more" adds as many again).
const PAGE: usize = 60;

#[component]
pub fn BatchPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let batch = move || params.read().get("batch").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(move || (project(), batch(), tick.get()), |(p, b, _)| get_batch(p, b));
    poll_while(move || detail.get().and_then(|r| r.ok()), |d: &TrialDetail| d.trial.status == "RUNNING", tick, 1000);
    // The filters live here, so the page's reloads (every second while it runs) keep them.
    let verdict = RwSignal::new(String::new());
    let order = RwSignal::new("source".to_string());
    let shown = RwSignal::new(PAGE);
    view! {
        <Title text=move || format!("{} · {}", project(), batch())/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / " <a href=move || format!("/projects/{}", project())>{project}</a>
                " / " {batch}
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || detail.get().map(|r| match r {
                    Ok(d) => view! { <BatchView d tick verdict order shown/> }.into_any(),
                    Err(e) => view! { <div class="card"><p class="error" role="alert">{error_text(&e)}</p></div> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn BatchView(d: TrialDetail, tick: RwSignal<u32>, verdict: RwSignal<String>, order: RwSignal<String>, shown: RwSignal<usize>) -> impl IntoView {
    let t = d.trial.clone();
    let project = d.project.clone();
    let images = StoredValue::new(d.images);
    let list = Memo::new(move |_| {
        let f = TrialFilter {
            verdict: match verdict.get().as_str() {
                "anomaly" => Some(true),
                "normal" => Some(false),
                _ => None,
            },
            verification: "",
            confident_first: order.get() == "high",
        };
        let failed_only = verdict.get() == "failed";
        images.with_value(|all| {
            let mut v = if order.get() == "source" {
                all.iter().filter(|i| f.verdict.is_none() || i.is_anomalous == f.verdict).cloned().collect()
            } else {
                filter_images(all, f)
            };
            if failed_only {
                v.retain(|i| i.error.is_some());
            }
            v
        })
    });
    let has_rows = images.with_value(|i| !i.is_empty());
    let results = if has_rows {
        view! {
            <div class="card">
                <div class="gallery-head">
                    <p data-testid="batch-counts">{move || format!("{} images shown", list.with(Vec::len))}</p>
                    <div class="form-row">
                        <label>"Verdict "
                            <select data-testid="batch-filter" prop:value=move || verdict.get() on:change=move |e| verdict.set(event_target_value(&e))>
                                <option value="">"all"</option>
                                <option value="anomaly">"anomaly"</option>
                                <option value="normal">"normal"</option>
                                <option value="failed">"could not be run"</option>
                            </select>
                        </label>
                        <label>"Order "
                            <select data-testid="batch-order" prop:value=move || order.get() on:change=move |e| order.set(event_target_value(&e))>
                                <option value="source">"as read"</option>
                                <option value="low">"least confident first"</option>
                                <option value="high">"most confident first"</option>
                            </select>
                        </label>
                    </div>
                </div>
                <ul class="gallery trial-gallery" aria-label="Batch results" data-testid="batch-images">
                    {move || list.get().into_iter().take(shown.get()).map(|im| view! { <BatchTile im/> }).collect_view()}
                </ul>
                <Show when=move || list.with(|l| l.len() > shown.get())>
                    <button type="button" on:click=move |_| shown.update(|n| *n += PAGE)>
                        {move || format!("Show more ({} not shown)", list.with(Vec::len).saturating_sub(shown.get()))}
                    </button>
                </Show>
            </div>
        }
        .into_any()
    } else {
        let place = match t.output.as_deref() {
            Some("download") => "the download below".to_string(),
            Some(o) => format!("{o}{}/results.jsonl", t.name),
            None => "its results file".to_string(),
        };
        view! {
            <div class="card">
                <p class="muted" data-testid="batch-no-rows">
                    {format!("This batch read {}: one line per image is in {place} (results.jsonl), not kept here. A batch over a dataset or uploaded images shows each image on this page.", t.source)}
                </p>
            </div>
        }
        .into_any()
    };
    view! {
        <BatchHeader project t tick/>
        {results}
    }
}

/// The batch's status, source, progress and results, with Cancel while it runs and Delete after.
#[component]
fn BatchHeader(project: String, t: TrialSummary, tick: RwSignal<u32>) -> impl IntoView {
    let running = t.status == "RUNNING";
    let fraction = if t.total > 0 { (t.processed + t.failed) as f64 / t.total as f64 } else { 0.0 };
    let error = RwSignal::new(None::<String>);
    let download = (t.status == "COMPLETED" && t.output.as_deref() == Some("download"))
        .then(|| view! { <a class="button" href=format!("/batches/{project}/{}.zip", t.name) download data-testid="batch-download">"Download results (zip)"</a> });
    let (p, n) = (project.clone(), t.name.clone());
    let cancel = move |_| {
        let (p, n) = (p.clone(), n.clone());
        spawn_local(async move {
            if let Err(e) = cancel_trial(p, "batch".into(), n).await {
                error.set(Some(error_text(&e)));
            }
            tick.update(|t| *t += 1);
        });
    };
    let navigate = use_navigate();
    let (p, n, back) = (project.clone(), t.name.clone(), format!("/projects/{project}/models/{}", t.model_version));
    let remove = move |_| {
        if !window().confirm_with_message(&format!("Delete the batch {n} and its results? This cannot be undone.")).unwrap_or(false) {
            return;
        }
        let (p, n, back, navigate) = (p.clone(), n.clone(), back.clone(), navigate.clone());
        spawn_local(async move {
            match delete_trial(p, "batch".into(), n).await {
                Ok(()) => navigate(&back, Default::default()),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    view! {
        <header class="page-head">
            <h1>{format!("Batch {}", t.name)}</h1>
            <p>
                <span class=status_class(&t.status) data-testid="batch-status">{t.status.to_lowercase()}</span>
                " " {format!("Model {} · images from {} · results to {} · {}", t.model_version, t.source, t.output.clone().unwrap_or_default(), progress_text(&t))}
                " " <span class="muted">{t.status_message.clone().unwrap_or_default()}</span>
            </p>
            <div class="form-row">
                {running.then(|| view! {
                    <progress max="1" value=fraction.to_string()></progress>
                    <button type="button" on:click=cancel>"Cancel"</button>
                })}
                {download}
                <a class="button" href=format!("/projects/{project}/models/{}", t.model_version)>{format!("Back to model {}", t.model_version)}</a>
                <button type="button" class="danger" data-testid="delete-batch" disabled=running on:click=remove>"Delete batch…"</button>
            </div>
            <p class="error" role="alert">{move || error.get()}</p>
        </header>
    }
}

/// One image's result: thumbnail with its mask over it, name, verdict, confidence, anomaly types or error.
#[component]
fn BatchTile(im: TrialImageView) -> impl IntoView {
    let file = im.source.rsplit('/').next().unwrap_or_default().to_string();
    let (label, class) = match (im.is_anomalous, &im.error) {
        (_, Some(_)) => ("could not be run", "badge bad"),
        (Some(true), _) => ("anomaly", "badge label-anomaly"),
        (Some(false), _) => ("normal", "badge label-normal"),
        (None, _) => ("waiting", "badge"),
    };
    let conf = im.confidence.map(|c| format!("{:.1} %", c * 100.0)).unwrap_or_default();
    view! {
        <li class="tile trial-tile" data-verdict=label>
            <div class="thumb-stack" style=format!("aspect-ratio: {} / {}", im.width.max(1), im.height.max(1))>
                <img src=format!("/media/{}?thumb=2", im.image) alt=file.clone() loading="lazy"/>
                {im.mask.clone().map(|m| view! { <img class="overlay mask-overlay" src=format!("/media/{m}") alt="" loading="lazy" style="opacity:0.5"/> })}
            </div>
            <span class="tile-name" title=im.source.clone()>{file}</span>
            <span><span class=class>{label}</span> " " <span class="small">{conf}</span></span>
            {im.error.clone().map(|e| view! { <span class="error small">{e}</span> })}
            {(!im.anomalies.is_empty()).then(|| view! {
                <span class="tile-types muted small">{im.anomalies.iter().map(|(n, _, a)| format!("{n} {:.1} %", a * 100.0)).collect::<Vec<_>>().join(" · ")}</span>
            })}
        </li>
    }
}
