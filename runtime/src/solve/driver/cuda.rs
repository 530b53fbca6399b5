//! The CUDA executor: the chunk function emitted as PTX
//! (`crux_compiler::backend::ptx`), loaded through the CUDA driver
//! (`cudarc`, loaded at run time), launched once per chunk with one GPU
//! thread per chain. Data are uploaded once; the chains' state stays on the
//! device between chunks; draws, diagnostics and state are copied back when
//! the host needs them (metrics, the end of the solve).
//!
//! Buffer layout follows the PTX calling convention: per-chain buffers
//! (state, work, draws, diagnostics) are one device array each with the
//! chains back to back (`stride` = one chain's length); data buffers are
//! shared (`stride` 0).

use std::sync::Arc;

use crux_compiler::backend::ptx::{emit, PtxOptions};
use crux_compiler::sampler::abi::{ChainBuffers, ChunkBuffer};
use crux_compiler::sampler::Chunk;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};

use super::exe::Chain;
use crate::error::{Error, Result, RunFailure};

/// Threads per block of the chunk kernel (emitted as `.maxntid`).
const BLOCK: u32 = 128;

/// Per-chain buffers of the chunk function: state, work, draws, diagnostics.
const PER_CHAIN: usize = ChunkBuffer::COUNT;

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::CudaUnavailable {
        reason: format!("{what}: {e}"),
    }
}

fn cuda_failure(step: &'static str, e: impl std::fmt::Display) -> RunFailure {
    RunFailure::Cuda {
        step,
        message: e.to_string(),
    }
}

/// Whether a CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the driver library by name (libloading);
    // no driver function is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The chains of one solve on the GPU.
pub(crate) struct CudaChains {
    stream: Arc<CudaStream>,
    func: CudaFunction,
    bufs: Vec<CudaSlice<f64>>,
    lens: Vec<u64>,
    strides: Vec<u64>,
    rets: CudaSlice<u64>,
    status: CudaSlice<u32>,
    n: usize,
}

impl CudaChains {
    /// Emits the chunk kernel as PTX, loads it on GPU 0 and uploads every
    /// chain's buffers. `bounds_checks` as for the Cranelift code.
    pub fn new(chunk: &Chunk, chains: &[ChainBuffers], bounds_checks: bool) -> Result<CudaChains> {
        if !driver_present() {
            return Err(Error::CudaUnavailable {
                reason: "no CUDA driver found (libcuda could not be loaded): install the NVIDIA driver, or run with the Cranelift backend".into(),
            });
        }
        let opts = PtxOptions {
            bounds_checks,
            thread_param: Some(1),
            max_threads_per_block: BLOCK,
        };
        let ptx = emit(&chunk.function, &opts)
            .map_err(|e| Error::Compile(crux_compiler::pipeline::CompileError::Backend(e)))?;
        let ctx = CudaContext::new(0).map_err(|e| unavailable("opening GPU 0", e))?;
        let stream = ctx.default_stream();
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| unavailable("loading the chunk kernel's PTX", e))?;
        let func = module
            .load_function(&chunk.function.name)
            .map_err(|e| unavailable("finding the chunk kernel", e))?;
        let n = chains.len();
        let nbuf = chunk.function.buffers.len();
        let (mut bufs, mut lens, mut strides) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..nbuf {
            let len = chains
                .first()
                .map_or(0, |c| c.as_slice()[i].as_f64().unwrap_or(&[]).len());
            let (host, stride): (Vec<f64>, usize) = if i < PER_CHAIN {
                (
                    chains
                        .iter()
                        .flat_map(|c| c.as_slice()[i].as_f64().unwrap_or(&[]).iter().copied())
                        .collect(),
                    len,
                )
            } else {
                (chains[0].as_slice()[i].as_f64().unwrap_or(&[]).to_vec(), 0)
            };
            // A zero-length device array is still a valid pointer argument.
            let host = if host.is_empty() { vec![0.0] } else { host };
            bufs.push(
                stream
                    .clone_htod(&host)
                    .map_err(|e| unavailable("uploading buffers", e))?,
            );
            lens.push(len as u64);
            strides.push(stride as u64);
        }
        let rets = stream
            .alloc_zeros::<u64>(n.max(1))
            .map_err(|e| unavailable("allocating", e))?;
        let status = stream
            .alloc_zeros::<u32>(n.max(1))
            .map_err(|e| unavailable("allocating", e))?;
        Ok(CudaChains {
            stream,
            func,
            bufs,
            lens,
            strides,
            rets,
            status,
            n,
        })
    }

    /// Runs sweeps `lo..hi` of every chain: one launch, one thread per chain.
    pub fn run(&mut self, seed: u64, (lo, hi): (usize, usize)) -> Result<(), RunFailure> {
        let (seed, chain0, lo, hi) = (seed, 0u64, lo as u64, hi as u64);
        let n_threads = self.n as u32;
        let cfg = LaunchConfig {
            grid_dim: (n_threads.div_ceil(BLOCK), 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&self.func);
        launch.arg(&seed).arg(&chain0).arg(&lo).arg(&hi);
        for i in 0..self.bufs.len() {
            launch
                .arg(&self.bufs[i])
                .arg(&self.lens[i])
                .arg(&self.strides[i]);
        }
        launch.arg(&self.rets).arg(&self.status).arg(&n_threads);
        // SAFETY: the argument list follows the PTX calling convention of
        // `crux_compiler::backend::ptx` for this kernel (scalars, then
        // pointer/length/stride per buffer, returns, status, thread count),
        // and every device array holds `n_threads` chains' worth of data.
        unsafe { launch.launch(cfg) }.map_err(|e| cuda_failure("launching the chunk kernel", e))?;
        let status = self
            .stream
            .clone_dtoh(&self.status)
            .map_err(|e| cuda_failure("reading the status", e))?;
        // The copy into pageable host memory is ordered after the launch on
        // this stream; wait for it before reading.
        self.stream
            .synchronize()
            .map_err(|e| cuda_failure("running the chunk kernel", e))?;
        if let Some((c, s)) = status.iter().enumerate().find(|(_, s)| **s != 0) {
            return Err(RunFailure::OutOfBounds {
                chain: c,
                status: *s,
            });
        }
        Ok(())
    }

    /// Copies every chain's state, draws and diagnostics back into `chains`.
    pub fn download(&self, chains: &[Chain]) -> Result<(), RunFailure> {
        // The host reads state, draws and diagnostics; the work buffer is
        // scratch, never worth the copy.
        for which in [ChunkBuffer::State, ChunkBuffer::Draws, ChunkBuffer::Diag] {
            let i = which.index();
            let all = self
                .stream
                .clone_dtoh(&self.bufs[i])
                .map_err(|e| cuda_failure("copying results back", e))?;
            self.stream
                .synchronize()
                .map_err(|e| cuda_failure("copying results back", e))?;
            let len = self.lens[i] as usize;
            for (c, chain) in chains.iter().enumerate() {
                let mut chain = chain.lock().unwrap_or_else(|e| e.into_inner());
                chain
                    .get_mut(which)
                    .copy_from_slice(&all[c * len..(c + 1) * len]);
            }
        }
        Ok(())
    }
}
