//! Verification between passes (DESIGN §4: the verifier runs after every
//! pass in debug builds and tests).
//!
//! Each pass's output goes through the IR's verifier
//! ([`crux_ir::graph::verify()`] or [`crux_ir::kernel::verify()`]). A failure
//! is an internal compiler error, reported as a [`VerifyError`] naming the
//! pass, so a bug shows up at the pass that introduced it rather than in a
//! later pass or a backend.

use crux_ir::graph::{Graph, GraphError};
use crux_ir::kernel::{Function, KernelError};

/// Whether [`graph_after`] and [`kernel_after`] check (debug builds and
/// tests; release builds skip the checks).
pub const ENABLED: bool = cfg!(debug_assertions);

/// The verifier's complaint about a graph or a kernel.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvalidIr {
    /// A malformed graph.
    #[error(transparent)]
    Graph(GraphError),
    /// A malformed kernel function.
    #[error(transparent)]
    Kernel(KernelError),
}

/// A pass produced IR that does not verify: a bug in that pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("internal compiler error: the IR after pass `{pass}` does not verify: {error}")]
pub struct VerifyError {
    /// The pass (`ad`, `stage`, `optimise`, `lower`, `inline`, ...).
    pub pass: &'static str,
    /// What is wrong.
    pub error: InvalidIr,
}

/// Verifies `graph`, the output of `pass`, always.
pub fn check_graph(pass: &'static str, graph: &Graph) -> Result<(), VerifyError> {
    crux_ir::graph::verify(graph).map_err(|e| VerifyError {
        pass,
        error: InvalidIr::Graph(e),
    })
}

/// Verifies `function`, the output of `pass`, always.
pub fn check_kernel(pass: &'static str, function: &Function) -> Result<(), VerifyError> {
    crux_ir::kernel::verify(function).map_err(|e| VerifyError {
        pass,
        error: InvalidIr::Kernel(e),
    })
}

/// [`check_graph`] when [`ENABLED`].
pub fn graph_after(pass: &'static str, graph: &Graph) -> Result<(), VerifyError> {
    if ENABLED {
        check_graph(pass, graph)
    } else {
        Ok(())
    }
}

/// [`check_kernel`] when [`ENABLED`].
pub fn kernel_after(pass: &'static str, function: &Function) -> Result<(), VerifyError> {
    if ENABLED {
        check_kernel(pass, function)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crux_ir::graph::DType;
    use crux_ir::kernel::{Builder, Ty};

    /// A broken graph is reported with the pass's name.
    #[test]
    fn broken_graph_names_the_pass() {
        let mut g = Graph::new();
        let p = g.add_param("theta", DType::F64, [2]);
        let t = g.param(p).expect("slot just declared");
        let s = g.sum_all(t).expect("sum of a vector");
        g.set_output("logp", s);
        check_graph("ad", &g).expect("a well-formed graph verifies");
        // Break it: an output referring to a node that does not exist.
        let mut broken = g.clone();
        broken.set_output("grad.p0", crux_ir::graph::NodeId(99));
        let err = check_graph("stage", &broken).expect_err("a mistyped node is caught");
        assert_eq!(err.pass, "stage");
        assert!(err.to_string().contains("pass `stage`"), "{err}");
        assert!(matches!(err.error, InvalidIr::Graph(_)));
    }

    /// A broken kernel is reported with the pass's name.
    #[test]
    fn broken_kernel_names_the_pass() {
        let mut b = Builder::new("k");
        let x = b.param("x", Ty::F64);
        let y = b.add(x, x);
        let mut f = b.finish(&[y]).expect("a well-formed kernel");
        check_kernel("lower", &f).expect("a well-formed kernel verifies");
        f.body.yields = vec![crux_ir::kernel::Value(99)];
        let err = check_kernel("inline", &f).expect_err("an undefined value is caught");
        assert_eq!(err.pass, "inline");
        assert!(err.to_string().contains("pass `inline`"), "{err}");
        assert!(matches!(err.error, InvalidIr::Kernel(_)));
    }
}
