//! The reference interpreter: the semantics of the graph IR.
//!
//! Every optimisation and backend is checked against it. Values are held as
//! f64; `f32` nodes are rounded to f32 after every operation (exact for the
//! correctly rounded operations, and the definition of f32 semantics for
//! the rest), `bool` nodes hold 0 or 1.

use super::op::Op;
use super::types::{DType, NodeId, Shape};
use super::{Graph, GraphError};

/// A dense row-major tensor value.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Elements in row-major order (`shape.numel()` of them).
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor from its parts; values are rounded to `dtype`.
    ///
    /// Returns an error when the element count does not match the shape.
    pub fn new(
        dtype: DType,
        shape: impl Into<Shape>,
        data: Vec<f64>,
    ) -> Result<Tensor, GraphError> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(GraphError::Invalid {
                op: "tensor",
                msg: format!(
                    "shape {shape} needs {} elements, got {}",
                    shape.numel(),
                    data.len()
                ),
            });
        }
        Ok(Tensor {
            dtype,
            shape,
            data: data.into_iter().map(|v| dtype.round(v)).collect(),
        })
    }

    /// An f64 tensor.
    pub fn f64(shape: impl Into<Shape>, data: Vec<f64>) -> Result<Tensor, GraphError> {
        Tensor::new(DType::F64, shape, data)
    }

    /// A tensor filled with one value.
    pub fn full(dtype: DType, shape: impl Into<Shape>, v: f64) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        Tensor {
            dtype,
            shape,
            data: vec![dtype.round(v); n],
        }
    }

    /// A scalar f64 tensor.
    pub fn scalar(v: f64) -> Tensor {
        Tensor::full(DType::F64, Shape::scalar(), v)
    }

    /// Bitwise equality (NaNs with equal payloads compare equal).
    pub fn bit_eq(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype
            && self.shape == other.shape
            && self.data.len() == other.data.len()
            && self
                .data
                .iter()
                .zip(&other.data)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// If every element has the same bits, that value.
    pub fn uniform_value(&self) -> Option<f64> {
        let first = *self.data.first()?;
        self.data
            .iter()
            .all(|v| v.to_bits() == first.to_bits())
            .then_some(first)
    }
}

/// Evaluates the named outputs of `graph` for the given parameter tensors
/// (one per parameter slot, in slot order). Returns one tensor per output.
pub fn eval(graph: &Graph, params: &[Tensor]) -> Result<Vec<Tensor>, GraphError> {
    let roots: Vec<NodeId> = graph.outputs().iter().map(|(_, n)| *n).collect();
    let vals = eval_all(graph, params, &roots)?;
    Ok(roots
        .iter()
        .map(|r| {
            vals[r.index()]
                .clone()
                .expect("eval_all evaluates every root: roots are live")
        })
        .collect())
}

fn check_params(graph: &Graph, params: &[Tensor]) -> Result<(), GraphError> {
    if params.len() != graph.params().len() {
        return Err(GraphError::ParamCount {
            expected: graph.params().len(),
            got: params.len(),
        });
    }
    for (i, (info, t)) in graph.params().iter().zip(params).enumerate() {
        // `Tensor`'s fields are public: a hand-built tensor may hold the
        // wrong number of values for its shape.
        if info.shape != t.shape || info.dtype != t.dtype || t.data.len() != t.shape.numel() {
            return Err(GraphError::ParamShape {
                slot: super::ParamId(i as u32),
                name: info.name.clone(),
                expected: info.shape.clone(),
                got: t.shape.clone(),
            });
        }
    }
    Ok(())
}

/// Evaluates every node needed by `roots`; the result is indexed by node id
/// (`None` for nodes that were not needed).
pub fn eval_all(
    graph: &Graph,
    params: &[Tensor],
    roots: &[NodeId],
) -> Result<Vec<Option<Tensor>>, GraphError> {
    check_params(graph, params)?;
    let live = graph.reachable(roots);
    let mut vals: Vec<Option<Tensor>> = vec![None; graph.len()];
    for (i, node) in graph.nodes().iter().enumerate() {
        if !live[i] {
            continue;
        }
        let arg = |k: usize| -> &Tensor {
            vals[node.args[k].index()]
                .as_ref()
                .expect("a live node's arguments are live and precede it (Graph::add checks), so they are evaluated first")
        };
        let dt = node.dtype;
        let shape = &node.shape;
        let data: Vec<f64> = match &node.op {
            Op::Param(p) => params[p.index()].data.clone(),
            Op::Data(d) => graph.data()[d.index()].value.data.clone(),
            Op::Const(bits) => vec![f64::from_bits(*bits); shape.numel()],
            Op::Unary(u) => arg(0).data.iter().map(|&x| dt.round(u.apply(x))).collect(),
            Op::Binary(b) => arg(0)
                .data
                .iter()
                .zip(&arg(1).data)
                .map(|(&x, &y)| dt.round(b.apply(x, y)))
                .collect(),
            Op::Compare(c) => arg(0)
                .data
                .iter()
                .zip(&arg(1).data)
                .map(|(&x, &y)| if c.apply(x, y) { 1.0 } else { 0.0 })
                .collect(),
            Op::Select => {
                let (c, a, b) = (arg(0), arg(1), arg(2));
                (0..shape.numel())
                    .map(|k| {
                        if c.data[k] != 0.0 {
                            a.data[k]
                        } else {
                            b.data[k]
                        }
                    })
                    .collect()
            }
            Op::Cast => arg(0).data.iter().map(|&x| dt.round(x)).collect(),
            Op::Sum { axes } => reduce(arg(0), axes, 0.0, |acc, x| acc + x, dt),
            Op::ReduceMax { axes } => reduce(
                arg(0),
                axes,
                f64::NEG_INFINITY,
                |acc, x| {
                    if acc.is_nan() || x.is_nan() {
                        f64::NAN
                    } else if x > acc {
                        x
                    } else {
                        acc
                    }
                },
                dt,
            ),
            Op::Broadcast => broadcast(arg(0), shape),
            Op::Reshape => arg(0).data.clone(),
            Op::Transpose { perm } => transpose(arg(0), perm, shape),
            Op::Slice { axis, start, step } => slice(arg(0), *axis as usize, *start, *step, shape),
            Op::Pad { axis, start, step } => pad(arg(0), *axis as usize, *start, *step, shape),
            Op::Concat { axis } => {
                let parts: Vec<&Tensor> = (0..node.args.len()).map(arg).collect();
                concat(&parts, *axis as usize, shape)
            }
            Op::MatMul => matmul(arg(0), arg(1), dt),
        };
        vals[i] = Some(Tensor {
            dtype: dt,
            shape: shape.clone(),
            data,
        });
    }
    Ok(vals)
}

/// Advances a row-major multi-index over `shape` (wrapping to zeros at the end).
fn next_index(idx: &mut [usize], shape: &Shape) {
    for ax in (0..shape.rank()).rev() {
        idx[ax] += 1;
        if idx[ax] < shape.0[ax] {
            return;
        }
        idx[ax] = 0;
    }
}

/// Multi-index iteration helper: the flat index in `src` (of shape `src`)
/// of every element of `out`, computed by `map` from the output multi-index.
fn gather_by(out: &Shape, mut map: impl FnMut(&[usize]) -> usize) -> Vec<usize> {
    let n = out.numel();
    let mut idx = vec![0usize; out.rank()];
    let mut res = Vec::with_capacity(n);
    for _ in 0..n {
        res.push(map(&idx));
        next_index(&mut idx, out);
    }
    res
}

fn reduce(x: &Tensor, axes: &[u8], init: f64, f: impl Fn(f64, f64) -> f64, dt: DType) -> Vec<f64> {
    let kept: Vec<usize> = (0..x.shape.rank())
        .filter(|i| !axes.contains(&(*i as u8)))
        .collect();
    let out_shape = Shape(kept.iter().map(|&i| x.shape.0[i]).collect());
    let out_strides = out_shape.strides();
    let mut out = vec![init; out_shape.numel()];
    // Walk the input in row-major order: the accumulation order along the
    // reduced axes is fixed (ascending), which every backend reproduces.
    let mut idx = vec![0usize; x.shape.rank()];
    for &v in &x.data {
        let o: usize = kept
            .iter()
            .zip(&out_strides)
            .map(|(&ax, &s)| idx[ax] * s)
            .sum();
        out[o] = dt.round(f(out[o], v));
        next_index(&mut idx, &x.shape);
    }
    out
}

fn broadcast(x: &Tensor, out: &Shape) -> Vec<f64> {
    let off = out.rank() - x.shape.rank();
    let strides = x.shape.strides();
    gather_by(out, |idx| {
        (0..x.shape.rank())
            .map(|i| {
                if x.shape.0[i] == 1 {
                    0
                } else {
                    idx[i + off] * strides[i]
                }
            })
            .sum()
    })
    .into_iter()
    .map(|k| x.data[k])
    .collect()
}

fn transpose(x: &Tensor, perm: &[u8], out: &Shape) -> Vec<f64> {
    let strides = x.shape.strides();
    gather_by(out, |idx| {
        perm.iter()
            .enumerate()
            .map(|(o, &p)| idx[o] * strides[p as usize])
            .sum()
    })
    .into_iter()
    .map(|k| x.data[k])
    .collect()
}

/// Flat offset of multi-index `idx` under `strides`, with `axis` mapped
/// to `start + idx[axis] * step` (the strided placement of slice and pad).
fn strided_offset(
    idx: &[usize],
    strides: &[usize],
    axis: usize,
    start: usize,
    step: usize,
) -> usize {
    idx.iter()
        .enumerate()
        .map(|(i, &v)| if i == axis { start + v * step } else { v } * strides[i])
        .sum()
}

fn slice(x: &Tensor, axis: usize, start: usize, step: usize, out: &Shape) -> Vec<f64> {
    let strides = x.shape.strides();
    gather_by(out, |idx| strided_offset(idx, &strides, axis, start, step))
        .into_iter()
        .map(|k| x.data[k])
        .collect()
}

fn pad(x: &Tensor, axis: usize, start: usize, step: usize, out: &Shape) -> Vec<f64> {
    let mut res = vec![0.0; out.numel()];
    let out_strides = out.strides();
    let targets = gather_by(&x.shape, |idx| {
        strided_offset(idx, &out_strides, axis, start, step)
    });
    for (k, t) in targets.into_iter().enumerate() {
        res[t] = x.data[k];
    }
    res
}

fn concat(parts: &[&Tensor], axis: usize, out: &Shape) -> Vec<f64> {
    // Which part and offset each output index along `axis` comes from.
    let mut owner = Vec::with_capacity(out.0[axis]);
    for (p, t) in parts.iter().enumerate() {
        for j in 0..t.shape.0[axis] {
            owner.push((p, j));
        }
    }
    let part_strides: Vec<Vec<usize>> = parts.iter().map(|t| t.shape.strides()).collect();
    let mut res = Vec::with_capacity(out.numel());
    let mut idx = vec![0usize; out.rank()];
    for _ in 0..out.numel() {
        let (p, j) = owner[idx[axis]];
        let k: usize = idx
            .iter()
            .enumerate()
            .map(|(i, &v)| if i == axis { j } else { v } * part_strides[p][i])
            .sum();
        res.push(parts[p].data[k]);
        next_index(&mut idx, out);
    }
    res
}

fn matmul(a: &Tensor, b: &Tensor, dt: DType) -> Vec<f64> {
    let (m, k) = (a.shape.0[0], a.shape.0[1]);
    let n = b.shape.0[1];
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            // Accumulate in ascending k from 0, one fused multiply-add
            // (one rounding) per step: the order and rounding every backend
            // reproduces (the kernel IR's `fma`).
            let mut acc = 0.0;
            for l in 0..k {
                let (x, y) = (a.data[i * k + l], b.data[l * n + j]);
                acc = match dt {
                    DType::F32 => (x as f32).mul_add(y as f32, acc as f32) as f64,
                    _ => x.mul_add(y, acc),
                };
            }
            out[i * n + j] = acc;
        }
    }
    out
}
