//! Lowering: a log-density graph (outputs `logp` and `grad.p<i>`) to one
//! kernel-IR function
//! `logp_grad(theta: [f64], grad: [f64], scratch: [f64], data...: [f64]) -> f64`.
//!
//! Strategy (fusion by inlining):
//! * Elementwise ops and data movement (broadcast, slice, transpose, pad,
//!   concat, leaves) are *inlined*: their value at a multi-index is computed
//!   where it is used, so an elementwise chain becomes one loop body and no
//!   intermediate tensor is written.
//! * Reductions and matrix products are *materialised* into the scratch
//!   buffer by loops whose bodies inline their inputs: a reduction is fused
//!   into the loop that produces its input. Nodes used more than once whose
//!   value is not a leaf or a view are materialised too (computed once), as
//!   are arguments of reshapes (so a reshape is a flat re-indexing).
//! * Within one loop body every inlined node is computed once per index
//!   (a scoped cache), so `r * r` evaluates `r` once.
//!
//! Accumulation orders are the interpreter's (ascending along reduced axes;
//! matmul ascending in `k`), and transcendentals use `crate::math`'s
//! expansions, so the kernel equals the graph interpreter up to the
//! expansions' accuracy, and every backend of the kernel IR is bit-identical.

mod plan;

use std::collections::HashMap;

use crux_ir::graph::{BinaryOp, CmpOp as GCmp, DType, Graph, NodeId, Op, Shape, UnaryOp};
use crux_ir::kernel::{
    Access, BinOp, BufferId, Builder, CmpOp, Function, KernelError, MatRef, Ty, Value,
};

use crate::math;
use crate::pipeline::{grad_output_name, LOGP_OUTPUT};
use crate::verify::{InvalidIr, VerifyError};
use plan::Plan;

/// Errors of lowering.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LowerError {
    /// The graph uses something lowering does not support yet.
    #[error("cannot lower: {0}")]
    Unsupported(String),
    /// The graph is not a log-density graph.
    #[error("not a log-density graph: {0}")]
    NotLogDensity(String),
    /// The produced kernel failed verification (a bug in lowering).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The lowered function does not verify (an internal compiler error,
    /// naming the pass `lower`).
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Finishes the lowered function; `Builder::finish` runs the kernel
/// verifier (in every build), whose failure is a bug in lowering.
fn finish(b: Builder, returns: &[Value]) -> Result<Function, LowerError> {
    b.finish(returns).map_err(|error| {
        LowerError::Verify(VerifyError {
            pass: "lower",
            error: InvalidIr::Kernel(error),
        })
    })
}

/// Where things live in the lowered function's buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Offset of each parameter slot in `theta` and `grad`.
    pub param_offsets: Vec<usize>,
    /// Length of `theta` and `grad`.
    pub dim: usize,
    /// Length of the scratch buffer.
    pub scratch: usize,
    /// The data tensors, in buffer order (buffer `3 + k` is data tensor
    /// `k`), then the column-major copies lowering adds of constant data
    /// matrices that multiply a vector.
    pub data: Vec<Vec<f64>>,
    /// The data buffers that are runtime inputs (the graph's runtime data,
    /// see `crux_ir::graph::DataInfo::runtime`), in buffer order: the
    /// caller maps them to buffers it writes, and `data` holds only their
    /// default values.
    pub inputs: Vec<RuntimeInput>,
}

/// A data buffer of a lowered function whose values the caller provides
/// at each call (minibatch weights), named as in the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInput {
    /// Its index among the data buffers (buffer `3 + data`).
    pub data: usize,
    /// The graph's name of the tensor.
    pub name: String,
}

/// Counts for reports: how much was fused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LowerStats {
    /// `for` loops emitted.
    pub loops: usize,
    /// Tensors materialised in scratch.
    pub materialised: usize,
    /// Matrix products emitted as one `gemm` instruction (the others are
    /// loops: an operand that is not a strided view of a buffer).
    pub gemms: usize,
    /// Buffers of the function (theta, grad, scratch, data).
    pub buffers: usize,
}

/// A lowered log-density.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The kernel.
    pub function: Function,
    /// Buffer layout.
    pub layout: Layout,
    /// Fusion statistics.
    pub stats: LowerStats,
}

/// Buffer ids of the lowered function.
const THETA: BufferId = BufferId(0);
const GRAD: BufferId = BufferId(1);
const SCRATCH: BufferId = BufferId(2);

/// The innermost body of a loop nest: emits code for one multi-index.
type ElementBody<'a, 'g> =
    dyn FnMut(&mut Builder, &mut Lowerer<'g>, &[Value]) -> Result<(), LowerError> + 'a;

struct Lowerer<'g> {
    g: &'g Graph,
    plan: Plan,
    layout: Layout,
    /// Scratch offset of each materialised node.
    scratch_at: HashMap<NodeId, usize>,
    /// Inlined values per region scope: (node, index values) → value.
    cache: Vec<HashMap<(NodeId, Vec<Value>), Value>>,
    /// Column-major copies of constant data matrices that are the left
    /// operand of a matrix–vector product (data index → its buffer): the
    /// vectorised routine then reads them with unit stride.
    data_t: HashMap<usize, BufferId>,
    stats: LowerStats,
}

/// Lowers a log-density graph (scalar output `logp`, outputs `grad.p<i>`
/// of each parameter slot's shape) to a kernel function named `name`.
pub fn lower_log_density(g: &Graph, name: &str) -> Result<Lowered, LowerError> {
    let logp = g
        .output(LOGP_OUTPUT)
        .map_err(|_| LowerError::NotLogDensity(format!("no `{LOGP_OUTPUT}` output")))?;
    if !g.node(logp).shape.0.is_empty() {
        return Err(LowerError::NotLogDensity(format!(
            "`{LOGP_OUTPUT}` is not a scalar"
        )));
    }
    let mut grads = Vec::new();
    for (i, p) in g.params().iter().enumerate() {
        let n = g.output(&grad_output_name(i)).map_err(|_| {
            LowerError::NotLogDensity(format!("no gradient output for parameter {}", p.name))
        })?;
        grads.push(n);
    }
    if let Some(n) = g.nodes().iter().find(|n| n.dtype == DType::F32) {
        return Err(LowerError::Unsupported(format!(
            "f32 nodes ({} ...): the lowering handles f64 graphs",
            n.op.name()
        )));
    }
    let mut roots = vec![logp];
    roots.extend(&grads);
    let (mut lw, mut b) = Lowerer::start(g, &roots, name, "grad")?;
    for (i, &gn) in grads.iter().enumerate() {
        let off = lw.layout.param_offsets[i];
        lw.write_tensor(&mut b, gn, GRAD, off)?;
    }
    let lp = lw.value(&mut b, logp, &[])?;
    let function = finish(b, &[lp])?;
    Ok(Lowered {
        function,
        layout: lw.layout,
        stats: lw.stats,
    })
}

/// Where [`lower_values`] writes each output.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSlot {
    /// Output name.
    pub name: String,
    /// Offset in the `out` buffer.
    pub offset: usize,
    /// Shape.
    pub shape: Shape,
}

/// Lowers every output of `g` to one function
/// `values(theta: [f64], out: [f64], scratch: [f64], data...: [f64])`
/// that writes the outputs, in order, into `out` (the pushforward of a
/// draw `theta`). Returns the lowered function (its `layout.dim` is the
/// length of θ) and the output slots.
pub fn lower_values(g: &Graph, name: &str) -> Result<(Lowered, Vec<OutputSlot>), LowerError> {
    if let Some(n) = g.nodes().iter().find(|n| n.dtype == DType::F32) {
        return Err(LowerError::Unsupported(format!(
            "f32 nodes ({} ...): the lowering handles f64 graphs",
            n.op.name()
        )));
    }
    let roots: Vec<NodeId> = g.outputs().iter().map(|(_, n)| *n).collect();
    let (mut lw, mut b) = Lowerer::start(g, &roots, name, "out")?;
    let mut slots = Vec::new();
    let mut off = 0;
    for (oname, n) in g.outputs() {
        let shape = g.node(*n).shape.clone();
        lw.write_tensor(&mut b, *n, GRAD, off)?;
        slots.push(OutputSlot {
            name: oname.clone(),
            offset: off,
            shape: shape.clone(),
        });
        off += shape.numel();
    }
    let function = finish(b, &[])?;
    Ok((
        Lowered {
            function,
            layout: lw.layout,
            stats: lw.stats,
        },
        slots,
    ))
}

impl<'g> Lowerer<'g> {
    /// The plan, layout and function signature for `roots`; buffer 1 is
    /// the write-only output buffer called `out_name`.
    fn start(
        g: &'g Graph,
        roots: &[NodeId],
        name: &str,
        out_name: &str,
    ) -> Result<(Lowerer<'g>, Builder), LowerError> {
        let plan = Plan::new(g, roots);
        let mut param_offsets = Vec::new();
        let mut dim = 0;
        for p in g.params() {
            param_offsets.push(dim);
            dim += p.shape.numel();
        }
        let mut scratch_at = HashMap::new();
        let mut scratch = 0;
        for &n in &plan.materialise_order {
            scratch_at.insert(n, scratch);
            scratch += g.node(n).shape.numel();
        }
        let layout = Layout {
            param_offsets,
            dim,
            scratch,
            data: g.data().iter().map(|d| d.value.data.clone()).collect(),
            inputs: g
                .data()
                .iter()
                .enumerate()
                .filter(|(_, d)| d.runtime)
                .map(|(k, d)| RuntimeInput {
                    data: k,
                    name: d.name.clone(),
                })
                .collect(),
        };
        let mut lw = Lowerer {
            g,
            plan,
            layout,
            scratch_at,
            cache: vec![HashMap::new()],
            data_t: HashMap::new(),
            stats: LowerStats::default(),
        };
        let mut b = Builder::new(name);
        b.buffer("theta", Ty::F64, Access::Read);
        b.buffer(out_name, Ty::F64, Access::Write);
        b.buffer("scratch", Ty::F64, Access::ReadWrite);
        for d in g.data() {
            b.buffer(sanitize(&d.name), Ty::F64, Access::Read);
        }
        lw.transposed_data(&mut b);
        lw.stats.buffers = 3 + lw.layout.data.len();
        for group in lw.plan.groups(g) {
            if group.len() == 1 {
                lw.materialise(&mut b, group[0])?;
            } else {
                lw.fused(&mut b, &group)?;
            }
        }
        Ok((lw, b))
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl<'g> Lowerer<'g> {
    fn cached(&self, key: &(NodeId, Vec<Value>)) -> Option<Value> {
        self.cache.iter().rev().find_map(|m| m.get(key).copied())
    }

    /// Flat row-major offset of `idx` in `shape`, plus `base`.
    fn flat(&self, b: &mut Builder, shape: &Shape, idx: &[Value], base: usize) -> Value {
        let strides = shape.strides();
        let mut acc = b.i64(base as i64);
        for (k, &i) in idx.iter().enumerate() {
            let t = if strides[k] == 1 {
                i
            } else {
                let s = b.i64(strides[k] as i64);
                b.mul(i, s)
            };
            acc = b.add(acc, t);
        }
        acc
    }

    /// Nested loops over `shape`, calling `body(b, lw, idx)` innermost.
    fn for_each(
        &mut self,
        b: &mut Builder,
        shape: &[usize],
        idx: &mut Vec<Value>,
        body: &mut ElementBody<'_, 'g>,
    ) -> Result<(), LowerError> {
        if idx.len() == shape.len() {
            return body(b, self, idx);
        }
        if shape[idx.len()] == 1 {
            // A single iteration: no loop, index 0.
            let zero = b.i64(0);
            idx.push(zero);
            let r = self.for_each(b, shape, idx, body);
            idx.pop();
            return r;
        }
        let lo = b.i64(0);
        let hi = b.i64(shape[idx.len()] as i64);
        self.stats.loops += 1;
        let mut err = None;
        b.for_(lo, hi, &[], |b, i, _| {
            self.cache.push(HashMap::new());
            idx.push(i);
            if let Err(e) = self.for_each(b, shape, idx, body) {
                err = Some(e);
            }
            idx.pop();
            self.cache.pop();
            vec![]
        });
        err.map_or(Ok(()), Err)
    }

    /// Writes every element of `n` to `buf[off + flat]`.
    fn write_tensor(
        &mut self,
        b: &mut Builder,
        n: NodeId,
        buf: BufferId,
        off: usize,
    ) -> Result<(), LowerError> {
        let shape = self.g.node(n).shape.clone();
        let mut idx = Vec::new();
        self.for_each(b, &shape.0.clone(), &mut idx, &mut |b, lw, idx| {
            let v = lw.value(b, n, idx)?;
            let at = lw.flat(b, &shape, idx, off);
            b.store(buf, at, v);
            Ok(())
        })
    }

    /// Computes a materialised node into scratch.
    fn materialise(&mut self, b: &mut Builder, n: NodeId) -> Result<(), LowerError> {
        self.stats.materialised += 1;
        let off = self.scratch_at[&n];
        let node = self.g.node(n).clone();
        match &node.op {
            Op::Sum { axes } | Op::ReduceMax { axes } => {
                let is_sum = matches!(node.op, Op::Sum { .. });
                let arg = node.args[0];
                let in_shape = self.g.node(arg).shape.clone();
                let kept: Vec<usize> = (0..in_shape.rank())
                    .filter(|i| !axes.contains(&(*i as u8)))
                    .collect();
                let red: Vec<usize> = (0..in_shape.rank())
                    .filter(|i| axes.contains(&(*i as u8)))
                    .collect();
                let out_shape = node.shape.clone();
                let red_dims: Vec<usize> = red.iter().map(|&a| in_shape.0[a]).collect();
                let mut oidx = Vec::new();
                self.for_each(b, &out_shape.0.clone(), &mut oidx, &mut |b, lw, oidx| {
                    let init = if is_sum {
                        b.f64(0.0)
                    } else {
                        b.f64(f64::NEG_INFINITY)
                    };
                    let acc = lw.reduce_loops(
                        b,
                        arg,
                        &kept,
                        &red,
                        &red_dims,
                        oidx,
                        &mut Vec::new(),
                        init,
                        is_sum,
                    )?;
                    let at = lw.flat(b, &out_shape, oidx, off);
                    b.store(SCRATCH, at, acc);
                    Ok(())
                })
            }
            Op::MatMul => {
                let (a, c) = (node.args[0], node.args[1]);
                let k = self.g.node(a).shape.0[1];
                let (m, ncols) = (node.shape.0[0], node.shape.0[1]);
                let out_shape = node.shape.clone();
                // Both operands strided views of buffers: one instruction
                // (the backends' vectorised routine), the same chains.
                if let (Some(ra), Some(rc), true) =
                    (self.left_ref(a), self.mat_ref(c), m * ncols * k > 0)
                {
                    let out = MatRef::row_major(SCRATCH, off as u64, ncols as u64);
                    b.gemm((m as u64, ncols as u64, k as u64), ra, rc, out);
                    self.stats.gemms += 1;
                    return Ok(());
                }
                // Blocks of ROWS × COLS outputs: each left-operand load feeds
                // COLS accumulators and each right-operand load ROWS, with
                // ROWS·COLS independent chains (instruction-level
                // parallelism). Each entry is still accumulated on its own,
                // ascending in k from 0.0 by fused multiply-adds, so the
                // result is bit-identical to the unblocked loop and to the
                // graph interpreter's matmul.
                const ROWS: usize = 4;
                const COLS: usize = 2;
                let mut err = None;
                // Blocked then remaining indices of one dimension: (number
                // of blocks, block size, remainder start, end).
                let split = |n: usize, s: usize| (n / s, s, (n / s) * s, n);
                let (rb, rs, r0, r1) = split(m, ROWS);
                let (cb, cs, c0, c1) = split(ncols, COLS);
                // Emits `f(b, lw, indices)` for every block of a dimension:
                // a loop over whole blocks, then single remaining indices.
                fn blocks(
                    b: &mut Builder,
                    (nb, size, rest0, rest1): (usize, usize, usize, usize),
                    loops: &mut usize,
                    f: &mut dyn FnMut(&mut Builder, &[Value]),
                ) {
                    if nb == 1 {
                        let idx: Vec<Value> = (0..size).map(|q| b.i64(q as i64)).collect();
                        f(b, &idx);
                    } else if nb > 1 {
                        let (lo, hi) = (b.i64(0), b.i64(nb as i64));
                        *loops += 1;
                        b.for_(lo, hi, &[], |b, ib, _| {
                            let sv = b.i64(size as i64);
                            let base = b.mul(ib, sv);
                            let idx: Vec<Value> = (0..size)
                                .map(|q| {
                                    let qv = b.i64(q as i64);
                                    b.add(base, qv)
                                })
                                .collect();
                            f(b, &idx);
                            vec![]
                        });
                    }
                    for i in rest0..rest1 {
                        let v = b.i64(i as i64);
                        f(b, &[v]);
                    }
                }
                let mut loops = 0;
                let lw = &mut *self;
                blocks(b, (cb, cs, c0, c1), &mut loops, &mut |b, cols| {
                    let mut inner = 0;
                    blocks(b, (rb, rs, r0, r1), &mut inner, &mut |b, rows| {
                        if let Err(e) = lw.matmul_block(b, (a, c), k, rows, cols, &out_shape, off) {
                            err.get_or_insert(e);
                        }
                    });
                    lw.stats.loops += inner;
                });
                self.stats.loops += loops;
                err.map_or(Ok(()), Err)
            }
            _ => self.write_tensor_inline(b, n, off),
        }
    }

    /// Adds a column-major copy (a data buffer after the graph's) of every
    /// constant data matrix that is the left operand of a matrix–vector
    /// product (`m > 1`, `n = 1`): the routine computes those transposed,
    /// vectorised along `m`, and would otherwise repack the matrix at
    /// every call.
    fn transposed_data(&mut self, b: &mut Builder) {
        let g = self.g;
        for &n in &self.plan.materialise_order {
            let node = g.node(n);
            if node.op != Op::MatMul || node.shape.0[1] != 1 || node.shape.0[0] < 2 {
                continue;
            }
            let Op::Data(d) = g.node(node.args[0]).op else {
                continue;
            };
            let k = d.0 as usize;
            if self.data_t.contains_key(&k) || g.data()[k].runtime {
                continue;
            }
            let (rows, cols) = (node.shape.0[0], g.node(node.args[0]).shape.0[1]);
            let src = &self.layout.data[k];
            let t: Vec<f64> = (0..rows * cols)
                .map(|q| src[(q % rows) * cols + q / rows])
                .collect();
            let name = format!("{}_t", sanitize(&g.data()[k].name));
            let id = b.buffer(name, Ty::F64, Access::Read);
            self.layout.data.push(t);
            self.data_t.insert(k, id);
        }
    }

    /// The left operand of a matrix product: its column-major copy if it
    /// has one (see [`Self::transposed_data`]), else [`Self::mat_ref`].
    fn left_ref(&self, n: NodeId) -> Option<MatRef> {
        if let Op::Data(d) = self.g.node(n).op {
            if let Some(&buf) = self.data_t.get(&(d.0 as usize)) {
                let rows = self.g.node(n).shape.0[0] as u64;
                return Some(MatRef {
                    buf,
                    off: 0,
                    rs: 1,
                    cs: rows,
                });
            }
        }
        self.mat_ref(n)
    }

    /// Node `n` (a matrix) as a strided view of a buffer, if it is one.
    fn mat_ref(&self, n: NodeId) -> Option<MatRef> {
        let (buf, off, strides) = self.strided(n)?;
        match strides[..] {
            [rs, cs] => Some(MatRef { buf, off, rs, cs }),
            _ => None,
        }
    }

    /// Node `n` as a strided view: its buffer, the index of its first
    /// element and one stride per axis — for materialised nodes, leaves,
    /// and transposes, broadcasts, slices, casts and contiguous reshapes of
    /// views. `None` for anything computed inline.
    fn strided(&self, n: NodeId) -> Option<(BufferId, u64, Vec<u64>)> {
        let node = self.g.node(n);
        let row_major =
            |shape: &Shape| -> Vec<u64> { shape.strides().iter().map(|&s| s as u64).collect() };
        if let Some(&off) = self.scratch_at.get(&n) {
            return Some((SCRATCH, off as u64, row_major(&node.shape)));
        }
        let arg = || node.args[0];
        match &node.op {
            Op::Param(p) => Some((
                THETA,
                self.layout.param_offsets[p.index()] as u64,
                row_major(&node.shape),
            )),
            Op::Data(d) => Some((BufferId(3 + d.0), 0, row_major(&node.shape))),
            Op::Cast => self.strided(arg()),
            Op::Transpose { perm } => {
                let (buf, off, s) = self.strided(arg())?;
                // Output axis o reads input axis perm[o].
                let t = perm.iter().map(|&p| s[p as usize]).collect();
                Some((buf, off, t))
            }
            Op::Broadcast => {
                let (buf, off, s) = self.strided(arg())?;
                let src = &self.g.node(arg()).shape.0;
                let lead = node.shape.rank() - src.len();
                let mut t = vec![0; lead];
                t.extend(
                    src.iter()
                        .zip(&s)
                        .map(|(&d, &st)| if d == 1 { 0 } else { st }),
                );
                Some((buf, off, t))
            }
            Op::Slice { axis, start, step } => {
                let (buf, off, mut s) = self.strided(arg())?;
                let ax = *axis as usize;
                let off = off + *start as u64 * s[ax];
                s[ax] *= *step as u64;
                Some((buf, off, s))
            }
            Op::Reshape => {
                let (buf, off, s) = self.strided(arg())?;
                let contiguous = s == row_major(&self.g.node(arg()).shape);
                contiguous.then(|| (buf, off, row_major(&node.shape)))
            }
            _ => None,
        }
    }

    /// `out[row, col] = Σ_l a[row, l] · c[l, col]` for every `row` of
    /// `rows` and `col` of `cols` (i64 values), in one loop over `l` with
    /// one accumulator per output.
    #[allow(clippy::too_many_arguments)]
    fn matmul_block(
        &mut self,
        b: &mut Builder,
        (a, c): (NodeId, NodeId),
        k: usize,
        rows: &[Value],
        cols: &[Value],
        out_shape: &Shape,
        off: usize,
    ) -> Result<(), LowerError> {
        let (lo, hi) = (b.i64(0), b.i64(k as i64));
        let init: Vec<Value> = (0..rows.len() * cols.len()).map(|_| b.f64(0.0)).collect();
        self.stats.loops += 1;
        let mut err = None;
        let accs = b.for_(lo, hi, &init, |b, l, accs| {
            self.cache.push(HashMap::new());
            let r = (|| -> Result<Vec<Value>, LowerError> {
                let mut ys = Vec::with_capacity(cols.len());
                for col in cols {
                    ys.push(self.value(b, c, &[l, *col])?);
                }
                let mut next = Vec::with_capacity(accs.len());
                for (ri, row) in rows.iter().enumerate() {
                    let x = self.value(b, a, &[*row, l])?;
                    for (ci, y) in ys.iter().enumerate() {
                        next.push(b.fma(x, *y, accs[ri * cols.len() + ci]));
                    }
                }
                Ok(next)
            })();
            self.cache.pop();
            match r {
                Ok(v) => v,
                Err(e) => {
                    err = Some(e);
                    accs.to_vec()
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        for (ri, row) in rows.iter().enumerate() {
            for (ci, col) in cols.iter().enumerate() {
                let at = self.flat(b, out_shape, &[*row, *col], off);
                b.store(SCRATCH, at, accs[ri * cols.len() + ci]);
            }
        }
        Ok(())
    }

    /// Materialises a group of nodes over one iteration domain in a single
    /// loop nest (see [`Plan::groups`]): elementwise members are computed and
    /// stored at each index (and kept in the cache for later members), full
    /// reductions accumulate in loop-carried values, stored after the loop.
    /// The order of accumulation is the domain's row-major order, as in the
    /// interpreter.
    fn fused(&mut self, b: &mut Builder, group: &[NodeId]) -> Result<(), LowerError> {
        self.stats.materialised += group.len();
        let domain = plan::domain(self.g, group[0]);
        let mut init = Vec::new();
        for &n in group {
            match self.g.node(n).op {
                Op::Sum { .. } => init.push(b.f64(0.0)),
                Op::ReduceMax { .. } => init.push(b.f64(f64::NEG_INFINITY)),
                _ => {}
            }
        }
        let mut idx = Vec::new();
        let accs = self.fused_loops(b, group, &domain, &mut idx, init)?;
        let mut k = 0;
        for &n in group {
            if matches!(self.g.node(n).op, Op::Sum { .. } | Op::ReduceMax { .. }) {
                let at = b.i64(self.scratch_at[&n] as i64);
                b.store(SCRATCH, at, accs[k]);
                k += 1;
            }
        }
        Ok(())
    }

    fn fused_loops(
        &mut self,
        b: &mut Builder,
        group: &[NodeId],
        domain: &Shape,
        idx: &mut Vec<Value>,
        accs: Vec<Value>,
    ) -> Result<Vec<Value>, LowerError> {
        if idx.len() == domain.rank() {
            let mut out = Vec::with_capacity(accs.len());
            let mut k = 0;
            for &n in group {
                let node = self.g.node(n).clone();
                match node.op {
                    Op::Sum { .. } | Op::ReduceMax { .. } => {
                        let v = self.value(b, node.args[0], idx)?;
                        let acc = accs[k];
                        out.push(if matches!(node.op, Op::Sum { .. }) {
                            b.add(acc, v)
                        } else {
                            reduce_max_step(b, acc, v)
                        });
                        k += 1;
                    }
                    _ => {
                        let v = self.compute(b, n, idx)?;
                        let at = self.flat(b, domain, idx, self.scratch_at[&n]);
                        b.store(SCRATCH, at, v);
                        self.cache
                            .last_mut()
                            .expect("the cache always holds the function scope (pushes and pops pair up)")
                            .insert((n, idx.to_vec()), v);
                    }
                }
            }
            return Ok(out);
        }
        let dim = domain.0[idx.len()];
        if dim == 1 {
            let zero = b.i64(0);
            idx.push(zero);
            let r = self.fused_loops(b, group, domain, idx, accs);
            idx.pop();
            return r;
        }
        let lo = b.i64(0);
        let hi = b.i64(dim as i64);
        self.stats.loops += 1;
        let mut err = None;
        let out = b.for_(lo, hi, &accs, |b, i, c| {
            self.cache.push(HashMap::new());
            idx.push(i);
            let r = self.fused_loops(b, group, domain, idx, c.to_vec());
            idx.pop();
            self.cache.pop();
            r.unwrap_or_else(|e| {
                err = Some(e);
                c.to_vec()
            })
        });
        err.map_or(Ok(out), Err)
    }

    /// Materialises an inlinable node by computing it element by element.
    fn write_tensor_inline(
        &mut self,
        b: &mut Builder,
        n: NodeId,
        off: usize,
    ) -> Result<(), LowerError> {
        let shape = self.g.node(n).shape.clone();
        let mut idx = Vec::new();
        self.for_each(b, &shape.0.clone(), &mut idx, &mut |b, lw, idx| {
            let v = lw.compute(b, n, idx)?;
            let at = lw.flat(b, &shape, idx, off);
            b.store(SCRATCH, at, v);
            Ok(())
        })
    }

    /// Loops over the reduced axes, accumulating `arg` at the combined index.
    #[allow(clippy::too_many_arguments)]
    fn reduce_loops(
        &mut self,
        b: &mut Builder,
        arg: NodeId,
        kept: &[usize],
        red: &[usize],
        red_dims: &[usize],
        oidx: &[Value],
        ridx: &mut Vec<Value>,
        acc: Value,
        is_sum: bool,
    ) -> Result<Value, LowerError> {
        if ridx.len() == red.len() {
            let rank = kept.len() + red.len();
            let mut full = vec![oidx.first().copied().unwrap_or(acc); rank];
            for (k, &a) in kept.iter().enumerate() {
                full[a] = oidx[k];
            }
            for (k, &a) in red.iter().enumerate() {
                full[a] = ridx[k];
            }
            let v = self.value(b, arg, &full)?;
            return Ok(if is_sum {
                b.add(acc, v)
            } else {
                reduce_max_step(b, acc, v)
            });
        }
        if red_dims[ridx.len()] == 1 {
            let zero = b.i64(0);
            ridx.push(zero);
            let r = self.reduce_loops(b, arg, kept, red, red_dims, oidx, ridx, acc, is_sum);
            ridx.pop();
            return r;
        }
        let lo = b.i64(0);
        let hi = b.i64(red_dims[ridx.len()] as i64);
        self.stats.loops += 1;
        let mut err = None;
        let out = b.for_(lo, hi, &[acc], |b, i, c| {
            self.cache.push(HashMap::new());
            ridx.push(i);
            let r = self.reduce_loops(b, arg, kept, red, red_dims, oidx, ridx, c[0], is_sum);
            ridx.pop();
            self.cache.pop();
            match r {
                Ok(v) => vec![v],
                Err(e) => {
                    err = Some(e);
                    vec![c[0]]
                }
            }
        })[0];
        err.map_or(Ok(out), Err)
    }

    /// The value of node `n` at multi-index `idx`: a load from scratch if it
    /// is materialised, otherwise computed inline (cached per scope).
    fn value(&mut self, b: &mut Builder, n: NodeId, idx: &[Value]) -> Result<Value, LowerError> {
        // The cache first: a fused loop records the values it just stored.
        let key = (n, idx.to_vec());
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        if let Some(&off) = self.scratch_at.get(&n) {
            let shape = self.g.node(n).shape.clone();
            let at = self.flat(b, &shape, idx, off);
            return Ok(b.load(SCRATCH, at));
        }
        let v = self.compute(b, n, idx)?;
        self.cache
            .last_mut()
            .expect("the cache always holds the function scope (pushes and pops pair up)")
            .insert(key, v);
        Ok(v)
    }

    /// Computes node `n` at `idx` from its arguments (never from scratch).
    fn compute(&mut self, b: &mut Builder, n: NodeId, idx: &[Value]) -> Result<Value, LowerError> {
        let node = self.g.node(n).clone();
        let arg = |k: usize| node.args[k];
        Ok(match &node.op {
            Op::Param(p) => {
                let at = self.flat(b, &node.shape, idx, self.layout.param_offsets[p.index()]);
                b.load(THETA, at)
            }
            Op::Data(d) => {
                let at = self.flat(b, &node.shape, idx, 0);
                b.load(BufferId(3 + d.0), at)
            }
            Op::Const(bits) => b.constant(Ty::F64, *bits),
            Op::Unary(u) => {
                let x = self.value(b, arg(0), idx)?;
                unary(b, *u, x)?
            }
            Op::Binary(op) => {
                let x = self.value(b, arg(0), idx)?;
                let y = self.value(b, arg(1), idx)?;
                match op {
                    BinaryOp::Add => b.add(x, y),
                    BinaryOp::Sub => b.sub(x, y),
                    BinaryOp::Mul => b.mul(x, y),
                    BinaryOp::Div => b.div(x, y),
                    // The graph's max/min: NaN if either is NaN, else the
                    // first operand on ties (so +0 vs −0 keeps the first).
                    BinaryOp::Max | BinaryOp::Min => {
                        let c = if *op == BinaryOp::Max {
                            CmpOp::Ge
                        } else {
                            CmpOp::Le
                        };
                        let keep = b.cmp(c, x, y);
                        let m = b.select(keep, x, y);
                        let nx = b.cmp(CmpOp::Ne, x, x);
                        let ny = b.cmp(CmpOp::Ne, y, y);
                        let any = b.binary(BinOp::Or, nx, ny);
                        let nan = b.f64(f64::NAN);
                        b.select(any, nan, m)
                    }
                    BinaryOp::Pow => {
                        return Err(LowerError::Unsupported(
                            "pow (math expansions pending)".into(),
                        ))
                    }
                }
            }
            Op::Compare(c) => {
                let x = self.value(b, arg(0), idx)?;
                let y = self.value(b, arg(1), idx)?;
                let op = match c {
                    GCmp::Lt => CmpOp::Lt,
                    GCmp::Le => CmpOp::Le,
                    GCmp::Gt => CmpOp::Gt,
                    GCmp::Ge => CmpOp::Ge,
                    GCmp::Eq => CmpOp::Eq,
                    GCmp::Ne => CmpOp::Ne,
                };
                b.cmp(op, x, y)
            }
            Op::Select => {
                let c = self.value(b, arg(0), idx)?;
                let x = self.value(b, arg(1), idx)?;
                let y = self.value(b, arg(2), idx)?;
                b.select(c, x, y)
            }
            Op::Cast => self.value(b, arg(0), idx)?,
            Op::Broadcast => {
                let src = self.g.node(arg(0)).shape.clone();
                let off = node.shape.rank() - src.rank();
                let mut sidx = Vec::with_capacity(src.rank());
                for k in 0..src.rank() {
                    sidx.push(if src.0[k] == 1 {
                        b.i64(0)
                    } else {
                        idx[k + off]
                    });
                }
                self.value(b, arg(0), &sidx)?
            }
            Op::Reshape => {
                // The argument is materialised or a leaf (see the plan):
                // reshaping is re-indexing by the flat offset.
                let a = arg(0);
                let flat = self.flat(b, &node.shape, idx, 0);
                self.load_flat(b, a, flat)?
            }
            Op::Transpose { perm } => {
                let mut sidx = vec![idx[0]; perm.len()];
                for (o, &p) in perm.iter().enumerate() {
                    sidx[p as usize] = idx[o];
                }
                self.value(b, arg(0), &sidx)?
            }
            Op::Slice { axis, start, step } => {
                let mut sidx = idx.to_vec();
                let ax = *axis as usize;
                let s = b.i64(*step as i64);
                let st = b.i64(*start as i64);
                let m = b.mul(idx[ax], s);
                sidx[ax] = b.add(m, st);
                self.value(b, arg(0), &sidx)?
            }
            Op::Pad { axis, start, step } => {
                if *step != 1 {
                    return Err(LowerError::Unsupported("strided pad".into()));
                }
                let ax = *axis as usize;
                let len = self.g.node(arg(0)).shape.0[ax];
                let st = b.i64(*start as i64);
                let en = b.i64((*start + len) as i64);
                let ge = b.cmp(CmpOp::Ge, idx[ax], st);
                let lt = b.cmp(CmpOp::Lt, idx[ax], en);
                let inside = b.binary(BinOp::And, ge, lt);
                let mut sidx = idx.to_vec();
                let a = arg(0);
                let mut err = None;
                let v = b.if_(
                    inside,
                    |b| {
                        self.cache.push(HashMap::new());
                        sidx[ax] = b.sub(idx[ax], st);
                        let r = self.value(b, a, &sidx);
                        self.cache.pop();
                        match r {
                            Ok(v) => vec![v],
                            Err(e) => {
                                err = Some(e);
                                vec![b.f64(0.0)]
                            }
                        }
                    },
                    |b| vec![b.f64(0.0)],
                )[0];
                if let Some(e) = err {
                    return Err(e);
                }
                v
            }
            Op::Concat { axis } => {
                // A chain of ifs on the axis index.
                let ax = *axis as usize;
                let parts = node.args.clone();
                self.concat_at(b, &parts, ax, idx)?
            }
            Op::Sum { .. } | Op::ReduceMax { .. } | Op::MatMul => {
                return Err(LowerError::Unsupported(format!(
                    "{} was not materialised (lowering bug)",
                    node.op.name()
                )))
            }
        })
    }

    /// Concatenation at `idx`: each part is evaluated at its index clamped
    /// into range (so every load is in bounds) and the owning part is selected.
    fn concat_at(
        &mut self,
        b: &mut Builder,
        parts: &[NodeId],
        ax: usize,
        idx: &[Value],
    ) -> Result<Value, LowerError> {
        let mut start = 0;
        let mut result: Option<Value> = None;
        for &p in parts {
            let len = self.g.node(p).shape.0[ax];
            let st = b.i64(start as i64);
            let last = b.i64(len as i64 - 1);
            let zero = b.i64(0);
            let local = b.sub(idx[ax], st);
            let clamped = b.max(local, zero);
            let clamped = b.min(clamped, last);
            let mut sidx = idx.to_vec();
            sidx[ax] = clamped;
            let v = self.value(b, p, &sidx)?;
            result = Some(match result {
                None => v,
                Some(prev) => {
                    let mine = b.cmp(CmpOp::Ge, idx[ax], st);
                    b.select(mine, v, prev)
                }
            });
            start += len;
        }
        result.ok_or_else(|| LowerError::Unsupported("empty concat".into()))
    }

    /// Element `flat` (row-major) of node `n`, which must be a leaf or materialised.
    fn load_flat(&mut self, b: &mut Builder, n: NodeId, flat: Value) -> Result<Value, LowerError> {
        let node = self.g.node(n);
        if let Some(&off) = self.scratch_at.get(&n) {
            let o = b.i64(off as i64);
            let at = b.add(o, flat);
            return Ok(b.load(SCRATCH, at));
        }
        Ok(match node.op {
            Op::Param(p) => {
                let o = b.i64(self.layout.param_offsets[p.index()] as i64);
                let at = b.add(o, flat);
                b.load(THETA, at)
            }
            Op::Data(d) => b.load(BufferId(3 + d.0), flat),
            Op::Const(bits) => b.constant(Ty::F64, bits),
            _ => {
                return Err(LowerError::Unsupported(
                    "reshape of an inline node (lowering bug)".into(),
                ))
            }
        })
    }
}

/// One step of the interpreter's running maximum: NaN is sticky, otherwise the larger.
fn reduce_max_step(b: &mut Builder, acc: Value, v: Value) -> Value {
    let nan_acc = b.cmp(CmpOp::Ne, acc, acc);
    let nan_v = b.cmp(CmpOp::Ne, v, v);
    let any_nan = b.binary(BinOp::Or, nan_acc, nan_v);
    let gt = b.cmp(CmpOp::Gt, v, acc);
    let m = b.select(gt, v, acc);
    let nan = b.f64(f64::NAN);
    b.select(any_nan, nan, m)
}

/// A unary op in kernel IR: exact ops directly, transcendentals through the
/// shared math expansions.
fn unary(b: &mut Builder, u: UnaryOp, x: Value) -> Result<Value, LowerError> {
    Ok(match u {
        UnaryOp::Neg => b.neg(x),
        UnaryOp::Abs => b.abs(x),
        UnaryOp::Sqrt => b.sqrt(x),
        UnaryOp::Recip => {
            let one = b.f64(1.0);
            b.div(one, x)
        }
        UnaryOp::Sign => {
            // sign(x) in {-1, 0, 1}, NaN for NaN.
            let zero = b.f64(0.0);
            let one = b.f64(1.0);
            let m1 = b.f64(-1.0);
            let gt = b.cmp(CmpOp::Gt, x, zero);
            let lt = b.cmp(CmpOp::Lt, x, zero);
            let s = b.select(lt, m1, zero);
            let s = b.select(gt, one, s);
            let nan = b.cmp(CmpOp::Ne, x, x);
            b.select(nan, x, s)
        }
        UnaryOp::Exp => math::exp(b, x),
        UnaryOp::Expm1 => math::expm1(b, x),
        UnaryOp::Log => math::log(b, x),
        UnaryOp::Log1p => math::log1p(b, x),
        UnaryOp::Sin => math::sin(b, x),
        UnaryOp::Cos => math::cos(b, x),
        UnaryOp::Tan => math::tan(b, x),
        UnaryOp::Tanh => math::tanh(b, x),
        UnaryOp::Sigmoid => math::sigmoid(b, x),
        UnaryOp::Softplus => math::softplus(b, x),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lowered function that does not verify is an internal error of
    /// the pass `lower`.
    #[test]
    fn unverified_lowering_names_the_pass() {
        let mut b = Builder::new("broken");
        let x = b.param("x", Ty::F64);
        let ok = finish(b, &[x]).expect("a well-formed function");
        assert_eq!(ok.return_types(), [Ty::F64]);
        let b = Builder::new("broken");
        match finish(b, &[Value(7)]) {
            Err(LowerError::Verify(e)) => {
                assert_eq!(e.pass, "lower");
                assert!(e.to_string().contains("internal compiler error"), "{e}");
            }
            other => panic!("expected a verify error, got {other:?}"),
        }
    }
}
