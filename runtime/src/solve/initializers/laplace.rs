//! The Laplace approximation (MacKay 1992 §6): the MAP by L-BFGS, then the
//! Hessian `H` of `log p` there, column by column as Hessian-vector
//! products `H eᵢ` (forward over reverse AD, compiled: see
//! `compile::hessian`); the variance is `−1/Hᵢᵢ` (diagonal) or the
//! diagonal of `(−H)⁻¹` (full, symmetrised).

use super::lbfgs::{self, LogDensityFn};
use super::linalg::{inverse, Mat};
use crate::error::{Error, Result};

/// The MAP and the per-entry Laplace variance.
#[derive(Clone, Debug)]
pub(crate) struct Fit {
    pub map: Vec<f64>,
    pub variance: Vec<f64>,
    /// L-BFGS iterates to the MAP.
    pub iterations: usize,
}

/// `(x, v, out)`: writes `∇² log p(x) v` into `out`.
pub(crate) type HvpFn<'a> = dyn FnMut(&[f64], &[f64], &mut [f64]) -> Result<()> + 'a;

/// Runs Laplace from `x0`.
pub(crate) fn laplace(
    f: &mut LogDensityFn<'_>,
    hvp: &mut HvpFn<'_>,
    x0: &[f64],
    maxiter: usize,
    full: bool,
) -> Result<Fit> {
    let opts = lbfgs::Options {
        maxiter,
        maxcor: 10,
        gtol: 1e-11,
    };
    let path = lbfgs::maximize(f, x0, opts)?;
    let map = path.last().to_vec();
    let d = map.len();
    let (mut e, mut col) = (vec![0.0; d], vec![0.0; d]);
    let mut h = Mat::zeros(d, d);
    for i in 0..d {
        e[i] = 1.0;
        hvp(&map, &e, &mut col)?;
        e[i] = 0.0;
        if full {
            (0..d).for_each(|j| *h.at_mut(j, i) = col[j]);
        } else {
            *h.at_mut(i, i) = col[i];
        }
    }
    let not_a_maximum = |what: String| {
        Error::InvalidArgument {
        what: "laplace".into(),
        reason: format!(
            "{what} at the optimum L-BFGS found: it is not a strict maximum of the log-density (give the model a proper prior, or use pathfinder)"
        ),
    }
    };
    let variance = if full {
        let mut neg = Mat::zeros(d, d);
        for i in 0..d {
            for j in 0..d {
                *neg.at_mut(i, j) = -0.5 * (h.at(i, j) + h.at(j, i));
            }
        }
        let cov =
            inverse(&neg).ok_or_else(|| not_a_maximum("−H is not positive definite".into()))?;
        (0..d).map(|i| cov.at(i, i)).collect()
    } else {
        (0..d)
            .map(|i| {
                let hii = h.at(i, i);
                if hii < 0.0 && hii.is_finite() {
                    Ok(-1.0 / hii)
                } else {
                    Err(not_a_maximum(format!(
                        "H[{i}][{i}] = {hii} is not negative"
                    )))
                }
            })
            .collect::<Result<Vec<f64>>>()?
    };
    Ok(Fit {
        map,
        variance,
        iterations: path.x.len() - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::super::lbfgs::tests::{gaussian, M, P};
    use super::*;

    /// On a correlated Gaussian: the MAP exact, the diagonal variance
    /// `1/Pᵢᵢ` and the full one `(P⁻¹)ᵢᵢ`.
    #[test]
    fn exact_on_a_correlated_gaussian() {
        let (p, m) = (P, M);
        let mut f = gaussian(P, M);
        let cov = inverse(&Mat::from_rows(&p)).unwrap();
        for full in [false, true] {
            let mut hvp = |_: &[f64], v: &[f64], out: &mut [f64]| -> Result<()> {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = -(0..3).map(|j| P[i][j] * v[j]).sum::<f64>();
                }
                Ok(())
            };
            let fit = laplace(&mut f, &mut hvp, &[3.0, 3.0, 3.0], 200, full).unwrap();
            for i in 0..3 {
                assert!((fit.map[i] - m[i]).abs() < 1e-9, "{:?}", fit.map);
                let exact = if full { cov.at(i, i) } else { 1.0 / p[i][i] };
                assert!(
                    (fit.variance[i] / exact - 1.0).abs() < 1e-8,
                    "{full} {i}: {}",
                    fit.variance[i]
                );
            }
        }
        let mut flat = |_: &[f64], g: &mut [f64]| -> Result<f64> {
            g.iter_mut().for_each(|v| *v = 0.0);
            Ok(0.0)
        };
        let mut zero = |_: &[f64], _: &[f64], out: &mut [f64]| -> Result<()> {
            out.iter_mut().for_each(|o| *o = 0.0);
            Ok(())
        };
        let e = laplace(&mut flat, &mut zero, &[0.0], 10, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a strict maximum"), "{e}");
    }
}
