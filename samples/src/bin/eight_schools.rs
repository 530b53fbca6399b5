//! Eight schools, non-centred (posteriordb `eight_schools_noncentered`):
//! the population mean μ, a positive scale τ (`Param::positive`: NUTS moves
//! ln τ, the Jacobian is added for you) and eight standardised effects,
//! sampled jointly by NUTS as one `Group`, with a Gaussian likelihood of
//! known per-school σ and the priors as log-density terms.
//!
//! Prints the summary table (μ, τ, η, and the school effects θ = μ + τη),
//! divergences and timings. `cargo run --release -p crux-samples --bin
//! eight_schools -- [--chains 4] [--target-acceptance 0.95]`

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::{Bayesian, Prior};
use crux_samples::problems::EightSchools;

/// Eight schools, non-centred, sampled with NUTS.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// NUTS's target acceptance (raise it to remove divergences).
    #[arg(long, default_value_t = 0.95)]
    target_acceptance: f64,
    /// Draws kept per chain.
    #[arg(long, default_value_t = 2000)]
    draws: usize,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let sa = &args.sample;
    let s = EightSchools::new()?;
    s.group.bayesian(
        Bayesian::nuts()
            .warmup(1000)
            .keep(args.draws)
            .num_chains(sa.chains)
            .target_acceptance(args.target_acceptance)
            .prior(Prior::flat()),
    )?;
    let sweeps = 1000 + args.draws;
    if sa.emit_ptx(&s.problem, sweeps)? {
        return Ok(());
    }
    let sol = s.problem.solve_with(sweeps, &sa.solve_options()?)?;
    println!(
        "eight schools (non-centred): {} chain(s) x {} draws, seed {}",
        sol.num_chains, sol.models[0].num_draws, sa.seed
    );
    print!("{}", sol.summary());
    // The school effects θ_j = μ + τ η_j, draw by draw.
    let post = s.group.posterior().expect("sampled by this solve");
    let (mu, tau, eta) = (
        post.leaf("mu").expect("mu"),
        post.leaf("tau").expect("tau"),
        post.leaf("eta").expect("eta"),
    );
    let (k, n) = (mu.shape()[0], mu.shape()[1]);
    for j in 0..8 {
        let theta = ndarray::Array2::from_shape_fn((k, n), |(c, t)| {
            mu[[c, t, 0]] + tau[[c, t, 0]] * eta[[c, t, j]]
        });
        let sm = crux::diagnostics::summarize(theta.view());
        println!(
            "theta[{j}] {:7.3} {:6.3}  90% [{:7.3}, {:7.3}]  (y = {:5.1}, sigma = {:4.1})",
            sm.mean,
            sm.sd,
            sm.q05,
            sm.q95,
            EightSchools::Y[j],
            EightSchools::SIGMA[j]
        );
    }
    let divergences: usize = sol.models.iter().filter_map(|m| m.divergences).sum();
    println!(
        "  {divergences} divergent, step sizes {:?}; {}",
        sol.models[0]
            .step_size
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>(),
        crux_samples::timings(&sol, t0)
    );
    if let Some(path) = &sa.json {
        crux_samples::write_json(path, &crux_samples::summary_json_of(&sol))?;
    }
    sa.write_outputs(&sol.posterior_refs(), &[])?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
