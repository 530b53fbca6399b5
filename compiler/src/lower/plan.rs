//! Which nodes of a log-density graph are materialised, and in what order.

use crux_ir::graph::{Graph, NodeId, Op};

pub(super) struct Plan {
    /// Materialised nodes in topological order.
    pub materialise_order: Vec<NodeId>,
}

/// Leaves and views: recomputing them at each use costs a load at most.
fn is_cheap(op: &Op) -> bool {
    matches!(
        op,
        Op::Param(_)
            | Op::Data(_)
            | Op::Const(_)
            | Op::Broadcast
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Cast
    )
}

impl Plan {
    pub fn new(g: &Graph, roots: &[NodeId]) -> Plan {
        let live = g.reachable(roots);
        let mut uses = vec![0usize; g.len()];
        for (i, n) in g.nodes().iter().enumerate() {
            if live[i] {
                for a in &n.args {
                    uses[a.index()] += 1;
                }
            }
        }
        let mut mat = vec![false; g.len()];
        for (i, n) in g.nodes().iter().enumerate() {
            if !live[i] {
                continue;
            }
            let scalar_or_tensor =
                !n.shape.0.is_empty() || matches!(n.op, Op::Sum { .. } | Op::ReduceMax { .. });
            match n.op {
                Op::Sum { .. } | Op::ReduceMax { .. } | Op::MatMul => mat[i] = true,
                Op::Reshape => {
                    let a = n.args[0];
                    if !g.node(a).op.is_leaf() {
                        mat[a.index()] = true;
                    }
                }
                _ => {}
            }
            if uses[i] >= 2
                && !is_cheap(&n.op)
                && n.dtype != crux_ir::DType::Bool
                && scalar_or_tensor
            {
                mat[i] = true;
            }
        }
        Plan {
            materialise_order: (0..g.len())
                .filter(|&i| mat[i] && live[i])
                .map(|i| NodeId(i as u32))
                .collect(),
        }
    }
}
