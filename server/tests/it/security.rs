//! No way in through imports: disk imports only under the import root (symbolic links resolved, outside and
//! missing alike), per-import S3 endpoints only from the allow-list, never a metadata address, never with the
//! server's own credentials.

use crate::common;

use app::api::{Backend, S3Connection};
use common::{Backend as Db, Harness};
use vigil::console::ConsoleBackend;

#[tokio::test]
async fn disk_imports_stay_under_the_root() {
    let h = Harness::start(Db::Sqlite).await.unwrap();
    let con = ConsoleBackend { state: h.running.as_ref().unwrap().state.clone() };
    h.client.create_project().project_name("p").send().await.unwrap();
    // The harness's root is the temporary folder; /usr is outside it, a link inside it points out.
    let inside = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/usr", inside.path().join("out")).unwrap();
    let outside = con.import_s3("p", "train", "/usr", "folder", S3Connection::default()).await.unwrap_err();
    let missing = con.import_s3("p", "train", &format!("{}/nope", inside.path().display()), "folder", S3Connection::default()).await.unwrap_err();
    assert_eq!(outside.status, 400);
    assert_eq!(missing.status, 400, "a missing folder answers like one outside the root");
    #[cfg(unix)]
    {
        let linked = con.import_s3("p", "train", &format!("{}/out", inside.path().display()), "folder", S3Connection::default()).await.unwrap_err();
        assert_eq!(linked.status, 400, "a link out of the root is outside it");
    }
    assert!(h.client.describe_project().project_name("p").send().await.unwrap().project_description().unwrap().datasets().is_empty());
    h.stop().await;
}

#[test]
fn disk_imports_are_off_without_a_root() {
    assert!(vigil::config::Config::defaults().import_root.is_none(), "off by default");
    let e = vigil::security::import_dir(None, std::path::Path::new("/tmp")).unwrap_err();
    assert_eq!(e.status(), 403);
}

#[tokio::test]
async fn per_import_endpoints_are_checked() {
    let mut config = vigil::config::Config::defaults();
    config.s3.endpoint = Some("http://127.0.0.1:9000".into());
    config.s3.access_key_id = Some("server-key".into());
    config.s3.secret_access_key = Some("server-secret".into());
    config.s3_allowed_endpoints = vec!["http://127.0.0.1:9100".into(), "http://169.254.169.254".into()];
    let conn = |endpoint: &str, key: &str| S3Connection {
        endpoint: endpoint.into(),
        access_key_id: key.into(),
        secret_access_key: if key.is_empty() { String::new() } else { "s".into() },
        ..Default::default()
    };
    // Not on the list.
    let e = vigil::security::s3_override(&config, &conn("http://evil.example:9000", "k")).await.unwrap_err();
    assert_eq!(e.status(), 403);
    // Listed, but a metadata address.
    let e = vigil::security::s3_override(&config, &conn("http://169.254.169.254", "k")).await.unwrap_err();
    assert_eq!(e.status(), 403);
    // Listed, without credentials: the server's are not sent there.
    let e = vigil::security::s3_override(&config, &conn("http://127.0.0.1:9100", "")).await.unwrap_err();
    assert_eq!(e.status(), 400);
    let s = vigil::security::s3_override(&config, &conn("http://127.0.0.1:9100", "k")).await.unwrap().unwrap();
    assert_eq!((s.access_key_id.as_deref(), s.secret_access_key.as_deref()), (Some("k"), Some("s")));
    // The configured endpoint keeps the server's credentials.
    let s = vigil::security::s3_override(&config, &conn("http://127.0.0.1:9000/", "")).await.unwrap().unwrap();
    assert_eq!(s.access_key_id.as_deref(), Some("server-key"));
}

#[test]
fn per_import_secrets_are_sealed_in_job_specs() {
    let settings = vigil::s3::S3Settings { secret_access_key: Some("very-secret".into()), ..Default::default() };
    let json = serde_json::to_string(&settings).unwrap();
    assert!(!json.contains("very-secret"), "{json}");
    let back: vigil::s3::S3Settings = serde_json::from_str(&json).unwrap();
    assert_eq!(back.secret_access_key.as_deref(), Some("very-secret"));
}

/// Static files are always sent whole: a browser revalidating its cached WASM bundle (`If-Modified-Since`,
/// `If-None-Match`) gets the file, never the console's 404 page (which left the page without its WASM).
#[tokio::test]
async fn static_files_answer_conditional_requests_with_the_file() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/vigil.js"), b"console.log('vigil');").unwrap();
    let root = site.path().display().to_string();
    let h = Harness::start_tuned(Db::Sqlite, None, |c| c.site_root = root).await.unwrap();
    let url = format!("{}/pkg/vigil.js", h.base);
    let plain = reqwest::get(&url).await.unwrap();
    assert_eq!(plain.status(), 200);
    let modified = plain.headers().get("last-modified").cloned();
    let client = reqwest::Client::new();
    let mut revalidate = client.get(&url).header("if-modified-since", "Wed, 01 Jan 2098 00:00:00 GMT");
    if let Some(m) = modified {
        revalidate = revalidate.header("if-modified-since", m);
    }
    for r in [revalidate, client.get(&url).header("if-none-match", "\"anything\"")] {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "console.log('vigil');");
    }
    assert_eq!(reqwest::get(format!("{}/pkg/missing.js", h.base)).await.unwrap().status(), 404);
    h.stop().await;
}

/// `n` connections that each send a DetectAnomalies request's head (signed with the bootstrap key, or not) and the
/// first kilobyte of its `body`, then nothing more: held open for as long as the streams live.
async fn partial_uploads(addr: &str, path: &str, body: &[u8], n: usize, signed: bool) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let url = format!("http://{addr}{path}");
    let mut out = Vec::new();
    for _ in 0..n {
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: image/png\r\ncontent-length: {}\r\n", body.len());
        if signed {
            let headers = common::sigv4_headers(common::API_KEY, common::API_SECRET, "POST", &url, &[("content-type", "image/png")], body, std::time::SystemTime::now());
            for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..1024]).await.unwrap();
        out.push(s);
    }
    out
}

/// A flood of DetectAnomalies bodies cannot run the server out of memory: beyond
/// `MAX_DETECT_IN_FLIGHT` requests being received at once, the next is throttled before its body is read, and
/// the room comes back as the requests end.
#[tokio::test]
async fn detect_requests_beyond_the_in_flight_limit_are_throttled_unread() {
    let h = Harness::start(Db::Sqlite).await.unwrap();
    let state = h.running.as_ref().unwrap().state.clone();
    let max = vigil::models::hosting::MAX_DETECT_IN_FLIGHT;
    let addr = h.base.trim_start_matches("http://").to_string();
    let path = "/2020-11-20/projects/p/models/1/detect";
    // Each request announces a 1 MiB signed body and sends only its first kilobyte, so the server holds it open.
    let body = vec![7u8; 1 << 20];
    let held = partial_uploads(&addr, path, &body, max, true).await;
    let wait_for = |permits: usize| {
        let state = state.clone();
        async move {
            for _ in 0..500 {
                if state.hosting.in_flight.available_permits() == permits {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("{} permits free, expected {permits}", state.hosting.in_flight.available_permits());
        }
    };
    wait_for(0).await;
    let r = h.api("POST", "/projects/p/models/1/detect", Some("image/png"), vec![1, 2, 3]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-amzn-errortype"], "ThrottlingException");
    assert_eq!(r.headers()["retry-after"], "1");
    // Other operations are not held up by the flood.
    assert!(h.client.list_projects().send().await.is_ok());
    drop(held);
    wait_for(max).await;
    let r = h.api("POST", "/projects/p/models/1/detect", Some("image/png"), vec![1, 2, 3]).await;
    assert_eq!(r.status(), 404, "room again: the request reaches the API, which has no such project");
    // Unsigned senders, however slow and however many, take no slot: they are refused before any body is read.
    let unsigned = partial_uploads(&addr, path, &body, max + 8, false).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(state.hosting.in_flight.available_permits(), max);
    let r = h.api("POST", "/projects/p/models/1/detect", Some("image/png"), vec![1, 2, 3]).await;
    assert_eq!(r.status(), 404, "signed callers are not held up by unsigned ones");
    drop(unsigned);
    // Stalled senders lose their slots: a body that stops arriving for 5 s is answered 408 and the slot freed,
    // while the connections are still open.
    let stalled = partial_uploads(&addr, path, &body, max, true).await;
    wait_for(0).await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    wait_for(max).await;
    drop(stalled);
    h.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let h = Harness::start(Db::Sqlite).await.unwrap();
    let page = reqwest::get(format!("{}/signin", h.base)).await.unwrap();
    let api = reqwest::get(format!("{}/2020-11-20/projects", h.base)).await.unwrap();
    assert_eq!(api.status(), 403, "unsigned");
    for r in [&page, &api] {
        let hd = r.headers();
        assert_eq!(hd["x-content-type-options"], "nosniff");
        assert_eq!(hd["x-frame-options"], "DENY");
        assert_eq!(hd["referrer-policy"], "same-origin");
        assert!(hd["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(hd["x-amzn-requestid"].len(), 36, "the request id too");
    }
    h.stop().await;
}
