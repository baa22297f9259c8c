//! The model page's Hosting card (start with a number of inference units; stop and delete behind a confirm step;
//! the API snippet) and its "Try an image" card (the verdict, and the heat map over the image with its colour
//! scale and an opacity control).

use super::model_parts::{Confirm, HeatLegend};
use crate::api::error_text;
use crate::api::models::*;
use leptos::prelude::*;

/// The hosting actions and questions of a model page, kept across its re-reads (the page makes one).
#[derive(Clone, Copy)]
pub struct HostingState {
    start: ServerAction<StartModel>,
    stop: ServerAction<StopModel>,
    delete: ServerAction<DeleteModel>,
    units: RwSignal<i64>,
    confirm_stop: RwSignal<bool>,
    confirm_delete: RwSignal<bool>,
}

impl HostingState {
    /// `tick` is bumped when a start or stop returns (the page reads the model again); a deleted model sends
    /// the page back to `project_page`.
    pub fn new(tick: RwSignal<u32>, project_page: impl Fn() -> String + Send + Sync + 'static) -> Self {
        let s = Self {
            start: ServerAction::new(),
            stop: ServerAction::new(),
            delete: ServerAction::new(),
            units: RwSignal::new(1),
            confirm_stop: RwSignal::new(false),
            confirm_delete: RwSignal::new(false),
        };
        Effect::new(move |_| {
            // Both read every time: `||` would stop following `stop` once `start` has run.
            let (started, stopped) = (s.start.version().get(), s.stop.version().get());
            if started + stopped > 0 {
                tick.update(|t| *t += 1);
            }
        });
        let navigate = leptos_router::hooks::use_navigate();
        Effect::new(move |_| {
            if let Some(Ok(())) = s.delete.value().get() {
                navigate(&project_page(), Default::default());
            }
        });
        s
    }

    fn error(&self) -> Option<String> {
        [self.start.value().get().and_then(|r| r.err()), self.stop.value().get().and_then(|r| r.err()), self.delete.value().get().and_then(|r| r.err())]
            .into_iter()
            .flatten()
            .map(|e| error_text(&e))
            .next()
    }
}

#[component]
pub fn Hosting(detail: ModelDetail, state: HostingState) -> impl IntoView {
    let status = detail.summary.status.clone();
    let hosted = matches!(status.as_str(), "HOSTED" | "STARTING_HOSTING");
    let trained = matches!(status.as_str(), "TRAINED" | "HOSTING_FAILED");
    let (project, version) = (detail.project.clone(), detail.summary.version);
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
        v = version
    );
    let (p1, p2, p3, p4) = (project.clone(), project.clone(), project.clone(), project.clone());
    let s = state;
    view! {
        <div class="card" id="hosting">
            <h2>"Hosting"</h2>
            {if hosted {
                view! {
                    <p>{format!("Hosted with {}–{} inference unit(s); {} detection worker(s) running.",
                        detail.min_units.unwrap_or(1), detail.max_units.unwrap_or(1), detail.workers)}</p>
                    {drift_line(detail.drift.clone())}
                    <Confirm open=s.confirm_stop set_open=move |o| s.confirm_stop.set(o) label="Stop model" testid="stop-model"
                        question=format!("Stop hosting model {version}? DetectAnomalies calls to it are refused until it is started again.")
                        confirm="Stop model" keep="Keep it hosted"
                        on_confirm=move |()| { s.stop.dispatch(StopModel { project: p1.clone(), version }); }/>
                }.into_any()
            } else if trained {
                view! {
                    <div class="form-row">
                        <label class="inline" for="inference-units">"Inference units"</label>
                        <input id="inference-units" type="number" min="1" max="16" prop:value=move || s.units.get().to_string()
                            on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { s.units.set(v) } }/>
                        <button type="button" class="primary" data-testid="start-model" disabled=move || s.start.pending().get() on:click=move |_| {
                            s.start.dispatch(StartModel { project: p2.clone(), version, units: s.units.get_untracked() });
                        }>"Start model"</button>
                    </div>
                    <div class="spaced">
                        <Confirm open=s.confirm_delete set_open=move |o| s.confirm_delete.set(o) label="Delete model" testid="delete-model" danger=true
                            question=format!("Delete model {version} with its evaluation and trials? This cannot be undone.")
                            confirm="Delete permanently" keep="Keep it"
                            on_confirm=move |()| { s.delete.dispatch(DeleteModel { project: p3.clone(), version }); }/>
                    </div>
                }.into_any()
            } else if status == "TRAINING_FAILED" {
                view! {
                    <p class="muted">"This version did not train, so it cannot be hosted."</p>
                    <Confirm open=s.confirm_delete set_open=move |o| s.confirm_delete.set(o) label="Delete model" testid="delete-model" danger=true
                        question=format!("Delete model {version}? This cannot be undone.")
                        confirm="Delete permanently" keep="Keep it"
                        on_confirm=move |()| { s.delete.dispatch(DeleteModel { project: p4.clone(), version }); }/>
                }.into_any()
            } else if status == "STOPPING_HOSTING" {
                view! { <p class="muted" role="status">"Stopping…"</p> }.into_any()
            } else {
                view! { <p class="muted">"A model can be hosted once it is trained."</p> }.into_any()
            }}
            <p class="error" role="alert">{move || s.error()}</p>
            <details class="spaced">
                <summary>"Use this model from a script"</summary>
                <pre class="snippet" data-testid="snippet">{snippet}</pre>
            </details>
        </div>
    }
}

/// The "Try an image" card's request and picture, kept across the page's re-reads (the page makes one).
#[derive(Clone, Copy)]
pub struct TryState {
    run: ServerAction<TryImage>,
    src: RwSignal<Option<String>>,
    opacity: RwSignal<f64>,
}

impl TryState {
    pub fn new() -> Self {
        Self { run: ServerAction::new(), src: RwSignal::new(None), opacity: RwSignal::new(0.75) }
    }
}

#[component]
pub fn TryImage(project: String, version: i64, status: String, state: TryState) -> impl IntoView {
    let TryState { run, src, opacity } = state;
    let usable = matches!(status.as_str(), "TRAINED" | "HOSTED" | "STARTING_HOSTING" | "STOPPING_HOSTING" | "HOSTING_FAILED");
    let on_file = move |e: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let input: web_sys::HtmlInputElement = event_target(&e);
            let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
            let Ok(reader) = web_sys::FileReader::new() else { return };
            let r2 = reader.clone();
            let project = project.clone();
            let onload = leptos::wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                if let Some(url) = r2.result().ok().and_then(|v| v.as_string()) {
                    src.set(Some(url.clone()));
                    run.dispatch(TryImage { project: project.clone(), version, image: url });
                }
            });
            reader.set_onload(Some(onload.as_ref().unchecked_ref()));
            onload.forget();
            let _ = reader.read_as_data_url(&file);
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&e, &project, src, version);
        }
    };
    view! {
        <div class="card" id="try">
            <h2>"Try an image"</h2>
            {if usable {
                view! {
                    <p class="muted small">"Runs this model on one image of yours (hosted or not); nothing is stored."</p>
                    <label class="button" for="try-file">"Choose an image (PNG or JPEG)…"</label>
                    <input id="try-file" class="visually-hidden" type="file" accept="image/png,image/jpeg" data-testid="try-file" on:change=on_file/>
                }.into_any()
            } else {
                view! { <p class="muted">"You can try images once the model is trained."</p> }.into_any()
            }}
            <Show when=move || run.pending().get()><p class="muted" role="status">"Detecting…"</p></Show>
            {move || run.value().get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                Ok(t) => view! {
                    <p data-testid="try-verdict" class=if t.is_anomalous { "verdict bad" } else { "verdict good" }>
                        {if t.is_anomalous { "Anomaly" } else { "Normal" }} {format!(" · confidence {:.1} % · score {:.3}", t.confidence * 100.0, t.score)}
                    </p>
                    <div class="try-stack">
                        {src.get().map(|s| view! { <img src=s alt="the image tried"/> })}
                        <img class="overlay" data-testid="try-heatmap" src=t.heat_map.clone() alt="heat map" style=move || format!("opacity:{}", opacity.get())/>
                        {t.mask.clone().map(|m| view! { <img class="overlay" src=m alt="mask" style=move || format!("opacity:{}", opacity.get())/> })}
                    </div>
                    <label for="try-opacity">"Heat map opacity"</label>
                    <input id="try-opacity" type="range" min="0" max="1" step="0.05" prop:value=move || opacity.get().to_string()
                        on:input=move |e| { if let Ok(v) = event_target_value(&e).parse() { opacity.set(v) } }/>
                    <HeatLegend/>
                    <ul class="legend">{t.anomalies.iter().map(|(n, c, a)| view! {
                        <li><span class="swatch" style=format!("background:{c}")></span>{format!("{n}: {:.2} % of the image", a * 100.0)}</li>
                    }).collect_view()}</ul>
                }.into_any(),
            })}
        </div>
    }
}

/// What the hosted model's recent scores say against its validation scores.
fn drift_line(drift: Option<crate::api::models::DriftView>) -> impl IntoView {
    let Some(d) = drift else {
        return view! { <p class="muted" data-testid="drift">"Drift: not monitored (the model has too few normal validation images)."</p> }.into_any();
    };
    let text = if d.images < 30 {
        format!("Drift: {} detection(s) in the last 2 hours; the comparison with the validation scores starts at 30.", d.images)
    } else if d.shifted {
        format!(
            "Drift: the scores have shifted — the median of the last 2 hours' {} detections is {:+.1} spreads from the validation median ({:+.1} standard errors). \
             Something changed on the line (lighting, focus, camera, parts): check it before false alarms come, and retrain with new normal images if the change is meant to stay.",
            d.images, d.median_shift, d.statistic
        )
    } else {
        format!("Drift: none — the median of the last 2 hours' {} detections is {:+.2} spreads from the validation median ({} validation images).", d.images, d.median_shift, d.reference)
    };
    let class = if d.shifted { "error" } else { "muted" };
    view! { <p class=class data-testid="drift">{text}</p> }.into_any()
}
