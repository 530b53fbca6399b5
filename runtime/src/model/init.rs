//! Log-density-aware initializers (`model.initialize(Init::..)`): plain
//! values the solve driver runs on the model's compiled log-density before
//! the chains start (see `solve::initializers`).

use super::sampling::Optimizer;

/// Pathfinder (Zhang et al. 2022): L-BFGS on the log-density, the best
/// normal approximation along its path; gives the warm start (the optimum
/// for one chain, distinct draws for `K`) and a diagonal inverse mass
/// matrix (the per-entry variance of `num_draws` draws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pathfinder {
    pub(crate) maxiter: usize,
    pub(crate) maxcor: usize,
    pub(crate) num_samples: usize,
    pub(crate) num_draws: usize,
}

impl Pathfinder {
    /// L-BFGS iterations at most (default 30).
    pub fn maxiter(mut self, n: usize) -> Self {
        self.maxiter = n;
        self
    }
    /// Curvature pairs of the inverse-Hessian approximation (default 6).
    pub fn maxcor(mut self, n: usize) -> Self {
        self.maxcor = n;
        self
    }
    /// Draws per ELBO estimate of each approximation (default 200).
    pub fn num_samples(mut self, n: usize) -> Self {
        self.num_samples = n;
        self
    }
    /// Draws of the chosen approximation the inverse mass matrix is
    /// estimated from (default 1000).
    pub fn num_draws(mut self, n: usize) -> Self {
        self.num_draws = n;
        self
    }
}

/// Laplace (MacKay 1992 §6): the MAP by L-BFGS, then the Hessian of the
/// log-density there; the inverse mass matrix is the Laplace variance
/// (`−1/Hᵢᵢ` with the diagonal Hessian, or the diagonal of `(−H)⁻¹` with
/// [`Laplace::full`]), the start the MAP (draws from the approximation for
/// several chains).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Laplace {
    pub(crate) maxiter: usize,
    pub(crate) full: bool,
}

impl Laplace {
    /// L-BFGS iterations at most for the MAP (default 1000).
    pub fn maxiter(mut self, n: usize) -> Self {
        self.maxiter = n;
        self
    }
    /// Use the full Hessian (`d` gradient differences of `d` entries and a
    /// `d × d` factorisation) instead of its diagonal.
    pub fn full(mut self, on: bool) -> Self {
        self.full = on;
        self
    }
}

/// Stein variational gradient descent (Liu & Wang 2016): one particle per
/// chain, started around the model's value, moved by `steps` optimiser
/// steps along the kernelised Stein direction (RBF kernel, median
/// heuristic); the particles are the chains' starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Svgd {
    pub(crate) steps: usize,
    pub(crate) optimizer: Optimizer,
    pub(crate) init_scale: f64,
}

impl Svgd {
    /// Optimiser steps (default 500).
    pub fn steps(mut self, n: usize) -> Self {
        self.steps = n;
        self
    }
    /// The particles' optimiser (default Adam, learning rate 0.05).
    pub fn optimizer(mut self, opt: Optimizer) -> Self {
        self.optimizer = opt;
        self
    }
    /// Standard deviation of the particles' start around the model's value
    /// (default 0.1; they must differ for the kernel to push them apart).
    pub fn init_scale(mut self, s: f64) -> Self {
        self.init_scale = s;
        self
    }
}

/// An initializer that runs on the model's log-density when the solve
/// starts (the spec's `_BayesianInitializer`s). With one, `init_jitter` is
/// ignored (the initializer gives each chain its own start); kernels
/// without a mass matrix (MALA, SGLD, SGHMC, custom kernels) take the
/// start only. Window adaptation, when on, starts from the initializer's
/// inverse mass matrix and refines it and the step size; when off, the
/// kernel keeps the initializer's inverse mass matrix and the user's step
/// size. An initializer with `substeps` or on a `.vi(..)` model is an
/// error.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// See [`Pathfinder`].
    Pathfinder(Pathfinder),
    /// See [`Laplace`].
    Laplace(Laplace),
    /// See [`Svgd`].
    Svgd(Svgd),
}

impl Init {
    /// Pathfinder with the spec's defaults (30 iterations, 200 ELBO draws).
    pub fn pathfinder() -> Pathfinder {
        Pathfinder {
            maxiter: 30,
            maxcor: 6,
            num_samples: 200,
            num_draws: 1000,
        }
    }
    /// Laplace with the diagonal Hessian.
    pub fn laplace() -> Laplace {
        Laplace {
            maxiter: 1000,
            full: false,
        }
    }
    /// SVGD with 500 Adam steps of learning rate 0.05.
    pub fn svgd() -> Svgd {
        Svgd {
            steps: 500,
            optimizer: Optimizer::adam(0.05),
            init_scale: 0.1,
        }
    }
    /// The initializer's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Init::Pathfinder(_) => "pathfinder",
            Init::Laplace(_) => "laplace",
            Init::Svgd(_) => "svgd",
        }
    }
    /// Checks the settings; returns what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        let at_least_one = |what: &str, n: usize| {
            if n == 0 {
                Err(format!("{} {what} must be >= 1, got 0", self.name()))
            } else {
                Ok(())
            }
        };
        match self {
            Init::Pathfinder(p) => {
                at_least_one("maxiter", p.maxiter)?;
                at_least_one("maxcor", p.maxcor)?;
                at_least_one("num_samples", p.num_samples)?;
                if p.num_draws < 2 {
                    return Err(format!(
                        "pathfinder num_draws must be >= 2 (a variance needs two draws), got {}",
                        p.num_draws
                    ));
                }
            }
            Init::Laplace(l) => at_least_one("maxiter", l.maxiter)?,
            Init::Svgd(s) => {
                s.optimizer
                    .check()
                    .map_err(|e| format!("svgd optimizer: {e}"))?;
                if !(s.init_scale.is_finite() && s.init_scale > 0.0) {
                    return Err(format!(
                        "svgd init_scale must be finite and > 0, got {}",
                        s.init_scale
                    ));
                }
            }
        }
        Ok(())
    }
}

impl From<Pathfinder> for Init {
    fn from(p: Pathfinder) -> Init {
        Init::Pathfinder(p)
    }
}
impl From<Laplace> for Init {
    fn from(l: Laplace) -> Init {
        Init::Laplace(l)
    }
}
impl From<Svgd> for Init {
    fn from(s: Svgd) -> Init {
        Init::Svgd(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(Init::from(Init::pathfinder()).check().is_ok());
        let e = Init::from(Init::pathfinder().maxiter(0))
            .check()
            .unwrap_err();
        assert!(e.contains("pathfinder maxiter"), "{e}");
        let e = Init::from(Init::pathfinder().num_draws(1))
            .check()
            .unwrap_err();
        assert!(e.contains("num_draws"), "{e}");
        let e = Init::from(Init::laplace().maxiter(0)).check().unwrap_err();
        assert!(e.contains("laplace maxiter"), "{e}");
        let e = Init::from(Init::svgd().init_scale(0.0))
            .check()
            .unwrap_err();
        assert!(e.contains("init_scale"), "{e}");
        let e = Init::from(Init::svgd().optimizer(Optimizer::sgd(-1.0)))
            .check()
            .unwrap_err();
        assert!(e.contains("svgd optimizer"), "{e}");
    }
}
