//! Cost accounting: flops and transcendental evaluations per node.
//!
//! The convention (used by `--inspect`): one flop per element for each add,
//! sub, mul, div, neg, fma, compare or select, and likewise for the other
//! cheap elementwise ops (abs, sign, sqrt, recip, max, min); `n - 1` per
//! reduction of `n` elements into one; `2mnk` per matmul; data movement
//! (cast, broadcast, reshape, transpose, slice, pad, concat) is free.
//! Transcendental functions (exp, log, sin, cos, tanh, pow, ...) are
//! counted separately, one per element. Counts saturate instead of
//! overflowing.

use super::op::Op;
use super::{Graph, NodeId};

/// Flop and transcendental counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Arithmetic operations.
    pub flops: u64,
    /// Transcendental function evaluations.
    pub transcendentals: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.flops += o.flops;
        self.transcendentals += o.transcendentals;
    }
}

/// The cost of evaluating node `id` once (its arguments excluded).
pub fn node_cost(graph: &Graph, id: NodeId) -> Cost {
    let n = graph.node(id);
    let elems = n.shape.numel() as u64;
    match &n.op {
        Op::Param(_) | Op::Data(_) | Op::Const(_) => Cost::default(),
        Op::Unary(u) if u.is_transcendental() => Cost {
            flops: 0,
            transcendentals: elems,
        },
        Op::Binary(b) if b.is_transcendental() => Cost {
            flops: 0,
            transcendentals: elems,
        },
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => Cost {
            flops: elems,
            transcendentals: 0,
        },
        Op::Cast
        | Op::Broadcast
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Concat { .. } => Cost::default(),
        Op::Sum { .. } | Op::ReduceMax { .. } => {
            let input = graph.node(n.args[0]).shape.numel() as u64;
            Cost {
                flops: input.saturating_sub(elems),
                transcendentals: 0,
            }
        }
        Op::MatMul => {
            let a = &graph.node(n.args[0]).shape;
            let b = &graph.node(n.args[1]).shape;
            Cost {
                flops: 2u64
                    .saturating_mul(a.0[0] as u64)
                    .saturating_mul(a.0[1] as u64)
                    .saturating_mul(b.0[1] as u64),
                transcendentals: 0,
            }
        }
    }
}

impl Graph {
    /// Total cost of evaluating everything the outputs need once.
    pub fn cost(&self) -> Cost {
        let roots: Vec<NodeId> = self.outputs().iter().map(|(_, n)| *n).collect();
        let live = self.reachable(&roots);
        let mut c = Cost::default();
        for (i, l) in live.iter().enumerate() {
            if *l {
                c += node_cost(self, NodeId(i as u32));
            }
        }
        c
    }

    /// Number of nodes the outputs need.
    pub fn live_nodes(&self) -> usize {
        let roots: Vec<NodeId> = self.outputs().iter().map(|(_, n)| *n).collect();
        self.reachable(&roots).iter().filter(|l| **l).count()
    }
}
