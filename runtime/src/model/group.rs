//! A model of several named parameter tensors sampled as one block (one
//! kernel moves all of them jointly): hierarchical models such as eight
//! schools, where a scale, a location and per-group effects must move
//! together.

use std::sync::{Arc, Mutex};

use crux_ir::graph::Shape;

use super::ids::ModelId;
use super::param::{attach, attach_initializer, attach_optimizer, attach_vi, Model, Param};
use super::posterior::Posterior;
use super::registry::ModelCell;
use crate::error::Result;

/// Several parameters forming one model: `.bayesian(..)` samples them
/// jointly (one NUTS over every entry), and the posterior holds each by
/// name. Each parameter may be constrained (`.positive()`, ...). The
/// model's prior applies to every entry; give per-parameter priors as
/// [`crate::Constraint::log_density`] terms with `Prior::flat()`.
///
/// ```
/// let g = crux::Group::new("schools");
/// let mu = g.param("mu", [1]);
/// let tau = g.param("tau", [1]).positive();
/// assert_eq!(crux::Model::leaves(&g).len(), 2);
/// # let _ = (mu, tau);
/// ```
#[derive(Clone)]
pub struct Group(Arc<GroupState>);

struct GroupState {
    id: ModelId,
    name: String,
    cell: Arc<ModelCell>,
    leaves: Mutex<Vec<Param>>,
}

impl Group {
    /// An empty group named `name`.
    pub fn new(name: impl Into<String>) -> Group {
        Group(Arc::new(GroupState {
            id: ModelId::fresh(),
            name: name.into(),
            cell: Arc::default(),
            leaves: Mutex::new(Vec::new()),
        }))
    }

    /// A new parameter of the group (initial value zero, as
    /// [`Param::new`]).
    pub fn param(&self, name: impl Into<String>, shape: impl AsRef<[usize]>) -> Param {
        let p = Param::leaf(
            self.0.id,
            self.0.cell.clone(),
            self.0.name.clone(),
            name.into(),
            Shape(shape.as_ref().to_vec()),
            None,
        );
        self.0
            .leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.clone());
        p
    }

    /// Samples the group's parameters jointly in the next
    /// [`crate::Crux::solve`] (see [`Param::bayesian`]).
    pub fn bayesian(&self, config: super::sampling::Bayesian) -> Result<&Self> {
        attach(&self.0.cell, &self.0.name, config)?;
        Ok(self)
    }
    /// Runs `init` on the group's log-density when the next solve starts
    /// (see [`Param::initialize`]).
    pub fn initialize(&self, init: impl Into<super::init::Init>) -> Result<&Self> {
        attach_initializer(&self.0.cell, &self.0.name, init.into())?;
        Ok(self)
    }
    /// Fits the group by mean-field VI (see [`Param::vi`]).
    pub fn vi(&self, config: super::vi::Vi) -> Result<&Self> {
        attach_vi(&self.0.cell, &self.0.name, config)?;
        Ok(self)
    }
    /// Optimises the group (see [`Param::optimizer`]).
    pub fn optimizer(&self, opt: super::sampling::Optimizer) -> Result<&Self> {
        attach_optimizer(&self.0.cell, &self.0.name, opt)?;
        Ok(self)
    }
    /// The posterior of the last solve that sampled the group.
    pub fn posterior(&self) -> Option<Arc<Posterior>> {
        self.0.cell.results().posterior
    }
}

impl Model for Group {
    fn model_id(&self) -> ModelId {
        self.0.id
    }
    fn model_name(&self) -> String {
        self.0.name.clone()
    }
    fn leaves(&self) -> Vec<Param> {
        self.0
            .leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group({}: {:?})", self.0.name, self.leaves())
    }
}
