//! The labelling canvas: classify the image, and paint anomaly masks over it with a brush, an eraser or
//! polygons, in the colours of the project's anomaly labels (add, rename, recolour, delete unused), with
//! undo/redo, zoom (anchored at the pointer with Ctrl + wheel), panning (the hand tool, the middle button, or
//! scrolling) and mask opacity; previous / next image inside the gallery's filter. Pixels live in a
//! label-index buffer (`mask_paint`), so a mask only ever holds exact label colours. Saved masks follow LFV's
//! convention (label colours on white) and appear in the dataset's JSON lines as `anomaly-mask-ref` with a
//! colour map. Unsaved edits are asked about before the page is left.

use super::mask_paint::{rgb, IndexMask, Rect};
use super::mask_labels::LabelPanel;
use super::mask_tools::Tool;
use crate::api::{delete_label, error_text, get_entry, list_entry_ids, save_mask, set_labels, EntryDetail, EntryQuery, LabelColor};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

/// Undo steps kept (each a copy of the label-index buffer, one byte per pixel).
const HISTORY: usize = 30;

/// The question asked before unsaved mask edits are dropped.
const LEAVE: &str = "This mask has unsaved changes. Leave without saving them?";

thread_local! {
    /// Whether the canvas on screen has unsaved edits: read by the page-wide listeners below.
    static UNSAVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static GUARD_INSTALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn set_unsaved(v: bool) {
    UNSAVED.with(|u| u.set(v));
}

/// Whether the page may be left: no unsaved edits, or the user says so (then the edits are dropped).
fn may_leave() -> bool {
    if !UNSAVED.with(|u| u.get()) {
        return true;
    }
    let ok = window().confirm_with_message(LEAVE).unwrap_or(false);
    if ok {
        set_unsaved(false);
    }
    ok
}

/// Once per page: asks before a reload or tab close (`beforeunload`) and before a click on any link
/// (in-app navigation, caught in the capture phase so the router never sees a refused click) while the
/// canvas has unsaved edits.
fn install_leave_guard() {
    use leptos::wasm_bindgen::closure::Closure;
    if GUARD_INSTALLED.with(|g| g.replace(true)) {
        return;
    }
    let before_unload = Closure::<dyn Fn(web_sys::BeforeUnloadEvent)>::new(|ev: web_sys::BeforeUnloadEvent| {
        if UNSAVED.with(|u| u.get()) {
            ev.prevent_default();
            ev.set_return_value(LEAVE);
        }
    });
    let _ = window().add_event_listener_with_callback("beforeunload", before_unload.as_ref().unchecked_ref());
    before_unload.forget();
    let on_click = Closure::<dyn Fn(web_sys::MouseEvent)>::new(|ev: web_sys::MouseEvent| {
        if !UNSAVED.with(|u| u.get()) || ev.default_prevented() || ev.button() != 0 {
            return;
        }
        let link = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest("a[href]").ok().flatten());
        if link.is_some_and(|a| !a.has_attribute("download")) && !may_leave() {
            ev.prevent_default();
            ev.stop_immediate_propagation();
        }
    });
    let _ = document().add_event_listener_with_callback_and_bool("click", on_click.as_ref().unchecked_ref(), true);
    on_click.forget();
}

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

fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into::<web_sys::CanvasRenderingContext2d>().ok()
}

/// Draws RGBA bytes of `rect` onto the canvas (pixels replaced, never blended).
fn put_rect(canvas: &web_sys::HtmlCanvasElement, rect: Rect, rgba: &[u8]) {
    if rect.is_empty() {
        return;
    }
    let Some(ctx) = context(canvas) else { return };
    if let Ok(data) =
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(leptos::wasm_bindgen::Clamped(rgba), rect.x1 - rect.x0, rect.y1 - rect.y0)
    {
        let _ = ctx.put_image_data(&data, rect.x0 as f64, rect.y0 as f64);
    }
}

/// A PNG data URL of RGBA bytes, through a canvas that is never shown.
fn png_data_url(width: u32, height: u32, rgba: &[u8]) -> Option<String> {
    let canvas = document().create_element("canvas").ok()?.dyn_into::<web_sys::HtmlCanvasElement>().ok()?;
    canvas.set_width(width);
    canvas.set_height(height);
    put_rect(&canvas, Rect { x0: 0, y0: 0, x1: width, y1: height }, rgba);
    canvas.to_data_url_with_type("image/png").ok()
}

/// The RGBA pixels of a loaded image at its natural size.
fn image_pixels(img: &web_sys::HtmlImageElement, width: u32, height: u32) -> Option<Vec<u8>> {
    let canvas = document().create_element("canvas").ok()?.dyn_into::<web_sys::HtmlCanvasElement>().ok()?;
    canvas.set_width(width);
    canvas.set_height(height);
    let ctx = context(&canvas)?;
    ctx.set_image_smoothing_enabled(false);
    ctx.draw_image_with_html_image_element(img, 0.0, 0.0).ok()?;
    Some(ctx.get_image_data(0.0, 0.0, width as f64, height as f64).ok()?.data().0)
}

/// Whether a key event comes from a text field (its keys are typing, not shortcuts).
fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .is_some_and(|i| matches!(i.type_().as_str(), "text" | "search" | "number"))
}

#[component]
fn MaskEditor(project: String, dataset_type: String, detail: EntryDetail, order: Vec<String>, gallery: EntryQuery) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let mask_img_ref = NodeRef::<leptos::html::Img>::new();
    let scroll_ref = NodeRef::<leptos::html::Div>::new();
    let stage_ref = NodeRef::<leptos::html::Div>::new();
    // The project's labels as they are; a label the saved mask names that the project lost joins them in
    // the mask's colour, so what is shown first is what stays after a reload.
    let mut initial = detail.labels.clone();
    for m in &detail.mask_classes {
        if !initial.iter().any(|l| l.name == m.name) {
            initial.push(m.clone());
        }
    }
    let labels = RwSignal::new(initial);
    let current = RwSignal::new(0usize);
    let brush = RwSignal::new(((detail.width.max(detail.height) as f64) / 40.0).clamp(4.0, 200.0).round());
    let tool = RwSignal::new(Tool::Brush);
    let opacity = RwSignal::new(0.6f64);
    let zoom = RwSignal::new(1.0f64);
    // The stage's width in CSS pixels at zoom 1: the image fitted to the viewport (0 until measured).
    let fit = RwSignal::new(0.0f64);
    let status = RwSignal::new(None::<Result<String, String>>);
    let new_name = RwSignal::new(if labels.with_untracked(Vec::is_empty) { "defect".to_string() } else { String::new() });
    let class_now = RwSignal::new(detail.entry.label.clone());
    let dirty = RwSignal::new(false);
    let renaming = RwSignal::new(None::<String>);
    let (w, h) = (detail.width, detail.height);
    let (wu, hu) = (w.max(0) as u32, h.max(0) as u32);
    // The label-index buffer, allocated in the browser only (the server renders an empty canvas).
    let mask = StoredValue::new(IndexMask::default());
    let history = StoredValue::new(Vec::<Vec<u8>>::new());
    let redo = StoredValue::new(Vec::<Vec<u8>>::new());
    let last = StoredValue::new(None::<(f64, f64)>);
    // Panning: the pointer's start and the scroll offsets then.
    let pan_from = StoredValue::new(None::<(f64, f64, i32, i32)>);
    // The polygon being drawn, in image pixels.
    let polygon = RwSignal::new(Vec::<(f64, f64)>::new());
    let project = StoredValue::new(project);
    let dataset_type = StoredValue::new(dataset_type);
    let entry_id = StoredValue::new(detail.entry.id.clone());
    let mark_dirty = move |v: bool| {
        dirty.set(v);
        set_unsaved(v);
    };
    on_cleanup(|| set_unsaved(false));

    let with_mask = move |f: &mut dyn FnMut(&mut IndexMask)| {
        mask.update_value(|m| {
            if m.px.len() != wu as usize * hu as usize {
                *m = IndexMask::new(wu, hu);
            }
            f(m)
        });
    };
    let colours = move || labels.with_untracked(|ls| ls.iter().map(|l| rgb(&l.color).unwrap_or([255, 0, 255])).collect::<Vec<_>>());
    let render = move |rect: Option<Rect>| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let cs = colours();
        let mut out = None;
        with_mask(&mut |m| {
            let r = rect.unwrap_or_else(|| m.full());
            out = Some((r, m.rgba(r, &cs)));
        });
        if let Some((r, px)) = out {
            put_rect(&canvas, r, &px);
        }
    };

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
    // The value painting writes now: the current label, 0 for the eraser; None when there is no label yet.
    let paint_value = move || -> Option<u8> {
        if tool.get_untracked() == Tool::Eraser {
            return Some(0);
        }
        let n = labels.with_untracked(Vec::len);
        let i = current.get_untracked();
        (i < n && i < 255).then(|| i as u8 + 1)
    };
    let no_label = move || status.set(Some(Err("Add an anomaly label first (for example defect), then paint with it.".into())));
    let stroke = move |from: (f64, f64), to: (f64, f64)| {
        let Some(v) = paint_value() else { return };
        let r = brush.get_untracked() / 2.0;
        let mut changed = None;
        with_mask(&mut |m| changed = Some(m.stroke(from, to, r, v)));
        render(changed);
    };
    let remember = move || {
        let mut snap = Vec::new();
        with_mask(&mut |m| snap = m.px.clone());
        history.update_value(|h| {
            h.push(snap);
            if h.len() > HISTORY {
                h.remove(0);
            }
        });
        redo.update_value(|r| r.clear());
        mark_dirty(true);
    };
    let restore = move |from: StoredValue<Vec<Vec<u8>>>, to: StoredValue<Vec<Vec<u8>>>| {
        let Some(prev) = from.try_update_value(|v| v.pop()).flatten() else { return };
        let mut now = Vec::new();
        with_mask(&mut |m| now = std::mem::replace(&mut m.px, prev.clone()));
        to.update_value(|v| v.push(now));
        mark_dirty(true);
        render(None);
    };
    let close_polygon = move || {
        let pts = polygon.get_untracked();
        polygon.set(Vec::new());
        if pts.len() < 3 {
            return;
        }
        let Some(v) = paint_value() else { return no_label() };
        remember();
        let mut changed = None;
        with_mask(&mut |m| changed = Some(m.fill_polygon(&pts, v)));
        render(changed);
    };
    // An existing mask is read into the buffer: each colour of its colour map becomes that label, whatever
    // colour the project gives the label now.
    let mask_classes = StoredValue::new(detail.mask_classes.clone());
    let mask_loaded = StoredValue::new(false);
    let load_mask = move || {
        let Some(img) = mask_img_ref.get_untracked() else { return };
        if canvas_ref.get_untracked().is_none() || mask_loaded.get_value() || !img.complete() || img.natural_width() == 0 {
            return;
        }
        mask_loaded.set_value(true);
        let Some(px) = image_pixels(&img, wu, hu) else { return };
        let classes: Vec<([u8; 3], u8)> = labels.with_untracked(|ls| {
            mask_classes
                .get_value()
                .iter()
                .filter_map(|m| {
                    let i = ls.iter().position(|l| l.name == m.name)?;
                    Some((rgb(&m.color)?, (i + 1).min(255) as u8))
                })
                .collect()
        });
        let (loaded, unknown) = IndexMask::from_rgba(wu, hu, &px, &classes);
        mask.set_value(loaded);
        render(None);
        if unknown > 0 {
            status.set(Some(Err(format!(
                "{unknown} pixel(s) of the saved mask had a colour of no label and were left out; saving will store the mask without them."
            ))));
        }
    };
    // The mask image may have loaded before the page hydrated (its load event then came before any
    // listener): read it once both it and the canvas are there, whichever happens last.
    Effect::new(move |_| {
        if canvas_ref.get().is_some() {
            install_leave_guard();
            if mask_img_ref.get().is_some() {
                load_mask();
            }
        }
    });
    // Fit the image to the viewport: as wide as the stage allows, and no taller than the window below it.
    let measure = move || {
        let Some(s) = scroll_ref.get_untracked() else { return };
        let avail_w = s.client_width() as f64;
        let top = s.get_bounding_client_rect().top().max(0.0);
        let inner_h = window().inner_height().ok().and_then(|v| v.as_f64()).unwrap_or(800.0);
        // The stage scrolls inside at most 75 % of the window (see the stylesheet).
        let avail_h = (inner_h - top - 16.0).min(inner_h * 0.75).max(200.0);
        if w > 0 && h > 0 && avail_w > 0.0 {
            fit.set(avail_w.min(avail_h * w as f64 / h as f64).floor());
        }
    };
    Effect::new(move |_| {
        if scroll_ref.get().is_some() {
            measure();
        }
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());
    let stage_width = move || {
        let f = fit.get();
        if f > 0.0 { format!("width: {}px", (f * zoom.get()).round()) } else { format!("width: {}%", zoom.get() * 100.0) }
    };
    // Zooms to `z`, keeping the image point under (cx, cy) (client coordinates) where it is.
    let zoom_at = move |z: f64, cx: f64, cy: f64| {
        let z = z.clamp(1.0, 8.0);
        let (Some(s), Some(st)) = (scroll_ref.get_untracked(), stage_ref.get_untracked()) else {
            zoom.set(z);
            return;
        };
        let before = st.get_bounding_client_rect();
        if before.width() <= 0.0 {
            zoom.set(z);
            return;
        }
        let (fx, fy) = ((cx - before.left()) / before.width(), (cy - before.top()) / before.height());
        let base = if fit.get_untracked() > 0.0 { fit.get_untracked() } else { before.width() / zoom.get_untracked() };
        // Resize now (the reactive style follows), so the new layout can be read back at once.
        let _ = web_sys::HtmlElement::style(&st).set_property("width", &format!("{}px", (base * z).round()));
        zoom.set(z);
        let after = st.get_bounding_client_rect();
        s.set_scroll_left(s.scroll_left() + (after.left() + fx * after.width() - cx).round() as i32);
        s.set_scroll_top(s.scroll_top() + (after.top() + fy * after.height() - cy).round() as i32);
    };
    let save = move |_| {
        let n = labels.with_untracked(Vec::len);
        let mut used = vec![false; n];
        let mut rgba = Vec::new();
        let cs = colours();
        with_mask(&mut |m| {
            let census = m.census();
            for (i, u) in used.iter_mut().enumerate() {
                *u = census[i + 1] > 0;
            }
            rgba = m.rgba(m.full(), &cs);
        });
        let Some(png) = png_data_url(wu, hu, &rgba) else { return };
        let l: Vec<LabelColor> = labels.with_untracked(|ls| ls.iter().zip(&used).filter(|(_, u)| **u).map(|(l, _)| l.clone()).collect());
        let (p, t, i) = (project.get_value(), dataset_type.get_value(), entry_id.get_value());
        status.set(Some(Ok("Saving…".into())));
        spawn_local(async move {
            match save_mask(p, t, i, png, l).await {
                Ok(()) => {
                    class_now.set(Some("anomaly".into()));
                    mark_dirty(false);
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
    // Deleting a label: refused while it is painted here; once the server agrees, the labels after it move down
    // one place in the buffer and in every undo step.
    let remove_label = Callback::new(move |name: String| {
        let Some(i) = labels.with_untracked(|ls| ls.iter().position(|x| x.name == name)) else { return };
        let mut painted = false;
        with_mask(&mut |m| painted = m.uses(i as u8 + 1));
        if painted {
            status.set(Some(Err(format!("{name} is painted on this image; erase it (or undo) before deleting the label."))));
            return;
        }
        let p = project.get_value();
        spawn_local(async move {
            match delete_label(p, name.clone()).await {
                Ok(()) => {
                    // The labels after it move down one place, in the buffer and in every undo step.
                    let mut map = [0u8; 256];
                    for (v, m) in map.iter_mut().enumerate() {
                        *m = if v <= i { v as u8 } else { v as u8 - 1 };
                    }
                    map[i + 1] = 0;
                    with_mask(&mut |m| m.remap(&map));
                    let shift = |steps: &mut Vec<Vec<u8>>| {
                        for s in steps.iter_mut() {
                            for v in s.iter_mut() {
                                *v = map[*v as usize];
                            }
                        }
                    };
                    history.update_value(shift);
                    redo.update_value(shift);
                    labels.update(|ls| {
                        ls.remove(i);
                    });
                    current.update(|c| *c = c.saturating_sub(usize::from(*c >= i && *c > 0)));
                    render(None);
                    status.set(Some(Ok(format!("Deleted the label {name}."))));
                }
                Err(e) => status.set(Some(Err(error_text(&e)))),
            }
        });
    });
    // Previous / next inside the gallery's filter and order.
    let here = order.iter().position(|i| *i == detail.entry.id);
    let href_of = {
        let (p, t, q) = (project.get_value(), dataset_type.get_value(), gallery.to_query_string());
        move |i: &String| format!("/projects/{p}/datasets/{t}/images/{i}?{q}")
    };
    let prev_href = here.and_then(|i| i.checked_sub(1)).and_then(|i| order.get(i)).map(&href_of);
    let next_href = here.and_then(|i| order.get(i + 1)).map(&href_of);
    let position = here.map(|i| format!("Image {} of {}", i + 1, order.len()));
    let navigate = use_navigate();
    let go = StoredValue::new({
        let navigate = navigate.clone();
        move |href: &Option<String>| {
            if let Some(h) = href {
                if may_leave() {
                    navigate(h, Default::default());
                }
            }
        }
    });
    let (prev_key, next_key) = (prev_href.clone(), next_href.clone());

    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if typing(&ev) || renaming.with_untracked(Option::is_some) {
            return;
        }
        let modified = ev.ctrl_key() || ev.meta_key() || ev.alt_key();
        match ev.key().as_str() {
            "z" | "Z" if modified && !ev.alt_key() => {
                if ev.shift_key() { restore(redo, history) } else { restore(history, redo) }
            }
            _ if modified => return,
            "Escape" => polygon.set(Vec::new()),
            "Enter" if !polygon.with_untracked(Vec::is_empty) => close_polygon(),
            "Backspace" if !polygon.with_untracked(Vec::is_empty) => polygon.update(|p| {
                p.pop();
            }),
            "b" | "B" => tool.set(Tool::Brush),
            "e" | "E" => tool.set(Tool::Eraser),
            "p" | "P" => tool.set(Tool::Polygon),
            "h" | "H" => tool.set(Tool::Pan),
            "ArrowLeft" | "PageUp" => go.with_value(|g| g(&prev_key)),
            "ArrowRight" | "PageDown" => go.with_value(|g| g(&next_key)),
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
                <div class="stage-scroll" node_ref=scroll_ref aria-label="Image (drag with the hand tool or the middle button, or scroll, to pan; Ctrl + wheel zooms at the pointer)"
                    on:wheel=move |ev: leptos::ev::WheelEvent| {
                        if ev.ctrl_key() || ev.meta_key() {
                            ev.prevent_default();
                            let factor = if ev.delta_y() < 0.0 { 1.25 } else { 0.8 };
                            zoom_at(zoom.get_untracked() * factor, ev.client_x() as f64, ev.client_y() as f64);
                        }
                    }>
                <div class="stage" node_ref=stage_ref style=stage_width>
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
                            if paint_value().is_none() {
                                no_label();
                                return;
                            }
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
                {mask_url.map(|u| view! { <img node_ref=mask_img_ref src=u class="visually-hidden" alt="" data-testid="saved-mask" on:load=move |_| load_mask()/> })}
                <Show when=move || tool.get() == Tool::Polygon>
                    <p class="hint">
                        {move || format!("Polygon: click to add corners ({} so far); click the first corner, double-click or press Enter to fill it; Backspace removes the last corner, Escape cancels.", polygon.with(Vec::len))}
                        " "
                        <button type="button" class="small" disabled=move || polygon.with(Vec::len) < 3 on:click=move |_| close_polygon()>"Fill polygon"</button>
                    </p>
                </Show>
            </div>
            <aside class="card mask-tools">
                <LabelPanel project labels current tool status new_name renaming on_recoloured=Callback::new(move |()| render(None)) on_remove=remove_label/>
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
                    <input type="range" min="1" max="8" step="0.25" prop:value=move || zoom.get().to_string() on:input=move |ev| {
                        let z = event_target_value(&ev).parse().unwrap_or(1.0);
                        // Anchored at the middle of what is visible.
                        match scroll_ref.get_untracked() {
                            Some(s) => {
                                let r = s.get_bounding_client_rect();
                                zoom_at(z, r.left() + r.width() / 2.0, r.top() + r.height() / 2.0);
                            }
                            None => zoom.set(z),
                        }
                    }/>
                </label>
                <label>"Mask opacity"
                    <input type="range" min="0.1" max="1" step="0.05" prop:value=move || opacity.get().to_string() on:input=move |ev| opacity.set(event_target_value(&ev).parse().unwrap_or(0.6))/>
                </label>
                <div class="form-row">
                    <button type="button" title="Undo (Ctrl+Z)" on:click=move |_| restore(history, redo)>"Undo"</button>
                    <button type="button" title="Redo (Ctrl+Shift+Z)" on:click=move |_| restore(redo, history)>"Redo"</button>
                    <button type="button" on:click=move |_| {
                        remember();
                        with_mask(&mut |m| m.px.iter_mut().for_each(|v| *v = 0));
                        render(None);
                    }>"Clear"</button>
                </div>
                <div class="form-row spaced">
                    <button type="button" class="primary" on:click=save>"Save mask"</button>
                    <a class="button" href=back>"Back to the images"</a>
                </div>
                <Show when=move || dirty.get()>
                    <p class="muted small" data-testid="unsaved">"Unsaved changes"</p>
                </Show>
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
