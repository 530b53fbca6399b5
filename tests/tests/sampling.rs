//! The fused samplers against exact posteriors, with Monte-Carlo-error
//! tolerances (4 MCSE, ESS-based, arviz's estimators) and fixed seeds; and
//! the determinism guarantees (backend, threads).

use crux::{Backend, Bayesian, Param, SolveOptions};
use crux_samples::problems::{Gauss100, Quickstart, GAUSS_DIM};
use crux_tests::stats::within_4_mcse;
use ndarray::Array2;

fn chain(p: &Param) -> Array2<f64> {
    p.posterior().unwrap().entry(0, 0).unwrap()
}

fn quick(config: impl Fn(f64) -> Bayesian, chains: usize, scale: f64, what: &str) {
    let q = Quickstart::new(42).unwrap();
    let (mu, cov) = q.exact_posterior(scale).unwrap();
    let jitter = if chains > 1 { 0.1 } else { 0.0 };
    for p in [&q.a, &q.b] {
        p.bayesian(
            config(cov[0][0])
                .num_chains(chains)
                .init_jitter(jitter)
                .likelihood_scale(scale),
        )
        .unwrap();
    }
    let sol = q
        .problem
        .solve_with(100_000, &SolveOptions::default().quiet())
        .unwrap();
    assert_eq!(sol.num_chains, chains);
    let (a, b) = (chain(&q.a), chain(&q.b));
    assert_eq!(
        q.a.posterior_samples().unwrap().shape()[..2],
        [chains, a.ncols()]
    );
    let what = format!("{what}, {chains} chain(s), scale {scale}");
    within_4_mcse(&a, mu[0], &format!("{what}: mean a"));
    within_4_mcse(&b, mu[1], &format!("{what}: mean b"));
    within_4_mcse(
        &a.mapv(|x| (x - mu[0]).powi(2)),
        cov[0][0],
        &format!("{what}: var a"),
    );
    within_4_mcse(
        &b.mapv(|x| (x - mu[1]).powi(2)),
        cov[1][1],
        &format!("{what}: var b"),
    );
    let ab = Array2::from_shape_fn(a.dim(), |i| (a[i] - mu[0]) * (b[i] - mu[1]));
    within_4_mcse(&ab, cov[0][1], &format!("{what}: cov(a, b)"));
}

fn nuts(_: f64) -> Bayesian {
    Bayesian::nuts().step_size(1e-2).warmup(500).keep(2000)
}
fn hmc(_: f64) -> Bayesian {
    Bayesian::hmc()
        .num_integration_steps(10)
        .step_size(1e-2)
        .warmup(500)
        .keep(2000)
}
/// MALA is not adapted: a step near its optimum for the posterior scale.
fn mala(var: f64) -> Bayesian {
    Bayesian::mala().step_size(var).warmup(500).keep(4000)
}

#[test]
fn quickstart_nuts_matches_exact_posterior() {
    for (k, s) in [(1, 1.0), (4, 1.0), (1, 10100.0), (4, 10100.0)] {
        quick(nuts, k, s, "nuts");
    }
}

#[test]
fn quickstart_hmc_matches_exact_posterior() {
    for (k, s) in [(1, 1.0), (4, 1.0), (1, 10100.0), (4, 10100.0)] {
        quick(hmc, k, s, "hmc");
    }
}

#[test]
fn quickstart_mala_matches_exact_posterior() {
    for (k, s) in [(1, 1.0), (4, 1.0), (1, 10100.0), (4, 10100.0)] {
        quick(mala, k, s, "mala");
    }
}

/// Same seed ⇒ the same draws on the interpreter and on Cranelift (both
/// code tiers), with one or two threads and any chunking.
#[test]
fn draws_are_identical_across_backends_threads_and_chunks() {
    let run = |opts: SolveOptions| {
        let q = Quickstart::new(7).unwrap();
        for p in [&q.a, &q.b] {
            p.bayesian(
                Bayesian::nuts()
                    .warmup(30)
                    .keep(20)
                    .num_chains(2)
                    .init_jitter(0.5),
            )
            .unwrap();
        }
        q.problem.solve_with(50, &opts.quiet()).unwrap();
        (
            q.a.posterior_samples().unwrap(),
            q.b.posterior_samples().unwrap(),
            q.a.posterior_diagnostics()
                .unwrap()
                .energy()
                .unwrap()
                .to_owned(),
        )
    };
    let base = run(SolveOptions::default().threads(1));
    let interp = run(SolveOptions::default()
        .backend(Backend::Interpreter)
        .threads(2));
    let two = run(SolveOptions::default().threads(2).chunk_sweeps(7));
    let optimised = run(SolveOptions::default().tiering(crux::Tiering::Optimised));
    let baseline = run(SolveOptions::default()
        .tiering(crux::Tiering::Baseline)
        .chunk_sweeps(3));
    assert_eq!(base, interp);
    assert_eq!(base, two);
    assert_eq!(base, optimised);
    assert_eq!(base, baseline);
    // Chains differ from each other.
    assert_ne!(
        base.0.index_axis(ndarray::Axis(0), 0),
        base.0.index_axis(ndarray::Axis(0), 1)
    );
}

/// The 100-d correlated Gaussian (condition number 10³) with NUTS: every
/// dimension's mean and variance within 4 MCSE of the exact values.
#[test]
fn gauss100_nuts_matches_exact_moments() {
    let g = Gauss100::new(1).unwrap();
    let n = GAUSS_DIM;
    let var = g.exact_variances();
    g.theta
        .bayesian(
            Bayesian::nuts()
                .warmup(1000)
                .keep(1000)
                .likelihood_scale(n as f64 / 2.0)
                .num_chains(2),
        )
        .unwrap();
    let sol = g
        .problem
        .solve_with(100_000, &SolveOptions::default().quiet())
        .unwrap();
    assert_eq!(sol.models[0].divergences, Some(0));
    let post = g.theta.posterior().unwrap();
    for (i, v) in var.iter().enumerate() {
        let x = post.entry(0, i).unwrap();
        within_4_mcse(&x, 0.0, &format!("gauss100 mean[{i}]"));
        within_4_mcse(&x.mapv(|v| v * v), *v, &format!("gauss100 var[{i}]"));
    }
}

/// A user kernel (random-walk Metropolis, `samples/src/rwm.rs`) through
/// the same pipeline: exact posterior within 4 MCSE.
#[test]
fn custom_random_walk_kernel_matches_exact_posterior() {
    use std::sync::Arc;
    quick(
        |var| {
            Bayesian::custom(Arc::new(crux_samples::rwm::RandomWalk))
                .step_size(2.4 * var.sqrt())
                .warmup(500)
                .keep(8000)
        },
        1,
        1.0,
        "rwm",
    );
}

/// `eval_samples` pushes expressions through every draw with a compiled
/// kernel: the result equals the interpreter's point evaluation at each
/// draw; auto/chain/point modes and the chain error.
#[test]
fn chain_aware_evaluation() {
    use crux::{Samples, PI};
    let q = Quickstart::new(3).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(Bayesian::nuts().warmup(50).keep(6).num_chains(2))
            .unwrap();
    }
    q.problem
        .solve_with(1000, &SolveOptions::default().quiet())
        .unwrap();
    let pred = &q.a * (PI * &q.x).sin() + &q.b * (PI * &q.x).cos();
    let twice = &q.a * 2.0;
    let out = q
        .problem
        .eval_samples([&pred, &twice, &q.target], Samples::Auto)
        .unwrap();
    let point = q.problem.eval(&pred).unwrap();
    assert_eq!(out[0].shape()[..2], [2, 6]);
    assert_eq!(&out[0].shape()[2..], point.shape());
    // Not sampled: the point value.
    assert_eq!(out[2], q.problem.eval(&q.target).unwrap());
    let (a, b) = (
        q.a.posterior_samples().unwrap(),
        q.b.posterior_samples().unwrap(),
    );
    assert_eq!(out[1], a.mapv(|v| 2.0 * v));
    let (av, bv) = (q.a.values(), q.b.values());
    for k in 0..2 {
        for n in 0..6 {
            q.a.set_values(&[a[[k, n, 0]]]).unwrap();
            q.b.set_values(&[b[[k, n, 0]]]).unwrap();
            let at = q.problem.eval(&pred).unwrap();
            for (x, y) in out[0]
                .index_axis(ndarray::Axis(0), k)
                .index_axis(ndarray::Axis(0), n)
                .iter()
                .zip(at.iter())
            {
                assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
            }
        }
    }
    q.a.set_values(&av).unwrap();
    q.b.set_values(&bv).unwrap();
    // After a solve the models hold chain 0's last draw.
    assert_eq!(av[0], a[[0, 5, 0]]);
    let p = q.problem.eval_samples([&pred], Samples::Point).unwrap();
    assert_eq!(p[0], point);
    let err = q
        .problem
        .eval_samples([&q.target], Samples::Chain)
        .unwrap_err();
    assert!(err.to_string().contains("samples=Chain"), "{err}");
}

/// Leaves of different models may share a name: the pushforward maps them
/// by identity (a regression: it once matched names, so `a − b` came out
/// as `b`).
#[test]
fn eval_samples_keeps_same_named_leaves_apart() {
    use crux::{Domain, Samples, PI};
    let dom = Domain::line(0.0, 1.0, 0.1).unwrap();
    let x = dom.variable("interior").unwrap();
    let a = Param::new("w", [1]);
    let b = Param::new("w", [1]);
    let residual = &a * (PI * &x).sin() + &b * (PI * &x).cos() - 1.0;
    let problem = crux::Crux::new([residual.mse()]).unwrap();
    for p in [&a, &b] {
        p.bayesian(Bayesian::nuts().warmup(20).keep(10)).unwrap();
    }
    problem
        .solve_with(100, &SolveOptions::default().quiet())
        .unwrap();
    let diff = &a - &b;
    let out = problem
        .eval_samples([&diff], Samples::Chain)
        .unwrap()
        .remove(0);
    let (da, db) = (
        a.posterior_samples().unwrap(),
        b.posterior_samples().unwrap(),
    );
    assert_eq!(out, &da - &db);
    assert_ne!(da, db);
}
