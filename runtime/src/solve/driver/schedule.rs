//! Step 4 of a solve: the chunk scheduler. Chunks of sweeps run on every
//! chain in turn; between chunks the host switches code tiers, updates the
//! progress bar and feeds the tracker.

use std::sync::{Mutex, OnceLock};
use std::thread::Scope;
use std::time::Instant;

use crux_compiler::backend::clif::{self, ClifKernel, ClifOptions};
use crux_compiler::sampler::kernels::ELBO_FIELD;
use crux_compiler::sampler::{Chunk, DiagKind, DiagName, Family};

use super::exe::{clif_options, Chain, Executor};
use super::init::ThetaLayout;
use super::plan::Plan;
use crate::compile::problem::Problem;
use crate::compile::pushforward::Pushforward;
use crate::error::Result;
use crate::solve::checkpoint::RunClock;
use crate::solve::options::{progress_bar, SolveOptions, Tiering};
use crate::solve::track::Metrics;

/// What the scheduler measured.
#[derive(Default)]
pub(crate) struct Timings {
    pub warmup_seconds: f64,
    pub sampling_seconds: f64,
    /// Gradient evaluations of all chains during warmup.
    pub grad_evals_warmup: u64,
    /// How long the optimised tier took to compile in the background.
    pub optimised_compile_seconds: Option<f64>,
    /// `(sweep, loss at chain 0)` at every chunk end, when a model is
    /// optimised.
    pub loss_history: Vec<(usize, f64)>,
    /// The sweep at which the run stopped early (`stop_after_chunks` or
    /// [`crate::interrupt`]), after writing its checkpoint; the chains'
    /// host buffers are in sync.
    pub stopped_at: Option<usize>,
}

/// The fixed inputs of a run.
pub(crate) struct Run<'a> {
    pub problem: &'a Problem,
    pub plan: &'a Plan,
    pub exe: &'a Executor,
    pub chains: &'a [Chain],
    pub seed: u64,
    pub threads: usize,
    pub opts: &'a SolveOptions,
    /// Seconds spent compiling before the first sweep.
    pub compile_seconds: f64,
    /// Where to write checkpoints, and the run's identity.
    pub checkpoint: Option<(&'a std::path::Path, &'a crate::solve::checkpoint::RunId<'a>)>,
}

impl Run<'_> {
    /// Sweeps of the longest model's warmup.
    pub fn warmup_sweeps(&self) -> usize {
        self.plan
            .sampled()
            .map(|(_, r, _)| r.warmup)
            .max()
            .unwrap_or(0)
            .min(self.plan.chunk.sweeps)
    }

    /// Sweeps per chunk once the run is under way.
    pub fn chunk_len(&self) -> usize {
        let sweeps = self.plan.chunk.sweeps;
        self.opts.chunk.unwrap_or((sweeps / 10).max(10))
    }

    /// Runs every sweep from `from` (0, or a resumed checkpoint's). Chunk ends: a short first chunk on the code
    /// compiled first (it times the run), then chunks of `chunk_len` (short
    /// ones while optimised code may still arrive), cut at the end of
    /// warmup.
    pub fn run_all(&self, from: usize, clock: RunClock) -> Result<Timings> {
        let sweeps = self.plan.chunk.sweeps;
        let warmup = self.warmup_sweeps();
        let chunk_len = self.chunk_len();
        let mut progress = Progress::new(self)?;
        let mut t = Timings {
            warmup_seconds: clock.warmup_seconds,
            sampling_seconds: clock.sampling_seconds,
            grad_evals_warmup: clock.grad_evals_warmup,
            ..Timings::default()
        };
        let optimised_seconds: Mutex<Option<f64>> = Mutex::new(None);
        let mut checkpoints = self.checkpoint.map(|(path, id)| {
            crate::solve::checkpoint::Writer::new(path, id, self.opts.checkpoint_every)
        });
        let mut chunks = 0;
        std::thread::scope(|scope| -> Result<()> {
            let mut lo = from;
            while lo < sweeps {
                let len = if lo == from {
                    (sweeps / 100).clamp(1, chunk_len).min(sweeps)
                } else if self.exe.optimised_pending() {
                    (chunk_len / 10).max(1)
                } else {
                    chunk_len
                };
                let mut hi = (lo + len).min(sweeps);
                if lo < warmup && hi > warmup {
                    hi = warmup;
                }
                let start = Instant::now();
                self.exe
                    .run(self.chains, self.seed, (lo, hi), self.threads)
                    .map_err(|cause| self.plan.run_error(cause))?;
                let dt = start.elapsed().as_secs_f64();
                if hi <= warmup {
                    t.warmup_seconds += dt;
                } else {
                    t.sampling_seconds += dt;
                }
                let synced = hi == warmup || progress.wanted();
                if synced {
                    self.exe
                        .sync(self.chains)
                        .map_err(|cause| self.plan.run_error(cause))?;
                }
                if hi == warmup {
                    t.grad_evals_warmup = grad_evals(&self.plan.chunk, self.chains);
                }
                if lo == from {
                    self.start_optimised_tier(scope, dt / (hi - lo) as f64, hi, &optimised_seconds);
                }
                progress.update(self, hi, &mut t)?;
                self.check_finite(hi, synced)?;
                chunks += 1;
                let stop = (self.opts.stop_after_chunks.is_some_and(|n| chunks >= n)
                    || crate::solve::checkpoint::take_interrupt())
                    && hi < sweeps;
                if let Some(w) = checkpoints.as_mut().filter(|w| w.due(hi, stop)) {
                    self.exe
                        .sync(self.chains)
                        .map_err(|cause| self.plan.run_error(cause))?;
                    let clock = RunClock {
                        warmup_seconds: t.warmup_seconds,
                        sampling_seconds: t.sampling_seconds,
                        grad_evals_warmup: t.grad_evals_warmup,
                    };
                    w.write(hi, self.chains, clock)?;
                }
                if stop {
                    t.stopped_at = Some(hi);
                    break;
                }
                lo = hi;
            }
            Ok(())
        })?;
        progress.finish();
        self.exe
            .sync(self.chains)
            .map_err(|cause| self.plan.run_error(cause))?;
        if warmup == 0 {
            t.grad_evals_warmup = 0;
        }
        t.optimised_compile_seconds = optimised_seconds
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        Ok(t)
    }

    /// Stops the run when a stochastic-gradient chain's position is no
    /// longer finite (checked at chunk ends, after a device sync unless
    /// the chunk end already `synced`; only when such a model is sampled).
    fn check_finite(&self, hi: usize, synced: bool) -> Result<()> {
        let sg: Vec<_> = self
            .plan
            .sampled()
            .filter(|(_, r, _)| r.kernel.family() == Family::StochasticGradient)
            .collect();
        if sg.is_empty() {
            return Ok(());
        }
        if !synced {
            self.exe
                .sync(self.chains)
                .map_err(|cause| self.plan.run_error(cause))?;
        }
        for (chain, c) in self.chains.iter().enumerate() {
            let bufs = c.lock().unwrap_or_else(|e| e.into_inner());
            let theta = &bufs.state()[self.plan.chunk.theta..];
            for (m, r, _) in &sg {
                if !theta[m.offset..m.offset + m.len]
                    .iter()
                    .all(|v| v.is_finite())
                {
                    return Err(crate::error::Error::Diverged {
                        model: m.name.clone(),
                        kernel: r.kernel.name().to_string(),
                        chain,
                        sweeps: hi,
                    });
                }
            }
        }
        Ok(())
    }

    /// Tiering: when the rest of the run on the baseline code (at
    /// `per_sweep` seconds a sweep after sweep `done`) is predicted to
    /// outlast compiling optimised code (about 3x the baseline's compile
    /// time) twice over, compiles it on another thread; chunks switch to it
    /// once it is ready.
    fn start_optimised_tier<'s>(
        &'s self,
        scope: &'s Scope<'s, '_>,
        per_sweep: f64,
        done: usize,
        seconds: &'s Mutex<Option<f64>>,
    ) {
        if self.opts.tiering != Tiering::Auto {
            return;
        }
        let Executor::Clif { optimised, .. } = self.exe else {
            return;
        };
        let rest = per_sweep * (self.plan.chunk.sweeps - done) as f64;
        if rest <= 2.0 * 3.0 * self.compile_seconds {
            return;
        }
        let (function, opts) = (&self.plan.chunk.function, clif_options(self.plan));
        scope.spawn(move || compile_in_background(function, &opts, optimised, seconds));
    }
}

fn compile_in_background(
    function: &crux_ir::kernel::Function,
    opts: &ClifOptions,
    slot: &OnceLock<Box<ClifKernel>>,
    seconds: &Mutex<Option<f64>>,
) {
    let t = Instant::now();
    // A failure leaves the run on the baseline tier, which computes the
    // same bits.
    if let Ok(k) = clif::compile(function, opts) {
        let _ = slot.set(Box::new(k));
        *seconds.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.elapsed().as_secs_f64());
    }
}

/// Gradient evaluations of all chains so far.
pub(crate) fn grad_evals(chunk: &Chunk, chains: &[Chain]) -> u64 {
    chains
        .iter()
        .map(|c| {
            let bufs = c.lock().unwrap_or_else(|e| e.into_inner());
            let st = bufs.state();
            chunk
                .models
                .iter()
                .map(|m| st[m.grad_evals] as u64)
                .sum::<u64>()
        })
        .sum()
}

/// The progress bar and the tracker, fed at chunk ends.
struct Progress {
    bar: indicatif::ProgressBar,
    /// The loss and each constraint's value, compiled once, evaluated at
    /// chain 0's position per chunk (trackers only).
    losses: Vec<(String, Pushforward)>,
    started: Instant,
}

impl Progress {
    fn new(run: &Run<'_>) -> Result<Progress> {
        let losses = match (&run.opts.tracker, run.plan.optimises()) {
            (None, false) => Vec::new(),
            _ => {
                let leaves: Vec<_> = run
                    .plan
                    .members
                    .iter()
                    .flat_map(|s| s.leaves.clone())
                    .collect();
                let mut v = vec![(
                    "loss".to_string(),
                    Pushforward::compile(run.problem, &run.problem.loss(), &leaves)?,
                )];
                for (i, c) in run.problem.constraints().iter().enumerate() {
                    v.push((
                        format!("loss/c{i}"),
                        Pushforward::compile(run.problem, &c.value(), &leaves)?,
                    ));
                }
                v
            }
        };
        Ok(Progress {
            bar: progress_bar(run.opts, run.plan.chunk.sweeps),
            losses,
            started: Instant::now(),
        })
    }

    /// Whether anything reads the chains at chunk ends.
    fn wanted(&self) -> bool {
        !self.bar.is_hidden() || !self.losses.is_empty()
    }

    fn update(&mut self, run: &Run<'_>, hi: usize, t: &mut Timings) -> Result<()> {
        if !self.wanted() {
            return Ok(());
        }
        let k = run.plan.k;
        let (mut values, divergent) = model_metrics(run.plan, run.chains, hi);
        {
            let c0 = run.chains[0].lock().unwrap_or_else(|e| e.into_inner());
            let leaves = ThetaLayout::new(&run.plan.chunk, &run.plan.members).unpack(c0.state());
            let at: Vec<&[f64]> = leaves.iter().map(|v| &**v).collect();
            for (name, pf) in &mut self.losses {
                values.push((name.clone(), pf.eval(&at)?[0]));
            }
        }
        let loss = values.iter().find(|(n, _)| n == "loss").map(|v| v.1);
        if let (Some(loss), true) = (loss, run.plan.optimises()) {
            t.loss_history.push((hi, loss));
        }
        let sampling = run.plan.sampled().next().is_some();
        let rate = if !sampling {
            format!(
                "training | {:.0} sweeps/s",
                (hi * k) as f64 / (t.warmup_seconds + t.sampling_seconds).max(1e-9)
            )
        } else if hi <= run.warmup_sweeps() {
            // No draws yet: chain-sweeps per second.
            format!(
                "warmup | {:.0} sweeps/s",
                (hi * k) as f64 / t.warmup_seconds.max(1e-9)
            )
        } else {
            let drawn: usize = run
                .plan
                .sampled()
                .map(|(_, r, _)| r.kept_after(hi) * k)
                .sum();
            format!(
                "sampling | {:.0} draws/s",
                drawn as f64 / t.sampling_seconds.max(1e-9)
            )
        };
        let mut loss = loss.map_or(String::new(), |l| format!(" | loss {l:.4e}"));
        if let Some((_, e)) = values.iter().find(|(n, _)| n == "elbo") {
            loss.push_str(&format!(" | elbo {e:.4e}"));
        }
        self.bar.set_position(hi as u64);
        self.bar
            .set_message(format!("{rate} | {divergent} divergent{loss}"));
        let Some(tracker) = &run.opts.tracker else {
            return Ok(());
        };
        let m = Metrics {
            sweep: hi,
            sweeps: run.plan.chunk.sweeps,
            seconds: self.started.elapsed().as_secs_f64(),
            values,
        };
        tracker.lock().unwrap_or_else(|e| e.into_inner()).record(&m)
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The spec's `posterior/<model>/...` metrics after sweep `hi`, and the
/// divergences so far.
fn model_metrics(plan: &Plan, chains: &[Chain], hi: usize) -> (Vec<(String, f64)>, usize) {
    let mut out = Vec::new();
    let mut divergent = 0;
    let k = chains.len();
    let guards: Vec<_> = chains
        .iter()
        .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()))
        .collect();
    for (m, r, slots) in plan.sampled() {
        let n = r.kept_after(hi);
        let key = |f: &str| format!("posterior/{}/{f}", m.name);
        out.push((key("n_samples"), n as f64));
        out.push((key("n_chains"), k as f64));
        if n == 0 {
            continue;
        }
        if m.len == 1 {
            // The model's value: through the leaf's transform.
            let t = m.leaves[0].transform();
            let sum: f64 = guards
                .iter()
                .map(|g| {
                    let u = &g.draws()[slots.draws..slots.draws + n];
                    t.forward(u).iter().sum::<f64>()
                })
                .sum();
            out.push((key("mean"), sum / (n * k) as f64));
        }
        let nf = slots.fields.len();
        for (j, f) in slots.fields.iter().enumerate() {
            let vals = guards
                .iter()
                .flat_map(|g| (0..n).map(move |i| g.diag()[slots.diag + i * nf + j]));
            match (DiagName::from_name(f.name), f.kind) {
                (Some(DiagName::IsDivergent), DiagKind::Bool) => {
                    let c = vals.filter(|v| *v != 0.0).count();
                    divergent += c;
                    out.push((key("n_is_divergent"), c as f64));
                }
                (None, DiagKind::Float) if r.is_vi() && f.name == ELBO_FIELD.name => {
                    // The latest step's ELBO, averaged over the chains.
                    let last: f64 = guards
                        .iter()
                        .map(|g| g.diag()[slots.diag + (n - 1) * nf + j])
                        .sum();
                    out.push(("elbo".to_string(), last / k as f64));
                    out.push((key("elbo"), last / k as f64));
                }
                (Some(DiagName::AcceptanceRate | DiagName::Energy), DiagKind::Float) => {
                    let v: Vec<f64> = vals.filter(|v| v.is_finite()).collect();
                    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                    out.push((key(&format!("mean_{}", f.name)), mean));
                }
                _ => {}
            }
        }
    }
    (out, divergent)
}
