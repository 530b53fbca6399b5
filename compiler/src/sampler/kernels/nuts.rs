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
//! Scalars (weights, energies, counters) are loop-carried values; vectors
//! (trajectory ends, current leaf, proposals, momentum sums, U-turn
//! checkpoints) are step-local work slots.

use crux_ir::kernel::{BinOp, Builder, CmpOp, KernelError, UnOp, Value};

use super::{accept_prob, bool_f64, draw_momentum, hmc_fields, is_divergent, leapfrog};
use crate::math;
use crate::sampler::ctx::{kinetic2, to_f64, Vector};
use crate::sampler::{DiagField, DiagKind, Family, Kernel, StepCtx, StepInfo};

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

/// blackjax `is_turning` with a diagonal metric: with
/// `ρ = Σp − (p_left + p_right)/2`, turning when `(M⁻¹ p_left)·ρ ≤ 0` or
/// `(M⁻¹ p_right)·ρ ≤ 0`. `f(b, i)` gives `(p_left[i], p_right[i], Σp[i])`.
fn is_turning(
    b: &mut Builder,
    imm: Vector,
    f: impl FnOnce(&mut Builder, Value) -> (Value, Value, Value),
) -> Value {
    let (lo, hi) = (b.i64(0), b.i64(imm.len as i64));
    let zero = b.f64(0.0);
    let acc = b.for_(lo, hi, &[zero, zero], |b, i, c| {
        let (l, r, s) = f(b, i);
        let lr = b.add(r, l);
        let half = b.f64(0.5);
        let h = b.mul(lr, half);
        let rho = b.sub(s, h);
        let m = imm.load(b, i);
        let vl = b.mul(m, l);
        let vr = b.mul(m, r);
        let tl = b.mul(vl, rho);
        let tr = b.mul(vr, rho);
        vec![b.add(c[0], tl), b.add(c[1], tr)]
    });
    let zero = b.f64(0.0);
    let at_l = b.cmp(CmpOp::Le, acc[0], zero);
    let at_r = b.cmp(CmpOp::Le, acc[1], zero);
    or(b, at_l, at_r)
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
        if merge0 + md >= 1usize << 32 {
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
        f.push(DiagField {
            name: "tree_depth",
            kind: DiagKind::Int,
        });
        f.push(DiagField {
            name: "num_integration_steps",
            kind: DiagKind::Int,
        });
        f
    }
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError> {
        let d = ctx.dim();
        let md = self.max_depth;
        let (leaf0, merge0) = self.counters(d)?;
        let mut w = |name: &str, len: usize| ctx.work(name, len);
        let v = Vecs {
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
        };
        let env = ctx.env;
        let imm = env.inverse_mass;
        let b = &mut *ctx.b;

        // The initial state is both trajectory ends and the proposal.
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
        let k0 = kinetic2(b, imm, v.lp);
        let k0 = b.mul(half, k0);
        let h0 = b.sub(k0, lp0);
        let eps = env.step_size.get(b);

        let zi = b.i64(0);
        let zf = b.f64(0.0);
        let fls = b.bool(false);
        // depth, leaves, W, proposal logp, proposal energy, Σ accept,
        // diverging, stop
        let init = [zi, zi, zf, lp0, h0, zf, fls, fls];
        let out = b.while_(
            &init,
            |b, c| {
                let mdv = b.i64(md as i64);
                let more = b.cmp(CmpOp::Lt, c[0], mdv);
                let go = not(b, c[7]);
                b.and(more, go)
            },
            |b, c| {
                let (depth, leaves, w_traj, prop_lp, prop_h, acc) =
                    (c[0], c[1], c[2], c[3], c[4], c[5]);
                // Direction, and the leaf starts at that end.
                let two = b.i64(2);
                let kd = b.mul(two, depth);
                let dv = b.i64(d as i64);
                let kd = b.add(dv, kd);
                let u = env.rng.uniform(b, kd);
                let half = b.f64(0.5);
                let fwd = b.cmp(CmpOp::Lt, u, half);
                let neps = b.neg(eps);
                let eps_s = b.select(fwd, eps, neps);
                each(b, d, |b, i| {
                    for (dst, r, l) in [(v.q, v.rq, v.lq), (v.p, v.rp, v.lp), (v.g, v.rg, v.lg)] {
                        let x = r.load(b, i);
                        let y = l.load(b, i);
                        let s = b.select(fwd, x, y);
                        dst.store(b, i, s);
                    }
                });
                let one = b.i64(1);
                let n_max = b.shl(one, depth);

                // The subtree: step, leaves, W_sub, its proposal's logp and
                // energy, Σ accept, diverging, turning.
                let ninf = b.f64(f64::NEG_INFINITY);
                let sub_init = [zi, leaves, ninf, lp0, h0, acc, fls, fls];
                let sub = b.while_(
                    &sub_init,
                    |b, c| {
                        let more = b.cmp(CmpOp::Lt, c[0], n_max);
                        let stop = or(b, c[6], c[7]);
                        let go = not(b, stop);
                        b.and(more, go)
                    },
                    |b, c| {
                        let (step, leaves, w_sub, sub_lp, sub_h, acc) =
                            (c[0], c[1], c[2], c[3], c[4], c[5]);
                        let lp = leapfrog(b, &env, v.q, v.p, v.g, eps_s);
                        let k = kinetic2(b, imm, v.p);
                        let half = b.f64(0.5);
                        let k = b.mul(half, k);
                        let h = b.sub(k, lp);
                        let delta = b.sub(h0, h);
                        let a = accept_prob(b, delta);
                        let acc = b.add(acc, a);
                        let div = is_divergent(b, h0, h);
                        let num = b.cmp(CmpOp::Eq, delta, delta);
                        let ninf = b.f64(f64::NEG_INFINITY);
                        let wl = b.select(num, delta, ninf);
                        // Progressive uniform sampling within the subtree
                        // (the first leaf is always taken).
                        let zero = b.i64(0);
                        let first = b.cmp(CmpOp::Eq, step, zero);
                        let w_sum = logaddexp(b, w_sub, wl);
                        let w_new = b.select(first, wl, w_sum);
                        let lw = b.sub(wl, w_new);
                        let pa = math::exp(b, lw);
                        let l0 = b.i64(leaf0 as i64);
                        let kl = b.add(l0, leaves);
                        let u = env.rng.uniform(b, kl);
                        let take = b.cmp(CmpOp::Lt, u, pa);
                        let take = or(b, first, take);
                        b.if_(
                            take,
                            |b| {
                                copy_all(b, d, &[(v.sub_q, v.q), (v.sub_g, v.g)]);
                                vec![]
                            },
                            |_| vec![],
                        );
                        let sub_lp = b.select(take, lp, sub_lp);
                        let sub_h = b.select(take, h, sub_h);
                        each(b, d, |b, i| {
                            let pi = v.p.load(b, i);
                            let s = v.sub_rho.load(b, i);
                            let s = b.add(s, pi);
                            let s = b.select(first, pi, s);
                            v.sub_rho.store(b, i, s);
                        });
                        // Checkpoints (numpyro): even leaves record their
                        // momentum and momentum sum at index
                        // popcount(n >> 1); odd leaves check the subtrees
                        // ending at them against checkpoints
                        // idx_max down to idx_min.
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
                        let dv = b.i64(d as i64);
                        b.if_(
                            even,
                            |b| {
                                let base = b.mul(idx_max, dv);
                                each(b, d, |b, i| {
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
                        let turn = b.while_(
                            &[idx_max, fls],
                            |b, c| {
                                let ge = b.cmp(CmpOp::Ge, c[0], idx_min);
                                let go = not(b, c[1]);
                                b.and(ge, go)
                            },
                            |b, c| {
                                let base = b.mul(c[0], dv);
                                let t = is_turning(b, imm, |b, i| {
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
                        )[1];
                        let step = b.add(step, one);
                        let leaves = b.add(leaves, one);
                        vec![step, leaves, w_new, sub_lp, sub_h, acc, div, turn]
                    },
                );
                let (leaves, w_sub, sub_lp, sub_h, acc, div, turn_sub) =
                    (sub[1], sub[2], sub[3], sub[4], sub[5], sub[6], sub[7]);
                let bad = or(b, div, turn_sub);
                let valid = not(b, bad);

                // Biased progressive sampling of a valid subtree's proposal:
                // u < e^(W_sub − W) is taking it with min(1, e^(W_sub − W)).
                let m0 = b.i64(merge0 as i64);
                let km = b.add(m0, depth);
                let um = env.rng.uniform(b, km);
                let dw = b.sub(w_sub, w_traj);
                let pm = math::exp(b, dw);
                let take = b.cmp(CmpOp::Lt, um, pm);
                let take = b.and(valid, take);
                b.if_(
                    take,
                    |b| {
                        copy_all(b, d, &[(v.prop_q, v.sub_q), (v.prop_g, v.sub_g)]);
                        vec![]
                    },
                    |_| vec![],
                );
                let prop_lp = b.select(take, sub_lp, prop_lp);
                let prop_h = b.select(take, sub_h, prop_h);
                let w_merged = logaddexp(b, w_traj, w_sub);
                let w_traj = b.select(valid, w_merged, w_traj);

                // Merge: the leaf is the trajectory's new end on its side.
                b.if_(
                    fwd,
                    |b| {
                        copy_all(b, d, &[(v.rq, v.q), (v.rp, v.p), (v.rg, v.g)]);
                        vec![]
                    },
                    |b| {
                        copy_all(b, d, &[(v.lq, v.q), (v.lp, v.p), (v.lg, v.g)]);
                        vec![]
                    },
                );
                each(b, d, |b, i| {
                    let r = v.rho.load(b, i);
                    let s = v.sub_rho.load(b, i);
                    let r = b.add(r, s);
                    v.rho.store(b, i, r);
                });
                let turn = is_turning(b, imm, |b, i| {
                    let l = v.lp.load(b, i);
                    let r = v.rp.load(b, i);
                    let s = v.rho.load(b, i);
                    (l, r, s)
                });
                let stop = or(b, bad, turn);
                let depth = b.add(depth, one);
                vec![depth, leaves, w_traj, prop_lp, prop_h, acc, div, stop]
            },
        );
        let (depth, leaves, prop_lp, prop_h, acc, div) =
            (out[0], out[1], out[3], out[4], out[5], out[6]);

        copy_all(b, d, &[(env.position, v.prop_q), (env.grad, v.prop_g)]);
        env.logp.set(b, prop_lp);
        let n = to_f64(b, leaves);
        let rate = b.div(acc, n);
        let divf = bool_f64(b, div);
        let depthf = to_f64(b, depth);
        Ok(StepInfo {
            accept_stat: Some(rate),
            diagnostics: vec![divf, rate, prop_h, depthf, n],
        })
    }
}

#[cfg(test)]
#[path = "nuts_tests.rs"]
mod tests;
