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
    /// (borrowed from `state` unless the leaf is entry-masked).
    pub fn unpack<'s>(&self, state: &'s [f64]) -> Vec<std::borrow::Cow<'s, [f64]>> {
        self.leaves
            .iter()
            .map(|(p, at, mask)| {
                let theta = &state[*at..*at + p.len()];
                match mask {
                    None => std::borrow::Cow::Borrowed(theta),
                    Some(m) => std::borrow::Cow::Owned(merge(theta, &p.values(), m)),
                }
            })
            .collect()
    }

    /// Writes each leaf's current value into `state`.
    pub fn pack(&self, state: &mut [f64]) {
        for (p, at, _) in &self.leaves {
            for (j, v) in p.values().into_iter().enumerate() {
                state[at + j] = v;
            }
        }
    }

    /// Sets each leaf's value from `state`.
    pub fn write_back(&self, state: &[f64]) -> Result<()> {
        for ((p, _, _), v) in self.leaves.iter().zip(self.unpack(state)) {
            p.set_values(&v)?;
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

/// The buffers of the plan's chains: the start (the models' values, a
/// sampled model's jittered per chain with draws of the sampler `seed` when
/// asked, or its initializer's start), and each step's step size and
/// inverse mass (the initializer's when it gives one).
pub(crate) fn chains(plan: &Plan, seed: u64, starts: &[Option<Start>]) -> Vec<ChainBuffers> {
    let chunk = &plan.chunk;
    let layout = ThetaLayout::new(chunk, &plan.members);
    (0..plan.k)
        .map(|c| {
            let mut state = vec![0.0; chunk.state.len];
            layout.pack(&mut state);
            for (s, start) in plan.members.iter().zip(starts) {
                let Some(cfg) = s.sampled() else {
                    continue;
                };
                if let Some(start) = start {
                    let block = chunk.theta + s.offset;
                    state[block..block + s.len].copy_from_slice(&start.positions[c]);
                } else if cfg.init_jitter > 0.0 {
                    let block = chunk.theta + s.offset;
                    let st = stream(Purpose::Sampler, c as u64);
                    for j in 0..s.len {
                        let z = normal(seed, st, init_counter((s.offset + j) as u64));
                        state[block + j] += cfg.init_jitter * z;
                    }
                }
            }
            for (slots, &m) in chunk.models.iter().zip(&plan.step_member) {
                let s = &plan.members[m];
                let Some(cfg) = s.sampled() else {
                    continue;
                };
                state[slots.step_size] = cfg.step_size;
                let imm = starts[m].as_ref().and_then(|s| s.inverse_mass.as_ref());
                write_metric(&mut state, slots, imm.unwrap_or(&cfg.inverse_mass));
            }
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
