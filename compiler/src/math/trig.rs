//! `sin`, `cos`, `tan` in f64: Cody–Waite reduction by π/2 with a 5-part
//! split of π/2 (Payne–Hanek for huge arguments), then fdlibm-style kernels
//! on `[−π/4, π/4]`.

use super::{abs_lt, fast_two_sum, two_prod, two_sum};
use crux_ir::kernel::{BinOp, Builder, CmpOp, Conv, Ty, UnOp, Value};

const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
/// π/2 = P1 + P2 + P3 + P4 + P5 to about 2⁻¹⁶⁰; `P1..P4` have 24
/// significant bits, so `n·Pi` is exact for `|n| ≤ 2²⁹`.
const PIO2: [f64; 5] = [
    f64::from_bits(0x3ff9_21fb_4000_0000),
    f64::from_bits(0x3e74_442d_2000_0000),
    f64::from_bits(0xbcde_e59d_a000_0000),
    f64::from_bits(0x3b29_8a2e_0000_0000),
    f64::from_bits(0x397b_839a_2520_49c1),
];
/// From this `|x|` on, arguments go through the Payne–Hanek path (below it,
/// Cody–Waite with `|n| ≤ 2²⁹` is exact).
pub const TRIG_CODY_WAITE_LIMIT: f64 = 536_870_912.0 * std::f64::consts::FRAC_PI_2;

const S: [f64; 6] = [
    -1.666_666_666_666_663_243_48e-1,
    8.333_333_333_322_489_461_24e-3,
    -1.984_126_982_985_794_931_34e-4,
    2.755_731_370_707_006_767_89e-6,
    -2.505_076_025_340_686_341_95e-8,
    1.589_690_995_211_550_102_21e-10,
];
const C: [f64; 6] = [
    4.166_666_666_666_660_190_37e-2,
    -1.388_888_888_887_410_957_49e-3,
    2.480_158_728_947_672_941_78e-5,
    -2.755_731_435_139_066_330_35e-7,
    2.087_572_321_298_174_827_90e-9,
    -1.135_964_755_778_819_482_65e-11,
];

/// Reduced argument: `x − n·π/2 = yh + yl` and the quadrant `n mod 4` as
/// two bools `(n & 1, n & 2)`.
struct Reduced {
    yh: Value,
    yl: Value,
    odd: Value,
    second: Value,
}

/// `2/π` in 24-bit chunks: `2/π = Σ TWO_OVER_PI_24[i]·2^(−24(i+1))`
/// (1152 bits, enough for every f64 exponent).
const TWO_OVER_PI_24: [u32; 48] = [
    0xa2f983, 0x6e4e44, 0x1529fc, 0x2757d1, 0xf534dd, 0xc0db62, 0x95993c, 0x439041, 0xfe5163,
    0xabdebb, 0xc561b7, 0x246e3a, 0x424dd2, 0xe00649, 0x2eea09, 0xd1921c, 0xfe1deb, 0x1cb129,
    0xa73ee8, 0x8235f5, 0x2ebb44, 0x84e99c, 0x7026b4, 0x5f7e41, 0x3991d6, 0x398353, 0x39f49c,
    0x845f8b, 0xbdf928, 0x3b1ff8, 0x97ffde, 0x05980f, 0xef2f11, 0x8b5a0a, 0x6d1f6d, 0x367ecf,
    0x27cb09, 0xb74f46, 0x3f669e, 0x5fea2d, 0x7527ba, 0xc7ebe5, 0xf17b3d, 0x0739f7, 0x8a5292,
    0xea6bfb, 0x5fb11f, 0x8d5d08,
];
/// Chunks of `2/π` used per argument.
const PH_CHUNKS: i64 = 8;

/// `v mod 4` for an exact f64 `v ≥ 0` (exact).
fn mod4(b: &mut Builder, v: Value) -> Value {
    let q = b.f64(0.25);
    let four = b.f64(4.0);
    let t = b.mul(v, q);
    let t = b.unary(UnOp::Floor, t);
    let t = b.mul(t, four);
    b.sub(v, t)
}

/// Payne–Hanek reduction of a finite `a ≥ 2²⁹`: `a·2/π mod 4` from the
/// 24-bit chunks of `2/π` that matter for `a`'s exponent (looked up in a
/// local array), accumulated exactly term by term (every partial product
/// is exact) into a double-double. Returns `(yh, yl, n)` with
/// `a − n·π/2 = yh + yl`, `n ∈ 0..4` (i64).
fn reduce_huge(b: &mut Builder, a: Value) -> (Value, Value, Value) {
    let table = b.local("two_over_pi_24", Ty::F64, TWO_OVER_PI_24.len());
    for (i, &c) in TWO_OVER_PI_24.iter().enumerate() {
        let iv = b.i64(i as i64);
        let cv = b.f64(c as f64);
        b.local_store(table, iv, cv);
    }
    let bits = b.conv(Conv::F64Bits, a);
    let s52 = b.i64(52);
    let eb = b.shr_u(bits, s52);
    let bias = b.i64(1075);
    let e = b.sub(eb, bias); // a = mant·2^e
    let fmask = b.i64((1 << 52) - 1);
    let hidden = b.i64(1 << 52);
    let mant = b.and(bits, fmask);
    let mant = b.binary(BinOp::Or, mant, hidden);
    let lmask = b.i64((1 << 27) - 1);
    let hmask = b.i64(!((1 << 27) - 1));
    let m0 = b.and(mant, lmask);
    let m1 = b.and(mant, hmask);
    let m0 = b.conv(Conv::I64ToF64, m0); // 27 bits
    let m1 = b.conv(Conv::I64ToF64, m1); // 26 significant bits
                                         // first chunk whose terms are not multiples of 4: i0 = max(0, ⌊(e−2)/24⌋)
    let two = b.i64(2);
    let em2 = b.sub(e, two);
    let emf = b.conv(Conv::I64ToF64, em2);
    let d24 = b.f64(24.0);
    let q = b.div(emf, d24);
    let q = b.unary(UnOp::Floor, q);
    let z = b.f64(0.0);
    let q = b.max(q, z);
    let i0 = b.conv(Conv::F64ToI64, q);
    let c24 = b.i64(24);
    let one = b.i64(1);
    let i1 = b.add(i0, one);
    let sh = b.mul(i1, c24);
    let s0 = b.sub(e, sh); // scale of chunk i0's terms
                           // hi + lo + lo2: every addition's error is kept (two_sum twice), so the
                           // sum is exact to ~2⁻¹⁵⁰ even when the final fraction cancels deeply.
    let zero = b.f64(0.0);
    let first = b.i64(0);
    let count = b.i64(PH_CHUNKS);
    // a loop over the chunks keeps the (cold) code small
    let acc = b.for_(first, count, &[zero, zero, zero], |b, j, acc| {
        let (mut hi, mut lo, mut lo2) = (acc[0], acc[1], acc[2]);
        let idx = b.add(i0, j);
        let c = b.local_load(table, idx);
        let c24 = b.i64(24);
        let dj = b.mul(j, c24);
        let s = b.sub(s0, dj);
        let p2 = super::pow2i(b, s);
        for m in [m1, m0] {
            let t = b.mul(m, c); // exact (≤ 51 bits)
            let t = b.mul(t, p2); // exact (power of two, no underflow)
            let t = mod4(b, t);
            let (sh, se) = two_sum(b, hi, t);
            hi = mod4(b, sh);
            let (l, le) = two_sum(b, lo, se);
            lo = l;
            lo2 = b.add(lo2, le);
        }
        vec![hi, lo, lo2]
    });
    let (hi, lo, lo2) = (acc[0], acc[1], acc[2]);
    // x·2/π mod 4 = hi + lo + lo2; nearest quadrant and the fraction
    let n = b.unary(UnOp::Nearest, hi);
    let f = b.sub(hi, n); // exact
    let (fh, fl) = two_sum(b, f, lo);
    let fl = b.add(fl, lo2);
    let (fh, fl) = fast_two_sum(b, fh, fl);
    let ph = b.f64(std::f64::consts::FRAC_PI_2);
    let pl = b.f64(6.123_233_995_736_766e-17);
    let (yh, yl) = super::dd_mul(b, (fh, fl), (ph, pl));
    let ni = b.conv(Conv::F64ToI64, n);
    (yh, yl, ni)
}

fn reduce(b: &mut Builder, x: Value) -> Reduced {
    let k = b.f64(TWO_OVER_PI);
    let t = b.mul(x, k);
    let n = b.unary(UnOp::Nearest, t);
    // Beyond the exact range: keep n bounded (the result is then only
    // guaranteed to be in [-1, 1]).
    let lim = b.f64(536_870_912.0);
    let nlim = b.f64(-536_870_912.0);
    let n = b.min(n, lim);
    let n = b.max(n, nlim);
    let p1 = b.f64(PIO2[0]);
    let np = b.mul(n, p1);
    let a = b.sub(x, np); // exact for |n| <= 2^29 (Sterbenz)
    let mut hi = a;
    let mut acc = b.f64(0.0);
    for &p in &PIO2[1..4] {
        let pc = b.f64(p);
        let np = b.mul(n, pc); // exact
        let nnp = b.neg(np);
        let (s, e) = two_sum(b, hi, nnp);
        hi = s;
        acc = b.add(acc, e);
    }
    let p5 = b.f64(PIO2[4]);
    let np5 = b.mul(n, p5);
    let tail = b.sub(acc, np5);
    let (yh, yl) = fast_two_sum(b, hi, tail);
    // Out of the exact range yh may be large: clamp it to [-π/4, π/4] so
    // the kernels stay bounded.
    let q = b.f64(std::f64::consts::FRAC_PI_4);
    let nq = b.f64(-std::f64::consts::FRAC_PI_4);
    let yh = b.min(yh, q);
    let yh = b.max(yh, nq);
    let exact = abs_lt(b, x, TRIG_CODY_WAITE_LIMIT);
    let zero = b.f64(0.0);
    let yl = b.select(exact, yl, zero);
    let ni = b.conv(Conv::F64ToI64, n);
    // |x| beyond the Cody–Waite range: Payne–Hanek, only run when needed
    let ax = b.abs(x);
    let lim = b.f64(TRIG_CODY_WAITE_LIMIT);
    let big = b.cmp(CmpOp::Ge, ax, lim);
    let inf = b.f64(f64::INFINITY);
    let fin = b.lt(ax, inf);
    let huge = b.and(big, fin);
    let out = b.if_(
        huge,
        |b| {
            let (h, l, k) = reduce_huge(b, ax);
            // odd symmetry: x < 0 reduces to −(|x| reduced)
            let zero = b.f64(0.0);
            let neg = b.lt(x, zero);
            let nh = b.neg(h);
            let nl = b.neg(l);
            let nk = b.neg(k);
            vec![
                b.select(neg, nh, h),
                b.select(neg, nl, l),
                b.select(neg, nk, k),
            ]
        },
        |_| vec![yh, yl, ni],
    );
    let (yh, yl, ni) = (out[0], out[1], out[2]);
    let one = b.i64(1);
    let two = b.i64(2);
    let izero = b.i64(0);
    let o = b.and(ni, one);
    let s = b.and(ni, two);
    let odd = b.cmp(CmpOp::Ne, o, izero);
    let second = b.cmp(CmpOp::Ne, s, izero);
    Reduced {
        yh,
        yl,
        odd,
        second,
    }
}

/// `sin(x + y)` for `|x| ≤ π/4`, `|y| ≲ ulp(x)`, as the unevaluated sum
/// `x + c` of `x` and a small correction (their rounded sum is the result).
fn kernel_sin(b: &mut Builder, x: Value, y: Value) -> (Value, Value) {
    let z = b.mul(x, x);
    let w = b.mul(z, z);
    let r1 = super::horner(b, z, &S[1..4]);
    let r2 = super::horner(b, z, &S[4..6]);
    let zw = b.mul(z, w);
    let r2 = b.mul(zw, r2);
    let r = b.add(r1, r2);
    let v = b.mul(z, x);
    // x - ((z·(y/2 - v·r) - y) - v·S1)
    let half = b.f64(0.5);
    let hy = b.mul(half, y);
    let vr = b.mul(v, r);
    let t = b.sub(hy, vr);
    let t = b.mul(z, t);
    let t = b.sub(t, y);
    let s1 = b.f64(S[0]);
    let vs = b.mul(v, s1);
    let t = b.sub(t, vs);
    (x, b.neg(t))
}

/// `cos(x + y)` for `|x| ≤ π/4`, `|y| ≲ ulp(x)`, as an unevaluated sum
/// `w + c` like [`kernel_sin`].
fn kernel_cos(b: &mut Builder, x: Value, y: Value) -> (Value, Value) {
    let z = b.mul(x, x);
    let w = b.mul(z, z);
    let r1 = super::horner(b, z, &C[0..3]);
    let r1 = b.mul(z, r1);
    let r2 = super::horner(b, z, &C[3..6]);
    let ww = b.mul(w, w);
    let r2 = b.mul(ww, r2);
    let r = b.add(r1, r2);
    let half = b.f64(0.5);
    let hz = b.mul(half, z);
    let one = b.f64(1.0);
    let w = b.sub(one, hz);
    // w + (((1 - w) - hz) + (z·r - x·y))
    let a = b.sub(one, w);
    let a = b.sub(a, hz);
    let zr = b.mul(z, r);
    let xy = b.mul(x, y);
    let c = b.sub(zr, xy);
    let a = b.add(a, c);
    (w, a)
}

/// `(nh + nl)/(dh + dl)` rounded once more carefully than `nh/dh`: one
/// Newton-style correction with an exact product.
fn div_dd(b: &mut Builder, (nh, nl): (Value, Value), (dh, dl): (Value, Value)) -> Value {
    let q = b.div(nh, dh);
    let (p, pe) = two_prod(b, q, dh);
    let r = b.sub(nh, p);
    let r = b.sub(r, pe);
    let r = b.add(r, nl);
    let qd = b.mul(q, dl);
    let r = b.sub(r, qd);
    let c = b.div(r, dh);
    b.add(q, c)
}

/// `x − x` (NaN) for non-finite `x`, else `r`.
fn finite_or_nan(b: &mut Builder, x: Value, r: Value) -> Value {
    let fin = abs_lt(b, x, f64::INFINITY);
    let nan = b.sub(x, x);
    b.select(fin, r, nan)
}

/// Sine of an f64 (see the module docs for the argument range).
pub fn sin_f64(b: &mut Builder, x: Value) -> Value {
    let red = reduce(b, x);
    let (sh, sl) = kernel_sin(b, red.yh, red.yl);
    let s = b.add(sh, sl);
    let (ch, cl) = kernel_cos(b, red.yh, red.yl);
    let c = b.add(ch, cl);
    let v = b.select(red.odd, c, s);
    let nv = b.neg(v);
    let r = b.select(red.second, nv, v);
    let tiny = abs_lt(b, x, f64::from_bits(0x3e40_0000_0000_0000)); // 2^-27
    let r = b.select(tiny, x, r);
    finite_or_nan(b, x, r)
}

/// Cosine of an f64 (see the module docs for the argument range).
pub fn cos_f64(b: &mut Builder, x: Value) -> Value {
    let red = reduce(b, x);
    let (sh, sl) = kernel_sin(b, red.yh, red.yl);
    let s = b.add(sh, sl);
    let (ch, cl) = kernel_cos(b, red.yh, red.yl);
    let c = b.add(ch, cl);
    let v = b.select(red.odd, s, c);
    let nv = b.neg(v);
    let neg = b.binary(BinOp::Xor, red.odd, red.second);
    let r = b.select(neg, nv, v);
    finite_or_nan(b, x, r)
}

/// Tangent of an f64 (see the module docs for the argument range).
pub fn tan_f64(b: &mut Builder, x: Value) -> Value {
    let red = reduce(b, x);
    let (sh, sl) = kernel_sin(b, red.yh, red.yl);
    let s = fast_two_sum(b, sh, sl);
    let (ch, cl) = kernel_cos(b, red.yh, red.yl);
    let c = fast_two_sum(b, ch, cl);
    let even = div_dd(b, s, c);
    let nc = (b.neg(c.0), b.neg(c.1));
    let odd = div_dd(b, nc, s);
    let r = b.select(red.odd, odd, even);
    let tiny = abs_lt(b, x, f64::from_bits(0x3e40_0000_0000_0000)); // 2^-27
    let r = b.select(tiny, x, r);
    finite_or_nan(b, x, r)
}
