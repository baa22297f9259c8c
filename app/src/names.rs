//! Name rules shared by the console (inline validation) and the API (authoritative checks).
//!
//! The rules are LFV's, from the service model: `ProjectName` is 1–255 characters matching
//! `[a-zA-Z0-9][a-zA-Z0-9_\-]*`.

/// Longest project name LFV accepts.
pub const PROJECT_NAME_MAX: usize = 255;

/// Checks a project name; the error is a sentence a person can act on.
pub fn validate_project_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Enter a project name.".into());
    }
    if name.len() > PROJECT_NAME_MAX {
        return Err(format!(
            "A project name can have at most {PROJECT_NAME_MAX} characters (this one has {}).",
            name.chars().count()
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or_default();
    if !first.is_ascii_alphanumeric() {
        return Err("A project name must start with a letter or a digit.".into());
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!(
            "A project name can contain only letters, digits, hyphens and underscores (found {bad:?})."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lfv_names() {
        for ok in ["a", "Z", "0", "cookies", "circuit-board_v2", "A-", "9_"] {
            assert_eq!(validate_project_name(ok), Ok(()), "{ok}");
        }
        assert!(validate_project_name(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        assert!(validate_project_name("").is_err());
        assert!(validate_project_name(&"a".repeat(256)).is_err());
        for bad in ["-a", "_a", "a b", "a.b", "a/b", "é", "ab\u{e9}", " a", "a\n"] {
            assert!(validate_project_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert!(validate_project_name("-x").unwrap_err().contains("start with"));
        assert!(validate_project_name("x y").unwrap_err().contains("' '"));
    }
}
