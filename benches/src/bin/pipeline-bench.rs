//! Front-half compile times and reference-interpreter throughput.
//!
//! `cargo run --release -p crux-benches --bin pipeline-bench [-- --json PATH]`
//!
//! For the quick example and the Bayesian PINN: the time from building the
//! problem to the optimised log-density+gradient graph (trace, reverse-mode
//! AD, staging, e-graph optimisation), and the log-density+gradient
//! evaluations per second of the reference interpreter on the differentiated
//! graph before staging and on the optimised graph after it — the ratio is
//! what staging and optimisation buy before any code generation. Each
//! figure is the median of several runs in this process.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::Instant;

use crux_benches::report::{median, write_json};

use crux::LogDensity;
use crux_samples::problems::{Bpinn, Quickstart};

fn evals_per_s(ld: &LogDensity, stage: &str, theta: &[f64], min_secs: f64) -> f64 {
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < min_secs {
        let (lp, _) = ld.logp_and_grad_at_stage(stage, theta).expect("evaluates");
        std::hint::black_box(lp);
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn bench(name: &str, build: &dyn Fn() -> crux::Result<LogDensity>) -> serde_json::Value {
    let mut compile = Vec::new();
    let mut ld = None;
    for _ in 0..5 {
        let t = Instant::now();
        ld = Some(build().expect("problem builds"));
        compile.push(t.elapsed().as_secs_f64());
    }
    let ld = ld.expect("built at least once");
    let theta: Vec<f64> = ld.initial_position().iter().map(|v| v + 0.1).collect();
    let before = median(
        (0..3)
            .map(|_| evals_per_s(&ld, "differentiated", &theta, 0.3))
            .collect(),
    );
    let after = median(
        (0..3)
            .map(|_| evals_per_s(&ld, "optimised", &theta, 0.3))
            .collect(),
    );
    let v = serde_json::json!({
        "compile_seconds": median(compile),
        "interp_evals_per_s_differentiated": before,
        "interp_evals_per_s_optimised": after,
        "speedup_from_staging_and_optimisation": after / before,
    });
    eprintln!("{name}: {v}");
    v
}

fn main() {
    let quick = bench("quickstart", &|| Quickstart::new(42)?.log_density(1.0));
    let bpinn = bench("bpinn", &|| Bpinn::new(0)?.log_density());
    let out = serde_json::json!({ "problems": { "quickstart": quick, "bpinn": bpinn } });
    println!("{out}");
    write_json(&out);
}
