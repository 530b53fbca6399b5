//! The PTX backend: kernel IR → PTX assembly text (one module with one
//! `.visible .entry` per kernel), for NVIDIA GPUs. No CUDA library is
//! needed to generate it; [`super::ptxas`] assembles it with NVIDIA's
//! `ptxas` (when installed) to validate it without a GPU. Running it is the
//! job of the CUDA executor, which relies on the calling convention below.
//!
//! # Module
//!
//! `.version 7.8`, `.target sm_80`, `.address_size 64`, and one
//! `.visible .entry <name>` with `.maxntid N, 1, 1`
//! ([`PtxOptions::max_threads_per_block`]) and `.minnctapersm 1` (with
//! `.maxntid` alone, ptxas aims at several blocks per SM and caps a
//! 128-thread kernel at 64 registers, spilling sampler chunk kernels that
//! need 70 to 120; one block per SM lets it use up to 255). Each GPU thread
//! runs the kernel once, on its own slice of every buffer.
//!
//! # Calling convention
//!
//! Entry parameters, in this order:
//!
//! 1. every scalar parameter of the kernel, in order, named `arg<j>`:
//!    `.param .u64` (i64), `.param .u32` (i32), `.param .f64` (f64),
//!    `.param .f32` (f32), `.param .u8` (bool, 0 or 1);
//! 2. for every buffer `i`: `.param .u64 buf<i>_ptr` (device address of
//!    the data), `.param .u64 buf<i>_len` (elements per thread) and
//!    `.param .u64 buf<i>_stride` (elements between the data of two
//!    consecutive threads; 0 when all threads share the buffer). Elements
//!    are in their native layout (`f64`, `f32`, `i64`, `i32`);
//! 3. `.param .u64 rets_ptr`: thread `t` writes its return value `k` as 8
//!    bytes at `rets_ptr + (t * n_returns + k) * 8` (f64 and i64 as their
//!    bits, f32 and i32 zero-extended to 64 bits, bool as 0 or 1);
//! 4. `.param .u64 status_ptr`: thread `t` writes a `u32` status at
//!    `status_ptr + 4 t`: [`STATUS_OK`] (0) when it ran to completion,
//!    [`STATUS_OUT_OF_BOUNDS`] (1) when a buffer or local access was out
//!    of range — the thread then stops at once (its returns are not
//!    written; its buffers hold every store made before the faulting
//!    access, as with the interpreter's error);
//! 5. `.param .u32 n_threads`.
//!
//! The thread index is `t = ctaid.x * ntid.x + tid.x`; threads with
//! `t ≥ n_threads` return at once without writing anything. Thread `t`'s
//! buffer `i` starts at `buf<i>_ptr + t * buf<i>_stride * elem_size`. With
//! [`PtxOptions::thread_param`] `= Some(j)`, scalar parameter `j` (an i64)
//! is replaced by `arg<j> + t` (wrapping), so a chunk kernel's `chain`
//! argument becomes the first chain plus the thread index.
//!
//! # Code
//!
//! Every IR [`Value`] gets one virtual register named after its index:
//! `%rd<n>` (i64), `%r<n>` (i32), `%fd<n>` (f64), `%f<n>` (f32), `%p<n>`
//! (bool, a predicate), so value `v7` of type f64 is `%fd7`; temporaries
//! take indices past the last value. Structured regions become labels
//! (`$L<n>`) and branches; region parameters and yields become `mov`s into
//! the loop-carried registers (parallel moves through temporaries when a
//! yield is itself a carried register). Local arrays are per-thread
//! `.local .align 8 .b8 loc<k>[...]` arrays zeroed on entry. With
//! [`PtxOptions::bounds_checks`], every load and store compares its index
//! with the length unsigned (`setp.ge.u64`) and branches to a common exit
//! that stores status 1.
//!
//! # Semantics
//!
//! Bit-identical to [`crux_ir::kernel::interp`] (NaN payloads aside):
//!
//! * float arithmetic with explicit round-to-nearest (`add.rn`, `sub.rn`,
//!   `mul.rn`, `div.rn`, `sqrt.rn`) so `ptxas` never contracts into FMA,
//!   and never `.ftz` (subnormals are kept); rounding by `cvt.rmi`, `rpi`,
//!   `rzi`, `rni`;
//! * the IR's explicit fused multiply-add as `fma.rn.f64` / `fma.rn.f32`
//!   (one rounding, IEEE 754 `fusedMultiplyAdd`; no `.ftz`, no `.sat`):
//!   the only `fma` in the output;
//! * Min/Max by compares and `selp` (PTX `min`/`max` return the non-NaN
//!   operand): NaN if either is NaN, and equal operands (only ±0 have
//!   different bits) combined bitwise (`or` of the bits for min, `and` for
//!   max), so −0 < +0;
//! * Copysign as `copysign d, b, a` (PTX copies the sign of its *first*
//!   operand onto the magnitude of its second);
//! * comparisons ordered (`setp.eq/lt/le/gt/ge`), `Ne` unordered
//!   (`setp.neu`); integer comparisons signed;
//! * integer add/sub/mul wrapping (`mul.lo`), shifts by `b mod bits` (the
//!   amount is masked: PTX clamps it), integer abs as `a < 0 ? -a : a`
//!   (wrapping);
//! * conversions: `cvt.rn.f32.f64`, `cvt.f64.f32`, `cvt.rzi.s64.f64`
//!   (PTX float→integer conversions saturate like Rust's `as`, but an
//!   f64 NaN becomes `i64::MIN` — PTX ISA, `cvt`: "1 << (BitWidth(dst) - 1)"
//!   when the source is `.f64` or the destination `.s64`/`.u64` — so a
//!   `setp.nan` + `selp` makes it 0), `cvt.rn.f64.s64`, `cvt.u32.u64`,
//!   `cvt.s64.s32`, `cvt.u64.u32`, bit casts `mov.b64`, bool→i64 by
//!   `selp`.
//!
//! There is no fuel: a runaway loop runs until the driver's watchdog.

use std::collections::HashSet;
use std::fmt::Write as _;

use crux_ir::kernel::{
    verify, BinOp, CmpOp, Conv, Function, Inst, InstKind, MatRef, Region, Ty, UnOp, Value,
};

use super::BackendError;

const BACKEND: &str = "ptx";

/// Status written by a thread that ran to completion.
pub const STATUS_OK: u32 = 0;
/// Status written by a thread that made an out-of-range buffer or local
/// access (and stopped there).
pub const STATUS_OUT_OF_BOUNDS: u32 = 1;

/// Options of the PTX backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtxOptions {
    /// Whether every load and store is bounds-checked (default `true`).
    pub bounds_checks: bool,
    /// A scalar i64 parameter replaced by itself plus the thread index
    /// (default `None`).
    pub thread_param: Option<usize>,
    /// Largest block size the kernel is launched with, emitted as
    /// `.maxntid N, 1, 1` (default 128; 1 to 1024).
    pub max_threads_per_block: u32,
}

impl Default for PtxOptions {
    fn default() -> Self {
        PtxOptions {
            bounds_checks: true,
            thread_param: None,
            max_threads_per_block: 128,
        }
    }
}

fn unsupported(what: impl Into<String>) -> BackendError {
    BackendError::Unsupported {
        backend: BACKEND,
        what: what.into(),
    }
}

/// Register classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    B64,
    B32,
    F64,
    F32,
    Pred,
}

impl Class {
    const ALL: [Class; 5] = [Class::B64, Class::B32, Class::F64, Class::F32, Class::Pred];

    fn of(t: Ty) -> Class {
        match t {
            Ty::I64 => Class::B64,
            Ty::I32 => Class::B32,
            Ty::F64 => Class::F64,
            Ty::F32 => Class::F32,
            Ty::Bool => Class::Pred,
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Class::B64 => "rd",
            Class::B32 => "r",
            Class::F64 => "fd",
            Class::F32 => "f",
            Class::Pred => "p",
        }
    }
    fn decl(self) -> &'static str {
        match self {
            Class::B64 => ".b64",
            Class::B32 => ".b32",
            Class::F64 => ".f64",
            Class::F32 => ".f32",
            Class::Pred => ".pred",
        }
    }
}

/// `mov`/`selp` type of a value type.
fn mov_ty(t: Ty) -> &'static str {
    match t {
        Ty::I64 => "b64",
        Ty::I32 => "b32",
        Ty::F64 => "f64",
        Ty::F32 => "f32",
        Ty::Bool => "pred",
    }
}

/// Memory type (`ld`/`st`) and size in bytes of a buffer or local element.
fn mem_ty(t: Ty) -> (&'static str, u64) {
    match t {
        Ty::I64 => ("u64", 8),
        Ty::I32 => ("u32", 4),
        Ty::F64 => ("f64", 8),
        Ty::F32 => ("f32", 4),
        Ty::Bool => ("u8", 1),
    }
}

/// Signed integer type name.
fn sint(t: Ty) -> &'static str {
    if t == Ty::I64 {
        "s64"
    } else {
        "s32"
    }
}

/// Bit type of the same width.
fn bits(t: Ty) -> &'static str {
    match t {
        Ty::I64 | Ty::F64 => "b64",
        _ => "b32",
    }
}

/// A constant operand from its IR encoding.
fn literal(ty: Ty, b: u64) -> String {
    match ty {
        Ty::F64 => format!("0d{b:016X}"),
        Ty::F32 => format!("0f{:08X}", b as u32),
        Ty::I64 if b as i64 == i64::MIN => format!("0x{b:016X}"),
        Ty::I64 => (b as i64).to_string(),
        Ty::I32 => (b as u32 as i32).to_string(),
        Ty::Bool => (b & 1).to_string(),
    }
}

struct Emitter<'a> {
    f: &'a Function,
    opts: &'a PtxOptions,
    code: String,
    /// Next free register index (values first, then temporaries).
    next_reg: u32,
    /// Registers used per class: one past the highest index.
    used: [u32; 5],
    next_label: u32,
    /// Per buffer: base address (this thread's slice) and length registers.
    buf_base: Vec<String>,
    buf_len: Vec<String>,
    /// Per local: base address register.
    loc_base: Vec<String>,
    /// Address of this thread's status word.
    status_addr: String,
    oob_used: bool,
}

impl Emitter<'_> {
    fn class_index(c: Class) -> usize {
        Class::ALL
            .iter()
            .position(|x| *x == c)
            .expect("Class::ALL lists every register class")
    }

    fn name(&mut self, c: Class, idx: u32) -> String {
        let u = &mut self.used[Self::class_index(c)];
        *u = (*u).max(idx + 1);
        format!("%{}{idx}", c.prefix())
    }

    /// The register of a value.
    fn reg(&mut self, v: Value) -> String {
        let c = Class::of(self.f.ty(v));
        self.name(c, v.0)
    }

    /// A fresh temporary of a class.
    fn tmp(&mut self, c: Class) -> String {
        let i = self.next_reg;
        self.next_reg += 1;
        self.name(c, i)
    }

    fn tmp_ty(&mut self, t: Ty) -> String {
        self.tmp(Class::of(t))
    }

    fn ins(&mut self, s: impl AsRef<str>) {
        self.code.push('\t');
        self.code.push_str(s.as_ref());
        self.code.push_str(";\n");
    }

    fn comment(&mut self, s: impl AsRef<str>) {
        self.code.push_str("\t// ");
        self.code.push_str(s.as_ref());
        self.code.push('\n');
    }

    fn label(&mut self) -> String {
        let l = format!("$L{}", self.next_label);
        self.next_label += 1;
        l
    }

    fn place(&mut self, l: &str) {
        self.code.push_str(l);
        self.code.push_str(":\n");
    }

    /// `dsts[k] = srcs[k]` for all `k` at once.
    fn moves(&mut self, dsts: &[Value], srcs: &[Value]) {
        let pairs: Vec<(Value, Value)> = dsts
            .iter()
            .zip(srcs)
            .filter(|(d, s)| d != s)
            .map(|(d, s)| (*d, *s))
            .collect();
        let dset: HashSet<Value> = pairs.iter().map(|p| p.0).collect();
        if pairs.iter().any(|(_, s)| dset.contains(s)) {
            // Some source is overwritten by another move: go through temporaries.
            let mut tmps = Vec::new();
            for (_, s) in &pairs {
                let t = self.f.ty(*s);
                let tmp = self.tmp_ty(t);
                let sr = self.reg(*s);
                self.ins(format!("mov.{} {tmp}, {sr}", mov_ty(t)));
                tmps.push(tmp);
            }
            for ((d, _), tmp) in pairs.iter().zip(tmps) {
                let t = self.f.ty(*d);
                let dr = self.reg(*d);
                self.ins(format!("mov.{} {dr}, {tmp}", mov_ty(t)));
            }
        } else {
            for (d, s) in pairs {
                let t = self.f.ty(d);
                let (dr, sr) = (self.reg(d), self.reg(s));
                self.ins(format!("mov.{} {dr}, {sr}", mov_ty(t)));
            }
        }
    }

    /// Branches to the out-of-bounds exit unless `index < len` (unsigned).
    fn bounds_check(&mut self, index: &str, len: &str) {
        if !self.opts.bounds_checks {
            return;
        }
        self.oob_used = true;
        let p = self.tmp(Class::Pred);
        self.ins(format!("setp.ge.u64 {p}, {index}, {len}"));
        self.ins(format!("@{p} bra $Loob"));
    }

    fn region(&mut self, r: &Region) -> Result<(), BackendError> {
        for inst in &r.insts {
            self.inst(inst)?;
        }
        Ok(())
    }

    /// Bounds-checks `index` into buffer `buf` and returns the memory
    /// type suffix and a register holding the element's address.
    fn global_address(
        &mut self,
        buf: crux_ir::kernel::BufferId,
        index: Value,
    ) -> (&'static str, String) {
        let (mt, size) = mem_ty(self.f.buffers[buf.index()].ty);
        let (base, len) = (
            self.buf_base[buf.index()].clone(),
            self.buf_len[buf.index()].clone(),
        );
        (mt, self.address(index, &len, size, &base))
    }

    /// Like [`Emitter::global_address`] for a local array.
    fn local_address(
        &mut self,
        local: crux_ir::kernel::LocalId,
        index: Value,
    ) -> (&'static str, String) {
        let decl = &self.f.locals[local.index()];
        let (mt, size) = mem_ty(decl.ty);
        let len = decl.len.to_string();
        let base = self.loc_base[local.index()].clone();
        (mt, self.address(index, &len, size, &base))
    }

    /// Bounds-checks `index` against `len` and returns a register holding
    /// `base + index · size`.
    fn address(&mut self, index: Value, len: &str, size: u64, base: &str) -> String {
        let i = self.reg(index);
        self.bounds_check(&i, len);
        let a = self.tmp(Class::B64);
        self.ins(format!("mad.lo.s64 {a}, {i}, {size}, {base}"));
        a
    }

    /// A matrix product as three nested loops, one `fma.rn.f64` chain per
    /// output entry (ascending in `l` from `+0.0`, the interpreter's
    /// order), after checking the three extents (`a`, `b`, `out`).
    fn gemm(&mut self, (m, n, k): (u64, u64, u64), a: &MatRef, b: &MatRef, out: &MatRef) {
        self.comment(format!("gemm {m} x {n} x {k}"));
        let mut base = Vec::with_capacity(3);
        for (v, rows, cols) in [(a, m, k), (b, k, n), (out, m, n)] {
            let j = v.buf.index();
            let last = v
                .last(rows, cols)
                .expect("verified: the extent fits an i64");
            let t = self.tmp(Class::B64);
            self.ins(format!("mov.u64 {t}, {last}"));
            let len = self.buf_len[j].clone();
            self.bounds_check(&t, &len);
            let p = self.tmp(Class::B64);
            let b0 = self.buf_base[j].clone();
            self.ins(format!("add.s64 {p}, {b0}, {}", v.off * 8));
            base.push(p);
        }
        let [pa, pb, po] = [base[0].clone(), base[1].clone(), base[2].clone()];
        let (i, j, l) = (
            self.tmp(Class::B64),
            self.tmp(Class::B64),
            self.tmp(Class::B64),
        );
        let (ai, bj, oi, oij) = (
            self.tmp(Class::B64),
            self.tmp(Class::B64),
            self.tmp(Class::B64),
            self.tmp(Class::B64),
        );
        let (acc, x, y) = (
            self.tmp(Class::F64),
            self.tmp(Class::F64),
            self.tmp(Class::F64),
        );
        let p = self.tmp(Class::Pred);
        let (li, lj, ll) = (self.label(), self.label(), self.label());
        self.ins(format!("mov.u64 {i}, 0"));
        self.place(&li);
        self.ins(format!("mad.lo.s64 {oi}, {i}, {}, {po}", out.rs * 8));
        self.ins(format!("mov.u64 {j}, 0"));
        self.place(&lj);
        self.ins(format!("mad.lo.s64 {ai}, {i}, {}, {pa}", a.rs * 8));
        self.ins(format!("mad.lo.s64 {bj}, {j}, {}, {pb}", b.cs * 8));
        self.ins(format!("mov.f64 {acc}, {}", literal(Ty::F64, 0)));
        self.ins(format!("mov.u64 {l}, 0"));
        self.place(&ll);
        self.ins(".pragma \"nounroll\"");
        self.ins(format!("ld.global.f64 {x}, [{ai}]"));
        self.ins(format!("ld.global.f64 {y}, [{bj}]"));
        self.ins(format!("fma.rn.f64 {acc}, {x}, {y}, {acc}"));
        self.ins(format!("add.s64 {ai}, {ai}, {}", a.cs * 8));
        self.ins(format!("add.s64 {bj}, {bj}, {}", b.rs * 8));
        self.ins(format!("add.s64 {l}, {l}, 1"));
        self.ins(format!("setp.lt.u64 {p}, {l}, {k}"));
        self.ins(format!("@{p} bra {ll}"));
        self.ins(format!("mad.lo.s64 {oij}, {j}, {}, {oi}", out.cs * 8));
        self.ins(format!("st.global.f64 [{oij}], {acc}"));
        self.ins(format!("add.s64 {j}, {j}, 1"));
        self.ins(format!("setp.lt.u64 {p}, {j}, {n}"));
        self.ins(format!("@{p} bra {lj}"));
        self.ins(format!("add.s64 {i}, {i}, 1"));
        self.ins(format!("setp.lt.u64 {p}, {i}, {m}"));
        self.ins(format!("@{p} bra {li}"));
    }

    fn inst(&mut self, inst: &Inst) -> Result<(), BackendError> {
        let res = |k: usize| inst.results[k];
        match &inst.kind {
            InstKind::Const { ty, bits } => {
                let d = self.reg(res(0));
                if *ty == Ty::Bool {
                    // No predicate immediates: compare two constants.
                    let op = if *bits != 0 { "eq" } else { "ne" };
                    self.ins(format!("setp.{op}.u32 {d}, 0, 0"));
                } else {
                    self.ins(format!("mov.{} {d}, {}", mov_ty(*ty), literal(*ty, *bits)));
                }
            }
            InstKind::Unary(op, a) => self.unary(*op, res(0), *a),
            InstKind::Binary(op, a, b) => self.binary(*op, res(0), *a, *b),
            InstKind::Cmp(op, a, b) => {
                let t = self.f.ty(*a);
                let (d, x, y) = (self.reg(res(0)), self.reg(*a), self.reg(*b));
                let name = match op {
                    CmpOp::Eq => "eq",
                    CmpOp::Ne if t.is_float() => "neu",
                    CmpOp::Ne => "ne",
                    CmpOp::Lt => "lt",
                    CmpOp::Le => "le",
                    CmpOp::Gt => "gt",
                    CmpOp::Ge => "ge",
                };
                let ty = if t.is_float() { t.name() } else { sint(t) };
                self.ins(format!("setp.{name}.{ty} {d}, {x}, {y}"));
            }
            InstKind::Select(c, a, b) => {
                let t = self.f.ty(*a);
                let (d, c, x, y) = (self.reg(res(0)), self.reg(*c), self.reg(*a), self.reg(*b));
                if t == Ty::Bool {
                    // d = (c ∧ x) ∨ (¬c ∧ y)
                    let (t1, t2) = (self.tmp(Class::Pred), self.tmp(Class::Pred));
                    self.ins(format!("and.pred {t1}, {c}, {x}"));
                    self.ins(format!("not.pred {t2}, {c}"));
                    self.ins(format!("and.pred {t2}, {t2}, {y}"));
                    self.ins(format!("or.pred {d}, {t1}, {t2}"));
                } else {
                    self.ins(format!("selp.{} {d}, {x}, {y}, {c}", mov_ty(t)));
                }
            }
            InstKind::Fma(a, b, c) => {
                let n = self.f.ty(*a).name();
                let (d, x, y, z) = (self.reg(res(0)), self.reg(*a), self.reg(*b), self.reg(*c));
                self.ins(format!("fma.rn.{n} {d}, {x}, {y}, {z}"));
            }
            InstKind::Gemm { m, n, k, a, b, out } => self.gemm((*m, *n, *k), a, b, out),
            InstKind::Conv(c, a) => {
                let (d, x) = (self.reg(res(0)), self.reg(*a));
                let s = match c {
                    Conv::F64ToF32 => format!("cvt.rn.f32.f64 {d}, {x}"),
                    Conv::F32ToF64 => format!("cvt.f64.f32 {d}, {x}"),
                    Conv::F64ToI64 => {
                        // PTX saturates, but turns NaN into i64::MIN for
                        // f64 → s64 (PTX ISA, cvt: "1 << (BitWidth(dst) - 1)
                        // ... MININT for signed type"); the IR wants 0.
                        let (t, p) = (self.tmp(Class::B64), self.tmp(Class::Pred));
                        self.ins(format!("cvt.rzi.s64.f64 {t}, {x}"));
                        self.ins(format!("setp.nan.f64 {p}, {x}, {x}"));
                        format!("selp.b64 {d}, 0, {t}, {p}")
                    }
                    Conv::I64ToF64 => format!("cvt.rn.f64.s64 {d}, {x}"),
                    Conv::I64ToI32 => format!("cvt.u32.u64 {d}, {x}"),
                    Conv::I32ToI64 => format!("cvt.s64.s32 {d}, {x}"),
                    Conv::U32ToI64 => format!("cvt.u64.u32 {d}, {x}"),
                    Conv::F64Bits | Conv::BitsF64 => format!("mov.b64 {d}, {x}"),
                    Conv::BoolToI64 => format!("selp.u64 {d}, 1, 0, {x}"),
                };
                self.ins(s);
            }
            InstKind::Load { buf, index } => {
                let (mt, a) = self.global_address(*buf, *index);
                let d = self.reg(res(0));
                self.ins(format!("ld.global.{mt} {d}, [{a}]"));
            }
            InstKind::Store { buf, index, value } => {
                let (mt, a) = self.global_address(*buf, *index);
                let v = self.reg(*value);
                self.ins(format!("st.global.{mt} [{a}], {v}"));
            }
            InstKind::LocalLoad { local, index } => {
                let (mt, a) = self.local_address(*local, *index);
                let d = self.reg(res(0));
                self.ins(format!("ld.local.{mt} {d}, [{a}]"));
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                let (mt, a) = self.local_address(*local, *index);
                let v = self.reg(*value);
                self.ins(format!("st.local.{mt} [{a}], {v}"));
            }
            InstKind::For { lo, hi, init, body } => {
                let (head, end) = (self.label(), self.label());
                self.comment(format!("for {} in {lo}..{hi}", body.params[0]));
                let mut dst = body.params.clone();
                let mut src = vec![*lo];
                src.extend(init);
                self.moves(&dst, &src);
                self.place(&head);
                // Unrolling multiplies live registers; one thread per chain
                // needs few registers more than fast loops.
                self.ins(".pragma \"nounroll\"");
                let (i, h) = (self.reg(body.params[0]), self.reg(*hi));
                let p = self.tmp(Class::Pred);
                self.ins(format!("setp.ge.s64 {p}, {i}, {h}"));
                self.ins(format!("@{p} bra {end}"));
                self.region(body)?;
                dst.remove(0);
                self.moves(&dst, &body.yields);
                self.ins(format!("add.s64 {i}, {i}, 1"));
                self.ins(format!("bra {head}"));
                self.place(&end);
                self.moves(&inst.results, &body.params[1..]);
            }
            InstKind::While { init, cond, body } => {
                let (head, end) = (self.label(), self.label());
                self.comment("while");
                self.moves(&cond.params, init);
                self.place(&head);
                self.region(cond)?;
                let c = self.reg(cond.yields[0]);
                self.ins(format!("@!{c} bra {end}"));
                self.moves(&body.params, &cond.params);
                self.region(body)?;
                self.moves(&cond.params, &body.yields);
                self.ins(format!("bra {head}"));
                self.place(&end);
                self.moves(&inst.results, &cond.params);
            }
            InstKind::If { cond, then, else_ } => {
                let (other, end) = (self.label(), self.label());
                let c = self.reg(*cond);
                self.comment("if");
                self.ins(format!("@!{c} bra {other}"));
                self.region(then)?;
                self.moves(&inst.results, &then.yields);
                self.ins(format!("bra {end}"));
                self.place(&other);
                self.region(else_)?;
                self.moves(&inst.results, &else_.yields);
                self.place(&end);
            }
        }
        Ok(())
    }

    fn unary(&mut self, op: UnOp, dv: Value, a: Value) {
        let t = self.f.ty(a);
        let (d, x) = (self.reg(dv), self.reg(a));
        if t.is_float() {
            let n = t.name();
            let s = match op {
                UnOp::Neg => format!("neg.{n} {d}, {x}"),
                UnOp::Abs => format!("abs.{n} {d}, {x}"),
                UnOp::Sqrt => format!("sqrt.rn.{n} {d}, {x}"),
                UnOp::Floor => format!("cvt.rmi.{n}.{n} {d}, {x}"),
                UnOp::Ceil => format!("cvt.rpi.{n}.{n} {d}, {x}"),
                UnOp::Trunc => format!("cvt.rzi.{n}.{n} {d}, {x}"),
                UnOp::Nearest => format!("cvt.rni.{n}.{n} {d}, {x}"),
                UnOp::Not => unreachable!("verified"),
            };
            self.ins(s);
        } else if t == Ty::Bool {
            self.ins(format!("not.pred {d}, {x}"));
        } else {
            let s = sint(t);
            match op {
                UnOp::Neg => self.ins(format!("neg.{s} {d}, {x}")),
                UnOp::Abs => {
                    // Wrapping: |MIN| = MIN.
                    let (n, p) = (self.tmp_ty(t), self.tmp(Class::Pred));
                    self.ins(format!("neg.{s} {n}, {x}"));
                    self.ins(format!("setp.lt.{s} {p}, {x}, 0"));
                    self.ins(format!("selp.{} {d}, {n}, {x}, {p}", bits(t)));
                }
                _ => self.ins(format!("not.{} {d}, {x}", bits(t))),
            }
        }
    }

    fn binary(&mut self, op: BinOp, dv: Value, a: Value, b: Value) {
        let t = self.f.ty(a);
        let (d, x, y) = (self.reg(dv), self.reg(a), self.reg(b));
        if t == Ty::Bool {
            let name = match op {
                BinOp::And => "and",
                BinOp::Or => "or",
                _ => "xor",
            };
            self.ins(format!("{name}.pred {d}, {x}, {y}"));
        } else if t.is_float() {
            let n = t.name();
            match op {
                BinOp::Add => self.ins(format!("add.rn.{n} {d}, {x}, {y}")),
                BinOp::Sub => self.ins(format!("sub.rn.{n} {d}, {x}, {y}")),
                BinOp::Mul => self.ins(format!("mul.rn.{n} {d}, {x}, {y}")),
                BinOp::Div => self.ins(format!("div.rn.{n} {d}, {x}, {y}")),
                // PTX copysign takes the sign from its first operand.
                BinOp::Copysign => self.ins(format!("copysign.{n} {d}, {y}, {x}")),
                BinOp::Min | BinOp::Max => self.fminmax(op == BinOp::Max, t, &d, &x, &y),
                _ => unreachable!("verified"),
            }
        } else {
            let (s, bt) = (sint(t), bits(t));
            let width = if t == Ty::I64 { 64 } else { 32 };
            let simple = |name: &str| format!("{name} {d}, {x}, {y}");
            match op {
                BinOp::Add => self.ins(simple(&format!("add.{s}"))),
                BinOp::Sub => self.ins(simple(&format!("sub.{s}"))),
                BinOp::Mul => self.ins(simple(&format!("mul.lo.{s}"))),
                BinOp::Min => self.ins(simple(&format!("min.{s}"))),
                BinOp::Max => self.ins(simple(&format!("max.{s}"))),
                BinOp::And => self.ins(simple(&format!("and.{bt}"))),
                BinOp::Or => self.ins(simple(&format!("or.{bt}"))),
                BinOp::Xor => self.ins(simple(&format!("xor.{bt}"))),
                BinOp::Shl | BinOp::ShrU | BinOp::ShrS => {
                    // The amount is a u32 register, taken mod the width.
                    let amt = self.tmp(Class::B32);
                    if t == Ty::I64 {
                        self.ins(format!("cvt.u32.u64 {amt}, {y}"));
                        self.ins(format!("and.b32 {amt}, {amt}, {}", width - 1));
                    } else {
                        self.ins(format!("and.b32 {amt}, {y}, {}", width - 1));
                    }
                    let name = match op {
                        BinOp::Shl => format!("shl.{bt}"),
                        BinOp::ShrU => format!("shr.u{width}"),
                        _ => format!("shr.s{width}"),
                    };
                    self.ins(format!("{name} {d}, {x}, {amt}"));
                }
                BinOp::Div | BinOp::Copysign => unreachable!("verified"),
            }
        }
    }

    /// NaN-propagating float min/max with −0 < +0.
    fn fminmax(&mut self, max: bool, t: Ty, d: &str, x: &str, y: &str) {
        let n = t.name();
        let bt = bits(t);
        let ic = if t == Ty::F64 { Class::B64 } else { Class::B32 };
        let (plt, peq, pnan) = (
            self.tmp(Class::Pred),
            self.tmp(Class::Pred),
            self.tmp(Class::Pred),
        );
        let (sel, both) = (self.tmp_ty(t), self.tmp_ty(t));
        let (ix, iy) = (self.tmp(ic), self.tmp(ic));
        let cmp = if max { "gt" } else { "lt" };
        let comb = if max { "and" } else { "or" };
        let nan = if t == Ty::F64 {
            "0d7FF8000000000000"
        } else {
            "0f7FC00000"
        };
        self.ins(format!("setp.{cmp}.{n} {plt}, {x}, {y}"));
        self.ins(format!("selp.{n} {sel}, {x}, {y}, {plt}"));
        self.ins(format!("mov.{bt} {ix}, {x}"));
        self.ins(format!("mov.{bt} {iy}, {y}"));
        self.ins(format!("{comb}.{bt} {ix}, {ix}, {iy}"));
        self.ins(format!("mov.{bt} {both}, {ix}"));
        self.ins(format!("setp.eq.{n} {peq}, {x}, {y}"));
        self.ins(format!("selp.{n} {sel}, {both}, {sel}, {peq}"));
        self.ins(format!("setp.nan.{n} {pnan}, {x}, {y}"));
        self.ins(format!("selp.{n} {d}, {nan}, {sel}, {pnan}"));
    }
}

/// Compiles `f` to a PTX module (the whole text); see the module
/// documentation for the calling convention. Fails when `f` does not verify
/// or `opts` do not fit it.
pub fn emit(f: &Function, opts: &PtxOptions) -> Result<String, BackendError> {
    verify(f)?;
    let ptys = f.param_types();
    if let Some(j) = opts.thread_param {
        if ptys.get(j) != Some(&Ty::I64) {
            return Err(unsupported(format!(
                "thread parameter {j} of `{}` must be an i64 scalar parameter",
                f.name
            )));
        }
    }
    if !(1..=1024).contains(&opts.max_threads_per_block) {
        return Err(unsupported(format!(
            "{} threads per block (1 to 1024)",
            opts.max_threads_per_block
        )));
    }
    let mut e = Emitter {
        f,
        opts,
        code: String::new(),
        next_reg: f.values.len() as u32,
        used: [0; 5],
        next_label: 0,
        buf_base: Vec::new(),
        buf_len: Vec::new(),
        loc_base: Vec::new(),
        status_addr: String::new(),
        oob_used: false,
    };

    // ---- prologue: thread index, exit of surplus threads ----
    e.comment("thread index t = ctaid.x * ntid.x + tid.x");
    let (tid, ntid, cta, t32, n) = (
        e.tmp(Class::B32),
        e.tmp(Class::B32),
        e.tmp(Class::B32),
        e.tmp(Class::B32),
        e.tmp(Class::B32),
    );
    e.ins(format!("mov.u32 {tid}, %tid.x"));
    e.ins(format!("mov.u32 {ntid}, %ntid.x"));
    e.ins(format!("mov.u32 {cta}, %ctaid.x"));
    e.ins(format!("mad.lo.u32 {t32}, {cta}, {ntid}, {tid}"));
    e.ins(format!("ld.param.u32 {n}, [n_threads]"));
    let pexit = e.tmp(Class::Pred);
    e.ins(format!("setp.ge.u32 {pexit}, {t32}, {n}"));
    e.ins(format!("@{pexit} bra $Lexit"));
    let t = e.tmp(Class::B64);
    e.ins(format!("cvt.u64.u32 {t}, {t32}"));
    let st = e.tmp(Class::B64);
    e.ins(format!("ld.param.u64 {st}, [status_ptr]"));
    e.ins(format!("cvta.to.global.u64 {st}, {st}"));
    e.ins(format!("mad.lo.s64 {st}, {t}, 4, {st}"));
    e.status_addr = st;

    // ---- scalar parameters ----
    let mut params = Vec::new();
    for (j, (&v, ty)) in f.body.params.iter().zip(&ptys).enumerate() {
        let r = e.reg(v);
        let pty = match ty {
            Ty::I64 => "u64",
            Ty::I32 => "u32",
            Ty::F64 => "f64",
            Ty::F32 => "f32",
            Ty::Bool => "u8",
        };
        params.push(format!(".param .{pty} arg{j}"));
        if *ty == Ty::Bool {
            let tmp = e.tmp(Class::B32);
            e.ins(format!("ld.param.u8 {tmp}, [arg{j}]"));
            e.ins(format!("setp.ne.u32 {r}, {tmp}, 0"));
        } else {
            e.ins(format!("ld.param.{pty} {r}, [arg{j}]"));
        }
        if opts.thread_param == Some(j) {
            e.ins(format!("add.s64 {r}, {r}, {t}"));
        }
    }

    // ---- buffers: this thread's slice ----
    for (i, b) in f.buffers.iter().enumerate() {
        let (_, size) = mem_ty(b.ty);
        for s in ["ptr", "len", "stride"] {
            params.push(format!(".param .u64 buf{i}_{s}"));
        }
        e.comment(format!("buffer {i} `{}`: {}", b.name, b.ty));
        let (base, len, stride) = (e.tmp(Class::B64), e.tmp(Class::B64), e.tmp(Class::B64));
        e.ins(format!("ld.param.u64 {base}, [buf{i}_ptr]"));
        e.ins(format!("ld.param.u64 {len}, [buf{i}_len]"));
        e.ins(format!("ld.param.u64 {stride}, [buf{i}_stride]"));
        e.ins(format!("cvta.to.global.u64 {base}, {base}"));
        e.ins(format!("mul.lo.s64 {stride}, {stride}, {t}"));
        e.ins(format!("mad.lo.s64 {base}, {stride}, {size}, {base}"));
        e.buf_base.push(base);
        e.buf_len.push(len);
    }
    params.push(".param .u64 rets_ptr".into());
    params.push(".param .u64 status_ptr".into());
    params.push(".param .u32 n_threads".into());

    // ---- locals: zeroed ----
    let mut local_decls = String::new();
    if !f.locals.is_empty() {
        let zero = e.tmp(Class::B64);
        e.ins(format!("mov.b64 {zero}, 0"));
        for (k, l) in f.locals.iter().enumerate() {
            let (_, size) = mem_ty(l.ty);
            let words = (l.len as u64 * size).div_ceil(8).max(1);
            let _ = writeln!(
                local_decls,
                "\t.local .align 8 .b8 loc{k}[{}]; // `{}`: {} x {}",
                words * 8,
                l.name,
                l.len,
                l.ty
            );
            let base = e.tmp(Class::B64);
            e.ins(format!("mov.u64 {base}, loc{k}"));
            if words <= 8 {
                for w in 0..words {
                    e.ins(format!("st.local.u64 [{base}+{}], {zero}", w * 8));
                }
            } else {
                let (a, end, p) = (e.tmp(Class::B64), e.tmp(Class::B64), e.tmp(Class::Pred));
                let l = e.label();
                e.ins(format!("mov.u64 {a}, {base}"));
                e.ins(format!("add.s64 {end}, {base}, {}", words * 8));
                e.place(&l);
                e.ins(format!("st.local.u64 [{a}], {zero}"));
                e.ins(format!("add.s64 {a}, {a}, 8"));
                e.ins(format!("setp.lt.u64 {p}, {a}, {end}"));
                e.ins(format!("@{p} bra {l}"));
            }
            e.loc_base.push(base);
        }
    }

    // ---- body ----
    e.comment("body");
    e.region(&f.body)?;

    // ---- returns, status ----
    let rets = &f.body.yields;
    if !rets.is_empty() {
        e.comment("returns");
        let ra = e.tmp(Class::B64);
        e.ins(format!("ld.param.u64 {ra}, [rets_ptr]"));
        e.ins(format!("cvta.to.global.u64 {ra}, {ra}"));
        e.ins(format!("mad.lo.s64 {ra}, {t}, {}, {ra}", rets.len() * 8));
        for (k, &v) in rets.iter().enumerate() {
            let r = e.reg(v);
            let off = k * 8;
            match f.ty(v) {
                Ty::F64 => e.ins(format!("st.global.f64 [{ra}+{off}], {r}")),
                Ty::I64 => e.ins(format!("st.global.u64 [{ra}+{off}], {r}")),
                Ty::F32 => {
                    let (b, w) = (e.tmp(Class::B32), e.tmp(Class::B64));
                    e.ins(format!("mov.b32 {b}, {r}"));
                    e.ins(format!("cvt.u64.u32 {w}, {b}"));
                    e.ins(format!("st.global.u64 [{ra}+{off}], {w}"));
                }
                Ty::I32 => {
                    let w = e.tmp(Class::B64);
                    e.ins(format!("cvt.u64.u32 {w}, {r}"));
                    e.ins(format!("st.global.u64 [{ra}+{off}], {w}"));
                }
                Ty::Bool => {
                    let w = e.tmp(Class::B64);
                    e.ins(format!("selp.u64 {w}, 1, 0, {r}"));
                    e.ins(format!("st.global.u64 [{ra}+{off}], {w}"));
                }
            }
        }
    }
    let status = e.status_addr.clone();
    let code = e.tmp(Class::B32);
    e.ins(format!("mov.b32 {code}, {STATUS_OK}"));
    e.ins(format!("st.global.u32 [{status}], {code}"));
    e.place("$Lexit");
    e.ins("ret");
    if e.oob_used {
        e.place("$Loob");
        let code = e.tmp(Class::B32);
        e.ins(format!("mov.b32 {code}, {STATUS_OUT_OF_BOUNDS}"));
        e.ins(format!("st.global.u32 [{status}], {code}"));
        e.ins("ret");
    }

    // ---- assemble the module ----
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by crux-compiler (PTX backend) from kernel `{}`.",
        f.name
    );
    out.push_str(".version 7.8\n.target sm_80\n.address_size 64\n\n");
    let _ = writeln!(out, ".visible .entry {}(", f.name);
    let n_params = params.len();
    for (k, p) in params.iter().enumerate() {
        let sep = if k + 1 < n_params { "," } else { "" };
        let _ = writeln!(out, "\t{p}{sep}");
    }
    // `.minnctapersm 1`: without it ptxas caps a `.maxntid 128` kernel at
    // 64 registers and spills (sampler chunk kernels need ~70-120).
    let _ = writeln!(
        out,
        ")\n.maxntid {}, 1, 1\n.minnctapersm 1\n{{",
        opts.max_threads_per_block
    );
    out.push_str(&local_decls);
    for c in Class::ALL {
        let u = e.used[Emitter::class_index(c)];
        if u > 0 {
            let _ = writeln!(out, "\t.reg {} %{}<{u}>;", c.decl(), c.prefix());
        }
    }
    out.push('\n');
    out.push_str(&e.code);
    out.push_str("}\n");
    Ok(out)
}
