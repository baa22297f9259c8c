//! One module per console page.

pub mod admin;
mod admin_audit;
pub mod batch;
pub mod dashboard;
pub mod dataset;
pub mod gallery;
pub mod mask;
pub mod mask_editor;
pub mod mask_labels;
pub mod mask_leave;
pub mod mask_paint;
pub mod mask_tools;
pub mod model_evaluation;
pub mod model_hosting;
pub mod model_parts;
pub mod model_plots;
pub mod model_results;
pub mod model_training;
pub mod models;
pub mod packaging;
pub mod project;
pub mod projects;
pub mod signin;
pub mod trial;
pub mod trial_view;
pub mod widgets;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="page">
            <h1>"Page not found"</h1>
            <p class="muted">"There is nothing at this address. " <a href="/projects">"Go to your projects"</a> "."</p>
        </section>
    }
}
