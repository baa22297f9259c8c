//! One project's page: what it holds, and deleting it.

use crate::api::{error_text, get_project, DeleteProject, ProjectDetail};
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
                <dt>"Datasets"</dt>
                <dd>
                    {if detail.datasets.is_empty() {
                        "None yet: add a training dataset to start.".to_string()
                    } else {
                        detail.datasets.join(", ")
                    }}
                </dd>
            </dl>
        </div>
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
