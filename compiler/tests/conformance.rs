//! The backend conformance suite: every test is written once (in `cases`)
//! and instantiated per backend by `conformance_suite!`. Each test runs its
//! kernels on the backend and on the reference interpreter and compares the
//! results, the buffers after the call and the errors bit for bit (any NaN
//! equals any NaN, through `Scalar::same`).
//!
//! Adding a backend is one line at the bottom of this file.

use crux_compiler::backend::clif::{compile as clif_compile, ClifKernel, ClifOptions};
use crux_compiler::backend::{BackendError, Executable, Interpreter};
use crux_ir::kernel::{
    Access, BinOp, Buffer, Builder, CmpOp, Conv, Function, KernelError, MatRef, Scalar, Ty, UnOp,
};

/// Compiles a kernel for one backend.
type Make = fn(&Function) -> Result<Box<dyn Executable>, BackendError>;

mod cases {
    use super::*;

    const FUEL: u64 = 1 << 32;

    fn reference(f: &Function) -> Interpreter {
        Interpreter {
            function: f.clone(),
            fuel: FUEL,
        }
    }

    fn same_buffers(a: &[Buffer], b: &[Buffer]) -> bool {
        fn elems(b: &Buffer) -> Vec<Scalar> {
            match b {
                Buffer::F64(v) => v.iter().map(|x| Scalar::F64(*x)).collect(),
                Buffer::F32(v) => v.iter().map(|x| Scalar::F32(*x)).collect(),
                Buffer::I64(v) => v.iter().map(|x| Scalar::I64(*x)).collect(),
                Buffer::I32(v) => v.iter().map(|x| Scalar::I32(*x)).collect(),
            }
        }
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                let (x, y) = (elems(x), elems(y));
                x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| p.same(*q))
            })
    }

    fn same_scalars(a: &[Scalar], b: &[Scalar]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(*y))
    }

    /// Compiles `f` on the backend.
    pub fn build(make: Make, f: &Function) -> Box<dyn Executable> {
        match make(f) {
            Ok(e) => e,
            Err(e) => panic!("`{}` does not compile: {e}", f.name),
        }
    }

    /// Calls `exe` (compiled from `f`) and the interpreter with the same
    /// arguments and buffers; asserts the same outcome, bit for bit.
    /// Returns the backend's outcome and buffers.
    pub fn check_with(
        exe: &dyn Executable,
        f: &Function,
        args: &[Scalar],
        bufs: &[Buffer],
    ) -> (Result<Vec<Scalar>, BackendError>, Vec<Buffer>) {
        let mut want_bufs = bufs.to_vec();
        let want = reference(f).call(args, &mut want_bufs);
        let mut got_bufs = bufs.to_vec();
        let got = exe.call(args, &mut got_bufs);
        match (&want, &got) {
            (Ok(w), Ok(g)) => assert!(
                same_scalars(w, g),
                "`{}` with {args:?}: interpreter {w:?}, backend {g:?}",
                f.name
            ),
            (Err(BackendError::Kernel(w)), Err(BackendError::Kernel(g))) => {
                assert_eq!(w, g, "`{}` with {args:?}: different errors", f.name)
            }
            (w, g) => panic!(
                "`{}` with {args:?}: interpreter {w:?}, backend {g:?}",
                f.name
            ),
        }
        assert!(
            same_buffers(&want_bufs, &got_bufs),
            "`{}` with {args:?}: buffers differ: interpreter {want_bufs:?}, backend {got_bufs:?}",
            f.name
        );
        (got, got_bufs)
    }

    /// Compiles `f` and checks one call.
    pub fn check(
        make: Make,
        f: &Function,
        args: &[Scalar],
        bufs: &[Buffer],
    ) -> Result<Vec<Scalar>, BackendError> {
        let exe = build(make, f);
        check_with(&*exe, f, args, bufs).0
    }

    // ---- edge values ----

    fn f64_edges() -> Vec<f64> {
        vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            3.7,
            -3.7,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            -f64::from_bits(1),
            f64::from_bits(0x000F_FFFF_FFFF_FFFF), // largest subnormal
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN
            1e300,
            4503599627370497.5, // 2^52 + 1.5: no fraction bits left above
            9007199254740993.0,
            9.3e18,
            -9.3e18,
            i64::MIN as f64,
            i64::MAX as f64, // 2^63
            1e-10,
        ]
    }

    fn f32_edges() -> Vec<f32> {
        vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.5,
            2.5,
            -2.5,
            3.7,
            -3.7,
            1.0 / 3.0,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(0x007F_FFFF),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            8388609.5,
            1e30,
            1e-10,
        ]
    }

    fn i64_edges() -> Vec<i64> {
        vec![
            0,
            1,
            -1,
            2,
            7,
            31,
            32,
            33,
            63,
            64,
            65,
            127,
            128,
            -63,
            -64,
            -65,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            u32::MAX as i64,
            1 << 32,
            0x1234_5678_9ABC_DEF0,
            -0x1234_5678_9ABC_DEF0,
        ]
    }

    fn i32_edges() -> Vec<i32> {
        vec![
            0,
            1,
            -1,
            2,
            7,
            15,
            31,
            32,
            33,
            63,
            64,
            -31,
            -32,
            -33,
            i32::MIN,
            i32::MIN + 1,
            i32::MAX,
            i32::MAX - 1,
            0x1234_5678,
            -0x1234_5678,
        ]
    }

    fn scalars(ty: Ty) -> Vec<Scalar> {
        match ty {
            Ty::F64 => f64_edges().into_iter().map(Scalar::F64).collect(),
            Ty::F32 => f32_edges().into_iter().map(Scalar::F32).collect(),
            Ty::I64 => i64_edges().into_iter().map(Scalar::I64).collect(),
            Ty::I32 => i32_edges().into_iter().map(Scalar::I32).collect(),
            Ty::Bool => vec![Scalar::Bool(false), Scalar::Bool(true)],
        }
    }

    const FLOAT_UNOPS: [UnOp; 7] = [
        UnOp::Neg,
        UnOp::Abs,
        UnOp::Sqrt,
        UnOp::Floor,
        UnOp::Ceil,
        UnOp::Trunc,
        UnOp::Nearest,
    ];
    const INT_UNOPS: [UnOp; 3] = [UnOp::Neg, UnOp::Abs, UnOp::Not];
    const FLOAT_BINOPS: [BinOp; 7] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Min,
        BinOp::Max,
        BinOp::Copysign,
    ];
    const INT_BINOPS: [BinOp; 11] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Min,
        BinOp::Max,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::Shl,
        BinOp::ShrU,
        BinOp::ShrS,
    ];

    /// `f(x) = (op(x) for op in ops)`, checked on every edge value.
    fn unary_ops(make: Make, ty: Ty, ops: &[UnOp]) {
        let mut b = Builder::new(format!("unary_{ty}"));
        let x = b.param("x", ty);
        let outs: Vec<_> = ops.iter().map(|op| b.unary(*op, x)).collect();
        let f = b.finish(&outs).unwrap();
        let exe = build(make, &f);
        for a in scalars(ty) {
            check_with(&*exe, &f, &[a], &[]).0.unwrap();
        }
    }

    /// `f(x, y) = (op(x, y) for op in ops, cmp(x, y) for cmp in cmps)`,
    /// checked on every pair of edge values.
    fn binary_ops(make: Make, ty: Ty, ops: &[BinOp], cmps: &[CmpOp]) {
        let mut b = Builder::new(format!("binary_{ty}"));
        let x = b.param("x", ty);
        let y = b.param("y", ty);
        let mut outs: Vec<_> = ops.iter().map(|op| b.binary(*op, x, y)).collect();
        outs.extend(cmps.iter().map(|c| b.cmp(*c, x, y)));
        let f = b.finish(&outs).unwrap();
        let exe = build(make, &f);
        let vals = scalars(ty);
        for a in &vals {
            for c in &vals {
                check_with(&*exe, &f, &[*a, *c], &[]).0.unwrap();
            }
        }
    }

    /// The same operations on constant operands, which Cranelift folds at
    /// compile time: the folded values must be the run-time ones.
    fn folded_ops(make: Make, ty: Ty, unops: &[UnOp], binops: &[BinOp], cmps: &[CmpOp]) {
        let vals = scalars(ty);
        let mut b = Builder::new(format!("folded_{ty}"));
        let mut outs = Vec::new();
        for x in &vals {
            let cx = b.constant(ty, x.to_bits());
            for op in unops {
                outs.push(b.unary(*op, cx));
            }
            for conv in Conv::ALL.iter().filter(|c| c.types().0 == ty) {
                outs.push(b.conv(*conv, cx));
            }
            for y in &vals {
                let cy = b.constant(ty, y.to_bits());
                for op in binops {
                    outs.push(b.binary(*op, cx, cy));
                }
                for c in cmps {
                    outs.push(b.cmp(*c, cx, cy));
                }
                let t = b.bool(true);
                outs.push(b.select(t, cx, cy));
                if ty.is_float() {
                    outs.push(b.fma(cx, cy, cx));
                }
            }
        }
        let f = b.finish(&outs).unwrap();
        check(make, &f, &[], &[]).unwrap();
    }

    pub fn folded_f64(make: Make) {
        folded_ops(make, Ty::F64, &FLOAT_UNOPS, &FLOAT_BINOPS, &CmpOp::ALL);
    }
    pub fn folded_f32(make: Make) {
        folded_ops(make, Ty::F32, &FLOAT_UNOPS, &FLOAT_BINOPS, &CmpOp::ALL);
    }
    pub fn folded_i64(make: Make) {
        folded_ops(make, Ty::I64, &INT_UNOPS, &INT_BINOPS, &CmpOp::ALL);
    }
    pub fn folded_i32(make: Make) {
        folded_ops(make, Ty::I32, &INT_UNOPS, &INT_BINOPS, &CmpOp::ALL);
    }
    pub fn folded_bool(make: Make) {
        folded_ops(
            make,
            Ty::Bool,
            &[UnOp::Not],
            &[BinOp::And, BinOp::Or, BinOp::Xor],
            &[],
        );
    }

    pub fn unary_f64(make: Make) {
        unary_ops(make, Ty::F64, &FLOAT_UNOPS);
    }
    pub fn unary_f32(make: Make) {
        unary_ops(make, Ty::F32, &FLOAT_UNOPS);
    }
    pub fn unary_i64(make: Make) {
        unary_ops(make, Ty::I64, &INT_UNOPS);
    }
    pub fn unary_i32(make: Make) {
        unary_ops(make, Ty::I32, &INT_UNOPS);
    }
    pub fn unary_bool(make: Make) {
        unary_ops(make, Ty::Bool, &[UnOp::Not]);
    }
    pub fn binary_f64(make: Make) {
        binary_ops(make, Ty::F64, &FLOAT_BINOPS, &CmpOp::ALL);
    }
    pub fn binary_f32(make: Make) {
        binary_ops(make, Ty::F32, &FLOAT_BINOPS, &CmpOp::ALL);
    }
    pub fn binary_i64(make: Make) {
        binary_ops(make, Ty::I64, &INT_BINOPS, &CmpOp::ALL);
    }
    pub fn binary_i32(make: Make) {
        binary_ops(make, Ty::I32, &INT_BINOPS, &CmpOp::ALL);
    }
    pub fn binary_bool(make: Make) {
        binary_ops(make, Ty::Bool, &[BinOp::And, BinOp::Or, BinOp::Xor], &[]);
    }

    /// Min/max on ±0 and NaN, spelled out (the interpreter is the oracle,
    /// but these are the cases backends get wrong).
    pub fn min_max_signed_zero_and_nan(make: Make) {
        let mut b = Builder::new("minmax");
        let x = b.param("x", Ty::F64);
        let y = b.param("y", Ty::F64);
        let lo = b.min(x, y);
        let hi = b.max(x, y);
        let f = b.finish(&[lo, hi]).unwrap();
        let exe = build(make, &f);
        let bits = |r: &[Scalar]| -> Vec<u64> { r.iter().map(|s| s.to_bits()).collect() };
        let run = |x: f64, y: f64| {
            check_with(&*exe, &f, &[Scalar::F64(x), Scalar::F64(y)], &[])
                .0
                .unwrap()
        };
        assert_eq!(
            bits(&run(0.0, -0.0)),
            [(-0.0f64).to_bits(), 0.0f64.to_bits()]
        );
        assert_eq!(
            bits(&run(-0.0, 0.0)),
            [(-0.0f64).to_bits(), 0.0f64.to_bits()]
        );
        for (x, y) in [(f64::NAN, 1.0), (1.0, f64::NAN), (f64::NAN, f64::INFINITY)] {
            let r = run(x, y);
            assert!(r.iter().all(|s| matches!(s, Scalar::F64(v) if v.is_nan())));
        }
    }

    /// `fma(x, y, z)` on every triple of edge values of `ty`.
    fn fma_ops(make: Make, ty: Ty) {
        let mut b = Builder::new(format!("fma_{ty}"));
        let x = b.param("x", ty);
        let y = b.param("y", ty);
        let z = b.param("z", ty);
        let r = b.fma(x, y, z);
        let f = b.finish(&[r]).unwrap();
        let exe = build(make, &f);
        let vals = scalars(ty);
        for a in &vals {
            for c in &vals {
                for d in &vals {
                    check_with(&*exe, &f, &[*a, *c, *d], &[]).0.unwrap();
                }
            }
        }
    }

    pub fn fma_f64(make: Make) {
        fma_ops(make, Ty::F64);
    }
    pub fn fma_f32(make: Make) {
        fma_ops(make, Ty::F32);
    }

    /// `fma` spelled out: one rounding where a multiply then an add gives
    /// something else, IEEE's special cases, the sign of zero. Each case is
    /// checked against its known value (not only against the interpreter),
    /// with the operands as parameters and as constants (which a backend
    /// may fold at compile time).
    pub fn fma_exact_cases(make: Make) {
        let p = |e: i32| (e as f64).exp2();
        let (inf, nan, max) = (f64::INFINITY, f64::NAN, f64::MAX);
        let sub = f64::from_bits(1);
        // (a, b, c, fma(a, b, c), a·b + c rounded twice)
        let f64_cases: Vec<[f64; 5]> = vec![
            // 1 − 2⁻⁵⁴ is a tie, so the rounded product is 1.
            [1.0 + p(-27), 1.0 - p(-27), -1.0, -p(-54), 0.0],
            [1.0 - p(-27), 1.0 + p(-27), -1.0, -p(-54), 0.0],
            [1.0 + p(-30), 1.0 + p(-30), -1.0, p(-29) + p(-60), p(-29)],
            [0.1, 10.0, -1.0, 5.551115123125783e-17, 0.0],
            // No intermediate overflow: 2·MAX − MAX.
            [max, 2.0, -max, max, inf],
            [max, max, -inf, -inf, nan],
            // No intermediate underflow: the exact tiny product counts.
            [p(-600), p(-600), sub, sub, sub],
            // 1.5 and 0.5 ulps of the smallest subnormal: ties to even.
            [p(-538), p(-537), sub, 2.0 * sub, sub],
            [-p(-538), p(-537), sub, 0.0, sub],
            [-p(-538), p(-537), -0.0, -0.0, -0.0],
            // IEEE special cases.
            [0.0, inf, 1.0, nan, nan],
            [inf, -0.0, nan, nan, nan],
            [inf, 1.0, -inf, nan, nan],
            [inf, -1.0, -inf, -inf, -inf],
            [nan, 1.0, 1.0, nan, nan],
            [1.0, nan, 1.0, nan, nan],
            [1.0, 1.0, nan, nan, nan],
            [2.0, 3.0, inf, inf, inf],
            // Signs of an exact zero.
            [-0.0, 0.0, -0.0, -0.0, -0.0],
            [-0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, -0.0, 0.0, 0.0],
            [-0.0, -0.0, -0.0, 0.0, 0.0],
            [1.0, -1.0, 1.0, 0.0, 0.0],
            [-1.0, 1.0, 1.0, 0.0, 0.0],
            [1.5, 2.0, -3.0, 0.0, 0.0],
        ];
        let q = |e: i32| (e as f64).exp2() as f32;
        let (inf32, nan32, max32) = (f32::INFINITY, f32::NAN, f32::MAX);
        let f32_cases: Vec<[f32; 5]> = vec![
            [1.0 + q(-13), 1.0 - q(-13), -1.0, -q(-26), 0.0],
            // Correctly rounded in f32, not computed in f64 and rounded
            // again: the exact 1 + 2⁻²⁴ + 2⁻⁷⁰ rounds up to 1 + 2⁻²³, while
            // its f64 rounding 1 + 2⁻²⁴ is a tie that rounds to 1.
            [
                q(-24) + q(-47),
                -(1.0 - q(-23)),
                1.0 + q(-23),
                1.0 + q(-23),
                1.0,
            ],
            [max32, 2.0, -max32, max32, inf32],
            [
                q(-75),
                q(-75),
                f32::from_bits(1),
                f32::from_bits(2),
                f32::from_bits(1),
            ],
            [0.0, inf32, 1.0, nan32, nan32],
            [inf32, 1.0, -inf32, nan32, nan32],
            [nan32, 0.0, 0.0, nan32, nan32],
            [-0.0, 0.0, -0.0, -0.0, -0.0],
            [-0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, -1.0, 1.0, 0.0, 0.0],
        ];
        // The table is right: f64 / f32 `mul_add` and the separate ops.
        let same64 = |x: f64, y: f64| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits();
        let same32 = |x: f32, y: f32| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits();
        for [a, b, c, fused, twice] in &f64_cases {
            assert!(same64(a.mul_add(*b, *c), *fused), "{a:e} {b:e} {c:e}");
            assert!(same64(a * b + c, *twice), "{a:e} {b:e} {c:e}");
        }
        for [a, b, c, fused, twice] in &f32_cases {
            assert!(same32(a.mul_add(*b, *c), *fused), "{a:e} {b:e} {c:e}");
            assert!(same32(a * b + c, *twice), "{a:e} {b:e} {c:e}");
        }
        let [a, b, c, _, _] = f32_cases[1];
        assert_eq!((f64::from(a) * f64::from(b) + f64::from(c)) as f32, 1.0);
        let cases: Vec<(Ty, [Scalar; 5])> = f64_cases
            .iter()
            .map(|v| (Ty::F64, v.map(Scalar::F64)))
            .chain(f32_cases.iter().map(|v| (Ty::F32, v.map(Scalar::F32))))
            .collect();
        for ty in [Ty::F64, Ty::F32] {
            // On parameters: fma and the separate multiply-add.
            let mut bd = Builder::new(format!("fma_cases_{ty}"));
            let x = bd.param("x", ty);
            let y = bd.param("y", ty);
            let z = bd.param("z", ty);
            let fused = bd.fma(x, y, z);
            let m = bd.mul(x, y);
            let twice = bd.add(m, z);
            let f = bd.finish(&[fused, twice]).unwrap();
            let exe = build(make, &f);
            // On constants: every case in one kernel.
            let mut bc = Builder::new(format!("fma_folded_{ty}"));
            let mut outs = Vec::new();
            let mut want = Vec::new();
            for (t, [a, b, c, r, r2]) in &cases {
                if *t != ty {
                    continue;
                }
                let r_got = check_with(&*exe, &f, &[*a, *b, *c], &[]).0.unwrap();
                assert!(
                    r_got[0].same(*r) && r_got[1].same(*r2),
                    "fma({a:?}, {b:?}, {c:?}) = {:?}, mul-add {:?}; want {r:?}, {r2:?}",
                    r_got[0],
                    r_got[1]
                );
                let (ca, cb, cc) = (
                    bc.constant(ty, a.to_bits()),
                    bc.constant(ty, b.to_bits()),
                    bc.constant(ty, c.to_bits()),
                );
                outs.push(bc.fma(ca, cb, cc));
                let m = bc.mul(ca, cb);
                outs.push(bc.add(m, cc));
                want.extend([*r, *r2]);
            }
            let f = bc.finish(&outs).unwrap();
            let got = check(make, &f, &[], &[]).unwrap();
            assert!(
                got.iter().zip(&want).all(|(g, w)| g.same(*w)),
                "folded {ty}: {got:?}, want {want:?}"
            );
        }
    }

    /// `a * b + c` is two roundings: no fused multiply-add.
    pub fn no_fma_contraction(make: Make) {
        let mut b = Builder::new("mul_add");
        let x = b.param("x", Ty::F64);
        let y = b.param("y", Ty::F64);
        let z = b.param("z", Ty::F64);
        let p = b.mul(x, y);
        let s = b.add(p, z);
        let f = b.finish(&[s]).unwrap();
        let eps = (-30f64).exp2();
        let args = [
            Scalar::F64(1.0 + eps),
            Scalar::F64(1.0 - eps),
            Scalar::F64(-1.0),
        ];
        let r = check(make, &f, &args, &[]).unwrap();
        assert_eq!(
            r,
            vec![Scalar::F64(0.0)],
            "a fused multiply-add gives -2^-60"
        );
    }

    pub fn conversions(make: Make) {
        let cases: [(Ty, &[Conv]); 5] = [
            (Ty::F64, &[Conv::F64ToF32, Conv::F64ToI64, Conv::F64Bits]),
            (Ty::F32, &[Conv::F32ToF64]),
            (Ty::I64, &[Conv::I64ToF64, Conv::I64ToI32, Conv::BitsF64]),
            (Ty::I32, &[Conv::I32ToI64, Conv::U32ToI64]),
            (Ty::Bool, &[Conv::BoolToI64]),
        ];
        for (ty, convs) in cases {
            let mut b = Builder::new(format!("conv_{ty}"));
            let x = b.param("x", ty);
            let outs: Vec<_> = convs.iter().map(|c| b.conv(*c, x)).collect();
            let f = b.finish(&outs).unwrap();
            let exe = build(make, &f);
            let mut vals = scalars(ty);
            if ty == Ty::I64 {
                // Rounding of large integers to f64, and NaN / inf bit patterns.
                vals.extend(
                    [
                        (1i64 << 53) + 1,
                        (1i64 << 62) + 1,
                        -(1i64 << 53) - 3,
                        0x7FF8_0000_0000_0001,
                        0x7FF0_0000_0000_0000,
                        -0x10_0000_0000_0000,
                    ]
                    .map(Scalar::I64),
                );
            }
            if ty == Ty::F64 {
                // Double rounding traps for f64 → f32 and f32 subnormals.
                vals.extend(
                    [
                        f64::from(f32::MAX) * 1.0000001,
                        1.0 + (-24f64).exp2() + (-60f64).exp2(),
                        1.0 + (-24f64).exp2(),
                        1e-45,
                        -7e-46,
                        3.5e38,
                    ]
                    .map(Scalar::F64),
                );
            }
            for a in vals {
                check_with(&*exe, &f, &[a], &[]).0.unwrap();
            }
        }
    }

    pub fn constants(make: Make) {
        let mut b = Builder::new("constants");
        let mut outs = Vec::new();
        for v in f64_edges() {
            outs.push(b.f64(v));
        }
        for v in f32_edges() {
            outs.push(b.f32(v));
        }
        for v in i64_edges() {
            outs.push(b.i64(v));
        }
        for v in i32_edges() {
            outs.push(b.i32(v));
        }
        outs.push(b.bool(true));
        outs.push(b.bool(false));
        let f = b.finish(&outs).unwrap();
        check(make, &f, &[], &[]).unwrap();
    }

    pub fn select_every_type(make: Make) {
        for ty in [Ty::F64, Ty::F32, Ty::I64, Ty::I32, Ty::Bool] {
            let mut b = Builder::new(format!("select_{ty}"));
            let c = b.param("c", Ty::Bool);
            let x = b.param("x", ty);
            let y = b.param("y", ty);
            let s = b.select(c, x, y);
            let f = b.finish(&[s]).unwrap();
            let exe = build(make, &f);
            let vals = scalars(ty);
            for (i, x) in vals.iter().enumerate() {
                let y = vals[(i + 1) % vals.len()];
                for c in [false, true] {
                    check_with(&*exe, &f, &[Scalar::Bool(c), *x, y], &[])
                        .0
                        .unwrap();
                }
            }
        }
    }

    fn buffer_of(ty: Ty, n: usize) -> Buffer {
        match ty {
            Ty::F64 => Buffer::F64((0..n).map(|i| i as f64 * 1.25 - 3.0).collect()),
            Ty::F32 => Buffer::F32((0..n).map(|i| i as f32 * 0.75 - 2.0).collect()),
            Ty::I64 => Buffer::I64((0..n).map(|i| (i as i64 - 3) * 0x1_0000_0001).collect()),
            Ty::I32 => Buffer::I32((0..n).map(|i| (i as i32 - 3) * 0x10001).collect()),
            Ty::Bool => unreachable!("no bool buffers"),
        }
    }

    /// `out[i] = 2·inp[i]`, `io[n-1-i] += inp[i]`, returning the last element read.
    pub fn loads_and_stores_every_type(make: Make) {
        for ty in [Ty::F64, Ty::F32, Ty::I64, Ty::I32] {
            let mut b = Builder::new(format!("memory_{ty}"));
            let n = b.param("n", Ty::I64);
            let inp = b.buffer("inp", ty, Access::Read);
            let out = b.buffer("out", ty, Access::Write);
            let io = b.buffer("io", ty, Access::ReadWrite);
            let zero = b.i64(0);
            let one = b.i64(1);
            let init = b.constant(ty, 0);
            let last = b.for_(zero, n, &[init], |b, i, _| {
                let v = b.load(inp, i);
                let d = b.add(v, v);
                b.store(out, i, d);
                let nm1 = b.sub(n, one);
                let j = b.sub(nm1, i);
                let w = b.load(io, j);
                let s = b.add(w, v);
                b.store(io, j, s);
                vec![v]
            });
            let f = b.finish(&[last[0]]).unwrap();
            let exe = build(make, &f);
            for n in [0usize, 1, 5, 17] {
                let bufs = [buffer_of(ty, n), Buffer::zeros(ty, n), buffer_of(ty, n)];
                check_with(&*exe, &f, &[Scalar::I64(n as i64)], &bufs)
                    .0
                    .unwrap();
            }
        }
    }

    /// Locals of every type: zero on entry (on every call), stores and
    /// loads, small ones and large ones.
    pub fn locals(make: Make) {
        for ty in [Ty::F64, Ty::F32, Ty::I64, Ty::I32] {
            for len in [1usize, 3, 16, 40, 300] {
                let mut b = Builder::new(format!("locals_{ty}_{len}"));
                let k = b.param("k", Ty::I64);
                let x = b.param("x", ty);
                let l = b.local("l", ty, len);
                let other = b.local("other", Ty::I64, 2);
                let zero = b.i64(0);
                let n = b.i64(len as i64);
                // Sum of the zeroed array, then fill the first k and sum again.
                let init = b.constant(ty, 0);
                let s0 = b.for_(zero, n, &[init], |b, i, c| {
                    let v = b.local_load(l, i);
                    vec![b.add(c[0], v)]
                });
                b.for_(zero, k, &[], |b, i, _| {
                    b.local_store(l, i, x);
                    b.local_store(other, zero, i);
                    vec![]
                });
                let s1 = b.for_(zero, n, &[init], |b, i, c| {
                    let v = b.local_load(l, i);
                    vec![b.add(c[0], v)]
                });
                let o = b.local_load(other, zero);
                let f = b.finish(&[s0[0], s1[0], o]).unwrap();
                let exe = build(make, &f);
                let xs = scalars(ty);
                for (j, kk) in [0usize, 1, len / 2, len].into_iter().enumerate() {
                    let x = xs[(j * 5 + 2) % xs.len()];
                    let r = check_with(&*exe, &f, &[Scalar::I64(kk as i64), x], &[])
                        .0
                        .unwrap();
                    // Zero on entry, even after earlier calls stored into them.
                    assert!(r[0].same(Scalar::from_bits(ty, 0)), "{r:?}");
                }
            }
        }
    }

    /// For inside while inside for, ifs with carried values of every type,
    /// loops without carried values.
    pub fn nested_control_flow(make: Make) {
        let mut b = Builder::new("nested");
        let n = b.param("n", Ty::I64);
        let x = b.param("x", Ty::F64);
        let out = b.buffer("out", Ty::I64, Access::Write);
        let zero = b.i64(0);
        let one = b.i64(1);
        let three = b.i64(3);
        let fzero = b.f64(0.0);
        let fz32 = b.f32(0.0);
        let i0 = b.i32(0);
        let f = b.bool(false);
        let r = b.for_(zero, n, &[fzero, zero, f, fz32, i0], |b, i, c| {
            // Collatz steps of i + 1.
            let start = b.add(i, one);
            let steps = b.while_(
                &[start, zero],
                |b, w| b.cmp(CmpOp::Ne, w[0], one),
                |b, w| {
                    let bit = b.and(w[0], one);
                    let odd = b.cmp(CmpOp::Eq, bit, one);
                    let next = b.if_(
                        odd,
                        |b| {
                            let t = b.mul(w[0], three);
                            vec![b.add(t, one)]
                        },
                        |b| vec![b.shr_u(w[0], one)],
                    );
                    vec![next[0], b.add(w[1], one)]
                },
            );
            b.store(out, i, steps[1]);
            // An inner for over 0..i with an if yielding several types.
            let inner = b.for_(zero, i, &[c[0], c[2], c[3], c[4]], |b, j, d| {
                let jf = b.conv(Conv::I64ToF64, j);
                let big = b.cmp(CmpOp::Gt, jf, x);
                b.if_(
                    big,
                    |b| {
                        let h = b.f64(0.5);
                        let y = b.mul(jf, h);
                        let t = b.bool(true);
                        let s = b.f32(1.5);
                        let s = b.add(d[2], s);
                        let one32 = b.i32(1);
                        let k = b.add(d[3], one32);
                        vec![b.add(d[0], y), b.binary(BinOp::Xor, d[1], t), s, k]
                    },
                    |b| {
                        let y = b.sub(d[0], jf);
                        vec![y, d[1], d[2], d[3]]
                    },
                )
            });
            // An if with no values and an empty for.
            b.if_(inner[1], |_| vec![], |_| vec![]);
            b.for_(i, i, &[], |_, _, _| vec![]);
            let total = b.add(c[1], steps[1]);
            vec![inner[0], total, inner[1], inner[2], inner[3]]
        });
        let f = b.finish(&r).unwrap();
        let exe = build(make, &f);
        for (n, x) in [
            (0, 0.0),
            (1, 0.0),
            (7, 2.5),
            (20, -1.0),
            (20, f64::NAN),
            (33, 10.0),
        ] {
            let bufs = [Buffer::I64(vec![-1; 40])];
            check_with(&*exe, &f, &[Scalar::I64(n), Scalar::F64(x)], &bufs)
                .0
                .unwrap();
        }
    }

    /// Loads and ifs inside a while condition region: the index of the
    /// first non-positive element (reading one past the end is an error).
    pub fn memory_in_conditions(make: Make) {
        let mut b = Builder::new("first_nonpositive");
        let guard = b.param("guard", Ty::Bool);
        let x = b.buffer("x", Ty::F64, Access::Read);
        let seen = b.buffer("seen", Ty::I32, Access::Write);
        let zero = b.i64(0);
        let r = b.while_(
            &[zero],
            |b, c| {
                let n = b.i64(5);
                let inside = b.lt(c[0], n);
                let unguarded = b.unary(UnOp::Not, guard);
                let go_on = b.binary(BinOp::Or, inside, unguarded);
                let pos = b.if_(
                    go_on,
                    |b| {
                        let v = b.load(x, c[0]);
                        let z = b.f64(0.0);
                        vec![b.cmp(CmpOp::Gt, v, z)]
                    },
                    |b| vec![b.bool(false)],
                );
                pos[0]
            },
            |b, c| {
                let one = b.i64(1);
                let one32 = b.i32(1);
                b.store(seen, c[0], one32);
                vec![b.add(c[0], one)]
            },
        );
        let f = b.finish(&[r[0]]).unwrap();
        let exe = build(make, &f);
        for xs in [
            vec![1.0, 2.0, -1.0, 4.0, 5.0],
            vec![1.0, 2.0, 3.0, 4.0, 5.0],
            vec![0.0, 2.0, 3.0, 4.0, 5.0],
            vec![f64::NAN, 2.0, 3.0, 4.0, 5.0],
        ] {
            for guard in [true, false] {
                let bufs = [Buffer::F64(xs.clone()), Buffer::I32(vec![0; 5])];
                let _ = check_with(&*exe, &f, &[Scalar::Bool(guard)], &bufs);
            }
        }
        let bufs = [Buffer::F64(vec![1.0; 5]), Buffer::I32(vec![0; 5])];
        let (r, _) = check_with(&*exe, &f, &[Scalar::Bool(false)], &bufs);
        expect_oob(r, "x", 5, 5);
    }

    /// Loops that run zero times yield their initial values.
    pub fn zero_trip_loops(make: Make) {
        let mut b = Builder::new("zero_trip");
        let lo = b.param("lo", Ty::I64);
        let hi = b.param("hi", Ty::I64);
        let x = b.param("x", Ty::F64);
        let t = b.bool(true);
        let r = b.for_(lo, hi, &[x, t, lo], |b, i, c| {
            let one = b.f64(1.0);
            let nt = b.unary(UnOp::Not, c[1]);
            vec![b.add(c[0], one), nt, i]
        });
        let w = b.while_(
            &[r[0], r[2]],
            |b, c| b.cmp(CmpOp::Lt, c[1], hi),
            |b, c| {
                let one = b.i64(1);
                let two = b.f64(2.0);
                vec![b.mul(c[0], two), b.add(c[1], one)]
            },
        );
        let f = b.finish(&[r[0], r[1], r[2], w[0], w[1]]).unwrap();
        let exe = build(make, &f);
        for (lo, hi) in [
            (0, 0),
            (5, 5),
            (5, 4),
            (3, -3),
            (i64::MAX, i64::MIN),
            (i64::MAX - 2, i64::MAX),
            (-2, 3),
        ] {
            check_with(
                &*exe,
                &f,
                &[Scalar::I64(lo), Scalar::I64(hi), Scalar::F64(0.25)],
                &[],
            )
            .0
            .unwrap();
        }
    }

    /// Philox and uniform draws equal `crux_ir::rng` (and the interpreter).
    pub fn philox(make: Make) {
        let mut b = Builder::new("philox");
        let seed = b.param("seed", Ty::I64);
        let stream = b.param("stream", Ty::I64);
        let counter = b.param("counter", Ty::I64);
        let w = b.philox(seed, stream, counter);
        let u = b.uniform(seed, stream, counter);
        let f = b.finish(&[w[0], w[1], w[2], w[3], u]).unwrap();
        let exe = build(make, &f);
        for (s, st, c) in [
            (0u64, 0u64, 0u64),
            (1, 2, 3),
            (u64::MAX, u64::MAX, u64::MAX),
            (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 42),
            (42, 7, 1 << 40),
            (0xDEAD_BEEF, 0, u32::MAX as u64),
        ] {
            let args = [
                Scalar::I64(s as i64),
                Scalar::I64(st as i64),
                Scalar::I64(c as i64),
            ];
            let r = check_with(&*exe, &f, &args, &[]).0.unwrap();
            let want = crux_ir::rng::words(s, st, c);
            for k in 0..4 {
                assert_eq!(r[k], Scalar::I64(want[k] as i64));
            }
            assert_eq!(r[4], Scalar::F64(crux_ir::rng::uniform(s, st, c)));
        }
    }

    fn expect_oob(r: Result<Vec<Scalar>, BackendError>, name: &str, index: i64, len: usize) {
        match r {
            Err(BackendError::Kernel(KernelError::OutOfBounds {
                name: n,
                index: i,
                len: l,
                ..
            })) => assert_eq!((n.as_str(), i, l), (name, index, len)),
            other => panic!("expected out of bounds, got {other:?}"),
        }
    }

    /// Out-of-range loads and stores are errors, after the stores made
    /// before them.
    pub fn out_of_bounds(make: Make) {
        let mut b = Builder::new("oob");
        let k = b.param("k", Ty::I64);
        let which = b.param("which", Ty::I64);
        let x = b.buffer("x", Ty::F64, Access::ReadWrite);
        let y = b.buffer("y", Ty::I32, Access::Read);
        let l = b.local("l", Ty::F32, 4);
        let zero = b.i64(0);
        let one = b.i64(1);
        let two = b.i64(2);
        let three = b.i64(3);
        let v = b.f64(9.0);
        // Stores before the faulting access are visible.
        b.store(x, zero, v);
        let is = |b: &mut Builder, c| b.cmp(CmpOp::Eq, which, c);
        let c0 = is(&mut b, zero);
        let r0 = b.if_(c0, |b| vec![b.load(x, k)], |b| vec![b.f64(0.0)]);
        let c1 = is(&mut b, one);
        b.if_(
            c1,
            |b| {
                let w = b.f64(1.0);
                b.store(x, k, w);
                vec![]
            },
            |_| vec![],
        );
        let c2 = is(&mut b, two);
        let r2 = b.if_(c2, |b| vec![b.load(y, k)], |b| vec![b.i32(0)]);
        let c3 = is(&mut b, three);
        let r3 = b.if_(
            c3,
            |b| {
                let s = b.f32(2.0);
                b.local_store(l, k, s);
                vec![b.local_load(l, k)]
            },
            |b| vec![b.f32(0.0)],
        );
        let f = b.finish(&[r0[0], r2[0], r3[0]]).unwrap();
        let exe = build(make, &f);
        let bufs = [Buffer::F64(vec![0.0; 3]), Buffer::I32(vec![5; 2])];
        for which in 0..4 {
            for k in [0, 1, 2, 3, 4, -1, i64::MIN, i64::MAX] {
                let args = [Scalar::I64(k), Scalar::I64(which)];
                let (r, after) = check_with(&*exe, &f, &args, &bufs);
                let len = [3, 3, 2, 4][which as usize];
                let name = ["x", "x", "y", "l"][which as usize];
                if k < 0 || k >= len as i64 {
                    expect_oob(r, name, k, len);
                    assert_eq!(after[0], Buffer::F64(vec![9.0, 0.0, 0.0]));
                } else {
                    r.unwrap();
                }
            }
        }
        // Empty buffers: every index is out of range.
        let empty = [Buffer::F64(vec![]), Buffer::I32(vec![])];
        let (r, _) = check_with(&*exe, &f, &[Scalar::I64(0), Scalar::I64(2)], &empty);
        expect_oob(r, "x", 0, 0);
        // An empty local array.
        let mut b = Builder::new("empty_local");
        let k = b.param("k", Ty::I64);
        let l = b.local("nothing", Ty::I32, 0);
        let v = b.local_load(l, k);
        let f = b.finish(&[v]).unwrap();
        let exe = build(make, &f);
        for k in [0, 1, -1] {
            let (r, _) = check_with(&*exe, &f, &[Scalar::I64(k)], &[]);
            expect_oob(r, "nothing", k, 0);
        }
    }

    /// Wrong argument counts or types, wrong buffer counts or types.
    pub fn argument_mismatch(make: Make) {
        let mut b = Builder::new("args");
        let n = b.param("n", Ty::I64);
        let x = b.param("x", Ty::F32);
        let buf = b.buffer("buf", Ty::F64, Access::Read);
        let i = b.i64(0);
        let v = b.load(buf, i);
        let f = b.finish(&[n, x, v]).unwrap();
        let exe = build(make, &f);
        let good_args = [Scalar::I64(1), Scalar::F32(2.0)];
        let good_bufs = [Buffer::F64(vec![3.0])];
        check_with(&*exe, &f, &good_args, &good_bufs).0.unwrap();
        let bad_args: [&[Scalar]; 4] = [
            &[],
            &[Scalar::I64(1)],
            &[Scalar::I64(1), Scalar::F64(2.0)],
            &[Scalar::I64(1), Scalar::F32(2.0), Scalar::F32(2.0)],
        ];
        for args in bad_args {
            let (r, _) = check_with(&*exe, &f, args, &good_bufs);
            assert!(matches!(
                r,
                Err(BackendError::Kernel(KernelError::Arguments { .. }))
            ));
        }
        let bad_bufs: [Vec<Buffer>; 3] = [
            vec![],
            vec![Buffer::F32(vec![3.0])],
            vec![Buffer::F64(vec![3.0]), Buffer::F64(vec![3.0])],
        ];
        for bufs in bad_bufs {
            let (r, _) = check_with(&*exe, &f, &good_args, &bufs);
            assert!(matches!(
                r,
                Err(BackendError::Kernel(KernelError::Arguments { .. }))
            ));
        }
    }

    /// Functions without parameters, buffers or returns.
    pub fn trivial_functions(make: Make) {
        let b = Builder::new("nothing");
        let f = b.finish(&[]).unwrap();
        assert_eq!(check(make, &f, &[], &[]).unwrap(), vec![]);
        let mut b = Builder::new("identity");
        let ps: Vec<_> = [Ty::F64, Ty::F32, Ty::I64, Ty::I32, Ty::Bool]
            .iter()
            .enumerate()
            .map(|(i, t)| b.param(format!("p{i}"), *t))
            .collect();
        let mut rets = ps.clone();
        rets.reverse();
        rets.extend(&ps);
        let f = b.finish(&rets).unwrap();
        let exe = build(make, &f);
        for k in 0..20 {
            let args: Vec<Scalar> = [Ty::F64, Ty::F32, Ty::I64, Ty::I32, Ty::Bool]
                .iter()
                .map(|t| {
                    let v = scalars(*t);
                    v[k % v.len()]
                })
                .collect();
            check_with(&*exe, &f, &args, &[]).0.unwrap();
        }
    }

    /// More arguments, buffers and returns than fit in registers (or in
    /// any small fixed-size array of the call path).
    pub fn many_arguments(make: Make) {
        let mut b = Builder::new("many");
        let tys = [Ty::F64, Ty::F32, Ty::I64, Ty::I32, Ty::Bool];
        let ps: Vec<_> = (0..23)
            .map(|i| b.param(format!("p{i}"), tys[i % 5]))
            .collect();
        let bufs: Vec<_> = (0..19)
            .map(|j| b.buffer(format!("b{j}"), tys[j % 4], Access::ReadWrite))
            .collect();
        let zero = b.i64(0);
        for (j, buf) in bufs.iter().enumerate() {
            // b_j[0] = b_j[0] + p (the first parameter of the buffer's type).
            let v = b.load(*buf, zero);
            let s = b.add(v, ps[j % 4]);
            b.store(*buf, zero, s);
        }
        let mut rets = ps.clone();
        rets.extend(ps.iter().rev());
        let f = b.finish(&rets).unwrap();
        let exe = build(make, &f);
        let args: Vec<Scalar> = (0..23)
            .map(|i| {
                let v = scalars(tys[i % 5]);
                v[(i * 7) % v.len()]
            })
            .collect();
        let bufs: Vec<Buffer> = (0..19).map(|j| buffer_of(tys[j % 4], 1 + j)).collect();
        check_with(&*exe, &f, &args, &bufs).0.unwrap();
        let (r, _) = check_with(&*exe, &f, &args[1..], &bufs);
        assert!(matches!(
            r,
            Err(BackendError::Kernel(KernelError::Arguments { .. }))
        ));
    }

    /// Awkward f64 contents for matrices: mixed magnitudes and signs,
    /// with signed zeros, infinities, NaN and subnormals sprinkled in when
    /// `specials`.
    fn matrix_values(n: usize, seed: u64, specials: bool) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let v = (2.0 * u - 1.0) * 10f64.powi((x % 7) as i32 - 3);
                match (specials, i % 37) {
                    (true, 5) => -0.0,
                    (true, 11) => f64::INFINITY,
                    (true, 17) => 5e-324,
                    (true, 23) => f64::NAN,
                    (true, 29) => 0.0,
                    _ => v,
                }
            })
            .collect()
    }

    /// A strided view: (offset, row stride, column stride).
    type View = (u64, u64, u64);

    /// One product `out = a · b` in a kernel of its own: `a` and `b` in
    /// read-only buffers, `out` in a read-write buffer whose other
    /// elements must stay as they were.
    fn gemm_kernel((m, n, k): (u64, u64, u64), a: View, b_: View, o: View) -> Function {
        let mut b = Builder::new("gemm");
        let ba = b.buffer("a", Ty::F64, Access::Read);
        let bb = b.buffer("b", Ty::F64, Access::Read);
        let bo = b.buffer("out", Ty::F64, Access::ReadWrite);
        let view = |buf, (off, rs, cs): View| MatRef { buf, off, rs, cs };
        b.gemm((m, n, k), view(ba, a), view(bb, b_), view(bo, o));
        b.finish(&[]).unwrap()
    }

    /// Matrix products of many shapes and layouts (row-major, transposed,
    /// broadcast rows or columns, padded and column-major outputs), with
    /// and without special values: every entry's chain of fused
    /// multiply-adds, bit for bit, and nothing else written.
    pub fn gemm_products(make: Make) {
        let shapes = [
            (1, 1, 1),
            (101, 32, 32),
            (32, 32, 101),
            (1, 100, 100),
            (100, 1, 100),
            (7, 9, 5),
            (13, 17, 3),
            (2, 70, 4),
        ];
        let mut seed = 1;
        for &(m, n, k) in &shapes {
            for layout in 0..12u64 {
                let a = match layout % 3 {
                    0 => (2, k + 1, 1),
                    1 => (0, 1, m),
                    _ => (1, 0, 1),
                };
                let bv = match layout / 3 % 2 {
                    0 => (0, n, 1),
                    _ => (3, 1, k),
                };
                let o = match layout / 6 {
                    0 => (1, n + 2, 1),
                    _ => (0, 1, m),
                };
                let len = |(off, rs, cs): View, r: u64, c: u64| {
                    (off + (r - 1) * rs + (c - 1) * cs + 1) as usize
                };
                let f = gemm_kernel((m, n, k), a, bv, o);
                let exe = build(make, &f);
                for specials in [false, true] {
                    let bufs = [
                        Buffer::F64(matrix_values(len(a, m, k), seed, specials)),
                        Buffer::F64(matrix_values(len(bv, k, n), seed + 1, specials)),
                        Buffer::F64(vec![-7.25; len(o, m, n) + 2]),
                    ];
                    seed += 2;
                    check_with(&*exe, &f, &[], &bufs).0.unwrap();
                }
            }
        }
    }

    /// A product whose operand and output share one read-write buffer
    /// (disjoint ranges), computed in a loop from values stored by the
    /// previous iteration: the product sees every store before it.
    pub fn gemm_in_a_loop(make: Make) {
        let (m, n, k) = (5u64, 6u64, 4u64);
        let mut b = Builder::new("gemm_loop");
        let w = b.buffer("w", Ty::F64, Access::Read);
        let s = b.buffer("s", Ty::F64, Access::ReadWrite);
        let (lo, hi) = (b.i64(0), b.i64(3));
        b.for_(lo, hi, &[], |b, i, _| {
            // s[0] += i; s[40..70] = s[0..20] · w (5×4 · 4×6); s[7] = s[45].
            let at = b.i64(0);
            let x = b.load(s, at);
            let fi = b.conv(Conv::I64ToF64, i);
            let y = b.add(x, fi);
            b.store(s, at, y);
            b.gemm(
                (m, n, k),
                MatRef::row_major(s, 0, k),
                MatRef::row_major(w, 0, n),
                MatRef::row_major(s, 40, n),
            );
            let r = b.i64(45);
            let v = b.load(s, r);
            let t = b.i64(7);
            b.store(s, t, v);
            vec![]
        });
        let f = b.finish(&[]).unwrap();
        let exe = build(make, &f);
        let bufs = [
            Buffer::F64(matrix_values(24, 3, false)),
            Buffer::F64(matrix_values(70, 4, false)),
        ];
        check_with(&*exe, &f, &[], &bufs).0.unwrap();
    }

    /// A view past its buffer's end: the error names the first of `a`,
    /// `b`, `out` out of range, with its last index, and nothing is stored.
    pub fn gemm_out_of_bounds(make: Make) {
        let f = gemm_kernel((3, 4, 5), (0, 5, 1), (0, 4, 1), (0, 4, 1));
        let exe = build(make, &f);
        let (la, lb, lo) = (15, 20, 12);
        for (da, db, d_o, name, index, len) in [
            (1, 0, 0, "a", 14, 14),
            (1, 1, 1, "a", 14, 14),
            (0, 1, 1, "b", 19, 19),
            (0, 0, 1, "out", 11, 11),
        ] {
            let bufs = [
                Buffer::F64(matrix_values(la - da, 1, false)),
                Buffer::F64(matrix_values(lb - db, 2, false)),
                Buffer::F64(vec![1.5; lo - d_o]),
            ];
            let (r, after) = check_with(&*exe, &f, &[], &bufs);
            expect_oob(r, name, index, len);
            assert_eq!(after[2], bufs[2], "nothing stored");
        }
    }

    /// A dot product and axpy through the builder's vector helpers.
    pub fn vector_helpers(make: Make) {
        let mut b = Builder::new("vec");
        let n = b.param("n", Ty::I64);
        let alpha = b.param("alpha", Ty::F64);
        let x = b.buffer("x", Ty::F64, Access::Read);
        let y = b.buffer("y", Ty::F64, Access::ReadWrite);
        let zero = b.i64(0);
        let d = b.dot(x, zero, y, zero, n);
        b.axpy(alpha, x, zero, y, zero, n);
        let e = b.dot(x, zero, y, zero, n);
        let f = b.finish(&[d, e]).unwrap();
        let exe = build(make, &f);
        let xs: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let ys: Vec<f64> = (0..50).map(|i| (i as f64 * 1.1).cos() * 1e3).collect();
        for n in [0, 1, 49, 50] {
            let bufs = [Buffer::F64(xs.clone()), Buffer::F64(ys.clone())];
            check_with(&*exe, &f, &[Scalar::I64(n), Scalar::F64(0.1)], &bufs)
                .0
                .unwrap();
        }
        let bufs = [Buffer::F64(xs.clone()), Buffer::F64(ys.clone())];
        let (r, _) = check_with(&*exe, &f, &[Scalar::I64(51), Scalar::F64(0.1)], &bufs);
        expect_oob(r, "x", 50, 50);
    }
}

/// Instantiates every conformance test for one backend: `$make` turns a
/// `&Function` into a `Result<Box<dyn Executable>, BackendError>`.
macro_rules! conformance_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            fn make(f: &Function) -> Result<Box<dyn Executable>, BackendError> {
                let m: fn(&Function) -> Result<Box<dyn Executable>, BackendError> = $make;
                m(f)
            }

            conformance_suite!(@tests make;
                unary_f64, unary_f32, unary_i64, unary_i32, unary_bool,
                binary_f64, binary_f32, binary_i64, binary_i32, binary_bool,
                folded_f64, folded_f32, folded_i64, folded_i32, folded_bool,
                fma_f64, fma_f32, fma_exact_cases,
                min_max_signed_zero_and_nan, no_fma_contraction, conversions, constants,
                select_every_type, loads_and_stores_every_type, locals,
                nested_control_flow, memory_in_conditions, zero_trip_loops, philox, out_of_bounds,
                argument_mismatch, trivial_functions, many_arguments, vector_helpers,
                gemm_products, gemm_in_a_loop, gemm_out_of_bounds);
        }
    };
    (@tests $make:ident; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                cases::$test($make as Make);
            }
        )*
    };
}

/// The reference interpreter with a generous fuel budget.
fn interpreter(f: &Function) -> Interpreter {
    Interpreter {
        function: f.clone(),
        fuel: 1 << 32,
    }
}

/// The Cranelift backend with its default options.
fn cranelift(f: &Function) -> Result<ClifKernel, BackendError> {
    clif_compile(f, &ClifOptions::default())
}

// One line per backend.
conformance_suite!(interp, |f| Ok(Box::new(interpreter(f))));
conformance_suite!(clif, |f| Ok(Box::new(cranelift(f)?)));
conformance_suite!(clif_fast, |f| Ok(Box::new(clif_compile(
    f,
    &ClifOptions::default().fast_compile()
)?)));
// Cranelift's `fma` without FMA instructions (a call to a correctly rounded
// `fma` / `fmaf`, what x86-64 hosts without FMA get): the fma cases only.
mod clif_fma_call {
    use super::*;

    fn make(f: &Function) -> Result<Box<dyn Executable>, BackendError> {
        let opts = ClifOptions::default().without_fma_instructions();
        Ok(Box::new(clif_compile(f, &opts)?))
    }

    conformance_suite!(@tests make; fma_f64, fma_f32, fma_exact_cases, no_fma_contraction);
}
// Every matrix-product routine the CPU has, through compiled code (the
// default is the best one): the gemm cases only.
macro_rules! gemm_isa_suite {
    ($name:ident, $isa:expr) => {
        mod $name {
            use super::*;
            use crux_compiler::backend::gemm::Isa;

            fn make(f: &Function) -> Result<Box<dyn Executable>, BackendError> {
                if !$isa.available() {
                    // This CPU lacks it: the interpreter stands in, so the
                    // case still runs (and the skip is visible here).
                    eprintln!("{:?} is not available on this CPU; not tested", $isa);
                    return Ok(Box::new(interpreter(f)));
                }
                let opts = ClifOptions::default().gemm_isa($isa);
                Ok(Box::new(clif_compile(f, &opts)?))
            }

            conformance_suite!(@tests make; gemm_products, gemm_in_a_loop, gemm_out_of_bounds);
        }
    };
}
gemm_isa_suite!(clif_gemm_avx512, Isa::Avx512);
gemm_isa_suite!(clif_gemm_avx2, Isa::Avx2);
gemm_isa_suite!(clif_gemm_portable, Isa::Portable);
// PTX: every conformance kernel is emitted and assembled by ptxas for sm_90
// (skipped without ptxas unless CRUX_REQUIRE_PTXAS=1); no GPU here, so the
// calls run on the interpreter. GPU execution is the CUDA executor's suite.
conformance_suite!(ptx_ptxas, |f| {
    use crux_compiler::backend::{ptx, ptxas};
    let code = ptx::emit(f, &ptx::PtxOptions::default())?;
    if ptxas::check(&code, "sm_90")?.is_none() && ptxas::required() {
        panic!("ptxas not found and {}=1", ptxas::REQUIRE_ENV);
    }
    Ok(Box::new(interpreter(f)))
});
