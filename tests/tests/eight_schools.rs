//! Eight schools, non-centred (posteriordb `eight_schools_noncentered`):
//! `μ ~ N(0, 5²)`, `τ ~ half-Cauchy(0, 5)` (a positive parameter),
//! `η_j ~ N(0, 1)`, `y_j ~ N(μ + τ η_j, σ_j²)`, written with a `Group`
//! (one NUTS over all ten entries), `.gaussian(σ)` and log-density prior
//! terms (`crux_samples::problems::EightSchools`, the sample's problem). NUTS at `target_acceptance(0.95)` has no divergence over four
//! seeds, and its means of μ and τ agree within 4 combined MCSE with a
//! long reference run by HMC with a small step that the test computes
//! itself.

use crux::diagnostics::summarize;
use crux::{Bayesian, Param, Prior, SolveOptions};
use crux_samples::problems::EightSchools as Schools;
use ndarray::{Array2, Axis};

/// The `(K, N)` draws of a scalar leaf.
fn draws(s: &Schools, p: &Param) -> Array2<f64> {
    let post = s.group.posterior().unwrap();
    let leaf = post.leaf(p.name()).unwrap();
    leaf.index_axis(Axis(2), 0)
        .to_owned()
        .into_dimensionality()
        .unwrap()
}

/// `(mean, mcse)` of `μ` and `τ` from a run of `cfg`.
fn run(cfg: Bayesian, seed: u64) -> (Schools, [(f64, f64); 2], usize) {
    let s = Schools::new().unwrap();
    s.group.bayesian(cfg.prior(Prior::flat())).unwrap();
    s.problem
        .solve_with(usize::MAX, &SolveOptions::default().quiet().seed(seed))
        .unwrap();
    let stats = [&s.mu, &s.tau].map(|p| {
        let sm = summarize(draws(&s, p).view());
        (sm.mean, sm.mcse_mean)
    });
    let post = s.group.posterior().unwrap();
    let div = post.diagnostics.as_ref().unwrap().is_divergent().unwrap();
    let n = div.iter().filter(|d| **d).count();
    (s, stats, n)
}

#[test]
fn eight_schools_noncentred_matches_a_long_reference_run() {
    // The reference: HMC with a small step (adapted to 0.99 acceptance),
    // 4 × 20 000 draws.
    let (_, reference, _) = run(
        Bayesian::hmc()
            .num_integration_steps(24)
            .target_acceptance(0.99)
            .warmup(1000)
            .keep(20_000)
            .num_chains(4),
        1,
    );
    for seed in [11, 12, 13, 14] {
        let (s, got, divergences) = run(
            Bayesian::nuts()
                .target_acceptance(0.95)
                .warmup(1000)
                .keep(2000)
                .num_chains(4),
            seed,
        );
        eprintln!("seed {seed}: (mean, mcse) of mu, tau {got:?}; reference {reference:?}");
        assert_eq!(divergences, 0, "seed {seed}: divergences");
        for (name, (m, e), (rm, re)) in
            [("mu", got[0], reference[0]), ("tau", got[1], reference[1])]
        {
            let tol = 4.0 * (e * e + re * re).sqrt();
            assert!(
                (m - rm).abs() < tol,
                "seed {seed}: {name} mean {m:.3} ± {e:.3} vs reference {rm:.3} ± {re:.3}"
            );
        }
        assert!(draws(&s, &s.tau).iter().all(|t| *t > 0.0));
    }
    // posteriordb's reference (eight_schools_noncentered): E[μ] ≈ 4.4,
    // E[τ] ≈ 3.6.
    assert!((reference[0].0 - 4.4).abs() < 0.3, "{reference:?}");
    assert!((reference[1].0 - 3.6).abs() < 0.3, "{reference:?}");
}
