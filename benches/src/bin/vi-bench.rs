//! crux's side of `benches/vi-pathfinder-vs-blackjax.sh`: mean-field VI
//! on the BPINN and pathfinder on gauss100, each timed end to end (a fresh
//! problem, compilation included) and in steady state.
//!
//! `taskset -c 0 cargo run --release -p crux-benches --bin vi-bench -- [--json PATH]`
//!
//! - VI: `Vi::meanfield()` with Adam(1e-3), 8 Monte-Carlo draws per step,
//!   500 steps on the BPINN's weights (prior σ = 10, likelihood scale 1:
//!   the log-density of `benches/jax/logp_bench.py`). Steady state:
//!   `steps / sampling_seconds` of a solve on the optimised tier from the
//!   first step (the fused chunk kernel only); end to end: the wall time of
//!   a default solve (problem built, compiled, run).
//! - Pathfinder: `Init::pathfinder()` (30 L-BFGS iterations, 200 ELBO draws
//!   per iterate, 1000 draws) on gauss100, then one NUTS draw without
//!   adaptation; `initializer_seconds` of the solve (the log-density's
//!   compilation included) is its end to end, the median over 5 runs.
//!
//! Each figure is the median of 5 runs.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::Instant;

use crux::{Bayesian, Init, Optimizer, SolveOptions, Tiering, Vi};
use crux_benches::report::{median, write_json};
use crux_samples::problems::{Bpinn, Gauss100};

const VI_STEPS: usize = 500;
const VI_DRAWS: usize = 8;

fn main() -> crux::Result<()> {
    crux_samples::init_logging(false);
    let quiet = SolveOptions::default().quiet().threads(1);
    let (mut e2e, mut steady, mut elbo) = (Vec::new(), Vec::new(), 0.0);
    let vi = || {
        Vi::meanfield()
            .optimizer(Optimizer::adam(1e-3))
            .num_samples(VI_DRAWS)
            .posterior_draws(100)
    };
    for _ in 0..5 {
        let t = Instant::now();
        let b = Bpinn::new(0)?;
        b.net.vi(vi())?;
        let sol = b.problem.solve_with(VI_STEPS, &quiet)?;
        e2e.push(t.elapsed().as_secs_f64());
        elbo = sol.models[0].final_elbo.unwrap_or(f64::NAN);
        // Steady state: the optimised tier from the first step.
        let b = Bpinn::new(0)?;
        b.net.vi(vi())?;
        let opts = quiet.clone().tiering(Tiering::Optimised);
        let sol = b.problem.solve_with(VI_STEPS, &opts)?;
        steady.push(VI_STEPS as f64 / sol.sampling_seconds);
    }
    let (vi_e2e, vi_steady) = (median(e2e), median(steady));
    println!(
        "bpinn meanfield VI: {VI_STEPS} steps x {VI_DRAWS} draws, end to end {vi_e2e:.3} s, steady {vi_steady:.0} steps/s, final ELBO {elbo:.4e}"
    );

    let mut pf = Vec::new();
    for _ in 0..5 {
        let g = Gauss100::new(1)?;
        g.theta.bayesian(
            Bayesian::nuts()
                .step_size(0.01)
                .adapt(false)
                .warmup(0)
                .keep(1)
                .likelihood_scale(50.0),
        )?;
        g.theta.initialize(Init::pathfinder())?;
        let sol = g
            .problem
            .solve_with(1, &SolveOptions::default().threads(1))?;
        pf.push(sol.initializer_seconds);
    }
    let pf = median(pf);
    println!("gauss100 pathfinder (maxiter 30, 200 ELBO draws): {pf:.4} s");
    write_json(&serde_json::json!({
        "vi_bpinn": { "steps": VI_STEPS, "num_samples": VI_DRAWS,
                      "end_to_end_seconds": vi_e2e, "steps_per_second_steady": vi_steady },
        "pathfinder_gauss100": { "seconds": pf },
    }));
    Ok(())
}
