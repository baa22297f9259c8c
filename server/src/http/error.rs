//! LFV's error shapes: every API failure is one of these, with the status code and `x-amzn-ErrorType`
//! header the official clients read, and a JSON body with `Message` (plus `ResourceId`/`ResourceType`
//! where the model has them). Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// LFV's `ResourceType` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Project,
    Dataset,
    Model,
    Trial,
    ModelPackageJob,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Project => "PROJECT",
            ResourceType::Dataset => "DATASET",
            ResourceType::Model => "MODEL",
            ResourceType::Trial => "TRIAL",
            ResourceType::ModelPackageJob => "MODEL_PACKAGE_JOB",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{message}")]
    NotFound { message: String, resource_id: String, resource_type: ResourceType },
    #[error("{message}")]
    Conflict { message: String, resource_id: String, resource_type: ResourceType },
    #[error("unknown operation {0}")]
    UnknownOperation(String),
    /// 429 with `Retry-After` (seconds).
    #[error("{message}")]
    Throttling { message: String, retry_after_s: u32 },
    /// 402: a quota (e.g. inference units) would be exceeded.
    #[error("{message}")]
    QuotaExceeded { message: String, resource_id: String, resource_type: ResourceType, quota_code: String },
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn project_not_found(name: &str) -> Self {
        ApiError::NotFound {
            message: format!("The project {name} does not exist."),
            resource_id: name.to_string(),
            resource_type: ResourceType::Project,
        }
    }

    /// The error type name the clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "ValidationException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::NotFound { .. } => "ResourceNotFoundException",
            ApiError::Conflict { .. } => "ConflictException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::Throttling { .. } => "ThrottlingException",
            ApiError::QuotaExceeded { .. } => "ServiceQuotaExceededException",
            ApiError::Internal(_) => "InternalServerException",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::UnknownOperation(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Throttling { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::QuotaExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let body = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                json!({ "Message": "Vigil had an internal error. Try your call again." })
            }
            ApiError::NotFound { message, resource_id, resource_type }
            | ApiError::Conflict { message, resource_id, resource_type } => json!({
                "Message": message,
                "ResourceId": resource_id,
                "ResourceType": resource_type.as_str(),
            }),
            ApiError::Throttling { message, .. } => json!({ "Message": message, "ServiceCode": "lookoutvision" }),
            ApiError::QuotaExceeded { message, resource_id, resource_type, quota_code } => json!({
                "Message": message,
                "ResourceId": resource_id,
                "ResourceType": resource_type.as_str(),
                "QuotaCode": quota_code,
                "ServiceCode": "lookoutvision",
            }),
            ApiError::UnknownOperation(what) => {
                json!({ "Message": format!("No LFV operation matches {what}.") })
            }
            other => json!({ "Message": other.to_string() }),
        };
        let retry_after = match &self {
            ApiError::Throttling { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(code));
        if let Some(s) = retry_after {
            response.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn not_found_has_lfv_shape() {
        let r = ApiError::project_not_found("p1").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["x-amzn-errortype"], "ResourceNotFoundException");
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["ResourceId"], "p1");
        assert_eq!(v["ResourceType"], "PROJECT");
        assert!(v["Message"].as_str().unwrap().contains("p1"));
    }

    #[tokio::test]
    async fn internal_errors_hide_details() {
        let r = ApiError::Internal(anyhow::anyhow!("secret path /var/x")).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("secret"));
    }
}
