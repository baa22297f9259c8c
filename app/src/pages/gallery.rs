//! The dataset page's gallery: images found (filter, anomaly type, search by name, order, numbered pages),
//! selected (click, shift-click for a range, Ctrl/Cmd+A for every image of the filter) and labelled, moved or
//! deleted with the buttons or the keyboard. [`GalleryState`] holds the signals and what the controls do;
//! the components below are its views.
//!
//! A selection only ever holds images the current query shows: changing the filter, anomaly type, search or
//! order clears it (and drops a select-all still on its way), a label change that takes images out of the
//! view drops them from it, and every action checks the selection against the query before it acts — so no
//! Delete or Move reaches an image the user cannot see.

use crate::api::{
    delete_entries, error_text, list_entries, list_entry_ids, list_labels, move_entries, set_labels, EntryPage, EntryQuery, EntryView,
    GALLERY_PAGE,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::HashSet;

/// "1 image" / "12 images".
fn images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

/// The gallery's signals: what it shows, what is selected and focused, what the last action said. `Copy`, so
/// every handler holds its own.
#[derive(Clone, Copy)]
struct GalleryState {
    project: Signal<String>,
    dataset_type: Signal<String>,
    /// Bumped after every change so the dataset page and the gallery reload.
    version: RwSignal<u32>,
    filter: RwSignal<String>,
    /// An anomaly label: only images whose mask uses it (overrides the label filter).
    anomaly_type: RwSignal<Option<String>>,
    search: RwSignal<String>,
    sort: RwSignal<String>,
    page: RwSignal<usize>,
    /// What the gallery shows, without the page (select-all and the canvas's previous / next use it).
    query: Memo<EntryQuery>,
    selected: RwSignal<HashSet<String>>,
    /// Where a shift-click range starts (a position on the page).
    anchor: RwSignal<Option<usize>>,
    focus: RwSignal<usize>,
    error: RwSignal<Option<String>>,
    /// What the last bulk action did.
    notice: RwSignal<Option<String>>,
    /// The entries currently shown, for the keyboard handler.
    shown: RwSignal<Vec<EntryView>>,
    /// Bumped whenever the query changes: an answer asked for under an older query is dropped.
    epoch: StoredValue<u32>,
}

impl GalleryState {
    fn new(project: Signal<String>, dataset_type: Signal<String>, version: RwSignal<u32>) -> Self {
        let filter = RwSignal::new("all".to_string());
        let anomaly_type = RwSignal::new(None::<String>);
        let search = RwSignal::new(String::new());
        let sort = RwSignal::new("added".to_string());
        let query = Memo::new(move |_| EntryQuery {
            filter: match anomaly_type.get() {
                Some(t) => format!("type:{t}"),
                None => filter.get(),
            },
            search: search.get().trim().to_string(),
            sort: sort.get(),
            page: 0,
        });
        GalleryState {
            project,
            dataset_type,
            version,
            filter,
            anomaly_type,
            search,
            sort,
            page: RwSignal::new(0usize),
            query,
            selected: RwSignal::new(HashSet::new()),
            anchor: RwSignal::new(None),
            focus: RwSignal::new(0usize),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            shown: RwSignal::new(Vec::new()),
            epoch: StoredValue::new(0),
        }
    }

    /// Back to the first page with nothing selected (the query changed): what was selected under the old
    /// filter, search or order is not what the gallery shows now.
    fn reset(self) {
        self.epoch.update_value(|e| *e += 1);
        self.page.set(0);
        self.clear_selection();
        self.focus.set(0);
        self.notice.set(None);
    }

    fn clear_selection(self) {
        self.selected.update(|s| s.clear());
        self.anchor.set(None);
    }

    /// The dataset the Move button sends images to.
    fn other(self) -> &'static str {
        if self.dataset_type.get() == "train" { "test" } else { "train" }
    }

    fn done(self, m: String) {
        self.error.set(None);
        self.notice.set(Some(m));
        self.version.update(|v| *v += 1);
        // A label change can take selected images out of the view (labelled under "unlabelled").
        self.with_targets(|_, _| {});
    }

    /// The ids the query matches now, unless the query changes before they arrive.
    async fn matching(self) -> Option<Vec<String>> {
        let (p, t, q) = (self.project.get_untracked(), self.dataset_type.get_untracked(), self.query.get_untracked());
        let epoch = self.epoch.get_value();
        match list_entry_ids(p, t, q).await {
            Ok(ids) => (self.epoch.get_value() == epoch).then_some(ids),
            Err(e) => {
                self.error.set(Some(error_text(&e)));
                None
            }
        }
    }

    /// Calls `then` with what an action applies to: the selected images that the query still matches (the
    /// selection shrinks to them), or else the focused image. Nothing happens when the query changes meanwhile.
    fn with_targets(self, then: impl FnOnce(GalleryState, Vec<String>) + 'static) {
        let sel = self.selected.get_untracked();
        if sel.is_empty() {
            let focused = self.shown.with_untracked(|l| l.get(self.focus.get_untracked()).map(|e| vec![e.id.clone()]));
            then(self, focused.unwrap_or_default());
            return;
        }
        spawn_local(async move {
            let Some(ids) = self.matching().await else { return };
            let kept: HashSet<String> = ids.into_iter().filter(|id| sel.contains(id)).collect();
            if kept.len() < sel.len() {
                // Images selected meanwhile (clicked, so shown) stay.
                self.selected.update(|s| s.retain(|id| kept.contains(id) || !sel.contains(id)));
            }
            then(self, kept.into_iter().collect());
        });
    }

    /// Deletes (`kind` "delete") or moves the images to the other dataset.
    fn run(self, kind: &'static str, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let (p, t) = (self.project.get_untracked(), self.dataset_type.get_untracked());
        let to = if t == "train" { "test" } else { "train" };
        spawn_local(async move {
            let r = match kind {
                "delete" => delete_entries(p, t, ids).await.map(|n| format!("Deleted {}.", images(n))),
                _ => move_entries(p, t, ids).await.map(|n| format!("Moved {} to {to}.", images(n))),
            };
            match r {
                Ok(m) => {
                    self.clear_selection();
                    self.done(m);
                }
                Err(e) => self.error.set(Some(error_text(&e))),
            }
        });
    }

    /// Deleting always asks first, from the button and from the Delete key alike.
    fn confirm_delete(self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let ok = window().confirm_with_message(&format!("Delete {} from this dataset?", images(ids.len()))).unwrap_or(false);
        if ok {
            self.run("delete", ids);
        }
    }

    /// Labels the images `normal`, `anomaly` or (empty) unlabelled.
    fn apply(self, ids: Vec<String>, label: &'static str) {
        if ids.is_empty() {
            return;
        }
        let (p, t) = (self.project.get_untracked(), self.dataset_type.get_untracked());
        let n = ids.len();
        spawn_local(async move {
            match set_labels(p, t, ids, label.to_string()).await {
                Ok(_) => self.done(if label.is_empty() { format!("Removed the label of {}.", images(n)) } else { format!("Labelled {} {label}.", images(n)) }),
                Err(e) => self.error.set(Some(error_text(&e))),
            }
        });
    }

    /// Labels (`normal`, `anomaly`, empty for unlabelled) what an action applies to.
    fn label(self, label: &'static str) {
        self.with_targets(move |g, ids| g.apply(ids, label));
    }

    /// Moves what an action applies to into the other dataset.
    fn move_targets(self) {
        self.with_targets(|g, ids| g.run("move", ids));
    }

    /// Deletes what an action applies to, after asking.
    fn delete_targets(self) {
        self.with_targets(|g, ids| g.confirm_delete(ids));
    }

    fn select_all(self) {
        spawn_local(async move {
            // Dropped when the filter, search or order changed while the ids were on their way.
            let Some(ids) = self.matching().await else { return };
            let n = ids.len();
            self.selected.set(ids.into_iter().collect());
            self.notice.set(Some(format!("Selected all {} of this view.", images(n))));
        });
    }

    /// A click selects or unselects one image; with Shift, every image from the last click to this one.
    fn click(self, i: usize, shift: bool) {
        let list = self.shown.get_untracked();
        let Some(e) = list.get(i) else { return };
        self.focus.set(i);
        match self.anchor.get_untracked().filter(|_| shift) {
            Some(a) => {
                let (lo, hi) = (a.min(i), a.max(i));
                self.selected.update(|s| s.extend(list[lo..=hi.min(list.len() - 1)].iter().map(|e| e.id.clone())));
            }
            None => {
                let id = e.id.clone();
                self.selected.update(|s| {
                    if !s.remove(&id) {
                        s.insert(id);
                    }
                });
            }
        }
        self.anchor.set(Some(i));
    }

    fn on_key(self, ev: leptos::ev::KeyboardEvent) {
        let n = self.shown.get_untracked().len();
        let key = ev.key();
        // Shortcuts are plain keys: with Ctrl, Cmd or Alt they are the browser's, except select-all.
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            if (ev.ctrl_key() || ev.meta_key()) && !ev.alt_key() && key.eq_ignore_ascii_case("a") {
                ev.prevent_default();
                self.select_all();
            }
            return;
        }
        match key.as_str() {
            "n" | "N" => self.label("normal"),
            "a" | "A" => self.label("anomaly"),
            "u" | "U" => self.label(""),
            "ArrowRight" | "ArrowDown" if n > 0 => self.focus.update(|f| *f = (*f + 1).min(n - 1)),
            "ArrowLeft" | "ArrowUp" => self.focus.update(|f| *f = f.saturating_sub(1)),
            " " => self.click(self.focus.get_untracked(), ev.shift_key()),
            "Escape" => self.clear_selection(),
            "Delete" => self.delete_targets(),
            _ => return,
        }
        ev.prevent_default();
    }
}

#[component]
pub fn Gallery(project: Signal<String>, dataset_type: Signal<String>, version: RwSignal<u32>) -> impl IntoView {
    let g = GalleryState::new(project, dataset_type, version);
    let entries = Resource::new(
        move || (project.get(), dataset_type.get(), EntryQuery { page: g.page.get(), ..g.query.get() }, version.get()),
        |(p, t, q, _)| list_entries(p, t, q),
    );

    view! {
        <div class="card">
            <GalleryHead g/>
            <GalleryActions g/>
            <p class="hint">"Click to select, Shift+click for a range, Ctrl+A for every image shown by the filter; N, A and U label the selection (or the focused image); Delete removes it; arrows move, space selects."</p>
            {move || g.notice.get().map(|m| view! { <p class="ok" role="status">{m}</p> })}
            <p class="error" role="alert">{move || g.error.get()}</p>
            <Transition fallback=|| view! { <p class="muted">"Loading images…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                        Ok(p) if p.entries.is_empty() => {
                            g.shown.set(Vec::new());
                            let m = if g.query.with_untracked(|q| q.filter == "all" && q.search.is_empty()) { "No images here yet." } else { "No image matches." };
                            view! { <p class="empty">{m}</p> }.into_any()
                        }
                        Ok(p) => view! { <GalleryPage g p/> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// The title and what the gallery shows: search, label filter, anomaly type (when the project has labels)
/// and order.
#[component]
fn GalleryHead(g: GalleryState) -> impl IntoView {
    // The project's anomaly labels, for the anomaly-type filter.
    let labels = Resource::new(move || (g.project.get(), g.version.get()), |(p, _)| list_labels(p));
    view! {
        <div class="gallery-head">
            <h2>"Images"</h2>
            <div class="form-row">
                <input type="search" placeholder="search by name" aria-label="Search by file name" prop:value=g.search
                    on:input=move |ev| { g.search.set(event_target_value(&ev)); g.reset(); }/>
                <label for="gallery-filter" class="inline">"Show"</label>
                <select id="gallery-filter" on:change=move |ev| { g.filter.set(event_target_value(&ev)); g.reset(); }>
                    <option value="all">"all"</option>
                    <option value="normal">"normal"</option>
                    <option value="anomaly">"anomaly"</option>
                    <option value="unlabeled">"unlabelled"</option>
                </select>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        let ls = labels.await.unwrap_or_default();
                        (!ls.is_empty()).then(|| view! {
                            <label for="gallery-type" class="inline">"Anomaly type"</label>
                            <select id="gallery-type" on:change=move |ev| {
                                let v = event_target_value(&ev);
                                g.anomaly_type.set((!v.is_empty()).then_some(v));
                                g.reset();
                            }>
                                <option value="">"any"</option>
                                {ls.into_iter().map(|l| {
                                    let chosen = g.anomaly_type.get_untracked().as_deref() == Some(l.name.as_str());
                                    view! { <option value=l.name.clone() selected=chosen>{format!("{} ({})", l.name, l.uses)}</option> }
                                }).collect_view()}
                            </select>
                        })
                    })}
                </Transition>
                <label for="gallery-sort" class="inline">"Order"</label>
                <select id="gallery-sort" on:change=move |ev| { g.sort.set(event_target_value(&ev)); g.reset(); }>
                    <option value="added">"oldest first"</option>
                    <option value="newest">"newest first"</option>
                    <option value="name">"name"</option>
                    <option value="label">"label"</option>
                </select>
            </div>
        </div>
    }
}

/// The selection count and the buttons that act on the selection (or the focused image); they are off while
/// there is neither (no image shown).
#[component]
fn GalleryActions(g: GalleryState) -> impl IntoView {
    let idle = move || g.selected.with(HashSet::is_empty) && g.shown.with(Vec::is_empty);
    view! {
        <div class="gallery-actions">
            <span class="selection" data-testid="selected-count" aria-live="polite">
                {move || {
                    let n = g.selected.with(HashSet::len);
                    if n == 0 { "Nothing selected".to_string() } else { format!("{n} selected") }
                }}
            </span>
            <button type="button" disabled=move || g.shown.with(Vec::is_empty) on:click=move |_| g.select_all()>"Select all (Ctrl+A)"</button>
            <button type="button" disabled=move || g.selected.with(HashSet::is_empty) on:click=move |_| g.clear_selection()>"Clear selection"</button>
            <button type="button" disabled=idle on:click=move |_| g.label("normal")>"Normal (N)"</button>
            <button type="button" disabled=idle on:click=move |_| g.label("anomaly")>"Anomaly (A)"</button>
            <button type="button" disabled=idle on:click=move |_| g.label("")>"Unlabel (U)"</button>
            <button type="button" disabled=idle on:click=move |_| g.move_targets()>{move || format!("Move to {}", g.other())}</button>
            <button type="button" class="danger" disabled=idle on:click=move |_| g.delete_targets()>"Delete (Del)"</button>
            <a class="button" href=move || format!("/export/{}/{}.zip", g.project.get(), g.dataset_type.get()) download>
                "Export manifest + images (zip)"
            </a>
        </div>
    }
}

/// One page of images, and the buttons to the previous and next pages.
#[component]
fn GalleryPage(g: GalleryState, p: EntryPage) -> impl IntoView {
    let more = p.more;
    let pages = ((p.total as usize).max(1)).div_ceil(GALLERY_PAGE);
    let total = p.total;
    g.shown.set(p.entries.clone());
    // The mask page's previous / next walk the gallery's images: its links carry the query.
    let qs = g.query.get_untracked().to_query_string();
    let items = p.entries.into_iter().enumerate().map(|(i, e)| view! { <Tile g i e qs=qs.clone()/> }).collect_view();
    view! {
        <ul class="gallery" tabindex="0" aria-label="Images" on:keydown=move |ev| g.on_key(ev)>{items}</ul>
        <div class="form-row spaced">
            <button type="button" disabled=move || g.page.get() == 0 on:click=move |_| { g.page.update(|p| *p = p.saturating_sub(1)); g.anchor.set(None); }>"← Previous"</button>
            <span class="muted small" data-testid="page-of">{move || format!("Page {} of {pages}", g.page.get() + 1)}</span>
            <button type="button" disabled=!more on:click=move |_| { g.page.update(|p| *p += 1); g.anchor.set(None); }>"Next →"</button>
            <span class="muted small">{format!("{} · {GALLERY_PAGE} per page", images(total as usize))}</span>
        </div>
    }
}

/// One image: thumbnail with its mask over it, name, label, mask badge and anomaly types, and the link to
/// paint its mask (`qs`: the gallery's query).
#[component]
fn Tile(g: GalleryState, i: usize, e: EntryView, qs: String) -> impl IntoView {
    let id_sel = e.id.clone();
    let id_aria = e.id.clone();
    let label = e.label.clone().unwrap_or_else(|| "unlabelled".into());
    let class = format!("badge label-{label}");
    view! {
        <li
            class="tile"
            class:selected=move || g.selected.with(|s| s.contains(&id_sel))
            class:focused=move || g.focus.get() == i
            data-label=label.clone()
            aria-selected=move || g.selected.with(|s| s.contains(&id_aria)).to_string()
            on:click=move |ev: leptos::ev::MouseEvent| g.click(i, ev.shift_key())
        >
            <div class="thumb-stack">
                <img src=format!("/media/{}?thumb=2", e.image) alt=e.name.clone() loading="lazy" width="160" height="160"/>
                // The mask over the thumbnail, in its labels' colours (white drops out).
                {e.mask.clone().map(|m| view! {
                    <img class="overlay mask-overlay" src=format!("/media/{m}?thumb=2") alt="" loading="lazy" width="160" height="160"/>
                })}
            </div>
            <span class="tile-name" title=e.source_ref.clone()>{e.name.clone()}</span>
            <span class=class>{label.clone()}</span>
            {e.has_mask.then(|| view! { <span class="badge mask" title=e.types.join(", ")>"mask"</span> })}
            {(!e.types.is_empty()).then(|| view! { <span class="tile-types muted small">{e.types.join(" · ")}</span> })}
            <a
                class="tile-link"
                href=format!("/projects/{}/datasets/{}/images/{}?{qs}", g.project.get_untracked(), g.dataset_type.get_untracked(), e.id)
                on:click=|ev| ev.stop_propagation()
            >
                "Paint mask"
            </a>
        </li>
    }
}
