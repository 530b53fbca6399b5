//! Masked groups of one network: pattern A (a masked group sampled, the
//! rest frozen), B (masked group sampled, the rest trained by the
//! network's optimiser), D (disjoint groups, each its own kernel), and the
//! configuration errors. Checked against exact answers: with every hidden
//! layer frozen, a network's output layer is a linear model of fixed
//! features, so its posterior is Gaussian in closed form.

use crux::{
    Activation, Bayesian, Crux, Domain, Error, Expr, Mask, Model, Net, Optimizer, Param,
    SolveOptions, PI,
};
use crux_tests::stats::within_4_mcse;

/// A 1→3→1 tanh network fitted to `sin(πx)` on 21 points (scale 21/(2σ²),
/// σ = 0.1: a Gaussian likelihood), with the leaves' names.
struct Fit {
    problem: Crux,
    net: Net,
    x: Expr,
}

fn fit() -> Fit {
    let d = Domain::line(0.0, 1.0, 0.05).unwrap();
    let x = d.variable("interior").unwrap();
    let net = Net::mlp(1, 1, 3, 1, Activation::Tanh, 3).unwrap();
    let r = net.call(&[&x]) - (PI * &x).sin();
    let problem = Crux::new([r.mse()]).unwrap();
    Fit { problem, net, x }
}

fn leaf(net: &Net, name: &str) -> Param {
    net.leaves().into_iter().find(|p| p.name() == name).unwrap()
}

fn quiet() -> SolveOptions {
    SolveOptions::default().quiet()
}

const SCALE: f64 = 21.0 / (2.0 * 0.01);

/// Pattern A: the output layer (weight 1×3, bias 1) sampled with NUTS, the
/// hidden layer frozen: the draws match the exact Gaussian posterior of
/// the linear model on the hidden features, and the frozen leaves are
/// bit-constant along the chain.
#[test]
fn pattern_a_samples_the_mask_exactly_and_freezes_the_rest() {
    let f = fit();
    let before: Vec<Vec<f64>> = f.net.leaves().iter().map(Param::values).collect();
    f.net
        .mask(Mask::layers([1]))
        .bayesian(
            Bayesian::nuts()
                .warmup(500)
                .keep(2000)
                .likelihood_scale(SCALE),
        )
        .unwrap();
    f.problem.solve_with(2500, &quiet()).unwrap();
    let post = f.net.posterior().unwrap();
    assert_eq!(post.leaves.len(), 4, "the full tree");
    // Frozen leaves: constant along the chain, equal to their value.
    for (p, v) in f.net.leaves().iter().zip(&before).take(2) {
        let s = post.leaf(p.name()).unwrap();
        assert!(s
            .iter()
            .zip(v.iter().cycle())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(&p.values(), v, "{} stays at its value", p.name());
    }
    // Exact posterior of (w, b) of y = w·h(x) + b with h the frozen hidden
    // features: precision P = 2·scale/N·ΦᵀΦ + I/100, mean P⁻¹ 2·scale/N Φᵀy.
    let w0 = leaf(&f.net, "net.layers.0.weight").values();
    let b0 = leaf(&f.net, "net.layers.0.bias").values();
    let xs: Vec<f64> = f.problem.eval(&f.x).unwrap().iter().copied().collect();
    let n = xs.len();
    let phi: Vec<[f64; 4]> = xs
        .iter()
        .map(|x| {
            let h = |j: usize| (w0[j] * x + b0[j]).tanh();
            [h(0), h(1), h(2), 1.0]
        })
        .collect();
    let y: Vec<f64> = xs.iter().map(|x| (PI * x).sin()).collect();
    let c = 2.0 * SCALE / n as f64;
    let mut p = [[0.0; 4]; 4];
    let mut rhs = [0.0; 4];
    for (row, yi) in phi.iter().zip(&y) {
        for a in 0..4 {
            rhs[a] += c * row[a] * yi;
            for b in 0..4 {
                p[a][b] += c * row[a] * row[b];
            }
        }
    }
    (0..4).for_each(|a| p[a][a] += 1.0 / 100.0);
    let cov = invert4(p);
    let mean: Vec<f64> = (0..4)
        .map(|a| (0..4).map(|b| cov[a][b] * rhs[b]).sum())
        .collect();
    let w = post.entry(2, 0).unwrap();
    let bias = post.entry(3, 0).unwrap();
    within_4_mcse(&w, mean[0], "w[0]");
    within_4_mcse(&bias, mean[3], "bias");
    within_4_mcse(&w.mapv(|v| (v - mean[0]).powi(2)), cov[0][0], "var w[0]");
}

fn invert4(m: [[f64; 4]; 4]) -> [[f64; 4]; 4] {
    // Gauss–Jordan with partial pivoting.
    let mut a = m;
    let mut inv = [[0.0; 4]; 4];
    (0..4).for_each(|i| inv[i][i] = 1.0);
    for col in 0..4 {
        let piv = (col..4)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, piv);
        inv.swap(col, piv);
        let d = a[col][col];
        for k in 0..4 {
            a[col][k] /= d;
            inv[col][k] /= d;
        }
        for r in 0..4 {
            if r != col {
                let f = a[r][col];
                for k in 0..4 {
                    a[r][k] -= f * a[col][k];
                    inv[r][k] -= f * inv[col][k];
                }
            }
        }
    }
    inv
}

/// Pattern B: the hidden layer trained by the network's Adam, the output
/// layer sampled: the body moves (recorded along the chain), the loss goes
/// down, the head has draws.
#[test]
fn pattern_b_trains_the_body_and_samples_the_head() {
    let f = fit();
    let w0 = leaf(&f.net, "net.layers.0.weight").values();
    f.net.optimizer(Optimizer::adam(1e-2)).unwrap();
    f.net
        .mask(Mask::layers([1]))
        .bayesian(
            Bayesian::sgld()
                .step_size(1e-6)
                .warmup(300)
                .keep(100)
                .likelihood_scale(SCALE),
        )
        .unwrap();
    let loss0 = f.problem.loss_value().unwrap();
    let sol = f.problem.solve_with(400, &quiet()).unwrap();
    assert!(f.problem.loss_value().unwrap() < loss0);
    assert_ne!(
        leaf(&f.net, "net.layers.0.weight").values(),
        w0,
        "the body trained"
    );
    let post = sol.posterior(&f.net).unwrap();
    assert_eq!(post.kernel, "sgld");
    let body = post.leaf("net.layers.0.weight").unwrap();
    assert_eq!(body.shape(), &[1, 100, 3, 1]);
    assert_ne!(
        body[[0, 0, 0, 0]],
        body[[0, 99, 0, 0]],
        "recorded as it trains"
    );
    // The last recorded body is the network's value (chain 0's last sweep).
    assert_eq!(
        body[[0, 99, 0, 0]],
        leaf(&f.net, "net.layers.0.weight").values()[0]
    );
    assert_eq!(sol.models.len(), 1);
    assert_eq!(sol.models[0].name, "net[layers.1.weight, layers.1.bias]");
}

/// Pattern D: two disjoint groups, each with its own kernel, in one Gibbs
/// sweep; the posterior holds both groups' draws; the same bits on the
/// interpreter and Cranelift.
#[test]
fn pattern_d_disjoint_groups_each_with_a_kernel() {
    let run = |backend: crux::Backend| {
        let f = fit();
        let sched = |b: Bayesian| b.warmup(50).keep(30).likelihood_scale(SCALE);
        f.net
            .mask(Mask::leaves(["net.layers.1.weight"]))
            .bayesian(sched(Bayesian::nuts()))
            .unwrap();
        f.net
            .mask(Mask::leaves(["net.layers.1.bias"]))
            .bayesian(sched(Bayesian::mala().step_size(1e-3)))
            .unwrap();
        let sol = f.problem.solve_with(80, &quiet().backend(backend)).unwrap();
        assert_eq!(sol.models.len(), 2);
        let post = f.net.posterior().unwrap();
        assert_eq!(post.kernel, "nuts+mala");
        post.leaves
            .iter()
            .flat_map(|l| l.samples.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<u64>>()
    };
    let a = run(crux::Backend::Cranelift);
    assert_eq!(a, run(crux::Backend::Interpreter));
}

/// Masks that name nothing, overlap, or mix with a global `.bayesian(..)`
/// are errors naming the model; so are groups of one model with different
/// schedules.
#[test]
fn mask_errors_name_the_model() {
    let f = fit();
    let is_mask_err = |e: &Error, needle: &str| {
        assert!(
            matches!(e, Error::Mask { model, .. } if model == "net"),
            "{e:?}"
        );
        assert!(e.to_string().contains(needle), "{e}");
    };
    let nuts = || Bayesian::nuts().warmup(10).keep(10);
    let e = f
        .net
        .mask(Mask::leaves(["net.nope"]))
        .bayesian(nuts())
        .unwrap_err();
    is_mask_err(&e, "has no leaf `net.nope`");
    let e = f.net.mask(Mask::layers([7])).bayesian(nuts()).unwrap_err();
    is_mask_err(&e, "has no layer 7");
    let e = f
        .net
        .mask(Mask::leaves(Vec::<String>::new()))
        .bayesian(nuts())
        .unwrap_err();
    is_mask_err(&e, "selects no leaf");
    f.net.mask(Mask::layers([1])).bayesian(nuts()).unwrap();
    let e = f
        .net
        .mask(Mask::leaves(["net.layers.1.bias"]))
        .bayesian(nuts())
        .unwrap_err();
    is_mask_err(&e, "overlaps");
    let e = f.net.bayesian(nuts()).unwrap_err();
    is_mask_err(&e, "masked groups");
    f.net
        .mask(Mask::layers([0]))
        .bayesian(Bayesian::nuts().warmup(10).keep(20))
        .unwrap();
    let e = f.problem.solve_with(100, &quiet()).unwrap_err();
    is_mask_err(&e, "different schedules");
    f.net.clear_masks();
    f.net.bayesian(nuts()).unwrap();
    let e = f.net.mask(Mask::layers([0])).bayesian(nuts()).unwrap_err();
    is_mask_err(&e, "global .bayesian");
}

/// Pattern A with an entry mask on a linear model: `c = (c0, c1, c2)` in
/// `c0 + c1 x + c2 x²` with `c1` held at 1.7 by the mask: the masked
/// entries' draws match their exact conditional posterior given `c1`, and
/// `c1` is bit-constant along the chain.
#[test]
fn entry_mask_samples_exactly_the_masked_coefficients() {
    let d = Domain::line(0.0, 1.0, 0.05).unwrap();
    let x = d.variable("interior").unwrap();
    let c = Param::new("c", [3]);
    c.set_values(&[0.0, 1.7, 0.0]).unwrap();
    let y = 1.0 + 2.0 * &x - &x * &x + crux::noise::gaussian(0.1);
    let r = c.at(0) + c.at(1) * &x + c.at(2) * (&x * &x) - &y;
    let problem = Crux::new([r.mse()]).unwrap().with_seed(3);
    c.mask(Mask::entries("c", [true, false, true]))
        .bayesian(
            Bayesian::nuts()
                .warmup(500)
                .keep(3000)
                .likelihood_scale(SCALE),
        )
        .unwrap();
    problem.solve_with(3500, &quiet()).unwrap();
    let post = c.posterior().unwrap();
    let c1 = post.entry(0, 1).unwrap();
    assert!(
        c1.iter().all(|v| v.to_bits() == 1.7f64.to_bits()),
        "c1 is held"
    );
    assert_eq!(c.values()[1], 1.7);
    // Exact: features (1, x²), target y − 1.7 x, precision 2·scale/N ΦᵀΦ + I/100.
    let xs: Vec<f64> = problem.eval(&x).unwrap().iter().copied().collect();
    let ys: Vec<f64> = problem.eval(&y).unwrap().iter().copied().collect();
    let k = 2.0 * SCALE / xs.len() as f64;
    let (mut p, mut rhs) = ([[0.0; 2]; 2], [0.0; 2]);
    for (xi, yi) in xs.iter().zip(&ys) {
        let phi = [1.0, xi * xi];
        for a in 0..2 {
            rhs[a] += k * phi[a] * (yi - 1.7 * xi);
            for b in 0..2 {
                p[a][b] += k * phi[a] * phi[b];
            }
        }
    }
    p[0][0] += 0.01;
    p[1][1] += 0.01;
    let det = p[0][0] * p[1][1] - p[0][1] * p[1][0];
    let cov = [
        [p[1][1] / det, -p[0][1] / det],
        [-p[1][0] / det, p[0][0] / det],
    ];
    let mean = [
        cov[0][0] * rhs[0] + cov[0][1] * rhs[1],
        cov[1][0] * rhs[0] + cov[1][1] * rhs[1],
    ];
    for (j, e) in [(0, 0), (1, 2)] {
        let draws = post.entry(0, e).unwrap();
        within_4_mcse(&draws, mean[j], &format!("c{e}: mean"));
        within_4_mcse(
            &draws.mapv(|v| (v - mean[j]).powi(2)),
            cov[j][j],
            &format!("c{e}: variance"),
        );
    }
}

/// Entry masks of the wrong length, selecting nothing, or naming another
/// leaf are errors naming the model.
#[test]
fn entry_mask_errors() {
    let c = Param::new("c", [3]);
    let nuts = || Bayesian::nuts().warmup(10).keep(10);
    let msg = |m: Mask| c.mask(m).bayesian(nuts()).unwrap_err().to_string();
    assert!(msg(Mask::entries("c", [true])).contains("has 1 flags, the leaf has 3 entries"));
    assert!(msg(Mask::entries("c", [false; 3])).contains("selects no entry"));
    assert!(msg(Mask::entries("d", [true; 3])).contains("has no leaf `d`"));
}
