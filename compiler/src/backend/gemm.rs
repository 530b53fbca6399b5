//! The matrix product that compiled kernels call for the IR's
//! [`InstKind::Gemm`](crux_ir::kernel::InstKind::Gemm): `out = a · b`, every
//! entry its own chain of fused multiply-adds ascending in `l` from `+0.0`
//! (the interpreter's order), so the result is bit-identical to the
//! interpreter whatever the vector width.
//!
//! # Why a routine and not generated code
//!
//! Cranelift 0.135 compiles vectors of at most 128 bits on x86-64 (see
//! `benches/results/simd-probe.md`): two f64 lanes. This routine is
//! compiled by rustc once per instruction set — AVX-512F (8 lanes), AVX2 +
//! FMA (4 lanes), and portable scalar code (`f64::mul_add`) — and the
//! Cranelift backend calls the best one the CPU has (chosen once per
//! process, [`Isa::best`]). Its C ABI is [`GemmFn`]; object files for
//! ahead-of-time builds import it as [`SYMBOL`], which this crate exports
//! ([`crux_gemm_f64`], dispatching the same way).
//!
//! # How
//!
//! Output entries are computed in register tiles of `R` rows × `V`
//! vectors of `W` lanes (AVX-512: 6 × 4 × 8, AVX2: 6 × 2 × 4, portable:
//! 4 × 3 × 1; products of one or two rows: up to 8, 4 and 3 vectors): per step `l`, `V` vectors of `b`'s row `l` are loaded, each
//! of the `R` entries `a[i, l]` broadcast, and `R·V` fused multiply-adds
//! issued, one per accumulator. Vectorising across output *columns* keeps
//! every entry's chain intact. Tails use masked loads and stores (or, for
//! AVX2 and the portable code, partial ones). When `n` is too narrow for
//! the lanes and `m` is wider, the transposed product `outᵀ = bᵀ · aᵀ` is
//! computed instead (the same chains: a product of two floats does not
//! depend on their order). A right operand whose columns are not adjacent
//! (`cs ≠ 1`) is first copied into a row-major panel.

/// The routine's C ABI: `out[i·o_rs + j·o_cs] = Σ_l a[i·a_rs + l·a_cs] ·
/// b[l·b_rs + j·b_cs]` for `i < m`, `j < n`, `l < k` (fused, ascending).
///
/// # Safety
///
/// Every index the three views touch must be in bounds of their
/// allocations, the output entries distinct and not overlapping the
/// operands, and `m, n, k ≥ 1` (what the IR's verifier and the extent
/// checks before the call guarantee).
pub type GemmFn = unsafe extern "C" fn(
    m: u64,
    n: u64,
    k: u64,
    a: *const f64,
    a_rs: u64,
    a_cs: u64,
    b: *const f64,
    b_rs: u64,
    b_cs: u64,
    out: *mut f64,
    o_rs: u64,
    o_cs: u64,
);

/// The symbol compiled code imports for a matrix product.
pub const SYMBOL: &str = "crux_gemm_f64";

/// The instruction sets the routine is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 8 lanes, 32 registers.
    Avx512,
    /// AVX2 with FMA: 4 lanes, 16 registers.
    Avx2,
    /// Scalar `f64::mul_add` (an FMA instruction where the CPU has one,
    /// the correctly rounded libm `fma` otherwise): any target.
    Portable,
}

impl Isa {
    /// Every variant, fastest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
            Isa::Portable => true,
        }
    }

    /// The fastest one this CPU runs (detected once).
    pub fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .find(|i| i.available())
                .unwrap_or(Isa::Portable)
        })
    }

    /// The routine for this instruction set, or `None` when the CPU lacks
    /// it.
    pub fn routine(self) -> Option<GemmFn> {
        if !self.available() {
            return None;
        }
        Some(match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::gemm_avx512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::gemm_avx2,
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => return None,
            Isa::Portable => gemm_portable,
        })
    }
}

/// The exported routine (for object files): the best one for this CPU.
///
/// # Safety
///
/// As [`GemmFn`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn crux_gemm_f64(
    m: u64,
    n: u64,
    k: u64,
    a: *const f64,
    a_rs: u64,
    a_cs: u64,
    b: *const f64,
    b_rs: u64,
    b_cs: u64,
    out: *mut f64,
    o_rs: u64,
    o_cs: u64,
) {
    let f = Isa::best().routine().unwrap_or(gemm_portable as GemmFn);
    // SAFETY: the caller's contract is the routine's.
    unsafe { f(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, out, o_rs, o_cs) }
}

/// A product to compute (strides in elements).
#[derive(Clone, Copy)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: *const f64,
    a_rs: usize,
    a_cs: usize,
    b: *const f64,
    b_rs: usize,
    b_cs: usize,
    out: *mut f64,
    o_rs: usize,
    o_cs: usize,
}

impl Problem {
    /// `outᵀ = bᵀ · aᵀ`: the same entries, rows and columns swapped.
    fn transposed(self) -> Problem {
        Problem {
            m: self.n,
            n: self.m,
            k: self.k,
            a: self.b,
            a_rs: self.b_cs,
            a_cs: self.b_rs,
            b: self.a,
            b_rs: self.a_cs,
            b_cs: self.a_rs,
            out: self.out,
            o_rs: self.o_cs,
            o_cs: self.o_rs,
        }
    }
}

/// Fraction of vector lanes a row of `n` entries fills.
fn lane_use(n: usize, w: usize) -> f64 {
    n as f64 / (n.div_ceil(w) * w) as f64
}

/// One instruction set's vector operations on `W` f64 lanes.
trait Lanes {
    /// Lanes per vector.
    const W: usize;
    /// Tile rows.
    const R: usize;
    /// Tile vectors.
    const V: usize;
    /// Tile vectors when the product has at most two rows (a transposed
    /// matrix–vector product): more independent chains per row.
    const VN: usize;
    /// A vector.
    type V: Copy;
    /// Which lanes of a tail vector are in the matrix.
    type M: Copy;
    /// All lanes `+0.0`.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f64) -> Self::V;
    /// The mask of lanes `0..cnt` (`1 ≤ cnt ≤ W`).
    unsafe fn tail(cnt: usize) -> Self::M;
    /// `W` lanes from `p`.
    unsafe fn load(p: *const f64) -> Self::V;
    /// The lanes of `m` from `p`, the others `+0.0` (and not read).
    unsafe fn load_tail(p: *const f64, m: Self::M) -> Self::V;
    /// `a·b + c` per lane, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lanes `0..cnt` to `p`, `p + stride`, … (`cnt ≤ W`).
    unsafe fn store(p: *mut f64, stride: usize, v: Self::V, cnt: usize);
}

/// One tile: rows `i0..i0 + R`, columns `j0..j0 + cols` (`cols` in
/// `((V−1)·W, V·W]`), `b` with unit column stride.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const V: usize>(
    p: &Problem,
    i0: usize,
    j0: usize,
    cols: usize,
) {
    let cnt = |v: usize| (cols - v * L::W).min(L::W);
    // SAFETY (whole body): every pointer formed is an element of a view
    // the caller guarantees in bounds (rows < m, columns < n, l < k).
    unsafe {
        // Only the last vector may be partial: its mask is set once, so
        // the loop over `l` has no lane-count tests.
        let last = L::tail(cnt(V - 1));
        let mut acc = [[L::zero(); V]; R];
        let mut arow = [p.a; R];
        for (r, a) in arow.iter_mut().enumerate() {
            *a = p.a.add((i0 + r) * p.a_rs);
        }
        for l in 0..p.k {
            let brow = p.b.add(l * p.b_rs + j0);
            let mut bv = [L::zero(); V];
            for (v, x) in bv.iter_mut().enumerate().take(V - 1) {
                *x = L::load(brow.add(v * L::W));
            }
            bv[V - 1] = L::load_tail(brow.add((V - 1) * L::W), last);
            for r in 0..R {
                let x = L::splat(*arow[r].add(l * p.a_cs));
                for v in 0..V {
                    acc[r][v] = L::fma(x, bv[v], acc[r][v]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let orow = p.out.add((i0 + r) * p.o_rs + j0 * p.o_cs);
            for (v, x) in row.iter().enumerate() {
                L::store(orow.add(v * L::W * p.o_cs), p.o_cs, *x, cnt(v));
            }
        }
    }
}

/// Calls `tile::<L, r, v>` for runtime `r ≤ 6`, `v ≤ 4` (`v ≤ 8` when
/// `r ≤ 2`).
macro_rules! dispatch {
    ($L:ty, $r:expr, $v:expr, $($arg:expr),*) => {
        match ($r, $v) {
            (1, 1) => tile::<$L, 1, 1>($($arg),*),
            (1, 2) => tile::<$L, 1, 2>($($arg),*),
            (1, 3) => tile::<$L, 1, 3>($($arg),*),
            (1, 4) => tile::<$L, 1, 4>($($arg),*),
            (2, 1) => tile::<$L, 2, 1>($($arg),*),
            (2, 2) => tile::<$L, 2, 2>($($arg),*),
            (2, 3) => tile::<$L, 2, 3>($($arg),*),
            (2, 4) => tile::<$L, 2, 4>($($arg),*),
            (3, 1) => tile::<$L, 3, 1>($($arg),*),
            (3, 2) => tile::<$L, 3, 2>($($arg),*),
            (3, 3) => tile::<$L, 3, 3>($($arg),*),
            (3, 4) => tile::<$L, 3, 4>($($arg),*),
            (4, 1) => tile::<$L, 4, 1>($($arg),*),
            (4, 2) => tile::<$L, 4, 2>($($arg),*),
            (4, 3) => tile::<$L, 4, 3>($($arg),*),
            (4, 4) => tile::<$L, 4, 4>($($arg),*),
            (5, 1) => tile::<$L, 5, 1>($($arg),*),
            (5, 2) => tile::<$L, 5, 2>($($arg),*),
            (5, 3) => tile::<$L, 5, 3>($($arg),*),
            (5, 4) => tile::<$L, 5, 4>($($arg),*),
            (6, 1) => tile::<$L, 6, 1>($($arg),*),
            (6, 2) => tile::<$L, 6, 2>($($arg),*),
            (6, 3) => tile::<$L, 6, 3>($($arg),*),
            (6, 4) => tile::<$L, 6, 4>($($arg),*),
            (1, 5) => tile::<$L, 1, 5>($($arg),*),
            (1, 6) => tile::<$L, 1, 6>($($arg),*),
            (1, 7) => tile::<$L, 1, 7>($($arg),*),
            (1, 8) => tile::<$L, 1, 8>($($arg),*),
            (2, 5) => tile::<$L, 2, 5>($($arg),*),
            (2, 6) => tile::<$L, 2, 6>($($arg),*),
            (2, 7) => tile::<$L, 2, 7>($($arg),*),
            (2, 8) => tile::<$L, 2, 8>($($arg),*),
            (1, 9) => tile::<$L, 1, 9>($($arg),*),
            (1, 10) => tile::<$L, 1, 10>($($arg),*),
            (1, 11) => tile::<$L, 1, 11>($($arg),*),
            (1, 12) => tile::<$L, 1, 12>($($arg),*),
            (1, 13) => tile::<$L, 1, 13>($($arg),*),
            (1, 14) => tile::<$L, 1, 14>($($arg),*),
            (1, 15) => tile::<$L, 1, 15>($($arg),*),
            (1, 16) => tile::<$L, 1, 16>($($arg),*),
            _ => unreachable!("tiles have 1 to 6 rows and 1 to 4 vectors, or 1 to 2 rows and 5 to 8"),
        }
    };
}

/// The whole product with `L`'s tiles (see the module documentation).
#[inline(always)]
unsafe fn drive<L: Lanes>(p: Problem) {
    let p = if lane_use(p.m, L::W) > lane_use(p.n, L::W) {
        p.transposed()
    } else {
        p
    };
    if p.b_cs == 1 {
        // SAFETY: the caller's contract.
        unsafe { blocks::<L>(&p) };
        return;
    }
    // Not a thread-local behind a closure: a closure is not compiled with
    // the caller's target features, so the vector tiles inlined into it
    // would call every intrinsic out of line.
    let mut panel: Vec<f64> = Vec::with_capacity(p.k * p.n);
    let dst = panel.as_mut_ptr();
    for l in 0..p.k {
        for j in 0..p.n {
            // SAFETY: element (l, j) of the right operand, and slot
            // l·n + j of the panel's capacity.
            unsafe { *dst.add(l * p.n + j) = *p.b.add(l * p.b_rs + j * p.b_cs) };
        }
    }
    // SAFETY: all k·n slots were just written.
    unsafe { panel.set_len(p.k * p.n) };
    let packed = Problem {
        b: panel.as_ptr(),
        b_rs: p.n,
        b_cs: 1,
        ..p
    };
    // SAFETY: the panel holds the k × n right operand row-major.
    unsafe { blocks::<L>(&packed) };
}

/// Every tile, column blocks outermost (a block of `b` stays in cache
/// across the rows).
#[inline(always)]
unsafe fn blocks<L: Lanes>(p: &Problem) {
    let width = match p.m {
        1 => L::VN,
        2 => L::VN.min(8),
        _ => L::V,
    } * L::W;
    let mut j0 = 0;
    while j0 < p.n {
        let cols = width.min(p.n - j0);
        let v = cols.div_ceil(L::W);
        let mut i0 = 0;
        while i0 < p.m {
            let r = L::R.min(p.m - i0);
            // SAFETY: rows i0..i0+r < m, columns j0..j0+cols ≤ n.
            unsafe { dispatch!(L, r, v, p, i0, j0, cols) };
            i0 += r;
        }
        j0 += cols;
    }
}

/// Builds the problem from the C arguments.
#[allow(clippy::too_many_arguments)]
fn problem(
    m: u64,
    n: u64,
    k: u64,
    a: *const f64,
    a_rs: u64,
    a_cs: u64,
    b: *const f64,
    b_rs: u64,
    b_cs: u64,
    out: *mut f64,
    o_rs: u64,
    o_cs: u64,
) -> Problem {
    Problem {
        m: m as usize,
        n: n as usize,
        k: k as usize,
        a,
        a_rs: a_rs as usize,
        a_cs: a_cs as usize,
        b,
        b_rs: b_rs as usize,
        b_cs: b_cs as usize,
        out,
        o_rs: o_rs as usize,
        o_cs: o_cs as usize,
    }
}

/// Scalar lanes (`W = 1`).
struct Portable;

impl Lanes for Portable {
    const W: usize = 1;
    const R: usize = 4;
    const V: usize = 3;
    const VN: usize = 3;
    type V = f64;
    type M = ();
    #[inline(always)]
    unsafe fn zero() -> f64 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    unsafe fn tail(_cnt: usize) {}
    #[inline(always)]
    unsafe fn load(p: *const f64) -> f64 {
        // SAFETY: the caller's lane is in bounds.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f64, _m: ()) -> f64 {
        // SAFETY: one lane, always in the matrix.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, _stride: usize, v: f64, _cnt: usize) {
        // SAFETY: as `load`.
        unsafe { *p = v }
    }
}

/// Defines an `unsafe extern "C"` function of the [`GemmFn`] ABI that
/// computes the product with `$lanes`'s tiles (attributes, such as the
/// target features, go first).
macro_rules! entry {
    ($(#[$attr:meta])* $vis:vis fn $name:ident with $lanes:ty) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe extern "C" fn $name(
            m: u64,
            n: u64,
            k: u64,
            a: *const f64,
            a_rs: u64,
            a_cs: u64,
            b: *const f64,
            b_rs: u64,
            b_cs: u64,
            out: *mut f64,
            o_rs: u64,
            o_cs: u64,
        ) {
            let p = problem(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, out, o_rs, o_cs);
            // SAFETY: the caller's contract.
            unsafe { drive::<$lanes>(p) }
        }
    };
}

entry!(
    /// [`GemmFn`] in portable scalar code.
    ///
    /// # Safety
    ///
    /// As [`GemmFn`].
    fn gemm_portable with Portable
);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{drive, problem, Lanes};

    /// 8 lanes of AVX-512F (masked loads and stores at the tails).
    pub(super) struct Avx512;

    /// The low `cnt` lanes.
    #[inline(always)]
    fn mask8(cnt: usize) -> __mmask8 {
        ((1u32 << cnt) - 1) as __mmask8
    }

    impl Lanes for Avx512 {
        const W: usize = 8;
        const R: usize = 6;
        const V: usize = 4;
        const VN: usize = 16;
        type V = __m512d;
        type M = __mmask8;
        #[inline(always)]
        unsafe fn zero() -> __m512d {
            unsafe { _mm512_setzero_pd() }
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> __m512d {
            unsafe { _mm512_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn tail(cnt: usize) -> __mmask8 {
            mask8(cnt)
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> __m512d {
            // SAFETY: the caller's 8 lanes are in bounds.
            unsafe { _mm512_loadu_pd(p) }
        }
        #[inline(always)]
        unsafe fn load_tail(p: *const f64, m: __mmask8) -> __m512d {
            // SAFETY: the lanes of `m` are in bounds; the others are not
            // read.
            unsafe { _mm512_maskz_loadu_pd(m, p) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
            unsafe { _mm512_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f64, stride: usize, v: __m512d, cnt: usize) {
            // SAFETY: lanes 0..cnt are in bounds (masked-off lanes are not
            // written).
            unsafe {
                if stride == 1 {
                    if cnt == 8 {
                        _mm512_storeu_pd(p, v)
                    } else {
                        _mm512_mask_storeu_pd(p, mask8(cnt), v)
                    }
                } else {
                    let mut t = [0.0f64; 8];
                    _mm512_storeu_pd(t.as_mut_ptr(), v);
                    for (q, x) in t.iter().take(cnt).enumerate() {
                        *p.add(q * stride) = *x;
                    }
                }
            }
        }
    }

    /// 4 lanes of AVX2 with FMA (partial loads and stores at the tails).
    pub(super) struct Avx2;

    impl Lanes for Avx2 {
        const W: usize = 4;
        const R: usize = 6;
        const V: usize = 2;
        const VN: usize = 4;
        type V = __m256d;
        type M = __m256i;
        #[inline(always)]
        unsafe fn zero() -> __m256d {
            unsafe { _mm256_setzero_pd() }
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> __m256d {
            unsafe { _mm256_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn tail(cnt: usize) -> __m256i {
            // Lane q is loaded when its sign bit is set: q < cnt.
            let on = |q: usize| if q < cnt { -1i64 } else { 0 };
            unsafe { _mm256_setr_epi64x(on(0), on(1), on(2), on(3)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> __m256d {
            // SAFETY: the caller's 4 lanes are in bounds.
            unsafe { _mm256_loadu_pd(p) }
        }
        #[inline(always)]
        unsafe fn load_tail(p: *const f64, m: __m256i) -> __m256d {
            // SAFETY: the lanes of `m` are in bounds; the others are not
            // read (and come back +0.0).
            unsafe { _mm256_maskload_pd(p, m) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            unsafe { _mm256_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f64, stride: usize, v: __m256d, cnt: usize) {
            // SAFETY: lanes 0..cnt are in bounds; only those are written.
            unsafe {
                if stride == 1 && cnt == 4 {
                    _mm256_storeu_pd(p, v)
                } else {
                    let mut t = [0.0f64; 4];
                    _mm256_storeu_pd(t.as_mut_ptr(), v);
                    for (q, x) in t.iter().take(cnt).enumerate() {
                        *p.add(q * stride) = *x;
                    }
                }
            }
        }
    }

    entry!(
        /// [`super::GemmFn`] with AVX-512F.
        ///
        /// # Safety
        ///
        /// As [`super::GemmFn`], on a CPU with AVX-512F.
        #[target_feature(enable = "avx512f")]
        pub(super) fn gemm_avx512 with Avx512
    );

    entry!(
        /// [`super::GemmFn`] with AVX2 and FMA.
        ///
        /// # Safety
        ///
        /// As [`super::GemmFn`], on a CPU with AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(super) fn gemm_avx2 with Avx2
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of awkward doubles (mixed magnitudes and
    /// signs, so rounding differs between fused and separate operations).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
            let e = ((self.0 >> 3) % 9) as i32 - 4;
            (2.0 * u - 1.0) * 10f64.powi(e)
        }
    }

    /// The IR's semantics, entry by entry.
    fn reference(p: &Problem, a: &[f64], b: &[f64], out: &mut [f64]) {
        for i in 0..p.m {
            for j in 0..p.n {
                let mut acc = 0.0f64;
                for l in 0..p.k {
                    acc = a[i * p.a_rs + l * p.a_cs].mul_add(b[l * p.b_rs + j * p.b_cs], acc);
                }
                out[i * p.o_rs + j * p.o_cs] = acc;
            }
        }
    }

    /// Runs `isa`'s routine on a product with the given layout flags and
    /// compares it with [`reference`] bit for bit (padding untouched).
    fn check(isa: Isa, (m, n, k): (usize, usize, usize), layout: u8, seed: u64) {
        let Some(f) = isa.routine() else { return };
        let mut g = Gen(seed);
        // a: row-major, column-major or broadcast rows; b likewise.
        let (a_rs, a_cs) = match layout % 3 {
            0 => (k + 1, 1),
            1 => (1, m + 2),
            _ => (0, 1),
        };
        let (b_rs, b_cs) = match (layout / 3) % 3 {
            0 => (n, 1),
            1 => (1, k),
            _ => (1, 0),
        };
        let (o_rs, o_cs) = if (layout / 9).is_multiple_of(2) {
            (n + 3, 1)
        } else {
            (1, m)
        };
        let last = |rs: usize, cs: usize, r: usize, c: usize| (r - 1) * rs + (c - 1) * cs + 1;
        let a: Vec<f64> = (0..last(a_rs, a_cs, m, k)).map(|_| g.next()).collect();
        let b: Vec<f64> = (0..last(b_rs, b_cs, k, n)).map(|_| g.next()).collect();
        let olen = last(o_rs, o_cs, m, n);
        let p = Problem {
            m,
            n,
            k,
            a: a.as_ptr(),
            a_rs,
            a_cs,
            b: b.as_ptr(),
            b_rs,
            b_cs,
            out: std::ptr::null_mut(),
            o_rs,
            o_cs,
        };
        let mut want = vec![7.5; olen];
        reference(&p, &a, &b, &mut want);
        let mut got = vec![7.5; olen];
        // SAFETY: the views are in bounds by construction, the output
        // entries distinct (padding between rows or column-major).
        unsafe {
            f(
                m as u64,
                n as u64,
                k as u64,
                a.as_ptr(),
                a_rs as u64,
                a_cs as u64,
                b.as_ptr(),
                b_rs as u64,
                b_cs as u64,
                got.as_mut_ptr(),
                o_rs as u64,
                o_cs as u64,
            )
        };
        let same = want
            .iter()
            .zip(&got)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "{isa:?} {m}x{n}x{k} layout {layout}: differs from the fused chains"
        );
    }

    #[test]
    fn every_isa_matches_the_interpreters_chains_bit_for_bit() {
        let shapes = [
            (1, 1, 1),
            (1, 100, 100),
            (100, 1, 100),
            (101, 32, 32),
            (32, 32, 101),
            (7, 9, 5),
            (13, 17, 3),
            (6, 33, 2),
            (2, 2, 40),
        ];
        let mut seed = 1;
        for isa in Isa::ALL {
            for &shape in &shapes {
                for layout in 0..18 {
                    check(isa, shape, layout, seed);
                    seed += 1;
                }
            }
        }
    }

    #[test]
    fn the_portable_routine_always_exists_and_best_is_available() {
        assert!(Isa::Portable.routine().is_some());
        assert!(Isa::best().available());
    }

    #[test]
    fn fused_chains_differ_from_separate_roundings() {
        // (1 + 2⁻³⁰)·(−1 − 2⁻²⁹) has a 2⁻⁵⁹ term that a separate multiply
        // rounds away and the fused second step keeps.
        let x = 1.0 + 2f64.powi(-30);
        let a = [x, x];
        let b = [x, -1.0 - 2f64.powi(-29)];
        for isa in Isa::ALL {
            let Some(f) = isa.routine() else { continue };
            let mut out = [0.0];
            // SAFETY: 1×1×2 product of in-bounds arrays.
            unsafe {
                f(
                    1,
                    1,
                    2,
                    a.as_ptr(),
                    2,
                    1,
                    b.as_ptr(),
                    1,
                    1,
                    out.as_mut_ptr(),
                    1,
                    1,
                )
            };
            let fused = x.mul_add(b[1], x.mul_add(x, 0.0));
            assert_eq!(out[0].to_bits(), fused.to_bits(), "{isa:?}");
            assert_ne!(out[0], x * x + x * b[1], "{isa:?}");
        }
    }
}
