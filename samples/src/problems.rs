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
        self.log_density_scaled(1.0)
    }

    /// The log-density with likelihood scale `scale`.
    pub fn log_density_scaled(&self, scale: f64) -> crux::Result<LogDensity> {
        self.problem
            .log_density()
            .sample(&self.net, Prior::default())
            .likelihood_scale(scale)
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
        self.log_density_scaled(GAUSS_DIM as f64 / 2.0)
    }

    /// The log-density with likelihood scale `scale`.
    pub fn log_density_scaled(&self, scale: f64) -> crux::Result<LogDensity> {
        self.problem
            .log_density()
            .sample(&self.theta, Prior::default())
            .likelihood_scale(scale)
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

/// Eight schools, non-centred (posteriordb `eight_schools_noncentered`):
/// `μ ~ N(0, 5²)`, `τ ~ half-Cauchy(0, 5)` (a positive parameter), `η_j ~
/// N(0, 1)`, `y_j ~ N(μ + τ η_j, σ_j²)`: one [`crux::Group`] sampled
/// jointly (flat model prior; the priors are log-density terms).
pub struct EightSchools {
    /// The problem: the Gaussian likelihood and three prior terms.
    pub problem: Crux,
    /// The model (μ, τ, η).
    pub group: crux::Group,
    /// Population mean.
    pub mu: Param,
    /// Population scale (positive).
    pub tau: Param,
    /// Standardised school effects (8).
    pub eta: Param,
}

impl EightSchools {
    /// The treatment effects' estimates.
    pub const Y: [f64; 8] = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];
    /// Their standard errors.
    pub const SIGMA: [f64; 8] = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];

    /// Builds the problem.
    pub fn new() -> crux::Result<EightSchools> {
        use crux::Constraint;
        let group = crux::Group::new("schools");
        let mu = group.param("mu", [1]);
        let tau = group.param("tau", [1]).positive();
        let eta = group.param("eta", [8]);
        let y = Expr::array(&ndarray::arr1(&Self::Y));
        let sigma = Expr::array(&ndarray::arr1(&Self::SIGMA));
        let r = y - (&mu + &tau * &eta);
        let problem = Crux::new([
            r.gaussian(sigma),
            Constraint::log_density((mu.expr() * (1.0 / 5.0)).square().sum() * -0.5),
            // half-Cauchy(0, 5) on τ > 0 (the Jacobian comes from `.positive()`).
            Constraint::log_density(-((tau.expr() * (1.0 / 5.0)).square().log1p().sum())),
            Constraint::log_density(eta.expr().square().sum() * -0.5),
        ])?;
        Ok(EightSchools {
            problem,
            group,
            mu,
            tau,
            eta,
        })
    }

    /// The school effects `θ_j = μ + τ η_j` as an expression.
    pub fn theta(&self) -> Expr {
        &self.mu + &self.tau * &self.eta
    }
}

/// Linear regression with unknown noise: `y = α + β x + N(0, σ²)`, σ a
/// positive parameter, flat priors; the data from a CSV file with columns
/// `x,y` (lines starting with `#` are comments).
pub struct Regression {
    /// The problem (one Gaussian likelihood term).
    pub problem: Crux,
    /// The model (α, β, σ).
    pub group: crux::Group,
    /// Intercept.
    pub alpha: Param,
    /// Slope.
    pub beta: Param,
    /// Noise standard deviation (positive).
    pub sigma: Param,
    /// The covariate.
    pub x: Vec<f64>,
    /// The responses.
    pub y: Vec<f64>,
}

impl Regression {
    /// The data file the sample ships (`samples/data/regression.csv`).
    pub fn shipped_data() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/regression.csv")
    }

    /// Reads `path` and builds the problem.
    pub fn from_csv(path: &std::path::Path) -> crux::Result<Regression> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::io_error(path, e))?;
        let bad = |line: usize, reason: String| crux::Error::InvalidArgument {
            what: format!("{}, line {line}", path.display()),
            reason,
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') || l == "x,y" {
                continue;
            }
            let cols: Vec<&str> = l.split(',').map(str::trim).collect();
            let [a, b] = cols[..] else {
                return Err(bad(i + 1, format!("expected two columns `x,y`, got `{l}`")));
            };
            let num = |s: &str| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(i + 1, format!("`{s}` is not a finite number")))
            };
            x.push(num(a)?);
            y.push(num(b)?);
        }
        // Under flat priors the posterior is proper from 4 rows on and
        // E[σ²] = RSS/(N − 5) is finite from 6.
        if x.len() < 6 {
            return Err(bad(
                text.lines().count(),
                format!(
                    "{} rows; this regression with unknown noise needs at least 6",
                    x.len()
                ),
            ));
        }
        let group = crux::Group::new("regression");
        let alpha = group.param("alpha", [1]);
        let beta = group.param("beta", [1]);
        let sigma = group.param("sigma", [1]).positive();
        let xs = Expr::array(&ndarray::arr1(&x));
        let ys = Expr::array(&ndarray::arr1(&y));
        let r = ys - (&alpha + &beta * xs);
        let problem = Crux::new([r.gaussian(&sigma)])?;
        Ok(Regression {
            problem,
            group,
            alpha,
            beta,
            sigma,
            x,
            y,
        })
    }

    /// The least-squares fit `(α̂, β̂)` and its residual sum of squares:
    /// under flat priors on (α, β, σ) the posterior means of α and β, and
    /// `E[σ² | y] = RSS / (N − 5)` (σ² | y is inverse-gamma((N − 3)/2,
    /// RSS/2)).
    pub fn least_squares(&self) -> (f64, f64, f64) {
        let n = self.x.len() as f64;
        let mx = self.x.iter().sum::<f64>() / n;
        let my = self.y.iter().sum::<f64>() / n;
        let sxy: f64 = self
            .x
            .iter()
            .zip(&self.y)
            .map(|(x, y)| (x - mx) * (y - my))
            .sum();
        let sxx: f64 = self.x.iter().map(|x| (x - mx).powi(2)).sum();
        let b = sxy / sxx;
        let a = my - b * mx;
        let rss = self
            .x
            .iter()
            .zip(&self.y)
            .map(|(x, y)| (y - a - b * x).powi(2))
            .sum();
        (a, b, rss)
    }
}
