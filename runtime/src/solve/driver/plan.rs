//! Step 1 of a solve: the models that move (optimised ones first, then
//! sampled ones, each in problem order), validated, laid out in θ, and the
//! chunk function that advances every chain's sweep.

use crux_compiler::lower::lower_log_density;
use crux_compiler::pipeline::CompileError;
use std::sync::Arc;

use crux_compiler::sampler::{
    build_chunk, Adaptation, Chunk, Family, Metric, ModelPlan, ModelSlots,
};

use super::super::resolve::{resolve, resolve_vi, Resolved};
use crate::compile::problem::Problem;
use crate::error::{Error, Result, RunFailure};
use crux_ir::rng::MAX_SWEEPS;

use crate::solve::options::Substep;

use crate::model::{
    Bayesian, GroupRole, KernelChoice, MaskGroup, ModelId, ModelSettings, Optimizer, Param,
};

/// A validated solve: the models that move, the chunk function, the chains.
pub(crate) struct Plan {
    /// In θ order.
    pub members: Vec<Member>,
    pub chunk: Chunk,
    /// Chains.
    pub k: usize,
    /// For each of the chunk's models (a member's step, once per substep
    /// it takes part in), the member it moves.
    pub step_member: Vec<usize>,
    /// For each member, the chunk model whose slots hold its draws (its
    /// last step in the sweep).
    pub recorder: Vec<usize>,
    /// Each step's optimised log-density graph, by step name (what an
    /// ahead-of-time artifact stores as text).
    pub graphs: Vec<(String, crux_ir::graph::Graph)>,
}

/// One step of a sweep: a member, on the constraints of a substep (or
/// all), repeated.
struct Step {
    member: usize,
    /// The substep's constraints (`None`: every constraint).
    constraints: Option<Vec<usize>>,
    repeats: usize,
    /// Name in messages and slot names.
    name: String,
}

/// How a member moves.
pub(crate) enum Role {
    /// It is sampled (its validated `.bayesian(..)`).
    Sampled(Resolved),
    /// It takes one optimiser step per sweep on the loss gradient.
    Optimised(Optimizer),
}

/// A model, or a masked group of one, that moves in the solve: its role
/// and its block of θ.
pub(crate) struct Member {
    /// The model's name, or `model[leaves]` for a masked group.
    pub name: String,
    /// The model's name.
    pub model: String,
    pub id: ModelId,
    /// A kernel of crux's (not a user kernel).
    pub builtin: bool,
    /// The member's leaves, in leaf order.
    pub leaves: Vec<Param>,
    /// Per leaf, the entries the member moves (`None`: all); the others
    /// keep their value.
    pub masks: Vec<Option<Vec<bool>>>,
    /// Every leaf of the model, in leaf order.
    pub model_leaves: Vec<Param>,
    pub role: Role,
    /// For an optimised member of a sampled model: the `(warmup, keep,
    /// thin)` at which its values are recorded.
    pub record: Option<(usize, usize, usize)>,
    /// Offset of the model's block in θ.
    pub offset: usize,
    /// Entries of the block.
    pub len: usize,
}

impl Member {
    /// The sampling configuration, for a member sampled by MCMC.
    pub fn mcmc(&self) -> Option<&Resolved> {
        self.sampled().filter(|r| !r.is_vi())
    }
    /// The sampling configuration, for a sampled member (MCMC or VI).
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
        self.members.iter().enumerate().filter_map(|(i, m)| {
            m.sampled()
                .map(|r| (m, r, &self.chunk.models[self.recorder[i]]))
        })
    }
    /// Each member with the slots of its recording step.
    pub fn recorded(&self) -> impl Iterator<Item = (&Member, &ModelSlots)> {
        self.members
            .iter()
            .zip(&self.recorder)
            .map(|(m, &r)| (m, &self.chunk.models[r]))
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
    /// The error of a failure while the chunk function ran, naming the
    /// models sampled by user kernels (the only code that can index out of
    /// bounds), or every model when there are none.
    pub fn run_error(&self, cause: RunFailure) -> Error {
        Error::Run {
            program: "chunk function",
            models: self.suspects(),
            cause,
        }
    }

    fn suspects(&self) -> Vec<String> {
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
pub(crate) fn plan(
    problem: &Problem,
    epochs: usize,
    substeps: Option<&[Substep]>,
    log: &dyn Fn(String),
) -> Result<Plan> {
    let members = members(problem, epochs)?;
    let chains: Vec<(String, usize)> = members
        .iter()
        .filter_map(|m| m.mcmc().map(|r| (m.name.clone(), r.num_chains)))
        .collect();
    let k = chains.first().map_or(1, |c| c.1);
    if chains.iter().any(|c| c.1 != k) {
        return Err(Error::MismatchedChains { chains });
    }
    log_configuration(&members, k, log);
    let steps = steps(problem, &members, substeps)?;
    let mut recorder = vec![0; members.len()];
    for (j, st) in steps.iter().enumerate() {
        recorder[st.member] = j;
    }
    let (chunk, graphs) = chunk_function(problem, &members, &steps, &recorder, epochs)?;
    Ok(Plan {
        step_member: steps.iter().map(|s| s.member).collect(),
        members,
        chunk,
        k,
        recorder,
        graphs,
    })
}

/// The steps of a sweep: each member once on every constraint, or, with
/// substeps, each member in every substep whose constraints use its leaves.
fn steps(problem: &Problem, members: &[Member], substeps: Option<&[Substep]>) -> Result<Vec<Step>> {
    let Some(substeps) = substeps else {
        return Ok(members
            .iter()
            .enumerate()
            .map(|(i, m)| Step {
                member: i,
                constraints: None,
                repeats: 1,
                name: m.name.clone(),
            })
            .collect());
    };
    let bad = |reason: String| Error::InvalidArgument {
        what: "substeps".into(),
        reason,
    };
    if substeps.is_empty() {
        return Err(bad("no substep: give at least one, or none at all".into()));
    }
    for m in members {
        if m.sampled().is_some_and(|r| r.adapt) {
            return Err(Error::Bayesian {
                model: m.name.clone(),
                reason: "combining substeps with window adaptation is not supported (it would tune against one substep's log-density): set .adapt(false) and pick the step size, or use warmup 0".into(),
            });
        }
    }
    let mut steps = Vec::new();
    for (si, sub) in substeps.iter().enumerate() {
        problem.check_constraints(&sub.constraints)?;
        if sub.steps == 0 {
            return Err(bad(format!("substep {si} has 0 steps: give at least 1")));
        }
        let used = problem.leaves_of(&sub.constraints);
        for (i, m) in members.iter().enumerate() {
            let chosen = sub.models.is_empty() || sub.models.contains(&m.id);
            if chosen && m.leaves.iter().any(|p| used.contains(&p.leaf_id())) {
                steps.push(Step {
                    member: i,
                    constraints: Some(sub.constraints.clone()),
                    repeats: sub.steps,
                    name: format!("{}@substep{si}", m.name),
                });
            }
        }
    }
    if let Some(m) = members
        .iter()
        .enumerate()
        .find(|(i, _)| !steps.iter().any(|s| s.member == *i))
    {
        return Err(Error::Bayesian {
            model: m.1.name.clone(),
            reason: "appears in no substep's constraints, so it would never move: add a substep over a constraint that uses it, or remove its configuration".into(),
        });
    }
    Ok(steps)
}

/// The models that move (whole, or by masked groups), optimised ones
/// first, each resolved and given its block of θ; a sampled model's `keep`
/// cut to what `epochs` leaves.
fn members(problem: &Problem, epochs: usize) -> Result<Vec<Member>> {
    let (mut optimised, mut sampled) = (Vec::new(), Vec::new());
    for m in problem.models() {
        let mut leaves = m.leaves.clone();
        leaves.sort_by_key(Param::leaf_id);
        let settings = m.settings();
        let groups = model_groups(&m.name, &leaves, &settings)?;
        let masked = !settings.groups.is_empty();
        let mut model_sampled = Vec::new();
        let mut model_optimised = Vec::new();
        for (group, masks, role) in groups {
            let len: usize = group.iter().map(Param::len).sum();
            let name = if masked {
                group_label(&m.name, &group)
            } else {
                m.name.clone()
            };
            let member = |role, builtin| Member {
                name: name.clone(),
                model: m.name.clone(),
                id: m.id,
                builtin,
                leaves: group.clone(),
                masks: masks.clone(),
                model_leaves: leaves.clone(),
                role,
                record: None,
                offset: 0,
                len,
            };
            match role {
                GroupRole::Optimizer(opt) => {
                    model_optimised.push(member(Role::Optimised(opt), true));
                }
                GroupRole::Vi(config) => {
                    let cfg = resolve_vi(&config, &name, len, epochs)?;
                    model_sampled.push(member(Role::Sampled(cfg), true));
                }
                GroupRole::Bayesian(config) => {
                    let cfg = resolve_for(&config, &name, len, epochs)?;
                    let builtin = !matches!(config.kernel(), KernelChoice::Custom(_));
                    model_sampled.push(member(Role::Sampled(cfg), builtin));
                }
            }
        }
        check_one_schedule(&m.name, &model_sampled)?;
        // Optimised leaves of a model that is also sampled are recorded
        // with the sampled groups' schedule: its posterior holds every leaf.
        // (A VI-only model's optimised leaves are a point estimate: their
        // final value at every draw.)
        if let Some(r) = model_sampled.iter().find_map(Member::mcmc) {
            let schedule = (r.warmup, r.keep, r.thin);
            model_optimised
                .iter_mut()
                .for_each(|o| o.record = Some(schedule));
        }
        optimised.extend(model_optimised);
        sampled.extend(model_sampled);
    }
    if let Some(m) = optimised.iter().find(|m| m.record.is_none()) {
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

/// Leaves that move together, their entry masks, and how they move.
type Group = (Vec<Param>, Vec<Option<Vec<bool>>>, GroupRole);

/// A model's groups of leaves that move, with their roles: the whole model
/// (global `.bayesian` or `.optimizer`), or its masked groups plus, with a
/// global `.optimizer`, the leaves no group holds (pattern B). Leaves in no
/// group stay at their values (pattern A).
fn model_groups(model: &str, leaves: &[Param], settings: &ModelSettings) -> Result<Vec<Group>> {
    let whole = vec![None; leaves.len()];
    if settings.groups.is_empty() {
        return Ok(
            match (&settings.bayesian, &settings.vi, &settings.optimizer) {
                (Some(b), _, _) => vec![(leaves.to_vec(), whole, GroupRole::Bayesian(b.clone()))],
                (None, Some(v), _) => vec![(leaves.to_vec(), whole, GroupRole::Vi(v.clone()))],
                (None, None, Some(o)) => {
                    vec![(leaves.to_vec(), whole, GroupRole::Optimizer(o.clone()))]
                }
                (None, None, None) => Vec::new(),
            },
        );
    }
    if settings.bayesian.is_some() || settings.vi.is_some() {
        return Err(Error::Mask {
            model: model.to_string(),
            reason:
                "has a global .bayesian(..) or .vi(..) and masked groups: configure every group with .mask(..)"
                    .into(),
        });
    }
    // A group's leaves in the model's leaf order, with their entry masks.
    let pick = |g: &MaskGroup| -> (Vec<Param>, Vec<Option<Vec<bool>>>) {
        leaves
            .iter()
            .filter_map(|p| {
                let at = g.leaves.iter().position(|n| n == p.name())?;
                Some((p.clone(), g.entries.get(at).cloned().flatten()))
            })
            .unzip()
    };
    let mut out: Vec<Group> = settings
        .groups
        .iter()
        .map(|g| {
            let (ls, ms) = pick(g);
            (ls, ms, g.role.clone())
        })
        .collect();
    if let Some(opt) = &settings.optimizer {
        let rest: Vec<Param> = leaves
            .iter()
            .filter(|p| {
                !settings
                    .groups
                    .iter()
                    .any(|g| g.leaves.iter().any(|n| n == p.name()))
            })
            .cloned()
            .collect();
        if !rest.is_empty() {
            let n = rest.len();
            out.insert(0, (rest, vec![None; n], GroupRole::Optimizer(opt.clone())));
        }
    }
    Ok(out)
}

/// `net[layers.3.weight, layers.3.bias]`: a group's name in messages.
fn group_label(model: &str, group: &[Param]) -> String {
    let names: Vec<&str> = group
        .iter()
        .map(|p| {
            p.name()
                .strip_prefix(model)
                .map_or(p.name(), |s| s.trim_start_matches('.'))
        })
        .collect();
    format!("{model}[{}]", names.join(", "))
}

/// The sampled groups of one model share a schedule, so that its
/// posterior is one `(K, N, ...)` tree: the MCMC groups one `(warmup,
/// keep, thin, chains)`, and VI groups (pattern E) as many
/// `posterior_draws` as the MCMC groups keep (or, VI only, one count).
fn check_one_schedule(model: &str, sampled: &[Member]) -> Result<()> {
    let with_vi = sampled
        .iter()
        .any(|m| m.sampled().is_some_and(Resolved::is_vi));
    let draws: Vec<(String, usize)> = sampled
        .iter()
        .filter_map(|m| {
            let r = m.sampled()?;
            Some((m.name.clone(), r.vi_draws.unwrap_or(r.keep)))
        })
        .collect();
    if let Some((other, n)) = draws.iter().find(|(_, n)| with_vi && *n != draws[0].1) {
        return Err(Error::Mask {
            model: model.to_string(),
            reason: format!(
                "the groups `{}` and `{other}` give {} and {n} draws: one model's draws form one tree, so a .vi(..) group's posterior_draws must equal the MCMC groups' keep (after the epochs' cut) and the VI groups' posterior_draws must agree",
                draws[0].0, draws[0].1
            ),
        });
    }
    let schedules: Vec<(String, (usize, usize, usize, usize))> = sampled
        .iter()
        .filter_map(|m| {
            m.mcmc()
                .map(|r| (m.name.clone(), (r.warmup, r.keep, r.thin, r.num_chains)))
        })
        .collect();
    if let Some((other, _)) = schedules.iter().find(|(_, s)| *s != schedules[0].1) {
        return Err(Error::Mask {
            model: model.to_string(),
            reason: format!(
                "the sampled groups `{}` and `{other}` have different schedules (warmup, keep, thin, chains) {:?} and {:?}: one model's draws form one tree, give its groups one schedule",
                schedules[0].0,
                schedules[0].1,
                schedules.iter().find(|(n, _)| n == other).map(|s| s.1).unwrap_or_default()
            ),
        });
    }
    Ok(())
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
        .filter_map(|m| m.mcmc().map(|r| r.warmup))
        .collect();
    if warmups.iter().any(|w| *w != warmups[0]) {
        log(format!(
            "models have different warmups {warmups:?}: each keeps draws after its own warmup while the others may still be adapting; give them one warmup for draws from the joint posterior throughout"
        ));
    }
    let trains_and_samples = |id| {
        members.iter().any(|o| o.id == id && o.sampled().is_some())
            && members.iter().any(|o| o.id == id && o.sampled().is_none())
    };
    if let Some(m) = members.iter().find(|m| k > 1 && trains_and_samples(m.id)) {
        log(format!(
            "model '{}' is trained and sampled (pattern B) with num_chains={k}: each chain trains its own copy of the optimised leaves (K independent head+body solves, not one body following chain 0)",
            m.model
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
            Role::Sampled(s) if s.is_vi() => {
                log(format!(
                    "Model '{}': mean-field VI via '{}' ({} ELBO steps, likelihood_scale={}, prior={:?}, {} posterior draws per chain; ELBO recorded per step)",
                    m.name,
                    s.kernel.name(),
                    s.keep,
                    s.likelihood_scale,
                    s.prior,
                    s.vi_draws.unwrap_or(0),
                ));
                continue;
            }
            Role::Sampled(s) => s,
        };
        let batch = s.batch_size.map_or(String::new(), |n| {
            format!(", batch_size={n} (points per constraint and step, in expectation)")
        });
        let fields: Vec<&str> = s.kernel.diagnostics().iter().map(|f| f.name).collect();
        let diag = if fields.is_empty() {
            "none (kernel has no info record)".to_string()
        } else {
            fields.join(", ")
        };
        log(format!(
            "Model '{}': Bayesian sampling via '{}' (kind={}, warmup={}, keep={}, thin={}, adapt={}, chains={k}, prior={:?}{batch}, diagnostics={diag})",
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

/// One conditional log-density per step over the whole θ (a sampled
/// member's prior, likelihood scale and minibatch weights; `−loss` for an
/// optimised one; on the step's constraints; the others' blocks as
/// inputs), lowered and fused into the chunk function. An optimised member
/// steps in all `epochs` sweeps; a member's draws are kept by its last step.
fn chunk_function(
    problem: &Problem,
    members: &[Member],
    steps: &[Step],
    recorder: &[usize],
    epochs: usize,
) -> Result<(Chunk, Vec<(String, crux_ir::graph::Graph)>)> {
    let dim = members.iter().map(|s| s.len).sum();
    let mut plans = Vec::new();
    let mut graphs = Vec::new();
    for (j, st) in steps.iter().enumerate() {
        let (i, s) = (st.member, &members[st.member]);
        let (scale, prior, batch) = match &s.role {
            Role::Sampled(r) => (r.likelihood_scale, Some(r.prior.clone()), r.batch_size),
            Role::Optimised(_) => (1.0, None, None),
        };
        let mut b = problem.log_density().likelihood_scale(scale);
        if let Some(n) = batch {
            b = b.batch_size(n);
        }
        if let Some(c) = &st.constraints {
            b = b.constraints(c.iter().copied());
        }
        for (o_i, o) in members.iter().enumerate() {
            let prior = if i == o_i { prior.clone() } else { None };
            b = b.slot(&o.name, o.id, &o.leaves, &o.masks, prior);
        }
        let ld = b.build()?;
        graphs.push((st.name.clone(), ld.graph().clone()));
        let lowered = lower_log_density(ld.graph(), &format!("logp_{j}"))
            .map_err(|e| Error::Compile(CompileError::Lower(e)))?;
        let records = recorder[i] == j;
        let plan = match &s.role {
            Role::Sampled(r) => ModelPlan {
                name: st.name.clone(),
                kernel: r.kernel.clone(),
                target: lowered,
                offset: s.offset,
                len: s.len,
                warmup: r.warmup,
                keep: if records { r.keep } else { 0 },
                thin: r.thin,
                adapt: r.adapt.then_some(Adaptation {
                    target_acceptance: r.target_acceptance,
                }),
                metric: r.metric,
                minibatch: ld.minibatch().filter(|mb| !mb.is_empty()).cloned(),
                repeats: st.repeats,
            },
            Role::Optimised(opt) => {
                let (warmup, keep, thin) = s.record.unwrap_or((epochs, 0, 1));
                ModelPlan {
                    name: st.name.clone(),
                    kernel: Arc::new(opt.clone()),
                    target: lowered,
                    offset: s.offset,
                    len: s.len,
                    warmup,
                    keep: if records { keep } else { 0 },
                    thin,
                    adapt: None,
                    metric: Metric::Diagonal,
                    minibatch: None,
                    repeats: st.repeats,
                }
            }
        };
        plans.push(plan);
    }
    let chunk = build_chunk(dim, &plans).map_err(|e| Error::Bayesian {
        model: members[0].name.clone(),
        reason: format!("the sampler kernel is invalid: {e}"),
    })?;
    Ok((chunk, graphs))
}
