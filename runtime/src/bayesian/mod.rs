//! Bayesian sampling per model: `.bayesian(config)` on a [`crate::Param`]
//! or [`crate::Net`], [`Crux::solve`](crate::Crux::solve) to run every
//! configured model's chains in one fused kernel per chain, and the
//! posterior read back as `(chain, draw, ...)` arrays.
//!
//! ```
//! use crux::{noise, Bayesian, Crux, Domain, Param, SolveOptions, PI};
//!
//! # fn main() -> crux::Result<()> {
//! let dom = Domain::line(0.0, 1.0, 0.01)?;
//! let x = dom.variable("interior")?;
//! let target = 3.14 * (PI * &x).sin() - 2.71 * (PI * &x).cos() + noise::gaussian(0.1);
//! let a = Param::new("a", [1]);
//! let b = Param::new("b", [1]);
//! for p in [&a, &b] {
//!     p.bayesian(Bayesian::nuts().step_size(1e-2).warmup(200).keep(300));
//! }
//! let residual = &a * (PI * &x).sin() + &b * (PI * &x).cos() - &target;
//! let problem = Crux::new([residual.mse()])?;
//! problem.solve_with(500, &SolveOptions::default().quiet())?;
//! let chain = a.posterior_samples().unwrap(); // (1, 300, 1)
//! assert_eq!(chain.shape(), &[1, 300, 1]);
//! # Ok(())
//! # }
//! ```

mod convergence;
#[cfg(feature = "cuda")]
mod cuda;
mod eval;
mod exe;
mod options;
mod posterior;
mod run;
mod solve;
mod summary;
mod track;

use std::sync::{Arc, RwLock};

use crux_compiler::sampler::kernels::{Hmc, Mala, Nuts, Sghmc, Sgld};
use crux_compiler::sampler::{Family, Kernel};

pub use convergence::{ess, ess_bulk, ess_tail, mcse_mean, mcse_sd, rhat, RhatStrategy};
#[cfg(feature = "cuda")]
pub use cuda::driver_present;
pub use eval::Samples;
pub use options::{ModelReport, Solution, SolveOptions, Tiering};
pub use posterior::{Diagnostics, LeafSamples, Posterior};
pub use solve::MAX_SWEEPS;
pub use summary::{SummaryRow, SummaryTable};
pub use track::{JsonlTracker, Metrics, Tracker};

use crate::error::{Error, Result};
use crate::prior::Prior;

/// Per-model storage shared by the leaves of one model: its configuration
/// and, after a solve, its posterior.
#[derive(Default, Debug)]
pub(crate) struct ModelCell {
    pub(crate) config: RwLock<Option<Bayesian>>,
    pub(crate) posterior: RwLock<Option<Arc<Posterior>>>,
}

impl ModelCell {
    pub(crate) fn set_config(&self, c: Bayesian) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(c);
    }
    pub(crate) fn config(&self) -> Option<Bayesian> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn set_posterior(&self, p: Option<Arc<Posterior>>) {
        *self.posterior.write().unwrap_or_else(|e| e.into_inner()) = p;
    }
    pub(crate) fn posterior(&self) -> Option<Arc<Posterior>> {
        self.posterior
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Which transition kernel a model is sampled with.
#[derive(Clone, Debug)]
pub enum KernelChoice {
    /// The No-U-Turn sampler (multinomial, maximum tree depth 10).
    Nuts,
    /// HMC with a fixed number of leapfrog steps.
    Hmc,
    /// The Metropolis-adjusted Langevin algorithm.
    Mala,
    /// Stochastic-gradient Langevin dynamics.
    Sgld,
    /// Stochastic-gradient HMC.
    Sghmc,
    /// A user kernel written with the kernel-IR builder.
    Custom(Arc<dyn Kernel>),
}

impl KernelChoice {
    fn name(&self) -> String {
        match self {
            KernelChoice::Nuts => "nuts".into(),
            KernelChoice::Hmc => "hmc".into(),
            KernelChoice::Mala => "mala".into(),
            KernelChoice::Sgld => "sgld".into(),
            KernelChoice::Sghmc => "sghmc".into(),
            KernelChoice::Custom(k) => k.name().to_string(),
        }
    }
}

/// The inverse mass matrix a HMC-family kernel starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum InverseMass {
    /// The same value on every entry.
    Scalar(f64),
    /// One value per entry of the model's flattened parameters.
    PerEntry(Vec<f64>),
}

/// How a model is sampled: kernel, prior, schedule and kernel options.
/// Defaults follow the reference library: warmup 500, keep 1000, thin 1,
/// adapt true, one chain, no jitter, likelihood scale 1, Gaussian prior
/// σ = 10.
#[derive(Clone, Debug)]
pub struct Bayesian {
    kernel: KernelChoice,
    prior: Option<Prior>,
    warmup: i64,
    keep: i64,
    thin: i64,
    adapt: bool,
    num_chains: i64,
    init_jitter: f64,
    likelihood_scale: f64,
    step_size: Option<f64>,
    inverse_mass: Option<InverseMass>,
    num_integration_steps: Option<i64>,
    alpha: Option<f64>,
    beta: Option<f64>,
}

impl Bayesian {
    fn new(kernel: KernelChoice) -> Bayesian {
        Bayesian {
            kernel,
            prior: None,
            warmup: 500,
            keep: 1000,
            thin: 1,
            adapt: true,
            num_chains: 1,
            init_jitter: 0.0,
            likelihood_scale: 1.0,
            step_size: None,
            inverse_mass: None,
            num_integration_steps: None,
            alpha: None,
            beta: None,
        }
    }
    /// NUTS (`step_size` optional: window adaptation picks one).
    pub fn nuts() -> Bayesian {
        Bayesian::new(KernelChoice::Nuts)
    }
    /// HMC with `num_integration_steps` leapfrog steps per transition.
    pub fn hmc(num_integration_steps: i64) -> Bayesian {
        Bayesian::new(KernelChoice::Hmc).num_integration_steps(num_integration_steps)
    }
    /// MALA (needs `step_size`).
    pub fn mala() -> Bayesian {
        Bayesian::new(KernelChoice::Mala)
    }
    /// SGLD (needs `step_size`).
    pub fn sgld() -> Bayesian {
        Bayesian::new(KernelChoice::Sgld)
    }
    /// SGHMC (needs `step_size`; defaults 10 integration steps, α 0.01, β 0).
    pub fn sghmc() -> Bayesian {
        Bayesian::new(KernelChoice::Sghmc)
    }
    /// A user kernel (see [`crux_compiler::sampler::Kernel`]); it goes
    /// through the same warmup / keep / thin pipeline.
    pub fn custom(kernel: Arc<dyn Kernel>) -> Bayesian {
        Bayesian::new(KernelChoice::Custom(kernel))
    }
    /// The prior (default Gaussian σ = 10).
    pub fn prior(mut self, p: Prior) -> Self {
        self.prior = Some(p);
        self
    }
    /// Sweeps before the first kept draw (window adaptation runs in them).
    pub fn warmup(mut self, n: i64) -> Self {
        self.warmup = n;
        self
    }
    /// Draws kept per chain.
    pub fn keep(mut self, n: i64) -> Self {
        self.keep = n;
        self
    }
    /// Keep one draw every `n` sweeps after warmup.
    pub fn thin(mut self, n: i64) -> Self {
        self.thin = n;
        self
    }
    /// Window adaptation of step size and inverse mass matrix (HMC family).
    pub fn adapt(mut self, on: bool) -> Self {
        self.adapt = on;
        self
    }
    /// Independent chains (every sampled model of a solve needs the same).
    pub fn num_chains(mut self, k: i64) -> Self {
        self.num_chains = k;
        self
    }
    /// Standard deviation of the Gaussian perturbation of each chain's start.
    pub fn init_jitter(mut self, s: f64) -> Self {
        self.init_jitter = s;
        self
    }
    /// Weight of the likelihood term (`N/σ²` turns `.mse` into a Gaussian likelihood).
    pub fn likelihood_scale(mut self, s: f64) -> Self {
        self.likelihood_scale = s;
        self
    }
    /// The step size (the initial one when adapting).
    pub fn step_size(mut self, s: f64) -> Self {
        self.step_size = Some(s);
        self
    }
    /// The diagonal inverse mass matrix (HMC family; replaced by adaptation).
    pub fn inverse_mass_matrix(mut self, m: InverseMass) -> Self {
        self.inverse_mass = Some(m);
        self
    }
    /// Leapfrog steps per transition (HMC, SGHMC).
    pub fn num_integration_steps(mut self, n: i64) -> Self {
        self.num_integration_steps = Some(n);
        self
    }
    /// SGHMC friction α.
    pub fn alpha(mut self, a: f64) -> Self {
        self.alpha = Some(a);
        self
    }
    /// SGHMC gradient-noise estimate β.
    pub fn beta(mut self, b: f64) -> Self {
        self.beta = Some(b);
        self
    }
    /// The kernel.
    pub fn kernel(&self) -> &KernelChoice {
        &self.kernel
    }
    /// Chains requested.
    pub fn chains(&self) -> i64 {
        self.num_chains
    }
}

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
}

impl Bayesian {
    /// Checks the configuration of model `model` with `dim` entries
    /// (errors name the model and the fix).
    pub(crate) fn resolve(&self, model: &str, dim: usize) -> Result<Resolved> {
        let bad = |reason: String| Error::Bayesian {
            model: model.to_string(),
            reason,
        };
        if self.num_chains < 1 {
            return Err(bad(format!(
                "num_chains must be >= 1, got {}",
                self.num_chains
            )));
        }
        if !(self.likelihood_scale.is_finite() && self.likelihood_scale > 0.0) {
            return Err(bad(format!(
                "likelihood_scale must be positive, got {}",
                self.likelihood_scale
            )));
        }
        if self.warmup < 0 || self.keep < 1 || self.thin < 1 {
            return Err(bad(format!(
                "warmup >= 0, keep >= 1 and thin >= 1 are required, got warmup={}, keep={}, thin={}",
                self.warmup, self.keep, self.thin
            )));
        }
        let sweeps = (self.keep as u128)
            .checked_mul(self.thin as u128)
            .and_then(|x| x.checked_add(self.warmup as u128));
        if sweeps.is_none_or(|x| x > solve::MAX_SWEEPS as u128) {
            return Err(bad(format!(
                "warmup + keep·thin = {} + {}·{} exceeds {} sweeps: lower keep, thin or warmup",
                self.warmup,
                self.keep,
                self.thin,
                solve::MAX_SWEEPS
            )));
        }
        if !(self.init_jitter.is_finite() && self.init_jitter >= 0.0) {
            return Err(bad(format!(
                "init_jitter must be finite and >= 0, got {}",
                self.init_jitter
            )));
        }
        let name = self.kernel.name();
        let takes_steps = matches!(self.kernel, KernelChoice::Hmc | KernelChoice::Sghmc);
        if self.num_integration_steps.is_some() && !takes_steps {
            return Err(bad(format!(
                "kernel `{name}` takes no num_integration_steps (only hmc and sghmc do)"
            )));
        }
        if (self.alpha.is_some() || self.beta.is_some())
            && !matches!(self.kernel, KernelChoice::Sghmc)
        {
            return Err(bad(format!(
                "kernel `{name}` takes no alpha/beta (only sghmc does)"
            )));
        }
        let steps = self.num_integration_steps.unwrap_or(10);
        if takes_steps && !(1..=1_000_000).contains(&steps) {
            return Err(bad(format!(
                "num_integration_steps must be in 1..=1000000, got {steps}"
            )));
        }
        let kernel: Arc<dyn Kernel> = match &self.kernel {
            KernelChoice::Nuts => Arc::new(Nuts::default()),
            KernelChoice::Hmc => Arc::new(Hmc {
                num_integration_steps: steps as usize,
            }),
            KernelChoice::Mala => Arc::new(Mala),
            KernelChoice::Sgld => Arc::new(Sgld),
            KernelChoice::Sghmc => {
                let d = Sghmc::default();
                let alpha = self.alpha.unwrap_or(d.alpha);
                let beta = self.beta.unwrap_or(d.beta);
                if !(alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0) {
                    return Err(bad(format!(
                        "sghmc alpha and beta must be finite and >= 0, got {alpha}, {beta}"
                    )));
                }
                Arc::new(Sghmc {
                    num_integration_steps: steps as usize,
                    alpha,
                    beta,
                })
            }
            KernelChoice::Custom(k) => k.clone(),
        };
        let hmc = kernel.hmc_family();
        let adapt = self.adapt && hmc && self.warmup > 0;
        let step_size = match self.step_size {
            Some(s) if s.is_finite() && s > 0.0 => s,
            Some(s) => return Err(bad(format!("step_size must be finite and > 0, got {s}"))),
            None if adapt => 1.0,
            None => {
                return Err(bad(format!(
                    "`{name}` requires a step_size (call `.step_size(..)`): only HMC-family kernels with adapt and warmup > 0 choose one (adapt={}, hmc_family={hmc}, warmup={})",
                    self.adapt, self.warmup
                )))
            }
        };
        let inverse_mass = match &self.inverse_mass {
            None => vec![1.0; dim],
            Some(_) if !hmc => {
                return Err(bad(format!(
                    "kernel `{name}` takes no inverse_mass_matrix (only nuts and hmc do)"
                )))
            }
            Some(InverseMass::Scalar(s)) => vec![*s; dim],
            Some(InverseMass::PerEntry(v)) if v.len() != dim => {
                return Err(bad(format!(
                    "inverse_mass_matrix has {} entries, the model has {dim}",
                    v.len()
                )))
            }
            Some(InverseMass::PerEntry(v)) => v.clone(),
        };
        if let KernelChoice::Sghmc = self.kernel {
            let d = Sghmc::default();
            let (alpha, beta) = (self.alpha.unwrap_or(d.alpha), self.beta.unwrap_or(d.beta));
            if step_size * beta > 2.0 * alpha {
                return Err(bad(format!(
                    "sghmc needs step_size·beta <= 2·alpha (the noise variance ε(2α − εβ) must not be negative), got step_size {step_size}, alpha {alpha}, beta {beta}"
                )));
            }
        }
        if let Some(x) = inverse_mass.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(bad(format!(
                "inverse_mass_matrix entries must be finite and > 0, got {x}"
            )));
        }
        if self.adapt && self.warmup > 0 && !hmc && kernel.family() == Family::FullData {
            // adapt is silently ignored for non-HMC kernels (as in the spec).
        }
        Ok(Resolved {
            kernel,
            prior: self.prior.clone().unwrap_or_default(),
            warmup: self.warmup as usize,
            keep: self.keep as usize,
            thin: self.thin as usize,
            adapt,
            num_chains: self.num_chains as usize,
            init_jitter: self.init_jitter,
            likelihood_scale: self.likelihood_scale,
            step_size,
            inverse_mass,
        })
    }
}
