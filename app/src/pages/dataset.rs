//! A dataset's page: counts, import report (followed live while an import runs), deleting the dataset or
//! running a failed import again, upload from the browser, and the gallery (in `gallery`) where images are
//! found (filter, search by name, order, numbered pages), selected (click, shift-click for a range, Ctrl/Cmd+A
//! for every image of the filter) and labelled with the mouse or the keyboard (N normal, A anomaly, U
//! unlabelled, arrows to move, space to select, Delete).

use crate::api::{delete_dataset, error_text, get_dataset, retry_import, upload_images, DatasetDetail, UploadReport};
use crate::pages::gallery::Gallery;
use crate::pages::widgets::{poll_while, StatusBadge};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

/// Files sent per request: a failed batch loses little, and the progress bar moves.
const UPLOAD_BATCH: usize = 8;

#[component]
pub fn DatasetPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let dataset_type = move || params.read().get("type").unwrap_or_default();
    // Bumped after every change so the counts and the gallery reload.
    let version = RwSignal::new(0u32);
    let detail = Resource::new(
        move || (project(), dataset_type(), version.get()),
        |(p, t, _)| get_dataset(p, t),
    );
    // While an import or update runs, everything on the page is read again every second.
    poll_while(move || detail.get().and_then(Result::ok), |d: &DatasetDetail| d.summary.busy(), version, 1000);

    view! {
        <Title text=move || format!("{} · {}", dataset_type(), project())/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / "
                <a href=move || format!("/projects/{}", project())>{project}</a> " / " {dataset_type}
            </nav>
            <header class="page-head">
                <h1>{move || format!("{} dataset", dataset_type())}</h1>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <DatasetSummaryCard detail=d version/> }.into_any(),
                        Err(_) => view! {
                            <div class="card">
                                <p class="muted">"This dataset is empty. Upload images below to create it."</p>
                            </div>
                        }.into_any(),
                    }
                })}
            </Transition>
            <Uploader project=Signal::derive(project) dataset_type=Signal::derive(dataset_type) version/>
            <Gallery project=Signal::derive(project) dataset_type=Signal::derive(dataset_type) version/>
        </section>
    }
}

#[component]
fn DatasetSummaryCard(detail: DatasetDetail, version: RwSignal<u32>) -> impl IntoView {
    let project = detail.project.clone();
    let s = detail.summary;
    let (busy, can_retry, dataset_type) = (s.busy(), s.can_retry, s.dataset_type.clone());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let remove = {
        let (p, t) = (project.clone(), dataset_type.clone());
        move |_| {
            let ok = window()
                .confirm_with_message(&format!("Delete the {t} dataset of {p} with all its images and labels? This cannot be undone."))
                .unwrap_or(false);
            if !ok {
                return;
            }
            let (p, t, navigate) = (p.clone(), t.clone(), navigate.clone());
            spawn_local(async move {
                match delete_dataset(p.clone(), t).await {
                    Ok(()) => navigate(&format!("/projects/{p}"), Default::default()),
                    Err(e) => error.set(Some(error_text(&e))),
                }
            });
        }
    };
    let retry = {
        let (p, t) = (project.clone(), dataset_type.clone());
        move |_| {
            let (p, t) = (p.clone(), t.clone());
            spawn_local(async move {
                match retry_import(p, t).await {
                    Ok(()) => {
                        error.set(None);
                        version.update(|v| *v += 1);
                    }
                    Err(e) => error.set(Some(error_text(&e))),
                }
            });
        }
    };
    let issues = detail.issues;
    let n_issues = issues.len();
    view! {
        <div class="card">
            <div class="stats">
                <div class="stat"><span class="stat-n">{s.total}</span><span class="stat-l">"images"</span></div>
                <div class="stat"><span class="stat-n">{s.normal}</span><span class="stat-l">"normal"</span></div>
                <div class="stat"><span class="stat-n">{s.anomaly}</span><span class="stat-l">"anomaly"</span></div>
                <div class="stat"><span class="stat-n">{s.total - s.labeled}</span><span class="stat-l">"unlabelled"</span></div>
                <div class="stat"><StatusBadge status=s.status.clone()/></div>
            </div>
            {s.status_message.clone().map(|m| view! { <p class="muted small">{m}</p> })}
            <Show when=move || { n_issues > 0 }>
                <details class="report">
                    <summary>{format!("Import report: {n_issues} skipped")}</summary>
                    <ul>{issues.iter().map(|i| view! { <li>{i.clone()}</li> }).collect_view()}</ul>
                </details>
            </Show>
            <div class="form-row spaced">
                {can_retry.then(|| view! { <button type="button" class="primary" on:click=retry>"Retry import"</button> })}
                <button type="button" class="danger" disabled=busy title=if busy { "Wait for the import to finish" } else { "" } on:click=remove>
                    "Delete dataset…"
                </button>
            </div>
            <p class="error" role="alert">{move || error.get()}</p>
        </div>
    }
}

#[component]
fn Uploader(project: Signal<String>, dataset_type: Signal<String>, version: RwSignal<u32>) -> impl IntoView {
    let label = RwSignal::new(String::new());
    let progress = RwSignal::new(None::<(usize, usize)>);
    let report = RwSignal::new(None::<UploadReport>);
    let error = RwSignal::new(None::<String>);
    let dragging = RwSignal::new(false);

    let send = move |files: Vec<web_sys::File>| {
        if files.is_empty() || progress.get_untracked().is_some() {
            return;
        }
        let total = files.len();
        progress.set(Some((0, total)));
        report.set(None);
        error.set(None);
        let (p, t, l) = (project.get_untracked(), dataset_type.get_untracked(), label.get_untracked());
        spawn_local(async move {
            let mut all = UploadReport { added: 0, skipped: Vec::new() };
            let mut done = 0;
            for batch in files.chunks(UPLOAD_BATCH) {
                let Ok(form) = web_sys::FormData::new() else { break };
                let _ = form.append_with_str("project", &p);
                let _ = form.append_with_str("dataset_type", &t);
                let _ = form.append_with_str("label", &l);
                for f in batch {
                    let _ = form.append_with_blob_and_filename("file", f, &f.name());
                }
                match upload_images(form.into()).await {
                    Ok(r) => {
                        all.added += r.added;
                        all.skipped.extend(r.skipped);
                    }
                    Err(e) => {
                        error.set(Some(error_text(&e)));
                        break;
                    }
                }
                done += batch.len();
                progress.set(Some((done, total)));
            }
            report.set(Some(all));
            progress.set(None);
            version.update(|v| *v += 1);
        });
    };
    let files_of = |list: Option<web_sys::FileList>| -> Vec<web_sys::File> {
        let Some(list) = list else { return Vec::new() };
        (0..list.length()).filter_map(|i| list.get(i)).collect()
    };

    view! {
        <div class="card">
            <h2>"Add images"</h2>
            <div
                class="dropzone"
                class:dragging=move || dragging.get()
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: leptos::ev::DragEvent| {
                    ev.prevent_default();
                    dragging.set(false);
                    send(files_of(ev.data_transfer().and_then(|d| d.files())));
                }
            >
                <p>"Drop JPEG or PNG images here, or"</p>
                <label class="button">
                    "choose files…"
                    <input
                        type="file"
                        multiple
                        accept="image/jpeg,image/png"
                        class="visually-hidden"
                        aria-label="Choose images to upload"
                        on:change=move |ev| {
                            let input = event_target::<web_sys::HtmlInputElement>(&ev);
                            send(files_of(input.files()));
                            input.set_value("");
                        }
                    />
                </label>
                <div class="form-row">
                    <label for="upload-label" class="inline">"Label them as"</label>
                    <select id="upload-label" on:change=move |ev| label.set(event_target_value(&ev))>
                        <option value="">"unlabelled (label later)"</option>
                        <option value="normal">"normal"</option>
                        <option value="anomaly">"anomaly"</option>
                    </select>
                </div>
            </div>
            {move || progress.get().map(|(done, total)| view! {
                <div class="progress-wrap">
                    <progress max=total value=done aria-label="Upload progress"></progress>
                    <span class="muted small">{format!("{done} of {total} uploaded")}</span>
                </div>
            })}
            <p class="error" role="alert">{move || error.get()}</p>
            {move || report.get().map(|r| view! {
                <div class="upload-report" role="status">
                    <p>{format!("Added {} image{}.", r.added, if r.added == 1 { "" } else { "s" })}</p>
                    <Show when={let n = r.skipped.len(); move || n > 0}>
                        <ul class="skipped">{r.skipped.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view()}</ul>
                    </Show>
                </div>
            })}
        </div>
    }
}
