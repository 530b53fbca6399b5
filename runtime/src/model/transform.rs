//! Constrained parameters: the bijection from the sampler's unconstrained
//! value `u` to the model's value `x` in the support, applied entry-wise.
//!
//! | support | `x = T(u)` | `u = T⁻¹(x)` | `log |dx/du|` |
//! | --- | --- | --- | --- |
//! | ℝ | `u` | `x` | `0` |
//! | `(lo, ∞)` | `lo + eᵘ` | `ln(x − lo)` | `u` |
//! | `(−∞, hi)` | `hi − eᵘ` | `ln(hi − x)` | `u` |
//! | `(lo, hi)` | `lo + (hi − lo) σ(u)` | `logit((x − lo)/(hi − lo))` | `ln(hi − lo) − softplus(u) − softplus(−u)` |
//!
//! The chains move `u`; the traced model reads `T(u)` and the log-density
//! gains `Σ log |dx/du|`, so a prior or likelihood written on the
//! constrained scale gives the right posterior of `x` (Stan's and
//! numpyro's convention). Posteriors, exports and summaries report `x`.

use crate::error::{Error, Result};

/// The support of a parameter's entries and the map onto it.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Transform {
    /// Unconstrained (the default).
    #[default]
    Identity,
    /// `(lo, ∞)`: [`crate::Param::positive`] (`lo = 0`), [`crate::Param::lower`].
    Lower(f64),
    /// `(−∞, hi)`: [`crate::Param::upper`].
    Upper(f64),
    /// `(lo, hi)`: [`crate::Param::bounded`].
    Bounded(f64, f64),
}

impl Transform {
    /// `(lo, ∞)` after checking `lo` (for `param`'s messages).
    pub(crate) fn lower(param: &str, lo: f64) -> Result<Transform> {
        finite(param, "lower bound", lo)?;
        Ok(Transform::Lower(lo))
    }

    /// `(−∞, hi)` after checking `hi`.
    pub(crate) fn upper(param: &str, hi: f64) -> Result<Transform> {
        finite(param, "upper bound", hi)?;
        Ok(Transform::Upper(hi))
    }

    /// `(lo, hi)` after checking `lo < hi` (both finite).
    pub(crate) fn bounded(param: &str, lo: f64, hi: f64) -> Result<Transform> {
        finite(param, "lower bound", lo)?;
        finite(param, "upper bound", hi)?;
        if lo >= hi {
            return Err(Error::InvalidArgument {
                what: format!("bounds of parameter `{param}`"),
                reason: format!("the lower bound {lo} must be below the upper bound {hi}"),
            });
        }
        Ok(Transform::Bounded(lo, hi))
    }

    /// Whether `x` is inside the (open) support.
    pub fn contains(self, x: f64) -> bool {
        match self {
            Transform::Identity => x.is_finite(),
            Transform::Lower(lo) => x > lo && x.is_finite(),
            Transform::Upper(hi) => x < hi && x.is_finite(),
            Transform::Bounded(lo, hi) => x > lo && x < hi,
        }
    }

    /// A point inside the support: where a constrained parameter starts
    /// (0 unconstrained, `lo + 1`, `hi − 1`, the interval's midpoint).
    pub fn default_point(self) -> f64 {
        match self {
            Transform::Identity => 0.0,
            Transform::Lower(lo) => lo + 1.0,
            Transform::Upper(hi) => hi - 1.0,
            Transform::Bounded(lo, hi) => lo + 0.5 * (hi - lo),
        }
    }

    /// The support in words, for messages: `(0, inf)`, `(-1, 2)`.
    pub fn support(self) -> String {
        match self {
            Transform::Identity => "(-inf, inf)".into(),
            Transform::Lower(lo) => format!("({lo}, inf)"),
            Transform::Upper(hi) => format!("(-inf, {hi})"),
            Transform::Bounded(lo, hi) => format!("({lo}, {hi})"),
        }
    }

    /// `x = T(u)`.
    pub fn forward(self, u: f64) -> f64 {
        match self {
            Transform::Identity => u,
            Transform::Lower(lo) => lo + u.exp(),
            Transform::Upper(hi) => hi - u.exp(),
            Transform::Bounded(lo, hi) => lo + (hi - lo) / (1.0 + (-u).exp()),
        }
    }

    /// `u = T⁻¹(x)` (for `x` in the support).
    pub fn inverse(self, x: f64) -> f64 {
        match self {
            Transform::Identity => x,
            Transform::Lower(lo) => (x - lo).ln(),
            Transform::Upper(hi) => (hi - x).ln(),
            Transform::Bounded(lo, hi) => {
                let p = (x - lo) / (hi - lo);
                (p / (1.0 - p)).ln()
            }
        }
    }

    /// `log |dx/du|` at `u`.
    pub fn log_jacobian(self, u: f64) -> f64 {
        let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
        match self {
            Transform::Identity => 0.0,
            Transform::Lower(_) | Transform::Upper(_) => u,
            Transform::Bounded(lo, hi) => (hi - lo).ln() - softplus(u) - softplus(-u),
        }
    }

    /// Whether the map is the identity.
    pub fn is_identity(self) -> bool {
        self == Transform::Identity
    }

    /// Checks that every entry of `values` (of parameter `param`) is inside
    /// the support.
    pub(crate) fn check_values(self, param: &str, values: &[f64]) -> Result<()> {
        if self.is_identity() {
            return Ok(());
        }
        match values.iter().position(|&x| !self.contains(x)) {
            None => Ok(()),
            Some(i) => Err(Error::InvalidArgument {
                what: format!("value of parameter `{param}`"),
                reason: format!(
                    "entry {i} is {}, outside the parameter's support {}: give a value inside it (on the constrained scale)",
                    values[i],
                    self.support()
                ),
            }),
        }
    }
}

fn finite(param: &str, what: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        what: format!("{what} of parameter `{param}`"),
        reason: format!("must be finite, got {v} (leave a side open with .lower/.upper)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Transform; 5] {
        [
            Transform::Identity,
            Transform::Lower(0.0),
            Transform::Lower(-2.5),
            Transform::Upper(3.0),
            Transform::Bounded(-1.0, 4.0),
        ]
    }

    /// `T⁻¹(T(u)) = u`, `T(u)` in the support.
    #[test]
    fn inverse_undoes_forward() {
        for t in all() {
            for u in [-6.0, -1.3, 0.0, 0.7, 5.0] {
                let x = t.forward(u);
                assert!(t.contains(x), "{t:?} {u} -> {x}");
                assert!((t.inverse(x) - u).abs() < 1e-9, "{t:?} {u}");
            }
        }
    }

    /// `log |dx/du|` against central differences of `T`, and against
    /// `−log |du/dx|` from differences of the inverse.
    #[test]
    fn log_jacobian_matches_finite_differences() {
        let h = 1e-6;
        for t in all() {
            for u in [-4.0, -0.5, 0.0, 1.1, 3.0] {
                let fd = (t.forward(u + h) - t.forward(u - h)) / (2.0 * h);
                assert!(
                    (t.log_jacobian(u) - fd.abs().ln()).abs() < 1e-6,
                    "{t:?} {u}"
                );
                let x = t.forward(u);
                let hx = h * fd.abs();
                let inv = (t.inverse(x + hx) - t.inverse(x - hx)) / (2.0 * hx);
                assert!(
                    (t.log_jacobian(u) + inv.abs().ln()).abs() < 1e-5,
                    "{t:?} {u}: inverse"
                );
            }
        }
    }

    #[test]
    fn supports_and_checks() {
        assert!(!Transform::Lower(0.0).contains(0.0));
        assert!(!Transform::Bounded(0.0, 1.0).contains(1.0));
        assert!(!Transform::Upper(0.0).contains(f64::NAN));
        for t in all() {
            assert!(t.contains(t.default_point()));
        }
        assert!(Transform::bounded("p", 1.0, 1.0).is_err());
        assert!(Transform::lower("p", f64::NAN).is_err());
        let e = Transform::Lower(0.0)
            .check_values("tau", &[1.0, -2.0])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tau") && e.contains("entry 1") && e.contains("(0, inf)"),
            "{e}"
        );
    }
}
