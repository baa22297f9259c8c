//! Pagination: `maxResults` checks and opaque `NextToken`s.
//!
//! A token carries `created_at:id`, the key of the last item returned, so a page continues after it even when
//! items are added or deleted in between (keyset pagination). It is sealed with the server key
//! (ChaCha20-Poly1305) for its *scope* — the operation, its parent and its filters — so a token cannot be
//! forged, read, or reused with another operation, project, dataset or filter: any of those is a
//! `ValidationException`. It is standard base64, whose alphabet is exactly LFV's `^[a-zA-Z0-9\/\+\=]{0,2048}$`.

use super::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub const MAX_PAGE: i64 = 100;

/// Parses `maxResults`: 1–100, default 100.
pub fn page_size(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(MAX_PAGE) };
    let n: i64 = raw
        .parse()
        .map_err(|_| ApiError::Validation(format!("maxResults must be a whole number from 1 to {MAX_PAGE}, not {raw:?}.")))?;
    if !(1..=MAX_PAGE).contains(&n) {
        return Err(ApiError::Validation(format!("maxResults must be from 1 to {MAX_PAGE}, not {n}.")));
    }
    Ok(n)
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

fn purpose(scope: &str) -> String {
    format!("next-token:{scope}")
}

/// A token for the page after `cursor`, valid only for `scope` (e.g. `ListModels\ncookies`).
pub fn encode(scope: &str, cursor: &Cursor) -> String {
    let plain = format!("{}:{}", cursor.created_at, cursor.id);
    STANDARD.encode(crate::auth::secretbox::process_key().seal_bytes(&purpose(scope), plain.as_bytes()))
}

/// Opens a token made by `encode` for the same `scope`; anything else is a `ValidationException`.
pub fn decode(scope: &str, token: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::Validation("The pagination token is invalid: pass the NextToken of the previous page of the same call.".into());
    if token.len() > 2048 {
        return Err(invalid());
    }
    let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
    let plain = crate::auth::secretbox::process_key().open_bytes(&purpose(scope), &bytes).map_err(|_| invalid())?;
    let text = String::from_utf8(plain).map_err(|_| invalid())?;
    let (Some(created), Some(id)) = text.split_once(':').map_or((None, None), |(a, b)| (Some(a), Some(b))) else {
        return Err(invalid());
    };
    if id.is_empty() {
        return Err(invalid());
    }
    let created_at = created.parse().map_err(|_| invalid())?;
    Ok(Cursor { created_at, id: id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(None).unwrap(), 100);
        assert_eq!(page_size(Some("1")).unwrap(), 1);
        assert_eq!(page_size(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", "", "1.5"] {
            assert!(matches!(page_size(Some(bad)), Err(ApiError::Validation(_))), "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip_and_fit_lfv_pattern() {
        let c = Cursor { created_at: 1_764_000_000_123, id: "ab12".into() };
        let t = encode("project", &c);
        assert!(t.chars().all(|ch| ch.is_ascii_alphanumeric() || "/+=".contains(ch)));
        assert_eq!(decode("project", &t).unwrap(), c);
    }

    #[test]
    fn foreign_or_broken_tokens_are_refused() {
        let t = encode("model", &Cursor { created_at: 1, id: "x".into() });
        assert!(decode("project", &t).is_err());
        for bad in ["", "!!!", "bm90LWEtdG9rZW4=", &"A".repeat(2052)] {
            assert!(matches!(decode("project", bad), Err(ApiError::Validation(_))), "{bad}");
        }
        // A token as the previous (unsigned) format wrote it, or one with a byte changed, does not open.
        assert!(decode("project", &STANDARD.encode("project:1:x")).is_err());
        let mut raw = STANDARD.decode(encode("project", &Cursor { created_at: 1, id: "x".into() })).unwrap();
        raw[20] ^= 1;
        assert!(decode("project", &STANDARD.encode(raw)).is_err());
        // The same cursor for another parent or filter is another scope.
        let t = encode("ListModels\ncookies", &Cursor { created_at: 1, id: "x".into() });
        assert!(decode("ListModels\ncandies", &t).is_err());
        assert!(decode("ListModels\ncookies", &t).is_ok());
    }
}
