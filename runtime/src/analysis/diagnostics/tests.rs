//! Tests of the diagnostics: agreement with arviz on stored reference
//! values, and properties that any correct R-hat / ESS must have.

use super::*;
use crux_ir::rng::{normal, stream, Purpose};
use ndarray::Array2;

/// Relative tolerance against arviz.
const TOL: f64 = 1e-9;

/// `a` equals `b` to `rel` relative, NaN equals NaN and infinities match.
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * b.abs()
}

/// Standard normal draws `(chains, draws)` from the test stream `seed`.
fn iid(seed: u64, chains: usize, draws: usize) -> Array2<f64> {
    Array2::from_shape_fn((chains, draws), |(c, t)| {
        normal(seed, stream(Purpose::Test, c as u64), t as u64)
    })
}

/// Stationary AR(1) chains `x_t = φ x_{t−1} + ε_t`.
fn ar1(seed: u64, chains: usize, draws: usize, phi: f64) -> Array2<f64> {
    let mut out = Array2::zeros((chains, draws));
    for c in 0..chains {
        let s = stream(Purpose::Test, c as u64);
        let mut x = normal(seed, s, 0) / (1.0 - phi * phi).sqrt();
        for t in 0..draws {
            x = phi * x + normal(seed, s, t as u64 + 1);
            out[[c, t]] = x;
        }
    }
    out
}

fn all_diagnostics(x: &Array2<f64>) -> [f64; 5] {
    let v = x.view();
    [rhat(v), ess_bulk(v), ess_tail(v), ess_mean(v), mcse_mean(v)]
}

mod arviz_reference {
    use super::*;
    use serde_json::Value;

    /// Floats are stored as strings holding Python's `repr` so they parse
    /// bit-exactly (Rust's `str::parse` is correctly rounded and accepts
    /// `nan`, `inf` and `-inf`).
    fn number(v: &Value) -> f64 {
        let text = v.as_str().expect("floats are stored as strings");
        text.parse()
            .unwrap_or_else(|_| panic!("bad float {text:?} in reference data"))
    }

    fn load() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/arviz_reference.json"
        );
        let text = std::fs::read_to_string(path).expect("reference data present");
        serde_json::from_str(&text).expect("reference data is JSON")
    }

    struct Case {
        name: String,
        draws: Array2<f64>,
        expected: Value,
    }

    fn cases() -> Vec<Case> {
        let data = load();
        data["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let shape = (
                    c["chains"].as_u64().unwrap() as usize,
                    c["draws"].as_u64().unwrap() as usize,
                );
                let values: Vec<f64> = c["values"].as_array().unwrap().iter().map(number).collect();
                Case {
                    name: c["name"].as_str().unwrap().to_owned(),
                    draws: Array2::from_shape_vec(shape, values).unwrap(),
                    expected: c["expected"].clone(),
                }
            })
            .collect()
    }

    #[test]
    fn records_the_arviz_version_named_in_the_docs() {
        let data = load();
        assert_eq!(data["arviz_version"], "0.23.4");
        assert!(cases().len() >= 18);
    }

    #[test]
    fn every_diagnostic_matches_arviz() {
        type Diagnostic = fn(ArrayView2<f64>) -> f64;
        let functions: [(&str, Diagnostic); 7] = [
            ("rhat", rhat),
            ("ess_bulk", ess_bulk),
            ("ess_tail", ess_tail),
            ("ess_mean", ess_mean),
            ("ess_sd", ess_sd),
            ("mcse_mean", mcse_mean),
            ("mcse_sd", mcse_sd),
        ];
        let mut failures = Vec::new();
        let mut checked = 0;
        for case in cases() {
            for (key, f) in functions {
                let got = f(case.draws.view());
                let want = number(&case.expected[key]);
                checked += 1;
                if !close(got, want, TOL) {
                    failures.push(format!("{} {key}: got {got:e}, arviz {want:e}", case.name));
                }
            }
        }
        assert!(checked >= 7 * 18);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn summary_matches_arviz_and_numpy() {
        let mut failures = Vec::new();
        for case in cases() {
            let s = summarize(case.draws.view());
            let fields = [
                ("mean", s.mean),
                ("sd", s.sd),
                ("q05", s.q05),
                ("q95", s.q95),
                ("rhat", s.rhat),
                ("ess_bulk", s.ess_bulk),
                ("ess_tail", s.ess_tail),
                ("mcse_mean", s.mcse_mean),
            ];
            for (key, got) in fields {
                let mut want = number(&case.expected[key]);
                let (k, n) = case.draws.dim();
                if key == "rhat" && k == 1 && n >= 8 {
                    // One chain: the R-hat of its two halves (see `summarize`).
                    let h = n / 2;
                    let halves = ndarray::Array2::from_shape_fn((2, h), |(c, i)| {
                        case.draws[[0, c * (n - h) + i]]
                    });
                    want = rhat(halves.view());
                    assert!(want.is_finite(), "{}: split R-hat", case.name);
                }
                if !close(got, want, TOL) {
                    failures.push(format!(
                        "{} {key}: got {got:e}, numpy/arviz {want:e}",
                        case.name
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn reference_covers_the_degenerate_cases() {
        // The stored data must keep exercising NaN, infinite and
        // non-finite results, or the comparison above proves less.
        let cases = cases();
        let rhats: Vec<f64> = cases.iter().map(|c| number(&c.expected["rhat"])).collect();
        assert!(rhats.iter().any(|r| r.is_nan()));
        assert!(rhats.contains(&f64::INFINITY));
        assert!(rhats.iter().any(|r| *r > 1.5));
        assert!(cases.iter().any(|c| c.draws.ncols() % 2 == 1));
        assert!(cases
            .iter()
            .any(|c| c.draws.iter().any(|v| v.is_infinite())));
        let mcse_sds: Vec<f64> = cases
            .iter()
            .map(|c| number(&c.expected["mcse_sd"]))
            .collect();
        assert!(mcse_sds.iter().any(|v| v.is_nan()));
        assert!(mcse_sds.iter().filter(|v| v.is_finite()).count() >= 12);
    }

    #[test]
    fn reference_covers_the_required_shapes() {
        // i.i.d. 4×500, AR(1) φ = 0.9, a stuck chain, one chain, odd N.
        let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
        for name in [
            "iid_normal_4x500",
            "ar1_phi09_4x1000",
            "stuck_chain_4x200",
            "single_chain_1x1000",
            "odd_draws_3x101",
        ] {
            assert!(names.iter().any(|n| n == name), "missing case {name}");
        }
        let stuck = cases()
            .into_iter()
            .find(|c| c.name == "stuck_chain_4x200")
            .unwrap();
        let row = stuck.draws.row(2);
        assert!(row.iter().all(|&v| v == row[0]));
        assert!(stuck.draws.row(0).iter().any(|&v| v != stuck.draws[[0, 0]]));
    }
}

#[test]
fn iid_chains_have_rhat_near_one_and_ess_near_draw_count() {
    let x = iid(11, 4, 1000);
    let r = rhat(x.view());
    assert!((r - 1.0).abs() < 0.01, "rhat {r}");
    let n = 4000.0;
    for (name, ess) in [
        ("bulk", ess_bulk(x.view())),
        ("tail", ess_tail(x.view())),
        ("mean", ess_mean(x.view())),
    ] {
        assert!(ess > 0.7 * n && ess < 1.3 * n, "ess_{name} {ess}");
    }
    // MCSE of the mean of iid N(0, 1) draws is about 1/√n.
    let m = mcse_mean(x.view());
    assert!((m * n.sqrt() - 1.0).abs() < 0.15, "mcse {m}");
}

#[test]
fn ess_never_exceeds_the_autocorrelation_time_floor() {
    // arviz floors τ at 1/log10(N), so ESS ≤ N·log10(N) always, even for
    // antithetic chains where ESS > N.
    let alternating = Array2::from_shape_fn((4, 200), |(c, t)| {
        let sign = if t % 2 == 0 { 1.0 } else { -1.0 };
        sign * (1.0 + 0.1 * normal(3, stream(Purpose::Test, c as u64), t as u64).abs())
    });
    for x in [iid(5, 4, 200), ar1(6, 4, 200, -0.7), alternating] {
        let n = x.len() as f64;
        for ess in [ess_bulk(x.view()), ess_tail(x.view()), ess_mean(x.view())] {
            assert!(
                ess > 0.0 && ess <= n * n.log10() * (1.0 + 1e-12),
                "ess {ess}"
            );
        }
    }
    // Antithetic (negatively correlated) chains really do beat N.
    let x = ar1(6, 4, 200, -0.7);
    assert!(ess_mean(x.view()) > x.len() as f64);
}

#[test]
fn diagnostics_are_invariant_to_chain_order() {
    let x = ar1(21, 4, 301, 0.8);
    let mut permuted = x.clone();
    for (to, from) in [3, 0, 2, 1].into_iter().enumerate() {
        permuted.row_mut(to).assign(&x.row(from));
    }
    let a = all_diagnostics(&x);
    let b = all_diagnostics(&permuted);
    for (u, v) in a.iter().zip(&b) {
        assert!(close(*u, *v, 1e-12), "{a:?} vs {b:?}");
    }
}

#[test]
fn rank_diagnostics_ignore_monotone_transforms() {
    let x = ar1(31, 3, 400, 0.5);
    let y = x.mapv(f64::exp);
    // Ranks are unchanged by an increasing map.
    assert_eq!(ess_bulk(x.view()), ess_bulk(y.view()));
    assert_eq!(ess_tail(x.view()), ess_tail(y.view()));
    // Folding commutes with positive affine maps, so R-hat is unchanged too.
    let z = x.mapv(|v| 2.5 * v - 7.0);
    assert!(close(rhat(x.view()), rhat(z.view()), 1e-12));
    // ESS of the mean is affine invariant; its MCSE scales with the draws.
    assert!(close(ess_mean(x.view()), ess_mean(z.view()), 1e-9));
    assert!(close(2.5 * mcse_mean(x.view()), mcse_mean(z.view()), 1e-9));
    // ...but the mean's ESS is not rank based: exp changes it.
    assert!(!close(ess_mean(x.view()), ess_mean(y.view()), 1e-3));
}

#[test]
fn badly_mixed_chains_are_flagged() {
    let mut x = iid(41, 4, 500);
    x.row_mut(2).mapv_inplace(|v| v + 3.0);
    assert!(rhat(x.view()) > 1.1);
    assert!(ess_bulk(x.view()) < 200.0);
    // A scale difference only shows in the tail (folded) R-hat.
    let mut y = iid(42, 4, 500);
    y.row_mut(1).mapv_inplace(|v| 4.0 * v);
    assert!(rhat(y.view()) > 1.05);
}

#[test]
fn autocorrelated_chains_have_the_expected_ess_and_are_fast() {
    // AR(1): the integrated autocorrelation time is (1 + φ)/(1 − φ).
    let phi = 0.9;
    let x = ar1(51, 4, 10_000, phi);
    let start = std::time::Instant::now();
    let s = summarize(x.view());
    let elapsed = start.elapsed();
    let n = x.len() as f64;
    let expected = n * (1.0 - phi) / (1.0 + phi);
    for ess in [s.ess_bulk, ess_mean(x.view())] {
        assert!(
            ess > 0.7 * expected && ess < 1.3 * expected,
            "ess {ess} vs {expected}"
        );
    }
    assert!((s.rhat - 1.0).abs() < 0.01, "rhat {}", s.rhat);
    // Well under 100 ms in practice; generous here for loaded CI machines.
    assert!(elapsed.as_secs_f64() < 2.0, "summarize took {elapsed:?}");
}

#[test]
fn the_middle_draw_of_odd_chains_is_dropped_by_the_split() {
    let x = iid(61, 3, 101);
    let mut y = x.clone();
    for c in 0..3 {
        y[[c, 50]] = 1e6 * (c as f64 + 1.0);
    }
    assert_eq!(rhat(x.view()), rhat(y.view()));
    assert_eq!(ess_bulk(x.view()), ess_bulk(y.view()));
    assert_eq!(ess_mean(x.view()), ess_mean(y.view()));
    // The pooled sd (and so the MCSE) does see the middle draw.
    assert!(mcse_mean(y.view()) > 10.0 * mcse_mean(x.view()));
}

#[test]
fn degenerate_inputs_give_nan_or_arviz_values_without_panicking() {
    // Too few draws or chains.
    for shape in [(0, 0), (0, 10), (4, 0), (4, 3), (1, 1)] {
        let x = Array2::from_elem(shape, 1.0);
        assert!(all_diagnostics(&x).iter().all(|v| v.is_nan()), "{shape:?}");
        let s = summarize(x.view());
        assert!(s.rhat.is_nan() && s.ess_bulk.is_nan() && s.mcse_mean.is_nan());
    }
    assert!(summarize(Array2::<f64>::zeros((0, 0)).view()).mean.is_nan());
    // One chain: no R-hat, but an ESS.
    let one = iid(71, 1, 500);
    assert!(rhat(one.view()).is_nan());
    assert!(ess_bulk(one.view()) > 300.0);
    // Constant draws.
    let constant = Array2::from_elem((4, 101), -3.25);
    assert!(rhat(constant.view()).is_nan());
    assert_eq!(ess_bulk(constant.view()), 400.0);
    assert_eq!(ess_tail(constant.view()), 400.0);
    assert_eq!(ess_mean(constant.view()), 400.0);
    assert_eq!(mcse_mean(constant.view()), 0.0);
    // Chains constant at different values never mix.
    let stuck = Array2::from_shape_fn((3, 20), |(c, _)| c as f64);
    assert_eq!(rhat(stuck.view()), f64::INFINITY);
    // A NaN anywhere poisons everything.
    let mut with_nan = iid(72, 4, 100);
    with_nan[[3, 99]] = f64::NAN;
    assert!(all_diagnostics(&with_nan).iter().all(|v| v.is_nan()));
    let s = summarize(with_nan.view());
    assert!(s.mean.is_nan() && s.sd.is_nan() && s.q05.is_nan() && s.q95.is_nan());
    // An infinity: ranks still work, moments do not.
    let mut with_inf = iid(73, 4, 100);
    with_inf[[0, 10]] = f64::INFINITY;
    let [r, bulk, tail, mean_ess, mcse] = all_diagnostics(&with_inf);
    assert!(r.is_finite() && bulk.is_finite() && tail.is_finite());
    assert!(mean_ess.is_nan() && mcse.is_nan());
}

#[test]
fn quantile_matches_numpy_linear_interpolation() {
    let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
    // np.quantile(v, [0.05, 0.3, 0.5, 0.95]) == [1.0, 2.1, 3.5, 7.95]
    for (q, want) in [(0.05, 1.0), (0.3, 2.1), (0.5, 3.5), (0.95, 7.95)] {
        assert!(close(quantile(&v, q), want, 1e-15), "q {q}");
    }
    assert_eq!(quantile(&v, 0.0), 1.0);
    assert_eq!(quantile(&v, 1.0), 9.0);
    assert_eq!(quantile(&[7.0], 0.3), 7.0);
    let ramp: Vec<f64> = (0..=100).map(f64::from).collect();
    assert_eq!(quantile(&ramp, 0.05), 5.0);
    assert!(quantile(&[], 0.5).is_nan());
    assert!(quantile(&v, 1.5).is_nan());
    assert!(quantile(&v, -0.1).is_nan());
    assert!(quantile(&v, f64::NAN).is_nan());
    assert!(quantile(&[1.0, f64::NAN, 2.0], 0.5).is_nan());
}

#[test]
fn ndtri_matches_scipy() {
    // scipy.special.ndtri (scipy 1.17.1).
    let table = [
        (1e-300, -37.0470962993612),
        (1e-12, -7.034483825301131),
        (1e-06, -4.753424308822899),
        (0.001, -3.090232306167813),
        (0.025, -1.9599639845400545),
        (0.1, -1.2815515655446004),
        (0.3, -0.5244005127080409),
        (0.49, -0.02506890825871106),
        (0.5000001, 2.506628273311648e-07),
        (0.75, 0.6744897501960817),
        (0.975, 1.959963984540054),
        (0.999999, 4.753424308817087),
    ];
    for (p, want) in table {
        let got = ndtri(p);
        assert!(
            (got - want).abs() <= 1e-13 * want.abs().max(1.0),
            "ndtri({p}) = {got}, scipy {want}"
        );
    }
    assert_eq!(ndtri(0.5), 0.0);
    assert_eq!(ndtri(0.0), f64::NEG_INFINITY);
    assert_eq!(ndtri(1.0), f64::INFINITY);
    assert!(ndtri(1.5).is_nan() && ndtri(f64::NAN).is_nan());
    // Symmetric to rounding, and Φ(ndtri(p)) = p.
    for k in 1..200 {
        let p = k as f64 / 400.0;
        assert!((ndtri(p) + ndtri(1.0 - p)).abs() < 1e-14);
        assert!((normal_lower_tail(-ndtri(p)) - p).abs() < 1e-15);
    }
}

#[test]
fn fft_autocovariance_equals_the_direct_sum() {
    // One, two (a complex pair) and three chains (a pair plus a lone one).
    for (chains, n) in [(1, 2), (1, 37), (2, 5), (2, 128), (3, 37), (3, 1000)] {
        let data: Vec<f64> = (0..chains * n)
            .map(|i| normal(81, (i / n) as u64, (i % n) as u64) + 0.01 * (i % n) as f64)
            .collect();
        let c = Chains {
            data,
            chains,
            draws: n,
        };
        let fast = autocov(&c);
        assert_eq!(fast.len(), chains * n);
        for chain in 0..chains {
            let x = c.row(chain);
            let mu = x.iter().sum::<f64>() / n as f64;
            let lag0 = fast[chain];
            for k in 0..n {
                let direct: f64 = (0..n - k)
                    .map(|t| (x[t] - mu) * (x[t + k] - mu))
                    .sum::<f64>()
                    / n as f64;
                let got = fast[k * chains + chain];
                assert!(
                    (got - direct).abs() < 1e-12 * lag0,
                    "{chains}x{n} chain {chain} lag {k}: {got} vs {direct}"
                );
            }
        }
    }
}

#[test]
fn pairwise_sum_is_exact_where_it_should_be_and_ordered_like_numpy() {
    let ints: Vec<f64> = (1..=1000).map(f64::from).collect();
    assert_eq!(np_sum(&ints), 500_500.0);
    assert_eq!(np_sum(&[]), 0.0);
    // numpy: np.sum([0.1] * 10) == 1.0 (pairwise), while a running sum
    // gives 0.9999999999999999.
    assert_eq!(np_sum(&[0.1; 10]), 1.0);
    assert_ne!([0.1; 10].iter().sum::<f64>(), 1.0);
}

#[test]
fn z_scale_averages_tied_ranks() {
    let z = z_scale(&[2.0, 1.0, 2.0, 3.0]);
    // Ranks 2.5, 1, 2.5, 4 → (r − 3/8) / (4 + 1/4).
    assert_eq!(z[0], z[2]);
    assert!(close(z[0], ndtri(2.125 / 4.25), 1e-15));
    assert!(close(z[1], ndtri(0.625 / 4.25), 1e-15));
    assert!(z[1] < z[0] && z[0] < z[3]);
    assert!(z_scale(&[1.0, f64::NAN]).iter().all(|v| v.is_nan()));
}
