//! Tracing: expressions → graph IR.
//!
//! The expression DAG is walked once in post-order (iteratively, so depth
//! is not limited by the stack) and each node becomes graph nodes. Sampled
//! parameter leaves become parameter slots; every other leaf is data at its
//! current value, which staging folds. Field derivatives are expanded here
//! by forward-mode AD on the graph.

use std::collections::HashMap;

use crux_compiler::ad::field_derivative;
use crux_ir::graph::{DType, Graph, NodeId, ParamId, Tensor};

use crate::error::{Error, Result};
use crate::model::expr::{Expr, Kind};
use crate::model::ids::{DomainId, LeafId, NoiseId};

/// Noise streams in order of first appearance.
#[derive(Clone, Debug, Default)]
pub(crate) struct NoiseTable {
    pub streams: HashMap<NoiseId, u64>,
}

impl NoiseTable {
    /// Assigns streams to the noise terms of `roots` not seen yet.
    pub fn register(&mut self, roots: &[&Expr]) {
        for e in Expr::post_order(roots) {
            if let Kind::Noise { id, .. } = e.kind() {
                let next = self.streams.len() as u64;
                self.streams.entry(*id).or_insert(next);
            }
        }
    }
}

pub(crate) struct Tracer {
    pub graph: Graph,
    /// Traced nodes by pointer identity; the `Expr` is held so that its
    /// address cannot be reused by another node while the tracer lives.
    memo: HashMap<usize, (Expr, NodeId)>,
    slots: HashMap<LeafId, ParamId>,
    fixed: HashMap<LeafId, NodeId>,
    coords: HashMap<(DomainId, String), NodeId>,
    noise: NoiseTable,
    seed: u64,
}

impl Tracer {
    pub fn new(seed: u64, noise: NoiseTable) -> Tracer {
        Tracer {
            graph: Graph::new(),
            memo: HashMap::new(),
            slots: HashMap::new(),
            fixed: HashMap::new(),
            coords: HashMap::new(),
            noise,
            seed,
        }
    }

    /// Declares a parameter slot for a sampled leaf.
    pub fn add_slot(&mut self, p: &crate::Param) -> ParamId {
        let id = self
            .graph
            .add_param(p.name(), DType::F64, p.shape().to_vec());
        self.slots.insert(p.leaf_id(), id);
        id
    }

    /// A slot for a sampled leaf holding its unconstrained value `u`: the
    /// model reads `T(u)` (see [`crate::model::transform`]). Returns the
    /// scalar `Σ log |dx/du|` node of a constrained leaf.
    pub fn add_unconstrained_slot(&mut self, p: &crate::Param) -> Result<Option<NodeId>> {
        use crate::model::transform::Transform;
        use crux_ir::graph::{BinaryOp, UnaryOp};
        let id = self.add_slot(p);
        let t = p.transform();
        if t.is_identity() {
            return Ok(None);
        }
        let g = &mut self.graph;
        let u = g.param(id)?;
        let shape = crux_ir::graph::Shape(p.shape().to_vec());
        let c = |g: &mut Graph, v: f64| g.constant(v, DType::F64, shape.clone());
        let (x, logj) = match t {
            Transform::Identity => unreachable!("handled above"),
            Transform::Ordered => {
                // x = L v, v = (u₀, e^{u₁}, …), L lower-triangular ones;
                // log J = Σ_{i≥1} uᵢ.
                let n = p.len();
                if n == 1 {
                    let zero = g.constant(0.0, DType::F64, crux_ir::graph::Shape::scalar())?;
                    (u, zero)
                } else {
                    let e = g.unary(UnaryOp::Exp, u)?;
                    let head = g.slice(u, 0, 0, 1, 1)?;
                    let tail = g.slice(e, 0, 1, n - 1, 1)?;
                    let v = g.concat(&[head, tail], 0)?;
                    let v = g.reshape(v, crux_ir::graph::Shape(vec![n, 1]))?;
                    let lower: Vec<f64> = (0..n * n)
                        .map(|k| if k % n <= k / n { 1.0 } else { 0.0 })
                        .collect();
                    let l = Tensor::new(DType::F64, vec![n, n], lower)?;
                    let ld = g.add_data(format!("{}.cumsum", p.name()), l);
                    let ln = g.data_node(ld)?;
                    let x = g.matmul(ln, v)?;
                    let x = g.reshape(x, shape.clone())?;
                    let us = g.slice(u, 0, 1, n - 1, 1)?;
                    (x, us)
                }
            }
            Transform::Lower(lo) | Transform::Upper(lo) => {
                let e = g.unary(UnaryOp::Exp, u)?;
                let op = if matches!(t, Transform::Lower(_)) {
                    BinaryOp::Add
                } else {
                    BinaryOp::Sub
                };
                let bound = c(g, lo)?;
                (g.binary_bcast(op, bound, e)?, u)
            }
            Transform::Bounded(lo, hi) => {
                let s = g.unary(UnaryOp::Sigmoid, u)?;
                let w = c(g, hi - lo)?;
                let ws = g.binary_bcast(BinaryOp::Mul, w, s)?;
                let l = c(g, lo)?;
                let x = g.binary_bcast(BinaryOp::Add, l, ws)?;
                // ln(hi − lo) − softplus(u) − softplus(−u)
                let sp = g.unary(UnaryOp::Softplus, u)?;
                let nu = g.unary(UnaryOp::Neg, u)?;
                let sn = g.unary(UnaryOp::Softplus, nu)?;
                let both = g.binary_bcast(BinaryOp::Add, sp, sn)?;
                let lw = c(g, (hi - lo).ln())?;
                (x, g.binary_bcast(BinaryOp::Sub, lw, both)?)
            }
        };
        let total = g.sum_all(logj)?;
        self.fixed.insert(p.leaf_id(), x);
        self.slots.remove(&p.leaf_id());
        Ok(Some(total))
    }

    /// A slot of which only the entries where `mask` is true reach the
    /// model: the leaf's value is `select(mask, θ, value)` (its other
    /// entries stay at their current value). Returns the raw parameter node
    /// and the mask (a bool node).
    pub fn add_masked_slot(&mut self, p: &crate::Param, mask: &[bool]) -> Result<(NodeId, NodeId)> {
        let id = self.add_slot(p);
        let g = &mut self.graph;
        let raw = g.param(id)?;
        let m = Tensor::new(
            DType::F64,
            p.shape().to_vec(),
            mask.iter().map(|&b| b as u8 as f64).collect(),
        )?;
        let md = g.add_data(format!("{}.mask", p.name()), m);
        let mf = g.data_node(md)?;
        let half = g.constant(0.5, DType::F64, crux_ir::graph::Shape(p.shape().to_vec()))?;
        let mn = g.compare(crux_ir::graph::CmpOp::Gt, mf, half)?;
        let v = Tensor::new(DType::F64, p.shape().to_vec(), p.values())?;
        let vd = g.add_data(format!("{}.frozen", p.name()), v);
        let vn = g.data_node(vd)?;
        let leaf = g.select(mn, raw, vn)?;
        self.fixed.insert(p.leaf_id(), leaf);
        self.slots.remove(&p.leaf_id());
        Ok((raw, mn))
    }

    /// A runtime input of default value `t` (minibatch weights): never a
    /// constant, whatever its values (see `DataInfo::runtime`).
    pub fn runtime_data(&mut self, name: String, t: Tensor) -> Result<NodeId> {
        let d = self.graph.add_runtime_data(name, t);
        Ok(self.graph.data_node(d)?)
    }

    fn data(&mut self, name: String, t: Tensor) -> Result<NodeId> {
        if let Some(v) = t.uniform_value() {
            return Ok(self.graph.constant(v, t.dtype, t.shape.clone())?);
        }
        let d = self.graph.add_data(name, t);
        Ok(self.graph.data_node(d)?)
    }

    /// The graph node computing `e`.
    pub fn trace(&mut self, e: &Expr) -> Result<NodeId> {
        for n in Expr::post_order(&[e]) {
            if self.memo.contains_key(&n.key()) {
                continue;
            }
            let id = self.node(&n)?;
            self.memo.insert(n.key(), (n, id));
        }
        Ok(self.memo[&e.key()].1)
    }

    fn arg(&self, e: &Expr) -> NodeId {
        self.memo[&e.key()].1
    }

    fn node(&mut self, e: &Expr) -> Result<NodeId> {
        let g = &mut self.graph;
        Ok(match e.kind() {
            Kind::Invalid(err) => return Err((**err).clone()),
            Kind::Coord { domain, tag, axis } => {
                let key = (domain.id(), tag.clone());
                let pts = match self.coords.get(&key) {
                    Some(n) => *n,
                    None => {
                        let t = (**domain.points_tensor(tag)?).clone();
                        let d = g.add_data(format!("{tag}.points"), t);
                        let n = g.data_node(d)?;
                        self.coords.insert(key, n);
                        n
                    }
                };
                g.slice(pts, 1, *axis, 1, 1)?
            }
            Kind::Constant(t) => {
                let name = format!("const.{}", g.data().len());
                self.data(name, (**t).clone())?
            }
            // A masked slot's leaf node is its select (in `fixed`).
            Kind::Leaf(p) => match self.slots.get(&p.leaf_id()) {
                Some(slot) => g.param(*slot)?,
                None => match self.fixed.get(&p.leaf_id()) {
                    Some(n) => *n,
                    None => {
                        let t = Tensor::new(DType::F64, p.shape().to_vec(), p.values())?;
                        let d = g.add_data(p.name(), t);
                        let n = g.data_node(d)?;
                        self.fixed.insert(p.leaf_id(), n);
                        n
                    }
                },
            },
            Kind::Noise { id, dist } => {
                let next = self.noise.streams.len() as u64;
                let stream = *self.noise.streams.entry(*id).or_insert(next);
                let shape = e.0.shape.clone();
                let philox_stream = crux_ir::rng::stream(crux_ir::rng::Purpose::Noise, stream);
                let vals: Vec<f64> = (0..shape.numel() as u64)
                    .map(|i| dist.draw(self.seed, philox_stream, i))
                    .collect();
                if let Some(bad) = vals.iter().find(|v| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        what: format!(
                            "every draw of {dist} (its parameters are too extreme for f64)"
                        ),
                        value: *bad,
                    });
                }
                let t = Tensor::new(DType::F64, shape, vals)?;
                self.data(format!("noise.{stream}"), t)?
            }
            Kind::Unary(op, a) => {
                let a = self.arg(a);
                self.graph.unary(*op, a)?
            }
            Kind::Binary(op, a, b) => {
                let (a, b) = (self.arg(a), self.arg(b));
                self.graph.binary_bcast(*op, a, b)?
            }
            Kind::Sum { arg, axes } => {
                let a = self.arg(arg);
                self.graph.sum(a, axes)?
            }
            Kind::MatMul(a, b) => {
                let (a, b) = (self.arg(a), self.arg(b));
                self.graph.matmul(a, b)?
            }
            Kind::Transpose(a, perm) => {
                let a = self.arg(a);
                self.graph.transpose(a, perm)?
            }
            Kind::Reshape(a) => {
                let a = self.arg(a);
                self.graph.reshape(a, e.0.shape.clone())?
            }
            Kind::Slice {
                arg,
                axis,
                start,
                step,
            } => {
                let a = self.arg(arg);
                let len = e.0.shape.0[*axis as usize];
                self.graph.slice(a, *axis, *start, len, *step)?
            }
            Kind::Concat(parts, axis) => {
                let ids: Vec<NodeId> = parts.iter().map(|p| self.arg(p)).collect();
                self.graph.concat(&ids, *axis)?
            }
            Kind::Derivative { of, wrt, order } => {
                let (u, x) = (self.arg(of), self.arg(wrt));
                // The coordinate is its points tensor (1-D) or a column sliced from it.
                let points = match self.graph.node(x).op {
                    crux_ir::Op::Slice { .. } => self.graph.node(x).args[0],
                    _ => x,
                };
                let dep = self.graph.depends_on(&[points]);
                if !dep[u.index()] {
                    let others: Vec<NodeId> = self
                        .coords
                        .values()
                        .copied()
                        .filter(|c| *c != points)
                        .collect();
                    let dep_other = self.graph.depends_on(&others);
                    if dep_other[u.index()] {
                        return Err(Error::InvalidOperation {
                            op: "diff",
                            expr: e.to_string(),
                            reason: format!(
                                "`{of}` is evaluated at other points than `{wrt}`; differentiate a field with respect to the variable it is evaluated at"
                            ),
                        });
                    }
                }
                field_derivative(&mut self.graph, u, x, *order)?
            }
        })
    }
}
