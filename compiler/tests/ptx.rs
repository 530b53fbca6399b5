//! Tests of the PTX backend: snapshots of the PTX of small kernels
//! (`tests/snapshots/*.ptx`; regenerate with `CRUX_UPDATE_SNAPSHOTS=1`),
//! and `ptxas` acceptance (sm_90) of kernels covering every operation,
//! type, conversion, locals, nested control flow and the math expansions.
//!
//! Without `ptxas` (see `crux_compiler::backend::ptxas::find`) the ptxas
//! steps print that they were skipped and pass, unless
//! `CRUX_REQUIRE_PTXAS=1`. Registers and spills per kernel are printed
//! (`cargo test --test ptx -- --nocapture`).

use std::path::PathBuf;

use crux_compiler::backend::ptx::{emit, PtxOptions};
use crux_compiler::backend::{ptxas, BackendError};
use crux_compiler::math;
use crux_ir::kernel::{
    Access, BinOp, Builder, CmpOp, Conv, Function, KernelError, Ty, UnOp, Value,
};

const GPU: &str = "sm_90";

/// Assembles `ptx` with ptxas (or reports the skip) and prints its
/// figures; `None` when skipped.
fn assemble(name: &str, ptx: &str) -> Option<ptxas::PtxasReport> {
    match ptxas::check(ptx, GPU) {
        Ok(Some(r)) => {
            assert!(
                !r.kernels.is_empty(),
                "no entry in the ptxas report:\n{}",
                r.log
            );
            for e in &r.kernels {
                println!(
                    "ptxas {GPU} {name}: entry `{}`: {} registers, {} B spill stores, {} B spill loads, {} B stack frame",
                    e.name, e.registers, e.spill_stores_bytes, e.spill_loads_bytes, e.stack_frame_bytes
                );
            }
            Some(r)
        }
        Ok(None) => {
            assert!(
                !ptxas::required(),
                "ptxas not found and {}=1",
                ptxas::REQUIRE_ENV
            );
            println!("ptxas not found: skipped assembling `{name}`");
            None
        }
        Err(e) => panic!("ptxas rejects `{name}`: {e}\n--- PTX ---\n{ptx}"),
    }
}

/// Emits `f` with default options and assembles it.
fn emit_and_assemble(f: &Function) -> String {
    emit_with(f, &PtxOptions::default())
}

fn emit_with(f: &Function, opts: &PtxOptions) -> String {
    let ptx = emit(f, opts).unwrap_or_else(|e| panic!("`{}` does not emit: {e}", f.name));
    assemble(&f.name, &ptx);
    ptx
}

/// Compares `ptx` with `tests/snapshots/<name>.ptx` (written instead when
/// `CRUX_UPDATE_SNAPSHOTS=1`).
fn snapshot(name: &str, ptx: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
        .join(format!("{name}.ptx"));
    if std::env::var("CRUX_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("snapshot folder");
        std::fs::write(&path, ptx).expect("writing the snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path:?}: {e} (run with CRUX_UPDATE_SNAPSHOTS=1 to create it)")
    });
    if want != ptx {
        let line = want
            .lines()
            .zip(ptx.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(ptx.lines().count()));
        panic!(
            "PTX of `{name}` differs from {path:?} from line {} on \
             (CRUX_UPDATE_SNAPSHOTS=1 to accept):\n--- got ---\n{ptx}",
            line + 1
        );
    }
}

// ---- small kernels (snapshots) ----

fn sum_loop() -> Function {
    let mut b = Builder::new("sum_loop");
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

fn if_select() -> Function {
    let mut b = Builder::new("if_select");
    let x = b.param("x", Ty::F64);
    let k = b.param("k", Ty::I32);
    let zero = b.f64(0.0);
    let neg = b.lt(x, zero);
    let r = b.if_(
        neg,
        |b| {
            let m = b.neg(x);
            vec![b.sqrt(m)]
        },
        |b| vec![b.sqrt(x)],
    );
    let one = b.i32(1);
    let odd = b.and(k, one);
    let z = b.i32(0);
    let is_odd = b.cmp(CmpOp::Ne, odd, z);
    let half = b.f64(0.5);
    let h = b.mul(r[0], half);
    let out = b.select(is_odd, h, r[0]);
    b.finish(&[out, is_odd]).unwrap()
}

/// Collatz steps of `n` (while loop with two carried values).
fn while_loop() -> Function {
    let mut b = Builder::new("while_loop");
    let n = b.param("n", Ty::I64);
    let zero = b.i64(0);
    let r = b.while_(
        &[n, zero],
        |b, c| {
            let one = b.i64(1);
            b.cmp(CmpOp::Gt, c[0], one)
        },
        |b, c| {
            let one = b.i64(1);
            let low = b.and(c[0], one);
            let zero = b.i64(0);
            let even = b.cmp(CmpOp::Eq, low, zero);
            let half = b.shr_u(c[0], one);
            let three = b.i64(3);
            let t = b.mul(c[0], three);
            let t = b.add(t, one);
            let next = b.select(even, half, t);
            vec![next, b.add(c[1], one)]
        },
    );
    b.finish(&[r[1]]).unwrap()
}

fn philox_kernel() -> Function {
    let mut b = Builder::new("philox");
    let seed = b.param("seed", Ty::I64);
    let stream = b.param("stream", Ty::I64);
    let counter = b.param("counter", Ty::I64);
    let out = b.buffer("out", Ty::I64, Access::Write);
    let w = b.philox(seed, stream, counter);
    for (k, v) in w.iter().enumerate() {
        let i = b.i64(k as i64);
        b.store(out, i, *v);
    }
    b.finish(&[]).unwrap()
}

#[test]
fn snapshot_sum_loop() {
    snapshot("sum_loop", &emit_and_assemble(&sum_loop()));
}

#[test]
fn snapshot_if_select() {
    snapshot("if_select", &emit_and_assemble(&if_select()));
}

#[test]
fn snapshot_while_loop() {
    snapshot("while_loop", &emit_and_assemble(&while_loop()));
}

#[test]
fn snapshot_philox() {
    snapshot("philox", &emit_and_assemble(&philox_kernel()));
}

// ---- coverage kernels (ptxas acceptance) ----

fn unary_applies(op: UnOp, t: Ty) -> bool {
    match op {
        UnOp::Neg | UnOp::Abs => t.is_float() || t.is_int(),
        UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => t.is_float(),
        UnOp::Not => t.is_int() || t == Ty::Bool,
    }
}

fn binary_applies(op: BinOp, t: Ty) -> bool {
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Min | BinOp::Max => {
            t.is_float() || t.is_int()
        }
        BinOp::Div | BinOp::Copysign => t.is_float(),
        BinOp::And | BinOp::Or | BinOp::Xor => t.is_int() || t == Ty::Bool,
        BinOp::Shl | BinOp::ShrU | BinOp::ShrS => t.is_int(),
    }
}

/// A constant of every type with a non-trivial bit pattern.
fn some_constant(b: &mut Builder, t: Ty) -> Value {
    match t {
        Ty::F64 => b.f64(-0.1),
        Ty::F32 => b.f32(f32::MIN_POSITIVE / 3.0),
        Ty::I64 => b.i64(i64::MIN),
        Ty::I32 => b.i32(-7),
        Ty::Bool => b.bool(true),
    }
}

#[test]
fn every_unary_op() {
    let mut b = Builder::new("every_unary");
    let xs: Vec<Value> = Ty::ALL.iter().map(|t| b.param(t.name(), *t)).collect();
    let mut rets = Vec::new();
    for (t, x) in Ty::ALL.iter().zip(&xs) {
        for op in UnOp::ALL {
            if unary_applies(op, *t) {
                rets.push(b.unary(op, *x));
            }
        }
    }
    emit_and_assemble(&b.finish(&rets).unwrap());
}

#[test]
fn every_binary_op_and_constant() {
    let mut b = Builder::new("every_binary");
    let xs: Vec<Value> = Ty::ALL.iter().map(|t| b.param(t.name(), *t)).collect();
    let mut rets = Vec::new();
    for (t, x) in Ty::ALL.iter().zip(&xs) {
        let c = some_constant(&mut b, *t);
        for op in BinOp::ALL {
            if binary_applies(op, *t) {
                rets.push(b.binary(op, *x, c));
                rets.push(b.binary(op, c, *x));
            }
        }
    }
    let ptx = emit_and_assemble(&b.finish(&rets).unwrap());
    for op in ["add", "sub", "mul", "div"] {
        for t in ["f64", "f32"] {
            assert!(ptx.contains(&format!("{op}.rn.{t} ")), "{op}.rn.{t}");
            assert!(!ptx.contains(&format!("{op}.{t} ")), "{op}.{t} without .rn");
        }
    }
    assert!(!ptx.contains("fma") && !ptx.contains("min.f") && !ptx.contains("max.f"));
    assert!(ptx.contains("setp.nan.f64") && ptx.contains("setp.nan.f32"));
    assert!(ptx.contains("mul.lo.s64 ") && ptx.contains("mul.lo.s32 "));
}

/// The IR's `fma` is `fma.rn` (one rounding, no `.ftz`); a separate
/// multiply and add stay `mul.rn` + `add.rn`, which ptxas never fuses.
#[test]
fn fma_is_fma_rn_and_only_where_written() {
    let mut b = Builder::new("fused");
    let mut rets = Vec::new();
    for t in [Ty::F64, Ty::F32] {
        let x = b.param(format!("x_{t}"), t);
        let y = b.param(format!("y_{t}"), t);
        let c = some_constant(&mut b, t);
        rets.push(b.fma(x, y, c));
        rets.push(b.fma(c, x, y));
        let p = b.mul(x, y);
        rets.push(b.add(p, c));
    }
    let ptx = emit_and_assemble(&b.finish(&rets).unwrap());
    for t in ["f64", "f32"] {
        assert_eq!(ptx.matches(&format!("fma.rn.{t} ")).count(), 2, "{ptx}");
        assert!(ptx.contains(&format!("mul.rn.{t} ")) && ptx.contains(&format!("add.rn.{t} ")));
    }
    assert_eq!(ptx.matches("fma").count(), 4, "{ptx}");
    assert!(!ptx.contains(".ftz"), "{ptx}");
}

#[test]
fn every_comparison_and_select() {
    let mut b = Builder::new("every_cmp");
    let xs: Vec<Value> = Ty::ALL.iter().map(|t| b.param(t.name(), *t)).collect();
    let ys: Vec<Value> = Ty::ALL
        .iter()
        .map(|t| b.param(format!("{}_2", t.name()), *t))
        .collect();
    let mut rets = Vec::new();
    let mut conds = Vec::new();
    for (t, (x, y)) in Ty::ALL.iter().zip(xs.iter().zip(&ys)) {
        if *t == Ty::Bool {
            continue;
        }
        for op in CmpOp::ALL {
            let c = b.cmp(op, *x, *y);
            conds.push(c);
            rets.push(c);
        }
    }
    for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
        rets.push(b.select(conds[i], *x, *y));
    }
    let ptx = emit_and_assemble(&b.finish(&rets).unwrap());
    // Float `Ne` is unordered (true with NaN); the others are ordered.
    for t in ["f64", "f32"] {
        assert!(ptx.contains(&format!("setp.neu.{t} ")));
        assert!(!ptx.contains(&format!("setp.ne.{t} ")));
        for op in ["eq", "lt", "le", "gt", "ge"] {
            assert!(ptx.contains(&format!("setp.{op}.{t} ")));
        }
    }
    assert!(ptx.contains("setp.ne.s64 ") && ptx.contains("setp.lt.s32 "));
}

#[test]
fn every_conversion() {
    let mut b = Builder::new("every_conv");
    let xs: Vec<Value> = Ty::ALL.iter().map(|t| b.param(t.name(), *t)).collect();
    let mut rets = Vec::new();
    for c in Conv::ALL {
        let from = c.types().0;
        let i = Ty::ALL.iter().position(|t| *t == from).unwrap();
        rets.push(b.conv(c, xs[i]));
    }
    let ptx = emit_and_assemble(&b.finish(&rets).unwrap());
    // f64 → i64: PTX turns NaN into i64::MIN, the IR into 0.
    let cvt = ptx.find("cvt.rzi.s64.f64").expect("f64 → i64");
    let next: Vec<&str> = ptx[cvt..].lines().skip(1).take(2).collect();
    assert!(next[0].contains("setp.nan.f64") && next[1].contains("selp.b64"));
    for c in [
        "cvt.rn.f32.f64",
        "cvt.f64.f32",
        "cvt.rn.f64.s64",
        "cvt.u32.u64",
        "cvt.s64.s32",
        "cvt.u64.u32",
        "selp.u64",
    ] {
        assert!(ptx.contains(c), "{c} missing");
    }
}

#[test]
fn buffers_and_locals_of_every_type() {
    let mut b = Builder::new("memory");
    let n = b.param("n", Ty::I64);
    let numeric: Vec<Ty> = Ty::ALL.into_iter().filter(|t| *t != Ty::Bool).collect();
    let mut rets = Vec::new();
    for t in &numeric {
        let src = b.buffer(format!("src_{t}"), *t, Access::Read);
        let dst = b.buffer(format!("dst_{t}"), *t, Access::ReadWrite);
        let small = b.local(format!("small_{t}"), *t, 3);
        // More than 64 bytes: zeroed by a loop.
        let big = b.local(format!("big_{t}"), *t, 33);
        let zero = b.i64(0);
        b.for_(zero, n, &[], |b, i, _| {
            let v = b.load(src, i);
            b.local_store(big, i, v);
            let three = b.i64(3);
            let j = b.and(i, three);
            let k = b.i64(2);
            let j = b.min(j, k);
            b.local_store(small, j, v);
            let w = b.local_load(big, i);
            let old = b.load(dst, i);
            let s = b.add(w, old);
            b.store(dst, i, s);
            vec![]
        });
        let one = b.i64(1);
        rets.push(b.local_load(small, one));
        rets.push(b.load(dst, one));
    }
    let f = b.finish(&rets).unwrap();
    emit_and_assemble(&f);
    let unchecked = emit_with(
        &f,
        &PtxOptions {
            bounds_checks: false,
            ..PtxOptions::default()
        },
    );
    assert!(!unchecked.contains("$Loob"), "no bounds checks expected");
}

#[test]
fn nested_control_flow() {
    let mut b = Builder::new("nested");
    let n = b.param("n", Ty::I64);
    let flag = b.param("flag", Ty::Bool);
    let y = b.param("y", Ty::F32);
    let out = b.buffer("out", Ty::F64, Access::Write);
    let zero = b.i64(0);
    let a0 = b.f64(1.0);
    let b0 = b.f64(2.0);
    // Carried values swapped every iteration: parallel moves.
    let r = b.for_(zero, n, &[a0, b0, flag], |b, i, c| {
        let inner = b.if_(
            c[2],
            |b| {
                let w = b.while_(
                    &[c[0], i],
                    |b, w| {
                        let z = b.i64(0);
                        b.cmp(CmpOp::Gt, w[1], z)
                    },
                    |b, w| {
                        let half = b.f64(0.5);
                        let x = b.mul(w[0], half);
                        let one = b.i64(1);
                        vec![x, b.sub(w[1], one)]
                    },
                );
                vec![w[0], c[2]]
            },
            |b| {
                let z = b.i64(0);
                let m = b.for_(z, i, &[c[1]], |b, _, d| vec![b.sqrt(d[0])]);
                let t = b.bool(true);
                vec![m[0], t]
            },
        );
        b.store(out, i, inner[0]);
        let not = b.unary(UnOp::Not, inner[1]);
        vec![c[1], c[0], not]
    });
    let y2 = b.if_(r[2], |b| vec![b.add(y, y)], |_| vec![y]);
    emit_and_assemble(&b.finish(&[r[0], r[1], r[2], y2[0]]).unwrap());
}

#[test]
fn math_expansions() {
    for t in [Ty::F64, Ty::F32] {
        let mut b = Builder::new(format!("math_{t}"));
        let x = b.param("x", t);
        let y = b.param("y", t);
        let rets = vec![
            math::exp(&mut b, x),
            math::log(&mut b, x),
            math::sin(&mut b, x),
            math::cos(&mut b, x),
            math::tanh(&mut b, x),
            math::powf(&mut b, x, y),
            math::erf(&mut b, x),
        ];
        emit_and_assemble(&b.finish(&rets).unwrap());
    }
}

#[test]
fn options_thread_param_and_block_size() {
    let mut b = Builder::new("chunk");
    let seed = b.param("seed", Ty::I64);
    let chain = b.param("chain", Ty::I64);
    let zero = b.i64(0);
    let u = b.uniform(seed, chain, zero);
    let f = b.finish(&[u]).unwrap();
    let opts = PtxOptions {
        thread_param: Some(1),
        max_threads_per_block: 256,
        ..PtxOptions::default()
    };
    let ptx = emit_with(&f, &opts);
    assert!(ptx.contains(".maxntid 256, 1, 1"));
    assert!(ptx.contains("ld.param.u64 %rd1, [arg1]"));
    // The thread index is added to `chain` right after it is loaded.
    let after = &ptx[ptx.find("[arg1]").unwrap()..];
    assert!(after
        .lines()
        .nth(1)
        .unwrap()
        .contains("add.s64 %rd1, %rd1, "));

    for bad in [Some(2), Some(7)] {
        let opts = PtxOptions {
            thread_param: bad,
            ..PtxOptions::default()
        };
        assert!(matches!(
            emit(&f, &opts),
            Err(BackendError::Unsupported { .. })
        ));
    }
    let mut b = Builder::new("f64_param");
    let x = b.param("x", Ty::F64);
    let f = b.finish(&[x]).unwrap();
    let opts = PtxOptions {
        thread_param: Some(0),
        ..PtxOptions::default()
    };
    assert!(matches!(
        emit(&f, &opts),
        Err(BackendError::Unsupported { .. })
    ));
}

#[test]
fn module_header_and_parameters() {
    let mut b = Builder::new("signature");
    for t in Ty::ALL {
        b.param(t.name(), t);
    }
    let buf = b.buffer("data", Ty::F32, Access::Read);
    let z = b.i64(0);
    let v = b.load(buf, z);
    let ptx = emit_and_assemble(&b.finish(&[v]).unwrap());
    assert!(ptx.contains(".version 7.8\n.target sm_80\n.address_size 64\n"));
    let params = [
        ".param .f64 arg0",
        ".param .f32 arg1",
        ".param .u64 arg2",
        ".param .u32 arg3",
        ".param .u8 arg4",
        ".param .u64 buf0_ptr",
        ".param .u64 buf0_len",
        ".param .u64 buf0_stride",
        ".param .u64 rets_ptr",
        ".param .u64 status_ptr",
        ".param .u32 n_threads",
    ];
    let mut at = 0;
    for p in params {
        let i = ptx[at..]
            .find(p)
            .unwrap_or_else(|| panic!("{p} missing or out of order"));
        at += i + p.len();
    }
    assert!(ptx.contains(".visible .entry signature("));
    assert!(ptx.contains(".maxntid 128, 1, 1"));
}

#[test]
fn invalid_kernels_are_rejected() {
    let mut b = Builder::new("bad");
    let x = b.param("x", Ty::F64);
    let mut f = b.finish(&[x]).unwrap();
    f.body.yields = vec![Value(99)];
    assert!(matches!(
        emit(&f, &PtxOptions::default()),
        Err(BackendError::Kernel(KernelError::Invalid { .. }))
    ));
}

#[test]
fn ptxas_rejects_bad_ptx_with_its_message() {
    match ptxas::check(".version 7.8\n.target sm_80\nnonsense;\n", GPU) {
        Ok(None) => println!("ptxas not found: skipped"),
        Ok(Some(r)) => panic!("ptxas accepted nonsense: {r:?}"),
        Err(e) => assert!(e.to_string().contains("nonsense") || e.to_string().contains("error")),
    }
}

#[test]
fn ptxas_report_parsing() {
    let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'k' for 'sm_90'\n\
ptxas info    : Function properties for k\n    \
48 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 40 registers, used 0 barriers, 48 bytes stack frame, 400 bytes cmem[0]\n";
    let r = ptxas::PtxasReport::parse(log);
    assert_eq!(
        r.kernels,
        vec![ptxas::KernelReport {
            name: "k".into(),
            registers: 40,
            spill_stores_bytes: 8,
            spill_loads_bytes: 12,
            stack_frame_bytes: 48,
        }]
    );
}

use crux_compiler::sampler::gaussian_target;

/// Whole sampler chunk kernels (what the CUDA executor launches: one thread
/// per chain, `chain` = scalar parameter 1).
#[test]
fn sampler_chunk_kernels() {
    use crux_compiler::sampler::kernels::{Hmc, Mala, MeanFieldVi, Nuts, Optimizer, Sgld};
    use crux_compiler::sampler::{build_chunk, Kernel, Metric, ModelPlan};
    use std::sync::Arc;
    let kernels: Vec<(&str, Arc<dyn Kernel>)> = vec![
        ("nuts", Arc::new(Nuts::default())),
        ("nuts_dense", Arc::new(Nuts::default())),
        ("nuts_low_rank", Arc::new(Nuts::default())),
        (
            "meanfield_vi",
            Arc::new(MeanFieldVi {
                optimizer: Optimizer::adam(1e-2),
                num_samples: 8,
                init_log_std: -3.0,
                init_mu_at_position: true,
            }),
        ),
        (
            "hmc",
            Arc::new(Hmc {
                num_integration_steps: 10,
            }),
        ),
        ("mala", Arc::new(Mala)),
        ("sgld", Arc::new(Sgld)),
    ];
    for (name, kernel) in kernels {
        let target = gaussian_target(&[1.0, -2.0, 0.5], &[1.0, 0.5, 3.0]);
        let len = target.layout.dim;
        let plan = ModelPlan {
            name: "theta".into(),
            kernel,
            target,
            offset: 0,
            len,
            warmup: 100,
            keep: 100,
            thin: 1,
            // SGLD and VI report no acceptance statistic to adapt on.
            adapt: (!matches!(name, "sgld" | "meanfield_vi")).then(Default::default),
            metric: match name {
                "nuts_dense" => Metric::Dense,
                "nuts_low_rank" => Metric::LowRank { rank: 2 },
                _ => Metric::Diagonal,
            },
            minibatch: None,
            repeats: 1,
        };
        let chunk = build_chunk(3, &[plan]).unwrap();
        let opts = PtxOptions {
            thread_param: Some(1),
            ..PtxOptions::default()
        };
        let ptx = emit(&chunk.function, &opts).unwrap();
        println!(
            "chunk kernel ({name}): {} values, {} lines of PTX",
            chunk.function.values.len(),
            ptx.lines().count()
        );
        if let Some(r) = assemble(&format!("chunk_{name}"), &ptx) {
            let k = &r.kernels[0];
            assert_eq!(
                (k.spill_stores_bytes, k.spill_loads_bytes),
                (0, 0),
                "the {name} chunk kernel spills"
            );
        }
    }
}
