//! Stochastic-gradient kernels. The gradient estimator is the target's
//! gradient: the full-data gradient by default (as in the reference
//! library), or an unbiased minibatch estimate when the model has a
//! [`Minibatch`](crate::sampler::Minibatch) (the chunk function draws the
//! per-point weights before each step; SGHMC keeps them for all the
//! integration steps of a transition, as blackjax keeps its minibatch).
//!
//! These kernels have no log-density and no accept step, so a step size
//! past the stability limit makes the chain grow without bound. Each step
//! records `is_divergent` (arviz `diverging`): 1 when an entry of the
//! gradient it used is not finite, or an entry of the new position is not
//! finite or beyond ±[`SG_POSITION_BOUND`]. The runtime counts these like
//! HMC's divergences and stops a run whose chain has left the finite
//! numbers.

use crux_ir::kernel::{Builder, CmpOp, KernelError, Value};
use crux_ir::rng::MAX_DRAWS_PER_STEP;

use super::bool_f64;
use crate::sampler::ctx::Vector;
use crate::sampler::{DiagField, DiagName, Family, Kernel, StepCtx, StepInfo};

/// The bound on `|θᵢ|` past which a stochastic-gradient step is flagged as
/// diverging: far beyond any parameter a model means (a chain past it is
/// on its way to overflow), well inside the f64 range so the flag comes
/// before the infinities.
pub const SG_POSITION_BOUND: f64 = 1e100;

/// `1.0` when an entry of `g` is not finite, or an entry of `x` is not
/// finite or beyond ±[`SG_POSITION_BOUND`]; else `0.0`.
fn diverging(b: &mut Builder, x: Vector, g: Vector) -> Value {
    let bad = x.sum(b, |b, i| {
        let xi = x.load(b, i);
        let gi = g.load(b, i);
        let ax = b.abs(xi);
        let bound = b.f64(SG_POSITION_BOUND);
        // False for NaN too.
        let x_ok = b.cmp(CmpOp::Le, ax, bound);
        let zero = b.f64(0.0);
        // `g·0` is 0 for finite g, NaN for ±∞ and NaN.
        let g0 = b.mul(gi, zero);
        let g_ok = b.cmp(CmpOp::Eq, g0, zero);
        let ok = b.and(x_ok, g_ok);
        let one = b.f64(1.0);
        b.select(ok, zero, one)
    });
    let zero = b.f64(0.0);
    let any = b.cmp(CmpOp::Gt, bad, zero);
    bool_f64(b, any)
}

/// The stochastic-gradient kernels' one field.
fn sg_fields() -> Vec<DiagField> {
    vec![DiagField::known(DiagName::IsDivergent)]
}

/// SGLD (blackjax `sgld`, temperature 1): `θ' = θ + ε g(θ) + √(2ε) ξ`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sgld;

impl Kernel for Sgld {
    fn name(&self) -> &str {
        "sgld"
    }
    fn family(&self) -> Family {
        Family::StochasticGradient
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        sg_fields()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let g = ctx.work("g", d);
        let env = ctx.env;
        let b = &mut *ctx.b;
        let x = env.position;
        env.target.logp_grad(b, x, g);
        let eps = env.step_size.get(b);
        let two = b.f64(2.0);
        let te = b.mul(two, eps);
        let sd = b.sqrt(te);
        let rng = env.rng;
        x.fill(b, |b, i| {
            let xi = x.load(b, i);
            let gi = g.load(b, i);
            let z = rng.normal(b, i);
            let a = b.mul(eps, gi);
            let n = b.mul(sd, z);
            let y = b.add(xi, a);
            b.add(y, n)
        });
        let div = diverging(b, x, g);
        Ok(StepInfo {
            accept_stat: None,
            diagnostics: vec![div],
        })
    }
}

/// SGHMC (blackjax `sghmc`, temperature 1): momentum `m ~ N(0, I)`, then
/// `num_integration_steps` times `g = g(θ)`, `θ ← θ + ε m`,
/// `m ← (1 − αε) m + ε g + √(ε (2α − ε β)) ξ`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sghmc {
    /// Integration steps per transition (default 10).
    pub num_integration_steps: usize,
    /// Friction α (default 0.01).
    pub alpha: f64,
    /// Estimated gradient-noise β (default 0).
    pub beta: f64,
}

impl Default for Sghmc {
    fn default() -> Self {
        Sghmc {
            num_integration_steps: 10,
            alpha: 0.01,
            beta: 0.0,
        }
    }
}

impl Kernel for Sghmc {
    fn name(&self) -> &str {
        "sghmc"
    }
    fn family(&self) -> Family {
        Family::StochasticGradient
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        sg_fields()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        // Draw indices (l + 1)·d + i must stay below 2³² (the counter's
        // per-step field).
        if (self.num_integration_steps as u128 + 1) * d as u128 >= MAX_DRAWS_PER_STEP as u128 {
            return Err(KernelError::Invalid {
                function: "sghmc".into(),
                msg: format!(
                    "{} integration steps of a {d}-entry model exceed the 2^32 draws one step may use: lower num_integration_steps",
                    self.num_integration_steps
                ),
            });
        }
        let (m, g) = (ctx.work("m", d), ctx.work("g", d));
        let env = ctx.env;
        let b = &mut *ctx.b;
        let x = env.position;
        let rng = env.rng;
        m.fill(b, |b, i| rng.normal(b, i));
        let eps = env.step_size.get(b);
        let alpha = b.f64(self.alpha);
        let beta = b.f64(self.beta);
        let one = b.f64(1.0);
        let ae = b.mul(alpha, eps);
        let decay = b.sub(one, ae);
        let two = b.f64(2.0);
        let ta = b.mul(two, alpha);
        let eb = b.mul(eps, beta);
        let v = b.sub(ta, eb);
        let v = b.mul(eps, v);
        let sd = b.sqrt(v);
        let (lo, hi) = (b.i64(0), b.i64(self.num_integration_steps as i64));
        let dd = b.i64(d as i64);
        b.for_(lo, hi, &[], |b, l, _| {
            // blackjax's order: the gradient at the current position, then
            // the position moves and the momentum takes that gradient.
            env.target.logp_grad(b, x, g);
            x.fill(b, |b, i| {
                let xi = x.load(b, i);
                let mi = m.load(b, i);
                let t = b.mul(eps, mi);
                b.add(xi, t)
            });
            let one = b.i64(1);
            let l1 = b.add(l, one);
            let k0 = b.mul(l1, dd);
            m.fill(b, |b, i| {
                let mi = m.load(b, i);
                let gi = g.load(b, i);
                let k = b.add(k0, i);
                let z = rng.normal(b, k);
                let a = b.mul(decay, mi);
                let c = b.mul(eps, gi);
                let n = b.mul(sd, z);
                let y = b.add(a, c);
                b.add(y, n)
            });
            vec![]
        });
        let div = diverging(b, x, g);
        Ok(StepInfo {
            accept_stat: None,
            diagnostics: vec![div],
        })
    }
}
