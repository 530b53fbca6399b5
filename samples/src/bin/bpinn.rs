//! The spec's Bayesian PINN: `u'' = −π² sin(πx)` on [0, 1] with `u(0) =
//! u(1) = 0`, an MLP 1→32→32→32→1 (tanh) whose weights are sampled with
//! SGLD (step 1e-5, warmup 2000, keep 1000), then the predictive mean and
//! 90% band of `u` pushed forward through every draw.
//!
//! `--pretrain N` first trains the network with Adam for N sweeps (a
//! training solve: the loss curve is printed), then samples from the
//! trained weights: at `--likelihood-scale 100` the 90% band then
//! contains the exact solution, which SGLD from random weights does not
//! reach in 3000 sweeps.
//!
//! `--inspect` / `--ir STAGE` print compiler reports instead.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::export::NpyArray;
use crux::{Bayesian, Optimizer, Samples};
use crux_samples::problems::Bpinn;

/// Bayesian PINN for u'' = -π² sin(πx), u(0) = u(1) = 0.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    report: crux_samples::InspectArgs,
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// Seed of the network's initial weights.
    #[arg(long, default_value_t = 0)]
    init_seed: u64,
    /// SGLD step size.
    #[arg(long, default_value_t = 1e-5)]
    step_size: f64,
    /// Weight of the likelihood term (1, the spec's example, is a weak
    /// likelihood: the band is wide and need not contain the exact solution).
    #[arg(long, default_value_t = 1.0)]
    likelihood_scale: f64,
    /// Adam sweeps before sampling (0: sample from the initial weights).
    #[arg(long, default_value_t = 0)]
    pretrain: usize,
    /// Adam's learning rate for `--pretrain`.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let sa = &args.sample;
    let Bpinn {
        problem, net, u, x, ..
    } = Bpinn::new(args.init_seed)?;
    let problem = problem.with_seed(sa.seed);
    if args.report.inspect || args.report.ir.is_some() {
        let ld = problem
            .log_density()
            .sample(&net, crux::Prior::default())
            .build()?;
        crux_samples::report(&ld, &args.report)?;
        return Ok(());
    }
    let mut pretrain_seconds = 0.0;
    if args.pretrain > 0 {
        let t = std::time::Instant::now();
        net.optimizer(Optimizer::adam(args.lr))?;
        let train = problem.solve_with(args.pretrain, &sa.solve_options()?)?;
        println!(
            "pretrain: Adam (lr {}) for {} sweeps in {:.2} s; loss {}",
            args.lr,
            args.pretrain,
            t.elapsed().as_secs_f64(),
            crux_samples::loss_curve(&train.loss_history, 6)
        );
        pretrain_seconds = t.elapsed().as_secs_f64();
    }
    net.bayesian(
        Bayesian::sgld()
            .step_size(args.step_size)
            .warmup(2000)
            .keep(1000)
            .likelihood_scale(args.likelihood_scale)
            .num_chains(sa.chains),
    )?;
    if sa.emit_ptx(&problem, 3000)? {
        return Ok(());
    }
    let sol = problem.solve_with(3000, &sa.solve_options()?)?;
    let t1 = std::time::Instant::now();
    let u_chain = problem.eval_samples([&u], Samples::Chain)?.remove(0);
    let eval = t1.elapsed().as_secs_f64();
    let xs = problem.eval(&x)?;
    let (k, n) = (u_chain.shape()[0], u_chain.shape()[1]);
    let band = crux_samples::problems::predictive_band(&u_chain);
    println!(
        "Bayesian PINN: u'' = -pi^2 sin(pi x), u(0) = u(1) = 0; {} weights sampled with SGLD (step {}, likelihood_scale {}), {k} chain(s) x {n} draws",
        net.num_params(),
        args.step_size,
        args.likelihood_scale
    );
    println!("   x      mean u    90% band              exact sin(pi x)");
    for i in [0, 25, 50, 75, 100].into_iter().filter(|&i| i < band.len()) {
        let (mean, lo, hi) = band[i];
        let xi = xs.as_slice().map_or(f64::NAN, |s| s[i]);
        println!(
            "  {xi:.2}  {mean:>9.4}  [{lo:>8.4}, {hi:>8.4}]  {:>9.4}",
            (crux::PI * xi).sin()
        );
    }
    println!(
        "  compile {:.1} ms, warmup {:.2} s, sampling {:.2} s ({:.0} gradient evaluations/s), pushforward of {} draws {:.2} s, total {:.2} s",
        sol.compile_seconds * 1e3,
        sol.warmup_seconds,
        sol.sampling_seconds,
        sol.grad_evals as f64 / sol.sampling_seconds,
        k * n,
        eval,
        t0.elapsed().as_secs_f64()
    );
    if let Some(path) = &sa.json {
        crux_samples::write_json(
            path,
            &serde_json::json!({
                "num_chains": k, "num_draws": n,
                "compile_seconds": sol.compile_seconds,
                "warmup_seconds": sol.warmup_seconds,
                "sampling_seconds": sol.sampling_seconds,
                "grad_evals": sol.grad_evals,
                "pretrain_sweeps": args.pretrain,
                "pretrain_seconds": pretrain_seconds,
            }),
        )?;
    }
    let post = net.posterior().expect("sampled");
    let data = [
        NpyArray {
            name: "u".into(),
            shape: u_chain.shape().to_vec(),
            data: u_chain.iter().copied().collect(),
        },
        NpyArray {
            name: "x".into(),
            shape: vec![xs.len()],
            data: xs.iter().copied().collect(),
        },
    ];
    sa.write_outputs(&[&post], &data)?;
    let xv: Vec<f64> = xs.iter().copied().collect();
    sa.plot_band(
        "u_band.png",
        "BPINN u(x): posterior mean, 90% band",
        &xv,
        &band,
    )?;
    sa.plot_traces(&post, 2, |_| None)?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
