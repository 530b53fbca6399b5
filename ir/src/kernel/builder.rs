//! Writing kernels: a builder with closures for regions.
//!
//! ```
//! use crux_ir::kernel::{Access, Builder, Ty};
//! // sum of squares of a buffer
//! let mut b = Builder::new("sumsq");
//! let n = b.param("n", Ty::I64);
//! let x = b.buffer("x", Ty::F64, Access::Read);
//! let zero = b.i64(0);
//! let init = b.f64(0.0);
//! let acc = b.for_(zero, n, &[init], |b, i, c| {
//!     let v = b.load(x, i);
//!     let sq = b.mul(v, v);
//!     vec![b.add(c[0], sq)]
//! });
//! let f = b.finish(&[acc[0]]).unwrap();
//! assert_eq!(f.return_types(), vec![Ty::F64]);
//! ```

use super::{
    verify, Access, BinOp, BufferDecl, BufferId, CmpOp, Conv, Function, Inst, InstKind,
    KernelError, LocalDecl, LocalId, MatRef, Region, Ty, UnOp, Value,
};

/// Alias kept for readability at call sites that build whole functions.
pub type FunctionBuilder = Builder;

/// Builds one [`Function`]. Instructions go to the innermost open region;
/// `for_`, `while_` and `if_` open regions for the duration of a closure.
pub struct Builder {
    f: Function,
    stack: Vec<Region>,
}

impl Builder {
    /// A new function called `name`.
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            f: Function {
                name: name.into(),
                values: Vec::new(),
                param_names: Vec::new(),
                buffers: Vec::new(),
                locals: Vec::new(),
                body: Region::default(),
            },
            stack: vec![Region::default()],
        }
    }

    fn value(&mut self, ty: Ty) -> Value {
        self.f.values.push(ty);
        Value(self.f.values.len() as u32 - 1)
    }

    /// Type of a value.
    pub fn ty(&self, v: Value) -> Ty {
        self.f.values[v.index()]
    }

    /// Declares a scalar parameter (declare them before any instruction).
    pub fn param(&mut self, name: impl Into<String>, ty: Ty) -> Value {
        let v = self.value(ty);
        self.stack[0].params.push(v);
        self.f.param_names.push(name.into());
        v
    }

    /// Declares a global buffer argument.
    pub fn buffer(&mut self, name: impl Into<String>, ty: Ty, access: Access) -> BufferId {
        self.f.buffers.push(BufferDecl {
            name: name.into(),
            ty,
            access,
        });
        BufferId(self.f.buffers.len() as u32 - 1)
    }

    /// Declares a zero-initialised local array.
    pub fn local(&mut self, name: impl Into<String>, ty: Ty, len: usize) -> LocalId {
        self.f.locals.push(LocalDecl {
            name: name.into(),
            ty,
            len,
        });
        LocalId(self.f.locals.len() as u32 - 1)
    }

    /// Appends an instruction defining values of `tys`.
    pub fn push(&mut self, kind: InstKind, tys: &[Ty]) -> Vec<Value> {
        let results: Vec<Value> = tys.iter().map(|t| self.value(*t)).collect();
        self.stack
            .last_mut()
            .expect("the body region stays open until `finish` consumes the builder")
            .insts
            .push(Inst {
                results: results.clone(),
                kind,
            });
        results
    }

    fn one(&mut self, kind: InstKind, ty: Ty) -> Value {
        self.push(kind, &[ty])[0]
    }

    /// Finishes the function returning `returns`, and verifies it.
    pub fn finish(mut self, returns: &[Value]) -> Result<Function, KernelError> {
        let mut body = self
            .stack
            .pop()
            .expect("`Builder::new` opens the body region; only `finish` closes it");
        if !self.stack.is_empty() {
            return Err(KernelError::Invalid {
                function: self.f.name.clone(),
                msg: "a region was left open".into(),
            });
        }
        body.yields = returns.to_vec();
        self.f.body = body;
        verify(&self.f)?;
        Ok(self.f)
    }

    // ---- constants ----

    /// A constant from its bits.
    pub fn constant(&mut self, ty: Ty, bits: u64) -> Value {
        self.one(InstKind::Const { ty, bits }, ty)
    }
    /// An f64 constant.
    pub fn f64(&mut self, v: f64) -> Value {
        self.constant(Ty::F64, v.to_bits())
    }
    /// An f32 constant.
    pub fn f32(&mut self, v: f32) -> Value {
        self.constant(Ty::F32, v.to_bits() as u64)
    }
    /// An i64 constant.
    pub fn i64(&mut self, v: i64) -> Value {
        self.constant(Ty::I64, v as u64)
    }
    /// An i32 constant.
    pub fn i32(&mut self, v: i32) -> Value {
        self.constant(Ty::I32, v as u32 as u64)
    }
    /// A bool constant.
    pub fn bool(&mut self, v: bool) -> Value {
        self.constant(Ty::Bool, v as u64)
    }

    // ---- arithmetic ----

    /// Unary op.
    pub fn unary(&mut self, op: UnOp, a: Value) -> Value {
        let t = self.ty(a);
        self.one(InstKind::Unary(op, a), t)
    }
    /// Binary op.
    pub fn binary(&mut self, op: BinOp, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        self.one(InstKind::Binary(op, a, b), t)
    }
    /// `a + b`
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Add, a, b)
    }
    /// `a - b`
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Sub, a, b)
    }
    /// `a * b`
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Mul, a, b)
    }
    /// `a / b` (floats)
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Div, a, b)
    }
    /// Minimum (NaN-propagating for floats).
    pub fn min(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Min, a, b)
    }
    /// Maximum (NaN-propagating for floats).
    pub fn max(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Max, a, b)
    }
    /// `-a`
    pub fn neg(&mut self, a: Value) -> Value {
        self.unary(UnOp::Neg, a)
    }
    /// `|a|`
    pub fn abs(&mut self, a: Value) -> Value {
        self.unary(UnOp::Abs, a)
    }
    /// `√a`
    pub fn sqrt(&mut self, a: Value) -> Value {
        self.unary(UnOp::Sqrt, a)
    }
    /// Bitwise and.
    pub fn and(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::And, a, b)
    }
    /// Bitwise xor.
    pub fn xor(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Xor, a, b)
    }
    /// Logical shift right.
    pub fn shr_u(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::ShrU, a, b)
    }
    /// Shift left.
    pub fn shl(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinOp::Shl, a, b)
    }
    /// Comparison.
    pub fn cmp(&mut self, op: CmpOp, a: Value, b: Value) -> Value {
        self.one(InstKind::Cmp(op, a, b), Ty::Bool)
    }
    /// `a < b`
    pub fn lt(&mut self, a: Value, b: Value) -> Value {
        self.cmp(CmpOp::Lt, a, b)
    }
    /// `cond ? a : b`
    pub fn select(&mut self, cond: Value, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        self.one(InstKind::Select(cond, a, b), t)
    }
    /// Fused multiply-add `a·b + c`, rounded once (floats; `a`, `b`, `c` of
    /// one type). Never produced from a separate [`Builder::mul`] and
    /// [`Builder::add`]: this is the only way to get one.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        let t = self.ty(a);
        self.one(InstKind::Fma(a, b, c), t)
    }
    /// `out = a · b` for an `m × k` matrix `a` and a `k × n` matrix `b`,
    /// each entry one ascending chain of fused multiply-adds (see [the
    /// module documentation](crate::kernel#matrix-products)).
    pub fn gemm(&mut self, (m, n, k): (u64, u64, u64), a: MatRef, b: MatRef, out: MatRef) {
        self.push(InstKind::Gemm { m, n, k, a, b, out }, &[]);
    }
    /// Conversion.
    pub fn conv(&mut self, c: Conv, a: Value) -> Value {
        self.one(InstKind::Conv(c, a), c.types().1)
    }

    // ---- memory ----

    /// `buf[index]`
    pub fn load(&mut self, buf: BufferId, index: Value) -> Value {
        let t = self
            .f
            .buffers
            .get(buf.index())
            .map(|b| b.ty)
            .unwrap_or(Ty::F64);
        self.one(InstKind::Load { buf, index }, t)
    }
    /// `buf[index] = value`
    pub fn store(&mut self, buf: BufferId, index: Value, value: Value) {
        self.push(InstKind::Store { buf, index, value }, &[]);
    }
    /// `local[index]`
    pub fn local_load(&mut self, local: LocalId, index: Value) -> Value {
        let t = self
            .f
            .locals
            .get(local.index())
            .map(|l| l.ty)
            .unwrap_or(Ty::F64);
        self.one(InstKind::LocalLoad { local, index }, t)
    }
    /// `local[index] = value`
    pub fn local_store(&mut self, local: LocalId, index: Value, value: Value) {
        self.push(
            InstKind::LocalStore {
                local,
                index,
                value,
            },
            &[],
        );
    }

    // ---- control flow ----

    fn region(
        &mut self,
        param_tys: &[Ty],
        build: impl FnOnce(&mut Builder, &[Value]) -> Vec<Value>,
    ) -> Region {
        let params: Vec<Value> = param_tys.iter().map(|t| self.value(*t)).collect();
        self.stack.push(Region {
            params: params.clone(),
            ..Region::default()
        });
        let yields = build(self, &params);
        let mut r = self
            .stack
            .pop()
            .expect("the region pushed above: nested regions are pushed and popped in pairs");
        r.yields = yields;
        r
    }

    /// `for i in lo..hi` carrying `init`; `body(b, i, carried)` returns the
    /// next carried values. Returns the final carried values.
    pub fn for_(
        &mut self,
        lo: Value,
        hi: Value,
        init: &[Value],
        body: impl FnOnce(&mut Builder, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let tys: Vec<Ty> = init.iter().map(|v| self.ty(*v)).collect();
        let mut ptys = vec![Ty::I64];
        ptys.extend(&tys);
        let body = self.region(&ptys, |b, p| body(b, p[0], &p[1..]));
        self.push(
            InstKind::For {
                lo,
                hi,
                init: init.to_vec(),
                body,
            },
            &tys,
        )
    }

    /// `while cond(carried) { carried = body(carried) }`. Returns the final
    /// carried values.
    pub fn while_(
        &mut self,
        init: &[Value],
        cond: impl FnOnce(&mut Builder, &[Value]) -> Value,
        body: impl FnOnce(&mut Builder, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let tys: Vec<Ty> = init.iter().map(|v| self.ty(*v)).collect();
        let cond = self.region(&tys, |b, p| vec![cond(b, p)]);
        let body = self.region(&tys, body);
        self.push(
            InstKind::While {
                init: init.to_vec(),
                cond,
                body,
            },
            &tys,
        )
    }

    /// `if cond { then } else { else_ }`, both yielding values of the same
    /// types (`then`'s types are the result types).
    pub fn if_(
        &mut self,
        cond: Value,
        then: impl FnOnce(&mut Builder) -> Vec<Value>,
        else_: impl FnOnce(&mut Builder) -> Vec<Value>,
    ) -> Vec<Value> {
        let then = self.region(&[], |b, _| then(b));
        let else_ = self.region(&[], |b, _| else_(b));
        let tys: Vec<Ty> = then.yields.iter().map(|v| self.ty(*v)).collect();
        self.push(InstKind::If { cond, then, else_ }, &tys)
    }

    // ---- vector helpers over a dimension ----

    /// `Σ_{i<n} a[a_off + i] · b[b_off + i]`, accumulated in ascending `i`.
    pub fn dot(&mut self, a: BufferId, a_off: Value, b: BufferId, b_off: Value, n: Value) -> Value {
        self.sum(n, |bl, i| {
            let ia = bl.add(a_off, i);
            let ib = bl.add(b_off, i);
            let x = bl.load(a, ia);
            let y = bl.load(b, ib);
            bl.mul(x, y)
        })
    }

    /// `y[y_off + i] += alpha · x[x_off + i]` for `i < n`.
    pub fn axpy(
        &mut self,
        alpha: Value,
        x: BufferId,
        x_off: Value,
        y: BufferId,
        y_off: Value,
        n: Value,
    ) {
        self.map_into(y, y_off, n, |bl, i| {
            let ix = bl.add(x_off, i);
            let iy = bl.add(y_off, i);
            let xv = bl.load(x, ix);
            let yv = bl.load(y, iy);
            let t = bl.mul(alpha, xv);
            bl.add(yv, t)
        });
    }

    /// `dst[off + i] = f(i)` for `i < n`.
    pub fn map_into(
        &mut self,
        dst: BufferId,
        off: Value,
        n: Value,
        f: impl FnOnce(&mut Builder, Value) -> Value,
    ) {
        let zero = self.i64(0);
        self.for_(zero, n, &[], |b, i, _| {
            let v = f(b, i);
            let at = b.add(off, i);
            b.store(dst, at, v);
            vec![]
        });
    }

    /// `Σ_{i<n} f(i)` in f64, accumulated in ascending `i`.
    pub fn sum(&mut self, n: Value, f: impl FnOnce(&mut Builder, Value) -> Value) -> Value {
        let zero = self.i64(0);
        let init = self.f64(0.0);
        self.for_(zero, n, &[init], |b, i, c| {
            let v = f(b, i);
            vec![b.add(c[0], v)]
        })[0]
    }

    // ---- random numbers ----

    /// Philox-4x32-10 of `(seed, stream, counter)` (three i64 values), the
    /// same function as [`crate::rng::words`], written in i64 integer
    /// operations so every backend computes it identically. Returns the four
    /// 32-bit words as i64 values in `0..2³²`.
    pub fn philox(&mut self, seed: Value, stream: Value, counter: Value) -> [Value; 4] {
        let mask = self.i64(0xFFFF_FFFF);
        let s32 = self.i64(32);
        let lo = |b: &mut Builder, v: Value| b.and(v, mask);
        let hi = |b: &mut Builder, v: Value| {
            let s = b.shr_u(v, s32);
            b.and(s, mask)
        };
        let mut c = [
            lo(self, counter),
            hi(self, counter),
            lo(self, stream),
            hi(self, stream),
        ];
        let mut k = [lo(self, seed), hi(self, seed)];
        let m0 = self.i64(0xD251_1F53);
        let m1 = self.i64(0xCD9E_8D57);
        let w0 = self.i64(0x9E37_79B9);
        let w1 = self.i64(0xBB67_AE85);
        for round in 0..10 {
            if round > 0 {
                let k0 = self.add(k[0], w0);
                let k1 = self.add(k[1], w1);
                k = [lo(self, k0), lo(self, k1)];
            }
            // The 32x32 -> 64 products fit an unsigned 64-bit value; i64
            // multiplication wraps to the same bits.
            let p0 = self.mul(m0, c[0]);
            let p1 = self.mul(m1, c[2]);
            let (hi0, lo0) = (hi(self, p0), lo(self, p0));
            let (hi1, lo1) = (hi(self, p1), lo(self, p1));
            let x0 = self.xor(hi1, c[1]);
            let x0 = self.xor(x0, k[0]);
            let x2 = self.xor(hi0, c[3]);
            let x2 = self.xor(x2, k[1]);
            c = [x0, lo1, x2, lo0];
        }
        c
    }

    /// A uniform draw in `[0, 1)` from Philox words 0 and 1, bit-identical to
    /// [`crate::rng::uniform`].
    pub fn uniform(&mut self, seed: Value, stream: Value, counter: Value) -> Value {
        let w = self.philox(seed, stream, counter);
        let s32 = self.i64(32);
        let s11 = self.i64(11);
        let hi = self.shl(w[0], s32);
        let bits = self.binary(BinOp::Or, hi, w[1]);
        let bits = self.shr_u(bits, s11);
        let f = self.conv(Conv::I64ToF64, bits);
        let scale = self.f64(1.0 / (1u64 << 53) as f64);
        self.mul(f, scale)
    }
}
