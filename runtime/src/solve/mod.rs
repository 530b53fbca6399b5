//! Running a problem: `.bayesian(..)` configurations validated against
//! their models, the solve driver in steps (plan, chain initialisation,
//! executor, chunk scheduler, collection), the CPU and CUDA executors,
//! chain-aware evaluation, trackers, and [`Crux`], the problem a user
//! solves. Imports [`crate::model`], [`crate::compile`] and
//! [`crate::analysis`]; nothing imports it but the crate root.
//!
//! ```
//! use crux::{noise, Bayesian, Crux, Domain, Param, SolveOptions, PI};
//!
//! # fn main() -> crux::Result<()> {
//! let dom = Domain::line(0.0, 1.0, 0.01)?;
//! let x = dom.variable("interior")?;
//! let target = 3.14 * (PI * &x).sin() - 2.71 * (PI * &x).cos() + noise::gaussian(0.1);
//! let a = Param::new("a", [1]);
//! let b = Param::new("b", [1]);
//! for p in [&a, &b] {
//!     p.bayesian(Bayesian::nuts().step_size(1e-2).warmup(200).keep(300))?;
//! }
//! let residual = &a * (PI * &x).sin() + &b * (PI * &x).cos() - &target;
//! let problem = Crux::new([residual.mse()])?;
//! problem.solve_with(500, &SolveOptions::default().quiet())?;
//! let chain = a.posterior_samples().unwrap(); // (1, 300, 1)
//! assert_eq!(chain.shape(), &[1, 300, 1]);
//! # Ok(())
//! # }
//! ```

pub mod artifact;
pub mod checkpoint;
mod driver;
mod eval;
mod initializers;
mod options;
mod problem;
mod resolve;
mod track;

pub use artifact::{Artifact, ArtifactError, ArtifactRun, ArtifactSamples, GraphSampling};
pub use checkpoint::{interrupt, CheckpointError, CHECKPOINT_FORMAT};
#[cfg(feature = "cuda")]
pub use driver::cuda::driver_present;
pub use eval::Samples;
pub use options::{ModelReport, Solution, SolveOptions, Substep, Tiering};
pub use problem::Crux;
pub use track::{JsonlTracker, Metrics, Tracker};
