//! Constrained parameters and log-density terms: 1-d targets on a
//! half-line or an interval, written as `Constraint::log_density` on the
//! constrained value (flat prior), sampled with NUTS on the unconstrained
//! value; the draws (reported on the constrained scale) match the exact
//! mean and variance within 4 MCSE.

use crux::{Bayesian, Constraint, Crux, Param, Prior, SolveOptions};
use crux_tests::stats::within_4_mcse;

/// Samples `x` under the log-density `logp(x)` and checks the mean and
/// variance.
fn check(what: &str, x: Param, logp: crux::Expr, mean: f64, var: f64) {
    let p = Crux::new([Constraint::log_density(logp)]).unwrap();
    x.bayesian(
        Bayesian::nuts()
            .warmup(500)
            .keep(3000)
            .num_chains(4)
            .prior(Prior::flat()),
    )
    .unwrap();
    p.solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let post = x.posterior().unwrap();
    let d = post.entry(0, 0).unwrap();
    let support = x.transform();
    assert!(
        d.iter().all(|v| support.contains(*v)),
        "{what}: a draw left the support"
    );
    within_4_mcse(&d, mean, &format!("{what}: mean"));
    within_4_mcse(
        &d.mapv(|v| (v - mean).powi(2)),
        var,
        &format!("{what}: variance"),
    );
    // The unconstrained densities have one steep (doubly exponential)
    // tail: a handful of divergences there is expected.
    let div = post.diagnostics.as_ref().unwrap().is_divergent().unwrap();
    let n = div.iter().filter(|d| **d).count();
    assert!(n * 1000 < div.len(), "{what}: {n} divergences");
}

/// Gamma(3, rate 2) on `x > 0`: mean 1.5, variance 0.75.
#[test]
fn gamma_on_a_positive_parameter() {
    let x = Param::new("x", [1]).positive();
    assert_eq!(x.values(), vec![1.0], "a positive parameter starts at 1");
    let logp = x.expr().ln() * 2.0 - &x * 2.0;
    check("gamma", x, logp.sum(), 1.5, 0.75);
}

/// Beta(2, 5) on `(0, 1)`: mean 2/7, variance 10/392.
#[test]
fn beta_on_a_bounded_parameter() {
    let x = Param::new("x", [1]).bounded(0.0, 1.0).unwrap();
    let logp = x.expr().ln() + (1.0 - x.expr()).ln() * 4.0;
    check("beta", x, logp.sum(), 2.0 / 7.0, 10.0 / 392.0);
}

/// `1 + Exp(2)` on `x > 1` and `2 − Exp(3)` on `x < 2`.
#[test]
fn exponentials_on_one_sided_parameters() {
    let x = Param::new("x", [1]).lower(1.0).unwrap();
    let logp = (x.expr() - 1.0) * -2.0;
    check("lower", x, logp.sum(), 1.5, 0.25);
    let y = Param::new("y", [1]).upper(2.0).unwrap();
    let logp = (y.expr() - 2.0) * 3.0;
    check("upper", y, logp.sum(), 2.0 - 1.0 / 3.0, 1.0 / 9.0);
}
