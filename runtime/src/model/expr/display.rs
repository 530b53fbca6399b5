//! Compact rendering of expressions for error messages (`a * sin(π·x)`).

use std::fmt;

use crux_ir::graph::BinaryOp;

use super::{Expr, Kind};

/// Sub-expressions deeper than this are elided as `…`, so messages stay
/// readable for networks with thousands of nodes.
const MAX_DEPTH: usize = 5;

fn write(e: &Expr, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
    if depth > MAX_DEPTH {
        return f.write_str("…");
    }
    let d = depth + 1;
    match e.kind() {
        Kind::Coord { tag, axis, domain } => {
            let name = ["x", "y", "z"].get(*axis).copied().unwrap_or("coord");
            if domain.dim() == 1 && *axis == 0 {
                write!(f, "x@{tag}")
            } else {
                write!(f, "{name}@{tag}")
            }
        }
        Kind::Constant(t) => match t.uniform_value() {
            Some(v) if t.shape.rank() == 0 => write!(f, "{v}"),
            Some(v) => write!(f, "full({v}, {})", t.shape),
            None => write!(f, "const{}", t.shape),
        },
        Kind::Leaf(p) => f.write_str(p.name()),
        Kind::Noise { dist, .. } => write!(f, "{dist}"),
        Kind::Unary(op, a) => {
            write!(f, "{}(", op.name())?;
            write(a, f, d)?;
            f.write_str(")")
        }
        Kind::Binary(op, a, b) => {
            let sym = match op {
                BinaryOp::Add => Some(" + "),
                BinaryOp::Sub => Some(" - "),
                BinaryOp::Mul => Some(" * "),
                BinaryOp::Div => Some(" / "),
                BinaryOp::Pow | BinaryOp::Max | BinaryOp::Min => None,
            };
            match sym {
                Some(s) => {
                    f.write_str("(")?;
                    write(a, f, d)?;
                    f.write_str(s)?;
                    write(b, f, d)?;
                    f.write_str(")")
                }
                None => {
                    write!(f, "{}(", op.name())?;
                    write(a, f, d)?;
                    f.write_str(", ")?;
                    write(b, f, d)?;
                    f.write_str(")")
                }
            }
        }
        Kind::Sum { arg, axes } => {
            f.write_str("sum(")?;
            write(arg, f, d)?;
            write!(f, ", axes={axes:?})")
        }
        Kind::MatMul(a, b) => {
            f.write_str("matmul(")?;
            write(a, f, d)?;
            f.write_str(", ")?;
            write(b, f, d)?;
            f.write_str(")")
        }
        Kind::Transpose(a, perm) => {
            f.write_str("transpose(")?;
            write(a, f, d)?;
            write!(f, ", {perm:?})")
        }
        Kind::Reshape(a) => {
            f.write_str("reshape(")?;
            write(a, f, d)?;
            write!(f, ", {})", e.0.shape)
        }
        Kind::Slice {
            arg,
            axis,
            start,
            step,
        } => {
            write(arg, f, d)?;
            let len = e.0.shape.0.get(*axis as usize).copied().unwrap_or(0);
            write!(
                f,
                "[axis {axis}: {start}..{} step {step}]",
                start + len.saturating_sub(1) * step + 1
            )
        }
        Kind::Concat(xs, axis) => {
            f.write_str("concat([")?;
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write(x, f, d)?;
            }
            write!(f, "], axis={axis})")
        }
        Kind::Derivative { of, wrt, order } => {
            f.write_str("diff(")?;
            write(of, f, d)?;
            f.write_str(", ")?;
            write(wrt, f, d)?;
            write!(f, ", {order})")
        }
        Kind::Invalid(err) => write!(f, "<invalid: {err}>"),
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(self, f, 0)
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({self}: {})", self.0.shape)
    }
}
