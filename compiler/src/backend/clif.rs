//! The Cranelift backend: kernel IR → CLIF → machine code, either JIT-ed
//! into this process ([`compile`], giving a [`ClifKernel`]) or written as an
//! object file for ahead-of-time builds ([`compile_object`]).
//!
//! # Calling convention
//!
//! Every kernel compiles to one function with the platform's C calling
//! convention and the signature of [`EntryFn`]:
//!
//! ```text
//! extern "C" fn(args: *const u64, bufs: *const *mut u8, lens: *const u64,
//!               rets: *mut u64, err: *mut u64) -> i32
//! ```
//!
//! * `args[i]`: scalar parameter `i` as its constant encoding
//!   ([`Scalar::to_bits`]: f32 and i32 in the low 32 bits, bool as 0 or 1).
//! * `bufs[j]`, `lens[j]`: data pointer and element count of buffer `j`
//!   (elements in their native layout: `f64`, `f32`, `i64`, `i32`).
//! * `rets[k]`: return value `k`, written in the same encoding as `args`.
//! * The result is a status: [`STATUS_OK`] (0), or [`STATUS_BUFFER_OOB`] /
//!   [`STATUS_LOCAL_OOB`] when a load or store was out of range, in which
//!   case `err[0]` is the buffer or local id and `err[1]` the index (as
//!   i64 bits). On a nonzero status the buffers hold every store made
//!   before the faulting access, exactly like the interpreter.
//!
//! [`ClifKernel::call`](Executable::call) checks the arguments and buffers
//! against the kernel exactly like the interpreter (same
//! `KernelError::Arguments` messages), builds these arrays and turns a
//! nonzero status into the interpreter's `KernelError::OutOfBounds`.
//!
//! Bool values are `i8` 0/1 inside the function. Local arrays are stack
//! slots (at most [`MAX_LOCAL_BYTES`] in all, with inline stack probes),
//! zeroed on entry. There is no fuel: a runaway loop runs forever.
//! Bounds checks are unsigned compares `index ≥ len` branching to a cold
//! exit block; [`ClifOptions::without_bounds_checks`] (unsafe) drops them.
//!
//! # Semantics
//!
//! Every instruction maps to Cranelift operations whose documented
//! semantics are the IR's (see [`crux_ir::kernel::interp`]): `fmin`/`fmax`
//! (NaN-propagating, −0 < +0, the WebAssembly rules), shifts masked to the
//! width, `fcvt_to_sint_sat` (NaN → 0), ordered `fcmp` conditions and
//! `FloatCC::NotEqual` (unordered or not equal) for `Ne`. Cranelift does
//! not contract or reassociate float arithmetic: a `Mul` and an `Add` are
//! `fmul` and `fadd`, rounded separately.
//!
//! The IR's explicit fused multiply-add ([`InstKind::Fma`]) is Cranelift's
//! `fma`, the only one emitted. On x86-64 Cranelift lowers it to
//! `vfmadd213sd`/`ss` (or `vfmadd132*` with a memory operand, `vfnmadd*`
//! when a factor is negated) when the ISA has the `has_avx` and `has_fma`
//! flags, which `cranelift-native` sets from the host CPU; otherwise to a
//! call of the C library's `fma` / `fmaf`, which are correctly rounded.
//! Either way the result is IEEE `fusedMultiplyAdd`, bit-identical to the
//! interpreter's `mul_add`. The JIT resolves those two symbols to this
//! crate's own `mul_add` wrappers (so nothing depends on the process's
//! dynamic symbols); an object file from [`compile_object`] on a host
//! without FMA leaves them undefined, to be linked from libm (`-lm`).
//! [`ClifOptions::without_fma_instructions`] forces the call, to test it.
//!
//! A matrix product ([`InstKind::Gemm`]) checks its three extents (a
//! nonzero status as for a load) and calls the [`gemm`] routine: rustc's
//! AVX-512 / AVX2 / portable code, bit-identical to the interpreter by
//! keeping each entry's chain of fused multiply-adds (see that module).
//! The JIT binds the call to the best routine for the CPU
//! ([`ClifOptions::gemm_isa`] picks another); an object file imports it as
//! [`gemm::SYMBOL`], which this crate exports.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use cranelift_codegen::ir::{
    self,
    condcodes::{FloatCC, IntCC},
    immediates::{Ieee32, Ieee64},
    types, AbiParam, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind,
    UserFuncName,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{print_errors::pretty_error, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module, ModuleError};
use cranelift_object::{ObjectBuilder, ObjectModule};

use crux_ir::kernel::{
    verify, BinOp, Buffer, CmpOp, Conv, Function, Inst, InstKind, KernelError, MatRef, Region,
    Scalar, Ty, UnOp, Value,
};

use super::{gemm, BackendError, Executable};

const BACKEND: &str = "cranelift";

/// The compiled function's type (see the module documentation).
pub type EntryFn = unsafe extern "C" fn(
    args: *const u64,
    bufs: *const *mut u8,
    lens: *const u64,
    rets: *mut u64,
    err: *mut u64,
) -> i32;

/// Status: the function ran to completion.
pub const STATUS_OK: i32 = 0;
/// Status: a buffer access was out of range (`err = [buffer id, index]`).
pub const STATUS_BUFFER_OOB: i32 = 1;
/// Status: a local-array access was out of range (`err = [local id, index]`).
pub const STATUS_LOCAL_OOB: i32 = 2;

/// The module's function index of the imported [`gemm::SYMBOL`] (declared
/// first, before the kernel).
const GEMM_FUNC_INDEX: u32 = 0;

/// Largest total size of a function's local arrays, in bytes (they live on
/// the stack of the calling thread).
pub const MAX_LOCAL_BYTES: u64 = 1 << 20;

/// Options of the Cranelift backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClifOptions {
    bounds_checks: bool,
    fast_compile: bool,
    fma_instructions: bool,
    gemm: Option<gemm::Isa>,
}

impl Default for ClifOptions {
    fn default() -> Self {
        ClifOptions {
            bounds_checks: true,
            fast_compile: false,
            fma_instructions: true,
            gemm: None,
        }
    }
}

impl ClifOptions {
    /// Whether every load and store is bounds-checked (the default).
    pub fn bounds_checks(&self) -> bool {
        self.bounds_checks
    }

    /// Options that compile loads and stores without bounds checks.
    ///
    /// # Safety
    ///
    /// Every [`Executable::call`] of a kernel compiled with these options
    /// must only make in-range accesses (as proved by a run of the same
    /// call on the interpreter, or by construction); an out-of-range index
    /// reads or writes arbitrary memory.
    pub unsafe fn without_bounds_checks(self) -> Self {
        ClifOptions {
            bounds_checks: false,
            ..self
        }
    }

    /// Options that trade code speed for compile speed: Cranelift's
    /// single-pass register allocator (about 3x faster to compile a sampler
    /// kernel, about 3x slower to run it). The result is bit-identical:
    /// only register assignment changes. A baseline tier for short runs.
    pub fn fast_compile(self) -> Self {
        ClifOptions {
            fast_compile: true,
            ..self
        }
    }

    /// Whether [`ClifOptions::fast_compile`] is set.
    pub fn is_fast_compile(&self) -> bool {
        self.fast_compile
    }

    /// Options that compile the IR's `fma` as a call to a correctly
    /// rounded `fma` / `fmaf` routine even where the host CPU has FMA
    /// instructions (what an x86-64 host without them always gets; no
    /// effect on other targets). The result is bit-identical, only slower:
    /// this exists to test that path.
    pub fn without_fma_instructions(self) -> Self {
        ClifOptions {
            fma_instructions: false,
            ..self
        }
    }

    /// Whether the host's FMA instructions may be used (the default; see
    /// [`ClifOptions::without_fma_instructions`]).
    pub fn fma_instructions(&self) -> bool {
        self.fma_instructions
    }

    /// Options whose matrix products call `isa`'s routine instead of the
    /// best one for this CPU ([`gemm::Isa::best`]); compiling fails if the
    /// CPU lacks it. The result is bit-identical: this exists to test each
    /// routine through compiled code.
    pub fn gemm_isa(self, isa: gemm::Isa) -> Self {
        ClifOptions {
            gemm: Some(isa),
            ..self
        }
    }
}

/// Whether `r` (or a region inside it) has a matrix product, so the
/// module must import the [`gemm::SYMBOL`] routine.
fn has_gemm(r: &Region) -> bool {
    r.insts.iter().any(|i| match &i.kind {
        InstKind::Gemm { .. } => true,
        InstKind::For { body, .. } => has_gemm(body),
        InstKind::While { cond, body, .. } => has_gemm(cond) || has_gemm(body),
        InstKind::If { then, else_, .. } => has_gemm(then) || has_gemm(else_),
        _ => false,
    })
}

/// The signature of [`gemm::GemmFn`]: twelve 64-bit arguments, no result.
fn gemm_signature(call_conv: cranelift_codegen::isa::CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    sig.params
        .extend(std::iter::repeat_n(AbiParam::new(types::I64), 12));
    sig
}

fn codegen(msg: impl Into<String>) -> BackendError {
    BackendError::Codegen {
        backend: BACKEND,
        msg: msg.into(),
    }
}

fn module_error(e: ModuleError, func: &ir::Function) -> BackendError {
    match e {
        ModuleError::Compilation(e) => codegen(pretty_error(func, e)),
        other => codegen(other.to_string()),
    }
}

/// Runs `f`, turning a panic inside Cranelift into a codegen error.
fn guarded<T>(f: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(codegen(format!("panic in code generation: {msg}")))
        }
    }
}

/// The host ISA with crux's settings (`opt_level=speed`, verifier on in
/// debug builds, inline stack probes; single-pass register allocation when
/// `fast`; the host's FMA instructions unless `fma` is false).
fn host_isa(pic: bool, fast: bool, fma: bool) -> Result<OwnedTargetIsa, BackendError> {
    let mut fb = settings::builder();
    let verifier = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    let pic = if pic { "true" } else { "false" };
    let regalloc = if fast { "single_pass" } else { "backtracking" };
    for (k, v) in [
        ("opt_level", "speed"),
        ("regalloc_algorithm", regalloc),
        ("enable_verifier", verifier),
        ("is_pic", pic),
        ("use_colocated_libcalls", "false"),
        ("enable_probestack", "true"),
        ("probestack_strategy", "inline"),
    ] {
        fb.set(k, v)
            .map_err(|e| codegen(format!("setting {k}={v}: {e}")))?;
    }
    let mut ib = cranelift_native::builder().map_err(|m| codegen(format!("host ISA: {m}")))?;
    // x86-64 is the target where FMA is optional (aarch64 always has it).
    if !fma && cfg!(target_arch = "x86_64") {
        ib.set("has_fma", "false")
            .map_err(|e| codegen(format!("setting has_fma=false: {e}")))?;
    }
    ib.finish(settings::Flags::new(fb))
        .map_err(|e| codegen(format!("host ISA: {e}")))
}

fn cl_ty(t: Ty) -> ir::Type {
    match t {
        Ty::F64 => types::F64,
        Ty::F32 => types::F32,
        Ty::I64 => types::I64,
        Ty::I32 => types::I32,
        Ty::Bool => types::I8,
    }
}

/// log2 of the size in bytes of a buffer or local element.
fn elem_shift(t: Ty) -> i64 {
    match t {
        Ty::F64 | Ty::I64 => 3,
        Ty::F32 | Ty::I32 => 2,
        Ty::Bool => 0,
    }
}

fn entry_signature(isa: &dyn TargetIsa) -> ir::Signature {
    let ptr = isa.pointer_type();
    let mut sig = ir::Signature::new(isa.default_call_conv());
    for _ in 0..5 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// Translation state of one function.
struct Translator<'a, 'b> {
    f: &'a Function,
    b: FunctionBuilder<'b>,
    vals: Vec<Option<ir::Value>>,
    ptr: ir::Type,
    buf_base: Vec<ir::Value>,
    buf_len: Vec<ir::Value>,
    locals: Vec<ir::StackSlot>,
    err_ptr: ir::Value,
    oob_buf: Option<ir::Block>,
    oob_loc: Option<ir::Block>,
    checks: bool,
    /// The imported matrix-product routine, once a `gemm` needs it.
    gemm: Option<ir::FuncRef>,
    call_conv: cranelift_codegen::isa::CallConv,
}

fn args(vs: &[ir::Value]) -> Vec<BlockArg> {
    vs.iter().map(|v| BlockArg::from(*v)).collect()
}

impl Translator<'_, '_> {
    fn val(&self, v: Value) -> ir::Value {
        self.vals[v.index()].expect("verified kernels define values before their uses")
    }

    fn def(&mut self, v: Value, x: ir::Value) {
        self.vals[v.index()] = Some(x);
    }

    /// The block that records an out-of-range access (block parameters:
    /// id and index); its body is emitted by [`Self::finish_oob_blocks`].
    fn oob_block(&mut self, local: bool) -> ir::Block {
        let slot = if local {
            &mut self.oob_loc
        } else {
            &mut self.oob_buf
        };
        if let Some(b) = *slot {
            return b;
        }
        let blk = self.b.create_block();
        *slot = Some(blk);
        self.b.set_cold_block(blk);
        self.b.append_block_param(blk, types::I64);
        self.b.append_block_param(blk, types::I64);
        blk
    }

    /// Fills the out-of-range blocks: store id and index, return the status.
    fn finish_oob_blocks(&mut self) {
        for (blk, status) in [
            (self.oob_buf, STATUS_BUFFER_OOB),
            (self.oob_loc, STATUS_LOCAL_OOB),
        ] {
            let Some(blk) = blk else { continue };
            self.b.switch_to_block(blk);
            let ps = self.b.block_params(blk).to_vec();
            let err = self.err_ptr;
            self.b.ins().store(MemFlagsData::trusted(), ps[0], err, 0);
            self.b.ins().store(MemFlagsData::trusted(), ps[1], err, 8);
            let s = self.b.ins().iconst(types::I32, status as i64);
            self.b.ins().return_(&[s]);
        }
    }

    /// Branches out if `index` (i64) is not in `0..len`; continues in a new
    /// block otherwise.
    fn check(&mut self, index: ir::Value, len: ir::Value, id: u32, local: bool) {
        if !self.checks {
            return;
        }
        let target = self.oob_block(local);
        // Unsigned comparison: a negative index is a huge unsigned one.
        let bad = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
        let idv = self.b.ins().iconst(types::I64, id as i64);
        let cont = self.b.create_block();
        self.b
            .ins()
            .brif(bad, target, &args(&[idv, index]), cont, &[]);
        self.b.switch_to_block(cont);
    }

    fn buffer_addr(&mut self, buf: usize, index: ir::Value) -> ir::Value {
        let len = self.buf_len[buf];
        self.check(index, len, buf as u32, false);
        let shift = elem_shift(self.f.buffers[buf].ty);
        let off = self.b.ins().ishl_imm_u(index, shift);
        self.b.ins().iadd(self.buf_base[buf], off)
    }

    /// A matrix product: the three extents checked (`a`, `b`, `out`, as the
    /// interpreter), then one call of the [`gemm`] routine, which the
    /// module imports as function 0 (see [`define`]).
    fn gemm(&mut self, (m, n, k): (u64, u64, u64), a: &MatRef, b: &MatRef, out: &MatRef) {
        let mut call_args = vec![];
        for d in [m, n, k] {
            call_args.push(self.b.ins().iconst(types::I64, d as i64));
        }
        let mut ptrs = vec![];
        for (v, rows, cols) in [(a, m, k), (b, k, n), (out, m, n)] {
            let j = v.buf.index();
            let last = v
                .last(rows, cols)
                .expect("verified: the extent fits an i64");
            let lastv = self.b.ins().iconst(types::I64, last as i64);
            self.check(lastv, self.buf_len[j], j as u32, false);
            let base = self.buf_base[j];
            ptrs.push(self.b.ins().iadd_imm_s(base, (v.off as i64) << 3));
        }
        for (v, p) in [a, b, out].into_iter().zip(ptrs) {
            call_args.push(p);
            call_args.push(self.b.ins().iconst(types::I64, v.rs as i64));
            call_args.push(self.b.ins().iconst(types::I64, v.cs as i64));
        }
        let callee = match self.gemm {
            Some(c) => c,
            None => {
                let sig = self.b.import_signature(gemm_signature(self.call_conv));
                let name = self
                    .b
                    .func
                    .declare_imported_user_function(ir::UserExternalName {
                        namespace: 0,
                        index: GEMM_FUNC_INDEX,
                    });
                let c = self.b.import_function(ir::ExtFuncData {
                    name: ir::ExternalName::user(name),
                    signature: sig,
                    colocated: false,
                    patchable: false,
                });
                self.gemm = Some(c);
                c
            }
        };
        self.b.ins().call(callee, &call_args);
    }

    fn local_addr(&mut self, local: usize, index: ir::Value) -> ir::Value {
        let d = &self.f.locals[local];
        let (len, shift) = (d.len as i64, elem_shift(d.ty));
        let lenv = self.b.ins().iconst(types::I64, len);
        self.check(index, lenv, local as u32, true);
        let off = self.b.ins().ishl_imm_u(index, shift);
        let base = self.b.ins().stack_addr(self.ptr, self.locals[local], 0);
        self.b.ins().iadd(base, off)
    }

    fn region(&mut self, r: &Region, params: &[ir::Value]) -> Vec<ir::Value> {
        for (p, x) in r.params.iter().zip(params) {
            self.def(*p, *x);
        }
        for inst in &r.insts {
            self.inst(inst);
        }
        r.yields.iter().map(|y| self.val(*y)).collect()
    }

    fn block_with_params(&mut self, tys: &[Ty]) -> ir::Block {
        let blk = self.b.create_block();
        for t in tys {
            self.b.append_block_param(blk, cl_ty(*t));
        }
        blk
    }

    fn unary(&mut self, op: UnOp, a: ir::Value, t: Ty) -> ir::Value {
        let ins = self.b.ins();
        if t.is_float() {
            match op {
                UnOp::Neg => ins.fneg(a),
                UnOp::Abs => ins.fabs(a),
                UnOp::Sqrt => ins.sqrt(a),
                UnOp::Floor => ins.floor(a),
                UnOp::Ceil => ins.ceil(a),
                UnOp::Trunc => ins.trunc(a),
                UnOp::Nearest => ins.nearest(a),
                UnOp::Not => unreachable!("verified: not on a float"),
            }
        } else if t == Ty::Bool {
            ins.bxor_imm_u(a, 1)
        } else {
            match op {
                UnOp::Neg => ins.ineg(a),
                UnOp::Abs => ins.iabs(a),
                UnOp::Not => ins.bnot(a),
                _ => unreachable!("verified: float op on an integer"),
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: ir::Value, c: ir::Value, t: Ty) -> ir::Value {
        let ins = self.b.ins();
        if t.is_float() {
            match op {
                BinOp::Add => ins.fadd(a, c),
                BinOp::Sub => ins.fsub(a, c),
                BinOp::Mul => ins.fmul(a, c),
                BinOp::Div => ins.fdiv(a, c),
                BinOp::Min => ins.fmin(a, c),
                BinOp::Max => ins.fmax(a, c),
                BinOp::Copysign => ins.fcopysign(a, c),
                _ => unreachable!("verified: integer op on a float"),
            }
        } else {
            match op {
                BinOp::Add => ins.iadd(a, c),
                BinOp::Sub => ins.isub(a, c),
                BinOp::Mul => ins.imul(a, c),
                BinOp::Min => ins.smin(a, c),
                BinOp::Max => ins.smax(a, c),
                BinOp::And => ins.band(a, c),
                BinOp::Or => ins.bor(a, c),
                BinOp::Xor => ins.bxor(a, c),
                // Cranelift masks the shift amount to the width: `b mod bits`.
                BinOp::Shl => ins.ishl(a, c),
                BinOp::ShrU => ins.ushr(a, c),
                BinOp::ShrS => ins.sshr(a, c),
                BinOp::Div | BinOp::Copysign => unreachable!("verified: float op on an integer"),
            }
        }
    }

    fn cmp(&mut self, op: CmpOp, a: ir::Value, c: ir::Value, t: Ty) -> ir::Value {
        let ins = self.b.ins();
        if t.is_float() {
            let cc = match op {
                CmpOp::Eq => FloatCC::Equal,
                CmpOp::Ne => FloatCC::NotEqual,
                CmpOp::Lt => FloatCC::LessThan,
                CmpOp::Le => FloatCC::LessThanOrEqual,
                CmpOp::Gt => FloatCC::GreaterThan,
                CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            };
            ins.fcmp(cc, a, c)
        } else {
            let cc = match op {
                CmpOp::Eq => IntCC::Equal,
                CmpOp::Ne => IntCC::NotEqual,
                CmpOp::Lt => IntCC::SignedLessThan,
                CmpOp::Le => IntCC::SignedLessThanOrEqual,
                CmpOp::Gt => IntCC::SignedGreaterThan,
                CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
            };
            ins.icmp(cc, a, c)
        }
    }

    fn conv(&mut self, c: Conv, a: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        match c {
            Conv::F64ToF32 => ins.fdemote(types::F32, a),
            Conv::F32ToF64 => ins.fpromote(types::F64, a),
            Conv::F64ToI64 => ins.fcvt_to_sint_sat(types::I64, a),
            Conv::I64ToF64 => ins.fcvt_from_sint(types::F64, a),
            Conv::I64ToI32 => ins.ireduce(types::I32, a),
            Conv::I32ToI64 => ins.sextend(types::I64, a),
            Conv::U32ToI64 | Conv::BoolToI64 => ins.uextend(types::I64, a),
            Conv::F64Bits => ins.bitcast(types::I64, MemFlagsData::new(), a),
            Conv::BitsF64 => ins.bitcast(types::F64, MemFlagsData::new(), a),
        }
    }

    fn inst(&mut self, inst: &Inst) {
        let f = self.f;
        let one = match &inst.kind {
            InstKind::Const { ty, bits } => {
                let ins = self.b.ins();
                Some(match ty {
                    Ty::F64 => ins.f64const(Ieee64::with_bits(*bits)),
                    Ty::F32 => ins.f32const(Ieee32::with_bits(*bits as u32)),
                    Ty::I64 => ins.iconst(types::I64, *bits as i64),
                    Ty::I32 => ins.iconst(types::I32, (*bits as u32) as i64),
                    Ty::Bool => ins.iconst(types::I8, (*bits != 0) as i64),
                })
            }
            InstKind::Unary(op, a) => Some(self.unary(*op, self.val(*a), f.ty(*a))),
            InstKind::Binary(op, a, c) => {
                Some(self.binary(*op, self.val(*a), self.val(*c), f.ty(*a)))
            }
            InstKind::Cmp(op, a, c) => Some(self.cmp(*op, self.val(*a), self.val(*c), f.ty(*a))),
            InstKind::Select(c, a, e) => {
                let (c, a, e) = (self.val(*c), self.val(*a), self.val(*e));
                Some(self.b.ins().select(c, a, e))
            }
            InstKind::Fma(a, b, c) => {
                let (a, b, c) = (self.val(*a), self.val(*b), self.val(*c));
                Some(self.b.ins().fma(a, b, c))
            }
            InstKind::Conv(c, a) => Some(self.conv(*c, self.val(*a))),
            InstKind::Gemm { m, n, k, a, b, out } => {
                self.gemm((*m, *n, *k), a, b, out);
                None
            }
            InstKind::Load { buf, index } => {
                let addr = self.buffer_addr(buf.index(), self.val(*index));
                let t = cl_ty(f.buffers[buf.index()].ty);
                // A read-only buffer is never stored to (the verifier
                // rejects such stores), so its loads are pure: Cranelift may
                // merge them, and, without bounds checks (which they would
                // otherwise have to stay behind), hoist them out of loops.
                let mut flags = MemFlagsData::trusted();
                if f.buffers[buf.index()].access == crux_ir::kernel::Access::Read {
                    flags = flags.with_readonly();
                    if !self.checks {
                        flags = flags.with_can_move();
                    }
                }
                Some(self.b.ins().load(t, flags, addr, 0))
            }
            InstKind::Store { buf, index, value } => {
                let addr = self.buffer_addr(buf.index(), self.val(*index));
                let v = self.val(*value);
                self.b.ins().store(MemFlagsData::trusted(), v, addr, 0);
                None
            }
            InstKind::LocalLoad { local, index } => {
                let addr = self.local_addr(local.index(), self.val(*index));
                let t = cl_ty(f.locals[local.index()].ty);
                Some(self.b.ins().load(t, MemFlagsData::trusted(), addr, 0))
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                let addr = self.local_addr(local.index(), self.val(*index));
                let v = self.val(*value);
                self.b.ins().store(MemFlagsData::trusted(), v, addr, 0);
                None
            }
            InstKind::For { lo, hi, init, body } => {
                let tys: Vec<Ty> = init.iter().map(|v| f.ty(*v)).collect();
                let (lo, hi) = (self.val(*lo), self.val(*hi));
                let mut start = vec![lo];
                start.extend(init.iter().map(|v| self.val(*v)));
                let mut htys = vec![Ty::I64];
                htys.extend(&tys);
                // Rotated: test once before the loop, then at the end of
                // the body, so an iteration costs one branch.
                let body_blk = self.block_with_params(&htys);
                let exit = self.block_with_params(&tys);
                let go = self.b.ins().icmp(IntCC::SignedLessThan, lo, hi);
                self.b
                    .ins()
                    .brif(go, body_blk, &args(&start), exit, &args(&start[1..]));
                self.b.switch_to_block(body_blk);
                let ps = self.b.block_params(body_blk).to_vec();
                let ys = self.region(body, &ps);
                // i < hi ≤ i64::MAX here, so i + 1 does not overflow.
                let next = self.b.ins().iadd_imm_s(ps[0], 1);
                let more = self.b.ins().icmp(IntCC::SignedLessThan, next, hi);
                let mut back = vec![next];
                back.extend(&ys);
                self.b
                    .ins()
                    .brif(more, body_blk, &args(&back), exit, &args(&ys));
                self.b.switch_to_block(exit);
                self.results(inst, exit);
                None
            }
            InstKind::While { init, cond, body } => {
                let tys: Vec<Ty> = init.iter().map(|v| f.ty(*v)).collect();
                let start: Vec<ir::Value> = init.iter().map(|v| self.val(*v)).collect();
                let cond_blk = self.block_with_params(&tys);
                let body_blk = self.b.create_block();
                let exit = self.block_with_params(&tys);
                self.b.ins().jump(cond_blk, &args(&start));
                self.b.switch_to_block(cond_blk);
                let ps = self.b.block_params(cond_blk).to_vec();
                let go = self.region(cond, &ps)[0];
                self.b.ins().brif(go, body_blk, &[], exit, &args(&ps));
                self.b.switch_to_block(body_blk);
                let ys = self.region(body, &ps);
                self.b.ins().jump(cond_blk, &args(&ys));
                self.b.switch_to_block(exit);
                self.results(inst, exit);
                None
            }
            InstKind::If { cond, then, else_ } => {
                let tys: Vec<Ty> = inst.results.iter().map(|v| f.ty(*v)).collect();
                let c = self.val(*cond);
                let then_blk = self.b.create_block();
                let else_blk = self.b.create_block();
                let merge = self.block_with_params(&tys);
                self.b.ins().brif(c, then_blk, &[], else_blk, &[]);
                self.b.switch_to_block(then_blk);
                let ys = self.region(then, &[]);
                self.b.ins().jump(merge, &args(&ys));
                self.b.switch_to_block(else_blk);
                let ys = self.region(else_, &[]);
                self.b.ins().jump(merge, &args(&ys));
                self.b.switch_to_block(merge);
                self.results(inst, merge);
                None
            }
        };
        if let Some(x) = one {
            self.def(inst.results[0], x);
        }
    }

    fn results(&mut self, inst: &Inst, blk: ir::Block) {
        let ps = self.b.block_params(blk).to_vec();
        for (r, x) in inst.results.iter().zip(ps) {
            self.def(*r, x);
        }
    }

    /// Zeroes a stack slot of `size` bytes (a multiple of 8).
    fn zero_slot(&mut self, slot: ir::StackSlot, size: u32) {
        let zero = self.b.ins().iconst(types::I64, 0);
        if size <= 128 {
            for off in (0..size).step_by(8) {
                self.b.ins().stack_store(self.ptr, zero, slot, off as i32);
            }
            return;
        }
        let start = self.b.ins().stack_addr(self.ptr, slot, 0);
        let end = self.b.ins().iadd_imm_s(start, size as i64);
        let lp = self.b.create_block();
        let p = self.b.append_block_param(lp, self.ptr);
        let after = self.b.create_block();
        self.b.ins().jump(lp, &args(&[start]));
        self.b.switch_to_block(lp);
        self.b.ins().store(MemFlagsData::trusted(), zero, p, 0);
        let next = self.b.ins().iadd_imm_s(p, 8);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, next, end);
        self.b.ins().brif(more, lp, &args(&[next]), after, &[]);
        self.b.switch_to_block(after);
    }
}

/// Translates `f` (verified) into a CLIF function for `isa`.
fn translate(
    f: &Function,
    isa: &dyn TargetIsa,
    checks: bool,
) -> Result<ir::Function, BackendError> {
    let ptr = isa.pointer_type();
    if ptr != types::I64 {
        return Err(BackendError::Unsupported {
            backend: BACKEND,
            what: format!("a {}-bit target", ptr.bits()),
        });
    }
    let mut total: u64 = 0;
    let mut sizes = Vec::with_capacity(f.locals.len());
    for l in &f.locals {
        let bytes = (l.len as u64)
            .checked_mul(1 << elem_shift(l.ty))
            .map(|b| b.div_ceil(8).max(1) * 8)
            .unwrap_or(u64::MAX);
        total = total.saturating_add(bytes);
        sizes.push(bytes);
    }
    if total > MAX_LOCAL_BYTES {
        return Err(BackendError::Unsupported {
            backend: BACKEND,
            what: format!("{total} bytes of local arrays (at most {MAX_LOCAL_BYTES})"),
        });
    }
    let mut func = ir::Function::with_name_signature(
        UserFuncName::testcase(f.name.as_str()),
        entry_signature(isa),
    );
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let ps = b.block_params(entry).to_vec();
    let (argp, bufp, lenp, retp, errp) = (ps[0], ps[1], ps[2], ps[3], ps[4]);
    // The argument arrays are not written while the function runs.
    let ro = MemFlagsData::trusted().with_readonly();
    let mut buf_base = Vec::new();
    let mut buf_len = Vec::new();
    for j in 0..f.buffers.len() {
        buf_base.push(b.ins().load(ptr, ro, bufp, 8 * j as i32));
        buf_len.push(b.ins().load(types::I64, ro, lenp, 8 * j as i32));
    }
    let mut params = Vec::new();
    for (i, t) in f.param_types().into_iter().enumerate() {
        let raw = b.ins().load(types::I64, ro, argp, 8 * i as i32);
        let ins = b.ins();
        params.push(match t {
            Ty::F64 => ins.bitcast(types::F64, MemFlagsData::new(), raw),
            Ty::F32 => {
                let w = ins.ireduce(types::I32, raw);
                b.ins().bitcast(types::F32, MemFlagsData::new(), w)
            }
            Ty::I64 => raw,
            Ty::I32 => ins.ireduce(types::I32, raw),
            Ty::Bool => ins.icmp_imm_s(IntCC::NotEqual, raw, 0),
        });
    }
    let locals = sizes
        .iter()
        .map(|s| {
            b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                *s as u32,
                3,
            ))
        })
        .collect();
    let mut t = Translator {
        f,
        b,
        vals: vec![None; f.values.len()],
        ptr,
        buf_base,
        buf_len,
        locals,
        err_ptr: errp,
        oob_buf: None,
        oob_loc: None,
        checks,
        gemm: None,
        call_conv: isa.default_call_conv(),
    };
    for (slot, size) in t.locals.clone().into_iter().zip(sizes) {
        t.zero_slot(slot, size as u32);
    }
    let rets = t.region(&f.body, &params);
    for (k, (r, ty)) in rets.into_iter().zip(f.return_types()).enumerate() {
        let ins = t.b.ins();
        let bits = match ty {
            Ty::F64 => ins.bitcast(types::I64, MemFlagsData::new(), r),
            Ty::F32 => {
                let w = ins.bitcast(types::I32, MemFlagsData::new(), r);
                t.b.ins().uextend(types::I64, w)
            }
            Ty::I64 => r,
            Ty::I32 | Ty::Bool => ins.uextend(types::I64, r),
        };
        t.b.ins()
            .store(MemFlagsData::trusted(), bits, retp, 8 * k as i32);
    }
    let ok = t.b.ins().iconst(types::I32, STATUS_OK as i64);
    t.b.ins().return_(&[ok]);
    t.finish_oob_blocks();
    t.b.seal_all_blocks();
    t.b.finalize(isa.frontend_config());
    Ok(func)
}

fn verified_clif(
    f: &Function,
    isa: &dyn TargetIsa,
    checks: bool,
) -> Result<ir::Function, BackendError> {
    verify(f)?;
    guarded(|| translate(f, isa, checks))
}

/// The CLIF of `f` (before Cranelift's optimisations), for dumps.
pub fn clif_text(f: &Function) -> Result<String, BackendError> {
    let isa = host_isa(false, false, true)?;
    let func = verified_clif(f, &*isa, true)?;
    Ok(func.display().to_string())
}

/// Declares `func` (the translation of `f`) as the exported function
/// `f.name` of `module` and defines it.
fn define(
    module: &mut impl Module,
    f: &Function,
    func: ir::Function,
) -> Result<cranelift_module::FuncId, BackendError> {
    if has_gemm(&f.body) {
        let sig = gemm_signature(module.isa().default_call_conv());
        let gemm = module
            .declare_function(gemm::SYMBOL, Linkage::Import, &sig)
            .map_err(|e| codegen(e.to_string()))?;
        if gemm.as_u32() != GEMM_FUNC_INDEX {
            return Err(codegen("the matrix-product routine is not function 0"));
        }
    }
    let id = module
        .declare_function(&f.name, Linkage::Export, &func.signature)
        .map_err(|e| codegen(e.to_string()))?;
    let mut ctx = Context::for_function(func);
    module
        .define_function(id, &mut ctx)
        .map_err(|e| module_error(e, &ctx.func))?;
    Ok(id)
}

/// Compiles `f` into an ELF (or the host's format) object file that
/// exports one function named `f.name` with the calling convention of
/// [`EntryFn`] (bounds checks on).
pub fn compile_object(f: &Function) -> Result<Vec<u8>, BackendError> {
    object_for(f, host_isa(true, false, true)?)
}

/// [`compile_object`] for a given (position-independent) ISA.
fn object_for(f: &Function, isa: OwnedTargetIsa) -> Result<Vec<u8>, BackendError> {
    let func = verified_clif(f, &*isa, true)?;
    guarded(|| {
        let builder = ObjectBuilder::new(isa, f.name.as_str(), default_libcall_names())
            .map_err(|e| codegen(e.to_string()))?;
        let mut module = ObjectModule::new(builder);
        define(&mut module, f, func)?;
        module
            .finish()
            .emit()
            .map_err(|e| codegen(format!("writing the object file: {e}")))
    })
}

/// `a·b + c` rounded once: Cranelift's libcall for an f64 `fma` on a host
/// without FMA instructions (Rust's `mul_add` is IEEE `fusedMultiplyAdd`).
extern "C" fn fma_f64(a: f64, b: f64, c: f64) -> f64 {
    a.mul_add(b, c)
}

/// The f32 counterpart of [`fma_f64`] (`fmaf`).
extern "C" fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// Owns a JIT module and frees its code on drop.
struct OwnedModule(Option<JITModule>);

impl Drop for OwnedModule {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the only pointer into this module's code is the
            // `ClifKernel::entry` of the kernel being dropped (or none, when
            // compilation failed), which is never called again.
            unsafe { m.free_memory() };
        }
    }
}

/// A kernel compiled to machine code in this process.
///
/// It is `Send + Sync`: the code is immutable and keeps no state between
/// calls, so chains may call one kernel from several threads at once.
pub struct ClifKernel {
    entry: EntryFn,
    function: Function,
    params: Vec<Ty>,
    returns: Vec<Ty>,
    /// What keeps the code alive: the JIT module, or the loaded library
    /// of [`ClifKernel::from_loaded`]. Only touched on drop; the mutex
    /// makes the kernel `Sync`.
    _owner: Mutex<Owner>,
}

/// What owns a kernel's code.
enum Owner {
    /// JIT-compiled in this process.
    Jit(#[allow(dead_code)] Box<OwnedModule>),
    /// Loaded from a shared library (kept open while the kernel lives).
    Loaded(#[allow(dead_code)] Box<dyn std::any::Any + Send>),
}

impl std::fmt::Debug for ClifKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClifKernel")
            .field("function", &self.function.name)
            .finish_non_exhaustive()
    }
}

/// Compiles `f` with Cranelift (`opt_level=speed`) into machine code in
/// this process.
pub fn compile(f: &Function, opts: &ClifOptions) -> Result<ClifKernel, BackendError> {
    let isa = host_isa(false, opts.fast_compile, opts.fma_instructions)?;
    let func = verified_clif(f, &*isa, opts.bounds_checks)?;
    let gemm_isa = match (opts.gemm, opts.fma_instructions) {
        (Some(i), _) => i,
        (None, true) => gemm::Isa::best(),
        (None, false) => gemm::Isa::Portable,
    };
    jit(f, isa, func, gemm_isa)
}

/// JIT-compiles `func`, the translation of `f` (so its signature is
/// [`entry_signature`]), into a kernel.
fn jit(
    f: &Function,
    isa: OwnedTargetIsa,
    func: ir::Function,
    gemm_isa: gemm::Isa,
) -> Result<ClifKernel, BackendError> {
    let gemm_routine = gemm_isa
        .routine()
        .ok_or_else(|| BackendError::Unsupported {
            backend: BACKEND,
            what: format!("the {gemm_isa:?} matrix-product routine on this CPU"),
        })?;
    if func.signature != entry_signature(&*isa) {
        return Err(codegen(
            "the CLIF function does not have the entry signature",
        ));
    }
    guarded(|| {
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        // Cranelift's `fma` without FMA instructions calls these (the names
        // of `default_libcall_names`); resolve them here, not by `dlsym`.
        jb.symbol("fma", fma_f64 as *const u8);
        jb.symbol("fmaf", fma_f32 as *const u8);
        jb.symbol(gemm::SYMBOL, gemm_routine as *const u8);
        let mut owned = OwnedModule(Some(JITModule::new(jb)));
        let module = owned.0.as_mut().expect("the module was put in just above");
        let id = define(module, f, func)?;
        module
            .finalize_definitions()
            .map_err(|e| codegen(e.to_string()))?;
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is the finalized function just compiled from a CLIF
        // function whose signature is `entry_signature` (checked above),
        // i.e. `EntryFn` in the host's default (C) calling convention.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        Ok(ClifKernel {
            entry,
            function: f.clone(),
            params: f.param_types(),
            returns: f.return_types(),
            _owner: Mutex::new(Owner::Jit(Box::new(owned))),
        })
    })
}

impl ClifKernel {
    /// A kernel whose code was compiled ahead of time ([`compile_object`]
    /// of `f`, linked into a shared library) and loaded by the caller:
    /// `entry` is the library's symbol `f.name`, `library` keeps it
    /// loaded. Calls check arguments and buffers against `f` as a JIT
    /// kernel's do.
    ///
    /// # Safety
    ///
    /// `entry` must be the code [`compile_object`] produced for exactly
    /// `f` (same crux version), loaded and resolved, and stay valid while
    /// `library` lives.
    pub unsafe fn from_loaded(
        entry: *const u8,
        f: &Function,
        library: Box<dyn std::any::Any + Send>,
    ) -> ClifKernel {
        // SAFETY: the caller guarantees `entry` is `compile_object`'s code
        // for `f`, whose signature is `EntryFn`.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(entry) };
        ClifKernel {
            entry,
            function: f.clone(),
            params: f.param_types(),
            returns: f.return_types(),
            _owner: Mutex::new(Owner::Loaded(library)),
        }
    }

    /// The kernel function this was compiled from.
    pub fn function(&self) -> &Function {
        &self.function
    }
}

/// A small array on the stack, or on the heap when it is long: the call
/// path allocates nothing for kernels with up to 16 arguments, buffers and
/// returns (beyond the returned `Vec`).
enum Scratch<T> {
    Inline([T; 16], usize),
    Heap(Vec<T>),
}

impl<T: Copy> Scratch<T> {
    fn new(n: usize, init: T) -> Self {
        if n <= 16 {
            Scratch::Inline([init; 16], n)
        } else {
            Scratch::Heap(vec![init; n])
        }
    }
    fn slice(&mut self) -> &mut [T] {
        match self {
            Scratch::Inline(a, n) => &mut a[..*n],
            Scratch::Heap(v) => v,
        }
    }
}

impl Executable for ClifKernel {
    fn call(&self, args: &[Scalar], bufs: &mut [Buffer]) -> Result<Vec<Scalar>, BackendError> {
        let f = &self.function;
        let bad = |msg: String| KernelError::Arguments {
            function: f.name.clone(),
            msg,
        };
        let ptys = &self.params;
        if args.len() != ptys.len() || args.iter().zip(ptys).any(|(a, t)| a.ty() != *t) {
            return Err(bad(format!(
                "expected scalar arguments of types {ptys:?}, got {:?}",
                args.iter().map(|a| a.ty()).collect::<Vec<_>>()
            ))
            .into());
        }
        if bufs.len() != f.buffers.len() || bufs.iter().zip(&f.buffers).any(|(b, d)| b.ty() != d.ty)
        {
            return Err(bad(format!(
                "expected buffers of types {:?}, got {:?}",
                f.buffers.iter().map(|b| b.ty).collect::<Vec<_>>(),
                bufs.iter().map(|b| b.ty()).collect::<Vec<_>>()
            ))
            .into());
        }
        let mut argbits = Scratch::new(args.len(), 0u64);
        for (d, a) in argbits.slice().iter_mut().zip(args) {
            *d = a.to_bits();
        }
        let mut lens = Scratch::new(bufs.len(), 0u64);
        let mut ptrs = Scratch::new(bufs.len(), std::ptr::null_mut::<u8>());
        for ((l, p), b) in lens.slice().iter_mut().zip(ptrs.slice()).zip(bufs) {
            *l = b.len() as u64;
            *p = match b {
                Buffer::F64(v) => v.as_mut_ptr() as *mut u8,
                Buffer::F32(v) => v.as_mut_ptr() as *mut u8,
                Buffer::I64(v) => v.as_mut_ptr() as *mut u8,
                Buffer::I32(v) => v.as_mut_ptr() as *mut u8,
            };
        }
        let rtys = &self.returns;
        let mut rets = Scratch::new(rtys.len(), 0u64);
        let mut err = [0u64; 2];
        // SAFETY: the arrays have the lengths the compiled code assumes
        // (checked above against the same function), every buffer pointer
        // is valid for `lens` elements of the declared type and exclusively
        // borrowed for the call, and every access is bounds-checked (or the
        // options' safety contract holds).
        let status = unsafe {
            (self.entry)(
                argbits.slice().as_ptr(),
                ptrs.slice().as_ptr(),
                lens.slice().as_ptr(),
                rets.slice().as_mut_ptr(),
                err.as_mut_ptr(),
            )
        };
        let lens = lens.slice();
        let index = err[1] as i64;
        let oob = |name: &str, len: usize| -> BackendError {
            KernelError::OutOfBounds {
                function: f.name.clone(),
                name: name.to_string(),
                index,
                len,
            }
            .into()
        };
        match status {
            STATUS_OK => Ok(rets
                .slice()
                .iter()
                .zip(rtys)
                .map(|(b, t)| Scalar::from_bits(*t, *b))
                .collect()),
            STATUS_BUFFER_OOB => {
                let j = err[0] as usize;
                match f.buffers.get(j) {
                    Some(d) => Err(oob(&d.name, lens[j] as usize)),
                    None => Err(codegen(format!("bad out-of-bounds report {err:?}"))),
                }
            }
            STATUS_LOCAL_OOB => match f.locals.get(err[0] as usize) {
                Some(d) => Err(oob(&d.name, d.len)),
                None => Err(codegen(format!("bad out-of-bounds report {err:?}"))),
            },
            s => Err(codegen(format!("kernel returned unknown status {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crux_ir::kernel::{Access, Builder};

    fn sumsq() -> Function {
        let mut b = Builder::new("sumsq");
        let n = b.param("n", Ty::I64);
        let x = b.buffer("x", Ty::F64, Access::Read);
        let zero = b.i64(0);
        let init = b.f64(0.0);
        let acc = b.for_(zero, n, &[init], |b, i, c| {
            let v = b.load(x, i);
            let sq = b.mul(v, v);
            vec![b.add(c[0], sq)]
        });
        b.finish(&[acc[0]]).unwrap()
    }

    #[test]
    fn runs_a_loop() {
        let k = compile(&sumsq(), &ClifOptions::default()).unwrap();
        let mut bufs = [Buffer::F64(vec![1.0, 2.0, 3.0])];
        let r = k.call(&[Scalar::I64(3)], &mut bufs).unwrap();
        assert_eq!(r, vec![Scalar::F64(14.0)]);
        let e = k.call(&[Scalar::I64(4)], &mut bufs).unwrap_err();
        assert!(matches!(
            e,
            BackendError::Kernel(KernelError::OutOfBounds {
                index: 3,
                len: 3,
                ..
            })
        ));
    }

    #[test]
    fn unchecked_kernel_runs_in_range() {
        // SAFETY: the call below only makes in-range accesses.
        let opts = unsafe { ClifOptions::default().without_bounds_checks() };
        assert!(!opts.bounds_checks());
        let k = compile(&sumsq(), &opts).unwrap();
        let mut bufs = [Buffer::F64(vec![1.0, 2.0, 3.0])];
        let r = k.call(&[Scalar::I64(2)], &mut bufs).unwrap();
        assert_eq!(r, vec![Scalar::F64(5.0)]);
    }

    #[test]
    fn clif_text_names_the_operations() {
        let text = clif_text(&sumsq()).unwrap();
        assert!(text.contains("function"), "{text}");
        assert!(text.contains("fmul"), "{text}");
        assert!(text.contains("fadd"), "{text}");
        assert!(!text.contains("fma"), "{text}");
    }

    /// `fma(x, y, z)` for f64 and f32 parameters, and `x·y + z` unfused.
    fn fused_and_separate() -> Function {
        let mut b = Builder::new("fused");
        let mut outs = Vec::new();
        for ty in [Ty::F64, Ty::F32] {
            let x = b.param("x", ty);
            let y = b.param("y", ty);
            let z = b.param("z", ty);
            outs.push(b.fma(x, y, z));
            let p = b.mul(x, y);
            outs.push(b.add(p, z));
        }
        b.finish(&outs).unwrap()
    }

    /// The machine code of `f` for `isa`, as Cranelift's disassembly.
    fn vcode(f: &Function, isa: &dyn TargetIsa) -> String {
        let func = verified_clif(f, isa, true).unwrap();
        let mut ctx = Context::for_function(func);
        ctx.set_disasm(true);
        let code = ctx
            .compile(
                isa,
                &mut cranelift_codegen::control::ControlPlane::default(),
            )
            .unwrap();
        code.vcode.clone().unwrap()
    }

    fn host_has_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fma_is_one_instruction_or_a_call() {
        let f = fused_and_separate();
        let native = vcode(&f, &*host_isa(false, false, true).unwrap());
        let call = vcode(&f, &*host_isa(false, false, false).unwrap());
        // Never fused implicitly: the separate multiply-add stays `mul` + `add`.
        for code in [&native, &call] {
            assert!(code.contains("mulsd") && code.contains("addsd"), "{code}");
            assert!(code.contains("mulss") && code.contains("addss"), "{code}");
        }
        if host_has_fma() {
            assert_eq!(native.matches("vfmadd").count(), 2, "{native}");
        }
        assert!(!call.contains("vfmadd"), "{call}");
        assert!(call.contains("call"), "{call}");
    }

    #[test]
    fn fma_rounds_once_with_and_without_fma_instructions() {
        let f = fused_and_separate();
        let (e, e32) = ((-27f64).exp2(), (-13f32).exp2());
        let args = [
            Scalar::F64(1.0 + e),
            Scalar::F64(1.0 - e),
            Scalar::F64(-1.0),
            Scalar::F32(1.0 + e32),
            Scalar::F32(1.0 - e32),
            Scalar::F32(-1.0),
        ];
        let want = vec![
            Scalar::F64(-(-54f64).exp2()),
            Scalar::F64(0.0),
            Scalar::F32(-(-26f32).exp2()),
            Scalar::F32(0.0),
        ];
        for opts in [
            ClifOptions::default(),
            ClifOptions::default().without_fma_instructions(),
            ClifOptions::default()
                .fast_compile()
                .without_fma_instructions(),
        ] {
            let k = compile(&f, &opts).unwrap();
            assert_eq!(k.call(&args, &mut []).unwrap(), want, "{opts:?}");
        }
        assert!(!ClifOptions::default()
            .without_fma_instructions()
            .fma_instructions());
    }

    /// Without FMA instructions an object file calls the C library's
    /// `fma` / `fmaf` (undefined symbols, resolved from libm at link time).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn object_without_fma_instructions_calls_libm() {
        let f = fused_and_separate();
        let obj = object_for(&f, host_isa(true, false, false).unwrap()).unwrap();
        assert!(obj.windows(4).any(|w| w == b"fma\0"));
        assert!(obj.windows(5).any(|w| w == b"fmaf\0"));
        let native = compile_object(&f).unwrap();
        if host_has_fma() {
            assert!(!native.windows(4).any(|w| w == b"fma\0"));
        }
    }

    #[test]
    fn object_file_is_elf_on_linux() {
        let obj = compile_object(&sumsq()).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(&obj[..4], b"\x7fELF");
        }
        // The symbol name is in the object.
        assert!(obj.windows(5).any(|w| w == b"sumsq"));
    }

    #[test]
    fn invalid_kernels_are_errors() {
        let mut f = sumsq();
        f.name = "1bad".into();
        assert!(matches!(
            compile(&f, &ClifOptions::default()),
            Err(BackendError::Kernel(KernelError::Invalid { .. }))
        ));
        assert!(clif_text(&f).is_err());
        assert!(compile_object(&f).is_err());
    }

    /// Cranelift's own errors (here its verifier: a function returning an
    /// i64 where its signature says i32) come back as codegen errors.
    #[test]
    #[cfg(debug_assertions)]
    fn cranelift_errors_are_codegen_errors() {
        let isa = host_isa(false, false, true).unwrap();
        let mut func = ir::Function::with_name_signature(
            UserFuncName::testcase("bad"),
            entry_signature(&*isa),
        );
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let wrong = b.ins().iconst(types::I64, 0);
        b.ins().return_(&[wrong]);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
        match jit(&sumsq(), isa, func, gemm::Isa::Portable) {
            Err(BackendError::Codegen { msg, .. }) => {
                assert!(msg.contains("verifier error"), "{msg}")
            }
            other => panic!("expected a codegen error, got {other:?}"),
        }
    }

    #[test]
    fn panics_in_code_generation_are_errors() {
        let r: Result<(), _> = guarded(|| panic!("boom"));
        assert!(matches!(r, Err(BackendError::Codegen { msg, .. }) if msg.contains("boom")));
    }

    #[test]
    fn huge_locals_are_unsupported() {
        let mut b = Builder::new("big");
        let l = b.local("l", Ty::F64, 1 << 30);
        let i = b.i64(0);
        let v = b.local_load(l, i);
        let f = b.finish(&[v]).unwrap();
        assert!(matches!(
            compile(&f, &ClifOptions::default()),
            Err(BackendError::Unsupported { .. })
        ));
    }

    #[test]
    fn kernels_are_send_and_sync_and_run_on_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ClifKernel>();
        let k = compile(&sumsq(), &ClifOptions::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let k = &k;
                s.spawn(move || {
                    let mut bufs = [Buffer::F64(vec![t as f64; 10])];
                    let r = k.call(&[Scalar::I64(10)], &mut bufs).unwrap();
                    assert_eq!(r, vec![Scalar::F64(10.0 * (t * t) as f64)]);
                });
            }
        });
    }

    #[test]
    fn many_kernels_compile_and_drop() {
        for _ in 0..20 {
            let k = compile(&sumsq(), &ClifOptions::default()).unwrap();
            let mut bufs = [Buffer::F64(vec![2.0])];
            assert_eq!(
                k.call(&[Scalar::I64(1)], &mut bufs).unwrap(),
                vec![Scalar::F64(4.0)]
            );
        }
    }
}
