//! The labelling canvas: classify the image, and paint anomaly masks over it with a brush, an eraser or
//! polygons, in the colours of the project's anomaly labels (add, rename, recolour, delete unused), with
//! undo/redo, zoom, panning (the hand tool, the middle button, or scrolling) and mask opacity. Saved masks follow LFV's
//! convention (label colours on white) and appear in the dataset's JSON lines as `anomaly-mask-ref` with a
//! colour map.

use crate::api::{
    create_label, delete_label, error_text, get_entry, recolor_label, rename_label, save_mask, set_labels, EntryDetail, LabelColor,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// Colours offered to new labels, in turn (none is white or black, the background colours).
const PALETTE: [&str; 8] = ["#E4572E", "#23A436", "#1F77B4", "#F2A541", "#9B5DE5", "#00BBF9", "#F15BB5", "#8AC926"];

#[component]
pub fn MaskPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("name").unwrap_or_default();
    let dataset_type = move || params.read().get("type").unwrap_or_default();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail = Resource::new(move || (project(), dataset_type(), id()), |(p, t, i)| get_entry(p, t, i));
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
                    match detail.await {
                        Ok(d) => view! { <MaskEditor project=project() dataset_type=dataset_type() detail=d/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into::<web_sys::CanvasRenderingContext2d>().ok()
}

fn snapshot(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::ImageData> {
    context(canvas)?.get_image_data(0.0, 0.0, canvas.width() as f64, canvas.height() as f64).ok()
}

/// The canvas pixels as RGBA bytes.
fn pixels(canvas: &web_sys::HtmlCanvasElement) -> Option<Vec<u8>> {
    snapshot(canvas).map(|d| d.data().0)
}

/// Puts RGBA bytes back onto the canvas.
fn put_pixels(canvas: &web_sys::HtmlCanvasElement, px: &[u8]) {
    let Some(ctx) = context(canvas) else { return };
    if let Ok(data) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(leptos::wasm_bindgen::Clamped(px), canvas.width(), canvas.height()) {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Brush,
    Eraser,
    Polygon,
    Pan,
}

/// `#RRGGBB` as bytes.
fn rgb(hex: &str) -> Option<[u8; 3]> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([b(0)?, b(2)?, b(4)?])
}

/// Replaces every opaque pixel of one colour by another.
fn swap_colours(px: &mut [u8], pairs: &[([u8; 3], [u8; 3])]) {
    for p in px.chunks_exact_mut(4) {
        if p[3] == 0 {
            continue;
        }
        if let Some((_, to)) = pairs.iter().find(|(from, _)| p[..3] == from[..]) {
            p[..3].copy_from_slice(to);
        }
    }
}

#[component]
fn MaskEditor(project: String, dataset_type: String, detail: EntryDetail) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let mask_img_ref = NodeRef::<leptos::html::Img>::new();
    let scroll_ref = NodeRef::<leptos::html::Div>::new();
    let initial = if detail.labels.is_empty() {
        vec![LabelColor { name: "defect".into(), color: PALETTE[0].into() }]
    } else {
        detail.labels.clone()
    };
    let labels = RwSignal::new(initial);
    let current = RwSignal::new(0usize);
    let brush = RwSignal::new(((detail.width.max(detail.height) as f64) / 40.0).clamp(4.0, 200.0).round());
    let tool = RwSignal::new(Tool::Brush);
    let opacity = RwSignal::new(0.6f64);
    let zoom = RwSignal::new(1.0f64);
    let status = RwSignal::new(None::<Result<String, String>>);
    let new_name = RwSignal::new(String::new());
    let class_now = RwSignal::new(detail.entry.label.clone());
    // Undo/redo snapshots are kept as raw RGBA bytes: plain `Send` data, so the editor can also be
    // rendered (and dropped) on any server thread. (`web_sys::ImageData` would need thread-local
    // storage, whose drop on another worker thread panics during server rendering.)
    let history = StoredValue::new(Vec::<Vec<u8>>::new());
    let redo = StoredValue::new(Vec::<Vec<u8>>::new());
    let last = StoredValue::new(None::<(f64, f64)>);
    // Panning: the pointer's start and the scroll offsets then.
    let pan_from = StoredValue::new(None::<(f64, f64, i32, i32)>);
    // The polygon being drawn, in image pixels.
    let polygon = RwSignal::new(Vec::<(f64, f64)>::new());
    let (w, h) = (detail.width, detail.height);
    let project = StoredValue::new(project);
    let dataset_type = StoredValue::new(dataset_type);
    let entry_id = StoredValue::new(detail.entry.id.clone());

    let point = move |ev: &leptos::ev::PointerEvent| -> Option<(f64, f64)> {
        let canvas = canvas_ref.get_untracked()?;
        let r = canvas.get_bounding_client_rect();
        if r.width() <= 0.0 || r.height() <= 0.0 {
            return None;
        }
        Some((
            (ev.client_x() as f64 - r.left()) * canvas.width() as f64 / r.width(),
            (ev.client_y() as f64 - r.top()) * canvas.height() as f64 / r.height(),
        ))
    };
    // Image pixels per screen pixel, to size the polygon's snapping distance.
    let scale = move || -> f64 {
        canvas_ref
            .get_untracked()
            .map(|c| {
                let r = c.get_bounding_client_rect();
                if r.width() > 0.0 { c.width() as f64 / r.width() } else { 1.0 }
            })
            .unwrap_or(1.0)
    };
    let colour_now = move || labels.with_untracked(|l| l.get(current.get_untracked()).map(|l| l.color.clone())).unwrap_or_default();
    let stroke = move |from: (f64, f64), to: (f64, f64)| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(ctx) = context(&canvas) else { return };
        let erase = tool.get_untracked() == Tool::Eraser;
        let _ = ctx.set_global_composite_operation(if erase { "destination-out" } else { "source-over" });
        ctx.set_stroke_style_str(&colour_now());
        ctx.set_line_width(brush.get_untracked());
        ctx.set_line_cap("round");
        ctx.set_line_join("round");
        ctx.begin_path();
        ctx.move_to(from.0, from.1);
        ctx.line_to(to.0, to.1);
        ctx.stroke();
    };
    let remember = move || {
        if let Some(s) = canvas_ref.get_untracked().as_ref().and_then(pixels) {
            history.update_value(|h| {
                h.push(s);
                if h.len() > 50 {
                    h.remove(0);
                }
            });
            redo.update_value(|r| r.clear());
        }
    };
    let restore = move |from: StoredValue<Vec<Vec<u8>>>, to: StoredValue<Vec<Vec<u8>>>| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(prev) = from.try_update_value(|v| v.pop()).flatten() else { return };
        if let Some(now) = pixels(&canvas) {
            to.update_value(|v| v.push(now));
        }
        put_pixels(&canvas, &prev);
    };
    // Fills the polygon in the current label's colour (no anti-aliased edge colours are left for the
    // server to snap: it maps every painted pixel to the nearest label colour).
    let close_polygon = move || {
        let pts = polygon.get_untracked();
        polygon.set(Vec::new());
        if pts.len() < 3 {
            return;
        }
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(ctx) = context(&canvas) else { return };
        remember();
        let _ = ctx.set_global_composite_operation("source-over");
        ctx.set_fill_style_str(&colour_now());
        ctx.begin_path();
        ctx.move_to(pts[0].0, pts[0].1);
        for p in &pts[1..] {
            ctx.line_to(p.0, p.1);
        }
        ctx.close_path();
        ctx.fill();
    };
    let recolour_canvas = move |from: &str, to: &str| {
        let (Some(a), Some(b), Some(canvas)) = (rgb(from), rgb(to), canvas_ref.get_untracked()) else { return };
        if let Some(mut px) = pixels(&canvas) {
            swap_colours(&mut px, &[(a, b)]);
            put_pixels(&canvas, &px);
        }
    };
    // An existing mask is loaded into the canvas with its background made transparent and its labels in the
    // project's current colours.
    let mask_classes = StoredValue::new(detail.mask_classes.clone());
    let mask_loaded = StoredValue::new(false);
    let load_mask = move || {
        let (Some(canvas), Some(img)) = (canvas_ref.get_untracked(), mask_img_ref.get_untracked()) else { return };
        if mask_loaded.get_value() || !img.complete() || img.natural_width() == 0 {
            return;
        }
        mask_loaded.set_value(true);
        let Some(ctx) = context(&canvas) else { return };
        let _ = ctx.draw_image_with_html_image_element(&img, 0.0, 0.0);
        let Some(mut px) = pixels(&canvas) else { return };
        for p in px.chunks_exact_mut(4) {
            let bg = (p[0] == 255 && p[1] == 255 && p[2] == 255) || (p[0] == 0 && p[1] == 0 && p[2] == 0);
            if bg {
                p[3] = 0;
            }
        }
        let pairs: Vec<([u8; 3], [u8; 3])> = labels.with_untracked(|ls| {
            mask_classes
                .get_value()
                .iter()
                .filter_map(|m| {
                    let now = ls.iter().find(|l| l.name == m.name)?;
                    Some((rgb(&m.color)?, rgb(&now.color)?))
                })
                .filter(|(a, b)| a != b)
                .collect()
        });
        swap_colours(&mut px, &pairs);
        put_pixels(&canvas, &px);
    };
    // The mask image may have loaded before the page hydrated (its load event then came before any
    // listener): draw it once both it and the canvas are there, whichever happens last.
    Effect::new(move |_| {
        if canvas_ref.get().is_some() && mask_img_ref.get().is_some() {
            load_mask();
        }
    });
    let save = move |_| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Ok(png) = canvas.to_data_url_with_type("image/png") else { return };
        let (p, t, i, l) = (project.get_value(), dataset_type.get_value(), entry_id.get_value(), labels.get_untracked());
        status.set(Some(Ok("Saving…".into())));
        spawn_local(async move {
            match save_mask(p, t, i, png, l).await {
                Ok(()) => {
                    class_now.set(Some("anomaly".into()));
                    status.set(Some(Ok("Mask saved; the image is labelled anomaly.".into())))
                }
                Err(e) => status.set(Some(Err(error_text(&e)))),
            }
        });
    };
    let classify = move |label: &'static str| {
        let (p, t, i) = (project.get_value(), dataset_type.get_value(), entry_id.get_value());
        spawn_local(async move {
            match set_labels(p, t, vec![i], label.to_string()).await {
                Ok(_) => {
                    class_now.set((!label.is_empty()).then(|| label.to_string()));
                    status.set(Some(Ok(if label.is_empty() { "Label removed.".into() } else { format!("Labelled {label}.") })));
                }
                Err(e) => status.set(Some(Err(error_text(&e)))),
            }
        });
    };
    let add_label = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = new_name.get_untracked().trim().to_string();
        if name.is_empty() {
            return;
        }
        if let Some(i) = labels.with_untracked(|l| l.iter().position(|x| x.name == name)) {
            current.set(i);
            new_name.set(String::new());
            return;
        }
        let colour = labels.with_untracked(|l| {
            PALETTE.iter().find(|c| !l.iter().any(|x| x.color.eq_ignore_ascii_case(c))).unwrap_or(&PALETTE[0]).to_string()
        });
        let p = project.get_value();
        spawn_local(async move {
            match create_label(p, name.clone(), colour.clone()).await {
                Ok(()) => {
                    labels.update(|l| {
                        l.push(LabelColor { name, color: colour });
                        current.set(l.len() - 1);
                    });
                    if tool.get_untracked() == Tool::Eraser || tool.get_untracked() == Tool::Pan {
                        tool.set(Tool::Brush);
                    }
                    new_name.set(String::new());
                    status.set(None);
                }
                Err(e) => status.set(Some(Err(error_text(&e)))),
            }
        });
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let target_is_text = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .is_some_and(|i| i.type_() == "text");
        if target_is_text {
            return;
        }
        match ev.key().as_str() {
            "Escape" => polygon.set(Vec::new()),
            "Enter" if !polygon.with_untracked(Vec::is_empty) => close_polygon(),
            "Backspace" if !polygon.with_untracked(Vec::is_empty) => polygon.update(|p| {
                p.pop();
            }),
            "b" | "B" => tool.set(Tool::Brush),
            "e" | "E" => tool.set(Tool::Eraser),
            "p" | "P" => tool.set(Tool::Polygon),
            "h" | "H" => tool.set(Tool::Pan),
            "z" | "Z" if ev.ctrl_key() || ev.meta_key() => {
                if ev.shift_key() { restore(redo, history) } else { restore(history, redo) }
            }
            _ => return,
        }
        ev.prevent_default();
    };

    let image_url = format!("/media/{}", detail.entry.image);
    let mask_url = detail.mask.as_ref().map(|m| format!("/media/{m}"));
    let back = format!("/projects/{}/datasets/{}", project.get_value(), dataset_type.get_value());
    let tool_button = move |t: Tool, name: &'static str, key: &'static str| {
        view! {
            <button type="button" class:active=move || tool.get() == t aria-pressed=move || (tool.get() == t).to_string()
                title=format!("{name} ({key})") on:click=move |_| { tool.set(t); polygon.set(Vec::new()); }>{name}</button>
        }
    };
    view! {
        <header class="page-head">
            <h1>{detail.entry.name.clone()}</h1>
            <p class="muted">{format!("{w}×{h} px · paint where the anomaly is, then save")}</p>
        </header>
        <div class="mask-layout" on:keydown=on_key tabindex="-1">
            <div class="card mask-stage">
                <div class="form-row classify" role="group" aria-label="Classification">
                    <span class="muted small">"This image is "</span>
                    <strong data-testid="class-now">{move || class_now.get().unwrap_or_else(|| "unlabelled".into())}</strong>
                    <button type="button" class:active=move || class_now.get().as_deref() == Some("normal") on:click=move |_| classify("normal")>"Normal"</button>
                    <button type="button" class:active=move || class_now.get().as_deref() == Some("anomaly") on:click=move |_| classify("anomaly")>"Anomaly"</button>
                    <button type="button" on:click=move |_| classify("")>"Unlabel"</button>
                </div>
                <div class="stage-scroll" node_ref=scroll_ref aria-label="Image (drag with the hand tool or the middle button, or scroll, to pan)">
                <div class="stage" style=move || format!("width: {}%", zoom.get() * 100.0)>
                    <img src=image_url alt="Image to label" class="stage-image" draggable="false"/>
                    <canvas
                        node_ref=canvas_ref
                        width=w
                        height=h
                        class="stage-canvas"
                        class:panning=move || tool.get() == Tool::Pan
                        aria-label="Mask canvas"
                        style=move || format!("opacity: {}", opacity.get())
                        on:pointerdown=move |ev| {
                            if tool.get_untracked() == Tool::Pan || ev.button() == 1 {
                                ev.prevent_default();
                                if let Some(s) = scroll_ref.get_untracked() {
                                    pan_from.set_value(Some((ev.client_x() as f64, ev.client_y() as f64, s.scroll_left(), s.scroll_top())));
                                }
                                return;
                            }
                            let Some(p) = point(&ev) else { return };
                            if tool.get_untracked() == Tool::Polygon {
                                let near_start = polygon.with_untracked(|pts| {
                                    pts.len() >= 3 && pts.first().is_some_and(|f| ((f.0 - p.0).powi(2) + (f.1 - p.1).powi(2)).sqrt() < 10.0 * scale())
                                });
                                if near_start { close_polygon() } else { polygon.update(|pts| pts.push(p)) }
                                return;
                            }
                            remember();
                            stroke(p, p);
                            last.set_value(Some(p));
                        }
                        on:pointermove=move |ev| {
                            if let Some((x0, y0, l0, t0)) = pan_from.get_value() {
                                if let Some(s) = scroll_ref.get_untracked() {
                                    s.set_scroll_left(l0 - (ev.client_x() as f64 - x0) as i32);
                                    s.set_scroll_top(t0 - (ev.client_y() as f64 - y0) as i32);
                                }
                                return;
                            }
                            if let (Some(from), Some(to)) = (last.get_value(), point(&ev)) {
                                stroke(from, to);
                                last.set_value(Some(to));
                            }
                        }
                        on:dblclick=move |_| if tool.get_untracked() == Tool::Polygon { close_polygon() }
                        on:pointerup=move |_| { last.set_value(None); pan_from.set_value(None); }
                        on:pointerleave=move |_| { last.set_value(None); pan_from.set_value(None); }
                    ></canvas>
                    <svg class="stage-overlay" viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" aria-hidden="true">
                        <polyline
                            points=move || polygon.with(|p| p.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" "))
                            fill=move || colour_now_tracked(labels, current)
                            fill-opacity="0.35"
                            stroke=move || colour_now_tracked(labels, current)
                            stroke-width=move || (2.0 * (w.max(h) as f64) / 800.0).max(1.0).to_string()
                        ></polyline>
                        {move || polygon.with(|p| p.first().map(|(x, y)| view! {
                            <circle cx=x.to_string() cy=y.to_string() r=(6.0 * (w.max(h) as f64) / 800.0).max(3.0).to_string() class="poly-start"></circle>
                        }))}
                    </svg>
                </div>
                </div>
                {mask_url.map(|u| view! { <img node_ref=mask_img_ref src=u class="visually-hidden" alt="" on:load=move |_| load_mask()/> })}
                <Show when=move || tool.get() == Tool::Polygon>
                    <p class="hint">
                        {move || format!("Polygon: click to add corners ({} so far); click the first corner, double-click or press Enter to fill it; Backspace removes the last corner, Escape cancels.", polygon.with(Vec::len))}
                        " "
                        <button type="button" class="small" disabled=move || polygon.with(Vec::len) < 3 on:click=move |_| close_polygon()>"Fill polygon"</button>
                    </p>
                </Show>
            </div>
            <aside class="card mask-tools">
                <h2>"Labels"</h2>
                <ul class="label-list">
                    {move || labels.get().into_iter().enumerate().map(|(i, l)| {
                        let name = l.name.clone();
                        view! {
                        <li>
                            <label class="inline">
                                <input type="radio" name="mask-label" prop:checked=move || current.get() == i on:change=move |_| {
                                    current.set(i);
                                    if matches!(tool.get_untracked(), Tool::Eraser | Tool::Pan) { tool.set(Tool::Brush); }
                                }/>
                                <span class="swatch" style=format!("background: {}", l.color)></span>
                                {l.name.clone()}
                            </label>
                            <button type="button" class="small-button" aria-label=format!("Rename {}", l.name) title="Rename" on:click={
                                let old = name.clone();
                                move |_| {
                                    let Ok(Some(new)) = window().prompt_with_message_and_default(&format!("Rename the label {old} to:"), &old) else { return };
                                    let new = new.trim().to_string();
                                    if new.is_empty() || new == old { return; }
                                    let (p, o) = (project.get_value(), old.clone());
                                    spawn_local(async move {
                                        match rename_label(p, o.clone(), new.clone()).await {
                                            Ok(n) => {
                                                labels.update(|ls| if let Some(x) = ls.iter_mut().find(|x| x.name == o) { x.name = new.clone(); });
                                                status.set(Some(Ok(format!("Renamed {o} to {new} in {n} image(s)."))));
                                            }
                                            Err(e) => status.set(Some(Err(error_text(&e)))),
                                        }
                                    });
                                }
                            }>"✎"</button>
                            <button type="button" class="small-button danger" aria-label=format!("Delete {}", l.name) title="Delete (only when no saved mask uses it)" on:click={
                                let name = name.clone();
                                move |_| {
                                    let (p, n) = (project.get_value(), name.clone());
                                    spawn_local(async move {
                                        // A label only proposed here (never saved) is not on the server: just drop it.
                                        let r = delete_label(p, n.clone()).await;
                                        let gone = match &r {
                                            Ok(()) => true,
                                            Err(e) => error_text(e).starts_with("The project has no label"),
                                        };
                                        if gone {
                                            labels.update(|ls| ls.retain(|x| x.name != n));
                                            current.set(0);
                                            status.set(Some(Ok(format!("Deleted the label {n}."))));
                                        } else if let Err(e) = r {
                                            status.set(Some(Err(error_text(&e))));
                                        }
                                    });
                                }
                            }>"✕"</button>
                            <input type="color" aria-label=format!("Colour of {}", l.name) prop:value=l.color.clone()
                                on:change={
                                    let name = name.clone();
                                    move |ev| {
                                        let v = event_target_value(&ev).to_uppercase();
                                        let old = labels.with_untracked(|ls| ls.iter().find(|x| x.name == name).map(|x| x.color.clone()));
                                        let (p, n, c) = (project.get_value(), name.clone(), v.clone());
                                        spawn_local(async move {
                                            let r = recolor_label(p, n.clone(), c.clone()).await;
                                            // An unsaved label recolours locally only.
                                            match r {
                                                Err(e) if !error_text(&e).starts_with("The project has no label") => status.set(Some(Err(error_text(&e)))),
                                                _ => {
                                                    remember();
                                                    if let Some(old) = old { recolour_canvas(&old, &c); }
                                                    labels.update(|ls| if let Some(x) = ls.iter_mut().find(|x| x.name == n) { x.color = c.clone(); });
                                                }
                                            }
                                        });
                                    }
                                }/>
                        </li>
                    }}).collect_view()}
                </ul>
                <form class="form-row" on:submit=add_label>
                    <input type="text" placeholder="new label, e.g. scratch" aria-label="New label name" prop:value=new_name on:input=move |ev| new_name.set(event_target_value(&ev))/>
                    <button type="submit">"Add"</button>
                </form>
                <h2>"Tools"</h2>
                <div class="form-row tools" role="group" aria-label="Tools">
                    {tool_button(Tool::Brush, "Brush", "B")}
                    {tool_button(Tool::Eraser, "Eraser", "E")}
                    {tool_button(Tool::Polygon, "Polygon", "P")}
                    {tool_button(Tool::Pan, "Pan", "H")}
                </div>
                <label>"Brush size " {move || brush.get()} " px"
                    <input type="range" min="1" max="200" prop:value=move || brush.get().to_string() on:input=move |ev| brush.set(event_target_value(&ev).parse().unwrap_or(16.0))/>
                </label>
                <label>"Zoom " {move || format!("{:.1}×", zoom.get())}
                    <input type="range" min="1" max="6" step="0.25" prop:value=move || zoom.get().to_string() on:input=move |ev| zoom.set(event_target_value(&ev).parse().unwrap_or(1.0))/>
                </label>
                <label>"Mask opacity"
                    <input type="range" min="0.1" max="1" step="0.05" prop:value=move || opacity.get().to_string() on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.6))/>
                </label>
                <div class="form-row">
                    <button type="button" title="Undo (Ctrl+Z)" on:click=move |_| restore(history, redo)>"Undo"</button>
                    <button type="button" title="Redo (Ctrl+Shift+Z)" on:click=move |_| restore(redo, history)>"Redo"</button>
                    <button type="button" on:click=move |_| {
                        remember();
                        if let Some(c) = canvas_ref.get_untracked() {
                            if let Some(ctx) = context(&c) { ctx.clear_rect(0.0, 0.0, c.width() as f64, c.height() as f64); }
                        }
                    }>"Clear"</button>
                </div>
                <div class="form-row spaced">
                    <button type="button" class="primary" on:click=save>"Save mask"</button>
                    <a class="button" href=back>"Back to the images"</a>
                </div>
                {move || status.get().map(|s| match s {
                    Ok(m) => view! { <p class="ok" role="status">{m}</p> }.into_any(),
                    Err(m) => view! { <p class="error" role="alert">{m}</p> }.into_any(),
                })}
            </aside>
        </div>
    }
}

/// The current label's colour, tracked (for the polygon preview).
fn colour_now_tracked(labels: RwSignal<Vec<LabelColor>>, current: RwSignal<usize>) -> String {
    let i = current.get();
    labels.with(|l| l.get(i).map(|l| l.color.clone())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_swap() {
        assert_eq!(rgb("#E4572E"), Some([0xE4, 0x57, 0x2E]));
        assert_eq!(rgb("E4572E"), None);
        assert_eq!(rgb("#E457"), None);
        let mut px = vec![1, 2, 3, 255, 1, 2, 3, 0, 9, 9, 9, 255];
        swap_colours(&mut px, &[([1, 2, 3], [7, 7, 7])]);
        assert_eq!(px, vec![7, 7, 7, 255, 1, 2, 3, 0, 9, 9, 9, 255]);
    }
}
