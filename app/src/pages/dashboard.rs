//! The dashboard (LFV's home page): totals across projects over a chosen time frame, and per project the
//! images its models processed, the anomalies they found, the anomaly ratio and a chart of detections. The
//! figures are every detection, counted per model version and hour: DetectAnomalies calls, batches, trials and
//! the console's "try an image" (the server writes its pending counts before it answers, so they are current).
//! The chosen time frame is marked (`aria-current`, and styled as selected).

use crate::api::error_text;
use crate::api::models::{get_dashboard, Dashboard, ProjectActivity, DASHBOARD_FRAMES};
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

fn ratio(anomalous: i64, processed: i64) -> String {
    if processed == 0 {
        "–".into()
    } else {
        format!("{:.1} %", 100.0 * anomalous as f64 / processed as f64)
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let hours = move || {
        query.with(|q| q.get("hours").and_then(|h| h.parse::<i64>().ok())).filter(|h| DASHBOARD_FRAMES.iter().any(|(f, _)| f == h)).unwrap_or(24 * 7)
    };
    let data = Resource::new(hours, get_dashboard);
    view! {
        <Title text="Dashboard"/>
        <section class="page">
            <header class="page-head">
                <h1>"Dashboard"</h1>
                <nav class="frames" aria-label="Time frame">
                    {DASHBOARD_FRAMES.iter().map(|(h, label)| {
                        let h = *h;
                        view! {
                            <a href=format!("/dashboard?hours={h}") class="button small frame" class:selected=move || hours() == h
                                data-testid=format!("frame-{h}") aria-current=move || (hours() == h).then_some("true")>{*label}</a>
                        }
                    }).collect_view()}
                </nav>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(d) => view! { <DashboardView d/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn DashboardView(d: Dashboard) -> impl IntoView {
    let processed: i64 = d.projects.iter().map(|p| p.processed).sum();
    let anomalous: i64 = d.projects.iter().map(|p| p.anomalous).sum();
    let frame = DASHBOARD_FRAMES.iter().find(|(h, _)| *h == d.hours).map(|(_, l)| *l).unwrap_or("");
    let step = if d.bucket_hours == 1 { "hour".to_string() } else { format!("{} hours", d.bucket_hours) };
    let since = format_utc(d.since_ms);
    let empty = d.projects.is_empty();
    let project_count = d.projects.len();
    let rows = d
        .projects
        .into_iter()
        .map(|p| {
            let href = format!("/projects/{}", p.project);
            let (name, anomalous, processed) = (p.project.clone(), p.anomalous, p.processed);
            let key = name.clone();
            view! {
                <tr data-project=key>
                    <td><a href=href>{name}</a></td>
                    <td class="num" data-testid="project-anomalous">{anomalous}</td>
                    <td class="num" data-testid="project-processed">{processed}</td>
                    <td class="num">{ratio(anomalous, processed)}</td>
                    <td><Activity p=p/></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="card">
            <h2>"Overview · last " {frame}</h2>
            <div class="stats">
                <div class="stat"><span class="stat-n" data-testid="total-projects">{project_count}</span><span class="stat-l">"projects"</span></div>
                <div class="stat"><span class="stat-n" data-testid="total-processed">{processed}</span><span class="stat-l">"images processed"</span></div>
                <div class="stat"><span class="stat-n" data-testid="total-anomalous">{anomalous}</span><span class="stat-l">"anomalies detected"</span></div>
                <div class="stat"><span class="stat-n">{ratio(anomalous, processed)}</span><span class="stat-l">"anomaly ratio"</span></div>
                <div class="stat"><span class="stat-n" data-testid="total-hosted">{d.hosted}</span><span class="stat-l">"models hosted now"</span></div>
                {(!d.drifting.is_empty()).then(|| {
                    let names: Vec<String> = d.drifting.iter().map(|(p, v)| format!("{p} version {v}")).collect();
                    view! { <p class="error" data-testid="drifting">{format!("Scores have drifted on {}: see the model page.", names.join(", "))}</p> }
                })}
            </div>
            <p class="hint">"Since " {since} " (UTC), per " {step} ": every detection — DetectAnomalies calls, batch runs, trial detections and images tried on a model page."</p>
        </div>
        <div class="card">
            <h2>"Projects"</h2>
            {if empty {
                view! { <p class="muted">"No projects yet. " <a href="/projects">"Create one"</a> "."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="dashboard-projects">
                        <thead><tr>
                            <th>"Project"</th><th class="num">"Anomalies"</th><th class="num">"Images processed"</th>
                            <th class="num">"Anomaly ratio"</th><th>"Detections"</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }.into_any()
            }}
        </div>
    }
}

/// Detections over the frame: processed (grey) and anomalous (red) per bucket.
#[component]
fn Activity(p: ProjectActivity) -> impl IntoView {
    const W: f64 = 240.0;
    const H: f64 = 36.0;
    let n = p.series.len().max(1) as f64;
    let top = p.series.iter().map(|(a, _)| *a).max().unwrap_or(0).max(1) as f64;
    let bw = W / n;
    let label = format!("{}: {} processed, {} anomalous", p.project, p.processed, p.anomalous);
    view! {
        <svg class="spark" viewBox=format!("0 0 {W} {H}") width=W height=H role="img" aria-label=label>
            <line x1=0 y1=H - 0.5 x2=W y2=H - 0.5 class="axis"/>
            {p.series.iter().enumerate().filter(|(_, (a, _))| *a > 0).map(|(i, (all, bad))| {
                let x = i as f64 * bw;
                let h_all = (H - 2.0) * *all as f64 / top;
                let h_bad = (H - 2.0) * *bad as f64 / top;
                view! {
                    <rect x=x y=H - 1.0 - h_all width=(bw - 0.5).max(0.5) height=h_all class="bar-normal"/>
                    <rect x=x y=H - 1.0 - h_bad width=(bw - 0.5).max(0.5) height=h_bad class="bar-anomaly"/>
                }
            }).collect_view()}
        </svg>
    }
}
