//! The posterior summary table (arviz's `az.summary` columns).

use std::fmt;

use crate::analysis::diagnostics::{quantile, summarize};
use crate::analysis::export::entry_names;
use crate::model::Posterior;

/// One scalar component's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// `leaf[index]`.
    pub name: String,
    /// Mean over all draws.
    pub mean: f64,
    /// Standard deviation (ddof 1) over all draws.
    pub sd: f64,
    /// 5% quantile.
    pub q05: f64,
    /// Median.
    pub q50: f64,
    /// 95% quantile.
    pub q95: f64,
    /// Monte Carlo standard error of the mean.
    pub mcse_mean: f64,
    /// Bulk effective sample size.
    pub ess_bulk: f64,
    /// Tail effective sample size.
    pub ess_tail: f64,
    /// Rank-normalised split R-hat (one chain: its two halves).
    pub r_hat: f64,
}

/// Rows of [`SummaryRow`]; `Display` prints an aligned table.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SummaryTable {
    /// One row per scalar component, models and leaves in order.
    pub rows: Vec<SummaryRow>,
}

impl SummaryTable {
    /// The row named `name` (`a[0]`).
    pub fn row(&self, name: &str) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

impl Posterior {
    /// The summary table of every entry of every leaf.
    pub fn summary(&self) -> SummaryTable {
        let mut rows = Vec::new();
        for (li, l) in self.leaves.iter().enumerate() {
            for (j, name) in entry_names(&l.name, &l.samples.shape()[2..])
                .into_iter()
                .enumerate()
            {
                let Some(x) = self.entry(li, j) else { continue };
                let s = summarize(x.view());
                let flat: Vec<f64> = x.iter().copied().collect();
                rows.push(SummaryRow {
                    name,
                    mean: s.mean,
                    sd: s.sd,
                    q05: s.q05,
                    q50: quantile(&flat, 0.5),
                    q95: s.q95,
                    mcse_mean: s.mcse_mean,
                    ess_bulk: s.ess_bulk,
                    ess_tail: s.ess_tail,
                    r_hat: s.rhat,
                });
            }
        }
        SummaryTable { rows }
    }
}

/// Significant digits that keep a column readable.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

impl fmt::Display for SummaryTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = [
            "",
            "mean",
            "sd",
            "q05",
            "q50",
            "q95",
            "mcse_mean",
            "ess_bulk",
            "ess_tail",
            "r_hat",
        ];
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    num(r.mean),
                    num(r.sd),
                    num(r.q05),
                    num(r.q50),
                    num(r.q95),
                    num(r.mcse_mean),
                    format!("{:.0}", r.ess_bulk),
                    format!("{:.0}", r.ess_tail),
                    format!("{:.3}", r.r_hat),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..head.len())
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].len())
                    .chain([head[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, row: &[&str]| -> fmt::Result {
            for (c, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if c == 0 {
                    write!(f, "{cell:<w$}")?;
                } else {
                    write!(f, "  {cell:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &head)?;
        for r in &cells {
            let row: Vec<&str> = r.iter().map(String::as_str).collect();
            line(f, &row)?;
        }
        Ok(())
    }
}
