//! Who may call Vigil: SigV4 on the LFV API (through the Rust SDK and hand-signed requests), access keys
//! issued to console users, and the console's sessions, sign-in and Origin check.

use crate::common;

use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use common::{sigv4_headers, Backend, Harness, ADMIN_PASSWORD, API_KEY, API_SECRET};
use std::time::{Duration, Instant, SystemTime};

/// The error code and status of a failed SDK call.
fn sdk_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, aws_sdk_lookoutvision::error::SdkError<E, aws_sdk_lookoutvision::config::http::HttpResponse>>,
) -> (String, u16) {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
            (e.code().unwrap_or_default().to_string(), status)
        }
    }
}

async fn project_names(h: &Harness) -> Vec<String> {
    let out = h.client.list_projects().send().await.unwrap();
    out.projects().iter().filter_map(|p| p.project_name().map(str::to_string)).collect()
}

/// Sends a request with the given headers (already signed, or not).
async fn send(h: &Harness, method: &str, path: &str, headers: &[(String, String)], body: Vec<u8>) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", h.base)).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

/// The status of a GET sent byte for byte (no client normalises its path), with the given headers.
async fn raw_status(h: &Harness, path: &str, headers: &[(String, String)]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = h.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn refusal(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let code = r.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, code, body["Message"].as_str().unwrap_or_default().to_string())
}

fn signed(method: &str, url: &str, content_type: Option<&str>, body: &[u8], time: SystemTime, key: &str, secret: &str) -> Vec<(String, String)> {
    let extra: Vec<(&str, &str)> = content_type.map(|c| vec![("content-type", c)]).unwrap_or_default();
    let mut out: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    out.extend(sigv4_headers(key, secret, method, url, &extra, body, time));
    out
}

#[tokio::test]
async fn sdk_signatures_are_verified() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    h.client.create_project().project_name("signed").send().await.unwrap();

    let wrong_secret = h.client_with(API_KEY, "not-the-secret");
    let r = wrong_secret.create_project().project_name("wrong-secret").send().await;
    assert_eq!(sdk_error(r), ("InvalidSignatureException".to_string(), 403));
    let unknown = h.client_with("AKIDUNKNOWN", API_SECRET);
    let r = unknown.create_project().project_name("unknown-key").send().await;
    assert_eq!(sdk_error(r), ("UnrecognizedClientException".to_string(), 403));
    let r = unknown.list_projects().send().await;
    assert_eq!(sdk_error(r).0, "UnrecognizedClientException");
    assert_eq!(project_names(&h).await, vec!["signed"], "refused calls changed nothing");
    h.stop().await;
}

#[tokio::test]
async fn hand_signed_requests() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let now = SystemTime::now();
    let url = |p: &str| format!("{}{p}", h.base);

    // Unsigned: refused, nothing created.
    let r = send(&h, "GET", "/2020-11-20/projects", &[], vec![]).await;
    assert_eq!(refusal(r).await, (403, "MissingAuthenticationTokenException".into(), "Missing Authentication Token".into()));
    let body = br#"{"ProjectName":"unsigned"}"#.to_vec();
    let ct = [("content-type".to_string(), "application/json".to_string())];
    let (status, code, _) = refusal(send(&h, "POST", "/2020-11-20/projects", &ct, body).await).await;
    assert_eq!((status, code.as_str()), (403, "MissingAuthenticationTokenException"));

    // Signed: created.
    let body = br#"{"ProjectName":"hand-signed"}"#.to_vec();
    let headers = signed("POST", &url("/2020-11-20/projects"), Some("application/json"), &body, now, API_KEY, API_SECRET);
    let r = send(&h, "POST", "/2020-11-20/projects", &headers, body.clone()).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // The same signature over another body (tampered in transit): refused.
    let tampered = br#"{"ProjectName":"tampered"}"#.to_vec();
    let (status, code, _) = refusal(send(&h, "POST", "/2020-11-20/projects", &headers, tampered.clone()).await).await;
    assert_eq!((status, code.as_str()), (403, "InvalidSignatureException"));
    // ... also when it claims the original body's hash: a hash header the signature does not cover is refused.
    let mut claimed = headers.clone();
    claimed.push(("x-amz-content-sha256".into(), vigil::auth::sigv4::sha256_hex(&body)));
    let (status, code, message) = refusal(send(&h, "POST", "/2020-11-20/projects", &claimed, tampered).await).await;
    assert_eq!((status, code.as_str()), (403, "IncompleteSignatureException"), "{message}");
    assert!(message.contains("x-amz-content-sha256"), "{message}");

    // A stale date (20 minutes ago, correctly signed): expired.
    let body = br#"{"ProjectName":"stale"}"#.to_vec();
    let old = now - Duration::from_secs(20 * 60);
    let headers = signed("POST", &url("/2020-11-20/projects"), Some("application/json"), &body, old, API_KEY, API_SECRET);
    let (status, code, message) = refusal(send(&h, "POST", "/2020-11-20/projects", &headers, body).await).await;
    assert_eq!((status, code.as_str()), (403, "InvalidSignatureException"));
    assert!(message.starts_with("Signature expired:"), "{message}");

    // Wrong secret, unknown key, malformed header.
    let body = br#"{"ProjectName":"wrong"}"#.to_vec();
    let headers = signed("POST", &url("/2020-11-20/projects"), Some("application/json"), &body, now, API_KEY, "nope");
    assert_eq!(refusal(send(&h, "POST", "/2020-11-20/projects", &headers, body.clone()).await).await.1, "InvalidSignatureException");
    let headers = signed("POST", &url("/2020-11-20/projects"), Some("application/json"), &body, now, "AKIDNOBODY", API_SECRET);
    assert_eq!(refusal(send(&h, "POST", "/2020-11-20/projects", &headers, body.clone()).await).await.1, "UnrecognizedClientException");
    let bad = [("authorization".to_string(), "AWS4-HMAC-SHA256 Credential=x".to_string()), ("x-amz-date".to_string(), "20261201T000000Z".to_string())];
    assert_eq!(refusal(send(&h, "POST", "/2020-11-20/projects", &bad, body).await).await.1, "IncompleteSignatureException");

    // Repeated query keys, a percent-encoded ARN in the path, a binary body: the signature passes (what
    // follows is the API's own answer, not a 403).
    for (method, path, body) in [
        ("GET", "/2020-11-20/projects?maxResults=2&maxResults=1&nextToken=a%2Bb", vec![]),
        ("GET", "/2020-11-20/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A000000000000%3Aproject%2Fhand-signed", vec![]),
        ("POST", "/2020-11-20/projects/hand-signed/models/1/detect", (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>()),
    ] {
        let ct = if body.is_empty() { None } else { Some("image/png") };
        let headers = signed(method, &url(path), ct, &body, now, API_KEY, API_SECRET);
        let r = send(&h, method, path, &headers, body).await;
        assert_ne!(r.status(), 403, "{path}: {:?}", refusal(r).await);
    }
    assert_eq!(project_names(&h).await, vec!["hand-signed"], "only the correctly signed create happened");
    h.stop().await;
}

#[tokio::test]
async fn issued_access_keys_sign_until_revoked() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let state = h.running.as_ref().unwrap().state.clone();
    let mut conn = state.db.pool.acquire().await.unwrap();
    let (admin, _) = vigil::auth::users::find_with_hash(&mut conn, "admin").await.unwrap().unwrap();
    let (id, secret) = vigil::auth::keys::create(&mut conn, state.auth.sealer(), &admin.id, "tests", None).await.unwrap();
    let (stored,): (String,) = sqlx::query_as("select secret from access_key where id = $1").bind(&id).fetch_one(&mut *conn).await.unwrap();
    assert!(!stored.contains(&secret), "the secret is not stored in plain text");
    let c = h.client_with(&id, &secret);
    c.create_project().project_name("with-issued-key").send().await.unwrap();
    assert!(vigil::auth::keys::revoke(&mut conn, &id, None).await.unwrap());
    state.auth.forget(&id);
    let r = c.list_projects().send().await;
    assert_eq!(sdk_error(r).0, "UnrecognizedClientException");
    drop(conn);
    h.stop().await;
}

#[tokio::test]
async fn console_needs_a_session() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Pages redirect to the sign-in page; server functions and endpoints answer 401.
    let r = anon.get(format!("{}/projects?x=1", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin?next=%2Fprojects%3Fx%3D1");
    assert_eq!(anon.get(format!("{}/signin", h.base)).send().await.unwrap().status(), 200);
    let hash = "a".repeat(64);
    assert_eq!(anon.get(format!("{}/media/{hash}", h.base)).send().await.unwrap().status(), 401);
    assert_eq!(anon.get(format!("{}/export/p/train.zip", h.base)).send().await.unwrap().status(), 401);
    assert_eq!(anon.post(format!("{}/import/p/train?name=a.zip", h.base)).body("x").send().await.unwrap().status(), 401);
    let r = anon.post(format!("{}/api/list_projects", h.base)).header("content-type", "application/x-www-form-urlencoded").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Sign-in: a wrong password goes back to the form, the right one opens a session.
    let form = |pw: &str| vec![("name", "admin".to_string()), ("password", pw.to_string()), ("next", "/projects".to_string())];
    let r = anon.post(format!("{}/auth/signin", h.base)).form(&form("wrong-password")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/signin?error=1"));
    assert!(r.headers().get("set-cookie").is_none());
    let r = anon.post(format!("{}/auth/signin", h.base)).form(&form(ADMIN_PASSWORD)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/projects");
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let r = anon.get(format!("{}/projects", h.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("admin"), "the signed-in user is named on the page");

    // A cross-origin POST with the session is refused, and changes nothing.
    let r = anon
        .post(format!("{}/api/create_project", h.base))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("name", "cross-site")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(project_names(&h).await.is_empty());

    // Sign-out ends the session.
    let r = anon.post(format!("{}/auth/signout", h.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(anon.get(format!("{}/projects", h.base)).header("cookie", &cookie).send().await.unwrap().status(), 303);
    h.stop().await;
}

#[tokio::test]
async fn wrong_methods_and_oversized_bodies_get_lfv_errors() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    // A known path with a method it does not take: 405 in LFV's shape.
    let r = h.api("DELETE", "/projects", None, Vec::new()).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["x-amzn-errortype"], "UnknownOperationException");
    assert!(refusal(r).await.2.contains("DELETE"));

    // A body over the limit (signed headers of a valid key, so the size is what is refused): 413, unread.
    let big = vec![b' '; vigil::MAX_BODY_BYTES + 1];
    let url = format!("{}/2020-11-20/projects", h.base);
    let headers = signed("POST", &url, Some("application/json"), b"{}", SystemTime::now(), API_KEY, API_SECRET);
    let (status, code, _) = refusal(send(&h, "POST", "/2020-11-20/projects", &headers, big.clone()).await).await;
    assert_eq!((status, code.as_str()), (413, "ValidationException"));
    // Each operation has its own cap, far below the console's: a 3 MiB CreateProject is refused, unread.
    let json = vec![b' '; 3 * 1024 * 1024];
    let (status, code, _) = refusal(send(&h, "POST", "/2020-11-20/projects", &headers, json).await).await;
    assert_eq!((status, code.as_str()), (413, "ValidationException"));
    assert_eq!(vigil::http::auth::body_limit("POST", "/2020-11-20/projects/p/models/1/detect"), 16 * 1024 * 1024);
    assert_eq!(vigil::http::auth::body_limit("PATCH", "/2020-11-20/projects/p/datasets/train/entries"), 16 * 1024 * 1024);
    // A signature made for one path is not accepted for its `/./`, `/../` or `//` variants.
    // (Sent over a raw connection: HTTP clients normalise such paths themselves.)
    let signed_for = format!("{}/2020-11-20/projects", h.base);
    let headers = signed("GET", &signed_for, None, b"", SystemTime::now(), API_KEY, API_SECRET);
    assert_eq!(raw_status(&h, "/2020-11-20/projects", &headers).await, 200, "the path it was signed for");
    for variant in ["/2020-11-20/./projects", "/2020-11-20//projects", "/2020-11-20/x/../projects", "/2020-11-20/%2e/projects"] {
        assert_eq!(raw_status(&h, variant, &headers).await, 400, "{variant}");
    }
    assert!(vigil::http::auth::is_normal_path("/2020-11-20/projects/p/models/1/detect"));
    assert!(vigil::http::auth::is_normal_path("/2020-11-20/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A0%3Amodel%2Fp%2F1"));
    // The sign-in form is open to anyone: more than 16 KiB is refused before it is read.
    let r = reqwest::Client::new()
        .post(format!("{}/auth/signin", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=admin&password={}", "x".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The console: refused on its declared length, before a server function reads it.
    let r = h.http().post(format!("{}/api/upload_images", h.base)).header("content-type", "multipart/form-data; boundary=x").body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    h.stop().await;
}

/// A painted mask whose header claims 8000×8000 px (256 MB, under the decoder's default allocation cap) is refused on the header, before decoding allocates.
#[test]
fn mask_bombs_are_refused_before_decoding() {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&8_000u32.to_be_bytes());
    ihdr.extend_from_slice(&8_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IEND", &[]);
    let classes = [vigil::datasets::manifest::MaskColor { name: "crack".into(), color: [255, 0, 0] }];
    let err = vigil::datasets::mask::normalize_painted(&png, &classes).unwrap_err();
    assert!(err.to_lowercase().contains("limit"), "{err}");
}

/// The cost of verifying one signature (canonical request, string to sign, HMAC with a cached signing key),
/// and of deriving a signing key (once per key, day and region). Printed, not asserted.
#[test]
fn signature_verification_cost() {
    use vigil::auth::sigv4;
    let url = "http://127.0.0.1:3000/2020-11-20/projects/cookies/datasets/train/entries?maxResults=20&labeled=true";
    let body = b"";
    let signed = sigv4_headers(API_KEY, API_SECRET, "GET", url, &[("content-type", "application/json")], body, SystemTime::now());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", "127.0.0.1:3000".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in &signed {
        headers.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let auth_value = headers["authorization"].to_str().unwrap().to_string();
    let amz_date = headers["x-amz-date"].to_str().unwrap().to_string();
    let auth = sigv4::parse_authorization(&auth_value).unwrap();
    let key = sigv4::signing_key(API_SECRET, auth.date, auth.region).unwrap();
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        let auth = sigv4::parse_authorization(&auth_value).unwrap();
        let payload = sigv4::sha256_hex(body);
        let creq = sigv4::canonical_request("GET", "/2020-11-20/projects/cookies/datasets/train/entries", Some("maxResults=20&labeled=true"), &headers, None, &auth, &payload).unwrap();
        let sts = sigv4::string_to_sign(&amz_date, &auth.scope(), &creq);
        assert!(sigv4::signature_matches(&key, &sts, auth.signature));
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(sigv4::signing_key(API_SECRET, auth.date, auth.region));
    }
    let derive_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("SigV4 verification: {verify_us:.1} µs per request with a cached signing key; deriving a signing key: {derive_us:.1} µs ({} build)",
        if cfg!(debug_assertions) { "debug" } else { "release" });
}

/// `vigil admin reset-password`: from the server's shell, a user gets a new password and loses their sessions.
#[tokio::test]
async fn reset_password_from_the_shell() {
    let url = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = url.clone();
    let h = Harness::start_tuned(Backend::Sqlite, None, move |c| *seen.lock().unwrap() = c.database_url.clone()).await.unwrap();
    let url = url.lock().unwrap().clone();
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |pw: &str| {
        let form = vec![("name", "admin".to_string()), ("password", pw.to_string()), ("next", "/projects".to_string())];
        anon.post(format!("{}/auth/signin", h.base)).form(&form).send()
    };
    let cookie_of = |r: &reqwest::Response| r.headers().get("set-cookie").map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    let before = cookie_of(&sign_in(ADMIN_PASSWORD).await.unwrap()).expect("signed in");
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(vigil)
            .args(["admin", "reset-password"])
            .args(args)
            .env("DATABASE_URL", &url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };

    // An unknown user and a too-short password are refused, saying why; nothing changes.
    let out = run(&["nobody"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("users: admin"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["--password-stdin"], "short\n");
    assert!(!out.status.success());
    assert!(sign_in(ADMIN_PASSWORD).await.unwrap().headers().get("set-cookie").is_some());

    // A generated password: printed, it signs in; the old password and the old session no longer work.
    let out = run(&[], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let new = text.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    assert_eq!(new.len(), 20, "{text}");
    assert!(sign_in(ADMIN_PASSWORD).await.unwrap().headers().get("set-cookie").is_none());
    assert_eq!(anon.get(format!("{}/projects", h.base)).header("cookie", &before).send().await.unwrap().status(), 303);
    assert!(cookie_of(&sign_in(&new).await.unwrap()).is_some());

    // One read from standard input.
    let out = run(&["admin", "--password-stdin"], "a-chosen-password-123\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cookie_of(&sign_in("a-chosen-password-123").await.unwrap()).is_some());
    h.stop().await;
}
