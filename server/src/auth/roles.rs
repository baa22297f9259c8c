//! Console roles at the one place every console request passes (`web::require_session`): what each server
//! function and console route is — a read, a change to projects, one's own account, or user administration —
//! and whether the signed-in user's role allows it. Changes and refusals go to the audit log. A server function
//! missing from the table is treated as user administration (administrators only) and logged, so a new one fails
//! closed; a test checks that every registered server function is listed.

use app::api::auth::{Role, SessionUser};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// What a console call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads only: every role.
    Read,
    /// One's own password and keys: every role (a key never does more than its owner's role).
    Own,
    /// Changes to projects (datasets, labels, models, hosting, detections, trials, batches, packaging): editors
    /// and administrators.
    Change,
    /// Users and the audit log: administrators.
    Admin,
}

/// Every server function, by name.
const SERVER_FNS: &[(&str, Kind)] = &[
    ("current_user", Kind::Read),
    ("admin_view", Kind::Read),
    ("connect_info", Kind::Read),
    ("list_projects", Kind::Read),
    ("get_project", Kind::Read),
    ("get_dataset", Kind::Read),
    ("list_entries", Kind::Read),
    ("list_entry_ids", Kind::Read),
    ("get_entry", Kind::Read),
    ("list_labels", Kind::Read),
    ("get_models", Kind::Read),
    ("get_model", Kind::Read),
    ("get_eval_heat_map", Kind::Read),
    ("get_dashboard", Kind::Read),
    ("list_trials", Kind::Read),
    ("get_trial", Kind::Read),
    ("get_batch", Kind::Read),
    ("list_packaging_jobs", Kind::Read),
    ("change_password", Kind::Own),
    ("create_key", Kind::Own),
    ("revoke_key", Kind::Own),
    // One's own sessions; another user's only for administrators (checked by the backend).
    ("end_sessions", Kind::Own),
    ("create_user", Kind::Admin),
    ("delete_user", Kind::Admin),
    ("set_user_role", Kind::Admin),
    ("audit_log", Kind::Admin),
    ("create_sample_project", Kind::Change),
    ("create_project", Kind::Change),
    ("delete_project", Kind::Change),
    ("delete_dataset", Kind::Change),
    ("retry_import", Kind::Change),
    ("import_s3", Kind::Change),
    ("upload_images", Kind::Change),
    ("set_labels", Kind::Change),
    ("delete_entries", Kind::Change),
    ("move_entries", Kind::Change),
    ("save_mask", Kind::Change),
    ("create_label", Kind::Change),
    ("recolor_label", Kind::Change),
    ("delete_label", Kind::Change),
    ("rename_label", Kind::Change),
    ("train_model", Kind::Change),
    ("cancel_training", Kind::Change),
    ("save_threshold", Kind::Change),
    ("start_model", Kind::Change),
    ("stop_model", Kind::Change),
    ("delete_model", Kind::Change),
    // A detection is not a read in LFV's terms (AmazonLookoutVisionReadOnlyAccess does not allow it).
    ("try_image", Kind::Change),
    ("create_trial", Kind::Change),
    ("upload_trial", Kind::Change),
    ("verify_trial", Kind::Change),
    ("add_trial_to_dataset", Kind::Change),
    ("cancel_trial", Kind::Change),
    ("delete_trial", Kind::Change),
    ("create_batch", Kind::Change),
    ("upload_batch", Kind::Change),
    ("start_packaging_job", Kind::Change),
];

/// A console call as the role check and the audit log see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `console:create_project`, `console:import_archive`, …
    pub action: String,
    pub kind: Kind,
    /// True for a server function (refusals use its error encoding).
    pub server_fn: bool,
}

/// The server function a path names: `/api/` + the function's name + the hash Leptos appends (decimal digits).
fn server_fn_name(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/")?;
    SERVER_FNS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| rest.strip_prefix(n).is_some_and(|hash| hash.bytes().all(|b| b.is_ascii_digit())))
        // `import_s3` and a hypothetical `import_s` + hash: the longest name wins.
        .max_by_key(|n| n.len())
}

/// What a console request is. Pages and other GETs are reads.
pub fn classify(method: &Method, path: &str) -> Call {
    if path.starts_with("/api/") {
        return match server_fn_name(path) {
            Some(name) => {
                let kind = SERVER_FNS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k).unwrap_or(Kind::Admin);
                Call { action: format!("console:{name}"), kind, server_fn: true }
            }
            None => {
                tracing::error!(%path, "a server function missing from auth::roles's table: administrators only until it is listed");
                Call { action: format!("console:{}", path.trim_start_matches("/api/")), kind: Kind::Admin, server_fn: true }
            }
        };
    }
    if path.starts_with("/import/") && method == Method::POST {
        return Call { action: "console:import_archive".into(), kind: Kind::Change, server_fn: false };
    }
    if path.starts_with("/audit/") {
        return Call { action: "console:export_audit".into(), kind: Kind::Admin, server_fn: false };
    }
    if path == "/auth/signout" {
        return Call { action: "console:sign_out".into(), kind: Kind::Own, server_fn: false };
    }
    let kind = if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) { Kind::Read } else { Kind::Admin };
    Call { action: format!("console:{method} {path}"), kind, server_fn: false }
}

/// Registered server functions missing from the table (a test keeps this empty).
pub fn unlisted_server_fns() -> Vec<String> {
    leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_string())
        .filter(|path| server_fn_name(path).is_none())
        .collect()
}

/// Whether a role may make a call.
pub fn allows(role: Role, kind: Kind) -> bool {
    match kind {
        Kind::Read | Kind::Own => true,
        Kind::Change => role.may_change(),
        Kind::Admin => role == Role::Administrator,
    }
}

/// The refusal of a call the user's role does not allow: 403, in the server function's error encoding (so the
/// console shows the message) or as JSON.
pub fn refusal(user: &SessionUser, call: &Call) -> Response {
    let message = match call.kind {
        Kind::Admin => format!("Only administrators may do this ({}); {} is {}.", call.action, user.name, with_article(user.role)),
        _ => format!(
            "{} is {} ({}), so {} is not allowed. Ask an administrator for the editor role.",
            user.name,
            with_article(user.role),
            user.role.summary(),
            call.action
        ),
    };
    if call.server_fn {
        (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("ServerError|{message}")).into_response()
    } else {
        (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({ "message": message }))).into_response()
    }
}

fn with_article(role: Role) -> String {
    match role {
        Role::Administrator => "an administrator".into(),
        r => format!("a {}", r.as_str()),
    }
}

/// The project a form-encoded server function call names (`project`, else `name` for the project calls), for
/// the audit log; empty when there is none.
pub fn resource_of(action: &str, form: &[u8]) -> String {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(form).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let project_call = matches!(action, "console:create_project" | "console:delete_project" | "console:get_project");
    let user_call = matches!(action, "console:create_user" | "console:delete_user" | "console:set_user_role");
    let r = get("project").or_else(|| if project_call || user_call { get("name") } else { None }).or_else(|| get("id")).unwrap_or_default();
    let r = if user_call { format!("user/{r}") } else { r };
    r.chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        assert_eq!(server_fn_name("/api/create_project1234567890"), Some("create_project"));
        assert_eq!(server_fn_name("/api/import_s31234"), Some("import_s3"));
        assert_eq!(server_fn_name("/api/create_project"), Some("create_project"));
        assert_eq!(server_fn_name("/api/create_projectx1"), None);
        assert_eq!(server_fn_name("/api/nothing123"), None);
        assert_eq!(classify(&Method::POST, "/api/nothing123").kind, Kind::Admin);
        assert_eq!(classify(&Method::POST, "/api/stop_model99").kind, Kind::Change);
        assert_eq!(classify(&Method::POST, "/import/cookies/train").kind, Kind::Change);
        assert_eq!(classify(&Method::GET, "/media/abc").kind, Kind::Read);
        assert_eq!(classify(&Method::GET, "/audit/export.jsonl").kind, Kind::Admin);
        assert_eq!(classify(&Method::DELETE, "/elsewhere").kind, Kind::Admin);
    }

    #[test]
    fn roles() {
        assert!(allows(Role::Viewer, Kind::Read) && allows(Role::Viewer, Kind::Own));
        assert!(!allows(Role::Viewer, Kind::Change) && !allows(Role::Viewer, Kind::Admin));
        assert!(allows(Role::Editor, Kind::Change) && !allows(Role::Editor, Kind::Admin));
        assert!(allows(Role::Administrator, Kind::Admin));
    }

    #[test]
    fn resources_for_the_audit_log() {
        assert_eq!(resource_of("console:stop_model", b"project=cookies&version=3"), "cookies");
        assert_eq!(resource_of("console:create_project", b"name=my+parts%21"), "my parts!");
        assert_eq!(resource_of("console:create_user", b"name=ann&password=secret&role=viewer"), "user/ann");
        assert_eq!(resource_of("console:revoke_key", b"id=VKIA1"), "VKIA1");
        assert_eq!(resource_of("console:train_model", b"garbage"), "");
    }
}
