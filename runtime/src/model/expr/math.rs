//! Methods of [`Expr`]: elementwise math, reductions, linear algebra,
//! indexing, field derivatives and constraints.

use crux_ir::graph::{BinaryOp, Shape, UnaryOp};

use super::{Expr, IntoExpr, Kind};
use crate::error::Error;
use crate::model::constraint::Constraint;

/// `∂ᵒʳᵈᵉʳ u / ∂xᵒʳᵈᵉʳ`, pointwise: the derivative of a field with respect
/// to one coordinate variable (see [`Expr::diff`]).
pub fn diff(u: &Expr, x: &Expr, order: u32) -> Expr {
    u.diff(x, order)
}

macro_rules! unary_methods {
    ($($(#[$m:meta])* $name:ident => $op:expr;)*) => {
        $(
            $(#[$m])*
            pub fn $name(&self) -> Expr {
                Expr::unary($op, self.clone())
            }
        )*
    };
}

impl Expr {
    fn invalid_op(&self, op: &'static str, reason: impl Into<String>) -> Expr {
        Expr::invalid(Error::InvalidOperation {
            op,
            expr: self.to_string(),
            reason: reason.into(),
        })
    }

    unary_methods! {
        /// Sine.
        sin => UnaryOp::Sin;
        /// Cosine.
        cos => UnaryOp::Cos;
        /// Tangent.
        tan => UnaryOp::Tan;
        /// `eˣ`.
        exp => UnaryOp::Exp;
        /// Natural logarithm.
        ln => UnaryOp::Log;
        /// Natural logarithm (alias of [`Expr::ln`], the numpy name).
        log => UnaryOp::Log;
        /// `ln(1 + x)`, accurate near zero.
        log1p => UnaryOp::Log1p;
        /// `eˣ − 1`, accurate near zero.
        expm1 => UnaryOp::Expm1;
        /// Hyperbolic tangent.
        tanh => UnaryOp::Tanh;
        /// Square root.
        sqrt => UnaryOp::Sqrt;
        /// Absolute value.
        abs => UnaryOp::Abs;
        /// Sign in {−1, 0, 1}.
        signum => UnaryOp::Sign;
        /// `1 / x`.
        recip => UnaryOp::Recip;
        /// Logistic sigmoid `1 / (1 + e⁻ˣ)`.
        sigmoid => UnaryOp::Sigmoid;
        /// `ln(1 + eˣ)`.
        softplus => UnaryOp::Softplus;
    }

    /// `x²` as a product (no transcendental).
    pub fn square(&self) -> Expr {
        Expr::binary(BinaryOp::Mul, self.clone(), self.clone())
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Expr {
        Expr::binary(BinaryOp::Max, self.clone(), Expr::scalar(0.0))
    }

    /// Elementwise maximum (numpy broadcasting).
    pub fn max(&self, other: impl IntoExpr) -> Expr {
        Expr::binary(BinaryOp::Max, self.clone(), other.into_expr())
    }

    /// Elementwise minimum (numpy broadcasting).
    pub fn min(&self, other: impl IntoExpr) -> Expr {
        Expr::binary(BinaryOp::Min, self.clone(), other.into_expr())
    }

    /// Integer power by repeated multiplication (exact, no transcendental);
    /// negative powers take the reciprocal.
    pub fn powi(&self, n: i32) -> Expr {
        if n == 0 {
            // x⁰ = 1 for every x (NaN and ±inf included), shaped like x.
            return self.powf(0.0);
        }
        let mut result: Option<Expr> = None;
        let mut base = self.clone();
        let mut k = n.unsigned_abs();
        while k > 0 {
            if k & 1 == 1 {
                result = Some(match result {
                    None => base.clone(),
                    Some(r) => Expr::binary(BinaryOp::Mul, r, base.clone()),
                });
            }
            k >>= 1;
            if k > 0 {
                base = base.square();
            }
        }
        let r = result.expect("the loop above ran at least once: n != 0 was checked on entry");
        if n < 0 {
            r.recip()
        } else {
            r
        }
    }

    /// `xᵖ` for a real exponent.
    pub fn powf(&self, p: f64) -> Expr {
        Expr::binary(BinaryOp::Pow, self.clone(), Expr::scalar(p))
    }

    /// `xʸ` elementwise (numpy broadcasting).
    pub fn pow(&self, y: impl IntoExpr) -> Expr {
        Expr::binary(BinaryOp::Pow, self.clone(), y.into_expr())
    }

    fn axes_checked(&self, op: &'static str, axes: &[usize]) -> Result<Vec<u8>, Expr> {
        let r = self.shape().len();
        let mut out: Vec<u8> = Vec::with_capacity(axes.len());
        for &a in axes {
            if a >= r {
                return Err(self.invalid_op(
                    op,
                    format!("axis {a} is out of range for an expression of rank {r}"),
                ));
            }
            out.push(a as u8);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Sum over the given axes (removed from the shape).
    pub fn sum_axes(&self, axes: &[usize]) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        let axes = match self.axes_checked("sum", axes) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if axes.is_empty() {
            return self.clone();
        }
        let sh = &self.0.shape;
        let out = Shape(
            (0..sh.rank())
                .filter(|i| !axes.contains(&(*i as u8)))
                .map(|i| sh.0[i])
                .collect(),
        );
        Expr::make(
            Kind::Sum {
                arg: self.clone(),
                axes,
            },
            out,
            self.0.domain,
        )
    }

    /// Sum of every element (a scalar).
    pub fn sum(&self) -> Expr {
        let all: Vec<usize> = (0..self.shape().len()).collect();
        self.sum_axes(&all)
    }

    /// Mean over the given axes.
    pub fn mean_axes(&self, axes: &[usize]) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        let axes = match self.axes_checked("mean", axes) {
            Ok(a) => a,
            Err(e) => return e,
        };
        // Divide by the size of each distinct axis once (`[0, 0]` is axis 0).
        let n: usize = axes.iter().map(|&a| self.shape()[a as usize]).product();
        if n == 0 {
            return self.invalid_op("mean", "the mean over an empty axis is undefined");
        }
        let axes: Vec<usize> = axes.iter().map(|&a| a as usize).collect();
        self.sum_axes(&axes) * (1.0 / n as f64)
    }

    /// Mean of every element (a scalar).
    pub fn mean(&self) -> Expr {
        let all: Vec<usize> = (0..self.shape().len()).collect();
        self.mean_axes(&all)
    }

    /// Matrix product of two rank-2 expressions.
    pub fn matmul(&self, other: &Expr) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        if other.error().is_some() {
            return other.clone();
        }
        let (a, b) = (self.shape(), other.shape());
        if a.len() != 2 || b.len() != 2 || a[1] != b[0] {
            return Expr::invalid(Error::InvalidOperation {
                op: "matmul",
                expr: format!("matmul({self}, {other})"),
                reason: format!("needs (m, k) x (k, n) matrices, got {:?} x {:?}", a, b),
            });
        }
        let Ok(dom) = super::merge_domains(self.0.domain, other.0.domain) else {
            return Expr::invalid(Error::MixedDomains {
                expr: format!("matmul({self}, {other})"),
            });
        };
        Expr::make(
            Kind::MatMul(self.clone(), other.clone()),
            Shape(vec![a[0], b[1]]),
            dom,
        )
    }

    /// Transpose of a rank-2 expression.
    pub fn t(&self) -> Expr {
        if self.shape().len() != 2 && self.error().is_none() {
            return self.invalid_op(
                "t",
                format!(
                    "transposes rank-2 expressions, this one has shape {:?}",
                    self.shape()
                ),
            );
        }
        self.permute(&[1, 0])
    }

    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        let r = self.shape().len();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return self.invalid_op(
                "permute",
                format!("{perm:?} is not a permutation of the {r} axes"),
            );
        }
        let out = Shape(perm.iter().map(|&p| self.shape()[p]).collect());
        Expr::make(
            Kind::Transpose(self.clone(), perm.iter().map(|&p| p as u8).collect()),
            out,
            self.0.domain,
        )
    }

    /// Row-major reshape to `shape` (same number of elements).
    pub fn reshape(&self, shape: &[usize]) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        let new = Shape(shape.to_vec());
        if new.checked_numel() != Some(self.0.shape.numel()) {
            return self.invalid_op(
                "reshape",
                format!(
                    "cannot reshape {} elements to {:?}",
                    self.0.shape.numel(),
                    shape
                ),
            );
        }
        if new == self.0.shape {
            return self.clone();
        }
        Expr::make(Kind::Reshape(self.clone()), new, self.0.domain)
    }

    /// Elements `start, start + step, ...` below `end` along `axis`.
    pub fn slice(&self, axis: usize, range: std::ops::Range<usize>, step: usize) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        let Some(&n) = self.shape().get(axis) else {
            return self.invalid_op(
                "slice",
                format!("axis {axis} is out of range for shape {:?}", self.shape()),
            );
        };
        if step == 0 || range.start >= range.end || range.end > n {
            return self.invalid_op(
                "slice",
                format!(
                    "range {}..{} step {step} is empty or outside 0..{n}",
                    range.start, range.end
                ),
            );
        }
        let len = (range.end - range.start).div_ceil(step);
        let mut out = self.0.shape.clone();
        out.0[axis] = len;
        Expr::make(
            Kind::Slice {
                arg: self.clone(),
                axis: axis as u8,
                start: range.start,
                step,
            },
            out,
            self.0.domain,
        )
    }

    /// Element `i` along the first axis, which is removed (`p.at(0)` of a
    /// `(1,)` parameter is a scalar).
    pub fn at(&self, i: usize) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        if self.shape().is_empty() {
            return self.invalid_op("at", "cannot index a scalar");
        }
        let rest: Vec<usize> = self.shape()[1..].to_vec();
        let n = self.shape()[0];
        if i >= n {
            return self.invalid_op("at", format!("index {i} is out of range for length {n}"));
        }
        self.slice(0, i..i + 1, 1).reshape(&rest)
    }

    /// Concatenation along `axis`.
    pub fn concat(parts: &[&Expr], axis: usize) -> Expr {
        let Some(first) = parts.first() else {
            return Expr::invalid(Error::InvalidArgument {
                what: "concat".into(),
                reason: "needs at least one expression".into(),
            });
        };
        if let Some(bad) = parts.iter().find(|p| p.error().is_some()) {
            return (*bad).clone();
        }
        let r = first.shape().len();
        if axis >= r {
            return Expr::invalid(Error::InvalidOperation {
                op: "concat",
                expr: format!("concat of {} expressions", parts.len()),
                reason: format!("axis {axis} is out of range for expressions of rank {r}"),
            });
        }
        let describe = || {
            format!(
                "concat([{}])",
                parts
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if axis >= r
            || parts.iter().any(|p| {
                p.shape().len() != r
                    || (0..r).any(|i| i != axis && p.shape()[i] != first.shape()[i])
            })
        {
            return Expr::invalid(Error::InvalidOperation {
                op: "concat",
                expr: describe(),
                reason: format!(
                    "shapes {:?} do not agree off axis {axis}",
                    parts.iter().map(|p| p.shape().to_vec()).collect::<Vec<_>>()
                ),
            });
        }
        let mut dom = None;
        for p in parts {
            match super::merge_domains(dom, p.0.domain) {
                Ok(d) => dom = d,
                Err(()) => return Expr::invalid(Error::MixedDomains { expr: describe() }),
            }
        }
        if parts.len() == 1 {
            return (*first).clone();
        }
        let mut out = first.0.shape.clone();
        out.0[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        Expr::make(
            Kind::Concat(parts.iter().map(|p| (*p).clone()).collect(), axis as u8),
            out,
            dom,
        )
    }

    /// Pointwise `∂ᵒʳᵈᵉʳ self / ∂xᵒʳᵈᵉʳ` for a coordinate variable `x` (from
    /// [`crate::Domain::variable`]). Each point is independent; mixed
    /// partials come from chaining (`u.d(&x).d(&y)`).
    pub fn diff(&self, x: &Expr, order: u32) -> Expr {
        if self.error().is_some() {
            return self.clone();
        }
        if x.error().is_some() {
            return x.clone();
        }
        if !matches!(x.kind(), Kind::Coord { .. }) {
            return Expr::invalid(Error::InvalidOperation {
                op: "diff",
                expr: format!("diff({self}, {x}, {order})"),
                reason: "derivatives are taken with respect to a coordinate variable from `Domain::variable`, not an arbitrary expression".into(),
            });
        }
        let Ok(dom) = super::merge_domains(self.0.domain, x.0.domain) else {
            return Expr::invalid(Error::MixedDomains {
                expr: format!("diff({self}, {x}, {order})"),
            });
        };
        if order == 0 {
            return self.clone();
        }
        Expr::make(
            Kind::Derivative {
                of: self.clone(),
                wrt: x.clone(),
                order,
            },
            self.0.shape.clone(),
            dom,
        )
    }

    /// First derivative with respect to coordinate `x`.
    pub fn d(&self, x: &Expr) -> Expr {
        self.diff(x, 1)
    }

    /// Second derivative with respect to coordinate `x`.
    pub fn dd(&self, x: &Expr) -> Expr {
        self.diff(x, 2)
    }

    /// Mean squared value over every element: the usual residual constraint.
    pub fn mse(&self) -> Constraint {
        Constraint::new(
            self.clone(),
            crate::model::constraint::Reduction::MeanSquare,
        )
    }

    /// Mean absolute value over every element.
    pub fn mae(&self) -> Constraint {
        Constraint::new(self.clone(), crate::model::constraint::Reduction::MeanAbs)
    }
}
