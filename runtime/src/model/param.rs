//! Parameters (tensor leaves of models) and the [`Model`] trait.

use std::sync::{Arc, RwLock};

use crux_ir::graph::Shape;

use super::expr::{Expr, Kind};
use super::ids::{LeafId, ModelId};
use super::init::Init;
use super::posterior::{Diagnostics, Posterior};
use super::registry::ModelCell;
use super::sampling::{Bayesian, Optimizer};
use super::transform::Transform;
use super::vi::Vi;
use crate::error::{Error, Result};

/// Something with parameters that a problem can optimise or sample: a
/// [`Param`] (one tensor) or a [`crate::Net`] (its weights and biases).
pub trait Model {
    /// Identity shared by all leaves of the model.
    fn model_id(&self) -> ModelId;
    /// Name used in messages and outputs.
    fn model_name(&self) -> String;
    /// The parameter tensors, in a fixed order.
    fn leaves(&self) -> Vec<Param>;
}

/// The most entries one parameter tensor may have (2³¹).
pub const MAX_PARAM_ENTRIES: usize = 1 << 31;

/// The most entries of an [`Param::ordered`] vector (its cumulative sum is
/// an `n × n` triangular product in the graph).
pub const MAX_ORDERED_ENTRIES: usize = 1024;

/// A named parameter tensor. Cloning gives another handle to the same
/// parameter (its value is shared).
#[derive(Clone)]
pub struct Param(Arc<ParamState>);

struct ParamState {
    leaf: LeafId,
    shared: Arc<super::registry::ModelCell>,
    model: ModelId,
    model_name: String,
    name: String,
    shape: Shape,
    value: RwLock<Vec<f64>>,
    /// The support of the entries (see [`Transform`]).
    transform: RwLock<Transform>,
}

impl Param {
    /// A standalone parameter (its own model), initial value zero — as in
    /// the reference library.
    pub fn new(name: impl Into<String>, shape: impl AsRef<[usize]>) -> Param {
        let name = name.into();
        Param::leaf(
            ModelId::fresh(),
            Arc::default(),
            name.clone(),
            name,
            Shape(shape.as_ref().to_vec()),
            None,
        )
    }

    pub(crate) fn leaf(
        model: ModelId,
        shared: Arc<super::registry::ModelCell>,
        model_name: String,
        name: String,
        shape: Shape,
        value: Option<Vec<f64>>,
    ) -> Param {
        // An absurd shape gets no storage (instead of aborting on the
        // allocation); `Crux::new` rejects the parameter with a message.
        let n = shape
            .checked_numel()
            .filter(|&n| n <= MAX_PARAM_ENTRIES)
            .unwrap_or(0);
        Param(Arc::new(ParamState {
            leaf: LeafId::fresh(),
            shared,
            model,
            model_name,
            name,
            value: RwLock::new(value.unwrap_or_else(|| vec![0.0; n])),
            shape,
            transform: RwLock::new(Transform::Identity),
        }))
    }

    /// The support of the entries.
    pub fn transform(&self) -> Transform {
        *self.0.transform.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Constrains every entry to `(0, ∞)`: the sampler moves `ln x` and the
    /// log-density gains the Jacobian (see [`Transform`]); priors and
    /// likelihoods are written on `x`, posteriors report `x`. The value
    /// becomes 1 unless it is already positive.
    pub fn positive(self) -> Param {
        self.constrain(Transform::Lower(0.0))
    }

    /// Constrains every entry to `(lo, ∞)` (see [`Param::positive`]); the
    /// value becomes `lo + 1` unless it is already above `lo`.
    pub fn lower(self, lo: f64) -> Result<Param> {
        let t = Transform::lower(self.name(), lo)?;
        Ok(self.constrain(t))
    }

    /// Constrains every entry to `(−∞, hi)` (see [`Param::positive`]); the
    /// value becomes `hi − 1` unless it is already below `hi`.
    pub fn upper(self, hi: f64) -> Result<Param> {
        let t = Transform::upper(self.name(), hi)?;
        Ok(self.constrain(t))
    }

    /// Constrains every entry to `(lo, hi)` through a scaled logistic map
    /// (see [`Param::positive`]); `lo < hi`, both finite. The value becomes
    /// the midpoint unless it is already inside.
    pub fn bounded(self, lo: f64, hi: f64) -> Result<Param> {
        let t = Transform::bounded(self.name(), lo, hi)?;
        Ok(self.constrain(t))
    }

    /// Constrains the parameter, a 1-D vector, to strictly increasing
    /// values (Stan's `ordered`: cut points, ordered locations); the
    /// sampler moves `(x₀, ln(x₁ − x₀), …)`. The value becomes `0, 1, …`
    /// unless it is already increasing. A parameter of another rank, or of
    /// more than [`MAX_ORDERED_ENTRIES`] entries (the cumulative sum is a
    /// dense triangular product), is refused.
    pub fn ordered(self) -> Result<Param> {
        if self.len() > MAX_ORDERED_ENTRIES {
            return Err(Error::InvalidArgument {
                what: format!("parameter `{}`", self.name()),
                reason: format!(
                    "an ordered parameter has at most {MAX_ORDERED_ENTRIES} entries, this one {}",
                    self.len()
                ),
            });
        }
        if self.shape().len() != 1 {
            return Err(Error::InvalidArgument {
                what: format!("parameter `{}`", self.name()),
                reason: format!(
                    "an ordered parameter is a vector (shape [n]), this one has shape {:?}",
                    self.shape()
                ),
            });
        }
        Ok(self.constrain(Transform::Ordered))
    }

    fn constrain(self, t: Transform) -> Param {
        *self.0.transform.write().unwrap_or_else(|e| e.into_inner()) = t;
        let mut v = self.0.value.write().unwrap_or_else(|e| e.into_inner());
        if t == Transform::Ordered {
            if !t.contains_all(&v) {
                *v = t.default_values(v.len());
            }
        } else {
            let d = t.default_values(1)[0];
            for x in v.iter_mut().filter(|x| !t.contains(**x)) {
                *x = d;
            }
        }
        drop(v);
        self
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The parameter's shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape.0
    }

    /// Number of scalar entries.
    pub fn len(&self) -> usize {
        self.0.shape.numel()
    }

    /// Whether the parameter has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the parameter has storage for its shape (see [`MAX_PARAM_ENTRIES`]).
    pub(crate) fn is_allocated(&self) -> bool {
        self.0.value.read().unwrap_or_else(|e| e.into_inner()).len() == self.len()
    }

    pub(crate) fn leaf_id(&self) -> LeafId {
        self.0.leaf
    }

    /// `fan_in` of the reference library's priors: the product of
    /// `shape[1..]` (weights are laid out `(out, in, ...)`).
    pub fn fan_in(&self) -> usize {
        self.0
            .shape
            .0
            .iter()
            .skip(1)
            .fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// The current value, flattened row-major.
    pub fn values(&self) -> Vec<f64> {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current value as an array of the parameter's shape.
    ///
    /// Fails only for a parameter whose shape has more than
    /// [`MAX_PARAM_ENTRIES`] entries (it has no storage).
    pub fn value(&self) -> Result<ndarray::ArrayD<f64>> {
        self.ensure_allocated()?;
        ndarray::ArrayD::from_shape_vec(self.0.shape.0.clone(), self.values()).map_err(|e| {
            Error::InvalidArgument {
                what: format!("value of parameter `{}`", self.name()),
                reason: e.to_string(),
            }
        })
    }

    fn ensure_allocated(&self) -> Result<()> {
        if self.is_allocated() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            what: format!("parameter `{}`", self.name()),
            reason: format!(
                "its shape {:?} has more than {MAX_PARAM_ENTRIES} entries",
                self.shape()
            ),
        })
    }

    /// Sets the value from a flat row-major slice.
    pub fn set_values(&self, v: &[f64]) -> Result<()> {
        if v.len() != self.len() {
            return Err(Error::InvalidArgument {
                what: format!("value of parameter `{}`", self.name()),
                reason: format!(
                    "expected {} entries for shape {}, got {}",
                    self.len(),
                    self.0.shape,
                    v.len()
                ),
            });
        }
        self.check_finite(v)?;
        self.transform().check_values(self.name(), v)?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v.to_vec();
        Ok(())
    }

    fn check_finite(&self, v: &[f64]) -> Result<()> {
        match v.iter().find(|x| !x.is_finite()) {
            None => Ok(()),
            Some(bad) => Err(Error::NonFinite {
                what: format!("the value of parameter `{}`", self.name()),
                value: *bad,
            }),
        }
    }

    /// Sets the value (length as given, finiteness checked, not the
    /// support: a solve writing back a draw that rounds onto a bound).
    pub(crate) fn store(&self, v: &[f64]) -> Result<()> {
        self.check_finite(v)?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v.to_vec();
        Ok(())
    }

    /// Sets the value from an array of the parameter's shape.
    pub fn set_value<S, D>(&self, a: &ndarray::ArrayBase<S, D>) -> Result<()>
    where
        S: ndarray::Data<Elem = f64>,
        D: ndarray::Dimension,
    {
        if a.shape() != self.shape() {
            return Err(Error::InvalidArgument {
                what: format!("value of parameter `{}`", self.name()),
                reason: format!("expected shape {:?}, got {:?}", self.shape(), a.shape()),
            });
        }
        self.set_values(&a.iter().copied().collect::<Vec<_>>())
    }

    /// Builder form of [`Param::set_value`].
    pub fn with_value<S, D>(self, a: &ndarray::ArrayBase<S, D>) -> Result<Param>
    where
        S: ndarray::Data<Elem = f64>,
        D: ndarray::Dimension,
    {
        self.set_value(a)?;
        Ok(self)
    }

    /// Builder: every entry set to `v`.
    pub fn with_constant(self, v: f64) -> Result<Param> {
        self.ensure_allocated()?;
        self.set_values(&vec![v; self.len()])?;
        Ok(self)
    }

    /// Builder: entries drawn i.i.d. from `N(0, std²)` with a counter-based
    /// generator keyed by `seed` (the same seed gives the same values).
    pub fn with_normal(self, std: f64, seed: u64) -> Result<Param> {
        self.ensure_allocated()?;
        if !(std.is_finite() && std >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "std".into(),
                reason: format!("must be finite and >= 0, got {std}"),
            });
        }
        let v: Vec<f64> = (0..self.len() as u64)
            .map(|i| {
                std * crux_ir::rng::normal(
                    seed,
                    crux_ir::rng::stream(crux_ir::rng::Purpose::ParamInit, 0),
                    i,
                )
            })
            .collect();
        self.set_values(&v)?;
        Ok(self)
    }

    /// An expression reading this parameter.
    pub fn expr(&self) -> Expr {
        if let Err(e) = self.ensure_allocated() {
            return Expr::invalid(e);
        }
        Expr::make(Kind::Leaf(self.clone()), self.0.shape.clone(), None)
    }

    /// Element `i` along the first axis (see [`Expr::at`]).
    pub fn at(&self, i: usize) -> Expr {
        self.expr().at(i)
    }
}

impl Model for Param {
    fn model_id(&self) -> ModelId {
        self.0.model
    }
    fn model_name(&self) -> String {
        self.0.model_name.clone()
    }
    fn leaves(&self) -> Vec<Param> {
        vec![self.clone()]
    }
}

impl Param {
    /// Name of the model this parameter belongs to.
    pub fn owner_name(&self) -> &str {
        &self.0.model_name
    }

    /// Identity of the model this parameter belongs to.
    pub fn owner(&self) -> ModelId {
        self.0.model
    }

    /// The Bayesian configuration and posterior of the owning model.
    pub(crate) fn cell(&self) -> &Arc<super::registry::ModelCell> {
        &self.0.shared
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}: {})", self.0.name, self.0.shape)
    }
}

impl Param {
    /// Samples this parameter's posterior in the next [`crate::Crux::solve`]
    /// with `config` (kernel, prior, schedule); replaces an earlier
    /// `.bayesian(..)` or `.optimizer(..)`.
    /// What can be checked without the problem is checked here (counts,
    /// scales, kernel options, prior parameters); the rest when the solve
    /// starts.
    pub fn bayesian(&self, config: Bayesian) -> Result<&Self> {
        attach(self.cell(), self.owner_name(), config)?;
        Ok(self)
    }
    /// Optimises this parameter (a point estimate) in the next
    /// [`crate::Crux::solve`]: each sweep it takes one `opt` step on the
    /// loss gradient, before the sampled models' steps. Replaces an earlier
    /// `.optimizer(..)` or `.bayesian(..)` (a model is optimised or sampled:
    /// train with one solve, then sample from the trained value with the
    /// next); the hyper-parameters are checked here.
    pub fn optimizer(&self, opt: Optimizer) -> Result<&Self> {
        attach_optimizer(self.cell(), self.owner_name(), opt)?;
        Ok(self)
    }
    /// Runs `init` on this model's log-density when the next
    /// [`crate::Crux::solve`] starts: a warm start per chain and (pathfinder,
    /// Laplace) the inverse mass matrix (see [`Init`]). Replaces an earlier
    /// initializer; checked here.
    pub fn initialize(&self, init: impl Into<Init>) -> Result<&Self> {
        attach_initializer(self.cell(), self.owner_name(), init.into())?;
        Ok(self)
    }
    /// Fits this parameter's posterior by mean-field variational inference
    /// in the next [`crate::Crux::solve`] (one optimiser step on the ELBO
    /// per epoch; see [`Vi`]). A model has `.vi(..)` or `.bayesian(..)`,
    /// never both: setting one after the other is an error. Replaces an
    /// earlier `.vi(..)` or `.optimizer(..)`.
    pub fn vi(&self, config: Vi) -> Result<&Self> {
        attach_vi(self.cell(), self.owner_name(), config)?;
        Ok(self)
    }
    /// The posterior of the last solve that sampled this parameter (the
    /// same type as a network's: leaves by name).
    pub fn posterior(&self) -> Option<Arc<Posterior>> {
        self.cell().results().posterior
    }
    /// The chain `(K, N, *shape)` of the last solve (also for one chain).
    pub fn posterior_samples(&self) -> Option<ndarray::ArrayD<f64>> {
        self.posterior().and_then(|p| p.leaf(self.name()).cloned())
    }
    /// Per-draw diagnostics `(K, N)` of the last solve (`None` for kernels
    /// without an info record: SGLD, SGHMC).
    pub fn posterior_diagnostics(&self) -> Option<Diagnostics> {
        self.posterior().and_then(|p| p.diagnostics.clone())
    }
}

/// The model-independent checks of a `.bayesian(..)` configuration, as an
/// error naming `model` (whole models and masked groups alike).
pub(crate) fn check_bayesian(model: &str, config: &Bayesian) -> Result<()> {
    config.check().map_err(|reason| Error::Bayesian {
        model: model.to_string(),
        reason,
    })
}

/// The checks of an optimiser's hyper-parameters, as an error naming
/// `model`.
pub(crate) fn check_optimizer(model: &str, opt: &Optimizer) -> Result<()> {
    opt.check().map_err(|reason| Error::Optimizer {
        model: model.to_string(),
        reason,
    })
}

/// Checks `opt` and stores it as the model's optimiser.
pub(crate) fn attach_optimizer(cell: &ModelCell, model: &str, opt: Optimizer) -> Result<()> {
    check_optimizer(model, &opt)?;
    cell.update_settings(|s| {
        s.optimizer = Some(opt);
        s.bayesian = None;
        s.vi = None;
    });
    Ok(())
}

/// Checks `init` and stores it as the model's initializer.
pub(crate) fn attach_initializer(cell: &ModelCell, model: &str, init: Init) -> Result<()> {
    init.check().map_err(|reason| Error::Bayesian {
        model: model.to_string(),
        reason,
    })?;
    cell.update_settings(|s| s.initializer = Some(init));
    Ok(())
}

/// The checks of a VI configuration, as an error naming `model`.
pub(crate) fn check_vi(model: &str, config: &Vi) -> Result<()> {
    config.check().map_err(|reason| Error::Bayesian {
        model: model.to_string(),
        reason,
    })
}

/// Checks `config` and stores it as the model's VI configuration.
pub(crate) fn attach_vi(cell: &ModelCell, model: &str, config: Vi) -> Result<()> {
    check_vi(model, &config)?;
    let settings = cell.settings();
    if settings.bayesian.is_some() {
        return Err(Error::Bayesian {
            model: model.to_string(),
            reason: "already has .bayesian(..): a model is sampled by MCMC or fitted by VI, not both (configure another model, or masked groups apart with .mask(..))".into(),
        });
    }
    if !settings.groups.is_empty() {
        return Err(Error::Mask {
            model: model.to_string(),
            reason: "has masked groups: a model is fitted whole or by masked groups, not both; call .clear_masks() first, or configure the rest with .mask(..).vi(..)".into(),
        });
    }
    cell.update_settings(|s| {
        s.vi = Some(config);
        s.optimizer = None;
    });
    Ok(())
}

/// Checks `config` and stores it as the model's sampling configuration.
pub(crate) fn attach(cell: &ModelCell, model: &str, config: Bayesian) -> Result<()> {
    check_bayesian(model, &config)?;
    if cell.settings().vi.is_some() {
        return Err(Error::Bayesian {
            model: model.to_string(),
            reason: "already has .vi(..): a model is sampled by MCMC or fitted by VI, not both (configure another model, or the .vi(..) one's masked groups apart with .mask(..))".into(),
        });
    }
    if !cell.settings().groups.is_empty() {
        return Err(Error::Mask {
            model: model.to_string(),
            reason: "has masked groups: a model is sampled whole or by masked groups, not both; call .clear_masks() first, or configure the rest with .mask(..)".into(),
        });
    }
    cell.update_settings(|s| {
        s.bayesian = Some(config);
        s.optimizer = None;
    });
    Ok(())
}
