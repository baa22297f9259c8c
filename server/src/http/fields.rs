//! Request fields checked against the patterns of LFV's API model (`service-2.json`) before any lookup, so
//! what LFV refused with a `ValidationException` Vigil refuses the same way.

use super::error::ApiError;

/// `S3KeyPrefix` / `S3ObjectKey`: `^([a-zA-Z0-9!_.*'()-][/a-zA-Z0-9!_.*'()-]*)?$` (no spaces, no leading `/`).
pub fn is_s3_key(key: &str) -> bool {
    key.len() <= 1024 && key.chars().enumerate().all(|(i, c)| c.is_ascii_alphanumeric() || "!_.*'()-".contains(c) || (i > 0 && c == '/'))
}

/// `ModelDescriptionMessage`: 1–500 of `[0-9A-Za-z.\-_]`.
pub fn check_model_description(d: &str) -> Result<(), ApiError> {
    let n = d.chars().count();
    if !(1..=500).contains(&n) || !d.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        return Err(ApiError::Validation(
            "Description must have 1-500 letters, digits, periods, hyphens or underscores (LFV's pattern [0-9A-Za-z.-_]*).".into(),
        ));
    }
    Ok(())
}

/// `TagKey` / `TagValue`: letters, digits, Unicode separators (a space, not a TAB or newline) and `_.:/=+-@`.
pub fn is_tag_text(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || is_separator(c) || "_.:/=+-@".contains(c))
}

/// Unicode's separator categories (`\p{Z}`: Zs, Zl, Zp).
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_lfv() {
        assert!(is_s3_key("manifests/train.manifest") && is_s3_key(""));
        assert!(!is_s3_key("my manifests/train.manifest") && !is_s3_key("/abs") && !is_s3_key("a\tb"));
        assert!(check_model_description("first-model_v1.2").is_ok());
        assert!(check_model_description("first model").is_err() && check_model_description("").is_err());
        assert!(check_model_description(&"a".repeat(501)).is_err());
        assert!(is_tag_text("line 3") && is_tag_text("a:b/c=d+e-f@g") && is_tag_text("Straße\u{3000}東京"));
        assert!(!is_tag_text("a\tb") && !is_tag_text("a\nb") && !is_tag_text("<x>"));
    }
}
