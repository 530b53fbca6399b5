//! The spec's Bayesian PINN: `u'' = −π² sin(πx)` on [0, 1] with `u(0) =
//! u(1) = 0`, an MLP 1→32→32→32→1 (tanh) whose weights are sampled.
//!
//! `--inspect` prints the compiler's per-stage statistics as JSON, `--ir
//! STAGE` a stage's graph IR. Without them, the program compiles the
//! log-density and reports it at the initial weights (the SGLD sampler that
//! turns this into predictive bands arrives with the fused samplers).

use clap::Parser;
use crux_samples::problems::Bpinn;

/// Bayesian PINN for u'' = -π² sin(πx), u(0) = u(1) = 0.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    report: crux_samples::InspectArgs,
    /// Seed of the network's initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let Bpinn {
        problem, net, u, ..
    } = Bpinn::new(args.seed)?;
    let ld = problem
        .log_density()
        .sample(&net, crux::Prior::default())
        .build()?;
    let compile = t0.elapsed();
    if crux_samples::report(&ld, &args.report)? {
        return Ok(());
    }
    let theta = ld.initial_position().to_vec();
    let t1 = std::time::Instant::now();
    let (lp, grad) = ld.logp_and_grad(&theta)?;
    let eval = t1.elapsed();
    let gnorm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    println!(
        "Bayesian PINN: u'' = -pi^2 sin(pi x), u(0) = u(1) = 0, {} points",
        problem.num_points()
    );
    println!("network: {net:?}, {} parameters", ld.dim());
    println!("loss at the initial weights: {:.6e}", problem.loss_value()?);
    println!(
        "log p = {lp:.6e}, |grad log p| = {gnorm:.6e} (reference interpreter, {:.1} ms)",
        eval.as_secs_f64() * 1e3
    );
    let uv = problem.eval(&u)?;
    println!(
        "u at x = 0, 0.25, 0.5, 0.75, 1 (initial weights): {:?}",
        [0, 25, 50, 75, 100].map(|i| (uv[[i, 0]] * 1e4).round() / 1e4)
    );
    println!(
        "compiled in {:.1} ms; sampling arrives with the fused samplers",
        compile.as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
