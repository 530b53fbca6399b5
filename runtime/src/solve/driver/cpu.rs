//! Running the chains on the CPU: chunk by chunk (every chain reaches a
//! chunk's end before the next chunk starts, so progress, metrics and
//! code-tier switches happen at well-defined sweeps), chains spread over
//! threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crux_compiler::backend::{BackendError, Executable};
use crux_compiler::sampler::abi::chunk_args;

use super::exe::Chain;
use crate::error::RunFailure;

/// Runs sweeps `lo..hi` of every chain with `exe`, chains taken in turn by
/// `threads` threads; the first failure is returned.
pub(crate) fn run_range(
    exe: &(dyn Executable + Sync),
    chains: &[Chain],
    seed: u64,
    range: (usize, usize),
    threads: usize,
) -> Result<(), RunFailure> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<RunFailure>> = Mutex::new(None);
    let work = || loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        if c >= chains.len() {
            break;
        }
        let mut bufs = chains[c].lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = exe.call(&chunk_args(seed, c, range), bufs.as_mut_slice()) {
            let cause = match err {
                BackendError::Kernel(error) => RunFailure::Kernel { chain: c, error },
                other => RunFailure::Backend {
                    chain: c,
                    message: other.to_string(),
                },
            };
            failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(cause);
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
