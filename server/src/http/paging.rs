//! Pagination: `maxResults` checks and opaque `NextToken`s.
//!
//! A token is base64 of `kind:created_at:id`, the key of the last item returned, so a page continues after it
//! even when items are added or deleted in between (keyset pagination). The alphabet of standard base64 is
//! exactly LFV's `^[a-zA-Z0-9\/\+\=]{0,2048}$`.

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

pub fn encode(kind: &str, cursor: &Cursor) -> String {
    STANDARD.encode(format!("{kind}:{}:{}", cursor.created_at, cursor.id))
}

/// Decodes a token made by `encode` with the same `kind`; anything else is a `ValidationException`.
pub fn decode(kind: &str, token: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::Validation("The pagination token is invalid.".into());
    if token.len() > 2048 {
        return Err(invalid());
    }
    let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, ':');
    let (Some(k), Some(created), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if k != kind || id.is_empty() {
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
    }
}
