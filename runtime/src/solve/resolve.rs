//! Validation of a model's `.bayesian(..)` configuration against its size:
//! the kernel object it names, the step size and inverse mass it starts
//! from, and the schedule a solve runs.

use std::sync::Arc;

use crux_compiler::sampler::kernels::{Hmc, Mala, MeanFieldVi, Nuts, Sghmc, Sgld};
use crux_compiler::sampler::Kernel;

use crate::error::{Error, Result};
use crate::model::{
    Bayesian, InverseMass, KernelChoice, Metric, Prior, Vi, DEFAULT_TARGET_ACCEPTANCE,
};
use crux_ir::rng::MAX_SWEEPS;

/// Leapfrog steps of HMC and SGHMC when none are given.
const DEFAULT_INTEGRATION_STEPS: usize = 10;

/// A validated configuration, ready to build a chunk function.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub kernel: Arc<dyn Kernel>,
    pub prior: Prior,
    pub warmup: usize,
    pub keep: usize,
    pub thin: usize,
    pub adapt: bool,
    pub num_chains: usize,
    pub init_jitter: f64,
    pub likelihood_scale: f64,
    pub step_size: f64,
    pub inverse_mass: Vec<f64>,
    pub metric: Metric,
    pub target_acceptance: f64,
    /// Minibatch size (SG kernels), `None` for the full batch.
    pub batch_size: Option<usize>,
    /// A `.vi(..)` member: the draws from its fitted `q` after the solve
    /// (its kernel records `μ` and the ELBO at every step: `keep` is the
    /// number of epochs).
    pub vi_draws: Option<usize>,
}

/// Draws kept once `sweeps` sweeps are done by a schedule of `warmup`
/// sweeps, then one kept draw every `thin`, `keep` in all.
pub(crate) fn kept_after(sweeps: usize, warmup: usize, thin: usize, keep: usize) -> usize {
    (sweeps.saturating_sub(warmup) / thin).min(keep)
}

impl Resolved {
    /// Whether the member is fitted by VI rather than sampled by MCMC.
    pub fn is_vi(&self) -> bool {
        self.vi_draws.is_some()
    }
    /// Draws kept (VI: ELBO steps recorded) once `sweeps` sweeps are done.
    pub fn kept_after(&self, sweeps: usize) -> usize {
        kept_after(sweeps, self.warmup, self.thin, self.keep)
    }
}

/// Checks the VI configuration of `model` with `dim` entries for a solve
/// of `epochs` steps: the mean-field kernel, stepping (and recording its
/// ELBO) at every epoch.
pub(crate) fn resolve_vi(cfg: &Vi, model: &str, dim: usize, epochs: usize) -> Result<Resolved> {
    let bad = |reason: String| Error::Bayesian {
        model: model.to_string(),
        reason,
    };
    cfg.check().map_err(bad)?;
    cfg.check_dim(dim).map_err(bad)?;
    if epochs == 0 || epochs > MAX_SWEEPS {
        return Err(bad(format!(
            "a .vi(..) model takes one optimiser step per epoch: solve between 1 and {MAX_SWEEPS} epochs, got {epochs}"
        )));
    }
    let draws = (cfg.posterior_draws as u128) * (dim as u128);
    if draws >= 1 << 48 {
        return Err(bad(format!(
            "vi posterior_draws · entries = {} · {dim} is too many draws: lower posterior_draws",
            cfg.posterior_draws
        )));
    }
    Ok(Resolved {
        kernel: Arc::new(MeanFieldVi {
            optimizer: cfg.optimizer.clone(),
            num_samples: cfg.num_samples,
            init_log_std: cfg.init_log_std,
            init_mu_at_position: cfg.init_mu_at_position,
        }),
        prior: cfg.prior_or_default(),
        warmup: 0,
        keep: epochs,
        thin: 1,
        adapt: false,
        num_chains: 1,
        init_jitter: 0.0,
        likelihood_scale: cfg.likelihood_scale,
        step_size: 1.0,
        inverse_mass: vec![1.0; dim],
        metric: Metric::Diagonal,
        target_acceptance: DEFAULT_TARGET_ACCEPTANCE,
        batch_size: None,
        vi_draws: Some(cfg.posterior_draws),
    })
}

/// Checks the configuration of model `model` with `dim` entries (errors
/// name the model and the fix).
pub(crate) fn resolve(cfg: &Bayesian, model: &str, dim: usize) -> Result<Resolved> {
    let bad = |reason: String| Error::Bayesian {
        model: model.to_string(),
        reason,
    };
    cfg.check().map_err(bad)?;
    let steps = cfg
        .num_integration_steps
        .unwrap_or(DEFAULT_INTEGRATION_STEPS);
    let kernel: Arc<dyn Kernel> = match &cfg.kernel {
        KernelChoice::Nuts => Arc::new(Nuts::default()),
        KernelChoice::Hmc => Arc::new(Hmc {
            num_integration_steps: steps,
        }),
        KernelChoice::Mala => Arc::new(Mala),
        KernelChoice::Sgld => Arc::new(Sgld),
        KernelChoice::Sghmc => {
            let (alpha, beta) = cfg.sghmc_friction();
            Arc::new(Sghmc {
                num_integration_steps: steps,
                alpha,
                beta,
            })
        }
        KernelChoice::Custom(k) => k.clone(),
    };
    let adapt = cfg.adapt && cfg.hmc_family() && cfg.warmup > 0;
    let inverse_mass = match &cfg.inverse_mass {
        None => vec![1.0; dim],
        Some(InverseMass::Scalar(s)) => vec![*s; dim],
        Some(InverseMass::PerEntry(v)) if v.len() != dim => {
            return Err(bad(format!(
                "inverse_mass_matrix has {} entries, the model has {dim}",
                v.len()
            )))
        }
        Some(InverseMass::PerEntry(v)) => v.clone(),
    };
    if let Metric::LowRank { rank } = cfg.metric {
        if rank > dim {
            return Err(bad(format!(
                "metric(Metric::LowRank {{ rank: {rank} }}) keeps more directions than the model's {dim} entries: use rank <= {dim} (or Metric::Dense)"
            )));
        }
    }
    Ok(Resolved {
        kernel,
        prior: cfg.prior_or_default(),
        warmup: cfg.warmup,
        keep: cfg.keep,
        thin: cfg.thin,
        adapt,
        num_chains: cfg.num_chains,
        init_jitter: cfg.init_jitter,
        likelihood_scale: cfg.likelihood_scale,
        // `check` guarantees a step size unless adaptation picks one.
        step_size: cfg.step_size.unwrap_or(1.0),
        inverse_mass,
        metric: cfg.metric,
        target_acceptance: cfg.target_acceptance.unwrap_or(DEFAULT_TARGET_ACCEPTANCE),
        batch_size: cfg.batch_size,
        vi_draws: None,
    })
}
