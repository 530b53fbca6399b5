//! Point estimates in the sweep: optimisers written as kernels. An
//! optimised model's target is `−loss` (likelihood scale 1, no prior), so
//! the loss gradient is `g = −∇ log p`; the update is optax's, operation
//! for operation:
//!
//! - clipping (optional, `optax.clip_by_global_norm(c)`):
//!   `g ← g` if `‖g‖ < c`, else `(g / ‖g‖) · c`;
//! - SGD (`optax.sgd(lr)`): `θ ← θ + (−lr) · g`;
//! - Adam (`optax.adam(lr, b1, b2, eps)`): `m ← (1 − b1) g + b1 m`,
//!   `v ← (1 − b2) g² + b2 v`, `m̂ = m / (1 − b1ᵗ)`, `v̂ = v / (1 − b2ᵗ)`,
//!   `θ ← θ + (−lr) · m̂ / (√v̂ + eps)`, with `b1ᵗ`, `b2ᵗ` kept as running
//!   products (optax raises to the power `t`; the two agree to an ulp).
//!
//! They keep no draws and record no diagnostics.

use crux_ir::kernel::{Builder, CmpOp, KernelError, Value};

use crate::sampler::{DiagField, Family, Kernel, StepCtx, StepInfo, Vector};

/// How an optimiser updates the position from the loss gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// Plain gradient descent.
    Sgd,
    /// Adam with bias correction.
    Adam {
        /// Decay of the first moment (0.9).
        b1: f64,
        /// Decay of the second moment (0.999).
        b2: f64,
        /// Added to `√v̂` (1e-8).
        eps: f64,
    },
}

/// A gradient-based optimiser of a model's loss, as a kernel of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    /// Learning rate.
    pub lr: f64,
    /// The update rule.
    pub update: Update,
    /// Clip the gradient to this global norm first.
    pub clip_norm: Option<f64>,
}

impl Optimizer {
    /// Adam with optax's defaults (b1 0.9, b2 0.999, eps 1e-8).
    pub fn adam(lr: f64) -> Optimizer {
        Optimizer {
            lr,
            update: Update::Adam {
                b1: 0.9,
                b2: 0.999,
                eps: 1e-8,
            },
            clip_norm: None,
        }
    }
    /// Plain SGD.
    pub fn sgd(lr: f64) -> Optimizer {
        Optimizer {
            lr,
            update: Update::Sgd,
            clip_norm: None,
        }
    }
    /// Adam's moment decays (default 0.9, 0.999); no effect on SGD.
    pub fn betas(mut self, b1: f64, b2: f64) -> Optimizer {
        if let Update::Adam { eps, .. } = self.update {
            self.update = Update::Adam { b1, b2, eps };
        }
        self
    }
    /// Adam's `eps` (default 1e-8); no effect on SGD.
    pub fn eps(mut self, eps: f64) -> Optimizer {
        if let Update::Adam { b1, b2, .. } = self.update {
            self.update = Update::Adam { b1, b2, eps };
        }
        self
    }
    /// Clips the loss gradient to global norm `c` before the update
    /// (`optax.clip_by_global_norm`).
    pub fn clip_by_global_norm(mut self, c: f64) -> Optimizer {
        self.clip_norm = Some(c);
        self
    }
    /// Checks the hyper-parameters; returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "learning rate must be finite and > 0, got {}",
                self.lr
            ));
        }
        if let Update::Adam { b1, b2, eps } = self.update {
            for (name, b) in [("b1", b1), ("b2", b2)] {
                if !(0.0..1.0).contains(&b) {
                    return Err(format!("adam {name} must be in [0, 1), got {b}"));
                }
            }
            if !(eps.is_finite() && eps > 0.0) {
                return Err(format!("adam eps must be finite and > 0, got {eps}"));
            }
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!(
                    "clip_by_global_norm must be finite and > 0, got {c}"
                ));
            }
        }
        Ok(())
    }
}

/// `g ← (g / ‖g‖) · c` when `‖g‖ ≥ c`.
fn clip(b: &mut Builder, g: Vector, c: f64) {
    let sq = g.sum(b, |b, i| {
        let x = g.load(b, i);
        b.mul(x, x)
    });
    let norm = b.sqrt(sq);
    let max = b.f64(c);
    let below = b.cmp(CmpOp::Lt, norm, max);
    g.fill(b, |b, i| {
        let x = g.load(b, i);
        let scaled = b.div(x, norm);
        let scaled = b.mul(scaled, max);
        b.select(below, x, scaled)
    });
}

/// `s ← s · f` for a one-entry state slot; returns the new value.
fn running_product(b: &mut Builder, s: Vector, f: f64) -> Value {
    let old = s.get(b);
    let f = b.f64(f);
    let new = b.mul(old, f);
    s.set(b, new);
    new
}

impl Kernel for Optimizer {
    fn name(&self) -> &str {
        match self.update {
            Update::Sgd => "sgd",
            Update::Adam { .. } => "adam",
        }
    }
    fn family(&self) -> Family {
        // Needs only the gradient at the current position, recomputed at
        // every step (other models move between steps).
        Family::StochasticGradient
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        Vec::new()
    }
    fn init(&self, ctx: &mut StepCtx<'_>) -> Result<(), KernelError> {
        let d = ctx.dim();
        self.init_state(ctx, "adam.", d);
        Ok(())
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let g = ctx.work("opt.g", d);
        let moments = self.state(ctx, "adam.", d);
        let env = ctx.env;
        let b = &mut *ctx.b;
        let x = env.position;
        env.target.logp_grad(b, x, g);
        // The loss gradient: −∇ log p.
        g.fill(b, |b, i| {
            let gi = g.load(b, i);
            b.neg(gi)
        });
        self.apply(b, x, g, moments);
        Ok(StepInfo::default())
    }
}

/// An optimiser's per-chain state: Adam's moments and the running
/// products `b1ᵗ`, `b2ᵗ` (SGD has none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moments {
    m: Vector,
    v: Vector,
    b1t: Vector,
    b2t: Vector,
}

impl Optimizer {
    /// The state slots of an update of `len` entries, named from `prefix`.
    pub(crate) fn state(&self, ctx: &mut StepCtx<'_>, prefix: &str, len: usize) -> Option<Moments> {
        match self.update {
            Update::Adam { .. } => Some(Moments {
                m: ctx.state(&format!("{prefix}m"), len),
                v: ctx.state(&format!("{prefix}v"), len),
                b1t: ctx.state(&format!("{prefix}b1t"), 1),
                b2t: ctx.state(&format!("{prefix}b2t"), 1),
            }),
            Update::Sgd => None,
        }
    }

    /// Emits the start of [`Optimizer::state`]: zero moments, `b1ᵗ = b2ᵗ = 1`.
    pub(crate) fn init_state(&self, ctx: &mut StepCtx<'_>, prefix: &str, len: usize) {
        if let Some(s) = self.state(ctx, prefix, len) {
            let b = &mut *ctx.b;
            s.m.fill(b, |b, _| b.f64(0.0));
            s.v.fill(b, |b, _| b.f64(0.0));
            let one = b.f64(1.0);
            s.b1t.set(b, one);
            s.b2t.set(b, one);
        }
    }

    /// Emits one update of `x` from the loss gradient `g` (same length; `g`
    /// is clipped in place first when asked).
    pub(crate) fn apply(&self, b: &mut Builder, x: Vector, g: Vector, moments: Option<Moments>) {
        if let Some(c) = self.clip_norm {
            clip(b, g, c);
        }
        let neg_lr = b.f64(-self.lr);
        match (self.update, moments) {
            (Update::Sgd, _) => x.fill(b, |b, i| {
                let xi = x.load(b, i);
                let gi = g.load(b, i);
                let u = b.mul(neg_lr, gi);
                b.add(xi, u)
            }),
            (Update::Adam { b1, b2, eps }, Some(Moments { m, v, b1t, b2t })) => {
                let b1t = running_product(b, b1t, b1);
                let b2t = running_product(b, b2t, b2);
                let one = b.f64(1.0);
                let c1 = b.sub(one, b1t);
                let c2 = b.sub(one, b2t);
                let (b1v, b2v) = (b.f64(b1), b.f64(b2));
                let (r1, r2) = (b.f64(1.0 - b1), b.f64(1.0 - b2));
                let eps = b.f64(eps);
                let (lo, hi) = (b.i64(0), b.i64(x.len as i64));
                b.for_(lo, hi, &[], |b, i, _| {
                    let gi = g.load(b, i);
                    let mi = m.load(b, i);
                    let a = b.mul(r1, gi);
                    let c = b.mul(b1v, mi);
                    let mi = b.add(a, c);
                    m.store(b, i, mi);
                    let vi = v.load(b, i);
                    let g2 = b.mul(gi, gi);
                    let a = b.mul(r2, g2);
                    let c = b.mul(b2v, vi);
                    let vi = b.add(a, c);
                    v.store(b, i, vi);
                    let mh = b.div(mi, c1);
                    let vh = b.div(vi, c2);
                    let den = b.sqrt(vh);
                    let den = b.add(den, eps);
                    let u = b.div(mh, den);
                    let u = b.mul(neg_lr, u);
                    let xi = x.load(b, i);
                    let xi = b.add(xi, u);
                    x.store(b, i, xi);
                    vec![]
                });
            }
            (Update::Adam { .. }, None) => {
                unreachable!("Optimizer::state allocates Adam's moments")
            }
        }
    }
}

/// The same updates on the host, in the same order of operations: the
/// reference the kernel-IR optimisers are tested against bit for bit.
#[derive(Clone, Debug)]
pub struct HostOptimizer {
    opt: Optimizer,
    m: Vec<f64>,
    v: Vec<f64>,
    b1t: f64,
    b2t: f64,
}

impl HostOptimizer {
    /// Fresh state for a position of `d` entries.
    pub fn new(opt: Optimizer, d: usize) -> HostOptimizer {
        HostOptimizer {
            opt,
            m: vec![0.0; d],
            v: vec![0.0; d],
            b1t: 1.0,
            b2t: 1.0,
        }
    }
    /// One update of `x` given `grad_logp = ∇ log p(x)`.
    pub fn step(&mut self, x: &mut [f64], grad_logp: &[f64]) {
        let mut g: Vec<f64> = grad_logp.iter().map(|v| -v).collect();
        if let Some(c) = self.opt.clip_norm {
            let mut sq = 0.0;
            for v in &g {
                sq += v * v;
            }
            let norm = sq.sqrt();
            // As the kernel's select: scaled unless `norm < c` (NaN scales).
            if norm.partial_cmp(&c) != Some(std::cmp::Ordering::Less) {
                g.iter_mut().for_each(|v| *v = *v / norm * c);
            }
        }
        let neg_lr = -self.opt.lr;
        match self.opt.update {
            Update::Sgd => {
                for (xi, gi) in x.iter_mut().zip(&g) {
                    *xi += neg_lr * gi;
                }
            }
            Update::Adam { b1, b2, eps } => {
                self.b1t *= b1;
                self.b2t *= b2;
                let (c1, c2) = (1.0 - self.b1t, 1.0 - self.b2t);
                for i in 0..x.len() {
                    self.m[i] = (1.0 - b1) * g[i] + b1 * self.m[i];
                    self.v[i] = (1.0 - b2) * (g[i] * g[i]) + b2 * self.v[i];
                    let u = (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
                    x[i] += neg_lr * u;
                }
            }
        }
    }
}
