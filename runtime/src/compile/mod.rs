//! From declarations to code: tracing expressions into graph IR, the
//! log-density of a set of sampled models (staged, differentiated,
//! optimised by `crux-compiler`), and log-densities and pushforwards
//! compiled for a backend. Imports only [`crate::model`].

pub(crate) mod compiled;
pub(crate) mod hessian;
pub(crate) mod logdensity;
pub(crate) mod prior_eval;
pub(crate) mod problem;
pub(crate) mod pushforward;
pub(crate) mod trace;

pub use compiled::{Backend, CompiledLogDensity, Workspace};
pub use logdensity::{LogDensity, LogDensityBuilder, Slot};
pub use problem::DEFAULT_SEED;
