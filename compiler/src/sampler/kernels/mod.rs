//! The built-in kernels, with the formulas of the blackjax kernels of the
//! same name, and the pieces they share (momentum draws, leapfrog).

mod hmc;
mod mala;
mod nuts;
mod optimizer;
mod sg;
mod vi;

pub use hmc::Hmc;
pub use mala::Mala;
pub use nuts::Nuts;
pub use optimizer::{HostOptimizer, Optimizer, Update};
pub use sg::{Sghmc, Sgld, SG_POSITION_BOUND};
pub use vi::{MeanFieldVi, ELBO_FIELD, PARAMS_SLOT as VI_PARAMS_SLOT};

use crux_ir::kernel::{Builder, CmpOp, Value};

use super::ctx::{StepEnv, Vector};
use super::{DiagField, DiagName};
use crate::math;

/// The divergence threshold on the energy error (blackjax, Stan).
pub const DIVERGENCE_THRESHOLD: f64 = 1000.0;

/// `is_divergent`, `acceptance_rate`, `energy`: the HMC-family fields.
pub fn hmc_fields() -> Vec<DiagField> {
    [
        DiagName::IsDivergent,
        DiagName::AcceptanceRate,
        DiagName::Energy,
    ]
    .map(DiagField::known)
    .to_vec()
}

/// `acceptance_rate` alone: MALA's and Metropolis kernels' field.
pub fn acceptance_fields() -> Vec<DiagField> {
    vec![DiagField::known(DiagName::AcceptanceRate)]
}

/// Draws `p ~ N(0, M)` (`M` the inverse of the metric) using normal
/// draws `k0 + i`.
pub fn draw_momentum(b: &mut Builder, env: &StepEnv<'_>, p: Vector, k0: usize) {
    env.metric.draw_momentum(b, env.rng, p, k0);
}

/// One velocity-Verlet step of size `eps` (negative: backwards) from
/// `(q, p)` with `g = ∇ log p(q)`; updates `q`, `p`, `g` in place and
/// returns the new `log p(q)`.
pub fn leapfrog(
    b: &mut Builder,
    env: &StepEnv<'_>,
    q: Vector,
    p: Vector,
    g: Vector,
    eps: Value,
) -> Value {
    let half = b.f64(0.5);
    let h = b.mul(half, eps);
    p.fill(b, |b, i| {
        let pi = p.load(b, i);
        let gi = g.load(b, i);
        let t = b.mul(h, gi);
        b.add(pi, t)
    });
    env.metric.drift(b, q, p, eps);
    let lp = env.target.logp_grad(b, q, g);
    p.fill(b, |b, i| {
        let pi = p.load(b, i);
        let gi = g.load(b, i);
        let t = b.mul(h, gi);
        b.add(pi, t)
    });
    lp
}

/// `min(1, exp(delta))`, with a NaN `delta` (a non-finite energy) giving 0.
pub fn accept_prob(b: &mut Builder, delta: Value) -> Value {
    let finite = b.cmp(CmpOp::Eq, delta, delta);
    let ninf = b.f64(f64::NEG_INFINITY);
    let d = b.select(finite, delta, ninf);
    let zero = b.f64(0.0);
    let d = b.min(d, zero);
    math::exp(b, d)
}

/// Whether the energy error `h1 − h0` marks a divergence (also when it is
/// not a number: a non-finite log-density is a divergence).
pub fn is_divergent(b: &mut Builder, h0: Value, h1: Value) -> Value {
    let err = b.sub(h1, h0);
    let t = b.f64(DIVERGENCE_THRESHOLD);
    let ok = b.cmp(CmpOp::Le, err, t);
    let tr = b.bool(true);
    b.xor(ok, tr)
}

/// `1.0` or `0.0` from a bool.
pub fn bool_f64(b: &mut Builder, c: Value) -> Value {
    let one = b.f64(1.0);
    let zero = b.f64(0.0);
    b.select(c, one, zero)
}

/// `x ← y` for entries of `dst` when `cond` (a select per entry).
pub fn select_into(b: &mut Builder, cond: Value, dst: Vector, src: Vector) {
    dst.fill(b, |b, i| {
        let s = src.load(b, i);
        let d = dst.load(b, i);
        b.select(cond, s, d)
    });
}
