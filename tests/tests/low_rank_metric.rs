//! The low-rank metric (`Bayesian::metric(Metric::LowRank { rank })`) on a
//! 30-d Gaussian whose covariance is the identity plus two strong
//! directions: exact moments within 4 MCSE, the adapted eigenvalues, the
//! efficiency against the diagonal metric, draws identical across backends
//! and chunkings, and the configuration errors.

use crux::analysis::ess_bulk;
use crux::{Backend, Bayesian, Crux, Expr, Metric, Param, Solution, SolveOptions};
use crux_tests::stats::within_4_mcse;
use ndarray::Array2;

const D: usize = 30;

/// `u₁ = 1/√d`, `u₂ = ±1/√d` alternating (orthonormal for even `d`).
fn directions() -> [Vec<f64>; 2] {
    let s = 1.0 / (D as f64).sqrt();
    [
        vec![s; D],
        (0..D).map(|i| if i % 2 == 0 { s } else { -s }).collect(),
    ]
}

/// Covariance `C = I + 99 u₁u₁ᵀ + 24 u₂u₂ᵀ` written as a residual `r = L θ`
/// with `L = C^{-1/2} = I + (1/10 − 1) u₁u₁ᵀ + (1/5 − 1) u₂u₂ᵀ`; likelihood
/// scale `d/2` makes the log-density `−½ θᵀ C⁻¹ θ` plus the default prior.
/// Returns the problem, θ and the exact posterior covariance
/// `(C⁻¹ + I/100)⁻¹`.
fn spiked() -> (Crux, Param, Array2<f64>) {
    let [u1, u2] = directions();
    let l = Array2::from_shape_fn((D, D), |(i, j)| {
        (i == j) as u8 as f64 - 0.9 * u1[i] * u1[j] - 0.8 * u2[i] * u2[j]
    });
    let prec = l.t().dot(&l) + Array2::<f64>::eye(D) * 0.01;
    let theta = Param::new("theta", [D, 1]);
    let r = Expr::array(&l).matmul(&theta.expr());
    (Crux::new([r.mse()]).unwrap(), theta, invert(prec))
}

/// Gauss–Jordan inverse of a symmetric positive-definite matrix.
fn invert(m: Array2<f64>) -> Array2<f64> {
    let n = m.nrows();
    let mut a = ndarray::concatenate![ndarray::Axis(1), m, Array2::<f64>::eye(n)];
    for c in 0..n {
        let piv = a[(c, c)];
        a.row_mut(c).mapv_inplace(|x| x / piv);
        for r in 0..n {
            if r != c {
                let f = a[(r, c)];
                let row_c = a.row(c).to_owned();
                a.row_mut(r).zip_mut_with(&row_c, |x, y| *x -= f * y);
            }
        }
    }
    a.slice(ndarray::s![.., n..]).to_owned()
}

fn nuts(metric: Metric) -> Bayesian {
    Bayesian::nuts()
        .metric(metric)
        .warmup(1000)
        .keep(2000)
        .num_chains(2)
        .likelihood_scale(D as f64 / 2.0)
}

fn sample(cfg: Bayesian, opts: SolveOptions) -> (Param, Solution, Array2<f64>) {
    let (problem, theta, cov) = spiked();
    theta.bayesian(cfg).unwrap();
    let sol = problem.solve_with(100_000, &opts.quiet()).unwrap();
    (theta, sol, cov)
}

/// Minimum bulk ESS per 1000 gradient evaluations.
fn efficiency(theta: &Param, sol: &Solution) -> f64 {
    let ess = ess_bulk(theta.posterior_samples().unwrap().view()).unwrap();
    ess.iter().copied().fold(f64::INFINITY, f64::min) / sol.grad_evals as f64 * 1000.0
}

/// Every dimension's mean and variance, and the variance along both strong
/// directions, within 4 MCSE; the adapted eigenvalues are large (the two
/// spikes); the efficiency beats the diagonal metric's.
#[test]
fn low_rank_nuts_matches_a_spiked_gaussian() {
    let (theta, sol, cov) = sample(nuts(Metric::LowRank { rank: 2 }), SolveOptions::default());
    let post = theta.posterior().unwrap();
    let x: Vec<Array2<f64>> = (0..D).map(|i| post.entry(0, i).unwrap()).collect();
    for i in 0..D {
        within_4_mcse(&x[i], 0.0, &format!("low rank: mean[{i}]"));
        within_4_mcse(
            &x[i].mapv(|v| v * v),
            cov[(i, i)],
            &format!("low rank: var[{i}]"),
        );
    }
    for (k, u) in directions().iter().enumerate() {
        let proj = x
            .iter()
            .zip(u)
            .fold(Array2::<f64>::zeros(x[0].dim()), |acc, (xi, ui)| {
                acc + xi * *ui
            });
        let exact: f64 = (0..D)
            .map(|i| (0..D).map(|j| u[i] * cov[(i, j)] * u[j]).sum::<f64>())
            .sum();
        within_4_mcse(
            &proj.mapv(|v| v * v),
            exact,
            &format!("low rank: var along u{}", k + 1),
        );
    }
    // The metric: D (30), Λ (2), U (2 × 30); both eigenvalues well above 1.
    let m = &post.inverse_mass[0];
    assert_eq!(m.len(), D + 2 + 2 * D);
    let lambda = &m[D..D + 2];
    assert!(lambda.iter().all(|l| *l > 5.0), "eigenvalues {lambda:?}");
    let low = efficiency(&theta, &sol);
    let (theta_d, sol_d, _) = sample(nuts(Metric::Diagonal), SolveOptions::default());
    let diag = efficiency(&theta_d, &sol_d);
    eprintln!("min bulk ESS per 1000 gradient evaluations: diagonal {diag:.2}, low rank {low:.2}");
    assert!(low >= 2.0 * diag, "low rank {low:.2} vs diagonal {diag:.2}");
}

/// The same draws from the interpreter and Cranelift, in one chunk or many.
#[test]
fn low_rank_draws_are_identical_across_backends_and_chunks() {
    let cfg = || {
        Bayesian::nuts()
            .metric(Metric::LowRank { rank: 3 })
            .warmup(150)
            .keep(20)
            .likelihood_scale(D as f64 / 2.0)
    };
    let run = |opts: SolveOptions| {
        let (theta, _, _) = sample(cfg(), opts);
        let post = theta.posterior().unwrap();
        (
            post.leaf("theta").unwrap().clone(),
            post.inverse_mass[0].clone(),
        )
    };
    let base = run(SolveOptions::default());
    let interp = run(SolveOptions::default().backend(Backend::Interpreter));
    let chunked = run(SolveOptions::default().chunk_sweeps(7));
    assert_eq!(base, interp);
    assert_eq!(base, chunked);
    // The window moved U off its zero start.
    assert!(base.1[D + 3..].iter().any(|v| *v != 0.0), "U was adapted");
}

#[test]
fn low_rank_configuration_errors() {
    let (problem, theta, _) = spiked();
    let e = theta
        .bayesian(Bayesian::nuts().metric(Metric::LowRank { rank: 0 }))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank >= 1"), "{e}");
    let e = theta
        .bayesian(
            Bayesian::mala()
                .step_size(0.1)
                .metric(Metric::LowRank { rank: 2 }),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no mass matrix"), "{e}");
    theta
        .bayesian(
            Bayesian::nuts()
                .metric(Metric::LowRank { rank: D + 1 })
                .warmup(10)
                .keep(5),
        )
        .unwrap();
    let e = problem
        .solve_with(100, &SolveOptions::default().quiet())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("keeps more directions than the model's 30 entries"),
        "{e}"
    );
}
