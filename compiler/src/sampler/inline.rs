//! Inlining one kernel function into another: how the lowered
//! log-density becomes part of a sampler's step body (one dispatch, no
//! call boundary).

use std::cell::RefCell;

use crux_ir::kernel::{
    Access, BufferId, Builder, Function, Inst, InstKind, KernelError, LocalId, MatRef, Region, Ty,
    Value,
};

use crate::verify::{self, InvalidIr, VerifyError};

/// Where one buffer of the inlined function lives in the caller: a buffer
/// and the element offset its index 0 maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferView {
    /// The caller's buffer.
    pub buf: BufferId,
    /// Offset added to every index.
    pub off: usize,
}

/// Emits `f`'s body at the builder's insertion point with its buffers
/// mapped by `buffers` (one view per buffer of `f`) and its scalar
/// parameters bound to `args`; returns the values `f` returns. `f`'s local
/// arrays become new locals of the caller.
pub fn inline(b: &mut Builder, f: &Function, buffers: &[BufferView], args: &[Value]) -> Vec<Value> {
    assert_eq!(buffers.len(), f.buffers.len(), "one view per buffer");
    assert_eq!(
        args.len(),
        f.body.params.len(),
        "one argument per parameter"
    );
    let locals: Vec<LocalId> = f
        .locals
        .iter()
        .map(|l| b.local(format!("{}_{}", f.name, l.name), l.ty, l.len))
        .collect();
    let map = RefCell::new(vec![None; f.values.len()]);
    for (p, a) in f.body.params.iter().zip(args) {
        map.borrow_mut()[p.index()] = Some(*a);
    }
    let cx = Inliner {
        f,
        buffers,
        locals: &locals,
        map: &map,
    };
    cx.region_body(b, &f.body)
}

/// Verifies inlining `f` with `buffers` (debug builds and tests: see
/// [`crate::verify`]). `f` must verify (it is the output of lowering); then
/// `f` is inlined into a function of its own, whose buffers are the
/// callers' buffers that `buffers` names (with the types of `f`'s buffers
/// mapped to them, f64 otherwise), and that function must verify too.
pub fn check_inlining(f: &Function, buffers: &[BufferView]) -> Result<(), VerifyError> {
    verify::check_kernel("lower", f)?;
    let inlining_error = |msg: String| VerifyError {
        pass: "inline",
        error: InvalidIr::Kernel(KernelError::Invalid {
            function: f.name.clone(),
            msg,
        }),
    };
    if buffers.len() != f.buffers.len() {
        return Err(inlining_error(format!(
            "{} buffer views for {} buffers",
            buffers.len(),
            f.buffers.len()
        )));
    }
    let n = buffers.iter().map(|v| v.buf.index() + 1).max().unwrap_or(0);
    let mut tys = vec![Ty::F64; n];
    for (v, decl) in buffers.iter().zip(&f.buffers) {
        tys[v.buf.index()] = decl.ty;
    }
    let mut b = Builder::new(format!("inlined_{}", f.name));
    let args: Vec<Value> = f
        .param_types()
        .into_iter()
        .zip(&f.param_names)
        .map(|(ty, name)| b.param(name.clone(), ty))
        .collect();
    for (i, ty) in tys.into_iter().enumerate() {
        b.buffer(format!("buf{i}"), ty, Access::ReadWrite);
    }
    let returns = inline(&mut b, f, buffers, &args);
    b.finish(&returns).map(|_| ()).map_err(|error| VerifyError {
        pass: "inline",
        error: InvalidIr::Kernel(error),
    })
}

struct Inliner<'a> {
    f: &'a Function,
    buffers: &'a [BufferView],
    locals: &'a [LocalId],
    map: &'a RefCell<Vec<Option<Value>>>,
}

impl Inliner<'_> {
    fn get(&self, v: Value) -> Value {
        self.map.borrow()[v.index()].expect("inlined function verified: defined before use")
    }
    fn bind(&self, from: &[Value], to: &[Value]) {
        let mut m = self.map.borrow_mut();
        for (f, t) in from.iter().zip(to) {
            m[f.index()] = Some(*t);
        }
    }
    fn index(&self, b: &mut Builder, buf: BufferId, index: Value) -> (BufferId, Value) {
        let view = self.buffers[buf.index()];
        let i = self.get(index);
        if view.off == 0 {
            (view.buf, i)
        } else {
            let off = b.i64(view.off as i64);
            (view.buf, b.add(i, off))
        }
    }

    /// Emits a region's instructions (its parameters already bound) and
    /// returns its mapped yields.
    fn region_body(&self, b: &mut Builder, r: &Region) -> Vec<Value> {
        for inst in &r.insts {
            self.inst(b, inst);
        }
        r.yields.iter().map(|v| self.get(*v)).collect()
    }

    fn inst(&self, b: &mut Builder, inst: &Inst) {
        let tys: Vec<_> = inst.results.iter().map(|v| self.f.ty(*v)).collect();
        let out: Vec<Value> = match &inst.kind {
            InstKind::Const { ty, bits } => vec![b.constant(*ty, *bits)],
            InstKind::Unary(op, a) => vec![b.unary(*op, self.get(*a))],
            InstKind::Binary(op, x, y) => vec![b.binary(*op, self.get(*x), self.get(*y))],
            InstKind::Cmp(op, x, y) => vec![b.cmp(*op, self.get(*x), self.get(*y))],
            InstKind::Select(c, x, y) => vec![b.select(self.get(*c), self.get(*x), self.get(*y))],
            InstKind::Fma(x, y, z) => vec![b.fma(self.get(*x), self.get(*y), self.get(*z))],
            InstKind::Conv(c, a) => vec![b.conv(*c, self.get(*a))],
            InstKind::Gemm {
                m,
                n,
                k,
                a,
                b: rhs,
                out,
            } => {
                let view = |r: &MatRef| {
                    let v = self.buffers[r.buf.index()];
                    MatRef {
                        buf: v.buf,
                        off: r.off + v.off as u64,
                        ..*r
                    }
                };
                b.gemm((*m, *n, *k), view(a), view(rhs), view(out));
                vec![]
            }
            InstKind::Load { buf, index } => {
                let (buf, i) = self.index(b, *buf, *index);
                vec![b.load(buf, i)]
            }
            InstKind::Store { buf, index, value } => {
                let (buf, i) = self.index(b, *buf, *index);
                b.store(buf, i, self.get(*value));
                vec![]
            }
            InstKind::LocalLoad { local, index } => {
                vec![b.local_load(self.locals[local.index()], self.get(*index))]
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                b.local_store(
                    self.locals[local.index()],
                    self.get(*index),
                    self.get(*value),
                );
                vec![]
            }
            InstKind::For { lo, hi, init, body } => {
                let init: Vec<Value> = init.iter().map(|v| self.get(*v)).collect();
                b.for_(self.get(*lo), self.get(*hi), &init, |b, i, c| {
                    self.bind(&body.params[..1], &[i]);
                    self.bind(&body.params[1..], c);
                    self.region_body(b, body)
                })
            }
            InstKind::While { init, cond, body } => {
                let init: Vec<Value> = init.iter().map(|v| self.get(*v)).collect();
                b.while_(
                    &init,
                    |b, c| {
                        self.bind(&cond.params, c);
                        self.region_body(b, cond)[0]
                    },
                    |b, c| {
                        self.bind(&body.params, c);
                        self.region_body(b, body)
                    },
                )
            }
            InstKind::If { cond, then, else_ } => b.if_(
                self.get(*cond),
                |b| self.region_body(b, then),
                |b| self.region_body(b, else_),
            ),
        };
        debug_assert_eq!(out.len(), tys.len());
        self.bind(&inst.results, &out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inlining a lowered log-density verifies; a malformed callee is
    /// blamed on lowering and a wrong buffer mapping on inlining.
    #[test]
    fn inlining_is_verified() {
        let t = crate::sampler::gaussian_target(&[0.0, 1.0], &[1.0, 2.0]);
        let f = &t.function;
        let views: Vec<BufferView> = (0..f.buffers.len())
            .map(|i| BufferView {
                buf: BufferId(i as u32),
                off: 3 * i,
            })
            .collect();
        check_inlining(f, &views).expect("a lowered log-density inlines");
        let err = check_inlining(f, &views[1..]).expect_err("a view is missing");
        assert_eq!(err.pass, "inline");
        let mut broken = f.clone();
        broken.body.yields = vec![Value(broken.values.len() as u32 + 5)];
        let err = check_inlining(&broken, &views).expect_err("the callee is malformed");
        assert_eq!(err.pass, "lower");
    }
}
