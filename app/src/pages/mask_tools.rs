//! The labelling canvas's tools: what a pointer on the canvas does. The canvas (`mask`) and the label panel
//! (`mask_labels`) both switch tools, so the type sits below both.

/// What a pointer on the canvas does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    Polygon,
    Pan,
}
