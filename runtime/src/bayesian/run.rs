//! Running the chains: chunk by chunk (every chain reaches a chunk's end
//! before the next chunk starts, so progress, metrics and code-tier
//! switches happen at well-defined sweeps), chains spread over threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crux_compiler::backend::Executable;
use crux_compiler::pipeline::CompileError;
use crux_compiler::sampler::{Chunk, DiagKind, ModelSlots};
use crux_ir::kernel::{Buffer, Scalar};

use crate::error::{Error, Result};

/// Buffers of one chain.
pub(crate) type ChainBuffers = Mutex<Vec<Buffer>>;

/// The f64 contents of a buffer.
pub(crate) fn f64s(b: &Buffer) -> &[f64] {
    match b {
        Buffer::F64(v) => v,
        _ => &[],
    }
}

/// Runs sweeps `lo..hi` of every chain with `exe`, chains spread over
/// `threads` (inline when one).
pub(crate) fn run_range(
    exe: &(dyn Executable + Sync),
    chains: &[ChainBuffers],
    seed: u64,
    (lo, hi): (usize, usize),
    threads: usize,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let work = || loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        if c >= chains.len() {
            break;
        }
        let mut bufs = chains[c].lock().unwrap_or_else(|e| e.into_inner());
        let args = [
            Scalar::I64(seed as i64),
            Scalar::I64(c as i64),
            Scalar::I64(lo as i64),
            Scalar::I64(hi as i64),
        ];
        if let Err(err) = exe.call(&args, &mut bufs) {
            failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(Error::Compile(CompileError::Backend(err)));
            return;
        }
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What a model contributes to the metrics.
pub(crate) struct ModelView<'a> {
    pub name: &'a str,
    pub len: usize,
    pub warmup: usize,
    pub keep: usize,
    pub thin: usize,
    pub slots: &'a ModelSlots,
}

impl ModelView<'_> {
    /// Draws kept per chain once every chain finished sweep `hi − 1`.
    pub fn kept(&self, hi: usize) -> usize {
        (hi.saturating_sub(self.warmup) / self.thin).min(self.keep)
    }
}

/// The spec's per-model metric keys after sweep `hi`, and the number of
/// divergences so far (all models, all chains).
pub(crate) fn model_metrics(
    models: &[ModelView<'_>],
    chains: &[ChainBuffers],
    hi: usize,
) -> (Vec<(String, f64)>, usize) {
    let mut out = Vec::new();
    let mut divergent = 0;
    let k = chains.len();
    let guards: Vec<_> = chains
        .iter()
        .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()))
        .collect();
    for m in models {
        let n = m.kept(hi);
        let key = |f: &str| format!("posterior/{}/{f}", m.name);
        out.push((key("n_samples"), n as f64));
        out.push((key("n_chains"), k as f64));
        if n == 0 {
            continue;
        }
        if m.len == 1 {
            let sum: f64 = guards
                .iter()
                .map(|g| {
                    let d = f64s(&g[2]);
                    (0..n).map(|i| d[m.slots.draws + i]).sum::<f64>()
                })
                .sum();
            out.push((key("mean"), sum / (n * k) as f64));
        }
        let nf = m.slots.fields.len();
        for (j, f) in m.slots.fields.iter().enumerate() {
            let vals = guards.iter().flat_map(|g| {
                let d = f64s(&g[3]);
                (0..n).map(move |i| d[m.slots.diag + i * nf + j])
            });
            match (f.name, f.kind) {
                ("is_divergent", DiagKind::Bool) => {
                    let c = vals.filter(|v| *v != 0.0).count();
                    divergent += c;
                    out.push((key("n_is_divergent"), c as f64));
                }
                ("acceptance_rate" | "energy", DiagKind::Float) => {
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

/// Gradient evaluations so far, all chains and models.
pub(crate) fn grad_evals(chunk: &Chunk, chains: &[ChainBuffers]) -> u64 {
    chains
        .iter()
        .map(|c| {
            let bufs = c.lock().unwrap_or_else(|e| e.into_inner());
            let st = f64s(&bufs[0]);
            chunk
                .models
                .iter()
                .map(|m| st[m.grad_evals] as u64)
                .sum::<u64>()
        })
        .sum()
}
