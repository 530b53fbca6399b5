//! The `crux` command: a thin binary over the `crux` library.
//!
//! ```text
//! crux compile quickstart -o model.crux      # trace, optimise, lower, write the artifact
//! crux sample model.crux --chains 4 --draws 500 --seed 1 --json out.json --npz out.npz
//! crux inspect model.crux                    # manifest, files, kernel and PTX statistics
//! crux bench                                 # the JAX/blackjax comparisons (needs .venv)
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use crux::{Artifact, ArtifactRun, Backend, Bayesian, Posterior, SolveOptions, Tiering};
use crux_samples::problems::{Bpinn, Gauss100, Quickstart, GAUSS_DIM};

/// Ahead-of-time artifacts of crux problems, and the JAX comparison.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a problem into an artifact directory (the chunk kernel as
    /// kernel IR, Cranelift object and PTX; the graphs; data; layout).
    Compile(CompileArgs),
    /// Sample from an artifact without tracing or optimising again.
    Sample(SampleArgs),
    /// Describe an artifact: manifest, files, kernel and PTX statistics.
    Inspect {
        /// The artifact directory.
        artifact: PathBuf,
    },
    /// Run the side-by-side JAX/blackjax benchmarks (needs the Python venv
    /// of benches/jax/requirements.txt at .venv).
    Bench,
}

/// The problems `crux compile` knows by name (the samples' problems).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProblemName {
    /// The spec's quick example (2 parameters, NUTS).
    Quickstart,
    /// A 100-d correlated Gaussian (NUTS).
    Gauss100,
    /// The spec's Bayesian PINN (SGLD).
    Bpinn,
}

#[derive(clap::Args)]
struct CompileArgs {
    /// Which problem: `quickstart`, `gauss100`, `bpinn` (the samples'), or
    /// a problem file: a log-density as graph IR text (an output `logp`,
    /// the parameters as the position), sampled by NUTS from zero.
    problem: String,
    /// The artifact directory to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Chains a run uses by default.
    #[arg(long, default_value_t = 1)]
    chains: usize,
    /// Warmup sweeps (default: the sample's).
    #[arg(long)]
    warmup: Option<usize>,
    /// Draws kept per chain (default: the sample's); a run may keep fewer.
    #[arg(long)]
    draws: Option<usize>,
    /// Seed of the problem and a run's default sampler seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Weight of the likelihood term (default: the sample's).
    #[arg(long)]
    likelihood_scale: Option<f64>,
    /// Problem files: standard deviation of each chain's start around 0.
    #[arg(long, default_value_t = 0.0)]
    init_jitter: f64,
}

#[derive(clap::Args)]
struct SampleArgs {
    /// The artifact directory.
    artifact: PathBuf,
    /// Chains (default: the artifact's).
    #[arg(long)]
    chains: Option<usize>,
    /// Draws per chain, at most the artifact's (default: all).
    #[arg(long)]
    draws: Option<usize>,
    /// Sampler seed (default: the artifact's).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the chains run.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write a JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the chains here (arviz's `.npz` layout).
    #[arg(long)]
    npz: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Which Cranelift code runs the chains (auto: fast-compiled baseline
    /// code first, optimised code once it is compiled on another thread).
    #[arg(long, value_enum, default_value_t = TieringArg::Auto)]
    tiering: TieringArg,
    /// Write the run's state here at chunk ends (Ctrl-C stops at the next
    /// one and writes it); continue with `--resume PATH`.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Seconds between checkpoints (0: every chunk).
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    checkpoint_every: f64,
    /// Continue the run saved in this checkpoint (same artifact, seed,
    /// chains and draws): the draws equal an uninterrupted run's.
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Stop after this many chunks, writing the checkpoint (split a run
    /// across time-limited jobs).
    #[arg(long, value_name = "N")]
    stop_after_chunks: Option<usize>,
}

/// `--tiering` values of `crux sample`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum TieringArg {
    /// Baseline first, optimised when ready.
    Auto,
    /// Baseline code only.
    Baseline,
    /// Optimised code only.
    Optimised,
}

/// `--backend` values of `crux sample`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendArg {
    /// Cranelift machine code.
    Cpu,
    /// The kernel-IR reference interpreter.
    Interp,
    /// An NVIDIA GPU: not yet for artifacts (a clear error).
    Cuda,
}

fn compile(a: &CompileArgs) -> crux::Result<()> {
    let t = std::time::Instant::now();
    let named = match a.problem.as_str() {
        "quickstart" => Some(ProblemName::Quickstart),
        "gauss100" => Some(ProblemName::Gauss100),
        "bpinn" => Some(ProblemName::Bpinn),
        _ => None,
    };
    let Some(named) = named else {
        return compile_file(a, t);
    };
    // The command line's schedule over each problem's defaults (warmup,
    // likelihood scale).
    let schedule = |b: Bayesian, warmup: usize, scale: f64| {
        b.warmup(a.warmup.unwrap_or(warmup))
            .keep(a.draws.unwrap_or(1000))
            .num_chains(a.chains)
            .likelihood_scale(a.likelihood_scale.unwrap_or(scale))
    };
    let (problem, epochs, name) = match named {
        ProblemName::Quickstart => {
            let q = Quickstart::new(a.seed)?;
            for p in [&q.a, &q.b] {
                p.bayesian(schedule(Bayesian::nuts().step_size(1e-2), 500, 1.0))?;
            }
            (q.problem, usize::MAX, "quickstart")
        }
        ProblemName::Gauss100 => {
            let g = Gauss100::new(1)?;
            g.theta
                .bayesian(schedule(Bayesian::nuts(), 1000, GAUSS_DIM as f64 / 2.0))?;
            (g.problem.with_seed(a.seed), usize::MAX, "gauss100")
        }
        ProblemName::Bpinn => {
            let b = Bpinn::new(0)?;
            b.net
                .bayesian(schedule(Bayesian::sgld().step_size(1e-5), 2000, 1.0))?;
            (b.problem.with_seed(a.seed), usize::MAX, "bpinn")
        }
    };
    let art = problem.compile_artifact(name, epochs, &SolveOptions::default())?;
    art.write(&a.output)?;
    let m = art.manifest();
    println!(
        "wrote {} ({name}: {} model(s), {} sweeps, {} draws per chain, {} chain(s) by default, seed {}) in {:.1} ms",
        a.output.display(),
        m.models.len(),
        m.sweeps,
        m.keep,
        m.chains,
        m.seed,
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// `crux compile FILE`: a log-density in graph IR text.
fn compile_file(a: &CompileArgs, t: std::time::Instant) -> crux::Result<()> {
    let path = Path::new(&a.problem);
    let text = std::fs::read_to_string(path).map_err(|e| crux::Error::InvalidArgument {
        what: "problem".into(),
        reason: format!(
            "`{}` is neither quickstart, gauss100 nor bpinn, nor a readable problem file: {e}",
            a.problem
        ),
    })?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("problem")
        .to_string();
    let sampling = crux::GraphSampling {
        warmup: a.warmup.unwrap_or(500),
        keep: a.draws.unwrap_or(1000),
        chains: a.chains,
        seed: a.seed,
        init_jitter: a.init_jitter,
        ..Default::default()
    };
    let art = Artifact::from_graph_text(&text, &name, &sampling)?;
    art.write(&a.output)?;
    let m = art.manifest();
    println!(
        "wrote {} ({name}: NUTS over {} leaves, {} sweeps, {} draws per chain) in {:.1} ms",
        a.output.display(),
        m.models.first().map_or(0, |x| x.leaves.len()),
        m.sweeps,
        m.keep,
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn sample(a: &SampleArgs) -> crux::Result<()> {
    let t = std::time::Instant::now();
    let art = Artifact::open(&a.artifact)?;
    let read = t.elapsed().as_secs_f64();
    let run = ArtifactRun {
        chains: a.chains,
        draws: a.draws,
        seed: a.seed,
        backend: match a.backend {
            BackendArg::Cpu => Backend::Cranelift,
            BackendArg::Interp => Backend::Interpreter,
            BackendArg::Cuda => Backend::Cuda,
        },
        threads: a.threads,
        progress: !a.quiet,
        tiering: match a.tiering {
            TieringArg::Auto => Tiering::Auto,
            TieringArg::Baseline => Tiering::Baseline,
            TieringArg::Optimised => Tiering::Optimised,
        },
        checkpoint: a.checkpoint.clone(),
        checkpoint_every: a.checkpoint_every,
        resume: a.resume.clone(),
        stop_after_chunks: a.stop_after_chunks,
        chunk_sweeps: None,
    };
    crux_samples::interrupt_on_ctrl_c();
    let out = art.sample(&run)?;
    let posts: Vec<&Posterior> = out.posteriors.iter().collect();
    let m = art.manifest();
    let chains = posts.first().map_or(0, |p| p.num_chains());
    let draws = posts.first().map_or(0, |p| p.num_draws());
    println!(
        "{}: {chains} chain(s) x {draws} draws ({} sweeps each), seed {}",
        m.name,
        out.sweeps,
        a.seed.unwrap_or(m.seed)
    );
    let table = crux::analysis::SummaryTable {
        rows: posts.iter().flat_map(|p| p.summary().rows).collect(),
    };
    if let Some(done) = out.stopped_at {
        println!(
            "stopped after {done} of {} sweeps; draws so far:",
            out.sweeps
        );
        print!("{table}");
        match &a.checkpoint {
            Some(p) => eprintln!(
                "resume with the same command and --resume {} (no --json/--npz written for a stopped run)",
                p.display()
            ),
            None => eprintln!("no --checkpoint was given: this run cannot be resumed"),
        }
        std::process::exit(130);
    }
    print!("{table}");
    let total = t.elapsed().as_secs_f64();
    println!(
        "load {:.1} ms, {} {:.1} ms, sampling {:.1} ms, total {:.1} ms",
        read * 1e3,
        if out.from_library {
            "load chunk.so"
        } else {
            "compile"
        },
        out.compile_seconds * 1e3,
        out.run_seconds * 1e3,
        total * 1e3
    );
    if let Some(path) = &a.json {
        crux_samples::write_json(
            path,
            &serde_json::json!({
                "name": m.name, "chains": chains, "draws": draws, "sweeps": out.sweeps,
                "load_seconds": read, "compile_seconds": out.compile_seconds,
                "from_library": out.from_library,
                "sampling_seconds": out.run_seconds, "total_seconds": total,
                "models": posts.iter().map(|p| serde_json::json!({
                    "name": p.model, "kernel": p.kernel,
                    "summary": p.summary().rows.iter().map(|r| serde_json::json!({
                        "name": r.name, "mean": r.mean, "sd": r.sd, "rhat": r.r_hat,
                        "ess_bulk": r.ess_bulk, "ess_tail": r.ess_tail,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
        )?;
    }
    if let Some(path) = &a.npz {
        crux::export::write_arviz_npz(path, &posts, &[])?;
    }
    Ok(())
}

fn inspect(dir: &Path) -> crux::Result<()> {
    Artifact::verify_files(dir)?;
    let art = Artifact::read(dir)?;
    let m = art.manifest();
    println!("{}: {}", dir.display(), m.name);
    println!(
        "  format {}, crux {}, target {}",
        m.format_version, m.crux_version, m.target
    );
    println!(
        "  {} sweeps, keeps {} draws per chain, {} chain(s) and seed {} by default",
        m.sweeps, m.keep, m.chains, m.seed
    );
    println!(
        "  buffers: state {}, work {}, draws {}, diagnostics {}, data {:?} entries",
        m.state_len, m.work_len, m.draws_len, m.diag_len, m.data_lens
    );
    for model in &m.models {
        let leaves: Vec<String> = model
            .leaves
            .iter()
            .map(|l| format!("{}{:?}", l.name, l.shape))
            .collect();
        println!(
            "  model {}: {} (warmup {}, keep {}, thin {}), leaves {}",
            model.name,
            model.kernel,
            model.warmup,
            model.keep,
            model.thin,
            leaves.join(", ")
        );
    }
    println!("  files (every hash checked):");
    for f in &m.files {
        println!(
            "    {:<22} {:>10} bytes  sha256 {}",
            f.name,
            f.bytes,
            &f.sha256[..16]
        );
    }
    let f = art.function()?;
    println!(
        "  shared library: {}",
        if art.has_shared_library() {
            "chunk.so (sample loads it instead of compiling)"
        } else {
            "none (no `cc` when compiled: sample compiles the kernel IR)"
        }
    );
    println!(
        "  chunk kernel: {} values, {} buffers",
        f.values.len(),
        f.buffers.len()
    );
    let ptx = std::fs::read_to_string(dir.join("chunk.ptx")).unwrap_or_default();
    match crux_compiler::backend::ptxas::check(&ptx, "sm_90") {
        Ok(Some(r)) => {
            for k in &r.kernels {
                println!(
                    "  PTX (ptxas, sm_90): {} registers, {} bytes spill stores, {} bytes spill loads",
                    k.registers, k.spill_stores_bytes, k.spill_loads_bytes
                );
            }
        }
        Ok(None) => println!(
            "  PTX: {} lines (ptxas not found: no register count)",
            ptx.lines().count()
        ),
        Err(e) => println!("  PTX: ptxas rejected it: {e}"),
    }
    for i in 0.. {
        let p = dir.join(format!("logdensity.{i}.graph"));
        let Ok(text) = std::fs::read_to_string(&p) else {
            break;
        };
        let first = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ");
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        match crux_ir::graph::text::parse(&body) {
            Ok(g) => println!(
                "  graph {i} ({first}): {} nodes, {} flops per log-density + gradient evaluation",
                g.len(),
                graph_flops(&g)
            ),
            Err(e) => println!("  graph {i} ({first}): does not parse: {e}"),
        }
    }
    Ok(())
}

/// Floating-point operations of one evaluation of `g`: an elementwise
/// node costs its output's entries, a reduction its input's, a matrix
/// product `2 m n k`.
fn graph_flops(g: &crux_ir::graph::Graph) -> u64 {
    use crux_ir::graph::{NodeId, Op};
    (0..g.len())
        .map(|i| {
            let n = g.node(NodeId(i as u32));
            let out = n.shape.numel() as u64;
            match &n.op {
                Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => out,
                Op::Sum { .. } | Op::ReduceMax { .. } => n
                    .args
                    .first()
                    .map_or(0, |a| g.node(*a).shape.numel() as u64),
                Op::MatMul => {
                    let k = n
                        .args
                        .first()
                        .and_then(|a| g.node(*a).shape.0.last().copied())
                        .unwrap_or(0) as u64;
                    2 * out * k
                }
                _ => 0,
            }
        })
        .sum()
}

/// Runs the benchmark scripts with the single-core XLA flags, or says how
/// to install their Python side.
fn bench() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        eprintln!(
            "crux bench needs the JAX/blackjax baseline: cd {} && python3 -m venv .venv && .venv/bin/pip install -r benches/jax/requirements.txt",
            root.display()
        );
        return ExitCode::from(2);
    }
    for script in [
        "benches/quickstart-vs-blackjax.sh",
        "benches/vi-pathfinder-vs-blackjax.sh",
    ] {
        eprintln!("crux bench: {script}");
        let status = std::process::Command::new("bash")
            .arg(root.join(script))
            .env(
                "XLA_FLAGS",
                "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
            )
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("crux bench: {script} failed ({s})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("crux bench: cannot run {script}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Compile(a) => compile(a),
        Command::Sample(a) => sample(a),
        Command::Inspect { artifact } => inspect(artifact),
        Command::Bench => return bench(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crux_samples::exit_with(e),
    }
}
