//! Synthetic observation noise, drawn once per problem.
//!
//! `target + noise::gaussian(0.1)` adds a noise term shaped like `target`.
//! Its values are drawn once, from the problem's seed, when the problem is
//! compiled: they are fixed synthetic observations, the same for every
//! evaluation and every sampler step (DESIGN §6). The `k`-th noise term met
//! in the problem's constraints uses the `k`-th Philox stream of the noise
//! purpose, element `i` counter `i`, so the draws depend only on the seed and the problem's structure.

use std::fmt;

use crux_ir::graph::Shape;

use crate::error::{Error, Result};
use crate::model::expr::{Expr, Kind};
use crate::model::ids::NoiseId;

/// A noise distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseDist {
    /// `N(0, std²)`.
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// `U(lo, hi)`.
    Uniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
    /// Laplace with location 0.
    Laplace {
        /// Scale `b` (variance `2b²`).
        scale: f64,
    },
}

impl NoiseDist {
    /// Element `i` of noise stream `stream` under `seed`.
    pub(crate) fn draw(&self, seed: u64, stream: u64, i: u64) -> f64 {
        match *self {
            NoiseDist::Gaussian { std } => std * crux_ir::rng::normal(seed, stream, i),
            NoiseDist::Uniform { lo, hi } => {
                // A convex combination: no overflow even for ranges wider than f64::MAX.
                let u = crux_ir::rng::uniform(seed, stream, i);
                lo * (1.0 - u) + hi * u
            }
            NoiseDist::Laplace { scale } => scale * crux_ir::rng::laplace(seed, stream, i),
        }
    }
}

impl fmt::Display for NoiseDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoiseDist::Gaussian { std } => write!(f, "noise::gaussian({std})"),
            NoiseDist::Uniform { lo, hi } => write!(f, "noise::uniform({lo}, {hi})"),
            NoiseDist::Laplace { scale } => write!(f, "noise::laplace({scale})"),
        }
    }
}

/// A noise term waiting to be added to an expression (see the module docs).
#[derive(Clone, Debug)]
pub struct Noise {
    dist: NoiseDist,
    error: Option<String>,
}

impl Noise {
    fn checked(dist: NoiseDist, ok: bool, what: &str) -> Noise {
        Noise {
            dist,
            error: (!ok).then(|| format!("{dist}: {what}")),
        }
    }

    /// The distribution.
    pub fn dist(&self) -> NoiseDist {
        self.dist
    }

    /// The noise term shaped like `like`.
    pub(crate) fn into_expr_like(self, like: &Expr) -> Result<Expr> {
        if let Some(e) = self.error {
            return Err(Error::InvalidArgument {
                what: "noise".into(),
                reason: e,
            });
        }
        Ok(Expr::make(
            Kind::Noise {
                id: NoiseId::fresh(),
                dist: self.dist,
            },
            Shape(like.shape().to_vec()),
            like.0.domain,
        ))
    }
}

/// Gaussian noise `N(0, std²)`; `std` must be finite and ≥ 0.
pub fn gaussian(std: f64) -> Noise {
    Noise::checked(
        NoiseDist::Gaussian { std },
        std.is_finite() && std >= 0.0,
        "std must be finite and >= 0",
    )
}

/// Uniform noise on `[lo, hi)`; the ends must be finite with `lo ≤ hi`.
pub fn uniform(lo: f64, hi: f64) -> Noise {
    Noise::checked(
        NoiseDist::Uniform { lo, hi },
        lo.is_finite() && hi.is_finite() && lo <= hi,
        "the ends must be finite with lo <= hi",
    )
}

/// Laplace noise with location 0 and scale `scale`; `scale` must be finite and ≥ 0.
pub fn laplace(scale: f64) -> Noise {
    Noise::checked(
        NoiseDist::Laplace { scale },
        scale.is_finite() && scale >= 0.0,
        "scale must be finite and >= 0",
    )
}
