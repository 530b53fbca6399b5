//! Step 3 of a solve: what runs the chunk function — the reference
//! interpreter, Cranelift code in two tiers, or the GPU — and running one
//! chunk of sweeps on every chain with it.

use std::sync::{Mutex, OnceLock};

use crux_compiler::backend::clif::{self, ClifKernel, ClifOptions};
use crux_compiler::backend::{Executable, Interpreter};
use crux_compiler::pipeline::CompileError;
use crux_compiler::sampler::abi::ChainBuffers;

use super::cpu::run_range;
use super::plan::Plan;
use crate::compile::Backend;
use crate::error::{Error, Result, RunFailure};
use crate::solve::options::{SolveOptions, Tiering};

/// A chain's buffers, locked by whichever thread runs the chain.
pub(crate) type Chain = Mutex<ChainBuffers>;

/// The compiled chunk function, on the backend that runs it.
pub(crate) enum Executor {
    /// The bounds-checking reference interpreter.
    Interp(Interpreter),
    /// Chains on the GPU, one thread each.
    #[cfg(feature = "cuda")]
    Cuda(Mutex<super::cuda::CudaChains>),
    /// Cranelift machine code: baseline code (when compiled first) and the
    /// optimised tier, which replaces it once it is ready.
    Clif {
        baseline: Option<Box<ClifKernel>>,
        optimised: OnceLock<Box<ClifKernel>>,
    },
}

/// The Cranelift options of the optimised tier. Built-in kernels index only
/// slots the chunk builder allocated (loops over their lengths, NUTS
/// checkpoints below max_depth, kept draws below keep), so their loads and
/// stores need no checks; a user kernel's indices are unknown, so it keeps
/// them.
pub(crate) fn clif_options(plan: &Plan) -> ClifOptions {
    if plan.builtin() {
        // SAFETY: see above; every built-in kernel's chunk function is
        // also run on the bounds-checking interpreter by the sampler tests
        // (crux-compiler `sampler::tests`, tests/sampling.rs), and the
        // buffers passed are exactly the sizes the chunk declares.
        unsafe { ClifOptions::default().without_bounds_checks() }
    } else {
        ClifOptions::default()
    }
}

fn codegen_error(e: crux_compiler::backend::BackendError) -> Error {
    Error::Compile(CompileError::Backend(e))
}

impl Executor {
    /// Compiles the plan's chunk function for the backend and tier `opts`
    /// ask for (the GPU also receives the chains' buffers).
    pub fn new(plan: &Plan, chains: &[Chain], opts: &SolveOptions) -> Result<Executor> {
        let function = &plan.chunk.function;
        let optimised = clif_options(plan);
        Ok(match (opts.backend, opts.tiering) {
            (Backend::Interpreter, _) => Executor::Interp(Interpreter {
                function: function.clone(),
                fuel: u64::MAX,
            }),
            (Backend::Cranelift, Tiering::Optimised) => Executor::Clif {
                baseline: None,
                optimised: OnceLock::from(Box::new(
                    clif::compile(function, &optimised).map_err(codegen_error)?,
                )),
            },
            (Backend::Cranelift, Tiering::Auto | Tiering::Baseline) => Executor::Clif {
                baseline: Some(Box::new(
                    clif::compile(function, &optimised.fast_compile()).map_err(codegen_error)?,
                )),
                optimised: OnceLock::new(),
            },
            #[cfg(feature = "cuda")]
            (Backend::Cuda, _) => {
                let host: Vec<ChainBuffers> = chains
                    .iter()
                    .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
                    .collect();
                Executor::Cuda(Mutex::new(super::cuda::CudaChains::new(
                    &plan.chunk,
                    &host,
                    !plan.builtin(),
                )?))
            }
            #[cfg(not(feature = "cuda"))]
            (Backend::Cuda, _) => {
                let _ = chains;
                return Err(Error::CudaUnavailable {
                    reason: "crux was built without the `cuda` feature: rebuild with it (it is on by default)".into(),
                });
            }
        })
    }

    /// Whether baseline code runs while optimised code may still arrive.
    pub fn optimised_pending(&self) -> bool {
        matches!(self, Executor::Clif { baseline: Some(_), optimised } if optimised.get().is_none())
    }

    /// The code that runs the next chunk on the CPU (the optimised tier as
    /// soon as it exists).
    fn cpu_code(&self) -> Option<&(dyn Executable + Sync)> {
        match self {
            Executor::Interp(i) => Some(i),
            Executor::Clif {
                baseline,
                optimised,
            } => match (optimised.get(), baseline) {
                (Some(k), _) => Some(&**k),
                (None, Some(b)) => Some(&**b),
                (None, None) => None,
            },
            #[cfg(feature = "cuda")]
            Executor::Cuda(_) => None,
        }
    }

    /// Runs sweeps `lo..hi` of every chain (on `threads` threads on the
    /// CPU).
    pub fn run(
        &self,
        chains: &[Chain],
        seed: u64,
        range: (usize, usize),
        threads: usize,
    ) -> Result<(), RunFailure> {
        #[cfg(feature = "cuda")]
        if let Executor::Cuda(c) = self {
            return c.lock().unwrap_or_else(|e| e.into_inner()).run(seed, range);
        }
        let code = self
            .cpu_code()
            .expect("Executor::new compiles at least one Cranelift tier, and CUDA returned above");
        run_range(code, chains, seed, range, threads)
    }

    /// Makes the host copies of the chains current (a copy back from the
    /// GPU; nothing on the CPU).
    pub fn sync(&self, chains: &[Chain]) -> Result<(), RunFailure> {
        match self {
            #[cfg(feature = "cuda")]
            Executor::Cuda(c) => c.lock().unwrap_or_else(|e| e.into_inner()).download(chains),
            _ => {
                let _ = chains;
                Ok(())
            }
        }
    }
}
