//! The model page's "Package for edge" card (LFV's model packaging): the form with LFV console's fields — job
//! name, description, the Greengrass component's name, version and description, the target (the Jetson device
//! or a Linux platform, with an NVIDIA accelerator and its compiler options) and the S3 output location — and
//! the project's packaging jobs, live while one is unfinished, with a download for each succeeded one.

use super::widgets::poll_while;
use crate::api::error_text;
use crate::api::packaging::*;
use crate::timefmt::format_utc;
use leptos::prelude::*;

fn status_class(s: &str) -> &'static str {
    match s {
        "SUCCEEDED" => "badge good",
        "FAILED" => "badge bad",
        _ => "badge busy",
    }
}

/// Example compiler options for the accelerator chosen (LFV's documentation's).
fn options_placeholder(accelerator: &str) -> &'static str {
    if accelerator == "NVIDIA" {
        r#"{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}"#
    } else {
        r#"optional, e.g. {"mcpu": "core-avx2"}"#
    }
}

/// A text input bound to a signal.
#[component]
fn Field(label: &'static str, value: RwSignal<String>, testid: &'static str, #[prop(optional, into)] placeholder: Signal<String>, #[prop(optional)] required: bool) -> impl IntoView {
    view! {
        <label>{label} {required.then(|| view! { <span class="muted">" (required)"</span> })} " "
            <input type="text" data-testid=testid placeholder=move || placeholder.get() required=required aria-required=required.to_string()
                prop:value=move || value.get() on:input=move |e| value.set(event_target_value(&e))/>
        </label>
    }
}

/// The card: the form for this version, then the project's jobs.
#[component]
pub fn PackagingCard(project: String, version: i64, status: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let p = project.clone();
    let jobs = Resource::new(move || tick.get(), move |_| list_packaging_jobs(p.clone()));
    poll_while(move || jobs.get().and_then(|r| r.ok()), |l: &Vec<PackagingJobView>| l.iter().any(PackagingJobView::unfinished), tick, 1000);

    let blocked = packageable(&status).err();
    let disabled = blocked.is_some();
    let job_name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let component_name = RwSignal::new(String::new());
    let component_version = RwSignal::new(String::new());
    let component_description = RwSignal::new(String::new());
    let target = RwSignal::new("X86_64".to_string());
    let accelerator = RwSignal::new(String::new());
    let compiler_options = RwSignal::new(String::new());
    let bucket = RwSignal::new(String::new());
    let prefix = RwSignal::new(String::new());
    let platform = move || target.get() != TARGET_JETSON;

    let start = ServerAction::<StartPackagingJob>::new();
    Effect::new(move |_| {
        if start.version().get() > 0 {
            tick.update(|t| *t += 1);
        }
    });
    let p = project.clone();
    let submit = move |_| {
        let on_platform = target.get_untracked() != TARGET_JETSON;
        let request = PackageRequest {
            job_name: job_name.get_untracked(),
            description: description.get_untracked(),
            component_name: component_name.get_untracked(),
            component_version: component_version.get_untracked(),
            component_description: component_description.get_untracked(),
            target: target.get_untracked(),
            // A device takes neither: what was typed for a platform is not sent.
            accelerator: if on_platform { accelerator.get_untracked() } else { String::new() },
            compiler_options: if on_platform { compiler_options.get_untracked() } else { String::new() },
            bucket: bucket.get_untracked(),
            prefix: prefix.get_untracked(),
        };
        start.dispatch(StartPackagingJob { project: p.clone(), version, request });
    };
    let result = move || {
        start.value().get().map(|r| match r {
            Ok(name) => view! { <p class="ok" data-testid="package-started">{format!("Packaging job {name} started.")}</p> }.into_any(),
            Err(e) => view! { <p class="error" role="alert" data-testid="package-error">{error_text(&e)}</p> }.into_any(),
        })
    };
    let p_rows = project.clone();

    view! {
        <div class="card" id="packaging" data-testid="packaging-card">
            <h2>"Package for edge"</h2>
            <p class="muted">{format!(
                "Package model {version} as an AWS IoT Greengrass V2 component: the model file, its manifest and the component's recipe are \
                 written to the S3 location below, and can be downloaded here."
            )}</p>
            {blocked.clone().map(|why| view! { <p class="hint" data-testid="package-disabled">{why}</p> })}
            <fieldset class="package-form" disabled=disabled>
                <div class="form-grid">
                    <Field label="Job name" value=job_name testid="package-job-name" placeholder="optional: generated when empty"/>
                    <Field label="Description" value=description testid="package-description" placeholder="optional"/>
                </div>
                <h3>"Component"</h3>
                <div class="form-grid">
                    <Field label="Component name" value=component_name testid="package-component-name" placeholder="e.g. com.example.cookies" required=true/>
                    <Field label="Component version" value=component_version testid="package-component-version" placeholder=format!("{version}.0.0")/>
                    <Field label="Component description" value=component_description testid="package-component-description" placeholder="optional"/>
                </div>
                <h3>"Target"</h3>
                <div class="form-grid">
                    <label>"Target "
                        <select data-testid="package-target" on:change=move |e| target.set(event_target_value(&e))>
                            <option value="X86_64" selected=true>"Platform: Linux, X86_64"</option>
                            <option value="ARM64">"Platform: Linux, ARM64"</option>
                            <option value=TARGET_JETSON>"Device: Jetson AGX Xavier (jetson_xavier)"</option>
                        </select>
                    </label>
                    <Show when=platform>
                        <label>"Accelerator "
                            <select data-testid="package-accelerator" on:change=move |e| accelerator.set(event_target_value(&e))>
                                <option value="" selected=move || accelerator.get().is_empty()>"None (CPU)"</option>
                                <option value="NVIDIA" selected=move || accelerator.get() == "NVIDIA">"NVIDIA"</option>
                            </select>
                        </label>
                        <Field label="Compiler options" value=compiler_options testid="package-compiler-options"
                            placeholder=Signal::derive(move || options_placeholder(&accelerator.get()).to_string())/>
                    </Show>
                </div>
                <p class="hint">{move || if platform() {
                    if accelerator.get() == "NVIDIA" {
                        "With NVIDIA, give gpu-code, trt-ver and cuda-ver as JSON. Vigil's edge agent runs the model on the CPU; the options are recorded."
                    } else {
                        "The model runs on the device's CPU."
                    }
                } else {
                    "A device takes no compiler options. Vigil's edge agent runs the model on the Jetson's CPU."
                }}</p>
                <h3>"Output"</h3>
                <div class="form-grid">
                    <Field label="S3 bucket" value=bucket testid="package-bucket" placeholder="e.g. my-greengrass-components" required=true/>
                    <Field label="Prefix" value=prefix testid="package-prefix" placeholder="optional, e.g. components/cookies"/>
                </div>
                <button type="button" class="primary" data-testid="start-packaging" disabled=move || disabled || start.pending().get() on:click=submit>
                    "Package model"
                </button>
                <Show when=move || start.pending().get()><span class="muted">" Starting…"</span></Show>
            </fieldset>
            {result}
            <h3>"Packaging jobs of the project"</h3>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || jobs.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="empty" data-testid="packaging-empty">"No packaging jobs yet."</p> }.into_any(),
                    Ok(list) => view! { <JobTable project=p_rows.clone() list/> }.into_any(),
                })}
            </Transition>
        </div>
    }
}

#[component]
fn JobTable(project: String, list: Vec<PackagingJobView>) -> impl IntoView {
    view! {
        <table class="table" data-testid="packaging-jobs">
            <thead><tr>
                <th>"Job"</th><th>"Model"</th><th>"Component"</th><th>"Version"</th><th>"Target"</th><th>"Status"</th><th>"Created"</th><th>"Package"</th>
            </tr></thead>
            <tbody>
                {list.into_iter().map(|j| {
                    let download = j.download(&project);
                    let failed = j.status == "FAILED";
                    view! {
                        <tr data-job=j.job_name.clone()>
                            <td>{j.job_name.clone()}{j.description.clone().map(|d| view! { <div class="muted small">{d}</div> })}</td>
                            <td><a href=format!("/projects/{project}/models/{}", j.model_version)>{format!("Model {}", j.model_version)}</a></td>
                            <td class="mono small">{j.component_name.clone()}</td>
                            <td>{j.component_version.clone().unwrap_or_default()}</td>
                            <td class="small">{j.target.clone()}</td>
                            <td>
                                <span class=status_class(&j.status) data-testid="packaging-status">{j.status.to_lowercase()}</span>
                                {j.status_message.clone().map(|m| view! { <div class=if failed { "error small" } else { "muted small" }>{m}</div> })}
                            </td>
                            <td class="muted small">{format_utc(j.created_at_ms)}</td>
                            <td>{match download {
                                Some(href) => view! { <a href=href download="" data-testid="download-package">"Download package"</a> }.into_any(),
                                None => view! { <span class="muted small">{j.output.clone()}</span> }.into_any(),
                            }}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
