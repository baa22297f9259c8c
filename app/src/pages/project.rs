//! One project's page: what it holds, and deleting it. While an import runs, the datasets table follows it
//! live (it is read again every second until every dataset has settled), a line under the import forms says
//! how far the import started last has got and how it ended, and when the datasets settle the Train card
//! reads again what is missing — no reload needed.

use super::widgets::{poll_while, StatusBadge};
use crate::api::{error_text, get_project, DatasetSummary, DeleteProject, ImportS3, ProjectDetail};
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let project = Resource::new(name, get_project);

    view! {
        <Title text=name/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb"><a href="/projects">"Projects"</a> " / " {name}</nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match project.await {
                        Ok(detail) => view! { <ProjectView detail/> }.into_any(),
                        Err(e) => view! {
                            <div class="card">
                                <h1>"Project not available"</h1>
                                <p class="error" role="alert">{error_text(&e)}</p>
                                <p><a href="/projects">"Back to projects"</a></p>
                            </div>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ProjectView(detail: ProjectDetail) -> impl IntoView {
    let p = detail.project;
    // Bumped when the datasets have settled in a new state (an import ended): the models card, whose Train
    // button depends on them, is built again and reads what is missing afresh.
    let datasets_changed = RwSignal::new(0u32);
    let models_project = p.name.clone();
    view! {
        <header class="page-head">
            <h1>{p.name.clone()}</h1>
            <p class="muted">"Created " {format_utc(p.created_at_ms)}</p>
        </header>
        <div class="card">
            <dl class="facts">
                <dt>"ARN"</dt><dd class="mono">{p.arn.clone()}</dd>
            </dl>
        </div>
        <DatasetsCard project=p.name.clone() datasets=detail.datasets changed=datasets_changed/>
        {move || {
            datasets_changed.track();
            view! { <super::models::ModelsCard project=models_project.clone()/> }
        }}
        <DeleteProjectPanel name=p.name/>
    }
}

#[component]
fn DeleteProjectPanel(name: String) -> impl IntoView {
    let delete = ServerAction::<DeleteProject>::new();
    let (confirming, set_confirming) = signal(false);
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            navigate("/projects", Default::default());
        }
    });
    let error = move || delete.value().get().and_then(|r| r.err()).map(|e| error_text(&e));
    let name_confirm = name.clone();

    view! {
        <div class="card danger-zone">
            <h2>"Delete project"</h2>
            <p class="muted">"Deleting a project removes it and everything recorded in it. This cannot be undone."</p>
            <Show
                when=move || confirming.get()
                fallback=move || view! {
                    <button type="button" class="danger" on:click=move |_| set_confirming.set(true)>
                        "Delete project…"
                    </button>
                }
            >
                <div class="confirm" role="alertdialog" aria-label="Confirm deletion">
                    <p>"Delete " <strong>{name_confirm.clone()}</strong> " permanently?"</p>
                    <div class="form-row">
                        <button
                            type="button"
                            class="danger"
                            disabled=move || delete.pending().get()
                            on:click={
                                let name = name_confirm.clone();
                                move |_| { delete.dispatch(DeleteProject { name: name.clone() }); }
                            }
                        >
                            "Delete permanently"
                        </button>
                        <button type="button" on:click=move |_| set_confirming.set(false)>"Cancel"</button>
                    </div>
                </div>
            </Show>
            <p class="error" role="alert">{error}</p>
        </div>
    }
}

/// Which form started the import shown last: only its refusal is shown, so an old error never sits beside a
/// newer import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    S3,
    Archive,
}

/// An import that started, followed to its end through the datasets it fills.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Followed {
    /// The location or archive name, as the user gave it.
    what: String,
    dataset_types: Vec<String>,
}

/// The import forms' shared state: the form used last, the import followed, and the datasets' tick.
#[derive(Clone, Copy)]
struct Imports {
    last: RwSignal<Option<Source>>,
    followed: RwSignal<Option<Followed>>,
    tick: RwSignal<u32>,
}

impl Imports {
    /// A form starts an import: the outcome of any earlier one is cleared.
    fn begin(self, source: Source) {
        self.last.set(Some(source));
        self.followed.set(None);
    }

    /// The import has started: follow it (the datasets are read again, then every second while it runs).
    fn started(self, what: String, dataset_types: Vec<String>) {
        self.followed.set(Some(Followed { what, dataset_types }));
        self.tick.update(|t| *t += 1);
    }

    fn shows(self, source: Source) -> bool {
        self.last.get() == Some(source)
    }
}

fn images(n: i64) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

#[component]
fn DatasetsCard(project: String, datasets: Vec<DatasetSummary>, changed: RwSignal<u32>) -> impl IntoView {
    // Bumped to read the datasets again: when an import starts, and every second while one runs.
    let tick = RwSignal::new(0u32);
    let name = project.clone();
    let live = Resource::new(
        move || tick.get(),
        move |t| {
            let (name, first) = (name.clone(), datasets.clone());
            async move {
                if t == 0 {
                    Ok(first)
                } else {
                    get_project(name).await.map(|d| d.datasets)
                }
            }
        },
    );
    poll_while(move || live.get().and_then(Result::ok), |ds: &Vec<DatasetSummary>| ds.iter().any(DatasetSummary::busy), tick, 1000);
    // What training depends on (each dataset's status and labelled counts): when it has settled different from
    // what was seen before, tell the page.
    let seen = StoredValue::new(None::<Vec<(String, String, i64, i64)>>);
    Effect::new(move |_| {
        let Some(ds) = live.get().and_then(Result::ok) else { return };
        let now: Vec<_> = ds.iter().map(|d| (d.dataset_type.clone(), d.status.clone(), d.normal, d.anomaly)).collect();
        let before = seen.get_value();
        seen.set_value(Some(now.clone()));
        if before.is_some_and(|b| b != now) && !ds.iter().any(DatasetSummary::busy) {
            changed.update(|c| *c += 1);
        }
    });
    let imports = Imports { last: RwSignal::new(None), followed: RwSignal::new(None), tick };
    let current = Signal::derive(move || live.get().and_then(Result::ok));
    let table_project = project.clone();
    view! {
        <div class="card">
            <h2>"Datasets"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    let project = table_project.clone();
                    Suspend::new(async move {
                        let datasets = live.await.unwrap_or_default();
                        view! { <DatasetsTable project datasets/> }
                    })
                }}
            </Transition>
            <ImportManifestForm project=project.clone() imports/>
            <ImportArchiveForm project=project.clone() imports/>
            <ImportProgress imports datasets=current/>
        </div>
    }
    .into_any()
}

#[component]
fn DatasetsTable(project: String, datasets: Vec<DatasetSummary>) -> impl IntoView {
    let missing: Vec<&str> =
        ["train", "test"].into_iter().filter(|t| !datasets.iter().any(|d| d.dataset_type == *t)).collect();
    let rows = datasets
        .into_iter()
        .map(|d| {
            let href = format!("/projects/{}/datasets/{}", project, d.dataset_type);
            view! {
                <tr>
                    <td><a href=href class="project-link">{d.dataset_type.clone()}</a></td>
                    <td><StatusBadge status=d.status.clone()/></td>
                    <td class="num">{d.total}</td>
                    <td class="num">{d.normal}</td>
                    <td class="num">{d.anomaly}</td>
                    <td class="num">{d.total - d.labeled}</td>
                    <td class="muted small">{d.status_message.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    let add_links = missing
        .into_iter()
        .map(|t| {
            let href = format!("/projects/{project}/datasets/{t}");
            view! { <a class="button" href=href>{format!("Add {t} images")}</a> }
        })
        .collect_view();
    view! {
            <table class="table" data-testid="datasets">
                <thead>
                    <tr>
                        <th>"Dataset"</th><th>"Status"</th><th class="num">"Images"</th><th class="num">"Normal"</th>
                        <th class="num">"Anomaly"</th><th class="num">"Unlabelled"</th><th>"Last import"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <div class="form-row spaced">{add_links}</div>
    }
}

/// How far the import started last has got, from the datasets it fills; then how it ended.
#[component]
fn ImportProgress(imports: Imports, datasets: Signal<Option<Vec<DatasetSummary>>>) -> impl IntoView {
    move || {
        let f = imports.followed.get()?;
        let ds = datasets.get().unwrap_or_default();
        let filled: Vec<&DatasetSummary> = f.dataset_types.iter().filter_map(|t| ds.iter().find(|d| &d.dataset_type == t)).collect();
        let total = filled.iter().map(|d| d.total).sum::<i64>();
        let view = if filled.len() < f.dataset_types.len() || filled.iter().any(|d| d.busy()) {
            view! { <p class="ok" role="status" data-testid="import-progress">{format!("Importing {}… {} so far.", f.what, images(total))}</p> }.into_any()
        } else if let Some(d) = filled.iter().find(|d| d.status.ends_with("FAILED")) {
            let why = d.status_message.clone().unwrap_or_else(|| "see the dataset's page".into());
            view! { <p class="error" role="alert" data-testid="import-progress">{format!("The import of {} failed: {why}", f.what)}</p> }.into_any()
        } else {
            let into = f.dataset_types.join(" and ");
            let s = if f.dataset_types.len() == 1 { "" } else { "s" };
            view! { <p class="ok" role="status" data-testid="import-progress">{format!("Imported {}: {} in the {into} dataset{s}.", f.what, images(total))}</p> }.into_any()
        };
        Some(view)
    }
}

#[component]
fn ImportManifestForm(project: String, imports: Imports) -> impl IntoView {
    let import = ServerAction::<ImportS3>::new();
    // What was sent, kept from the dispatch (the action forgets its input once it resolves).
    let sent = StoredValue::new(None::<(String, Vec<String>)>);
    Effect::new(move |_| {
        if let Some(i) = import.input().get() {
            let types = if i.kind == "mvtec" { vec!["train".into(), "test".into()] } else { vec![i.dataset_type.clone()] };
            sent.set_value(Some((i.uri.trim().to_string(), types)));
            imports.begin(Source::S3);
        }
    });
    Effect::new(move |_| {
        if import.version().get() > 0 && matches!(import.value().get_untracked(), Some(Ok(()))) {
            if let Some((what, types)) = sent.get_value() {
                imports.started(what, types);
            }
        }
    });
    // The answer to the last submission, while no other import has been started since (and none is on its way).
    let answer = move || (imports.shows(Source::S3) && !import.pending().get()).then(|| import.value().get()).flatten();
    let error = move || answer().and_then(|r| r.err()).map(|e| error_text(&e));
    let started = move || matches!(answer(), Some(Ok(())));
    let kind = RwSignal::new("manifest".to_string());
    let placeholder = move || match kind.get().as_str() {
        "manifest" => "s3://bucket/path/train.manifest",
        "folder" => "s3://bucket/circuitboard/train/  or  /srv/images/circuitboard/train",
        _ => "s3://bucket/mvtec/bottle/  or  /srv/mvtec_ad/bottle",
    };
    view! {
        <details class="import">
            <summary>"Import from S3 or the server's disk (a Ground Truth manifest, a folder with normal/ and anomaly/, or an MVTec AD category)"</summary>
            <ActionForm action=import>
                <input type="hidden" name="project" value=project/>
                <div class="form-row">
                    <select name="kind" aria-label="Source" on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="manifest">"manifest"</option>
                        <option value="folder">"folder"</option>
                        <option value="mvtec">"MVTec AD"</option>
                    </select>
                    <input type="text" name="uri" placeholder=placeholder aria-label="Location"/>
                    <select name="dataset_type" aria-label="Dataset" disabled=move || kind.get() == "mvtec">
                        <option value="train">"train"</option>
                        <option value="test">"test"</option>
                    </select>
                    <button type="submit" class="primary">"Import"</button>
                </div>
                <Show when=move || kind.get() == "mvtec">
                    // A disabled select is not sent; MVTec fills both datasets whatever this says.
                    <input type="hidden" name="dataset_type" value="train"/>
                </Show>
                <details class="s3-connection">
                    <summary>"S3 connection for this import (optional; empty fields use the server's settings)"</summary>
                    <div class="form-grid">
                        <label>"Endpoint" <input type="text" name="s3[endpoint]" placeholder="http://minio.local:9000" autocomplete="off"/></label>
                        <label>"Region" <input type="text" name="s3[region]" placeholder="us-east-1" autocomplete="off"/></label>
                        <label>"Access key id" <input type="text" name="s3[access_key_id]" autocomplete="off"/></label>
                        <label>"Secret access key" <input type="password" name="s3[secret_access_key]" autocomplete="new-password"/></label>
                        <label>"Addressing"
                            <select name="s3[addressing]">
                                <option value="">"server setting"</option>
                                <option value="path">"path-style (MinIO, most self-hosted servers)"</option>
                                <option value="virtual">"virtual-hosted (AWS)"</option>
                            </select>
                        </label>
                    </div>
                </details>
                <p class="hint">
                    "Folder: images under normal/ and anomaly/ get those labels; PNGs in masks/ with an anomaly image's name become its mask (label defect). "
                    "MVTec AD: train/good fills the train dataset; test/good and test/<defect> the test dataset, each defect folder becoming an anomaly label with the masks from ground_truth/. "
                    "Images and masks are copied into Vigil, so later changes to the source do not affect the dataset. What cannot be imported is listed on the dataset page with the reason; the table above follows the import as it runs."
                </p>
                <p class="error" role="alert">{error}</p>
                <Show when=started><p class="ok">"Import started."</p></Show>
            </ActionForm>
        </details>
    }
    .into_any()
}

/// The `message` of a JSON error or answer body, or the body itself.
fn message_of(text: String) -> String {
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or(text)
}

/// Sends a file as the body of a POST with upload progress (XMLHttpRequest: `fetch` reports none); calls
/// `progress(sent, total)` while sending and `done(status, message)` at the end (status 0: no answer).
fn post_file(
    url: &str,
    file: &web_sys::File,
    progress: impl Fn(f64, f64) + 'static,
    done: impl Fn(u16, String) + 'static,
) -> Result<(), String> {
    use leptos::wasm_bindgen::closure::Closure;
    use leptos::wasm_bindgen::JsCast;
    let refused = |_| "the browser refused the request".to_string();
    let xhr = web_sys::XmlHttpRequest::new().map_err(refused)?;
    xhr.open_with_async("POST", url, true).map_err(refused)?;
    xhr.set_request_header("Content-Type", "application/zip").map_err(refused)?;
    let on_progress = Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
        if e.length_computable() {
            progress(e.loaded(), e.total());
        }
    });
    xhr.upload().map_err(refused)?.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    let done = std::rc::Rc::new(done);
    let answered = xhr.clone();
    let on_done = {
        let done = done.clone();
        Closure::<dyn FnMut()>::new(move || {
            let status = answered.status().unwrap_or(0);
            let text = answered.response_text().ok().flatten().unwrap_or_default();
            (*done)(status, message_of(text));
        })
    };
    let on_error = Closure::<dyn FnMut()>::new(move || (*done)(0, "the upload failed (network)".to_string()));
    xhr.set_onload(Some(on_done.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    xhr.send_with_opt_blob(Some(file)).map_err(refused)?;
    // The request owns nothing in Rust: the handlers live as long as the page (one small leak per upload).
    on_progress.forget();
    on_done.forget();
    on_error.forget();
    Ok(())
}

/// Imports an archive written by the export (a manifest beside its images and masks) into a new dataset.
#[component]
fn ImportArchiveForm(project: String, imports: Imports) -> impl IntoView {
    let dataset_type = RwSignal::new("train".to_string());
    // Why the archive was refused (the server's answer to the upload); what follows a started import is
    // `ImportProgress`.
    let refused = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let sent = RwSignal::new(None::<(f64, f64)>);
    let project = StoredValue::new(project);
    view! {
        <details class="import">
            <summary>"Import an archive (a manifest with its images and masks, as Export writes it)"</summary>
            <div class="form-row">
                <select aria-label="Archive dataset" on:change=move |ev| dataset_type.set(event_target_value(&ev))>
                    <option value="train">"train"</option>
                    <option value="test">"test"</option>
                </select>
                <label class="button">
                    {move || if busy.get() { "uploading…" } else { "choose a .zip…" }}
                    <input
                        type="file"
                        accept=".zip,application/zip"
                        class="visually-hidden"
                        aria-label="Choose an archive to import"
                        disabled=move || busy.get()
                        on:change=move |ev| {
                            let input = event_target::<web_sys::HtmlInputElement>(&ev);
                            let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
                            input.set_value("");
                            let (t, name) = (dataset_type.get_untracked(), file.name());
                            let url = format!("/import/{}/{t}?name={}", project.get_value(), query_encode(&name));
                            busy.set(true);
                            refused.set(None);
                            sent.set(None);
                            imports.begin(Source::Archive);
                            let started = post_file(
                                &url,
                                &file,
                                move |done, total| sent.set(Some((done, total))),
                                move |code, m| {
                                    busy.set(false);
                                    sent.set(None);
                                    if code == 202 {
                                        imports.started(name.clone(), vec![t.clone()]);
                                    } else {
                                        refused.set(Some(m));
                                    }
                                },
                            );
                            if let Err(m) = started {
                                busy.set(false);
                                refused.set(Some(m));
                            }
                        }
                    />
                </label>
            </div>
            {move || sent.get().map(|(done, total)| view! {
                <div class="progress-wrap">
                    <progress max=total value=done aria-label="Archive upload progress"></progress>
                    <span class="muted small">{format!("{:.0} of {:.0} MB sent", done / 1e6, total / 1e6)}</span>
                </div>
            })}
            {move || imports.shows(Source::Archive).then(|| refused.get()).flatten().map(|m| view! { <p class="error" role="alert">{m}</p> })}
        </details>
    }
}

/// Percent-encodes a query value.
fn query_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
