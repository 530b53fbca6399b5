//! The graph verifier: every invariant the rest of the compiler relies on.

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
        graph.check_node(n).map_err(|e| match e {
            GraphError::Dangling(m) => GraphError::Dangling(format!("node %{i}: {m}")),
            other => other,
        })?;
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
