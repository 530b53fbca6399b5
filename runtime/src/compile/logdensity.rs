//! The log-density of sampled models and its gradient.
//!
//! `log p(θ) = − likelihood_scale · mean_c L_c(x) + Σ_t ℓ_t(x) + Σ_models log
//! prior(x_model) + Σ log |dx/du|` (DESIGN §6): the `.mse()`/`.mae()`
//! constraints averaged and scaled, the log-density terms ℓ_t
//! (`.gaussian(σ)`, ..., `Constraint::log_density`) as they are. θ holds
//! the unconstrained value `u` of each leaf and the model reads `x = T(u)`
//! (the identity unless the leaf is constrained; see
//! `crate::model::transform`). With a batch size `n` ([`LogDensityBuilder::batch_size`]),
//! each constraint with more than `n` points has weights: `L_c =
//! mean(w_c ⊙ r_c²)` (`.mse()`) or `mean(w_c ⊙ |r_c|)` (`.mae()`), `w_c` a
//! runtime input of the graph (one weight per point) that the chunk
//! function draws before each step (see `crux_compiler::sampler::minibatch`). Sampled models' leaves are the position θ, flattened in the
//! order the models were selected and, within a model, in leaf order;
//! every other model enters at its current value. The expression is traced
//! to the graph IR, differentiated in reverse mode, staged and optimised by
//! `crux-compiler`; the result is evaluated here by the reference
//! interpreter (the compiled backends come later and are checked against it).

use std::collections::HashSet;

use crux_compiler::optimise::EggLimits;
use crux_compiler::pipeline::LOGP_OUTPUT;
use crux_compiler::pipeline::{
    compile_log_density, grad_output_name, OptimisedLogDensity, StageStats,
};
use crux_compiler::sampler::minibatch::{Minibatch, WeightInput, WEIGHTS_PREFIX};
use crux_ir::graph::{eval_all, BinaryOp, DType, Graph, NodeId, Shape, Tensor, UnaryOp};

use crate::compile::problem::Problem;
use crate::compile::trace::Tracer;
use crate::error::{Error, Result};
use crate::model::constraint::Reduction;
use crate::model::expr::Expr;
use crate::model::param::{Model, Param};
use crate::model::prior::Prior;

/// Where one sampled leaf lives in the flat position vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Leaf name.
    pub name: String,
    /// Leaf shape.
    pub shape: Vec<usize>,
    /// First index in θ.
    pub offset: usize,
    /// Number of entries.
    pub len: usize,
}

struct Sampled {
    name: String,
    id: crate::model::ids::ModelId,
    leaves: Vec<Param>,
    /// `None`: the model's leaves are inputs of θ without a prior term (the
    /// other blocks of a Gibbs sweep's conditional).
    prior: Option<Prior>,
    /// Every leaf of the model (`sample`), not a masked group (`slot`).
    whole: bool,
    /// Per leaf, the entries that reach the model (`None`: all).
    masks: Vec<Option<Vec<bool>>>,
}

/// Configures a [`LogDensity`]; see [`crate::Crux::log_density`].
pub struct LogDensityBuilder<'a> {
    crux: &'a Problem,
    sampled: Vec<Sampled>,
    likelihood_scale: f64,
    batch_size: Option<usize>,
    limits: EggLimits,
    /// A subset of the constraints (default: all).
    only: Option<Vec<usize>>,
}

impl<'a> LogDensityBuilder<'a> {
    pub(crate) fn new(crux: &'a Problem) -> Self {
        LogDensityBuilder {
            crux,
            sampled: Vec::new(),
            likelihood_scale: 1.0,
            batch_size: None,
            limits: EggLimits::default(),
            only: None,
        }
    }

    /// Samples `model` under `prior` (its leaves become part of θ).
    pub fn sample(mut self, model: &impl Model, prior: Prior) -> Self {
        self.sampled.push(Sampled {
            name: model.model_name(),
            id: model.model_id(),
            leaves: model.leaves(),
            prior: Some(prior),
            whole: true,
            masks: Vec::new(),
        });
        self
    }

    /// Adds a model's leaves to θ, with `prior` or (`None`) as a
    /// conditioning input only.
    pub(crate) fn slot(
        mut self,
        name: &str,
        id: crate::model::ids::ModelId,
        leaves: &[Param],
        masks: &[Option<Vec<bool>>],
        prior: Option<Prior>,
    ) -> Self {
        self.sampled.push(Sampled {
            name: name.to_string(),
            id,
            leaves: leaves.to_vec(),
            prior,
            whole: false,
            masks: masks.to_vec(),
        });
        self
    }

    /// Only the constraints `which` (indices in `Crux::new` order) form the
    /// likelihood term: `−scale · mean_{c ∈ which} L_c` (a substep's
    /// log-density). Default: every constraint.
    pub fn constraints(mut self, which: impl IntoIterator<Item = usize>) -> Self {
        self.only = Some(which.into_iter().collect());
        self
    }

    /// Weight of the likelihood term (default 1; must be finite and > 0).
    pub fn likelihood_scale(mut self, scale: f64) -> Self {
        self.likelihood_scale = scale;
        self
    }

    /// Subsamples the points of each constraint with more than `n` points
    /// (`n ≥ 1`; the points are the leading axis of a residual that reads a
    /// domain): its loss becomes `mean(w ⊙ r²)` (or `mean(w ⊙ |r|)`) with
    /// per-point weights `w`, a runtime input of the graph (see
    /// [`LogDensity::minibatch`]). The graph's stored weights are ones, so
    /// [`LogDensity::logp_and_grad`] is the full-batch value;
    /// [`LogDensity::logp_and_grad_weighted`] evaluates other weights. This
    /// is how `Bayesian::batch_size` builds a model's log-density.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Limits of the e-graph optimiser.
    pub fn egg_limits(mut self, limits: EggLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Traces, differentiates, stages and optimises the log-density.
    pub fn build(self) -> Result<LogDensity> {
        let s = self.likelihood_scale;
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::InvalidArgument {
                what: "likelihood_scale".into(),
                reason: format!("likelihood_scale must be positive, got {s}"),
            });
        }
        if self.batch_size == Some(0) {
            return Err(Error::InvalidArgument {
                what: "batch_size".into(),
                reason: "batch_size must be >= 1, got 0".into(),
            });
        }
        if self.sampled.is_empty() {
            return Err(Error::NothingSampled);
        }
        // A model is sampled once; the driver's slots of one model's
        // masked groups hold disjoint leaves.
        let mut seen = HashSet::new();
        let mut seen_leaves = HashSet::new();
        for m in &self.sampled {
            let fresh_leaves = m.leaves.iter().all(|p| seen_leaves.insert(p.leaf_id()));
            if !seen.insert(m.id) && (m.whole || !fresh_leaves) {
                return Err(Error::DuplicateModel(m.name.clone()));
            }
            if !self.crux.models().iter().any(|x| x.id == m.id) {
                return Err(Error::ModelNotInProblem(m.name.clone()));
            }
        }
        let which: Vec<usize> = match &self.only {
            Some(w) => {
                self.crux.check_constraints(w)?;
                w.clone()
            }
            None => (0..self.crux.constraints().len()).collect(),
        };
        let mut tracer = Tracer::new(self.crux.seed(), self.crux.noise().clone());
        let mut layout = Vec::new();
        let mut offset = 0;
        // Entry-masked leaves: `select(mask, θ, value)`; their unmasked θ
        // entries get a standard normal term of their own (they never reach
        // the model; it keeps them bounded).
        let mut anchors = Vec::new();
        // Σ log |dx/du| of the constrained leaves of models with a prior
        // (the densities this log-density is of).
        let mut jacobians = Vec::new();
        for m in &self.sampled {
            for (li, p) in m.leaves.iter().enumerate() {
                match m.masks.get(li).and_then(Option::as_ref) {
                    Some(_) if !p.transform().is_identity() => {
                        return Err(Error::InvalidArgument {
                            what: format!("parameter `{}`", p.name()),
                            reason: "an entry mask on a constrained parameter is not supported: sample the whole parameter, or drop its constraint".into(),
                        });
                    }
                    Some(mask) => anchors.push(tracer.add_masked_slot(p, mask)?),
                    None => {
                        p.transform().check_values(p.name(), &p.values())?;
                        let logj = tracer.add_unconstrained_slot(p)?;
                        if m.prior.is_some() {
                            jacobians.extend(logj);
                        }
                    }
                }
                layout.push(Slot {
                    name: p.name().to_string(),
                    shape: p.shape().to_vec(),
                    offset,
                    len: p.len(),
                });
                offset += p.len();
            }
        }
        let (out, minibatch) = match self.batch_size {
            None => {
                let mut logp = self.crux.log_likelihood_of(&which, s);
                for m in &self.sampled {
                    if let Some(p) = &m.prior {
                        logp = logp + p.log_prior(&m.leaves)?;
                    }
                }
                (tracer.trace(&logp)?, None)
            }
            Some(n) => {
                let mut priors = Vec::new();
                for m in &self.sampled {
                    if let Some(p) = &m.prior {
                        priors.push(p.log_prior(&m.leaves)?);
                    }
                }
                let (out, mb) = trace_weighted(&mut tracer, self.crux, &which, s, n, &priors)?;
                (out, Some(mb))
            }
        };
        let mut out = out;
        for j in jacobians {
            out = tracer.graph.binary_bcast(BinaryOp::Add, out, j)?;
        }
        for (raw, mask) in anchors {
            let g = &mut tracer.graph;
            let sq = g.binary_bcast(BinaryOp::Mul, raw, raw)?;
            let shape = g.ty(raw).1.clone();
            let zero = g.constant(0.0, DType::F64, shape)?;
            let unmasked = g.select(mask, zero, sq)?;
            let s = g.sum_all(unmasked)?;
            let half = g.constant(-0.5, DType::F64, Shape::scalar())?;
            let a = g.binary_bcast(BinaryOp::Mul, s, half)?;
            out = g.binary_bcast(BinaryOp::Add, out, a)?;
        }
        tracer.graph.set_output(LOGP_OUTPUT, out);
        let compiled = compile_log_density(&tracer.graph, &self.limits)?;
        let initial = self
            .sampled
            .iter()
            .flat_map(|m| m.leaves.iter().flat_map(unconstrained_values))
            .collect();
        Ok(LogDensity {
            compiled,
            layout,
            dim: offset,
            points: self.crux.num_points(),
            initial,
            minibatch,
        })
    }
}

/// The leaf's value as the sampler holds it (`T⁻¹` of its value).
pub(crate) fn unconstrained_values(p: &Param) -> Vec<f64> {
    p.transform().inverse(&p.values())
}

/// The points of constraint residual `r` that a batch of `n` subsamples:
/// its leading axis when it reads a domain's points and has more than `n`.
fn subsampled_points(r: &Expr, n: usize) -> Option<usize> {
    // A residual that reads no domain has no points.
    r.0.domain?;
    r.shape().first().copied().filter(|&p| p > n)
}

/// Traces `−scale · mean_c L_c + Σ_t ℓ_t + Σ priors` with minibatch
/// weights on every residual constraint that has more than `batch_size`
/// points (the log-density terms ℓ_t are whole; the caller adds the
/// Jacobians); the same graph ops as
/// tracing [`Problem::loss`] otherwise (`L_c = sum(w ⊙ r²) · (1 / numel)`,
/// with `w` broadcast over the residual's trailing axes).
fn trace_weighted(
    tracer: &mut Tracer,
    problem: &Problem,
    which: &[usize],
    scale: f64,
    batch_size: usize,
    priors: &[Expr],
) -> Result<(NodeId, Minibatch)> {
    let mut mb = Minibatch {
        batch_size,
        inputs: Vec::new(),
    };
    let constraints = problem.constraints();
    let mut total: Option<NodeId> = None;
    // Log-density terms: the whole term, added as it is.
    let mut terms: Vec<NodeId> = Vec::new();
    let (log_density, residuals): (Vec<usize>, Vec<usize>) = which
        .iter()
        .partition(|&&ci| constraints[ci].is_log_density());
    for ci in log_density {
        terms.push(tracer.trace(&constraints[ci].residual().sum())?);
    }
    for &ci in &residuals {
        let c = &constraints[ci];
        let l = match subsampled_points(c.residual(), batch_size) {
            None => tracer.trace(&c.value())?,
            Some(points) => {
                let r = tracer.trace(c.residual())?;
                let (dtype, shape) = {
                    let (d, sh) = tracer.graph.ty(r);
                    (d, sh.clone())
                };
                let mut wshape = vec![1; shape.rank()];
                wshape[0] = points;
                let name = format!("{WEIGHTS_PREFIX}{ci}");
                let w = tracer.runtime_data(name.clone(), Tensor::full(dtype, wshape, 1.0))?;
                mb.inputs.push(WeightInput { name, points });
                let g = &mut tracer.graph;
                let v = match c.reduction() {
                    Reduction::MeanSquare => g.binary_bcast(BinaryOp::Mul, r, r)?,
                    Reduction::MeanAbs => g.unary(UnaryOp::Abs, r)?,
                    Reduction::LogDensity => unreachable!("log-density terms are not subsampled"),
                };
                let wv = g.binary_bcast(BinaryOp::Mul, w, v)?;
                let sum = g.sum_all(wv)?;
                let inv = g.constant(1.0 / shape.numel() as f64, dtype, Shape::scalar())?;
                g.binary_bcast(BinaryOp::Mul, sum, inv)?
            }
        };
        total = Some(match total {
            None => l,
            Some(t) => tracer.graph.binary_bcast(BinaryOp::Add, t, l)?,
        });
    }
    let g = &mut tracer.graph;
    let mut lp = match total {
        Some(total) => {
            let inv = g.constant(1.0 / residuals.len() as f64, DType::F64, Shape::scalar())?;
            let loss = g.binary_bcast(BinaryOp::Mul, total, inv)?;
            let neg = g.constant(-scale, DType::F64, Shape::scalar())?;
            g.binary_bcast(BinaryOp::Mul, loss, neg)?
        }
        None => g.constant(0.0, DType::F64, Shape::scalar())?,
    };
    for t in terms {
        lp = tracer.graph.binary_bcast(BinaryOp::Add, lp, t)?;
    }
    for p in priors {
        let pn = tracer.trace(p)?;
        lp = tracer.graph.binary_bcast(BinaryOp::Add, lp, pn)?;
    }
    Ok((lp, mb))
}

/// A compiled log-density with its gradient.
#[derive(Clone, Debug)]
pub struct LogDensity {
    compiled: OptimisedLogDensity,
    layout: Vec<Slot>,
    dim: usize,
    points: usize,
    initial: Vec<f64>,
    minibatch: Option<Minibatch>,
}

impl LogDensity {
    /// The minibatch of a log-density built with
    /// [`LogDensityBuilder::batch_size`]: the batch size and one weight
    /// input per subsampled constraint (none when every constraint has at
    /// most that many points). [`Minibatch::weights`] gives the weights a
    /// chain's step draws.
    pub fn minibatch(&self) -> Option<&Minibatch> {
        self.minibatch.as_ref()
    }

    /// `log p(θ)` and its gradient with minibatch weights `weights` (one
    /// vector per [`Minibatch::inputs`] entry, of its points), by the
    /// reference interpreter on the optimised graph: the estimate a
    /// stochastic-gradient step with those weights uses.
    pub fn logp_and_grad_weighted(
        &self,
        theta: &[f64],
        weights: &[Vec<f64>],
    ) -> Result<(f64, Vec<f64>)> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "minibatch weights".into(),
            reason,
        };
        let mb = self.minibatch.as_ref().ok_or_else(|| {
            bad("the log-density has no minibatch: build it with `.batch_size(n)`".into())
        })?;
        if weights.len() != mb.inputs.len() {
            return Err(bad(format!(
                "{} weight vectors for {} subsampled constraints",
                weights.len(),
                mb.inputs.len()
            )));
        }
        let mut g = self.graph().clone();
        for (inp, w) in mb.inputs.iter().zip(weights) {
            if w.len() != inp.points {
                return Err(bad(format!(
                    "{} weights for `{}`, which has {} points",
                    w.len(),
                    inp.name,
                    inp.points
                )));
            }
            // The optimiser drops weights nothing reads.
            let found = g
                .data()
                .iter()
                .position(|d| d.runtime && d.name == inp.name);
            if let Some(k) = found {
                let old = &g.data()[k].value;
                let value = Tensor::new(old.dtype, old.shape.clone(), w.clone())?;
                g.set_runtime_data(crux_ir::DataId(k as u32), value)?;
            }
        }
        self.eval_graph(&g, "optimised", theta)
    }

    /// Dimension of θ.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of collocation points of the problem.
    pub fn num_points(&self) -> usize {
        self.points
    }

    /// Where each sampled leaf lives in θ.
    pub fn layout(&self) -> &[Slot] {
        &self.layout
    }

    /// θ at the parameters' values when the log-density was built
    /// (unconstrained: `T⁻¹(x)` of a constrained leaf).
    pub fn initial_position(&self) -> &[f64] {
        &self.initial
    }

    /// Statistics of each pipeline stage, in order.
    pub fn stages(&self) -> Vec<StageStats> {
        self.compiled
            .stages
            .iter()
            .map(|s| s.stats.clone())
            .collect()
    }

    /// The graph of a stage (`traced`, `differentiated`, `staged`, `optimised`).
    pub fn stage_graph(&self, name: &str) -> Result<&Graph> {
        self.compiled
            .stage(name)
            .map(|s| &s.graph)
            .ok_or_else(|| Error::UnknownStage {
                name: name.to_string(),
                available: self
                    .compiled
                    .stages
                    .iter()
                    .map(|s| s.stats.stage)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The graph IR text of a stage.
    pub fn stage_ir(&self, name: &str) -> Result<String> {
        Ok(crux_ir::graph::text::print(self.stage_graph(name)?))
    }

    /// The optimised graph handed to lowering.
    pub fn graph(&self) -> &Graph {
        self.compiled.final_graph()
    }

    fn split(&self, theta: &[f64]) -> Result<Vec<Tensor>> {
        if theta.len() != self.dim {
            return Err(Error::PositionLength {
                expected: self.dim,
                got: theta.len(),
            });
        }
        self.layout
            .iter()
            .map(|s| {
                Ok(Tensor::new(
                    DType::F64,
                    s.shape.clone(),
                    theta[s.offset..s.offset + s.len].to_vec(),
                )?)
            })
            .collect()
    }

    /// `log p(θ)` and `∇θ log p(θ)` from the graph of `stage`.
    pub fn logp_and_grad_at_stage(&self, stage: &str, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.eval_graph(self.stage_graph(stage)?, stage, theta)
    }

    /// `log p(θ)` and `∇θ log p(θ)` from `g`, the graph of `stage` (or a
    /// copy with other runtime inputs).
    fn eval_graph(&self, g: &Graph, stage: &str, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let params = self.split(theta)?;
        let mut outs = vec![g.output(LOGP_OUTPUT)?];
        for i in 0..self.layout.len() {
            outs.push(
                g.output(&grad_output_name(i))
                    .map_err(|_| Error::UnknownStage {
                        name: format!("{stage} (it has no gradient)"),
                        available: "differentiated, staged, optimised".into(),
                    })?,
            );
        }
        let all = eval_all(g, &params, &outs)?;
        let vals: Vec<&Tensor> = outs
            .iter()
            .map(|o| {
                all[o.index()]
                    .as_ref()
                    .expect("eval_all evaluates every output root")
            })
            .collect();
        let lp = vals[0].data[0];
        let grad = vals[1..]
            .iter()
            .flat_map(|t| t.data.iter().copied())
            .collect();
        Ok((lp, grad))
    }

    /// `log p(θ)` and its gradient, by the reference interpreter on the optimised graph.
    pub fn logp_and_grad(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.logp_and_grad_at_stage("optimised", theta)
    }

    /// `log p(θ)`.
    pub fn logp(&self, theta: &[f64]) -> Result<f64> {
        Ok(self.logp_and_grad(theta)?.0)
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::problem::Problem as Crux;
    use crate::{Domain, Error, Param, Prior};

    fn problem() -> (Crux, Param, Param) {
        let d = Domain::line(0.0, 1.0, 0.25).unwrap();
        let x = d.variable("interior").unwrap();
        let a = Param::new("a", [1]);
        let b = Param::new("b", [2]).with_constant(0.5).unwrap();
        let r = &a * &x + b.at(0) - 1.0;
        (Crux::new([r.mse(), (b.expr() - 2.0).mse()]).unwrap(), a, b)
    }

    #[test]
    fn builder_errors() {
        let (p, a, _) = problem();
        let other = Param::new("c", [1]);
        let err = |r: crate::Result<super::LogDensity>| r.unwrap_err();
        assert!(matches!(
            err(p.log_density().build()),
            Error::NothingSampled
        ));
        assert!(matches!(
            err(p.log_density().sample(&other, Prior::default()).build()),
            Error::ModelNotInProblem(_)
        ));
        assert!(matches!(
            err(p
                .log_density()
                .sample(&a, Prior::default())
                .sample(&a, Prior::default())
                .build()),
            Error::DuplicateModel(_)
        ));
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = err(p
                .log_density()
                .sample(&a, Prior::default())
                .likelihood_scale(s)
                .build());
            assert!(
                e.to_string().contains("likelihood_scale must be positive"),
                "{e}"
            );
        }
        let ld = p
            .log_density()
            .sample(&a, Prior::default())
            .build()
            .unwrap();
        assert!(matches!(
            ld.logp(&[1.0, 2.0]),
            Err(Error::PositionLength {
                expected: 1,
                got: 2
            })
        ));
    }

    /// Held models enter at their current values; the mean over constraints
    /// divides by their number; layout and initial position follow the
    /// order of `sample` calls.
    #[test]
    fn semantics_of_the_log_density() {
        let (p, a, b) = problem();
        a.set_values(&[0.25]).unwrap();
        let ld = p
            .log_density()
            .sample(&b, Prior::laplace(2.0))
            .sample(&a, Prior::default())
            .likelihood_scale(3.0)
            .build()
            .unwrap();
        assert_eq!(
            ld.layout()
                .iter()
                .map(|s| (s.name.as_str(), s.offset, s.len))
                .collect::<Vec<_>>(),
            [("b", 0, 2), ("a", 2, 1)]
        );
        assert_eq!(ld.initial_position(), &[0.5, 0.5, 0.25]);
        let (av, b0, b1) = (0.7, -0.3, 1.1);
        let xs = [0.0, 0.25, 0.5, 0.75, 1.0];
        let c1: f64 = xs
            .iter()
            .map(|x| (av * x + b0 - 1.0f64).powi(2))
            .sum::<f64>()
            / 5.0;
        let c2 = ((b0 - 2.0f64).powi(2) + (b1 - 2.0f64).powi(2)) / 2.0;
        let expect = -3.0 * (c1 + c2) / 2.0 - (b0.abs() + b1.abs()) / 2.0 - av * av / 200.0;
        let got = ld.logp(&[b0, b1, av]).unwrap();
        assert!(
            (got - expect).abs() <= 1e-13 * expect.abs(),
            "{got} vs {expect}"
        );

        // Sampling only `a`: `b` is held at its current value 0.5.
        let ld = p
            .log_density()
            .sample(&a, Prior::default())
            .build()
            .unwrap();
        let c1: f64 = xs
            .iter()
            .map(|x| (av * x + 0.5 - 1.0f64).powi(2))
            .sum::<f64>()
            / 5.0;
        let c2 = 1.5f64.powi(2);
        let expect = -(c1 + c2) / 2.0 - av * av / 200.0;
        assert!((ld.logp(&[av]).unwrap() - expect).abs() <= 1e-13 * expect.abs());
    }
}
