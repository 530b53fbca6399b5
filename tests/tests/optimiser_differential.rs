//! Optimiser differential tests (DESIGN §7, rung 2): the reference
//! interpreter on the original graph against the reference interpreter on
//! the optimised graph, over random well-typed graphs from
//! [`crux_tests::gen::arb_graph`].
//!
//! # Tolerance rule
//!
//! Outputs must agree in count, dtype and shape. Elementwise, with `a` the
//! original value and `b` the optimised one:
//!
//! * NaN must stay NaN, and ±inf must stay the same infinity — also when the
//!   rewrite is more accurate (`log(exp(x)) → x` where `exp(x)` overflowed
//!   changes `inf` into a finite value, and that is reported, not masked);
//! * finite values must stay finite and satisfy
//!   `|a - b| <= 1e-12 · max(|a|, |b|, 64 · e)`, where `e` is a first-order
//!   forward error bound of `a` evaluated on the ORIGINAL graph
//!   ([`crux_tests::gen::error_bounds`], in units of `2^-53`, so `e` is the
//!   magnitude of the terms that cancelled on the way to `a`). Without the
//!   `e` term, a rewrite that moves a constant by an ulp would fail whenever
//!   a result is a small difference of large terms: `(x + c) - x` is `c` up
//!   to an ulp of `x`, not up to `1e-12` of `c`. Comparisons (and `sign`)
//!   whose operands are closer than that tolerance are undecided, and a
//!   `select` on them may take either branch;
//! * the one exception to the first rule: where the original's own error
//!   bound makes the *kind* of a value undecided — the inexact argument of
//!   `log`/`sqrt`/`recip`/`log1p`, a divisor or a `pow` base lies within
//!   tolerance of the pole or domain edge, a negative `pow` base meets an
//!   inexact exponent, or an undecided `select` chooses between a finite
//!   and a non-finite branch — any value is accepted there and downstream
//!   ([`crux_tests::gen::UNDECIDED`]). Exact values (parameters, constants,
//!   overflowed or underflowed results) never make anything undecided.
//!
//! Properties: (1) optimisation preserves values under this rule and both
//! graphs verify; (2) the text format round-trips the generated and the
//! optimised graphs; (3) staging alone is bit-exact (it evaluates with the
//! same interpreter); (4) reverse-mode gradients survive optimisation under
//! the same rule.
//!
//! Failures are persisted in `proptest-regressions/optimiser_differential.txt`
//! (relative to the crate) and replayed first on every run.

use crux_compiler::ad;
use crux_compiler::optimise::EggLimits;
use crux_compiler::pipeline::optimise;
use crux_compiler::stage::stage;
use crux_ir::graph::{eval, parse, print, verify, Graph, ParamId};
use crux_tests::gen::{arb_graph, compare_outputs, error_bounds, GenCase, GenConfig, Tolerance};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/optimiser_differential.txt",
        ))),
        ..ProptestConfig::default()
    }
}

fn output_names(g: &Graph) -> Vec<String> {
    g.outputs().iter().map(|(n, _)| n.clone()).collect()
}

/// Optimises `g`, verifies both graphs and compares their outputs at `params`.
fn check_optimised(g: &Graph, params: &[crux_ir::Tensor]) -> Result<(), TestCaseError> {
    verify(g).map_err(|e| TestCaseError::fail(format!("input graph does not verify: {e}")))?;
    let (opt, _) = optimise(g, &EggLimits::default())
        .map_err(|e| TestCaseError::fail(format!("optimise failed: {e}")))?;
    verify(&opt).map_err(|e| {
        TestCaseError::fail(format!(
            "optimised graph does not verify: {e}\n{}",
            print(&opt)
        ))
    })?;
    prop_assert_eq!(output_names(g), output_names(&opt));
    let tol = Tolerance::default();
    let bounds = error_bounds(g, params, &tol)
        .map_err(|e| TestCaseError::fail(format!("evaluation failed: {e}")))?;
    let before =
        eval(g, params).map_err(|e| TestCaseError::fail(format!("evaluation failed: {e}")))?;
    let after = eval(&opt, params)
        .map_err(|e| TestCaseError::fail(format!("optimised evaluation failed: {e}")))?;
    compare_outputs(&output_names(g), &before, &after, &bounds.outputs(g), &tol)
        .map_err(|msg| TestCaseError::fail(format!("{msg}\noptimised graph:\n{}", print(&opt))))
}

/// The generated graph with a scalar objective `sum_all(y0)` and outputs
/// `s` and `grad.p<i>` (reverse mode with respect to every parameter).
fn gradient_graph(case: &GenCase) -> Graph {
    let mut g = case.graph.clone();
    let y = g.outputs()[0].1;
    let s = g.sum_all(y).expect("sum_all of a float output");
    let wrt: Vec<_> = (0..g.params().len())
        .map(|i| g.param(ParamId(i as u32)).expect("declared parameter"))
        .collect();
    let grads = ad::grad(&mut g, s, &wrt).expect("reverse mode on a well-typed graph");
    g.clear_outputs();
    g.set_output("s", s);
    for (i, d) in grads.into_iter().enumerate() {
        g.set_output(format!("grad.p{i}"), d);
    }
    g
}

proptest! {
    // Cheap (well under a second per thousand cases), so more than the minimum.
    #![proptest_config(config(4000))]

    /// interpreter(original) ≈ interpreter(optimised) under the tolerance rule.
    #[test]
    fn optimisation_preserves_values(case in arb_graph(GenConfig::default())) {
        check_optimised(&case.graph, &case.params)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// `parse(print(g)) == g` for generated and optimised graphs, and
    /// printing is stable.
    #[test]
    fn text_format_round_trips(case in arb_graph(GenConfig::default())) {
        let text = print(&case.graph);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("parse failed: {e}")))?;
        prop_assert!(back == case.graph, "round trip changed the graph:\n{}\n---\n{}", text, print(&back));
        prop_assert_eq!(print(&back), text);
        let (opt, _) = optimise(&case.graph, &EggLimits::default()).map_err(|e| TestCaseError::fail(format!("optimise failed: {e}")))?;
        let text = print(&opt);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("parse of optimised graph failed: {e}\n{text}")))?;
        prop_assert!(back == opt, "round trip changed the optimised graph:\n{}\n---\n{}", text, print(&back));
    }

    /// Staging evaluates with the same interpreter, so it is bit-exact.
    #[test]
    fn staging_is_bit_exact(case in arb_graph(GenConfig::default())) {
        let (staged, _) = stage(&case.graph).map_err(|e| TestCaseError::fail(format!("staging failed: {e}")))?;
        verify(&staged).map_err(|e| TestCaseError::fail(format!("staged graph does not verify: {e}")))?;
        prop_assert_eq!(output_names(&case.graph), output_names(&staged));
        let before = eval(&case.graph, &case.params).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after = eval(&staged, &case.params).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(before.len(), after.len());
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            prop_assert!(a.bit_eq(b), "output {} differs after staging:\n{:?}\n{:?}\nstaged graph:\n{}", i, a, b, print(&staged));
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Gradients (reverse mode of `sum_all(y0)` with respect to every
    /// parameter) survive optimisation under the same rule.
    #[test]
    fn gradients_survive_optimisation(case in arb_graph(GenConfig::default())) {
        let g = gradient_graph(&case);
        check_optimised(&g, &case.params)?;
    }
}

/// What the generator produces and what the optimiser does with it (run
/// with `--ignored --nocapture` when changing the generator).
#[test]
#[ignore]
fn generator_statistics() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;
    let mut runner = TestRunner::deterministic();
    let strat = arb_graph(GenConfig::default());
    let n = 1000;
    let mut ops: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut nodes, mut live_before, mut live_after, mut changed, mut folded) = (0, 0, 0, 0, 0);
    let (mut elems, mut nonfinite, mut cases_nonfinite, mut unbounded, mut undecided) =
        (0, 0, 0, 0, 0);
    let mut f32_cases = 0;
    for _ in 0..n {
        let case = strat.new_tree(&mut runner).unwrap().current();
        let g = &case.graph;
        nodes += g.len();
        for node in g.nodes() {
            *ops.entry(node.op.name()).or_default() += 1;
        }
        if g.nodes().iter().any(|n| n.dtype == crux_ir::DType::F32) {
            f32_cases += 1;
        }
        let (opt, rep) = optimise(g, &EggLimits::default()).unwrap();
        folded +=
            usize::from(rep.stage.folded_nodes + rep.stage.constants + rep.stage.data_tensors > 0);
        live_before += g.live_nodes();
        live_after += opt.live_nodes();
        if print(&opt) != print(&g.compacted().unwrap()) {
            changed += 1;
        }
        let out = eval(g, &case.params).unwrap();
        let b = error_bounds(g, &case.params, &Tolerance::default())
            .unwrap()
            .outputs(g);
        let mut any = false;
        for (t, e) in out.iter().zip(&b) {
            for (v, e) in t.data.iter().zip(e) {
                elems += 1;
                if !v.is_finite() {
                    nonfinite += 1;
                    any = true;
                }
                if e.is_nan() {
                    undecided += 1;
                } else if e.is_infinite() {
                    unbounded += 1;
                }
            }
        }
        cases_nonfinite += usize::from(any);
    }
    println!("{n} cases: {nodes} nodes, live {live_before} -> {live_after} after optimise; {changed} changed by optimise, {folded} with staging work, {f32_cases} with f32");
    println!(
        "output elements: {elems}, non-finite {nonfinite} (in {cases_nonfinite} cases), \
         with an infinite error bound {unbounded}, undecided {undecided}"
    );
    println!("ops: {ops:?}");
}

/// Runs many cases without stopping at the first failure, shrinks every
/// failing one and prints the distinct minimal graphs (run with
/// `--ignored --nocapture`; `CENSUS_CASES` sets the number of cases).
#[test]
#[ignore]
fn failure_census() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;
    let n: usize = std::env::var("CENSUS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut runner = TestRunner::deterministic();
    let strat = arb_graph(GenConfig::default());
    type Check = fn(&GenCase) -> Result<(), TestCaseError>;
    let checks: [(&str, Check); 2] = [
        ("values", |c| check_optimised(&c.graph, &c.params)),
        ("gradients", |c| {
            check_optimised(&gradient_graph(c), &c.params)
        }),
    ];
    let mut found: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for _ in 0..n {
        let mut tree = strat.new_tree(&mut runner).unwrap();
        for (label, check) in checks {
            let fails =
                |c: &GenCase| std::panic::catch_unwind(|| check(c)).map_or(true, |r| r.is_err());
            if !fails(&tree.current()) {
                continue;
            }
            let mut last = tree.current();
            if tree.simplify() {
                loop {
                    let cur = tree.current();
                    if fails(&cur) {
                        last = cur;
                        if !tree.simplify() {
                            break;
                        }
                    } else if !tree.complicate() {
                        break;
                    }
                }
            }
            let g = if label == "gradients" {
                gradient_graph(&last)
            } else {
                last.graph.clone()
            };
            let mut ops: Vec<&str> = g
                .compacted()
                .unwrap()
                .nodes()
                .iter()
                .map(|n| n.op.name())
                .collect();
            ops.sort_unstable();
            ops.dedup();
            let msg = match check(&last) {
                Err(e) => e.to_string(),
                Ok(()) => "panic".into(),
            };
            let key = format!("{label}: {}", ops.join(" "));
            let entry = found.entry(key).or_insert((0, format!("{last:?}\n{msg}")));
            entry.0 += 1;
        }
    }
    for (k, (count, example)) in &found {
        println!("=== {k} ({count} cases)\n{example}\n");
    }
    println!("{} distinct failure signatures in {n} cases", found.len());
}
