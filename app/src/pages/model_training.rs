//! Following a training: its progress (stage, share done, time left) and cancelling it — a confirm step, then
//! "Stopping…" at once, kept until the worker has stopped, and saying so when the worker stops later than at once.
//! The project page's table and the model page share it.

use super::model_parts::{Confirm, Eta};
use crate::api::error_text;
use crate::api::models::{CancelTraining, ModelSummary};
use leptos::prelude::*;

/// What a page remembers about the trainings it follows, across its re-renders (it reads them again every
/// second while one runs). A page makes one and hands it to every [`TrainingStatus`].
#[derive(Clone, Copy)]
pub struct TrainingWatch {
    pub cancel: ServerAction<CancelTraining>,
    /// The version whose "Cancel training?" question is open.
    confirm: RwSignal<Option<i64>>,
    /// Versions this page asked to stop, with whether they stopped at once (`None` while the request runs).
    asked: RwSignal<Vec<(i64, Option<bool>)>>,
    eta: Eta,
}

impl TrainingWatch {
    /// `tick` is bumped when a cancel request returns, so the page reads the versions again.
    pub fn new(tick: RwSignal<u32>) -> Self {
        let cancel = ServerAction::<CancelTraining>::new();
        let asked = RwSignal::new(Vec::<(i64, Option<bool>)>::new());
        Effect::new(move |_| {
            if cancel.version().get() == 0 {
                return;
            }
            let Some(result) = cancel.value().get() else { return };
            // The version asked last (one request at a time: the question closes as it is sent).
            let Some(version) = asked.with_untracked(|a| a.last().map(|(v, _)| *v)) else { return };
            asked.update(|a| match result {
                Ok(at_once) => a.iter_mut().filter(|(v, _)| *v == version).for_each(|(_, s)| *s = Some(at_once)),
                // Refused (it had already ended): nothing is stopping.
                Err(_) => a.retain(|(v, _)| *v != version),
            });
            tick.update(|t| *t += 1);
        });
        Self { cancel, confirm: RwSignal::new(None), asked, eta: Eta::new() }
    }

    fn ask(&self, project: String, version: i64) {
        self.asked.update(|a| {
            a.retain(|(v, _)| *v != version);
            a.push((version, None));
        });
        self.cancel.dispatch(CancelTraining { project, version });
    }

    fn asked(&self, version: i64) -> Option<Option<bool>> {
        self.asked.with(|a| a.iter().find(|(v, _)| *v == version).map(|(_, s)| *s))
    }

    /// A refused cancel request, in words.
    pub fn error(&self) -> Option<String> {
        self.cancel.value().get().and_then(|r| r.err()).map(|e| error_text(&e))
    }
}

/// A version's training as it stands: the progress bar while it runs, with Cancel (behind a confirm step) or
/// "Stopping…" once asked; after it ended, what became of a cancel request it outran.
#[component]
pub fn TrainingStatus(project: String, summary: ModelSummary, watch: TrainingWatch, #[prop(optional)] compact: bool) -> impl IntoView {
    let version = summary.version;
    let training = summary.status == "TRAINING";
    let progress = summary.progress.clone();
    let requested = progress.as_ref().is_some_and(|p| p.cancel_requested);
    let stopping = move || training && (requested || watch.asked(version).is_some());
    let eta = progress.as_ref().and_then(|p| watch.eta.text(version, p.eta_ms));
    let p = project.clone();
    view! {
        {progress.map(|pr| {
            let pct = (pr.fraction * 100.0).clamp(0.0, 100.0);
            view! {
                <div class="progress" data-testid="training-progress">
                    <progress max="100" value=format!("{pct:.0}") aria-label=format!("Training model {version}")></progress>
                    <span class="muted" data-testid="training-stage">{format!(" {} · {pct:.0} %", pr.stage)}{eta.map(|e| format!(" · {e}"))}</span>
                </div>
            }
        })}
        {training.then(|| view! {
            <Show when=stopping
                fallback=move || view! {
                    <Confirm open=Signal::derive(move || watch.confirm.get() == Some(version))
                        set_open=move |open: bool| watch.confirm.set(open.then_some(version))
                        label="Cancel training"
                        question=format!("Cancel the training of model {version}? What it has done so far is lost.")
                        confirm="Cancel training" keep="Keep training" testid="cancel-training" small=compact
                        on_confirm={ let p = p.clone(); move |()| watch.ask(p.clone(), version) }/>
                }>
                <p class="stopping" role="status" data-testid="training-stopping">
                    <strong>"Stopping…"</strong>
                    {(!compact).then(|| " The worker stops the training at the end of the step it is in (reading images or \
                        extracting features can take a minute); this page follows it until it has stopped.")}
                    {compact.then(|| " until the current step ends")}
                </p>
            </Show>
        })}
        {(!training && watch.asked(version).is_some() && summary.status == "TRAINED").then(|| view! {
            <p class="muted small" role="status" data-testid="training-outran-cancel">"It finished before it could stop."</p>
        })}
    }
}
