//! Which nodes of a log-density graph are materialised, and in what order.

use crux_ir::graph::{Graph, NodeId, Op, Shape};

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
                Op::MatMul => {
                    mat[i] = true;
                    // Each operand entry is read once per row / column of
                    // the other: inlining an expensive operand would
                    // recompute it that many times (a network's forward
                    // pass, layer after layer, grows geometrically).
                    for a in &n.args {
                        if !is_cheap(&g.node(*a).op) {
                            mat[a.index()] = true;
                        }
                    }
                }
                Op::Broadcast => {
                    // Likewise an expensive value broadcast to more entries.
                    let a = n.args[0];
                    if !is_cheap(&g.node(a).op) && g.node(a).shape.numel() < n.shape.numel() {
                        mat[a.index()] = true;
                    }
                }
                Op::Sum { .. } | Op::ReduceMax { .. } => mat[i] = true,
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

/// The iteration domain of a materialised node when it can join a fused
/// loop: its own shape for an elementwise (inlinable) node, its argument's
/// shape for a full reduction (every kept axis has size 1). `None` for
/// partial reductions, matrix products and reshape-fed nodes.
fn fusable_domain(g: &Graph, n: NodeId) -> Option<Shape> {
    let node = g.node(n);
    match &node.op {
        Op::Sum { axes } | Op::ReduceMax { axes } => {
            let arg = &g.node(node.args[0]).shape;
            let full = (0..arg.rank()).all(|k| axes.contains(&(k as u8)) || arg.0[k] == 1);
            full.then(|| arg.clone())
        }
        Op::MatMul => None,
        _ => Some(node.shape.clone()),
    }
}

/// The fused domain of a group's first member.
pub(super) fn domain(g: &Graph, n: NodeId) -> Shape {
    fusable_domain(g, n).unwrap_or_else(|| g.node(n).shape.clone())
}

impl Plan {
    /// The materialised nodes split into groups computed by one loop nest
    /// each: consecutive (in topological order) fusable nodes over the same
    /// domain, where no member reads a reduction of the same group (that
    /// value is only known after the loop). Other nodes are singletons.
    pub fn groups(&self, g: &Graph) -> Vec<Vec<NodeId>> {
        let mut groups: Vec<Vec<NodeId>> = Vec::new();
        let mut current: Vec<NodeId> = Vec::new();
        let mut cur_domain: Option<Shape> = None;
        for &n in &self.materialise_order {
            let d = fusable_domain(g, n).filter(|d| d.numel() > 1);
            let reads_group_reduction = !current.is_empty() && {
                let reductions: Vec<NodeId> = current
                    .iter()
                    .copied()
                    .filter(|m| matches!(g.node(*m).op, Op::Sum { .. } | Op::ReduceMax { .. }))
                    .collect();
                !reductions.is_empty() && g.depends_on(&reductions)[n.index()]
            };
            // A node that cannot join (another domain, or a trivial one) but
            // reads nothing of the open group is emitted ahead of it, so
            // small prior or scalar terms do not split a fused loop.
            if d != cur_domain
                && !current.is_empty()
                && !g.depends_on(&current)[n.index()]
                && d.is_none()
            {
                groups.push(vec![n]);
                continue;
            }
            let joins = d.is_some() && d == cur_domain && !reads_group_reduction;
            if !joins && !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            cur_domain = d;
            current.push(n);
            if cur_domain.is_none() {
                groups.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }
}
