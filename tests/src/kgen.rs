//! Random valid kernel programs for the backend differential tests.
//!
//! [`arb_kernel`] is a proptest strategy. Like [`crate::gen`], it draws a
//! *recipe* — declarations, a tree of steps made of raw random numbers, and
//! argument and buffer contents — and interprets it with the kernel
//! [`Builder`]. Every step picks its operands from the values visible at
//! that point (by type; a missing type is made by a constant), so every
//! recipe builds a function that verifies, and shrinking a recipe (dropping
//! steps, lowering numbers) gives a smaller program that still builds.
//!
//! What the programs contain:
//!
//! * scalar parameters of every type, buffers of f64/f32/i64/i32 (lengths
//!   1 to 8, read/write/readwrite) with contents, and local arrays;
//! * every unary, binary and comparison operation on every type it applies
//!   to, `select`, fused multiply-add on f64 and f32 (half of them
//!   `fma(x, y, -(x·y))`: the rounding error of the product, nonzero
//!   whenever it is inexact and does not underflow, and always zero were
//!   the multiply-add not fused), every conversion, and constants drawn
//!   mostly from edge values (±0, ±inf, NaN, subnormals, the largest and
//!   smallest finite values, halfway cases for rounding,
//!   `i64::MIN`/`i32::MIN`, `-1`, shift amounts at and beyond the bit
//!   width, 2⁶³ for saturating conversions) and otherwise random bits;
//! * nested `for` loops with carried values and small trip counts (0 to 4,
//!   empty and "negative" ranges included; some bounds are runtime values
//!   clamped into range), `while` loops whose condition is a carried counter
//!   compared against a small bound (optionally and-ed with any boolean, so
//!   they terminate), and `if` with yielded values;
//! * loads and stores on buffers and locals whose index is masked with
//!   `len - 1` (lengths are powers of two) or clamped into range, and
//!   occasionally used raw, so out-of-bounds errors occur too;
//! * matrix products (`gemm`, dimensions 1 to 3) over f64 buffers with
//!   strides 0 to 3 (broadcasts included), row- or column-major outputs,
//!   some views out of range;
//! * Philox-4x32-10 words and uniform draws.
//!
//! Every value is observable: each region folds the bits of all the values
//! it defines into an i64 digest (`acc = acc * K ^ bits`) that it yields
//! (loops carry it), the `while` condition's digest is and-ed into the
//! condition, and the function returns its own digest after a few values
//! picked at random. So a backend cannot get a value wrong unnoticed, and
//! cannot delete the computation as dead code.
//!
//! The IR's semantics leave NaN payloads (and the sign of a NaN) to the
//! backend, so a float whose bits become observable — the operand of
//! `f64_bits` and the sign source of `copysign` — is first replaced by a
//! fixed value when it is NaN (`select(x != x, c, x)`). Every other result
//! is compared with any NaN equal to any NaN.

use std::cell::RefCell;
use std::fmt;

use crux_ir::kernel::text::print;
use crux_ir::kernel::{
    Access, BinOp, Buffer, BufferId, Builder, CmpOp, Conv, Function, LocalId, MatRef, Scalar, Ty,
    UnOp, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// A generated kernel with arguments to call it with.
#[derive(Clone)]
pub struct KGenCase {
    /// The kernel (verified).
    pub function: Function,
    /// One scalar argument per parameter, in order.
    pub args: Vec<Scalar>,
    /// Initial contents of every buffer, in declaration order.
    pub buffers: Vec<Buffer>,
}

impl fmt::Debug for KGenCase {
    /// The kernel in the text format, then the arguments and buffers (so a
    /// failure report can be pasted into a regression test).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "KGenCase:")?;
        f.write_str(&print(&self.function))?;
        writeln!(f, "# args = {:?}", self.args)?;
        for (i, b) in self.buffers.iter().enumerate() {
            writeln!(f, "# buf{i} = {b:?}")?;
        }
        Ok(())
    }
}

/// Size limits of the generated kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct KGenConfig {
    /// Most steps per region (a loop or branch counts as one step).
    pub max_steps: usize,
    /// Deepest nesting of loops and branches.
    pub max_depth: u32,
    /// Most scalar parameters.
    pub max_params: usize,
    /// Most buffers.
    pub max_buffers: usize,
    /// Most local arrays.
    pub max_locals: usize,
}

impl Default for KGenConfig {
    /// Up to 12 steps per region, nesting depth 3, 5 parameters, 4 buffers
    /// and 2 locals.
    fn default() -> KGenConfig {
        KGenConfig {
            max_steps: 12,
            max_depth: 3,
            max_params: 5,
            max_buffers: 4,
            max_locals: 2,
        }
    }
}

// ------------------------------------------------------------------ recipe

/// One step: raw numbers decoded against the values visible at that point.
#[derive(Clone, Debug)]
enum Step {
    Const {
        ty: u8,
        pick: u8,
        raw: u64,
    },
    Unary {
        op: u8,
        ty: u8,
        a: u16,
    },
    Binary {
        op: u8,
        ty: u8,
        a: u16,
        b: u16,
    },
    Cmp {
        op: u8,
        ty: u8,
        a: u16,
        b: u16,
    },
    Select {
        ty: u8,
        c: u16,
        a: u16,
        b: u16,
    },
    Fma {
        ty: u8,
        a: u16,
        b: u16,
        c: u16,
    },
    Conv {
        c: u8,
        a: u16,
    },
    Load {
        mem: u8,
        idx: u16,
        mode: u8,
    },
    Store {
        mem: u8,
        idx: u16,
        val: u16,
        mode: u8,
    },
    Gemm {
        raw: u64,
    },
    Philox {
        seed: u16,
        stream: u16,
        counter: u16,
        uniform: bool,
    },
    For {
        lo: u8,
        trip: u8,
        carried: Vec<(u8, u16)>,
        body: Vec<Step>,
        yields: Vec<u16>,
    },
    While {
        start: u8,
        bound: u8,
        carried: Vec<(u8, u16)>,
        cond: Vec<Step>,
        extra: Option<u16>,
        body: Vec<Step>,
        yields: Vec<u16>,
    },
    If {
        cond: u16,
        yields: Vec<(u8, u16, u16)>,
        then: Vec<Step>,
        else_: Vec<Step>,
    },
}

#[derive(Clone, Debug)]
struct BufSpec {
    ty: u8,
    len_log2: u8,
    access: u8,
    contents: Vec<(u8, u64)>,
}

#[derive(Clone, Debug)]
struct Recipe {
    params: Vec<(u8, u8, u64)>,
    buffers: Vec<BufSpec>,
    locals: Vec<(u8, u8)>,
    steps: Vec<Step>,
    returns: Vec<(u8, u16)>,
}

const NUM: [Ty; 4] = [Ty::F64, Ty::F32, Ty::I64, Ty::I32];
const FLOAT: [Ty; 2] = [Ty::F64, Ty::F32];
const INT: [Ty; 2] = [Ty::I64, Ty::I32];
const LOGIC: [Ty; 3] = [Ty::I64, Ty::I32, Ty::Bool];

fn pick_ty(set: &[Ty], k: u8) -> Ty {
    set[k as usize % set.len()]
}

/// Edge values of each type, as bits.
fn edge_f64() -> Vec<u64> {
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        2.0,
        3.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        f64::MIN,
        1e300,
        1e-300,
        std::f64::consts::PI,
        9007199254740992.0,
        9223372036854775808.0,
        -9223372036854775808.0,
        0.49999999999999994,
        1e10,
        -7.0,
        4294967296.0,
    ]
    .iter()
    .map(|v: &f64| v.to_bits())
    .collect()
}

fn edge_f32() -> Vec<u64> {
    [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1.5,
        2.5,
        -2.5,
        2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        1e30,
        1e-30,
        16777216.0,
        0.1,
        -3.0,
    ]
    .iter()
    .map(|v: &f32| v.to_bits() as u64)
    .collect()
}

fn edge_i64() -> Vec<u64> {
    [
        0i64,
        1,
        -1,
        2,
        3,
        7,
        i64::MIN,
        i64::MAX,
        31,
        32,
        33,
        63,
        64,
        65,
        127,
        -64,
        0xFFFF_FFFF,
        1 << 32,
        -(1 << 53),
        1 << 53,
        0x7ff8_0000_0000_0000,
    ]
    .iter()
    .map(|v| *v as u64)
    .collect()
}

fn edge_i32() -> Vec<u64> {
    [
        0i32,
        1,
        -1,
        2,
        3,
        i32::MIN,
        i32::MAX,
        15,
        31,
        32,
        33,
        64,
        -32,
        0x7fc0_0000,
    ]
    .iter()
    .map(|v| *v as u32 as u64)
    .collect()
}

/// Bits of a value of `ty`: mostly an edge value, otherwise random bits.
fn bits_for(ty: Ty, pick: u8, raw: u64) -> u64 {
    let table = match ty {
        Ty::F64 => edge_f64(),
        Ty::F32 => edge_f32(),
        Ty::I64 => edge_i64(),
        Ty::I32 => edge_i32(),
        Ty::Bool => return raw & 1,
    };
    let k = pick as usize;
    if k < 3 * table.len() {
        table[k % table.len()]
    } else {
        match ty {
            Ty::F32 | Ty::I32 => raw & 0xFFFF_FFFF,
            // Small integers are useful as indices and shift amounts.
            Ty::I64 if k.is_multiple_of(2) => (raw % 17).wrapping_sub(8),
            _ => raw,
        }
    }
}

fn scalar(ty: Ty, pick: u8, raw: u64) -> Scalar {
    Scalar::from_bits(ty, bits_for(ty, pick, raw))
}

fn arb_leaf_step() -> impl Strategy<Value = Step> {
    let u = any::<u16>;
    prop_oneof![
        2 => (any::<u8>(), any::<u8>(), any::<u64>()).prop_map(|(ty, pick, raw)| Step::Const { ty, pick, raw }),
        3 => (any::<u8>(), any::<u8>(), u()).prop_map(|(op, ty, a)| Step::Unary { op, ty, a }),
        6 => (any::<u8>(), any::<u8>(), u(), u()).prop_map(|(op, ty, a, b)| Step::Binary { op, ty, a, b }),
        2 => (any::<u8>(), any::<u8>(), u(), u()).prop_map(|(op, ty, a, b)| Step::Cmp { op, ty, a, b }),
        1 => (any::<u8>(), u(), u(), u()).prop_map(|(ty, c, a, b)| Step::Select { ty, c, a, b }),
        2 => (any::<u8>(), u(), u(), u()).prop_map(|(ty, a, b, c)| Step::Fma { ty, a, b, c }),
        3 => (any::<u8>(), u()).prop_map(|(c, a)| Step::Conv { c, a }),
        2 => (any::<u8>(), u(), any::<u8>()).prop_map(|(mem, idx, mode)| Step::Load { mem, idx, mode }),
        2 => (any::<u8>(), u(), u(), any::<u8>()).prop_map(|(mem, idx, val, mode)| Step::Store { mem, idx, val, mode }),
        1 => (u(), u(), u(), any::<bool>()).prop_map(|(seed, stream, counter, uniform)| Step::Philox { seed, stream, counter, uniform }),
        2 => any::<u64>().prop_map(|raw| Step::Gemm { raw }),
    ]
}

fn arb_steps(cfg: &KGenConfig) -> impl Strategy<Value = Vec<Step>> {
    let max = cfg.max_steps.max(1);
    let leaf = arb_leaf_step();
    let tree = leaf.prop_recursive(cfg.max_depth, 48, 6, move |inner| {
        let body = vec(inner, 0..=max / 2);
        let carried = vec((any::<u8>(), any::<u16>()), 0..3);
        let ys = vec(any::<u16>(), 3);
        prop_oneof![
            (
                any::<u8>(),
                any::<u8>(),
                carried.clone(),
                body.clone(),
                ys.clone()
            )
                .prop_map(|(lo, trip, carried, body, yields)| Step::For {
                    lo,
                    trip,
                    carried,
                    body,
                    yields
                }),
            (
                any::<u8>(),
                any::<u8>(),
                carried,
                vec(arb_leaf_step(), 0..3),
                proptest::option::of(any::<u16>()),
                body.clone(),
                ys
            )
                .prop_map(|(start, bound, carried, cond, extra, body, yields)| {
                    Step::While {
                        start,
                        bound,
                        carried,
                        cond,
                        extra,
                        body,
                        yields,
                    }
                }),
            (
                any::<u16>(),
                vec((any::<u8>(), any::<u16>(), any::<u16>()), 0..3),
                body.clone(),
                body
            )
                .prop_map(|(cond, yields, then, else_)| Step::If {
                    cond,
                    yields,
                    then,
                    else_
                }),
        ]
    });
    vec(tree, 1..=max)
}

fn arb_recipe(cfg: &KGenConfig) -> impl Strategy<Value = Recipe> {
    (
        vec((any::<u8>(), any::<u8>(), any::<u64>()), 0..=cfg.max_params),
        vec(
            (
                any::<u8>(),
                0u8..4,
                any::<u8>(),
                vec((any::<u8>(), any::<u64>()), 8),
            )
                .prop_map(|(ty, len_log2, access, contents)| BufSpec {
                    ty,
                    len_log2,
                    access,
                    contents,
                }),
            0..=cfg.max_buffers,
        ),
        vec((any::<u8>(), 0u8..4), 0..=cfg.max_locals),
        arb_steps(cfg),
        vec((any::<u8>(), any::<u16>()), 0..8),
    )
        .prop_map(|(params, buffers, locals, steps, returns)| Recipe {
            params,
            buffers,
            locals,
            steps,
            returns,
        })
}

/// Strategy producing random valid kernels with arguments and buffers (see
/// the module documentation for what they contain).
pub fn arb_kernel(cfg: KGenConfig) -> impl Strategy<Value = KGenCase> {
    arb_recipe(&cfg).prop_map(|r| r.build())
}

// ---------------------------------------------------------------- building

/// A memory the program can address.
#[derive(Clone, Copy)]
enum Mem {
    Buf(BufferId, Access),
    Loc(LocalId),
}

struct Ctx {
    /// Values visible at this point, innermost region last.
    scopes: Vec<Vec<Value>>,
    /// Every buffer and local with its element type and length.
    mems: Vec<(Mem, Ty, usize)>,
}

impl Ctx {
    fn push(&mut self, v: Value) {
        if let Some(s) = self.scopes.last_mut() {
            s.push(v);
        }
    }

    /// A visible value of type `ty` chosen by `k`, or a new constant.
    fn pick(&mut self, b: &mut Builder, ty: Ty, k: u16) -> Value {
        let vis: Vec<Value> = self
            .scopes
            .iter()
            .flatten()
            .copied()
            .filter(|v| b.ty(*v) == ty)
            .collect();
        // Prefer recent values (the innermost ones) half of the time.
        if !vis.is_empty() && k % 8 != 7 {
            let i = if k.is_multiple_of(2) {
                vis.len() - 1 - (k as usize / 2) % vis.len().min(4)
            } else {
                k as usize % vis.len()
            };
            return vis[i];
        }
        let c = b.constant(
            ty,
            bits_for(
                ty,
                (k >> 3) as u8,
                (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
        );
        self.push(c);
        c
    }

    /// Folds the bits of every value of the innermost scope into the i64
    /// `acc` (floats with NaN replaced by one fixed NaN), so that every
    /// value computed is observable in the results.
    fn digest(&self, b: &mut Builder, acc: Value) -> Value {
        let vals: Vec<Value> = self.scopes.last().cloned().unwrap_or_default();
        let k = b.i64(0x0000_0100_0000_01B3);
        let nan = b.f64(f64::NAN);
        let mut acc = acc;
        for v in vals {
            let bits = match b.ty(v) {
                Ty::F64 | Ty::F32 => {
                    let x = if b.ty(v) == Ty::F32 {
                        b.conv(Conv::F32ToF64, v)
                    } else {
                        v
                    };
                    let is_nan = b.cmp(CmpOp::Ne, x, x);
                    let x = b.select(is_nan, nan, x);
                    b.conv(Conv::F64Bits, x)
                }
                Ty::I64 => v,
                Ty::I32 => b.conv(Conv::U32ToI64, v),
                Ty::Bool => b.conv(Conv::BoolToI64, v),
            };
            let m = b.mul(acc, k);
            acc = b.xor(m, bits);
        }
        acc
    }

    /// `x` unless it is NaN, then a fixed value (for bit-observable uses).
    fn no_nan(&mut self, b: &mut Builder, x: Value, k: u16) -> Value {
        let ty = b.ty(x);
        let nan = b.cmp(CmpOp::Ne, x, x);
        let fixed = b.constant(ty, bits_for(ty, (k % 7) as u8, 0));
        let fixed = if ty == Ty::F64 && k.is_multiple_of(3) {
            b.constant(Ty::F64, f64::NAN.to_bits())
        } else {
            fixed
        };
        b.select(nan, fixed, x)
    }

    /// An i64 index for a memory of length `len` (a power of two): masked,
    /// clamped, or (1 time in 16) raw.
    fn index(&mut self, b: &mut Builder, len: usize, k: u16, mode: u8) -> Value {
        let v = self.pick(b, Ty::I64, k);
        match mode % 16 {
            0 => v,
            m if m % 2 == 1 => {
                let mask = b.i64(len as i64 - 1);
                b.and(v, mask)
            }
            _ => {
                let zero = b.i64(0);
                let top = b.i64(len as i64 - 1);
                let lo = b.max(v, zero);
                b.min(lo, top)
            }
        }
    }

    /// A matrix product decoded from `raw`: dimensions 1 to 3, operands in
    /// readable f64 buffers with strides 0 to 3 and offsets 0 to 3, the
    /// output row- or column-major in another, writable f64 buffer. Small
    /// buffers make some views out of range (the error path). Nothing when
    /// the program has no such buffers.
    fn gemm(&mut self, b: &mut Builder, raw: u64) {
        let f64_bufs = |pred: fn(Access) -> bool| -> Vec<BufferId> {
            self.mems
                .iter()
                .filter_map(|m| match m {
                    (Mem::Buf(id, acc), Ty::F64, _) if pred(*acc) => Some(*id),
                    _ => None,
                })
                .collect()
        };
        let readable = f64_bufs(|a| a != Access::Write);
        let writable = f64_bufs(|a| a != Access::Read);
        let bits = |at: u32, n: u32| (raw >> at) & ((1 << n) - 1);
        let Some(&out) = writable.get(bits(0, 4) as usize % writable.len().max(1)) else {
            return;
        };
        let operands: Vec<BufferId> = readable.into_iter().filter(|&id| id != out).collect();
        if operands.is_empty() {
            return;
        }
        let pick = |at: u32| operands[bits(at, 4) as usize % operands.len()];
        let (m, n, k) = (1 + bits(8, 2) % 3, 1 + bits(10, 2) % 3, 1 + bits(12, 2) % 3);
        let view = |buf, at: u32| MatRef {
            buf,
            off: bits(at, 2),
            rs: bits(at + 2, 2),
            cs: bits(at + 4, 2),
        };
        let a = view(pick(4), 14);
        let c = view(pick(20), 24);
        let off = bits(30, 2);
        let o = if bits(32, 1) == 0 {
            MatRef::row_major(out, off, n)
        } else {
            MatRef::row_major(out, off, m).transposed()
        };
        b.gemm((m, n, k), a, c, o);
    }

    fn steps(&mut self, b: &mut Builder, steps: &[Step]) {
        for s in steps {
            self.step(b, s);
        }
    }

    fn step(&mut self, b: &mut Builder, s: &Step) {
        match s {
            Step::Const { ty, pick, raw } => {
                let ty = pick_ty(&Ty::ALL, *ty);
                let c = b.constant(ty, bits_for(ty, *pick, *raw));
                self.push(c);
            }
            Step::Unary { op, ty, a } => {
                let op = UnOp::ALL[*op as usize % UnOp::ALL.len()];
                let set: &[Ty] = match op {
                    UnOp::Neg | UnOp::Abs => &NUM,
                    UnOp::Not => &LOGIC,
                    _ => &FLOAT,
                };
                let x = self.pick(b, pick_ty(set, *ty), *a);
                let r = b.unary(op, x);
                self.push(r);
            }
            Step::Binary { op, ty, a, b: bb } => {
                let op = BinOp::ALL[*op as usize % BinOp::ALL.len()];
                let set: &[Ty] = match op {
                    BinOp::Div | BinOp::Copysign => &FLOAT,
                    BinOp::And | BinOp::Or | BinOp::Xor => &LOGIC,
                    BinOp::Shl | BinOp::ShrU | BinOp::ShrS => &INT,
                    _ => &NUM,
                };
                let t = pick_ty(set, *ty);
                let x = self.pick(b, t, *a);
                let mut y = self.pick(b, t, *bb);
                if op == BinOp::Copysign {
                    y = self.no_nan(b, y, *bb);
                }
                let r = b.binary(op, x, y);
                self.push(r);
            }
            Step::Cmp { op, ty, a, b: bb } => {
                let op = CmpOp::ALL[*op as usize % CmpOp::ALL.len()];
                let t = pick_ty(&NUM, *ty);
                let x = self.pick(b, t, *a);
                let y = self.pick(b, t, *bb);
                let r = b.cmp(op, x, y);
                self.push(r);
            }
            Step::Select { ty, c, a, b: bb } => {
                let t = pick_ty(&Ty::ALL, *ty);
                let c = self.pick(b, Ty::Bool, *c);
                let x = self.pick(b, t, *a);
                let y = self.pick(b, t, *bb);
                let r = b.select(c, x, y);
                self.push(r);
            }
            Step::Fma { ty, a, b: bb, c } => {
                let t = pick_ty(&FLOAT, *ty);
                let x = self.pick(b, t, *a);
                let y = self.pick(b, t, *bb);
                let z = if *ty % 4 < 2 {
                    // The rounding error of x·y (exactly representable
                    // unless it underflows): nonzero for most finite x, y.
                    let p = b.mul(x, y);
                    self.push(p);
                    let n = b.neg(p);
                    self.push(n);
                    n
                } else {
                    self.pick(b, t, *c)
                };
                let r = b.fma(x, y, z);
                self.push(r);
            }
            Step::Conv { c, a } => {
                let c = Conv::ALL[*c as usize % Conv::ALL.len()];
                let mut x = self.pick(b, c.types().0, *a);
                if c == Conv::F64Bits {
                    x = self.no_nan(b, x, *a);
                }
                let r = b.conv(c, x);
                self.push(r);
            }
            Step::Load { mem, idx, mode } => {
                let readable: Vec<(Mem, Ty, usize)> = self
                    .mems
                    .iter()
                    .copied()
                    .filter(|m| !matches!(m.0, Mem::Buf(_, Access::Write)))
                    .collect();
                if readable.is_empty() {
                    return;
                }
                let (m, _, len) = readable[*mem as usize % readable.len()];
                let i = self.index(b, len, *idx, *mode);
                let r = match m {
                    Mem::Buf(id, _) => b.load(id, i),
                    Mem::Loc(id) => b.local_load(id, i),
                };
                self.push(r);
            }
            Step::Store {
                mem,
                idx,
                val,
                mode,
            } => {
                let writable: Vec<(Mem, Ty, usize)> = self
                    .mems
                    .iter()
                    .copied()
                    .filter(|m| !matches!(m.0, Mem::Buf(_, Access::Read)))
                    .collect();
                if writable.is_empty() {
                    return;
                }
                let (m, ty, len) = writable[*mem as usize % writable.len()];
                let i = self.index(b, len, *idx, *mode);
                let v = self.pick(b, ty, *val);
                match m {
                    Mem::Buf(id, _) => b.store(id, i, v),
                    Mem::Loc(id) => b.local_store(id, i, v),
                }
            }
            Step::Gemm { raw } => self.gemm(b, *raw),
            Step::Philox {
                seed,
                stream,
                counter,
                uniform,
            } => {
                let s = self.pick(b, Ty::I64, *seed);
                let t = self.pick(b, Ty::I64, *stream);
                let c = self.pick(b, Ty::I64, *counter);
                if *uniform {
                    let u = b.uniform(s, t, c);
                    self.push(u);
                } else {
                    for w in b.philox(s, t, c) {
                        self.push(w);
                    }
                }
            }
            Step::For {
                lo,
                trip,
                carried,
                body,
                yields,
            } => {
                let lo_v = b.i64((*lo % 4) as i64 - 1);
                let trip_k = *trip % 8;
                let hi = if trip_k == 7 {
                    // A runtime bound, clamped to lo - 2 ..= lo + 4.
                    let v = self.pick(b, Ty::I64, *trip as u16 * 31);
                    let l = b.i64((*lo % 4) as i64 - 3);
                    let h = b.i64((*lo % 4) as i64 + 3);
                    let v = b.max(v, l);
                    b.min(v, h)
                } else {
                    b.i64((*lo % 4) as i64 - 1 + trip_k as i64 - 1)
                };
                let mut init: Vec<Value> = carried
                    .iter()
                    .map(|(t, k)| self.pick(b, pick_ty(&Ty::ALL, *t), *k))
                    .collect();
                // The last carried value digests every iteration.
                init.push(b.i64(0));
                let res = b.for_(lo_v, hi, &init, |b, i, c| {
                    let (c, d) = c.split_at(c.len() - 1);
                    let mut scope = vec![i];
                    scope.extend(c);
                    self.scopes.push(scope);
                    self.steps(b, body);
                    let mut ys: Vec<Value> = c
                        .iter()
                        .enumerate()
                        .map(|(j, p)| {
                            let k = yields.get(j).copied().unwrap_or(0);
                            let t = b.ty(*p);
                            self.pick(b, t, k)
                        })
                        .collect();
                    ys.push(self.digest(b, d[0]));
                    self.scopes.pop();
                    ys
                });
                for r in res {
                    self.push(r);
                }
            }
            Step::While {
                start,
                bound,
                carried,
                cond,
                extra,
                body,
                yields,
            } => {
                let counter = b.i64((*start % 3) as i64 - 1);
                let zero = b.i64(0);
                // p[0] counts, p[1] digests every iteration.
                let mut init = vec![counter, zero];
                init.extend(
                    carried
                        .iter()
                        .map(|(t, k)| self.pick(b, pick_ty(&Ty::ALL, *t), *k)),
                );
                let bound = (*bound % 5) as i64;
                let cell = RefCell::new(&mut *self);
                let res = b.while_(
                    &init,
                    |b, p| {
                        let mut me = cell.borrow_mut();
                        me.scopes.push(p.to_vec());
                        me.steps(b, cond);
                        let lim = b.i64(bound);
                        let mut go = b.lt(p[0], lim);
                        if let Some(k) = extra {
                            let e = me.pick(b, Ty::Bool, *k);
                            go = b.binary(BinOp::And, go, e);
                        }
                        // Keeps the condition's values live (the digest is
                        // practically never this constant).
                        let d = me.digest(b, p[1]);
                        let odd = b.i64(0x0123_4567_89ab_cdef);
                        let live = b.cmp(CmpOp::Ne, d, odd);
                        go = b.binary(BinOp::And, go, live);
                        me.scopes.pop();
                        go
                    },
                    |b, p| {
                        let mut me = cell.borrow_mut();
                        me.scopes.push(p.to_vec());
                        me.steps(b, body);
                        let one = b.i64(1);
                        let mut ys = vec![b.add(p[0], one), p[1]];
                        for (j, q) in p.iter().enumerate().skip(2) {
                            let k = yields.get(j - 2).copied().unwrap_or(0);
                            let t = b.ty(*q);
                            ys.push(me.pick(b, t, k));
                        }
                        ys[1] = me.digest(b, p[1]);
                        me.scopes.pop();
                        ys
                    },
                );
                for r in res {
                    cell.borrow_mut().push(r);
                }
            }
            Step::If {
                cond,
                yields,
                then,
                else_,
            } => {
                let c = self.pick(b, Ty::Bool, *cond);
                let tys: Vec<Ty> = yields.iter().map(|y| pick_ty(&Ty::ALL, y.0)).collect();
                let cell = RefCell::new(&mut *self);
                let branch = |b: &mut Builder, steps: &[Step], second: bool| -> Vec<Value> {
                    let mut me = cell.borrow_mut();
                    me.scopes.push(Vec::new());
                    me.steps(b, steps);
                    let mut ys: Vec<Value> = tys
                        .iter()
                        .zip(yields)
                        .map(|(t, y)| me.pick(b, *t, if second { y.2 } else { y.1 }))
                        .collect();
                    let zero = b.i64(0);
                    ys.push(me.digest(b, zero));
                    me.scopes.pop();
                    ys
                };
                let res = b.if_(c, |b| branch(b, then, false), |b| branch(b, else_, true));
                for r in res {
                    cell.borrow_mut().push(r);
                }
            }
        }
    }
}

impl Recipe {
    fn build(&self) -> KGenCase {
        let mut b = Builder::new("kgen");
        let mut ctx = Ctx {
            scopes: vec![Vec::new()],
            mems: Vec::new(),
        };
        let mut args = Vec::new();
        for (i, (t, pick, raw)) in self.params.iter().enumerate() {
            let ty = pick_ty(&Ty::ALL, *t);
            let p = b.param(format!("p{i}"), ty);
            ctx.push(p);
            args.push(scalar(ty, *pick, *raw));
        }
        let mut buffers = Vec::new();
        for (i, spec) in self.buffers.iter().enumerate() {
            let ty = pick_ty(&NUM, spec.ty);
            let access = [Access::Read, Access::Write, Access::ReadWrite][spec.access as usize % 3];
            let id = b.buffer(format!("b{i}"), ty, access);
            let len = 1usize << spec.len_log2;
            let mut buf = Buffer::zeros(ty, len);
            for (j, (pick, raw)) in spec.contents.iter().take(len).enumerate() {
                let s = scalar(ty, *pick, *raw);
                match (&mut buf, s) {
                    (Buffer::F64(v), Scalar::F64(x)) => v[j] = x,
                    (Buffer::F32(v), Scalar::F32(x)) => v[j] = x,
                    (Buffer::I64(v), Scalar::I64(x)) => v[j] = x,
                    (Buffer::I32(v), Scalar::I32(x)) => v[j] = x,
                    _ => unreachable!("scalar of the buffer's type"),
                }
            }
            buffers.push(buf);
            ctx.mems.push((Mem::Buf(id, access), ty, len));
        }
        for (i, (t, len_log2)) in self.locals.iter().enumerate() {
            let ty = pick_ty(&NUM, *t);
            let len = 1usize << len_log2;
            let id = b.local(format!("l{i}"), ty, len);
            ctx.mems.push((Mem::Loc(id), ty, len));
        }
        ctx.steps(&mut b, &self.steps);
        let mut rets: Vec<Value> = self
            .returns
            .iter()
            .map(|(t, k)| ctx.pick(&mut b, pick_ty(&Ty::ALL, *t), *k))
            .collect();
        let zero = b.i64(0);
        rets.push(ctx.digest(&mut b, zero));
        let function = match b.finish(&rets) {
            Ok(f) => f,
            Err(e) => panic!("the kernel generator built an invalid kernel ({e}) from {self:?}"),
        };
        KGenCase {
            function,
            args,
            buffers,
        }
    }
}
