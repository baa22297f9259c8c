//! The labelling canvas: classify the image, and paint anomaly masks over it with a brush, an eraser or
//! polygons, in the colours of the project's anomaly labels (add, rename, recolour, delete unused), with
//! undo/redo, zoom (anchored at the pointer with Ctrl + wheel), panning (the hand tool, the middle button, or
//! scrolling) and mask opacity; previous / next image inside the gallery's filter. Pixels live in a
//! label-index buffer (`mask_paint`), so a mask only ever holds exact label colours. Saved masks follow LFV's
//! convention (label colours on white) and appear in the dataset's JSON lines as `anomaly-mask-ref` with a
//! colour map. Unsaved edits are asked about before the page is left.
//!
//! This module holds the page and its views; the editor's state and what its controls do are in `mask_editor`,
//! the tools in `mask_tools`, the label panel in `mask_labels` and the unsaved-edits guard in `mask_leave`.

use super::mask_editor::Editor;
use super::mask_labels::LabelPanel;
use super::mask_leave::may_leave;
use super::mask_tools::{Tool, ToolButtons};
use crate::api::{error_text, get_entry, list_entry_ids, EntryDetail, EntryQuery};
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

#[component]
pub fn MaskPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let dataset_type = move || params.read().get("type").unwrap_or_default();
    let id = move || params.read().get("id").unwrap_or_default();
    // The gallery's filter, search and order, so previous / next stay inside what the user was looking at.
    let gallery = move || {
        let q = query.read();
        EntryQuery {
            filter: q.get("filter").unwrap_or_else(|| "all".into()),
            search: q.get("q").unwrap_or_default(),
            sort: q.get("sort").unwrap_or_default(),
            page: 0,
        }
    };
    let detail = Resource::new(move || (project(), dataset_type(), id()), |(p, t, i)| get_entry(p, t, i));
    let ids = Resource::new(move || (project(), dataset_type(), gallery()), |(p, t, q)| list_entry_ids(p, t, q));
    view! {
        <Title text="Paint mask"/>
        <section class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/projects">"Projects"</a> " / "
                <a href=move || format!("/projects/{}", project())>{project}</a> " / "
                <a href=move || format!("/projects/{}/datasets/{}", project(), dataset_type())>{dataset_type}</a>
                " / mask"
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let order = ids.await.unwrap_or_default();
                    match detail.await {
                        Ok(d) => view! { <MaskEditor project=project() dataset_type=dataset_type() detail=d order gallery=gallery()/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Whether a key event comes from a text field (its keys are typing, not shortcuts).
fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .is_some_and(|i| matches!(i.type_().as_str(), "text" | "search" | "number"))
}

#[component]
fn MaskEditor(project: String, dataset_type: String, detail: EntryDetail, order: Vec<String>, gallery: EntryQuery) -> impl IntoView {
    let ed = Editor::new(&detail, project, dataset_type);
    ed.attach();
    let (tool, polygon) = (ed.tool, ed.polygon);
    // Previous / next inside the gallery's filter and order.
    let here = order.iter().position(|i| *i == detail.entry.id);
    let href_of = {
        let (p, t, q) = (ed.project.get_value(), ed.dataset_type.get_value(), gallery.to_query_string());
        move |i: &String| format!("/projects/{p}/datasets/{t}/images/{i}?{q}")
    };
    let prev_href = here.and_then(|i| i.checked_sub(1)).and_then(|i| order.get(i)).map(&href_of);
    let next_href = here.and_then(|i| order.get(i + 1)).map(&href_of);
    let position = here.map(|i| format!("Image {} of {}", i + 1, order.len()));
    let navigate = use_navigate();
    let go = StoredValue::new(move |href: &Option<String>| {
        if let Some(h) = href {
            if may_leave() {
                navigate(h, Default::default());
            }
        }
    });
    let (prev_key, next_key) = (prev_href.clone(), next_href.clone());

    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if typing(&ev) || ed.renaming.with_untracked(Option::is_some) {
            return;
        }
        let modified = ev.ctrl_key() || ev.meta_key() || ev.alt_key();
        match ev.key().as_str() {
            "z" | "Z" if modified && !ev.alt_key() => {
                if ev.shift_key() { ed.redo() } else { ed.undo() }
            }
            _ if modified => return,
            "Escape" => polygon.set(Vec::new()),
            "Enter" if !polygon.with_untracked(Vec::is_empty) => ed.close_polygon(),
            "Backspace" if !polygon.with_untracked(Vec::is_empty) => polygon.update(|p| {
                p.pop();
            }),
            "ArrowLeft" | "PageUp" => go.with_value(|g| g(&prev_key)),
            "ArrowRight" | "PageDown" => go.with_value(|g| g(&next_key)),
            key => match Tool::for_key(key) {
                Some(t) => tool.set(t),
                None => return,
            },
        }
        ev.prevent_default();
    };

    let image_url = format!("/media/{}", detail.entry.image);
    let mask_url = detail.mask.as_ref().map(|m| format!("/media/{m}"));
    let back = format!("/projects/{}/datasets/{}", ed.project.get_value(), ed.dataset_type.get_value());
    let (w, h) = (ed.w, ed.h);
    view! {
        <header class="page-head">
            <h1>{detail.entry.name.clone()}</h1>
            <p class="muted">{format!("{w}×{h} px · paint where the anomaly is, then save")}</p>
        </header>
        <div class="mask-layout" on:keydown=on_key tabindex="-1">
            <div class="card mask-stage">
                <ClassifyBar ed prev_href next_href position/>
                <Stage ed image_url/>
                {mask_url.map(|u| view! { <img node_ref=ed.mask_img_ref src=u class="visually-hidden" alt="" data-testid="saved-mask" on:load=move |_| ed.load_mask()/> })}
                <Show when=move || tool.get() == Tool::Polygon>
                    <p class="hint">
                        {move || format!("Polygon: click to add corners ({} so far); click the first corner, double-click or press Enter to fill it; Backspace removes the last corner, Escape cancels.", polygon.with(Vec::len))}
                        " "
                        <button type="button" class="small" disabled=move || polygon.with(Vec::len) < 3 on:click=move |_| ed.close_polygon()>"Fill polygon"</button>
                    </p>
                </Show>
            </div>
            <aside class="card mask-tools">
                <ToolsPanel ed back/>
            </aside>
        </div>
    }
}

/// What the image is (normal, anomaly, unlabelled) with the buttons that change it, and previous / next.
#[component]
fn ClassifyBar(ed: Editor, prev_href: Option<String>, next_href: Option<String>, position: Option<String>) -> impl IntoView {
    let class_now = ed.class_now;
    view! {
        <div class="form-row classify" role="group" aria-label="Classification">
            <span class="muted small">"This image is "</span>
            <strong data-testid="class-now">{move || class_now.get().unwrap_or_else(|| "unlabelled".into())}</strong>
            <button type="button" class:active=move || class_now.get().as_deref() == Some("normal") on:click=move |_| ed.classify("normal")>"Normal"</button>
            <button type="button" class:active=move || class_now.get().as_deref() == Some("anomaly") on:click=move |_| ed.classify("anomaly")>"Anomaly"</button>
            <button type="button" on:click=move |_| ed.classify("")>"Unlabel"</button>
            <span class="spacer"></span>
            <nav class="form-row image-nav" aria-label="Images in the gallery's filter">
                {match prev_href {
                    Some(h) => view! { <a class="button" href=h title="Previous image (←)">"← Previous"</a> }.into_any(),
                    None => view! { <button type="button" disabled>"← Previous"</button> }.into_any(),
                }}
                <span class="muted small" data-testid="image-position">{position}</span>
                {match next_href {
                    Some(h) => view! { <a class="button" href=h title="Next image (→)">"Next →"</a> }.into_any(),
                    None => view! { <button type="button" disabled>"Next →"</button> }.into_any(),
                }}
            </nav>
        </div>
    }
}

/// The image with the mask canvas over it (painting, polygons, panning) and the polygon being drawn, in a
/// scrolling, zoomable stage.
#[component]
fn Stage(ed: Editor, image_url: String) -> impl IntoView {
    let (tool, polygon, zoom) = (ed.tool, ed.polygon, ed.zoom);
    let (w, h) = (ed.w, ed.h);
    view! {
        <div class="stage-scroll" node_ref=ed.scroll_ref aria-label="Image (drag with the hand tool or the middle button, or scroll, to pan; Ctrl + wheel zooms at the pointer)"
            on:wheel=move |ev: leptos::ev::WheelEvent| {
                if ev.ctrl_key() || ev.meta_key() {
                    ev.prevent_default();
                    let factor = if ev.delta_y() < 0.0 { 1.25 } else { 0.8 };
                    ed.zoom_at(zoom.get_untracked() * factor, ev.client_x() as f64, ev.client_y() as f64);
                }
            }>
        <div class="stage" node_ref=ed.stage_ref style=move || ed.stage_width()>
            <img src=image_url alt="Image to label" class="stage-image" draggable="false"/>
            <canvas
                node_ref=ed.canvas_ref
                width=w
                height=h
                class="stage-canvas"
                class:panning=move || tool.get() == Tool::Pan
                aria-label="Mask canvas"
                style=move || format!("opacity: {}", ed.opacity.get())
                on:pointerdown=move |ev| ed.pointer_down(ev)
                on:pointermove=move |ev| ed.pointer_move(ev)
                on:dblclick=move |_| if tool.get_untracked() == Tool::Polygon { ed.close_polygon() }
                on:pointerup=move |_| ed.pointer_end()
                on:pointerleave=move |_| ed.pointer_end()
            ></canvas>
            <svg class="stage-overlay" viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" aria-hidden="true">
                <polyline
                    points=move || polygon.with(|p| p.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" "))
                    fill=move || ed.colour_now()
                    fill-opacity="0.35"
                    stroke=move || ed.colour_now()
                    stroke-width=move || (2.0 * (w.max(h) as f64) / 800.0).max(1.0).to_string()
                ></polyline>
                {move || polygon.with(|p| p.first().map(|(x, y)| view! {
                    <circle cx=x.to_string() cy=y.to_string() r=(6.0 * (w.max(h) as f64) / 800.0).max(3.0).to_string() class="poly-start"></circle>
                }))}
            </svg>
        </div>
        </div>
    }
}

/// The side panel: labels, tools, brush size, zoom, opacity, undo / redo / clear, save, and what happened.
#[component]
fn ToolsPanel(ed: Editor, back: String) -> impl IntoView {
    let Editor { labels, current, tool, status, new_name, renaming, brush, zoom, opacity, .. } = ed;
    view! {
        <LabelPanel project=ed.project labels current tool status new_name renaming
            on_recoloured=Callback::new(move |()| ed.render(None)) on_remove=Callback::new(move |name| ed.remove_label(name))/>
        <h2>"Tools"</h2>
        <ToolButtons tool polygon=ed.polygon/>
        <label>"Brush size " {move || brush.get()} " px"
            <input type="range" min="1" max="200" prop:value=move || brush.get().to_string() on:input=move |ev| brush.set(event_target_value(&ev).parse().unwrap_or(16.0))/>
        </label>
        <label>"Zoom " {move || format!("{:.1}×", zoom.get())}
            <input type="range" min="1" max="8" step="0.25" prop:value=move || zoom.get().to_string() on:input=move |ev| {
                let z = event_target_value(&ev).parse().unwrap_or(1.0);
                // Anchored at the middle of what is visible.
                match ed.scroll_ref.get_untracked() {
                    Some(s) => {
                        let r = s.get_bounding_client_rect();
                        ed.zoom_at(z, r.left() + r.width() / 2.0, r.top() + r.height() / 2.0);
                    }
                    None => zoom.set(z),
                }
            }/>
        </label>
        <label>"Mask opacity"
            <input type="range" min="0.1" max="1" step="0.05" prop:value=move || opacity.get().to_string() on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.6))/>
        </label>
        <div class="form-row">
            <button type="button" title="Undo (Ctrl+Z)" on:click=move |_| ed.undo()>"Undo"</button>
            <button type="button" title="Redo (Ctrl+Shift+Z)" on:click=move |_| ed.redo()>"Redo"</button>
            <button type="button" on:click=move |_| ed.clear()>"Clear"</button>
        </div>
        <div class="form-row spaced">
            <button type="button" class="primary" on:click=move |_| ed.save()>"Save mask"</button>
            <a class="button" href=back>"Back to the images"</a>
        </div>
        <Show when=move || ed.dirty.get()>
            <p class="muted small" data-testid="unsaved">"Unsaved changes"</p>
        </Show>
        {move || status.get().map(|s| match s {
            Ok(m) => view! { <p class="ok" role="status">{m}</p> }.into_any(),
            Err(m) => view! { <p class="error" role="alert">{m}</p> }.into_any(),
        })}
    }
}
