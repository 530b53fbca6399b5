//! Mean-field VI through the solve driver: the fitted `q` against the
//! exact mean-field optimum of the (linear-Gaussian) quick example, the
//! ELBO trace, draws from `q`, VI beside MCMC (separate models, and masked
//! groups of one network: pattern E), and the configuration errors.

use crux::{
    Activation, Bayesian, Crux, Domain, Error, Mask, Model, Net, Optimizer, SolveOptions, Vi, PI,
};
use crux_samples::problems::Quickstart;
use crux_tests::stats::within_4_mcse;
use ndarray::Array2;

fn quiet() -> SolveOptions {
    SolveOptions::default().quiet()
}

/// The exact posterior's mean and the mean-field optimum's variances
/// `1 / P_ii` (`P` the precision, the inverse of the covariance).
fn mean_field_optimum(q: &Quickstart, scale: f64) -> ([f64; 2], [f64; 2]) {
    let (mu, c) = q.exact_posterior(scale).unwrap();
    let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
    // P_00 = c11 / det, P_11 = c00 / det.
    (mu, [det / c[1][1], det / c[0][0]])
}

fn vi(scale: f64) -> Vi {
    Vi::meanfield()
        .optimizer(Optimizer::adam(1e-2))
        .num_samples(16)
        .likelihood_scale(scale)
}

/// The quick example's `a` and `b`, each fitted by VI (a Gibbs sweep of
/// two mean-field factors: for a Gaussian posterior its fixed point is the
/// joint mean-field optimum): `μ` equals the exact posterior mean (to 2%
/// of the posterior standard deviation) and `σ²` the mean-field variance
/// `1 / P_ii` (to 2%), and the ELBO rises on average.
#[test]
fn quick_example_fits_the_exact_mean_field_optimum() {
    for scale in [1.0, 10100.0] {
        let q = Quickstart::new(42).unwrap();
        let (mu, var) = mean_field_optimum(&q, scale);
        q.a.vi(vi(scale)).unwrap();
        q.b.vi(vi(scale)).unwrap();
        let sol = q.problem.solve_with(8000, &quiet()).unwrap();
        assert_eq!(sol.num_chains, 1);
        for (j, p) in [&q.a, &q.b].into_iter().enumerate() {
            let post = p.posterior().unwrap();
            let fit = &post.variational[0];
            assert_eq!(fit.leaves, [p.name()]);
            let (m, s) = (fit.mean[(0, 0)], fit.std[(0, 0)]);
            let sd = var[j].sqrt();
            assert!(
                (m - mu[j]).abs() < 0.02 * sd,
                "scale {scale}, {}: μ {m}, exact mean {}",
                p.name(),
                mu[j]
            );
            assert!(
                (s * s / var[j] - 1.0).abs() < 0.02,
                "scale {scale}, {}: σ² {}, mean-field optimum {}",
                p.name(),
                s * s,
                var[j]
            );
            // The value after the solve is μ.
            assert_eq!(p.values(), [m]);
            // The ELBO of every step, rising on average: the mean of each
            // tenth is at least the first tenth's.
            let elbo = fit.elbo.row(0);
            assert_eq!(elbo.len(), 8000);
            let tenth = |k: usize| {
                elbo.slice(ndarray::s![k * 800..(k + 1) * 800])
                    .mean()
                    .unwrap()
            };
            assert!(
                tenth(9) > tenth(0) && (1..10).all(|k| tenth(k) >= tenth(0)),
                "scale {scale}: ELBO by tenths {:?}",
                (0..10).map(tenth).collect::<Vec<_>>()
            );
        }
        let report = sol.models.iter().find(|r| r.name == "a").unwrap();
        assert_eq!(report.kernel, "meanfield_vi");
        assert!(report.final_elbo.is_some_and(f64::is_finite));
    }
}

/// `posterior_samples` are `(1, posterior_draws, *shape)` i.i.d. draws from
/// the fitted `q`: their mean and variance match `μ`, `σ²` within 4
/// Monte-Carlo standard errors; no diagnostics, step size or mass matrix.
#[test]
fn posterior_samples_are_draws_from_q() {
    let q = Quickstart::new(42).unwrap();
    q.a.vi(vi(1.0).posterior_draws(4000)).unwrap();
    q.b.vi(vi(1.0).posterior_draws(4000)).unwrap();
    q.problem.solve_with(3000, &quiet()).unwrap();
    let samples = q.a.posterior_samples().unwrap();
    assert_eq!(samples.shape(), [1, 4000, 1]);
    let post = q.a.posterior().unwrap();
    assert!(post.diagnostics.is_none() && post.step_size.is_empty());
    assert!(post.inverse_mass.is_empty());
    let (m, s) = (
        post.variational[0].mean[(0, 0)],
        post.variational[0].std[(0, 0)],
    );
    let x: Array2<f64> = post.entry(0, 0).unwrap();
    within_4_mcse(&x, m, "mean of the draws from q");
    within_4_mcse(
        &x.mapv(|v| (v - m).powi(2)),
        s * s,
        "variance of the draws from q",
    );
}

/// `.vi(..)` after `.bayesian(..)` and the reverse are errors that say
/// why; `.optimizer(..)` replaces a `.vi(..)`; bad settings are refused
/// when attached.
#[test]
fn vi_and_bayesian_exclude_each_other() {
    let q = Quickstart::new(1).unwrap();
    q.a.bayesian(Bayesian::nuts()).unwrap();
    let e = q.a.vi(Vi::meanfield()).unwrap_err().to_string();
    assert!(e.contains("already has .bayesian(..)"), "{e}");
    q.b.vi(Vi::meanfield()).unwrap();
    let e = q.b.bayesian(Bayesian::nuts()).unwrap_err().to_string();
    assert!(e.contains("already has .vi(..)"), "{e}");
    q.b.optimizer(Optimizer::adam(1e-2)).unwrap();
    q.b.bayesian(Bayesian::nuts()).unwrap();
    let e = q.a.vi(Vi::meanfield().num_samples(0)).unwrap_err();
    assert!(matches!(e, Error::Bayesian { .. }), "{e}");
    // Epochs are VI steps: zero is refused at solve.
    let q = Quickstart::new(1).unwrap();
    q.a.vi(Vi::meanfield()).unwrap();
    let e = q.problem.solve_with(0, &quiet()).unwrap_err().to_string();
    assert!(e.contains("one optimiser step per epoch"), "{e}");
}

/// A VI model and an MCMC model in one solve: `a` fitted by VI, `b`
/// sampled by NUTS from its conditional given `a = μ` (the Gibbs sweep).
/// `b`'s draws match that conditional (mean `m_b + C_ba/C_aa (μ_a − m_a)`,
/// variance `1 / P_bb`) within 4 MCSE, and `a`'s `q` is the mean-field
/// optimum.
#[test]
fn vi_and_mcmc_models_coexist() {
    let q = Quickstart::new(42).unwrap();
    let (mu, var) = mean_field_optimum(&q, 1.0);
    let (_, c) = q.exact_posterior(1.0).unwrap();
    q.a.vi(vi(1.0).posterior_draws(2000)).unwrap();
    q.b.bayesian(
        Bayesian::nuts()
            .warmup(1000)
            .keep(2000)
            .likelihood_scale(1.0),
    )
    .unwrap();
    q.problem.solve_with(8000, &quiet()).unwrap();
    let fit = q.a.posterior().unwrap().variational[0].clone();
    let mu_a = fit.mean[(0, 0)];
    // μ_a follows the moving b: it sits at the conditional mean of a given
    // the chain's average b, which is the posterior mean; its noise is that
    // of a 2000-draw average.
    assert!(
        (mu_a - mu[0]).abs() < 0.1 * var[0].sqrt(),
        "μ_a {mu_a}, exact {}",
        mu[0]
    );
    let b = q.b.posterior().unwrap().entry(0, 0).unwrap();
    assert_eq!(b.dim(), (1, 2000));
    let cond = mu[1] + c[1][0] / c[0][0] * (mu_a - mu[0]);
    within_4_mcse(&b, cond, "b | a = μ_a: mean");
    within_4_mcse(
        &b.mapv(|x| (x - cond).powi(2)),
        var[1],
        "b | a = μ_a: variance",
    );
}

/// Pattern E: one network, its output layer's weight fitted by VI and its
/// bias sampled by NUTS, the hidden layer frozen. The model's posterior is
/// one tree of `keep` draws (the VI leaf's drawn from `q`); a
/// `posterior_draws` that differs from `keep` is refused.
#[test]
fn pattern_e_vi_and_mcmc_on_masked_groups() {
    let make = || {
        let d = Domain::line(0.0, 1.0, 0.05).unwrap();
        let x = d.variable("interior").unwrap();
        let net = Net::mlp(1, 1, 3, 1, Activation::Tanh, 3).unwrap();
        let r = net.call(&[&x]) - (PI * &x).sin();
        (Crux::new([r.mse()]).unwrap(), net)
    };
    let names =
        |net: &Net| -> Vec<String> { net.leaves().iter().map(|p| p.name().to_string()).collect() };
    let (problem, net) = make();
    let leaves = names(&net);
    let (w, bias) = (leaves[2].clone(), leaves[3].clone());
    net.mask(Mask::leaves([w.clone()]))
        .vi(vi(1050.0).posterior_draws(1000))
        .unwrap();
    net.mask(Mask::leaves([bias.clone()]))
        .bayesian(
            Bayesian::nuts()
                .warmup(500)
                .keep(1000)
                .likelihood_scale(1050.0),
        )
        .unwrap();
    problem.solve_with(3000, &quiet()).unwrap();
    let post = net.posterior().unwrap();
    assert_eq!(post.num_draws(), 1000);
    assert_eq!(post.leaf(&w).unwrap().shape(), [1, 1000, 1, 3]);
    assert_eq!(post.leaf(&bias).unwrap().shape(), [1, 1000, 1]);
    assert_eq!(post.variational.len(), 1);
    assert_eq!(post.variational[0].leaves, std::slice::from_ref(&w));
    assert!(post
        .diagnostics
        .as_ref()
        .is_some_and(|d| d.is_divergent().is_some()));
    // The VI leaf's draws are draws from its q, entry by entry.
    let fit = &post.variational[0];
    for j in 0..3 {
        let x = post.entry(2, j).unwrap();
        within_4_mcse(
            &x,
            fit.mean[(0, j)],
            &format!("pattern E: weight {j} from q"),
        );
    }
    // The frozen hidden layer kept its value.
    let frozen = post.leaf(&leaves[0]).unwrap();
    assert!(frozen
        .iter()
        .zip(net.leaves()[0].values().iter().cycle())
        .all(|(a, b)| a == b));

    let (problem, net) = make();
    net.mask(Mask::leaves([w]))
        .vi(vi(1.0).posterior_draws(10))
        .unwrap();
    net.mask(Mask::leaves([bias]))
        .bayesian(Bayesian::nuts().warmup(10).keep(20))
        .unwrap();
    let e = problem.solve_with(100, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("posterior_draws must equal the MCMC groups' keep"),
        "{e}"
    );
}
