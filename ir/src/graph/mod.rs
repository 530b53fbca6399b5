//! The tensor graph IR.
//!
//! A [`Graph`] is an arena of [`Node`]s. Insertion is hash-consed: adding a
//! node equal to an existing one returns the existing id, which gives common
//! subexpression elimination for free. Arguments always precede their users,
//! so iterating the arena in order is a topological traversal.
//!
//! Leaves are runtime parameters ([`Op::Param`], fed at every call), data
//! tensors stored with the graph ([`Op::Data`]: points, observations, staged
//! constants) and splatted constants ([`Op::Const`]). Named outputs mark what
//! a graph computes.

mod interp;
mod op;
mod stats;
pub mod text;
mod types;
mod verify;

use std::collections::HashMap;

pub use interp::{eval, eval_all, Tensor};
pub use op::{check, ArgType, BinaryOp, CmpOp, Op, UnaryOp};
pub use stats::{node_cost, Cost};
pub use text::{parse, print};
pub use types::{DType, DataId, NodeId, ParamId, Shape};
pub use verify::verify;

/// Errors raised while building, verifying, parsing or interpreting a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// An op was applied to arguments it does not accept.
    #[error("invalid `{op}` node: {msg}")]
    Invalid {
        /// The op's name.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A node refers to a missing node, parameter or data tensor, or breaks
    /// the topological order.
    #[error("dangling reference: {0}")]
    Dangling(String),
    /// The interpreter was called with parameters that do not match the
    /// graph's parameter slots.
    #[error("parameter {slot} (`{name}`) expects shape {expected}, got {got}")]
    ParamShape {
        /// The slot.
        slot: ParamId,
        /// Its name.
        name: String,
        /// Declared shape.
        expected: Shape,
        /// Shape supplied.
        got: Shape,
    },
    /// The interpreter was given the wrong number of parameter tensors.
    #[error("the graph has {expected} parameter slots but {got} tensors were given")]
    ParamCount {
        /// Slots in the graph.
        expected: usize,
        /// Tensors given.
        got: usize,
    },
    /// The text format could not be parsed.
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// An output name was not found.
    #[error("the graph has no output named `{0}`")]
    NoOutput(String),
}

/// One node of the arena.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Arguments, all with smaller ids.
    pub args: Vec<NodeId>,
    /// Element type of the result.
    pub dtype: DType,
    /// Shape of the result.
    pub shape: Shape,
}

/// Declaration of a runtime parameter slot.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Human-readable name (`a`, `net.layer0.weight`, ...).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape of the tensor fed at every call.
    pub shape: Shape,
}

/// A data tensor stored with the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct DataInfo {
    /// Human-readable name (`interior.x`, `staged.3`, ...).
    pub name: String,
    /// The value; its dtype and shape are those of every node reading it.
    pub value: Tensor,
    /// A runtime input: the caller of the compiled function writes its
    /// values before each evaluation, and `value` is only its default (what
    /// the interpreter reads). Passes treat it like a parameter that is not
    /// differentiated: staging folds nothing that reads it, the optimiser
    /// assumes nothing about its values, and lowering lists it in the
    /// layout's runtime inputs. The minibatch weights of stochastic-gradient
    /// kernels are runtime inputs.
    pub runtime: bool,
}

/// A hash-consed tensor graph with named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    dedup: HashMap<Node, NodeId>,
    params: Vec<ParamInfo>,
    data: Vec<DataInfo>,
    outputs: Vec<(String, NodeId)>,
}

impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
            && self.params == other.params
            && self.outputs == other.outputs
            && self.data.len() == other.data.len()
            && self.data.iter().zip(&other.data).all(|(a, b)| {
                a.name == b.name && a.runtime == b.runtime && a.value.bit_eq(&b.value)
            })
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// All nodes in topological (arena) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node with this id.
    ///
    /// Ids come from this graph, so this indexes directly; an id from another
    /// graph is a bug in the caller and panics.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Parameter slot declarations.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// Stored data tensors.
    pub fn data(&self) -> &[DataInfo] {
        &self.data
    }

    /// Named outputs in declaration order.
    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// The node of the output with this name.
    pub fn output(&self, name: &str) -> Result<NodeId, GraphError> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| GraphError::NoOutput(name.to_string()))
    }

    /// Declares a parameter slot.
    pub fn add_param(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> ParamId {
        self.params.push(ParamInfo {
            name: name.into(),
            dtype,
            shape: shape.into(),
        });
        ParamId(self.params.len() as u32 - 1)
    }

    /// Stores a data tensor.
    pub fn add_data(&mut self, name: impl Into<String>, value: Tensor) -> DataId {
        self.add_data_info(DataInfo {
            name: name.into(),
            value,
            runtime: false,
        })
    }

    /// Stores a runtime input (see [`DataInfo::runtime`]) with default
    /// values `value`.
    pub fn add_runtime_data(&mut self, name: impl Into<String>, value: Tensor) -> DataId {
        self.add_data_info(DataInfo {
            name: name.into(),
            value,
            runtime: true,
        })
    }

    /// Stores a data tensor described by `info` (a copy of another graph's
    /// entry keeps its name, value and runtime flag).
    pub fn add_data_info(&mut self, info: DataInfo) -> DataId {
        self.data.push(info);
        DataId(self.data.len() as u32 - 1)
    }

    /// Replaces the value of runtime input `d` (same dtype and shape): the
    /// values a compiled function would be given, for the interpreter.
    /// Other data tensors may have been folded into the graph, so they
    /// cannot be changed.
    pub fn set_runtime_data(&mut self, d: DataId, value: Tensor) -> Result<(), GraphError> {
        let info = self
            .data
            .get_mut(d.index())
            .ok_or_else(|| GraphError::Dangling(format!("data {d} is not stored")))?;
        if !info.runtime {
            return Err(GraphError::Dangling(format!(
                "data {d} (`{}`) is not a runtime input: its value may be folded into the graph",
                info.name
            )));
        }
        if info.value.dtype != value.dtype || info.value.shape != value.shape {
            return Err(GraphError::Dangling(format!(
                "data {d} (`{}`) is {}{}, the new value {}{}",
                info.name, info.value.dtype, info.value.shape, value.dtype, value.shape
            )));
        }
        info.value = value;
        Ok(())
    }

    /// Marks `node` as an output called `name` (replacing an output of the same name).
    pub fn set_output(&mut self, name: impl Into<String>, node: NodeId) {
        let name = name.into();
        if let Some(o) = self.outputs.iter_mut().find(|(n, _)| *n == name) {
            o.1 = node;
        } else {
            self.outputs.push((name, node));
        }
    }

    /// Removes every output.
    pub fn clear_outputs(&mut self) {
        self.outputs.clear();
    }

    /// Inserts a node after checking it, or returns the id of an identical
    /// existing node.
    pub fn add(&mut self, node: Node) -> Result<NodeId, GraphError> {
        if let Some(&id) = self.dedup.get(&node) {
            return Ok(id);
        }
        if node.shape.checked_numel().is_none() {
            return Err(GraphError::Invalid {
                op: node.op.name(),
                msg: format!("shape {} has more elements than fit in memory", node.shape),
            });
        }
        for &a in &node.args {
            if a.index() >= self.nodes.len() {
                return Err(GraphError::Dangling(format!("argument {a} does not exist")));
            }
        }
        self.check_node(&node)?;
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(node.clone());
        self.dedup.insert(node, id);
        Ok(id)
    }

    /// Checks a node against the graph: leaves must match their parameter
    /// or data declaration, and the op's type rule must accept the
    /// arguments (which must already exist). Shared by [`Graph::add`] and
    /// [`verify`].
    pub(crate) fn check_node(&self, node: &Node) -> Result<(), GraphError> {
        match node.op {
            Op::Param(p) => {
                let info = self.params.get(p.index()).ok_or_else(|| {
                    GraphError::Dangling(format!("parameter {p} is not declared"))
                })?;
                if info.shape != node.shape || info.dtype != node.dtype {
                    return Err(GraphError::Dangling(format!(
                        "node type differs from parameter {p}"
                    )));
                }
            }
            Op::Data(d) => {
                let info = self
                    .data
                    .get(d.index())
                    .ok_or_else(|| GraphError::Dangling(format!("data {d} is not stored")))?;
                if info.value.shape != node.shape || info.value.dtype != node.dtype {
                    return Err(GraphError::Dangling(format!(
                        "node type differs from data {d}"
                    )));
                }
            }
            _ => {}
        }
        {
            let args: Vec<ArgType<'_>> = node
                .args
                .iter()
                .map(|&a| {
                    let n = &self.nodes[a.index()];
                    ArgType {
                        dtype: n.dtype,
                        shape: &n.shape,
                    }
                })
                .collect();
            check(&node.op, &args, node.dtype, &node.shape)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        op: Op,
        args: Vec<NodeId>,
        dtype: DType,
        shape: Shape,
    ) -> Result<NodeId, GraphError> {
        self.add_canonical(Node {
            op,
            args,
            dtype,
            shape,
        })
    }

    /// [`Graph::add`] with one canonicalisation: a constant is
    /// shape-polymorphic, so moving its data around (broadcast, reshape,
    /// transpose, slice) inserts the same constant in the new shape. Every
    /// builder method goes through here, which keeps `x * broadcast(1)`
    /// visible to the elementwise optimiser as `x * 1`; [`Graph::add`]
    /// itself stays literal so parsed text maps node for node.
    pub fn add_canonical(&mut self, node: Node) -> Result<NodeId, GraphError> {
        let moves_data = matches!(
            node.op,
            Op::Broadcast | Op::Reshape | Op::Transpose { .. } | Op::Slice { .. }
        );
        if moves_data && node.args.len() == 1 && node.args[0].index() < self.nodes.len() {
            if let Op::Const(bits) = self.node(node.args[0]).op {
                self.check_node(&node)?;
                return self.add(Node {
                    op: Op::Const(bits),
                    args: vec![],
                    dtype: node.dtype,
                    shape: node.shape,
                });
            }
        }
        self.add(node)
    }

    /// Type of a node: `(dtype, shape)`.
    pub fn ty(&self, id: NodeId) -> (DType, &Shape) {
        let n = self.node(id);
        (n.dtype, &n.shape)
    }

    /// The node reading parameter slot `p`.
    pub fn param(&mut self, p: ParamId) -> Result<NodeId, GraphError> {
        let info = self
            .params
            .get(p.index())
            .ok_or_else(|| GraphError::Dangling(format!("parameter {p} is not declared")))?
            .clone();
        self.push(Op::Param(p), vec![], info.dtype, info.shape)
    }

    /// The node reading data tensor `d`.
    pub fn data_node(&mut self, d: DataId) -> Result<NodeId, GraphError> {
        let info = self
            .data
            .get(d.index())
            .ok_or_else(|| GraphError::Dangling(format!("data {d} is not stored")))?;
        let (dtype, shape) = (info.value.dtype, info.value.shape.clone());
        self.push(Op::Data(d), vec![], dtype, shape)
    }

    /// A constant tensor whose elements all equal `value` (rounded to `dtype`).
    pub fn constant(
        &mut self,
        value: f64,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> Result<NodeId, GraphError> {
        let v = dtype.round(value);
        self.push(Op::Const(v.to_bits()), vec![], dtype, shape.into())
    }

    /// A constant of the same dtype and shape as `like`.
    pub fn constant_like(&mut self, value: f64, like: NodeId) -> Result<NodeId, GraphError> {
        let (dt, sh) = self.ty(like);
        let sh = sh.clone();
        self.constant(value, dt, sh)
    }

    /// If `id` is a constant, its value.
    pub fn const_value(&self, id: NodeId) -> Option<f64> {
        match self.node(id).op {
            Op::Const(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    /// Elementwise unary op.
    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId, GraphError> {
        let (dt, sh) = self.ty(x);
        let sh = sh.clone();
        self.push(Op::Unary(op), vec![x], dt, sh)
    }

    /// Elementwise binary op on two nodes of the same type.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        let (dt, sh) = self.ty(a);
        let sh = sh.clone();
        self.push(Op::Binary(op), vec![a, b], dt, sh)
    }

    /// `a + b`
    pub fn add2(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Add, a, b)
    }

    /// `a - b`
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Sub, a, b)
    }

    /// `a * b`
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Mul, a, b)
    }

    /// `a / b`
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.binary(BinaryOp::Div, a, b)
    }

    /// `-x`
    pub fn neg(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * c` for a scalar constant `c`, broadcast to `x`'s shape.
    pub fn scale(&mut self, x: NodeId, c: f64) -> Result<NodeId, GraphError> {
        let k = self.constant_like(c, x)?;
        self.mul(x, k)
    }

    /// Elementwise comparison.
    pub fn compare(&mut self, op: CmpOp, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        let sh = self.ty(a).1.clone();
        self.push(Op::Compare(op), vec![a, b], DType::Bool, sh)
    }

    /// `select(cond, a, b)`.
    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        let (dt, sh) = self.ty(a);
        let sh = sh.clone();
        self.push(Op::Select, vec![cond, a, b], dt, sh)
    }

    /// Conversion to `dtype` (returns `x` itself when it already has it).
    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Result<NodeId, GraphError> {
        let (dt, sh) = self.ty(x);
        if dt == dtype {
            return Ok(x);
        }
        let sh = sh.clone();
        self.push(Op::Cast, vec![x], dtype, sh)
    }

    fn reduced_shape(&self, x: NodeId, axes: &[u8]) -> Shape {
        let sh = self.ty(x).1;
        Shape(
            (0..sh.rank())
                .filter(|i| !axes.contains(&(*i as u8)))
                .map(|i| sh.0[i])
                .collect(),
        )
    }

    /// Sum over `axes` (any order; duplicates removed). No axes: returns `x`.
    pub fn sum(&mut self, x: NodeId, axes: &[u8]) -> Result<NodeId, GraphError> {
        self.reduction(x, axes, |axes| Op::Sum { axes })
    }

    /// A reduction over `axes` (sorted and deduplicated for the op); no axes: `x`.
    fn reduction(
        &mut self,
        x: NodeId,
        axes: &[u8],
        op: fn(Vec<u8>) -> Op,
    ) -> Result<NodeId, GraphError> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        if axes.is_empty() {
            return Ok(x);
        }
        let dt = self.ty(x).0;
        let sh = self.reduced_shape(x, &axes);
        self.push(op(axes), vec![x], dt, sh)
    }

    /// Sum of every element (a scalar).
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        let r = self.ty(x).1.rank() as u8;
        let axes: Vec<u8> = (0..r).collect();
        self.sum(x, &axes)
    }

    /// Maximum over `axes` (any order; duplicates removed). No axes: returns `x`.
    pub fn reduce_max(&mut self, x: NodeId, axes: &[u8]) -> Result<NodeId, GraphError> {
        self.reduction(x, axes, |axes| Op::ReduceMax { axes })
    }

    /// Numpy broadcast to `shape` (returns `x` when the shape already matches).
    pub fn broadcast(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId, GraphError> {
        let shape = shape.into();
        let (dt, sh) = self.ty(x);
        if *sh == shape {
            return Ok(x);
        }
        self.push(Op::Broadcast, vec![x], dt, shape)
    }

    /// Reshape (returns `x` when the shape already matches).
    pub fn reshape(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId, GraphError> {
        let shape = shape.into();
        let (dt, sh) = self.ty(x);
        if *sh == shape {
            return Ok(x);
        }
        self.push(Op::Reshape, vec![x], dt, shape)
    }

    /// Axis permutation (identity permutations return `x`).
    pub fn transpose(&mut self, x: NodeId, perm: &[u8]) -> Result<NodeId, GraphError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p as usize)
            && perm.len() == self.ty(x).1.rank()
        {
            return Ok(x);
        }
        let (dt, sh) = self.ty(x);
        let out: Vec<usize> = perm
            .iter()
            .map(|&p| sh.0.get(p as usize).copied().unwrap_or(0))
            .collect();
        self.push(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            vec![x],
            dt,
            Shape(out),
        )
    }

    /// `len` elements `start, start+step, ...` along `axis`.
    pub fn slice(
        &mut self,
        x: NodeId,
        axis: u8,
        start: usize,
        len: usize,
        step: usize,
    ) -> Result<NodeId, GraphError> {
        self.strided(Op::Slice { axis, start, step }, x, len)
    }

    /// The adjoint of [`Graph::slice`]: `x` placed into zeros of length `full` along `axis`.
    pub fn pad(
        &mut self,
        x: NodeId,
        axis: u8,
        start: usize,
        step: usize,
        full: usize,
    ) -> Result<NodeId, GraphError> {
        self.strided(Op::Pad { axis, start, step }, x, full)
    }

    /// A `Slice` or `Pad` whose result has `len` elements along its axis;
    /// the identity (start 0, step 1, same length) returns `x`.
    fn strided(&mut self, op: Op, x: NodeId, len: usize) -> Result<NodeId, GraphError> {
        let (Op::Slice { axis, start, step } | Op::Pad { axis, start, step }) = op else {
            unreachable!("strided builds slices and pads only")
        };
        let (dt, sh) = self.ty(x);
        let mut out = sh.clone();
        if (axis as usize) < out.rank() {
            if start == 0 && step == 1 && len == out.0[axis as usize] {
                return Ok(x);
            }
            out.0[axis as usize] = len;
        }
        self.push(op, vec![x], dt, out)
    }

    /// Concatenation along `axis` (a single argument is returned as is).
    pub fn concat(&mut self, xs: &[NodeId], axis: u8) -> Result<NodeId, GraphError> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        let first = xs.first().ok_or_else(|| GraphError::Invalid {
            op: "concat",
            msg: "needs at least one argument".into(),
        })?;
        let (dt, sh) = self.ty(*first);
        let mut out = sh.clone();
        if (axis as usize) < out.rank() {
            out.0[axis as usize] = xs
                .iter()
                .map(|&x| self.ty(x).1 .0.get(axis as usize).copied().unwrap_or(0))
                .fold(0usize, usize::saturating_add);
        }
        self.push(Op::Concat { axis }, xs.to_vec(), dt, out)
    }

    /// Matrix product.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        let (dt, sa) = self.ty(a);
        let m = sa.0.first().copied().unwrap_or(0);
        let n = self.ty(b).1 .0.get(1).copied().unwrap_or(0);
        self.push(Op::MatMul, vec![a, b], dt, Shape(vec![m, n]))
    }

    /// Numpy-style binary op: broadcasts both operands to their common shape first.
    pub fn binary_bcast(
        &mut self,
        op: BinaryOp,
        a: NodeId,
        b: NodeId,
    ) -> Result<NodeId, GraphError> {
        let (sa, sb) = (self.ty(a).1.clone(), self.ty(b).1.clone());
        let out = sa.broadcast_with(&sb).ok_or_else(|| GraphError::Invalid {
            op: op.name(),
            msg: format!("shapes {sa} and {sb} do not broadcast"),
        })?;
        let a = self.broadcast(a, out.clone())?;
        let b = self.broadcast(b, out)?;
        self.binary(op, a, b)
    }

    /// Copies the nodes reachable from `roots` into `dst`, mapping leaves
    /// through `leaf` (which may return a replacement node in `dst`) and
    /// rebuilding every other node. Returns the map from old to new ids
    /// (`None` for nodes not reachable). Hash-consing in `dst` merges
    /// duplicates, which is the CSE pass; unreachable nodes are dropped,
    /// which is the DCE pass.
    pub fn copy_into(
        &self,
        dst: &mut Graph,
        roots: &[NodeId],
        mut leaf: impl FnMut(&mut Graph, NodeId, &Node) -> Result<NodeId, GraphError>,
    ) -> Result<Vec<Option<NodeId>>, GraphError> {
        let live = self.reachable(roots);
        let mut map: Vec<Option<NodeId>> = vec![None; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let new = if n.op.is_leaf() {
                leaf(dst, NodeId(i as u32), n)?
            } else {
                let args = n
                    .args
                    .iter()
                    .map(|a| map[a.index()].expect("a live node's arguments are live and precede it (Graph::add checks), so they are copied first"))
                    .collect();
                dst.add(Node {
                    op: n.op.clone(),
                    args,
                    dtype: n.dtype,
                    shape: n.shape.clone(),
                })?
            };
            map[i] = Some(new);
        }
        Ok(map)
    }

    /// Marks every node reachable from `roots` (walking arguments).
    pub fn reachable(&self, roots: &[NodeId]) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        for r in roots {
            live[r.index()] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for a in &self.nodes[i].args {
                    live[a.index()] = true;
                }
            }
        }
        live
    }

    /// For each node, whether it depends on any of `sources` (a source
    /// depends on itself).
    pub fn depends_on(&self, sources: &[NodeId]) -> Vec<bool> {
        let mut dep = vec![false; self.nodes.len()];
        for s in sources {
            dep[s.index()] = true;
        }
        for i in 0..self.nodes.len() {
            if !dep[i] && self.nodes[i].args.iter().any(|a| dep[a.index()]) {
                dep[i] = true;
            }
        }
        dep
    }

    /// The nodes reading any parameter slot.
    pub fn param_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.op, Op::Param(_)))
            .map(|(i, _)| NodeId(i as u32))
            .collect()
    }

    /// The nodes whose values are only known at run time, in arena order:
    /// parameters and runtime data tensors ([`DataInfo::runtime`]).
    pub fn runtime_leaves(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| match n.op {
                Op::Param(_) => true,
                Op::Data(d) => self.data[d.index()].runtime,
                _ => false,
            })
            .map(|(i, _)| NodeId(i as u32))
            .collect()
    }

    /// A new graph holding only what the outputs need, with duplicates
    /// merged and data/parameter tables kept (data tensors no longer read
    /// are dropped and renumbered).
    pub fn compacted(&self) -> Result<Graph, GraphError> {
        let mut dst = Graph::new();
        dst.params = self.params.clone();
        let roots: Vec<NodeId> = self.outputs.iter().map(|(_, n)| *n).collect();
        let mut data_map: HashMap<DataId, DataId> = HashMap::new();
        let map = self.copy_into(&mut dst, &roots, |g, _, n| match &n.op {
            Op::Data(d) => {
                let nd = match data_map.get(d) {
                    Some(nd) => *nd,
                    None => {
                        let nd = g.add_data_info(self.data[d.index()].clone());
                        data_map.insert(*d, nd);
                        nd
                    }
                };
                g.data_node(nd)
            }
            _ => g.add(n.clone()),
        })?;
        for (name, o) in &self.outputs {
            dst.set_output(
                name.clone(),
                map[o.index()].expect("outputs are the roots of copy_into, so they are copied"),
            );
        }
        Ok(dst)
    }
}
