//! Validation of a model's `.bayesian(..)` configuration against its size:
//! the kernel object it names, the step size and inverse mass it starts
//! from, and the schedule a solve runs.

use std::sync::Arc;

use crux_compiler::sampler::kernels::{Hmc, Mala, Nuts, Sghmc, Sgld};
use crux_compiler::sampler::Kernel;

use crate::error::{Error, Result};
use crate::model::{Bayesian, InverseMass, KernelChoice, Metric, Prior, DEFAULT_TARGET_ACCEPTANCE};

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
    })
}
