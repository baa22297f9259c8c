//! The Admin page: one's role, API access keys (created with a choice of rights — full, read only, detect only
//! on some projects, or a custom policy — and the secret shown once; revoked), console users and their roles
//! (administrators add and remove them), the audit log (administrators) and one's own password. Revoking a key
//! and removing a user cannot be undone, so each asks first, in the row, saying what will be lost ([`Confirm`]).

use crate::api::auth::{
    admin_view, AdminData, ChangePassword, CreateKey, CreateUser, DeleteUser, KeyAccess, KeyView,
    EndSessions, NewKey, RevokeKey, Role, SetUserRole, UserView,
};
use crate::api::{error_text, list_projects};
use leptos::prelude::*;
use leptos_meta::Title;
use crate::timefmt::format_utc;
use super::admin_audit::{AuditCard, AuditState};

/// The example a custom policy starts from: detections on one project's models.
const EXAMPLE_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "lookoutvision:DetectAnomalies",
      "Resource": "arn:aws:lookoutvision:*:*:model/PROJECT/*"
    }
  ]
}"#;

/// The access presets a new key may get: (`KeyAccess::preset`, what the form says, the hint under it).
const ACCESS_CHOICES: [(&str, &str, &str); 4] = [
    ("full", "Full access (within your role)", "Everything your role allows, on every project."),
    ("read", "Read only", "Lists and describes projects, datasets, models and trials; changes nothing and detects nothing."),
    ("detect", "Detect only (for a line device)", "DetectAnomalies on the chosen projects' models and nothing else."),
    ("custom", "Custom policy", "An IAM-shaped policy document; it cannot grant more than your role allows."),
];

#[component]
pub fn AdminPage() -> impl IntoView {
    let create_key = ServerAction::<CreateKey>::new();
    let revoke_key = ServerAction::<RevokeKey>::new();
    let create_user = ServerAction::<CreateUser>::new();
    let set_user_role = ServerAction::<SetUserRole>::new();
    let delete_user = ServerAction::<DeleteUser>::new();
    let change_password = ServerAction::<ChangePassword>::new();
    let view_data = Resource::new(
        move || {
            (
                create_key.version().get(),
                revoke_key.version().get(),
                create_user.version().get(),
                set_user_role.version().get(),
                delete_user.version().get(),
            )
        },
        |_| admin_view(),
    );
    // The project names a detect-only key may name.
    let projects = Resource::new(|| (), |_| list_projects());
    let audit = AuditState::new();
    let actions = Actions { create_key, revoke_key, create_user, set_user_role, delete_user, change_password };
    view! {
        <Title text="Admin"/>
        <section class="page admin-page">
            <header class="page-head">
                <h1>"Admin"</h1>
                <p class="muted">"API access keys for LFV clients, the people who may use this console, and what they did."</p>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let names: Vec<String> = projects.await.map(|p| p.into_iter().map(|p| p.name).collect()).unwrap_or_default();
                    match view_data.await {
                        Ok(v) => view! { <AdminBody v=v projects=names actions audit/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The page's server actions (they outlive the cards, which are drawn again after each change).
#[derive(Clone, Copy)]
struct Actions {
    create_key: ServerAction<CreateKey>,
    revoke_key: ServerAction<RevokeKey>,
    create_user: ServerAction<CreateUser>,
    set_user_role: ServerAction<SetUserRole>,
    delete_user: ServerAction<DeleteUser>,
    change_password: ServerAction<ChangePassword>,
}

/// The error message of an action's last failed call.
macro_rules! action_error {
    ($a:expr) => {{
        let a = $a;
        move || a.value().get().and_then(|r| r.err()).map(|e| error_text(&e))
    }};
}

/// A role as a small badge: `administrator`, `editor` or `viewer`.
fn role_badge(role: Role) -> AnyView {
    view! { <span class=format!("badge role-badge role-{}", role.as_str())>{role.as_str()}</span> }.into_any()
}

#[component]
fn AdminBody(v: AdminData, projects: Vec<String>, actions: Actions, audit: AuditState) -> impl IntoView {
    let is_admin = v.me.is_admin;
    let role = v.me.role;
    let me = v.me.name.clone();
    // Each card erases its view type (`into_any`): one nested type for the whole page overflows the
    // compiler's query depth in the WASM build.
    let users = if is_admin {
        view! { <UsersCard users=v.users.clone() keys=v.keys.clone() me actions/> }.into_any()
    } else {
        ().into_any()
    };
    let log = if is_admin { view! { <AuditCard audit/> }.into_any() } else { ().into_any() };
    let why = (!role.may_change()).then(|| {
        view! { <p class="hint">"Changes to projects are refused to viewers; an administrator can give you another role."</p> }
    });
    let mine = view! {
        <div class="my-role">
            <p data-testid="my-role">"Your role: " {role_badge(role)} " — " {role.summary()}</p>
            {why}
        </div>
    }
    .into_any();
    view! {
        {mine}
        <KeysCard keys=v.keys.clone() bootstrap_key=v.bootstrap_key.clone() projects actions/>
        {users}
        {log}
        <PasswordCard change_password=actions.change_password me=v.me.name.clone()/>
    }
    .into_any()
}

#[component]
fn KeysCard(keys: Vec<KeyView>, bootstrap_key: Option<String>, projects: Vec<String>, actions: Actions) -> impl IntoView {
    let Actions { create_key, revoke_key, .. } = actions;
    let new_key = move || create_key.value().get().and_then(|r| r.ok());
    // The key whose revocation is being confirmed.
    let confirming = RwSignal::new(None::<String>);
    let bootstrap_row = bootstrap_key.map(|k| {
        view! {
            <tr data-key=k.clone() data-bootstrap="true" class="bootstrap-key" data-testid="bootstrap-key">
                <td class="mono">{k.clone()}</td>
                <td class="muted">"the server"</td>
                <td>"The server's bootstrap key, from its environment (VIGIL_ACCESS_KEY_ID)"</td>
                <td>{role_badge(Role::Administrator)} " Administrator rights (full access)"</td>
                <td class="nowrap muted">"—"</td>
                <td class="nowrap muted">"—"</td>
                <td class="muted small">"Cannot be revoked here: change or remove it in the server's environment."</td>
            </tr>
        }
        .into_any()
    });
    let table = if keys.is_empty() && bootstrap_row.is_none() {
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
                let policy = pretty_json(&k.policy);
                view! {
                    <tr data-key=k.id.clone()>
                        <td class="mono">{k.id.clone()}</td>
                        <td>{k.user}</td>
                        <td>{k.description}</td>
                        <td class="key-access-cell">
                            <details class="key-policy">
                                <summary title="Show the key's policy document">{k.access}</summary>
                                <pre class="policy-json">{policy}</pre>
                            </details>
                        </td>
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
                    <th scope="col">"Access"</th><th scope="col">"Created"</th><th scope="col">"Last used"</th><th scope="col"></th>
                </tr></thead>
                <tbody>{bootstrap_row}{rows}</tbody>
            </table>
        }
        .into_any()
    };
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
    view! {
        <div class="card">
            <h2>"API access keys"</h2>
            <p class="hint">
                "LFV clients (boto3, the AWS CLI, the AWS SDKs) sign every call with an access key id and its secret, "
                "e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and use this server as their endpoint. "
                "A key never does more than its owner's role allows."
            </p>
            <KeyForm projects create_key/>
            {created}
            <p class="error" role="alert">{action_error!(revoke_key)}</p>
            {table}
        </div>
    }
    .into_any()
}

/// A policy document indented for reading (as it came when it is not JSON).
fn pretty_json(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_string())
}

/// The new key's description and rights: a preset, the projects of a detect-only key, or a policy document.
#[component]
fn KeyForm(projects: Vec<String>, create_key: ServerAction<CreateKey>) -> impl IntoView {
    let description = RwSignal::new(String::new());
    let preset = RwSignal::new("full".to_string());
    let chosen = RwSignal::new(Vec::<String>::new());
    let policy = RwSignal::new(EXAMPLE_POLICY.to_string());
    let local_error = RwSignal::new(None::<String>);
    let all = StoredValue::new(projects);

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let preset = preset.get_untracked();
        let access = match preset.as_str() {
            "detect" => {
                // In the projects list's order.
                let picked: Vec<String> =
                    all.with_value(|all| all.iter().filter(|p| chosen.with_untracked(|c| c.contains(p))).cloned().collect());
                if picked.is_empty() {
                    local_error.set(Some("Choose at least one project the key may detect on.".into()));
                    return;
                }
                KeyAccess { preset, projects: picked, policy: String::new() }
            }
            "custom" => {
                let doc = policy.get_untracked();
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&doc) {
                    local_error.set(Some(format!("The policy is not valid JSON: {e}.")));
                    return;
                }
                KeyAccess { preset, projects: Vec::new(), policy: doc }
            }
            _ => KeyAccess { preset, projects: Vec::new(), policy: String::new() },
        };
        local_error.set(None);
        create_key.dispatch(CreateKey { description: description.get_untracked().trim().to_string(), access });
    };

    let hint = move || preset.with(|p| ACCESS_CHOICES.iter().find(|c| c.0 == p.as_str()).map(|c| c.2).unwrap_or_default());
    let detect = move || {
        (preset.get() == "detect").then(|| {
            let boxes = all.with_value(|all| {
                if all.is_empty() {
                    return view! { <p class="muted small">"No projects yet: create one first."</p> }.into_any();
                }
                all.iter()
                    .cloned()
                    .map(|p| {
                        let (a, b) = (p.clone(), p.clone());
                        view! {
                            <label class="check">
                                <input type="checkbox" value=p.clone() data-project=p.clone()
                                    prop:checked=move || chosen.with(|c| c.contains(&a))
                                    on:change=move |e| {
                                        let on = event_target_checked(&e);
                                        let p = b.clone();
                                        chosen.update(|c| {
                                            c.retain(|x| *x != p);
                                            if on {
                                                c.push(p);
                                            }
                                        });
                                    }/>
                                " " {p}
                            </label>
                        }
                        .into_any()
                    })
                    .collect_view()
                    .into_any()
            });
            view! {
                <fieldset class="key-projects" data-testid="key-projects">
                    <legend>"Projects the key may detect on"</legend>
                    {boxes}
                </fieldset>
            }
            .into_any()
        })
    };
    let custom = move || {
        (preset.get() == "custom").then(|| {
            view! {
                <div class="key-policy-field">
                    <label for="key-policy">"Policy document (JSON)"</label>
                    <textarea id="key-policy" data-testid="key-policy" class="policy-editor mono" rows="12" spellcheck="false"
                        prop:value=move || policy.get()
                        on:input=move |e| policy.set(event_target_value(&e))></textarea>
                    <p class="hint">
                        "Actions like lookoutvision:DetectAnomalies or lookoutvision:Describe*, resources like "
                        <code>"arn:aws:lookoutvision:*:*:project/NAME"</code>" or "<code>"arn:aws:lookoutvision:*:*:model/NAME/*"</code>
                        "; a Deny wins over an Allow."
                    </p>
                </div>
            }
            .into_any()
        })
    };
    let error = move || local_error.get().or_else(action_error!(create_key));
    view! {
        <form class="key-form" on:submit=on_submit novalidate>
            <div class="form-row">
                <label for="key-description" class="visually-hidden">"Description"</label>
                <input id="key-description" name="description" type="text" placeholder="What the key is for, e.g. line-3 camera"
                    maxlength="200" autocomplete="off"
                    prop:value=move || description.get()
                    on:input=move |e| description.set(event_target_value(&e))/>
                <label for="key-access" class="visually-hidden">"Access"</label>
                <select id="key-access" name="access" data-testid="key-access"
                    on:change=move |e| { local_error.set(None); preset.set(event_target_value(&e)); }>
                    {ACCESS_CHOICES
                        .iter()
                        .map(|&(value, label, _)| view! { <option value=value selected=move || preset.get() == value>{label}</option> })
                        .collect_view()}
                </select>
                <button type="submit" class="primary" disabled=move || create_key.pending().get()>"Create access key"</button>
            </div>
            <p class="hint">{hint}</p>
            {detect}
            {custom}
            <p class="error" role="alert">{error}</p>
        </form>
    }
    .into_any()
}

#[component]
fn UsersCard(users: Vec<UserView>, keys: Vec<KeyView>, me: String, actions: Actions) -> impl IntoView {
    let Actions { create_user, set_user_role, delete_user, .. } = actions;
    let confirming = RwSignal::new(None::<String>);
    // An administrator signs a user out of every browser (a lost laptop, a shared PC on the line).
    let end_sessions = ServerAction::<EndSessions>::new();
    let ended_for = RwSignal::new(String::new());
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
            let sign_out = (u.name != me).then(|| {
                let who = u.name.clone();
                view! {
                    <button type="button" class="small" data-testid=format!("end-sessions-{}", u.name)
                        on:click=move |_| {
                            ended_for.set(who.clone());
                            end_sessions.dispatch(EndSessions { name: who.clone() });
                        }>
                        "Sign out"
                    </button>
                }
            });
            let remove = (u.name != me).then(|| {
                view! {
                    <Confirm key_=name.clone() confirming ask="Remove" question confirm="Remove user"
                        on_confirm=Callback::new(move |()| { delete_user.dispatch(DeleteUser { name: name.clone() }); })/>
                }
                .into_any()
            });
            let who = u.name.clone();
            let current = u.role;
            let options = Role::ALL
                .into_iter()
                .map(|r| view! { <option value=r.as_str() selected={r == current}>{r.as_str()}</option> })
                .collect_view();
            view! {
                <tr data-user=u.name.clone() data-role=u.role.as_str()>
                    <td>{u.name.clone()}</td>
                    <td class="role-cell">
                        {role_badge(u.role)}
                        " "
                        <label class="visually-hidden" for=format!("role-{}", u.name)>{format!("Role of {}", u.name)}</label>
                        <select id=format!("role-{}", u.name) class="role-select" data-testid=format!("role-select-{}", u.name)
                            title=current.summary()
                            disabled=move || set_user_role.pending().get()
                            on:change=move |e| {
                                let role = event_target_value(&e);
                                if Role::parse(&role) != Some(current) {
                                    set_user_role.dispatch(SetUserRole { name: who.clone(), role });
                                }
                            }>
                            {options}
                        </select>
                    </td>
                    <td class="nowrap">{format_utc(u.created_at_ms)}</td>
                    <td class="nowrap">{sign_out} " " {remove}</td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    let new_role = RwSignal::new(Role::Editor);
    let role_options = Role::ALL
        .into_iter()
        .map(|r| view! { <option value=r.as_str() selected={r == Role::Editor}>{r.as_str()}</option> })
        .collect_view();
    let form = view! {
        <ActionForm action=create_user attr:class="form-grid">
            <label for="user-name">"User name"</label>
            <input id="user-name" name="name" type="text" autocomplete="off" required/>
            <label for="user-password">"Password (at least 8 characters)"</label>
            <input id="user-password" name="password" type="password" autocomplete="new-password" required/>
            <label for="user-role">"Role"</label>
            <div class="role-field">
                <select id="user-role" name="role" data-testid="new-user-role" aria-describedby="user-role-help"
                    on:change=move |e| new_role.set(Role::parse(&event_target_value(&e)).unwrap_or_default())>
                    {role_options}
                </select>
                <p id="user-role-help" class="hint">{move || new_role.get().summary()}</p>
            </div>
            <div class="form-row"><button type="submit" class="primary">"Add user"</button></div>
        </ActionForm>
    }
    .into_any();
    let roles_help = Role::ALL
        .into_iter()
        .map(|r| view! { <li>{role_badge(r)} " " {r.summary()}</li> })
        .collect_view();
    view! {
        <div class="card">
            <h2>"Users"</h2>
            <table class="table users-table">
                <thead><tr><th scope="col">"Name"</th><th scope="col">"Role"</th><th scope="col">"Created"</th><th scope="col"></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="error" role="alert" data-testid="role-error">{action_error!(set_user_role)}</p>
            <p class="error" role="alert">{action_error!(delete_user)}</p>
            <p class="error" role="alert">{action_error!(end_sessions)}</p>
            {move || end_sessions.value().get().and_then(|r| r.ok()).map(|n| view! {
                <p class="ok" data-testid="user-sessions-ended">
                    {format!("{} was signed out of {n} session{}.", ended_for.get(), if n == 1 { "" } else { "s" })}
                </p>
            })}
            <ul class="role-legend hint">{roles_help}</ul>
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
fn PasswordCard(change_password: ServerAction<ChangePassword>, me: String) -> impl IntoView {
    let end_sessions = ServerAction::<EndSessions>::new();
    let form = view! {
        <ActionForm action=change_password attr:class="form-grid">
            <label for="pw-current">"Current password"</label>
            <input id="pw-current" name="current" type="password" autocomplete="current-password" required/>
            <label for="pw-new">"New password (at least 8 characters, not your user name, not a common password)"</label>
            <input id="pw-new" name="new" type="password" autocomplete="new-password" required/>
            <div class="form-row"><button type="submit" class="primary">"Change password"</button></div>
        </ActionForm>
    }
    .into_any();
    view! {
        <div class="card">
            <h2>"Your password and sessions"</h2>
            {form}
            <p class="error" role="alert">{action_error!(change_password)}</p>
            {move || matches!(change_password.value().get(), Some(Ok(()))).then(|| view! {
                <p class="ok">"Password changed. Your other browsers were signed out."</p>
            })}
            <p class="hint">"Signed in somewhere you no longer use? End every session but this one."</p>
            <div class="form-row">
                <button type="button" data-testid="end-other-sessions"
                    on:click=move |_| { end_sessions.dispatch(EndSessions { name: me.clone() }); }>
                    "Sign out everywhere else"
                </button>
            </div>
            <p class="error" role="alert">{action_error!(end_sessions)}</p>
            {move || end_sessions.value().get().and_then(|r| r.ok()).map(|n| view! {
                <p class="ok" data-testid="sessions-ended">{format!("Signed out {n} other session{}.", if n == 1 { "" } else { "s" })}</p>
            })}
        </div>
    }
    .into_any()
}
