//! Model versions: the project page's Train card and table (live progress while training, cancel behind a
//! confirm step), and the model page, laid out for what a user comes for: status and training progress first,
//! then hosting and trying an image, the threshold with its figures and plots, trials and packaging, and the
//! per-image test results last, folded and paged. The cards live in `model_*` modules beside this one.

use super::model_evaluation::{score_range, PerLabel, Performance};
use super::model_hosting::{Hosting, HostingState, TryImage, TryState};
use super::model_parts::{duration, num, pct, status_class, status_text};
use super::model_results::{ResultsState, TestResults};
use super::model_training::{TrainingStatus, TrainingWatch};
use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::models::*;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

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
    let watch = TrainingWatch::new(tick);
    Effect::new(move |_| {
        if train.version().get() > 0 {
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
                                    <label>"Description" <input type="text" name="description" maxlength="500" placeholder="optional"/></label>
                                    <label>"Evaluation files to S3 bucket" <input type="text" name="bucket" placeholder="optional"/></label>
                                    <label>"Prefix" <input type="text" name="prefix" placeholder="optional"/></label>
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
            <p class="error" role="alert">{move || watch.error()}</p>
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
                                        let training = m.status == "TRAINING";
                                        let failed = (!training).then(|| m.status_message.clone().filter(|_| m.status.ends_with("FAILED"))).flatten();
                                        view! {
                                            <tr data-version=m.version>
                                                <td><a href=href>{format!("Model {}", m.version)}</a></td>
                                                <td>
                                                    <span class=status_class(&m.status)>{status_text(&m.status)}</span>
                                                    <TrainingStatus project=project.clone() summary=m.clone() watch compact=true/>
                                                    {failed.map(|s| view! { <div class="error small">{s}</div> })}
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

/// What the model page keeps across its re-reads (every second while the model trains or changes hosting):
/// the threshold the user chose, the open questions, the try and the test results' view.
#[derive(Clone, Copy)]
struct PageState {
    /// The slider's threshold once moved; before that, the saved one is in use.
    chosen: RwSignal<Option<f64>>,
    save: ServerAction<SaveThreshold>,
    watch: TrainingWatch,
    hosting: HostingState,
    tried: TryState,
    results: ResultsState,
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
    let state = PageState {
        chosen: RwSignal::new(None),
        save: ServerAction::new(),
        watch: TrainingWatch::new(tick),
        hosting: HostingState::new(tick, move || format!("/projects/{}", project())),
        tried: TryState::new(),
        results: ResultsState::new(),
    };
    // Another version on the same page (a link between versions): nothing of the last one carries over.
    Effect::new(move |last: Option<(String, i64)>| {
        let now = (project(), version());
        if last.is_some_and(|l| l != now) {
            state.chosen.set(None);
            state.results.open.set(None);
            state.results.page.set(0);
        }
        now
    });
    view! {
        <Title text=move || format!("{} · model {}", project(), version())/>
        <section class="page model-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / " <a href=move || format!("/projects/{}", project())>{project}</a>
                " / " {move || format!("model {}", version())}
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || detail.get().map(|r| match r {
                    Ok(d) => view! { <ModelView detail=d state/> }.into_any(),
                    Err(e) => view! { <div class="card"><p class="error" role="alert">{error_text(&e)}</p></div> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ModelView(detail: ModelDetail, state: PageState) -> impl IntoView {
    let s = detail.summary.clone();
    let project = detail.project.clone();
    let version = s.version;
    let training = s.status == "TRAINING";
    let ev = detail.evaluation.clone();
    let range = ev.as_ref().map(|e| score_range(&e.images, detail.threshold)).unwrap_or((0.0, 1.0));
    let saved = detail.threshold.unwrap_or((range.0 + range.1) / 2.0);
    let chosen = state.chosen;
    let threshold = Signal::derive(move || chosen.get().unwrap_or(saved));
    let trials = !training && s.status != "TRAINING_FAILED";
    let sections: Vec<(&str, &str)> = [
        Some(("#hosting", "Hosting")),
        Some(("#try", "Try an image")),
        ev.as_ref().map(|_| ("#performance", "Threshold & performance")),
        trials.then_some(("#trials", "Trials")),
        Some(("#packaging", "Package for edge")),
        ev.as_ref().map(|_| ("#test-results", "Test results")),
    ]
    .into_iter()
    .flatten()
    .collect();
    view! {
        <header class="page-head">
            <h1>{format!("Model {}", s.version)}</h1>
            <p><span class=status_class(&s.status) data-testid="model-status">{status_text(&s.status)}</span>
               " " <span class="muted" data-testid="model-status-message">{s.status_message.clone().unwrap_or_default()}</span></p>
            {s.description.clone().map(|d| view! { <p>{d}</p> })}
            <p class="muted mono">{detail.arn.clone()}</p>
            <nav class="section-nav" aria-label="On this page">
                {sections.into_iter().map(|(href, text)| view! { <a href=href>{text}</a> }).collect_view()}
            </nav>
        </header>
        {training.then(|| view! {
            <div class="card" id="training">
                <h2>"Training"</h2>
                <TrainingStatus project=project.clone() summary=s.clone() watch=state.watch/>
                <p class="error" role="alert">{move || state.watch.error()}</p>
            </div>
        })}
        <div class="model-actions">
            <Hosting detail=detail.clone() state=state.hosting/>
            <TryImage project=project.clone() version status=s.status.clone() state=state.tried/>
        </div>
        {ev.clone().map(|ev| view! {
            <Performance project=project.clone() version ev threshold chosen trained=detail.trained_threshold range save=state.save/>
        })}
        {trials.then(|| view! {
            <div id="trials"><super::trial::TrialsCard project=project.clone() version hosted=s.status == "HOSTED"/></div>
        })}
        <super::packaging::PackagingCard project=project.clone() version status=s.status.clone()/>
        {ev.map(|ev| view! {
            <PerLabel labels=ev.labels.clone()/>
            <TestResults project=project.clone() version images=ev.images threshold state=state.results/>
        })}
    }
}
