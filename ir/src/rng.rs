//! Counter-based random numbers: Philox-4x32-10 (Salmon et al., SC'11).
//!
//! A draw is a pure function of `(seed, stream, counter)`: no generator
//! state is carried, so the same draw comes out whatever the thread count,
//! the chunking of a run, or the backend. The kernel IR exposes the same
//! function as an instruction; the definitions here are its reference.
//!
//! Layout: the 64-bit seed is the key `[lo, hi]`; the counter block is
//! `[counter lo, counter hi, stream lo, stream hi]`.
//!
//! # Sampler draw counters
//!
//! A chain's sampler draws all use the stream `stream(Purpose::Sampler,
//! chain)`; the 64-bit counter says which draw it is:
//!
//! ```text
//! bit   63     62 … 40        39 … 32      31 … 0
//!       init   sweep (23)     model (8)    k: draw within the step (32)
//! ```
//!
//! * [`draw_counter`]`(sweep, model, k)`: draw `k` of the step of model
//!   `model` (its index in the solve's Gibbs sweep) at sweep `sweep`. The
//!   compiled chunk function builds the same bits at run time from
//!   [`SWEEP_SHIFT`] and [`MODEL_SHIFT`].
//! * [`init_counter`]`(k)`: the host's draws before sampling starts (the
//!   initial jitter of entry `k` of the position), marked by [`INIT_BIT`].
//!
//! Minibatch inclusion draws (stochastic-gradient kernels with a batch
//! size) use the same counters on their own stream,
//! `stream(Purpose::Minibatch, chain)`: draw `k` of model `model` at sweep
//! `sweep` decides whether point `k` of the model's subsampled constraints
//! is in that step's batch.
//!
//! The fields cannot overlap while `sweep <` [`MAX_SWEEPS`], `model <`
//! [`MAX_MODELS`] and `k <` [`MAX_DRAWS_PER_STEP`]; the compiler and the
//! runtime reject solves beyond these limits, so every draw of a solve has
//! its own counter and no draw during sampling reuses an init draw.

/// What a random stream is for. Each purpose owns the streams whose top
/// byte is its tag, so draws for different purposes never share Philox
/// words even under the same seed (a network initialised with seed 42 is
/// independent of the noise of a problem with seed 42).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Synthetic observation noise (index: the noise term).
    Noise,
    /// Random initial values of a parameter (index: unused, 0).
    ParamInit,
    /// Initial weights of a network (index: the leaf).
    NetInit,
    /// Sampler draws (index: the chain).
    Sampler,
    /// Minibatch inclusion draws of stochastic-gradient kernels (index: the
    /// chain). The counters are those of [`Purpose::Sampler`]:
    /// [`draw_counter`]`(sweep, model, k)`, `k` the point's index among the
    /// model's subsampled constraints, so they never meet a kernel's draws
    /// (another stream) and each (sweep, model, point) has its own draw.
    Minibatch,
    /// Draws from a fitted variational distribution after a solve (index:
    /// the chain; counter: the draw's entry, `draw · d + j`, within the
    /// model's member `m`: `m << 48 | draw · d + j`).
    Variational,
    /// Initializers that run before sampling (pathfinder's, Laplace's and
    /// SVGD's draws; index: the chain or particle).
    Initializer,
    /// Test inputs.
    Test,
}

impl Purpose {
    fn tag(self) -> u64 {
        match self {
            Purpose::Noise => 1,
            Purpose::ParamInit => 2,
            Purpose::NetInit => 3,
            Purpose::Sampler => 4,
            Purpose::Minibatch => 5,
            Purpose::Variational => 6,
            Purpose::Initializer => 7,
            Purpose::Test => 0xFF,
        }
    }
}

/// The stream number of `index` within `purpose` (tag in the top byte).
pub fn stream(purpose: Purpose, index: u64) -> u64 {
    (purpose.tag() << 56) | (index & ((1 << 56) - 1))
}

/// Bit position of the sweep index in a sampler draw counter.
pub const SWEEP_SHIFT: u32 = 40;
/// Bit position of the model index in a sampler draw counter.
pub const MODEL_SHIFT: u32 = 32;
/// The most sweeps one solve may run: the sweep field has the 23 bits
/// between [`SWEEP_SHIFT`] and [`INIT_BIT`].
pub const MAX_SWEEPS: usize = 1 << (63 - SWEEP_SHIFT);
/// The most sampled models one solve may sweep: the model field has the 8
/// bits between [`MODEL_SHIFT`] and [`SWEEP_SHIFT`].
pub const MAX_MODELS: usize = 1 << (SWEEP_SHIFT - MODEL_SHIFT);
/// Bound on the draws one model's step may use (`k < 2³²`): the draw field
/// has the 32 bits below [`MODEL_SHIFT`].
pub const MAX_DRAWS_PER_STEP: u64 = 1 << MODEL_SHIFT;
/// The top bit, set in the counters of draws made before sampling starts
/// (see [`init_counter`]) and clear in every [`draw_counter`].
pub const INIT_BIT: u64 = 1 << 63;

/// The counter of draw `k` of model `model`'s step at sweep `sweep` (see
/// the module documentation): `sweep · 2⁴⁰ + model · 2³² + k`.
#[inline]
pub fn draw_counter(sweep: u64, model: u64, k: u64) -> u64 {
    debug_assert!(sweep < MAX_SWEEPS as u64, "sweep {sweep} out of range");
    debug_assert!(model < MAX_MODELS as u64, "model {model} out of range");
    debug_assert!(k < MAX_DRAWS_PER_STEP, "draw {k} out of range");
    ((sweep << SWEEP_SHIFT) | (model << MODEL_SHIFT)) + k
}

/// The counter of the host's `k`-th draw before sampling (initial jitter),
/// disjoint from every [`draw_counter`]: `2⁶³ | k`.
#[inline]
pub fn init_counter(k: u64) -> u64 {
    debug_assert!(k < INIT_BIT, "init draw {k} out of range");
    INIT_BIT | k
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox-4x32 bijection with 10 rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Four random words for `(seed, stream, counter)`.
pub fn words(seed: u64, stream: u64, counter: u64) -> [u32; 4] {
    philox4x32_10(
        [
            counter as u32,
            (counter >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// 53 random bits from two words as a double in `[0, 1)`.
#[inline]
pub fn unit_f64(hi: u32, lo: u32) -> f64 {
    let bits = ((hi as u64) << 32 | lo as u64) >> 11;
    bits as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform draw in `[0, 1)` (words 0 and 1).
pub fn uniform(seed: u64, stream: u64, counter: u64) -> f64 {
    let w = words(seed, stream, counter);
    unit_f64(w[0], w[1])
}

/// A standard normal draw by Box–Muller (words 0–1 give `u1 ∈ (0, 1]`,
/// words 2–3 give `u2 ∈ [0, 1)`; `z = √(−2 ln u1) · cos(2π u2)`).
pub fn normal(seed: u64, stream: u64, counter: u64) -> f64 {
    let w = words(seed, stream, counter);
    let u1 = 1.0 - unit_f64(w[0], w[1]);
    let u2 = unit_f64(w[2], w[3]);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Two independent standard normal draws from one counter (Box–Muller's
/// both outputs: `r cos(2π u2)` as [`normal`] and `r sin(2π u2)`), half
/// the generator and logarithm work per draw.
pub fn normal_pair(seed: u64, stream: u64, counter: u64) -> (f64, f64) {
    let w = words(seed, stream, counter);
    let u1 = 1.0 - unit_f64(w[0], w[1]);
    let u2 = unit_f64(w[2], w[3]);
    let r = (-2.0 * u1.ln()).sqrt();
    let a = std::f64::consts::TAU * u2;
    (r * a.cos(), r * a.sin())
}

/// 53 random bits from two words as a double in the open interval `(0, 1)`.
#[inline]
pub fn open_unit_f64(hi: u32, lo: u32) -> f64 {
    let bits = ((hi as u64) << 32 | lo as u64) >> 11;
    (bits as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A standard Laplace draw (scale 1) by inversion: with `u` uniform on the
/// open interval `(-1/2, 1/2)`, `x = −sign(u) · ln(1 − 2|u|)` is always finite.
pub fn laplace(seed: u64, stream: u64, counter: u64) -> f64 {
    let w = words(seed, stream, counter);
    let u = open_unit_f64(w[0], w[1]) - 0.5;
    if u == 0.0 {
        return 0.0;
    }
    -u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    /// Moments of many draws match the distributions (tolerance 5 standard errors).
    #[test]
    fn draw_moments() {
        let n = 200_000u64;
        let (mut s1, mut s2, mut l1) = (0.0, 0.0, 0.0);
        let (mut lm, mut l2) = (0.0, 0.0);
        let mut u_sum = 0.0;
        for i in 0..n {
            let z = normal(7, 3, i);
            s1 += z;
            s2 += z * z;
            let l = laplace(7, 4, i);
            l1 += l.abs();
            lm += l;
            l2 += l * l;
            u_sum += uniform(7, 5, i);
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 5.0 / nf.sqrt());
        assert!((s2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        // Laplace(0, 1): E|x| = 1, mean 0, variance 2 (sd of x² is √20).
        assert!((l1 / nf - 1.0).abs() < 5.0 / nf.sqrt());
        assert!((lm / nf).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        assert!((l2 / nf - 2.0).abs() < 5.0 * 20f64.sqrt() / nf.sqrt());
        assert!((u_sum / nf - 0.5).abs() < 5.0 * (1.0 / 12f64).sqrt() / nf.sqrt());
    }

    /// The counter layout: fields decode back, the runtime's bit patterns
    /// are what the helpers build, and init counters never collide with
    /// draw counters.
    #[test]
    fn draw_counter_layout() {
        assert_eq!(MAX_SWEEPS, 1 << 23);
        assert_eq!(MAX_MODELS, 256);
        assert_eq!(MAX_DRAWS_PER_STEP, 1 << 32);
        assert_eq!(INIT_BIT, 1 << 63);
        let decode = |c: u64| {
            (
                c >> SWEEP_SHIFT,
                (c >> MODEL_SHIFT) & (MAX_MODELS as u64 - 1),
                c & (MAX_DRAWS_PER_STEP - 1),
            )
        };
        let max = (
            MAX_SWEEPS as u64 - 1,
            MAX_MODELS as u64 - 1,
            MAX_DRAWS_PER_STEP - 1,
        );
        for (s, m, k) in [(0, 0, 0), (1, 2, 3), (12345, 255, 77), max] {
            let c = draw_counter(s, m, k);
            assert_eq!(decode(c), (s, m, k));
            assert_eq!(c, (s << 40) + (m << 32) + k);
            assert_eq!(c & INIT_BIT, 0, "draw counters keep the init bit clear");
        }
        assert_eq!(draw_counter(max.0, max.1, max.2), INIT_BIT - 1);
        assert_eq!(init_counter(5), (1 << 63) | 5);
        assert!(init_counter(0) > draw_counter(max.0, max.1, max.2));
    }

    /// Streams and counters give different words; purposes own disjoint streams.
    #[test]
    fn streams_differ() {
        assert_ne!(stream(Purpose::Noise, 0), stream(Purpose::NetInit, 0));
        assert_ne!(stream(Purpose::Sampler, 3), stream(Purpose::Minibatch, 3));
        assert_eq!(stream(Purpose::Noise, 5) & 0xFF, 5);
        assert!((0..1000).all(|i| laplace(3, 3, i).is_finite()));
        assert_ne!(words(1, 0, 0), words(1, 1, 0));
        assert_ne!(words(1, 0, 0), words(1, 0, 1));
        assert_ne!(words(1, 0, 0), words(2, 0, 0));
        assert!((0..1000).all(|i| (0.0..1.0).contains(&uniform(9, 9, i))));
    }
}
