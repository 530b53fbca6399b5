//! Chain-aware evaluation: an expression that depends on a sampled model
//! is pushed forward through every draw, `(K, N, *point_shape)`, by a
//! compiled kernel (the expression lowered once, called per draw).

use std::collections::HashSet;

use crux_compiler::backend::clif::{self, ClifOptions};
use crux_compiler::backend::Executable;
use crux_compiler::lower::lower_values;
use crux_compiler::pipeline::CompileError;
use crux_ir::kernel::Buffer;
use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::expr::{Expr, Kind};
use crate::param::Param;
use crate::problem::Crux;
use crate::trace::Tracer;

/// Which values [`Crux::eval_samples`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Samples {
    /// Per expression: the chain if it depends on a sampled model, else
    /// the point value.
    #[default]
    Auto,
    /// Every expression over the chain; an error if none depends on a
    /// sampled model.
    Chain,
    /// The current values (after a solve: chain 0's last draw).
    Point,
}

/// Sampled leaves an expression reads, in leaf order.
fn sampled_leaves(e: &Expr) -> Vec<Param> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for n in Expr::post_order(&[e]) {
        if let Kind::Leaf(p) = n.kind() {
            if p.cell().posterior().is_some() && seen.insert(p.leaf_id()) {
                out.push(p.clone());
            }
        }
    }
    out.sort_by_key(Param::leaf_id);
    out
}

impl Crux {
    /// Evaluates expressions chain-aware (see [`Samples`]): a chain result
    /// has shape `(K, N, *point_shape)`, a point result the point shape.
    pub fn eval_samples(&self, exprs: &[&Expr], samples: Samples) -> Result<Vec<ArrayD<f64>>> {
        let deps: Vec<Vec<Param>> = exprs.iter().map(|e| sampled_leaves(e)).collect();
        if samples == Samples::Chain && deps.iter().all(Vec::is_empty) {
            return Err(Error::Samples(
                "samples=Chain was requested but no model in the given expression(s) carries posterior samples: run `solve` with a `.bayesian(..)` model the expressions use, or use Samples::Auto / Samples::Point".into(),
            ));
        }
        exprs
            .iter()
            .zip(&deps)
            .map(|(e, d)| match samples {
                Samples::Point => self.eval(e),
                Samples::Auto if d.is_empty() => self.eval(e),
                _ => self.eval_chain(e, d),
            })
            .collect()
    }

    fn eval_chain(&self, e: &Expr, leaves: &[Param]) -> Result<ArrayD<f64>> {
        e.check()?;
        // Every leaf's draws, (K, N, len) flattened.
        let mut chains = Vec::new();
        let mut kn: Option<(usize, usize)> = None;
        for p in leaves {
            let post = p.cell().posterior().expect("selected for having one");
            let l = post
                .leaves
                .iter()
                .find(|l| l.name == p.name())
                .expect("posterior has every leaf of its model");
            let s = l.samples.shape();
            if kn.is_some_and(|x| x != (s[0], s[1])) {
                return Err(Error::Samples(format!(
                    "the sampled models of `{e}` have different chain shapes ({:?} and {:?}); sample them in one solve with the same num_chains and keep",
                    kn.unwrap_or_default(),
                    (s[0], s[1])
                )));
            }
            kn = Some((s[0], s[1]));
            chains.push(
                l.samples
                    .as_standard_layout()
                    .iter()
                    .copied()
                    .collect::<Vec<f64>>(),
            );
        }
        let (k, n) = kn.unwrap_or((0, 0));
        let mut pf = Pushforward::compile(self, e, leaves)?;
        let mut values = Vec::with_capacity(k * n * pf.len());
        for draw in 0..k * n {
            let at: Vec<&[f64]> = leaves
                .iter()
                .zip(&chains)
                .map(|(p, c)| &c[draw * p.len()..(draw + 1) * p.len()])
                .collect();
            values.extend_from_slice(pf.eval(&at)?);
        }
        let point_shape = pf.shape.clone();
        let mut shape = vec![k, n];
        shape.extend(point_shape);
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), values).expect("k · n · point entries"))
    }
}

/// An expression of some parameter leaves compiled to a kernel that maps
/// their values to the expression's value (staged, optimised, lowered,
/// Cranelift): evaluating it at many draws costs one call each.
pub(crate) struct Pushforward {
    kernel: clif::ClifKernel,
    bufs: Vec<Buffer>,
    /// Offset of each leaf (in the order given to `compile`) in θ.
    offsets: Vec<usize>,
    /// Shape of the value.
    pub shape: Vec<usize>,
}

impl Pushforward {
    /// Compiles `e` as a function of `leaves`' values (every other model
    /// at its current value).
    pub fn compile(crux: &Crux, e: &Expr, leaves: &[Param]) -> Result<Pushforward> {
        let mut t = Tracer::new(crux.seed(), crux.noise().clone());
        // Slots by id, not by name: leaves of different models may share one.
        let param_slots: Vec<usize> = leaves.iter().map(|p| t.add_slot(p).index()).collect();
        let out = t.trace(e)?;
        t.graph.set_output("value", out);
        let shape = t.graph.node(out).shape.0.clone();
        // Staged (parameter-independent parts computed once) and optimised,
        // as the log-density is.
        let (graph, _) =
            crux_compiler::pipeline::optimise(&t.graph.compacted()?, &Default::default())?;
        let (lowered, slots) = lower_values(&graph, "pushforward")
            .map_err(|err| Error::Compile(CompileError::Lower(err)))?;
        let kernel = clif::compile(&lowered.function, &ClifOptions::default())
            .map_err(|err| Error::Compile(CompileError::Backend(err)))?;
        // Compaction keeps every parameter slot, in order.
        let offsets = param_slots
            .iter()
            .map(|&i| lowered.layout.param_offsets[i])
            .collect();
        let mut bufs = vec![
            Buffer::F64(vec![0.0; lowered.layout.dim]),
            Buffer::F64(vec![0.0; slots[0].shape.numel()]),
            Buffer::F64(vec![0.0; lowered.layout.scratch]),
        ];
        bufs.extend(lowered.layout.data.iter().map(|d| Buffer::F64(d.clone())));
        Ok(Pushforward {
            kernel,
            bufs,
            offsets,
            shape,
        })
    }

    /// Entries of the value.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value (row-major) at the leaves' values `at` (one slice per leaf).
    pub fn eval(&mut self, at: &[&[f64]]) -> Result<&[f64]> {
        if let Buffer::F64(theta) = &mut self.bufs[0] {
            for (&off, v) in self.offsets.iter().zip(at) {
                theta[off..off + v.len()].copy_from_slice(v);
            }
        }
        self.kernel
            .call(&[], &mut self.bufs)
            .map_err(|err| Error::Compile(CompileError::Backend(err)))?;
        Ok(match &self.bufs[1] {
            Buffer::F64(o) => o,
            _ => &[],
        })
    }
}
