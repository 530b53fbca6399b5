//! Linear regression with unknown noise from a CSV file: `y = α + β x +
//! N(0, σ²)` with σ a positive parameter (`Param::positive`) and the
//! likelihood `r.gaussian(&sigma)`, which adds `−N ln σ − Σ r²/(2σ²)` so
//! the scale is sampled with the coefficients (one NUTS over α, β, ln σ).
//!
//! Reads `samples/data/regression.csv` (shipped) or `--data FILE` (columns
//! `x,y`; `#` comments), prints the summary table next to the exact
//! posterior means (least squares; `E[σ²] = RSS/(N − 5)` under flat
//! priors). `cargo run --release -p crux-samples --bin regression`

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::{Bayesian, Prior};
use crux_samples::problems::Regression;

/// Bayesian linear regression with unknown noise, from a CSV file.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// The data (columns `x,y`; default: the file the sample ships).
    #[arg(long, value_name = "FILE")]
    data: Option<std::path::PathBuf>,
    /// Draws kept per chain.
    #[arg(long, default_value_t = 2000)]
    draws: usize,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let sa = &args.sample;
    let path = args.data.clone().unwrap_or_else(Regression::shipped_data);
    let r = Regression::from_csv(&path)?;
    r.group.bayesian(
        Bayesian::nuts()
            .warmup(1000)
            .keep(args.draws)
            .num_chains(sa.chains)
            .prior(Prior::flat()),
    )?;
    let sweeps = 1000 + args.draws;
    if sa.emit_ptx(&r.problem, sweeps)? {
        return Ok(());
    }
    let sol = r.problem.solve_with(sweeps, &sa.solve_options()?)?;
    println!(
        "regression: {} points from {}; {} chain(s) x {} draws, seed {}",
        r.x.len(),
        path.display(),
        sol.num_chains,
        sol.models[0].num_draws,
        sa.seed
    );
    print!("{}", sol.summary());
    let (a, b, rss) = r.least_squares();
    let n = r.x.len() as f64;
    println!(
        "  exact posterior means (flat priors): alpha {a:.3}, beta {b:.3}, E[sigma^2] {:.4} (sigma ~ {:.3})",
        rss / (n - 5.0),
        (rss / (n - 5.0)).sqrt()
    );
    let divergences: usize = sol.models.iter().filter_map(|m| m.divergences).sum();
    println!(
        "  {divergences} divergent; {}",
        crux_samples::timings(&sol, t0)
    );
    if let Some(p) = &sa.json {
        crux_samples::write_json(p, &crux_samples::summary_json_of(&sol))?;
    }
    sa.write_outputs(&sol.posterior_refs(), &[])?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
