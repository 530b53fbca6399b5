//! Backends: kernel IR → executable code.
//!
//! Every backend implements [`Executable`] for the functions it compiles,
//! and the kernel interpreter does too ([`Interpreter`]), so one conformance
//! suite runs unchanged on every backend (see the `conformance` tests).

pub mod clif;
pub mod gemm;
pub mod ptx;
pub mod ptxas;

use crux_ir::kernel::{run, Buffer, Function, KernelError, Scalar};

/// Errors of compiling or running kernels on a backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The kernel itself is invalid, or failed while running (bounds, fuel).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The backend cannot express something in the kernel.
    #[error("unsupported on the {backend} backend: {what}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// What is unsupported.
        what: String,
    },
    /// The code generator failed (a bug in crux, or a limit of the target).
    #[error("{backend} code generation failed: {msg}")]
    Codegen {
        /// Backend name.
        backend: &'static str,
        /// The generator's message.
        msg: String,
    },
}

/// A compiled kernel that can be called with scalar arguments and buffers.
pub trait Executable {
    /// Runs the kernel; buffers are modified in place. Returns the kernel's
    /// return values.
    fn call(&self, args: &[Scalar], bufs: &mut [Buffer]) -> Result<Vec<Scalar>, BackendError>;
}

/// The reference interpreter as an [`Executable`] (with a fuel budget).
pub struct Interpreter {
    /// The function.
    pub function: Function,
    /// Instructions allowed per call.
    pub fuel: u64,
}

impl Executable for Interpreter {
    fn call(&self, args: &[Scalar], bufs: &mut [Buffer]) -> Result<Vec<Scalar>, BackendError> {
        Ok(run(&self.function, args, bufs, self.fuel)?)
    }
}
