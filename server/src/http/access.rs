//! Which operation a signed call is — its IAM action and the resource it acts on — and the one policy check every
//! API call passes through (`authorize`, called by SigV4 verification once the signature holds). The table below
//! lists every route of `/2020-11-20` (LFV's operations, as in its service model) and of `/vigil/v1` (Vigil's own
//! `vigil:` actions); a call on no listed route is refused to any key with less than full rights, so a route
//! added to a router but not here fails closed. Unit tests check the table against LFV's service model.

use super::error::ApiError;
use crate::auth::policy::Decision;
use crate::auth::ApiCaller;
use axum::response::{IntoResponse, Response};

/// What the resource of an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum On {
    /// No particular resource (`*`): ListProjects.
    Any,
    /// The project named in the path.
    Project,
    /// The project named in the body's `ProjectName` (CreateProject).
    NewProject,
    /// The model version in the path.
    Model,
    /// The ARN in the path (the tag operations).
    Arn,
}

/// (method, path template under its prefix, action, resource, whether it changes anything).
type Route = (&'static str, &'static str, &'static str, On, bool);

/// LFV's operations, under `/2020-11-20`.
const LFV: &[Route] = &[
    ("POST", "/projects", "lookoutvision:CreateProject", On::NewProject, true),
    ("GET", "/projects", "lookoutvision:ListProjects", On::Any, false),
    ("GET", "/projects/{projectName}", "lookoutvision:DescribeProject", On::Project, false),
    ("DELETE", "/projects/{projectName}", "lookoutvision:DeleteProject", On::Project, true),
    ("POST", "/projects/{projectName}/datasets", "lookoutvision:CreateDataset", On::Project, true),
    ("GET", "/projects/{projectName}/datasets/{datasetType}", "lookoutvision:DescribeDataset", On::Project, false),
    ("DELETE", "/projects/{projectName}/datasets/{datasetType}", "lookoutvision:DeleteDataset", On::Project, true),
    ("GET", "/projects/{projectName}/datasets/{datasetType}/entries", "lookoutvision:ListDatasetEntries", On::Project, false),
    ("PATCH", "/projects/{projectName}/datasets/{datasetType}/entries", "lookoutvision:UpdateDatasetEntries", On::Project, true),
    ("POST", "/projects/{projectName}/models", "lookoutvision:CreateModel", On::Project, true),
    ("GET", "/projects/{projectName}/models", "lookoutvision:ListModels", On::Project, false),
    ("GET", "/projects/{projectName}/models/{modelVersion}", "lookoutvision:DescribeModel", On::Model, false),
    ("DELETE", "/projects/{projectName}/models/{modelVersion}", "lookoutvision:DeleteModel", On::Model, true),
    ("POST", "/projects/{projectName}/models/{modelVersion}/start", "lookoutvision:StartModel", On::Model, true),
    ("POST", "/projects/{projectName}/models/{modelVersion}/stop", "lookoutvision:StopModel", On::Model, true),
    // Detections change nothing stored that a user edits; they are counted, not audited one by one.
    ("POST", "/projects/{projectName}/models/{modelVersion}/detect", "lookoutvision:DetectAnomalies", On::Model, false),
    ("POST", "/projects/{projectName}/modelpackagingjobs", "lookoutvision:StartModelPackagingJob", On::Project, true),
    ("GET", "/projects/{projectName}/modelpackagingjobs", "lookoutvision:ListModelPackagingJobs", On::Project, false),
    ("GET", "/projects/{projectName}/modelpackagingjobs/{jobName}", "lookoutvision:DescribeModelPackagingJob", On::Project, false),
    ("GET", "/tags/{resourceArn}", "lookoutvision:ListTagsForResource", On::Arn, false),
    ("POST", "/tags/{resourceArn}", "lookoutvision:TagResource", On::Arn, true),
    ("DELETE", "/tags/{resourceArn}", "lookoutvision:UntagResource", On::Arn, true),
];

/// Vigil's REST extension, under `/vigil/v1`: trials act on their project, a batch is started on a model version.
const VIGIL: &[Route] = &[
    ("POST", "/projects/{projectName}/trials", "vigil:CreateTrial", On::Project, true),
    ("GET", "/projects/{projectName}/trials", "vigil:ListTrials", On::Project, false),
    ("GET", "/projects/{projectName}/trials/{trialName}", "vigil:DescribeTrial", On::Project, false),
    ("DELETE", "/projects/{projectName}/trials/{trialName}", "vigil:DeleteTrial", On::Project, true),
    ("POST", "/projects/{projectName}/trials/{trialName}/verify", "vigil:VerifyTrial", On::Project, true),
    ("POST", "/projects/{projectName}/trials/{trialName}/add-to-dataset", "vigil:AddTrialToDataset", On::Project, true),
    ("POST", "/projects/{projectName}/trials/{trialName}/cancel", "vigil:CancelTrial", On::Project, true),
    ("POST", "/projects/{projectName}/models/{modelVersion}/batches", "vigil:CreateBatch", On::Model, true),
    ("GET", "/projects/{projectName}/batches", "vigil:ListBatches", On::Project, false),
    ("GET", "/projects/{projectName}/batches/{batchId}", "vigil:DescribeBatch", On::Project, false),
    ("DELETE", "/projects/{projectName}/batches/{batchId}", "vigil:DeleteBatch", On::Project, true),
    ("POST", "/projects/{projectName}/batches/{batchId}/cancel", "vigil:CancelBatch", On::Project, true),
    ("GET", "/projects/{projectName}/batches/{batchId}/results", "vigil:GetBatchResults", On::Project, false),
];

/// A signed call, as IAM sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub action: &'static str,
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// True for calls that change something (those are written to the audit log).
    pub changes: bool,
}

/// The operation of `method path` (the full path, with its `/2020-11-20` or `/vigil/v1` prefix), with ARNs in
/// this server's region and account; `body` is read only for CreateProject's `ProjectName`. `None` for a call on
/// no listed route.
pub fn operation(method: &str, path: &str, body: &[u8], region: &str, account: &str) -> Option<Operation> {
    let (table, rest) = if let Some(rest) = path.strip_prefix("/2020-11-20") {
        (LFV, rest)
    } else {
        (VIGIL, path.strip_prefix("/vigil/v1")?)
    };
    let rest = rest.strip_suffix('/').filter(|r| !r.is_empty()).unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    for &(m, template, action, on, changes) in table {
        if m != method {
            continue;
        }
        let names: Vec<&str> = template.split('/').skip(1).collect();
        if names.len() != segments.len() {
            continue;
        }
        let mut params: Vec<(&str, String)> = Vec::new();
        let matched = names.iter().zip(&segments).all(|(n, s)| match n.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                params.push((name, percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()));
                true
            }
            Some(_) => false,
            None => n == s,
        });
        if !matched {
            continue;
        }
        let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let project_arn = |p: &str| crate::lfv::project_arn(region, account, p);
        let resource = match on {
            On::Any => "*".to_string(),
            On::Project => project_arn(&param("projectName")),
            On::NewProject => {
                let name = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("ProjectName").and_then(|n| n.as_str()).map(str::to_string))
                    .unwrap_or_default();
                project_arn(&name)
            }
            On::Model => format!("arn:aws:lookoutvision:{region}:{account}:model/{}/{}", param("projectName"), param("modelVersion")),
            On::Arn => param("resourceArn"),
        };
        return Some(Operation { action, resource, changes });
    }
    None
}

/// The policy check: the caller's role and key policy must allow the operation. A refusal is LFV's
/// `AccessDeniedException` (403) naming the key, the action and the resource, as AWS words it.
pub fn authorize(caller: &ApiCaller, op: Option<&Operation>, method: &str, path: &str) -> Result<(), Response> {
    let (decision, action, resource) = match op {
        Some(op) => (caller.decide(op.action, &op.resource), op.action, op.resource.as_str()),
        // An unlisted route: only a caller allowed everything may reach it (the router then answers it).
        None => (caller.decide("lookoutvision:*", "*").and(caller.decide("vigil:*", "*")), "an unlisted operation", path),
    };
    if decision.allowed() {
        return Ok(());
    }
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in a policy",
        _ if caller.policy.is_none() => "because the key's owner's role does not allow it",
        _ => "because no statement of the key's policy (within its owner's role) allows it",
    };
    tracing::info!(key = %caller.access_key_id, action, resource, %method, %path, "refused by policy");
    Err(ApiError::AccessDenied(format!("User: {} is not authorized to perform: {action} on resource: {resource} {why}.", caller.access_key_id))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::policy::{Policy, Preset};
    use crate::auth::users::Role;
    use axum::http::StatusCode;
    use std::sync::Arc;

    fn op(method: &str, path: &str) -> Option<Operation> {
        operation(method, path, br#"{"ProjectName":"cookies"}"#, "us-east-1", "123456789012")
    }

    #[test]
    fn every_lfv_operation_is_listed_once_with_its_own_name() {
        // LFV's 22 operations as its service model (lookoutvision-2020-11-20/service-2.json) declares them.
        const MODEL: [(&str, &str, &str); 22] = [
            ("POST", "/2020-11-20/projects/{projectName}/datasets", "CreateDataset"),
            ("POST", "/2020-11-20/projects/{projectName}/models", "CreateModel"),
            ("POST", "/2020-11-20/projects", "CreateProject"),
            ("DELETE", "/2020-11-20/projects/{projectName}/datasets/{datasetType}", "DeleteDataset"),
            ("DELETE", "/2020-11-20/projects/{projectName}/models/{modelVersion}", "DeleteModel"),
            ("DELETE", "/2020-11-20/projects/{projectName}", "DeleteProject"),
            ("GET", "/2020-11-20/projects/{projectName}/datasets/{datasetType}", "DescribeDataset"),
            ("GET", "/2020-11-20/projects/{projectName}/models/{modelVersion}", "DescribeModel"),
            ("GET", "/2020-11-20/projects/{projectName}/modelpackagingjobs/{jobName}", "DescribeModelPackagingJob"),
            ("GET", "/2020-11-20/projects/{projectName}", "DescribeProject"),
            ("POST", "/2020-11-20/projects/{projectName}/models/{modelVersion}/detect", "DetectAnomalies"),
            ("GET", "/2020-11-20/projects/{projectName}/datasets/{datasetType}/entries", "ListDatasetEntries"),
            ("GET", "/2020-11-20/projects/{projectName}/modelpackagingjobs", "ListModelPackagingJobs"),
            ("GET", "/2020-11-20/projects/{projectName}/models", "ListModels"),
            ("GET", "/2020-11-20/projects", "ListProjects"),
            ("GET", "/2020-11-20/tags/{resourceArn}", "ListTagsForResource"),
            ("POST", "/2020-11-20/projects/{projectName}/models/{modelVersion}/start", "StartModel"),
            ("POST", "/2020-11-20/projects/{projectName}/modelpackagingjobs", "StartModelPackagingJob"),
            ("POST", "/2020-11-20/projects/{projectName}/models/{modelVersion}/stop", "StopModel"),
            ("POST", "/2020-11-20/tags/{resourceArn}", "TagResource"),
            ("DELETE", "/2020-11-20/tags/{resourceArn}", "UntagResource"),
            ("PATCH", "/2020-11-20/projects/{projectName}/datasets/{datasetType}/entries", "UpdateDatasetEntries"),
        ];
        assert_eq!(LFV.len(), MODEL.len());
        for (method, uri, name) in MODEL {
            let template = uri.strip_prefix("/2020-11-20").unwrap();
            let hits: Vec<_> = LFV.iter().filter(|r| r.0 == method && r.1 == template).collect();
            assert_eq!(hits.len(), 1, "{name}: {method} {uri}");
            assert_eq!(hits[0].2, format!("lookoutvision:{name}"));
        }
    }

    #[test]
    fn resources_are_the_arns_iam_uses() {
        let p = "arn:aws:lookoutvision:us-east-1:123456789012:project/cookies";
        let m = "arn:aws:lookoutvision:us-east-1:123456789012:model/cookies/3";
        assert_eq!(op("GET", "/2020-11-20/projects").unwrap().resource, "*");
        assert_eq!(op("POST", "/2020-11-20/projects").unwrap().resource, p);
        assert_eq!(op("POST", "/2020-11-20/projects/").unwrap().action, "lookoutvision:CreateProject");
        assert_eq!(op("GET", "/2020-11-20/projects/cookies/datasets/train/entries").unwrap().resource, p);
        let detect = op("POST", "/2020-11-20/projects/cookies/models/3/detect").unwrap();
        assert_eq!((detect.action, detect.resource.as_str(), detect.changes), ("lookoutvision:DetectAnomalies", m, false));
        let tag = op("POST", "/2020-11-20/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A123456789012%3Amodel%2Fcookies%2F3").unwrap();
        assert_eq!((tag.action, tag.resource.as_str(), tag.changes), ("lookoutvision:TagResource", m, true));
        assert_eq!(op("POST", "/vigil/v1/projects/cookies/models/3/batches").unwrap().resource, m);
        assert_eq!(op("GET", "/vigil/v1/projects/cookies/batches/b1/results").unwrap().action, "vigil:GetBatchResults");
        assert_eq!(op("POST", "/vigil/v1/projects/cookies/trials/t/add-to-dataset").unwrap().action, "vigil:AddTrialToDataset");
        assert_eq!(op("PUT", "/2020-11-20/projects"), None);
        assert_eq!(op("GET", "/2020-11-20/projects/cookies/nothing"), None);
        assert_eq!(op("GET", "/2020-11-20/projects//datasets/train"), None);
        assert_eq!(op("GET", "/elsewhere/projects"), None);
    }

    fn caller(role: Role, preset: Option<Preset>) -> ApiCaller {
        ApiCaller {
            access_key_id: "VKIATEST".into(),
            user_id: Some("u".into()),
            role,
            policy: preset.map(|p| Arc::new(Policy::parse(&p.document()).unwrap())),
        }
    }

    fn allowed(c: &ApiCaller, method: &str, path: &str) -> bool {
        authorize(c, op(method, path).as_ref(), method, path).is_ok()
    }

    #[test]
    fn presets_and_roles_through_the_table() {
        let detect = caller(Role::Editor, Some(Preset::DetectOnly(vec!["cookies".into()])));
        assert!(allowed(&detect, "POST", "/2020-11-20/projects/cookies/models/3/detect"));
        assert!(!allowed(&detect, "POST", "/2020-11-20/projects/boards/models/3/detect"));
        assert!(!allowed(&detect, "POST", "/2020-11-20/projects/cookies/models/3/stop"));
        assert!(!allowed(&detect, "DELETE", "/2020-11-20/projects/cookies/models/3"));
        assert!(!allowed(&detect, "GET", "/2020-11-20/projects"));
        assert!(!allowed(&detect, "GET", "/2020-11-20/unlisted"));
        let ro = caller(Role::Administrator, Some(Preset::ReadOnly));
        assert!(allowed(&ro, "GET", "/2020-11-20/projects/cookies/models/3"));
        assert!(allowed(&ro, "GET", "/vigil/v1/projects/cookies/trials"));
        assert!(!allowed(&ro, "POST", "/vigil/v1/projects/cookies/trials"));
        // A viewer's key is read-only whatever its own policy says.
        let viewer = caller(Role::Viewer, Some(Preset::FullAccess));
        assert!(allowed(&viewer, "GET", "/2020-11-20/projects"));
        assert!(!allowed(&viewer, "POST", "/2020-11-20/projects"));
        assert!(!allowed(&viewer, "POST", "/2020-11-20/projects/cookies/models/3/detect"));
        let editor = caller(Role::Editor, None);
        assert!(allowed(&editor, "DELETE", "/2020-11-20/projects/cookies"));
        assert!(allowed(&editor, "GET", "/2020-11-20/unlisted"));
        let body = match authorize(&detect, op("POST", "/2020-11-20/projects/cookies/models/3/stop").as_ref(), "POST", "/x") {
            Err(r) => r,
            Ok(()) => panic!("allowed"),
        };
        assert_eq!(body.status(), StatusCode::FORBIDDEN);
        assert_eq!(body.headers()["x-amzn-errortype"], "AccessDeniedException");
    }
}
