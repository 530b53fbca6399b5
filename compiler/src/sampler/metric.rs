//! The metric of the HMC family: the inverse mass matrix `Σ = M⁻¹`, which
//! sets the kinetic energy `½ pᵀ Σ p`, the velocity `Σ p` and the momentum
//! distribution `p ~ N(0, M)`.
//!
//! * [`Metric::Diagonal`]: `Σ = diag(s)` (`d` state entries), adapted from
//!   the position's variance. The default.
//! * [`Metric::Dense`]: a full symmetric `Σ` (`d²` state entries, row-major)
//!   and `X = L⁻¹` for its Cholesky factor `Σ = L Lᵀ` (`d²` entries,
//!   row-major lower triangle), adapted from the position's covariance:
//!   at a slow window's end (Stan's regularisation)
//!   `Σ = n/(n+5) · cov + 10⁻³ · 5/(n+5) · I`, then `L` and `X`. Momenta are
//!   `p = Xᵀ z` (`Cov(p) = L⁻ᵀ L⁻¹ = Σ⁻¹`), the velocity is a matrix–vector
//!   product (the IR's `gemm`, reading `Σ` and `X` with unit stride), and
//!   the U-turn criterion uses `(Σ p_±)·ρ = p_± · (Σ ρ)` (`Σ` symmetric).
//!   A window whose covariance is not numerically positive definite keeps
//!   the previous metric.
//!
//! * [`Metric::LowRank`]: `Σ = S (I + U (Λ − I) Uᵀ) S`, `S = diag(√D)`,
//!   `U` `k` orthonormal directions with eigenvalues `Λ` (state: `D` (`d`),
//!   `Λ` (`k`), `U` (`k × d`, row-major)). Adapted at a slow window's end
//!   from the window's draws and gradients (nutpie's scheme, simplified):
//!   `D = √(var x / var ∇log p)` (the Fisher-divergence-optimal diagonal,
//!   regularised as Stan's), then the top `k` eigenpairs of the covariance
//!   of the draws scaled by `S⁻¹` by subspace iteration (25 rounds from
//!   disjoint indicator vectors, Gram–Schmidt each round), eigenvalues
//!   shrunk as `n/(n+5) λ + 5/(n+5)`. nutpie also folds the gradients'
//!   covariance into the low-rank part and keeps small eigenvalues; this
//!   keeps the largest `k` of the draws' only. `Σ p`, the momenta
//!   `p = S⁻¹ (z + U (Λ^{-1/2} − I) Uᵀ z)` and the kinetic energy cost
//!   `O(d k)`.
//!
//! The diagonal formulas are unchanged from the diagonal-only kernels, so
//! diagonal draws are bit-identical to theirs.

use crux_ir::kernel::{BinOp, Builder, CmpOp, MatRef, Value};

use super::ctx::{Rng, Vector};

/// The form of the inverse mass matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `diag(s)`: `d` entries.
    #[default]
    Diagonal,
    /// A full symmetric matrix: `d²` entries, plus its inverse Cholesky
    /// factor (`d²`).
    Dense,
    /// A diagonal plus `rank` directions: `d + rank + rank · d` entries.
    LowRank {
        /// Directions kept (at least 1, at most `d`).
        rank: usize,
    },
}

impl Metric {
    /// State entries of the inverse mass matrix for dimension `d`.
    pub fn inverse_mass_len(self, d: usize) -> usize {
        match self {
            Metric::Diagonal => d,
            Metric::Dense => d * d,
            Metric::LowRank { rank } => d + rank + rank * d,
        }
    }

    /// State entries of the inverse Cholesky factor (0 for diagonal).
    pub fn factor_len(self, d: usize) -> usize {
        match self {
            Metric::Diagonal | Metric::LowRank { .. } => 0,
            Metric::Dense => d * d,
        }
    }

    /// State entries of the adaptation's second moments (low rank: the
    /// draws' and the gradients' variances, `2d`).
    pub fn moments_len(self, d: usize) -> usize {
        match self {
            Metric::Diagonal | Metric::Dense => self.inverse_mass_len(d),
            Metric::LowRank { .. } => 2 * d,
        }
    }

    /// Directions of a low-rank metric (0 otherwise).
    pub fn rank(self) -> usize {
        match self {
            Metric::LowRank { rank } => rank,
            Metric::Diagonal | Metric::Dense => 0,
        }
    }

    /// Name (for messages and reports).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Diagonal => "diagonal",
            Metric::Dense => "dense",
            Metric::LowRank { .. } => "low_rank",
        }
    }
}

/// One model's metric in the chain state.
#[derive(Clone, Copy, Debug)]
pub struct MetricEnv {
    /// Its form.
    pub kind: Metric,
    /// `Σ` ([`Metric::inverse_mass_len`] entries).
    pub inverse_mass: Vector,
    /// `X = L⁻¹` (dense; empty for diagonal).
    pub factor: Vector,
    /// A temporary of `d` entries (contents undefined between calls).
    pub tmp: Vector,
    /// A second one.
    pub tmp2: Vector,
    /// Low rank: a temporary of `rank` entries (empty otherwise).
    pub small: Vector,
}

impl MetricEnv {
    fn d(&self) -> usize {
        self.tmp.len
    }

    /// Low rank: `(D, Λ, U)` in the state.
    fn low_rank(&self) -> (Vector, Vector, Vector) {
        let (d, k) = (self.d(), self.kind.rank());
        let m = self.inverse_mass;
        let at = |off: usize, len: usize| Vector {
            off: m.off + off,
            len,
            ..m
        };
        (at(0, d), at(d, k), at(d + k, k * d))
    }

    /// Low rank: `v ← v + U (f(λ) ⊙ (U v))` for each `λ` of `Λ`, with `f`
    /// emitted per direction (`small` holds `U v`).
    fn low_rank_update(
        &self,
        b: &mut Builder,
        v: Vector,
        f: impl Fn(&mut Builder, Value) -> Value,
    ) {
        let (_, lambda, u) = self.low_rank();
        let (d, k) = (self.d(), self.kind.rank());
        let c = self.small;
        let dv = b.i64(d as i64);
        c.fill(b, |b, j| {
            let row = b.mul(j, dv);
            let s = v.sum(b, |b, i| {
                let at = b.add(row, i);
                let uji = u.load(b, at);
                let vi = v.load(b, i);
                b.mul(uji, vi)
            });
            let l = lambda.load(b, j);
            let w = f(b, l);
            b.mul(w, s)
        });
        v.fill(b, |b, i| {
            let kk = b.i64(k as i64);
            let zero = b.i64(0);
            let acc0 = v.load(b, i);
            b.for_(zero, kk, &[acc0], |b, j, acc| {
                let row = b.mul(j, dv);
                let at = b.add(row, i);
                let uji = u.load(b, at);
                let cj = c.load(b, j);
                let t = b.mul(uji, cj);
                vec![b.add(acc[0], t)]
            })[0]
        });
    }

    /// `Σ` as a `gemm` operand, read column-major (it is symmetric).
    fn sigma(&self) -> MatRef {
        let d = self.d() as u64;
        MatRef {
            buf: self.inverse_mass.buf,
            off: self.inverse_mass.off as u64,
            rs: 1,
            cs: d,
        }
    }

    /// `out = Σ x` (`out` distinct from `x`; dense: one `gemm`).
    pub fn apply(&self, b: &mut Builder, x: Vector, out: Vector) {
        match self.kind {
            Metric::Diagonal => {
                let imm = self.inverse_mass;
                out.fill(b, |b, i| {
                    let m = imm.load(b, i);
                    let xi = x.load(b, i);
                    b.mul(m, xi)
                });
            }
            Metric::Dense => {
                let d = self.d() as u64;
                b.gemm((d, 1, d), self.sigma(), column(x), column(out));
            }
            Metric::LowRank { .. } => {
                // out = S (t + U (Λ − 1)(Uᵀ t)), t = S x.
                let (diag, _, _) = self.low_rank();
                out.fill(b, |b, i| {
                    let m = diag.load(b, i);
                    let s = b.sqrt(m);
                    let xi = x.load(b, i);
                    b.mul(s, xi)
                });
                self.low_rank_update(b, out, |b, l| {
                    let one = b.f64(1.0);
                    b.sub(l, one)
                });
                out.fill(b, |b, i| {
                    let m = diag.load(b, i);
                    let s = b.sqrt(m);
                    let oi = out.load(b, i);
                    b.mul(s, oi)
                });
            }
        }
    }

    /// `pᵀ Σ p`, twice the kinetic energy (diagonal: `Σ_i s_i p_i²`).
    pub fn kinetic2(&self, b: &mut Builder, p: Vector) -> Value {
        match self.kind {
            Metric::Diagonal => super::ctx::kinetic2(b, self.inverse_mass, p),
            Metric::Dense | Metric::LowRank { .. } => {
                self.apply(b, p, self.tmp);
                let v = self.tmp;
                p.sum(b, |b, i| {
                    let x = p.load(b, i);
                    let y = v.load(b, i);
                    b.mul(x, y)
                })
            }
        }
    }

    /// `q ← q + eps · Σ p` (the leapfrog's position step).
    pub fn drift(&self, b: &mut Builder, q: Vector, p: Vector, eps: Value) {
        let v = match self.kind {
            Metric::Diagonal => {
                let imm = self.inverse_mass;
                q.fill(b, |b, i| {
                    let qi = q.load(b, i);
                    let pi = p.load(b, i);
                    let m = imm.load(b, i);
                    let v = b.mul(m, pi);
                    let t = b.mul(eps, v);
                    b.add(qi, t)
                });
                return;
            }
            Metric::Dense | Metric::LowRank { .. } => {
                self.apply(b, p, self.tmp);
                self.tmp
            }
        };
        q.fill(b, |b, i| {
            let qi = q.load(b, i);
            let vi = v.load(b, i);
            let t = b.mul(eps, vi);
            b.add(qi, t)
        });
    }

    /// `p ~ N(0, Σ⁻¹)` from normal draws `k0 + i` (diagonal: `z_i / √s_i`;
    /// dense: `p = Xᵀ z`).
    pub fn draw_momentum(&self, b: &mut Builder, rng: Rng, p: Vector, k0: usize) {
        let normal = |b: &mut Builder, i: Value| {
            let k0 = b.i64(k0 as i64);
            let k = b.add(k0, i);
            rng.normal(b, k)
        };
        match self.kind {
            Metric::Diagonal => {
                let imm = self.inverse_mass;
                p.fill(b, |b, i| {
                    let z = normal(b, i);
                    let m = imm.load(b, i);
                    let s = b.sqrt(m);
                    b.div(z, s)
                });
            }
            Metric::Dense => {
                let z = self.tmp;
                z.fill(b, normal);
                let d = self.d() as u64;
                // Xᵀ: X row-major read transposed, unit stride along rows.
                let xt = MatRef {
                    buf: self.factor.buf,
                    off: self.factor.off as u64,
                    rs: 1,
                    cs: d,
                };
                b.gemm((d, 1, d), xt, column(z), column(p));
            }
            Metric::LowRank { .. } => {
                // p = S⁻¹ (z + U (Λ^{-1/2} − 1)(Uᵀ z)).
                let (diag, _, _) = self.low_rank();
                p.fill(b, normal);
                self.low_rank_update(b, p, |b, l| {
                    let r = b.sqrt(l);
                    let one = b.f64(1.0);
                    let inv = b.div(one, r);
                    b.sub(inv, one)
                });
                p.fill(b, |b, i| {
                    let m = diag.load(b, i);
                    let s = b.sqrt(m);
                    let pi = p.load(b, i);
                    b.div(pi, s)
                });
            }
        }
    }

    /// blackjax's `is_turning`: with `ρ = Σp − (p_left + p_right)/2`,
    /// turning when `(Σ p_left)·ρ ≤ 0` or `(Σ p_right)·ρ ≤ 0`. `f(b, i)`
    /// gives `(p_left[i], p_right[i], Σp[i])`. Dense: `ρ` is formed in one
    /// temporary and `Σ ρ` in the other, then dotted with both momenta (`f` is
    /// called twice per entry).
    pub fn is_turning(
        &self,
        b: &mut Builder,
        f: impl Fn(&mut Builder, Value) -> (Value, Value, Value),
    ) -> Value {
        let out = self.tmp2;
        let (lo, hi) = (b.i64(0), b.i64(self.d() as i64));
        let zero = b.f64(0.0);
        let acc = match self.kind {
            Metric::Diagonal => {
                let imm = self.inverse_mass;
                b.for_(lo, hi, &[zero, zero], |b, i, c| {
                    let (l, r, s) = f(b, i);
                    let rho = rho(b, l, r, s);
                    let m = imm.load(b, i);
                    let vl = b.mul(m, l);
                    let vr = b.mul(m, r);
                    let tl = b.mul(vl, rho);
                    let tr = b.mul(vr, rho);
                    vec![b.add(c[0], tl), b.add(c[1], tr)]
                })
            }
            Metric::Dense | Metric::LowRank { .. } => {
                let t = self.tmp;
                t.fill(b, |b, i| {
                    let (l, r, s) = f(b, i);
                    rho(b, l, r, s)
                });
                self.apply(b, t, out);
                b.for_(lo, hi, &[zero, zero], |b, i, c| {
                    let (l, r, _) = f(b, i);
                    let w = out.load(b, i);
                    let tl = b.mul(l, w);
                    let tr = b.mul(r, w);
                    vec![b.add(c[0], tl), b.add(c[1], tr)]
                })
            }
        };
        let zero = b.f64(0.0);
        let at_l = b.cmp(CmpOp::Le, acc[0], zero);
        let at_r = b.cmp(CmpOp::Le, acc[1], zero);
        b.binary(BinOp::Or, at_l, at_r)
    }
}

/// `Σp − (p_left + p_right)/2`.
fn rho(b: &mut Builder, l: Value, r: Value, s: Value) -> Value {
    let lr = b.add(r, l);
    let half = b.f64(0.5);
    let h = b.mul(lr, half);
    b.sub(s, h)
}

/// A vector as a `d × 1` matrix.
fn column(v: Vector) -> MatRef {
    MatRef {
        buf: v.buf,
        off: v.off as u64,
        rs: 1,
        cs: 1,
    }
}

/// The adaptation's running moments: `n`, the mean and the second moments
/// (`d` for diagonal, the full `d × d` co-moment matrix for dense).
#[derive(Clone, Copy, Debug)]
pub struct Moments {
    /// Samples so far (one entry).
    pub n: Vector,
    /// Running mean (`d`).
    pub mean: Vector,
    /// Running (co-)moments ([`Metric::moments_len`]).
    pub m2: Vector,
    /// Low rank: the gradients' running mean (`d`; empty otherwise).
    pub gmean: Vector,
    /// Low rank: the window's draws, row `t` the `t`-th (`window × d`,
    /// the longest slow window; empty otherwise).
    pub draws: Vector,
}

impl Moments {
    /// Zeroes the moments.
    pub fn reset(&self, b: &mut Builder) {
        let zero = b.f64(0.0);
        self.n.set(b, zero);
        self.mean.fill(b, |b, _| b.f64(0.0));
        self.m2.fill(b, |b, _| b.f64(0.0));
        self.gmean.fill(b, |b, _| b.f64(0.0));
    }

    /// Welford's update with the position `x`: `δ = x − mean_old`,
    /// `mean += δ/n`, `m2[i, j] += δ_i (x_j − mean_new_j)` (diagonal: `i = j`
    /// only). The dense co-moments are not exactly symmetric in floating
    /// point; [`Moments::window_end`] reads the lower triangle.
    pub fn update(
        &self,
        b: &mut Builder,
        kind: Metric,
        (x, grad): (Vector, Vector),
        delta: Vector,
    ) {
        let n = self.n.get(b);
        let one = b.f64(1.0);
        let n = b.add(n, one);
        self.n.set(b, n);
        let (mean, m2) = (self.mean, self.m2);
        let d = x.len;
        let (lo, hi) = (b.i64(0), b.i64(d as i64));
        let welford = |b: &mut Builder, x: Vector, mean: Vector, m2: Vector| {
            let (lo, hi) = (b.i64(0), b.i64(x.len as i64));
            b.for_(lo, hi, &[], |b, i, _| {
                let xi = x.load(b, i);
                let m = mean.load(b, i);
                let dl = b.sub(xi, m);
                let q = b.div(dl, n);
                let m = b.add(m, q);
                mean.store(b, i, m);
                let d2 = b.sub(xi, m);
                let t = b.mul(dl, d2);
                let v = m2.load(b, i);
                let v = b.add(v, t);
                m2.store(b, i, v);
                vec![]
            });
        };
        match kind {
            Metric::LowRank { .. } => {
                let half = |off: usize| Vector {
                    off: m2.off + off,
                    len: d,
                    ..m2
                };
                welford(b, x, mean, half(0));
                welford(b, grad, self.gmean, half(d));
                // Row n − 1 of the window's draws.
                let one = b.f64(1.0);
                let row = b.sub(n, one);
                let row = b.conv(crux_ir::kernel::Conv::F64ToI64, row);
                let dv = b.i64(d as i64);
                let base = b.mul(row, dv);
                let draws = self.draws;
                let off = b.i64(draws.off as i64);
                let at = b.add(off, base);
                x.fill_into(b, draws.buf, at);
            }
            Metric::Diagonal => welford(b, x, mean, m2),
            Metric::Dense => {
                // δ before the mean moves, then the mean, then the outer
                // product with x − mean_new.
                delta.fill(b, |b, i| {
                    let xi = x.load(b, i);
                    let m = mean.load(b, i);
                    b.sub(xi, m)
                });
                mean.fill(b, |b, i| {
                    let m = mean.load(b, i);
                    let dl = delta.load(b, i);
                    let q = b.div(dl, n);
                    b.add(m, q)
                });
                let dv = b.i64(d as i64);
                b.for_(lo, hi, &[], |b, i, _| {
                    let di = delta.load(b, i);
                    let row = b.mul(i, dv);
                    let (lo, hi) = (b.i64(0), b.i64(d as i64));
                    b.for_(lo, hi, &[], |b, j, _| {
                        let xj = x.load(b, j);
                        let mj = mean.load(b, j);
                        let d2 = b.sub(xj, mj);
                        let t = b.mul(di, d2);
                        let at = b.add(row, j);
                        let v = m2.load(b, at);
                        let v = b.add(v, t);
                        m2.store(b, at, v);
                        vec![]
                    });
                    vec![]
                });
            }
        }
    }

    /// A slow window's end: the regularised (co)variance
    /// `n/(n+5) · m2/(n−1) + 10⁻³ · 5/(n+5)` (on the diagonal) becomes `Σ`
    /// (dense: with its inverse Cholesky factor, unless the factorisation
    /// fails, which keeps the previous metric); the moments restart.
    /// `scratch` holds `d²` entries (dense), `2 k d + window` (low rank;
    /// `V`, `W` and the projections), none for diagonal.
    pub fn window_end(&self, b: &mut Builder, metric: &MetricEnv, scratch: Vector) {
        let n = self.n.get(b);
        let one = b.f64(1.0);
        let five = b.f64(5.0);
        let nm1 = b.sub(n, one);
        let n5 = b.add(n, five);
        let scale = b.div(n, n5);
        let reg = b.f64(1e-3);
        let shrink = b.div(five, n5);
        let shrink = b.mul(reg, shrink);
        let m2 = self.m2;
        let regularised = |b: &mut Builder, v: Value, diag: Value| {
            let var = b.div(v, nm1);
            let sv = b.mul(scale, var);
            let zero = b.f64(0.0);
            let s = b.select(diag, shrink, zero);
            b.add(sv, s)
        };
        match metric.kind {
            Metric::LowRank { .. } => {
                self.low_rank_end(b, metric, scratch, (scale, shrink));
            }
            Metric::Diagonal => {
                let tr = b.bool(true);
                metric.inverse_mass.fill(b, |b, i| {
                    let v = m2.load(b, i);
                    regularised(b, v, tr)
                });
            }
            Metric::Dense => {
                let d = metric.d();
                let dv = b.i64(d as i64);
                // Σ from the lower triangle, symmetric by construction, in
                // the scratch (the metric changes only if it factorises).
                let sigma = scratch;
                let (lo, hi) = (b.i64(0), b.i64(d as i64));
                b.for_(lo, hi, &[], |b, i, _| {
                    let (lo, hi) = (b.i64(0), b.i64(d as i64));
                    b.for_(lo, hi, &[], |b, j, _| {
                        let lower = b.cmp(CmpOp::Ge, i, j);
                        let r = b.select(lower, i, j);
                        let c = b.select(lower, j, i);
                        let rr = b.mul(r, dv);
                        let at = b.add(rr, c);
                        let v = m2.load(b, at);
                        let diag = b.cmp(CmpOp::Eq, i, j);
                        let s = regularised(b, v, diag);
                        let ii = b.mul(i, dv);
                        let out = b.add(ii, j);
                        sigma.store(b, out, s);
                        vec![]
                    });
                    vec![]
                });
                let diag = metric.tmp;
                let ok = cholesky_inverse(b, d, sigma, diag, metric.factor);
                let imm = metric.inverse_mass;
                b.if_(
                    ok,
                    |b| {
                        // Σ back from the strict upper triangle and the
                        // saved diagonal (the lower one now holds L).
                        let (lo, hi) = (b.i64(0), b.i64(d as i64));
                        b.for_(lo, hi, &[], |b, i, _| {
                            let (lo, hi) = (b.i64(0), b.i64(d as i64));
                            b.for_(lo, hi, &[], |b, j, _| {
                                let upper = b.cmp(CmpOp::Lt, i, j);
                                let r = b.select(upper, i, j);
                                let c = b.select(upper, j, i);
                                let rr = b.mul(r, dv);
                                let src = b.add(rr, c);
                                let v = sigma.load(b, src);
                                let dd = diag.load(b, i);
                                let on = b.cmp(CmpOp::Eq, i, j);
                                let v = b.select(on, dd, v);
                                let ii = b.mul(i, dv);
                                let dst = b.add(ii, j);
                                imm.store(b, dst, v);
                                vec![]
                            });
                            vec![]
                        });
                        vec![]
                    },
                    |_| vec![],
                );
            }
        }
        self.reset(b);
    }

    /// The low-rank window end (`n` draws, `S = diag(√D)`):
    ///
    /// 1. `D_i = n/(n+5) · √(var xᵢ / var gᵢ) + 10⁻³ · 5/(n+5)` (the
    ///    draws' variance where the gradients' is not positive);
    /// 2. the draws centred and scaled by `S⁻¹`, in place: `Y` (`n × d`);
    /// 3. `V` (`k × d`) from disjoint indicator rows, then 25 rounds of
    ///    `V ← orth(V C)` with `C = YᵀY/(n−1)` (applied as two products,
    ///    never formed; modified Gram–Schmidt);
    /// 4. `λⱼ = vⱼᵀ C vⱼ`, shrunk to `n/(n+5) λ + 5/(n+5)` (1 where not
    ///    finite and positive, or where a row vanished);
    /// 5. `D`, `Λ`, `U = V` become the metric.
    ///
    /// `scratch`: `V`, `W` (`k d` each) and `a` (`window`).
    fn low_rank_end(
        &self,
        b: &mut Builder,
        metric: &MetricEnv,
        scratch: Vector,
        (scale, shrink): (Value, Value),
    ) {
        let d = metric.d();
        let k = metric.kind.rank();
        let window = self.draws.len / d.max(1);
        let (diag, lambda, u) = metric.low_rank();
        let n = self.n.get(b);
        let one = b.f64(1.0);
        let nm1 = b.sub(n, one);
        let ni = b.conv(crux_ir::kernel::Conv::F64ToI64, n);
        let m2 = self.m2;
        let dv = b.i64(d as i64);
        let dd = b.i64(d as i64);
        // 1. D.
        diag.fill(b, |b, i| {
            let vx = m2.load(b, i);
            let vx = b.div(vx, nm1);
            let gi = b.add(i, dd);
            let vg = m2.load(b, gi);
            let vg = b.div(vg, nm1);
            let r = b.div(vx, vg);
            let f = b.sqrt(r);
            let zero = b.f64(0.0);
            let pos = b.cmp(CmpOp::Gt, f, zero);
            let inf = b.f64(f64::INFINITY);
            let fin = b.cmp(CmpOp::Lt, f, inf);
            let ok = b.and(pos, fin);
            let v = b.select(ok, f, vx);
            let sv = b.mul(scale, v);
            b.add(sv, shrink)
        });
        // 2. Y = (x − mean) / √D, rows t < n.
        let (draws, mean) = (self.draws, self.mean);
        let zero_i = b.i64(0);
        b.for_(zero_i, ni, &[], |b, t, _| {
            let row = b.mul(t, dv);
            let (lo, hi) = (b.i64(0), b.i64(d as i64));
            b.for_(lo, hi, &[], |b, i, _| {
                let at = b.add(row, i);
                let x = draws.load(b, at);
                let m = mean.load(b, i);
                let c = b.sub(x, m);
                let s = diag.load(b, i);
                let s = b.sqrt(s);
                let y = b.div(c, s);
                draws.store(b, at, y);
                vec![]
            });
            vec![]
        });
        let sub = |off: usize, len: usize| Vector {
            off: scratch.off + off,
            len,
            ..scratch
        };
        let (v, w, a) = (sub(0, k * d), sub(k * d, k * d), sub(2 * k * d, window));
        // 3. Indicator start: row j has ones at i = j + t k.
        v.fill(b, |b, _| b.f64(0.0));
        let kv = b.i64(k as i64);
        b.for_(zero_i, kv, &[], |b, j, _| {
            let row = b.mul(j, dv);
            let (lo, hi) = (b.i64(0), b.i64(d.div_ceil(k.max(1)) as i64));
            b.for_(lo, hi, &[], |b, t, _| {
                let tk = b.mul(t, kv);
                let i = b.add(j, tk);
                let inside = b.cmp(CmpOp::Lt, i, dv);
                b.if_(
                    inside,
                    |b| {
                        let at = b.add(row, i);
                        let one = b.f64(1.0);
                        v.store(b, at, one);
                        vec![]
                    },
                    |_| vec![],
                );
                vec![]
            });
            vec![]
        });
        orthonormalise(b, v, k, d);
        // w_j = C v_j for every row j.
        let apply_c = |b: &mut Builder, from: Vector, to: Vector| {
            let kv = b.i64(k as i64);
            let zero = b.i64(0);
            b.for_(zero, kv, &[], |b, j, _| {
                let vrow = b.mul(j, dv);
                // a_t = y_t · v_j
                let zero = b.i64(0);
                b.for_(zero, ni, &[], |b, t, _| {
                    let yrow = b.mul(t, dv);
                    let s = row_dot(b, (draws, yrow), (from, vrow), d);
                    a.store(b, t, s);
                    vec![]
                });
                // w_j,i = Σ_t y_t,i a_t / (n − 1)
                let (lo, hi) = (b.i64(0), b.i64(d as i64));
                b.for_(lo, hi, &[], |b, i, _| {
                    let zero = b.i64(0);
                    let acc0 = b.f64(0.0);
                    let s = b.for_(zero, ni, &[acc0], |b, t, acc| {
                        let yrow = b.mul(t, dv);
                        let ya = b.add(yrow, i);
                        let y = draws.load(b, ya);
                        let at = a.load(b, t);
                        let p = b.mul(y, at);
                        vec![b.add(acc[0], p)]
                    })[0];
                    let s = b.div(s, nm1);
                    let wa = b.add(vrow, i);
                    to.store(b, wa, s);
                    vec![]
                });
                vec![]
            });
        };
        let rounds_lo = b.i64(0);
        let rounds_hi = b.i64(25);
        b.for_(rounds_lo, rounds_hi, &[], |b, _, _| {
            apply_c(b, v, w);
            v.copy_from(b, w);
            orthonormalise(b, v, k, d);
            vec![]
        });
        // 4. Rayleigh quotients λ_j = v_j · (C v_j).
        apply_c(b, v, w);
        let five = b.f64(5.0);
        let n5 = b.add(n, five);
        let keep = b.div(n, n5);
        let pull = b.div(five, n5);
        lambda.fill(b, |b, j| {
            let row = b.mul(j, dv);
            let (lo, hi) = (b.i64(0), b.i64(d as i64));
            let acc0 = b.f64(0.0);
            let (l, nrm) = {
                let r = b.for_(lo, hi, &[acc0, acc0], |b, i, acc| {
                    let at = b.add(row, i);
                    let x = v.load(b, at);
                    let y = w.load(b, at);
                    let p = b.mul(x, y);
                    let q = b.mul(x, x);
                    vec![b.add(acc[0], p), b.add(acc[1], q)]
                });
                (r[0], r[1])
            };
            let l = b.mul(keep, l);
            let l = b.add(l, pull);
            let zero = b.f64(0.0);
            let pos = b.cmp(CmpOp::Gt, l, zero);
            let inf = b.f64(f64::INFINITY);
            let fin = b.cmp(CmpOp::Lt, l, inf);
            let half = b.f64(0.5);
            let unit = b.cmp(CmpOp::Gt, nrm, half);
            let ok = b.and(pos, fin);
            let ok = b.and(ok, unit);
            let one = b.f64(1.0);
            b.select(ok, l, one)
        });
        // 5. U.
        u.copy_from(b, v);
    }
}

/// `Σ_{i<d} x[xr + i] · y[yr + i]` in ascending `i` (rows of row-major
/// matrices at run-time offsets).
fn row_dot(b: &mut Builder, (x, xr): (Vector, Value), (y, yr): (Vector, Value), d: usize) -> Value {
    let (lo, hi) = (b.i64(0), b.i64(d as i64));
    let acc0 = b.f64(0.0);
    b.for_(lo, hi, &[acc0], |b, i, acc| {
        let a = b.add(xr, i);
        let c = b.add(yr, i);
        let p = x.load(b, a);
        let q = y.load(b, c);
        let t = b.mul(p, q);
        vec![b.add(acc[0], t)]
    })[0]
}

/// Modified Gram–Schmidt on the `k` rows of `v` (`k × d`, row-major): each
/// row minus its projections on the earlier ones, then normalised; a row
/// of norm below 10⁻¹² (dependent) becomes zero.
fn orthonormalise(b: &mut Builder, v: Vector, k: usize, d: usize) {
    let dv = b.i64(d as i64);
    let (lo, hi) = (b.i64(0), b.i64(k as i64));
    b.for_(lo, hi, &[], |b, j, _| {
        let rj = b.mul(j, dv);
        let zero = b.i64(0);
        b.for_(zero, j, &[], |b, l, _| {
            let rl = b.mul(l, dv);
            let p = row_dot(b, (v, rj), (v, rl), d);
            let (lo, hi) = (b.i64(0), b.i64(d as i64));
            b.for_(lo, hi, &[], |b, i, _| {
                let a = b.add(rj, i);
                let c = b.add(rl, i);
                let x = v.load(b, a);
                let y = v.load(b, c);
                let t = b.mul(p, y);
                let x = b.sub(x, t);
                v.store(b, a, x);
                vec![]
            });
            vec![]
        });
        let sq = row_dot(b, (v, rj), (v, rj), d);
        let nrm = b.sqrt(sq);
        let tiny = b.f64(1e-12);
        let big = b.cmp(CmpOp::Gt, nrm, tiny);
        let (lo, hi) = (b.i64(0), b.i64(d as i64));
        b.for_(lo, hi, &[], |b, i, _| {
            let a = b.add(rj, i);
            let x = v.load(b, a);
            let y = b.div(x, nrm);
            let z = b.f64(0.0);
            let y = b.select(big, y, z);
            v.store(b, a, y);
            vec![]
        });
        vec![]
    });
}

/// Factorises the symmetric `a` (`d × d`, row-major) as `L Lᵀ` in place
/// (`L` over `a`'s lower triangle and diagonal; the strict upper triangle
/// keeps `Σ`, and `diag` receives `Σ`'s diagonal first) and, if every pivot
/// is positive (not NaN), writes `X = L⁻¹` (row-major, zero above the
/// diagonal) to `x` and returns true; otherwise `x` is left as it was and
/// the result is false.
fn cholesky_inverse(b: &mut Builder, d: usize, a: Vector, diag: Vector, x: Vector) -> Value {
    let dv = b.i64(d as i64);
    let at = |b: &mut Builder, i: Value, j: Value| {
        let r = b.mul(i, dv);
        b.add(r, j)
    };
    diag.fill(b, |b, i| {
        let ii = at(b, i, i);
        a.load(b, ii)
    });
    let (lo, hi) = (b.i64(0), b.i64(d as i64));
    let tr = b.bool(true);
    let ok = b.for_(lo, hi, &[tr], |b, j, c| {
        // s = Σ_jj − Σ_{k<j} L_jk²
        let zero = b.i64(0);
        let acc0 = b.f64(0.0);
        let sq = b.for_(zero, j, &[acc0], |b, k, c| {
            let jk = at(b, j, k);
            let l = a.load(b, jk);
            let t = b.mul(l, l);
            vec![b.add(c[0], t)]
        })[0];
        let sjj = diag.load(b, j);
        let s = b.sub(sjj, sq);
        let zf = b.f64(0.0);
        let pos = b.cmp(CmpOp::Gt, s, zf);
        let ok = b.binary(BinOp::And, c[0], pos);
        let ljj = b.sqrt(s);
        let jj = at(b, j, j);
        a.store(b, jj, ljj);
        let one = b.i64(1);
        let i0 = b.add(j, one);
        let hi = b.i64(d as i64);
        b.for_(i0, hi, &[], |b, i, _| {
            let zero = b.i64(0);
            let acc0 = b.f64(0.0);
            let dot = b.for_(zero, j, &[acc0], |b, k, c| {
                let ik = at(b, i, k);
                let jk = at(b, j, k);
                let x = a.load(b, ik);
                let y = a.load(b, jk);
                let t = b.mul(x, y);
                vec![b.add(c[0], t)]
            })[0];
            let ij = at(b, i, j);
            let v = a.load(b, ij);
            let t = b.sub(v, dot);
            let l = b.div(t, ljj);
            a.store(b, ij, l);
            vec![]
        });
        vec![ok]
    })[0];
    b.if_(
        ok,
        |b| {
            // X = L⁻¹, column by column: X_cc = 1/L_cc,
            // X_ic = −(Σ_{c≤k<i} L_ik X_kc) / L_ii below, 0 above.
            let (lo, hi) = (b.i64(0), b.i64(d as i64));
            b.for_(lo, hi, &[], |b, c, _| {
                let (lo, hi) = (b.i64(0), b.i64(d as i64));
                b.for_(lo, hi, &[], |b, i, _| {
                    let above = b.cmp(CmpOp::Lt, i, c);
                    let on = b.cmp(CmpOp::Eq, i, c);
                    let v = b.if_(
                        above,
                        |b| vec![b.f64(0.0)],
                        |b| {
                            let acc0 = b.f64(0.0);
                            let dot = b.for_(c, i, &[acc0], |b, k, acc| {
                                let ik = at(b, i, k);
                                let kc = at(b, k, c);
                                let l = a.load(b, ik);
                                let xk = x.load(b, kc);
                                let t = b.mul(l, xk);
                                vec![b.add(acc[0], t)]
                            })[0];
                            let ii = at(b, i, i);
                            let lii = a.load(b, ii);
                            let one = b.f64(1.0);
                            let inv = b.div(one, lii);
                            let nd = b.neg(dot);
                            let off = b.div(nd, lii);
                            vec![b.select(on, inv, off)]
                        },
                    )[0];
                    let ic = at(b, i, c);
                    x.store(b, ic, v);
                    vec![]
                });
                vec![]
            });
            vec![]
        },
        |_| vec![],
    );
    ok
}
