//! Constrained parameters: the bijection from the sampler's unconstrained
//! value `u` to the model's value `x` in the support, applied entry-wise.
//!
//! | support | `x = T(u)` | `u = T⁻¹(x)` | `log |dx/du|` |
//! | --- | --- | --- | --- |
//! | ℝ | `u` | `x` | `0` |
//! | `(lo, ∞)` | `lo + eᵘ` | `ln(x − lo)` | `u` |
//! | `(−∞, hi)` | `hi − eᵘ` | `ln(hi − x)` | `u` |
//! | `(lo, hi)` | `lo + (hi − lo) σ(u)` | `logit((x − lo)/(hi − lo))` | `ln(hi − lo) − softplus(u) − softplus(−u)` |
//! | increasing vectors | `x₀ = u₀`, `xᵢ = xᵢ₋₁ + e^{uᵢ}` | `u₀ = x₀`, `uᵢ = ln(xᵢ − xᵢ₋₁)` | `Σ_{i≥1} uᵢ` |
//!
//! The first four act entry by entry; [`Transform::Ordered`] maps a whole
//! 1-D parameter (Stan's `ordered`).
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
    /// Strictly increasing 1-D vectors: [`crate::Param::ordered`].
    Ordered,
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
        if lo.next_up() >= hi {
            return Err(Error::InvalidArgument {
                what: format!("bounds of parameter `{param}`"),
                reason: format!(
                    "the lower bound {lo} must be below the upper bound {hi}, with a number between them"
                ),
            });
        }
        Ok(Transform::Bounded(lo, hi))
    }

    /// Whether entry `x` is inside the (open) support (of an entry-wise
    /// map; for [`Transform::Ordered`], whether it is finite).
    pub fn contains(self, x: f64) -> bool {
        match self {
            Transform::Identity | Transform::Ordered => x.is_finite(),
            Transform::Lower(lo) => x > lo && x.is_finite(),
            Transform::Upper(hi) => x < hi && x.is_finite(),
            Transform::Bounded(lo, hi) => x > lo && x < hi,
        }
    }

    /// Whether the whole value `xs` is inside the support.
    pub fn contains_all(self, xs: &[f64]) -> bool {
        xs.iter().all(|&x| self.contains(x))
            && (self != Transform::Ordered || xs.windows(2).all(|w| w[0] < w[1]))
    }

    /// A value inside the support: where a constrained parameter of `n`
    /// entries starts (0 unconstrained, `lo + 1`, `hi − 1`, the interval's
    /// midpoint; `0, 1, …, n − 1` ordered).
    pub fn default_values(self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| match self {
                Transform::Identity => 0.0,
                // `lo + 1` is `lo` itself beyond 2⁵³.
                Transform::Lower(lo) => (lo + 1.0).max(lo.next_up()),
                Transform::Upper(hi) => (hi - 1.0).min(hi.next_down()),
                Transform::Bounded(lo, hi) => {
                    (lo + 0.5 * (hi - lo)).clamp(lo.next_up(), hi.next_down())
                }
                Transform::Ordered => i as f64,
            })
            .collect()
    }

    /// `xs` moved to the nearest representable values inside the support:
    /// a draw whose `T(u)` rounded onto a bound (e.g. `σ(u) = 1` for `u >
    /// 37`) stays a valid starting value.
    pub fn nudge_inside(self, xs: &mut [f64]) {
        match self {
            Transform::Identity => {}
            Transform::Lower(lo) => xs.iter_mut().for_each(|x| *x = x.max(lo.next_up())),
            Transform::Upper(hi) => xs.iter_mut().for_each(|x| *x = x.min(hi.next_down())),
            Transform::Bounded(lo, hi) => xs
                .iter_mut()
                .for_each(|x| *x = x.clamp(lo.next_up(), hi.next_down())),
            Transform::Ordered => {
                for i in 1..xs.len() {
                    if xs[i] <= xs[i - 1] {
                        xs[i] = xs[i - 1].next_up();
                    }
                }
            }
        }
    }

    /// The support in words, for messages: `(0, inf)`, `(-1, 2)`.
    pub fn support(self) -> String {
        match self {
            Transform::Identity => "(-inf, inf)".into(),
            Transform::Lower(lo) => format!("({lo}, inf)"),
            Transform::Upper(hi) => format!("(-inf, {hi})"),
            Transform::Bounded(lo, hi) => format!("({lo}, {hi})"),
            Transform::Ordered => "strictly increasing vectors".into(),
        }
    }

    /// `x = T(u)` of one entry of an entry-wise map.
    fn forward_entry(self, u: f64) -> f64 {
        match self {
            Transform::Identity | Transform::Ordered => u,
            Transform::Lower(lo) => lo + u.exp(),
            Transform::Upper(hi) => hi - u.exp(),
            Transform::Bounded(lo, hi) => lo + (hi - lo) / (1.0 + (-u).exp()),
        }
    }

    /// `x = T(u)` of a whole value.
    pub fn forward(self, us: &[f64]) -> Vec<f64> {
        match self {
            Transform::Ordered => us
                .iter()
                .enumerate()
                .scan(0.0, |x, (i, &u)| {
                    *x = if i == 0 { u } else { *x + u.exp() };
                    Some(*x)
                })
                .collect(),
            t => us.iter().map(|&u| t.forward_entry(u)).collect(),
        }
    }

    /// `u = T⁻¹(x)` of a whole value (inside the support).
    pub fn inverse(self, xs: &[f64]) -> Vec<f64> {
        xs.iter()
            .enumerate()
            .map(|(i, &x)| match self {
                Transform::Identity => x,
                Transform::Lower(lo) => (x - lo).ln(),
                Transform::Upper(hi) => (hi - x).ln(),
                Transform::Bounded(lo, hi) => {
                    let p = (x - lo) / (hi - lo);
                    (p / (1.0 - p)).ln()
                }
                Transform::Ordered if i == 0 => x,
                Transform::Ordered => (x - xs[i - 1]).ln(),
            })
            .collect()
    }

    /// `log |det dx/du|` at `u`.
    pub fn log_jacobian(self, us: &[f64]) -> f64 {
        let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
        match self {
            Transform::Identity => 0.0,
            Transform::Lower(_) | Transform::Upper(_) => us.iter().sum(),
            Transform::Bounded(lo, hi) => us
                .iter()
                .map(|&u| (hi - lo).ln() - softplus(u) - softplus(-u))
                .sum(),
            Transform::Ordered => us.iter().skip(1).sum(),
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
        if self == Transform::Ordered && !self.contains_all(values) {
            return Err(Error::InvalidArgument {
                what: format!("value of parameter `{param}`"),
                reason: format!(
                    "{values:?} is not strictly increasing, as the ordered parameter's values must be"
                ),
            });
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

    fn all() -> [Transform; 6] {
        [
            Transform::Identity,
            Transform::Lower(0.0),
            Transform::Lower(-2.5),
            Transform::Upper(3.0),
            Transform::Bounded(-1.0, 4.0),
            Transform::Ordered,
        ]
    }

    const US: [f64; 5] = [-4.0, -0.5, 0.0, 1.1, 3.0];

    /// `T⁻¹(T(u)) = u`, `T(u)` in the support.
    #[test]
    fn inverse_undoes_forward() {
        for t in all() {
            let x = t.forward(&US);
            assert!(t.contains_all(&x), "{t:?} -> {x:?}");
            for (a, b) in t.inverse(&x).iter().zip(US) {
                assert!((a - b).abs() < 1e-9, "{t:?}: {a} vs {b}");
            }
        }
    }

    /// The Jacobian matrix of `f` at `u` by central differences (column j:
    /// the derivatives with respect to entry j).
    fn jacobian(f: impl Fn(&[f64]) -> Vec<f64>, u: &[f64], h: f64) -> Vec<Vec<f64>> {
        (0..u.len())
            .map(|j| {
                let (mut up, mut dn) = (u.to_vec(), u.to_vec());
                up[j] += h;
                dn[j] -= h;
                let (fu, fd) = (f(&up), f(&dn));
                fu.iter()
                    .zip(&fd)
                    .map(|(a, b)| (a - b) / (2.0 * h))
                    .collect()
            })
            .collect()
    }

    /// `ln |det m|` by Gaussian elimination with partial pivoting.
    fn log_abs_det(mut m: Vec<Vec<f64>>) -> f64 {
        let n = m.len();
        let mut total = 0.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
                .expect("a non-empty range");
            m.swap(c, p);
            total += m[c][c].abs().ln();
            let pivot = m[c].clone();
            for row in &mut m[c + 1..] {
                let f = row[c] / pivot[c];
                for (a, b) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *a -= f * b;
                }
            }
        }
        total
    }

    /// `log |det dx/du|` against the determinant of the finite-difference
    /// Jacobian of `T`, and against `−log |det du/dx|` from differences of
    /// the inverse.
    #[test]
    fn log_jacobian_matches_finite_differences() {
        for t in all() {
            let lj = t.log_jacobian(&US);
            let fwd = log_abs_det(jacobian(|u| t.forward(u), &US, 1e-6));
            assert!((lj - fwd).abs() < 1e-5, "{t:?}: {lj} vs {fwd}");
            let x = t.forward(&US);
            let inv = log_abs_det(jacobian(|x| t.inverse(x), &x, 1e-7));
            assert!((lj + inv).abs() < 1e-4, "{t:?}: {lj} vs -{inv} (inverse)");
        }
    }

    #[test]
    fn supports_and_checks() {
        assert!(!Transform::Lower(0.0).contains(0.0));
        assert!(!Transform::Bounded(0.0, 1.0).contains(1.0));
        assert!(!Transform::Upper(0.0).contains(f64::NAN));
        assert!(!Transform::Ordered.contains_all(&[0.0, 0.0]));
        for t in all() {
            assert!(t.contains_all(&t.default_values(4)));
        }
        // Beyond 2⁵³ `lo + 1 == lo`: the start is still inside.
        for t in [Transform::Lower(1e20), Transform::Upper(-1e20)] {
            assert!(t.contains_all(&t.default_values(1)), "{t:?}");
        }
        assert!(Transform::bounded("p", 1.0, 1.0f64.next_up()).is_err());
        // Values rounded onto a bound are moved just inside.
        let mut v = [1.0, 0.0, 0.5];
        Transform::Bounded(0.0, 1.0).nudge_inside(&mut v);
        assert!(Transform::Bounded(0.0, 1.0).contains_all(&v), "{v:?}");
        let mut v = [2.0, 2.0, 1.0];
        Transform::Ordered.nudge_inside(&mut v);
        assert!(Transform::Ordered.contains_all(&v), "{v:?}");
        let mut v = [1000.0];
        Transform::Lower(1000.0).nudge_inside(&mut v);
        assert!(v[0] > 1000.0);
        let e = Transform::Ordered
            .check_values("cut", &[1.0, 0.5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cut`") && e.contains("increasing"), "{e}");

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
