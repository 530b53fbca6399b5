//! The e-graph side of the elementwise optimiser: the language, the
//! analysis (constant folding and facts for guards), the cost function, and
//! the conversions between graph regions and e-graphs.
//!
//! A region is a connected set of elementwise graph nodes (they all share
//! one shape). Everything a region reads from outside (parameters, data,
//! reductions, broadcasts, ...) becomes an opaque [`Ew::Leaf`]; splatted
//! constants become [`Ew::Const`] literals so the analysis can fold them.
//! After rewriting, the cheapest term of every root class is picked (by
//! [`EwCost`], counting shared terms once, see [`extract`]) and
//! materialised into a fresh hash-consed graph.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crux_ir::graph::{BinaryOp, CmpOp, DType, Graph, Node, NodeId, Op, Shape, UnaryOp};
use egg::{Analysis, CostFunction, DidMerge, EGraph, Extractor, FromOp, FromOpError, Id, Language};

use super::{Extraction, OptimiseError};

/// One e-node of an elementwise region.
///
/// Ops carry the IR's own op enums so conversion is one arm per variant and
/// the interpreter's `apply` functions give the folding semantics. Leaves
/// and constants carry their dtype so every class has a known dtype without
/// consulting the original graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Ew {
    /// A value computed outside the region: the id of its node in the
    /// original graph.
    Leaf {
        /// `NodeId` in the source graph.
        node: u32,
        /// Its dtype.
        dtype: DType,
    },
    /// A splatted constant: the bits of an f64 already rounded to `dtype`.
    Const {
        /// `f64::to_bits` of the value.
        bits: u64,
        /// Its dtype.
        dtype: DType,
    },
    /// Elementwise unary op.
    Unary(UnaryOp, [Id; 1]),
    /// Elementwise binary op.
    Binary(BinaryOp, [Id; 2]),
    /// Comparison (a bool class).
    Compare(CmpOp, [Id; 2]),
    /// `select(cond, a, b)`.
    Select([Id; 3]),
    /// Conversion to the given float dtype.
    Cast(DType, [Id; 1]),
}

impl Ew {
    /// A constant of `dtype`, rounded the way the interpreter rounds.
    pub(crate) fn constant(value: f64, dtype: DType) -> Ew {
        Ew::Const {
            bits: dtype.round(value).to_bits(),
            dtype,
        }
    }
}

impl Language for Ew {
    // The node with its children zeroed: exact per operator (so e-matching
    // looks only at classes holding that very op), and contiguous in the
    // derived order, which egg's sorted-node search relies on.
    type Discriminant = Ew;

    fn discriminant(&self) -> Ew {
        self.map_children(|_| Id::from(0))
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            Ew::Leaf { .. } | Ew::Const { .. } => &[],
            Ew::Unary(_, c) | Ew::Cast(_, c) => c,
            Ew::Binary(_, c) | Ew::Compare(_, c) => c,
            Ew::Select(c) => c,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Ew::Leaf { .. } | Ew::Const { .. } => &mut [],
            Ew::Unary(_, c) | Ew::Cast(_, c) => c,
            Ew::Binary(_, c) | Ew::Compare(_, c) => c,
            Ew::Select(c) => c,
        }
    }
}

/// Operator names are the graph text format's; leaves print as
/// `$node:dtype`, constants as their value (with `:f32` / `:bool` unless f64).
impl fmt::Display for Ew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ew::Leaf { node, dtype } => write!(f, "${node}:{dtype}"),
            Ew::Const { bits, dtype } => {
                let v = f64::from_bits(*bits);
                match dtype {
                    DType::F64 => write!(f, "{v:?}"),
                    _ => write!(f, "{v:?}:{dtype}"),
                }
            }
            Ew::Unary(op, _) => f.write_str(op.name()),
            Ew::Binary(op, _) => f.write_str(op.name()),
            Ew::Compare(op, _) => f.write_str(op.name()),
            Ew::Select(_) => f.write_str("select"),
            Ew::Cast(dt, _) => write!(f, "cast.{dt}"),
        }
    }
}

/// Parses what [`Display`](fmt::Display) prints; a bare number is an f64
/// constant (rules retype constants to the class they rewrite).
impl FromOp for Ew {
    type Error = FromOpError;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        let fail = |children: Vec<Id>| Err(FromOpError::new(op, children));
        match children.len() {
            0 => {
                if let Some(rest) = op.strip_prefix('$') {
                    let parsed = rest
                        .split_once(':')
                        .and_then(|(n, d)| Some((n.parse().ok()?, DType::from_name(d)?)));
                    return match parsed {
                        Some((node, dtype)) => Ok(Ew::Leaf { node, dtype }),
                        None => fail(children),
                    };
                }
                let (value, dtype) = match op.split_once(':') {
                    Some((v, d)) => (v, DType::from_name(d)),
                    None => (op, Some(DType::F64)),
                };
                match (value.parse::<f64>(), dtype) {
                    (Ok(v), Some(dt)) => Ok(Ew::constant(v, dt)),
                    _ => fail(children),
                }
            }
            1 => {
                let c = [children[0]];
                if let Some(u) = UnaryOp::ALL.iter().find(|u| u.name() == op) {
                    return Ok(Ew::Unary(*u, c));
                }
                match op.strip_prefix("cast.").and_then(DType::from_name) {
                    Some(dt) if dt.is_float() => Ok(Ew::Cast(dt, c)),
                    _ => fail(children),
                }
            }
            2 => {
                let c = [children[0], children[1]];
                if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == op) {
                    return Ok(Ew::Binary(*b, c));
                }
                match CmpOp::ALL.iter().find(|k| k.name() == op) {
                    Some(k) => Ok(Ew::Compare(*k, c)),
                    None => fail(children),
                }
            }
            3 if op == "select" => Ok(Ew::Select([children[0], children[1], children[2]])),
            _ => fail(children),
        }
    }
}

/// Properties of every element of a class, whatever the parameter values.
///
/// Guards read these instead of the syntax: `x - x → 0` needs `finite`,
/// which a parameter never has (it may be inf or NaN) but a constant, a
/// select between constants or finite data has. Each flag is a proof;
/// `false` only means "not known". Signed zeros are tracked because they
/// matter downstream (`1 / -0 = -inf`): `x + 0 → x` needs `not_neg_zero`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Facts {
    /// Never NaN or ±inf.
    pub finite: bool,
    /// Never NaN.
    pub not_nan: bool,
    /// Never +0 or -0 (NaN allowed).
    pub nonzero: bool,
    /// Never `< 0` (NaN and -0 allowed), so in particular never -inf.
    pub not_negative: bool,
    /// Never -0.
    pub not_neg_zero: bool,
}

impl Facts {
    /// The facts of a known value.
    pub(crate) fn of_value(v: f64) -> Facts {
        Facts {
            finite: v.is_finite(),
            not_nan: !v.is_nan(),
            nonzero: v != 0.0,
            not_negative: v >= 0.0 || v.is_nan(),
            not_neg_zero: v.to_bits() != (-0.0f64).to_bits(),
        }
    }

    /// The facts holding for every value of a stored tensor.
    pub(crate) fn of_values(vs: &[f64]) -> Facts {
        vs.iter().fold(
            Facts {
                finite: true,
                not_nan: true,
                nonzero: true,
                not_negative: true,
                not_neg_zero: true,
            },
            |f, &v| f.and(Facts::of_value(v)),
        )
    }

    /// Facts of both (e.g. of `select(c, a, b)`: either branch may be taken).
    fn and(self, o: Facts) -> Facts {
        Facts {
            finite: self.finite && o.finite,
            not_nan: self.not_nan && o.not_nan,
            nonzero: self.nonzero && o.nonzero,
            not_negative: self.not_negative && o.not_negative,
            not_neg_zero: self.not_neg_zero && o.not_neg_zero,
        }
        .closed()
    }

    /// Facts of either (two proofs about the same value).
    fn or(self, o: Facts) -> Facts {
        Facts {
            finite: self.finite || o.finite,
            not_nan: self.not_nan || o.not_nan,
            nonzero: self.nonzero || o.nonzero,
            not_negative: self.not_negative || o.not_negative,
            not_neg_zero: self.not_neg_zero || o.not_neg_zero,
        }
        .closed()
    }

    /// Adds what the flags imply.
    fn closed(mut self) -> Facts {
        self.not_nan |= self.finite;
        self.not_neg_zero |= self.nonzero;
        self
    }

    /// Strictly positive (`> 0`, not NaN).
    pub(crate) fn positive(&self) -> bool {
        self.not_negative && self.nonzero && self.not_nan
    }

    /// `>= +0` or NaN: never negative, never -0.
    pub(crate) fn plus_or_nan(&self) -> bool {
        self.not_negative && self.not_neg_zero
    }
}

/// What the analysis knows about one e-class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClassData {
    /// Element type (casts change it, so it is tracked per class).
    pub dtype: DType,
    /// The value, when every element is the same known constant
    /// (already rounded to `dtype`, exactly as the interpreter computes it).
    pub value: Option<f64>,
    /// Facts for guards.
    pub facts: Facts,
}

impl ClassData {
    fn constant(v: f64, dtype: DType) -> ClassData {
        ClassData {
            dtype,
            value: Some(v),
            facts: Facts::of_value(v),
        }
    }

    fn unknown(dtype: DType, facts: Facts) -> ClassData {
        ClassData {
            dtype,
            value: None,
            facts: facts.closed(),
        }
    }

    /// Bitwise identity (NaN values compare by bits).
    fn same(&self, o: &ClassData) -> bool {
        self.dtype == o.dtype
            && self.value.map(f64::to_bits) == o.value.map(f64::to_bits)
            && self.facts == o.facts
    }
}

/// Constant folding and facts for the elementwise language.
#[derive(Debug, Default)]
pub(crate) struct EwAnalysis {
    /// Facts of leaves known before rewriting (data tensors are stored in
    /// the graph, so their values can be inspected), keyed by source node.
    pub leaf_facts: HashMap<u32, Facts>,
}

fn unary_facts(op: UnaryOp, x: Facts) -> Facts {
    let mut f = Facts::default();
    match op {
        UnaryOp::Neg => {
            f.finite = x.finite;
            f.not_nan = x.not_nan;
            f.nonzero = x.nonzero;
        }
        UnaryOp::Abs => {
            f = Facts {
                not_negative: true,
                not_neg_zero: true,
                ..x
            }
        }
        UnaryOp::Sign => {
            // sign(±0) = +0.
            f.not_nan = x.not_nan;
            f.finite = x.not_nan;
            f.nonzero = x.nonzero;
            f.not_negative = x.not_negative;
            f.not_neg_zero = true;
        }
        UnaryOp::Sqrt => {
            // sqrt gives NaN, ±0 (the sign of its argument) or a positive number.
            f.not_negative = true;
            f.finite = x.finite && x.not_negative;
            f.nonzero = x.positive();
            f.not_nan = x.not_nan && x.not_negative;
            f.not_neg_zero = x.not_neg_zero;
        }
        UnaryOp::Recip => {
            // 1 / -0 = -inf; 1 / -inf = -0.
            f.not_negative = x.plus_or_nan();
            f.not_neg_zero = x.not_negative;
            f.nonzero = x.finite;
        }
        UnaryOp::Exp => {
            f.not_negative = true;
            f.not_nan = x.not_nan;
            f.not_neg_zero = true;
        }
        UnaryOp::Expm1 | UnaryOp::Log1p => {
            // Zero only at ±0, with its sign.
            f.not_neg_zero = x.not_neg_zero;
        }
        UnaryOp::Log | UnaryOp::Cos => {
            // log(1) = +0; cos is never exactly 0.
            f.not_neg_zero = true;
            f.finite = op == UnaryOp::Cos && x.finite;
        }
        UnaryOp::Sigmoid => {
            f.not_negative = true;
            f.not_nan = x.not_nan;
            f.finite = x.not_nan;
            f.not_neg_zero = true;
        }
        UnaryOp::Softplus => {
            // softplus(+inf) = +inf.
            f.not_negative = true;
            f.not_nan = x.not_nan;
            f.finite = x.finite;
            f.not_neg_zero = true;
        }
        UnaryOp::Tanh => {
            f.not_nan = x.not_nan;
            f.finite = x.not_nan;
        }
        UnaryOp::Sin => {
            f.finite = x.finite;
        }
        UnaryOp::Tan => {}
    }
    f
}

fn binary_facts(op: BinaryOp, a: Facts, b: Facts, same_class: bool) -> Facts {
    let mut f = Facts::default();
    match op {
        BinaryOp::Add => {
            // Overflow gives ±inf, never NaN; only -0 + -0 is -0.
            f.not_nan = a.finite && b.finite;
            f.not_negative = a.not_negative && b.not_negative;
            f.not_neg_zero = a.not_neg_zero || b.not_neg_zero;
        }
        BinaryOp::Sub => {
            // Only -0 - +0 is -0.
            f.not_neg_zero = a.not_neg_zero;
        }
        BinaryOp::Mul => {
            f.not_nan = a.finite && b.finite;
            f.not_negative = same_class || (a.not_negative && b.not_negative);
            f.not_neg_zero = same_class || (a.plus_or_nan() && b.plus_or_nan());
        }
        BinaryOp::Div => {
            f.not_negative = a.not_negative && b.plus_or_nan();
            f.not_neg_zero = a.plus_or_nan() && b.plus_or_nan();
        }
        BinaryOp::Max | BinaryOp::Min => {
            f.not_nan = a.not_nan && b.not_nan;
            f.finite = a.finite && b.finite;
            f.not_negative = if op == BinaryOp::Max {
                a.not_negative || b.not_negative
            } else {
                a.not_negative && b.not_negative
            };
            // max(-0, +0) is -0: either argument may be returned.
            f.not_neg_zero = a.not_neg_zero && b.not_neg_zero;
        }
        BinaryOp::Pow => {}
    }
    f
}

impl Analysis<Ew> for EwAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut EGraph<Ew, Self>, enode: &Ew, _id: Id) -> ClassData {
        let d = |i: Id| egraph[i].data;
        match *enode {
            Ew::Leaf { node, dtype } => {
                let facts = egraph
                    .analysis
                    .leaf_facts
                    .get(&node)
                    .copied()
                    .unwrap_or_default();
                ClassData::unknown(dtype, facts)
            }
            Ew::Const { bits, dtype } => ClassData::constant(f64::from_bits(bits), dtype),
            Ew::Unary(op, [a]) => {
                let a = d(a);
                match a.value {
                    Some(v) => ClassData::constant(a.dtype.round(op.apply(v)), a.dtype),
                    None => ClassData::unknown(a.dtype, unary_facts(op, a.facts)),
                }
            }
            Ew::Binary(op, [x, y]) => {
                let (a, b) = (d(x), d(y));
                match (a.value, b.value) {
                    (Some(u), Some(v)) => {
                        ClassData::constant(a.dtype.round(op.apply(u, v)), a.dtype)
                    }
                    _ => {
                        let same = egraph.find(x) == egraph.find(y);
                        ClassData::unknown(a.dtype, binary_facts(op, a.facts, b.facts, same))
                    }
                }
            }
            Ew::Compare(op, [x, y]) => {
                let (a, b) = (d(x), d(y));
                // A bool is +0 or 1.
                let facts = Facts {
                    finite: true,
                    not_nan: true,
                    nonzero: false,
                    not_negative: true,
                    not_neg_zero: true,
                };
                match (a.value, b.value) {
                    (Some(u), Some(v)) => {
                        ClassData::constant(if op.apply(u, v) { 1.0 } else { 0.0 }, DType::Bool)
                    }
                    _ => ClassData::unknown(DType::Bool, facts),
                }
            }
            Ew::Select([c, x, y]) => {
                let (c, a, b) = (d(c), d(x), d(y));
                let value = match c.value {
                    Some(cv) => {
                        if cv != 0.0 {
                            a.value
                        } else {
                            b.value
                        }
                    }
                    None => match (a.value, b.value) {
                        (Some(u), Some(v)) if u.to_bits() == v.to_bits() => Some(u),
                        _ => None,
                    },
                };
                match value {
                    Some(v) => ClassData::constant(v, a.dtype),
                    None => {
                        let facts = match c.value {
                            Some(cv) if cv != 0.0 => a.facts,
                            Some(_) => b.facts,
                            None => a.facts.and(b.facts),
                        };
                        ClassData::unknown(a.dtype, facts)
                    }
                }
            }
            Ew::Cast(dt, [x]) => {
                let a = d(x);
                match a.value {
                    Some(v) => ClassData::constant(dt.round(v), dt),
                    None => {
                        let facts = if dt == DType::F64 {
                            // Widening is exact.
                            a.facts
                        } else {
                            // Narrowing may overflow to inf or underflow to ±0.
                            Facts {
                                not_nan: a.facts.not_nan,
                                not_negative: a.facts.not_negative,
                                not_neg_zero: a.facts.plus_or_nan(),
                                ..Facts::default()
                            }
                        };
                        ClassData::unknown(dt, facts)
                    }
                }
            }
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let before = *a;
        // The dtype of a class never changes: rules only equate terms of one
        // dtype. Two different constants can only meet through a rule that
        // changes rounding (stable forms); the existing value is kept.
        if a.value.is_none() {
            a.value = b.value;
        }
        a.facts = a.facts.or(b.facts);
        DidMerge(!a.same(&before), !a.same(&b))
    }

    fn modify(egraph: &mut EGraph<Ew, Self>, id: Id) {
        let data = egraph[id].data;
        if let (Some(v), true) = (data.value, data.dtype.is_float()) {
            let c = egraph.add(Ew::Const {
                bits: v.to_bits(),
                dtype: data.dtype,
            });
            egraph.union(id, c);
        }
    }
}

/// Extraction cost: transcendental functions 20, divisions and square
/// roots 4, other ops 1, leaves and constants free.
///
/// Bool constants cannot be written back (graph constants are float), so
/// they cost more than any real term and are never picked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EwCost;

/// A term's cost: the weight, then, to break ties, how many plain `log`
/// and `exp` it evaluates (so `log1p(x) + 0` beats `log(1 + x)`, which
/// costs the same but loses digits near 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TermCost {
    /// Sum of [`op_cost`].
    pub weight: u64,
    /// Number of `log` and `exp` nodes.
    pub unstable: u64,
}

impl TermCost {
    fn of(node: &Ew) -> TermCost {
        TermCost {
            weight: op_cost(node),
            unstable: u64::from(matches!(node, Ew::Unary(UnaryOp::Log | UnaryOp::Exp, _))),
        }
    }

    fn plus(self, o: TermCost) -> TermCost {
        TermCost {
            weight: self.weight.saturating_add(o.weight),
            unstable: self.unstable.saturating_add(o.unstable),
        }
    }
}

/// Cost of a term that cannot be materialised.
const UNMATERIALISABLE: u64 = 1 << 40;

/// The cost of one e-node, its children excluded.
pub(crate) fn op_cost(node: &Ew) -> u64 {
    match node {
        Ew::Leaf { .. } => 0,
        Ew::Const { dtype, .. } => {
            if dtype.is_float() {
                0
            } else {
                UNMATERIALISABLE
            }
        }
        Ew::Unary(op, _) => {
            if op.is_transcendental() {
                20
            } else if matches!(op, UnaryOp::Sqrt | UnaryOp::Recip) {
                4
            } else {
                1
            }
        }
        Ew::Binary(op, _) => match op {
            BinaryOp::Pow => 20,
            BinaryOp::Div => 4,
            _ => 1,
        },
        Ew::Compare(..) | Ew::Select(_) | Ew::Cast(..) => 1,
    }
}

impl CostFunction<Ew> for EwCost {
    type Cost = TermCost;

    fn cost<C>(&mut self, enode: &Ew, mut costs: C) -> TermCost
    where
        C: FnMut(Id) -> TermCost,
    {
        enode.fold(TermCost::of(enode), |sum, id| sum.plus(costs(id)))
    }
}

/// A maximal connected set of live elementwise nodes.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    /// Its nodes in arena (topological) order.
    pub nodes: Vec<NodeId>,
    /// The nodes read from outside the region (by a non-elementwise node or
    /// as an output), in arena order.
    pub roots: Vec<NodeId>,
    /// The shape every node of the region has.
    pub shape: Shape,
}

/// The regions of a graph and which region each node is in.
#[derive(Clone, Debug)]
pub(crate) struct Regions {
    /// The regions, ordered by their first node.
    pub list: Vec<Region>,
    /// For each node of the graph, its region (`None` for non-elementwise
    /// and dead nodes).
    pub region_of: Vec<Option<usize>>,
}

fn uf_find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Splits the live elementwise nodes of `graph` into maximal regions.
pub(crate) fn find_regions(graph: &Graph) -> Regions {
    let n = graph.len();
    let outputs: Vec<NodeId> = graph.outputs().iter().map(|(_, o)| *o).collect();
    let live = graph.reachable(&outputs);
    let ew = |i: usize| live[i] && graph.nodes()[i].op.is_elementwise();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut used_outside = vec![false; n];
    for (i, node) in graph.nodes().iter().enumerate() {
        if !live[i] {
            continue;
        }
        for a in &node.args {
            if ew(a.index()) {
                if ew(i) {
                    let (ra, ri) = (uf_find(&mut parent, a.index()), uf_find(&mut parent, i));
                    parent[ra.max(ri)] = ra.min(ri);
                } else {
                    used_outside[a.index()] = true;
                }
            }
        }
    }
    for o in &outputs {
        used_outside[o.index()] = true;
    }
    let mut region_of = vec![None; n];
    let mut by_rep: HashMap<usize, usize> = HashMap::new();
    let mut list: Vec<Region> = Vec::new();
    for i in 0..n {
        if !ew(i) {
            continue;
        }
        let rep = uf_find(&mut parent, i);
        let r = *by_rep.entry(rep).or_insert_with(|| {
            list.push(Region {
                nodes: Vec::new(),
                roots: Vec::new(),
                shape: graph.nodes()[i].shape.clone(),
            });
            list.len() - 1
        });
        region_of[i] = Some(r);
        list[r].nodes.push(NodeId(i as u32));
        if used_outside[i] {
            list[r].roots.push(NodeId(i as u32));
        }
    }
    Regions { list, region_of }
}

/// Loads region `r` into a fresh e-graph. Returns it with the class of
/// every root, in the order of `Region::roots`.
pub(crate) fn to_egraph(
    graph: &Graph,
    regions: &Regions,
    r: usize,
) -> (EGraph<Ew, EwAnalysis>, Vec<Id>) {
    let region = &regions.list[r];
    let mut eg: EGraph<Ew, EwAnalysis> = EGraph::new(EwAnalysis::default());
    let mut class_of: HashMap<NodeId, Id> = HashMap::new();
    for &id in &region.nodes {
        let node = graph.node(id);
        let mut args = Vec::with_capacity(node.args.len());
        for &a in &node.args {
            let class = match class_of.get(&a) {
                Some(c) => *c,
                None => {
                    let an = graph.node(a);
                    let leaf = match an.op {
                        Op::Const(bits) => Ew::Const {
                            bits,
                            dtype: an.dtype,
                        },
                        Op::Data(d) => {
                            // A runtime input's stored values are only its
                            // defaults: nothing is known about it.
                            let info = &graph.data()[d.index()];
                            let facts = if info.runtime {
                                Facts::default()
                            } else {
                                Facts::of_values(&info.value.data)
                            };
                            eg.analysis.leaf_facts.insert(a.0, facts);
                            Ew::Leaf {
                                node: a.0,
                                dtype: an.dtype,
                            }
                        }
                        _ => Ew::Leaf {
                            node: a.0,
                            dtype: an.dtype,
                        },
                    };
                    eg.add(leaf)
                }
            };
            args.push(class);
        }
        let enode = match node.op {
            Op::Unary(op) => Ew::Unary(op, [args[0]]),
            Op::Binary(op) => Ew::Binary(op, [args[0], args[1]]),
            Op::Compare(op) => Ew::Compare(op, [args[0], args[1]]),
            Op::Select => Ew::Select([args[0], args[1], args[2]]),
            Op::Cast => Ew::Cast(node.dtype, [args[0]]),
            // Regions hold only elementwise ops.
            _ => unreachable!("non-elementwise node in a region"),
        };
        let class = eg.add(enode);
        class_of.insert(id, class);
    }
    eg.rebuild();
    let roots = region.roots.iter().map(|r| eg.find(class_of[r])).collect();
    (eg, roots)
}

/// The chosen term of every class a region's roots need.
#[derive(Clone, Debug)]
pub(crate) struct Extracted {
    /// Chosen e-node (children canonical) and dtype of each needed class;
    /// empty when the region is kept as it was.
    pub best: HashMap<Id, (Ew, DType)>,
    /// The class of each root node of the region.
    pub root_class: HashMap<NodeId, Id>,
    /// The region's shape.
    pub shape: Shape,
    /// Which candidate was chosen.
    pub how: Extraction,
    /// DAG cost (every node once) of the region as it was.
    pub cost_before: TermCost,
    /// DAG cost of the chosen candidate.
    pub cost_after: TermCost,
}

/// The cost of a graph node as a term (nothing for non-elementwise ops,
/// which are leaves of a region).
fn graph_op_cost(node: &Node) -> TermCost {
    let z = Id::from(0);
    let e = match node.op {
        Op::Unary(op) => Ew::Unary(op, [z]),
        Op::Binary(op) => Ew::Binary(op, [z, z]),
        Op::Compare(op) => Ew::Compare(op, [z, z]),
        Op::Select => Ew::Select([z, z, z]),
        Op::Cast => Ew::Cast(node.dtype, [z]),
        _ => return TermCost::default(),
    };
    TermCost::of(&e)
}

/// The e-nodes a selection uses from `roots` and their DAG cost (every
/// class counted once, as the rebuilt graph will hold it). `None` when the
/// selection is incomplete, cyclic or picks a term that cannot be written
/// back.
fn walk(
    eg: &EGraph<Ew, EwAnalysis>,
    roots: &[Id],
    pick: impl Fn(Id) -> Option<Ew>,
) -> Option<(TermCost, HashMap<Id, Ew>)> {
    let mut chosen: HashMap<Id, Ew> = HashMap::new();
    // false: on the current path; true: finished.
    let mut state: HashMap<Id, bool> = HashMap::new();
    let mut stack: Vec<(Id, bool)> = roots.iter().map(|&r| (eg.find(r), false)).collect();
    let mut cost = TermCost::default();
    while let Some((c, expanded)) = stack.pop() {
        if expanded {
            state.insert(c, true);
            continue;
        }
        match state.get(&c) {
            Some(true) => continue,
            Some(false) => return None,
            None => {}
        }
        let node = pick(c)?.map_children(|k| eg.find(k));
        let own = TermCost::of(&node);
        if own.weight >= UNMATERIALISABLE {
            return None;
        }
        cost = cost.plus(own);
        state.insert(c, false);
        stack.push((c, true));
        stack.extend(node.children().iter().map(|&k| (k, false)));
        chosen.insert(c, node);
    }
    Some((cost, chosen))
}

/// Most set entries the sharing-aware extraction may merge before giving
/// up (it is quadratic on long chains; egg's tree extraction then serves).
const DAG_BUDGET: usize = 4_000_000;

fn merge_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Greedy extraction that counts a shared class once: the cost of a node
/// is the summed [`op_cost`] of the set of classes its term needs (the
/// "greedy DAG" heuristic of extraction-gym). egg's extractor sums tree
/// costs instead, so it may trade a shared subterm for a private one that
/// is cheaper per use but duplicates work. `None` when over budget.
fn greedy_dag(eg: &EGraph<Ew, EwAnalysis>) -> Option<HashMap<Id, Ew>> {
    let ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let n = ids.len();
    let mut nodes: Vec<Vec<(Ew, Vec<usize>)>> = Vec::with_capacity(n);
    for &c in &ids {
        let mut ns = Vec::with_capacity(eg[c].nodes.len());
        for e in &eg[c].nodes {
            let e = e.map_children(|k| eg.find(k));
            let kids = e
                .children()
                .iter()
                .map(|k| index.get(k).copied())
                .collect::<Option<Vec<usize>>>()?;
            ns.push((e, kids));
        }
        nodes.push(ns);
    }
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ns) in nodes.iter().enumerate() {
        for (_, kids) in ns {
            for &k in kids {
                parents[k].push(i);
            }
        }
    }
    for p in &mut parents {
        p.sort_unstable();
        p.dedup();
    }
    // Per class: (total, index of the chosen node, sorted classes needed).
    let mut best: Vec<Option<(TermCost, usize, Vec<u32>)>> = vec![None; n];
    let mut own = vec![TermCost::default(); n];
    let mut queue: std::collections::VecDeque<usize> = (0..n).collect();
    let mut queued = vec![true; n];
    let mut work = 0usize;
    while let Some(i) = queue.pop_front() {
        queued[i] = false;
        let mut cand: Option<(TermCost, usize, Vec<u32>)> = None;
        'nodes: for (j, (e, kids)) in nodes[i].iter().enumerate() {
            let mut set: Vec<u32> = Vec::new();
            for &k in kids {
                match &best[k] {
                    Some((_, _, s)) => {
                        set = merge_sorted(&set, s);
                        work += set.len();
                    }
                    None => continue 'nodes,
                }
            }
            // A term that needs its own class would be cyclic.
            let Err(pos) = set.binary_search(&(i as u32)) else {
                continue;
            };
            set.insert(pos, i as u32);
            let total = set
                .iter()
                .map(|&m| {
                    if m as usize == i {
                        TermCost::of(e)
                    } else {
                        own[m as usize]
                    }
                })
                .fold(TermCost::default(), TermCost::plus);
            if cand.as_ref().is_none_or(|c| total < c.0) {
                cand = Some((total, j, set));
            }
        }
        if work > DAG_BUDGET {
            return None;
        }
        if let Some(c) = cand {
            if best[i].as_ref().is_none_or(|b| c.0 < b.0) {
                own[i] = TermCost::of(&nodes[i][c.1].0);
                best[i] = Some(c);
                for &p in &parents[i] {
                    if !queued[p] {
                        queued[p] = true;
                        queue.push_back(p);
                    }
                }
            }
        }
    }
    Some(
        ids.iter()
            .enumerate()
            .filter_map(|(i, &c)| best[i].as_ref().map(|b| (c, nodes[i][b.1].0)))
            .collect(),
    )
}

/// Chooses the cheapest of three candidates by DAG cost (what the rebuilt
/// graph will actually compute): egg's tree-cost extraction, the
/// sharing-aware greedy extraction, and the region as it was. The last one
/// guarantees that a region never gets more expensive.
pub(crate) fn extract(
    graph: &Graph,
    eg: &EGraph<Ew, EwAnalysis>,
    region: &Region,
    roots: &[Id],
) -> Extracted {
    let roots: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    let cost_before = region
        .nodes
        .iter()
        .map(|&n| graph_op_cost(graph.node(n)))
        .fold(TermCost::default(), TermCost::plus);
    let ex = Extractor::new(eg, EwCost);
    let tree = walk(eg, &roots, |c| Some(*ex.find_best_node(c)));
    let dag = greedy_dag(eg).and_then(|m| walk(eg, &roots, |c| m.get(&c).copied()));
    let (mut how, mut cost_after, mut chosen) = (Extraction::Original, cost_before, HashMap::new());
    if let Some((cost, sel)) = tree {
        if cost <= cost_after {
            (how, cost_after, chosen) = (Extraction::Tree, cost, sel);
        }
    }
    if let Some((cost, sel)) = dag {
        if cost < cost_after || (cost == cost_after && how == Extraction::Original) {
            (how, cost_after, chosen) = (Extraction::Dag, cost, sel);
        }
    }
    let best = chosen
        .into_iter()
        .map(|(c, e)| (c, (e, eg[c].data.dtype)))
        .collect();
    let root_class = region
        .roots
        .iter()
        .zip(&roots)
        .map(|(&n, &c)| (n, c))
        .collect();
    Extracted {
        best,
        root_class,
        shape: region.shape.clone(),
        how,
        cost_before,
        cost_after,
    }
}

/// A value to materialise: an original node or an extracted class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Item {
    Orig(NodeId),
    Class(usize, Id),
}

/// Writes the optimised graph: every non-elementwise node is copied, every
/// region root is replaced by its extracted term.
///
/// Only what the outputs need is inserted, into a fresh hash-consed graph:
/// that is the DCE and CSE pass (CSE matters because egg's extractor
/// chooses per class, so a term shared by two roots is counted, but must
/// not be built, twice). Parameter and data tables are copied unchanged so
/// their ids stay valid.
pub(crate) fn from_extracted(
    graph: &Graph,
    regions: &Regions,
    ex: &[Extracted],
) -> Result<Graph, OptimiseError> {
    let mut b = Builder {
        graph,
        regions,
        ex,
        dst: Graph::new(),
        done: HashMap::new(),
        open: HashSet::new(),
    };
    for p in graph.params() {
        b.dst.add_param(p.name.clone(), p.dtype, p.shape.clone());
    }
    for d in graph.data() {
        b.dst.add_data_info(d.clone());
    }
    for (name, out) in graph.outputs() {
        let item = b.item_of(*out)?;
        let id = b.materialise(item)?;
        b.dst.set_output(name.clone(), id);
    }
    Ok(b.dst)
}

struct Builder<'a> {
    graph: &'a Graph,
    regions: &'a Regions,
    ex: &'a [Extracted],
    dst: Graph,
    done: HashMap<Item, NodeId>,
    open: HashSet<Item>,
}

impl Builder<'_> {
    fn item_of(&self, n: NodeId) -> Result<Item, OptimiseError> {
        match self.regions.region_of[n.index()] {
            None => Ok(Item::Orig(n)),
            Some(r) if self.ex[r].how == Extraction::Original => Ok(Item::Orig(n)),
            Some(r) => self.ex[r]
                .root_class
                .get(&n)
                .map(|c| Item::Class(r, *c))
                .ok_or_else(|| OptimiseError::Extraction {
                    region: r,
                    msg: format!("node {n} is read from outside its region but is not a root"),
                }),
        }
    }

    fn best(&self, r: usize, c: Id) -> Result<(Ew, DType), OptimiseError> {
        self.ex[r]
            .best
            .get(&c)
            .copied()
            .ok_or_else(|| OptimiseError::Extraction {
                region: r,
                msg: format!("class {c} was not extracted"),
            })
    }

    fn children(&self, item: Item) -> Result<Vec<Item>, OptimiseError> {
        match item {
            Item::Orig(n) => self
                .graph
                .node(n)
                .args
                .iter()
                .map(|&a| self.item_of(a))
                .collect(),
            Item::Class(r, c) => Ok(match self.best(r, c)?.0 {
                Ew::Leaf { node, .. } => vec![Item::Orig(NodeId(node))],
                e => e.children().iter().map(|&k| Item::Class(r, k)).collect(),
            }),
        }
    }

    /// Iterative post-order walk (graphs from AD are deep enough to
    /// overflow the stack if this recursed).
    fn materialise(&mut self, root: Item) -> Result<NodeId, OptimiseError> {
        let mut stack = vec![(root, false)];
        while let Some((item, expanded)) = stack.pop() {
            if self.done.contains_key(&item) {
                continue;
            }
            let kids = self.children(item)?;
            if expanded {
                let ids: Vec<NodeId> = kids.iter().map(|k| self.done[k]).collect();
                let id = self.build(item, ids)?;
                self.open.remove(&item);
                self.done.insert(item, id);
            } else {
                // An open item is an ancestor of this visit.
                if !self.open.insert(item) {
                    let region = match item {
                        Item::Class(r, _) => r,
                        Item::Orig(_) => usize::MAX,
                    };
                    return Err(OptimiseError::Extraction {
                        region,
                        msg: "the extracted terms form a cycle".into(),
                    });
                }
                stack.push((item, true));
                stack.extend(
                    kids.into_iter()
                        .rev()
                        .filter(|k| !self.done.contains_key(k))
                        .map(|k| (k, false)),
                );
            }
        }
        Ok(self.done[&root])
    }

    fn build(&mut self, item: Item, args: Vec<NodeId>) -> Result<NodeId, OptimiseError> {
        let (r, c) = match item {
            Item::Orig(n) => {
                let node = self.graph.node(n);
                return Ok(self.dst.add_canonical(Node {
                    op: node.op.clone(),
                    args,
                    dtype: node.dtype,
                    shape: node.shape.clone(),
                })?);
            }
            Item::Class(r, c) => (r, c),
        };
        let (e, dtype) = self.best(r, c)?;
        let op = match e {
            Ew::Leaf { .. } => return Ok(args[0]),
            Ew::Const { bits, .. } => Op::Const(bits),
            Ew::Unary(op, _) => Op::Unary(op),
            Ew::Binary(op, _) => Op::Binary(op),
            Ew::Compare(op, _) => Op::Compare(op),
            Ew::Select(_) => Op::Select,
            Ew::Cast(..) => Op::Cast,
        };
        Ok(self.dst.add(Node {
            op,
            args,
            dtype,
            shape: self.ex[r].shape.clone(),
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crux_ir::graph::GraphError;
    use egg::{RecExpr, Runner};

    #[test]
    fn display_and_from_op_round_trip() {
        let nodes = [
            Ew::Leaf {
                node: 7,
                dtype: DType::F32,
            },
            Ew::constant(0.5, DType::F64),
            Ew::constant(-1.5, DType::F32),
            Ew::constant(f64::NEG_INFINITY, DType::F64),
            Ew::Unary(UnaryOp::Log1p, [Id::from(0)]),
            Ew::Binary(BinaryOp::Pow, [Id::from(0), Id::from(1)]),
            Ew::Compare(CmpOp::Le, [Id::from(0), Id::from(1)]),
            Ew::Select([Id::from(0), Id::from(1), Id::from(2)]),
            Ew::Cast(DType::F32, [Id::from(0)]),
        ];
        for n in nodes {
            let op = n.to_string();
            let parsed = Ew::from_op(&op, n.children().to_vec()).expect("parses");
            assert_eq!(parsed, n, "{op}");
        }
        let e: RecExpr<Ew> = "(add (mul $0:f64 2) (cast.f64 (neg $1:f32)))"
            .parse()
            .expect("parses");
        assert_eq!(
            e.to_string(),
            "(add (mul $0:f64 2.0) (cast.f64 (neg $1:f32)))"
        );
        assert!(Ew::from_op("frobnicate", vec![Id::from(0)]).is_err());
        assert!(Ew::from_op("cast.bool", vec![Id::from(0)]).is_err());
    }

    #[test]
    fn folding_follows_the_interpreter_rounding() {
        // 0.1 + 0.2 in f32 is rounded after the add, exactly like the interpreter.
        let mut eg: EGraph<Ew, EwAnalysis> = EGraph::default();
        let a = eg.add(Ew::constant(0.1, DType::F32));
        let b = eg.add(Ew::constant(0.2, DType::F32));
        let s = eg.add(Ew::Binary(BinaryOp::Add, [a, b]));
        let e = eg.add(Ew::Unary(UnaryOp::Exp, [s]));
        let w = eg.add(Ew::Cast(DType::F64, [e]));
        eg.rebuild();
        let f32_sum = (0.1f32 as f64 + 0.2f32 as f64) as f32 as f64;
        assert_eq!(eg[s].data.value, Some(f32_sum));
        assert_eq!(eg[e].data.value, Some(DType::F32.round(f32_sum.exp())));
        assert_eq!(eg[w].data.dtype, DType::F64);
        // Folded classes hold their literal.
        let lit = eg
            .lookup(Ew::constant(f32_sum, DType::F32))
            .expect("literal added");
        assert_eq!(eg.find(lit), eg.find(s));
        // Comparisons fold to bool without a float literal.
        let lt = eg.add(Ew::Compare(CmpOp::Lt, [a, b]));
        eg.rebuild();
        assert_eq!(eg[lt].data.value, Some(1.0));
        assert_eq!(eg[lt].data.dtype, DType::Bool);
        assert!(eg[lt].nodes.iter().all(|n| !matches!(n, Ew::Const { .. })));
    }

    #[test]
    fn facts_come_from_values_not_syntax() {
        let mut eg: EGraph<Ew, EwAnalysis> = EGraph::default();
        let p = eg.add(Ew::Leaf {
            node: 0,
            dtype: DType::F64,
        });
        let two = eg.add(Ew::constant(2.0, DType::F64));
        let three = eg.add(Ew::constant(3.0, DType::F64));
        let gt = eg.add(Ew::Compare(CmpOp::Gt, [p, two]));
        let sel = eg.add(Ew::Select([gt, two, three]));
        let sq = eg.add(Ew::Binary(BinaryOp::Mul, [p, p]));
        let ex = eg.add(Ew::Unary(UnaryOp::Exp, [p]));
        eg.rebuild();
        assert_eq!(eg[p].data.facts, Facts::default());
        let s = eg[sel].data.facts;
        assert!(s.finite && s.nonzero && s.positive() && eg[sel].data.value.is_none());
        assert!(eg[sq].data.facts.not_negative && !eg[sq].data.facts.finite);
        assert!(eg[ex].data.facts.not_negative && !eg[ex].data.facts.nonzero);
        let z = Facts::of_value(-0.0);
        assert!(z.finite && !z.nonzero && z.not_negative && !z.positive());
        let n = Facts::of_value(f64::NAN);
        assert!(!n.not_nan && !n.finite && n.nonzero && n.not_negative);
        let v = Facts::of_values(&[1.0, 2.0, f64::INFINITY]);
        assert!(v.positive() && !v.finite);
    }

    #[test]
    fn cost_function_weights() {
        let x = Id::from(0);
        assert_eq!(op_cost(&Ew::Unary(UnaryOp::Exp, [x])), 20);
        assert_eq!(op_cost(&Ew::Unary(UnaryOp::Softplus, [x])), 20);
        assert_eq!(op_cost(&Ew::Binary(BinaryOp::Pow, [x, x])), 20);
        assert_eq!(op_cost(&Ew::Binary(BinaryOp::Div, [x, x])), 4);
        assert_eq!(op_cost(&Ew::Unary(UnaryOp::Sqrt, [x])), 4);
        assert_eq!(op_cost(&Ew::Binary(BinaryOp::Mul, [x, x])), 1);
        assert_eq!(op_cost(&Ew::Select([x, x, x])), 1);
        assert_eq!(op_cost(&Ew::constant(1.0, DType::F32)), 0);
        assert!(op_cost(&Ew::constant(1.0, DType::Bool)) > 1 << 30);
        let e: RecExpr<Ew> = "(add (exp $0:f64) (div $0:f64 3))".parse().expect("parses");
        assert_eq!(EwCost.cost_rec(&e).weight, 25);
    }

    #[test]
    fn regions_split_at_non_elementwise_nodes() -> Result<(), GraphError> {
        let mut g = Graph::new();
        let p = g.add_param("x", DType::F64, [3]);
        let x = g.param(p)?;
        let e = g.unary(UnaryOp::Exp, x)?;
        let a = g.add2(e, x)?;
        let s = g.sum_all(a)?; // a is a root of region 0
        let b = g.broadcast(s, [3])?;
        let m = g.mul(b, e)?; // connected to exp through `e`
        let dead = g.neg(x)?;
        g.set_output("m", m);
        g.set_output("e", e);
        let regs = find_regions(&g);
        // exp, add and mul are connected through `e`: one region.
        assert_eq!(regs.list.len(), 1);
        assert_eq!(regs.list[0].nodes, vec![e, a, m]);
        assert_eq!(regs.list[0].roots, vec![e, a, m]);
        assert_eq!(regs.region_of[dead.index()], None);
        // A scalar region after the reduction is separate.
        let l = g.unary(UnaryOp::Log, s)?;
        g.set_output("l", l);
        let regs = find_regions(&g);
        assert_eq!(regs.list.len(), 2);
        assert_eq!(regs.list[1].nodes, vec![l]);
        assert_eq!(regs.list[1].shape, Shape::scalar());
        Ok(())
    }

    #[test]
    fn round_trip_without_rules_keeps_the_graph() -> Result<(), GraphError> {
        let mut g = Graph::new();
        let p = g.add_param("x", DType::F64, [4]);
        let x = g.param(p)?;
        let c = g.constant_like(2.0, x)?;
        let y = g.mul(x, c)?;
        let t = g.unary(UnaryOp::Tanh, y)?;
        let z = g.sub(t, x)?;
        let gt = g.compare(CmpOp::Gt, z, c)?;
        let s = g.select(gt, z, t)?;
        g.set_output("s", s);
        let regs = find_regions(&g);
        let mut ex = Vec::new();
        for r in 0..regs.list.len() {
            let (eg, roots) = to_egraph(&g, &regs, r);
            let runner = Runner::default().with_egraph(eg).run(&[]);
            ex.push(extract(&g, &runner.egraph, &regs.list[r], &roots));
        }
        let out = from_extracted(&g, &regs, &ex).expect("rebuilds");
        assert_eq!(out, g);
        Ok(())
    }

    #[test]
    fn shared_terms_are_built_once() -> Result<(), GraphError> {
        // Two roots share an expensive subterm: the graph holds it once and
        // the DAG cost counts it once.
        let mut g = Graph::new();
        let p = g.add_param("x", DType::F64, [2]);
        let x = g.param(p)?;
        let e = g.unary(UnaryOp::Exp, x)?;
        let a = g.add2(e, x)?;
        let b = g.mul(e, x)?;
        g.set_output("a", a);
        g.set_output("b", b);
        let regs = find_regions(&g);
        let (eg, roots) = to_egraph(&g, &regs, 0);
        let ex = extract(&g, &eg, &regs.list[0], &roots);
        assert_eq!((ex.cost_before.weight, ex.cost_after.weight), (22, 22));
        let out = from_extracted(&g, &regs, &[ex]).expect("rebuilds");
        assert_eq!(out.live_nodes(), 4);
        assert_eq!(out.cost().transcendentals, 2);
        Ok(())
    }
}
