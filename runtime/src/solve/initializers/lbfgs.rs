//! L-BFGS ascent of a log-density (Nocedal & Wright, Alg. 7.4/7.5): the
//! two-loop recursion on the last `maxcor` curvature pairs, a backtracking
//! Armijo line search, and the path of accepted iterates that pathfinder
//! turns into normal approximations.

use super::linalg::dot;
use crate::error::{Error, Result};

/// `log p(x)`, writing `∇ log p(x)` into the second argument.
pub(crate) type LogDensityFn<'a> = dyn FnMut(&[f64], &mut [f64]) -> Result<f64> + 'a;

/// Stopping rules and memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Options {
    /// Iterations at most.
    pub maxiter: usize,
    /// Curvature pairs kept.
    pub maxcor: usize,
    /// Stop when `‖∇ log p‖∞ ≤ gtol`.
    pub gtol: f64,
}

/// The accepted iterates `x₀, x₁, …` with `log p` and `∇ log p` at each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Path {
    pub x: Vec<Vec<f64>>,
    pub logp: Vec<f64>,
    pub grad: Vec<Vec<f64>>,
}

impl Path {
    /// The last iterate (the optimum when converged).
    pub fn last(&self) -> &[f64] {
        self.x.last().map_or(&[], |v| v.as_slice())
    }
}

fn sup_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Maximises `f` from `x0`. Fails when `log p` or its gradient is not
/// finite at `x0` (nothing to start from); a line search that finds no
/// ascent ends the run at the best point so far.
pub(crate) fn maximize(f: &mut LogDensityFn<'_>, x0: &[f64], opts: Options) -> Result<Path> {
    let d = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; d];
    let mut lp = f(&x, &mut g)?;
    if !lp.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "initializer".into(),
            reason: format!(
                "log p at the starting position is {lp} (or its gradient is not finite): start the model somewhere its log-density is finite"
            ),
        });
    }
    let mut path = Path {
        x: vec![x.clone()],
        logp: vec![lp],
        grad: vec![g.clone()],
    };
    // Curvature pairs of the minimised −log p: s = Δx, y = Δ(−∇ log p).
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let (mut xn, mut gn) = (vec![0.0; d], vec![0.0; d]);
    for _ in 0..opts.maxiter {
        if sup_norm(&g) <= opts.gtol {
            break;
        }
        // The ascent direction H ∇ log p by the two-loop recursion.
        let mut q = g.clone();
        let mut a = vec![0.0; pairs.len()];
        for (i, (s, y, rho)) in pairs.iter().enumerate().rev() {
            a[i] = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a[i] * yi);
        }
        let gamma = pairs
            .last()
            .map_or(1.0 / sup_norm(&g).max(1.0), |(s, y, _)| {
                dot(s, y) / dot(y, y)
            });
        q.iter_mut().for_each(|v| *v *= gamma);
        for (i, (s, y, rho)) in pairs.iter().enumerate() {
            let b = rho * dot(y, &q);
            q.iter_mut()
                .zip(s)
                .for_each(|(qi, si)| *qi += (a[i] - b) * si);
        }
        let slope = dot(&g, &q);
        if slope.is_nan() || slope <= 0.0 {
            // Not an ascent direction: restart from steepest ascent.
            pairs.clear();
            continue;
        }
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            xn.iter_mut()
                .zip(&x)
                .zip(&q)
                .for_each(|((n, xi), qi)| *n = xi + t * qi);
            let l = f(&xn, &mut gn)?;
            if l.is_finite() && l >= lp + 1e-4 * t * slope && gn.iter().all(|v| v.is_finite()) {
                let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = g.iter().zip(&gn).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
                    if pairs.len() == opts.maxcor {
                        pairs.remove(0);
                    }
                    pairs.push((s, y, 1.0 / sy));
                }
                std::mem::swap(&mut x, &mut xn);
                std::mem::swap(&mut g, &mut gn);
                lp = l;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
        path.x.push(x.clone());
        path.logp.push(lp);
        path.grad.push(g.clone());
    }
    Ok(path)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A correlated 3-d Gaussian `log p = −½ (x − m)ᵀ P (x − m)`.
    pub(crate) fn gaussian(
        p: [[f64; 3]; 3],
        m: [f64; 3],
    ) -> impl FnMut(&[f64], &mut [f64]) -> Result<f64> {
        move |x, g| {
            let r: Vec<f64> = (0..3).map(|i| x[i] - m[i]).collect();
            let mut lp = 0.0;
            for i in 0..3 {
                g[i] = -(0..3).map(|j| p[i][j] * r[j]).sum::<f64>();
                lp += 0.5 * r[i] * g[i];
            }
            Ok(lp)
        }
    }

    /// The correlated test Gaussian's precision and mean.
    pub(crate) const P: [[f64; 3]; 3] = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 100.0]];
    pub(crate) const M: [f64; 3] = [1.0, -2.0, 0.3];

    #[test]
    fn finds_the_mode_of_a_correlated_gaussian() {
        let mut f = gaussian(P, M);
        let opts = Options {
            maxiter: 200,
            maxcor: 6,
            gtol: 1e-12,
        };
        let path = maximize(&mut f, &[10.0, 10.0, -5.0], opts).unwrap();
        for (x, m) in path.last().iter().zip(M) {
            assert!((x - m).abs() < 1e-10, "{:?}", path.last());
        }
        // Every accepted step rises.
        assert!(path.logp.windows(2).all(|w| w[1] >= w[0]));
        assert!(path.x.len() < 40, "{} iterations", path.x.len());
    }

    #[test]
    fn a_non_finite_start_is_an_error() {
        let mut f = |_: &[f64], _: &mut [f64]| Ok(f64::NAN);
        let opts = Options {
            maxiter: 5,
            maxcor: 3,
            gtol: 1e-8,
        };
        let e = maximize(&mut f, &[0.0], opts).unwrap_err().to_string();
        assert!(e.contains("starting position"), "{e}");
    }
}
