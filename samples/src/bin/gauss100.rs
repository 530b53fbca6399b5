//! A 100-dimensional correlated Gaussian (dense precision, condition number
//! 10³) sampled with NUTS (`--metric diagonal|dense|low-rank`): checks the moments
//! against the exact ones and
//! reports gradient evaluations per second and the minimum bulk ESS per
//! 1000 gradient evaluations.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::diagnostics::{ess_bulk, summarize};
use crux::{Bayesian, Metric};
use crux_samples::problems::{Gauss100, GAUSS_DIM};

/// NUTS on a 100-d correlated Gaussian.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// Warmup sweeps.
    #[arg(long, default_value_t = 1000)]
    warmup: usize,
    /// Draws kept per chain.
    #[arg(long, default_value_t = 1000)]
    keep: usize,
    /// The inverse mass matrix: `diagonal`, `dense` (a full covariance
    /// adapted in the warmup windows: what this posterior needs) or
    /// `low-rank` (a diagonal plus `--rank` directions).
    #[arg(long, default_value = "diagonal", value_parser = ["diagonal", "dense", "low-rank"])]
    metric: String,
    /// Directions of the low-rank metric.
    #[arg(long, default_value_t = 10)]
    rank: usize,
}

fn run(args: Args) -> crux::Result<()> {
    let sa = &args.sample;
    let g = Gauss100::new(1)?;
    let metric = match args.metric.as_str() {
        "dense" => Metric::Dense,
        "low-rank" => Metric::LowRank { rank: args.rank },
        _ => Metric::Diagonal,
    };
    g.theta.bayesian(
        Bayesian::nuts()
            .metric(metric)
            .warmup(args.warmup)
            .keep(args.keep)
            .num_chains(sa.chains)
            .likelihood_scale(GAUSS_DIM as f64 / 2.0),
    )?;
    if sa.emit_ptx(&g.problem, usize::MAX)? {
        return Ok(());
    }
    let sol = g
        .problem
        .with_seed(sa.seed)
        .solve_with(usize::MAX, &sa.solve_options()?)?;
    let post = g.theta.posterior().expect("sampled");
    let mut min_ess = f64::INFINITY;
    let mut worst_rhat: f64 = 0.0;
    let mut sd_range = (f64::INFINITY, 0.0f64);
    for i in 0..GAUSS_DIM {
        let x = post.entry(0, i).expect("entry");
        min_ess = min_ess.min(ess_bulk(x.view()));
        let s = summarize(x.view());
        worst_rhat = worst_rhat.max(s.rhat);
        sd_range = (sd_range.0.min(s.sd), sd_range.1.max(s.sd));
    }
    let per_1000 = 1000.0 * min_ess / sol.grad_evals as f64;
    let rate = sol.grad_evals as f64 / sol.sampling_seconds;
    println!(
        "gauss100: NUTS ({} metric), {} chain(s) x {} draws, posterior sd from {:.4} to {:.4}",
        metric.name(),
        sol.num_chains,
        args.keep,
        sd_range.0,
        sd_range.1
    );
    println!(
        "  divergences {}, max R-hat {worst_rhat:.3}, min bulk ESS {min_ess:.0}, {per_1000:.2} per 1000 gradient evaluations",
        sol.models[0].divergences.unwrap_or(0)
    );
    println!(
        "  compile {:.1} ms, warmup {:.3} s, sampling {:.3} s, {:.3} M gradient evaluations/s",
        sol.compile_seconds * 1e3,
        sol.warmup_seconds,
        sol.sampling_seconds,
        rate / 1e6
    );
    if let Some(path) = &sa.json {
        crux_samples::write_json(
            path,
            &serde_json::json!({
                "num_chains": sol.num_chains, "num_draws": args.keep,
                "compile_seconds": sol.compile_seconds,
                "warmup_seconds": sol.warmup_seconds,
                "sampling_seconds": sol.sampling_seconds,
                "grad_evals": sol.grad_evals,
                "grad_evals_per_second": rate,
                "min_ess_bulk": min_ess,
                "min_ess_bulk_per_1000_grad_evals": per_1000,
                "max_rhat": worst_rhat,
            }),
        )?;
    }
    sa.write_outputs(&[&post], &[])?;
    // The first four coordinates' traces.
    sa.plot_traces(&post, 4, |_| None)?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
