//! Per-op differentiation rules: for each op, its JVP (forward) and VJP
//! (reverse) side by side.
//!
//! A tangent or cotangent of `None` is a structural zero: rules skip it
//! instead of building `0 * x` nodes, which keeps derivative graphs small
//! before optimisation.

use crux_ir::graph::{BinaryOp, CmpOp, DType, Graph, GraphError, NodeId, Op, Shape, UnaryOp};

type R<T> = Result<T, GraphError>;

/// `f'(a)` for a unary op as a node, given the argument `a` and result `y`
/// (`None` when the derivative is identically zero). Shared by both modes.
pub fn unary_derivative(g: &mut Graph, op: UnaryOp, a: NodeId, y: NodeId) -> R<Option<NodeId>> {
    let one = g.constant_like(1.0, a)?;
    let d = match op {
        UnaryOp::Neg => g.constant_like(-1.0, a)?,
        UnaryOp::Abs => g.unary(UnaryOp::Sign, a)?,
        UnaryOp::Sign => return Ok(None),
        UnaryOp::Sqrt => {
            // d sqrt(a) = 1 / (2 y)
            let two_y = g.add2(y, y)?;
            g.unary(UnaryOp::Recip, two_y)?
        }
        UnaryOp::Recip => {
            let yy = g.mul(y, y)?;
            g.neg(yy)?
        }
        UnaryOp::Exp => y,
        UnaryOp::Expm1 => g.add2(y, one)?,
        UnaryOp::Log => g.unary(UnaryOp::Recip, a)?,
        UnaryOp::Log1p => {
            let s = g.add2(one, a)?;
            g.unary(UnaryOp::Recip, s)?
        }
        UnaryOp::Sin => g.unary(UnaryOp::Cos, a)?,
        UnaryOp::Cos => {
            let s = g.unary(UnaryOp::Sin, a)?;
            g.neg(s)?
        }
        UnaryOp::Tan => {
            let yy = g.mul(y, y)?;
            g.add2(one, yy)?
        }
        UnaryOp::Tanh => {
            let yy = g.mul(y, y)?;
            g.sub(one, yy)?
        }
        UnaryOp::Sigmoid => {
            let c = g.sub(one, y)?;
            g.mul(y, c)?
        }
        UnaryOp::Softplus => g.unary(UnaryOp::Sigmoid, a)?,
    };
    Ok(Some(d))
}

/// `t * factor`, folding the trivial `-1` factor of `neg` into a negation.
fn times(g: &mut Graph, t: NodeId, factor: NodeId) -> R<NodeId> {
    match g.const_value(factor) {
        Some(-1.0) => g.neg(t),
        Some(1.0) => Ok(t),
        _ => g.mul(t, factor),
    }
}

/// Adds two optional terms.
fn add_opt(g: &mut Graph, a: Option<NodeId>, b: Option<NodeId>) -> R<Option<NodeId>> {
    Ok(match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(g.add2(a, b)?),
    })
}

fn zeros_like(g: &mut Graph, x: NodeId) -> R<NodeId> {
    g.constant_like(0.0, x)
}

fn or_zeros(g: &mut Graph, t: Option<NodeId>, like: NodeId) -> R<NodeId> {
    match t {
        Some(t) => Ok(t),
        None => zeros_like(g, like),
    }
}

/// `a` with size-1 axes inserted at the reduced `axes`, then broadcast to `full`.
fn unreduce(g: &mut Graph, a: NodeId, axes: &[u8], full: &Shape) -> R<NodeId> {
    let keep: Vec<usize> = (0..full.rank())
        .map(|i| {
            if axes.contains(&(i as u8)) {
                1
            } else {
                full.0[i]
            }
        })
        .collect();
    let r = g.reshape(a, keep)?;
    g.broadcast(r, full.clone())
}

/// Where the argument `a` of `y = reduce_max(a, axes)` attains its maximum
/// (every tied element; ties are measure-zero for continuous inputs).
fn argmax_mask(g: &mut Graph, a: NodeId, y: NodeId, axes: &[u8]) -> R<NodeId> {
    let full = g.node(a).shape.clone();
    let yb = unreduce(g, y, axes, &full)?;
    g.compare(CmpOp::Eq, a, yb)
}

/// `x` and the argument `a` of `max`/`min`-style selection: `a >= b` (max) or `a <= b` (min).
fn pick_first(g: &mut Graph, op: BinaryOp, a: NodeId, b: NodeId) -> R<NodeId> {
    let c = if op == BinaryOp::Max {
        CmpOp::Ge
    } else {
        CmpOp::Le
    };
    g.compare(c, a, b)
}

/// Forward rule: the tangent of node `y` given its arguments' tangents
/// (`None` = zero). Returns `None` when the tangent is zero.
pub fn jvp_rule(g: &mut Graph, y: NodeId, ts: &[Option<NodeId>]) -> R<Option<NodeId>> {
    let node = g.node(y).clone();
    let a = |k: usize| node.args[k];
    if ts.iter().all(Option::is_none) {
        return Ok(None);
    }
    Ok(match &node.op {
        Op::Param(_) | Op::Data(_) | Op::Const(_) => None,
        Op::Unary(u) => match (ts[0], unary_derivative(g, *u, a(0), y)?) {
            (Some(t), Some(d)) => Some(times(g, t, d)?),
            _ => None,
        },
        Op::Binary(b) => {
            let (x0, x1) = (a(0), a(1));
            match b {
                BinaryOp::Add => add_opt(g, ts[0], ts[1])?,
                BinaryOp::Sub => {
                    let nb = match ts[1] {
                        Some(t) => Some(g.neg(t)?),
                        None => None,
                    };
                    match (ts[0], ts[1]) {
                        (Some(ta), Some(tb)) => Some(g.sub(ta, tb)?),
                        _ => add_opt(g, ts[0], nb)?,
                    }
                }
                BinaryOp::Mul => {
                    let l = match ts[0] {
                        Some(t) => Some(g.mul(t, x1)?),
                        None => None,
                    };
                    let r = match ts[1] {
                        Some(t) => Some(g.mul(x0, t)?),
                        None => None,
                    };
                    add_opt(g, l, r)?
                }
                BinaryOp::Div => {
                    // (ta - y tb) / b
                    let num = match (ts[0], ts[1]) {
                        (Some(ta), Some(tb)) => {
                            let ytb = g.mul(y, tb)?;
                            g.sub(ta, ytb)?
                        }
                        (Some(ta), None) => ta,
                        (None, Some(tb)) => {
                            let ytb = g.mul(y, tb)?;
                            g.neg(ytb)?
                        }
                        (None, None) => unreachable!("handled above"),
                    };
                    Some(g.div(num, x1)?)
                }
                BinaryOp::Pow => {
                    let l = match ts[0] {
                        Some(t) => Some(pow_da(g, x0, x1, t)?),
                        None => None,
                    };
                    let r = match ts[1] {
                        Some(t) => Some(pow_db(g, x0, y, t)?),
                        None => None,
                    };
                    add_opt(g, l, r)?
                }
                BinaryOp::Max | BinaryOp::Min => {
                    let c = pick_first(g, *b, x0, x1)?;
                    let ta = or_zeros(g, ts[0], y)?;
                    let tb = or_zeros(g, ts[1], y)?;
                    Some(g.select(c, ta, tb)?)
                }
            }
        }
        Op::Compare(_) => None,
        Op::Select => {
            let ta = or_zeros(g, ts[1], y)?;
            let tb = or_zeros(g, ts[2], y)?;
            Some(g.select(a(0), ta, tb)?)
        }
        Op::Cast => match ts[0] {
            Some(t) => Some(g.cast(t, node.dtype)?),
            None => None,
        },
        Op::Sum { axes } => match ts[0] {
            Some(t) => Some(g.sum(t, axes)?),
            None => None,
        },
        Op::ReduceMax { axes } => match ts[0] {
            Some(t) => {
                // Tangent of the maximising element(s).
                let mask = argmax_mask(g, a(0), y, axes)?;
                let z = zeros_like(g, t)?;
                let masked = g.select(mask, t, z)?;
                Some(g.sum(masked, axes)?)
            }
            None => None,
        },
        Op::Broadcast => match ts[0] {
            Some(t) => Some(g.broadcast(t, node.shape.clone())?),
            None => None,
        },
        Op::Reshape => match ts[0] {
            Some(t) => Some(g.reshape(t, node.shape.clone())?),
            None => None,
        },
        Op::Transpose { perm } => match ts[0] {
            Some(t) => Some(g.transpose(t, perm)?),
            None => None,
        },
        Op::Slice { axis, start, step } => match ts[0] {
            Some(t) => Some(g.slice(t, *axis, *start, node.shape.0[*axis as usize], *step)?),
            None => None,
        },
        Op::Pad { axis, start, step } => match ts[0] {
            Some(t) => Some(g.pad(t, *axis, *start, *step, node.shape.0[*axis as usize])?),
            None => None,
        },
        Op::Concat { axis } => {
            let mut parts = Vec::with_capacity(ts.len());
            for (k, t) in ts.iter().enumerate() {
                parts.push(or_zeros(g, *t, a(k))?);
            }
            Some(g.concat(&parts, *axis)?)
        }
        Op::MatMul => {
            let l = match ts[0] {
                Some(t) => Some(g.matmul(t, a(1))?),
                None => None,
            };
            let r = match ts[1] {
                Some(t) => Some(g.matmul(a(0), t)?),
                None => None,
            };
            add_opt(g, l, r)?
        }
    })
}

/// `t · b · a^(b−1)`: the `a`-partial of `pow` applied to `t`.
fn pow_da(g: &mut Graph, a: NodeId, b: NodeId, t: NodeId) -> R<NodeId> {
    // d/da a^b = b·a^(b−1), which is 0 for b = 0 even at a = 0, where the
    // formula would give 0·∞.
    if g.const_value(b) == Some(0.0) {
        return zeros_like(g, t);
    }
    let one = g.constant_like(1.0, b)?;
    let bm1 = g.sub(b, one)?;
    let p = g.binary(BinaryOp::Pow, a, bm1)?;
    let mut f = g.mul(b, p)?;
    if g.const_value(b).is_none() {
        let zero = zeros_like(g, b)?;
        let is_zero = g.compare(CmpOp::Eq, b, zero)?;
        f = g.select(is_zero, zero, f)?;
    }
    g.mul(t, f)
}

/// `t · y · ln a`: the `b`-partial of `y = pow(a, b)` applied to `t`; 0
/// where `y = 0` (for `a = 0`, `b > 0`: the formula would give 0·(−∞)).
fn pow_db(g: &mut Graph, a: NodeId, y: NodeId, t: NodeId) -> R<NodeId> {
    let l = g.unary(UnaryOp::Log, a)?;
    let yl = g.mul(y, l)?;
    let zero = zeros_like(g, y)?;
    let y_zero = g.compare(CmpOp::Eq, y, zero)?;
    let f = g.select(y_zero, zero, yl)?;
    g.mul(t, f)
}

/// Reverse rule: given node `y` and its cotangent `gy`, the contribution to
/// each argument's cotangent (`None` = zero, or the argument needs none).
/// `need[k]` says whether argument `k` leads to a differentiated input.
pub fn vjp_rule(g: &mut Graph, y: NodeId, gy: NodeId, need: &[bool]) -> R<Vec<Option<NodeId>>> {
    let node = g.node(y).clone();
    let a = |k: usize| node.args[k];
    let mut out = vec![None; node.args.len()];
    match &node.op {
        Op::Param(_) | Op::Data(_) | Op::Const(_) | Op::Compare(_) => {}
        Op::Unary(u) => {
            if need[0] {
                if let Some(d) = unary_derivative(g, *u, a(0), y)? {
                    out[0] = Some(times(g, gy, d)?);
                }
            }
        }
        Op::Binary(b) => {
            let (x0, x1) = (a(0), a(1));
            match b {
                BinaryOp::Add => {
                    out[0] = need[0].then_some(gy);
                    out[1] = need[1].then_some(gy);
                }
                BinaryOp::Sub => {
                    out[0] = need[0].then_some(gy);
                    if need[1] {
                        out[1] = Some(g.neg(gy)?);
                    }
                }
                BinaryOp::Mul => {
                    if need[0] {
                        out[0] = Some(g.mul(gy, x1)?);
                    }
                    if need[1] {
                        out[1] = Some(g.mul(gy, x0)?);
                    }
                }
                BinaryOp::Div => {
                    if need[0] {
                        out[0] = Some(g.div(gy, x1)?);
                    }
                    if need[1] {
                        // -(gy · y) / b
                        let gyy = g.mul(gy, y)?;
                        let q = g.div(gyy, x1)?;
                        out[1] = Some(g.neg(q)?);
                    }
                }
                BinaryOp::Pow => {
                    if need[0] {
                        out[0] = Some(pow_da(g, x0, x1, gy)?);
                    }
                    if need[1] {
                        out[1] = Some(pow_db(g, x0, y, gy)?);
                    }
                }
                BinaryOp::Max | BinaryOp::Min => {
                    let c = pick_first(g, *b, x0, x1)?;
                    let z = zeros_like(g, gy)?;
                    if need[0] {
                        out[0] = Some(g.select(c, gy, z)?);
                    }
                    if need[1] {
                        out[1] = Some(g.select(c, z, gy)?);
                    }
                }
            }
        }
        Op::Select => {
            let z = zeros_like(g, gy)?;
            if need[1] {
                out[1] = Some(g.select(a(0), gy, z)?);
            }
            if need[2] {
                out[2] = Some(g.select(a(0), z, gy)?);
            }
        }
        Op::Cast => {
            if need[0] {
                let dt = g.node(a(0)).dtype;
                out[0] = Some(g.cast(gy, dt)?);
            }
        }
        Op::Sum { axes } => {
            if need[0] {
                let full = g.node(a(0)).shape.clone();
                out[0] = Some(unreduce(g, gy, axes, &full)?);
            }
        }
        Op::ReduceMax { axes } => {
            if need[0] {
                let full = g.node(a(0)).shape.clone();
                let mask = argmax_mask(g, a(0), y, axes)?;
                let gb = unreduce(g, gy, axes, &full)?;
                let z = zeros_like(g, gb)?;
                out[0] = Some(g.select(mask, gb, z)?);
            }
        }
        Op::Broadcast => {
            if need[0] {
                let src = g.node(a(0)).shape.clone();
                let dst = node.shape.clone();
                let off = dst.rank() - src.rank();
                let axes: Vec<u8> = (0..dst.rank())
                    .filter(|&i| i < off || (src.0[i - off] == 1 && dst.0[i] != 1))
                    .map(|i| i as u8)
                    .collect();
                let s = g.sum(gy, &axes)?;
                out[0] = Some(g.reshape(s, src)?);
            }
        }
        Op::Reshape => {
            if need[0] {
                let src = g.node(a(0)).shape.clone();
                out[0] = Some(g.reshape(gy, src)?);
            }
        }
        Op::Transpose { perm } => {
            if need[0] {
                let mut inv = vec![0u8; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p as usize] = i as u8;
                }
                out[0] = Some(g.transpose(gy, &inv)?);
            }
        }
        Op::Slice { axis, start, step } => {
            if need[0] {
                let full = g.node(a(0)).shape.0[*axis as usize];
                out[0] = Some(g.pad(gy, *axis, *start, *step, full)?);
            }
        }
        Op::Pad { axis, start, step } => {
            if need[0] {
                let len = g.node(a(0)).shape.0[*axis as usize];
                out[0] = Some(g.slice(gy, *axis, *start, len, *step)?);
            }
        }
        Op::Concat { axis } => {
            let mut offset = 0;
            for (k, n) in need.iter().enumerate() {
                let len = g.node(a(k)).shape.0[*axis as usize];
                if *n {
                    out[k] = Some(g.slice(gy, *axis, offset, len, 1)?);
                }
                offset += len;
            }
        }
        Op::MatMul => {
            if need[0] {
                let bt = g.transpose(a(1), &[1, 0])?;
                out[0] = Some(g.matmul(gy, bt)?);
            }
            if need[1] {
                let at = g.transpose(a(0), &[1, 0])?;
                out[1] = Some(g.matmul(at, gy)?);
            }
        }
    }
    Ok(out)
}

/// Whether a node of this type can carry a derivative.
pub fn differentiable(dtype: DType) -> bool {
    dtype.is_float()
}
