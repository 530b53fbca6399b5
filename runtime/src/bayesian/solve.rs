//! The solve driver: one fused chunk function for all sampled models, one
//! buffer set per chain, chains on threads, chunks between progress lines.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crux_compiler::backend::clif::{self, ClifOptions};
use crux_compiler::backend::Interpreter;
use crux_compiler::lower::lower_log_density;
use crux_compiler::pipeline::CompileError;
use crux_compiler::sampler::{build_chunk, DiagKind, ModelPlan};
use crux_ir::kernel::Buffer;
use crux_ir::rng::{normal, stream, Purpose};
use ndarray::{Array2, ArrayD, IxDyn};

use super::eval::Pushforward;
use super::exe::Exe;
use super::options::{progress_bar, ModelReport, Solution, SolveOptions, Tiering};
use super::posterior::{Diagnostics, LeafSamples, Posterior};
use super::run::{f64s, grad_evals, model_metrics, ChainBuffers, ModelView};
use super::track::Metrics;
use super::Resolved;
use crate::compiled::Backend;
use crate::error::{Error, Result};
use crate::param::Param;
use crate::problem::Crux;

/// The most sweeps one solve may run (draw counters keep the sweep in
/// 23 bits).
pub const MAX_SWEEPS: usize = 1 << 23;

/// A validated solve: the sampled models, the chunk function, the chains.
struct Prepared {
    sampled: Vec<Sampled>,
    chunk: crux_compiler::sampler::Chunk,
    k: usize,
}

struct Sampled {
    name: String,
    /// A kernel of crux's (not a user kernel).
    builtin: bool,
    id: crate::ids::ModelId,
    leaves: Vec<Param>,
    cfg: Resolved,
    offset: usize,
    len: usize,
}

impl Crux {
    /// Samples every model that has a `.bayesian(..)` configuration: each
    /// runs its warmup, then keeps one draw every `thin` sweeps until
    /// `keep`. `epochs` caps the sweeps: when it ends before `warmup +
    /// keep·thin` a model keeps fewer draws; sweeps beyond the longest
    /// model's `warmup + keep·thin` are not run ([`Solution::sweeps`] says
    /// how many ran). Models without a configuration stay at their current
    /// values. Afterwards each sampled model holds chain 0's last position
    /// and its posterior.
    pub fn solve(&self, epochs: usize) -> Result<Solution> {
        self.solve_with(epochs, &SolveOptions::default())
    }

    /// Validates every `.bayesian(..)` model and builds the chunk
    /// function of a solve of `epochs` sweeps (logging the configuration
    /// lines through `log`).
    fn prepare(&self, epochs: usize, log: &dyn Fn(String)) -> Result<Prepared> {
        let mut sampled = Vec::new();
        let mut offset = 0;
        for m in self.models() {
            let Some(cfg) = m.leaves[0].cell().config() else {
                continue;
            };
            let mut leaves = m.leaves.clone();
            leaves.sort_by_key(Param::leaf_id);
            let len: usize = leaves.iter().map(Param::len).sum();
            let cfg_kernel = cfg.kernel().clone();
            let mut cfg = cfg.resolve(&m.name, len)?;
            let sweeps_needed = cfg.warmup + cfg.keep * cfg.thin;
            if epochs < sweeps_needed {
                let avail = epochs.saturating_sub(cfg.warmup) / cfg.thin;
                if avail == 0 {
                    return Err(Error::Bayesian {
                        model: m.name.clone(),
                        reason: format!(
                            "{epochs} epochs leave no draw after warmup {} with thin {}: solve at least {} epochs (warmup + keep·thin = {sweeps_needed})",
                            cfg.warmup, cfg.thin, cfg.warmup + cfg.thin
                        ),
                    });
                }
                cfg.keep = cfg.keep.min(avail);
            }
            sampled.push(Sampled {
                builtin: !matches!(cfg_kernel, super::KernelChoice::Custom(_)),
                name: m.name.clone(),
                id: m.id,
                leaves,
                cfg,
                offset,
                len,
            });
            offset += len;
        }
        if sampled.is_empty() {
            return Err(Error::NoBayesianModel);
        }
        let warmups: Vec<usize> = sampled.iter().map(|s| s.cfg.warmup).collect();
        if warmups.iter().any(|w| *w != warmups[0]) {
            log(format!(
                "models have different warmups {warmups:?}: each keeps draws after its own warmup while the others may still be adapting; give them one warmup for draws from the joint posterior throughout"
            ));
        }
        let dim = offset;
        let k = sampled[0].cfg.num_chains;
        if sampled.iter().any(|s| s.cfg.num_chains != k) {
            let list: Vec<String> = sampled
                .iter()
                .map(|s| format!("{}={}", s.name, s.cfg.num_chains))
                .collect();
            return Err(Error::MismatchedChains(format!("[{}]", list.join(", "))));
        }
        for s in &sampled {
            let fields: Vec<&str> = s.cfg.kernel.diagnostics().iter().map(|f| f.name).collect();
            let diag = if fields.is_empty() {
                "none (kernel has no info record)".to_string()
            } else {
                fields.join(", ")
            };
            log(format!(
                "Model '{}': Bayesian sampling via '{}' (kind={}, warmup={}, keep={}, thin={}, adapt={}, chains={k}, diagnostics={diag})",
                s.name,
                s.cfg.kernel.name(),
                match s.cfg.kernel.family() {
                    crux_compiler::sampler::Family::FullData => "full",
                    crux_compiler::sampler::Family::StochasticGradient => "grad_estimator",
                },
                s.cfg.warmup,
                s.cfg.keep,
                s.cfg.thin,
                s.cfg.adapt
            ));
        }

        // One conditional log-density per model over the whole θ.
        let mut plans = Vec::new();
        for (i, s) in sampled.iter().enumerate() {
            let mut b = self.log_density().likelihood_scale(s.cfg.likelihood_scale);
            for (j, o) in sampled.iter().enumerate() {
                let prior = (i == j).then(|| s.cfg.prior.clone());
                b = b.slot(&o.name, o.id, &o.leaves, prior);
            }
            let ld = b.build()?;
            let lowered = lower_log_density(ld.graph(), &format!("logp_{i}"))
                .map_err(|e| Error::Compile(CompileError::Lower(e)))?;
            plans.push(ModelPlan {
                name: s.name.clone(),
                kernel: s.cfg.kernel.clone(),
                target: lowered,
                offset: s.offset,
                len: s.len,
                warmup: s.cfg.warmup,
                keep: s.cfg.keep,
                thin: s.cfg.thin,
                adapt: s.cfg.adapt,
            });
        }
        let chunk = build_chunk(dim, &plans).map_err(|e| Error::Bayesian {
            model: sampled[0].name.clone(),
            reason: format!("the sampler kernel is invalid: {e}"),
        })?;
        // `Bayesian::resolve` bounded every model's `warmup + keep·thin`.
        debug_assert!(chunk.sweeps <= MAX_SWEEPS);
        Ok(Prepared { sampled, chunk, k })
    }

    /// The chunk function a solve of `epochs` sweeps would run (one chain
    /// per call; see `crux_compiler::sampler`): for inspection and for
    /// other backends.
    pub fn chunk_kernel(&self, epochs: usize) -> Result<crux_ir::kernel::Function> {
        Ok(self.prepare(epochs, &|_| {})?.chunk.function)
    }

    /// The PTX of the chunk kernel a CUDA solve of `epochs` sweeps would
    /// launch (one thread per chain; see `crux_compiler::backend::ptx` for
    /// the calling convention). Needs no GPU.
    pub fn emit_ptx(&self, epochs: usize) -> Result<String> {
        let p = self.prepare(epochs, &|_| {})?;
        let opts = crux_compiler::backend::ptx::PtxOptions {
            bounds_checks: !p.sampled.iter().all(|s| s.builtin),
            thread_param: Some(1),
            max_threads_per_block: 128,
        };
        crux_compiler::backend::ptx::emit(&p.chunk.function, &opts)
            .map_err(|e| Error::Compile(CompileError::Backend(e)))
    }

    /// [`Crux::solve`] with options (backend, threads, logging, chunking).
    pub fn solve_with(&self, epochs: usize, opts: &SolveOptions) -> Result<Solution> {
        let log = |msg: String| {
            if !opts.quiet {
                tracing::info!("{msg}");
            }
        };
        let t_compile = Instant::now();
        let Prepared { sampled, chunk, k } = self.prepare(epochs, &log)?;
        let sweeps = chunk.sweeps;
        let clif_error = |e| Error::Compile(CompileError::Backend(e));
        // Built-in kernels index only slots the chunk builder allocated
        // (loops over their lengths, NUTS checkpoints below max_depth, kept
        // draws below keep), so their loads and stores need no checks; a
        // user kernel's indices are unknown, so it keeps them.
        let builtin = sampled.iter().all(|s| s.builtin);
        let optimised_opts = if builtin {
            // SAFETY: see above; every built-in kernel's chunk function is
            // also run on the bounds-checking interpreter by the sampler
            // tests (crux-compiler `sampler::tests`, tests/sampling.rs), and
            // the buffers passed are exactly the sizes the chunk declares.
            unsafe { ClifOptions::default().without_bounds_checks() }
        } else {
            ClifOptions::default()
        };

        // Per-chain buffers.
        let seed = self.seed();
        let mut chains: Vec<ChainBuffers> = Vec::with_capacity(k);
        for c in 0..k {
            let mut state = vec![0.0; chunk.state.len];
            for (s, slots) in sampled.iter().zip(&chunk.models) {
                let mut at = chunk.theta + s.offset;
                for p in &s.leaves {
                    for v in p.values() {
                        state[at] = v;
                        at += 1;
                    }
                }
                if s.cfg.init_jitter > 0.0 {
                    let st = stream(Purpose::Sampler, c as u64);
                    for j in 0..s.len {
                        let z = normal(seed, st, (1 << 63) | (s.offset + j) as u64);
                        state[chunk.theta + s.offset + j] += s.cfg.init_jitter * z;
                    }
                }
                state[slots.step_size] = s.cfg.step_size;
                state[slots.inverse_mass..slots.inverse_mass + s.len]
                    .copy_from_slice(&s.cfg.inverse_mass);
            }
            let bufs = chunk.buffers(state);
            chains.push(Mutex::new(bufs));
        }

        let exe = match (opts.backend, opts.tiering) {
            (Backend::Interpreter, _) => Exe::Interp(Interpreter {
                function: chunk.function.clone(),
                fuel: u64::MAX,
            }),
            (Backend::Cranelift, Tiering::Optimised) => Exe::Clif {
                baseline: None,
                optimised: OnceLock::from(Box::new(
                    clif::compile(&chunk.function, &optimised_opts).map_err(clif_error)?,
                )),
            },
            (Backend::Cranelift, Tiering::Auto | Tiering::Baseline) => Exe::Clif {
                baseline: Some(Box::new(
                    clif::compile(&chunk.function, &optimised_opts.fast_compile())
                        .map_err(clif_error)?,
                )),
                optimised: OnceLock::new(),
            },
            #[cfg(feature = "cuda")]
            (Backend::Cuda, _) => {
                let host: Vec<Vec<Buffer>> = chains
                    .iter()
                    .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
                    .collect();
                Exe::Cuda(Mutex::new(super::cuda::CudaChains::new(
                    &chunk, &host, !builtin,
                )?))
            }
            #[cfg(not(feature = "cuda"))]
            (Backend::Cuda, _) => return Err(Error::Cuda(
                "crux was built without the `cuda` feature: rebuild with it (it is on by default)"
                    .into(),
            )),
        };
        let compile_seconds = t_compile.elapsed().as_secs_f64();

        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(k)
            .max(1);
        let warmup_sweeps = sampled
            .iter()
            .map(|s| s.cfg.warmup)
            .max()
            .unwrap_or(0)
            .min(sweeps);
        let chunk_len = opts.chunk.unwrap_or((sweeps / 10).max(10));
        log(format!(
            "MCMC: one fused chunk function per chain ({:?}), {warmup_sweeps} warmup sweeps + {} sampling sweeps, chunks of {chunk_len} sweeps, {k} chain(s) on {threads} thread(s)",
            opts.backend,
            sweeps - warmup_sweeps
        ));
        let views: Vec<ModelView<'_>> = sampled
            .iter()
            .zip(&chunk.models)
            .map(|(s, slots)| ModelView {
                name: &s.name,
                len: s.len,
                warmup: s.cfg.warmup,
                keep: s.cfg.keep,
                thin: s.cfg.thin,
                slots,
            })
            .collect();
        // The loss and each constraint's value at chain 0's position, for
        // trackers (compiled once, evaluated per chunk).
        let mut losses = match &opts.tracker {
            None => Vec::new(),
            Some(_) => {
                let leaves: Vec<Param> = sampled.iter().flat_map(|s| s.leaves.clone()).collect();
                let mut v = vec![(
                    "loss".to_string(),
                    Pushforward::compile(self, &self.loss(), &leaves)?,
                )];
                for (i, c) in self.constraints().iter().enumerate() {
                    v.push((
                        format!("loss/c{i}"),
                        Pushforward::compile(self, &c.value(), &leaves)?,
                    ));
                }
                v
            }
        };
        let bar = progress_bar(opts, sweeps);
        let t_run = Instant::now();
        // Chunk ends: a short first chunk on the code compiled first (it
        // times the run), then chunks of `chunk_len` (short ones while
        // optimised code may still arrive), cut at the end of warmup.
        let probe = (sweeps / 100).clamp(1, chunk_len).min(sweeps);
        let (mut warmup_seconds, mut sampling_seconds) = (0.0, 0.0);
        let mut grad_evals_warmup = 0;
        let optimised_seconds: Mutex<Option<f64>> = Mutex::new(None);
        std::thread::scope(|scope| -> Result<()> {
            let mut lo = 0;
            while lo < sweeps {
                let len = if lo == 0 {
                    probe
                } else if exe.optimised_pending() {
                    (chunk_len / 10).max(1)
                } else {
                    chunk_len
                };
                let mut hi = (lo + len).min(sweeps);
                if lo < warmup_sweeps && hi > warmup_sweeps {
                    hi = warmup_sweeps;
                }
                let t = Instant::now();
                exe.run(&chains, seed, (lo, hi), threads)?;
                let dt = t.elapsed().as_secs_f64();
                if hi <= warmup_sweeps {
                    warmup_seconds += dt;
                } else {
                    sampling_seconds += dt;
                }
                let host_needed = hi == warmup_sweeps || !bar.is_hidden() || opts.tracker.is_some();
                if host_needed {
                    exe.sync(&chains)?;
                }
                if hi == warmup_sweeps {
                    grad_evals_warmup = grad_evals(&chunk, &chains);
                }
                // Tiering: when the rest of the run on the baseline code is
                // predicted to outlast compiling optimised code (about 3x
                // the baseline's compile time) twice over, compile it on
                // another thread; chunks switch to it once it is ready.
                if lo == 0 && opts.tiering == Tiering::Auto {
                    if let Exe::Clif { optimised, .. } = &exe {
                        let rest = dt / (hi - lo) as f64 * (sweeps - hi) as f64;
                        if rest > 2.0 * 3.0 * compile_seconds {
                            let (f, slot, done) = (&chunk.function, optimised, &optimised_seconds);
                            scope.spawn(move || {
                                let t = Instant::now();
                                if let Ok(k) = clif::compile(f, &optimised_opts) {
                                    let _ = slot.set(Box::new(k));
                                    *done.lock().unwrap_or_else(|e| e.into_inner()) =
                                        Some(t.elapsed().as_secs_f64());
                                }
                            });
                        }
                    }
                }
                if !bar.is_hidden() || opts.tracker.is_some() {
                    let (mut values, divergent) = model_metrics(&views, &chains, hi);
                    let rate = if hi <= warmup_sweeps {
                        // No draws yet: chain-sweeps per second.
                        format!(
                            "warmup | {:.0} sweeps/s",
                            (hi * k) as f64 / warmup_seconds.max(1e-9)
                        )
                    } else {
                        let drawn: usize = views.iter().map(|m| m.kept(hi) * k).sum();
                        format!(
                            "sampling | {:.0} draws/s",
                            drawn as f64 / sampling_seconds.max(1e-9)
                        )
                    };
                    bar.set_position(hi as u64);
                    bar.set_message(format!("{rate} | {divergent} divergent"));
                    if let Some(tracker) = &opts.tracker {
                        let c0 = chains[0].lock().unwrap_or_else(|e| e.into_inner());
                        let st = f64s(&c0[0]);
                        let mut at: Vec<&[f64]> = Vec::new();
                        for s in &sampled {
                            let mut off = chunk.theta + s.offset;
                            for p in &s.leaves {
                                at.push(&st[off..off + p.len()]);
                                off += p.len();
                            }
                        }
                        for (name, pf) in &mut losses {
                            values.push((name.clone(), pf.eval(&at)?[0]));
                        }
                        drop(c0);
                        let m = Metrics {
                            sweep: hi,
                            sweeps,
                            seconds: t_run.elapsed().as_secs_f64(),
                            values,
                        };
                        tracker
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(&m)?;
                    }
                }
                lo = hi;
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        exe.sync(&chains)?;
        if warmup_sweeps == 0 {
            grad_evals_warmup = 0;
        }
        let optimised_compile_seconds = optimised_seconds
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = optimised_compile_seconds {
            log(format!(
                "MCMC: optimised code compiled in {:.1} ms in the background; later chunks ran on it",
                t * 1e3
            ));
        }
        let grad_evals_total = grad_evals(&chunk, &chains);

        let bufs: Vec<Vec<Buffer>> = chains
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let mut reports = Vec::new();
        let mut posteriors = Vec::new();
        for (s, slots) in sampled.iter().zip(&chunk.models) {
            let post = posterior(s, slots, &bufs);
            reports.push(report(&post, s));
            // The model holds chain 0's last position.
            let st = f64s(&bufs[0][0]);
            let mut at = chunk.theta + s.offset;
            for p in &s.leaves {
                p.set_values(&st[at..at + p.len()])?;
                at += p.len();
            }
            let post = Arc::new(post);
            posteriors.push(post.clone());
            s.leaves[0].cell().set_posterior(Some(post));
        }
        for r in &reports {
            let mut parts = Vec::new();
            if let Some(d) = r.divergences {
                let total = r.num_draws * k;
                parts.push(format!(
                    "{d}/{total} divergent ({:.2}%)",
                    100.0 * d as f64 / total as f64
                ));
            }
            if let Some(a) = r.mean_acceptance {
                parts.push(format!("mean_accept={a:.3}"));
            }
            if let Some(e) = r.mean_energy {
                parts.push(format!("mean_energy={e:.3}"));
            }
            if parts.is_empty() {
                parts.push(format!("{} draws", r.num_draws));
            }
            log(format!("Model '{}': {}", r.name, parts.join(", ")));
        }
        Ok(Solution {
            backend: opts.backend,
            num_chains: k,
            sweeps,
            warmup_sweeps,
            compile_seconds,
            optimised_compile_seconds,
            warmup_seconds,
            sampling_seconds,
            grad_evals_warmup,
            grad_evals: grad_evals_total - grad_evals_warmup,
            threads,
            models: reports,
            posteriors,
        })
    }
}

fn posterior(
    s: &Sampled,
    slots: &crux_compiler::sampler::ModelSlots,
    bufs: &[Vec<Buffer>],
) -> Posterior {
    let k = bufs.len();
    let n = s.cfg.keep;
    let mut leaves = Vec::new();
    let mut at = 0;
    for p in &s.leaves {
        let mut shape = vec![k, n];
        shape.extend(p.shape());
        let mut data = Vec::with_capacity(k * n * p.len());
        for b in bufs {
            let draws = f64s(&b[2]);
            for d in 0..n {
                let row = slots.draws + d * s.len + at;
                data.extend_from_slice(&draws[row..row + p.len()]);
            }
        }
        leaves.push(LeafSamples {
            name: p.name().to_string(),
            samples: ArrayD::from_shape_vec(IxDyn(&shape), data).expect("k · n · len entries"),
        });
        at += p.len();
    }
    let nf = slots.fields.len();
    let diagnostics = (nf > 0).then(|| {
        Diagnostics::new(
            slots
                .fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let a = Array2::from_shape_fn((k, n), |(c, d)| {
                        let v = f64s(&bufs[c][3])[slots.diag + d * nf + j];
                        match f.kind {
                            DiagKind::Bool => (v != 0.0) as u8 as f64,
                            DiagKind::Float | DiagKind::Int => v,
                        }
                    });
                    (f.name.to_string(), a)
                })
                .collect(),
        )
    });
    Posterior {
        model: s.name.clone(),
        kernel: s.cfg.kernel.name().to_string(),
        leaves,
        diagnostics,
        step_size: bufs.iter().map(|b| f64s(&b[0])[slots.step_size]).collect(),
        inverse_mass: bufs
            .iter()
            .map(|b| f64s(&b[0])[slots.inverse_mass..slots.inverse_mass + s.len].to_vec())
            .collect(),
    }
}

fn report(p: &Posterior, s: &Sampled) -> ModelReport {
    let d = p.diagnostics.as_ref();
    let mean = |a: ndarray::ArrayView2<'_, f64>| {
        let v: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    ModelReport {
        name: s.name.clone(),
        kernel: p.kernel.clone(),
        num_draws: s.cfg.keep,
        divergences: d
            .and_then(|d| d.get("is_divergent"))
            .map(|a| a.iter().filter(|x| **x != 0.0).count()),
        mean_acceptance: d.and_then(|d| d.acceptance_rate()).map(mean),
        mean_energy: d.and_then(|d| d.energy()).map(mean),
        step_size: p.step_size.clone(),
    }
}
