//! The rewrite rules of the elementwise optimiser.
//!
//! Left-hand sides are egg patterns over [`Ew`]; they never contain
//! literals (a literal has a dtype, and `0` must match in f32 and f64
//! regions alike), so "is zero", "is one", "is finite", ... are guards
//! that read the analysis ([`ClassData`]): a class folded to 0 counts as
//! zero however it was written, and `x` counts as finite only when the
//! analysis proves it. Literals on right-hand sides take the dtype of the
//! class being rewritten.
//!
//! The contract, checked by the differential tests: a rewrite never
//! changes which elements are NaN, ±inf or ±0 (with their signs, since
//! `1 / -0 = -inf`), and moves finite results by at most a few ulp, or
//! towards the exact value:
//!
//! * cleanup after AD (identities, negations, select): exact. Signed zeros
//!   make some identities conditional: `x + 0 → x` needs `x ≠ -0`
//!   (`-0 + 0 = +0`), `0 - x → -x` needs `x ≠ +0`, `x * 0 → 0` needs
//!   `x >= +0` and finite; `-(a - b) → b - a` is never exact (`a = b`);
//! * constant folding: the analysis, with the interpreter's semantics;
//! * strength reduction: exact (`x / 2^k → x * 2^-k`, `pow(x, 1)`,
//!   `pow(x, 0)`), or within 1 ulp (`pow(x, 2) → x * x`,
//!   `pow(x, -1) → recip(x)`, `pow(x, 0.5) → sqrt(x)` with fix-ups for
//!   `-inf` and `-0` unless the analysis excludes them);
//! * folding of constant factors `c1 * (c2 * x) → (c1 c2) * x`: only when
//!   it is bitwise exact for every `x` (`c2` a power of two with
//!   `|c2| >= 1`, `|c1| >= 1`), because otherwise the intermediate `c2 * x`
//!   may overflow or underflow where `(c1 c2) * x` does not;
//! * stable forms (`log1p`, `expm1`, `sigmoid`, `softplus`): more accurate
//!   for finite nonzero results, identical on NaN, ±inf and ±0 (a zero
//!   that turns into a tiny number changes `0 * inf` or `0 / 0`
//!   downstream). The overflow of `exp`, and the loss of `exp(x)` or `x`
//!   against `1`, are reproduced by selects on thresholds of the dtype.
//!   That keeps `sigmoid` and `softplus` far cheaper than the originals,
//!   but makes the `log1p` and `expm1` forms cost more than `log(1 + x)`
//!   and `exp(x) - 1`, so those are only extracted inside something
//!   cheaper. They never fire on a constant argument (the original folds
//!   anyway). `log(exp(x)) → x` and `exp(log(x)) → x` are left out: they
//!   turn an overflow of `exp` (or a NaN) into a finite value.
//!
//! Associativity is left out on purpose: it changes rounding. Commutativity
//! of `add` and `mul` is in: it changes nothing.

use std::sync::OnceLock;

use crux_ir::graph::DType;
use egg::{
    Applier, EGraph, ENodeOrVar, Id, Language, Pattern, PatternAst, Rewrite, Subst, Symbol, Var,
};

use super::egraph::{ClassData, Ew, EwAnalysis, Facts};

/// A rule of the elementwise language.
pub(crate) type EwRewrite = Rewrite<Ew, EwAnalysis>;

type Guard = Box<dyn Fn(&EGraph<Ew, EwAnalysis>, &Subst) -> bool + Send + Sync>;

/// How a right-hand-side literal becomes a value of the rewritten dtype.
type Literal = fn(f64, DType) -> f64;

/// A right-hand side whose literals are retyped to the dtype of the class
/// it rewrites, applied only when every guard holds.
struct Rhs {
    ast: PatternAst<Ew>,
    guards: Vec<Guard>,
    literal: Literal,
}

impl Applier<Ew, EwAnalysis> for Rhs {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Ew, EwAnalysis>,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Ew>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        if !self.guards.iter().all(|g| g(egraph, subst)) {
            return vec![];
        }
        let dtype = egraph[eclass].data.dtype;
        let mut ids: Vec<Id> = Vec::with_capacity(self.ast.len());
        for n in self.ast.as_ref() {
            let id = match n {
                ENodeOrVar::Var(v) => subst[*v],
                ENodeOrVar::ENode(Ew::Const { bits, .. }) => {
                    let v = (self.literal)(f64::from_bits(*bits), dtype);
                    egraph.add(Ew::constant(v, dtype))
                }
                ENodeOrVar::ENode(e) => egraph.add(e.map_children(|c| ids[usize::from(c)])),
            };
            ids.push(id);
        }
        match ids.last() {
            Some(&root) if egraph.union(root, eclass) => vec![root],
            _ => vec![],
        }
    }

    fn vars(&self) -> Vec<Var> {
        let mut vs: Vec<Var> = Vec::new();
        for n in self.ast.as_ref() {
            if let ENodeOrVar::Var(v) = n {
                if !vs.contains(v) {
                    vs.push(*v);
                }
            }
        }
        vs
    }
}

fn rule_with(
    name: &str,
    lhs: &str,
    rhs: &str,
    guards: Vec<Guard>,
    literal: Literal,
) -> Result<EwRewrite, String> {
    let searcher: Pattern<Ew> = lhs
        .parse()
        .map_err(|e| format!("rule {name}: left side: {e}"))?;
    let ast: PatternAst<Ew> = rhs
        .parse()
        .map_err(|e| format!("rule {name}: right side: {e}"))?;
    Rewrite::new(
        name,
        searcher,
        Rhs {
            ast,
            guards,
            literal,
        },
    )
}

fn rule(name: &str, lhs: &str, rhs: &str, guards: Vec<Guard>) -> Result<EwRewrite, String> {
    rule_with(name, lhs, rhs, guards, |v, dt| dt.round(v))
}

fn var(name: &str) -> Result<Var, String> {
    name.parse()
        .map_err(|e| format!("pattern variable {name}: {e}"))
}

fn data(eg: &EGraph<Ew, EwAnalysis>, s: &Subst, v: Var) -> ClassData {
    eg[s[v]].data
}

/// The class of `v` is the constant `c` (`0` matches both zeros).
fn equals(v: &str, c: f64) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| data(eg, s, v).value == Some(c)))
}

/// The class of `v` has a known constant value satisfying `pred`.
fn value(v: &str, pred: fn(f64) -> bool) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| {
        data(eg, s, v).value.is_some_and(pred)
    }))
}

/// The class of `v` has no known constant value.
fn not_const(v: &str) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| data(eg, s, v).value.is_none()))
}

/// The analysis proves `pred` of the class of `v`.
fn proves(v: &str, pred: fn(&Facts) -> bool) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| pred(&data(eg, s, v).facts)))
}

/// `z` is the zero `exact` (with that sign), or the other zero and `x`
/// satisfies `pred`.
fn zero_sign(z: &str, x: &str, exact: f64, pred: fn(&Facts) -> bool) -> Result<Guard, String> {
    let (z, x) = (var(z)?, var(x)?);
    let (exact, other) = (exact.to_bits(), (-exact).to_bits());
    Ok(Box::new(move |eg, s| {
        match data(eg, s, z).value.map(f64::to_bits) {
            Some(b) if b == exact => true,
            Some(b) if b == other => pred(&data(eg, s, x).facts),
            _ => false,
        }
    }))
}

fn dtype_is(v: &str, dt: DType) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| data(eg, s, v).dtype == dt))
}

/// `c` is ±2^k with `1/c` exactly representable in `dtype`, so
/// `x / c` and `x * (1/c)` round the same exact value: bitwise equal.
pub(crate) fn exact_reciprocal(c: f64, dtype: DType) -> bool {
    if !c.is_finite() || c == 0.0 {
        return false;
    }
    let r = 1.0 / c;
    is_power_of_two(c) && r.is_finite() && r != 0.0 && dtype.round(r) == r && r * c == 1.0
}

/// `|c| = 2^k` for some integer `k` (subnormals included).
pub(crate) fn is_power_of_two(c: f64) -> bool {
    if !c.is_finite() || c == 0.0 {
        return false;
    }
    let bits = c.abs().to_bits();
    let (exp, mant) = (bits >> 52, bits & ((1u64 << 52) - 1));
    if exp == 0 {
        mant.is_power_of_two()
    } else {
        mant == 0
    }
}

/// `c1 * (c2 * x) == (c1 c2) * x` bitwise for every `x` of `dtype`:
/// `c2 = ±2^k` with `k >= 0` makes `c2 * x` exact unless it overflows,
/// and `|c1| >= 1` makes the folded product overflow whenever the
/// intermediate does.
pub(crate) fn exact_fold(c1: f64, c2: f64, dtype: DType) -> bool {
    let p = dtype.round(c1 * c2);
    is_power_of_two(c2) && c2.abs() >= 1.0 && c1.is_finite() && c1.abs() >= 1.0 && p.is_finite()
}

fn fold_guard() -> Result<Guard, String> {
    let (a, b) = (var("?a")?, var("?b")?);
    Ok(Box::new(move |eg, s| {
        let (da, db) = (data(eg, s, a), data(eg, s, b));
        match (da.value, db.value) {
            (Some(u), Some(v)) => exact_fold(u, v, da.dtype),
            _ => false,
        }
    }))
}

fn reciprocal_guard(v: &str) -> Result<Guard, String> {
    let v = var(v)?;
    Ok(Box::new(move |eg, s| {
        let d = data(eg, s, v);
        d.value.is_some_and(|c| exact_reciprocal(c, d.dtype))
    }))
}

/// The largest `x` of `dtype` whose `exp`, rounded to `dtype` as the
/// interpreter rounds it, is finite.
pub(crate) fn exp_overflow_threshold(dtype: DType) -> f64 {
    // Positive floats are ordered like their bit patterns: bisect those.
    fn search(lo: u64, hi: u64, ok: impl Fn(u64) -> bool) -> u64 {
        let (mut lo, mut hi) = (lo, hi);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ok(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
    static F64: OnceLock<f64> = OnceLock::new();
    static F32: OnceLock<f64> = OnceLock::new();
    match dtype {
        DType::F32 => *F32.get_or_init(|| {
            let ok = |b: u64| {
                DType::F32
                    .round((f32::from_bits(b as u32) as f64).exp())
                    .is_finite()
            };
            let b = search(1f32.to_bits() as u64, 1000f32.to_bits() as u64, ok);
            f32::from_bits(b as u32) as f64
        }),
        _ => *F64.get_or_init(|| {
            let ok = |b: u64| f64::from_bits(b).exp().is_finite();
            f64::from_bits(search(1f64.to_bits(), 1000f64.to_bits(), ok))
        }),
    }
}

/// The largest `x` of `dtype` where `log(1 + exp(x))`, rounded after
/// every step as the interpreter does, is exactly `+0` (where `exp(x)` is
/// lost against 1). `softplus(x)` is tiny but not zero there, and a zero
/// that turns nonzero changes `0 * inf` or `0 / 0` downstream.
pub(crate) fn softplus_zero_threshold(dtype: DType) -> f64 {
    let zero = |x: f64| {
        let e = dtype.round(x.exp());
        dtype.round(dtype.round(1.0 + e).ln()) == 0.0
    };
    static F64: OnceLock<f64> = OnceLock::new();
    static F32: OnceLock<f64> = OnceLock::new();
    // Smallest magnitude m (a positive float of `dtype`) with zero(-m).
    let smallest = |lo: u64, hi: u64, val: &dyn Fn(u64) -> f64| {
        let (mut lo, mut hi) = (lo, hi);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if zero(-val(mid)) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        -val(hi)
    };
    match dtype {
        DType::F32 => *F32.get_or_init(|| {
            let val = |b: u64| f32::from_bits(b as u32) as f64;
            smallest(1f32.to_bits() as u64, 1000f32.to_bits() as u64, &val)
        }),
        _ => *F64.get_or_init(|| smallest(1f64.to_bits(), 1000f64.to_bits(), &f64::from_bits)),
    }
}

/// Placeholder literal for [`exp_overflow_threshold`] in a right-hand side
/// (negated: its negation).
const EXP_MAX: f64 = 709.0;
/// Placeholder literal for [`softplus_zero_threshold`].
const SOFTPLUS_ZERO: f64 = -37.0;

/// Literals of the stable-form rules: the placeholders become the
/// thresholds of the dtype being rewritten.
fn threshold_literal(v: f64, dtype: DType) -> f64 {
    if v == EXP_MAX {
        exp_overflow_threshold(dtype)
    } else if v == -EXP_MAX {
        -exp_overflow_threshold(dtype)
    } else if v == SOFTPLUS_ZERO {
        softplus_zero_threshold(dtype)
    } else {
        dtype.round(v)
    }
}

fn zero(v: &str) -> Result<Guard, String> {
    equals(v, 0.0)
}

fn one(v: &str) -> Result<Guard, String> {
    equals(v, 1.0)
}

/// Cleanup after automatic differentiation: identities, negations, select.
fn cleanup() -> Result<Vec<EwRewrite>, String> {
    Ok(vec![
        rule("add-comm", "(add ?a ?b)", "(add ?b ?a)", vec![])?,
        rule("mul-comm", "(mul ?a ?b)", "(mul ?b ?a)", vec![])?,
        // x + -0 = x always; x + +0 = x unless x = -0.
        rule(
            "add-zero",
            "(add ?x ?z)",
            "?x",
            vec![zero_sign("?z", "?x", -0.0, |f| f.not_neg_zero)?],
        )?,
        // x - +0 = x always; x - -0 = x + +0.
        rule(
            "sub-zero",
            "(sub ?x ?z)",
            "?x",
            vec![zero_sign("?z", "?x", 0.0, |f| f.not_neg_zero)?],
        )?,
        // -0 - x = -x always; +0 - x = -x unless x = +0.
        rule(
            "zero-sub",
            "(sub ?z ?x)",
            "(neg ?x)",
            vec![zero_sign("?z", "?x", -0.0, |f| f.nonzero)?],
        )?,
        rule("mul-one", "(mul ?x ?c)", "?x", vec![one("?c")?])?,
        rule("div-one", "(div ?x ?c)", "?x", vec![one("?c")?])?,
        rule(
            "mul-neg-one",
            "(mul ?x ?c)",
            "(neg ?x)",
            vec![equals("?c", -1.0)?],
        )?,
        rule(
            "div-neg-one",
            "(div ?x ?c)",
            "(neg ?x)",
            vec![equals("?c", -1.0)?],
        )?,
        rule("neg-neg", "(neg (neg ?x))", "?x", vec![])?,
        rule(
            "mul-neg-neg",
            "(mul (neg ?a) (neg ?b))",
            "(mul ?a ?b)",
            vec![],
        )?,
        rule("mul-neg", "(mul (neg ?a) ?b)", "(neg (mul ?a ?b))", vec![])?,
        // Subtraction is defined as addition of the negation: exact.
        rule("sub-neg", "(sub ?a (neg ?b))", "(add ?a ?b)", vec![])?,
        rule("add-neg", "(add ?a (neg ?b))", "(sub ?a ?b)", vec![])?,
        rule(
            "div-to-recip",
            "(div ?c ?x)",
            "(recip ?x)",
            vec![one("?c")?],
        )?,
        rule("select-same", "(select ?c ?a ?a)", "?a", vec![])?,
        rule(
            "select-true",
            "(select ?c ?a ?b)",
            "?a",
            vec![value("?c", |v| v != 0.0)?],
        )?,
        rule(
            "select-false",
            "(select ?c ?a ?b)",
            "?b",
            vec![equals("?c", 0.0)?],
        )?,
        // Guarded by facts: inf - inf and inf * 0 are NaN, 0 / 0 is NaN,
        // and the sign of a zero product or quotient follows the operands.
        rule(
            "sub-self",
            "(sub ?x ?x)",
            "0",
            vec![proves("?x", |f| f.finite)?],
        )?,
        rule(
            "mul-zero",
            "(mul ?x ?z)",
            "?z",
            vec![zero("?z")?, proves("?x", |f| f.finite && f.plus_or_nan())?],
        )?,
        rule(
            "div-self",
            "(div ?x ?x)",
            "1",
            vec![proves("?x", |f| f.finite && f.nonzero)?],
        )?,
        rule(
            "zero-div",
            "(div ?z ?x)",
            "?z",
            vec![zero("?z")?, proves("?x", Facts::positive)?],
        )?,
        rule(
            "cast-round-trip",
            "(cast.f32 (cast.f64 ?x))",
            "?x",
            vec![dtype_is("?x", DType::F32)?],
        )?,
    ])
}

/// Strength reduction of powers and of divisions by powers of two.
fn strength() -> Result<Vec<EwRewrite>, String> {
    Ok(vec![
        // pow(x, ±0) = 1 for every x, NaN included.
        rule("pow-zero", "(pow ?x ?c)", "1", vec![zero("?c")?])?,
        rule("pow-one", "(pow ?x ?c)", "?x", vec![one("?c")?])?,
        rule(
            "pow-two",
            "(pow ?x ?c)",
            "(mul ?x ?x)",
            vec![equals("?c", 2.0)?],
        )?,
        rule(
            "pow-neg-one",
            "(pow ?x ?c)",
            "(recip ?x)",
            vec![equals("?c", -1.0)?],
        )?,
        // pow(-inf, 0.5) = +inf but sqrt(-inf) = NaN; pow(-0, 0.5) = +0 but
        // sqrt(-0) = -0.
        rule(
            "pow-half",
            "(pow ?x ?c)",
            "(sqrt ?x)",
            vec![equals("?c", 0.5)?, proves("?x", Facts::plus_or_nan)?],
        )?,
        rule(
            "pow-half-select",
            "(pow ?x ?c)",
            "(select (eq ?x -inf) inf (add (sqrt ?x) 0))",
            vec![equals("?c", 0.5)?],
        )?,
        rule(
            "div-pow2",
            "(div ?x ?c)",
            "(mul ?x (recip ?c))",
            vec![reciprocal_guard("?c")?],
        )?,
    ])
}

/// Folding of constant factors (the only reassociation, and only when it
/// is bitwise exact).
fn constant_factors() -> Result<Vec<EwRewrite>, String> {
    Ok(vec![
        rule(
            "mul-const-fold",
            "(mul ?a (mul ?b ?x))",
            "(mul (mul ?a ?b) ?x)",
            vec![not_const("?x")?, fold_guard()?],
        )?,
        rule(
            "neg-mul-const",
            "(neg (mul ?c ?x))",
            "(mul (neg ?c) ?x)",
            vec![value("?c", |_| true)?, not_const("?x")?],
        )?,
        rule(
            "mul-const-neg",
            "(mul ?c (neg ?x))",
            "(mul (neg ?c) ?x)",
            vec![value("?c", |_| true)?, not_const("?x")?],
        )?,
    ])
}

/// Numerically stable forms.
fn stable() -> Result<Vec<EwRewrite>, String> {
    let stable = |name: &str, lhs: &str, rhs: &str, guards: Vec<Guard>| {
        rule_with(name, lhs, rhs, guards, threshold_literal)
    };
    Ok(vec![
        // Where 1 + x rounds to 1 the original is exactly +0 and log1p(x)
        // is not: keep the zero (a zero that turns nonzero changes
        // `0 * inf` downstream). This costs more than the original, so it
        // is only extracted as part of something cheaper.
        rule(
            "log1p",
            "(log (add ?o ?x))",
            "(select (eq (add ?o ?x) ?o) 0 (log1p ?x))",
            vec![one("?o")?, not_const("?x")?],
        )?,
        rule(
            "expm1",
            "(sub (exp ?x) ?o)",
            "(select (eq (exp ?x) ?o) 0 (expm1 ?x))",
            vec![one("?o")?, not_const("?x")?],
        )?,
        // exp(-x) overflows for x < -EXP_MAX, where the original is exactly 0.
        stable(
            "sigmoid",
            "(recip (add ?o (exp (neg ?x))))",
            "(select (lt ?x -709) 0 (sigmoid ?x))",
            vec![one("?o")?, not_const("?x")?],
        )?,
        // exp(x) overflows for x > EXP_MAX, where the original is +inf, and
        // is lost against 1 for x <= SOFTPLUS_ZERO, where it is +0.
        stable(
            "softplus",
            "(log (add ?o (exp ?x)))",
            "(select (gt ?x 709) inf (select (le ?x -37) 0 (softplus ?x)))",
            vec![one("?o")?, not_const("?x")?],
        )?,
        stable(
            "softplus-log1p",
            "(log1p (exp ?x))",
            "(select (gt ?x 709) inf (softplus ?x))",
            vec![not_const("?x")?],
        )?,
    ])
}

/// Every rule, in the order the runner applies them.
///
/// Errors only if a pattern does not parse, which is a bug caught by the
/// tests.
pub(crate) fn rules() -> Result<Vec<EwRewrite>, String> {
    let mut all = cleanup()?;
    all.extend(strength()?);
    all.extend(constant_factors()?);
    all.extend(stable()?);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimise::testing::*;
    use crux_ir::graph::{eval, BinaryOp, CmpOp, Graph, GraphError, NodeId, Tensor, UnaryOp};

    type R = Result<(), GraphError>;

    fn c(g: &mut Graph, v: f64, like: NodeId) -> Result<NodeId, GraphError> {
        g.constant_like(v, like)
    }

    fn un(g: &mut Graph, op: UnaryOp, x: NodeId) -> Result<NodeId, GraphError> {
        g.unary(op, x)
    }

    /// Optimises, checks interpreter equality on `vals` and that the
    /// weighted cost went down; returns the optimised graph.
    fn improves(g: &Graph, vals: &[f64]) -> Graph {
        let (opt, report) = optimise_checked(g, vals);
        assert!(
            weighted(report.cost_after) < weighted(report.cost_before),
            "cost {:?} -> {:?}",
            report.cost_before,
            report.cost_after
        );
        opt
    }

    /// `select(x > 0, a, b)`: finite and not constant, whatever `x` is.
    fn either(g: &mut Graph, x: NodeId, a: f64, b: f64) -> Result<NodeId, GraphError> {
        let (zero, ca, cb) = (c(g, 0.0, x)?, c(g, a, x)?, c(g, b, x)?);
        let cond = g.compare(CmpOp::Gt, x, zero)?;
        g.select(cond, ca, cb)
    }

    #[test]
    fn all_rules_build() {
        let rs = rules().expect("rules parse");
        let mut names: Vec<String> = rs.iter().map(|r| r.name.to_string()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "rule names are unique");
    }

    #[test]
    fn additive_and_multiplicative_identities_vanish() -> R {
        let (mut g, p) = setup(DType::F64, 2, SPECIAL);
        let (x, y) = (p[0], p[1]);
        let (zero, one, nzero) = (c(&mut g, 0.0, x)?, c(&mut g, 1.0, x)?, c(&mut g, -0.0, x)?);
        let a = g.add2(x, nzero)?; // x + -0
        let a = g.mul(a, one)?; // x * 1
        let a = g.mul(one, a)?; // 1 * x
        let a = g.sub(a, zero)?; // x - +0
        let a = g.div(a, one)?; // x / 1
        g.set_output("x", a);
        // exp never gives -0, so `+ 0` is an identity on it.
        let e = un(&mut g, UnaryOp::Exp, y)?;
        let t = g.add2(zero, e)?;
        g.set_output("exp", t);
        let t = g.sub(nzero, y)?; // -0 - y
        g.set_output("neg_y", t);
        let s = either(&mut g, x, 2.0, -3.0)?;
        let t = g.sub(zero, s)?; // +0 - s, s never ±0
        g.set_output("neg_s", t);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "x"), "x");
        assert_eq!(out(&opt, "exp"), "(exp y)");
        assert_eq!(out(&opt, "neg_y"), "(neg y)");
        assert!(out(&opt, "neg_s").starts_with("(neg (select"));
        Ok(())
    }

    #[test]
    fn signed_zeros_keep_identities_conditional() -> R {
        // -0 + 0 = +0, x - -0 = x + 0 and 0 - +0 = +0: for a parameter these
        // stay, or `1 / result` would turn +inf into -inf.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let (zero, nzero) = (c(&mut g, 0.0, x)?, c(&mut g, -0.0, x)?);
        let t = g.add2(x, zero)?;
        let r = un(&mut g, UnaryOp::Recip, t)?;
        g.set_output("add_zero", r);
        let t = g.sub(x, nzero)?;
        let r = un(&mut g, UnaryOp::Recip, t)?;
        g.set_output("sub_neg_zero", r);
        let t = g.sub(zero, x)?;
        let r = un(&mut g, UnaryOp::Recip, t)?;
        g.set_output("zero_sub", r);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "add_zero"), "(recip (add 0 x))");
        assert_eq!(out(&opt, "sub_neg_zero"), "(recip (sub x -0))");
        assert_eq!(out(&opt, "zero_sub"), "(recip (sub 0 x))");
        Ok(())
    }

    #[test]
    fn negations_cancel() -> R {
        let (mut g, p) = setup(DType::F64, 2, SPECIAL);
        let (a, b) = (p[0], p[1]);
        let m1 = c(&mut g, -1.0, a)?;
        let (na, nb) = (g.neg(a)?, g.neg(b)?);
        let nna = g.neg(na)?;
        g.set_output("neg_neg", nna);
        let t = g.mul(a, m1)?;
        g.set_output("mul_neg_one", t);
        let t = g.div(a, m1)?;
        g.set_output("div_neg_one", t);
        let t = g.mul(na, nb)?;
        g.set_output("neg_times_neg", t);
        let t = g.sub(a, nb)?;
        g.set_output("sub_neg", t);
        let t = g.add2(a, nb)?;
        g.set_output("add_neg", t);
        let t = g.add2(na, b)?;
        g.set_output("neg_add", t);
        // -(a - b) is -0 where b - a is +0 (a = b): kept.
        let d = g.sub(a, b)?;
        let t = g.neg(d)?;
        g.set_output("neg_sub", t);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "neg_neg"), "x");
        assert_eq!(out(&opt, "mul_neg_one"), "(neg x)");
        assert_eq!(out(&opt, "div_neg_one"), "(neg x)");
        assert_eq!(out(&opt, "neg_times_neg"), "(mul x y)");
        assert_eq!(out(&opt, "sub_neg"), "(add x y)");
        assert_eq!(out(&opt, "add_neg"), "(sub x y)");
        assert_eq!(out(&opt, "neg_add"), "(sub y x)");
        assert_eq!(out(&opt, "neg_sub"), "(neg (sub x y))");
        Ok(())
    }

    #[test]
    fn select_simplifies() -> R {
        let (mut g, p) = setup(DType::F64, 2, SPECIAL);
        let (x, y) = (p[0], p[1]);
        let cond = g.compare(CmpOp::Gt, x, y)?;
        let e = un(&mut g, UnaryOp::Exp, y)?;
        let s = g.select(cond, e, e)?;
        g.set_output("same", s);
        let (one, two) = (c(&mut g, 1.0, x)?, c(&mut g, 2.0, x)?);
        let t = g.compare(CmpOp::Le, one, two)?;
        let s = g.select(t, x, y)?;
        g.set_output("true", s);
        let f = g.compare(CmpOp::Ne, one, one)?;
        let s = g.select(f, x, y)?;
        g.set_output("false", s);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "same"), "(exp y)");
        assert_eq!(out(&opt, "true"), "x");
        assert_eq!(out(&opt, "false"), "y");
        Ok(())
    }

    #[test]
    fn guarded_rules_do_not_fire_on_parameters() -> R {
        // A parameter may be inf or NaN (x - x = NaN, x * 0 = NaN), 0
        // (x / x = NaN, 0 / x = NaN) or negative (x * 0 = -0).
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let zero = c(&mut g, 0.0, x)?;
        let t = g.sub(x, x)?;
        g.set_output("sub_self", t);
        let t = g.mul(x, zero)?;
        g.set_output("mul_zero", t);
        let t = g.div(x, x)?;
        g.set_output("div_self", t);
        let t = g.div(zero, x)?;
        g.set_output("zero_div", t);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "sub_self"), "(sub x x)");
        assert_eq!(out(&opt, "mul_zero"), "(mul 0 x)");
        assert_eq!(out(&opt, "div_self"), "(div x x)");
        assert_eq!(out(&opt, "zero_div"), "(div 0 x)");
        // And the NaNs really are there.
        let r = eval(&opt, &inputs(&g, SPECIAL))?;
        assert!(r.iter().all(|t| t.data.iter().any(|v| v.is_nan())));
        Ok(())
    }

    #[test]
    fn guarded_rules_fire_on_proven_facts() -> R {
        // `s` is not a constant but is finite and positive whatever x is;
        // stored data is finite when all its values are.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let n = g.ty(x).1.numel();
        let zero = c(&mut g, 0.0, x)?;
        let s = either(&mut g, x, 2.0, 3.0)?;
        let t = g.sub(s, s)?;
        g.set_output("sub_self", t);
        let t = g.mul(s, zero)?;
        g.set_output("mul_zero", t);
        let t = g.div(s, s)?;
        g.set_output("div_self", t);
        let t = g.div(zero, s)?;
        g.set_output("zero_div", t);
        // Finite but of either sign: the sign of a zero product varies.
        let m = either(&mut g, x, 2.0, -3.0)?;
        let t = g.mul(m, zero)?;
        g.set_output("mixed_mul_zero", t);
        let d = g.add_data(
            "obs",
            Tensor::f64([n], (0..n).map(|i| i as f64 - 3.0).collect())?,
        );
        let dn = g.data_node(d)?;
        let t = g.sub(dn, dn)?;
        g.set_output("data_sub_self", t);
        // Data holding an infinity is not finite.
        let mut vals = vec![1.0; n];
        vals[0] = f64::INFINITY;
        let d = g.add_data("inf", Tensor::f64([n], vals)?);
        let dn = g.data_node(d)?;
        let t = g.sub(dn, dn)?;
        g.set_output("inf_sub_self", t);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "sub_self"), "0");
        assert_eq!(out(&opt, "mul_zero"), "0");
        assert_eq!(out(&opt, "div_self"), "1");
        assert_eq!(out(&opt, "zero_div"), "0");
        assert!(out(&opt, "mixed_mul_zero").starts_with("(mul (select (gt x 0) 2 -3) 0)"));
        assert_eq!(out(&opt, "data_sub_self"), "0");
        assert_eq!(out(&opt, "inf_sub_self"), "(sub inf inf)");
        Ok(())
    }

    #[test]
    fn constants_fold_like_the_interpreter() -> R {
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let (half, three, two) = (c(&mut g, 0.5, x)?, c(&mut g, 3.0, x)?, c(&mut g, 2.0, x)?);
        let e = un(&mut g, UnaryOp::Exp, half)?;
        let m = g.mul(e, three)?;
        let s = un(&mut g, UnaryOp::Sqrt, two)?;
        let k = g.add2(m, s)?;
        let pw = g.binary(BinaryOp::Pow, k, half)?;
        let y = g.mul(x, pw)?;
        g.set_output("y", y);
        g.set_output("k", pw);
        let opt = improves(&g, SPECIAL);
        let want = (0.5f64.exp() * 3.0 + 2f64.sqrt()).powf(0.5);
        assert_eq!(
            opt.const_value(opt.output("k")?).map(f64::to_bits),
            Some(want.to_bits())
        );
        assert_eq!(out(&opt, "y"), format!("(mul {want} x)"));
        Ok(())
    }

    #[test]
    fn powers_are_strength_reduced() -> R {
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        for (name, k) in [
            ("p2", 2.0),
            ("p1", 1.0),
            ("p0", 0.0),
            ("pm1", -1.0),
            ("phalf", 0.5),
        ] {
            let kc = c(&mut g, k, x)?;
            let t = g.binary(BinaryOp::Pow, x, kc)?;
            g.set_output(name, t);
        }
        // exp(x) is never -inf nor -0, so its square root needs no fix-up.
        let e = un(&mut g, UnaryOp::Exp, x)?;
        let half = c(&mut g, 0.5, x)?;
        let t = g.binary(BinaryOp::Pow, e, half)?;
        g.set_output("sqrt_exp", t);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "p2"), "(mul x x)");
        assert_eq!(out(&opt, "p1"), "x");
        assert_eq!(out(&opt, "p0"), "1");
        assert_eq!(out(&opt, "pm1"), "(recip x)");
        assert_eq!(
            out(&opt, "phalf"),
            "(select (eq x -inf) inf (add (sqrt x) 0))"
        );
        assert_eq!(out(&opt, "sqrt_exp"), "(sqrt (exp x))");
        // Other exponents stay powers.
        let (mut h, p) = setup(DType::F64, 1, SPECIAL);
        let k = c(&mut h, 3.0, p[0])?;
        let t = h.binary(BinaryOp::Pow, p[0], k)?;
        h.set_output("p3", t);
        let (opt, _) = optimise_checked(&h, SPECIAL);
        assert_eq!(out(&opt, "p3"), "(pow x 3)");
        Ok(())
    }

    #[test]
    fn division_by_power_of_two_becomes_exact_multiplication() -> R {
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        for (name, k) in [
            ("quarter", 4.0),
            ("neg_half", -0.5),
            ("third", 3.0),
            ("huge", 2f64.powi(1023)),
        ] {
            let kc = c(&mut g, k, x)?;
            let t = g.div(x, kc)?;
            g.set_output(name, t);
        }
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "quarter"), "(mul 0.25 x)");
        assert_eq!(out(&opt, "neg_half"), "(mul -2 x)");
        assert_eq!(out(&opt, "third"), "(div x 3)");
        assert_eq!(out(&opt, "huge"), format!("(mul {} x)", 2f64.powi(-1023)));
        // Bitwise equal, not just close.
        let ins = inputs(&g, SPECIAL);
        let (a, b) = (eval(&g, &ins)?, eval(&opt, &ins)?);
        assert!(same_values(&a, &b));
        assert!(exact_reciprocal(2f64.powi(-1022), DType::F64));
        assert!(!exact_reciprocal(2f64.powi(-1074), DType::F64));
        assert!(exact_reciprocal(2f64.powi(-127), DType::F32));
        assert!(!exact_reciprocal(2f64.powi(-149), DType::F32));
        assert!(!exact_reciprocal(0.0, DType::F64));
        assert!(!exact_reciprocal(f64::INFINITY, DType::F64));
        Ok(())
    }

    #[test]
    fn chained_constant_factors_fold_only_when_exact() -> R {
        // Values near the overflow threshold: 0.5 * (2 * x) is inf there.
        let vals = [SPECIAL, &[1.7e308, -1e308, 5e-324]].concat();
        let (mut g, p) = setup(DType::F64, 1, &vals);
        let x = p[0];
        let (two, three, half, tenth) = (
            c(&mut g, 2.0, x)?,
            c(&mut g, 3.0, x)?,
            c(&mut g, 0.5, x)?,
            c(&mut g, 0.1, x)?,
        );
        let a = g.mul(two, x)?;
        let a = g.mul(three, a)?;
        g.set_output("six", a);
        let b = g.mul(three, x)?;
        let b = g.mul(two, b)?;
        g.set_output("inner_three", b);
        let b = g.mul(two, x)?;
        let b = g.mul(half, b)?;
        g.set_output("overflowing", b);
        let b = g.mul(x, tenth)?;
        let b = g.mul(b, three)?;
        g.set_output("inexact", b);
        let nx = g.neg(x)?;
        let t = g.mul(three, nx)?;
        g.set_output("const_times_neg", t);
        let m = g.mul(three, x)?;
        let t = g.neg(m)?;
        g.set_output("neg_of_product", t);
        let (opt, _) = optimise_checked(&g, &vals);
        assert_eq!(out(&opt, "six"), "(mul 6 x)");
        // 3 * x rounds (and may underflow) before the second factor.
        assert_eq!(out(&opt, "inner_three"), "(mul (mul 3 x) 2)");
        // 2 * x overflows where x does not.
        assert_eq!(out(&opt, "overflowing"), "(mul (mul 2 x) 0.5)");
        assert_eq!(out(&opt, "inexact"), "(mul (mul 0.1 x) 3)");
        assert_eq!(out(&opt, "const_times_neg"), "(mul -3 x)");
        assert_eq!(out(&opt, "neg_of_product"), "(mul -3 x)");
        let ins = inputs(&g, &vals);
        let (a, b) = (eval(&g, &ins)?, eval(&opt, &ins)?);
        assert!(same_values(&a, &b), "folding is exact");
        assert!(exact_fold(3.0, 2.0, DType::F64));
        assert!(exact_fold(-0.75 * 4.0, 0.5 * 4.0, DType::F32));
        assert!(!exact_fold(2.0, 3.0, DType::F64));
        assert!(!exact_fold(0.5, 2.0, DType::F64));
        assert!(!exact_fold(3.0, 0.5, DType::F64));
        assert!(!exact_fold(1e308, 4.0, DType::F64));
        assert!(!exact_fold(1e38, 4.0, DType::F32));
        Ok(())
    }

    /// `f(x)` built from `build`, optimised and checked on `vals`; never
    /// more expensive (`log1p(x) + 0` costs what `log(1 + x)` does).
    fn stable_form(
        dtype: DType,
        build: impl Fn(&mut Graph, NodeId) -> Result<NodeId, GraphError>,
        vals: &[f64],
    ) -> Result<(Graph, Graph), GraphError> {
        let (mut g, p) = setup(dtype, 1, vals);
        let y = build(&mut g, p[0])?;
        g.set_output("y", y);
        let (opt, report) = optimise_checked(&g, vals);
        assert!(weighted(report.cost_after) <= weighted(report.cost_before));
        Ok((g, opt))
    }

    /// Evaluates the single output of `g` at one value of x.
    fn at(g: &Graph, x: f64) -> f64 {
        let info = &g.params()[0];
        let r = eval(g, &[Tensor::full(info.dtype, info.shape.clone(), x)]).expect("evaluates");
        r[0].data[0]
    }

    /// Whether `from` and `to` end up in one e-class after running the
    /// rules (egg's goal-based style, for rewrites the cost function then
    /// declines).
    fn proves_equal(from: &str, to: &str) -> bool {
        let (a, b): (egg::RecExpr<Ew>, egg::RecExpr<Ew>) =
            (from.parse().expect("parses"), to.parse().expect("parses"));
        let rules = rules().expect("rules parse");
        let runner = egg::Runner::<Ew, EwAnalysis, ()>::new(EwAnalysis::default())
            .with_expr(&a)
            .with_expr(&b)
            .run(&rules);
        runner.egraph.find(runner.roots[0]) == runner.egraph.find(runner.roots[1])
    }

    #[test]
    fn stable_log1p_and_expm1_keep_zeros() -> R {
        // Proven equal, zero-preserving forms...
        assert!(proves_equal(
            "(log (add 1 $0:f64))",
            "(select (eq (add $0:f64 1) 1) 0 (log1p $0:f64))"
        ));
        assert!(proves_equal(
            "(sub (exp $0:f32) 1:f32)",
            "(select (eq (exp $0:f32) 1:f32) 0:f32 (expm1 $0:f32))"
        ));
        assert!(!proves_equal("(log (add 1 $0:f64))", "(log1p $0:f64)"));
        // ...that cost more than the originals, which are kept.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let one = c(&mut g, 1.0, p[0])?;
        let s = g.add2(one, p[0])?;
        let t = un(&mut g, UnaryOp::Log, s)?;
        g.set_output("log", t);
        let e = un(&mut g, UnaryOp::Exp, p[0])?;
        let t = g.sub(e, one)?;
        g.set_output("exp", t);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "log"), "(log (add 1 x))");
        assert_eq!(out(&opt, "exp"), "(sub (exp x) 1)");
        Ok(())
    }

    #[test]
    fn stable_sigmoid_and_softplus_keep_overflow() -> R {
        for dtype in [DType::F64, DType::F32] {
            let t = exp_overflow_threshold(dtype);
            let up = |v: f64| match dtype {
                DType::F32 => (v as f32).next_up() as f64,
                _ => v.next_up(),
            };
            // Both sides of every overflow threshold, and the IEEE corners.
            let edges = [
                MODERATE,
                &[
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                    0.0,
                    -0.0,
                    t,
                    up(t),
                    -t,
                    -up(t),
                    750.0,
                    -750.0,
                ],
            ]
            .concat();
            let vals: Vec<f64> = edges.iter().map(|&v| dtype.round(v)).collect();
            // 1 / (1 + exp(-x)), written as AD would: a division and 0 - x.
            let logistic = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
                let (one, zero) = (g.constant_like(1.0, x)?, g.constant_like(-0.0, x)?);
                let nx = g.sub(zero, x)?;
                let e = g.unary(UnaryOp::Exp, nx)?;
                let d = g.add2(e, one)?;
                g.div(one, d)
            };
            let (_, opt) = stable_form(dtype, logistic, &vals)?;
            assert_eq!(
                out(&opt, "y"),
                format!("(select (lt x {}) 0 (sigmoid x))", -t)
            );
            let softplus = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
                let one = g.constant_like(1.0, x)?;
                let e = g.unary(UnaryOp::Exp, x)?;
                let s = g.add2(one, e)?;
                g.unary(UnaryOp::Log, s)
            };
            let l = softplus_zero_threshold(dtype);
            // (Above l the original is only accurate to ~1e-16 absolute.)
            let vals: Vec<f64> = [vals.as_slice(), &[l, -40.0, -800.0]].concat();
            let (g, opt) = stable_form(dtype, softplus, &vals)?;
            assert_eq!(
                out(&opt, "y"),
                format!("(select (gt x {t}) inf (select (le x {l}) 0 (softplus x)))")
            );
            assert_eq!(at(&opt, up(t)), f64::INFINITY);
            // Zero exactly where the original is; more accurate above.
            assert_eq!((at(&g, l), at(&opt, l)), (0.0, 0.0));
            assert!(at(&opt, up(l)) > 0.0);
            let x = dtype.round(l * 0.9);
            let want = x.exp().ln_1p();
            let (e_opt, e_orig) = ((at(&opt, x) - want).abs(), (at(&g, x) - want).abs());
            assert!(e_opt < e_orig, "{dtype} at {x}: {e_opt:e} vs {e_orig:e}");
            let log1p_exp = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
                let e = g.unary(UnaryOp::Exp, x)?;
                g.unary(UnaryOp::Log1p, e)
            };
            let (_, opt) = stable_form(dtype, log1p_exp, &vals)?;
            assert_eq!(
                out(&opt, "y"),
                format!("(select (gt x {t}) inf (softplus x))")
            );
        }
        Ok(())
    }

    #[test]
    fn overflow_thresholds_match_the_interpreter() {
        for dt in [DType::F64, DType::F32] {
            let l = softplus_zero_threshold(dt);
            let f = |x: f64| dt.round(dt.round(1.0 + dt.round(x.exp())).ln());
            let up = if dt == DType::F32 {
                (l as f32).next_up() as f64
            } else {
                l.next_up()
            };
            assert_eq!(dt.round(l), l);
            assert!(f(l) == 0.0 && f(up) > 0.0, "{dt}: {l}");
        }
        let t = exp_overflow_threshold(DType::F64);
        assert!(t.exp().is_finite() && t.next_up().exp().is_infinite());
        let t = exp_overflow_threshold(DType::F32);
        let r = |v: f64| DType::F32.round(v.exp());
        assert_eq!(DType::F32.round(t), t);
        assert!(r(t).is_finite() && r((t as f32).next_up() as f64).is_infinite());
    }

    #[test]
    fn inverse_pairs_that_change_overflow_are_kept() -> R {
        // log(exp(x)) is inf where exp overflows, x is not; exp(log(x)) is
        // NaN for x < 0.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let e = un(&mut g, UnaryOp::Exp, p[0])?;
        let t = un(&mut g, UnaryOp::Log, e)?;
        g.set_output("log_exp", t);
        let l = un(&mut g, UnaryOp::Log, p[0])?;
        let t = un(&mut g, UnaryOp::Exp, l)?;
        g.set_output("exp_log", t);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "log_exp"), "(log (exp x))");
        assert_eq!(out(&opt, "exp_log"), "(exp (log x))");
        Ok(())
    }

    #[test]
    fn stable_forms_leave_constants_to_folding() -> R {
        // log(1 + c) folds to exactly what the interpreter computes, not to
        // log1p(c).
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let k = c(&mut g, 1e-10, p[0])?;
        let one = c(&mut g, 1.0, p[0])?;
        let s = g.add2(one, k)?;
        let l = un(&mut g, UnaryOp::Log, s)?;
        let y = g.mul(p[0], l)?;
        g.set_output("y", y);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "y"), format!("(mul {} x)", (1.0 + 1e-10f64).ln()));
        Ok(())
    }
}
