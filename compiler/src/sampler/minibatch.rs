//! Minibatches of stochastic-gradient kernels: per-point weights drawn
//! before each step.
//!
//! A subsampled constraint `c` with `P_c` points (the leading axis of its
//! residual) enters the log-density as `L_c = mean(w_c ⊙ r_c²)` (or
//! `mean(w_c ⊙ |r_c|)`), `w_c` a runtime input of shape `(P_c, 1, …)`
//! (one weight per point, broadcast over the trailing axes). Before each
//! step of the model the chunk function writes the weights: point `i` is
//! in the batch independently with probability `q = min(1, n / P_c)` and
//! weighs `1 / q` if it is, `0` otherwise. So `E[w_i] = 1`: the
//! log-likelihood and its gradient are unbiased estimates of the full-batch
//! ones, and the batch has `n` points in expectation (Poisson sampling, not
//! a fixed-size subset). This version still evaluates every point (the
//! weights multiply the residuals): it gives the semantics of SG-MCMC, not
//! yet its speed-up.
//!
//! The draws are a pure function of (seed, chain, sweep, model, point):
//! `uniform(seed, stream(Purpose::Minibatch, chain), draw_counter(sweep,
//! model, k))`, `k` the point's index among the model's subsampled
//! constraints in [`Minibatch::inputs`] order. [`Minibatch::weights`] is
//! the host's reference of what the chunk function writes.

use crux_ir::kernel::{Builder, CmpOp, KernelError};
use crux_ir::rng::{self, Purpose, MAX_DRAWS_PER_STEP};

use super::ctx::{Rng, Vector};

/// Prefix of the names of the weight runtime inputs in a log-density's
/// graph (the tracer names constraint `c`'s weights `minibatch.weights.c`).
pub const WEIGHTS_PREFIX: &str = "minibatch.weights.";

/// The weights of one subsampled constraint: a runtime input of the
/// log-density.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightInput {
    /// The runtime input's name in the graph (and in the lowered function's
    /// [`crate::lower::Layout::inputs`]).
    pub name: String,
    /// The constraint's points: the weights' entries.
    pub points: usize,
}

/// How a model's likelihood is subsampled: the batch size and the
/// constraints it applies to (those with more points than the batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Minibatch {
    /// Points per step in expectation, per constraint (`n ≥ 1`).
    pub batch_size: usize,
    /// The subsampled constraints, in draw order (constraint order). A
    /// constraint with at most `batch_size` points is always whole and has
    /// no weights.
    pub inputs: Vec<WeightInput>,
}

impl Minibatch {
    /// The probability `q = min(1, n / P)` that each of `points` points is
    /// in a step's batch.
    pub fn inclusion_probability(&self, points: usize) -> f64 {
        if points <= self.batch_size {
            1.0
        } else {
            self.batch_size as f64 / points as f64
        }
    }

    /// The weight of an included point, `1 / q = P / n` (rounded once).
    pub fn included_weight(&self, points: usize) -> f64 {
        if points <= self.batch_size {
            1.0
        } else {
            points as f64 / self.batch_size as f64
        }
    }

    /// Weights written per step: the points of every input.
    pub fn len(&self) -> usize {
        self.inputs.iter().map(|i| i.points).sum()
    }

    /// Whether no constraint is subsampled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weights the chunk function writes before the step of model
    /// `model` (its index in the Gibbs sweep) at `sweep` of chain `chain`
    /// under `seed`: one vector per input, in [`Minibatch::inputs`] order.
    /// The host's reference: the compiled draws equal it bit for bit.
    pub fn weights(&self, seed: u64, chain: u64, sweep: u64, model: u64) -> Vec<Vec<f64>> {
        let stream = rng::stream(Purpose::Minibatch, chain);
        let mut k = 0u64;
        self.inputs
            .iter()
            .map(|inp| {
                let q = self.inclusion_probability(inp.points);
                let w = self.included_weight(inp.points);
                (0..inp.points)
                    .map(|_| {
                        let u = rng::uniform(seed, stream, rng::draw_counter(sweep, model, k));
                        k += 1;
                        if u < q {
                            w
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Checks that one step's draws fit the counter's per-step field.
    pub(crate) fn check(&self, model: &str) -> Result<(), KernelError> {
        if self.batch_size == 0 {
            return Err(KernelError::Invalid {
                function: "chunk".into(),
                msg: format!("model `{model}`: a batch size of 0 points"),
            });
        }
        if self.len() as u128 >= MAX_DRAWS_PER_STEP as u128 {
            return Err(KernelError::Invalid {
                function: "chunk".into(),
                msg: format!(
                    "model `{model}`: {} subsampled points exceed the 2^32 draws one step may use",
                    self.len()
                ),
            });
        }
        Ok(())
    }

    /// Emits the draws of one step into `slot` (`len()` entries, the inputs
    /// one after the other) with the minibatch stream `rng`.
    pub(crate) fn emit(&self, b: &mut Builder, rng: Rng, slot: Vector) {
        debug_assert_eq!(slot.len, self.len());
        let mut k0 = 0;
        for inp in &self.inputs {
            let part = Vector {
                buf: slot.buf,
                off: slot.off + k0,
                len: inp.points,
            };
            let q = self.inclusion_probability(inp.points);
            let w = self.included_weight(inp.points);
            part.fill(b, |b, i| {
                let base = b.i64(k0 as i64);
                let k = b.add(base, i);
                let u = rng.uniform(b, k);
                let q = b.f64(q);
                let kept = b.cmp(CmpOp::Lt, u, q);
                let w = b.f64(w);
                let zero = b.f64(0.0);
                b.select(kept, w, zero)
            });
            k0 += inp.points;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crux_ir::graph::{DType, Graph, Tensor};
    use crux_ir::kernel::Buffer;

    use super::*;
    use crate::lower::{lower_log_density, Lowered};
    use crate::pipeline::{compile_log_density, LOGP_OUTPUT};
    use crate::sampler::kernels::Sgld;
    use crate::sampler::tests::{plan, Exec};
    use crate::sampler::{build_chunk, chunk_args, ChunkBuffer};

    const YS: [f64; 10] = [0.5, -1.0, 2.0, 0.25, 3.0, -0.75, 1.5, 0.0, -2.0, 1.0];
    const NAME: &str = "minibatch.weights.0";

    /// `log p(θ) = −½ Σ_i w_i (θ − y_i)²`, `w` a runtime input of ones.
    fn weighted_target(name: &str) -> Lowered {
        let n = YS.len();
        let mut g = Graph::new();
        let p = g.add_param("theta", DType::F64, [1]);
        let y = g.add_data("y", Tensor::f64([n], YS.to_vec()).unwrap());
        let w = g.add_runtime_data(name, Tensor::f64([n], vec![1.0; n]).unwrap());
        let t = g.param(p).unwrap();
        let t = g.broadcast(t, [n]).unwrap();
        let y = g.data_node(y).unwrap();
        let w = g.data_node(w).unwrap();
        let r = g.sub(t, y).unwrap();
        let r2 = g.mul(r, r).unwrap();
        let wr = g.mul(w, r2).unwrap();
        let s = g.sum_all(wr).unwrap();
        let lp = g.scale(s, -0.5).unwrap();
        g.set_output(LOGP_OUTPUT, lp);
        let c = compile_log_density(&g, &crate::optimise::EggLimits::default()).unwrap();
        let fin = c.final_graph();
        assert_eq!(
            fin.data().iter().filter(|d| d.runtime).count(),
            1,
            "the weights survive staging and the optimiser as a runtime input"
        );
        lower_log_density(fin, "weighted").unwrap()
    }

    fn minibatch(batch_size: usize) -> Minibatch {
        Minibatch {
            batch_size,
            inputs: vec![WeightInput {
                name: NAME.into(),
                points: YS.len(),
            }],
        }
    }

    /// Runs sweeps `0..sweeps` of one chain in one call; returns the
    /// buffers.
    fn run(chunk: &crate::sampler::Chunk, exec: Exec, sweeps: usize, theta0: f64) -> Vec<Buffer> {
        let mut state = vec![0.0; chunk.state.len];
        state[chunk.theta] = theta0;
        state[chunk.models[0].step_size] = 0.01;
        let mut bufs = chunk.chain_buffers(state);
        let exe = exec.executable(&chunk.function);
        exe.call(&chunk_args(11, 3, (0, sweeps)), bufs.as_mut_slice())
            .unwrap();
        bufs.into_buffers()
    }

    /// The chunk function writes the host's weights (interpreter and
    /// Cranelift), maps the runtime input to them rather than to a data
    /// buffer, and the SGLD step takes the weighted gradient.
    #[test]
    fn chunk_draws_the_host_weights_and_steps_on_them() {
        let target = weighted_target(NAME);
        assert_eq!(target.layout.inputs.len(), 1);
        assert_eq!(target.layout.inputs[0].name, NAME);
        let mut p = plan(Arc::new(Sgld), target, 0, 1, false);
        let mb = minibatch(3);
        p.minibatch = Some(mb.clone());
        let chunk = build_chunk(1, &[p]).unwrap();
        assert_eq!(chunk.data.len(), 1, "only `y` is a data buffer");
        let off = chunk.models[0].weights.expect("a weights slot");
        let theta0 = 0.3;
        let mut seen_zero = false;
        for exec in [Exec::Interp, Exec::Clif] {
            let bufs = run(&chunk, exec, 1, theta0);
            let work = bufs[ChunkBuffer::Work.index()].as_f64().unwrap();
            let w = &work[off..off + YS.len()];
            let host = mb.weights(11, 3, 0, 0);
            assert_eq!(w, &host[0][..], "{exec:?}");
            assert!(w.iter().all(|&x| x == 0.0 || x == 10.0 / 3.0));
            seen_zero |= w.contains(&0.0);
            // θ1 = θ0 + ε g + √(2ε) z, g = −Σ w_i (θ0 − y_i).
            let g: f64 = -w.iter().zip(YS).map(|(w, y)| w * (theta0 - y)).sum::<f64>();
            let z = rng::normal(
                11,
                rng::stream(Purpose::Sampler, 3),
                rng::draw_counter(0, 0, 0),
            );
            let expect = theta0 + 0.01 * g + (0.02f64).sqrt() * z;
            let draws = bufs[ChunkBuffer::Draws.index()].as_f64().unwrap();
            assert!(
                (draws[0] - expect).abs() < 1e-12,
                "{} vs {expect}",
                draws[0]
            );
        }
        assert!(seen_zero, "some point is left out of a batch of 3 of 10");
        // Later sweeps: the weights of the last step, the same on both.
        let a = run(&chunk, Exec::Interp, 7, theta0);
        let b = run(&chunk, Exec::Clif, 7, theta0);
        assert_eq!(a, b);
        let work = a[ChunkBuffer::Work.index()].as_f64().unwrap();
        assert_eq!(&work[off..off + YS.len()], &mb.weights(11, 3, 6, 0)[0][..]);
        // The GPU kernel: PTX that ptxas accepts (when it is installed).
        let opts = crate::backend::ptx::PtxOptions {
            thread_param: Some(1),
            ..Default::default()
        };
        let ptx = crate::backend::ptx::emit(&chunk.function, &opts).unwrap();
        crate::backend::ptxas::check(&ptx, "sm_90").unwrap();
    }

    /// Weights average to one over steps (E[w] = 1), points are included
    /// with probability n / P, and chains, sweeps and models draw apart.
    #[test]
    fn host_weights_are_unbiased() {
        let mb = minibatch(3);
        let steps = 20_000;
        let mut sum = [0.0; 10];
        let mut included = 0usize;
        for s in 0..steps {
            let w = mb.weights(5, 0, s, 1);
            for (a, x) in sum.iter_mut().zip(&w[0]) {
                *a += x;
            }
            included += w[0].iter().filter(|&&x| x > 0.0).count();
        }
        // Var(w) = 1/q − 1 = 7/3: 4 standard errors.
        let se = (7.0f64 / 3.0 / steps as f64).sqrt();
        for a in sum {
            assert!((a / steps as f64 - 1.0).abs() < 4.0 * se, "{a}");
        }
        let per_step = included as f64 / steps as f64;
        assert!((per_step - 3.0).abs() < 0.05, "{per_step} points per step");
        assert_ne!(mb.weights(5, 0, 0, 0), mb.weights(5, 1, 0, 0));
        assert_ne!(mb.weights(5, 0, 0, 0), mb.weights(5, 0, 1, 0));
        assert_ne!(mb.weights(5, 0, 0, 0), mb.weights(5, 0, 0, 1));
        assert_eq!(minibatch(10).inclusion_probability(10), 1.0);
        assert_eq!(minibatch(4).included_weight(10), 2.5);
    }

    /// A runtime input the plan does not know is refused, by name.
    #[test]
    fn unknown_runtime_inputs_are_refused() {
        let p = plan(Arc::new(Sgld), weighted_target(NAME), 0, 1, false);
        let err = build_chunk(1, &[p]).unwrap_err().to_string();
        assert!(err.contains("has no minibatch"), "{err}");
        let mut p = plan(Arc::new(Sgld), weighted_target("other"), 0, 1, false);
        p.minibatch = Some(minibatch(3));
        let err = build_chunk(1, &[p]).unwrap_err().to_string();
        assert!(err.contains("not one of its minibatch weights"), "{err}");
        let mut p = plan(Arc::new(Sgld), weighted_target(NAME), 0, 1, false);
        p.minibatch = Some(Minibatch {
            batch_size: 0,
            inputs: minibatch(3).inputs,
        });
        assert!(build_chunk(1, &[p]).is_err());
    }
}
