//! NUTS against exact Gaussian laws, its divergence handling, and the
//! determinism of its draws.

use std::sync::Arc;

use super::Nuts;
use crate::sampler::tests::{assert_moments, gaussian_target, moments, plan, run_chain, Exec};
use crate::sampler::{build_chunk, Kernel};

/// Diagnostic fields per draw.
const NF: usize = 5;

fn rows(diag: &[f64]) -> impl Iterator<Item = &[f64]> {
    diag.chunks(NF)
}

/// Tree depth and leaf count agree: every doubling but the last is
/// complete, the last built at least one leaf.
fn assert_tree_shapes(diag: &[f64], max_depth: usize) {
    for r in rows(diag) {
        let (depth, n) = (r[3], r[4]);
        assert!(depth >= 1.0 && depth <= max_depth as f64, "depth {depth}");
        assert_eq!(depth.fract(), 0.0);
        let full = 2f64.powf(depth) - 1.0;
        let before = 2f64.powf(depth - 1.0) - 1.0;
        assert!(n > before && n <= full, "{n} leaves at depth {depth}");
    }
}

#[test]
fn diagnostics_are_the_hmc_fields_then_the_tree() {
    let k = Nuts::default();
    assert_eq!(k.max_depth, 10);
    let names: Vec<_> = k.diagnostics().iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "is_divergent",
            "acceptance_rate",
            "energy",
            "tree_depth",
            "num_integration_steps"
        ]
    );
    assert!(k.hmc_family());
    let t = gaussian_target(&[0.0], &[1.0]);
    let bad = Arc::new(Nuts { max_depth: 0 });
    assert!(build_chunk(1, &[plan(bad, t, 10, 10, false)]).is_err());
}

/// Scales four orders of magnitude apart: only an adapted mass matrix lets
/// NUTS sample this with short trees.
#[test]
fn nuts_with_window_adaptation_samples_a_badly_scaled_gaussian() {
    let mu = [1.0, -2.0, 0.5];
    let sd = [0.01, 1.0, 100.0];
    let var: Vec<f64> = sd.iter().map(|s| s * s).collect();
    let t = gaussian_target(&mu, &sd);
    let chunk = build_chunk(3, &[plan(Arc::new(Nuts::default()), t, 500, 4000, true)]).unwrap();
    let (draws, diag, state) = run_chain(&chunk, Exec::Clif, 7, 0, &[0.0; 3], 1.0, 1000);
    assert_moments(&draws, &mu, &var, 4.0, "nuts");
    // Adapted inverse mass ≈ the variances as regularised by the last slow
    // window (200 draws): n/(n+5)·σ² + 10⁻³·5/(n+5), which matters at σ = 0.01.
    let imm = &state[chunk.models[0].inverse_mass..][..3];
    for (a, v) in imm.iter().zip(&var) {
        let expected = 200.0 / 205.0 * v + 1e-3 * 5.0 / 205.0;
        assert!((a / expected - 1.0).abs() < 0.35, "imm {imm:?}");
    }
    let acc: f64 = rows(&diag).map(|r| r[1]).sum::<f64>() / 4000.0;
    assert!((0.6..0.95).contains(&acc), "mean acceptance {acc}");
    assert_eq!(rows(&diag).filter(|r| r[0] != 0.0).count(), 0);
    assert_tree_shapes(&diag, 10);
    // With the mass matrix adapted, the target is a unit Gaussian: short trees.
    let mean_depth = rows(&diag).map(|r| r[3]).sum::<f64>() / 4000.0;
    assert!(mean_depth < 4.0, "mean depth {mean_depth}");
    // Energy of the sampled (q, p) ~ e^(−H): H = χ²₆ / 2 (the target has no
    // normalising constant), mean 3, variance 3.
    let (m, v, se_m, se_v) = moments(&diag, NF, 2);
    assert!((m - 3.0).abs() <= 4.0 * se_m, "mean energy {m} ({se_m})");
    assert!(
        (v - 3.0).abs() <= 4.0 * se_v,
        "energy variance {v} ({se_v})"
    );
}

/// Without adaptation and with a fixed, moderate step: the kernel alone
/// (no dual averaging masking a bias) leaves the Gaussian invariant.
#[test]
fn nuts_with_a_fixed_step_samples_a_gaussian() {
    let mu = [1.0, -2.0, 0.5];
    let sd = [1.0, 0.5, 3.0];
    let var: Vec<f64> = sd.iter().map(|s| s * s).collect();
    let t = gaussian_target(&mu, &sd);
    let k = Arc::new(Nuts { max_depth: 6 });
    let chunk = build_chunk(3, &[plan(k, t, 100, 8000, false)]).unwrap();
    let (draws, diag, _) = run_chain(&chunk, Exec::Clif, 21, 1, &[0.0; 3], 0.4, 10000);
    assert_moments(&draws, &mu, &var, 4.0, "nuts fixed step");
    assert_tree_shapes(&diag, 6);
    assert_eq!(rows(&diag).filter(|r| r[0] != 0.0).count(), 0);
    let (m, _, se_m, _) = moments(&diag, NF, 2);
    assert!((m - 3.0).abs() <= 4.0 * se_m, "mean energy {m} ({se_m})");
}

/// A step far beyond the leapfrog's stability limit (2σ): the first leaf
/// already diverges, the subtree is discarded, the chain stays put.
#[test]
fn divergent_trees_are_recorded_and_discarded() {
    let init = [0.3, -0.2];
    let t = gaussian_target(&[0.0, 0.0], &[0.1, 1.0]);
    let chunk = build_chunk(2, &[plan(Arc::new(Nuts::default()), t, 0, 50, false)]).unwrap();
    let (draws, diag, _) = run_chain(&chunk, Exec::Clif, 1, 0, &init, 10.0, 50);
    assert!(draws.iter().all(|x| x.is_finite()));
    assert_eq!(rows(&diag).filter(|r| r[0] == 1.0).count(), 50);
    for (r, q) in rows(&diag).zip(draws.chunks(2)) {
        assert_eq!(q, init);
        assert_eq!((r[3], r[4]), (1.0, 1.0));
        assert!(r[1] < 1e-100, "acceptance {}", r[1]);
        assert!(r[2].is_finite());
    }
    // Just past the limit (ε = 0.25 > 0.2): the energy error grows along
    // the trajectory; some trees diverge, others still move the chain.
    let t = gaussian_target(&[0.0, 0.0], &[0.1, 1.0]);
    let chunk = build_chunk(2, &[plan(Arc::new(Nuts::default()), t, 0, 400, false)]).unwrap();
    let (draws, diag, _) = run_chain(&chunk, Exec::Clif, 2, 0, &init, 0.25, 400);
    assert!(draws.iter().all(|x| x.is_finite()));
    let div = rows(&diag).filter(|r| r[0] == 1.0).count();
    assert!(div > 0, "no divergence");
    let moved = draws.chunks(2).filter(|q| *q != init).count();
    assert!(moved > 0);
    assert_tree_shapes(&diag, 10);
}

/// Same seed ⇒ same draws and diagnostics: interpreter and Cranelift, any
/// chunking.
#[test]
fn nuts_draws_do_not_depend_on_backend_or_chunking() {
    let mu = [1.0, -2.0, 0.5];
    let sd = [1.0, 0.5, 3.0];
    let t = gaussian_target(&mu, &sd);
    let chunk = build_chunk(3, &[plan(Arc::new(Nuts::default()), t, 30, 20, true)]).unwrap();
    let a = run_chain(&chunk, Exec::Interp, 9, 2, &[0.0; 3], 1.0, 1000);
    let b = run_chain(&chunk, Exec::Clif, 9, 2, &[0.0; 3], 1.0, 7);
    let c = run_chain(&chunk, Exec::Clif, 9, 2, &[0.0; 3], 1.0, 1);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    assert_eq!(b.0, c.0);
    assert_eq!(b.1, c.1);
    assert_tree_shapes(&a.1, 10);
    let other = run_chain(&chunk, Exec::Clif, 9, 3, &[0.0; 3], 1.0, 1000);
    assert_ne!(a.0, other.0);
}

/// A host transcription of blackjax's iterative NUTS (proposal, trajectory
/// and termination modules) on a Gaussian with unit metric, drawing the
/// same counter-based numbers as the kernel.
mod reference {
    use crux_ir::rng::{draw_counter, normal, stream, uniform, Purpose};

    #[derive(Clone)]
    pub struct State {
        pub q: Vec<f64>,
        pub p: Vec<f64>,
        pub lp: f64,
        pub g: Vec<f64>,
    }

    #[derive(Clone)]
    struct Proposal {
        state: State,
        energy: f64,
        weight: f64,
        sum_log_p_accept: f64,
    }

    struct Trajectory {
        left: State,
        right: State,
        sum: Vec<f64>,
        n: usize,
    }

    pub struct Gauss {
        pub mu: Vec<f64>,
        pub sd: Vec<f64>,
    }

    impl Gauss {
        pub fn logp_grad(&self, q: &[f64]) -> (f64, Vec<f64>) {
            let mut lp = 0.0;
            let mut g = vec![0.0; q.len()];
            for i in 0..q.len() {
                let r = q[i] - self.mu[i];
                let w = 1.0 / (self.sd[i] * self.sd[i]);
                lp += w * r * r;
                g[i] = -w * r;
            }
            (-0.5 * lp, g)
        }
        fn leapfrog(&self, s: &State, eps: f64) -> State {
            let p: Vec<f64> =
                s.p.iter()
                    .zip(&s.g)
                    .map(|(p, g)| p + 0.5 * eps * g)
                    .collect();
            let q: Vec<f64> = s.q.iter().zip(&p).map(|(q, p)| q + eps * p).collect();
            let (lp, g) = self.logp_grad(&q);
            let p = p.iter().zip(&g).map(|(p, g)| p + 0.5 * eps * g).collect();
            State { q, p, lp, g }
        }
    }

    fn energy(s: &State) -> f64 {
        0.5 * s.p.iter().map(|x| x * x).sum::<f64>() - s.lp
    }

    fn logaddexp(a: f64, b: f64) -> f64 {
        let m = a.max(b);
        if m == f64::NEG_INFINITY {
            m
        } else {
            m + (-(a - b).abs()).exp().ln_1p()
        }
    }

    fn is_turning(l: &[f64], r: &[f64], sum: &[f64]) -> bool {
        let rho: Vec<f64> = (0..l.len()).map(|i| sum[i] - (r[i] + l[i]) / 2.0).collect();
        let dot = |v: &[f64]| v.iter().zip(&rho).map(|(a, b)| a * b).sum::<f64>();
        dot(l) <= 0.0 || dot(r) <= 0.0
    }

    /// (is_divergent, acceptance_rate, energy, tree_depth, leaves) of one
    /// transition of `s` at `sweep` (model 0).
    pub fn step(
        t: &Gauss,
        s: &mut State,
        (seed, chain, sweep): (u64, u64, u64),
        eps: f64,
        max_depth: usize,
    ) -> [f64; 5] {
        let st = stream(Purpose::Sampler, 0) | chain;
        let unif = |k: usize| uniform(seed, st, draw_counter(sweep, 0, k as u64));
        let d = s.q.len();
        let (leaf0, merge0) = (d + 2 * max_depth, d + 2 * max_depth + (1 << max_depth));
        s.p = (0..d)
            .map(|k| normal(seed, st, draw_counter(sweep, 0, k as u64)))
            .collect();
        let h0 = energy(s);
        let mut proposal = Proposal {
            state: s.clone(),
            energy: h0,
            weight: 0.0,
            sum_log_p_accept: f64::NEG_INFINITY,
        };
        let mut traj = Trajectory {
            left: s.clone(),
            right: s.clone(),
            sum: s.p.clone(),
            n: 0,
        };
        let mut ck_p = vec![vec![0.0; d]; max_depth];
        let mut ck_sum = vec![vec![0.0; d]; max_depth];
        let (mut depth, mut leaves, mut diverging, mut turning) = (0, 0, false, false);
        while depth < max_depth && !diverging && !turning {
            let forward = unif(d + 2 * depth) < 0.5;
            let start = if forward { &traj.right } else { &traj.left };
            let e = if forward { eps } else { -eps };
            let mut sub = Trajectory {
                left: start.clone(),
                right: start.clone(),
                sum: start.p.clone(),
                n: 0,
            };
            let mut sub_prop: Option<Proposal> = None;
            let (mut i, mut div, mut term) = (0usize, false, false);
            while i < (1 << depth) && !div && !term {
                let new = t.leapfrog(&sub.right, e);
                let h = energy(&new);
                let delta = h0 - h;
                let delta = if delta.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    delta
                };
                let np = Proposal {
                    state: new.clone(),
                    energy: h,
                    weight: delta,
                    sum_log_p_accept: delta.min(0.0),
                };
                div = -delta > 1000.0;
                match sub_prop.take() {
                    None => {
                        sub = Trajectory {
                            left: new.clone(),
                            right: new.clone(),
                            sum: new.p.clone(),
                            n: 1,
                        };
                        sub_prop = Some(np);
                    }
                    Some(old) => {
                        sub.right = new.clone();
                        sub.sum.iter_mut().zip(&new.p).for_each(|(a, b)| *a += b);
                        sub.n += 1;
                        let accept = 1.0 / (1.0 + (-(np.weight - old.weight)).exp());
                        let take = unif(leaf0 + leaves) < accept;
                        let w = logaddexp(old.weight, np.weight);
                        let sl = logaddexp(old.sum_log_p_accept, np.sum_log_p_accept);
                        let mut chosen = if take { np } else { old };
                        chosen.weight = w;
                        chosen.sum_log_p_accept = sl;
                        sub_prop = Some(chosen);
                    }
                }
                // numpyro's checkpoints
                let idx_max = (i >> 1).count_ones() as usize;
                let trailing = i.trailing_ones() as usize;
                if i % 2 == 0 {
                    ck_p[idx_max] = new.p.clone();
                    ck_sum[idx_max] = sub.sum.clone();
                }
                let idx_min = idx_max as isize - trailing as isize + 1;
                let mut k = idx_max as isize;
                while k >= idx_min && !term {
                    let c = k as usize;
                    let s: Vec<f64> = (0..d)
                        .map(|j| sub.sum[j] - ck_sum[c][j] + ck_p[c][j])
                        .collect();
                    term = is_turning(&ck_p[c], &new.p, &s);
                    k -= 1;
                }
                i += 1;
                leaves += 1;
            }
            if !forward {
                std::mem::swap(&mut sub.left, &mut sub.right);
            }
            let sp = sub_prop.expect("a leaf");
            if div || term {
                proposal.sum_log_p_accept =
                    logaddexp(proposal.sum_log_p_accept, sp.sum_log_p_accept);
            } else {
                let accept = (sp.weight - proposal.weight).exp().min(1.0);
                let take = unif(merge0 + depth) < accept;
                let w = logaddexp(proposal.weight, sp.weight);
                let sl = logaddexp(proposal.sum_log_p_accept, sp.sum_log_p_accept);
                proposal = if take { sp } else { proposal };
                proposal.weight = w;
                proposal.sum_log_p_accept = sl;
            }
            let (l, r) = if forward { (traj, sub) } else { (sub, traj) };
            traj = Trajectory {
                sum: l.sum.iter().zip(&r.sum).map(|(a, b)| a + b).collect(),
                n: l.n + r.n,
                left: l.left,
                right: r.right,
            };
            let whole = is_turning(&traj.left.p, &traj.right.p, &traj.sum);
            depth += 1;
            diverging = div;
            turning = term || whole;
        }
        *s = proposal.state;
        let acc = proposal.sum_log_p_accept.exp() / traj.n as f64;
        let divf = if diverging { 1.0 } else { 0.0 };
        [divf, acc, proposal.energy, depth as f64, traj.n as f64]
    }
}

/// The kernel against the host transcription of blackjax: the same trees
/// (depths, leaf counts, divergences exactly), the same draws up to the
/// rounding of the math expansions.
#[test]
fn nuts_matches_a_host_transcription_of_blackjax() {
    for (mu, sd, eps, seed) in [
        (vec![1.0, -2.0, 0.5], vec![1.0, 0.5, 3.0], 0.3, 4u64),
        (vec![0.0, 0.0], vec![0.1, 1.0], 0.25, 5),
        (vec![0.5], vec![2.0], 0.05, 6),
    ] {
        let d = mu.len();
        let init = vec![0.1; d];
        let n = 200;
        let t = gaussian_target(&mu, &sd);
        let chunk = build_chunk(d, &[plan(Arc::new(Nuts::default()), t, 0, n, false)]).unwrap();
        let (draws, diag, _) = run_chain(&chunk, Exec::Clif, seed, 3, &init, eps, 1000);
        let g = reference::Gauss { mu, sd };
        let (lp, grad) = g.logp_grad(&init);
        let mut s = reference::State {
            q: init.clone(),
            p: vec![0.0; d],
            lp,
            g: grad,
        };
        // Values differ by rounding (math expansions, the compiled
        // gradient), which a chain would amplify: each reference step
        // starts from the kernel's previous draw.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
        let (mut divergent, mut deepest) = (0, 0);
        for sweep in 0..n {
            if sweep > 0 {
                s.q = draws[(sweep - 1) * d..][..d].to_vec();
                (s.lp, s.g) = g.logp_grad(&s.q);
            }
            let info = reference::step(&g, &mut s, (seed, 3, sweep as u64), eps, 10);
            let got = &diag[sweep * NF..][..NF];
            let what = format!("eps {eps}, sweep {sweep}: {got:?} vs {info:?}");
            assert_eq!(got[0], info[0], "{what}");
            assert_eq!(got[3], info[3], "{what}");
            assert_eq!(got[4], info[4], "{what}");
            assert!(close(got[1], info[1]) && close(got[2], info[2]), "{what}");
            for (a, b) in draws[sweep * d..][..d].iter().zip(&s.q) {
                assert!(close(*a, *b), "{what}: {a} vs {b}");
            }
            divergent += info[0] as usize;
            deepest = deepest.max(info[3] as usize);
        }
        if eps == 0.25 {
            assert!(divergent > 0);
        }
        // Small steps: deep trees exercise several checkpoint levels (a
        // U-turn of the 1-d oscillator takes about π/ε = 63 steps).
        if eps == 0.05 {
            assert!(deepest >= 6, "deepest tree {deepest}");
        }
    }
}
