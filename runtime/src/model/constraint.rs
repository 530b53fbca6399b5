//! Constraints: residuals reduced to one scalar loss each.

use crate::model::expr::Expr;

/// How a residual is reduced to its scalar loss `L_c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Mean of squares over every element (`.mse()`).
    MeanSquare,
    /// Mean of absolute values over every element (`.mae()`).
    MeanAbs,
}

/// A residual and its reduction. The problem's loss is the mean of its
/// constraints' values, and the log-density is `−likelihood_scale · loss +
/// log prior` (DESIGN §6).
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

    /// The scalar loss `L_c` as an expression.
    pub fn value(&self) -> Expr {
        match self.reduction {
            Reduction::MeanSquare => self.residual.square().mean(),
            Reduction::MeanAbs => self.residual.abs().mean(),
        }
    }
}
