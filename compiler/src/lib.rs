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
//! * [`math`]: transcendental functions expanded into kernel IR (range
//!   reduction and polynomials), the same sequence on every backend.
//! * [`lower`]: the optimised graph lowered to one kernel-IR function with
//!   fused loops (log-density and gradient, or values for pushforwards).
//! * [`sampler`]: sampler kernels written in kernel IR (NUTS, HMC, MALA,
//!   SGLD, SGHMC, user kernels), window adaptation, and the chunk function
//!   that fuses them with the inlined log-densities; [`sampler::abi`] is
//!   the one definition of the chunk function's buffers, arguments and
//!   diagnostic names that the runtime reads; [`sampler::minibatch`] draws
//!   the per-point weights of minibatch SG kernels.
//! * [`backend`]: the reference interpreter as an executable, Cranelift
//!   (JIT and object files, two tiers), PTX text and its `ptxas` check.
//! * [`verify`]: the IR verifiers between passes (debug builds and tests).
//!
//! The order of the passes is the order of this list; the folder tree
//! shows it too.

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
