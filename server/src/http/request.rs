//! Reading a request and writing LFV's wire forms: JSON bodies and query strings (malformed ones are a
//! `ValidationException`), and `DateTime` as epoch seconds.

use super::error::ApiError;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Parses a JSON request body; malformed JSON or a wrong field is a `ValidationException`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::Validation(format!("The request body is not valid: {e}.")))
}

/// Query string parameters; a malformed query is a `ValidationException`.
pub fn query_map(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let Some(raw) = raw else { return Ok(HashMap::new()) };
    serde_urlencoded::from_str(raw).map_err(|e| ApiError::Validation(format!("The query string is not valid: {e}.")))
}

/// Seconds since the epoch with a fraction: the rest-json wire form of LFV's `DateTime`.
pub fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
