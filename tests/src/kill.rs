//! The run of the checkpoint kill test (`tests/kill.rs`): the child process
//! (`src/bin/ckpt_child.rs`) and the test build it from here, so both run
//! exactly the same solve.

use crux::{Bayesian, SolveOptions};
use crux_samples::problems::Quickstart;

/// Sweeps of the run (warmup 500 + 30000 draws).
pub const SWEEPS: usize = 30_500;

/// The quick example with NUTS on two jittered chains, long enough to be
/// killed in the middle.
pub fn problem() -> crux::Result<Quickstart> {
    let q = Quickstart::new(11)?;
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .warmup(500)
                .keep(SWEEPS - 500)
                .num_chains(2)
                .init_jitter(0.3)
                .likelihood_scale(20.0),
        )?;
    }
    Ok(q)
}

/// The run's options: chunks of 250 sweeps, a checkpoint at each.
pub fn options() -> SolveOptions {
    SolveOptions::default()
        .quiet()
        .chunk_sweeps(250)
        .checkpoint_every(0.0)
}
