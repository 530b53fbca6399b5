//! A user-written kernel: random-walk Metropolis (`crux_samples::rwm`) on
//! the quick example, through the same warmup / keep / thin pipeline as
//! the built-in kernels.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use clap::Parser;
use crux::diagnostics::summarize;
use crux::Bayesian;
use crux_samples::problems::Quickstart;
use crux_samples::rwm::RandomWalk;

/// Random-walk Metropolis on A·sin(πx) + B·cos(πx).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// Proposal standard deviation.
    #[arg(long, default_value_t = 1.5)]
    step_size: f64,
}

fn run(args: Args) -> crux::Result<()> {
    let sa = &args.sample;
    let q = Quickstart::new(sa.seed)?;
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::custom(Arc::new(RandomWalk))
                .step_size(args.step_size)
                .warmup(500)
                .keep(4000)
                .num_chains(sa.chains),
        )?;
    }
    if sa.emit_ptx(&q.problem, usize::MAX)? {
        return Ok(());
    }
    let sol = q.problem.solve_with(usize::MAX, &sa.solve_options()?)?;
    let (mu, cov) = q.exact_posterior(1.0)?;
    println!("random-walk Metropolis (a user kernel) on the quick example:");
    let mut params = serde_json::Map::new();
    for (i, p) in [&q.a, &q.b].into_iter().enumerate() {
        let post = p.posterior().expect("sampled");
        let s = summarize(post.entry(0, 0).expect("one entry").view());
        println!(
            "  {} = {:.3} [{:.3}, {:.3}]  sd {:.3}  R-hat {:.3}  ESS bulk {:.0}   exact {:.3} (sd {:.3})",
            p.name(), s.mean, s.q05, s.q95, s.sd, s.rhat, s.ess_bulk, mu[i], cov[i][i].sqrt()
        );
        println!(
            "      mean acceptance {:.3}",
            sol.models[i].mean_acceptance.unwrap_or(f64::NAN)
        );
        params.insert(p.name().to_string(), crux_samples::summary_json(&s));
    }
    if let Some(path) = &sa.json {
        crux_samples::write_json(path, &serde_json::json!({ "params": params }))?;
    }
    let posts = sol.posterior_refs();
    sa.write_outputs(&posts, &[])?;
    sa.plot_exact_traces(&posts, (mu, cov))?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
