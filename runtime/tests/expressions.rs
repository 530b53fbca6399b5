//! Expression building: shapes, broadcasting, and errors as values.

use crux::{noise, Crux, Domain, Error, Expr, Param, PI};

fn line() -> (Domain, Expr) {
    let d = Domain::line(0.0, 1.0, 0.1).unwrap();
    let x = d.variable("interior").unwrap();
    (d, x)
}

#[test]
fn shapes_broadcast_numpy_style() {
    let (_, x) = line();
    let a = Param::new("a", [1]);
    assert_eq!(x.shape(), &[11, 1]);
    assert_eq!((&a * &x).shape(), &[11, 1]);
    assert_eq!((2.0 * &x + 1.0).shape(), &[11, 1]);
    assert_eq!(a.at(0).shape(), &[] as &[usize]);
    assert_eq!(x.sum().shape(), &[] as &[usize]);
    assert_eq!(x.mean_axes(&[0]).shape(), &[1]);
    assert_eq!(x.t().shape(), &[1, 11]);
    assert_eq!(x.t().matmul(&x).shape(), &[1, 1]);
    assert_eq!(x.slice(0, 2..11, 3).shape(), &[3, 1]);
    assert_eq!(x.reshape(&[11]).shape(), &[11]);
    assert_eq!(Expr::concat(&[&x, &x], 1).shape(), &[11, 2]);
    assert_eq!(x.powi(3).shape(), &[11, 1]);
}

#[test]
fn shape_mismatch_names_the_expression() {
    let (_, x) = line();
    let v = Param::new("v", [2, 3]);
    let bad = &v * &x + 1.0;
    let e = bad.check().unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("v * x@interior"), "{msg}");
    assert!(msg.contains("[2,3]") && msg.contains("[11,1]"), "{msg}");
    // The error survives further operations and reaches Crux::new.
    let r = (bad.sin() * 2.0).mse();
    assert!(matches!(Crux::new([r]), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn mixed_domains_are_rejected() {
    let (_, x) = line();
    let (_, x2) = line();
    assert!(matches!(
        (&x + &x2).check(),
        Err(Error::MixedDomains { .. })
    ));
    // Each constraint on its own domain: rejected by the problem.
    let r = Crux::new([x.mse(), x2.mse()]);
    assert!(matches!(r, Err(Error::MixedDomains { .. })));
    assert!(matches!(x.d(&x2).check(), Err(Error::MixedDomains { .. })));
}

#[test]
fn non_finite_constants_are_rejected() {
    let (_, x) = line();
    assert!(matches!(
        (&x * f64::NAN).check(),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        (f64::INFINITY + &x).check(),
        Err(Error::NonFinite { .. })
    ));
    let arr = ndarray::arr1(&[1.0, f64::NEG_INFINITY]);
    assert!(matches!(
        Expr::array(&arr).check(),
        Err(Error::NonFinite { .. })
    ));
    assert!(Param::new("p", [2]).set_values(&[1.0, f64::NAN]).is_err());
}

#[test]
fn invalid_operations_explain_themselves() {
    let (_, x) = line();
    let cases: Vec<(Expr, &str)> = vec![
        (x.sum_axes(&[2]), "axis 2 is out of range"),
        (x.matmul(&x), "needs (m, k) x (k, n)"),
        (x.reshape(&[5, 2]), "cannot reshape 11 elements"),
        (x.slice(0, 5..20, 1), "outside 0..11"),
        (x.slice(0, 0..5, 0), "step 0"),
        (x.at(11), "index 11 is out of range"),
        (x.permute(&[0, 0]), "not a permutation"),
        (x.d(&(2.0 * &x)), "coordinate variable"),
        (x.sum().t(), "rank-2"),
    ];
    for (e, needle) in cases {
        let msg = e.check().unwrap_err().to_string();
        assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    }
}

#[test]
fn noise_parameters_are_validated() {
    let (_, x) = line();
    assert!((x.clone() + noise::gaussian(-1.0)).check().is_err());
    assert!((x.clone() + noise::uniform(2.0, 1.0)).check().is_err());
    assert!((x.clone() + noise::laplace(f64::NAN)).check().is_err());
    let ok = x.clone() + noise::uniform(-0.5, 0.5);
    let p = Crux::new([(ok.clone() - &x).mse()]).unwrap();
    let v = p.eval(&(ok - &x)).unwrap();
    assert!(v.iter().all(|n| (-0.5..0.5).contains(n)));
}

#[test]
fn derivative_of_a_field_at_other_points_is_an_error() {
    let d = Domain::line(0.0, 1.0, 0.1).unwrap();
    let x = d.variable("interior").unwrap();
    let xb = d.variable("boundary").unwrap();
    let f = (PI * &xb).sin();
    let p = Crux::new([f.d(&x).mse()]);
    let e = p.and_then(|p| p.eval(f.d(&x))).unwrap_err();
    assert!(e.to_string().contains("other points"), "{e}");
    // A field that does not depend on the coordinate at all has derivative zero.
    let a = Param::new("a", [1]).with_constant(2.0).unwrap();
    let p = Crux::new([(&a * &x).mse()]).unwrap();
    assert!(p.eval((&a * &x).dd(&x)).unwrap().iter().all(|v| *v == 0.0));
    assert!(p.eval((&a * &x).d(&x)).unwrap().iter().all(|v| *v == 2.0));
}

#[test]
fn deep_expressions_do_not_overflow_the_stack() {
    let (_, x) = line();
    let mut e = x.clone();
    for _ in 0..100_000 {
        e = e * 1.0 + 0.0;
    }
    let p = Crux::new([(e.clone() - &x).mse()]).unwrap();
    assert_eq!(p.eval(&e).unwrap(), p.eval(&x).unwrap());
}

#[test]
fn display_is_readable() {
    let (_, x) = line();
    let a = Param::new("a", [1]);
    assert_eq!(
        (&a * (PI * &x).sin()).to_string(),
        format!("(a * sin(({PI} * x@interior)))")
    );
}

#[test]
fn absurd_parameter_shapes_are_errors_not_aborts() {
    let (_, x) = line();
    let huge = Param::new("huge", [1 << 20, 1 << 20]);
    let r = Crux::new([(&x * huge.expr().sum()).mse()]);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("huge") && e.contains("entries"), "{e}");
    let overflow = Param::new("overflow", [usize::MAX, 4]);
    assert!(Crux::new([(&x * overflow.expr().sum()).mse()]).is_err());
    let empty = Param::new("empty", [0]);
    assert!(Crux::new([(&x * empty.expr().sum()).mse()]).is_err());
}

#[test]
fn powi_zero_is_one_everywhere() {
    let (_, x) = line();
    let p = Crux::new([x.mse()]).unwrap();
    assert!(p.eval(x.powi(0)).unwrap().iter().all(|v| *v == 1.0));
    assert!(p
        .eval((&x - 0.55).powi(-2))
        .unwrap()
        .iter()
        .zip(p.eval(&x).unwrap().iter())
        .all(|(v, x)| (v - 1.0 / ((x - 0.55) * (x - 0.55))).abs() <= 1e-12 * v.abs()));
}

/// Values, not only shapes, of the structural operations.
#[test]
fn structural_operations_compute_the_right_values() {
    let m = Expr::array(&ndarray::arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
    let d = Domain::line(0.0, 1.0, 0.5).unwrap();
    let x = d.variable("interior").unwrap();
    let p = Crux::new([x.mse()]).unwrap();
    let v = |e: &Expr| p.eval(e).unwrap().iter().copied().collect::<Vec<f64>>();
    assert_eq!(v(&m.sum_axes(&[0])), [5.0, 7.0, 9.0]);
    assert_eq!(v(&m.mean_axes(&[1])), [2.0, 5.0]);
    assert_eq!(
        v(&m.mean_axes(&[1, 1])),
        [2.0, 5.0],
        "a repeated axis counts once"
    );
    assert_eq!(v(&m.mean()), [3.5]);
    assert_eq!(v(&m.t()), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(v(&m.permute(&[1, 0])), v(&m.t()));
    assert_eq!(v(&m.slice(1, 0..3, 2)), [1.0, 3.0, 4.0, 6.0]);
    assert_eq!(v(&m.at(1)), [4.0, 5.0, 6.0]);
    assert_eq!(v(&m.reshape(&[3, 2])), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        v(&Expr::concat(&[&m, &m.at(0).reshape(&[1, 3])], 0)),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(v(&m.matmul(&m.t())), [14.0, 32.0, 32.0, 77.0]);
    assert_eq!(v(&(m.clone() - 3.5).relu()), [0.0, 0.0, 0.0, 0.5, 1.5, 2.5]);
    assert_eq!(v(&m.max(4.0)), [4.0, 4.0, 4.0, 4.0, 5.0, 6.0]);
    assert_eq!(v(&m.powi(3)), [1.0, 8.0, 27.0, 64.0, 125.0, 216.0]);
    assert_eq!(v(&x.square().d(&x)), [0.0, 1.0, 2.0]);
}

/// `x⁰` is 1 and its derivative 0 everywhere, including at x = 0.
#[test]
fn powi_zero_has_zero_derivative_at_zero() {
    let (_, x) = line();
    let a = Param::new("a", [1]).with_constant(2.0).unwrap();
    let p = Crux::new([(&a * &x).powi(0).mse()]).unwrap();
    assert!(p.eval(x.powi(0).d(&x)).unwrap().iter().all(|v| *v == 0.0));
    let ld = p
        .log_density()
        .sample(&a, crux::Prior::default())
        .build()
        .unwrap();
    let (lp, g) = ld.logp_and_grad(&[2.0]).unwrap();
    assert!(lp.is_finite() && g[0] == -2.0 / 100.0, "{lp} {g:?}");
}

#[test]
fn limits_are_errors_not_aborts() {
    // More than 255 axes.
    let deep = Param::new("deep", vec![1; 300]);
    assert!(deep
        .expr()
        .check()
        .unwrap_err()
        .to_string()
        .contains("at most 255 axes"));
    // A broadcast whose result would not fit in memory.
    let d = Domain::line(0.0, 1.0, 1e-6).unwrap();
    let x = d.variable("interior").unwrap();
    let wide = Param::new("wide", [1, 1 << 20]);
    let e = (&x * &wide).check().unwrap_err().to_string();
    assert!(e.contains("elements"), "{e}");
    // Networks too large, or with widths whose product overflows.
    assert!(crux::Net::mlp(usize::MAX, 1, 2, 1, crux::Activation::Tanh, 0).is_err());
    assert!(crux::Net::mlp(1, 1, 100_000, 2, crux::Activation::Tanh, 0).is_err());
    assert!(crux::Net::mlp(1, 1, 2, usize::MAX, crux::Activation::Tanh, 0).is_err());
    // Parameters without storage say so instead of aborting.
    let huge = Param::new("huge", [1 << 20, 1 << 20]);
    assert!(huge.value().is_err());
    assert!(huge.clone().with_constant(1.0).is_err());
    assert!(huge.with_normal(1.0, 0).is_err());
}

#[test]
fn noise_with_extreme_parameters_is_an_error() {
    let (_, x) = line();
    let wide = x.clone() + noise::uniform(-1e308, 1e308);
    let p = Crux::new([(wide.clone() - &x).mse()]).unwrap();
    let v = p.eval(&wide).unwrap();
    assert!(
        v.iter().all(|v| v.is_finite()),
        "convex combination never overflows"
    );
    let huge = x.clone() + noise::gaussian(1e308);
    let p = Crux::new([(huge.clone() - &x).mse()]).unwrap();
    let e = p.eval(&huge).unwrap_err().to_string();
    assert!(e.contains("must be finite"), "{e}");
}

#[test]
fn shape_messages_name_the_real_problem() {
    let (_, x) = line();
    let e = Expr::concat(&[&x, &x], 2).check().unwrap_err().to_string();
    assert!(e.contains("axis 2 is out of range"), "{e}");
    let net = crux::Net::mlp(1, 1, 4, 1, crux::Activation::Tanh, 0).unwrap();
    let e = net
        .call(&[&x.reshape(&[11])])
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("reshape it to (P, 1)"), "{e}");
    assert!(crux::Prior::gaussian(1e-200).check().is_err());
}
