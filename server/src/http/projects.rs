//! LFV project operations: CreateProject, ListProjects, DescribeProject, DeleteProject.

use super::error::ApiError;
use super::request::{epoch_seconds, parse_body, query_map};
use super::{idempotency, paging};
use crate::projects::{self, Project, ProjectError};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", post(create_project).get(list_projects))
        .route("/projects/{projectName}", get(describe_project).delete(delete_project))
}

impl From<ProjectError> for ApiError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::InvalidName(m) => ApiError::Validation(m),
            ProjectError::Exists(name) => ApiError::Conflict {
                message: format!("A project named {name} already exists."),
                resource_id: name,
                resource_type: super::error::ResourceType::Project,
            },
            ProjectError::NotFound(name) => ApiError::project_not_found(&name),
            e @ ProjectError::Quota(_) => ApiError::QuotaExceeded {
                message: e.to_string(),
                resource_id: String::new(),
                resource_type: super::error::ResourceType::Project,
                quota_code: crate::quotas::PROJECTS.into(),
            },
            ProjectError::Db(e) => e.into(),
        }
    }
}


fn metadata(state: &AppState, p: &Project) -> Value {
    json!({
        "ProjectArn": state.project_arn(&p.name),
        "ProjectName": p.name,
        "CreationTimestamp": epoch_seconds(p.created_at),
    })
}

/// Checks a name taken from the URL path.
fn path_name(name: &str) -> Result<(), ApiError> {
    app::names::validate_project_name(name).map_err(ApiError::Validation)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateProjectRequest {
    project_name: String,
}

async fn create_project(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: CreateProjectRequest = parse_body(&body)?;
    let token = idempotency::client_token(&headers)?;
    app::names::validate_project_name(&req.project_name).map_err(ApiError::Validation)?;
    let hash = idempotency::params_hash(&[("ProjectName", &req.project_name)]);
    let st = state.clone();
    let value = idempotency::run(&state.db, "CreateProject", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let p = projects::create(conn, &req.project_name, &crate::quotas::Quotas::of(&st.config)).await?;
            Ok(json!({ "ProjectMetadata": metadata(&st, &p) }))
        })
    })
    .await?;
    Ok(Json(value))
}

async fn list_projects(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let q = query_map(q.as_deref())?;
    let limit = paging::page_size(q.get("maxResults").map(String::as_str))?;
    let cursor = q.get("nextToken").filter(|t| !t.is_empty()).map(|t| paging::decode("ListProjects", t)).transpose()?;
    let mut conn = state.db.pool.acquire().await?;
    // One extra row tells whether another page follows.
    let mut rows =
        projects::list_after(&mut conn, cursor.as_ref().map(|c| (c.created_at, c.id.as_str())), limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|p| paging::encode("ListProjects", &paging::Cursor { created_at: p.created_at, id: p.id.clone() }))
    } else {
        None
    };
    let list: Vec<Value> = rows.iter().map(|p| metadata(&state, p)).collect();
    let mut body = json!({ "Projects": list });
    if let Some(next) = next {
        body["NextToken"] = json!(next);
    }
    Ok(Json(body))
}

async fn describe_project(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    path_name(&name)?;
    let mut conn = state.db.pool.acquire().await?;
    let p = projects::find(&mut conn, &name).await?.ok_or_else(|| ApiError::project_not_found(&name))?;
    let list: Vec<Value> =
        crate::datasets::list_for_project(&mut conn, &p.id).await?.iter().map(super::datasets::metadata).collect();
    let mut description = metadata(&state, &p);
    description["Datasets"] = json!(list);
    Ok(Json(json!({ "ProjectDescription": description })))
}

async fn delete_project(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    path_name(&name)?;
    let token = idempotency::client_token(&headers)?;
    let hash = idempotency::params_hash(&[("ProjectName", &name)]);
    let st = state.clone();
    let value = idempotency::run(&state.db, "DeleteProject", token.as_deref(), &hash, move |conn| {
        Box::pin(async move {
            let p = projects::find(conn, &name).await?.ok_or_else(|| ApiError::project_not_found(&name))?;
            let n = crate::models::count_for_project(conn, &p.id).await?;
            if n > 0 {
                return Err(ApiError::Conflict {
                    message: format!("The project {name} still has {n} model version(s); delete them first."),
                    resource_id: name.clone(),
                    resource_type: super::error::ResourceType::Project,
                });
            }
            let datasets = crate::datasets::list_for_project(conn, &p.id).await?;
            if !datasets.is_empty() {
                let types: Vec<&str> = datasets.iter().map(|d| d.dataset_type.as_str()).collect();
                return Err(ApiError::Conflict {
                    message: format!("The project {name} still has datasets ({}); delete them first.", types.join(", ")),
                    resource_id: name.clone(),
                    resource_type: super::error::ResourceType::Project,
                });
            }
            let p = projects::delete(conn, &name).await?;
            Ok(json!({ "ProjectArn": st.project_arn(&p.name) }))
        })
    })
    .await?;
    Ok(Json(value))
}
