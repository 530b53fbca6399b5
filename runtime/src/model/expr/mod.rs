//! Expressions: what users build residuals, fields and priors from.
//!
//! An [`Expr`] is an immutable, cheaply cloned node of a DAG (shared with
//! `Arc`). Shapes are checked eagerly, numpy-style, as the expression is
//! built; because operators cannot return `Result`, an invalid operation
//! yields an *invalid expression* that carries the error and swallows every
//! operation applied to it. The error surfaces as a [`crate::Error`] when the
//! expression reaches a fallible call (`Crux::new`, [`Expr::check`], ...),
//! naming the first offending sub-expression.

mod display;
mod math;
mod ops;

use std::sync::Arc;

use crux_ir::graph::{BinaryOp, Shape, Tensor, UnaryOp};

use crate::error::{Error, Result};
use crate::model::domain::Domain;
use crate::model::ids::{DomainId, NoiseId};
use crate::model::noise::NoiseDist;
use crate::model::param::Param;

pub use math::diff;
pub use ops::IntoExpr;

/// The most axes an expression may have.
pub const MAX_RANK: usize = 255;

/// The most elements one expression's value may have (2³¹).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// A tensor-valued expression over a domain's points, parameters and constants.
#[derive(Clone)]
pub struct Expr(pub(crate) Arc<Node>);

pub(crate) struct Node {
    pub kind: Kind,
    pub shape: Shape,
    /// The domain whose points the expression reads, if any.
    pub domain: Option<DomainId>,
}

/// The kinds of expression node. Shapes follow the graph IR's ops; the
/// tracer turns each kind into graph nodes.
pub(crate) enum Kind {
    /// Coordinate `axis` of the points of `tag`: shape `(P, 1)`.
    Coord {
        domain: Domain,
        tag: String,
        axis: usize,
    },
    /// A constant tensor.
    Constant(Arc<Tensor>),
    /// A parameter tensor (a leaf of a model).
    Leaf(Param),
    /// A noise term, drawn once per problem from the problem's seed.
    Noise {
        id: NoiseId,
        dist: NoiseDist,
    },
    Unary(UnaryOp, Expr),
    /// Numpy-broadcasting binary op.
    Binary(BinaryOp, Expr, Expr),
    Sum {
        arg: Expr,
        axes: Vec<u8>,
    },
    MatMul(Expr, Expr),
    Transpose(Expr, Vec<u8>),
    Reshape(Expr),
    Slice {
        arg: Expr,
        axis: u8,
        start: usize,
        step: usize,
    },
    Concat(Vec<Expr>, u8),
    /// Pointwise `∂ᵒʳᵈᵉʳ of / ∂ wrtᵒʳᵈᵉʳ`, `wrt` a coordinate.
    Derivative {
        of: Expr,
        wrt: Expr,
        order: u32,
    },
    /// An invalid operation; the error explains it.
    Invalid(Arc<Error>),
}

/// A shared empty constant that replaces a node's kind while it is being
/// dropped (no allocation in `drop`).
static EMPTY: std::sync::LazyLock<Arc<Tensor>> =
    std::sync::LazyLock::new(|| Arc::new(Tensor::scalar(0.0)));

fn take_children(kind: &mut Kind, out: &mut Vec<Expr>) {
    let k = std::mem::replace(kind, Kind::Constant(EMPTY.clone()));
    match k {
        Kind::Coord { .. }
        | Kind::Constant(_)
        | Kind::Leaf(_)
        | Kind::Noise { .. }
        | Kind::Invalid(_) => {}
        Kind::Unary(_, a)
        | Kind::Sum { arg: a, .. }
        | Kind::Transpose(a, _)
        | Kind::Reshape(a)
        | Kind::Slice { arg: a, .. } => out.push(a),
        Kind::Binary(_, a, b) | Kind::MatMul(a, b) => out.extend([a, b]),
        Kind::Concat(xs, _) => out.extend(xs),
        Kind::Derivative { of, wrt, .. } => out.extend([of, wrt]),
    }
}

impl Drop for Node {
    /// Drops the DAG below this node iteratively: a user may build a chain
    /// of 10⁵ operations, and the default recursive drop would overflow
    /// the stack.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(e) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(e.0) {
                take_children(&mut node.kind, &mut stack);
            }
        }
    }
}

impl Expr {
    /// Every expression node is made here, so the limits the graph IR
    /// relies on are checked once: at most [`MAX_RANK`] axes (axes are
    /// bytes in the IR) and at most [`MAX_ELEMENTS`] elements (a broadcast
    /// of a large point set against a large parameter must be an error,
    /// not an allocation failure).
    pub(crate) fn make(kind: Kind, shape: Shape, domain: Option<DomainId>) -> Expr {
        if shape.rank() > MAX_RANK || shape.checked_numel().is_none_or(|n| n > MAX_ELEMENTS) {
            let err = Error::InvalidOperation {
                op: "shape",
                expr: format!("an expression of shape {shape}"),
                reason: format!(
                    "expressions may have at most {MAX_RANK} axes and {MAX_ELEMENTS} elements; reduce the problem size or split it"
                ),
            };
            return Expr(Arc::new(Node {
                kind: Kind::Invalid(Arc::new(err)),
                shape: Shape::scalar(),
                domain: None,
            }));
        }
        Expr(Arc::new(Node {
            kind,
            shape,
            domain,
        }))
    }

    pub(crate) fn invalid(err: Error) -> Expr {
        Expr::make(Kind::Invalid(Arc::new(err)), Shape::scalar(), None)
    }

    /// The shape of the expression's value.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape.0
    }

    /// Whether the expression is valid; if not, the error of the first
    /// invalid operation it contains.
    pub fn check(&self) -> Result<()> {
        match &self.0.kind {
            Kind::Invalid(e) => Err((**e).clone()),
            _ => Ok(()),
        }
    }

    pub(crate) fn error(&self) -> Option<&Arc<Error>> {
        match &self.0.kind {
            Kind::Invalid(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.0.kind
    }

    /// Pointer identity, used to memoise traversals of the DAG.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The arguments of this node (in a fixed order).
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match &self.0.kind {
            Kind::Coord { .. }
            | Kind::Constant(_)
            | Kind::Leaf(_)
            | Kind::Noise { .. }
            | Kind::Invalid(_) => vec![],
            Kind::Unary(_, a)
            | Kind::Sum { arg: a, .. }
            | Kind::Transpose(a, _)
            | Kind::Reshape(a)
            | Kind::Slice { arg: a, .. } => {
                vec![a]
            }
            Kind::Binary(_, a, b) | Kind::MatMul(a, b) => vec![a, b],
            Kind::Concat(xs, _) => xs.iter().collect(),
            Kind::Derivative { of, wrt, .. } => vec![of, wrt],
        }
    }

    /// Every node of the DAG below (and including) `roots`, each once, in
    /// post-order (arguments first). Iterative, so deep expressions cannot
    /// overflow the stack.
    pub(crate) fn post_order(roots: &[&Expr]) -> Vec<Expr> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut stack: Vec<(Expr, bool)> =
            roots.iter().rev().map(|e| ((*e).clone(), false)).collect();
        while let Some((e, expanded)) = stack.pop() {
            if expanded {
                out.push(e);
                continue;
            }
            if !seen.insert(e.key()) {
                continue;
            }
            stack.push((e.clone(), true));
            for c in e.children().into_iter().rev() {
                if !seen.contains(&c.key()) {
                    stack.push((c.clone(), false));
                }
            }
        }
        out
    }

    /// Every parameter leaf the expression reads, each once, in first-use order.
    pub fn parameters(&self) -> Vec<Param> {
        let mut seen = std::collections::HashSet::new();
        Expr::post_order(&[self])
            .into_iter()
            .filter_map(|e| match e.kind() {
                Kind::Leaf(p) if seen.insert(p.leaf_id()) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Combines the domains of two operands; `Err` if they differ.
pub(crate) fn merge_domains(
    a: Option<DomainId>,
    b: Option<DomainId>,
) -> std::result::Result<Option<DomainId>, ()> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(()),
        (Some(x), _) | (_, Some(x)) => Ok(Some(x)),
        (None, None) => Ok(None),
    }
}
