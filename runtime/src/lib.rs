//! # crux
//!
//! Bayesian inverse problems and Bayesian physics-informed neural networks,
//! compiled. Write the problem as residual expressions over a domain's
//! points, parameters and networks; crux traces it to a graph IR,
//! differentiates it, evaluates everything that does not depend on the
//! parameters once, and optimises the rest (see `crux-compiler`).
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

pub mod bayesian;
mod compiled;
mod constraint;
pub mod diagnostics;
mod domain;
mod error;
pub mod export;
mod expr;
mod ids;
mod logdensity;
mod net;
pub mod noise;
mod param;
mod prior;
mod problem;
mod trace;

pub use bayesian::{
    Bayesian, InverseMass, KernelChoice, Posterior, Samples, Solution, SolveOptions, Tiering,
};
pub use compiled::{Backend, CompiledLogDensity, Workspace};
pub use constraint::{Constraint, Reduction};
pub use domain::Domain;
pub use error::{Error, Result};
pub use expr::{diff, Expr, IntoExpr, MAX_ELEMENTS, MAX_RANK};
pub use ids::{DomainId, ModelId};
pub use logdensity::{LogDensity, LogDensityBuilder, Slot};
pub use net::{Activation, Net, MAX_LAYERS, MAX_NET_PARAMS};
pub use param::{Model, Param, MAX_PARAM_ENTRIES};
pub use prior::{CustomPrior, Prior};
pub use problem::{Crux, ModelInfo, DEFAULT_SEED};

pub use crux_compiler::optimise::EggLimits;
pub use crux_compiler::pipeline::StageStats;

/// π, for writing `PI * &x`.
pub const PI: f64 = std::f64::consts::PI;

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
        DiagField, DiagKind, Family, Kernel, Rng, StepCtx, StepEnv, StepInfo, Target, Vector,
    };
    pub use crux_ir::kernel::{Builder, CmpOp, KernelError, Value};
}
