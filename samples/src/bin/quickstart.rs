//! The spec's quick example: recover (A, B) in `d(x) = A·sin(πx) + B·cos(πx)`
//! from noisy observations on 101 points of [0, 1].
//!
//! `--inspect` prints the compiler's per-stage statistics as JSON, `--ir
//! STAGE` a stage's graph IR. Without them, the program prints the posterior
//! of (a, b). Sampling (NUTS and friends) arrives with the fused samplers;
//! until then the posterior is computed exactly, which this problem allows:
//! it is linear-Gaussian, so the log-density is quadratic and one Newton
//! step on the compiled gradient gives its mean and covariance.

use clap::Parser;
use crux::LogDensity;
use crux_samples::problems::Quickstart;

/// Bayesian inverse problem: A·sin(πx) + B·cos(πx) from noisy data.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    report: crux_samples::InspectArgs,
    /// Seed of the synthetic observation noise.
    #[arg(long, default_value_t = crux::DEFAULT_SEED)]
    seed: u64,
    /// Weight of the likelihood term (N/σ² = 10100 gives the textbook posterior).
    #[arg(long, default_value_t = 1.0)]
    likelihood_scale: f64,
}

fn build(args: &Args) -> crux::Result<LogDensity> {
    Quickstart::new(args.seed)?.log_density(args.likelihood_scale)
}

/// Mean and covariance of a Gaussian log-density in 2-D from gradients:
/// the Hessian by differences of gradients (exact for a quadratic), then
/// one Newton step from the origin.
fn gaussian_posterior(ld: &LogDensity) -> crux::Result<([f64; 2], [[f64; 2]; 2])> {
    let (_, g0) = ld.logp_and_grad(&[0.0, 0.0])?;
    let (_, ga) = ld.logp_and_grad(&[1.0, 0.0])?;
    let (_, gb) = ld.logp_and_grad(&[0.0, 1.0])?;
    // H = ∇² log p (negative definite); columns are gradient differences.
    let h = [
        [ga[0] - g0[0], gb[0] - g0[0]],
        [ga[1] - g0[1], gb[1] - g0[1]],
    ];
    let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
    let inv = [
        [h[1][1] / det, -h[0][1] / det],
        [-h[1][0] / det, h[0][0] / det],
    ];
    // mean = −H⁻¹ g0 ; covariance = −H⁻¹
    let mean = [
        -(inv[0][0] * g0[0] + inv[0][1] * g0[1]),
        -(inv[1][0] * g0[0] + inv[1][1] * g0[1]),
    ];
    let cov = [[-inv[0][0], -inv[0][1]], [-inv[1][0], -inv[1][1]]];
    Ok((mean, cov))
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let ld = build(&args)?;
    let compile = t0.elapsed();
    if crux_samples::report(&ld, &args.report)? {
        return Ok(());
    }
    let (mean, cov) = gaussian_posterior(&ld)?;
    println!(
        "quick example: d(x) = A sin(pi x) + B cos(pi x), 101 points, noise std 0.1, seed {}",
        args.seed
    );
    println!(
        "likelihood_scale = {}, prior N(0, 10^2)",
        args.likelihood_scale
    );
    println!("exact posterior (linear-Gaussian model; sampling arrives with the fused samplers):");
    const Z90: f64 = 1.6448536269514722;
    for (i, name) in ["A", "B"].iter().enumerate() {
        let sd = cov[i][i].sqrt();
        println!(
            "  {name} = {:.3} [{:.3}, {:.3}]  (sd {:.3}, 90% interval)",
            mean[i],
            mean[i] - Z90 * sd,
            mean[i] + Z90 * sd,
            sd
        );
    }
    println!(
        "  corr(A, B) = {:.3}",
        cov[0][1] / (cov[0][0] * cov[1][1]).sqrt()
    );
    println!("compiled in {:.1} ms", compile.as_secs_f64() * 1e3);
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
