//! # crux
//!
//! Bayesian inverse problems and Bayesian physics-informed neural networks,
//! compiled. Write the problem as residual expressions over a domain's
//! points, parameters and networks; crux traces it to a graph IR,
//! differentiates it, evaluates everything that does not depend on the
//! parameters once, and optimises the rest (see `crux-compiler`).
//!
//! The crate is four rooms whose imports point one way:
//!
//! ```text
//! model ◀── compile ◀── solve        (A ◀── B: B imports A)
//!   ▲                     │
//!   └──── analysis ◀──────┘
//! ```
//!
//! - [`model`]: what the user declares — domains, expressions, parameters,
//!   networks, noise, constraints, priors, per-model settings (how a model
//!   is sampled) and results (its posterior). Imports no other room.
//! - [`compile`]: tracing to graph IR, the log-density, compiled
//!   log-densities and pushforwards. Imports `model`.
//! - [`analysis`]: convergence diagnostics, the summary table, exports.
//!   Imports `model`.
//! - [`solve`]: the problem ([`Crux`]), `.bayesian(..)` validation, the
//!   driver in steps, the CPU and CUDA executors, chain-aware evaluation.
//!   Imports the three others.
//!
//! Errors ([`Error`]) sit beside the rooms; every room may use them.
//!
//! # Semantics worth knowing
//!
//! The log-density of a sampled model is `−likelihood_scale · mean_c L_c +
//! log prior`, `L_c = mean(r²)` for `.mse()`. With `N` residual entries,
//! `likelihood_scale = N/(2σ²)` makes that the Gaussian log-likelihood of
//! noise σ. The spec's text says `N/σ²`, which doubles the likelihood's
//! weight and halves the posterior variance; crux documents and tests the
//! `N/(2σ²)` form (`samples/src/problems.rs`, gauss100's scale 50 for N =
//! 100). An optimised model steps on `mean_c L_c` (scale 1, no prior).
//!
//! ```
//! use crux::{noise, Crux, Domain, Param, Prior, PI};
//!
//! # fn main() -> crux::Result<()> {
//! let dom = Domain::line(0.0, 1.0, 0.01)?;
//! let x = dom.variable("interior")?;
//! let target = 3.14 * (PI * &x).sin() - 2.71 * (PI * &x).cos() + noise::gaussian(0.1);
//! let a = Param::new("a", [1]);
//! let b = Param::new("b", [1]);
//! let residual = &a * (PI * &x).sin() + &b * (PI * &x).cos() - &target;
//! let problem = Crux::new([residual.mse()])?;
//! let logp = problem
//!     .log_density()
//!     .sample(&a, Prior::default())
//!     .sample(&b, Prior::default())
//!     .build()?;
//! let (lp, grad) = logp.logp_and_grad(&[3.0, -2.7])?;
//! assert!(lp.is_finite() && grad.len() == 2);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod analysis;
pub mod compile;
mod error;
mod files;
pub mod model;
pub mod solve;

pub use analysis::{diagnostics, export};
pub use compile::{
    Backend, CompiledLogDensity, LogDensity, LogDensityBuilder, Slot, Workspace, DEFAULT_SEED,
};
pub use error::{Error, Result, RunFailure};
pub use files::{atomic_write, atomic_write_with};
pub use model::{
    diff, noise, Activation, Bayesian, Constraint, CustomPrior, Diagnostics, Domain, DomainId,
    Expr, Group, GroupRole, Init, IntoExpr, InverseMass, KernelChoice, Laplace, LeafSamples, Mask,
    MaskGroup, Masked, Metric, Model, ModelId, ModelInfo, ModelResults, ModelSettings, Net,
    Optimizer, Param, Pathfinder, Posterior, Prior, Reduction, Svgd, Transform, Variational, Vi,
    MAX_DF, MAX_ELEMENTS, MAX_LAYERS, MAX_NET_PARAMS, MAX_ORDERED_ENTRIES, MAX_PARAM_ENTRIES,
    MAX_RANK,
};
pub use solve::{
    interrupt, Artifact, ArtifactError, ArtifactRun, ArtifactSamples, CheckpointError, Crux,
    GraphSampling, JsonlTracker, Metrics, ModelReport, Samples, Solution, SolveOptions, Substep,
    Tiering, Tracker,
};

pub use crux_compiler::optimise::EggLimits;
pub use crux_compiler::pipeline::StageStats;
pub use crux_compiler::sampler::minibatch::{Minibatch, WeightInput};
pub use crux_ir::rng::MAX_SWEEPS;

/// π, for writing `PI * &x`.
pub const PI: f64 = std::f64::consts::PI;

/// Sends crux's log lines (each sampled model's configuration and prior,
/// the schedule, the closing per-model summary) to stderr through
/// `tracing-subscriber`. Call it once at the start of a program; later
/// calls, or a subscriber installed by the program itself, take precedence
/// silently.
pub fn init_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Writing your own sampling kernel: implement [`custom::Kernel`] with the
/// kernel-IR builder and pass it to [`Bayesian::custom`]. It is compiled
/// into the same fused chunk function as the built-in kernels and goes
/// through the same warmup / keep / thin pipeline (see
/// `samples/src/rwm.rs` for random-walk Metropolis).
pub mod custom {
    pub use crux_compiler::math;
    pub use crux_compiler::sampler::kernels::{
        accept_prob, acceptance_fields, bool_f64, select_into,
    };
    pub use crux_compiler::sampler::{
        DiagField, DiagKind, DiagName, Family, Kernel, Rng, StepCtx, StepEnv, StepInfo, Target,
        Vector,
    };
    pub use crux_ir::kernel::{Builder, CmpOp, KernelError, Value};
}
