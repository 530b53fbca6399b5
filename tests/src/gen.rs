//! Random well-typed graphs for differential tests, and the error-bound
//! arithmetic those tests compare results with.
//!
//! [`arb_graph`] is a proptest strategy. It draws a *recipe* — parameter and
//! data declarations, a list of builder steps made of raw random numbers,
//! output choices and parameter values — and interprets it with the
//! [`Graph`] builder. Every step reads its arguments from a pool of nodes
//! built so far and adapts them (cast, broadcast, reshape, partial
//! reduction) until the op's type rule holds, so every recipe builds, and
//! shrinking a recipe (dropping steps, lowering numbers) gives a smaller
//! graph that still builds.
//!
//! [`error_bounds`] is a first-order forward error analysis of a graph at
//! given parameter values, and [`compare_outputs`] the tolerance rule of the
//! optimiser differential tests built on it (see [`Tolerance`]).

use std::fmt;

use crux_ir::graph::{
    eval_all, print, BinaryOp, CmpOp, DType, Graph, GraphError, Node, NodeId, Op, Shape, Tensor,
    UnaryOp,
};
use proptest::collection::vec;
use proptest::prelude::*;

type R<T> = Result<T, GraphError>;

// ------------------------------------------------------------------ config

/// Size limits and options of the generated graphs.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Most builder steps per graph (each adds one to a few nodes).
    pub max_steps: usize,
    /// Most parameter slots (at least one is always declared).
    pub max_params: usize,
    /// Most stored data tensors.
    pub max_data: usize,
    /// Most named outputs (at least one).
    pub max_outputs: usize,
    /// Largest rank of a declared leaf or a generated shape.
    pub max_rank: usize,
    /// Largest dimension of a declared leaf or a generated shape.
    pub max_dim: usize,
    /// Largest element count of any node (steps that would exceed it are
    /// replaced by an elementwise step).
    pub max_numel: usize,
    /// Whether `f32` leaves, constants and casts appear.
    pub allow_f32: bool,
}

impl Default for GenConfig {
    /// Small graphs: up to 16 steps, 3 parameters, 2 data tensors, 3
    /// outputs, rank ≤ 3, dimensions ≤ 4, at most 64 elements, with `f32`.
    fn default() -> GenConfig {
        GenConfig {
            max_steps: 16,
            max_params: 3,
            max_data: 2,
            max_outputs: 3,
            max_rank: 3,
            max_dim: 4,
            max_numel: 64,
            allow_f32: true,
        }
    }
}

/// A generated graph and the parameter values to evaluate it at.
#[derive(Clone)]
pub struct GenCase {
    /// The graph (verified well-typed; may contain dead nodes).
    pub graph: Graph,
    /// One tensor per parameter slot, in slot order.
    pub params: Vec<Tensor>,
}

impl fmt::Debug for GenCase {
    /// The graph in the text format, then the parameter values (so a
    /// failure report can be pasted into a regression test).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GenCase:")?;
        f.write_str(&print(&self.graph))?;
        for (i, p) in self.params.iter().enumerate() {
            writeln!(f, "# p{i} = {}{} {:?}", p.dtype, p.shape, p.data)?;
        }
        Ok(())
    }
}

/// Strategy producing random well-typed graphs with parameter values.
///
/// Each graph has 1 to `max_params` parameter slots, 0 to `max_data` data
/// tensors, 1 to `max_outputs` outputs and up to `max_steps` builder steps.
/// Steps cover every [`UnaryOp`], [`BinaryOp`] and [`CmpOp`] (with
/// `select`), casts to `f32` and back, `sum`, `reduce_max`, `broadcast`,
/// `reshape`, `transpose`, `slice`, `pad`, `concat`, `matmul`, fresh
/// constants (0, ±1, 2, 0.5, -0.0, ...) and idioms the optimiser has rules
/// for (`log(exp x)`, `log(1 + x)`, `exp(x) - 1`, log-sum-exp, hand-written
/// sigmoid and softplus, `x * x`, `(a * b) / b`, guarded logarithms, ...).
///
/// Arguments of domain-restricted functions (`log`, `sqrt`, `recip`,
/// `log1p`, the base of `pow`) are made positive most of the time (`exp x`,
/// `x * x + c`, `sigmoid x`, `|x|`), but not always, so NaN and infinities
/// arise too. Data tensors and constants make parameter-independent
/// subgraphs for staging to fold.
pub fn arb_graph(cfg: GenConfig) -> impl Strategy<Value = GenCase> {
    arb_recipe(&cfg).prop_map(move |r| match r.build(&cfg) {
        Ok(case) => case,
        Err(e) => panic!("the generator built an ill-typed graph ({e}) from {r:?}"),
    })
}

// ------------------------------------------------------------------ recipe

/// A leaf declaration: dtype and shape.
#[derive(Clone, Debug)]
struct LeafSpec {
    f32: bool,
    shape: Vec<usize>,
}

/// One builder step: what to do (`kind`), which pool nodes to use (`a`,
/// `b`), and raw numbers the step decodes its choices from (`x`, `y`).
#[derive(Clone, Debug)]
struct Step {
    kind: u16,
    a: u16,
    b: u16,
    x: u16,
    y: u16,
}

#[derive(Clone, Debug)]
struct Recipe {
    params: Vec<LeafSpec>,
    data: Vec<(LeafSpec, Vec<f64>)>,
    steps: Vec<Step>,
    outputs: Vec<u16>,
    values: Vec<f64>,
}

/// Leaf values: special constants, ordinary values, some large and some
/// tiny, and a few extreme ones (whose `exp`, square or reciprocal
/// overflows or underflows).
fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -3.0..3.0f64,
        3 => prop::sample::select(vec![0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0, -2.0]),
        1 => -1e-6..1e-6f64,
        1 => -40.0..40.0f64,
        1 => prop::sample::select(vec![750.0, -750.0, 1e155, -1e155, 1e-160, 1e300]),
    ]
}

fn arb_leaf(cfg: &GenConfig) -> impl Strategy<Value = LeafSpec> {
    let allow_f32 = cfg.allow_f32;
    (
        0..=cfg.max_rank,
        vec(1..=cfg.max_dim.max(1), cfg.max_rank),
        any::<u8>(),
    )
        .prop_map(move |(rank, dims, t)| LeafSpec {
            f32: allow_f32 && t % 5 == 4,
            shape: dims[..rank].to_vec(),
        })
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(kind, a, b, x, y)| Step { kind, a, b, x, y })
}

fn arb_recipe(cfg: &GenConfig) -> impl Strategy<Value = Recipe> {
    (
        vec(arb_leaf(cfg), 1..=cfg.max_params.max(1)),
        vec((arb_leaf(cfg), vec(arb_value(), 1..=12)), 0..=cfg.max_data),
        vec(arb_step(), 1..=cfg.max_steps.max(1)),
        vec(any::<u16>(), 1..=cfg.max_outputs.max(1)),
        vec(arb_value(), 1..=24),
    )
        .prop_map(|(params, data, steps, outputs, values)| Recipe {
            params,
            data,
            steps,
            outputs,
            values,
        })
}

fn leaf_tensor(spec: &LeafSpec, values: &[f64], offset: usize) -> R<Tensor> {
    let dt = if spec.f32 { DType::F32 } else { DType::F64 };
    let n: usize = spec.shape.iter().product();
    let data = (0..n)
        .map(|j| values[(offset + j) % values.len()])
        .collect();
    Tensor::new(dt, spec.shape.clone(), data)
}

impl Recipe {
    fn build(&self, cfg: &GenConfig) -> R<GenCase> {
        let mut b = Builder {
            g: Graph::new(),
            pool: Vec::new(),
            cfg,
        };
        let mut params = Vec::with_capacity(self.params.len());
        for (i, spec) in self.params.iter().enumerate() {
            let t = leaf_tensor(spec, &self.values, 5 * i)?;
            let p = b.g.add_param(format!("p{i}"), t.dtype, t.shape.clone());
            let n = b.g.param(p)?;
            b.pool.push(n);
            params.push(t);
        }
        for (i, (spec, vals)) in self.data.iter().enumerate() {
            let t = leaf_tensor(spec, vals, 0)?;
            let d = b.g.add_data(format!("x{i}"), t);
            let n = b.g.data_node(d)?;
            b.pool.push(n);
        }
        for s in &self.steps {
            b.step(s)?;
        }
        let last = *b.pool.last().expect("the pool holds the parameters");
        for (i, &sel) in self.outputs.iter().enumerate() {
            let node = if i == 0 {
                last
            } else {
                b.pool[sel as usize % b.pool.len()]
            };
            b.g.set_output(format!("y{i}"), node);
        }
        crux_ir::graph::verify(&b.g)?;
        Ok(GenCase { graph: b.g, params })
    }
}

// ----------------------------------------------------------------- builder

/// Constants that make cleanup and strength-reduction rules fire.
const SPECIAL: [f64; 12] = [
    0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0, -2.0, 0.25, 10.0, 1e-3, -0.0,
];

/// Exponents of `pow` with a constant exponent.
const EXPONENTS: [f64; 10] = [2.0, 0.5, -1.0, 3.0, 1.0, 0.0, -0.5, 1.5, -2.0, 4.0];

/// Mixed-radix decoder of a step's raw numbers.
struct Bits(u64);

impl Bits {
    fn new(x: u16, y: u16) -> Bits {
        // Spread the bits so that small changes in x or y change several choices.
        Bits((x as u64) | ((y as u64) << 16) | ((x as u64 ^ (y as u64).rotate_left(7)) << 32))
    }

    /// A number in `0..n` (`n ≥ 1`).
    fn take(&mut self, n: usize) -> usize {
        let n = n.max(1) as u64;
        let v = self.0 % n;
        self.0 /= n;
        v as usize
    }

    fn flip(&mut self) -> bool {
        self.take(2) == 1
    }

    /// A constant: usually a special one, otherwise a value with a messy mantissa.
    fn constant(&mut self) -> f64 {
        if self.take(3) < 2 {
            SPECIAL[self.take(SPECIAL.len())]
        } else {
            let k = self.take(4096) as f64;
            ((k * 0.618_033_988_749_894_9).fract() - 0.5) * 8.0
        }
    }
}

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

/// Every shape of rank ≤ `max_rank` with `n` elements.
fn shapes_with_numel(n: usize, max_rank: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if n == 1 {
        out.push(vec![]);
    }
    if max_rank >= 1 {
        out.push(vec![n]);
    }
    let divs: Vec<usize> = (1..=n).filter(|&d| n.is_multiple_of(d)).collect();
    if max_rank >= 2 {
        for &a in &divs {
            out.push(vec![a, n / a]);
        }
    }
    if max_rank >= 3 {
        for &a in &divs {
            for &b in &divs {
                if (n / a).is_multiple_of(b) {
                    out.push(vec![a, b, n / a / b]);
                }
            }
        }
    }
    out
}

/// The `k`-th permutation of `0..r` (lexicographic).
fn nth_perm(r: usize, mut k: usize) -> Vec<u8> {
    let mut items: Vec<u8> = (0..r as u8).collect();
    let mut out = Vec::with_capacity(r);
    for i in (1..=r).rev() {
        let f: usize = (1..i).product();
        let idx = (k / f) % i;
        k %= f;
        out.push(items.remove(idx));
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Adds no node: repeats a pool entry (what shrinking turns a step
    /// into, so shrunk steps vanish without renumbering the pool).
    Nop,
    Unary,
    BinaryNode,
    BinaryConst,
    BinarySelf,
    Pow,
    Select,
    Cast,
    Sum,
    ReduceMax,
    Broadcast,
    Reshape,
    Transpose,
    Slice,
    Pad,
    Concat,
    MatMul,
    Const,
    Idiom,
}

/// Step kinds with repetition as weights; index 0 (what shrinking reaches) adds nothing.
const KINDS: [Kind; 33] = [
    Kind::Nop,
    Kind::Unary,
    Kind::Unary,
    Kind::Unary,
    Kind::Unary,
    Kind::BinaryNode,
    Kind::BinaryNode,
    Kind::BinaryNode,
    Kind::BinaryNode,
    Kind::BinaryConst,
    Kind::BinaryConst,
    Kind::BinaryConst,
    Kind::BinarySelf,
    Kind::Pow,
    Kind::Select,
    Kind::Select,
    Kind::Cast,
    Kind::Sum,
    Kind::Sum,
    Kind::ReduceMax,
    Kind::Broadcast,
    Kind::Broadcast,
    Kind::Reshape,
    Kind::Transpose,
    Kind::Slice,
    Kind::Pad,
    Kind::Concat,
    Kind::MatMul,
    Kind::Const,
    Kind::Idiom,
    Kind::Idiom,
    Kind::Idiom,
    Kind::Idiom,
];

/// Number of idioms [`Builder::idiom`] knows.
const IDIOMS: usize = 16;

struct Builder<'a> {
    g: Graph,
    pool: Vec<NodeId>,
    cfg: &'a GenConfig,
}

impl Builder<'_> {
    /// A pool node: one of the last three when `sel` is even (deep
    /// chains), any node when odd (sharing, parameter-free subgraphs).
    fn pick(&self, sel: u16) -> NodeId {
        let n = self.pool.len();
        let k = (sel >> 1) as usize;
        if sel & 1 == 0 {
            self.pool[n - 1 - k % n.min(3)]
        } else {
            self.pool[k % n]
        }
    }

    fn dtype(&self, id: NodeId) -> DType {
        self.g.node(id).dtype
    }

    fn dims(&self, id: NodeId) -> Vec<usize> {
        self.g.node(id).shape.0.clone()
    }

    fn konst(&mut self, v: f64, like: NodeId) -> R<NodeId> {
        self.g.constant_like(v, like)
    }

    fn un(&mut self, op: UnaryOp, x: NodeId) -> R<NodeId> {
        self.g.unary(op, x)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> R<NodeId> {
        self.g.binary(op, a, b)
    }

    /// `x` turned into a node of `dt` and shape `target`: cast, then
    /// broadcast, reshape, or reduce the conflicting axes and broadcast.
    fn coerce(&mut self, x: NodeId, dt: DType, target: &[usize], sel: usize) -> R<NodeId> {
        let x = self.g.cast(x, dt)?;
        let sx = self.dims(x);
        let tshape = Shape(target.to_vec());
        if sx == target {
            return Ok(x);
        }
        if Shape(sx.clone()).broadcasts_to(&tshape) {
            return self.g.broadcast(x, tshape);
        }
        if numel(&sx) == numel(target) && sel & 2 == 0 {
            return self.g.reshape(x, tshape);
        }
        let (r, t) = (sx.len(), target.len());
        let mut axes = Vec::new();
        let mut keep = Vec::new();
        for (i, &d) in sx.iter().enumerate() {
            if i + t < r {
                axes.push(i as u8);
                continue;
            }
            let td = target[i + t - r];
            if d == td || d == 1 {
                keep.push(d);
            } else {
                axes.push(i as u8);
                keep.push(1);
            }
        }
        let red = if sel & 1 == 0 {
            self.g.sum(x, &axes)?
        } else {
            self.g.reduce_max(x, &axes)?
        };
        let red = self.g.reshape(red, keep)?;
        self.g.broadcast(red, tshape)
    }

    /// `other` made to match `like`'s dtype and shape.
    fn coerce_like(&mut self, other: NodeId, like: NodeId, sel: usize) -> R<NodeId> {
        let dims = self.dims(like);
        self.coerce(other, self.dtype(like), &dims, sel)
    }

    /// Makes `x` positive (mostly): `exp x`, `x * x + c`, `sigmoid x`,
    /// `|x|` (zero is possible), or `x` itself (choice 0 and 5).
    fn guard(&mut self, x: NodeId, bits: &mut Bits) -> R<NodeId> {
        Ok(match bits.take(6) {
            1 => self.un(UnaryOp::Exp, x)?,
            2 => {
                let xx = self.bin(BinaryOp::Mul, x, x)?;
                let c = self.konst([1.0, 0.5, 1e-3, 0.0][bits.take(4)], x)?;
                self.bin(BinaryOp::Add, xx, c)?
            }
            3 => self.un(UnaryOp::Sigmoid, x)?,
            4 => self.un(UnaryOp::Abs, x)?,
            _ => x,
        })
    }

    /// Mostly bounds `x` for functions that overflow (`tanh x`, `sin x`).
    fn squash(&mut self, x: NodeId, bits: &mut Bits) -> R<NodeId> {
        Ok(match bits.take(5) {
            3 => self.un(UnaryOp::Tanh, x)?,
            4 => self.un(UnaryOp::Sin, x)?,
            _ => x,
        })
    }

    fn unary_step(&mut self, s: &Step, bits: &mut Bits) -> R<NodeId> {
        let op = UnaryOp::ALL[bits.take(UnaryOp::ALL.len())];
        let x = self.pick(s.a);
        let arg = match op {
            UnaryOp::Sqrt | UnaryOp::Log | UnaryOp::Recip | UnaryOp::Log1p => {
                self.guard(x, bits)?
            }
            UnaryOp::Exp | UnaryOp::Expm1 | UnaryOp::Tan | UnaryOp::Softplus | UnaryOp::Sigmoid => {
                self.squash(x, bits)?
            }
            _ => x,
        };
        self.un(op, arg)
    }

    fn pow(&mut self, base: NodeId, s: &Step, bits: &mut Bits) -> R<NodeId> {
        let base = self.guard(base, bits)?;
        let e = match bits.take(3) {
            0 => self.konst(EXPONENTS[bits.take(EXPONENTS.len())], base)?,
            1 => self.coerce_like(self.pick(s.b), base, bits.take(4))?,
            _ => {
                let e = self.coerce_like(self.pick(s.b), base, bits.take(4))?;
                self.un(UnaryOp::Tanh, e)?
            }
        };
        self.bin(BinaryOp::Pow, base, e)
    }

    /// Runs one step; `None` when the step does not apply to the chosen
    /// node (an elementwise step runs instead).
    fn try_step(&mut self, s: &Step, kind: Kind, bits: &mut Bits) -> R<Option<NodeId>> {
        let a = self.pick(s.a);
        let dt = self.dtype(a);
        let dims = self.dims(a);
        let r = dims.len();
        let max_numel = self.cfg.max_numel;
        Ok(Some(match kind {
            Kind::Nop => a,
            Kind::Unary => self.unary_step(s, bits)?,
            Kind::BinaryNode => {
                let op = BinaryOp::ALL[bits.take(BinaryOp::ALL.len())];
                if op == BinaryOp::Pow {
                    return Ok(Some(self.pow(a, s, bits)?));
                }
                let b = self.coerce_like(self.pick(s.b), a, bits.take(4))?;
                if bits.flip() {
                    self.bin(op, b, a)?
                } else {
                    self.bin(op, a, b)?
                }
            }
            Kind::BinaryConst => {
                let op = BinaryOp::ALL[bits.take(BinaryOp::ALL.len())];
                let c = bits.constant();
                let c = self.konst(c, a)?;
                if bits.flip() {
                    self.bin(op, c, a)?
                } else {
                    self.bin(op, a, c)?
                }
            }
            Kind::BinarySelf => {
                let op = BinaryOp::ALL[bits.take(BinaryOp::ALL.len())];
                self.bin(op, a, a)?
            }
            Kind::Pow => self.pow(a, s, bits)?,
            Kind::Select => {
                let op = CmpOp::ALL[bits.take(CmpOp::ALL.len())];
                let b = if bits.flip() {
                    let c = bits.constant();
                    self.konst(c, a)?
                } else {
                    self.coerce_like(self.pick(s.b), a, bits.take(4))?
                };
                let c = self.g.compare(op, a, b)?;
                match bits.take(3) {
                    0 => self.g.select(c, a, b)?,
                    1 => self.g.select(c, b, a)?,
                    _ => {
                        // A guarded risky function: `select(a > b, log(a), 0)`.
                        let f = [
                            UnaryOp::Log,
                            UnaryOp::Sqrt,
                            UnaryOp::Recip,
                            UnaryOp::Log1p,
                            UnaryOp::Exp,
                        ][bits.take(5)];
                        let fa = self.un(f, a)?;
                        let z = bits.constant();
                        let z = self.konst(z, a)?;
                        if bits.flip() {
                            self.g.select(c, z, fa)?
                        } else {
                            self.g.select(c, fa, z)?
                        }
                    }
                }
            }
            Kind::Cast => {
                if !self.cfg.allow_f32 {
                    return Ok(None);
                }
                let other = if dt == DType::F64 {
                    DType::F32
                } else {
                    DType::F64
                };
                let c = self.g.cast(a, other)?;
                if bits.flip() {
                    self.g.cast(c, dt)?
                } else {
                    c
                }
            }
            Kind::Sum | Kind::ReduceMax => {
                if r == 0 {
                    return Ok(None);
                }
                let mask = 1 + bits.take((1 << r) - 1);
                let axes: Vec<u8> = (0..r as u8).filter(|i| mask & (1 << i) != 0).collect();
                if matches!(kind, Kind::Sum) {
                    self.g.sum(a, &axes)?
                } else {
                    self.g.reduce_max(a, &axes)?
                }
            }
            Kind::Broadcast => {
                let ones: Vec<usize> = (0..r).filter(|&i| dims[i] == 1).collect();
                let mut out = dims.clone();
                if r < self.cfg.max_rank && (ones.is_empty() || bits.flip()) {
                    out.insert(0, 1 + bits.take(self.cfg.max_dim));
                } else if !ones.is_empty() {
                    out[ones[bits.take(ones.len())]] = 2 + bits.take(self.cfg.max_dim.max(2) - 1);
                } else {
                    return Ok(None);
                }
                if numel(&out) > max_numel {
                    return Ok(None);
                }
                self.g.broadcast(a, out)?
            }
            Kind::Reshape => {
                let shapes = shapes_with_numel(numel(&dims), self.cfg.max_rank);
                let sh = shapes[bits.take(shapes.len())].clone();
                self.g.reshape(a, sh)?
            }
            Kind::Transpose => {
                if r < 2 {
                    return Ok(None);
                }
                let f: usize = (1..=r).product();
                let perm = nth_perm(r, 1 + bits.take(f - 1));
                self.g.transpose(a, &perm)?
            }
            Kind::Slice => {
                let axes: Vec<usize> = (0..r).filter(|&i| dims[i] >= 2).collect();
                if axes.is_empty() {
                    return Ok(None);
                }
                let ax = axes[bits.take(axes.len())];
                let d = dims[ax];
                let step = 1 + bits.take(2);
                let start = bits.take(d);
                let max_len = (d - 1 - start) / step + 1;
                let len = 1 + bits.take(max_len);
                self.g.slice(a, ax as u8, start, len, step)?
            }
            Kind::Pad => {
                if r == 0 {
                    return Ok(None);
                }
                let ax = bits.take(r);
                let d = dims[ax];
                let step = 1 + bits.take(2);
                let start = bits.take(2);
                let full = start + (d - 1) * step + 1 + bits.take(2);
                if numel(&dims) / d * full > max_numel {
                    return Ok(None);
                }
                self.g.pad(a, ax as u8, start, step, full)?
            }
            Kind::Concat => {
                if r == 0 {
                    return Ok(None);
                }
                let ax = bits.take(r);
                let mut t = dims.clone();
                t[ax] = 1 + bits.take(self.cfg.max_dim);
                let b = self.coerce(self.pick(s.b), dt, &t, bits.take(4))?;
                let parts = if bits.flip() {
                    vec![b, a, b]
                } else {
                    vec![a, b]
                };
                let total: usize = parts.iter().map(|&p| self.dims(p)[ax]).sum();
                if numel(&dims) / dims[ax] * total > max_numel {
                    return Ok(None);
                }
                self.g.concat(&parts, ax as u8)?
            }
            Kind::MatMul => {
                let n_a = numel(&dims);
                let a2 = match r {
                    2 => a,
                    _ if bits.flip() => self.g.reshape(a, [1, n_a])?,
                    _ => self.g.reshape(a, [n_a, 1])?,
                };
                let ad = self.dims(a2);
                let (m, k) = (ad[0], ad[1]);
                let n = (1 + bits.take(self.cfg.max_dim)).min((max_numel / m.max(1)).max(1));
                let b = self.coerce(self.pick(s.b), dt, &[k, n], bits.take(4))?;
                if bits.flip() && m == n {
                    // (a b)ᵀ-shaped variants exercise transpose of products.
                    let p = self.g.matmul(a2, b)?;
                    self.g.transpose(p, &[1, 0])?
                } else {
                    self.g.matmul(a2, b)?
                }
            }
            Kind::Const => {
                let rank = bits.take(self.cfg.max_rank + 1);
                let sh: Vec<usize> = (0..rank).map(|_| 1 + bits.take(self.cfg.max_dim)).collect();
                let cdt = if self.cfg.allow_f32 && bits.take(4) == 3 {
                    DType::F32
                } else {
                    DType::F64
                };
                let v = bits.constant();
                self.g.constant(v, cdt, sh)?
            }
            Kind::Idiom => self.idiom(a, s, bits)?,
        }))
    }

    /// Expressions the optimiser has (or may have) dedicated rules for.
    fn idiom(&mut self, a: NodeId, s: &Step, bits: &mut Bits) -> R<NodeId> {
        use BinaryOp as B;
        use UnaryOp as U;
        Ok(match bits.take(IDIOMS) {
            0 => {
                let e = self.un(U::Exp, a)?;
                self.un(U::Log, e)?
            }
            1 => {
                let x = self.guard(a, bits)?;
                let l = self.un(U::Log, x)?;
                self.un(U::Exp, l)?
            }
            2 => {
                let xx = self.bin(B::Mul, a, a)?;
                self.un(U::Sqrt, xx)?
            }
            3 => {
                let one = self.konst(1.0, a)?;
                let s = if bits.flip() {
                    self.bin(B::Add, one, a)?
                } else {
                    self.bin(B::Add, a, one)?
                };
                self.un(U::Log, s)?
            }
            4 => {
                let e = self.un(U::Exp, a)?;
                let one = self.konst(1.0, a)?;
                self.bin(B::Sub, e, one)?
            }
            5 => {
                // log(sum(exp(x))) over some axes, with or without the max shift.
                let r = self.dims(a).len();
                if r == 0 {
                    let e = self.un(U::Exp, a)?;
                    return self.un(U::Log, e);
                }
                let axes: Vec<u8> = if bits.flip() {
                    (0..r as u8).collect()
                } else {
                    vec![(r - 1) as u8]
                };
                if bits.flip() {
                    let m = self.g.reduce_max(a, &axes)?;
                    let keep: Vec<usize> = self
                        .dims(a)
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| if axes.contains(&(i as u8)) { 1 } else { d })
                        .collect();
                    let mk = self.g.reshape(m, keep)?;
                    let mb = self.g.broadcast(mk, self.dims(a))?;
                    let d = self.bin(B::Sub, a, mb)?;
                    let e = self.un(U::Exp, d)?;
                    let s = self.g.sum(e, &axes)?;
                    let l = self.un(U::Log, s)?;
                    self.bin(B::Add, l, m)?
                } else {
                    let e = self.un(U::Exp, a)?;
                    let s = self.g.sum(e, &axes)?;
                    self.un(U::Log, s)?
                }
            }
            6 => {
                // 1 / (1 + exp(-x))
                let n = self.un(U::Neg, a)?;
                let e = self.un(U::Exp, n)?;
                let one = self.konst(1.0, a)?;
                let d = self.bin(B::Add, one, e)?;
                if bits.flip() {
                    self.un(U::Recip, d)?
                } else {
                    self.bin(B::Div, one, d)?
                }
            }
            7 => {
                // log(1 + exp(x))
                let e = self.un(U::Exp, a)?;
                let one = self.konst(1.0, a)?;
                let d = self.bin(B::Add, one, e)?;
                self.un(U::Log, d)?
            }
            8 => {
                // select(x > 0, log(x), c)
                let z = self.konst(0.0, a)?;
                let c = self.g.compare(CmpOp::Gt, a, z)?;
                let l = self.un(U::Log, a)?;
                let k = bits.constant();
                let k = self.konst(k, a)?;
                self.g.select(c, l, k)?
            }
            9 => {
                // (a * b) / b
                let b = self.coerce_like(self.pick(s.b), a, bits.take(4))?;
                let p = self.bin(B::Mul, a, b)?;
                self.bin(B::Div, p, b)?
            }
            10 => {
                // exp(a) * exp(b)
                let b = self.coerce_like(self.pick(s.b), a, bits.take(4))?;
                let ea = self.un(U::Exp, a)?;
                let eb = self.un(U::Exp, b)?;
                self.bin(B::Mul, ea, eb)?
            }
            11 => {
                // pow with a constant exponent, base unguarded.
                let e = self.konst(EXPONENTS[bits.take(EXPONENTS.len())], a)?;
                self.bin(B::Pow, a, e)?
            }
            12 => {
                // x / c (strength reduction to a multiplication)
                let c = [2.0, 4.0, 0.5, 3.0, 10.0, -1.0, 0.0][bits.take(7)];
                let c = self.konst(c, a)?;
                self.bin(B::Div, a, c)?
            }
            13 => {
                // x - x, x / x, x * 0, 0 / x, x - (-y), -(-x)
                match bits.take(6) {
                    0 => self.bin(B::Sub, a, a)?,
                    1 => self.bin(B::Div, a, a)?,
                    2 => {
                        let z = self.konst(0.0, a)?;
                        self.bin(B::Mul, a, z)?
                    }
                    3 => {
                        let z = self.konst(0.0, a)?;
                        self.bin(B::Div, z, a)?
                    }
                    4 => {
                        let b = self.coerce_like(self.pick(s.b), a, bits.take(4))?;
                        let nb = self.un(U::Neg, b)?;
                        self.bin(B::Sub, a, nb)?
                    }
                    _ => {
                        let n = self.un(U::Neg, a)?;
                        self.un(U::Neg, n)?
                    }
                }
            }
            14 => {
                // sum of a broadcast, sum of a sum, reshape of a reshape
                let r = self.dims(a).len();
                if r < self.cfg.max_rank && numel(&self.dims(a)) * 3 <= self.cfg.max_numel {
                    let mut d = self.dims(a);
                    d.insert(0, 3);
                    let b = self.g.broadcast(a, d)?;
                    self.g.sum(b, &[0])?
                } else {
                    let n = numel(&self.dims(a));
                    let f = self.g.reshape(a, [n])?;
                    self.g.sum(f, &[0])?
                }
            }
            _ => {
                // exp(x) - 1 spelled with expm1's neighbour, and tanh via exp.
                let two = self.konst(2.0, a)?;
                let t = self.bin(B::Mul, two, a)?;
                let e = self.un(U::Exp, t)?;
                let one = self.konst(1.0, a)?;
                let n = self.bin(B::Sub, e, one)?;
                let d = self.bin(B::Add, e, one)?;
                self.bin(B::Div, n, d)?
            }
        })
    }

    fn step(&mut self, s: &Step) -> R<()> {
        let kind = KINDS[s.kind as usize % KINDS.len()];
        let mut bits = Bits::new(s.x, s.y);
        let node = match self.try_step(s, kind, &mut bits)? {
            Some(n) => n,
            None => self.unary_step(s, &mut bits)?,
        };
        self.pool.push(node);
        Ok(())
    }
}

// ------------------------------------------------------------ error bounds

/// `2^-53`: the unit roundoff of `f64`, the unit of [`error_bounds`].
pub const UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;

/// Rounding error of one correctly rounded `f32` result, in units of [`UNIT`] per unit of magnitude.
const F32_UNITS: f64 = 536_870_912.0; // 2^29 = 2^-24 / 2^-53

/// The tolerance rule of the optimiser differential tests.
///
/// An original value `a` and an optimised value `b` agree when
///
/// * both are NaN, or
/// * both are the same infinity, or
/// * the bound `e` is [`UNDECIDED`], or
/// * both are finite and `|a - b| <= rel * max(|a|, |b|, factor * e)`,
///   where `e` is the first-order forward error bound of `a` computed by
///   [`error_bounds`] on the *original* graph (in units of `2^-53`: an
///   absolute error of `e · 2^-53`, so `e` is a magnitude — the size of
///   the terms that cancelled on the way to `a`).
///
/// The `factor * e` term is what lets a rewrite change a small difference
/// of large terms by more than `rel` of itself: folding constants at the
/// ulp level, or reordering an `f32` computation, legitimately moves
/// `x - y` by a few ulps of `x`. It never lets a non-finite value become
/// finite or the reverse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance (default `1e-12`).
    pub rel: f64,
    /// Multiplier of the error bound (default 64).
    pub factor: f64,
}

impl Default for Tolerance {
    fn default() -> Tolerance {
        Tolerance {
            rel: 1e-12,
            factor: 64.0,
        }
    }
}

impl Tolerance {
    /// The largest difference an original value `a` with bound `e` and an
    /// optimised value `b` may have.
    pub fn allowed(&self, a: f64, b: f64, e: f64) -> f64 {
        self.rel * a.abs().max(b.abs()).max(self.factor * e)
    }

    /// Whether `a` and `b`, with error bounds `ea` and `eb`, are too close
    /// for their comparison to be trusted: closer than `factor` times the
    /// absolute error bound (deliberately tighter than [`Tolerance::allowed`],
    /// which is generous about values; a correct rewrite moves a value by a
    /// few times its error bound, not by `rel` of the cancelled terms).
    fn undecided(&self, a: f64, b: f64, ea: f64, eb: f64) -> bool {
        a.is_finite()
            && b.is_finite()
            && ea + eb > 0.0
            && (a - b).abs() <= self.factor * UNIT * (ea + eb)
    }
}

/// The bound (in [`UNIT`]s) of a value that may jump by `size` (a
/// comparison or `sign` too close to call): an absolute error of `size`,
/// which users propagate like any other error.
fn jump(size: f64) -> f64 {
    size / UNIT
}

/// Rounding error of one correctly rounded op producing `y` in `dt`.
fn rnd(dt: DType, y: f64) -> f64 {
    if !y.is_finite() {
        return 0.0;
    }
    match dt {
        DType::F64 => y.abs(),
        DType::F32 => y.abs() * (F32_UNITS + 1.0),
        DType::Bool => 0.0,
    }
}

/// Rounding error of a library transcendental (≤ 2 ulps assumed).
fn rnd_tr(dt: DType, y: f64) -> f64 {
    if !y.is_finite() {
        return 0.0;
    }
    match dt {
        DType::F64 => 4.0 * y.abs(),
        DType::F32 => y.abs() * (F32_UNITS + 4.0),
        DType::Bool => 0.0,
    }
}

/// `|d| · e`, with an exact input (`e = 0`) contributing nothing even when
/// the derivative is infinite.
fn term(d: f64, e: f64) -> f64 {
    if e == 0.0 {
        0.0
    } else {
        d.abs() * e
    }
}

/// The bound of an element whose kind (NaN, infinite or finite) may
/// legitimately change: any optimised value is accepted there.
pub const UNDECIDED: f64 = f64::NAN;

/// An argument's bound as used by its users: non-finite values are exact
/// (they must match bit for bit), so they contribute nothing — unless
/// undecided, which spreads to every user.
fn arg_e(v: f64, e: f64) -> f64 {
    if v.is_finite() || e.is_nan() {
        e
    } else {
        0.0
    }
}

/// Bound of an exact product `a · b` from the factors' bounds, with the
/// second-order term (which dominates at a double zero such as `x · x` at
/// `x = 0`).
fn product(a: f64, ea: f64, b: f64, eb: f64) -> f64 {
    let (ea, eb) = (arg_e(a, ea), arg_e(b, eb));
    term(b, ea) + term(a, eb) + term(ea, eb) * UNIT
}

/// The larger of two bounds, undecided if either is.
fn max_e(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        UNDECIDED
    } else {
        a.max(b)
    }
}

/// Largest change of `f` over the perturbations of `x` by `±δ`, in units;
/// perturbed values that leave the domain are ignored; infinite when all do.
fn perturbed(f: impl Fn(f64) -> f64, x: f64, dx: f64, y: f64) -> f64 {
    let d = dx * UNIT;
    let mut worst: Option<f64> = None;
    for v in [f(x + d), f(x - d)] {
        if v.is_finite() {
            let w = (v - y).abs() / UNIT;
            worst = Some(worst.map_or(w, |m: f64| m.max(w)));
        }
    }
    worst.unwrap_or(f64::INFINITY)
}

fn unary_derivative(op: UnaryOp, x: f64, y: f64) -> f64 {
    match op {
        UnaryOp::Neg => -1.0,
        UnaryOp::Abs => 1.0,
        UnaryOp::Sign => 0.0,
        UnaryOp::Sqrt => 0.5 / y,
        UnaryOp::Recip => -y * y,
        UnaryOp::Exp => y,
        UnaryOp::Expm1 => y + 1.0,
        UnaryOp::Log => 1.0 / x,
        UnaryOp::Log1p => 1.0 / (1.0 + x),
        UnaryOp::Sin => x.cos(),
        UnaryOp::Cos => -x.sin(),
        UnaryOp::Tan => 1.0 + y * y,
        UnaryOp::Tanh => 1.0 - y * y,
        UnaryOp::Sigmoid => y * (1.0 - y),
        UnaryOp::Softplus => UnaryOp::Sigmoid.apply(x),
    }
}

fn unary_bound(op: UnaryOp, dt: DType, x: f64, ex: f64, y: f64, tol: &Tolerance) -> f64 {
    let ex = arg_e(x, ex);
    if ex.is_nan() {
        return UNDECIDED;
    }
    let singular = match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip => Some(0.0),
        UnaryOp::Log1p => Some(-1.0),
        _ => None,
    };
    if singular.is_some_and(|c| tol.undecided(x, c, ex, 0.0)) {
        // The argument may sit on either side of the pole or domain edge.
        return UNDECIDED;
    }
    if !y.is_finite() {
        return 0.0;
    }
    if op == UnaryOp::Sign {
        return if tol.undecided(x, 0.0, ex, 0.0) {
            jump(2.0)
        } else {
            0.0
        };
    }
    let mut t = term(unary_derivative(op, x, y), ex);
    if !t.is_finite() {
        t = perturbed(|v| dt.round(op.apply(v)), x, ex, y);
    }
    let r = match op {
        UnaryOp::Neg | UnaryOp::Abs => 0.0,
        UnaryOp::Sqrt | UnaryOp::Recip => rnd(dt, y),
        _ => rnd_tr(dt, y),
    };
    t + r
}

fn binary_bound(
    op: BinaryOp,
    dt: DType,
    (a, ea): (f64, f64),
    (b, eb): (f64, f64),
    y: f64,
    tol: &Tolerance,
) -> f64 {
    let (ea, eb) = (arg_e(a, ea), arg_e(b, eb));
    if ea.is_nan() || eb.is_nan() {
        return UNDECIDED;
    }
    if (op == BinaryOp::Div && tol.undecided(b, 0.0, eb, 0.0))
        || (op == BinaryOp::Pow && tol.undecided(a, 0.0, ea, 0.0))
    {
        // A divisor, or a base, that may sit on either side of zero.
        return UNDECIDED;
    }
    if !y.is_finite() && op != BinaryOp::Pow {
        // (`pow` decides first whether its exponent makes it undecided.)
        return 0.0;
    }
    match op {
        BinaryOp::Add | BinaryOp::Sub => ea + eb + rnd(dt, y),
        BinaryOp::Mul => product(a, ea, b, eb) + rnd(dt, y),
        BinaryOp::Div => term(1.0 / b, ea) + term(y / b, eb) + rnd(dt, y),
        BinaryOp::Max | BinaryOp::Min => max_e(ea, eb),
        BinaryOp::Pow => {
            if a < 0.0 && a.is_finite() && tol.undecided(b, b.round(), eb, 0.0) {
                // A negative base gives NaN or a finite value depending on
                // whether the exponent is an integer, which an inexact
                // exponent near one does not decide.
                return UNDECIDED;
            }
            if !y.is_finite() {
                return 0.0;
            }
            let mut t = term(b * y / a, ea) + term(y * a.ln(), eb);
            if !t.is_finite() {
                t = perturbed(|v| dt.round(v.powf(b)), a, ea, y).max(perturbed(
                    |v| dt.round(a.powf(v)),
                    b,
                    eb,
                    y,
                ));
                if ea > 0.0 && eb > 0.0 {
                    t *= 2.0;
                }
            }
            t + rnd_tr(dt, y)
        }
    }
}

/// Applies a data-movement op to a tensor of bounds (reusing the
/// interpreter's index arithmetic by evaluating a one-node graph).
fn move_bounds(node: &Node, args: &[&[f64]], arg_shapes: &[&Shape]) -> R<Vec<f64>> {
    let mut g = Graph::new();
    let mut ids = Vec::with_capacity(args.len());
    for (e, sh) in args.iter().zip(arg_shapes) {
        let d = g.add_data("e", Tensor::f64((*sh).clone(), e.to_vec())?);
        ids.push(g.data_node(d)?);
    }
    let out = g.add(Node {
        op: node.op.clone(),
        args: ids,
        dtype: DType::F64,
        shape: node.shape.clone(),
    })?;
    g.set_output("e", out);
    Ok(crux_ir::graph::eval(&g, &[])?.remove(0).data)
}

/// For each node needed by the outputs, its value and first-order forward
/// error bound (in units of [`UNIT`]) at these parameters.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Values by node id (`None` for nodes the outputs do not need).
    pub values: Vec<Option<Tensor>>,
    /// Error bounds by node id, elementwise (for `bool` nodes: 1 where the
    /// comparison is too close to call, else 0).
    pub errors: Vec<Option<Vec<f64>>>,
}

impl Bounds {
    /// The bounds of each output, in output order.
    pub fn outputs(&self, graph: &Graph) -> Vec<Vec<f64>> {
        graph
            .outputs()
            .iter()
            .map(|(_, o)| {
                self.errors[o.index()]
                    .clone()
                    .expect("outputs are evaluated")
            })
            .collect()
    }
}

/// First-order forward error analysis of `graph` at `params`.
///
/// Per node, an absolute error bound `e` (in units of `2^-53`) of its
/// computed value against exact arithmetic on the same inputs, propagated
/// from the arguments' bounds:
///
/// * leaves are exact (`e = 0`);
/// * `a ± b`: `e_a + e_b + |y|`; `a · b`: `|b| e_a + |a| e_b +
///   2^-53 e_a e_b + |y|`; `a / b`: `e_a / |b| + |y| e_b / |b| + |y|`; `pow`: `|b y / a| e_a +
///   |y ln a| e_b + 4|y|`; `max`, `min`, `reduce_max`: the largest argument
///   bound;
/// * unary `f`: `|f'(x)| e_x` plus the rounding (`|y|` for `sqrt`/`recip`,
///   `4|y|` for library functions, none for `neg`/`abs`); where `f'` is
///   infinite (`sqrt` at 0) the change of `f` over `x ± e_x` is used;
/// * `sum`, `matmul`: the argument bounds combined linearly plus `|partial
///   sum|` per accumulation step (and `|product|` per product);
/// * data movement moves the bounds with the values; `pad` adds exact zeros;
/// * a comparison whose operands differ by less than the tolerance their
///   bounds allow is *undecided*; `select` on an undecided condition, and
///   `sign` of an undecided zero, add the jump between the two outcomes as
///   an absolute error;
/// * an `f32` result adds `2^29 |y|` (its rounding unit is `2^-24`);
/// * non-finite values are exact: their bound is 0, and they contribute
///   nothing to their users' bounds, so a result that was infinite or NaN
///   must stay so, and a finite result computed from one must not move;
/// * [`UNDECIDED`] (NaN) marks elements whose kind may legitimately change
///   — `log`, `sqrt`, `recip`, `log1p`, a divisor or a `pow` base whose
///   inexact argument is within 64 error bounds of the pole or domain
///   edge, `pow` of a negative base by an inexact exponent that close to
///   an integer (NaN or finite depending on an ulp), `select` on an undecided condition between branches of
///   different kinds — and spreads to every user. Exact arguments (bound
///   0, such as an underflowed `exp` or a parameter) are never undecided,
///   so a rewrite that avoids an overflow or underflow is still reported.
pub fn error_bounds(graph: &Graph, params: &[Tensor], tol: &Tolerance) -> R<Bounds> {
    let roots: Vec<NodeId> = graph.outputs().iter().map(|(_, o)| *o).collect();
    let values = eval_all(graph, params, &roots)?;
    let mut errors: Vec<Option<Vec<f64>>> = vec![None; graph.len()];
    for (i, node) in graph.nodes().iter().enumerate() {
        let Some(yv) = values[i].as_ref() else {
            continue;
        };
        let y = &yv.data;
        let dt = node.dtype;
        let val = |k: usize| {
            &values[node.args[k].index()]
                .as_ref()
                .expect("arguments precede users")
                .data
        };
        let err = |k: usize| {
            errors[node.args[k].index()]
                .as_ref()
                .expect("arguments precede users")
        };
        let n = y.len();
        let mut e: Vec<f64> = match &node.op {
            Op::Param(_) | Op::Data(_) | Op::Const(_) => vec![0.0; n],
            Op::Unary(u) => (0..n)
                .map(|k| unary_bound(*u, dt, val(0)[k], err(0)[k], y[k], tol))
                .collect(),
            Op::Binary(b) => (0..n)
                .map(|k| {
                    binary_bound(
                        *b,
                        dt,
                        (val(0)[k], err(0)[k]),
                        (val(1)[k], err(1)[k]),
                        y[k],
                        tol,
                    )
                })
                .collect(),
            Op::Compare(_) => (0..n)
                .map(|k| {
                    let (a, b) = (val(0)[k], val(1)[k]);
                    let (ea, eb) = (arg_e(a, err(0)[k]), arg_e(b, err(1)[k]));
                    if ea.is_nan() || eb.is_nan() || tol.undecided(a, b, ea, eb) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
            Op::Select => (0..n)
                .map(|k| {
                    let (c, ec) = (val(0)[k], err(0)[k]);
                    let (a, ea) = (val(1)[k], arg_e(val(1)[k], err(1)[k]));
                    let (b, eb) = (val(2)[k], arg_e(val(2)[k], err(2)[k]));
                    if ec > 0.0 {
                        if a.to_bits() == b.to_bits() {
                            max_e(ea, eb)
                        } else if a.is_finite() && b.is_finite() {
                            max_e(ea, eb) + jump((a - b).abs())
                        } else {
                            // Either branch may be taken, and they differ in kind.
                            UNDECIDED
                        }
                    } else if c != 0.0 {
                        ea
                    } else {
                        eb
                    }
                })
                .collect(),
            Op::Cast => (0..n)
                .map(|k| {
                    arg_e(val(0)[k], err(0)[k]) + if dt == DType::F32 { rnd(dt, y[k]) } else { 0.0 }
                })
                .collect(),
            Op::Sum { axes } => {
                let x = &values[node.args[0].index()]
                    .as_ref()
                    .expect("argument")
                    .shape;
                sum_bounds(x, val(0), err(0), axes, dt)
            }
            Op::ReduceMax { axes } => {
                let x = &values[node.args[0].index()]
                    .as_ref()
                    .expect("argument")
                    .shape;
                let ex: Vec<f64> = val(0)
                    .iter()
                    .zip(err(0))
                    .map(|(&v, &e)| arg_e(v, e))
                    .collect();
                max_bounds(x, &ex, axes)
            }
            Op::MatMul => {
                let sa = &values[node.args[0].index()]
                    .as_ref()
                    .expect("argument")
                    .shape;
                let sb = &values[node.args[1].index()]
                    .as_ref()
                    .expect("argument")
                    .shape;
                let (m, kk, nn) = (sa.0[0], sa.0[1], sb.0[1]);
                let (a, b, ea, eb) = (val(0), val(1), err(0), err(1));
                let mut out = vec![0.0; m * nn];
                for i in 0..m {
                    for j in 0..nn {
                        let mut acc = 0.0;
                        let mut ee = 0.0;
                        for l in 0..kk {
                            let (x, z) = (a[i * kk + l], b[l * nn + j]);
                            let p = dt.round(x * z);
                            acc = dt.round(acc + p);
                            ee += product(x, ea[i * kk + l], z, eb[l * nn + j])
                                + rnd(dt, p)
                                + rnd(dt, acc);
                        }
                        out[i * nn + j] = ee;
                    }
                }
                out
            }
            Op::Broadcast
            | Op::Reshape
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Concat { .. } => {
                let es: Vec<Vec<f64>> = (0..node.args.len())
                    .map(|k| {
                        val(k)
                            .iter()
                            .zip(err(k))
                            .map(|(&v, &e)| arg_e(v, e))
                            .collect()
                    })
                    .collect();
                let shapes: Vec<&Shape> = node.args.iter().map(|a| &graph.node(*a).shape).collect();
                let refs: Vec<&[f64]> = es.iter().map(|v| v.as_slice()).collect();
                move_bounds(node, &refs, &shapes)?
            }
        };
        if dt != DType::Bool {
            for (ek, yk) in e.iter_mut().zip(y) {
                if !yk.is_finite() && !ek.is_nan() {
                    *ek = 0.0;
                }
            }
        }
        errors[i] = Some(e);
    }
    Ok(Bounds { values, errors })
}

/// Output index of every input element of a reduction over `axes`.
fn reduce_targets(x: &Shape, axes: &[u8]) -> (usize, Vec<usize>) {
    let kept: Vec<usize> = (0..x.rank())
        .filter(|i| !axes.contains(&(*i as u8)))
        .collect();
    let out = Shape(kept.iter().map(|&i| x.0[i]).collect());
    let strides = out.strides();
    let mut idx = vec![0usize; x.rank()];
    let mut targets = Vec::with_capacity(x.numel());
    for _ in 0..x.numel() {
        targets.push(kept.iter().zip(&strides).map(|(&ax, &s)| idx[ax] * s).sum());
        for ax in (0..x.rank()).rev() {
            idx[ax] += 1;
            if idx[ax] < x.0[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    (out.numel(), targets)
}

fn sum_bounds(x: &Shape, v: &[f64], e: &[f64], axes: &[u8], dt: DType) -> Vec<f64> {
    let (n, targets) = reduce_targets(x, axes);
    let mut acc = vec![0.0; n];
    let mut out = vec![0.0; n];
    for (k, &o) in targets.iter().enumerate() {
        acc[o] = dt.round(acc[o] + v[k]);
        out[o] += arg_e(v[k], e[k]) + rnd(dt, acc[o]);
    }
    out
}

/// The largest argument bound of each output of a `reduce_max`.
fn max_bounds(x: &Shape, e: &[f64], axes: &[u8]) -> Vec<f64> {
    let (n, targets) = reduce_targets(x, axes);
    let mut out = vec![0.0f64; n];
    for (k, &o) in targets.iter().enumerate() {
        out[o] = max_e(out[o], e[k]);
    }
    out
}

/// Checks optimised outputs against the original ones under `tol`, with
/// `bounds` the original outputs' error bounds (from [`error_bounds`]).
/// Counts, dtypes and shapes must be equal. Returns a description of the
/// first disagreement.
pub fn compare_outputs(
    names: &[String],
    original: &[Tensor],
    optimised: &[Tensor],
    bounds: &[Vec<f64>],
    tol: &Tolerance,
) -> Result<(), String> {
    if original.len() != optimised.len() {
        return Err(format!(
            "{} outputs originally, {} after optimisation",
            original.len(),
            optimised.len()
        ));
    }
    for (o, (a, b)) in original.iter().zip(optimised).enumerate() {
        let name = names.get(o).map_or("?", String::as_str);
        if a.dtype != b.dtype || a.shape != b.shape {
            return Err(format!(
                "output `{name}`: type {}{} became {}{}",
                a.dtype, a.shape, b.dtype, b.shape
            ));
        }
        for (k, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
            let e = bounds[o][k];
            let ok = if e.is_nan() {
                true
            } else if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                let allowed = tol.allowed(x, y, e);
                allowed.is_nan() || (x - y).abs() <= allowed
            };
            if !ok {
                return Err(format!(
                    "output `{name}` element {k}: original {x:?}, optimised {y:?} (difference {:e}, error bound {e:e} units, allowed {:e})",
                    (x - y).abs(),
                    tol.allowed(x, y, e)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_graphs_verify_and_evaluate() {
        let mut runner = TestRunner::deterministic();
        let strat = arb_graph(GenConfig::default());
        for _ in 0..300 {
            let case = strat.new_tree(&mut runner).expect("tree").current();
            crux_ir::graph::verify(&case.graph).expect("verifies");
            let out = crux_ir::graph::eval(&case.graph, &case.params).expect("evaluates");
            assert!(!out.is_empty() && out.len() <= 3);
            for t in &out {
                assert!(t.shape.rank() <= 3 && t.shape.numel() <= 64, "{case:?}");
            }
        }
    }

    #[test]
    fn cancellation_gets_a_large_bound() {
        // (1 + 1e-10) - 1: the bound is of the order of the operands, not the result.
        let mut g = Graph::new();
        let p = g.add_param("p", DType::F64, []);
        let x = g.param(p).unwrap();
        let one = g.constant(1.0, DType::F64, []).unwrap();
        let s = g.add2(x, one).unwrap();
        let d = g.sub(s, one).unwrap();
        g.set_output("d", d);
        let tol = Tolerance::default();
        let b = error_bounds(&g, &[Tensor::scalar(1e-10)], &tol).unwrap();
        let e = b.outputs(&g)[0][0];
        assert!((1.0..5.0).contains(&e), "{e}");
    }

    #[test]
    fn comparison_rules() {
        let tol = Tolerance::default();
        let t = |v: f64| Tensor::scalar(v);
        let names = vec!["y".to_string()];
        let cmp =
            |a: f64, b: f64, e: f64| compare_outputs(&names, &[t(a)], &[t(b)], &[vec![e]], &tol);
        assert!(cmp(f64::NAN, f64::NAN, 0.0).is_ok());
        assert!(cmp(f64::NAN, 1.0, 0.0).is_err());
        assert!(cmp(f64::INFINITY, f64::INFINITY, 0.0).is_ok());
        assert!(cmp(f64::INFINITY, f64::NEG_INFINITY, 0.0).is_err());
        assert!(cmp(f64::INFINITY, 1e308, 0.0).is_err());
        assert!(cmp(1.0, 1.0 + 1e-13, 0.0).is_ok());
        assert!(cmp(1.0, 1.0 + 1e-11, 0.0).is_err());
        // A bound of 2 units allows 1e-12 * 64 * 2 absolute.
        assert!(cmp(1e-10, 1.5e-10, 2.0).is_ok());
        assert!(cmp(1e-10, 3e-10, 2.0).is_err());
        assert!(cmp(1e-10, 1.5e-10, 0.0).is_err());
    }
}
