//! The browser entry point: hydrates the server-rendered console and nothing else.

// The console's view types are deep (the hydrate code monomorphises whole pages).
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
