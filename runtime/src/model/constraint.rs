//! Constraints: residuals reduced to one scalar loss each, and
//! log-density terms (see [`crate::model::likelihood`]).

use crate::model::expr::Expr;

/// How a residual is reduced to its scalar loss `L_c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Mean of squares over every element (`.mse()`).
    MeanSquare,
    /// Mean of absolute values over every element (`.mae()`).
    MeanAbs,
    /// The expression is a scalar log-density term `ℓ` (`.gaussian(σ)`,
    /// `.student_t(ν, σ)`, `.laplace(b)`, [`Constraint::log_density`]):
    /// added to the log-density as it is; its loss is `−ℓ`.
    LogDensity,
}

/// A residual and its reduction. The log-density is `−likelihood_scale ·
/// mean_c L_c + Σ_t ℓ_t + log prior` (DESIGN §6): the mean over the
/// residual constraints (`.mse()`, `.mae()`) scaled by `likelihood_scale`,
/// and the log-density terms `ℓ_t` as they are. The loss (optimised
/// models, progress) is `mean_c L_c − Σ_t ℓ_t`.
#[derive(Clone, Debug)]
pub struct Constraint {
    residual: Expr,
    reduction: Reduction,
}

impl Constraint {
    pub(crate) fn new(residual: Expr, reduction: Reduction) -> Constraint {
        Constraint {
            residual,
            reduction,
        }
    }

    /// The residual expression.
    pub fn residual(&self) -> &Expr {
        &self.residual
    }

    /// The reduction.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// The scalar loss `L_c` as an expression (`−ℓ` for a log-density
    /// term).
    pub fn value(&self) -> Expr {
        match self.reduction {
            Reduction::MeanSquare => self.residual.square().mean(),
            Reduction::MeanAbs => self.residual.abs().mean(),
            Reduction::LogDensity => -self.residual.sum(),
        }
    }

    /// Whether this is a log-density term (not averaged, not scaled).
    pub fn is_log_density(&self) -> bool {
        self.reduction == Reduction::LogDensity
    }
}
