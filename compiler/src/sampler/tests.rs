//! Sampler kernels against exact Gaussian posteriors (Monte-Carlo-error
//! tolerances, fixed seeds), and the chunk function's determinism.

use std::sync::Arc;

pub(crate) use super::gaussian_target;
use super::kernels::{Hmc, HostOptimizer, Mala, Optimizer, Sghmc, Sgld};
use super::{build_chunk, chunk_args, Adaptation, Chunk, Kernel, ModelPlan};
use crate::backend::{clif, Executable, Interpreter};
use crate::lower::Lowered;

/// A one-model plan.
pub(crate) fn plan(
    kernel: Arc<dyn Kernel>,
    target: Lowered,
    warmup: usize,
    keep: usize,
    adapt: bool,
) -> ModelPlan {
    let len = target.layout.dim;
    ModelPlan {
        name: "theta".into(),
        kernel,
        target,
        offset: 0,
        len,
        warmup,
        keep,
        thin: 1,
        adapt: adapt.then(Adaptation::default),
        metric: crate::sampler::Metric::Diagonal,
        minibatch: None,
        repeats: 1,
    }
}

/// Which executor runs the chunk function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exec {
    Interp,
    Clif,
}

impl Exec {
    /// `function` on this executor (Cranelift with bounds checks).
    pub(crate) fn executable(self, function: &crux_ir::kernel::Function) -> Box<dyn Executable> {
        match self {
            Exec::Interp => Box::new(Interpreter {
                function: function.clone(),
                fuel: u64::MAX,
            }),
            Exec::Clif => Box::new(clif::compile(function, &clif::ClifOptions::default()).unwrap()),
        }
    }
}

/// Runs one chain of `chunk` from `init` in chunks of `chunk_len` sweeps;
/// returns (draws, diagnostics, final state).
pub(crate) fn run_chain(
    chunk: &Chunk,
    exec: Exec,
    seed: u64,
    chain: u64,
    init: &[f64],
    step_size: f64,
    chunk_len: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut state = vec![0.0; chunk.state.len];
    state[chunk.theta..chunk.theta + init.len()].copy_from_slice(init);
    for (i, m) in chunk.models.iter().enumerate() {
        state[m.step_size] = step_size;
        let (off, len) = chunk.state.find(&format!("m{i}.inverse_mass")).unwrap();
        assert_eq!(off, m.inverse_mass);
        state[off..off + len].iter_mut().for_each(|x| *x = 1.0);
    }
    let mut bufs = chunk.chain_buffers(state);
    let exe = exec.executable(&chunk.function);
    let mut lo = 0;
    while lo < chunk.sweeps {
        let hi = (lo + chunk_len).min(chunk.sweeps);
        let args = chunk_args(seed, chain as usize, (lo, hi));
        exe.call(&args, bufs.as_mut_slice()).unwrap();
        lo = hi;
    }
    (
        bufs.draws().to_vec(),
        bufs.diag().to_vec(),
        bufs.state().to_vec(),
    )
}

/// Mean and variance of column `j` of `draws` (rows of `d`), with Monte
/// Carlo standard errors from batch means (20 batches).
pub(crate) fn moments(draws: &[f64], d: usize, j: usize) -> (f64, f64, f64, f64) {
    let x: Vec<f64> = draws.chunks(d).map(|r| r[j]).collect();
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sq: Vec<f64> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
    let var = sq.iter().sum::<f64>() / (n - 1.0);
    let batch_se = |v: &[f64]| {
        let nb = 20;
        let len = v.len() / nb;
        let means: Vec<f64> = (0..nb)
            .map(|k| v[k * len..(k + 1) * len].iter().sum::<f64>() / len as f64)
            .collect();
        let m = means.iter().sum::<f64>() / nb as f64;
        let s2 = means.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (nb as f64 - 1.0);
        (s2 / nb as f64).sqrt()
    };
    (mean, var, batch_se(&x), batch_se(&sq))
}

/// Asserts every coordinate's mean and variance match `(mu, var)` within
/// `z` Monte Carlo standard errors.
pub(crate) fn assert_moments(draws: &[f64], mu: &[f64], var: &[f64], z: f64, what: &str) {
    let d = mu.len();
    for j in 0..d {
        let (m, v, se_m, se_v) = moments(draws, d, j);
        assert!(
            (m - mu[j]).abs() <= z * se_m,
            "{what}: mean[{j}] = {m} vs {} (mcse {se_m})",
            mu[j]
        );
        assert!(
            (v - var[j]).abs() <= z * se_v,
            "{what}: var[{j}] = {v} vs {} (mcse {se_v})",
            var[j]
        );
    }
}

const MU: [f64; 3] = [1.0, -2.0, 0.5];
const SD: [f64; 3] = [1.0, 0.5, 3.0];

fn var() -> Vec<f64> {
    SD.iter().map(|s| s * s).collect()
}

#[test]
fn hmc_with_window_adaptation_samples_a_gaussian() {
    let t = gaussian_target(&MU, &SD);
    let k = Arc::new(Hmc {
        num_integration_steps: 10,
    });
    let chunk = build_chunk(3, &[plan(k, t, 500, 4000, true)]).unwrap();
    let (draws, diag, state) = run_chain(&chunk, Exec::Clif, 7, 0, &[0.0; 3], 1.0, 1000);
    assert_moments(&draws, &MU, &var(), 4.0, "hmc");
    // Adapted inverse mass ≈ the variances (within 35 %: 200-draw windows).
    let imm = &state[chunk.models[0].inverse_mass..][..3];
    for (a, v) in imm.iter().zip(var()) {
        assert!((a / v - 1.0).abs() < 0.35, "imm {imm:?}");
    }
    let acc: f64 = diag.chunks(3).map(|r| r[1]).sum::<f64>() / 4000.0;
    assert!((0.65..0.95).contains(&acc), "mean acceptance {acc}");
    assert_eq!(diag.chunks(3).filter(|r| r[0] != 0.0).count(), 0);
}

#[test]
fn mala_samples_a_gaussian() {
    let t = gaussian_target(&MU, &SD);
    let chunk = build_chunk(3, &[plan(Arc::new(Mala), t, 200, 20000, false)]).unwrap();
    let (draws, diag, _) = run_chain(&chunk, Exec::Clif, 3, 1, &[0.0; 3], 0.2, 5000);
    assert_moments(&draws, &MU, &var(), 4.0, "mala");
    let acc: f64 = diag.iter().sum::<f64>() / diag.len() as f64;
    assert!(acc > 0.3 && acc < 1.0);
}

/// SGLD on a Gaussian is a discretised Ornstein–Uhlenbeck process whose
/// stationary law is known exactly: mean μ, variance σ² / (1 − ε / (2σ²)).
#[test]
fn sgld_matches_its_exact_stationary_law() {
    let t = gaussian_target(&MU, &SD);
    let eps = 0.05;
    let chunk = build_chunk(3, &[plan(Arc::new(Sgld), t, 500, 40000, false)]).unwrap();
    let (draws, diag, _) = run_chain(&chunk, Exec::Clif, 5, 0, &MU, eps, 10000);
    // One `is_divergent` per draw, none set at a stable step size.
    assert_eq!(diag.len(), 40000);
    assert!(diag.iter().all(|d| *d == 0.0));
    let v: Vec<f64> = SD
        .iter()
        .map(|s| s * s / (1.0 - eps / (2.0 * s * s)))
        .collect();
    assert_moments(&draws, &MU, &v, 4.0, "sgld");
}

/// SGHMC with strong friction and a small step: the mean is exact and the
/// variance within discretisation error (5 %) plus 4 MCSE.
#[test]
fn sghmc_samples_a_gaussian_approximately() {
    let mu = [1.0, -2.0];
    let sd = [1.0, 0.5];
    let t = gaussian_target(&mu, &sd);
    let k = Arc::new(Sghmc {
        num_integration_steps: 10,
        alpha: 2.0,
        beta: 0.0,
    });
    let chunk = build_chunk(2, &[plan(k, t, 200, 20000, false)]).unwrap();
    let (draws, _, _) = run_chain(&chunk, Exec::Clif, 11, 0, &mu, 0.05, 10000);
    for j in 0..2 {
        let (m, v, se_m, se_v) = moments(&draws, 2, j);
        let var = sd[j] * sd[j];
        assert!((m - mu[j]).abs() <= 4.0 * se_m, "mean {m}");
        assert!(
            (v - var).abs() <= 4.0 * se_v + 0.05 * var,
            "var {v} vs {var}"
        );
    }
}

/// Same seed ⇒ same draws: interpreter and Cranelift, any chunking.
#[test]
fn draws_do_not_depend_on_backend_or_chunking() {
    let t = gaussian_target(&MU, &SD);
    let k = Arc::new(Hmc {
        num_integration_steps: 5,
    });
    let chunk = build_chunk(3, &[plan(k, t, 60, 40, true)]).unwrap();
    let a = run_chain(&chunk, Exec::Interp, 9, 2, &[0.0; 3], 1.0, 100);
    let b = run_chain(&chunk, Exec::Clif, 9, 2, &[0.0; 3], 1.0, 7);
    let c = run_chain(&chunk, Exec::Clif, 9, 2, &[0.0; 3], 1.0, 1);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(b.0, c.0);
    let other_chain = run_chain(&chunk, Exec::Clif, 9, 3, &[0.0; 3], 1.0, 100);
    assert_ne!(a.0, other_chain.0);
}

/// Every built-in kernel, in a two-model Gibbs sweep with thinning, runs
/// on the bounds-checking interpreter (so its chunk function indexes only
/// what it allocated: the runtime compiles built-in kernels without bounds
/// checks) and equals Cranelift bit for bit.
#[test]
fn every_builtin_kernel_stays_in_bounds_and_matches_the_interpreter() {
    use super::kernels::Nuts;
    let kernels: Vec<(Arc<dyn Kernel>, bool)> = vec![
        (Arc::new(Nuts::default()), true),
        (
            Arc::new(Hmc {
                num_integration_steps: 3,
            }),
            true,
        ),
        (Arc::new(Mala), false),
        (Arc::new(Sgld), false),
        (Arc::new(Sghmc::default()), false),
    ];
    for (k, adapt) in kernels {
        let t = gaussian_target(&MU, &SD);
        let mut a = plan(k.clone(), t.clone(), 25, 4, adapt);
        a.len = 2;
        a.thin = 3;
        let mut b = plan(k.clone(), t, 10, 6, adapt);
        b.offset = 2;
        b.len = 1;
        let chunk = build_chunk(3, &[a, b]).unwrap();
        let i = run_chain(&chunk, Exec::Interp, 4, 1, &[0.5; 3], 0.1, 9);
        let c = run_chain(&chunk, Exec::Clif, 4, 1, &[0.5; 3], 0.1, 40);
        assert_eq!(i.0, c.0, "{}", k.name());
        assert_eq!(i.1, c.1, "{}", k.name());
        assert_eq!(i.2, c.2, "{}", k.name());
        assert_eq!(chunk.sweeps, 37);
        assert!(
            i.0.iter().all(|x| x.is_finite() && *x != 0.0),
            "{}",
            k.name()
        );
    }
}

/// Counter-layout limits are errors: more models than the counter's model
/// field holds, and SGHMC steps whose draws overflow the per-step field.
#[test]
fn draw_counter_limits_are_errors() {
    let t = gaussian_target(&[0.0], &[1.0]);
    let many: Vec<ModelPlan> = (0..super::MAX_MODELS + 1)
        .map(|_| plan(Arc::new(Sgld), t.clone(), 1, 1, false))
        .collect();
    let err = build_chunk(1, &many).unwrap_err();
    assert!(err.to_string().contains("at most 256"), "{err}");
    let k = Arc::new(Sghmc {
        num_integration_steps: 1 << 32,
        ..Sghmc::default()
    });
    let err = build_chunk(1, &[plan(k, t, 1, 1, false)]).unwrap_err();
    assert!(err.to_string().contains("2^32"), "{err}");
}

/// An optimiser of `−log N(MU, SD)` (so its loss gradient is known in
/// closed form) for `sweeps` steps, as a chunk with no draws.
fn optimiser_chunk(opt: Optimizer, sweeps: usize) -> Chunk {
    let t = gaussian_target(&MU, &SD);
    let mut p = plan(Arc::new(opt), t, sweeps, 0, false);
    p.name = "opt".into();
    build_chunk(3, &[p]).unwrap()
}

/// Adam and SGD (with and without clipping) in kernel IR equal the host
/// reference [`HostOptimizer`] bit for bit for 100 steps, on the
/// interpreter and on Cranelift, in one chunk or many.
#[test]
fn optimisers_equal_the_host_reference_bit_for_bit() {
    let mut adam_clipped = Optimizer::adam(0.05);
    adam_clipped.clip_norm = Some(0.5);
    let mut sgd_clipped = Optimizer::sgd(0.1);
    sgd_clipped.clip_norm = Some(1.0);
    for opt in [
        Optimizer::adam(0.05),
        adam_clipped,
        Optimizer::sgd(0.1),
        sgd_clipped,
    ] {
        let chunk = optimiser_chunk(opt.clone(), 100);
        assert_eq!(chunk.draws_len, 0);
        let start = [3.0, 1.0, -4.0];
        let mut host = HostOptimizer::new(opt.clone(), 3);
        let mut x = start;
        for _ in 0..100 {
            // ∇ log p of the Gaussian target, as the lowered kernel computes
            // it: −(x − μ) · prec.
            let g: Vec<f64> = (0..3)
                .map(|i| -((x[i] - MU[i]) * (1.0 / (SD[i] * SD[i]))))
                .collect();
            host.step(&mut x, &g);
        }
        for (exec, chunk_len) in [(Exec::Interp, 100), (Exec::Clif, 7)] {
            let (_, _, state) = run_chain(&chunk, exec, 1, 0, &start, 1.0, chunk_len);
            let got = &state[chunk.theta..chunk.theta + 3];
            for i in 0..3 {
                assert_eq!(
                    got[i].to_bits(),
                    x[i].to_bits(),
                    "{opt:?} {exec:?}: entry {i}: {} vs host {}",
                    got[i],
                    x[i]
                );
            }
        }
        // And the optimiser makes progress towards the mode.
        let d0: f64 = start.iter().zip(MU).map(|(a, m)| (a - m).abs()).sum();
        let d1: f64 = x.iter().zip(MU).map(|(a, m)| (a - m).abs()).sum();
        assert!(d1 < 0.5 * d0, "{opt:?}: {d0} -> {d1}");
    }
}
