//! Hessian-vector products of a log-density, compiled: forward mode over
//! the reverse-mode gradient. The differentiated graph (outputs `logp` and
//! `grad.p<i>`) gets one direction parameter `v<i>` per parameter slot;
//! every read of slot `i` is seeded with `v<i>` and the gradient outputs'
//! tangents, `H v`, become the outputs. The result is optimised, lowered
//! and compiled with Cranelift like a pushforward, so `H eᵢ` costs one
//! call (about two gradient evaluations).

use crux_compiler::ad::jvp;
use crux_compiler::backend::clif::{self, ClifKernel, ClifOptions};
use crux_compiler::backend::Executable;
use crux_compiler::lower::lower_values;
use crux_compiler::pipeline::{grad_output_name, CompileError};
use crux_ir::graph::{NodeId, Op};
use crux_ir::kernel::Buffer;
use crux_ir::ParamId;

use crate::compile::compiled::run_error;
use crate::compile::logdensity::LogDensity;
use crate::error::{Error, Result};

/// `v ↦ ∇² log p(θ) v`, compiled.
pub(crate) struct Hvp {
    program: ClifKernel,
    bufs: Vec<Buffer>,
    /// Per parameter slot: its offset in the log-density's θ, the offsets
    /// of its θ and v entries in the lowered function's θ, the offset of
    /// its `H v` entries in `out`, and its length.
    slots: Vec<Slot>,
    dim: usize,
}

impl Hvp {
    /// Compiles the Hessian-vector product of `ld`.
    pub fn compile(ld: &LogDensity) -> Result<Hvp> {
        let mut g = ld.stage_graph("differentiated")?.clone();
        let n = g.params().len();
        let mut grads = Vec::with_capacity(n);
        for i in 0..n {
            grads.push(g.output(&grad_output_name(i))?);
        }
        // One direction parameter per slot, seeding every read of the slot.
        let mut dirs = Vec::with_capacity(n);
        for i in 0..n {
            let info = g.params()[i].clone();
            let p = g.add_param(format!("v{i}"), info.dtype, info.shape);
            dirs.push(g.param(p)?);
        }
        let mut seeds = Vec::new();
        for id in 0..g.len() {
            let id = NodeId(id as u32);
            if let Op::Param(p) = g.node(id).op {
                if p.index() < n {
                    seeds.push((id, dirs[p.index()]));
                }
            }
        }
        let tangents =
            jvp(&mut g, &grads, &seeds).map_err(|e| Error::Compile(CompileError::Ad(e)))?;
        g.clear_outputs();
        for (i, t) in tangents.into_iter().enumerate() {
            // A gradient that does not depend on θ: the Hessian block is 0.
            let t = match t {
                Some(t) => t,
                None => g.constant_like(0.0, grads[i])?,
            };
            g.set_output(format!("hvp{i}"), t);
        }
        let (graph, _) = crux_compiler::pipeline::optimise(&g.compacted()?, &Default::default())?;
        let (lowered, outs) =
            lower_values(&graph, "hvp").map_err(|err| Error::Compile(CompileError::Lower(err)))?;
        let program = clif::compile(&lowered.function, &ClifOptions::default())
            .map_err(|err| Error::Compile(CompileError::Backend(err)))?;
        let po = &lowered.layout.param_offsets;
        let slots = ld
            .layout()
            .iter()
            .enumerate()
            .map(|(i, s)| Slot {
                at: s.offset,
                theta: po[i],
                dir: po[ParamId((n + i) as u32).index()],
                out: outs[i].offset,
                len: s.len,
            })
            .collect();
        let out_len = outs.iter().map(|o| o.shape.numel()).sum();
        let mut bufs = vec![
            Buffer::F64(vec![0.0; lowered.layout.dim]),
            Buffer::F64(vec![0.0; out_len]),
            Buffer::F64(vec![0.0; lowered.layout.scratch]),
        ];
        bufs.extend(lowered.layout.data.iter().map(|d| Buffer::F64(d.clone())));
        Ok(Hvp {
            program,
            bufs,
            slots,
            dim: ld.dim(),
        })
    }

    /// Writes `∇² log p(θ) v` into `out` (θ, v and out in the log-density's
    /// layout).
    pub fn eval(&mut self, theta: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        if theta.len() != self.dim || v.len() != self.dim || out.len() != self.dim {
            return Err(Error::PositionLength {
                expected: self.dim,
                got: theta.len().min(v.len()).min(out.len()),
            });
        }
        if let Buffer::F64(x) = &mut self.bufs[0] {
            for s in &self.slots {
                x[s.theta..s.theta + s.len].copy_from_slice(&theta[s.at..s.at + s.len]);
                x[s.dir..s.dir + s.len].copy_from_slice(&v[s.at..s.at + s.len]);
            }
        }
        self.program
            .call(&[], &mut self.bufs)
            .map_err(|err| run_error("hessian-vector product", err))?;
        if let Buffer::F64(o) = &self.bufs[1] {
            for s in &self.slots {
                out[s.at..s.at + s.len].copy_from_slice(&o[s.out..s.out + s.len]);
            }
        }
        Ok(())
    }
}

/// Where one parameter slot's entries are (see [`Hvp`]'s `slots`).
struct Slot {
    at: usize,
    theta: usize,
    dir: usize,
    out: usize,
    len: usize,
}

#[cfg(test)]
mod tests {
    use super::Hvp;
    use crate::compile::problem::Problem as Crux;
    use crate::compile::Backend;
    use crate::{Domain, Param, Prior};

    /// `H v` of a nonlinear log-density (`a · sin(b x)` against a cosine,
    /// a vector `b`, a Gaussian and a Laplace prior) against central
    /// differences of the compiled gradient, for unit and mixed directions;
    /// and the Hessian's symmetry.
    #[test]
    fn hessian_vector_products_match_differences_of_the_gradient() {
        let d = Domain::line(0.0, 1.0, 0.1).unwrap();
        let x = d.variable("interior").unwrap();
        let a = Param::new("a", [1]);
        let b = Param::new("b", [2]);
        a.set_values(&[0.7]).unwrap();
        b.set_values(&[1.3, -0.4]).unwrap();
        let r = &a * (b.at(0) * &x).sin() + b.at(1) * &x * &x - (2.0 * &x).cos();
        let p = Crux::new([r.mse()]).unwrap();
        let ld = p
            .log_density()
            .sample(&a, Prior::gaussian(1.0))
            .sample(&b, Prior::laplace(0.5))
            .likelihood_scale(50.0)
            .build()
            .unwrap();
        let c = ld.compile(Backend::Cranelift).unwrap();
        let mut ws = c.workspace();
        let mut hvp = Hvp::compile(&ld).unwrap();
        let theta = [0.7, 1.3, -0.4];
        let grad = |ws: &mut crate::Workspace, t: &[f64]| {
            let mut g = vec![0.0; 3];
            c.logp_and_grad(ws, t, &mut g).unwrap();
            g
        };
        let mut cols = Vec::new();
        for v in [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.3, -0.8, 0.5],
        ] {
            let mut hv = vec![0.0; 3];
            hvp.eval(&theta, &v, &mut hv).unwrap();
            let h = 1e-5;
            let plus: Vec<f64> = (0..3).map(|i| theta[i] + h * v[i]).collect();
            let minus: Vec<f64> = (0..3).map(|i| theta[i] - h * v[i]).collect();
            let (gp, gm) = (grad(&mut ws, &plus), grad(&mut ws, &minus));
            for i in 0..3 {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                assert!(
                    (hv[i] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                    "v {v:?}, entry {i}: H v = {}, differences {fd}",
                    hv[i]
                );
            }
            cols.push(hv);
        }
        // Symmetry: (H eⱼ)ᵢ = (H eᵢ)ⱼ.
        for (i, ci) in cols.iter().take(3).enumerate() {
            for (j, cj) in cols.iter().take(3).enumerate() {
                assert!((cj[i] - ci[j]).abs() <= 1e-9 * ci[j].abs().max(1.0));
            }
        }
    }
}
