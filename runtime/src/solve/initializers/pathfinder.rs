//! Pathfinder (Zhang, Carpenter, Gelman & Vehtari 2022): L-BFGS on the
//! log-density, and at each iterate `l` the normal approximation
//! `N(μₗ, Σₗ)` built from the L-BFGS inverse Hessian (Algorithm 3's
//! diagonal `α` and the factored low-rank update of the last `J` pairs,
//! formula II.2), `μₗ = xₗ + Σₗ ∇log p(xₗ)`; the approximation with the
//! largest Monte-Carlo ELBO wins and gives the draws (Algorithm 4). The
//! formulas are blackjax's (`lbfgs_recover_alpha`,
//! `lbfgs_inverse_hessian_factors`, `bfgs_sample`).

use super::lbfgs::{self, LogDensityFn, Path};
use super::linalg::{cholesky, dot, qr, upper_inverse, Mat};
use crate::error::Result;

/// What pathfinder leaves: the optimum, the chosen approximation's ELBO
/// and draws, and their per-entry variance.
#[derive(Clone, Debug)]
pub(crate) struct Fit {
    /// The last L-BFGS iterate (the MAP when it converged).
    pub map: Vec<f64>,
    /// The iterate whose approximation won.
    pub best: usize,
    /// Its ELBO estimate.
    pub elbo: f64,
    /// Draws from it.
    pub draws: Vec<Vec<f64>>,
    /// The per-entry variance of the draws.
    pub variance: Vec<f64>,
}

/// Settings (the spec's `pathfinder(maxiter=30, num_samples=200)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Options {
    pub lbfgs: lbfgs::Options,
    /// Draws per ELBO estimate.
    pub elbo_draws: usize,
    /// Draws of the chosen approximation.
    pub draws: usize,
}

/// `N(μ, Σ)`, `Σ = diag(α) + β γ βᵀ`, in the form Algorithm 4 samples:
/// `Q R = diag(1/√α) β`, `L = chol(I + R γ Rᵀ)`.
struct Normal {
    mu: Vec<f64>,
    sqrt_alpha: Vec<f64>,
    q: Mat,
    l: Mat,
    logdet: f64,
}

impl Normal {
    /// A draw from the standard normals `u` and its log-density.
    fn draw(&self, u: &[f64]) -> (Vec<f64>, f64) {
        let (d, m) = (u.len(), self.l.rows);
        // Qᵀu, then (L − I) Qᵀu, then Q of that.
        let qtu: Vec<f64> = (0..m)
            .map(|k| (0..d).map(|i| self.q.at(i, k) * u[i]).sum())
            .collect();
        let lq: Vec<f64> = (0..m)
            .map(|r| (0..=r).map(|c| self.l.at(r, c) * qtu[c]).sum::<f64>() - qtu[r])
            .collect();
        let x = (0..d)
            .map(|i| {
                let low: f64 = (0..m).map(|k| self.q.at(i, k) * lq[k]).sum();
                self.mu[i] + self.sqrt_alpha[i] * (low + u[i])
            })
            .collect();
        let logq = -0.5 * (self.logdet + dot(u, u) + d as f64 * (2.0 * std::f64::consts::PI).ln());
        (x, logq)
    }
}

/// Algorithm 3's update of the diagonal `α` from one pair (`s = Δx`, `z =
/// Δ(−∇ log p)`), or `None` when the pair has too little curvature.
fn recover_alpha(alpha: &[f64], s: &[f64], z: &[f64]) -> Option<Vec<f64>> {
    let b = dot(z, s);
    if b.is_nan() || b <= 1e-12 * dot(z, z).sqrt() {
        return None;
    }
    let a: f64 = z.iter().zip(alpha).map(|(z, a)| z * z * a).sum();
    let c: f64 = s.iter().zip(alpha).map(|(s, a)| s * s / a).sum();
    Some(
        alpha
            .iter()
            .zip(s.iter().zip(z))
            .map(|(&al, (&si, &zi))| {
                1.0 / (a / (b * al) + zi * zi / b - a * si * si / (b * c * al * al))
            })
            .collect(),
    )
}

/// The approximation at iterate `x` with gradient `g`, diagonal `alpha`
/// and pairs `(s, z)` (oldest first).
fn normal(x: &[f64], g: &[f64], alpha: &[f64], pairs: &[(Vec<f64>, Vec<f64>)]) -> Option<Normal> {
    let (d, j) = (x.len(), pairs.len());
    let m = 2 * j;
    // β = [diag(α) Z, S], γ = [[0, −R⁻¹], [−R⁻ᵀ, R⁻ᵀ(ZᵀαZ + diag η)R⁻¹]].
    let mut beta = Mat::zeros(d, m);
    for (k, (s, z)) in pairs.iter().enumerate() {
        for i in 0..d {
            *beta.at_mut(i, k) = alpha[i] * z[i];
            *beta.at_mut(i, j + k) = s[i];
        }
    }
    let mut r = Mat::zeros(j, j);
    for a in 0..j {
        for b in a..j {
            *r.at_mut(a, b) = dot(&pairs[a].0, &pairs[b].1);
        }
        *r.at_mut(a, a) += f64::EPSILON;
    }
    let minv_r = upper_inverse(&r)?.scaled(-1.0);
    let mut inner = Mat::zeros(j, j);
    for a in 0..j {
        for b in 0..j {
            let za: f64 = (0..d)
                .map(|i| alpha[i] * pairs[a].1[i] * pairs[b].1[i])
                .sum();
            *inner.at_mut(a, b) = za
                + if a == b {
                    dot(&pairs[a].0, &pairs[a].1)
                } else {
                    0.0
                };
        }
    }
    let block = minv_r.transpose().mul(&inner).mul(&minv_r);
    let mut gamma = Mat::zeros(m, m);
    for a in 0..j {
        for b in 0..j {
            *gamma.at_mut(a, j + b) = minv_r.at(a, b);
            *gamma.at_mut(j + a, b) = minv_r.at(b, a);
            *gamma.at_mut(j + a, j + b) = block.at(a, b);
        }
    }
    // μ = x + Σ ∇log p.
    let bg: Vec<f64> = (0..m)
        .map(|k| (0..d).map(|i| beta.at(i, k) * g[i]).sum())
        .collect();
    let gbg: Vec<f64> = (0..m)
        .map(|a| (0..m).map(|b| gamma.at(a, b) * bg[b]).sum())
        .collect();
    let mu: Vec<f64> = (0..d)
        .map(|i| x[i] + alpha[i] * g[i] + (0..m).map(|k| beta.at(i, k) * gbg[k]).sum::<f64>())
        .collect();
    let sqrt_alpha: Vec<f64> = alpha.iter().map(|a| a.sqrt()).collect();
    let mut scaled = beta.clone();
    for (i, sa) in sqrt_alpha.iter().enumerate() {
        for k in 0..m {
            *scaled.at_mut(i, k) /= sa;
        }
    }
    let (q, rr) = qr(&scaled);
    let mut inner = rr.mul(&gamma).mul(&rr.transpose());
    for k in 0..m {
        *inner.at_mut(k, k) += 1.0;
    }
    let l = cholesky(&inner)?;
    let logdet = alpha.iter().map(|a| a.ln()).sum::<f64>()
        + 2.0 * (0..m).map(|k| l.at(k, k).ln()).sum::<f64>();
    mu.iter().all(|v| v.is_finite()).then_some(Normal {
        mu,
        sqrt_alpha,
        q,
        l,
        logdet,
    })
}

/// Runs pathfinder from `x0`; `normal_pair(k)` is the `k`-th pair of
/// independent standard normals (counter-based: the same draws on every
/// run; a draw of `d` entries takes `⌈d/2⌉` pairs).
pub(crate) fn pathfinder(
    f: &mut LogDensityFn<'_>,
    x0: &[f64],
    opts: Options,
    normal_pair: &dyn Fn(u64) -> (f64, f64),
) -> Result<Fit> {
    let d = x0.len();
    let mut path: Path = lbfgs::maximize(f, x0, opts.lbfgs)?;
    if path.x.len() < 2 {
        // Started at a stationary point (a model initialised at its mode):
        // no step, no curvature pair. Restart from a standard-normal
        // perturbation of the start, as pathfinder's random inits do.
        let start: Vec<f64> = standard(normal_pair, 3 << 60, d)
            .iter()
            .zip(x0)
            .map(|(z, x)| x + z)
            .collect();
        path = lbfgs::maximize(f, &start, opts.lbfgs)?;
    }
    let mut alpha = vec![1.0; d];
    let mut pairs: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut best: Option<(usize, f64, Normal)> = None;
    let mut g = vec![0.0; d];
    let draws_of = |base: u64, n: usize| -> Vec<Vec<f64>> {
        (0..n)
            .map(|k| standard(normal_pair, base + (k * d.div_ceil(2)) as u64, d))
            .collect()
    };
    for l in 1..path.x.len() {
        let s: Vec<f64> = path.x[l]
            .iter()
            .zip(&path.x[l - 1])
            .map(|(a, b)| a - b)
            .collect();
        let z: Vec<f64> = path.grad[l - 1]
            .iter()
            .zip(&path.grad[l])
            .map(|(a, b)| a - b)
            .collect();
        if let Some(a) = recover_alpha(&alpha, &s, &z) {
            alpha = a;
            if pairs.len() == opts.lbfgs.maxcor {
                pairs.remove(0);
            }
            pairs.push((s, z));
        }
        let Some(q) = normal(&path.x[l], &path.grad[l], &alpha, &pairs) else {
            continue;
        };
        let mut elbo = 0.0;
        for u in draws_of((l as u64) << 40, opts.elbo_draws) {
            let (x, logq) = q.draw(&u);
            elbo += f(&x, &mut g)? - logq;
        }
        elbo /= opts.elbo_draws as f64;
        if elbo.is_finite() && best.as_ref().is_none_or(|b| elbo > b.1) {
            best = Some((l, elbo, q));
        }
    }
    let map = path.last().to_vec();
    let Some((best, elbo, q)) = best else {
        // No usable approximation (no pair had curvature, or every
        // approximation's ELBO was not finite): draws around the optimum
        // with α = 1.
        let draws: Vec<Vec<f64>> = draws_of(1 << 62, opts.draws)
            .into_iter()
            .map(|u| u.iter().zip(&map).map(|(u, m)| m + u).collect())
            .collect();
        let variance = variance(&draws, d);
        return Ok(Fit {
            map,
            best: 0,
            elbo: f64::NAN,
            draws,
            variance,
        });
    };
    let draws: Vec<Vec<f64>> = draws_of(1 << 62, opts.draws)
        .iter()
        .map(|u| q.draw(u).0)
        .collect();
    let variance = variance(&draws, d);
    Ok(Fit {
        map,
        best,
        elbo,
        draws,
        variance,
    })
}

/// `d` standard normals from the pairs `base, base + 1, …`.
fn standard(normal_pair: &dyn Fn(u64) -> (f64, f64), base: u64, d: usize) -> Vec<f64> {
    let mut z = Vec::with_capacity(d + 1);
    for j in 0..d.div_ceil(2) {
        let (a, b) = normal_pair(base + j as u64);
        z.push(a);
        z.push(b);
    }
    z.truncate(d);
    z
}

/// Per-entry sample variance of `draws`.
pub(crate) fn variance(draws: &[Vec<f64>], d: usize) -> Vec<f64> {
    let n = draws.len() as f64;
    (0..d)
        .map(|i| {
            let m = draws.iter().map(|x| x[i]).sum::<f64>() / n;
            draws.iter().map(|x| (x[i] - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::lbfgs::tests::{gaussian, M, P};
    use super::*;
    use crux_ir::rng::{normal_pair, stream, Purpose};

    /// On a correlated Gaussian the winning approximation is close to the
    /// target (the L-BFGS inverse Hessian of a few pairs is not exact):
    /// draws' variances within 20% of the exact marginal ones, the optimum
    /// exact.
    #[test]
    fn approximates_a_correlated_gaussian() {
        let m = M;
        let mut f = gaussian(P, M);
        let cov = crate::solve::initializers::linalg::inverse(&Mat::from_rows(&P)).unwrap();
        let opts = Options {
            lbfgs: lbfgs::Options {
                maxiter: 30,
                maxcor: 6,
                gtol: 1e-10,
            },
            elbo_draws: 100,
            draws: 4000,
        };
        let z = |k: u64| normal_pair(3, stream(Purpose::Test, 0), k);
        let fit = pathfinder(&mut f, &[5.0, 5.0, 5.0], opts, &z).unwrap();
        for (i, mi) in m.iter().enumerate() {
            assert!((fit.map[i] - mi).abs() < 1e-8, "{:?}", fit.map);
            let exact = cov.at(i, i);
            assert!(
                (fit.variance[i] / exact - 1.0).abs() < 0.2,
                "var {i}: {} vs {exact}",
                fit.variance[i]
            );
        }
        assert!(fit.best >= 1 && fit.elbo.is_finite());
    }

    /// Started exactly at the mode (zero gradient), pathfinder restarts
    /// from a perturbed start and still finds the curvature.
    #[test]
    fn a_start_at_the_mode_still_gives_the_variance() {
        let mut f = gaussian(P, [0.0; 3]);
        let opts = Options {
            lbfgs: lbfgs::Options {
                maxiter: 30,
                maxcor: 6,
                gtol: 1e-10,
            },
            elbo_draws: 100,
            draws: 4000,
        };
        let z = |k: u64| normal_pair(3, stream(Purpose::Test, 1), k);
        let fit = pathfinder(&mut f, &[0.0; 3], opts, &z).unwrap();
        assert!(fit.best >= 1, "no approximation was built");
        let cov = crate::solve::initializers::linalg::inverse(&Mat::from_rows(&P)).unwrap();
        for i in 0..3 {
            assert!(
                (fit.variance[i] / cov.at(i, i) - 1.0).abs() < 0.2,
                "var {i}: {}",
                fit.variance[i]
            );
        }
    }
}
