//! The spec's problems, defined once for the sample programs, the
//! benchmarks and the tests.

use crux::{noise, Activation, Crux, Domain, Expr, LogDensity, Net, Param, Prior, PI};

/// The quick example's true coefficients (3.14 is the spec's value, not π).
#[allow(clippy::approx_constant)]
pub const QUICKSTART_TRUTH: (f64, f64) = (3.14, -2.71);

/// The quick example: `a·sin(πx) + b·cos(πx) − target` on 101 points of
/// [0, 1], target `3.14 sin(πx) − 2.71 cos(πx) + N(0, 0.1²)` drawn once.
pub struct Quickstart {
    /// The problem (one `.mse()` constraint).
    pub problem: Crux,
    /// Coefficient of `sin(πx)`.
    pub a: Param,
    /// Coefficient of `cos(πx)`.
    pub b: Param,
    /// The coordinate variable.
    pub x: Expr,
    /// The noisy observations.
    pub target: Expr,
}

impl Quickstart {
    /// Builds the problem with the noise drawn from `seed`.
    pub fn new(seed: u64) -> crux::Result<Quickstart> {
        let dom = Domain::line(0.0, 1.0, 0.01)?;
        let x = dom.variable("interior")?;
        let (a_true, b_true) = QUICKSTART_TRUTH;
        let target = a_true * (PI * &x).sin() + b_true * (PI * &x).cos() + noise::gaussian(0.1);
        let a = Param::new("a", [1]);
        let b = Param::new("b", [1]);
        let residual = &a * (PI * &x).sin() + &b * (PI * &x).cos() - &target;
        let problem = Crux::new([residual.mse()])?.with_seed(seed);
        Ok(Quickstart {
            problem,
            a,
            b,
            x,
            target,
        })
    }

    /// The exact posterior of (a, b) under the default priors, which this
    /// problem allows: it is linear-Gaussian, so the log-density is
    /// quadratic; its Hessian comes from differences of compiled gradients
    /// and one Newton step from the origin gives the mean. Returns (mean,
    /// covariance).
    pub fn exact_posterior(
        &self,
        likelihood_scale: f64,
    ) -> crux::Result<([f64; 2], [[f64; 2]; 2])> {
        let ld = self.log_density(likelihood_scale)?;
        let (_, g0) = ld.logp_and_grad(&[0.0, 0.0])?;
        let (_, ga) = ld.logp_and_grad(&[1.0, 0.0])?;
        let (_, gb) = ld.logp_and_grad(&[0.0, 1.0])?;
        let h = [
            [ga[0] - g0[0], gb[0] - g0[0]],
            [ga[1] - g0[1], gb[1] - g0[1]],
        ];
        let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
        let inv = [
            [h[1][1] / det, -h[0][1] / det],
            [-h[1][0] / det, h[0][0] / det],
        ];
        let mean = [
            -(inv[0][0] * g0[0] + inv[0][1] * g0[1]),
            -(inv[1][0] * g0[0] + inv[1][1] * g0[1]),
        ];
        Ok((mean, [[-inv[0][0], -inv[0][1]], [-inv[1][0], -inv[1][1]]]))
    }

    /// The log-density of (a, b) under the default prior.
    pub fn log_density(&self, likelihood_scale: f64) -> crux::Result<LogDensity> {
        self.problem
            .log_density()
            .sample(&self.a, Prior::default())
            .sample(&self.b, Prior::default())
            .likelihood_scale(likelihood_scale)
            .build()
    }
}

/// The spec's Bayesian PINN: `u'' + π² sin(πx) = 0` on 101 points of [0, 1],
/// `u(0) = u(1) = 0`, `u` an MLP 1→32→32→32→1 with tanh.
pub struct Bpinn {
    /// The problem (`pde.mse()`, `bc.mse()`).
    pub problem: Crux,
    /// The network.
    pub net: Net,
    /// The field `u(x)` on the interior points.
    pub u: Expr,
    /// The coordinate variable of the interior points.
    pub x: Expr,
}

impl Bpinn {
    /// Builds the problem with the network's weights drawn from `seed`.
    pub fn new(seed: u64) -> crux::Result<Bpinn> {
        let dom = Domain::line(0.0, 1.0, 0.01)?;
        let x = dom.variable("interior")?;
        let xb = dom.variable("boundary")?;
        let net = Net::mlp(1, 1, 32, 3, Activation::Tanh, seed)?;
        let u = net.call(&[&x]);
        let pde = u.dd(&x) + (PI * PI) * (PI * &x).sin();
        let bc = net.call(&[&xb]);
        let problem = Crux::new([pde.mse(), bc.mse()])?;
        Ok(Bpinn { problem, net, u, x })
    }

    /// The log-density of the network's weights under the default prior.
    pub fn log_density(&self) -> crux::Result<LogDensity> {
        self.problem
            .log_density()
            .sample(&self.net, Prior::default())
            .build()
    }
}

/// A 100-dimensional Gaussian with a dense precision matrix of condition
/// number 10³, written as a residual: `r = L θ` with `LᵀL = P`, and
/// `log p = −50 · mean(r²) + prior = −½ θᵀPθ + prior` (likelihood scale 50).
pub struct Gauss100 {
    /// The problem (`r.mse()`, no domain).
    pub problem: Crux,
    /// The position, shape `(100, 1)`.
    pub theta: Param,
    /// The precision matrix `P`, row-major `100 × 100`.
    pub precision: Vec<f64>,
    /// The factor `L` (row-major), `P = LᵀL`.
    pub factor: Vec<f64>,
}

/// Dimension of [`Gauss100`].
pub const GAUSS_DIM: usize = 100;

impl Gauss100 {
    /// The exact posterior variances under the default prior (σ = 10):
    /// the diagonal of `(P + I/100)⁻¹`, by Gauss–Jordan elimination.
    pub fn exact_variances(&self) -> Vec<f64> {
        let n = GAUSS_DIM;
        let mut a = vec![0.0; n * 2 * n];
        for i in 0..n {
            for j in 0..n {
                a[i * 2 * n + j] = self.precision[i * n + j] + if i == j { 0.01 } else { 0.0 };
            }
            a[i * 2 * n + n + i] = 1.0;
        }
        for c in 0..n {
            let piv = a[c * 2 * n + c];
            for j in 0..2 * n {
                a[c * 2 * n + j] /= piv;
            }
            for r in 0..n {
                if r != c {
                    let f = a[r * 2 * n + c];
                    for j in 0..2 * n {
                        a[r * 2 * n + j] -= f * a[c * 2 * n + j];
                    }
                }
            }
        }
        (0..n).map(|i| a[i * 2 * n + n + i]).collect()
    }
    /// Builds the problem; the rotation is drawn from `seed`.
    pub fn new(seed: u64) -> crux::Result<Gauss100> {
        let n = GAUSS_DIM;
        // Random orthogonal Q by modified Gram–Schmidt on normal draws.
        let mut q: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                (0..n)
                    .map(|i| crux_ir::rng::normal(seed, j as u64, i as u64))
                    .collect()
            })
            .collect();
        for j in 0..n {
            for k in 0..j {
                let qk = q[k].clone();
                let d: f64 = q[j].iter().zip(&qk).map(|(a, b)| a * b).sum();
                q[j].iter_mut().zip(&qk).for_each(|(a, b)| *a -= d * b);
            }
            let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
            q[j].iter_mut().for_each(|v| *v /= norm);
        }
        // Eigenvalues log-spaced in [1, 10³]; L = diag(√λ) Qᵀ (rows of L are √λ_j q_j).
        let lambda: Vec<f64> = (0..n)
            .map(|j| 10f64.powf(3.0 * j as f64 / (n - 1) as f64))
            .collect();
        let mut factor = vec![0.0; n * n];
        for j in 0..n {
            for i in 0..n {
                factor[j * n + i] = lambda[j].sqrt() * q[j][i];
            }
        }
        let mut precision = vec![0.0; n * n];
        for a in 0..n {
            for c in 0..n {
                precision[a * n + c] = (0..n).map(|j| factor[j * n + a] * factor[j * n + c]).sum();
            }
        }
        let l = ndarray::Array2::from_shape_vec((n, n), factor.clone()).expect("n x n");
        let theta = Param::new("theta", [n, 1]);
        let r = Expr::array(&l).matmul(&theta.expr());
        let problem = Crux::new([r.mse()])?;
        Ok(Gauss100 {
            problem,
            theta,
            precision,
            factor,
        })
    }

    /// The log-density of θ: likelihood scale `N/2 = 50` makes the
    /// likelihood term `−½ θᵀPθ`; the default prior adds `−θᵀθ/200`.
    pub fn log_density(&self) -> crux::Result<LogDensity> {
        self.problem
            .log_density()
            .sample(&self.theta, Prior::default())
            .likelihood_scale(GAUSS_DIM as f64 / 2.0)
            .build()
    }
}

/// The spec's "Mixed" pattern on the Bayesian PINN's equation: an encoder
/// MLP 1→32→32→8 (tanh) trained with Adam (a point estimate) feeding a
/// head MLP 8→16→1 (tanh) whose weights are sampled, `u(x) =
/// head(encoder(x))`, constraints `u'' + π² sin(πx) = 0` on 101 points and
/// `u(0) = u(1) = 0`.
pub struct MixedPinn {
    /// The problem (`pde.mse()`, `bc.mse()`).
    pub problem: Crux,
    /// The optimised feature extractor.
    pub encoder: Net,
    /// The sampled head.
    pub head: Net,
    /// The field `u(x)` on the interior points.
    pub u: Expr,
    /// The coordinate variable of the interior points.
    pub x: Expr,
}

impl MixedPinn {
    /// Builds the problem with the networks' weights drawn from `seed`.
    pub fn new(seed: u64) -> crux::Result<MixedPinn> {
        let dom = Domain::line(0.0, 1.0, 0.01)?;
        let x = dom.variable("interior")?;
        let xb = dom.variable("boundary")?;
        let encoder = Net::mlp_named("encoder", 1, 8, 32, 2, Activation::Tanh, seed)?;
        let head = Net::mlp_named("head", 8, 1, 16, 1, Activation::Tanh, seed.wrapping_add(1))?;
        let u = head.call(&[&encoder.call(&[&x])]);
        let pde = u.dd(&x) + (PI * PI) * (PI * &x).sin();
        let bc = head.call(&[&encoder.call(&[&xb])]);
        let problem = Crux::new([pde.mse(), bc.mse()])?;
        Ok(MixedPinn {
            problem,
            encoder,
            head,
            u,
            x,
        })
    }
}

/// Per point of a chain-aware field `(K, N, P, ...)`: the mean and the
/// 5% and 95% quantiles over all chains and draws.
pub fn predictive_band(chain: &ndarray::ArrayD<f64>) -> Vec<(f64, f64, f64)> {
    let s = chain.shape();
    let draws = s[0] * s[1];
    let points = chain.len() / draws.max(1);
    let flat = chain
        .to_shape((draws, points))
        .expect("a chain-aware field has K x N x point entries");
    (0..points)
        .map(|i| {
            let col: Vec<f64> = flat.column(i).to_vec();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            (
                mean,
                crux::diagnostics::quantile(&col, 0.05),
                crux::diagnostics::quantile(&col, 0.95),
            )
        })
        .collect()
}
