//! The Vigil console: every page, component and server function. Server-only code sits behind `ssr`.

pub mod api;
pub mod names;
pub mod pages;
pub mod timefmt;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The console's Content-Security-Policy, sent with every page: scripts only from this server or inline with
/// this response's nonce (Leptos' hydration scripts carry it), WebAssembly compiled from them, connections and
/// forms to this server only, images from it or from data/blob URLs (masks, previews), no plugins, no `<base>`,
/// no framing. Styles may be inline (components set style attributes). Other answers keep the server's
/// `frame-ancestors 'none'`.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) else { return };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        &*nonce
    );
    if let Ok(v) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, so this marks the moment the page became interactive.
    // End-to-end tests wait for it instead of racing hydration.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/vigil.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title formatter=|t: String| if t.is_empty() { "Vigil".to_string() } else { format!("{t} · Vigil") }/>
        <Router>
            <div class="layout">
                <Nav/>
                <main class="content">
                    <Routes fallback=|| view! { <pages::NotFound/> }>
                        <Route path=path!("/") view=pages::projects::ProjectsPage/>
                        <Route path=path!("/projects") view=pages::projects::ProjectsPage/>
                        <Route path=path!("/projects/:name") view=pages::project::ProjectPage/>
                        <Route path=path!("/projects/:name/models/:version") view=pages::models::ModelPage/>
                        <Route path=path!("/projects/:name/trials/:trial") view=pages::trial::TrialPage/>
                        <Route path=path!("/projects/:name/batches/:batch") view=pages::batch::BatchPage/>
                        <Route path=path!("/projects/:name/datasets/:type") view=pages::dataset::DatasetPage/>
                        <Route path=path!("/projects/:name/datasets/:type/images/:id") view=pages::mask::MaskPage/>
                        <Route path=path!("/dashboard") view=pages::dashboard::DashboardPage/>
                        <Route path=path!("/signin") view=pages::signin::SignInPage/>
                        <Route path=path!("/admin") view=pages::admin::AdminPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

#[component]
fn Nav() -> impl IntoView {
    view! {
        <nav class="sidebar" aria-label="Main">
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"◉"</span>
                <span class="brand-name">"Vigil"</span>
            </a>
            <ul class="nav-links">
                <li><A href="/projects">"Projects"</A></li>
                <li><A href="/dashboard">"Dashboard"</A></li>
                <li><A href="/admin">"Admin"</A></li>
            </ul>
            <pages::signin::SignedIn/>
            <p class="nav-foot">"Visual anomaly detection"</p>
        </nav>
    }
}
