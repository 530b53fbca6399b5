//! Element types, shapes and typed indices of the graph IR.

use std::fmt;

/// Element type of a graph node.
///
/// `Bool` is produced only by comparisons and consumed only by `select`;
/// the interpreter stores it as `0.0` / `1.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32 (computed in f64 and rounded after every operation,
    /// which is exact for +, -, *, / and sqrt).
    F32,
    /// Result of a comparison.
    Bool,
}

impl DType {
    /// Whether this is a floating-point type (differentiable).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32)
    }

    /// Name used by the text format.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::Bool => "bool",
        }
    }

    /// Parses the text-format name.
    pub fn from_name(s: &str) -> Option<DType> {
        match s {
            "f64" => Some(DType::F64),
            "f32" => Some(DType::F32),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }

    /// Rounds an f64 value to this type (identity for f64).
    pub fn round(self, v: f64) -> f64 {
        match self {
            DType::F64 => v,
            DType::F32 => v as f32 as f64,
            DType::Bool => {
                if v != 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A static tensor shape (row-major). The empty shape is a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// The scalar shape `[]`.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Builds a shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    ///
    /// Saturates at `usize::MAX` instead of overflowing: no real tensor has
    /// that many elements, and every allocation path checks with
    /// [`Shape::checked_numel`] first, so a saturated count is rejected
    /// rather than a panic.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of elements, `None` if it overflows `usize` (shapes read from
    /// text or user input are checked with this before anything is allocated).
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    /// Numpy-style broadcast of two shapes (right-aligned; a dimension of 1
    /// stretches). `None` if they are incompatible.
    pub fn broadcast_with(&self, other: &Shape) -> Option<Shape> {
        let r = self.rank().max(other.rank());
        let mut out = vec![0; r];
        for (i, o) in out.iter_mut().enumerate() {
            let a = dim_from_right(self, r - 1 - i);
            let b = dim_from_right(other, r - 1 - i);
            *o = match (a, b) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return None,
            };
        }
        Some(Shape(out))
    }

    /// Whether `self` broadcasts to `target` (numpy rules, right-aligned).
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        self.rank() <= target.rank()
            && self
                .0
                .iter()
                .rev()
                .zip(target.0.iter().rev())
                .all(|(&a, &b)| a == b || a == 1)
    }
}

fn dim_from_right(s: &Shape, k: usize) -> usize {
    if k < s.rank() {
        s.0[s.rank() - 1 - k]
    } else {
        1
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape(d.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape(d.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape(d)
    }
}

typed_index!(
    /// Index of a node in its graph's arena. Arguments always have smaller
    /// ids than their users, so the arena order is a topological order.
    NodeId,
    "%"
);
typed_index!(
    /// Index of a runtime parameter slot (a tensor fed in at every call).
    ParamId,
    "p"
);
typed_index!(
    /// Index of a data tensor stored with the graph (points, observations,
    /// staged constants).
    DataId,
    "d"
);
