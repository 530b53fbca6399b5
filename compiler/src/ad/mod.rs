//! Automatic differentiation on the graph IR.
//!
//! Both modes are graph-to-graph: they add the derivative nodes to the same
//! graph, so the optimiser, the interpreter and the backends treat
//! gradients like any other computation. The per-op rules are in
//! [`rules`], one arm per op, forward and reverse side by side.
//!
//! * [`grad`] / [`vjp`]: reverse mode, for `∇θ log p` with respect to
//!   parameter nodes.
//! * [`jvp`]: forward mode from arbitrary seed nodes.
//! * [`field_derivative`]: `∂ᵏu/∂xᵏ` of a field `u` with respect to a
//!   coordinate node `x`, by nested forward mode with a seed of ones. The
//!   semantics are pointwise: each point is independent, so seeding every
//!   point's coordinate at once yields every point's own derivative.

mod forward;
mod reverse;
pub mod rules;

pub use forward::{field_derivative, jvp};
pub use reverse::{grad, vjp};

use crux_ir::GraphError;

/// Errors of the differentiation transforms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdError {
    /// Building a derivative node failed (a bug in a rule, or an ill-typed input graph).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Reverse mode needs a scalar (or cotangent-matched) output.
    #[error("the cotangent has shape {cotangent}, but the output has shape {output}")]
    CotangentShape {
        /// Output shape.
        output: String,
        /// Cotangent shape.
        cotangent: String,
    },
    /// Only float nodes can be differentiated.
    #[error("cannot differentiate with respect to a `{0}` node")]
    NotFloat(String),
    /// A seed tangent must have the type of its node.
    #[error("seed for node {node} has type {seed}, but the node has type {expected}")]
    SeedType {
        /// The seeded node.
        node: String,
        /// Its type.
        expected: String,
        /// The seed's type.
        seed: String,
    },
}

#[cfg(test)]
mod tests;
