//! The dashboard: a placeholder that says what it will hold.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <Title text="Dashboard"/>
        <section class="page">
            <header class="page-head">
                <h1>"Dashboard"</h1>
            </header>
            <div class="card placeholder">
                <h2>"Not built yet"</h2>
                <p>"The dashboard will summarise every project at a glance, as the Lookout for Vision dashboard did:"</p>
                <ul>
                    <li>"images processed and anomalies found per hosted model, over time"</li>
                    <li>"the anomaly rate per project and its trend"</li>
                    <li>"each model's precision, recall and F1 score, and its status (training, hosted, failed)"</li>
                </ul>
                <p class="muted">"Until then, open a project from " <a href="/projects">"Projects"</a> "."</p>
            </div>
        </section>
    }
}
