//! Construction of expression nodes with eager shape checks, and operator
//! overloading (`+ - * /` and unary `-`) between expressions, parameters and
//! `f64`, by value and by reference.

use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::Arc;

use crux_ir::graph::{BinaryOp, DType, Shape, Tensor, UnaryOp};

use super::{merge_domains, Expr, Kind};
use crate::error::Error;
use crate::model::noise::Noise;
use crate::model::param::Param;

/// Anything usable as an operand: expressions, parameters, `f64` constants.
pub trait IntoExpr {
    /// Converts to an expression.
    fn into_expr(self) -> Expr;
}

impl IntoExpr for Expr {
    fn into_expr(self) -> Expr {
        self
    }
}
impl IntoExpr for &Expr {
    fn into_expr(self) -> Expr {
        self.clone()
    }
}
impl IntoExpr for Param {
    fn into_expr(self) -> Expr {
        self.expr()
    }
}
impl IntoExpr for &Param {
    fn into_expr(self) -> Expr {
        self.expr()
    }
}
impl IntoExpr for f64 {
    fn into_expr(self) -> Expr {
        Expr::scalar(self)
    }
}

impl Expr {
    /// A scalar constant (broadcasts against anything). A NaN or infinite
    /// value gives an invalid expression.
    pub fn scalar(v: f64) -> Expr {
        if !v.is_finite() {
            return Expr::invalid(Error::NonFinite {
                what: "a constant in an expression".into(),
                value: v,
            });
        }
        Expr::make(
            Kind::Constant(Arc::new(Tensor::scalar(v))),
            Shape::scalar(),
            None,
        )
    }

    /// A constant tensor from an `ndarray` array (any dimension). NaN or
    /// infinite entries give an invalid expression.
    pub fn array<S, D>(a: &ndarray::ArrayBase<S, D>) -> Expr
    where
        S: ndarray::Data<Elem = f64>,
        D: ndarray::Dimension,
    {
        let data: Vec<f64> = a.iter().copied().collect();
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Expr::invalid(Error::NonFinite {
                what: "every entry of a constant array".into(),
                value: *bad,
            });
        }
        let shape = Shape(a.shape().to_vec());
        match Tensor::new(DType::F64, shape.clone(), data) {
            Ok(t) => Expr::make(Kind::Constant(Arc::new(t)), shape, None),
            Err(e) => Expr::invalid(Error::InvalidArgument {
                what: "constant array".into(),
                reason: e.to_string(),
            }),
        }
    }

    pub(crate) fn unary(op: UnaryOp, a: Expr) -> Expr {
        if a.error().is_some() {
            return a;
        }
        let (shape, dom) = (a.0.shape.clone(), a.0.domain);
        Expr::make(Kind::Unary(op, a), shape, dom)
    }

    pub(crate) fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
        if a.error().is_some() {
            return a;
        }
        if b.error().is_some() {
            return b;
        }
        let describe = |a: &Expr, b: &Expr| {
            let sym = match op {
                BinaryOp::Add => "+",
                BinaryOp::Sub => "-",
                BinaryOp::Mul => "*",
                BinaryOp::Div => "/",
                BinaryOp::Pow => "^",
                BinaryOp::Max => "max",
                BinaryOp::Min => "min",
            };
            format!("{a} {sym} {b}")
        };
        let Ok(dom) = merge_domains(a.0.domain, b.0.domain) else {
            return Expr::invalid(Error::MixedDomains {
                expr: describe(&a, &b),
            });
        };
        let Some(shape) = a.0.shape.broadcast_with(&b.0.shape) else {
            return Expr::invalid(Error::ShapeMismatch {
                expr: describe(&a, &b),
                lhs: a.0.shape.to_string(),
                rhs: b.0.shape.to_string(),
            });
        };
        Expr::make(Kind::Binary(op, a, b), shape, dom)
    }

    /// `self + noise`, the noise shaped like `self`.
    fn with_noise(self, n: Noise, negate: bool) -> Expr {
        if self.error().is_some() {
            return self;
        }
        let term = match n.into_expr_like(&self) {
            Ok(t) => t,
            Err(e) => return Expr::invalid(e),
        };
        if negate {
            Expr::binary(BinaryOp::Sub, self, term)
        } else {
            Expr::binary(BinaryOp::Add, self, term)
        }
    }
}

macro_rules! binop_for {
    ($lhs:ty, $trait:ident, $method:ident, $op:expr) => {
        impl<R: IntoExpr> $trait<R> for $lhs {
            type Output = Expr;
            fn $method(self, rhs: R) -> Expr {
                Expr::binary($op, self.into_expr(), rhs.into_expr())
            }
        }
    };
}

macro_rules! f64_lhs {
    ($rhs:ty, $trait:ident, $method:ident, $op:expr) => {
        impl $trait<$rhs> for f64 {
            type Output = Expr;
            fn $method(self, rhs: $rhs) -> Expr {
                Expr::binary($op, Expr::scalar(self), rhs.into_expr())
            }
        }
    };
}

macro_rules! all_binops {
    ($($t:ty),*) => {
        $(
            binop_for!($t, Add, add, BinaryOp::Add);
            binop_for!($t, Sub, sub, BinaryOp::Sub);
            binop_for!($t, Mul, mul, BinaryOp::Mul);
            binop_for!($t, Div, div, BinaryOp::Div);
            f64_lhs!($t, Add, add, BinaryOp::Add);
            f64_lhs!($t, Sub, sub, BinaryOp::Sub);
            f64_lhs!($t, Mul, mul, BinaryOp::Mul);
            f64_lhs!($t, Div, div, BinaryOp::Div);
            impl Neg for $t {
                type Output = Expr;
                fn neg(self) -> Expr {
                    Expr::unary(UnaryOp::Neg, self.into_expr())
                }
            }
        )*
    };
}

all_binops!(Expr, &Expr, Param, &Param);

macro_rules! noise_ops {
    ($($t:ty),*) => {
        $(
            impl Add<Noise> for $t {
                type Output = Expr;
                /// Adds a noise term shaped like the expression, drawn once per problem.
                fn add(self, n: Noise) -> Expr {
                    self.into_expr().with_noise(n, false)
                }
            }
            impl Sub<Noise> for $t {
                type Output = Expr;
                /// Subtracts a noise term shaped like the expression, drawn once per problem.
                fn sub(self, n: Noise) -> Expr {
                    self.into_expr().with_noise(n, true)
                }
            }
        )*
    };
}

noise_ops!(Expr, &Expr);
