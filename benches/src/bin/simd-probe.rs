//! What Cranelift 0.135's x86-64 backend does with SIMD, and what a
//! 100×100 f64 matrix-vector product (the gauss100 kernel,
//! `out[i] = Σ_l A[i,l]·x[l]`) costs in each way crux could lower it.
//!
//! `taskset -c 0 cargo run --release -p crux-benches --bin simd-probe [-- --disasm]`
//!
//! # Part 1: probes
//!
//! Tiny CLIF functions (`load`; `load`+`store`; `fadd`; `fmul`; `fma` on
//! two or three loaded vectors, the result stored) are compiled for the host
//! ISA built exactly as crux builds it (`cranelift-native`, `opt_level=speed`),
//! with the verifier on, for the 128-bit types `F64X2`/`F32X4`, the 256-bit
//! `F64X4`/`F32X8` and the 512-bit `F64X8`/`F32X16`. Each prints `ok` with
//! the code size, or the exact error (or panic) Cranelift gives. The
//! `F64X2` `fma` is disassembled twice — Cranelift's own listing
//! (`Context::set_disasm`) and, if `objdump` is on the `PATH`, the emitted
//! bytes through `objdump -D -b binary -mi386:x86-64` — with the host flags
//! and with `has_fma=false`.
//!
//! # Part 2: matrix-vector throughput
//!
//! Every variant computes all 100 entries of `A·x` per call; variants marked
//! "= (b)" accumulate each entry in the same order as (b) — start at `+0.0`,
//! then `acc = fma(A[i,l], x[l], acc)` for `l = 0..100` — so they are
//! asserted bit-identical to a plain Rust `f64::mul_add` reference; (a) is
//! asserted bit-identical to the unfused Rust reference `acc + A[i,l]·x[l]`.
//! They differ only in which entries share a register and which instruction
//! does the arithmetic:
//!
//! * (a) Cranelift, scalar, one row at a time, `fmul` + `fadd`;
//! * (b) Cranelift, scalar, one row at a time, `fma` (one FMA chain: the
//!   shape of crux's current matmul lowering);
//! * (b5)/(b10) Cranelift, scalar `fma`, 5 / 10 rows interleaved
//!   (independent chains that hide the FMA latency);
//! * (c)/(c10) Cranelift, `F64X2` `fma` across output entries: `A`
//!   column-major, 5 / 10 `F64X2` accumulators hold 10 / 20 consecutive
//!   entries, each step adds `A[i..i+R, l] · splat(x[l])` (at 10,
//!   Cranelift's register allocator spills half the accumulators);
//! * (d) a rustc-compiled `extern "C"` AVX2 micro-kernel (`_mm256_fmadd_pd`,
//!   four entries per register, the same sweep as (c)) called *from
//!   Cranelift* through an imported symbol — and, as (d0), called directly
//!   from Rust, which isolates the cost of the Cranelift call path;
//! * (e)/(e0) the same with AVX-512 (`_mm512_fmadd_pd`, eight entries per
//!   register) when the host has `avx512f`; (e104) is (e) with the columns
//!   padded to 104 values, so that every zmm load is one aligned cache line
//!   (with 100, every other column starts mid-line and its loads split).
//!
//! Every stored matrix starts on a 64-byte boundary.
//! Each rate is the median of 5 runs of at least 0.2 s; GFMA/s counts the
//! 10 000 multiply-adds of one product.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types, AbiParam, BlockArg, InstBuilder, MemFlagsData, UserFuncName,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};

/// The matrix is `N × N`, the vector `N` long.
const N: usize = 100;
/// Multiply-adds in one matrix-vector product.
const FMAS_PER_MATVEC: f64 = (N * N) as f64;

/// A compiled matrix-vector product: `out = A·x`, `A` in the variant's
/// layout (`N·N` values), `x` and `out` `N` long.
type MatVec = unsafe extern "C" fn(a: *const f64, x: *const f64, out: *mut f64);

// ---------------------------------------------------------------------------
// The host ISA
// ---------------------------------------------------------------------------

/// The host ISA with crux's shared settings (see `host_isa` in
/// `compiler/src/backend/clif.rs`), the verifier as asked, and the given
/// ISA-flag overrides on top of what `cranelift-native` detected.
fn host_isa(verifier: bool, overrides: &[(&str, &str)]) -> Result<OwnedTargetIsa, String> {
    let mut fb = settings::builder();
    let verifier = if verifier { "true" } else { "false" };
    for (k, v) in [
        ("opt_level", "speed"),
        ("regalloc_algorithm", "backtracking"),
        ("enable_verifier", verifier),
        ("is_pic", "false"),
        ("use_colocated_libcalls", "false"),
        ("enable_probestack", "true"),
        ("probestack_strategy", "inline"),
    ] {
        fb.set(k, v).map_err(|e| format!("setting {k}={v}: {e}"))?;
    }
    let mut ib = cranelift_native::builder().map_err(|m| format!("host ISA: {m}"))?;
    for (k, v) in overrides {
        ib.set(k, v).map_err(|e| format!("setting {k}={v}: {e}"))?;
    }
    ib.finish(settings::Flags::new(fb))
        .map_err(|e| format!("host ISA: {e}"))
}

/// The ISA flags that matter here, as `name=value` pairs.
fn simd_flags(isa: &OwnedTargetIsa) -> String {
    isa.isa_flags()
        .iter()
        .filter(|v| {
            v.name.starts_with("has_avx") || v.name == "has_fma" || v.name.starts_with("has_sse4")
        })
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message of a caught panic.
fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

// ---------------------------------------------------------------------------
// Part 1: what the backend accepts
// ---------------------------------------------------------------------------

/// The operation a probe function performs on loaded vectors.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `load` only: the value is unused, but the load stays because an
    /// untrusted load may trap.
    Load,
    /// `load` then `store`.
    Copy,
    /// `store(fadd(load p, load q))`.
    Fadd,
    /// `store(fmul(load p, load q))`.
    Fmul,
    /// `store(fma(load p, load q, load r))`.
    Fma,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Copy => "load+store",
            Op::Fadd => "fadd",
            Op::Fmul => "fmul",
            Op::Fma => "fma",
        }
    }
}

/// `fn(p, q, r, out: i64)` doing `op` on vectors of type `ty` at `p`, `q`,
/// `r` and storing the result at `out`.
fn probe_function(isa: &OwnedTargetIsa, ty: ir::Type, op: Op) -> ir::Function {
    let mut sig = ir::Signature::new(isa.default_call_conv());
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    let mut func = ir::Function::with_name_signature(UserFuncName::user(0, 0), sig);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let [p, q, r, out] = <[ir::Value; 4]>::try_from(b.block_params(entry).to_vec())
        .expect("the signature has four parameters");
    // Not `trusted`: an ordinary (possibly trapping, unaligned) access, so a
    // lone load is not dead code.
    let mf = MemFlagsData::new();
    let x = b.ins().load(ty, mf, p, 0);
    let result = match op {
        Op::Load => None,
        Op::Copy => Some(x),
        Op::Fadd | Op::Fmul => {
            let y = b.ins().load(ty, mf, q, 0);
            Some(match op {
                Op::Fadd => b.ins().fadd(x, y),
                _ => b.ins().fmul(x, y),
            })
        }
        Op::Fma => {
            let y = b.ins().load(ty, mf, q, 0);
            let z = b.ins().load(ty, mf, r, 0);
            Some(b.ins().fma(x, y, z))
        }
    };
    if let Some(v) = result {
        b.ins().store(mf, v, out, 0);
    }
    b.ins().return_(&[]);
    b.finalize(isa.frontend_config());
    func
}

/// What compiling a function gave: the machine code and Cranelift's
/// listing, or the error / panic message.
struct Compiled {
    code: Vec<u8>,
    listing: String,
}

/// Compiles `func` for `isa` (with a listing), catching errors and panics.
fn try_compile(isa: &OwnedTargetIsa, func: ir::Function) -> Result<Compiled, String> {
    let mut ctx = Context::for_function(func);
    ctx.set_disasm(true);
    let r = catch_unwind(AssertUnwindSafe(|| {
        ctx.compile(&**isa, &mut ControlPlane::default())
            .map(|c| Compiled {
                code: c.code_buffer().to_vec(),
                listing: c.vcode.clone().unwrap_or_default(),
            })
            .map_err(|e| format!("error: {}", e.inner))
    }));
    match r {
        Ok(r) => r,
        Err(p) => Err(format!("panic: {}", panic_message(&*p))),
    }
}

/// `code` disassembled by `objdump`, if it is on the `PATH`.
fn objdump(code: &[u8], tag: &str) -> Option<String> {
    let path = std::env::temp_dir().join(format!("simd-probe-{}-{tag}.bin", std::process::id()));
    std::fs::write(&path, code).ok()?;
    let out = std::process::Command::new("objdump")
        .args(["-D", "-b", "binary", "-mi386:x86-64", "-M", "intel"])
        .arg(&path)
        .output();
    // The file is scratch: failing to remove it loses nothing.
    let _ = std::fs::remove_file(&path);
    let out = out.ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Keep the instruction lines only (objdump's header is the file name).
    Some(
        text.lines()
            .filter(|l| l.contains(":\t"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn part1() {
    println!("## Part 1: what Cranelift 0.135's x86-64 backend accepts\n");
    let isa = match host_isa(true, &[]) {
        Ok(isa) => isa,
        Err(e) => {
            println!("cannot build the host ISA: {e}");
            return;
        }
    };
    println!("host ISA: {} — {}\n", isa.triple(), simd_flags(&isa));
    println!("| type | bits | load | load+store | fadd | fmul | fma |");
    println!("|---|---|---|---|---|---|---|");
    // Cranelift prints a panic's message through the hook too; keep the
    // table readable and report the message in it instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut errors = Vec::new();
    for ty in [
        types::F64X2,
        types::F32X4,
        types::F64X4,
        types::F32X8,
        types::F64X8,
        types::F32X16,
    ] {
        let mut row = format!("| `{ty}` | {} |", ty.bits());
        for op in [Op::Load, Op::Copy, Op::Fadd, Op::Fmul, Op::Fma] {
            match try_compile(&isa, probe_function(&isa, ty, op)) {
                Ok(c) => {
                    let wide = if c.listing.contains("ymm") {
                        " (ymm)"
                    } else if c.listing.contains("zmm") {
                        " (zmm)"
                    } else {
                        ""
                    };
                    row += &format!(" ok, {} B{wide} |", c.code.len());
                }
                Err(e) => {
                    row += " rejected¹ |";
                    errors.push(format!("`{ty}` {}: {e}", op.name()));
                }
            }
        }
        println!("{row}");
    }
    std::panic::set_hook(hook);
    if !errors.is_empty() {
        println!("\n¹ exact messages:\n");
        for e in &errors {
            println!("* {e}");
        }
    }

    for (label, overrides) in [
        ("host flags", &[][..]),
        ("has_fma=false", &[("has_fma", "false")][..]),
    ] {
        println!("\n### `F64X2` `fma` ({label})\n");
        let isa = match host_isa(true, overrides) {
            Ok(isa) => isa,
            Err(e) => {
                println!("cannot build the ISA: {e}");
                continue;
            }
        };
        match try_compile(&isa, probe_function(&isa, types::F64X2, Op::Fma)) {
            Ok(c) => {
                println!("Cranelift listing:\n\n```\n{}```\n", c.listing);
                match objdump(&c.code, "f64x2-fma") {
                    Some(d) => println!("objdump:\n\n```\n{d}\n```"),
                    None => println!("(objdump not available)"),
                }
            }
            Err(e) => println!("{e}"),
        }
    }
    println!();
}

// ---------------------------------------------------------------------------
// Part 2: matrix-vector kernels built with Cranelift
// ---------------------------------------------------------------------------

/// How a Cranelift matrix-vector kernel walks `A`.
#[derive(Clone, Copy)]
enum Layout {
    /// `A[i,l]` at `i·N + l`: a block of rows walks along its rows.
    RowMajor,
    /// `A[i,l]` at `l·N + i`: a block of rows walks down the columns.
    ColMajor,
}

/// Shape of a Cranelift matrix-vector kernel: blocks of `accs·lanes`
/// consecutive output entries, each block one sweep over `l = 0..N` with
/// `accs` accumulators of type `ty` (`lanes` entries each).
#[derive(Clone, Copy)]
struct Shape {
    ty: ir::Type,
    accs: usize,
    layout: Layout,
    fused: bool,
}

/// Declares and defines the Cranelift kernel `name` of the given shape in
/// `module`; returns its id and Cranelift's listing of it.
///
/// ```text
/// for i0 in (0..N).step_by(R) {              // R = accs · lanes
///     acc[k] = 0.0 for k < accs
///     for l in 0..N {                        // pa, px walk A and x
///         xs = x[l] (splat to every lane)
///         acc[k] = fma(A[i0 + k·lanes .. +lanes, l], xs, acc[k])
///     }
///     out[i0 + k·lanes .. +lanes] = acc[k]
/// }
/// ```
fn define_cranelift_kernel(
    module: &mut JITModule,
    name: &str,
    s: Shape,
) -> Result<(cranelift_module::FuncId, String), String> {
    let lanes = s.ty.lane_count() as usize;
    let rows = s.accs * lanes;
    assert!(
        N.is_multiple_of(rows),
        "{name}: a block of {rows} rows must divide {N}"
    );
    let rows = rows as i64;
    let n = N as i64;
    // Byte offsets: block start in A, step of the l loop in A, accumulator
    // k's offset from the current A pointer.
    let (block_step_a, l_step_a, acc_step_a) = match s.layout {
        Layout::RowMajor => {
            assert_eq!(lanes, 1, "{name}: row-major kernels are scalar");
            (rows * n * 8, 8, n * 8)
        }
        Layout::ColMajor => (rows * 8, n * 8, lanes as i64 * 8),
    };

    let sig = kernel_signature(module);
    let id = module
        .declare_function(name, Linkage::Local, &sig)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.set_disasm(true);
    {
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        // In bounds by construction, not necessarily aligned.
        let mf = MemFlagsData::new().with_notrap();
        let (entry, blk, inner, blk_end, exit) = (
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
        );
        b.append_block_params_for_function_params(entry);
        let [a, x, out] = <[ir::Value; 3]>::try_from(b.block_params(entry).to_vec())
            .expect("the signature has three parameters");
        // blk(pa_block, pout): the block's first A element and out entry.
        b.append_block_param(blk, types::I64);
        b.append_block_param(blk, types::I64);
        // inner(pa, px, acc...); blk_end(acc...).
        b.append_block_param(inner, types::I64);
        b.append_block_param(inner, types::I64);
        for _ in 0..s.accs {
            b.append_block_param(inner, s.ty);
            b.append_block_param(blk_end, s.ty);
        }

        b.switch_to_block(entry);
        let a_end = b
            .ins()
            .iadd_imm_s(a, (N / rows as usize) as i64 * block_step_a);
        b.ins().jump(blk, &[BlockArg::from(a), BlockArg::from(out)]);

        b.switch_to_block(blk);
        let (pa_block, pout) = (b.block_params(blk)[0], b.block_params(blk)[1]);
        let zero = b.ins().f64const(0.0);
        let zero = if lanes == 1 {
            zero
        } else {
            b.ins().splat(s.ty, zero)
        };
        let mut args = vec![BlockArg::from(pa_block), BlockArg::from(x)];
        args.extend((0..s.accs).map(|_| BlockArg::from(zero)));
        b.ins().jump(inner, &args);

        b.switch_to_block(inner);
        let ps = b.block_params(inner).to_vec();
        let (pa, px, accs) = (ps[0], ps[1], &ps[2..]);
        let xv = b.ins().load(types::F64, mf, px, 0);
        let xs = if lanes == 1 {
            xv
        } else {
            b.ins().splat(s.ty, xv)
        };
        let mut next = Vec::with_capacity(s.accs);
        for (k, &acc) in accs.iter().enumerate() {
            let av = b.ins().load(s.ty, mf, pa, (k as i64 * acc_step_a) as i32);
            next.push(if s.fused {
                b.ins().fma(av, xs, acc)
            } else {
                let p = b.ins().fmul(av, xs);
                b.ins().fadd(acc, p)
            });
        }
        let pa1 = b.ins().iadd_imm_s(pa, l_step_a);
        let px1 = b.ins().iadd_imm_s(px, 8);
        let x_end = b.ins().iadd_imm_s(x, n * 8);
        let more = b.ins().icmp(IntCC::NotEqual, px1, x_end);
        let mut again = vec![BlockArg::from(pa1), BlockArg::from(px1)];
        again.extend(next.iter().map(|&v| BlockArg::from(v)));
        let done: Vec<BlockArg> = next.iter().map(|&v| BlockArg::from(v)).collect();
        b.ins().brif(more, inner, &again, blk_end, &done);

        b.switch_to_block(blk_end);
        let accs = b.block_params(blk_end).to_vec();
        for (k, &acc) in accs.iter().enumerate() {
            b.ins().store(mf, acc, pout, (k * lanes * 8) as i32);
        }
        let pa_next = b.ins().iadd_imm_s(pa_block, block_step_a);
        let pout_next = b.ins().iadd_imm_s(pout, rows * 8);
        let more = b.ins().icmp(IntCC::NotEqual, pa_next, a_end);
        b.ins().brif(
            more,
            blk,
            &[BlockArg::from(pa_next), BlockArg::from(pout_next)],
            exit,
            &[],
        );

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.isa().frontend_config());
    }
    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("{name}: {e:?}"))?;
    let listing = ctx
        .compiled_code()
        .and_then(|c| c.vcode.clone())
        .unwrap_or_default();
    Ok((id, listing))
}

/// The signature `(a, x, out)` of every probe kernel: three pointers.
fn kernel_signature(module: &JITModule) -> ir::Signature {
    let mut sig = module.make_signature();
    for _ in 0..3 {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig
}

/// Declares and defines `name(a, x, out)`, a Cranelift function whose body
/// is one call of the imported `extern "C"` symbol `callee(a, x, out)`.
fn define_call_kernel(
    module: &mut JITModule,
    name: &str,
    callee: &str,
) -> Result<cranelift_module::FuncId, String> {
    let sig = kernel_signature(module);
    let callee_id = module
        .declare_function(callee, Linkage::Import, &sig)
        .map_err(|e| format!("{callee}: {e}"))?;
    let id = module
        .declare_function(name, Linkage::Local, &sig)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    let callee_ref = module.declare_func_in_func(callee_id, &mut ctx.func);
    {
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ps = b.block_params(entry).to_vec();
        b.ins().call(callee_ref, &ps);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.isa().frontend_config());
    }
    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("{name}: {e:?}"))?;
    Ok(id)
}

// ---------------------------------------------------------------------------
// Part 2: rustc-compiled micro-kernels (column-major A)
// ---------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
mod rustc_kernels {
    //! Column-major `out = A·x` with explicit AVX2 / AVX-512 FMAs. Every
    //! entry is accumulated from `+0.0` by `fma(A[i,l], x[l], acc)` for
    //! `l = 0..N` in order, the lanes of a register being distinct entries,
    //! so the result is bit-identical to a scalar `mul_add` loop.

    use super::N;
    use std::arch::x86_64::*;

    /// One sweep over `l` for the `4·K` entries starting at `i0`.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA are available; `a` points to `N·N` values, `x` and `out`
    /// to `N`, and `i0 + 4·K ≤ N`.
    #[inline(always)]
    unsafe fn avx2_block<const K: usize>(a: *const f64, x: *const f64, out: *mut f64, i0: usize) {
        let mut acc = [_mm256_setzero_pd(); K];
        for l in 0..N {
            let xs = _mm256_set1_pd(*x.add(l));
            let col = a.add(l * N + i0);
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_pd(_mm256_loadu_pd(col.add(4 * k)), xs, *acc);
            }
        }
        for (k, acc) in acc.iter().enumerate() {
            _mm256_storeu_pd(out.add(i0 + 4 * k), *acc);
        }
    }

    /// `out = A·x` with `_mm256_fmadd_pd`: blocks of 40, 40 and 20 entries
    /// (10, 10, 5 ymm accumulators: enough independent chains to cover the
    /// FMA latency, few enough to stay in the 16 ymm registers).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA; `a` points to `N·N` readable values, `x` to
    /// `N`, `out` to `N` writable ones.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe extern "C" fn avx2_matvec(a: *const f64, x: *const f64, out: *mut f64) {
        const _: () = assert!(N == 100, "the blocks below cover exactly 100 rows");
        avx2_block::<10>(a, x, out, 0);
        avx2_block::<10>(a, x, out, 40);
        avx2_block::<5>(a, x, out, 80);
    }

    /// `out = A·x` with `_mm512_fmadd_pd`, `A` column-major with columns
    /// `N` apart (see [`avx512_body`]).
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F, AVX2 and FMA; pointers as for [`avx2_matvec`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe extern "C" fn avx512_matvec(a: *const f64, x: *const f64, out: *mut f64) {
        avx512_body::<N>(a, x, out);
    }

    /// The leading dimension of the padded layout: columns 104 values
    /// (832 bytes, 13 cache lines) apart, so that in a 64-byte-aligned
    /// buffer every zmm load is one aligned cache line.
    pub const PADDED_LD: usize = 104;

    /// [`avx512_matvec`] for `A` column-major with columns [`PADDED_LD`]
    /// apart (rows `N..PADDED_LD` of each column are padding, never read).
    ///
    /// # Safety
    ///
    /// As for [`avx512_matvec`], with `a` pointing to `PADDED_LD·N` values.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe extern "C" fn avx512_matvec_padded(a: *const f64, x: *const f64, out: *mut f64) {
        avx512_body::<PADDED_LD>(a, x, out);
    }

    /// One sweep over `l` with 12 zmm accumulators (entries 0..96) and one
    /// ymm accumulator (96..100); column `l` of `A` starts at `a + l·LD`.
    ///
    /// # Safety
    ///
    /// AVX-512F, AVX2 and FMA are available; `a` points to `LD·N` values,
    /// `x` and `out` to `N`; `LD ≥ N`.
    #[inline(always)]
    unsafe fn avx512_body<const LD: usize>(a: *const f64, x: *const f64, out: *mut f64) {
        const Z: usize = 12;
        const _: () = assert!(N == 8 * Z + 4, "12 zmm + 1 ymm cover exactly N rows");
        let mut acc = [_mm512_setzero_pd(); Z];
        let mut tail = _mm256_setzero_pd();
        for l in 0..N {
            let xl = *x.add(l);
            let xs = _mm512_set1_pd(xl);
            let col = a.add(l * LD);
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_pd(_mm512_loadu_pd(col.add(8 * k)), xs, *acc);
            }
            tail = _mm256_fmadd_pd(_mm256_loadu_pd(col.add(8 * Z)), _mm256_set1_pd(xl), tail);
        }
        for (k, acc) in acc.iter().enumerate() {
            _mm512_storeu_pd(out.add(8 * k), *acc);
        }
        _mm256_storeu_pd(out.add(8 * Z), tail);
    }
}

// ---------------------------------------------------------------------------
// Part 2: measurement
// ---------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Calls per second of one run of `f`: at least 0.2 s of calls.
fn one_run(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < 0.2 {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Calls per second of each of `fs`: the median of 5 runs of at least
/// 0.2 s, the runs taken round-robin (run 1 of every variant, then run 2,
/// …) so that a burst of load from elsewhere on the machine spreads over
/// all variants instead of sinking one.
fn rates(fs: &mut [Box<dyn FnMut() + '_>]) -> Vec<f64> {
    let mut runs = vec![Vec::new(); fs.len()];
    for _ in 0..5 {
        for (f, runs) in fs.iter_mut().zip(&mut runs) {
            runs.push(one_run(f));
        }
    }
    runs.into_iter().map(median).collect()
}

/// Deterministic values in `[-1, 1)` (a 64-bit LCG; no dependency).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// The reference product of a row-major `a`: every entry from `+0.0`,
/// `l = 0..N` in order, fused (`mul_add`) or not (`acc + a·x`).
fn reference(a_rm: &[f64], x: &[f64], fused: bool) -> Vec<f64> {
    (0..N)
        .map(|i| {
            let mut acc = 0.0f64;
            for l in 0..N {
                let (ail, xl) = (a_rm[i * N + l], x[l]);
                acc = if fused {
                    ail.mul_add(xl, acc)
                } else {
                    acc + ail * xl
                };
            }
            acc
        })
        .collect()
}

/// How a variant wants `A` stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// `A[i,l]` at `i·N + l`.
    RowMajor,
    /// `A[i,l]` at `l·N + i`.
    ColMajor,
    /// `A[i,l]` at `l·PADDED_LD + i` (padding zero).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    ColMajorPadded,
}

/// `A` stored for one [`Storage`], starting on a 64-byte boundary (so
/// no variant's speed depends on where the allocator put it).
struct AlignedMatrix {
    buf: Vec<f64>,
    start: usize,
}

impl AlignedMatrix {
    /// `A` (given row-major) stored as `storage` asks.
    fn new(a_rm: &[f64], storage: Storage) -> AlignedMatrix {
        #[cfg(target_arch = "x86_64")]
        let padded_ld = rustc_kernels::PADDED_LD;
        #[cfg(not(target_arch = "x86_64"))]
        let padded_ld = N;
        let (len, index): (usize, &dyn Fn(usize, usize) -> usize) = match storage {
            Storage::RowMajor => (N * N, &|i, l| i * N + l),
            Storage::ColMajor => (N * N, &|i, l| l * N + i),
            Storage::ColMajorPadded => (padded_ld * N, &|i, l| l * padded_ld + i),
        };
        // 8 spare values: enough to move the start to a 64-byte boundary.
        let mut buf = vec![0.0; len + 8];
        let misalign = (buf.as_ptr() as usize % 64) / 8;
        let start = (8 - misalign) % 8;
        for i in 0..N {
            for l in 0..N {
                buf[start + index(i, l)] = a_rm[i * N + l];
            }
        }
        AlignedMatrix { buf, start }
    }

    fn as_ptr(&self) -> *const f64 {
        self.buf[self.start..].as_ptr()
    }
}

/// One row of the result table.
struct Variant {
    label: &'static str,
    what: &'static str,
    /// The kernel and the storage of `A` it takes.
    kernel: MatVec,
    storage: Storage,
    /// Which reference it must match bit for bit.
    fused: bool,
}

fn part2(disasm: bool) {
    println!("## Part 2: 100×100 f64 matrix-vector product\n");
    let isa = match host_isa(false, &[]) {
        Ok(isa) => isa,
        Err(e) => {
            println!("cannot build the host ISA: {e}");
            return;
        }
    };
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    #[cfg(target_arch = "x86_64")]
    let (has_avx2, has_avx512) = {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        jb.symbol(
            "simd_probe_avx2_matvec",
            rustc_kernels::avx2_matvec as *const u8,
        );
        jb.symbol(
            "simd_probe_avx512_matvec",
            rustc_kernels::avx512_matvec as *const u8,
        );
        jb.symbol(
            "simd_probe_avx512_matvec_padded",
            rustc_kernels::avx512_matvec_padded as *const u8,
        );
        (avx2, avx512)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (has_avx2, has_avx512) = (false, false);
    let mut module = JITModule::new(jb);

    let scalar = |accs, fused| Shape {
        ty: types::F64,
        accs,
        layout: Layout::RowMajor,
        fused,
    };
    let vector = |accs| Shape {
        ty: types::F64X2,
        accs,
        layout: Layout::ColMajor,
        fused: true,
    };
    let clif: [(&str, &str, Shape); 6] = [
        (
            "(a)",
            "Cranelift scalar, 1 row, fmul+fadd",
            scalar(1, false),
        ),
        ("(b)", "Cranelift scalar, 1 row, fma", scalar(1, true)),
        (
            "(b5)",
            "Cranelift scalar fma, 5 rows interleaved",
            scalar(5, true),
        ),
        (
            "(b10)",
            "Cranelift scalar fma, 10 rows interleaved",
            scalar(10, true),
        ),
        (
            "(c)",
            "Cranelift F64X2 fma across entries, A col-major, 5 accumulators",
            vector(5),
        ),
        (
            "(c10)",
            "Cranelift F64X2 fma across entries, A col-major, 10 accumulators",
            vector(10),
        ),
    ];
    let mut ids = Vec::new();
    for (label, what, shape) in clif {
        match define_cranelift_kernel(&mut module, &format!("kernel_{label}"), shape) {
            Ok((id, listing)) => {
                if disasm {
                    println!("Cranelift listing of {label}:\n\n```\n{listing}```\n");
                }
                ids.push((label, what, id, shape));
            }
            Err(e) => println!("{label} {what}: cannot compile: {e}\n"),
        }
    }
    let mut calls = Vec::new();
    if has_avx2 {
        calls.push((
            "(d)",
            "rustc AVX2 _mm256_fmadd_pd, called from Cranelift",
            "simd_probe_avx2_matvec",
            Storage::ColMajor,
        ));
    }
    if has_avx512 {
        calls.push((
            "(e)",
            "rustc AVX-512 _mm512_fmadd_pd, called from Cranelift",
            "simd_probe_avx512_matvec",
            Storage::ColMajor,
        ));
        calls.push((
            "(e104)",
            "(e) with columns padded to 104 (every zmm load one aligned cache line)",
            "simd_probe_avx512_matvec_padded",
            Storage::ColMajorPadded,
        ));
    }
    let mut call_ids = Vec::new();
    for (label, what, callee, storage) in calls {
        match define_call_kernel(&mut module, &format!("kernel_{label}"), callee) {
            Ok(id) => call_ids.push((label, what, id, storage)),
            Err(e) => println!("{label} {what}: cannot compile: {e}\n"),
        }
    }
    if let Err(e) = module.finalize_definitions() {
        println!("cannot finalize the JIT module: {e}");
        return;
    }

    let mut variants = Vec::new();
    let jitted = |id| {
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is a finalized function of this module whose
        // signature is (i64, i64, i64) -> () in the host's default calling
        // convention, i.e. `MatVec`'s.
        unsafe { std::mem::transmute::<*const u8, MatVec>(code) }
    };
    for (label, what, id, shape) in ids {
        variants.push(Variant {
            label,
            what,
            kernel: jitted(id),
            storage: match shape.layout {
                Layout::RowMajor => Storage::RowMajor,
                Layout::ColMajor => Storage::ColMajor,
            },
            fused: shape.fused,
        });
    }
    for (label, what, id, storage) in call_ids {
        variants.push(Variant {
            label,
            what,
            kernel: jitted(id),
            storage,
            fused: true,
        });
    }
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2 {
            variants.push(Variant {
                label: "(d0)",
                what: "rustc AVX2 kernel called directly from Rust",
                kernel: rustc_kernels::avx2_matvec,
                storage: Storage::ColMajor,
                fused: true,
            });
        }
        if has_avx512 {
            variants.push(Variant {
                label: "(e0)",
                what: "rustc AVX-512 kernel called directly from Rust",
                kernel: rustc_kernels::avx512_matvec,
                storage: Storage::ColMajor,
                fused: true,
            });
        }
    }

    let a_rm = values(N * N, 1);
    let stored = [
        Storage::RowMajor,
        Storage::ColMajor,
        Storage::ColMajorPadded,
    ]
    .map(|st| (st, AlignedMatrix::new(&a_rm, st)));
    let matrix = |st: Storage| {
        stored
            .iter()
            .find(|(s, _)| *s == st)
            .map(|(_, m)| m.as_ptr())
            .expect("every storage is built above")
    };
    let x = values(N, 2);
    let ref_fused = reference(&a_rm, &x, true);
    let ref_unfused = reference(&a_rm, &x, false);
    let differing = ref_fused
        .iter()
        .zip(&ref_unfused)
        .filter(|(f, u)| f.to_bits() != u.to_bits())
        .count();

    // Check every variant, then time them all together.
    let mut outs = vec![vec![f64::NAN; N]; variants.len()];
    let mut against = Vec::new();
    for (v, out) in variants.iter().zip(&mut outs) {
        let a = matrix(v.storage);
        // SAFETY: `a` holds A in the storage the kernel takes, `x` and `out`
        // N values each; the AVX kernels are only listed when the CPU has
        // their features.
        unsafe { (v.kernel)(a, x.as_ptr(), out.as_mut_ptr()) };
        let (want, what) = if v.fused {
            (&ref_fused, "Rust `mul_add` loop (= (b))")
        } else {
            (&ref_unfused, "Rust `acc + a*x` loop")
        };
        for (i, (got, want)) in out.iter().zip(want).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{} entry {i}: {got:e} is not bit-identical to the reference {want:e}",
                v.label
            );
        }
        against.push(what);
    }
    let mut calls: Vec<Box<dyn FnMut()>> = variants
        .iter()
        .zip(&mut outs)
        .map(|(v, out)| {
            let (a, x, kernel) = (matrix(v.storage), x.as_ptr(), v.kernel);
            Box::new(move || {
                // SAFETY: as for the checking call above.
                unsafe { kernel(a, x, out.as_mut_ptr()) };
                std::hint::black_box(&mut *out);
            }) as Box<dyn FnMut()>
        })
        .collect();
    let measured = rates(&mut calls);
    drop(calls);
    let rows: Vec<_> = variants
        .iter()
        .zip(against)
        .zip(measured)
        .map(|((v, against), r)| (v, against, r))
        .collect();
    let base = rows
        .iter()
        .find(|(v, _, _)| v.label == "(b)")
        .map(|&(_, _, r)| r);
    println!("| variant | what | bit-identical to | M matvec/s | GFMA/s | vs (b) |");
    println!("|---|---|---|---|---|---|");
    for (v, against, r) in rows {
        let ratio = base.map_or("–".to_owned(), |b| format!("{:.2}×", r / b));
        println!(
            "| {} | {} | {against} ✓ | {:.3} | {:.2} | {ratio} |",
            v.label,
            v.what,
            r / 1e6,
            r * FMAS_PER_MATVEC / 1e9,
        );
    }
    println!(
        "\n(fused and unfused references differ in {differing} of {N} entries, \
         so the fused/unfused checks are not vacuous)"
    );
}

fn main() {
    let disasm = std::env::args().any(|a| a == "--disasm");
    part1();
    part2(disasm);
}
