//! The kernel IR: loop-level SSA that sampler step bodies, the lowered
//! log-density and the chunk drivers are written in, and that the backends
//! (Cranelift, PTX) compile.
//!
//! * Scalar values of five types ([`Ty`]), each defined once.
//! * Structured control flow: [`InstKind::For`], [`InstKind::While`] and
//!   [`InstKind::If`] own [`Region`]s that take block parameters and yield
//!   values, so loop-carried state is explicit (no phi nodes, no goto).
//! * Memory: global buffers (function arguments: data, parameters, state,
//!   outputs) and small fixed-size local arrays (the NUTS tree needs a few).
//! * Only operations every backend computes bit-identically: IEEE add, sub,
//!   mul, div, sqrt, min/max, rounding, fused multiply-add, integer
//!   arithmetic, conversions. Transcendentals are expanded into these by
//!   `crux-compiler`'s math module, the same sequence for every backend;
//!   random numbers are Philox-4x32-10 written in integer operations
//!   ([`Builder::philox`]).
//!
//! # Fused multiply-add
//!
//! [`InstKind::Fma`]`(a, b, c)` (text `fma a, b, c`, builder
//! [`Builder::fma`]) is IEEE 754 `fusedMultiplyAdd`: `a·b + c` computed
//! exactly and rounded *once* to the operands' type (f64 or f32; all three
//! operands and the result have that type), round to nearest, ties to even,
//! subnormals kept. Being exactly specified it is bit-identical everywhere:
//! the interpreter computes it with `f64::mul_add` / `f32::mul_add`,
//! Cranelift with its `fma` instruction (`vfmadd*` on x86-64 with FMA, the
//! correctly rounded libm `fma` / `fmaf` otherwise), PTX with `fma.rn.f64` /
//! `fma.rn.f32`. Its special cases are IEEE's: NaN if any operand is NaN,
//! if `a·b` is `0·∞`, or if `a·b` and `c` are infinities of opposite signs
//! (NaN payloads are left to the backend, as everywhere); an exact zero
//! result is `+0`, except `−0` when `a·b` is a zero of negative sign (`a`
//! or `b` zero, their signs differing) and `c` is `−0` (a nonzero exact
//! result too small to represent rounds to a zero of its own sign).
//! Overflow gives ±∞, and there is no intermediate overflow or underflow:
//! only the final result is rounded.
//!
//! A fused multiply-add is only ever *explicit*: no builder helper, pass or
//! backend turns a [`BinOp::Mul`] followed by a [`BinOp::Add`] into one
//! (that rounds once instead of twice, so it changes results), and the
//! backends emit separate, individually rounded instructions for them
//! (Cranelift never contracts; PTX uses `mul.rn` / `add.rn`, which `ptxas`
//! does not fuse). Code that wants the single rounding writes `fma`.
//!
//! # Matrix products
//!
//! [`InstKind::Gemm`] (text `gemm M x N x K buf<a>[off, rs, cs],
//! buf<b>[off, rs, cs] to buf<o>[off, rs, cs]`, builder [`Builder::gemm`])
//! writes the `M × N` product of an `M × K` and a `K × N` f64 matrix, each
//! a strided view of a buffer ([`MatRef`]: element `(i, j)` at
//! `off + i·rs + j·cs`; strides may be 0, so a broadcast is a view too).
//! Every output entry is its own chain of `K` fused multiply-adds,
//! ascending in `l` from `+0.0`:
//!
//! ```text
//! out[i, j] = fma(a[i, K−1], b[K−1, j], … fma(a[i, 1], b[1, j], fma(a[i, 0], b[0, j], +0.0)) …)
//! ```
//!
//! so a backend may compute the entries in any order, and several at once
//! in vector lanes, and still match the interpreter bit for bit; what it
//! may not do is split or reorder one entry's chain. Before anything is
//! stored the three views' extents are checked, `a`, then `b`, then `out`
//! (the largest index each touches): the first one out of range is the
//! error (that buffer and that index) and nothing is written. The verifier
//! requires f64 buffers, `M, N, K` in `1..=`[`MAX_GEMM_DIM`], an output
//! buffer that is not read-only, operand buffers that are not write-only,
//! distinct output entries (see [`MatRef::injective`]) and an output range
//! (from its first to its last index) disjoint from the operands' ranges
//! in the same buffer, so the order of the stores cannot matter.
//!
//! [`builder`] is how kernels are written, [`verify()`] checks them,
//! [`interp`] is their reference semantics (with fuel, so a runaway loop is
//! an error).

pub mod builder;
pub mod interp;
pub mod text;
pub mod verify;

#[cfg(test)]
mod gemm_tests;

pub use builder::{Builder, FunctionBuilder};
pub use interp::{run, Buffer, Scalar};
pub use verify::verify;

use std::fmt;

/// Scalar type of a kernel value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// 64-bit two's-complement integer.
    I64,
    /// 32-bit two's-complement integer.
    I32,
    /// Boolean (comparison results, conditions).
    Bool,
}

impl Ty {
    /// Every variant, in declaration order (for printers, parsers, generators and test suites).
    pub const ALL: [Ty; 5] = [Ty::F64, Ty::F32, Ty::I64, Ty::I32, Ty::Bool];
}

impl Ty {
    /// Whether the type is a float.
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F64 | Ty::F32)
    }
    /// Whether the type is an integer.
    pub fn is_int(self) -> bool {
        matches!(self, Ty::I64 | Ty::I32)
    }
    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            Ty::F64 => "f64",
            Ty::F32 => "f32",
            Ty::I64 => "i64",
            Ty::I32 => "i32",
            Ty::Bool => "bool",
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

typed_index!(
    /// An SSA value (defined once: by a region parameter or an instruction).
    Value,
    "v"
);
typed_index!(
    /// A global buffer (a function argument).
    BufferId,
    "buf"
);
typed_index!(
    /// A local fixed-size array.
    LocalId,
    "loc"
);

/// Unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// Negation (floats: sign flip; integers: wrapping).
    Neg,
    /// Absolute value (floats: clear sign; integers: wrapping).
    Abs,
    /// Correctly rounded square root (floats).
    Sqrt,
    /// Round toward −∞ (floats).
    Floor,
    /// Round toward +∞ (floats).
    Ceil,
    /// Round toward 0 (floats).
    Trunc,
    /// Round to nearest, ties to even (floats).
    Nearest,
    /// Logical not (bool) or bitwise not (integers).
    Not,
}

impl UnOp {
    /// Every variant, in declaration order (for printers, parsers, generators and test suites).
    pub const ALL: [UnOp; 8] = [
        UnOp::Neg,
        UnOp::Abs,
        UnOp::Sqrt,
        UnOp::Floor,
        UnOp::Ceil,
        UnOp::Trunc,
        UnOp::Nearest,
        UnOp::Not,
    ];
}

/// Binary operations (operands of one type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b` (integers wrap).
    Add,
    /// `a - b` (integers wrap).
    Sub,
    /// `a * b` (integers wrap).
    Mul,
    /// `a / b` (floats only; integer division is not provided, so no trap).
    Div,
    /// Minimum: NaN if either operand is NaN, and −0 < +0 (floats); signed (integers).
    Min,
    /// Maximum: NaN if either operand is NaN, and −0 < +0 (floats); signed (integers).
    Max,
    /// Magnitude of `a` with the sign of `b` (floats).
    Copysign,
    /// Bitwise and (integers) or logical and (bool).
    And,
    /// Bitwise or (integers) or logical or (bool).
    Or,
    /// Bitwise xor (integers) or logical xor (bool).
    Xor,
    /// Shift left by `b mod bits` (integers).
    Shl,
    /// Logical shift right by `b mod bits` (integers).
    ShrU,
    /// Arithmetic shift right by `b mod bits` (integers).
    ShrS,
}

impl BinOp {
    /// Every variant, in declaration order (for printers, parsers, generators and test suites).
    pub const ALL: [BinOp; 13] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Min,
        BinOp::Max,
        BinOp::Copysign,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::Shl,
        BinOp::ShrU,
        BinOp::ShrS,
    ];
}

/// Comparisons (floats: ordered, so false with NaN, except `Ne`; integers: signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// Every variant, in declaration order (for printers, parsers, generators and test suites).
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
}

/// Conversions between types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conv {
    /// f64 → f32, round to nearest even.
    F64ToF32,
    /// f32 → f64, exact.
    F32ToF64,
    /// f64 → i64, toward zero; saturating, NaN → 0.
    F64ToI64,
    /// i64 → f64, round to nearest even.
    I64ToF64,
    /// i64 → i32, keeping the low 32 bits.
    I64ToI32,
    /// i32 → i64, sign-extending.
    I32ToI64,
    /// i32 → i64, zero-extending (the 32 bits as unsigned).
    U32ToI64,
    /// f64 bits as i64.
    F64Bits,
    /// i64 bits as f64.
    BitsF64,
    /// bool → i64 (0 or 1).
    BoolToI64,
}

impl Conv {
    /// Every variant, in declaration order (for printers, parsers, generators and test suites).
    pub const ALL: [Conv; 10] = [
        Conv::F64ToF32,
        Conv::F32ToF64,
        Conv::F64ToI64,
        Conv::I64ToF64,
        Conv::I64ToI32,
        Conv::I32ToI64,
        Conv::U32ToI64,
        Conv::F64Bits,
        Conv::BitsF64,
        Conv::BoolToI64,
    ];
}

impl Conv {
    /// Source and destination types.
    pub fn types(self) -> (Ty, Ty) {
        match self {
            Conv::F64ToF32 => (Ty::F64, Ty::F32),
            Conv::F32ToF64 => (Ty::F32, Ty::F64),
            Conv::F64ToI64 => (Ty::F64, Ty::I64),
            Conv::I64ToF64 => (Ty::I64, Ty::F64),
            Conv::I64ToI32 => (Ty::I64, Ty::I32),
            Conv::I32ToI64 | Conv::U32ToI64 => (Ty::I32, Ty::I64),
            Conv::F64Bits => (Ty::F64, Ty::I64),
            Conv::BitsF64 => (Ty::I64, Ty::F64),
            Conv::BoolToI64 => (Ty::Bool, Ty::I64),
        }
    }
}

/// How a function uses a buffer (backends may use it for aliasing and
/// argument checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Only loaded from.
    Read,
    /// Only stored to.
    Write,
    /// Both.
    ReadWrite,
}

/// A global buffer argument.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferDecl {
    /// Name (for messages and text).
    pub name: String,
    /// Element type.
    pub ty: Ty,
    /// How it is used.
    pub access: Access,
}

/// A local array: `len` elements of `ty`, zero-initialised on entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalDecl {
    /// Name.
    pub name: String,
    /// Element type.
    pub ty: Ty,
    /// Number of elements.
    pub len: usize,
}

/// Largest `M`, `N` or `K` of a [`InstKind::Gemm`].
pub const MAX_GEMM_DIM: u64 = 1 << 24;

/// A strided view of an f64 matrix in a buffer: element `(i, j)` is
/// `buf[off + i·rs + j·cs]` (see [the module
/// documentation](crate::kernel#matrix-products)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatRef {
    /// The buffer.
    pub buf: BufferId,
    /// Index of element `(0, 0)`.
    pub off: u64,
    /// Elements between consecutive rows.
    pub rs: u64,
    /// Elements between consecutive columns.
    pub cs: u64,
}

impl MatRef {
    /// A row-major `_ × cols` matrix at `off` (`rs = cols`, `cs = 1`).
    pub fn row_major(buf: BufferId, off: u64, cols: u64) -> MatRef {
        MatRef {
            buf,
            off,
            rs: cols,
            cs: 1,
        }
    }

    /// The same elements read as the transpose (strides swapped).
    pub fn transposed(self) -> MatRef {
        MatRef {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Index of element `(i, j)` (wrapping; in range once [`Self::last`]
    /// is).
    pub fn at(&self, i: u64, j: u64) -> u64 {
        self.off
            .wrapping_add(i.wrapping_mul(self.rs))
            .wrapping_add(j.wrapping_mul(self.cs))
    }

    /// The largest index a `rows × cols` view touches (`rows, cols ≥ 1`),
    /// or `None` when it does not fit in an i64.
    pub fn last(&self, rows: u64, cols: u64) -> Option<u64> {
        let r = rows.checked_sub(1)?.checked_mul(self.rs)?;
        let c = cols.checked_sub(1)?.checked_mul(self.cs)?;
        let l = self.off.checked_add(r)?.checked_add(c)?;
        (l <= i64::MAX as u64).then_some(l)
    }

    /// Whether the `rows × cols` entries of the view are certainly
    /// distinct elements: the strides of the dimensions longer than 1 are
    /// nonzero, and the rows' index ranges follow one another without
    /// meeting (`rs > (cols − 1)·cs`), or the columns' do
    /// (`cs > (rows − 1)·rs`): row-major or column-major, gaps allowed.
    pub fn injective(&self, rows: u64, cols: u64) -> bool {
        let (r, c) = (rows > 1, cols > 1);
        match (r, c) {
            (false, false) => true,
            (true, false) => self.rs > 0,
            (false, true) => self.cs > 0,
            (true, true) => {
                self.rs > 0
                    && self.cs > 0
                    && ((cols - 1).checked_mul(self.cs).is_some_and(|w| self.rs > w)
                        || (rows - 1).checked_mul(self.rs).is_some_and(|h| self.cs > h))
            }
        }
    }
}

/// A block of instructions with parameters and yielded values.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Region {
    /// Values bound on entry.
    pub params: Vec<Value>,
    /// Instructions in order.
    pub insts: Vec<Inst>,
    /// Values produced on exit.
    pub yields: Vec<Value>,
}

/// An instruction and the values it defines.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    /// Defined values, in order.
    pub results: Vec<Value>,
    /// What it does.
    pub kind: InstKind,
}

/// Instruction kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum InstKind {
    /// A constant of type `ty` from its bits (floats: IEEE bits of the value
    /// in that type, f32 in the low 32 bits; integers: two's complement;
    /// bool: 0 or 1).
    Const {
        /// Type.
        ty: Ty,
        /// Bits.
        bits: u64,
    },
    /// Unary op.
    Unary(UnOp, Value),
    /// Binary op.
    Binary(BinOp, Value, Value),
    /// Comparison (result bool).
    Cmp(CmpOp, Value, Value),
    /// `cond ? a : b`.
    Select(Value, Value, Value),
    /// Fused multiply-add `a·b + c` with one rounding (floats; the three
    /// operands and the result of one type). See [the module
    /// documentation](crate::kernel#fused-multiply-add).
    Fma(Value, Value, Value),
    /// Type conversion.
    Conv(Conv, Value),
    /// `out = a · b` for an `m × k` matrix `a` and a `k × n` matrix `b`
    /// (f64), each entry one ascending chain of fused multiply-adds. See
    /// [the module documentation](crate::kernel#matrix-products).
    Gemm {
        /// Rows of `a` and `out`.
        m: u64,
        /// Columns of `b` and `out`.
        n: u64,
        /// Columns of `a`, rows of `b`.
        k: u64,
        /// The left operand.
        a: MatRef,
        /// The right operand.
        b: MatRef,
        /// The result.
        out: MatRef,
    },
    /// Element `index` (i64) of a buffer.
    Load {
        /// Buffer.
        buf: BufferId,
        /// Index.
        index: Value,
    },
    /// Writes `value` at `index` (i64) of a buffer.
    Store {
        /// Buffer.
        buf: BufferId,
        /// Index.
        index: Value,
        /// Value.
        value: Value,
    },
    /// Element `index` of a local array.
    LocalLoad {
        /// Array.
        local: LocalId,
        /// Index.
        index: Value,
    },
    /// Writes element `index` of a local array.
    LocalStore {
        /// Array.
        local: LocalId,
        /// Index.
        index: Value,
        /// Value.
        value: Value,
    },
    /// `for i in lo..hi` (i64, step 1): the body's parameters are
    /// `[i, carried...]` and it yields the next carried values; the results
    /// are the final carried values (`init` if the range is empty).
    For {
        /// First index.
        lo: Value,
        /// One past the last index.
        hi: Value,
        /// Initial carried values.
        init: Vec<Value>,
        /// Loop body.
        body: Region,
    },
    /// `while cond(carried) { carried = body(carried) }`: `cond` takes the
    /// carried values and yields one bool; `body` takes them and yields the
    /// next ones; the results are the final carried values.
    While {
        /// Initial carried values.
        init: Vec<Value>,
        /// Condition region.
        cond: Region,
        /// Loop body.
        body: Region,
    },
    /// Runs `then` or `else_` (no parameters) and yields its values.
    If {
        /// Condition (bool).
        cond: Value,
        /// Taken when true.
        then: Region,
        /// Taken when false.
        else_: Region,
    },
}

/// A kernel function: scalar parameters, buffers, locals and a body whose
/// parameters are the scalar parameters and whose yields are the returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Name (a valid symbol: letters, digits, `_`).
    pub name: String,
    /// Type of every value, indexed by [`Value`].
    pub values: Vec<Ty>,
    /// Names of the scalar parameters (the body's parameters).
    pub param_names: Vec<String>,
    /// Global buffers.
    pub buffers: Vec<BufferDecl>,
    /// Local arrays.
    pub locals: Vec<LocalDecl>,
    /// The body.
    pub body: Region,
}

impl Function {
    /// Types of the scalar parameters.
    pub fn param_types(&self) -> Vec<Ty> {
        self.body
            .params
            .iter()
            .map(|v| self.values[v.index()])
            .collect()
    }
    /// Types of the returned values.
    pub fn return_types(&self) -> Vec<Ty> {
        self.body
            .yields
            .iter()
            .map(|v| self.values[v.index()])
            .collect()
    }
    /// Type of a value.
    pub fn ty(&self, v: Value) -> Ty {
        self.values[v.index()]
    }
}

/// Errors of the kernel IR: building, verifying, interpreting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// The function is malformed.
    #[error("invalid kernel `{function}`: {msg}")]
    Invalid {
        /// Function name.
        function: String,
        /// What is wrong.
        msg: String,
    },
    /// The interpreter ran out of fuel (a runaway loop, or too small a budget).
    #[error("kernel `{0}` ran out of fuel (more instructions than allowed)")]
    OutOfFuel(String),
    /// A buffer or local index is out of range.
    #[error("kernel `{function}`: index {index} out of range for `{name}` of length {len}")]
    OutOfBounds {
        /// Function name.
        function: String,
        /// Buffer or local name.
        name: String,
        /// Index used.
        index: i64,
        /// Its length.
        len: usize,
    },
    /// The text format could not be parsed (or the parsed kernel does not
    /// verify).
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The call's arguments do not match the function's signature.
    #[error("kernel `{function}`: {msg}")]
    Arguments {
        /// Function name.
        function: String,
        /// What does not match.
        msg: String,
    },
}
