//! PNG pictures of sample results, drawn with a small built-in raster
//! library (no plotting dependency): [`trace_plot`] for MCMC chains and
//! [`band_plot`] for a posterior function with its credible band.
//!
//! Both functions accept any input without panicking: non-finite values
//! are skipped, empty or constant data get a padded axis range, and the
//! same input always gives the same bytes.

pub mod canvas;
pub mod font;
pub mod png;

use canvas::{Canvas, Rect, Rgb};
use std::path::Path;

/// Line colours, one per series (the "tab10" palette).
pub const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];

const INK: Rgb = Rgb(30, 30, 30);
const GRID: Rgb = Rgb(228, 228, 228);
const EXACT: Rgb = Rgb(20, 20, 20);
/// Font scale of tick labels, axis labels and legends.
const TEXT: usize = 2;
/// Font scale of titles.
const TITLE: usize = 3;

/// The finite values' (min, max), `None` when there are none.
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn merge(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// An axis range for data spanning `r`: (0, 1) without data, a padded
/// interval around constant data, and `margin` of the span added each side.
fn axis_range(r: Option<(f64, f64)>, margin: f64) -> (f64, f64) {
    let Some((mut lo, mut hi)) = r else {
        return (0.0, 1.0);
    };
    const BIG: f64 = f64::MAX / 8.0;
    lo = lo.clamp(-BIG, BIG);
    hi = hi.clamp(-BIG, BIG);
    if hi - lo <= (lo.abs().max(hi.abs()) * 1e-12).max(f64::MIN_POSITIVE) {
        let c = 0.5 * (lo + hi);
        let pad = if c.abs() > 1e-12 { 0.1 * c.abs() } else { 1.0 };
        return (c - pad, c + pad);
    }
    let span = hi - lo;
    (lo - margin * span, hi + margin * span)
}

/// Tick positions at 1-2-5 steps inside `[lo, hi]`, about `target` of them,
/// and the step.
fn nice_ticks(lo: f64, hi: f64, target: usize, min_step: f64) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return (Vec::new(), 1.0);
    }
    let target = target.max(2) as f64;
    let e = (span / target).log10().floor();
    // The 1-2-5 step whose tick count is nearest the target (ties: the
    // larger step), at least two ticks where possible.
    let count = |step: f64| ((hi / step).floor() - (lo / step).ceil() + 1.0).max(0.0);
    let mut step = f64::NAN;
    let mut best = f64::INFINITY;
    for k in [e - 1.0, e, e + 1.0] {
        for m in [1.0, 2.0, 5.0] {
            let s = m * 10f64.powf(k);
            let n = count(s);
            if !(s > 0.0 && s >= min_step && s.is_finite() && n.is_finite()) {
                continue;
            }
            let score = (n - target).abs() + if n < 2.0 { 100.0 } else { 0.0 };
            if score <= best {
                best = score;
                step = s;
            }
        }
    }
    let (first, last) = ((lo / step).ceil(), (hi / step).floor());
    if !(first.is_finite() && last.is_finite()) || last - first > 100.0 || last < first {
        return (Vec::new(), step);
    }
    let ticks = (0..=(last - first) as i64)
        .map(|i| (first + i as f64) * step)
        .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
        .collect();
    (ticks, step)
}

/// Labels for ticks at `step`: plain decimals with just enough digits, or
/// scientific notation for very large or small magnitudes.
fn tick_labels(ticks: &[f64], step: f64) -> Vec<String> {
    let big = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let step_exp = step.log10().floor() as i32;
    if big >= 1e5 || (big > 0.0 && big < 1e-3) {
        let big_exp = big.log10().floor() as i32;
        let prec = (big_exp - step_exp).clamp(0, 12) as usize;
        ticks
            .iter()
            .map(|&v| {
                if v == 0.0 {
                    "0".to_string()
                } else {
                    format!("{v:.prec$e}")
                }
            })
            .collect()
    } else {
        // The step's own digits: 0.25 needs 2 decimals, 0.2 one.
        let mut dec = (-step_exp).max(0) as usize;
        while dec < 12
            && ((step * 10f64.powi(dec as i32)).round() - step * 10f64.powi(dec as i32)).abs()
                > 1e-6
        {
            dec += 1;
        }
        ticks.iter().map(|&v| format!("{v:.dec$}")).collect()
    }
}

/// Ticks and labels that fit: fewer ticks until neighbouring labels
/// (widths measured by `width`, along an axis of `length` pixels) leave a
/// gap.
fn fitted_ticks(
    lo: f64,
    hi: f64,
    length: f64,
    horizontal: bool,
    min_step: f64,
) -> (Vec<f64>, Vec<String>) {
    let mut target = if horizontal {
        (length / 100.0).clamp(4.0, 10.0) as usize
    } else {
        (length / 45.0).clamp(4.0, 8.0) as usize
    };
    loop {
        let (ticks, step) = nice_ticks(lo, hi, target, min_step);
        let labels = tick_labels(&ticks, step);
        let spacing = if ticks.len() > 1 {
            length * (ticks[1] - ticks[0]) / (hi - lo)
        } else {
            f64::INFINITY
        };
        let need = if horizontal {
            labels
                .iter()
                .map(|l| Canvas::text_width(l, TEXT))
                .fold(0.0, f64::max)
                + 16.0
        } else {
            Canvas::text_height(TEXT) + 14.0
        };
        if spacing >= need || target <= 2 {
            return (ticks, labels);
        }
        target -= 1;
    }
}

/// One plotting panel: a pixel rectangle and the data ranges it shows.
struct Panel {
    area: Rect,
    x: (f64, f64),
    y: (f64, f64),
    xt: (Vec<f64>, Vec<String>),
    yt: (Vec<f64>, Vec<String>),
}

impl Panel {
    /// Lays out a panel inside `outer` (which holds its tick labels and
    /// axis labels as well), `top` pixels reserved above for the y label.
    fn new(outer: Rect, x: (f64, f64), y: (f64, f64), x_min_step: f64) -> Panel {
        let top = outer.y0 + 34.0;
        let bottom = outer.y1 - 58.0;
        let yt = fitted_ticks(y.0, y.1, bottom - top, false, 0.0);
        let label_w =
            yt.1.iter()
                .map(|l| Canvas::text_width(l, TEXT))
                .fold(0.0, f64::max);
        let left = outer.x0 + label_w + 16.0;
        let right = outer.x1;
        let xt = fitted_ticks(x.0, x.1, right - left, true, x_min_step);
        Panel {
            area: Rect::new(left.round(), top.round(), right.round(), bottom.round()),
            x,
            y,
            xt,
            yt,
        }
    }

    fn px(&self, v: f64) -> f64 {
        self.area.x0 + (v - self.x.0) / (self.x.1 - self.x.0) * (self.area.x1 - self.area.x0)
    }

    fn py(&self, v: f64) -> f64 {
        self.area.y1 - (v - self.y.0) / (self.y.1 - self.y.0) * (self.area.y1 - self.area.y0)
    }

    fn pt(&self, x: f64, y: f64) -> (f64, f64) {
        (self.px(x), self.py(y))
    }

    /// Background grid, before the data.
    fn grid(&self, c: &mut Canvas) {
        let a = self.area;
        for &t in &self.xt.0 {
            let x = self.px(t).round() + 0.5;
            c.line((x, a.y0), (x, a.y1), 1.0, GRID, 1.0);
        }
        for &t in &self.yt.0 {
            let y = self.py(t).round() + 0.5;
            c.line((a.x0, y), (a.x1, y), 1.0, GRID, 1.0);
        }
    }

    /// Restricts drawing to the plot area.
    fn clip(&self, c: &mut Canvas) {
        c.set_clip(Some(self.area));
    }

    /// Frame, ticks, tick labels and axis labels, after the data.
    fn axes(&self, c: &mut Canvas, x_label: &str, y_label: &str) {
        c.set_clip(None);
        let a = self.area;
        let th = Canvas::text_height(TEXT);
        for (&t, l) in self.xt.0.iter().zip(&self.xt.1) {
            let x = self.px(t).round() + 0.5;
            c.line((x, a.y1), (x, a.y1 + 6.0), 1.5, INK, 1.0);
            c.text(
                x - Canvas::text_width(l, TEXT) / 2.0,
                a.y1 + 14.0,
                l,
                TEXT,
                INK,
            );
        }
        for (&t, l) in self.yt.0.iter().zip(&self.yt.1) {
            let y = self.py(t).round() + 0.5;
            c.line((a.x0 - 6.0, y), (a.x0, y), 1.5, INK, 1.0);
            c.text(
                a.x0 - 10.0 - Canvas::text_width(l, TEXT),
                y - th / 2.0,
                l,
                TEXT,
                INK,
            );
        }
        let (x0, y0, x1, y1) = (a.x0 + 0.5, a.y0 + 0.5, a.x1 - 0.5, a.y1 - 0.5);
        c.polyline(
            &[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
            1.5,
            INK,
            1.0,
            None,
        );
        let xw = Canvas::text_width(x_label, TEXT);
        c.text((a.x0 + a.x1 - xw) / 2.0, a.y1 + 38.0, x_label, TEXT, INK);
        c.text(a.x0, a.y0 - th - 15.0, y_label, TEXT, INK);
    }
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Swatch {
    Line(Rgb, f64),
    Dashed(Rgb, f64),
    Fill(Rgb, f64),
}

fn legend_size(entries: &[(Swatch, String)]) -> (f64, f64) {
    let text_w = entries
        .iter()
        .map(|(_, l)| Canvas::text_width(l, TEXT))
        .fold(0.0, f64::max);
    let row = Canvas::text_height(TEXT) + 12.0;
    (
        36.0 + 10.0 + text_w + 24.0,
        row * entries.len() as f64 + 10.0,
    )
}

/// The legend corner of `p` covering the fewest of `data` (points in data
/// coordinates), and how many it covers.
fn legend_spot(p: &Panel, size: (f64, f64), data: &[(f64, f64)]) -> ((f64, f64), usize) {
    let (w, h) = size;
    let a = p.area;
    let m = 10.0;
    let corners = [
        (a.x1 - m - w, a.y0 + m),
        (a.x0 + m, a.y0 + m),
        (a.x1 - m - w, a.y1 - m - h),
        (a.x0 + m, a.y1 - m - h),
    ];
    let pixels: Vec<(f64, f64)> = data.iter().map(|&(x, y)| p.pt(x, y)).collect();
    let hits = |&(x, y): &(f64, f64)| {
        pixels
            .iter()
            .filter(|q| {
                q.0 >= x - 6.0 && q.0 <= x + w + 6.0 && q.1 >= y - 6.0 && q.1 <= y + h + 6.0
            })
            .count()
    };
    corners
        .iter()
        .map(|c| ((c.0.round(), c.1.round()), hits(c)))
        .min_by_key(|c| c.1)
        .unwrap_or(((a.x0, a.y0), 0))
}

/// The panel `make(headroom)` with the least extra room above the data
/// (`headroom`, a fraction of the y range) that leaves a legend corner
/// clear of `data`, and that corner.
fn panel_with_legend(
    make: impl Fn(f64) -> Panel,
    entries: &[(Swatch, String)],
    data: &[(f64, f64)],
) -> (Panel, (f64, f64)) {
    let size = legend_size(entries);
    let mut best: Option<(Panel, (f64, f64), usize)> = None;
    for headroom in [0.0, 0.15, 0.3, 0.5, 0.75] {
        let p = make(headroom);
        let (spot, hits) = legend_spot(&p, size, data);
        if hits == 0 {
            return (p, spot);
        }
        if best.as_ref().is_none_or(|b| hits < b.2) {
            best = Some((p, spot, hits));
        }
    }
    let (p, spot, _) = best.unwrap_or_else(|| {
        let p = make(0.0);
        let a = p.area;
        (p, (a.x0, a.y0), 0)
    });
    (p, spot)
}

/// Draws a boxed legend with its top-left corner at `at`.
fn legend(c: &mut Canvas, entries: &[(Swatch, String)], at: (f64, f64)) {
    if entries.is_empty() {
        return;
    }
    let th = Canvas::text_height(TEXT);
    let row = th + 12.0;
    let sw = 36.0;
    let (w, h) = legend_size(entries);
    let (x, y) = at;
    c.set_clip(None);
    c.fill_rect(Rect::new(x, y, x + w, y + h), Rgb::WHITE, 0.9);
    let b = [
        (x + 0.5, y + 0.5),
        (x + w - 0.5, y + 0.5),
        (x + w - 0.5, y + h - 0.5),
        (x + 0.5, y + h - 0.5),
        (x + 0.5, y + 0.5),
    ];
    c.polyline(&b, 1.0, Rgb(160, 160, 160), 1.0, None);
    for (i, (s, label)) in entries.iter().enumerate() {
        let ty = y + 5.0 + row * i as f64 + 6.0;
        let my = ty + th / 2.0;
        let (sx0, sx1) = (x + 12.0, x + 12.0 + sw);
        match *s {
            Swatch::Line(col, wd) => c.line((sx0, my), (sx1, my), wd, col, 1.0),
            Swatch::Dashed(col, wd) => {
                c.polyline(&[(sx0, my), (sx1, my)], wd, col, 1.0, Some((9.0, 5.0)))
            }
            Swatch::Fill(col, al) => c.fill_rect(Rect::new(sx0, my - 7.0, sx1, my + 7.0), col, al),
        }
        c.text(sx1 + 10.0, ty, label, TEXT, INK);
    }
}

fn title(c: &mut Canvas, text: &str) {
    let w = Canvas::text_width(text, TITLE);
    c.text(
        ((c.width() as f64 - w) / 2.0).max(8.0),
        14.0,
        text,
        TITLE,
        INK,
    );
}

/// Normal density N(mean, sd^2) at `x`.
fn normal_pdf(x: f64, mean: f64, sd: f64) -> f64 {
    let z = (x - mean) / sd;
    (-0.5 * z * z).exp() / (sd * (2.0 * std::f64::consts::PI).sqrt())
}

/// The Gaussian kernel density estimate of `draws` (finite, sorted) at
/// `xs`, bandwidth by Silverman's rule; `None` when the draws do not
/// spread. Large samples are first binned on a fine grid.
fn kde(draws: &[f64], xs: &[f64]) -> Option<Vec<f64>> {
    let n = draws.len();
    if n < 2 {
        return None;
    }
    let mean = draws.iter().sum::<f64>() / n as f64;
    let sd = (draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let q = |p: f64| draws[((n - 1) as f64 * p).round() as usize];
    let iqr = q(0.75) - q(0.25);
    let spread = if iqr > 0.0 { sd.min(iqr / 1.34) } else { sd };
    let h = 0.9 * spread * (n as f64).powf(-0.2);
    if !(h > 0.0 && h.is_finite()) {
        return None;
    }
    // Linear binning onto 1024 points keeps the cost independent of n.
    let (lo, hi) = (draws[0], draws[n - 1]);
    const G: usize = 1024;
    let dx = (hi - lo) / (G - 1) as f64;
    let mut grid = vec![0.0; G];
    for &v in draws {
        let t = if dx > 0.0 { (v - lo) / dx } else { 0.0 };
        let i = (t.floor() as usize).min(G - 2);
        let f = (t - i as f64).clamp(0.0, 1.0);
        grid[i] += 1.0 - f;
        grid[i + 1] += f;
    }
    let norm = 1.0 / (n as f64 * h * (2.0 * std::f64::consts::PI).sqrt());
    Some(
        xs.iter()
            .map(|&x| {
                grid.iter()
                    .enumerate()
                    .filter(|(_, w)| **w > 0.0)
                    .map(|(i, w)| {
                        let z = (x - (lo + i as f64 * dx)) / h;
                        if z.abs() > 8.0 {
                            0.0
                        } else {
                            w * (-0.5 * z * z).exp()
                        }
                    })
                    .sum::<f64>()
                    * norm
            })
            .collect(),
    )
}

/// Writes a trace-and-marginal picture (PNG, 1200 x 450) of `chains`
/// (shape `(chain, draw)`) for parameter `name`.
///
/// Left: each chain's draws against the draw index, one colour per chain.
/// Right: the pooled draws' marginal density as a 40-bin histogram and a
/// Gaussian KDE (Silverman's bandwidth), with `reference = Some((mean,
/// sd))` drawing the exact normal density N(mean, sd^2) dashed. Non-finite
/// draws are skipped; empty or constant chains still give a picture.
pub fn trace_plot(
    path: &Path,
    name: &str,
    chains: ndarray::ArrayView2<f64>,
    reference: Option<(f64, f64)>,
) -> std::io::Result<()> {
    trace_canvas(name, chains, reference).save(path)
}

fn trace_canvas(
    name: &str,
    chains: ndarray::ArrayView2<f64>,
    reference: Option<(f64, f64)>,
) -> Canvas {
    let (w, h) = (1200.0, 450.0);
    let mut c = Canvas::new(w as usize, h as usize, Rgb::WHITE);
    title(&mut c, &format!("{name}: trace and marginal"));
    let (n_chains, n_draws) = chains.dim();
    let reference = reference.filter(|(m, s)| m.is_finite() && s.is_finite() && *s > 0.0);

    // Left panel: traces.
    let vr = finite_range(chains.iter().copied());
    let tx = axis_range(Some((0.0, n_draws.saturating_sub(1) as f64)), 0.0);
    let tx = if n_draws <= 1 {
        tx
    } else {
        (0.0, (n_draws - 1) as f64)
    };
    let tp = Panel::new(
        Rect::new(24.0, 60.0, 730.0, h - 6.0),
        tx,
        axis_range(vr, 0.05),
        1.0,
    );
    tp.grid(&mut c);
    tp.clip(&mut c);
    let width = if n_draws > 2000 { 1.0 } else { 1.5 };
    for (k, chain) in chains.outer_iter().enumerate() {
        let col = PALETTE[k % PALETTE.len()];
        let pts: Vec<(f64, f64)> = chain
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.is_finite() {
                    tp.pt(i as f64, v)
                } else {
                    (f64::NAN, f64::NAN)
                }
            })
            .collect();
        c.polyline(&pts, width, col, 0.85, None);
        if n_draws <= 60 {
            for &p in &pts {
                c.disk(p, 3.0, col, 1.0);
            }
        }
    }
    tp.axes(&mut c, "draw", name);
    // Chain legend: one row above the panel, right-aligned.
    // As many chains as fit beside the y label, then "+N more".
    let th = Canvas::text_height(TEXT);
    let entry_w = |l: &str| 22.0 + 6.0 + Canvas::text_width(l, TEXT) + 16.0;
    let more = |k: usize| format!("+{} more", n_chains - k);
    let name_end = tp.area.x0 + Canvas::text_width(name, TEXT) + 20.0;
    let avail = tp.area.x1 - name_end;
    let total_for = |k: usize| {
        (0..k).map(|i| entry_w(&format!("chain {i}"))).sum::<f64>()
            + if k < n_chains {
                Canvas::text_width(&more(k), TEXT) + 16.0
            } else {
                0.0
            }
            + 4.0
    };
    let mut shown = n_chains;
    while shown > 0 && total_for(shown) > avail {
        shown -= 1;
    }
    let mut labels: Vec<(Rgb, String)> = (0..shown)
        .map(|k| (PALETTE[k % PALETTE.len()], format!("chain {k}")))
        .collect();
    if n_chains > shown {
        labels.push((Rgb::WHITE, more(shown)));
    }
    if !labels.is_empty() && total_for(shown) <= avail {
        let total = total_for(shown);
        let (bx1, by0) = (tp.area.x1, tp.area.y0 - th - 22.0);
        let bx0 = bx1 - total;
        c.fill_rect(Rect::new(bx0, by0, bx1, by0 + th + 14.0), Rgb::WHITE, 1.0);
        let b = [
            (bx0 + 0.5, by0 + 0.5),
            (bx1 - 0.5, by0 + 0.5),
            (bx1 - 0.5, by0 + th + 13.5),
            (bx0 + 0.5, by0 + th + 13.5),
            (bx0 + 0.5, by0 + 0.5),
        ];
        c.polyline(&b, 1.0, Rgb(160, 160, 160), 1.0, None);
        let mut x = bx0 + 10.0;
        c.set_clip(Some(Rect::new(bx0, by0, bx1, by0 + th + 14.0)));
        for (col, l) in &labels {
            let my = by0 + 7.0 + th / 2.0;
            if *col != Rgb::WHITE {
                c.line((x, my), (x + 22.0, my), 3.0, *col, 1.0);
                c.text(x + 28.0, by0 + 7.0, l, TEXT, INK);
            } else {
                c.text(x, by0 + 7.0, l, TEXT, INK);
            }
            x += entry_w(l);
        }
        c.set_clip(None);
    }

    // Right panel: pooled marginal density.
    let mut pooled: Vec<f64> = chains.iter().copied().filter(|v| v.is_finite()).collect();
    pooled.sort_by(f64::total_cmp);
    let mut dr = finite_range(pooled.iter().copied());
    if let Some((m, s)) = reference {
        dr = merge(dr, finite_range([m - 4.0 * s, m + 4.0 * s]));
    }
    let dx = axis_range(dr, 0.03);
    const BINS: usize = 40;
    let hist: Vec<(f64, f64, f64)> = match finite_range(pooled.iter().copied()) {
        Some((lo, hi)) if hi > lo => {
            let bw = (hi - lo) / BINS as f64;
            let mut counts = [0usize; BINS];
            for &v in &pooled {
                counts[(((v - lo) / bw) as usize).min(BINS - 1)] += 1;
            }
            let norm = 1.0 / (pooled.len() as f64 * bw);
            (0..BINS)
                .map(|i| {
                    (
                        lo + i as f64 * bw,
                        lo + (i + 1) as f64 * bw,
                        counts[i] as f64 * norm,
                    )
                })
                .filter(|b| b.2.is_finite())
                .collect()
        }
        _ => Vec::new(),
    };
    let xs: Vec<f64> = (0..=300)
        .map(|i| dx.0 + (dx.1 - dx.0) * i as f64 / 300.0)
        .collect();
    let dens = kde(&pooled, &xs);
    let exact: Option<Vec<f64>> =
        reference.map(|(m, s)| xs.iter().map(|&x| normal_pdf(x, m, s)).collect());
    let top = hist
        .iter()
        .map(|b| b.2)
        .chain(dens.iter().flatten().copied())
        .chain(exact.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let dy_top = if top > 0.0 { top * 1.08 } else { 1.0 };
    let hist_col = Rgb(31, 119, 180);
    let kde_col = Rgb(20, 70, 140);
    let constant = dens.is_none() && hist.is_empty() && !pooled.is_empty();
    let mut entries = Vec::new();
    let mut data = Vec::new();
    if !hist.is_empty() {
        entries.push((Swatch::Fill(hist_col, 0.25), "histogram".to_string()));
        for &(a, b, d) in &hist {
            for i in 0..=4 {
                for j in 0..=6 {
                    data.push((a + (b - a) * i as f64 / 4.0, d * j as f64 / 6.0));
                }
            }
        }
    }
    if let Some(d) = &dens {
        entries.push((Swatch::Line(kde_col, 2.5), "KDE".to_string()));
        data.extend(xs.iter().copied().zip(d.iter().copied()));
    } else if constant {
        entries.push((Swatch::Line(kde_col, 3.0), "draws (constant)".to_string()));
        data.extend((0..=20).map(|j| (pooled[0], dy_top * j as f64 / 20.0)));
    }
    if let Some(e) = &exact {
        entries.push((Swatch::Dashed(EXACT, 2.0), "exact".to_string()));
        data.extend(xs.iter().copied().zip(e.iter().copied()));
    }
    let outer = Rect::new(800.0, 60.0, w - 24.0, h - 6.0);
    let (dp, spot) = panel_with_legend(
        |room| Panel::new(outer, dx, (0.0, dy_top * (1.0 + room)), 0.0),
        &entries,
        &data,
    );
    dp.grid(&mut c);
    dp.clip(&mut c);
    if let (Some(first), Some(last)) = (hist.first(), hist.last()) {
        // The histogram as one step-shaped polygon: no seams between bars.
        let mut poly = vec![dp.pt(first.0, 0.0)];
        for &(a, b, d) in &hist {
            poly.push(dp.pt(a, d));
            poly.push(dp.pt(b, d));
        }
        poly.push(dp.pt(last.1, 0.0));
        c.fill_polygon(&poly, hist_col, 0.25);
    }
    if let Some(d) = &dens {
        let pts: Vec<(f64, f64)> = xs.iter().zip(d).map(|(&x, &y)| dp.pt(x, y)).collect();
        c.polyline(&pts, 2.5, kde_col, 1.0, None);
    } else if constant {
        let x = dp.px(pooled[0]);
        c.line((x, dp.py(0.0)), (x, dp.py(dy_top)), 3.0, kde_col, 1.0);
    }
    if let Some(e) = &exact {
        let pts: Vec<(f64, f64)> = xs.iter().zip(e).map(|(&x, &y)| dp.pt(x, y)).collect();
        c.polyline(&pts, 2.0, EXACT, 1.0, Some((10.0, 6.0)));
    }
    dp.axes(&mut c, name, "density");
    legend(&mut c, &entries, spot);
    c
}

/// Writes a posterior band picture (PNG, 900 x 600): the shaded 90% band
/// between `lo` and `hi`, the posterior `mean` line and, when given, the
/// `exact` solution dashed, all against `x`, with a legend.
///
/// Series shorter than `x` cut it short; non-finite points leave gaps;
/// empty or constant data still give a picture.
#[allow(clippy::too_many_arguments)]
pub fn band_plot(
    path: &Path,
    title: &str,
    x: &[f64],
    mean: &[f64],
    lo: &[f64],
    hi: &[f64],
    exact: Option<&[f64]>,
    x_label: &str,
    y_label: &str,
) -> std::io::Result<()> {
    band_canvas(title, x, mean, lo, hi, exact, x_label, y_label).save(path)
}

#[allow(clippy::too_many_arguments)]
fn band_canvas(
    title_text: &str,
    x: &[f64],
    mean: &[f64],
    lo: &[f64],
    hi: &[f64],
    exact: Option<&[f64]>,
    x_label: &str,
    y_label: &str,
) -> Canvas {
    let (w, h) = (900.0, 600.0);
    let mut c = Canvas::new(w as usize, h as usize, Rgb::WHITE);
    title(&mut c, title_text);
    let n = x.len();
    let get = |s: &[f64], i: usize| s.get(i).copied().unwrap_or(f64::NAN);
    let xr = finite_range(x.iter().copied());
    let mut yr = None;
    for s in [mean, lo, hi, exact.unwrap_or(&[])] {
        let vals = (0..n).filter(|&i| get(x, i).is_finite()).map(|i| get(s, i));
        yr = merge(yr, finite_range(vals));
    }
    let band_col = Rgb(31, 119, 180);
    let mean_col = Rgb(20, 70, 140);
    // Runs of points where x, lo and hi are finite: one band polygon each.
    let ok = |i: usize| get(x, i).is_finite() && get(lo, i).is_finite() && get(hi, i).is_finite();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < n {
        if !ok(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && ok(i) {
            i += 1;
        }
        runs.push(start..i);
    }
    // What the legend must not cover, in data coordinates: the band, and
    // each line densely sampled between its points.
    let mut data = Vec::new();
    let sample_line = |s: &[f64], data: &mut Vec<(f64, f64)>| {
        for i in 0..n {
            let (x0, y0) = (get(x, i), get(s, i));
            if !(x0.is_finite() && y0.is_finite()) {
                continue;
            }
            data.push((x0, y0));
            let (x1, y1) = (get(x, i + 1), get(s, i + 1));
            if x1.is_finite() && y1.is_finite() {
                data.extend((1..8).map(|k| {
                    let t = k as f64 / 8.0;
                    (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
                }));
            }
        }
    };
    for r in &runs {
        for k in r.clone() {
            for f in 0..=6 {
                data.push((x[k], lo[k] + (hi[k] - lo[k]) * f as f64 / 6.0));
            }
        }
    }
    sample_line(lo, &mut data);
    sample_line(hi, &mut data);
    sample_line(mean, &mut data);
    let mut entries = vec![(Swatch::Line(mean_col, 2.5), "posterior mean".to_string())];
    if !runs.is_empty() {
        entries.push((Swatch::Fill(band_col, 0.3), "90% band".to_string()));
    }
    if let Some(e) = exact {
        sample_line(e, &mut data);
        entries.push((Swatch::Dashed(EXACT, 2.0), "exact".to_string()));
    }
    let outer = Rect::new(24.0, 60.0, w - 30.0, h - 6.0);
    let (xa, ya) = (axis_range(xr, 0.02), axis_range(yr, 0.06));
    let (p, spot) = panel_with_legend(
        |room| Panel::new(outer, xa, (ya.0, ya.1 + room * (ya.1 - ya.0)), 0.0),
        &entries,
        &data,
    );
    p.grid(&mut c);
    p.clip(&mut c);
    for r in &runs {
        let mut poly: Vec<(f64, f64)> = r.clone().map(|k| p.pt(x[k], lo[k])).collect();
        poly.extend(r.clone().rev().map(|k| p.pt(x[k], hi[k])));
        if r.len() == 1 {
            // A single point: a short vertical bar.
            c.line(poly[0], poly[1], 6.0, band_col, 0.3);
        } else {
            c.fill_polygon(&poly, band_col, 0.3);
        }
    }
    let series = |s: &[f64]| -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let (a, b) = (get(x, i), get(s, i));
                if a.is_finite() && b.is_finite() {
                    p.pt(a, b)
                } else {
                    (f64::NAN, f64::NAN)
                }
            })
            .collect()
    };
    c.polyline(&series(mean), 2.5, mean_col, 1.0, None);
    if let Some(e) = exact {
        c.polyline(&series(e), 2.0, EXACT, 1.0, Some((10.0, 6.0)));
    }
    p.axes(&mut c, x_label, y_label);
    legend(&mut c, &entries, spot);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("crux-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Four AR(1) chains, deterministic.
    fn ar1(chains: usize, draws: usize) -> Array2<f64> {
        let mut seed = 42u64;
        let mut unif = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut a = Array2::zeros((chains, draws));
        for k in 0..chains {
            let mut v = 1.0 + k as f64;
            for i in 0..draws {
                let z = (-2.0 * unif().ln()).sqrt() * (2.0 * std::f64::consts::PI * unif()).cos();
                v = 0.9 * v + (1.0f64 - 0.81).sqrt() * z;
                a[[k, i]] = 0.5 + v;
            }
        }
        a
    }

    fn assert_png(path: &Path, w: u32, h: u32) {
        let bytes = std::fs::read(path).unwrap();
        let (dw, dh, rgb) = png::tests::decode_rgb(&bytes);
        assert_eq!((dw, dh), (w, h));
        assert!(rgb.iter().any(|&b| b < 100), "something was drawn");
    }

    #[test]
    fn ticks_are_nice() {
        let (t, s) = nice_ticks(0.0, 1.0, 5, 0.0);
        assert_eq!(s, 0.2);
        assert_eq!(
            tick_labels(&t, s),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        let (t, s) = nice_ticks(-0.3, 0.3, 4, 0.0);
        assert_eq!(tick_labels(&t, s), ["-0.2", "0.0", "0.2"]);
        let (t, s) = nice_ticks(0.0, 2e6, 4, 0.0);
        assert_eq!(tick_labels(&t, s), ["0", "1e6", "2e6"]);
        let (t, s) = nice_ticks(0.0, 1000.0, 5, 0.0);
        assert_eq!(
            tick_labels(&t, s),
            ["0", "200", "400", "600", "800", "1000"]
        );
        assert!(nice_ticks(0.0, f64::INFINITY, 5, 0.0).0.is_empty());
        assert_eq!(axis_range(None, 0.1), (0.0, 1.0));
        assert_eq!(axis_range(Some((2.0, 2.0)), 0.1), (1.8, 2.2));
        assert_eq!(axis_range(Some((0.0, 0.0)), 0.1), (-1.0, 1.0));
    }

    #[test]
    fn trace_plot_typical_and_degenerate() {
        let path = tmp("trace.png");
        trace_plot(&path, "a", ar1(4, 500).view(), Some((0.5, 1.0))).unwrap();
        assert_png(&path, 1200, 450);
        let nan = f64::NAN;
        let cases: Vec<Array2<f64>> = vec![
            Array2::zeros((0, 0)),
            Array2::zeros((3, 0)),
            Array2::zeros((0, 5)),
            Array2::from_elem((2, 1), 3.0),
            Array2::from_elem((2, 50), 7.0),
            Array2::from_elem((2, 50), nan),
            Array2::from_shape_vec((2, 3), vec![1.0, nan, f64::INFINITY, -1e300, 1e300, 2.0])
                .unwrap(),
            Array2::from_shape_vec((1, 4), vec![f64::MAX, -f64::MAX, 0.0, 1e-300]).unwrap(),
            ar1(12, 30),
        ];
        for (i, a) in cases.iter().enumerate() {
            for r in [
                None,
                Some((0.0, 1.0)),
                Some((nan, 1.0)),
                Some((0.0, 0.0)),
                Some((1e300, 1e300)),
            ] {
                let path = tmp(&format!("trace-{i}.png"));
                trace_plot(&path, "x", a.view(), r).unwrap();
                assert_png(&path, 1200, 450);
            }
        }
    }

    #[test]
    fn band_plot_typical_and_degenerate() {
        let x: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
        let ex: Vec<f64> = x.iter().map(|v| (std::f64::consts::PI * v).sin()).collect();
        let mean: Vec<f64> = ex.iter().map(|v| v + 0.02).collect();
        let lo: Vec<f64> = mean.iter().map(|v| v - 0.1).collect();
        let hi: Vec<f64> = mean.iter().map(|v| v + 0.1).collect();
        let path = tmp("band.png");
        band_plot(&path, "u(x)", &x, &mean, &lo, &hi, Some(&ex), "x", "u").unwrap();
        assert_png(&path, 900, 600);
        let nan = f64::NAN;
        let mut holes = mean.clone();
        holes[10] = nan;
        holes[50] = f64::INFINITY;
        type Case = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![], vec![]),
            (vec![1.0], vec![2.0], vec![1.0], vec![3.0]),
            (vec![1.0; 5], vec![2.0; 5], vec![2.0; 5], vec![2.0; 5]),
            (x.clone(), holes.clone(), holes.clone(), hi.clone()),
            (x.clone(), vec![nan; 101], vec![nan; 101], vec![nan; 101]),
            (x.clone(), mean[..10].to_vec(), vec![], hi.clone()),
            (
                vec![nan, 1.0, 2.0],
                vec![1e300, -1e300, 0.0],
                vec![f64::MAX, 0.0, 1.0],
                vec![f64::MIN, 1.0, 2.0],
            ),
        ];
        for (i, (x, m, l, h)) in cases.iter().enumerate() {
            for e in [None, Some(&m[..]), Some(&[][..])] {
                let path = tmp(&format!("band-{i}.png"));
                band_plot(&path, "", x, m, l, h, e, "", "").unwrap();
                let (dw, dh, _) = png::tests::decode_rgb(&std::fs::read(&path).unwrap());
                assert_eq!((dw, dh), (900, 600));
            }
        }
    }

    #[test]
    fn output_is_deterministic() {
        let a = ar1(4, 300);
        let one = trace_canvas("a", a.view(), Some((0.5, 1.0)))
            .to_png()
            .unwrap();
        let two = trace_canvas("a", a.view(), Some((0.5, 1.0)))
            .to_png()
            .unwrap();
        assert_eq!(one, two);
        let x = [0.0, 0.5, 1.0];
        let one = band_canvas("t", &x, &x, &x, &x, None, "x", "y")
            .to_png()
            .unwrap();
        let two = band_canvas("t", &x, &x, &x, &x, None, "x", "y")
            .to_png()
            .unwrap();
        assert_eq!(one, two);
        let p = tmp("det.png");
        trace_plot(&p, "a", a.view(), None).unwrap();
        let b1 = std::fs::read(&p).unwrap();
        trace_plot(&p, "a", a.view(), None).unwrap();
        assert_eq!(b1, std::fs::read(&p).unwrap());
    }

    /// Writes example pictures when `CRUX_PLOT_EXAMPLES` names a folder.
    #[test]
    fn example_pictures() {
        let Some(dir) = std::env::var_os("CRUX_PLOT_EXAMPLES") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = ar1(4, 1000);
        trace_plot(&dir.join("trace.png"), "a", a.view(), Some((0.5, 1.0))).unwrap();
        let x: Vec<f64> = (0..=100).map(|i| -1.0 + 2.0 * i as f64 / 100.0).collect();
        let ex: Vec<f64> = x.iter().map(|v| (std::f64::consts::PI * v).sin()).collect();
        let mean: Vec<f64> = x
            .iter()
            .map(|v| (std::f64::consts::PI * v).sin() * 0.95 + 0.03 * v)
            .collect();
        let half: Vec<f64> = x.iter().map(|v| 0.08 + 0.12 * v * v).collect();
        let lo: Vec<f64> = mean.iter().zip(&half).map(|(m, h)| m - h).collect();
        let hi: Vec<f64> = mean.iter().zip(&half).map(|(m, h)| m + h).collect();
        band_plot(
            &dir.join("band.png"),
            "u(x) = sin(pi x): posterior",
            &x,
            &mean,
            &lo,
            &hi,
            Some(&ex),
            "x",
            "u(x)",
        )
        .unwrap();
        let nan = f64::NAN;
        let mut b = ar1(3, 200);
        for i in 50..80 {
            b[[1, i]] = nan;
        }
        b[[0, 7]] = f64::INFINITY;
        trace_plot(&dir.join("trace-nan.png"), "b", b.view(), None).unwrap();
        let one = Array2::from_elem((2, 1), 3.0);
        trace_plot(
            &dir.join("trace-one.png"),
            "one draw",
            one.view(),
            Some((3.0, 0.5)),
        )
        .unwrap();
        let flat = Array2::from_elem((2, 40), 7.0);
        trace_plot(&dir.join("trace-flat.png"), "flat", flat.view(), None).unwrap();
        let empty = Array2::zeros((0, 0));
        trace_plot(&dir.join("trace-empty.png"), "empty", empty.view(), None).unwrap();
        trace_plot(
            &dir.join("trace-many.png"),
            "sigma_y",
            ar1(12, 40).view(),
            None,
        )
        .unwrap();
        let mut m2 = mean.clone();
        m2[30] = nan;
        let mut l2 = lo.clone();
        l2[60] = f64::INFINITY;
        band_plot(
            &dir.join("band-nan.png"),
            "holes",
            &x,
            &m2,
            &l2,
            &hi,
            None,
            "x",
            "y",
        )
        .unwrap();
        band_plot(
            &dir.join("band-flat.png"),
            "flat",
            &x[..5],
            &[2.0; 5],
            &[2.0; 5],
            &[2.0; 5],
            None,
            "x",
            "y",
        )
        .unwrap();
        band_plot(
            &dir.join("band-empty.png"),
            "empty",
            &[],
            &[],
            &[],
            &[],
            None,
            "x",
            "y",
        )
        .unwrap();
    }
}
