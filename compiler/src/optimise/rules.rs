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
//! Families, and how far each may move a result away from the
//! interpreter's:
//!
//! * cleanup after AD (identities, negations, select): exact up to the
//!   sign of a zero result (`x + 0 → x` turns `-0 + 0 = +0` into `-0`);
//! * constant folding: the analysis, with the interpreter's semantics;
//! * strength reduction: exact (`x / 2^k → x * 2^-k`), or within 1 ulp
//!   (`pow(x, 2) → x * x`, `pow(x, 0.5) → sqrt(x)`, `pow(x, -1) → recip(x)`);
//! * folding of constant factors `c1 * (c2 * x) → (c1 c2) * x`, only when
//!   `c1 c2` is exact and normal: at most 1 ulp, and never less accurate;
//! * stable forms (`log1p`, `expm1`, `sigmoid`, `softplus`, ...): more
//!   accurate, so they differ where the original lost precision (tiny
//!   arguments, overflow of an intermediate `exp`). These never fire on a
//!   constant argument (the original folds anyway, and two different
//!   constants in one class would be ambiguous).
//!
//! Associativity is left out on purpose: it changes rounding. Commutativity
//! of `add` and `mul` is in: it changes nothing.

use crux_ir::graph::DType;
use egg::{
    Applier, EGraph, ENodeOrVar, Id, Language, Pattern, PatternAst, Rewrite, Subst, Symbol, Var,
};

use super::egraph::{ClassData, Ew, EwAnalysis, Facts};

/// A rule of the elementwise language.
pub(crate) type EwRewrite = Rewrite<Ew, EwAnalysis>;

type Guard = Box<dyn Fn(&EGraph<Ew, EwAnalysis>, &Subst) -> bool + Send + Sync>;

/// A right-hand side whose literals are retyped to the dtype of the class
/// it rewrites, applied only when every guard holds.
struct Rhs {
    ast: PatternAst<Ew>,
    guards: Vec<Guard>,
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
                    egraph.add(Ew::constant(f64::from_bits(*bits), dtype))
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

fn rule(name: &str, lhs: &str, rhs: &str, guards: Vec<Guard>) -> Result<EwRewrite, String> {
    let searcher: Pattern<Ew> = lhs
        .parse()
        .map_err(|e| format!("rule {name}: left side: {e}"))?;
    let ast: PatternAst<Ew> = rhs
        .parse()
        .map_err(|e| format!("rule {name}: right side: {e}"))?;
    Rewrite::new(name, searcher, Rhs { ast, guards })
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
    let bits = c.abs().to_bits();
    let (exp, mant) = (bits >> 52, bits & ((1u64 << 52) - 1));
    let pow2 = if exp == 0 {
        mant.is_power_of_two()
    } else {
        mant == 0
    };
    let r = 1.0 / c;
    pow2 && r.is_finite() && r != 0.0 && dtype.round(r) == r && r * c == 1.0
}

/// `a * b` is exact and normal in `dtype`: folding it into a chain of
/// products then rounds once where the original rounded twice.
pub(crate) fn exact_normal_product(a: f64, b: f64, dtype: DType) -> bool {
    let p = dtype.round(a * b);
    let min_normal = match dtype {
        DType::F32 => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    };
    // f32 operands multiply exactly in f64; for f64 the fused residual
    // tells whether the rounded product is exact.
    let exact = match dtype {
        DType::F32 => p == a * b,
        _ => a.mul_add(b, -p) == 0.0,
    };
    p.is_finite() && p.abs() >= min_normal && exact
}

fn fold_guard() -> Result<Guard, String> {
    let (a, b) = (var("?a")?, var("?b")?);
    Ok(Box::new(move |eg, s| {
        let (da, db) = (data(eg, s, a), data(eg, s, b));
        match (da.value, db.value) {
            (Some(u), Some(v)) => exact_normal_product(u, v, da.dtype),
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
        rule("add-zero", "(add ?x ?z)", "?x", vec![zero("?z")?])?,
        rule("sub-zero", "(sub ?x ?z)", "?x", vec![zero("?z")?])?,
        rule("zero-sub", "(sub ?z ?x)", "(neg ?x)", vec![zero("?z")?])?,
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
        rule("sub-neg", "(sub ?a (neg ?b))", "(add ?a ?b)", vec![])?,
        rule("add-neg", "(add ?a (neg ?b))", "(sub ?a ?b)", vec![])?,
        rule("neg-sub", "(neg (sub ?a ?b))", "(sub ?b ?a)", vec![])?,
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
        // Guarded by facts: inf - inf and inf * 0 are NaN, 0 / 0 is NaN.
        rule(
            "sub-self",
            "(sub ?x ?x)",
            "0",
            vec![proves("?x", |f| f.finite)?],
        )?,
        rule(
            "mul-zero",
            "(mul ?x ?z)",
            "0",
            vec![zero("?z")?, proves("?x", |f| f.finite)?],
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
            "0",
            vec![zero("?z")?, proves("?x", |f| f.nonzero && f.not_nan)?],
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
        // pow(-inf, 0.5) = +inf but sqrt(-inf) = NaN.
        rule(
            "pow-half",
            "(pow ?x ?c)",
            "(sqrt ?x)",
            vec![equals("?c", 0.5)?, proves("?x", |f| f.not_negative)?],
        )?,
        rule(
            "pow-half-select",
            "(pow ?x ?c)",
            "(select (eq ?x -inf) inf (sqrt ?x))",
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

/// Folding of constant factors (the only reassociation, and only when the
/// product of the constants is exact).
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
    Ok(vec![
        rule(
            "log1p",
            "(log (add ?o ?x))",
            "(log1p ?x)",
            vec![one("?o")?, not_const("?x")?],
        )?,
        rule(
            "expm1",
            "(sub (exp ?x) ?o)",
            "(expm1 ?x)",
            vec![one("?o")?, not_const("?x")?],
        )?,
        // Exact for ±inf and NaN too; only the overflow of exp is gone.
        rule("log-exp", "(log (exp ?x))", "?x", vec![not_const("?x")?])?,
        // For x < 0 exp(log(x)) is NaN.
        rule(
            "exp-log",
            "(exp (log ?x))",
            "?x",
            vec![proves("?x", |f| f.not_negative)?, not_const("?x")?],
        )?,
        rule(
            "sigmoid",
            "(recip (add ?o (exp (neg ?x))))",
            "(sigmoid ?x)",
            vec![one("?o")?, not_const("?x")?],
        )?,
        rule(
            "sigmoid-exp",
            "(div (exp ?x) (add ?o (exp ?x)))",
            "(sigmoid ?x)",
            vec![one("?o")?, not_const("?x")?],
        )?,
        rule(
            "softplus",
            "(log (add ?o (exp ?x)))",
            "(softplus ?x)",
            vec![one("?o")?, not_const("?x")?],
        )?,
        rule(
            "softplus-log1p",
            "(log1p (exp ?x))",
            "(softplus ?x)",
            vec![not_const("?x")?],
        )?,
        rule(
            "log-sigmoid",
            "(log (sigmoid ?x))",
            "(neg (softplus (neg ?x)))",
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
        let (zero, one) = (c(&mut g, 0.0, x)?, c(&mut g, 1.0, x)?);
        let nzero = c(&mut g, -0.0, x)?;
        let a = g.add2(x, zero)?; // x + 0
        let a = g.add2(zero, a)?; // 0 + x
        let a = g.mul(a, one)?; // x * 1
        let a = g.mul(one, a)?; // 1 * x
        let a = g.sub(a, nzero)?; // x - (-0)
        let a = g.div(a, one)?; // x / 1
        g.set_output("x", a);
        let b = g.sub(zero, y)?; // 0 - y
        g.set_output("neg_y", b);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "x"), "x");
        assert_eq!(out(&opt, "neg_y"), "(neg y)");
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
        assert_eq!(out(&opt, "neg_sub"), "(sub y x)");
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
        // A parameter may be inf or NaN (x - x = NaN, x * 0 = NaN) or 0
        // (x / x = NaN, 0 / x = NaN): nothing may change.
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
        // `s` is not a constant but is finite and nonzero whatever x is;
        // stored data is finite when all its values are.
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let n = g.ty(x).1.numel();
        let (zero, two, three) = (c(&mut g, 0.0, x)?, c(&mut g, 2.0, x)?, c(&mut g, -3.0, x)?);
        let cond = g.compare(CmpOp::Gt, x, zero)?;
        let s = g.select(cond, two, three)?;
        let t = g.sub(s, s)?;
        g.set_output("sub_self", t);
        let t = g.mul(s, zero)?;
        g.set_output("mul_zero", t);
        let t = g.div(s, s)?;
        g.set_output("div_self", t);
        let t = g.div(zero, s)?;
        g.set_output("zero_div", t);
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
        // exp(x) is never -inf, so its square root needs no fix-up.
        let e = un(&mut g, UnaryOp::Exp, x)?;
        let half = c(&mut g, 0.5, x)?;
        let t = g.binary(BinaryOp::Pow, e, half)?;
        g.set_output("sqrt_exp", t);
        let opt = improves(&g, SPECIAL);
        assert_eq!(out(&opt, "p2"), "(mul x x)");
        assert_eq!(out(&opt, "p1"), "x");
        assert_eq!(out(&opt, "p0"), "1");
        assert_eq!(out(&opt, "pm1"), "(recip x)");
        assert_eq!(out(&opt, "phalf"), "(select (eq x -inf) inf (sqrt x))");
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
        assert!(a.iter().zip(&b).all(|(s, t)| s.bit_eq(t)));
        assert!(exact_reciprocal(2f64.powi(-1022), DType::F64));
        assert!(!exact_reciprocal(2f64.powi(-1074), DType::F64));
        assert!(exact_reciprocal(2f64.powi(-127), DType::F32));
        assert!(!exact_reciprocal(2f64.powi(-149), DType::F32));
        assert!(!exact_reciprocal(0.0, DType::F64));
        assert!(!exact_reciprocal(f64::INFINITY, DType::F64));
        Ok(())
    }

    #[test]
    fn chained_constant_factors_fold_when_exact() -> R {
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let x = p[0];
        let (two, three, tenth) = (c(&mut g, 2.0, x)?, c(&mut g, 3.0, x)?, c(&mut g, 0.1, x)?);
        let a = g.mul(three, x)?;
        let a = g.mul(two, a)?;
        g.set_output("six", a);
        let b = g.mul(x, tenth)?;
        let b = g.mul(b, three)?;
        g.set_output("inexact", b);
        let nx = g.neg(x)?;
        let t = g.mul(three, nx)?;
        g.set_output("const_times_neg", t);
        let m = g.mul(three, x)?;
        let t = g.neg(m)?;
        g.set_output("neg_of_product", t);
        let (opt, _) = optimise_checked(&g, SPECIAL);
        assert_eq!(out(&opt, "six"), "(mul 6 x)");
        // 0.1 * 3 is not exact in binary: folding would round differently.
        assert_eq!(out(&opt, "inexact"), "(mul (mul 0.1 x) 3)");
        assert_eq!(out(&opt, "const_times_neg"), "(mul -3 x)");
        assert_eq!(out(&opt, "neg_of_product"), "(mul -3 x)");
        assert!(exact_normal_product(0.1, 0.5, DType::F64));
        assert!(!exact_normal_product(0.1, 3.0, DType::F64));
        assert!(!exact_normal_product(1e300, 1e300, DType::F64));
        assert!(!exact_normal_product(f64::MIN_POSITIVE, 0.5, DType::F64));
        assert!(exact_normal_product(3.0, 5.0, DType::F32));
        assert!(!exact_normal_product(1e30, 1e30, DType::F32));
        Ok(())
    }

    /// `f(x)` built from `build`, optimised; returns the rendering.
    fn stable_form(
        build: impl Fn(&mut Graph, NodeId) -> Result<NodeId, GraphError>,
        vals: &[f64],
    ) -> Result<(Graph, Graph), GraphError> {
        let (mut g, p) = setup(DType::F64, 1, vals);
        let y = build(&mut g, p[0])?;
        g.set_output("y", y);
        let opt = improves(&g, vals);
        Ok((g, opt))
    }

    /// Evaluates the single output of `g` at one value of x.
    fn at(g: &Graph, x: f64) -> f64 {
        let n = g.params()[0].shape.numel();
        let r = eval(g, &[Tensor::full(DType::F64, [n], x)]).expect("evaluates");
        r[0].data[0]
    }

    #[test]
    fn stable_log1p_and_expm1() -> R {
        let one_plus = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let one = g.constant_like(1.0, x)?;
            let s = g.add2(one, x)?;
            g.unary(UnaryOp::Log, s)
        };
        // Also exact on the IEEE corners: log(1 + -1) = log1p(-1) = -inf.
        let corners = [
            MODERATE,
            &[-1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -2.0],
        ]
        .concat();
        let (g, opt) = stable_form(one_plus, &corners)?;
        assert_eq!(out(&opt, "y"), "(log1p x)");
        // More accurate where the original lost digits.
        assert_eq!(at(&opt, 1e-10), 1e-10f64.ln_1p());
        assert!((at(&g, 1e-10) - 1e-10).abs() > 1e-18);
        let exp_minus = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let one = g.constant_like(1.0, x)?;
            let e = g.unary(UnaryOp::Exp, x)?;
            g.sub(e, one)
        };
        let corners = [MODERATE, &[f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.0]].concat();
        let (_, opt) = stable_form(exp_minus, &corners)?;
        assert_eq!(out(&opt, "y"), "(expm1 x)");
        assert_eq!(at(&opt, 1e-10), 1e-10f64.exp_m1());
        Ok(())
    }

    #[test]
    fn stable_sigmoid_and_softplus() -> R {
        let corners = [
            MODERATE,
            &[f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.0, -0.0],
        ]
        .concat();
        // 1 / (1 + exp(-x)), written as AD would: with a division and 0 - x.
        let logistic = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let (one, zero) = (g.constant_like(1.0, x)?, g.constant_like(0.0, x)?);
            let nx = g.sub(zero, x)?;
            let e = g.unary(UnaryOp::Exp, nx)?;
            let d = g.add2(e, one)?;
            g.div(one, d)
        };
        let (g, opt) = stable_form(logistic, &corners)?;
        assert_eq!(out(&opt, "y"), "(sigmoid x)");
        assert_eq!(at(&g, -740.0), 0.0);
        assert!(at(&opt, -740.0) > 0.0);
        let ratio = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let one = g.constant_like(1.0, x)?;
            let e = g.unary(UnaryOp::Exp, x)?;
            let d = g.add2(one, e)?;
            g.div(e, d)
        };
        let finite = [MODERATE, &[f64::NEG_INFINITY, f64::NAN, 0.0]].concat();
        let (_, opt) = stable_form(ratio, &finite)?;
        assert_eq!(out(&opt, "y"), "(sigmoid x)");
        let softplus = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let one = g.constant_like(1.0, x)?;
            let e = g.unary(UnaryOp::Exp, x)?;
            let s = g.add2(one, e)?;
            g.unary(UnaryOp::Log, s)
        };
        let (g, opt) = stable_form(softplus, &corners)?;
        assert_eq!(out(&opt, "y"), "(softplus x)");
        assert_eq!(at(&g, 800.0), f64::INFINITY);
        assert_eq!(at(&opt, 800.0), 800.0);
        let log_sigmoid = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let s = g.unary(UnaryOp::Sigmoid, x)?;
            g.unary(UnaryOp::Log, s)
        };
        let (_, opt) = stable_form(log_sigmoid, &corners)?;
        assert_eq!(out(&opt, "y"), "(neg (softplus (neg x)))");
        Ok(())
    }

    #[test]
    fn log_exp_inverses() -> R {
        let corners = [MODERATE, &[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]].concat();
        let log_exp = |g: &mut Graph, x: NodeId| -> Result<NodeId, GraphError> {
            let e = g.unary(UnaryOp::Exp, x)?;
            g.unary(UnaryOp::Log, e)
        };
        let (_, opt) = stable_form(log_exp, &corners)?;
        assert_eq!(out(&opt, "y"), "x");
        // exp(log(x)) = x only for x >= 0: kept for a parameter, removed
        // for the (never negative) exp(x).
        let (mut g, p) = setup(DType::F64, 1, SPECIAL);
        let l = un(&mut g, UnaryOp::Log, p[0])?;
        let t = un(&mut g, UnaryOp::Exp, l)?;
        g.set_output("param", t);
        let e = un(&mut g, UnaryOp::Abs, p[0])?;
        let l = un(&mut g, UnaryOp::Log, e)?;
        let t = un(&mut g, UnaryOp::Exp, l)?;
        g.set_output("abs", t);
        let (opt, _) = optimise(&g);
        assert_eq!(out(&opt, "param"), "(exp (log x))");
        assert_eq!(out(&opt, "abs"), "(abs x)");
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
