//! The reference interpreter of the kernel IR: the semantics every backend
//! reproduces bit for bit (NaN payloads aside: any NaN equals any NaN).

use super::{BinOp, CmpOp, Conv, Function, InstKind, KernelError, MatRef, Region, Ty, UnOp, Value};

/// A scalar value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// f64
    F64(f64),
    /// f32
    F32(f32),
    /// i64
    I64(i64),
    /// i32
    I32(i32),
    /// bool
    Bool(bool),
}

impl Scalar {
    /// Its type.
    pub fn ty(self) -> Ty {
        match self {
            Scalar::F64(_) => Ty::F64,
            Scalar::F32(_) => Ty::F32,
            Scalar::I64(_) => Ty::I64,
            Scalar::I32(_) => Ty::I32,
            Scalar::Bool(_) => Ty::Bool,
        }
    }

    /// From a type and bits (the constant encoding).
    pub fn from_bits(ty: Ty, bits: u64) -> Scalar {
        match ty {
            Ty::F64 => Scalar::F64(f64::from_bits(bits)),
            Ty::F32 => Scalar::F32(f32::from_bits(bits as u32)),
            Ty::I64 => Scalar::I64(bits as i64),
            Ty::I32 => Scalar::I32(bits as u32 as i32),
            Ty::Bool => Scalar::Bool(bits != 0),
        }
    }

    /// The bits (the constant encoding).
    pub fn to_bits(self) -> u64 {
        match self {
            Scalar::F64(v) => v.to_bits(),
            Scalar::F32(v) => v.to_bits() as u64,
            Scalar::I64(v) => v as u64,
            Scalar::I32(v) => v as u32 as u64,
            Scalar::Bool(v) => v as u64,
        }
    }

    /// Bitwise equality, with every NaN equal to every NaN of its type.
    pub fn same(self, other: Scalar) -> bool {
        match (self, other) {
            (Scalar::F64(a), Scalar::F64(b)) => {
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
            }
            (Scalar::F32(a), Scalar::F32(b)) => {
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
            }
            (a, b) => a == b,
        }
    }
}

/// A global buffer's contents.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// f64 elements.
    F64(Vec<f64>),
    /// f32 elements.
    F32(Vec<f32>),
    /// i64 elements.
    I64(Vec<i64>),
    /// i32 elements.
    I32(Vec<i32>),
}

impl Buffer {
    /// Element type.
    pub fn ty(&self) -> Ty {
        match self {
            Buffer::F64(_) => Ty::F64,
            Buffer::F32(_) => Ty::F32,
            Buffer::I64(_) => Ty::I64,
            Buffer::I32(_) => Ty::I32,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F64(v) => v.len(),
            Buffer::F32(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::I32(v) => v.len(),
        }
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The elements of an f64 buffer (`None` for other element types).
    pub fn as_f64(&self) -> Option<&[f64]> {
        match self {
            Buffer::F64(v) => Some(v),
            _ => None,
        }
    }
    /// The elements of an f64 buffer, mutably (`None` for other types).
    pub fn as_f64_mut(&mut self) -> Option<&mut [f64]> {
        match self {
            Buffer::F64(v) => Some(v),
            _ => None,
        }
    }
    /// A zeroed buffer.
    pub fn zeros(ty: Ty, len: usize) -> Buffer {
        match ty {
            Ty::F64 => Buffer::F64(vec![0.0; len]),
            Ty::F32 => Buffer::F32(vec![0.0; len]),
            Ty::I64 => Buffer::I64(vec![0; len]),
            Ty::I32 | Ty::Bool => Buffer::I32(vec![0; len]),
        }
    }
    fn get(&self, i: usize) -> Scalar {
        match self {
            Buffer::F64(v) => Scalar::F64(v[i]),
            Buffer::F32(v) => Scalar::F32(v[i]),
            Buffer::I64(v) => Scalar::I64(v[i]),
            Buffer::I32(v) => Scalar::I32(v[i]),
        }
    }
    fn set(&mut self, i: usize, s: Scalar) {
        match (self, s) {
            (Buffer::F64(v), Scalar::F64(x)) => v[i] = x,
            (Buffer::F32(v), Scalar::F32(x)) => v[i] = x,
            (Buffer::I64(v), Scalar::I64(x)) => v[i] = x,
            (Buffer::I32(v), Scalar::I32(x)) => v[i] = x,
            _ => unreachable!("the verifier checks stored types"),
        }
    }
}

struct Machine<'a> {
    f: &'a Function,
    env: Vec<Scalar>,
    bufs: &'a mut [Buffer],
    locals: Vec<Buffer>,
    fuel: u64,
}

/// Float min/max with the IR's semantics: NaN if either is NaN, −0 < +0.
fn fminmax(a: f64, b: f64, max: bool) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b {
        // Only ±0 compare equal with different bits.
        return if max == (a.is_sign_negative() && !b.is_sign_negative()) {
            b
        } else {
            a
        };
    }
    if (a > b) == max {
        a
    } else {
        b
    }
}

fn fminmax32(a: f32, b: f32, max: bool) -> f32 {
    if a.is_nan() || b.is_nan() {
        return f32::NAN;
    }
    fminmax(a as f64, b as f64, max) as f32
}

macro_rules! float_unary {
    ($op:expr, $x:expr) => {
        match $op {
            UnOp::Neg => -$x,
            UnOp::Abs => $x.abs(),
            UnOp::Sqrt => $x.sqrt(),
            UnOp::Floor => $x.floor(),
            UnOp::Ceil => $x.ceil(),
            UnOp::Trunc => $x.trunc(),
            UnOp::Nearest => $x.round_ties_even(),
            UnOp::Not => unreachable!("verified"),
        }
    };
}

macro_rules! int_binary {
    ($op:expr, $a:expr, $b:expr, $bits:expr, $u:ty) => {
        match $op {
            BinOp::Add => $a.wrapping_add($b),
            BinOp::Sub => $a.wrapping_sub($b),
            BinOp::Mul => $a.wrapping_mul($b),
            BinOp::Min => $a.min($b),
            BinOp::Max => $a.max($b),
            BinOp::And => $a & $b,
            BinOp::Or => $a | $b,
            BinOp::Xor => $a ^ $b,
            BinOp::Shl => $a.wrapping_shl(($b as u32) % $bits),
            BinOp::ShrU => ((($a as $u) >> (($b as u32) % $bits)) as _),
            BinOp::ShrS => $a.wrapping_shr(($b as u32) % $bits),
            BinOp::Div | BinOp::Copysign => unreachable!("verified"),
        }
    };
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

impl Machine<'_> {
    fn get(&self, v: Value) -> Scalar {
        self.env[v.index()]
    }

    fn oob(&self, name: &str, index: i64, len: usize) -> KernelError {
        KernelError::OutOfBounds {
            function: self.f.name.clone(),
            name: name.to_string(),
            index,
            len,
        }
    }

    fn index(&self, v: Value, len: usize, name: &str) -> Result<usize, KernelError> {
        let Scalar::I64(i) = self.get(v) else {
            unreachable!("verified")
        };
        if i < 0 || i as usize >= len {
            return Err(self.oob(name, i, len));
        }
        Ok(i as usize)
    }

    /// [`InstKind::Gemm`]: the extents checked first (`a`, `b`, `out`),
    /// then each entry's ascending chain of fused multiply-adds. Costs one
    /// unit of fuel per multiply-add.
    fn gemm(
        &mut self,
        m: u64,
        n: u64,
        k: u64,
        a: &MatRef,
        b: &MatRef,
        out: &MatRef,
    ) -> Result<(), KernelError> {
        for (v, rows, cols) in [(a, m, k), (b, k, n), (out, m, n)] {
            let len = self.bufs[v.buf.index()].len();
            let last = v
                .last(rows, cols)
                .expect("verified: the extent fits an i64");
            if last >= len as u64 {
                let name = &self.f.buffers[v.buf.index()].name;
                return Err(self.oob(name, last as i64, len));
            }
        }
        let work = m.saturating_mul(n).saturating_mul(k);
        if self.fuel < work {
            return Err(KernelError::OutOfFuel(self.f.name.clone()));
        }
        self.fuel -= work;
        fn f64s(bufs: &[Buffer], id: super::BufferId) -> &[f64] {
            bufs[id.index()]
                .as_f64()
                .expect("verified: gemm buffers are f64")
        }
        for i in 0..m {
            for j in 0..n {
                let acc = {
                    let (av, bv) = (f64s(self.bufs, a.buf), f64s(self.bufs, b.buf));
                    (0..k).fold(0.0f64, |acc, l| {
                        av[a.at(i, l) as usize].mul_add(bv[b.at(l, j) as usize], acc)
                    })
                };
                self.bufs[out.buf.index()]
                    .as_f64_mut()
                    .expect("verified: gemm buffers are f64")[out.at(i, j) as usize] = acc;
            }
        }
        Ok(())
    }

    fn region(&mut self, r: &Region, args: &[Scalar]) -> Result<Vec<Scalar>, KernelError> {
        // Entering a region costs fuel too, so a loop of empty regions ends.
        if self.fuel == 0 {
            return Err(KernelError::OutOfFuel(self.f.name.clone()));
        }
        self.fuel -= 1;
        for (p, a) in r.params.iter().zip(args) {
            self.env[p.index()] = *a;
        }
        for inst in &r.insts {
            if self.fuel == 0 {
                return Err(KernelError::OutOfFuel(self.f.name.clone()));
            }
            self.fuel -= 1;
            let out = self.inst(&inst.kind)?;
            for (res, v) in inst.results.iter().zip(out) {
                self.env[res.index()] = v;
            }
        }
        Ok(r.yields.iter().map(|y| self.get(*y)).collect())
    }

    fn inst(&mut self, k: &InstKind) -> Result<Vec<Scalar>, KernelError> {
        use Scalar::*;
        Ok(match k {
            InstKind::Const { ty, bits } => vec![Scalar::from_bits(*ty, *bits)],
            InstKind::Unary(op, a) => vec![match self.get(*a) {
                F64(x) => F64(float_unary!(op, x)),
                F32(x) => F32(float_unary!(op, x)),
                I64(x) => I64(match op {
                    UnOp::Neg => x.wrapping_neg(),
                    UnOp::Abs => x.wrapping_abs(),
                    _ => !x,
                }),
                I32(x) => I32(match op {
                    UnOp::Neg => x.wrapping_neg(),
                    UnOp::Abs => x.wrapping_abs(),
                    _ => !x,
                }),
                Bool(x) => Bool(!x),
            }],
            InstKind::Binary(op, a, b) => vec![match (self.get(*a), self.get(*b)) {
                (F64(x), F64(y)) => F64(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Min => fminmax(x, y, false),
                    BinOp::Max => fminmax(x, y, true),
                    BinOp::Copysign => x.copysign(y),
                    _ => unreachable!("verified"),
                }),
                (F32(x), F32(y)) => F32(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Min => fminmax32(x, y, false),
                    BinOp::Max => fminmax32(x, y, true),
                    BinOp::Copysign => x.copysign(y),
                    _ => unreachable!("verified"),
                }),
                (I64(x), I64(y)) => I64(int_binary!(op, x, y, 64, u64)),
                (I32(x), I32(y)) => I32(int_binary!(op, x, y, 32, u32)),
                (Bool(x), Bool(y)) => Bool(match op {
                    BinOp::And => x & y,
                    BinOp::Or => x | y,
                    BinOp::Xor => x ^ y,
                    _ => unreachable!("verified"),
                }),
                _ => unreachable!("verified"),
            }],
            InstKind::Cmp(op, a, b) => vec![Bool(match (self.get(*a), self.get(*b)) {
                (F64(x), F64(y)) => cmp(*op, x, y),
                (F32(x), F32(y)) => cmp(*op, x, y),
                (I64(x), I64(y)) => cmp(*op, x, y),
                (I32(x), I32(y)) => cmp(*op, x, y),
                _ => unreachable!("verified"),
            })],
            InstKind::Select(c, a, b) => {
                let Bool(c) = self.get(*c) else {
                    unreachable!("verified")
                };
                vec![if c { self.get(*a) } else { self.get(*b) }]
            }
            // One rounding: `mul_add` is IEEE fusedMultiplyAdd (the
            // correctly rounded libm `fma` where the CPU has no FMA unit).
            InstKind::Fma(a, b, c) => vec![match (self.get(*a), self.get(*b), self.get(*c)) {
                (F64(x), F64(y), F64(z)) => F64(x.mul_add(y, z)),
                (F32(x), F32(y), F32(z)) => F32(x.mul_add(y, z)),
                _ => unreachable!("verified"),
            }],
            InstKind::Gemm { m, n, k, a, b, out } => {
                self.gemm(*m, *n, *k, a, b, out)?;
                vec![]
            }
            InstKind::Conv(c, a) => vec![match (c, self.get(*a)) {
                (Conv::F64ToF32, F64(x)) => F32(x as f32),
                (Conv::F32ToF64, F32(x)) => F64(x as f64),
                (Conv::F64ToI64, F64(x)) => I64(x as i64),
                (Conv::I64ToF64, I64(x)) => F64(x as f64),
                (Conv::I64ToI32, I64(x)) => I32(x as i32),
                (Conv::I32ToI64, I32(x)) => I64(x as i64),
                (Conv::U32ToI64, I32(x)) => I64(x as u32 as i64),
                (Conv::F64Bits, F64(x)) => I64(x.to_bits() as i64),
                (Conv::BitsF64, I64(x)) => F64(f64::from_bits(x as u64)),
                (Conv::BoolToI64, Bool(x)) => I64(x as i64),
                _ => unreachable!("verified"),
            }],
            InstKind::Load { buf, index } => {
                let b = &self.bufs[buf.index()];
                let i = self.index(*index, b.len(), &self.f.buffers[buf.index()].name)?;
                vec![self.bufs[buf.index()].get(i)]
            }
            InstKind::Store { buf, index, value } => {
                let len = self.bufs[buf.index()].len();
                let i = self.index(*index, len, &self.f.buffers[buf.index()].name)?;
                let v = self.get(*value);
                self.bufs[buf.index()].set(i, v);
                vec![]
            }
            InstKind::LocalLoad { local, index } => {
                let i = self.index(
                    *index,
                    self.locals[local.index()].len(),
                    &self.f.locals[local.index()].name,
                )?;
                vec![self.locals[local.index()].get(i)]
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                let i = self.index(
                    *index,
                    self.locals[local.index()].len(),
                    &self.f.locals[local.index()].name,
                )?;
                let v = self.get(*value);
                self.locals[local.index()].set(i, v);
                vec![]
            }
            InstKind::For { lo, hi, init, body } => {
                let (I64(lo), I64(hi)) = (self.get(*lo), self.get(*hi)) else {
                    unreachable!("verified")
                };
                let mut carried: Vec<Scalar> = init.iter().map(|v| self.get(*v)).collect();
                let mut i = lo;
                while i < hi {
                    let mut args = vec![I64(i)];
                    args.extend(&carried);
                    carried = self.region(body, &args)?;
                    i += 1;
                }
                carried
            }
            InstKind::While { init, cond, body } => {
                let mut carried: Vec<Scalar> = init.iter().map(|v| self.get(*v)).collect();
                loop {
                    let Bool(go) = self.region(cond, &carried)?[0] else {
                        unreachable!("verified")
                    };
                    if !go {
                        break carried;
                    }
                    carried = self.region(body, &carried)?;
                }
            }
            InstKind::If { cond, then, else_ } => {
                let Bool(c) = self.get(*cond) else {
                    unreachable!("verified")
                };
                self.region(if c { then } else { else_ }, &[])?
            }
        })
    }
}

/// Runs `f` with scalar arguments `args` and buffers `bufs` (modified in
/// place), executing at most `fuel` instructions. Returns the function's
/// return values. `f` must have passed [`super::verify()`].
pub fn run(
    f: &Function,
    args: &[Scalar],
    bufs: &mut [Buffer],
    fuel: u64,
) -> Result<Vec<Scalar>, KernelError> {
    let bad = |msg: String| KernelError::Arguments {
        function: f.name.clone(),
        msg,
    };
    let ptys = f.param_types();
    if args.len() != ptys.len() || args.iter().zip(&ptys).any(|(a, t)| a.ty() != *t) {
        return Err(bad(format!(
            "expected scalar arguments of types {ptys:?}, got {:?}",
            args.iter().map(|a| a.ty()).collect::<Vec<_>>()
        )));
    }
    if bufs.len() != f.buffers.len() || bufs.iter().zip(&f.buffers).any(|(b, d)| b.ty() != d.ty) {
        return Err(bad(format!(
            "expected buffers of types {:?}, got {:?}",
            f.buffers.iter().map(|b| b.ty).collect::<Vec<_>>(),
            bufs.iter().map(|b| b.ty()).collect::<Vec<_>>()
        )));
    }
    let locals = f
        .locals
        .iter()
        .map(|l| Buffer::zeros(l.ty, l.len))
        .collect();
    let mut m = Machine {
        f,
        env: vec![Scalar::Bool(false); f.values.len()],
        bufs,
        locals,
        fuel,
    };
    m.region(&f.body, args)
}

#[cfg(test)]
mod tests;
