//! `AppState`: everything a request handler or server function needs, built once at start-up.

use crate::blobs::Blobs;
use crate::config::Config;
use crate::datasets::import::Importer;
use crate::s3::S3;
use crate::engine::Backbone;
use crate::store::Db;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
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
    pub jobs: Arc<crate::jobs::Workers>,
    /// Hosted model versions of this process.
    pub hosting: Arc<crate::models::hosting::Hosting>,
}

impl AppState {
    pub fn importer(&self) -> Importer {
        Importer { db: self.db.clone(), s3: self.s3.clone(), blobs: self.blobs.clone(), local: None, binary_masks: false }
    }

    pub fn project_arn(&self, name: &str) -> String {
        crate::projects::project_arn(&self.config.region, &self.config.account_id, name)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
