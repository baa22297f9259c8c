//! Small pieces several pages share: a status badge, and reading a resource again while what it shows is
//! still changing.

use leptos::prelude::*;

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

/// Reads a resource again (by bumping `tick`) every `ms` while `busy` holds for its value: live progress
/// without reloading the page. The timer only runs in the browser, and stops with the page.
pub fn poll_while<T: Clone + Send + Sync + 'static>(
    value: impl Fn() -> Option<T> + Send + Sync + 'static,
    busy: impl Fn(&T) -> bool + Send + Sync + 'static,
    tick: RwSignal<u32>,
    ms: u64,
) {
    Effect::new(move |_| {
        if value().is_some_and(|v| busy(&v)) {
            set_timeout(
                move || {
                    tick.try_update(|t| *t += 1);
                },
                std::time::Duration::from_millis(ms),
            );
        }
    });
}
