//! What runs a solve's chunk function: the reference interpreter, Cranelift
//! code in two tiers, or the GPU.

use std::sync::{Mutex, OnceLock};

use crux_compiler::backend::clif;
use crux_compiler::backend::{Executable, Interpreter};

use super::run::{run_range, ChainBuffers};
use crate::error::Result;

/// What runs the chunk function: the interpreter, or Cranelift code in
/// up to two tiers (bit-identical: only register allocation differs).
pub(crate) enum Exe {
    Interp(Interpreter),
    /// One GPU thread per chain.
    #[cfg(feature = "cuda")]
    Cuda(Mutex<super::cuda::CudaChains>),
    Clif {
        /// Fast to compile, slower to run.
        baseline: Option<Box<clif::ClifKernel>>,
        /// Set once compiled (at once, or by a background thread).
        optimised: OnceLock<Box<clif::ClifKernel>>,
    },
}

impl Exe {
    /// Whether chains run baseline code that optimised code may replace.
    pub(crate) fn optimised_pending(&self) -> bool {
        matches!(self, Exe::Clif { baseline: Some(_), optimised } if optimised.get().is_none())
    }

    pub(crate) fn get(&self) -> &(dyn Executable + Sync) {
        match self {
            Exe::Interp(i) => i,
            Exe::Clif {
                baseline,
                optimised,
            } => match (optimised.get(), baseline) {
                (Some(k), _) => &**k,
                (None, Some(b)) => &**b,
                (None, None) => unreachable!("one tier is always compiled"),
            },
            #[cfg(feature = "cuda")]
            Exe::Cuda(_) => unreachable!("CUDA chains are run by `Exe::run`"),
        }
    }

    /// Runs sweeps `lo..hi` of every chain.
    pub(crate) fn run(
        &self,
        chains: &[ChainBuffers],
        seed: u64,
        range: (usize, usize),
        threads: usize,
    ) -> Result<()> {
        match self {
            #[cfg(feature = "cuda")]
            Exe::Cuda(c) => c.lock().unwrap_or_else(|e| e.into_inner()).run(seed, range),
            _ => run_range(self.get(), chains, seed, range, threads),
        }
    }

    /// Brings the chains' buffers to the host (a no-op on the CPU).
    pub(crate) fn sync(&self, chains: &[ChainBuffers]) -> Result<()> {
        match self {
            #[cfg(feature = "cuda")]
            Exe::Cuda(c) => c.lock().unwrap_or_else(|e| e.into_inner()).download(chains),
            _ => {
                let _ = chains;
                Ok(())
            }
        }
    }
}
