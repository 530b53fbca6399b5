//! `exp`, `expm1`, `log`, `log1p` in f64.

use super::{clamp, cmp_c, horner, is_nan, ldexp};
use crux_ir::kernel::{BinOp, Builder, CmpOp, Conv, UnOp, Value};

/// `ln 2` high part: 32 significant bits, so `k·LN2_HI` is exact for `|k| < 2²¹`.
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 − LN2_HI`.
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const INV_LN2: f64 = std::f64::consts::LOG2_E;

/// Minimax coefficients of `c(r) = r − r²·P(r²)` for `r·(eʳ+1)/(eʳ−1)`
/// on `|r| ≤ ln2/2` (fdlibm's `P1..P5`).
const EXP_P: [f64; 5] = [
    1.666_666_666_666_660_190_37e-1,
    -2.777_777_777_701_559_338_42e-3,
    6.613_756_321_437_934_361_17e-5,
    -1.653_390_220_546_525_153_90e-6,
    4.138_136_797_057_238_460_39e-8,
];

/// `e^(xh + xl)` with `|xl| ≲ ulp(xh)`: the double-double argument lets
/// `powf` pass `y·log x` without rounding it first. Overflows to `+∞`,
/// underflows (through correctly scaled subnormals) to `+0`; NaN → NaN.
pub(crate) fn exp_dd(b: &mut Builder, xh: Value, xl: Value) -> Value {
    let xc = clamp(b, xh, -746.0, 710.0);
    let same = b.cmp(CmpOp::Eq, xc, xh);
    let zero = b.f64(0.0);
    let xl = b.select(same, xl, zero);
    let inv = b.f64(INV_LN2);
    let t = b.mul(xc, inv);
    let kf = b.unary(UnOp::Nearest, t);
    let l2h = b.f64(LN2_HI);
    let l2l = b.f64(LN2_LO);
    let kh = b.mul(kf, l2h);
    let hi = b.sub(xc, kh); // exact
    let kl = b.mul(kf, l2l);
    let lo = b.sub(kl, xl);
    let r = b.sub(hi, lo);
    let rr = b.mul(r, r);
    let p = horner(b, rr, &EXP_P);
    let rp = b.mul(rr, p);
    let c = b.sub(r, rp);
    // y = 1 - ((lo - r·c/(2 - c)) - hi)
    let two = b.f64(2.0);
    let one = b.f64(1.0);
    let rc = b.mul(r, c);
    let d = b.sub(two, c);
    let q = b.div(rc, d);
    let u = b.sub(lo, q);
    let u = b.sub(u, hi);
    let y = b.sub(one, u);
    let ki = b.conv(Conv::F64ToI64, kf);
    ldexp(b, y, ki)
}

/// `eˣ` of an f64.
pub fn exp_f64(b: &mut Builder, x: Value) -> Value {
    let zero = b.f64(0.0);
    exp_dd(b, x, zero)
}

const EXPM1_Q: [f64; 5] = [
    -3.333_333_333_333_313_164_28e-2,
    1.587_301_587_254_814_601_65e-3,
    -7.936_507_578_674_879_424_73e-5,
    4.008_217_827_329_362_395_52e-6,
    -2.010_992_181_836_243_713_26e-7,
];

/// `eˣ − 1` of an f64 (fdlibm's construction, every case computed and
/// selected).
pub fn expm1_f64(b: &mut Builder, x: Value) -> Value {
    // Beyond these, expm1 is -1 (to double precision) or overflows.
    let xc = clamp(b, x, -45.0, 710.0);
    let ax = b.abs(xc);
    let inv = b.f64(INV_LN2);
    let t = b.mul(xc, inv);
    let kf = b.unary(UnOp::Nearest, t);
    let half_ln2 = b.f64(0.5 * std::f64::consts::LN_2);
    let reduce = b.cmp(CmpOp::Gt, ax, half_ln2);
    let zero = b.f64(0.0);
    let kf = b.select(reduce, kf, zero);
    let l2h = b.f64(LN2_HI);
    let l2l = b.f64(LN2_LO);
    let kh = b.mul(kf, l2h);
    let hi = b.sub(xc, kh);
    let lo = b.mul(kf, l2l);
    let r = b.sub(hi, lo);
    let c = b.sub(hi, r);
    let c = b.sub(c, lo); // rounding error of r (0 when k = 0)
    let half = b.f64(0.5);
    let hfx = b.mul(half, r);
    let hxs = b.mul(r, hfx);
    let q = horner(b, hxs, &EXPM1_Q);
    let one = b.f64(1.0);
    let hq = b.mul(hxs, q);
    let r1 = b.add(one, hq);
    let three = b.f64(3.0);
    let six = b.f64(6.0);
    let r1h = b.mul(r1, hfx);
    let tt = b.sub(three, r1h);
    let num = b.sub(r1, tt);
    let xt = b.mul(r, tt);
    let den = b.sub(six, xt);
    let qq = b.div(num, den);
    let e0 = b.mul(hxs, qq);
    // k == 0: x - (x·e - hxs)
    let xe = b.mul(r, e0);
    let xe = b.sub(xe, hxs);
    let res0 = b.sub(r, xe);
    // k != 0: e = (x·(e - c) - c) - hxs
    let ec = b.sub(e0, c);
    let e = b.mul(r, ec);
    let e = b.sub(e, c);
    let e = b.sub(e, hxs);
    // k == -1: 0.5·(x - e) - 0.5
    let xme = b.sub(r, e);
    let h = b.mul(half, xme);
    let res_m1 = b.sub(h, half);
    // k == 1: x < -0.25 ? -2·(e - (x + 0.5)) : 1 + 2·(x - e)
    let two = b.f64(2.0);
    let xh = b.add(r, half);
    let exh = b.sub(e, xh);
    let m2 = b.f64(-2.0);
    let a1 = b.mul(m2, exh);
    let tx = b.mul(two, xme);
    let a2 = b.add(one, tx);
    let lt = cmp_c(b, CmpOp::Lt, r, -0.25);
    let res_1 = b.select(lt, a1, a2);
    // general k: scale
    let ki = b.conv(Conv::F64ToI64, kf);
    let bias = b.i64(1023);
    let nk = b.sub(bias, ki);
    let s52 = b.i64(52);
    let bits = b.shl(nk, s52);
    let two_mk = b.conv(Conv::BitsF64, bits); // 2^-k for 2 <= k <= 56
                                              //   k <= -2 or k > 56: (1 - (e - x))·2^k - 1
    let ex = b.sub(e, r);
    let y = b.sub(one, ex);
    let y = ldexp(b, y, ki);
    let res_far = b.sub(y, one);
    //   2 <= k < 20: ((1 - 2^-k) - (e - x))·2^k
    let t1 = b.sub(one, two_mk);
    let y1 = b.sub(t1, ex);
    let res_mid = ldexp(b, y1, ki);
    //   20 <= k <= 56: ((x - (e + 2^-k)) + 1)·2^k
    let et = b.add(e, two_mk);
    let y2 = b.sub(r, et);
    let y2 = b.add(y2, one);
    let res_hi = ldexp(b, y2, ki);

    let k_le_m2 = cmp_c(b, CmpOp::Le, kf, -2.0);
    let k_gt_56 = cmp_c(b, CmpOp::Gt, kf, 56.0);
    let far = b.binary(BinOp::Or, k_le_m2, k_gt_56);
    let k_lt_20 = cmp_c(b, CmpOp::Lt, kf, 20.0);
    let res = b.select(k_lt_20, res_mid, res_hi);
    let res = b.select(far, res_far, res);
    let is1 = cmp_c(b, CmpOp::Eq, kf, 1.0);
    let res = b.select(is1, res_1, res);
    let ism1 = cmp_c(b, CmpOp::Eq, kf, -1.0);
    let res = b.select(ism1, res_m1, res);
    let is0 = cmp_c(b, CmpOp::Eq, kf, 0.0);
    let res = b.select(is0, res0, res);
    // tiny: x itself (keeps −0 and subnormals exact)
    let ax0 = b.abs(x);
    let tiny = cmp_c(b, CmpOp::Lt, ax0, f64::from_bits(0x3c90_0000_0000_0000)); // 2^-54
    let res = b.select(tiny, x, res);
    let nan = is_nan(b, x);
    b.select(nan, x, res)
}

/// fdlibm's minimax coefficients for `log(1+f) = f − f²/2 + s·(f²/2 + R(s²))`.
const LG: [f64; 7] = [
    6.666_666_666_666_735_130e-1,
    3.999_999_999_940_941_908e-1,
    2.857_142_874_366_239_149e-1,
    2.222_219_843_214_978_396e-1,
    1.818_357_216_161_805_012e-1,
    1.531_383_769_920_937_332e-1,
    1.479_819_860_511_658_591e-1,
];

/// `log(1+f) + dk·ln2 + c` for `1+f ∈ [√½, √2)` and a small correction `c`.
fn log_kernel(b: &mut Builder, f: Value, dk: Value, c: Value) -> Value {
    let half = b.f64(0.5);
    let hf = b.mul(half, f);
    let hfsq = b.mul(hf, f);
    let two = b.f64(2.0);
    let d = b.add(two, f);
    let s = b.div(f, d);
    let z = b.mul(s, s);
    let w = b.mul(z, z);
    let t1p = horner(b, w, &[LG[1], LG[3], LG[5]]);
    let t1 = b.mul(w, t1p);
    let t2p = horner(b, w, &[LG[0], LG[2], LG[4], LG[6]]);
    let t2 = b.mul(z, t2p);
    let rr = b.add(t2, t1);
    let hr = b.add(hfsq, rr);
    let sr = b.mul(s, hr);
    let l2l = b.f64(LN2_LO);
    let l2h = b.f64(LN2_HI);
    let kl = b.mul(dk, l2l);
    let klc = b.add(kl, c);
    let acc = b.add(sr, klc);
    let acc = b.sub(acc, hfsq);
    let acc = b.add(acc, f);
    let kh = b.mul(dk, l2h);
    b.add(acc, kh)
}

/// Splits the bits of a positive normal `u` as `u = 2^k·m`, `m ∈ [√½, √2)`:
/// returns `(m, k)` with `k` an i64.
fn reduce_sqrt2(b: &mut Builder, u: Value) -> (Value, Value) {
    let bits = b.conv(Conv::F64Bits, u);
    let s32 = b.i64(32);
    let hx = b.shr_u(bits, s32);
    let adj = b.i64(0x3ff0_0000 - 0x3fe6_a09e);
    let hx = b.add(hx, adj);
    let s20 = b.i64(20);
    let e = b.shr_u(hx, s20);
    let bias = b.i64(0x3ff);
    let k = b.sub(e, bias);
    let mmask = b.i64(0x000f_ffff);
    let hm = b.and(hx, mmask);
    let base = b.i64(0x3fe6_a09e);
    let hm = b.add(hm, base);
    let hm = b.shl(hm, s32);
    let lmask = b.i64(0xffff_ffff);
    let lo = b.and(bits, lmask);
    let nb = b.binary(BinOp::Or, hm, lo);
    (b.conv(Conv::BitsF64, nb), k)
}

/// `(f, dk)` with `x = 2^dk·(1+f)`, `1+f ∈ [√½, √2)`, for finite `x > 0`
/// (subnormals included). Shared with `powf`.
pub(crate) fn log_reduce(b: &mut Builder, x: Value) -> (Value, Value) {
    let sub = cmp_c(b, CmpOp::Lt, x, f64::MIN_POSITIVE);
    let p54 = b.f64(f64::from_bits(0x4350_0000_0000_0000)); // 2^54
    let xs = b.mul(x, p54);
    let xs = b.select(sub, xs, x);
    let m54 = b.f64(-54.0);
    let zero = b.f64(0.0);
    let kadj = b.select(sub, m54, zero);
    let (m, k) = reduce_sqrt2(b, xs);
    let one = b.f64(1.0);
    let f = b.sub(m, one);
    let dk = b.conv(Conv::I64ToF64, k);
    let dk = b.add(dk, kadj);
    (f, dk)
}

/// Natural logarithm of an f64.
pub fn log_f64(b: &mut Builder, x: Value) -> Value {
    let (f, dk) = log_reduce(b, x);
    let zero = b.f64(0.0);
    let r = log_kernel(b, f, dk, zero);
    // specials: x<0 or NaN → NaN, 0 → -inf, +inf → +inf
    let pos = b.cmp(CmpOp::Gt, x, zero);
    let inf = b.f64(f64::INFINITY);
    let fin = b.cmp(CmpOp::Lt, x, inf);
    let ok = b.and(pos, fin);
    let ninf = b.f64(f64::NEG_INFINITY);
    let nan = b.f64(f64::NAN);
    let is0 = b.cmp(CmpOp::Eq, x, zero);
    let isinf = b.cmp(CmpOp::Eq, x, inf);
    let sp = b.select(isinf, inf, nan);
    let sp = b.select(is0, ninf, sp);
    b.select(ok, r, sp)
}

/// `ln(1+x)` of an f64.
pub fn log1p_f64(b: &mut Builder, x: Value) -> Value {
    let one = b.f64(1.0);
    let u = b.add(one, x);
    let (m, k) = reduce_sqrt2(b, u);
    let f_red = b.sub(m, one);
    let kf = b.conv(Conv::I64ToF64, k);
    // correction c = ((1+x) - u)/u for k < 54
    let um1 = b.sub(u, one);
    let c_small = b.sub(x, um1);
    let umx = b.sub(u, x);
    let c_big = b.sub(one, umx);
    let k_ge2 = cmp_c(b, CmpOp::Ge, kf, 2.0);
    let c = b.select(k_ge2, c_big, c_small);
    let c = b.div(c, u);
    let zero = b.f64(0.0);
    let k_lt54 = cmp_c(b, CmpOp::Lt, kf, 54.0);
    let c = b.select(k_lt54, c, zero);
    // 1+x already in [√½, √2): use x directly, k = 0, c = 0
    let lo = cmp_c(b, CmpOp::Gt, x, -0.292_893_218_813_452_4);
    let hi = cmp_c(b, CmpOp::Lt, x, 0.414_213_562_373_095);
    let near = b.and(lo, hi);
    let f = b.select(near, x, f_red);
    let dk = b.select(near, zero, kf);
    let c = b.select(near, zero, c);
    let r = log_kernel(b, f, dk, c);
    // specials
    let ax = b.abs(x);
    let tiny = cmp_c(b, CmpOp::Lt, ax, f64::from_bits(0x3ca0_0000_0000_0000)); // 2^-53
    let r = b.select(tiny, x, r);
    let inf = b.f64(f64::INFINITY);
    let isinf = b.cmp(CmpOp::Eq, x, inf);
    let r = b.select(isinf, inf, r);
    let m1 = b.f64(-1.0);
    let ism1 = b.cmp(CmpOp::Eq, x, m1);
    let ninf = b.f64(f64::NEG_INFINITY);
    let r = b.select(ism1, ninf, r);
    let ok = b.cmp(CmpOp::Ge, x, m1); // false for x < -1 and NaN
    let nan = b.f64(f64::NAN);
    b.select(ok, r, nan)
}
