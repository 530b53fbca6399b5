//! The front half of the compiler as one pipeline, with statistics per stage.
//!
//! `traced` (the log-density as built from the user's expressions) →
//! `differentiated` (log-density and its gradient, reverse mode) → `staged`
//! (parameter-independent subgraphs evaluated once) → `optimised` (e-graph
//! rewrites of elementwise regions, CSE, DCE). The last stage is what
//! lowering receives. In debug builds and tests each stage's graph goes
//! through the graph verifier ([`crate::verify`]).

use crux_ir::graph::{DType, Graph, GraphError, NodeId, Shape};

use crate::ad::{self, AdError};
use crate::optimise::{self, EggLimits, EggReport, OptimiseError};
use crate::stage::{self, StageReport};
use crate::verify::{self, VerifyError};

/// Errors of the pipeline. These are compiler bugs or resource limits, not
/// user errors: the DSL validates user input before building graphs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CompileError {
    /// A graph operation failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Differentiation failed.
    #[error(transparent)]
    Ad(#[from] AdError),
    /// The e-graph optimiser failed.
    #[error(transparent)]
    Optimise(#[from] OptimiseError),
    /// Lowering to the kernel IR failed.
    #[error(transparent)]
    Lower(#[from] crate::lower::LowerError),
    /// A backend failed to compile or run a kernel.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The graph to differentiate has no scalar output of that name.
    #[error("the graph has no scalar output `{0}` to differentiate")]
    NoScalarOutput(String),
    /// A pass produced IR that does not verify (an internal compiler
    /// error; checked in debug builds and tests, see [`crate::verify`]).
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Size and cost of one stage's graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageStats {
    /// Stage name (`traced`, `differentiated`, `staged`, `optimised`).
    pub stage: &'static str,
    /// Nodes the outputs need.
    pub nodes: usize,
    /// Arithmetic operations per evaluation.
    pub flops: u64,
    /// Transcendental evaluations per evaluation.
    pub transcendentals: u64,
}

/// One stage: its name, graph and statistics.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Statistics.
    pub stats: StageStats,
    /// The graph after this stage.
    pub graph: Graph,
}

impl Stage {
    fn new(stage: &'static str, graph: Graph) -> Stage {
        let c = graph.cost();
        Stage {
            stats: StageStats {
                stage,
                nodes: graph.live_nodes(),
                flops: c.flops,
                transcendentals: c.transcendentals,
            },
            graph,
        }
    }
}

/// What the optimising passes did.
#[derive(Clone, Debug, Default)]
pub struct OptimiseReport {
    /// Staging.
    pub stage: StageReport,
    /// The e-graph pass.
    pub egg: EggReport,
}

/// Stages a graph, then optimises it (e-graph rewrites, CSE, DCE). The
/// result computes the same outputs from the same parameters.
pub fn optimise(
    graph: &Graph,
    limits: &EggLimits,
) -> Result<(Graph, OptimiseReport), CompileError> {
    let (_, opt, report) = stage_and_optimise(graph, limits)?;
    Ok((opt, report))
}

/// The staged graph, the optimised (and compacted) graph, and the report.
fn stage_and_optimise(
    graph: &Graph,
    limits: &EggLimits,
) -> Result<(Graph, Graph, OptimiseReport), CompileError> {
    let (staged, stage) = stage::stage(graph)?;
    verify::graph_after("stage", &staged)?;
    let (opt, egg) = optimise::optimise_elementwise(&staged, limits)?;
    let opt = opt.compacted()?;
    verify::graph_after("optimise", &opt)?;
    Ok((staged, opt, OptimiseReport { stage, egg }))
}

/// Output name of the log-density in a traced graph and in the graphs the
/// pipeline hands to lowering (a scalar).
pub const LOGP_OUTPUT: &str = "logp";

/// Output name of the gradient with respect to parameter slot `i`.
pub fn grad_output_name(i: usize) -> String {
    format!("grad.p{i}")
}

/// An optimised log-density (graphs, not code yet): every stage of the pipeline, the last one
/// computing `logp` and `grad.p<i>` for every parameter slot.
#[derive(Clone, Debug)]
pub struct OptimisedLogDensity {
    /// Stages in pipeline order.
    pub stages: Vec<Stage>,
    /// What the optimising passes did.
    pub report: OptimiseReport,
}

impl OptimisedLogDensity {
    /// The graph handed to lowering.
    pub fn final_graph(&self) -> &Graph {
        &self
            .stages
            .last()
            .expect("a OptimisedLogDensity has stages: compile_log_density records four")
            .graph
    }

    /// The stage with this name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.stats.stage == name)
    }
}

/// Runs the pipeline on a traced log-density: `traced` must have a scalar
/// float output `logp`; every parameter slot is differentiated.
pub fn compile_log_density(
    traced: &Graph,
    limits: &EggLimits,
) -> Result<OptimisedLogDensity, CompileError> {
    let logp = traced
        .output(LOGP_OUTPUT)
        .map_err(|_| CompileError::NoScalarOutput(LOGP_OUTPUT.into()))?;
    let (dt, sh) = traced.ty(logp);
    if *sh != Shape::scalar() || dt == DType::Bool {
        return Err(CompileError::NoScalarOutput(LOGP_OUTPUT.into()));
    }
    let traced_only = {
        let mut g = traced.clone();
        g.clear_outputs();
        g.set_output(LOGP_OUTPUT, logp);
        g.compacted()?
    };
    verify::graph_after("trace", &traced_only)?;
    let mut diff = traced_only.clone();
    let logp = diff.output(LOGP_OUTPUT)?;
    let mut wrt: Vec<NodeId> = Vec::with_capacity(diff.params().len());
    for i in 0..diff.params().len() {
        wrt.push(diff.param(crux_ir::ParamId(i as u32))?);
    }
    let grads = ad::grad(&mut diff, logp, &wrt)?;
    for (i, g) in grads.into_iter().enumerate() {
        diff.set_output(grad_output_name(i), g);
    }
    let diff = diff.compacted()?;
    verify::graph_after("ad", &diff)?;
    let (staged, opt, report) = stage_and_optimise(&diff, limits)?;
    Ok(OptimisedLogDensity {
        stages: vec![
            Stage::new("traced", traced_only),
            Stage::new("differentiated", diff),
            Stage::new("staged", staged),
            Stage::new("optimised", opt),
        ],
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline runs with the verifier between passes, and every
    /// stage's graph verifies.
    #[test]
    fn verified_pipeline_runs() {
        let mut g = Graph::new();
        let p = g.add_param("theta", DType::F64, [3]);
        let t = g.param(p).expect("slot just declared");
        let e = g
            .unary(crux_ir::graph::UnaryOp::Exp, t)
            .expect("exp of a vector");
        let s = g.mul(e, t).expect("same shapes");
        let lp = g.sum_all(s).expect("sum of a vector");
        g.set_output(LOGP_OUTPUT, lp);
        let c = compile_log_density(&g, &EggLimits::default()).expect("compiles");
        let names: Vec<_> = c.stages.iter().map(|s| s.stats.stage).collect();
        assert_eq!(names, ["traced", "differentiated", "staged", "optimised"]);
        for s in &c.stages {
            verify::check_graph(s.stats.stage, &s.graph).expect("each stage verifies");
        }
        assert!(c.final_graph().output(&grad_output_name(0)).is_ok());
    }
}
