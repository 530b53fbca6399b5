//! The spec's custom kernel: random-walk Metropolis, written with the
//! kernel-IR builder against [`crux::custom`].

use crux::custom::{
    accept_prob, acceptance_fields, math, select_into, CmpOp, DiagField, Family, Kernel,
    KernelError, StepCtx, StepInfo,
};

/// Random-walk Metropolis: propose `x + ε z` (`ε` the configured
/// `step_size`), accept with probability `min(1, p(x')/p(x))`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomWalk;

impl Kernel for RandomWalk {
    fn name(&self) -> &str {
        "rwm"
    }
    fn family(&self) -> Family {
        Family::FullData
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        acceptance_fields()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        // Step-local vectors: the proposal and its gradient (the inlined
        // log-density computes both).
        let (q, g) = (ctx.work("proposal", d), ctx.work("grad", d));
        let env = ctx.env;
        let b = &mut *ctx.b;
        let eps = env.step_size.get(b);
        let (x, rng) = (env.position, env.rng);
        q.fill(b, |b, i| {
            let z = rng.normal(b, i); // draw k = i of this step
            let s = b.mul(eps, z);
            let xi = x.load(b, i);
            b.add(xi, s)
        });
        let new_logp = ctx.logp_grad(q, g);
        let b = &mut *ctx.b;
        let old_logp = env.logp.get(b);
        let delta = b.sub(new_logp, old_logp);
        let k = b.i64(d as i64); // a draw index distinct from the proposal's
        let u = rng.uniform(b, k);
        let log_u = math::log(b, u);
        let accept = b.cmp(CmpOp::Lt, log_u, delta);
        select_into(b, accept, x, q);
        select_into(b, accept, env.grad, g);
        let lp = b.select(accept, new_logp, old_logp);
        env.logp.set(b, lp);
        let rate = accept_prob(b, delta);
        Ok(StepInfo {
            accept_stat: Some(rate),
            diagnostics: vec![rate],
        })
    }
}
