//! The SigV4 `Authorization` header parser, the `X-Amz-Date` parser and the canonical request built from a path
//! and a query — everything SigV4 verification reads from a request before it knows whether the caller is anyone.
//! Input: `header \n date \n path \n query`; none may panic, whatever the bytes.
#![no_main]

#[path = "../../src/auth/sigv4.rs"]
#[allow(dead_code)]
mod sigv4;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\n');
    let (header, date, path, query) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("/"), parts.next());
    let _ = sigv4::parse_amz_date(date);
    let _ = sigv4::canonical_uri(path);
    let _ = sigv4::canonical_query(query);
    if let Ok(auth) = sigv4::parse_authorization(header) {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", http::HeaderValue::from_static("127.0.0.1:3000"));
        if let Ok(v) = http::HeaderValue::from_str(date) {
            headers.insert("x-amz-date", v);
        }
        let _ = auth.scope();
        if let Ok(creq) = sigv4::canonical_request("POST", path, query, &headers, None, &auth, &sigv4::sha256_hex(b"")) {
            let sts = sigv4::string_to_sign(date, &auth.scope(), &creq);
            let _ = sigv4::signature_matches(&[0u8; 32], &sts, auth.signature);
        }
    }
});
