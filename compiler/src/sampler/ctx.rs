//! What a kernel's step body is written against: vectors in the chain's
//! buffers, counter-based random draws, and the inlined log-density.

use crux_ir::kernel::{BufferId, Builder, Conv, Function, Ty, Value};
use crux_ir::rng::{stream, Purpose, MAX_MODELS, MODEL_SHIFT, SWEEP_SHIFT};

use super::abi::ChunkBuffer;
use super::inline::{inline, BufferView};
use crate::math;

/// [`ChunkBuffer::State`]: each chain's persistent state.
pub const STATE: BufferId = ChunkBuffer::State.id();
/// [`ChunkBuffer::Work`]: step-local temporaries.
pub const WORK: BufferId = ChunkBuffer::Work.id();
/// [`ChunkBuffer::Draws`]: kept draws.
pub const DRAWS: BufferId = ChunkBuffer::Draws.id();
/// [`ChunkBuffer::Diag`]: per-draw diagnostics.
pub const DIAG: BufferId = ChunkBuffer::Diag.id();
/// First data buffer (observations, points) of the inlined log-densities:
/// [`ChunkBuffer::COUNT`].
pub const FIRST_DATA: u32 = ChunkBuffer::COUNT as u32;

/// A contiguous run of `len` f64 entries of a buffer, at a compile-time
/// offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    /// The buffer.
    pub buf: BufferId,
    /// Index of entry 0.
    pub off: usize,
    /// Number of entries.
    pub len: usize,
}

impl Vector {
    fn at(&self, b: &mut Builder, i: Value) -> Value {
        if self.off == 0 {
            i
        } else {
            let off = b.i64(self.off as i64);
            b.add(i, off)
        }
    }
    /// Entry `i` (an i64 value).
    pub fn load(&self, b: &mut Builder, i: Value) -> Value {
        let at = self.at(b, i);
        b.load(self.buf, at)
    }
    /// Writes entry `i`.
    pub fn store(&self, b: &mut Builder, i: Value, x: Value) {
        let at = self.at(b, i);
        b.store(self.buf, at, x);
    }
    /// Entry 0 (for one-entry slots).
    pub fn get(&self, b: &mut Builder) -> Value {
        let i = b.i64(self.off as i64);
        b.load(self.buf, i)
    }
    /// Writes entry 0.
    pub fn set(&self, b: &mut Builder, x: Value) {
        let i = b.i64(self.off as i64);
        b.store(self.buf, i, x);
    }
    /// The number of entries as an i64 value.
    pub fn len_value(&self, b: &mut Builder) -> Value {
        b.i64(self.len as i64)
    }
    /// `self[i] = f(b, i)` for every entry.
    pub fn fill(&self, b: &mut Builder, f: impl FnOnce(&mut Builder, Value) -> Value) {
        let (lo, hi) = (b.i64(0), b.i64(self.len as i64));
        let v = *self;
        b.for_(lo, hi, &[], |b, i, _| {
            let x = f(b, i);
            v.store(b, i, x);
            vec![]
        });
    }
    /// `self = src` (same length).
    pub fn copy_from(&self, b: &mut Builder, src: Vector) {
        debug_assert_eq!(self.len, src.len);
        self.fill(b, |b, i| src.load(b, i));
    }
    /// `buf[base + i] = self[i]` for every entry (`base` an i64 value).
    pub fn fill_into(&self, b: &mut Builder, buf: BufferId, base: Value) {
        let (lo, hi) = (b.i64(0), b.i64(self.len as i64));
        let v = *self;
        b.for_(lo, hi, &[], |b, i, _| {
            let x = v.load(b, i);
            let at = b.add(base, i);
            b.store(buf, at, x);
            vec![]
        });
    }
    /// `Σ_i f(b, i)` in ascending `i`.
    pub fn sum(&self, b: &mut Builder, f: impl FnOnce(&mut Builder, Value) -> Value) -> Value {
        let n = b.i64(self.len as i64);
        b.sum(n, f)
    }
}

/// Named slots of one buffer, allocated while the chunk function is built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allocation {
    /// `(name, offset, len)` in allocation order.
    pub slots: Vec<(String, usize, usize)>,
    /// Entries in all.
    pub len: usize,
}

impl Allocation {
    /// The slot `name`, allocated with `len` entries on first request.
    pub fn slot(&mut self, buf: BufferId, name: &str, len: usize) -> Vector {
        if let Some((_, off, l)) = self.slots.iter().find(|(n, _, _)| n == name) {
            assert_eq!(*l, len, "slot `{name}` requested with two lengths");
            return Vector {
                buf,
                off: *off,
                len,
            };
        }
        let off = self.len;
        self.slots.push((name.to_string(), off, len));
        self.len += len;
        Vector { buf, off, len }
    }
    /// Offset and length of `name`, if allocated.
    pub fn find(&self, name: &str) -> Option<(usize, usize)> {
        self.slots
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, o, l)| (*o, *l))
    }
}

/// Counter-based draws of one kernel step. A draw is a pure function of
/// (seed, chain, sweep, model, k): `k` numbers the draws within a step and
/// must be distinct for distinct draws (and below
/// [`MAX_DRAWS_PER_STEP`](crux_ir::rng::MAX_DRAWS_PER_STEP)). The counter
/// is [`crux_ir::rng::draw_counter`]`(sweep, model, k)`, built at run time.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    seed: Value,
    stream: Value,
    base: Value,
}

impl Rng {
    /// The stream of chain `chain` (i64 value) under `seed`, at sweep
    /// `sweep` of model `model`.
    pub(crate) fn new(
        b: &mut Builder,
        seed: Value,
        chain: Value,
        sweep: Value,
        model: usize,
    ) -> Rng {
        Rng::for_purpose(b, Purpose::Sampler, (seed, chain), sweep, model)
    }

    /// [`Rng::new`] on the streams of `purpose` (the same counters).
    pub(crate) fn for_purpose(
        b: &mut Builder,
        purpose: Purpose,
        (seed, chain): (Value, Value),
        sweep: Value,
        model: usize,
    ) -> Rng {
        debug_assert!(model < MAX_MODELS, "model {model} out of range");
        let tag = b.i64(stream(purpose, 0) as i64);
        let stream = b.binary(crux_ir::kernel::BinOp::Or, tag, chain);
        // `draw_counter(sweep, model, k)`: (sweep << 40 | model << 32) + k.
        let shift = b.i64(SWEEP_SHIFT as i64);
        let hi = b.shl(sweep, shift);
        let m = b.i64((model as i64) << MODEL_SHIFT);
        let base = b.binary(crux_ir::kernel::BinOp::Or, hi, m);
        Rng { seed, stream, base }
    }

    fn counter(&self, b: &mut Builder, k: Value) -> Value {
        b.add(self.base, k)
    }

    /// Uniform on `[0, 1)` (the host's `crux_ir::rng::uniform`).
    pub fn uniform(&self, b: &mut Builder, k: Value) -> Value {
        let c = self.counter(b, k);
        b.uniform(self.seed, self.stream, c)
    }

    /// Standard normal by Box–Muller (the host's `crux_ir::rng::normal`,
    /// up to the math expansions' rounding).
    pub fn normal(&self, b: &mut Builder, k: Value) -> Value {
        let (r, a) = self.box_muller(b, k);
        let c = math::cos(b, a);
        b.mul(r, c)
    }

    /// Box–Muller's radius `√(−2 ln u1)` and angle `2π u2` of draw `k`.
    fn box_muller(&self, b: &mut Builder, k: Value) -> (Value, Value) {
        let c = self.counter(b, k);
        let w = b.philox(self.seed, self.stream, c);
        let u1 = unit(b, w[0], w[1]);
        let one = b.f64(1.0);
        let u1 = b.sub(one, u1);
        let u2 = unit(b, w[2], w[3]);
        let ln = math::log(b, u1);
        let m2 = b.f64(-2.0);
        let r = b.mul(m2, ln);
        let r = b.sqrt(r);
        let tau = b.f64(std::f64::consts::TAU);
        (r, b.mul(tau, u2))
    }

    /// Two standard normals from draw `k` (the host's
    /// `crux_ir::rng::normal_pair`, up to the math expansions' rounding):
    /// Box–Muller's cosine and sine outputs, half the Philox and logarithm
    /// work per normal.
    pub fn normal_pair(&self, b: &mut Builder, k: Value) -> (Value, Value) {
        let (r, a) = self.box_muller(b, k);
        let c = math::cos(b, a);
        let s = math::sin(b, a);
        (b.mul(r, c), b.mul(r, s))
    }
}

/// 53 bits of two Philox words as a double in `[0, 1)`.
fn unit(b: &mut Builder, hi: Value, lo: Value) -> Value {
    let s32 = b.i64(32);
    let s11 = b.i64(11);
    let h = b.shl(hi, s32);
    let bits = b.binary(crux_ir::kernel::BinOp::Or, h, lo);
    let bits = b.shr_u(bits, s11);
    let f = b.conv(Conv::I64ToF64, bits);
    let scale = b.f64(1.0 / (1u64 << 53) as f64);
    b.mul(f, scale)
}

/// The log-density a model's kernel targets, ready to inline.
#[derive(Clone, Debug)]
pub struct Target {
    /// The lowered `logp_grad(theta, grad, scratch, data...) -> f64`.
    pub function: Function,
    /// Where each data buffer of `function` lives in the caller: a
    /// read-only data buffer, or a slot of [`WORK`] for runtime inputs
    /// (minibatch weights).
    pub data: Vec<BufferView>,
    /// The log-density's scratch space (in [`WORK`]).
    pub scratch: Vector,
    /// The whole position θ of all sampled models (in [`STATE`]).
    pub theta: Vector,
    /// This model's block of θ.
    pub block: Vector,
    /// Full-length copies for evaluating one block's proposal with the other
    /// blocks at their current values (Gibbs sweeps over several models).
    pub full: Option<(Vector, Vector)>,
    /// Count of gradient evaluations (a slot in [`STATE`]).
    pub grad_evals: Vector,
}

impl Target {
    /// Emits `g = ∇ log p(q)` and returns `log p(q)`, where `q` and `g`
    /// have this model's block length: the other blocks of θ are at their
    /// current values. Counts one gradient evaluation.
    pub fn logp_grad(&self, b: &mut Builder, q: Vector, g: Vector) -> Value {
        let view = |v: Vector| BufferView {
            buf: v.buf,
            off: v.off,
        };
        let mut bufs = Vec::with_capacity(3 + self.data.len());
        let lp = match self.full {
            None => {
                bufs.extend([view(q), view(g), view(self.scratch)]);
                bufs.extend(self.data.iter().copied());
                inline(b, &self.function, &bufs, &[])[0]
            }
            Some((theta, grad)) => {
                // Other blocks at their current values, this block at `q`.
                theta.copy_from(b, self.theta);
                let rel = self.block.off - self.theta.off;
                let at = Vector {
                    buf: theta.buf,
                    off: theta.off + rel,
                    len: q.len,
                };
                at.copy_from(b, q);
                bufs.extend([view(theta), view(grad), view(self.scratch)]);
                bufs.extend(self.data.iter().copied());
                let lp = inline(b, &self.function, &bufs, &[])[0];
                let from = Vector {
                    buf: grad.buf,
                    off: grad.off + rel,
                    len: g.len,
                };
                g.copy_from(b, from);
                lp
            }
        };
        let n = self.grad_evals.get(b);
        let one = b.f64(1.0);
        let n = b.add(n, one);
        self.grad_evals.set(b, n);
        lp
    }
}

/// Everything a kernel's `init` or `step` may use, for one model of the
/// chunk function. Values the kernel reads inside loops are in
/// [`StepEnv`], which is `Copy` so closures can take it.
pub struct StepCtx<'a> {
    /// The function being built (insertion point: the model's step).
    pub b: &'a mut Builder,
    /// Copyable environment: random draws, the target, the standard slots.
    pub env: StepEnv<'a>,
    pub(crate) state: &'a mut Allocation,
    pub(crate) work: &'a mut Allocation,
    pub(crate) prefix: String,
}

/// The copyable part of a [`StepCtx`].
#[derive(Clone, Copy)]
pub struct StepEnv<'a> {
    /// Draws of this step.
    pub rng: Rng,
    /// The log-density.
    pub target: &'a Target,
    /// The model's current position (its block of θ, in [`STATE`]).
    pub position: Vector,
    /// `log p` at the current position (a [`STATE`] slot kept up to date by
    /// full-data kernels: the chunk function refreshes it before each step
    /// when other models moved).
    pub logp: Vector,
    /// `∇ log p` at the current position (kept like `logp`).
    pub grad: Vector,
    /// The step size (fixed, or adapted during warmup).
    pub step_size: Vector,
    /// The metric (inverse mass matrix) and its temporaries.
    pub metric: super::metric::MetricEnv,
    /// The sweep index (i64).
    pub sweep: Value,
}

impl StepCtx<'_> {
    /// A persistent per-chain slot of `len` entries named `name` (the same
    /// slot for the same name, within this model).
    pub fn state(&mut self, name: &str, len: usize) -> Vector {
        let name = format!("{}{}", self.prefix, name);
        self.state.slot(STATE, &name, len)
    }
    /// A step-local temporary of `len` entries (contents undefined on entry).
    pub fn work(&mut self, name: &str, len: usize) -> Vector {
        let name = format!("{}{}", self.prefix, name);
        self.work.slot(WORK, &name, len)
    }
    /// The dimension of the model's block.
    pub fn dim(&self) -> usize {
        self.env.position.len
    }
    /// Emits `g = ∇ log p(q)`, returns `log p(q)` (see [`Target::logp_grad`]).
    pub fn logp_grad(&mut self, q: Vector, g: Vector) -> Value {
        self.env.target.logp_grad(self.b, q, g)
    }
}

/// `Σ_i imm[i] · p[i]²`, twice the kinetic energy of momentum `p`.
pub fn kinetic2(b: &mut Builder, imm: Vector, p: Vector) -> Value {
    p.sum(b, |b, i| {
        let m = imm.load(b, i);
        let x = p.load(b, i);
        let t = b.mul(x, x);
        b.mul(m, t)
    })
}

/// `x` as f64 if it is an i64 value.
pub fn to_f64(b: &mut Builder, x: Value) -> Value {
    if b.ty(x) == Ty::I64 {
        b.conv(Conv::I64ToF64, x)
    } else {
        x
    }
}
