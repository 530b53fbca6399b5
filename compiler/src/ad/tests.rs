//! Every op's JVP and VJP rules, checked two ways: the dot-product test
//! (`⟨v, J u⟩` from forward mode equals `⟨Jᵀ v, u⟩` from reverse mode) and
//! central finite differences of `⟨v, f(x + h u)⟩` along a random direction.

use super::*;
use crux_ir::graph::{eval, BinaryOp, CmpOp, DType, Graph, NodeId, Shape, Tensor, UnaryOp};

/// Test inputs from the counter-based generator: draw `n` of stream `seed`.
struct Rng {
    seed: u64,
    n: u64,
}
impl Rng {
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        self.n += 1;
        lo + (hi - lo) * crux_ir::rng::uniform(self.seed, 0, self.n)
    }
}

type Build = fn(&mut Graph, &[NodeId]) -> NodeId;

struct Case {
    name: &'static str,
    shapes: &'static [&'static [usize]],
    domain: (f64, f64),
    build: Build,
    /// Relative tolerance of the finite-difference check (`None`: skipped,
    /// for piecewise-constant or f32-rounded functions).
    fd_tol: Option<f64>,
    /// Relative tolerance of the dot-product test: 1e-10 in f64, looser
    /// where the function rounds through f32 (forward and reverse round
    /// their tangents in f32 at different places).
    dot_tol: f64,
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| x * y).sum()
}

fn check(case: &Case, seed: u64) {
    let mut rng = Rng { seed, n: 0 };
    let mut g = Graph::new();
    let ps: Vec<_> = case
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.add_param(format!("x{i}"), DType::F64, s.to_vec()))
        .collect();
    let xs: Vec<NodeId> = ps.iter().map(|p| g.param(*p).unwrap()).collect();
    let y = (case.build)(&mut g, &xs);
    let ys = g.node(y).shape.clone();
    let us: Vec<_> = case
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.add_param(format!("u{i}"), DType::F64, s.to_vec()))
        .collect();
    let vp = g.add_param("v", DType::F64, ys.clone());
    let un: Vec<NodeId> = us.iter().map(|p| g.param(*p).unwrap()).collect();
    let vn = g.param(vp).unwrap();
    let seeds: Vec<(NodeId, NodeId)> = xs.iter().copied().zip(un.iter().copied()).collect();
    let ty = jvp(&mut g, &[y], &seeds).unwrap()[0];
    let grads = vjp(&mut g, y, vn, &xs).unwrap();
    crux_ir::graph::verify(&g).unwrap();
    g.set_output("y", y);
    let ty = ty.unwrap_or_else(|| g.constant_like(0.0, y).unwrap());
    g.set_output("ty", ty);
    for (i, gr) in grads.iter().enumerate() {
        g.set_output(format!("g{i}"), *gr);
    }

    let draw = |rng: &mut Rng, s: &Shape, lo: f64, hi: f64| {
        Tensor::f64(
            s.clone(),
            (0..s.numel()).map(|_| rng.range(lo, hi)).collect(),
        )
        .unwrap()
    };
    let x: Vec<Tensor> = case
        .shapes
        .iter()
        .map(|s| draw(&mut rng, &Shape::from(*s), case.domain.0, case.domain.1))
        .collect();
    let u: Vec<Tensor> = case
        .shapes
        .iter()
        .map(|s| draw(&mut rng, &Shape::from(*s), -1.0, 1.0))
        .collect();
    let v = draw(&mut rng, &ys, -1.0, 1.0);
    let args =
        |x: &[Tensor]| -> Vec<Tensor> { x.iter().chain(&u).cloned().chain([v.clone()]).collect() };
    let out = eval(&g, &args(&x)).unwrap();
    let fwd = dot(&v, &out[1]);
    let rev: f64 = (0..x.len()).map(|i| dot(&out[2 + i], &u[i])).sum();
    let scale = fwd.abs().max(rev.abs()).max(1e-12);
    assert!(
        (fwd - rev).abs() <= case.dot_tol * scale,
        "{}: dot-product test failed: forward {fwd} vs reverse {rev}",
        case.name
    );
    if let Some(tol) = case.fd_tol {
        let h = 1e-5;
        let shifted = |sign: f64| -> f64 {
            let xh: Vec<Tensor> = x
                .iter()
                .zip(&u)
                .map(|(xi, ui)| {
                    Tensor::f64(
                        xi.shape.clone(),
                        xi.data
                            .iter()
                            .zip(&ui.data)
                            .map(|(a, b)| a + sign * h * b)
                            .collect(),
                    )
                    .unwrap()
                })
                .collect();
            dot(&v, &eval(&g, &args(&xh)).unwrap()[0])
        };
        let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
        assert!(
            (fd - fwd).abs() <= tol * fwd.abs().max(1e-3),
            "{}: finite differences {fd} vs forward mode {fwd}",
            case.name
        );
    }
}

fn un(op: UnaryOp) -> Build {
    // Non-capturing closures per op, selected by a match so `Case` stays `fn`.
    macro_rules! f {
        ($op:expr) => {
            |g: &mut Graph, x: &[NodeId]| g.unary($op, x[0]).unwrap()
        };
    }
    match op {
        UnaryOp::Neg => f!(UnaryOp::Neg),
        UnaryOp::Abs => f!(UnaryOp::Abs),
        UnaryOp::Sign => f!(UnaryOp::Sign),
        UnaryOp::Sqrt => f!(UnaryOp::Sqrt),
        UnaryOp::Recip => f!(UnaryOp::Recip),
        UnaryOp::Exp => f!(UnaryOp::Exp),
        UnaryOp::Expm1 => f!(UnaryOp::Expm1),
        UnaryOp::Log => f!(UnaryOp::Log),
        UnaryOp::Log1p => f!(UnaryOp::Log1p),
        UnaryOp::Sin => f!(UnaryOp::Sin),
        UnaryOp::Cos => f!(UnaryOp::Cos),
        UnaryOp::Tan => f!(UnaryOp::Tan),
        UnaryOp::Tanh => f!(UnaryOp::Tanh),
        UnaryOp::Sigmoid => f!(UnaryOp::Sigmoid),
        UnaryOp::Softplus => f!(UnaryOp::Softplus),
    }
}

fn bin(op: BinaryOp) -> Build {
    macro_rules! f {
        ($op:expr) => {
            |g: &mut Graph, x: &[NodeId]| g.binary($op, x[0], x[1]).unwrap()
        };
    }
    match op {
        BinaryOp::Add => f!(BinaryOp::Add),
        BinaryOp::Sub => f!(BinaryOp::Sub),
        BinaryOp::Mul => f!(BinaryOp::Mul),
        BinaryOp::Div => f!(BinaryOp::Div),
        BinaryOp::Pow => f!(BinaryOp::Pow),
        BinaryOp::Max => f!(BinaryOp::Max),
        BinaryOp::Min => f!(BinaryOp::Min),
    }
}

#[test]
fn unary_rules() {
    for op in UnaryOp::ALL {
        let domain = match op {
            UnaryOp::Sqrt | UnaryOp::Log | UnaryOp::Recip => (0.3, 3.0),
            UnaryOp::Log1p => (-0.5, 3.0),
            UnaryOp::Tan => (-1.2, 1.2),
            _ => (-2.5, 2.5),
        };
        for seed in 0..4 {
            check(
                &Case {
                    name: op.name(),
                    shapes: &[&[3, 2]],
                    domain,
                    build: un(op),
                    fd_tol: Some(1e-7),
                    dot_tol: 1e-10,
                },
                seed,
            );
        }
    }
}

#[test]
fn binary_rules() {
    for op in BinaryOp::ALL {
        let domain = match op {
            BinaryOp::Pow => (0.4, 2.0),
            BinaryOp::Div => (0.5, 2.0),
            _ => (-2.0, 2.0),
        };
        for seed in 0..4 {
            check(
                &Case {
                    name: op.name(),
                    shapes: &[&[4], &[4]],
                    domain,
                    build: bin(op),
                    fd_tol: Some(1e-7),
                    dot_tol: 1e-10,
                },
                seed,
            );
        }
    }
}

fn structural_cases() -> Vec<Case> {
    vec![
        Case {
            name: "compare+select",
            shapes: &[&[5], &[5]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let c = g.compare(CmpOp::Lt, x[0], x[1]).unwrap();
                let sq = g.mul(x[0], x[0]).unwrap();
                let s = g.unary(UnaryOp::Sin, x[1]).unwrap();
                g.select(c, sq, s).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "cast",
            shapes: &[&[3]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let f = g.cast(x[0], DType::F32).unwrap();
                let sq = g.mul(f, f).unwrap();
                let back = g.cast(sq, DType::F64).unwrap();
                g.mul(back, x[0]).unwrap()
            },
            fd_tol: None,
            dot_tol: 1e-6,
        },
        Case {
            name: "sum axis 0",
            shapes: &[&[3, 4]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let sq = g.mul(x[0], x[0]).unwrap();
                g.sum(sq, &[0]).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "sum all",
            shapes: &[&[2, 3, 2]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let e = g.unary(UnaryOp::Exp, x[0]).unwrap();
                g.sum_all(e).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "reduce_max",
            shapes: &[&[3, 4]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let t = g.unary(UnaryOp::Tanh, x[0]).unwrap();
                g.reduce_max(t, &[1]).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "broadcast",
            shapes: &[&[3, 1], &[2, 3, 4]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let b = g.broadcast(x[0], [2, 3, 4]).unwrap();
                g.mul(b, x[1]).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "reshape",
            shapes: &[&[3, 4]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let r = g.reshape(x[0], [2, 6]).unwrap();
                g.mul(r, r).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "transpose",
            shapes: &[&[2, 3, 4], &[4, 2, 3]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let t = g.transpose(x[0], &[2, 0, 1]).unwrap();
                g.mul(t, x[1]).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "slice",
            shapes: &[&[3, 7]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let s = g.slice(x[0], 1, 1, 3, 2).unwrap();
                g.mul(s, s).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "pad",
            shapes: &[&[3, 2]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let sq = g.mul(x[0], x[0]).unwrap();
                g.pad(sq, 1, 1, 3, 6).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "concat",
            shapes: &[&[2, 3], &[4, 3]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let s = g.unary(UnaryOp::Sin, x[1]).unwrap();
                let c = g.concat(&[x[0], s], 0).unwrap();
                g.mul(c, c).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "matmul",
            shapes: &[&[3, 4], &[4, 2]],
            domain: (-2.0, 2.0),
            build: |g, x| {
                let m = g.matmul(x[0], x[1]).unwrap();
                g.unary(UnaryOp::Tanh, m).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
        Case {
            name: "shared subexpression",
            shapes: &[&[4]],
            domain: (0.2, 2.0),
            build: |g, x| {
                let l = g.unary(UnaryOp::Log, x[0]).unwrap();
                let p = g.mul(l, x[0]).unwrap();
                let q = g.div(p, l).unwrap();
                g.add2(q, p).unwrap()
            },
            fd_tol: Some(1e-7),
            dot_tol: 1e-10,
        },
    ]
}

#[test]
fn structural_rules() {
    for case in structural_cases() {
        for seed in 0..4 {
            check(&case, 100 + seed);
        }
    }
}

/// Field derivatives by nested forward mode are exact on a polynomial:
/// `d²/dx² (x³) = 6x`, and mixed partials of `x² y` give `2x`.
#[test]
fn field_derivatives_of_polynomials() {
    let mut g = Graph::new();
    let xs: Vec<f64> = (0..5).map(|i| i as f64 * 0.3 - 0.4).collect();
    let d = g.add_data("x", Tensor::f64([5, 1], xs.clone()).unwrap());
    let x = g.data_node(d).unwrap();
    let x2 = g.mul(x, x).unwrap();
    let x3 = g.mul(x2, x).unwrap();
    let dd = field_derivative(&mut g, x3, x, 2).unwrap();
    let d3 = field_derivative(&mut g, x3, x, 3).unwrap();
    let d4 = field_derivative(&mut g, x3, x, 4).unwrap();
    g.set_output("dd", dd);
    g.set_output("d3", d3);
    g.set_output("d4", d4);
    let out = eval(&g, &[]).unwrap();
    for (i, xv) in xs.iter().enumerate() {
        assert_eq!(out[0].data[i], 6.0 * xv);
        assert_eq!(out[1].data[i], 6.0);
        assert_eq!(out[2].data[i], 0.0);
    }

    // Two coordinates as slices of one point set: mixed partial of x² y.
    let mut g = Graph::new();
    let pts: Vec<f64> = vec![0.5, 2.0, -1.0, 3.0, 0.25, -2.0];
    let d = g.add_data("pts", Tensor::f64([3, 2], pts.clone()).unwrap());
    let p = g.data_node(d).unwrap();
    let x = g.slice(p, 1, 0, 1, 1).unwrap();
    let y = g.slice(p, 1, 1, 1, 1).unwrap();
    let x2 = g.mul(x, x).unwrap();
    let u = g.mul(x2, y).unwrap();
    let ux = field_derivative(&mut g, u, x, 1).unwrap();
    let uxy = field_derivative(&mut g, ux, y, 1).unwrap();
    let uy = field_derivative(&mut g, u, y, 1).unwrap();
    g.set_output("uxy", uxy);
    g.set_output("uy", uy);
    let out = eval(&g, &[]).unwrap();
    for i in 0..3 {
        assert_eq!(out[0].data[i], 2.0 * pts[2 * i]);
        assert_eq!(out[1].data[i], pts[2 * i] * pts[2 * i]);
    }
}

/// Reverse mode rejects a cotangent of the wrong shape, forward mode a seed of the wrong type.
#[test]
fn ad_errors_are_values() {
    let mut g = Graph::new();
    let p = g.add_param("a", DType::F64, [2]);
    let a = g.param(p).unwrap();
    let s = g.sum_all(a).unwrap();
    assert!(matches!(
        vjp(&mut g, s, a, &[a]),
        Err(AdError::CotangentShape { .. })
    ));
    let bad = g.constant(1.0, DType::F64, [3]).unwrap();
    assert!(matches!(
        jvp(&mut g, &[s], &[(a, bad)]),
        Err(AdError::SeedType { .. })
    ));
}

/// `pow`'s partials at a zero base: `d/da a⁰ = 0` and `d/db 0^b = 0` (b > 0),
/// not the NaN of `0·∞` the textbook formulas give.
#[test]
fn pow_partials_at_zero() {
    let mut g = Graph::new();
    let pa = g.add_param("a", DType::F64, [2]);
    let pb = g.add_param("b", DType::F64, [2]);
    let a = g.param(pa).unwrap();
    let b = g.param(pb).unwrap();
    let zero_exp = g.constant(0.0, DType::F64, [2]).unwrap();
    let y0 = g.binary(BinaryOp::Pow, a, zero_exp).unwrap();
    let y1 = g.binary(BinaryOp::Pow, a, b).unwrap();
    let s0 = g.sum_all(y0).unwrap();
    let s1 = g.sum_all(y1).unwrap();
    let d0 = grad(&mut g, s0, &[a]).unwrap();
    let d1 = grad(&mut g, s1, &[a, b]).unwrap();
    g.set_output("d0a", d0[0]);
    g.set_output("d1a", d1[0]);
    g.set_output("d1b", d1[1]);
    let args = [
        Tensor::f64([2], vec![0.0, 2.0]).unwrap(),
        Tensor::f64([2], vec![0.5, 3.0]).unwrap(),
    ];
    let out = eval(&g, &args).unwrap();
    assert_eq!(out[0].data, vec![0.0, 0.0]);
    // d/da a^b at (0, ½) is the vertical tangent +∞; at (2, 3) = 3·4 = 12.
    assert_eq!(out[1].data, vec![f64::INFINITY, 12.0]);
    // d/db a^b at a = 0, b > 0 is 0; at (2, 3) = 8·ln 2.
    assert_eq!(out[2].data[0], 0.0);
    assert!((out[2].data[1] - 8.0 * 2f64.ln()).abs() < 1e-14);
}
