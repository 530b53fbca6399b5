//! Lowering: the kernel-IR `logp_grad` of every sample problem equals the
//! graph interpreter on the optimised graph.

use crux_compiler::lower::{lower_log_density, Lowered};
use crux_ir::kernel::{run, Buffer, Scalar};
use crux_samples::problems::Quickstart;

/// Runs a lowered log-density in the kernel interpreter, and checks that the
/// Cranelift code gives the same bits.
fn run_lowered(l: &Lowered, theta: &[f64]) -> (f64, Vec<f64>) {
    let (lp, g) = run_lowered_interp(l, theta);
    let (clp, cg) = run_lowered_clif(l, theta);
    assert_eq!(
        lp.to_bits(),
        clp.to_bits(),
        "Cranelift logp differs from the kernel interpreter"
    );
    assert!(
        g.iter().zip(&cg).all(|(a, b)| a.to_bits() == b.to_bits()),
        "Cranelift gradient differs"
    );
    (lp, g)
}

fn run_lowered_clif(l: &Lowered, theta: &[f64]) -> (f64, Vec<f64>) {
    use crux_compiler::backend::{clif, Executable};
    let k = clif::compile(&l.function, &Default::default()).expect("compiles");
    let mut bufs = vec![
        Buffer::F64(theta.to_vec()),
        Buffer::F64(vec![0.0; l.layout.dim]),
        Buffer::F64(vec![0.0; l.layout.scratch]),
    ];
    bufs.extend(l.layout.data.iter().map(|d| Buffer::F64(d.clone())));
    let out = k.call(&[], &mut bufs).expect("runs");
    let Scalar::F64(lp) = out[0] else {
        panic!("logp is f64")
    };
    let Buffer::F64(g) = &bufs[1] else {
        panic!("grad is f64")
    };
    (lp, g.clone())
}

fn run_lowered_interp(l: &Lowered, theta: &[f64]) -> (f64, Vec<f64>) {
    let mut bufs = vec![
        Buffer::F64(theta.to_vec()),
        Buffer::F64(vec![0.0; l.layout.dim]),
        Buffer::F64(vec![0.0; l.layout.scratch]),
    ];
    bufs.extend(l.layout.data.iter().map(|d| Buffer::F64(d.clone())));
    let out = run(&l.function, &[], &mut bufs, 1 << 40).expect("kernel runs");
    let Scalar::F64(lp) = out[0] else {
        panic!("logp is f64")
    };
    let Buffer::F64(g) = &bufs[1] else {
        panic!("grad is f64")
    };
    (lp, g.clone())
}

#[test]
fn quickstart_kernel_is_bit_identical_to_the_graph_interpreter() {
    for scale in [1.0, 10100.0] {
        let ld = Quickstart::new(42).unwrap().log_density(scale).unwrap();
        let l = lower_log_density(ld.graph(), "logp_grad").unwrap();
        eprintln!("quickstart: {:?}", l.stats);
        for theta in [[0.0, 0.0], [2.5, -2.7], [-100.0, 1e-3]] {
            let (lp, g) = ld.logp_and_grad(&theta).unwrap();
            let (klp, kg) = run_lowered(&l, &theta);
            assert_eq!(lp.to_bits(), klp.to_bits(), "logp at {theta:?}");
            for (a, b) in g.iter().zip(&kg) {
                assert_eq!(a.to_bits(), b.to_bits(), "grad at {theta:?}");
            }
        }
    }
}

#[test]
fn gauss100_kernel_is_bit_identical_to_the_graph_interpreter() {
    let g = crux_samples::problems::Gauss100::new(1).unwrap();
    let ld = g.log_density().unwrap();
    let l = lower_log_density(ld.graph(), "logp_grad").unwrap();
    eprintln!("gauss100: {:?}", l.stats);
    let theta: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
    let (lp, grad) = ld.logp_and_grad(&theta).unwrap();
    let (klp, kg) = run_lowered(&l, &theta);
    assert_eq!(lp.to_bits(), klp.to_bits());
    assert!(grad
        .iter()
        .zip(&kg)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // And the value is −½θᵀPθ − θᵀθ/200.
    let quad: f64 = (0..100)
        .map(|a| {
            (0..100)
                .map(|c| theta[a] * g.precision[a * 100 + c] * theta[c])
                .sum::<f64>()
        })
        .sum();
    let expect = -0.5 * quad - theta.iter().map(|t| t * t).sum::<f64>() / 200.0;
    assert!(
        (lp - expect).abs() <= 1e-10 * expect.abs(),
        "{lp} vs {expect}"
    );
}

/// The BPINN's kernel uses the shared math expansions (tanh) instead of the
/// graph interpreter's std functions: equal to 1e-12 relative (each tanh is
/// within 2 ulp), and the Cranelift code equals the kernel interpreter bit
/// for bit.
#[test]
fn bpinn_kernel_matches_graph_and_cranelift_matches_kernel() {
    use crux_compiler::backend::{clif, Executable};
    let bp = crux_samples::problems::Bpinn::new(0).unwrap();
    let ld = bp.log_density().unwrap();
    let l = lower_log_density(ld.graph(), "logp_grad").unwrap();
    eprintln!("bpinn: {:?}", l.stats);
    let theta: Vec<f64> = ld
        .initial_position()
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.01 * (i as f64).sin())
        .collect();
    let (lp, grad) = ld.logp_and_grad(&theta).unwrap();
    let (klp, kg) = run_lowered(&l, &theta);
    assert!((lp - klp).abs() <= 1e-12 * lp.abs(), "{lp} vs {klp}");
    let gmax = grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (a, b) in grad.iter().zip(&kg) {
        assert!((a - b).abs() <= 1e-12 * gmax, "{a} vs {b}");
    }
    let k = clif::compile(&l.function, &Default::default()).unwrap();
    let mut bufs = vec![
        Buffer::F64(theta.clone()),
        Buffer::F64(vec![0.0; l.layout.dim]),
        Buffer::F64(vec![0.0; l.layout.scratch]),
    ];
    bufs.extend(l.layout.data.iter().map(|d| Buffer::F64(d.clone())));
    let out = k.call(&[], &mut bufs).unwrap();
    assert!(out[0].same(Scalar::F64(klp)));
    let Buffer::F64(cg) = &bufs[1] else { panic!() };
    assert!(cg.iter().zip(&kg).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
#[ignore = "prints the quick example's kernel"]
fn show_quickstart_kernel() {
    let ld = Quickstart::new(42).unwrap().log_density(1.0).unwrap();
    let l = lower_log_density(ld.graph(), "logp_grad").unwrap();
    println!("{}", crux_ir::kernel::text::print(&l.function));
}

#[test]
#[ignore = "prints the quick example's fusion groups"]
fn show_quickstart_groups() {
    let ld = Quickstart::new(42).unwrap().log_density(1.0).unwrap();
    let g = ld.graph();
    for (i, n) in g.nodes().iter().enumerate() {
        println!("%{i} {} {:?} {}", n.op.name(), n.args, n.shape);
    }
}
