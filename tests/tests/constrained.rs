//! Constrained parameters and log-density terms: 1-d targets on a
//! half-line or an interval, written as `Constraint::log_density` on the
//! constrained value (flat prior), sampled with NUTS on the unconstrained
//! value; the draws (reported on the constrained scale) match the exact
//! mean and variance within 4 MCSE.

use crux::{Bayesian, Constraint, Crux, Param, Prior, SolveOptions};
use crux_tests::stats::within_4_mcse;

/// NUTS, 4 chains × 3000 draws after 500 warmup, flat prior.
fn nuts_flat() -> Bayesian {
    Bayesian::nuts()
        .warmup(500)
        .keep(3000)
        .num_chains(4)
        .prior(Prior::flat())
}

/// Samples `x` under the log-density `logp(x)` and checks the mean and
/// variance.
fn check(what: &str, x: Param, logp: crux::Expr, mean: f64, var: f64) {
    let p = Crux::new([Constraint::log_density(logp)]).unwrap();
    x.bayesian(nuts_flat()).unwrap();
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

/// 40 fixed observations (a deterministic spread around 0).
fn observations() -> ndarray::Array1<f64> {
    ndarray::Array1::from_shape_fn(40, |i| {
        let t = i as f64 * 0.618_033_988_75;
        1.7 * (2.0 * std::f64::consts::PI * (t - t.floor()) - std::f64::consts::PI).sin()
            + 0.3 * ((i % 5) as f64 - 2.0)
    })
}

/// `y_i ~ N(0, σ²)` with an unknown σ (a positive parameter) under an
/// inverse-gamma(3, 2) prior on σ² (a log-density term on σ: `−7 ln σ −
/// 2/σ²`): σ² | y ~ inverse-gamma(3 + N/2, 2 + S/2), `S = Σ y²`.
#[test]
fn gaussian_likelihood_with_a_sampled_scale_is_conjugate() {
    let y = observations();
    let (n, s) = (y.len() as f64, y.iter().map(|v| v * v).sum::<f64>());
    let (a, b) = (3.0 + n / 2.0, 2.0 + s / 2.0);
    let mean = b / (a - 1.0);
    let var = b * b / ((a - 1.0).powi(2) * (a - 2.0));
    let sigma = Param::new("sigma", [1]).positive();
    let r = crux::Expr::array(&y) * 1.0;
    let prior = sigma.expr().ln() * -7.0 - sigma.expr().square().recip() * 2.0;
    let p = Crux::new([r.gaussian(&sigma), Constraint::log_density(prior.sum())]).unwrap();
    sigma.bayesian(nuts_flat()).unwrap();
    p.solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let d = sigma.posterior().unwrap().entry(0, 0).unwrap();
    let v = d.mapv(|x| x * x);
    within_4_mcse(&v, mean, "E[σ² | y]");
    within_4_mcse(&v.mapv(|x| (x - mean).powi(2)), var, "Var[σ² | y]");
}

/// The terms' values: `gaussian`, `student_t`, `laplace` (scalar and
/// per-entry scales) and the Jacobian of a constrained leaf, against the
/// formulas in f64.
#[test]
fn likelihood_terms_and_jacobians_have_their_formulas() {
    use std::f64::consts::PI;
    let x = Param::new("x", [2]).with_constant(0.0).unwrap();
    x.set_values(&[0.3, -0.8]).unwrap();
    let s = Param::new("s", [1]).positive();
    s.set_values(&[1.7]).unwrap();
    let data = ndarray::array![1.0, 2.0];
    let scales = ndarray::array![0.5, 2.5];
    let r = crux::Expr::array(&data) - &x;
    let rv = [1.0 - 0.3, 2.0 + 0.8];
    let lg = |v: f64| -> f64 {
        // ln Γ at the two values used (ν = 3: Γ(2) = 1, Γ(1.5) = √π / 2).
        if v == 2.0 {
            0.0
        } else {
            (PI.sqrt() / 2.0).ln()
        }
    };
    let cases: Vec<(crux::Constraint, f64)> = vec![
        (
            r.gaussian(&s),
            rv.iter()
                .map(|r| -(1.7f64).ln() - r * r / (2.0 * 1.7 * 1.7) - 0.5 * (2.0 * PI).ln())
                .sum(),
        ),
        (
            r.gaussian(crux::Expr::array(&scales)),
            rv.iter()
                .zip(&scales)
                .map(|(r, s)| -s.ln() - r * r / (2.0 * s * s) - 0.5 * (2.0 * PI).ln())
                .sum(),
        ),
        (
            r.student_t(3.0, &s),
            rv.iter()
                .map(|r| {
                    lg(2.0)
                        - lg(1.5)
                        - 0.5 * (3.0 * PI).ln()
                        - (1.7f64).ln()
                        - 2.0 * (1.0 + r * r / (3.0 * 1.7 * 1.7)).ln()
                })
                .sum(),
        ),
        (
            r.laplace(&s),
            rv.iter()
                .map(|r| -(2.0 * 1.7f64).ln() - r.abs() / 1.7)
                .sum(),
        ),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        let p = Crux::new([c]).unwrap();
        // x sampled (no Jacobian), s an input at its value.
        let ld = p.log_density().sample(&x, Prior::flat()).build().unwrap();
        let got = ld.logp(&[0.3, -0.8]).unwrap();
        assert!((got - want).abs() < 1e-12, "term {i}: {got} vs {want}");
        // s sampled: θ holds ln s, and the log-density gains ln s.
        if i != 1 {
            let ld = p.log_density().sample(&s, Prior::flat()).build().unwrap();
            let got = ld.logp(&[(1.7f64).ln()]).unwrap();
            assert!(
                (got - want - (1.7f64).ln()).abs() < 1e-12,
                "term {i}, s sampled: {got} vs {want} + ln 1.7"
            );
        }
    }
}

fn refused(r: crux::Result<Crux>) -> String {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

/// Bad inputs name the parameter or the term.
#[test]
fn constraint_errors_name_what_is_wrong() {
    let e = Param::new("p", [1])
        .bounded(2.0, 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`p`") && e.contains("below"), "{e}");
    let e = Param::new("q", [1])
        .lower(f64::INFINITY)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`q`"), "{e}");
    let t = Param::new("tau", [2]).positive();
    let e = t.set_values(&[1.0, -1.0]).unwrap_err().to_string();
    assert!(e.contains("`tau`") && e.contains("support"), "{e}");
    assert_eq!(t.values(), vec![1.0, 1.0], "a refused value is not stored");
    let x = Param::new("x", [3]);
    for (c, want) in [
        (x.expr().gaussian(0.0), "sigma must be positive"),
        (x.expr().gaussian(-2.0), "sigma must be positive"),
        (x.expr().laplace(0.0), "b must be positive"),
        (x.expr().student_t(0.0, 1.0), "df must be a positive number"),
        (
            x.expr()
                .gaussian(crux::Expr::array(&ndarray::array![1.0, 2.0])),
            "give a scalar",
        ),
    ] {
        let e = refused(Crux::new([c]));
        assert!(e.contains(want), "{e}");
    }
    let e = refused(Crux::new([Constraint::log_density(x.expr())]));
    assert!(
        e.contains("log-density term 0") && e.contains("one number"),
        "{e}"
    );
}

/// The regression sample's problem (α, β, σ > 0 jointly, flat priors,
/// `gaussian(σ)`): the posterior means of α and β are the least-squares
/// fit and `E[σ² | y] = RSS / (N − 5)`.
#[test]
fn regression_with_unknown_noise_matches_its_exact_posterior() {
    let r = crux_samples::problems::Regression::from_csv(
        &crux_samples::problems::Regression::shipped_data(),
    )
    .unwrap();
    r.group.bayesian(nuts_flat()).unwrap();
    r.problem
        .solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let (a, b, rss) = r.least_squares();
    let post = r.group.posterior().unwrap();
    let leaf = |name: &str| {
        post.leaf(name)
            .unwrap()
            .index_axis(ndarray::Axis(2), 0)
            .to_owned()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
    };
    within_4_mcse(&leaf("alpha"), a, "alpha");
    within_4_mcse(&leaf("beta"), b, "beta");
    let n = r.x.len() as f64;
    within_4_mcse(&leaf("sigma").mapv(|s| s * s), rss / (n - 5.0), "sigma^2");
    // Chain-aware evaluation sees the constrained values too.
    let ev = r
        .problem
        .eval_samples([r.sigma.expr() * 1.0], crux::Samples::Chain)
        .unwrap();
    let sigma = post.leaf("sigma").unwrap();
    assert_eq!(ev[0].shape(), sigma.shape());
    assert!(ev[0]
        .iter()
        .zip(sigma.iter())
        .all(|(a, b)| (a - b).abs() < 1e-12));
}

/// A CSV file with a bad row is a typed error naming the file and line.
#[test]
fn regression_data_errors_name_the_line() {
    let dir = std::env::temp_dir().join(format!("crux-regression-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, want) in [
        ("x,y\n1,2\n3\n", "line 3"),
        ("x,y\n1,2\n3,abc\n", "`abc` is not a finite number"),
        ("x,y\n1,2\n", "at least 6"),
    ] {
        let path = dir.join("bad.csv");
        std::fs::write(&path, text).unwrap();
        match crux_samples::problems::Regression::from_csv(&path) {
            Ok(_) => panic!("accepted {text:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Samples `x` under `prior` alone (NUTS, 4 × 4000 draws; the problem's
/// one term is zero).
fn sample_prior(x: &Param, prior: Prior) {
    let p = Crux::new([Constraint::log_density((x.expr() * 0.0).sum())]).unwrap();
    x.bayesian(
        Bayesian::nuts()
            .warmup(500)
            .keep(4000)
            .num_chains(4)
            .prior(prior),
    )
    .unwrap();
    p.solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
}

/// A prior on a constrained parameter applies on the constrained scale:
/// `Prior::gaussian(1)` on a positive `x` (no data) is the half-normal,
/// mean √(2/π), variance 1 − 2/π (the Jacobian is the transform's).
#[test]
fn priors_apply_on_the_constrained_scale() {
    let x = Param::new("x", [1]).positive();
    sample_prior(&x, Prior::gaussian(1.0));
    let d = x.posterior().unwrap().entry(0, 0).unwrap();
    let mean = (2.0 / std::f64::consts::PI).sqrt();
    within_4_mcse(&d, mean, "half-normal mean");
    within_4_mcse(
        &d.mapv(|v| (v - mean).powi(2)),
        1.0 - 2.0 / std::f64::consts::PI,
        "half-normal variance",
    );
}

/// `.mse()` terms and likelihood terms in one problem: the log-density
/// is `−scale · mean(mse terms) + Σ ℓ` (the likelihood terms are neither
/// scaled nor averaged).
#[test]
fn mse_and_likelihood_terms_mix() {
    let a = Param::new("a", [1]);
    let b = Param::new("b", [1]);
    let r1 = &a - 1.0;
    let r2 = &a - &b * 2.0;
    let r3 = &b + 0.5;
    let p = Crux::new([r1.mse(), r2.gaussian(0.5), r3.mse()]).unwrap();
    let ld = p
        .log_density()
        .sample(&a, Prior::flat())
        .sample(&b, Prior::flat())
        .likelihood_scale(3.0)
        .build()
        .unwrap();
    let (av, bv) = (0.2, -0.7);
    let got = ld.logp(&[av, bv]).unwrap();
    let mse = ((av - 1.0f64).powi(2) + (bv + 0.5f64).powi(2)) / 2.0;
    let r = av - 2.0 * bv;
    let ll = -(0.5f64).ln() - r * r / (2.0 * 0.25) - 0.5 * (2.0 * std::f64::consts::PI).ln();
    assert!(
        (got - (-3.0 * mse + ll)).abs() < 1e-12,
        "{got} vs {}",
        -3.0 * mse + ll
    );
    // The loss (optimisers, progress): mean of the mse terms minus ℓ.
    a.set_values(&[av]).unwrap();
    b.set_values(&[bv]).unwrap();
    assert!((p.loss_value().unwrap() - (mse - ll)).abs() < 1e-12);
}

/// Initializers and VI work on the unconstrained value too: pathfinder then
/// NUTS on the Gamma(3, 2) target matches it; mean-field VI's draws of `x`
/// are positive and near its mean (VI fits a log-normal to a Gamma:
/// approximate, so a loose tolerance).
#[test]
fn initializers_and_vi_on_a_positive_parameter() {
    let gamma = || {
        let x = Param::new("x", [1]).positive();
        let logp = x.expr().ln() * 2.0 - &x * 2.0;
        let p = Crux::new([Constraint::log_density(logp.sum())]).unwrap();
        (p, x)
    };
    let (p, x) = gamma();
    x.bayesian(nuts_flat()).unwrap();
    x.initialize(crux::Init::pathfinder()).unwrap();
    p.solve_with(usize::MAX, &SolveOptions::default().quiet())
        .unwrap();
    let d = x.posterior().unwrap().entry(0, 0).unwrap();
    within_4_mcse(&d, 1.5, "pathfinder + NUTS: mean");

    let (p, x) = gamma();
    x.vi(crux::Vi::meanfield()
        .optimizer(crux::Optimizer::adam(0.02))
        .num_samples(8)
        .posterior_draws(2000)
        .prior(Prior::flat()))
        .unwrap();
    p.solve_with(3000, &SolveOptions::default().quiet())
        .unwrap();
    let d = x.posterior().unwrap().entry(0, 0).unwrap();
    assert!(d.iter().all(|v| *v > 0.0));
    let m = d.mean().unwrap();
    assert!((m - 1.5).abs() < 0.15, "VI mean {m}");
}

/// An ordered vector: two i.i.d. N(0, 1) under `.ordered()` are the
/// order statistics of two normals: means ∓1/√π, variances 1 − 1/π; the
/// draws are increasing. A non-vector is refused.
#[test]
fn ordered_vectors_are_order_statistics() {
    let x = Param::new("x", [2]).ordered().unwrap();
    assert_eq!(
        x.values(),
        vec![0.0, 1.0],
        "an ordered parameter starts at 0, 1, …"
    );
    sample_prior(&x, Prior::gaussian(1.0));
    let post = x.posterior().unwrap();
    let (lo, hi) = (post.entry(0, 0).unwrap(), post.entry(0, 1).unwrap());
    assert!(
        lo.iter().zip(hi.iter()).all(|(a, b)| a < b),
        "unordered draw"
    );
    let m = 1.0 / std::f64::consts::PI.sqrt();
    let v = 1.0 - 1.0 / std::f64::consts::PI;
    within_4_mcse(&lo, -m, "E[min]");
    within_4_mcse(&hi, m, "E[max]");
    within_4_mcse(&lo.mapv(|a| (a + m).powi(2)), v, "Var[min]");
    let e = Param::new("m", [2, 2]).ordered().unwrap_err().to_string();
    assert!(e.contains("`m`") && e.contains("vector"), "{e}");
    let e = x.set_values(&[1.0, 1.0]).unwrap_err().to_string();
    assert!(e.contains("increasing"), "{e}");
}

/// With a batch size, only the `.mse()` terms are subsampled: at unit
/// weights the minibatch log-density is the full one, and with all
/// weights zero what is left is the likelihood term (and the prior).
#[test]
fn minibatches_subsample_only_the_residual_terms() {
    let d = crux::Domain::line(0.0, 1.0, 0.01).unwrap();
    let x = d.variable("interior").unwrap();
    let a = Param::new("a", [1]);
    let r = &a * &x - &x * 2.0;
    let term = (&a - 1.0).gaussian(0.5);
    let p = Crux::new([r.mse(), term]).unwrap();
    let full = p.log_density().sample(&a, Prior::flat()).build().unwrap();
    let mb = p
        .log_density()
        .sample(&a, Prior::flat())
        .batch_size(10)
        .build()
        .unwrap();
    let m = mb.minibatch().unwrap();
    assert_eq!(m.inputs.len(), 1, "one subsampled term: the .mse()");
    let points = m.inputs[0].points;
    let theta = [0.7];
    let (l0, g0) = full.logp_and_grad(&theta).unwrap();
    let (l1, g1) = mb
        .logp_and_grad_weighted(&theta, &[vec![1.0; points]])
        .unwrap();
    assert!((l0 - l1).abs() < 1e-12 && (g0[0] - g1[0]).abs() < 1e-12);
    let (lz, gz) = mb
        .logp_and_grad_weighted(&theta, &[vec![0.0; points]])
        .unwrap();
    let ll = -(0.5f64).ln()
        - (0.7f64 - 1.0).powi(2) / (2.0 * 0.25)
        - 0.5 * (2.0 * std::f64::consts::PI).ln();
    assert!((lz - ll).abs() < 1e-12, "{lz} vs {ll}");
    assert!((gz[0] - (1.0 - 0.7) / 0.25).abs() < 1e-12, "{}", gz[0]);
}

/// The tracker's `posterior/<model>/mean` of a constrained scalar is the
/// mean of its constrained draws (not of `ln x`).
#[test]
fn the_tracker_reports_constrained_means() {
    #[derive(Debug, Clone, Default)]
    struct Last(std::sync::Arc<std::sync::Mutex<Option<crux::Metrics>>>);
    impl crux::Tracker for Last {
        fn record(&mut self, m: &crux::Metrics) -> crux::Result<()> {
            *self.0.lock().unwrap() = Some(m.clone());
            Ok(())
        }
    }
    let x = Param::new("x", [1]).positive();
    let logp = x.expr().ln() * 2.0 - &x * 2.0;
    let p = Crux::new([Constraint::log_density(logp.sum())]).unwrap();
    x.bayesian(nuts_flat()).unwrap();
    let last = Last::default();
    p.solve_with(
        usize::MAX,
        &SolveOptions::default().quiet().tracker(last.clone()),
    )
    .unwrap();
    let m = last.0.lock().unwrap().clone().unwrap();
    let tracked = m
        .values
        .iter()
        .find(|(k, _)| k == "posterior/x/mean")
        .unwrap()
        .1;
    let d = x.posterior().unwrap().entry(0, 0).unwrap();
    let mean = d.mean().unwrap();
    assert!((tracked - mean).abs() < 1e-9 * mean, "{tracked} vs {mean}");
}
