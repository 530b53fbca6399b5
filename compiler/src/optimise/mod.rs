//! E-graph optimisation of elementwise regions (DESIGN §3).
//!
//! Reverse-mode AD leaves graphs full of `x * 1`, `0 + x`, `-(-x)`, powers
//! with small constant exponents and unstable compositions such as
//! `log(1 + exp(x))`. [`optimise_elementwise`] cuts the graph into maximal
//! connected regions of elementwise nodes (they all share one shape), runs
//! [egg](https://docs.rs/egg) on each region under explicit limits, extracts
//! the cheapest form of every region root and rebuilds the graph, which
//! also merges duplicates (CSE) and drops dead nodes (DCE).
//!
//! Semantics (checked against the interpreter by the differential tests):
//! a rewrite never changes which elements are NaN, ±inf or ±0 (zeros keep
//! their sign, since `1 / -0 = -inf`), and moves every other value by at
//! most a few ulp, or towards the exact result (the numerically stable
//! forms); `rules.rs` gives the contract of each rule family. Rules whose
//! soundness depends on values (`x - x → 0` needs finite `x`, `x + 0 → x`
//! needs `x ≠ -0`) are guarded by facts the analysis proves, never by the
//! shape of the term. Each region's result is chosen by the cost of the
//! graph that will be built, and is never more expensive than the region
//! was (see [`Extraction`]).
//!
//! Determinism: egg is built with its `deterministic` feature, so with the
//! node and iteration limits the result depends only on the input graph.
//! The time limit is a safety net; a region that hits it may be optimised
//! less on a slower machine (the report says when it happened).

mod egraph;
mod rules;

use std::time::Duration;

use crux_ir::graph::{Cost, Graph, GraphError};
use egg::{Runner, StopReason};

use self::egraph::{extract, find_regions, from_extracted, to_egraph, Ew, EwAnalysis};
use self::rules::EwRewrite;

/// Bounds on the work egg may do on one region. All three are always set
/// on the runner: saturation is not guaranteed (commutativity alone keeps
/// growing some e-graphs), so compile time must be bounded explicitly.
#[derive(Clone, Debug, PartialEq)]
pub struct EggLimits {
    /// Maximum e-nodes in one region's e-graph. A region already larger
    /// than this is only constant-folded.
    pub node_limit: usize,
    /// Maximum rewrite iterations per region.
    pub iter_limit: usize,
    /// Maximum time per region.
    pub time_limit: Duration,
}

impl Default for EggLimits {
    /// Room for regions of a few thousand nodes to saturate (a chain of
    /// 20 000 AD cleanups collapses in well under a second), while a
    /// pathological region costs at most a couple of seconds.
    fn default() -> Self {
        EggLimits {
            node_limit: 50_000,
            iter_limit: 30,
            time_limit: Duration::from_secs(2),
        }
    }
}

/// Why egg stopped on a region. Every variant is a normal outcome: a limit
/// only means the region may not be fully optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionStop {
    /// No rule could add anything: the result is optimal for the rule set
    /// and cost function.
    Saturated,
    /// [`EggLimits::iter_limit`] was reached.
    IterationLimit,
    /// [`EggLimits::node_limit`] was exceeded.
    NodeLimit,
    /// [`EggLimits::time_limit`] was exceeded (results may then vary with
    /// machine speed).
    TimeLimit,
}

/// What happened to one region, for `--inspect` style diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionReport {
    /// Graph nodes in the region.
    pub graph_nodes: usize,
    /// Region nodes read from outside (the terms that were extracted).
    pub roots: usize,
    /// E-nodes when egg stopped.
    pub egraph_nodes: usize,
    /// E-classes when egg stopped.
    pub egraph_classes: usize,
    /// Rewrite iterations run.
    pub iterations: usize,
    /// Why egg stopped.
    pub stop: RegionStop,
    /// How the result was chosen.
    pub extraction: Extraction,
    /// Cost of the region before, under the extraction weights
    /// (transcendental 20, division and square root 4, other ops 1), each
    /// node counted once.
    pub cost_before: u64,
    /// The same after.
    pub cost_after: u64,
}

/// Which candidate a region's result came from. egg's extractor minimises
/// tree cost, which counts a shared term once per use; it can therefore
/// trade a shared subterm for private copies that are cheaper per use but
/// more expensive in total. Each region compares candidates by the cost of
/// the graph that would actually be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extraction {
    /// egg's greedy tree-cost extraction.
    Tree,
    /// The sharing-aware greedy extraction (counts each class once).
    Dag,
    /// Both were more expensive than the region as it was, which is kept
    /// (without even its constant folding).
    Original,
}

/// How many regions stopped for each reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopCounts {
    /// Regions that saturated.
    pub saturated: usize,
    /// Regions stopped by the iteration limit.
    pub iteration_limit: usize,
    /// Regions stopped by the node limit.
    pub node_limit: usize,
    /// Regions stopped by the time limit.
    pub time_limit: usize,
}

/// Summary of one [`optimise_elementwise`] call: enough to tell whether the
/// limits are too tight and whether the pass paid off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EggReport {
    /// One entry per region, in graph order.
    pub regions: Vec<RegionReport>,
    /// Stop reasons, counted.
    pub stops: StopCounts,
    /// Live nodes before ([`Graph::live_nodes`]).
    pub nodes_before: usize,
    /// Live nodes after.
    pub nodes_after: usize,
    /// [`Graph::cost`] before.
    pub cost_before: Cost,
    /// [`Graph::cost`] after.
    pub cost_after: Cost,
}

/// Errors of the elementwise optimiser. All of them are bugs in the
/// optimiser or in the input graph, not user mistakes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OptimiseError {
    /// The input graph is invalid, or a rewritten node failed the graph's
    /// type checks.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// egg stopped for a reason other than saturation or a limit.
    #[error("egg stopped on region {region} for an unexpected reason: {reason}")]
    Stopped {
        /// Index of the region.
        region: usize,
        /// egg's message.
        reason: String,
    },
    /// A rewrite rule failed to build.
    #[error("malformed rewrite rule: {0}")]
    Rules(String),
    /// The extracted terms could not be written back.
    #[error("extraction of region {region} failed: {msg}")]
    Extraction {
        /// Index of the region (`usize::MAX` when not attributable).
        region: usize,
        /// What went wrong.
        msg: String,
    },
}

/// Rewrites every maximal elementwise region of `graph` with egg and
/// returns the optimised graph (same parameter and data tables, same
/// outputs, same values up to the rules' contract) with a report.
pub fn optimise_elementwise(
    graph: &Graph,
    limits: &EggLimits,
) -> Result<(Graph, EggReport), OptimiseError> {
    let rules = rules::rules().map_err(OptimiseError::Rules)?;
    optimise_with(graph, limits, &rules)
}

fn classify(region: usize, reason: Option<StopReason>) -> Result<RegionStop, OptimiseError> {
    match reason {
        Some(StopReason::Saturated) => Ok(RegionStop::Saturated),
        Some(StopReason::IterationLimit(_)) => Ok(RegionStop::IterationLimit),
        Some(StopReason::NodeLimit(_)) => Ok(RegionStop::NodeLimit),
        Some(StopReason::TimeLimit(_)) => Ok(RegionStop::TimeLimit),
        Some(StopReason::Other(reason)) => Err(OptimiseError::Stopped { region, reason }),
        None => Err(OptimiseError::Stopped {
            region,
            reason: "the runner returned without a stop reason".into(),
        }),
    }
}

fn optimise_with(
    graph: &Graph,
    limits: &EggLimits,
    rules: &[EwRewrite],
) -> Result<(Graph, EggReport), OptimiseError> {
    let regions = find_regions(graph);
    let mut extracted = Vec::with_capacity(regions.list.len());
    let mut report = EggReport {
        nodes_before: graph.live_nodes(),
        cost_before: graph.cost(),
        ..EggReport::default()
    };
    for (k, region) in regions.list.iter().enumerate() {
        let (eg, roots) = to_egraph(graph, &regions, k);
        let runner = Runner::<Ew, EwAnalysis, ()>::new(EwAnalysis::default())
            .with_egraph(eg)
            .with_node_limit(limits.node_limit)
            .with_iter_limit(limits.iter_limit)
            .with_time_limit(limits.time_limit)
            .run(rules);
        let stop = classify(k, runner.stop_reason.clone())?;
        match stop {
            RegionStop::Saturated => report.stops.saturated += 1,
            RegionStop::IterationLimit => report.stops.iteration_limit += 1,
            RegionStop::NodeLimit => report.stops.node_limit += 1,
            RegionStop::TimeLimit => report.stops.time_limit += 1,
        }
        let ex = extract(graph, &runner.egraph, region, &roots);
        report.regions.push(RegionReport {
            graph_nodes: region.nodes.len(),
            roots: region.roots.len(),
            egraph_nodes: runner.egraph.total_number_of_nodes(),
            egraph_classes: runner.egraph.number_of_classes(),
            iterations: runner.iterations.len(),
            stop,
            extraction: ex.how,
            cost_before: ex.cost_before.weight,
            cost_after: ex.cost_after.weight,
        });
        extracted.push(ex);
    }
    let out = from_extracted(graph, &regions, &extracted)?;
    report.nodes_after = out.live_nodes();
    report.cost_after = out.cost();
    Ok((out, report))
}

/// Helpers shared by the optimiser's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crux_ir::graph::{eval, DType, NodeId, Op, Tensor};

    /// Ordinary values plus every IEEE corner a guard must respect.
    pub(crate) const SPECIAL: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.5,
        -3.75,
        0.1,
        7.0,
        1e-300,
        -1e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];

    /// Values where the unstable originals are still accurate to 1e-12.
    pub(crate) const MODERATE: &[f64] = &[
        -4.5, -2.0, -1.25, -0.5, -0.3, 0.2, 0.45, 1.0, 1.7, 3.0, 4.75,
    ];

    /// A graph with `count` parameters of dtype `dtype` whose values, fed
    /// by [`inputs`], range over every combination of `vals.len()` values.
    pub(crate) fn setup(dtype: DType, count: usize, vals: &[f64]) -> (Graph, Vec<NodeId>) {
        let n = vals.len().pow(count as u32);
        let mut g = Graph::new();
        let names = ["x", "y", "z", "w"];
        let ids = (0..count)
            .map(|k| {
                let p = g.add_param(names[k], dtype, [n]);
                g.param(p).expect("declared")
            })
            .collect();
        (g, ids)
    }

    /// Parameter tensors for a graph made by [`setup`] with the same values.
    pub(crate) fn inputs(g: &Graph, vals: &[f64]) -> Vec<Tensor> {
        let m = vals.len();
        g.params()
            .iter()
            .enumerate()
            .map(|(k, info)| {
                let n = info.shape.numel();
                let data = (0..n).map(|i| vals[(i / m.pow(k as u32)) % m]).collect();
                Tensor::new(info.dtype, info.shape.clone(), data).expect("shape matches")
            })
            .collect()
    }

    /// Equal as the optimiser's contract means it: NaN, infinities and
    /// pairs of zeros (with their signs) exactly, other values within
    /// `rel`; a zero against a tiny value is the accuracy a stable form
    /// gains (`log(1 + 1e-20) = 0`, `log1p(1e-20) = 1e-20`).
    pub(crate) fn close(a: f64, b: f64, rel: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if !a.is_finite() || !b.is_finite() || (a == 0.0 && b == 0.0) {
            return a.to_bits() == b.to_bits();
        }
        if a == 0.0 || b == 0.0 {
            return (a - b).abs() <= 1e-15;
        }
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    /// Every output of `a` and `b` [`close`] with no tolerance (NaN
    /// payloads and signs may differ, nothing else).
    pub(crate) fn same_values(a: &[Tensor], b: &[Tensor]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(s, t)| {
                s.data.len() == t.data.len()
                    && s.data.iter().zip(&t.data).all(|(x, y)| close(*x, *y, 0.0))
            })
    }

    /// Interpreter(original) == interpreter(optimised) on every output, to
    /// 1e-12 relative in f64 and a few ulp in f32 (where a stable form
    /// rounds once instead of after every step).
    pub(crate) fn assert_equivalent(orig: &Graph, opt: &Graph, vals: &[f64]) {
        let ins = inputs(orig, vals);
        let a = eval(orig, &ins).expect("original evaluates");
        let b = eval(opt, &ins).expect("optimised evaluates");
        assert_eq!(a.len(), b.len());
        for ((name, _), (ta, tb)) in orig.outputs().iter().zip(a.iter().zip(&b)) {
            assert_eq!(ta.dtype, tb.dtype, "output {name}");
            assert_eq!(ta.shape, tb.shape, "output {name}");
            let rel = if ta.dtype == DType::F32 { 5e-7 } else { 1e-12 };
            for (i, (x, y)) in ta.data.iter().zip(&tb.data).enumerate() {
                assert!(
                    close(*x, *y, rel),
                    "output {name}[{i}]: original {x:e}, optimised {y:e}"
                );
            }
        }
    }

    /// Optimises with the default limits.
    pub(crate) fn optimise(g: &Graph) -> (Graph, EggReport) {
        optimise_elementwise(g, &EggLimits::default()).expect("optimises")
    }

    /// Optimises and checks equivalence on `vals`.
    pub(crate) fn optimise_checked(g: &Graph, vals: &[f64]) -> (Graph, EggReport) {
        let (opt, report) = optimise(g);
        assert_equivalent(g, &opt, vals);
        (opt, report)
    }

    /// One number for "cheaper": flops plus 20 per transcendental.
    pub(crate) fn weighted(c: Cost) -> u64 {
        c.flops + 20 * c.transcendentals
    }

    /// An s-expression for node `id`; arguments of `add` and `mul` are
    /// sorted so goals do not depend on how commutativity was extracted.
    pub(crate) fn render(g: &Graph, id: NodeId) -> String {
        let n = g.node(id);
        let name = match &n.op {
            Op::Param(p) => return g.params()[p.index()].name.clone(),
            Op::Data(d) => return g.data()[d.index()].name.clone(),
            Op::Const(bits) => return format!("{}", f64::from_bits(*bits)),
            Op::Cast => format!("cast.{}", n.dtype),
            op => op.name().to_string(),
        };
        let mut args: Vec<String> = n.args.iter().map(|&a| render(g, a)).collect();
        if matches!(
            n.op,
            Op::Binary(crux_ir::BinaryOp::Add | crux_ir::BinaryOp::Mul)
        ) {
            args.sort();
        }
        format!("({name} {})", args.join(" "))
    }

    /// [`render`] of the output called `name`.
    pub(crate) fn out(g: &Graph, name: &str) -> String {
        render(g, g.output(name).expect("output exists"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crux_ir::graph::{CmpOp, DType, Tensor, UnaryOp};

    /// A small AD-like region: `((x * 1 - 0) - (-(y)))  * exp(x) / 2`.
    fn ad_like(dtype: DType, vals: &[f64]) -> Result<Graph, GraphError> {
        let (mut g, p) = setup(dtype, 2, vals);
        let (x, y) = (p[0], p[1]);
        let one = g.constant_like(1.0, x)?;
        let zero = g.constant_like(0.0, x)?;
        let two = g.constant_like(2.0, x)?;
        let a = g.mul(x, one)?;
        let a = g.sub(a, zero)?;
        let ny = g.neg(y)?;
        let s = g.sub(a, ny)?;
        let e = g.unary(UnaryOp::Exp, x)?;
        let m = g.mul(s, e)?;
        let r = g.div(m, two)?;
        g.set_output("r", r);
        Ok(g)
    }

    #[test]
    fn ad_cleanup_end_to_end() -> Result<(), GraphError> {
        let g = ad_like(DType::F64, SPECIAL)?;
        let (opt, report) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "r"), "(mul (mul (add x y) (exp x)) 0.5)");
        assert_eq!(opt.cost().transcendentals, g.cost().transcendentals);
        assert_eq!(report.regions[0].extraction, Extraction::Tree);
        assert!(weighted(report.cost_after) < weighted(report.cost_before));
        assert!(report.nodes_after < report.nodes_before);
        assert_eq!(report.regions.len(), 1);
        assert_eq!(report.stops.saturated, 1);
        Ok(())
    }

    #[test]
    fn f32_region_stays_f32() -> Result<(), GraphError> {
        let vals: Vec<f64> = SPECIAL.iter().map(|&v| DType::F32.round(v)).collect();
        let g = ad_like(DType::F32, &vals)?;
        let (opt, _) = optimise_checked(&g, &vals);
        let r = opt.output("r")?;
        assert_eq!(opt.node(r).dtype, DType::F32);
        assert!(opt.nodes().iter().all(|n| n.dtype != DType::F64));
        // `/ 2` became `* 0.5` with an f32 literal, `x * 1 + 0` became `x`.
        assert!(!out(&opt, "r").contains("div"));
        assert!(out(&opt, "r").contains("(add x y)"));
        // f32 constants fold with f32 rounding.
        let (mut h, p) = setup(DType::F32, 1, &vals);
        let a = h.constant_like(0.1, p[0])?;
        let b = h.constant_like(0.2, p[0])?;
        let s = h.add2(a, b)?;
        let y = h.mul(p[0], s)?;
        h.set_output("y", y);
        let (opt, _) = optimise_checked(&h, &vals);
        let c = opt
            .node(opt.output("y")?)
            .args
            .iter()
            .find_map(|&a| opt.const_value(a));
        assert_eq!(c, Some((0.1f32 + 0.2f32) as f64));
        Ok(())
    }

    #[test]
    fn casts_round_trip_and_keep_dtypes() -> Result<(), GraphError> {
        let vals: Vec<f64> = SPECIAL.iter().map(|&v| DType::F32.round(v)).collect();
        let (mut g, p) = setup(DType::F32, 1, &vals);
        let x = p[0];
        let w = g.cast(x, DType::F64)?;
        let one = g.constant_like(1.0, w)?;
        let w1 = g.mul(w, one)?;
        let back = g.cast(w1, DType::F32)?;
        let n = g.cast(w, DType::F32)?;
        let nn = g.neg(n)?;
        let y = g.sub(back, nn)?;
        g.set_output("y", y);
        g.set_output("wide", w1);
        let (opt, _) = optimise_checked(&g, &vals);
        assert_eq!(out(&opt, "y"), "(add x x)");
        assert_eq!(out(&opt, "wide"), "(cast.f64 x)");
        // Narrowing then widening is not an identity and is kept.
        let (mut h, p) = setup(DType::F64, 1, SPECIAL);
        let n = h.cast(p[0], DType::F32)?;
        let w = h.cast(n, DType::F64)?;
        h.set_output("w", w);
        let (opt, _) = optimise_checked(&h, SPECIAL);
        assert_eq!(out(&opt, "w"), "(cast.f64 (cast.f32 x))");
        Ok(())
    }

    #[test]
    fn tiny_node_limit_is_reported_and_result_correct() -> Result<(), GraphError> {
        let g = ad_like(DType::F64, SPECIAL)?;
        let limits = EggLimits {
            node_limit: 1,
            ..EggLimits::default()
        };
        let (opt, report) = optimise_elementwise(&g, &limits).expect("optimises");
        assert_eq!(report.stops.node_limit, 1);
        assert_eq!(report.regions[0].stop, RegionStop::NodeLimit);
        assert_equivalent(&g, &opt, SPECIAL);
        // Constant folding happens while loading, even with no iterations.
        let (mut h, p) = setup(DType::F64, 1, SPECIAL);
        let a = h.constant_like(2.0, p[0])?;
        let b = h.constant_like(3.0, p[0])?;
        let c = h.mul(a, b)?;
        let y = h.add2(p[0], c)?;
        h.set_output("y", y);
        let (opt, _) = optimise_elementwise(&h, &limits).expect("optimises");
        assert_eq!(out(&opt, "y"), "(add 6 x)");
        assert_equivalent(&h, &opt, SPECIAL);
        Ok(())
    }

    #[test]
    fn iteration_limit_is_reported() -> Result<(), GraphError> {
        let g = ad_like(DType::F64, SPECIAL)?;
        let limits = EggLimits {
            iter_limit: 1,
            ..EggLimits::default()
        };
        let (opt, report) = optimise_elementwise(&g, &limits).expect("optimises");
        assert_eq!(report.stops.iteration_limit, 1);
        assert_eq!(report.regions[0].iterations, 1);
        assert_equivalent(&g, &opt, SPECIAL);
        Ok(())
    }

    #[test]
    fn other_stop_reasons_are_errors() {
        assert_eq!(
            classify(0, Some(StopReason::Saturated)).ok(),
            Some(RegionStop::Saturated)
        );
        assert_eq!(
            classify(0, Some(StopReason::TimeLimit(1.0))).ok(),
            Some(RegionStop::TimeLimit)
        );
        assert!(matches!(
            classify(3, Some(StopReason::Other("hook".into()))),
            Err(OptimiseError::Stopped { region: 3, .. })
        ));
        assert!(classify(0, None).is_err());
    }

    #[test]
    fn regions_around_reductions_and_shared_roots() -> Result<(), GraphError> {
        // Two regions separated by a reduction; the first has two roots
        // that share exp(x), which must stay a single node.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let one = g.constant_like(1.0, x)?;
        let e = g.unary(UnaryOp::Exp, x)?;
        let e1 = g.mul(e, one)?;
        let a = g.add2(e1, x)?;
        let b = g.mul(one, e)?;
        let s = g.sum_all(a)?;
        let zero = g.constant_like(0.0, s)?;
        let t = g.sub(s, zero)?;
        let l = g.unary(UnaryOp::Log, t)?;
        let lb = g.broadcast(l, g.ty(x).1.clone())?;
        let y = g.mul(lb, b)?;
        g.set_output("y", y);
        g.set_output("b", b);
        let (opt, report) = optimise_checked(&g, SPECIAL);
        assert_eq!(report.regions.len(), 2);
        // One exp per element plus one log: exp(x) is not duplicated.
        assert_eq!(opt.cost().transcendentals, g.ty(x).1.numel() as u64 + 1);
        assert_eq!(out(&opt, "b"), "(exp x)");
        assert!(out(&opt, "y").starts_with("(mul (broadcast (log (sum (add (exp x) x))))"));
        Ok(())
    }

    #[test]
    fn tables_and_outputs_are_kept() -> Result<(), GraphError> {
        let (mut g, p) = setup(DType::F64, 2, SPECIAL);
        let n = g.ty(p[0]).1.numel();
        let d = g.add_data("obs", Tensor::f64([n], vec![0.5; n])?);
        let unused = g.add_data("unused", Tensor::scalar(1.0));
        let dn = g.data_node(d)?;
        let r = g.sub(p[1], dn)?;
        let one = g.constant_like(1.0, r)?;
        let y = g.mul(r, one)?;
        g.set_output("first", y);
        g.set_output("second", p[0]);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(opt.params(), g.params());
        assert_eq!(opt.data().len(), 2);
        assert_eq!(opt.data()[unused.index()].name, "unused");
        let names: Vec<&str> = opt.outputs().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(out(&opt, "first"), "(sub y obs)");
        assert_eq!(out(&opt, "second"), "x");
        Ok(())
    }

    #[test]
    fn bool_outputs_and_constant_conditions() -> Result<(), GraphError> {
        // A comparison of constants folds, but a bool literal cannot be a
        // graph constant: the comparison stays when it is an output.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let a = g.constant_like(1.0, p[0])?;
        let b = g.constant_like(2.0, p[0])?;
        let c = g.compare(CmpOp::Lt, a, b)?;
        let s = g.select(c, p[0], b)?;
        g.set_output("c", c);
        g.set_output("s", s);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "c"), "(lt 1 2)");
        assert_eq!(out(&opt, "s"), "x");
        Ok(())
    }

    #[test]
    fn empty_and_region_free_graphs() -> Result<(), GraphError> {
        let (opt, report) = optimise(&Graph::new());
        assert!(opt.is_empty() && report.regions.is_empty());
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let s = g.sum_all(p[0])?;
        g.set_output("s", s);
        let (opt, report) = optimise_checked(&g, SPECIAL);
        assert!(report.regions.is_empty());
        assert_eq!(opt, g);
        Ok(())
    }

    #[test]
    fn deep_chains_hit_the_node_limit_gracefully() -> Result<(), GraphError> {
        // 20 000 nodes of AD-style noise in one region: larger than the node
        // limit, so egg stops at once, but folding and extraction still
        // run, without recursion.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let (one, zero) = (g.constant_like(1.0, x)?, g.constant_like(0.0, x)?);
        let mut y = x;
        for i in 0..10_000 {
            y = if i % 2 == 0 {
                g.mul(y, one)?
            } else {
                g.add2(y, zero)?
            };
            y = g.sub(y, zero)?;
        }
        g.set_output("y", y);
        let limits = EggLimits {
            node_limit: 10_000,
            ..EggLimits::default()
        };
        let (opt, report) = optimise_elementwise(&g, &limits).expect("optimises");
        assert_eq!(report.stops.node_limit, 1);
        assert_equivalent(&g, &opt, SPECIAL);
        // With room to work, the whole chain collapses.
        let limits = EggLimits {
            node_limit: 200_000,
            time_limit: Duration::from_secs(60),
            ..EggLimits::default()
        };
        let t = std::time::Instant::now();
        let (opt, report) = optimise_elementwise(&g, &limits).expect("optimises");
        assert!(t.elapsed() < Duration::from_secs(20));
        assert_eq!(report.stops.saturated, 1);
        // `+ 0` stays once (x may be -0); after it, the value is never -0.
        assert_eq!(out(&opt, "y"), "(add 0 x)");
        Ok(())
    }
}

#[cfg(test)]
mod proptests {
    use super::testing::*;
    use crux_ir::graph::{BinaryOp, CmpOp, DType, Graph, GraphError, NodeId, UnaryOp};
    use proptest::prelude::*;

    /// Powers of two only, so folding chained factors is exact and the
    /// results can be compared tightly.
    const CONSTS: [f64; 8] = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -4.0, 0.25];
    const VALS: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.5,
        -3.75,
        0.1,
        7.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];

    fn build(
        dtype: DType,
        steps: &[(u8, usize, usize, usize, usize)],
    ) -> Result<Graph, GraphError> {
        let (mut g, p) = setup(dtype, 2, VALS);
        let mut pool: Vec<NodeId> = p.clone();
        for &(kind, i, j, k, l) in steps {
            let a = pool[i % pool.len()];
            let b = pool[j % pool.len()];
            let kc = g.constant_like(CONSTS[k % CONSTS.len()], a)?;
            let n = match kind % 17 {
                0 => g.add2(a, b)?,
                1 => g.sub(a, b)?,
                2 => g.mul(a, b)?,
                3 => g.neg(a)?,
                4 => g.unary(UnaryOp::Abs, a)?,
                5 => g.binary(BinaryOp::Max, a, b)?,
                6 => g.mul(a, kc)?,
                7 => g.mul(kc, a)?,
                8 => g.div(a, kc)?,
                9 => {
                    let c = g.compare(CmpOp::Lt, a, b)?;
                    let d = pool[l % pool.len()];
                    g.select(c, d, kc)?
                }
                10 => g.unary(UnaryOp::Tanh, a)?,
                11 => {
                    // A region boundary.
                    let s = g.sum_all(a)?;
                    let shape = g.ty(a).1.clone();
                    g.broadcast(s, shape)?
                }
                12 => g.add2(kc, a)?,
                13 => g.sub(kc, a)?,
                14 => g.sub(a, a)?,
                15 => {
                    // Widen, scale, narrow again (a no-op pair for f64).
                    let w = g.cast(a, DType::F64)?;
                    let k = g.constant_like(CONSTS[k % CONSTS.len()], w)?;
                    let m = g.mul(w, k)?;
                    g.cast(m, dtype)?
                }
                _ => {
                    let na = g.neg(a)?;
                    g.mul(na, b)?
                }
            };
            pool.push(n);
        }
        let last = pool[pool.len() - 1];
        let mid = pool[pool.len() / 2 + 1];
        g.set_output("last", last);
        g.set_output("mid", mid);
        Ok(g)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// DESIGN §7, rung 2: interpreter(original) == interpreter(optimised)
        /// on generated graphs, IEEE corners included.
        #[test]
        fn random_regions_keep_their_values(
            f32 in any::<bool>(),
            steps in proptest::collection::vec((0u8..17, 0usize..64, 0usize..64, 0usize..8, 0usize..64), 1..40)
        ) {
            let dtype = if f32 { DType::F32 } else { DType::F64 };
            let g = build(dtype, &steps).expect("builds");
            let (opt, report) = optimise(&g);
            let vals: Vec<f64> = VALS.iter().map(|&v| dtype.round(v)).collect();
            assert_equivalent(&g, &opt, &vals);
            // Never more expensive under the extraction weights (new
            // constants may add nodes, and `Graph::cost` counts a division
            // like an addition, so neither of those is monotone).
            prop_assert!(report.regions.iter().all(|r| r.cost_after <= r.cost_before));
        }
    }
}
