//! Step 2 of a solve: every chain's buffers, with the models' current
//! values (plus the optional jitter) as the start, and the step size and
//! inverse mass each kernel starts from. Also the one place that maps the
//! leaves of sampled models to and from θ.

use crux_compiler::sampler::abi::ChainBuffers;
use crux_compiler::sampler::Chunk;
use crux_ir::rng::{init_counter, normal, stream, Purpose};

use super::plan::{Member, Plan};
use crate::error::Result;
use crate::model::Param;

/// Where each leaf of the sampled models lies in a chain's state buffer.
pub(crate) struct ThetaLayout<'a> {
    /// `(leaf, offset in the state buffer)`, models in solve order, leaves
    /// in leaf order.
    leaves: Vec<(&'a Param, usize)>,
}

impl<'a> ThetaLayout<'a> {
    /// The layout of `sampled` in `chunk`'s state buffer.
    pub fn new(chunk: &Chunk, members: &'a [Member]) -> ThetaLayout<'a> {
        let mut leaves = Vec::new();
        for s in members {
            let mut at = chunk.theta + s.offset;
            for p in &s.leaves {
                leaves.push((p, at));
                at += p.len();
            }
        }
        ThetaLayout { leaves }
    }

    /// Each leaf's entries in `state`, in layout order.
    pub fn unpack<'s>(&self, state: &'s [f64]) -> Vec<&'s [f64]> {
        self.leaves
            .iter()
            .map(|(p, at)| &state[*at..*at + p.len()])
            .collect()
    }

    /// Writes each leaf's current value into `state`.
    pub fn pack(&self, state: &mut [f64]) {
        for (p, at) in &self.leaves {
            for (j, v) in p.values().into_iter().enumerate() {
                state[at + j] = v;
            }
        }
    }

    /// Sets each leaf's value from `state`.
    pub fn write_back(&self, state: &[f64]) -> Result<()> {
        for ((p, _), v) in self.leaves.iter().zip(self.unpack(state)) {
            p.set_values(v)?;
        }
        Ok(())
    }
}

/// The buffers of the plan's chains: the start (the models' values, a
/// sampled model's jittered per chain with draws of the sampler `seed` when
/// asked), and each step's step size and inverse mass.
pub(crate) fn chains(plan: &Plan, seed: u64) -> Vec<ChainBuffers> {
    let chunk = &plan.chunk;
    let layout = ThetaLayout::new(chunk, &plan.members);
    (0..plan.k)
        .map(|c| {
            let mut state = vec![0.0; chunk.state.len];
            layout.pack(&mut state);
            for s in &plan.members {
                let Some(cfg) = s.sampled() else {
                    continue;
                };
                if cfg.init_jitter > 0.0 {
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
                state[slots.inverse_mass..slots.inverse_mass + s.len]
                    .copy_from_slice(&cfg.inverse_mass);
            }
            chunk.chain_buffers(state)
        })
        .collect()
}
