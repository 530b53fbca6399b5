//! An RGB raster with anti-aliased strokes, filled polygons and disks, alpha
//! blending, and text in the embedded bitmap font.
//!
//! Coordinates are in pixels, `(0, 0)` the top-left corner of the top-left
//! pixel, so pixel `(i, j)` has its centre at `(i + 0.5, j + 0.5)`.
//! Non-finite coordinates are skipped, never drawn.

use super::font;
use super::png;

/// An 8-bit RGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// White.
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    /// Black.
    pub const BLACK: Rgb = Rgb(0, 0, 0);
}

/// An axis-aligned rectangle in pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y1: f64,
}

impl Rect {
    /// The rectangle between two corners.
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    fn intersect(&self, o: &Rect) -> Rect {
        Rect::new(
            self.x0.max(o.x0),
            self.y0.max(o.y0),
            self.x1.min(o.x1),
            self.y1.min(o.y1),
        )
    }

    fn grow(&self, d: f64) -> Rect {
        Rect::new(self.x0 - d, self.y0 - d, self.x1 + d, self.y1 + d)
    }
}

/// A coverage mask over a window of the canvas: shapes drawn into one mask
/// combine by maximum, then the mask is blended onto the canvas once, so a
/// translucent polyline does not darken where its segments meet.
struct Mask {
    x0: i64,
    y0: i64,
    w: i64,
    h: i64,
    cov: Vec<f32>,
}

impl Mask {
    /// A mask over the pixels touching `r` (already clipped to the canvas).
    fn new(r: &Rect) -> Mask {
        let x0 = r.x0.floor() as i64;
        let y0 = r.y0.floor() as i64;
        let w = ((r.x1.ceil() as i64) - x0).max(0);
        let h = ((r.y1.ceil() as i64) - y0).max(0);
        Mask {
            x0,
            y0,
            w,
            h,
            cov: vec![0.0; (w * h) as usize],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: f64) {
        let (i, j) = (x - self.x0, y - self.y0);
        if i >= 0 && j >= 0 && i < self.w && j < self.h && c > 0.0 {
            let k = (j * self.w + i) as usize;
            self.cov[k] = self.cov[k].max(c.min(1.0) as f32);
        }
    }

    fn add(&mut self, x: i64, y: i64, c: f64) {
        let (i, j) = (x - self.x0, y - self.y0);
        if i >= 0 && j >= 0 && i < self.w && j < self.h && c > 0.0 {
            let k = (j * self.w + i) as usize;
            self.cov[k] = (self.cov[k] + c as f32).min(1.0);
        }
    }

    /// The anti-aliased stroke of segment `a`-`b` with width `width`
    /// (round caps): coverage falls off linearly over one pixel at the edge.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), width: f64) {
        let hw = width.max(1.0) / 2.0;
        let fade = width.min(1.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let xs = ((a.0.min(b.0) - hw - 1.0).floor() as i64).max(self.x0);
        let xe = ((a.0.max(b.0) + hw + 1.0).ceil() as i64).min(self.x0 + self.w);
        let ys = ((a.1.min(b.1) - hw - 1.0).floor() as i64).max(self.y0);
        let ye = ((a.1.max(b.1) + hw + 1.0).ceil() as i64).min(self.y0 + self.h);
        for y in ys..ye {
            let py = y as f64 + 0.5;
            for x in xs..xe {
                let px = x as f64 + 0.5;
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (cx, cy) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let d = (cx * cx + cy * cy).sqrt();
                let c = (hw + 0.5 - d).clamp(0.0, 1.0) * fade;
                self.put(x, y, c);
            }
        }
    }
}

/// Clips segment `a`-`b` to `r` (Liang-Barsky); `None` when it misses.
fn clip_segment(a: (f64, f64), b: (f64, f64), r: &Rect) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r.x0),
        (dx, r.x1 - a.0),
        (-dy, a.1 - r.y0),
        (dy, r.y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if !t.is_finite() {
                return None;
            }
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    let (p, q) = (at(t0), at(t1));
    (p.0.is_finite() && p.1.is_finite() && q.0.is_finite() && q.1.is_finite()).then_some((p, q))
}

/// An RGB image being drawn.
#[derive(Clone, Debug)]
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
    clip: Rect,
}

impl Canvas {
    /// A `width` x `height` canvas filled with `background` (each side at
    /// least one pixel).
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let (width, height) = (width.max(1), height.max(1));
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&[background.0, background.1, background.2]);
        }
        Canvas {
            width,
            height,
            pixels,
            clip: Rect::new(0.0, 0.0, width as f64, height as f64),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    fn bounds(&self) -> Rect {
        Rect::new(0.0, 0.0, self.width as f64, self.height as f64)
    }

    /// Restricts later drawing to `r` (intersected with the canvas);
    /// `None` lifts the restriction.
    pub fn set_clip(&mut self, r: Option<Rect>) {
        self.clip = match r {
            Some(r) => r.intersect(&self.bounds()),
            None => self.bounds(),
        };
    }

    /// The colour of pixel `(x, y)`, `None` outside the canvas.
    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| {
            let k = (y * self.width + x) * 3;
            Rgb(self.pixels[k], self.pixels[k + 1], self.pixels[k + 2])
        })
    }

    /// Blends `color` with opacity `alpha` (0..=1) onto pixel `(x, y)`,
    /// inside the clip rectangle only.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
        let c = &self.clip;
        if alpha.is_nan() || alpha <= 0.0 || fx < c.x0 || fy < c.y0 || fx > c.x1 || fy > c.y1 {
            return;
        }
        let a = alpha.min(1.0);
        let k = (y as usize * self.width + x as usize) * 3;
        for (i, v) in [color.0, color.1, color.2].into_iter().enumerate() {
            let old = self.pixels[k + i] as f64;
            self.pixels[k + i] = (old + (v as f64 - old) * a).round() as u8;
        }
    }

    fn composite(&mut self, m: &Mask, color: Rgb, alpha: f64) {
        for j in 0..m.h {
            for i in 0..m.w {
                let c = m.cov[(j * m.w + i) as usize];
                if c > 0.0 {
                    self.blend(m.x0 + i, m.y0 + j, color, c as f64 * alpha);
                }
            }
        }
    }

    /// The mask window for shapes within `r` grown by `pad`, clipped.
    fn mask_for(&self, r: Rect, pad: f64) -> Option<Mask> {
        let r = r.grow(pad).intersect(&self.clip);
        (r.x0 < r.x1 && r.y0 < r.y1).then(|| Mask::new(&r))
    }

    /// Fills the rectangle `r` (anti-aliased edges).
    pub fn fill_rect(&mut self, r: Rect, color: Rgb, alpha: f64) {
        let pts = [(r.x0, r.y0), (r.x1, r.y0), (r.x1, r.y1), (r.x0, r.y1)];
        self.fill_polygon(&pts, color, alpha);
    }

    /// A straight line of width `width`.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, color: Rgb, alpha: f64) {
        self.polyline(&[a, b], width, color, alpha, None);
    }

    /// A connected line through `points`, broken where a point is not
    /// finite; `dash = Some((on, off))` draws it dashed (lengths in pixels,
    /// the pattern running on along the whole line).
    pub fn polyline(
        &mut self,
        points: &[(f64, f64)],
        width: f64,
        color: Rgb,
        alpha: f64,
        dash: Option<(f64, f64)>,
    ) {
        if !width.is_finite() || width <= 0.0 {
            return;
        }
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let mut bb = Rect::new(f64::INFINITY, f64::INFINITY, -f64::INFINITY, -f64::INFINITY);
        for p in points.iter().filter(finite) {
            bb = Rect::new(
                bb.x0.min(p.0),
                bb.y0.min(p.1),
                bb.x1.max(p.0),
                bb.y1.max(p.1),
            );
        }
        let Some(mut mask) = self.mask_for(bb, width + 2.0) else {
            return;
        };
        let window = Rect::new(
            mask.x0 as f64,
            mask.y0 as f64,
            (mask.x0 + mask.w) as f64,
            (mask.y0 + mask.h) as f64,
        )
        .grow(width + 2.0);
        let dash = dash.filter(|&(on, off)| on > 0.0 && off >= 0.0 && (on + off).is_finite());
        let mut phase = 0.0; // distance along the dash pattern
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if !(finite(&&a) && finite(&&b)) {
                continue;
            }
            let seg_len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
            match dash {
                None => {
                    if let Some((p, q)) = clip_segment(a, b, &window) {
                        mask.segment(p, q, width);
                    }
                }
                Some((on, off)) => {
                    if !seg_len.is_finite() || seg_len > 1e6 {
                        if let Some((p, q)) = clip_segment(a, b, &window) {
                            mask.segment(p, q, width);
                        }
                        continue;
                    }
                    let period = on + off;
                    let mut s = 0.0;
                    while s < seg_len {
                        let pos = phase % period;
                        let (drawing, left) = if pos < on {
                            (true, on - pos)
                        } else {
                            (false, period - pos)
                        };
                        let e = (s + left).min(seg_len);
                        if drawing && seg_len > 0.0 {
                            let at = |t: f64| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                            if let Some((p, q)) =
                                clip_segment(at(s / seg_len), at(e / seg_len), &window)
                            {
                                mask.segment(p, q, width);
                            }
                        }
                        phase += e - s;
                        s = e;
                    }
                }
            }
        }
        if points.iter().filter(finite).count() == 1 && dash.is_none() {
            let p = *points.iter().find(finite).unwrap_or(&(0.0, 0.0));
            mask.segment(p, p, width);
        }
        self.composite(&mask, color, alpha);
    }

    /// Fills the polygon through `points` (even-odd rule, anti-aliased by
    /// four sub-scanlines per row and exact horizontal coverage); non-finite
    /// points are dropped.
    pub fn fill_polygon(&mut self, points: &[(f64, f64)], color: Rgb, alpha: f64) {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.len() < 3 {
            return;
        }
        let mut bb = Rect::new(f64::INFINITY, f64::INFINITY, -f64::INFINITY, -f64::INFINITY);
        for p in &pts {
            bb = Rect::new(
                bb.x0.min(p.0),
                bb.y0.min(p.1),
                bb.x1.max(p.0),
                bb.y1.max(p.1),
            );
        }
        let Some(mut mask) = self.mask_for(bb, 1.0) else {
            return;
        };
        const SUB: usize = 4;
        let (mx0, mx1) = (mask.x0 as f64, (mask.x0 + mask.w) as f64);
        let mut xs: Vec<f64> = Vec::new();
        for j in 0..mask.h {
            let y = mask.y0 + j;
            for s in 0..SUB {
                let sy = y as f64 + (s as f64 + 0.5) / SUB as f64;
                xs.clear();
                for k in 0..pts.len() {
                    let (a, b) = (pts[k], pts[(k + 1) % pts.len()]);
                    if (a.1 <= sy) != (b.1 <= sy) {
                        let x = a.0 + (sy - a.1) / (b.1 - a.1) * (b.0 - a.0);
                        xs.push(x.clamp(mx0 - 1.0, mx1 + 1.0));
                    }
                }
                xs.sort_by(f64::total_cmp);
                for span in xs.chunks_exact(2) {
                    let (l, r) = (span[0].max(mx0), span[1].min(mx1));
                    if l >= r {
                        continue;
                    }
                    let w = 1.0 / SUB as f64;
                    let (li, ri) = (l.floor() as i64, r.floor() as i64);
                    if li == ri {
                        mask.add(li, y, (r - l) * w);
                        continue;
                    }
                    mask.add(li, y, (li as f64 + 1.0 - l) * w);
                    for x in li + 1..ri {
                        mask.add(x, y, w);
                    }
                    mask.add(ri, y, (r - ri as f64) * w);
                }
            }
        }
        self.composite(&mask, color, alpha);
    }

    /// A filled disk of radius `r` centred at `c` (anti-aliased).
    pub fn disk(&mut self, c: (f64, f64), r: f64, color: Rgb, alpha: f64) {
        if !(c.0.is_finite() && c.1.is_finite() && r > 0.0 && r.is_finite()) {
            return;
        }
        let Some(mut mask) = self.mask_for(Rect::new(c.0, c.1, c.0, c.1), r + 2.0) else {
            return;
        };
        mask.segment(c, c, 2.0 * r);
        self.composite(&mask, color, alpha);
    }

    /// Width in pixels of `s` drawn at `scale` (font pixels per pixel side).
    pub fn text_width(s: &str, scale: usize) -> f64 {
        let n = s.chars().count();
        if n == 0 {
            0.0
        } else {
            ((n * font::ADVANCE - (font::ADVANCE - font::GLYPH_W)) * scale) as f64
        }
    }

    /// Height in pixels of capitals drawn at `scale`.
    pub fn text_height(scale: usize) -> f64 {
        (font::ASCENT * scale) as f64
    }

    /// Draws `s` with its top-left corner (top of the capitals) at
    /// `(x, y)`, each font pixel a `scale` x `scale` block.
    pub fn text(&mut self, x: f64, y: f64, s: &str, scale: usize, color: Rgb) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let scale = scale.max(1) as i64;
        let (x0, y0) = (x.round() as i64, y.round() as i64);
        for (n, ch) in s.chars().enumerate() {
            let gx = x0 + n as i64 * font::ADVANCE as i64 * scale;
            for (r, bits) in font::glyph(ch).iter().enumerate() {
                for col in 0..font::GLYPH_W {
                    if bits >> (font::GLYPH_W - 1 - col) & 1 == 1 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.blend(
                                    gx + col as i64 * scale + dx,
                                    y0 + r as i64 * scale + dy,
                                    color,
                                    1.0,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The picture as a PNG file.
    pub fn to_png(&self) -> std::io::Result<Vec<u8>> {
        png::encode_rgb(self.width as u32, self.height as u32, &self.pixels)
    }

    /// Writes the picture to `path` as PNG.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_png()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_draw_where_expected_and_never_panic() {
        let mut c = Canvas::new(40, 30, Rgb::WHITE);
        c.line((5.0, 10.5), (35.0, 10.5), 2.0, Rgb::BLACK, 1.0);
        assert_eq!(c.pixel(20, 10), Some(Rgb::BLACK));
        assert_eq!(c.pixel(20, 20), Some(Rgb::WHITE));
        c.fill_rect(Rect::new(0.0, 20.0, 10.0, 30.0), Rgb(255, 0, 0), 0.5);
        assert_eq!(c.pixel(5, 25), Some(Rgb(255, 128, 128)));
        c.disk((30.0, 25.0), 3.0, Rgb(0, 0, 255), 1.0);
        assert_eq!(c.pixel(30, 25), Some(Rgb(0, 0, 255)));
        // Degenerate input: nothing drawn, nothing panics.
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        c.line((nan, 0.0), (1.0, 1.0), 2.0, Rgb::BLACK, 1.0);
        c.line((-1e300, -1e300), (1e300, 1e300), 2.0, Rgb::BLACK, 1.0);
        c.line((-inf, 0.0), (inf, 0.0), 2.0, Rgb::BLACK, 1.0);
        c.polyline(
            &[(0.0, 0.0), (1e308, 5.0)],
            1.0,
            Rgb::BLACK,
            1.0,
            Some((4.0, 2.0)),
        );
        c.fill_polygon(
            &[(0.0, 0.0), (nan, 1.0), (1e300, 1e300), (-5.0, 3.0)],
            Rgb::BLACK,
            0.3,
        );
        c.disk((inf, 1.0), 3.0, Rgb::BLACK, 1.0);
        c.text(nan, 0.0, "x", 2, Rgb::BLACK);
        c.text(-100.0, -100.0, "far away \u{3b2}", 3, Rgb::BLACK);
        c.text(38.0, 28.0, "edge", 2, Rgb::BLACK);
        assert!(c.to_png().unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn clipping_confines_drawing() {
        let mut c = Canvas::new(20, 20, Rgb::WHITE);
        c.set_clip(Some(Rect::new(5.0, 5.0, 15.0, 15.0)));
        c.fill_rect(Rect::new(0.0, 0.0, 20.0, 20.0), Rgb::BLACK, 1.0);
        assert_eq!(c.pixel(2, 2), Some(Rgb::WHITE));
        assert_eq!(c.pixel(10, 10), Some(Rgb::BLACK));
    }
}
