//! Step 1 of a solve: the models that move (optimised ones first, then
//! sampled ones, each in problem order), validated, laid out in θ, and the
//! chunk function that advances every chain's sweep.

use crux_compiler::lower::lower_log_density;
use crux_compiler::pipeline::CompileError;
use std::sync::Arc;

use crux_compiler::sampler::{build_chunk, Adaptation, Chunk, Family, ModelPlan, ModelSlots};

use super::super::resolve::{resolve, Resolved};
use crate::compile::problem::Problem;
use crate::error::{Error, Result};
use crux_ir::rng::MAX_SWEEPS;

use crate::model::{Bayesian, KernelChoice, ModelId, Optimizer, Param};

/// A validated solve: the models that move, the chunk function, the chains.
pub(crate) struct Plan {
    /// In sweep order (the chunk's models are in the same order).
    pub members: Vec<Member>,
    pub chunk: Chunk,
    /// Chains.
    pub k: usize,
}

/// How a member moves.
pub(crate) enum Role {
    /// It is sampled (its validated `.bayesian(..)`).
    Sampled(Resolved),
    /// It takes one optimiser step per sweep on the loss gradient.
    Optimised(Optimizer),
}

/// One model that moves in the solve: its role and its block of θ.
pub(crate) struct Member {
    pub name: String,
    pub id: ModelId,
    /// A kernel of crux's (not a user kernel).
    pub builtin: bool,
    /// Leaves in leaf order.
    pub leaves: Vec<Param>,
    pub role: Role,
    /// Offset of the model's block in θ.
    pub offset: usize,
    /// Entries of the block.
    pub len: usize,
}

impl Member {
    /// The sampling configuration, for a sampled member.
    pub fn sampled(&self) -> Option<&Resolved> {
        match &self.role {
            Role::Sampled(r) => Some(r),
            Role::Optimised(_) => None,
        }
    }
}

impl Plan {
    /// The sampled members with their configurations and chunk slots.
    pub fn sampled(&self) -> impl Iterator<Item = (&Member, &Resolved, &ModelSlots)> {
        self.members
            .iter()
            .zip(&self.chunk.models)
            .filter_map(|(m, s)| m.sampled().map(|r| (m, r, s)))
    }
    /// Whether some member is optimised.
    pub fn optimises(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m.role, Role::Optimised(_)))
    }
    /// Whether every kernel is one of crux's (their chunk functions need no
    /// bounds checks).
    pub fn builtin(&self) -> bool {
        self.members.iter().all(|s| s.builtin)
    }
    /// The names of the models sampled by user kernels (the only code that
    /// can index out of bounds), or of every model when there are none.
    pub fn suspects(&self) -> Vec<String> {
        let user: Vec<String> = self
            .members
            .iter()
            .filter(|s| !s.builtin)
            .map(|s| s.name.clone())
            .collect();
        if user.is_empty() {
            self.members.iter().map(|s| s.name.clone()).collect()
        } else {
            user
        }
    }
}

/// Validates every `.bayesian(..)` and `.optimizer(..)` model of
/// `problem` and builds the chunk function of a solve of `epochs` sweeps
/// (logging configuration lines through `log`).
pub(crate) fn plan(problem: &Problem, epochs: usize, log: &dyn Fn(String)) -> Result<Plan> {
    let members = members(problem, epochs)?;
    let chains: Vec<(String, usize)> = members
        .iter()
        .filter_map(|m| m.sampled().map(|r| (m.name.clone(), r.num_chains)))
        .collect();
    let k = chains.first().map_or(1, |c| c.1);
    if chains.iter().any(|c| c.1 != k) {
        return Err(Error::MismatchedChains { chains });
    }
    log_configuration(&members, k, log);
    let chunk = chunk_function(problem, &members, epochs)?;
    Ok(Plan { members, chunk, k })
}

/// The models that move, optimised ones first, each resolved and given its
/// block of θ; a sampled model's `keep` cut to what `epochs` leaves.
fn members(problem: &Problem, epochs: usize) -> Result<Vec<Member>> {
    let mut optimised = Vec::new();
    let mut sampled = Vec::new();
    for m in problem.models() {
        let settings = m.settings();
        let mut leaves = m.leaves.clone();
        leaves.sort_by_key(Param::leaf_id);
        let len: usize = leaves.iter().map(Param::len).sum();
        let member = |role, builtin| Member {
            name: m.name.clone(),
            id: m.id,
            builtin,
            leaves: leaves.clone(),
            role,
            offset: 0,
            len,
        };
        match (settings.bayesian, settings.optimizer) {
            (None, None) => {}
            (Some(_), Some(_)) => {
                return Err(Error::Bayesian {
                    model: m.name.clone(),
                    reason: "has both .optimizer(..) and .bayesian(..): a model is either optimised (a point estimate) or sampled".into(),
                })
            }
            (None, Some(opt)) => {
                optimised.push(member(Role::Optimised(opt), true));
            }
            (Some(config), None) => {
                let cfg = resolve_for(&config, &m.name, len, epochs)?;
                let builtin = !matches!(config.kernel(), KernelChoice::Custom(_));
                sampled.push(member(Role::Sampled(cfg), builtin));
            }
        }
    }
    if let Some(m) = optimised.first() {
        if epochs > MAX_SWEEPS {
            return Err(Error::Optimizer {
                model: m.name.clone(),
                reason: format!(
                    "an optimised model steps in each of the {epochs} epochs: solve at most {MAX_SWEEPS} epochs"
                ),
            });
        }
    }
    let mut members: Vec<Member> = optimised.into_iter().chain(sampled).collect();
    if members.is_empty() {
        return Err(Error::NoBayesianModel);
    }
    let mut offset = 0;
    for m in &mut members {
        m.offset = offset;
        offset += m.len;
    }
    Ok(members)
}

/// [`resolve`], with `keep` cut to the draws `epochs` sweeps leave.
fn resolve_for(config: &Bayesian, name: &str, len: usize, epochs: usize) -> Result<Resolved> {
    let mut cfg = resolve(config, name, len)?;
    let sweeps_needed = cfg.warmup + cfg.keep * cfg.thin;
    if epochs < sweeps_needed {
        let avail = epochs.saturating_sub(cfg.warmup) / cfg.thin;
        if avail == 0 {
            return Err(Error::Bayesian {
                model: name.to_string(),
                reason: format!(
                    "{epochs} epochs leave no draw after warmup {} with thin {}: solve at least {} epochs (warmup + keep·thin = {sweeps_needed})",
                    cfg.warmup, cfg.thin, cfg.warmup + cfg.thin
                ),
            });
        }
        cfg.keep = cfg.keep.min(avail);
    }
    Ok(cfg)
}

/// One line per model: kernel, schedule, prior, diagnostics (or the
/// optimiser); and a warning when warmups differ.
fn log_configuration(members: &[Member], k: usize, log: &dyn Fn(String)) {
    let warmups: Vec<usize> = members
        .iter()
        .filter_map(|m| m.sampled().map(|r| r.warmup))
        .collect();
    if warmups.iter().any(|w| *w != warmups[0]) {
        log(format!(
            "models have different warmups {warmups:?}: each keeps draws after its own warmup while the others may still be adapting; give them one warmup for draws from the joint posterior throughout"
        ));
    }
    for m in members {
        let s = match &m.role {
            Role::Optimised(opt) => {
                log(format!(
                    "Model '{}': optimised with {opt:?} (a point estimate: one step per sweep on the loss gradient, before the sampled models)",
                    m.name
                ));
                continue;
            }
            Role::Sampled(s) => s,
        };
        let fields: Vec<&str> = s.kernel.diagnostics().iter().map(|f| f.name).collect();
        let diag = if fields.is_empty() {
            "none (kernel has no info record)".to_string()
        } else {
            fields.join(", ")
        };
        log(format!(
            "Model '{}': Bayesian sampling via '{}' (kind={}, warmup={}, keep={}, thin={}, adapt={}, chains={k}, prior={:?}, diagnostics={diag})",
            m.name,
            s.kernel.name(),
            match s.kernel.family() {
                Family::FullData => "full",
                Family::StochasticGradient => "grad_estimator",
            },
            s.warmup,
            s.keep,
            s.thin,
            s.adapt,
            s.prior,
        ));
    }
}

/// One conditional log-density per member over the whole θ (a sampled
/// member's prior and likelihood scale; `−loss` for an optimised one; the
/// others' blocks as inputs), lowered and fused into the chunk function.
/// An optimised member steps in all `epochs` sweeps.
fn chunk_function(problem: &Problem, members: &[Member], epochs: usize) -> Result<Chunk> {
    let dim = members.iter().map(|s| s.len).sum();
    let mut plans = Vec::new();
    for (i, s) in members.iter().enumerate() {
        let (scale, prior) = match &s.role {
            Role::Sampled(r) => (r.likelihood_scale, Some(r.prior.clone())),
            Role::Optimised(_) => (1.0, None),
        };
        let mut b = problem.log_density().likelihood_scale(scale);
        for (j, o) in members.iter().enumerate() {
            let prior = if i == j { prior.clone() } else { None };
            b = b.slot(&o.name, o.id, &o.leaves, prior);
        }
        let ld = b.build()?;
        let lowered = lower_log_density(ld.graph(), &format!("logp_{i}"))
            .map_err(|e| Error::Compile(CompileError::Lower(e)))?;
        let plan = match &s.role {
            Role::Sampled(r) => ModelPlan {
                name: s.name.clone(),
                kernel: r.kernel.clone(),
                target: lowered,
                offset: s.offset,
                len: s.len,
                warmup: r.warmup,
                keep: r.keep,
                thin: r.thin,
                adapt: r.adapt.then_some(Adaptation {
                    target_acceptance: r.target_acceptance,
                }),
            },
            Role::Optimised(opt) => ModelPlan {
                name: s.name.clone(),
                kernel: Arc::new(opt.clone()),
                target: lowered,
                offset: s.offset,
                len: s.len,
                warmup: epochs,
                keep: 0,
                thin: 1,
                adapt: None,
            },
        };
        plans.push(plan);
    }
    build_chunk(dim, &plans).map_err(|e| Error::Bayesian {
        model: members[0].name.clone(),
        reason: format!("the sampler kernel is invalid: {e}"),
    })
}
