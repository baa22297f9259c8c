//! The Admin page: API access keys (create with the secret shown once, revoke), console users (administrators
//! add and remove them) and one's own password. Revoking a key and removing a user cannot be undone, so each
//! asks first, in the row, saying what will be lost ([`Confirm`]).

use crate::api::auth::{admin_view, AdminData, ChangePassword, CreateKey, CreateUser, DeleteUser, KeyView, NewKey, RevokeKey, UserView};
use crate::api::error_text;
use crate::timefmt::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AdminPage() -> impl IntoView {
    let create_key = ServerAction::<CreateKey>::new();
    let revoke_key = ServerAction::<RevokeKey>::new();
    let create_user = ServerAction::<CreateUser>::new();
    let delete_user = ServerAction::<DeleteUser>::new();
    let change_password = ServerAction::<ChangePassword>::new();
    let view_data = Resource::new(
        move || (create_key.version().get(), revoke_key.version().get(), create_user.version().get(), delete_user.version().get()),
        |_| admin_view(),
    );
    view! {
        <Title text="Admin"/>
        <section class="page admin-page">
            <header class="page-head">
                <h1>"Admin"</h1>
                <p class="muted">"API access keys for LFV clients, and the people who may use this console."</p>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match view_data.await {
                        Ok(v) => view! { <AdminBody v=v create_key revoke_key create_user delete_user change_password/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The error message of an action's last failed call.
macro_rules! action_error {
    ($a:expr) => {{
        let a = $a;
        move || a.value().get().and_then(|r| r.err()).map(|e| error_text(&e))
    }};
}

#[component]
fn AdminBody(
    v: AdminData,
    create_key: ServerAction<CreateKey>,
    revoke_key: ServerAction<RevokeKey>,
    create_user: ServerAction<CreateUser>,
    delete_user: ServerAction<DeleteUser>,
    change_password: ServerAction<ChangePassword>,
) -> impl IntoView {
    let is_admin = v.me.is_admin;
    let me = v.me.name.clone();
    // Each card erases its view type (`into_any`): one nested type for the whole page overflows the
    // compiler's query depth in the WASM build.
    let users = if is_admin {
        view! { <UsersCard users=v.users.clone() keys=v.keys.clone() me create_user delete_user/> }.into_any()
    } else {
        ().into_any()
    };
    view! {
        <KeysCard keys=v.keys.clone() bootstrap_key=v.bootstrap_key.clone() create_key revoke_key/>
        {users}
        <PasswordCard change_password/>
    }
    .into_any()
}

#[component]
fn KeysCard(keys: Vec<KeyView>, bootstrap_key: Option<String>, create_key: ServerAction<CreateKey>, revoke_key: ServerAction<RevokeKey>) -> impl IntoView {
    let new_key = move || create_key.value().get().and_then(|r| r.ok());
    // The key whose revocation is being confirmed.
    let confirming = RwSignal::new(None::<String>);
    let table = if keys.is_empty() {
        view! { <p class="empty">"No access keys yet."</p> }.into_any()
    } else {
        let rows = keys
            .into_iter()
            .map(|k| {
                let id = k.id.clone();
                let what = if k.description.is_empty() { String::new() } else { format!(" ({})", k.description) };
                let question = format!(
                    "Revoke {id}{what}? Every client signing with it is refused from now on; its secret cannot be restored."
                );
                view! {
                    <tr data-key=k.id.clone()>
                        <td class="mono">{k.id.clone()}</td>
                        <td>{k.user}</td>
                        <td>{k.description}</td>
                        <td class="nowrap">{format_utc(k.created_at_ms)}</td>
                        <td class="nowrap">{k.last_used_at_ms.map(format_utc).unwrap_or_else(|| "never".into())}</td>
                        <td>
                            <Confirm key_=id.clone() confirming ask="Revoke" question confirm="Revoke key"
                                on_confirm=Callback::new(move |()| { revoke_key.dispatch(RevokeKey { id: id.clone() }); })/>
                        </td>
                    </tr>
                }
                .into_any()
            })
            .collect_view();
        view! {
            <table class="table keys-table">
                <thead><tr>
                    <th scope="col">"Access key id"</th><th scope="col">"Owner"</th><th scope="col">"Description"</th>
                    <th scope="col">"Created"</th><th scope="col">"Last used"</th><th scope="col"></th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    let bootstrap = bootstrap_key.map(|k| {
        view! { <p class="muted small">"The server is also configured with the bootstrap key " <code class="mono">{k}</code> " (VIGIL_ACCESS_KEY_ID)."</p> }.into_any()
    });
    let created = move || {
        new_key().map(|k: NewKey| {
            view! {
                <div class="report new-key" data-testid="new-key">
                    <p><strong>"Copy the secret now: it is shown only once."</strong></p>
                    <p>"Access key id: " <code class="mono" data-testid="new-key-id">{k.id}</code></p>
                    <p>"Secret access key: " <code class="mono" data-testid="new-key-secret">{k.secret}</code></p>
                </div>
            }
            .into_any()
        })
    };
    let form = view! {
        <ActionForm action=create_key attr:class="form-row">
            <label for="key-description" class="visually-hidden">"Description"</label>
            <input id="key-description" name="description" type="text" placeholder="What the key is for, e.g. line-3 camera" maxlength="200" autocomplete="off"/>
            <button type="submit" class="primary">"Create access key"</button>
        </ActionForm>
    }
    .into_any();
    view! {
        <div class="card">
            <h2>"API access keys"</h2>
            <p class="hint">
                "LFV clients (boto3, the AWS CLI, the AWS SDKs) sign every call with an access key id and its secret, "
                "e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and use this server as their endpoint."
            </p>
            {bootstrap}
            {form}
            <p class="error" role="alert">{action_error!(create_key)}</p>
            {created}
            <p class="error" role="alert">{action_error!(revoke_key)}</p>
            {table}
        </div>
    }
    .into_any()
}

#[component]
fn UsersCard(
    users: Vec<UserView>,
    keys: Vec<KeyView>,
    me: String,
    create_user: ServerAction<CreateUser>,
    delete_user: ServerAction<DeleteUser>,
) -> impl IntoView {
    let confirming = RwSignal::new(None::<String>);
    let rows = users
        .into_iter()
        .map(|u| {
            let name = u.name.clone();
            let owned = keys.iter().filter(|k| k.user == u.name).count();
            let question = format!(
                "Remove {name}? They are signed out at once{}; this cannot be undone.",
                match owned {
                    0 => String::new(),
                    1 => " and their access key is revoked".to_string(),
                    n => format!(" and their {n} access keys are revoked"),
                }
            );
            let remove = (u.name != me).then(|| {
                view! {
                    <Confirm key_=name.clone() confirming ask="Remove" question confirm="Remove user"
                        on_confirm=Callback::new(move |()| { delete_user.dispatch(DeleteUser { name: name.clone() }); })/>
                }
                .into_any()
            });
            view! {
                <tr data-user=u.name.clone()>
                    <td>{u.name.clone()}</td>
                    <td>{if u.is_admin { "administrator" } else { "user" }}</td>
                    <td class="nowrap">{format_utc(u.created_at_ms)}</td>
                    <td>{remove}</td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    let form = view! {
        <ActionForm action=create_user attr:class="form-grid">
            <label for="user-name">"User name"</label>
            <input id="user-name" name="name" type="text" autocomplete="off" required/>
            <label for="user-password">"Password (at least 8 characters)"</label>
            <input id="user-password" name="password" type="password" autocomplete="new-password" required/>
            <label><input type="checkbox" name="is_admin" value="true"/> " Administrator"</label>
            <div class="form-row"><button type="submit" class="primary">"Add user"</button></div>
        </ActionForm>
    }
    .into_any();
    view! {
        <div class="card">
            <h2>"Users"</h2>
            <table class="table users-table">
                <thead><tr><th scope="col">"Name"</th><th scope="col">"Role"</th><th scope="col">"Created"</th><th scope="col"></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="error" role="alert">{action_error!(delete_user)}</p>
            <h3>"Add a user"</h3>
            {form}
            <p class="error" role="alert">{action_error!(create_user)}</p>
        </div>
    }
    .into_any()
}

/// An irreversible action's button that asks first, in place: "`question` [`confirm`] [Cancel]" (Cancel has the
/// focus, so Enter does no harm; Escape cancels too). `confirming` holds which row of the table is asking.
#[component]
fn Confirm(
    key_: String,
    confirming: RwSignal<Option<String>>,
    ask: &'static str,
    question: String,
    confirm: &'static str,
    on_confirm: Callback<()>,
) -> impl IntoView {
    let mine = StoredValue::new(key_);
    let asking = move || confirming.with(|c| c.as_deref() == Some(mine.get_value().as_str()));
    let cancel_ref = NodeRef::<leptos::html::Button>::new();
    Effect::new(move |_| {
        if let Some(b) = cancel_ref.get() {
            let _ = b.focus();
        }
    });
    let question = StoredValue::new(question);
    view! {
        <Show when=asking fallback=move || view! {
            <button type="button" class="small-button" on:click=move |_| confirming.set(Some(mine.get_value()))>{ask}</button>
        }>
            <div class="confirm" role="group" aria-label=ask data-testid="confirm"
                on:keydown=move |e: leptos::ev::KeyboardEvent| if e.key() == "Escape" { confirming.set(None) }>
                <span class="confirm-question">{question.get_value()}</span>
                " "
                <button type="button" class="small-button danger" on:click=move |_| { confirming.set(None); on_confirm.run(()); }>{confirm}</button>
                " "
                <button type="button" class="small-button" node_ref=cancel_ref on:click=move |_| confirming.set(None)>"Cancel"</button>
            </div>
        </Show>
    }
}

#[component]
fn PasswordCard(change_password: ServerAction<ChangePassword>) -> impl IntoView {
    let form = view! {
        <ActionForm action=change_password attr:class="form-grid">
            <label for="pw-current">"Current password"</label>
            <input id="pw-current" name="current" type="password" autocomplete="current-password" required/>
            <label for="pw-new">"New password (at least 8 characters)"</label>
            <input id="pw-new" name="new" type="password" autocomplete="new-password" required/>
            <div class="form-row"><button type="submit" class="primary">"Change password"</button></div>
        </ActionForm>
    }
    .into_any();
    view! {
        <div class="card">
            <h2>"Your password"</h2>
            {form}
            <p class="error" role="alert">{action_error!(change_password)}</p>
            {move || matches!(change_password.value().get(), Some(Ok(()))).then(|| view! { <p class="ok">"Password changed."</p> })}
        </div>
    }
    .into_any()
}
