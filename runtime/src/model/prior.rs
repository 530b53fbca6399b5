//! Priors: log-densities over a sampled model's parameter leaves.
//!
//! The built-in factories follow the reference library (unnormalised,
//! additive over leaves; `fan_in` = product of `shape[1..]`, weights laid
//! out `(out, in)`), with its validation messages. A custom prior is any
//! function from the leaves (as expressions) to a scalar expression, so it
//! is compiled and differentiated like the rest of the log-density.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::expr::Expr;
use crate::model::param::Param;

type PriorFn = dyn Fn(&[Expr]) -> Expr + Send + Sync;

/// A prior over a model's parameters.
#[derive(Clone)]
pub enum Prior {
    /// `−½ Σ_leaf ‖θ‖² / σ²`; with `fan_in_aware`, leaves of rank ≥ 2 use
    /// `fan_in / σ²` instead of `1 / σ²`.
    Gaussian {
        /// Standard deviation.
        sigma: f64,
        /// Scale σ by `1/√fan_in` per weight tensor.
        fan_in_aware: bool,
    },
    /// `−Σ|θ| / scale`.
    Laplace {
        /// Scale.
        scale: f64,
    },
    /// `−(df+1)/2 · Σ ln(1 + θ² / (scale² · df))`.
    StudentT {
        /// Degrees of freedom (> 2).
        df: f64,
        /// Scale.
        scale: f64,
    },
    /// Per leaf `N(0, σ²)` with `σ = base/√fan_in` for weights (rank ≥ 2;
    /// `base` alone without `fan_in_aware`) and `σ = default` for biases.
    LayerwiseGaussian {
        /// σ of weight tensors before the fan-in scaling.
        base_sigma: f64,
        /// σ of leaves of rank < 2.
        default_sigma: f64,
        /// Scale weights' σ by `1/√fan_in`.
        fan_in_aware: bool,
    },
    /// The flat (improper) prior: log-density 0.
    Flat,
    /// A user-written log-prior over the leaves.
    Custom(CustomPrior),
}

/// A user-written log-prior: a function from the model's leaves (as
/// expressions, in the model's leaf order) to a scalar expression.
#[derive(Clone)]
pub struct CustomPrior {
    name: String,
    f: Arc<PriorFn>,
}

impl fmt::Debug for Prior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prior::Gaussian { sigma, fan_in_aware } => write!(f, "gaussian(sigma={sigma}, fan_in_aware={fan_in_aware})"),
            Prior::Laplace { scale } => write!(f, "laplace(scale={scale})"),
            Prior::StudentT { df, scale } => write!(f, "student_t(df={df}, scale={scale})"),
            Prior::LayerwiseGaussian {
                base_sigma,
                default_sigma,
                fan_in_aware,
            } => write!(
                f,
                "layerwise_gaussian(base_sigma={base_sigma}, default_sigma={default_sigma}, fan_in_aware={fan_in_aware})"
            ),
            Prior::Flat => write!(f, "flat"),
            Prior::Custom(c) => write!(f, "custom({})", c.name),
        }
    }
}

impl Default for Prior {
    /// The reference library's default: Gaussian with σ = 10.
    fn default() -> Prior {
        Prior::Gaussian {
            sigma: 10.0,
            fan_in_aware: false,
        }
    }
}

/// A usable scale: finite, > 0, and not so small that `1/v²` overflows.
fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0 && (1.0 / (v * v)).is_finite()
}

impl Prior {
    /// Gaussian prior `N(0, σ²)` on every entry; `sigma` must be > 0 (and
    /// large enough that `1/σ²` is finite). See [`Prior::fan_in_aware`].
    pub fn gaussian(sigma: f64) -> Prior {
        Prior::Gaussian {
            sigma,
            fan_in_aware: false,
        }
    }

    /// Laplace prior; `scale` must be > 0.
    pub fn laplace(scale: f64) -> Prior {
        Prior::Laplace { scale }
    }

    /// Student-t prior; `df` must be > 2 (finite variance) and `scale` > 0.
    pub fn student_t(df: f64, scale: f64) -> Prior {
        Prior::StudentT { df, scale }
    }

    /// Layer-wise Gaussian prior (the standard BNN-PINN prior) with the
    /// spec's defaults: base σ 1 for weights, σ 1 for biases, fan-in aware
    /// (weights' σ is `base/√fan_in`). Change them with
    /// [`base_sigma`](Prior::base_sigma), [`default_sigma`](Prior::default_sigma)
    /// and [`without_fan_in`](Prior::without_fan_in).
    pub fn layerwise_gaussian() -> Prior {
        Prior::LayerwiseGaussian {
            base_sigma: 1.0,
            default_sigma: 1.0,
            fan_in_aware: true,
        }
    }

    /// The flat (improper) prior: log-density 0. The posterior is then the
    /// normalised likelihood, which must be integrable for sampling to
    /// make sense.
    pub fn flat() -> Prior {
        Prior::Flat
    }

    /// Scales weight tensors' σ (leaves of rank ≥ 2) by `1/√fan_in`
    /// (Gaussian and layer-wise Gaussian priors; no effect on the others).
    pub fn fan_in_aware(self) -> Prior {
        self.with_fan_in(true)
    }

    /// Uses the same σ for every weight tensor whatever its fan-in
    /// (Gaussian and layer-wise Gaussian priors; no effect on the others).
    pub fn without_fan_in(self) -> Prior {
        self.with_fan_in(false)
    }

    fn with_fan_in(self, on: bool) -> Prior {
        match self {
            Prior::Gaussian { sigma, .. } => Prior::Gaussian {
                sigma,
                fan_in_aware: on,
            },
            Prior::LayerwiseGaussian {
                base_sigma,
                default_sigma,
                ..
            } => Prior::LayerwiseGaussian {
                base_sigma,
                default_sigma,
                fan_in_aware: on,
            },
            other => other,
        }
    }

    /// The σ of weight tensors before fan-in scaling (layer-wise Gaussian;
    /// no effect on the others).
    pub fn base_sigma(self, sigma: f64) -> Prior {
        match self {
            Prior::LayerwiseGaussian {
                default_sigma,
                fan_in_aware,
                ..
            } => Prior::LayerwiseGaussian {
                base_sigma: sigma,
                default_sigma,
                fan_in_aware,
            },
            other => other,
        }
    }

    /// The σ of leaves of rank < 2, such as biases (layer-wise Gaussian;
    /// no effect on the others).
    pub fn default_sigma(self, sigma: f64) -> Prior {
        match self {
            Prior::LayerwiseGaussian {
                base_sigma,
                fan_in_aware,
                ..
            } => Prior::LayerwiseGaussian {
                base_sigma,
                default_sigma: sigma,
                fan_in_aware,
            },
            other => other,
        }
    }

    /// Checks the parameters, with the reference library's messages. Called
    /// by `.bayesian(..)` and by the log-density builder.
    pub fn check(&self) -> Result<()> {
        let bad = |prior, parameter, value, requirement| {
            Err(Error::InvalidPrior {
                prior,
                parameter,
                value,
                requirement,
            })
        };
        match *self {
            Prior::Gaussian { sigma, .. } if !positive(sigma) => {
                bad("gaussian", "sigma", sigma, "> 0")
            }
            Prior::Laplace { scale } if !positive(scale) => bad("laplace", "scale", scale, "> 0"),
            Prior::StudentT { df, .. } if !(df.is_finite() && df > 2.0) => {
                bad("student_t", "df", df, "> 2 for finite variance")
            }
            Prior::StudentT { scale, .. } if !positive(scale) => {
                bad("student_t", "scale", scale, "> 0")
            }
            Prior::LayerwiseGaussian { base_sigma, .. } if !positive(base_sigma) => {
                bad("layerwise_gaussian", "base_sigma", base_sigma, "> 0")
            }
            Prior::LayerwiseGaussian { default_sigma, .. } if !positive(default_sigma) => {
                bad("layerwise_gaussian", "default_sigma", default_sigma, "> 0")
            }
            _ => Ok(()),
        }
    }

    /// A custom log-prior built from the leaves' expressions; it must return
    /// a single value (any shape with one element: `[]`, `[1]`, `[1, 1]`...).
    pub fn custom(
        name: impl Into<String>,
        f: impl Fn(&[Expr]) -> Expr + Send + Sync + 'static,
    ) -> Prior {
        Prior::Custom(CustomPrior {
            name: name.into(),
            f: Arc::new(f),
        })
    }

    /// The log-prior of `leaves` as a scalar expression.
    pub(crate) fn log_prior(&self, leaves: &[Param]) -> Result<Expr> {
        self.check()?;
        let sum_sq = |p: &Param| p.expr().square().sum();
        // One term per leaf, summed without a leading `0 +` (which the
        // optimiser may not remove: `x + 0` is not `x` for `x = -0`).
        let mut terms: Vec<Expr> = Vec::with_capacity(leaves.len());
        match self {
            Prior::Gaussian {
                sigma,
                fan_in_aware,
            } => {
                for p in leaves {
                    let mut inv_s2 = 1.0 / (sigma * sigma);
                    if *fan_in_aware && p.shape().len() >= 2 {
                        inv_s2 *= p.fan_in() as f64;
                    }
                    terms.push(sum_sq(p) * (-0.5 * inv_s2));
                }
            }
            Prior::Laplace { scale } => {
                for p in leaves {
                    terms.push(p.expr().abs().sum() * (-1.0 / scale));
                }
            }
            Prior::StudentT { df, scale } => {
                for p in leaves {
                    let t = (p.expr().square() * (1.0 / (scale * scale * df)))
                        .log1p()
                        .sum();
                    terms.push(t * (-(df + 1.0) / 2.0));
                }
            }
            Prior::LayerwiseGaussian {
                base_sigma,
                default_sigma,
                fan_in_aware,
            } => {
                for p in leaves {
                    let inv_s2 = if p.shape().len() >= 2 {
                        let base = 1.0 / (base_sigma * base_sigma);
                        if *fan_in_aware {
                            base * p.fan_in() as f64
                        } else {
                            base
                        }
                    } else {
                        1.0 / (default_sigma * default_sigma)
                    };
                    terms.push(sum_sq(p) * (-0.5 * inv_s2));
                }
            }
            Prior::Flat => {}
            Prior::Custom(c) => {
                let exprs: Vec<Expr> = leaves.iter().map(Param::expr).collect();
                let v = (c.f)(&exprs);
                v.check()?;
                if v.shape().iter().product::<usize>() != 1 {
                    return Err(Error::InvalidArgument {
                        what: format!("custom prior `{}`", c.name),
                        reason: format!(
                            "must return a scalar log-density, got shape {:?}; sum it",
                            v.shape()
                        ),
                    });
                }
                terms.push(v.reshape(&[]));
            }
        }
        let total = terms
            .into_iter()
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Expr::scalar(0.0));
        total.check()?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_follow_the_reference_library() {
        let msg = |p: Prior| p.check().unwrap_err().to_string();
        assert_eq!(
            msg(Prior::gaussian(0.0)),
            "gaussian prior: sigma must be > 0, got 0"
        );
        assert_eq!(
            msg(Prior::laplace(-1.0)),
            "laplace prior: scale must be > 0, got -1"
        );
        assert_eq!(
            msg(Prior::student_t(2.0, 1.0)),
            "student_t prior: df must be > 2 for finite variance, got 2"
        );
        assert_eq!(
            msg(Prior::student_t(4.0, 0.0)),
            "student_t prior: scale must be > 0, got 0"
        );
        // df is checked first.
        assert!(msg(Prior::student_t(1.0, -1.0)).contains("df must be > 2"));
        assert_eq!(
            msg(Prior::layerwise_gaussian().default_sigma(0.0)),
            "layerwise_gaussian prior: default_sigma must be > 0, got 0"
        );
        assert_eq!(
            msg(Prior::layerwise_gaussian().base_sigma(-1.0)),
            "layerwise_gaussian prior: base_sigma must be > 0, got -1"
        );
        assert!(Prior::gaussian(f64::NAN).check().is_err());
    }
}
