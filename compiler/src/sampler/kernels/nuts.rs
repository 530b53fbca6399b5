//! The No-U-Turn Sampler: multinomial sampling over an iteratively doubled
//! trajectory, with numpyro's iterative U-turn checks (blackjax `nuts`).
//!
//! One transition, as blackjax's `iterative_nuts_proposal`:
//!
//! ```text
//! p ~ N(0, M); trajectory = {(q0, p0)} (no leaf counted), proposal = (q0, H0, W = 0)
//! for depth in 0..max_depth:
//!     direction ±1; extend the end on that side by a subtree of 2^depth leaves,
//!         leaf weights w = H0 − H (NaN → −∞), progressive uniform sampling
//!         of the subtree's proposal, stopping at a divergence or when a
//!         checkpointed sub-subtree turns
//!     valid subtree: take its proposal with probability min(1, e^(W_sub − W)),
//!         W ← logaddexp(W, W_sub)
//!     stop if the subtree was invalid or the whole trajectory turns
//! ```
//!
//! Scalars (weights, energies, counters) are loop-carried values, named by
//! `Trajectory` (one iteration per doubling) and `Subtree` (one per leaf);
//! vectors (trajectory ends, current leaf, proposals, momentum sums, U-turn
//! checkpoints) are step-local work slots (`Vecs`). The code is emitted by
//! `Transition`'s methods: `start`, `double` (`direction`, the subtree
//! loop of `leaf` and `checkpoint_turning`, `merge`) and `finish`.

use crux_ir::kernel::{BinOp, Builder, CmpOp, KernelError, UnOp, Value};
use crux_ir::rng::MAX_DRAWS_PER_STEP;

use super::{accept_prob, bool_f64, draw_momentum, hmc_fields, is_divergent, leapfrog};
use crate::math;
use crate::sampler::ctx::{to_f64, StepEnv, Vector};
use crate::sampler::{DiagField, DiagName, Family, Kernel, StepCtx, StepInfo};

/// NUTS (blackjax `nuts`): multinomial sampling with iterative trajectory
/// doubling and the generalised U-turn criterion, so the trajectory length
/// adapts to the local geometry instead of being a tuning parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Nuts {
    /// Maximum number of trajectory doublings, 1 to 30 (at most
    /// `2^max_depth − 1` leapfrog steps per transition); bounds the cost of
    /// a transition.
    pub max_depth: usize,
}

impl Default for Nuts {
    /// Depth 10, the blackjax / Stan default.
    fn default() -> Self {
        Nuts { max_depth: 10 }
    }
}

/// The step's work vectors.
#[derive(Clone, Copy)]
struct Vecs {
    /// Leftmost state of the trajectory.
    lq: Vector,
    lp: Vector,
    lg: Vector,
    /// Rightmost state of the trajectory.
    rq: Vector,
    rp: Vector,
    rg: Vector,
    /// The leaf being integrated.
    q: Vector,
    p: Vector,
    g: Vector,
    /// The trajectory's proposal.
    prop_q: Vector,
    prop_g: Vector,
    /// The subtree's proposal.
    sub_q: Vector,
    sub_g: Vector,
    /// Momentum sums of the trajectory and of the subtree.
    rho: Vector,
    sub_rho: Vector,
    /// U-turn checkpoints: `max_depth` momenta and momentum sums.
    ck_p: Vector,
    ck_rho: Vector,
}

/// `for i in 0..n { f(b, i) }`.
fn each(b: &mut Builder, n: usize, f: impl FnOnce(&mut Builder, Value)) {
    let (lo, hi) = (b.i64(0), b.i64(n as i64));
    b.for_(lo, hi, &[], |b, i, _| {
        f(b, i);
        vec![]
    });
}

/// `dst ← src` for several pairs in one loop.
fn copy_all(b: &mut Builder, n: usize, pairs: &[(Vector, Vector)]) {
    each(b, n, |b, i| {
        for (dst, src) in pairs {
            let x = src.load(b, i);
            dst.store(b, i, x);
        }
    });
}

fn or(b: &mut Builder, x: Value, y: Value) -> Value {
    b.binary(BinOp::Or, x, y)
}

fn not(b: &mut Builder, x: Value) -> Value {
    b.unary(UnOp::Not, x)
}

/// `log(eˣ + eʸ)`; `−∞` when both are `−∞` (weights are never NaN).
fn logaddexp(b: &mut Builder, x: Value, y: Value) -> Value {
    let m = b.max(x, y);
    let diff = b.sub(x, y);
    let a = b.abs(diff);
    let na = b.neg(a);
    let e = math::exp(b, na);
    let l = math::log1p(b, e);
    let r = b.add(m, l);
    let ninf = b.f64(f64::NEG_INFINITY);
    let none = b.cmp(CmpOp::Eq, m, ninf);
    b.select(none, ninf, r)
}

/// The number of set bits among the low `bits` bits of `x` (an i64).
fn popcount(b: &mut Builder, x: Value, bits: usize) -> Value {
    let (lo, hi) = (b.i64(0), b.i64(bits as i64));
    let zero = b.i64(0);
    b.for_(lo, hi, &[zero], |b, j, c| {
        let s = b.shr_u(x, j);
        let one = b.i64(1);
        let bit = b.and(s, one);
        vec![b.add(c[0], bit)]
    })[0]
}

impl Nuts {
    /// Draw counters: momentum `0..d`, direction `d + 2·depth`, leaf
    /// `leaf0 + leaf index`, merge `merge0 + depth`. Errors when they would
    /// not fit the 32-bit draw counter.
    fn counters(&self, d: usize) -> Result<(usize, usize), KernelError> {
        let md = self.max_depth;
        let invalid = |msg: String| KernelError::Invalid {
            function: "nuts".into(),
            msg,
        };
        if md == 0 || md > 30 {
            return Err(invalid(format!("max_depth {md} not in 1..=30")));
        }
        let leaf0 = d + 2 * md;
        let merge0 = leaf0 + (1usize << md);
        if (merge0 + md) as u64 >= MAX_DRAWS_PER_STEP {
            return Err(invalid(format!(
                "{d} dimensions and max_depth {md} need more than 2³² draws per step"
            )));
        }
        Ok((leaf0, merge0))
    }
}

impl Kernel for Nuts {
    fn name(&self) -> &str {
        "nuts"
    }
    fn family(&self) -> Family {
        Family::FullData
    }
    fn hmc_family(&self) -> bool {
        true
    }
    fn diagnostics(&self) -> Vec<DiagField> {
        let mut f = hmc_fields();
        f.push(DiagField::known(DiagName::TreeDepth));
        f.push(DiagField::known(DiagName::NumIntegrationSteps));
        f
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let (leaf0, merge0) = self.counters(d)?;
        let v = Vecs::alloc(ctx, d, self.max_depth);
        let env = ctx.env;
        let b = &mut *ctx.b;
        let (tr, init) = Transition::start(b, env, v, self.max_depth, (leaf0, merge0));
        let out = b.while_(
            &init.pack(),
            |b, c| tr.more_doublings(b, Trajectory::unpack(c)),
            |b, c| tr.double(b, Trajectory::unpack(c)).pack(),
        );
        Ok(tr.finish(b, Trajectory::unpack(&out)))
    }
}

impl Vecs {
    /// The work slots of a `d`-dimensional model with `md` doublings.
    fn alloc(ctx: &mut StepCtx<'_>, d: usize, md: usize) -> Vecs {
        let mut w = |name: &str, len: usize| ctx.work(name, len);
        Vecs {
            lq: w("left_q", d),
            lp: w("left_p", d),
            lg: w("left_g", d),
            rq: w("right_q", d),
            rp: w("right_p", d),
            rg: w("right_g", d),
            q: w("leaf_q", d),
            p: w("leaf_p", d),
            g: w("leaf_g", d),
            prop_q: w("prop_q", d),
            prop_g: w("prop_g", d),
            sub_q: w("sub_q", d),
            sub_g: w("sub_g", d),
            rho: w("rho", d),
            sub_rho: w("sub_rho", d),
            ck_p: w("ckpt_p", md * d),
            ck_rho: w("ckpt_rho", md * d),
        }
    }
}

/// A loop's carried scalars as a struct of named `Value`s, with `pack`
/// (the order the builder's loop carries them in) and `unpack`.
macro_rules! carried {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy)]
        struct $name {
            $($(#[$fm])* $field: Value,)*
        }

        impl $name {
            fn pack(self) -> Vec<Value> {
                vec![$(self.$field),*]
            }
            fn unpack(c: &[Value]) -> $name {
                let [$($field),*] = c[..] else {
                    unreachable!(concat!(
                        "the loop carries exactly the values of ",
                        stringify!($name),
                        "::pack"
                    ))
                };
                $name { $($field),* }
            }
        }
    };
}

carried! {
/// The scalars the trajectory loop carries (one iteration per doubling).
struct Trajectory {
    /// Doublings so far (i64).
    depth,
    /// Leaves integrated so far (i64).
    leaves,
    /// Log of the trajectory's total weight `W` (f64).
    weight,
    /// Log-density and energy of the proposal (f64).
    prop_lp,
    prop_h,
    /// Σ of the leaves' acceptance probabilities (f64).
    sum_accept,
    /// Whether the last subtree diverged (bool).
    diverging,
    /// Whether to stop doubling (bool).
    stop,
}
}

carried! {
/// The scalars the subtree loop carries (one iteration per leaf).
struct Subtree {
    /// Leaves of this subtree so far (i64).
    step,
    /// Leaves of the whole transition so far (i64).
    leaves,
    /// Log of the subtree's weight `W_sub` (f64).
    weight,
    /// Log-density and energy of the subtree's proposal (f64).
    prop_lp,
    prop_h,
    /// Σ of the leaves' acceptance probabilities (f64).
    sum_accept,
    /// Whether the last leaf diverged (bool).
    diverging,
    /// Whether a checkpointed sub-subtree turned (bool).
    turning,
}
}

/// One doubling's direction, fixed while its subtree is built.
#[derive(Clone, Copy)]
struct Direction {
    /// Whether the subtree extends the right end (bool).
    fwd: Value,
    /// The signed step size (f64).
    eps: Value,
    /// The subtree's leaf count `2^depth` (i64).
    n_max: Value,
    /// The i64 constant 1.
    one: Value,
}

/// What one transition's code is built from: the work vectors, the draw
/// counters and the values fixed for the whole transition.
#[derive(Clone, Copy)]
struct Transition<'a> {
    env: StepEnv<'a>,
    v: Vecs,
    /// Dimension and maximum depth.
    d: usize,
    md: usize,
    /// First draw counters of the leaves and of the merges.
    leaf0: usize,
    merge0: usize,
    /// Log-density and energy at the start (f64).
    lp0: Value,
    h0: Value,
    /// The step size (f64).
    eps: Value,
    /// The i64 constant 0 and the bool `false` of the step's entry.
    zi: Value,
    fls: Value,
}

impl<'a> Transition<'a> {
    /// Emits the start: momentum, both trajectory ends and the proposal at
    /// the current state, its energy. Returns the transition and the
    /// trajectory loop's initial values.
    fn start(
        b: &mut Builder,
        env: StepEnv<'a>,
        v: Vecs,
        md: usize,
        (leaf0, merge0): (usize, usize),
    ) -> (Transition<'a>, Trajectory) {
        let d = v.q.len;
        draw_momentum(b, &env, v.lp, 0);
        copy_all(
            b,
            d,
            &[
                (v.lq, env.position),
                (v.lg, env.grad),
                (v.rq, env.position),
                (v.rg, env.grad),
                (v.rp, v.lp),
                (v.rho, v.lp),
                (v.prop_q, env.position),
                (v.prop_g, env.grad),
            ],
        );
        let lp0 = env.logp.get(b);
        let half = b.f64(0.5);
        let k0 = env.metric.kinetic2(b, v.lp);
        let k0 = b.mul(half, k0);
        let h0 = b.sub(k0, lp0);
        let eps = env.step_size.get(b);

        let zi = b.i64(0);
        let zf = b.f64(0.0);
        let fls = b.bool(false);
        let tr = Transition {
            env,
            v,
            d,
            md,
            leaf0,
            merge0,
            lp0,
            h0,
            eps,
            zi,
            fls,
        };
        let init = Trajectory {
            depth: zi,
            leaves: zi,
            weight: zf,
            prop_lp: lp0,
            prop_h: h0,
            sum_accept: zf,
            diverging: fls,
            stop: fls,
        };
        (tr, init)
    }

    /// The trajectory loop's condition: below the maximum depth and not
    /// stopped.
    fn more_doublings(&self, b: &mut Builder, t: Trajectory) -> Value {
        let mdv = b.i64(self.md as i64);
        let more = b.cmp(CmpOp::Lt, t.depth, mdv);
        let go = not(b, t.stop);
        b.and(more, go)
    }

    /// One doubling: a direction, a subtree of `2^depth` leaves from the
    /// end on that side, and the merge.
    fn double(&self, b: &mut Builder, t: Trajectory) -> Trajectory {
        let dir = self.direction(b, t.depth);
        let ninf = b.f64(f64::NEG_INFINITY);
        let init = Subtree {
            step: self.zi,
            leaves: t.leaves,
            weight: ninf,
            prop_lp: self.lp0,
            prop_h: self.h0,
            sum_accept: t.sum_accept,
            diverging: self.fls,
            turning: self.fls,
        };
        let sub = b.while_(
            &init.pack(),
            |b, c| {
                let s = Subtree::unpack(c);
                let more = b.cmp(CmpOp::Lt, s.step, dir.n_max);
                let stop = or(b, s.diverging, s.turning);
                let go = not(b, stop);
                b.and(more, go)
            },
            |b, c| self.leaf(b, dir, Subtree::unpack(c)).pack(),
        );
        self.merge(b, dir, t, Subtree::unpack(&sub))
    }

    /// Draws the direction of doubling `depth`; the leaf starts at the end
    /// on that side.
    fn direction(&self, b: &mut Builder, depth: Value) -> Direction {
        let v = self.v;
        let two = b.i64(2);
        let kd = b.mul(two, depth);
        let dv = b.i64(self.d as i64);
        let kd = b.add(dv, kd);
        let u = self.env.rng.uniform(b, kd);
        let half = b.f64(0.5);
        let fwd = b.cmp(CmpOp::Lt, u, half);
        let neps = b.neg(self.eps);
        let eps = b.select(fwd, self.eps, neps);
        each(b, self.d, |b, i| {
            for (dst, r, l) in [(v.q, v.rq, v.lq), (v.p, v.rp, v.lp), (v.g, v.rg, v.lg)] {
                let x = r.load(b, i);
                let y = l.load(b, i);
                let s = b.select(fwd, x, y);
                dst.store(b, i, s);
            }
        });
        let one = b.i64(1);
        let n_max = b.shl(one, depth);
        Direction {
            fwd,
            eps,
            n_max,
            one,
        }
    }

    /// One leaf of the subtree: a leapfrog step, its weight, progressive
    /// uniform sampling of the subtree's proposal (the first leaf is
    /// always taken), the momentum sum, and the U-turn checks.
    fn leaf(&self, b: &mut Builder, dir: Direction, s: Subtree) -> Subtree {
        let (v, env, h0) = (self.v, self.env, self.h0);
        let lp = leapfrog(b, &env, v.q, v.p, v.g, dir.eps);
        let k = env.metric.kinetic2(b, v.p);
        let half = b.f64(0.5);
        let k = b.mul(half, k);
        let h = b.sub(k, lp);
        let delta = b.sub(h0, h);
        let a = accept_prob(b, delta);
        let sum_accept = b.add(s.sum_accept, a);
        let diverging = is_divergent(b, h0, h);
        let num = b.cmp(CmpOp::Eq, delta, delta);
        let ninf = b.f64(f64::NEG_INFINITY);
        let wl = b.select(num, delta, ninf);
        let zero = b.i64(0);
        let first = b.cmp(CmpOp::Eq, s.step, zero);
        let w_sum = logaddexp(b, s.weight, wl);
        let weight = b.select(first, wl, w_sum);
        let lw = b.sub(wl, weight);
        let pa = math::exp(b, lw);
        let l0 = b.i64(self.leaf0 as i64);
        let kl = b.add(l0, s.leaves);
        let u = env.rng.uniform(b, kl);
        let take = b.cmp(CmpOp::Lt, u, pa);
        let take = or(b, first, take);
        b.if_(
            take,
            |b| {
                copy_all(b, self.d, &[(v.sub_q, v.q), (v.sub_g, v.g)]);
                vec![]
            },
            |_| vec![],
        );
        let prop_lp = b.select(take, lp, s.prop_lp);
        let prop_h = b.select(take, h, s.prop_h);
        each(b, self.d, |b, i| {
            let pi = v.p.load(b, i);
            let s = v.sub_rho.load(b, i);
            let s = b.add(s, pi);
            let s = b.select(first, pi, s);
            v.sub_rho.store(b, i, s);
        });
        let turning = self.checkpoint_turning(b, dir.one, zero, s.step);
        Subtree {
            step: b.add(s.step, dir.one),
            leaves: b.add(s.leaves, dir.one),
            weight,
            prop_lp,
            prop_h,
            sum_accept,
            diverging,
            turning,
        }
    }

    /// U-turn checkpoints (numpyro): even leaves record their momentum and
    /// momentum sum at index popcount(n >> 1); odd leaves check the
    /// subtrees ending at them against checkpoints idx_max down to
    /// idx_min. Returns whether one of them turns. `one` and `zero` are
    /// the i64 constants, `step` the leaf's index in the subtree.
    fn checkpoint_turning(&self, b: &mut Builder, one: Value, zero: Value, step: Value) -> Value {
        let (v, md) = (self.v, self.md);
        let metric = self.env.metric;
        let s1 = b.shr_u(step, one);
        let idx_max = popcount(b, s1, md);
        let ns = not(b, step);
        let n1 = b.add(step, one);
        let t = b.and(ns, n1);
        let t = b.sub(t, one);
        let trailing = popcount(b, t, md);
        let idx_min = b.sub(idx_max, trailing);
        let idx_min = b.add(idx_min, one);
        let bit = b.and(step, one);
        let even = b.cmp(CmpOp::Eq, bit, zero);
        let dv = b.i64(self.d as i64);
        b.if_(
            even,
            |b| {
                let base = b.mul(idx_max, dv);
                each(b, self.d, |b, i| {
                    let at = b.add(base, i);
                    let pi = v.p.load(b, i);
                    v.ck_p.store(b, at, pi);
                    let si = v.sub_rho.load(b, i);
                    v.ck_rho.store(b, at, si);
                });
                vec![]
            },
            |_| vec![],
        );
        let fls = b.bool(false);
        b.while_(
            &[idx_max, fls],
            |b, c| {
                let ge = b.cmp(CmpOp::Ge, c[0], idx_min);
                let go = not(b, c[1]);
                b.and(ge, go)
            },
            |b, c| {
                let base = b.mul(c[0], dv);
                let t = metric.is_turning(b, |b, i| {
                    let at = b.add(base, i);
                    let l = v.ck_p.load(b, at);
                    let cs = v.ck_rho.load(b, at);
                    let r = v.p.load(b, i);
                    let s = v.sub_rho.load(b, i);
                    let s = b.sub(s, cs);
                    let s = b.add(s, l);
                    (l, r, s)
                });
                let i = b.sub(c[0], one);
                vec![i, t]
            },
        )[1]
    }

    /// Merges the subtree into the trajectory: biased progressive sampling
    /// of a valid subtree's proposal (u < e^(W_sub − W) is taking it with
    /// min(1, e^(W_sub − W))), the leaf becomes the trajectory's end on
    /// its side, and the whole trajectory's U-turn check.
    fn merge(&self, b: &mut Builder, dir: Direction, t: Trajectory, s: Subtree) -> Trajectory {
        let v = self.v;
        let bad = or(b, s.diverging, s.turning);
        let valid = not(b, bad);
        let m0 = b.i64(self.merge0 as i64);
        let km = b.add(m0, t.depth);
        let um = self.env.rng.uniform(b, km);
        let dw = b.sub(s.weight, t.weight);
        let pm = math::exp(b, dw);
        let take = b.cmp(CmpOp::Lt, um, pm);
        let take = b.and(valid, take);
        b.if_(
            take,
            |b| {
                copy_all(b, self.d, &[(v.prop_q, v.sub_q), (v.prop_g, v.sub_g)]);
                vec![]
            },
            |_| vec![],
        );
        let prop_lp = b.select(take, s.prop_lp, t.prop_lp);
        let prop_h = b.select(take, s.prop_h, t.prop_h);
        let w_merged = logaddexp(b, t.weight, s.weight);
        let weight = b.select(valid, w_merged, t.weight);
        b.if_(
            dir.fwd,
            |b| {
                copy_all(b, self.d, &[(v.rq, v.q), (v.rp, v.p), (v.rg, v.g)]);
                vec![]
            },
            |b| {
                copy_all(b, self.d, &[(v.lq, v.q), (v.lp, v.p), (v.lg, v.g)]);
                vec![]
            },
        );
        each(b, self.d, |b, i| {
            let r = v.rho.load(b, i);
            let s = v.sub_rho.load(b, i);
            let r = b.add(r, s);
            v.rho.store(b, i, r);
        });
        let turn = self.env.metric.is_turning(b, |b, i| {
            let l = v.lp.load(b, i);
            let r = v.rp.load(b, i);
            let s = v.rho.load(b, i);
            (l, r, s)
        });
        let stop = or(b, bad, turn);
        Trajectory {
            depth: b.add(t.depth, dir.one),
            leaves: s.leaves,
            weight,
            prop_lp,
            prop_h,
            sum_accept: s.sum_accept,
            diverging: s.diverging,
            stop,
        }
    }

    /// Moves to the proposal and reports the transition's statistics.
    fn finish(&self, b: &mut Builder, t: Trajectory) -> StepInfo {
        let (v, env) = (self.v, self.env);
        copy_all(b, self.d, &[(env.position, v.prop_q), (env.grad, v.prop_g)]);
        env.logp.set(b, t.prop_lp);
        let n = to_f64(b, t.leaves);
        let rate = b.div(t.sum_accept, n);
        let divf = bool_f64(b, t.diverging);
        let depthf = to_f64(b, t.depth);
        StepInfo {
            accept_stat: Some(rate),
            diagnostics: vec![divf, rate, t.prop_h, depthf, n],
        }
    }
}

#[cfg(test)]
#[path = "nuts_tests.rs"]
mod tests;
