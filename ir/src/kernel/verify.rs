//! The kernel verifier: scoping, single definition, and types of every
//! instruction and region.

use std::collections::HashSet;

use super::{
    Access, BinOp, Function, Inst, InstKind, KernelError, MatRef, Region, Ty, UnOp, Value,
    MAX_GEMM_DIM,
};

struct Checker<'a> {
    f: &'a Function,
    defined: HashSet<Value>,
    /// Values visible at this point: a stack of scopes.
    scopes: Vec<Vec<Value>>,
}

impl Checker<'_> {
    fn err(&self, msg: impl Into<String>) -> KernelError {
        KernelError::Invalid {
            function: self.f.name.clone(),
            msg: msg.into(),
        }
    }

    fn ty(&self, v: Value) -> Result<Ty, KernelError> {
        self.f
            .values
            .get(v.index())
            .copied()
            .ok_or_else(|| self.err(format!("{v} has no type")))
    }

    fn define(&mut self, v: Value) -> Result<(), KernelError> {
        self.ty(v)?;
        if !self.defined.insert(v) {
            return Err(self.err(format!("{v} is defined twice")));
        }
        self.scopes
            .last_mut()
            .expect("values are defined inside a region, whose scope is pushed first")
            .push(v);
        Ok(())
    }

    fn use_(&self, v: Value) -> Result<Ty, KernelError> {
        if !self.scopes.iter().any(|s| s.contains(&v)) {
            return Err(self.err(format!("{v} is used where it is not defined")));
        }
        self.ty(v)
    }

    fn expect(&self, v: Value, ty: Ty, what: &str) -> Result<(), KernelError> {
        let t = self.use_(v)?;
        if t != ty {
            return Err(self.err(format!("{what}: {v} is {t}, expected {ty}")));
        }
        Ok(())
    }

    /// Checks a region whose parameters must have `params` types; returns its yield types.
    fn region(&mut self, r: &Region, params: &[Ty]) -> Result<Vec<Ty>, KernelError> {
        if r.params.len() != params.len() {
            return Err(self.err(format!(
                "region takes {} parameters, expected {}",
                r.params.len(),
                params.len()
            )));
        }
        self.scopes.push(Vec::new());
        for (p, t) in r.params.iter().zip(params) {
            self.define(*p)?;
            if self.ty(*p)? != *t {
                return Err(self.err(format!("region parameter {p} should be {t}")));
            }
        }
        for inst in &r.insts {
            self.inst(inst)?;
        }
        let ys = r
            .yields
            .iter()
            .map(|y| self.use_(*y))
            .collect::<Result<Vec<_>, _>>();
        self.scopes.pop();
        ys
    }

    /// The rules of [`InstKind::Gemm`] (see the module documentation of
    /// [`crate::kernel`]).
    fn gemm(
        &self,
        m: u64,
        n: u64,
        k: u64,
        a: &MatRef,
        b: &MatRef,
        out: &MatRef,
    ) -> Result<(), KernelError> {
        for (d, name) in [(m, "M"), (n, "N"), (k, "K")] {
            if !(1..=MAX_GEMM_DIM).contains(&d) {
                return Err(self.err(format!("gemm {name} = {d} is not in 1..={MAX_GEMM_DIM}")));
            }
        }
        let views = [
            (a, m, k, "left operand"),
            (b, k, n, "right operand"),
            (out, m, n, "output"),
        ];
        let mut hulls = Vec::with_capacity(3);
        for (v, rows, cols, what) in views {
            let d = self
                .f
                .buffers
                .get(v.buf.index())
                .ok_or_else(|| self.err(format!("gemm {what}: {} is not declared", v.buf)))?;
            if d.ty != Ty::F64 {
                return Err(self.err(format!(
                    "gemm {what} `{}` is {}, expected f64",
                    d.name, d.ty
                )));
            }
            let is_out = std::ptr::eq(v, out);
            let bad_access = if is_out {
                d.access == Access::Read
            } else {
                d.access == Access::Write
            };
            if bad_access {
                return Err(self.err(format!(
                    "gemm {what} `{}` is declared {:?}",
                    d.name, d.access
                )));
            }
            let last = v.last(rows, cols).ok_or_else(|| {
                self.err(format!(
                    "gemm {what}: its last index does not fit in an i64"
                ))
            })?;
            hulls.push((v.buf, v.off, last));
        }
        if !out.injective(m, n) {
            return Err(self.err(format!(
                "gemm output strides ({}, {}) map two entries of the {m}x{n} result to one element",
                out.rs, out.cs
            )));
        }
        let (ob, o0, o1) = hulls[2];
        for &(buf, lo, hi) in &hulls[..2] {
            if buf == ob && lo <= o1 && o0 <= hi {
                return Err(self.err(format!(
                    "gemm output {buf}[{o0}..={o1}] overlaps an operand at {buf}[{lo}..={hi}]"
                )));
            }
        }
        Ok(())
    }

    fn results(&mut self, inst: &Inst, tys: &[Ty]) -> Result<(), KernelError> {
        if inst.results.len() != tys.len() {
            return Err(self.err(format!(
                "{:?} defines {} values, expected {}",
                kind_name(&inst.kind),
                inst.results.len(),
                tys.len()
            )));
        }
        for (r, t) in inst.results.iter().zip(tys) {
            if self.ty(*r)? != *t {
                return Err(self.err(format!("result {r} should be {t}")));
            }
            self.define(*r)?;
        }
        Ok(())
    }

    fn inst(&mut self, inst: &Inst) -> Result<(), KernelError> {
        let tys: Vec<Ty> = match &inst.kind {
            InstKind::Const { ty, bits } => {
                let ok = match ty {
                    Ty::F32 | Ty::I32 => *bits <= u32::MAX as u64,
                    Ty::Bool => *bits <= 1,
                    Ty::F64 | Ty::I64 => true,
                };
                if !ok {
                    return Err(self.err(format!("constant bits {bits:#x} do not fit {ty}")));
                }
                vec![*ty]
            }
            InstKind::Unary(op, a) => {
                let t = self.use_(*a)?;
                let ok = match op {
                    UnOp::Neg | UnOp::Abs => t.is_float() || t.is_int(),
                    UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => {
                        t.is_float()
                    }
                    UnOp::Not => t.is_int() || t == Ty::Bool,
                };
                if !ok {
                    return Err(self.err(format!("{op:?} does not apply to {t}")));
                }
                vec![t]
            }
            InstKind::Binary(op, a, b) => {
                let t = self.use_(*a)?;
                self.expect(*b, t, &format!("{op:?}"))?;
                let ok = match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Min | BinOp::Max => {
                        t.is_float() || t.is_int()
                    }
                    BinOp::Div | BinOp::Copysign => t.is_float(),
                    BinOp::And | BinOp::Or | BinOp::Xor => t.is_int() || t == Ty::Bool,
                    BinOp::Shl | BinOp::ShrU | BinOp::ShrS => t.is_int(),
                };
                if !ok {
                    return Err(self.err(format!("{op:?} does not apply to {t}")));
                }
                vec![t]
            }
            InstKind::Cmp(_, a, b) => {
                let t = self.use_(*a)?;
                if t == Ty::Bool {
                    return Err(self.err("comparisons take numbers"));
                }
                self.expect(*b, t, "comparison")?;
                vec![Ty::Bool]
            }
            InstKind::Select(c, a, b) => {
                self.expect(*c, Ty::Bool, "select condition")?;
                let t = self.use_(*a)?;
                self.expect(*b, t, "select")?;
                vec![t]
            }
            InstKind::Fma(a, b, c) => {
                let t = self.use_(*a)?;
                if !t.is_float() {
                    return Err(self.err(format!("fma does not apply to {t}")));
                }
                self.expect(*b, t, "fma")?;
                self.expect(*c, t, "fma")?;
                vec![t]
            }
            InstKind::Gemm { m, n, k, a, b, out } => {
                self.gemm(*m, *n, *k, a, b, out)?;
                vec![]
            }
            InstKind::Conv(c, a) => {
                let (from, to) = c.types();
                self.expect(*a, from, &format!("{c:?}"))?;
                vec![to]
            }
            InstKind::Load { buf, index } => {
                let d = self
                    .f
                    .buffers
                    .get(buf.index())
                    .ok_or_else(|| self.err(format!("{buf} is not declared")))?;
                self.expect(*index, Ty::I64, "load index")?;
                vec![d.ty]
            }
            InstKind::Store { buf, index, value } => {
                let d = self
                    .f
                    .buffers
                    .get(buf.index())
                    .ok_or_else(|| self.err(format!("{buf} is not declared")))?;
                // Backends treat read-only buffers as immutable (pure loads).
                if d.access == super::Access::Read {
                    return Err(self.err(format!(
                        "store to `{}`, which is declared read-only",
                        d.name
                    )));
                }
                self.expect(*index, Ty::I64, "store index")?;
                self.expect(*value, d.ty, "stored value")?;
                vec![]
            }
            InstKind::LocalLoad { local, index } => {
                let d = self
                    .f
                    .locals
                    .get(local.index())
                    .ok_or_else(|| self.err(format!("{local} is not declared")))?;
                self.expect(*index, Ty::I64, "local index")?;
                vec![d.ty]
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                let d = self
                    .f
                    .locals
                    .get(local.index())
                    .ok_or_else(|| self.err(format!("{local} is not declared")))?;
                self.expect(*index, Ty::I64, "local index")?;
                self.expect(*value, d.ty, "stored value")?;
                vec![]
            }
            InstKind::For { lo, hi, init, body } => {
                self.expect(*lo, Ty::I64, "for lower bound")?;
                self.expect(*hi, Ty::I64, "for upper bound")?;
                let tys = init
                    .iter()
                    .map(|v| self.use_(*v))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut ptys = vec![Ty::I64];
                ptys.extend(&tys);
                let ys = self.region(body, &ptys)?;
                if ys != tys {
                    return Err(self.err(format!(
                        "for body yields {ys:?}, carried values are {tys:?}"
                    )));
                }
                tys
            }
            InstKind::While { init, cond, body } => {
                let tys = init
                    .iter()
                    .map(|v| self.use_(*v))
                    .collect::<Result<Vec<_>, _>>()?;
                if self.region(cond, &tys)? != [Ty::Bool] {
                    return Err(self.err("while condition must yield one bool"));
                }
                let ys = self.region(body, &tys)?;
                if ys != tys {
                    return Err(self.err(format!(
                        "while body yields {ys:?}, carried values are {tys:?}"
                    )));
                }
                tys
            }
            InstKind::If { cond, then, else_ } => {
                self.expect(*cond, Ty::Bool, "if condition")?;
                let a = self.region(then, &[])?;
                let b = self.region(else_, &[])?;
                if a != b {
                    return Err(self.err(format!("if branches yield {a:?} and {b:?}")));
                }
                a
            }
        };
        self.results(inst, &tys)
    }
}

fn kind_name(k: &InstKind) -> &'static str {
    match k {
        InstKind::Const { .. } => "const",
        InstKind::Unary(..) => "unary",
        InstKind::Binary(..) => "binary",
        InstKind::Cmp(..) => "cmp",
        InstKind::Select(..) => "select",
        InstKind::Fma(..) => "fma",
        InstKind::Gemm { .. } => "gemm",
        InstKind::Conv(..) => "conv",
        InstKind::Load { .. } => "load",
        InstKind::Store { .. } => "store",
        InstKind::LocalLoad { .. } => "local_load",
        InstKind::LocalStore { .. } => "local_store",
        InstKind::For { .. } => "for",
        InstKind::While { .. } => "while",
        InstKind::If { .. } => "if",
    }
}

/// Checks a function: a valid name, scalar parameters named, buffers of
/// numeric types, every value defined exactly once before its uses (inner
/// regions see outer values, not the reverse), and every instruction and
/// region well typed.
pub fn verify(f: &Function) -> Result<(), KernelError> {
    let mut c = Checker {
        f,
        defined: HashSet::new(),
        scopes: Vec::new(),
    };
    if f.name.is_empty()
        || !f
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        || f.name.starts_with(|ch: char| ch.is_ascii_digit())
    {
        return Err(c.err("function names are letters, digits and `_`, not starting with a digit"));
    }
    if f.param_names.len() != f.body.params.len() {
        return Err(c.err("every scalar parameter needs a name"));
    }
    if let Some(b) = f.buffers.iter().find(|b| b.ty == Ty::Bool) {
        return Err(c.err(format!("buffer `{}` has type bool; use i32", b.name)));
    }
    if let Some(l) = f.locals.iter().find(|l| l.ty == Ty::Bool) {
        return Err(c.err(format!("local `{}` has type bool; use i32", l.name)));
    }
    let ptys = f.param_types();
    c.region(&f.body, &ptys)?;
    Ok(())
}
