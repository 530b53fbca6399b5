//! Shared pieces of the sample programs: the `--inspect` / `--ir` reports.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod plot;
pub mod problems;
pub mod rwm;

use crux::LogDensity;

/// The compiler-report flags every sample takes.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Print per-stage compiler statistics as JSON and stop.
    #[arg(long)]
    pub inspect: bool,
    /// Print the graph IR of a stage (traced, differentiated, staged, optimised) and stop.
    #[arg(long, value_name = "STAGE")]
    pub ir: Option<String>,
}

/// The `--inspect` JSON object: points, parameter count, and per-stage
/// node, flop and transcendental counts in pipeline order.
pub fn inspect_json(ld: &LogDensity) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = ld
        .stages()
        .iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.stage,
                "nodes": s.nodes,
                "flops": s.flops,
                "transcendentals": s.transcendentals,
            })
        })
        .collect();
    serde_json::json!({
        "points": ld.num_points(),
        "params": ld.dim(),
        "stages": stages,
    })
}

/// Handles `--inspect` and `--ir STAGE`: prints the report and returns
/// `true` when one of them was requested (the sample then stops).
pub fn report(ld: &LogDensity, args: &InspectArgs) -> crux::Result<bool> {
    if let Some(stage) = &args.ir {
        print!("{}", ld.stage_ir(stage)?);
        return Ok(true);
    }
    if args.inspect {
        println!("{}", inspect_json(ld));
        return Ok(true);
    }
    Ok(false)
}

/// `compile …, warmup …, sampling …, total … ms` of a solve started at `t0`.
pub fn timings(sol: &crux::Solution, t0: std::time::Instant) -> String {
    format!(
        "compile {:.1} ms, warmup {:.1} ms, sampling {:.1} ms, total {:.1} ms",
        sol.compile_seconds * 1e3,
        sol.warmup_seconds * 1e3,
        sol.sampling_seconds * 1e3,
        t0.elapsed().as_secs_f64() * 1e3
    )
}

/// The summary table's rows as JSON (`name`, `mean`, `sd`, `r_hat`,
/// `ess_bulk`), with the solve's divergences: a sample's `--json`.
pub fn summary_json_of(sol: &crux::Solution) -> serde_json::Value {
    let rows: Vec<_> = sol
        .summary()
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({"name": r.name, "mean": r.mean, "sd": r.sd, "r_hat": r.r_hat, "ess_bulk": r.ess_bulk})
        })
        .collect();
    let divergences: usize = sol.models.iter().filter_map(|m| m.divergences).sum();
    serde_json::json!({"summary": rows, "divergences": divergences})
}

/// Prints an error and its chain of causes, then exits with status 1.
/// An interrupted run (Ctrl-C) prints the summary of its draws so far and
/// the resume command, and exits with status 130.
pub fn exit_with(e: crux::Error) -> ! {
    if let crux::Error::Interrupted {
        checkpoint,
        partial,
        ..
    } = &e
    {
        eprintln!("{e}");
        println!("draws so far:");
        print!("{}", partial.summary());
        if let Some(path) = checkpoint {
            eprintln!(
                "resume with the same command and --resume {}",
                path.display()
            );
        }
        std::process::exit(130);
    }
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    std::process::exit(1)
}

/// Ctrl-C ends the run at the next chunk boundary, after writing the
/// checkpoint when one is configured (the handler only asks: kill the
/// process to stop at once).
pub fn interrupt_on_ctrl_c() {
    let _ = ctrlc::set_handler(crux::interrupt);
}

/// The sampling flags every sample takes.
#[derive(clap::Args, Debug, Clone)]
pub struct SampleArgs {
    /// Independent chains.
    #[arg(long, default_value_t = 1)]
    pub chains: usize,
    /// Seed of the problem (noise draws and sampler streams).
    #[arg(long, default_value_t = crux::DEFAULT_SEED)]
    pub seed: u64,
    /// Where the chains run.
    #[arg(long, value_enum, default_value_t = BackendArg::Cranelift)]
    pub backend: BackendArg,
    /// Write a JSON summary here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,
    /// Write the chains (`posterior/<name>`, chain × draw × ...), the
    /// per-draw diagnostics (`sample_stats/<field>`) and the problem's data
    /// here, in the layout arviz reads.
    #[arg(long, value_name = "PATH")]
    pub npz: Option<std::path::PathBuf>,
    /// Write pictures (PNG) into this folder: trace plots with marginal
    /// densities, predictive bands.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Write the chunk kernel's PTX here and stop (no GPU needed).
    #[arg(long, value_name = "PATH")]
    pub emit_ptx: Option<std::path::PathBuf>,
    /// Write the draws as CSV here (one row per chain and draw).
    #[arg(long, value_name = "PATH")]
    pub csv: Option<std::path::PathBuf>,
    /// Which Cranelift code runs the chains (auto: baseline first,
    /// optimised in the background when the run is long enough).
    #[arg(long, value_enum, default_value_t = TieringArg::Auto)]
    pub tiering: TieringArg,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No log lines and no progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stream metrics (one JSON object per chunk) to this file.
    #[arg(long, value_name = "PATH")]
    pub track: Option<std::path::PathBuf>,
    /// Write a checkpoint of the run here at chunk boundaries (resume a
    /// killed run with `--resume PATH`).
    #[arg(long)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// Least seconds between checkpoints.
    #[arg(long, default_value_t = 60.0)]
    pub checkpoint_every: f64,
    /// Continue the run a checkpoint holds (same problem and settings).
    #[arg(long)]
    pub resume: Option<std::path::PathBuf>,
}

/// A training curve in one line: about `points` `sweep: loss` pairs of
/// `history` (a [`crux::Solution::loss_history`]), the last one included.
pub fn loss_curve(history: &[(usize, f64)], points: usize) -> String {
    let step = (history.len() / points.max(1)).max(1);
    let mut picked: Vec<(usize, f64)> = history.iter().copied().step_by(step).collect();
    if let Some(last) = history.last() {
        if picked.last() != Some(last) {
            picked.push(*last);
        }
    }
    let parts: Vec<String> = picked
        .iter()
        .map(|(s, l)| format!("{s}: {l:.3e}"))
        .collect();
    parts.join(", ")
}

/// Sends crux's log lines to stderr unless `quiet` (see
/// [`crux::init_logging`]).
pub fn init_logging(quiet: bool) {
    if !quiet {
        crux::init_logging();
    }
}

/// `--backend` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// The kernel-IR reference interpreter.
    Interp,
    /// Cranelift machine code.
    Cranelift,
    /// An NVIDIA GPU (one thread per chain; needs the CUDA driver).
    Cuda,
}

/// `--tiering` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieringArg {
    /// Baseline code first, optimised code when it pays off.
    Auto,
    /// Baseline code only.
    Baseline,
    /// Optimised code only.
    Optimised,
}

impl SampleArgs {
    /// With `--plot DIR`: writes `DIR/file`, the predictive mean and 90%
    /// band of `u` over `x` (from [`problems::predictive_band`]) against
    /// the exact `sin(πx)`.
    pub fn plot_band(
        &self,
        file: &str,
        title: &str,
        x: &[f64],
        band: &[(f64, f64, f64)],
    ) -> crux::Result<()> {
        let Some(path) = self.plot_path(file)? else {
            return Ok(());
        };
        let mut cols: Vec<(f64, (f64, f64, f64))> =
            x.iter().copied().zip(band.iter().copied()).collect();
        cols.sort_by(|a, b| a.0.total_cmp(&b.0));
        let x: Vec<f64> = cols.iter().map(|c| c.0).collect();
        let exact: Vec<f64> = x.iter().map(|x| (crux::PI * x).sin()).collect();
        plot::band_plot(
            &path,
            title,
            &x,
            &cols.iter().map(|c| c.1 .0).collect::<Vec<_>>(),
            &cols.iter().map(|c| c.1 .1).collect::<Vec<_>>(),
            &cols.iter().map(|c| c.1 .2).collect::<Vec<_>>(),
            Some(&exact),
            "x",
            "u(x)",
        )
        .map_err(|e| io_error(&path, e))
    }

    /// The solve options these flags ask for (and the log output they
    /// imply: `tracing` events on stderr unless `--quiet`).
    pub fn solve_options(&self) -> crux::Result<crux::SolveOptions> {
        init_logging(self.quiet);
        interrupt_on_ctrl_c();
        let mut o = crux::SolveOptions::default().backend(match self.backend {
            BackendArg::Interp => crux::Backend::Interpreter,
            BackendArg::Cranelift => crux::Backend::Cranelift,
            BackendArg::Cuda => crux::Backend::Cuda,
        });
        o = o.tiering(match self.tiering {
            TieringArg::Auto => crux::Tiering::Auto,
            TieringArg::Baseline => crux::Tiering::Baseline,
            TieringArg::Optimised => crux::Tiering::Optimised,
        });
        if let Some(t) = self.threads {
            o = o.threads(t);
        }
        if self.quiet {
            o = o.quiet();
        }
        if let Some(path) = &self.track {
            o = o.tracker(crux::JsonlTracker::create(path)?);
        }
        if let Some(path) = &self.checkpoint {
            o = o.checkpoint(path).checkpoint_every(self.checkpoint_every);
        }
        if let Some(path) = &self.resume {
            o = o.resume(path);
        }
        Ok(o)
    }
}

/// A scalar summary of one parameter entry's chains, as the samples print
/// and write it.
pub fn summary_json(s: &crux::diagnostics::Summary) -> serde_json::Value {
    serde_json::json!({
        "mean": s.mean, "sd": s.sd, "q05": s.q05, "q95": s.q95,
        "rhat": s.rhat, "ess_bulk": s.ess_bulk, "ess_tail": s.ess_tail,
    })
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &serde_json::Value) -> crux::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    crux::atomic_write(path, text.as_bytes()).map_err(|e| io_error(path, e))
}

/// `name` with every character outside letters, digits, `.`, `_`, `-`
/// replaced by `_` (a file name).
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An I/O failure as a crux error naming the path.
pub fn io_error(path: &std::path::Path, e: std::io::Error) -> crux::Error {
    crux::Error::InvalidArgument {
        what: format!("output path {}", path.display()),
        reason: e.to_string(),
    }
}

impl SampleArgs {
    /// Handles `--emit-ptx PATH`: writes the PTX of the chunk kernel that a
    /// solve of `epochs` sweeps of `problem` would run, and returns `true`
    /// (the sample then stops).
    pub fn emit_ptx(&self, problem: &crux::Crux, epochs: usize) -> crux::Result<bool> {
        let Some(path) = &self.emit_ptx else {
            return Ok(false);
        };
        let ptx = problem.emit_ptx(epochs)?;
        crux::atomic_write(path, ptx.as_bytes()).map_err(|e| io_error(path, e))?;
        Ok(true)
    }

    /// The path of picture `name` under `--plot DIR` (creating the folder),
    /// or `None` without `--plot`.
    pub fn plot_path(&self, name: &str) -> crux::Result<Option<std::path::PathBuf>> {
        let Some(dir) = &self.plot else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        Ok(Some(dir.join(name)))
    }

    /// Trace plots (with the marginal density) of every entry of
    /// `posterior`'s first leaves, up to `max` of them, under `--plot`;
    /// `reference(i)` gives an exact `(mean, sd)` to overlay.
    pub fn plot_traces(
        &self,
        posterior: &crux::Posterior,
        max: usize,
        reference: impl Fn(usize) -> Option<(f64, f64)>,
    ) -> crux::Result<()> {
        if self.plot.is_none() {
            return Ok(());
        }
        let rows = posterior.summary().rows;
        for (i, row) in rows.iter().enumerate().take(max) {
            let (mut leaf, mut j) = (0, i);
            while let Some(l) = posterior.leaves.get(leaf) {
                let n: usize = l.samples.shape()[2..].iter().product();
                if j < n {
                    break;
                }
                j -= n;
                leaf += 1;
            }
            let Some(x) = posterior.entry(leaf, j) else {
                continue;
            };
            let file = format!("trace_{}.png", sanitize(&row.name));
            if let Some(path) = self.plot_path(&file)? {
                plot::trace_plot(&path, &row.name, x.view(), reference(i))
                    .map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(())
    }

    /// The quick example's pictures: each coefficient's trace and
    /// marginal, with the exact Gaussian posterior `(mean, cov)` (the model
    /// is linear-Gaussian) overlaid.
    pub fn plot_exact_traces(
        &self,
        posteriors: &[&crux::Posterior],
        (mu, cov): ([f64; 2], [[f64; 2]; 2]),
    ) -> crux::Result<()> {
        for (i, post) in posteriors.iter().enumerate().take(2) {
            self.plot_traces(post, 1, |_| Some((mu[i], cov[i][i].sqrt())))?;
        }
        Ok(())
    }

    /// Writes `--npz` (arviz layout, plus `data`) and `--csv` if asked for.
    pub fn write_outputs(
        &self,
        posteriors: &[&crux::Posterior],
        data: &[crux::export::NpyArray],
    ) -> crux::Result<()> {
        if let Some(path) = &self.npz {
            crux::export::write_arviz_npz(path, posteriors, data)?;
        }
        if let Some(path) = &self.csv {
            crux::export::write_csv(path, posteriors)?;
        }
        Ok(())
    }
}
