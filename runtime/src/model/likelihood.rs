//! Likelihood terms: log-densities of residuals under a noise model, and
//! general log-density terms. Each is a [`Constraint`] whose expression is
//! a scalar `ℓ` added to the log-density as it is (no `likelihood_scale`,
//! no averaging with the `.mse()`/`.mae()` terms); its loss is `−ℓ`.
//!
//! With `N` entries in the residual `r` (broadcast scales: a number, a
//! scalar expression, or one of `r`'s shape):
//!
//! | term | `ℓ` |
//! | --- | --- |
//! | `r.gaussian(σ)` | `−Σ ln σᵢ − Σ rᵢ² / (2σᵢ²) − (N/2) ln 2π` |
//! | `r.student_t(ν, σ)` | `Σ [ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln(νπ) − ln σᵢ − (ν+1)/2 · ln(1 + rᵢ²/(ν σᵢ²))]` |
//! | `r.laplace(b)` | `−Σ ln(2bᵢ) − Σ |rᵢ| / bᵢ` |
//! | `Constraint::log_density(e)` | `e` (a scalar) |
//!
//! A scale may be an expression of parameters (sampled like any other,
//! e.g. `Param::new("sigma", [1]).positive()`); a constant scale must be
//! positive (checked when the term is built). An expression scale is not
//! checked: where it is not positive the log-density is not a number, which
//! the samplers treat as a divergence — make it positive by construction.

use std::f64::consts::PI;

use super::constraint::{Constraint, Reduction};
use super::expr::{Expr, IntoExpr, Kind};
use crate::error::Error;

/// The largest Student-t `df` (its normalising constant loses all digits
/// beyond; the distribution is Gaussian to f64 precision long before).
pub const MAX_DF: f64 = 1e12;

impl Constraint {
    /// An arbitrary log-density term: the scalar expression `log_density`
    /// (of parameters and data) is added to the log-density of every
    /// model it reads — a user's own likelihood, or a coupling prior
    /// between models. `Crux::new` refuses a non-scalar expression.
    pub fn log_density(log_density: impl IntoExpr) -> Constraint {
        Constraint::new(log_density.into_expr(), Reduction::LogDensity)
    }
}

impl Expr {
    /// Gaussian likelihood of this residual with standard deviation
    /// `sigma` (a positive number, or an expression, e.g. a sampled
    /// positive parameter): adds `−Σ ln σ − Σ r²/(2σ²) − (N/2) ln 2π`.
    pub fn gaussian(&self, sigma: impl IntoExpr) -> Constraint {
        let s = sigma.into_expr();
        let term = match self.per_entry(&s, "gaussian", "sigma") {
            Err(e) => Expr::invalid(e),
            Ok(n) => {
                let z = self / &s;
                let log_norm = Expr::scalar(-0.5 * (2.0 * PI).ln() * self.numel() as f64);
                -(s.ln().sum() * n) - z.square().sum() * 0.5 + log_norm
            }
        };
        Constraint::log_density(term)
    }

    /// Student-t likelihood of this residual with `df` degrees of freedom
    /// (a positive number up to [`MAX_DF`]) and scale `sigma` (as in [`Expr::gaussian`]).
    pub fn student_t(&self, df: f64, sigma: impl IntoExpr) -> Constraint {
        let s = sigma.into_expr();
        let ok = df > 0.0 && df <= MAX_DF;
        let term = match (ok, self.per_entry(&s, "student_t", "sigma")) {
            (false, _) => Expr::invalid(Error::InvalidOperation {
                op: "student_t",
                expr: self.to_string(),
                reason: format!(
                    "df must be a positive number up to {MAX_DF:e}, got {df} (beyond it, the Student-t is a Gaussian: use .gaussian)"
                ),
            }),
            (true, Err(e)) => Expr::invalid(e),
            (true, Ok(n)) => {
                let c = ln_gamma((df + 1.0) / 2.0) - ln_gamma(df / 2.0) - 0.5 * (df * PI).ln();
                let z = self / &s;
                let tail = (z.square() * (1.0 / df)).log1p().sum() * (-(df + 1.0) / 2.0);
                tail - s.ln().sum() * n + Expr::scalar(c * self.numel() as f64)
            }
        };
        Constraint::log_density(term)
    }

    /// Laplace likelihood of this residual with scale `b` (as `sigma` in
    /// [`Expr::gaussian`]): adds `−Σ ln(2b) − Σ |r| / b`.
    pub fn laplace(&self, b: impl IntoExpr) -> Constraint {
        let b = b.into_expr();
        let term = match self.per_entry(&b, "laplace", "b") {
            Err(e) => Expr::invalid(e),
            Ok(n) => {
                let z = (self / &b).abs();
                -(b.ln().sum() * n) - z.sum() + Expr::scalar(-(2f64.ln()) * self.numel() as f64)
            }
        };
        Constraint::log_density(term)
    }

    fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// Checks a scale `s` for this residual; returns how many residual
    /// entries each of its entries covers (`N` for a scalar, 1 for one of
    /// the residual's shape).
    fn per_entry(&self, s: &Expr, op: &'static str, name: &str) -> Result<f64, Error> {
        let bad = |reason: String| Error::InvalidOperation {
            op,
            expr: self.to_string(),
            reason,
        };
        if let Kind::Constant(t) = s.kind() {
            if let Some(v) = t.data.iter().find(|v| **v <= 0.0) {
                return Err(bad(format!(
                    "{name} must be positive, got {v}: a scale is a standard deviation (sample it as a positive parameter to learn it)"
                )));
            }
        }
        let (ns, nr) = (s.shape().iter().product::<usize>(), self.numel());
        if ns == 1 {
            Ok(nr as f64)
        } else if s.shape() == self.shape() {
            Ok(1.0)
        } else {
            Err(bad(format!(
                "{name} has shape {:?}; give a scalar or one of the residual's shape {:?}",
                s.shape(),
                self.shape()
            )))
        }
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; ~1e-15 relative).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let a = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |a, (i, g)| a + g / (x + (i + 1) as f64));
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        for (x, want) in [
            (1.0, 0.0),
            (2.0, 0.0),
            (0.5, 0.5 * PI.ln()),
            (5.0, 24f64.ln()),
            (10.5, 13.940_625_219_403_763),
            (0.1, 2.252_712_651_734_206),
        ] {
            assert!((ln_gamma(x) - want).abs() < 1e-12, "{x}: {}", ln_gamma(x));
        }
    }
}
