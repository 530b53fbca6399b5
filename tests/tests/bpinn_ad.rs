//! Automatic differentiation of the spec's Bayesian PINN (MLP 1→32→32→32→1,
//! tanh, 101 interior points, `u'' + π² sin(πx)` plus the boundary residual):
//! the θ-gradient against central finite differences and forward mode, and
//! the field derivative `u''` against finite differences in `x`.

use crux::{Activation, Crux, Domain, Net, PI};
use crux_compiler::ad::jvp;
use crux_ir::graph::{eval, DType, Tensor};
use crux_samples::problems::Bpinn;

/// Fourth-order central differences per component (five-point stencil,
/// `h = 1e-4`: truncation ~h⁴, rounding ~ε·|log p|/h ≈ 5e-11): each
/// gradient entry within `1e-6` relative, measured against
/// `max(|g_k|, 10⁻³‖g‖∞)` so that entries near zero are judged on the
/// gradient's scale (their FD error is absolute, not relative). A third of
/// the components, spread over every layer, keeps the dev-profile test to
/// seconds; the directional checks below cover all components at once.
#[test]
fn theta_gradient_matches_finite_differences() {
    let bp = Bpinn::new(0).unwrap();
    let ld = bp.log_density().unwrap();
    assert_eq!(ld.dim(), 2209);
    let theta = ld.initial_position().to_vec();
    let (_, g) = ld.logp_and_grad(&theta).unwrap();
    let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let h = 1e-4;
    let mut worst = 0.0f64;
    let at = |k: usize, d: f64| {
        let mut t = theta.clone();
        t[k] += d;
        ld.logp(&t).unwrap()
    };
    for k in (0..theta.len()).step_by(3) {
        let fd = (8.0 * (at(k, h) - at(k, -h)) - (at(k, 2.0 * h) - at(k, -2.0 * h))) / (12.0 * h);
        let err = (fd - g[k]).abs() / g[k].abs().max(1e-3 * gmax);
        worst = worst.max(err);
        assert!(
            err <= 1e-6,
            "component {k} ({}): fd {fd} vs reverse {}",
            slot_name(&ld, k),
            g[k]
        );
    }
    eprintln!("worst relative FD error over sampled components: {worst:.2e}");
}

fn slot_name(ld: &crux::LogDensity, k: usize) -> String {
    ld.layout()
        .iter()
        .find(|s| (s.offset..s.offset + s.len).contains(&k))
        .map(|s| format!("{}[{}]", s.name, k - s.offset))
        .unwrap_or_default()
}

/// Directional derivatives along random directions: finite differences,
/// reverse mode (`∇ log p · u`) and forward mode (a JVP of the traced
/// log-density) agree; forward and reverse to 1e-10, FD to 1e-6.
#[test]
fn forward_reverse_and_fd_agree_along_directions() {
    let bp = Bpinn::new(0).unwrap();
    let ld = bp.log_density().unwrap();
    let theta = ld.initial_position().to_vec();
    let (_, g) = ld.logp_and_grad(&theta).unwrap();

    // Forward mode on the traced graph, with one tangent slot per leaf.
    let mut traced = ld.stage_graph("traced").unwrap().clone();
    let logp = traced.output("logp").unwrap();
    let n_slots = traced.params().len();
    let mut seeds = Vec::new();
    for i in 0..n_slots {
        let info = traced.params()[i].clone();
        let t = traced.add_param(
            format!("tangent.{}", info.name),
            DType::F64,
            info.shape.clone(),
        );
        let pn = traced.param(crux_ir::ParamId(i as u32)).unwrap();
        let tn = traced.param(t).unwrap();
        seeds.push((pn, tn));
    }
    let tangent = jvp(&mut traced, &[logp], &seeds).unwrap()[0].unwrap();
    traced.set_output("tangent", tangent);

    for dir in 0..3u64 {
        let u: Vec<f64> = (0..theta.len() as u64)
            .map(|i| 2.0 * crux_ir::rng::uniform(11, dir, i) - 1.0)
            .collect();
        let rev: f64 = g.iter().zip(&u).map(|(a, b)| a * b).sum();
        let split = |v: &[f64]| -> Vec<Tensor> {
            ld.layout()
                .iter()
                .map(|s| {
                    Tensor::new(
                        DType::F64,
                        s.shape.clone(),
                        v[s.offset..s.offset + s.len].to_vec(),
                    )
                    .unwrap()
                })
                .collect()
        };
        let mut args = split(&theta);
        args.extend(split(&u));
        let out = eval(&traced, &args).unwrap();
        let fwd = out[traced
            .outputs()
            .iter()
            .position(|(n, _)| n == "tangent")
            .unwrap()]
        .data[0];
        assert!(
            (fwd - rev).abs() <= 1e-10 * rev.abs(),
            "forward {fwd} vs reverse {rev}"
        );
        let h = 1e-6;
        let tp: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + h * d).collect();
        let tm: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t - h * d).collect();
        let fd = (ld.logp(&tp).unwrap() - ld.logp(&tm).unwrap()) / (2.0 * h);
        assert!(
            (fd - rev).abs() <= 1e-6 * rev.abs(),
            "fd {fd} vs reverse {rev}"
        );
    }
}

/// `u''` by nested forward mode against the central second difference of
/// `u` evaluated on the points shifted by ±h (h = 1e-3: truncation error
/// ~h²·u''''/12, rounding ~ε·u/h², both far below the tolerance).
#[test]
fn second_derivative_matches_finite_differences() {
    let bp = Bpinn::new(0).unwrap();
    let uxx = bp.problem.eval(bp.u.dd(&bp.x)).unwrap();
    let ux = bp.problem.eval(bp.u.d(&bp.x)).unwrap();
    let h = 1e-3;
    let shifted = |dx: f64| {
        let d = Domain::line(dx, 1.0 + dx, 0.01).unwrap();
        let xs = d.variable("interior").unwrap();
        bp.problem.eval(bp.net.call(&[&xs])).unwrap()
    };
    let (up, u0, um) = (shifted(h), bp.problem.eval(&bp.u).unwrap(), shifted(-h));
    for i in 0..uxx.len() {
        let fd2 = (up[[i, 0]] - 2.0 * u0[[i, 0]] + um[[i, 0]]) / (h * h);
        let fd1 = (up[[i, 0]] - um[[i, 0]]) / (2.0 * h);
        assert!(
            (fd2 - uxx[[i, 0]]).abs() <= 1e-5 * uxx[[i, 0]].abs().max(1e-2),
            "u'' at point {i}: fd {fd2} vs AD {}",
            uxx[[i, 0]]
        );
        assert!(
            (fd1 - ux[[i, 0]]).abs() <= 1e-6 * ux[[i, 0]].abs().max(1e-2),
            "u' at point {i}: fd {fd1} vs AD {}",
            ux[[i, 0]]
        );
    }
}

/// Mixed partials in 2-D: `∂²u/∂x∂y` of a network on a rectangle, both
/// orders of differentiation, against a central finite difference.
#[test]
fn mixed_partials_in_2d() {
    let dom = Domain::rectangle((0.0, 1.0), (0.0, 0.5), 0.25).unwrap();
    let v = dom.variables("interior").unwrap();
    let (x, y) = (&v[0], &v[1]);
    let net = Net::mlp(2, 1, 8, 2, Activation::Tanh, 3).unwrap();
    let u = net.call(&[x, y]);
    let problem = Crux::new([(u.clone() - (PI * x).sin()).mse()]).unwrap();
    let uxy = problem.eval(u.d(x).d(y)).unwrap();
    let uyx = problem.eval(u.d(y).d(x)).unwrap();
    let pts = dom.points("interior").unwrap();
    let h = 1e-4;
    let at = |dx: f64, dy: f64| {
        let d = Domain::rectangle((dx, 1.0 + dx), (dy, 0.5 + dy), 0.25).unwrap();
        let w = d.variables("interior").unwrap();
        problem.eval(net.call(&[&w[0], &w[1]])).unwrap()
    };
    let (pp, pm, mp, mm) = (at(h, h), at(h, -h), at(-h, h), at(-h, -h));
    for i in 0..pts.nrows() {
        let fd = (pp[[i, 0]] - pm[[i, 0]] - mp[[i, 0]] + mm[[i, 0]]) / (4.0 * h * h);
        assert!((uxy[[i, 0]] - uyx[[i, 0]]).abs() <= 1e-12 * uxy[[i, 0]].abs().max(1.0));
        assert!(
            (fd - uxy[[i, 0]]).abs() <= 1e-5 * uxy[[i, 0]].abs().max(1e-2),
            "point {i}: fd {fd} vs AD {}",
            uxy[[i, 0]]
        );
    }
}
