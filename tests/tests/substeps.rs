//! Substeps: a sweep made of stages, each with its own constraints and
//! models (the spec's two-stage pattern: substep 0 trains a surrogate,
//! substep 1 samples a coefficient with the surrogate held), against the
//! exact conditional posterior; and their configuration errors.

use crux::{
    noise, Backend, Bayesian, Crux, Domain, Error, Optimizer, Param, SolveOptions, Substep,
};
use crux_tests::stats::within_4_mcse;

/// `w` fits `2x` (constraint 0); `a·w·x` fits `6x + noise` (constraint 1).
struct TwoStage {
    problem: Crux,
    w: Param,
    a: Param,
    x: crux::Expr,
    target: crux::Expr,
}

fn two_stage() -> TwoStage {
    let d = Domain::line(0.0, 1.0, 0.05).unwrap();
    let x = d.variable("interior").unwrap();
    let w = Param::new("w", [1]);
    let a = Param::new("a", [1]);
    let target = 6.0 * &x + noise::gaussian(0.1);
    let surrogate = (&w * &x - 2.0 * &x).mse();
    let physics = (&a * &w * &x - &target).mse();
    let problem = Crux::new([surrogate, physics]).unwrap().with_seed(5);
    TwoStage {
        problem,
        w,
        a,
        x,
        target,
    }
}

fn configure(t: &TwoStage) -> SolveOptions {
    t.w.optimizer(Optimizer::sgd(0.5)).unwrap();
    t.a.bayesian(
        Bayesian::mala()
            .step_size(0.3)
            .adapt(false)
            .warmup(300)
            .keep(4000),
    )
    .unwrap();
    SolveOptions::default().quiet().substeps([
        Substep::new([0]).model(&t.w).steps(3),
        Substep::new([1]).model(&t.a),
    ])
}

/// The surrogate reaches its optimum (it steps only on constraint 0); the
/// coefficient's draws are real and match its exact conditional posterior
/// given the trained surrogate (scale 1, σ = 10 prior).
#[test]
fn two_stage_pattern_trains_then_samples() {
    let t = two_stage();
    let opts = configure(&t);
    let sol = t.problem.solve_with(4300, &opts).unwrap();
    let w = t.w.values()[0];
    assert!((w - 2.0).abs() < 1e-12, "w = {w}");
    let xs: Vec<f64> = t.problem.eval(&t.x).unwrap().iter().copied().collect();
    let ys: Vec<f64> = t.problem.eval(&t.target).unwrap().iter().copied().collect();
    let n = xs.len() as f64;
    // log p(a) = −mean((a w x − y)²) − a²/200.
    let sxx: f64 = xs.iter().map(|x| w * w * x * x).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| w * x * y).sum();
    let prec = 2.0 * sxx / n + 1.0 / 100.0;
    let mean = 2.0 * sxy / n / prec;
    let draws = t.a.posterior().unwrap().entry(0, 0).unwrap();
    assert!(draws.var(0.0) > 0.0, "real draws, not the initial value");
    within_4_mcse(&draws, mean, "a | w: mean");
    within_4_mcse(
        &draws.mapv(|v| (v - mean).powi(2)),
        1.0 / prec,
        "a | w: variance",
    );
    assert!(sol.posterior(&t.w).is_none());
    assert_eq!(sol.models[0].name, "a");
}

/// Repeated steps draw from their own streams: the same bits on the
/// interpreter and Cranelift, and a different chain than one step per
/// sweep.
#[test]
fn substeps_are_deterministic_across_backends() {
    let run = |backend: Backend, steps: usize| {
        let t = two_stage();
        let opts = configure(&t).backend(backend).substeps([
            Substep::new([0]).model(&t.w).steps(3),
            Substep::new([1]).model(&t.a).steps(steps),
        ]);
        t.problem.solve_with(400, &opts).unwrap();
        t.a.posterior_samples().unwrap()
    };
    let a = run(Backend::Cranelift, 2);
    assert_eq!(a, run(Backend::Interpreter, 2));
    assert_ne!(a, run(Backend::Cranelift, 1));
}

/// Adaptation with substeps, a model in no substep, bad indices and zero
/// steps are errors.
#[test]
fn substep_errors() {
    let t = two_stage();
    t.w.optimizer(Optimizer::sgd(0.5)).unwrap();
    t.a.bayesian(Bayesian::nuts().warmup(10).keep(10)).unwrap();
    let solve = |subs: Vec<Substep>| {
        t.problem
            .solve_with(100, &SolveOptions::default().quiet().substeps(subs))
            .unwrap_err()
    };
    let e = solve(vec![Substep::new([0, 1])]);
    assert!(
        matches!(&e, Error::Bayesian { model, .. } if model == "a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("set .adapt(false)"), "{e}");
    t.a.bayesian(
        Bayesian::nuts()
            .adapt(false)
            .step_size(0.1)
            .warmup(10)
            .keep(10),
    )
    .unwrap();
    let e = solve(vec![Substep::new([0])]);
    assert!(e.to_string().contains("appears in no substep"), "{e}");
    let e = solve(vec![Substep::new([0, 5])]);
    assert!(e.to_string().contains("constraint 5 does not exist"), "{e}");
    let e = solve(vec![Substep::new([0, 1]).steps(0)]);
    assert!(e.to_string().contains("0 steps"), "{e}");
    let e = solve(vec![]);
    assert!(e.to_string().contains("no substep"), "{e}");
}

/// The substep chunk function (a repeated step's loop over its streams)
/// assembles with ptxas for sm_90 (skipped without ptxas unless
/// `CRUX_REQUIRE_PTXAS=1`).
#[test]
fn substep_chunk_assembles() {
    use crux_compiler::backend::ptxas;
    if ptxas::find().is_none() {
        assert!(
            std::env::var("CRUX_REQUIRE_PTXAS").map_or(true, |v| v != "1"),
            "CRUX_REQUIRE_PTXAS=1 but no ptxas was found"
        );
        return;
    }
    let t = two_stage();
    let opts = configure(&t);
    let ptx = t.problem.emit_ptx_with(4300, &opts).unwrap();
    let report = ptxas::check(&ptx, "sm_90")
        .unwrap()
        .expect("ptxas was found");
    assert!(!report.kernels.is_empty());
}
