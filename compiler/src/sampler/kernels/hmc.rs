//! Hamiltonian Monte Carlo with a fixed number of leapfrog steps.

use crux_ir::kernel::{CmpOp, KernelError};

use super::{
    accept_prob, bool_f64, draw_momentum, hmc_fields, is_divergent, leapfrog, select_into,
};
use crate::sampler::{DiagField, Family, Kernel, StepCtx, StepInfo};

/// HMC (blackjax `hmc`): momentum from `N(0, M)`, `num_integration_steps`
/// velocity-Verlet steps, a Metropolis correction on the energy.
#[derive(Clone, Debug, PartialEq)]
pub struct Hmc {
    /// Leapfrog steps per transition.
    pub num_integration_steps: usize,
}

impl Kernel for Hmc {
    fn name(&self) -> &str {
        "hmc"
    }
    fn family(&self) -> Family {
        Family::FullData
    }
    fn hmc_family(&self) -> bool {
        true
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        hmc_fields()
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let (q, p, g) = (ctx.work("q", d), ctx.work("p", d), ctx.work("g", d));
        let env = ctx.env;
        let b = &mut *ctx.b;
        q.copy_from(b, env.position);
        g.copy_from(b, env.grad);
        draw_momentum(b, &env, p, 0);
        let lp0 = env.logp.get(b);
        let half = b.f64(0.5);
        let k = env.metric.kinetic2(b, p);
        let k = b.mul(half, k);
        let h0 = b.sub(k, lp0);
        let eps = env.step_size.get(b);
        let (lo, hi) = (b.i64(0), b.i64(self.num_integration_steps as i64));
        let lp = b.for_(lo, hi, &[lp0], |b, _, _| {
            vec![leapfrog(b, &env, q, p, g, eps)]
        })[0];
        let k1 = env.metric.kinetic2(b, p);
        let k1 = b.mul(half, k1);
        let h1 = b.sub(k1, lp);
        let delta = b.sub(h0, h1);
        let acc = accept_prob(b, delta);
        let div = is_divergent(b, h0, h1);
        let kd = b.i64(d as i64);
        let u = env.rng.uniform(b, kd);
        let accept = b.cmp(CmpOp::Lt, u, acc);
        select_into(b, accept, env.position, q);
        select_into(b, accept, env.grad, g);
        let lp_new = b.select(accept, lp, lp0);
        env.logp.set(b, lp_new);
        let energy = b.select(accept, h1, h0);
        let divf = bool_f64(b, div);
        Ok(StepInfo {
            accept_stat: Some(acc),
            diagnostics: vec![divf, acc, energy],
        })
    }
}
