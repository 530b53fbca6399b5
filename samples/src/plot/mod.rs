//! PNG pictures of sample results, drawn with `plotters` (bitmap backend,
//! the DejaVu Sans font shipped by the `dejavu` crate, so text renders on
//! machines without system fonts) and encoded by the `png` crate:
//! [`trace_plot`] for MCMC chains and [`band_plot`] for a posterior
//! function with its credible band.
//!
//! Both functions accept any input without panicking: non-finite values
//! are skipped, empty or constant data get a padded axis range, and the
//! same input always gives the same bytes.

pub mod png;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Line colours, one per series (the "tab10" palette).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const EXACT: RGBColor = RGBColor(20, 20, 20);
const FONT: &str = "sans-serif";

/// Registers the shipped font once (plotters' `ab_glyph` needs one).
fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled TTF parses; a failure would only lose the text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into a white `w × h` RGB buffer with `f`.
fn pixels(w: u32, h: u32, f: impl FnOnce(&Area<'_>) -> DrawResult) -> std::io::Result<Vec<u8>> {
    font();
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        f(&root).map_err(|e| std::io::Error::other(e.to_string()))?;
        root.present()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(buf)
}

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

/// Splits `(x, y)` points into runs of finite points (a gap at each
/// non-finite one).
fn runs(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        if x.is_finite() && y.is_finite() {
            out.last_mut().expect("never empty").push((x, y));
        } else if !out.last().expect("never empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
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
    let rgb = trace_pixels(name, chains, reference)?;
    crux::atomic_write(path, &png::encode_rgb(1200, 450, &rgb)?)
}

fn trace_pixels(
    name: &str,
    chains: ndarray::ArrayView2<f64>,
    reference: Option<(f64, f64)>,
) -> std::io::Result<Vec<u8>> {
    let (n_chains, n_draws) = chains.dim();
    let reference = reference.filter(|(m, s)| m.is_finite() && s.is_finite() && *s > 0.0);
    let mut pooled: Vec<f64> = chains.iter().copied().filter(|v| v.is_finite()).collect();
    pooled.sort_by(f64::total_cmp);
    let vr = axis_range(finite_range(pooled.iter().copied()), 0.05);
    let tx = if n_draws <= 1 {
        axis_range(Some((0.0, 0.0)), 0.0)
    } else {
        (0.0, (n_draws - 1) as f64)
    };
    // Marginal: histogram, KDE and the reference density over one range.
    let mr = merge(
        finite_range(pooled.iter().copied()),
        reference.map(|(m, s)| (m - 4.0 * s, m + 4.0 * s)),
    );
    let (mlo, mhi) = axis_range(mr, 0.05);
    const BINS: usize = 40;
    let width = (mhi - mlo) / BINS as f64;
    let mut hist = vec![0.0; BINS];
    for &v in &pooled {
        let b = (((v - mlo) / width).floor().max(0.0) as usize).min(BINS - 1);
        hist[b] += 1.0;
    }
    let norm = 1.0 / (pooled.len().max(1) as f64 * width);
    hist.iter_mut().for_each(|h| *h *= norm);
    let xs: Vec<f64> = (0..=200)
        .map(|i| mlo + (mhi - mlo) * i as f64 / 200.0)
        .collect();
    let dens = kde(&pooled, &xs);
    let exact: Option<Vec<f64>> =
        reference.map(|(m, s)| xs.iter().map(|&x| normal_pdf(x, m, s)).collect());
    let top = hist
        .iter()
        .chain(dens.iter().flatten())
        .chain(exact.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    pixels(1200, 450, |root| {
        root.fill(&WHITE)?;
        let area = root.titled(&format!("{name}: trace and marginal"), (FONT, 24))?;
        let (left, right) = area.split_horizontally(760);
        let mut chart = ChartBuilder::on(&left)
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d(tx.0..tx.1, vr.0..vr.1)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .x_desc("draw")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .draw()?;
        for (k, chain) in chains.outer_iter().enumerate() {
            let col = PALETTE[k % PALETTE.len()];
            for run in runs(chain.iter().enumerate().map(|(i, &v)| (i as f64, v))) {
                chart.draw_series(LineSeries::new(run, col.stroke_width(1)))?;
            }
        }
        let mut chart = ChartBuilder::on(&right)
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(mlo..mhi, 0.0..top)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .y_desc("density")
            .label_style((FONT, 14))
            .draw()?;
        chart.draw_series(hist.iter().enumerate().map(|(b, &h)| {
            let x0 = mlo + b as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, h)], PALETTE[0].mix(0.25).filled())
        }))?;
        if let Some(d) = &dens {
            chart
                .draw_series(LineSeries::new(
                    runs(xs.iter().copied().zip(d.iter().copied())).concat(),
                    PALETTE[0].stroke_width(2),
                ))?
                .label(format!("KDE ({} chains)", n_chains))
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], PALETTE[0].stroke_width(2))
                });
        }
        if let Some(e) = &exact {
            chart
                .draw_series(DashedLineSeries::new(
                    xs.iter().copied().zip(e.iter().copied()),
                    6,
                    4,
                    EXACT.stroke_width(2),
                ))?
                .label("exact")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], EXACT.stroke_width(2)));
        }
        if dens.is_some() || exact.is_some() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 14))
                .draw()?;
        }
        Ok(())
    })
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
    let rgb = band_pixels(title, x, mean, lo, hi, exact, (x_label, y_label))?;
    crux::atomic_write(path, &png::encode_rgb(900, 600, &rgb)?)
}

fn band_pixels(
    title: &str,
    x: &[f64],
    mean: &[f64],
    lo: &[f64],
    hi: &[f64],
    exact: Option<&[f64]>,
    (x_label, y_label): (&str, &str),
) -> std::io::Result<Vec<u8>> {
    let n = x.len();
    let get = |s: &[f64], i: usize| s.get(i).copied().unwrap_or(f64::NAN);
    let xr = axis_range(finite_range(x.iter().copied()), 0.0);
    let mut yr = None;
    for s in [mean, lo, hi, exact.unwrap_or(&[])] {
        let vals = (0..n).filter(|&i| get(x, i).is_finite()).map(|i| get(s, i));
        yr = merge(yr, finite_range(vals));
    }
    let yr = axis_range(yr, 0.08);
    // One band polygon per run of points where x, lo and hi are finite.
    let ok = |i: usize| get(x, i).is_finite() && get(lo, i).is_finite() && get(hi, i).is_finite();
    let mut bands: Vec<Vec<(f64, f64)>> = Vec::new();
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
        let mut poly: Vec<(f64, f64)> = (start..i).map(|j| (x[j], lo[j])).collect();
        poly.extend((start..i).rev().map(|j| (x[j], hi[j])));
        bands.push(poly);
    }
    let band_col = RGBColor(31, 119, 180);
    let mean_col = RGBColor(20, 70, 140);
    pixels(900, 600, |root| {
        root.fill(&WHITE)?;
        let area = root.titled(title, (FONT, 24))?;
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FONT, 15))
            .draw()?;
        let mut labelled = false;
        for (k, poly) in bands.into_iter().enumerate() {
            let s = chart.draw_series(std::iter::once(Polygon::new(
                poly,
                band_col.mix(0.3).filled(),
            )))?;
            if k == 0 {
                s.label("90% band").legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_col.mix(0.3).filled())
                });
                labelled = true;
            }
        }
        for (k, run) in runs((0..n).map(|i| (get(x, i), get(mean, i))))
            .into_iter()
            .enumerate()
        {
            let s = chart.draw_series(LineSeries::new(run, mean_col.stroke_width(2)))?;
            if k == 0 {
                s.label("posterior mean").legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], mean_col.stroke_width(2))
                });
                labelled = true;
            }
        }
        if let Some(e) = exact {
            for (k, run) in runs((0..n).map(|i| (get(x, i), get(e, i))))
                .into_iter()
                .enumerate()
            {
                let s =
                    chart.draw_series(DashedLineSeries::new(run, 8, 5, EXACT.stroke_width(2)))?;
                if k == 0 {
                    s.label("exact").legend(|(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], EXACT.stroke_width(2))
                    });
                    labelled = true;
                }
            }
        }
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 15))
                .draw()?;
        }
        Ok(())
    })
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
    fn axis_ranges_pad_degenerate_data() {
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
        let one = trace_pixels("a", a.view(), Some((0.5, 1.0))).unwrap();
        let two = trace_pixels("a", a.view(), Some((0.5, 1.0))).unwrap();
        assert_eq!(one, two);
        let x = [0.0, 0.5, 1.0];
        let one = band_pixels("t", &x, &x, &x, &x, None, ("x", "y")).unwrap();
        let two = band_pixels("t", &x, &x, &x, &x, None, ("x", "y")).unwrap();
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
