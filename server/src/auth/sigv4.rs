//! AWS Signature Version 4 verification (header signatures, `AWS4-HMAC-SHA256`), as LFV's endpoint does it:
//! the canonical request is rebuilt from the request as it arrived (path double-encoded and dot-segment
//! normalised as for every non-S3 service, query pairs decoded, re-encoded and sorted, exactly the headers the
//! client listed in `SignedHeaders`, and the SHA-256 of the body), and the signature is recomputed with the
//! secret of the access key named in the credential scope. The key derivation and HMAC are `aws-sigv4`'s own
//! (`generate_signing_key`, `calculate_signature`); the tests check this module against requests signed by
//! `aws-sigv4`'s signer. Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-create-signed-request.html>.

use http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

/// The only algorithm LFV clients use.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
pub const SERVICE: &str = "lookoutvision";
/// How far a request's `X-Amz-Date` may be from the server's clock, either way (AWS: 15 minutes).
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Why a request is refused; each maps to the error AWS services send for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// An `Authorization` header that is not a complete SigV4 header.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not one Vigil issued (or it was revoked).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
    /// A well-formed request whose scope or date is wrong (expired, wrong service, ...).
    #[error("{0}")]
    Invalid(String),
}

impl SigError {
    /// The error type name AWS services send (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Incomplete(_) => "IncompleteSignatureException",
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::Mismatch | SigError::Invalid(_) => "InvalidSignatureException",
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// `yyyymmdd`
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// Lowercase header names, in the order the client gave them (sorted, by the specification).
    pub signed_headers: Vec<&'a str>,
    pub signed_headers_raw: &'a str,
    pub signature: &'a str,
}

impl Authorization<'_> {
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigError::Incomplete(format!(
            "Authorization header requires the {ALGORITHM} algorithm (Signature Version 4); got {:?}.",
            algorithm.chars().take(40).collect::<String>()
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let missing = |what: &str| SigError::Incomplete(format!("Authorization header requires '{what}' parameter. Authorization={}", value.chars().take(200).collect::<String>()));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers_raw = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(SigError::Incomplete(format!(
            "Credential should be of the form ACCESS_KEY/yyyymmdd/region/service/aws4_request; got {credential:?}."
        )));
    };
    // A key id is at most 128 letters and digits (IAM's limit), so a flood of made-up ids costs no more than it must.
    let key_ok = !access_key_id.is_empty() && access_key_id.len() <= 128 && access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
    let region_ok = !region.is_empty() && region.len() <= 64;
    if *terminator != "aws4_request" || !key_ok || !region_ok || date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigError::Incomplete(format!(
            "Credential should be of the form ACCESS_KEY/yyyymmdd/region/service/aws4_request; got {credential:?}."
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Incomplete("Signature should be 64 hexadecimal digits.".into()));
    }
    let signed_headers: Vec<&str> = signed_headers_raw.split(';').filter(|h| !h.is_empty()).collect();
    if signed_headers.is_empty() {
        return Err(missing("SignedHeaders"));
    }
    Ok(Authorization { access_key_id, date, region, service, signed_headers, signed_headers_raw, signature })
}

/// Parses `X-Amz-Date` (`yyyymmddThhmmssZ`).
pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}

fn format_amz_date(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Refuses a request date more than `MAX_SKEW_SECS` from `now`, with AWS's messages.
pub fn check_skew(request: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), SigError> {
    let skew = chrono::Duration::seconds(MAX_SKEW_SECS);
    if request < now - skew {
        return Err(SigError::Invalid(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            format_amz_date(request),
            format_amz_date(now - skew),
            format_amz_date(now)
        )));
    }
    if request > now + skew {
        return Err(SigError::Invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            format_amz_date(request),
            format_amz_date(now + skew),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Characters SigV4 leaves unencoded: `A-Z a-z 0-9 - _ . ~`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same, plus `/` (paths).
const UNRESERVED_PATH: &percent_encoding::AsciiSet = &UNRESERVED.remove(b'/');

/// The canonical URI of a non-S3 service: dot segments and empty segments removed, then the path as it was
/// sent (already percent-encoded) encoded once more, so `%3A` becomes `%253A` (what botocore and `aws-sigv4`
/// both sign).
pub fn canonical_uri(path: &str) -> String {
    let normalized = normalize_path(path);
    percent_encoding::utf8_percent_encode(&normalized, UNRESERVED_PATH).to_string()
}

/// RFC 3986 5.2.4 dot-segment removal, dropping empty segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    if !(path.contains('.') || path.contains("//")) && path.starts_with('/') {
        return path.to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if (path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..")) && !result.ends_with('/') {
        result.push('/');
    }
    result
}

/// The canonical query string: every pair decoded (`+` as a space, as `aws-sigv4` reads it), encoded with
/// SigV4's rule, sorted by name then value.
pub fn canonical_query(query: Option<&str>) -> String {
    let Some(q) = query.filter(|q| !q.is_empty()) else { return String::new() };
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| {
            (
                percent_encoding::utf8_percent_encode(&k, UNRESERVED).to_string(),
                percent_encoding::utf8_percent_encode(&v, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trims a header value and collapses inner runs of spaces to one.
fn trim_all(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let mut out = String::with_capacity(s.len());
    for (i, word) in s.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical request. `host` stands in for a `host` header an HTTP/2 client sends as `:authority`.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    host: Option<&str>,
    auth: &Authorization<'_>,
    payload_hash: &str,
) -> Result<String, SigError> {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(&canonical_uri(path));
    out.push('\n');
    out.push_str(&canonical_query(query));
    out.push('\n');
    for name in &auth.signed_headers {
        let values: Vec<String> = headers.get_all(*name).iter().map(|v| trim_all(v.as_bytes())).collect();
        let value = if values.is_empty() {
            match (*name, host) {
                ("host", Some(h)) => h.to_string(),
                _ => return Err(SigError::Mismatch),
            }
        } else {
            values.join(",")
        };
        out.push_str(name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(auth.signed_headers_raw);
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// The signing key for a secret, a `yyyymmdd` date, a region and the service (`aws-sigv4`'s derivation).
pub fn signing_key(secret: &str, date: &str, region: &str) -> Option<[u8; 32]> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    let time: std::time::SystemTime = day.and_hms_opt(0, 0, 0)?.and_utc().into();
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, time, region, SERVICE);
    key.as_ref().try_into().ok()
}

/// Compares the signature computed with `key` to the one sent, in constant time.
pub fn signature_matches(key: &[u8; 32], string_to_sign: &str, sent: &str) -> bool {
    let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    let sent = sent.to_ascii_lowercase();
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sent.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    const KEY: &str = "AKIDVIGILEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Signs like the Rust SDK does (aws-sigv4 with default settings) and returns the request's headers.
    fn aws_sign(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8], time: std::time::SystemTime) -> HeaderMap {
        let identity: Identity = Credentials::new(KEY, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let req = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        for (k, v) in instructions.headers() {
            map.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    fn verify(method: &str, path: &str, query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<(), SigError> {
        let auth = parse_authorization(headers["authorization"].to_str().unwrap())?;
        let amz_date = headers["x-amz-date"].to_str().unwrap();
        let creq = canonical_request(method, path, query, headers, None, &auth, &sha256_hex(body))?;
        let sts = string_to_sign(amz_date, &auth.scope(), &creq);
        let key = signing_key(SECRET, auth.date, auth.region).unwrap();
        if signature_matches(&key, &sts, auth.signature) { Ok(()) } else { Err(SigError::Mismatch) }
    }

    #[test]
    fn verifies_what_aws_sigv4_signs() {
        let now = std::time::SystemTime::now();
        let cases: Vec<(&str, &str, Option<&str>, Vec<u8>)> = vec![
            ("GET", "/2020-11-20/projects", None, vec![]),
            ("GET", "/2020-11-20/projects", Some("maxResults=2&nextToken=abc%2Bdef%3D%3D"), vec![]),
            // Repeated keys, unsorted, a space and reserved characters.
            ("GET", "/2020-11-20/projects/p/datasets/train/entries", Some("b=2&a=z&a=y&sourceRefContains=a%20b%2Fc&labeled=true"), vec![]),
            // A percent-encoded ARN in the path.
            ("GET", "/2020-11-20/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A000000000000%3Aproject%2Fcookies", None, vec![]),
            ("POST", "/2020-11-20/projects", None, br#"{"ProjectName":"p"}"#.to_vec()),
            // A binary body (an image).
            ("POST", "/2020-11-20/projects/p/models/1/detect", None, (0..=255u8).cycle().take(5000).collect()),
            ("DELETE", "/2020-11-20/projects/p", None, vec![]),
        ];
        for (method, path, query, body) in cases {
            let url = match query {
                Some(q) => format!("http://127.0.0.1:3000{path}?{q}"),
                None => format!("http://127.0.0.1:3000{path}"),
            };
            let headers = aws_sign(
                method,
                &url,
                &[("host", "127.0.0.1:3000"), ("content-type", "application/json"), ("x-amz-user-agent", "aws-sdk-rust")],
                &body,
                now,
            );
            verify(method, path, query, &headers, &body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            // One changed byte of the body, path or query is a mismatch.
            let mut tampered = body.clone();
            tampered.push(b' ');
            assert_eq!(verify(method, path, query, &headers, &tampered), Err(SigError::Mismatch), "{path}");
            assert_eq!(verify(method, &format!("{path}x"), query, &headers, &body), Err(SigError::Mismatch));
            assert_eq!(verify(method, path, Some("maxResults=3"), &headers, &body), Err(SigError::Mismatch));
        }
    }

    /// Signatures made by botocore 1.40.60 (`SigV4Auth.add_auth`, clock fixed at 2026-12-01 10:15:00 UTC).
    #[test]
    fn verifies_botocore_signatures() {
        let cases: [(&str, &str, Option<&str>, Option<&str>, Vec<u8>, &str, &str); 3] = [
            (
                "GET",
                "/2020-11-20/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A000000000000%3Aproject%2Fp",
                Some("b=2&a=x%20y&a=w"),
                None,
                vec![],
                "host;x-amz-date",
                "8d22e144615b1a0a50981ee2a3dab1aa926a18dc8d6ff9d4e178465696cb9e1a",
            ),
            (
                "POST",
                "/2020-11-20/projects",
                None,
                Some("application/x-amz-json-1.1"),
                br#"{"ProjectName": "p"}"#.to_vec(),
                "content-type;host;x-amz-date",
                "eebc5c2ede83fb63146babf1e15cab56537cc7c4e1cd6c3a9a84fca84c270978",
            ),
            (
                "POST",
                "/2020-11-20/projects/p/models/1/detect",
                None,
                Some("image/png"),
                (0..=255u8).collect::<Vec<u8>>().repeat(4),
                "content-type;host;x-amz-date",
                "28857778510eb6b8e000768e0f52fb42701272fc670a589504f88bc3e7c287c7",
            ),
        ];
        for (method, path, query, content_type, body, signed, signature) in cases {
            let mut headers = HeaderMap::new();
            headers.insert("host", "localhost:3000".parse().unwrap());
            headers.insert("x-amz-date", "20261201T101500Z".parse().unwrap());
            if let Some(ct) = content_type {
                headers.insert("content-type", ct.parse().unwrap());
            }
            let value = format!("{ALGORITHM} Credential={KEY}/20261201/us-east-1/lookoutvision/aws4_request, SignedHeaders={signed}, Signature={signature}");
            headers.insert("authorization", value.parse().unwrap());
            verify(method, path, query, &headers, &body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let mut other = body.clone();
            other.push(0);
            assert_eq!(verify(method, path, query, &headers, &other), Err(SigError::Mismatch));
        }
    }

    #[test]
    fn parses_and_refuses_authorization_headers() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/lookoutvision/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!((a.access_key_id, a.date, a.region, a.service), ("AKID", "20261201", "us-east-1", "lookoutvision"));
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        for bad in [
            "Basic dXNlcjpwYXNz",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/2026/us-east-1/lookoutvision/aws4_request, SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/lookoutvision/aws4_request, SignedHeaders=host, Signature=xyz",
        ] {
            assert!(matches!(parse_authorization(bad), Err(SigError::Incomplete(_))), "{bad}");
        }
    }

    #[test]
    fn clock_skew_window() {
        let now = parse_amz_date("20261201T103000Z").unwrap();
        assert!(check_skew(parse_amz_date("20261201T101500Z").unwrap(), now).is_ok());
        let e = check_skew(parse_amz_date("20261201T101459Z").unwrap(), now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Signature expired: 20261201T101459Z is now earlier than 20261201T101500Z (20261201T103000Z - 15 min.)"
        );
        assert!(check_skew(parse_amz_date("20261201T104501Z").unwrap(), now).unwrap_err().to_string().starts_with("Signature not yet current"));
    }

    #[test]
    fn paths_and_queries() {
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_uri("/x%3Ay"), "/x%253Ay");
        assert_eq!(canonical_query(Some("b=2&a=z&a=y&c")), "a=y&a=z&b=2&c=");
        assert_eq!(canonical_query(Some("k=a+b&j=%7E%2A")), "j=~%2A&k=a%20b");
    }
}
