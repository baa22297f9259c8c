//! The sign-in page (a plain form posted to `/auth/signin`, so it works before the WASM loads) and the
//! signed-in user's box in the sidebar with its sign-out button.

use crate::api::auth::current_user;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.with(|q| q.get("next").unwrap_or_else(|| "/".to_string()));
    let failed = move || query.with(|q| q.get("error").is_some_and(|e| e != "wait"));
    // Too many failed sign-ins: the server asks to wait before the next try.
    let wait = move || query.with(|q| q.get("error").filter(|e| e == "wait").map(|_| q.get("retry").unwrap_or_else(|| "a few".into())));
    view! {
        <Title text="Sign in"/>
        <section class="page signin-page">
            <header class="page-head">
                <h1>"Sign in"</h1>
                <p class="muted">"Sign in to use the Vigil console."</p>
            </header>
            // One field per row, each label above its input.
            <form class="card signin-form" method="post" action="/auth/signin">
                <input type="hidden" name="next" value=next/>
                <div class="signin-field">
                    <label for="signin-name">"User name"</label>
                    <input id="signin-name" name="name" type="text" autocomplete="username" required autofocus/>
                </div>
                <div class="signin-field">
                    <label for="signin-password">"Password"</label>
                    <input id="signin-password" name="password" type="password" autocomplete="current-password" required/>
                </div>
                <Show when=failed>
                    <p class="error" role="alert">"Wrong user name or password."</p>
                </Show>
                {move || wait().map(|s| view! {
                    <p class="error" role="alert" data-testid="signin-wait">
                        {format!("Too many failed sign-ins for this user or from this address: wait {s} seconds, then try again.")}
                    </p>
                })}
                <div class="form-row">
                    <button type="submit" class="primary">"Sign in"</button>
                </div>
                <p class="hint">
                    "At the first start Vigil creates the user admin, with the password from VIGIL_ADMIN_PASSWORD or one printed in the server's log."
                </p>
                <p class="hint" data-testid="lost-password">
                    "Lost the administrator password? On the server, run " <code>"vigil admin reset-password admin"</code> "."
                </p>
            </form>
        </section>
    }
}

/// The signed-in user's name and a sign-out button (nothing when signed out).
#[component]
pub fn SignedIn() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(u)) => view! {
                        <form class="nav-user" method="post" action="/auth/signout">
                            <span class="muted small" data-testid="signed-in-user">{u.name}</span>
                            " "
                            <button type="submit" class="small-button">"Sign out"</button>
                        </form>
                    }
                    .into_any(),
                    _ => ().into_any(),
                }
            })}
        </Transition>
    }
}
