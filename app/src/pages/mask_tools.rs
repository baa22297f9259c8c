//! The labelling canvas's tools: what a pointer on the canvas does, the buttons that pick it and their
//! keyboard shortcuts. The label panel (`mask_labels`) and the canvas (`mask`, `mask_editor`) both switch tools.

use leptos::prelude::*;

/// What a pointer on the canvas does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    Polygon,
    Pan,
}

impl Tool {
    /// The tool a key picks (B, E, P, H, either case).
    pub fn for_key(key: &str) -> Option<Tool> {
        match key {
            "b" | "B" => Some(Tool::Brush),
            "e" | "E" => Some(Tool::Eraser),
            "p" | "P" => Some(Tool::Polygon),
            "h" | "H" => Some(Tool::Pan),
            _ => None,
        }
    }
}

/// One button per tool; picking one drops a polygon being drawn.
#[component]
pub fn ToolButtons(tool: RwSignal<Tool>, polygon: RwSignal<Vec<(f64, f64)>>) -> impl IntoView {
    let tool_button = move |t: Tool, name: &'static str, key: &'static str| {
        view! {
            <button type="button" class:active=move || tool.get() == t aria-pressed=move || (tool.get() == t).to_string()
                title=format!("{name} ({key})") on:click=move |_| { tool.set(t); polygon.set(Vec::new()); }>{name}</button>
        }
    };
    view! {
        <div class="form-row tools" role="group" aria-label="Tools">
            {tool_button(Tool::Brush, "Brush", "B")}
            {tool_button(Tool::Eraser, "Eraser", "E")}
            {tool_button(Tool::Polygon, "Polygon", "P")}
            {tool_button(Tool::Pan, "Pan", "H")}
        </div>
    }
}
