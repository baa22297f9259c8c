//! Trial detections and batch runs. The model page's Trials card starts a trial over a dataset, an S3 prefix or
//! uploaded images (and, for a hosted model, a batch run over a dataset, an upload, an S3 prefix or a server
//! folder) and lists the project's trials and batches (a batch's results page is `batch`); the trial
//! page (its body in `trial_view`) shows each image with the model's verdict, confidence and heat map, sortable
//! and filterable, lets the user verify each verdict (click, bulk or keyboard), add the verified images to the
//! training dataset, open one in the labelling canvas to fix its mask, and train again.

use super::trial_view::{progress_text, status_class, TrialUi, TrialView};
use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::trials::*;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

/// Uploaded images per request (each up to 8 MB; the server takes 80 MB per request).
const UPLOAD_BATCH: usize = 8;

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

/// Sends uploaded files to a batch in parts of [`UPLOAD_BATCH`]; the last part starts it. Returns the batch id.
async fn upload_batch_parts(project: &str, version: i64, output: &str, list: &[web_sys::File], busy: RwSignal<Option<String>>) -> Result<String, String> {
    let total = list.len();
    let mut id = String::new();
    for (i, part) in list.chunks(UPLOAD_BATCH).enumerate() {
        let form = web_sys::FormData::new().map_err(|_| "The browser could not build the upload.".to_string())?;
        let last = (i + 1) * UPLOAD_BATCH >= total;
        for (k, v) in [("project", project), ("version", &version.to_string()), ("output", output), ("batch", &id), ("last", if last { "1" } else { "0" })] {
            let _ = form.append_with_str(k, v);
        }
        for f in part {
            let _ = form.append_with_blob_and_filename("file", f, &f.name());
        }
        id = upload_batch(form.into()).await.map_err(|e| error_text(&e))?;
        busy.set(Some(format!("Uploading {} of {total} images…", (i * UPLOAD_BATCH + part.len()).min(total))));
    }
    Ok(id)
}

#[component]
fn BatchRuns(project: String, version: i64, hosted: bool, batches: Resource<Result<Vec<TrialSummary>, ServerFnError>>, tick: RwSignal<u32>) -> impl IntoView {
    let from = RwSignal::new("dataset:test".to_string());
    let source = RwSignal::new(String::new());
    let output = RwSignal::new("download".to_string());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<String>);
    let started = RwSignal::new(None::<String>);
    let files = NodeRef::<leptos::html::Input>::new();
    let p = project.clone();
    let run = move |_| {
        let (kind, out) = (from.get_untracked(), output.get_untracked().trim().to_string());
        error.set(None);
        started.set(None);
        let p = p.clone();
        let list: Vec<web_sys::File> = if kind == "upload" {
            files.get_untracked().and_then(|i| i.files()).map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect()).unwrap_or_default()
        } else {
            Vec::new()
        };
        if kind == "upload" && list.is_empty() {
            error.set(Some("Choose the images to upload first.".into()));
            return;
        }
        let src = if kind == "s3" || kind == "folder" { source.get_untracked().trim().to_string() } else { kind.clone() };
        if src.is_empty() {
            error.set(Some(if kind == "s3" { "Give the S3 prefix (s3://bucket/prefix/)." } else { "Give the folder's absolute path on the server." }.into()));
            return;
        }
        busy.set(Some("Starting…".into()));
        spawn_local(async move {
            let r = if kind == "upload" {
                upload_batch_parts(&p, version, &out, &list, busy).await
            } else {
                create_batch(p.clone(), version, src, out).await.map_err(|e| error_text(&e))
            };
            match r {
                Ok(id) => started.set(Some(id)),
                Err(e) => error.set(Some(e)),
            }
            busy.set(None);
            tick.update(|t| *t += 1);
        });
    };
    let p_link = project.clone();
    view! {
        <h3>"Batch runs"</h3>
        {if hosted {
            view! {
                <p class="muted">"Send every image of a dataset, an upload, an S3 prefix or a server folder through the hosted model; see each result here, or download them as JSON lines (one DetectAnomalyResult per image) and mask PNGs."</p>
                <div class="form-grid">
                    <label>"Images from "
                        <select data-testid="batch-from" on:change=move |e| from.set(event_target_value(&e))>
                            <option value="dataset:test" selected=true>"the test dataset"</option>
                            <option value="dataset:train">"the training dataset"</option>
                            <option value="upload">"images I upload"</option>
                            <option value="s3">"an S3 prefix"</option>
                            <option value="folder">"a folder on the server"</option>
                        </select>
                    </label>
                    <Show when=move || from.get() == "s3" || from.get() == "folder">
                        <label>{move || if from.get() == "s3" { "S3 prefix " } else { "Folder (under VIGIL_IMPORT_ROOT) " }}
                            <input type="text" data-testid="batch-source"
                                placeholder=move || if from.get() == "s3" { "s3://bucket/prefix/" } else { "/srv/images" }
                                prop:value=move || source.get() on:input=move |e| source.set(event_target_value(&e))/></label>
                    </Show>
                    <Show when=move || from.get() == "upload">
                        <label>"Images " <input type="file" multiple accept="image/png,image/jpeg" data-testid="batch-files" node_ref=files/></label>
                    </Show>
                    <label>"Results to " <input type="text" placeholder="download or s3://bucket/prefix/" data-testid="batch-output"
                        prop:value=move || output.get() on:input=move |e| output.set(event_target_value(&e))/></label>
                </div>
                <button type="button" data-testid="start-batch" disabled=move || busy.get().is_some() on:click=run>"Run batch"</button>
                {move || busy.get().map(|m| view! { <span class="muted">" " {m}</span> })}
                {move || started.get().map(|id| view! {
                    <p class="ok" role="status" data-testid="batch-started">"Started " <a href=format!("/projects/{}/batches/{id}", p_link)>{id.clone()}</a> "."</p>
                })}
                <p class="error" role="alert" data-testid="batch-error">{move || error.get()}</p>
            }.into_any()
        } else {
            view! { <p class="muted">"Batch runs use the hosted model: start it to run one."</p> }.into_any()
        }}
        <Transition fallback=|| ()>
            {move || batches.get().map(|r| match r {
                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                Ok(list) if list.is_empty() => ().into_any(),
                Ok(list) => view! { <BatchTable project=project.clone() list/> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn BatchTable(project: String, list: Vec<TrialSummary>) -> impl IntoView {
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
                        <tr data-batch=t.name.clone()>
                            <td class="mono small"><a href=format!("/projects/{project}/batches/{}", t.name)>{t.name.clone()}</a></td>
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
