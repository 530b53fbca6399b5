//! Forward mode: tangents pushed from seed nodes towards outputs.

use super::rules::{differentiable, jvp_rule};
use super::AdError;
use crux_ir::graph::{Graph, NodeId};

/// Pushes tangents from `seeds` (node, tangent node of the same type) to
/// `outputs`. A seeded node's tangent is its seed whatever its arguments'
/// tangents are, so an interior node (a coordinate sliced out of a point
/// set, say) can be a seed. Returns the tangent of each output (`None`
/// when the output does not depend on any seed).
pub fn jvp(
    g: &mut Graph,
    outputs: &[NodeId],
    seeds: &[(NodeId, NodeId)],
) -> Result<Vec<Option<NodeId>>, AdError> {
    for &(n, t) in seeds {
        let (nd, ns) = (g.node(n).dtype, g.node(n).shape.clone());
        let (td, tsh) = (g.node(t).dtype, g.node(t).shape.clone());
        if !differentiable(nd) {
            return Err(AdError::NotFloat(nd.to_string()));
        }
        if nd != td || ns != tsh {
            return Err(AdError::SeedType {
                node: n.to_string(),
                expected: format!("{nd}{ns}"),
                seed: format!("{td}{tsh}"),
            });
        }
    }
    let n_orig = g.len();
    let seed_nodes: Vec<NodeId> = seeds.iter().map(|s| s.0).collect();
    let dep = g.depends_on(&seed_nodes);
    let live = g.reachable(outputs);
    let mut tangent: Vec<Option<NodeId>> = vec![None; n_orig];
    for &(n, t) in seeds {
        tangent[n.index()] = Some(t);
    }
    for i in 0..n_orig {
        if !dep[i] || !live[i] || tangent[i].is_some() {
            continue;
        }
        let id = NodeId(i as u32);
        let ts: Vec<Option<NodeId>> = g.node(id).args.iter().map(|a| tangent[a.index()]).collect();
        tangent[i] = jvp_rule(g, id, &ts)?;
    }
    Ok(outputs.iter().map(|o| tangent[o.index()]).collect())
}

/// `∂ᵒʳᵈᵉʳ u / ∂xᵒʳᵈᵉʳ` pointwise, for a field `u` and a coordinate node `x`
/// (both over the same points). Each order is one forward pass seeded with
/// ones at `x`; the result of one pass is differentiated again for the next,
/// so mixed partials come from calling this with different coordinates.
/// A field that does not depend on `x` has derivative zero.
pub fn field_derivative(
    g: &mut Graph,
    u: NodeId,
    x: NodeId,
    order: u32,
) -> Result<NodeId, AdError> {
    let mut cur = u;
    for _ in 0..order {
        let ones = g.constant_like(1.0, x)?;
        cur = match jvp(g, &[cur], &[(x, ones)])?[0] {
            Some(t) => t,
            None => g.constant_like(0.0, cur)?,
        };
    }
    Ok(cur)
}
