//! Mixed solves: optimised models (point estimates, an optimiser step per
//! sweep fused into the chunk function) next to sampled ones, and plain
//! training — against exact answers on the quick example, which is
//! linear-Gaussian.

use crux::{Backend, Bayesian, Error, Optimizer, SolveOptions, PI};
use crux_samples::problems::Quickstart;
use crux_tests::stats::within_4_mcse;

/// `sin(πx)`, `cos(πx)` and the observations of the quick example.
fn features(q: &Quickstart) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let v = |e: crux::Expr| q.problem.eval(&e).unwrap().iter().copied().collect();
    (
        v((PI * &q.x).sin()),
        v((PI * &q.x).cos()),
        v(q.target.clone()),
    )
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a` optimised with Adam, `b` sampled with NUTS in the same sweep: `a`
/// reaches its conditional mode (the loss is separable up to rounding:
/// `Σ sin(πx) cos(πx) ≈ 0` on the symmetric grid) to 1e-6, `b`'s draws
/// match its exact conditional posterior given `a` within 4 MCSE.
#[test]
fn optimised_and_sampled_models_in_one_sweep() {
    let q = Quickstart::new(42).unwrap();
    let (s, c, t) = features(&q);
    let n = s.len() as f64;
    q.a.optimizer(Optimizer::adam(0.05)).unwrap();
    q.b.bayesian(Bayesian::nuts().warmup(1000).keep(3000))
        .unwrap();
    let sol = q
        .problem
        .solve_with(4000, &SolveOptions::default().quiet())
        .unwrap();
    let a = q.a.values()[0];
    // The conditional mode of the loss in a at the last b (the cross term
    // is ~1e-16 of the others).
    let b_last = q.b.values()[0];
    let mode = (dot(&t, &s) - b_last * dot(&s, &c)) / dot(&s, &s);
    assert!((a - mode).abs() < 1e-6, "a = {a}, conditional mode {mode}");
    assert!(
        q.a.posterior().is_none(),
        "an optimised model has no posterior"
    );
    assert!(q.a.posterior_samples().is_none());
    assert!(sol.posterior(&q.a).is_none());
    assert_eq!(sol.posteriors.len(), 1);
    // b | a: log p = −mean((a s + b c − t)²) − b²/200 (scale 1, σ = 10).
    let r: Vec<f64> = t.iter().zip(&s).map(|(ti, si)| ti - a * si).collect();
    let prec = 2.0 * dot(&c, &c) / n + 1.0 / 100.0;
    let mean = 2.0 * dot(&c, &r) / n / prec;
    let draws = q.b.posterior().unwrap().entry(0, 0).unwrap();
    within_4_mcse(&draws, mean, "b | a: mean");
    within_4_mcse(
        &draws.mapv(|x| (x - mean).powi(2)),
        1.0 / prec,
        "b | a: variance",
    );
    // The training curve was recorded and went down.
    let h = &sol.loss_history;
    assert!(h.len() > 2, "{h:?}");
    assert!(h.last().unwrap().1 < h[0].1, "{h:?}");
    assert_eq!(h.last().unwrap().0, sol.sweeps);
}

/// Only optimised models: plain training, the same bits on the
/// interpreter and Cranelift; SGD on this quadratic reaches the least
/// squares solution.
#[test]
fn training_only_reaches_least_squares() {
    let run = |backend: Backend| {
        let q = Quickstart::new(42).unwrap();
        for p in [&q.a, &q.b] {
            p.optimizer(Optimizer::sgd(0.5)).unwrap();
        }
        let sol = q
            .problem
            .solve_with(300, &SolveOptions::default().quiet().backend(backend))
            .unwrap();
        assert_eq!(sol.sweeps, 300, "an optimiser runs every epoch");
        assert!(sol.posteriors.is_empty());
        (q, sol)
    };
    let (q, sol) = run(Backend::Cranelift);
    let (qi, _) = run(Backend::Interpreter);
    let (a, b) = (q.a.values()[0], q.b.values()[0]);
    assert_eq!(
        (a.to_bits(), b.to_bits()),
        (qi.a.values()[0].to_bits(), qi.b.values()[0].to_bits()),
        "interpreter and Cranelift train to the same bits"
    );
    let (s, c, t) = features(&q);
    // Normal equations of min Σ (a s + b c − t)².
    let (ss, cc, sc) = (dot(&s, &s), dot(&c, &c), dot(&s, &c));
    let (ts, tc) = (dot(&t, &s), dot(&t, &c));
    let det = ss * cc - sc * sc;
    let (a_ls, b_ls) = ((ts * cc - tc * sc) / det, (tc * ss - ts * sc) / det);
    assert!(
        (a - a_ls).abs() < 1e-9 && (b - b_ls).abs() < 1e-9,
        "{a} {b} vs {a_ls} {b_ls}"
    );
    // Block-coordinate SGD on a convex quadratic never raises the loss
    // (up to rounding once converged).
    assert!(
        sol.loss_history
            .windows(2)
            .all(|w| w[1].1 <= w[0].1 * (1.0 + 1e-12)),
        "{:?}",
        sol.loss_history
    );
}

/// Configuration errors of optimised models name the model and the fix.
#[test]
fn optimiser_configuration_errors() {
    let q = Quickstart::new(42).unwrap();
    let err = q.a.optimizer(Optimizer::adam(0.0)).unwrap_err();
    assert!(
        matches!(&err, Error::Optimizer { model, .. } if model == "a"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("learning rate must be finite and > 0"),
        "{err}"
    );
    let err =
        q.a.optimizer(Optimizer::adam(1e-3).betas(1.0, 0.999))
            .unwrap_err();
    assert!(
        err.to_string().contains("adam b1 must be in [0, 1)"),
        "{err}"
    );
    let err =
        q.a.optimizer(Optimizer::sgd(1e-3).clip_by_global_norm(-1.0))
            .unwrap_err();
    assert!(err.to_string().contains("clip_by_global_norm"), "{err}");

    // The last of .optimizer(..) / .bayesian(..) on a model wins.
    q.a.optimizer(Optimizer::adam(1e-3)).unwrap();
    q.a.bayesian(Bayesian::nuts().warmup(20).keep(10)).unwrap();
    let sol = q
        .problem
        .solve_with(30, &SolveOptions::default().quiet())
        .unwrap();
    assert!(sol.posterior(&q.a).is_some(), "a is sampled");
    q.a.optimizer(Optimizer::adam(1e-3)).unwrap();
    let sol = q
        .problem
        .solve_with(30, &SolveOptions::default().quiet())
        .unwrap();
    assert!(sol.posterior(&q.a).is_none(), "a is optimised");
    assert!(q.a.posterior().is_none(), "its old posterior is cleared");

    // An optimiser runs every epoch: the epochs are bounded.
    let q = Quickstart::new(42).unwrap();
    q.a.optimizer(Optimizer::adam(1e-3)).unwrap();
    let err = q
        .problem
        .solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap_err();
    assert!(err.to_string().contains("solve at most"), "{err}");
}

/// The mixed chunk function computes the same bits on the interpreter and
/// on both Cranelift tiers (and whatever the chunking and thread count).
#[test]
fn mixed_draws_are_backend_independent() {
    let run = |opts: SolveOptions| {
        let q = Quickstart::new(42).unwrap();
        q.a.optimizer(Optimizer::adam(0.05).clip_by_global_norm(1.0))
            .unwrap();
        q.b.bayesian(Bayesian::nuts().warmup(50).keep(40).num_chains(2))
            .unwrap();
        q.problem.solve_with(120, &opts.quiet()).unwrap();
        (q.a.values(), q.b.posterior_samples().unwrap())
    };
    let base = run(SolveOptions::default().backend(Backend::Interpreter));
    for opts in [
        SolveOptions::default().tiering(crux::Tiering::Baseline),
        SolveOptions::default()
            .tiering(crux::Tiering::Optimised)
            .chunk_sweeps(7)
            .threads(1),
    ] {
        let got = run(opts);
        assert_eq!(
            got.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            base.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(got
            .1
            .iter()
            .zip(base.1.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

/// The BPINN trained with Adam (a training solve), then sampled with SGLD
/// from the trained weights at likelihood scale 100: the 90% band of `u`
/// contains the exact solution `sin(πx)` at every one of the 101 points.
#[test]
fn pretrained_bpinn_band_contains_the_solution() {
    use crux_samples::problems::{predictive_band, Bpinn};
    let b = Bpinn::new(0).unwrap();
    b.net.optimizer(Optimizer::adam(3e-3)).unwrap();
    let train = b
        .problem
        .solve_with(3000, &SolveOptions::default().quiet())
        .unwrap();
    let (first, last) = (
        train.loss_history[0].1,
        train.loss_history.last().unwrap().1,
    );
    assert!(last < 1e-3 * first, "Adam trains: {first} -> {last}");
    b.net
        .bayesian(
            Bayesian::sgld()
                .step_size(1e-5)
                .warmup(2000)
                .keep(1000)
                .likelihood_scale(100.0),
        )
        .unwrap();
    b.problem
        .solve_with(3000, &SolveOptions::default().quiet())
        .unwrap();
    let u = b
        .problem
        .eval_samples([&b.u], crux::Samples::Chain)
        .unwrap()
        .remove(0);
    let xs: Vec<f64> = b.problem.eval(&b.x).unwrap().iter().copied().collect();
    let band = predictive_band(&u);
    assert_eq!(band.len(), 101);
    for (x, (_, lo, hi)) in xs.iter().zip(&band) {
        let exact = (PI * x).sin();
        assert!(
            *lo <= exact && exact <= *hi,
            "x = {x}: {exact} outside [{lo}, {hi}]"
        );
    }
}

/// The `mixed` sample's problem: encoder trained with Adam, head sampled
/// with SGLD in one solve; the loss falls by orders of magnitude, only the
/// head has a posterior, and its predictive mean is near the solution.
#[test]
fn encoder_trained_head_sampled_pinn() {
    use crux_samples::problems::{predictive_band, MixedPinn};
    let m = MixedPinn::new(0).unwrap();
    m.encoder.optimizer(Optimizer::adam(3e-3)).unwrap();
    m.head
        .bayesian(
            Bayesian::sgld()
                .step_size(1e-6)
                .warmup(2000)
                .keep(500)
                .likelihood_scale(100.0),
        )
        .unwrap();
    let sol = m
        .problem
        .solve_with(2500, &SolveOptions::default().quiet())
        .unwrap();
    let h = &sol.loss_history;
    assert!(h.last().unwrap().1 < 1e-2 * h[0].1, "{h:?}");
    assert!(m.encoder.posterior().is_none());
    assert_eq!(sol.posteriors.len(), 1);
    let u = m
        .problem
        .eval_samples([&m.u], crux::Samples::Chain)
        .unwrap()
        .remove(0);
    assert_eq!(u.shape()[..2], [1, 500]);
    let band = predictive_band(&u);
    let mid = band[50].0;
    assert!((mid - 1.0).abs() < 0.2, "u(0.5) ≈ 1, got {mid}");
}
