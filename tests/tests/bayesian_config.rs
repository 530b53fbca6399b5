//! Validation of `.bayesian(..)` configurations: every invalid option is
//! refused with an error that names the model and the fix — when it is
//! attached if it can be known then, otherwise when the solve starts — and
//! the schedule options (warmup, keep, thin, epochs) shape the posterior as
//! documented. Each test builds a fresh `Quickstart`.

use crux::{Bayesian, Error, InverseMass, Param, Solution, SolveOptions};
use crux_samples::problems::Quickstart;

fn quick() -> Quickstart {
    Quickstart::new(7).unwrap()
}

fn solve(q: &Quickstart, epochs: usize) -> crux::Result<Solution> {
    q.problem
        .solve_with(epochs, &SolveOptions::default().quiet())
}

/// Checks that `err` is `Error::Bayesian` for model `a` and that its
/// Display text names the model and contains every one of `needles`.
fn names_a(err: &Error, needles: &[&str]) -> String {
    assert!(
        matches!(err, Error::Bayesian { model, .. } if model == "a"),
        "expected Error::Bayesian for model `a`, got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("model `a`"), "message names the model: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message should contain `{n}`: {msg}");
    }
    msg
}

/// Attaching `config` to `a` must fail at once (everything it checks is
/// known without the problem); nothing is stored, so a solve then finds no
/// sampled model. `epochs` is the solve that would have run.
fn refused_on_a(config: Bayesian, epochs: usize, needles: &[&str]) -> String {
    let q = quick();
    let err =
        q.a.bayesian(config)
            .map(|_| ())
            .expect_err("the configuration should be refused when attached");
    let msg = names_a(&err, needles);
    assert!(
        matches!(solve(&q, epochs), Err(Error::NoBayesianModel)),
        "a refused configuration is not stored"
    );
    assert!(
        q.a.posterior().is_none(),
        "no posterior after a refused solve"
    );
    msg
}

/// `config` needs the problem to be checked (the model's size, the
/// epochs): attaching it succeeds, the solve refuses it.
fn refused_at_solve_on_a(config: Bayesian, epochs: usize, needles: &[&str]) -> String {
    let q = quick();
    q.a.bayesian(config).unwrap();
    let err = solve(&q, epochs).expect_err("the configuration should be refused");
    let msg = names_a(&err, needles);
    assert!(
        q.a.posterior().is_none(),
        "no posterior after a refused solve"
    );
    msg
}

fn small(b: Bayesian) -> Bayesian {
    b.warmup(50).keep(50)
}

// ---------------------------------------------------------------- step size

#[test]
fn mala_needs_step_size() {
    refused_on_a(
        small(Bayesian::mala()),
        100,
        &["`mala` requires a step_size", ".step_size(..)"],
    );
}

#[test]
fn sgld_needs_step_size() {
    refused_on_a(
        small(Bayesian::sgld()),
        100,
        &["`sgld` requires a step_size", ".step_size(..)"],
    );
}

#[test]
fn sghmc_needs_step_size() {
    refused_on_a(
        small(Bayesian::sghmc()),
        100,
        &["`sghmc` requires a step_size", ".step_size(..)"],
    );
}

#[test]
fn nuts_without_adapt_needs_step_size() {
    refused_on_a(
        small(Bayesian::nuts()).adapt(false),
        100,
        &[
            "`nuts` requires a step_size",
            ".step_size(..)",
            "adapt=false",
        ],
    );
}

#[test]
fn nuts_without_warmup_needs_step_size() {
    refused_on_a(
        Bayesian::nuts().warmup(0).keep(50),
        100,
        &["`nuts` requires a step_size", ".step_size(..)", "warmup=0"],
    );
}

#[test]
fn nuts_with_adapt_and_warmup_chooses_step_size() {
    let q = quick();
    q.a.bayesian(Bayesian::nuts().warmup(100).keep(60)).unwrap();
    let sol = solve(&q, 160).unwrap();
    assert_eq!(sol.num_chains, 1);
    assert_eq!(sol.models.len(), 1);
    assert_eq!(sol.models[0].num_draws, 60);
    let samples = q.a.posterior_samples().unwrap();
    assert_eq!(samples.shape(), &[1, 60, 1]);
    let post = q.a.posterior().unwrap();
    assert_eq!(post.step_size.len(), 1);
    let eps = post.step_size[0];
    assert!(eps.is_finite() && eps > 0.0, "adapted step size {eps}");
    assert_ne!(eps, 1.0, "adaptation should move the step size off 1.0");
}

// ----------------------------------------------------- schedule and scalars

#[test]
fn keep_zero_is_refused() {
    refused_on_a(
        Bayesian::nuts().warmup(10).keep(0),
        100,
        &["keep >= 1", "keep=0"],
    );
}

#[test]
fn thin_zero_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).thin(0),
        100,
        &["thin >= 1", "thin=0"],
    );
}

// A negative warmup, keep, thin or chain count cannot be written: the
// counts are `usize`.

#[test]
fn zero_chains_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).num_chains(0),
        100,
        &["num_chains must be >= 1", "got 0"],
    );
}

#[test]
fn zero_likelihood_scale_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).likelihood_scale(0.0),
        100,
        &["likelihood_scale must be positive", "got 0"],
    );
}

#[test]
fn nan_likelihood_scale_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).likelihood_scale(f64::NAN),
        100,
        &["likelihood_scale must be positive", "NaN"],
    );
}

#[test]
fn negative_init_jitter_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).init_jitter(-1.0),
        100,
        &["init_jitter must be finite and >= 0", "got -1"],
    );
}

#[test]
fn negative_step_size_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).step_size(-1.0),
        100,
        &["step_size must be finite and > 0", "got -1"],
    );
}

#[test]
fn nan_step_size_is_refused() {
    refused_on_a(
        small(Bayesian::mala()).step_size(f64::NAN),
        100,
        &["step_size must be finite and > 0", "NaN"],
    );
}

// ------------------------------------------------------ inverse mass matrix

#[test]
fn per_entry_inverse_mass_of_wrong_length_is_refused() {
    refused_at_solve_on_a(
        small(Bayesian::nuts()).inverse_mass_matrix(InverseMass::PerEntry(vec![1.0, 2.0])),
        100,
        &["inverse_mass_matrix has 2 entries, the model has 1"],
    );
}

#[test]
fn zero_scalar_inverse_mass_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).inverse_mass_matrix(InverseMass::Scalar(0.0)),
        100,
        &[
            "inverse_mass_matrix entries must be finite and > 0",
            "got 0",
        ],
    );
}

#[test]
fn inverse_mass_on_mala_is_refused() {
    refused_on_a(
        small(Bayesian::mala())
            .step_size(1e-2)
            .inverse_mass_matrix(InverseMass::Scalar(1.0)),
        100,
        &["kernel `mala` takes no inverse_mass_matrix"],
    );
}

// ------------------------------------------------------ kernel-only options

#[test]
fn integration_steps_on_nuts_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).num_integration_steps(5),
        100,
        &[
            "kernel `nuts` takes no num_integration_steps",
            "only hmc and sghmc",
        ],
    );
}

#[test]
fn integration_steps_on_mala_is_refused() {
    refused_on_a(
        small(Bayesian::mala())
            .step_size(1e-2)
            .num_integration_steps(5),
        100,
        &[
            "kernel `mala` takes no num_integration_steps",
            "only hmc and sghmc",
        ],
    );
}

#[test]
fn alpha_on_hmc_is_refused() {
    refused_on_a(
        small(Bayesian::hmc().num_integration_steps(5))
            .step_size(1e-2)
            .alpha(0.1),
        100,
        &["kernel `hmc` takes no alpha/beta", "only sghmc"],
    );
}

#[test]
fn hmc_with_zero_steps_is_refused() {
    refused_on_a(
        small(Bayesian::hmc().num_integration_steps(0)).step_size(1e-2),
        100,
        &["num_integration_steps must be in 1..=1000000", "got 0"],
    );
}

// ---------------------------------------------------------- whole-problem

#[test]
fn mismatched_chains_are_refused() {
    let q = quick();
    q.a.bayesian(small(Bayesian::nuts()).num_chains(1)).unwrap();
    q.b.bayesian(small(Bayesian::nuts()).num_chains(2)).unwrap();
    let err = solve(&q, 100).unwrap_err();
    assert!(
        matches!(&err, Error::MismatchedChains { chains } if chains == &[("a".to_string(), 1), ("b".to_string(), 2)]),
        "expected MismatchedChains, got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("a=1"), "names a and its chains: {msg}");
    assert!(msg.contains("b=2"), "names b and its chains: {msg}");
    assert!(msg.contains(".num_chains(k)"), "names the fix: {msg}");
}

#[test]
fn no_model_configured_is_refused() {
    let q = quick();
    let err = solve(&q, 100).unwrap_err();
    assert!(
        matches!(err, Error::NoBayesianModel),
        "expected NoBayesianModel, got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(".bayesian("), "names the fix: {msg}");
    assert!(msg.contains("before `solve`"), "names the fix: {msg}");
}

// ------------------------------------------------------------------ epochs

#[test]
fn too_few_epochs_are_refused() {
    // warmup 20 + thin 3 = 23 epochs are the minimum for one draw.
    let msg = refused_at_solve_on_a(
        Bayesian::nuts().warmup(20).keep(10).thin(3),
        22,
        &["22 epochs leave no draw", "solve at least 23 epochs"],
    );
    assert!(msg.contains("warmup 20"), "{msg}");
}

#[test]
fn fewer_epochs_keep_fewer_draws() {
    let q = quick();
    let (warmup, keep, thin) = (20usize, 100usize, 2usize);
    q.a.bayesian(Bayesian::nuts().warmup(warmup).keep(keep).thin(thin))
        .unwrap();
    let epochs = 71; // between warmup + thin = 22 and warmup + keep·thin = 220
    let sol = solve(&q, epochs).unwrap();
    let draws = (epochs - warmup) / thin; // 25
    assert_eq!(draws, 25);
    assert_eq!(sol.models[0].num_draws, draws);
    assert_eq!(q.a.posterior().unwrap().num_draws(), draws);
    assert_eq!(q.a.posterior_samples().unwrap().shape(), &[1, draws, 1]);
}

#[test]
fn thin_keeps_the_requested_draws() {
    let q = quick();
    q.a.bayesian(Bayesian::nuts().warmup(50).keep(50).thin(3))
        .unwrap();
    let sol = solve(&q, 50 + 50 * 3).unwrap();
    assert_eq!(sol.models[0].num_draws, 50);
    assert_eq!(q.a.posterior_samples().unwrap().shape(), &[1, 50, 1]);
}

// ----------------------------------------------------- what a solve leaves

fn nuts_diagnostics_shape(p: &Param, keep: usize) {
    let d = p.posterior_diagnostics().expect("NUTS records diagnostics");
    for field in [
        "is_divergent",
        "acceptance_rate",
        "energy",
        "tree_depth",
        "num_integration_steps",
    ] {
        let a = d
            .get(field)
            .unwrap_or_else(|| panic!("missing field {field}: {:?}", d.names()));
        assert_eq!(a.dim(), (1, keep), "shape of {field}");
        assert!(a.iter().all(|x| x.is_finite()), "{field} finite");
    }
}

#[test]
fn unsampled_model_stays_fixed() {
    let q = quick();
    q.b.set_values(&[-2.0]).unwrap();
    q.a.bayesian(Bayesian::nuts().warmup(50).keep(40)).unwrap();
    let sol = solve(&q, 90).unwrap();
    assert_eq!(sol.models.len(), 1);
    assert_eq!(sol.models[0].name, "a");
    assert_eq!(q.b.values(), vec![-2.0]);
    assert!(q.b.posterior_samples().is_none());
    assert!(q.b.posterior().is_none());
    assert_eq!(q.a.posterior_samples().unwrap().shape(), &[1, 40, 1]);
    nuts_diagnostics_shape(&q.a, 40);
}

/// The spec lists no diagnostics for SG-MCMC (blackjax returns no info);
/// crux records one, `is_divergent` (issue 18: a chain past its stability
/// limit must not drift silently).
#[test]
fn sgld_records_only_divergence() {
    let q = quick();
    q.a.bayesian(Bayesian::sgld().step_size(1e-4).warmup(20).keep(30))
        .unwrap();
    solve(&q, 50).unwrap();
    assert_eq!(q.a.posterior_samples().unwrap().shape(), &[1, 30, 1]);
    let d = q.a.posterior_diagnostics().unwrap();
    assert_eq!(d.names(), ["is_divergent"]);
    assert!(!d.is_divergent().unwrap().iter().any(|x| *x));
}

#[test]
fn model_holds_last_draw_of_chain_zero() {
    let q = quick();
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .warmup(50)
                .keep(30)
                .num_chains(2)
                .init_jitter(0.1),
        )
        .unwrap();
    }
    solve(&q, 80).unwrap();
    for p in [&q.a, &q.b] {
        let s = p.posterior_samples().unwrap();
        assert_eq!(s.shape(), &[2, 30, 1]);
        assert_eq!(
            p.values(),
            vec![s[[0, 29, 0]]],
            "{} holds chain 0's last draw",
            p.name()
        );
    }
}

/// SGHMC's noise variance ε(2α − εβ) must not be negative.
#[test]
fn sghmc_rejects_a_negative_noise_variance() {
    refused_on_a(
        Bayesian::sghmc().step_size(0.1).alpha(0.01).beta(1.0),
        2000,
        &["step_size·beta <= 2·alpha"],
    );
}

/// `warmup + keep·thin` beyond the sweep limit (or overflowing) is an
/// error, not a panic or an abort.
#[test]
fn huge_schedules_are_errors() {
    refused_on_a(
        Bayesian::nuts().keep(usize::MAX).thin(2),
        usize::MAX,
        &["exceeds"],
    );
    refused_on_a(
        Bayesian::nuts().keep(1 << 22).thin(4),
        usize::MAX,
        &["lower keep, thin or warmup"],
    );
}

/// `target_acceptance` outside (0, 1), or on a kernel that adapts no step
/// size, is refused when attached.
#[test]
fn bad_target_acceptance_is_refused() {
    refused_on_a(
        small(Bayesian::nuts()).target_acceptance(1.0),
        100,
        &["target_acceptance must be in (0, 1)", "got 1"],
    );
    refused_on_a(
        small(Bayesian::mala())
            .step_size(0.1)
            .target_acceptance(0.9),
        100,
        &["kernel `mala` takes no target_acceptance"],
    );
}

/// Bad prior parameters are refused when the configuration is attached.
#[test]
fn bad_prior_is_refused_when_attached() {
    refused_on_a(
        small(Bayesian::nuts()).prior(crux::Prior::student_t(2.0, 1.0)),
        100,
        &["student_t prior: df must be > 2 for finite variance, got 2"],
    );
}

/// A higher adaptation target gives smaller adapted steps and a higher
/// mean acceptance; the default target is 0.8.
#[test]
fn target_acceptance_steers_adaptation() {
    let run = |target: Option<f64>| {
        let q = quick();
        let mut cfg = Bayesian::nuts().warmup(300).keep(400);
        if let Some(t) = target {
            cfg = cfg.target_acceptance(t);
        }
        q.a.bayesian(cfg.clone()).unwrap();
        q.b.bayesian(cfg).unwrap();
        let sol = solve(&q, 700).unwrap();
        let r = &sol.models[0];
        (r.step_size[0], r.mean_acceptance.unwrap())
    };
    let (step_default, acc_default) = run(None);
    let (step_08, acc_08) = run(Some(0.8));
    assert_eq!(
        (step_default.to_bits(), acc_default.to_bits()),
        (step_08.to_bits(), acc_08.to_bits()),
        "the default target is 0.8"
    );
    let (step_high, acc_high) = run(Some(0.97));
    assert!(step_high < step_default, "{step_high} vs {step_default}");
    assert!(acc_high > acc_default, "{acc_high} vs {acc_default}");
    assert!(acc_high > 0.9, "{acc_high}");
}

/// `SolveOptions::seed` reruns the chains on the same data draw: the data
/// seed alone fixes the noise, the sampler seed the draws (default: the
/// data seed).
#[test]
fn sampler_seed_is_separate_from_the_data_seed() {
    let draws = |seed: Option<u64>| {
        let q = quick();
        q.a.bayesian(small(Bayesian::nuts())).unwrap();
        let mut opts = SolveOptions::default().quiet();
        if let Some(s) = seed {
            opts = opts.seed(s);
        }
        q.problem.solve_with(100, &opts).unwrap();
        let target = q.problem.eval(&q.target).unwrap();
        (q.a.posterior_samples().unwrap(), target)
    };
    let (default, data0) = draws(None);
    let (same, data1) = draws(Some(7)); // quick() uses data seed 7
    let (other, data2) = draws(Some(8));
    assert_eq!(default, same, "the default sampler seed is the data seed");
    assert_ne!(default, other, "another sampler seed gives other draws");
    assert_eq!(data0, data1);
    assert_eq!(data0, data2, "the data do not depend on the sampler seed");
}

/// A solution keeps the posteriors it produced, by model; each model holds
/// the same one; a model the solve did not sample has none.
#[test]
fn solution_posteriors_are_keyed_by_model() {
    let q = quick();
    q.a.bayesian(small(Bayesian::nuts())).unwrap();
    let sol = solve(&q, 100).unwrap();
    let from_solution = sol.posterior(&q.a).expect("a was sampled");
    assert_eq!(from_solution.model, "a");
    assert_eq!(Some(from_solution), q.a.posterior().as_deref());
    assert_eq!(
        from_solution.leaf("a"),
        q.a.posterior_samples().as_ref(),
        "leaves by name"
    );
    assert!(sol.posterior(&q.b).is_none());
}
