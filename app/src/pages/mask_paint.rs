//! The labelling canvas's pixels, kept as a label-index buffer (0 = no label, `i + 1` = the project's `i`-th
//! anomaly label) and rasterised here, never by the browser's 2D context: a canvas stroke or fill
//! anti-aliases its edges into colours that belong to no label, and a recolour or a save would then have to
//! guess what they were. Whatever is shown and saved is rendered from the buffer in exact label colours.
//! Plain Rust over bytes, tested natively.

/// A `width`×`height` label-index buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexMask {
    pub width: u32,
    pub height: u32,
    pub px: Vec<u8>,
}

/// A rectangle of pixels, `x0..x1` × `y0..y1` (half-open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Rect {
    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }
}

impl IndexMask {
    pub fn new(width: u32, height: u32) -> Self {
        IndexMask { width, height, px: vec![0; width as usize * height as usize] }
    }

    /// The pixels inside `[x0, x1) × [y0, y1)` (in image coordinates, any values), clamped to the image.
    fn clamp(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> Rect {
        let c = |v: f64, max: u32| v.floor().clamp(0.0, max as f64) as u32;
        Rect { x0: c(x0, self.width), y0: c(y0, self.height), x1: c(x1.ceil(), self.width), y1: c(y1.ceil(), self.height) }
    }

    /// Sets every pixel whose centre lies within `radius` of the segment `a`–`b` (a round brush dragged
    /// from `a` to `b`) to `value`. Returns the rectangle that may have changed.
    pub fn stroke(&mut self, a: (f64, f64), b: (f64, f64), radius: f64, value: u8) -> Rect {
        let r = radius.max(0.5);
        let rect = self.clamp(a.0.min(b.0) - r, a.1.min(b.1) - r, a.0.max(b.0) + r + 1.0, a.1.max(b.1) + r + 1.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in rect.y0..rect.y1 {
            let cy = y as f64 + 0.5;
            let row = y as usize * self.width as usize;
            for x in rect.x0..rect.x1 {
                let cx = x as f64 + 0.5;
                let t = if len2 > 0.0 { (((cx - a.0) * dx + (cy - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (px, py) = (a.0 + t * dx - cx, a.1 + t * dy - cy);
                if px * px + py * py <= r * r {
                    self.px[row + x as usize] = value;
                }
            }
        }
        rect
    }

    /// Sets every pixel whose centre lies inside the polygon (even-odd rule) to `value`.
    pub fn fill_polygon(&mut self, pts: &[(f64, f64)], value: u8) -> Rect {
        if pts.len() < 3 {
            return Rect { x0: 0, y0: 0, x1: 0, y1: 0 };
        }
        let (mut minx, mut miny, mut maxx, mut maxy) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for &(x, y) in pts {
            minx = minx.min(x);
            miny = miny.min(y);
            maxx = maxx.max(x);
            maxy = maxy.max(y);
        }
        let rect = self.clamp(minx, miny, maxx + 1.0, maxy + 1.0);
        let mut xs = Vec::new();
        for y in rect.y0..rect.y1 {
            let cy = y as f64 + 0.5;
            xs.clear();
            for i in 0..pts.len() {
                let (p, q) = (pts[i], pts[(i + 1) % pts.len()]);
                if (p.1 <= cy) != (q.1 <= cy) {
                    xs.push(p.0 + (cy - p.1) / (q.1 - p.1) * (q.0 - p.0));
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            let row = y as usize * self.width as usize;
            for pair in xs.chunks_exact(2) {
                // Pixels whose centre x + 0.5 lies in [pair[0], pair[1]).
                let from = (pair[0] - 0.5).ceil().max(rect.x0 as f64) as u32;
                let to = ((pair[1] - 0.5).ceil().max(0.0) as u32).min(rect.x1);
                for x in from..to {
                    self.px[row + x as usize] = value;
                }
            }
        }
        rect
    }

    /// Whether any pixel has `value`.
    pub fn uses(&self, value: u8) -> bool {
        self.px.contains(&value)
    }

    /// Pixels per value (index 0 = unlabelled).
    pub fn census(&self) -> [u64; 256] {
        let mut n = [0u64; 256];
        for &v in &self.px {
            n[v as usize] += 1;
        }
        n
    }

    /// Rewrites values through `map` (a label deleted: the ones after it move down).
    pub fn remap(&mut self, map: &[u8; 256]) {
        for v in &mut self.px {
            *v = map[*v as usize];
        }
    }

    /// RGBA bytes of a rectangle: label `i` in `colours[i - 1]`, opaque; unlabelled transparent. A value with
    /// no colour (never written by the editor) is drawn transparent too.
    pub fn rgba(&self, rect: Rect, colours: &[[u8; 3]]) -> Vec<u8> {
        let w = (rect.x1 - rect.x0) as usize;
        let mut out = vec![0u8; w * (rect.y1 - rect.y0) as usize * 4];
        for y in rect.y0..rect.y1 {
            let row = y as usize * self.width as usize;
            let o = (y - rect.y0) as usize * w * 4;
            for x in rect.x0..rect.x1 {
                let v = self.px[row + x as usize];
                if v == 0 {
                    continue;
                }
                if let Some(c) = colours.get(v as usize - 1) {
                    let i = o + (x - rect.x0) as usize * 4;
                    out[i..i + 3].copy_from_slice(c);
                    out[i + 3] = 255;
                }
            }
        }
        out
    }

    pub fn full(&self) -> Rect {
        Rect { x0: 0, y0: 0, x1: self.width, y1: self.height }
    }

    /// Reads a saved mask (RGBA bytes of the mask image): white, black and transparent are background; a
    /// colour of `classes` (`(colour, value)`) takes its value, and a colour within a small distance of one
    /// (an imported mask with soft edges) the nearest. Returns the buffer and how many pixels had a colour
    /// it could not place (left unlabelled).
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8], classes: &[([u8; 3], u8)]) -> (IndexMask, u64) {
        const TOLERANCE: i32 = 48;
        let mut m = IndexMask::new(width, height);
        let mut unknown = 0;
        for (i, p) in rgba.chunks_exact(4).enumerate().take(m.px.len()) {
            let c = [p[0], p[1], p[2]];
            if p[3] < 128 || c == [255, 255, 255] || c == [0, 0, 0] {
                continue;
            }
            let nearest = classes
                .iter()
                .map(|(k, v)| ((0..3).map(|j| (c[j] as i32 - k[j] as i32).abs()).sum::<i32>(), *v))
                .min_by_key(|(d, _)| *d);
            match nearest {
                Some((d, v)) if d <= TOLERANCE => m.px[i] = v,
                _ => unknown += 1,
            }
        }
        (m, unknown)
    }
}

/// `#RRGGBB` as bytes.
pub fn rgb(hex: &str) -> Option<[u8; 3]> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 || !h.is_ascii() {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([b(0)?, b(2)?, b(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse() {
        assert_eq!(rgb("#E4572E"), Some([0xE4, 0x57, 0x2E]));
        assert_eq!(rgb("E4572E"), None);
        assert_eq!(rgb("#E457"), None);
    }

    #[test]
    fn strokes_are_exact_and_round() {
        let mut m = IndexMask::new(20, 10);
        let r = m.stroke((5.0, 5.0), (5.0, 5.0), 2.0, 3);
        // A dot of radius 2 at (5, 5): the 12 pixel centres within 2 px.
        assert_eq!(m.census()[3], 12);
        assert!(r.x0 <= 3 && r.x1 >= 7);
        // Only the value written, never an in-between one.
        assert!(m.px.iter().all(|&v| v == 0 || v == 3));
        // A thin line along row 2's centres: 16 pixels between the ends, plus one at each round end.
        m.stroke((2.0, 2.5), (18.0, 2.5), 0.5, 1);
        assert_eq!(m.census()[1], 18);
        // Erasing writes 0.
        m.stroke((0.0, 0.0), (20.0, 10.0), 30.0, 0);
        assert_eq!(m.census()[0], 200);
    }

    #[test]
    fn polygons_fill_pixel_centres() {
        let mut m = IndexMask::new(10, 10);
        m.fill_polygon(&[(2.0, 2.0), (6.0, 2.0), (6.0, 5.0), (2.0, 5.0)], 2);
        assert_eq!(m.census()[2], 12);
        assert_eq!(m.px[2 * 10 + 2], 2);
        assert_eq!(m.px[5 * 10 + 2], 0);
        // A triangle never writes outside its bounds, and fewer than three corners write nothing.
        let mut t = IndexMask::new(10, 10);
        t.fill_polygon(&[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)], 1);
        assert_eq!(t.census()[1], 45);
        assert!(t.fill_polygon(&[(0.0, 0.0), (3.0, 3.0)], 1).is_empty());
    }

    #[test]
    fn renders_exact_colours_and_reads_them_back() {
        let mut m = IndexMask::new(4, 2);
        m.px = vec![0, 1, 2, 1, 2, 0, 0, 9];
        let colours = [[10, 20, 30], [200, 100, 50]];
        let rgba = m.rgba(m.full(), &colours);
        assert_eq!(&rgba[4..8], &[10, 20, 30, 255]);
        assert_eq!(&rgba[8..12], &[200, 100, 50, 255]);
        assert_eq!(&rgba[0..4], &[0, 0, 0, 0]);
        assert_eq!(&rgba[28..32], &[0, 0, 0, 0]);
        // Recolouring label 1 changes every one of its pixels and nothing else.
        let rgba2 = m.rgba(m.full(), &[[1, 2, 3], [200, 100, 50]]);
        for i in 0..8 {
            let was = &rgba[i * 4..i * 4 + 4];
            let now = &rgba2[i * 4..i * 4 + 4];
            if m.px[i] == 1 { assert_eq!(now, &[1, 2, 3, 255]) } else { assert_eq!(was, now) }
        }
        let (back, unknown) = IndexMask::from_rgba(4, 2, &rgba, &[([10, 20, 30], 1), ([200, 100, 50], 2)]);
        assert_eq!(back.px, vec![0, 1, 2, 1, 2, 0, 0, 0]);
        assert_eq!(unknown, 0);
        // White is background, a near colour snaps on load, a far one is counted.
        let px = [255, 255, 255, 255, 12, 22, 30, 255, 90, 90, 90, 255, 0, 0, 0, 255];
        let (back, unknown) = IndexMask::from_rgba(4, 1, &px, &[([10, 20, 30], 1)]);
        assert_eq!(back.px, vec![0, 1, 0, 0]);
        assert_eq!(unknown, 1);
        let mut map = [0u8; 256];
        map[2] = 1;
        m.remap(&map);
        assert_eq!(m.px, vec![0, 0, 1, 0, 1, 0, 0, 0]);
    }
}
