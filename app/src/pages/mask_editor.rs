//! The labelling canvas's state and what its controls do to it: the label-index buffer (`mask_paint`) with its
//! undo and redo steps, strokes and polygons, reading a saved mask in, fitting and zooming the stage, and the
//! server calls that save the mask, classify the image and delete a label. The views are in `mask`.

use super::mask_leave::{install_leave_guard, set_unsaved};
use super::mask_paint::{rgb, IndexMask, Rect};
use super::mask_tools::Tool;
use crate::api::{delete_label, error_text, save_mask, set_labels, AnomalyLabel, EntryDetail};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;

/// Undo steps kept (each a copy of the label-index buffer, one byte per pixel).
const HISTORY: usize = 30;

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

/// One image's editor: its signals, its buffers and the elements it draws into. `Copy`, so every handler
/// holds its own.
#[derive(Clone, Copy)]
pub struct Editor {
    pub canvas_ref: NodeRef<leptos::html::Canvas>,
    pub mask_img_ref: NodeRef<leptos::html::Img>,
    pub scroll_ref: NodeRef<leptos::html::Div>,
    pub stage_ref: NodeRef<leptos::html::Div>,
    pub labels: RwSignal<Vec<AnomalyLabel>>,
    pub current: RwSignal<usize>,
    pub brush: RwSignal<f64>,
    pub tool: RwSignal<Tool>,
    pub opacity: RwSignal<f64>,
    pub zoom: RwSignal<f64>,
    /// The stage's width in CSS pixels at zoom 1: the image fitted to the viewport (0 until measured).
    fit: RwSignal<f64>,
    pub status: RwSignal<Option<Result<String, String>>>,
    pub new_name: RwSignal<String>,
    pub class_now: RwSignal<Option<String>>,
    pub dirty: RwSignal<bool>,
    /// The label whose rename dialog is open (the canvas ignores its shortcuts meanwhile).
    pub renaming: RwSignal<Option<String>>,
    /// The polygon being drawn, in image pixels.
    pub polygon: RwSignal<Vec<(f64, f64)>>,
    /// The image's size in pixels.
    pub w: i64,
    pub h: i64,
    wu: u32,
    hu: u32,
    /// The label-index buffer, allocated in the browser only (the server renders an empty canvas).
    mask: StoredValue<IndexMask>,
    history: StoredValue<Vec<Vec<u8>>>,
    redo: StoredValue<Vec<Vec<u8>>>,
    /// Where the brush was at the last pointer event of a stroke.
    last: StoredValue<Option<(f64, f64)>>,
    /// Panning: the pointer's start and the scroll offsets then.
    pan_from: StoredValue<Option<(f64, f64, i32, i32)>>,
    pub project: StoredValue<String>,
    pub dataset_type: StoredValue<String>,
    entry_id: StoredValue<String>,
    /// The saved mask's colour map, and whether the saved mask was read into the buffer yet.
    mask_classes: StoredValue<Vec<AnomalyLabel>>,
    mask_loaded: StoredValue<bool>,
}

impl Editor {
    pub fn new(detail: &EntryDetail, project: String, dataset_type: String) -> Self {
        // The project's labels as they are; a label the saved mask names that the project lost joins them in
        // the mask's colour, so what is shown first is what stays after a reload.
        let mut initial = detail.labels.clone();
        for m in &detail.mask_classes {
            if !initial.iter().any(|l| l.name == m.name) {
                initial.push(m.clone());
            }
        }
        let (w, h) = (detail.width, detail.height);
        Editor {
            canvas_ref: NodeRef::new(),
            mask_img_ref: NodeRef::new(),
            scroll_ref: NodeRef::new(),
            stage_ref: NodeRef::new(),
            new_name: RwSignal::new(if initial.is_empty() { "defect".to_string() } else { String::new() }),
            labels: RwSignal::new(initial),
            current: RwSignal::new(0usize),
            brush: RwSignal::new(((w.max(h) as f64) / 40.0).clamp(4.0, 200.0).round()),
            tool: RwSignal::new(Tool::Brush),
            opacity: RwSignal::new(0.6f64),
            zoom: RwSignal::new(1.0f64),
            fit: RwSignal::new(0.0f64),
            status: RwSignal::new(None),
            class_now: RwSignal::new(detail.entry.label.clone()),
            dirty: RwSignal::new(false),
            renaming: RwSignal::new(None),
            polygon: RwSignal::new(Vec::new()),
            w,
            h,
            wu: w.max(0) as u32,
            hu: h.max(0) as u32,
            mask: StoredValue::new(IndexMask::default()),
            history: StoredValue::new(Vec::new()),
            redo: StoredValue::new(Vec::new()),
            last: StoredValue::new(None),
            pan_from: StoredValue::new(None),
            project: StoredValue::new(project),
            dataset_type: StoredValue::new(dataset_type),
            entry_id: StoredValue::new(detail.entry.id.clone()),
            mask_classes: StoredValue::new(detail.mask_classes.clone()),
            mask_loaded: StoredValue::new(false),
        }
    }

    /// What the editor needs from the page while it is shown: the leave guard, the saved mask read in, and
    /// the stage fitted to the window (again on every resize).
    pub fn attach(self) {
        on_cleanup(|| set_unsaved(false));
        // The mask image may have loaded before the page hydrated (its load event then came before any
        // listener): read it once both it and the canvas are there, whichever happens last.
        Effect::new(move |_| {
            if self.canvas_ref.get().is_some() {
                install_leave_guard();
                if self.mask_img_ref.get().is_some() {
                    self.load_mask();
                }
            }
        });
        Effect::new(move |_| {
            if self.scroll_ref.get().is_some() {
                self.measure();
            }
        });
        let resize = window_event_listener(leptos::ev::resize, move |_| self.measure());
        on_cleanup(move || resize.remove());
    }

    fn mark_dirty(self, v: bool) {
        self.dirty.set(v);
        set_unsaved(v);
    }

    fn with_mask(self, f: &mut dyn FnMut(&mut IndexMask)) {
        let (wu, hu) = (self.wu, self.hu);
        self.mask.update_value(|m| {
            if m.px.len() != wu as usize * hu as usize {
                *m = IndexMask::new(wu, hu);
            }
            f(m)
        });
    }

    fn colours(self) -> Vec<[u8; 3]> {
        self.labels.with_untracked(|ls| ls.iter().map(|l| rgb(&l.color).unwrap_or([255, 0, 255])).collect::<Vec<_>>())
    }

    /// Draws `rect` of the buffer (all of it for `None`) onto the canvas in the labels' colours.
    pub fn render(self, rect: Option<Rect>) {
        let Some(canvas) = self.canvas_ref.get_untracked() else { return };
        let cs = self.colours();
        let mut out = None;
        self.with_mask(&mut |m| {
            let r = rect.unwrap_or_else(|| m.full());
            out = Some((r, m.rgba(r, &cs)));
        });
        if let Some((r, px)) = out {
            put_rect(&canvas, r, &px);
        }
    }

    /// The pointer's position in image pixels.
    fn point(self, ev: &leptos::ev::PointerEvent) -> Option<(f64, f64)> {
        let canvas = self.canvas_ref.get_untracked()?;
        let r = canvas.get_bounding_client_rect();
        if r.width() <= 0.0 || r.height() <= 0.0 {
            return None;
        }
        Some((
            (ev.client_x() as f64 - r.left()) * canvas.width() as f64 / r.width(),
            (ev.client_y() as f64 - r.top()) * canvas.height() as f64 / r.height(),
        ))
    }

    /// Image pixels per screen pixel, to size the polygon's snapping distance.
    fn scale(self) -> f64 {
        self.canvas_ref
            .get_untracked()
            .map(|c| {
                let r = c.get_bounding_client_rect();
                if r.width() > 0.0 { c.width() as f64 / r.width() } else { 1.0 }
            })
            .unwrap_or(1.0)
    }

    /// The value painting writes now: the current label, 0 for the eraser; None when there is no label yet.
    fn paint_value(self) -> Option<u8> {
        if self.tool.get_untracked() == Tool::Eraser {
            return Some(0);
        }
        let n = self.labels.with_untracked(Vec::len);
        let i = self.current.get_untracked();
        (i < n && i < 255).then(|| i as u8 + 1)
    }

    fn no_label(self) {
        self.status.set(Some(Err("Add an anomaly label first (for example defect), then paint with it.".into())));
    }

    fn stroke(self, from: (f64, f64), to: (f64, f64)) {
        let Some(v) = self.paint_value() else { return };
        let r = self.brush.get_untracked() / 2.0;
        let mut changed = None;
        self.with_mask(&mut |m| changed = Some(m.stroke(from, to, r, v)));
        self.render(changed);
    }

    /// Keeps the buffer as an undo step, before a change.
    fn remember(self) {
        let mut snap = Vec::new();
        self.with_mask(&mut |m| snap = m.px.clone());
        self.history.update_value(|h| {
            h.push(snap);
            if h.len() > HISTORY {
                h.remove(0);
            }
        });
        self.redo.update_value(|r| r.clear());
        self.mark_dirty(true);
    }

    fn restore(self, from: StoredValue<Vec<Vec<u8>>>, to: StoredValue<Vec<Vec<u8>>>) {
        let Some(prev) = from.try_update_value(|v| v.pop()).flatten() else { return };
        let mut now = Vec::new();
        self.with_mask(&mut |m| now = std::mem::replace(&mut m.px, prev.clone()));
        to.update_value(|v| v.push(now));
        self.mark_dirty(true);
        self.render(None);
    }

    pub fn undo(self) {
        self.restore(self.history, self.redo);
    }

    pub fn redo(self) {
        self.restore(self.redo, self.history);
    }

    pub fn clear(self) {
        self.remember();
        self.with_mask(&mut |m| m.px.iter_mut().for_each(|v| *v = 0));
        self.render(None);
    }

    /// Fills the polygon being drawn (at least three corners) with the current label.
    pub fn close_polygon(self) {
        let pts = self.polygon.get_untracked();
        self.polygon.set(Vec::new());
        if pts.len() < 3 {
            return;
        }
        let Some(v) = self.paint_value() else { return self.no_label() };
        self.remember();
        let mut changed = None;
        self.with_mask(&mut |m| changed = Some(m.fill_polygon(&pts, v)));
        self.render(changed);
    }

    /// The current label's colour, tracked (for the polygon preview).
    pub fn colour_now(self) -> String {
        let i = self.current.get();
        self.labels.with(|l| l.get(i).map(|l| l.color.clone())).unwrap_or_default()
    }

    pub fn pointer_down(self, ev: leptos::ev::PointerEvent) {
        if self.tool.get_untracked() == Tool::Pan || ev.button() == 1 {
            ev.prevent_default();
            if let Some(s) = self.scroll_ref.get_untracked() {
                self.pan_from.set_value(Some((ev.client_x() as f64, ev.client_y() as f64, s.scroll_left(), s.scroll_top())));
            }
            return;
        }
        let Some(p) = self.point(&ev) else { return };
        if self.paint_value().is_none() {
            self.no_label();
            return;
        }
        if self.tool.get_untracked() == Tool::Polygon {
            let near_start = self.polygon.with_untracked(|pts| {
                pts.len() >= 3 && pts.first().is_some_and(|f| ((f.0 - p.0).powi(2) + (f.1 - p.1).powi(2)).sqrt() < 10.0 * self.scale())
            });
            if near_start { self.close_polygon() } else { self.polygon.update(|pts| pts.push(p)) }
            return;
        }
        self.remember();
        self.stroke(p, p);
        self.last.set_value(Some(p));
    }

    pub fn pointer_move(self, ev: leptos::ev::PointerEvent) {
        if let Some((x0, y0, l0, t0)) = self.pan_from.get_value() {
            if let Some(s) = self.scroll_ref.get_untracked() {
                s.set_scroll_left(l0 - (ev.client_x() as f64 - x0) as i32);
                s.set_scroll_top(t0 - (ev.client_y() as f64 - y0) as i32);
            }
            return;
        }
        if let (Some(from), Some(to)) = (self.last.get_value(), self.point(&ev)) {
            self.stroke(from, to);
            self.last.set_value(Some(to));
        }
    }

    /// The pointer went up or left the canvas: the stroke or the pan ends.
    pub fn pointer_end(self) {
        self.last.set_value(None);
        self.pan_from.set_value(None);
    }

    /// Reads an existing mask into the buffer: each colour of its colour map becomes that label, whatever
    /// colour the project gives the label now.
    pub fn load_mask(self) {
        let Some(img) = self.mask_img_ref.get_untracked() else { return };
        if self.canvas_ref.get_untracked().is_none() || self.mask_loaded.get_value() || !img.complete() || img.natural_width() == 0 {
            return;
        }
        self.mask_loaded.set_value(true);
        let Some(px) = image_pixels(&img, self.wu, self.hu) else { return };
        let classes: Vec<([u8; 3], u8)> = self.labels.with_untracked(|ls| {
            self.mask_classes
                .get_value()
                .iter()
                .filter_map(|m| {
                    let i = ls.iter().position(|l| l.name == m.name)?;
                    Some((rgb(&m.color)?, (i + 1).min(255) as u8))
                })
                .collect()
        });
        let (loaded, unknown) = IndexMask::from_rgba(self.wu, self.hu, &px, &classes);
        self.mask.set_value(loaded);
        self.render(None);
        if unknown > 0 {
            self.status.set(Some(Err(format!(
                "{unknown} pixel(s) of the saved mask had a colour of no label and were left out; saving will store the mask without them."
            ))));
        }
    }

    /// Fits the image to the viewport: as wide as the stage allows, and no taller than the window below it.
    fn measure(self) {
        let Some(s) = self.scroll_ref.get_untracked() else { return };
        let (w, h) = (self.w, self.h);
        let avail_w = s.client_width() as f64;
        let top = s.get_bounding_client_rect().top().max(0.0);
        let inner_h = window().inner_height().ok().and_then(|v| v.as_f64()).unwrap_or(800.0);
        // The stage scrolls inside at most 75 % of the window (see the stylesheet).
        let avail_h = (inner_h - top - 16.0).min(inner_h * 0.75).max(200.0);
        if w > 0 && h > 0 && avail_w > 0.0 {
            self.fit.set(avail_w.min(avail_h * w as f64 / h as f64).floor());
        }
    }

    /// The stage's width style, tracked.
    pub fn stage_width(self) -> String {
        let f = self.fit.get();
        if f > 0.0 { format!("width: {}px", (f * self.zoom.get()).round()) } else { format!("width: {}%", self.zoom.get() * 100.0) }
    }

    /// Zooms to `z`, keeping the image point under (cx, cy) (client coordinates) where it is.
    pub fn zoom_at(self, z: f64, cx: f64, cy: f64) {
        let zoom = self.zoom;
        let z = z.clamp(1.0, 8.0);
        let (Some(s), Some(st)) = (self.scroll_ref.get_untracked(), self.stage_ref.get_untracked()) else {
            zoom.set(z);
            return;
        };
        let before = st.get_bounding_client_rect();
        if before.width() <= 0.0 {
            zoom.set(z);
            return;
        }
        let (fx, fy) = ((cx - before.left()) / before.width(), (cy - before.top()) / before.height());
        let base = if self.fit.get_untracked() > 0.0 { self.fit.get_untracked() } else { before.width() / zoom.get_untracked() };
        // Resize now (the reactive style follows), so the new layout can be read back at once.
        let _ = web_sys::HtmlElement::style(&st).set_property("width", &format!("{}px", (base * z).round()));
        zoom.set(z);
        let after = st.get_bounding_client_rect();
        s.set_scroll_left(s.scroll_left() + (after.left() + fx * after.width() - cx).round() as i32);
        s.set_scroll_top(s.scroll_top() + (after.top() + fy * after.height() - cy).round() as i32);
    }

    /// Saves the mask as a PNG in the labels' colours, with the colour map of the labels it uses.
    pub fn save(self) {
        let labels = self.labels;
        let n = labels.with_untracked(Vec::len);
        let mut used = vec![false; n];
        let mut rgba = Vec::new();
        let cs = self.colours();
        self.with_mask(&mut |m| {
            let census = m.census();
            for (i, u) in used.iter_mut().enumerate() {
                *u = census[i + 1] > 0;
            }
            rgba = m.rgba(m.full(), &cs);
        });
        let Some(png) = png_data_url(self.wu, self.hu, &rgba) else { return };
        let l: Vec<AnomalyLabel> = labels.with_untracked(|ls| ls.iter().zip(&used).filter(|(_, u)| **u).map(|(l, _)| l.clone()).collect());
        let (p, t, i) = (self.project.get_value(), self.dataset_type.get_value(), self.entry_id.get_value());
        self.status.set(Some(Ok("Saving…".into())));
        spawn_local(async move {
            match save_mask(p, t, i, png, l).await {
                Ok(()) => {
                    self.class_now.set(Some("anomaly".into()));
                    self.mark_dirty(false);
                    self.status.set(Some(Ok("Mask saved; the image is labelled anomaly.".into())))
                }
                Err(e) => self.status.set(Some(Err(error_text(&e)))),
            }
        });
    }

    /// Labels the image `normal` or `anomaly`, or unlabels it (`""`).
    pub fn classify(self, label: &'static str) {
        let (p, t, i) = (self.project.get_value(), self.dataset_type.get_value(), self.entry_id.get_value());
        spawn_local(async move {
            match set_labels(p, t, vec![i], label.to_string()).await {
                Ok(_) => {
                    self.class_now.set((!label.is_empty()).then(|| label.to_string()));
                    self.status.set(Some(Ok(if label.is_empty() { "Label removed.".into() } else { format!("Labelled {label}.") })));
                }
                Err(e) => self.status.set(Some(Err(error_text(&e)))),
            }
        });
    }

    /// Deletes a label: refused while it is painted here; once the server agrees, the labels after it move down
    /// one place in the buffer and in every undo step.
    pub fn remove_label(self, name: String) {
        let (labels, status) = (self.labels, self.status);
        let Some(i) = labels.with_untracked(|ls| ls.iter().position(|x| x.name == name)) else { return };
        let mut painted = false;
        self.with_mask(&mut |m| painted = m.uses(i as u8 + 1));
        if painted {
            status.set(Some(Err(format!("{name} is painted on this image; erase it (or undo) before deleting the label."))));
            return;
        }
        let p = self.project.get_value();
        spawn_local(async move {
            match delete_label(p, name.clone()).await {
                Ok(()) => {
                    let mut map = [0u8; 256];
                    for (v, m) in map.iter_mut().enumerate() {
                        *m = if v <= i { v as u8 } else { v as u8 - 1 };
                    }
                    map[i + 1] = 0;
                    self.with_mask(&mut |m| m.remap(&map));
                    let shift = |steps: &mut Vec<Vec<u8>>| {
                        for s in steps.iter_mut() {
                            for v in s.iter_mut() {
                                *v = map[*v as usize];
                            }
                        }
                    };
                    self.history.update_value(shift);
                    self.redo.update_value(shift);
                    labels.update(|ls| {
                        ls.remove(i);
                    });
                    self.current.update(|c| *c = c.saturating_sub(usize::from(*c >= i && *c > 0)));
                    self.render(None);
                    status.set(Some(Ok(format!("Deleted the label {name}."))));
                }
                Err(e) => status.set(Some(Err(error_text(&e)))),
            }
        });
    }
}
