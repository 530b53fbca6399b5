//! `powf` in f64: `exp(y·log|x|)` with `log` in double-double.

use super::exp_log::{exp_dd, log_reduce, LN2_HI, LN2_LO};
use super::{cmp_c, dd_add, dd_mul, fast_two_sum, horner, is_nan, two_prod, two_sum};
use crux_ir::kernel::{BinOp, Builder, CmpOp, UnOp, Value};

/// `2/3` as a double-double.
const TWO_THIRDS: (f64, f64) = (0.666_666_666_666_666_6, 3.700_743_415_417_188e-17);

/// `log x = hi + lo` to about 2⁻⁶⁸ relative, for finite `x > 0`.
fn log_dd(b: &mut Builder, x: Value) -> (Value, Value) {
    let (f, dk) = log_reduce(b, x);
    // s = f/(2+f) in double-double
    let two = b.f64(2.0);
    let (dh, dl) = two_sum(b, two, f);
    let sh = b.div(f, dh);
    let (p, pe) = two_prod(b, sh, dh);
    let rem = b.sub(f, p);
    let rem = b.sub(rem, pe);
    let sdl = b.mul(sh, dl);
    let rem = b.sub(rem, sdl);
    let sl = b.div(rem, dh);
    let (sh, sl) = fast_two_sum(b, sh, sl);
    // log(1+f) = 2s + (2/3)s³ + s⁵·(2/5 + 2/7·s² + …)
    let s2 = dd_mul(b, (sh, sl), (sh, sl));
    let s3 = dd_mul(b, s2, (sh, sl));
    let c3 = (b.f64(TWO_THIRDS.0), b.f64(TWO_THIRDS.1));
    let t3 = dd_mul(b, s3, c3);
    let z = b.mul(sh, sh);
    let coeffs: Vec<f64> = (2..=13).map(|k| 2.0 / (2 * k + 1) as f64).collect();
    let poly = horner(b, z, &coeffs);
    let s5 = b.mul(s3.0, z);
    let tail = b.mul(s5, poly);
    let s2h = b.add(sh, sh);
    let s2l = b.add(sl, sl);
    let l = dd_add(b, (s2h, s2l), t3);
    let zero = b.f64(0.0);
    let l = dd_add(b, l, (tail, zero));
    // + dk·ln2
    let l2h = b.f64(LN2_HI);
    let kh = b.mul(dk, l2h); // exact
    let l2l = b.f64(LN2_LO);
    let kl = two_prod(b, dk, l2l);
    let k = dd_add(b, (kh, zero), kl);
    dd_add(b, k, l)
}

/// `xʸ` of f64s with the C99 (IEEE 754 `pow`) special cases, as Rust's
/// `f64::powf`.
pub fn powf_f64(b: &mut Builder, x: Value, y: Value) -> Value {
    let ax = b.abs(x);
    let (lh, ll) = log_dd(b, ax);
    let (ph, pe) = two_prod(b, y, lh);
    let yl = b.mul(y, ll);
    let pl = b.add(pe, yl);
    let (ph2, pl) = fast_two_sum(b, ph, pl);
    // Far outside exp's range (or non-finite) the low part is meaningless
    // (possibly NaN from the splitting): keep the plain product.
    let fine = super::abs_lt(b, ph, 1000.0);
    let fine_l = super::abs_lt(b, pl, f64::INFINITY);
    let fine = b.and(fine, fine_l);
    let ph = b.select(fine, ph2, ph);
    let zero = b.f64(0.0);
    let pl = b.select(fine, pl, zero);
    let g = exp_dd(b, ph, pl);

    let one = b.f64(1.0);
    let inf = b.f64(f64::INFINITY);
    let nan = b.f64(f64::NAN);
    // integer / odd-integer tests on y
    let ty = b.unary(UnOp::Trunc, y);
    let yint = b.cmp(CmpOp::Eq, ty, y);
    let half = b.f64(0.5);
    let hy = b.mul(y, half);
    let thy = b.unary(UnOp::Trunc, hy);
    let noth = b.cmp(CmpOp::Ne, thy, hy);
    let ay = b.abs(y);
    let small = cmp_c(b, CmpOp::Lt, ay, 9_007_199_254_740_992.0);
    let yodd = b.and(yint, noth);
    let yodd = b.and(yodd, small);
    // general case with the sign for negative x
    let xneg = b.cmp(CmpOp::Lt, x, zero);
    let ng = b.neg(g);
    let flip = b.and(xneg, yodd);
    let res = b.select(flip, ng, g);
    let notint = b.unary(UnOp::Not, yint);
    let bad = b.and(xneg, notint);
    let res = b.select(bad, nan, res);
    // x = ±0 or ±inf
    let ylt0 = b.cmp(CmpOp::Lt, y, zero);
    let z0 = b.select(ylt0, inf, zero);
    let zi = b.select(ylt0, zero, inf);
    let x0 = b.cmp(CmpOp::Eq, ax, zero);
    let xinf = b.cmp(CmpOp::Eq, ax, inf);
    let base = b.select(x0, z0, zi);
    let sb = b.binary(BinOp::Copysign, base, x);
    let base = b.select(yodd, sb, base);
    let edge = b.binary(BinOp::Or, x0, xinf);
    let res = b.select(edge, base, res);
    // y = ±inf
    let yinf = b.cmp(CmpOp::Eq, ay, inf);
    let axlt1 = b.cmp(CmpOp::Lt, ax, one);
    let same = b.binary(BinOp::Xor, axlt1, ylt0);
    let yi = b.select(same, zero, inf);
    let ax1 = b.cmp(CmpOp::Eq, ax, one);
    let yi = b.select(ax1, one, yi);
    let res = b.select(yinf, yi, res);
    // NaN operands, then the cases that are 1 even with NaN
    let xn = is_nan(b, x);
    let yn = is_nan(b, y);
    let anyn = b.binary(BinOp::Or, xn, yn);
    let res = b.select(anyn, nan, res);
    let y0 = b.cmp(CmpOp::Eq, y, zero);
    let x1 = b.cmp(CmpOp::Eq, x, one);
    let unit = b.binary(BinOp::Or, y0, x1);
    b.select(unit, one, res)
}
