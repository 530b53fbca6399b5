//! How a model is fitted by variational inference: the `.vi(..)`
//! configuration, a plain value the solve driver validates and compiles
//! into the mean-field kernel ([`crux_compiler::sampler::kernels::MeanFieldVi`]).

use crux_ir::rng::MAX_DRAWS_PER_STEP;

use super::prior::Prior;
use super::sampling::Optimizer;

/// Mean-field Gaussian VI: `q(θ) = ∏ N(μᵢ, exp(ρᵢ)²)` fitted by a
/// stochastic optimiser of the Monte-Carlo ELBO (blackjax
/// `meanfield_vi`), one optimiser step per sweep of the solve, fused in
/// the chunk function like a sampler's step. After the solve the model's
/// `posterior_samples` are `posterior_draws` i.i.d. draws from the fitted
/// `q`, `(K, posterior_draws, *shape)` (`K` = 1 unless other models of the
/// solve run several chains: each chain then fits its own `q`), its value
/// is `μ`, and [`crate::Posterior::variational`] holds `μ`, `σ` and the
/// ELBO of every step.
///
/// Defaults (the spec's): Adam with learning rate 1e-3, 8 Monte-Carlo
/// draws per step, 500 posterior draws, `init_log_std` −3 (σ ≈ 0.05), `μ`
/// starting at the model's value, likelihood scale 1, the Gaussian prior
/// σ = 10.
#[derive(Clone, Debug)]
pub struct Vi {
    pub(crate) optimizer: Optimizer,
    pub(crate) num_samples: usize,
    pub(crate) posterior_draws: usize,
    pub(crate) init_log_std: f64,
    pub(crate) init_mu_at_position: bool,
    pub(crate) likelihood_scale: f64,
    pub(crate) prior: Option<Prior>,
}

impl Vi {
    /// Mean-field Gaussian VI with the defaults above.
    pub fn meanfield() -> Vi {
        Vi {
            optimizer: Optimizer::adam(1e-3),
            num_samples: 8,
            posterior_draws: 500,
            init_log_std: -3.0,
            init_mu_at_position: true,
            likelihood_scale: 1.0,
            prior: None,
        }
    }
    /// The optimiser of `(μ, ρ)` (Adam or SGD, optionally clipped).
    pub fn optimizer(mut self, opt: Optimizer) -> Vi {
        self.optimizer = opt;
        self
    }
    /// Monte-Carlo draws per ELBO estimate (at least 1): more draws, a
    /// less noisy gradient at a proportional cost per step.
    pub fn num_samples(mut self, n: usize) -> Vi {
        self.num_samples = n;
        self
    }
    /// Draws from the fitted `q` stored as `posterior_samples` (at least 1).
    pub fn posterior_draws(mut self, n: usize) -> Vi {
        self.posterior_draws = n;
        self
    }
    /// The starting `ρ = log σ` of every entry (default −3: a tight `q`,
    /// so the first ELBO gradients are close to the MAP's; 0 is blackjax's
    /// σ = 1).
    pub fn init_log_std(mut self, rho: f64) -> Vi {
        self.init_log_std = rho;
        self
    }
    /// Start `μ` at the model's value (default, numpyro's autoguide) or at
    /// zero (`false`, blackjax's).
    pub fn init_mu_at_position(mut self, on: bool) -> Vi {
        self.init_mu_at_position = on;
        self
    }
    /// Weight of the `.mse()`/`.mae()` likelihood term, as
    /// [`crate::Bayesian::likelihood_scale`] (`N/(2σ²)` for a Gaussian
    /// likelihood with known noise σ over `N` residual entries). Without
    /// it the mean-square loss is `N` times too weak and the prior
    /// dominates the fit. Likelihood terms (`.gaussian(σ)`, ...) are not
    /// scaled.
    pub fn likelihood_scale(mut self, s: f64) -> Vi {
        self.likelihood_scale = s;
        self
    }
    /// The prior (default Gaussian σ = 10).
    pub fn prior(mut self, p: Prior) -> Vi {
        self.prior = Some(p);
        self
    }
    /// The prior used (the default Gaussian σ = 10 when none was given).
    pub fn prior_or_default(&self) -> Prior {
        self.prior.clone().unwrap_or_default()
    }
    /// Draws from the fitted `q` after the solve.
    pub fn draws(&self) -> usize {
        self.posterior_draws
    }

    /// The checks that need no knowledge of the model; returns what is
    /// wrong and how to fix it.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.optimizer
            .check()
            .map_err(|e| format!("vi optimizer: {e}"))?;
        if self.num_samples < 1 {
            return Err("vi num_samples must be >= 1, got 0".into());
        }
        if self.posterior_draws < 1 {
            return Err("vi posterior_draws must be >= 1, got 0".into());
        }
        if !self.init_log_std.is_finite() {
            return Err(format!(
                "vi init_log_std must be finite, got {}",
                self.init_log_std
            ));
        }
        if !(self.likelihood_scale.is_finite() && self.likelihood_scale > 0.0) {
            return Err(format!(
                "likelihood_scale must be positive, got {}",
                self.likelihood_scale
            ));
        }
        if let Some(p) = &self.prior {
            p.check().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The checks against the model's size `dim`: every ELBO estimate's
    /// draws must fit one step's counter range.
    pub(crate) fn check_dim(&self, dim: usize) -> Result<(), String> {
        let draws = (self.num_samples as u128) * (dim as u128);
        if draws >= MAX_DRAWS_PER_STEP as u128 {
            return Err(format!(
                "vi num_samples · entries = {} · {dim} exceeds {MAX_DRAWS_PER_STEP} draws per step: lower num_samples",
                self.num_samples
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Vi) -> String {
        v.check().unwrap_err()
    }

    #[test]
    fn defaults_are_the_spec_s() {
        let v = Vi::meanfield();
        assert_eq!(v.optimizer, Optimizer::adam(1e-3));
        assert_eq!((v.num_samples, v.posterior_draws), (8, 500));
        assert_eq!((v.init_log_std, v.init_mu_at_position), (-3.0, true));
        assert_eq!(v.likelihood_scale, 1.0);
        assert!(v.check().is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err(Vi::meanfield().num_samples(0)).contains("num_samples"));
        assert!(err(Vi::meanfield().posterior_draws(0)).contains("posterior_draws"));
        assert!(err(Vi::meanfield().init_log_std(f64::NAN)).contains("init_log_std"));
        assert!(err(Vi::meanfield().likelihood_scale(0.0)).contains("likelihood_scale"));
        assert!(err(Vi::meanfield().optimizer(Optimizer::adam(-1.0))).contains("learning rate"));
        assert!(err(Vi::meanfield().prior(Prior::laplace(-1.0))).contains("scale"));
        let big = Vi::meanfield().num_samples(1 << 20);
        assert!(big
            .check_dim(1 << 12)
            .unwrap_err()
            .contains("lower num_samples"));
        assert!(big.check_dim(100).is_ok());
    }
}
