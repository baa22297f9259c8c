//! The labelling canvas's guard against losing unsaved mask edits: whether there are any, the question asked
//! before the page is left, and the page-wide listeners that ask it (reload, tab close, a click on a link).

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;

/// The question asked before unsaved mask edits are dropped.
const LEAVE: &str = "This mask has unsaved changes. Leave without saving them?";

thread_local! {
    /// Whether the canvas on screen has unsaved edits: read by the page-wide listeners below.
    static UNSAVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static GUARD_INSTALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the canvas on screen as having unsaved edits, or none.
pub fn set_unsaved(v: bool) {
    UNSAVED.with(|u| u.set(v));
}

/// Whether the page may be left: no unsaved edits, or the user says so (then the edits are dropped).
pub fn may_leave() -> bool {
    if !UNSAVED.with(|u| u.get()) {
        return true;
    }
    let ok = window().confirm_with_message(LEAVE).unwrap_or(false);
    if ok {
        set_unsaved(false);
    }
    ok
}

/// Once per page: asks before a reload or tab close (`beforeunload`) and before a click on any link
/// (in-app navigation, caught in the capture phase so the router never sees a refused click) while the
/// canvas has unsaved edits.
pub fn install_leave_guard() {
    use leptos::wasm_bindgen::closure::Closure;
    if GUARD_INSTALLED.with(|g| g.replace(true)) {
        return;
    }
    let before_unload = Closure::<dyn Fn(web_sys::BeforeUnloadEvent)>::new(|ev: web_sys::BeforeUnloadEvent| {
        if UNSAVED.with(|u| u.get()) {
            ev.prevent_default();
            ev.set_return_value(LEAVE);
        }
    });
    let _ = window().add_event_listener_with_callback("beforeunload", before_unload.as_ref().unchecked_ref());
    before_unload.forget();
    let on_click = Closure::<dyn Fn(web_sys::MouseEvent)>::new(|ev: web_sys::MouseEvent| {
        if !UNSAVED.with(|u| u.get()) || ev.default_prevented() || ev.button() != 0 {
            return;
        }
        let link = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest("a[href]").ok().flatten());
        if link.is_some_and(|a| !a.has_attribute("download")) && !may_leave() {
            ev.prevent_default();
            ev.stop_immediate_propagation();
        }
    });
    let _ = document().add_event_listener_with_callback_and_bool("click", on_click.as_ref().unchecked_ref(), true);
    on_click.forget();
}

