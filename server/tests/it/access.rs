//! Who may do what: policies on access keys (presets and custom documents, explicit Deny), console roles, and the
//! audit log, through the official SDK, hand-made console requests and the database.

use crate::common;

use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use common::{Backend, Harness, API_KEY};
use leptos::server_fn::ServerFn;
use vigil::auth::policy::Preset;
use vigil::auth::users::Role;

/// `Some(code)` of a refused SDK call, `None` when it succeeded.
fn code<T, E: ProvideErrorMetadata>(r: Result<T, aws_sdk_lookoutvision::error::SdkError<E, aws_sdk_lookoutvision::config::http::HttpResponse>>) -> Option<String> {
    r.err().map(|e| e.code().unwrap_or("(no code)").to_string())
}

const DENIED: Option<&str> = Some("AccessDeniedException");

async fn user(h: &Harness, name: &str, role: Role) -> String {
    let state = &h.running.as_ref().unwrap().state;
    let hash = vigil::auth::users::hash_password("a-long-password").unwrap();
    let mut conn = state.db.pool.acquire().await.unwrap();
    vigil::auth::users::create(&mut conn, name, &hash, role).await.unwrap().id
}

async fn key(h: &Harness, user_id: &str, policy: &str) -> aws_sdk_lookoutvision::Client {
    let state = &h.running.as_ref().unwrap().state;
    let mut conn = state.db.pool.acquire().await.unwrap();
    let (id, secret) = vigil::auth::keys::create(&mut conn, state.auth.sealer(), user_id, "test", Some(policy)).await.unwrap();
    h.client_with(&id, &secret)
}

async fn sign_in(h: &Harness, name: &str) -> String {
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c
        .post(format!("{}/auth/signin", h.base))
        .form(&[("name", name), ("password", "a-long-password"), ("next", "/")])
        .send()
        .await
        .unwrap();
    r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn console_call(h: &Harness, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{}{path}", h.base)).header("cookie", cookie).form(form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The audit log's rows for a principal, once the background writes have landed.
async fn audit(h: &Harness, principal: &str, at_least: usize) -> Vec<vigil::auth::audit::AuditView> {
    let state = &h.running.as_ref().unwrap().state;
    let f = vigil::auth::audit::Filter { principal: Some(principal.into()), limit: 100, ..Default::default() };
    for _ in 0..100 {
        let rows = vigil::auth::audit::list(&mut *state.db.pool.acquire().await.unwrap(), &f).await.unwrap();
        if rows.len() >= at_least {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {at_least} audit events for {principal}");
}

async fn keys_and_roles(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    for p in ["line", "other"] {
        h.client.create_project().project_name(p).send().await.unwrap();
    }
    let editor = user(&h, "ed", Role::Editor).await;
    let viewer = user(&h, "vera", Role::Viewer).await;

    // A line device's key: DetectAnomalies on one project's models, nothing else.
    let device = key(&h, &editor, &Preset::DetectOnly(vec!["line".into()]).document()).await;
    let r = device.detect_anomalies().project_name("line").model_version("1").content_type("image/png").body(vec![0u8; 16].into()).send().await;
    let allowed = code(r);
    assert!(allowed.is_some() && allowed != DENIED.map(str::to_string), "the policy lets it through to the model: {allowed:?}");
    let r = device.detect_anomalies().project_name("other").model_version("1").content_type("image/png").body(vec![0u8; 16].into()).send().await;
    assert_eq!(code(r).as_deref(), DENIED);
    assert_eq!(code(device.stop_model().project_name("line").model_version("1").send().await).as_deref(), DENIED);
    assert_eq!(code(device.delete_project().project_name("line").send().await).as_deref(), DENIED);
    assert_eq!(code(device.list_projects().send().await).as_deref(), DENIED);
    let e = device.describe_project().project_name("line").send().await.unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 403);
    let msg = e.message().unwrap_or_default().to_string();
    assert!(msg.contains("lookoutvision:DescribeProject") && msg.contains(":project/line"), "{msg}");

    // Read only, and a custom policy whose explicit Deny beats its Allow.
    let reader = key(&h, &editor, &Preset::ReadOnly.document()).await;
    assert!(reader.list_projects().send().await.is_ok());
    assert!(reader.describe_project().project_name("line").send().await.is_ok());
    assert_eq!(code(reader.create_project().project_name("nope").send().await).as_deref(), DENIED);
    let custom = key(
        &h,
        &editor,
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"lookoutvision:*","Resource":"*"},
            {"Effect":"Deny","Action":"lookoutvision:Delete*","Resource":"arn:aws:lookoutvision:*:*:project/line"}]}"#,
    )
    .await;
    assert_eq!(code(custom.delete_project().project_name("line").send().await).as_deref(), DENIED);
    assert!(custom.create_project().project_name("made-by-custom").send().await.is_ok());
    assert!(custom.delete_project().project_name("made-by-custom").send().await.is_ok());

    // A viewer's key only reads, whatever its own policy says, until the viewer becomes an editor.
    let viewers = key(&h, &viewer, &Preset::FullAccess.document()).await;
    assert!(viewers.list_projects().send().await.is_ok());
    assert_eq!(code(viewers.create_project().project_name("by-viewer").send().await).as_deref(), DENIED);
    let state = h.running.as_ref().unwrap().state.clone();
    vigil::auth::users::set_role(&mut *state.db.pool.acquire().await.unwrap(), "vera", Role::Editor).await.unwrap();
    state.auth.forget_user(&viewer);
    assert!(viewers.create_project().project_name("by-viewer").send().await.is_ok());
    vigil::auth::users::set_role(&mut *state.db.pool.acquire().await.unwrap(), "vera", Role::Viewer).await.unwrap();
    state.auth.forget_user(&viewer);
    // The last administrator keeps the role.
    let r = vigil::auth::users::set_role(&mut *state.db.pool.acquire().await.unwrap(), "admin", Role::Editor).await;
    assert!(r.is_err());

    // The console: a viewer reads but changes nothing; an editor changes projects but not users.
    let vera = sign_in(&h, "vera").await;
    let (status, body) = console_call(&h, &vera, app::api::ListProjects::PATH, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = console_call(&h, &vera, app::api::CreateProject::PATH, &[("name", "by-console-viewer")]).await;
    assert_eq!(status, 403);
    assert!(body.starts_with("ServerError|") && body.contains("viewer"), "{body}");
    let (status, _) = console_call(&h, &vera, app::api::DeleteProject::PATH, &[("name", "line")]).await;
    assert_eq!(status, 403);
    let ed = sign_in(&h, "ed").await;
    let (status, body) = console_call(&h, &ed, app::api::CreateProject::PATH, &[("name", "by-console-editor")]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = console_call(&h, &ed, app::api::auth::CreateUser::PATH, &[("name", "mallory"), ("password", "a-long-password"), ("role", "administrator")]).await;
    assert_eq!(status, 403, "{body}");
    let r = reqwest::Client::new().get(format!("{}/audit/export.jsonl", h.base)).header("cookie", &ed).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let names: Vec<String> = h.client.list_projects().send().await.unwrap().projects().iter().filter_map(|p| p.project_name().map(str::to_string)).collect();
    assert!(names.contains(&"by-console-editor".to_string()) && !names.contains(&"by-console-viewer".to_string()), "{names:?}");
    assert!(names.contains(&"line".to_string()));

    // The audit log: who, what, on which resource, how it ended; reads are not written, refusals are.
    let rows = audit(&h, API_KEY, 2).await;
    assert!(rows.iter().all(|r| r.principal_kind == "key" && r.via == "api" && r.action == "lookoutvision:CreateProject" && r.outcome == "allowed"));
    assert!(rows.iter().any(|r| r.resource.ends_with(":project/line")));
    let rows = audit(&h, "vera", 2).await;
    assert!(rows.iter().any(|r| r.action == "console:create_project" && r.outcome == "denied" && r.status == 403), "{rows:?}");
    assert!(rows.iter().any(|r| r.action == "console:delete_project" && r.resource == "line" && r.outcome == "denied"), "{rows:?}");
    assert!(rows.iter().all(|r| !r.action.contains("list_projects")));
    let rows = audit(&h, "ed", 3).await;
    assert!(rows.iter().any(|r| r.action == "console:create_project" && r.resource == "by-console-editor" && r.outcome == "allowed"), "{rows:?}");
    assert!(rows.iter().any(|r| r.action == "console:create_user" && r.resource == "user/mallory" && r.outcome == "denied"), "{rows:?}");
    assert!(rows.iter().all(|r| !r.resource.contains("a-long-password") && !r.action.contains("a-long-password")));
    let export = h.http().get(format!("{}/audit/export.jsonl?outcome=denied", h.base)).send().await.unwrap();
    assert_eq!(export.status(), 200);
    let text = export.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 8 && lines.iter().all(|l| l["outcome"] == "denied"), "{text}");
    assert!(lines.iter().any(|l| l["action"] == "lookoutvision:StopModel" && l["principal_kind"] == "key"), "{text}");
    h.stop().await;
}

/// Sign-in: a name gets a few wrong passwords, then waits (even with the right one); a password change signs the
/// user's other browsers out; the password policy refuses the user name and common passwords.
#[tokio::test]
async fn sign_in_limits_sessions_and_password_policy() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    user(&h, "pat", Role::Editor).await;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let attempt = |pw: &'static str| {
        let c = c.clone();
        let url = format!("{}/auth/signin", h.base);
        async move {
            let r = c.post(url).form(&[("name", "pat"), ("password", pw), ("next", "/projects")]).send().await.unwrap();
            r.headers()["location"].to_str().unwrap().to_string()
        }
    };
    for _ in 0..vigil::auth::throttle::FREE_FAILURES {
        assert!(attempt("wrong-password").await.starts_with("/signin?error=1"));
    }
    let refused = attempt("a-long-password").await;
    assert!(refused.starts_with("/signin?error=wait&retry="), "{refused}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt("a-long-password").await, "/projects");

    // Two browsers; the first changes the password: the second is signed out, the first is not.
    let first = sign_in(&h, "pat").await;
    let second = sign_in(&h, "pat").await;
    let (status, body) =
        console_call(&h, &first, app::api::auth::ChangePassword::PATH, &[("current", "a-long-password"), ("new", "aaaaaaaaaa")]).await;
    assert_eq!(status, 400, "one character repeated: {body}");
    let (status, body) = console_call(&h, &first, app::api::auth::ChangePassword::PATH, &[("current", "a-long-password"), ("new", "Password123")]).await;
    assert_eq!(status, 400, "a common password: {body}");
    let (status, body) =
        console_call(&h, &first, app::api::auth::ChangePassword::PATH, &[("current", "a-long-password"), ("new", "copper kettle 42")]).await;
    assert_eq!(status, 200, "{body}");
    let (first_status, _) = console_call(&h, &first, app::api::ListProjects::PATH, &[]).await;
    let (second_status, _) = console_call(&h, &second, app::api::ListProjects::PATH, &[]).await;
    assert_eq!((first_status, second_status), (200, 401));
    // An administrator ends all of a user's sessions.
    let (status, body) = console_call(&h, &format!("vigil_session={}", h.session), app::api::auth::EndSessions::PATH, &[("name", "pat")]).await;
    assert_eq!((status, body.as_str()), (200, "1"));
    assert_eq!(console_call(&h, &first, app::api::ListProjects::PATH, &[]).await.0, 401);
    h.stop().await;
}

/// With no VIGIL_ADMIN_PASSWORD the first administrator's generated password is written to a file only the
/// server's user can read, and it signs in.
#[tokio::test]
async fn generated_admin_password_goes_to_a_private_file() {
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| c.admin_password = None).await.unwrap();
    let file = h.running.as_ref().unwrap().state.config.data_dir.join(vigil::auth::users::ADMIN_PASSWORD_FILE);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(password.len(), 20);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c
        .post(format!("{}/auth/signin", h.base))
        .form(&[("name", "admin"), ("password", password.as_str()), ("next", "/projects")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/projects");
    h.stop().await;
}

#[tokio::test]
async fn keys_and_roles_on_sqlite() {
    keys_and_roles(Backend::Sqlite).await;
}

#[tokio::test]
async fn keys_and_roles_on_postgres() {
    keys_and_roles(Backend::Postgres).await;
}

/// The date a request carries must be signed: a request whose SignedHeaders leave `x-amz-date` out is refused as
/// incomplete before its signature is even compared.
#[tokio::test]
async fn the_date_must_be_signed() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let url = format!("{}/2020-11-20/projects", h.base);
    let headers = common::sigv4_headers(API_KEY, common::API_SECRET, "GET", &url, &[], b"", std::time::SystemTime::now());
    let send = |headers: Vec<(String, String)>| {
        let url = url.clone();
        async move {
            let mut req = reqwest::Client::new().get(url);
            for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default())
        }
    };
    assert_eq!(send(headers.clone()).await, (200, String::new()));
    let unsigned_date: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| if k == "authorization" { (k, v.replace(";x-amz-date", "").replace("x-amz-date;", "")) } else { (k, v) })
        .collect();
    assert_eq!(send(unsigned_date).await, (403, "IncompleteSignatureException".to_string()));
    h.stop().await;
}

/// With VIGIL_API_REGIONS, a call signed for another region is refused as AWS refuses it.
#[tokio::test]
async fn calls_signed_for_another_region_are_refused() {
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| c.api_regions = vec!["eu-west-1".into()]).await.unwrap();
    let e = h.client.list_projects().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    assert!(e.message().unwrap_or_default().contains("valid region, not 'us-east-1'"), "{:?}", e.message());
    h.stop().await;
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| c.api_regions = vec!["eu-west-1".into(), "us-east-1".into()]).await.unwrap();
    assert!(h.client.list_projects().send().await.is_ok());
    h.stop().await;
}

#[test]
fn every_server_function_has_a_role_rule() {
    let all: Vec<_> = leptos::server_fn::axum::server_fn_paths().collect();
    assert!(all.len() >= 50, "the server functions are registered ({} found)", all.len());
    assert_eq!(vigil::auth::roles::unlisted_server_fns(), Vec::<String>::new());
}

/// What the policy check costs per request (printed, not asserted): finding the operation in the table and
/// evaluating a detect-only key, and a custom policy of 20 statements, within the owner's role.
/// `cargo test -p server --release --test it access::policy_evaluation_cost -- --nocapture`
#[test]
fn policy_evaluation_cost() {
    use std::time::Instant;
    use vigil::auth::policy::Policy;
    use vigil::http::access::{authorize, operation};
    let detect = Preset::DetectOnly(vec!["cookies".into(), "boards".into()]).document();
    let statements: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"Effect":"{}","Action":["lookoutvision:Describe*","lookoutvision:List*"],"Resource":"arn:aws:lookoutvision:*:*:project/p{i}"}}"#, if i == 19 { "Deny" } else { "Allow" }))
        .collect();
    let custom = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
    let path = "/2020-11-20/projects/cookies/models/3/detect";
    for (name, doc) in [("detect-only", detect), ("20 statements", custom)] {
        let caller = vigil::auth::ApiCaller {
            access_key_id: "VKIABENCH".into(),
            user_id: Some("u".into()),
            role: Role::Editor,
            policy: Some(std::sync::Arc::new(Policy::parse(&doc).unwrap())),
        };
        let n = 100_000;
        let started = Instant::now();
        for _ in 0..n {
            let op = operation("POST", path, b"", "us-east-1", "123456789012");
            std::hint::black_box(authorize(&caller, op.as_ref(), "POST", path).is_ok());
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("policy check ({name}): {us:.2} µs per request, table lookup included ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });
    }
}

/// With `VIGIL_S3_ALLOWED_BUCKETS`, Vigil's own S3 identity goes nowhere else on a caller's behalf: an
/// `OutputConfig`, a manifest and a trial source outside the list are refused, saying how to allow them.
#[tokio::test]
async fn s3_locations_outside_the_allow_list_are_refused() {
    use aws_sdk_lookoutvision::types::{DatasetGroundTruthManifest, DatasetSource, InputS3Object, OutputConfig, S3Location};
    let Some(s3) = common::S3Server::start().await else { return };
    for b in ["allowed", "elsewhere"] {
        s3.bucket(b);
        s3.put(b, "train.manifest", br#"{"source-ref":"s3://elsewhere/a.png"}"#.to_vec()).await;
    }
    let Some(h) = Harness::start_tuned(Backend::Sqlite, Some(&s3), |c| c.s3_allowed_buckets = vec!["allowed/ok/".into()]).await else { return };
    let c = &h.client;
    c.create_project().project_name("deputy").send().await.unwrap();
    let output = |bucket: &str, prefix: &str| OutputConfig::builder().s3_location(S3Location::builder().bucket(bucket).prefix(prefix).build()).build();
    for (bucket, prefix) in [("elsewhere", "out/"), ("allowed", "not-ok/")] {
        let e = c.create_model().project_name("deputy").output_config(output(bucket, prefix)).send().await.unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"));
        assert!(e.message().unwrap_or_default().contains("VIGIL_S3_ALLOWED_BUCKETS"), "{:?}", e.message());
    }
    // Inside the list, the readiness check speaks (no dataset yet), not the allow-list.
    let e = c.create_model().project_name("deputy").output_config(output("allowed", "ok/evaluations/")).send().await.unwrap_err();
    assert!(!e.message().unwrap_or_default().contains("VIGIL_S3_ALLOWED_BUCKETS"), "{:?}", e.message());

    // A manifest elsewhere: the dataset fails with the reason, nothing is read.
    let source = DatasetSource::builder()
        .ground_truth_manifest(DatasetGroundTruthManifest::builder().s3_object(InputS3Object::builder().bucket("elsewhere").key("train.manifest").build()).build())
        .build();
    let r = c.create_dataset().project_name("deputy").dataset_type("train").dataset_source(source).send().await;
    let message = match r {
        Err(e) => e.message().unwrap_or_default().to_string(),
        Ok(_) => {
            let mut m = String::new();
            for _ in 0..200 {
                let d = c.describe_dataset().project_name("deputy").dataset_type("train").send().await.unwrap();
                let d = d.dataset_description().unwrap();
                if d.status() != Some(&aws_sdk_lookoutvision::types::DatasetStatus::CreateInProgress) {
                    m = d.status_message().unwrap_or_default().to_string();
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            m
        }
    };
    assert!(message.contains("VIGIL_S3_ALLOWED_BUCKETS"), "{message}");
    h.stop().await;
}

/// Quotas answer LFV's ServiceQuotaExceededException (402) with a quota code and what to do: projects per server,
/// trainings queued at once, model versions per project, hosted models per server.
#[tokio::test]
async fn quotas_answer_service_quota_exceeded() {
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| {
        c.max_projects = 2;
        c.max_queued_trainings = 1;
        c.max_model_versions = 2;
        c.max_hosted_models = 1;
        c.max_temp_gb = 0;
    })
    .await
    .unwrap();
    let c = &h.client;
    let quota = |e: &dyn ProvideErrorMetadata| (e.code().unwrap_or_default().to_string(), e.message().unwrap_or_default().to_string());
    c.create_project().project_name("q1").send().await.unwrap();
    c.create_project().project_name("q2").send().await.unwrap();
    let e = c.create_project().project_name("q3").send().await.unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 402);
    let (code, message) = quota(&e);
    assert_eq!(code, "ServiceQuotaExceededException");
    assert!(message.contains("VIGIL_MAX_PROJECTS"), "{message}");

    // Model versions made directly (training needs images): one TRAINING, one TRAINED.
    let state = h.running.as_ref().unwrap().state.clone();
    let mut conn = state.db.pool.acquire().await.unwrap();
    let p = vigil::projects::find(&mut conn, "q1").await.unwrap().unwrap();
    let new = vigil::models::NewModel {
        description: None,
        output_bucket: "b".into(),
        output_prefix: String::new(),
        kms_key_id: None,
        tags: Vec::new(),
    };
    let first = vigil::models::create(&mut conn, &p.id, &new).await.unwrap();
    let output = aws_sdk_lookoutvision::types::OutputConfig::builder()
        .s3_location(aws_sdk_lookoutvision::types::S3Location::builder().bucket("bucket").build())
        .build();
    let e = c.create_model().project_name("q2").output_config(output.clone()).send().await.unwrap_err();
    assert!(quota(&e).1.contains("VIGIL_MAX_QUEUED_TRAININGS"), "{:?}", quota(&e));
    assert!(vigil::models::transition(&mut conn, &first.id, &[vigil::models::TRAINING], vigil::models::TRAINED, None).await.unwrap());
    let second = vigil::models::create(&mut conn, &p.id, &new).await.unwrap();
    vigil::models::transition(&mut conn, &second.id, &[vigil::models::TRAINING], vigil::models::TRAINING_FAILED, None).await.unwrap();
    let e = c.create_model().project_name("q1").output_config(output).send().await.unwrap_err();
    assert!(quota(&e).1.contains("VIGIL_MAX_MODEL_VERSIONS"), "{:?}", quota(&e));
    // One version hosted already (marked directly): the next start is over the limit of one.
    vigil::models::transition(&mut conn, &second.id, &[vigil::models::TRAINING_FAILED], vigil::models::HOSTED, None).await.unwrap();
    drop(conn);
    let e = c.start_model().project_name("q1").model_version(first.version.to_string()).min_inference_units(1).send().await.unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 402);
    assert!(quota(&e).1.contains("VIGIL_MAX_HOSTED_MODELS"), "{:?}", quota(&e));

    // No temporary upload space: an archive upload is refused before it is stored.
    let r = h.http().post(format!("{}/import/q2/train?name=a.zip", h.base)).header("content-type", "application/zip").body(vec![b'P'; 4096]).send().await.unwrap();
    assert_eq!(r.status(), 402);
    assert!(r.text().await.unwrap().contains("VIGIL_MAX_TEMP_GB"));
    h.stop().await;
}
