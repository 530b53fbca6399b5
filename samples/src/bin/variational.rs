//! The quick example three ways beyond plain NUTS: mean-field VI (one
//! fused ELBO step per epoch), pathfinder then adapted NUTS, and the
//! Laplace approximation (MAP + compiled Hessian), each against the exact
//! posterior (the problem is linear-Gaussian).
//!
//! `cargo run --release -p crux-samples --bin variational -- [--steps N] [--lr LR]`

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::Instant;

use clap::Parser;
use crux::{Bayesian, Init, Optimizer, SolveOptions, Vi};
use crux_samples::problems::Quickstart;

/// Mean-field VI, pathfinder and Laplace on the quick example.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// ELBO optimisation steps.
    #[arg(long, default_value_t = 8000)]
    steps: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Monte-Carlo draws per ELBO estimate.
    #[arg(long, default_value_t = 16)]
    num_samples: usize,
    /// Likelihood scale (N/(2σ²) for the known noise σ = 0.0707: 10100).
    #[arg(long, default_value_t = 10100.0)]
    likelihood_scale: f64,
    /// Seed of the problem and the draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// No log lines.
    #[arg(long)]
    quiet: bool,
}

fn run(args: Args) -> crux::Result<()> {
    crux_samples::init_logging(args.quiet);
    let opts = if args.quiet {
        SolveOptions::default().quiet()
    } else {
        SolveOptions::default()
    };
    let s = args.likelihood_scale;
    let exact = Quickstart::new(args.seed)?.exact_posterior(s)?;
    let (mu, cov) = exact;
    println!(
        "exact posterior: a {:.5} (sd {:.5}), b {:.5} (sd {:.5})",
        mu[0],
        cov[0][0].sqrt(),
        mu[1],
        cov[1][1].sqrt()
    );

    // Mean-field VI.
    let q = Quickstart::new(args.seed)?;
    let vi = Vi::meanfield()
        .optimizer(Optimizer::adam(args.lr))
        .num_samples(args.num_samples)
        .posterior_draws(1000)
        .likelihood_scale(s);
    q.a.vi(vi.clone())?;
    q.b.vi(vi)?;
    let t = Instant::now();
    q.problem.solve_with(args.steps, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    for p in [&q.a, &q.b] {
        let post = p.posterior().expect("fitted");
        let f = &post.variational[0];
        let elbo = f.elbo.row(0);
        println!(
            "VI {}: mu {:.5}, sigma {:.5}; ELBO {:.3} -> {:.3} over {} steps",
            p.name(),
            f.mean[(0, 0)],
            f.std[(0, 0)],
            elbo[0],
            elbo[elbo.len() - 1],
            elbo.len()
        );
    }
    println!("VI: {:.1} ms end to end", secs * 1e3);

    // Pathfinder, then NUTS with window adaptation from its start and mass.
    let q = Quickstart::new(args.seed)?;
    for p in [&q.a, &q.b] {
        p.bayesian(Bayesian::nuts().warmup(300).keep(1000).likelihood_scale(s))?;
        p.initialize(Init::pathfinder())?;
    }
    let sol = q.problem.solve_with(usize::MAX, &opts)?;
    for p in [&q.a, &q.b] {
        let x = p.posterior().expect("sampled").entry(0, 0).expect("entry");
        let m = x.mean().unwrap_or(f64::NAN);
        let sd = x.std(1.0);
        println!("pathfinder + NUTS {}: mean {m:.5}, sd {sd:.5}", p.name());
    }
    println!(
        "pathfinder: {:.2} ms; then {} warmup + {} draws",
        sol.initializer_seconds * 1e3,
        sol.warmup_sweeps,
        sol.sweeps - sol.warmup_sweeps
    );

    // Laplace: the MAP and the inverse Hessian's diagonal.
    let q = Quickstart::new(args.seed)?;
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .adapt(false)
                .step_size(1e-3)
                .warmup(0)
                .keep(1)
                .likelihood_scale(s),
        )?;
        p.initialize(Init::laplace())?;
    }
    let sol = q.problem.solve_with(1, &opts)?;
    for p in [&q.a, &q.b] {
        let var = p.posterior().expect("sampled").inverse_mass[0][0];
        println!("Laplace {}: sd {:.5}", p.name(), var.sqrt());
    }
    println!("Laplace: {:.2} ms", sol.initializer_seconds * 1e3);
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
