//! The labelling canvas's label panel: the project's anomaly labels to paint with — pick one, add one (a
//! duplicate name selects the existing label), rename one in a dialog (across the project's masks), recolour,
//! delete — and the server calls behind them. What a change means for the painted pixels stays with the canvas
//! (`mask_editor.rs`): it redraws after a recolour (`on_recoloured`) and performs deletions (`on_remove`),
//! which must renumber its label-index buffer.

use super::mask_tools::Tool;
use crate::api::{create_label, error_text, recolor_label, rename_label, AnomalyLabel};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Colours offered to new labels, in turn (none is white or black, the background colours).
const PALETTE: [&str; 8] = ["#E4572E", "#23A436", "#1F77B4", "#F2A541", "#9B5DE5", "#00BBF9", "#F15BB5", "#8AC926"];

/// The panel's signals and the canvas's callbacks, and what the panel's controls do. `Copy`, so every handler
/// holds its own.
#[derive(Clone, Copy)]
struct Panel {
    project: StoredValue<String>,
    labels: RwSignal<Vec<AnomalyLabel>>,
    current: RwSignal<usize>,
    tool: RwSignal<Tool>,
    status: RwSignal<Option<Result<String, String>>>,
    new_name: RwSignal<String>,
    renaming: RwSignal<Option<String>>,
    /// The rename dialog's new name, and what went wrong with it.
    rename_to: RwSignal<String>,
    rename_error: RwSignal<Option<String>>,
    on_recoloured: Callback<()>,
    on_remove: Callback<String>,
}

impl Panel {
    /// Adds the label named in the form (in the first palette colour no label has), or selects the label of
    /// that name.
    fn add_label(self, ev: leptos::ev::SubmitEvent) {
        let Panel { project, labels, current, tool, status, new_name, .. } = self;
        ev.prevent_default();
        let name = new_name.get_untracked().trim().to_string();
        if name.is_empty() {
            return;
        }
        if let Some(i) = labels.with_untracked(|l| l.iter().position(|x| x.name.eq_ignore_ascii_case(&name))) {
            let existing = labels.with_untracked(|l| l[i].name.clone());
            current.set(i);
            new_name.set(String::new());
            status.set(Some(Err(format!("There is already a label named {existing}; it is selected."))));
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
                        l.push(AnomalyLabel { name, color: colour });
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
    }

    fn recolour(self, name: String, colour: String) {
        let Panel { project, labels, status, on_recoloured, .. } = self;
        if let Some(other) = labels.with_untracked(|ls| ls.iter().find(|x| x.name != name && x.color.eq_ignore_ascii_case(&colour)).map(|x| x.name.clone())) {
            status.set(Some(Err(format!("The label {other} already has the colour {colour}; choose another."))));
            labels.update(|_| {}); // puts the colour picker back
            return;
        }
        let p = project.get_value();
        spawn_local(async move {
            match recolor_label(p, name.clone(), colour.clone()).await {
                Ok(()) => {
                    labels.update(|ls| {
                        if let Some(x) = ls.iter_mut().find(|x| x.name == name) {
                            x.color = colour.clone();
                        }
                    });
                    // Every pixel of the label takes the new colour: the canvas draws them from its index buffer.
                    on_recoloured.run(());
                    status.set(Some(Ok(format!("{name} is now {colour}."))));
                }
                Err(e) => {
                    labels.update(|_| {});
                    status.set(Some(Err(error_text(&e))));
                }
            }
        });
    }

    /// Renames the label of the open dialog to the dialog's name.
    fn rename(self) {
        let Panel { project, labels, status, renaming, rename_to, rename_error, .. } = self;
        let Some(old) = renaming.get_untracked() else { return };
        let new = rename_to.get_untracked().trim().to_string();
        if new.is_empty() || new == old {
            renaming.set(None);
            return;
        }
        if labels.with_untracked(|ls| ls.iter().any(|x| x.name != old && x.name.eq_ignore_ascii_case(&new))) {
            rename_error.set(Some(format!("There is already a label named {new}.")));
            return;
        }
        let p = project.get_value();
        spawn_local(async move {
            match rename_label(p, old.clone(), new.clone()).await {
                Ok(n) => {
                    labels.update(|ls| {
                        if let Some(x) = ls.iter_mut().find(|x| x.name == old) {
                            x.name = new.clone();
                        }
                    });
                    renaming.set(None);
                    status.set(Some(Ok(format!("Renamed {old} to {new} in {n} image{}.", if n == 1 { "" } else { "s" }))));
                }
                Err(e) => rename_error.set(Some(error_text(&e))),
            }
        });
    }
}

/// `renaming` holds the label whose rename dialog is open (the canvas ignores its shortcuts meanwhile).
#[component]
pub fn LabelPanel(
    project: StoredValue<String>,
    labels: RwSignal<Vec<AnomalyLabel>>,
    current: RwSignal<usize>,
    tool: RwSignal<Tool>,
    status: RwSignal<Option<Result<String, String>>>,
    new_name: RwSignal<String>,
    renaming: RwSignal<Option<String>>,
    on_recoloured: Callback<()>,
    on_remove: Callback<String>,
) -> impl IntoView {
    let rename_to = RwSignal::new(String::new());
    let rename_error = RwSignal::new(None::<String>);
    let panel = Panel { project, labels, current, tool, status, new_name, renaming, rename_to, rename_error, on_recoloured, on_remove };

    view! {
        <h2>"Labels"</h2>
        <Show when=move || labels.with(Vec::is_empty)>
            <p class="hint">"This project has no anomaly label yet: add one (for example defect) to paint with it."</p>
        </Show>
        <ul class="label-list">
            {move || labels.get().into_iter().enumerate().map(|(i, l)| view! { <LabelRow panel i l/> }).collect_view()}
        </ul>
        <form class="form-row" on:submit=move |ev| panel.add_label(ev)>
            <input type="text" placeholder="new label, e.g. scratch" aria-label="New label name" prop:value=new_name on:input=move |ev| new_name.set(event_target_value(&ev))/>
            <button type="submit">"Add"</button>
        </form>
        <RenameDialog panel/>
    }
}

/// One label (`i`: its place in the list): pick it, rename, delete, recolour.
#[component]
fn LabelRow(panel: Panel, i: usize, l: AnomalyLabel) -> impl IntoView {
    let Panel { current, tool, renaming, rename_to, rename_error, on_remove, .. } = panel;
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
                    rename_to.set(old.clone());
                    rename_error.set(None);
                    renaming.set(Some(old.clone()));
                }
            }>"✎"</button>
            <button type="button" class="small-button danger" aria-label=format!("Delete {}", l.name) title="Delete (only when no saved mask uses it)" on:click={
                let name = name.clone();
                move |_| on_remove.run(name.clone())
            }>"✕"</button>
            <input type="color" aria-label=format!("Colour of {}", l.name) prop:value=l.color.clone()
                on:change={
                    let name = name.clone();
                    move |ev| panel.recolour(name.clone(), event_target_value(&ev).to_uppercase())
                }/>
        </li>
    }
}

/// The rename dialog, open while `renaming` names a label.
#[component]
fn RenameDialog(panel: Panel) -> impl IntoView {
    let Panel { renaming, rename_to, rename_error, .. } = panel;
    view! {
        <Show when=move || renaming.with(Option::is_some)>
            <div class="dialog-backdrop">
                <form class="card dialog" role="dialog" aria-modal="true" aria-label="Rename label"
                    on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); panel.rename(); }
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Escape" { renaming.set(None); }>
                    <h2>{move || format!("Rename {}", renaming.get().unwrap_or_default())}</h2>
                    <p class="muted small">"Every mask of the project that uses it is renamed too."</p>
                    <input type="text" aria-label="New name" autofocus prop:value=rename_to on:input=move |ev| rename_to.set(event_target_value(&ev))/>
                    {move || rename_error.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
                    <div class="form-row spaced">
                        <button type="submit" class="primary">"Rename"</button>
                        <button type="button" on:click=move |_| renaming.set(None)>"Cancel"</button>
                    </div>
                </form>
            </div>
        </Show>
    }
}
