//! The graph verifier: every invariant the rest of the compiler relies on.

use super::op::{check, ArgType, Op};
use super::{Graph, GraphError};

/// Checks that `graph` is well formed: arguments precede users, every node
/// passes its op's type rule, leaves refer to declared parameters and stored
/// data of the right type, outputs exist, and data tensors hold
/// `shape.numel()` values rounded to their dtype.
pub fn verify(graph: &Graph) -> Result<(), GraphError> {
    for (i, d) in graph.data().iter().enumerate() {
        let t = &d.value;
        if t.data.len() != t.shape.numel() {
            return Err(GraphError::Dangling(format!(
                "data d{i} has {} values for shape {}",
                t.data.len(),
                t.shape
            )));
        }
        if !t.dtype.is_float()
            || t.data
                .iter()
                .any(|v| t.dtype.round(*v).to_bits() != v.to_bits() && !v.is_nan())
        {
            return Err(GraphError::Dangling(format!(
                "data d{i} holds values not of its dtype {}",
                t.dtype
            )));
        }
    }
    for (i, n) in graph.nodes().iter().enumerate() {
        for a in &n.args {
            if a.index() >= i {
                return Err(GraphError::Dangling(format!(
                    "node %{i} uses {a}, which does not precede it"
                )));
            }
        }
        match n.op {
            Op::Param(p) => {
                let info = graph.params().get(p.index()).ok_or_else(|| {
                    GraphError::Dangling(format!("node %{i} reads undeclared {p}"))
                })?;
                if info.shape != n.shape || info.dtype != n.dtype {
                    return Err(GraphError::Dangling(format!(
                        "node %{i} does not match the type of {p}"
                    )));
                }
            }
            Op::Data(d) => {
                let info = graph
                    .data()
                    .get(d.index())
                    .ok_or_else(|| GraphError::Dangling(format!("node %{i} reads missing {d}")))?;
                if info.value.shape != n.shape || info.value.dtype != n.dtype {
                    return Err(GraphError::Dangling(format!(
                        "node %{i} does not match the type of {d}"
                    )));
                }
            }
            _ => {}
        }
        let args: Vec<ArgType<'_>> = n
            .args
            .iter()
            .map(|a| {
                let m = graph.node(*a);
                ArgType {
                    dtype: m.dtype,
                    shape: &m.shape,
                }
            })
            .collect();
        check(&n.op, &args, n.dtype, &n.shape)?;
    }
    for (name, o) in graph.outputs() {
        if o.index() >= graph.len() {
            return Err(GraphError::Dangling(format!(
                "output `{name}` refers to missing {o}"
            )));
        }
    }
    Ok(())
}
