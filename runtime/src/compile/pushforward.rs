//! Pushforwards: an expression of some parameter leaves compiled to a
//! function of their values, for chain-aware evaluation and trackers.

use crux_compiler::backend::clif::{self, ClifOptions};
use crux_compiler::backend::Executable;
use crux_compiler::lower::lower_values;
use crux_compiler::pipeline::CompileError;
use crux_ir::kernel::Buffer;

use crate::compile::compiled::run_error;
use crate::compile::problem::Problem;
use crate::compile::trace::Tracer;
use crate::error::{Error, Result};
use crate::model::expr::Expr;
use crate::model::param::Param;

/// An expression of some parameter leaves compiled to a kernel that maps
/// their values to the expression's value (staged, optimised, lowered,
/// Cranelift): evaluating it at many draws costs one call each.
pub(crate) struct Pushforward {
    program: clif::ClifKernel,
    bufs: Vec<Buffer>,
    /// Offset of each leaf (in the order given to `compile`) in θ.
    offsets: Vec<usize>,
    /// Shape of the value.
    pub shape: Vec<usize>,
}

impl Pushforward {
    /// Compiles `e` as a function of `leaves`' values (every other model
    /// at its current value).
    pub fn compile(crux: &Problem, e: &Expr, leaves: &[Param]) -> Result<Pushforward> {
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
        let program = clif::compile(&lowered.function, &ClifOptions::default())
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
            program,
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
        self.program
            .call(&[], &mut self.bufs)
            .map_err(|err| run_error("pushforward", err))?;
        Ok(match &self.bufs[1] {
            Buffer::F64(o) => o,
            _ => &[],
        })
    }
}
