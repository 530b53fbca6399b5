//! Reverse mode: cotangents pulled from one output back to chosen inputs.

use super::rules::{differentiable, vjp_rule};
use super::AdError;
use crux_ir::graph::{Graph, NodeId};

/// Pulls the cotangent `cotangent` (same type as `output`) back to every
/// node in `wrt`. Returns one cotangent per `wrt` node, zeros where the
/// output does not depend on it. Only nodes on a path from `wrt` to
/// `output` are visited.
pub fn vjp(
    g: &mut Graph,
    output: NodeId,
    cotangent: NodeId,
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, AdError> {
    let (od, os) = (g.node(output).dtype, g.node(output).shape.clone());
    let (cd, cs) = (g.node(cotangent).dtype, g.node(cotangent).shape.clone());
    if od != cd || os != cs {
        return Err(AdError::CotangentShape {
            output: format!("{od}{os}"),
            cotangent: format!("{cd}{cs}"),
        });
    }
    for &w in wrt {
        let dt = g.node(w).dtype;
        if !differentiable(dt) {
            return Err(AdError::NotFloat(dt.to_string()));
        }
    }
    let n_orig = g.len();
    let dep = g.depends_on(wrt);
    let live = g.reachable(&[output]);
    let mut adj: Vec<Option<NodeId>> = vec![None; n_orig];
    if dep[output.index()] {
        adj[output.index()] = Some(cotangent);
    }
    for i in (0..n_orig).rev() {
        let Some(gy) = adj[i] else { continue };
        if !live[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let args = g.node(id).args.clone();
        let need: Vec<bool> = args
            .iter()
            .map(|a| dep[a.index()] && differentiable(g.node(*a).dtype))
            .collect();
        if !need.iter().any(|n| *n) {
            continue;
        }
        let contribs = vjp_rule(g, id, gy, &need)?;
        for (a, c) in args.iter().zip(contribs) {
            if let Some(c) = c {
                adj[a.index()] = Some(match adj[a.index()] {
                    Some(prev) => g.add2(prev, c)?,
                    None => c,
                });
            }
        }
    }
    let mut res = Vec::with_capacity(wrt.len());
    for &w in wrt {
        res.push(match adj[w.index()] {
            Some(a) => a,
            None => g.constant_like(0.0, w)?,
        });
    }
    Ok(res)
}

/// Gradient of a scalar `output` with respect to each `wrt` node.
pub fn grad(g: &mut Graph, output: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, AdError> {
    let one = g.constant_like(1.0, output)?;
    vjp(g, output, one, wrt)
}
