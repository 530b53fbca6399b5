//! The spec's quick example: recover (A, B) in `d(x) = A·sin(πx) + B·cos(πx)`
//! from noisy observations on 101 points of [0, 1], each coefficient
//! sampled with NUTS (window adaptation 500, 1000 draws) in one fused
//! kernel per chain.
//!
//! Prints A and B with 90% intervals, R-hat, bulk ESS, divergences and the
//! compile and sampling times. `--inspect` / `--ir STAGE` print compiler
//! reports instead; `--json` and `--npz` write the results.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use clap::Parser;
use crux::diagnostics::summarize;
use crux::export::NpyArray;
use crux::Bayesian;
use crux_samples::problems::Quickstart;

/// Bayesian inverse problem: A·sin(πx) + B·cos(πx) from noisy data.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    report: crux_samples::InspectArgs,
    #[command(flatten)]
    sample: crux_samples::SampleArgs,
    /// Weight of the likelihood term (N/σ² = 10100 gives the textbook posterior).
    #[arg(long, default_value_t = 1.0)]
    likelihood_scale: f64,
    /// Standard deviation of each chain's start perturbation.
    #[arg(long, default_value_t = 0.0)]
    init_jitter: f64,
}

fn run(args: Args) -> crux::Result<()> {
    let t0 = std::time::Instant::now();
    let sa = &args.sample;
    let q = Quickstart::new(sa.seed)?;
    if args.report.inspect || args.report.ir.is_some() {
        let ld = q.log_density(args.likelihood_scale)?;
        crux_samples::report(&ld, &args.report)?;
        return Ok(());
    }
    for p in [&q.a, &q.b] {
        p.bayesian(
            Bayesian::nuts()
                .step_size(1e-2)
                .warmup(500)
                .keep(1000)
                .num_chains(sa.chains)
                .init_jitter(args.init_jitter)
                .likelihood_scale(args.likelihood_scale),
        )?;
    }
    if sa.emit_ptx(&q.problem, 1500)? {
        return Ok(());
    }
    let sol = q.problem.solve_with(1500, &sa.solve_options()?)?;
    println!(
        "quick example: d(x) = A sin(pi x) + B cos(pi x), 101 points, noise std 0.1, seed {}, likelihood_scale {}",
        sa.seed, args.likelihood_scale
    );
    let mut params = serde_json::Map::new();
    for (label, p) in [("A", &q.a), ("B", &q.b)] {
        let post = p.posterior().expect("sampled by this solve");
        let chain = post.entry(0, 0).expect("one entry");
        let s = summarize(chain.view());
        println!(
            "  {label} = {:.3} [{:.3}, {:.3}]  (90% interval)",
            s.mean, s.q05, s.q95
        );
        params.insert(p.name().to_string(), crux_samples::summary_json(&s));
    }
    print!("{}", sol.summary());
    let divergences: usize = sol.models.iter().filter_map(|m| m.divergences).sum();
    println!(
        "  {} chain(s) x {} draws, {divergences} divergent, step sizes {:?}",
        sol.num_chains,
        sol.models[0].num_draws,
        sol.models
            .iter()
            .map(|m| format!("{:.3}", m.step_size[0]))
            .collect::<Vec<_>>()
    );
    println!(
        "  compile {:.1} ms, warmup {:.1} ms, sampling {:.1} ms ({:.2} M gradient evaluations/s), total {:.1} ms",
        sol.compile_seconds * 1e3,
        sol.warmup_seconds * 1e3,
        sol.sampling_seconds * 1e3,
        sol.grad_evals as f64 / sol.sampling_seconds / 1e6,
        t0.elapsed().as_secs_f64() * 1e3
    );
    if let Some(path) = &sa.json {
        let v = serde_json::json!({
            "backend": format!("{:?}", sol.backend).to_lowercase(),
            "num_chains": sol.num_chains,
            "num_draws": sol.models[0].num_draws,
            "likelihood_scale": args.likelihood_scale,
            "compile_seconds": sol.compile_seconds,
            "warmup_seconds": sol.warmup_seconds,
            "sampling_seconds": sol.sampling_seconds,
            "grad_evals_warmup": sol.grad_evals_warmup,
            "grad_evals": sol.grad_evals,
            "divergences": divergences,
            "params": params,
        });
        crux_samples::write_json(path, &v)?;
    }
    let mut data = Vec::new();
    for (name, e) in [("x", &q.x), ("target", &q.target)] {
        let v = q.problem.eval(e)?;
        data.push(NpyArray {
            name: name.into(),
            shape: vec![v.len()],
            data: v.iter().copied().collect(),
        });
    }
    let posts = sol.posterior_refs();
    sa.write_outputs(&posts, &data)?;
    sa.plot_exact_traces(&posts, q.exact_posterior(args.likelihood_scale)?)?;
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        crux_samples::exit_with(e);
    }
}
