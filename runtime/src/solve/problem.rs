//! [`Crux`], the problem a user solves: every public operation on it is in
//! this one `impl`, each delegating to the room that does the work
//! (tracing and compiling in [`crate::compile`], sampling in
//! [`crate::solve`]).

use ndarray::ArrayD;

use super::eval::{eval_samples, Samples};
use super::options::{Solution, SolveOptions};
use crate::compile::problem::Problem;
use crate::compile::LogDensityBuilder;
use crate::error::Result;
use crate::model::{Constraint, IntoExpr, ModelInfo};

/// A problem: constraints whose mean is the loss (DESIGN §6), the models
/// they use, and the seed their noise terms are drawn from.
#[derive(Clone, Debug)]
pub struct Crux {
    problem: Problem,
}

impl Crux {
    /// A problem from its constraints. Fails on an empty list, on invalid
    /// expressions (with the first offending operation), on constraints over
    /// different domains, and on parameters with no entries.
    pub fn new(constraints: impl IntoIterator<Item = Constraint>) -> Result<Crux> {
        Ok(Crux {
            problem: Problem::new(constraints)?,
        })
    }

    /// Sets the seed from which noise terms are drawn once (default 42).
    /// The sampler's draws use it too unless [`SolveOptions::seed`] gives
    /// them their own.
    pub fn with_seed(self, seed: u64) -> Crux {
        Crux {
            problem: self.problem.with_seed(seed),
        }
    }

    /// The data seed.
    pub fn seed(&self) -> u64 {
        self.problem.seed()
    }

    /// The constraints.
    pub fn constraints(&self) -> &[Constraint] {
        self.problem.constraints()
    }

    /// The models the constraints use, in first-use order (with their
    /// settings and results).
    pub fn models(&self) -> &[ModelInfo] {
        self.problem.models()
    }

    /// Number of collocation points the constraints read (each tag once).
    pub fn num_points(&self) -> usize {
        self.problem.num_points()
    }

    /// Starts building the log-density of a set of sampled models.
    pub fn log_density(&self) -> LogDensityBuilder<'_> {
        self.problem.log_density()
    }

    /// The loss at the current parameter values.
    pub fn loss_value(&self) -> Result<f64> {
        self.problem.loss_value()
    }

    /// Evaluates an expression at the current parameter values, with this
    /// problem's noise draws, by the reference interpreter.
    pub fn eval(&self, e: impl IntoExpr) -> Result<ArrayD<f64>> {
        self.problem.eval(&e.into_expr())
    }

    /// Samples every model that has a `.bayesian(..)` configuration: each
    /// runs its warmup, then keeps one draw every `thin` sweeps until
    /// `keep`. `epochs` caps the sweeps: when it ends before `warmup +
    /// keep·thin` a model keeps fewer draws; sweeps beyond the longest
    /// model's `warmup + keep·thin` are not run ([`Solution::sweeps`] says
    /// how many ran). Models without a configuration stay at their current
    /// values. Afterwards each sampled model holds chain 0's last position
    /// and its posterior.
    pub fn solve(&self, epochs: usize) -> Result<Solution> {
        self.solve_with(epochs, &SolveOptions::default())
    }

    /// [`solve`](Self::solve) with options (backend, code tier, threads,
    /// seed, tracker, progress).
    pub fn solve_with(&self, epochs: usize, opts: &SolveOptions) -> Result<Solution> {
        super::driver::solve(&self.problem, epochs, opts)
    }

    /// Evaluates expressions (parameters, network outputs, any expression)
    /// chain-aware (see [`Samples`]): a chain result has shape `(K, N,
    /// *point_shape)`, a point result the point shape.
    pub fn eval_samples<E: IntoExpr>(
        &self,
        exprs: impl IntoIterator<Item = E>,
        samples: Samples,
    ) -> Result<Vec<ArrayD<f64>>> {
        eval_samples(self, exprs, samples)
    }

    /// The chunk function a solve of `epochs` sweeps would run (one chain
    /// per call; see `crux_compiler::sampler`): for inspection and for
    /// other backends.
    pub fn chunk_function(&self, epochs: usize) -> Result<crux_ir::kernel::Function> {
        super::driver::chunk_function(&self.problem, epochs, &SolveOptions::default())
    }

    /// The PTX of the chunk function a CUDA solve of `epochs` sweeps would
    /// launch (one thread per chain; see `crux_compiler::backend::ptx` for
    /// the calling convention). Needs no GPU.
    pub fn emit_ptx(&self, epochs: usize) -> Result<String> {
        self.emit_ptx_with(epochs, &SolveOptions::default())
    }

    /// [`emit_ptx`](Self::emit_ptx) for a solve with options (substeps
    /// change the chunk function).
    pub fn emit_ptx_with(&self, epochs: usize, opts: &SolveOptions) -> Result<String> {
        super::driver::chunk_ptx(&self.problem, epochs, opts)
    }

    /// An ahead-of-time artifact of the solve [`solve_with`](Self::solve_with)
    /// would run (`epochs`, `opts`), named `name`: write it with
    /// [`Artifact::write`](super::Artifact::write), run it later with
    /// [`Artifact::read`](super::Artifact::read) and
    /// [`Artifact::sample`](super::Artifact::sample) without tracing or
    /// optimising again; the same seed gives the same draws as the solve.
    pub fn compile_artifact(
        &self,
        name: &str,
        epochs: usize,
        opts: &SolveOptions,
    ) -> Result<super::Artifact> {
        super::Artifact::compile(&self.problem, name, epochs, opts)
    }

    pub(crate) fn problem(&self) -> &Problem {
        &self.problem
    }
}
