//! The traced side of a problem: constraints over one domain, their noise
//! streams, their models and the seed.

use std::collections::HashSet;

use crux_ir::graph::eval;

use crate::compile::logdensity::LogDensityBuilder;
use crate::compile::trace::{NoiseTable, Tracer};
use crate::error::{Error, Result};
use crate::model::constraint::Constraint;
use crate::model::expr::{Expr, Kind};
use crate::model::ids::{DomainId, LeafId};
use crate::model::registry::ModelInfo;

/// The default seed of a problem's data (as in the reference library).
pub const DEFAULT_SEED: u64 = 42;

/// The traced side of a problem: its constraints, the noise streams of
/// their noise terms, the models they use and the seed the noise is drawn
/// from. [`crate::Crux`] wraps it.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    constraints: Vec<Constraint>,
    seed: u64,
    noise: NoiseTable,
    models: Vec<ModelInfo>,
    points: usize,
}

impl Problem {
    /// A problem from its constraints. Fails on an empty list, on invalid
    /// expressions (with the first offending operation), on constraints over
    /// different domains, and on parameters with no entries.
    pub fn new(constraints: impl IntoIterator<Item = Constraint>) -> Result<Problem> {
        let constraints: Vec<Constraint> = constraints.into_iter().collect();
        if constraints.is_empty() {
            return Err(Error::NoConstraints);
        }
        let mut domain: Option<DomainId> = None;
        for (i, c) in constraints.iter().enumerate() {
            c.residual().check()?;
            let shape = c.residual().shape();
            if c.is_log_density() && shape.iter().product::<usize>() != 1 {
                return Err(Error::InvalidArgument {
                    what: format!("log-density term {i} (`{}`)", c.residual()),
                    reason: format!(
                        "it has shape {shape:?}; a log-density term is one number: reduce it, e.g. with .sum()"
                    ),
                });
            }
            if let Some(d) = c.residual().0.domain {
                if domain.is_some_and(|x| x != d) {
                    return Err(Error::MixedDomains {
                        expr: c.residual().to_string(),
                    });
                }
                domain = Some(d);
            }
        }
        let roots: Vec<&Expr> = constraints.iter().map(Constraint::residual).collect();
        let mut noise = NoiseTable::default();
        noise.register(&roots);
        let mut models: Vec<ModelInfo> = Vec::new();
        let mut seen_leaf = HashSet::new();
        let mut seen_points = HashSet::new();
        let mut points = 0;
        for e in Expr::post_order(&roots) {
            match e.kind() {
                Kind::Leaf(p) if seen_leaf.insert(p.leaf_id()) => {
                    p.value()?;
                    if p.is_empty() {
                        return Err(Error::InvalidArgument {
                            what: format!("parameter `{}`", p.name()),
                            reason: format!("its shape {:?} has no entries", p.shape()),
                        });
                    }
                    match models.iter_mut().find(|m| m.id == p.owner()) {
                        Some(m) if m.leaves.iter().any(|l| l.name() == p.name()) => {
                            return Err(Error::InvalidArgument {
                                what: format!("parameter `{}` of model `{}`", p.name(), m.name),
                                reason: "the model has two parameters of this name: posteriors and masks find leaves by name, give each its own".into(),
                            });
                        }
                        Some(m) => m.leaves.push(p.clone()),
                        None => models.push(ModelInfo {
                            id: p.owner(),
                            name: p.owner_name().to_string(),
                            leaves: vec![p.clone()],
                        }),
                    }
                }
                Kind::Coord { domain, tag, .. } if seen_points.insert(tag.clone()) => {
                    points += domain.points_tensor(tag)?.shape.0[0];
                }
                _ => {}
            }
        }
        Ok(Problem {
            constraints,
            seed: DEFAULT_SEED,
            noise,
            models,
            points,
        })
    }

    /// Sets the seed from which noise terms are drawn (default 42).
    pub fn with_seed(mut self, seed: u64) -> Problem {
        self.seed = seed;
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The constraints.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// The models the constraints use, in first-use order.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Number of collocation points the constraints read (each tag once).
    pub fn num_points(&self) -> usize {
        self.points
    }

    pub(crate) fn noise(&self) -> &NoiseTable {
        &self.noise
    }

    /// Starts building the log-density of a set of sampled models.
    pub fn log_density(&self) -> LogDensityBuilder<'_> {
        LogDensityBuilder::new(self)
    }

    /// The loss `mean_c L_c` as an expression.
    pub(crate) fn loss(&self) -> Expr {
        let all: Vec<usize> = (0..self.constraints.len()).collect();
        self.loss_of(&all)
    }

    /// The loss of the constraints `which` (valid, non-empty indices):
    /// the mean of the residual constraints' losses minus the log-density
    /// terms.
    pub(crate) fn loss_of(&self, which: &[usize]) -> Expr {
        let (mean, terms) = self.split_terms(which);
        match (mean, terms) {
            (Some(m), Some(t)) => m - t,
            (Some(m), None) => m,
            (None, Some(t)) => -t,
            (None, None) => unreachable!("callers pass a non-empty list of constraints"),
        }
    }

    /// `−scale · mean_c L_c + Σ_t ℓ_t` over the constraints `which`.
    pub(crate) fn log_likelihood_of(&self, which: &[usize], scale: f64) -> Expr {
        let (mean, terms) = self.split_terms(which);
        match (mean, terms) {
            (Some(m), Some(t)) => m * (-scale) + t,
            (Some(m), None) => m * (-scale),
            (None, Some(t)) => t,
            (None, None) => unreachable!("callers pass a non-empty list of constraints"),
        }
    }

    /// The mean of the residual constraints' losses among `which`, and the
    /// sum of its log-density terms.
    fn split_terms(&self, which: &[usize]) -> (Option<Expr>, Option<Expr>) {
        let add = |total: Option<Expr>, v: Expr| {
            Some(match total {
                None => v,
                Some(t) => t + v,
            })
        };
        let (mut res, mut terms, mut n) = (None, None, 0);
        for &i in which {
            let c = &self.constraints[i];
            if c.is_log_density() {
                terms = add(terms, c.residual().sum());
            } else {
                res = add(res, c.value());
                n += 1;
            }
        }
        (res.map(|r| r * (1.0 / n as f64)), terms)
    }

    /// The leaves the constraints `which` read.
    pub(crate) fn leaves_of(&self, which: &[usize]) -> HashSet<LeafId> {
        let roots: Vec<&Expr> = which
            .iter()
            .map(|&i| self.constraints[i].residual())
            .collect();
        Expr::post_order(&roots)
            .into_iter()
            .filter_map(|e| match e.kind() {
                Kind::Leaf(p) => Some(p.leaf_id()),
                _ => None,
            })
            .collect()
    }

    /// Checks constraint indices (a substep's, a log-density's subset).
    pub(crate) fn check_constraints(&self, which: &[usize]) -> Result<()> {
        let n = self.constraints.len();
        if which.is_empty() {
            return Err(Error::InvalidArgument {
                what: "constraint subset".into(),
                reason: "it is empty: name at least one constraint (by its index in `Crux::new`)"
                    .into(),
            });
        }
        if let Some(i) = which.iter().find(|&&i| i >= n) {
            return Err(Error::InvalidArgument {
                what: "constraint subset".into(),
                reason: format!(
                    "constraint {i} does not exist: the problem has {n} (indices 0..{n})"
                ),
            });
        }
        Ok(())
    }

    /// The loss at the current parameter values.
    pub fn loss_value(&self) -> Result<f64> {
        Ok(self
            .eval(&self.loss())?
            .iter()
            .copied()
            .next()
            .unwrap_or(f64::NAN))
    }

    /// Evaluates an expression at the current parameter values, with this
    /// problem's noise draws, by the reference interpreter.
    pub fn eval(&self, e: &Expr) -> Result<ndarray::ArrayD<f64>> {
        e.check()?;
        let mut t = Tracer::new(self.seed, self.noise.clone());
        let out = t.trace(e)?;
        t.graph.set_output("value", out);
        let v = eval(&t.graph, &[])?.remove(0);
        Ok(ndarray::ArrayD::from_shape_vec(v.shape.0, v.data)
            .expect("the graph interpreter returns data of its tensor's shape"))
    }
}
