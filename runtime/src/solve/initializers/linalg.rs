//! The small dense linear algebra of the initializers (matrices of the
//! L-BFGS history's size, or `d × 2J` panels): row-major, no pivoting
//! beyond what each routine states.

/// A row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mat {
    pub rows: usize,
    pub cols: usize,
    data: Vec<f64>,
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    #[cfg(test)]
    pub fn from_rows<const N: usize>(rows: &[[f64; N]]) -> Mat {
        Mat {
            rows: rows.len(),
            cols: N,
            data: rows.iter().flatten().copied().collect(),
        }
    }
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }
    pub fn at_mut(&mut self, r: usize, c: usize) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }
    pub fn transpose(&self) -> Mat {
        let mut t = Mat::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                *t.at_mut(c, r) = self.at(r, c);
            }
        }
        t
    }
    pub fn mul(&self, o: &Mat) -> Mat {
        debug_assert_eq!(self.cols, o.rows);
        let mut p = Mat::zeros(self.rows, o.cols);
        for r in 0..self.rows {
            for k in 0..self.cols {
                let a = self.at(r, k);
                for c in 0..o.cols {
                    *p.at_mut(r, c) += a * o.at(k, c);
                }
            }
        }
        p
    }
    pub fn scaled(mut self, s: f64) -> Mat {
        self.data.iter_mut().for_each(|v| *v *= s);
        self
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The lower Cholesky factor of a symmetric positive-definite `a`, or
/// `None` when a pivot is not positive.
pub(crate) fn cholesky(a: &Mat) -> Option<Mat> {
    let n = a.rows;
    let mut l = Mat::zeros(n, n);
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l.at(i, k) * l.at(j, k)).sum();
            if i == j {
                let p = a.at(i, i) - s;
                if p.is_nan() || p <= 0.0 {
                    return None;
                }
                *l.at_mut(i, i) = p.sqrt();
            } else {
                *l.at_mut(i, j) = (a.at(i, j) - s) / l.at(j, j);
            }
        }
    }
    Some(l)
}

/// The inverse of an upper-triangular `r` (back substitution), or `None`
/// on a zero pivot.
pub(crate) fn upper_inverse(r: &Mat) -> Option<Mat> {
    let n = r.rows;
    let mut x = Mat::zeros(n, n);
    for c in 0..n {
        for i in (0..=c).rev() {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let s: f64 = (i + 1..=c).map(|k| r.at(i, k) * x.at(k, c)).sum();
            let p = r.at(i, i);
            if p == 0.0 || !p.is_finite() {
                return None;
            }
            *x.at_mut(i, c) = (rhs - s) / p;
        }
    }
    Some(x)
}

/// Thin QR of a `d × m` panel by modified Gram–Schmidt: `Q` (`d × m`,
/// orthonormal columns; a column in the span of the earlier ones is zero,
/// with a zero diagonal in `R`) and upper-triangular `R` (`m × m`).
pub(crate) fn qr(b: &Mat) -> (Mat, Mat) {
    let (d, m) = (b.rows, b.cols);
    let mut q = b.clone();
    let mut r = Mat::zeros(m, m);
    for j in 0..m {
        let norm0 = (0..d).map(|i| b.at(i, j).powi(2)).sum::<f64>().sqrt();
        for k in 0..j {
            let p: f64 = (0..d).map(|i| q.at(i, k) * q.at(i, j)).sum();
            *r.at_mut(k, j) = p;
            for i in 0..d {
                let qk = q.at(i, k);
                *q.at_mut(i, j) -= p * qk;
            }
        }
        let n = (0..d).map(|i| q.at(i, j).powi(2)).sum::<f64>().sqrt();
        if n > 1e-12 * norm0.max(f64::MIN_POSITIVE) {
            *r.at_mut(j, j) = n;
            (0..d).for_each(|i| *q.at_mut(i, j) /= n);
        } else {
            (0..d).for_each(|i| *q.at_mut(i, j) = 0.0);
        }
    }
    (q, r)
}

/// The inverse of a symmetric positive-definite `a` (through its Cholesky
/// factor), or `None` when it is not positive definite.
pub(crate) fn inverse(a: &Mat) -> Option<Mat> {
    let l = cholesky(a)?;
    let li = upper_inverse(&l.transpose())?;
    Some(li.mul(&li.transpose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Mat, b: &Mat) {
        for r in 0..a.rows {
            for c in 0..a.cols {
                assert!((a.at(r, c) - b.at(r, c)).abs() < 1e-12, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn factorisations_reproduce_their_matrix() {
        let a = Mat::from_rows(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]]);
        let l = cholesky(&a).unwrap();
        close(&l.mul(&l.transpose()), &a);
        let mut eye = Mat::zeros(3, 3);
        (0..3).for_each(|i| *eye.at_mut(i, i) = 1.0);
        close(&inverse(&a).unwrap().mul(&a), &eye);
        let (q, r) = qr(&a);
        close(&q.mul(&r), &a);
        close(&q.transpose().mul(&q), &eye);
        assert!(cholesky(&a.clone().scaled(-1.0)).is_none());
        // A dependent column: zero in Q, QR still reproduces the panel.
        let b = Mat::from_rows(&[[1.0, 2.0], [2.0, 4.0], [0.0, 0.0]]);
        let (q, r) = qr(&b);
        close(&q.mul(&r), &b);
        assert_eq!(r.at(1, 1), 0.0);
    }
}
