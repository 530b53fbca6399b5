//! Minibatch stochastic-gradient kernels (`Bayesian::sgld().batch_size(n)`):
//! the weighted gradient is an unbiased estimate of the full one, minibatch
//! SGLD and SGHMC find the exact posterior mean of the quick example, the
//! draws are the same on every backend and chunking, the full batch is
//! untouched, and invalid configurations are refused. Fixed seeds.

use crux::{Backend, Bayesian, Error, Param, Prior, Solution, SolveOptions};
use crux_samples::problems::Quickstart;
use crux_tests::stats::within_4_mcse;
use ndarray::Array2;

fn quick() -> Quickstart {
    Quickstart::new(42).unwrap()
}

/// Mean and standard error of each column of `rows`.
fn mean_se(rows: &[Vec<f64>]) -> Vec<(f64, f64)> {
    let n = rows.len() as f64;
    (0..rows[0].len())
        .map(|j| {
            let m = rows.iter().map(|r| r[j]).sum::<f64>() / n;
            let v = rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1.0);
            (m, (v / n).sqrt())
        })
        .collect()
}

// ------------------------------------------------------------ the estimator

/// The quick example with n = 10 of its 101 points: the weights of 2000
/// steps average the weighted gradient at a fixed θ to the full gradient
/// (within 4 standard errors), the weights are a runtime input that
/// survives staging and the optimiser, and with all weights 1 the value is
/// the full-batch log-density's.
#[test]
fn minibatch_gradient_is_unbiased() {
    let q = quick();
    let full = q.log_density(1.0).unwrap();
    let ld = q
        .problem
        .log_density()
        .sample(&q.a, Prior::default())
        .sample(&q.b, Prior::default())
        .batch_size(10)
        .build()
        .unwrap();
    let mb = ld.minibatch().expect("built with a batch size").clone();
    assert_eq!(mb.batch_size, 10);
    assert_eq!(mb.inputs.len(), 1);
    assert_eq!(mb.inputs[0].points, 101);
    let runtime = ld.graph().data().iter().filter(|d| d.runtime).count();
    assert_eq!(runtime, 1, "the weights are not folded away");

    let theta = [1.0, -1.0];
    let (lp0, g0) = full.logp_and_grad(&theta).unwrap();
    let (lp1, g1) = ld.logp_and_grad(&theta).unwrap();
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + y.abs());
    assert!(close(lp1, lp0), "{lp1} vs {lp0}");
    assert!(
        g1.iter().zip(&g0).all(|(x, y)| close(*x, *y)),
        "{g1:?} vs {g0:?}"
    );

    let steps = 2000;
    let mut grads = Vec::new();
    let mut sizes = 0usize;
    for s in 0..steps {
        let w = mb.weights(42, 0, s, 0);
        sizes += w[0].iter().filter(|&&x| x > 0.0).count();
        let (_, g) = ld.logp_and_grad_weighted(&theta, &w).unwrap();
        grads.push(g);
    }
    let avg = sizes as f64 / steps as f64;
    assert!((avg - 10.0).abs() < 0.3, "{avg} points per batch");
    for (j, (m, se)) in mean_se(&grads).into_iter().enumerate() {
        assert!(se > 0.0, "the estimate varies");
        assert!(
            (m - g0[j]).abs() <= 4.0 * se,
            "gradient[{j}]: mean {m} vs full {} (se {se}, {:.1} se)",
            g0[j],
            (m - g0[j]) / se
        );
    }
}

/// Two constraints on the same points (`.mse()` and `.mae()`) get two
/// weight inputs, drawn apart, and the estimate is unbiased for both
/// reductions; a constraint with at most n points keeps the full batch.
#[test]
fn each_constraint_has_its_own_weights() {
    let q = quick();
    let r = &q.a * (crux::PI * &q.x).sin() + &q.b * (crux::PI * &q.x).cos() - &q.target;
    let small = q.a.expr() - 3.0;
    let problem = crux::Crux::new([r.mse(), r.mae(), small.mse()]).unwrap();
    let build = |b: Option<usize>| {
        let mut ld = problem
            .log_density()
            .sample(&q.a, Prior::default())
            .sample(&q.b, Prior::default());
        if let Some(n) = b {
            ld = ld.batch_size(n);
        }
        ld.build().unwrap()
    };
    let full = build(None);
    let ld = build(Some(10));
    let mb = ld.minibatch().unwrap().clone();
    let names: Vec<&str> = mb.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["minibatch.weights.0", "minibatch.weights.1"]);
    let runtime: Vec<&str> = ld
        .graph()
        .data()
        .iter()
        .filter(|d| d.runtime)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(runtime.len(), 2, "not merged: {runtime:?}");
    let w = mb.weights(1, 0, 0, 0);
    assert_ne!(w[0], w[1], "each constraint draws its own batch");

    let theta = [2.0, -2.0];
    let (_, g0) = full.logp_and_grad(&theta).unwrap();
    let grads: Vec<Vec<f64>> = (0..2000)
        .map(|s| {
            ld.logp_and_grad_weighted(&theta, &mb.weights(1, 0, s, 0))
                .unwrap()
                .1
        })
        .collect();
    for (j, (m, se)) in mean_se(&grads).into_iter().enumerate() {
        assert!(
            (m - g0[j]).abs() <= 4.0 * se,
            "gradient[{j}]: mean {m} vs full {} (se {se})",
            g0[j]
        );
    }
    // Wrong weights are refused.
    let err = ld.logp_and_grad_weighted(&theta, &w[..1]).unwrap_err();
    assert!(
        err.to_string().contains("2 subsampled constraints"),
        "{err}"
    );
    let err = full.logp_and_grad_weighted(&theta, &w).unwrap_err();
    assert!(err.to_string().contains(".batch_size(n)"), "{err}");
    let err = problem
        .log_density()
        .sample(&q.a, Prior::default())
        .batch_size(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("batch_size must be >= 1"), "{err}");
}

// ------------------------------------------------------------ the samplers

fn chain(p: &Param) -> Array2<f64> {
    p.posterior().unwrap().entry(0, 0).unwrap()
}

/// Samples both coefficients of the quick example with `config(step)` and
/// checks their posterior means against the exact ones, at likelihood
/// scale 1 and at 0.05 (with the step sizes `steps`), where the prior
/// pulls the mean a sixth of the way to 0: a likelihood not scaled by
/// `1/q` (weights 1 for the included points) misses it by more than 4
/// MCSE.
fn posterior_mean(config: impl Fn(f64) -> Bayesian, steps: [f64; 2], what: &str) {
    for (scale, step_size) in [1.0, 0.05].into_iter().zip(steps) {
        let q = quick();
        let (mu, _) = q.exact_posterior(scale).unwrap();
        for p in [&q.a, &q.b] {
            p.bayesian(config(step_size).likelihood_scale(scale))
                .unwrap();
        }
        q.problem
            .solve_with(100_000, &SolveOptions::default().quiet())
            .unwrap();
        let what = format!("{what}, scale {scale}");
        within_4_mcse(&chain(&q.a), mu[0], &format!("{what}: mean a"));
        within_4_mcse(&chain(&q.b), mu[1], &format!("{what}: mean b"));
    }
}

/// Minibatch SGLD (20 of 101 points) keeps the exact posterior mean: the
/// gradient estimate is unbiased and the model linear-Gaussian (the
/// variance, inflated by the gradient noise, is not checked).
#[test]
fn minibatch_sgld_matches_exact_posterior_mean() {
    posterior_mean(
        |eps| {
            Bayesian::sgld()
                .step_size(eps)
                .batch_size(20)
                .warmup(500)
                .keep(80_000)
                .num_chains(2)
                .init_jitter(0.5)
        },
        [0.05, 2.0],
        "sgld, batch 20",
    );
}

/// Likewise minibatch SGHMC (one batch per transition).
#[test]
fn minibatch_sghmc_matches_exact_posterior_mean() {
    posterior_mean(
        |eps| {
            Bayesian::sghmc()
                .step_size(eps)
                .num_integration_steps(5)
                .alpha(1.0)
                .batch_size(20)
                .warmup(200)
                .keep(40_000)
                .num_chains(2)
                .init_jitter(0.5)
        },
        [0.05, 0.5],
        "sghmc, batch 20",
    );
}

// ------------------------------------------------------------ determinism

fn draws(config: &Bayesian, opts: SolveOptions) -> (Array2<f64>, Array2<f64>) {
    let q = Quickstart::new(7).unwrap();
    for p in [&q.a, &q.b] {
        p.bayesian(config.clone()).unwrap();
    }
    let sol: Solution = q.problem.solve_with(60, &opts.quiet()).unwrap();
    assert_eq!(sol.num_chains, 2);
    (chain(&q.a), chain(&q.b))
}

/// Same seed ⇒ the same minibatch draws on the interpreter and Cranelift,
/// with any threads and chunking; a batch that holds every point is the
/// full batch bit for bit; a real batch changes the draws.
#[test]
fn minibatch_draws_are_identical_across_backends_and_chunks() {
    let base = |b: Bayesian| {
        b.step_size(0.05)
            .warmup(20)
            .keep(40)
            .num_chains(2)
            .init_jitter(0.5)
    };
    for kernel in [Bayesian::sgld(), Bayesian::sghmc().num_integration_steps(3)] {
        let config = base(kernel.clone()).batch_size(20);
        let cl = draws(&config, SolveOptions::default().threads(1));
        let interp = draws(
            &config,
            SolveOptions::default()
                .backend(Backend::Interpreter)
                .threads(2),
        );
        let chunked = draws(&config, SolveOptions::default().threads(2).chunk_sweeps(7));
        assert_eq!(cl, interp);
        assert_eq!(cl, chunked);
        let full = draws(&base(kernel.clone()), SolveOptions::default());
        let whole = draws(&base(kernel).batch_size(101), SolveOptions::default());
        assert_eq!(full, whole, "a batch of every point is the full batch");
        assert_ne!(cl, full, "a batch of 20 of 101 points changes the draws");
        assert!(cl.0.iter().chain(cl.1.iter()).all(|x| x.is_finite()));
    }
}

/// A Gibbs sweep of a full-batch NUTS model and a minibatch SGLD model
/// (only the SGLD model's conditional has weights) runs, with the same
/// draws on the interpreter and Cranelift.
#[test]
fn minibatch_and_full_batch_models_share_a_sweep() {
    let run = |backend: Backend| {
        let q = Quickstart::new(7).unwrap();
        q.a.bayesian(Bayesian::nuts().warmup(20).keep(30)).unwrap();
        q.b.bayesian(
            Bayesian::sgld()
                .step_size(0.05)
                .batch_size(15)
                .warmup(20)
                .keep(30),
        )
        .unwrap();
        q.problem
            .solve_with(50, &SolveOptions::default().backend(backend).quiet())
            .unwrap();
        (chain(&q.a), chain(&q.b))
    };
    let cl = run(Backend::Cranelift);
    assert_eq!(cl, run(Backend::Interpreter));
    assert!(cl.0.iter().chain(cl.1.iter()).all(|x| x.is_finite()));
}

// ------------------------------------------------------------ configuration

/// Checks that attaching `config` to `a` fails with `Error::Bayesian` for
/// model `a` and a message containing every one of `needles`.
fn refused_on_a(config: Bayesian, needles: &[&str]) {
    let q = quick();
    let err =
        q.a.bayesian(config)
            .map(|_| ())
            .expect_err("the configuration should be refused when attached");
    assert!(
        matches!(&err, Error::Bayesian { model, .. } if model == "a"),
        "expected Error::Bayesian for model `a`, got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("model `a`"), "message names the model: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message should contain `{n}`: {msg}");
    }
    assert!(
        matches!(
            q.problem.solve_with(10, &SolveOptions::default().quiet()),
            Err(Error::NoBayesianModel)
        ),
        "a refused configuration is not stored"
    );
}

#[test]
fn batch_size_zero_is_refused() {
    for kernel in [Bayesian::sgld(), Bayesian::sghmc()] {
        refused_on_a(
            kernel.step_size(0.01).batch_size(0),
            &["batch_size must be >= 1, got 0", "leave it unset"],
        );
    }
}

#[test]
fn batch_size_needs_a_stochastic_gradient_kernel() {
    refused_on_a(
        Bayesian::nuts().batch_size(10),
        &["kernel `nuts` takes no batch_size", "sgld and sghmc"],
    );
    refused_on_a(
        Bayesian::hmc().batch_size(10),
        &["kernel `hmc` takes no batch_size"],
    );
    refused_on_a(
        Bayesian::mala().step_size(0.1).batch_size(10),
        &["kernel `mala` takes no batch_size"],
    );
}
