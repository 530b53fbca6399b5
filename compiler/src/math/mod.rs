//! Transcendental functions as kernel-IR expansions.
//!
//! Every function here emits a straight-line sequence of the kernel IR's
//! exactly-specified operations (IEEE add, sub, mul, div, sqrt, rounding,
//! min/max, copysign, compares, selects, integer ops and bit casts; no fused
//! multiply-add and no calls), so the interpreter, Cranelift and PTX compute
//! bit-identical results. Special cases are merged with `select`, so the
//! expansions are straight-line code (friendly to SIMD/SIMT), except for
//! the Payne–Hanek reduction of huge trig arguments, which sits in an `if`.
//!
//! | function | construction |
//! |---|---|
//! | [`exp`] | `x = k·ln2 + r` (Cody–Waite, 32-bit `ln2_hi`), fdlibm-style rational form `1 + r + r·c/(2−c)` with a degree-5 minimax `c(r²)`, `2^k` applied in two steps (exact for subnormal results) |
//! | [`log`] | exponent/mantissa from the bits (subnormals pre-scaled by 2⁵⁴), mantissa in `[√½, √2)`, `s = f/(2+f)`, minimax in `s²` (fdlibm's `Lg1..Lg7`) |
//! | [`log1p`] | as `log` on `u = 1+x` with the correction `((1+x)−u)/u` (fdlibm/musl construction) |
//! | [`expm1`] | Cody–Waite reduction, fdlibm's rational `expm1` kernel (`Q1..Q5`), reconstruction per `k` |
//! | [`sin`], [`cos`], [`tan`] | `|x| < 2²⁹·π/2`: Cody–Waite reduction by π/2 with a 5-part split of π/2 (four 24-bit parts, so `n·Pᵢ` is exact) and a double-double remainder; beyond: Payne–Hanek (the eight 24-bit chunks of 2/π that matter for the exponent, from a local table, exact partial products reduced mod 4, triple-double accumulation) inside an `if`, so it costs nothing for ordinary arguments; then fdlibm's sin/cos kernels on `[−π/4, π/4]`; `tan = sin/cos` of the kernels' unrounded (double-double) results with a corrected division |
//! | [`tanh`] | `x + x³·P(x²)` (degree-16 Chebyshev fit) on `|x| < 1`; `1 − 2/(expm1(2|x|)+2)` on `[1, 22)`; `±1` beyond |
//! | [`sigmoid`] | `1/(1+e)` or `e/(1+e)` with `e = exp(−|x|)`, `1+e` as a double-double and one correction of the quotient |
//! | [`softplus`] | `max(x,0) + log1p(exp(−|x|))` |
//! | [`erf`] | fdlibm's piecewise rational approximations on `[0, 0.84375)`, `[0.84375, 1.25)`, `[1.25, 1/0.35)`, `[1/0.35, 6)` (the last two as `exp(−z²−0.5625)·exp((z−x)(z+x)+R/S)/x` with `z` the upper half of `x`), `±1` beyond 6 |
//! | [`powf`] | `exp(y·log|x|)` with `log` in double-double (atanh series in `s`) and an `exp` that takes a double-double argument; C99/IEEE special cases by select |
//!
//! Accuracy (measured against Rust's std and, offline, against mpmath; see
//! the tests and `math_ulp_table`): at most 2 ulp from std in f64 on every
//! tested range, and at most ~1.9 ulp from the exact value. `sin`, `cos`,
//! `tan` are accurate for every finite argument (the Payne–Hanek path
//! handles the hardest known reduction, `6381956970095103·2⁷⁹⁷`, to within
//! 0.05 ulp of the exact cosine). The Payne–Hanek path declares one small
//! local array (48 f64) per `sin`/`cos`/`tan` expansion.
//!
//! **f32.** Every function dispatches on the type of its argument: f32
//! values are converted to f64 (exactly), computed in f64 and rounded back
//! to f32 once. The double rounding makes the f32 result within 1 ulp
//! (and almost always correctly rounded).

// Published minimax coefficients are kept with the digits they were
// published with.
#![allow(clippy::excessive_precision)]

mod erf;
mod exp_log;
mod pow;
mod trig;

#[cfg(test)]
mod tests;

use crux_ir::kernel::{BinOp, Builder, CmpOp, Conv, Ty, UnOp, Value};

pub use erf::erf_f64;
pub use exp_log::{exp_f64, expm1_f64, log1p_f64, log_f64};
pub use pow::powf_f64;
pub use trig::{cos_f64, sin_f64, tan_f64, TRIG_CODY_WAITE_LIMIT};

/// Applies the f64 expansion `f` to `x`, going through f64 when `x` is f32.
fn dispatch(b: &mut Builder, x: Value, f: fn(&mut Builder, Value) -> Value) -> Value {
    match b.ty(x) {
        Ty::F32 => {
            let xd = b.conv(Conv::F32ToF64, x);
            let r = f(b, xd);
            b.conv(Conv::F64ToF32, r)
        }
        _ => f(b, x),
    }
}

/// `eˣ` (f64 or f32).
pub fn exp(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, exp_f64)
}
/// `eˣ − 1`, accurate near 0 (f64 or f32).
pub fn expm1(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, expm1_f64)
}
/// Natural logarithm (f64 or f32).
pub fn log(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, log_f64)
}
/// `ln(1 + x)`, accurate near 0 (f64 or f32).
pub fn log1p(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, log1p_f64)
}
/// Sine (f64 or f32).
pub fn sin(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, sin_f64)
}
/// Cosine (f64 or f32).
pub fn cos(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, cos_f64)
}
/// Tangent (f64 or f32).
pub fn tan(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, tan_f64)
}
/// Hyperbolic tangent (f64 or f32).
pub fn tanh(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, tanh_f64)
}
/// Logistic sigmoid `1/(1+e⁻ˣ)`, stable on both tails (f64 or f32).
pub fn sigmoid(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, sigmoid_f64)
}
/// `ln(1 + eˣ)`, stable on both tails (f64 or f32).
pub fn softplus(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, softplus_f64)
}
/// `xʸ` with C99/IEEE 754 special cases (f64 or f32; both operands of one type).
pub fn powf(b: &mut Builder, x: Value, y: Value) -> Value {
    match b.ty(x) {
        Ty::F32 => {
            let xd = b.conv(Conv::F32ToF64, x);
            let yd = b.conv(Conv::F32ToF64, y);
            let r = powf_f64(b, xd, yd);
            b.conv(Conv::F64ToF32, r)
        }
        _ => powf_f64(b, x, y),
    }
}

/// The error function (f64 or f32).
pub fn erf(b: &mut Builder, x: Value) -> Value {
    dispatch(b, x, erf_f64)
}

/// `tanh(x) = x + x³·P(x²)` on `|x| < 1`: a degree-16 Chebyshev fit in
/// `x²` (|error| < 4e-19 in `P`), computed with mpmath's `chebyfit`.
const TANH_P: [f64; 17] = [
    f64::from_bits(0xbfd5555555555555),
    f64::from_bits(0x3fc1111111111109),
    f64::from_bits(0xbfaba1ba1ba1ad79),
    f64::from_bits(0x3f9664f488284a62),
    f64::from_bits(0xbf8226e3554e44b7),
    f64::from_bits(0x3f6d6d3cf0c9f4f0),
    f64::from_bits(0xbf57da3468275600),
    f64::from_bits(0x3f43556d1497c973),
    f64::from_bits(0xbf2f567a08729e42),
    f64::from_bits(0x3f195f8917d9e05a),
    f64::from_bits(0xbf04716206d34c37),
    f64::from_bits(0x3ef02a4681561bf1),
    f64::from_bits(0xbed83b86bf37b691),
    f64::from_bits(0x3ec01ed0537aafe1),
    f64::from_bits(0xbea1306c68e489ea),
    f64::from_bits(0x3e7922fdbe58a872),
    f64::from_bits(0xbe4255e7760dc76d),
];

/// `tanh` of an f64: the polynomial on `|x| < 1`, `1 − 2/(expm1(2|x|)+2)`
/// with the sign of `x` on `1 ≤ |x| < 22`, `±1` beyond.
pub fn tanh_f64(b: &mut Builder, x: Value) -> Value {
    let ax = b.abs(x);
    let one = b.f64(1.0);
    let is_small = b.lt(ax, one);
    // A branch, not a select of both: each element pays for one formula
    // (the polynomial or `expm1`, about half the work each).
    let r = b.if_(
        is_small,
        // |x| < 1
        |b| {
            let z = b.mul(x, x);
            let p = horner(b, z, &TANH_P);
            let x3 = b.mul(x, z);
            let tp = b.mul(x3, p);
            vec![b.add(x, tp)]
        },
        // 1 <= |x| < 22, NaN
        |b| {
            let one = b.f64(1.0);
            let two = b.f64(2.0);
            let a2 = b.mul(two, ax);
            let t = expm1_f64(b, a2);
            let t2 = b.add(t, two);
            let q = b.div(two, t2);
            let big = b.sub(one, q);
            let lim = b.f64(22.0);
            let sat = b.cmp(CmpOp::Ge, ax, lim);
            let big = b.select(sat, one, big);
            vec![b.binary(BinOp::Copysign, big, x)]
        },
    )[0];
    // odd: the sign of x (keeps tanh(−0) = −0)
    let r = b.binary(BinOp::Copysign, r, x);
    let nan = is_nan(b, x);
    b.select(nan, x, r)
}

/// Logistic sigmoid of an f64: `1/(1+e)` for `x ≥ 0`, `e/(1+e)` for
/// `x < 0`, `e = exp(−|x|)`, with `1+e` kept exact as a double-double and
/// one correction step on the quotient.
pub fn sigmoid_f64(b: &mut Builder, x: Value) -> Value {
    let ax = b.abs(x);
    let nax = b.neg(ax);
    let e = exp_f64(b, nax);
    let one = b.f64(1.0);
    let (dh, dl) = fast_two_sum(b, one, e); // e <= 1
    let zero = b.f64(0.0);
    let ge = b.cmp(CmpOp::Ge, x, zero);
    let num = b.select(ge, one, e);
    let q = b.div(num, dh);
    let (p, pe) = two_prod(b, q, dh);
    let r = b.sub(num, p);
    let r = b.sub(r, pe);
    let qd = b.mul(q, dl);
    let r = b.sub(r, qd);
    let c = b.div(r, dh);
    let s = b.add(q, c);
    let nan = is_nan(b, x);
    b.select(nan, x, s)
}

/// Softplus `ln(1+eˣ)` of an f64.
pub fn softplus_f64(b: &mut Builder, x: Value) -> Value {
    let ax = b.abs(x);
    let nax = b.neg(ax);
    let e = exp_f64(b, nax);
    let l = log1p_f64(b, e);
    let zero = b.f64(0.0);
    let m = b.max(x, zero);
    let r = b.add(m, l);
    // NaN in, NaN out (max already propagates it; keep it explicit).
    let nan = b.cmp(CmpOp::Ne, x, x);
    b.select(nan, x, r)
}

// ---- helpers shared by the families ----

/// `c[0] + z·(c[1] + z·(… + z·c[n−1]))`, each step one fused multiply-add
/// (one rounding instead of two: as accurate, half the operations).
pub(crate) fn horner(b: &mut Builder, z: Value, c: &[f64]) -> Value {
    let mut acc = b.f64(c[c.len() - 1]);
    for &ci in c[..c.len() - 1].iter().rev() {
        let k = b.f64(ci);
        acc = b.fma(z, acc, k);
    }
    acc
}

/// `2^k` for an i64 `k` in `[−1022, 1023]`.
pub(crate) fn pow2i(b: &mut Builder, k: Value) -> Value {
    let bias = b.i64(1023);
    let e = b.add(k, bias);
    let s = b.i64(52);
    let bits = b.shl(e, s);
    b.conv(Conv::BitsF64, bits)
}

/// `y·2^k` for an i64 `k` in `[−2044, 2046]`, in two exact-then-rounded
/// steps so subnormal results are rounded once.
pub(crate) fn ldexp(b: &mut Builder, y: Value, k: Value) -> Value {
    let one = b.i64(1);
    let k1 = b.binary(BinOp::ShrS, k, one);
    let k2 = b.sub(k, k1);
    let p1 = pow2i(b, k1);
    let p2 = pow2i(b, k2);
    let t = b.mul(y, p1);
    b.mul(t, p2)
}

/// `min(max(x, lo), hi)` (NaN stays NaN).
pub(crate) fn clamp(b: &mut Builder, x: Value, lo: f64, hi: f64) -> Value {
    let l = b.f64(lo);
    let h = b.f64(hi);
    let t = b.max(x, l);
    b.min(t, h)
}

/// Whether `x` is NaN.
pub(crate) fn is_nan(b: &mut Builder, x: Value) -> Value {
    b.cmp(CmpOp::Ne, x, x)
}

/// Exact sum: `(s, e)` with `s = fl(a+b)` and `s + e = a + b` (Knuth).
pub(crate) fn two_sum(b: &mut Builder, x: Value, y: Value) -> (Value, Value) {
    let s = b.add(x, y);
    let bb = b.sub(s, x);
    let aa = b.sub(s, bb);
    let db = b.sub(y, bb);
    let da = b.sub(x, aa);
    let e = b.add(da, db);
    (s, e)
}

/// Exact sum when `|x| ≥ |y|` (Dekker).
pub(crate) fn fast_two_sum(b: &mut Builder, x: Value, y: Value) -> (Value, Value) {
    let s = b.add(x, y);
    let t = b.sub(s, x);
    let e = b.sub(y, t);
    (s, e)
}

/// Veltkamp split of `a` into 26+27-bit halves (`|a| < 2⁹⁹⁵`).
pub(crate) fn split(b: &mut Builder, a: Value) -> (Value, Value) {
    let c = b.f64(134_217_729.0); // 2^27 + 1
    let t = b.mul(a, c);
    let d = b.sub(t, a);
    let hi = b.sub(t, d);
    let lo = b.sub(a, hi);
    (hi, lo)
}

/// Exact product without FMA: `(p, e)` with `p = fl(x·y)`, `p + e = x·y` (Dekker).
pub(crate) fn two_prod(b: &mut Builder, x: Value, y: Value) -> (Value, Value) {
    let p = b.mul(x, y);
    let (xh, xl) = split(b, x);
    let (yh, yl) = split(b, y);
    let hh = b.mul(xh, yh);
    let t = b.sub(hh, p);
    let hl = b.mul(xh, yl);
    let t = b.add(t, hl);
    let lh = b.mul(xl, yh);
    let t = b.add(t, lh);
    let ll = b.mul(xl, yl);
    let e = b.add(t, ll);
    (p, e)
}

/// A double-double `hi + lo` (`|lo| ≤ ulp(hi)/2` once normalised).
pub(crate) type Dd = (Value, Value);

/// Double-double product `(xh + xl)·(yh + yl)`, normalised.
pub(crate) fn dd_mul(b: &mut Builder, (xh, xl): Dd, (yh, yl): Dd) -> Dd {
    let (p, e) = two_prod(b, xh, yh);
    let a = b.mul(xh, yl);
    let c = b.mul(xl, yh);
    let t = b.add(a, c);
    let e = b.add(e, t);
    fast_two_sum(b, p, e)
}

/// Double-double sum, normalised.
pub(crate) fn dd_add(b: &mut Builder, (xh, xl): Dd, (yh, yl): Dd) -> Dd {
    let (s, e) = two_sum(b, xh, yh);
    let t = b.add(xl, yl);
    let e = b.add(e, t);
    fast_two_sum(b, s, e)
}

/// `cond ? a : b` on a float comparison with a constant.
pub(crate) fn cmp_c(b: &mut Builder, op: CmpOp, x: Value, c: f64) -> Value {
    let k = b.f64(c);
    b.cmp(op, x, k)
}

/// `|x|` as a bool test `|x| < c`.
pub(crate) fn abs_lt(b: &mut Builder, x: Value, c: f64) -> Value {
    let ax = b.unary(UnOp::Abs, x);
    cmp_c(b, CmpOp::Lt, ax, c)
}
