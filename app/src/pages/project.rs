//! One project's page: what it holds, and deleting it.

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
        <DatasetsCard project=p.name.clone() datasets=detail.datasets/>
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

/// A dataset's status as a coloured badge.
#[component]
pub fn StatusBadge(status: String) -> impl IntoView {
    let class = if status.ends_with("FAILED") || status.contains("ROLLBACK") {
        "badge bad"
    } else if status.ends_with("IN_PROGRESS") {
        "badge busy"
    } else {
        "badge good"
    };
    view! { <span class=class>{status.replace('_', " ").to_lowercase()}</span> }
}

#[component]
fn DatasetsCard(project: String, datasets: Vec<DatasetSummary>) -> impl IntoView {
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
        <div class="card">
            <h2>"Datasets"</h2>
            <table class="table">
                <thead>
                    <tr>
                        <th>"Dataset"</th><th>"Status"</th><th class="num">"Images"</th><th class="num">"Normal"</th>
                        <th class="num">"Anomaly"</th><th class="num">"Unlabelled"</th><th>"Last import"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <div class="form-row spaced">{add_links}</div>
            <ImportManifestForm project=project.clone()/>
        </div>
    }
}

#[component]
fn ImportManifestForm(project: String) -> impl IntoView {
    let import = ServerAction::<ImportS3>::new();
    let error = move || import.value().get().and_then(|r| r.err()).map(|e| error_text(&e));
    let started = move || matches!(import.value().get(), Some(Ok(())));
    view! {
        <details class="import">
            <summary>"Import from S3 (a Ground Truth manifest, or a folder with normal/ and anomaly/)"</summary>
            <ActionForm action=import>
                <input type="hidden" name="project" value=project/>
                <div class="form-row">
                    <select name="kind" aria-label="Source">
                        <option value="manifest">"manifest"</option>
                        <option value="folder">"folder"</option>
                    </select>
                    <input type="text" name="uri" placeholder="s3://bucket/path/train.manifest or s3://bucket/circuitboard/train/" aria-label="S3 URI"/>
                    <select name="dataset_type" aria-label="Dataset">
                        <option value="train">"train"</option>
                        <option value="test">"test"</option>
                    </select>
                    <button type="submit" class="primary">"Import"</button>
                </div>
                <p class="hint">"Images and masks are copied into Vigil, so later changes to the bucket do not affect the dataset. What cannot be imported is listed on the dataset page with the reason. Reload to follow progress."</p>
                <p class="error" role="alert">{error}</p>
                <Show when=started><p class="ok">"Import started."</p></Show>
            </ActionForm>
        </details>
    }
}
