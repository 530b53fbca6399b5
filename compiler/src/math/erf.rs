//! `erf` in f64: fdlibm's piecewise rational approximations (published
//! coefficients, given by their bits), evaluated on every piece and merged
//! with selects.

use super::{cmp_c, exp_log::exp_f64, horner};
use crux_ir::kernel::{BinOp, Builder, CmpOp, Conv, Value};

const fn h(bits: u64) -> f64 {
    f64::from_bits(bits)
}

/// `erf(1)` rounded to 24 bits.
const ERX: f64 = h(0x3feb_0ac1_6000_0000);
/// `2/√π − 1`.
const EFX: f64 = h(0x3fc0_6eba_8214_db69);
/// `erf(x) = x + x·PP(x²)/QQ(x²)` on `[0, 0.84375)`.
const PP: [f64; 5] = [
    h(0x3fc0_6eba_8214_db68),
    h(0xbfd4_cd7d_691c_b913),
    h(0xbf9d_2a51_dbd7_194f),
    h(0xbf77_a291_2366_68e4),
    h(0xbef8_ead6_1200_16ac),
];
const QQ: [f64; 6] = [
    1.0,
    h(0x3fd9_7779_cdda_dc09),
    h(0x3fb0_a54c_5536_ceba),
    h(0x3f74_d022_c4d3_6b0f),
    h(0x3f21_5dc9_221c_1a10),
    h(0xbed0_9c43_42a2_6120),
];
/// `erf(x) = ERX + PA(s)/QA(s)`, `s = x − 1`, on `[0.84375, 1.25)`.
const PA: [f64; 7] = [
    h(0xbf63_59b8_bef7_7538),
    h(0x3fda_8d00_ad92_b34d),
    h(0xbfd7_d240_fbb8_c3f1),
    h(0x3fd4_5fca_8051_20e4),
    h(0xbfbc_6398_3d3e_28ec),
    h(0x3fa2_2a36_5997_95eb),
    h(0xbf61_bf38_0a96_073f),
];
const QA: [f64; 7] = [
    1.0,
    h(0x3fbb_3e66_18ee_e323),
    h(0x3fe1_4af0_92eb_6f33),
    h(0x3fb2_635c_d99f_e9a7),
    h(0x3fc0_2660_e763_351f),
    h(0x3f8b_edc2_6b51_dd1c),
    h(0x3f88_8b54_5735_151d),
];
/// `erfc(x) = exp(−x² − 0.5625 + RA(1/x²)/SA(1/x²))/x` on `[1.25, 1/0.35)`.
const RA: [f64; 8] = [
    h(0xbf84_3412_600d_6435),
    h(0xbfe6_3416_e4ba_7360),
    h(0xc025_1e04_41b0_e726),
    h(0xc04f_300a_e4cb_a38d),
    h(0xc064_4cb1_8428_2266),
    h(0xc067_135c_ebcc_abb2),
    h(0xc054_5265_57e4_d2f2),
    h(0xc023_a0ef_c69a_c25c),
];
const SA: [f64; 9] = [
    1.0,
    h(0x4033_a6b9_bd70_7687),
    h(0x4061_350c_526a_e721),
    h(0x407b_290d_d58a_1a71),
    h(0x4084_2b19_21ec_2868),
    h(0x407a_d021_5770_0314),
    h(0x405b_28a3_ee48_ae2c),
    h(0x401a_47ef_8e48_4a93),
    h(0xbfae_eff2_ee74_9a62),
];
/// The same form on `[1/0.35, 6)`.
const RB: [f64; 7] = [
    h(0xbf84_3412_39e8_6f4a),
    h(0xbfe9_93ba_70c2_85de),
    h(0xc031_c209_555f_995a),
    h(0xc064_145d_43c5_ed98),
    h(0xc083_ec88_1375_f228),
    h(0xc090_0461_6a2e_5992),
    h(0xc07e_384e_9bdc_383f),
];
const SB: [f64; 8] = [
    1.0,
    h(0x403e_568b_261d_5190),
    h(0x4074_5cae_221b_9f0a),
    h(0x4098_02eb_189d_5118),
    h(0x40a8_ffb7_688c_246a),
    h(0x40a3_f219_cedf_3be6),
    h(0x407d_a874_e79f_e763),
    h(0xc036_70e2_4271_2d62),
];

/// The error function of an f64.
pub fn erf_f64(b: &mut Builder, x: Value) -> Value {
    let ax = b.abs(x);
    let one = b.f64(1.0);
    // [0, 0.84375): x + x·P/Q
    let z = b.mul(x, x);
    let r = horner(b, z, &PP);
    let s = horner(b, z, &QQ);
    let y = b.div(r, s);
    let xy = b.mul(x, y);
    let small = b.add(x, xy);
    // tiny: (8x + 8·efx·x)/8, scaled so subnormal x keep their accuracy
    let eight = b.f64(8.0);
    let x8 = b.mul(eight, x);
    let efx8 = b.f64(8.0 * EFX);
    let ex = b.mul(efx8, x);
    let tiny = b.add(x8, ex);
    let eighth = b.f64(0.125);
    let tiny = b.mul(eighth, tiny);
    // [0.84375, 1.25): ±(erx + P/Q)
    let s1 = b.sub(ax, one);
    let p = horner(b, s1, &PA);
    let q = horner(b, s1, &QA);
    let pq = b.div(p, q);
    let erx = b.f64(ERX);
    let mid = b.add(erx, pq);
    // [1.25, 6): 1 − exp(−z² − 0.5625)·exp((z−x)(z+x) + R/S)/x, z = x
    // with its low 32 bits cleared (so z² is exact)
    let ax2 = b.mul(ax, ax);
    let inv = b.div(one, ax2);
    let ra = horner(b, inv, &RA);
    let sa = horner(b, inv, &SA);
    let rb = horner(b, inv, &RB);
    let sb = horner(b, inv, &SB);
    let near = cmp_c(b, CmpOp::Lt, ax, 1.0 / 0.35);
    let rr = b.select(near, ra, rb);
    let ss = b.select(near, sa, sb);
    let bits = b.conv(Conv::F64Bits, ax);
    let mask = b.i64(!0xffff_ffff_i64);
    let zb = b.and(bits, mask);
    let zz = b.conv(Conv::BitsF64, zb);
    let zz2 = b.mul(zz, zz);
    let c = b.f64(0.5625);
    let e1 = b.add(zz2, c);
    let e1 = b.neg(e1);
    let e1 = exp_f64(b, e1);
    let d1 = b.sub(zz, ax);
    let d2 = b.add(zz, ax);
    let d = b.mul(d1, d2);
    let rs = b.div(rr, ss);
    let e2 = b.add(d, rs);
    let e2 = exp_f64(b, e2);
    let ee = b.mul(e1, e2);
    let ee = b.div(ee, ax);
    let far = b.sub(one, ee);
    // merge by |x|, sign by x
    let in_far = cmp_c(b, CmpOp::Lt, ax, 6.0);
    let big = b.select(in_far, far, one);
    let in_mid = cmp_c(b, CmpOp::Lt, ax, 1.25);
    let big = b.select(in_mid, mid, big);
    let big = b.binary(BinOp::Copysign, big, x);
    let in_small = cmp_c(b, CmpOp::Lt, ax, 0.843_75);
    let res = b.select(in_small, small, big);
    let is_tiny = cmp_c(b, CmpOp::Lt, ax, f64::from_bits(0x3e30_0000_0000_0000)); // 2^-28
    let res = b.select(is_tiny, tiny, res);
    // NaN stays NaN (copysign/selects above would keep it, but be explicit)
    let nan = super::is_nan(b, x);
    b.select(nan, x, res)
}
