//! A dataset's page: counts, import report (followed live while an import runs), deleting the dataset or
//! running a failed import again, upload from the browser, and the gallery where images are found (filter,
//! search by name, order, numbered pages), selected (click, shift-click for a range, Ctrl/Cmd+A for every
//! image of the filter) and labelled with the mouse or the keyboard (N normal, A anomaly, U unlabelled,
//! arrows to move, space to select, Delete).

use crate::api::{
    delete_dataset, delete_entries, error_text, get_dataset, list_entries, list_entry_ids, list_labels, move_entries, retry_import, set_labels,
    upload_images, DatasetDetail, EntryQuery, EntryView, UploadReport, GALLERY_PAGE,
};
use crate::pages::widgets::{poll_while, StatusBadge};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use std::collections::HashSet;

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

/// "1 image" / "12 images".
fn images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

#[component]
fn Gallery(project: Signal<String>, dataset_type: Signal<String>, version: RwSignal<u32>) -> impl IntoView {
    let filter = RwSignal::new("all".to_string());
    // An anomaly label: only images whose mask uses it (overrides the label filter).
    let anomaly_type = RwSignal::new(None::<String>);
    let search = RwSignal::new(String::new());
    let sort = RwSignal::new("added".to_string());
    let page = RwSignal::new(0usize);
    // What the gallery shows, without the page (select-all and the canvas's previous / next use it).
    let query = Memo::new(move |_| EntryQuery {
        filter: match anomaly_type.get() {
            Some(t) => format!("type:{t}"),
            None => filter.get(),
        },
        search: search.get().trim().to_string(),
        sort: sort.get(),
        page: 0,
    });
    let entries = Resource::new(
        move || (project.get(), dataset_type.get(), EntryQuery { page: page.get(), ..query.get() }, version.get()),
        |(p, t, q, _)| list_entries(p, t, q),
    );
    // The project's anomaly labels, for the anomaly-type filter.
    let labels = Resource::new(move || (project.get(), version.get()), |(p, _)| list_labels(p));
    let selected = RwSignal::new(HashSet::<String>::new());
    // Where a shift-click range starts (a position on the page).
    let anchor = RwSignal::new(None::<usize>);
    let focus = RwSignal::new(0usize);
    let error = RwSignal::new(None::<String>);
    // What the last bulk action did.
    let notice = RwSignal::new(None::<String>);
    // The entries currently shown, for the keyboard handler.
    let shown = RwSignal::new(Vec::<EntryView>::new());
    let reset = move || {
        page.set(0);
        selected.update(|s| s.clear());
        anchor.set(None);
        focus.set(0);
    };

    let other = move || if dataset_type.get() == "train" { "test" } else { "train" };
    let done = move |m: String| {
        error.set(None);
        notice.set(Some(m));
        version.update(|v| *v += 1);
    };
    let run = move |kind: &'static str, ids: Vec<String>| {
        if ids.is_empty() {
            return;
        }
        let (p, t) = (project.get_untracked(), dataset_type.get_untracked());
        let to = if t == "train" { "test" } else { "train" };
        spawn_local(async move {
            let r = match kind {
                "delete" => delete_entries(p, t, ids).await.map(|n| format!("Deleted {}.", images(n))),
                _ => move_entries(p, t, ids).await.map(|n| format!("Moved {} to {to}.", images(n))),
            };
            match r {
                Ok(m) => {
                    selected.update(|s| s.clear());
                    anchor.set(None);
                    done(m);
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    // Deleting always asks first, from the button and from the Delete key alike.
    let confirm_delete = move |ids: Vec<String>| {
        if ids.is_empty() {
            return;
        }
        let ok = window().confirm_with_message(&format!("Delete {} from this dataset?", images(ids.len()))).unwrap_or(false);
        if ok {
            run("delete", ids);
        }
    };
    let apply = move |ids: Vec<String>, label: &'static str| {
        if ids.is_empty() {
            return;
        }
        let (p, t) = (project.get_untracked(), dataset_type.get_untracked());
        let n = ids.len();
        spawn_local(async move {
            match set_labels(p, t, ids, label.to_string()).await {
                Ok(_) => done(if label.is_empty() { format!("Removed the label of {}.", images(n)) } else { format!("Labelled {} {label}.", images(n)) }),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    let targets = move || {
        let sel = selected.get_untracked();
        if sel.is_empty() {
            shown.get_untracked().get(focus.get_untracked()).map(|e| vec![e.id.clone()]).unwrap_or_default()
        } else {
            sel.into_iter().collect()
        }
    };
    let select_all = move || {
        let (p, t, q) = (project.get_untracked(), dataset_type.get_untracked(), query.get_untracked());
        spawn_local(async move {
            match list_entry_ids(p, t, q).await {
                Ok(ids) => {
                    let n = ids.len();
                    selected.set(ids.into_iter().collect());
                    notice.set(Some(format!("Selected all {} of this view.", images(n))));
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    // A click selects or unselects one image; with Shift, every image from the last click to this one.
    let click = move |i: usize, shift: bool| {
        let list = shown.get_untracked();
        let Some(e) = list.get(i) else { return };
        focus.set(i);
        match anchor.get_untracked().filter(|_| shift) {
            Some(a) => {
                let (lo, hi) = (a.min(i), a.max(i));
                selected.update(|s| s.extend(list[lo..=hi.min(list.len() - 1)].iter().map(|e| e.id.clone())));
            }
            None => {
                let id = e.id.clone();
                selected.update(|s| {
                    if !s.remove(&id) {
                        s.insert(id);
                    }
                });
            }
        }
        anchor.set(Some(i));
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let n = shown.get_untracked().len();
        let key = ev.key();
        // Shortcuts are plain keys: with Ctrl, Cmd or Alt they are the browser's, except select-all.
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            if (ev.ctrl_key() || ev.meta_key()) && !ev.alt_key() && key.eq_ignore_ascii_case("a") {
                ev.prevent_default();
                select_all();
            }
            return;
        }
        match key.as_str() {
            "n" | "N" => apply(targets(), "normal"),
            "a" | "A" => apply(targets(), "anomaly"),
            "u" | "U" => apply(targets(), ""),
            "ArrowRight" | "ArrowDown" if n > 0 => focus.update(|f| *f = (*f + 1).min(n - 1)),
            "ArrowLeft" | "ArrowUp" => focus.update(|f| *f = f.saturating_sub(1)),
            " " => click(focus.get_untracked(), ev.shift_key()),
            "Escape" => {
                selected.update(|s| s.clear());
                anchor.set(None);
            }
            "Delete" => confirm_delete(targets()),
            _ => return,
        }
        ev.prevent_default();
    };

    view! {
        <div class="card">
            <div class="gallery-head">
                <h2>"Images"</h2>
                <div class="form-row">
                    <input type="search" placeholder="search by name" aria-label="Search by file name" prop:value=search
                        on:input=move |ev| { search.set(event_target_value(&ev)); reset(); }/>
                    <label for="gallery-filter" class="inline">"Show"</label>
                    <select id="gallery-filter" on:change=move |ev| { filter.set(event_target_value(&ev)); reset(); }>
                        <option value="all">"all"</option>
                        <option value="normal">"normal"</option>
                        <option value="anomaly">"anomaly"</option>
                        <option value="unlabeled">"unlabelled"</option>
                    </select>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let ls = labels.await.unwrap_or_default();
                            (!ls.is_empty()).then(|| view! {
                                <label for="gallery-type" class="inline">"Anomaly type"</label>
                                <select id="gallery-type" on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    anomaly_type.set((!v.is_empty()).then_some(v));
                                    reset();
                                }>
                                    <option value="">"any"</option>
                                    {ls.into_iter().map(|l| {
                                        let chosen = anomaly_type.get_untracked().as_deref() == Some(l.name.as_str());
                                        view! { <option value=l.name.clone() selected=chosen>{format!("{} ({})", l.name, l.uses)}</option> }
                                    }).collect_view()}
                                </select>
                            })
                        })}
                    </Transition>
                    <label for="gallery-sort" class="inline">"Order"</label>
                    <select id="gallery-sort" on:change=move |ev| { sort.set(event_target_value(&ev)); reset(); }>
                        <option value="added">"oldest first"</option>
                        <option value="newest">"newest first"</option>
                        <option value="name">"name"</option>
                        <option value="label">"label"</option>
                    </select>
                </div>
            </div>
            <div class="gallery-actions">
                <span class="selection" data-testid="selected-count" aria-live="polite">
                    {move || {
                        let n = selected.with(HashSet::len);
                        if n == 0 { "Nothing selected".to_string() } else { format!("{n} selected") }
                    }}
                </span>
                <button type="button" on:click=move |_| select_all()>"Select all (Ctrl+A)"</button>
                <button type="button" disabled=move || selected.with(HashSet::is_empty) on:click=move |_| { selected.update(|s| s.clear()); anchor.set(None); }>"Clear selection"</button>
                <button type="button" on:click=move |_| apply(targets(), "normal")>"Normal (N)"</button>
                <button type="button" on:click=move |_| apply(targets(), "anomaly")>"Anomaly (A)"</button>
                <button type="button" on:click=move |_| apply(targets(), "")>"Unlabel (U)"</button>
                <button type="button" on:click=move |_| run("move", targets())>{move || format!("Move to {}", other())}</button>
                <button type="button" class="danger" on:click=move |_| confirm_delete(targets())>"Delete (Del)"</button>
                <a class="button" href=move || format!("/export/{}/{}.zip", project.get(), dataset_type.get()) download>
                    "Export manifest + images (zip)"
                </a>
            </div>
            <p class="hint">"Click to select, Shift+click for a range, Ctrl+A for every image shown by the filter; N, A and U label the selection (or the focused image); Delete removes it; arrows move, space selects."</p>
            {move || notice.get().map(|m| view! { <p class="ok" role="status">{m}</p> })}
            <p class="error" role="alert">{move || error.get()}</p>
            <Transition fallback=|| view! { <p class="muted">"Loading images…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                        Ok(p) if p.entries.is_empty() => {
                            shown.set(Vec::new());
                            let m = if query.with_untracked(|q| q.filter == "all" && q.search.is_empty()) { "No images here yet." } else { "No image matches." };
                            view! { <p class="empty">{m}</p> }.into_any()
                        }
                        Ok(p) => {
                            let more = p.more;
                            let pages = ((p.total as usize).max(1)).div_ceil(GALLERY_PAGE);
                            let total = p.total;
                            shown.set(p.entries.clone());
                            let qs = query.get_untracked().to_query_string();
                            let items = p.entries.into_iter().enumerate().map(|(i, e)| {
                                let id_sel = e.id.clone();
                                let id_aria = e.id.clone();
                                let label = e.label.clone().unwrap_or_else(|| "unlabelled".into());
                                let class = format!("badge label-{label}");
                                view! {
                                    <li
                                        class="tile"
                                        class:selected=move || selected.with(|s| s.contains(&id_sel))
                                        class:focused=move || focus.get() == i
                                        data-label=label.clone()
                                        aria-selected=move || selected.with(|s| s.contains(&id_aria)).to_string()
                                        on:click=move |ev: leptos::ev::MouseEvent| click(i, ev.shift_key())
                                    >
                                        <div class="thumb-stack">
                                            <img src=format!("/media/{}?thumb=1", e.image) alt=e.name.clone() loading="lazy" width="160" height="160"/>
                                            // The mask over the thumbnail, in its labels' colours (white drops out).
                                            {e.mask.clone().map(|m| view! {
                                                <img class="overlay mask-overlay" src=format!("/media/{m}?thumb=1") alt="" loading="lazy" width="160" height="160"/>
                                            })}
                                        </div>
                                        <span class="tile-name" title=e.source_ref.clone()>{e.name.clone()}</span>
                                        <span class=class>{label.clone()}</span>
                                        {e.has_mask.then(|| view! { <span class="badge mask" title=e.types.join(", ")>"mask"</span> })}
                                        {(!e.types.is_empty()).then(|| view! { <span class="tile-types muted small">{e.types.join(" · ")}</span> })}
                                        <a
                                            class="tile-link"
                                            href=format!("/projects/{}/datasets/{}/images/{}?{qs}", project.get_untracked(), dataset_type.get_untracked(), e.id)
                                            on:click=|ev| ev.stop_propagation()
                                        >
                                            "Paint mask"
                                        </a>
                                    </li>
                                }
                            }).collect_view();
                            view! {
                                <ul class="gallery" tabindex="0" aria-label="Images" on:keydown=on_key>{items}</ul>
                                <div class="form-row spaced">
                                    <button type="button" disabled=move || page.get() == 0 on:click=move |_| { page.update(|p| *p = p.saturating_sub(1)); anchor.set(None); }>"← Previous"</button>
                                    <span class="muted small" data-testid="page-of">{move || format!("Page {} of {pages}", page.get() + 1)}</span>
                                    <button type="button" disabled=!more on:click=move |_| { page.update(|p| *p += 1); anchor.set(None); }>"Next →"</button>
                                    <span class="muted small">{format!("{} · {GALLERY_PAGE} per page", images(total as usize))}</span>
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </div>
    }
}
