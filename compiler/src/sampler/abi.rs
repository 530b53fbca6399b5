//! The chunk function's ABI, defined once: its scalar arguments, its
//! buffers and what each holds, the host-side buffers of one chain, and the
//! names of the diagnostics the built-in kernels record.
//!
//! ```text
//! chunk(seed: i64, chain: i64, lo: i64, hi: i64)
//!     buffers: state, work, draws, diag, data... (all f64)
//! ```

use crux_ir::kernel::{Access, Buffer, BufferId, Scalar};

use super::DiagKind;

pub use crate::pipeline::LOGP_OUTPUT;

/// Names of the chunk function's scalar parameters, in order: the seed,
/// the chain index (its random stream), and the sweeps `lo..hi` to run.
pub const CHUNK_PARAMS: [&str; 4] = ["seed", "chain", "lo", "hi"];

/// The arguments of one call of the chunk function: chain `chain` under
/// `seed` runs sweeps `lo..hi` (in [`CHUNK_PARAMS`] order).
pub fn chunk_args(seed: u64, chain: usize, (lo, hi): (usize, usize)) -> [Scalar; 4] {
    [
        Scalar::I64(seed as i64),
        Scalar::I64(chain as i64),
        Scalar::I64(lo as i64),
        Scalar::I64(hi as i64),
    ]
}

/// The chunk function's own buffers, in buffer order; the data buffers of
/// the inlined log-densities follow them (from [`ChunkBuffer::COUNT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkBuffer {
    /// Each chain's persistent state: the position θ, and per model its
    /// log-density and gradient, step size, inverse mass matrix, adaptation
    /// state and gradient-evaluation count (slots in [`super::Chunk::state`]).
    State,
    /// Step-local temporaries (momenta, proposals, tree ends, the
    /// log-density's scratch); contents undefined between calls.
    Work,
    /// Kept draws: per model, `keep × len` entries from
    /// [`super::ModelSlots::draws`].
    Draws,
    /// Per-draw diagnostics: per model, `keep × fields` entries from
    /// [`super::ModelSlots::diag`].
    Diag,
}

impl ChunkBuffer {
    /// Every chunk buffer, in buffer order.
    pub const ALL: [ChunkBuffer; 4] = [
        ChunkBuffer::State,
        ChunkBuffer::Work,
        ChunkBuffer::Draws,
        ChunkBuffer::Diag,
    ];
    /// The number of chunk buffers: the index of the first data buffer.
    pub const COUNT: usize = ChunkBuffer::ALL.len();

    /// The buffer's index among the chunk function's buffers.
    pub const fn index(self) -> usize {
        match self {
            ChunkBuffer::State => 0,
            ChunkBuffer::Work => 1,
            ChunkBuffer::Draws => 2,
            ChunkBuffer::Diag => 3,
        }
    }
    /// The buffer's id in the chunk function.
    pub const fn id(self) -> BufferId {
        BufferId(self.index() as u32)
    }
    /// The buffer's name in the chunk function.
    pub const fn name(self) -> &'static str {
        match self {
            ChunkBuffer::State => "state",
            ChunkBuffer::Work => "work",
            ChunkBuffer::Draws => "draws",
            ChunkBuffer::Diag => "diag",
        }
    }
    /// How the chunk function accesses it.
    pub const fn access(self) -> Access {
        match self {
            ChunkBuffer::State | ChunkBuffer::Work => Access::ReadWrite,
            ChunkBuffer::Draws | ChunkBuffer::Diag => Access::Write,
        }
    }
}

/// The buffers of one chain for calls of the chunk function (built by
/// [`super::Chunk::chain_buffers`]): the [`ChunkBuffer`]s, then the data.
/// Every buffer is f64.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainBuffers(Vec<Buffer>);

/// Why the accessors cannot fail.
const F64_INVARIANT: &str = "chain buffers are all f64: Chunk::chain_buffers builds them so and \
    executors write values, never retype buffers";

impl ChainBuffers {
    /// Wraps buffers laid out as [`super::Chunk::chain_buffers`] lays them
    /// out (at least [`ChunkBuffer::COUNT`] buffers, all f64).
    pub(crate) fn new(buffers: Vec<Buffer>) -> ChainBuffers {
        debug_assert!(buffers.len() >= ChunkBuffer::COUNT);
        debug_assert!(buffers.iter().all(|b| b.as_f64().is_some()));
        ChainBuffers(buffers)
    }
    /// A chain's buffers from their parts: the state, zeroed work, draws
    /// and diagnostics of the given lengths, and copies of the data (what
    /// [`super::Chunk::chain_buffers`] builds, for callers holding the
    /// layout without the [`super::Chunk`], such as a loaded artifact).
    pub fn from_parts(
        state: Vec<f64>,
        (work, draws, diag): (usize, usize, usize),
        data: &[Vec<f64>],
    ) -> ChainBuffers {
        let mut bufs = vec![
            Buffer::F64(state),
            Buffer::F64(vec![0.0; work]),
            Buffer::F64(vec![0.0; draws]),
            Buffer::F64(vec![0.0; diag]),
        ];
        bufs.extend(data.iter().map(|d| Buffer::F64(d.clone())));
        ChainBuffers(bufs)
    }
    /// The entries of chunk buffer `which`.
    pub fn get(&self, which: ChunkBuffer) -> &[f64] {
        self.0[which.index()].as_f64().expect(F64_INVARIANT)
    }
    /// The entries of chunk buffer `which`, mutably.
    pub fn get_mut(&mut self, which: ChunkBuffer) -> &mut [f64] {
        self.0[which.index()].as_f64_mut().expect(F64_INVARIANT)
    }
    /// The chain's state (slots of [`super::Chunk::state`]).
    pub fn state(&self) -> &[f64] {
        self.get(ChunkBuffer::State)
    }
    /// The chain's state, mutably (to set the initial position).
    pub fn state_mut(&mut self) -> &mut [f64] {
        self.get_mut(ChunkBuffer::State)
    }
    /// The kept draws.
    pub fn draws(&self) -> &[f64] {
        self.get(ChunkBuffer::Draws)
    }
    /// The per-draw diagnostics.
    pub fn diag(&self) -> &[f64] {
        self.get(ChunkBuffer::Diag)
    }
    /// Every buffer, in buffer order (for executors).
    pub fn as_slice(&self) -> &[Buffer] {
        &self.0
    }
    /// Every buffer, mutably (for executors: they must keep each buffer's
    /// type and length).
    pub fn as_mut_slice(&mut self) -> &mut [Buffer] {
        &mut self.0
    }
    /// The buffers.
    pub fn into_buffers(self) -> Vec<Buffer> {
        self.0
    }
}

/// A diagnostic field a built-in kernel records per kept draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagName {
    /// Whether the transition diverged: HMC and NUTS, an energy error past
    /// the threshold or a non-finite log-density; SGLD and SGHMC, a
    /// non-finite gradient or position, or one beyond
    /// [`SG_POSITION_BOUND`](crate::sampler::kernels::SG_POSITION_BOUND).
    IsDivergent,
    /// The mean Metropolis acceptance probability of the transition (HMC,
    /// NUTS, MALA).
    AcceptanceRate,
    /// The Hamiltonian at the new state (HMC, NUTS).
    Energy,
    /// Trajectory doublings of the transition (NUTS).
    TreeDepth,
    /// Leapfrog steps of the transition (NUTS).
    NumIntegrationSteps,
}

impl DiagName {
    /// Every field, in the order NUTS records them.
    pub const ALL: [DiagName; 5] = [
        DiagName::IsDivergent,
        DiagName::AcceptanceRate,
        DiagName::Energy,
        DiagName::TreeDepth,
        DiagName::NumIntegrationSteps,
    ];

    /// crux's name (the key of `Posterior` diagnostics).
    pub const fn name(self) -> &'static str {
        match self {
            DiagName::IsDivergent => "is_divergent",
            DiagName::AcceptanceRate => "acceptance_rate",
            DiagName::Energy => "energy",
            DiagName::TreeDepth => "tree_depth",
            DiagName::NumIntegrationSteps => "num_integration_steps",
        }
    }
    /// arviz's name (`sample_stats/<name>` in exports).
    pub const fn arviz_name(self) -> &'static str {
        match self {
            DiagName::IsDivergent => "diverging",
            DiagName::NumIntegrationSteps => "n_steps",
            other => other.name(),
        }
    }
    /// How the field is stored.
    pub const fn kind(self) -> DiagKind {
        match self {
            DiagName::IsDivergent => DiagKind::Bool,
            DiagName::AcceptanceRate | DiagName::Energy => DiagKind::Float,
            DiagName::TreeDepth | DiagName::NumIntegrationSteps => DiagKind::Int,
        }
    }
    /// The field with crux's name `name` (see [`DiagName::name`]).
    pub fn from_name(name: &str) -> Option<DiagName> {
        DiagName::ALL.into_iter().find(|d| d.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::ctx::{DIAG, DRAWS, FIRST_DATA, STATE, WORK};

    /// Buffer ids, names and the old constants agree.
    #[test]
    fn chunk_buffers() {
        assert_eq!(
            [STATE, WORK, DRAWS, DIAG],
            ChunkBuffer::ALL.map(ChunkBuffer::id)
        );
        assert_eq!(FIRST_DATA as usize, ChunkBuffer::COUNT);
        assert_eq!(
            ChunkBuffer::ALL.map(ChunkBuffer::name),
            ["state", "work", "draws", "diag"]
        );
        for (i, b) in ChunkBuffer::ALL.into_iter().enumerate() {
            assert_eq!(b.index(), i);
        }
        assert_eq!(
            chunk_args(7, 2, (3, 9)),
            [
                Scalar::I64(7),
                Scalar::I64(2),
                Scalar::I64(3),
                Scalar::I64(9)
            ]
        );
    }

    /// The names exports and posteriors rely on.
    #[test]
    fn diag_names() {
        let rows: Vec<_> = DiagName::ALL
            .iter()
            .map(|d| (d.name(), d.arviz_name(), d.kind()))
            .collect();
        assert_eq!(
            rows,
            [
                ("is_divergent", "diverging", DiagKind::Bool),
                ("acceptance_rate", "acceptance_rate", DiagKind::Float),
                ("energy", "energy", DiagKind::Float),
                ("tree_depth", "tree_depth", DiagKind::Int),
                ("num_integration_steps", "n_steps", DiagKind::Int),
            ]
        );
        for d in DiagName::ALL {
            assert_eq!(DiagName::from_name(d.name()), Some(d));
        }
        assert_eq!(DiagName::from_name("diverging"), None);
    }

    /// Typed access to a chain's buffers.
    #[test]
    fn chain_buffers() {
        let chunk = crate::sampler::build_chunk(
            1,
            &[crate::sampler::tests::plan(
                std::sync::Arc::new(crate::sampler::kernels::Hmc {
                    num_integration_steps: 3,
                }),
                crate::sampler::gaussian_target(&[0.0], &[1.0]),
                2,
                3,
                false,
            )],
        )
        .expect("a one-model HMC chunk builds");
        let mut state = vec![0.0; chunk.state.len];
        state[chunk.theta] = 0.5;
        let mut bufs = chunk.chain_buffers(state.clone());
        assert_eq!(bufs.state(), &state[..]);
        assert_eq!(bufs.draws().len(), chunk.draws_len);
        assert_eq!(bufs.diag().len(), chunk.diag_len);
        bufs.state_mut()[chunk.theta] = 1.5;
        assert_eq!(bufs.get(ChunkBuffer::State)[chunk.theta], 1.5);
        assert_eq!(bufs.as_slice().len(), ChunkBuffer::COUNT + chunk.data.len());
        assert_eq!(bufs.as_mut_slice().len(), bufs.as_slice().len());
        let mut old = chunk.buffers(state);
        old[0] = bufs.as_slice()[0].clone();
        assert_eq!(bufs.into_buffers(), old);
    }
}
