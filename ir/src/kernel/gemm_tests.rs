//! The contract of [`InstKind::Gemm`](super::InstKind::Gemm), one clause per
//! test: semantics, rounding, bounds, fuel, verifier rules, [`MatRef`]
//! helpers and the text format.

use proptest::prelude::*;

use super::text::{parse, print};
use super::{
    run, Access, Buffer, BufferId, Builder, Function, KernelError, MatRef, Ty, MAX_GEMM_DIM,
};

const A: BufferId = BufferId(0);
const B: BufferId = BufferId(1);
const O: BufferId = BufferId(2);

/// `lhs`, `rhs` (read) and `res` (write), all f64: buffers 0, 1, 2.
const STD: [(&str, Ty, Access); 3] = [
    ("lhs", Ty::F64, Access::Read),
    ("rhs", Ty::F64, Access::Read),
    ("res", Ty::F64, Access::Write),
];

/// Fills output elements that the gemm must not touch.
const SENTINEL: f64 = -7.25;

/// A kernel whose body is one gemm over the buffers `bufs`.
fn kernel(
    bufs: &[(&str, Ty, Access)],
    dims: (u64, u64, u64),
    a: MatRef,
    b: MatRef,
    out: MatRef,
) -> Result<Function, KernelError> {
    let mut bld = Builder::new("mm");
    for &(name, ty, access) in bufs {
        bld.buffer(name, ty, access);
    }
    bld.gemm(dims, a, b, out);
    bld.finish(&[])
}

/// Row-major `lhs`, `rhs` and `res`, no offsets or padding.
fn dense(m: u64, n: u64, k: u64) -> Function {
    let a = MatRef::row_major(A, 0, k);
    let b = MatRef::row_major(B, 0, n);
    let out = MatRef::row_major(O, 0, n);
    kernel(&STD, (m, n, k), a, b, out).unwrap()
}

/// The dense product of row-major `a` (`m × k`) and `b` (`k × n`).
fn product(m: u64, n: u64, k: u64, a: &[f64], b: &[f64]) -> Vec<f64> {
    let f = dense(m, n, k);
    let mut bufs = [
        Buffer::F64(a.to_vec()),
        Buffer::F64(b.to_vec()),
        Buffer::F64(vec![SENTINEL; (m * n) as usize]),
    ];
    run(&f, &[], &mut bufs, 1_000_000).unwrap();
    bufs[2].as_f64().unwrap().to_vec()
}

/// The specification of one entry: `K` fused multiply-adds, ascending, from `+0.0`.
fn reference(k: u64, a: &MatRef, av: &[f64], b: &MatRef, bv: &[f64], i: u64, j: u64) -> f64 {
    let mut acc = 0.0f64;
    for l in 0..k {
        acc = av[a.at(i, l) as usize].mul_add(bv[b.at(l, j) as usize], acc);
    }
    acc
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A deterministic generator of floats with varied signs, mantissas and exponents.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        let scale = (((self.0 >> 3) % 9) as f64 - 4.0).exp2();
        (2.0 * unit - 1.0) * scale
    }
    fn vec(&mut self, len: u64) -> Vec<f64> {
        (0..len).map(|_| self.next()).collect()
    }
}

/// The error of a run that must fail out of bounds: `(name, index, len)`.
fn out_of_bounds(f: &Function, bufs: &mut [Buffer]) -> (String, i64, usize) {
    match run(f, &[], bufs, 1_000_000) {
        Err(KernelError::OutOfBounds {
            name, index, len, ..
        }) => (name, index, len),
        other => panic!("expected OutOfBounds, got {other:?}"),
    }
}

/// The message of a kernel the verifier must reject.
fn invalid(r: Result<Function, KernelError>) -> String {
    match r {
        Err(KernelError::Invalid { msg, .. }) => msg,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn assert_invalid(r: Result<Function, KernelError>, needle: &str) {
    let msg = invalid(r);
    assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`");
}

// ------------------------------------------------------------- semantics

/// Every entry equals the reference chain bit for bit, whatever the
/// operands' layout (row-major, transposed, broadcast); the output's
/// padding and the operands are left as they were.
#[test]
fn gemm_entries_are_the_reference_chain_for_every_layout() {
    let mut rng = Lcg(0x5eed);
    for (m, n, k) in [(1, 1, 1), (3, 4, 5), (7, 1, 9), (1, 6, 2)] {
        let a_views = [
            MatRef::row_major(A, 2, k),
            MatRef::row_major(A, 1, m).transposed(),
            MatRef {
                buf: A,
                off: 3,
                rs: 0,
                cs: 1,
            },
            MatRef {
                buf: A,
                off: 0,
                rs: 1,
                cs: 0,
            },
        ];
        let b_views = [
            MatRef::row_major(B, 0, n),
            MatRef::row_major(B, 4, k).transposed(),
            MatRef {
                buf: B,
                off: 1,
                rs: 1,
                cs: 0,
            },
        ];
        let out = MatRef {
            buf: O,
            off: 3,
            rs: n + 2,
            cs: 1,
        };
        for a in a_views {
            for b in b_views {
                let what = format!("{m}x{n}x{k}, a = {a:?}, b = {b:?}");
                let f = kernel(&STD, (m, n, k), a, b, out).unwrap();
                let av = rng.vec(a.last(m, k).unwrap() + 3);
                let bv = rng.vec(b.last(k, n).unwrap() + 2);
                let olen = out.last(m, n).unwrap() as usize + 4;
                let mut bufs = [
                    Buffer::F64(av.clone()),
                    Buffer::F64(bv.clone()),
                    Buffer::F64(vec![SENTINEL; olen]),
                ];
                assert_eq!(run(&f, &[], &mut bufs, 1_000_000), Ok(vec![]), "{what}");
                let mut want = vec![SENTINEL; olen];
                for i in 0..m {
                    for j in 0..n {
                        want[out.at(i, j) as usize] = reference(k, &a, &av, &b, &bv, i, j);
                    }
                }
                assert_eq!(bits(bufs[2].as_f64().unwrap()), bits(&want), "{what}");
                assert_eq!(bits(bufs[0].as_f64().unwrap()), bits(&av), "{what}");
                assert_eq!(bits(bufs[1].as_f64().unwrap()), bits(&bv), "{what}");
            }
        }
    }
}

/// Each step is one `fma`, rounded once, ascending in `l` from `+0.0`.
#[test]
fn gemm_chain_rounds_once_per_step_in_ascending_order() {
    // (1 + 2⁻³⁰)(1 − 2⁻³⁰) = 1 − 2⁻⁶⁰: fused onto −1 it is −2⁻⁶⁰; a
    // multiply then an add would round the product to 1 and give +0.
    let e = (-30f64).exp2();
    assert_eq!((1.0 + e) * (1.0 - e) + -1.0, 0.0);
    let r = product(1, 1, 2, &[1.0, 1.0 + e], &[-1.0, 1.0 - e]);
    assert_eq!(r[0].to_bits(), (-(-60f64).exp2()).to_bits());

    // The same three terms in two orders: 2⁵³ + 1 rounds back to 2⁵³ (a tie
    // to even), −2⁵³ + 1 is exact. Only the ascending chain gives these.
    let t = 53f64.exp2();
    let r = product(1, 1, 3, &[t, 1.0, -t], &[1.0; 3]);
    assert_eq!(r[0].to_bits(), 0.0f64.to_bits());
    let r = product(1, 1, 3, &[-t, 1.0, t], &[1.0; 3]);
    assert_eq!(r[0].to_bits(), 1.0f64.to_bits());

    // Each step's result is rounded: the first overflows to +∞ and stays
    // there (the exact sum of the two products is 0).
    let r = product(1, 1, 2, &[1e308, -1e308], &[10.0, 10.0]);
    assert_eq!(r[0], f64::INFINITY);
}

/// The chain starts from `+0.0`: an exact zero is `+0` even from `−0`
/// products, while a nonzero product that underflows keeps its sign.
#[test]
fn gemm_chain_starts_from_positive_zero() {
    // fma(−0, 1, +0) = +0 (it would be −0 from a −0 start).
    let r = product(1, 1, 1, &[-0.0], &[1.0]);
    assert_eq!(r[0].to_bits(), 0.0f64.to_bits());
    let r = product(1, 1, 2, &[-0.0, 0.0], &[1.0, -1.0]);
    assert_eq!(r[0].to_bits(), 0.0f64.to_bits());
    // −10⁻⁶⁰⁰ is nonzero before rounding: −0.
    let r = product(1, 1, 1, &[-1e-300], &[1e-300]);
    assert_eq!(r[0].to_bits(), (-0.0f64).to_bits());
    // Every entry, not just the first, starts afresh.
    let r = product(2, 2, 1, &[-0.0, 1.0], &[1.0, -0.0]);
    assert_eq!(bits(&r), bits(&[0.0, 0.0, 1.0, 0.0]));
}

// ---------------------------------------------------------------- bounds

/// `a` out of range: the error names `a` and its last index, and nothing
/// is stored, also when `b` and `out` are out of range too.
#[test]
fn gemm_out_of_range_left_operand_is_reported_first() {
    // 2x2x3: a's last index is 1 + 1·3 + 2·1 = 6.
    let a = MatRef::row_major(A, 1, 3);
    let b = MatRef::row_major(B, 0, 2);
    let out = MatRef::row_major(O, 0, 2);
    let f = kernel(&STD, (2, 2, 3), a, b, out).unwrap();
    for (blen, olen) in [(6, 4), (5, 3)] {
        let mut bufs = [
            Buffer::F64(vec![1.0; 6]),
            Buffer::F64(vec![1.0; blen]),
            Buffer::F64(vec![SENTINEL; olen]),
        ];
        assert_eq!(
            out_of_bounds(&f, &mut bufs),
            ("lhs".to_string(), 6, 6),
            "{blen} {olen}"
        );
        assert_eq!(bits(bufs[2].as_f64().unwrap()), bits(&vec![SENTINEL; olen]));
    }
}

/// With `a` in range and both `b` and `out` out of range, `b` is named.
#[test]
fn gemm_out_of_range_right_operand_comes_before_output() {
    // 2x2x3: b's last index is 2·2 + 1 = 5, out's 3.
    let f = dense(2, 2, 3);
    let mut bufs = [
        Buffer::F64(vec![1.0; 6]),
        Buffer::F64(vec![1.0; 5]),
        Buffer::F64(vec![SENTINEL; 3]),
    ];
    assert_eq!(out_of_bounds(&f, &mut bufs), ("rhs".to_string(), 5, 5));
    assert_eq!(bits(bufs[2].as_f64().unwrap()), bits(&[SENTINEL; 3]));
}

/// An output out of range alone names `out` and its last index, and not
/// even its in-range entries are stored.
#[test]
fn gemm_out_of_range_output_stores_nothing() {
    // 2x3x1 into rows of stride 4 at offset 2: the last index is 2 + 4 + 2 = 8.
    let out = MatRef {
        buf: O,
        off: 2,
        rs: 4,
        cs: 1,
    };
    let a = MatRef::row_major(A, 0, 1);
    let b = MatRef::row_major(B, 0, 3);
    let f = kernel(&STD, (2, 3, 1), a, b, out).unwrap();
    let mut bufs = [
        Buffer::F64(vec![1.0; 2]),
        Buffer::F64(vec![1.0; 3]),
        Buffer::F64(vec![SENTINEL; 8]),
    ];
    assert_eq!(out_of_bounds(&f, &mut bufs), ("res".to_string(), 8, 8));
    assert_eq!(bits(bufs[2].as_f64().unwrap()), bits(&[SENTINEL; 8]));
    // One more element and it runs.
    bufs[2] = Buffer::F64(vec![SENTINEL; 9]);
    assert_eq!(run(&f, &[], &mut bufs, 1000), Ok(vec![]));
    assert_eq!(bufs[2].as_f64().unwrap()[8], 1.0);
}

/// The largest offset the verifier allows (`i64::MAX`) is reported as is.
#[test]
fn gemm_out_of_range_index_can_be_i64_max() {
    let a = MatRef {
        buf: A,
        off: i64::MAX as u64,
        rs: 0,
        cs: 0,
    };
    let f = kernel(
        &STD,
        (1, 1, 1),
        a,
        MatRef::row_major(B, 0, 1),
        MatRef::row_major(O, 0, 1),
    )
    .unwrap();
    let mut bufs = [
        Buffer::F64(vec![1.0]),
        Buffer::F64(vec![1.0]),
        Buffer::F64(vec![SENTINEL]),
    ];
    assert_eq!(
        out_of_bounds(&f, &mut bufs),
        ("lhs".to_string(), i64::MAX, 1)
    );
}

// ------------------------------------------------------------------ fuel

/// A gemm costs `M·N·K` fuel on top of the instruction's own unit (and
/// the body's); one short is out of fuel, and then nothing is stored.
#[test]
fn gemm_costs_one_fuel_per_multiply_add() {
    for (m, n, k) in [(3, 4, 5), (2, 1, 7), (1, 1, 1)] {
        let f = dense(m, n, k);
        let need = m * n * k + 2;
        let mut bufs = [
            Buffer::F64(vec![1.0; (m * k) as usize]),
            Buffer::F64(vec![1.0; (k * n) as usize]),
            Buffer::F64(vec![SENTINEL; (m * n) as usize]),
        ];
        assert!(
            matches!(
                run(&f, &[], &mut bufs, need - 1),
                Err(KernelError::OutOfFuel(_))
            ),
            "{m}x{n}x{k}"
        );
        assert!(bufs[2].as_f64().unwrap().iter().all(|x| *x == SENTINEL));
        assert_eq!(run(&f, &[], &mut bufs, need), Ok(vec![]), "{m}x{n}x{k}");
        assert!(bufs[2].as_f64().unwrap().iter().all(|x| *x == k as f64));
    }
}

// -------------------------------------------------------------- verifier

#[test]
fn verify_rejects_dimensions_outside_one_to_max() {
    let big = MAX_GEMM_DIM + 1;
    // Broadcast operands and a tall or wide output keep every extent small.
    let bc = |buf| MatRef {
        buf,
        off: 0,
        rs: 0,
        cs: 0,
    };
    let col = MatRef::row_major(O, 0, 1);
    let row = MatRef {
        buf: O,
        off: 0,
        rs: 0,
        cs: 1,
    };
    let cases = [
        ((0, 1, 1), col, "M = 0"),
        ((1, 0, 1), col, "N = 0"),
        ((1, 1, 0), col, "K = 0"),
        ((big, 1, 1), col, "M = 16777217"),
        ((1, big, 1), row, "N = 16777217"),
        ((1, 1, big), col, "K = 16777217"),
    ];
    for (dims, out, needle) in cases {
        assert_invalid(kernel(&STD, dims, bc(A), bc(B), out), needle);
    }
    // The bounds themselves are allowed.
    let max = MAX_GEMM_DIM;
    kernel(&STD, (max, 1, 1), bc(A), bc(B), col).unwrap();
    kernel(&STD, (1, max, 1), bc(A), bc(B), row).unwrap();
    kernel(&STD, (1, 1, max), bc(A), bc(B), col).unwrap();
}

#[test]
fn verify_rejects_buffers_that_are_not_f64() {
    for ty in [Ty::F32, Ty::I64, Ty::I32] {
        for which in 0..3 {
            let mut bufs = STD;
            bufs[which].1 = ty;
            let msg = invalid(kernel(&bufs, (2, 2, 2), dense_a(), dense_b(), dense_o()));
            assert!(msg.contains(&format!("is {ty}, expected f64")), "{msg}");
            assert!(msg.contains(bufs[which].0), "{msg}");
        }
    }
}

fn dense_a() -> MatRef {
    MatRef::row_major(A, 0, 2)
}
fn dense_b() -> MatRef {
    MatRef::row_major(B, 0, 2)
}
fn dense_o() -> MatRef {
    MatRef::row_major(O, 0, 2)
}

#[test]
fn verify_rejects_a_read_only_output_and_write_only_operands() {
    let with = |which: usize, access| {
        let mut bufs = STD;
        bufs[which].2 = access;
        kernel(&bufs, (2, 2, 2), dense_a(), dense_b(), dense_o())
    };
    assert_invalid(with(2, Access::Read), "output `res` is declared Read");
    assert_invalid(
        with(0, Access::Write),
        "left operand `lhs` is declared Write",
    );
    assert_invalid(
        with(1, Access::Write),
        "right operand `rhs` is declared Write",
    );
    // Read-write is fine on either side.
    for which in 0..3 {
        with(which, Access::ReadWrite).unwrap();
    }
}

#[test]
fn verify_rejects_outputs_that_repeat_an_element() {
    let view = |rs, cs| MatRef {
        buf: O,
        off: 0,
        rs,
        cs,
    };
    let bad = [
        ((2, 2, 1), view(2, 0)), // a zero column stride with two columns
        ((2, 3, 1), view(0, 1)), // a zero row stride with two rows
        ((2, 2, 1), view(1, 1)), // (0, 1) and (1, 0) are the same element
        ((3, 3, 1), view(2, 1)), // (0, 2) and (1, 0)
        ((2, 3, 1), view(1, 1)),
    ];
    for (dims, out) in bad {
        let a = MatRef::row_major(A, 0, 1);
        let b = MatRef::row_major(B, 0, dims.1);
        assert_invalid(kernel(&STD, dims, a, b, out), "map two entries");
    }
    // A zero stride along a dimension of length 1 repeats nothing.
    let a = MatRef::row_major(A, 0, 1);
    kernel(&STD, (1, 3, 1), a, MatRef::row_major(B, 0, 3), view(0, 1)).unwrap();
    kernel(&STD, (3, 1, 1), a, MatRef::row_major(B, 0, 1), view(1, 0)).unwrap();
    kernel(&STD, (1, 1, 1), a, MatRef::row_major(B, 0, 1), view(0, 0)).unwrap();
}

/// The output's range, from its first to its last index, is disjoint from
/// each operand's range in the same buffer (interleaved elements too).
#[test]
fn verify_rejects_an_output_overlapping_an_operand() {
    let rw = [
        ("lhs", Ty::F64, Access::ReadWrite),
        ("rhs", Ty::F64, Access::Read),
    ];
    let at = |off, rs, cs| MatRef {
        buf: A,
        off,
        rs,
        cs,
    };
    let b = MatRef::row_major(B, 0, 2);
    // 2x2x2: (a, out, allowed).
    let cases = [
        (at(0, 2, 1), at(3, 2, 1), false), // out starts on a's last element
        (at(0, 2, 1), at(0, 2, 1), false), // the same elements
        (at(0, 2, 1), at(1, 4, 2), false), // out's range covers a's tail
        (at(4, 2, 1), at(1, 2, 1), false), // out ends on a's first element
        (at(0, 4, 2), at(1, 4, 2), false), // interleaved: even and odd indices
        (at(0, 2, 1), at(4, 2, 1), true),  // just after
        (at(4, 2, 1), at(0, 2, 1), true),  // just before
    ];
    for (a, out, ok) in cases {
        let r = kernel(&rw, (2, 2, 2), a, b, out);
        if ok {
            assert!(r.is_ok(), "{a:?} {out:?}: {r:?}");
        } else {
            assert_invalid(r, "overlaps");
        }
    }
    // The right operand is checked too.
    let rw_b = [
        ("lhs", Ty::F64, Access::Read),
        ("rhs", Ty::F64, Access::ReadWrite),
    ];
    let out = MatRef::row_major(B, 3, 2);
    let msg = invalid(kernel(&rw_b, (2, 2, 2), dense_a(), dense_b(), out));
    assert!(
        msg.contains("buf1[3..=6] overlaps an operand at buf1[0..=3]"),
        "{msg}"
    );
}

#[test]
fn verify_rejects_undeclared_buffers() {
    let two = &STD[..2];
    let out = MatRef::row_major(O, 0, 2);
    assert_invalid(
        kernel(two, (2, 2, 2), dense_a(), dense_b(), out),
        "buf2 is not declared",
    );
    let far = MatRef::row_major(BufferId(7), 0, 2);
    assert_invalid(
        kernel(&STD, (2, 2, 2), far, dense_b(), dense_o()),
        "buf7 is not declared",
    );
    assert_invalid(
        kernel(&STD, (2, 2, 2), dense_a(), far, dense_o()),
        "buf7 is not declared",
    );
}

#[test]
fn verify_rejects_extents_beyond_i64() {
    let needle = "does not fit in an i64";
    let huge = MatRef {
        buf: A,
        off: 0,
        rs: 1 << 62,
        cs: 1,
    };
    // Two steps of 2⁶² reach 2⁶³ > i64::MAX.
    assert_invalid(
        kernel(&STD, (3, 1, 1), huge, dense_b(), MatRef::row_major(O, 0, 1)),
        needle,
    );
    // Wrapping in u64 is caught too.
    let wrap = MatRef {
        buf: B,
        off: 0,
        rs: u64::MAX,
        cs: 1,
    };
    assert_invalid(kernel(&STD, (1, 1, 3), dense_a(), wrap, dense_o()), needle);
    let off = MatRef {
        buf: O,
        off: i64::MAX as u64,
        rs: 1,
        cs: 1,
    };
    assert_invalid(kernel(&STD, (1, 2, 1), dense_a(), dense_b(), off), needle);
    // Ending exactly on i64::MAX is fine.
    let end = MatRef {
        off: i64::MAX as u64 - 1,
        ..off
    };
    kernel(&STD, (1, 2, 1), dense_a(), dense_b(), end).unwrap();
}

/// An operand and the output may share a read-write buffer at disjoint
/// ranges; the result is the same as from separate buffers.
#[test]
fn verify_accepts_disjoint_ranges_in_one_buffer() {
    let one = [("all", Ty::F64, Access::ReadWrite)];
    let buf = BufferId(0);
    // 2x3x2: a at 0..=3, b at 4..=9, out at 10..=15.
    let a = MatRef::row_major(buf, 0, 2);
    let b = MatRef::row_major(buf, 4, 3);
    let out = MatRef::row_major(buf, 10, 3);
    let f = kernel(&one, (2, 3, 2), a, b, out).unwrap();
    let mut rng = Lcg(7);
    let av = rng.vec(4);
    let bv = rng.vec(6);
    let mut all = [av.clone(), bv.clone(), vec![SENTINEL; 6]].concat();
    let mut bufs = [Buffer::F64(all.clone())];
    assert_eq!(run(&f, &[], &mut bufs, 1000), Ok(vec![]));
    all.truncate(10);
    all.extend(product(2, 3, 2, &av, &bv));
    assert_eq!(bits(bufs[0].as_f64().unwrap()), bits(&all));
}

/// A column-major output (`rs = 1`, `cs = M`) is injective and receives
/// the transpose of the row-major result.
#[test]
fn verify_accepts_column_major_output() {
    let (m, n, k) = (3, 4, 2);
    let out = MatRef {
        buf: O,
        off: 0,
        rs: 1,
        cs: m,
    };
    let a = MatRef::row_major(A, 0, k);
    let b = MatRef::row_major(B, 0, n);
    let f = kernel(&STD, (m, n, k), a, b, out).unwrap();
    let mut rng = Lcg(11);
    let (av, bv) = (rng.vec(m * k), rng.vec(k * n));
    let mut bufs = [
        Buffer::F64(av.clone()),
        Buffer::F64(bv.clone()),
        Buffer::F64(vec![SENTINEL; (m * n) as usize]),
    ];
    assert_eq!(run(&f, &[], &mut bufs, 1000), Ok(vec![]));
    let rows = product(m, n, k, &av, &bv);
    let got = bufs[2].as_f64().unwrap();
    for i in 0..m {
        for j in 0..n {
            assert_eq!(
                got[(j * m + i) as usize].to_bits(),
                rows[(i * n + j) as usize].to_bits()
            );
        }
    }
}

// ---------------------------------------------------------------- MatRef

#[test]
fn matref_transposed_swaps_the_strides_only() {
    let v = MatRef {
        buf: BufferId(3),
        off: 5,
        rs: 7,
        cs: 2,
    };
    let t = v.transposed();
    assert_eq!(
        t,
        MatRef {
            buf: BufferId(3),
            off: 5,
            rs: 2,
            cs: 7,
        }
    );
    assert_eq!(t.transposed(), v);
    for (i, j) in [(0, 0), (1, 4), (3, 2)] {
        assert_eq!(t.at(j, i), v.at(i, j));
    }
    assert_eq!(
        MatRef::row_major(A, 4, 6),
        MatRef {
            buf: A,
            off: 4,
            rs: 6,
            cs: 1
        }
    );
}

#[test]
fn matref_at_is_offset_plus_strides_wrapping() {
    let v = MatRef {
        buf: A,
        off: 5,
        rs: 7,
        cs: 2,
    };
    assert_eq!(v.at(0, 0), 5);
    assert_eq!(v.at(1, 0), 12);
    assert_eq!(v.at(0, 1), 7);
    assert_eq!(v.at(3, 4), 5 + 21 + 8);
    let w = MatRef { off: u64::MAX, ..v };
    assert_eq!(w.at(0, 1), 1);
    assert_eq!(w.at(u64::MAX, 0), u64::MAX.wrapping_sub(7));
}

#[test]
fn matref_last_is_the_largest_index_or_none() {
    let v = MatRef {
        buf: A,
        off: 5,
        rs: 7,
        cs: 2,
    };
    assert_eq!(v.last(1, 1), Some(5));
    assert_eq!(v.last(3, 4), Some(v.at(2, 3)));
    let bc = MatRef { rs: 0, cs: 0, ..v };
    assert_eq!(bc.last(1000, 1000), Some(5));
    // Empty views have no last index.
    assert_eq!(v.last(0, 1), None);
    assert_eq!(v.last(1, 0), None);
    // It must fit an i64, not just a u64.
    let top = MatRef {
        off: i64::MAX as u64 - 9,
        rs: 3,
        cs: 3,
        ..v
    };
    assert_eq!(top.last(3, 2), Some(i64::MAX as u64 - 9 + 6 + 3));
    assert_eq!(top.last(4, 2), None);
    let huge = MatRef {
        off: 0,
        rs: u64::MAX,
        cs: 1,
        ..v
    };
    assert_eq!(huge.last(2, 1), None);
    assert_eq!(huge.last(3, 1), None);
    assert_eq!(huge.last(1, 3), Some(2));
}

/// `injective` is sound (it never accepts a view with a repeated element)
/// and accepts row-major and column-major layouts, gaps included.
#[test]
fn matref_injective_is_sound_and_accepts_dense_layouts() {
    for rows in 1..=4u64 {
        for cols in 1..=4u64 {
            for rs in 0..=9u64 {
                for cs in 0..=9u64 {
                    let v = MatRef {
                        buf: A,
                        off: 1,
                        rs,
                        cs,
                    };
                    let mut seen: Vec<u64> = (0..rows)
                        .flat_map(|i| (0..cols).map(move |j| v.at(i, j)))
                        .collect();
                    seen.sort_unstable();
                    seen.dedup();
                    let distinct = seen.len() as u64 == rows * cols;
                    let what = format!("{rows}x{cols} rs={rs} cs={cs}");
                    if v.injective(rows, cols) {
                        assert!(distinct, "{what}");
                    }
                    let dense_row = cs >= 1 && rs >= cols * cs;
                    let dense_col = rs >= 1 && cs >= rows * rs;
                    if dense_row || dense_col {
                        assert!(v.injective(rows, cols), "{what}");
                    }
                }
            }
        }
    }
    let v = |rs, cs| MatRef {
        buf: A,
        off: 0,
        rs,
        cs,
    };
    assert!(v(0, 0).injective(1, 1));
    assert!(!v(0, 1).injective(2, 1));
    assert!(!v(1, 0).injective(1, 2));
    assert!(!v(1, 1).injective(2, 2));
    assert!(v(u64::MAX, 0).injective(2, 1));
    // Equal strides: (0, 1) and (1, 0) coincide, however large.
    assert!(!v(u64::MAX, u64::MAX).injective(2, 2));
}

// ------------------------------------------------------------------ text

const GOLDEN: &str = "kernel mm(v0 \"s\": f64) {
  buffer buf0 \"lhs\": f64 read
  buffer buf1 \"rhs\": f64 read
  buffer buf2 \"res\": f64 readwrite
  gemm 2 x 3 x 4 buf0[0, 4, 1], buf1[2, 1, 4] to buf2[5, 7, 2]
  return v0
}
";

fn golden() -> Function {
    let mut bld = Builder::new("mm");
    let s = bld.param("s", Ty::F64);
    bld.buffer("lhs", Ty::F64, Access::Read);
    bld.buffer("rhs", Ty::F64, Access::Read);
    bld.buffer("res", Ty::F64, Access::ReadWrite);
    let b = MatRef {
        buf: B,
        off: 2,
        rs: 1,
        cs: 4,
    };
    let out = MatRef {
        buf: O,
        off: 5,
        rs: 7,
        cs: 2,
    };
    bld.gemm((2, 3, 4), MatRef::row_major(A, 0, 4), b, out);
    bld.finish(&[s]).unwrap()
}

#[test]
fn text_gemm_golden_round_trips() {
    let f = golden();
    assert_eq!(print(&f), GOLDEN);
    assert_eq!(parse(GOLDEN), Ok(f.clone()));
    assert_eq!(print(&parse(GOLDEN).unwrap()), GOLDEN);
    // Any whitespace separates its tokens, line breaks included.
    let spread = GOLDEN.replace(" to ", "\n  to # the output\n  ");
    assert_eq!(parse(&spread), Ok(f));
}

fn assert_parse_err(text: &str, line: usize, needle: &str) {
    match parse(text) {
        Err(KernelError::Parse { line: l, msg }) => {
            assert_eq!(l, line, "{msg}");
            assert!(msg.contains(needle), "`{msg}` does not contain `{needle}`");
        }
        other => panic!("expected a parse error, got {other:?}\n{text}"),
    }
}

#[test]
fn text_gemm_errors_carry_lines() {
    let g = |from: &str, to: &str| {
        assert!(GOLDEN.contains(from), "{from}");
        GOLDEN.replacen(from, to, 1)
    };
    // Syntax.
    assert_parse_err(&g(" to ", ", "), 5, "expected `to`");
    assert_parse_err(&g("3 x 4", "3 4"), 5, "expected `x`");
    assert_parse_err(
        &g("[0, 4, 1]", "[0, x, 1]"),
        5,
        "the row stride (a decimal number)",
    );
    assert_parse_err(&g("[2, 1, 4]", "[2, 1, v0]"), 5, "the column stride");
    assert_parse_err(&g("[5, 7, 2]", "[v1, 7, 2]"), 5, "the offset");
    assert_parse_err(&g("[5, 7, 2]", "[5, 7, -2]"), 5, "unexpected character `-`");
    assert_parse_err(
        &g("[5, 7, 2]", "[5, 7, 2.0]"),
        5,
        "unexpected character `.`",
    );
    assert_parse_err(&g("[5, 7, 2]", "[5, 7]"), 5, "expected `,`");
    assert_parse_err(
        &g("gemm 2", "gemm 18446744073709551616"),
        5,
        "M (a decimal number)",
    );
    assert_parse_err(&g("gemm 2 x 3", "gemm 2 x 0x3"), 5, "N (a decimal number)");
    assert_parse_err(
        &g("buf1[2, 1, 4]", "buf9[2, 1, 4]"),
        5,
        "buf9 is not declared",
    );
    assert_parse_err(
        &g("  gemm", "  local loc0 \"t\": f64[64]\n  gemm").replace("buf1[2", "loc0[2"),
        6,
        "gemm operands are buffers",
    );
    assert_parse_err(&g("[5, 7, 2]\n", "[5, 7, \n2,]\n"), 6, "`]`");
    assert_parse_err(&g("[5, 7, 2]\n", "[5, \nx, 2]\n"), 6, "the row stride");
    assert_parse_err(&GOLDEN[..GOLDEN.find("7, 2]").unwrap()], 5, "end of input");
    // A gemm defines no values.
    assert_parse_err(
        &g("  gemm", "  v1: f64 = gemm"),
        5,
        "defines 1 values, expected 0",
    );
    // The verifier's rules, on the gemm's line.
    assert_parse_err(&g("gemm 2", "gemm 0"), 5, "M = 0");
    assert_parse_err(&g("x 4 buf0", "x 16777217 buf0"), 5, "K = 16777217");
    assert_parse_err(&g("buf0[0, 4, 1]", "buf2[0, 4, 1]"), 5, "overlaps");
    assert_parse_err(&g("buf2[5, 7, 2]", "buf0[5, 7, 2]"), 5, "declared Read");
    assert_parse_err(&g("buf2[5, 7, 2]", "buf2[5, 1, 1]"), 5, "map two entries");
    assert_parse_err(&g("rhs\": f64", "rhs\": f32"), 5, "is f32, expected f64");
    assert_parse_err(
        &g("[0, 4, 1]", "[0, 9223372036854775807, 1]"),
        5,
        "does not fit in an i64",
    );
}

/// Gemm tokens for substitutions.
const SUBST: [char; 12] = ['0', '1', '9', ',', '[', ']', 'x', ' ', '\n', 'b', 't', '#'];

/// If a text parses, it verifies and round-trips; otherwise it is a parse error.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(f) => {
            prop_assert_eq!(super::verify(&f), Ok(()));
            prop_assert_eq!(parse(&print(&f)), Ok(f));
        }
        Err(e) => prop_assert!(matches!(e, KernelError::Parse { .. }), "{e:?}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn text_gemm_mutations_never_panic(
        edits in proptest::collection::vec((any::<u8>(), any::<usize>()), 1..4)
    ) {
        let mut text = GOLDEN.to_string();
        for (kind, at) in edits {
            text = crate::text_fuzz::mutate(&text, kind, at, &SUBST);
        }
        check_parse(&text)?;
    }

    #[test]
    fn text_gemm_numbers_never_panic(
        dims in proptest::array::uniform3("[0-9]{1,21}"),
        views in proptest::array::uniform9(prop_oneof![
            Just("0".to_string()),
            Just("1".to_string()),
            Just("18446744073709551615".to_string()),
            "[0-9]{1,20}",
        ]),
        bufs in proptest::array::uniform3(0u32..4),
    ) {
        let v = |i: usize| format!("buf{}[{}, {}, {}]", bufs[i], views[3 * i], views[3 * i + 1], views[3 * i + 2]);
        let line = format!("gemm {} x {} x {} {}, {} to {}", dims[0], dims[1], dims[2], v(0), v(1), v(2));
        let text = GOLDEN.replace(
            "gemm 2 x 3 x 4 buf0[0, 4, 1], buf1[2, 1, 4] to buf2[5, 7, 2]",
            &line,
        );
        check_parse(&text)?;
    }
}
