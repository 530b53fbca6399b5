//! The error type of the user-facing API. Every variant says what went
//! wrong and what to do about it; nothing the user passes in panics.

use crux_compiler::pipeline::CompileError;

/// Errors returned by crux.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Two operands of an operation have shapes that do not broadcast.
    #[error("shape mismatch in `{expr}`: {lhs} and {rhs} do not broadcast (numpy rules: dimensions are aligned from the right and must be equal or 1). Reshape or index one operand so the shapes agree.")]
    ShapeMismatch {
        /// The offending expression.
        expr: String,
        /// Left operand's shape.
        lhs: String,
        /// Right operand's shape.
        rhs: String,
    },
    /// An operation's argument is invalid (rank, axis, range...).
    #[error("invalid `{op}` in `{expr}`: {reason}")]
    InvalidOperation {
        /// The operation.
        op: &'static str,
        /// The offending expression.
        expr: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A tag that the domain does not have.
    #[error("the domain has no tag `{tag}`; its tags are: {available}")]
    UnknownTag {
        /// The requested tag.
        tag: String,
        /// The tags it has.
        available: String,
    },
    /// Expressions over two different domains were combined.
    #[error("`{expr}` combines points of two different domains; build every expression of a problem from one domain's variables")]
    MixedDomains {
        /// The offending expression.
        expr: String,
    },
    /// A constant, data array or configuration value is NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NonFinite {
        /// What was given.
        what: String,
        /// The value.
        value: f64,
    },
    /// Invalid domain construction parameters.
    #[error("invalid domain: {reason}")]
    InvalidDomain {
        /// The parameter at fault (`mesh_size`, `x range`, `grid`).
        parameter: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Invalid prior parameters (the messages of the reference library).
    #[error("{prior} prior: {parameter} must be {requirement}, got {value}")]
    InvalidPrior {
        /// The prior (`gaussian`, `laplace`, ...).
        prior: &'static str,
        /// The parameter (`sigma`, `df`, ...).
        parameter: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy (`> 0`, ...).
        requirement: &'static str,
    },
    /// An ahead-of-time artifact is missing, corrupted, stale or of a
    /// problem artifacts cannot hold.
    #[error("artifact: {0}")]
    Artifact(#[from] crate::solve::artifact::ArtifactError),
    /// A checkpoint cannot be written, read or resumed from.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::solve::checkpoint::CheckpointError),
    /// The run stopped early (`stop_after_chunks`, or [`crate::interrupt`]
    /// e.g. on Ctrl-C) after `sweeps` sweeps; with a checkpoint configured,
    /// resume it from there. `partial` holds the draws so far (also set on
    /// the models, as a finished solve's are): each model's first
    /// `kept` draws, its report and timings up to the stop.
    #[error("the run stopped after {sweeps} of {total} sweeps{}", .checkpoint.as_ref().map_or(String::new(), |p| format!("; resume it with SolveOptions::resume({p:?})")))]
    Interrupted {
        /// Sweeps done.
        sweeps: usize,
        /// Sweeps of the whole run.
        total: usize,
        /// The checkpoint written at the stop, if any.
        checkpoint: Option<std::path::PathBuf>,
        /// The solve up to the stop: posteriors of the draws kept so far,
        /// reports, timings.
        partial: Box<crate::solve::Solution>,
    },
    /// A stochastic-gradient chain (SGLD, SGHMC) left the finite numbers:
    /// without an accept step nothing pulls it back, so the run stops at
    /// the chunk end rather than fill the posterior with infinities.
    #[error("chain {chain} of model `{model}` ({kernel}) is no longer finite after sweep {sweeps}: the step size is past the kernel's stability limit (or the gradient overflows); lower the step size")]
    Diverged {
        /// The model.
        model: String,
        /// The kernel's name.
        kernel: String,
        /// The first chain found non-finite.
        chain: usize,
        /// Sweeps done when it was found (the chunk end).
        sweeps: usize,
    },
    /// Invalid argument to a constructor or builder.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A problem needs at least one constraint.
    #[error(
        "a problem needs at least one constraint: pass e.g. `[residual.mse()]` to `Crux::new`"
    )]
    NoConstraints,
    /// The position vector has the wrong length.
    #[error("the log-density takes {expected} values (the sampled parameters, flattened in order), got {got}")]
    PositionLength {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A model was selected that the problem's constraints do not use.
    #[error("model `{0}` does not appear in any constraint of this problem; sample only models the constraints use")]
    ModelNotInProblem(String),
    /// The same model was selected twice.
    #[error("model `{0}` was selected twice; give each model one prior (the leaves of a network belong to it: sample the whole `Net` once)")]
    DuplicateModel(String),
    /// A log-density needs at least one sampled model.
    #[error("the log-density has no sampled model: call `.sample(&model, prior)` at least once")]
    NothingSampled,
    /// A model's `.bayesian(..)` configuration is invalid.
    #[error("model `{model}`: {reason}")]
    Bayesian {
        /// The model.
        model: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A mask selects nothing, names what the model does not have, or
    /// overlaps another group.
    #[error("model `{model}`: mask: {reason}")]
    Mask {
        /// The model.
        model: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A model's `.optimizer(..)` is invalid.
    #[error("model `{model}`: optimizer: {reason}")]
    Optimizer {
        /// The model.
        model: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Sampled models asked for different numbers of chains.
    #[error("all .bayesian() models in one solve must share the same num_chains; got {}. Give every model the same `.num_chains(k)`", list_chains(.chains))]
    MismatchedChains {
        /// `(model, num_chains)` of every sampled model.
        chains: Vec<(String, usize)>,
    },
    /// `solve` was called with no model configured for sampling or
    /// optimisation.
    #[error("no model of this problem has a `.bayesian(..)` or `.optimizer(..)` configuration: call e.g. `a.bayesian(Bayesian::nuts())?` or `a.optimizer(Optimizer::adam(1e-3))?` before `solve`")]
    NoBayesianModel,
    /// Chain-aware evaluation or an export asked for draws that do not
    /// exist.
    #[error("{}", .reason.message())]
    Samples {
        /// What is missing.
        reason: SamplesError,
    },
    /// A convergence diagnostic was given an array it cannot summarise
    /// (fewer than 2 axes, no chains, no draws, or too few chains for the
    /// requested strategy).
    #[error("{reason}")]
    Diagnostics {
        /// The function called (`rhat`, `ess_bulk`, ...).
        function: &'static str,
        /// The array's shape.
        shape: Vec<usize>,
        /// What is wrong and what would work.
        reason: String,
    },
    /// The CUDA backend cannot start (no driver, no device, the module
    /// does not load).
    #[error("CUDA is unavailable: {reason}")]
    CudaUnavailable {
        /// Why.
        reason: String,
    },
    /// Compiled code failed while running: a user kernel indexed out of
    /// bounds, a GPU launch or copy failed. Not a compiler bug as such: the
    /// models named are those whose code could fail.
    #[error("the {program} failed while running (model(s) {}): {cause}", .models.join(", "))]
    Run {
        /// What ran (`chunk function`, `log-density`, `pushforward`).
        program: &'static str,
        /// The models whose kernels could cause it (user kernels first).
        models: Vec<String>,
        /// What happened.
        cause: RunFailure,
    },
    /// The pipeline has no stage of that name.
    #[error("no stage named `{name}`; stages are: {available}")]
    UnknownStage {
        /// Requested stage.
        name: String,
        /// Available stages.
        available: String,
    },
    /// An internal compiler error (a bug in crux: please report it).
    #[error("internal compiler error (please report): {0}")]
    Compile(#[from] CompileError),
}

fn list_chains(chains: &[(String, usize)]) -> String {
    let items: Vec<String> = chains.iter().map(|(m, k)| format!("{m}={k}")).collect();
    format!("[{}]", items.join(", "))
}

/// What went wrong while compiled code ran.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunFailure {
    /// The kernel stopped: an index out of its buffer's bounds, an
    /// exhausted fuel budget (interpreter), a bad argument.
    #[error("chain {chain}: {error} (user kernels run with bounds checks: check the indices your step body loads and stores)")]
    Kernel {
        /// The chain that failed first.
        chain: usize,
        /// The kernel's error.
        error: crux_ir::kernel::KernelError,
    },
    /// The GPU kernel reported an out-of-range access.
    #[error("chain {chain} stopped with status {status} (an out-of-range access in the chunk kernel: a bug in a user kernel, or in crux)")]
    OutOfBounds {
        /// The chain.
        chain: usize,
        /// The status word the kernel wrote.
        status: u32,
    },
    /// A CUDA call failed (launch, copy, synchronisation).
    #[error("CUDA {step}: {message}")]
    Cuda {
        /// What crux was doing.
        step: &'static str,
        /// The driver's message.
        message: String,
    },
    /// A backend failed in another way while running.
    #[error("chain {chain}: {message}")]
    Backend {
        /// The chain.
        chain: usize,
        /// The backend's message.
        message: String,
    },
}

/// Why chain-aware evaluation or an export found no draws to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplesError {
    /// `Samples::Chain` was asked for expressions of no sampled model.
    NothingSampled,
    /// The sampled models of one expression have different `(chains,
    /// draws)`.
    ChainShapes {
        /// The expression.
        expr: String,
        /// One model's `(chains, draws)`.
        first: (usize, usize),
        /// Another's.
        second: (usize, usize),
    },
    /// Posteriors given to one export have different `(chains, draws)`.
    ExportShapes {
        /// The first posterior's model and `(chains, draws)`.
        first: (String, (usize, usize)),
        /// A differing one.
        second: (String, (usize, usize)),
    },
}

impl SamplesError {
    fn message(&self) -> String {
        match self {
            SamplesError::NothingSampled => "samples=Chain was requested but no model in the given expression(s) carries posterior samples: run `solve` with a `.bayesian(..)` model the expressions use, or use Samples::Auto / Samples::Point".into(),
            SamplesError::ChainShapes { expr, first, second } => format!(
                "the sampled models of `{expr}` have different chain shapes ({first:?} and {second:?}); sample them in one solve with the same num_chains and keep"
            ),
            SamplesError::ExportShapes { first, second } => format!(
                "posteriors of one export must have the same (chains, draws): `{}` has {:?}, `{}` has {:?}; export them separately",
                first.0, first.1, second.0, second.1
            ),
        }
    }
}

impl From<crux_ir::GraphError> for Error {
    fn from(e: crux_ir::GraphError) -> Error {
        Error::Compile(CompileError::Graph(e))
    }
}

impl From<crux_compiler::ad::AdError> for Error {
    fn from(e: crux_compiler::ad::AdError) -> Error {
        Error::Compile(CompileError::Ad(e))
    }
}

/// `Result` with crux's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
