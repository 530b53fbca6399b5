//! Step 2 of a solve: every chain's buffers, with the models' current
//! values (plus the optional jitter) as the start, and the step size and
//! inverse mass each kernel starts from. Also the one place that maps the
//! leaves of sampled models to and from θ.

use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::{Chunk, Metric, ModelSlots};
use crux_ir::rng::{init_counter, normal, stream, Purpose};

use super::plan::{Member, Plan};
use crate::error::Result;
use crate::model::Param;
use crate::solve::initializers::Start;

/// Where each leaf of the moving models lies in a chain's state buffer,
/// and which of its entries the model sees from there (an entry-masked
/// leaf's other entries keep their value).
pub(crate) struct ThetaLayout<'a> {
    /// `(leaf, offset in the state buffer, entry mask)`, members in θ
    /// order, leaves in leaf order.
    leaves: Vec<(&'a Param, usize, Option<&'a [bool]>)>,
}

impl<'a> ThetaLayout<'a> {
    /// The layout of `members` in `chunk`'s state buffer.
    pub fn new(chunk: &Chunk, members: &'a [Member]) -> ThetaLayout<'a> {
        let mut leaves = Vec::new();
        for s in members {
            let mut at = chunk.theta + s.offset;
            for (i, p) in s.leaves.iter().enumerate() {
                let mask = s.masks.get(i).and_then(|m| m.as_deref());
                leaves.push((p, at, mask));
                at += p.len();
            }
        }
        ThetaLayout { leaves }
    }

    /// Each leaf's value as the model sees it at `state`, in layout order
    /// (borrowed from `state` unless the leaf is entry-masked or
    /// constrained: `T(u)`).
    pub fn unpack<'s>(&self, state: &'s [f64]) -> Vec<std::borrow::Cow<'s, [f64]>> {
        self.leaves
            .iter()
            .map(|(p, at, mask)| {
                let theta = &state[*at..*at + p.len()];
                let t = p.transform();
                match mask {
                    None if t.is_identity() => std::borrow::Cow::Borrowed(theta),
                    None => std::borrow::Cow::Owned(t.forward(theta)),
                    Some(m) => std::borrow::Cow::Owned(merge(theta, &p.values(), m)),
                }
            })
            .collect()
    }

    /// Writes each leaf's current value into `state` (unconstrained).
    pub fn pack(&self, state: &mut [f64]) {
        for (p, at, _) in &self.leaves {
            let u = crate::compile::logdensity::unconstrained_values(p);
            state[*at..*at + u.len()].copy_from_slice(&u);
        }
    }

    /// Sets each leaf's value from `state`.
    pub fn write_back(&self, state: &[f64]) -> Result<()> {
        for ((p, _, _), v) in self.leaves.iter().zip(self.unpack(state)) {
            let mut v = v.into_owned();
            p.transform().nudge_inside(&mut v);
            p.store(&v)?;
        }
        Ok(())
    }
}

/// `θ` where `mask` is true, `value` elsewhere.
pub(crate) fn merge(theta: &[f64], value: &[f64], mask: &[bool]) -> Vec<f64> {
    theta
        .iter()
        .zip(value)
        .zip(mask)
        .map(|((t, v), &m)| if m { *t } else { *v })
        .collect()
}

/// A sampled member's block of the state, perturbed per chain by
/// `sigma · z` with the chain's sampler draws at the start counters
/// `counter + j` (`init_jitter`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Jitter {
    /// Offset of the block in the state buffer.
    pub at: usize,
    /// Its entries.
    pub len: usize,
    /// The standard deviation.
    pub sigma: f64,
    /// The first draw's start counter (the block's offset in θ).
    pub counter: usize,
}

impl Jitter {
    /// Perturbs chain `chain`'s `state` with draws of the sampler `seed`.
    pub fn apply(&self, state: &mut [f64], seed: u64, chain: usize) {
        let st = stream(Purpose::Sampler, chain as u64);
        for j in 0..self.len {
            let z = normal(seed, st, init_counter((self.counter + j) as u64));
            state[self.at + j] += self.sigma * z;
        }
    }
}

/// The jittered blocks of the plan's sampled members (those without an
/// initializer's start).
pub(crate) fn jitters(plan: &Plan, starts: &[Option<Start>]) -> Vec<Jitter> {
    plan.members
        .iter()
        .zip(starts)
        .filter_map(|(s, start)| {
            let cfg = s.sampled()?;
            (start.is_none() && cfg.init_jitter > 0.0).then_some(Jitter {
                at: plan.chunk.theta + s.offset,
                len: s.len,
                sigma: cfg.init_jitter,
                counter: s.offset,
            })
        })
        .collect()
}

/// Every chain's state before its own start: the models' values, each
/// step's step size and inverse mass (an initializer's when it gave one).
pub(crate) fn base_state(plan: &Plan, starts: &[Option<Start>]) -> Vec<f64> {
    let chunk = &plan.chunk;
    let mut state = vec![0.0; chunk.state.len];
    ThetaLayout::new(chunk, &plan.members).pack(&mut state);
    for (slots, &m) in chunk.models.iter().zip(&plan.step_member) {
        let s = &plan.members[m];
        let Some(cfg) = s.sampled() else {
            continue;
        };
        state[slots.step_size] = cfg.step_size;
        let imm = starts[m].as_ref().and_then(|s| s.inverse_mass.as_ref());
        write_metric(&mut state, slots, imm.unwrap_or(&cfg.inverse_mass));
    }
    state
}

/// The buffers of the plan's chains: the [`base_state`] with each sampled
/// member's start (its initializer's for this chain, or the models' values
/// jittered with draws of the sampler `seed` when asked).
pub(crate) fn chains(plan: &Plan, seed: u64, starts: &[Option<Start>]) -> Vec<ChainBuffers> {
    let chunk = &plan.chunk;
    let base = base_state(plan, starts);
    let jitters = jitters(plan, starts);
    (0..plan.k)
        .map(|c| {
            let mut state = base.clone();
            for (s, start) in plan.members.iter().zip(starts) {
                if let Some(start) = start {
                    let block = chunk.theta + s.offset;
                    state[block..block + s.len].copy_from_slice(&start.positions[c]);
                }
            }
            jitters.iter().for_each(|j| j.apply(&mut state, seed, c));
            chunk.chain_buffers(state)
        })
        .collect()
}

/// The starting metric: the diagonal `s` as is, (dense) `Σ = diag(s)`
/// with its inverse Cholesky factor `X = diag(1/√s)`, row-major, or (low
/// rank) `D = s` with every eigenvalue 1 (no correction yet: `U` zero).
fn write_metric(state: &mut [f64], slots: &ModelSlots, s: &[f64]) {
    let d = s.len();
    match slots.metric {
        Metric::Diagonal => state[slots.inverse_mass..][..d].copy_from_slice(s),
        Metric::LowRank { rank } => {
            let at = slots.inverse_mass;
            state[at..][..d].copy_from_slice(s);
            state[at + d..][..rank].fill(1.0);
            state[at + d + rank..][..rank * d].fill(0.0);
        }
        Metric::Dense => {
            let (sigma, factor) = (slots.inverse_mass, slots.mass_factor);
            for i in 0..d {
                for j in 0..d {
                    let on = i == j;
                    state[sigma + i * d + j] = if on { s[i] } else { 0.0 };
                    state[factor + i * d + j] = if on { 1.0 / s[i].sqrt() } else { 0.0 };
                }
            }
        }
    }
}
