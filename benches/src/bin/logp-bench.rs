//! Log-density + gradient throughput: crux (Cranelift) against the same
//! functions written by hand in Rust, measured in one process.
//!
//! `cargo run --release -p crux-benches --bin logp-bench -- [--json PATH]`
//!
//! Per problem: `crux_evals_per_s` and `handwritten_evals_per_s` (median of
//! 5 runs of ≥ 0.2 s, the position nudged every call so nothing is hoisted),
//! their ratio, and `compile_seconds`: from the problem's expressions to
//! callable machine code (trace, AD, staging, e-graph, lowering, Cranelift).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::f64::consts::PI;
use std::time::Instant;

use crux_benches::report::{median, write_json};

use crux::{Backend, LogDensity};
use crux_benches::handwritten;
use crux_samples::problems::{Bpinn, Gauss100, Quickstart};

/// Evaluations per second of `f`, median of 5 timed runs.
fn rate(theta: &[f64], mut f: impl FnMut(&[f64], &mut [f64]) -> f64) -> f64 {
    let mut th = theta.to_vec();
    let mut g = vec![0.0; theta.len()];
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0u64;
        let mut acc = 0.0;
        while t.elapsed().as_secs_f64() < 0.2 {
            for _ in 0..64 {
                th[0] += 1e-12;
                acc += f(&th, &mut g) + g[0];
                n += 1;
            }
        }
        std::hint::black_box(acc);
        runs.push(n as f64 / t.elapsed().as_secs_f64());
    }
    median(runs)
}

fn bench(
    name: &str,
    build: impl Fn() -> crux::Result<LogDensity>,
    theta: &[f64],
    mut hand: impl FnMut(&[f64], &mut [f64]) -> f64,
) -> serde_json::Value {
    let t = Instant::now();
    let compiled = match build().and_then(|ld| ld.compile(Backend::Cranelift)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: cannot compile: {e}");
            return serde_json::json!({ "error": e.to_string() });
        }
    };
    let compile_seconds = t.elapsed().as_secs_f64();
    let mut ws = compiled.workspace();
    let crux = rate(theta, |th, g| {
        compiled.logp_and_grad(&mut ws, th, g).expect("evaluates")
    });
    let hw = rate(theta, &mut hand);
    let v = serde_json::json!({
        "crux_evals_per_s": crux,
        "handwritten_evals_per_s": hw,
        "crux_over_handwritten": crux / hw,
        "compile_seconds": compile_seconds,
        "kernel": format!("{:?}", compiled.stats()),
    });
    eprintln!("{name}: {v}");
    v
}

fn main() {
    let q = Quickstart::new(42).expect("quickstart");
    let xs: Vec<f64> = q.problem.eval(&q.x).expect("x").iter().copied().collect();
    let hq = handwritten::Quickstart {
        s: xs.iter().map(|x| (PI * x).sin()).collect(),
        c: xs.iter().map(|x| (PI * x).cos()).collect(),
        t: q.problem
            .eval(&q.target)
            .expect("target")
            .iter()
            .copied()
            .collect(),
        scale: 1.0,
    };
    let quick = bench(
        "quickstart",
        || Quickstart::new(42)?.log_density(1.0),
        &[1.0, -1.0],
        |t, g| hq.logp_grad(t, g),
    );

    let g = Gauss100::new(1).expect("gauss100");
    let hg = handwritten::Gauss {
        l: g.factor.clone(),
        n: 100,
    };
    let th: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
    let gauss = bench(
        "gauss100",
        || Gauss100::new(1)?.log_density(),
        &th,
        |t, gr| hg.logp_grad(t, gr),
    );

    let bp = Bpinn::new(0).expect("bpinn");
    let theta0 = bp
        .log_density()
        .expect("bpinn log-density")
        .initial_position()
        .to_vec();
    let hb = handwritten::Bpinn {
        x: (0..=100).map(|i| i as f64 / 100.0).collect(),
        xb: vec![0.0, 1.0],
        widths: vec![1, 32, 32, 32, 1],
    };
    let bpinn = bench(
        "bpinn",
        || Bpinn::new(0)?.log_density(),
        &theta0,
        |t, gr| hb.logp_grad(t, gr),
    );

    let out = serde_json::json!({ "problems": { "quickstart": quick, "gauss100": gauss, "bpinn": bpinn } });
    println!("{out}");
    write_json(&out);
}
