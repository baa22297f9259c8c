//! Model versions: the project page's Train card and table (live progress while training), and the model page
//! where a quality engineer decides whether to trust a model — precision/recall/F1 and the confusion matrix at a
//! threshold the slider moves (and Save keeps), ROC and PR curves, score histograms, per-image results with
//! heat maps, per-label figures — and hosts it, tries an image and copies the API snippet.

use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::models::*;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0)).unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn duration(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn status_class(s: &str) -> &'static str {
    match s {
        "TRAINED" | "HOSTED" => "badge good",
        "TRAINING_FAILED" | "HOSTING_FAILED" => "badge bad",
        _ => "badge busy",
    }
}

/// The project page's model section: Train (with what is missing first), and the versions.
#[component]
pub fn ModelsCard(project: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let name = project.clone();
    let overview = Resource::new(move || tick.get(), move |_| get_models(name.clone()));
    poll_while(
        move || overview.get().and_then(|r| r.ok()),
        |o: &ModelsOverview| o.models.iter().any(|m| matches!(m.status.as_str(), "TRAINING" | "STARTING_HOSTING" | "STOPPING_HOSTING")),
        tick,
        1000,
    );
    let train = ServerAction::<TrainModel>::new();
    let cancel = ServerAction::<CancelTraining>::new();
    Effect::new(move |_| {
        if train.version().get() > 0 || cancel.version().get() > 0 {
            tick.update(|t| *t += 1);
        }
    });
    let train_error = move || train.value().get().and_then(|r| r.err()).map(|e| error_text(&e));
    let project_for_form = project.clone();
    let project_for_rows = project.clone();

    view! {
        <div class="card" id="models">
            <h2>"Models"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    let project = project_for_form.clone();
                    overview.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                        Ok(o) => {
                            let ready = o.missing.is_empty();
                            let missing = o.missing.clone();
                            view! {
                                <ActionForm action=train attr:class="train-form">
                                    <input type="hidden" name="project" value=project.clone()/>
                                    <label>"Description " <input name="description" maxlength="500" placeholder="optional"/></label>
                                    <label>"Evaluation files to S3 bucket " <input name="bucket" placeholder="optional"/></label>
                                    <label>"prefix " <input name="prefix" placeholder="optional"/></label>
                                    <button type="submit" class="primary" disabled=!ready data-testid="train">"Train model"</button>
                                </ActionForm>
                                <Show when=move || !missing.is_empty()>
                                    <ul class="missing" data-testid="train-missing">
                                        {o.missing.iter().map(|m| view! { <li>{m.clone()}</li> }).collect_view()}
                                    </ul>
                                </Show>
                            }
                            .into_any()
                        }
                    })
                }}
            </Transition>
            <p class="error" role="alert">{train_error}</p>
            <Transition fallback=|| ()>
                {move || {
                    let project = project_for_rows.clone();
                    overview.get().and_then(|r| r.ok()).map(|o| {
                        if o.models.is_empty() {
                            return view! { <p class="muted">"No model versions yet."</p> }.into_any();
                        }
                        view! {
                            <table class="models-table" data-testid="models-table">
                                <thead><tr>
                                    <th>"Version"</th><th>"Status"</th><th>"F1"</th><th>"Precision"</th><th>"Recall"</th>
                                    <th>"AUROC"</th><th>"Created"</th><th>"Duration"</th><th>"Description"</th><th>"Tags"</th>
                                </tr></thead>
                                <tbody>
                                    {o.models.into_iter().map(|m| {
                                        let href = format!("/projects/{}/models/{}", project, m.version);
                                        let p = project.clone();
                                        let v = m.version;
                                        let progress = m.progress.clone();
                                        let training = m.status == "TRAINING";
                                        view! {
                                            <tr data-version=m.version>
                                                <td><a href=href>{format!("Model {}", m.version)}</a></td>
                                                <td>
                                                    <span class=status_class(&m.status)>{m.status.replace('_', " ").to_lowercase()}</span>
                                                    {progress.map(|pr| view! {
                                                        <div class="progress" data-testid="training-progress">
                                                            <progress max="100" value=format!("{:.0}", pr.fraction * 100.0)></progress>
                                                            <span class="muted">{format!(" {} · {:.0} %", pr.stage, pr.fraction * 100.0)}
                                                                {pr.eta_ms.map(|e| format!(" · about {} left", duration(e)))}</span>
                                                        </div>
                                                    })}
                                                    {(!training).then(|| m.status_message.clone().filter(|_| m.status.ends_with("FAILED")).map(|s| view! { <div class="error small">{s}</div> }))}
                                                    <Show when=move || training>
                                                        <button type="button" class="small" on:click={
                                                            let p = p.clone();
                                                            move |_| { cancel.dispatch(CancelTraining { project: p.clone(), version: v }); }
                                                        }>"Cancel"</button>
                                                    </Show>
                                                </td>
                                                <td>{pct(m.f1)}</td><td>{pct(m.precision)}</td><td>{pct(m.recall)}</td><td>{num(m.auroc)}</td>
                                                <td>{format_utc(m.created_at_ms)}</td>
                                                <td>{m.training_ms.map(duration).unwrap_or_default()}</td>
                                                <td>{m.description.clone().unwrap_or_default()}</td>
                                                <td>{m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any()
                    })
                }}
            </Transition>
        </div>
    }
}

const W: f64 = 320.0;
const H: f64 = 220.0;
const PAD: f64 = 36.0;

/// A line chart on [0,1]×[0,1] with axes, ticks and labels.
#[component]
fn CurveChart(title: &'static str, x_label: &'static str, y_label: &'static str, points: Vec<(f64, f64)>, diagonal: bool) -> impl IntoView {
    let sx = move |x: f64| PAD + x.clamp(0.0, 1.0) * (W - PAD - 10.0);
    let sy = move |y: f64| H - PAD - y.clamp(0.0, 1.0) * (H - PAD - 10.0);
    let path: String = points.iter().enumerate().map(|(i, (x, y))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, sx(*x), sy(*y))).collect();
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title data-testid=format!("chart-{}", title.to_lowercase().replace(' ', "-"))>
                <line x1=PAD y1=sy(0.0) x2=sx(1.0) y2=sy(0.0) class="axis"/>
                <line x1=PAD y1=sy(0.0) x2=PAD y2=sy(1.0) class="axis"/>
                {ticks.iter().map(|t| view! {
                    <text x=sx(*t) y=H - PAD + 14.0 class="tick" text-anchor="middle">{format!("{t}")}</text>
                    <text x=PAD - 6.0 y=sy(*t) + 4.0 class="tick" text-anchor="end">{format!("{t}")}</text>
                }).collect_view()}
                {diagonal.then(|| view! { <line x1=sx(0.0) y1=sy(0.0) x2=sx(1.0) y2=sy(1.0) class="diag"/> })}
                <path d=path class="curve"/>
                <text x=(W + PAD) / 2.0 y=H - 4.0 class="label" text-anchor="middle">{x_label}</text>
                <text x=12 y=H / 2.0 class="label" text-anchor="middle" transform=format!("rotate(-90 12 {})", H / 2.0)>{y_label}</text>
            </svg>
            <figcaption>{title}</figcaption>
        </figure>
    }
}

/// Score histograms of normal and anomalous images, with the threshold drawn.
#[component]
fn Histogram(images: Vec<EvalImage>, threshold: Signal<f64>, lo: f64, hi: f64) -> impl IntoView {
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
    let top = normal.iter().chain(anomalous.iter()).copied().max().unwrap_or(1).max(1) as f64;
    let bw = (W - PAD - 10.0) / bins as f64;
    let y = move |n: usize| (H - PAD - 10.0) * n as f64 / top;
    let tx = move |t: f64| PAD + ((t - lo) / span).clamp(0.0, 1.0) * (W - PAD - 10.0);
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label="Score histogram" data-testid="chart-histogram">
                <line x1=PAD y1=H - PAD x2=W - 10.0 y2=H - PAD class="axis"/>
                <line x1=PAD y1=H - PAD x2=PAD y2=10 class="axis"/>
                {(0..bins).map(|b| {
                    let x = PAD + b as f64 * bw;
                    view! {
                        <rect x=x + 1.0 y=H - PAD - y(normal[b]) width=bw / 2.0 - 1.0 height=y(normal[b]) class="bar-normal"/>
                        <rect x=x + bw / 2.0 y=H - PAD - y(anomalous[b]) width=bw / 2.0 - 1.0 height=y(anomalous[b]) class="bar-anomaly"/>
                    }
                }).collect_view()}
                <line x1=move || tx(threshold.get()) x2=move || tx(threshold.get()) y1=10 y2=H - PAD class="threshold"/>
                <text x=PAD y=H - PAD + 14.0 class="tick">{format!("{lo:.2}")}</text>
                <text x=W - 10.0 y=H - PAD + 14.0 class="tick" text-anchor="end">{format!("{hi:.2}")}</text>
                <text x=(W + PAD) / 2.0 y=H - 4.0 class="label" text-anchor="middle">"anomaly score"</text>
                <text x=12 y=H / 2.0 class="label" text-anchor="middle" transform=format!("rotate(-90 12 {})", H / 2.0)>"images"</text>
            </svg>
            <figcaption><span class="key-normal">"■ normal"</span> " " <span class="key-anomaly">"■ anomalous"</span> " · red line: threshold"</figcaption>
        </figure>
    }
}

#[component]
pub fn ModelPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let version = move || params.read().get("version").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(move || (project(), version(), tick.get()), |(p, v, _)| get_model(p, v));
    poll_while(
        move || detail.get().and_then(|r| r.ok()),
        |d: &ModelDetail| matches!(d.summary.status.as_str(), "TRAINING" | "STARTING_HOSTING" | "STOPPING_HOSTING"),
        tick,
        1000,
    );
    view! {
        <Title text=move || format!("{} · model {}", project(), version())/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / " <a href=move || format!("/projects/{}", project())>{project}</a>
                " / " {move || format!("model {}", version())}
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || detail.get().map(|r| match r {
                    Ok(d) => view! { <ModelView detail=d tick/> }.into_any(),
                    Err(e) => view! { <div class="card"><p class="error" role="alert">{error_text(&e)}</p></div> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ModelView(detail: ModelDetail, tick: RwSignal<u32>) -> impl IntoView {
    let s = detail.summary.clone();
    let project = detail.project.clone();
    let version = s.version;
    view! {
        <header class="page-head">
            <h1>{format!("Model {}", s.version)}</h1>
            <p><span class=status_class(&s.status) data-testid="model-status">{s.status.replace('_', " ").to_lowercase()}</span>
               " " <span class="muted">{s.status_message.clone().unwrap_or_default()}</span></p>
            <p class="muted mono">{detail.arn.clone()}</p>
        </header>
        {detail.evaluation.clone().map(|ev| view! {
            <Evaluation project=project.clone() version ev threshold=detail.threshold trained=detail.trained_threshold tick/>
        })}
        <Hosting detail=detail.clone() tick/>
        <TryImage project=project.clone() version/>
        <super::packaging::PackagingCard project=project.clone() version status=s.status.clone()/>
        {(s.status != "TRAINING" && s.status != "TRAINING_FAILED").then(|| view! {
            <super::trial::TrialsCard project=project.clone() version hosted=s.status == "HOSTED"/>
        })}
    }
}

#[component]
fn Evaluation(project: String, version: i64, ev: EvalView, threshold: Option<f64>, trained: Option<f64>, tick: RwSignal<u32>) -> impl IntoView {
    let scores: Vec<f64> = ev.images.iter().map(|i| i.score as f64).collect();
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min).min(threshold.unwrap_or(f64::INFINITY));
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(threshold.unwrap_or(f64::NEG_INFINITY));
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    // A margin at both ends, so the slider can flag every image or none (the browser rounds its value).
    let (lo, hi) = (lo - (hi - lo) * 0.01, hi + (hi - lo) * 0.01);
    let thr = RwSignal::new(threshold.unwrap_or((lo + hi) / 2.0));
    let images = StoredValue::new(ev.images.clone());
    let counts = Memo::new(move |_| images.with_value(|i| confusion(i, thr.get())));
    // The slider's value is the page's own; saving does not reload the page (which would reset the slider).
    let save = ServerAction::<SaveThreshold>::new();
    let _ = tick;
    let (filter, set_filter) = signal("all".to_string());
    let p_save = project.clone();
    let p_restore = project.clone();
    let step = (hi - lo) / 500.0;
    view! {
        <div class="card">
            <h2>"Performance"</h2>
            <p class="muted">{match ev.source.as_str() {
                "test_set" => "Measured on the test dataset.",
                "held_out_split" => "Measured on 20 % of the training images held out from training.",
                _ => "Measured by cross-validation over the training images (no test dataset).",
            }}</p>
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
                <label>"Threshold "
                    <input type="range" data-testid="threshold" min=lo max=hi step=step
                        prop:value=move || thr.get().to_string()
                        on:input=move |e| { if let Ok(v) = event_target_value(&e).parse::<f64>() { thr.set(v) } }/>
                    <span class="mono" data-testid="threshold-value">{move || format!("{:.4}", thr.get())}</span>
                </label>
                <button type="button" class="primary" data-testid="save-threshold" on:click=move |_| {
                    save.dispatch(SaveThreshold { project: p_save.clone(), version, threshold: Some(thr.get_untracked()) });
                }>"Save threshold"</button>
                <button type="button" data-testid="restore-threshold" on:click=move |_| {
                    if let Some(t) = trained { thr.set(t); }
                    save.dispatch(SaveThreshold { project: p_restore.clone(), version, threshold: None });
                }>"Restore trained threshold"</button>
                <span class="muted">{trained.map(|t| format!(" trained: {t:.4}"))}</span>
                <span class="muted" data-testid="threshold-saved">{move || save.value().get().map(|r| match r { Ok(()) => "Saved.".to_string(), Err(e) => error_text(&e) })}</span>
            </div>
            <table class="confusion" data-testid="confusion">
                <thead><tr><th></th><th>"Predicted anomaly"</th><th>"Predicted normal"</th></tr></thead>
                <tbody>
                    <tr><th>"Anomaly"</th><td data-testid="tp">{move || counts.get().0}</td><td data-testid="fn">{move || counts.get().3}</td></tr>
                    <tr><th>"Normal"</th><td data-testid="fp">{move || counts.get().1}</td><td data-testid="tn">{move || counts.get().2}</td></tr>
                </tbody>
            </table>
            <div class="charts">
                <CurveChart title="ROC curve" x_label="false positive rate" y_label="true positive rate" points=ev.roc.clone() diagonal=true/>
                <CurveChart title="Precision-recall curve" x_label="recall" y_label="precision" points=ev.pr.clone() diagonal=false/>
                <Histogram images=ev.images.clone() threshold=thr.into() lo hi/>
            </div>
        </div>
        {(!ev.labels.is_empty()).then(|| view! {
            <div class="card">
                <h2>"Per label"</h2>
                <table data-testid="labels-table">
                    <thead><tr><th>"Label"</th><th>"Test images"</th><th>"F1"</th><th>"Average IoU"</th><th>"Precision"</th><th>"Recall"</th></tr></thead>
                    <tbody>{ev.labels.iter().map(|l| view! {
                        <tr><td>{l.name.clone()}</td><td>{l.images}</td><td>{format!("{:.3}", l.f1)}</td><td>{format!("{:.3}", l.iou)}</td>
                            <td>{format!("{:.3}", l.precision)}</td><td>{format!("{:.3}", l.recall)}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            </div>
        })}
        <div class="card">
            <h2>"Test results"</h2>
            <div class="filters">
                {[("all", "All"), ("wrong", "Incorrect"), ("fp", "False positives"), ("fn", "False negatives")].into_iter().map(|(k, label)| view! {
                    <button type="button" class:active=move || filter.get() == k on:click=move |_| set_filter.set(k.to_string())>{label}</button>
                }).collect_view()}
            </div>
            <div class="gallery" data-testid="test-results">
                {move || {
                    let t = thr.get();
                    let f = filter.get();
                    let mut list: Vec<EvalImage> = images.get_value().into_iter().filter(|i| {
                        let pred = i.score as f64 >= t;
                        match f.as_str() { "wrong" => pred != i.anomalous, "fp" => pred && !i.anomalous, "fn" => !pred && i.anomalous, _ => true }
                    }).collect();
                    list.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
                    list.into_iter().map(|i| {
                        let pred = i.score as f64 >= t;
                        let ok = pred == i.anomalous;
                        view! {
                            <figure class="tile" class:wrong=!ok>
                                <div class="thumb-stack">
                                    <img src=format!("/media/{}?thumb=1", i.image) alt=i.name.clone() loading="lazy"/>
                                    {i.mask.clone().map(|m| view! { <img class="overlay" src=format!("/media/{m}") alt="" loading="lazy"/> })}
                                </div>
                                <figcaption>
                                    <span class="name">{i.name.clone()}</span>
                                    <span class=if ok { "badge good" } else { "badge bad" }>
                                        {if pred { "anomaly" } else { "normal" }} {if ok { " ✓" } else { " ✗" }}
                                    </span>
                                    <span class="muted mono">{format!("{:.3}", i.score)}</span>
                                </figcaption>
                            </figure>
                        }
                    }).collect_view()
                }}
            </div>
        </div>
    }
}

#[component]
fn Hosting(detail: ModelDetail, tick: RwSignal<u32>) -> impl IntoView {
    let start = ServerAction::<StartModel>::new();
    let stop = ServerAction::<StopModel>::new();
    let delete = ServerAction::<DeleteModel>::new();
    Effect::new(move |_| {
        if start.version().get() > 0 || stop.version().get() > 0 {
            tick.update(|t| *t += 1);
        }
    });
    let navigate = leptos_router::hooks::use_navigate();
    let back = format!("/projects/{}", detail.project);
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            navigate(&back, Default::default());
        }
    });
    let status = detail.summary.status.clone();
    let hosted = matches!(status.as_str(), "HOSTED" | "STARTING_HOSTING");
    let trained = matches!(status.as_str(), "TRAINED" | "HOSTING_FAILED");
    let (project, version) = (detail.project.clone(), detail.summary.version);
    let units = RwSignal::new(1i64);
    let err = move || {
        [start.value().get().and_then(|r| r.err()), stop.value().get().and_then(|r| r.err()), delete.value().get().and_then(|r| r.err())]
            .into_iter()
            .flatten()
            .map(|e| error_text(&e))
            .next()
    };
    let snippet = format!(
        "aws lookoutvision start-model --endpoint-url {ep} --project-name {p} --model-version {v} --min-inference-units 1\n\
         aws lookoutvision detect-anomalies --endpoint-url {ep} --project-name {p} --model-version {v} --content-type image/jpeg --body part.jpg\n\
         aws lookoutvision stop-model --endpoint-url {ep} --project-name {p} --model-version {v}\n\n\
         # Python (boto3==1.40.60)\n\
         import boto3\n\
         lfv = boto3.client(\"lookoutvision\", endpoint_url=\"{ep}\", region_name=\"us-east-1\")\n\
         with open(\"part.jpg\", \"rb\") as f:\n    \
             r = lfv.detect_anomalies(ProjectName=\"{p}\", ModelVersion=\"{v}\", Body=f.read(), ContentType=\"image/jpeg\")\n\
         print(r[\"DetectAnomalyResult\"][\"IsAnomalous\"], r[\"DetectAnomalyResult\"][\"Confidence\"])",
        ep = detail.endpoint,
        p = detail.project,
        v = detail.summary.version
    );
    let (p1, p2, p3) = (project.clone(), project.clone(), project.clone());
    view! {
        <div class="card">
            <h2>"Hosting"</h2>
            {if hosted {
                view! {
                    <p>{format!("Hosted with {}–{} inference unit(s); {} detection worker(s) running.",
                        detail.min_units.unwrap_or(1), detail.max_units.unwrap_or(1), detail.workers)}</p>
                    <button type="button" data-testid="stop-model" on:click=move |_| { stop.dispatch(StopModel { project: p1.clone(), version }); }>"Stop model"</button>
                }.into_any()
            } else if trained {
                view! {
                    <label>"Inference units " <input type="number" min="1" max="16" prop:value=move || units.get().to_string()
                        on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { units.set(v) } }/></label>
                    <button type="button" class="primary" data-testid="start-model" on:click=move |_| {
                        start.dispatch(StartModel { project: p2.clone(), version, units: units.get_untracked() });
                    }>"Start model"</button>
                    <button type="button" class="danger" data-testid="delete-model" on:click=move |_| {
                        delete.dispatch(DeleteModel { project: p3.clone(), version });
                    }>"Delete model"</button>
                }.into_any()
            } else {
                view! { <p class="muted">"A model can be hosted once it is trained."</p> }.into_any()
            }}
            <p class="error" role="alert">{err}</p>
            <details>
                <summary>"Use this model from a script"</summary>
                <pre class="snippet" data-testid="snippet">{snippet}</pre>
            </details>
        </div>
    }
}

#[component]
fn TryImage(project: String, version: i64) -> impl IntoView {
    let run = ServerAction::<TryImage>::new();
    let (src, set_src) = signal(None::<String>);
    let opacity = RwSignal::new(0.6f64);
    let on_file = move |e: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let input: web_sys::HtmlInputElement = event_target(&e);
            let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
            let reader = web_sys::FileReader::new().unwrap();
            let r2 = reader.clone();
            let project = project.clone();
            let onload = leptos::wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                if let Some(url) = r2.result().ok().and_then(|v| v.as_string()) {
                    set_src.set(Some(url.clone()));
                    run.dispatch(TryImage { project: project.clone(), version, image: url });
                }
            });
            reader.set_onload(Some(onload.as_ref().unchecked_ref()));
            onload.forget();
            let _ = reader.read_as_data_url(&file);
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&e, &project, set_src, version);
        }
    };
    view! {
        <div class="card">
            <h2>"Try an image"</h2>
            <input type="file" accept="image/png,image/jpeg" data-testid="try-file" on:change=on_file/>
            <label>" Heat map opacity " <input type="range" min="0" max="1" step="0.05" prop:value=move || opacity.get().to_string()
                on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { opacity.set(v) } }/></label>
            <Show when=move || run.pending().get()><p class="muted">"Detecting…"</p></Show>
            {move || run.value().get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                Ok(t) => view! {
                    <p data-testid="try-verdict" class=if t.is_anomalous { "verdict bad" } else { "verdict good" }>
                        {if t.is_anomalous { "Anomaly" } else { "Normal" }} {format!(" · confidence {:.1} % · score {:.3}", t.confidence * 100.0, t.score)}
                    </p>
                    <div class="try-stack">
                        {src.get().map(|s| view! { <img src=s alt="tried image"/> })}
                        <img class="overlay" data-testid="try-heatmap" src=t.heat_map.clone() alt="heat map" style=move || format!("opacity:{}", opacity.get())/>
                        {t.mask.clone().map(|m| view! { <img class="overlay" src=m alt="mask" style=move || format!("opacity:{}", opacity.get())/> })}
                    </div>
                    <ul class="legend">{t.anomalies.iter().map(|(n, c, a)| view! {
                        <li><span class="swatch" style=format!("background:{c}")></span>{format!("{n}: {:.2} % of the image", a * 100.0)}</li>
                    }).collect_view()}</ul>
                }.into_any(),
            })}
        </div>
    }
}
