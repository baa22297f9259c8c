//! Who may do what: IAM-shaped policies (`Effect`, `Action`, `Resource` statements, `*` and `?` wildcards,
//! explicit Deny wins, no match denies) on access keys and console roles, the presets LFV users know from AWS's
//! managed policies (full access, read only) plus a detect-only preset for a line device, and their evaluation.
//! Which action and resource a request is, is decided in `http::access`; this module knows no HTTP.

use serde_json::Value;

/// IAM's limit for a managed policy document, in characters (whitespace included).
pub const MAX_POLICY_CHARS: usize = 6144;
/// Most statements one policy may hold (well above any hand-written policy; bounds evaluation cost).
const MAX_STATEMENTS: usize = 100;
/// Most patterns in one statement's `Action` or `Resource`.
const MAX_PATTERNS: usize = 100;

/// A parsed policy. Actions are matched case-insensitively (as IAM does), resources exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    allow: bool,
    /// Lowercased action patterns (`lookoutvision:describe*`).
    actions: Vec<String>,
    resources: Vec<String>,
}

/// The outcome of evaluating a request against a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement with `"Effect": "Deny"` matched.
    ExplicitDeny,
    /// No statement allowed it.
    NoMatch,
}

impl Decision {
    pub fn allowed(self) -> bool {
        self == Decision::Allow
    }

    /// Both must allow: the first refusal, else `Allow`.
    pub fn and(self, other: Decision) -> Decision {
        if self.allowed() {
            other
        } else {
            self
        }
    }
}

/// The services whose actions a policy may name: LFV's, and Vigil's own for its REST extensions.
const SERVICES: [&str; 2] = ["lookoutvision", "vigil"];

impl Policy {
    /// Parses an IAM policy document: `{"Version"?, "Statement": statement | [statement...]}`, each statement
    /// `{"Sid"?, "Effect": "Allow" | "Deny", "Action": pattern | [pattern...], "Resource": pattern | [pattern...]}`.
    /// Conditions, principals and `NotAction`/`NotResource` are refused by name rather than ignored, so a policy
    /// never means less than its author thinks.
    pub fn parse(text: &str) -> Result<Policy, String> {
        if text.chars().count() > MAX_POLICY_CHARS {
            return Err(format!("A policy may hold at most {MAX_POLICY_CHARS} characters."));
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("The policy is not valid JSON: {e}."))?;
        let Value::Object(doc) = doc else { return Err("A policy is a JSON object with a \"Statement\".".into()) };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("A policy has no field {key:?} (Version, Id and Statement are allowed)."));
            }
        }
        if let Some(v) = doc.get("Version") {
            if !matches!(v.as_str(), Some("2012-10-17") | Some("2008-10-17")) {
                return Err("The policy's Version must be \"2012-10-17\".".into());
            }
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return Err("A policy needs a \"Statement\": one statement or a list of them.".into()),
        };
        if statements.is_empty() || statements.len() > MAX_STATEMENTS {
            return Err(format!("A policy holds 1 to {MAX_STATEMENTS} statements."));
        }
        let statements = statements.iter().enumerate().map(|(i, s)| parse_statement(s).map_err(|e| format!("Statement {}: {e}", i + 1))).collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// A policy that allows nothing.
    pub fn deny_all() -> Policy {
        Policy { statements: Vec::new() }
    }

    /// Evaluates `action` (`lookoutvision:DetectAnomalies`) on `resource` (an ARN, or `*` for calls on no
    /// particular resource such as ListProjects): explicit Deny wins, then any Allow, else no match.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        let action = action.to_ascii_lowercase();
        let mut allowed = false;
        for s in &self.statements {
            let hit = s.actions.iter().any(|p| wildcard_match(p, &action)) && s.resources.iter().any(|p| wildcard_match(p, resource));
            if hit {
                if !s.allow {
                    return Decision::ExplicitDeny;
                }
                allowed = true;
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NoMatch
        }
    }
}

fn parse_statement(s: &Value) -> Result<Statement, String> {
    let Value::Object(s) = s else { return Err("a statement is a JSON object.".into()) };
    for key in s.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "Resource" => {}
            "NotAction" | "NotResource" | "Condition" | "Principal" | "NotPrincipal" => {
                return Err(format!("{key} is not supported by Vigil; list the actions and resources to allow or deny."))
            }
            _ => return Err(format!("a statement has no field {key:?}.")),
        }
    }
    let allow = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err("Effect must be \"Allow\" or \"Deny\".".into()),
    };
    let actions = patterns(s.get("Action"), "Action")?;
    for a in &actions {
        if a != "*" {
            let (service, name) = a.split_once(':').ok_or_else(|| format!("the action {a:?} is not in the form service:Action."))?;
            if !SERVICES.contains(&service.to_ascii_lowercase().as_str()) {
                return Err(format!("the action {a:?} is not one of Vigil's (lookoutvision:… or vigil:…)."));
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?') {
                return Err(format!("the action {a:?} is not an action name."));
            }
        }
    }
    let resources = patterns(s.get("Resource"), "Resource")?;
    for r in &resources {
        if r != "*" && !r.starts_with("arn:") {
            return Err(format!("the resource {r:?} is neither \"*\" nor an ARN (arn:aws:lookoutvision:REGION:ACCOUNT:project/NAME, …:model/PROJECT/VERSION)."));
        }
    }
    Ok(Statement { allow, actions: actions.into_iter().map(|a| a.to_ascii_lowercase()).collect(), resources })
}

fn patterns(v: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| format!("{field} lists strings only.")))
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("{field} is a string or a list of strings.")),
    };
    if list.is_empty() || list.len() > MAX_PATTERNS {
        return Err(format!("{field} holds 1 to {MAX_PATTERNS} patterns."));
    }
    if let Some(bad) = list.iter().find(|p| p.is_empty() || p.len() > 2048 || p.chars().any(char::is_control)) {
        return Err(format!("{field} {bad:?} is empty, too long or holds control characters."));
    }
    Ok(list)
}

/// IAM's wildcard match: `*` any run of characters (`/` and `:` included), `?` any one character. Linear in
/// practice (the classic greedy algorithm with one backtrack point).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The policies a key can be given from the console without writing JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Every LFV and Vigil action on every resource (AWS's `AmazonLookoutVisionFullAccess`).
    FullAccess,
    /// Describe and List actions only (AWS's `AmazonLookoutVisionReadOnlyAccess`), plus Vigil's reads.
    ReadOnly,
    /// `DetectAnomalies` on the named projects' models and nothing else: a key for a camera on the line.
    DetectOnly(Vec<String>),
}

impl Preset {
    /// The preset's policy document.
    pub fn document(&self) -> String {
        let v = match self {
            Preset::FullAccess => serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["lookoutvision:*", "vigil:*"], "Resource": "*"}]
            }),
            Preset::ReadOnly => serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["lookoutvision:Describe*", "lookoutvision:List*", "vigil:Describe*", "vigil:List*", "vigil:Get*"],
                    "Resource": "*"
                }]
            }),
            Preset::DetectOnly(projects) => serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": "lookoutvision:DetectAnomalies",
                    "Resource": projects.iter().map(|p| format!("arn:aws:lookoutvision:*:*:model/{p}/*")).collect::<Vec<_>>()
                }]
            }),
        };
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// The preset a stored document is, if it is one exactly (for the Admin page's summary).
    pub fn recognise(document: &str) -> Option<Preset> {
        let doc: Value = serde_json::from_str(document).ok()?;
        for p in [Preset::FullAccess, Preset::ReadOnly] {
            if serde_json::from_str::<Value>(&p.document()).ok()? == doc {
                return Some(p);
            }
        }
        let s = doc.get("Statement")?.as_array()?;
        let [one] = s.as_slice() else { return None };
        if one.get("Effect")?.as_str()? != "Allow" || one.get("Action")?.as_str()? != "lookoutvision:DetectAnomalies" {
            return None;
        }
        let projects = one
            .get("Resource")?
            .as_array()?
            .iter()
            .map(|r| r.as_str()?.strip_prefix("arn:aws:lookoutvision:*:*:model/")?.strip_suffix("/*").map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let p = Preset::DetectOnly(projects);
        (serde_json::from_str::<Value>(&p.document()).ok()? == doc).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "arn:aws:lookoutvision:us-east-1:123456789012:model/cookies/3";
    const PROJECT: &str = "arn:aws:lookoutvision:us-east-1:123456789012:project/cookies";

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("lookoutvision:describe*", "lookoutvision:describemodel"));
        assert!(!wildcard_match("lookoutvision:describe*", "lookoutvision:listmodels"));
        assert!(wildcard_match("arn:aws:lookoutvision:*:*:model/cookies/*", MODEL));
        assert!(!wildcard_match("arn:aws:lookoutvision:*:*:model/cookies/*", "arn:aws:lookoutvision:us-east-1:1:model/cookies2/3"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!wildcard_match("*a*b*c", "xxaxxbxxcxxd"));
        // Greedy matching stays fast on a pathological pattern.
        let long = "a".repeat(2000);
        assert!(!wildcard_match(&format!("{}b", "*a".repeat(50)), &long));
    }

    #[test]
    fn explicit_deny_wins_and_no_match_denies() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"lookoutvision:*","Resource":"*"},
                {"Effect":"Deny","Action":["lookoutvision:StopModel","lookoutvision:Delete*"],"Resource":"arn:aws:lookoutvision:*:*:model/cookies/*"}]}"#,
        )
        .unwrap();
        assert_eq!(p.evaluate("lookoutvision:DescribeModel", MODEL), Decision::Allow);
        assert_eq!(p.evaluate("lookoutvision:StopModel", MODEL), Decision::ExplicitDeny);
        assert_eq!(p.evaluate("lookoutvision:deletemodel", MODEL), Decision::ExplicitDeny);
        assert_eq!(p.evaluate("lookoutvision:DeleteProject", PROJECT), Decision::Allow);
        assert_eq!(p.evaluate("vigil:CreateTrial", PROJECT), Decision::NoMatch);
    }

    #[test]
    fn presets() {
        let full = Policy::parse(&Preset::FullAccess.document()).unwrap();
        assert!(full.evaluate("lookoutvision:DeleteProject", PROJECT).allowed());
        assert!(full.evaluate("vigil:CreateBatch", MODEL).allowed());
        let ro = Policy::parse(&Preset::ReadOnly.document()).unwrap();
        assert!(ro.evaluate("lookoutvision:ListProjects", "*").allowed());
        assert!(ro.evaluate("vigil:GetBatchResults", PROJECT).allowed());
        assert!(!ro.evaluate("lookoutvision:DetectAnomalies", MODEL).allowed());
        assert!(!ro.evaluate("lookoutvision:StopModel", MODEL).allowed());
        let detect = Policy::parse(&Preset::DetectOnly(vec!["cookies".into()]).document()).unwrap();
        assert!(detect.evaluate("lookoutvision:DetectAnomalies", MODEL).allowed());
        assert!(!detect.evaluate("lookoutvision:DetectAnomalies", "arn:aws:lookoutvision:us-east-1:1:model/boards/1").allowed());
        assert!(!detect.evaluate("lookoutvision:StopModel", MODEL).allowed());
        assert!(!detect.evaluate("lookoutvision:DescribeModel", MODEL).allowed());
        for p in [Preset::FullAccess, Preset::ReadOnly, Preset::DetectOnly(vec!["a".into(), "b-2".into()])] {
            assert_eq!(Preset::recognise(&p.document()), Some(p));
        }
        assert_eq!(Preset::recognise(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#), None);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (doc, says) in [
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "1 to"),
            (r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#, "Effect"),
            (r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#, "not one of Vigil's"),
            (r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"cookies"}}"#, "neither"),
            (r#"{"Statement":{"Effect":"Allow","NotAction":"*","Resource":"*"}}"#, "NotAction is not supported"),
            (r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}}"#, "Condition is not supported"),
            (r#"{"Version":"2020","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#, "Version"),
            (r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#, "1 to"),
        ] {
            let e = Policy::parse(doc).unwrap_err();
            assert!(e.contains(says), "{doc}: {e}");
        }
        assert!(Policy::parse(&" ".repeat(MAX_POLICY_CHARS + 1)).unwrap_err().contains("at most"));
    }
}
