//! The mask painter: paint anomaly masks over an image with a brush or an eraser, in the colours of the
//! project's anomaly labels, with undo/redo, zoom (pan by scrolling) and mask opacity. Saved masks follow LFV's convention (label
//! colours on white) and appear in the dataset's JSON lines as `anomaly-mask-ref` with a colour map.

use crate::api::{error_text, get_entry, rename_label, save_mask, EntryDetail, LabelColor};
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

#[component]
fn MaskEditor(project: String, dataset_type: String, detail: EntryDetail) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let mask_img_ref = NodeRef::<leptos::html::Img>::new();
    let initial = if detail.labels.is_empty() {
        vec![LabelColor { name: "defect".into(), color: PALETTE[0].into() }]
    } else {
        detail.labels.clone()
    };
    let labels = RwSignal::new(initial);
    let current = RwSignal::new(0usize);
    let brush = RwSignal::new(((detail.width.max(detail.height) as f64) / 40.0).clamp(4.0, 200.0).round());
    let erasing = RwSignal::new(false);
    let opacity = RwSignal::new(0.6f64);
    let zoom = RwSignal::new(1.0f64);
    let status = RwSignal::new(None::<Result<String, String>>);
    let new_name = RwSignal::new(String::new());
    let history = StoredValue::new_local(Vec::<web_sys::ImageData>::new());
    let redo = StoredValue::new_local(Vec::<web_sys::ImageData>::new());
    let last = StoredValue::new(None::<(f64, f64)>);
    let (w, h) = (detail.width, detail.height);

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
    let stroke = move |from: (f64, f64), to: (f64, f64)| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(ctx) = context(&canvas) else { return };
        let colour = labels.with_untracked(|l| l.get(current.get_untracked()).map(|l| l.color.clone())).unwrap_or_default();
        let _ = ctx.set_global_composite_operation(if erasing.get_untracked() { "destination-out" } else { "source-over" });
        ctx.set_stroke_style_str(&colour);
        ctx.set_line_width(brush.get_untracked());
        ctx.set_line_cap("round");
        ctx.set_line_join("round");
        ctx.begin_path();
        ctx.move_to(from.0, from.1);
        ctx.line_to(to.0, to.1);
        ctx.stroke();
    };
    let remember = move || {
        if let Some(s) = canvas_ref.get_untracked().as_ref().and_then(snapshot) {
            history.update_value(|h| {
                h.push(s);
                if h.len() > 50 {
                    h.remove(0);
                }
            });
            redo.update_value(|r| r.clear());
        }
    };
    let restore = move |from: StoredValue<Vec<web_sys::ImageData>, LocalStorage>, to: StoredValue<Vec<web_sys::ImageData>, LocalStorage>| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(prev) = from.try_update_value(|v| v.pop()).flatten() else { return };
        if let Some(now) = snapshot(&canvas) {
            to.update_value(|v| v.push(now));
        }
        if let Some(ctx) = context(&canvas) {
            let _ = ctx.put_image_data(&prev, 0.0, 0.0);
        }
    };
    // An existing mask is loaded into the canvas with its background made transparent.
    let load_mask = move |_| {
        let (Some(canvas), Some(img)) = (canvas_ref.get_untracked(), mask_img_ref.get_untracked()) else { return };
        let Some(ctx) = context(&canvas) else { return };
        let _ = ctx.draw_image_with_html_image_element(&img, 0.0, 0.0);
        let Some(data) = snapshot(&canvas) else { return };
        let mut px = data.data().0;
        for p in px.chunks_exact_mut(4) {
            let bg = (p[0] == 255 && p[1] == 255 && p[2] == 255) || (p[0] == 0 && p[1] == 0 && p[2] == 0);
            if bg {
                p[3] = 0;
            }
        }
        if let Ok(clean) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            leptos::wasm_bindgen::Clamped(&px),
            canvas.width(),
            canvas.height(),
        ) {
            let _ = ctx.put_image_data(&clean, 0.0, 0.0);
        }
    };
    let save = {
        let (project, dataset_type, id) = (project.clone(), dataset_type.clone(), detail.entry.id.clone());
        move |_| {
            let Some(canvas) = canvas_ref.get_untracked() else { return };
            let Ok(png) = canvas.to_data_url_with_type("image/png") else { return };
            let (p, t, i, l) = (project.clone(), dataset_type.clone(), id.clone(), labels.get_untracked());
            status.set(Some(Ok("Saving…".into())));
            spawn_local(async move {
                match save_mask(p, t, i, png, l).await {
                    Ok(()) => status.set(Some(Ok("Mask saved; the image is labelled anomaly.".into()))),
                    Err(e) => status.set(Some(Err(error_text(&e)))),
                }
            });
        }
    };
    let add_label = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = new_name.get_untracked().trim().to_string();
        if name.is_empty() || labels.with_untracked(|l| l.iter().any(|x| x.name == name)) {
            return;
        }
        labels.update(|l| {
            let colour = PALETTE.iter().find(|c| !l.iter().any(|x| x.color.eq_ignore_ascii_case(c))).unwrap_or(&PALETTE[0]);
            l.push(LabelColor { name, color: colour.to_string() });
            current.set(l.len() - 1);
        });
        new_name.set(String::new());
    };

    let image_url = format!("/media/{}", detail.entry.image);
    let mask_url = detail.mask.as_ref().map(|m| format!("/media/{m}"));
    let back = format!("/projects/{}/datasets/{}", project, dataset_type);
    let project_for_rename = project.clone();
    view! {
        <header class="page-head">
            <h1>{detail.entry.name.clone()}</h1>
            <p class="muted">{format!("{w}×{h} px · paint where the anomaly is, then save")}</p>
        </header>
        <div class="mask-layout">
            <div class="card mask-stage">
                <div class="stage-scroll" aria-label="Image (scroll to pan when zoomed)">
                <div class="stage" style=move || format!("width: {}%", zoom.get() * 100.0)>
                    <img src=image_url alt="Image to label" class="stage-image"/>
                    <canvas
                        node_ref=canvas_ref
                        width=w
                        height=h
                        class="stage-canvas"
                        aria-label="Mask canvas"
                        style=move || format!("opacity: {}", opacity.get())
                        on:pointerdown=move |ev| {
                            remember();
                            if let Some(p) = point(&ev) {
                                stroke(p, p);
                                last.set_value(Some(p));
                            }
                        }
                        on:pointermove=move |ev| {
                            if let (Some(from), Some(to)) = (last.get_value(), point(&ev)) {
                                stroke(from, to);
                                last.set_value(Some(to));
                            }
                        }
                        on:pointerup=move |_| last.set_value(None)
                        on:pointerleave=move |_| last.set_value(None)
                    ></canvas>
                </div>
                </div>
                {mask_url.map(|u| view! { <img node_ref=mask_img_ref src=u class="visually-hidden" alt="" on:load=load_mask/> })}
            </div>
            <aside class="card mask-tools">
                <h2>"Labels"</h2>
                <ul class="label-list">
                    {move || labels.get().into_iter().enumerate().map(|(i, l)| view! {
                        <li>
                            <label class="inline">
                                <input type="radio" name="mask-label" prop:checked=move || current.get() == i on:change=move |_| { current.set(i); erasing.set(false); }/>
                                <span class="swatch" style=format!("background: {}", l.color)></span>
                                {l.name.clone()}
                            </label>
                            <button type="button" class="small-button" aria-label=format!("Rename {}", l.name) on:click={
                                let old = l.name.clone();
                                let project = project_for_rename.clone();
                                move |_| {
                                    let Ok(Some(new)) = window().prompt_with_message_and_default(&format!("Rename the label {old} to:"), &old) else { return };
                                    let new = new.trim().to_string();
                                    if new.is_empty() || new == old { return; }
                                    let (p, o) = (project.clone(), old.clone());
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
                            <input type="color" aria-label=format!("Colour of {}", l.name) prop:value=l.color.clone()
                                on:input=move |ev| { let v = event_target_value(&ev); labels.update(|ls| if let Some(x) = ls.get_mut(i) { x.color = v.to_uppercase(); }); }/>
                        </li>
                    }).collect_view()}
                </ul>
                <form class="form-row" on:submit=add_label>
                    <input type="text" placeholder="new label, e.g. scratch" aria-label="New label name" prop:value=new_name on:input=move |ev| new_name.set(event_target_value(&ev))/>
                    <button type="submit">"Add"</button>
                </form>
                <h2>"Tools"</h2>
                <div class="form-row">
                    <button type="button" class:active=move || !erasing.get() on:click=move |_| erasing.set(false)>"Brush"</button>
                    <button type="button" class:active=move || erasing.get() on:click=move |_| erasing.set(true)>"Eraser"</button>
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
                    <button type="button" on:click=move |_| restore(history, redo)>"Undo"</button>
                    <button type="button" on:click=move |_| restore(redo, history)>"Redo"</button>
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
