//! How a solve runs ([`SolveOptions`], [`Tiering`]) and what it reports
//! ([`Solution`], [`ModelReport`]).

use std::sync::{Arc, Mutex};

use super::track::Tracker;
use crate::analysis::SummaryTable;
use crate::compile::compiled::Backend;
use crate::model::{Model, ModelId, Posterior};

/// Which machine code runs the chains on the Cranelift backend. The two
/// tiers compute the same bits; they differ in compile time and speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tiering {
    /// Start on baseline code; when the run is long enough to pay for it,
    /// compile optimised code in the background and switch at a chunk
    /// boundary (short runs finish sooner, long runs run fast).
    #[default]
    Auto,
    /// Baseline code only (fastest to compile).
    Baseline,
    /// Optimised code only (compiled before the first sweep).
    Optimised,
}

/// How a solve runs.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    pub(crate) backend: Backend,
    pub(crate) tiering: Tiering,
    pub(crate) threads: Option<usize>,
    pub(crate) quiet: bool,
    pub(crate) chunk: Option<usize>,
    pub(crate) tracker: Option<Arc<Mutex<dyn Tracker>>>,
    pub(crate) seed: Option<u64>,
    pub(crate) substeps: Option<Vec<Substep>>,
    pub(crate) checkpoint: Option<std::path::PathBuf>,
    pub(crate) checkpoint_every: f64,
    pub(crate) resume: Option<std::path::PathBuf>,
    pub(crate) stop_after_chunks: Option<usize>,
}

/// One substep of a sweep (the spec's `substeps=`): the models that the
/// constraints `constraints` use step `steps` times on the log-density of
/// those constraints alone, before the next substep. Each (substep, model)
/// pair has its own kernel or optimiser state; the position is shared. A
/// model's kept draw is its position after its last substep of the sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substep {
    pub(crate) constraints: Vec<usize>,
    pub(crate) steps: usize,
    /// Only these models step in it (default: every configured model whose
    /// leaves the constraints read).
    pub(crate) models: Vec<ModelId>,
}

impl Substep {
    /// A substep over the constraints `constraints` (indices in
    /// `Crux::new` order), one step per sweep.
    pub fn new(constraints: impl IntoIterator<Item = usize>) -> Substep {
        Substep {
            constraints: constraints.into_iter().collect(),
            steps: 1,
            models: Vec::new(),
        }
    }
    /// Restricts the substep to `model` (call once per model): the others
    /// are held at their current value in it, as `stop_gradient` would (the
    /// spec's surrogate, trained in one substep and held in the next).
    pub fn model(mut self, model: &impl Model) -> Substep {
        self.models.push(model.model_id());
        self
    }
    /// Steps per sweep (at least 1).
    pub fn steps(mut self, n: usize) -> Substep {
        self.steps = n;
        self
    }
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            backend: Backend::Cranelift,
            tiering: Tiering::Auto,
            threads: None,
            quiet: false,
            chunk: None,
            tracker: None,
            seed: None,
            substeps: None,
            checkpoint: None,
            checkpoint_every: 60.0,
            resume: None,
            stop_after_chunks: None,
        }
    }
}

impl SolveOptions {
    /// Runs every sweep as these substeps, in order (the spec's two-stage
    /// pattern: substep 0 trains a surrogate with Adam on its constraints,
    /// substep 1 samples a coefficient on the others with the surrogate
    /// held at its current value). Sampled models need `.adapt(false)`
    /// (window adaptation would tune against one substep's log-density);
    /// every configured model must appear in some substep's constraints.
    pub fn substeps(mut self, substeps: impl IntoIterator<Item = Substep>) -> Self {
        self.substeps = Some(substeps.into_iter().collect());
        self
    }
    /// The sampler's seed: chains' draws are a function of it (and of the
    /// chain, sweep and model), whatever the backend, threads or chunks.
    /// Default: the problem's data seed ([`crate::Crux::with_seed`]), so
    /// one seed fixes everything; set it to rerun chains on the same data.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Where the chunk function runs (default Cranelift).
    pub fn backend(mut self, b: Backend) -> Self {
        self.backend = b;
        self
    }
    /// Which Cranelift code runs the chains (default [`Tiering::Auto`]).
    /// Draws do not depend on it.
    pub fn tiering(mut self, t: Tiering) -> Self {
        self.tiering = t;
        self
    }
    /// Worker threads for the chains (default: the machine's cores, at most
    /// one per chain). Draws do not depend on it.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }
    /// Streams metrics at every chunk boundary to `tracker` (see
    /// [`Metrics`](super::Metrics) for the keys).
    pub fn tracker(mut self, tracker: impl Tracker + 'static) -> Self {
        self.tracker = Some(Arc::new(Mutex::new(tracker)));
        self
    }
    /// No log events (`tracing`) and no progress bar.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }
    /// Sweeps per call of the chunk function (default: a tenth of the run,
    /// at least 10). Draws do not depend on it.
    pub fn chunk_sweeps(mut self, n: usize) -> Self {
        self.chunk = Some(n.max(1));
        self
    }
    /// Writes a checkpoint of the whole run to `path` at chunk boundaries,
    /// at most every [`checkpoint_every`](Self::checkpoint_every) seconds
    /// (atomically: a temporary file renamed into place). A killed run
    /// continues from it with [`resume`](Self::resume).
    pub fn checkpoint(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }
    /// The least time between checkpoints (default 60 s; 0: every chunk).
    pub fn checkpoint_every(mut self, seconds: f64) -> Self {
        self.checkpoint_every = seconds.max(0.0);
        self
    }
    /// Continues the run the checkpoint at `path` holds (the same problem,
    /// epochs, seed and chains, else a [`crate::CheckpointError`] saying
    /// what differs): the draws equal those of an uninterrupted run, bit
    /// for bit, whatever the chunk it stopped at, the threads or the tier.
    pub fn resume(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.resume = Some(path.into());
        self
    }
    /// Ends the run after `n` chunks (or at the chunk boundary after a
    /// [`crate::interrupt`], e.g. from a Ctrl-C handler) with [`crate::Error::Interrupted`]
    /// (after writing the checkpoint, if one is configured): a run split
    /// across time-limited jobs, and the tests of resuming.
    pub fn stop_after_chunks(mut self, n: usize) -> Self {
        self.stop_after_chunks = Some(n);
        self
    }
}

/// Per-model summary of a solve.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelReport {
    /// Model name.
    pub name: String,
    /// Kernel name.
    pub kernel: String,
    /// Draws kept per chain.
    pub num_draws: usize,
    /// Divergent kept transitions, all chains (HMC family).
    pub divergences: Option<usize>,
    /// Mean acceptance statistic of kept transitions.
    pub mean_acceptance: Option<f64>,
    /// Mean energy of kept transitions (HMC family).
    pub mean_energy: Option<f64>,
    /// Final step size per chain (empty for VI).
    pub step_size: Vec<f64>,
    /// VI: the mean ELBO estimate of the last tenth of the steps, over
    /// the chains.
    pub final_elbo: Option<f64>,
}

/// What a solve did and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// Backend that ran the chains.
    pub backend: Backend,
    /// Chains.
    pub num_chains: usize,
    /// Sweeps per chain the solve was planned for (a run that stopped
    /// early, see [`crate::Error::Interrupted`], ran fewer).
    pub sweeps: usize,
    /// Sweeps of warmup (the longest model's).
    pub warmup_sweeps: usize,
    /// Tracing, differentiation, optimisation, lowering and code generation
    /// of the code the chains start on.
    pub compile_seconds: f64,
    /// Background compile time of the optimised tier, when it was built
    /// while the chains ran (see [`Tiering::Auto`]).
    pub optimised_compile_seconds: Option<f64>,
    /// Seconds the initializers took (pathfinder, Laplace, SVGD; their
    /// log-densities' compilation included), part of `compile_seconds`.
    pub initializer_seconds: f64,
    /// Wall time of the warmup sweeps, all chains.
    pub warmup_seconds: f64,
    /// Wall time of the sampling sweeps, all chains.
    pub sampling_seconds: f64,
    /// Gradient evaluations during warmup, all chains and models.
    pub grad_evals_warmup: u64,
    /// Gradient evaluations during sampling, all chains and models.
    pub grad_evals: u64,
    /// Threads used.
    pub threads: usize,
    /// Per sampled model, in solve order.
    pub models: Vec<ModelReport>,
    /// Per sampled model, in solve order (also left on each model).
    pub posteriors: Vec<Arc<Posterior>>,
    /// `(sweep, loss)` at chain 0 at the end of every chunk, when a model
    /// is optimised (the training curve); empty otherwise.
    pub loss_history: Vec<(usize, f64)>,
}

impl Solution {
    /// The posterior this solve produced for `model` (looked up by its
    /// [`crate::ModelId`]; `None` if it was not sampled).
    pub fn posterior(&self, model: &impl Model) -> Option<&Posterior> {
        let id = model.model_id();
        self.posteriors
            .iter()
            .find(|p| p.model_id == id)
            .map(|p| &**p)
    }

    /// The posteriors as references, the form [`crate::analysis::export`] takes.
    pub fn posterior_refs(&self) -> Vec<&Posterior> {
        self.posteriors.iter().map(|p| &**p).collect()
    }

    /// The summary table of every sampled model's entries.
    pub fn summary(&self) -> SummaryTable {
        SummaryTable {
            rows: self
                .posteriors
                .iter()
                .flat_map(|p| p.summary().rows)
                .collect(),
        }
    }
}

/// A progress bar over the sweeps on stderr, hidden when `quiet` or when
/// stdout is not a terminal.
pub(crate) fn progress_bar(opts: &SolveOptions, sweeps: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if opts.quiet || !std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(sweeps as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} sweeps {pos}/{len} [{bar:30}] {elapsed_precise} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
