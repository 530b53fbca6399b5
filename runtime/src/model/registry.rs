//! Per-model settings and results, in one place.
//!
//! Every leaf of a model holds the same [`ModelCell`], so `param.bayesian(..)`
//! before the problem exists and `param.posterior()` after a solve reach
//! the same record; the problem lists its models by [`ModelId`] (see
//! [`ModelInfo`]) and a solution keeps the posteriors it produced. A new
//! per-model concern (an optimiser, a mask group, a VI state) is one more
//! field of [`ModelSettings`] and, if it leaves a result, of [`ModelResults`].

use std::sync::{Arc, RwLock};

use super::ids::ModelId;
use super::init::Init;
use super::param::Param;
use super::posterior::Posterior;
use super::sampling::{Bayesian, Optimizer};
use super::vi::Vi;

/// What the user declared for one model beyond its parameters' values.
#[derive(Clone, Debug, Default)]
pub struct ModelSettings {
    /// How the model is sampled.
    pub bayesian: Option<Bayesian>,
    /// How the model is optimised (a point estimate). With neither, the
    /// model keeps its value in a solve. With masked groups, it trains the
    /// leaves no group holds (pattern B).
    pub optimizer: Option<Optimizer>,
    /// How the model is fitted by variational inference (never together
    /// with `bayesian`).
    pub vi: Option<Vi>,
    /// A log-density-aware initializer run when the solve starts.
    pub initializer: Option<Init>,
    /// Masked groups, disjoint, in the order they were configured.
    pub groups: Vec<MaskGroup>,
}

/// Leaves of one model configured apart (see [`crate::model::Mask`]).
#[derive(Clone, Debug)]
pub struct MaskGroup {
    /// The leaves, by name, in the model's leaf order.
    pub leaves: Vec<String>,
    /// Per leaf, the entries in the group (`None`: every entry).
    pub entries: Vec<Option<Vec<bool>>>,
    /// How they move.
    pub role: GroupRole,
}

/// How a masked group moves.
#[derive(Clone, Debug)]
pub enum GroupRole {
    /// Sampled.
    Bayesian(Bayesian),
    /// Optimised.
    Optimizer(Optimizer),
    /// Fitted by variational inference.
    Vi(Vi),
}

/// What the last solve left on one model.
#[derive(Clone, Debug, Default)]
pub struct ModelResults {
    /// The posterior of the last solve that sampled the model.
    pub posterior: Option<Arc<Posterior>>,
}

/// The shared record of one model, held by each of its leaves.
#[derive(Debug, Default)]
pub(crate) struct ModelCell {
    settings: RwLock<ModelSettings>,
    results: RwLock<ModelResults>,
}

impl ModelCell {
    /// A snapshot of the settings.
    pub(crate) fn settings(&self) -> ModelSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Changes the settings in place.
    pub(crate) fn update_settings(&self, f: impl FnOnce(&mut ModelSettings)) {
        f(&mut self.settings.write().unwrap_or_else(|e| e.into_inner()));
    }
    /// A snapshot of the results.
    pub(crate) fn results(&self) -> ModelResults {
        self.results
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Replaces the results.
    pub(crate) fn set_results(&self, r: ModelResults) {
        *self.results.write().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

/// A model used by a problem: its identity, name and leaves.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Identity.
    pub id: ModelId,
    /// Name.
    pub name: String,
    /// Parameter leaves in the problem, in first-use order.
    pub leaves: Vec<Param>,
}

impl ModelInfo {
    /// The model's settings (shared by all its leaves).
    pub fn settings(&self) -> ModelSettings {
        self.leaves[0].cell().settings()
    }
    /// What the last solve left on the model.
    pub fn results(&self) -> ModelResults {
        self.leaves[0].cell().results()
    }
}
