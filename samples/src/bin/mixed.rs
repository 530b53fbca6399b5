//! The spec's "Mixed: optimised + sampled" example on a PINN: an encoder
//! MLP trained with Adam (a point estimate) and a head MLP sampled with
//! SGLD, both stepping in every sweep of one fused chunk function (the
//! encoder first, then the head). Solves `u'' = −π² sin(πx)`, `u(0) =
//! u(1) = 0` with `u = head(encoder(x))`; prints the training loss curve
//! and the head's predictive mean and 90% band of `u`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::{Bayesian, Optimizer, Samples};
use crux_samples::problems::{predictive_band, MixedPinn};

/// Encoder trained with Adam + head sampled with SGLD, in one solve.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// Seed of the networks' initial weights.
    #[arg(long, default_value_t = 0)]
    init_seed: u64,
    /// Sweeps (each: one Adam step of the encoder, one SGLD step of the head).
    #[arg(long, default_value_t = 4000)]
    epochs: usize,
    /// Adam's learning rate (the encoder).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// SGLD's step size (the head).
    #[arg(long, default_value_t = 1e-6)]
    step_size: f64,
    /// Head draws kept (after `epochs − keep` warmup sweeps).
    #[arg(long, default_value_t = 1000)]
    keep: usize,
    /// Weight of the likelihood in the head's log-density.
    #[arg(long, default_value_t = 100.0)]
    likelihood_scale: f64,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let sa = &args.sample;
    crux_samples::init_logging(sa.quiet);
    let m = MixedPinn::new(args.init_seed)?;
    let problem = m.problem.clone().with_seed(sa.seed);
    m.encoder.optimizer(Optimizer::adam(args.lr))?;
    m.head.bayesian(
        Bayesian::sgld()
            .step_size(args.step_size)
            .warmup(args.epochs.saturating_sub(args.keep))
            .keep(args.keep)
            .likelihood_scale(args.likelihood_scale)
            .num_chains(sa.chains),
    )?;
    if sa.emit_ptx(&problem, args.epochs)? {
        return Ok(());
    }
    let sol = problem.solve_with(args.epochs, &sa.solve_options()?)?;
    let u_chain = problem.eval_samples([&m.u], Samples::Chain)?.remove(0);
    let band = predictive_band(&u_chain);
    let xs: Vec<f64> = problem.eval(&m.x)?.iter().copied().collect();
    println!(
        "mixed PINN: u = head(encoder(x)); encoder ({} weights) trained with Adam (lr {}), head ({} weights) sampled with SGLD (step {}, likelihood_scale {}), {} sweeps",
        m.encoder.num_params(),
        args.lr,
        m.head.num_params(),
        args.step_size,
        args.likelihood_scale,
        sol.sweeps
    );
    let h = &sol.loss_history;
    println!(
        "loss (sweep: loss at chain 0): {}",
        crux_samples::loss_curve(h, 8)
    );
    println!("   x      mean u    90% band              exact sin(pi x)");
    for i in [0, 25, 50, 75, 100].into_iter().filter(|&i| i < band.len()) {
        let (mean, lo, hi) = band[i];
        println!(
            "  {:.2}  {mean:>9.4}  [{lo:>8.4}, {hi:>8.4}]  {:>9.4}",
            xs[i],
            (crux::PI * xs[i]).sin()
        );
    }
    println!(
        "  compile {:.1} ms, {:.2} s for {} sweeps ({:.0} sweeps/s), total {:.2} s",
        sol.compile_seconds * 1e3,
        sol.warmup_seconds + sol.sampling_seconds,
        sol.sweeps,
        sol.sweeps as f64 / (sol.warmup_seconds + sol.sampling_seconds),
        t0.elapsed().as_secs_f64()
    );
    if let Some(path) = &sa.json {
        crux_samples::write_json(
            path,
            &serde_json::json!({
                "sweeps": sol.sweeps,
                "loss_history": h,
                "compile_seconds": sol.compile_seconds,
                "seconds": sol.warmup_seconds + sol.sampling_seconds,
                "band": band,
            }),
        )?;
    }
    sa.plot_band(
        "u_band.png",
        "mixed PINN u(x): head posterior, 90% band",
        &xs,
        &band,
    )?;
    if let Some(post) = m.head.posterior() {
        sa.write_outputs(&[&post], &[])?;
        sa.plot_traces(&post, 2, |_| None)?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
