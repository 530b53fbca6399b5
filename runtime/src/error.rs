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
    #[error("invalid domain: {0}")]
    InvalidDomain(String),
    /// Invalid prior parameters (the messages of the reference library).
    #[error("{0}")]
    InvalidPrior(String),
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
    /// Sampled models asked for different numbers of chains.
    #[error("all .bayesian() models in one solve must share the same num_chains; got {0}. Give every model the same `.num_chains(k)`")]
    MismatchedChains(String),
    /// `solve` was called with no model configured for sampling.
    #[error("no model of this problem has a `.bayesian(..)` configuration: call e.g. `a.bayesian(Bayesian::nuts())` before `solve`")]
    NoBayesianModel,
    /// Evaluation asked for chains that do not exist.
    #[error("{0}")]
    Samples(String),
    /// A convergence diagnostic was given an array it cannot summarise
    /// (fewer than 2 axes, no chains, no draws, or too few chains for the
    /// requested strategy).
    #[error("{0}")]
    Diagnostics(String),
    /// The CUDA backend cannot run (no driver, no device, a driver error).
    #[error("CUDA: {0}")]
    Cuda(String),
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
