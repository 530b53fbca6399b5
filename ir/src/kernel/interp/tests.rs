//! Interpreter semantics: loops, branches, memory, fuel, Philox.

use super::super::{Access, Builder, CmpOp, KernelError, Ty};
use super::*;

#[test]
fn loops_and_branches() {
    // Sum of the even entries of x, and count of iterations of a while loop
    // halving n until it is 1.
    let mut b = Builder::new("evens");
    let n = b.param("n", Ty::I64);
    let x = b.buffer("x", Ty::F64, Access::Read);
    let zero = b.i64(0);
    let one = b.i64(1);
    let init = b.f64(0.0);
    let s = b.for_(zero, n, &[init], |b, i, c| {
        let bit = b.and(i, one);
        let even = b.cmp(CmpOp::Eq, bit, zero);
        let v = b.load(x, i);
        b.if_(even, |b| vec![b.add(c[0], v)], |_| vec![c[0]])
    });
    let k0 = b.i64(0);
    let r = b.while_(
        &[n, k0],
        |b, c| b.cmp(CmpOp::Gt, c[0], one),
        |b, c| {
            let h = b.shr_u(c[0], one);
            vec![h, b.add(c[1], one)]
        },
    );
    let f = b.finish(&[s[0], r[1]]).unwrap();
    let mut bufs = [Buffer::F64(vec![
        1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0,
    ])];
    let out = run(&f, &[Scalar::I64(8)], &mut bufs, 10_000).unwrap();
    assert_eq!(out, vec![Scalar::F64(10.0), Scalar::I64(3)]);
}

#[test]
fn runaway_loops_run_out_of_fuel() {
    let mut b = Builder::new("spin");
    let t = b.bool(true);
    let r = b.while_(&[t], |_, c| c[0], |_, c| vec![c[0]]);
    let f = b.finish(&r).unwrap();
    assert!(matches!(
        run(&f, &[], &mut [], 1000),
        Err(KernelError::OutOfFuel(_))
    ));
}

#[test]
fn out_of_bounds_is_an_error() {
    let mut b = Builder::new("oob");
    let x = b.buffer("x", Ty::F64, Access::ReadWrite);
    let i = b.i64(3);
    let v = b.f64(1.0);
    b.store(x, i, v);
    let f = b.finish(&[]).unwrap();
    let mut bufs = [Buffer::F64(vec![0.0; 3])];
    assert!(matches!(
        run(&f, &[], &mut bufs, 100),
        Err(KernelError::OutOfBounds {
            index: 3,
            len: 3,
            ..
        })
    ));
    let mut wrong = [Buffer::I64(vec![0; 3])];
    assert!(matches!(
        run(&f, &[], &mut wrong, 100),
        Err(KernelError::Arguments { .. })
    ));
}

#[test]
fn philox_matches_the_reference_and_known_answers() {
    let mut b = Builder::new("philox");
    let seed = b.param("seed", Ty::I64);
    let stream = b.param("stream", Ty::I64);
    let counter = b.param("counter", Ty::I64);
    let w = b.philox(seed, stream, counter);
    let u = b.uniform(seed, stream, counter);
    let f = b.finish(&[w[0], w[1], w[2], w[3], u]).unwrap();
    let cases: [(u64, u64, u64); 4] = [
        (0, 0, 0),
        (u64::MAX, u64::MAX, u64::MAX),
        (0x299f31d0a4093822, 0x0370734413198a2e, 0x85a308d3243f6a88),
        (42, 7, 123456789),
    ];
    for (seed, stream, counter) in cases {
        let out = run(
            &f,
            &[
                Scalar::I64(seed as i64),
                Scalar::I64(stream as i64),
                Scalar::I64(counter as i64),
            ],
            &mut [],
            100_000,
        )
        .unwrap();
        let expect = crate::rng::words(seed, stream, counter);
        for k in 0..4 {
            assert_eq!(out[k], Scalar::I64(expect[k] as i64));
        }
        assert_eq!(
            out[4],
            Scalar::F64(crate::rng::uniform(seed, stream, counter))
        );
    }
    // The published vector for key (a4093822, 299f31d0) and counter (243f6a88, 85a308d3, 13198a2e, 03707344).
    let out = run(
        &f,
        &[
            Scalar::I64(0x299f31d0a4093822),
            Scalar::I64(0x0370734413198a2e),
            Scalar::I64(0x85a308d3243f6a88u64 as i64),
        ],
        &mut [],
        100_000,
    )
    .unwrap();
    assert_eq!(out[0], Scalar::I64(0xd16cfe09));
}

#[test]
fn float_semantics() {
    let mut b = Builder::new("fsem");
    let a = b.param("a", Ty::F64);
    let c = b.param("c", Ty::F64);
    let mn = b.min(a, c);
    let mx = b.max(a, c);
    let i = b.conv(super::super::Conv::F64ToI64, a);
    let near = b.unary(super::super::UnOp::Nearest, a);
    let f = b.finish(&[mn, mx, i, near]).unwrap();
    let r = |x: f64, y: f64| run(&f, &[Scalar::F64(x), Scalar::F64(y)], &mut [], 100).unwrap();
    assert_eq!(r(0.0, -0.0)[0].to_bits(), (-0.0f64).to_bits());
    assert_eq!(r(-0.0, 0.0)[1].to_bits(), 0.0f64.to_bits());
    assert!(matches!(r(f64::NAN, 1.0)[0], Scalar::F64(v) if v.is_nan()));
    assert_eq!(r(f64::NAN, 1.0)[2], Scalar::I64(0));
    assert_eq!(r(1e300, 1.0)[2], Scalar::I64(i64::MAX));
    assert_eq!(r(2.5, 0.0)[3], Scalar::F64(2.0));
}

/// `fma` rounds once: `(1 + 2⁻²⁷)(1 − 2⁻²⁷) − 1` is `−2⁻⁵⁴` fused and `0`
/// as a multiply then an add (`1 − 2⁻⁵⁴` is a tie, rounded to 1); f32
/// likewise with 2⁻¹³ (`−2⁻²⁶`).
#[test]
fn fma_rounds_once() {
    for ty in [Ty::F64, Ty::F32] {
        let mut b = Builder::new("fma");
        let x = b.param("x", ty);
        let y = b.param("y", ty);
        let z = b.param("z", ty);
        let fused = b.fma(x, y, z);
        let p = b.mul(x, y);
        let separate = b.add(p, z);
        let f = b.finish(&[fused, separate]).unwrap();
        let (args, want) = if ty == Ty::F64 {
            let e = (-27f64).exp2();
            (
                [1.0 + e, 1.0 - e, -1.0].map(Scalar::F64),
                [Scalar::F64(-(-54f64).exp2()), Scalar::F64(0.0)],
            )
        } else {
            let e = (-13f32).exp2();
            (
                [1.0 + e, 1.0 - e, -1.0].map(Scalar::F32),
                [Scalar::F32(-(-26f32).exp2()), Scalar::F32(0.0)],
            )
        };
        assert_eq!(run(&f, &args, &mut [], 100).unwrap(), want);
    }
}

#[test]
fn fma_is_floats_of_one_type() {
    let mut b = Builder::new("bad");
    let x = b.param("x", Ty::I64);
    let r = b.fma(x, x, x);
    assert!(matches!(b.finish(&[r]), Err(KernelError::Invalid { msg, .. }) if msg.contains("fma")));
    let mut b = Builder::new("mixed");
    let x = b.param("x", Ty::F64);
    let y = b.param("y", Ty::F32);
    let r = b.fma(x, x, y);
    assert!(matches!(b.finish(&[r]), Err(KernelError::Invalid { msg, .. }) if msg.contains("fma")));
}
