//! The console's backend: implements `app::api::Backend` over the same domain code as the LFV API.

use crate::projects::{self, Project, ProjectError};
use crate::state::AppState;
use app::api::{Backend, BackendError, ProjectDetail, ProjectSummary};

pub struct ConsoleBackend {
    pub state: AppState,
}

impl ConsoleBackend {
    fn summary(&self, p: &Project) -> ProjectSummary {
        ProjectSummary { name: p.name.clone(), arn: self.state.project_arn(&p.name), created_at_ms: p.created_at }
    }
}

impl From<ProjectError> for BackendError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Db(e) => internal(e),
            ProjectError::InvalidName(_) => BackendError::new(400, e.to_string()),
            ProjectError::NotFound(_) => BackendError::new(404, e.to_string()),
            ProjectError::Exists(_) => BackendError::new(409, e.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    tracing::error!(error = %e, "console backend error");
    BackendError::new(500, "Vigil had an internal error. Try again.")
}


#[async_trait::async_trait]
impl Backend for ConsoleBackend {
    async fn list_projects(&self) -> Result<Vec<ProjectSummary>, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let mut all = Vec::new();
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = projects::list_after(&mut conn, after.as_ref().map(|(c, i)| (*c, i.as_str())), 500).await.map_err(internal)?;
            let done = page.len() < 500;
            after = page.last().map(|p| (p.created_at, p.id.clone()));
            all.extend(page.iter().map(|p| self.summary(p)));
            if done {
                break;
            }
        }
        // Newest first: the project just created is the one the user looks for.
        all.reverse();
        Ok(all)
    }

    async fn create_project(&self, name: &str) -> Result<ProjectSummary, BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let p = projects::create(&mut tx, name).await?;
        tx.commit().await.map_err(internal)?;
        Ok(self.summary(&p))
    }

    async fn describe_project(&self, name: &str) -> Result<ProjectDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let p = projects::find(&mut conn, name)
            .await
            .map_err(internal)?
            .ok_or_else(|| BackendError::from(ProjectError::NotFound(name.to_string())))?;
        let datasets = crate::datasets::list_for_project(&mut conn, &p.id).await.map_err(internal)?;
        Ok(ProjectDetail {
            project: self.summary(&p),
            datasets: datasets.into_iter().map(|d| format!("{} ({})", d.dataset_type, d.status)).collect(),
        })
    }

    async fn delete_project(&self, name: &str) -> Result<(), BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        // The console deletes a project with everything in it (the API asks for datasets to go first, as LFV's).
        if let Some(p) = projects::find(&mut tx, name).await.map_err(internal)? {
            for d in crate::datasets::list_for_project(&mut tx, &p.id).await.map_err(internal)? {
                crate::datasets::delete(&mut tx, &d.id).await.map_err(internal)?;
            }
        }
        projects::delete(&mut tx, name).await?;
        tx.commit().await.map_err(internal)?;
        Ok(())
    }
}
