//! Mean-field variational inference as a kernel of the sweep: one step is
//! one optimiser step on the evidence lower bound of a Gaussian product
//! `q(θ) = ∏ N(μᵢ, σᵢ²)`, `σᵢ = exp(ρᵢ)` (blackjax `meanfield_vi`'s
//! parameterisation).
//!
//! With `S` draws `zₛ = μ + σ ⊙ εₛ`, `εₛ ~ N(0, I)` from the counter-based
//! generator (Box–Muller pairs: draw `s⌈d/2⌉ + j` gives entries `2j`,
//! `2j + 1`), the loss is the Monte-Carlo KL estimate
//! `L = (1/S) Σₛ [log q(zₛ) − log p(zₛ)]` (`−ELBO`) and its gradient the
//! "sticking the landing" estimator (blackjax's default `stl_estimator`:
//! `q`'s parameters held fixed inside `log q`), whose variance vanishes
//! when `q` matches the posterior:
//!
//! ```text
//! ELBO  ≈ (1/S) Σₛ [log p(zₛ) + Σᵢ εₛᵢ²/2] + Σᵢ ρᵢ + d·½ log 2π
//! ∂L/∂μᵢ = −(1/S) Σₛ (gₛᵢ + εₛᵢ/σᵢ)                 gₛ = ∇ log p(zₛ)
//! ∂L/∂ρᵢ = −(1/S) Σₛ (gₛᵢ + εₛᵢ/σᵢ) εₛᵢ σᵢ
//! ```
//!
//! and the optimiser (optax's Adam or SGD, [`Optimizer`]) descends the
//! loss `−ELBO` on `λ = (μ, ρ)`, one `2d` vector with one set of moments.
//! The model's position is `μ` (what other models of a mixed solve see,
//! and the recorded draw); `λ` lives in the state slot
//! [`PARAMS_SLOT`]. The recorded diagnostic is the step's ELBO estimate at
//! the parameters before the update.

use crux_ir::kernel::{CmpOp, KernelError};

use super::Optimizer;
use crate::math;
use crate::sampler::{DiagField, DiagKind, Family, Kernel, StepCtx, StepInfo, Vector};

/// The state slot (within the model's prefix) of `λ = (μ, ρ)`, `2d`
/// entries: the runtime reads the fitted `q` from there.
pub const PARAMS_SLOT: &str = "vi.lambda";

/// The diagnostic field of a VI step: its ELBO estimate.
pub const ELBO_FIELD: DiagField = DiagField {
    name: "elbo",
    kind: DiagKind::Float,
};

/// `½ log 2π`.
const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_7;

/// Mean-field Gaussian VI fitted by a stochastic optimiser.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanFieldVi {
    /// The optimiser of `λ = (μ, ρ)`.
    pub optimizer: Optimizer,
    /// Monte-Carlo draws per ELBO estimate (`S`, at least 1).
    pub num_samples: usize,
    /// The starting `ρ` of every entry (`σ = exp(ρ)`).
    pub init_log_std: f64,
    /// Start `μ` at the model's position (true) or at zero.
    pub init_mu_at_position: bool,
}

impl MeanFieldVi {
    fn params(ctx: &mut StepCtx<'_>) -> (Vector, Vector, Vector) {
        let d = ctx.dim();
        let lambda = ctx.state(PARAMS_SLOT, 2 * d);
        let (mu, rho) = halves(lambda);
        (lambda, mu, rho)
    }
}

/// `(first d entries, last d entries)` of a `2d` vector.
fn halves(v: Vector) -> (Vector, Vector) {
    let d = v.len / 2;
    let first = Vector { len: d, ..v };
    let second = Vector {
        off: v.off + d,
        len: d,
        ..v
    };
    (first, second)
}

impl Kernel for MeanFieldVi {
    fn name(&self) -> &str {
        "meanfield_vi"
    }
    fn family(&self) -> Family {
        // Evaluates the gradient at its own draws only: nothing cached.
        Family::StochasticGradient
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        vec![ELBO_FIELD]
    }
    fn init(&self, ctx: &mut StepCtx<'_>) -> Result<(), KernelError> {
        let d = ctx.dim();
        let (_, mu, rho) = Self::params(ctx);
        self.optimizer.init_state(ctx, "vi.adam.", 2 * d);
        let x = ctx.env.position;
        let b = &mut *ctx.b;
        if self.init_mu_at_position {
            mu.copy_from(b, x);
        } else {
            mu.fill(b, |b, _| b.f64(0.0));
            x.copy_from(b, mu);
        }
        let r = self.init_log_std;
        rho.fill(b, |b, _| b.f64(r));
        Ok(())
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let (lambda, mu, rho) = Self::params(ctx);
        let moments = self.optimizer.state(ctx, "vi.adam.", 2 * d);
        let grad = ctx.work("vi.grad", 2 * d);
        let (g_mu, g_rho) = halves(grad);
        let (z, gz, eps) = (
            ctx.work("vi.z", d),
            ctx.work("vi.gz", d),
            // A state slot so the last draw's ε can be read back (tests).
            ctx.state("vi.eps", d),
        );
        let sigma = ctx.work("vi.sigma", d);
        let env = ctx.env;
        let b = &mut *ctx.b;
        grad.fill(b, |b, _| b.f64(0.0));
        // σ = exp(ρ) once per step (the same value at every use).
        sigma.fill(b, |b, i| {
            let r = rho.load(b, i);
            math::exp(b, r)
        });
        let (s0, s1) = (b.i64(0), b.i64(self.num_samples as i64));
        let zero = b.f64(0.0);
        let sum_lp = b.for_(s0, s1, &[zero], |b, s, acc| {
            // ε from normal pairs: draw s·⌈d/2⌉ + j gives entries 2j, 2j+1.
            let pairs = d.div_ceil(2);
            let pv = b.i64(pairs as i64);
            let k0 = b.mul(s, pv);
            let (lo, hi) = (b.i64(0), b.i64(pairs as i64));
            b.for_(lo, hi, &[], |b, j, _| {
                let k = b.add(k0, j);
                let (e0, e1) = env.rng.normal_pair(b, k);
                let two = b.i64(2);
                let i0 = b.mul(j, two);
                eps.store(b, i0, e0);
                let one = b.i64(1);
                let i1 = b.add(i0, one);
                let dv = b.i64(d as i64);
                let inside = b.cmp(CmpOp::Lt, i1, dv);
                b.if_(
                    inside,
                    |b| {
                        eps.store(b, i1, e1);
                        vec![]
                    },
                    |_| vec![],
                );
                vec![]
            });
            z.fill(b, |b, i| {
                let e = eps.load(b, i);
                let m = mu.load(b, i);
                let sd = sigma.load(b, i);
                let t = b.mul(sd, e);
                b.add(m, t)
            });
            let lp = env.target.logp_grad(b, z, gz);
            let (lo, hi) = (b.i64(0), b.i64(d as i64));
            let half = b.f64(0.5);
            let sq = b.for_(lo, hi, &[zero], |b, i, sq| {
                let g = gz.load(b, i);
                let e = eps.load(b, i);
                let sd = sigma.load(b, i);
                // The path derivative of log p − log q at zₛ.
                let t = b.div(e, sd);
                let a = b.add(g, t);
                let m = g_mu.load(b, i);
                let m = b.add(m, a);
                g_mu.store(b, i, m);
                let t = b.mul(a, e);
                let t = b.mul(t, sd);
                let r = g_rho.load(b, i);
                let r = b.add(r, t);
                g_rho.store(b, i, r);
                let e2 = b.mul(e, e);
                let e2 = b.mul(e2, half);
                vec![b.add(sq[0], e2)]
            })[0];
            let lp = b.add(lp, sq);
            vec![b.add(acc[0], lp)]
        })[0];
        let inv_s = b.f64(1.0 / self.num_samples as f64);
        let entropy = rho.sum(b, |b, i| rho.load(b, i));
        let c = b.f64(d as f64 * HALF_LOG_TWO_PI);
        let mean_lp = b.mul(sum_lp, inv_s);
        let elbo = b.add(mean_lp, entropy);
        let elbo = b.add(elbo, c);
        // The loss gradient −∇ELBO.
        let neg_inv_s = b.f64(-1.0 / self.num_samples as f64);
        grad.fill(b, |b, i| {
            let g = grad.load(b, i);
            b.mul(g, neg_inv_s)
        });
        self.optimizer.apply(b, lambda, grad, moments);
        env.position.copy_from(b, mu);
        Ok(StepInfo {
            accept_stat: None,
            diagnostics: vec![elbo],
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sampler::tests::{gaussian_target, plan, run_chain, Exec};
    use crate::sampler::{build_chunk, Chunk};

    #[test]
    fn half_log_two_pi() {
        let exact = 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!((HALF_LOG_TWO_PI - exact).abs() < 1e-15);
    }

    const MU: [f64; 3] = [1.0, -2.0, 0.5];
    const SD: [f64; 3] = [0.5, 2.0, 1.0];

    fn chunk(steps: usize, vi: MeanFieldVi) -> Chunk {
        let target = gaussian_target(&MU, &SD);
        build_chunk(3, &[plan(Arc::new(vi), target, 0, steps, false)]).unwrap()
    }

    fn vi(lr: f64) -> MeanFieldVi {
        MeanFieldVi {
            optimizer: Optimizer::adam(lr),
            num_samples: 8,
            init_log_std: -3.0,
            init_mu_at_position: true,
        }
    }

    /// `λ = (μ, ρ)` after the run, and the ELBO trace.
    fn fit(c: &Chunk, exec: Exec, chunk_len: usize) -> (Vec<f64>, Vec<f64>) {
        let (_, diag, state) = run_chain(c, exec, 7, 0, &[0.0; 3], 1.0, chunk_len);
        let (off, len) = c.state.find(&format!("m0.k.{PARAMS_SLOT}")).unwrap();
        (state[off..off + len].to_vec(), diag)
    }

    /// On a Gaussian with a diagonal covariance the mean-field family holds
    /// the posterior: `μ → m`, `σ → s` (Adam's last iterate, to 2%).
    #[test]
    fn fits_a_diagonal_gaussian_exactly() {
        let c = chunk(4000, vi(0.01));
        let (lambda, elbo) = fit(&c, Exec::Clif, 1000);
        for i in 0..3 {
            let (mu, sd) = (lambda[i], lambda[3 + i].exp());
            assert!(
                (mu - MU[i]).abs() < 0.02 * SD[i],
                "μ{i} = {mu}, exact {}",
                MU[i]
            );
            assert!(
                (sd / SD[i] - 1.0).abs() < 0.02,
                "σ{i} = {sd}, exact {}",
                SD[i]
            );
        }
        // At the optimum the ELBO is log Z = Σ log(√(2π) sᵢ) (the target is
        // unnormalised); its estimate has no variance there only when q = p.
        let log_z: f64 = SD
            .iter()
            .map(|s| (s * (2.0 * std::f64::consts::PI).sqrt()).ln())
            .sum();
        let tail = &elbo[elbo.len() - 500..];
        let mean = tail.iter().sum::<f64>() / tail.len() as f64;
        assert!((mean - log_z).abs() < 0.05, "ELBO {mean}, log Z {log_z}");
        let head = elbo[..500].iter().sum::<f64>() / 500.0;
        assert!(head < mean, "the ELBO rose on average: {head} -> {mean}");
    }

    /// The interpreter and Cranelift agree bit for bit, for any chunking.
    #[test]
    fn backends_and_chunkings_agree_bit_for_bit() {
        let mut v = vi(0.05);
        v.init_mu_at_position = false;
        v.optimizer = Optimizer::sgd(0.01);
        for v in [vi(0.05), v] {
            let c = chunk(40, v);
            let a = fit(&c, Exec::Interp, 40);
            let b = fit(&c, Exec::Clif, 7);
            assert_eq!(
                a.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(
                a.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    /// ε comes from the host's `normal_pair` (draw `s⌈d/2⌉ + j` of the
    /// chain's sampler stream at sweep 0), up to the math expansions'
    /// rounding, on both executors.
    #[test]
    fn draws_are_the_host_normal_pairs() {
        use crate::sampler::chunk_args;
        use crux_ir::rng::{draw_counter, normal_pair, stream, Purpose};
        let c = chunk(1, vi(0.05));
        let (off, _) = c.state.find("m0.k.vi.eps").unwrap();
        for exec in [Exec::Interp, Exec::Clif] {
            let mut bufs = c.chain_buffers(vec![0.0; c.state.len]);
            let exe = exec.executable(&c.function);
            exe.call(&chunk_args(7, 2, (0, 1)), bufs.as_mut_slice())
                .unwrap();
            let eps = &bufs.state()[off..off + 3];
            // The last of the 8 draws: s = 7, pairs j = 0, 1 (d = 3).
            let k = |j: u64| draw_counter(0, 0, 7 * 2 + j);
            let st = stream(Purpose::Sampler, 2);
            let (a, b) = normal_pair(7, st, k(0));
            let (c2, _) = normal_pair(7, st, k(1));
            for (got, want) in eps.iter().zip([a, b, c2]) {
                assert!((got - want).abs() < 1e-12, "{exec:?}: {got} vs {want}");
            }
        }
    }
}
