//! Every sample problem's log-density+gradient: the interpreter on the graph
//! before staging and optimisation equals the interpreter on the optimised
//! graph to 1e-12 relative, at several positions.

use crux::LogDensity;
use crux_samples::problems::{Bpinn, Quickstart};

fn check(ld: &LogDensity, thetas: &[Vec<f64>]) {
    for theta in thetas {
        let (lp0, g0) = ld.logp_and_grad_at_stage("differentiated", theta).unwrap();
        let (lp1, g1) = ld.logp_and_grad(theta).unwrap();
        assert!(
            (lp0 - lp1).abs() <= 1e-12 * lp0.abs(),
            "logp {lp0} vs {lp1}"
        );
        // Gradient entries are judged against the gradient's largest entry:
        // tiny entries are sums of cancelling terms whose ulp-level changes
        // are relative to the terms, not to the (small) result.
        let scale = g0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (k, (a, b)) in g0.iter().zip(&g1).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(scale),
                "grad[{k}] {a} vs {b}"
            );
        }
    }
}

fn positions(ld: &LogDensity, n: usize, spread: f64) -> Vec<Vec<f64>> {
    (0..n as u64)
        .map(|s| {
            ld.initial_position()
                .iter()
                .enumerate()
                .map(|(i, v)| v + spread * (2.0 * crux_ir::rng::uniform(s, 99, i as u64) - 1.0))
                .collect()
        })
        .collect()
}

#[test]
fn quickstart_optimised_equals_original() {
    for scale in [1.0, 10100.0] {
        let ld = Quickstart::new(42).unwrap().log_density(scale).unwrap();
        check(&ld, &positions(&ld, 8, 10.0));
    }
}

#[test]
fn bpinn_optimised_equals_original() {
    let ld = Bpinn::new(0).unwrap().log_density().unwrap();
    check(&ld, &positions(&ld, 4, 0.5));
}
