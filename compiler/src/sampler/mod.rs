//! Sampler kernels and the fused chunk function.
//!
//! A sampler is a [`Kernel`]: an `init` and a `step` written with the
//! kernel-IR builder against a [`StepCtx`] (vectors in the chain's buffers,
//! counter-based draws, the log-density inlined at each call). The chunk
//! builder ([`build_chunk`]) puts every sampled model's step, window
//! adaptation and the keep/thin bookkeeping into one kernel function
//!
//! ```text
//! chunk(seed, chain, lo, hi):
//!     if lo == 0: initialise every model (log-density, adaptation)
//!     for sweep in lo..hi:
//!         for model in models (fixed order, a Gibbs sweep):
//!             draw minibatch weights (models with a batch size)
//!             step; adapt if in warmup; store draw + diagnostics if kept
//! ```
//!
//! so a chain advances any number of sweeps in one call, with no host
//! work in between. Draws are a pure function of (seed, chain, sweep,
//! model, k): the same for any chunking, thread count or backend.

pub mod abi;
pub mod adapt;
pub mod ctx;
pub mod inline;
pub mod kernels;
pub mod metric;
pub mod minibatch;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use crux_ir::kernel::{Access, Builder, CmpOp, Conv, Function, KernelError, Ty, Value};

pub use abi::{chunk_args, ChainBuffers, ChunkBuffer, DiagName, CHUNK_PARAMS, LOGP_OUTPUT};
pub use adapt::{schedule, Adaptation, Schedule};
pub use ctx::{Allocation, Rng, StepCtx, StepEnv, Target, Vector};
use ctx::{DIAG, DRAWS, FIRST_DATA, STATE, WORK};
use inline::{check_inlining, BufferView};
pub use metric::{Metric, MetricEnv};
pub use minibatch::{Minibatch, WeightInput};

use crate::lower::Lowered;
use crate::verify;

/// Bit position of a step's repetition in the random stream index (the
/// chain's index is below it): repetition `r` of a model's step in one
/// sweep draws from stream `chain | r << REPEAT_SHIFT`; `r = 0` is the
/// chain's own stream, so a model stepping once per sweep draws exactly as
/// before.
pub const REPEAT_SHIFT: i64 = 32;

/// The most sampled models one chunk function can sweep (the draw counter
/// keeps the model index in 8 bits: [`crux_ir::rng::MAX_MODELS`]).
pub const MAX_MODELS: usize = crux_ir::rng::MAX_MODELS;

/// Which gradient a kernel consumes (the spec's duck-typed families).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Full-data MCMC: the kernel gets the log-density (NUTS, HMC, MALA,
    /// custom Metropolis kernels).
    FullData,
    /// Stochastic-gradient MCMC: the kernel gets a gradient estimator (the
    /// full-data gradient, or a minibatch estimate when the model has a
    /// [`Minibatch`]: SGLD, SGHMC).
    StochasticGradient,
}

/// How a diagnostic field is stored (all as f64 in the diagnostics buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagKind {
    /// 0 or 1.
    Bool,
    /// A real number.
    Float,
    /// A count.
    Int,
}

/// A per-draw diagnostic a kernel records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagField {
    /// Field name (`is_divergent`, `acceptance_rate`, ...).
    pub name: &'static str,
    /// Storage kind.
    pub kind: DiagKind,
}

impl DiagField {
    /// The field of a built-in diagnostic (its name and kind from
    /// [`DiagName`]).
    pub const fn known(name: DiagName) -> DiagField {
        DiagField {
            name: name.name(),
            kind: name.kind(),
        }
    }
}

/// What a step reports.
#[derive(Clone, Debug, Default)]
pub struct StepInfo {
    /// The Metropolis acceptance statistic that window adaptation targets
    /// (HMC-family kernels).
    pub accept_stat: Option<Value>,
    /// One f64 value per [`Kernel::diagnostics`] field, in order.
    pub diagnostics: Vec<Value>,
}

/// A sampling kernel written in kernel IR.
pub trait Kernel: Send + Sync + std::fmt::Debug {
    /// Short name (`nuts`, `hmc`, ...), for messages and logs.
    fn name(&self) -> &str;
    /// Which gradient the kernel consumes.
    fn family(&self) -> Family;
    /// Whether the kernel takes a step size and a diagonal inverse mass
    /// matrix that window adaptation may tune (NUTS, HMC).
    fn hmc_family(&self) -> bool {
        false
    }
    /// The fields recorded per kept draw.
    fn diagnostics(&self) -> Vec<DiagField>;
    /// Emitted once at the start of a chain, after the log-density and its
    /// gradient at the initial position are in `env.logp` / `env.grad`
    /// (full-data kernels). Default: nothing.
    fn init(&self, ctx: &mut StepCtx<'_>) -> Result<(), KernelError> {
        let _ = ctx;
        Ok(())
    }
    /// Emits one transition from `env.position`: the kernel writes the new
    /// position there (and, full-data kernels, the new `logp` and `grad`).
    fn step(&self, ctx: &mut StepCtx<'_>) -> Result<StepInfo, KernelError>;
}

/// One sampled model of a chunk function.
#[derive(Clone, Debug)]
pub struct ModelPlan {
    /// Name (messages, slot names).
    pub name: String,
    /// The kernel.
    pub kernel: Arc<dyn Kernel>,
    /// The model's log-density over the whole θ (other models' blocks are
    /// inputs), lowered.
    pub target: Lowered,
    /// Offset of the model's block in θ.
    pub offset: usize,
    /// Length of the block.
    pub len: usize,
    /// Sweeps before the first kept draw (adaptation runs in them).
    pub warmup: usize,
    /// Draws kept.
    pub keep: usize,
    /// Sweeps per kept draw.
    pub thin: usize,
    /// Window adaptation during warmup, if any.
    pub adapt: Option<Adaptation>,
    /// The form of the inverse mass matrix (HMC-family kernels).
    pub metric: Metric,
    /// Steps of this model per sweep (a substep's step count; 1 usually).
    /// Repetition `r` draws from the chain's stream `r` (see
    /// [`REPEAT_SHIFT`]); the kept draw is the last step's position.
    pub repeats: usize,
    /// Subsampled likelihood: the weights the chunk function draws before
    /// each step, one [`WeightInput`] per runtime input of `target` (matched
    /// by name). `None`: the full batch (a target without runtime inputs).
    pub minibatch: Option<Minibatch>,
}

impl ModelPlan {
    /// Sweeps this model needs: `warmup + keep · thin`.
    pub fn sweeps(&self) -> usize {
        self.warmup + self.keep * self.thin
    }
}

/// Where one model's outputs are in the chunk function's buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSlots {
    /// Offset of draw 0 in the draws buffer (`keep × len` entries).
    pub draws: usize,
    /// Offset of draw 0's diagnostics (`keep × fields` entries).
    pub diag: usize,
    /// Work slot of the minibatch weights of the latest step
    /// ([`Minibatch::len`] entries), if the model has a [`Minibatch`].
    pub weights: Option<usize>,
    /// The diagnostic fields.
    pub fields: Vec<DiagField>,
    /// State slot of the step size.
    pub step_size: usize,
    /// State slot of the inverse mass matrix
    /// ([`Metric::inverse_mass_len`] entries).
    pub inverse_mass: usize,
    /// State slot of the dense metric's inverse Cholesky factor
    /// ([`Metric::factor_len`] entries).
    pub mass_factor: usize,
    /// The metric's form.
    pub metric: Metric,
    /// State slot of the gradient-evaluation count.
    pub grad_evals: usize,
}

/// A built chunk function and its buffer layout.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// `chunk(seed: i64, chain: i64, lo: i64, hi: i64)`, buffers
    /// `state, work, draws, diag, data...`.
    pub function: Function,
    /// Per-chain state slots.
    pub state: Allocation,
    /// Entries of the work buffer.
    pub work_len: usize,
    /// Entries of the draws buffer.
    pub draws_len: usize,
    /// Entries of the diagnostics buffer.
    pub diag_len: usize,
    /// Offset of θ in the state buffer.
    pub theta: usize,
    /// Per model outputs.
    pub models: Vec<ModelSlots>,
    /// The data buffers, in buffer order from [`FIRST_DATA`].
    pub data: Vec<Vec<f64>>,
    /// Total sweeps (the longest model's `warmup + keep · thin`).
    pub sweeps: usize,
}

impl Chunk {
    /// The buffers of one chain for a call of [`Chunk::function`], in
    /// [`ChunkBuffer`] order: the given state (`state.len` entries), zeroed
    /// work, draws and diagnostics, and the data. Callers use the typed
    /// [`Chunk::chain_buffers`].
    pub(crate) fn buffers(&self, state: Vec<f64>) -> Vec<crux_ir::kernel::Buffer> {
        use crux_ir::kernel::Buffer;
        debug_assert_eq!(state.len(), self.state.len);
        let mut bufs = vec![
            Buffer::F64(state),
            Buffer::F64(vec![0.0; self.work_len]),
            Buffer::F64(vec![0.0; self.draws_len]),
            Buffer::F64(vec![0.0; self.diag_len]),
        ];
        bufs.extend(self.data.iter().map(|d| Buffer::F64(d.clone())));
        bufs
    }

    /// The buffers of one chain for a call of [`Chunk::function`] (the
    /// given state, zeroed work, draws and diagnostics, the data), with
    /// typed accessors for the state, draws and diagnostics.
    pub fn chain_buffers(&self, state: Vec<f64>) -> ChainBuffers {
        ChainBuffers::new(self.buffers(state))
    }
}

/// `log p(θ) = −½ Σ (θ_i − μ_i)² / σ_i²`, lowered: a target whose law is
/// known exactly, for tests and examples of kernels and backends.
///
/// # Panics
///
/// When `mu` and `sd` differ in length.
pub fn gaussian_target(mu: &[f64], sd: &[f64]) -> crate::lower::Lowered {
    assert_eq!(mu.len(), sd.len(), "one standard deviation per mean");
    let g = gaussian_graph(mu, sd).expect("μ and σ have one length: every shape matches");
    let c = crate::pipeline::compile_log_density(&g, &crate::optimise::EggLimits::default())
        .expect("the pipeline handles a weighted sum of squares of an f64 vector");
    crate::lower::lower_log_density(c.final_graph(), "gauss")
        .expect("lowering handles a weighted sum of squares of an f64 vector")
}

/// The graph of [`gaussian_target`]'s log-density.
fn gaussian_graph(mu: &[f64], sd: &[f64]) -> Result<crux_ir::graph::Graph, crux_ir::GraphError> {
    use crux_ir::graph::{DType, Graph, Tensor};
    let d = mu.len();
    let mut g = Graph::new();
    let p = g.add_param("theta", DType::F64, [d]);
    let m = g.add_data("mu", Tensor::f64([d], mu.to_vec())?);
    let prec: Vec<f64> = sd.iter().map(|s| 1.0 / (s * s)).collect();
    let w = g.add_data("prec", Tensor::f64([d], prec)?);
    let t = g.param(p)?;
    let m = g.data_node(m)?;
    let w = g.data_node(w)?;
    let r = g.sub(t, m)?;
    let r2 = g.mul(r, r)?;
    let wr = g.mul(w, r2)?;
    let s = g.sum_all(wr)?;
    let lp = g.scale(s, -0.5)?;
    g.set_output(LOGP_OUTPUT, lp);
    Ok(g)
}

/// Builds the chunk function of `models` sampling a position of `dim`
/// entries (the models' blocks tile it).
pub fn build_chunk(dim: usize, models: &[ModelPlan]) -> Result<Chunk, KernelError> {
    let invalid = |msg: String| KernelError::Invalid {
        function: "chunk".into(),
        msg,
    };
    if models.is_empty() {
        return Err(invalid("no sampled model".into()));
    }
    // The draw counter keeps the model index in 8 bits (`crux_ir::rng`).
    if models.len() > MAX_MODELS {
        return Err(invalid(format!(
            "{} sampled models: at most {MAX_MODELS} per solve (group parameters into fewer models)",
            models.len()
        )));
    }
    let mut b = Builder::new("chunk");
    let [seed, chain, lo, hi] = CHUNK_PARAMS.map(|name| b.param(name, Ty::I64));
    for buf in ChunkBuffer::ALL {
        let id = b.buffer(buf.name(), Ty::F64, buf.access());
        debug_assert_eq!(id, buf.id());
    }

    let mut state = Allocation::default();
    let mut work = Allocation::default();
    let theta = state.slot(STATE, "theta", dim);
    let several = models.len() > 1;

    // Targets: data buffers and scratch per model.
    let mut data = Vec::new();
    let mut targets = Vec::new();
    let mut slots = Vec::new();
    let mut draws_len = 0;
    let mut diag_len = 0;
    for (mi, m) in models.iter().enumerate() {
        if m.target.layout.dim != dim || m.offset + m.len > dim {
            return Err(invalid(format!(
                "model `{}`: block {}..{} of a {}-entry position, target over {}",
                m.name,
                m.offset,
                m.offset + m.len,
                dim,
                m.target.layout.dim
            )));
        }
        let p = format!("m{mi}.");
        let weights = match &m.minibatch {
            Some(mb) => {
                mb.check(&m.name)?;
                Some(work.slot(WORK, &format!("{p}minibatch_weights"), mb.len()))
            }
            None => None,
        };
        let mut bufs = Vec::new();
        for (k, d) in m.target.layout.data.iter().enumerate() {
            match m.target.layout.inputs.iter().find(|i| i.data == k) {
                Some(input) => bufs.push(weight_view(m, &input.name, d.len(), weights)?),
                None => {
                    let id = b.buffer(format!("m{mi}_data{k}"), Ty::F64, Access::Read);
                    debug_assert_eq!(id.0, FIRST_DATA + data.len() as u32);
                    data.push(d.clone());
                    bufs.push(BufferView { buf: id, off: 0 });
                }
            }
        }
        let scratch = work.slot(WORK, &format!("{p}logp_scratch"), m.target.layout.scratch);
        let full = several.then(|| {
            (
                work.slot(WORK, &format!("{p}theta_eval"), dim),
                work.slot(WORK, &format!("{p}grad_eval"), dim),
            )
        });
        let block = Vector {
            buf: STATE,
            off: theta.off + m.offset,
            len: m.len,
        };
        let grad_evals = state.slot(STATE, &format!("{p}grad_evals"), 1);
        targets.push(Target {
            function: m.target.function.clone(),
            data: bufs,
            scratch,
            theta,
            block,
            full,
            grad_evals,
        });
        let fields = m.kernel.diagnostics();
        let step_size = state.slot(STATE, &format!("{p}step_size"), 1);
        let metric = metric_env(&mut state, m, mi);
        slots.push(ModelSlots {
            draws: draws_len,
            diag: diag_len,
            weights: weights.map(|w| w.off),
            step_size: step_size.off,
            inverse_mass: metric.inverse_mass.off,
            mass_factor: metric.factor.off,
            metric: m.metric,
            grad_evals: grad_evals.off,
            fields: fields.clone(),
        });
        draws_len += m.keep * m.len;
        diag_len += m.keep * fields.len();
    }

    // Debug builds and tests: each lowered log-density verifies, and so
    // does its inlining on its own (a failure names the pass).
    if verify::ENABLED {
        for t in &targets {
            let mut views = vec![
                BufferView {
                    buf: STATE,
                    off: t.theta.off,
                },
                BufferView {
                    buf: WORK,
                    off: t.full.map_or(t.scratch.off, |(_, g)| g.off),
                },
                BufferView {
                    buf: WORK,
                    off: t.scratch.off,
                },
            ];
            views.extend(t.data.iter().copied());
            check_inlining(&t.function, &views).map_err(|e| invalid(e.to_string()))?;
        }
    }

    let mut err: Option<KernelError> = None;

    // Chain start: log-density, kernel init, adaptation init.
    let zero = b.i64(0);
    let first = b.cmp(CmpOp::Eq, lo, zero);
    b.if_(
        first,
        |b| {
            for (mi, m) in models.iter().enumerate() {
                let sweep = b.i64(0);
                // The weights of sweep 0, so that the target is defined
                // wherever a kernel's init evaluates it.
                draw_weights(b, m, &slots[mi], (mi, sweep, (seed, chain)));
                let at = (mi, sweep, (seed, chain));
                let mut ctx = model_ctx(b, &mut state, &mut work, m, at, &targets, true);
                if let Err(e) = m.kernel.init(&mut ctx) {
                    err.get_or_insert(e);
                }
                if m.adapt.is_some() {
                    adapt::init(&mut ctx, m.warmup);
                }
            }
            vec![]
        },
        |_| vec![],
    );

    b.for_(lo, hi, &[], |b, sweep, _| {
        for (mi, m) in models.iter().enumerate() {
            let mut step = |b: &mut Builder, chain: Value| {
                // With several models, other blocks moved since this model's
                // last step: its cached log-density is stale.
                let at = (mi, sweep, (seed, chain));
                draw_weights(b, m, &slots[mi], at);
                let mut ctx = model_ctx(b, &mut state, &mut work, m, at, &targets, several);
                let env = ctx.env;
                let info = match m.kernel.step(&mut ctx) {
                    Ok(i) => i,
                    Err(e) => {
                        err.get_or_insert(e);
                        StepInfo::default()
                    }
                };
                if info.diagnostics.len() != slots[mi].fields.len() {
                    err.get_or_insert(invalid(format!(
                        "kernel `{}` returned {} diagnostics for {} fields",
                        m.kernel.name(),
                        info.diagnostics.len(),
                        slots[mi].fields.len()
                    )));
                    return;
                }
                if let Some(adaptation) = &m.adapt {
                    match info.accept_stat {
                        Some(a) => adapt::update(&mut ctx, m.warmup, adaptation, a),
                        None => {
                            err.get_or_insert(invalid(format!(
                                "kernel `{}` is adapted but reports no acceptance statistic",
                                m.kernel.name()
                            )));
                        }
                    }
                }
                if m.keep > 0 {
                    collect(ctx.b, m, &slots[mi], sweep, env.position, &info.diagnostics);
                }
            };
            if m.repeats <= 1 {
                step(b, chain);
            } else {
                // Repetition r draws from the chain's stream r (the stream
                // index `chain | r << 32`; r = 0 is the chain's own), so
                // every step of a sweep has its own draws; the last one's
                // position is the kept draw.
                let (r0, r1) = (b.i64(0), b.i64(m.repeats as i64));
                b.for_(r0, r1, &[], |b, rep, _| {
                    let shift = b.i64(REPEAT_SHIFT);
                    let high = b.shl(rep, shift);
                    let chain = b.binary(crux_ir::kernel::BinOp::Or, chain, high);
                    step(b, chain);
                    vec![]
                });
            }
        }
        vec![]
    });
    if let Some(e) = err {
        return Err(e);
    }
    // `finish` runs the kernel verifier on the whole chunk function (every
    // build): a failure is a bug of a kernel's step body (a custom kernel
    // is user code) or of chunk building, reported as `KernelError`.
    let function = b.finish(&[])?;
    Ok(Chunk {
        function,
        work_len: work.len,
        theta: theta.off,
        draws_len,
        diag_len,
        models: slots,
        data,
        sweeps: models.iter().map(ModelPlan::sweeps).max().unwrap_or(0),
        state,
    })
}

/// Where the runtime input `name` of model `m`'s target lives: its part of
/// the model's weights slot (`weights`), or an error when the model has no
/// minibatch, no weights of that name or weights of another length (`len`
/// entries in the lowered function).
fn weight_view(
    m: &ModelPlan,
    name: &str,
    len: usize,
    weights: Option<Vector>,
) -> Result<BufferView, KernelError> {
    let invalid = |msg: String| KernelError::Invalid {
        function: "chunk".into(),
        msg: format!("model `{}`: {msg}", m.name),
    };
    let (Some(mb), Some(slot)) = (&m.minibatch, weights) else {
        return Err(invalid(format!(
            "the log-density reads the runtime input `{name}` but the model has no minibatch"
        )));
    };
    let mut off = slot.off;
    for inp in &mb.inputs {
        if inp.name == name {
            if inp.points != len {
                return Err(invalid(format!(
                    "the runtime input `{name}` has {len} entries, its minibatch weights {}",
                    inp.points
                )));
            }
            return Ok(BufferView { buf: WORK, off });
        }
        off += inp.points;
    }
    Err(invalid(format!(
        "the log-density reads the runtime input `{name}`, which is not one of its minibatch weights"
    )))
}

/// Writes model `mi`'s minibatch weights of `sweep` (nothing without a
/// minibatch).
fn draw_weights(
    b: &mut Builder,
    m: &ModelPlan,
    slots: &ModelSlots,
    (mi, sweep, seed_chain): (usize, Value, (Value, Value)),
) {
    if let (Some(mb), Some(off)) = (&m.minibatch, slots.weights) {
        let rng = Rng::for_purpose(b, crux_ir::rng::Purpose::Minibatch, seed_chain, sweep, mi);
        let slot = Vector {
            buf: WORK,
            off,
            len: mb.len(),
        };
        mb.emit(b, rng, slot);
    }
}

/// The context of model `mi`'s step at `sweep`; with `refresh`, a
/// full-data model's cached log-density and gradient are recomputed at the
/// current position first.
fn model_ctx<'a>(
    b: &'a mut Builder,
    state: &'a mut Allocation,
    work: &'a mut Allocation,
    m: &ModelPlan,
    (mi, sweep, seed_chain): (usize, Value, (Value, Value)),
    targets: &'a [Target],
    refresh: bool,
) -> StepCtx<'a> {
    let env = env_of(b, state, m, mi, sweep, seed_chain, targets);
    if refresh && m.kernel.family() == Family::FullData {
        let lp = env.target.logp_grad(b, env.position, env.grad);
        env.logp.set(b, lp);
    }
    StepCtx {
        b,
        env,
        state,
        work,
        prefix: format!("m{mi}.k."),
    }
}

/// The environment of model `mi`'s step at `sweep`.
fn env_of<'t>(
    b: &mut Builder,
    state: &mut Allocation,
    m: &ModelPlan,
    mi: usize,
    sweep: Value,
    (seed, chain): (Value, Value),
    targets: &'t [Target],
) -> StepEnv<'t> {
    let p = format!("m{mi}.");
    StepEnv {
        rng: Rng::new(b, seed, chain, sweep, mi),
        target: &targets[mi],
        position: targets[mi].block,
        logp: state.slot(STATE, &format!("{p}logp"), 1),
        grad: state.slot(STATE, &format!("{p}grad"), m.len),
        step_size: state.slot(STATE, &format!("{p}step_size"), 1),
        metric: metric_env(state, m, mi),
        sweep,
    }
}

/// Model `mi`'s metric slots in the chain state.
fn metric_env(state: &mut Allocation, m: &ModelPlan, mi: usize) -> MetricEnv {
    let p = format!("m{mi}.");
    let k = m.metric;
    MetricEnv {
        kind: k,
        inverse_mass: state.slot(
            STATE,
            &format!("{p}inverse_mass"),
            k.inverse_mass_len(m.len),
        ),
        factor: state.slot(STATE, &format!("{p}mass_factor"), k.factor_len(m.len)),
        tmp: state.slot(STATE, &format!("{p}metric_tmp"), m.len),
        tmp2: state.slot(STATE, &format!("{p}metric_tmp2"), m.len),
        small: state.slot(STATE, &format!("{p}metric_small"), k.rank()),
    }
}

/// Stores the position and diagnostics when `sweep` is a kept one:
/// sweep `warmup + thin·(k+1) − 1` gives draw `k < keep`.
fn collect(
    b: &mut Builder,
    m: &ModelPlan,
    slots: &ModelSlots,
    sweep: Value,
    pos: Vector,
    diag: &[Value],
) {
    // t = sweep − warmup + 1 counts post-warmup sweeps; integer division by
    // the thinning is exact in f64 for counts below 2⁵³.
    let w = b.i64(m.warmup as i64 - 1);
    let t = b.sub(sweep, w);
    let one = b.i64(1);
    let started = b.cmp(CmpOp::Ge, t, one);
    let tf = b.conv(Conv::I64ToF64, t);
    let thin_f = b.f64(m.thin as f64);
    let qf = b.div(tf, thin_f);
    let qf = b.unary(crux_ir::kernel::UnOp::Floor, qf);
    let q = b.conv(Conv::F64ToI64, qf);
    let thin = b.i64(m.thin as i64);
    let qt = b.mul(q, thin);
    let r = b.sub(t, qt);
    let zero = b.i64(0);
    let on_thin = b.cmp(CmpOp::Eq, r, zero);
    let keep = b.i64(m.keep as i64);
    let within = b.cmp(CmpOp::Le, q, keep);
    let kept = b.and(started, on_thin);
    let kept = b.and(kept, within);
    let fields = diag.to_vec();
    let (draws_off, diag_off, nf) = (slots.draws, slots.diag, fields.len());
    b.if_(
        kept,
        |b| {
            let k = b.sub(q, one);
            let len = b.i64(m.len as i64);
            let base = b.mul(k, len);
            let off = b.i64(draws_off as i64);
            let base = b.add(base, off);
            pos.fill_into(b, DRAWS, base);
            let nfv = b.i64(nf as i64);
            let dbase = b.mul(k, nfv);
            let doff = b.i64(diag_off as i64);
            let dbase = b.add(dbase, doff);
            for (j, v) in fields.iter().enumerate() {
                let jj = b.i64(j as i64);
                let at = b.add(dbase, jj);
                b.store(DIAG, at, *v);
            }
            vec![]
        },
        |_| vec![],
    );
}
