//! `AppState`: everything a request handler or server function needs, built once at start-up.

use crate::blobs::Blobs;
use crate::config::Config;
use crate::s3::S3;
use crate::engine::Backbone;
use crate::db::Db;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub backbone: Arc<Backbone>,
    pub blobs: Blobs,
    pub s3: S3,
    pub leptos_options: LeptosOptions,
    /// API access keys and their signing keys (SigV4), the server key.
    pub auth: crate::auth::Auth,
    /// The job worker pool's wake-up signal and stop flag.
    pub jobs: Arc<Workers>,
    /// Hosted model versions of this process, and trial lanes.
    pub hosting: Arc<crate::inference::Hosting>,
    /// This process in the registry of processes sharing the database, with its role.
    pub node: Arc<crate::cluster::Node>,
}

/// The worker pool's shared parts (in `AppState`).
#[derive(Debug, Default)]
pub struct Workers {
    pub wake: tokio::sync::Notify,
    pub stopping: AtomicBool,
}

impl AppState {
    pub fn project_arn(&self, name: &str) -> String {
        crate::lfv::project_arn(&self.config.region, &self.config.account_id, name)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
