//! The projects page: every project, and the form that creates one.

use crate::api::first_run::{connect_info, Connection, CreateSampleProject, SAMPLES};
use crate::api::{error_text, list_projects, CreateProject, ProjectSummary};
use crate::names::validate_project_name;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ProjectsPage() -> impl IntoView {
    let create = ServerAction::<CreateProject>::new();
    let projects = Resource::new(move || create.version().get(), |_| list_projects());
    let connection = Resource::new(|| (), |_| connect_info());

    view! {
        <Title text="Projects"/>
        <section class="page">
            <header class="page-head">
                <h1>"Projects"</h1>
                <p class="muted">"A project holds the images, labels and models for one part or product."</p>
            </header>
            <CreateProjectForm action=create/>
            <Transition fallback=|| view! { <div class="card"><p class="muted">"Loading projects…"</p></div> }>
                {move || Suspend::new(async move {
                    let connection = connection.await;
                    match projects.await {
                        Ok(list) => {
                            // A first visit (no projects yet): the sample data and the connection are unfolded.
                            let first_time = list.is_empty();
                            view! {
                                <div class="card"><ProjectTable projects=list/></div>
                                <SampleCard open=first_time/>
                                <ConnectCard open=first_time connection/>
                            }
                            .into_any()
                        }
                        Err(e) => view! { <div class="card"><p class="error" role="alert">{error_text(&e)}</p></div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn CreateProjectForm(action: ServerAction<CreateProject>) -> impl IntoView {
    let (name, set_name) = signal(String::new());
    let (touched, set_touched) = signal(false);
    // The local check runs as the user types; the server checks again (and catches duplicates).
    let local_error = move || {
        if touched.get() {
            validate_project_name(name.get().trim()).err()
        } else {
            None
        }
    };
    let server_error = move || action.value().get().and_then(|r| r.err()).map(|e| error_text(&e));
    let error = move || local_error().or_else(server_error);

    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            set_name.set(String::new());
            set_touched.set(false);
        }
    });

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        set_touched.set(true);
        let value = name.get_untracked().trim().to_string();
        if validate_project_name(&value).is_ok() {
            action.dispatch(CreateProject { name: value });
        }
    };

    view! {
        <form class="card create-form" on:submit=on_submit novalidate>
            <label for="project-name">"New project"</label>
            <div class="form-row">
                <input
                    id="project-name"
                    name="name"
                    type="text"
                    autocomplete="off"
                    placeholder="e.g. cookie-line-3"
                    maxlength="300"
                    aria-describedby="project-name-help project-name-error"
                    aria-invalid=move || error().is_some().to_string()
                    prop:value=name
                    on:input=move |ev| {
                        set_name.set(event_target_value(&ev));
                        set_touched.set(true);
                        action.value().set(None);
                    }
                />
                <button type="submit" class="primary" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Creating…" } else { "Create project" }}
                </button>
            </div>
            <p id="project-name-help" class="hint">
                "1–255 characters: letters, digits, hyphens and underscores, starting with a letter or digit."
            </p>
            <p id="project-name-error" class="error field-error" role="alert">{error}</p>
        </form>
    }
}

#[component]
fn ProjectTable(projects: Vec<ProjectSummary>) -> impl IntoView {
    if projects.is_empty() {
        return view! {
            <p class="empty">"No projects yet. Create one above, or start from sample data below."</p>
        }
        .into_any();
    }
    let count = projects.len();
    view! {
        <table class="table projects-table">
            <caption class="muted">{format!("{count} project{}", if count == 1 { "" } else { "s" })}</caption>
            <thead>
                <tr><th scope="col">"Name"</th><th scope="col">"Created"</th><th scope="col">"ARN"</th></tr>
            </thead>
            <tbody>
                {projects
                    .into_iter()
                    .map(|p| {
                        let href = format!("/projects/{}", p.name);
                        view! {
                            <tr>
                                <td><a href=href class="project-link">{p.name.clone()}</a></td>
                                <td class="nowrap">{format_utc(p.created_at_ms)}</td>
                                <td class="mono muted">{p.arn.clone()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// "Try it with sample data": one click makes a project from LFV's getting-started images and opens it. Open
/// while there are no projects; folded away (but still there) once there are.
#[component]
fn SampleCard(open: bool) -> impl IntoView {
    let make = ServerAction::<CreateSampleProject>::new();
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(name)) = make.value().get() {
            navigate(&format!("/projects/{name}"), Default::default());
        }
    });
    let error = move || make.value().get().and_then(|r| r.err()).map(|e| error_text(&e));
    view! {
        <details class="card sample-card" open=open>
            <summary><h2>"Try it with sample data"</h2></summary>
            <p class="muted">
                "No images at hand? Start from Amazon Lookout for Vision's own getting-started images, which ship with \
                 Vigil (CC BY-SA 4.0). One click makes a project, imports and labels the images; then train it."
            </p>
            <div class="sample-choices">
                {SAMPLES
                    .iter()
                    .map(|s| {
                        let id = s.id;
                        view! {
                            <div class="sample-choice">
                                <h3>{s.title}</h3>
                                <p class="hint">{s.about}</p>
                                <button
                                    type="button"
                                    class="primary"
                                    data-sample=id
                                    disabled=move || make.pending().get()
                                    on:click=move |_| { make.dispatch(CreateSampleProject { sample: id.to_string() }); }
                                >
                                    {move || if make.pending().get() { "Creating…" } else { "Use this sample" }}
                                </button>
                            </div>
                        }
                    })
                    .collect_view()}
            </div>
            <p class="error" role="alert">{error}</p>
        </details>
    }
}

/// How an LFV script talks to this server: the endpoint, the region, where keys come from, a boto3 snippet.
#[component]
fn ConnectCard(open: bool, connection: Result<Connection, ServerFnError>) -> impl IntoView {
    let body = match connection {
        Ok(c) => {
            let keys = if c.can_make_keys {
                view! { <span>"Make an access key on the "<a href="/admin">"Admin page"</a>"."</span> }.into_any()
            } else {
                view! { <span>"Ask an administrator for an access key (Admin page)."</span> }.into_any()
            };
            view! {
                <p>
                    "Vigil answers the Lookout for Vision API. Point an AWS SDK or the AWS CLI at "
                    <code class="connect-endpoint">{c.endpoint.clone()}</code>
                    " with region "<code>{c.region.clone()}</code>" and sign with a Vigil access key. "
                    {keys}
                </p>
                <pre class="snippet" aria-label="boto3 example"><code>{c.boto3_snippet()}</code></pre>
                <p class="hint">
                    "AWS CLI: "
                    <code>{format!("aws lookoutvision list-projects --endpoint-url {} --region {}", c.endpoint, c.region)}</code>
                </p>
            }
            .into_any()
        }
        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
    };
    view! {
        <details class="card connect-card" open=open>
            <summary><h2>"Use it from your Lookout for Vision scripts"</h2></summary>
            {body}
        </details>
    }
}
