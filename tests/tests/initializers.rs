//! Log-density-aware initializers through the solve driver, on the quick
//! example (linear-Gaussian: exact MAP and Laplace variance known): the
//! warm start, the inverse mass matrix they hand to NUTS, the behaviour
//! matrix (adapt on/off), several chains, and the composition errors.

use crux::{Bayesian, Init, Optimizer, SolveOptions, Substep, Vi};
use crux_samples::problems::Quickstart;
use crux_tests::stats::within_4_mcse;

fn quiet() -> SolveOptions {
    SolveOptions::default().quiet()
}

const SCALE: f64 = 10100.0;

/// NUTS without adaptation and with no warmup: the first draw's chain
/// start is the initializer's, and the inverse mass matrix is what it gave.
fn fixed_nuts() -> Bayesian {
    Bayesian::nuts()
        .step_size(1e-3)
        .adapt(false)
        .warmup(0)
        .keep(1)
        .likelihood_scale(SCALE)
}

/// Pathfinder and Laplace on the quick example: the start within 1e-6 of
/// the exact MAP (the posterior mean: the posterior is Gaussian), the
/// inverse mass matrix the exact Laplace variance (Laplace, to 1e-6
/// relative) or within 10% of it (pathfinder). With `adapt(false)` the
/// kernel keeps it (the behaviour matrix's last row).
#[test]
fn pathfinder_and_laplace_find_the_map_and_its_variance() {
    for init in [
        Init::from(Init::pathfinder()),
        Init::from(Init::laplace()),
        Init::from(Init::laplace().full(true)),
    ] {
        let q = Quickstart::new(42).unwrap();
        let (mu, c) = q.exact_posterior(SCALE).unwrap();
        // The posterior is uncorrelated (sin and cos are orthogonal on the
        // grid), so each model's conditional variance is the marginal one.
        for p in [&q.a, &q.b] {
            p.bayesian(fixed_nuts()).unwrap();
            p.initialize(init.clone()).unwrap();
        }
        q.problem.solve_with(1, &quiet()).unwrap();
        for (j, p) in [&q.a, &q.b].into_iter().enumerate() {
            let post = p.posterior().unwrap();
            let var = post.inverse_mass[0][0];
            let exact = c[j][j];
            let tol = if matches!(init, Init::Pathfinder(_)) {
                0.1
            } else {
                1e-6
            };
            assert!(
                (var / exact - 1.0).abs() < tol,
                "{init:?} {}: IMM {var} vs {exact}",
                p.name()
            );
        }
        // The start: MALA with a step of 1e-16 moves by ~1e-8 at most, so
        // its one draw is the start to well within 1e-6.
        let q2 = Quickstart::new(42).unwrap();
        for p in [&q2.a, &q2.b] {
            p.bayesian(
                Bayesian::mala()
                    .step_size(1e-16)
                    .warmup(0)
                    .keep(1)
                    .likelihood_scale(SCALE),
            )
            .unwrap();
            p.initialize(init.clone()).unwrap();
        }
        q2.problem.solve_with(1, &quiet()).unwrap();
        for (j, p) in [&q2.a, &q2.b].into_iter().enumerate() {
            let x = p.posterior().unwrap().entry(0, 0).unwrap()[(0, 0)];
            assert!(
                (x - mu[j]).abs() < 1e-6,
                "{init:?} {}: start {x} vs MAP {}",
                p.name(),
                mu[j]
            );
            // MALA takes no mass matrix: the initializer's was dropped.
            assert_eq!(p.posterior().unwrap().inverse_mass[0], vec![1.0]);
        }
    }
}

/// Pathfinder, then window adaptation (the behaviour matrix's third row):
/// NUTS draws match the exact posterior within 4 MCSE; with 4 chains the
/// starts are distinct draws (init_jitter is ignored).
#[test]
fn pathfinder_then_adapted_nuts_matches_the_exact_posterior() {
    for chains in [1, 4] {
        let q = Quickstart::new(42).unwrap();
        let (mu, c) = q.exact_posterior(SCALE).unwrap();
        for p in [&q.a, &q.b] {
            p.bayesian(
                Bayesian::nuts()
                    .warmup(300)
                    .keep(2000)
                    .num_chains(chains)
                    .init_jitter(5.0)
                    .likelihood_scale(SCALE),
            )
            .unwrap();
            p.initialize(Init::pathfinder()).unwrap();
        }
        q.problem.solve_with(2300, &quiet()).unwrap();
        for (j, p) in [&q.a, &q.b].into_iter().enumerate() {
            let x = p.posterior().unwrap().entry(0, 0).unwrap();
            let what = format!("pathfinder + nuts, {chains} chain(s), {}", p.name());
            within_4_mcse(&x, mu[j], &format!("{what}: mean"));
            within_4_mcse(
                &x.mapv(|v| (v - mu[j]).powi(2)),
                c[j][j],
                &format!("{what}: variance"),
            );
        }
    }
}

/// SVGD gives each chain its own start (particles pushed apart by the
/// kernel, all near the posterior), and the chains then sample it.
#[test]
fn svgd_particles_start_the_chains() {
    let q = Quickstart::new(42).unwrap();
    let (mu, c) = q.exact_posterior(SCALE).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(fixed_nuts().num_chains(8)).unwrap();
        p.initialize(Init::svgd().steps(300).optimizer(Optimizer::adam(0.05)))
            .unwrap();
    }
    q.problem.solve_with(1, &quiet()).unwrap();
    for (j, p) in [&q.a, &q.b].into_iter().enumerate() {
        let x = p.posterior().unwrap().entry(0, 0).unwrap();
        let starts: Vec<f64> = x.column(0).to_vec();
        let sd = c[j][j].sqrt();
        assert!(
            starts.iter().all(|s| (s - mu[j]).abs() < 6.0 * sd),
            "{starts:?} vs {}",
            mu[j]
        );
        let distinct = starts.windows(2).all(|w| w[0] != w[1]);
        assert!(distinct, "{starts:?}");
    }
}

/// The composition errors: an initializer with substeps, on a `.vi(..)`
/// model, or on a model that is only optimised.
#[test]
fn composition_errors() {
    let q = Quickstart::new(1).unwrap();
    q.a.bayesian(
        Bayesian::nuts()
            .adapt(false)
            .step_size(0.1)
            .warmup(0)
            .keep(5),
    )
    .unwrap();
    q.a.initialize(Init::pathfinder()).unwrap();
    let opts = quiet().substeps([Substep::new([0])]);
    let e = q.problem.solve_with(10, &opts).unwrap_err().to_string();
    assert!(e.contains("with substeps is not supported"), "{e}");

    let q = Quickstart::new(1).unwrap();
    q.a.vi(Vi::meanfield()).unwrap();
    q.a.initialize(Init::laplace()).unwrap();
    let e = q.problem.solve_with(10, &quiet()).unwrap_err().to_string();
    assert!(e.contains("has .vi(..) and an initializer"), "{e}");

    let q = Quickstart::new(1).unwrap();
    q.a.optimizer(Optimizer::adam(0.1)).unwrap();
    q.a.initialize(Init::svgd()).unwrap();
    let e = q.problem.solve_with(10, &quiet()).unwrap_err().to_string();
    assert!(e.contains("is not sampled"), "{e}");

    let e =
        q.a.initialize(Init::pathfinder().maxiter(0))
            .unwrap_err()
            .to_string();
    assert!(e.contains("maxiter"), "{e}");
}
