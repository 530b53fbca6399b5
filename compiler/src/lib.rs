//! # crux-compiler
//!
//! The passes between the modelling DSL and the backends:
//!
//! * [`ad`]: automatic differentiation as graph-to-graph transforms —
//!   reverse mode for `∇θ log p`, forward mode (nested for higher orders)
//!   for derivatives of fields with respect to coordinates.
//! * [`stage`]: partial evaluation of everything that does not depend on a
//!   runtime parameter (points, observations, noise drawn once).
//! * [`optimise`]: the e-graph optimiser over elementwise regions, followed
//!   by CSE and DCE.
//! * [`pipeline`]: the staged pipeline as a whole, with per-stage statistics
//!   for `--inspect`.
//! * [`verify`]: the IR verifiers between passes (debug builds and tests).

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod ad;
pub mod backend;
pub mod lower;
pub mod math;
pub mod optimise;
pub mod pipeline;
pub mod sampler;
pub mod stage;
pub mod verify;
