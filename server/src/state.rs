//! `AppState`: everything a request handler or server function needs, built once at start-up.

use crate::config::Config;
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
    pub leptos_options: LeptosOptions,
}

impl AppState {
    pub fn project_arn(&self, name: &str) -> String {
        crate::projects::project_arn(&self.config.region, &self.config.account_id, name)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
