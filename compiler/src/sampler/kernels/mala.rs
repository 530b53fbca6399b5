//! The Metropolis-adjusted Langevin algorithm.

use crux_ir::kernel::{Builder, CmpOp, KernelError, Value};

use super::{accept_prob, select_into};
use crate::sampler::ctx::Vector;
use crate::sampler::{DiagField, Family, Kernel, StepCtx, StepInfo};

/// MALA (blackjax `mala`): `x' = x + ε ∇log p(x) + √(2ε) z`, accepted with
/// the Metropolis–Hastings ratio of the Langevin proposal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mala;

/// `−|to − from − ε g|² / (4ε)`: log density of the Langevin proposal.
fn log_proposal(b: &mut Builder, to: Vector, from: Vector, g: Vector, eps: Value) -> Value {
    let s = to.sum(b, |b, i| {
        let t = to.load(b, i);
        let f = from.load(b, i);
        let gi = g.load(b, i);
        let eg = b.mul(eps, gi);
        let r = b.sub(t, f);
        let r = b.sub(r, eg);
        b.mul(r, r)
    });
    let four = b.f64(-4.0);
    let den = b.mul(four, eps);
    b.div(s, den)
}

impl Kernel for Mala {
    fn name(&self) -> &str {
        "mala"
    }
    fn family(&self) -> Family {
        Family::FullData
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        super::acceptance_fields()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let (q, g) = (ctx.work("q", d), ctx.work("g", d));
        let env = ctx.env;
        let b = &mut *ctx.b;
        let eps = env.step_size.get(b);
        let two = b.f64(2.0);
        let te = b.mul(two, eps);
        let sd = b.sqrt(te);
        let (x, gx) = (env.position, env.grad);
        let rng = env.rng;
        q.fill(b, |b, i| {
            let xi = x.load(b, i);
            let gi = gx.load(b, i);
            let z = rng.normal(b, i);
            let a = b.mul(eps, gi);
            let n = b.mul(sd, z);
            let y = b.add(xi, a);
            b.add(y, n)
        });
        let lp1 = env.target.logp_grad(b, q, g);
        let lp0 = env.logp.get(b);
        let fwd = log_proposal(b, q, x, gx, eps);
        let bwd = log_proposal(b, x, q, g, eps);
        let r = b.sub(lp1, lp0);
        let r = b.add(r, bwd);
        let log_ratio = b.sub(r, fwd);
        let acc = accept_prob(b, log_ratio);
        let kd = b.i64(d as i64);
        let u = rng.uniform(b, kd);
        let accept = b.cmp(CmpOp::Lt, u, acc);
        select_into(b, accept, x, q);
        select_into(b, accept, gx, g);
        let lp = b.select(accept, lp1, lp0);
        env.logp.set(b, lp);
        Ok(StepInfo {
            accept_stat: Some(acc),
            diagnostics: vec![acc],
        })
    }
}
