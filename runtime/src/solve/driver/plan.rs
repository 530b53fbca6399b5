//! Step 1 of a solve: the sampled models, validated, laid out in θ, and
//! the chunk function that advances every chain's Gibbs sweep.

use crux_compiler::lower::lower_log_density;
use crux_compiler::pipeline::CompileError;
use crux_compiler::sampler::{build_chunk, Adaptation, Chunk, Family, ModelPlan};

use super::super::resolve::{resolve, Resolved};
use crate::compile::problem::Problem;
use crate::error::{Error, Result};
use crate::model::{KernelChoice, ModelId, Param};

/// A validated solve: the sampled models, the chunk function, the chains.
pub(crate) struct Plan {
    pub sampled: Vec<Sampled>,
    pub chunk: Chunk,
    /// Chains.
    pub k: usize,
}

/// One sampled model: its configuration and its block of θ.
pub(crate) struct Sampled {
    pub name: String,
    pub id: ModelId,
    /// A kernel of crux's (not a user kernel).
    pub builtin: bool,
    /// Leaves in leaf order.
    pub leaves: Vec<Param>,
    pub cfg: Resolved,
    /// Offset of the model's block in θ.
    pub offset: usize,
    /// Entries of the block.
    pub len: usize,
}

impl Plan {
    /// Whether every kernel is one of crux's (their chunk functions need no
    /// bounds checks).
    pub fn builtin(&self) -> bool {
        self.sampled.iter().all(|s| s.builtin)
    }
    /// The names of the models sampled by user kernels (the only code that
    /// can index out of bounds), or of every model when there are none.
    pub fn suspects(&self) -> Vec<String> {
        let user: Vec<String> = self
            .sampled
            .iter()
            .filter(|s| !s.builtin)
            .map(|s| s.name.clone())
            .collect();
        if user.is_empty() {
            self.sampled.iter().map(|s| s.name.clone()).collect()
        } else {
            user
        }
    }
}

/// Validates every `.bayesian(..)` model of `problem` and builds the chunk
/// function of a solve of `epochs` sweeps (logging configuration lines
/// through `log`).
pub(crate) fn plan(problem: &Problem, epochs: usize, log: &dyn Fn(String)) -> Result<Plan> {
    let sampled = sampled_models(problem, epochs)?;
    let k = sampled[0].cfg.num_chains;
    if sampled.iter().any(|s| s.cfg.num_chains != k) {
        return Err(Error::MismatchedChains {
            chains: sampled
                .iter()
                .map(|s| (s.name.clone(), s.cfg.num_chains))
                .collect(),
        });
    }
    log_configuration(&sampled, k, log);
    let chunk = chunk_function(problem, &sampled)?;
    Ok(Plan { sampled, chunk, k })
}

/// The sampled models in problem order, each resolved and given its block
/// of θ; `keep` cut to what `epochs` leaves.
fn sampled_models(problem: &Problem, epochs: usize) -> Result<Vec<Sampled>> {
    let mut sampled = Vec::new();
    let mut offset = 0;
    for m in problem.models() {
        let Some(config) = m.settings().bayesian else {
            continue;
        };
        let mut leaves = m.leaves.clone();
        leaves.sort_by_key(Param::leaf_id);
        let len: usize = leaves.iter().map(Param::len).sum();
        let mut cfg = resolve(&config, &m.name, len)?;
        let sweeps_needed = cfg.warmup + cfg.keep * cfg.thin;
        if epochs < sweeps_needed {
            let avail = epochs.saturating_sub(cfg.warmup) / cfg.thin;
            if avail == 0 {
                return Err(Error::Bayesian {
                    model: m.name.clone(),
                    reason: format!(
                        "{epochs} epochs leave no draw after warmup {} with thin {}: solve at least {} epochs (warmup + keep·thin = {sweeps_needed})",
                        cfg.warmup, cfg.thin, cfg.warmup + cfg.thin
                    ),
                });
            }
            cfg.keep = cfg.keep.min(avail);
        }
        sampled.push(Sampled {
            builtin: !matches!(config.kernel(), KernelChoice::Custom(_)),
            name: m.name.clone(),
            id: m.id,
            leaves,
            cfg,
            offset,
            len,
        });
        offset += len;
    }
    if sampled.is_empty() {
        return Err(Error::NoBayesianModel);
    }
    Ok(sampled)
}

/// One line per model: kernel, schedule, prior, diagnostics; and a warning
/// when warmups differ.
fn log_configuration(sampled: &[Sampled], k: usize, log: &dyn Fn(String)) {
    let warmups: Vec<usize> = sampled.iter().map(|s| s.cfg.warmup).collect();
    if warmups.iter().any(|w| *w != warmups[0]) {
        log(format!(
            "models have different warmups {warmups:?}: each keeps draws after its own warmup while the others may still be adapting; give them one warmup for draws from the joint posterior throughout"
        ));
    }
    for s in sampled {
        let fields: Vec<&str> = s.cfg.kernel.diagnostics().iter().map(|f| f.name).collect();
        let diag = if fields.is_empty() {
            "none (kernel has no info record)".to_string()
        } else {
            fields.join(", ")
        };
        log(format!(
            "Model '{}': Bayesian sampling via '{}' (kind={}, warmup={}, keep={}, thin={}, adapt={}, chains={k}, prior={:?}, diagnostics={diag})",
            s.name,
            s.cfg.kernel.name(),
            match s.cfg.kernel.family() {
                Family::FullData => "full",
                Family::StochasticGradient => "grad_estimator",
            },
            s.cfg.warmup,
            s.cfg.keep,
            s.cfg.thin,
            s.cfg.adapt,
            s.cfg.prior,
        ));
    }
}

/// One conditional log-density per model over the whole θ (its prior, the
/// others' blocks as inputs), lowered and fused into the chunk function.
fn chunk_function(problem: &Problem, sampled: &[Sampled]) -> Result<Chunk> {
    let dim = sampled.iter().map(|s| s.len).sum();
    let mut plans = Vec::new();
    for (i, s) in sampled.iter().enumerate() {
        let mut b = problem
            .log_density()
            .likelihood_scale(s.cfg.likelihood_scale);
        for (j, o) in sampled.iter().enumerate() {
            let prior = (i == j).then(|| s.cfg.prior.clone());
            b = b.slot(&o.name, o.id, &o.leaves, prior);
        }
        let ld = b.build()?;
        let lowered = lower_log_density(ld.graph(), &format!("logp_{i}"))
            .map_err(|e| Error::Compile(CompileError::Lower(e)))?;
        plans.push(ModelPlan {
            name: s.name.clone(),
            kernel: s.cfg.kernel.clone(),
            target: lowered,
            offset: s.offset,
            len: s.len,
            warmup: s.cfg.warmup,
            keep: s.cfg.keep,
            thin: s.cfg.thin,
            adapt: s.cfg.adapt.then_some(Adaptation {
                target_acceptance: s.cfg.target_acceptance,
            }),
        });
    }
    build_chunk(dim, &plans).map_err(|e| Error::Bayesian {
        model: sampled[0].name.clone(),
        reason: format!("the sampler kernel is invalid: {e}"),
    })
}
