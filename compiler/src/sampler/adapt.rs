//! Window adaptation of the step size and the inverse mass matrix
//! (diagonal or dense) (Stan's schedule, as blackjax's `window_adaptation`), written in
//! kernel IR so warmup runs inside the chunk function.
//!
//! * Schedule: for `warmup ≥ 20`, an initial fast window of 75 sweeps,
//!   slow windows doubling from 25, a final fast window of 50; when these
//!   do not fit they become 15 % / the rest / 10 % of the warmup. A slow
//!   window is stretched to the final window when the next doubling would
//!   not fit. Below 20 sweeps every sweep is fast (the mass matrix stays).
//! * Dual averaging (Hoffman & Gelman 2014, §3.2.1): `t0 = 10`,
//!   `γ = 0.05`, `κ = 0.75`, target acceptance 0.8, `μ = log(10 ε₀)`.
//!   A non-finite acceptance statistic counts as 0. The running average
//!   takes the new iterate, as Stan and the paper do (blackjax averages
//!   the previous one, so its final step size differs slightly).
//! * Slow windows accumulate a Welford variance (dense metric: covariance)
//!   of the position; at a window's end the inverse mass matrix becomes
//!   `n/(n+5) · var + 10⁻³ · 5/(n+5)` (on the diagonal; see
//!   [`super::metric`]) and dual averaging restarts from the averaged step
//!   size. After the last warmup sweep the step size is the
//!   averaged one.

use crux_ir::kernel::{Builder, CmpOp, Value};

use super::ctx::{StepCtx, Vector};
use super::metric::{Metric, Moments};
use crate::math;

const T0: f64 = 10.0;
const GAMMA: f64 = 0.05;
const KAPPA: f64 = 0.75;
/// The acceptance statistic dual averaging aims for unless a model asks
/// for another ([`Adaptation::target_acceptance`]).
pub const TARGET_ACCEPTANCE: f64 = 0.8;

/// How a model's warmup adapts its kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptation {
    /// The mean acceptance statistic dual averaging aims for, in (0, 1).
    /// Higher targets give smaller steps (fewer divergences on strongly
    /// curved posteriors, more gradient evaluations per draw).
    pub target_acceptance: f64,
}

impl Default for Adaptation {
    fn default() -> Adaptation {
        Adaptation {
            target_acceptance: TARGET_ACCEPTANCE,
        }
    }
}

/// The warmup schedule: slow windows as half-open sweep ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Slow windows `(start, end)`; every other warmup sweep is fast.
    pub slow: Vec<(usize, usize)>,
}

/// Stan's schedule for `warmup` sweeps (see the module documentation).
pub fn schedule(warmup: usize) -> Schedule {
    let mut slow = Vec::new();
    if warmup < 20 {
        return Schedule { slow };
    }
    let (mut initial, mut final_, mut first) = (75, 50, 25);
    if initial + first + final_ > warmup {
        initial = (0.15 * warmup as f64) as usize;
        final_ = (0.1 * warmup as f64) as usize;
        first = warmup - initial - final_;
    }
    let final_start = warmup - final_;
    let mut size = first;
    let mut start = initial;
    while start < final_start {
        let mut cur = size;
        if 3 * cur <= final_start - start {
            size = 2 * cur;
        } else {
            cur = final_start - start;
        }
        slow.push((start, start + cur));
        start += cur;
    }
    Schedule { slow }
}

struct Slots {
    log_step: Vector,
    log_avg: Vector,
    t: Vector,
    h: Vector,
    mu: Vector,
    moments: Moments,
    /// Dense metric: the step's deviation from the mean (`d`) and the
    /// window's covariance while it is factorised (`d²`); low rank: the
    /// window end's scratch (`2 k d + window`); empty otherwise.
    delta: Vector,
    sigma: Vector,
}

fn slots(ctx: &mut StepCtx<'_>, warmup: usize) -> Slots {
    let d = ctx.dim();
    let kind = ctx.env.metric.kind;
    let dense = kind == Metric::Dense;
    let k = kind.rank();
    // Low rank keeps the draws of the longest slow window.
    let window = if k > 0 {
        schedule(warmup)
            .slow
            .iter()
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let scratch = match kind {
        Metric::Dense => d * d,
        Metric::LowRank { .. } => 2 * k * d + window,
        Metric::Diagonal => 0,
    };
    Slots {
        log_step: ctx.state("adapt.log_step", 1),
        log_avg: ctx.state("adapt.log_step_avg", 1),
        t: ctx.state("adapt.t", 1),
        h: ctx.state("adapt.h", 1),
        mu: ctx.state("adapt.mu", 1),
        moments: Moments {
            n: ctx.state("adapt.n", 1),
            mean: ctx.state("adapt.mean", d),
            m2: ctx.state("adapt.m2", kind.moments_len(d)),
            gmean: ctx.state("adapt.gmean", if k > 0 { d } else { 0 }),
            draws: ctx.state("adapt.draws", window * d),
        },
        delta: ctx.work("adapt.delta", if dense { d } else { 0 }),
        sigma: ctx.work("adapt.sigma", scratch),
    }
}

/// Dual averaging restarted at step size `eps`.
fn restart(b: &mut Builder, s: &Slots, eps: Value) {
    let ten = b.f64(10.0);
    let e10 = b.mul(ten, eps);
    let mu = math::log(b, e10);
    s.mu.set(b, mu);
    let le = math::log(b, eps);
    s.log_step.set(b, le);
    let zero = b.f64(0.0);
    s.log_avg.set(b, zero);
    s.h.set(b, zero);
    let one = b.f64(1.0);
    s.t.set(b, one);
}

/// Emits the adaptation's initial state (at the chain's first chunk).
pub fn init(ctx: &mut StepCtx<'_>, warmup: usize) {
    let s = slots(ctx, warmup);
    let b = &mut *ctx.b;
    let eps = ctx.env.step_size.get(b);
    restart(b, &s, eps);
    s.moments.reset(b);
}

/// Emits one adaptation update after the step of sweep `env.sweep`, if it
/// is a warmup sweep, with the step's acceptance statistic `accept`.
pub fn update(ctx: &mut StepCtx<'_>, warmup: usize, adaptation: &Adaptation, accept: Value) {
    let s = slots(ctx, warmup);
    let env = ctx.env;
    let b = &mut *ctx.b;
    let sched = schedule(warmup);
    let sweep = env.sweep;
    let w = b.i64(warmup as i64);
    let in_warmup = b.cmp(CmpOp::Lt, sweep, w);
    b.if_(
        in_warmup,
        |b| {
            // Dual averaging.
            let finite = b.cmp(CmpOp::Eq, accept, accept);
            let zero = b.f64(0.0);
            let a = b.select(finite, accept, zero);
            let t = s.t.get(b);
            let t0 = b.f64(T0);
            let reg = b.add(t, t0);
            let one = b.f64(1.0);
            let inv = b.div(one, reg);
            let keep = b.sub(one, inv);
            let h = s.h.get(b);
            let h = b.mul(keep, h);
            let target = b.f64(adaptation.target_acceptance);
            let err = b.sub(target, a);
            let err = b.div(err, reg);
            let h = b.add(h, err);
            s.h.set(b, h);
            let mu = s.mu.get(b);
            let st = b.sqrt(t);
            let g = b.f64(GAMMA);
            let st = b.div(st, g);
            let sh = b.mul(st, h);
            let log_step = b.sub(mu, sh);
            s.log_step.set(b, log_step);
            let lt = math::log(b, t);
            let mk = b.f64(-KAPPA);
            let e = b.mul(mk, lt);
            let eta = math::exp(b, e);
            let avg = s.log_avg.get(b);
            let x = b.mul(eta, log_step);
            let om = b.sub(one, eta);
            let y = b.mul(om, avg);
            let avg = b.add(x, y);
            s.log_avg.set(b, avg);
            let t1 = b.add(t, one);
            s.t.set(b, t1);
            let eps = math::exp(b, log_step);
            env.step_size.set(b, eps);

            // Slow windows: Welford variance, mass matrix at the window's end.
            for &(start, end) in &sched.slow {
                let lo = b.i64(start as i64);
                let hi = b.i64(end as i64);
                let ge = b.cmp(CmpOp::Ge, sweep, lo);
                let lt = b.cmp(CmpOp::Lt, sweep, hi);
                let inside = b.and(ge, lt);
                b.if_(
                    inside,
                    |b| {
                        s.moments
                            .update(b, env.metric.kind, (env.position, env.grad), s.delta);
                        let last = b.i64(end as i64 - 1);
                        let at_end = b.cmp(CmpOp::Eq, sweep, last);
                        b.if_(
                            at_end,
                            |b| {
                                s.moments.window_end(b, &env.metric, s.sigma);
                                let avg = s.log_avg.get(b);
                                let eps = math::exp(b, avg);
                                restart(b, &s, eps);
                                let ls = s.log_step.get(b);
                                let eps = math::exp(b, ls);
                                env.step_size.set(b, eps);
                                vec![]
                            },
                            |_| vec![],
                        );
                        vec![]
                    },
                    |_| vec![],
                );
            }

            let last = b.i64(warmup as i64 - 1);
            let is_last = b.cmp(CmpOp::Eq, sweep, last);
            b.if_(
                is_last,
                |b| {
                    let avg = s.log_avg.get(b);
                    let eps = math::exp(b, avg);
                    env.step_size.set(b, eps);
                    vec![]
                },
                |_| vec![],
            );
            vec![]
        },
        |_| vec![],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blackjax's `build_schedule` for the common warmups.
    #[test]
    fn schedules() {
        assert_eq!(schedule(10).slow, vec![]);
        // 75 fast, 25, 50, 100, 200 (stretched to the final 50), 50 fast.
        assert_eq!(
            schedule(500).slow,
            vec![(75, 100), (100, 150), (150, 250), (250, 450)]
        );
        // 1000: 75 | 25, 50, 100, 200, 500 | 50.
        assert_eq!(
            schedule(1000).slow,
            vec![(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
        );
        // Short warmups: 15 % / rest / 10 %.
        assert_eq!(schedule(100).slow, vec![(15, 90)]);
    }
}
