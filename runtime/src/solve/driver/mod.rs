//! The solve driver, in steps: [`plan`] (validate the sampled models and
//! build the chunk function), [`init`] (every chain's buffers), [`exe`]
//! (compile for the backend and tier; [`cpu`] and `cuda` run chunks),
//! [`schedule`] (chunks between progress lines, tracker, tier switch) and
//! [`collect`] (posteriors, write-back, reports).

pub(crate) mod collect;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod exe;
pub(crate) mod init;
pub(crate) mod plan;
mod schedule;

use std::sync::Mutex;
use std::time::Instant;

use crux_compiler::backend::ptx::{emit, PtxOptions};
use crux_compiler::pipeline::CompileError;

use super::options::{Solution, SolveOptions};
use crate::compile::problem::Problem;
use crate::error::{Error, Result};

/// Runs a solve of `epochs` sweeps (see [`crate::Crux::solve`]).
pub(crate) fn solve(problem: &Problem, epochs: usize, opts: &SolveOptions) -> Result<Solution> {
    let log = |msg: String| {
        if !opts.quiet {
            tracing::info!("{msg}");
        }
    };
    let t_compile = Instant::now();
    let plan = plan::plan(problem, epochs, opts.substeps.as_deref(), &log)?;
    let seed = opts.seed.unwrap_or(problem.seed());
    let t_init = Instant::now();
    let starts = super::initializers::run(problem, &plan, seed, opts.substeps.is_some(), &log)?;
    let initializer_seconds = t_init.elapsed().as_secs_f64();
    let mut bufs0 = init::chains(&plan, seed, &starts);
    // Checkpoints identify the run by its compiled problem and settings.
    let problem_hash = (opts.checkpoint.is_some() || opts.resume.is_some())
        .then(|| super::checkpoint::problem_hash(&plan));
    let run_id = problem_hash
        .as_deref()
        .map(|problem| super::checkpoint::RunId {
            problem,
            seed,
            chains: plan.k,
            sweeps: plan.chunk.sweeps,
        });
    let (mut start, mut clock) = (0, super::checkpoint::RunClock::default());
    if let (Some(path), Some(id)) = (&opts.resume, &run_id) {
        let (sweep, saved) = super::checkpoint::restore(path, id, &mut bufs0)?;
        start = sweep;
        clock = saved;
        log(format!("resuming from {} at sweep {sweep}", path.display()));
    }
    let chains: Vec<exe::Chain> = bufs0.into_iter().map(Mutex::new).collect();
    let exe = exe::Executor::new(&plan, &chains, opts)?;
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(plan.k)
        .max(1);
    let run = schedule::Run {
        problem,
        plan: &plan,
        exe: &exe,
        chains: &chains,
        seed,
        threads,
        opts,
        compile_seconds: t_compile.elapsed().as_secs_f64(),
        checkpoint: opts.checkpoint.as_deref().zip(run_id.as_ref()),
    };
    let (sweeps, warmup_sweeps) = (plan.chunk.sweeps, run.warmup_sweeps());
    let what = if plan.members.iter().any(|m| m.mcmc().is_some()) {
        "MCMC"
    } else if plan.members.iter().any(|m| m.sampled().is_some()) {
        "VI"
    } else {
        "training"
    };
    log(format!(
        "{what}: one fused chunk function per chain ({:?}), {warmup_sweeps} warmup sweeps + {} sampling sweeps, chunks of {} sweeps, {} chain(s) on {threads} thread(s)",
        opts.backend,
        sweeps - warmup_sweeps,
        run.chunk_len(),
        plan.k
    ));
    let timings = run.run_all(start, clock)?;
    let compile_seconds = run.compile_seconds;
    if let Some(t) = timings.optimised_compile_seconds {
        log(format!(
            "MCMC: optimised code compiled in {:.1} ms in the background; later chunks ran on it",
            t * 1e3
        ));
    }
    let grad_evals_total = schedule::grad_evals(&plan.chunk, &chains);
    let done = timings.stopped_at.unwrap_or(sweeps);
    let grad_evals_warmup = if done <= warmup_sweeps {
        grad_evals_total
    } else {
        timings.grad_evals_warmup
    };
    let bufs: Vec<_> = chains
        .into_iter()
        .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let (posteriors, reports) = collect::collect(&plan, &bufs, seed, done)?;
    collect::log_reports(&reports, plan.k, &log);
    let solution = Solution {
        backend: opts.backend,
        num_chains: plan.k,
        sweeps,
        warmup_sweeps,
        compile_seconds,
        optimised_compile_seconds: timings.optimised_compile_seconds,
        initializer_seconds,
        warmup_seconds: timings.warmup_seconds,
        sampling_seconds: timings.sampling_seconds,
        grad_evals_warmup,
        grad_evals: grad_evals_total - grad_evals_warmup,
        threads,
        models: reports,
        posteriors,
        loss_history: timings.loss_history,
    };
    match timings.stopped_at {
        None => Ok(solution),
        Some(done) => Err(Error::Interrupted {
            sweeps: done,
            total: sweeps,
            checkpoint: opts.checkpoint.clone(),
            partial: Box::new(solution),
        }),
    }
}

/// The chunk function a solve of `epochs` sweeps would run.
pub(crate) fn chunk_function(
    problem: &Problem,
    epochs: usize,
    opts: &SolveOptions,
) -> Result<crux_ir::kernel::Function> {
    Ok(
        plan::plan(problem, epochs, opts.substeps.as_deref(), &|_| {})?
            .chunk
            .function,
    )
}

/// The PTX of the chunk function a CUDA solve of `epochs` sweeps would
/// launch.
pub(crate) fn chunk_ptx(problem: &Problem, epochs: usize, opts: &SolveOptions) -> Result<String> {
    let p = plan::plan(problem, epochs, opts.substeps.as_deref(), &|_| {})?;
    let opts = PtxOptions {
        bounds_checks: !p.builtin(),
        thread_param: Some(1),
        max_threads_per_block: 128,
    };
    emit(&p.chunk.function, &opts).map_err(|e| Error::Compile(CompileError::Backend(e)))
}
