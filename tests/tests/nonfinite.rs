//! A log-density that is not a number on half the space: every full-data
//! kernel treats a non-finite log-density as a rejected (divergent) move,
//! so the chain never enters that half, and the draws match the posterior
//! truncated to the finite half within 4 MCSE.

use crux::{Bayesian, Crux, Domain, Param, SolveOptions};
use crux_tests::stats::within_4_mcse;

/// `r = a − 1 + 0·√(−a)`: finite for `a ≤ 0`, NaN for `a > 0`. With
/// likelihood scale ½ and the default prior N(0, 10²), the finite half's
/// posterior is N(μ, s²) truncated to `a ≤ 0`, `s² = 1/1.01`, `μ = s²`.
fn problem() -> (Crux, Param) {
    let d = Domain::line(0.0, 1.0, 1.0).unwrap();
    let x = d.variable("left").unwrap();
    let a = Param::new("a", [1]);
    let r = &a - 1.0 + (&a * -1.0).sqrt() * 0.0 + &x * 0.0;
    (Crux::new([r.mse()]).unwrap(), a)
}

/// Mean and variance of N(μ, s²) truncated to `x ≤ 0`.
fn truncated() -> (f64, f64) {
    let s2: f64 = 1.0 / 1.01;
    let (mu, s) = (s2, s2.sqrt());
    let beta = (0.0 - mu) / s;
    let pdf = (-0.5 * beta * beta).exp() / (2.0 * std::f64::consts::PI).sqrt();
    // Φ(β) by the complementary error function's series (β ≈ −1).
    let cdf = 0.5 * erfc(-beta / std::f64::consts::SQRT_2);
    let lambda = pdf / cdf;
    let mean = mu - s * lambda;
    let var = s2 * (1.0 - beta * lambda - lambda * lambda);
    (mean, var)
}

/// `erfc` to ~1e-12 (Numerical Recipes' Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[test]
fn full_data_kernels_never_enter_the_nan_half() {
    let (mean, var) = truncated();
    for (name, cfg) in [
        ("nuts", Bayesian::nuts().warmup(500).keep(4000)),
        (
            "hmc",
            Bayesian::hmc()
                .step_size(0.3)
                .num_integration_steps(5)
                .warmup(500)
                .keep(4000),
        ),
        (
            "mala",
            Bayesian::mala().step_size(0.5).warmup(500).keep(8000),
        ),
    ] {
        let (p, a) = problem();
        a.set_values(&[-0.5]).unwrap();
        a.bayesian(cfg.num_chains(2).likelihood_scale(0.5)).unwrap();
        p.solve_with(usize::MAX, &SolveOptions::default().quiet())
            .unwrap();
        let post = a.posterior().unwrap();
        let x = post.entry(0, 0).unwrap();
        assert!(
            x.iter().all(|v| v.is_finite() && *v <= 0.0),
            "{name}: a draw left the finite half"
        );
        within_4_mcse(&x, mean, &format!("{name}: truncated mean"));
        within_4_mcse(
            &x.mapv(|v| (v - mean).powi(2)),
            var,
            &format!("{name}: truncated variance"),
        );
        if name != "mala" {
            let div = post.diagnostics.as_ref().unwrap().is_divergent().unwrap();
            assert!(
                div.iter().any(|d| *d),
                "{name}: NaN moves are recorded as divergences"
            );
        }
    }
}

/// `r = a − 1` at one point: with likelihood scale ½ and the default prior
/// N(0, 10²) the log-density's gradient is `−1.01 a + 1`, so SGLD's drift
/// multiplies `a` by `1 − 1.01 ε` each step: at ε = 4 the chain grows by
/// about 3× a step.
fn linear(cfg: Bayesian) -> (Crux, Param) {
    let d = Domain::line(0.0, 1.0, 1.0).unwrap();
    let x = d.variable("left").unwrap();
    let a = Param::new("a", [1]);
    let r = &a - 1.0 + &x * 0.0;
    a.bayesian(cfg.num_chains(2).likelihood_scale(0.5)).unwrap();
    (Crux::new([r.mse()]).unwrap(), a)
}

/// Keeps the tracker's metrics.
#[derive(Debug, Clone, Default)]
struct Kept(std::sync::Arc<std::sync::Mutex<Vec<crux::Metrics>>>);

impl crux::Tracker for Kept {
    fn record(&mut self, m: &crux::Metrics) -> crux::Result<()> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

/// SGLD past its stability limit: the draws beyond ±1e100 are flagged
/// `is_divergent` (counted in the report and the tracker) while they are
/// still finite; a longer run, whose chains overflow, stops with
/// `Error::Diverged` instead of returning infinities.
#[test]
fn sgld_past_its_stability_limit_is_flagged_then_stopped() {
    // 3.04^300 ≈ 1e145: finite, far past the bound.
    let (p, a) = linear(Bayesian::sgld().step_size(4.0).warmup(0).keep(300));
    let kept = Kept::default();
    let sol = p
        .solve_with(
            usize::MAX,
            &SolveOptions::default().quiet().tracker(kept.clone()),
        )
        .unwrap();
    let post = a.posterior().unwrap();
    let x = post.entry(0, 0).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
    let div = post.diagnostics.as_ref().unwrap().is_divergent().unwrap();
    for ((c, i), d) in div.indexed_iter() {
        let v = x[[c, i]];
        assert_eq!(
            *d,
            v.abs() > crux_compiler::sampler::kernels::SG_POSITION_BOUND,
            "chain {c} draw {i}: {v}"
        );
    }
    let n = div.iter().filter(|d| **d).count();
    assert!(n > 100 && n < 300, "{n} flagged draws");
    assert_eq!(sol.models[0].divergences, Some(n));
    let last = kept.0.lock().unwrap().last().cloned().unwrap();
    let tracked = last
        .values
        .iter()
        .find(|(k, _)| k == "posterior/a/n_is_divergent")
        .map(|v| v.1);
    assert_eq!(tracked, Some(n as f64));

    // 3.04^1000 overflows: the run stops at a chunk end.
    for cfg in [
        Bayesian::sgld().step_size(4.0).warmup(0).keep(5000),
        Bayesian::sghmc().step_size(3.0).warmup(0).keep(5000),
    ] {
        let (p, a) = linear(cfg);
        let err = p
            .solve_with(usize::MAX, &SolveOptions::default().quiet())
            .unwrap_err();
        match &err {
            crux::Error::Diverged { model, sweeps, .. } => {
                assert_eq!(model, "a");
                assert!(*sweeps < 5000, "stopped at the chunk end after {sweeps}");
            }
            other => panic!("expected Error::Diverged, got {other:?}"),
        }
        assert!(err.to_string().contains("lower the step size"), "{err}");
        assert!(a.posterior().is_none(), "no posterior from a diverged run");
    }
}
