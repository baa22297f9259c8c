//! The Admin page's audit log card (administrators): every change and refusal, newest first, with filters
//! (who, action, outcome), paging back in time and a JSON-lines export of what the filters match.

use crate::api::auth::{audit_log, AuditFilter, AuditView};
use crate::api::error_text;
use crate::timefmt::format_utc;
use leptos::prelude::*;

/// What the audit card's filters hold: the fields as typed, and the filter last applied (its page included).
/// It lives with the page, so the filters survive the cards being drawn again after a change.
#[derive(Clone, Copy)]
pub(super) struct AuditState {
    principal: RwSignal<String>,
    action: RwSignal<String>,
    /// `""` (all), `allowed`, `failed` or `denied`.
    outcome: RwSignal<String>,
    applied: RwSignal<AuditFilter>,
    /// Bumped by Refresh, to read the log again with the same filter.
    tick: RwSignal<u32>,
}

impl AuditState {
    pub(super) fn new() -> Self {
        let s = AuditState {
            principal: RwSignal::new(String::new()),
            action: RwSignal::new(String::new()),
            outcome: RwSignal::new(String::new()),
            applied: RwSignal::new(AuditFilter::default()),
            tick: RwSignal::new(0),
        };
        s.applied.set(s.filter(None));
        s
    }

    /// The filter the fields describe, from the newest event (`before_ms: None`) or before `before_ms`.
    /// Principal and action are always sent, empty for "any": the server function's URL-encoded arguments
    /// leave out a `None`, and an argument with nothing at all in it does not parse on the server (an empty
    /// text reads as `None` there).
    fn filter(&self, before_ms: Option<i64>) -> AuditFilter {
        let outcome = self.outcome.get_untracked();
        AuditFilter {
            principal: Some(self.principal.get_untracked().trim().to_string()),
            action: Some(self.action.get_untracked().trim().to_string()),
            outcome: (!outcome.is_empty()).then_some(outcome),
            before_ms,
        }
    }
}

/// Percent-encodes a query parameter's value (everything but the unreserved characters).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The export link for a filter: `/audit/export.jsonl` with its principal, action and outcome (not its page).
fn export_href(f: &AuditFilter) -> String {
    let params: Vec<String> = [("principal", &f.principal), ("action", &f.action), ("outcome", &f.outcome)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| format!("{k}={}", query_value(v))))
        .collect();
    if params.is_empty() {
        "/audit/export.jsonl".to_string()
    } else {
        format!("/audit/export.jsonl?{}", params.join("&"))
    }
}

/// An event's time to the second: `YYYY-MM-DD HH:MM:SS UTC`.
fn format_utc_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(60);
    format_utc(ms).replace(" UTC", &format!(":{secs:02} UTC"))
}

#[component]
pub(super) fn AuditCard(audit: AuditState) -> impl IntoView {
    let AuditState { principal, action, outcome, applied, tick } = audit;
    let page = Resource::new(move || (applied.get(), tick.get()), |(f, _)| audit_log(f));
    let apply = move || applied.set(audit.filter(None));
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        apply();
    };
    let filters = view! {
        <form class="audit-filters form-row" on:submit=on_submit>
            <label for="audit-principal" class="visually-hidden">"Who"</label>
            <input id="audit-principal" type="text" placeholder="Who: a user name or an access key id" data-testid="audit-filter-principal"
                autocomplete="off" prop:value=move || principal.get() on:input=move |e| principal.set(event_target_value(&e))/>
            <label for="audit-action" class="visually-hidden">"Action"</label>
            <input id="audit-action" type="text" placeholder="Action, e.g. create_key or StopModel" data-testid="audit-filter-action"
                autocomplete="off" prop:value=move || action.get() on:input=move |e| action.set(event_target_value(&e))/>
            <label for="audit-outcome" class="visually-hidden">"Outcome"</label>
            <select id="audit-outcome" data-testid="audit-filter-outcome"
                on:change=move |e| { outcome.set(event_target_value(&e)); apply(); }>
                {[("", "Every outcome"), ("allowed", "Allowed"), ("failed", "Failed"), ("denied", "Denied")]
                    .into_iter()
                    .map(|(v, l)| view! { <option value=v selected=move || outcome.get() == v>{l}</option> })
                    .collect_view()}
            </select>
            <button type="submit">"Filter"</button>
            <button type="button" on:click=move |_| { applied.update(|f| f.before_ms = None); tick.update(|t| *t += 1); }>"Refresh"</button>
            <a class="button" rel="external" download="audit.jsonl" data-testid="audit-export"
                href=move || applied.with(export_href)>"Export (JSON lines)"</a>
        </form>
    }
    .into_any();
    let table = move || {
        Suspend::new(async move {
            match page.await {
                Ok(p) => {
                    let rows = if p.events.is_empty() {
                        view! { <tr><td colspan="6" class="empty">"No events match."</td></tr> }.into_any()
                    } else {
                        p.events.into_iter().map(audit_row).collect_view().into_any()
                    };
                    let paging_back = applied.with_untracked(|f| f.before_ms.is_some()).then(|| {
                        view! { <button type="button" on:click=move |_| applied.update(|f| f.before_ms = None)>"Newest"</button> }
                    });
                    let older = p.next_before_ms.map(|before| {
                        view! {
                            <button type="button" data-testid="audit-older" on:click=move |_| applied.update(|f| f.before_ms = Some(before))>
                                "Older"
                            </button>
                        }
                    });
                    view! {
                        <table class="table audit-table" data-testid="audit-table">
                            <thead><tr>
                                <th scope="col">"Time"</th><th scope="col">"Who"</th><th scope="col">"Via"</th>
                                <th scope="col">"Action"</th><th scope="col">"Resource"</th><th scope="col">"Outcome"</th>
                            </tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                        <div class="form-row pager">{paging_back}{older}</div>
                    }
                    .into_any()
                }
                Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
            }
        })
    };
    view! {
        <div class="card audit-card">
            <h2>"Audit log"</h2>
            <p class="hint">
                "Every change made in the console or through the API, and every refusal, newest first. Reads are not recorded."
            </p>
            {filters}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>{table}</Transition>
        </div>
    }
    .into_any()
}

/// One event of the audit log as a table row.
fn audit_row(e: AuditView) -> AnyView {
    let badge = match e.outcome.as_str() {
        "allowed" => "badge good",
        "failed" => "badge busy",
        _ => "badge bad",
    };
    let who_class = if e.principal_kind == "key" { "mono" } else { "" };
    let (outcome, action, principal) = (e.outcome.clone(), e.action.clone(), e.principal.clone());
    view! {
        <tr class="audit-row" data-at=e.at_ms.to_string() data-outcome=outcome data-action=action data-principal=principal>
            <td class="nowrap" title=e.at_ms.to_string()>{format_utc_seconds(e.at_ms)}</td>
            <td><span class="muted small">{e.principal_kind}</span> " " <span class=who_class>{e.principal}</span></td>
            <td>{e.via}</td>
            <td class="mono">{e.action}</td>
            <td class="mono small">{e.resource}</td>
            <td class="nowrap"><span class=badge>{e.outcome}</span> " " <span class="muted small">{e.status}</span></td>
        </tr>
    }
    .into_any()
}
