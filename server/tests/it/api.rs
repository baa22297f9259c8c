//! The LFV project API through the official Rust client, on SQLite and on PostgreSQL.

use crate::common;

use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use aws_sdk_lookoutvision::operation::RequestId;
use common::{Backend, Harness};

async fn projects_through_the_lfv_client(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let c = &h.client;

    // Create.
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let out = c.create_project().project_name("cookies").send().await.unwrap();
    // Every answer carries a request id (x-amzn-RequestId, a UUID), as AWS's did.
    let id = out.request_id().expect("a request id").to_string();
    assert!(id.len() == 36 && id.as_bytes()[14] == b'4' && id.split('-').count() == 5, "{id}");
    let meta = out.project_metadata.unwrap();
    assert_eq!(meta.project_name.as_deref(), Some("cookies"));
    assert_eq!(meta.project_arn.as_deref(), Some("arn:aws:lookoutvision:us-east-1:000000000000:project/cookies"));
    let created = meta.creation_timestamp.unwrap().as_secs_f64();
    assert!((created - before).abs() < 60.0, "creation time {created} is now-ish ({before})");

    // Duplicate → ConflictException naming the project.
    let err = c.create_project().project_name("cookies").send().await.unwrap_err().into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    let err_id = err.request_id().expect("errors carry a request id too");
    assert!(err_id.len() == 36 && err_id != id, "{err_id}");
    match err {
        aws_sdk_lookoutvision::operation::create_project::CreateProjectError::ConflictException(e) => {
            assert_eq!(e.resource_id.as_deref(), Some("cookies"));
            assert_eq!(e.resource_type.as_ref().map(|t| t.as_str()), Some("PROJECT"));
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }

    // Bad names → ValidationException, nothing created.
    for bad in ["-starts-with-hyphen", "has space", "dot.name", &"a".repeat(256), "ünïcode"] {
        let err = c.create_project().project_name(bad).send().await.unwrap_err().into_service_error();
        assert!(err.is_validation_exception(), "{bad}: {err:?}");
        assert!(err.message().is_some_and(|m| !m.is_empty()));
    }
    assert!(c.create_project().project_name("a".repeat(255)).send().await.is_ok(), "255 characters are allowed");

    // Idempotency: same token and name → the same answer; same token, other name → ConflictException.
    let first = c.create_project().project_name("boards").client_token("tok-1").send().await.unwrap();
    let again = c.create_project().project_name("boards").client_token("tok-1").send().await.unwrap();
    assert_eq!(first.project_metadata, again.project_metadata);
    let err = c.create_project().project_name("other").client_token("tok-1").send().await.unwrap_err().into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    let err = c.create_project().project_name("other").client_token("bad_token!").send().await.unwrap_err().into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    // Pagination across several pages.
    for i in 0..9 {
        c.create_project().project_name(format!("line-{i}")).send().await.unwrap();
    }
    let total = 12; // cookies, a×255, boards, line-0..8
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c.list_projects().max_results(5).set_next_token(token.clone()).send().await.unwrap();
        let got = page.projects.unwrap_or_default();
        assert!(got.len() <= 5);
        names.extend(got.into_iter().map(|p| p.project_name.unwrap()));
        pages += 1;
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), total);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total, "no project listed twice: {names:?}");
    // The SDK's own paginator agrees.
    let via_paginator: Vec<_> = c.list_projects().max_results(4).into_paginator().items().send().collect::<Vec<_>>().await;
    assert_eq!(via_paginator.len(), total);
    // Default page size holds everything here.
    let all = c.list_projects().send().await.unwrap();
    assert_eq!(all.projects.unwrap().len(), total);
    assert!(all.next_token.is_none());
    for bad in [0, 101] {
        let err = c.list_projects().max_results(bad).send().await.unwrap_err().into_service_error();
        assert!(err.is_validation_exception(), "maxResults {bad}: {err:?}");
    }
    let err = c.list_projects().next_token("bm90LWEtdG9rZW4=").send().await.unwrap_err().into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    // Describe.
    let d = c.describe_project().project_name("cookies").send().await.unwrap().project_description.unwrap();
    assert_eq!(d.project_name.as_deref(), Some("cookies"));
    assert_eq!(d.datasets.unwrap_or_default().len(), 0);
    assert_eq!(d.creation_timestamp.unwrap().as_secs_f64(), created);
    let err = c.describe_project().project_name("missing").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // Delete, idempotently.
    let del = c.delete_project().project_name("cookies").client_token("del-1").send().await.unwrap();
    assert_eq!(del.project_arn.as_deref(), Some("arn:aws:lookoutvision:us-east-1:000000000000:project/cookies"));
    let del2 = c.delete_project().project_name("cookies").client_token("del-1").send().await.unwrap();
    assert_eq!(del2.project_arn, del.project_arn);
    let err = c.delete_project().project_name("cookies").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = c.describe_project().project_name("cookies").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    // The name is free again.
    c.create_project().project_name("cookies").send().await.unwrap();

    h.stop().await;
}

#[tokio::test]
async fn projects_on_sqlite() {
    projects_through_the_lfv_client(Backend::Sqlite).await;
}

#[tokio::test]
async fn projects_on_postgres() {
    projects_through_the_lfv_client(Backend::Postgres).await;
}

/// What the SDK hides: status codes, the error header and body shape, malformed input.
#[tokio::test]
async fn raw_http_error_shapes() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let r = h.api("POST", "/projects", Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-amzn-errortype"], "ValidationException");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["Message"].as_str().unwrap().contains("not valid"));

    let r = h.api("POST", "/projects", Some("application/json"), b"{}".to_vec()).await;
    assert_eq!(r.status(), 400, "missing ProjectName");

    // JSON bodies only: a form or text/plain body (what a cross-site page can send) is refused unread.
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let r = h.api("POST", "/projects", ct, br#"{"ProjectName":"smuggled"}"#.to_vec()).await;
        assert_eq!(r.status(), 400, "{ct:?}");
        assert_eq!(r.headers()["x-amzn-errortype"], "ValidationException");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["Message"].as_str().unwrap().contains("must be JSON"), "{body}");
    }
    assert_eq!(h.api("GET", "/projects/smuggled", None, Vec::new()).await.status(), 404, "nothing was created");

    let r = h.api("GET", "/projects/nope", None, Vec::new()).await;
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ResourceType"], "PROJECT");
    assert_eq!(body["ResourceId"], "nope");

    let r = h.api("GET", "/projects?maxResults=abc", None, Vec::new()).await;
    assert_eq!(r.status(), 400);

    let r = h.api("GET", "/no-such-operation", None, Vec::new()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-amzn-errortype"], "UnknownOperationException");

    // Concurrent creates of one name: exactly one wins, the rest conflict; nothing is lost or doubled.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = h.client.clone();
        tasks.push(tokio::spawn(async move { c.create_project().project_name("race").send().await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.into_service_error().is_conflict_exception()),
        }
    }
    assert_eq!(ok, 1);
    h.stop().await;
}

/// The console is rendered on the server with the projects from the database.
#[tokio::test]
async fn console_renders_projects() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    h.client.create_project().project_name("rendered-here").send().await.unwrap();
    let html = h.http().get(format!("{}/projects", h.base)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<nav"), "layout with navigation");
    assert!(html.contains("rendered-here"), "project listed in the server-rendered page");
    assert!(html.contains("/pkg/vigil"), "hydration scripts referenced");
    let html = h.http().get(format!("{}/projects/rendered-here", h.base)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("arn:aws:lookoutvision:us-east-1:000000000000:project/rendered-here"));
    let html = h.http().get(format!("{}/dashboard", h.base)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Dashboard"));
    h.stop().await;
}
