//! The operations of the graph IR, with their type and shape rules.
//!
//! Every op is an exhaustive enum variant; there is no string dispatch. The
//! automatic-differentiation rules live in `crux-compiler::ad::rules`, one
//! arm per variant in the same order as here.

use super::types::{DType, DataId, ParamId, Shape};
use super::GraphError;

/// Elementwise unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `sign(x)` in {-1, 0, 1} (NaN for NaN).
    Sign,
    /// `sqrt(x)`
    Sqrt,
    /// `1 / x`
    Recip,
    /// `e^x`
    Exp,
    /// `e^x - 1`, accurate near 0.
    Expm1,
    /// natural logarithm
    Log,
    /// `ln(1 + x)`, accurate near 0.
    Log1p,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `ln(1 + e^x)`
    Softplus,
}

impl UnaryOp {
    /// Every unary op, in declaration order (used by tests and the parser).
    pub const ALL: [UnaryOp; 15] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Sqrt,
        UnaryOp::Recip,
        UnaryOp::Exp,
        UnaryOp::Expm1,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Softplus,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Recip => "recip",
            UnaryOp::Exp => "exp",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
        }
    }

    /// Whether the op is a transcendental function (counted separately from
    /// flops, and expanded into polynomial sequences by the backends).
    pub fn is_transcendental(self) -> bool {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Sqrt | UnaryOp::Recip => false,
            UnaryOp::Exp
            | UnaryOp::Expm1
            | UnaryOp::Log
            | UnaryOp::Log1p
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tan
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Softplus => true,
        }
    }

    /// Reference semantics on one f64 value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x.is_nan() {
                    f64::NAN
                } else if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Expm1 => x.exp_m1(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tan => x.tan(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => {
                // Stable on both tails.
                if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (1.0 + e)
                }
            }
            UnaryOp::Softplus => {
                // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)
                x.max(0.0) + (-x.abs()).exp().ln_1p()
            }
        }
    }
}

/// Elementwise binary operations (both operands have the node's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b` (powf)
    Pow,
    /// `max(a, b)`; NaN if either is NaN.
    Max,
    /// `min(a, b)`; NaN if either is NaN.
    Min,
}

impl BinaryOp {
    /// Every binary op, in declaration order.
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
        }
    }

    /// Whether the op is transcendental (only `pow`).
    pub fn is_transcendental(self) -> bool {
        matches!(self, BinaryOp::Pow)
    }

    /// Reference semantics on f64 values.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Max => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if a >= b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Min => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if a <= b {
                    a
                } else {
                    b
                }
            }
        }
    }
}

/// Elementwise comparisons, producing `bool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
}

impl CmpOp {
    /// Every comparison, in declaration order.
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Eq,
        CmpOp::Ne,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
        }
    }

    /// Reference semantics (IEEE: every comparison with NaN is false except `ne`).
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// A graph operation. The node's `dtype` and `shape` complete its meaning
/// (for example the target shape of `Broadcast` or `Reshape`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// A runtime parameter slot (no arguments).
    Param(ParamId),
    /// A data tensor stored in the graph (no arguments).
    Data(DataId),
    /// Every element equals the f64 whose bits are stored (no arguments).
    /// For `f32` nodes the value is exactly representable in f32.
    Const(u64),
    /// Elementwise unary op (1 argument of the node's shape and dtype).
    Unary(UnaryOp),
    /// Elementwise binary op (2 arguments of the node's shape and dtype).
    Binary(BinaryOp),
    /// Elementwise comparison (2 float arguments of the node's shape; the
    /// node is `bool`).
    Compare(CmpOp),
    /// `select(cond, a, b)`: `a` where `cond` else `b` (all of the node's shape).
    Select,
    /// Conversion of a float argument to the node's float dtype.
    Cast,
    /// Sum over the listed axes (sorted, unique); those axes are removed.
    Sum {
        /// Axes of the argument reduced away.
        axes: Vec<u8>,
    },
    /// Maximum over the listed axes (sorted, unique); those axes are removed.
    ReduceMax {
        /// Axes of the argument reduced away.
        axes: Vec<u8>,
    },
    /// Numpy broadcast of the argument to the node's shape.
    Broadcast,
    /// Row-major reshape to the node's shape (same element count).
    Reshape,
    /// Axis permutation: output axis `i` is argument axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<u8>,
    },
    /// Elements `start, start+step, ...` along `axis`; the node's shape gives
    /// how many.
    Slice {
        /// Sliced axis.
        axis: u8,
        /// First index taken.
        start: usize,
        /// Stride (at least 1).
        step: usize,
    },
    /// The adjoint of `Slice`: a zero tensor of the node's shape with the
    /// argument written at `start, start+step, ...` along `axis`.
    Pad {
        /// Padded axis.
        axis: u8,
        /// Index of the first argument element.
        start: usize,
        /// Stride (at least 1).
        step: usize,
    },
    /// Concatenation of all arguments along `axis`.
    Concat {
        /// Joined axis.
        axis: u8,
    },
    /// Matrix product `(m, k) x (k, n) -> (m, n)`: each entry accumulated
    /// over `k` in ascending order from 0 by fused multiply-adds (one
    /// rounding per step), on every backend.
    MatMul,
}

impl Op {
    /// Whether the op is elementwise (`Unary`, `Binary`, `Compare`, `Select`,
    /// `Cast`): the region the e-graph optimiser works on.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast
        )
    }

    /// Whether the op takes no arguments.
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Param(_) | Op::Data(_) | Op::Const(_))
    }

    /// Short name used by the text format and by error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Param(_) => "param",
            Op::Data(_) => "data",
            Op::Const(_) => "const",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::Cast => "cast",
            Op::Sum { .. } => "sum",
            Op::ReduceMax { .. } => "reduce_max",
            Op::Broadcast => "broadcast",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Concat { .. } => "concat",
            Op::MatMul => "matmul",
        }
    }
}

/// The type and shape of an argument, as seen by [`check`].
#[derive(Clone, Debug)]
pub struct ArgType<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: &'a Shape,
}

fn err(op: &Op, msg: impl Into<String>) -> GraphError {
    GraphError::Invalid {
        op: op.name(),
        msg: msg.into(),
    }
}

fn check_axes(op: &Op, axes: &[u8], rank: usize) -> Result<(), GraphError> {
    for w in axes.windows(2) {
        if w[0] >= w[1] {
            return Err(err(op, "reduction axes must be sorted and unique"));
        }
    }
    if axes.iter().any(|&a| a as usize >= rank) {
        return Err(err(
            op,
            format!("reduction axis out of range for rank {rank}"),
        ));
    }
    Ok(())
}

/// Checks that `op` applied to `args` may produce a node of `dtype` and
/// `shape`. Ops whose result type is fixed by their arguments check it;
/// ops whose result shape is a free choice (`Broadcast`, `Reshape`, `Slice`,
/// `Pad`, leaves) check that the choice is consistent.
pub fn check(op: &Op, args: &[ArgType<'_>], dtype: DType, shape: &Shape) -> Result<(), GraphError> {
    let arity = match op {
        Op::Param(_) | Op::Data(_) | Op::Const(_) => 0,
        Op::Unary(_)
        | Op::Cast
        | Op::Sum { .. }
        | Op::ReduceMax { .. }
        | Op::Broadcast
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Pad { .. } => 1,
        Op::Binary(_) | Op::Compare(_) | Op::MatMul => 2,
        Op::Select => 3,
        Op::Concat { .. } => {
            if args.is_empty() {
                return Err(err(op, "concat needs at least one argument"));
            }
            args.len()
        }
    };
    if args.len() != arity {
        return Err(err(
            op,
            format!("expected {arity} arguments, got {}", args.len()),
        ));
    }
    let same_as = |a: &ArgType<'_>| -> Result<(), GraphError> {
        if a.dtype != dtype || a.shape != shape {
            return Err(err(
                op,
                format!(
                    "argument {}{} does not match result {}{}",
                    a.dtype, a.shape, dtype, shape
                ),
            ));
        }
        Ok(())
    };
    let float_result = || -> Result<(), GraphError> {
        if !dtype.is_float() {
            return Err(err(op, format!("result must be a float type, not {dtype}")));
        }
        Ok(())
    };
    match op {
        Op::Param(_) | Op::Data(_) => float_result(),
        Op::Const(bits) => {
            float_result()?;
            let v = f64::from_bits(*bits);
            if dtype == DType::F32 && !v.is_nan() && (v as f32 as f64).to_bits() != *bits {
                return Err(err(op, "f32 constant is not representable in f32"));
            }
            Ok(())
        }
        Op::Unary(_) | Op::Binary(_) => {
            float_result()?;
            args.iter().try_for_each(same_as)
        }
        Op::Compare(_) => {
            if dtype != DType::Bool {
                return Err(err(op, "comparison result must be bool"));
            }
            if !args[0].dtype.is_float() || args[0].dtype != args[1].dtype {
                return Err(err(op, "comparison operands must share a float type"));
            }
            if args[0].shape != shape || args[1].shape != shape {
                return Err(err(op, "comparison operands must have the result's shape"));
            }
            Ok(())
        }
        Op::Select => {
            float_result()?;
            if args[0].dtype != DType::Bool || args[0].shape != shape {
                return Err(err(
                    op,
                    "select condition must be bool with the result's shape",
                ));
            }
            same_as(&args[1])?;
            same_as(&args[2])
        }
        Op::Cast => {
            float_result()?;
            if !args[0].dtype.is_float() || args[0].shape != shape {
                return Err(err(
                    op,
                    "cast argument must be float with the result's shape",
                ));
            }
            Ok(())
        }
        Op::Sum { axes } | Op::ReduceMax { axes } => {
            float_result()?;
            let a = &args[0];
            if a.dtype != dtype {
                return Err(err(op, "reduction keeps the dtype"));
            }
            check_axes(op, axes, a.shape.rank())?;
            let kept: Vec<usize> = (0..a.shape.rank())
                .filter(|i| !axes.contains(&(*i as u8)))
                .map(|i| a.shape.0[i])
                .collect();
            if kept != shape.0 {
                return Err(err(
                    op,
                    format!(
                        "reducing {} over {axes:?} gives {:?}, not {shape}",
                        a.shape, kept
                    ),
                ));
            }
            if matches!(op, Op::ReduceMax { .. })
                && axes.iter().any(|&x| a.shape.0[x as usize] == 0)
            {
                return Err(err(op, "maximum over an empty axis"));
            }
            Ok(())
        }
        Op::Broadcast => {
            float_result()?;
            if args[0].dtype != dtype || !args[0].shape.broadcasts_to(shape) {
                return Err(err(
                    op,
                    format!("{} does not broadcast to {shape}", args[0].shape),
                ));
            }
            Ok(())
        }
        Op::Reshape => {
            float_result()?;
            if args[0].dtype != dtype
                || args[0].shape.checked_numel().is_none()
                || args[0].shape.checked_numel() != shape.checked_numel()
            {
                return Err(err(
                    op,
                    format!("cannot reshape {} to {shape}", args[0].shape),
                ));
            }
            Ok(())
        }
        Op::Transpose { perm } => {
            float_result()?;
            let a = &args[0];
            let r = a.shape.rank();
            let mut seen = vec![false; r];
            if perm.len() != r {
                return Err(err(op, "permutation length must equal the rank"));
            }
            for &p in perm {
                if p as usize >= r || seen[p as usize] {
                    return Err(err(op, "not a permutation"));
                }
                seen[p as usize] = true;
            }
            let out: Vec<usize> = perm.iter().map(|&p| a.shape.0[p as usize]).collect();
            if a.dtype != dtype || out != shape.0 {
                return Err(err(op, "transpose result shape mismatch"));
            }
            Ok(())
        }
        Op::Slice { axis, start, step } | Op::Pad { axis, start, step } => {
            float_result()?;
            let (small, big) = if matches!(op, Op::Slice { .. }) {
                (shape, args[0].shape)
            } else {
                (args[0].shape, shape)
            };
            let ax = *axis as usize;
            if args[0].dtype != dtype
                || small.rank() != big.rank()
                || ax >= big.rank()
                || *step == 0
            {
                return Err(err(op, "slice/pad rank, axis or step invalid"));
            }
            for i in 0..big.rank() {
                if i != ax && small.0[i] != big.0[i] {
                    return Err(err(op, "slice/pad changes only its axis"));
                }
            }
            let n = small.0[ax];
            let last = (n.max(1) - 1)
                .checked_mul(*step)
                .and_then(|o| o.checked_add(*start));
            if n > 0 && last.is_none_or(|l| l >= big.0[ax]) {
                return Err(err(
                    op,
                    format!("indices {start}..+{n}*{step} out of range {}", big.0[ax]),
                ));
            }
            Ok(())
        }
        Op::Concat { axis } => {
            float_result()?;
            let ax = *axis as usize;
            let first = args[0].shape;
            if ax >= first.rank() {
                return Err(err(op, "concat axis out of range"));
            }
            let mut total: usize = 0;
            for a in args {
                if a.dtype != dtype || a.shape.rank() != first.rank() {
                    return Err(err(op, "concat arguments must share dtype and rank"));
                }
                for i in 0..first.rank() {
                    if i != ax && a.shape.0[i] != first.0[i] {
                        return Err(err(op, "concat arguments differ off the axis"));
                    }
                }
                total = total
                    .checked_add(a.shape.0[ax])
                    .ok_or_else(|| err(op, "concatenated length overflows"))?;
            }
            let mut out = first.0.clone();
            out[ax] = total;
            if out != shape.0 {
                return Err(err(op, "concat result shape mismatch"));
            }
            Ok(())
        }
        Op::MatMul => {
            float_result()?;
            let (a, b) = (&args[0], &args[1]);
            if a.dtype != dtype || b.dtype != dtype || a.shape.rank() != 2 || b.shape.rank() != 2 {
                return Err(err(op, "matmul takes two matrices of the result dtype"));
            }
            if a.shape.0[1] != b.shape.0[0] || shape.0 != [a.shape.0[0], b.shape.0[1]] {
                return Err(err(
                    op,
                    format!("cannot multiply {} by {} into {shape}", a.shape, b.shape),
                ));
            }
            Ok(())
        }
    }
}
